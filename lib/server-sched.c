/* SPDX-License-Identifier: MIT */
/*
 * Servers: which worker takes which peer's messages, and when.
 *
 * The run queue.  A peer whose receive queue becomes ready (the loop read
 * a message for it, or it ended) is told so by its queue (sched_ready(),
 * the queue's notify function, on the thread that made it ready) and goes
 * to the tail of s->runq, once: a peer is idle, queued, or has a worker
 * (its turn).  A worker takes the peer at the head, handles its messages
 * one after another, up to TURN_BUDGET (server.c, on_peer()), and puts it
 * back at the tail if it has more.  So a busy peer's messages share one
 * hand-over and the writes of their answers, busy peers take turns, and
 * the work that waits is bounded by the peers' own receive queues: the
 * run queue holds each peer at most once.  Workers wait in the server's
 * epoll set (listeners, watches, the stop), in which runq_wake, an
 * eventfd counting as a semaphore, wakes one sleeping worker for each
 * peer queued while workers sleep: a busy server makes no system call to
 * hand a peer over.
 *
 * Lending a turn.  A request's handler may take long, and its peer's next
 * requests must not wait for it: a worker looking for work (before it
 * sleeps, and on the lend timer while workers sleep) that finds a handler
 * holding its peer's turn for LEND_AFTER_NS takes the turn from it and
 * queues the peer again; the holder leaves once its handler returned.  A
 * stream handler's turn is never taken: a peer's stream messages are
 * handled one at a time, in order.  Handlers that answer at once, the
 * usual case, cost two atomic operations each: the holder publishes what
 * it does in sp->phase (the turn's number and the request's, the low bit
 * set while a request's handler runs); taking the turn is a
 * compare-and-swap of a phase seen twice LEND_AFTER_NS apart to
 * PHASE_LENT, and the holder's own compare-and-swap after the handler
 * finds out.  Nobody reads the clock per message.
 *
 * Locks: s->mu (turns, busy) before rq_mu (the run queue), and a peer's
 * own mu (which sched_ready() is called under) before rq_mu.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "clock.h"
#include "server-int.h"

/* How long a request's handler may hold its peer's turn before the peer's
 * next messages go to another worker (after between one and two of it):
 * long against a handler that answers at once (a few microseconds), short
 * against what a client waiting behind a long request would notice. */
#define LEND_AFTER_NS 500000
#define PHASE_RUNNING 1u
#define PHASE_LENT UINT64_MAX
/* A turn's requests are numbered in the low bits of its phase. */
#define PHASE_TURN_SHIFT 24

/* --- the run queue ---------------------------------------------------------- */

/* Under rq_mu. */
static void runq_push_locked(struct pier_server *s, struct srv_peer *sp)
{
	sp->sched = RUN_QUEUED;
	sp->more = false;
	sp->rq_next = NULL;
	*s->runq_tail = sp;
	s->runq_tail = &sp->rq_next;
}

/* Under rq_mu: whether a sleeping worker is to be woken for what is
 * queued (the caller writes runq_wake once it let go of the lock). */
static bool wake_needed_locked(struct pier_server *s)
{
	if (!s->runq || atomic_load(&s->sleeping) <= s->signaled)
		return false;
	s->signaled++;
	return true;
}

static void wake_one(struct pier_server *s)
{
	uint64_t one = 1;
	ssize_t n = write(s->runq_wake.fd, &one, sizeof(one));

	(void)n;
}

void sched_ready(void *arg)
{
	struct srv_peer *sp = arg;
	struct pier_server *s = sp->s;
	bool wake = false;

	pthread_mutex_lock(&s->rq_mu);
	if (sp->sched == RUN_IDLE) {
		runq_push_locked(s, sp);
		wake = wake_needed_locked(s);
	} else if (sp->sched == RUN_TURN) {
		sp->more = true; /* its holder queues it again */
	}
	pthread_mutex_unlock(&s->rq_mu);
	if (wake)
		wake_one(s);
}

/* The lend timer fires in ns from now, unless it is set already (its
 * worker looks again then, and sets it anew for what it did not take). */
static void lend_timer_set(struct pier_server *s, int64_t ns)
{
	struct itimerspec its = { .it_value = { .tv_sec = ns / 1000000000,
						.tv_nsec = ns % 1000000000 } };

	if (atomic_exchange(&s->lend_timer_armed, true))
		return;
	timerfd_settime(s->lend_timer.fd, 0, &its, NULL);
}

/* Under s->mu: sp's turn begins; it is on s->turns while it lasts. */
static void turn_begin_locked(struct pier_server *s, struct turn *t, struct srv_peer *sp)
{
	sp->busy++;
	t->sp = sp;
	t->phase = ++sp->turn << PHASE_TURN_SHIFT;
	atomic_store_explicit(&sp->phase, t->phase, memory_order_relaxed);
	sp->seen_phase = 0;
	/* Whoever ended the last turn took it off the list: its holder,
	 * or the worker that took it. */
	assert(!sp->listed);
	sp->listed = true;
	sp->turn_prev = NULL;
	sp->turn_next = s->turns;
	if (s->turns)
		s->turns->turn_prev = sp;
	s->turns = sp;
	/* A worker that counted itself sleeping before the turn was listed
	 * may not have seen it: the timer wakes one to look. */
	if (atomic_load(&s->sleeping))
		lend_timer_set(s, LEND_AFTER_NS);
}

