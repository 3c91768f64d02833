/* SPDX-License-Identifier: MIT */
/*
 * Buffer pools, the owner's side: a share's lifetime (see pool.c), what its
 * receiver sends back (releases, refusals, its answer), and freeing what a
 * pool holds.  Everything here is under the pool's mu unless it says not.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool-int.h"
#include "pool-wire.h"

/* An ERROR to send back to a share, once the lock is released. */
struct reply {
	size_t len;
	uint8_t body[POOL_ERROR_MAX];
};

/* --- the pool's memory -------------------------------------------------- */

void pool_destroy(struct pier_pool *p)
{
	for (unsigned int i = 0; i < p->nfds; i++) {
		if (p->maps && p->maps[i].base)
			munmap(p->maps[i].base, p->maps[i].len);
		if (p->fds[i] >= 0)
			close(p->fds[i]);
	}
	if (p->wake_fd >= 0)
		close(p->wake_fd);
	if (p->epoll_fd >= 0)
		close(p->epoll_fd);
	if (p->free_fd >= 0)
		close(p->free_fd);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p->maps);
	free(p->fds);
	free(p->bufs);
	free(p->free);
	free(p);
}

bool pool_unref_locked(struct pier_pool *p)
{
	assert(p->refs > 0);
	return --p->refs == 0;
}

/* --- buffers coming back ------------------------------------------------ */

int share_poll_locked(struct pier_pool *p, struct pier_shared_pool *s)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd = pier_sent_request_fd(s->req);

	if (fd < 0)
		return fd;
	if (epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	s->poll_fd = fd;
	return 0;
}

void pool_sync_free_fd_locked(struct pier_pool *p)
{
	bool ready = p->nfree > 0;
	uint64_t v = 1;
	ssize_t n;

	if (p->free_fd < 0 || ready == p->free_readable)
		return;
	n = ready ? write(p->free_fd, &v, sizeof(v)) : read(p->free_fd, &v, sizeof(v));
	(void)n;
	p->free_readable = ready;
}

/* Under mu: wakes whoever waits for a buffer. */
static void wake_locked(struct pier_pool *p)
{
	pthread_cond_broadcast(&p->cond);
	if (p->polling) {
		uint64_t one = 1;
		ssize_t n = write(p->wake_fd, &one, sizeof(one));

		(void)n;
	}
}

void pool_buf_maybe_free_locked(struct pier_pool *p, unsigned int i)
{
	if (!p->bufs[i].app && !p->bufs[i].holders) {
		p->free[p->nfree++] = i;
		pool_sync_free_fd_locked(p);
		wake_locked(p);
	}
}

void share_unhold_locked(struct pier_pool *p, struct pier_shared_pool *s, unsigned int i)
{
	s->b[i].held = false;
	s->held--;
	p->bufs[i].holders--;
	pool_buf_maybe_free_locked(p, i);
}

void share_end_locked(struct pier_pool *p, struct pier_shared_pool *s, int err)
{
	if (s->error)
		return;
	s->error = err;
	/* An ended request is always readable: nothing to wait for there. */
	if (s->poll_fd >= 0)
		epoll_ctl(p->epoll_fd, EPOLL_CTL_DEL, s->poll_fd, NULL);
	s->poll_fd = -1;
	for (unsigned int i = 0; s->held && i < p->count; i++)
		if (s->b[i].held)
			share_unhold_locked(p, s, i);
}

/* --- what a receiver sends back ----------------------------------------- */

