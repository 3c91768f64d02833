/* SPDX-License-Identifier: MIT */
/* The io_uring backend: each loop_op is one SQE whose user_data is the op. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>


#include <liburing.h>

#include "loop.h"
#include "private.h"

#define URING_ENTRIES 256

/* user_data of the cancel requests themselves: their completions are not
 * anybody's to handle. */
#define URING_IGNORE 0

static struct io_uring *ring_of(struct pier_loop *l)
{
	return l->be_data;
}

static int uring_init(struct pier_loop *l)
{
	/* The loop thread is the ring's only submitter and reaps its own
	 * completions: tell the kernel so, where it knows how to use it. */
	static const unsigned int flag_sets[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring *ring = calloc(1, sizeof(*ring));
	int r = -EINVAL;

	if (!ring)
		return -ENOMEM;
	for (size_t i = 0; i < PIER_ARRAY_SIZE(flag_sets); i++) {
		struct io_uring_params p = { .flags = flag_sets[i] };

		r = io_uring_queue_init_params(URING_ENTRIES, ring, &p);
		if (r != -EINVAL)
			break;
	}
	if (r < 0) {
		free(ring);
		return r;
	}
	l->be_data = ring;
	return 0;
}

static void uring_fini(struct pier_loop *l)
{
	io_uring_queue_exit(ring_of(l));
	free(l->be_data);
	l->be_data = NULL;
}

static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	while (!sqe) {
		/* The queue is full: hand it to the kernel and try again. */
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	return sqe;
}

static void uring_submit(struct pier_loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(ring_of(l));

	switch (op->kind) {
	case LOOP_OP_RECVMSG:
		io_uring_prep_recvmsg(sqe, op->fd, op->msg, op->flags);
		break;
	case LOOP_OP_SENDMSG:
		io_uring_prep_sendmsg(sqe, op->fd, op->msg, op->flags);
		break;
	case LOOP_OP_ACCEPT:
		io_uring_prep_accept(sqe, op->fd, op->addr, op->addrlen, SOCK_CLOEXEC);
		break;
	case LOOP_OP_READ:
		io_uring_prep_read(sqe, op->fd, op->buf, (unsigned int)op->len, 0);
		break;
	}
	io_uring_sqe_set_data(sqe, op);
}

static void uring_cancel(struct pier_loop *l, struct loop_op *op)
{
	struct io_uring_sqe *sqe = get_sqe(ring_of(l));

	io_uring_prep_cancel(sqe, op, 0);
	io_uring_sqe_set_data64(sqe, URING_IGNORE);
}

static void uring_wait(struct pier_loop *l, int64_t timeout_ns)
{
	struct io_uring *ring = ring_of(l);
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	int r;

	if (timeout_ns >= 0) {
		ts.tv_sec = timeout_ns / 1000000000;
		ts.tv_nsec = timeout_ns % 1000000000;
	}
	r = io_uring_submit_and_wait_timeout(ring, &cqe, 1, timeout_ns >= 0 ? &ts : NULL,
					     NULL);
	/* -ETIME (the timeout), -EINTR, and -EAGAIN/-EBUSY (completions to
	 * reap first) all come down to reaping what there is. */
	(void)r;

	/* One at a time: a callback may submit, but never reaps. */
	while (io_uring_peek_cqe(ring, &cqe) == 0) {
		void *op = io_uring_cqe_get_data(cqe);
		int res = cqe->res;

		io_uring_cqe_seen(ring, cqe);
		if (op)
			loop_complete(l, op, res);
	}
}

const struct loop_backend loop_backend_uring = {
	.name = "io_uring",
	.init = uring_init,
	.fini = uring_fini,
	.submit = uring_submit,
	.cancel = uring_cancel,
	.wait = uring_wait,
};
