/* SPDX-License-Identifier: MIT */
/*
 * TLS: the settings and their errors, every refusal (unknown CA, wrong
 * name, expired certificate, missing or rejected client certificate, plain
 * TCP against TLS and back, a handshake that never finishes), mutual TLS
 * with the verified subject, and interoperation with the openssl command's
 * s_server and s_client exchanging raw Fizyr frames.  The per-transport
 * conformance suites run over TLS too (PAIR_TLS).  In a build without
 * OpenSSL, only the "built without TLS" errors are tested.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "loop.h"
#include "peers.h"
#include "pki.h"
#include "route.h"
#include "tls-session.h"

#ifdef HAVE_OPENSSL
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#endif

#ifdef HAVE_OPENSSL

/* --- helpers ------------------------------------------------------------- */

static pier_config *client_config(const char *ca)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	if (ca)
		ck_assert_int_eq(pier_config_set_tls_ca(cfg, ca, NULL), 0);
	return cfg;
}

static pier_config *server_config(const char *cert, const char *key)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, cert, key), 0);
	return cfg;
}

/* A TLS listener on 127.0.0.1 (its address in addr). */
static pier_listener *listen_tls(pier_config *cfg, char *addr, size_t len)
{
	pier_listener *l;
	int r = pier_listener_new(&l, "tls://127.0.0.1:0", cfg);

	ck_assert_msg(r == 0, "listen: %s", pier_strerror(r));
	ck_assert_int_eq(pier_listener_address(l, addr, len), 0);
	return l;
}

/* The address with its scheme replaced (tls:// <-> tcp://). */
static void with_scheme(char *out, size_t len, const char *addr, const char *scheme)
{
	snprintf(out, len, "%s%s", scheme, strstr(addr, "://"));
}

/* A plain TCP socket listening on 127.0.0.1 at a free port, which addr
 * names as a tls:// address. */
static int raw_listen(char *addr, size_t len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	snprintf(addr, len, "tls://127.0.0.1:%u", ntohs(sin.sin_port));
	return fd;
}

/* A plain TCP connection to the port of addr (any scheme, on 127.0.0.1). */
static int raw_connect(const char *addr)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_port = htons((uint16_t)atoi(strrchr(addr, ':') + 1));
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* Connects to a listener using cert/key with the given client config:
 * the connect's result.  The listener must not hand out a peer unless
 * the connect succeeded and the listener accepts the client. */
static int connect_to(const char *cert, const char *key, pier_config *client)
{
	pier_config *scfg = server_config(cert, key);
	pier_listener *l;
	pier_peer *a, *b;
	char addr[128];
	int r;

	l = listen_tls(scfg, addr, sizeof(addr));
	r = pier_peer_connect(&a, addr, client);
	if (r == 0) {
		ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
		pier_peer_free(b);
		pier_peer_free(a);
	} else {
		ck_assert_int_eq(pier_listener_accept(l, &b, 200), -ETIMEDOUT);
	}
	pier_listener_free(l);
	pier_config_free(scfg);
	return r;
}

/* The port a socket is bound to. */
static unsigned int local_port(int fd)
{
	struct sockaddr_in sin;
	socklen_t sl = sizeof(sin);

	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	return ntohs(sin.sin_port);
}

/* The remote closed fd (or reset it): it reads the end within WAIT. */
static void assert_closed_by_remote(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[64];

	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	ck_assert_int_le(read(fd, buf, sizeof(buf)), 0);
}

/* --- settings ------------------------------------------------------------ */

START_TEST(settings_checked)
{
	const struct pki *pki = pki_get();
	pier_config *cfg;
	pier_listener *l;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_tls_ca(NULL, pki->ca, NULL), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, "", NULL), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, NULL), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, NULL, pki->server_key), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_client_auth(cfg, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, ""), -EINVAL);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, NULL, NULL), 0);
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, NULL), 0);

	/* A listener needs a certificate. */
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", cfg), -PIER_ENOCERT);
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", NULL), -PIER_ENOCERT);
	pier_config_free(cfg);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *f = fopen(from, "r");
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	write_file(to, buf);
}

/* The key in key_file, written to path encrypted with a passphrase. */
static void write_encrypted_key(const char *key_file, const char *path)
{
	FILE *f = fopen(key_file, "r");
	EVP_PKEY *pkey;

	ck_assert_ptr_nonnull(f);
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(pkey);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, pkey, EVP_aes_128_cbc(),
					      (unsigned char *)"secret", 6, NULL, NULL), 1);
	fclose(f);
	EVP_PKEY_free(pkey);
}

/* Each file is read when it is set, and the setter says what is wrong with
 * it; a refused setting leaves the previous one in place. */
START_TEST(file_errors_when_set)
{
	const struct pki *pki = pki_get();
	pier_config *cfg = server_config(pki->server, pki->server_key);
	char notpem[128], encrypted[128], addr[128];

	snprintf(notpem, sizeof(notpem), "%s/not-pem.txt", pki->dir);
	write_file(notpem, "not a certificate\n");
	snprintf(encrypted, sizeof(encrypted), "%s/encrypted.key", pki->dir);
	write_encrypted_key(pki->server_key, encrypted);

	ck_assert_int_eq(pier_config_set_tls_ca(cfg, "/nonexistent/ca.pem", NULL), -ENOENT);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, notpem, NULL), -PIER_ECERTFILE);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, pki->server_key, NULL), -PIER_ECERTFILE);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, pki->dir, NULL), -EISDIR);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, NULL, "/nonexistent"), -ENOENT);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, NULL, pki->ca), -ENOTDIR);

	ck_assert_int_eq(pier_config_set_tls_cert(cfg, "/nonexistent/c.pem", pki->server_key),
			 -ENOENT);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, "/nonexistent/k.pem"), -ENOENT);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, notpem, pki->server_key), -PIER_ECERTFILE);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server_key, pki->server_key),
			 -PIER_ECERTFILE);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, notpem), -PIER_EKEYFILE);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, pki->server), -PIER_EKEYFILE);
	/* Refused, not a passphrase asked for on the terminal. */
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, encrypted), -PIER_EKEYFILE);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, pki->client_key),
			 -PIER_EKEYMISMATCH);

	/* The settings are still the good ones. */
	pier_listener_free(listen_tls(cfg, addr, sizeof(addr)));
	pier_config_free(cfg);
}
END_TEST

/* The files are read again on use: a file changed since it was set is
 * reported then, with the same codes. */
