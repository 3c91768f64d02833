/* SPDX-License-Identifier: MIT */
/*
 * TLS framing: stream framing inside a TLS session (tls-session.c), which
 * never touches the socket.  Reading feeds it ciphertext and frames the
 * plaintext it gives; writing encrypts frames (they count as written once
 * encrypted) and sends the ciphertext it produced.
 *
 * Threads.  The loop drives the handshake (the connection leaves all of its
 * I/O to the loop until it is open).  Then, as on the other framings, the
 * thread holding the read role reads and decrypts for itself, and the
 * thread holding the write path (a sender, or the loop) encrypts and
 * writes: no message crosses to the loop and back.  Both sides share the
 * session, which OpenSSL does not let two threads into at once: l->tls_mu
 * guards it (and tls_up).  It is taken after the connection's locks and
 * held only around calls into the session, never while sending, receiving
 * or calling up: the reader decrypts into its buffer under it, releases
 * it, then frames and delivers.  The ciphertext being sent (tls_obuf)
 * belongs to the write path, the parser and tls_held to the read role,
 * tls_notified to the loop.
 *
 * Copies: received ciphertext stays in tls_ibuf, where the session reads
 * it, until the session has taken all of it; the plaintext goes to rbuf,
 * or straight into a large body.  The ciphertext to send is the session's
 * own buffer, lent to the write path (tls_out_take()).
 *
 * What reading makes the session send (an alert, a key update) waits in it
 * until the write path's holder sends it: ops->want_write asks for that.
 * Whoever writes sends what the link holds before anything new, so records
 * go out in the order the session made them.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "private.h"
#include "tls-session.h"

/* How much ciphertext may wait to be sent before more plaintext is
 * encrypted: what one write sends at most. */
#define TLS_OUT_BATCH (32u << 10)
/* Ciphertext received per read: two full records (16 KiB of plaintext and
 * at most 22 bytes more each, as OpenSSL makes them).  The buffer is freed
 * whenever the session took all of it, so an idle link keeps none. */
#define TLS_IBUF_SIZE (33u << 10)
/* The most plaintext a record carries (TLS's limit, OpenSSL's default). */
#define TLS_RECORD_MAX (16u << 10)
/* Pieces smaller than a record (a frame's head, small frames) are gathered
 * into records of up to this much on the stack. */
#define TLS_GATHER (4u << 10)

static int tls_link_init(struct link *l)
{
	int r;

	pthread_mutex_init(&l->tls_mu, NULL);
	r = link_stream_init(l);
	if (r < 0) {
		pthread_mutex_destroy(&l->tls_mu);
		return r;
	}
	l->tls_held = true; /* the first read starts the session */
	return 0;
}

static void tls_link_fini(struct link *l)
{
	link_stream_fini(l);
	free(l->tls_ibuf);
	l->tls_ibuf = NULL;
	pthread_mutex_destroy(&l->tls_mu);
}

/* --- reading (the read role's holder) ------------------------------------ */

/* Takes what the session decrypts into the parser until it needs more
 * ciphertext or the receiver wants no more for now; *wrote says whether
 * the session made something to send meanwhile.  0, or why the connection
 * ends. */
static int tls_pump(struct link *l, bool *wrote)
{
	for (;;) {
		uint64_t out;
		bool ready, more;
		ssize_t n;
		int r;

		link_stream_window(l);
		pthread_mutex_lock(&l->tls_mu);
		out = tls_out_count(l->tls);
		n = tls_read(l->tls, l->riov.iov_base, l->riov.iov_len);
		more = tls_read_more(l->tls);
		*wrote = *wrote || tls_out_count(l->tls) != out;
		ready = !l->tls_up && tls_ready(l->tls);
		if (ready)
			l->tls_up = true;
		pthread_mutex_unlock(&l->tls_mu);
		if (ready)
			l->ops->ready(l);
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
		if (!more)
			return 0; /* spares a call that would say so */
	}
}

/* Ciphertext goes to tls_ibuf, which the session has taken all of (the
 * next read starts with what it holds otherwise: see rd_held). */
static int tls_rd_prepare(struct link *l)
{
	if (!l->tls_ibuf && !(l->tls_ibuf = malloc(TLS_IBUF_SIZE)))
		return -ENOMEM;
	l->riov = (struct iovec){ l->tls_ibuf, TLS_IBUF_SIZE };
	l->rmsg = (struct msghdr){ .msg_iov = &l->riov, .msg_iovlen = 1 };
	return 0;
}

/* What a read returned (res: bytes in tls_ibuf, 0 for the end, -EAGAIN for
 * nothing new), through the session; then asks for what it made to be
 * sent (the handshake's messages, alerts, key updates). */
