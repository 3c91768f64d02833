/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "conf.h"
#include "loop.h"
#include "private.h"

bool loop_on_thread(const struct pier_loop *l)
{
	return pthread_equal(pthread_self(), l->thread);
}

void loop_submit(struct pier_loop *l, struct loop_op *op)
{
	assert(!op->in_flight);
	op->in_flight = true;
	l->ops_in_flight++;
	l->be->submit(l, op);
}

void loop_cancel(struct pier_loop *l, struct loop_op *op)
{
	if (op->in_flight)
		l->be->cancel(l, op);
}

void loop_user_add(struct pier_loop *l)
{
	l->users++;
}

void loop_user_done(struct pier_loop *l)
{
	assert(l->users > 0);
	l->users--;
}

void loop_timer_arm(struct pier_loop *l, struct loop_timer *t, int64_t deadline_ns)
{
	struct loop_timer **p = &l->timers;

	loop_timer_disarm(l, t);
	t->deadline_ns = deadline_ns;
	while (*p && (*p)->deadline_ns <= deadline_ns)
		p = &(*p)->next;
	t->next = *p;
	*p = t;
	t->armed = true;
}

void loop_timer_disarm(struct pier_loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	for (struct loop_timer **p = &l->timers; *p; p = &(*p)->next) {
		if (*p == t) {
			*p = t->next;
			break;
		}
	}
	t->armed = false;
}

/* Runs expired timers; returns the wait until the next one, or -1. */
static int64_t run_timers(struct pier_loop *l)
{
	int64_t now = clock_now_ns();

	while (l->timers && l->timers->deadline_ns <= now) {
		struct loop_timer *t = l->timers;

		l->timers = t->next;
		t->armed = false;
		t->fn(t);
	}
	return l->timers ? l->timers->deadline_ns - now : -1;
}

/* --- tasks from other threads ------------------------------------------ */

void loop_post(struct pier_loop *l, struct loop_task *task, unsigned int events)
{
	bool first;

	pthread_mutex_lock(&l->task_lock);
	task->events |= events;
	if (task->posted) {
		pthread_mutex_unlock(&l->task_lock);
		return;
	}
	task->posted = true;
	task->next = NULL;
	*l->tasks_tail = task;
	l->tasks_tail = &task->next;
	pthread_mutex_unlock(&l->task_lock);

	/* One wake is enough until the loop has looked at the queue. */
	first = !atomic_exchange_explicit(&l->wake_pending, true, memory_order_acq_rel);
	if (first) {
		uint64_t one = 1;
		ssize_t r;

		do
			r = write(l->wake_fd, &one, sizeof(one));
		while (r < 0 && errno == EINTR);
		/* EAGAIN means the counter is already non-zero: awake anyway. */
	}
}

bool loop_task_posted(struct pier_loop *l, struct loop_task *task)
{
	bool posted;

	pthread_mutex_lock(&l->task_lock);
	posted = task->posted;
	pthread_mutex_unlock(&l->task_lock);
	return posted;
}

static void run_tasks(struct pier_loop *l)
{
	struct loop_task *list;

	pthread_mutex_lock(&l->task_lock);
	list = l->tasks;
	l->tasks = NULL;
	l->tasks_tail = &l->tasks;
	pthread_mutex_unlock(&l->task_lock);

	/* A task stays marked as posted until just before it runs, and takes
	 * its events at that moment: posting it again before then only adds
	 * to its events, and posting it once it runs queues it anew, with the
	 * new events, without touching this list. */
	while (list) {
		struct loop_task *t = list;
		unsigned int events;

		pthread_mutex_lock(&l->task_lock);
		list = t->next;
		t->posted = false;
		events = t->events;
		t->events = 0;
		pthread_mutex_unlock(&l->task_lock);
		t->fn(t, events);
	}
}

static void wake_done(struct loop_op *op, int res)
{
	struct pier_loop *l = pier_container_of(op, struct pier_loop, wake_op);

	/* Clear the flag before looking at the queue: a task posted from now
	 * on writes the eventfd again. */
	atomic_store_explicit(&l->wake_pending, false, memory_order_release);
	run_tasks(l);
	if (!l->stop_requested || res > 0)
		loop_submit(l, &l->wake_op);
}

static void stop_task(struct loop_task *task, unsigned int events)
{
	struct pier_loop *l = pier_container_of(task, struct pier_loop, stop_task);

	l->stop_requested = true;
}

/* --- the thread ---------------------------------------------------------- */

/* Sets up the backend PIER_BACKEND asks for ("uring" or "epoll"), or by
 * default io_uring, falling back to epoll where io_uring is refused:
 * seccomp profiles and kernel.io_uring_disabled say EPERM, kernels without
 * it ENOSYS, kernels without the features asked for EINVAL, and older ones
 * ENOMEM when the ring exceeds the locked-memory limit. */
