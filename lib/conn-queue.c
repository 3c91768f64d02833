/* SPDX-License-Identifier: MIT */
/*
 * The send queue: frames waiting to be written, their memory and fds
 * counted against the connection's limits, and senders waiting for room.
 * Everything here is under out_mu.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"

/* What malloc keeps beside each block, counted with the queue's memory. */
#define ALLOC_OVERHEAD (2 * sizeof(size_t))
/* Nothing says when the remote reads the fds in flight: a sender waiting
 * for them looks again this often (longer, and the remote may go idle
 * meanwhile). */
#define FD_POLL_MS 1
/* Small stream frames share chunks of this size, so that a burst of them
 * costs one allocation and one iovec per chunk. */
#define CHUNK_SIZE CONN_CHUNK_SIZE
#define CHUNK_MAX_FRAME (8u << 10)

void conn_frames_free(struct out_frame *f)
{
	while (f) {
		struct out_frame *n = f->next;

		out_frame_free(f);
		f = n;
	}
}

struct out_frame *conn_queue_cut_locked(struct conn *c)
{
	struct out_frame **keep = &c->out_head, *drop;

	c->out_bytes = 0;
	c->out_control = 0;
	c->out_fds = 0;
	for (unsigned int i = 0; i < c->wr_frames && *keep; i++) {
		c->out_bytes += (*keep)->size - (*keep)->sent;
		c->out_control += (*keep)->control;
		c->out_fds += (*keep)->nfds;
		keep = &(*keep)->next;
	}
	drop = *keep;
	*keep = NULL;
	c->out_tail = keep;
	return drop;
}

bool conn_answers_over_locked(const struct conn *c)
{
	return c->out_control > CONN_ANSWERS_SLACK && c->out_bytes > c->cfg.max_send_queued;
}

/* Under out_mu: n bytes of the queued frames are written (or taken by the
 * link): frames done leave the queue, onto *done, and senders waiting for
 * room look again. */
void conn_queue_consume_locked(struct conn *c, size_t n, struct out_frame ***done)
{
	bool over = conn_answers_over_locked(c);

	if (c->out_head && n > 0)
		pthread_cond_broadcast(&c->out_cond);
	while (c->out_head && n > 0) {
		struct out_frame *f = c->out_head;
		size_t rest = f->len - f->sent;

		if (n < rest) {
			f->sent += n;
			c->out_bytes -= n;
			break;
		}
		n -= rest;
		c->out_bytes -= rest;
		f->sent = f->len;
		c->out_head = f->next;
		if (!c->out_head)
			c->out_tail = &c->out_head;
		c->out_bytes -= f->size - f->len;
		c->out_control -= f->control;
		c->out_fds -= f->nfds;
		if (conn_fds_tracked(c, f->nfds))
			conn_fd_packet_sent_locked(c, f->nfds, c->wr_unread_before);
		f->next = NULL;
		if (f->cap && !c->spare_chunk) {
			/* The next burst writes into it: no allocation, no
			 * fresh pages to fault in. */
			c->spare_chunk = f;
			continue;
		}
		**done = f;
		*done = &f->next;
	}
	/* Reading may wait for this (PAUSE_SEND): the loop looks. */
	if (over && !conn_answers_over_locked(c))
		conn_post(c, CONN_EV_ANSWERED);
}

/* The memory a frame of len data bytes and nfds fds takes. */
static size_t frame_size(size_t len, size_t nfds)
{
	/* The fds go after the data, aligned. */
	size_t fds_at = (len + _Alignof(int) - 1) & ~(_Alignof(int) - 1);

	return sizeof(struct out_frame) + fds_at + nfds * sizeof(int) + ALLOC_OVERHEAD;
}

/* Puts a frame's head and body b at to: the body's pieces in order (an
 * empty one's base may be NULL, which memcpy() must not see). */
static inline void frame_put(unsigned char *to, const unsigned char *head, size_t head_len,
			     const struct conn_body *b)
{
	memcpy(to, head, head_len);
	to += head_len;
	if (b->n == 1) {
		/* One buffer, as most sends give: no loop. */
		if (b->len)
			memcpy(to, b->iov[0].iov_base, b->len);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (b->iov[i].iov_len)
			memcpy(to, b->iov[i].iov_base, b->iov[i].iov_len);
		to += b->iov[i].iov_len;
	}
}

