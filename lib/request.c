/* SPDX-License-Identifier: MIT */
/* The public request handles, both ways: sending updates and responses,
 * receiving, and their write halves.  Requests are made and freed in
 * route.c. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "private.h"
#include "route.h"

static void req_writer_ref(struct req *r)
{
	pthread_mutex_lock(&r->peer->conn.mu);
	r->writers++;
	pthread_mutex_unlock(&r->peer->conn.mu);
}

/* --- sending ------------------------------------------------------------- */

/* The body a call passes in one buffer (*b, its piece in *v), checked
 * with its fds: 0 or -EINVAL.  A send of one buffer costs no loop over
 * pieces. */
static int body_one(struct conn_body *b, struct iovec *v, const void *body, size_t len,
		    const int *fds, size_t nfds)
{
	*b = conn_body_one(v, body, len);
	return (len && !body) || (nfds && !fds) ? -EINVAL : 0;
}

/* The body a call passes in pieces, checked with its fds: 0 or -EINVAL. */
static int body_pieces(struct conn_body *b, const struct iovec *iov, size_t iovcnt,
		       const int *fds, size_t nfds)
{
	return nfds && !fds ? -EINVAL : conn_body_pieces(b, iov, iovcnt);
}

/* An update, either way, while the request is open; b and fds checked. */
static int req_send_update(struct req *r, int32_t service_id, const struct conn_body *b,
			   const int *fds, size_t nfds)
{
	struct pier_header h = {
		r->sent ? PIER_MSG_REQUESTER_UPDATE : PIER_MSG_RESPONDER_UPDATE,
		r->id,
		service_id,
	};
	struct conn *c = &r->peer->conn;
	int e;

	pthread_mutex_lock(&c->mu);
	e = r->q.finished || r->responding ? -PIER_EDONE : 0;
	pthread_mutex_unlock(&c->mu);
	if (e < 0)
		return e;
	return conn_send(c, &h, b, fds, nfds, false);
}

/* The response; b and fds checked. */
static int req_send_response(struct req *r, int32_t service_id, const struct conn_body *b,
			     const int *fds, size_t nfds)
{
	struct pier_header h = { PIER_MSG_RESPONSE, r->id, service_id };
	struct conn *c = &r->peer->conn;
	int e;

	pthread_mutex_lock(&c->mu);
	if (r->q.finished || r->responding) {
		pthread_mutex_unlock(&c->mu);
		return -PIER_EDONE;
	}
	r->responding = true; /* one response, however many threads try */
	pthread_mutex_unlock(&c->mu);

	e = conn_send(c, &h, b, fds, nfds, false);

	pthread_mutex_lock(&c->mu);
	r->responding = false;
	if (e == 0) {
		r->q.finished = true;
		req_close_locked(r);
		msgq_changed_locked(c, &r->q);
	}
	pthread_mutex_unlock(&c->mu);
	return e;
}

static int req_send_error(struct req *r, const char *message)
{
	struct conn_body b;
	struct iovec v;

	if (!message)
		return -EINVAL;
	b = conn_body_one(&v, message, strlen(message));
	return req_send_response(r, PIER_SERVICE_ERROR, &b, NULL, 0);
}

/* A request; b and fds checked. */
static int send_request(pier_writer *w, int32_t service_id, const struct conn_body *b,
			const int *fds, size_t nfds, pier_sent_request **out)
{
	struct pier_header h = { PIER_MSG_REQUEST, 0, service_id };
	struct pier_peer *p = w->peer;
	struct conn *c = &p->conn;
	struct req *r = NULL;
	int e;

	/* Refuse what cannot be sent before an id is taken for it. */
	e = conn_send_check(c, b->len, nfds);
	if (e < 0)
		return e;
	pthread_mutex_lock(&c->mu);
	e = c->error ? c->error : req_new_sent_locked(p, service_id, &r);
	pthread_mutex_unlock(&c->mu);
	if (e < 0)
		return e;

	h.request_id = r->id;
	e = conn_send(c, &h, b, fds, nfds, false);
	if (e < 0) {
		pthread_mutex_lock(&c->mu);
		req_close_locked(r);
		req_release_locked(r, true, NULL);
		pthread_mutex_unlock(&c->mu);
		return e;
	}
	*out = &r->h.s;
	return 0;
}

