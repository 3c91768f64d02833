/* SPDX-License-Identifier: MIT */
/*
 * A broker on pier_server (broker.h; the protocol and its bounds are in
 * examples/README.md, "The broker").
 *
 * Everything runs on the server's workers.  A client's request is
 * forwarded to a worker in its handler, which keeps the client's request
 * (PIER_HANDLER_KEEP) and returns: from then on the relay costs no thread.
 * Two one-shot watches (pier_server_watch()) wait for the two sides, one
 * on the client's request (its updates, or its end) and one on the
 * request sent to the worker (its updates and response, or its end); each
 * takes what is there without waiting, relays it, and watches again.  The
 * first side to end ends the relay for both: the client gets the worker's
 * response or an error response, the worker a BROKER_CANCELLED update when
 * it had not answered, and the watch left is cancelled.
 *
 * No thread of the server ever waits for a peer: the broker's connections
 * have a send timeout of 0, so a send that finds a peer's send queue full
 * fails at once with -EAGAIN.  A relayed message is never dropped quietly
 * (its request ends with an error instead); a stream message's copy for a
 * subscriber that does not read is dropped, and counted.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

/* Workers one request is offered to before the client gets an error. */
#define MAX_TRIES 8
/* The most fds a message can carry (Linux's SCM_MAX_FD). */
#define MAX_FDS 253
/* Subscribers of one topic reached without an allocation. */
#define FANOUT_LOCAL 16
/* What a peer's received messages may hold at the broker (the library's
 * default; pier_config_set_max_queued() sets it with the send queue). */
#define RECV_QUEUE (4u << 20)

static const struct broker_limits defaults = {
	.workers = 4,
	.max_peers = 1024,
	.max_requests = 64,
	.max_forwarded = 1024,
	.max_services = 64,
	.max_topics = 256,
	.send_queue = 4u << 20,
	.send_fds = 64,
};

/* A connected peer: client, worker, subscriber, or all three. */
struct bpeer {
	pier_writer *w;        /* a reference of its own: sends from any worker */
	atomic_int refs;       /* the server's (until the peer is gone), relays', fan-outs' */
	atomic_uint forwarded; /* relays to it not ended: how busy it is as a worker */
	/* Under broker.mu. */
	unsigned int nservices, ntopics;
};

/* Peer p serves service id (or is subscribed to topic) id. */
struct entry {
	int32_t id;
	struct bpeer *p; /* no reference: a peer's entries go before it does */
};

struct table {
	struct entry *v; /* sorted by id, then by peer */
	size_t n, cap;
};

struct broker {
	pier_server *s; /* owned */
	enum pier_byte_order order;
	struct broker_limits lim;
	atomic_uint_fast64_t stats[BROKER_STAT_END_];
	pthread_mutex_t mu; /* the tables, the peers' counts, next */
	struct table services, topics;
	unsigned int next; /* where the next choice starts among equals */
};

/* A request relayed between a client and a worker. */
struct relay {
	broker *b;
	pier_received_request *creq; /* the client's, kept: owned */
	pier_sent_request *wreq;     /* the one sent to the worker: owned */
	struct bpeer *worker;        /* a reference */
	int32_t service;
	pthread_mutex_t mu; /* what follows */
	int refs; /* one per watch that will run, and the handler's while it sets up */
	uint64_t cwatch, wwatch; /* the watches of the client's and the worker's side */
	bool over; /* ended: nothing more is relayed, and no watch made */
};

static void count(broker *b, enum broker_stat st)
{
	atomic_fetch_add_explicit(&b->stats[st], 1, memory_order_relaxed);
}

static void bpeer_unref(struct bpeer *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	pier_writer_unref(p->w);
	free(p);
}

/* The fds of m into fds (borrowed from m); returns how many. */
static size_t msg_fds(const pier_msg *m, int *fds)
{
	size_t n = pier_msg_fd_count(m);

	for (size_t i = 0; i < n; i++)
		fds[i] = pier_msg_fd(m, i);
	return n;
}

/* Why a send failed, for an error response. */
static const char *send_failure(int r)
{
	if (r == -EAGAIN)
		return "it does not read (its queue at the broker is full)";
	return pier_strerror(r);
}

/* --- tables --------------------------------------------------------------- */

