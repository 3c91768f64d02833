/* SPDX-License-Identifier: MIT */
/*
 * Connections: one socket, its link (how frames travel on it), the read
 * role, the send queue, and closing.  The layer above (the peer's routing,
 * route.c) embeds a struct conn, installs its conn_ops, and is called back
 * through them only: the connection names no function of a higher layer.
 * doc/ARCHITECTURE.md draws the states and who reads when.
 *
 * Threads and locks.  The loop thread owns the connection's operations in
 * flight, its timers and its lifecycle (it alone changes c->state).  Reading
 * belongs to whoever holds the read role (c->rd): an application thread that
 * waits for a message reads for itself when nobody else reads, so a receive
 * costs no hop through the loop; the loop reads only when something must be
 * read with no thread waiting.  Two locks:
 *  - mu: the state, the error, the read role and its waiters, the counts of
 *    what waits for the application, the handle count, and everything the
 *    layer above keeps (its tables and queues);
 *  - out_mu: the send queue, the write path's owner (c->wr), fds in flight.
 * Lock order: mu before out_mu.  Callbacks up (conn_ops) are made with no
 * lock held, but for ended_locked (under mu).  conn_send() takes out_mu
 * only, so the layer above may send while holding mu (an automatic error
 * response), but must not wait for room then (control sends never wait).
 *
 * Lifetime.  c->handles counts what the application holds; when it reaches
 * zero (conn_release_last()), the loop closes the connection (flushing what
 * is queued, PIER_LINGER_MS at most), and once the fd is closed and no
 * operation is in flight it calls ops->destroy, which frees the memory the
 * connection lives in.
 */
#ifndef PIER_CONN_H
#define PIER_CONN_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <pier.h>

#include "conf.h"
#include "link.h"
#include "loop.h"

/* How long a closing connection may take to flush what is queued. */
#define PIER_LINGER_MS 5000

struct conn;
struct pier_msg;
struct transport;
struct tls;

/* The connection's lifecycle; the loop thread moves it, under mu.
 *
 *   HANDSHAKING -> OPEN -> CLOSING -> SHUT -> ENDED -> CLOSED
 *        |           |        |        ^        ^
 *        +-----------+--------+--------+--------+  (closing, or ending, at any point)
 */
enum conn_state {
	CONN_HANDSHAKING, /* TLS: the handshake is under way; the loop does
			   * all the connection's I/O */
	CONN_OPEN,
	CONN_CLOSING, /* closing was asked: what is queued goes out; the loop
		       * reads meanwhile, whoever waits or not */
	CONN_SHUT,    /* everything went and the socket's write side is shut:
		       * reading until the remote ends too */
	CONN_ENDED,   /* c->error says why; operations are being cancelled
		       * and threads leave the socket */
	CONN_CLOSED,  /* the fd is closed: freed once no handle is left */
};

/* Who reads the socket (under mu). */
enum conn_rd {
	RD_NONE,    /* nobody: the next thread to wait reads */
	RD_LOOP,    /* the loop, in the background */
	RD_APP,     /* an application thread waiting for a message */
	RD_LEAVING, /* that thread, which the ending connection woke: the
		     * loop waits for it to leave the socket */
	RD_GONE,    /* the connection is closing its fd: nobody, ever */
};

/* Why reading pauses (under mu): one reason at a time.  Leaving one, the
 * connection looks at the other, and pauses for it if it holds: a reason
 * that arose meanwhile is never lost.  conn-read.c moves it. */
enum conn_pause {
	PAUSE_NONE, /* reading goes on */
	PAUSE_RECV, /* what waits for the application is over max_recv_queued
		     * bytes or max_recv_fds fds: until it took half of it */
	PAUSE_SEND, /* automatic answers hold the send queue over its limit
		     * (see CONN_ANSWERS_PAST_LIMIT): until the remote read
		     * enough of them */
};

