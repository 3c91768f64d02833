/* SPDX-License-Identifier: MIT */
/* Routing of incoming messages, and requests' bookkeeping (see route.h). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"
#include "private.h"
#include "route.h"

#define UNANSWERED "the request was dropped without a response"
/* Requests a peer keeps for reuse once freed: as many as a client
 * typically has in flight, so that a steady stream of requests allocates
 * none. */
#define SPARE_REQS 16

static struct pier_peer *peer_of(struct conn *c)
{
	return pier_container_of(c, struct pier_peer, conn);
}

/* --- requests ------------------------------------------------------------ */

/* Under mu (or once nothing else can reach its peer). */
static void req_free(struct req *r)
{
	struct pier_peer *p = r->peer;
	struct pier_msg *m;

	while ((m = r->q.head) != NULL) {
		r->q.head = m->next;
		msg_free(m);
	}
	msgq_fini(&r->q);
	if (p->nspare < SPARE_REQS) {
		r->next_spare = p->spare;
		p->spare = r;
		p->nspare++;
		return;
	}
	free(r);
}

/* Under mu.  The new request is open (in its table); with its read half
 * (and a handle of the connection for it) unless it is a ping, which the
 * application never sees. */
static struct req *req_new_locked(struct pier_peer *p, uint32_t id, int32_t service, bool sent,
				  bool ping)
{
	struct req *r = p->spare;

	if (r) {
		p->spare = r->next_spare;
		p->nspare--;
		memset(r, 0, sizeof(*r));
	} else if (!(r = calloc(1, sizeof(*r)))) {
		return NULL;
	}
	r->peer = p;
	r->id = id;
	r->service = service;
	r->sent = sent;
	r->reader = !ping;
	msgq_init(&r->q);
	r->h.s.req = r;
	r->w.s.req = r;
	if (idmap_put(sent ? &p->sent : &p->received, id, r) < 0) {
		req_free(r);
		return NULL;
	}
	r->in_table = true;
	if (!ping)
		conn_handle_ref_locked(&p->conn);
	return r;
}

/* Under mu: the id of a new sent request, counting up from the last one
 * and skipping ids still open (pings too: they share the table). */
static uint32_t next_sent_id_locked(struct pier_peer *p)
{
	while (idmap_get(&p->sent, p->next_id))
		p->next_id++;
	return p->next_id++;
}

int req_new_sent_locked(struct pier_peer *p, int32_t service, struct req **out)
{
	/* A ping in flight is not the application's. */
	if (p->sent.count - (p->ping != NULL) >= p->conn.cfg.max_open)
		return -PIER_EREQLIMIT;
	*out = req_new_locked(p, next_sent_id_locked(p), service, true, false);
	return *out ? 0 : -ENOMEM;
}

void req_close_locked(struct req *r)
{
	if (r->in_table) {
		idmap_del(r->sent ? &r->peer->sent : &r->peer->received, r->id);
		r->in_table = false;
		if (!r->sent && r->peer->request_closed)
			r->peer->request_closed(r->peer);
	}
}

void req_release_locked(struct req *r, bool reader, bool *conn_last)
{
	struct pier_peer *p = r->peer;
	struct conn *c = &p->conn;
	bool last = false;

	if (reader) {
		r->reader = false;
		route_drain_locked(p, &r->q);
	} else {
		assert(r->writers > 0);
		r->writers--;
	}
	if (r->reader || r->writers)
		return;
	if (!r->sent && !r->q.finished && !r->responding && !c->error) {
		struct pier_header h = { PIER_MSG_RESPONSE, r->id, PIER_SERVICE_ERROR };
		struct iovec v;
		struct conn_body b = conn_body_one(&v, UNANSWERED, strlen(UNANSWERED));

		conn_answer_locked(c, &h, &b);
		r->q.finished = true;
	}
	if (!r->sent)
		req_close_locked(r);
	if (!r->in_table)
		req_free(r);
	conn_handle_unref_locked(c, conn_last ? conn_last : &last);
	/* Without conn_last, the caller holds another handle of c. */
	assert(conn_last || !last);
}

void req_release(struct req *r, bool reader)
{
	struct conn *c = &r->peer->conn;
	bool last = false;

	pthread_mutex_lock(&c->mu);
	req_release_locked(r, reader, &last);
	pthread_mutex_unlock(&c->mu);
	if (last)
		conn_release_last(c);
}