static int entry_cmp(int32_t id, const struct bpeer *p, const struct entry *e)
{
	if (id != e->id)
		return id < e->id ? -1 : 1;
	return p == e->p ? 0 : (uintptr_t)p < (uintptr_t)e->p ? -1 : 1;
}

/* The index of the first entry not below (id, p); p NULL: id's first. */
static size_t lower(const struct table *t, int32_t id, const struct bpeer *p)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (entry_cmp(id, p, &t->v[mid]) > 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The entries of id: [*first, returned). */
static size_t range(const struct table *t, int32_t id, size_t *first)
{
	size_t i = *first = lower(t, id, NULL);

	while (i < t->n && t->v[i].id == id)
		i++;
	return i;
}

static bool table_has(const struct table *t, int32_t id, const struct bpeer *p)
{
	size_t i = lower(t, id, p);

	return i < t->n && t->v[i].id == id && t->v[i].p == p;
}

/* Adds (id, p), which is not there: 0 or -ENOMEM. */
static int table_add(struct table *t, int32_t id, struct bpeer *p)
{
	size_t i = lower(t, id, p);

	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		struct entry *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = (struct entry){ id, p };
	t->n++;
	return 0;
}

/* Removes (id, p); returns whether it was there. */
static bool table_del(struct table *t, int32_t id, const struct bpeer *p)
{
	size_t i = lower(t, id, p);

	if (i == t->n || t->v[i].id != id || t->v[i].p != p)
		return false;
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
	t->n--;
	return true;
}

static void table_drop_peer(struct table *t, const struct bpeer *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].p != p)
			t->v[kept++] = t->v[i];
	t->n = kept;
}

/* --- control requests ----------------------------------------------------- */

static int32_t get_i32(const unsigned char *at, enum pier_byte_order order)
{
	uint32_t v;

	memcpy(&v, at, sizeof(v));
	if (order == PIER_BYTE_ORDER_LITTLE)
		v = le32toh(v);
	else if (order == PIER_BYTE_ORDER_BIG)
		v = be32toh(v);
	return (int32_t)v;
}

size_t broker_encode_ids(void *buf, const int32_t *ids, size_t n, enum pier_byte_order order)
{
	unsigned char *at = buf;

	for (size_t i = 0; i < n; i++) {
		uint32_t v = (uint32_t)ids[i];

		if (order == PIER_BYTE_ORDER_LITTLE)
			v = htole32(v);
		else if (order == PIER_BYTE_ORDER_BIG)
			v = htobe32(v);
		memcpy(at + 4 * i, &v, sizeof(v));
	}
	return 4 * n;
}

/* Ids the error responses' and the broker's: no worker may register them,
 * and no update may be on one. */
static bool reserved(int32_t id)
{
	return id <= PIER_SERVICE_ERROR && id >= BROKER_RESERVED_LOW;
}

static bool seen_before(const int32_t *ids, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (ids[j] == ids[i])
			return true;
	return false;
}

/* Under b->mu: adds p's entries for ids[0..n) to t (those it has are
 * kept), within limit entries of p's in all (*have): 0, or -1 with why. */
static int add_ids(struct table *t, struct bpeer *p, unsigned int *have, unsigned int limit,
		   const int32_t *ids, size_t n, const char *what, char *why, size_t size)
{
	size_t more = 0;

	for (size_t i = 0; i < n; i++)
		more += !table_has(t, ids[i], p) && !seen_before(ids, i);
	if (*have + more > limit) {
		snprintf(why, size, "a peer may have at most %u %s (this one has %u, and asked for "
			 "%zu more)", limit, what, *have, more);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (table_has(t, ids[i], p))
			continue;
		if (table_add(t, ids[i], p) < 0) {
			snprintf(why, size, "the broker is out of memory");
			return -1;
		}
		++*have;
	}
	return 0;
}