/* Who writes the socket (under out_mu). */
enum conn_wr {
	WR_IDLE,    /* nobody: a sender finding nothing queued writes itself */
	WR_HELD,    /* small frames sent back to back wait in the queue to
		     * share one write: a sender writes them all once enough
		     * wait, a thread about to wait for a message first, the
		     * loop's timer once the oldest waited its time */
	WR_LOOP,    /* the loop owns the queue: it writes, or will */
	WR_DIRECT,  /* a sender writes its large frame from its own buffer,
		     * out_mu released; others queue behind it */
	WR_LEAVING, /* that sender, whom the ending connection woke: the loop
		     * waits for it to leave the socket */
};

/* What the layer above is told. */
struct conn_ops {
	/* Messages read, in order (m and those chained on its next); takes
	 * them.  Called by whoever reads, with no lock held.  Returns
	 * c->pause == PAUSE_NONE as it was once they were routed (under mu):
	 * whether reading may go on. */
	bool (*deliver)(struct conn *c, struct pier_msg *m);
	/* Under mu: the connection ended (c->error says why): wakes whoever
	 * waits on the layer's queues. */
	void (*ended_locked)(struct conn *c);
	/* Loop thread, no lock: the connection is gone (its fd closed, no
	 * handle left): frees what the layer keeps and the memory c is in. */
	void (*destroy)(struct conn *c);
	/* Loop thread, no lock: nothing arrived for the ping interval
	 * (cfg.ping_interval_ms): sends a ping, unless one is unanswered. */
	void (*ping)(struct conn *c);
};

/* A thread waiting for a message while another reads (on its stack). */
struct rd_waiter {
	struct rd_waiter *next;
	pthread_cond_t *cond; /* signalled when the read role is free */
};

/* A packet with fds sent: how many, and c->charged once it went. */
struct fd_packet {
	unsigned int nfds;
	int64_t charged;
};

struct conn {
	struct pier_loop *loop; /* referenced */
	const struct transport *t;
	const struct conn_ops *ops;
	struct pier_config cfg; /* a copy; cfg.loop, cfg.tls and cfg.loop_attr
				 * are cleared */
	char remote[128];
	struct link link; /* read side: the read role's; write side: the write path's */

	/* Under mu. */
	pthread_mutex_t mu;
	pthread_cond_t state_cond; /* the state changed */
	enum conn_state state;
	int error; /* why the connection ended; 0 while it has not */
	unsigned int handles;
	size_t in_bytes;     /* bodies queued for the application */
	unsigned int in_fds; /* fds in messages queued for the application */
	enum conn_pause pause; /* why reading pauses, if it does */
	/* The loop must read whenever no thread does (a queue has a pollable
	 * fd, or the read half is gone); set once, never cleared. */
	bool rd_background;
	enum conn_rd rd;
	struct rd_waiter *waiters; /* waiting while another reads */
	const void *rd_waits_on;   /* what the reading thread waits for */
	pthread_t rd_thread;       /* the reading thread (RD_APP) */
	int wake_fd;               /* interrupts a reading thread; -1 until needed */
	char *tls_subject;         /* the remote's verified certificate subject */
	_Atomic uint64_t stats[PIER_STAT_END_];
	/* Reads that brought data, counted by the read role's holder: what
	 * the liveness timer (conn-live.c) looks at, for it alone reads the
	 * clock. */
	_Atomic uint64_t reads;

