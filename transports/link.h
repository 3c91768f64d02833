/* SPDX-License-Identifier: MIT */
/*
 * Links: how frames travel on one connected socket.  A transport (see
 * transport.h) names a framing: stream framing (length prefix, any socket
 * that keeps no boundaries), packet framing (one message per packet, fds in
 * its control data) or TLS (stream framing inside a TLS session).  The
 * connection above drives a link through its framing's operations and never
 * asks which kind it is.
 *
 * Threads.  The read side (rbuf, rmsg, the parser, what TLS keeps of its
 * input) belongs to whoever holds the connection's read role; the write
 * side (wmsg, the ciphertext being sent) to whoever holds its write path:
 * a sender under the connection's send lock, or the loop.  While the
 * connection's handshake is under way (TLS) the loop does all of its I/O.
 * What both sides share (a TLS session) the framing guards itself, with a
 * lock of its own taken last and never held while calling up.
 *
 * Ownership.  The link owns its buffers and its TLS session; not the fd,
 * which the connection closes.  Frames handed up (link_ops.deliver) belong
 * to the receiver from then on, fds included.
 */
#ifndef PIER_LINK_H
#define PIER_LINK_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <pier.h>

#include "wire.h"

struct link;
struct pier_msg;
struct tls;

/* What waits to be written: one frame (prefix or header, then the body,
 * then dup'd fds that are closed once it is out), or on a stream a chunk
 * of small frames back to back, to which later small frames are appended
 * while there is room (even while the loop writes its beginning). */
struct out_frame {
	struct out_frame *next;
	size_t len;  /* bytes in data */
	size_t sent; /* bytes already written */
	size_t cap;  /* a chunk's room for data; 0 for a frame of its own */
	size_t size; /* the memory it holds, as counted against the queue limit */
	size_t control; /* what of size a control frame added (the connection's) */
	unsigned int nfds;
	int *fds; /* owned: closed when the frame is freed */
	unsigned char data[];
};

/* What a link hands up: installed by the connection. */
struct link_ops {
	/* Complete messages, in order (m and those chained on its next);
	 * takes them.  Returns false when the receiver wants no more for now:
	 * a framing that holds more input keeps it (link_held()). */
	bool (*deliver)(struct link *l, struct pier_msg *m);
	/* A request that cannot be read (its body is over the limit) is
	 * answered with this error text before the connection ends. */
	void (*refuse)(struct link *l, uint32_t request_id, const char *why);
	/* TLS, loop thread: the handshake is done. */
	void (*ready)(struct link *l);
	/* Any thread, no lock held: the link has something of its own to
	 * send (a handshake message, an alert, a key update): whoever holds
	 * the write path writes it, or the loop. */
	void (*want_write)(struct link *l);
};

/* The limits a link frames by. */
struct link_limits {
	enum pier_byte_order order;
	size_t max_body_read; /* 0: the framing's default */
	size_t max_body_write;
	unsigned int max_fds; /* per message, either way */
};

/* What the loop's next write is, from link_wr_prepare(). */
struct link_write {
	/* The write points into this many frames from the queue's head (the
	 * kernel reads them until it completes), or into the link's own
	 * buffer (0). */
	unsigned int frames;
	/* Bytes the framing took off the queue's head frames at once (TLS
	 * encrypts them): they count as written. */
	size_t took;
	/* l->wmsg holds a write to submit. */
	bool submit;
};

struct framing {
	const char *name;
	/* One message per packet, fds in its control data; otherwise small
	 * frames share chunks and writes. */
	bool packets;
	/* Default body limit, each way. */
	size_t default_max_body;
	/* Sets up the read side's buffers and state; 0 or -ENOMEM. */
	int (*init)(struct link *l);
	/* Frees what init made besides the buffers link_fini() frees (NULL:
	 * nothing). */
	void (*fini)(struct link *l);

	/* Reading: points l->rmsg at where the next read goes and returns the
	 * recvmsg flags, or -ENOMEM. */
	int (*rd_prepare)(struct link *l);
	/* What a read returned (bytes, 0 for the end, -errno; -EAGAIN: only
	 * look at what the link holds): frames go up through deliver.  0, or
	 * why the connection ends. */
	int (*rd_done)(struct link *l, ssize_t res);
	/* Whether the link holds input not yet framed (a pause left it, or a
	 * session has not started): the next read starts with rd_done(l,
	 * -EAGAIN).  NULL: never. */
	bool (*rd_held)(const struct link *l);

