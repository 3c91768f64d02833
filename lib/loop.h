/* SPDX-License-Identifier: MIT */
/*
 * The event loop: one thread, one backend (io_uring, or epoll where io_uring
 * is refused).  Everything else talks to the backend through loop_op, a
 * completion-based operation: the caller fills it, loop_submit() starts it,
 * and its callback runs on the loop thread with the result (a byte count, an
 * fd, or -errno).  Only the loop thread submits, cancels and runs callbacks.
 *
 * Other threads reach the loop by posting a loop_task; a task that is already
 * posted is not posted twice, and the eventfd wake is skipped while one is
 * pending.
 */
#ifndef PIER_LOOP_H
#define PIER_LOOP_H

#include <assert.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <pier.h>

struct loop_op;
typedef void (*loop_op_cb)(struct loop_op *op, int res);

enum loop_op_kind {
	LOOP_OP_RECVMSG, /* recvmsg(fd, msg, flags) */
	LOOP_OP_SENDMSG, /* sendmsg(fd, msg, flags) */
	LOOP_OP_ACCEPT,  /* accept4(fd, addr, addrlen, SOCK_CLOEXEC): the new socket
			  * blocks, as every connection's does (the library's
			  * own non-blocking calls say MSG_DONTWAIT) */
	LOOP_OP_READ,    /* read(fd, buf, len) */
};

struct loop_op {
	loop_op_cb cb;
	enum loop_op_kind kind;
	int fd;
	bool in_flight;
	unsigned int flags; /* MSG_* for recvmsg and sendmsg */
	struct msghdr *msg;
	void *buf;
	size_t len;
	struct sockaddr *addr;
	socklen_t *addrlen;
	/* Backend use. */
	struct loop_op *next_ready;
	int res;
	bool ready;
};

struct loop_task;
typedef void (*loop_task_fn)(struct loop_task *task, unsigned int events);

struct loop_task {
	loop_task_fn fn;
	struct loop_task *next;
	/* Under the loop's task lock: */
	bool posted;
	unsigned int events; /* what the posters asked for, for fn to take */
};

struct loop_backend {
	const char *name;
	/* Called on the loop thread; returns 0 or -errno. */
	int (*init)(struct pier_loop *l);
	void (*fini)(struct pier_loop *l);
	void (*submit)(struct pier_loop *l, struct loop_op *op);
	/* Asks for the op to end early; its callback still runs, with
	 * -ECANCELED or with the result it reached first. */
	void (*cancel)(struct pier_loop *l, struct loop_op *op);
	/* Starts what was submitted, waits for at least one completion or
	 * until timeout_ns (-1: forever) passes, and runs every completed
	 * op's callback. */
	void (*wait)(struct pier_loop *l, int64_t timeout_ns);
};

extern const struct loop_backend loop_backend_uring;
extern const struct loop_backend loop_backend_epoll;

/* Something on the loop that must happen at a point in time (a close that
 * lingers too long).  Timers are few; a sorted list is enough. */
struct loop_timer {
	void (*fn)(struct loop_timer *t);
	int64_t deadline_ns; /* CLOCK_MONOTONIC */
	struct loop_timer *next;
	bool armed;
};

struct pier_loop {
	atomic_int refs;
	pthread_t thread;
	const struct loop_backend *be;
	void *be_data;

	/* Tasks posted by other threads. */
	pthread_mutex_t task_lock;
	struct loop_task *tasks, **tasks_tail;
	atomic_bool wake_pending;
	int wake_fd;
	struct loop_op wake_op;
	uint64_t wake_buf;

	/* Loop thread only. */
	unsigned long ops_in_flight;
	unsigned long users; /* connections and listeners not yet finished */
	struct loop_timer *timers;
	bool stop_requested;
	struct loop_task stop_task;

	/* Start-up handshake with the creating thread, which lends the
	 * thread's attributes (or NULL) until then. */
	const struct loop_attr *attr;
	pthread_mutex_t start_lock;
	pthread_cond_t start_cond;
	int start_result;
	bool started;
};

/* How a loop's thread runs (pier_config_set_loop_affinity(),
 * pier_config_set_loop_scheduling()): what it does not say, the thread
 * inherits from the one creating it. */
struct loop_attr {
	cpu_set_t *cpus; /* CPU_ALLOC'd, or NULL */
	size_t cpus_size; /* CPU_ALLOC_SIZE() of it */
	int policy;      /* SCHED_*, or -1 */
	int priority;
};

/* attr borrowed (NULL: every default), during the call only.  What the
 * kernel refuses of it fails the call (-EPERM, -EINVAL). */
int loop_new(struct pier_loop **out, const struct loop_attr *attr);
struct pier_loop *loop_ref(struct pier_loop *l);
/* Dropping the last reference stops the thread once every user has
 * finished, and waits for it.  Never called on the loop thread. */
void loop_unref(struct pier_loop *l);

/* Adds events to the task's and has the loop thread call task->fn with them
 * soon: once, however often it is posted before it runs; again, with the
 * new events, if it is posted while it runs.  Once loop_post() returns, it
 * has no more use of task: the loop may free task's owner from then on. */
void loop_post(struct pier_loop *l, struct loop_task *task, unsigned int events);

/* Whether task is posted and has not run yet: its owner must not be freed
 * until it has. */
bool loop_task_posted(struct pier_loop *l, struct loop_task *task);

/* Loop thread only. */
void loop_submit(struct pier_loop *l, struct loop_op *op);
void loop_cancel(struct pier_loop *l, struct loop_op *op);
void loop_timer_arm(struct pier_loop *l, struct loop_timer *t, int64_t deadline_ns);
void loop_timer_disarm(struct pier_loop *l, struct loop_timer *t);
void loop_user_add(struct pier_loop *l);
void loop_user_done(struct pier_loop *l);
bool loop_on_thread(const struct pier_loop *l);

/* Called by backends when an op completes (inline: the backends are below
 * the loop, which picks one of them). */
static inline void loop_complete(struct pier_loop *l, struct loop_op *op, int res)
{
	assert(op->in_flight);
	op->in_flight = false;
	l->ops_in_flight--;
	op->cb(op, res);
}


#endif
