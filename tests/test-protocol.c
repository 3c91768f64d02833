/* SPDX-License-Identifier: MIT */
/*
 * A peer against a remote written with raw sockets: odd and malformed
 * traffic, exactly as the wire carries it.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "route.h"
#include "peers.h"
#include "wire.h"

struct raw {
	pier_peer *peer;
	int fd; /* the remote's end */
	bool packets;
};

static struct raw raw_pair(bool packets, const pier_config *cfg)
{
	struct raw r = { .packets = packets };
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, (packets ? SOCK_SEQPACKET : SOCK_STREAM) | SOCK_CLOEXEC,
				    0, sv),
			 0);
	ck_assert_int_eq(pier_peer_adopt(&r.peer, sv[0], cfg), 0);
	r.fd = sv[1];
	return r;
}

static void raw_close(struct raw *r)
{
	pier_peer_free(r->peer);
	close(r->fd);
}

/* Sends one message in the transport's framing, little endian, built by
 * hand: the type may be one pier would never send. */
static void raw_send(struct raw *r, uint32_t type, uint32_t id, int32_t svc, const char *body)
{
	unsigned char buf[4096];
	size_t len = strlen(body), head;

	if (r->packets) {
		uint32_t w[3] = { htole32(type), htole32(id), htole32((uint32_t)svc) };

		memcpy(buf, w, 12);
		head = 12;
	} else {
		uint32_t w[4] = { htole32((uint32_t)(12 + len)), htole32(type), htole32(id),
				  htole32((uint32_t)svc) };

		memcpy(buf, w, 16);
		head = 16;
	}
	memcpy(buf + head, body, len);
	ck_assert_int_eq(send(r->fd, buf, head + len, MSG_NOSIGNAL), (ssize_t)(head + len));
}

static void raw_send_bytes(struct raw *r, const void *data, size_t len)
{
	ck_assert_int_eq(send(r->fd, data, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads one message the peer sent (little endian). */
static void raw_recv(struct raw *r, struct pier_header *h, char *body, size_t size)
{
	unsigned char buf[4096];
	ssize_t n;
	size_t off = r->packets ? 0 : 4;

	if (r->packets) {
		n = recv(r->fd, buf, sizeof(buf), 0);
	} else {
		uint32_t len;

		ck_assert_int_eq(recv(r->fd, buf, 4, MSG_WAITALL), 4);
		memcpy(&len, buf, 4);
		len = le32toh(len);
		ck_assert_uint_lt(len, sizeof(buf) - 4);
		ck_assert_int_eq(recv(r->fd, buf + 4, len, MSG_WAITALL), (ssize_t)len);
		n = (ssize_t)len + 4;
	}
	ck_assert_int_ge(n, (ssize_t)(off + 12));
	ck_assert_int_eq(wire_header_decode(h, buf + off, PIER_BYTE_ORDER_LITTLE), 0);
	ck_assert_uint_lt((size_t)n - off - 12, size);
	memcpy(body, buf + off + 12, (size_t)n - off - 12);
	body[(size_t)n - off - 12] = '\0';
}

static void expect_end(pier_peer *p, int err)
{
	pier_received_request *rr;
	pier_msg *m;

	ck_assert_int_eq(pier_peer_recv(p, &m, &rr, WAIT), err);
}

/* Updates and responses for ids nobody opened: dropped and counted, and the
 * connection carries on. */
START_TEST(unknown_ids)
{
	struct raw r = raw_pair(_i, NULL);
	pier_received_request *rr;
	pier_msg *m;

	raw_send(&r, PIER_MSG_RESPONSE, 5, 1, "who?");
	raw_send(&r, PIER_MSG_RESPONDER_UPDATE, 6, 1, "who?");
	raw_send(&r, PIER_MSG_REQUESTER_UPDATE, 7, 1, "who?");
	raw_send(&r, PIER_MSG_STREAM, 0, 3, "still here");
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 3, "still here");
	pier_msg_free(m);
	ck_assert_uint_eq(pier_peer_stat(r.peer, PIER_STAT_UNKNOWN_IDS), 3);
	ck_assert_uint_eq(pier_peer_stat(r.peer, PIER_STAT_MSGS_RECEIVED), 4);
	raw_close(&r);
}
END_TEST

/* A request whose id is already open: dropped, counted, never answered. */
START_TEST(duplicate_request)
{
	struct raw r = raw_pair(_i, NULL);
	pier_received_request *rr, *none;
	struct pier_header h;
	pier_msg *m;
	char body[64];

	raw_send(&r, PIER_MSG_REQUEST, 9, 1, "first");
	raw_send(&r, PIER_MSG_REQUEST, 9, 1, "again");
	raw_send(&r, PIER_MSG_STREAM, 0, 2, "marker");
	rr = recv_request(r.peer, &m);
	assert_body(m, "first");
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &none, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 2, "marker");
	pier_msg_free(m);
	ck_assert_uint_eq(pier_peer_stat(r.peer, PIER_STAT_DUPLICATE_IDS), 1);
	/* the one answer on the wire is for the first */
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "one", 3, NULL, 0), 0);
	raw_recv(&r, &h, body, sizeof(body));
	ck_assert_int_eq(h.type, PIER_MSG_RESPONSE);
	ck_assert_uint_eq(h.request_id, 9);
	ck_assert_str_eq(body, "one");
	/* once answered, the id may be used again */
	raw_send(&r, PIER_MSG_REQUEST, 9, 1, "third");
	pier_received_request_free(rr);
	rr = recv_request(r.peer, &m);
	assert_body(m, "third");
	pier_msg_free(m);
	pier_received_request_free(rr); /* unanswered: error response */
	raw_recv(&r, &h, body, sizeof(body));
	ck_assert_int_eq(h.service_id, PIER_SERVICE_ERROR);
	raw_close(&r);
}
END_TEST