int req_refuse(struct req *r, const char *why)
{
	struct pier_header h = { PIER_MSG_RESPONSE, r->id, PIER_SERVICE_ERROR };
	struct conn *c = &r->peer->conn;
	struct iovec v;
	struct conn_body b = conn_body_one(&v, why, strlen(why));
	int e;

	pthread_mutex_lock(&c->mu);
	e = r->q.finished || r->responding ? -PIER_EDONE : c->error;
	if (e == 0)
		e = conn_answer_locked(c, &h, &b);
	if (e == 0) {
		r->q.finished = true;
		req_close_locked(r);
		msgq_changed_locked(c, &r->q);
	}
	pthread_mutex_unlock(&c->mu);
	return e;
}

/* --- latest-only streams ------------------------------------------------- */

static struct latest *latest_of(struct pier_peer *p, int32_t service)
{
	for (unsigned int i = 0; i < p->nlatest; i++)
		if (p->latest[i].service == service)
			return &p->latest[i];
	return NULL;
}

/* Under mu: m, the oldest message of its latest-only stream, leaves the
 * peer's queue (taken by the application, or dropped). */
static void latest_forget(struct pier_msg *m)
{
	struct latest *l = m->latest;

	assert(l->oldest == m && l->count > 0);
	l->oldest = m->latest_next;
	if (!l->oldest)
		l->newest_next = &l->oldest;
	l->count--;
	m->latest = NULL;
	m->latest_next = NULL;
}

/* Under mu: m, a message of the latest-only stream l, joins the peer's
 * queue.  When l has keep messages there already, the oldest is dropped
 * first, so that it stops counting against the receive limits before m
 * does: a flood of l never pauses reading. */
static void latest_append_locked(struct pier_peer *p, struct latest *l, struct pier_msg *m)
{
	if (l->count == l->keep) {
		struct pier_msg *old = l->oldest;

		latest_forget(old);
		msgq_remove_locked(&p->conn, &p->in, old);
		conn_count(&p->conn, PIER_STAT_SUPERSEDED, 1);
		msg_free(old);
	}
	m->latest = l;
	m->latest_next = NULL;
	*l->newest_next = m;
	l->newest_next = &m->latest_next;
	l->count++;
	msgq_append_locked(&p->conn, &p->in, m);
}

/* Under mu: the first message of q (the peer's or a request's), or NULL. */
static struct pier_msg *take_locked(struct pier_peer *p, struct msgq *q)
{
	struct pier_msg *m = msgq_pop_locked(&p->conn, q);

	if (m && m->latest)
		latest_forget(m);
	return m;
}

struct pier_msg *route_take_locked(struct pier_peer *p)
{
	return take_locked(p, &p->in);
}

void route_drain_locked(struct pier_peer *p, struct msgq *q)
{
	struct pier_msg *m;

	while ((m = take_locked(p, q)) != NULL) {
		if (m->req)
			req_release_locked(m->req, true, NULL);
		msg_free(m);
	}
}

/* --- pings --------------------------------------------------------------- */

/* Whether m is a ping this side answers (pier_config_set_ping()). */
static bool is_ping(const struct pier_peer *p, const struct pier_msg *m)
{
	return p->conn.cfg.ping_interval_ms >= 0 && m->hdr.service_id == p->conn.cfg.ping_service;
}

/* The body of a ping and of its answer: none. */
static const struct conn_body no_body = { NULL, 0, 0 };

/* Answers a ping at once, with an empty response; takes m. */
static void answer_ping_locked(struct pier_peer *p, struct pier_msg *m)
{
	struct pier_header h = { PIER_MSG_RESPONSE, m->hdr.request_id, m->hdr.service_id };

	conn_count(&p->conn, PIER_STAT_PINGS_RECEIVED, 1);
	conn_answer_locked(&p->conn, &h, &no_body);
	msg_free(m);
}

/* The answer to our ping (or an update on it, which means nothing):
 * takes m. */
static void ping_answered_locked(struct pier_peer *p, struct pier_msg *m)
{
	struct req *r = p->ping;

	if (m->hdr.type == PIER_MSG_RESPONSE) {
		req_close_locked(r);
		req_free(r);
		p->ping = NULL;
		conn_count(&p->conn, PIER_STAT_PINGS_ANSWERED, 1);
	}
	msg_free(m);
}

/* The connection asks for a ping: a request on the ping service, its id
 * from the table of sent requests like any other's, sent without waiting
 * (the loop must not), one at a time. */
