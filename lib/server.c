/* SPDX-License-Identifier: MIT */
/*
 * Servers: listeners, their peers, and a fixed pool of workers that hand
 * what the peers send to the handler registered for its service id.
 *
 * A peer whose queue becomes ready goes on the server's run queue, once;
 * a worker takes it, and with it the peer's turn: its messages one after
 * another (pier_peer_recv(), timeout 0), their handlers run, up to
 * TURN_BUDGET, and the answers written together at the end
 * (server-sched.c).  So a message costs one hop (the loop that read it ->
 * a worker), a busy peer's messages share the hand-over and the writes,
 * and busy peers take turns.  One peer's requests still run side by side:
 * a request's handler that runs long loses the turn to a worker looking
 * for work.  Workers wait, when no peer does, in one epoll set with the
 * listeners, the watches, the stop and the run queue's wake.  There is no
 * queue of messages between the reading side and the workers: what waits
 * is in each peer's own receive queue, which the loop stops filling at the
 * configured limits.  See doc/ARCHITECTURE.md, "Servers".
 *
 * Lifetime of a peer's record: only the worker holding its turn may end
 * it; it is freed once ended and no handler of it runs (busy).  Stopping
 * never frees peers: it finishes their queue (in.finished), which makes it
 * ready, and the worker taking its turn ends the peer.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "conn.h"
#include "loop.h"
#include "private.h"
#include "route.h"
#include "server-int.h"
#include "tls-session.h"

#define DEFAULT_MAX_REQUESTS 64u
#define DEFAULT_STOP_TIMEOUT_MS 5000
/* Messages a worker takes of one peer in a turn before the peer goes back
 * to the end of the line: as many as a client typically has in flight,
 * few enough that a busy peer does not keep others waiting long. */
#define TURN_BUDGET 16
/* Turns a worker takes between two looks at its epoll set. */
#define LOOK_EVERY 8
/* Peers one worker accepts before the listener's turn goes to others. */
#define ACCEPT_BURST 16
/* Log lines a server says per second, at most (a flood of unknown stream
 * messages must not flood the application's log). */
#define LOG_BURST 10
#define LOG_WINDOW_NS 1000000000


/* --- the log -------------------------------------------------------------- */

void server_log(pier_server *s, int priority, const char *fmt, ...)
{
	char buf[256];
	unsigned int held = 0;
	bool say;
	int64_t now;
	va_list ap;

	if (!s->cfg->log)
		return;
	now = clock_now_ns();
	pthread_mutex_lock(&s->log_mu);
	if (now - s->log_window >= LOG_WINDOW_NS) {
		held = s->log_held;
		s->log_window = now;
		s->log_said = 0;
		s->log_held = 0;
	}
	say = s->log_said < LOG_BURST;
	if (say)
		s->log_said++;
	else
		s->log_held++;
	pthread_mutex_unlock(&s->log_mu);
	if (held) {
		snprintf(buf, sizeof(buf), "%u more lines were not logged (at most %d a second)",
			 held, LOG_BURST);
		s->cfg->log(s->cfg->log_data, LOG_WARNING, buf);
	}
	if (!say)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->cfg->log(s->cfg->log_data, priority, buf);
}

static const char *remote_of(pier_peer *p)
{
	const char *rest = strstr(p->conn.remote, "://");

	return rest ? rest + 3 : p->conn.remote;
}

/* --- handlers ------------------------------------------------------------- */

static int handler_cmp(const struct handler *a, int32_t id, bool stream)
{
	if (a->stream != stream)
		return a->stream ? 1 : -1;
	return a->id < id ? -1 : a->id > id;
}

