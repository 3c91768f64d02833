/* SPDX-License-Identifier: MIT */
/*
 * Buffer pools, the receiver's side: a peer's pool accepted from its share
 * request (each fd checked and mapped once, read-only, then closed with its
 * message), frames taken from the request's updates, and the buffers given
 * back in batches (doc/POOL-PROTOCOL.md).
 *
 * Releases wait in a list and go in one RELEASE when the receiver has
 * nothing else to do or has held on to enough: when a receive finds no
 * frame waiting (it would block, or returns -EAGAIN), when a frame is
 * freed while another thread waits in a receive, when half the pool waits
 * to be released, or when the application flushes.  The owner learns of
 * its buffers without a message per frame, and never waits on a receiver
 * that waits for it.
 *
 * The pool lives while its handle or a frame does: frames point into its
 * mappings.  Freeing the handle answers the share request (the owner gets
 * every buffer back); the mappings go with the last frame.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "pool-wire.h"
#include "private.h"
#include "route.h"

enum rbuf_state { RB_FREE, RB_HELD, RB_PENDING };

struct pier_pool_frame {
	struct pier_remote_pool *rp;
	pier_msg *msg; /* owned while the application holds the frame: the
			* metadata is in its body */
	const unsigned char *data;
	size_t len;
	const void *meta;
	size_t meta_len;
	uint32_t seq;
	unsigned int index;
};

struct rbuf {
	const unsigned char *data; /* in its fd's mapping */
	uint64_t size;
	enum rbuf_state state;
};

struct pier_remote_pool {
	pthread_mutex_t mu;
	unsigned int refs;          /* the handle's, and one per frame held */
	pier_received_request *req; /* owned */
	const struct pier_peer *peer; /* whose pools it counts against */
	int32_t service;
	uint32_t id;
	unsigned int count, nfds;
	struct map_region *maps; /* one per fd of the pool */
	struct rbuf *bufs;
	struct pier_pool_frame *frames; /* one per buffer: at most one each
					 * is the application's */
	uint32_t *pend_buf, *pend_seq;  /* releases not sent yet */
	unsigned int npending;
	uint8_t *relbody; /* a RELEASE being sent (by the flushing thread) */
	unsigned int waiting; /* threads blocked in a receive */
	bool flushing, flush_again;
	bool answered; /* the share request is answered: nothing more goes */
};

/* --- pools per peer ------------------------------------------------------ */

/* How many pools each peer has shared with this process and are not freed
 * yet.  A peer's entry lives while it has any, and the request handles of
 * those pools keep the peer itself (and so its address) alive. */
struct peer_pools {
	const struct pier_peer *peer;
	unsigned int n;
	struct peer_pools *next;
};

static pthread_mutex_t peers_mu = PTHREAD_MUTEX_INITIALIZER;
static struct peer_pools *peers;

static int peer_pools_add(const struct pier_peer *peer)
{
	struct peer_pools *e;
	int r = 0;

	pthread_mutex_lock(&peers_mu);
	for (e = peers; e && e->peer != peer; e = e->next)
		;
	if (!e && (e = calloc(1, sizeof(*e))) != NULL) {
		e->peer = peer;
		e->next = peers;
		peers = e;
	}
	if (!e)
		r = -ENOMEM;
	else if (e->n >= PIER_POOL_MAX_PER_PEER)
		r = -EMFILE;
	else
		e->n++;
	pthread_mutex_unlock(&peers_mu);
	return r;
}

static void peer_pools_del(const struct pier_peer *peer)
{
	pthread_mutex_lock(&peers_mu);
	for (struct peer_pools **q = &peers; *q; q = &(*q)->next) {
		struct peer_pools *e = *q;

		if (e->peer == peer) {
			if (--e->n == 0) {
				*q = e->next;
				free(e);
			}
			break;
		}
	}
	pthread_mutex_unlock(&peers_mu);
}

/* --- refusing ------------------------------------------------------------ */

/* Writes why (POOL_WHY_SIZE bytes) and returns err. */
__attribute__((format(printf, 3, 4)))
static int say(char *why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, POOL_WHY_SIZE, fmt, ap);
	va_end(ap);
	return err;
}