START_TEST(bad_type)
{
	struct raw r = raw_pair(_i, NULL);
	pier_sent_request *sr = send_request(r.peer, 1, "waiting");
	pier_msg *m;

	raw_send(&r, 5, 0, 1, "bad");
	expect_end(r.peer, -PIER_EBADTYPE);
	/* every waiter on the connection gets the same error */
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), -PIER_EBADTYPE);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(r.peer), 1, "x", 1, NULL, 0),
			 -PIER_EBADTYPE);
	pier_sent_request_free(sr);
	raw_close(&r);
}
END_TEST

START_TEST(short_frame)
{
	struct raw r = raw_pair(_i, NULL);

	if (r.packets) {
		raw_send_bytes(&r, "\0\0\0\0\0\0\0\0\0\0\0", 11);
	} else {
		static const unsigned char frame[16] = { 11 };

		raw_send_bytes(&r, frame, sizeof(frame));
	}
	expect_end(r.peer, -PIER_ESHORTFRAME);
	raw_close(&r);
}
END_TEST

/* An empty packet with an fd (which an end never carries): too short, and
 * the fd is closed; the valid message before it is still delivered. */
START_TEST(empty_packet_with_fd)
{
	struct raw r = raw_pair(true, NULL);
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { NULL, 0 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = memfd_with("lost");
	pier_received_request *rr;
	pier_msg *m;

	raw_send(&r, PIER_MSG_STREAM, 0, 1, "ok");
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ck_assert_int_eq(sendmsg(r.fd, &mh, 0), 0);
	close(fd);
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	assert_body(m, "ok");
	pier_msg_free(m);
	expect_end(r.peer, -PIER_ESHORTFRAME);
	raw_close(&r);
}
END_TEST

/* Sends a packet holding message m with nfds copies of fd. */
static ssize_t send_with_fds(struct raw *r, const void *m, size_t len, int fd, size_t nfds)
{
	size_t space = CMSG_SPACE(nfds * sizeof(int));
	char *cbuf = calloc(1, space);
	struct iovec iov = { (void *)m, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = space };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	ssize_t n;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	for (size_t i = 0; i < nfds; i++)
		memcpy(CMSG_DATA(cm) + i * sizeof(int), &fd, sizeof(int));
	n = sendmsg(r->fd, &mh, 0);
	free(cbuf);
	return n;
}

/* 254 fds: the kernel refuses to send them at all (253 is its limit), so
 * the peer sees nothing, and the connection goes on. */
START_TEST(fds_beyond_the_kernel_limit)
{
	struct raw r = raw_pair(true, NULL);
	unsigned char m[12] = { PIER_MSG_STREAM };
	int fd = memfd_with("many");
	pier_received_request *rr;
	pier_msg *msg;

	ck_assert_int_lt(send_with_fds(&r, m, sizeof(m), fd, 254), 0);
	ck_assert_int_eq(errno, EINVAL);
	close(fd);
	ck_assert_int_eq(pier_peer_recv(r.peer, &msg, &rr, 0), -EAGAIN);
	raw_send(&r, PIER_MSG_STREAM, 0, 1, "still here");
	ck_assert_int_eq(pier_peer_recv(r.peer, &msg, &rr, WAIT), 0);
	assert_body(msg, "still here");
	pier_msg_free(msg);
	raw_close(&r);
}
END_TEST

/* A request with fds that the application will never see (its read half is
 * gone): answered with an error response, its fds closed, and the
 * connection goes on. */
START_TEST(fds_on_a_refused_request)
{
	struct raw r = raw_pair(true, NULL);
	unsigned char m[12] = { PIER_MSG_REQUEST, 0, 0, 0, 9 };
	pier_writer *w = pier_writer_ref(pier_peer_get_writer(r.peer));
	int fd = memfd_with("unwanted");
	struct pier_header h;
	char body[256];

	pier_peer_free(r.peer);
	ck_assert_int_eq(send_with_fds(&r, m, sizeof(m), fd, 3), (ssize_t)sizeof(m));
	close(fd);
	raw_recv(&r, &h, body, sizeof(body));
	ck_assert_int_eq(h.type, PIER_MSG_RESPONSE);
	ck_assert_uint_eq(h.request_id, 9);
	ck_assert_int_eq(h.service_id, PIER_SERVICE_ERROR);
	ck_assert_int_eq(pier_writer_send_stream(w, 1, "on", 2, NULL, 0), 0);
	raw_recv(&r, &h, body, sizeof(body));
	ck_assert_str_eq(body, "on");
	pier_writer_unref(w);
	close(r.fd);
}
END_TEST

START_TEST(body_over_read_limit)
{
	pier_config *cfg;
	struct raw r;
	char body[200];

	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_body(cfg, 100, 100), 0);
	r = raw_pair(_i, cfg);
	raw_send(&r, PIER_MSG_STREAM, 0, 1, body); /* seqpacket: MSG_TRUNC */
	expect_end(r.peer, -PIER_EBODYLIMIT);
	raw_close(&r);
	pier_config_free(cfg);
}
END_TEST

