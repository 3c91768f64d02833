/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend, for where io_uring is refused: the same completion
 * interface over readiness.  A submitted op is tried at once (without
 * blocking) when the loop next waits; if it would block, its fd is watched
 * for the readiness it needs and the op is tried again when it comes.
 * Callbacks run from wait(), as with io_uring, never from submit or cancel.
 *
 * Each fd has at most one op waiting to read (recvmsg, accept, read) and one
 * waiting to write (sendmsg); its epoll registration asks for exactly those.
 * An fd leaves the epoll set as soon as no op waits on it, so the owner may
 * close it once its ops have completed.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "private.h"

#define EPOLL_BATCH 64

struct ep_fd {
	struct loop_op *in, *out;
	uint32_t events; /* what epoll watches for (0: not in the set) */
};

struct ep {
	int epfd;
	struct ep_fd **fds; /* by fd number, made on first use */
	size_t nfds;
	/* Ops to try (submitted, or their fd got ready) and ops done
	 * (cancelled), in order: both run from wait(). */
	struct loop_op *try_head, **try_tail;
	struct loop_op *done_head, **done_tail;
};

static struct ep *ep_of(struct pier_loop *l)
{
	return l->be_data;
}

static int ep_init(struct pier_loop *l)
{
	struct ep *ep = calloc(1, sizeof(*ep));

	if (!ep)
		return -ENOMEM;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0) {
		int r = -errno;

		free(ep);
		return r;
	}
	ep->try_tail = &ep->try_head;
	ep->done_tail = &ep->done_head;
	l->be_data = ep;
	return 0;
}

static void ep_fini(struct pier_loop *l)
{
	struct ep *ep = ep_of(l);

	for (size_t i = 0; i < ep->nfds; i++)
		free(ep->fds[i]);
	free(ep->fds);
	close(ep->epfd);
	free(ep);
	l->be_data = NULL;
}

static bool op_reads(const struct loop_op *op)
{
	return op->kind != LOOP_OP_SENDMSG;
}

/* The record of fd, made (and the table grown) on first use; NULL when out
 * of memory. */
static struct ep_fd *fd_rec(struct ep *ep, int fd)
{
	if ((size_t)fd >= ep->nfds) {
		size_t n = ep->nfds ? ep->nfds : 64;
		struct ep_fd **fds;

		while (n <= (size_t)fd)
			n *= 2;
		fds = realloc(ep->fds, n * sizeof(*fds));
		if (!fds)
			return NULL;
		memset(fds + ep->nfds, 0, (n - ep->nfds) * sizeof(*fds));
		ep->fds = fds;
		ep->nfds = n;
	}
	if (!ep->fds[fd])
		ep->fds[fd] = calloc(1, sizeof(struct ep_fd));
	return ep->fds[fd];
}

/* Makes epoll watch fd for what its waiting ops need; 0 or -errno. */
static int fd_update(struct ep *ep, int fd, struct ep_fd *rec)
{
	uint32_t want = (rec->in ? EPOLLIN : 0) | (rec->out ? EPOLLOUT : 0);
	struct epoll_event ev = { .events = want, .data.fd = fd };
	int op, r;

	if (want == rec->events)
		return 0;
	op = !rec->events ? EPOLL_CTL_ADD : !want ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
	r = epoll_ctl(ep->epfd, op, fd, &ev);
	if (r < 0 && op != EPOLL_CTL_DEL)
		return -errno;
	rec->events = want;
	return 0;
}

static void push(struct loop_op ***tail, struct loop_op *op)
{
	op->next_ready = NULL;
	**tail = op;
	*tail = &op->next_ready;
}

static void ep_submit(struct pier_loop *l, struct loop_op *op)
{
	push(&ep_of(l)->try_tail, op);
}

/* Takes op out of whatever list or fd record holds it. */
static void unlink_op(struct ep *ep, struct loop_op *op)
{
	struct loop_op ***tails[] = { &ep->try_tail, &ep->done_tail };
	struct loop_op **heads[] = { &ep->try_head, &ep->done_head };

	for (int i = 0; i < 2; i++) {
		for (struct loop_op **p = heads[i]; *p; p = &(*p)->next_ready) {
			if (*p == op) {
				*p = op->next_ready;
				if (*tails[i] == &op->next_ready)
					*tails[i] = p;
				return;
			}
		}
	}
	if ((size_t)op->fd < ep->nfds && ep->fds[op->fd]) {
		struct ep_fd *rec = ep->fds[op->fd];

		if (rec->in == op)
			rec->in = NULL;
		if (rec->out == op)
			rec->out = NULL;
		fd_update(ep, op->fd, rec);
	}
}

static void ep_cancel(struct pier_loop *l, struct loop_op *op)
{
	struct ep *ep = ep_of(l);

	unlink_op(ep, op);
	op->res = -ECANCELED;
	push(&ep->done_tail, op);
}

