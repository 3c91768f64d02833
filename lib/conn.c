/* SPDX-License-Identifier: MIT */
/*
 * A connection's I/O: reading and framing (by a waiting application thread,
 * or by the loop in the background), the send queue shared with application
 * threads, and closing.  Routing of what is read lives in peer.c.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "peer.h"
#include "private.h"
#include "tls.h"

#define STREAM_RBUF_SIZE (16u << 10)
/* Bodies at least this large are read straight into the message. */
#define DIRECT_READ_MIN 4096u
/* A sender that may wait writes at least this much of a frame that the
 * socket did not take at once from its own buffer, instead of copying it
 * into the queue. */
#define DIRECT_BLOCK_MIN (64u << 10)
/* ...as long as the socket takes more within this many milliseconds. */
#define DIRECT_STALL_MS 1
#define SEND_FLAGS (MSG_NOSIGNAL)
/* TLS: ciphertext sent per write, and how much may wait encrypted before
 * more queued frames are encrypted. */
#define TLS_OBUF_SIZE (32u << 10)
/* What malloc keeps beside each block, counted with the queue's memory. */
#define ALLOC_OVERHEAD (2 * sizeof(size_t))
/* Nothing says when the remote reads the fds in flight: a sender waiting
 * for them looks again this often (longer, and the remote may go idle
 * meanwhile). */
#define FD_POLL_MS 1
/* After the kernel refused a packet's fds (ETOOMANYREFS), the loop sends
 * it again after 1 ms, doubling up to this. */
#define FD_RETRY_MAX_MS 16u

static void conn_task(struct loop_task *task, unsigned int ev);
static void read_done(struct loop_op *op, int res);
static void write_done(struct loop_op *op, int res);
static void start_read(struct conn *c);
static void read_pending(struct conn *c);
static int rd_app(struct conn *c, int wake_fd, int timeout_ms, const struct timespec *deadline);
static void start_write(struct conn *c);
static void conn_shutdown_io(struct conn *c);
static int take_fds(struct conn *c, int *fds, unsigned int max);
static void conn_maybe_finish(struct conn *c);
static void conn_fail(struct conn *c, int err);
static void linger_expired(struct loop_timer *t);
static void fd_retry_expired(struct loop_timer *t);
static void hs_expired(struct loop_timer *t);
static void tls_start_write(struct conn *c);
static void tls_write_done(struct conn *c, int res);
static void tls_final_flush(struct conn *c, int error);
static int tls_process(struct conn *c, ssize_t res);

/* --- creation ------------------------------------------------------------ */

static void *body_alloc(void *ctx, const struct pier_header *h, size_t len)
{
	struct pier_msg *m = msg_new(len, 0);

	if (!m)
		return NULL;
	m->hdr = *h;
	return m->body;
}

static void body_free(void *ctx, void *body)
{
	msg_free(msg_of_body(body));
}

static size_t cmsg_space_for(unsigned int nfds)
{
	return nfds ? CMSG_SPACE(nfds * sizeof(int)) : 0;
}

int conn_new(struct conn **out, int fd, const struct transport *t,
	     const struct pier_config *cfg, struct pier_loop *loop, struct tls *tls)
{
	struct conn *c = calloc(1, sizeof(*c));
	size_t def_body;

	if (!c)
		return -ENOMEM;
	c->fd = fd;
	c->t = t;
	c->cfg = *cfg;
	c->cfg.loop = NULL;
	c->cfg.tls = NULL;
	c->loop = loop;
	c->packets = t->caps & TRANSPORT_BOUNDARIES;
	c->loop_only = tls != NULL;
	c->tls_held = tls != NULL; /* the first read starts the session */
	def_body = c->packets ? PIER_DEFAULT_MAX_BODY_SEQPACKET : PIER_DEFAULT_MAX_BODY_STREAM;
	if (!c->cfg.max_body_read)
		c->cfg.max_body_read = def_body;
	if (!c->cfg.max_body_write)
		c->cfg.max_body_write = def_body;
	if (!(t->caps & TRANSPORT_FDS))
		c->cfg.max_fds = 0;
	if (!c->cfg.max_recv_fds)
		c->cfg.max_recv_fds = config_default_queued_fds();
	if (!c->cfg.max_send_fds)
		c->cfg.max_send_fds = config_default_queued_fds();
	c->writer.conn = c;
	c->wake_fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->out_mu, NULL);
	cond_init_monotonic(&c->out_cond);
	idmap_init(&c->sent);
	idmap_init(&c->received);
	msgq_init(&c->in);
	c->out_tail = &c->out_head;
	c->task.fn = conn_task;
	c->linger.fn = linger_expired;
	c->hs_timer.fn = hs_expired;
	c->fd_retry.fn = fd_retry_expired;

	if (c->packets) {
		/* The whole packet must fit, plus one byte to tell a packet of
		 * exactly the limit from a longer one. */
		c->rbuf_size = WIRE_HEADER_SIZE + c->cfg.max_body_read + 1;
		/* Room for every fd Linux can pass, so none is lost to
		 * MSG_CTRUNC while under the limit. */
		c->rcmsg_size = cmsg_space_for(WIRE_MAX_FDS);
		c->wcmsg_size = cmsg_space_for(c->cfg.max_fds);
	} else {
		c->rbuf_size = STREAM_RBUF_SIZE;
		c->body_alloc = (struct wire_body_alloc){ body_alloc, body_free, c };
		wire_parser_init(&c->parser, c->cfg.order, c->cfg.max_body_read, &c->body_alloc);
	}
	c->rbuf = malloc(c->rbuf_size);
	c->rcmsg = c->rcmsg_size ? malloc(c->rcmsg_size) : NULL;
	c->wcmsg = c->wcmsg_size ? calloc(1, c->wcmsg_size) : NULL;
	if (!c->rbuf || (c->rcmsg_size && !c->rcmsg) || (c->wcmsg_size && !c->wcmsg)) {
		free(c->rbuf);
		free(c->rcmsg);
		free(c->wcmsg);
		pthread_mutex_destroy(&c->mu);
		pthread_mutex_destroy(&c->out_mu);
		pthread_cond_destroy(&c->out_cond);
		msgq_fini(&c->in);
		free(c);
		return -ENOMEM;
	}
	if (c->packets) {
		/* A packet must fit the send buffer whole; ask for room for
		 * the largest one (the kernel may grant less). */
		int sndbuf = (int)(2 * (WIRE_HEADER_SIZE + c->cfg.max_body_write));

		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	}
	if (t->describe(t, fd, true, c->remote, sizeof(c->remote)) < 0)
		snprintf(c->remote, sizeof(c->remote), "%s://", t->scheme);
	c->tls = tls;
	*out = c;
	return 0;
}

static void free_req(void *value, void *ctx)
{
	req_free(value);
}

