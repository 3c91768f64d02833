/* SPDX-License-Identifier: MIT */
/*
 * Buffer pools, the owner's side: memory made (memfds) or brought (dmabufs),
 * shared with peers over requests kept open for as long as each share lasts
 * (doc/POOL-PROTOCOL.md), buffers handed out to the application, published
 * to peers, and taken back as the peers release them.  Built on the public
 * request calls only: the core knows nothing of pools.
 *
 * One lock (the pool's mu) guards the pool and its shares; it is never held
 * while sending or waiting on a connection.  A thread that needs a buffer
 * and finds none reads the releases itself: while the buffers out are with
 * one peer, it waits on that share's request, reading the socket with no
 * thread hop, as any libpier receive does; while they are with several, it
 * polls their requests' fds.  Other threads that need a buffer meanwhile
 * wait on the pool's condition variable.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "clock.h"
#include "map.h"
#include "pool-int.h"
#include "pool-wire.h"
#include "private.h"
#include "wire.h"

static atomic_uint next_pool_id = 1;

/* --- making pools -------------------------------------------------------- */

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

static struct pier_pool *pool_alloc(unsigned int count, unsigned int nfds)
{
	struct pier_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->fds = malloc(nfds * sizeof(*p->fds));
	p->bufs = calloc(count, sizeof(*p->bufs));
	p->free = malloc(count * sizeof(*p->free));
	if (!p->fds || !p->bufs || !p->free) {
		free(p->fds);
		free(p->bufs);
		free(p->free);
		free(p);
		return NULL;
	}
	for (unsigned int i = 0; i < nfds; i++)
		p->fds[i] = -1;
	pthread_mutex_init(&p->mu, NULL);
	cond_init_monotonic(&p->cond);
	p->refs = 1;
	p->id = atomic_fetch_add(&next_pool_id, 1);
	p->count = count;
	p->nfds = nfds;
	p->wake_fd = -1;
	p->epoll_fd = -1;
	p->free_fd = -1;
	/* Every buffer free, the first on top. */
	for (unsigned int i = 0; i < count; i++)
		p->free[i] = count - 1 - i;
	p->nfree = count;
	return p;
}

/* A memfd of size bytes that nobody can shrink or grow, mapped for the
 * owner to write. */
