/* SPDX-License-Identifier: MIT */
/*
 * Stopping a server: stop accepting (RUNNING -> DRAINING), let requests in
 * flight finish until the stop timeout, then end the rest with an error
 * and close every peer (CLOSING), and let the workers go (STOPPED).  The
 * state moves only on the worker holding the wake event (an eventfd that
 * pier_server_stop() writes, async-signal-safe), so one thread does each
 * step; anything that may let it move on writes the eventfd.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>

#include "clock.h"
#include "private.h"
#include "route.h"
#include "server-int.h"

/* Under p->conn.mu: ends an open request with the stop's error. */
static void end_request_locked(struct pier_server *s, struct req *r)
{
	struct conn *c = &r->peer->conn;
	char text[160];

	if (r->responding)
		return; /* its response is being sent */
	if (!r->q.finished && !c->error) {
		struct pier_header h = { PIER_MSG_RESPONSE, r->id, PIER_SERVICE_ERROR };
		struct conn_body b;
		struct iovec v;

		snprintf(text, sizeof(text),
			 "the server stopped before the request finished (stop timeout %d ms)",
			 s->stop_timeout_ms);
		b = conn_body_one(&v, text, strlen(text));
		conn_send(c, &h, &b, NULL, 0, true);
		count(s, PIER_SERVER_STAT_STOPPED_REQUESTS);
	}
	r->q.finished = true;
	req_close_locked(r);
	msgq_changed_locked(c, &r->q);
}

static void collect_req(void *value, void *ctx)
{
	struct req ***next = ctx;

	*(*next)++ = value;
}

/* Under s->mu: the server is closing: p's open requests end with an
 * error, and its queue finishes, which wakes its event: the worker taking
 * it ends the peer. */
void kick_peer(struct pier_server *s, struct srv_peer *sp)
{
	struct pier_peer *p = sp->peer;
	struct conn *c = &p->conn;
	struct req **reqs, **next;

	pthread_mutex_lock(&c->mu);
	p->request_closed = NULL; /* counts no longer matter */
	reqs = p->received.count ? calloc(p->received.count, sizeof(*reqs)) : NULL;
	if (reqs) {
		next = reqs;
		idmap_each(&p->received, collect_req, &next);
		for (struct req **r = reqs; r < next; r++)
			end_request_locked(s, *r);
		free(reqs);
	}
	p->in.finished = true;
	msgq_changed_locked(c, &p->in);
	pthread_mutex_unlock(&c->mu);
}

/* Stops accepting: the listeners close (their sockets, and the peers they
 * accepted that the server did not take yet). */
static void begin_drain(struct pier_server *s)
{
	unsigned long inflight;
	char status[128];

	atomic_store(&s->state, SRV_DRAINING);
	for (size_t i = 0; i < s->nlisteners; i++) {
		struct srv_listener *sl = s->listeners[i];
		pier_listener *l;

		pthread_mutex_lock(&s->mu);
		sl->closing = true;
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, sl->item.fd, NULL);
		while (sl->accepting)
			pthread_cond_wait(&s->cond, &s->mu);
		l = sl->l;
		sl->l = NULL;
		pthread_mutex_unlock(&s->mu);
		pier_listener_free(l);
	}
	pthread_mutex_lock(&s->mu);
	inflight = inflight_locked(s);
	pthread_mutex_unlock(&s->mu);
	snprintf(status, sizeof(status), "STOPPING=1\nSTATUS=Stopping: %lu requests in flight",
		 inflight);
	pier_notify(status);
	if (s->stop_timeout_ms == 0) {
		atomic_store(&s->deadline_passed, true);
	} else if (s->stop_timeout_ms > 0) {
		struct itimerspec its = {
			.it_value = { s->stop_timeout_ms / 1000, (s->stop_timeout_ms % 1000) * 1000000L },
		};

		timerfd_settime(s->timer.fd, 0, &its, NULL);
	}
}

/* Whether every request in flight finished. */
static bool drained(struct pier_server *s)
{
	unsigned long n;

	pthread_mutex_lock(&s->mu);
	n = inflight_locked(s);
	pthread_mutex_unlock(&s->mu);
	return n == 0;
}

/* Requests in flight are done, or their time is up: every peer closes. */
static void begin_close(struct pier_server *s)
{
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->state, SRV_CLOSING);
	for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
		kick_peer(s, sp);
	pthread_mutex_unlock(&s->mu);
}

/* The worker holding the wake event moves the stop on, as far as it can. */
static void advance(struct pier_server *s)
{
	int st = atomic_load(&s->state);

	if (st == SRV_RUNNING && atomic_load(&s->stop_asked)) {
		begin_drain(s);
		st = SRV_DRAINING;
	}
	if (st == SRV_DRAINING && (atomic_load(&s->deadline_passed) || drained(s))) {
		begin_close(s);
		st = SRV_CLOSING;
	}
	if (st == SRV_CLOSING) {
		bool gone;

		pthread_mutex_lock(&s->mu);
		gone = !s->npeers;
		pthread_mutex_unlock(&s->mu);
		if (gone) {
			end_watches(s);
			atomic_store(&s->state, SRV_STOPPED);
		}
	}
}

/* Returns whether the worker goes on. */
bool on_wake(struct pier_server *s)
{
	uint64_t v;
	ssize_t n = read(s->wake.fd, &v, sizeof(v));

	(void)n;
	advance(s);
	if (atomic_load(&s->state) == SRV_STOPPED) {
		/* Readable again, for the next worker to leave too. */
		poke(s);
		arm(s, &s->wake, EPOLL_CTL_MOD);
		return false;
	}
	arm(s, &s->wake, EPOLL_CTL_MOD);
	return true;
}

void on_timer(struct pier_server *s)
{
	uint64_t v;
	ssize_t n = read(s->timer.fd, &v, sizeof(v));

	(void)n;
	atomic_store(&s->deadline_passed, true);
	poke(s);
}

PIER_EXPORT int pier_server_stop(pier_server *s)
{
	if (!s)
		return -EINVAL;
	atomic_store(&s->stop_asked, true);
	poke(s);
	return 0;
}

PIER_EXPORT int pier_server_wait(pier_server *s, int timeout_ms)
{
	struct timespec deadline;
	int r = 0;

	if (!s || timeout_ms < -1 || !s->started)
		return -EINVAL;
	if (timeout_ms > 0)
		deadline = deadline_after(timeout_ms);
	pthread_mutex_lock(&s->mu);
	while (s->running && r == 0) {
		if (timeout_ms == 0)
			r = -EAGAIN;
		else if (timeout_ms < 0)
			pthread_cond_wait(&s->cond, &s->mu);
		else if (pthread_cond_timedwait(&s->cond, &s->mu, &deadline) == ETIMEDOUT &&
			 s->running)
			r = -ETIMEDOUT;
	}
	if (r == 0 && !s->joined) {
		for (unsigned int i = 0; i < s->nthreads; i++)
			pthread_join(s->workers[i].thread, NULL);
		s->joined = true;
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

