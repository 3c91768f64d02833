/* SPDX-License-Identifier: MIT */
/*
 * Watches (pier_server_watch()): one-shot entries in the workers' epoll
 * set for the application's fds, such as a kept request's, so that a
 * request waiting for updates holds no worker.  An event carries the
 * watch's serial, not a pointer: the worker looks it up under s->mu, and
 * a watch cancelled meanwhile is not found.  So cancelling needs no
 * handshake with the workers, and each watch's function runs once (on its
 * event, or with -PIER_ESHUTDOWN when the server stops), or never once
 * cancelled.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "private.h"
#include "server-int.h"

/* Under s->mu: watch serial, taken off the map and the epoll set; NULL
 * when it is gone (cancelled, or taken by another). */
static struct watch *take_watch(struct pier_server *s, uint64_t serial)
{
	struct watch *w = idmap_get(&s->watches, (uint32_t)serial);

	if (!w || w->serial != serial)
		return NULL;
	idmap_del(&s->watches, (uint32_t)serial);
	epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	return w;
}

static void run_watch(struct watch *w, int status)
{
	pier_watch_fn *fn = w->fn;
	void *data = w->data;

	free(w);
	fn(data, status);
}

void on_watch(struct pier_server *s, uint64_t serial)
{
	struct watch *w;

	pthread_mutex_lock(&s->mu);
	w = take_watch(s, serial);
	pthread_mutex_unlock(&s->mu);
	if (w)
		run_watch(w, 0);
}

static void collect_watch(void *value, void *ctx)
{
	struct watch ***next = ctx;

	*(*next)++ = value;
}

void end_watches(struct pier_server *s)
{
	struct watch **all = NULL, **next = NULL;

	pthread_mutex_lock(&s->mu);
	s->watches_closed = true;
	if (s->watches.count)
		all = calloc(s->watches.count, sizeof(*all));
	if (all) {
		next = all;
		idmap_each(&s->watches, collect_watch, &next);
		for (struct watch **w = all; w < next; w++)
			take_watch(s, (*w)->serial);
	}
	pthread_mutex_unlock(&s->mu);
	/* (without memory for the list, the watches are left to
	 * server_destroy(), uncalled) */
	for (struct watch **w = all; w < next; w++)
		run_watch(*w, -PIER_ESHUTDOWN);
	free(all);
}

PIER_EXPORT int pier_server_watch(pier_server *s, int fd, pier_watch_fn *fn, void *userdata,
				  uint64_t *id)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };
	struct watch *w;
	int r = 0;

	if (!s || fd < 0 || !fn)
		return -EINVAL;
	w = malloc(sizeof(*w));
	if (!w)
		return -ENOMEM;
	*w = (struct watch){ 0, fd, fn, userdata };
	pthread_mutex_lock(&s->mu);
	if (s->watches_closed) {
		r = -PIER_ESHUTDOWN;
	} else {
		/* Serials never repeat; their low 32 bits key the map. */
		do
			w->serial = ++s->watch_serial;
		while (idmap_get(&s->watches, (uint32_t)w->serial));
		r = idmap_put(&s->watches, (uint32_t)w->serial, w);
	}
	ev.data.u64 = WATCH_TAG(w->serial);
	if (r == 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		r = -errno;
		idmap_del(&s->watches, (uint32_t)w->serial);
	}
	if (r == 0 && id)
		*id = w->serial;
	pthread_mutex_unlock(&s->mu);
	if (r < 0)
		free(w);
	return r;
}

PIER_EXPORT int pier_server_unwatch(pier_server *s, uint64_t id)
{
	struct watch *w;

	if (!s || id == 0)
		return -EINVAL;
	pthread_mutex_lock(&s->mu);
	w = take_watch(s, id);
	pthread_mutex_unlock(&s->mu);
	free(w);
	return w ? 0 : -ENOENT;
}

static void free_watch(void *value, void *ctx)
{
	free(value);
}

/* A server never started (or whose stop could not list them): its
 * watches go without a call. */
void end_watches_uncalled(struct pier_server *s)
{
	idmap_each(&s->watches, free_watch, NULL);
	idmap_fini(&s->watches);
}
