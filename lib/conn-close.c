/* SPDX-License-Identifier: MIT */
/*
 * Ending and closing a connection: failing it (from any thread), and the
 * loop's steps from closing to closed to freed.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"

void conn_fail_locked(struct conn *c, int err)
{
	struct out_frame *drop;

	if (!c->error)
		c->error = err;
	c->ops->ended_locked(c);
	pthread_cond_broadcast(&c->state_cond);

	pthread_mutex_lock(&c->out_mu);
	/* After conn_close(), sending keeps failing for that reason. */
	if (!c->send_error)
		c->send_error = c->error;
	drop = conn_queue_cut_locked(c);
	pthread_cond_broadcast(&c->out_cond);
	pthread_mutex_unlock(&c->out_mu);
	conn_frames_free(drop);
	if (!loop_on_thread(c->loop)) {
		/* Found by a reading application thread: the loop closes. */
		conn_post(c, CONN_EV_FINISH);
		return;
	}
	if (c->state < CONN_ENDED)
		conn_set_state_locked(c, CONN_ENDED);
	if (c->link.fd >= 0) {
		/* Cancels what is in flight; the fd is closed once every op
		 * completed. */
		loop_cancel(c->loop, &c->rd_op);
		loop_cancel(c->loop, &c->wr_op);
	}
}

void conn_fail(struct conn *c, int err)
{
	pthread_mutex_lock(&c->mu);
	conn_fail_locked(c, err);
	pthread_mutex_unlock(&c->mu);
}

void conn_linger_expired(struct loop_timer *t)
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

void conn_hs_expired(struct loop_timer *t)
{
	conn_handshake_abort(pier_container_of(t, struct conn, hs_timer), -ETIMEDOUT);
}

void conn_handshake_timeout(struct conn *c, int timeout_ms)
{
	if (timeout_ms >= 0)
		loop_timer_arm(c->loop, &c->hs_timer,
			       clock_now_ns() + (int64_t)timeout_ms * 1000000);
}

int conn_wait_ready_locked(struct conn *c, const struct timespec *deadline)
{
	while (c->state == CONN_HANDSHAKING && !c->error) {
		if (!deadline)
			pthread_cond_wait(&c->state_cond, &c->mu);
		else if (pthread_cond_timedwait(&c->state_cond, &c->mu, deadline) == ETIMEDOUT)
			break;
	}
	if (c->error)
		return c->error;
	return c->state == CONN_HANDSHAKING ? -ETIMEDOUT : 0;
}

/* A listener waits for this connection's handshake: tells it, once. */
static void handshake_report(struct conn *c)
{
	void (*done)(struct conn *c, int err) = c->hs_done;
	int error;
	bool ready;

	pthread_mutex_lock(&c->mu);
	error = c->error;
	ready = c->state != CONN_HANDSHAKING;
	pthread_mutex_unlock(&c->mu);
	if (error || ready) {
		c->hs_done = NULL;
		done(c, error);
	}
}

/* Closing, once everything queued is out: the link ends its stream (TLS:
 * close_notify), then the socket's write side is shut; the remote reads it
 * all, then EOF.  While the application holds handles, reading goes on
 * until the remote closes too.  Returns the error the connection now ends
 * with, if it does. */
static int closing_step(struct conn *c)
{
	const struct framing *f = c->link.f;
	bool flushed;

	pthread_mutex_lock(&c->out_mu);
	/* A sender's frame may be under way. */
	flushed = !c->out_head && c->wr != WR_DIRECT && conn_link_idle(c);
	if (!c->send_error)
		c->send_error = -PIER_ESHUTDOWN;
	pthread_mutex_unlock(&c->out_mu);
	if (c->state == CONN_CLOSING && flushed && !c->wr_op.in_flight && f->wr_close &&
	    f->wr_close(&c->link)) {
		/* The link has that to send first (it is no longer idle). */
		conn_post(c, CONN_EV_WRITE);
		return 0;
	}
	if (c->state == CONN_CLOSING && flushed && !c->wr_op.in_flight) {
		shutdown(c->link.fd, SHUT_WR);
		pthread_mutex_lock(&c->mu);
		conn_set_state_locked(c, CONN_SHUT);
		pthread_mutex_unlock(&c->mu);
	}
	if (c->state == CONN_SHUT && c->released) {
		conn_fail(c, -PIER_ESHUTDOWN);
		return -PIER_ESHUTDOWN;
	}
	return 0;
}

