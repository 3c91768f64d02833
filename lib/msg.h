/* SPDX-License-Identifier: MIT */
/*
 * Messages: a received frame as the application gets it (pier_msg), made by
 * whoever reads the socket and freed by whoever holds it last.
 */
#ifndef PIER_MSG_H
#define PIER_MSG_H

#include <stddef.h>

#include <pier.h>

struct latest;
struct req;

struct pier_msg {
	struct pier_msg *next; /* in a queue, or in a list being delivered */
	/* In a queue: what points to it (the queue's head, or the next of
	 * the message before), so that it can be taken out of the middle. */
	struct pier_msg **pprev;
	/* A request arriving on the peer's queue: its handle, which
	 * pier_peer_recv() hands over with the message. */
	struct req *req;
	/* A message of a latest-only stream on the peer's queue: the stream,
	 * and the next newer of its messages there (NULL: none). */
	struct latest *latest;
	struct pier_msg *latest_next;
	struct pier_header hdr;
	unsigned int nfds;
	int *fds; /* owned: closed with the message; -1 where taken */
	size_t len;
	/* The body, then (aligned) the fds. */
	_Alignas(max_align_t) unsigned char body[];
};

/* A message with room for len body bytes and nfds fds, or NULL. */
struct pier_msg *msg_new(size_t len, unsigned int nfds);
/* The message whose body this is (see the stream parser's allocator). */
struct pier_msg *msg_of_body(void *body);
/* Frees m and closes its fds; m may be NULL. */
void msg_free(struct pier_msg *m);

#endif
