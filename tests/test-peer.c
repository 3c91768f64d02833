/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite: every test runs once per way of connecting two
 * peers (tcp, tcp6, unix, seqpacket, socketpairs, abstract sockets).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peers.h"

/* The reference crate's round trip: request, two updates, response. */
START_TEST(request_updates_response)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	sr = send_request(a, 1, "hello");
	rr = recv_request(b, &m);
	assert_msg(m, PIER_MSG_REQUEST, 1, "hello");
	ck_assert_uint_eq(pier_received_request_id(rr), pier_sent_request_id(sr));
	ck_assert_int_eq(pier_received_request_service_id(rr), 1);
	pier_msg_free(m);

	ck_assert_int_eq(pier_received_request_send_update(rr, 2, "update 1", 8, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_update(rr, 3, "update 2", 8, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "world", 5, NULL, 0), 0);

	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 2, "update 1");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 3, "update 2");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 1, "world");
	ck_assert(!pier_msg_is_error(m));
	pier_msg_free(m);

	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Updates then the response: recv_update reports the end without losing the
 * response, which then arrives exactly once. */
START_TEST(peeked_response_not_lost)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 1, "x", &sr, &rr);
	ck_assert_int_eq(pier_received_request_send_update(rr, 5, "u", 1, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "r", 1, NULL, 0), 0);

	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 5, "u");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), -PIER_ERESPONSE);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, 0), -PIER_ERESPONSE);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 1, "r");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), -PIER_EDONE);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, 0), -PIER_EDONE);

	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Asking for the response while an update is next fails and keeps it. */
START_TEST(peeked_update_not_lost)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 1, "x", &sr, &rr);
	ck_assert_int_eq(pier_received_request_send_update(rr, 5, "u", 1, NULL, 0), 0);

	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), -PIER_EUPDATE);
	ck_assert_int_eq(pier_sent_request_recv_update(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 5, "u");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, 0), -EAGAIN);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, 50), -ETIMEDOUT);

	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* After the response, neither side sends updates or another response. */
START_TEST(nothing_after_response)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 1, "x", &sr, &rr);
	ck_assert_int_eq(pier_sent_request_send_update(sr, 4, "req-up", 6, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, 4, "req-up");
	pier_msg_free(m);

	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "r", 1, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "r", 1, NULL, 0),
			 -PIER_EDONE);
	ck_assert_int_eq(pier_received_request_send_update(rr, 1, "u", 1, NULL, 0), -PIER_EDONE);
	ck_assert_int_eq(pier_received_request_send_error(rr, "late"), -PIER_EDONE);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), -PIER_EDONE);

	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_send_update(sr, 1, "u", 1, NULL, 0), -PIER_EDONE);

	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

START_TEST(same_peer)
{
	pier_peer *a, *b, *c, *d;
	pier_writer *w;

	make_pair(_i, &a, &b);
	make_pair(_i, &c, &d);
	w = pier_writer_ref(pier_peer_get_writer(a));
	ck_assert(pier_writer_same_peer(w, pier_peer_get_writer(a)));
	ck_assert(!pier_writer_same_peer(w, pier_peer_get_writer(b)));
	ck_assert(!pier_writer_same_peer(w, pier_peer_get_writer(c)));
	ck_assert(!pier_writer_same_peer(w, NULL));
	ck_assert_ptr_null(pier_writer_unref(w));
	pier_peer_free(a);
	pier_peer_free(b);
	pier_peer_free(c);
	pier_peer_free(d);
}
END_TEST

/* Ten rounds of requests in both directions. */
START_TEST(rounds_both_directions)
{
	pier_peer *p[2];

	make_pair(_i, &p[0], &p[1]);
	for (int round = 0; round < 10; round++) {
		for (int dir = 0; dir < 2; dir++) {
			pier_peer *from = p[dir], *to = p[!dir];
			pier_sent_request *sr;
			pier_received_request *rr;
			char body[32];
			pier_msg *m;

			snprintf(body, sizeof(body), "round %d dir %d", round, dir);
			sr = send_request(from, round, body);
			rr = recv_request(to, &m);
			assert_msg(m, PIER_MSG_REQUEST, round, body);
			pier_msg_free(m);
			ck_assert_int_eq(pier_received_request_send_response(rr, round, body,
									     strlen(body), NULL, 0),
					 0);
			ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
			assert_msg(m, PIER_MSG_RESPONSE, round, body);
			pier_msg_free(m);
			pier_sent_request_free(sr);
			pier_received_request_free(rr);
		}
	}
	pier_peer_free(p[0]);
	pier_peer_free(p[1]);
}
END_TEST

