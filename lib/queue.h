/* SPDX-License-Identifier: MIT */
/*
 * Message queues: what waits for the application on a peer (its queue of
 * requests and stream messages) or on one request (its updates and
 * response), with the threads waiting on it and an optional pollable fd.
 * A thread that waits on a queue reads the socket itself while nobody else
 * does (see conn.h); everything here is under the connection's mu.
 */
#ifndef PIER_QUEUE_H
#define PIER_QUEUE_H

#include <pthread.h>
#include <stdbool.h>

struct conn;
struct pier_msg;

struct msgq {
	/* owned; each message's pprev points to head or to the next of the
	 * one before */
	struct pier_msg *head, **tail;
	/* Made when a thread first sleeps on the queue: most never do (a
	 * thread waiting alone reads the socket itself). */
	pthread_cond_t cond;
	bool cond_made;
	int evfd;      /* owned; -1 until the application asks for a pollable fd */
	/* Told instead, under mu, each time the queue becomes ready (a
	 * receive would not block): set by msgq_notify_locked(). */
	void (*notify)(void *data);
	void *notify_data;
	bool readable; /* evfd was signalled and not cleared, or notify told */
	bool finished; /* nothing more will come: its request is done */
};

void msgq_init(struct msgq *q);
/* Frees the queue's resources; the messages must be gone. */
void msgq_fini(struct msgq *q);

/* Appends m (taken), counting it against the connection's receive limits,
 * and wakes whoever waits. */
void msgq_push_locked(struct conn *c, struct msgq *q, struct pier_msg *m);
/* The same without telling anyone: the caller calls msgq_changed_locked()
 * once, after the last of a batch. */
void msgq_append_locked(struct conn *c, struct msgq *q, struct pier_msg *m);
/* Takes m, which is on q, off it wherever it is, and stops counting it
 * against the receive limits; like msgq_append_locked(), it tells nobody
 * (the caller calls msgq_changed_locked() once done with the queue). */
void msgq_remove_locked(struct conn *c, struct msgq *q, struct pier_msg *m);
/* Takes the first message, or NULL. */
struct pier_msg *msgq_pop_locked(struct conn *c, struct msgq *q);
/* Waits until the queue has a message or has nothing more to give (it
 * finished, or the connection ended).  interruptible: something besides
 * incoming data may end the wait (msgq_changed_locked() from another
 * thread).  Returns 0 when a message is there, or why there is none:
 * -PIER_EDONE, the connection's error, -EAGAIN (timeout_ms 0), -ETIMEDOUT. */
int msgq_wait_locked(struct conn *c, struct msgq *q, bool interruptible, int timeout_ms);
/* Whether a receive would not block: a message is there, or nothing more
 * will come. */
bool msgq_ready_locked(const struct conn *c, const struct msgq *q);
/* Wakes waiters and updates the pollable fd after a change of the queue
 * or of its connection. */
void msgq_changed_locked(struct conn *c, struct msgq *q);
/* The pollable fd (made on the first call; borrowed: closed with the
 * queue), or -errno. */
int msgq_fd_locked(struct conn *c, struct msgq *q);
/* Instead of a pollable fd: fn(data) is called, under mu, from whichever
 * thread makes the queue ready (at once if it is), each time it becomes
 * so after a receive took its last message; NULL stops it.  The loop
 * reads from now on. */
void msgq_notify_locked(struct conn *c, struct msgq *q, void (*fn)(void *data), void *data);

#endif
