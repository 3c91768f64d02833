/* SPDX-License-Identifier: MIT */
/*
 * TLS sessions (OpenSSL) over BIOs of their own, and the contexts they come
 * from.  See tls-session.h for how a session is driven, and tls.c for the
 * framing that drives it.
 *
 * The BIOs copy nothing they need not: OpenSSL reads received ciphertext
 * straight from the caller's buffer (tls_feed() lends it), and writes what
 * it makes into a buffer that tls_out_take() hands over whole, taking back
 * the one handed over before (its content sent) for what comes next.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "private.h"
#include "tls-session.h"

/* A context is an SSL_CTX; OpenSSL counts its references. */
static SSL_CTX *ssl_ctx(struct tls_ctx *ctx)
{
	return (SSL_CTX *)ctx;
}

/* Ciphertext made by the session, to send. */
struct tls_buf {
	unsigned char *data;
	size_t len, cap;
};

struct tls {
	SSL *ssl;
	/* Ciphertext received and not yet taken: the caller's (tls_feed()). */
	const unsigned char *in;
	size_t in_len;
	/* Ciphertext to send: what the session writes into, and what
	 * tls_out_take() handed over last. */
	struct tls_buf out, taken;
	uint64_t out_count; /* bytes written into out, in all */
	bool server;
	bool eof; /* tls_feed() was told the stream ended */
	bool up; /* the handshake was done before the last call (a failure
		  * may leave OpenSSL's own state uninitialised again) */
};

/* The least an output buffer is made for: small records fit, and their
 * buffers come from the allocator's per-thread caches. */
#define OUT_MIN 512u

/* Empties this thread's error queue, which must be empty before a call
 * whose failure SSL_get_error() is to explain (another user of OpenSSL on
 * the thread may have left something there); cheaply when it is. */
static void err_clear(void)
{
	if (ERR_peek_error())
		ERR_clear_error();
}

/* --- contexts ------------------------------------------------------------ */

/* Why a file could not be used: errno when it cannot be read, or what is
 * wrong with its content. */