/* Valid frames, then garbage: the frames are delivered, then the garbage
 * ends the connection as what it reads as (here a length prefix of
 * 0xffffffff: a body over the limit; on seqpacket, a packet of garbage:
 * too short). */
START_TEST(garbage_after_valid_frames)
{
	struct raw r = raw_pair(_i, NULL);
	static const unsigned char garbage[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	pier_received_request *rr;
	pier_msg *m;

	raw_send(&r, PIER_MSG_STREAM, 0, 1, "first");
	raw_send(&r, PIER_MSG_STREAM, 0, 2, "second");
	raw_send_bytes(&r, garbage, sizeof(garbage));
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 1, "first");
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 2, "second");
	pier_msg_free(m);
	expect_end(r.peer, r.packets ? -PIER_ESHORTFRAME : -PIER_EBODYLIMIT);
	raw_close(&r);
}
END_TEST

/* Valid frames, then a frame cut short by EOF (stream) or an empty packet
 * (EOF on seqpacket). */
START_TEST(truncated_then_eof)
{
	struct raw r = raw_pair(_i, NULL);
	pier_received_request *rr;
	pier_msg *m;

	raw_send(&r, PIER_MSG_STREAM, 0, 1, "whole");
	if (!r.packets)
		raw_send_bytes(&r, "\x20\0\0\0\x04\0\0\0", 8);
	shutdown(r.fd, SHUT_WR);
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 1, "whole");
	pier_msg_free(m);
	expect_end(r.peer, r.packets ? -PIER_ECLOSED : -PIER_EPARTIAL);
	raw_close(&r);
}
END_TEST

/* The peer answers in the configured byte order, byte for byte. */
START_TEST(big_endian_on_the_wire)
{
	static const unsigned char request[] = {
		0, 0, 0, 17, 0, 0, 0, 0, 0, 0, 0, 21, 0, 0, 0, 1, 'H', 'e', 'l', 'l', 'o',
	};
	static const unsigned char response[] = {
		0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 21, 0, 0, 0, 1, 'o', 'k',
	};
	pier_config *cfg;
	pier_received_request *rr;
	unsigned char got[sizeof(response)];
	pier_msg *m;
	struct raw r;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_byte_order(cfg, PIER_BYTE_ORDER_BIG), 0);
	r = raw_pair(false, cfg);
	raw_send_bytes(&r, request, sizeof(request));
	rr = recv_request(r.peer, &m);
	assert_msg(m, PIER_MSG_REQUEST, 1, "Hello");
	ck_assert_uint_eq(pier_msg_header(m)->request_id, 21);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "ok", 2, NULL, 0), 0);
	ck_assert_int_eq(recv(r.fd, got, sizeof(got), MSG_WAITALL), (ssize_t)sizeof(got));
	ck_assert_mem_eq(got, response, sizeof(response));
	pier_received_request_free(rr);
	raw_close(&r);
	pier_config_free(cfg);
}
END_TEST

/* fds beyond the control buffer's room never arrive silently short: here
 * the remote passes fds on a stream socket, where pier expects none. */