static int tls_rd_done(struct link *l, ssize_t res)
{
	bool wrote = false, drained;
	int r;

	l->tls_held = false;
	if (res >= 0) {
		pthread_mutex_lock(&l->tls_mu);
		tls_feed(l->tls, l->tls_ibuf, (size_t)res);
		pthread_mutex_unlock(&l->tls_mu);
	} else if (res != -EAGAIN) {
		return (int)res;
	}
	r = tls_pump(l, &wrote);
	pthread_mutex_lock(&l->tls_mu);
	drained = !tls_in_left(l->tls);
	pthread_mutex_unlock(&l->tls_mu);
	if (drained) {
		/* An idle link keeps no ciphertext buffer. */
		free(l->tls_ibuf);
		l->tls_ibuf = NULL;
	}
	if (wrote)
		l->ops->want_write(l);
	return r;
}

static bool tls_rd_held(const struct link *l)
{
	return l->tls_held;
}

/* --- writing (the write path's holder) ----------------------------------- */

/* Plaintext still to encrypt: iov[i..n), the first off bytes of iov[i]
 * taken already. */
struct plain {
	const struct iovec *iov;
	size_t n, i, off;
};

/* Copies up to len bytes from p into buf, moving on; returns how many. */
static size_t plain_gather(struct plain *p, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len && p->i < p->n) {
		size_t k = p->iov[p->i].iov_len - p->off;

		if (k > len - got)
			k = len - got;
		memcpy(buf + got, (const unsigned char *)p->iov[p->i].iov_base + p->off, k);
		got += k;
		p->off += k;
		if (p->off == p->iov[p->i].iov_len) {
			p->i++;
			p->off = 0;
		}
	}
	return got;
}

/* Under tls_mu, the handshake done: encrypts plaintext from p until all of
 * it is taken or TLS_OUT_BATCH of ciphertext waits; adds the bytes taken
 * to *took.  A piece smaller than a record shares one with those after it
 * (a frame's head with its body, small frames with each other), gathered
 * first.  0, or why the stream broke. */
static int seal_locked(struct link *l, struct plain *p, size_t *took)
{
	unsigned char stage[TLS_GATHER];

	while (p->i < p->n && tls_out_pending(l->tls) < TLS_OUT_BATCH) {
		const struct iovec *v = &p->iov[p->i];
		size_t left = v->iov_len - p->off, len, done = 0;

		if (left >= TLS_GATHER || p->i + 1 == p->n) {
			/* Straight from the caller's buffer. */
			ssize_t w = left ? tls_write(l->tls, (const unsigned char *)v->iov_base +
								   p->off, left)
					 : 0;

			if (w < 0)
				return (int)w;
			*took += (size_t)w;
			p->off += (size_t)w;
			if (p->off == v->iov_len) {
				p->i++;
				p->off = 0;
			}
			continue;
		}
		len = plain_gather(p, stage, sizeof(stage));
		while (done < len) {
			ssize_t w = tls_write(l->tls, stage + done, len - done);

			if (w < 0)
				return (int)w;
			done += (size_t)w;
		}
		*took += len;
	}
	return 0;
}

/* The write path's holder, all of tls_obuf sent: takes the session's
 * ciphertext into it.  Whether there is some to send (when not, the
 * session freed its buffers: an idle link keeps none). */
static bool take(struct link *l)
{
	pthread_mutex_lock(&l->tls_mu);
	l->tls_olen = tls_out_take(l->tls, &l->tls_obuf);
	pthread_mutex_unlock(&l->tls_mu);
	l->tls_opos = 0;
	return l->tls_olen > 0;
}

/* The write path's holder, no write in flight: sends the ciphertext the
 * link holds (the rest of tls_obuf, then what the session has) as far as
 * the socket takes it.  0 once all of it went, -EAGAIN when the socket
 * took no more, or why the stream broke. */
