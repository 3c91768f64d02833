/* SPDX-License-Identifier: MIT */
/*
 * Typed calls: the requests, updates, responses and stream messages of an
 * interface, encoded and decoded by the service's description.  What the
 * client and server pier-scanner generates call; every check of what a
 * remote sent (an update's id, a response's) is here, once.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "private.h"
#include "typed-int.h"

/* A () value for the callers that pass NULL for one. */
static const struct pier_unit unit_value;

static const void *or_unit(const struct pier_type *type, const void *value)
{
	return value || type->kind != PIER_KIND_UNIT ? value : &unit_value;
}

/* What a message is in error messages: "record", "record response",
 * "record update state". */
static const char *what(char *buf, size_t n, const struct pier_service_type *svc,
			const char *kind, const struct pier_message_type *update)
{
	snprintf(buf, n, "%s%s%s%s", svc->name, kind ? kind : "", update ? " " : "",
		 update ? update->name : "");
	return buf;
}

static int fail(struct pier_value_error *err, const char *name, int r)
{
	if (err)
		snprintf(err->message, sizeof(err->message), "%s: %s", name, pier_strerror(r));
	return r;
}

/* Encodes value as type: 0, or a failure with err written. */
static int encode(const struct pier_format *fmt, const struct pier_type *type, const void *value,
		  const char *name, struct pier_encoded *out, struct pier_value_error *err)
{
	value = or_unit(type, value);
	if (!value)
		return fail(err, name, -EINVAL);
	return pier_encode(fmt, type, value, name, out, err);
}

PIER_EXPORT int pier_typed_call(pier_writer *w, const struct pier_format *fmt,
				const struct pier_service_type *svc, const void *request,
				pier_sent_request **out, struct pier_value_error *err)
{
	struct pier_encoded enc = { 0 };
	int r;

	if (!w || !svc || !out)
		return -EINVAL;
	r = encode(fmt, svc->request, request, svc->name, &enc, err);
	if (r == 0 &&
	    (r = pier_writer_send_request(w, svc->service_id, enc.body, enc.len, enc.fds, enc.n_fds,
					  out)) < 0)
		fail(err, svc->name, r);
	pier_encoded_release(&enc);
	return r;
}

static int send_update(pier_sent_request *sent, pier_received_request *received,
		       const struct pier_format *fmt, const struct pier_service_type *svc,
		       const struct pier_message_type *updates, size_t n, size_t index,
		       const void *value, struct pier_value_error *err)
{
	struct pier_encoded enc = { 0 };
	char name[160];
	int r;

	if (!svc || index >= n)
		return -EINVAL;
	what(name, sizeof(name), svc, " update", &updates[index]);
	r = encode(fmt, updates[index].body, value, name, &enc, err);
	if (r == 0) {
		if (sent)
			r = pier_sent_request_send_update(sent, updates[index].service_id, enc.body,
							  enc.len, enc.fds, enc.n_fds);
		else
			r = pier_received_request_send_update(received, updates[index].service_id,
							      enc.body, enc.len, enc.fds, enc.n_fds);
		if (r < 0)
			fail(err, name, r);
	}
	pier_encoded_release(&enc);
	return r;
}

PIER_EXPORT int pier_typed_call_send_update(pier_sent_request *req, const struct pier_format *fmt,
					    const struct pier_service_type *svc, size_t index,
					    const void *update, struct pier_value_error *err)
{
	if (!req || !svc)
		return -EINVAL;
	return send_update(req, NULL, fmt, svc, svc->request_updates, svc->n_request_updates, index,
			   update, err);
}

PIER_EXPORT int pier_typed_reply_send_update(pier_received_request *req,
					     const struct pier_format *fmt,
					     const struct pier_service_type *svc, size_t index,
					     const void *update, struct pier_value_error *err)
{
	if (!req || !svc)
		return -EINVAL;
	return send_update(NULL, req, fmt, svc, svc->response_updates, svc->n_response_updates,
			   index, update, err);
}

/* Decodes msg (taken: freed here) as one of updates into the tagged union
 * value, whose type is the union of updates. */
static int decode_update(pier_msg *msg, const struct pier_format *fmt,
			 const struct pier_service_type *svc, const struct pier_message_type *updates,
			 size_t n, const struct pier_type *type, void *value,
			 struct pier_value_error *err)
{
	int32_t id = pier_msg_header(msg)->service_id;
	const struct pier_variant *v;
	char name[160];
	unsigned int tag;
	int r;

