/* SPDX-License-Identifier: MIT */
/*
 * TLS: the settings a configuration carries, the OpenSSL contexts built from
 * them, and a connection's TLS session.  A session never touches the socket:
 * the reader feeds it what it received (ciphertext in) and takes plaintext
 * out for the parser; the writer hands it plaintext frames to encrypt and
 * sends what it produced (ciphertext out).  A session is for one thread at
 * a time: its caller (the TLS framing) holds a lock around every call.
 *
 * Everything but the settings exists only in builds with OpenSSL.
 */
#ifndef PIER_TLS_SESSION_H
#define PIER_TLS_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pier.h>

struct tls_ctx;

/* What pier_config_set_tls_*() set; owned by a pier_config. */
struct tls_settings {
	char *ca_file, *ca_dir;
	char *cert_file, *key_file;
	char *server_name;
	enum pier_tls_client_auth client_auth;
	/* The client context built from these, kept for later connects. */
	pthread_mutex_t mu;
	struct tls_ctx *client_ctx;
};

void tls_settings_free(struct tls_settings *s);

#ifdef HAVE_OPENSSL

/* Checks files before the settings take them, so that the setter reports
 * what is wrong: -errno for a file or directory that cannot be read,
 * -EISDIR / -ENOTDIR for the wrong kind, -PIER_ECERTFILE for a CA or
 * certificate file that holds no PEM certificate, -PIER_EKEYFILE for a key
 * file that holds no unencrypted PEM key, -PIER_EKEYMISMATCH for a key
 * that is not the certificate's.  NULL files are fine. */
int tls_check_ca(const char *file, const char *dir);
int tls_check_cert(const char *cert_file, const char *key_file);

/* A context: settings loaded (CA store, certificate and key).  s may be
 * NULL (the defaults).  Fails like the checks above (the files may have
 * changed since), or with -PIER_ENOCERT for a server without a
 * certificate. */
int tls_ctx_new(struct tls_ctx **out, const struct tls_settings *s, bool server);
void tls_ctx_free(struct tls_ctx *ctx);
/* The client context of s (NULL: the defaults, once per process), built
 * once and shared: the caller gets a reference, dropped with
 * tls_ctx_free(). */
int tls_client_ctx(struct tls_ctx **out, struct tls_settings *s);

struct tls;

/* A session of ctx.  A client checks the server's certificate against
 * host, a name or an IP address, and sends host as SNI when a name. */
int tls_new(struct tls **out, struct tls_ctx *ctx, const char *host);
void tls_free(struct tls *t);

/* Ciphertext received (len 0: the end of the stream), lent: data must
 * stay as it is until tls_in_left() is 0.  tls_read() takes all it can:
 * when it returns 0, nothing is left. */
void tls_feed(struct tls *t, const void *data, size_t len);
size_t tls_in_left(const struct tls *t);
/* Whether tls_read() may give more without more ciphertext: some is left,
 * the end was fed, or plaintext waits.  When not, it would return 0. */
bool tls_read_more(const struct tls *t);
/* Plaintext out: > 0 bytes, 0 when more ciphertext is needed, or why the
 * stream ended: -PIER_ECLOSED after close_notify, another -PIER_E* or
 * -errno on a failure (the handshake's too). */
ssize_t tls_read(struct tls *t, void *buf, size_t len);
/* Plaintext in (once the handshake is done): the bytes taken, or < 0. */
ssize_t tls_write(struct tls *t, const void *buf, size_t len);
/* Ciphertext to send, in order: how much waits, and taking all of it,
 * *data bytes of the session's (nothing is copied), valid until the next
 * tls_out_take(), which means the caller is done with them.  When nothing
 * waits it returns 0 and frees the session's buffers. */
size_t tls_out_pending(const struct tls *t);
size_t tls_out_take(struct tls *t, const unsigned char **data);
/* How much ciphertext the session has produced so far, in all: a change
 * across tls_read() means reading made something to send. */
uint64_t tls_out_count(const struct tls *t);
/* The memory the session's buffers of ciphertext to send hold: none once
 * tls_out_take() found nothing more to send. */
size_t tls_out_buffered(const struct tls *t);
/* The handshake is done. */
bool tls_ready(const struct tls *t);
/* The remote's first handshake message (a client's hello) has arrived. */
bool tls_hello_seen(const struct tls *t);
/* Queues close_notify (after the handshake; nothing otherwise). */
void tls_close_notify(struct tls *t);
/* The verified subject of the remote's certificate, one line, in a new
 * string, or NULL when it sent none. */
char *tls_subject(const struct tls *t);

#else /* !HAVE_OPENSSL: no session ever exists; the calls fail. */

struct tls;

static inline int tls_check_ca(const char *file, const char *dir)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline int tls_check_cert(const char *cert_file, const char *key_file)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline int tls_client_ctx(struct tls_ctx **out, struct tls_settings *s)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline int tls_ctx_new(struct tls_ctx **out, const struct tls_settings *s,
			      bool server)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline void tls_ctx_free(struct tls_ctx *ctx) {}
static inline int tls_new(struct tls **out, struct tls_ctx *ctx, const char *host)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline void tls_free(struct tls *t) {}
static inline void tls_feed(struct tls *t, const void *data, size_t len) {}
static inline size_t tls_in_left(const struct tls *t)
{
	return 0;
}
static inline bool tls_read_more(const struct tls *t)
{
	return false;
}
static inline ssize_t tls_read(struct tls *t, void *buf, size_t len)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline ssize_t tls_write(struct tls *t, const void *buf, size_t len)
{
	return -PIER_ETLSUNAVAILABLE;
}
static inline size_t tls_out_pending(const struct tls *t)
{
	return 0;
}
static inline size_t tls_out_take(struct tls *t, const unsigned char **data)
{
	*data = NULL;
	return 0;
}
static inline uint64_t tls_out_count(const struct tls *t)
{
	return 0;
}
static inline size_t tls_out_buffered(const struct tls *t)
{
	return 0;
}
static inline bool tls_ready(const struct tls *t)
{
	return false;
}
static inline bool tls_hello_seen(const struct tls *t)
{
	return false;
}
static inline void tls_close_notify(struct tls *t) {}
static inline char *tls_subject(const struct tls *t)
{
	return NULL;
}

#endif /* HAVE_OPENSSL */

#endif
