/* SPDX-License-Identifier: MIT */
/*
 * Servers: what server.c (serving), server-sched.c (which worker takes
 * which peer, when), server-stop.c (stopping) and server-watch.c share.
 * Calls go from server.c to the three others, and from server-stop.c to
 * server-watch.c.
 */
#ifndef PIER_SERVER_INT_H
#define PIER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <pier.h>

#include "idmap.h"
#include "server.h"

#define SHUTTING_DOWN "the server is shutting down"

enum item_kind { ITEM_LISTENER, ITEM_WAKE, ITEM_TIMER, ITEM_LEND_TIMER, ITEM_RUNQ };

/* What an epoll event points to. */
struct item {
	enum item_kind kind;
	int fd;
};

struct handler {
	int32_t id;
	bool stream;
	pier_request_handler *req;
	pier_stream_handler *str;
	void *data;
	void (*free_data)(void *data); /* NULL: data is the application's */
};

struct srv_listener {
	struct item item;
	pier_listener *l; /* owned; NULL once closed */
	/* Under s->mu. */
	unsigned int accepting; /* workers accepting on it */
	bool closing;
};

/* Where a peer is for the workers (server-sched.c). */
enum run_state {
	RUN_IDLE,   /* nothing to take: its queue tells when there is */
	RUN_QUEUED, /* on s->runq */
	RUN_TURN,   /* a worker takes its messages */
	RUN_GONE,   /* ended: never again */
};

struct srv_peer {
	struct pier_server *s;
	pier_peer *peer; /* owned */
	void *data;      /* the connect hook's */
	atomic_uint inflight; /* requests taken and not closed */
	/* Under s->mu. */
	unsigned int busy; /* workers taking or handling its messages */
	bool ended;
	int reason;
	struct srv_peer *prev, *next;
	/* Under s->rq_mu: where it is, whether its queue became ready
	 * during its turn, its place on s->runq. */
	enum run_state sched;
	bool more;
	struct srv_peer *rq_next;
	/* Its turn (server-sched.c): what its holder does (written by the
	 * holder, taken from it by a worker that lends it) ... */
	_Atomic uint64_t phase;
	/* ... and under s->mu: the number of the current turn, whether it
	 * is on s->turns, and what a worker looking for long handlers saw
	 * there last, when. */
	uint64_t turn;
	bool listed;
	uint64_t seen_phase;
	int64_t seen_ns;
	struct srv_peer *turn_prev, *turn_next;
};

/* A one-shot watch on an application's fd (pier_server_watch()).  Its
 * epoll event carries its serial, never a pointer, so that a worker that
 * took the event after the watch was cancelled finds nothing. */
struct watch {
	uint64_t serial;
	int fd;
	pier_watch_fn *fn;
	void *data;
};

/* The epoll data of watch serial n: odd, where items' pointers are even. */
#define WATCH_TAG(n) ((n) << 1 | 1)

enum srv_state { SRV_NEW, SRV_RUNNING, SRV_DRAINING, SRV_CLOSING, SRV_STOPPED };

/* A worker thread, and the counts it makes for every message: each its
 * own cache line, which no other worker writes (pier_server_stat() sums
 * them). */
struct worker {
	_Alignas(64) atomic_uint_fast64_t requests, streams;
	struct pier_server *s;
	pthread_t thread;
};

struct pier_server {
	pier_config *cfg; /* owned: listeners are made with it */
	unsigned int nworkers, max_peers, max_requests;
	int stop_timeout_ms;
	pier_connect_hook *on_connect;
	pier_disconnect_hook *on_disconnect;
	void *hook_data;
	struct handler *handlers; /* sorted by (stream, id) */
	size_t nhandlers;
	struct handler other[2]; /* for ids without one: requests, streams */
	struct srv_listener **listeners;
	size_t nlisteners;
	int epfd;
	struct item wake;  /* eventfd: pier_server_stop(), and changes while stopping */
	struct item timer; /* timerfd: the stop timeout */
	struct item lend_timer; /* timerfd: a turn held by a handler is due */
	atomic_bool stop_asked, deadline_passed;
	atomic_int state;      /* enum srv_state; changed by the worker holding wake */
	atomic_bool lend_timer_armed;
	atomic_uint_fast64_t stats[PIER_SERVER_STAT_END_];
	struct worker *workers; /* owned, cache-line aligned */
	unsigned int nthreads;