static const struct handler *find_handler(const struct pier_server *s, int32_t id, bool stream)
{
	size_t lo = 0, hi = s->nhandlers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = handler_cmp(&s->handlers[mid], id, stream);

		if (c == 0)
			return &s->handlers[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int add_handler(pier_server *s, const struct handler *h)
{
	struct handler *n;
	size_t i = 0;

	if (s->started)
		return -EBUSY;
	if (find_handler(s, h->id, h->stream))
		return -EEXIST;
	n = realloc(s->handlers, (s->nhandlers + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	s->handlers = n;
	while (i < s->nhandlers && handler_cmp(&n[i], h->id, h->stream) < 0)
		i++;
	memmove(&n[i + 1], &n[i], (s->nhandlers - i) * sizeof(*n));
	n[i] = *h;
	s->nhandlers++;
	return 0;
}

/* The handler of id, or the one for ids without one, or NULL. */
static const struct handler *handler_for(const struct pier_server *s, int32_t id, bool stream)
{
	const struct handler *h = find_handler(s, id, stream);

	if (!h && (s->other[stream].req || s->other[stream].str))
		h = &s->other[stream];
	return h;
}

int server_handle_requests_owned(pier_server *s, int32_t service_id, pier_request_handler *fn,
				 void *data, void (*free_data)(void *data))
{
	if (!s || !fn || service_id == PIER_SERVICE_ERROR)
		return -EINVAL;
	return add_handler(s, &(struct handler){ service_id, false, fn, NULL, data, free_data });
}

PIER_EXPORT int pier_server_handle_requests(pier_server *s, int32_t service_id,
					    pier_request_handler *fn, void *userdata)
{
	return server_handle_requests_owned(s, service_id, fn, userdata, NULL);
}

PIER_EXPORT int pier_server_handle_streams(pier_server *s, int32_t service_id,
					   pier_stream_handler *fn, void *userdata)
{
	if (!s || !fn || service_id == PIER_SERVICE_ERROR)
		return -EINVAL;
	return add_handler(s, &(struct handler){ service_id, true, NULL, fn, userdata });
}

static int set_other(pier_server *s, bool stream, const struct handler *h)
{
	if (s->started)
		return -EBUSY;
	if (s->other[stream].req || s->other[stream].str)
		return -EEXIST;
	s->other[stream] = *h;
	return 0;
}

PIER_EXPORT int pier_server_handle_other_requests(pier_server *s, pier_request_handler *fn,
						  void *userdata)
{
	if (!s || !fn)
		return -EINVAL;
	return set_other(s, false, &(struct handler){ 0, false, fn, NULL, userdata });
}

PIER_EXPORT int pier_server_handle_other_streams(pier_server *s, pier_stream_handler *fn,
						 void *userdata)
{
	if (!s || !fn)
		return -EINVAL;
	return set_other(s, true, &(struct handler){ 0, true, NULL, fn, userdata });
}

/* --- peers ---------------------------------------------------------------- */

/* Under p->conn.mu (route.c calls it): one of p's requests closed. */
static void request_closed(struct pier_peer *p)
{
	struct srv_peer *sp = p->owner;
	struct pier_server *s = sp->s;

	if (atomic_fetch_sub(&sp->inflight, 1) == 1 && atomic_load(&s->state) == SRV_DRAINING)
		poke(s);
}

/* Ended and no handler runs: nobody else can reach sp now. */
static void peer_finish(struct pier_server *s, struct srv_peer *sp)
{
	struct pier_peer *p = sp->peer;
	unsigned long left;
	bool last;

	route_in_notify(p, NULL, NULL);
	pthread_mutex_lock(&p->conn.mu);
	p->request_closed = NULL;
	p->owner = NULL;
	pthread_mutex_unlock(&p->conn.mu);
	/* Requests it kept can no longer be answered: the stop need not
	 * wait for them. */
	left = atomic_exchange(&sp->inflight, 0);
	if (left && atomic_load(&s->state) == SRV_DRAINING)
		poke(s);
	if (s->on_disconnect)
		s->on_disconnect(s->hook_data, p, sp->data, sp->reason);
	pthread_mutex_lock(&s->mu);
	if (sp->prev)
		sp->prev->next = sp->next;
	else
		s->peers = sp->next;
	if (sp->next)
		sp->next->prev = sp->prev;
	s->npeers--;
	last = !s->npeers && atomic_load(&s->state) == SRV_CLOSING;
	pthread_mutex_unlock(&s->mu);
	if (last)
		poke(s);
	pier_peer_free(p);
	free(sp);
}

static void refuse(pier_received_request *req, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void refuse(pier_received_request *req, const char *fmt, ...)
{
	char text[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* An automatic answer: a worker never waits for a remote that does
	 * not read it (reading that remote pauses instead). */
	req_refuse(req->req, text);
}

static void dispatch_request(struct pier_server *s, struct turn *t, pier_msg *m,
			     pier_received_request *req)
{
	struct srv_peer *sp = t->sp;
	int32_t id = pier_msg_header(m)->service_id;
	const struct handler *h = handler_for(s, id, false);
	/* Counted before it can close: request_closed() takes it off. */
	unsigned int n = atomic_fetch_add(&sp->inflight, 1) + 1;

	if (atomic_load(&s->state) != SRV_RUNNING) {
		refuse(req, SHUTTING_DOWN);
	} else if (n > s->max_requests) {
		count(s, PIER_SERVER_STAT_OVER_LIMIT);
		refuse(req, "too many requests in flight (limit %u)", s->max_requests);
	} else if (!h) {
		count(s, PIER_SERVER_STAT_UNKNOWN_REQUESTS);
		refuse(req, "unknown service id %d", (int)id);
	} else {
		atomic_fetch_add_explicit(&t->w->requests, 1, memory_order_relaxed);
		if (h->req(h->data, sp->peer, sp->data, m, req) == PIER_HANDLER_KEEP)
			req = NULL;
	}
	pier_received_request_free(req);
}

static void dispatch_stream(struct pier_server *s, struct turn *t, pier_msg *m)
{
	struct srv_peer *sp = t->sp;
	int32_t id = pier_msg_header(m)->service_id;
	const struct handler *h = handler_for(s, id, true);

	if (atomic_load(&s->state) != SRV_RUNNING)
		return;
	if (!h) {
		count(s, PIER_SERVER_STAT_UNKNOWN_STREAMS);
		server_log(s, LOG_NOTICE, "stream message for unknown service id %d from %s dropped",
			   (int)id, remote_of(sp->peer));
		return;
	}
	atomic_fetch_add_explicit(&t->w->streams, 1, memory_order_relaxed);
	h->str(h->data, sp->peer, sp->data, m);
}

/* A worker has the turn of t->sp (server-sched.c): takes its messages
 * one at a time, in order, and handles them, until none is left or
 * TURN_BUDGET were taken; then writes the answers held meanwhile.  A
 * stream message's handler runs within the turn, so that a peer's stream
 * messages are handled one at a time, in order.  A request's handler that
 * runs long loses the turn: its worker leaves once it returned. */
static void on_peer(struct pier_server *s, struct turn *t)
{
	struct srv_peer *sp = t->sp;
	bool mine = true, finish;
	int r = 0;

	/* The answers of the turn's handlers share writes. */
	conn_send_burst(&sp->peer->conn);
	for (int n = 0; n < TURN_BUDGET && mine; n++) {
		pier_received_request *req = NULL;
		pier_msg *m;

		r = pier_peer_recv(sp->peer, &m, &req, 0);
		if (r < 0)
			break;
		if (req) {
			turn_lend(t);
			dispatch_request(s, t, m, req);
			mine = turn_back(t);
		} else {
			dispatch_stream(s, t, m);
		}
		pier_msg_free(m);
	}
	conn_send_flush(&sp->peer->conn, false);
	/* Out of budget: whether it has more (an empty turn costs more than
	 * a look). */
	if (mine && r == 0 && !route_in_ready(sp->peer))
		r = -EAGAIN;
	pthread_mutex_lock(&s->mu);
	if (mine) {
		turn_end_locked(s, t, r);
		if (r < 0 && r != -EAGAIN) {
			/* Its queue finished: the server closes it. */
			sp->ended = true;
			sp->reason = r == -PIER_EDONE ? -PIER_ESHUTDOWN : r;
		}
	}
	finish = --sp->busy == 0 && sp->ended;
	pthread_mutex_unlock(&s->mu);
	if (finish)
		peer_finish(s, sp);
}

/* A peer the listener accepted: served, or closed. */
static void serve_peer(struct pier_server *s, pier_peer *p)
{
	struct srv_peer *sp = NULL;
	bool full;
	int r;

	pthread_mutex_lock(&s->mu);
	full = s->max_peers && s->npeers >= s->max_peers;
	if (!full)
		s->npeers++;
	pthread_mutex_unlock(&s->mu);
	if (full) {
		count(s, PIER_SERVER_STAT_FULL);
		server_log(s, LOG_WARNING,
			   "connection from %s closed: the server serves %u peers, its limit",
			   remote_of(p), s->max_peers);
		pier_peer_free(p);
		return;
	}
	sp = calloc(1, sizeof(*sp));
	r = !sp ? -ENOMEM : s->on_connect ? s->on_connect(s->hook_data, p, &sp->data) : 0;
	if (r < 0) {
		if (sp)
			count(s, PIER_SERVER_STAT_REFUSED_PEERS);
		else
			server_log(s, LOG_WARNING, "connection from %s closed: out of memory",
				   remote_of(p));
		pthread_mutex_lock(&s->mu);
		s->npeers--;
		pthread_mutex_unlock(&s->mu);
		pier_peer_free(p);
		free(sp);
		return;
	}
	sp->s = s;
	sp->peer = p;
	pthread_mutex_lock(&p->conn.mu);
	p->owner = sp;
	p->request_closed = request_closed;
	pthread_mutex_unlock(&p->conn.mu);
	count(s, PIER_SERVER_STAT_ACCEPTED);
	pthread_mutex_lock(&s->mu);
	sp->next = s->peers;
	if (s->peers)
		s->peers->prev = sp;
	s->peers = sp;
	if (atomic_load(&s->state) >= SRV_CLOSING)
		kick_peer(s, sp);
	pthread_mutex_unlock(&s->mu);
	/* Queued for the workers whenever it has something (at once if it
	 * has); the loop reads it from now on.  Nothing ends it before. */
	route_in_notify(p, sched_ready, sp);
}

/* --- listeners ------------------------------------------------------------ */

static void on_listener(struct pier_server *s, struct srv_listener *sl)
{
	bool failed = false;

	pthread_mutex_lock(&s->mu);
	if (sl->closing) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	sl->accepting++;
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < ACCEPT_BURST; i++) {
		pier_peer *p;
		int r = pier_listener_accept(sl->l, &p, 0);

		if (r == -EAGAIN)
			break;
		if (r < 0) {
			char addr[256] = "?";

			pier_listener_address(sl->l, addr, sizeof(addr));
			server_log(s, LOG_ERR, "listener %s failed: %s; it accepts no more",
				   addr, pier_strerror(r));
			failed = true;
			break;
		}
		serve_peer(s, p);
	}
	pthread_mutex_lock(&s->mu);
	sl->accepting--;
	if (sl->closing)
		pthread_cond_broadcast(&s->cond);
	else if (!failed)
		arm(s, &sl->item, EPOLL_CTL_MOD);
	pthread_mutex_unlock(&s->mu);
}

int server_add_listener(pier_server *s, pier_listener *l)
{
	struct srv_listener *sl, **n;

	if (s->started) {
		pier_listener_free(l);
		return -EBUSY;
	}
	sl = calloc(1, sizeof(*sl));
	n = sl ? realloc(s->listeners, (s->nlisteners + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(sl);
		pier_listener_free(l);
		return -ENOMEM;
	}
	s->listeners = n;
	sl->l = l;
	sl->item = (struct item){ ITEM_LISTENER, pier_listener_fd(l) };
	if (sl->item.fd < 0) {
		int r = sl->item.fd;

		free(sl);
		pier_listener_free(l);
		return r;
	}
	s->listeners[s->nlisteners++] = sl;
	return 0;
}

int server_started(const pier_server *s)
{
	return s->started;
}

const pier_config *server_config(const pier_server *s)
{
	return s->cfg;
}

PIER_EXPORT int pier_server_listen(pier_server *s, const char *address)
{
	pier_listener *l;
	int r;

	if (!s || !address)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	r = pier_listener_new(&l, address, s->cfg);
	return r < 0 ? r : server_add_listener(s, l);
}

PIER_EXPORT int pier_server_address(pier_server *s, size_t index, char *buf, size_t len)
{
	if (!s || !buf || len == 0)
		return -EINVAL;
	if (index >= s->nlisteners || !s->listeners[index]->l)
		return -ENOENT;
	return pier_listener_address(s->listeners[index]->l, buf, len);
}

/* --- workers -------------------------------------------------------------- */

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pier_server *s = w->s;
	unsigned int turns = 0;
	bool on = true;

	pthread_setname_np(pthread_self(), "pier-worker");
	while (on) {
		struct epoll_event ev;
		struct turn t = { .w = w };
		struct item *it;
		int n, timeout = 0;

		if (sched_next(s, &t)) {
			on_peer(s, &t);
			/* However busy the peers keep the workers, the
			 * listeners, watches and the stop get a look. */
			if (++turns % LOOK_EVERY)
				continue;
		} else if (sched_sleep(s)) {
			timeout = -1;
		} else {
			continue;
		}
		n = epoll_wait(s->epfd, &ev, 1, timeout);
		if (timeout < 0)
			sched_woke(s);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (ev.data.u64 & 1) {
			on_watch(s, ev.data.u64 >> 1);
			continue;
		}
		it = ev.data.ptr;
		switch (it->kind) {
		case ITEM_WAKE:
			on = on_wake(s);
			break;
		case ITEM_TIMER:
			on_timer(s);
			break;
		case ITEM_LEND_TIMER:
			on_lend_timer(s);
			break;
		case ITEM_RUNQ:
			on_runq_wake(s);
			break;
		case ITEM_LISTENER:
			on_listener(s, pier_container_of(it, struct srv_listener, item));
			break;
		}
	}
	pthread_mutex_lock(&s->mu);
	s->running--;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static unsigned int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned int)n;
}

PIER_EXPORT int pier_server_start(pier_server *s)
{
	sigset_t all, old;
	unsigned int n;

	if (!s)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	n = s->nworkers ? s->nworkers : online_cpus();
	s->workers = aligned_alloc(_Alignof(struct worker), n * sizeof(*s->workers));
	if (!s->workers)
		return -ENOMEM;
	memset(s->workers, 0, n * sizeof(*s->workers));
	for (size_t i = 0; i < s->nlisteners; i++)
		arm(s, &s->listeners[i]->item, EPOLL_CTL_ADD);
	s->started = true;
	atomic_store(&s->state, SRV_RUNNING);
	/* Signals go to the application's threads, never to a worker. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&s->mu);
	for (; s->nthreads < n; s->nthreads++) {
		struct worker *w = &s->workers[s->nthreads];

		w->s = s;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			break;
		s->running++;
	}
	pthread_mutex_unlock(&s->mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!s->nthreads) {
		/* Nothing runs: a stop finds it stopped. */
		atomic_store(&s->state, SRV_STOPPED);
		return -EAGAIN;
	}
	pier_notify("READY=1\nSTATUS=Serving");
	return 0;
}

/* --- the server ----------------------------------------------------------- */

/* A configuration of the server's own with cfg's settings, its TLS
 * settings copied, and loop as its loop. */
static int config_copy(pier_config **out, const pier_config *cfg, pier_loop *loop)
{
	pier_config *c;
	int r;

	r = pier_config_new(&c);
	if (r < 0)
		return r;
	if (cfg) {
		*c = *cfg;
		c->loop = NULL;
		c->tls = NULL;
		c->loop_attr = NULL;
	}
	pier_config_set_loop(c, loop);
	if (cfg && cfg->tls) {
		const struct tls_settings *t = cfg->tls;

		if ((r = pier_config_set_tls_ca(c, t->ca_file, t->ca_dir)) < 0 ||
		    (r = pier_config_set_tls_cert(c, t->cert_file, t->key_file)) < 0 ||
		    (r = pier_config_set_tls_client_auth(c, t->client_auth)) < 0 ||
		    (r = pier_config_set_tls_server_name(c, t->server_name)) < 0) {
			pier_config_free(c);
			return r;
		}
	}
	*out = c;
	return 0;
}

static int server_fds(struct pier_server *s)
{
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wake = (struct item){ ITEM_WAKE, eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	s->timer = (struct item){ ITEM_TIMER,
				  timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK) };
	s->lend_timer = (struct item){ ITEM_LEND_TIMER,
				       timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK) };
	s->runq_wake = (struct item){ ITEM_RUNQ,
				      eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE) };
	if (s->epfd < 0 || s->wake.fd < 0 || s->timer.fd < 0 || s->lend_timer.fd < 0 ||
	    s->runq_wake.fd < 0)
		return -errno;
	arm(s, &s->wake, EPOLL_CTL_ADD);
	arm(s, &s->timer, EPOLL_CTL_ADD);
	arm(s, &s->lend_timer, EPOLL_CTL_ADD);
	/* Level-triggered: each wake written wakes a worker. */
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->runq_wake.fd,
		  &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &s->runq_wake });
	return 0;
}

