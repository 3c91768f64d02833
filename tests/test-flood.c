/* SPDX-License-Identifier: MIT */
/*
 * Floods of automatic answers.  A remote (a plain socket here, no libpier on
 * its side, writing wire frames by hand) sends as fast as it can what this
 * side answers on its own -- pings, requests over the open-request limit,
 * requests a server has no handler for -- and never reads.  The answers
 * must not pile up: once they hold the send queue over its limit, this side
 * stops reading, and the remote's sends wait in its own socket; the queue
 * stays within its limit and CONN_ANSWERS_PAST_LIMIT throughout.  Then the
 * remote reads: every answer arrives, in order, and the connection goes
 * on.  Each test runs on TCP, Unix stream and seqpacket sockets and TLS,
 * on the backend the environment chooses and on epoll.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#ifdef HAVE_OPENSSL
#include <openssl/ssl.h>
#endif

#include "peers.h"
#include "pki.h"
#include "route.h"
#include "wire.h"

#define PING_SERVICE 7001
#define UNKNOWN_SERVICE 4242
#define ECHO_SERVICE 1

/* This side's send queue limit: small, so that the answers cross it early
 * (the bound they keep to past it does not depend on it). */
#define LIMIT 4096u
/* What this side's socket buffers hold at most, asked of the kernel: the
 * answers a remote that never reads leaves in the kernel stay few, and
 * the rest must wait in the library, where the bound is. */
#define SMALL_BUFFER 4096

/* Requests in a flood.  Their answers hold several times the bound: on a
 * stream, 16 to 39 bytes each in chunks; on packets, a frame of its own
 * each (about 100 bytes). */
#define PINGS_STREAM 32768u
#define REQUESTS_STREAM 16384u
#define REQUESTS_PACKET 6000u

enum kind {
	K_TCP,
	K_UNIX,
	K_SEQPACKET,
#ifdef HAVE_OPENSSL
	K_TLS,
#endif
	K_KINDS
};

static const char *const kind_name[K_KINDS] = {
	"tcp", "unix", "seqpacket",
#ifdef HAVE_OPENSSL
	"tls",
#endif
};

/* _i: the kind, and which backend (odd: epoll). */
static enum kind kind_of(int i)
{
	if (i % 2)
		ck_assert_int_eq(setenv("PIER_BACKEND", "epoll", 1), 0);
	return (enum kind)(i / 2);
}

/* Where this side listens, for kind k. */
static void listen_address(enum kind k, char *buf, size_t len)
{
	static unsigned int n;

	switch (k) {
	case K_UNIX:
	case K_SEQPACKET:
		snprintf(buf, len, "%s://%s/pier-flood-%d-%u.sock",
			 k == K_UNIX ? "unix" : "seqpacket", P_tmpdir, getpid(), n++);
		break;
#ifdef HAVE_OPENSSL
	case K_TLS:
		snprintf(buf, len, "tls://127.0.0.1:0");
		break;
#endif
	default:
		snprintf(buf, len, "tcp://127.0.0.1:0");
	}
}

/* A configuration for this side: the send limit, the TLS certificate. */
static pier_config *side_config(enum kind k)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, 4u << 20, LIMIT), 0);
#ifdef HAVE_OPENSSL
	if (k == K_TLS) {
		const struct pki *pki = pki_get();

		ck_assert_int_eq(pier_config_set_tls_cert(cfg, pki->server, pki->server_key), 0);
	}
#endif
	return cfg;
}

/* This side's socket holds little: what it cannot send waits in the
 * library's queue. */
static void shrink(pier_peer *p)
{
	int small = SMALL_BUFFER;

	ck_assert_int_eq(setsockopt(p->conn.link.fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)),
			 0);
	/* The remote's sends wait in its own socket soon (TCP: the window
	 * stops growing). */
	ck_assert_int_eq(setsockopt(p->conn.link.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)),
			 0);
}

static size_t queued(struct conn *c)
{
	size_t n;

	pthread_mutex_lock(&c->out_mu);
	n = c->out_bytes;
	pthread_mutex_unlock(&c->out_mu);
	return n;
}

