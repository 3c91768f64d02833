/* SPDX-License-Identifier: MIT */
/* Listeners: accept on the loop, hand peers out to the application. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <syslog.h>
#include <unistd.h>

#include "clock.h"
#include "private.h"
#include "route.h"
#include "tls-session.h"
#include "transport.h"

/* Peers accepted but not yet taken by the application; beyond this the
 * loop stops accepting and the kernel's backlog holds the rest. */
#define ACCEPT_QUEUE 64
/* The kernel clamps the backlog to net.core.somaxconn, the system's
 * maximum: bursts of connections wait there instead of being refused. */
#define LISTEN_BACKLOG INT_MAX
/* TLS handshakes under way, at most.  They do not count against the accept
 * queue, or connections that never speak would keep real clients waiting
 * in the backlog; one more accepted evicts one (hs_victim()).  Measured in
 * RSS, a silent client's pending handshake costs about 16 KiB (the
 * connection, the SSL object and its BIOs, the read buffer as far as it
 * is touched), one that sent part of its hello about 53 KiB (OpenSSL's
 * handshake buffers): the set holds at most about 7 MiB. */
#define MAX_HANDSHAKES 128
/* The queue has room for every handshake under way to finish, whoever
 * waits in it already. */
#define QUEUE_SIZE (ACCEPT_QUEUE + MAX_HANDSHAKES)
/* The handshake deadline when the configuration sets no connect timeout:
 * a handshake takes two round trips once the connection is up; this
 * leaves room for a lost packet's retransmission on a slow link. */
#define HANDSHAKE_TIMEOUT_MS 3000
/* Log lines a listener says per second, at most: a flood of failing
 * connections must not flood the application's log too. */
#define LOG_BURST 10
#define LOG_WINDOW_NS 1000000000
/* How long accepting pauses when it fails for want of fds or memory: from
 * the first, doubling up to the last while it keeps failing. */
#define ACCEPT_PAUSE_MIN_MS 5u
#define ACCEPT_PAUSE_MAX_MS 500u

struct pier_listener {
	struct pier_loop *loop;
	const struct transport *t;
	struct pier_config cfg;
	int fd;
	struct transport_addr addr;
	/* The socket file, by its absolute path (the working directory may
	 * change before it is removed), or NULL. */
	char *file;
	struct tls_ctx *tls_ctx; /* tls:// */

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct pier_peer *queue[QUEUE_SIZE]; /* owned until accepted */
	unsigned int head, count;
	int error;
	int evfd;
	bool stopped; /* the loop let go of the socket */

	/* Loop thread only. */
	struct loop_op op;
	struct loop_task start_task, stop_task, resume_task;
	bool stopping;
	struct pier_peer *hs[MAX_HANDSHAKES]; /* handshakes under way, oldest first; owned */
	unsigned int nhs;
	int hs_timeout_ms;
	int64_t log_window;   /* when the current second of log lines began */
	unsigned int log_said, log_held; /* lines said and held back in it */
	struct loop_timer log_timer; /* says how many were held back */
	/* Accepting failed for want of fds or memory: it pauses. */
	struct loop_timer pause_timer;
	unsigned int pause_ms; /* the last pause; 0 once accepting works */
};

static void start_accept(struct pier_listener *l);

static void update_fd_locked(struct pier_listener *l)
{
	uint64_t v = 1;
	ssize_t n = 0;

	if (l->evfd < 0)
		return;
	/* Readable while an accept would not block. */
	if (l->count || l->error)
		n = write(l->evfd, &v, sizeof(v));
	else
		n = read(l->evfd, &v, sizeof(v));
	(void)n;
}

/* The loop is done with l; the application thread waiting in
 * pier_listener_free() may free it as soon as it sees this. */