static int file_error(const char *path, int what)
{
	struct stat st;

	ERR_clear_error();
	if (stat(path, &st) < 0 || access(path, R_OK) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? -EISDIR : what;
}

/* An encrypted key fails to load instead of OpenSSL asking for its
 * passphrase on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int load_ca(SSL_CTX *ctx, const char *file, const char *dir)
{
	struct stat st;

	if (!file && !dir) {
		if (SSL_CTX_set_default_verify_paths(ctx))
			return 0;
		ERR_clear_error();
		return -PIER_ECERTINVALID;
	}
	/* OpenSSL looks into a directory only when it verifies. */
	if (dir && stat(dir, &st) < 0)
		return -errno;
	if (dir && !S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (dir && access(dir, R_OK | X_OK) < 0)
		return -errno;
	if (!SSL_CTX_load_verify_locations(ctx, file, dir))
		return file_error(file ? file : dir, -PIER_ECERTFILE);
	return 0;
}

static int load_cert(SSL_CTX *ctx, const char *cert, const char *key)
{
	EVP_PKEY *pkey = NULL;
	BIO *b;
	int ok;

	if (!SSL_CTX_use_certificate_chain_file(ctx, cert))
		return file_error(cert, -PIER_ECERTFILE);
	b = BIO_new_file(key, "r");
	if (b)
		pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (!pkey)
		return file_error(key, -PIER_EKEYFILE);
	ok = SSL_CTX_use_PrivateKey(ctx, pkey) && SSL_CTX_check_private_key(ctx);
	EVP_PKEY_free(pkey);
	if (!ok) {
		ERR_clear_error();
		return -PIER_EKEYMISMATCH;
	}
	return 0;
}

static int load_files(SSL_CTX *ctx, const struct tls_settings *s, bool server)
{
	int r;

	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	r = load_ca(ctx, s ? s->ca_file : NULL, s ? s->ca_dir : NULL);
	if (r < 0)
		return r;
	if (s && s->cert_file) {
		r = load_cert(ctx, s->cert_file, s->key_file);
		if (r < 0)
			return r;
	} else if (server) {
		return -PIER_ENOCERT;
	}
	if (server && s && s->client_auth != PIER_TLS_CLIENT_CERT_NONE) {
		int mode = SSL_VERIFY_PEER;

		if (s->client_auth == PIER_TLS_CLIENT_CERT_REQUIRED)
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
		SSL_CTX_set_verify(ctx, mode, NULL);
		if (s->ca_file) {
			/* Tell clients which CAs this side accepts. */
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(s->ca_file);

			if (names)
				SSL_CTX_set_client_CA_list(ctx, names);
		}
	}
	return 0;
}

/* Loads the files into a context made for the purpose, to tell at once
 * what is wrong with them: check(ctx, a, b) on a throwaway context. */
static int check_files(int (*check)(SSL_CTX *, const char *, const char *), const char *a,
		       const char *b)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	int r;

	if (!ctx) {
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	r = check(ctx, a, b);
	SSL_CTX_free(ctx);
	return r;
}

int tls_check_ca(const char *file, const char *dir)
{
	return file || dir ? check_files(load_ca, file, dir) : 0;
}

int tls_check_cert(const char *cert_file, const char *key_file)
{
	return cert_file ? check_files(load_cert, cert_file, key_file) : 0;
}

int tls_ctx_new(struct tls_ctx **out, const struct tls_settings *s, bool server)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	int r;

	if (!ctx) {
		ERR_clear_error();
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	/* Write one record at a time; idle connections keep no buffers. */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
	if (server) {
		/* Sessions are never resumed: no tickets, no cache. */
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	r = load_files(ctx, s, server);
	if (r < 0) {
		SSL_CTX_free(ctx);
		return r;
	}
	*out = (struct tls_ctx *)ctx;
	return 0;
}

void tls_ctx_free(struct tls_ctx *ctx)
{
	SSL_CTX_free(ssl_ctx(ctx));
}

/* The client context of a configuration without TLS settings: the
 * system's store, loaded once per process. */
static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ctx *default_client_ctx;

int tls_client_ctx(struct tls_ctx **out, struct tls_settings *s)
{
	pthread_mutex_t *mu = s ? &s->mu : &default_mu;
	struct tls_ctx **cache = s ? &s->client_ctx : &default_client_ctx;
	int r = 0;

	pthread_mutex_lock(mu);
	if (!*cache)
		r = tls_ctx_new(cache, s, false);
	if (r == 0) {
		SSL_CTX_up_ref(ssl_ctx(*cache));
		*out = *cache;
	}
	pthread_mutex_unlock(mu);
	return r;
}

/* --- the session's BIOs ---------------------------------------------------- */

static BIO_METHOD *in_method, *out_method;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* OpenSSL reads ciphertext: what tls_feed() lent, then "try again", or the
 * end once tls_feed() said so. */
static int in_read(BIO *b, char *buf, size_t len, size_t *got)
{
	struct tls *t = BIO_get_data(b);
	size_t n = len < t->in_len ? len : t->in_len;

	BIO_clear_retry_flags(b);
	*got = n;
	if (n == 0) {
		if (!t->eof)
			BIO_set_retry_read(b);
		return 0;
	}
	memcpy(buf, t->in, n);
	t->in += n;
	t->in_len -= n;
	return 1;
}

static long in_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls *t = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_EOF:
		return t->eof && !t->in_len;
	case BIO_CTRL_PENDING:
		return (long)t->in_len;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

/* OpenSSL writes ciphertext: appended to the output buffer. */
static int out_write(BIO *b, const char *buf, size_t len, size_t *put)
{
	struct tls *t = BIO_get_data(b);
	struct tls_buf *o = &t->out;

	BIO_clear_retry_flags(b);
	*put = 0;
	if (o->cap - o->len < len) {
		/* Room for twice as much: the records of a batch (tls.c) cost
		 * one copy at most. */
		size_t cap = o->len + len < OUT_MIN / 2 ? OUT_MIN : 2 * (o->len + len);
		unsigned char *data;

		data = realloc(o->data, cap);
		if (!data)
			return 0;
		o->data = data;
		o->cap = cap;
	}
	memcpy(o->data + o->len, buf, len);
	o->len += len;
	t->out_count += len;
	*put = len;
	return 1;
}

static long out_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls *t = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_PENDING:
	case BIO_CTRL_WPENDING:
		return (long)t->out.len;
	case BIO_CTRL_FLUSH:
		return 1;
	default:
		return 0;
	}
}

