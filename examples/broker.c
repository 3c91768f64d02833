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
 *
 * Registrations and subscriptions: a hash table per kind from an id to its
 * node, which lists the id's peers; each peer lists its own ids, and each
 * entry of either list knows its place in the other, so that adding,
 * removing (the last entry takes the place of the one removed) and a
 * peer's disconnect cost one step per id, whatever the tables hold.  They
 * change under a write lock; forwarding and publishing read them side by
 * side.
 *
 * fds: everything the broker passes on is charged to a budget
 * (broker_limits.fd_budget).  Nothing tells the broker when a peer has read
 * the fds sent to it, so a peer is charged for every fd passed to it, up to
 * its send_fds limit (the library never lets more wait for it), until it
 * disconnects; each relay is charged its two eventfds while it lasts.
 * What peers send the broker is bounded per peer by the library (msg_fds
 * waiting, plus the one message read past them) and left out of the
 * budget, which broker_new() sizes around it.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <syslog.h>
#include <time.h>

#include "broker.h"

/* Workers one request is offered to before the client gets an error. */
#define MAX_TRIES 8
/* The most fds a message can carry (Linux's SCM_MAX_FD): the broker reads
 * any message, so that one over msg_fds is refused with an error. */
#define MAX_FDS 253
/* Subscribers of one topic reached without an allocation. */
#define FANOUT_LOCAL 16
/* What a peer's received messages may hold at the broker (the library's
 * default; pier_config_set_max_queued() sets it with the send queue). */
#define RECV_QUEUE (4u << 20)
/* The broker's own fds, left out of the budget: standard streams, loops,
 * the server's, listeners. */
#define FIXED_FDS 64
/* A send refused because the fd budget has no room for its fds (neither
 * an errno value nor a pier code). */
#define NO_BUDGET (-(PIER_ERROR_END_ + 1))

static const struct broker_limits defaults = {
	.workers = 4,
	.max_peers = 1024,
	.max_requests = 64,
	.max_forwarded = 1024,
	.max_services = 64,
	.max_topics = 256,
	.send_queue = 4u << 20,
	.send_fds = 64,
	.msg_fds = 32,
	.fd_budget = 0, /* derived */
};

/* The two tables. */
enum { SERVICES, TOPICS };

struct idnode;

/* One of a peer's ids: its node, and the peer's place among its members. */
struct link {
	struct idnode *node;
	unsigned int at;
};

/* One of an id's peers, and the id's place among the peer's links. */
struct member {
	struct bpeer *p; /* no reference: a peer's entries go before it does */
	unsigned int at;
};

/* An id with at least one peer. */
struct idnode {
	int32_t id;
	unsigned int n, cap;
	struct member *m;
};

/* From id to node: open addressing, linear probing. */
struct idtable {
	struct idnode **slot; /* NULL: free */
	size_t cap, n;        /* cap: 0 or a power of two */
};

struct links {
	struct link *v;
	unsigned int n, cap;
};

/* A connected peer: client, worker, subscriber, or all three. */
struct bpeer {
	broker *b;
	pier_writer *w;        /* a reference of its own: sends from any worker */
	atomic_int refs;       /* the server's (until the peer is gone), relays', fan-outs' */
	atomic_uint forwarded; /* relays to it not ended: how busy it is as a worker */
	pthread_mutex_t fd_mu; /* sends with fds to it, one at a time, and charged */
	size_t charged;        /* under fd_mu: the fds of the budget it holds */
	struct links ids[2];   /* under broker.mu: its services and topics */
};

struct broker {
	pier_server *s; /* owned */
	enum pier_byte_order order;
	struct broker_limits lim;
	pier_log_fn *log; /* or NULL */
	void *log_data;
	atomic_llong said_at; /* the second of the last refusal logged */
	/* BROKER_STAT_FDS is the budget's count. */
	atomic_uint_fast64_t stats[BROKER_STAT_END_];
	/* The tables and the peers' links: written by control requests and
	 * disconnects, read to forward and to publish. */
	pthread_rwlock_t mu;
	struct idtable tables[2];
	atomic_uint next; /* where the next choice starts among equals */
};