/* Under s->mu. */
static void unlist_locked(struct pier_server *s, struct srv_peer *sp)
{
	if (sp->turn_prev)
		sp->turn_prev->turn_next = sp->turn_next;
	else
		s->turns = sp->turn_next;
	if (sp->turn_next)
		sp->turn_next->turn_prev = sp->turn_prev;
	sp->turn_prev = sp->turn_next = NULL;
	sp->listed = false;
}

struct srv_peer *sched_next(struct pier_server *s, struct turn *t)
{
	struct srv_peer *sp;
	bool wake = false;

	pthread_mutex_lock(&s->rq_mu);
	sp = s->runq;
	if (sp) {
		s->runq = sp->rq_next;
		if (!s->runq)
			s->runq_tail = &s->runq;
		sp->sched = RUN_TURN;
		sp->more = false;
		/* More peers wait: another worker gets up for them. */
		wake = wake_needed_locked(s);
	}
	pthread_mutex_unlock(&s->rq_mu);
	if (wake)
		wake_one(s);
	if (!sp)
		return NULL;
	/* Queued, it had not ended: nothing frees it before this. */
	pthread_mutex_lock(&s->mu);
	turn_begin_locked(s, t, sp);
	pthread_mutex_unlock(&s->mu);
	return sp;
}

void turn_lend(struct turn *t)
{
	t->phase = (t->phase | PHASE_RUNNING) + 2;
	atomic_store_explicit(&t->sp->phase, t->phase, memory_order_release);
}

bool turn_back(struct turn *t)
{
	uint64_t running = t->phase;

	t->phase &= ~(uint64_t)PHASE_RUNNING;
	return atomic_compare_exchange_strong_explicit(&t->sp->phase, &running, t->phase,
						       memory_order_acq_rel, memory_order_acquire);
}

void turn_end_locked(struct pier_server *s, struct turn *t, int r)
{
	struct srv_peer *sp = t->sp;

	unlist_locked(s, sp);
	pthread_mutex_lock(&s->rq_mu);
	if (r < 0 && r != -EAGAIN)
		sp->sched = RUN_GONE;
	else if (r == 0 || sp->more)
		runq_push_locked(s, sp); /* to the tail: the others' turn */
	else
		sp->sched = RUN_IDLE;
	pthread_mutex_unlock(&s->rq_mu);
}

/* --- lending turns ---------------------------------------------------------- */

/* Under s->mu: takes the turns whose handler ran LEND_AFTER_NS since a
 * worker first saw it, and sets the lend timer for the next look while
 * turns are left: a handler that starts later in one of them is seen
 * then. */
static void steal_turns_locked(struct pier_server *s)
{
	int64_t now = 0, next = 0;
	struct srv_peer *sp, *n;

	for (sp = s->turns; sp; sp = n) {
		uint64_t ph = atomic_load_explicit(&sp->phase, memory_order_acquire);
		int64_t due = LEND_AFTER_NS;

		n = sp->turn_next;
		if (ph & PHASE_RUNNING) {
			if (!now)
				now = clock_now_ns();
			if (ph != sp->seen_phase) {
				/* A handler that started since the last look. */
				sp->seen_phase = ph;
				sp->seen_ns = now;
			}
			due = sp->seen_ns + LEND_AFTER_NS - now;
		}
		if (due > 0) {
			next = !next || due < next ? due : next;
			continue;
		}
		if (!atomic_compare_exchange_strong(&sp->phase, &ph, PHASE_LENT))
			continue; /* its handler just returned */
		/* The holder leaves once its handler returned; the peer's next
		 * message is for whichever worker takes it from the queue. */
		unlist_locked(s, sp);
		pthread_mutex_lock(&s->rq_mu);
		runq_push_locked(s, sp);
		pthread_mutex_unlock(&s->rq_mu);
	}
	if (next)
		lend_timer_set(s, next);
}

bool sched_sleep(struct pier_server *s)
{
	bool queued;

	/* Counted first: a turn listed after the look below sees it. */
	atomic_fetch_add(&s->sleeping, 1);
	pthread_mutex_lock(&s->mu);
	if (s->turns)
		steal_turns_locked(s);
	pthread_mutex_unlock(&s->mu);
	/* A peer queued after this look sees the count, and wakes it. */
	pthread_mutex_lock(&s->rq_mu);
	queued = s->runq != NULL;
	pthread_mutex_unlock(&s->rq_mu);
	if (queued)
		atomic_fetch_sub(&s->sleeping, 1);
	return !queued;
}

void sched_woke(struct pier_server *s)
{
	atomic_fetch_sub(&s->sleeping, 1);
}

void on_runq_wake(struct pier_server *s)
{
	uint64_t v;

	/* Another worker may have read the last wake already. */
	if (read(s->runq_wake.fd, &v, sizeof(v)) != (ssize_t)sizeof(v))
		return;
	pthread_mutex_lock(&s->rq_mu);
	s->signaled--;
	pthread_mutex_unlock(&s->rq_mu);
}

void on_lend_timer(struct pier_server *s)
{
	uint64_t v;
	ssize_t n = read(s->lend_timer.fd, &v, sizeof(v));

	(void)n;
	atomic_store(&s->lend_timer_armed, false);
	arm(s, &s->lend_timer, EPOLL_CTL_MOD);
	pthread_mutex_lock(&s->mu);
	steal_turns_locked(s);
	pthread_mutex_unlock(&s->mu);
}