	/* Writing: the header (and on streams the length prefix) of a message
	 * of len body bytes into head (WIRE_STREAM_OVERHEAD bytes); returns
	 * its length. */
	size_t (*head_encode)(const struct link *l, unsigned char *head,
			      const struct pier_header *h, size_t len);
	/* Loop thread, under the send lock: prepares the next write from the
	 * frames queued from head (NULL: none; may_take false: none may be
	 * taken, the connection is ending).  0, or why the connection ends. */
	int (*wr_prepare)(struct link *l, struct out_frame *head, bool may_take,
			  struct link_write *w);
	/* Any thread, under the send lock, with no write in flight: writes
	 * frames queued from head at once, as many as the socket takes
	 * without waiting (many frames per sendmsg on streams; many packets
	 * per sendmmsg, up to the first frame with fds; TLS sends what it
	 * holds first).  Returns the bytes of the queued frames written (a
	 * packet counts whole; TLS: encrypted), -EAGAIN when the socket took
	 * nothing of them, or another -errno.  NULL: the framing cannot. */
	ssize_t (*wr_now)(struct link *l, const struct out_frame *head);
	/* The thread holding the write path, with nothing queued before this
	 * frame and no write in flight: writes what is left of one frame,
	 * iov[0..n) (no fds), from the caller's buffers, as far as the socket
	 * takes it without waiting.  Returns the bytes of the frame taken,
	 * -EAGAIN when none, or another -errno.  TLS: bytes are taken once
	 * encrypted; ciphertext the socket did not take stays in the link
	 * (wr_idle false) and goes first.  With n 0 it only sends what the
	 * link holds: 0 once all went.  NULL: the frame's bytes are what goes
	 * on the wire, and the connection writes them itself. */
	ssize_t (*wr_frame)(struct link *l, const struct iovec *iov, size_t n);
	/* Loop thread: a write of res (> 0) bytes completed: how many of them
	 * were bytes of the queued frames it pointed into.  NULL: all. */
	size_t (*wr_done)(struct link *l, size_t res);
	/* The thread holding the write path (or the loop): nothing of the
	 * link's own waits to be sent.  NULL: a link that sends nothing of
	 * its own. */
	bool (*wr_idle)(struct link *l);
	/* Loop thread, once everything queued is out: queues what must end
	 * the stream before the socket's end (TLS: close_notify).  Returns
	 * true when that is something to write.  NULL: nothing. */
	bool (*wr_close)(struct link *l);
	/* Loop thread, no op in flight, the connection ended with error:
	 * sends without waiting what the link still has (the rest of a
	 * record, an alert that says why).  NULL: nothing. */
	void (*final_flush)(struct link *l, int error);
};

struct link {
	const struct framing *f;
	const struct link_ops *ops;
	int fd; /* the connection's, closed by it; -1 once closed */
	struct link_limits lim;

	/* Read side. */
	struct wire_parser parser; /* streams */
	struct wire_body_alloc body_alloc;
	unsigned char *rbuf;
	size_t rbuf_size;
	unsigned char *rcmsg;
	size_t rcmsg_size;
	struct msghdr rmsg;
	struct iovec riov;
	int rcvtimeo_ms; /* the socket's SO_RCVTIMEO (0: none) */

	/* Write side (loop thread). */
	struct msghdr wmsg;
	struct iovec wiov[64];
	unsigned char *wcmsg;
	size_t wcmsg_size;

	/* TLS (tls.c says who touches what): the session (owned) and its
	 * lock; the ciphertext received (tls_ibuf, owned), the read role's;
	 * the ciphertext being sent (tls_obuf[tls_opos..tls_olen), the
	 * session's, lent), the write path's; and what the framing keeps of
	 * its state. */
	struct tls *tls;
	pthread_mutex_t tls_mu;
	unsigned char *tls_ibuf;
	const unsigned char *tls_obuf;
	size_t tls_opos, tls_olen;
	bool tls_held;     /* the session holds input a pause kept from the
			    * parser, or has not started: see rd_held */
	bool tls_up;       /* the handshake is done (under tls_mu) */
	bool tls_notified; /* close_notify is queued (loop thread) */
};

extern const struct framing framing_stream;
extern const struct framing framing_packet;
extern const struct framing framing_tls;

/* Sets up l over fd with the framing f (its tls session taken, or NULL):
 * 0, or -ENOMEM with nothing taken. */
int link_init(struct link *l, const struct framing *f, int fd, const struct link_limits *lim,
	      const struct link_ops *ops, struct tls *tls);
/* Frees what the link holds (not the fd). */
void link_fini(struct link *l);

/* The fds in a received message's control data (l->rmsg): the count, or a
 * negative error after closing all of them (-PIER_EFDLIMIT over max,
 * -PIER_EFDTRUNC when the kernel cut them short). */
int link_take_fds(struct link *l, int *fds, unsigned int max);
/* Puts nfds fds into mh's control data, in buf of space bytes. */
void link_put_fds(struct msghdr *mh, void *buf, size_t space, const int *fds, size_t nfds);
/* Reads and drops what the remote sent and nobody will read, closing
 * received fds, so that closing does not turn into a reset. */
void link_discard_input(struct link *l);

/* The read rd_prepare() set up in l->rmsg, made now: recv() when it has
 * one buffer and no room for control data (cheaper for the kernel than a
 * msghdr), recvmsg() otherwise.  The result as recvmsg() returns it. */
ssize_t link_recv(struct link *l, int flags);

/* Stream framing's parts, which TLS frames by too: the parser's setup,
 * where the next plaintext goes (large bodies straight into their message,
 * the rest into rbuf: l->riov), and framing len bytes that arrived there.
 * link_stream_frames() returns 1 when the receiver wants no more for now, 0,
 * or why the connection ends. */
int link_stream_init(struct link *l);
void link_stream_fini(struct link *l);
void link_stream_window(struct link *l);
int link_stream_frames(struct link *l, size_t len);
/* The length prefix and header of a message of len body bytes. */
size_t link_stream_head_encode(const struct link *l, unsigned char *head,
			       const struct pier_header *h, size_t len);

/* Frees a frame and closes its fds. */
void out_frame_free(struct out_frame *f);
/* What is left to write of the frames from head, in at most max iovecs:
 * how many it filled. */
size_t link_frames_iov(const struct out_frame *head, struct iovec *iov, size_t max);

#endif