__attribute__((format(printf, 6, 7)))
static void reply_error(struct reply *out, const struct pier_pool *p, int code, uint32_t about,
			uint32_t buffer, const char *fmt, ...)
{
	char text[POOL_WHY_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	out->len = pool_error_encode(out->body, p->id, code, about, buffer, 0, text);
}

/* Under mu: one buffer the receiver says it released.  0, or why not. */
static int release_one_locked(struct pier_pool *p, struct pier_shared_pool *s, uint32_t i,
			      uint32_t seq, struct reply *out)
{
	const struct share_buf *sb;

	if (i >= p->count) {
		reply_error(out, p, ERANGE, POOL_RELEASE, i, "release of buffer %u of a pool of %u",
			    i, p->count);
		return -ERANGE;
	}
	sb = &s->b[i];
	if (sb->held && sb->seq == seq) {
		share_unhold_locked(p, s, i);
		return 0;
	}
	if (!sb->held && sb->published && sb->seq == seq) {
		reply_error(out, p, EALREADY, POOL_RELEASE, i,
			    "buffer %u (frame %u) was released already", i, seq);
		return -EALREADY;
	}
	reply_error(out, p, EPERM, POOL_RELEASE, i,
		    "buffer %u (frame %u) is not held by this peer", i, seq);
	return -EPERM;
}

/* Under mu: a RELEASE.  The buffers it names rightly come back; the first
 * it names wrongly is answered with an ERROR. */
static void release_locked(struct pier_pool *p, struct pier_shared_pool *s, const void *body,
			   size_t len, struct reply *out)
{
	struct pool_release rel;
	char why[POOL_WHY_SIZE];
	bool refused = false;

	if (pool_release_parse(body, len, &rel, why) < 0) {
		reply_error(out, p, EBADMSG, POOL_RELEASE, 0, "%s", why);
		return;
	}
	if (rel.pool_id != p->id) {
		reply_error(out, p, ENOENT, POOL_RELEASE, 0, "release for unknown pool %u (this is %u)",
			    rel.pool_id, p->id);
		return;
	}
	for (uint32_t k = 0; k < rel.count; k++) {
		struct reply spare;
		uint32_t i, seq;

		pool_release_entry(&rel, k, &i, &seq);
		if (release_one_locked(p, s, i, seq, refused ? &spare : out) < 0)
			refused = true;
	}
}

/* Under mu: the receiver refused something.  A frame it refused was never
 * its: the buffer comes back.  Never answered: an error about an error
 * would go back and forth. */
static void refused_locked(struct pier_pool *p, struct pier_shared_pool *s, const void *body,
			   size_t len)
{
	struct pool_error e;

	if (pool_error_parse(body, len, &e) < 0)
		return;
	if (e.about == POOL_ABOUT_SHARE || e.about == POOL_FDS) {
		if (!s->refusal)
			s->refusal = -e.code;
	} else if (e.about == POOL_FRAME && e.buffer < p->count && s->b[e.buffer].held &&
		   s->b[e.buffer].seq == e.seq) {
		share_unhold_locked(p, s, e.buffer);
	}
}

/* Under mu: one message from the share's receiver. */
static void share_handle_locked(struct pier_pool *p, struct pier_shared_pool *s,
				const pier_msg *m, struct reply *out)
{
	const struct pier_header *h = pier_msg_header(m);
	size_t len;
	const void *body = pier_msg_body(m, &len);

	if (h->type == PIER_MSG_RESPONSE) {
		/* The receiver let go of the pool (an error: refused it). */
		share_end_locked(p, s, !pier_msg_is_error(m) ? -PIER_EDONE
				       : s->refusal	      ? s->refusal
							      : -ECONNREFUSED);
		return;
	}
	if (pier_msg_fd_count(m)) {
		reply_error(out, p, EBADMSG, (uint32_t)h->service_id, 0,
			    "a pool's receiver sends no fds");
		return;
	}
	switch (h->service_id) {
	case POOL_RELEASE:
		release_locked(p, s, body, len, out);
		break;
	case POOL_ERROR:
		refused_locked(p, s, body, len);
		break;
	default:
		reply_error(out, p, EBADMSG, (uint32_t)h->service_id, 0,
			    "unknown message kind %d from a pool's receiver", h->service_id);
		break;
	}
}

/* --- a share's lifetime -------------------------------------------------- */

void share_put_locked(struct pier_pool *p, struct pier_shared_pool *s,
		      struct pier_shared_pool **dead)
{
	assert(s->users > 0);
	if (--s->users || !s->freed)
		return;
	for (struct pier_shared_pool **q = &p->shares; *q; q = &(*q)->next) {
		if (*q == s) {
			*q = s->next;
			break;
		}
	}
	s->next = *dead;
	*dead = s;
}

void pool_bury(struct pier_shared_pool *dead)
{
	while (dead) {
		struct pier_shared_pool *s = dead;
		struct pier_pool *p = s->pool;
		bool last;

		dead = s->next;
		pier_sent_request_free(s->req);
		free(s);
		pthread_mutex_lock(&p->mu);
		last = pool_unref_locked(p);
		pthread_mutex_unlock(&p->mu);
		if (last)
			pool_destroy(p);
	}
}

int share_take_locked(struct pier_pool *p, struct pier_shared_pool *s, int timeout_ms)
{
	struct reply reply;
	pier_msg *m = NULL;
	int r;

	reply.len = 0;
	pthread_mutex_unlock(&p->mu);
	r = pier_sent_request_recv(s->req, &m, timeout_ms);
	pthread_mutex_lock(&p->mu);
	if (r == 0)
		share_handle_locked(p, s, m, &reply);
	else if (r != -EAGAIN && r != -ETIMEDOUT)
		share_end_locked(p, s, s->refusal ? s->refusal : r);
	pthread_mutex_unlock(&p->mu);
	pier_msg_free(m);
	if (reply.len)
		pier_sent_request_send_update(s->req, POOL_ERROR, reply.body, reply.len, NULL, 0);
	pthread_mutex_lock(&p->mu);
	return r;
}

void share_drain_locked(struct pier_pool *p, struct pier_shared_pool *s)
{
	while (share_take_locked(p, s, 0) == 0)
		;
}