	/* Under out_mu. */
	pthread_mutex_t out_mu;
	pthread_cond_t out_cond;
	enum conn_wr wr;
	struct out_frame *out_head, **out_tail;
	/* A chunk written and kept for the next burst (owned, uncounted:
	 * one per connection at most), or NULL. */
	struct out_frame *spare_chunk;
	size_t out_bytes;     /* memory the queued frames hold (not yet written) */
	/* What of it control frames added (a chunk counts whole for the
	 * frame that started it), until those frames leave the queue. */
	size_t out_control;
	unsigned int out_fds; /* fds the queued frames hold */
	int send_error;       /* sending fails with this; 0 while it may send */
	/* Coalescing: when the last send that could have been held began
	 * (0: after a wait, or never); while WR_HELD, when the oldest frame
	 * was held and the bytes held; whether the loop's hold timer will
	 * look. */
	int64_t last_send_ns;
	int64_t held_since_ns;
	size_t held_bytes;
	bool hold_timer_armed;
	/* c->wr == WR_HELD, for a look without out_mu (conn_send_flush()). */
	atomic_bool holding;
	/* A thread went to wait for a message since the last send: the next
	 * one is not part of a burst (set by conn_send_flush()). */
	atomic_bool waited;
	/* When a thread said it sends a burst (conn_send_burst()), until
	 * the next conn_send_flush(); 0: none. */
	_Atomic int64_t burst_ns;
	/* How many frames from out_head the loop's write in flight points
	 * into (0: none).  The kernel reads them until that write completes,
	 * so they stay queued, and allocated, until it does, whatever happens
	 * to the connection meanwhile. */
	unsigned int wr_frames;
	/* Packets with fds the remote may not have read yet (the kernel
	 * holds their fds meanwhile), oldest first, in a ring made on the
	 * first one: see conn-fds.c.
	 * fds_in_flight sums their fds. */
	struct fd_packet *fd_packets;
	unsigned int fdp_head, fdp_count;
	unsigned int fds_in_flight;
	/* While fdp_count > 0: the memory of the packets sent since the
	 * oldest of them, as measured (a lower bound); what the socket held
	 * unread after the last packet; and before the loop's write in
	 * flight. */
	int64_t charged;
	int unread_last, wr_unread_before;

	/* Loop thread only. */
	bool released; /* no handle is left: the connection closes */
	struct loop_task task;
	struct loop_op rd_op, wr_op;
	struct loop_timer linger;
	struct loop_timer fd_retry; /* after ETOOMANYREFS: writes again */
	struct loop_timer hold_timer; /* writes what is held, on time */
	unsigned int fd_retry_ms;   /* the next wait, doubling up to a cap */
	struct loop_timer hs_timer;
	/* Liveness (idle timeout, pings): the timer, c->reads when it last
	 * looked, when it last saw them change (or the start), when it last
	 * asked for a ping. */
	struct loop_timer live_timer;
	uint64_t live_reads;
	int64_t live_since_ns, live_pinged_ns;
	/* Who waits for the handshake of an accepted connection (a listener):
	 * called once, when it is done (0) or failed; NULL when nobody. */
	void (*hs_done)(struct conn *c, int err);
	void *hs_ctx;
};

/* Sets up c (zeroed memory) over fd (taken on success only), for the
 * transport t, with tls its TLS session (taken on success only, or NULL),
 * on loop (its reference taken on success only).  0 or -ENOMEM. */
int conn_init(struct conn *c, int fd, const struct transport *t, const struct pier_config *cfg,
	      struct pier_loop *loop, struct tls *tls, const struct conn_ops *ops);
/* The connection starts: the loop counts it, and reading begins.  Any
 * thread (the loop's too). */
void conn_start(struct conn *c);

/* Handles, under mu.  Dropping the last one sets *last; its dropper then
 * calls conn_release_last() without holding mu. */
void conn_handle_ref_locked(struct conn *c);
void conn_handle_unref_locked(struct conn *c, bool *last);
void conn_release_last(struct conn *c);

/* Under mu: the connection ends with err (the first error stays): nothing
 * more is read or sent, every waiter wakes. */
void conn_fail_locked(struct conn *c, int err);
/* Sending stops now; what is queued still goes out, then the socket's
 * write side is shut.  Any thread. */
