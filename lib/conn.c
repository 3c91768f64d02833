/* SPDX-License-Identifier: MIT */
/*
 * Connections: setting one up and tearing it down, the work other threads
 * post to the loop, the link's calls up, and the one place each state
 * changes.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"
#include "tls-session.h"
#include "transport.h"

/* --- the link's calls up ------------------------------------------------- */

static struct conn *conn_of_link(struct link *l)
{
	return pier_container_of(l, struct conn, link);
}

static bool link_deliver(struct link *l, struct pier_msg *m)
{
	struct conn *c = conn_of_link(l);

	return c->ops->deliver(c, m);
}

static void link_refuse(struct link *l, uint32_t request_id, const char *why)
{
	struct pier_header h = { PIER_MSG_RESPONSE, request_id, PIER_SERVICE_ERROR };
	struct iovec v;
	struct conn_body b = conn_body_one(&v, why, strlen(why));

	conn_send(conn_of_link(l), &h, &b, NULL, 0, true);
}

/* The handshake is done: whoever waits for it may go on.  (On the loop,
 * which alone uses the session until the connection is open.) */
static void link_ready(struct link *l)
{
	struct conn *c = conn_of_link(l);
	char *subject = tls_subject(l->tls);

	loop_timer_disarm(c->loop, &c->hs_timer);
	pthread_mutex_lock(&c->mu);
	c->tls_subject = subject;
	if (c->state == CONN_HANDSHAKING)
		conn_set_state_locked(c, CONN_OPEN);
	pthread_mutex_unlock(&c->mu);
}

/* Whoever holds the write path sends what the link has first; when nobody
 * does, the loop writes it. */
static void link_want_write(struct link *l)
{
	struct conn *c = conn_of_link(l);

	if (loop_on_thread(c->loop))
		conn_write_start(c);
	else
		conn_post(c, CONN_EV_WRITE);
}

static const struct link_ops link_ops = {
	.deliver = link_deliver,
	.refuse = link_refuse,
	.ready = link_ready,
	.want_write = link_want_write,
};

/* --- setting up and tearing down ----------------------------------------- */

static void conn_task(struct loop_task *task, unsigned int ev);

int conn_init(struct conn *c, int fd, const struct transport *t, const struct pier_config *cfg,
	      struct pier_loop *loop, struct tls *tls, const struct conn_ops *ops)
{
	struct link_limits lim = {
		.order = cfg->order,
		.max_body_read = cfg->max_body_read,
		.max_body_write = cfg->max_body_write,
		.max_fds = t->caps & TRANSPORT_FDS ? cfg->max_fds : 0,
	};
	int r;

	r = link_init(&c->link, t->framing, fd, &lim, &link_ops, tls);
	if (r < 0)
		return r;
	c->loop = loop;
	c->t = t;
	c->ops = ops;
	c->cfg = *cfg;
	c->cfg.loop = NULL;
	c->cfg.tls = NULL;
	c->cfg.loop_attr = NULL;
	c->cfg.max_body_read = c->link.lim.max_body_read;
	c->cfg.max_body_write = c->link.lim.max_body_write;
	c->cfg.max_fds = c->link.lim.max_fds;
	if (!c->cfg.max_recv_fds)
		c->cfg.max_recv_fds = config_default_queued_fds();
	if (!c->cfg.max_send_fds)
		c->cfg.max_send_fds = config_default_queued_fds();
	c->state = tls ? CONN_HANDSHAKING : CONN_OPEN;
	c->rd = RD_NONE;
	c->wr = WR_IDLE;
	c->wake_fd = -1;
	pthread_mutex_init(&c->mu, NULL);
	pthread_mutex_init(&c->out_mu, NULL);
	cond_init_monotonic(&c->state_cond);
	cond_init_monotonic(&c->out_cond);
	c->out_tail = &c->out_head;
	c->task.fn = conn_task;
	c->linger.fn = conn_linger_expired;
	c->hs_timer.fn = conn_hs_expired;
	c->fd_retry.fn = conn_fd_retry_expired;
	c->hold_timer.fn = conn_hold_expired;
	c->live_timer.fn = conn_live_expired;
	if (t->describe(t, fd, true, c->remote, sizeof(c->remote)) < 0)
		snprintf(c->remote, sizeof(c->remote), "%s://", t->scheme);
	return 0;
}

/* --- work from other threads --------------------------------------------- */

