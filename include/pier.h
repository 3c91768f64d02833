/* SPDX-License-Identifier: MIT */
/*
 * libpier: Fizyr RPC peers over TCP and Unix sockets, with file-descriptor
 * passing.  See pier(7) for the overview.
 *
 * Conventions used by every function of this header:
 *  - functions that can fail return 0 (or a count) on success and a negative
 *    error code on failure: either -errno, or -PIER_E* for pier's own
 *    conditions.  errno is never the error channel.  pier_strerror() names
 *    both kinds;
 *  - constructors return int and fill an out pointer;
 *  - objects are opaque and owned through explicit new/free (or ref/unref).
 *
 * Ownership is stated at each declaration, in these words:
 *  - borrowed: the pointer or fd stays its owner's.  pier uses a borrowed
 *    argument during the call only, unless the comment says it keeps it;
 *    a borrowed result is valid for as long as the comment says;
 *  - owned: the caller owns the result and releases it with the call the
 *    comment names (an fd: close(2));
 *  - a new reference: the caller drops it with the matching *_unref();
 *  - taken: pier owns the argument from then on; the caller must not use
 *    it again.
 * Out pointers (**out, **msg, **req) are written on success only.
 */
#ifndef PIER_H
#define PIER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h> /* struct iovec, for the vectored sends */

#include <pier-version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded at run time (compare with the
 * PIER_VERSION_* macros, which tell the version of the headers).
 * pier_version() returns a static string: borrowed, never freed. */
const char *pier_version(void);
unsigned long pier_version_number(void);

/* The five Fizyr RPC message kinds, with their wire values. */
enum pier_msg_type {
	PIER_MSG_REQUEST = 0,
	PIER_MSG_RESPONSE = 1,
	PIER_MSG_REQUESTER_UPDATE = 2,
	PIER_MSG_RESPONDER_UPDATE = 3,
	PIER_MSG_STREAM = 4,
};

/* "request", "response", "requester-update", "responder-update", "stream",
 * or NULL for a value outside the enumeration: a static string, borrowed,
 * never freed. */
const char *pier_msg_type_name(enum pier_msg_type type);

/* The service id of an error response; its body is UTF-8 text. */
#define PIER_SERVICE_ERROR (-1)

/* The 12-byte header every message carries. */
struct pier_header {
	enum pier_msg_type type;
	uint32_t request_id; /* 0 on stream messages */
	int32_t service_id;  /* PIER_SERVICE_ERROR on an error response */
};

/* Byte order of every integer on the wire (header and length prefix). */
enum pier_byte_order {
	PIER_BYTE_ORDER_LITTLE = 0, /* the default on every transport */
	PIER_BYTE_ORDER_BIG = 1,
	PIER_BYTE_ORDER_NATIVE = 2, /* the host's order */
};

/*
 * pier's own error codes.  Functions return them negated, like -errno.  They
 * start above every errno value, so one int carries either kind.
 */
enum pier_error {
	/* A frame or packet shorter than the 12-byte header (a stream length
	 * prefix below 12, or a seqpacket packet of 1 to 11 bytes). */
	PIER_ESHORTFRAME = 4096,
	/* A message type other than the five of enum pier_msg_type. */
	PIER_EBADTYPE,
	/* A received body larger than the configured read limit. */
	PIER_EBODYLIMIT,
	/* The stream ended in the middle of a frame. */
	PIER_EPARTIAL,
	/* A message carried more file descriptors than the configured limit. */
	PIER_EFDLIMIT,
	/* File descriptors were lost in transit (the receiver could not take
	 * them all, for example at its open-file limit). */
	PIER_EFDTRUNC,
	/* The remote peer closed the connection. */
	PIER_ECLOSED,
	/* The connection was closed locally (pier_writer_close()). */
	PIER_ESHUTDOWN,
	/* The connection was aborted locally (pier_writer_abort()). */
	PIER_EABORTED,
	/* The transport cannot carry file descriptors. */
	PIER_ENOFDS,
	/* No more updates: the final response is next. */
	PIER_ERESPONSE,
	/* An update is next, not the final response. */
	PIER_EUPDATE,
	/* The request is finished: its response was received or sent. */
	PIER_EDONE,
	/* The peer has as many open requests as its configuration allows. */
	PIER_EREQLIMIT,
	/* A tls:// address, but this build of the library has no TLS. */
	PIER_ETLSUNAVAILABLE,
	/* TLS failed: a protocol error, or an alert from the remote. */
	PIER_ETLS,
	/* The remote does not speak TLS (it answered in plain text, or closed
	 * the connection during the handshake). */
	PIER_ENOTLS,
	/* The TLS stream ended without close_notify: it may have been cut. */
	PIER_ETLSTRUNCATED,
	/* The remote's certificate is not issued by a trusted CA. */
	PIER_ECERTUNTRUSTED,
	/* The remote's certificate names another host or address. */
	PIER_ECERTNAME,
	/* The remote's certificate has expired or is not valid yet. */
	PIER_ECERTEXPIRED,
	/* The remote's certificate failed verification for another reason
	 * than those above (or the system's CA store could not be loaded). */
	PIER_ECERTINVALID,
	/* The remote requires a certificate from this side, and none was
	 * configured. */
	PIER_ECERTREQUIRED,
	/* The remote refused this side's certificate. */
	PIER_ECERTREFUSED,
	/* A CA or certificate file holds no PEM certificate. */
	PIER_ECERTFILE,
	/* A key file holds no PEM private key (or only an encrypted one). */
	PIER_EKEYFILE,
	/* The private key is not the one of the certificate. */
	PIER_EKEYMISMATCH,
	/* A TLS listener has no certificate and key to show
	 * (pier_config_set_tls_cert()). */
	PIER_ENOCERT,
	/* The host name does not resolve: no such name, or no address for
	 * it. */
	PIER_EHOSTNOTFOUND,
	/* The host name could not be looked up: the name server did not
	 * answer, or failed.  A later try may succeed. */
	PIER_ERESOLVER,
	/* Nothing was received within the idle timeout
	 * (pier_config_set_idle_timeout()). */
	PIER_EIDLE,
	/* The remote answered a typed call with an error response (its text
	 * is in the call's struct pier_value_error). */
	PIER_EREMOTE,
	PIER_ERROR_END_ /* one past the last code; not an error itself */
};