static int memfd_mapped(size_t size, int *fd, struct owner_map *map)
{
	int f = memfd_create("pier-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING), e;
	void *p;

	if (f < 0)
		return -errno;
	if (ftruncate(f, (off_t)size) < 0 ||
	    fcntl(f, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (p == MAP_FAILED)
		goto fail;
	*fd = f;
	*map = (struct owner_map){ p, size };
	return 0;
fail:
	e = -errno;
	close(f);
	return e;
}

PIER_EXPORT int pier_pool_new(pier_pool **out, size_t size, unsigned int count,
			      unsigned int flags)
{
	bool per_buffer = flags & PIER_POOL_FD_PER_BUFFER;
	size_t page = page_size(), stride, total;
	unsigned int nfds;
	struct pier_pool *p;
	int r = 0;

	if (!out || size == 0 || count == 0 || (flags & ~(unsigned int)PIER_POOL_FD_PER_BUFFER))
		return -EINVAL;
	/* Each buffer starts on a page, as devices and caches like it. */
	if (count > PIER_POOL_MAX_BUFFERS || size > PIER_POOL_MAX_BYTES / count ||
	    (stride = (size + page - 1) & ~(page - 1)) > PIER_POOL_MAX_BYTES / count)
		return -E2BIG;
	total = stride * count;
	nfds = per_buffer ? count : 1;
	p = pool_alloc(count, nfds);
	if (p && !(p->maps = calloc(nfds, sizeof(*p->maps)))) {
		pool_destroy(p);
		p = NULL;
	}
	if (!p)
		return -ENOMEM;
	for (unsigned int i = 0; i < nfds && r == 0; i++)
		r = memfd_mapped(per_buffer ? stride : total, &p->fds[i], &p->maps[i]);
	if (r < 0) {
		pool_destroy(p);
		return r;
	}
	for (unsigned int i = 0; i < count; i++) {
		struct pool_buf *b = &p->bufs[i];

		b->fd = per_buffer ? i : 0;
		b->offset = per_buffer ? 0 : (uint64_t)i * stride;
		b->size = size;
		b->data = (unsigned char *)p->maps[b->fd].base + b->offset;
	}
	*out = p;
	return 0;
}

PIER_EXPORT int pier_pool_new_from_fds(pier_pool **out, const int *fds, const size_t *sizes,
				       unsigned int count, unsigned int flags)
{
	struct pier_pool *p;
	uint64_t total = 0;
	int r;

	if (!out || !fds || !sizes || count == 0 || flags)
		return -EINVAL;
	if (count > PIER_POOL_MAX_BUFFERS)
		return -E2BIG;
	for (unsigned int i = 0; i < count; i++) {
		if (fds[i] < 0 || sizes[i] == 0)
			return -EINVAL;
		if ((total += sizes[i]) > PIER_POOL_MAX_BYTES)
			return -E2BIG;
		/* What a receiver will check: refused here, not there. */
		r = map_check(fds[i], 0, sizes[i], PIER_MAP_DMABUF, NULL);
		if (r < 0)
			return r;
	}
	p = pool_alloc(count, count);
	if (!p)
		return -ENOMEM;
	for (unsigned int i = 0; i < count; i++) {
		p->fds[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
		if (p->fds[i] < 0) {
			r = -errno;
			pool_destroy(p);
			return r;
		}
		p->bufs[i] = (struct pool_buf){ .size = sizes[i], .fd = i };
	}
	*out = p;
	return 0;
}

PIER_EXPORT void pier_pool_free(pier_pool *pool)
{
	bool last;

	if (!pool)
		return;
	pthread_mutex_lock(&pool->mu);
	last = pool_unref_locked(pool);
	pthread_mutex_unlock(&pool->mu);
	if (last)
		pool_destroy(pool);
}

/* --- shares -------------------------------------------------------------- */

/* Sends the pool's fds that did not fit in the request, in as many
 * updates as it takes. */
static int send_more_fds(struct pier_pool *p, pier_sent_request *req, size_t sent, size_t per)
{
	uint8_t body[POOL_FDS_SIZE];
	int r = 0;

	while (r == 0 && sent < p->nfds) {
		size_t n = p->nfds - sent < per ? p->nfds - sent : per;
		size_t len = pool_fds_encode(body, p->id, (uint32_t)sent);

		r = pier_sent_request_send_update(req, POOL_FDS, body, len, p->fds + sent, n);
		sent += n;
	}
	return r;
}

static void send_close(struct pier_pool *p, pier_sent_request *req)
{
	uint8_t body[POOL_CLOSE_SIZE];
	size_t len = pool_close_encode(body, p->id);

	pier_sent_request_send_update(req, POOL_CLOSE, body, len, NULL, 0);
}

/* The request that shares p, sent: its geometry, and its fds (as many in
 * the request as the connection takes per message, the rest after). */
static int share_send(struct pier_pool *p, pier_writer *w, int32_t service_id,
		      pier_sent_request **req)
{
	size_t per = pier_writer_max_fds(w), len;
	struct pool_entry *entries = malloc(p->count * sizeof(*entries));
	uint8_t *body = malloc(POOL_SHARE_HEAD + (size_t)p->count * POOL_ENTRY_SIZE);
	int r = -ENOMEM;

	if (per > WIRE_MAX_FDS)
		per = WIRE_MAX_FDS;
	if (per == 0)
		r = -PIER_ENOFDS;
	if (per == 0 || !entries || !body)
		goto out;
	for (unsigned int i = 0; i < p->count; i++)
		entries[i] = (struct pool_entry){ p->bufs[i].fd, p->bufs[i].offset, p->bufs[i].size };
	len = pool_share_encode(body, p->id, p->count, p->nfds, entries);
	r = pier_writer_send_request(w, service_id, body, len, p->fds,
				     p->nfds < per ? p->nfds : per, req);
	if (r == 0 && (r = send_more_fds(p, *req, per, per)) < 0) {
		send_close(p, *req);
		pier_sent_request_free(*req);
	}
out:
	free(entries);
	free(body);
	return r;
}

PIER_EXPORT int pier_pool_share(pier_pool *pool, pier_writer *w, int32_t service_id,
				pier_shared_pool **out)
{
	struct pier_shared_pool *s;
	int r;

	if (!pool || !w || !out)
		return -EINVAL;
	s = calloc(1, sizeof(*s) + pool->count * sizeof(s->b[0]));
	if (!s)
		return -ENOMEM;
	r = share_send(pool, w, service_id, &s->req);
	if (r < 0) {
		free(s);
		return r;
	}
	s->pool = pool;
	s->users = 1; /* the application's handle */
	s->poll_fd = -1;
	pthread_mutex_lock(&pool->mu);
	pool->refs++;
	s->next = pool->shares;
	pool->shares = s;
	/* Shared, whatever this says: acquire() reads its releases all
	 * the same. */
	if (pool->epoll_fd >= 0)
		share_poll_locked(pool, s);
	pthread_mutex_unlock(&pool->mu);
	*out = s;
	return 0;
}

PIER_EXPORT void pier_shared_pool_free(pier_shared_pool *share)
{
	struct pier_shared_pool *dead = NULL;
	struct pier_pool *p;
	bool open;

	if (!share)
		return;
	p = share->pool;
	pthread_mutex_lock(&p->mu);
	open = !share->error;
	share->freed = true;
	share_end_locked(p, share, -PIER_ESHUTDOWN);
	pthread_mutex_unlock(&p->mu);
	/* The application's handle still counts: share stays meanwhile. */
	if (open)
		send_close(p, share->req);
	pthread_mutex_lock(&p->mu);
	share_put_locked(p, share, &dead);
	pthread_mutex_unlock(&p->mu);
	pool_bury(dead);
}

/* --- acquiring ----------------------------------------------------------- */

/* Under mu: whether a thread looking for a buffer reads s: while it holds
 * buffers; with pier_pool_fd() made, whenever it lasts, so that whatever
 * made that fd readable is read. */
static bool share_watched(const struct pier_pool *p, const struct pier_shared_pool *s)
{
	return !s->error && (s->held || p->epoll_fd >= 0);
}

/* Under mu, released meanwhile: waits on the fds of the n shares watched
 * (and wake_fd, which a dropped buffer writes), then takes what they
 * have.  Their connections are read by their loops from
 * then on (a pollable fd asks for that): one thread hop more per message.
 * 0, -ETIMEDOUT, or why it could not wait. */
static int poll_locked(struct pier_pool *p, unsigned int n, int ms,
		       struct pier_shared_pool **dead)
{
	struct pier_shared_pool **held = calloc(n, sizeof(*held));
	struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));
	unsigned int k = 0;
	int r = -ENOMEM;

	if (p->wake_fd < 0)
		p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!held || !pfd || p->wake_fd < 0)
		goto out;
	for (struct pier_shared_pool *s = p->shares; s && k < n; s = s->next) {
		if (!share_watched(p, s))
			continue;
		s->users++;
		held[k] = s;
		pfd[k] = (struct pollfd){ pier_sent_request_fd(s->req), POLLIN, 0 };
		k++;
	}
	pfd[k] = (struct pollfd){ p->wake_fd, POLLIN, 0 };
	p->polling = true;
	pthread_mutex_unlock(&p->mu);
	r = poll(pfd, k + 1, ms);
	pthread_mutex_lock(&p->mu);
	p->polling = false;
	r = r > 0 || (r < 0 && errno == EINTR) ? 0 : r == 0 ? -ETIMEDOUT : -errno;
	if (pfd[k].revents) {
		uint64_t v;
		ssize_t got = read(p->wake_fd, &v, sizeof(v));

		(void)got;
	}
	for (unsigned int i = 0; i < k; i++) {
		share_drain_locked(p, held[i]);
		share_put_locked(p, held[i], dead);
	}
out:
	free(held);
	free(pfd);
	return r;
}

/* Under mu: one message, waiting up to ms, from the one share watched,
 * or (ms 0) from the first of them that has one. */
static int take_locked(struct pier_pool *p, int ms, struct pier_shared_pool **dead)
{
	struct pier_shared_pool *s, *next;
	int r = -EAGAIN;

	for (s = p->shares; s && r == -EAGAIN; s = next) {
		if (!share_watched(p, s)) {
			next = s->next;
			continue;
		}
		s->users++;
		r = share_take_locked(p, s, ms);
		next = s->next; /* valid: s is still linked */
		share_put_locked(p, s, dead);
	}
	/* A share that ended, or a message read: look again. */
	return r == -EAGAIN || r == -ETIMEDOUT ? r : 0;
}

/* Under mu: waits once for something that may free a buffer.  0 to look
 * again, or -EAGAIN (timeout_ms 0), -ETIMEDOUT, or why it cannot wait. */
static int wait_locked(struct pier_pool *p, int timeout_ms, const struct timespec *deadline,
		       struct pier_shared_pool **dead)
{
	unsigned int n = 0;
	int ms = timeout_ms <= 0 ? timeout_ms : ms_until(deadline), r;

	if (timeout_ms > 0 && ms == 0)
		return -ETIMEDOUT;
	for (struct pier_shared_pool *s = p->shares; s; s = s->next)
		n += share_watched(p, s);
	if (n == 0 || p->waiting) {
		/* Nothing to read, or another thread reads: a drop, a share's
		 * end or that thread says when a buffer comes free. */
		if (timeout_ms == 0)
			return -EAGAIN;
		r = timeout_ms < 0 ? pthread_cond_wait(&p->cond, &p->mu)
				   : pthread_cond_timedwait(&p->cond, &p->mu, deadline);
		return r == ETIMEDOUT ? -ETIMEDOUT : 0;
	}
	p->waiting = true;
	if (n == 1 || timeout_ms == 0)
		r = take_locked(p, ms, dead);
	else
		r = poll_locked(p, n, ms, dead);
	p->waiting = false;
	pthread_cond_broadcast(&p->cond);
	return r;
}

PIER_EXPORT int pier_pool_acquire(pier_pool *pool, void **data, size_t *size, int timeout_ms)
{
	struct pier_shared_pool *dead = NULL;
	struct timespec deadline;
	unsigned int i;
	int r = 0;

	if (!pool || timeout_ms < -1)
		return -EINVAL;
	if (timeout_ms > 0)
		deadline = deadline_after(timeout_ms);
	pthread_mutex_lock(&pool->mu);
	while (!pool->nfree && (r = wait_locked(pool, timeout_ms, &deadline, &dead)) == 0)
		;
	if (pool->nfree) {
		i = pool->free[--pool->nfree];
		pool_sync_free_fd_locked(pool);
		pool->bufs[i].app = true;
		if (data)
			*data = pool->bufs[i].data;
		if (size)
			*size = pool->bufs[i].size;
		r = (int)i;
	}
	pthread_mutex_unlock(&pool->mu);
	pool_bury(dead);
	return r;
}

PIER_EXPORT int pier_pool_drop(pier_pool *pool, unsigned int index)
{
	int r = 0;

	if (!pool || index >= pool->count)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	if (!pool->bufs[index].app) {
		r = -EPERM;
	} else {
		pool->bufs[index].app = false;
		pool_buf_maybe_free_locked(pool, index);
	}
	pthread_mutex_unlock(&pool->mu);
	return r;
}

/* Under mu: the epoll set, made with every share's request in it. */
static int pool_fd_locked(struct pier_pool *p)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int r = 0;

	if (p->epoll_fd >= 0)
		return p->epoll_fd;
	p->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	p->free_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->epoll_fd < 0 || p->free_fd < 0 ||
	    epoll_ctl(p->epoll_fd, EPOLL_CTL_ADD, p->free_fd, &ev) < 0)
		r = -errno;
	for (struct pier_shared_pool *s = p->shares; s && r == 0; s = s->next)
		if (!s->error)
			r = share_poll_locked(p, s);
	if (r < 0) {
		if (p->epoll_fd >= 0)
			close(p->epoll_fd);
		if (p->free_fd >= 0)
			close(p->free_fd);
		p->epoll_fd = p->free_fd = -1;
		for (struct pier_shared_pool *s = p->shares; s; s = s->next)
			s->poll_fd = -1;
		return r;
	}
	p->free_readable = false;
	pool_sync_free_fd_locked(p);
	return p->epoll_fd;
}

