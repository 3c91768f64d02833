/* SPDX-License-Identifier: MIT */
/*
 * Vectored sends: a body given as pieces arrives as one body, its pieces
 * joined in order, by every call that sends a body, over every kind of
 * pair (TLS too): empty pieces and bodies, many small pieces, large bodies
 * written as the socket takes them, frames copied into the send queue or
 * held to share a write, pieces with fds; and the pieces a caller may not
 * pass.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "peers.h"
#include "private.h"
#include "route.h"
#include "wire.h"

/* --- bodies and their pieces --------------------------------------------- */

/* len bytes that differ for each seed and show any byte out of place: no
 * shift by a power of two below 4 GiB (a piece's size, a buffer's) maps
 * them onto themselves. */
static unsigned char *pattern(size_t len, uint32_t seed)
{
	unsigned char *p = malloc(len ? len : 1);

	ck_assert_ptr_nonnull(p);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(((uint32_t)i * 2654435761u + seed * 40503u) >> 24);
	return p;
}

/* Cuts body (len bytes) into pieces at the offsets cuts[0..n) (ascending):
 * n + 1 pieces into iov; returns how many. */
static size_t cut(const unsigned char *body, size_t len, const size_t *cuts, size_t n,
		  struct iovec *iov)
{
	size_t at = 0;

	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_le(cuts[i], len);
		iov[i] = (struct iovec){ (void *)(body + at), cuts[i] - at };
		at = cuts[i];
	}
	iov[n] = (struct iovec){ (void *)(body + at), len - at };
	return n + 1;
}

/* The message's body is want (len bytes). */
static void expect_body(const pier_msg *m, const unsigned char *want, size_t len)
{
	size_t got_len, i;
	const unsigned char *got = pier_msg_body(m, &got_len);

	ck_assert_uint_eq(got_len, len);
	if (len == 0 || memcmp(got, want, len) == 0)
		return;
	for (i = 0; got[i] == want[i]; i++)
		;
	ck_abort_msg("the body of %zu bytes differs from byte %zu on", len, i);
}

static void expect_msg(const pier_msg *m, enum pier_msg_type type, int32_t service,
		       const unsigned char *want, size_t len)
{
	ck_assert_int_eq(pier_msg_header(m)->type, type);
	ck_assert_int_eq(pier_msg_header(m)->service_id, service);
	expect_body(m, want, len);
}

/* b receives a stream message: service, its body want. */
static void expect_stream(pier_peer *b, int32_t service, const unsigned char *want, size_t len)
{
	pier_received_request *rr;
	pier_msg *m;
	int r = pier_peer_recv(b, &m, &rr, WAIT);

	ck_assert_msg(r == 0, "recv: %s", pier_strerror(r));
	ck_assert_ptr_null(rr);
	expect_msg(m, PIER_MSG_STREAM, service, want, len);
	pier_msg_free(m);
}

static int send_streamv(pier_peer *a, int32_t service, const struct iovec *iov, size_t n)
{
	return pier_writer_send_streamv(pier_peer_get_writer(a), service, iov, n, NULL, 0);
}

/* --- every call, every pair ---------------------------------------------- */

/* A message of its own for each call: a header struct, data, a trailer;
 * under 2 KiB for odd seeds (written joined), over it for even ones. */
struct piece_msg {
	unsigned char *body;
	size_t len;
	struct iovec iov[3];
};

static void piece_msg(struct piece_msg *pm, uint32_t seed)
{
	size_t cuts[2] = { 24, 24 + (seed % 2 ? 1000 : 3000) + seed * 37 };

	pm->len = cuts[1] + 5;
	pm->body = pattern(pm->len, seed);
	cut(pm->body, pm->len, cuts, 2, pm->iov);
}