static void server_destroy(struct pier_server *s)
{
	for (size_t i = 0; i < s->nlisteners; i++) {
		pier_listener_free(s->listeners[i]->l);
		free(s->listeners[i]);
	}
	free(s->listeners);
	end_watches_uncalled(s);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->wake.fd >= 0)
		close(s->wake.fd);
	if (s->timer.fd >= 0)
		close(s->timer.fd);
	if (s->lend_timer.fd >= 0)
		close(s->lend_timer.fd);
	if (s->runq_wake.fd >= 0)
		close(s->runq_wake.fd);
	pier_config_free(s->cfg);
	for (size_t i = 0; i < s->nhandlers; i++)
		if (s->handlers[i].free_data)
			s->handlers[i].free_data(s->handlers[i].data);
	free(s->handlers);
	free(s->workers);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->log_mu);
	pthread_mutex_destroy(&s->rq_mu);
	free(s);
}

PIER_EXPORT int pier_server_new(pier_server **out, const pier_config *cfg)
{
	struct pier_server *s;
	pier_loop *loop;
	int r;

	if (!out)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->epfd = s->wake.fd = s->timer.fd = s->lend_timer.fd = s->runq_wake.fd = -1;
	pthread_mutex_init(&s->mu, NULL);
	cond_init_monotonic(&s->cond);
	pthread_mutex_init(&s->log_mu, NULL);
	pthread_mutex_init(&s->rq_mu, NULL);
	s->runq_tail = &s->runq;
	idmap_init(&s->watches);
	s->max_requests = DEFAULT_MAX_REQUESTS;
	s->stop_timeout_ms = DEFAULT_STOP_TIMEOUT_MS;
	/* One loop for every listener and peer. */
	if (cfg && cfg->loop)
		r = (loop = pier_loop_ref(cfg->loop)) ? 0 : -EINVAL;
	else
		r = pier_loop_new_with_config(&loop, cfg);
	if (r == 0) {
		r = config_copy(&s->cfg, cfg, loop);
		pier_loop_unref(loop);
	}
	if (r == 0)
		r = server_fds(s);
	if (r < 0) {
		server_destroy(s);
		return r;
	}
	*out = s;
	return 0;
}