	pthread_mutex_t mu; /* what follows, listeners' and peers' fields so marked */
	pthread_cond_t cond;
	struct srv_peer *peers;
	unsigned int npeers; /* served, and being accepted */
	unsigned int running; /* workers not gone yet */
	struct srv_peer *turns; /* peers a worker takes messages of */
	bool started, joined;
	struct idmap watches; /* low 32 bits of the serial -> struct watch */
	uint64_t watch_serial;
	bool watches_closed; /* the server stopped: no more watches */

	/* The peers with messages to take, in the order their queues
	 * became ready; the workers that wait for events, and the wakes
	 * written to runq's eventfd (a semaphore) and not read yet. */
	pthread_mutex_t rq_mu;
	struct srv_peer *runq, **runq_tail;
	struct item runq_wake;
	atomic_uint sleeping; /* changed under rq_mu */
	unsigned int signaled;

	pthread_mutex_t log_mu;
	int64_t log_window;
	unsigned int log_said, log_held;
};

static inline void count(struct pier_server *s, enum pier_server_stat st)
{
	atomic_fetch_add_explicit(&s->stats[st], 1, memory_order_relaxed);
}

/* Async-signal-safe: one write(2). */
static inline void poke(struct pier_server *s)
{
	uint64_t one = 1;
	ssize_t n = write(s->wake.fd, &one, sizeof(one));

	(void)n;
}

static inline void arm(struct pier_server *s, struct item *it, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = it };

	epoll_ctl(s->epfd, op, it->fd, &ev);
}

/* Under s->mu: the requests taken and not closed, of every peer (counted
 * per peer, not in one counter that every worker would write for each
 * request). */
static inline unsigned long inflight_locked(struct pier_server *s)
{
	unsigned long n = 0;

	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		n += atomic_load(&sp->inflight);
	return n;
}

/* Scheduling (server-sched.c).  What the worker holding a peer's turn
 * keeps. */
struct turn {
	struct worker *w;
	struct srv_peer *sp;
	uint64_t phase; /* its last: the turn's number, the request's */
};
/* The peer's queue became ready (its notify function: under its mu). */
void sched_ready(void *sp);
/* A worker takes the next peer with messages, and its turn; NULL: none. */
struct srv_peer *sched_next(struct pier_server *s, struct turn *t);
/* The holder is about to run a request's handler / it returned: whether
 * the turn is still the holder's. */
void turn_lend(struct turn *t);
bool turn_back(struct turn *t);
/* Under s->mu: the holder ends its turn (turn_back() said it had it),
 * and the peer is queued again if it has more; r: how its last receive
 * ended (0: it took the last message the turn may take; an error but
 * -EAGAIN: the peer ended). */
void turn_end_locked(struct pier_server *s, struct turn *t, int r);
/* A worker found no peer to take: takes the turns that handlers held too
 * long, and counts itself sleeping unless that gave it work; false: it
 * does not sleep. */
bool sched_sleep(struct pier_server *s);
/* It got an event: it no longer sleeps. */
void sched_woke(struct pier_server *s);
/* Its event was runq_wake's. */
void on_runq_wake(struct pier_server *s);
/* The lend timer fired. */
void on_lend_timer(struct pier_server *s);

/* Under s->mu: the server is closing: sp's open requests end with the
 * stop's error, and its queue finishes, which wakes its event. */
void kick_peer(struct pier_server *s, struct srv_peer *sp);
/* The worker holding the wake event: moves the stop on; returns whether
 * the worker goes on. */
bool on_wake(struct pier_server *s);
/* The stop timeout passed. */
void on_timer(struct pier_server *s);
/* Watches (server-watch.c).  A worker took the event of watch serial. */
void on_watch(struct pier_server *s, uint64_t serial);
/* The server stops: every watch left runs with -PIER_ESHUTDOWN. */
void end_watches(struct pier_server *s);
/* The server is freed: the watches left go without a call. */
void end_watches_uncalled(struct pier_server *s);

#endif
