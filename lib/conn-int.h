/* SPDX-License-Identifier: MIT */
/*
 * Between the connection's own files: conn.c (setting up, tasks from other
 * threads, state changes), conn-read.c (the read role), conn-write.c (the
 * send queue and writing), conn-fds.c (fds in flight), conn-close.c
 * (ending and closing).  Not for the layers above: they use conn.h.
 */
#ifndef PIER_CONN_INT_H
#define PIER_CONN_INT_H

#include <assert.h>
#include <stdatomic.h>

#include "conn.h"

/* Work an application thread asks of the loop (c->task's events). */
#define CONN_EV_START 1u   /* start: count the connection, start reading */
#define CONN_EV_WRITE 2u   /* the send queue has frames */
#define CONN_EV_READ 4u    /* the loop holds the read role: read */
#define CONN_EV_RELEASE 8u /* no handles left: close gracefully */
#define CONN_EV_CLOSE 16u  /* conn_close() */
#define CONN_EV_FINISH 32u /* it ended off the loop, or its reader or writer left */
#define CONN_EV_HOLD 64u   /* frames are held: arm the hold timer */
#define CONN_EV_ANSWERED 128u /* the automatic answers no longer hold the
			       * send queue over its limit */

void conn_post(struct conn *c, unsigned int events);

/* The one place each state changes: checks that the change is legal, and
 * says it on stderr when PIER_DEBUG=1 is in the environment. */
void conn_set_state_locked(struct conn *c, enum conn_state s); /* under mu, loop */

/* Whether PIER_DEBUG=1 is in the environment: 1 or 0 once looked up, -1
 * before (conn-state.c).  The setters are inline, for the read role changes
 * twice per message a thread reads; they say the change out of line. */
extern atomic_int conn_debug;
void conn_say_rd(const struct conn *c, enum conn_rd from, enum conn_rd to);
void conn_say_wr(const struct conn *c, enum conn_wr from, enum conn_wr to);
void conn_say_pause(const struct conn *c, enum conn_pause from, enum conn_pause to);

static inline bool conn_rd_step_legal(enum conn_rd from, enum conn_rd to)
{
	switch (to) {
	case RD_NONE:
		return from == RD_LOOP || from == RD_APP || from == RD_LEAVING;
	case RD_LOOP:
	case RD_APP:
		return from == RD_NONE;
	case RD_LEAVING:
		return from == RD_APP;
	case RD_GONE:
		return from == RD_NONE || from == RD_LOOP;
	}
	return false;
}

static inline bool conn_wr_step_legal(enum conn_wr from, enum conn_wr to)
{
	switch (to) {
	case WR_IDLE:
		return from == WR_HELD || from == WR_LOOP || from == WR_DIRECT;
	case WR_HELD:
		return from == WR_IDLE;
	case WR_LOOP:
		return from == WR_IDLE || from == WR_HELD || from == WR_DIRECT ||
		       from == WR_LEAVING;
	case WR_DIRECT:
		return from == WR_IDLE;
	case WR_LEAVING:
		return from == WR_DIRECT;
	}
	return false;
}

/* Reading pauses for one reason, or for the other once the first no
 * longer holds, and goes on once neither holds. */
static inline bool conn_pause_step_legal(enum conn_pause from, enum conn_pause to)
{
	return from != to;
}

static inline void conn_set_pause_locked(struct conn *c, enum conn_pause p)
{
	enum conn_pause from = c->pause;

	if (p == from)
		return;
	assert(conn_pause_step_legal(from, p));
	c->pause = p;
	if (atomic_load_explicit(&conn_debug, memory_order_relaxed) != 0)
		conn_say_pause(c, from, p);
}

static inline void conn_set_rd_locked(struct conn *c, enum conn_rd rd)
{
	enum conn_rd from = c->rd;

	if (rd == from)
		return;
	assert(conn_rd_step_legal(from, rd));
	c->rd = rd;
	if (atomic_load_explicit(&conn_debug, memory_order_relaxed) != 0)
		conn_say_rd(c, from, rd);
}

static inline void conn_set_wr_locked(struct conn *c, enum conn_wr wr)
{
	enum conn_wr from = c->wr;

	if (wr == from)
		return;
	assert(conn_wr_step_legal(from, wr));
	c->wr = wr;
	atomic_store_explicit(&c->holding, wr == WR_HELD, memory_order_relaxed);
	if (atomic_load_explicit(&conn_debug, memory_order_relaxed) != 0)
		conn_say_wr(c, from, wr);
}

