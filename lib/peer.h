/* SPDX-License-Identifier: MIT */
/*
 * Connections, requests, messages: the internal objects behind the handles.
 *
 * Threads.  A connection's in-flight operations belong to its loop thread.
 * Reading (the parser, the read buffer, recvmsg on the socket) belongs to
 * whoever holds the read role (conn->rd_owner): an application thread that
 * waits for a message reads for itself when nobody else reads, so a receive
 * costs no hop through the loop; the loop reads only when something must be
 * read with no thread waiting (a pollable fd was asked for, the read half is
 * gone, the connection is closing).  Application threads share the rest
 * under two locks:
 *  - conn->mu: request tables, message queues, handle counts, the error,
 *    the read role;
 *  - conn->out_mu: the send queue and the write state.
 * Lock order: mu before out_mu.  Neither is held while calling out.
 *
 * Lifetimes.  conn->handles counts what the application holds: the read half
 * (pier_peer), write-half references, and requests with a live handle.  When
 * it reaches zero, the loop closes the connection (flushing what is queued)
 * and frees it once no operation is in flight.  A request (struct req) lives
 * while it is open in a table or has a handle.
 */
#ifndef PIER_PEER_H
#define PIER_PEER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>

#include <pier.h>

#include "idmap.h"
#include "loop.h"
#include "transport.h"
#include "wire.h"

/* --- configuration ------------------------------------------------------- */

struct pier_config {
	struct pier_loop *loop; /* referenced, or NULL for a loop of its own */
	enum pier_byte_order order;
	size_t max_body_read, max_body_write; /* 0: the transport's default */
	unsigned int max_fds;
	size_t max_recv_queued, max_send_queued;
	/* fds queued for the application / queued and in flight to the
	 * remote; 0: derived from RLIMIT_NOFILE when a connection is made. */
	unsigned int max_recv_fds, max_send_fds;
	unsigned int max_open;
	int send_timeout_ms;
	int connect_timeout_ms;
	bool connect_timeout_set; /* by the application (listeners default
				   * to a shorter handshake deadline) */
	pier_log_fn *log; /* or NULL */
	void *log_data;
	/* A listener's Unix socket file: 0 and (gid_t)-1 leave it as the
	 * umask and the system make it. */
	mode_t socket_mode;
	gid_t socket_gid;
	/* TLS settings, or NULL for the defaults; owned by the pier_config
	 * object only (copies of the struct clear it). */
	struct tls_settings *tls;
};

#define PIER_DEFAULT_MAX_BODY_STREAM (1u << 20)
#define PIER_DEFAULT_MAX_BODY_SEQPACKET (128u << 10)
#define PIER_DEFAULT_MAX_FDS 32u
#define PIER_DEFAULT_MAX_QUEUED (4u << 20)
#define PIER_DEFAULT_MAX_OPEN 65536u
#define PIER_DEFAULT_CONNECT_TIMEOUT_MS 10000
/* How long a closing connection may take to flush what is queued. */
#define PIER_LINGER_MS 5000

void config_defaults(struct pier_config *c);
/* The default limit on fds queued one way on a connection: a quarter of
 * the process's fd limit (RLIMIT_NOFILE), within [64, 65536]. */
unsigned int config_default_queued_fds(void);

/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void cond_init_monotonic(pthread_cond_t *cond);
/* The CLOCK_MONOTONIC time timeout_ms (> 0) from now. */
struct timespec deadline_after(int timeout_ms);

/* --- messages ------------------------------------------------------------ */

struct req;

struct pier_msg {
	struct pier_msg *next;
	struct req *req; /* a request arriving on the peer queue */
	struct pier_header hdr;
	unsigned int nfds;
	int *fds; /* -1 where taken */
	size_t len;
	/* The body, then (aligned) the fds. */
	_Alignas(max_align_t) unsigned char body[];
};

struct pier_msg *msg_new(size_t len, unsigned int nfds);
/* The message whose body this is (see the parser's allocator). */
struct pier_msg *msg_of_body(void *body);
void msg_free(struct pier_msg *m);

/* A queue of messages with its waiters. */
struct msgq {
	struct pier_msg *head, **tail;
	pthread_cond_t cond;
	int evfd; /* -1 until the application asks for a pollable fd */
	bool readable; /* evfd was signalled and not cleared */
};

void msgq_init(struct msgq *q);
void msgq_fini(struct msgq *q);

/* --- requests ------------------------------------------------------------ */

struct conn;

struct pier_sent_request_writer {
	struct req *req;
};

struct pier_received_request_writer {
	struct req *req;
};

struct req {
	struct conn *conn;
	uint32_t id;
	int32_t service;
	bool sent;       /* this side sent it */
	bool in_table;   /* open: in conn->sent or conn->received */
	bool done;       /* the response was received (sent) or sent (received) */
	bool responding; /* a response is being sent */
	bool reader;     /* the read half is alive */
	unsigned int writers; /* write-half references */
	struct msgq q;
	union {
		struct pier_sent_request_writer sw;
		struct pier_received_request_writer rw;
	} w;
};