/* A description of err, which is a pier error code or an errno value,
 * negated or not: borrowed, never freed, never NULL (a static string, but
 * for an errno value where the C library has no strerrordesc_np(): see
 * pier_strerror(3)). */
const char *pier_strerror(int err);


/* ------------------------------------------------------------------------
 * Objects.  All are opaque.  See pier(7) for how they fit together and
 * pier-threads(7) for threads and ownership.
 * ------------------------------------------------------------------------ */

typedef struct pier_loop pier_loop;
typedef struct pier_config pier_config;
typedef struct pier_peer pier_peer;
typedef struct pier_writer pier_writer;
typedef struct pier_listener pier_listener;
typedef struct pier_msg pier_msg;
typedef struct pier_mapping pier_mapping;
typedef struct pier_sent_request pier_sent_request;
typedef struct pier_sent_request_writer pier_sent_request_writer;
typedef struct pier_received_request pier_received_request;
typedef struct pier_received_request_writer pier_received_request_writer;

/*
 * Timeouts are in milliseconds: -1 waits as long as it takes, 0 does not
 * wait (the call fails with -EAGAIN when it would have to), and a positive
 * value fails with -ETIMEDOUT once it has passed.
 *
 * File descriptors: pier never takes an fd passed to it, except
 * pier_peer_adopt(), which takes its socket when it succeeds.  Sending
 * borrows the caller's fds (they may be closed as soon as the call returns,
 * whatever it returned).  A received message owns its fds until
 * pier_msg_take_fd() hands one over; pier_msg_free() closes the rest.  The
 * pollable fds of pier_*_fd() are borrowed: they belong to their object.
 * Every fd pier creates or receives is close-on-exec.
 */

/* --- the event loop ------------------------------------------------------ */

/* *out: a new loop whose one reference is owned by the caller
 * (pier_loop_unref()). */
int pier_loop_new(pier_loop **out);
/* Returns loop with a new reference (NULL for NULL). */
pier_loop *pier_loop_ref(pier_loop *loop);
/* Drops the caller's reference to loop: do not use that pointer again.
 * Returns NULL.  Dropping the last one waits for the loop's thread. */
pier_loop *pier_loop_unref(pier_loop *loop);
/* loop borrowed; returns a static string, borrowed ("io_uring", "epoll";
 * NULL for NULL). */
const char *pier_loop_backend(const pier_loop *loop);
/* As pier_loop_new(), with the thread's CPUs and scheduling as cfg says
 * (pier_config_set_loop_affinity(), pier_config_set_loop_scheduling()).
 * cfg borrowed (NULL: the defaults); its own loop does not matter here. */
int pier_loop_new_with_config(pier_loop **out, const pier_config *cfg);

/* --- configuration ------------------------------------------------------- */

/* A configuration is copied by the peers and listeners made with it, which
 * keep no pointer to it: it may be changed or freed afterwards.  Every
 * setter's cfg is borrowed. */

/* *out: a new configuration, owned (pier_config_free()). */
int pier_config_new(pier_config **out);
/* cfg taken (NULL is fine); its loop reference is dropped. */
void pier_config_free(pier_config *cfg);
/* cfg, loop borrowed; cfg keeps a reference of its own to loop until it is
 * freed or set again (NULL: no loop, each peer or listener gets its own). */
int pier_config_set_loop(pier_config *cfg, pier_loop *loop);
/* The threads of the loops made with cfg (pier_loop_new_with_config(), and
 * each peer's or listener's own loop when cfg sets none): the CPUs they
 * run on, by number (ncpus 0: the creating thread's); their scheduling
 * policy (SCHED_OTHER, SCHED_BATCH, SCHED_IDLE, SCHED_FIFO, SCHED_RR, or
 * -1: the creating thread's) and priority for it.  A loop thread takes
 * them before its first I/O; what the kernel refuses (-EPERM, -EINVAL)
 * fails the call making the loop.  cfg borrowed; cpus borrowed (copied). */
int pier_config_set_loop_affinity(pier_config *cfg, const unsigned int *cpus, size_t ncpus);
int pier_config_set_loop_scheduling(pier_config *cfg, int policy, int priority);
/* cfg borrowed. */
int pier_config_set_byte_order(pier_config *cfg, enum pier_byte_order order);
/* cfg borrowed. */
int pier_config_set_max_body(pier_config *cfg, size_t read_max, size_t write_max);
/* cfg borrowed. */
int pier_config_set_max_fds(pier_config *cfg, size_t max_fds);
/* cfg borrowed. */
int pier_config_set_max_queued(pier_config *cfg, size_t recv_bytes, size_t send_bytes);
/* cfg borrowed. */
int pier_config_set_max_queued_fds(pier_config *cfg, size_t recv_fds, size_t send_fds);
/* cfg borrowed. */
int pier_config_set_max_open_requests(pier_config *cfg, unsigned int max_open);
/* cfg borrowed. */
int pier_config_set_send_timeout(pier_config *cfg, int timeout_ms);
/* cfg borrowed.  How long a small message sent right after another may
 * wait to share one write with those that follow; 0: never. */