/* Tells the owner that a message was refused, and why.  Returns err. */
__attribute__((format(printf, 6, 7)))
static int refuse(pier_received_request *req, uint32_t pool_id, int err, uint32_t about,
		  const struct pool_frame *f, const char *fmt, ...)
{
	uint8_t body[POOL_ERROR_MAX];
	char text[POOL_WHY_SIZE];
	va_list ap;
	size_t len;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	len = pool_error_encode(body, pool_id, err, about, f ? f->buffer : 0, f ? f->seq : 0,
				text);
	pier_received_request_send_update(req, POOL_ERROR, body, len, NULL, 0);
	return err;
}

/* --- accepting ----------------------------------------------------------- */

static void rp_destroy(struct pier_remote_pool *rp)
{
	for (unsigned int i = 0; rp->maps && i < rp->nfds; i++)
		if (rp->maps[i].base)
			map_region_unmap(&rp->maps[i]);
	pier_received_request_free(rp->req);
	pthread_mutex_destroy(&rp->mu);
	free(rp->maps);
	free(rp->bufs);
	free(rp->frames);
	free(rp->pend_buf);
	free(rp->pend_seq);
	free(rp->relbody);
	free(rp);
}

static struct pier_remote_pool *rp_alloc(const struct pool_share *s)
{
	struct pier_remote_pool *rp = calloc(1, sizeof(*rp));

	if (!rp)
		return NULL;
	pthread_mutex_init(&rp->mu, NULL);
	rp->refs = 1;
	rp->id = s->pool_id;
	rp->count = s->count;
	rp->nfds = s->nfds;
	rp->maps = calloc(s->nfds, sizeof(*rp->maps));
	rp->bufs = calloc(s->count, sizeof(*rp->bufs));
	rp->frames = calloc(s->count, sizeof(*rp->frames));
	rp->pend_buf = calloc(s->count, sizeof(*rp->pend_buf));
	rp->pend_seq = calloc(s->count, sizeof(*rp->pend_seq));
	rp->relbody = malloc(POOL_RELEASE_HEAD + (size_t)s->count * POOL_RELEASE_ENTRY);
	if (!rp->maps || !rp->bufs || !rp->frames || !rp->pend_buf || !rp->pend_seq ||
	    !rp->relbody) {
		rp_destroy(rp);
		return NULL;
	}
	return rp;
}

/* The bytes of fd number fd that its buffers span: [*lo, *hi). */
static void fd_extent(const struct pool_share *s, uint32_t fd, uint64_t *lo, uint64_t *hi)
{
	*lo = UINT64_MAX;
	*hi = 0;
	for (uint32_t i = 0; i < s->count; i++) {
		struct pool_entry e;

		pool_share_entry(s, i, &e);
		if (e.fd != fd)
			continue;
		*lo = e.offset < *lo ? e.offset : *lo;
		*hi = e.offset + e.size > *hi ? e.offset + e.size : *hi;
	}
}

/* Whether the mappings all fds need stay within PIER_POOL_MAX_BYTES (the
 * buffers' own sizes were checked; far-apart buffers in one fd are not). */
static bool extents_fit(const struct pool_share *s)
{
	uint64_t total = 0, lo, hi;

	for (uint32_t fd = 0; fd < s->nfds; fd++) {
		fd_extent(s, fd, &lo, &hi);
		if (__builtin_add_overflow(total, hi - lo, &total) || total > PIER_POOL_MAX_BYTES)
			return false;
	}
	return true;
}

/* Maps fd number i of the pool (fd borrowed), checked for what its buffers
 * span, and points those buffers into the mapping. */
static int map_one(struct pier_remote_pool *rp, const struct pool_share *s, uint32_t i, int fd,
		   unsigned int flags, char *why)
{
	uint64_t lo, hi;
	int r;

	fd_extent(s, i, &lo, &hi);
	r = map_region_map(&rp->maps[i], fd, (size_t)lo, (size_t)(hi - lo), flags);
	if (r < 0)
		return say(why, r, "fd %u of the pool (bytes %llu to %llu): %s", i,
			   (unsigned long long)lo, (unsigned long long)hi, pier_strerror(r));
	for (uint32_t b = 0; b < s->count; b++) {
		struct pool_entry e;

		pool_share_entry(s, b, &e);
		if (e.fd == i)
			rp->bufs[b] = (struct rbuf){ rp->maps[i].data + (e.offset - lo), e.size,
						     RB_FREE };
	}
	return 0;
}