static void methods_make(void)
{
	int type = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;

	in_method = BIO_meth_new(type, "pier ciphertext in");
	out_method = BIO_meth_new(type, "pier ciphertext out");
	if (!in_method || !out_method || !BIO_meth_set_create(in_method, bio_create) ||
	    !BIO_meth_set_read_ex(in_method, in_read) || !BIO_meth_set_ctrl(in_method, in_ctrl) ||
	    !BIO_meth_set_create(out_method, bio_create) ||
	    !BIO_meth_set_write_ex(out_method, out_write) ||
	    !BIO_meth_set_ctrl(out_method, out_ctrl)) {
		BIO_meth_free(in_method);
		BIO_meth_free(out_method);
		in_method = out_method = NULL;
	}
}

/* --- sessions ------------------------------------------------------------ */

static bool is_ip(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

int tls_new(struct tls **out, struct tls_ctx *ctx, const char *host)
{
	struct tls *t = calloc(1, sizeof(*t));
	SSL_CTX *sctx = ssl_ctx(ctx);
	BIO *rbio = NULL, *wbio = NULL;
	bool ok;

	if (!t)
		return -ENOMEM;
	pthread_once(&methods_once, methods_make);
	t->server = SSL_CTX_get_ssl_method(sctx) == TLS_server_method();
	t->ssl = SSL_new(sctx);
	if (in_method && out_method) {
		rbio = BIO_new(in_method);
		wbio = BIO_new(out_method);
	}
	ok = t->ssl && rbio && wbio;
	if (ok) {
		BIO_set_data(rbio, t);
		BIO_set_data(wbio, t);
		SSL_set_bio(t->ssl, rbio, wbio); /* takes both */
		if (t->server) {
			SSL_set_accept_state(t->ssl);
		} else {
			SSL_set_connect_state(t->ssl);
			if (is_ip(host)) {
				ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
			} else {
				ok = SSL_set1_host(t->ssl, host) &&
				     SSL_set_tlsext_host_name(t->ssl, host);
			}
		}
	} else {
		BIO_free(rbio);
		BIO_free(wbio);
	}
	if (!ok) {
		ERR_clear_error();
		SSL_free(t->ssl);
		free(t);
		return -ENOMEM;
	}
	*out = t;
	return 0;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t->out.data);
	free(t->taken.data);
	free(t);
}

void tls_feed(struct tls *t, const void *data, size_t len)
{
	if (len == 0)
		t->eof = true;
	t->in = data;
	t->in_len = len;
}

size_t tls_in_left(const struct tls *t)
{
	return t->in_len;
}

bool tls_read_more(const struct tls *t)
{
	return t->in_len || t->eof || SSL_pending(t->ssl) > 0;
}

/* What a certificate verification failure means to the application. */
static int verify_error(long v)
{
	switch (v) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return -PIER_ECERTEXPIRED;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return -PIER_ECERTNAME;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
		return -PIER_ECERTUNTRUSTED;
	default:
		return -PIER_ECERTINVALID;
	}
}

/* What an alert from the remote, or a record this side could not take,
 * means to the application. */