int pier_config_set_coalescing(pier_config *cfg, unsigned int max_delay_us);
/* cfg borrowed. */
int pier_config_set_connect_timeout(pier_config *cfg, int timeout_ms);
/* The permission bits and group of a listener's Unix socket file
 * (mode 0: as the umask leaves them; gid (gid_t)-1: left alone).  cfg
 * borrowed. */
int pier_config_set_socket_mode(pier_config *cfg, mode_t mode, gid_t gid);
/* Stream messages of service_id that wait for the application are kept
 * to the newest keep: when one more arrives, the oldest of them is dropped
 * (its fds closed) and counted in PIER_STAT_SUPERSEDED.  keep 0 removes
 * the policy.  Requests, updates and responses are never dropped.  See
 * pier_config_set_stream_latest(3).  cfg borrowed. */
int pier_config_set_stream_latest(pier_config *cfg, int32_t service_id, unsigned int keep);

/* Liveness; see pier_config_set_idle_timeout(3).  cfg borrowed.
 * TCP keepalive on tcp:// and tls:// sockets, connected and accepted
 * (ignored on Unix sockets): probes after idle_s seconds without traffic,
 * every interval_s seconds, count of them unanswered ending the connection;
 * all three 0: as the kernel makes sockets (the default: no keepalive). */
int pier_config_set_tcp_keepalive(pier_config *cfg, int idle_s, int interval_s, int count);
/* A connection on which nothing arrives for timeout_ms ends with
 * PIER_EIDLE; -1: never (the default). */
int pier_config_set_idle_timeout(pier_config *cfg, int timeout_ms);
/* Requests on service_id are pings, answered at once with an empty
 * response, never seen by the application; with interval_ms > 0 the
 * connection sends one whenever nothing arrived for that long.
 * interval_ms 0: pings are answered, none sent; -1: none either way (the
 * default: such requests are the application's like any other). */
int pier_config_set_ping(pier_config *cfg, int32_t service_id, int interval_ms);

/* What the library has to say that no call returns (a listener dropped a
 * connection it never handed out, and why): priority is a syslog(3) level
 * (LOG_WARNING, LOG_NOTICE, ...), message one line without a newline.
 * Called on the loop thread: it must not block, nor call into libpier. */
typedef void pier_log_fn(void *userdata, int priority, const char *message);
/* cfg borrowed.  fn and userdata are kept, never owned: userdata must stay
 * valid while any peer or listener made with cfg lives.  message is
 * borrowed, valid during the call of fn only. */
int pier_config_set_log(pier_config *cfg, pier_log_fn *fn, void *userdata);

/* TLS (tls:// addresses); see pier-tls(7).  Without these calls a client
 * verifies the server against the system's CA store. */
enum pier_tls_client_auth {
	PIER_TLS_CLIENT_CERT_NONE = 0, /* a listener asks for none (default) */
	PIER_TLS_CLIENT_CERT_OPTIONAL, /* asks, and verifies one if sent */
	PIER_TLS_CLIENT_CERT_REQUIRED, /* refuses clients without a valid one */
};
/* cfg borrowed; file and dir borrowed (copied). */
int pier_config_set_tls_ca(pier_config *cfg, const char *file, const char *dir);
/* cfg borrowed; cert_file and key_file borrowed (copied). */
int pier_config_set_tls_cert(pier_config *cfg, const char *cert_file, const char *key_file);
/* cfg borrowed. */
int pier_config_set_tls_client_auth(pier_config *cfg, enum pier_tls_client_auth mode);
/* cfg borrowed; name borrowed (copied). */
int pier_config_set_tls_server_name(pier_config *cfg, const char *name);

/* --- peers --------------------------------------------------------------- */

/* address, cfg borrowed.  *out: a new peer (the read half), owned
 * (pier_peer_free()). */
int pier_peer_connect(pier_peer **out, const char *address, const pier_config *cfg);
/* fd taken on success (closed with the connection), left to the caller on
 * failure, with its file status flags (O_NONBLOCK) as they were.  cfg
 * borrowed.  *out: a new peer, owned (pier_peer_free()). */
int pier_peer_adopt(pier_peer **out, int fd, const pier_config *cfg);
/* peer taken (NULL is fine).  The connection lives on while a write-half
 * reference or a request handle of it does. */
void pier_peer_free(pier_peer *peer);
/* peer borrowed.  Returns the write half borrowed: valid while peer is,
 * never to be unref'd.  To keep it longer, take a reference with
 * pier_writer_ref(). */
pier_writer *pier_peer_get_writer(pier_peer *peer);
/* peer borrowed.  *msg: owned (pier_msg_free()); *req: owned
 * (pier_received_request_free()) for a request, NULL for a stream
 * message. */
int pier_peer_recv(pier_peer *peer, pier_msg **msg, pier_received_request **req,
		   int timeout_ms);
/* peer borrowed.  Returns an fd borrowed from the peer: do not close it;
 * valid while peer is. */
int pier_peer_fd(pier_peer *peer);
/* peer borrowed; buf borrowed, written (len bytes at most). */
int pier_peer_remote_address(pier_peer *peer, char *buf, size_t len);
/* peer borrowed; pid, uid, gid borrowed, written (each may be NULL). */
int pier_peer_credentials(pier_peer *peer, int32_t *pid, uint32_t *uid, uint32_t *gid);
/* peer borrowed; buf borrowed, written (len bytes at most). */
int pier_peer_tls_subject(pier_peer *peer, char *buf, size_t len);