static void route_ping(struct conn *c)
{
	struct pier_peer *p = peer_of(c);
	struct pier_header h = { PIER_MSG_REQUEST, 0, c->cfg.ping_service };
	struct req *r;

	pthread_mutex_lock(&c->mu);
	if (p->ping || c->error)
		goto out;
	r = req_new_locked(p, next_sent_id_locked(p), h.service_id, true, true);
	if (!r)
		goto out; /* the next run of the timer tries again */
	h.request_id = r->id;
	if (conn_send(c, &h, &no_body, NULL, 0, true) < 0) {
		req_close_locked(r);
		req_free(r);
		goto out;
	}
	p->ping = r;
	conn_count(c, PIER_STAT_PINGS_SENT, 1);
out:
	pthread_mutex_unlock(&c->mu);
}

/* --- routing (by whoever reads) ------------------------------------------ */

/* Answers a request nobody will see with an error response. */
static void refuse_locked(struct pier_peer *p, uint32_t id, const char *why)
{
	struct pier_header h = { PIER_MSG_RESPONSE, id, PIER_SERVICE_ERROR };
	struct iovec v;
	struct conn_body b = conn_body_one(&v, why, strlen(why));

	conn_answer_locked(&p->conn, &h, &b);
}

static void drop(struct pier_peer *p, struct pier_msg *m, enum pier_stat why)
{
	conn_count(&p->conn, why, 1);
	msg_free(m);
}

/* Routing one message of a batch: what joins the peer's own queue is
 * appended quietly (*to_in set), and its waiters told once, after the
 * batch. */
static void route_request_locked(struct pier_peer *p, struct pier_msg *m, bool *to_in)
{
	struct req *r;

	if (idmap_get(&p->received, m->hdr.request_id)) {
		/* Answering would hit the open request of that id. */
		drop(p, m, PIER_STAT_DUPLICATE_IDS);
		return;
	}
	if (is_ping(p, m)) {
		answer_ping_locked(p, m);
		return;
	}
	if (!p->reader) {
		conn_count(&p->conn, PIER_STAT_DROPPED, 1);
		refuse_locked(p, m->hdr.request_id, "the peer does not receive requests");
		msg_free(m);
		return;
	}
	if (p->received.count >= p->conn.cfg.max_open) {
		conn_count(&p->conn, PIER_STAT_REFUSED_REQUESTS, 1);
		refuse_locked(p, m->hdr.request_id, "too many open requests");
		msg_free(m);
		return;
	}
	r = req_new_locked(p, m->hdr.request_id, m->hdr.service_id, false, false);
	if (!r) {
		refuse_locked(p, m->hdr.request_id, "out of memory");
		msg_free(m);
		return;
	}
	m->req = r;
	msgq_append_locked(&p->conn, &p->in, m);
	*to_in = true;
}

static void route_to_request_locked(struct pier_peer *p, struct pier_msg *m, struct idmap *table)
{
	struct req *r = idmap_get(table, m->hdr.request_id);
	bool response = m->hdr.type == PIER_MSG_RESPONSE;

	if (!r) {
		drop(p, m, PIER_STAT_UNKNOWN_IDS);
		return;
	}
	if (r == p->ping) {
		ping_answered_locked(p, m);
		return;
	}
	if (response) {
		idmap_del(table, r->id);
		r->in_table = false;
		r->q.finished = true;
	}
	if (r->reader) {
		msgq_push_locked(&p->conn, &r->q, m);
		return;
	}
	/* The application let go of this request: drop quietly. */
	drop(p, m, PIER_STAT_DROPPED);
	if (response && !r->writers)
		req_free(r);
}

static void route_locked(struct pier_peer *p, struct pier_msg *m, bool *to_in)
{
	struct latest *l;

	switch (m->hdr.type) {
	case PIER_MSG_REQUEST:
		route_request_locked(p, m, to_in);
		break;
	case PIER_MSG_RESPONSE:
	case PIER_MSG_RESPONDER_UPDATE:
		route_to_request_locked(p, m, &p->sent);
		break;
	case PIER_MSG_REQUESTER_UPDATE:
		route_to_request_locked(p, m, &p->received);
		break;
	case PIER_MSG_STREAM:
		if (!p->reader) {
			drop(p, m, PIER_STAT_DROPPED);
			break;
		}
		if (p->nlatest && (l = latest_of(p, m->hdr.service_id)))
			latest_append_locked(p, l, m);
		else
			msgq_append_locked(&p->conn, &p->in, m);
		*to_in = true;
		break;
	}
}

