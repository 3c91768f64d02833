/* SPDX-License-Identifier: MIT */
/*
 * The read role: who reads the socket, and reading.  A thread that waits
 * for a message reads for itself while nobody else does (no hop through the
 * loop); the loop reads when something must be read with no thread waiting,
 * and during a handshake, which the loop drives.  What is read goes to the
 * link's framing, which hands complete messages up.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"

/* Under mu: whether the loop must read with no thread waiting. */
static bool background_locked(const struct conn *c)
{
	return c->state == CONN_HANDSHAKING || c->rd_background || c->state >= CONN_CLOSING;
}

bool conn_may_read_locked(const struct conn *c)
{
	return c->rd == RD_NONE && c->pause == PAUSE_NONE && c->state != CONN_HANDSHAKING;
}

void conn_rd_kick_locked(struct conn *c)
{
	if (c->rd != RD_NONE || c->pause != PAUSE_NONE || c->error)
		return;
	if (c->waiters && c->state != CONN_HANDSHAKING) {
		/* It takes the role when it wakes. */
		pthread_cond_broadcast(c->waiters->cond);
	} else if (background_locked(c)) {
		conn_set_rd_locked(c, RD_LOOP);
		conn_post(c, CONN_EV_READ);
	}
}

void conn_rd_background_locked(struct conn *c)
{
	c->rd_background = true;
	conn_rd_kick_locked(c);
}

void conn_rd_waiter_add_locked(struct conn *c, struct rd_waiter *w)
{
	w->next = c->waiters;
	c->waiters = w;
}