START_TEST(every_call_sends_pieces)
{
	enum { N = 10 };
	struct piece_msg pm[N];
	pier_sent_request *sr, *sr2;
	pier_received_request *rr, *rr2;
	pier_writer *wa;
	pier_peer *a, *b;
	pier_msg *m;

	for (int i = 0; i < N; i++)
		piece_msg(&pm[i], (uint32_t)i + 1);
	make_pair(_i, &a, &b);
	wa = pier_peer_get_writer(a);

	ck_assert_int_eq(pier_writer_send_streamv(wa, 1, pm[0].iov, 3, NULL, 0), 0);
	expect_stream(b, 1, pm[0].body, pm[0].len);

	ck_assert_int_eq(pier_writer_send_requestv(wa, 2, pm[1].iov, 3, NULL, 0, &sr), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_ptr_nonnull(rr);
	expect_msg(m, PIER_MSG_REQUEST, 2, pm[1].body, pm[1].len);
	pier_msg_free(m);

	/* Requester updates, through the handle and its write half. */
	ck_assert_int_eq(pier_sent_request_send_updatev(sr, 3, pm[2].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_writer_send_updatev(pier_sent_request_get_writer(sr), 4,
							       pm[3].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_REQUESTER_UPDATE, 3, pm[2].body, pm[2].len);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_REQUESTER_UPDATE, 4, pm[3].body, pm[3].len);
	pier_msg_free(m);

	/* Responder updates and the response. */
	ck_assert_int_eq(pier_received_request_send_updatev(rr, 5, pm[4].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_writer_send_updatev(
				 pier_received_request_get_writer(rr), 6, pm[5].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_responsev(rr, 7, pm[6].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONDER_UPDATE, 5, pm[4].body, pm[4].len);
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONDER_UPDATE, 6, pm[5].body, pm[5].len);
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONSE, 7, pm[6].body, pm[6].len);
	pier_msg_free(m);
	/* One response only, vectored or not. */
	ck_assert_int_eq(pier_received_request_send_responsev(rr, 7, pm[6].iov, 3, NULL, 0),
			 -PIER_EDONE);

	/* The response through the write half, of a second request. */
	ck_assert_int_eq(pier_writer_send_requestv(wa, 8, pm[7].iov, 3, NULL, 0, &sr2), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr2, WAIT), 0);
	expect_msg(m, PIER_MSG_REQUEST, 8, pm[7].body, pm[7].len);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_writer_send_responsev(
				 pier_received_request_get_writer(rr2), 9, pm[8].iov, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr2, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONSE, 9, pm[8].body, pm[8].len);
	pier_msg_free(m);

	/* The bytes counted are the bodies'. */
	ck_assert_uint_eq(pier_peer_stat(b, PIER_STAT_BYTES_RECEIVED),
			  pm[0].len + pm[1].len + pm[2].len + pm[3].len + pm[7].len);

	pier_sent_request_free(sr);
	pier_sent_request_free(sr2);
	pier_received_request_free(rr);
	pier_received_request_free(rr2);
	pier_peer_free(a);
	pier_peer_free(b);
	for (int i = 0; i < N; i++)
		free(pm[i].body);
}
END_TEST

/* --- empty pieces, empty bodies ------------------------------------------ */

START_TEST(empty_pieces_and_bodies)
{
	const struct iovec empties[3] = { { NULL, 0 }, { NULL, 0 }, { NULL, 0 } };
	const struct iovec gaps[5] = {
		{ NULL, 0 }, { (void *)"ab", 2 }, { (void *)"x", 0 }, { (void *)"cd", 2 }, { NULL, 0 },
	};
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_peer *a, *b;
	pier_msg *m;

	make_pair(_i, &a, &b);
	/* No pieces at all, with or without an array. */
	ck_assert_int_eq(send_streamv(a, 1, NULL, 0), 0);
	ck_assert_int_eq(send_streamv(a, 2, empties, 0), 0);
	/* Only empty pieces: one, or several. */
	ck_assert_int_eq(send_streamv(a, 3, empties, 1), 0);
	ck_assert_int_eq(send_streamv(a, 4, empties, 3), 0);
	/* Empty pieces between others. */
	ck_assert_int_eq(send_streamv(a, 5, gaps, 5), 0);
	expect_stream(b, 1, NULL, 0);
	expect_stream(b, 2, NULL, 0);
	expect_stream(b, 3, NULL, 0);
	expect_stream(b, 4, NULL, 0);
	expect_stream(b, 5, (const unsigned char *)"abcd", 4);

	/* A request with no pieces, answered with empty ones. */
	ck_assert_int_eq(pier_writer_send_requestv(pier_peer_get_writer(a), 6, NULL, 0, NULL, 0,
						   &sr), 0);
	rr = recv_request(b, &m);
	expect_msg(m, PIER_MSG_REQUEST, 6, NULL, 0);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_responsev(rr, 7, empties, 3, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONSE, 7, NULL, 0);
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- many small pieces ---------------------------------------------------- */

/* PIER_IOV_MAX pieces of sizes size(i), some of them empty. */
static void send_many(pier_peer *a, pier_peer *b, int32_t service, size_t (*size)(size_t))
{
	struct iovec iov[PIER_IOV_MAX];
	size_t cuts[PIER_IOV_MAX - 1], len = 0;
	unsigned char *body;

	for (size_t i = 0; i < PIER_IOV_MAX - 1; i++) {
		len += size(i);
		cuts[i] = len;
	}
	len += size(PIER_IOV_MAX - 1);
	body = pattern(len, (uint32_t)service);
	ck_assert_uint_eq(cut(body, len, cuts, PIER_IOV_MAX - 1, iov), PIER_IOV_MAX);
	ck_assert_int_eq(send_streamv(a, service, iov, PIER_IOV_MAX), 0);
	expect_stream(b, service, body, len);
	free(body);
}

/* Under 2 KiB in all: joined for one send(). */
static size_t tiny(size_t i)
{
	return i % 5 == 3 ? 0 : i % 13 + 1;
}

/* About 11 KiB: one sendmsg of them all (and not a chunk's frame). */
static size_t small(size_t i)
{
	return i % 7 == 2 ? 0 : 50 + 5 * i;
}

START_TEST(many_small_pieces)
{
	pier_peer *a, *b;

	make_pair(_i, &a, &b);
	send_many(a, b, 1, tiny);
	send_many(a, b, 2, small);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- large bodies: partial writes, the rest written or queued ------------ */

/* How a large body is cut: a small header struct, then a few pieces of odd
 * sizes; or PIER_IOV_MAX pieces smaller than a TLS record, which TLS
 * gathers, so that what a write took ends inside a piece there too. */
enum layout { FEW_PIECES, MOST_PIECES };

/* Cuts a large body for kind: several MiB on a stream, less on packets (a
 * packet must fit the socket's send buffer whole).  Returns the body's
 * length; cuts[0..*ncuts). */
static size_t large_cuts(int kind, enum layout layout, size_t *cuts, size_t *ncuts)
{
	bool packets = pair_kind_has_fds(kind);
	size_t len;

	if (layout == FEW_PIECES) {
		len = packets ? 100000 : (6u << 20) + 1234;
		cuts[0] = 40;
		cuts[1] = 41;
		cuts[2] = 40 + (len - 40) / 3;
		cuts[3] = len - 7;
		*ncuts = 4;
		return len;
	}
	len = 0;
	for (size_t i = 0; i < PIER_IOV_MAX - 1; i++) {
		len += (packets ? 1000 : 3000) + i * 37 % 1000;
		cuts[i] = len;
	}
	*ncuts = PIER_IOV_MAX - 1;
	return len + 999;
}

struct receiver {
	pier_peer *b;
	_Atomic pid_t tid;
	pier_msg *m;
	int r;
};

static void *receive(void *arg)
{
	struct receiver *rc = arg;
	pier_received_request *rr;

	rc->tid = thread_id();
	rc->r = pier_peer_recv(rc->b, &rc->m, &rr, 6 * WAIT);
	return NULL;
}

/* a sends a large body in pieces, its socket buffer small: b reads
 * meanwhile (the sender writes the rest from the pieces as the socket
 * takes it), or once the send returned (the rest waits in the queue,
 * copied). */
static void large_body(int kind, enum layout layout, bool read_meanwhile)
{
	size_t cuts[PIER_IOV_MAX - 1], ncuts, len = large_cuts(kind, layout, cuts, &ncuts);
	unsigned char *body = pattern(len, 77 + layout);
	struct iovec iov[PIER_IOV_MAX];
	struct receiver rc = { .tid = 0 };
	pier_config *cfg;
	pier_peer *a;
	pthread_t t;
	uint64_t writes;
	/* The kernel's smallest on Unix sockets; on TCP, where the smallest
	 * waits for acknowledgements, a little more. */
	int sndbuf = kind == PAIR_UNIX || kind == PAIR_UNIX_FD ? 1 : 16 << 10;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_body(cfg, len, len), 0);
	make_pair_cfg(kind, cfg, cfg, &a, &rc.b);
	pier_config_free(cfg);
	if (!pair_kind_has_fds(kind))
		ck_assert_int_eq(setsockopt(a->conn.link.fd, SOL_SOCKET, SO_SNDBUF, &sndbuf,
					    sizeof(sndbuf)), 0);
#ifdef HAVE_OPENSSL
	/* The TLS client's loop writes the end of its handshake: until it is
	 * out, a message would wait in the queue behind it. */
	if (kind == PAIR_TLS)
		wait_until(pier_peer_stat(a, PIER_STAT_WRITES) == 2, WAIT);
#endif
	writes = pier_peer_stat(a, PIER_STAT_WRITES);
	cut(body, len, cuts, ncuts, iov);
	if (read_meanwhile) {
		/* b reads as soon as the first bytes come, not a scheduler's
		 * tick later (the sender queues the rest once the socket has
		 * taken nothing for a millisecond). */
		ck_assert_int_eq(pthread_create(&t, NULL, receive, &rc), 0);
		wait_until(thread_waits(rc.tid, true), WAIT);
	}
	ck_assert_int_eq(send_streamv(a, 9, iov, ncuts + 1), 0);
	if (read_meanwhile)
		ck_assert_int_eq(pthread_join(t, NULL), 0);
	else
		receive(&rc);
	ck_assert_msg(rc.r == 0, "recv: %s", pier_strerror(rc.r));
	expect_msg(rc.m, PIER_MSG_STREAM, 9, body, len);
	if (!pair_kind_has_fds(kind))
		ck_assert_uint_gt(pier_peer_stat(a, PIER_STAT_WRITES) - writes, 1);
	pier_msg_free(rc.m);
	pier_peer_free(a);
	pier_peer_free(rc.b);
	free(body);
}

START_TEST(large_body_read_meanwhile)
{
	large_body(_i, FEW_PIECES, true);
	large_body(_i, MOST_PIECES, true);
}
END_TEST

START_TEST(large_body_read_after)
{
	large_body(_i, FEW_PIECES, false);
	large_body(_i, MOST_PIECES, false);
}
END_TEST

/* --- the send queue: pieces copied in order ------------------------------- */

/* Fills the socket fd until it takes nothing more; returns the bytes. */
static size_t fill(int fd)
{
	static const unsigned char junk[4096];
	size_t filled = 0;
	ssize_t n;

	while ((n = send(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		filled += (size_t)n;
	ck_assert_int_eq(errno, EAGAIN);
	return filled;
}

/* Reads len bytes off fd. */
static void read_exactly(int fd, unsigned char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n = recv(fd, buf + got, len - got, 0);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
}

/* Sizes of the queued messages: small ones that share a chunk, one over a
 * chunk's frames (a frame of its own), a large one. */
static const size_t queued_sizes[] = { 30, 700, 5000, 9000, 100000, 12 };
#define QUEUED PIER_ARRAY_SIZE(queued_sizes)

/* A stream connection whose socket is full: every message waits in the
 * queue, the first one when nothing was queued yet, the others behind it;
 * the remote then reads each frame whole, its pieces in order. */
START_TEST(queued_stream_frames)
{
	unsigned char *bodies[QUEUED], *junk, *frame;
	size_t filled;
	pier_config *cfg;
	pier_peer *a;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	filled = fill(sv[0]);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, 0), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], cfg), 0);
	pier_config_free(cfg);
	for (size_t i = 0; i < QUEUED; i++) {
		size_t len = queued_sizes[i], cuts[3] = { 1, len / 2, len - 1 };
		struct iovec iov[4];

		bodies[i] = pattern(len, (uint32_t)i);
		cut(bodies[i], len, cuts, 3, iov);
		ck_assert_int_eq(send_streamv(a, (int32_t)i, iov, 4), 0);
	}
	pthread_mutex_lock(&a->conn.out_mu);
	ck_assert_msg(a->conn.out_head, "nothing was queued");
	pthread_mutex_unlock(&a->conn.out_mu);

	junk = malloc(filled);
	read_exactly(sv[1], junk, filled);
	free(junk);
	for (size_t i = 0; i < QUEUED; i++) {
		size_t len = queued_sizes[i];
		struct pier_header h = { PIER_MSG_STREAM, 0, (int32_t)i };
		unsigned char head[WIRE_STREAM_OVERHEAD];

		wire_stream_prefix_encode(head, &h, len, PIER_BYTE_ORDER_LITTLE);
		frame = malloc(WIRE_STREAM_OVERHEAD + len);
		read_exactly(sv[1], frame, WIRE_STREAM_OVERHEAD + len);
		ck_assert_msg(memcmp(frame, head, sizeof(head)) == 0, "frame %zu: its head", i);
		ck_assert_msg(memcmp(frame + WIRE_STREAM_OVERHEAD, bodies[i], len) == 0,
			      "frame %zu: its body", i);
		free(frame);
		free(bodies[i]);
	}
	pier_peer_free(a);
	close(sv[1]);
}
END_TEST

/* --- pieces with fds ------------------------------------------------------ */

/* Reads one packet off a raw seqpacket socket into buf (up to size
 * bytes), its fds into fds (up to 8); returns the packet's length. */
static size_t read_packet(int fd, unsigned char *buf, size_t size, int *fds, size_t *nfds)
{
	char cbuf[CMSG_SPACE(8 * sizeof(int))];
	struct iovec iov = { buf, size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct pollfd pfd = { fd, POLLIN, 0 };
	ssize_t n;

	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	ck_assert_int_ge(n, 0);
	ck_assert(!(mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)));
	*nfds = 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		memcpy(fds + *nfds, CMSG_DATA(cm), count * sizeof(int));
		*nfds += count;
	}
	return (size_t)n;
}

/* A small body in pieces (without fds, it would be joined for one send())
 * and a larger one, each with two fds: both arrive with their fds. */
START_TEST(pieces_with_fds)
{
	static const size_t sizes[] = { 20, 3000 };
	pier_peer *a, *b;
	int fds[2];

	if (!pair_kind_has_fds(_i))
		return;
	fds[0] = memfd_with("first");
	fds[1] = memfd_with("second");
	make_pair(_i, &a, &b);
	for (size_t i = 0; i < PIER_ARRAY_SIZE(sizes); i++) {
		size_t len = sizes[i], cuts[2] = { 8, len - 3 };
		unsigned char *body = pattern(len, (uint32_t)i + 5);
		pier_received_request *rr;
		struct iovec iov[3];
		pier_msg *m;
		char *text;

		cut(body, len, cuts, 2, iov);
		ck_assert_int_eq(pier_writer_send_streamv(pier_peer_get_writer(a), 3, iov, 3, fds, 2),
				 0);
		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		expect_msg(m, PIER_MSG_STREAM, 3, body, len);
		ck_assert_uint_eq(pier_msg_fd_count(m), 2);
		text = read_fd(pier_msg_fd(m, 0));
		ck_assert_str_eq(text, "first");
		free(text);
		text = read_fd(pier_msg_fd(m, 1));
		ck_assert_str_eq(text, "second");
		free(text);
		pier_msg_free(m);
		free(body);
	}
	pier_peer_free(a);
	pier_peer_free(b);
	close(fds[0]);
	close(fds[1]);
}
END_TEST

/* A packet with fds that waits in the queue (the socket is full) keeps its
 * pieces, in order, and its fds. */
START_TEST(queued_packet_with_fds)
{
	enum { LEN = 5000 };
	unsigned char *body = pattern(LEN, 3), pkt[WIRE_HEADER_SIZE + LEN + 1];
	size_t cuts[2] = { 10, 4000 }, junk, n, nfds;
	int fd = memfd_with("queued"), got[8], sv[2];
	struct pier_header h;
	struct iovec iov[3];
	pier_peer *a;
	char *text;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], NULL), 0);
	junk = 0;
	while (send(a->conn.link.fd, "junk", 4, MSG_DONTWAIT) == 4)
		junk++;
	cut(body, LEN, cuts, 2, iov);
	ck_assert_int_eq(pier_writer_send_streamv(pier_peer_get_writer(a), 4, iov, 3, &fd, 1), 0);
	pthread_mutex_lock(&a->conn.out_mu);
	ck_assert_msg(a->conn.out_head, "nothing was queued");
	pthread_mutex_unlock(&a->conn.out_mu);
	for (size_t i = 0; i < junk; i++) {
		ck_assert_uint_eq(read_packet(sv[1], pkt, sizeof(pkt), got, &nfds), 4);
		ck_assert_uint_eq(nfds, 0);
	}
	n = read_packet(sv[1], pkt, sizeof(pkt), got, &nfds);
	ck_assert_uint_eq(n, WIRE_HEADER_SIZE + LEN);
	ck_assert_int_eq(wire_header_decode(&h, pkt, PIER_BYTE_ORDER_LITTLE), 0);
	ck_assert_int_eq(h.service_id, 4);
	ck_assert_msg(memcmp(pkt + WIRE_HEADER_SIZE, body, LEN) == 0, "the packet's body");
	ck_assert_uint_eq(nfds, 1);
	text = read_fd(got[0]);
	ck_assert_str_eq(text, "queued");
	free(text);
	close(got[0]);
	pier_peer_free(a);
	close(sv[1]);
	close(fd);
	free(body);
}
END_TEST

