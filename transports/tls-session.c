/* SPDX-License-Identifier: MIT */
/*
 * TLS sessions over memory BIOs (OpenSSL), and the contexts they come from.
 * See tls-session.h for how a session is driven, and tls.c for the framing
 * that drives it.
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

struct tls {
	SSL *ssl;
	BIO *in, *out; /* memory BIOs: ciphertext received, and to send */
	bool server;
	bool eof; /* tls_feed() was told the stream ended */
	bool up; /* the handshake was done before the last call (a failure
		  * may leave OpenSSL's own state uninitialised again) */
};

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
	bool ok;

	if (!t)
		return -ENOMEM;
	t->server = SSL_CTX_get_ssl_method(sctx) == TLS_server_method();
	t->ssl = SSL_new(sctx);
	t->in = BIO_new(BIO_s_mem());
	t->out = BIO_new(BIO_s_mem());
	ok = t->ssl && t->in && t->out;
	if (ok) {
		/* Empty means "wait for more", until tls_feed() says it ended. */
		BIO_set_mem_eof_return(t->in, -1);
		SSL_set_bio(t->ssl, t->in, t->out); /* takes both */
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
		BIO_free(t->in);
		BIO_free(t->out);
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
	free(t);
}

int tls_feed(struct tls *t, const void *data, size_t len)
{
	if (len == 0) {
		BIO_set_mem_eof_return(t->in, 0);
		t->eof = true;
		return 0;
	}
	if (BIO_write(t->in, data, (int)len) != (int)len) {
		ERR_clear_error();
		return -ENOMEM;
	}
	return 0;
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
	ERR_clear_error();
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
	if (t->server && !t->eof && !tls_hello_seen(t) && !BIO_ctrl_pending(t->in))
		return 0;
	ERR_clear_error();
	n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (SSL_is_init_finished(t->ssl))
		t->up = true;
	return n > 0 ? n : ssl_error(t, n);
}

ssize_t tls_write(struct tls *t, const void *buf, size_t len)
{
	int n;

	ERR_clear_error();
	n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	n = ssl_error(t, n);
	return n < 0 ? n : -PIER_ETLS; /* a memory BIO never makes it wait */
}

size_t tls_out_pending(const struct tls *t)
{
	return BIO_ctrl_pending(t->out);
}

size_t tls_out_take(struct tls *t, void *buf, size_t len)
{
	int n = BIO_read(t->out, buf, len > INT32_MAX ? INT32_MAX : (int)len);

	return n > 0 ? (size_t)n : 0;
}

uint64_t tls_out_count(const struct tls *t)
{
	return BIO_number_written(t->out);
}

bool tls_ready(const struct tls *t)
{
	return t->up;
}

void tls_close_notify(struct tls *t)
{
	if (!t->up)
		return;
	ERR_clear_error();
	SSL_shutdown(t->ssl);
	ERR_clear_error();
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