/* Counters of a connection, for pier_peer_stat(). */
enum pier_stat {
	PIER_STAT_MSGS_SENT,
	PIER_STAT_MSGS_RECEIVED,
	PIER_STAT_BYTES_SENT,     /* bodies only */
	PIER_STAT_BYTES_RECEIVED, /* bodies only */
	PIER_STAT_UNKNOWN_IDS,    /* updates and responses for no open request */
	PIER_STAT_DUPLICATE_IDS,  /* requests whose id was already open */
	PIER_STAT_REFUSED_REQUESTS, /* requests over the open-request limit */
	PIER_STAT_DROPPED,        /* messages for handles already freed */
	PIER_STAT_WRITES,         /* system calls that wrote messages */
	PIER_STAT_PINGS_SENT,     /* pings this side sent (pier_config_set_ping()) */
	PIER_STAT_PINGS_ANSWERED, /* responses to them received */
	PIER_STAT_PINGS_RECEIVED, /* pings the remote sent, answered */
	/* stream messages of a latest-only stream dropped for newer ones
	 * (pier_config_set_stream_latest()) */
	PIER_STAT_SUPERSEDED,
	PIER_STAT_END_
};
/* peer borrowed. */
uint64_t pier_peer_stat(pier_peer *peer, enum pier_stat stat);

/* --- write halves -------------------------------------------------------- */

/* Sending, here and below: body borrowed (copied or written before the
 * call returns); fds borrowed (pier duplicates the ones it keeps, and the
 * caller closes its own whatever the call returned).
 *
 * Every call that sends a body has a vectored form, named with a trailing
 * v, that takes the body as the pieces iov[0..iovcnt), sent back to back
 * as one body (a struct of metadata, then the data it describes) without
 * being joined first: iov and the pieces borrowed, like body.  At most
 * PIER_IOV_MAX pieces (-EINVAL otherwise); a piece may be empty (its base
 * then may be NULL), and iovcnt 0 sends an empty body.  The body's length,
 * the sum of the pieces' lengths, has the same write limit.  See
 * pier_writer_send_requestv(3). */
#define PIER_IOV_MAX 64

/* w borrowed.  Returns w with a new reference (pier_writer_unref()), which
 * keeps the write half and the connection alive after the peer is freed;
 * NULL for NULL. */
pier_writer *pier_writer_ref(pier_writer *w);
/* Drops a reference the caller took with pier_writer_ref(), never the
 * peer's own (from pier_peer_get_writer()).  Returns NULL. */
pier_writer *pier_writer_unref(pier_writer *w);
/* w borrowed; body (iov and its pieces), fds borrowed.  *out: a new
 * request handle, owned (pier_sent_request_free()). */
int pier_writer_send_request(pier_writer *w, int32_t service_id, const void *body,
			     size_t len, const int *fds, size_t nfds,
			     pier_sent_request **out);
int pier_writer_send_requestv(pier_writer *w, int32_t service_id, const struct iovec *iov,
			      size_t iovcnt, const int *fds, size_t nfds,
			      pier_sent_request **out);
/* w borrowed; body (iov and its pieces), fds borrowed. */
int pier_writer_send_stream(pier_writer *w, int32_t service_id, const void *body,
			    size_t len, const int *fds, size_t nfds);
int pier_writer_send_streamv(pier_writer *w, int32_t service_id, const struct iovec *iov,
			     size_t iovcnt, const int *fds, size_t nfds);
/* w borrowed. */
size_t pier_writer_max_fds(const pier_writer *w);
/* a, b borrowed. */
int pier_writer_same_peer(const pier_writer *a, const pier_writer *b);
/* w borrowed: closing frees nothing, every handle is still freed as usual. */
void pier_writer_close(pier_writer *w);
/* w borrowed: aborting frees nothing, every handle is still freed as usual. */
void pier_writer_abort(pier_writer *w);
/* w borrowed.  Small messages that coalescing holds are written now. */
int pier_writer_flush(pier_writer *w);

/* --- messages ------------------------------------------------------------ */

/* msg borrowed.  Returns the header borrowed from msg: valid until
 * pier_msg_free(msg). */
const struct pier_header *pier_msg_header(const pier_msg *msg);
/* msg borrowed; len borrowed, written (may be NULL).  Returns the body
 * borrowed from msg: valid until pier_msg_free(msg). */
const void *pier_msg_body(const pier_msg *msg, size_t *len);
/* msg borrowed. */
int pier_msg_is_error(const pier_msg *msg);
/* msg borrowed. */
size_t pier_msg_fd_count(const pier_msg *msg);
/* msg borrowed.  Returns an fd borrowed from msg: do not close it; valid
 * until pier_msg_free(msg). */
int pier_msg_fd(const pier_msg *msg, size_t index);
/* msg borrowed.  Returns an fd owned by the caller (close(2)); msg forgets
 * it. */
int pier_msg_take_fd(pier_msg *msg, size_t index);
/* msg taken (NULL is fine): freed, with the fds nobody took closed. */
void pier_msg_free(pier_msg *msg);

/* Flags of pier_msg_map_fd(). */
enum pier_map_flag {
	/* Dmabufs too, whose size the kernel fixes (they have no seals). */
	PIER_MAP_DMABUF = 1 << 0,
};
/* Maps length bytes at offset of fd number index read-only, once the fd is
 * known to hold them for good: a memfd sealed against shrinking (or, with
 * PIER_MAP_DMABUF, a dmabuf) at least offset + length bytes long; see
 * pier_msg_map_fd(3) for each refusal.  msg borrowed: the fd stays its.
 * *out: owned (pier_mapping_free()); it stays valid after msg is freed. */
