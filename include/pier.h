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
 */
#ifndef PIER_H
#define PIER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pier-version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded at run time (compare with the
 * PIER_VERSION_* macros, which tell the version of the headers). */
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
 * or NULL for a value outside the enumeration. */
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
	PIER_ERROR_END_ /* one past the last code; not an error itself */
};

/* A static, thread-safe description of err, which is a pier error code or an
 * errno value, negated or not.  Never NULL. */
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
 * borrows the caller's fds (they may be closed as soon as the call returns).
 * A received message owns its fds until pier_msg_take_fd() hands one over;
 * pier_msg_free() closes the rest.  Every fd pier creates or receives is
 * close-on-exec.
 */

/* --- the event loop ------------------------------------------------------ */

int pier_loop_new(pier_loop **out);
pier_loop *pier_loop_ref(pier_loop *loop);
pier_loop *pier_loop_unref(pier_loop *loop);
const char *pier_loop_backend(const pier_loop *loop);

/* --- configuration ------------------------------------------------------- */

int pier_config_new(pier_config **out);
void pier_config_free(pier_config *cfg);
int pier_config_set_loop(pier_config *cfg, pier_loop *loop);
int pier_config_set_byte_order(pier_config *cfg, enum pier_byte_order order);
int pier_config_set_max_body(pier_config *cfg, size_t read_max, size_t write_max);
int pier_config_set_max_fds(pier_config *cfg, size_t max_fds);
int pier_config_set_max_queued(pier_config *cfg, size_t recv_bytes, size_t send_bytes);
int pier_config_set_max_queued_fds(pier_config *cfg, size_t recv_fds, size_t send_fds);
int pier_config_set_max_open_requests(pier_config *cfg, unsigned int max_open);
int pier_config_set_send_timeout(pier_config *cfg, int timeout_ms);
int pier_config_set_connect_timeout(pier_config *cfg, int timeout_ms);
/* The permission bits and group of a listener's Unix socket file
 * (mode 0: as the umask leaves them; gid (gid_t)-1: left alone). */
int pier_config_set_socket_mode(pier_config *cfg, mode_t mode, gid_t gid);

/* What the library has to say that no call returns (a listener dropped a
 * connection it never handed out, and why): priority is a syslog(3) level
 * (LOG_WARNING, LOG_NOTICE, ...), message one line without a newline.
 * Called on the loop thread: it must not block, nor call into libpier. */
typedef void pier_log_fn(void *userdata, int priority, const char *message);
int pier_config_set_log(pier_config *cfg, pier_log_fn *fn, void *userdata);

/* TLS (tls:// addresses); see pier-tls(7).  Without these calls a client
 * verifies the server against the system's CA store. */
enum pier_tls_client_auth {
	PIER_TLS_CLIENT_CERT_NONE = 0, /* a listener asks for none (default) */
	PIER_TLS_CLIENT_CERT_OPTIONAL, /* asks, and verifies one if sent */
	PIER_TLS_CLIENT_CERT_REQUIRED, /* refuses clients without a valid one */
};
int pier_config_set_tls_ca(pier_config *cfg, const char *file, const char *dir);
int pier_config_set_tls_cert(pier_config *cfg, const char *cert_file, const char *key_file);
int pier_config_set_tls_client_auth(pier_config *cfg, enum pier_tls_client_auth mode);
int pier_config_set_tls_server_name(pier_config *cfg, const char *name);

/* --- peers --------------------------------------------------------------- */

int pier_peer_connect(pier_peer **out, const char *address, const pier_config *cfg);
int pier_peer_adopt(pier_peer **out, int fd, const pier_config *cfg);
void pier_peer_free(pier_peer *peer);
pier_writer *pier_peer_get_writer(pier_peer *peer);
int pier_peer_recv(pier_peer *peer, pier_msg **msg, pier_received_request **req,
		   int timeout_ms);
int pier_peer_fd(pier_peer *peer);
int pier_peer_remote_address(pier_peer *peer, char *buf, size_t len);
int pier_peer_credentials(pier_peer *peer, int32_t *pid, uint32_t *uid, uint32_t *gid);
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
	PIER_STAT_END_
};
uint64_t pier_peer_stat(pier_peer *peer, enum pier_stat stat);

/* --- write halves -------------------------------------------------------- */

