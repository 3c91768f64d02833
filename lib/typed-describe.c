/* SPDX-License-Identifier: MIT */
/*
 * Introspection: a describe request answered with the sources of the
 * interfaces a peer serves (what pier-scanner puts in each struct
 * pier_interface_type), as JSON, an array of strings.  The describe
 * service is itself a typed service: () -> Vec<String>, on whatever id
 * the application chose.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pier/typed.h>

#include "private.h"
#include "server.h"

static const struct pier_type unit_type = {
	.kind = PIER_KIND_UNIT, .name = "()", .size = sizeof(struct pier_unit),
};
static const struct pier_type string_type = {
	.kind = PIER_KIND_STRING, .name = "String", .size = sizeof(char *),
};
static const struct pier_type sources_type = {
	.kind = PIER_KIND_LIST, .name = "Vec<String>", .size = sizeof(struct pier_description),
	.item = &string_type,
};
_Static_assert(offsetof(struct pier_description, n) == sizeof(void *),
	       "the library reads a list as { void *items; size_t len; }");

/* The describe service on id. */
static struct pier_service_type service_on(int32_t id)
{
	return (struct pier_service_type){
		.name = "describe", .service_id = id, .request = &unit_type,
		.response = &sources_type,
	};
}

/* The description of ifaces, borrowing their sources. */
static int borrow(const struct pier_interface_type *const *ifaces, size_t n,
		  struct pier_description *d)
{
	d->n = n;
	d->sources = calloc(n ? n : 1, sizeof(*d->sources));
	if (!d->sources)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		if (!ifaces[i] || !ifaces[i]->source) {
			free(d->sources);
			return -EINVAL;
		}
		d->sources[i] = (char *)ifaces[i]->source;
	}
	return 0;
}

PIER_EXPORT int pier_describe_reply(pier_received_request *req,
				    const struct pier_interface_type *const *ifaces, size_t n,
				    struct pier_value_error *err)
{
	struct pier_service_type svc;
	struct pier_description d;
	int r;

	if (!req || (!ifaces && n))
		return -EINVAL;
	if (!pier_format_json())
		return -ENOTSUP;
	if ((r = borrow(ifaces, n, &d)) < 0)
		return r;
	svc = service_on(pier_received_request_service_id(req));
	r = pier_typed_reply_send_response(req, pier_format_json(), &svc, &d, err);
	free(d.sources);
	return r;
}

/* --- on a server: the answer made once ------------------------------------------- */

struct answer {
	struct pier_encoded body;
};

static void answer_free(void *data)
{
	struct answer *a = data;

	pier_encoded_release(&a->body);
	free(a);
}

static int answer(void *data, pier_peer *peer, void *peer_data, pier_msg *msg,
		  pier_received_request *req)
{
	struct answer *a = data;

	(void)peer;
	(void)peer_data;
	(void)msg;
	/* Fails only when the peer is gone, which ends the request anyway. */
	pier_received_request_send_response(req, pier_received_request_service_id(req),
					    a->body.body, a->body.len, NULL, 0);
	return PIER_HANDLER_DONE;
}

PIER_EXPORT int pier_server_handle_describe(pier_server *s, int32_t service_id,
					    const struct pier_interface_type *const *ifaces,
					    size_t n)
{
	struct pier_description d;
	struct answer *a;
	int r;

	if (!s || (!ifaces && n) || service_id == PIER_SERVICE_ERROR)
		return -EINVAL;
	if (!pier_format_json())
		return -ENOTSUP;
	if ((r = borrow(ifaces, n, &d)) < 0)
		return r;
	if (!(a = calloc(1, sizeof(*a)))) {
		free(d.sources);
		return -ENOMEM;
	}
	r = pier_encode(pier_format_json(), &sources_type, &d, "describe response", &a->body,
			NULL);
	free(d.sources);
	if (r == 0)
		r = server_handle_requests_owned(s, service_id, answer, a, answer_free);
	if (r < 0)
		answer_free(a);
	return r;
}

/* --- asking ------------------------------------------------------------------------------ */

PIER_EXPORT int pier_describe(pier_writer *w, int32_t service_id, int timeout_ms,
			      struct pier_description *out, struct pier_value_error *err)
{
	struct pier_service_type svc = service_on(service_id);
	pier_sent_request *req;
	int r;

	if (!w || !out)
		return -EINVAL;
	if (!pier_format_json())
		return -ENOTSUP;
	r = pier_typed_call(w, pier_format_json(), &svc, NULL, &req, err);
	if (r < 0)
		return r;
	r = pier_typed_call_recv_response(req, pier_format_json(), &svc, out, timeout_ms, err);
	pier_sent_request_free(req);
	return r;
}

PIER_EXPORT void pier_description_free(struct pier_description *d)
{
	pier_value_free(&sources_type, d);
}
