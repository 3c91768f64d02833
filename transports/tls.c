/* SPDX-License-Identifier: MIT */
/*
 * TLS framing: stream framing inside a TLS session (tls-session.c), which
 * never touches the socket.  Reading feeds it ciphertext and frames the
 * plaintext it gives; writing encrypts queued frames (they count as written
 * once encrypted) and sends the ciphertext it produced.  The session lives
 * on the loop thread: the loop does all of this link's I/O.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "link.h"
#include "tls-session.h"

/* Ciphertext sent per write, and how much may wait encrypted before more
 * queued frames are encrypted. */
#define TLS_OBUF_SIZE (32u << 10)

static int tls_link_init(struct link *l)
{
	int r = link_stream_init(l);

	l->tls_held = true; /* the first read starts the session */
	return r;
}

/* Takes what the session decrypts into the parser until it needs more
 * ciphertext or the receiver wants no more for now.  0, or why the
 * connection ends. */
static int tls_pump(struct link *l)
{
	for (;;) {
		ssize_t n;
		int r;

		link_stream_window(l);
		n = tls_read(l->tls, l->riov.iov_base, l->riov.iov_len);
		if (!l->tls_up && tls_ready(l->tls)) {
			l->tls_up = true;
			l->ops->ready(l);
		}
		if (n == 0)
			return 0;
		if (n == -PIER_ECLOSED) {
			/* close_notify: the end, which must fall between
			 * frames. */
			r = wire_parser_eof(&l->parser);
			return r < 0 ? r : -PIER_ECLOSED;
		}
		if (n < 0)
			return (int)n;
		r = link_stream_frames(l, (size_t)n);
		if (r < 0)
			return r;
		if (r == 1) {
			l->tls_held = true; /* the rest waits in the session */
			return 0;
		}
	}
}

static int tls_rd_prepare(struct link *l)
{
	/* Ciphertext, which the session copies in at once: the buffer then
	 * takes the plaintext (tls_pump()). */
	l->riov = (struct iovec){ l->rbuf, l->rbuf_size };
	l->rmsg = (struct msghdr){ .msg_iov = &l->riov, .msg_iovlen = 1 };
	return 0;
}

/* What a read returned (res: bytes in rbuf, 0 for the end, -EAGAIN for
 * nothing new), through the session; then asks to send what it produced
 * (the handshake's messages, alerts, key updates). */
static int tls_rd_done(struct link *l, ssize_t res)
{
	int r = 0;

	l->tls_held = false;
	if (res >= 0)
		r = tls_feed(l->tls, l->rbuf, (size_t)res);
	else if (res != -EAGAIN)
		return (int)res;
	if (r == 0)
		r = tls_pump(l);
	l->ops->want_write(l);
	return r;
}

static bool tls_rd_held(const struct link *l)
{
	return l->tls_held;
}

/* Encrypts queued frames from head while little ciphertext waits; *took
 * counts the plaintext bytes taken. */
static int encrypt(struct link *l, struct out_frame *head, size_t *took)
{
	struct out_frame *f = head;
	size_t off = 0;

	while (f && tls_out_pending(l->tls) < TLS_OBUF_SIZE) {
		size_t at = f->sent + off;
		ssize_t n = tls_write(l->tls, f->data + at, f->len - at);

		if (n < 0)
			return (int)n;
		*took += (size_t)n;
		off += (size_t)n;
		if (f->sent + off == f->len) {
			f = f->next;
			off = 0;
		}
	}
	return 0;
}

/* Sends the session's ciphertext, encrypting queued frames once the
 * handshake is done. */
static int tls_wr_prepare(struct link *l, struct out_frame *head, bool may_take,
			  struct link_write *w)
{
	int r = 0;

	*w = (struct link_write){ 0 };
	if (l->tls_opos == l->tls_olen) {
		if (l->tls_up && may_take)
			r = encrypt(l, head, &w->took);
		if (!tls_out_pending(l->tls)) {
			/* Idle links keep no ciphertext buffer. */
			free(l->tls_obuf);
			l->tls_obuf = NULL;
			l->tls_opos = l->tls_olen = 0;
			return r;
		}
		if (!l->tls_obuf && !(l->tls_obuf = malloc(TLS_OBUF_SIZE)))
			return r < 0 ? r : -ENOMEM;
		l->tls_opos = 0;
		l->tls_olen = tls_out_take(l->tls, l->tls_obuf, TLS_OBUF_SIZE);
	}
	l->wiov[0] = (struct iovec){ l->tls_obuf + l->tls_opos, l->tls_olen - l->tls_opos };
	l->wmsg = (struct msghdr){ .msg_iov = l->wiov, .msg_iovlen = 1 };
	w->submit = true;
	return r;
}

static size_t tls_wr_done(struct link *l, size_t res)
{
	l->tls_opos += res;
	return 0; /* the frames counted as written when encrypted */
}

static bool tls_wr_idle(const struct link *l)
{
	return l->tls_opos == l->tls_olen && !tls_out_pending(l->tls);
}

/* TLS ends with close_notify, then the socket's end. */
static bool tls_wr_close(struct link *l)
{
	if (l->tls_notified)
		return false;
	l->tls_notified = true;
	tls_close_notify(l->tls);
	return true;
}

/* Sends what the session still has, in order and without waiting (the
 * rest of a record, the alert that tells the remote why its handshake
 * failed), and answers a received close_notify with ours.  Not after an
 * abort, which sends nothing more. */
static void tls_final_flush(struct link *l, int error)
{
	unsigned char buf[4096];
	size_t n;
	ssize_t sent;

	if (error == -PIER_EABORTED)
		return;
	if (error == -PIER_ECLOSED && !l->tls_notified) {
		l->tls_notified = true;
		tls_close_notify(l->tls);
	}
	while (l->tls_opos < l->tls_olen) {
		sent = send(l->fd, l->tls_obuf + l->tls_opos, l->tls_olen - l->tls_opos,
			    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (sent <= 0)
			return; /* the remote may be gone already */
		l->tls_opos += (size_t)sent;
	}
	while ((n = tls_out_take(l->tls, buf, sizeof(buf))) > 0) {
		if (send(l->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)n)
			return;
	}
}

const struct framing framing_tls = {
	.name = "tls",
	.app_io = false,
	.packets = false,
	.default_max_body = 1u << 20,
	.init = tls_link_init,
	.fini = link_stream_fini,
	.rd_prepare = tls_rd_prepare,
	.rd_done = tls_rd_done,
	.rd_held = tls_rd_held,
	.head_encode = link_stream_head_encode,
	.wr_prepare = tls_wr_prepare,
	.wr_done = tls_wr_done,
	.wr_idle = tls_wr_idle,
	.wr_close = tls_wr_close,
	.final_flush = tls_final_flush,
};