START_TEST(file_errors_when_used)
{
	const struct pki *pki = pki_get();
	char cert[128], key[128], ca[128];
	pier_config *scfg, *ccfg;
	pier_listener *l;
	pier_peer *p;

	snprintf(cert, sizeof(cert), "%s/used.pem", pki->dir);
	snprintf(key, sizeof(key), "%s/used.key", pki->dir);
	snprintf(ca, sizeof(ca), "%s/used-ca.pem", pki->dir);
	copy_file(pki->server, cert);
	copy_file(pki->server_key, key);
	copy_file(pki->ca, ca);
	scfg = server_config(cert, key);
	ccfg = client_config(ca);

	copy_file(pki->client_key, key);
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", scfg), -PIER_EKEYMISMATCH);
	write_file(key, "gone\n");
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", scfg), -PIER_EKEYFILE);
	write_file(cert, "gone\n");
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", scfg), -PIER_ECERTFILE);
	unlink(cert);
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", scfg), -ENOENT);

	/* A client loads its CA on connect, before any connection is made. */
	unlink(ca);
	ck_assert_int_eq(pier_peer_connect(&p, "tls://127.0.0.1:1", ccfg), -ENOENT);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

START_TEST(client_settings_checked)
{
	const struct pki *pki = pki_get();
	pier_config *cfg = client_config(pki->ca);
	pier_peer *p;

	/* No name to check the certificate against. */
	ck_assert_int_eq(pier_peer_connect(&p, "tls://:1", cfg), -EINVAL);
	pier_config_free(cfg);
}
END_TEST

/* --- refusals ------------------------------------------------------------ */

START_TEST(unknown_ca)
{
	const struct pki *pki = pki_get();
	pier_config *rogue = client_config(pki->rogue_ca), *system = client_config(NULL),
		    *ours = client_config(pki->ca);

	/* Trusting another CA; trusting the system's store only. */
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, rogue), -PIER_ECERTUNTRUSTED);
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, system), -PIER_ECERTUNTRUSTED);
	/* A server whose certificate another CA issued. */
	ck_assert_int_eq(connect_to(pki->rogue, pki->rogue_key, ours), -PIER_ECERTUNTRUSTED);
	/* The CA given as a directory of hashed names does not hold it. */
	ck_assert_int_eq(pier_config_set_tls_ca(ours, NULL, pki->dir), 0);
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, ours), -PIER_ECERTUNTRUSTED);
	pier_config_free(rogue);
	pier_config_free(system);
	pier_config_free(ours);
}
END_TEST

START_TEST(wrong_name)
{
	const struct pki *pki = pki_get();
	pier_config *cfg = client_config(pki->ca);

	ck_assert_int_eq(connect_to(pki->server, pki->server_key, cfg), 0);
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, "other.example"), 0);
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, cfg), -PIER_ECERTNAME);
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, "10.1.2.3"), 0);
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, cfg), -PIER_ECERTNAME);
	/* The name the certificate does carry, instead of the address. */
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, "localhost"), 0);
	ck_assert_int_eq(connect_to(pki->server, pki->server_key, cfg), 0);
	pier_config_free(cfg);
}
END_TEST

START_TEST(expired_certificate)
{
	const struct pki *pki = pki_get();
	pier_config *cfg = client_config(pki->ca);

	ck_assert_int_eq(connect_to(pki->expired, pki->expired_key, cfg), -PIER_ECERTEXPIRED);
	pier_config_free(cfg);
}
END_TEST

/* A connection the listener refuses after the client's handshake is done
 * (TLS 1.3 checks the client's certificate last): the client's first
 * receive says why, and the listener hands out nothing. */
static void client_refused(const char *cert, const char *key, int expected)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_config *ccfg = client_config(pki->ca);
	pier_received_request *rr;
	pier_listener *l;
	pier_peer *a, *b;
	pier_msg *m;
	char addr[128];
	int r;

	ck_assert_int_eq(pier_config_set_tls_ca(scfg, pki->ca, NULL), 0);
	ck_assert_int_eq(pier_config_set_tls_client_auth(scfg, PIER_TLS_CLIENT_CERT_REQUIRED), 0);
	if (cert)
		ck_assert_int_eq(pier_config_set_tls_cert(ccfg, cert, key), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	r = pier_peer_connect(&a, addr, ccfg);
	if (r == 0) {
		r = pier_peer_recv(a, &m, &rr, WAIT);
		pier_peer_free(a);
	}
	ck_assert_msg(r == expected, "%s, expected %s", pier_strerror(r), pier_strerror(expected));
	ck_assert_int_eq(pier_listener_accept(l, &b, 200), -ETIMEDOUT);
	pier_listener_free(l);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}

START_TEST(client_certificate_missing)
{
	client_refused(NULL, NULL, -PIER_ECERTREQUIRED);
}
END_TEST

START_TEST(client_certificate_untrusted)
{
	const struct pki *pki = pki_get();

	client_refused(pki->rogue, pki->rogue_key, -PIER_ECERTREFUSED);
}
END_TEST

/* A plain TCP client at a TLS listener: the client sees the connection
 * end, the listener hands out nothing. */
START_TEST(plain_client_at_tls_listener)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_sent_request *sr;
	pier_listener *l;
	pier_peer *a, *b;
	pier_msg *m;
	char addr[128], plain[128];
	int r;

	l = listen_tls(scfg, addr, sizeof(addr));
	with_scheme(plain, sizeof(plain), addr, "tcp");
	ck_assert_int_eq(pier_peer_connect(&a, plain, NULL), 0);
	sr = send_request(a, 1, "hello?");
	r = pier_sent_request_recv(sr, &m, WAIT);
	ck_assert_msg(r == -PIER_ECLOSED || r == -PIER_EPARTIAL || r == -ECONNRESET, "%s",
		      pier_strerror(r));
	ck_assert_int_eq(pier_listener_accept(l, &b, 200), -ETIMEDOUT);
	pier_sent_request_free(sr);
	pier_peer_free(a);
	pier_listener_free(l);
	pier_config_free(scfg);
}
END_TEST

/* The plain side of tls_client_at_plain_listener: accepts, and reads. */
static void *plain_side(void *arg)
{
	pier_listener *l = arg;
	pier_received_request *rr;
	pier_peer *b;
	pier_msg *m;
	int r;

	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	r = pier_peer_recv(b, &m, &rr, WAIT);
	pier_peer_free(b);
	return (void *)(intptr_t)r;
}

/* A TLS client at a plain listener: the listener's peer takes the client
 * hello for a frame far over its limit and closes; the client says why. */