	for (tag = 0; tag < n; tag++)
		if (updates[tag].service_id == id)
			break;
	if (tag == n || !type) {
		if (err)
			snprintf(err->message, sizeof(err->message),
				 "%s: an update with service id %d, which it has not", svc->name,
				 (int)id);
		pier_msg_free(msg);
		return -EBADMSG;
	}
	v = &type->variants[tag];
	pier_value_init(type, value);
	memcpy(value, &tag, sizeof(tag));
	r = pier_msg_decode(msg, fmt, v->type, what(name, sizeof(name), svc, " update", &updates[tag]),
			    (char *)value + v->offset, err);
	if (r < 0)
		pier_value_init(type, value);
	pier_msg_free(msg);
	return r;
}

PIER_EXPORT int pier_typed_call_recv_update(pier_sent_request *req, const struct pier_format *fmt,
					    const struct pier_service_type *svc, void *update,
					    int timeout_ms, struct pier_value_error *err)
{
	pier_msg *msg;
	int r;

	if (!req || !fmt || !svc || !update)
		return -EINVAL;
	if ((r = pier_sent_request_recv_update(req, &msg, timeout_ms)) < 0)
		return r;
	return decode_update(msg, fmt, svc, svc->response_updates, svc->n_response_updates,
			     svc->response_updates_union, update, err);
}

PIER_EXPORT int pier_typed_reply_recv_update(pier_received_request *req,
					     const struct pier_format *fmt,
					     const struct pier_service_type *svc, void *update,
					     int timeout_ms, struct pier_value_error *err)
{
	pier_msg *msg;
	int r;

	if (!req || !fmt || !svc || !update)
		return -EINVAL;
	if ((r = pier_received_request_recv_update(req, &msg, timeout_ms)) < 0)
		return r;
	return decode_update(msg, fmt, svc, svc->request_updates, svc->n_request_updates,
			     svc->request_updates_union, update, err);
}

PIER_EXPORT int pier_typed_call_recv_response(pier_sent_request *req,
					      const struct pier_format *fmt,
					      const struct pier_service_type *svc, void *response,
					      int timeout_ms, struct pier_value_error *err)
{
	struct pier_unit unit;
	char name[160];
	pier_msg *msg;
	size_t len;
	const char *body;
	int r;

	if (!req || !fmt || !svc || !(response = response ? response :
				      svc->response->kind == PIER_KIND_UNIT ? &unit : NULL))
		return -EINVAL;
	if ((r = pier_sent_request_recv_response(req, &msg, timeout_ms)) < 0)
		return r;
	body = pier_msg_body(msg, &len);
	if (pier_msg_is_error(msg)) {
		/* the remote's text, as it sent it: data, not a failure here */
		if (err)
			snprintf(err->message, sizeof(err->message), "%s: %.*s", svc->name,
				 (int)(len < 240 ? len : 240), body ? body : "");
		r = -PIER_EREMOTE;
	} else if (pier_msg_header(msg)->service_id != svc->service_id) {
		if (err)
			snprintf(err->message, sizeof(err->message),
				 "%s: a response with service id %d", svc->name,
				 (int)pier_msg_header(msg)->service_id);
		r = -EBADMSG;
	} else {
		r = pier_msg_decode(msg, fmt, svc->response,
				    what(name, sizeof(name), svc, " response", NULL), response, err);
	}
	pier_msg_free(msg);
	return r;
}

PIER_EXPORT int pier_typed_reply_send_response(pier_received_request *req,
					       const struct pier_format *fmt,
					       const struct pier_service_type *svc,
					       const void *response, struct pier_value_error *err)
{
	struct pier_encoded enc = { 0 };
	char name[160];
	int r;

	if (!req || !svc)
		return -EINVAL;
	what(name, sizeof(name), svc, " response", NULL);
	r = encode(fmt, svc->response, response, name, &enc, err);
	if (r == 0 && (r = pier_received_request_send_response(req, svc->service_id, enc.body,
							       enc.len, enc.fds, enc.n_fds)) < 0)
		fail(err, name, r);
	pier_encoded_release(&enc);
	return r;
}

PIER_EXPORT int pier_typed_send_stream(pier_writer *w, const struct pier_format *fmt,
				       const struct pier_message_type *stream, const void *value,
				       struct pier_value_error *err)
{
	struct pier_encoded enc = { 0 };
	int r;

	if (!w || !stream)
		return -EINVAL;
	r = encode(fmt, stream->body, value, stream->name, &enc, err);
	if (r == 0 && (r = pier_writer_send_stream(w, stream->service_id, enc.body, enc.len, enc.fds,
						   enc.n_fds)) < 0)
		fail(err, stream->name, r);
	pier_encoded_release(&enc);
	return r;
}