START_TEST(fds_on_stream_socket)
{
	struct raw r = raw_pair(false, NULL);
	unsigned char frame[16] = { 12, 0, 0, 0, 4 };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { frame, sizeof(frame) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = memfd_with("unwanted");
	pier_received_request *rr;
	pier_msg *m;

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ck_assert_int_eq(sendmsg(r.fd, &mh, 0), (ssize_t)sizeof(frame));
	close(fd);
	ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr, WAIT), 0);
	ck_assert_uint_eq(pier_msg_fd_count(m), 0);
	pier_msg_free(m);
	raw_close(&r);
	/* the fd-leak fixture checks the kernel closed the unwanted fd */
}
END_TEST

/* A protocol error ends that connection only, even on a shared loop. */
START_TEST(error_ends_one_connection)
{
	pier_loop *loop;
	pier_config *cfg;
	struct raw bad, good;
	pier_received_request *rr;
	pier_msg *m;

	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	pier_loop_unref(loop);
	bad = raw_pair(_i, cfg);
	good = raw_pair(_i, cfg);
	raw_send(&bad, 9, 0, 1, "bad type");
	expect_end(bad.peer, -PIER_EBADTYPE);
	raw_send(&good, PIER_MSG_STREAM, 0, 1, "fine");
	ck_assert_int_eq(pier_peer_recv(good.peer, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 1, "fine");
	pier_msg_free(m);
	raw_close(&bad);
	raw_close(&good);
	pier_config_free(cfg);
}
END_TEST

/* Ids count up and wrap, skipping ids still open. */
START_TEST(id_allocation_wraps_and_skips)
{
	struct raw r = raw_pair(_i, NULL);
	struct conn *c = &r.peer->conn;
	pier_sent_request *open0, *last, *next;

	open0 = send_request(r.peer, 1, "zero");
	ck_assert_uint_eq(pier_sent_request_id(open0), 0);
	pthread_mutex_lock(&c->mu);
	r.peer->next_id = UINT32_MAX;
	pthread_mutex_unlock(&c->mu);
	last = send_request(r.peer, 1, "max");
	ck_assert_uint_eq(pier_sent_request_id(last), UINT32_MAX);
	next = send_request(r.peer, 1, "wrapped");
	ck_assert_uint_eq(pier_sent_request_id(next), 1); /* 0 is still open */
	pier_sent_request_free(open0);
	pier_sent_request_free(last);
	pier_sent_request_free(next);
	raw_close(&r);
}
END_TEST

/* Request ids a remote chose to share their low bits, which would pile up
 * on one slot of the table of open requests: every one is taken, and the
 * table keeps them near their homes (seeded), so that none costs a walk
 * across the others. */
START_TEST(crowding_request_ids)
{
	enum { N = 2000 };
	struct raw r = raw_pair(_i, NULL);
	struct conn *c = &r.peer->conn;
	pier_received_request *rr[N];
	pier_msg *m;

	for (uint32_t i = 0; i < N; i++) {
		raw_send(&r, PIER_MSG_REQUEST, (i + 1) << 16, 1, "crowd");
		ck_assert_int_eq(pier_peer_recv(r.peer, &m, &rr[i], WAIT), 0);
		ck_assert_uint_eq(pier_received_request_id(rr[i]), (i + 1) << 16);
		pier_msg_free(m);
	}
	pthread_mutex_lock(&c->mu);
	ck_assert_uint_eq(r.peer->received.count, N);
	ck_assert_uint_ne(r.peer->received.seed, 0);
	ck_assert_uint_le(r.peer->received.far, 200); /* a crowd would be 2000 */
	pthread_mutex_unlock(&c->mu);
	for (int i = 0; i < N; i++)
		pier_received_request_free(rr[i]);
	raw_close(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("protocol");
	TCase *tc = th_tcase("protocol", 30);

	/* _i: 0 stream, 1 seqpacket */
	tcase_add_loop_test(tc, unknown_ids, 0, 2);
	tcase_add_loop_test(tc, duplicate_request, 0, 2);
	tcase_add_loop_test(tc, bad_type, 0, 2);
	tcase_add_loop_test(tc, short_frame, 0, 2);
	tcase_add_test(tc, empty_packet_with_fd);
	tcase_add_test(tc, fds_beyond_the_kernel_limit);
	tcase_add_test(tc, fds_on_a_refused_request);
	tcase_add_loop_test(tc, body_over_read_limit, 0, 2);
	tcase_add_loop_test(tc, truncated_then_eof, 0, 2);
	tcase_add_loop_test(tc, garbage_after_valid_frames, 0, 2);
	tcase_add_test(tc, big_endian_on_the_wire);
	tcase_add_test(tc, fds_on_stream_socket);
	tcase_add_loop_test(tc, error_ends_one_connection, 0, 2);
	tcase_add_loop_test(tc, id_allocation_wraps_and_skips, 0, 2);
	tcase_add_loop_test(tc, crowding_request_ids, 0, 2);
	suite_add_tcase(s, tc);
	return th_run(s);
}