START_TEST(tls_client_at_plain_listener)
{
	const struct pki *pki = pki_get();
	pier_config *ccfg = client_config(pki->ca);
	pier_listener *l;
	pier_peer *a, *b;
	char addr[128], tls[128];
	pthread_t th;
	void *res;

	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, addr, sizeof(addr)), 0);
	with_scheme(tls, sizeof(tls), addr, "tls");
	ck_assert_int_eq(pthread_create(&th, NULL, plain_side, l), 0);
	ck_assert_int_eq(pier_peer_connect(&a, tls, ccfg), -PIER_ENOTLS);
	ck_assert_int_eq(pthread_join(th, &res), 0);
	ck_assert_int_eq((intptr_t)res, -PIER_EBODYLIMIT);
	/* A plain peer that reads nothing: the connect timeout ends it. */
	ck_assert_int_eq(pier_config_set_connect_timeout(ccfg, 200), 0);
	ck_assert_int_eq(pier_peer_connect(&a, tls, ccfg), -ETIMEDOUT);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	pier_peer_free(b);
	pier_listener_free(l);
	pier_config_free(ccfg);
}
END_TEST

/* A remote that accepts the connection and never answers the handshake:
 * the connect timeout ends it. */
START_TEST(client_handshake_timeout)
{
	const struct pki *pki = pki_get();
	pier_config *ccfg = client_config(pki->ca);
	char addr[64];
	int lfd = raw_listen(addr, sizeof(addr));
	pier_peer *a;

	ck_assert_int_eq(pier_config_set_connect_timeout(ccfg, 300), 0);
	ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), -ETIMEDOUT);
	close(lfd);
	pier_config_free(ccfg);
}
END_TEST

/* A client that connects and sends nothing: the listener drops it after
 * its connect timeout, and hands out nothing. */
START_TEST(listener_handshake_timeout)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	struct pollfd pfd;
	pier_listener *l;
	pier_peer *b;
	struct test_log log;
	char addr[128], buf[64], want[128];
	int fd;

	test_log_init(&log);
	ck_assert_int_eq(pier_config_set_log(scfg, test_log_collect, &log), 0);
	ck_assert_int_eq(pier_config_set_connect_timeout(scfg, 200), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	fd = raw_connect(addr);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	ck_assert_int_le(read(fd, buf, sizeof(buf)), 0); /* the end, or a reset */
	ck_assert_int_eq(pier_listener_accept(l, &b, 0), -EAGAIN);
	snprintf(want, sizeof(want), "tls handshake from 127.0.0.1:%u timed out after 200 ms",
		 local_port(fd));
	test_log_wait(&log, want, 0);
	close(fd);
	pier_listener_free(l);
	pier_config_free(scfg);
}
END_TEST

/* Freeing a listener while handshakes are under way closes them. */
START_TEST(listener_freed_during_handshakes)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_listener *l;
	char addr[128], buf[64];
	int fds[8];

	l = listen_tls(scfg, addr, sizeof(addr));
	for (int i = 0; i < 8; i++)
		fds[i] = raw_connect(addr);
	/* All accepted, their handshakes waiting for a client hello. */
	wait_until(accepted_sockets((unsigned int)atoi(strrchr(addr, ':') + 1)) == 8, WAIT);
	pier_listener_free(l);
	for (int i = 0; i < 8; i++) {
		struct pollfd pfd = { .fd = fds[i], .events = POLLIN };

		ck_assert_msg(poll(&pfd, 1, WAIT) == 1, "connection %d still open", i);
		ck_assert_int_le(read(fds[i], buf, sizeof(buf)), 0);
		close(fds[i]);
	}
	pier_config_free(scfg);
}
END_TEST

/* A plain client at a TLS listener: the listener's log names the client's
 * address and why its handshake failed. */
START_TEST(failed_handshake_logged)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	static const char frame[16] = { 4, 0, 0, 0 }; /* a plain frame's start */
	pier_listener *l;
	struct test_log log;
	char addr[128], want[128];
	unsigned int i;
	int fd;

	test_log_init(&log);
	ck_assert_int_eq(pier_config_set_log(NULL, test_log_collect, &log), -EINVAL);
	ck_assert_int_eq(pier_config_set_log(scfg, test_log_collect, &log), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	fd = raw_connect(addr);
	ck_assert_int_eq(write(fd, frame, sizeof(frame)), sizeof(frame));
	snprintf(want, sizeof(want), "tls handshake from 127.0.0.1:%u failed: %s",
		 local_port(fd), pier_strerror(-PIER_ENOTLS));
	i = test_log_wait(&log, want, 0);
	ck_assert_int_eq(log.priority[i], LOG_NOTICE);
	assert_closed_by_remote(fd);
	close(fd);
	pier_listener_free(l);
	pier_config_free(scfg);
}
END_TEST

/* Without a log function (or with it taken away again), the same failure
 * is dropped as quietly as before, and the listener goes on. */
