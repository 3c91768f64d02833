/* SPDX-License-Identifier: MIT */
/* Stream framing: each message is a length prefix, a header and its body,
 * back to back on a socket that keeps no boundaries (tcp://, unix://). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "link.h"
#include "msg.h"
#include "private.h"

#define STREAM_RBUF_SIZE (16u << 10)
/* What is left of a body is read straight into its message when it is at
 * least this large: a read per body saves its copy.  Smaller bodies (4 KiB
 * messages back to back, say) come many to a read, and are copied. */
#define DIRECT_READ_MIN STREAM_RBUF_SIZE

/* The parser's storage for bodies: the message the body will travel in. */
static void *body_alloc(void *ctx, const struct pier_header *h, size_t len)
{
	struct pier_msg *m = msg_new(len, 0);

	if (!m)
		return NULL;
	m->hdr = *h;
	return m->body;
}

static void body_free(void *ctx, void *body)
{
	msg_free(msg_of_body(body));
}

int link_stream_init(struct link *l)
{
	l->rbuf_size = STREAM_RBUF_SIZE;
	l->rbuf = malloc(l->rbuf_size);
	if (!l->rbuf)
		return -ENOMEM;
	l->body_alloc = (struct wire_body_alloc){ body_alloc, body_free, l };
	wire_parser_init(&l->parser, l->lim.order, l->lim.max_body_read, &l->body_alloc);
	return 0;
}

void link_stream_fini(struct link *l)
{
	wire_parser_release(&l->parser);
}

void link_stream_window(struct link *l)
{
	void *window;
	size_t want = wire_parser_body_window(&l->parser, &window);

	if (want >= DIRECT_READ_MIN)
		l->riov = (struct iovec){ window, want };
	else
		l->riov = (struct iovec){ l->rbuf, l->rbuf_size };
}

int link_stream_frames(struct link *l, size_t len)
{
	struct pier_msg *list = NULL, **tail = &list;
	struct wire_frame f;
	size_t pos = 0;
	int r = 0;

	if (l->riov.iov_base != l->rbuf) {
		/* Straight into a body. */
		if (wire_parser_body_commit(&l->parser, len, &f) == 1)
			return l->ops->deliver(l, msg_of_body(f.body)) ? 0 : 1;
		return 0;
	}
	/* Every frame of this read goes up at once, in order; those before
	 * an error too. */
	while (pos < len) {
		size_t used;

		r = wire_parser_feed(&l->parser, l->rbuf + pos, len - pos, &used, &f);
		if (r < 0)
			break;
		pos += used;
		if (r == 1) {
			struct pier_msg *m = msg_of_body(f.body);

			m->next = NULL;
			*tail = m;
			tail = &m->next;
		}
	}
	if (list && !l->ops->deliver(l, list) && r >= 0)
		return 1;
	return r < 0 ? r : 0;
}

static int stream_rd_prepare(struct link *l)
{
	l->rmsg = (struct msghdr){ .msg_iov = &l->riov, .msg_iovlen = 1 };
	link_stream_window(l);
	return 0;
}

static int stream_rd_done(struct link *l, ssize_t res)
{
	int r;

	if (res < 0)
		return res == -EAGAIN ? 0 : (int)res;
	if (res == 0) {
		r = wire_parser_eof(&l->parser);
		return r < 0 ? r : -PIER_ECLOSED;
	}
	r = link_stream_frames(l, (size_t)res);
	return r < 0 ? r : 0;
}

size_t link_stream_head_encode(const struct link *l, unsigned char *head,
			       const struct pier_header *h, size_t len)
{
	wire_stream_prefix_encode(head, h, len, l->lim.order);
	return WIRE_STREAM_OVERHEAD;
}

/* Many frames per write: as many as the iovec array holds. */
static int stream_wr_prepare(struct link *l, struct out_frame *head, bool may_take,
			     struct link_write *w)
{
	size_t n;

	*w = (struct link_write){ 0 };
	if (!may_take)
		return 0;
	n = link_frames_iov(head, l->wiov, PIER_ARRAY_SIZE(l->wiov));
	l->wmsg = (struct msghdr){ .msg_iov = l->wiov, .msg_iovlen = n };
	w->frames = (unsigned int)n;
	w->submit = n > 0;
	return 0;
}

/* Many frames per sendmsg, the socket taking what it has room for. */
static ssize_t stream_wr_now(struct link *l, const struct out_frame *head)
{
	struct iovec iov[PIER_ARRAY_SIZE(l->wiov)];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = link_frames_iov(head, iov, PIER_ARRAY_SIZE(iov)) };
	ssize_t n;

	do
		n = sendmsg(l->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

const struct framing framing_stream = {
	.name = "stream",
	.packets = false,
	.default_max_body = 1u << 20,
	.init = link_stream_init,
	.fini = link_stream_fini,
	.rd_prepare = stream_rd_prepare,
	.rd_done = stream_rd_done,
	.head_encode = link_stream_head_encode,
	.wr_prepare = stream_wr_prepare,
	.wr_now = stream_wr_now,
};
