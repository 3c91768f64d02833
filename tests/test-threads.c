/* SPDX-License-Identifier: MIT */
/* Threads: write halves shared between threads, and many requests at once. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

enum { SENDERS = 4, PER_SENDER = 2000 };

struct sender {
	pier_writer *w;
	int index;
};

static void *send_streams(void *arg)
{
	struct sender *s = arg;

	for (int i = 0; i < PER_SENDER; i++) {
		char body[32];
		int n = snprintf(body, sizeof(body), "%d:%d", s->index, i);

		if (pier_writer_send_stream(s->w, s->index, body, (size_t)n, NULL, 0) != 0)
			return (void *)1;
	}
	pier_writer_unref(s->w);
	return NULL;
}

/* Several threads send on clones of one write half while the main thread
 * reads: every message arrives once, and each thread's in its order. */
START_TEST(writers_on_many_threads)
{
	pier_peer *a, *b;
	pthread_t th[SENDERS];
	struct sender s[SENDERS];
	int next[SENDERS] = { 0 };

	make_pair(_i, &a, &b);
	for (int t = 0; t < SENDERS; t++) {
		s[t] = (struct sender){ pier_writer_ref(pier_peer_get_writer(a)), t };
		ck_assert_int_eq(pthread_create(&th[t], NULL, send_streams, &s[t]), 0);
	}
	/* the read half may go: the clones keep the connection */
	pier_peer_free(a);
	for (int i = 0; i < SENDERS * PER_SENDER; i++) {
		pier_received_request *rr;
		pier_msg *m;
		size_t len;
		const char *body;
		int t, seq;

		char text[32];

		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		body = pier_msg_body(m, &len);
		ck_assert_uint_lt(len, sizeof(text));
		memcpy(text, body, len); /* bodies are bytes, not strings */
		text[len] = '\0';
		ck_assert_int_eq(sscanf(text, "%d:%d", &t, &seq), 2);
		ck_assert_int_eq(t, pier_msg_header(m)->service_id);
		ck_assert_int_eq(seq, next[t]);
		next[t]++;
		pier_msg_free(m);
	}
	for (int t = 0; t < SENDERS; t++) {
		void *ret;

		pthread_join(th[t], &ret);
		ck_assert_ptr_null(ret);
	}
	pier_peer_free(b);
}
END_TEST

struct server {
	pier_peer *peer;
	int served;
};

/* Answers every request with its own body, until the connection ends. */
static void *echo_server(void *arg)
{
	struct server *srv = arg;
	pier_received_request *rr;
	pier_msg *m;

	while (pier_peer_recv(srv->peer, &m, &rr, -1) == 0) {
		size_t len;
		const void *body = pier_msg_body(m, &len);

		if (rr) {
			pier_received_request_send_response(rr, 1, body, len, NULL, 0);
			pier_received_request_free(rr);
			srv->served++;
		}
		pier_msg_free(m);
	}
	return NULL;
}

/* Thousands of requests open at once, answered by a server thread. */
START_TEST(thousands_of_requests)
{
	enum { N = 5000 };
	pier_peer *a, *b;
	pier_sent_request **sr = calloc(N, sizeof(*sr));
	struct server srv;
	pthread_t th;

	make_pair(_i, &a, &b);
	srv = (struct server){ b, 0 };
	ck_assert_int_eq(pthread_create(&th, NULL, echo_server, &srv), 0);
	for (int i = 0; i < N; i++) {
		char body[16];

		snprintf(body, sizeof(body), "%d", i);
		sr[i] = send_request(a, 1, body);
	}
	for (int i = N - 1; i >= 0; i--) {
		char body[16];
		pier_msg *m;

		snprintf(body, sizeof(body), "%d", i);
		ck_assert_int_eq(pier_sent_request_recv_response(sr[i], &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 1, body);
		pier_msg_free(m);
		pier_sent_request_free(sr[i]);
	}
	pier_peer_free(a); /* the server sees the end */
	pthread_join(th, NULL);
	ck_assert_int_eq(srv.served, N);
	pier_peer_free(b);
	free(sr);
}
END_TEST

struct updater {
	pier_sent_request_writer *w;
	int count;
};

static void *send_updates(void *arg)
{
	struct updater *u = arg;

	for (int i = 0; i < u->count; i++)
		if (pier_sent_request_writer_send_update(u->w, 2, "u", 1, NULL, 0) != 0)
			return (void *)1;
	pier_sent_request_writer_unref(u->w);
	return NULL;
}

/* One thread streams requester updates through a clone of the write half
 * while another waits for the response. */
START_TEST(request_writer_on_another_thread)
{
	enum { UPDATES = 500 };
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	struct updater u;
	pthread_t th;
	pier_msg *m;
	void *ret;

	make_pair(_i, &a, &b);
	sr = send_request(a, 1, "count");
	u = (struct updater){ pier_sent_request_writer_ref(pier_sent_request_get_writer(sr)), UPDATES };
	ck_assert_int_eq(pthread_create(&th, NULL, send_updates, &u), 0);
	rr = recv_request(b, &m);
	pier_msg_free(m);
	for (int i = 0; i < UPDATES; i++) {
		ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_REQUESTER_UPDATE, 2, "u");
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "500", 3, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_body(m, "500");
	pier_msg_free(m);
	pthread_join(th, &ret);
	ck_assert_ptr_null(ret);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Peers made and dropped in quick succession while their remote goes away:
 * the application's last release and the loop's view of the end race each
 * other (a sanitizer build turns a lost race into a failure here). */
START_TEST(churn)
{
	for (int i = 0; i < 1000; i++) {
		pier_peer *a, *b;

		make_pair(_i, &a, &b);
		if (i % 2)
			pier_peer_free(b);
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0) <= 0, 1);
		pier_peer_free(a);
		if (!(i % 2))
			pier_peer_free(b);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = th_tcase("threads", 60);

	tcase_add_loop_test(tc, writers_on_many_threads, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, thousands_of_requests, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, request_writer_on_another_thread, 0, PAIR_KINDS);
	tcase_add_loop_test(tc, churn, PAIR_UNIX_FD, PAIR_SEQPACKET_FD + 1);
	suite_add_tcase(s, tc);
	return th_run(s);
}