int pier_msg_map_fd(const pier_msg *msg, size_t index, size_t offset, size_t length,
		    unsigned int flags, pier_mapping **out);
/* map borrowed; len borrowed, written (may be NULL).  Returns the mapped
 * bytes (offset to offset + length of the fd) borrowed from map: valid,
 * read-only, until pier_mapping_free(map). */
const void *pier_mapping_data(const pier_mapping *map, size_t *len);
/* map taken (NULL is fine): unmapped and freed. */
void pier_mapping_free(pier_mapping *map);

/* --- buffer pools -------------------------------------------------------- */

/*
 * A pool is memory shared once with a peer and then handed over buffer by
 * buffer: a frame is a small message naming a buffer, and the receiver
 * gives the buffer back when done (pier(7), BUFFER POOLS; the messages are
 * in doc/POOL-PROTOCOL.md).  The owner's side: pier_pool_new() (memfds
 * pier makes) or pier_pool_new_from_fds() (dmabufs or sealed memfds the
 * application brings), pier_pool_share() with a peer, then
 * pier_pool_acquire() a free buffer, fill it, pier_pool_publish() it.  The
 * receiver's side: pier_remote_pool_accept() the share request, then
 * pier_remote_pool_recv() frames and pier_pool_frame_free() them.
 */
typedef struct pier_pool pier_pool;
typedef struct pier_shared_pool pier_shared_pool;
typedef struct pier_remote_pool pier_remote_pool;
typedef struct pier_pool_frame pier_pool_frame;

/* What a receiver accepts, and an owner may make: the buffers of a pool,
 * the application's bytes that go with a frame, the pools one peer may
 * share with this process at once, and the bytes of a pool. */
#define PIER_POOL_MAX_BUFFERS 1024u
#define PIER_POOL_MAX_META 1024u
#define PIER_POOL_MAX_PER_PEER 32u
#define PIER_POOL_MAX_BYTES ((uint64_t)1 << 36)

enum pier_pool_flag {
	/* pier_pool_new(): a memfd for each buffer, not one for all. */
	PIER_POOL_FD_PER_BUFFER = 1 << 0,
	/* pier_pool_publish(): the buffer stays the application's too, to
	 * publish to more peers (then pier_pool_drop() it). */
	PIER_POOL_KEEP = 1 << 1,
};

/* *out: a new pool, owned (pier_pool_free()), of count buffers of size
 * bytes each in memfds it makes, sealed against shrinking and growing, and
 * mapped for the application to write.  flags: 0 or
 * PIER_POOL_FD_PER_BUFFER. */
int pier_pool_new(pier_pool **out, size_t size, unsigned int count, unsigned int flags);
/* *out: a new pool, owned (pier_pool_free()), of count buffers, buffer i
 * the sizes[i] first bytes of fds[i]: each a memfd sealed against
 * shrinking or a dmabuf, checked as pier_msg_map_fd(3) checks.  fds and
 * sizes borrowed: the pool keeps duplicates of the fds, and maps nothing
 * (the application or a device writes the buffers).  flags: 0. */
int pier_pool_new_from_fds(pier_pool **out, const int *fds, const size_t *sizes,
			   unsigned int count, unsigned int flags);
/* pool taken (NULL is fine).  Its memory, fds and mappings go once every
 * share of it is freed too. */
void pier_pool_free(pier_pool *pool);
/* Shares pool with the peer of w: sends its fds and geometry in a request
 * of service service_id, open as long as the share.  pool, w borrowed
 * (the share keeps references of its own).  *out: owned
 * (pier_shared_pool_free()). */
int pier_pool_share(pier_pool *pool, pier_writer *w, int32_t service_id,
		    pier_shared_pool **out);
/* share taken (NULL is fine): the peer is told the pool is closed, and the
 * buffers it held return to the pool. */
void pier_shared_pool_free(pier_shared_pool *share);
/* Takes a free buffer for the application, waiting for the peers'
 * releases up to timeout_ms (-EAGAIN at once with 0: every buffer is
 * out).  Returns its index.  pool borrowed; data, size borrowed, written
 * (each may be NULL): the buffer's bytes, borrowed from pool, the
 * application's to write until it publishes or drops the buffer (NULL for
 * a pool of brought fds). */
int pier_pool_acquire(pier_pool *pool, void **data, size_t *size, int timeout_ms);
/* Hands length bytes at offset of buffer index to the peer of share,
 * with meta_len bytes of meta: the buffer is the peer's until it releases
 * it, and no longer the application's (unless flags has
 * PIER_POOL_KEEP), whether this succeeds or not.  share borrowed; meta
 * borrowed (copied). */
int pier_pool_publish(pier_shared_pool *share, unsigned int index, size_t offset, size_t length,
		      const void *meta, size_t meta_len, unsigned int flags);
/* Gives an acquired (or kept) buffer back to the pool without publishing
 * it.  pool borrowed. */
int pier_pool_drop(pier_pool *pool, unsigned int index);
/* pool borrowed.  Returns an fd borrowed from pool, readable while a
 * buffer is free or a peer's message waits for pier_pool_acquire() to
 * read it: do not close it; valid while pool is. */
int pier_pool_fd(pier_pool *pool);

