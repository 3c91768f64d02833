/* SPDX-License-Identifier: MIT */
/*
 * Buffer pools, the owner's side, between its two files: pool.c (making
 * pools, sharing them, acquiring and publishing buffers) calls
 * pool-share.c (a share's lifetime, what its peer sends back, and freeing
 * what the pool holds), never the other way.
 */
#ifndef PIER_POOL_INT_H
#define PIER_POOL_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pier.h>

struct pool_buf {
	unsigned char *data; /* in the owner's mapping, or NULL */
	size_t size;
	uint64_t offset;
	uint32_t fd;          /* which of the pool's fds */
	unsigned int holders; /* shares that hold it */
	bool app;             /* the application's: acquired, not yet given away */
};

/* A buffer as one share sees it. */
struct share_buf {
	uint32_t seq;   /* of its last publish to this share */
	bool held;      /* published, not released yet */
	bool published; /* ever: a second release of seq is told apart */
};

struct pier_shared_pool {
	struct pier_pool *pool;
	struct pier_shared_pool *next; /* in pool->shares */
	pier_sent_request *req;       /* owned */
	uint32_t next_seq;
	unsigned int held;  /* buffers it holds */
	unsigned int users; /* threads using req with mu released, and the
			     * application's handle */
	int error;          /* why the share ended; 0 while it lasts */
	int refusal;        /* the receiver's error about the share itself */
	int poll_fd;        /* its request's fd, in the pool's epoll set, or -1 */
	bool freed;         /* by the application */
	struct share_buf b[];
};

struct owner_map {
	void *base;
	size_t len;
};

struct pier_pool {
	pthread_mutex_t mu;
	pthread_cond_t cond; /* a buffer came free, or the waiter left */
	unsigned int refs;   /* the application's, and one per share */
	uint32_t id;
	unsigned int count, nfds;
	int *fds;              /* owned */
	struct owner_map *maps; /* per fd; NULL for brought fds */
	struct pool_buf *bufs;
	unsigned int *free, nfree; /* a stack: the last freed goes first */
	struct pier_shared_pool *shares;
	bool waiting; /* a thread reads the peers' releases */
	bool polling; /* ... polling, woken through wake_fd */
	int wake_fd;  /* -1 until a thread first polls */
	/* pier_pool_fd(): an epoll set of free_fd, readable while a buffer
	 * is free, and of the shares' requests' fds; -1 until asked. */
	int epoll_fd, free_fd;
	bool free_readable;
};

/* --- pool-share.c ------------------------------------------------------- */

/* Frees what p holds: mappings, fds, memory.  Once no reference is left. */
void pool_destroy(struct pier_pool *p);
/* Under mu: drops a reference; true when it was the last (the caller
 * destroys the pool once it released mu). */
bool pool_unref_locked(struct pier_pool *p);
/* Under mu: keeps free_fd readable exactly while a buffer is free. */
void pool_sync_free_fd_locked(struct pier_pool *p);
/* Under mu: buffer i is free once neither the application nor a share
 * holds it; then it goes on the free stack, and waiters are woken. */
void pool_buf_maybe_free_locked(struct pier_pool *p, unsigned int i);

/* Under mu: puts s's request in the pool's epoll set. */
int share_poll_locked(struct pier_pool *p, struct pier_shared_pool *s);
/* Under mu: s no longer holds buffer i. */
void share_unhold_locked(struct pier_pool *p, struct pier_shared_pool *s, unsigned int i);
/* Under mu: the share ended (err says why): every buffer it held comes
 * back. */
void share_end_locked(struct pier_pool *p, struct pier_shared_pool *s, int err);
/* Under mu, released meanwhile: one message of s (whose users the caller
 * counts), taken within timeout_ms, handled, and its answer (if any) sent.
 * 0, or why none came: -EAGAIN, -ETIMEDOUT, or the share's end. */
int share_take_locked(struct pier_pool *p, struct pier_shared_pool *s, int timeout_ms);
/* Under mu: every message s has for the taking now. */
void share_drain_locked(struct pier_pool *p, struct pier_shared_pool *s);
/* Under mu: a thread is done with s (users counts it); the last one, once
 * the application freed s too, unlinks it and puts it on *dead, which the
 * caller passes to pool_bury() once it released mu.  Shares are destroyed
 * only so, never while a loop over p->shares may still need them. */
void share_put_locked(struct pier_pool *p, struct pier_shared_pool *s,
		      struct pier_shared_pool **dead);
/* Destroys the shares share_put_locked() unlinked, mu released. */
void pool_bury(struct pier_shared_pool *dead);

#endif