static int flush(struct link *l)
{
	for (;;) {
		ssize_t n;

		if (l->tls_opos == l->tls_olen && !take(l))
			return 0;
		n = send(l->fd, l->tls_obuf + l->tls_opos, l->tls_olen - l->tls_opos,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		l->tls_opos += (size_t)n;
	}
}

/* Encrypts from p (the handshake done) into the session: 0, -EAGAIN before
 * the handshake is done, or why the stream broke. */
static int seal(struct link *l, struct plain *p, size_t *took)
{
	int r = 0;

	pthread_mutex_lock(&l->tls_mu);
	if (!l->tls_up)
		r = -EAGAIN;
	else
		r = seal_locked(l, p, took);
	pthread_mutex_unlock(&l->tls_mu);
	return r;
}

/* The write path's holder, no write in flight: sends what the link holds,
 * then encrypts iov[0..n) and sends that, for as long as the socket takes
 * everything at once.  Returns the plaintext bytes encrypted (what the
 * socket did not take of their ciphertext stays in the link and goes
 * first), -EAGAIN when none was (with n 0: when something is left), or why
 * the stream broke. */
static ssize_t tls_send(struct link *l, const struct iovec *iov, size_t n)
{
	struct plain p = { iov, n, 0, 0 };
	size_t took = 0;
	int r;

	for (;;) {
		r = flush(l);
		if (r < 0 || p.i == p.n)
			break;
		r = seal(l, &p, &took);
		if (r < 0)
			break;
	}
	if (r < 0 && r != -EAGAIN)
		return r;
	if (took || (n == 0 && r == 0))
		return (ssize_t)took;
	return -EAGAIN;
}

static ssize_t tls_wr_now(struct link *l, const struct out_frame *head)
{
	struct iovec iov[PIER_ARRAY_SIZE(l->wiov)];

	return tls_send(l, iov, link_frames_iov(head, iov, PIER_ARRAY_SIZE(iov)));
}

static ssize_t tls_wr_frame(struct link *l, const struct iovec *iov, size_t n)
{
	return tls_send(l, iov, n);
}

/* The loop's write: the ciphertext the link holds, else what encrypting
 * queued frames (once the handshake is done) makes. */
static int tls_wr_prepare(struct link *l, struct out_frame *head, bool may_take,
			  struct link_write *w)
{
	struct iovec iov[PIER_ARRAY_SIZE(l->wiov)];
	struct plain p = { iov, 0, 0, 0 };
	int r = 0;

	*w = (struct link_write){ 0 };
	if (l->tls_opos == l->tls_olen) {
		if (may_take)
			p.n = link_frames_iov(head, iov, PIER_ARRAY_SIZE(iov));
		if (p.n)
			r = seal(l, &p, &w->took);
		if (r == -EAGAIN)
			r = 0; /* the handshake first */
		if (!take(l))
			return r;
	}
	l->wiov[0] = (struct iovec){ (void *)(l->tls_obuf + l->tls_opos),
				     l->tls_olen - l->tls_opos };
	l->wmsg = (struct msghdr){ .msg_iov = l->wiov, .msg_iovlen = 1 };
	w->submit = true;
	return r;
}

static size_t tls_wr_done(struct link *l, size_t res)
{
	l->tls_opos += res;
	return 0; /* the frames counted as written when encrypted */
}

static bool tls_wr_idle(struct link *l)
{
	bool idle;

	if (l->tls_opos != l->tls_olen)
		return false;
	pthread_mutex_lock(&l->tls_mu);
	idle = !tls_out_pending(l->tls);
	pthread_mutex_unlock(&l->tls_mu);
	return idle;
}

/* TLS ends with close_notify, then the socket's end. */
static bool tls_wr_close(struct link *l)
{
	if (l->tls_notified)
		return false;
	l->tls_notified = true;
	pthread_mutex_lock(&l->tls_mu);
	tls_close_notify(l->tls);
	pthread_mutex_unlock(&l->tls_mu);
	return true;
}

/* Sends what the session still has, in order and without waiting (the
 * rest of a record, the alert that tells the remote why its handshake
 * failed), and answers a received close_notify with ours.  Not after an
 * abort, which sends nothing more.  Nobody reads or writes any more. */
static void tls_final_flush(struct link *l, int error)
{
	if (error == -PIER_EABORTED)
		return;
	if (error == -PIER_ECLOSED && !l->tls_notified) {
		l->tls_notified = true;
		pthread_mutex_lock(&l->tls_mu);
		tls_close_notify(l->tls);
		pthread_mutex_unlock(&l->tls_mu);
	}
	flush(l); /* the remote may be gone already */
}

const struct framing framing_tls = {
	.name = "tls",
	.packets = false,
	.default_max_body = 1u << 20,
	.init = tls_link_init,
	.fini = tls_link_fini,
	.rd_prepare = tls_rd_prepare,
	.rd_done = tls_rd_done,
	.rd_held = tls_rd_held,
	.head_encode = link_stream_head_encode,
	.wr_prepare = tls_wr_prepare,
	.wr_now = tls_wr_now,
	.wr_frame = tls_wr_frame,
	.wr_done = tls_wr_done,
	.wr_idle = tls_wr_idle,
	.wr_close = tls_wr_close,
	.final_flush = tls_final_flush,
};