static void conn_destroy(struct conn *c)
{
	assert(c->fd < 0 && !c->rd.in_flight && !c->wr.in_flight);
	loop_timer_disarm(c->loop, &c->linger);
	loop_timer_disarm(c->loop, &c->hs_timer);
	loop_timer_disarm(c->loop, &c->fd_retry);
	c->read_paused = false; /* draining must not ask to read again */
	msgq_drain_locked(c, &c->in);
	idmap_each(&c->sent, free_req, NULL);
	idmap_each(&c->received, free_req, NULL);
	idmap_fini(&c->sent);
	idmap_fini(&c->received);
	msgq_fini(&c->in);
	for (struct out_frame *f = c->out_head, *n; f; f = n) {
		n = f->next;
		for (unsigned int i = 0; i < f->nfds; i++)
			close(f->fds[i]);
		free(f);
	}
	if (!c->packets)
		wire_parser_release(&c->parser);
	free(c->rbuf);
	free(c->rcmsg);
	free(c->wcmsg);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c->fd_packets);
	tls_free(c->tls);
	free(c->tls_obuf);
	free(c->tls_subject);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->out_mu);
	pthread_cond_destroy(&c->out_cond);
	loop_user_done(c->loop);
	free(c);
}

/* --- tasks from application threads -------------------------------------- */

void conn_start(struct conn *c)
{
	loop_user_add(c->loop);
	pthread_mutex_lock(&c->mu);
	conn_rd_kick_locked(c);
	pthread_mutex_unlock(&c->mu);
}

void conn_post(struct conn *c, unsigned int events)
{
	loop_post(c->loop, &c->task, events);
}

static void conn_task(struct loop_task *task, unsigned int ev)
{
	struct conn *c = pier_container_of(task, struct conn, task);

	if (ev & CONN_EV_START)
		conn_start(c);
	if (ev & CONN_EV_ABORT)
		conn_fail(c, -PIER_EABORTED);
	if (ev & CONN_EV_FINISH) {
		int err;

		/* The connection ended off the loop: found by a reading
		 * thread (c->error), or by a send that broke the stream
		 * (out_error). */
		pthread_mutex_lock(&c->mu);
		pthread_mutex_lock(&c->out_mu);
		err = c->out_error == -PIER_ESHUTDOWN ? 0 : c->out_error;
		pthread_mutex_unlock(&c->out_mu);
		if (c->error || err)
			conn_fail_locked(c, c->error ? c->error : err);
		pthread_mutex_unlock(&c->mu);
	}
	if (ev & (CONN_EV_CLOSE | CONN_EV_RELEASE)) {
		c->closing = true;
		/* Read until the remote closes too, whoever waits or not. */
		pthread_mutex_lock(&c->mu);
		c->draining = true;
		conn_rd_kick_locked(c);
		pthread_mutex_unlock(&c->mu);
		if (ev & CONN_EV_RELEASE) {
			read_pending(c);
			c->freed_handles = true;
			loop_timer_arm(c->loop, &c->linger,
				       loop_now_ns() + (int64_t)PIER_LINGER_MS * 1000000);
		}
	}
	if (ev & CONN_EV_READ)
		start_read(c);
	if (ev & (CONN_EV_WRITE | CONN_EV_CLOSE | CONN_EV_RELEASE))
		start_write(c);
	conn_maybe_finish(c);
}

static void linger_expired(struct loop_timer *t)
{
	struct conn *c = pier_container_of(t, struct conn, linger);

	conn_fail(c, -PIER_ESHUTDOWN);
	conn_maybe_finish(c);
}

void conn_handshake_abort(struct conn *c, int err)
{
	conn_fail(c, err);
	conn_maybe_finish(c);
}

static void hs_expired(struct loop_timer *t)
{
	conn_handshake_abort(pier_container_of(t, struct conn, hs_timer), -ETIMEDOUT);
}

void conn_handshake_timeout(struct conn *c, int timeout_ms)
{
	if (timeout_ms >= 0)
		loop_timer_arm(c->loop, &c->hs_timer,
			       loop_now_ns() + (int64_t)timeout_ms * 1000000);
}

int conn_wait_tls_locked(struct conn *c, const struct timespec *deadline)
{
	while (!c->tls_ready && !c->error) {
		if (!deadline)
			pthread_cond_wait(&c->in.cond, &c->mu);
		else if (pthread_cond_timedwait(&c->in.cond, &c->mu, deadline) == ETIMEDOUT)
			return c->tls_ready ? 0 : c->error ? c->error : -ETIMEDOUT;
	}
	return c->tls_ready ? 0 : c->error;
}

/* --- failing and closing ------------------------------------------------- */

static void wake_req(void *value, void *ctx)
{
	struct req *r = value;

	msgq_changed_locked(r->conn, &r->q, r);
}

/* Under out_mu: takes off the send queue what will never be written and
 * returns it.  The frames the write in flight points into stay: the kernel
 * may still read them, until write_done() frees them. */
static struct out_frame *queue_cut_locked(struct conn *c)
{
	struct out_frame **keep = &c->out_head, *drop;

	c->out_bytes = 0;
	c->out_fds = 0;
	for (unsigned int i = 0; i < c->wr_frames && *keep; i++) {
		c->out_bytes += (*keep)->size - (*keep)->sent;
		c->out_fds += (*keep)->nfds;
		keep = &(*keep)->next;
	}
	drop = *keep;
	*keep = NULL;
	c->out_tail = keep;
	return drop;
}

/* Ends the connection: nothing more is read or sent, every waiter wakes with
 * err once its queue is empty. */
void conn_fail_locked(struct conn *c, int err)
{
	struct out_frame *drop;

	if (!c->error)
		c->error = err;
	msgq_changed_locked(c, &c->in, NULL);
	idmap_each(&c->sent, wake_req, NULL);
	idmap_each(&c->received, wake_req, NULL);

	pthread_mutex_lock(&c->out_mu);
	/* After pier_writer_close(), sending keeps failing for that reason. */
	if (!c->out_error)
		c->out_error = c->error;
	drop = queue_cut_locked(c);
	pthread_cond_broadcast(&c->out_cond);
	pthread_mutex_unlock(&c->out_mu);
	while (drop) {
		struct out_frame *n = drop->next;

		for (unsigned int i = 0; i < drop->nfds; i++)
			close(drop->fds[i]);
		free(drop);
		drop = n;
	}
	if (!loop_on_thread(c->loop)) {
		/* Found by a reading application thread: the loop closes. */
		conn_post(c, CONN_EV_FINISH);
		return;
	}
	c->closing = true;
	if (c->fd >= 0)
		conn_shutdown_io(c);
}

/* conn_fail_locked(), taking mu. */
static void conn_fail(struct conn *c, int err)
{
	pthread_mutex_lock(&c->mu);
	conn_fail_locked(c, err);
	pthread_mutex_unlock(&c->mu);
}

/* Cancels what is in flight; the fd is closed once every op completed. */
static void conn_shutdown_io(struct conn *c)
{
	loop_cancel(c->loop, &c->rd);
	loop_cancel(c->loop, &c->wr);
}

/* Reads and drops what the remote sent and nobody will read, so that
 * closing does not turn into a reset that could cost the remote the last
 * messages it has not read yet.  Received fds are closed. */
static void conn_discard_input(struct conn *c)
{
	for (int i = 0; i < 64; i++) {
		struct iovec iov = { c->rbuf, c->rbuf_size };
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = c->rcmsg,
			.msg_controllen = c->rcmsg_size,
		};
		int fds[WIRE_MAX_FDS], n;
		ssize_t len = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (len < 0)
			break;
		c->rmsg = mh;
		n = take_fds(c, fds, WIRE_MAX_FDS);
		for (int j = 0; j < n; j++)
			close(fds[j]);
		if (len == 0 && n == 0)
			break; /* the end (or an empty packet without fds) */
	}
}