static enum conn_pause pause_of(struct conn *c)
{
	enum conn_pause p;

	pthread_mutex_lock(&c->mu);
	p = c->pause;
	pthread_mutex_unlock(&c->mu);
	return p;
}

/* --- the remote: a plain socket ------------------------------------------ */

struct raw {
	int fd;
	bool packets;
#ifdef HAVE_OPENSSL
	SSL_CTX *ctx;
	SSL *ssl;
#endif
	unsigned char in[64 << 10]; /* what arrived, not yet taken */
	size_t in_len;
};

/* A frame the remote received (bodies of at most 255 bytes). */
struct answer {
	struct pier_header h;
	char body[256];
	size_t len;
};

/* Connects to bound (as this side's listener says it), without blocking
 * from then on. */
static void raw_connect(struct raw *r, enum kind k, const char *bound)
{
	int small = SMALL_BUFFER;

	memset(r, 0, sizeof(*r));
	r->packets = k == K_SEQPACKET;
	if (k == K_UNIX || k == K_SEQPACKET) {
		struct sockaddr_un un = { .sun_family = AF_UNIX };

		snprintf(un.sun_path, sizeof(un.sun_path), "%s", strstr(bound, "://") + 3);
		r->fd = socket(AF_UNIX, (r->packets ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(r->fd, 0);
		ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&un, sizeof(un)), 0);
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET,
					   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		sin.sin_port = htons((uint16_t)atoi(strrchr(bound, ':') + 1));
		r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(r->fd, 0);
		/* Small buffers and segments, set before the connection has
		 * a window (on the loopback a segment could be as large as
		 * the buffers, and the windows would stall); and every write
		 * goes at once. */
		ck_assert_int_eq(setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
		ck_assert_int_eq(setsockopt(r->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
		ck_assert_int_eq(setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int)),
				 0);
		ck_assert_int_eq(setsockopt(r->fd, IPPROTO_TCP, TCP_MAXSEG, &(int){ 1024 }, sizeof(int)),
				 0);
		ck_assert_int_eq(connect(r->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	}
#ifdef HAVE_OPENSSL
	if (k == K_TLS) {
		r->ctx = SSL_CTX_new(TLS_client_method());
		ck_assert_ptr_nonnull(r->ctx);
		r->ssl = SSL_new(r->ctx);
		ck_assert_ptr_nonnull(r->ssl);
		SSL_set_fd(r->ssl, r->fd);
		SSL_set_mode(r->ssl,
			     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		ck_assert_int_eq(SSL_connect(r->ssl), 1);
	}
#endif
	ck_assert_int_eq(fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK), 0);
}

static void raw_close(struct raw *r)
{
#ifdef HAVE_OPENSSL
	if (r->ssl) {
		SSL_free(r->ssl);
		SSL_CTX_free(r->ctx);
	}
#endif
	close(r->fd);
}

/* Sends what the socket takes of buf[0..len) now (on packets, len is one
 * packet): the bytes taken, 0 when it takes nothing. */
static size_t raw_send(struct raw *r, const void *buf, size_t len)
{
	ssize_t n;

#ifdef HAVE_OPENSSL
	if (r->ssl) {
		size_t took = 0;
		int e;

		if (SSL_write_ex(r->ssl, buf, len, &took) == 1)
			return took;
		e = SSL_get_error(r->ssl, 0);
		ck_assert_msg(e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ,
			      "SSL_write failed: %d", e);
		return 0;
	}
#endif
	n = send(r->fd, buf, len, MSG_NOSIGNAL);
	if (n < 0) {
		ck_assert_msg(errno == EAGAIN || errno == EINTR, "send: %s", strerror(errno));
		return 0;
	}
	return (size_t)n;
}

/* Reads what has arrived (a packet, on packets) into r->in: whether
 * anything came. */
static bool raw_read(struct raw *r)
{
	size_t room = sizeof(r->in) - r->in_len;
	ssize_t n;

	if (r->packets && r->in_len)
		return false; /* one packet at a time */
#ifdef HAVE_OPENSSL
	if (r->ssl) {
		size_t got = 0;
		int e;

		if (SSL_read_ex(r->ssl, r->in + r->in_len, room, &got) == 1) {
			r->in_len += got;
			return true;
		}
		e = SSL_get_error(r->ssl, 0);
		ck_assert_msg(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE,
			      "SSL_read failed: %d", e);
		return false;
	}
#endif
	n = recv(r->fd, r->in + r->in_len, room, 0);
	if (n < 0) {
		ck_assert_msg(errno == EAGAIN || errno == EINTR, "recv: %s", strerror(errno));
		return false;
	}
	ck_assert_msg(n > 0, "this side closed the connection");
	r->in_len += (size_t)n;
	return true;
}

/* The next frame the remote received, if a whole one is there: reads what
 * has arrived when it needs more. */
static bool raw_next(struct raw *r, struct answer *a)
{
	for (;;) {
		size_t head = r->packets ? 0 : WIRE_PREFIX_SIZE, whole = r->in_len;

		if (!r->packets && r->in_len >= WIRE_PREFIX_SIZE) {
			uint32_t len = (uint32_t)r->in[0] | (uint32_t)r->in[1] << 8 |
				       (uint32_t)r->in[2] << 16 | (uint32_t)r->in[3] << 24;

			ck_assert_uint_ge(len, WIRE_HEADER_SIZE);
			ck_assert_uint_le(len, WIRE_HEADER_SIZE + sizeof(a->body));
			whole = WIRE_PREFIX_SIZE + len;
		}
		if (r->in_len >= head + WIRE_HEADER_SIZE && r->in_len >= whole) {
			ck_assert_int_eq(wire_header_decode(&a->h, r->in + head, PIER_BYTE_ORDER_LITTLE),
					 0);
			a->len = whole - head - WIRE_HEADER_SIZE;
			ck_assert_uint_le(a->len, sizeof(a->body));
			memcpy(a->body, r->in + head + WIRE_HEADER_SIZE, a->len);
			memmove(r->in, r->in + whole, r->in_len - whole);
			r->in_len -= whole;
			return true;
		}
		if (!raw_read(r))
			return false;
	}
}

/* Sends one frame whole, waiting for room. */
static void raw_send_all(struct raw *r, const struct pier_header *h, const char *body)
{
	unsigned char buf[WIRE_STREAM_OVERHEAD + 64];
	size_t len = strlen(body), head = r->packets ? WIRE_HEADER_SIZE : WIRE_STREAM_OVERHEAD;
	size_t at = 0;
	struct timespec deadline = deadline_in(WAIT);

	ck_assert_uint_le(len, 64);
	if (r->packets)
		wire_header_encode(buf, h, PIER_BYTE_ORDER_LITTLE);
	else
		wire_stream_prefix_encode(buf, h, len, PIER_BYTE_ORDER_LITTLE);
	memcpy(buf + head, body, len);
	while (at < head + len) {
		size_t n = raw_send(r, buf + at, head + len - at);

		at += n;
		if (!n)
			ck_assert_msg(wait_tick(&deadline), "the remote could not send");
	}
}

/* The next frame the remote receives, waiting for it. */
static void raw_expect(struct raw *r, struct answer *a)
{
	struct timespec deadline = deadline_in(WAIT);

	while (!raw_next(r, a))
		ck_assert_msg(wait_tick(&deadline), "nothing arrived");
}

static void assert_answer(const struct answer *a, enum pier_msg_type type, uint32_t id,
			  int32_t service, const char *body)
{
	ck_assert_int_eq(a->h.type, type);
	ck_assert_uint_eq(a->h.request_id, id);
	ck_assert_int_eq(a->h.service_id, service);
	ck_assert_msg(a->len == strlen(body) && memcmp(a->body, body, a->len) == 0,
		      "answer %u: \"%.*s\", expected \"%s\"", id, (int)a->len, a->body, body);
}

/* --- the flood ------------------------------------------------------------ */

struct flood {
	struct raw *r;
	struct conn *c;     /* this side's */
	size_t bound;       /* what its send queue may hold */
	unsigned char *out; /* the requests, back to back */
	size_t frame, len, pos;
	uint32_t first, n;  /* their ids: first, first + 1, ... */
	size_t most;        /* the most the queue held */
};

/* n requests with empty bodies on service, with ids from first on. */
static void flood_init(struct flood *f, struct raw *r, struct conn *c, size_t bound,
		       uint32_t first, uint32_t n, int32_t service)
{
	*f = (struct flood){ .r = r, .c = c, .bound = bound, .first = first, .n = n };
	f->frame = r->packets ? WIRE_HEADER_SIZE : WIRE_STREAM_OVERHEAD;
	f->len = (size_t)n * f->frame;
	f->out = malloc(f->len);
	ck_assert_ptr_nonnull(f->out);
	for (uint32_t i = 0; i < n; i++) {
		struct pier_header h = { PIER_MSG_REQUEST, first + i, service };

		if (r->packets)
			wire_header_encode(f->out + i * f->frame, &h, PIER_BYTE_ORDER_LITTLE);
		else
			wire_stream_prefix_encode(f->out + i * f->frame, &h, 0,
						  PIER_BYTE_ORDER_LITTLE);
	}
}

static void flood_fini(struct flood *f)
{
	free(f->out);
}

/* The queue holds no more than the bound. */
static void flood_look(struct flood *f)
{
	size_t q = queued(f->c);

	if (q > f->most)
		f->most = q;
	ck_assert_msg(q <= f->bound,
		      "the send queue holds %zu bytes: over its limit of %u by more than the "
		      "%zu the answers may take",
		      q, LIMIT, f->bound - LIMIT);
}

/* This side's connection as far as a stall is concerned: who reads and
 * writes, why reading pauses, what is queued each way. */
static void describe(struct flood *f, char *buf, size_t size)
{
	struct conn *c = f->c;
	size_t in_bytes, out_bytes, out_control;
	bool reading, held;
	int pause, rd, wr;

	pthread_mutex_lock(&c->mu);
	pause = (int)c->pause;
	rd = (int)c->rd;
	in_bytes = c->in_bytes;
	reading = c->rd_op.in_flight;
	held = c->link.tls_held;
	pthread_mutex_unlock(&c->mu);
	pthread_mutex_lock(&c->out_mu);
	wr = (int)c->wr;
	out_bytes = c->out_bytes;
	out_control = c->out_control;
	pthread_mutex_unlock(&c->out_mu);
	snprintf(buf, size,
		 "pause %d, rd %d%s%s, %zu bytes received waiting; wr %d, %zu bytes queued, "
		 "%zu of them answers; the remote sent %zu of %zu bytes",
		 pause, rd, reading ? ", a read in flight" : "", held ? ", the link holds input" : "",
		 in_bytes, wr, out_bytes, out_control, f->pos, f->len);
}

/* Sends what the socket takes now: whether it took anything. */
static bool flood_send(struct flood *f)
{
	bool took = false;

	while (f->pos < f->len) {
		size_t n = raw_send(f->r, f->out + f->pos, f->r->packets ? f->frame : f->len - f->pos);

		if (!n)
			break;
		f->pos += n;
		took = true;
	}
	return took;
}

/* The remote sends and never reads, until its socket takes nothing more
 * (or it sent everything) and this side has stopped reading for its
 * answers.  received: how many messages this side has read. */
static void flood_until_stopped(struct flood *f, uint64_t (*received)(void *), void *ctx)
{
	static const char *const why[] = { "", " (reading paused for the application)",
					   " (paused for its answers, which it sees over the limit)" };
	struct timespec deadline = deadline_in(WAIT);

	for (;;) {
		bool took = flood_send(f);
		enum conn_pause paused;

		flood_look(f);
		if (took) {
			deadline = deadline_in(WAIT);
			continue;
		}
		/* Paused for the answers, with the queue seen over its limit:
		 * the pause may outlive the queue's being over by the moment
		 * the loop takes to look, so one look at each is not enough. */
		paused = pause_of(f->c);
		if (paused == PAUSE_SEND && f->most > LIMIT)
			break;
		/* This side read everything and answered within the bound:
		 * the flood was too small to tell. */
		ck_assert_msg(f->pos < f->len || received(ctx) < f->n,
			      "this side read the whole flood (%u requests), its answers "
			      "holding %zu bytes at most: never over the limit and the bound",
			      f->n, f->most);
		if (!wait_tick(&deadline)) {
			char state[256];

			describe(f, state, sizeof(state));
			ck_abort_msg("the remote %s, and this side neither reads on nor stops for "
				     "its answers%s (%lu messages read; %s)",
				     f->pos < f->len ? "cannot send" : "sent everything", why[paused],
				     (unsigned long)received(ctx), state);
		}
	}
}

/* The remote reads, and sends the rest of its flood: the answers to the
 * requests from first on all arrive, in order, each checked by check. */
static void flood_read(struct flood *f, uint32_t first,
		       void (*check)(const struct answer *a, uint32_t id))
{
	struct timespec deadline = deadline_in(WAIT);
	uint32_t next = first;

	while (next < f->first + f->n || f->pos < f->len) {
		bool moved = flood_send(f);
		struct answer a;

		while (next < f->first + f->n && raw_next(f->r, &a)) {
			check(&a, next++);
			moved = true;
		}
		flood_look(f);
		if (moved) {
			deadline = deadline_in(WAIT);
		} else if (!wait_tick(&deadline)) {
			char state[256];

			describe(f, state, sizeof(state));
			ck_abort_msg("the answers stopped at %u of %u (%s)", next, f->first + f->n,
				     state);
		}
	}
}

static uint64_t received_of(void *p)
{
	return pier_peer_stat(p, PIER_STAT_MSGS_RECEIVED);
}

/* This side's listener for kind k, and the remote connected to it. */
static pier_peer *accept_remote(enum kind k, const pier_config *cfg, struct raw *r)
{
	char address[128], bound[256];
	pier_listener *l;
	pier_peer *p;

	listen_address(k, address, sizeof(address));
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	ck_assert_int_eq(pier_listener_address(l, bound, sizeof(bound)), 0);
	raw_connect(r, k, bound);
	ck_assert_int_eq(pier_listener_accept(l, &p, under_valgrind() ? 6 * WAIT : WAIT), 0);
	pier_listener_free(l);
	shrink(p);
	return p;
}

/* --- pings ----------------------------------------------------------------- */

static void check_pong(const struct answer *a, uint32_t id)
{
	assert_answer(a, PIER_MSG_RESPONSE, id, PING_SERVICE, "");
}

struct reader {
	pier_peer *p;
	pier_msg *m;
	int r;
};

static void *read_one(void *arg)
{
	struct reader *rd = arg;
	pier_received_request *rr = NULL;

	rd->r = pier_peer_recv(rd->p, &rd->m, &rr, -1);
	ck_assert_ptr_null(rr);
	return NULL;
}

/* Pings, answered by an application thread that waits for a message and
 * so reads the socket itself. */
START_TEST(ping_flood_pauses_reading)
{
	enum kind k = kind_of(_i);
	uint32_t n = k == K_SEQPACKET ? REQUESTS_PACKET : PINGS_STREAM;
	pier_config *cfg = side_config(k);
	struct raw *r = malloc(sizeof(*r));
	struct reader rd = { 0 };
	struct flood f;
	struct answer a;
	pthread_t th;
	pier_peer *p;

	ck_assert_int_eq(pier_config_set_ping(cfg, PING_SERVICE, 0), 0);
	p = accept_remote(k, cfg, r);
	pier_config_free(cfg);
	rd.p = p;
	ck_assert_int_eq(pthread_create(&th, NULL, read_one, &rd), 0);

	flood_init(&f, r, &p->conn, LIMIT + CONN_ANSWERS_PAST_LIMIT, 1, n, PING_SERVICE);
	flood_until_stopped(&f, received_of, p);
	flood_read(&f, 1, check_pong);
	ck_assert_uint_eq(pier_peer_stat(p, PIER_STAT_PINGS_RECEIVED), n);

	/* The connection goes on, both ways. */
	raw_send_all(r, &(struct pier_header){ PIER_MSG_STREAM, 0, 5 }, "after");
	pthread_join(th, NULL);
	ck_assert_int_eq(rd.r, 0);
	assert_msg(rd.m, PIER_MSG_STREAM, 5, "after");
	pier_msg_free(rd.m);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), 6, "back", 4, NULL, 0), 0);
	raw_expect(r, &a);
	assert_answer(&a, PIER_MSG_STREAM, 0, 6, "back");

	flood_fini(&f);
	pier_peer_free(p);
	raw_close(r);
	free(r);
	printf("%s: %u pings, the queue held %zu bytes at most\n", kind_name[k], n, f.most);
}
END_TEST