static void conn_begin(struct conn *c)
{
	loop_user_add(c->loop);
	pthread_mutex_lock(&c->mu);
	conn_rd_kick_locked(c);
	pthread_mutex_unlock(&c->mu);
	conn_live_start(c);
}

void conn_start(struct conn *c)
{
	/* Before the caller may look at the socket. */
	conn_keepalive(c);
	if (loop_on_thread(c->loop))
		conn_begin(c);
	else
		conn_post(c, CONN_EV_START);
}

void conn_close(struct conn *c)
{
	/* Sending stops now, for senders waiting for room too; what is
	 * queued still goes out. */
	pthread_mutex_lock(&c->out_mu);
	if (!c->send_error)
		c->send_error = -PIER_ESHUTDOWN;
	pthread_cond_broadcast(&c->out_cond);
	pthread_mutex_unlock(&c->out_mu);
	conn_post(c, CONN_EV_CLOSE);
}

void conn_abort(struct conn *c)
{
	/* It ends now for every thread; the loop closes it. */
	pthread_mutex_lock(&c->mu);
	conn_fail_locked(c, -PIER_EABORTED);
	pthread_mutex_unlock(&c->mu);
}

/* The connection closes: what is queued goes out, and the loop reads until
 * the remote closes too, whoever waits or not. */
static void conn_closing(struct conn *c, bool released)
{
	pthread_mutex_lock(&c->mu);
	if (c->state < CONN_CLOSING)
		conn_set_state_locked(c, CONN_CLOSING);
	conn_rd_kick_locked(c);
	pthread_mutex_unlock(&c->mu);
	if (released && !c->released) {
		conn_read_pending(c);
		c->released = true;
		loop_timer_arm(c->loop, &c->linger,
			       clock_now_ns() + (int64_t)PIER_LINGER_MS * 1000000);
	}
}

/* The connection ended off the loop: found by a reading thread (c->error),
 * or by a send that broke the stream (send_error). */
static void conn_ended_elsewhere(struct conn *c)
{
	int err;

	pthread_mutex_lock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	err = c->send_error == -PIER_ESHUTDOWN ? 0 : c->send_error;
	pthread_mutex_unlock(&c->out_mu);
	if (c->error || err)
		conn_fail_locked(c, c->error ? c->error : err);
	pthread_mutex_unlock(&c->mu);
}

static void conn_task(struct loop_task *task, unsigned int ev)
{
	struct conn *c = pier_container_of(task, struct conn, task);

	if (ev & CONN_EV_START)
		conn_begin(c);
	if (ev & CONN_EV_FINISH)
		conn_ended_elsewhere(c);
	if (ev & (CONN_EV_CLOSE | CONN_EV_RELEASE))
		conn_closing(c, ev & CONN_EV_RELEASE);
	if (ev & CONN_EV_ANSWERED)
		conn_answers_sent(c);
	if (ev & CONN_EV_READ)
		conn_read_start(c);
	if (ev & CONN_EV_HOLD)
		conn_hold_arm(c);
	if (ev & (CONN_EV_WRITE | CONN_EV_CLOSE | CONN_EV_RELEASE))
		conn_write_start(c);
	conn_maybe_finish(c);
}

/* --- handles ------------------------------------------------------------- */

void conn_handle_ref_locked(struct conn *c)
{
	c->handles++;
}

void conn_handle_unref_locked(struct conn *c, bool *last)
{
	assert(c->handles > 0);
	if (--c->handles == 0)
		*last = true;
}

/* The application holds nothing of c any more: the loop closes it. */
void conn_release_last(struct conn *c)
{
	struct pier_loop *loop = c->loop;

	conn_post(c, CONN_EV_RELEASE);
	loop_unref(loop); /* for a loop of its own: waits until closed */
}

/* --- what the layers above ask ------------------------------------------- */

int conn_credentials(struct conn *c, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);
	int r = 0;

	if (!(c->t->caps & TRANSPORT_CREDENTIALS))
		return -ENOTSUP;
	pthread_mutex_lock(&c->out_mu); /* the fd is closed under it */
	if (c->link.fd < 0 || getsockopt(c->link.fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		r = -ENOTCONN;
	pthread_mutex_unlock(&c->out_mu);
	return r;
}

bool conn_hello_seen(const struct conn *c)
{
	return tls_hello_seen(c->link.tls);
}
