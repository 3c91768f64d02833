/* SPDX-License-Identifier: MIT */
/* What every framing shares: setting a link up, fds in control data, and
 * discarding input nobody will read. */
#include "config.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "link.h"
#include "tls-session.h"

int link_init(struct link *l, const struct framing *f, int fd, const struct link_limits *lim,
	      const struct link_ops *ops, struct tls *tls)
{
	int r;

	*l = (struct link){ .f = f, .ops = ops, .fd = fd, .lim = *lim };
	if (!l->lim.max_body_read)
		l->lim.max_body_read = f->default_max_body;
	if (!l->lim.max_body_write)
		l->lim.max_body_write = f->default_max_body;
	r = f->init(l);
	if (r < 0)
		return r;
	l->tls = tls;
	return 0;
}

void link_fini(struct link *l)
{
	if (l->f->fini)
		l->f->fini(l);
	free(l->rbuf);
	free(l->rcmsg);
	free(l->wcmsg);
	tls_free(l->tls);
	l->rbuf = l->rcmsg = l->wcmsg = NULL;
	l->tls = NULL;
	l->tls_obuf = NULL;
}

int link_take_fds(struct link *l, int *fds, unsigned int max)
{
	unsigned int n = 0;
	bool over = false;

	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&l->rmsg); cm; cm = CMSG_NXTHDR(&l->rmsg, cm)) {
		size_t count;
		int *data;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		data = (int *)(void *)CMSG_DATA(cm);
		for (size_t i = 0; i < count; i++) {
			int fd;

			memcpy(&fd, &data[i], sizeof(fd));
			if (n < max)
				fds[n++] = fd;
			else {
				close(fd);
				over = true;
			}
		}
	}
	if (over || (l->rmsg.msg_flags & MSG_CTRUNC)) {
		for (unsigned int i = 0; i < n; i++)
			close(fds[i]);
		return over ? -PIER_EFDLIMIT : -PIER_EFDTRUNC;
	}
	return (int)n;
}

void link_put_fds(struct msghdr *mh, void *buf, size_t space, const int *fds, size_t nfds)
{
	struct cmsghdr *cm;

	if (!nfds)
		return;
	mh->msg_control = buf;
	mh->msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	assert(mh->msg_controllen <= space);
	/* No uninitialised padding goes to the kernel. */
	memset(buf, 0, mh->msg_controllen);
	cm = CMSG_FIRSTHDR(mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
}

ssize_t link_recv(struct link *l, int flags)
{
	struct msghdr *mh = &l->rmsg;

	if (mh->msg_controllen || mh->msg_iovlen != 1 || mh->msg_name)
		return recvmsg(l->fd, mh, flags);
	mh->msg_flags = 0;
	return recv(l->fd, mh->msg_iov[0].iov_base, mh->msg_iov[0].iov_len, flags);
}

void link_discard_input(struct link *l)
{
	for (int i = 0; i < 64; i++) {
		struct iovec iov = { l->rbuf, l->rbuf_size };
		int fds[WIRE_MAX_FDS], n;
		ssize_t len;

		l->rmsg = (struct msghdr){
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = l->rcmsg,
			.msg_controllen = l->rcmsg_size,
		};
		len = recvmsg(l->fd, &l->rmsg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (len < 0)
			break;
		n = link_take_fds(l, fds, WIRE_MAX_FDS);
		for (int j = 0; j < n; j++)
			close(fds[j]);
		if (len == 0 && n == 0)
			break; /* the end (or an empty packet without fds) */
	}
}

size_t link_frames_iov(const struct out_frame *head, struct iovec *iov, size_t max)
{
	size_t n = 0;

	for (const struct out_frame *f = head; f && n < max; f = f->next)
		iov[n++] = (struct iovec){ (void *)(f->data + f->sent), f->len - f->sent };
	return n;
}

void out_frame_free(struct out_frame *f)
{
	for (unsigned int i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	free(f);
}