pier_writer *pier_writer_ref(pier_writer *w);
pier_writer *pier_writer_unref(pier_writer *w);
int pier_writer_send_request(pier_writer *w, int32_t service_id, const void *body,
			     size_t len, const int *fds, size_t nfds,
			     pier_sent_request **out);
int pier_writer_send_stream(pier_writer *w, int32_t service_id, const void *body,
			    size_t len, const int *fds, size_t nfds);
unsigned int pier_writer_max_fds(const pier_writer *w);
int pier_writer_same_peer(const pier_writer *a, const pier_writer *b);
void pier_writer_close(pier_writer *w);
void pier_writer_abort(pier_writer *w);

/* --- messages ------------------------------------------------------------ */

const struct pier_header *pier_msg_header(const pier_msg *msg);
const void *pier_msg_body(const pier_msg *msg, size_t *len);
int pier_msg_is_error(const pier_msg *msg);
size_t pier_msg_fd_count(const pier_msg *msg);
int pier_msg_fd(const pier_msg *msg, size_t index);
int pier_msg_take_fd(pier_msg *msg, size_t index);
void pier_msg_free(pier_msg *msg);

/* --- requests this side sent --------------------------------------------- */

uint32_t pier_sent_request_id(const pier_sent_request *req);
int32_t pier_sent_request_service_id(const pier_sent_request *req);
int pier_sent_request_recv(pier_sent_request *req, pier_msg **msg, int timeout_ms);
int pier_sent_request_recv_update(pier_sent_request *req, pier_msg **msg, int timeout_ms);
int pier_sent_request_recv_response(pier_sent_request *req, pier_msg **msg,
				    int timeout_ms);
int pier_sent_request_send_update(pier_sent_request *req, int32_t service_id,
				  const void *body, size_t len, const int *fds, size_t nfds);
int pier_sent_request_fd(pier_sent_request *req);
pier_sent_request_writer *pier_sent_request_get_writer(pier_sent_request *req);
void pier_sent_request_free(pier_sent_request *req);

pier_sent_request_writer *pier_sent_request_writer_ref(pier_sent_request_writer *w);
pier_sent_request_writer *pier_sent_request_writer_unref(pier_sent_request_writer *w);
int pier_sent_request_writer_send_update(pier_sent_request_writer *w, int32_t service_id,
					 const void *body, size_t len, const int *fds,
					 size_t nfds);

/* --- requests this side received ----------------------------------------- */

uint32_t pier_received_request_id(const pier_received_request *req);
int32_t pier_received_request_service_id(const pier_received_request *req);
int pier_received_request_recv_update(pier_received_request *req, pier_msg **msg,
				      int timeout_ms);
int pier_received_request_send_update(pier_received_request *req, int32_t service_id,
				      const void *body, size_t len, const int *fds,
				      size_t nfds);
int pier_received_request_send_response(pier_received_request *req, int32_t service_id,
					const void *body, size_t len, const int *fds,
					size_t nfds);
int pier_received_request_send_error(pier_received_request *req, const char *message);
int pier_received_request_fd(pier_received_request *req);
pier_received_request_writer *pier_received_request_get_writer(pier_received_request *req);
void pier_received_request_free(pier_received_request *req);

pier_received_request_writer *
pier_received_request_writer_ref(pier_received_request_writer *w);
pier_received_request_writer *
pier_received_request_writer_unref(pier_received_request_writer *w);
int pier_received_request_writer_send_update(pier_received_request_writer *w,
					     int32_t service_id, const void *body,
					     size_t len, const int *fds, size_t nfds);
int pier_received_request_writer_send_response(pier_received_request_writer *w,
					       int32_t service_id, const void *body,
					       size_t len, const int *fds, size_t nfds);
int pier_received_request_writer_send_error(pier_received_request_writer *w,
					    const char *message);

/* --- listeners ----------------------------------------------------------- */

int pier_listener_new(pier_listener **out, const char *address, const pier_config *cfg);
int pier_listener_accept(pier_listener *l, pier_peer **out, int timeout_ms);
int pier_listener_fd(pier_listener *l);
int pier_listener_address(pier_listener *l, char *buf, size_t len);
void pier_listener_free(pier_listener *l);

#ifdef __cplusplus
}
#endif

#endif /* PIER_H */