/* A frame holding head and body b (in a chunk of cap bytes, if cap), of
 * which already_sent bytes are written, with dups of fds: 0, -ENOMEM, or
 * -EMFILE / -ENFILE when this process or the system has no fd to spare. */
static int frame_new(struct out_frame **out, const unsigned char *head, size_t head_len,
		     const struct conn_body *b, const int *fds, size_t nfds,
		     size_t already_sent, size_t cap)
{
	size_t data = cap ? cap : head_len + b->len;
	size_t fds_at = (data + _Alignof(int) - 1) & ~(_Alignof(int) - 1);
	struct out_frame *f = malloc(sizeof(*f) + fds_at + nfds * sizeof(int));

	if (!f)
		return -ENOMEM;
	f->next = NULL;
	f->len = head_len + b->len;
	f->sent = already_sent;
	f->cap = cap;
	f->size = frame_size(data, nfds);
	f->control = 0;
	f->nfds = 0;
	f->fds = (int *)(void *)(f->data + fds_at);
	frame_put(f->data, head, head_len, b);
	for (size_t i = 0; i < nfds; i++) {
		int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);

		if (fd < 0) {
			int r = -errno;

			out_frame_free(f);
			return r;
		}
		f->fds[f->nfds++] = fd;
	}
	*out = f;
	return 0;
}

/* Whether a frame of total bytes and nfds fds joins the last chunk. */
static bool chunked(const struct conn *c, size_t total, size_t nfds)
{
	return !c->link.f->packets && !nfds && total <= CHUNK_MAX_FRAME;
}

static struct out_frame *queue_last_locked(const struct conn *c)
{
	return c->out_head ? pier_container_of(c->out_tail, struct out_frame, next) : NULL;
}

/* Under out_mu: the memory queueing a frame of total bytes and nfds fds
 * would add (none when it fits in the room of the last chunk). */
static size_t queue_cost_locked(const struct conn *c, size_t total, size_t nfds)
{
	const struct out_frame *last = queue_last_locked(c);

	if (chunked(c, total, nfds)) {
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
	conn_fds_refresh_locked(c);
	fds = c->out_fds + c->fds_in_flight;
	return fds > 0 && fds + nfds > c->cfg.max_send_fds;
}

/* Under out_mu: waits until a frame of total bytes and nfds fds may be
 * sent.  Queued frames leaving wake it; fds read by the remote do not, so
 * it looks for those now and then. */
int conn_queue_wait_locked(struct conn *c, size_t total, size_t nfds, bool control)
{
	int timeout = c->cfg.send_timeout_ms;
	struct timespec deadline;

	if (control)
		return 0;
	if (timeout > 0)
		deadline = deadline_after(timeout);
	while (!c->send_error && over_limits_locked(c, total, nfds)) {
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
	return c->send_error;
}

/* Under out_mu: queues a frame, of which sent bytes are already written;
 * such a frame is on the wire, so it goes first in line. */
int conn_queue_frame_locked(struct conn *c, const unsigned char *head, size_t head_len,
			    const struct conn_body *b, const int *fds, size_t nfds, size_t sent,
			    bool control)
{
	struct out_frame *last = queue_last_locked(c);
	size_t total = head_len + b->len;
	bool small = chunked(c, total, nfds);
	struct out_frame *f = NULL;
	int r;

	if (small && !sent && last && last->len + total <= last->cap) {
		/* Behind what the loop may be writing right now; the chunk
		 * stays queued until its last byte is out. */
		frame_put(last->data + last->len, head, head_len, b);
		last->len += total; /* in room already counted */
		return 0;
	}
	if (small && c->spare_chunk) {
		f = c->spare_chunk;
		c->spare_chunk = NULL;
		f->len = total;
		f->sent = sent;
		f->control = 0;
		frame_put(f->data, head, head_len, b);
	} else {
		r = frame_new(&f, head, head_len, b, fds, nfds, sent, small ? CHUNK_SIZE : 0);
		if (r < 0)
			return r;
	}
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
	if (control) {
		/* What it added counts as the control frames' until it
		 * leaves: a chunk it started, whatever joins it later. */
		f->control = f->size - f->sent;
		c->out_control += f->control;
	}
	return 0;
}