/* The connection ended: once no op is in flight and no thread is in the
 * socket, the fd is closed.  Returns false while it must wait. */
static bool close_step(struct conn *c, int error)
{
	if (c->link.fd >= 0) {
		loop_cancel(c->loop, &c->rd_op);
		loop_cancel(c->loop, &c->wr_op);
	}
	if (c->rd_op.in_flight || c->wr_op.in_flight)
		return false; /* their completions come back here */
	pthread_mutex_lock(&c->mu);
	if (c->rd == RD_APP || c->rd == RD_LEAVING) {
		/* A thread is reading the socket: wake it; it hands back with
		 * CONN_EV_FINISH. */
		conn_set_rd_locked(c, RD_LEAVING);
		pthread_mutex_unlock(&c->mu);
		shutdown(c->link.fd, SHUT_RDWR);
		return false;
	}
	conn_set_rd_locked(c, RD_GONE);
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	if (c->wr == WR_DIRECT || c->wr == WR_LEAVING) {
		/* A sender is writing a frame itself: the same. */
		conn_set_wr_locked(c, WR_LEAVING);
		pthread_mutex_unlock(&c->out_mu);
		shutdown(c->link.fd, SHUT_RDWR);
		return false;
	}
	pthread_mutex_unlock(&c->out_mu);
	if (c->link.f->final_flush)
		c->link.f->final_flush(&c->link, error);
	link_discard_input(&c->link);
	/* Under out_mu: a sender writing from its own thread holds it, and
	 * must never see the number of a closed (or reused) fd. */
	pthread_mutex_lock(&c->out_mu);
	close(c->link.fd);
	c->link.fd = -1;
	pthread_mutex_unlock(&c->out_mu);
	pthread_mutex_lock(&c->mu);
	conn_set_state_locked(c, CONN_CLOSED);
	pthread_mutex_unlock(&c->mu);
	return true;
}

/* Loop thread: frees the connection (fd closed, nothing in flight); the
 * layer above frees the memory it is in. */
static void conn_destroy(struct conn *c)
{
	assert(c->link.fd < 0 && !c->rd_op.in_flight && !c->wr_op.in_flight);
	loop_timer_disarm(c->loop, &c->linger);
	loop_timer_disarm(c->loop, &c->hs_timer);
	loop_timer_disarm(c->loop, &c->fd_retry);
	loop_timer_disarm(c->loop, &c->hold_timer);
	loop_timer_disarm(c->loop, &c->live_timer);
	conn_frames_free(c->out_head);
	conn_frames_free(c->spare_chunk);
	link_fini(&c->link);
	if (c->wake_fd >= 0)
		close(c->wake_fd);
	free(c->fd_packets);
	free(c->tls_subject);
	pthread_mutex_destroy(&c->mu);
	pthread_mutex_destroy(&c->out_mu);
	pthread_cond_destroy(&c->state_cond);
	pthread_cond_destroy(&c->out_cond);
	loop_user_done(c->loop);
	/* What the layer above drains must not resume reading. */
	conn_set_pause_locked(c, PAUSE_NONE);
	c->ops->destroy(c); /* frees c */
}

/* Moves a closing or ended connection on, one step per call, from every
 * completion: once the queue is flushed, the write side is shut; once
 * nobody holds a handle after that, the connection ends; once it has
 * ended and no op is in flight, the fd is closed; once it is closed and
 * nobody holds a handle, it is freed. */
void conn_maybe_finish(struct conn *c)
{
	int error;

	if (c->hs_done)
		handshake_report(c);
	if (c->state == CONN_CLOSED)
		goto maybe_free;
	if (c->state < CONN_CLOSING)
		return; /* an error found elsewhere comes with CONN_EV_FINISH */
	pthread_mutex_lock(&c->mu);
	error = c->error;
	pthread_mutex_unlock(&c->mu);
	if (!error)
		error = closing_step(c);
	if (!error || !close_step(c, error))
		return;
maybe_free:
	/* Not while its task waits to run (the loop posts itself work too):
	 * that run comes back here. */
	if (c->released && !loop_task_posted(c->loop, &c->task))
		conn_destroy(c);
}