START_TEST(no_log_no_call)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_config *ccfg = client_config(pki->ca);
	static const char frame[16] = { 4, 0, 0, 0 };
	pier_listener *l;
	pier_peer *a, *b;
	struct test_log log;
	char addr[128];
	int fd;

	test_log_init(&log);
	ck_assert_int_eq(pier_config_set_log(scfg, test_log_collect, &log), 0);
	ck_assert_int_eq(pier_config_set_log(scfg, NULL, &log), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	fd = raw_connect(addr);
	ck_assert_int_eq(write(fd, frame, sizeof(frame)), sizeof(frame));
	assert_closed_by_remote(fd);
	ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	ck_assert_uint_eq(log.n, 0);
	pier_peer_free(a);
	pier_peer_free(b);
	close(fd);
	pier_listener_free(l);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

#define STALLED 400

/* 400 connections that never say a word do not keep a real client from
 * its handshake: the listener keeps a bounded set of handshakes under
 * way, apart from its accept queue, and closes the oldest silent one for
 * each newer connection.  Its handshake deadline is far off here, so only
 * eviction can let the client in before its own connect timeout. */
START_TEST(handshake_flood)
{
	const struct pki *pki = pki_get();
	pier_config *scfg, *ccfg;
	struct rlimit rl;
	pier_listener *l;
	pier_peer *a, *b;
	struct test_log log;
	char addr[128];
	int fds[STALLED], r;
	unsigned int before;
	long rss;

	/* The stalled clients, the listener's side of those it keeps, and a
	 * few more. */
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * STALLED && rl.rlim_max >= 2 * STALLED) {
		rl.rlim_cur = 2 * STALLED;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	if (rl.rlim_cur < 2 * STALLED) {
		fprintf(stderr, "handshake_flood: skipped: needs %d fds, and the hard limit "
				"(ulimit -Hn) is %ld\n", 2 * STALLED, (long)rl.rlim_max);
		return;
	}
	scfg = server_config(pki->server, pki->server_key);
	ccfg = client_config(pki->ca);
	test_log_init(&log);
	ck_assert_int_eq(pier_config_set_log(scfg, test_log_collect, &log), 0);
	ck_assert_int_eq(pier_config_set_connect_timeout(scfg, 60000), 0);
	ck_assert_int_eq(pier_config_set_connect_timeout(ccfg, 2000), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	before = (unsigned int)open_fd_count();
	rss = rss_kib();
	for (int i = 0; i < STALLED; i++)
		fds[i] = raw_connect(addr);
	/* The oldest went first; the newest are still held. */
	assert_closed_by_remote(fds[0]);
	r = pier_peer_connect(&a, addr, ccfg);
	ck_assert_msg(r == 0, "connect: %s", pier_strerror(r));
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	round_trip(a, b, "through", "the flood");
	/* The listener holds at most its set of handshakes: 128 fds. */
	ck_assert_uint_le((unsigned int)open_fd_count() - before, STALLED + 128 + 8);
	if (plain_memory())
		ck_assert_int_lt(rss_kib() - rss, 8192);
	/* Evictions were logged, at most ten a second, then how many more
	 * were not: far fewer lines than the 272 evictions. */
	test_log_wait(&log, "dropped for a newer connection", 0);
	test_log_wait(&log, "more lines about dropped connections were not logged", 0);
	ck_assert_uint_lt(log.n, 100);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l);
	for (int i = 0; i < STALLED; i++)
		close(fds[i]);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

/* A proxy between a client and a listener that flips one bit of the
 * client's stream once told to. */
struct proxy {
	int lfd;
	const char *to; /* the listener's address */
	atomic_bool corrupt;
};

static void *proxy_run(void *arg)
{
	struct proxy *px = arg;
	int c = accept4(px->lfd, NULL, NULL, SOCK_CLOEXEC);
	int s = raw_connect(px->to);
	unsigned char buf[4096];

	ck_assert_int_ge(c, 0);
	for (;;) {
		struct pollfd pfd[2] = { { c, POLLIN, 0 }, { s, POLLIN, 0 } };
		ssize_t n;

		if (poll(pfd, 2, WAIT) <= 0)
			break;
		if (pfd[0].revents) {
			n = read(c, buf, sizeof(buf));
			if (n <= 0)
				break;
			if (atomic_exchange(&px->corrupt, false))
				buf[n - 1] ^= 0x01; /* inside the record's tag */
			if (write(s, buf, (size_t)n) != n)
				break;
		}
		if (pfd[1].revents) {
			n = read(s, buf, sizeof(buf));
			if (n <= 0 || write(c, buf, (size_t)n) != n)
				break;
		}
	}
	close(c);
	close(s);
	return NULL;
}

/* A record changed on the way: the receiver ends the connection with
 * PIER_ETLS; the sender learns of it from the alert, or the end. */
START_TEST(corrupt_record)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_config *ccfg = client_config(pki->ca);
	struct proxy px = { .corrupt = false };
	pier_received_request *rr;
	pier_listener *l;
	pier_peer *a, *b;
	pier_msg *m;
	char addr[128], via[64];
	pthread_t th;
	int r;

	l = listen_tls(scfg, addr, sizeof(addr));
	px.to = addr;
	px.lfd = raw_listen(via, sizeof(via));
	ck_assert_int_eq(pthread_create(&th, NULL, proxy_run, &px), 0);
	ck_assert_int_eq(pier_config_set_tls_server_name(ccfg, "localhost"), 0);
	ck_assert_int_eq(pier_peer_connect(&a, via, ccfg), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	round_trip(a, b, "clean", "yes");
	atomic_store(&px.corrupt, true);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "bent", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_ETLS);
	r = pier_peer_recv(a, &m, &rr, WAIT);
	ck_assert_msg(r == -PIER_ETLS || r == -PIER_ETLSTRUNCATED || r == -ECONNRESET, "%s",
		      pier_strerror(r));
	pier_peer_free(a);
	pier_peer_free(b);
	pthread_join(th, NULL);
	close(px.lfd);
	pier_listener_free(l);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

/* --- what works ---------------------------------------------------------- */

START_TEST(mutual_tls_subjects)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_config *ccfg = client_config(pki->ca);
	pier_listener *l;
	pier_peer *a, *b, *p, *q;
	char addr[128], subject[256];

	ck_assert_int_eq(pier_config_set_tls_ca(scfg, pki->ca, NULL), 0);
	ck_assert_int_eq(pier_config_set_tls_client_auth(scfg, PIER_TLS_CLIENT_CERT_REQUIRED), 0);
	ck_assert_int_eq(pier_config_set_tls_cert(ccfg, pki->client, pki->client_key), 0);
	l = listen_tls(scfg, addr, sizeof(addr));
	ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	round_trip(a, b, "who", "you");
	ck_assert_int_eq(pier_peer_tls_subject(b, subject, sizeof(subject)), 0);
	ck_assert_str_eq(subject, "CN=pier test client,O=pier");
	ck_assert_int_eq(pier_peer_tls_subject(a, subject, sizeof(subject)), 0);
	ck_assert_str_eq(subject, "CN=localhost,O=pier");
	ck_assert_int_eq(pier_peer_tls_subject(a, subject, 5), -ENAMETOOLONG);
	ck_assert_int_eq(pier_peer_tls_subject(a, NULL, 5), -EINVAL);
	pier_peer_free(a);
	pier_peer_free(b);

	/* Optional: a client without a certificate gets in, with no
	 * subject; one with a certificate shows it. */
	ck_assert_int_eq(pier_config_set_tls_client_auth(scfg, PIER_TLS_CLIENT_CERT_OPTIONAL), 0);
	pier_listener_free(l);
	l = listen_tls(scfg, addr, sizeof(addr));
	ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	ck_assert_int_eq(pier_peer_tls_subject(b, subject, sizeof(subject)), 0);
	ck_assert_str_eq(subject, "CN=pier test client,O=pier");
	ck_assert_int_eq(pier_config_set_tls_cert(ccfg, NULL, NULL), 0);
	ck_assert_int_eq(pier_peer_connect(&p, addr, ccfg), 0);
	ck_assert_int_eq(pier_listener_accept(l, &q, WAIT), 0);
	round_trip(p, q, "anyone", "welcome");
	ck_assert_int_eq(pier_peer_tls_subject(q, subject, sizeof(subject)), -ENODATA);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_peer_free(p);
	pier_peer_free(q);
	pier_listener_free(l);

	/* Not a TLS peer. */
	make_pair(PAIR_TCP, &a, &b);
	ck_assert_int_eq(pier_peer_tls_subject(a, subject, sizeof(subject)), -ENOTSUP);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

START_TEST(no_fds_over_tls)
{
	pier_peer *a, *b;
	int fd = memfd_with("x");

	make_pair(PAIR_TLS, &a, &b);
	ck_assert_uint_eq(pier_writer_max_fds(pier_peer_get_writer(a)), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, &fd, 1),
			 -PIER_ENOFDS);
	round_trip(a, b, "still", "fine");
	close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Many connects with one config share its context, and a changed setting
 * takes effect on the next connect. */
START_TEST(config_reused_and_changed)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	pier_config *ccfg = client_config(pki->ca);
	pier_listener *l;
	char addr[128];

	l = listen_tls(scfg, addr, sizeof(addr));
	for (int i = 0; i < 20; i++) {
		pier_peer *a, *b;

		ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), 0);
		ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
		round_trip(a, b, "again", "yes");
		pier_peer_free(a);
		pier_peer_free(b);
	}
	ck_assert_int_eq(pier_config_set_tls_ca(ccfg, pki->rogue_ca, NULL), 0);
	{
		pier_peer *a;

		ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), -PIER_ECERTUNTRUSTED);
	}
	pier_listener_free(l);
	pier_config_free(scfg);
	pier_config_free(ccfg);
}
END_TEST