/* --- requests over the open-request limit ---------------------------------- */

enum { MAX_OPEN = 4 };

static void check_too_many(const struct answer *a, uint32_t id)
{
	assert_answer(a, PIER_MSG_RESPONSE, id, PIER_SERVICE_ERROR, "too many open requests");
}

/* Requests over the limit, refused as the loop reads them in the
 * background (the application watches the peer's fd and does nothing). */
START_TEST(refusal_flood_pauses_reading)
{
	enum kind k = kind_of(_i);
	uint32_t n = k == K_SEQPACKET ? REQUESTS_PACKET : REQUESTS_STREAM;
	pier_config *cfg = side_config(k);
	struct raw *r = malloc(sizeof(*r));
	struct flood f;
	struct answer a;
	pier_peer *p;

	ck_assert_int_eq(pier_config_set_max_open_requests(cfg, MAX_OPEN), 0);
	p = accept_remote(k, cfg, r);
	pier_config_free(cfg);
	ck_assert_int_ge(pier_peer_fd(p), 0); /* the loop reads from now on */

	flood_init(&f, r, &p->conn, LIMIT + CONN_ANSWERS_PAST_LIMIT, 1, n, ECHO_SERVICE);
	flood_until_stopped(&f, received_of, p);
	/* The first MAX_OPEN are open, waiting for the application. */
	flood_read(&f, 1 + MAX_OPEN, check_too_many);
	ck_assert_uint_eq(pier_peer_stat(p, PIER_STAT_REFUSED_REQUESTS), n - MAX_OPEN);

	/* The connection goes on: the open ones are answered, and a new
	 * request is taken. */
	for (uint32_t id = 1; id <= MAX_OPEN + 1; id++) {
		pier_received_request *rr;
		pier_msg *m;

		if (id == MAX_OPEN + 1)
			raw_send_all(r, &(struct pier_header){ PIER_MSG_REQUEST, n + 1, ECHO_SERVICE },
				     "more");
		rr = recv_request(p, &m);
		ck_assert_uint_eq(pier_received_request_id(rr), id == MAX_OPEN + 1 ? n + 1 : id);
		ck_assert_int_eq(pier_received_request_send_response(rr, ECHO_SERVICE, "ok", 2, NULL,
								     0),
				 0);
		pier_received_request_free(rr);
		pier_msg_free(m);
		raw_expect(r, &a);
		assert_answer(&a, PIER_MSG_RESPONSE, id == MAX_OPEN + 1 ? n + 1 : id, ECHO_SERVICE,
			      "ok");
	}

	flood_fini(&f);
	pier_peer_free(p);
	raw_close(r);
	free(r);
	printf("%s: %u requests, the queue held %zu bytes at most\n", kind_name[k], n, f.most);
}
END_TEST