/* Moves a closing or ended connection on, one step per call, from every
 * completion: once the queue is flushed, shutdown(SHUT_WR); once nobody
 * holds a handle after that, the connection ends; once it has ended and
 * no op is in flight, the fd is closed; once it is closed and nobody holds
 * a handle, it is freed. */
static void conn_maybe_finish(struct conn *c)
{
	bool flushed;
	int error;

	if (c->tls_error) {
		conn_fail(c, c->tls_error);
		c->tls_error = 0;
	}
	if (c->hs_done) {
		/* A listener waits for this connection's handshake. */
		void (*done)(struct conn *c, int err) = c->hs_done;

		pthread_mutex_lock(&c->mu);
		error = c->error;
		pthread_mutex_unlock(&c->mu);
		if (error || c->tls_ready) {
			c->hs_done = NULL;
			done(c, error);
		}
	}
	if (!c->closing || c->closed)
		goto maybe_free;
	pthread_mutex_lock(&c->mu);
	error = c->error;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	flushed = !c->out_head && !c->direct; /* a sender's frame may be under way */
	if (!c->out_error)
		c->out_error = -PIER_ESHUTDOWN;
	pthread_mutex_unlock(&c->out_mu);
	if (c->tls)
		flushed = flushed && c->tls_opos == c->tls_olen && !tls_out_pending(c->tls);
	if (!error && flushed && !c->wr.in_flight && !c->shut_wr && c->tls && !c->tls_notified) {
		/* TLS ends with close_notify, then the socket's end. */
		c->tls_notified = true;
		tls_close_notify(c->tls);
		tls_start_write(c);
	}
	if (!error && flushed && !c->wr.in_flight && !c->shut_wr) {
		/* Everything queued is out: the remote reads it all, then
		 * EOF.  While the application holds handles, reading goes on
		 * until the remote closes too. */
		shutdown(c->fd, SHUT_WR);
		c->shut_wr = true;
	}
	if (!error && c->shut_wr && c->freed_handles) {
		conn_fail(c, -PIER_ESHUTDOWN);
		error = -PIER_ESHUTDOWN;
	}
	if (!error)
		goto maybe_free;
	conn_shutdown_io(c);
	if (c->rd.in_flight || c->wr.in_flight)
		return; /* their completions come back here */
	pthread_mutex_lock(&c->mu);
	if (c->rd_owner == RD_APP) {
		/* A thread is reading the socket: wake it; it hands back with
		 * CONN_EV_FINISH. */
		c->rd_finish = true;
		pthread_mutex_unlock(&c->mu);
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	c->rd_owner = RD_GONE;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	if (c->direct) {
		/* A sender is writing a frame itself: the same. */
		c->direct_finish = true;
		pthread_mutex_unlock(&c->out_mu);
		shutdown(c->fd, SHUT_RDWR);
		return;
	}
	pthread_mutex_unlock(&c->out_mu);
	if (c->tls)
		tls_final_flush(c, error);
	conn_discard_input(c);
	/* Under out_mu: a sender writing from its own thread holds it, and
	 * must never see the number of a closed (or reused) fd. */
	pthread_mutex_lock(&c->out_mu);
	close(c->fd);
	c->fd = -1;
	pthread_mutex_unlock(&c->out_mu);
	c->closed = true;
maybe_free:
	if (c->closed && c->freed_handles)
		conn_destroy(c);
}

/* --- reading ------------------------------------------------------------- */

/* Under mu. */
bool conn_rd_background_locked(const struct conn *c)
{
	return c->loop_only || c->polled || !c->reader || c->draining;
}

void conn_rd_kick_locked(struct conn *c)
{
	if (c->rd_owner != RD_NONE || c->read_paused || c->error)
		return;
	if (c->waiters && !c->loop_only) {
		/* It takes the role when it wakes. */
		pthread_cond_broadcast(&c->waiters->q->cond);
	} else if (conn_rd_background_locked(c)) {
		c->rd_owner = RD_LOOP;
		conn_post(c, CONN_EV_READ);
	}
}

/* Points c->rmsg at where the next read goes; returns the recvmsg flags. */
static int rd_prepare(struct conn *c)
{
	void *window;
	size_t want;

	c->rmsg = (struct msghdr){ .msg_iov = &c->riov, .msg_iovlen = 1 };
	if (c->tls) {
		/* Ciphertext, which the session copies in at once: the buffer
		 * then takes the plaintext (tls_pump()). */
		c->riov = (struct iovec){ c->rbuf, c->rbuf_size };
		return 0;
	}
	if (c->packets) {
		c->riov = (struct iovec){ c->rbuf, c->rbuf_size };
		c->rmsg.msg_control = c->rcmsg;
		c->rmsg.msg_controllen = c->rcmsg_size;
		/* MSG_TRUNC: the result is the real packet length, so a
		 * packet longer than the buffer shows. */
		return MSG_TRUNC | MSG_CMSG_CLOEXEC;
	}
	if ((want = wire_parser_body_window(&c->parser, &window)) >= DIRECT_READ_MIN) {
		/* A large body: read it into the message itself. */
		c->riov = (struct iovec){ window, want };
	} else {
		c->riov = (struct iovec){ c->rbuf, c->rbuf_size };
	}
	return 0;
}

static int read_packet(struct conn *c, size_t len);
static int read_stream(struct conn *c, size_t len);

/* Frames and routes what a read returned: 0, or why the connection ends. */
static int rd_process(struct conn *c, ssize_t res)
{
	int r;

	if (res < 0)
		return (int)res;
	if (res == 0 && c->packets) {
		int fds[WIRE_MAX_FDS], n = take_fds(c, fds, WIRE_MAX_FDS);

		/* An empty packet reads like the end, but an end carries no
		 * fds: with fds, it was a packet too short to be a message. */
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return n != 0 ? -PIER_ESHORTFRAME : -PIER_ECLOSED;
	}
	if (res == 0) {
		r = wire_parser_eof(&c->parser);
		return r < 0 ? r : -PIER_ECLOSED;
	}
	return c->packets ? read_packet(c, (size_t)res) : read_stream(c, (size_t)res);
}

/* Loop thread, once the application let go: routes what already arrived,
 * so that requests in it get their answers before the connection closes. */
static void read_pending(struct conn *c)
{
	int r = 0;

	if (c->rd.in_flight || c->fd < 0 || c->tls)
		return; /* the read in flight routes it */
	pthread_mutex_lock(&c->mu);
	if (c->rd_owner != RD_LOOP || c->error) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < 64 && r == 0; i++)
		r = rd_app(c, -1, 0, NULL);
	if (r < 0 && r != -EAGAIN)
		conn_fail(c, r);
}

static void start_read(struct conn *c)
{
	int flags;

	if (c->rd.in_flight || c->fd < 0 || c->closed)
		return;
	pthread_mutex_lock(&c->mu);
	if (c->error || c->read_paused || c->rd_owner != RD_LOOP) {
		pthread_mutex_unlock(&c->mu);
		return;
	}
	pthread_mutex_unlock(&c->mu);
	if (c->tls_held) {
		bool paused;
		int r;

		/* First what the session holds (a pause left it there), or
		 * what it sends first (a client's hello). */
		c->tls_held = false;
		r = tls_process(c, -EAGAIN);
		pthread_mutex_lock(&c->mu);
		if (r < 0)
			conn_fail_locked(c, r);
		paused = c->read_paused;
		pthread_mutex_unlock(&c->mu);
		if (r < 0 || paused)
			return;
	}

	flags = rd_prepare(c);
	c->rd = (struct loop_op){
		.cb = read_done,
		.kind = LOOP_OP_RECVMSG,
		.fd = c->fd,
		.msg = &c->rmsg,
		.flags = flags,
	};
	loop_submit(c->loop, &c->rd);
}