/* --- held: small vectored messages share writes --------------------------- */

enum { HELD_LEN = 40 };

/* Message i of a burst: a 4-byte number, then 36 bytes of its pattern, in
 * three pieces. */
static void held_body(unsigned char *body, int i)
{
	unsigned char *rest = pattern(HELD_LEN - 4, (uint32_t)i);

	memcpy(body, &i, 4);
	memcpy(body + 4, rest, HELD_LEN - 4);
	free(rest);
}

START_TEST(held_pieces_share_writes)
{
	pier_config *cfg;
	pier_peer *a, *b;
	int sent = 0;
	bool held = false;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, 10000000), 0);
	make_pair_cfg(_i, cfg, NULL, &a, &b);
	pier_config_free(cfg);
	/* Bursts until one was held in part: a loaded machine may stretch
	 * every gap of one beyond what holding allows. */
	for (int tries = 0; tries < 50 && !held; tries++) {
		uint64_t before = pier_peer_stat(a, PIER_STAT_WRITES);

		for (int k = 0; k < 20; k++, sent++) {
			unsigned char body[HELD_LEN];
			size_t cuts[2] = { 4, 17 };
			struct iovec iov[3];

			held_body(body, sent);
			cut(body, HELD_LEN, cuts, 2, iov);
			ck_assert_int_eq(send_streamv(a, 7, iov, 3), 0);
		}
		held = pier_peer_stat(a, PIER_STAT_WRITES) - before < 20;
	}
	ck_assert_msg(held, "no burst of vectored messages was held");
	ck_assert_int_eq(pier_writer_flush(pier_peer_get_writer(a)), 0);
	for (int i = 0; i < sent; i++) {
		unsigned char body[HELD_LEN];

		held_body(body, i);
		expect_stream(b, 7, body, HELD_LEN);
	}
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- what a caller may not pass ------------------------------------------- */