PIER_EXPORT int pier_writer_send_request(pier_writer *w, int32_t service_id, const void *body,
					 size_t len, const int *fds, size_t nfds,
					 pier_sent_request **out)
{
	struct conn_body b;
	struct iovec v;

	if (!w || !out || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return send_request(w, service_id, &b, fds, nfds, out);
}

PIER_EXPORT int pier_writer_send_requestv(pier_writer *w, int32_t service_id,
					  const struct iovec *iov, size_t iovcnt, const int *fds,
					  size_t nfds, pier_sent_request **out)
{
	struct conn_body b;

	if (!w || !out || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return send_request(w, service_id, &b, fds, nfds, out);
}

/* --- receiving ----------------------------------------------------------- */

enum want { WANT_ANY, WANT_UPDATE, WANT_RESPONSE };

static int req_recv(struct req *r, pier_msg **msg, int timeout_ms, enum want want)
{
	struct conn *c = &r->peer->conn;
	struct pier_msg *m = NULL;
	int e;

	if (!msg || timeout_ms < -1)
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	/* Our own response ends a received request's wait; nothing read
	 * does, so a reading thread must be woken for it. */
	e = msgq_wait_locked(c, &r->q, !r->sent, timeout_ms);
	if (e == 0) {
		bool response = r->q.head->hdr.type == PIER_MSG_RESPONSE;

		/* Peeking never loses a message: the one that does not fit
		 * stays queued. */
		if (want == WANT_UPDATE && response)
			e = -PIER_ERESPONSE;
		else if (want == WANT_RESPONSE && !response)
			e = -PIER_EUPDATE;
		else
			m = msgq_pop_locked(c, &r->q);
	}
	pthread_mutex_unlock(&c->mu);
	if (m)
		*msg = m;
	return e;
}

static int req_fd(struct req *r)
{
	int e;

	struct conn *c = &r->peer->conn;

	pthread_mutex_lock(&c->mu);
	e = msgq_fd_locked(c, &r->q);
	pthread_mutex_unlock(&c->mu);
	return e;
}

/* --- sent requests ------------------------------------------------------- */

#define SENT(handle) ((handle)->req)

PIER_EXPORT uint32_t pier_sent_request_id(const pier_sent_request *req)
{
	return req ? SENT(req)->id : 0;
}

PIER_EXPORT int32_t pier_sent_request_service_id(const pier_sent_request *req)
{
	return req ? SENT(req)->service : 0;
}

PIER_EXPORT int pier_sent_request_recv(pier_sent_request *req, pier_msg **msg, int timeout_ms)
{
	return req ? req_recv(SENT(req), msg, timeout_ms, WANT_ANY) : -EINVAL;
}

PIER_EXPORT int pier_sent_request_recv_update(pier_sent_request *req, pier_msg **msg,
					      int timeout_ms)
{
	return req ? req_recv(SENT(req), msg, timeout_ms, WANT_UPDATE) : -EINVAL;
}

PIER_EXPORT int pier_sent_request_recv_response(pier_sent_request *req, pier_msg **msg,
						int timeout_ms)
{
	return req ? req_recv(SENT(req), msg, timeout_ms, WANT_RESPONSE) : -EINVAL;
}

PIER_EXPORT int pier_sent_request_send_update(pier_sent_request *req, int32_t service_id,
					      const void *body, size_t len, const int *fds,
					      size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!req || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(SENT(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_sent_request_send_updatev(pier_sent_request *req, int32_t service_id,
					       const struct iovec *iov, size_t iovcnt,
					       const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!req || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(SENT(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_sent_request_fd(pier_sent_request *req)
{
	return req ? req_fd(SENT(req)) : -EINVAL;
}

PIER_EXPORT pier_sent_request_writer *pier_sent_request_get_writer(pier_sent_request *req)
{
	return req ? &SENT(req)->w.s : NULL;
}

PIER_EXPORT void pier_sent_request_free(pier_sent_request *req)
{
	if (req)
		req_release(SENT(req), true);
}

PIER_EXPORT pier_sent_request_writer *pier_sent_request_writer_ref(pier_sent_request_writer *w)
{
	if (w)
		req_writer_ref(w->req);
	return w;
}

PIER_EXPORT pier_sent_request_writer *
pier_sent_request_writer_unref(pier_sent_request_writer *w)
{
	if (w)
		req_release(w->req, false);
	return NULL;
}

PIER_EXPORT int pier_sent_request_writer_send_update(pier_sent_request_writer *w,
						     int32_t service_id, const void *body,
						     size_t len, const int *fds, size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!w || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(w->req, service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_sent_request_writer_send_updatev(pier_sent_request_writer *w,
						      int32_t service_id, const struct iovec *iov,
						      size_t iovcnt, const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!w || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(w->req, service_id, &b, fds, nfds);
}

/* --- received requests --------------------------------------------------- */

#define RECEIVED(handle) ((handle)->req)

PIER_EXPORT uint32_t pier_received_request_id(const pier_received_request *req)
{
	return req ? RECEIVED(req)->id : 0;
}

PIER_EXPORT int32_t pier_received_request_service_id(const pier_received_request *req)
{
	return req ? RECEIVED(req)->service : 0;
}

PIER_EXPORT int pier_received_request_recv_update(pier_received_request *req, pier_msg **msg,
						  int timeout_ms)
{
	return req ? req_recv(RECEIVED(req), msg, timeout_ms, WANT_ANY) : -EINVAL;
}

PIER_EXPORT int pier_received_request_send_update(pier_received_request *req,
						  int32_t service_id, const void *body,
						  size_t len, const int *fds, size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!req || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(RECEIVED(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_send_updatev(pier_received_request *req,
						   int32_t service_id, const struct iovec *iov,
						   size_t iovcnt, const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!req || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(RECEIVED(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_send_response(pier_received_request *req,
						    int32_t service_id, const void *body,
						    size_t len, const int *fds, size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!req || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_response(RECEIVED(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_send_responsev(pier_received_request *req,
						     int32_t service_id, const struct iovec *iov,
						     size_t iovcnt, const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!req || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_response(RECEIVED(req), service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_send_error(pier_received_request *req,
						 const char *message)
{
	return req ? req_send_error(RECEIVED(req), message) : -EINVAL;
}

PIER_EXPORT int pier_received_request_fd(pier_received_request *req)
{
	return req ? req_fd(RECEIVED(req)) : -EINVAL;
}

PIER_EXPORT pier_received_request_writer *
pier_received_request_get_writer(pier_received_request *req)
{
	return req ? &RECEIVED(req)->w.r : NULL;
}

PIER_EXPORT void pier_received_request_free(pier_received_request *req)
{
	if (req)
		req_release(RECEIVED(req), true);
}

PIER_EXPORT pier_received_request_writer *
pier_received_request_writer_ref(pier_received_request_writer *w)
{
	if (w)
		req_writer_ref(w->req);
	return w;
}

PIER_EXPORT pier_received_request_writer *
pier_received_request_writer_unref(pier_received_request_writer *w)
{
	if (w)
		req_release(w->req, false);
	return NULL;
}

PIER_EXPORT int pier_received_request_writer_send_update(pier_received_request_writer *w,
							 int32_t service_id, const void *body,
							 size_t len, const int *fds, size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!w || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(w->req, service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_writer_send_updatev(pier_received_request_writer *w,
							  int32_t service_id,
							  const struct iovec *iov, size_t iovcnt,
							  const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!w || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_update(w->req, service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_writer_send_response(pier_received_request_writer *w,
							   int32_t service_id,
							   const void *body, size_t len,
							   const int *fds, size_t nfds)
{
	struct conn_body b;
	struct iovec v;

	if (!w || body_one(&b, &v, body, len, fds, nfds) < 0)
		return -EINVAL;
	return req_send_response(w->req, service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_writer_send_responsev(pier_received_request_writer *w,
							    int32_t service_id,
							    const struct iovec *iov, size_t iovcnt,
							    const int *fds, size_t nfds)
{
	struct conn_body b;

	if (!w || body_pieces(&b, iov, iovcnt, fds, nfds) < 0)
		return -EINVAL;
	return req_send_response(w->req, service_id, &b, fds, nfds);
}

PIER_EXPORT int pier_received_request_writer_send_error(pier_received_request_writer *w,
							const char *message)
{
	return w ? req_send_error(w->req, message) : -EINVAL;
}