/* --- interoperation with openssl s_server and s_client ------------------- */

/* Runs argv with pipes to its stdin and from its stdout. */
static pid_t spawn(const char *const argv[], int *to, int *from)
{
	int in[2], out[2];
	pid_t pid;

	ck_assert_msg(system("command -v openssl >/dev/null 2>&1") == 0,
		      "these tests need the openssl command (Debian: apt-get install openssl)");

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(out[1], 1);
		if (null >= 0)
			dup2(null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	*to = in[1];
	*from = out[0];
	return pid;
}

/* Reads exactly len bytes within the test's patience. */
static void read_exactly(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		ck_assert_msg(poll(&pfd, 1, WAIT) == 1, "openssl said nothing");
		n = read(fd, (char *)buf + got, len - got);
		ck_assert_msg(n > 0, "openssl ended early");
		got += (size_t)n;
	}
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* A raw Fizyr frame (little endian): prefix, header, body, built by hand
 * rather than by the library's encoder, so that the exchanges with openssl
 * check the wire format itself. */
static size_t frame(unsigned char *out, uint32_t type, uint32_t id, int32_t service,
		    const char *body)
{
	size_t len = strlen(body);

	put_le32(out, (uint32_t)(12 + len));
	put_le32(out + 4, type);
	put_le32(out + 8, id);
	put_le32(out + 12, (uint32_t)service);
	memcpy(out + 16, body, len);
	return 16 + len;
}

/* A TCP port on 127.0.0.1 that was free a moment ago, as a string. */
static void free_port(char *port, size_t len)
{
	char addr[64];

	close(raw_listen(addr, sizeof(addr)));
	snprintf(port, len, "%s", strrchr(addr, ':') + 1);
}

/* Whether a socket listens on TCP port port, on any address (IPv4 or
 * IPv6), as the kernel lists them in /proc/net/tcp and tcp6. */
static bool tcp_listening(unsigned int port)
{
	static const char *const tables[] = { "/proc/net/tcp", "/proc/net/tcp6" };
	bool found = false;

	for (size_t t = 0; t < 2 && !found; t++) {
		FILE *f = fopen(tables[t], "r");
		char line[512];

		if (!f)
			continue; /* no IPv6 */
		while (!found && fgets(line, sizeof(line), f)) {
			unsigned int local, state;

			/* "sl: address:port remote:port state ..." in hex */
			if (sscanf(line, " %*u: %*[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x", &local,
				   &state) == 2 && local == port && state == 0x0A /* LISTEN */)
				found = true;
		}
		fclose(f);
	}
	return found;
}

static void reap(pid_t pid, int to, int from)
{
	close(to);
	close(from);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* Our client, openssl s_server at the far end: the request arrives there
 * as a raw frame, and the response written back reaches our request. */
START_TEST(interop_s_server)
{
	const struct pki *pki = pki_get();
	pier_config *ccfg = client_config(pki->ca);
	unsigned char buf[64], out[64];
	char port[16], addr[64];
	pier_sent_request *sr;
	pier_peer *a = NULL;
	pier_msg *m;
	int to, from, r;
	pid_t pid;

	free_port(port, sizeof(port));
	pid = spawn((const char *[]){ "openssl", "s_server", "-quiet", "-naccept", "1", "-accept", port,
				"-cert", pki->server, "-key", pki->server_key,
				NULL },
		    &to, &from);
	snprintf(addr, sizeof(addr), "tls://127.0.0.1:%s", port);
	/* It takes a moment to listen: a long one under valgrind, which runs
	 * the openssl command too.  Only then a connection, its only one. */
	wait_until(tcp_listening((unsigned int)atoi(port)), under_valgrind() ? 60000 : 10000);
	r = pier_peer_connect(&a, addr, ccfg);
	ck_assert_msg(r == 0, "connect to openssl s_server: %s", pier_strerror(r));
	sr = send_request(a, 7, "ping");
	read_exactly(from, buf, 20);
	ck_assert_uint_eq(le32(buf), 12 + 4);
	ck_assert_uint_eq(le32(buf + 4), PIER_MSG_REQUEST);
	ck_assert_uint_eq(le32(buf + 12), 7);
	ck_assert_int_eq(memcmp(buf + 16, "ping", 4), 0);
	ck_assert_int_eq(write(to, out, frame(out, PIER_MSG_RESPONSE, le32(buf + 8), 7, "pong")),
			 20);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 7, "pong");
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_peer_free(a);
	reap(pid, to, from);
	pier_config_free(ccfg);
}
END_TEST

/* openssl s_client against our listener: a raw request frame in, our
 * response out, verified against the test CA and the name localhost. */
START_TEST(interop_s_client)
{
	const struct pki *pki = pki_get();
	pier_config *scfg = server_config(pki->server, pki->server_key);
	unsigned char buf[64], out[64];
	char addr[128], connect_to_addr[64];
	pier_received_request *rr;
	pier_listener *l;
	pier_peer *b;
	pier_msg *m;
	int to, from;
	pid_t pid;

	l = listen_tls(scfg, addr, sizeof(addr));
	snprintf(connect_to_addr, sizeof(connect_to_addr), "127.0.0.1:%s", strrchr(addr, ':') + 1);
	pid = spawn((const char *[]){ "openssl", "s_client", "-quiet", "-connect", connect_to_addr,
				"-CAfile", pki->ca, "-verify_return_error",
				"-verify_hostname", "localhost", NULL },
		    &to, &from);
	ck_assert_int_eq(write(to, out, frame(out, PIER_MSG_REQUEST, 42, 3, "hi")), 18);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	rr = recv_request(b, &m);
	assert_msg(m, PIER_MSG_REQUEST, 3, "hi");
	ck_assert_uint_eq(pier_received_request_id(rr), 42);
	ck_assert_int_eq(pier_received_request_send_response(rr, 3, "hello", 5, NULL, 0), 0);
	read_exactly(from, buf, 21);
	ck_assert_uint_eq(le32(buf), 12 + 5);
	ck_assert_uint_eq(le32(buf + 4), PIER_MSG_RESPONSE);
	ck_assert_uint_eq(le32(buf + 8), 42);
	ck_assert_uint_eq(le32(buf + 12), 3);
	ck_assert_int_eq(memcmp(buf + 16, "hello", 5), 0);
	pier_msg_free(m);
	pier_received_request_free(rr);
	/* s_client closing its input ends the connection: we see the end. */
	close(to);
	ck_assert_int_lt(pier_peer_recv(b, &m, &rr, WAIT), 0);
	pier_peer_free(b);
	reap(pid, -1, from);
	pier_listener_free(l);
	pier_config_free(scfg);
}
END_TEST

/* A TLS 1.3 server written against OpenSSL directly, which asks for a key
 * update with its first response: our side must answer with a KeyUpdate
 * of its own before its next request (OpenSSL sends it with the next
 * write), and the exchange goes on under the new keys both ways. */
struct key_update_server {
	int lfd;
	int updates_seen; /* KeyUpdate messages received from the client */
	bool ok;
};

static void count_key_updates(int write_p, int version, int content_type, const void *buf,
			      size_t len, SSL *ssl, void *arg)
{
	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
	    ((const unsigned char *)buf)[0] == SSL3_MT_KEY_UPDATE)
		++*(int *)arg;
}