START_TEST(error_response)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 7, "fail please", &sr, &rr);
	ck_assert_int_eq(pier_received_request_send_error(rr, "it failed"), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, PIER_SERVICE_ERROR, "it failed");
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A received request freed unanswered is answered with an error. */
START_TEST(unanswered_request_gets_error)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 1, "x", &sr, &rr);
	pier_received_request_free(rr);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	pier_sent_request_free(sr);

	/* Not yet received when the read half goes: answered too. */
	sr = send_request(a, 1, "y");
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, 100), -ETIMEDOUT);
	pier_peer_free(b);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_peer_free(a);
}
END_TEST

START_TEST(stream_messages)
{
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 7, "stream-1", 8, NULL, 0), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 7, NULL, 0, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_ptr_null(rr);
	assert_msg(m, PIER_MSG_STREAM, 7, "stream-1");
	ck_assert_uint_eq(pier_msg_header(m)->request_id, 0);
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 7, "");
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, 0), -EAGAIN);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* The remote closing ends every wait with PIER_ECLOSED, after what was
 * already queued. */
START_TEST(remote_close)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	sr = send_request(a, 1, "x");
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(b), 3, "last", 4, NULL, 0), 0);
	rr = recv_request(b, &m);
	pier_msg_free(m);
	/* b goes away with the request open: it answers the request with an
	 * error (unanswered), flushes, and closes. */
	pier_received_request_free(rr);
	pier_peer_free(b);

	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 3, "last");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), -PIER_ECLOSED);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0) < 0, 1);
	pier_sent_request_free(sr);
	pier_peer_free(a);
}
END_TEST

START_TEST(local_abort)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	sr = send_request(a, 1, "x");
	pier_writer_abort(pier_peer_get_writer(a));
	/* Ended before the call returned: nothing races the loop. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0),
			 -PIER_EABORTED);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, 0), -PIER_EABORTED);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), -PIER_EABORTED);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), -PIER_EABORTED);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0),
			 -PIER_EABORTED);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), 1, "x", 1, NULL, 0, &sr),
			 -PIER_EABORTED);
	pier_sent_request_free(sr);
	/* The remote sees the connection end (cut short: an abort sends no
	 * TLS close_notify), reading, or writing: freeing the request
	 * unanswered sends its automatic error response, which may meet the
	 * closed socket first (EPIPE). */
	for (;;) {
		int r = pier_peer_recv(b, &m, &rr, WAIT);

		if (r < 0) {
			ck_assert_msg(r == -PIER_ECLOSED || r == -ECONNRESET || r == -EPIPE ||
				      r == -PIER_ETLSTRUNCATED, "%s", pier_strerror(r));
			break;
		}
		pier_msg_free(m);
		pier_received_request_free(rr);
	}
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Graceful close: what was queued goes out first, then the remote sees EOF. */
START_TEST(graceful_close)
{
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;
	char body[1000];

	memset(body, 'g', sizeof(body));
	make_pair(_i, &a, &b);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), i, body,
							 sizeof(body), NULL, 0),
				 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(b), 1, "still", 5, NULL, 0), 0);
	pier_writer_close(pier_peer_get_writer(a));
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0),
			 -PIER_ESHUTDOWN);
	for (int i = 0; i < 100; i++) {
		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		ck_assert_int_eq(pier_msg_header(m)->service_id, i);
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_ECLOSED);
	/* a still receives what b sent before it saw the end, then the end */
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 1, "still");
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT), -PIER_ECLOSED);
	pier_peer_free(b);
	pier_peer_free(a);
}
END_TEST

