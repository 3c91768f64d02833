/* SPDX-License-Identifier: MIT */
/*
 * Coalescing: small messages sent back to back share writes; what is held
 * goes out within the configured delay with no further call, before the
 * sender waits for a message, and on pier_writer_flush(); nothing is held
 * when coalescing is off, and a single message is never held.  Over every
 * kind of pair, TLS too: its senders encrypt and write from their threads.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "peers.h"

/* Long enough that nothing but the path under test writes what is held
 * before a receiver's deadline (WAIT_MS) runs out. */
#define LONG_DELAY_US 10000000u
#define WAIT_MS 5000

/* The writes a pair's connecting side makes before its first message (a
 * TLS client's hello and Finished). */
static uint64_t handshake_writes(int kind)
{
#ifdef HAVE_OPENSSL
	return kind == PAIR_TLS ? 2 : 0;
#else
	(void)kind;
	return 0;
#endif
}

static pier_config *delay_config(unsigned int us)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, us), 0);
	return cfg;
}

/* a sends n stream messages of 16 bytes back to back, numbered from
 * first. */
static void burst_from(pier_peer *a, int first, int n)
{
	for (int i = first; i < first + n; i++) {
		char body[16];

		memset(body, 0, sizeof(body));
		memcpy(body, &i, sizeof(i));
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 7, body,
							 sizeof(body), NULL, 0),
				 0);
	}
}

static void burst(pier_peer *a, int n)
{
	burst_from(a, 0, n);
}

/* Bursts of n until one of them was held in part (fewer writes than
 * messages): a loaded machine may stretch every gap of one burst beyond
 * what holding allows.  Returns how many messages went in all. */
static int held_burst(pier_peer *a, int n)
{
	int sent = 0;

	for (int tries = 0; tries < 50; tries++) {
		uint64_t before = pier_peer_stat(a, PIER_STAT_WRITES);

		burst_from(a, sent, n);
		sent += n;
		if (pier_peer_stat(a, PIER_STAT_WRITES) - before < (uint64_t)n)
			return sent;
	}
	ck_abort_msg("%d bursts of %d messages: none was held", sent / n, n);
	return sent;
}

/* b receives n numbered stream messages, in order, each within ms. */
static void expect_burst(pier_peer *b, int n, int ms)
{
	for (int i = 0; i < n; i++) {
		pier_received_request *req;
		pier_msg *m;
		size_t len;
		const char *body;
		int r = pier_peer_recv(b, &m, &req, ms), got;

		ck_assert_msg(r == 0, "message %d of %d: %s", i, n, pier_strerror(r));
		ck_assert_ptr_null(req);
		body = pier_msg_body(m, &len);
		ck_assert_uint_eq(len, 16);
		memcpy(&got, body, sizeof(got));
		ck_assert_int_eq(got, i);
		pier_msg_free(m);
	}
}

START_TEST(burst_shares_writes)
{
	/* Longer than the default, so that a slow build (valgrind, a
	 * sanitizer) on a loaded machine still sends a burst: a message
	 * within a quarter of the delay after the last. */
	pier_config *cfg = delay_config(10000);
	pier_peer *a, *b;
	uint64_t writes;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	burst(a, 100);
	/* b's wait gives a no flush: the loop's timer writes the tail. */
	expect_burst(b, 100, WAIT_MS);
	writes = pier_peer_stat(a, PIER_STAT_WRITES);
	ck_assert_uint_eq(pier_peer_stat(a, PIER_STAT_MSGS_SENT), 100);
	ck_assert_msg(writes <= 50,
		      "%s: 100 messages back to back took %llu writes", pair_kind_name[_i],
		      (unsigned long long)writes);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(off_writes_each_message)
{
	pier_config *cfg = delay_config(0);
	pier_peer *a, *b;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	/* A TLS client's handshake ends with its loop writing the Finished
	 * message: messages sent before that write is done would queue
	 * behind it. */
	wait_until(pier_peer_stat(a, PIER_STAT_WRITES) == handshake_writes(_i), WAIT_MS);
	burst(a, 100);
	expect_burst(b, 100, WAIT_MS);
	/* The socket has room for them all: one write each. */
	ck_assert_uint_eq(pier_peer_stat(a, PIER_STAT_WRITES), 100 + handshake_writes(_i));
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(held_messages_go_on_time)
{
	pier_config *cfg = delay_config(20000); /* 20 ms */
	pier_peer *a, *b;
	int n;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	n = held_burst(a, 10);
	/* Nothing on a's side calls again: the hold timer must write. */
	expect_burst(b, n, WAIT_MS);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(waiting_writes_own_sends_first)
{
	pier_config *cfg = delay_config(LONG_DELAY_US);
	pier_received_request *req;
	pier_peer *a, *b;
	pier_msg *m;
	int n;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	n = held_burst(a, 50);
	/* a waits for a message (none comes): what it holds goes first. */
	ck_assert_int_eq(pier_peer_recv(a, &m, &req, 1), -ETIMEDOUT);
	expect_burst(b, n, WAIT_MS);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(flush_writes_what_is_held)
{
	pier_config *cfg = delay_config(LONG_DELAY_US);
	pier_peer *a, *b;
	int n;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	n = held_burst(a, 50);
	ck_assert_int_eq(pier_writer_flush(pier_peer_get_writer(a)), 0);
	expect_burst(b, n, WAIT_MS);
	/* Nothing held: a flush does nothing. */
	ck_assert_int_eq(pier_writer_flush(pier_peer_get_writer(a)), 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(round_trips_are_never_held)
{
	pier_config *cfg = delay_config(LONG_DELAY_US);
	pier_peer *a, *b;

	make_pair_cfg((enum pair_kind)_i, cfg, cfg, &a, &b);
	for (int i = 0; i < 200; i++) {
		pier_sent_request *sr;
		pier_received_request *rr;
		pier_msg *m;

		open_request(a, b, 3, "ping", &sr, &rr);
		ck_assert_int_eq(pier_received_request_send_response(rr, 0, "pong", 4, NULL, 0), 0);
		/* Within the deadline: a response held for the delay would
		 * not be. */
		ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT_MS), 0);
		pier_msg_free(m);
		pier_sent_request_free(sr);
		pier_received_request_free(rr);
	}
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(closing_writes_what_is_held)
{
	pier_config *cfg = delay_config(LONG_DELAY_US);
	pier_peer *a, *b;
	pier_received_request *req;
	pier_msg *m;
	int n;

	make_pair_cfg((enum pair_kind)_i, cfg, NULL, &a, &b);
	n = held_burst(a, 50);
	pier_peer_free(a);
	expect_burst(b, n, WAIT_MS);
	ck_assert_int_eq(pier_peer_recv(b, &m, &req, WAIT_MS), -PIER_ECLOSED);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

START_TEST(bad_arguments)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_coalescing(NULL, 20), -EINVAL);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, LONG_DELAY_US), 0);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, LONG_DELAY_US + 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_coalescing(cfg, 0), 0);
	ck_assert_int_eq(pier_writer_flush(NULL), -EINVAL);
	pier_config_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("coalesce");
	TCase *tc = th_tcase("coalesce", 30);

	tcase_add_loop_test(tc, burst_shares_writes, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, off_writes_each_message, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, held_messages_go_on_time, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, waiting_writes_own_sends_first, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, flush_writes_what_is_held, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, round_trips_are_never_held, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, closing_writes_what_is_held, 0, PAIR_KINDS);
	tcase_add_test(tc, bad_arguments);
	suite_add_tcase(s, tc);
	return th_run(s);
}