static void listener_stopped(struct pier_listener *l)
{
	loop_user_done(l->loop);
	pthread_mutex_lock(&l->mu);
	l->stopped = true;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

/* --- the log -------------------------------------------------------------- */

static void log_v(struct pier_listener *l, int priority, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void log_v(struct pier_listener *l, int priority, const char *fmt, va_list ap)
{
	char buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	l->cfg.log(l->cfg.log_data, priority, buf);
}

static void log_say(struct pier_listener *l, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void log_say(struct pier_listener *l, int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(l, priority, fmt, ap);
	va_end(ap);
}

/* The second of held-back lines is over: says how many, and starts anew. */
static void log_held_back(struct loop_timer *t)
{
	struct pier_listener *l = pier_container_of(t, struct pier_listener, log_timer);

	log_say(l, LOG_WARNING, "%u more lines about dropped connections were not logged "
		"(at most %d lines a second)", l->log_held, LOG_BURST);
	l->log_held = 0;
	l->log_said = 0;
	l->log_window = clock_now_ns();
}

/* Loop thread: logs a dropped connection (or a failed accept), unless
 * LOG_BURST lines were said this second already (then the timer says how
 * many were not). */
static void log_drop(struct pier_listener *l, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void log_drop(struct pier_listener *l, int priority, const char *fmt, ...)
{
	int64_t now;
	va_list ap;

	if (!l->cfg.log)
		return;
	now = clock_now_ns();
	if (!l->log_timer.armed && now - l->log_window >= LOG_WINDOW_NS) {
		l->log_window = now;
		l->log_said = 0;
	}
	if (l->log_said == LOG_BURST) {
		if (!l->log_held++)
			loop_timer_arm(l->loop, &l->log_timer, l->log_window + LOG_WINDOW_NS);
		return;
	}
	l->log_said++;
	va_start(ap, fmt);
	log_v(l, priority, fmt, ap);
	va_end(ap);
}

/* The remote address of p without its scheme, for the log. */
static const char *remote_of(const struct pier_peer *p)
{
	const char *rest = strstr(p->conn.remote, "://");

	return rest ? rest + 3 : p->conn.remote;
}

/* --- handshakes under way ------------------------------------------------- */

static void hs_remove(struct pier_listener *l, struct pier_peer *p)
{
	for (unsigned int i = 0; i < l->nhs; i++) {
		if (l->hs[i] == p) {
			memmove(&l->hs[i], &l->hs[i + 1], (l->nhs - i - 1) * sizeof(l->hs[0]));
			l->nhs--;
			return;
		}
	}
}

/* The handshake to give up for a newer one: the oldest whose client has
 * not sent its hello yet (a client that means it sends that at once), or
 * else the oldest. */
static struct pier_peer *hs_victim(struct pier_listener *l)
{
	for (unsigned int i = 0; i < l->nhs; i++) {
		if (!conn_hello_seen(&l->hs[i]->conn))
			return l->hs[i];
	}
	return l->hs[0];
}

/* The set is full: one handshake makes room for a newer one.  Its
 * connection is closed at once, not after a graceful close's linger. */
static void hs_evict(struct pier_listener *l)
{
	struct pier_peer *p = hs_victim(l);
	bool hello = conn_hello_seen(&p->conn);

	hs_remove(l, p);
	p->conn.hs_done = NULL;
	log_drop(l, LOG_WARNING,
		 "tls handshake from %s dropped for a newer connection: %d handshakes "
		 "were under way, the most a listener keeps, and this was the oldest%s",
		 remote_of(p), MAX_HANDSHAKES, hello ? "" : " with no client hello");
	conn_handshake_abort(&p->conn, -ECONNABORTED);
	pier_peer_free(p);
}

/* A connection is ready for the application: into the queue. */
static void deliver(struct pier_listener *l, struct pier_peer *p)
{
	pthread_mutex_lock(&l->mu);
	assert(l->count < QUEUE_SIZE); /* accepting stops at ACCEPT_QUEUE */
	l->queue[(l->head + l->count) % QUEUE_SIZE] = p;
	l->count++;
	update_fd_locked(l);
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

/* Loop thread: an accepted connection's TLS handshake is done (err 0) or
 * failed; a failed one is closed, and the application never sees it. */
static void handshake_done(struct conn *c, int err)
{
	struct pier_peer *p = pier_container_of(c, struct pier_peer, conn);
	struct pier_listener *l = c->hs_ctx;

	hs_remove(l, p);
	if (err == -ETIMEDOUT) {
		log_drop(l, LOG_NOTICE, "tls handshake from %s timed out after %d ms",
			 remote_of(p), l->hs_timeout_ms);
	} else if (err) {
		log_drop(l, LOG_NOTICE, "tls handshake from %s failed: %s", remote_of(p),
			 pier_strerror(err));
	}
	if (err)
		pier_peer_free(p);
	else
		deliver(l, p);
	start_accept(l);
}

/* Accepting failed for want of fds or memory: tries again after a pause
 * that doubles while it keeps failing, up to ACCEPT_PAUSE_MAX_MS. */
static void accept_pause(struct pier_listener *l, int err)
{
	l->pause_ms = l->pause_ms ? l->pause_ms * 2 : ACCEPT_PAUSE_MIN_MS;
	if (l->pause_ms > ACCEPT_PAUSE_MAX_MS)
		l->pause_ms = ACCEPT_PAUSE_MAX_MS;
	log_drop(l, LOG_WARNING, "cannot accept connections: %s; trying again in %u ms",
		 pier_strerror(err), l->pause_ms);
	loop_timer_arm(l->loop, &l->pause_timer,
		       clock_now_ns() + (int64_t)l->pause_ms * 1000000);
}

static void accept_resume(struct loop_timer *t)
{
	start_accept(pier_container_of(t, struct pier_listener, pause_timer));
}

/* Whether an error of accept() concerns one connection only, so that the
 * next accept may work: the connection was gone before it was accepted, a
 * firewall refused it, or (Linux passes network errors already pending on
 * the new socket to accept(), see accept(2)) its network failed. */
static bool accept_error_passes(int res)
{
	switch (-res) {
	case ECONNABORTED:
	case EINTR:
	case EAGAIN:
	case EPERM:
	case EPROTO:
	case ENETDOWN:
	case ENETUNREACH:
	case EHOSTDOWN:
	case EHOSTUNREACH:
	case ENONET:
	case ENOPROTOOPT:
	case EOPNOTSUPP:
		return true;
	default:
		return false;
	}
}

static void accept_done(struct loop_op *op, int res)
{
	struct pier_listener *l = pier_container_of(op, struct pier_listener, op);
	struct tls *tls = NULL;
	struct pier_peer *p;
	int r;

	if (l->stopping) {
		if (res >= 0)
			close(res);
		listener_stopped(l);
		return;
	}
	if (res < 0) {
		/* Out of fds or memory: the connection waits in the backlog,
		 * and accepting again at once would fail again at once, so
		 * the listener pauses.  An error of one connection: the next
		 * one.  Neither ends the listener; any other error, of the
		 * listening socket itself, does. */
		if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
			accept_pause(l, res);
			return;
		}
		if (accept_error_passes(res)) {
			start_accept(l);
			return;
		}
		pthread_mutex_lock(&l->mu);
		l->error = res;
		update_fd_locked(l);
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->mu);
		return;
	}
	l->pause_ms = 0;
	l->t->prepare(res);
	if (l->tls_ctx && l->nhs == MAX_HANDSHAKES)
		hs_evict(l);
	r = l->tls_ctx ? tls_new(&tls, l->tls_ctx, NULL) : 0;
	if (r == 0) {
		r = route_peer_new(&p, res, l->t, &l->cfg, loop_ref(l->loop), tls);
		if (r < 0)
			loop_unref(l->loop); /* never the last: the listener holds one */
	}
	if (r < 0) {
		close(res);
		tls_free(tls);
		start_accept(l);
		return;
	}
	if (tls) {
		/* The application gets it once the handshake is done. */
		p->conn.hs_done = handshake_done;
		p->conn.hs_ctx = l;
		l->hs[l->nhs++] = p;
		conn_start(&p->conn);
		conn_handshake_timeout(&p->conn, l->hs_timeout_ms);
	} else {
		deliver(l, p);
		conn_start(&p->conn);
	}
	start_accept(l);
}

static void start_accept(struct pier_listener *l)
{
	bool full;

	pthread_mutex_lock(&l->mu);
	full = l->count >= ACCEPT_QUEUE;
	pthread_mutex_unlock(&l->mu);
	if (full || l->op.in_flight || l->stopping || l->pause_timer.armed)
		return;
	l->op = (struct loop_op){
		.cb = accept_done,
		.kind = LOOP_OP_ACCEPT,
		.fd = l->fd,
	};
	loop_submit(l->loop, &l->op);
}

static void start_task(struct loop_task *t, unsigned int events)
{
	struct pier_listener *l = pier_container_of(t, struct pier_listener, start_task);

	loop_user_add(l->loop);
	start_accept(l);
}

static void resume_task(struct loop_task *t, unsigned int events)
{
	start_accept(pier_container_of(t, struct pier_listener, resume_task));
}

static void stop_task(struct loop_task *t, unsigned int events)
{
	struct pier_listener *l = pier_container_of(t, struct pier_listener, stop_task);

	l->stopping = true;
	/* Handshakes under way end with the listener. */
	for (unsigned int i = 0; i < l->nhs; i++) {
		l->hs[i]->conn.hs_done = NULL;
		pier_peer_free(l->hs[i]);
	}
	l->nhs = 0;
	loop_timer_disarm(l->loop, &l->log_timer);
	loop_timer_disarm(l->loop, &l->pause_timer);
	if (l->op.in_flight)
		loop_cancel(l->loop, &l->op); /* accept_done() finishes */
	else
		listener_stopped(l);
}

/* The absolute path of a relative socket file path, as it is now. */
static char *absolute_path(const char *path)
{
	char *cwd, *abs = NULL;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (cwd && asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

static int listen_socket(struct pier_listener *l)
{
	const struct transport_listen o = {
		.backlog = LISTEN_BACKLOG,
		.file_mode = l->cfg.socket_mode,
		.file_gid = l->cfg.socket_gid,
	};

	if (l->addr.un.sun_family == AF_UNIX && !l->addr.abstract) {
		l->file = absolute_path(l->addr.un.sun_path);
		if (!l->file)
			return errno ? -errno : -ENOMEM;
	}
	return l->t->listen(&l->addr, &o);
}

/* Makes l's copy of cfg (NULL: the defaults), which keeps no pointers. */
static void listener_config(struct pier_listener *l, const pier_config *cfg)
{
	if (cfg)
		l->cfg = *cfg;
	else
		config_defaults(&l->cfg);
	l->cfg.loop = NULL;
	l->cfg.tls = NULL;
	l->cfg.loop_attr = NULL;
	l->evfd = -1;
	l->hs_timeout_ms = l->cfg.connect_timeout_set ? l->cfg.connect_timeout_ms
						       : HANDSHAKE_TIMEOUT_MS;
	l->log_timer.fn = log_held_back;
	l->pause_timer.fn = accept_resume;
}

/* l's loop: cfg's, or a new one.  0 or -errno. */
static int listener_loop(struct pier_listener *l, const pier_config *cfg)
{
	if (cfg && cfg->loop) {
		l->loop = loop_ref(cfg->loop);
		return 0;
	}
	return loop_new(&l->loop, cfg ? cfg->loop_attr : NULL);
}

/* Once nothing can fail: l starts accepting on its loop. */
static void listener_go(struct pier_listener *l)
{
	/* The socket stays non-blocking for epoll, which calls accept4() on
	 * the loop thread once the socket is readable: the connection may be
	 * gone by then (taken by another process sharing the socket), and a
	 * blocking accept4() would stop the loop.  io_uring waits for a
	 * connection in the kernel, and gets a blocking socket: kernels
	 * without its fast poll (before 5.7) would hand a non-blocking one's
	 * EAGAIN back at once, and the loop would spin. */
	if (l->loop->be == &loop_backend_uring)
		fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) & ~O_NONBLOCK);
	else
		fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
	pthread_mutex_init(&l->mu, NULL);
	cond_init_monotonic(&l->cond);
	l->start_task.fn = start_task;
	l->stop_task.fn = stop_task;
	l->resume_task.fn = resume_task;
	loop_post(l->loop, &l->start_task, 0);
}

PIER_EXPORT int pier_listener_new(pier_listener **out, const char *address,
				  const pier_config *cfg)
{
	struct pier_listener *l;
	int r;

	if (!out || !address)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	r = transport_parse(address, &l->addr);
	if (r < 0)
		goto fail;
	l->t = l->addr.t;
	listener_config(l, cfg);
	if (l->t->caps & TRANSPORT_TLS) {
		/* Certificate and key load now: errors show here. */
		r = tls_ctx_new(&l->tls_ctx, cfg ? cfg->tls : NULL, true);
		if (r < 0)
			goto fail;
	}
	l->fd = listen_socket(l);
	if (l->fd < 0) {
		r = l->fd;
		goto fail;
	}
	r = listener_loop(l, cfg);
	if (r < 0)
		goto fail_fd;
	listener_go(l);
	*out = l;
	return 0;

fail_fd:
	close(l->fd);
	if (l->file)
		unlink(l->file);
fail:
	if (l->tls_ctx)
		tls_ctx_free(l->tls_ctx);
	free(l->file);
	free(l);
	return r;
}

/* Whether fd is a listening socket of a kind pier serves: 0, or why not
 * (-ENOTSOCK, -EINVAL: it does not listen, -EPROTONOSUPPORT). */
static int check_listening(int fd, const struct transport **t)
{
	int r, on = 0, proto = 0;
	socklen_t len = sizeof(on);

	r = transport_for_fd(fd, t);
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) < 0)
		return -errno;
	if (!on)
		return -EINVAL;
	/* Stream sockets of the Internet families are TCP's, but for SCTP's
	 * and MPTCP's. */
	len = sizeof(proto);
	if (*t == &transport_tcp &&
	    (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &len) < 0 || proto != IPPROTO_TCP))
		return -EPROTONOSUPPORT;
	return 0;
}