START_TEST(body_limits)
{
	pier_config *ca, *cb;
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;
	char body[200];

	memset(body, 'b', sizeof(body));
	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	ck_assert_int_eq(pier_config_set_max_body(ca, 1000, 150), 0);
	ck_assert_int_eq(pier_config_set_max_body(cb, 100, 1000), 0);
	make_pair_cfg(_i, ca, cb, &a, &b);

	/* Writing: over the limit is refused, nothing is sent. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, body, 151, NULL, 0),
			 -EMSGSIZE);
	/* At the limits: fine. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, body, 100, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_uint_eq(pier_peer_stat(b, PIER_STAT_BYTES_RECEIVED), 100);
	pier_msg_free(m);
	/* Reading: over the limit ends the connection with a clear error. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, body, 101, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_EBODYLIMIT);
	ck_assert_int_eq(pier_peer_recv(a, &m, &rr, WAIT) < 0, 1);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(ca);
	pier_config_free(cb);
}
END_TEST

/* A limit raised on one side only: on seqpacket, the receiver answers the
 * oversized request with an error response that names its limit before
 * the connection ends, so the sender learns why. */
START_TEST(oversized_request_says_why)
{
	static char body[200 << 10];
	pier_config *ca;
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;
	size_t len;
	const char *text;
	int r;

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_set_max_body(ca, sizeof(body), sizeof(body)), 0);
	make_pair_cfg(PAIR_SEQPACKET_FD, ca, NULL, &a, &b);
	pier_config_free(ca);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), 1, body, sizeof(body),
						  NULL, 0, &sr), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_EBODYLIMIT);
	r = pier_sent_request_recv_response(sr, &m, WAIT);
	ck_assert_msg(r == 0, "no response: %s", pier_strerror(r));
	ck_assert(pier_msg_is_error(m));
	text = pier_msg_body(m, &len);
	ck_assert_msg(len > 0 && memmem(text, len, "read limit of 131072 bytes", 26),
		      "the error response says: %.*s", (int)len, text);
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Big-endian and native byte orders end to end. */
START_TEST(byte_orders)
{
	for (int order = PIER_BYTE_ORDER_BIG; order <= PIER_BYTE_ORDER_NATIVE; order++) {
		pier_config *cfg;
		pier_peer *a, *b;
		pier_sent_request *sr;
		pier_received_request *rr;
		pier_msg *m;

		ck_assert_int_eq(pier_config_new(&cfg), 0);
		ck_assert_int_eq(pier_config_set_byte_order(cfg, (enum pier_byte_order)order), 0);
		make_pair_cfg(_i, cfg, cfg, &a, &b);
		sr = send_request(a, 0x01020304, "ordered");
		rr = recv_request(b, &m);
		assert_msg(m, PIER_MSG_REQUEST, 0x01020304, "ordered");
		pier_msg_free(m);
		ck_assert_int_eq(pier_received_request_send_response(rr, -77, "ok", 2, NULL, 0), 0);
		ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, -77, "ok");
		pier_msg_free(m);
		pier_sent_request_free(sr);
		pier_received_request_free(rr);
		pier_peer_free(a);
		pier_peer_free(b);
		pier_config_free(cfg);
	}
}
END_TEST

/* Both sides open requests with the same ids at once: two id spaces. */
START_TEST(equal_ids_both_directions)
{
	enum { N = 50 };
	pier_peer *p[2];
	pier_sent_request *sr[2][N];

	make_pair(_i, &p[0], &p[1]);
	for (int i = 0; i < N; i++)
		for (int s = 0; s < 2; s++) {
			char body[16];

			snprintf(body, sizeof(body), "%d-%d", s, i);
			sr[s][i] = send_request(p[s], s, body);
			ck_assert_uint_eq(pier_sent_request_id(sr[s][i]), (uint32_t)i);
		}
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < N; i++) {
			pier_received_request *rr;
			pier_msg *m;
			size_t len;
			const char *body;

			rr = recv_request(p[!s], &m);
			body = pier_msg_body(m, &len);
			ck_assert_int_eq(pier_received_request_send_response(rr, 9, body, len, NULL, 0), 0);
			pier_msg_free(m);
			pier_received_request_free(rr);
		}
	}
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < N; i++) {
			char body[16];
			pier_msg *m;

			snprintf(body, sizeof(body), "%d-%d", s, i);
			ck_assert_int_eq(pier_sent_request_recv_response(sr[s][i], &m, WAIT), 0);
			assert_msg(m, PIER_MSG_RESPONSE, 9, body);
			pier_msg_free(m);
			pier_sent_request_free(sr[s][i]);
		}
	pier_peer_free(p[0]);
	pier_peer_free(p[1]);
}
END_TEST