/* Milliseconds left until deadline, rounded up. */
static int ms_until(const struct timespec *deadline)
{
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000000000 +
	     (deadline->tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	return ns / 1000000 >= INT32_MAX ? INT32_MAX : (int)((ns + 999999) / 1000000);
}

/* The reading thread's (or read_pending()'s) read: one recvmsg, waiting for
 * data first unless timeout_ms is 0.  With no deadline and no wake fd, a
 * blocking recvmsg is the only system call (closing wakes it with
 * shutdown()). */
static int rd_app(struct conn *c, int wake_fd, int timeout_ms, const struct timespec *deadline)
{
	for (;;) {
		int flags = rd_prepare(c), ms = -1, n;
		struct pollfd pfd[2] = { { c->fd, POLLIN, 0 }, { wake_fd, POLLIN, 0 } };
		ssize_t res;

		if (timeout_ms >= 0 || wake_fd >= 0)
			flags |= MSG_DONTWAIT;
		res = recvmsg(c->fd, &c->rmsg, flags);
		if (res >= 0)
			return rd_process(c, res);
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		if (timeout_ms == 0)
			return -EAGAIN;
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

int conn_read_locked(struct conn *c, struct msgq *q, bool interruptible, int timeout_ms,
		     const struct timespec *deadline)
{
	int r, wake_fd = -1;

	assert(c->rd_owner == RD_NONE);
	if (interruptible && timeout_ms != 0) {
		if (c->wake_fd < 0)
			c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->wake_fd < 0)
			return -errno; /* before taking anything */
		wake_fd = c->wake_fd;
	}
	c->rd_owner = RD_APP;
	c->rd_q = q;
	c->rd_thread = pthread_self();
	pthread_mutex_unlock(&c->mu);

	r = rd_app(c, wake_fd, timeout_ms, deadline);

	pthread_mutex_lock(&c->mu);
	c->rd_owner = RD_NONE;
	c->rd_q = NULL;
	if (r < 0 && r != -EAGAIN && r != -ETIMEDOUT)
		conn_fail_locked(c, r);
	if (c->rd_finish)
		conn_post(c, CONN_EV_FINISH);
	return r;
}

/* Takes the fds out of a received packet's control data.  Returns the count,
 * or a negative error after closing all of them. */
static int take_fds(struct conn *c, int *fds, unsigned int max)
{
	unsigned int n = 0;
	bool over = false;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&c->rmsg); cm; cm = CMSG_NXTHDR(&c->rmsg, cm)) {
		size_t count;
		int *data;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		data = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < count; i++) {
			int fd;

			memcpy(&fd, &data[i], sizeof(fd));
			if (n < max)
				fds[n++] = fd;
			else {
				close(fd);
				over = true;
			}
		}
	}
	if (over || (c->rmsg.msg_flags & MSG_CTRUNC)) {
		for (unsigned int i = 0; i < n; i++)
			close(fds[i]);
		return over ? -PIER_EFDLIMIT : -PIER_EFDTRUNC;
	}
	return (int)n;
}

/* A packet of len bytes is over the read limit, which ends the connection:
 * if it was a request, its sender learns why first, from an error response
 * (sent if the socket takes it at once; the connection closes next).  A
 * stream cannot say so: its frame's header is still unread. */
static void refuse_oversized(struct conn *c, size_t len)
{
	struct pier_header h;
	char why[200];

	if (wire_header_decode(&h, c->rbuf, c->cfg.order) < 0 || h.type != PIER_MSG_REQUEST)
		return;
	snprintf(why, sizeof(why),
		 "request refused: its body of %zu bytes is over this peer's read limit of "
		 "%zu bytes (pier_config_set_max_body(); or pass large data in a memfd)",
		 len - WIRE_HEADER_SIZE, c->cfg.max_body_read);
	h = (struct pier_header){ PIER_MSG_RESPONSE, h.request_id, PIER_SERVICE_ERROR };
	conn_send(c, &h, why, strlen(why), NULL, 0, true);
}

static int read_packet(struct conn *c, size_t len)
{
	int fds[WIRE_MAX_FDS];
	struct wire_packet pkt;
	struct pier_msg *m;
	int nfds, r;

	nfds = take_fds(c, fds, c->cfg.max_fds);
	if (nfds < 0)
		return nfds;
	if (len >= c->rbuf_size || (c->rmsg.msg_flags & MSG_TRUNC)) {
		refuse_oversized(c, len);
		r = -PIER_EBODYLIMIT;
	} else
		r = wire_packet_parse(c->rbuf, len, c->cfg.order, c->cfg.max_body_read, &pkt);
	m = r < 0 ? NULL : msg_new(pkt.body_len, (unsigned int)nfds);
	if (!m) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return r < 0 ? r : -ENOMEM;
	}
	m->hdr = pkt.hdr;
	memcpy(m->body, pkt.body, pkt.body_len);
	if (nfds > 0)
		memcpy(m->fds, fds, (size_t)nfds * sizeof(int));
	peer_route(c, m);
	return 0;
}

static int read_stream(struct conn *c, size_t len)
{
	struct pier_msg *list = NULL, **tail = &list;
	struct wire_frame f;
	size_t pos = 0;
	int r = 0;

	if (c->riov.iov_base != c->rbuf) {
		/* Straight into a body. */
		if (wire_parser_body_commit(&c->parser, len, &f) == 1)
			peer_route(c, msg_of_body(f.body));
		return 0;
	}
	/* Every frame of this read is routed at once, in order; those before
	 * an error too. */
	while (pos < len) {
		size_t used;

		r = wire_parser_feed(&c->parser, c->rbuf + pos, len - pos, &used, &f);
		if (r < 0)
			break;
		pos += used;
		if (r == 1) {
			struct pier_msg *m = msg_of_body(f.body);

			m->next = NULL;
			*tail = m;
			tail = &m->next;
		}
	}
	if (list)
		peer_route(c, list);
	return r < 0 ? r : 0;
}

static void read_done(struct loop_op *op, int res)
{
	struct conn *c = pier_container_of(op, struct conn, rd);
	int r;

	if (res == -EINTR || res == -EAGAIN) {
		start_read(c);
		return;
	}
	if (res == -ECANCELED) {
		conn_maybe_finish(c);
		return;
	}
	r = c->tls ? tls_process(c, res) : rd_process(c, res);
	pthread_mutex_lock(&c->mu);
	if (r < 0) {
		conn_fail_locked(c, r);
	} else if (!conn_rd_background_locked(c)) {
		/* Waiting threads read for themselves again. */
		c->rd_owner = RD_NONE;
		conn_rd_kick_locked(c);
	}
	pthread_mutex_unlock(&c->mu);
	if (r == 0)
		start_read(c);
	conn_maybe_finish(c);
}