void conn_close(struct conn *c);
/* The connection ends now with -PIER_EABORTED.  Any thread. */
void conn_abort(struct conn *c);
/* Under mu: waits until the handshake is done: 0, or why not (-ETIMEDOUT
 * after deadline, when not NULL). */
int conn_wait_ready_locked(struct conn *c, const struct timespec *deadline);
/* Loop thread: an accepted connection's handshake fails with -ETIMEDOUT
 * unless done within timeout_ms (-1: no limit). */
void conn_handshake_timeout(struct conn *c, int timeout_ms);
/* Loop thread: ends an accepted connection's handshake at once with err. */
void conn_handshake_abort(struct conn *c, int err);
/* Whether the TLS session saw the remote's first handshake message. */
bool conn_hello_seen(const struct conn *c);

/* Reading, under mu.  conn_read_locked(): with nobody reading
 * (conn_may_read_locked()), takes the read role for a thread that waits for
 * what, reads once (mu released meanwhile), and gives the role back.
 * interruptible: something besides incoming data may end the wait
 * (conn_rd_wake_locked() then cuts the read short).  timeout_ms 0 never
 * blocks.  Returns 0 once something was read or the wait should look
 * again, -EAGAIN or -ETIMEDOUT when nothing came, or why the connection
 * ended (it has been failed with that error). */
bool conn_may_read_locked(const struct conn *c);
int conn_read_locked(struct conn *c, const void *what, bool interruptible, int timeout_ms,
		     const struct timespec *deadline);
/* Under mu: what the reading thread waits for is there: wake it. */
void conn_rd_wake_locked(struct conn *c, const void *what);
/* Under mu: w waits for the read role (or its message), until removed. */
void conn_rd_waiter_add_locked(struct conn *c, struct rd_waiter *w);
void conn_rd_waiter_del_locked(struct conn *c, struct rd_waiter *w);
/* Under mu: if nobody reads and somebody should, hands the role on (to a
 * waiting thread, else to the loop). */
void conn_rd_kick_locked(struct conn *c);
/* Under mu: from now on the loop reads whenever no thread does. */
void conn_rd_background_locked(struct conn *c);
/* Under mu: a message of len bytes (as counted) and nfds fds joined a
 * queue for the application / was taken off one: reading pauses while
 * too much waits. */
void conn_queued_locked(struct conn *c, size_t len, unsigned int nfds);
void conn_consumed_locked(struct conn *c, size_t len, unsigned int nfds);

/* A message's body: the pieces iov[0..n) (PIER_IOV_MAX at most), sent
 * back to back; len bytes in all.  A piece may be empty, its base NULL. */
struct conn_body {
	const struct iovec *iov;
	size_t n;
	size_t len;
};

/* The body of one piece, len bytes at body (NULL when len is 0), in *v. */
static inline struct conn_body conn_body_one(struct iovec *v, const void *body, size_t len)
{
	*v = (struct iovec){ (void *)body, len };
	return (struct conn_body){ v, 1, len };
}

/* The body of the pieces iov[0..n) an application passed, into *b:
 * -EINVAL for more than PIER_IOV_MAX pieces, for iov NULL with n, or for a
 * piece NULL with a length.  A sum past SIZE_MAX counts as SIZE_MAX, over
 * every write limit, never wrapped.  (The calls with one buffer check it
 * as they always did, and pass conn_body_one().) */
static inline int conn_body_pieces(struct conn_body *b, const struct iovec *iov, size_t n)
{
	size_t len = 0;

	if (n > PIER_IOV_MAX || (n && !iov))
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		size_t k = iov[i].iov_len;

		if (k && !iov[i].iov_base)
			return -EINVAL;
		len = k > SIZE_MAX - len ? SIZE_MAX : len + k;
	}
	*b = (struct conn_body){ iov, n, len };
	return 0;
}