/* Register, unregister, subscribe, unsubscribe: the body is the ids. */
static int h_control(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	broker *b = ud;
	struct bpeer *p = pd;
	int32_t op = pier_msg_header(m)->service_id;
	bool topics = op == BROKER_SUBSCRIBE || op == BROKER_UNSUBSCRIBE;
	bool add = op == BROKER_REGISTER || op == BROKER_SUBSCRIBE;
	const char *what = topics ? "topic ids" : "service ids";
	unsigned int limit = topics ? b->lim.max_topics : b->lim.max_services;
	struct table *t = topics ? &b->topics : &b->services;
	unsigned int *have = topics ? &p->ntopics : &p->nservices;
	size_t len, n;
	const unsigned char *body = pier_msg_body(m, &len);
	int32_t *ids = NULL;
	char why[200] = "";

	n = len / 4;
	if (len == 0) {
		snprintf(why, sizeof(why), "the body lists no %s: give at least one (int32, 4 "
			 "bytes each, in the connection's byte order)", what);
	} else if (len % 4) {
		snprintf(why, sizeof(why), "the body is no list of %s: %zu bytes are not a whole "
			 "number of int32 of 4 bytes", what, len);
	} else if (n > limit) {
		/* Refused before any work: a peer cannot make the broker
		 * decode more than its limit. */
		snprintf(why, sizeof(why), "%zu %s in one request, over the limit of %u a peer may "
			 "have", n, what, limit);
	} else if (!(ids = malloc(n * sizeof(*ids)))) {
		snprintf(why, sizeof(why), "the broker is out of memory");
	}
	for (size_t i = 0; ids && !*why && i < n; i++) {
		ids[i] = get_i32(body + 4 * i, b->order);
		if (!topics && add && reserved(ids[i]))
			snprintf(why, sizeof(why), "service id %d is reserved: ids %d to %d are the "
				 "broker's own", (int)ids[i], BROKER_RESERVED_LOW, PIER_SERVICE_ERROR);
	}
	if (!*why) {
		pthread_mutex_lock(&b->mu);
		if (add) {
			add_ids(t, p, have, limit, ids, n, what, why, sizeof(why));
		} else {
			for (size_t i = 0; i < n; i++)
				*have -= table_del(t, ids[i], p);
		}
		pthread_mutex_unlock(&b->mu);
	}
	free(ids);
	if (*why)
		pier_received_request_send_error(req, why);
	else
		pier_received_request_send_response(req, op, NULL, 0, NULL, 0);
	return PIER_HANDLER_DONE;
}

/* --- relays --------------------------------------------------------------- */