/* Under mu: reading was paused and may go on. */
static void conn_unpause_locked(struct conn *c)
{
	c->read_paused = false;
	if (c->rd_owner == RD_LOOP)
		conn_post(c, CONN_EV_READ);
	else
		conn_rd_kick_locked(c);
}

void conn_queued_locked(struct conn *c, size_t len, unsigned int nfds)
{
	c->in_bytes += len;
	c->in_fds += nfds;
	/* Nobody reads more until the application caught up: received fds
	 * fill this process's fd table as bytes fill its memory. */
	if (c->in_bytes > c->cfg.max_recv_queued || c->in_fds > c->cfg.max_recv_fds)
		c->read_paused = true;
}

void conn_consumed_locked(struct conn *c, size_t len, unsigned int nfds)
{
	c->in_bytes -= len;
	c->in_fds -= nfds;
	if (c->read_paused && c->in_bytes <= c->cfg.max_recv_queued / 2 &&
	    c->in_fds <= c->cfg.max_recv_fds / 2)
		conn_unpause_locked(c);
}

/* --- writing ------------------------------------------------------------- */

static void frame_free(struct out_frame *f)
{
	for (unsigned int i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	free(f);
}

/* --- fds in flight -------------------------------------------------------
 *
 * Nothing tells a sender when the remote has read the fds it sent: the
 * kernel only says how much the socket holds unread (SIOCOUTQ: on a Unix
 * socket, the memory of the packets not yet read).  So while packets with
 * fds may be unread, every send is measured: what the socket holds after
 * it less what it held after the one before (or, for the first, just
 * before it) is that packet's memory, or less when the remote read
 * meanwhile.  Their sum since the oldest such packet went
 * (conn->charged) is at most what those packets really took; less what the
 * socket holds now, it is at most what the remote has read of them.  A
 * packet with fds whose running sum is within that has been read, and its
 * fds handed over, however busy the socket stays with other messages.
 */

/* Under out_mu: what the socket holds unread, or -1 when it cannot say. */
static int sock_unread_locked(const struct conn *c)
{
	int unread;

	if (c->fd < 0 || ioctl(c->fd, SIOCOUTQ, &unread) < 0)
		return -1;
	return unread;
}

/* Under out_mu: what the socket held unread before a packet with nfds
 * fds about to go, for fd_packet_sent_locked(): measured after the last
 * packet while packets with fds are tracked (nothing else went since), or
 * now for the first of them; -1 when it need not be known. */
static int unread_before_locked(const struct conn *c, size_t nfds)
{
	if (!c->packets || (!nfds && !c->fdp_count))
		return -1;
	return c->fdp_count ? c->unread_last : sock_unread_locked(c);
}

/* Under out_mu: a packet with nfds fds went, the socket holding
 * unread_before just before: counts its memory, and records it if it
 * carried fds. */
static void fd_packet_sent_locked(struct conn *c, unsigned int nfds, int unread_before)
{
	unsigned int cap = c->cfg.max_send_fds + 1;
	int unread_after;

	if (!nfds && !c->fdp_count)
		return;
	unread_after = sock_unread_locked(c);
	c->unread_last = unread_after;
	if (!c->fdp_count)
		c->charged = 0;
	if (unread_before >= 0 && unread_after > unread_before)
		c->charged += unread_after - unread_before;
	if (!nfds)
		return;
	if (!c->fd_packets)
		c->fd_packets = malloc(cap * sizeof(*c->fd_packets));
	if (c->fd_packets && c->fdp_count < cap)
		c->fd_packets[(c->fdp_head + c->fdp_count++) % cap] =
			(struct fd_packet){ nfds, c->charged };
	/* Else it cannot be tracked: its fds count until the socket is
	 * empty. */
	c->fds_in_flight += nfds;
}

/* Under out_mu: forgets the packets with fds that the remote has read. */
static void fds_refresh_locked(struct conn *c)
{
	unsigned int cap = c->cfg.max_send_fds + 1;
	int64_t read_at_least;
	int unread;

	if (!c->fds_in_flight || (unread = sock_unread_locked(c)) < 0)
		return;
	if (unread == 0) {
		c->fdp_count = 0;
		c->fds_in_flight = 0;
		return;
	}
	read_at_least = c->charged - unread;
	while (c->fdp_count && c->fd_packets[c->fdp_head].charged <= read_at_least) {
		c->fds_in_flight -= c->fd_packets[c->fdp_head].nfds;
		c->fdp_head = (c->fdp_head + 1) % cap;
		c->fdp_count--;
	}
}

/* Under out_mu: the queue's head frame is all written; takes it off the
 * queue and its counts (the caller frees it). */
static void frame_done_locked(struct conn *c, struct out_frame *f)
{
	assert(f == c->out_head && f->sent == f->len);
	c->out_head = f->next;
	if (!c->out_head)
		c->out_tail = &c->out_head;
	c->out_bytes -= f->size - f->len;
	c->out_fds -= f->nfds;
}

/* Loop thread: writes again a while after the kernel refused fds. */
static void fd_retry_arm(struct conn *c)
{
	c->fd_retry_ms = c->fd_retry_ms ? c->fd_retry_ms * 2 : 1;
	if (c->fd_retry_ms > FD_RETRY_MAX_MS)
		c->fd_retry_ms = FD_RETRY_MAX_MS;
	loop_timer_arm(c->loop, &c->fd_retry,
		       loop_now_ns() + (int64_t)c->fd_retry_ms * 1000000);
}

static void fd_retry_expired(struct loop_timer *t)
{
	struct conn *c = pier_container_of(t, struct conn, fd_retry);

	start_write(c);
	conn_maybe_finish(c);
}

static void put_fds(struct msghdr *mh, void *buf, size_t space, const int *fds, size_t nfds)
{
	struct cmsghdr *cm;

	if (!nfds)
		return;
	mh->msg_control = buf;
	mh->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	assert(mh->msg_controllen <= space);
	/* No uninitialised padding goes to the kernel. */
	memset(buf, 0, mh->msg_controllen);
	cm = CMSG_FIRSTHDR(mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
}

/* Loop thread: hands c->wmsg to the kernel. */
static void submit_write(struct conn *c)
{
	c->wr = (struct loop_op){
		.cb = write_done,
		.kind = LOOP_OP_SENDMSG,
		.fd = c->fd,
		.msg = &c->wmsg,
		.flags = SEND_FLAGS,
	};
	loop_submit(c->loop, &c->wr);
}

/* Loop thread: hands queued frames to the kernel, many per call on streams,
 * one per call (with its fds) on packets. */
static void start_write(struct conn *c)
{
	size_t n = 0;

	if (c->tls) {
		tls_start_write(c);
		return;
	}
	if (c->wr.in_flight || c->fd < 0)
		return;
	pthread_mutex_lock(&c->out_mu);
	if (c->direct) {
		/* It hands the queue over when its frame is out. */
		pthread_mutex_unlock(&c->out_mu);
		return;
	}
	if (!c->out_head || (c->out_error && c->out_error != -PIER_ESHUTDOWN)) {
		c->writing = false;
		pthread_mutex_unlock(&c->out_mu);
		return;
	}
	c->writing = true;
	c->wmsg = (struct msghdr){ .msg_iov = c->wiov };
	for (struct out_frame *f = c->out_head; f && n < PIER_ARRAY_SIZE(c->wiov); f = f->next) {
		c->wiov[n++] = (struct iovec){ f->data + f->sent, f->len - f->sent };
		if (c->packets) {
			put_fds(&c->wmsg, c->wcmsg, c->wcmsg_size, f->fds, f->nfds);
			c->wr_unread_before = unread_before_locked(c, f->nfds);
			break;
		}
	}
	c->wmsg.msg_iovlen = n;
	c->wr_frames = (unsigned int)n;
	pthread_mutex_unlock(&c->out_mu);
	submit_write(c);
}

static void write_done(struct loop_op *op, int res)
{
	struct conn *c = pier_container_of(op, struct conn, wr);
	struct out_frame *done = NULL, **done_tail = &done;
	size_t left = res > 0 ? (size_t)res : 0;

	/* The kernel is done with the frames this write pointed into. */
	pthread_mutex_lock(&c->out_mu);
	c->wr_frames = 0;
	pthread_mutex_unlock(&c->out_mu);
	if (res == -ETOOMANYREFS) {
		/* This user has too many fds in flight on Unix sockets: not
		 * this connection's end, but a wait until remotes read. */
		fd_retry_arm(c);
		conn_maybe_finish(c);
		return;
	}
	c->fd_retry_ms = 0;
	if (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
		conn_fail(c, res);
		conn_maybe_finish(c);
		return;
	}
	if (c->tls) {
		tls_write_done(c, res);
		return;
	}
	pthread_mutex_lock(&c->out_mu);
	while (c->out_head && left > 0) {
		struct out_frame *f = c->out_head;
		size_t rest = f->len - f->sent;

		if (left < rest) {
			f->sent += left;
			c->out_bytes -= left;
			break;
		}
		left -= rest;
		c->out_bytes -= rest;
		f->sent = f->len;
		frame_done_locked(c, f);
		if (c->packets)
			fd_packet_sent_locked(c, f->nfds, c->wr_unread_before);
		*done_tail = f;
		done_tail = &f->next;
		*done_tail = NULL;
	}
	if (!c->out_head)
		c->writing = false;
	pthread_cond_broadcast(&c->out_cond);
	pthread_mutex_unlock(&c->out_mu);
	while (done) {
		struct out_frame *n = done->next;

		frame_free(done);
		done = n;
	}
	if (res != -ECANCELED)
		start_write(c);
	conn_maybe_finish(c);
}

/* --- sending, from any thread -------------------------------------------- */

/* Small stream frames share chunks of this size, so that a burst of them
 * costs one allocation and one iovec per chunk. */
#define CHUNK_SIZE (64u << 10)
#define CHUNK_MAX_FRAME (8u << 10)

/* The memory a frame of len data bytes and nfds fds takes. */
static size_t frame_size(size_t len, size_t nfds)
{
	/* The fds go after the data, aligned. */
	size_t fds_at = (len + _Alignof(int) - 1) & ~(_Alignof(int) - 1);

	return sizeof(struct out_frame) + fds_at + nfds * sizeof(int) + ALLOC_OVERHEAD;
}

/* A frame holding head and body (in a chunk of cap bytes, if cap), of
 * which already_sent bytes are written, with dups of fds: 0, -ENOMEM, or
 * -EMFILE / -ENFILE when this process or the system has no fd to spare. */
static int frame_new(struct out_frame **out, const unsigned char *head, size_t head_len,
		     const void *body, size_t len, const int *fds, size_t nfds,
		     size_t already_sent, size_t cap)
{
	size_t data = cap ? cap : head_len + len;
	size_t fds_at = (data + _Alignof(int) - 1) & ~(_Alignof(int) - 1);
	struct out_frame *f = malloc(sizeof(*f) + fds_at + nfds * sizeof(int));

	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = head_len + len;
	f->sent = already_sent;
	f->cap = cap;
	f->size = frame_size(data, nfds);
	f->nfds = 0;
	f->fds = (int *)(void *)(f->data + fds_at);
	memcpy(f->data, head, head_len);
	if (len)
		memcpy(f->data + head_len, body, len);
	for (size_t i = 0; i < nfds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (fd < 0) {
			int r = -errno;

			frame_free(f);
			return r;
		}
		f->fds[f->nfds++] = fd;
	}
	*out = f;
	return 0;
}

/* Under out_mu: the memory queueing a frame of total bytes and nfds fds
 * would add (none when it fits in the room of the last chunk). */
static size_t queue_cost_locked(const struct conn *c, size_t total, size_t nfds)
{
	const struct out_frame *last =
		c->out_head ? pier_container_of(c->out_tail, struct out_frame, next) : NULL;

	if (!c->packets && !nfds && total <= CHUNK_MAX_FRAME) {
		if (last && last->cap && last->len + total <= last->cap)
			return 0;
		return frame_size(CHUNK_SIZE, 0);
	}
	return frame_size(total, nfds);
}

/* Under out_mu: whether a frame of total bytes and nfds fds must wait for
 * room.  A frame larger than a whole limit still goes once nothing is
 * counted against it: a limit bounds what waits, not what can be sent. */
static bool over_limits_locked(struct conn *c, size_t total, size_t nfds)
{
	unsigned int fds;

	if (c->out_head && c->out_bytes + queue_cost_locked(c, total, nfds) > c->cfg.max_send_queued)
		return true;
	if (!nfds || c->out_fds + c->fds_in_flight + nfds <= c->cfg.max_send_fds)
		return false;
	fds_refresh_locked(c);
	fds = c->out_fds + c->fds_in_flight;
	return fds > 0 && fds + nfds > c->cfg.max_send_fds;
}

/* Under out_mu: waits until a frame of total bytes and nfds fds may be
 * sent.  Queued frames leaving wake it; fds read by the remote do not, so
 * it looks for those now and then. */
static int wait_for_room(struct conn *c, size_t total, size_t nfds, bool control)
{
	int timeout = c->cfg.send_timeout_ms;
	struct timespec deadline;

	if (control)
		return 0;
	if (timeout > 0)
		deadline = deadline_after(timeout);
	while (!c->out_error && over_limits_locked(c, total, nfds)) {
		bool polling = nfds && c->fds_in_flight;
		int r;

		if (timeout == 0)
			return -EAGAIN;
		if (timeout > 0 && ms_until(&deadline) == 0)
			return -ETIMEDOUT;
		if (polling) {
			struct timespec until = deadline_after(FD_POLL_MS);

			if (timeout > 0 && ms_until(&deadline) < FD_POLL_MS)
				until = deadline;
			r = pthread_cond_timedwait(&c->out_cond, &c->out_mu, &until);
		} else {
			r = timeout < 0 ? pthread_cond_wait(&c->out_cond, &c->out_mu)
					: pthread_cond_timedwait(&c->out_cond, &c->out_mu,
								 &deadline);
		}
		if (r == ETIMEDOUT && !polling)
			return -ETIMEDOUT;
	}
	return c->out_error;
}

/* Under out_mu: queues a frame, of which sent bytes are already written;
 * such a frame is on the wire, so it goes first in line. */
static int queue_frame(struct conn *c, const unsigned char *head, size_t head_len,
		       const void *body, size_t len, const int *fds, size_t nfds, size_t sent)
{
	struct out_frame *last = c->out_head ? pier_container_of(c->out_tail, struct out_frame, next)
					     : NULL;
	size_t total = head_len + len;
	bool small = !c->packets && !nfds && total <= CHUNK_MAX_FRAME;
	struct out_frame *f = NULL;
	int r;

	if (small && !sent && last && last->len + total <= last->cap) {
		/* Behind what the loop may be writing right now; the chunk
		 * stays queued until its last byte is out. */
		memcpy(last->data + last->len, head, head_len);
		if (len)
			memcpy(last->data + last->len + head_len, body, len);
		last->len += total; /* in room already counted */
		return 0;
	}
	r = frame_new(&f, head, head_len, body, len, fds, nfds, sent, small ? CHUNK_SIZE : 0);
	if (r < 0)
		return r;
	if (sent) {
		f->next = c->out_head;
		c->out_head = f;
		if (!f->next)
			c->out_tail = &f->next;
	} else {
		*c->out_tail = f;
		c->out_tail = &f->next;
	}
	c->out_bytes += f->size - f->sent;
	c->out_fds += f->nfds;
	return 0;
}

/* Under out_mu, with the frame's first *sent bytes written and nothing
 * queued: writes more of it from the caller's buffer, waiting for room with
 * out_mu released (other senders queue behind it meanwhile), for as long as
 * the remote keeps reading.  Once the socket takes nothing for a moment,
 * the caller queues the rest as usual, so a send never waits on a remote
 * that does not read unless the queue is full.  Returns 0 (then the caller
 * queues what is left, if anything), or the error that broke the stream. */
static int send_rest(struct conn *c, const unsigned char *head, size_t head_len,
		     const void *body, size_t len, size_t *sent)
{
	int timeout = c->cfg.send_timeout_ms, r = 0;
	struct timespec deadline;
	size_t total = head_len + len;

	if (timeout > 0)
		deadline = deadline_after(timeout);
	c->writing = true;
	c->direct = true;
	pthread_mutex_unlock(&c->out_mu);
	while (*sent < total) {
		struct pollfd pfd = { c->fd, POLLOUT, 0 };
		int ms = DIRECT_STALL_MS, ready;
		ssize_t n;

		if (timeout > 0 && ms_until(&deadline) < ms)
			ms = ms_until(&deadline);
		ready = poll(&pfd, 1, ms);
		if (ready == 0)
			break; /* stalled: the rest is queued */
		if (ready < 0 && errno != EINTR) {
			r = -errno;
			break;
		}
		if (*sent < head_len) {
			struct iovec iov[2] = { { (void *)(head + *sent), head_len - *sent },
						{ (void *)body, len } };
			struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

			n = sendmsg(c->fd, &mh, MSG_DONTWAIT | SEND_FLAGS);
		} else {
			n = send(c->fd, (const unsigned char *)body + (*sent - head_len),
				 total - *sent, MSG_DONTWAIT | SEND_FLAGS);
		}
		if (n > 0)
			*sent += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR) {
			r = -errno;
			break;
		}
	}
	pthread_mutex_lock(&c->out_mu);
	c->direct = false;
	/* The connection ended meanwhile (a close lets the frame finish). */
	if (r == 0 && c->out_error && c->out_error != -PIER_ESHUTDOWN)
		r = c->out_error;
	if (r < 0 && !c->out_error)
		c->out_error = r;
	if (c->direct_finish) {
		conn_post(c, CONN_EV_FINISH);
	} else if (*sent == total) {
		/* Hand what others queued meanwhile to the loop; a closing
		 * connection waited for this frame to be out. */
		c->writing = c->out_head != NULL;
		if (c->writing || c->out_error)
			conn_post(c, CONN_EV_WRITE);
	} else {
		/* The caller queues the rest first in line, and wakes the
		 * loop for it and for what others queued meanwhile. */
		c->writing = false;
	}
	return r;
}

int conn_send_check(const struct conn *c, size_t len, size_t nfds)
{
	if (len > c->cfg.max_body_write)
		return -EMSGSIZE;
	if (nfds > 0 && !(c->t->caps & TRANSPORT_FDS))
		return -PIER_ENOFDS;
	if (nfds > c->cfg.max_fds)
		return -PIER_EFDLIMIT;
	return 0;
}

int conn_send(struct conn *c, const struct pier_header *h, const void *body, size_t len,
	      const int *fds, size_t nfds, bool control)
{
	unsigned char head[WIRE_STREAM_OVERHEAD], cmsg[CMSG_SPACE(WIRE_MAX_FDS * sizeof(int))];
	size_t head_len, sent = 0;
	bool wake = false, broken = false;
	int r;

	r = conn_send_check(c, len, nfds);
	if (r < 0)
		return r;
	if (c->packets) {
		wire_header_encode(head, h, c->cfg.order);
		head_len = WIRE_HEADER_SIZE;
	} else {
		wire_stream_prefix_encode(head, h, len, c->cfg.order);
		head_len = WIRE_STREAM_OVERHEAD;
	}

	pthread_mutex_lock(&c->out_mu);
	r = wait_for_room(c, head_len + len, nfds, control);
	if (r < 0)
		goto out;
	if (!c->writing && !c->out_head && c->fd >= 0 && !c->loop_only) {
		/* Nothing queued and the loop is not writing: write from this
		 * thread, and queue only what the socket does not take. */
		struct iovec iov[2] = { { head, head_len }, { (void *)body, len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
		ssize_t n;

		int unread_before = unread_before_locked(c, nfds);

		put_fds(&mh, cmsg, sizeof(cmsg), fds, nfds);
		do
			n = sendmsg(c->fd, &mh, MSG_DONTWAIT | SEND_FLAGS);
		while (n < 0 && errno == EINTR);
		if (n > 0 && c->packets)
			fd_packet_sent_locked(c, (unsigned int)nfds, unread_before);
		if (n == (ssize_t)(head_len + len))
			goto sent;
		if (n < 0 && errno == ETOOMANYREFS) {
			/* This user has too many fds in flight: the frame
			 * waits in the queue, like one the socket has no room
			 * for, and the loop tries again on a timer. */
		} else if (n < 0 && errno != EAGAIN) {
			/* -EMSGSIZE (a packet the socket cannot take) refuses
			 * this message only; anything else means the
			 * connection is broken, and the loop's read reports
			 * why to every waiter. */
			r = -errno;
			if (r != -EMSGSIZE)
				c->out_error = r;
			goto out;
		}
		if (n > 0) {
			sent = (size_t)n;
			nfds = 0; /* they went with the first byte */
		}
		if (sent && !control && c->cfg.send_timeout_ms != 0 &&
		    head_len + len - sent >= DIRECT_BLOCK_MIN) {
			/* A large frame under way: rather than copy the rest
			 * into the queue, write it from the caller's buffer
			 * as the socket takes it. */
			r = send_rest(c, head, head_len, body, len, &sent);
			if (r < 0) {
				broken = true;
				goto out;
			}
			if (sent == head_len + len)
				goto sent;
		}
	}
	r = queue_frame(c, head, head_len, body, len, fds, nfds, sent);
	if (r < 0) {
		if (sent) {
			/* Part of the frame is out and the rest cannot follow:
			 * the stream is broken, and the connection ends with
			 * that reason for every waiter too. */
			c->out_error = r;
			broken = true;
		}
		goto out;
	}
	if (!c->writing) {
		c->writing = true;
		wake = true;
	}
sent:
	r = 0;
out:
	pthread_mutex_unlock(&c->out_mu);
	if (broken)
		conn_post(c, CONN_EV_FINISH);
	if (wake) {
		if (loop_on_thread(c->loop))
			start_write(c);
		else
			conn_post(c, CONN_EV_WRITE);
	}
	if (r == 0) {
		atomic_fetch_add_explicit(&c->stats[PIER_STAT_MSGS_SENT], 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->stats[PIER_STAT_BYTES_SENT], len,
					  memory_order_relaxed);
	}
	return r;
}

/* --- TLS (loop thread) --------------------------------------------------- */

/* The handshake just finished: whoever waits for it may go on. */
static void tls_up(struct conn *c)
{
	char *subject = tls_subject(c->tls);

	loop_timer_disarm(c->loop, &c->hs_timer);
	pthread_mutex_lock(&c->mu);
	c->tls_ready = true;
	c->tls_subject = subject;
	pthread_cond_broadcast(&c->in.cond);
	pthread_mutex_unlock(&c->mu);
}

/* Takes what the session decrypts into the parser until it needs more
 * ciphertext or reading is paused: large bodies straight into their
 * message, the rest through rbuf.  Returns 0, or why the connection ends. */
static int tls_pump(struct conn *c)
{
	for (;;) {
		void *window;
		size_t want = wire_parser_body_window(&c->parser, &window);
		bool paused;
		ssize_t n;
		int r;

		if (want >= DIRECT_READ_MIN)
			c->riov = (struct iovec){ window, want };
		else
			c->riov = (struct iovec){ c->rbuf, c->rbuf_size };
		n = tls_read(c->tls, c->riov.iov_base, c->riov.iov_len);
		if (!c->tls_ready && tls_ready(c->tls))
			tls_up(c);
		if (n == 0)
			return 0;
		if (n == -PIER_ECLOSED) {
			/* close_notify: the end, which must fall between
			 * frames. */
			r = wire_parser_eof(&c->parser);
			return r < 0 ? r : -PIER_ECLOSED;
		}
		if (n < 0)
			return (int)n;
		r = read_stream(c, (size_t)n);
		if (r < 0)
			return r;
		pthread_mutex_lock(&c->mu);
		paused = c->read_paused;
		pthread_mutex_unlock(&c->mu);
		if (paused) {
			c->tls_held = true; /* the rest waits in the session */
			return 0;
		}
	}
}

/* What a read returned (res: bytes in rbuf, 0 for the end, -EAGAIN for
 * nothing new), through the session; then sends what it produced (the
 * handshake's messages, alerts, key updates).  0, or why it ends. */
static int tls_process(struct conn *c, ssize_t res)
{
	int r = 0;

	if (res >= 0)
		r = tls_feed(c->tls, c->rbuf, (size_t)res);
	else if (res != -EAGAIN)
		return (int)res;
	if (r == 0)
		r = tls_pump(c);
	tls_start_write(c);
	return r;
}

/* Under out_mu: encrypts queued frames while little ciphertext waits. */
static int tls_encrypt_locked(struct conn *c)
{
	bool took = false;
	int r = 0;

	while (c->out_head && tls_out_pending(c->tls) < TLS_OBUF_SIZE) {
		struct out_frame *f = c->out_head;
		ssize_t n = tls_write(c->tls, f->data + f->sent, f->len - f->sent);

		if (n < 0) {
			r = (int)n;
			break;
		}
		took = true;
		f->sent += (size_t)n;
		c->out_bytes -= (size_t)n;
		if (f->sent == f->len) {
			frame_done_locked(c, f);
			frame_free(f); /* no fds on TLS */
		}
	}
	if (took)
		pthread_cond_broadcast(&c->out_cond);
	return r;
}

static void tls_submit_write(struct conn *c)
{
	c->wiov[0] = (struct iovec){ c->tls_obuf + c->tls_opos, c->tls_olen - c->tls_opos };
	c->wmsg = (struct msghdr){ .msg_iov = c->wiov, .msg_iovlen = 1 };
	submit_write(c);
}

/* Sends the session's ciphertext, encrypting queued frames once the
 * handshake is done; the queue counts as written once encrypted. */
static void tls_start_write(struct conn *c)
{
	bool idle;
	int r = 0;

	if (c->wr.in_flight || c->fd < 0)
		return;
	if (c->tls_opos < c->tls_olen) {
		tls_submit_write(c);
		return;
	}
	pthread_mutex_lock(&c->out_mu);
	if (c->tls_ready && (!c->out_error || c->out_error == -PIER_ESHUTDOWN))
		r = tls_encrypt_locked(c);
	idle = r == 0 && !c->out_head && !tls_out_pending(c->tls);
	if (idle)
		c->writing = false; /* the next sender wakes the loop */
	pthread_mutex_unlock(&c->out_mu);
	if (idle) {
		/* Idle connections keep no ciphertext buffer. */
		free(c->tls_obuf);
		c->tls_obuf = NULL;
		c->tls_opos = c->tls_olen = 0;
		return;
	}
	if (r == 0 && tls_out_pending(c->tls)) {
		if (!c->tls_obuf && !(c->tls_obuf = malloc(TLS_OBUF_SIZE)))
			r = -ENOMEM;
		if (r == 0) {
			c->tls_opos = 0;
			c->tls_olen = tls_out_take(c->tls, c->tls_obuf, TLS_OBUF_SIZE);
			tls_submit_write(c);
			return;
		}
	}
	if (r < 0) {
		/* The caller may hold mu (a refusal sent while routing):
		 * conn_maybe_finish(), which every loop callback ends with,
		 * ends the connection. */
		pthread_mutex_lock(&c->out_mu);
		if (!c->out_error || c->out_error == -PIER_ESHUTDOWN)
			c->out_error = r;
		pthread_mutex_unlock(&c->out_mu);
		if (!c->tls_error)
			c->tls_error = r;
	}
}

static void tls_write_done(struct conn *c, int res)
{
	if (res > 0)
		c->tls_opos += (size_t)res;
	if (res != -ECANCELED)
		tls_start_write(c);
	conn_maybe_finish(c);
}

/* The connection closes (every op done): sends what the session still
 * has, in order and without waiting (the rest of a record, the alert that
 * tells the remote why its handshake failed), and answers a received
 * close_notify with ours.  Not after an abort, which sends nothing more. */
static void tls_final_flush(struct conn *c, int error)
{
	unsigned char buf[4096];
	size_t n;
	ssize_t sent;

	if (error == -PIER_EABORTED)
		return;
	if (error == -PIER_ECLOSED && !c->tls_notified) {
		c->tls_notified = true;
		tls_close_notify(c->tls);
	}
	while (c->tls_opos < c->tls_olen) {
		sent = send(c->fd, c->tls_obuf + c->tls_opos, c->tls_olen - c->tls_opos,
			    MSG_DONTWAIT | SEND_FLAGS);
		if (sent <= 0)
			return; /* the remote may be gone already */
		c->tls_opos += (size_t)sent;
	}
	while ((n = tls_out_take(c->tls, buf, sizeof(buf))) > 0) {
		if (send(c->fd, buf, n, MSG_DONTWAIT | SEND_FLAGS) != (ssize_t)n)
			return;
	}
}