/* Accepts the pool a peer shares with the request req and its first
 * message msg: maps each of the pool's fds once, read-only, checked as
 * pier_msg_map_fd(3) checks them (flags: 0 or PIER_MAP_DMABUF), waiting
 * up to timeout_ms for the fds that follow in updates.  req taken, even on
 * failure (then answered with an error naming the refusal); msg borrowed
 * (its fds stay its own).  *out: owned (pier_remote_pool_free()). */
int pier_remote_pool_accept(pier_remote_pool **out, pier_received_request *req,
			    const pier_msg *msg, unsigned int flags, int timeout_ms);
/* The next frame.  rp borrowed.  *frame: owned (pier_pool_frame_free()):
 * the buffer is the application's to read until then. */
int pier_remote_pool_recv(pier_remote_pool *rp, pier_pool_frame **frame, int timeout_ms);
/* Sends the releases that wait to be batched now.  rp borrowed. */
int pier_remote_pool_flush(pier_remote_pool *rp);
/* rp borrowed.  Returns an fd borrowed from rp: do not close it; valid
 * while rp is. */
int pier_remote_pool_fd(pier_remote_pool *rp);
/* rp taken (NULL is fine): the peer gets every buffer back.  Frames not
 * yet freed stay readable, and keep the mappings until they are. */
void pier_remote_pool_free(pier_remote_pool *rp);
/* f borrowed; len borrowed, written (may be NULL).  Returns the frame's
 * bytes, read-only, borrowed from f: valid until pier_pool_frame_free(f). */
const void *pier_pool_frame_data(const pier_pool_frame *f, size_t *len);
/* The application's bytes sent with the frame; as pier_pool_frame_data(). */
const void *pier_pool_frame_meta(const pier_pool_frame *f, size_t *len);
/* f borrowed.  The frame's number (the owner counts up per share). */
uint32_t pier_pool_frame_seq(const pier_pool_frame *f);
/* f borrowed.  The index of its buffer in the pool. */
unsigned int pier_pool_frame_index(const pier_pool_frame *f);
/* f taken (NULL is fine): the buffer goes back to its owner (batched with
 * others). */
void pier_pool_frame_free(pier_pool_frame *f);

/* --- requests this side sent --------------------------------------------- */

/* req borrowed. */
uint32_t pier_sent_request_id(const pier_sent_request *req);
/* req borrowed. */
int32_t pier_sent_request_service_id(const pier_sent_request *req);
/* req borrowed.  *msg: owned (pier_msg_free()). */
int pier_sent_request_recv(pier_sent_request *req, pier_msg **msg, int timeout_ms);
/* req borrowed.  *msg: owned (pier_msg_free()). */
int pier_sent_request_recv_update(pier_sent_request *req, pier_msg **msg, int timeout_ms);
/* req borrowed.  *msg: owned (pier_msg_free()). */
int pier_sent_request_recv_response(pier_sent_request *req, pier_msg **msg,
				    int timeout_ms);
/* req borrowed; body (iov and its pieces), fds borrowed. */
int pier_sent_request_send_update(pier_sent_request *req, int32_t service_id,
				  const void *body, size_t len, const int *fds, size_t nfds);
int pier_sent_request_send_updatev(pier_sent_request *req, int32_t service_id,
				   const struct iovec *iov, size_t iovcnt, const int *fds,
				   size_t nfds);
/* req borrowed.  Returns an fd borrowed from the request: do not close it;
 * valid while req is. */
int pier_sent_request_fd(pier_sent_request *req);
/* req borrowed.  Returns the request's write half borrowed: valid while
 * req is, never to be unref'd; pier_sent_request_writer_ref() keeps it
 * longer. */
pier_sent_request_writer *pier_sent_request_get_writer(pier_sent_request *req);
/* req taken (NULL is fine).  References to its write half stay valid. */
void pier_sent_request_free(pier_sent_request *req);

/* w borrowed.  Returns w with a new reference
 * (pier_sent_request_writer_unref()), valid after the request handle is
 * freed; NULL for NULL. */
pier_sent_request_writer *pier_sent_request_writer_ref(pier_sent_request_writer *w);
/* Drops a reference the caller took with pier_sent_request_writer_ref().
 * Returns NULL. */
pier_sent_request_writer *pier_sent_request_writer_unref(pier_sent_request_writer *w);
/* w borrowed; body (iov and its pieces), fds borrowed. */
int pier_sent_request_writer_send_update(pier_sent_request_writer *w, int32_t service_id,
					 const void *body, size_t len, const int *fds,
					 size_t nfds);
int pier_sent_request_writer_send_updatev(pier_sent_request_writer *w, int32_t service_id,
					  const struct iovec *iov, size_t iovcnt,
					  const int *fds, size_t nfds);

/* --- requests this side received ----------------------------------------- */

/* req borrowed. */
uint32_t pier_received_request_id(const pier_received_request *req);
/* req borrowed. */
int32_t pier_received_request_service_id(const pier_received_request *req);
/* req borrowed.  *msg: owned (pier_msg_free()). */
int pier_received_request_recv_update(pier_received_request *req, pier_msg **msg,
				      int timeout_ms);
/* req borrowed; body (iov and its pieces), fds borrowed. */
int pier_received_request_send_update(pier_received_request *req, int32_t service_id,
				      const void *body, size_t len, const int *fds,
				      size_t nfds);
int pier_received_request_send_updatev(pier_received_request *req, int32_t service_id,
				       const struct iovec *iov, size_t iovcnt,
				       const int *fds, size_t nfds);
/* req borrowed; body (iov and its pieces), fds borrowed. */
int pier_received_request_send_response(pier_received_request *req, int32_t service_id,
					const void *body, size_t len, const int *fds,
					size_t nfds);