static bool ssl_read_exactly(SSL *ssl, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		int n = SSL_read(ssl, buf + got, (int)(len - got));

		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void *key_update_server_run(void *arg)
{
	struct key_update_server *ks = arg;
	const struct pki *pki = pki_get();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int fd = accept4(ks->lfd, NULL, NULL, SOCK_CLOEXEC);
	unsigned char buf[64], out[64];
	SSL *ssl;

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_use_certificate_chain_file(ctx, pki->server);
	SSL_CTX_use_PrivateKey_file(ctx, pki->server_key, SSL_FILETYPE_PEM);
	SSL_CTX_set_msg_callback(ctx, count_key_updates);
	SSL_CTX_set_msg_callback_arg(ctx, &ks->updates_seen);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	ks->ok = SSL_accept(ssl) == 1;
	for (int round = 0; ks->ok && round < 3; round++) {
		ks->ok = ssl_read_exactly(ssl, buf, 20) && le32(buf) == 16;
		if (ks->ok && round == 0)
			ks->ok = SSL_key_update(ssl, SSL_KEY_UPDATE_REQUESTED) == 1;
		if (ks->ok) {
			size_t n = frame(out, PIER_MSG_RESPONSE, le32(buf + 8), 1, "pong");

			ks->ok = SSL_write(ssl, out, (int)n) == (int)n;
		}
	}
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return NULL;
}

START_TEST(key_update_answered)
{
	const struct pki *pki = pki_get();
	pier_config *ccfg = client_config(pki->ca);
	struct key_update_server ks = { 0 };
	char addr[64];
	pier_peer *a;
	pthread_t th;

	ks.lfd = raw_listen(addr, sizeof(addr));
	ck_assert_int_eq(pthread_create(&th, NULL, key_update_server_run, &ks), 0);
	ck_assert_int_eq(pier_peer_connect(&a, addr, ccfg), 0);
	for (int i = 0; i < 3; i++) {
		pier_sent_request *sr = send_request(a, 1, "ping");
		pier_msg *m;

		ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 1, "pong");
		pier_msg_free(m);
		pier_sent_request_free(sr);
	}
	pier_peer_free(a);
	pthread_join(th, NULL);
	ck_assert(ks.ok);
	ck_assert_int_eq(ks.updates_seen, 1);
	close(ks.lfd);
	pier_config_free(ccfg);
}
END_TEST


/* --- the application's threads do the I/O -------------------------------- */

/* Holds a loop thread in a task of its own until released: nothing the
 * loop would do (read, write, run a timer) happens meanwhile. */
struct loop_hold {
	struct loop_task task; /* first: the task is the hold */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool held, release, done;
};

static void loop_hold_run(struct loop_task *task, unsigned int events)
{
	struct loop_hold *h = (struct loop_hold *)task;

	(void)events;
	pthread_mutex_lock(&h->mu);
	h->held = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->release)
		pthread_cond_wait(&h->cond, &h->mu);
	h->done = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->mu);
}

static void loop_hold(struct loop_hold *h, struct pier_loop *loop)
{
	*h = (struct loop_hold){ .task.fn = loop_hold_run };
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cond, NULL);
	loop_post(loop, &h->task, 1);
	pthread_mutex_lock(&h->mu);
	while (!h->held)
		pthread_cond_wait(&h->cond, &h->mu);
	pthread_mutex_unlock(&h->mu);
}

static void loop_release(struct loop_hold *h)
{
	pthread_mutex_lock(&h->mu);
	h->release = true;
	pthread_cond_broadcast(&h->cond);
	while (!h->done)
		pthread_cond_wait(&h->cond, &h->mu);
	pthread_mutex_unlock(&h->mu);
	pthread_mutex_destroy(&h->mu);
	pthread_cond_destroy(&h->cond);
}

/* Nobody reads or writes p's socket, and its loop has nothing of the
 * handshake left to finish. */
static bool conn_at_rest(pier_peer *p)
{
	struct conn *c = &p->conn;
	bool rest;

	pthread_mutex_lock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	rest = c->rd == RD_NONE && c->wr == WR_IDLE;
	pthread_mutex_unlock(&c->out_mu);
	pthread_mutex_unlock(&c->mu);
	return rest;
}

static pier_config *no_coalescing(void)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, 0), 0);
	return cfg;
}

/* Once the handshake is done a TLS exchange needs no loop: the thread that
 * sends encrypts and writes, the thread that waits reads and decrypts.
 * With both peers' loops held, round trips and stream messages either way
 * still go through.  (Without coalescing, which the loop's timer ends.) */
START_TEST(exchange_without_the_loop)
{
	pier_config *cfg = no_coalescing();
	struct loop_hold ha, hb;
	pier_received_request *rr;
	pier_peer *a, *b;
	char body[4000];
	bool shared;

	make_pair_cfg(PAIR_TLS, cfg, cfg, &a, &b);
	wait_until(conn_at_rest(a) && conn_at_rest(b), WAIT);
	shared = a->conn.loop == b->conn.loop;
	loop_hold(&ha, a->conn.loop);
	if (!shared)
		loop_hold(&hb, b->conn.loop);
	for (int i = 0; i < 3; i++) {
		pier_msg *m;
		size_t len;

		round_trip(a, b, "ping", "pong");
		memset(body, 'a' + i, sizeof(body));
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(b), 2, body,
							 sizeof(body), NULL, 0),
				 0);
		ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), 0);
		ck_assert_uint_eq(pier_msg_header(m)->service_id, 2);
		ck_assert_int_eq(memcmp(pier_msg_body(m, &len), body, sizeof(body)), 0);
		ck_assert_uint_eq(len, sizeof(body));
		pier_msg_free(m);
	}
	loop_release(&ha);
	if (!shared)
		loop_release(&hb);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* Threads of both peers send and receive at once over one TLS connection
 * (senders encrypting while readers decrypt, on either side), small
 * bodies and bodies larger than what the socket takes at once; every body
 * comes back whole. */