/* Every vectored call on the pair's open request sr / rr, with the pieces
 * iov[0..n) and fds: their results, in the order of the list in pier.h. */
static void send_all(pier_peer *a, pier_sent_request *sr, pier_received_request *rr,
		     const struct iovec *iov, size_t n, const int *fds, size_t nfds, int *r)
{
	pier_sent_request *out = NULL;

	r[0] = pier_writer_send_requestv(pier_peer_get_writer(a), 1, iov, n, fds, nfds, &out);
	r[1] = pier_writer_send_streamv(pier_peer_get_writer(a), 1, iov, n, fds, nfds);
	r[2] = pier_sent_request_send_updatev(sr, 1, iov, n, fds, nfds);
	r[3] = pier_sent_request_writer_send_updatev(pier_sent_request_get_writer(sr), 1, iov, n,
						     fds, nfds);
	r[4] = pier_received_request_send_updatev(rr, 1, iov, n, fds, nfds);
	r[5] = pier_received_request_send_responsev(rr, 1, iov, n, fds, nfds);
	r[6] = pier_received_request_writer_send_updatev(pier_received_request_get_writer(rr), 1,
							 iov, n, fds, nfds);
	r[7] = pier_received_request_writer_send_responsev(pier_received_request_get_writer(rr), 1,
							   iov, n, fds, nfds);
	ck_assert_ptr_null(out);
}