static int backend_init(struct pier_loop *l)
{
	const char *want = getenv("PIER_BACKEND");
	int r;

	if (want && *want) {
		if (strcmp(want, "epoll") == 0)
			l->be = &loop_backend_epoll;
		else if (strcmp(want, "uring") == 0 || strcmp(want, "io_uring") == 0)
			l->be = &loop_backend_uring;
		else
			return -EINVAL;
		return l->be->init(l);
	}
	l->be = &loop_backend_uring;
	r = l->be->init(l);
	if (r == -EPERM || r == -ENOSYS || r == -EINVAL || r == -ENOMEM) {
		l->be = &loop_backend_epoll;
		r = l->be->init(l);
	}
	return r;
}

/* What ps -L, top -H and /proc/PID/task/TID/comm show for a loop thread
 * (15 characters at most). */
#define LOOP_THREAD_NAME "pier-loop"

/* Gives the calling thread its name, and the CPUs and scheduling of a
 * (NULL: those it inherited).  From the thread itself, before its first
 * I/O: pthread attributes cannot say SCHED_BATCH or SCHED_IDLE. */
static int thread_setup(const struct loop_attr *a)
{
	struct sched_param sp;
	int r;

	pthread_setname_np(pthread_self(), LOOP_THREAD_NAME);
	if (!a)
		return 0;
	if (a->cpus && (r = pthread_setaffinity_np(pthread_self(), a->cpus_size, a->cpus)) != 0)
		return -r;
	if (a->policy >= 0) {
		sp = (struct sched_param){ .sched_priority = a->priority };
		if ((r = pthread_setschedparam(pthread_self(), a->policy, &sp)) != 0)
			return -r;
	}
	return 0;
}

static void *loop_thread(void *arg)
{
	struct pier_loop *l = arg;
	int r = thread_setup(l->attr);

	if (r == 0)
		r = backend_init(l);

	pthread_mutex_lock(&l->start_lock);
	l->start_result = r;
	l->started = true;
	pthread_cond_signal(&l->start_cond);
	pthread_mutex_unlock(&l->start_lock);
	if (r < 0)
		return NULL;

	l->wake_op = (struct loop_op){
		.cb = wake_done,
		.kind = LOOP_OP_READ,
		.fd = l->wake_fd,
		.buf = &l->wake_buf,
		.len = sizeof(l->wake_buf),
	};
	loop_submit(l, &l->wake_op);

	for (;;) {
		int64_t timeout = run_timers(l);

		if (l->stop_requested && l->users == 0) {
			if (!l->wake_op.in_flight && l->ops_in_flight == 0)
				break;
			loop_cancel(l, &l->wake_op);
		}
		l->be->wait(l, timeout);
	}
	l->be->fini(l);
	return NULL;
}

int loop_new(struct pier_loop **out, const struct loop_attr *attr)
{
	struct pier_loop *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	atomic_init(&l->refs, 1);
	atomic_init(&l->wake_pending, false);
	l->tasks_tail = &l->tasks;
	l->stop_task.fn = stop_task;
	pthread_mutex_init(&l->task_lock, NULL);
	pthread_mutex_init(&l->start_lock, NULL);
	pthread_cond_init(&l->start_cond, NULL);
	l->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		r = -errno;
		goto fail;
	}
	l->attr = attr;
	r = -pthread_create(&l->thread, NULL, loop_thread, l);
	if (r < 0)
		goto fail;

	pthread_mutex_lock(&l->start_lock);
	while (!l->started)
		pthread_cond_wait(&l->start_cond, &l->start_lock);
	r = l->start_result;
	pthread_mutex_unlock(&l->start_lock);
	l->attr = NULL;
	if (r < 0) {
		pthread_join(l->thread, NULL);
		goto fail;
	}
	*out = l;
	return 0;

fail:
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	pthread_mutex_destroy(&l->task_lock);
	pthread_mutex_destroy(&l->start_lock);
	pthread_cond_destroy(&l->start_cond);
	free(l);
	return r;
}

struct pier_loop *loop_ref(struct pier_loop *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

void loop_unref(struct pier_loop *l)
{
	if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	assert(!loop_on_thread(l));
	loop_post(l, &l->stop_task, 0);
	pthread_join(l->thread, NULL);
	close(l->wake_fd);
	pthread_mutex_destroy(&l->task_lock);
	pthread_mutex_destroy(&l->start_lock);
	pthread_cond_destroy(&l->start_cond);
	free(l);
}

/* --- public interface ---------------------------------------------------- */

PIER_EXPORT int pier_loop_new(pier_loop **out)
{
	if (!out)
		return -EINVAL;
	return loop_new(out, NULL);
}

PIER_EXPORT int pier_loop_new_with_config(pier_loop **out, const pier_config *cfg)
{
	if (!out)
		return -EINVAL;
	return loop_new(out, cfg ? cfg->loop_attr : NULL);
}

PIER_EXPORT pier_loop *pier_loop_ref(pier_loop *loop)
{
	return loop ? loop_ref(loop) : NULL;
}

PIER_EXPORT pier_loop *pier_loop_unref(pier_loop *loop)
{
	if (loop)
		loop_unref(loop);
	return NULL;
}

PIER_EXPORT const char *pier_loop_backend(const pier_loop *loop)
{
	return loop ? loop->be->name : NULL;
}