/* --- a server's refusals ----------------------------------------------------- */

static _Atomic(pier_peer *) first_peer;

static int on_connect(void *ud, pier_peer *p, void **pd)
{
	pier_peer *none = NULL;

	if (atomic_compare_exchange_strong(&first_peer, &none, p))
		shrink(p);
	return 0;
}

static int h_echo(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	size_t len;
	const void *b = pier_msg_body(m, &len);

	pier_received_request_send_response(req, ECHO_SERVICE, b, len, NULL, 0);
	return PIER_HANDLER_DONE;
}

static void check_unknown(const struct answer *a, uint32_t id)
{
	char text[64];

	snprintf(text, sizeof(text), "unknown service id %d", UNKNOWN_SERVICE);
	assert_answer(a, PIER_MSG_RESPONSE, id, PIER_SERVICE_ERROR, text);
}

/* Requests for a service nobody handles, refused by a server with one
 * worker: the answers pause reading that remote as the library's own
 * refusals do, and the worker never waits for it: another client is
 * served meanwhile. */
START_TEST(server_refusal_flood_pauses_reading)
{
	enum kind k = kind_of(_i);
	uint32_t n = k == K_SEQPACKET ? REQUESTS_PACKET : REQUESTS_STREAM;
	pier_config *cfg = side_config(k), *client;
	struct raw *r = malloc(sizeof(*r));
	char address[128], bound[256];
	pier_sent_request *sr;
	pier_server *s;
	pier_peer *q;
	struct flood f;
	struct answer a;
	pier_msg *m;

	/* Little waits for the worker, so that the answers it owes to
	 * requests already read stay within a chunk. */
	ck_assert_int_eq(pier_config_set_max_queued(cfg, 4096, LIMIT), 0);
	ck_assert_int_eq(pier_server_new(&s, cfg), 0);
	pier_config_free(cfg);
	ck_assert_int_eq(pier_server_set_workers(s, 1), 0);
	ck_assert_int_eq(pier_server_set_peer_hooks(s, on_connect, NULL, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, ECHO_SERVICE, h_echo, NULL), 0);
	listen_address(k, address, sizeof(address));
	ck_assert_int_eq(pier_server_listen(s, address), 0);
	ck_assert_int_eq(pier_server_address(s, 0, bound, sizeof(bound)), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	raw_connect(r, k, bound);
	wait_until(atomic_load(&first_peer), under_valgrind() ? 6 * WAIT : WAIT);

	flood_init(&f, r, &atomic_load(&first_peer)->conn,
		   LIMIT + CONN_ANSWERS_PAST_LIMIT + CONN_CHUNK_MEMORY, 1, n, UNKNOWN_SERVICE);
	flood_until_stopped(&f, received_of, atomic_load(&first_peer));

	/* Another client is served while the remote reads nothing. */
	ck_assert_int_eq(pier_config_new(&client), 0);
#ifdef HAVE_OPENSSL
	if (k == K_TLS)
		ck_assert_int_eq(pier_config_set_tls_ca(client, pki_get()->ca, NULL), 0);
#endif
	ck_assert_int_eq(pier_peer_connect(&q, bound, client), 0);
	pier_config_free(client);
	sr = send_request(q, ECHO_SERVICE, "served");
	ck_assert_msg(pier_sent_request_recv_response(sr, &m, WAIT) == 0,
		      "the server's worker waits for the remote that does not read");
	assert_msg(m, PIER_MSG_RESPONSE, ECHO_SERVICE, "served");
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_peer_free(q);

	/* One worker refuses them in turn: in order. */
	flood_read(&f, 1, check_unknown);
	raw_send_all(r, &(struct pier_header){ PIER_MSG_REQUEST, n + 1, ECHO_SERVICE }, "again");
	raw_expect(r, &a);
	assert_answer(&a, PIER_MSG_RESPONSE, n + 1, ECHO_SERVICE, "again");
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_UNKNOWN_REQUESTS), n);

	flood_fini(&f);
	raw_close(r);
	free(r);
	pier_server_free(s);
	printf("%s: %u requests, the queue held %zu bytes at most\n", kind_name[k], n, f.most);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("flood");
	TCase *tc = th_tcase("flood", 60);

	tcase_add_loop_test(tc, ping_flood_pauses_reading, 0, 2 * K_KINDS);
	tcase_add_loop_test(tc, refusal_flood_pauses_reading, 0, 2 * K_KINDS);
	tcase_add_loop_test(tc, server_refusal_flood_pauses_reading, 0, 2 * K_KINDS);
	suite_add_tcase(s, tc);
	return th_run(s);
}
