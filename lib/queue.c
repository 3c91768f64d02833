/* SPDX-License-Identifier: MIT */
/* Message queues and waiting on them. */
#include "config.h"

#include <errno.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "conn.h"
#include "msg.h"
#include "queue.h"

/* What a queued message costs against the receive limit besides its body,
 * so that a flood of empty messages is bounded too. */
#define MSG_OVERHEAD sizeof(struct pier_msg)

void msgq_init(struct msgq *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->evfd = -1;
	q->notify = NULL;
	q->notify_data = NULL;
	q->readable = false;
	q->finished = false;
	q->cond_made = false;
}

void msgq_fini(struct msgq *q)
{
	if (q->cond_made)
		pthread_cond_destroy(&q->cond);
	if (q->evfd >= 0)
		close(q->evfd);
}

bool msgq_ready_locked(const struct conn *c, const struct msgq *q)
{
	return q->head || c->error || q->finished;
}

/* Keeps the pollable fd readable exactly while a receive would not block,
 * or tells the one who asked to be told when it becomes so. */
static void msgq_sync_fd_locked(struct msgq *q, bool ready)
{
	if (ready == q->readable)
		return;
	if (q->evfd >= 0) {
		uint64_t v = 1;
		ssize_t n;

		n = ready ? write(q->evfd, &v, sizeof(v)) : read(q->evfd, &v, sizeof(v));
		(void)n;
	} else if (!q->notify) {
		return;
	} else if (ready) {
		q->notify(q->notify_data);
	}
	q->readable = ready;
}

void msgq_changed_locked(struct conn *c, struct msgq *q)
{
	bool ready = msgq_ready_locked(c, q);

	if (ready) {
		if (q->cond_made)
			pthread_cond_broadcast(&q->cond);
		conn_rd_wake_locked(c, q);
	}
	msgq_sync_fd_locked(q, ready);
}

int msgq_fd_locked(struct conn *c, struct msgq *q)
{
	if (q->evfd < 0) {
		q->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->evfd < 0)
			return -errno;
		q->readable = false;
		msgq_changed_locked(c, q);
		/* Nobody may be waiting when it becomes readable: the loop
		 * reads from now on. */
		conn_rd_background_locked(c);
	}
	return q->evfd;
}

void msgq_notify_locked(struct conn *c, struct msgq *q, void (*fn)(void *data), void *data)
{
	q->notify = fn;
	q->notify_data = data;
	q->readable = false;
	if (!fn)
		return;
	msgq_changed_locked(c, q);
	/* Nobody may be waiting when it becomes ready: the loop reads from
	 * now on. */
	conn_rd_background_locked(c);
}

void msgq_append_locked(struct conn *c, struct msgq *q, struct pier_msg *m)
{
	m->next = NULL;
	m->pprev = q->tail;
	*q->tail = m;
	q->tail = &m->next;
	conn_queued_locked(c, m->len + MSG_OVERHEAD, m->nfds);
}

void msgq_remove_locked(struct conn *c, struct msgq *q, struct pier_msg *m)
{
	*m->pprev = m->next;
	if (m->next)
		m->next->pprev = m->pprev;
	else
		q->tail = m->pprev;
	m->next = NULL;
	m->pprev = NULL;
	conn_consumed_locked(c, m->len + MSG_OVERHEAD, m->nfds);
}

void msgq_push_locked(struct conn *c, struct msgq *q, struct pier_msg *m)
{
	msgq_append_locked(c, q, m);
	msgq_changed_locked(c, q);
}

struct pier_msg *msgq_pop_locked(struct conn *c, struct msgq *q)
{
	struct pier_msg *m = q->head;

	if (!m)
		return NULL;
	msgq_remove_locked(c, q, m);
	/* Taking a message wakes nobody: only the fd may have to follow. */
	msgq_sync_fd_locked(q, msgq_ready_locked(c, q));
	return m;
}

/* A thread waiting for a message reads the socket itself while nobody else
 * does; otherwise it waits for the reader to hand it a message, or the role.
 * On the way out it hands the role on to another waiting thread (or to the
 * loop), if anybody needs it. */
int msgq_wait_locked(struct conn *c, struct msgq *q, bool interruptible, int timeout_ms)
{
	struct rd_waiter w = { .cond = &q->cond };
	struct timespec deadline;
	bool listed = false, expired = false;
	int ret;

	if (timeout_ms > 0)
		deadline = deadline_after(timeout_ms);
	for (;;) {
		int e;

		if (q->head) {
			ret = 0;
			break;
		}
		if (q->finished) {
			ret = -PIER_EDONE;
			break;
		}
		if (c->error) {
			ret = c->error;
			break;
		}
		if (expired) {
			ret = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
			break;
		}
		if (timeout_ms != 0 && !listed) {
			/* Nothing this thread waits for may sit behind what
			 * it sent itself. */
			conn_send_flush(c, true);
		}
		if (conn_may_read_locked(c)) {
			if (listed)
				conn_rd_waiter_del_locked(c, &w);
			listed = false;
			e = conn_read_locked(c, q, interruptible, timeout_ms, &deadline);
			if (e == -EAGAIN || e == -ETIMEDOUT)
				expired = true;
			else if (e < 0 && !c->error) {
				ret = e; /* could not wait at all */
				break;
			}
			continue;
		}
		if (timeout_ms == 0) {
			expired = true;
			continue;
		}
		if (!q->cond_made) {
			cond_init_monotonic(&q->cond);
			q->cond_made = true;
		}
		if (!listed)
			conn_rd_waiter_add_locked(c, &w);
		listed = true;
		e = timeout_ms < 0 ? pthread_cond_wait(&q->cond, &c->mu)
				   : pthread_cond_timedwait(&q->cond, &c->mu, &deadline);
		if (e == ETIMEDOUT)
			expired = true;
	}
	if (listed)
		conn_rd_waiter_del_locked(c, &w);
	conn_rd_kick_locked(c);
	return ret;
}