/* --- connections --------------------------------------------------------- */

/* Work an application thread asks of the loop (conn->task's events). */
#define CONN_EV_START 1u   /* start reading */
#define CONN_EV_WRITE 2u   /* the send queue has frames */
#define CONN_EV_READ 4u    /* the loop holds the read role: read */
#define CONN_EV_RELEASE 8u /* no handles left: close gracefully */
#define CONN_EV_CLOSE 16u  /* pier_writer_close() */
#define CONN_EV_ABORT 32u  /* pier_writer_abort() */
#define CONN_EV_FINISH 64u /* it ended off the loop, or its reader left */

/* Who reads the socket. */
enum conn_rd {
	RD_NONE, /* nobody: the next thread to wait reads */
	RD_LOOP, /* the loop, in the background */
	RD_APP,  /* an application thread waiting for a message */
	RD_GONE, /* the connection is closing its fd: nobody, ever */
};

/* A thread waiting for a message while another reads (on its stack). */
struct rd_waiter {
	struct rd_waiter *next;
	struct msgq *q;
};

/* What waits to be written: one frame (prefix or header, then the body,
 * then dup'd fds that are closed once it is out), or on a stream a chunk
 * of small frames back to back, to which later small frames are appended
 * while there is room (even while the loop writes its beginning). */
struct out_frame {
	struct out_frame *next;
	size_t len;  /* bytes in data */
	size_t sent; /* bytes already written */
	size_t cap;  /* a chunk's room for data; 0 for a frame of its own */
	size_t size; /* the memory it holds, as counted in conn->out_bytes */
	unsigned int nfds;
	int *fds;
	unsigned char data[];
};

struct pier_writer {
	struct conn *conn;
};

/* A packet with fds sent: how many, and conn->charged once it went. */
struct fd_packet {
	unsigned int nfds;
	int64_t charged;
};

struct conn {
	struct pier_loop *loop;
	const struct transport *t;
	int fd;
	struct pier_config cfg;
	bool packets; /* one message per packet (seqpacket) */
	/* The loop does all reading and writing of the socket (TLS: the
	 * session lives on the loop thread). */
	bool loop_only;
	char remote[128];
	struct pier_writer writer;

	/* Under mu. */
	pthread_mutex_t mu;
	int error;       /* why the connection ended; 0 while it has not */
	bool reader;     /* the read half (pier_peer) is alive */
	unsigned int handles;
	unsigned int writer_refs;
	struct idmap sent, received;
	uint32_t next_id;
	struct msgq in; /* requests and stream messages for the read half */
	size_t in_bytes; /* bodies queued for the application */
	unsigned int in_fds; /* fds in messages queued for the application */
	bool read_paused;
	enum conn_rd rd_owner;
	struct rd_waiter *waiters; /* waiting while another reads */
	struct msgq *rd_q;     /* the queue the reading thread waits on */
	pthread_t rd_thread;   /* the reading thread (RD_APP) */
	int wake_fd;           /* interrupts a reading thread; -1 until needed */
	bool polled;   /* a queue has a pollable fd: read in the background */
	bool draining; /* closing: read in the background until EOF */
	bool rd_finish; /* the loop waits for the reading thread to leave */
	bool tls_ready;    /* the TLS handshake is done (set by the loop, which
			    * also reads it without mu) */
	char *tls_subject; /* the remote's verified certificate subject */
	_Atomic uint64_t stats[PIER_STAT_END_];

	/* Under out_mu. */
	pthread_mutex_t out_mu;
	pthread_cond_t out_cond;
	struct out_frame *out_head, **out_tail;
	size_t out_bytes; /* memory the queued frames hold (not yet written) */
	unsigned int out_fds; /* fds the queued frames hold */
	/* Packets with fds the remote may not have read yet (the kernel
	 * holds their fds meanwhile), oldest first, in a ring of
	 * max_send_fds + 1 made on the first one: see fds_refresh_locked().
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
	bool writing; /* the loop, or a direct writer, owns the queue head */
	bool direct;  /* a sender writes its frame itself, out_mu released */
	bool direct_finish; /* the loop waits for that sender to be done */
	int out_error; /* sending fails with this; 0 while it may send */
	/* How many frames from out_head the loop's write in flight points
	 * into (0: none).  The kernel reads them until that write completes,
	 * so they stay queued, and allocated, until write_done(), whatever
	 * happens to the connection meanwhile. */
	unsigned int wr_frames;

	/* Loop thread only. */
	struct loop_task task;
	struct loop_op rd, wr;
	struct loop_timer linger;
	struct loop_timer fd_retry; /* after ETOOMANYREFS: writes again */
	unsigned int fd_retry_ms;   /* the next wait, doubling up to a cap */
	struct wire_parser parser;
	struct wire_body_alloc body_alloc;
	unsigned char *rbuf;
	size_t rbuf_size;
	struct msghdr rmsg, wmsg;
	struct iovec riov, wiov[64];
	unsigned char *rcmsg, *wcmsg;
	size_t rcmsg_size, wcmsg_size;
	bool closing, closed, shut_wr, freed_handles;