void conn_rd_waiter_del_locked(struct conn *c, struct rd_waiter *w)
{
	for (struct rd_waiter **p = &c->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
}

void conn_rd_wake_locked(struct conn *c, const void *what)
{
	if (what == c->rd_waits_on && c->wake_fd >= 0 &&
	    !pthread_equal(c->rd_thread, pthread_self())) {
		/* The thread waiting for it reads the socket: cut that
		 * short. */
		uint64_t v = 1;
		ssize_t n = write(c->wake_fd, &v, sizeof(v));

		(void)n;
	}
}

/* --- reading from an application thread ---------------------------------- */

/* Has a blocking recvmsg give up within about ms (> 0) milliseconds, and
 * not much sooner: the socket's receive timeout, set only when what it
 * holds would overshoot or fall well short (a wait of the same timeout
 * as the last costs no system call). */
static void rcvtimeo(struct link *l, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (l->rcvtimeo_ms && l->rcvtimeo_ms <= ms && l->rcvtimeo_ms >= ms - ms / 8)
		return;
	if (setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
		l->rcvtimeo_ms = ms;
}

/* One recvmsg by the thread holding the read role (or by
 * conn_read_pending()), waiting for data first unless timeout_ms is 0.
 * Without a wake fd, a blocking recvmsg is the only system call: the
 * socket's receive timeout bounds it when there is a deadline, and
 * closing wakes it with shutdown().  With one, poll() waits for both. */
static int rd_app(struct conn *c, int wake_fd, int timeout_ms, const struct timespec *deadline)
{
	struct link *l = &c->link;

	if (l->f->rd_held && l->f->rd_held(l)) {
		/* First what the link holds (a pause left it there): the
		 * wait looks again after it. */
		return l->f->rd_done(l, -EAGAIN);
	}
	for (;;) {
		int flags = l->f->rd_prepare(l), ms = -1, n;
		struct pollfd pfd[2] = { { l->fd, POLLIN, 0 }, { wake_fd, POLLIN, 0 } };
		bool blocking = wake_fd < 0 && timeout_ms != 0;
		ssize_t res;

		if (flags < 0)
			return flags;
		if (blocking && timeout_ms > 0) {
			ms = ms_until(deadline);
			if (ms == 0)
				return -ETIMEDOUT;
			rcvtimeo(l, ms);
		}
		if (!blocking)
			flags |= MSG_DONTWAIT;
		res = link_recv(l, flags);
		if (res > 0)
			conn_count_read(c);
		if (res >= 0)
			return l->f->rd_done(l, res);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (timeout_ms == 0)
			return -EAGAIN;
		/* The socket's timeout expired (or the fd does not block):
		 * poll() until the deadline. */
		if (timeout_ms > 0 && (ms = ms_until(deadline)) == 0)
			return -ETIMEDOUT;
		n = poll(pfd, wake_fd >= 0 ? 2 : 1, ms);
		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && pfd[1].revents) {
			uint64_t v;

			/* Woken: the wait looks again. */
			if (read(wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return -errno;
			return 0;
		}
	}
}

int conn_read_locked(struct conn *c, const void *what, bool interruptible, int timeout_ms,
		     const struct timespec *deadline)
{
	int r, wake_fd = -1;

	assert(conn_may_read_locked(c));
	if (interruptible && timeout_ms != 0) {
		if (c->wake_fd < 0)
			c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->wake_fd < 0)
			return -errno; /* before taking anything */
		wake_fd = c->wake_fd;
	}
	conn_set_rd_locked(c, RD_APP);
	c->rd_waits_on = what;
	c->rd_thread = pthread_self();
	pthread_mutex_unlock(&c->mu);

	r = rd_app(c, wake_fd, timeout_ms, deadline);

	pthread_mutex_lock(&c->mu);
	c->rd_waits_on = NULL;
	if (c->rd == RD_LEAVING) {
		/* The loop waits for this thread to leave the socket. */
		conn_set_rd_locked(c, RD_NONE);
		conn_post(c, CONN_EV_FINISH);
	} else {
		conn_set_rd_locked(c, RD_NONE);
	}
	if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
		conn_fail_locked(c, r);
	return r;
}

/* --- reading on the loop ------------------------------------------------- */

static void read_done(struct loop_op *op, int res);

/* Under mu, loop thread: whether the loop may read now. */
static bool loop_reads_locked(const struct conn *c)
{
	return !c->error && c->pause == PAUSE_NONE && c->rd == RD_LOOP;
}

/* Loop thread, once the application let go: routes what already arrived,
 * so that requests in it get their answers before the connection closes
 * (as far as the remote reads them: the answers pause reading too). */
void conn_read_pending(struct conn *c)
{
	int r = 0;

	if (c->rd_op.in_flight || c->link.fd < 0)
		return; /* the read in flight routes it */
	for (int i = 0; i < 64 && r == 0; i++) {
		bool go;

		pthread_mutex_lock(&c->mu);
		go = loop_reads_locked(c);
		pthread_mutex_unlock(&c->mu);
		if (!go)
			break;
		r = rd_app(c, -1, 0, NULL);
	}
	if (r < 0 && r != -EAGAIN)
		conn_fail(c, r);
}

void conn_read_start(struct conn *c)
{
	struct link *l = &c->link;
	int flags;
	bool go;

	if (c->rd_op.in_flight || l->fd < 0)
		return;
	pthread_mutex_lock(&c->mu);
	go = loop_reads_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (!go)
		return;
	if (l->f->rd_held && l->f->rd_held(l)) {
		/* First what the link holds (a pause left it there), or what
		 * it sends first (a client's hello). */
		int r = l->f->rd_done(l, -EAGAIN);

		pthread_mutex_lock(&c->mu);
		if (r < 0)
			conn_fail_locked(c, r);
		go = loop_reads_locked(c);
		pthread_mutex_unlock(&c->mu);
		if (!go)
			return;
	}
	flags = l->f->rd_prepare(l);
	if (flags < 0) {
		conn_fail(c, flags);
		return;
	}
	c->rd_op = (struct loop_op){
		.cb = read_done,
		.kind = LOOP_OP_RECVMSG,
		.fd = l->fd,
		.msg = &l->rmsg,
		.flags = (unsigned int)flags,
	};
	loop_submit(c->loop, &c->rd_op);
}

static void read_done(struct loop_op *op, int res)
{
	struct conn *c = pier_container_of(op, struct conn, rd_op);
	int r;

	if (res == -EINTR || res == -EAGAIN) {
		conn_read_start(c);
		return;
	}
	if (res == -ECANCELED) {
		conn_maybe_finish(c);
		return;
	}
	if (res > 0)
		conn_count_read(c);
	r = c->link.f->rd_done(&c->link, res);
	pthread_mutex_lock(&c->mu);
	if (r < 0) {
		conn_fail_locked(c, r);
	} else if (!background_locked(c)) {
		/* Waiting threads read for themselves again. */
		conn_set_rd_locked(c, RD_NONE);
		conn_rd_kick_locked(c);
	}
	pthread_mutex_unlock(&c->mu);
	if (r == 0)
		conn_read_start(c);
	conn_maybe_finish(c);
}

void conn_read_unclaimed(struct conn *c)
{
	bool go;

	pthread_mutex_lock(&c->mu);
	go = c->rd == RD_NONE && !c->waiters && c->pause == PAUSE_NONE && !c->error &&
	     c->state != CONN_HANDSHAKING;
	if (go)
		conn_set_rd_locked(c, RD_LOOP); /* given back once it read */
	pthread_mutex_unlock(&c->mu);
	if (go)
		conn_read_start(c);
}

/* --- pausing ------------------------------------------------------------- */

/* Reading pauses (c->pause) for one of two reasons, both things the remote
 * would otherwise grow without bound: what waits for the application
 * (PAUSE_RECV, until it took half of it), and the automatic answers in the
 * send queue (PAUSE_SEND, until the remote read them back within the
 * limit).  One reason at a time: the one that ends looks at the other. */

/* Under mu: whether what waits for the application is over the limits. */
static bool recv_over_locked(const struct conn *c)
{
	/* Received fds fill this process's fd table as bytes fill its
	 * memory. */
	return c->in_bytes > c->cfg.max_recv_queued || c->in_fds > c->cfg.max_recv_fds;
}

/* Under mu: whether automatic answers hold the send queue over its limit. */
static bool answers_over(struct conn *c)
{
	bool over;

	pthread_mutex_lock(&c->out_mu);
	over = conn_answers_over_locked(c);
	pthread_mutex_unlock(&c->out_mu);
	return over;
}

/* Under mu: the reason reading paused for is gone: it pauses for next if
 * that holds, or goes on. */
static void pause_end_locked(struct conn *c, enum conn_pause next, bool holds)
{
	if (holds) {
		conn_set_pause_locked(c, next);
		return;
	}
	conn_set_pause_locked(c, PAUSE_NONE);
	if (c->rd == RD_LOOP)
		conn_post(c, CONN_EV_READ);
	else
		conn_rd_kick_locked(c);
}

void conn_queued_locked(struct conn *c, size_t len, unsigned int nfds)
{
	c->in_bytes += len;
	c->in_fds += nfds;
	/* Nobody reads more until the application caught up.  (Paused for
	 * the answers, this is looked at when that ends.) */
	if (c->pause == PAUSE_NONE && recv_over_locked(c))
		conn_set_pause_locked(c, PAUSE_RECV);
}

void conn_consumed_locked(struct conn *c, size_t len, unsigned int nfds)
{
	c->in_bytes -= len;
	c->in_fds -= nfds;
	if (c->pause == PAUSE_RECV && c->in_bytes <= c->cfg.max_recv_queued / 2 &&
	    c->in_fds <= c->cfg.max_recv_fds / 2)
		pause_end_locked(c, PAUSE_SEND, answers_over(c));
}

int conn_answer_locked(struct conn *c, const struct pier_header *h, const struct conn_body *b)
{
	bool over;
	int r = conn_send_answer(c, h, b, &over);

	/* Whoever reads stops before its next read; the queue falling back
	 * within its limit posts CONN_EV_ANSWERED, which the loop takes
	 * under mu, so after this. */
	if (over && c->pause == PAUSE_NONE)
		conn_set_pause_locked(c, PAUSE_SEND);
	return r;
}

void conn_answers_sent(struct conn *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->pause == PAUSE_SEND && !c->error && !answers_over(c))
		pause_end_locked(c, PAUSE_RECV, recv_over_locked(c));
	pthread_mutex_unlock(&c->mu);
}