PIER_EXPORT int pier_pool_fd(pier_pool *pool)
{
	int r;

	if (!pool)
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	r = pool_fd_locked(pool);
	pthread_mutex_unlock(&pool->mu);
	return r;
}

/* --- publishing ---------------------------------------------------------- */

/* Under mu: whether buffer i may go to s with these bytes. */
static int publish_check_locked(struct pier_pool *p, struct pier_shared_pool *s, unsigned int i,
				size_t offset, size_t length)
{
	size_t end;

	if (!p->bufs[i].app)
		return -EPERM;
	if (s->error)
		return s->error;
	if (s->b[i].held)
		return -EBUSY;
	if (__builtin_add_overflow(offset, length, &end) || end > p->bufs[i].size)
		return -ERANGE;
	return 0;
}

PIER_EXPORT int pier_pool_publish(pier_shared_pool *share, unsigned int index, size_t offset,
				  size_t length, const void *meta, size_t meta_len,
				  unsigned int flags)
{
	struct pier_shared_pool *dead = NULL;
	uint8_t body[POOL_FRAME_MAX];
	struct pool_frame f;
	struct pier_pool *p;
	struct share_buf *sb;
	size_t len;
	int r;

	if (!share || length == 0 || meta_len > PIER_POOL_MAX_META || (meta_len && !meta) ||
	    (flags & ~(unsigned int)PIER_POOL_KEEP) || index >= share->pool->count)
		return -EINVAL;
	p = share->pool;
	sb = &share->b[index];
	pthread_mutex_lock(&p->mu);
	r = publish_check_locked(p, share, index, offset, length);
	if (r < 0) {
		pthread_mutex_unlock(&p->mu);
		return r;
	}
	/* The share holds it from now, the application until it is sent:
	 * nothing else can take it meanwhile. */
	f = (struct pool_frame){ p->id, index, share->next_seq++, (uint32_t)meta_len, offset,
				 length, meta };
	*sb = (struct share_buf){ f.seq, true, true };
	share->held++;
	p->bufs[index].holders++;
	share->users++;
	pthread_mutex_unlock(&p->mu);

	len = pool_frame_encode(body, &f);
	r = pier_sent_request_send_update(share->req, POOL_FRAME, body, len, NULL, 0);

	pthread_mutex_lock(&p->mu);
	if (r == 0 && !(flags & PIER_POOL_KEEP)) {
		p->bufs[index].app = false;
		pool_buf_maybe_free_locked(p, index); /* if the share ended meanwhile */
	} else if (r < 0 && sb->held && sb->seq == f.seq) {
		share_unhold_locked(p, share, index);
	}
	if (r == -PIER_EDONE) {
		/* The receiver answered: say why it let go (its refusal). */
		share_drain_locked(p, share);
		r = share->error ? share->error : r;
	}
	share_put_locked(p, share, &dead);
	pthread_mutex_unlock(&p->mu);
	pool_bury(dead);
	return r;
}
