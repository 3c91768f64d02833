/* SPDX-License-Identifier: MIT */
/*
 * The write path: the send queue shared by every thread, a sender writing
 * its own frame when nothing is queued (no hop through the loop), small
 * frames sent back to back held to share one write (coalescing), and the
 * loop writing what is queued through the link's framing.
 *
 * Coalescing.  A write costs a system call (and on TCP a segment) however
 * small the frame.  A small frame sent within a quarter of the coalescing
 * delay (cfg.coalesce_us) after the last send, with no thread having
 * waited for a message in between (a thread sending a burst), is held in
 * the queue instead (WR_HELD); the frames that follow join it, and one
 * write takes them all: the sender's, once HOLD_BYTES are held; that of a
 * thread about to wait for a message on the connection (conn_send_flush():
 * a request is never held while its sender waits for the answer); or the
 * loop's, once the oldest has waited cfg.coalesce_us (its hold timer).  A
 * message sent after a pause, as every request of a round trip is, is
 * written at once as before.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"
#include "transport.h"

/* A sender that may wait writes at least this much of a frame that the
 * socket did not take at once from its own buffer, instead of copying it
 * into the queue... */
#define DIRECT_BLOCK_MIN (64u << 10)
/* ...as long as the socket takes more within this many milliseconds. */
#define DIRECT_STALL_MS 1
#define SEND_FLAGS (MSG_NOSIGNAL)
/* After the kernel refused a packet's fds (ETOOMANYREFS), the loop sends
 * it again after 1 ms, doubling up to this. */
#define FD_RETRY_MAX_MS 16u
/* Held frames are written once this many bytes are held... */
#define HOLD_BYTES (32u << 10)
/* ...and frames larger than this are never held. */
#define HOLD_MAX_FRAME (8u << 10)
/* A send within this part of the coalescing delay after the last one,
 * with no wait in between, is part of a burst: by the default delay, 5 us,
 * longer than a write of a small frame takes (about 1 us on a Unix socket,
 * 2-3 us over TCP on the loopback), far shorter than a round trip.  A
 * sender that holds a frame for up to the delay expects others within it;
 * a longer delay lets slower bursts share writes too. */
#define HOLD_GAP_PART 4

/* --- the loop's writes --------------------------------------------------- */

static void write_done(struct loop_op *op, int res);

/* Loop thread: writes again a while after the kernel refused fds. */
static void fd_retry_arm(struct conn *c)
{
	c->fd_retry_ms = c->fd_retry_ms ? c->fd_retry_ms * 2 : 1;
	if (c->fd_retry_ms > FD_RETRY_MAX_MS)
		c->fd_retry_ms = FD_RETRY_MAX_MS;
	loop_timer_arm(c->loop, &c->fd_retry,
		       clock_now_ns() + (int64_t)c->fd_retry_ms * 1000000);
}

void conn_fd_retry_expired(struct loop_timer *t)
{
	struct conn *c = pier_container_of(t, struct conn, fd_retry);

	conn_write_start(c);
	conn_maybe_finish(c);
}

/* Under out_mu: whether the frames at the queue's head may be written at
 * once by whoever holds the write path (wr_now): not frames with fds, nor
 * while fds in flight are counted packet by packet. */
static bool may_write_now_locked(const struct conn *c)
{
	return c->link.f->wr_now && c->link.fd >= 0 && c->out_head && !c->out_head->nfds &&
	       !c->fdp_count;
}

/* Under out_mu, with no write in flight: writes queued frames at once, as
 * many as the socket takes without waiting; the frames that went leave
 * the queue onto **done.  0 (c->out_head says what is left), or why the
 * stream broke. */
static int write_now_locked(struct conn *c, struct out_frame ***done)
{
	for (int i = 0; i < 16 && may_write_now_locked(c); i++) {
		ssize_t n = c->link.f->wr_now(&c->link, c->out_head);

		if (n == -EAGAIN)
			return 0;
		if (n < 0)
			return (int)n;
		conn_count_locked(c, PIER_STAT_WRITES, 1);
		conn_queue_consume_locked(c, (size_t)n, done);
	}
	return 0;
}

/* Under out_mu: the held frames are being written (by whoever holds the
 * write path): a sender back soon after is still sending its burst. */