/* Whoever holds the write path: nothing of the link's own (TLS: ciphertext
 * a write left) waits to be sent. */
static inline bool conn_link_idle(struct conn *c)
{
	return !c->link.f->wr_idle || c->link.f->wr_idle(&c->link);
}

/* conn-read.c, loop thread: reads in the background if the loop holds the
 * read role; routes what already arrived, once the application let go. */
void conn_read_start(struct conn *c);
void conn_read_pending(struct conn *c);

/* conn-write.c.  Loop thread: hands queued frames to the kernel. */
void conn_write_start(struct conn *c);
/* Any thread (conn_answer_locked()): a control send of h and b; sets
 * *over when control frames now hold the queue over its limit. */
int conn_send_answer(struct conn *c, const struct pier_header *h, const struct conn_body *b,
		     bool *over);

/* conn-queue.c, under out_mu. */
/* Takes off the send queue what will never be written and returns it (free
 * with conn_frames_free()).  The frames the write in flight points into
 * stay until it completes. */
struct out_frame *conn_queue_cut_locked(struct conn *c);
void conn_frames_free(struct out_frame *f);
/* n bytes of the queued frames are written (or taken by the link): frames
 * done leave the queue, onto **done. */
void conn_queue_consume_locked(struct conn *c, size_t n, struct out_frame ***done);
/* Waits until a frame of total bytes and nfds fds may be queued (control:
 * never waits): 0, -EAGAIN, -ETIMEDOUT, or the send error. */
int conn_queue_wait_locked(struct conn *c, size_t total, size_t nfds, bool control);
/* Queues a frame of head and body b (its pieces copied in order) with
 * dups of fds, of which sent bytes are already written (it then goes first
 * in line); control: the memory it adds counts as the control frames'
 * (c->out_control).  0, -ENOMEM, -EMFILE or -ENFILE. */
int conn_queue_frame_locked(struct conn *c, const unsigned char *head, size_t head_len,
			    const struct conn_body *b, const int *fds, size_t nfds, size_t sent,
			    bool control);
/* Whether control frames hold the queue over its limit: reading pauses
 * for that (see CONN_ANSWERS_SLACK).  A queue that stops doing so posts
 * CONN_EV_ANSWERED. */
bool conn_answers_over_locked(const struct conn *c);

/* conn-fds.c, under out_mu: fds sent and not yet read by the remote.  Both
 * do nothing unless the packet carries fds or packets with fds are
 * tracked: conn_fds_tracked() says so inline, for the sends of every
 * other message. */
static inline bool conn_fds_tracked(const struct conn *c, size_t nfds)
{
	return nfds || c->fdp_count;
}
int conn_unread_before_locked(const struct conn *c, size_t nfds);
void conn_fd_packet_sent_locked(struct conn *c, unsigned int nfds, int unread_before);
void conn_fds_refresh_locked(struct conn *c);

/* conn-close.c, loop thread. */
void conn_fail(struct conn *c, int err);
/* Moves a closing or ended connection on; every loop callback ends with
 * it.  It may free c. */
void conn_maybe_finish(struct conn *c);
void conn_linger_expired(struct loop_timer *t);
void conn_hs_expired(struct loop_timer *t);

/* conn-read.c, loop thread: when nobody reads, the loop reads what has
 * arrived, once (nothing must wait unread for a thread that may never
 * come: a ping, the remote's end). */
void conn_read_unclaimed(struct conn *c);
/* conn-read.c, loop thread (CONN_EV_ANSWERED): reading paused for the
 * automatic answers goes on if they no longer hold the queue over. */
void conn_answers_sent(struct conn *c);
/* The read role's holder: a read brought data. */
static inline void conn_count_read(struct conn *c)
{
	atomic_store_explicit(&c->reads, atomic_load_explicit(&c->reads, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* conn-live.c: TCP keepalive (any thread, before the connection starts);
 * the liveness timer (loop thread). */
void conn_keepalive(struct conn *c);
void conn_live_start(struct conn *c);
void conn_live_expired(struct loop_timer *t);

/* conn-write.c: after ETOOMANYREFS, writes again on a timer. */
void conn_fd_retry_expired(struct loop_timer *t);
void conn_hold_arm(struct conn *c);
void conn_hold_expired(struct loop_timer *t);

#endif