/* --- what the connection calls ------------------------------------------- */

static bool route_deliver(struct conn *c, struct pier_msg *list)
{
	struct pier_peer *p = peer_of(c);
	uint64_t n = 0, bytes = 0;
	bool more, to_in = false;

	/* Counted before any of them can be seen. */
	for (struct pier_msg *m = list; m; m = m->next) {
		n++;
		bytes += m->len;
	}
	conn_count(c, PIER_STAT_MSGS_RECEIVED, n);
	conn_count(c, PIER_STAT_BYTES_RECEIVED, bytes);
	pthread_mutex_lock(&c->mu);
	while (list) {
		struct pier_msg *m = list;

		list = m->next;
		m->next = NULL;
		route_locked(p, m, &to_in);
	}
	if (to_in)
		msgq_changed_locked(c, &p->in);
	more = c->pause == PAUSE_NONE;
	pthread_mutex_unlock(&c->mu);
	return more;
}

static void wake_req(void *value, void *ctx)
{
	struct req *r = value;

	msgq_changed_locked(&r->peer->conn, &r->q);
}

static void route_ended_locked(struct conn *c)
{
	struct pier_peer *p = peer_of(c);

	msgq_changed_locked(c, &p->in);
	idmap_each(&p->sent, wake_req, NULL);
	idmap_each(&p->received, wake_req, NULL);
}

static void free_req(void *value, void *ctx)
{
	req_free(value);
}

void route_in_notify(struct pier_peer *p, void (*fn)(void *data), void *data)
{
	pthread_mutex_lock(&p->conn.mu);
	msgq_notify_locked(&p->conn, &p->in, fn, data);
	pthread_mutex_unlock(&p->conn.mu);
}

bool route_in_ready(struct pier_peer *p)
{
	bool ready;

	pthread_mutex_lock(&p->conn.mu);
	ready = msgq_ready_locked(&p->conn, &p->in);
	pthread_mutex_unlock(&p->conn.mu);
	return ready;
}

static void route_destroy(struct conn *c)
{
	struct pier_peer *p = peer_of(c);

	route_drain_locked(p, &p->in); /* nothing else can reach it now */
	idmap_each(&p->sent, free_req, NULL);
	idmap_each(&p->received, free_req, NULL);
	idmap_fini(&p->sent);
	idmap_fini(&p->received);
	while (p->spare) {
		struct req *r = p->spare;

		p->spare = r->next_spare;
		free(r);
	}
	msgq_fini(&p->in);
	free(p->latest);
	free(p);
}

static const struct conn_ops route_ops = {
	.deliver = route_deliver,
	.ended_locked = route_ended_locked,
	.destroy = route_destroy,
	.ping = route_ping,
};

/* The latest-only streams cfg names, for p: 0 or -ENOMEM. */
static int latest_init(struct pier_peer *p, const struct pier_config *cfg)
{
	if (!cfg->nlatest)
		return 0;
	p->latest = calloc(cfg->nlatest, sizeof(*p->latest));
	if (!p->latest)
		return -ENOMEM;
	p->nlatest = cfg->nlatest;
	for (unsigned int i = 0; i < p->nlatest; i++) {
		struct latest *l = &p->latest[i];

		l->service = cfg->latest[i].service;
		l->keep = cfg->latest[i].keep;
		l->newest_next = &l->oldest;
	}
	return 0;
}

int route_peer_new(struct pier_peer **out, int fd, const struct transport *t,
		   const struct pier_config *cfg, struct pier_loop *loop, struct tls *tls)
{
	struct pier_peer *p = calloc(1, sizeof(*p));
	int r;

	if (!p)
		return -ENOMEM;
	r = latest_init(p, cfg);
	if (r == 0)
		r = conn_init(&p->conn, fd, t, cfg, loop, tls, &route_ops);
	if (r < 0) {
		free(p->latest);
		free(p);
		return r;
	}
	p->writer.peer = p;
	p->reader = true;
	p->conn.handles = 1;
	/* A latest-only stream is read while the application is busy, so
	 * that its sender never waits for a slow consumer: the loop reads
	 * whenever no thread does.  Nobody else sees the connection yet. */
	if (p->nlatest)
		p->conn.rd_background = true;
	idmap_init(&p->sent);
	idmap_init(&p->received);
	msgq_init(&p->in);
	*out = p;
	return 0;
}