/* Maps the fds of m, which are the pool's from number first on. */
static int map_fds(struct pier_remote_pool *rp, const struct pool_share *s, const pier_msg *m,
		   uint32_t first, unsigned int flags, char *why)
{
	size_t n = pier_msg_fd_count(m);
	int r = 0;

	for (size_t k = 0; k < n && r == 0; k++)
		r = map_one(rp, s, first + (uint32_t)k, pier_msg_fd(m, k), flags, why);
	return r;
}

/* One FDS update m, when fds got of the pool came before it. */
static int fds_update(struct pier_remote_pool *rp, const struct pool_share *s, const pier_msg *m,
		      uint32_t got, unsigned int flags, char *why)
{
	int32_t kind = pier_msg_header(m)->service_id;
	size_t len, n = pier_msg_fd_count(m);
	const void *body = pier_msg_body(m, &len);
	uint32_t id, first;
	int r;

	if (kind != POOL_FDS)
		return say(why, -EBADMSG, "a message of kind %d before fd %u of the pool", kind, got);
	if ((r = pool_fds_parse(body, len, &id, &first, why)) < 0)
		return r;
	if (id != s->pool_id)
		return say(why, -ENOENT, "fds for unknown pool %u (this is %u)", id, s->pool_id);
	if (first != got || n == 0 || n > s->nfds - got)
		return say(why, -EBADMSG, "%zu fds from fd %u, where fd %u of %u is next", n, first,
			   got, s->nfds);
	return map_fds(rp, s, m, got, flags, why);
}

/* Takes the FDS updates that follow the request until the pool has all
 * its fds (got of them so far). */
static int more_fds(struct pier_remote_pool *rp, const struct pool_share *s, uint32_t got,
		    unsigned int flags, int timeout_ms, char *why)
{
	int r = 0;

	while (r == 0 && got < s->nfds) {
		pier_msg *m;

		r = pier_received_request_recv_update(rp->req, &m, timeout_ms);
		if (r < 0)
			return say(why, r, "fds %u to %u of the pool did not come: %s", got,
				   s->nfds - 1, pier_strerror(r));
		r = fds_update(rp, s, m, got, flags, why);
		got += (uint32_t)pier_msg_fd_count(m);
		pier_msg_free(m);
	}
	return r;
}

/* Everything accept does but counting and refusing. */
static int accept_pool(struct pier_remote_pool **out, pier_received_request *req,
		       const pier_msg *msg, unsigned int flags, int timeout_ms,
		       const struct pool_share *s, char *why)
{
	size_t n = pier_msg_fd_count(msg);
	struct pier_remote_pool *rp;
	int r;

	if (n == 0 || n > s->nfds)
		return say(why, -EBADMSG, "%zu fds with the request, for a pool of %u", n, s->nfds);
	if (!extents_fit(s))
		return say(why, -E2BIG, "the pool spans more than %llu bytes",
			   (unsigned long long)PIER_POOL_MAX_BYTES);
	rp = rp_alloc(s);
	if (!rp)
		return say(why, -ENOMEM, "out of memory");
	rp->req = req;
	r = map_fds(rp, s, msg, 0, flags, why);
	if (r == 0)
		r = more_fds(rp, s, (uint32_t)n, flags, timeout_ms, why);
	if (r < 0) {
		rp->req = NULL; /* the caller answers it */
		rp_destroy(rp);
		return r;
	}
	*out = rp;
	return 0;
}