/* Handles freed while messages for them are in flight or queued. */
START_TEST(handles_freed_in_flight)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	make_pair(_i, &a, &b);
	open_request(a, b, 1, "x", &sr, &rr);
	/* The requester lets go; updates and the response are dropped. */
	pier_sent_request_free(sr);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pier_received_request_send_update(rr, 1, "u", 1, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "r", 1, NULL, 0), 0);
	pier_received_request_free(rr);

	/* The id is free again only after the response: a round trip shows
	 * everything was dropped quietly and counted. */
	open_request(a, b, 2, "y", &sr, &rr);
	ck_assert_int_eq(pier_received_request_send_response(rr, 2, "z", 1, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 2, "z");
	pier_msg_free(m);
	ck_assert_uint_eq(pier_peer_stat(a, PIER_STAT_DROPPED), 6);
	ck_assert_uint_eq(pier_peer_stat(a, PIER_STAT_UNKNOWN_IDS), 0);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);

	/* Messages queued on a peer that is freed unread. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "s", 1, NULL, 0), 0);
	sr = send_request(a, 1, "pending");
	pier_sent_request_free(sr);
	pier_peer_free(b);
	pier_peer_free(a);
}
END_TEST

START_TEST(pollable_fds)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;
	struct pollfd pfd;

	make_pair(_i, &a, &b);
	pfd = (struct pollfd){ .fd = pier_peer_fd(b), .events = POLLIN };
	ck_assert_int_ge(pfd.fd, 0);
	ck_assert_int_eq(pier_peer_fd(b), pfd.fd); /* the same fd every time */
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	sr = send_request(a, 1, "x");
	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	rr = recv_request(b, &m);
	pier_msg_free(m);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);

	pfd.fd = pier_sent_request_fd(sr);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "r", 1, NULL, 0), 0);
	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, 0), 0);
	pier_msg_free(m);
	/* finished: a receive would not block (it reports the end) */
	ck_assert_int_eq(poll(&pfd, 1, 0), 1);

	/* The end of the connection is readable too (sr kept it alive). */
	pfd.fd = pier_peer_fd(b);
	pier_peer_free(a);
	ck_assert_int_eq(poll(&pfd, 1, 100), 0);
	pier_sent_request_free(sr);
	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	pier_received_request_free(rr);
	pier_peer_free(b);
}
END_TEST

START_TEST(open_request_limit)
{
	pier_config *ca, *cb;
	pier_peer *a, *b;
	pier_sent_request *sr[4], *extra;
	pier_received_request *rr[3], *extra_rr;
	pier_msg *m;

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	ck_assert_int_eq(pier_config_set_max_open_requests(ca, 4), 0);
	ck_assert_int_eq(pier_config_set_max_open_requests(cb, 3), 0);
	make_pair_cfg(_i, ca, cb, &a, &b);
	/* b's own limit: the fourth request is refused locally (a's limit
	 * of 4 refuses none of them) */
	for (int i = 0; i < 3; i++)
		sr[i] = send_request(b, 1, "x");
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(b), 1, "x", 1, NULL, 0, &extra),
			 -PIER_EREQLIMIT);
	for (int i = 0; i < 3; i++) {
		rr[i] = recv_request(a, &m);
		pier_msg_free(m);
		pier_received_request_free(rr[i]);
		ck_assert_int_eq(pier_sent_request_recv(sr[i], &m, WAIT), 0);
		pier_msg_free(m);
		pier_sent_request_free(sr[i]);
	}
	/* a sends four; b takes three and refuses the fourth */
	for (int i = 0; i < 4; i++)
		sr[i] = send_request(a, 1, "x");
	for (int i = 0; i < 3; i++) {
		rr[i] = recv_request(b, &m);
		pier_msg_free(m);
	}
	/* b refused the fourth with an error response (once it read it:
	 * a request waits in the socket until a thread of b's waits) */
	ck_assert_int_eq(pier_peer_recv(b, &m, &extra_rr, 100), -ETIMEDOUT);
	ck_assert_int_eq(pier_sent_request_recv(sr[3], &m, WAIT), 0);
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	ck_assert_uint_eq(pier_peer_stat(b, PIER_STAT_REFUSED_REQUESTS), 1);
	for (int i = 0; i < 4; i++)
		pier_sent_request_free(sr[i]);
	for (int i = 0; i < 3; i++)
		pier_received_request_free(rr[i]);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(ca);
	pier_config_free(cb);
}
END_TEST