PIER_EXPORT int pier_server_set_workers(pier_server *s, unsigned int workers)
{
	if (!s || workers > 1024)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	s->nworkers = workers;
	return 0;
}

PIER_EXPORT int pier_server_set_max_peers(pier_server *s, unsigned int max_peers)
{
	if (!s)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	s->max_peers = max_peers;
	return 0;
}

PIER_EXPORT int pier_server_set_max_requests(pier_server *s, unsigned int max_requests)
{
	if (!s || max_requests == 0)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	s->max_requests = max_requests;
	return 0;
}

PIER_EXPORT int pier_server_set_stop_timeout(pier_server *s, int timeout_ms)
{
	if (!s || timeout_ms < -1)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	s->stop_timeout_ms = timeout_ms;
	return 0;
}

PIER_EXPORT int pier_server_set_peer_hooks(pier_server *s, pier_connect_hook *on_connect,
					   pier_disconnect_hook *on_disconnect, void *userdata)
{
	if (!s)
		return -EINVAL;
	if (s->started)
		return -EBUSY;
	s->on_connect = on_connect;
	s->on_disconnect = on_disconnect;
	s->hook_data = userdata;
	return 0;
}

PIER_EXPORT uint64_t pier_server_stat(pier_server *s, enum pier_server_stat stat)
{
	uint64_t n;

	if (!s || (unsigned int)stat >= PIER_SERVER_STAT_END_)
		return 0;
	if (stat == PIER_SERVER_STAT_IN_FLIGHT) {
		pthread_mutex_lock(&s->mu);
		n = inflight_locked(s);
		pthread_mutex_unlock(&s->mu);
		return n;
	}
	if (stat == PIER_SERVER_STAT_REQUESTS || stat == PIER_SERVER_STAT_STREAMS) {
		/* Counted by each worker on its own. */
		n = 0;
		pthread_mutex_lock(&s->mu);
		for (unsigned int i = 0; i < s->nthreads; i++) {
			struct worker *w = &s->workers[i];

			n += atomic_load_explicit(stat == PIER_SERVER_STAT_REQUESTS ? &w->requests
										 : &w->streams,
						  memory_order_relaxed);
		}
		pthread_mutex_unlock(&s->mu);
		return n;
	}
	if (stat == PIER_SERVER_STAT_PEERS) {
		pthread_mutex_lock(&s->mu);
		n = 0;
		for (struct srv_peer *sp = s->peers; sp; sp = sp->next)
			n++;
		pthread_mutex_unlock(&s->mu);
		return n;
	}
	return atomic_load_explicit(&s->stats[stat], memory_order_relaxed);
}

PIER_EXPORT void pier_server_free(pier_server *s)
{
	if (!s)
		return;
	if (s->started) {
		pier_server_stop(s);
		pier_server_wait(s, -1);
	}
	server_destroy(s);
}