/* Every call returns want; nothing was sent. */
static void refused(pier_peer *a, pier_sent_request *sr, pier_received_request *rr,
		    const struct iovec *iov, size_t n, const int *fds, size_t nfds, int want,
		    const char *what)
{
	int r[8];

	send_all(a, sr, rr, iov, n, fds, nfds, r);
	for (int i = 0; i < 8; i++)
		ck_assert_msg(r[i] == want, "%s, call %d: %s, not %s", what, i, pier_strerror(r[i]),
			      pier_strerror(want));
}

START_TEST(bad_pieces)
{
	enum { LIMIT = 1000 };
	unsigned char *buf = pattern(LIMIT, 1);
	struct iovec many[PIER_IOV_MAX + 1], iov[2];
	size_t cuts[PIER_IOV_MAX - 1];
	pier_sent_request *sr;
	pier_received_request *rr, *none;
	pier_config *cfg;
	pier_peer *a, *b;
	pier_msg *m;
	int fd = memfd_with("x");

	for (size_t i = 0; i <= PIER_IOV_MAX; i++)
		many[i] = (struct iovec){ buf, 1 };
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_body(cfg, LIMIT, LIMIT), 0);
	make_pair_cfg(PAIR_SEQPACKET_FD, cfg, cfg, &a, &b);
	pier_config_free(cfg);
	open_request(a, b, 1, "open", &sr, &rr);

	refused(a, sr, rr, many, PIER_IOV_MAX + 1, NULL, 0, -EINVAL, "too many pieces");
	refused(a, sr, rr, many, SIZE_MAX, NULL, 0, -EINVAL, "SIZE_MAX pieces");
	refused(a, sr, rr, NULL, 1, NULL, 0, -EINVAL, "no array");
	iov[0] = (struct iovec){ buf, 1 };
	iov[1] = (struct iovec){ NULL, 1 };
	refused(a, sr, rr, iov, 2, NULL, 0, -EINVAL, "a piece without a base");
	refused(a, sr, rr, iov, 1, NULL, 1, -EINVAL, "no fds array");
	/* Over the write limit in all, each piece under it. */
	iov[0] = (struct iovec){ buf, 600 };
	iov[1] = (struct iovec){ buf, 401 };
	refused(a, sr, rr, iov, 2, NULL, 0, -EMSGSIZE, "over the limit");
	/* Sums past SIZE_MAX: wrapped, they would be 1 and 0 bytes. */
	iov[0] = (struct iovec){ buf, SIZE_MAX };
	iov[1] = (struct iovec){ buf, 2 };
	refused(a, sr, rr, iov, 2, NULL, 0, -EMSGSIZE, "a sum past SIZE_MAX");
	iov[0] = (struct iovec){ buf, SIZE_MAX / 2 + 1 };
	iov[1] = (struct iovec){ buf, SIZE_MAX / 2 + 1 };
	refused(a, sr, rr, iov, 2, NULL, 0, -EMSGSIZE, "a sum of SIZE_MAX + 1");
	/* Checked before fds are: one of each refusal, arguments first. */
	refused(a, sr, rr, many, PIER_IOV_MAX + 1, &fd, 1, -EINVAL, "too many pieces, with fds");

	ck_assert_int_eq(pier_writer_send_streamv(NULL, 1, iov, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_writer_send_requestv(NULL, 1, iov, 1, NULL, 0, &sr), -EINVAL);
	ck_assert_int_eq(pier_writer_send_requestv(pier_peer_get_writer(a), 1, NULL, 0, NULL, 0,
						   NULL), -EINVAL);
	ck_assert_int_eq(pier_sent_request_send_updatev(NULL, 1, iov, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_sent_request_writer_send_updatev(NULL, 1, iov, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_received_request_send_updatev(NULL, 1, iov, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_received_request_send_responsev(NULL, 1, iov, 1, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_received_request_writer_send_updatev(NULL, 1, iov, 1, NULL, 0),
			 -EINVAL);
	ck_assert_int_eq(pier_received_request_writer_send_responsev(NULL, 1, iov, 1, NULL, 0),
			 -EINVAL);

	/* At the limit, in the most pieces: fine, and the first thing the
	 * remote receives (nothing refused went out, no request was
	 * opened). */
	for (size_t i = 0; i < PIER_IOV_MAX - 1; i++)
		cuts[i] = 15 * (i + 1);
	cut(buf, LIMIT, cuts, PIER_IOV_MAX - 1, many);
	ck_assert_int_eq(send_streamv(a, 2, many, PIER_IOV_MAX), 0);
	expect_stream(b, 2, buf, LIMIT);
	ck_assert_int_eq(pier_received_request_send_responsev(rr, 3, many, 1, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	expect_msg(m, PIER_MSG_RESPONSE, 3, buf, 15);
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(b, &m, &none, 0), -EAGAIN);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, 0), -PIER_EDONE);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
	close(fd);
	free(buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("iov");
	TCase *tc = th_tcase("iov", 60);

	tcase_add_loop_test(tc, every_call_sends_pieces, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, empty_pieces_and_bodies, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, many_small_pieces, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, large_body_read_meanwhile, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, large_body_read_after, 0, PAIR_KINDS);
	tcase_add_test(tc, queued_stream_frames);
	tcase_add_loop_test(tc, pieces_with_fds, 0, PAIR_KINDS);
	tcase_add_test(tc, queued_packet_with_fds);
	tcase_add_loop_test(tc, held_pieces_share_writes, 0, PAIR_KINDS);
	tcase_add_test(tc, bad_pieces);
	suite_add_tcase(s, tc);
	return th_run(s);
}
