/* SPDX-License-Identifier: MIT */
/* Packet framing: one message per packet, a header and its body, with the
 * message's fds in the packet's control data (seqpacket://). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "msg.h"

static size_t cmsg_space_for(unsigned int nfds)
{
	return nfds ? CMSG_SPACE(nfds * sizeof(int)) : 0;
}

static int packet_init(struct link *l)
{
	/* A packet must fit the send buffer whole; ask for room for the
	 * largest one (the kernel may grant less). */
	int sndbuf = (int)(2 * (WIRE_HEADER_SIZE + l->lim.max_body_write));

	/* The whole packet must fit, plus one byte to tell a packet of
	 * exactly the limit from a longer one. */
	l->rbuf_size = WIRE_HEADER_SIZE + l->lim.max_body_read + 1;
	/* Room for every fd Linux can pass, so none is lost to MSG_CTRUNC
	 * while under the limit. */
	l->rcmsg_size = cmsg_space_for(WIRE_MAX_FDS);
	l->wcmsg_size = cmsg_space_for(l->lim.max_fds);
	l->rbuf = malloc(l->rbuf_size);
	l->rcmsg = malloc(l->rcmsg_size);
	l->wcmsg = l->wcmsg_size ? calloc(1, l->wcmsg_size) : NULL;
	if (!l->rbuf || !l->rcmsg || (l->wcmsg_size && !l->wcmsg)) {
		free(l->rbuf);
		free(l->rcmsg);
		free(l->wcmsg);
		l->rbuf = l->rcmsg = l->wcmsg = NULL;
		return -ENOMEM;
	}
	setsockopt(l->fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	return 0;
}

static int packet_rd_prepare(struct link *l)
{
	l->riov = (struct iovec){ l->rbuf, l->rbuf_size };
	l->rmsg = (struct msghdr){
		.msg_iov = &l->riov,
		.msg_iovlen = 1,
		.msg_control = l->rcmsg,
		.msg_controllen = l->rcmsg_size,
	};
	/* MSG_TRUNC: the result is the real packet length, so a packet longer
	 * than the buffer shows. */
	return MSG_TRUNC | MSG_CMSG_CLOEXEC;
}

/* A packet of len bytes is over the read limit, which ends the connection:
 * if it was a request, its sender learns why first, from an error response.
 * (A stream cannot say so: its frame's header is still unread.) */
static void refuse_oversized(struct link *l, size_t len)
{
	struct pier_header h;
	char why[200];

	if (wire_header_decode(&h, l->rbuf, l->lim.order) < 0 || h.type != PIER_MSG_REQUEST)
		return;
	snprintf(why, sizeof(why),
		 "request refused: its body of %zu bytes is over this peer's read limit of "
		 "%zu bytes (pier_config_set_max_body(); or pass large data in a memfd)",
		 len - WIRE_HEADER_SIZE, l->lim.max_body_read);
	l->ops->refuse(l, h.request_id, why);
}

static int read_packet(struct link *l, size_t len)
{
	int fds[WIRE_MAX_FDS];
	struct wire_packet pkt;
	struct pier_msg *m;
	int nfds, r;

	nfds = link_take_fds(l, fds, l->lim.max_fds);
	if (nfds < 0)
		return nfds;
	if (len >= l->rbuf_size || (l->rmsg.msg_flags & MSG_TRUNC)) {
		refuse_oversized(l, len);
		r = -PIER_EBODYLIMIT;
	} else
		r = wire_packet_parse(l->rbuf, len, l->lim.order, l->lim.max_body_read, &pkt);
	m = r < 0 ? NULL : msg_new(pkt.body_len, (unsigned int)nfds);
	if (!m) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return r < 0 ? r : -ENOMEM;
	}
	m->hdr = pkt.hdr;
	memcpy(m->body, pkt.body, pkt.body_len);
	if (nfds > 0)
		memcpy(m->fds, fds, (size_t)nfds * sizeof(int));
	l->ops->deliver(l, m);
	return 0;
}

static int packet_rd_done(struct link *l, ssize_t res)
{
	if (res == -EAGAIN)
		return 0;
	if (res < 0)
		return (int)res;
	if (res == 0) {
		int fds[WIRE_MAX_FDS], n = link_take_fds(l, fds, WIRE_MAX_FDS);

		/* An empty packet reads like the end, but an end carries no
		 * fds: with fds, it was a packet too short to be a message. */
		for (int i = 0; i < n; i++)
			close(fds[i]);
		return n != 0 ? -PIER_ESHORTFRAME : -PIER_ECLOSED;
	}
	return read_packet(l, (size_t)res);
}

static size_t packet_head_encode(const struct link *l, unsigned char *head,
				 const struct pier_header *h, size_t len)
{
	wire_header_encode(head, h, l->lim.order);
	return WIRE_HEADER_SIZE;
}

/* One frame per write, with its fds. */
static int packet_wr_prepare(struct link *l, struct out_frame *head, bool may_take,
			     struct link_write *w)
{
	*w = (struct link_write){ 0 };
	if (!may_take || !head)
		return 0;
	l->wiov[0] = (struct iovec){ head->data + head->sent, head->len - head->sent };
	l->wmsg = (struct msghdr){ .msg_iov = l->wiov, .msg_iovlen = 1 };
	link_put_fds(&l->wmsg, l->wcmsg, l->wcmsg_size, head->fds, head->nfds);
	w->frames = 1;
	w->submit = true;
	return 0;
}

/* Packets per sendmmsg in wr_now. */
#define PACKET_BATCH 32

/* Many packets per sendmmsg, up to the first frame with fds (those go one
 * at a time, so that their fds in flight can be counted). */
static ssize_t packet_wr_now(struct link *l, const struct out_frame *head)
{
	struct mmsghdr mm[PACKET_BATCH];
	struct iovec iov[PACKET_BATCH];
	unsigned int n = 0;
	ssize_t bytes = 0;
	int r;

	for (const struct out_frame *f = head; f && !f->nfds && n < PACKET_BATCH; f = f->next) {
		iov[n] = (struct iovec){ (void *)f->data, f->len };
		mm[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[n], .msg_iovlen = 1 } };
		n++;
	}
	if (n == 0)
		return -EAGAIN;
	do
		r = sendmmsg(l->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	for (int i = 0; i < r; i++)
		bytes += (ssize_t)iov[i].iov_len;
	return bytes;
}

const struct framing framing_packet = {
	.name = "packet",
	.packets = true,
	.default_max_body = 128u << 10,
	.init = packet_init,
	.rd_prepare = packet_rd_prepare,
	.rd_done = packet_rd_done,
	.head_encode = packet_head_encode,
	.wr_prepare = packet_wr_prepare,
	.wr_now = packet_wr_now,
};