PIER_EXPORT int pier_remote_pool_accept(pier_remote_pool **out, pier_received_request *req,
					const pier_msg *msg, unsigned int flags, int timeout_ms)
{
	const struct pier_peer *peer;
	struct pier_remote_pool *rp = NULL;
	char why[POOL_WHY_SIZE], text[POOL_WHY_SIZE + 32];
	struct pool_share s = { 0 };
	const void *body;
	size_t len;
	int r;

	if (!req)
		return -EINVAL;
	peer = req->req->peer;
	body = msg ? pier_msg_body(msg, &len) : NULL;
	if (!out || !msg || timeout_ms < -1 || (flags & ~(unsigned int)PIER_MAP_DMABUF) ||
	    pier_msg_header(msg)->type != PIER_MSG_REQUEST) {
		r = say(why, -EINVAL, "the receiver could not take it");
	} else if ((r = pool_share_parse(body, len, &s, why)) < 0) {
		;
	} else if ((r = peer_pools_add(peer)) < 0) {
		say(why, r, "%s", r == -EMFILE ? "too many pools from this peer" : "out of memory");
	} else if ((r = accept_pool(&rp, req, msg, flags, timeout_ms, &s, why)) < 0) {
		peer_pools_del(peer);
	}
	if (r < 0) {
		refuse(req, s.pool_id, r, POOL_ABOUT_SHARE, NULL, "%s", why);
		snprintf(text, sizeof(text), "pool refused: %s", why);
		pier_received_request_send_error(req, text);
		pier_received_request_free(req);
		return r;
	}
	rp->peer = peer;
	rp->service = pier_received_request_service_id(req);
	*out = rp;
	return 0;
}

/* --- releasing ----------------------------------------------------------- */

/* Under mu: the releases in relbody (len bytes) could not go this time
 * (the send queue stayed full): they wait for the next flush. */
static void pending_again_locked(struct pier_remote_pool *rp, size_t len)
{
	struct pool_release rel;
	char why[POOL_WHY_SIZE];

	if (rp->answered || pool_release_parse(rp->relbody, len, &rel, why) < 0)
		return;
	for (uint32_t k = 0; k < rel.count; k++) {
		uint32_t b, seq;

		pool_release_entry(&rel, k, &b, &seq);
		if (rp->bufs[b].state != RB_FREE)
			continue; /* published again meanwhile: a lie, refused */
		rp->bufs[b].state = RB_PENDING;
		rp->pend_buf[rp->npending] = b;
		rp->pend_seq[rp->npending] = seq;
		rp->npending++;
	}
}

/* Sends the releases that wait, unless another thread is sending them
 * (it sends these too, once done). */
static int flush(struct pier_remote_pool *rp)
{
	int r = 0;

	pthread_mutex_lock(&rp->mu);
	if (rp->flushing) {
		rp->flush_again = true;
		pthread_mutex_unlock(&rp->mu);
		return 0;
	}
	while (rp->npending && !rp->answered) {
		size_t len = pool_release_encode(rp->relbody, rp->id, rp->npending, rp->pend_buf,
						 rp->pend_seq);

		/* Free from now: the owner can publish them again only once
		 * this arrived. */
		for (unsigned int k = 0; k < rp->npending; k++)
			rp->bufs[rp->pend_buf[k]].state = RB_FREE;
		rp->npending = 0;
		rp->flushing = true;
		rp->flush_again = false;
		pthread_mutex_unlock(&rp->mu);
		r = pier_received_request_send_update(rp->req, POOL_RELEASE, rp->relbody, len, NULL,
						      0);
		pthread_mutex_lock(&rp->mu);
		rp->flushing = false;
		if (r == -EAGAIN || r == -ETIMEDOUT || r == -ENOMEM)
			pending_again_locked(rp, len);
		if (!rp->flush_again)
			break;
	}
	pthread_mutex_unlock(&rp->mu);
	/* An owner gone, or done with the pool, needs no releases. */
	return r == -PIER_EDONE ? 0 : r;
}

PIER_EXPORT int pier_remote_pool_flush(pier_remote_pool *rp)
{
	return rp ? flush(rp) : -EINVAL;
}

/* Drops a reference; the last destroys rp. */
static void rp_unref(struct pier_remote_pool *rp)
{
	bool last;

	pthread_mutex_lock(&rp->mu);
	last = --rp->refs == 0;
	pthread_mutex_unlock(&rp->mu);
	if (last)
		rp_destroy(rp);
}