PIER_EXPORT int pier_listener_adopt(pier_listener **out, int fd, const pier_config *cfg)
{
	struct pier_listener *l;
	const struct transport *t;
	int r;

	if (!out || fd < 0)
		return -EINVAL;
	r = check_listening(fd, &t);
	if (r < 0)
		return r;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->t = t;
	l->fd = fd;
	listener_config(l, cfg);
	r = listener_loop(l, cfg);
	if (r < 0) {
		free(l);
		return r;
	}
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	listener_go(l);
	*out = l;
	return 0;
}

PIER_EXPORT int pier_listener_accept(pier_listener *l, pier_peer **out, int timeout_ms)
{
	struct timespec deadline;
	struct pier_peer *p = NULL;
	bool resume;
	int r = 0;

	if (!l || !out || timeout_ms < -1)
		return -EINVAL;
	if (timeout_ms > 0)
		deadline = deadline_after(timeout_ms);
	pthread_mutex_lock(&l->mu);
	while (!l->count && !l->error && r == 0) {
		int e;

		if (timeout_ms == 0) {
			r = -EAGAIN;
			break;
		}
		e = timeout_ms < 0 ? pthread_cond_wait(&l->cond, &l->mu)
				   : pthread_cond_timedwait(&l->cond, &l->mu, &deadline);
		if (e == ETIMEDOUT && !l->count)
			r = -ETIMEDOUT;
	}
	if (l->count) {
		resume = l->count == ACCEPT_QUEUE;
		p = l->queue[l->head];
		l->head = (l->head + 1) % QUEUE_SIZE;
		l->count--;
		update_fd_locked(l);
		r = 0;
		if (resume)
			loop_post(l->loop, &l->resume_task, 0);
	} else if (l->error) {
		r = l->error;
	}
	pthread_mutex_unlock(&l->mu);
	if (p)
		*out = p;
	return r;
}