/* Whether a connected socket of this process has no room to send: the
 * writer of a pair whose reader does not read has filled it. */
static bool a_socket_is_full(void)
{
	bool full = false;

	for (int fd = 3; fd < 1024 && !full; fd++) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int listening = 0;
		socklen_t len = sizeof(listening);

		/* Not a socket (or closed meanwhile), or a listener. */
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 || listening)
			continue;
		full = poll(&pfd, 1, 0) == 0;
	}
	return full;
}

/* Large bodies against a reader that is slow to start: partial writes
 * queue up and arrive whole and in order. */
START_TEST(slow_reader_large_bodies)
{
	enum { N = 40, LEN = 100000 };
	pier_config *cfg;
	pier_peer *a, *b;
	pier_received_request *rr;
	unsigned char *body = malloc(LEN);

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_body(cfg, LEN, LEN), 0);
	make_pair_cfg(_i, cfg, cfg, &a, &b);
	for (int i = 0; i < N; i++) {
		memset(body, i, LEN);
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), i, body, LEN, NULL, 0), 0);
	}
	/* The reader starts once the socket is full and the rest waits in
	 * a's queue, the first frame partly written (a send queues only what
	 * the socket does not take, so this holds once the sends returned). */
	wait_until(a_socket_is_full(), WAIT);
	for (int i = 0; i < N; i++) {
		const unsigned char *got;
		pier_msg *m;
		size_t len;

		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		got = pier_msg_body(m, &len);
		ck_assert_uint_eq(len, LEN);
		ck_assert_int_eq(pier_msg_header(m)->service_id, i);
		for (size_t j = 0; j < LEN; j += 997)
			ck_assert_uint_eq(got[j], (unsigned char)i);
		pier_msg_free(m);
	}
	free(body);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* A flood the application does not read: the sender is held back (here:
 * -EAGAIN, no waiting), and nothing is lost once the reader catches up. */
START_TEST(backpressure)
{
	pier_config *ca, *cb;
	pier_peer *a, *b;
	pier_received_request *rr;
	char body[1000];
	int sent = 0, r;

	memset(body, 'p', sizeof(body));
	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(ca, 0), 0);
	ck_assert_int_eq(pier_config_set_max_queued(ca, 64 << 10, 64 << 10), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cb, 64 << 10, 64 << 10), 0);
	make_pair_cfg(_i, ca, cb, &a, &b);
	/* Sockets buffer a few MB at most; 100 MB cannot all be in flight. */
	while ((r = pier_writer_send_stream(pier_peer_get_writer(a), sent, body, sizeof(body),
					    NULL, 0)) == 0) {
		sent++;
		ck_assert_int_lt(sent, 100000);
	}
	ck_assert_int_eq(r, -EAGAIN);
	/* The receiver stopped reading at its limit: what it holds for the
	 * application is bounded by it, plus what one read brought in (at
	 * most 16 KiB of frames, or one packet). */
	ck_assert_uint_le(pier_peer_stat(b, PIER_STAT_BYTES_RECEIVED),
			  (64 << 10) + (16 << 10) + sizeof(body));
	for (int i = 0; i < sent; i++) {
		pier_msg *m;

		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		ck_assert_int_eq(pier_msg_header(m)->service_id, i);
		pier_msg_free(m);
	}
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(ca);
	pier_config_free(cb);
}
END_TEST

