/* SPDX-License-Identifier: MIT */
/*
 * A broker on pier_server: workers register the service ids they serve,
 * clients send requests, and the broker relays each request to a worker
 * and everything of it both ways (updates, the response, their fds);
 * stream messages on a topic id go to every peer subscribed to it.  One
 * implementation, used by examples/broker and by `pier broker`.  See
 * examples/README.md, "The broker", for the protocol and its bounds.
 */
#ifndef PIER_EXAMPLE_BROKER_H
#define PIER_EXAMPLE_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include <pier.h>

/*
 * The broker's own service ids.  A control request's body is a list of
 * int32 ids, 4 bytes each, in the connection's byte order (the wire's:
 * little endian unless configured otherwise); its success response has an
 * empty body and the request's service id; anything wrong gets an error
 * response saying what.  Ids BROKER_RESERVED_LOW to -1 are the broker's
 * and the error responses': no worker may register them, and an update on
 * one of them is refused both ways (it ends its request), so that a
 * BROKER_CANCELLED update always comes from the broker.
 */
enum {
	BROKER_REGISTER = -2,    /* the sender serves these service ids */
	BROKER_UNREGISTER = -3,  /* ... no longer */
	BROKER_SUBSCRIBE = -4,   /* the sender gets stream messages of these topic ids */
	BROKER_UNSUBSCRIBE = -5, /* ... no longer */
	/* The service id of the requester update a worker gets when the
	 * request it serves ended at the broker before its response (the
	 * client disconnected, the broker stops, or something of the request
	 * could not be relayed); the body says why.  The worker may stop and
	 * answer at once: whatever it sends on that request is dropped. */
	BROKER_CANCELLED = -6,
	BROKER_RESERVED_LOW = BROKER_CANCELLED,
};

/* The bounds of a broker; 0 in any field: its default, as listed.  See
 * examples/README.md, "Bounds", for what they cost together. */
struct broker_limits {
	unsigned int workers;       /* threads of the server (4) */
	unsigned int max_peers;     /* peers connected at once (1024) */
	unsigned int max_requests;  /* a peer's requests in flight at the broker (64) */
	unsigned int max_forwarded; /* requests forwarded to one worker at once (1024) */
	unsigned int max_services;  /* service ids one peer may register (64) */
	unsigned int max_topics;    /* topic ids one peer may subscribe to (256) */
	size_t send_queue; /* bytes queued for one peer, unread: then copies are
			    * dropped and relays fail (4 MiB) */
	size_t send_fds;   /* fds queued for one peer or unread by it (64) */
	/* The most fds one message may carry through the broker (32, or
	 * send_fds if lower; at most send_fds, and 253, what Linux passes in
	 * one message): one with more is refused with an error that says so. */
	size_t msg_fds;
	/* The most fds the broker holds at once for what it passes on:
	 * copies of fds queued for or in flight to peers, and the two
	 * eventfds of each relay (0: derived from RLIMIT_NOFILE, see
	 * broker_new()).  Past it, copies and relays are refused with an
	 * error that says so. */
	size_t fd_budget;
};

/* The broker's counters (broker_stat()). */
enum broker_stat {
	BROKER_STAT_FORWARDED,  /* requests forwarded to a worker */
	BROKER_STAT_NO_WORKER,  /* requests refused: no worker could take them */
	BROKER_STAT_RELAYS,     /* forwarded requests not ended yet */
	BROKER_STAT_UPDATES,    /* updates relayed, both ways */
	BROKER_STAT_RESPONSES,  /* workers' responses relayed to their clients */
	BROKER_STAT_BROKEN,     /* relays ended with an error (a side gone or not reading) */
	BROKER_STAT_PUBLISHED,  /* stream messages received on any topic */
	BROKER_STAT_DELIVERED,  /* copies of them queued for subscribers */
	BROKER_STAT_DROPPED,    /* copies dropped: the subscriber's queue was full, or
				 * the fd budget */
	/* Messages refused for their fds: more than msg_fds, or no room in
	 * the fd budget (a request, an update, a copy each). */
	BROKER_STAT_FD_REFUSED,
	BROKER_STAT_FDS,        /* fds of the budget held now */
	BROKER_STAT_END_
};

typedef struct broker broker;

/*
 * *out: a new broker, owned (broker_free()), on a server of its own made
 * with cfg, listening nowhere yet.  cfg borrowed, and changed: the broker
 * sets on it the send timeout (0: the broker never waits for a peer), the
 * byte order order, and the limits of lim (NULL: the defaults); -EINVAL
 * for a msg_fds over send_fds or 253.
 *
 * It raises this process's RLIMIT_NOFILE soft limit to the hard one, and
 * derives the fd budget (unless lim sets one) from what is left once every
 * peer may hold its socket and the fds it sent (msg_fds queued, and one
 * message of up to 253 more): at most what the limits can ever use, at
 * least a quarter of the limit.  When the limits multiplied out do not fit
 * the fd limit, it says so through log (LOG_WARNING); log may be NULL.
 * log is also told of refusals for fds, at most once a second; it is
 * called from any thread, and log_data kept until broker_free().
 */
int broker_new(broker **out, pier_config *cfg, enum pier_byte_order order,
	       const struct broker_limits *lim, pier_log_fn *log, void *log_data);
/* The broker's server, borrowed (valid until broker_free()): listen on it
 * (pier_server_listen()), start, stop and wait for it.  The broker owns
 * its handlers and hooks. */
pier_server *broker_server(broker *b);
/* The limits b runs with, its defaults and derived budget filled in:
 * borrowed, valid until broker_free(). */
const struct broker_limits *broker_limits(broker *b);
/* b borrowed. */
uint64_t broker_stat(broker *b, enum broker_stat stat);
/* What b did, in one line without a newline, into buf (len bytes at most,
 * terminated).  Returns buf. */
char *broker_summary(broker *b, char *buf, size_t len);
/* SIGINT and SIGTERM stop b's server from now on (one broker per
 * process).  b borrowed: until broker_free(). */
void broker_stop_on_signals(broker *b);
/* b taken (NULL is fine): its server stopped, waited for and freed. */
void broker_free(broker *b);

/* Writes ids[0..n) as a control request's body into buf (4 * n bytes) in
 * byte order order.  Returns the body's length. */
size_t broker_encode_ids(void *buf, const int32_t *ids, size_t n, enum pier_byte_order order);
/* m's fds into fds (borrowed from m), the first max of them.  Returns how
 * many it wrote. */
size_t broker_msg_fds(const pier_msg *m, int *fds, size_t max);

#ifdef BROKER_TEST_HOOKS
/* For the tests: the allocations of the registration tables fail once
 * this many more have been made (-1: never). */
extern _Atomic int broker_test_allocs_left;
#endif

#endif