enum { MT_CLIENTS = 3, MT_SERVERS = 2, MT_ROUNDS = 12 };

static const size_t mt_sizes[] = { 16, 1000, 20000, 70000, 250000 };

struct mt_arg {
	pier_peer *peer;
	int id;
	int failures;
};

static unsigned char mt_byte(int id, int round, size_t k)
{
	return (unsigned char)(id * 31 + round * 7 + k % 251);
}

static void *mt_client(void *arg)
{
	struct mt_arg *t = arg;
	unsigned char *body = malloc(250000);

	for (int r = 0; r < MT_ROUNDS; r++) {
		size_t len = mt_sizes[(size_t)(t->id + r) % (sizeof(mt_sizes) / sizeof(mt_sizes[0]))], got;
		pier_sent_request *sr;
		const unsigned char *back;
		pier_msg *m;

		for (size_t k = 0; k < len; k++)
			body[k] = mt_byte(t->id, r, k);
		if (pier_writer_send_request(pier_peer_get_writer(t->peer), 1, body, len, NULL, 0,
					     &sr) < 0) {
			t->failures++;
			break;
		}
		if (pier_sent_request_recv_response(sr, &m, WAIT * 4) < 0) {
			t->failures++;
			pier_sent_request_free(sr);
			break;
		}
		back = pier_msg_body(m, &got);
		if (got != len || memcmp(back, body, len) != 0)
			t->failures++;
		pier_msg_free(m);
		pier_sent_request_free(sr);
	}
	free(body);
	return NULL;
}

/* Echoes requests until the connection ends. */
static void *mt_server(void *arg)
{
	struct mt_arg *t = arg;
	pier_received_request *rr;
	pier_msg *m;

	while (pier_peer_recv(t->peer, &m, &rr, -1) == 0) {
		size_t len;
		const void *body = pier_msg_body(m, &len);

		if (!rr || pier_received_request_send_response(rr, 1, body, len, NULL, 0) < 0)
			t->failures++;
		pier_received_request_free(rr);
		pier_msg_free(m);
	}
	return NULL;
}

START_TEST(threads_send_and_receive_at_once)
{
	struct mt_arg clients[MT_CLIENTS], servers[MT_SERVERS];
	pthread_t tc[MT_CLIENTS], ts[MT_SERVERS];
	pier_peer *a, *b;

	make_pair(PAIR_TLS, &a, &b);
	for (int i = 0; i < MT_SERVERS; i++) {
		servers[i] = (struct mt_arg){ b, i, 0 };
		ck_assert_int_eq(pthread_create(&ts[i], NULL, mt_server, &servers[i]), 0);
	}
	for (int i = 0; i < MT_CLIENTS; i++) {
		clients[i] = (struct mt_arg){ a, i, 0 };
		ck_assert_int_eq(pthread_create(&tc[i], NULL, mt_client, &clients[i]), 0);
	}
	for (int i = 0; i < MT_CLIENTS; i++) {
		pthread_join(tc[i], NULL);
		ck_assert_int_eq(clients[i].failures, 0);
	}
	/* The servers' waits end with the connection. */
	pier_peer_free(a);
	for (int i = 0; i < MT_SERVERS; i++) {
		pthread_join(ts[i], NULL);
		ck_assert_int_eq(servers[i].failures, 0);
	}
	pier_peer_free(b);
}
END_TEST

/* A raw OpenSSL server, for what the library must answer: once the
 * client's thread waits, reading the socket itself (go), it sends a
 * stream message and then close_notify, or a record that does not
 * decrypt; then it reads what the client answers. */
struct raw_server {
	int lfd;
	bool garbage;  /* the bad record instead of the message and close_notify */
	int go[2];     /* a pipe: the client waits */
	bool ok;       /* the handshake and the sends went */
	int shutdown;  /* close_notify: SSL_shutdown's second call (1: ours came) */
	unsigned long alert; /* garbage: the error reading the client's answer */
};

static void *raw_server_run(void *arg)
{
	struct raw_server *rs = arg;
	const struct pki *pki = pki_get();
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int fd = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC);
	unsigned char out[64], buf[64];
	char go;
	SSL *ssl;

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_use_certificate_chain_file(ctx, pki->server);
	SSL_CTX_use_PrivateKey_file(ctx, pki->server_key, SSL_FILETYPE_PEM);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	rs->ok = SSL_accept(ssl) == 1 && read(rs->go[0], &go, 1) == 1;
	if (rs->ok && rs->garbage) {
		/* Application data that fails to decrypt. */
		unsigned char rec[5 + 32] = { 0x17, 0x03, 0x03, 0x00, 0x20 };

		memset(rec + 5, 0xab, 32);
		rs->ok = write(fd, rec, sizeof(rec)) == (ssize_t)sizeof(rec);
		ERR_clear_error();
		if (rs->ok && SSL_read(ssl, buf, sizeof(buf)) <= 0)
			rs->alert = ERR_GET_REASON(ERR_peek_error());
	} else if (rs->ok) {
		size_t n = frame(out, PIER_MSG_STREAM, 0, 5, "last");

		rs->ok = SSL_write(ssl, out, (int)n) == (int)n && SSL_shutdown(ssl) == 0;
		if (rs->ok)
			rs->shutdown = SSL_shutdown(ssl);
	}
	ERR_clear_error();
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return NULL;
}

struct raw_client {
	pier_peer *peer;
	_Atomic pid_t tid;
	int first, second;
	pier_msg *m;
};

static void *raw_client_wait(void *arg)
{
	struct raw_client *rc = arg;
	pier_received_request *rr;
	pier_msg *m = NULL;

	atomic_store(&rc->tid, thread_id());
	rc->first = pier_peer_recv(rc->peer, &rc->m, &rr, WAIT);
	if (rc->first == 0)
		rc->second = pier_peer_recv(rc->peer, &m, &rr, WAIT);
	pier_msg_free(m);
	return NULL;
}

/* Connects to a raw server and has a thread wait for a message, reading
 * the socket itself, before the server goes on. */