/* One non-blocking attempt: the result, or -EAGAIN. */
static int attempt(struct loop_op *op)
{
	ssize_t n;

	switch (op->kind) {
	case LOOP_OP_RECVMSG:
		n = recvmsg(op->fd, op->msg, (int)op->flags | MSG_DONTWAIT);
		break;
	case LOOP_OP_SENDMSG:
		n = sendmsg(op->fd, op->msg, (int)op->flags | MSG_DONTWAIT);
		break;
	case LOOP_OP_ACCEPT:
		/* Only once the fd is ready: the socket may block. */
		if (!op->ready)
			return -EAGAIN;
		n = accept4(op->fd, op->addr, op->addrlen, SOCK_CLOEXEC);
		break;
	case LOOP_OP_READ:
		if (!op->ready)
			return -EAGAIN;
		n = read(op->fd, op->buf, op->len);
		break;
	default:
		return -EINVAL;
	}
	return n < 0 ? -errno : (int)n;
}

/* Tries op; completes it (and says so), or leaves it waiting on its fd. */
static bool try_op(struct pier_loop *l, struct loop_op *op)
{
	struct ep *ep = ep_of(l);
	struct ep_fd *rec;
	int res = attempt(op);

	op->ready = false;
	if (res != -EAGAIN && res != -EINTR) {
		loop_complete(l, op, res);
		return true;
	}
	rec = fd_rec(ep, op->fd);
	if (!rec) {
		loop_complete(l, op, -ENOMEM);
		return true;
	}
	if (op_reads(op))
		rec->in = op;
	else
		rec->out = op;
	res = fd_update(ep, op->fd, rec);
	if (res < 0) {
		/* Not watchable (a regular file, say): fails, like any op
		 * that cannot be started. */
		if (op_reads(op))
			rec->in = NULL;
		else
			rec->out = NULL;
		loop_complete(l, op, res);
		return true;
	}
	return false;
}

/* Runs what is done and tries what may go on, until neither is left (a
 * callback may submit or cancel more).  Returns whether any op ran. */
static bool run_ready(struct pier_loop *l)
{
	struct ep *ep = ep_of(l);
	bool ran = false;

	while (ep->done_head || ep->try_head) {
		struct loop_op *op;

		if ((op = ep->done_head) != NULL) {
			ep->done_head = op->next_ready;
			if (!ep->done_head)
				ep->done_tail = &ep->done_head;
			loop_complete(l, op, op->res);
			ran = true;
			continue;
		}
		op = ep->try_head;
		ep->try_head = op->next_ready;
		if (!ep->try_head)
			ep->try_tail = &ep->try_head;
		ran |= try_op(l, op);
	}
	return ran;
}

/* Waits for events until timeout_ns (-1: none).  Timers of microseconds
 * (coalescing's) need epoll_pwait2(); where the kernel lacks it (before
 * 5.11), a wait rounds up to the millisecond. */
static int ep_epoll_wait(struct ep *ep, struct epoll_event *evs, int64_t timeout_ns)
{
#ifdef HAVE_EPOLL_PWAIT2
	static atomic_bool no_pwait2;

	if (!atomic_load_explicit(&no_pwait2, memory_order_relaxed)) {
		struct timespec ts = { timeout_ns / 1000000000, timeout_ns % 1000000000 };
		int n = epoll_pwait2(ep->epfd, evs, EPOLL_BATCH, timeout_ns >= 0 ? &ts : NULL, NULL);

		if (n >= 0 || errno != ENOSYS)
			return n;
		atomic_store_explicit(&no_pwait2, true, memory_order_relaxed);
	}
#endif
	return epoll_wait(ep->epfd, evs, EPOLL_BATCH,
			  timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000));
}

static void ep_wait(struct pier_loop *l, int64_t timeout_ns)
{
	struct ep *ep = ep_of(l);
	struct epoll_event evs[EPOLL_BATCH];
	int n;

	/* Callbacks that ran may have armed a timer or asked the loop to
	 * stop: then only look, and let the loop look again too. */
	if (run_ready(l))
		timeout_ns = 0;
	n = ep_epoll_wait(ep, evs, timeout_ns);
	for (int i = 0; i < n; i++) {
		int fd = evs[i].data.fd;
		struct ep_fd *rec = (size_t)fd < ep->nfds ? ep->fds[fd] : NULL;
		/* Errors and hang-ups wake both: the attempt reports them. */
		uint32_t e = evs[i].events;

		if (!rec)
			continue;
		if (rec->in && (e & (EPOLLIN | EPOLLERR | EPOLLHUP))) {
			struct loop_op *op = rec->in;

			rec->in = NULL;
			op->ready = true;
			push(&ep->try_tail, op);
		}
		if (rec->out && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
			struct loop_op *op = rec->out;

			rec->out = NULL;
			op->ready = true;
			push(&ep->try_tail, op);
		}
		fd_update(ep, fd, rec);
	}
	run_ready(l);
}

const struct loop_backend loop_backend_epoll = {
	.name = "epoll",
	.init = ep_init,
	.fini = ep_fini,
	.submit = ep_submit,
	.cancel = ep_cancel,
	.wait = ep_wait,
};