static void relay_unref(struct relay *rl)
{
	bool last;

	pthread_mutex_lock(&rl->mu);
	last = --rl->refs == 0;
	pthread_mutex_unlock(&rl->mu);
	if (!last)
		return;
	/* No watch is left on their fds.  An unanswered client (its
	 * answer could not be queued) gets the library's error response. */
	pier_received_request_free(rl->creq);
	pier_sent_request_free(rl->wreq);
	atomic_fetch_sub(&rl->worker->forwarded, 1);
	bpeer_unref(rl->worker);
	atomic_fetch_sub(&rl->b->stats[BROKER_STAT_RELAYS], 1);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

/* Relays the worker's response m to the client. */
static void relay_response(struct relay *rl, pier_msg *m)
{
	int fds[MAX_FDS];
	size_t nfds = msg_fds(m, fds), len;
	const void *body = pier_msg_body(m, &len);
	char why[200];
	int r;

	r = pier_received_request_send_response(rl->creq, pier_msg_header(m)->service_id, body,
						len, fds, nfds);
	if (r == 0) {
		count(rl->b, BROKER_STAT_RESPONSES);
		return;
	}
	count(rl->b, BROKER_STAT_BROKEN); /* not relayed: the client is gone, or why */
	if (r != -PIER_EDONE) {
		snprintf(why, sizeof(why), "the worker's response could not be relayed: %s",
			 pier_strerror(r));
		pier_received_request_send_error(rl->creq, why);
	}
}

/*
 * Ends rl, once: the client gets the worker's response (NULL: the error
 * client_why; NULL too: nothing, its request is over), the worker a
 * BROKER_CANCELLED update saying worker_why (NULL: nothing, it answered
 * or is gone), and the watches left are cancelled.  A watch of rl that
 * runs meanwhile finds it over and lets go.  The caller holds a
 * reference.
 */
static void relay_end(struct relay *rl, pier_msg *response, const char *client_why,
		      const char *worker_why)
{
	uint64_t watches[2];
	bool first;

	pthread_mutex_lock(&rl->mu);
	first = !rl->over;
	rl->over = true;
	watches[0] = rl->cwatch;
	watches[1] = rl->wwatch;
	pthread_mutex_unlock(&rl->mu);
	if (!first)
		return;
	if (response) {
		relay_response(rl, response);
	} else {
		count(rl->b, BROKER_STAT_BROKEN);
		if (client_why)
			pier_received_request_send_error(rl->creq, client_why);
	}
	if (worker_why)
		pier_sent_request_send_update(rl->wreq, BROKER_CANCELLED, worker_why,
					      strlen(worker_why), NULL, 0);
	/* The watch of the caller, if it is one, ran: -ENOENT. */
	for (int i = 0; i < 2; i++)
		if (watches[i] && pier_server_unwatch(rl->b->s, watches[i]) == 0)
			relay_unref(rl);
}

static void client_step(void *ud, int status);
static void worker_step(void *ud, int status);

/* Under rl->mu: watches the client's side (or the worker's). */
static int watch_locked(struct relay *rl, bool client)
{
	int fd = client ? pier_received_request_fd(rl->creq) : pier_sent_request_fd(rl->wreq);
	uint64_t *id = client ? &rl->cwatch : &rl->wwatch;
	int r;

	r = pier_server_watch(rl->b->s, fd, client ? client_step : worker_step, rl, id);
	if (r < 0)
		*id = 0;
	return r;
}

/* A step's watch again, unless rl is over: 0 when made (the step's
 * reference is the new watch's). */
static int rewatch(struct relay *rl, bool client)
{
	int r = -PIER_EDONE;

	pthread_mutex_lock(&rl->mu);
	if (!rl->over)
		r = watch_locked(rl, client);
	pthread_mutex_unlock(&rl->mu);
	return r;
}

/* A client's update m, to the worker. */
static void to_worker(struct relay *rl, pier_msg *m)
{
	int fds[MAX_FDS];
	size_t nfds = msg_fds(m, fds), len;
	const void *body = pier_msg_body(m, &len);
	int32_t id = pier_msg_header(m)->service_id;
	char why[200], cancel[200];
	int r;

	if (reserved(id)) {
		/* Not to be taken for the broker's. */
		snprintf(why, sizeof(why), "your update is on service id %d, one of the broker's own "
			 "(%d to -1): use another id", (int)id, BROKER_RESERVED_LOW);
		snprintf(cancel, sizeof(cancel), "the broker ended the request: the client's update "
			 "is on service id %d, one of the broker's own (%d to -1)", (int)id,
			 BROKER_RESERVED_LOW);
		relay_end(rl, NULL, why, cancel);
		return;
	}
	r = pier_sent_request_send_update(rl->wreq, pier_msg_header(m)->service_id, body, len,
					  fds, nfds);
	if (r == 0) {
		count(rl->b, BROKER_STAT_UPDATES);
		return;
	}
	/* -PIER_EDONE: the worker answered already; the update came too
	 * late, as it would have without a broker. */
	if (r == -PIER_EDONE)
		return;
	snprintf(why, sizeof(why), "an update could not be relayed to the worker: %s",
		 send_failure(r));
	relay_end(rl, NULL, why, "the broker ended the request: an update of the client could "
		  "not be relayed");
}

/* A worker's update m, to the client. */
static void to_client(struct relay *rl, pier_msg *m)
{
	int fds[MAX_FDS];
	size_t nfds = msg_fds(m, fds), len;
	const void *body = pier_msg_body(m, &len);
	int32_t id = pier_msg_header(m)->service_id;
	char why[200], cancel[200];
	int r;

	if (reserved(id)) {
		snprintf(why, sizeof(why), "the worker's update is on service id %d, one of the "
			 "broker's own (%d to -1)", (int)id, BROKER_RESERVED_LOW);
		snprintf(cancel, sizeof(cancel), "the broker ended the request: your update is on "
			 "service id %d, one of the broker's own (%d to -1): use another id", (int)id,
			 BROKER_RESERVED_LOW);
		relay_end(rl, NULL, why, cancel);
		return;
	}
	r = pier_received_request_send_update(rl->creq, pier_msg_header(m)->service_id, body, len,
					      fds, nfds);
	if (r == 0) {
		count(rl->b, BROKER_STAT_UPDATES);
		return;
	}
	if (r == -PIER_EDONE)
		return; /* the client's request ended: the relay ends too */
	snprintf(why, sizeof(why), "an update of the worker could not be relayed to you: %s",
		 send_failure(r));
	relay_end(rl, NULL, why, "the broker ended the request: an update could not be relayed "
		  "to the client");
}

/* The client's side: its updates, or its end. */
static void client_step(void *ud, int status)
{
	struct relay *rl = ud;
	pier_msg *m;
	int r = status;

	while (r == 0 && (r = pier_received_request_recv_update(rl->creq, &m, 0)) == 0) {
		to_worker(rl, m);
		pier_msg_free(m);
	}
	if (r == -EAGAIN) {
		r = rewatch(rl, true);
		if (r == 0)
			return;
		if (r != -PIER_EDONE)
			relay_end(rl, NULL, "the broker cannot watch the request any more",
				  "the broker ended the request: it cannot watch it any more");
	} else if (r == -PIER_EDONE || r == -PIER_ESHUTDOWN) {
		/* Answered (by the relay, which is over then, or by the
		 * server's stop), or the server stopped. */
		relay_end(rl, NULL, NULL, "the broker stopped before the request finished");
	} else {
		relay_end(rl, NULL, NULL, "the client disconnected");
	}
	relay_unref(rl);
}

/* The worker's side: its updates and response, or its end. */
static void worker_step(void *ud, int status)
{
	struct relay *rl = ud;
	char why[200];
	pier_msg *m;
	int r = status;

	while (r == 0 && (r = pier_sent_request_recv(rl->wreq, &m, 0)) == 0) {
		if (pier_msg_header(m)->type == PIER_MSG_RESPONSE) {
			relay_end(rl, m, NULL, NULL);
			r = -PIER_EDONE;
		} else {
			to_client(rl, m);
		}
		pier_msg_free(m);
	}
	if (r == -EAGAIN) {
		r = rewatch(rl, false);
		if (r == 0)
			return;
		if (r != -PIER_EDONE)
			relay_end(rl, NULL, "the broker cannot watch the request any more",
				  "the broker ended the request: it cannot watch it any more");
	} else if (r == -PIER_ESHUTDOWN) {
		/* The server stopped (and answered the client): this watch may
		 * run before the client's, which would cancel the worker. */
		relay_end(rl, NULL, NULL, "the broker stopped before the request finished");
	} else if (r != -PIER_EDONE) {
		snprintf(why, sizeof(why), "the worker serving service id %d disconnected before it "
			 "answered (%s)", (int)rl->service, pier_strerror(r));
		relay_end(rl, NULL, why, NULL);
	}
	relay_unref(rl);
}

/* --- forwarding ----------------------------------------------------------- */

static bool in(struct bpeer *const *list, unsigned int n, const struct bpeer *p)
{
	for (unsigned int i = 0; i < n; i++)
		if (list[i] == p)
			return true;
	return false;
}

/* The worker for service id, not one of tried: of those registered, the
 * one with the fewest requests forwarded, the first after the last
 * choice among equals; NULL when none can take one (*full: some are at
 * their limit).  Returns a reference, counted as forwarded to. */
static struct bpeer *choose(broker *b, int32_t id, struct bpeer *const *tried,
			    unsigned int ntried, bool *full)
{
	struct bpeer *best = NULL;
	unsigned int least = 0;
	size_t first, end, n;

	pthread_mutex_lock(&b->mu);
	end = range(&b->services, id, &first);
	n = end - first;
	for (size_t k = 0, start = n ? b->next++ % n : 0; k < n; k++) {
		struct bpeer *p = b->services.v[first + (start + k) % n].p;
		unsigned int f = atomic_load(&p->forwarded);

		if (in(tried, ntried, p))
			continue;
		if (f >= b->lim.max_forwarded) {
			*full = true;
			continue;
		}
		if (!best || f < least) {
			best = p;
			least = f;
		}
	}
	if (best) {
		atomic_fetch_add(&best->forwarded, 1);
		atomic_fetch_add(&best->refs, 1);
	}
	pthread_mutex_unlock(&b->mu);
	return best;
}

/* Offers the request m to the workers of its service id until one takes
 * it: 0 with *worker (a reference) and *wreq, or -1 with why. */
static int forward(broker *b, const pier_msg *m, struct bpeer **worker,
		   pier_sent_request **wreq, char *why, size_t size)
{
	int32_t id = pier_msg_header(m)->service_id;
	struct bpeer *tried[MAX_TRIES];
	unsigned int ntried = 0;
	int fds[MAX_FDS], r = 0;
	size_t nfds = msg_fds(m, fds), len;
	const void *body = pier_msg_body(m, &len);
	bool full = false, taken = false;

	while (!taken && ntried < MAX_TRIES) {
		struct bpeer *p = choose(b, id, tried, ntried, &full);

		if (!p)
			break;
		r = pier_writer_send_request(p->w, id, body, len, fds, nfds, wreq);
		if (r == 0) {
			*worker = p;
			taken = true;
			continue;
		}
		/* Gone (its disconnect hook unregisters it), not reading, or
		 * unable to carry this: the next one may. */
		atomic_fetch_sub(&p->forwarded, 1);
		tried[ntried++] = p; /* still a reference: not taken again */
	}
	for (unsigned int i = 0; i < ntried; i++)
		bpeer_unref(tried[i]);
	if (taken)
		return 0;
	if (ntried)
		snprintf(why, size, "no worker of service id %d could take the request: %s",
			 (int)id, send_failure(r));
	else if (full)
		snprintf(why, size, "every worker of service id %d has %u requests in flight, the "
			 "broker's limit", (int)id, b->lim.max_forwarded);
	else
		snprintf(why, size, "no worker serves service id %d", (int)id);
	return -1;
}

/* Every request on an id that is not the broker's own. */
static int h_forward(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	broker *b = ud;
	struct relay *rl = calloc(1, sizeof(*rl));
	char why[200];
	bool watched;

	if (!rl) {
		pier_received_request_send_error(req, "the broker is out of memory");
		return PIER_HANDLER_DONE;
	}
	/* Counted before the worker can have it: once it has, the relay is
	 * counted until it ends. */
	atomic_fetch_add(&b->stats[BROKER_STAT_RELAYS], 1);
	if (forward(b, m, &rl->worker, &rl->wreq, why, sizeof(why)) < 0) {
		count(b, BROKER_STAT_NO_WORKER);
		atomic_fetch_sub(&b->stats[BROKER_STAT_RELAYS], 1);
		pier_received_request_send_error(req, why);
		free(rl);
		return PIER_HANDLER_DONE;
	}
	count(b, BROKER_STAT_FORWARDED);
	rl->b = b;
	rl->creq = req;
	rl->service = pier_msg_header(m)->service_id;
	pthread_mutex_init(&rl->mu, NULL);
	/* Held while both watches are made: a step that runs meanwhile
	 * waits here before it can end the relay. */
	pthread_mutex_lock(&rl->mu);
	rl->refs = 1;
	watched = watch_locked(rl, true) == 0;
	rl->refs += watched;
	if (watched && watch_locked(rl, false) == 0)
		rl->refs++;
	else
		watched = false;
	pthread_mutex_unlock(&rl->mu);
	if (!watched)
		relay_end(rl, NULL, "the broker cannot watch the request",
			  "the broker ended the request: it cannot watch it");
	relay_unref(rl);
	return PIER_HANDLER_KEEP;
}

/* --- topics --------------------------------------------------------------- */

/* A stream message on any id: a copy to every subscriber of that topic,
 * never waiting for one. */
static void h_publish(void *ud, pier_peer *peer, void *pd, pier_msg *m)
{
	broker *b = ud;
	int32_t topic = pier_msg_header(m)->service_id;
	struct bpeer *local[FANOUT_LOCAL], **subs = local;
	int fds[MAX_FDS];
	size_t nfds = msg_fds(m, fds), len, first, n;
	const void *body = pier_msg_body(m, &len);

	count(b, BROKER_STAT_PUBLISHED);
	pthread_mutex_lock(&b->mu);
	n = range(&b->topics, topic, &first) - first;
	if (n > FANOUT_LOCAL)
		subs = malloc(n * sizeof(*subs));
	for (size_t i = 0; subs && i < n; i++) {
		subs[i] = b->topics.v[first + i].p;
		atomic_fetch_add(&subs[i]->refs, 1);
	}
	pthread_mutex_unlock(&b->mu);
	if (!subs) {
		atomic_fetch_add(&b->stats[BROKER_STAT_DROPPED], n);
		return;
	}
	/* Each send dups the fds it queues (the kernel gives each receiver
	 * its own): m keeps its own, closed after this handler. */
	for (size_t i = 0; i < n; i++) {
		int r = pier_writer_send_stream(subs[i]->w, topic, body, len, fds, nfds);

		count(b, r == 0 ? BROKER_STAT_DELIVERED : BROKER_STAT_DROPPED);
		bpeer_unref(subs[i]);
	}
	if (subs != local)
		free(subs);
}

/* --- peers and the broker ------------------------------------------------- */

static int on_connect(void *ud, pier_peer *peer, void **pd)
{
	struct bpeer *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->w = pier_writer_ref(pier_peer_get_writer(peer));
	atomic_init(&p->refs, 1);
	*pd = p;
	return 0;
}

/* No handler of the peer runs any more: its entries go, and relays and
 * fan-outs that hold it find its connection ended. */
static void on_disconnect(void *ud, pier_peer *peer, void *pd, int reason)
{
	broker *b = ud;
	struct bpeer *p = pd;

	pthread_mutex_lock(&b->mu);
	table_drop_peer(&b->services, p);
	table_drop_peer(&b->topics, p);
	pthread_mutex_unlock(&b->mu);
	bpeer_unref(p);
}

static void limits_or_defaults(struct broker_limits *l, const struct broker_limits *given)
{
	*l = given ? *given : defaults;
#define OR_DEFAULT(f) l->f = l->f ? l->f : defaults.f
	OR_DEFAULT(workers);
	OR_DEFAULT(max_peers);
	OR_DEFAULT(max_requests);
	OR_DEFAULT(max_forwarded);
	OR_DEFAULT(max_services);
	OR_DEFAULT(max_topics);
	OR_DEFAULT(send_queue);
	OR_DEFAULT(send_fds);
#undef OR_DEFAULT
}

static int configure(broker *b, pier_config *cfg)
{
	const struct broker_limits *l = &b->lim;
	unsigned int open = l->max_forwarded > l->max_requests ? l->max_forwarded : l->max_requests;
	int r;

	if ((r = pier_config_set_send_timeout(cfg, 0)) < 0 ||
	    (r = pier_config_set_byte_order(cfg, b->order)) < 0 ||
	    (r = pier_config_set_max_queued(cfg, RECV_QUEUE, l->send_queue)) < 0 ||
	    (r = pier_config_set_max_queued_fds(cfg, 0, l->send_fds)) < 0 ||
	    (r = pier_config_set_max_open_requests(cfg, open)) < 0)
		return r;
	return pier_server_new(&b->s, cfg);
}

static int serve(broker *b)
{
	static const int32_t control[] = {
		BROKER_REGISTER, BROKER_UNREGISTER, BROKER_SUBSCRIBE, BROKER_UNSUBSCRIBE,
	};
	int r;

	if ((r = pier_server_set_workers(b->s, b->lim.workers)) < 0 ||
	    (r = pier_server_set_max_peers(b->s, b->lim.max_peers)) < 0 ||
	    (r = pier_server_set_max_requests(b->s, b->lim.max_requests)) < 0 ||
	    (r = pier_server_set_peer_hooks(b->s, on_connect, on_disconnect, b)) < 0 ||
	    (r = pier_server_handle_other_requests(b->s, h_forward, b)) < 0 ||
	    (r = pier_server_handle_other_streams(b->s, h_publish, b)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(control) / sizeof(control[0]); i++)
		if ((r = pier_server_handle_requests(b->s, control[i], h_control, b)) < 0)
			return r;
	return 0;
}

int broker_new(broker **out, pier_config *cfg, enum pier_byte_order order,
	       const struct broker_limits *lim)
{
	broker *b;
	int r;

	if (!out || !cfg)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->order = order;
	limits_or_defaults(&b->lim, lim);
	pthread_mutex_init(&b->mu, NULL);
	r = configure(b, cfg);
	if (r == 0)
		r = serve(b);
	if (r < 0) {
		broker_free(b);
		return r;
	}
	*out = b;
	return 0;
}

pier_server *broker_server(broker *b)
{
	return b->s;
}

uint64_t broker_stat(broker *b, enum broker_stat stat)
{
	if (!b || (unsigned int)stat >= BROKER_STAT_END_)
		return 0;
	return atomic_load_explicit(&b->stats[stat], memory_order_relaxed);
}

void broker_free(broker *b)
{
	if (!b)
		return;
	/* Every peer is gone then (their disconnect hooks ran), and every
	 * relay (its watches ran at the stop). */
	pier_server_free(b->s);
	free(b->services.v);
	free(b->topics.v);
	pthread_mutex_destroy(&b->mu);
	free(b);
}