PIER_EXPORT void pier_pool_frame_free(pier_pool_frame *f)
{
	struct pier_remote_pool *rp;
	bool send;
	pier_msg *m;

	if (!f)
		return;
	rp = f->rp;
	pthread_mutex_lock(&rp->mu);
	m = f->msg;
	f->msg = NULL;
	if (rp->answered) {
		rp->bufs[f->index].state = RB_FREE;
	} else {
		rp->bufs[f->index].state = RB_PENDING;
		rp->pend_buf[rp->npending] = f->index;
		rp->pend_seq[rp->npending] = f->seq;
		rp->npending++;
	}
	/* Batched, but never while the receiver waits for the owner, who
	 * may wait for these. */
	send = !rp->answered && (rp->waiting || rp->npending >= (rp->count + 1) / 2);
	pthread_mutex_unlock(&rp->mu);
	pier_msg_free(m);
	if (send)
		flush(rp);
	rp_unref(rp);
}

PIER_EXPORT void pier_remote_pool_free(pier_remote_pool *rp)
{
	bool answer;

	if (!rp)
		return;
	pthread_mutex_lock(&rp->mu);
	answer = !rp->answered;
	rp->answered = true;
	for (unsigned int k = 0; k < rp->npending; k++)
		rp->bufs[rp->pend_buf[k]].state = RB_FREE;
	rp->npending = 0;
	pthread_mutex_unlock(&rp->mu);
	/* Every buffer goes back with the answer. */
	if (answer)
		pier_received_request_send_response(rp->req, rp->service, NULL, 0, NULL, 0);
	peer_pools_del(rp->peer);
	rp_unref(rp);
}

/* --- receiving ----------------------------------------------------------- */

/* A FRAME: checked against the pool, then the application's, which
 * keeps m (its metadata) until it frees the frame.  Refused: m is the
 * caller's still. */
static int frame_take(struct pier_remote_pool *rp, pier_msg *m, pier_pool_frame **out)
{
	struct pier_pool_frame *fr;
	struct pool_frame f = { 0 };
	char why[POOL_WHY_SIZE];
	size_t len;
	const void *body = pier_msg_body(m, &len);
	int r = pool_frame_parse(body, len, &f, why);

	if (r < 0)
		return refuse(rp->req, rp->id, r, POOL_FRAME, &f, "%s", why);
	if (f.pool_id != rp->id)
		return refuse(rp->req, rp->id, -ENOENT, POOL_FRAME, &f,
			      "frame for unknown pool %u (this is %u)", f.pool_id, rp->id);
	if (f.buffer >= rp->count)
		return refuse(rp->req, rp->id, -ERANGE, POOL_FRAME, &f,
			      "frame in buffer %u of a pool of %u", f.buffer, rp->count);
	if (f.offset + f.length > rp->bufs[f.buffer].size)
		return refuse(rp->req, rp->id, -ERANGE, POOL_FRAME, &f,
			      "bytes %llu to %llu of buffer %u of %llu bytes",
			      (unsigned long long)f.offset, (unsigned long long)(f.offset + f.length),
			      f.buffer, (unsigned long long)rp->bufs[f.buffer].size);
	pthread_mutex_lock(&rp->mu);
	if (rp->bufs[f.buffer].state != RB_FREE) {
		pthread_mutex_unlock(&rp->mu);
		return refuse(rp->req, rp->id, -EBUSY, POOL_FRAME, &f,
			      "buffer %u is still this side's", f.buffer);
	}
	rp->bufs[f.buffer].state = RB_HELD;
	rp->refs++;
	fr = &rp->frames[f.buffer];
	*fr = (struct pier_pool_frame){
		.rp = rp,
		.msg = m,
		.data = rp->bufs[f.buffer].data + f.offset,
		.len = (size_t)f.length,
		.meta = f.meta_len ? f.meta : NULL,
		.meta_len = f.meta_len,
		.seq = f.seq,
		.index = f.buffer,
	};
	pthread_mutex_unlock(&rp->mu);
	*out = fr;
	return 0;
}