int pier_received_request_send_responsev(pier_received_request *req, int32_t service_id,
					 const struct iovec *iov, size_t iovcnt,
					 const int *fds, size_t nfds);
/* req borrowed; message borrowed (copied before the call returns). */
int pier_received_request_send_error(pier_received_request *req, const char *message);
/* req borrowed.  Returns an fd borrowed from the request: do not close it;
 * valid while req is. */
int pier_received_request_fd(pier_received_request *req);
/* req borrowed.  Returns the request's write half borrowed: valid while
 * req is, never to be unref'd; pier_received_request_writer_ref() keeps
 * it longer. */
pier_received_request_writer *pier_received_request_get_writer(pier_received_request *req);
/* req taken (NULL is fine).  References to its write half stay valid. */
void pier_received_request_free(pier_received_request *req);

/* w borrowed.  Returns w with a new reference
 * (pier_received_request_writer_unref()), valid after the request handle
 * is freed; NULL for NULL. */
pier_received_request_writer *
pier_received_request_writer_ref(pier_received_request_writer *w);
/* Drops a reference the caller took with
 * pier_received_request_writer_ref().  Returns NULL. */
pier_received_request_writer *
pier_received_request_writer_unref(pier_received_request_writer *w);
/* w borrowed; body (iov and its pieces), fds borrowed. */
int pier_received_request_writer_send_update(pier_received_request_writer *w,
					     int32_t service_id, const void *body,
					     size_t len, const int *fds, size_t nfds);
int pier_received_request_writer_send_updatev(pier_received_request_writer *w,
					      int32_t service_id, const struct iovec *iov,
					      size_t iovcnt, const int *fds, size_t nfds);
/* w borrowed; body (iov and its pieces), fds borrowed. */
int pier_received_request_writer_send_response(pier_received_request_writer *w,
					       int32_t service_id, const void *body,
					       size_t len, const int *fds, size_t nfds);
int pier_received_request_writer_send_responsev(pier_received_request_writer *w,
						int32_t service_id, const struct iovec *iov,
						size_t iovcnt, const int *fds, size_t nfds);
/* w borrowed; message borrowed (copied before the call returns). */
int pier_received_request_writer_send_error(pier_received_request_writer *w,
					    const char *message);

/* --- listeners ----------------------------------------------------------- */

/* address, cfg borrowed.  *out: a new listener, owned
 * (pier_listener_free()). */
int pier_listener_new(pier_listener **out, const char *address, const pier_config *cfg);
/* l borrowed.  *out: a new peer, owned (pier_peer_free()). */
int pier_listener_accept(pier_listener *l, pier_peer **out, int timeout_ms);
/* l borrowed.  Returns an fd borrowed from the listener: do not close it;
 * valid while l is. */
int pier_listener_fd(pier_listener *l);
/* l borrowed; buf borrowed, written (len bytes at most). */
int pier_listener_address(pier_listener *l, char *buf, size_t len);
/* l taken (NULL is fine).  Peers it handed out live on. */
void pier_listener_free(pier_listener *l);
/* A listener on fd, a listening socket made elsewhere (by systemd, or
 * inherited): TCP, or a Unix stream or seqpacket socket.  fd taken on
 * success (closed with the listener; a socket file it has is left in
 * place), left to the caller on failure: -ENOTSOCK, -EINVAL (it does not
 * listen), -EPROTONOSUPPORT (a kind pier does not serve).  cfg borrowed.
 * *out: a new listener, owned (pier_listener_free()). */
int pier_listener_adopt(pier_listener **out, int fd, const pier_config *cfg);

/* --- servers ------------------------------------------------------------- */

/* A server owns listeners, accepts peers, and hands each request and
 * stream message to the handler registered for its service id, on a
 * bounded pool of worker threads.  See pier_server_new(3). */
typedef struct pier_server pier_server;

/* What a request handler returns. */
enum pier_handler_result {
	/* The server frees the request handle (an unanswered request gets
	 * the error response "the request was dropped without a response"). */
	PIER_HANDLER_DONE = 0,
	/* The handler keeps the request handle: it owns it from now on, and
	 * frees it with pier_received_request_free(). */
	PIER_HANDLER_KEEP = 1,
};

/* Handlers run on the server's workers.  peer is borrowed, valid during
 * the call (keep its writer with pier_writer_ref()); never receive on it
 * or free it: the server does.  peer_data is what the connect hook set.
 * msg is borrowed, valid during the call; its fds that the handler does
 * not take (pier_msg_take_fd()) are closed after it.  req is the
 * handler's: see enum pier_handler_result. */
typedef int pier_request_handler(void *userdata, pier_peer *peer, void *peer_data,
				 pier_msg *msg, pier_received_request *req);
typedef void pier_stream_handler(void *userdata, pier_peer *peer, void *peer_data,
				 pier_msg *msg);
/* Called on a worker for each new peer before it is served: returns 0 to
 * serve it (and may set *peer_data, NULL before), or a negative code to
 * close it.  peer borrowed, as for handlers. */
typedef int pier_connect_hook(void *userdata, pier_peer *peer, void **peer_data);
/* Called once for each served peer when it is gone, after the last of
 * its handlers returned: reason is the connection's error
 * (-PIER_ECLOSED: the remote closed it), or -PIER_ESHUTDOWN when the
 * server stopped.  peer borrowed. */
typedef void pier_disconnect_hook(void *userdata, pier_peer *peer, void *peer_data,
				  int reason);

/* cfg borrowed (NULL: the defaults); the server's listeners and peers use
 * a copy, and its log function.  *out: a new server, owned
 * (pier_server_free()). */