	/* TLS, loop thread only: the session, the ciphertext being sent
	 * (tls_obuf[tls_opos..tls_olen)), and who waits for the handshake of
	 * an accepted connection (a listener: hs_done is called once, when it
	 * is done or failed). */
	struct tls *tls;
	unsigned char *tls_obuf;
	size_t tls_opos, tls_olen;
	bool tls_notified;
	bool tls_held; /* the session holds input a pause kept from the parser
			* (or has not started): the next read starts there */
	int tls_error; /* encrypting failed: the connection ends with it */
	struct loop_timer hs_timer;
	void (*hs_done)(struct conn *c, int err);
	void *hs_ctx;
};

static inline struct conn *conn_of_peer(pier_peer *p)
{
	return (struct conn *)p;
}

/* A connection over fd, with tls its TLS session (or NULL); takes both on
 * success only. */
int conn_new(struct conn **out, int fd, const struct transport *t,
	     const struct pier_config *cfg, struct pier_loop *loop, struct tls *tls);
/* Loop thread: an accepted connection's handshake fails with -ETIMEDOUT
 * unless done within timeout_ms (-1: no limit). */
void conn_handshake_timeout(struct conn *c, int timeout_ms);
/* Loop thread: ends an accepted connection's handshake at once with err
 * (hs_done is called with it, if still set). */
void conn_handshake_abort(struct conn *c, int err);
/* Waits (under mu) until the TLS handshake is done: 0, or why not. */
int conn_wait_tls_locked(struct conn *c, const struct timespec *deadline);
/* Loop thread: the connection starts reading (CONN_EV_START does it from
 * other threads). */
void conn_start(struct conn *c);
/* Asks the loop for work (CONN_EV_*). */
void conn_post(struct conn *c, unsigned int events);
/* Whether a message of this size and fd count may be sent at all. */
int conn_send_check(const struct conn *c, size_t len, size_t nfds);
/* Sends one message.  control: an internal reply sent from the loop thread,
 * which neither waits nor counts against the queue limit. */
int conn_send(struct conn *c, const struct pier_header *h, const void *body, size_t len,
	      const int *fds, size_t nfds, bool control);
/* Ends the connection with err (under mu): every waiter wakes. */
void conn_fail_locked(struct conn *c, int err);
void conn_handle_ref_locked(struct conn *c);
/* Drops a handle reference (sets *last for the last one, whose dropper
 * then calls conn_release_last() without holding mu). */
void conn_handle_unref_locked(struct conn *c, bool *last);
void conn_release_last(struct conn *c);

/* Routing of incoming messages (by the reader), in order: m and those
 * chained on its next.  Takes them. */
void peer_route(struct conn *c, struct pier_msg *m);
/* Under mu: a message of len body bytes and nfds fds joined a queue for
 * the application / was taken off one. */
void conn_queued_locked(struct conn *c, size_t len, unsigned int nfds);
void conn_consumed_locked(struct conn *c, size_t len, unsigned int nfds);

/* Under mu, with nobody reading: takes the read role for a thread waiting
 * on q, reads once (mu released meanwhile), and gives the role back.
 * interruptible: something besides incoming data may end the wait (then a
 * wake on conn->wake_fd cuts the read short).  timeout_ms 0 never blocks.
 * Returns 0 once something was read or the wait should look again, -EAGAIN
 * or -ETIMEDOUT when nothing came, or why the connection ended (it has
 * been failed with that error). */
int conn_read_locked(struct conn *c, struct msgq *q, bool interruptible, int timeout_ms,
		     const struct timespec *deadline);
/* Under mu: whether the loop must read with no thread waiting. */
bool conn_rd_background_locked(const struct conn *c);
/* Under mu: if nobody reads and somebody should, hands the role on (to a
 * waiting thread, else to the loop). */
void conn_rd_kick_locked(struct conn *c);

/* Queue helpers, under mu.  r is the request a queue belongs to, or NULL
 * for the read half's queue: a queue has nothing more to give once it is
 * empty and its connection ended or its request finished. */
void msgq_push_locked(struct conn *c, struct msgq *q, struct req *r, struct pier_msg *m);
struct pier_msg *msgq_pop_locked(struct conn *c, struct msgq *q, struct req *r);
/* Waits until the queue has a message or has nothing more to give.
 * Returns 0 when a message is there, or the reason there is none. */
int msgq_wait_locked(struct conn *c, struct msgq *q, struct req *r, int timeout_ms);
/* Wakes waiters and updates the pollable fd after a state change. */
void msgq_changed_locked(struct conn *c, struct msgq *q, struct req *r);
int msgq_fd_locked(struct conn *c, struct msgq *q, struct req *r);
/* Frees every queued message (the handle is gone). */
void msgq_drain_locked(struct conn *c, struct msgq *q);

/* Requests. */
struct req *req_new(struct conn *c, uint32_t id, int32_t service, bool sent);
/* Under mu: drops a handle of req; frees it when nothing holds it. */
void req_release_locked(struct req *r, bool reader, bool *conn_last);
void req_free(struct req *r);


#endif
