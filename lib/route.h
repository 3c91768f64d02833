/* SPDX-License-Identifier: MIT */
/*
 * Peers' routing: the layer above the connection.  A peer (struct
 * pier_peer) is a connection plus what routing keeps: the tables of open
 * requests both ways, the queue for the read half, and the handle counts.
 * Incoming messages are routed to the queue they belong to (a new request or
 * stream message to the peer's, an update or response to its request's);
 * requests are created, closed and freed here, and nowhere else.  All of it
 * is under the connection's mu (p->conn.mu).
 */
#ifndef PIER_ROUTE_H
#define PIER_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#include <pier.h>

#include "conn.h"
#include "idmap.h"
#include "queue.h"

struct req;

/* The handles the application holds are these small structs inside the
 * objects they name, so that no handle is a cast. */
struct pier_writer {
	struct pier_peer *peer;
};
struct pier_sent_request {
	struct req *req;
};
struct pier_received_request {
	struct req *req;
};
struct pier_sent_request_writer {
	struct req *req;
};
struct pier_received_request_writer {
	struct req *req;
};

/* A latest-only stream (pier_config_set_stream_latest()): its messages on
 * the peer's queue, oldest first, chained by their latest_next.  They leave
 * the queue oldest first too, taken or dropped, so the oldest is always
 * the one to go: dropping costs no search. */
struct latest {
	int32_t service;
	unsigned int keep;
	unsigned int count; /* its messages on the queue, keep at most */
	struct pier_msg *oldest, **newest_next;
};

struct pier_peer {
	struct conn conn;
	struct pier_writer writer;
	/* Under conn.mu. */
	bool reader; /* the read half (the pier_peer handle) is alive */
	unsigned int writer_refs;
	struct idmap sent, received; /* open requests by id */
	uint32_t next_id;
	struct msgq in; /* requests and stream messages for the read half */
	/* Told, under conn.mu, each time a received request closes (it was
	 * answered, or released unanswered): a server (server.c) counts its
	 * requests in flight so.  NULL for other peers. */
	void (*request_closed)(struct pier_peer *p);
	void *owner; /* the server's own record of the peer */
	/* The ping sent and not answered yet (in sent, holding no handle),
	 * or NULL. */
	struct req *ping;
	/* The configuration's latest-only streams (nlatest of them; owned,
	 * NULL when none).  Set when the peer is made. */
	struct latest *latest;
	unsigned int nlatest;
	/* Requests freed, kept for the next ones (owned; at most
	 * SPARE_REQS), linked by next_spare. */
	struct req *spare;
	unsigned int nspare;
};

/* A request, either way.  It lives while it is open (in its table) or has a
 * handle; its queue (q) holds its updates and response, and q.finished says
 * that its response was received (a sent request) or sent (a received
 * one). */
struct req {
	struct pier_peer *peer;
	uint32_t id;
	int32_t service;
	bool sent;       /* this side sent it */
	bool in_table;   /* open: in peer->sent or peer->received */
	bool responding; /* a response is being sent */
	bool reader;     /* the read half (the request handle) is alive */
	unsigned int writers; /* write-half references */
	struct req *next_spare; /* on its peer's spare list, once freed */
	struct msgq q;
	union {
		struct pier_sent_request s;
		struct pier_received_request r;
	} h;
	union {
		struct pier_sent_request_writer s;
		struct pier_received_request_writer r;
	} w;
};

/* A peer over fd (taken on success only), with tls its TLS session (taken
 * on success only, or NULL), on loop (its reference taken on success
 * only).  It has its read half's handle; conn_start() starts it.  0 or
 * -ENOMEM. */
int route_peer_new(struct pier_peer **out, int fd, const struct transport *t,
		   const struct pier_config *cfg, struct pier_loop *loop, struct tls *tls);

/* The read half's queue tells fn(data), under mu, each time it becomes
 * ready (see msgq_notify_locked()); NULL stops it.  For a server, which
 * holds the read half and receives with a timeout of 0 only. */
void route_in_notify(struct pier_peer *p, void (*fn)(void *data), void *data);
/* Whether a receive on the read half would not block. */
bool route_in_ready(struct pier_peer *p);

/* Under mu: frees every message queued on q (its handle is gone); a
 * request arriving in one is released (answered with an error). */
void route_drain_locked(struct pier_peer *p, struct msgq *q);
/* Under mu: takes the first message of the peer's queue (p->in), or NULL. */
struct pier_msg *route_take_locked(struct pier_peer *p);

/* Under mu: a new sent request with the next free id, open in its table,
 * with its read half: 0, -PIER_EREQLIMIT or -ENOMEM. */
int req_new_sent_locked(struct pier_peer *p, int32_t service, struct req **out);
/* Under mu: takes r out of its table (it is answered, or was never sent). */
void req_close_locked(struct req *r);
/* Under mu: drops a handle of r (its read half, or a write-half
 * reference).  The last one answers an unanswered received request with
 * an error, and frees r unless it stays open waiting for a response nobody
 * will read.  Sets *conn_last when that was the connection's last handle
 * (NULL: the caller holds another). */
void req_release_locked(struct req *r, bool reader, bool *conn_last);
/* req_release_locked(), taking mu, and releasing the connection after its
 * last handle. */
void req_release(struct req *r, bool reader);
/* Answers the received request r with an error response (text why) that
 * the library sends on its own, as it refuses requests over the
 * open-request limit: it never waits for room in the send queue, and
 * counts among the automatic answers that pause reading while they fill
 * it (conn_answer_locked()).  For refusals made above (a server's), so
 * that a remote that never reads cannot hold the refusing thread.  0,
 * -PIER_EDONE when r is answered (or being answered) already, or why the
 * connection ended. */
int req_refuse(struct req *r, const char *why);

#endif