int pier_server_new(pier_server **out, const pier_config *cfg);
/* Settings, before pier_server_start() (after it: -EBUSY).  s borrowed.
 * workers: threads of the pool (0: one per online CPU, the default).
 * max_peers: peers served at once (0: no limit, the default).
 * max_requests: requests in flight per peer (default 64).  timeout_ms:
 * how long pier_server_stop() lets requests in flight finish (-1: as long
 * as they take; default 5000). */
int pier_server_set_workers(pier_server *s, unsigned int workers);
int pier_server_set_max_peers(pier_server *s, unsigned int max_peers);
int pier_server_set_max_requests(pier_server *s, unsigned int max_requests);
int pier_server_set_stop_timeout(pier_server *s, int timeout_ms);
/* s borrowed; the functions and userdata are kept, never owned (either
 * hook may be NULL). */
int pier_server_set_peer_hooks(pier_server *s, pier_connect_hook *on_connect,
			       pier_disconnect_hook *on_disconnect, void *userdata);
/* s borrowed; fn and userdata kept, never owned. */
int pier_server_handle_requests(pier_server *s, int32_t service_id, pier_request_handler *fn,
				void *userdata);
int pier_server_handle_streams(pier_server *s, int32_t service_id, pier_stream_handler *fn,
			       void *userdata);
/* The handlers of every service id that has none of its own (without
 * them: the error response "unknown service id N", and stream messages
 * dropped).  s borrowed; fn and userdata kept, never owned. */
int pier_server_handle_other_requests(pier_server *s, pier_request_handler *fn,
				      void *userdata);
int pier_server_handle_other_streams(pier_server *s, pier_stream_handler *fn, void *userdata);
/* s borrowed; address borrowed.  The listener accepts from now on; the
 * server serves once started. */
int pier_server_listen(pier_server *s, const char *address);
/* The listening sockets systemd passed (LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES), those named name (NULL: all): their fds are taken.
 * Returns how many it took (0: none were passed to this process).
 * unset_environment: the three variables are removed (not thread-safe,
 * like unsetenv(3)).  s borrowed; name borrowed. */
int pier_server_listen_activated(pier_server *s, const char *name, int unset_environment);
/* s borrowed; buf borrowed, written.  The address of listener index (in
 * the order they were added). */
int pier_server_address(pier_server *s, size_t index, char *buf, size_t len);
/* Starts the workers; tells systemd READY=1 (pier_notify()).  s borrowed. */
int pier_server_start(pier_server *s);
/* Asks the server to stop: it stops accepting, answers new requests with
 * an error, lets requests in flight finish until the stop timeout, then
 * ends the rest with an error response and closes every peer.  Returns at
 * once.  Async-signal-safe: a SIGTERM handler may call it.  s borrowed. */
int pier_server_stop(pier_server *s);
/* Waits until the server has stopped and its workers are gone.  s
 * borrowed. */
int pier_server_wait(pier_server *s, int timeout_ms);

/* Called once per pier_server_watch(), on a worker: status 0 when the fd
 * became readable, or -PIER_ESHUTDOWN when the server stopped first. */
typedef void pier_watch_fn(void *userdata, int status);
/* Runs fn once, on a worker, when fd is readable: a kept request's
 * updates (pier_received_request_fd()) or a sent request's answers
 * (pier_sent_request_fd()) handled without holding a worker while they
 * do not come.  Watch again to hear of the next.  fd borrowed: it must
 * stay open until fn ran or pier_server_unwatch() returned 0.  *id (may
 * be NULL): the watch's, never 0.  s borrowed; fn and userdata kept,
 * never owned. */
int pier_server_watch(pier_server *s, int fd, pier_watch_fn *fn, void *userdata, uint64_t *id);
/* Cancels watch id: 0, and its fn will not run; -ENOENT when it ran, runs
 * or is about to.  s borrowed. */
int pier_server_unwatch(pier_server *s, uint64_t id);

/* Counters of a server, for pier_server_stat(). */
enum pier_server_stat {
	PIER_SERVER_STAT_PEERS,            /* peers served now */
	PIER_SERVER_STAT_ACCEPTED,         /* peers served in all */
	PIER_SERVER_STAT_REFUSED_PEERS,    /* refused by the connect hook */
	PIER_SERVER_STAT_FULL,             /* closed: max_peers were served */
	PIER_SERVER_STAT_REQUESTS,         /* requests handed to handlers */
	PIER_SERVER_STAT_IN_FLIGHT,        /* of those, not answered yet */
	PIER_SERVER_STAT_OVER_LIMIT,       /* refused: max_requests in flight */
	PIER_SERVER_STAT_UNKNOWN_REQUESTS, /* for no registered service id */
	PIER_SERVER_STAT_STREAMS,          /* stream messages handed to handlers */
	PIER_SERVER_STAT_UNKNOWN_STREAMS,  /* for no registered id: dropped */
	PIER_SERVER_STAT_STOPPED_REQUESTS, /* ended by the stop with an error */
	PIER_SERVER_STAT_END_
};
/* s borrowed. */
uint64_t pier_server_stat(pier_server *s, enum pier_server_stat stat);
/* s taken (NULL is fine): stopped (pier_server_stop()), waited for, and
 * freed with its listeners. */
void pier_server_free(pier_server *s);

/* Tells the service manager state ("READY=1", "STOPPING=1",
 * "STATUS=...", several separated by newlines) with a datagram to
 * $NOTIFY_SOCKET: 1 when sent, 0 when the variable is not set, or a
 * negative code.  state borrowed. */
int pier_notify(const char *state);

#ifdef __cplusplus
}
#endif

#endif /* PIER_H */