/* A request relayed between a client and a worker. */
struct relay {
	broker *b;
	pier_received_request *creq;   /* the client's, kept: owned */
	pier_sent_request *wreq;       /* the one sent to the worker: owned */
	struct bpeer *client, *worker; /* references */
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

static void vsay(broker *b, int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void vsay(broker *b, int priority, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	b->log(b->log_data, priority, line);
}

static void say(broker *b, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say_refusal(broker *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void say(broker *b, int priority, const char *fmt, ...)
{
	va_list ap;

	if (!b->log)
		return;
	va_start(ap, fmt);
	vsay(b, priority, fmt, ap);
	va_end(ap);
}

/* Says a refusal, unless one was said this second already: a peer that
 * keeps sending what is refused must not flood the log. */
static void say_refusal(broker *b, const char *fmt, ...)
{
	struct timespec now;
	long long last = atomic_load(&b->said_at);
	va_list ap;

	if (!b->log)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (last == (long long)now.tv_sec ||
	    !atomic_compare_exchange_strong(&b->said_at, &last, (long long)now.tv_sec))
		return;
	va_start(ap, fmt);
	vsay(b, LOG_NOTICE, fmt, ap);
	va_end(ap);
}

size_t broker_msg_fds(const pier_msg *m, int *fds, size_t max)
{
	size_t n = pier_msg_fd_count(m);

	n = n < max ? n : max;
	for (size_t i = 0; i < n; i++)
		fds[i] = pier_msg_fd(m, i);
	return n;
}

/* --- the fd budget -------------------------------------------------------- */

/* Takes n fds of the budget: false when they do not fit. */
static bool budget_take(broker *b, size_t n)
{
	atomic_uint_fast64_t *used = &b->stats[BROKER_STAT_FDS];
	uint_fast64_t u = atomic_load(used);

	do {
		if (u + n > b->lim.fd_budget) {
			say_refusal(b, "the broker holds %zu fds for what it passes on, its budget: "
				    "copies and relays with fds are refused until peers disconnect "
				    "(raise RLIMIT_NOFILE or the budget, or lower send_fds)",
				    b->lim.fd_budget);
			return false;
		}
	} while (!atomic_compare_exchange_weak(used, &u, u + n));
	return true;
}

static void budget_put(broker *b, size_t n)
{
	atomic_fetch_sub(&b->stats[BROKER_STAT_FDS], n);
}

/* Under p->fd_mu: charges p for nfds more fds passed to it.  What it holds
 * grows with them up to its send_fds limit, and stays until it is gone:
 * *more is what that took from the budget.  False when it does not fit. */
static bool charge_locked(struct bpeer *p, size_t nfds, size_t *more)
{
	size_t cap = p->b->lim.send_fds, room = p->charged < cap ? cap - p->charged : 0;

	*more = nfds < room ? nfds : room;
	if (*more && !budget_take(p->b, *more))
		return false;
	p->charged += *more;
	return true;
}

static void bpeer_unref(struct bpeer *p)
{
	if (atomic_fetch_sub(&p->refs, 1) != 1)
		return;
	budget_put(p->b, p->charged);
	pier_writer_unref(p->w);
	pthread_mutex_destroy(&p->fd_mu);
	free(p);
}

/* How m goes on. */
enum hop {
	HOP_REQUEST,       /* a request to a worker (pier_writer_send_request()) */
	HOP_STREAM,        /* a copy to a subscriber */
	HOP_TO_WORKER,     /* a requester update, on the request sent to the worker */
	HOP_TO_CLIENT,     /* a responder update, on the client's request */
	HOP_RESPONSE,      /* the response, on the client's request */
};

/*
 * Sends m's body and fds to peer to, with service id service: as a request
 * (*out: its handle), a stream message, or on the request handle req.  The
 * fds are charged to to (a connection that cannot carry them fails the
 * send by itself).  Returns 0, NO_BUDGET, or the send's error.
 */
static int pass_on(struct bpeer *to, enum hop hop, void *req, int32_t service, const pier_msg *m,
		   pier_sent_request **out)
{
	int fds[MAX_FDS], r = -EINVAL;
	size_t nfds = broker_msg_fds(m, fds, MAX_FDS), len, more = 0;
	const void *body = pier_msg_body(m, &len);
	bool charged = nfds && nfds <= pier_writer_max_fds(to->w);

	if (charged) {
		pthread_mutex_lock(&to->fd_mu);
		if (!charge_locked(to, nfds, &more)) {
			pthread_mutex_unlock(&to->fd_mu);
			return NO_BUDGET;
		}
	}
	switch (hop) {
	case HOP_REQUEST:
		r = pier_writer_send_request(to->w, service, body, len, fds, nfds, out);
		break;
	case HOP_STREAM:
		r = pier_writer_send_stream(to->w, service, body, len, fds, nfds);
		break;
	case HOP_TO_WORKER:
		r = pier_sent_request_send_update(req, service, body, len, fds, nfds);
		break;
	case HOP_TO_CLIENT:
		r = pier_received_request_send_update(req, service, body, len, fds, nfds);
		break;
	case HOP_RESPONSE:
		r = pier_received_request_send_response(req, service, body, len, fds, nfds);
		break;
	}
	if (charged) {
		if (r < 0) {
			/* Nothing of it was queued: the charge goes back, exactly,
			 * as no other send to this peer ran meanwhile. */
			to->charged -= more;
			budget_put(to->b, more);
		}
		pthread_mutex_unlock(&to->fd_mu);
	}
	return r;
}

/* Why a send to a peer failed, for an error text, said of the receiver as
 * "you" (you) or "it".  buf: room for what needs formatting. */
static const char *send_failure(broker *b, int r, bool you, char *buf, size_t size)
{
	if (r == -EAGAIN)
		return you ? "you do not read (your queue at the broker is full)"
			   : "it does not read (its queue at the broker is full)";
	if (r == NO_BUDGET) {
		snprintf(buf, size, "the broker holds as many fds as it may (%zu) for what it "
			 "passes on", b->lim.fd_budget);
		return buf;
	}
	return pier_strerror(r);
}

/* --- tables --------------------------------------------------------------- */

#ifdef BROKER_TEST_HOOKS
_Atomic int broker_test_allocs_left = -1;

static void *grow(void *p, size_t size)
{
	int left = atomic_load(&broker_test_allocs_left);

	do {
		if (left == 0)
			return NULL;
	} while (left > 0 && !atomic_compare_exchange_weak(&broker_test_allocs_left, &left,
							   left - 1));
	return realloc(p, size);
}
#else
#define grow realloc
#endif

static size_t slot_of(const struct idtable *t, int32_t id)
{
	uint32_t h = (uint32_t)id * 0x9e3779b1u;

	return (h ^ (h >> 15)) & (t->cap - 1);
}

static struct idnode *table_find(const struct idtable *t, int32_t id)
{
	if (!t->cap)
		return NULL;
	for (size_t i = slot_of(t, id);; i = (i + 1) & (t->cap - 1)) {
		if (!t->slot[i] || t->slot[i]->id == id)
			return t->slot[i];
	}
}

static void table_place(struct idtable *t, struct idnode *node)
{
	size_t i = slot_of(t, node->id);

	while (t->slot[i])
		i = (i + 1) & (t->cap - 1);
	t->slot[i] = node;
}

/* Adds node, whose id is not there: 0 or -ENOMEM.  At most three quarters
 * of the slots are taken. */
static int table_insert(struct idtable *t, struct idnode *node)
{
	if (4 * (t->n + 1) > 3 * t->cap) {
		struct idtable bigger = { NULL, t->cap ? 2 * t->cap : 64, t->n };

		bigger.slot = grow(NULL, bigger.cap * sizeof(*bigger.slot));
		if (!bigger.slot)
			return -ENOMEM;
		memset(bigger.slot, 0, bigger.cap * sizeof(*bigger.slot));
		for (size_t i = 0; i < t->cap; i++)
			if (t->slot[i])
				table_place(&bigger, t->slot[i]);
		free(t->slot);
		*t = bigger;
	}
	table_place(t, node);
	t->n++;
	return 0;
}

/* Removes node, which is there: the entries after it that probed past
 * its slot move back. */
static void table_remove(struct idtable *t, const struct idnode *node)
{
	size_t mask = t->cap - 1, i = slot_of(t, node->id), j;

	while (t->slot[i] != node)
		i = (i + 1) & mask;
	t->slot[i] = NULL;
	for (j = (i + 1) & mask; t->slot[j]; j = (j + 1) & mask) {
		size_t home = slot_of(t, t->slot[j]->id);

		/* It stays unless its home is cyclically after the hole. */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			t->slot[i] = t->slot[j];
			t->slot[j] = NULL;
			i = j;
		}
	}
	t->n--;
}

/* p's place among node's members, or -1: the shorter of the two lists is
 * searched. */
static long member_index(const struct idnode *node, const struct bpeer *p, int kind)
{
	const struct links *l = &p->ids[kind];

	if (node->n <= l->n) {
		for (unsigned int i = 0; i < node->n; i++)
			if (node->m[i].p == p)
				return i;
	} else {
		for (unsigned int i = 0; i < l->n; i++)
			if (l->v[i].node == node)
				return l->v[i].at;
	}
	return -1;
}

/* Takes member mi of node, and its link, out: the last of each list takes
 * the place left.  A node left empty goes. */
static void unlink_member(struct idtable *t, int kind, struct idnode *node, unsigned int mi)
{
	struct links *l = &node->m[mi].p->ids[kind];
	unsigned int li = node->m[mi].at, last;

	last = --node->n;
	if (mi != last) {
		node->m[mi] = node->m[last];
		node->m[mi].p->ids[kind].v[node->m[mi].at].at = mi;
	}
	last = --l->n;
	if (li != last) {
		l->v[li] = l->v[last];
		l->v[li].node->m[l->v[li].at].at = li;
	}
	if (node->n == 0) {
		table_remove(t, node);
		free(node->m);
		free(node);
	}
}

/* An array v of *cap entries of size bytes, with room for n (n > 0): v
 * itself, or a larger copy (*cap grown), or NULL (v left as it was). */
static void *room_for(void *v, unsigned int *cap, unsigned int n, size_t size)
{
	unsigned int c = *cap ? *cap : 4;
	void *bigger;

	if (n <= *cap)
		return v;
	while (c < n)
		c *= 2;
	bigger = grow(v, c * size);
	if (bigger)
		*cap = c;
	return bigger;
}

/* Under b->mu, written: node gains p (which it lacks), with room made in
 * both lists already. */
static void link_member(int kind, struct idnode *node, struct bpeer *p)
{
	struct links *l = &p->ids[kind];

	node->m[node->n] = (struct member){ p, l->n };
	l->v[l->n] = (struct link){ node, node->n };
	node->n++;
	l->n++;
}

static bool seen_before(const int32_t *ids, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (ids[j] == ids[i])
			return true;
	return false;
}

/*
 * Under b->mu, written: p gets ids[0..n) in table kind (those it has are
 * kept), within limit ids of p's in all: every one of them, or none and
 * why.  Every allocation is made before anything changes.
 */
static void add_ids(broker *b, int kind, struct bpeer *p, const int32_t *ids, size_t n,
		    unsigned int limit, const char *what, char *why, size_t size)
{
	struct idtable *t = &b->tables[kind];
	struct links *l = &p->ids[kind];
	int32_t *want = malloc(n * sizeof(*want));
	struct idnode **nodes = calloc(n, sizeof(*nodes));
	size_t more = 0, i;

	if (!want || !nodes)
		goto out_of_memory;
	for (i = 0; i < n; i++) {
		struct idnode *node = table_find(t, ids[i]);

		if (!seen_before(ids, i) && !(node && member_index(node, p, kind) >= 0))
			want[more++] = ids[i];
	}
	if (l->n + more > limit) {
		snprintf(why, size, "a peer may have at most %u %s (this one has %u, and asked for "
			 "%zu more)", limit, what, l->n, more);
		goto out;
	}
	if (more) {
		struct link *v = room_for(l->v, &l->cap, l->n + (unsigned int)more, sizeof(*v));

		if (!v)
			goto out_of_memory;
		l->v = v;
	}
	for (i = 0; i < more; i++) {
		struct member *mm;
		struct idnode *node = table_find(t, want[i]);

		if (!node) {
			node = grow(NULL, sizeof(*node));
			if (!node)
				goto undo;
			*node = (struct idnode){ .id = want[i] };
			if (table_insert(t, node) < 0) {
				free(node);
				goto undo;
			}
		}
		nodes[i] = node;
		mm = room_for(node->m, &node->cap, node->n + 1, sizeof(*mm));
		if (!mm) {
			i++;
			goto undo;
		}
		node->m = mm;
	}
	for (i = 0; i < more; i++)
		link_member(kind, nodes[i], p);
	goto out;
undo:
	/* The nodes this request made have no member yet. */
	while (i-- > 0) {
		if (nodes[i]->n == 0) {
			table_remove(t, nodes[i]);
			free(nodes[i]->m);
			free(nodes[i]);
		}
	}
out_of_memory:
	snprintf(why, size, "the broker is out of memory: retry later");
out:
	free(want);
	free(nodes);
}

/* Under b->mu, written: p no longer has ids[0..n) in table kind. */
static void del_ids(broker *b, int kind, struct bpeer *p, const int32_t *ids, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct idnode *node = table_find(&b->tables[kind], ids[i]);
		long mi = node ? member_index(node, p, kind) : -1;

		if (mi >= 0)
			unlink_member(&b->tables[kind], kind, node, (unsigned int)mi);
	}
}

/* Under b->mu, written: every id of p goes. */
static void drop_peer(broker *b, struct bpeer *p)
{
	for (int kind = SERVICES; kind <= TOPICS; kind++) {
		struct links *l = &p->ids[kind];

		while (l->n)
			unlink_member(&b->tables[kind], kind, l->v[l->n - 1].node,
				      l->v[l->n - 1].at);
		free(l->v);
		*l = (struct links){ 0 };
	}
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
	int kind = topics ? TOPICS : SERVICES;
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
		snprintf(why, sizeof(why), "the broker is out of memory: retry later");
	}
	for (size_t i = 0; ids && !*why && i < n; i++) {
		ids[i] = get_i32(body + 4 * i, b->order);
		if (!topics && add && reserved(ids[i]))
			snprintf(why, sizeof(why), "service id %d is reserved: ids %d to %d are the "
				 "broker's own", (int)ids[i], BROKER_RESERVED_LOW, PIER_SERVICE_ERROR);
	}
	if (!*why) {
		pthread_rwlock_wrlock(&b->mu);
		if (add)
			add_ids(b, kind, p, ids, n, limit, what, why, sizeof(why));
		else
			del_ids(b, kind, p, ids, n);
		pthread_rwlock_unlock(&b->mu);
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
	budget_put(rl->b, 2); /* their eventfds */
	atomic_fetch_sub(&rl->worker->forwarded, 1);
	bpeer_unref(rl->worker);
	bpeer_unref(rl->client);
	atomic_fetch_sub(&rl->b->stats[BROKER_STAT_RELAYS], 1);
	pthread_mutex_destroy(&rl->mu);
	free(rl);
}

static bool relay_is_over(struct relay *rl)
{
	bool over;

	pthread_mutex_lock(&rl->mu);
	over = rl->over;
	pthread_mutex_unlock(&rl->mu);
	return over;
}

/* Marks rl over: whether this call did, with the watches to cancel. */
static bool relay_close(struct relay *rl, uint64_t watches[2])
{
	bool first;

	pthread_mutex_lock(&rl->mu);
	first = !rl->over;
	rl->over = true;
	watches[0] = rl->cwatch;
	watches[1] = rl->wwatch;
	pthread_mutex_unlock(&rl->mu);
	return first;
}

/* The watches left of a closed relay: the caller's, if it is one, ran
 * (-ENOENT); each other cancelled drops its reference. */
static void relay_unwatch(struct relay *rl, const uint64_t watches[2])
{
	for (int i = 0; i < 2; i++)
		if (watches[i] && pier_server_unwatch(rl->b->s, watches[i]) == 0)
			relay_unref(rl);
}

/*
 * Ends rl with an error, once: the client gets the error response
 * client_why (NULL: nothing, its request is over), the worker a
 * BROKER_CANCELLED update saying worker_why (NULL: nothing, it answered or
 * is gone), and the watches left are cancelled.  A watch of rl that runs
 * meanwhile finds it over and lets go.  The caller holds a reference.
 */
static void relay_end(struct relay *rl, const char *client_why, const char *worker_why)
{
	uint64_t watches[2];

	if (!relay_close(rl, watches))
		return;
	count(rl->b, BROKER_STAT_BROKEN);
	if (client_why)
		pier_received_request_send_error(rl->creq, client_why);
	if (worker_why)
		pier_sent_request_send_update(rl->wreq, BROKER_CANCELLED, worker_why,
					      strlen(worker_why), NULL, 0);
	relay_unwatch(rl, watches);
}

/* Ends rl because the broker cannot watch a side of it (r says why). */
static void relay_unwatchable(struct relay *rl, int r)
{
	char why[200], cancel[200];

	snprintf(why, sizeof(why), "the broker cannot watch the request: %s; retry later",
		 pier_strerror(r));
	snprintf(cancel, sizeof(cancel), "the broker ended the request: it cannot watch it: %s",
		 pier_strerror(r));
	relay_end(rl, why, cancel);
}

/*
 * Passes m, an update or the worker's response, on to the other side of
 * rl: from the worker to the client (to_client), or from the client to the
 * worker.  Returns 0 once passed, 1 when dropped (that side's request is
 * over), or -1 with what to tell the client (why) and the worker (cancel)
 * when it cannot be.  What the broker keeps for itself is refused: updates
 * on its ids, and more fds than it passes.
 */
static int relay_pass(struct relay *rl, const pier_msg *m, bool to_client, char *why,
		      char *cancel, size_t size)
{
	broker *b = rl->b;
	const struct pier_header *h = pier_msg_header(m);
	bool response = h->type == PIER_MSG_RESPONSE;
	size_t nfds = pier_msg_fd_count(m);
	/* m, as the client and as the worker are told of it */
	const char *to_c = !to_client ? "your update" :
			   response   ? "the worker's response" :
					"the worker's update";
	const char *to_w = to_client ? "your update" : "the client's update";
	char buf[2][120];
	int r;

	if (!response && reserved(h->service_id)) {
		snprintf(why, size, "%s is on service id %d, one of the broker's own (%d to -1)%s",
			 to_c, (int)h->service_id, BROKER_RESERVED_LOW,
			 to_client ? "" : ": use another id");
		snprintf(cancel, size, "the broker ended the request: %s is on service id %d, one of "
			 "the broker's own (%d to -1)%s", to_w, (int)h->service_id,
			 BROKER_RESERVED_LOW, to_client ? ": use another id" : "");
		return -1;
	}
	if (nfds > b->lim.msg_fds) {
		count(b, BROKER_STAT_FD_REFUSED);
		snprintf(why, size, "%s carries %zu fds; the broker passes at most %zu", to_c, nfds,
			 b->lim.msg_fds);
		snprintf(cancel, size, "the broker ended the request: %s carries %zu fds; the "
			 "broker passes at most %zu", to_w, nfds, b->lim.msg_fds);
		return -1;
	}
	if (to_client)
		r = pass_on(rl->client, response ? HOP_RESPONSE : HOP_TO_CLIENT, rl->creq,
			    h->service_id, m, NULL);
	else
		r = pass_on(rl->worker, HOP_TO_WORKER, rl->wreq, h->service_id, m, NULL);
	if (r == 0) {
		count(b, response ? BROKER_STAT_RESPONSES : BROKER_STAT_UPDATES);
		return 0;
	}
	/* -PIER_EDONE: the request of that side ended (a client's update that
	 * came after the worker's response is too late, as it would be
	 * without a broker); the relay ends by the watch of that side. */
	if (r == -PIER_EDONE)
		return 1;
	if (r == NO_BUDGET)
		count(b, BROKER_STAT_FD_REFUSED);
	snprintf(why, size, "%s could not be relayed to %s: %s", to_c,
		 to_client ? "you" : "the worker", send_failure(b, r, to_client, buf[0], 120));
	snprintf(cancel, size, "the broker ended the request: %s could not be relayed to %s: %s",
		 to_w, to_client ? "the client" : "you", send_failure(b, r, !to_client, buf[1], 120));
	return -1;
}

/* The worker's response m ends rl: it goes to the client, or an error
 * response saying why it could not. */
static void relay_respond(struct relay *rl, const pier_msg *m)
{
	char why[300], unused[300];
	uint64_t watches[2];
	int r;

	if (!relay_close(rl, watches))
		return;
	r = relay_pass(rl, m, true, why, unused, sizeof(why));
	if (r != 0)
		count(rl->b, BROKER_STAT_BROKEN); /* not passed: the client is gone, or why */
	if (r < 0)
		pier_received_request_send_error(rl->creq, why);
	relay_unwatch(rl, watches);
}

static void client_step(void *ud, int status);
static void worker_step(void *ud, int status);

/* Under rl->mu: watches the client's side (or the worker's). */
static int watch_locked(struct relay *rl, bool client)
{
	int fd = client ? pier_received_request_fd(rl->creq) : pier_sent_request_fd(rl->wreq);
	uint64_t *id = client ? &rl->cwatch : &rl->wwatch;
	int r = fd;

	if (fd >= 0)
		r = pier_server_watch(rl->b->s, fd, client ? client_step : worker_step, rl, id);
	if (r < 0)
		*id = 0;
	return r;
}

/* A step's watch again, unless rl is over (-PIER_EDONE): 0 when made (the
 * step's reference is the new watch's). */
static int rewatch(struct relay *rl, bool client)
{
	int r = -PIER_EDONE;

	pthread_mutex_lock(&rl->mu);
	if (!rl->over)
		r = watch_locked(rl, client);
	pthread_mutex_unlock(&rl->mu);
	return r;
}

/* The client's side: its updates, or its end. */
static void client_step(void *ud, int status)
{
	struct relay *rl = ud;
	char why[300], cancel[300];
	pier_msg *m;
	int r = status;

	while (r == 0 && !relay_is_over(rl) &&
	       (r = pier_received_request_recv_update(rl->creq, &m, 0)) == 0) {
		if (relay_pass(rl, m, false, why, cancel, sizeof(why)) < 0)
			relay_end(rl, why, cancel);
		pier_msg_free(m);
	}
	if (r == 0 || r == -EAGAIN) {
		r = rewatch(rl, true);
		if (r == 0)
			return;
		if (r != -PIER_EDONE)
			relay_unwatchable(rl, r);
	} else if (r == -PIER_EDONE || r == -PIER_ESHUTDOWN) {
		/* Answered (by the relay, which is over then, or by the
		 * server's stop), or the server stopped. */
		relay_end(rl, NULL, "the broker stopped before the request finished");
	} else {
		relay_end(rl, NULL, "the client disconnected");
	}
	relay_unref(rl);
}

/* The worker's side: its updates and response, or its end. */
static void worker_step(void *ud, int status)
{
	struct relay *rl = ud;
	char why[300], cancel[300];
	pier_msg *m;
	int r = status;

	while (r == 0 && !relay_is_over(rl) && (r = pier_sent_request_recv(rl->wreq, &m, 0)) == 0) {
		if (pier_msg_header(m)->type == PIER_MSG_RESPONSE)
			relay_respond(rl, m);
		else if (relay_pass(rl, m, true, why, cancel, sizeof(why)) < 0)
			relay_end(rl, why, cancel);
		pier_msg_free(m);
	}
	if (r == 0 || r == -EAGAIN) {
		r = rewatch(rl, false);
		if (r == 0)
			return;
		if (r != -PIER_EDONE)
			relay_unwatchable(rl, r);
	} else if (r == -PIER_ESHUTDOWN) {
		/* The server stopped (and answered the client): this watch may
		 * run before the client's, which would cancel the worker. */
		relay_end(rl, NULL, "the broker stopped before the request finished");
	} else if (r != -PIER_EDONE) {
		snprintf(why, sizeof(why), "the worker serving service id %d disconnected before it "
			 "answered (%s)", (int)rl->service, pier_strerror(r));
		relay_end(rl, why, NULL);
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
	unsigned int least = 0, n, start;
	struct idnode *node;

	pthread_rwlock_rdlock(&b->mu);
	node = table_find(&b->tables[SERVICES], id);
	n = node ? node->n : 0;
	start = n ? atomic_fetch_add(&b->next, 1) % n : 0;
	for (unsigned int k = 0; k < n; k++) {
		struct bpeer *p = node->m[(start + k) % n].p;
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
	pthread_rwlock_unlock(&b->mu);
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
	char buf[120];
	bool full = false;
	int r = 0;

	*worker = NULL;
	while (!*worker && ntried < MAX_TRIES) {
		struct bpeer *p = choose(b, id, tried, ntried, &full);

		if (!p)
			break;
		r = pass_on(p, HOP_REQUEST, NULL, id, m, wreq);
		if (r == 0) {
			*worker = p;
			break;
		}
		/* Gone (its disconnect hook unregisters it), not reading, or
		 * unable to carry this: the next one may. */
		atomic_fetch_sub(&p->forwarded, 1);
		tried[ntried++] = p; /* still a reference: not taken again */
	}
	for (unsigned int i = 0; i < ntried; i++)
		bpeer_unref(tried[i]);
	if (*worker)
		return 0;
	if (ntried) {
		if (r == NO_BUDGET)
			count(b, BROKER_STAT_FD_REFUSED);
		snprintf(why, size, "no worker of service id %d could take the request (the last one "
			 "tried: %s): retry later or start more workers", (int)id,
			 send_failure(b, r, false, buf, sizeof(buf)));
	} else if (full) {
		snprintf(why, size, "every worker of service id %d has %u requests in flight, the "
			 "broker's limit: retry later or start more workers", (int)id,
			 b->lim.max_forwarded);
	} else {
		snprintf(why, size, "no worker serves service id %d", (int)id);
	}
	return -1;
}

/* Every request on an id that is not the broker's own. */
static int h_forward(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	broker *b = ud;
	size_t nfds = pier_msg_fd_count(m);
	struct relay *rl;
	char why[300];
	int r;

	if (nfds > b->lim.msg_fds) {
		count(b, BROKER_STAT_FD_REFUSED);
		snprintf(why, sizeof(why), "the request carries %zu fds; the broker passes at most %zu",
			 nfds, b->lim.msg_fds);
		pier_received_request_send_error(req, why);
		return PIER_HANDLER_DONE;
	}
	/* The eventfds of its two watches, taken before anything is sent. */
	if (!budget_take(b, 2)) {
		count(b, BROKER_STAT_FD_REFUSED);
		snprintf(why, sizeof(why), "the broker cannot relay the request: it holds as many "
			 "fds as it may (%zu) for what it passes on; retry later", b->lim.fd_budget);
		pier_received_request_send_error(req, why);
		return PIER_HANDLER_DONE;
	}
	/* Counted before the worker can have it: once it has, the relay is
	 * counted until it ends. */
	atomic_fetch_add(&b->stats[BROKER_STAT_RELAYS], 1);
	rl = calloc(1, sizeof(*rl));
	if (!rl || forward(b, m, &rl->worker, &rl->wreq, why, sizeof(why)) < 0) {
		if (rl)
			count(b, BROKER_STAT_NO_WORKER);
		atomic_fetch_sub(&b->stats[BROKER_STAT_RELAYS], 1);
		budget_put(b, 2);
		pier_received_request_send_error(req, rl ? why : "the broker is out of memory: "
							    "retry later");
		free(rl);
		return PIER_HANDLER_DONE;
	}
	count(b, BROKER_STAT_FORWARDED);
	rl->b = b;
	rl->creq = req;
	rl->client = pd;
	atomic_fetch_add(&rl->client->refs, 1);
	rl->service = pier_msg_header(m)->service_id;
	pthread_mutex_init(&rl->mu, NULL);
	/* Held while both watches are made: a step that runs meanwhile
	 * waits here before it can end the relay. */
	pthread_mutex_lock(&rl->mu);
	rl->refs = 1;
	r = watch_locked(rl, true);
	if (r == 0) {
		rl->refs++;
		r = watch_locked(rl, false);
		rl->refs += r == 0;
	}
	pthread_mutex_unlock(&rl->mu);
	if (r < 0)
		relay_unwatchable(rl, r);
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
	size_t nfds = pier_msg_fd_count(m), n;
	struct idnode *node;

	count(b, BROKER_STAT_PUBLISHED);
	if (nfds > b->lim.msg_fds) {
		/* A stream message has no answer: the log says why. */
		count(b, BROKER_STAT_FD_REFUSED);
		say_refusal(b, "a stream message on topic %d was dropped: it carries %zu fds; the "
			    "broker passes at most %zu", (int)topic, nfds, b->lim.msg_fds);
		return;
	}
	pthread_rwlock_rdlock(&b->mu);
	node = table_find(&b->tables[TOPICS], topic);
	n = node ? node->n : 0;
	if (n > FANOUT_LOCAL)
		subs = malloc(n * sizeof(*subs));
	for (size_t i = 0; subs && i < n; i++) {
		subs[i] = node->m[i].p;
		atomic_fetch_add(&subs[i]->refs, 1);
	}
	pthread_rwlock_unlock(&b->mu);
	if (!subs) {
		atomic_fetch_add(&b->stats[BROKER_STAT_DROPPED], n);
		return;
	}
	/* Each send dups the fds it queues (the kernel gives each receiver
	 * its own): m keeps its own, closed after this handler. */
	for (size_t i = 0; i < n; i++) {
		int r = pass_on(subs[i], HOP_STREAM, NULL, topic, m, NULL);

		count(b, r == 0 ? BROKER_STAT_DELIVERED : BROKER_STAT_DROPPED);
		if (r == NO_BUDGET)
			count(b, BROKER_STAT_FD_REFUSED);
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
	p->b = ud;
	p->w = pier_writer_ref(pier_peer_get_writer(peer));
	atomic_init(&p->refs, 1);
	pthread_mutex_init(&p->fd_mu, NULL);
	*pd = p;
	return 0;
}

/* No handler of the peer runs any more: its ids go, and relays and
 * fan-outs that hold it find its connection ended.  What it is charged
 * goes back to the budget once nothing holds it. */
static void on_disconnect(void *ud, pier_peer *peer, void *pd, int reason)
{
	broker *b = ud;
	struct bpeer *p = pd;

	pthread_rwlock_wrlock(&b->mu);
	drop_peer(b, p);
	pthread_rwlock_unlock(&b->mu);
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
	if (!l->msg_fds)
		l->msg_fds = l->send_fds < defaults.msg_fds ? l->send_fds : defaults.msg_fds;
}

/* RLIMIT_NOFILE's soft limit, raised to the hard one first. */
static unsigned long long fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t was = rl.rlim_cur;

		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			rl.rlim_cur = was;
	}
	return rl.rlim_cur == RLIM_INFINITY ? 1ull << 30 : (unsigned long long)rl.rlim_cur;
}

/* Sets the fd budget, unless given, and says when the limits multiplied
 * out do not fit the fd limit. */
static void plan_fds(broker *b)
{
	struct broker_limits *l = &b->lim;
	unsigned long long limit = fd_limit();
	/* Out of the budget: every peer's socket and what it sent that
	 * waits (msg_fds queued, and the one message past them the library
	 * reads, of up to MAX_FDS), the messages in handlers, the broker's
	 * own. */
	unsigned long long reserve = FIXED_FDS + (unsigned long long)l->workers * MAX_FDS +
				     (unsigned long long)l->max_peers * (1 + l->msg_fds + MAX_FDS);
	/* The most the budget can be asked for: every peer's send_fds, and
	 * two eventfds per relay, max_requests of each peer. */
	unsigned long long need = (unsigned long long)l->max_peers *
				  (l->send_fds + 2ull * l->max_requests);
	unsigned long long used;
	bool given = l->fd_budget != 0;

	if (!given) {
		unsigned long long left = limit > reserve ? limit - reserve : 0;

		l->fd_budget = left < limit / 4 ? limit / 4 : left < need ? left : need;
	}
	used = reserve + (need < l->fd_budget ? need : l->fd_budget);
	if (used > limit || (!given && l->fd_budget < need))
		say(b, LOG_WARNING, "the limits may need %llu fds, and RLIMIT_NOFILE is %llu: %u "
		    "peers, each with its socket, up to %zu + %d fds it sent, %zu passed to it and "
		    "2 per relay of its %u requests; the broker passes at most %zu fds at once "
		    "(more are refused)%s: lower the limits or raise the hard limit (LimitNOFILE= "
		    "under systemd)", reserve + need, limit, l->max_peers, l->msg_fds, MAX_FDS,
		    l->send_fds, l->max_requests, l->fd_budget,
		    used > limit ? " and may run out of fds" : "");
}

static int configure(broker *b, pier_config *cfg)
{
	const struct broker_limits *l = &b->lim;
	unsigned int open = l->max_forwarded > l->max_requests ? l->max_forwarded : l->max_requests;
	int r;

	/* Every message Linux can carry is read, so that one over msg_fds
	 * gets an answer; what waits is msg_fds, plus the message read past
	 * them. */
	if ((r = pier_config_set_send_timeout(cfg, 0)) < 0 ||
	    (r = pier_config_set_byte_order(cfg, b->order)) < 0 ||
	    (r = pier_config_set_max_fds(cfg, MAX_FDS)) < 0 ||
	    (r = pier_config_set_max_queued(cfg, RECV_QUEUE, l->send_queue)) < 0 ||
	    (r = pier_config_set_max_queued_fds(cfg, l->msg_fds, l->send_fds)) < 0 ||
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
	       const struct broker_limits *lim, pier_log_fn *log, void *log_data)
{
	broker *b;
	int r;

	if (!out || !cfg)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->order = order;
	b->log = log;
	b->log_data = log_data;
	atomic_init(&b->said_at, -1);
	limits_or_defaults(&b->lim, lim);
	pthread_rwlock_init(&b->mu, NULL);
	if (b->lim.msg_fds > b->lim.send_fds || b->lim.msg_fds > MAX_FDS) {
		r = -EINVAL;
	} else {
		plan_fds(b);
		r = configure(b, cfg);
	}
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

const struct broker_limits *broker_limits(broker *b)
{
	return &b->lim;
}

uint64_t broker_stat(broker *b, enum broker_stat stat)
{
	if (!b || (unsigned int)stat >= BROKER_STAT_END_)
		return 0;
	return atomic_load_explicit(&b->stats[stat], memory_order_relaxed);
}

char *broker_summary(broker *b, char *buf, size_t len)
{
#define N(st) (unsigned long long)broker_stat(b, BROKER_STAT_##st)
	snprintf(buf, len, "forwarded %llu requests (%llu refused: no worker), relayed %llu "
		 "updates and %llu responses (%llu requests ended with an error); %llu stream "
		 "messages, %llu copies delivered, %llu dropped; %llu refused for their fds",
		 N(FORWARDED), N(NO_WORKER), N(UPDATES), N(RESPONSES), N(BROKEN), N(PUBLISHED),
		 N(DELIVERED), N(DROPPED), N(FD_REFUSED));
#undef N
	return buf;
}

/* The server SIGINT and SIGTERM stop (broker_stop_on_signals()). */
static pier_server *_Atomic signalled;

static void on_stop_signal(int sig)
{
	pier_server *s = atomic_load(&signalled);

	(void)sig;
	if (s)
		pier_server_stop(s); /* async-signal-safe */
}

void broker_stop_on_signals(broker *b)
{
	struct sigaction sa = { .sa_handler = on_stop_signal };

	sigemptyset(&sa.sa_mask);
	atomic_store(&signalled, b->s);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

void broker_free(broker *b)
{
	pier_server *s;

	if (!b)
		return;
	s = b->s;
	if (s && atomic_compare_exchange_strong(&signalled, &s, NULL)) {
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
	}
	/* Every peer is gone then (their disconnect hooks ran, and their
	 * nodes with them), and every relay (its watches ran at the stop). */
	pier_server_free(b->s);
	free(b->tables[SERVICES].slot);
	free(b->tables[TOPICS].slot);
	pthread_rwlock_destroy(&b->mu);
	free(b);
}