PIER_EXPORT int pier_listener_fd(pier_listener *l)
{
	int r;

	if (!l)
		return -EINVAL;
	pthread_mutex_lock(&l->mu);
	if (l->evfd < 0) {
		l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (l->evfd >= 0)
			update_fd_locked(l);
	}
	r = l->evfd < 0 ? -errno : l->evfd;
	pthread_mutex_unlock(&l->mu);
	return r;
}

PIER_EXPORT int pier_listener_address(pier_listener *l, char *buf, size_t len)
{
	if (!l || !buf || len == 0)
		return -EINVAL;
	return l->t->describe(l->t, l->fd, false, buf, len);
}

PIER_EXPORT void pier_listener_free(pier_listener *l)
{
	if (!l)
		return;
	/* Let the loop give up the socket, and wait until it has. */
	loop_post(l->loop, &l->stop_task, 0);
	pthread_mutex_lock(&l->mu);
	while (!l->stopped)
		pthread_cond_wait(&l->cond, &l->mu);
	pthread_mutex_unlock(&l->mu);
	close(l->fd);
	if (l->file)
		unlink(l->file);
	/* Peers nobody accepted are closed like freed peers. */
	while (l->count) {
		pier_peer_free(l->queue[l->head]);
		l->head = (l->head + 1) % QUEUE_SIZE;
		l->count--;
	}
	if (l->evfd >= 0)
		close(l->evfd);
	pthread_mutex_destroy(&l->mu);
	pthread_cond_destroy(&l->cond);
	loop_unref(l->loop);
	if (l->tls_ctx)
		tls_ctx_free(l->tls_ctx);
	free(l->file);
	free(l);
}