/* With a send timeout, a sender facing a full queue waits that long. */
START_TEST(send_timeout)
{
	pier_config *cfg;
	pier_peer *a, *b;
	char body[1000];
	int r, sent = 0;

	memset(body, 't', sizeof(body));
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 50), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, 16 << 10, 16 << 10), 0);
	make_pair_cfg(_i, cfg, cfg, &a, &b);
	while ((r = pier_writer_send_stream(pier_peer_get_writer(a), 1, body, sizeof(body), NULL, 0)) == 0)
		ck_assert_int_lt(++sent, 100000);
	ck_assert_int_eq(r, -ETIMEDOUT);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* A failed adopt leaves the caller's fd as it was, file status flags
 * included (the library's duplicate shares them). */
START_TEST(adopt_failure_keeps_flags)
{
	const char *env = getenv("PIER_BACKEND");
	char *backend = env ? strdup(env) : NULL;
	int sv[2];
	pier_peer *p;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	/* Fails once the duplicate was made blocking: no loop. */
	ck_assert_int_eq(setenv("PIER_BACKEND", "no-such-backend", 1), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], NULL), -EINVAL);
	ck_assert_int_ne(fcntl(sv[0], F_GETFL) & O_NONBLOCK, 0);
	if (backend)
		ck_assert_int_eq(setenv("PIER_BACKEND", backend, 1), 0);
	else
		ck_assert_int_eq(unsetenv("PIER_BACKEND"), 0);
	free(backend);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], NULL), 0);
	pier_peer_free(p);
	close(sv[1]);
}
END_TEST

/* PIER_DEBUG=1: each connection says its state changes on stderr, from
 * open (after a TLS handshake) to closed, with who read and wrote. */
START_TEST(debug_says_states)
{
	int pipefd[2], saved = dup(STDERR_FILENO);
	static char out[1 << 16];
	size_t have = 0;
	pier_peer *a, *b;
	ssize_t n;

	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC | O_NONBLOCK), 0);
	ck_assert_int_eq(dup2(pipefd[1], STDERR_FILENO), STDERR_FILENO);
	ck_assert_int_eq(setenv("PIER_DEBUG", "1", 1), 0);
	make_pair(_i, &a, &b);
	round_trip(a, b, "ping", "pong");
	/* Each peer has a loop of its own: freeing the last handle returns
	 * once the connection is closed. */
	pier_peer_free(a);
	pier_peer_free(b);
	ck_assert_int_eq(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(pipefd[1]);
	while (have < sizeof(out) - 1 && (n = read(pipefd[0], out + have, sizeof(out) - 1 - have)) > 0)
		have += (size_t)n;
	out[have] = 0;
	close(pipefd[0]);
	ck_assert_msg(strstr(out, "pier: connection "), "no debug output: %s", out);
#ifdef HAVE_OPENSSL
	if (_i == PAIR_TLS) {
		/* The loop reads during the handshake, the waiting thread
		 * after it. */
		ck_assert_msg(strstr(out, "state handshaking -> open"), "%s", out);
		ck_assert_msg(strstr(out, "reader none -> loop"), "%s", out);
	}
#endif
	ck_assert_msg(strstr(out, "reader none -> app"), "%s", out);
	ck_assert_msg(strstr(out, "state open -> closing"), "%s", out);
	ck_assert_msg(strstr(out, "-> ended"), "%s", out);
	ck_assert_msg(strstr(out, "state ended -> closed"), "%s", out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = th_tcase("conformance", 30);

	tcase_add_loop_test(tc, request_updates_response, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, peeked_response_not_lost, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, peeked_update_not_lost, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, nothing_after_response, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, same_peer, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, rounds_both_directions, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, error_response, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, unanswered_request_gets_error, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, stream_messages, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, remote_close, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, local_abort, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, graceful_close, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, body_limits, 0, PAIR_KINDS);
	tcase_add_test(tc, oversized_request_says_why);
	tcase_add_loop_test(tc, byte_orders, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, equal_ids_both_directions, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, handles_freed_in_flight, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, pollable_fds, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, open_request_limit, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, slow_reader_large_bodies, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, backpressure, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, send_timeout, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, debug_says_states, 0, PAIR_KINDS);
	tcase_add_test(tc, adopt_failure_keeps_flags);
	suite_add_tcase(s, tc);
	return th_run(s);
}