/* Sending, from any thread.  conn_send_check(): whether a message of this
 * size and fd count may be sent at all.  conn_send(): sends one message
 * (b's pieces, never joined to send them but where a copy is made anyway:
 * a small write, or the queue); control: a frame the library sends on its
 * own (a ping, an error ending requests), which never waits for room.  0,
 * or -errno / -PIER_E* (see pier_writer_send_stream(3)). */
int conn_send_check(const struct conn *c, size_t len, size_t nfds);
int conn_send(struct conn *c, const struct pier_header *h, const struct conn_body *b,
	      const int *fds, size_t nfds, bool control);

/* Small frames share chunks of this many bytes in the send queue; the
 * memory a chunk counts for against the queue's limit (its bookkeeping
 * and malloc's). */
#define CONN_CHUNK_SIZE (64u << 10)
#define CONN_CHUNK_MEMORY (sizeof(struct out_frame) + CONN_CHUNK_SIZE + 2 * sizeof(size_t))

/* Automatic answers: what the layer above sends on its own because of what
 * the remote sent (a ping's answer, a request refused, the error for a
 * request dropped unanswered).  Like every control send they never wait
 * for room (the thread routing holds mu; the loop must not block), so a
 * remote sending requests and never reading would make them pile up.
 * Instead, once the queue is over max_send_queued and the control frames
 * in it hold more than CONN_ANSWERS_SLACK of its memory, reading pauses
 * (PAUSE_SEND) until that no longer holds: the remote's sends wait in its
 * own socket meanwhile.  The slack lets the odd answer (a ping's) past a
 * queue that the application keeps at its limit without stopping reading:
 * only a remote that asks for answers and does not read them is stopped.
 *
 * So control frames hold the queue past its limit (or past one message
 * larger than the limit, which may go when nothing else is queued) by at
 * most CONN_ANSWERS_PAST_LIMIT: the slack, the answers to the rest of the
 * read that crossed it (one read is at most 16 KiB: 1025 answers of at
 * most 50 bytes, within one new chunk; one packet on packet framing), and
 * a ping of this side's own (one at a time) -- plus one answer for each
 * request received and not answered yet, which the application or a
 * server may answer so meanwhile (pier_config_set_max_open_requests()
 * bounds those). */
#define CONN_ANSWERS_SLACK CONN_CHUNK_MEMORY
#define CONN_ANSWERS_PAST_LIMIT (3 * CONN_CHUNK_MEMORY)

/* Under mu: sends an automatic answer, h and b, as a control send; reading
 * pauses if answers now hold the send queue over its limit.  0, or why it
 * could not be sent (the connection ended). */
int conn_answer_locked(struct conn *c, const struct pier_header *h, const struct conn_body *b);
/* What coalescing holds goes now (WR_HELD).  A thread about to wait for a
 * message calls it with waiting true: nothing it waits on may sit behind
 * its own sends, and the next send, coming after a wait, is not part of a
 * burst.  Any thread; may hold mu.  0, or why sending fails. */
int conn_send_flush(struct conn *c, bool waiting);
/* The calling thread is about to send a burst: the frames that may be
 * held are, the first too, until the next conn_send_flush() (the
 * caller's at the burst's end, or any thread's that goes to wait) or the
 * hold timer. */
void conn_send_burst(struct conn *c);

/* The remote's credentials (Unix sockets): 0, -ENOTSUP, or -ENOTCONN once
 * the socket is closed. */
int conn_credentials(struct conn *c, struct ucred *cred);
/* Counts a statistic. */
void conn_count(struct conn *c, enum pier_stat s, uint64_t n);
/* The same, by a caller holding the lock that every writer of s holds
 * (out_mu for what is sent): no atomic read-modify-write needed. */
static inline void conn_count_locked(struct conn *c, enum pier_stat s, uint64_t n)
{
	atomic_store_explicit(&c->stats[s],
			      atomic_load_explicit(&c->stats[s], memory_order_relaxed) + n,
			      memory_order_relaxed);
}

#endif