/* The owner is done with the pool: answered, and nothing more comes. */
static int closed(struct pier_remote_pool *rp, const pier_msg *m)
{
	char why[POOL_WHY_SIZE];
	size_t len;
	const void *body = pier_msg_body(m, &len);
	uint32_t id;
	bool answer;

	if (pool_close_parse(body, len, &id, why) < 0)
		return refuse(rp->req, rp->id, -EBADMSG, POOL_CLOSE, NULL, "%s", why);
	if (id != rp->id)
		return refuse(rp->req, rp->id, -ENOENT, POOL_CLOSE, NULL,
			      "close of unknown pool %u (this is %u)", id, rp->id);
	pthread_mutex_lock(&rp->mu);
	answer = !rp->answered;
	rp->answered = true;
	rp->npending = 0;
	pthread_mutex_unlock(&rp->mu);
	if (answer)
		pier_received_request_send_response(rp->req, rp->service, NULL, 0, NULL, 0);
	return -PIER_EDONE;
}

/* One message from the owner: a frame for the application, or why not. */
static int handle(struct pier_remote_pool *rp, pier_msg *m, pier_pool_frame **out)
{
	int32_t kind = pier_msg_header(m)->service_id;
	int r;

	if (pier_msg_fd_count(m) && kind != POOL_FDS) {
		r = refuse(rp->req, rp->id, -EBADMSG, (uint32_t)kind, NULL,
			   "fds with a message of kind %d", kind);
		pier_msg_free(m);
		return r;
	}
	switch (kind) {
	case POOL_FRAME:
		r = frame_take(rp, m, out);
		if (r == 0)
			return 0; /* the frame keeps m */
		break;
	case POOL_CLOSE:
		r = closed(rp, m);
		break;
	case POOL_ERROR:
		r = -EPROTO; /* never answered: errors would go back and forth */
		break;
	case POOL_FDS:
		r = refuse(rp->req, rp->id, -EBADMSG, POOL_FDS, NULL,
			   "fds after the pool was complete");
		break;
	default:
		r = refuse(rp->req, rp->id, -EBADMSG, (uint32_t)kind, NULL,
			   "unknown message kind %d from a pool's owner", kind);
		break;
	}
	pier_msg_free(m);
	return r;
}

PIER_EXPORT int pier_remote_pool_recv(pier_remote_pool *rp, pier_pool_frame **frame,
				      int timeout_ms)
{
	pier_msg *m = NULL;
	bool pending;
	int r = -EAGAIN;

	if (!rp || !frame || timeout_ms < -1)
		return -EINVAL;
	pthread_mutex_lock(&rp->mu);
	pending = rp->npending > 0;
	pthread_mutex_unlock(&rp->mu);
	/* What already arrived first: only a receive that finds nothing
	 * sends the releases. */
	if (pending || timeout_ms == 0)
		r = pier_received_request_recv_update(rp->req, &m, 0);
	if (r == -EAGAIN) {
		pthread_mutex_lock(&rp->mu);
		rp->waiting += timeout_ms != 0;
		pending = rp->npending > 0;
		pthread_mutex_unlock(&rp->mu);
		if (pending)
			flush(rp);
		if (timeout_ms != 0) {
			r = pier_received_request_recv_update(rp->req, &m, timeout_ms);
			pthread_mutex_lock(&rp->mu);
			rp->waiting--;
			pthread_mutex_unlock(&rp->mu);
		}
	}
	if (r < 0)
		return r;
	return handle(rp, m, frame);
}

PIER_EXPORT int pier_remote_pool_fd(pier_remote_pool *rp)
{
	return rp ? pier_received_request_fd(rp->req) : -EINVAL;
}

/* --- frames -------------------------------------------------------------- */

PIER_EXPORT const void *pier_pool_frame_data(const pier_pool_frame *f, size_t *len)
{
	if (len)
		*len = f ? f->len : 0;
	return f ? f->data : NULL;
}

PIER_EXPORT const void *pier_pool_frame_meta(const pier_pool_frame *f, size_t *len)
{
	if (len)
		*len = f ? f->meta_len : 0;
	return f ? f->meta : NULL;
}

PIER_EXPORT uint32_t pier_pool_frame_seq(const pier_pool_frame *f)
{
	return f ? f->seq : 0;
}

PIER_EXPORT unsigned int pier_pool_frame_index(const pier_pool_frame *f)
{
	return f ? f->index : 0;
}