static int ssl_reason_error(unsigned long e, bool ready)
{
	switch (ERR_GET_REASON(e)) {
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
		return -PIER_ECERTREQUIRED;
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
	case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
	case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
	case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
		return -PIER_ECERTREFUSED;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		return -PIER_ECERTREQUIRED; /* the listener's view */
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_HTTP_REQUEST:
	case SSL_R_HTTPS_PROXY_REQUEST:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_WRONG_SSL_VERSION:
		return ready ? -PIER_ETLS : -PIER_ENOTLS;
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
	case SSL_R_UNEXPECTED_EOF_WHILE_READING:
		return ready ? -PIER_ETLSTRUNCATED : -PIER_ENOTLS;
#endif
	default:
		return -PIER_ETLS;
	}
}

/* The error of an SSL call that returned ret; clears the error queue. */
static int ssl_error(struct tls *t, int ret)
{
	int e = SSL_get_error(t->ssl, ret), r;
	bool ready = t->up;
	long v;

	switch (e) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		r = 0;
		break;
	case SSL_ERROR_ZERO_RETURN:
		r = -PIER_ECLOSED;
		break;
	case SSL_ERROR_SYSCALL:
		/* OpenSSL 1.1: the stream ended without close_notify. */
		r = ready ? -PIER_ETLSTRUNCATED : -PIER_ENOTLS;
		break;
	case SSL_ERROR_SSL:
		v = SSL_get_verify_result(t->ssl);
		if (!ready && v != X509_V_OK)
			r = verify_error(v);
		else
			r = ssl_reason_error(ERR_peek_last_error(), ready);
		break;
	default:
		r = -PIER_ETLS;
		break;
	}
	err_clear();
	return r;
}

bool tls_hello_seen(const struct tls *t)
{
	return SSL_get_state(t->ssl) != TLS_ST_BEFORE;
}

ssize_t tls_read(struct tls *t, void *buf, size_t len)
{
	int n;

	/* A server that has received nothing has nothing to do yet: OpenSSL
	 * would set up its handshake buffers (about 47 KiB) for a connection
	 * that may never say a word. */
	if (t->server && !t->eof && !tls_hello_seen(t) && !t->in_len)
		return 0;
	err_clear();
	n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (SSL_is_init_finished(t->ssl))
		t->up = true;
	return n > 0 ? n : ssl_error(t, n);
}

ssize_t tls_write(struct tls *t, const void *buf, size_t len)
{
	int n;

	err_clear();
	n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	n = ssl_error(t, n);
	return n < 0 ? n : -PIER_ETLS; /* the output BIO never makes it wait */
}

size_t tls_out_pending(const struct tls *t)
{
	return t->out.len;
}

size_t tls_out_take(struct tls *t, const unsigned char **data)
{
	struct tls_buf done = t->taken;

	if (!t->out.len) {
		/* An idle session keeps no buffer. */
		free(t->out.data);
		free(done.data);
		t->out = t->taken = (struct tls_buf){ 0 };
		*data = NULL;
		return 0;
	}
	t->taken = t->out;
	t->out = done;
	t->out.len = 0;
	*data = t->taken.data;
	return t->taken.len;
}

uint64_t tls_out_count(const struct tls *t)
{
	return t->out_count;
}

size_t tls_out_buffered(const struct tls *t)
{
	return t->out.cap + t->taken.cap;
}

bool tls_ready(const struct tls *t)
{
	return t->up;
}

void tls_close_notify(struct tls *t)
{
	if (!t->up)
		return;
	err_clear();
	SSL_shutdown(t->ssl);
	err_clear();
}

char *tls_subject(const struct tls *t)
{
	X509 *cert = SSL_get_peer_certificate(t->ssl);
	BIO *b;
	char *s = NULL;
	long n;
	char *data;

	if (!cert)
		return NULL;
	b = BIO_new(BIO_s_mem());
	if (b && X509_NAME_print_ex(b, X509_get_subject_name(cert), 0,
				    XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_get_mem_data(b, &data);
		s = malloc((size_t)n + 1);
		if (s) {
			memcpy(s, data, (size_t)n);
			s[n] = '\0';
		}
	}
	BIO_free(b);
	X509_free(cert);
	ERR_clear_error();
	return s;
}