static void hold_end_locked(struct conn *c)
{
	c->held_bytes = 0;
	c->last_send_ns = clock_now_ns();
}

/* Under out_mu, WR_HELD: when the oldest held frame is due. */
static int64_t hold_due_locked(const struct conn *c)
{
	return c->held_since_ns + (int64_t)c->cfg.coalesce_us * 1000;
}

/* Under out_mu, WR_HELD: the held frames go now, from this thread as far
 * as the socket takes them.  Returns the events to post (the loop writes
 * the rest, or ends the connection with the error the write found). */
static unsigned int release_held_locked(struct conn *c, struct out_frame ***done)
{
	int r;

	hold_end_locked(c);
	r = write_now_locked(c, done);
	if (r < 0) {
		if (!c->send_error)
			c->send_error = r;
		conn_set_wr_locked(c, WR_LOOP);
		return CONN_EV_FINISH;
	}
	if (!c->out_head && conn_link_idle(c)) {
		conn_set_wr_locked(c, WR_IDLE);
		return 0;
	}
	conn_set_wr_locked(c, WR_LOOP);
	return CONN_EV_WRITE;
}

int conn_send_flush(struct conn *c, bool waiting)
{
	struct out_frame *done = NULL, **done_tail = &done;
	unsigned int post = 0;
	int r;

	if (waiting && !atomic_load_explicit(&c->waited, memory_order_relaxed))
		atomic_store_explicit(&c->waited, true, memory_order_relaxed);
	if (atomic_load_explicit(&c->burst_ns, memory_order_relaxed))
		atomic_store_explicit(&c->burst_ns, 0, memory_order_relaxed);
	if (!atomic_load_explicit(&c->holding, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&c->out_mu);
	if (c->wr == WR_HELD)
		post = release_held_locked(c, &done_tail);
	r = c->send_error == -PIER_ESHUTDOWN ? 0 : c->send_error;
	pthread_mutex_unlock(&c->out_mu);
	conn_frames_free(done);
	if (post)
		conn_post(c, post);
	return r;
}

void conn_send_burst(struct conn *c)
{
	atomic_store_explicit(&c->burst_ns, clock_now_ns(), memory_order_relaxed);
}

/* Loop thread: frames were held; the timer looks when the oldest is due. */
void conn_hold_arm(struct conn *c)
{
	pthread_mutex_lock(&c->out_mu);
	if (c->wr == WR_HELD)
		loop_timer_arm(c->loop, &c->hold_timer, hold_due_locked(c));
	else
		c->hold_timer_armed = false;
	pthread_mutex_unlock(&c->out_mu);
}

void conn_hold_expired(struct loop_timer *t)
{
	struct conn *c = pier_container_of(t, struct conn, hold_timer);
	int64_t due;
	bool write;

	pthread_mutex_lock(&c->out_mu);
	due = hold_due_locked(c);
	write = c->wr == WR_HELD && clock_now_ns() >= due;
	if (c->wr == WR_HELD && !write)
		loop_timer_arm(c->loop, &c->hold_timer, due); /* held again since */
	else
		c->hold_timer_armed = false;
	pthread_mutex_unlock(&c->out_mu);
	if (write)
		conn_write_start(c);
	conn_maybe_finish(c);
}

/* Loop thread: hands what the framing prepares from the queued frames to
 * the kernel (many frames per write on streams, one with its fds on
 * packets, ciphertext for TLS).  The caller may hold mu. */
void conn_write_start(struct conn *c)
{
	struct link *l = &c->link;
	struct out_frame *done = NULL, **done_tail = &done;
	struct link_write w;
	bool may_take;
	int r;

	if (c->wr_op.in_flight || l->fd < 0)
		return;
	pthread_mutex_lock(&c->out_mu);
	if (c->wr == WR_DIRECT || c->wr == WR_LEAVING) {
		/* It hands the queue over when its frame is out. */
		pthread_mutex_unlock(&c->out_mu);
		return;
	}
	may_take = !c->send_error || c->send_error == -PIER_ESHUTDOWN;
	if (c->wr == WR_HELD)
		hold_end_locked(c); /* the loop writes them now */
	if (may_take && may_write_now_locked(c)) {
		/* What the socket takes at once costs no operation in
		 * flight: many packets in one sendmmsg, say. */
		r = write_now_locked(c, &done_tail);
		if (r < 0) {
			c->send_error = r;
			conn_post(c, CONN_EV_FINISH);
			may_take = false;
		}
	}
	r = l->f->wr_prepare(l, c->out_head, may_take, &w);
	if (w.took)
		conn_queue_consume_locked(c, w.took, &done_tail);
	if (r < 0) {
		/* The caller may hold mu (a refusal sent while routing): the
		 * loop's task ends the connection with it. */
		if (may_take)
			c->send_error = r;
		conn_post(c, CONN_EV_FINISH);
	}
	if (w.submit) {
		conn_set_wr_locked(c, WR_LOOP);
		c->wr_frames = w.frames;
		if (w.frames)
			c->wr_unread_before = conn_unread_before_locked(c, c->out_head->nfds);
	} else if (!c->out_head || !may_take || c->wr == WR_HELD) {
		conn_set_wr_locked(c, WR_IDLE);
	}
	pthread_mutex_unlock(&c->out_mu);
	conn_frames_free(done);
	if (!w.submit)
		return;
	c->wr_op = (struct loop_op){
		.cb = write_done,
		.kind = LOOP_OP_SENDMSG,
		.fd = l->fd,
		.msg = &l->wmsg,
		.flags = SEND_FLAGS,
	};
	loop_submit(c->loop, &c->wr_op);
}

static void write_done(struct loop_op *op, int res)
{
	struct conn *c = pier_container_of(op, struct conn, wr_op);
	struct out_frame *done = NULL, **done_tail = &done;

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
	pthread_mutex_lock(&c->out_mu);
	if (res > 0) {
		conn_count_locked(c, PIER_STAT_WRITES, 1);
		conn_queue_consume_locked(c,
					  c->link.f->wr_done ? c->link.f->wr_done(&c->link, (size_t)res)
							     : (size_t)res,
					  &done_tail);
	}
	if (!c->out_head && c->wr == WR_LOOP && conn_link_idle(c))
		conn_set_wr_locked(c, WR_IDLE);
	pthread_cond_broadcast(&c->out_cond);
	pthread_mutex_unlock(&c->out_mu);
	conn_frames_free(done);
	if (res != -ECANCELED)
		conn_write_start(c);
	conn_maybe_finish(c);
}

/* --- sending, from any thread -------------------------------------------- */

/* A frame is written from the caller's buffers as pieces: its head, then
 * the pieces of its body, never joined but to be copied anyway (below, or
 * into the queue).  At most this many. */
#define FRAME_PIECES (1 + PIER_IOV_MAX)

/* A small frame without fds goes out with send(), its pieces joined: one
 * buffer is cheaper for the kernel to take than a msghdr with two iovecs,
 * and copying a few hundred bytes costs less than the difference. */
#define SEND_COPY_MAX 2048

static ssize_t send_copied(int fd, const struct iovec *iov, size_t n, size_t len)
{
	unsigned char buf[SEND_COPY_MAX];
	size_t at = iov[0].iov_len;
	ssize_t r;

	memcpy(buf, iov[0].iov_base, at); /* the head, then the body's pieces */
	for (size_t i = 1; i < n; i++) {
		memcpy(buf + at, iov[i].iov_base, iov[i].iov_len);
		at += iov[i].iov_len;
	}
	do
		r = send(fd, buf, len, MSG_DONTWAIT | SEND_FLAGS);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* The thread holding the write path, nothing queued before this frame:
 * writes what is left of it (mh's iovecs, len bytes in all, none empty;
 * its fds in mh's control data) from the caller's buffers, as far as the
 * socket takes it without waiting: the framing's way (TLS encrypts it),
 * one send() of the pieces joined, or one sendmsg.  Returns the bytes of
 * the frame taken, or -errno (-EAGAIN: none). */
static ssize_t write_frame(struct conn *c, struct msghdr *mh, size_t len)
{
	const struct framing *f = c->link.f;
	ssize_t n;

	if (f->wr_frame)
		return f->wr_frame(&c->link, mh->msg_iov, mh->msg_iovlen);
	if (!mh->msg_controllen && len <= SEND_COPY_MAX)
		return send_copied(c->link.fd, mh->msg_iov, mh->msg_iovlen, len);
	do
		n = sendmsg(c->link.fd, mh, MSG_DONTWAIT | SEND_FLAGS);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* What is left of the frame's pieces iov[0..n) after its first skip
 * bytes, into rest: how many pieces. */
static size_t pieces_after(const struct iovec *iov, size_t n, size_t skip, struct iovec *rest)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		rest[k++] = (struct iovec){ (unsigned char *)iov[i].iov_base + skip,
					    iov[i].iov_len - skip };
		skip = 0;
	}
	return k;
}

/* Under out_mu, with the first *sent bytes of the frame (the pieces
 * iov[0..niov), total bytes) written and nothing queued: writes more of it
 * from the caller's buffers, waiting for room with out_mu released (other
 * senders queue behind it meanwhile), for as long as the remote keeps
 * reading; then what the link holds of it (TLS: its last ciphertext).
 * Once the socket takes nothing for a moment, the caller queues the rest
 * as usual, so a send never waits on a remote that does not read unless
 * the queue is full.  Returns 0 (then the caller queues what is left, if
 * anything), or the error that broke the stream. */
static int send_rest(struct conn *c, const struct iovec *iov, size_t niov, size_t total,
		     size_t *sent)
{
	int timeout = c->cfg.send_timeout_ms, fd = c->link.fd, r = 0;
	struct timespec deadline;
	uint64_t writes = 0;
	bool more;

	if (timeout > 0)
		deadline = deadline_after(timeout);
	conn_set_wr_locked(c, WR_DIRECT);
	pthread_mutex_unlock(&c->out_mu);
	while (*sent < total || !conn_link_idle(c)) {
		struct pollfd pfd = { fd, POLLOUT, 0 };
		struct iovec rest[FRAME_PIECES];
		struct msghdr mh = { .msg_iov = rest };
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
		mh.msg_iovlen = pieces_after(iov, niov, *sent, rest);
		n = write_frame(c, &mh, total - *sent);
		if (n > 0) {
			*sent += (size_t)n;
			writes++;
		} else if (n < 0 && n != -EAGAIN) {
			r = (int)n;
			break;
		}
	}
	pthread_mutex_lock(&c->out_mu);
	conn_count_locked(c, PIER_STAT_WRITES, writes);
	/* The connection ended meanwhile (a close lets the frame finish). */
	if (r == 0 && c->send_error && c->send_error != -PIER_ESHUTDOWN)
		r = c->send_error;
	if (r < 0 && !c->send_error)
		c->send_error = r;
	if (c->wr == WR_LEAVING) {
		/* The loop waits for this thread to leave the socket. */
		conn_set_wr_locked(c, WR_LOOP);
		conn_post(c, CONN_EV_FINISH);
	} else if (*sent == total) {
		/* Hand what others queued meanwhile (and what the link still
		 * holds) to the loop; a closing connection waited for this
		 * frame to be out. */
		more = c->out_head || !conn_link_idle(c);
		conn_set_wr_locked(c, more ? WR_LOOP : WR_IDLE);
		if (more || c->send_error)
			conn_post(c, CONN_EV_WRITE);
	} else {
		/* The caller queues the rest first in line, and wakes the
		 * loop for it and for what others queued meanwhile. */
		conn_set_wr_locked(c, WR_IDLE);
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

/* The frame's pieces into iov: its head, then those of body b that hold
 * bytes (the kernel and the framings need no empty ones).  Returns how
 * many. */
static size_t frame_pieces(struct iovec *iov, const unsigned char *head, size_t head_len,
			   const struct conn_body *b)
{
	size_t n = 1;

	iov[0] = (struct iovec){ (void *)head, head_len };
	if (b->n == 1) {
		/* One buffer, as most sends give: no loop. */
		iov[1] = b->iov[0];
		return b->len ? 2 : 1;
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->iov[i].iov_len)
			iov[n++] = b->iov[i];
	return n;
}

/* Under out_mu, with nothing queued and nobody writing: writes the frame
 * (head, then the pieces of b; total bytes) from this thread, and leaves
 * in *sent what the socket took.  Returns 1 when all of it went, 0 when
 * the rest must be queued (*nfds is then 0 if the fds went), or an error:
 * -EMSGSIZE refuses this message only; any other means the connection is
 * broken (set in *broken when part of the frame is out). */
static int send_direct(struct conn *c, const unsigned char *head, size_t head_len,
		       const struct conn_body *b, size_t total, const int *fds, size_t *nfds,
		       bool control, size_t *sent, bool *broken)
{
	unsigned char cmsg[CMSG_SPACE(WIRE_MAX_FDS * sizeof(int))];
	struct iovec iov[FRAME_PIECES];
	size_t niov = frame_pieces(iov, head, head_len, b);
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = niov };
	int unread_before = conn_fds_tracked(c, *nfds) ? conn_unread_before_locked(c, *nfds) : -1;
	ssize_t n;
	int r;

	link_put_fds(&mh, cmsg, sizeof(cmsg), fds, *nfds);
	n = write_frame(c, &mh, total);
	if (n > 0) {
		conn_count_locked(c, PIER_STAT_WRITES, 1);
		if (conn_fds_tracked(c, *nfds))
			conn_fd_packet_sent_locked(c, (unsigned int)*nfds, unread_before);
	}
	if (n == (ssize_t)total)
		return 1;
	if (n == -ETOOMANYREFS) {
		/* This user has too many fds in flight: the frame waits in
		 * the queue, like one the socket has no room for, and the
		 * loop tries again on a timer. */
		return 0;
	}
	if (n < 0 && n != -EAGAIN) {
		/* Anything but a packet the socket cannot take means the
		 * connection is broken, and the loop's read reports why to
		 * every waiter. */
		r = (int)n;
		if (r != -EMSGSIZE)
			c->send_error = r;
		return r;
	}
	if (n <= 0)
		return 0;
	*sent = (size_t)n;
	*nfds = 0; /* they went with the first byte */
	if (!control && c->cfg.send_timeout_ms != 0 &&
	    (total - *sent >= DIRECT_BLOCK_MIN ||
	     (c->link.f->wr_frame && total >= DIRECT_BLOCK_MIN))) {
		/* A large frame under way: rather than copy the rest into the
		 * queue, write it from the caller's buffer as the socket
		 * takes it (all of it, when the framing works on it before
		 * it goes: TLS encrypts it, which the loop would do
		 * otherwise). */
		r = send_rest(c, iov, niov, total, sent);
		if (r < 0) {
			*broken = true;
			return r;
		}
		if (*sent == total)
			return 1;
	}
	return 0;
}

/* Whether a frame of total bytes and nfds fds may be held at all: a small
 * plain one, on a link that can write many at once. */
static bool holdable(const struct conn *c, size_t total, size_t nfds, bool control)
{
	return c->cfg.coalesce_us && !control && !nfds && total <= HOLD_MAX_FRAME &&
	       c->link.f->wr_now;
}

/* Under out_mu, WR_IDLE with nothing queued: whether a holdable frame
 * waits for those that follow rather than go at once: no thread waited
 * for a message since the last send (a request's sender waits for its
 * answer between two, and then the clock is not even read), and the last
 * send began within 1 / HOLD_GAP_PART of the delay; or its thread said
 * it sends a burst (conn_send_burst()).  Sets *now when it read the
 * clock, or to when the burst began. */
static bool hold_new_locked(struct conn *c, int64_t *now)
{
	int64_t last = c->last_send_ns;
	int64_t burst = atomic_load_explicit(&c->burst_ns, memory_order_relaxed);

	if (atomic_load_explicit(&c->waited, memory_order_relaxed)) {
		atomic_store_explicit(&c->waited, false, memory_order_relaxed);
		c->last_send_ns = 0;
		return false;
	}
	if (burst) {
		/* Held since the burst began, as far as the hold timer is
		 * concerned: no frame waits longer than the delay after it. */
		*now = burst;
		return true;
	}
	*now = clock_now_ns();
	c->last_send_ns = *now;
	return last && *now - last < (int64_t)c->cfg.coalesce_us * 1000 / HOLD_GAP_PART;
}

/* conn_send(); for a control send, *over (when not NULL) says whether
 * control frames hold the queue over its limit once it is sent. */
static int send_msg(struct conn *c, const struct pier_header *h, const struct conn_body *b,
		    const int *fds, size_t nfds, bool control, bool *over)
{
	const struct framing *f = c->link.f;
	unsigned char head[WIRE_STREAM_OVERHEAD];
	struct out_frame *done = NULL, **done_tail = &done;
	size_t head_len, sent = 0, total;
	unsigned int post = 0;
	bool broken = false, may_hold;
	int64_t now = 0;
	int r;

	r = conn_send_check(c, b->len, nfds);
	if (r < 0)
		return r;
	assert(b->n <= PIER_IOV_MAX);
	head_len = f->head_encode(&c->link, head, h, b->len);
	total = head_len + b->len;
	may_hold = holdable(c, total, nfds, control);

	pthread_mutex_lock(&c->out_mu);
	r = conn_queue_wait_locked(c, total, nfds, control);
	if (r < 0)
		goto out;
	if (c->send_error && c->send_error != -PIER_ESHUTDOWN) {
		/* A control send after the end: the link is being flushed
		 * and closed by the loop, nobody else may touch it. */
		r = c->send_error;
		goto out;
	}
	if (c->wr == WR_HELD) {
		if (may_hold) {
			r = conn_queue_frame_locked(c, head, head_len, b, NULL, 0, 0, false);
			if (r < 0)
				goto out;
			c->held_bytes += total;
			if (c->held_bytes >= HOLD_BYTES)
				post |= release_held_locked(c, &done_tail);
			goto sent;
		}
		/* What is held goes first, then this frame as usual. */
		post |= release_held_locked(c, &done_tail);
		if (c->send_error && c->send_error != -PIER_ESHUTDOWN) {
			r = c->send_error;
			goto out;
		}
	}
	if (c->wr == WR_IDLE && !c->out_head && c->link.fd >= 0) {
		if (may_hold && hold_new_locked(c, &now)) {
			r = conn_queue_frame_locked(c, head, head_len, b, NULL, 0, 0, false);
			if (r < 0)
				goto out;
			conn_set_wr_locked(c, WR_HELD);
			c->held_since_ns = now;
			c->held_bytes = total;
			if (!c->hold_timer_armed) {
				c->hold_timer_armed = true;
				post |= CONN_EV_HOLD;
			}
			goto sent;
		}
		r = send_direct(c, head, head_len, b, total, fds, &nfds, control, &sent, &broken);
		if (r == 1 && c->wr == WR_IDLE && !conn_link_idle(c)) {
			/* All of it is taken, and the link holds the rest of
			 * what it made of it (TLS: ciphertext the socket did
			 * not take): the loop sends that. */
			conn_set_wr_locked(c, WR_LOOP);
			post |= CONN_EV_WRITE;
		}
		if (r == 1)
			goto sent;
		if (r < 0)
			goto out;
	}
	r = conn_queue_frame_locked(c, head, head_len, b, fds, nfds, sent, control);
	if (r < 0) {
		if (sent) {
			/* Part of the frame is out and the rest cannot follow:
			 * the stream is broken, and the connection ends with
			 * that reason for every waiter too. */
			c->send_error = r;
			broken = true;
		}
		goto out;
	}
	if (c->wr == WR_IDLE) {
		conn_set_wr_locked(c, WR_LOOP);
		post |= CONN_EV_WRITE;
	}
sent:
	r = 0;
	conn_count_locked(c, PIER_STAT_MSGS_SENT, 1);
	conn_count_locked(c, PIER_STAT_BYTES_SENT, b->len);
	if (over)
		*over = conn_answers_over_locked(c);
out:
	pthread_mutex_unlock(&c->out_mu);
	conn_frames_free(done);
	if (broken)
		post |= CONN_EV_FINISH;
	if (post & CONN_EV_WRITE && loop_on_thread(c->loop)) {
		conn_write_start(c);
		post &= ~CONN_EV_WRITE;
	}
	if (post)
		conn_post(c, post);
	return r;
}

int conn_send(struct conn *c, const struct pier_header *h, const struct conn_body *b,
	      const int *fds, size_t nfds, bool control)
{
	return send_msg(c, h, b, fds, nfds, control, NULL);
}

int conn_send_answer(struct conn *c, const struct pier_header *h, const struct conn_body *b,
		     bool *over)
{
	*over = false;
	return send_msg(c, h, b, NULL, 0, true, over);
}