static void raw_exchange(struct raw_server *rs, struct raw_client *rc)
{
	const struct pki *pki = pki_get();
	pier_config *ccfg = client_config(pki->ca);
	pthread_t ts, tc;
	char addr[64];

	rs->lfd = raw_listen(addr, sizeof(addr));
	ck_assert_int_eq(pipe2(rs->go, O_CLOEXEC), 0);
	ck_assert_int_eq(pthread_create(&ts, NULL, raw_server_run, rs), 0);
	ck_assert_int_eq(pier_peer_connect(&rc->peer, addr, ccfg), 0);
	ck_assert_int_eq(pthread_create(&tc, NULL, raw_client_wait, rc), 0);
	wait_until(thread_waits(atomic_load(&rc->tid), true), WAIT);
	ck_assert_int_eq(write(rs->go[1], "g", 1), 1);
	pthread_join(tc, NULL);
	pthread_join(ts, NULL);
	pier_peer_free(rc->peer);
	close(rs->go[0]);
	close(rs->go[1]);
	close(rs->lfd);
	pier_config_free(ccfg);
}

/* The remote's close_notify reaches the thread reading: after the last
 * message, the end (PIER_ECLOSED); the library answers with its own. */
START_TEST(close_notify_while_a_thread_reads)
{
	struct raw_server rs = { .garbage = false };
	struct raw_client rc = { 0 };

	raw_exchange(&rs, &rc);
	ck_assert(rs.ok);
	ck_assert_int_eq(rc.first, 0);
	assert_msg(rc.m, PIER_MSG_STREAM, 5, "last");
	pier_msg_free(rc.m);
	ck_assert_int_eq(rc.second, -PIER_ECLOSED);
	ck_assert_int_eq(rs.shutdown, 1);
}
END_TEST

/* A record that does not decrypt, read by the waiting thread: it fails with
 * PIER_ETLS, and the remote gets the alert that says why. */
START_TEST(alert_while_a_thread_reads)
{
	struct raw_server rs = { .garbage = true };
	struct raw_client rc = { 0 };

	raw_exchange(&rs, &rc);
	ck_assert(rs.ok);
	ck_assert_int_eq(rc.first, -PIER_ETLS);
	ck_assert_msg(rs.alert == SSL_R_SSLV3_ALERT_BAD_RECORD_MAC, "the server read: %s",
		      ERR_reason_error_string(ERR_PACK(ERR_LIB_SSL, 0, rs.alert)));
}
END_TEST

/* p's link holds no buffer of ciphertext, either way, and nobody is in
 * its socket. */
static bool no_ciphertext_kept(pier_peer *p)
{
	struct conn *c = &p->conn;
	bool none;

	pthread_mutex_lock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	none = c->rd == RD_NONE && c->wr == WR_IDLE && !c->link.tls_ibuf && !c->link.tls_obuf;
	if (none) {
		pthread_mutex_lock(&c->link.tls_mu);
		none = tls_out_buffered(c->link.tls) == 0;
		pthread_mutex_unlock(&c->link.tls_mu);
	}
	pthread_mutex_unlock(&c->out_mu);
	pthread_mutex_unlock(&c->mu);
	return none;
}

/* After large messages both ways, an idle TLS connection keeps no
 * ciphertext buffer on either side. */
START_TEST(idle_links_keep_no_buffers)
{
	enum { LEN = 300000 };
	unsigned char *body = calloc(1, LEN);
	pier_received_request *rr;
	pier_peer *a, *b;
	pier_msg *m;

	make_pair(PAIR_TLS, &a, &b);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, body, LEN, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	pier_msg_free(m);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(b), 1, body, LEN, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), 0);
	pier_msg_free(m);
	round_trip(a, b, "ping", "pong");
	wait_until(no_ciphertext_kept(a) && no_ciphertext_kept(b), WAIT);
	pier_peer_free(a);
	pier_peer_free(b);
	free(body);
}
END_TEST

#endif /* HAVE_OPENSSL */

/* In a build without OpenSSL: every TLS entry point says so. */
START_TEST(tls_unavailable)
{
	pier_config *cfg;
	pier_listener *l;
	pier_peer *p;
	int e = -PIER_ETLSUNAVAILABLE;

	ck_assert_str_eq(pier_strerror(-PIER_ETLSUNAVAILABLE),
			 "TLS is not available: the library was built without OpenSSL");
	if (pki_available())
		return;
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_peer_connect(&p, "tls://127.0.0.1:1", cfg), e);
	ck_assert_int_eq(pier_listener_new(&l, "tls://127.0.0.1:0", cfg), e);
	ck_assert_int_eq(pier_config_set_tls_ca(cfg, "ca.pem", NULL), e);
	ck_assert_int_eq(pier_config_set_tls_cert(cfg, "c.pem", "k.pem"), e);
	ck_assert_int_eq(pier_config_set_tls_client_auth(cfg, PIER_TLS_CLIENT_CERT_REQUIRED), e);
	ck_assert_int_eq(pier_config_set_tls_server_name(cfg, "x"), e);
	pier_config_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = th_tcase("tls", TH_TIMEOUT);

	tcase_add_test(tc, tls_unavailable);
#ifdef HAVE_OPENSSL
	tcase_add_test(tc, settings_checked);
	tcase_add_test(tc, client_settings_checked);
	tcase_add_test(tc, file_errors_when_set);
	tcase_add_test(tc, file_errors_when_used);
	tcase_add_test(tc, unknown_ca);
	tcase_add_test(tc, wrong_name);
	tcase_add_test(tc, expired_certificate);
	tcase_add_test(tc, client_certificate_missing);
	tcase_add_test(tc, client_certificate_untrusted);
	tcase_add_test(tc, plain_client_at_tls_listener);
	tcase_add_test(tc, tls_client_at_plain_listener);
	tcase_add_test(tc, client_handshake_timeout);
	tcase_add_test(tc, listener_handshake_timeout);
	tcase_add_test(tc, listener_freed_during_handshakes);
	tcase_add_test(tc, failed_handshake_logged);
	tcase_add_test(tc, no_log_no_call);
	tcase_add_test(tc, handshake_flood);
	tcase_add_test(tc, corrupt_record);
	tcase_add_test(tc, mutual_tls_subjects);
	tcase_add_test(tc, no_fds_over_tls);
	tcase_add_test(tc, config_reused_and_changed);
	tcase_add_test(tc, interop_s_server);
	tcase_add_test(tc, interop_s_client);
	tcase_add_test(tc, key_update_answered);
	tcase_add_test(tc, exchange_without_the_loop);
	tcase_add_test(tc, threads_send_and_receive_at_once);
	tcase_add_test(tc, close_notify_while_a_thread_reads);
	tcase_add_test(tc, alert_while_a_thread_reads);
	tcase_add_test(tc, idle_links_keep_no_buffers);
#endif
	suite_add_tcase(s, tc);
	return th_run(s);
}
