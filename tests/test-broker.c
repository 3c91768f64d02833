/* SPDX-License-Identifier: MIT */
/* The broker of examples/broker.c, in this process: requests forwarded to
 * workers and relayed both ways with their fds, workers and clients that
 * die, topics fanned out, and everything a peer controls bounded, fds
 * broker-wide. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "peers.h"

/* --- helpers ------------------------------------------------------------- */

/* The byte order of the broker and of the peers a test connects; the
 * tests that run in a loop take each of these in turn. */
static enum pier_byte_order order = PIER_BYTE_ORDER_LITTLE;
static const enum pier_byte_order orders[] = { PIER_BYTE_ORDER_LITTLE, PIER_BYTE_ORDER_BIG };

/* A broker with lim (NULL: the defaults) listening on a seqpacket socket
 * (fds travel), not started, telling log (NULL: nobody); *address is
 * where. */
static broker *make_broker_log(const struct broker_limits *lim, struct test_log *log,
			       char *address, size_t len)
{
	static unsigned int n;
	pier_config *cfg;
	broker *b;
	char path[128];

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(broker_new(&b, cfg, order, lim, log ? test_log_collect : NULL, log), 0);
	pier_config_free(cfg);
	snprintf(path, sizeof(path), "seqpacket:///tmp/pier-broker-%u-%d-%u.sock",
		 (unsigned int)getuid(), (int)getpid(), n++);
	ck_assert_int_eq(pier_server_listen(broker_server(b), path), 0);
	ck_assert_int_eq(pier_server_address(broker_server(b), 0, address, len), 0);
	return b;
}

static broker *make_broker(const struct broker_limits *lim, char *address, size_t len)
{
	return make_broker_log(lim, NULL, address, len);
}

static broker *start_broker(const struct broker_limits *lim, char *address, size_t len)
{
	broker *b = make_broker(lim, address, len);

	ck_assert_int_eq(pier_server_start(broker_server(b)), 0);
	return b;
}

/* A peer of the broker in the test's byte order, that may send max_fds
 * fds in one message (0: the library's default). */
static pier_peer *connect_fds(const char *address, size_t max_fds)
{
	pier_config *cfg;
	pier_peer *p;
	int r;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_byte_order(cfg, order), 0);
	if (max_fds)
		ck_assert_int_eq(pier_config_set_max_fds(cfg, max_fds), 0);
	r = pier_peer_connect(&p, address, cfg);
	pier_config_free(cfg);
	ck_assert_msg(r == 0, "connect %s: %s", address, pier_strerror(r));
	return p;
}

static pier_peer *connect_to(const char *address)
{
	return connect_fds(address, 0);
}

/* A control request with body (len bytes): NULL when it succeeded, or its
 * error text (malloc'd). */
static char *control_raw(pier_peer *p, int32_t op, const void *body, size_t len)
{
	pier_sent_request *req;
	pier_msg *m;
	char *error = NULL;
	size_t n;
	const char *text;

	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(p), op, body, len, NULL, 0,
						  &req), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
	text = pier_msg_body(m, &n);
	if (pier_msg_is_error(m)) {
		error = strndup(text, n);
	} else {
		ck_assert_int_eq(pier_msg_header(m)->service_id, op);
		ck_assert_uint_eq(n, 0);
	}
	pier_msg_free(m);
	pier_sent_request_free(req);
	return error;
}

static char *control(pier_peer *p, int32_t op, const int32_t *ids, size_t n)
{
	unsigned char body[64 * 4];

	ck_assert_uint_le(n, 64);
	return control_raw(p, op, body, broker_encode_ids(body, ids, n, order));
}

/* A control request that must succeed. */
static void control_ok(pier_peer *p, int32_t op, const int32_t *ids, size_t n)
{
	char *error = control(p, op, ids, n);

	ck_assert_msg(!error, "control request %d: %s", (int)op, error);
}

/* A control request that must fail, with an error containing want. */
static void control_refused(pier_peer *p, int32_t op, const void *body, size_t len,
			    const char *want)
{
	char *error = control_raw(p, op, body, len);

	ck_assert_msg(error, "control request %d of %zu bytes succeeded", (int)op, len);
	ck_assert_msg(strstr(error, want), "error \"%s\", expected \"%s\" in it", error, want);
	free(error);
}

/* A peer of the broker serving (or subscribed to) id. */
static pier_peer *worker_of(const char *address, int32_t id)
{
	pier_peer *p = connect_to(address);

	control_ok(p, BROKER_REGISTER, &id, 1);
	return p;
}

static pier_peer *subscriber_of(const char *address, int32_t topic)
{
	pier_peer *p = connect_to(address);

	control_ok(p, BROKER_SUBSCRIBE, &topic, 1);
	return p;
}

/* Sends with one fd holding fd_text (none if NULL). */
static pier_sent_request *send_request_fd(pier_peer *p, int32_t svc, const char *body,
					  const char *fd_text)
{
	pier_sent_request *req;
	int fd = fd_text ? memfd_with(fd_text) : -1;

	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(p), svc, body, strlen(body),
						  &fd, fd_text ? 1 : 0, &req), 0);
	if (fd >= 0)
		close(fd);
	return req;
}

/* m's fd number i holds text. */
static void assert_fd_holds(const pier_msg *m, size_t i, const char *text)
{
	char *content;

	ck_assert_uint_gt(pier_msg_fd_count(m), i);
	content = read_fd(pier_msg_fd(m, i));
	ck_assert_str_eq(content, text);
	free(content);
}

/* The error response of req, which must contain want; req freed. */
static void expect_error(pier_sent_request *req, const char *want)
{
	pier_msg *m;
	size_t len;
	const char *text;
	int r = pier_sent_request_recv_response(req, &m, WAIT);

	ck_assert_msg(r == 0, "response: %s", pier_strerror(r));
	text = pier_msg_body(m, &len);
	ck_assert_msg(pier_msg_is_error(m), "a response \"%.*s\", not an error", (int)len, text);
	ck_assert_msg(memmem(text, len, want, strlen(want)), "error \"%.*s\", expected \"%s\"",
		      (int)len, text, want);
	pier_msg_free(m);
	pier_sent_request_free(req);
}

/* A child process that plays a peer of the broker. */
struct child {
	pid_t pid;
	int go;     /* written: the broker's address, then closed */
	int notify; /* read: a byte each time the child did a step */
};

/* Forks a child that waits for the broker's address (child_go()), runs
 * fn there, and then waits to be killed; fn writes a byte to notify after
 * each step.  Forked before this process makes any thread (before the
 * broker): a child of a threaded process may not make threads under TSan,
 * and must not touch its parent's pier objects anyway. */
static void spawn(struct child *c, void (*fn)(const char *address, int notify))
{
	int go[2], notify[2];

	ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(notify, O_CLOEXEC), 0);
	c->pid = fork();
	ck_assert_int_ge(c->pid, 0);
	if (c->pid == 0) {
		char address[256];
		ssize_t n, len = 0;

		close(go[1]);
		close(notify[0]);
		while ((n = read(go[0], address + len, sizeof(address) - 1 - (size_t)len)) > 0)
			len += n;
		address[len] = '\0';
		if (len == 0)
			_exit(1); /* the test ended first */
		fn(address, notify[1]);
		for (;;)
			pause();
	}
	close(go[0]);
	close(notify[1]);
	c->go = go[1];
	c->notify = notify[0];
}

static void child_go(struct child *c, const char *address)
{
	ck_assert_int_eq(write(c->go, address, strlen(address)), (ssize_t)strlen(address));
	close(c->go);
	c->go = -1;
}

static void wait_notice(struct child *c)
{
	char byte;

	ck_assert_int_eq(read(c->notify, &byte, 1), 1);
}

static void kill_child(struct child *c)
{
	int status;

	kill(c->pid, SIGKILL);
	ck_assert_int_eq(waitpid(c->pid, &status, 0), c->pid);
	ck_assert_msg(WIFSIGNALED(status),
		      "the child exited with status %d before it was killed (its stderr says why)",
		      WEXITSTATUS(status));
	close(c->notify);
}

/* --- forwarding and relaying --------------------------------------------- */

/* A request reaches a worker of its service id with its body and fds. */
START_TEST(forwards_request_with_fds)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 5), *client = connect_to(address);
	pier_sent_request *req = send_request_fd(client, 5, "hello", "the payload");
	pier_received_request *rr;
	pier_msg *m;

	rr = recv_request(worker, &m);
	assert_msg(m, PIER_MSG_REQUEST, 5, "hello");
	ck_assert_uint_eq(pier_msg_fd_count(m), 1);
	assert_fd_holds(m, 0, "the payload");
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_response(rr, 5, "done", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 5, "done");
	pier_msg_free(m);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FORWARDED), 1);
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	pier_received_request_free(rr);
	pier_sent_request_free(req);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* One requester update with an fd, relayed to the worker. */
static void update_to_worker(pier_sent_request *req, pier_received_request *rr, const char *text)
{
	int fd = memfd_with(text);
	pier_msg *m;

	ck_assert_int_eq(pier_sent_request_send_update(req, 21, text, strlen(text), &fd, 1), 0);
	close(fd);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, 21, text);
	assert_fd_holds(m, 0, text);
	pier_msg_free(m);
}

/* One responder update with an fd, relayed to the client. */
static void update_to_client(pier_received_request *rr, pier_sent_request *req, const char *text)
{
	int fd = memfd_with(text);
	pier_msg *m;

	ck_assert_int_eq(pier_received_request_send_update(rr, 22, text, strlen(text), &fd, 1), 0);
	close(fd);
	ck_assert_int_eq(pier_sent_request_recv_update(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 22, text);
	assert_fd_holds(m, 0, text);
	pier_msg_free(m);
}

/* Long-lived requests: updates with fds both ways, on three requests at
 * once through a broker with one thread, which serves control requests
 * meanwhile: a relay holds no thread while it waits. */
START_TEST(relays_updates_both_ways_with_fds)
{
	struct broker_limits lim = { .workers = 1 };
	char address[256];
	broker *b = start_broker(&lim, address, sizeof(address));
	pier_peer *worker = worker_of(address, 6), *client = connect_to(address);
	pier_sent_request *req[3];
	pier_received_request *rr[3];
	pier_msg *m;

	for (int i = 0; i < 3; i++) {
		char body[16];

		snprintf(body, sizeof(body), "r%d", i);
		req[i] = send_request(client, 6, body);
		rr[i] = recv_request(worker, &m);
		assert_msg(m, PIER_MSG_REQUEST, 6, body);
		pier_msg_free(m);
	}
	for (int round = 0; round < 3; round++)
		for (int i = 0; i < 3; i++) {
			char text[48];

			snprintf(text, sizeof(text), "to worker %d.%d", i, round);
			update_to_worker(req[i], rr[i], text);
			snprintf(text, sizeof(text), "to client %d.%d", i, round);
			update_to_client(rr[i], req[i], text);
			/* the one thread is free */
			control_ok(client, BROKER_SUBSCRIBE, (int32_t[]){ round }, 1);
		}
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_UPDATES), 18);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_RELAYS), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pier_received_request_send_response(rr[i], 6, "bye", 3, NULL, 0), 0);
		ck_assert_int_eq(pier_sent_request_recv_response(req[i], &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 6, "bye");
		pier_msg_free(m);
		pier_received_request_free(rr[i]);
		pier_sent_request_free(req[i]);
	}
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* The response comes back with its service id, body and fds, after the
 * updates sent before it; an error response comes back as one. */
START_TEST(relays_response)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 7), *client = connect_to(address);
	pier_sent_request *req = send_request(client, 7, "question");
	pier_received_request *rr;
	pier_msg *m;
	int fds[2] = { memfd_with("first"), memfd_with("second") };

	rr = recv_request(worker, &m);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_update(rr, 70, "before", 6, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 71, "answer", 6, fds, 2), 0);
	close(fds[0]);
	close(fds[1]);
	ck_assert_int_eq(pier_sent_request_recv(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, 70, "before");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 71, "answer");
	ck_assert_uint_eq(pier_msg_fd_count(m), 2);
	assert_fd_holds(m, 0, "first");
	assert_fd_holds(m, 1, "second");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv(req, &m, 0), -PIER_EDONE);
	pier_received_request_free(rr);
	pier_sent_request_free(req);

	req = send_request(client, 7, "again");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_error(rr, "the worker says no"), 0);
	expect_error(req, "the worker says no");
	pier_received_request_free(rr);
	/* counted once sent, which may be after the client has it */
	wait_until(broker_stat(b, BROKER_STAT_RESPONSES) == 2, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 0);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* Several workers serve one id: requests go to the one with the fewest
 * in flight; one that unregisters gets no more. */
START_TEST(several_workers_for_one_id)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *workers[3], *client = connect_to(address);
	pier_received_request *rr[3][2];
	pier_sent_request *req[6];
	pier_msg *m;

	for (int w = 0; w < 3; w++)
		workers[w] = worker_of(address, 9);
	control_ok(workers[0], BROKER_REGISTER, (int32_t[]){ 10 }, 1);
	for (int i = 0; i < 6; i++)
		req[i] = send_request(client, 9, "work");
	/* Two each, whatever order they come in: one worker with a third
	 * would leave another waiting in vain for its second. */
	for (int w = 0; w < 3; w++)
		for (int i = 0; i < 2; i++) {
			rr[w][i] = recv_request(workers[w], &m);
			assert_msg(m, PIER_MSG_REQUEST, 9, "work");
			pier_msg_free(m);
		}
	for (int w = 0; w < 3; w++)
		for (int i = 0; i < 2; i++) {
			char who[16];

			snprintf(who, sizeof(who), "w%d", w);
			ck_assert_int_eq(pier_received_request_send_response(rr[w][i], 9, who, 2, NULL,
									     0), 0);
			pier_received_request_free(rr[w][i]);
		}
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(pier_sent_request_recv_response(req[i], &m, WAIT), 0);
		ck_assert(!pier_msg_is_error(m));
		pier_msg_free(m);
		pier_sent_request_free(req[i]);
	}
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);

	/* Unregistered: the two others take every request on 9. */
	control_ok(workers[0], BROKER_UNREGISTER, (int32_t[]){ 9 }, 1);
	for (int i = 0; i < 4; i++)
		req[i] = send_request(client, 9, "more");
	for (int w = 1; w < 3; w++)
		for (int i = 0; i < 2; i++) {
			rr[w][i] = recv_request(workers[w], &m);
			pier_msg_free(m);
		}
	/* and the first one's next request is the one on 10 */
	req[4] = send_request(client, 10, "ten");
	rr[0][0] = recv_request(workers[0], &m);
	assert_msg(m, PIER_MSG_REQUEST, 10, "ten");
	pier_msg_free(m);
	pier_received_request_free(rr[0][0]);
	expect_error(req[4], "the request was dropped without a response");
	for (int w = 1; w < 3; w++)
		for (int i = 0; i < 2; i++)
			pier_received_request_free(rr[w][i]);
	for (int i = 0; i < 4; i++)
		expect_error(req[i], "the request was dropped without a response");
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FORWARDED), 11);
	pier_peer_free(client);
	for (int w = 0; w < 3; w++)
		pier_peer_free(workers[w]);
	broker_free(b);
}
END_TEST

/* A request nobody serves gets an error response naming its id.  In both
 * byte orders. */
START_TEST(no_worker)
{
	char address[256];
	broker *b;
	pier_peer *client, *worker;

	order = orders[_i];
	b = start_broker(NULL, address, sizeof(address));
	client = connect_to(address);
	worker = worker_of(address, 77);
	expect_error(send_request(client, 78, "x"), "no worker serves service id 78");
	control_ok(worker, BROKER_UNREGISTER, (int32_t[]){ 77 }, 1);
	expect_error(send_request(client, 77, "x"), "no worker serves service id 77");
	expect_error(send_request(client, -1, "x"), "no worker serves service id -1");
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_NO_WORKER), 3);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FORWARDED), 0);
	pier_peer_free(worker);
	pier_peer_free(client);
	broker_free(b);
}
END_TEST

/* --- peers that die ------------------------------------------------------ */

/* In a child: a worker of 11 that takes a request and its update, then
 * waits to be killed. */
static void dying_worker(const char *address, int notify)
{
	int32_t id = 11;
	unsigned char body[4];
	pier_received_request *rr;
	pier_sent_request *reg;
	pier_peer *p;
	pier_msg *m;

	broker_encode_ids(body, &id, 1, PIER_BYTE_ORDER_LITTLE);
	if (pier_peer_connect(&p, address, NULL) < 0 ||
	    pier_writer_send_request(pier_peer_get_writer(p), BROKER_REGISTER, body, 4, NULL, 0,
				     &reg) < 0 ||
	    pier_sent_request_recv_response(reg, &m, WAIT) < 0 || pier_msg_is_error(m))
		_exit(1);
	if (write(notify, "r", 1) != 1 || pier_peer_recv(p, &m, &rr, WAIT) < 0 || !rr ||
	    pier_received_request_recv_update(rr, &m, WAIT) < 0 || write(notify, "u", 1) != 1)
		_exit(2);
}

/* A worker killed while it serves a request: the client gets an error
 * response that says so, and the worker is forgotten. */
START_TEST(worker_dies_mid_request)
{
	char address[256];
	struct child worker;
	broker *b;
	pier_peer *client;
	pier_sent_request *req;

	spawn(&worker, dying_worker);
	b = start_broker(NULL, address, sizeof(address));
	client = connect_to(address);
	child_go(&worker, address);
	wait_notice(&worker); /* registered */
	req = send_request_fd(client, 11, "long job", "its input");
	ck_assert_int_eq(pier_sent_request_send_update(req, 1, "more", 4, NULL, 0), 0);
	wait_notice(&worker); /* it has both */
	kill_child(&worker);
	expect_error(req, "the worker serving service id 11 disconnected before it answered");
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 1);
	/* gone from the broker's tables */
	expect_error(send_request(client, 11, "x"), "service id 11");
	pier_peer_free(client);
	broker_free(b);
}
END_TEST

/* In a child: a client that sends a request on 12 with an fd and an
 * update, then waits to be killed. */
static void dying_client(const char *address, int notify)
{
	pier_sent_request *req;
	pier_peer *p;
	int fd = memfd_create("dying-client", MFD_CLOEXEC);

	if (fd < 0 || pier_peer_connect(&p, address, NULL) < 0 ||
	    pier_writer_send_request(pier_peer_get_writer(p), 12, "job", 3, &fd, 1, &req) < 0 ||
	    pier_sent_request_send_update(req, 1, "more", 4, NULL, 0) < 0 ||
	    pier_writer_flush(pier_peer_get_writer(p)) < 0 || write(notify, "s", 1) != 1)
		_exit(1);
}

/* The next update of rr, polled: a receive that waits would make its
 * connection's wake eventfd (once), which the count of fds below would
 * take for a leak of the broker's. */
static pier_msg *poll_update(pier_received_request *rr)
{
	pier_msg *m = NULL;
	int r;

	wait_until((r = pier_received_request_recv_update(rr, &m, 0)) != -EAGAIN, WAIT);
	ck_assert_msg(r == 0, "update: %s", pier_strerror(r));
	return m;
}

/* A client killed while its request is relayed: the worker is told with
 * a BROKER_CANCELLED update, what it sends then is dropped, and nothing of
 * the relay is left at the broker (its fds included). */
START_TEST(client_dies_mid_request)
{
	char address[256];
	struct child client;
	broker *b;
	pier_peer *worker;
	pier_received_request *rr;
	pier_msg *m;
	int fds_before;

	spawn(&client, dying_client);
	b = start_broker(NULL, address, sizeof(address));
	worker = worker_of(address, 12);
	fds_before = open_fd_count();
	child_go(&client, address);
	wait_notice(&client);
	rr = recv_request(worker, &m);
	assert_msg(m, PIER_MSG_REQUEST, 12, "job");
	ck_assert_uint_eq(pier_msg_fd_count(m), 1);
	pier_msg_free(m);
	m = poll_update(rr);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, 1, "more");
	pier_msg_free(m);
	kill_child(&client);
	m = poll_update(rr);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED, "the client disconnected");
	pier_msg_free(m);
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 1);
	/* The worker answers all the same, into the void. */
	ck_assert_int_eq(pier_received_request_send_update(rr, 1, "late", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 12, "done", 4, NULL, 0), 0);
	pier_received_request_free(rr);
	/* The client's socket and request, the relay's fds: all closed (and
	 * the two pipes to the child). */
	wait_until(open_fd_count() == fds_before - 2, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_RESPONSES), 0);
	/* and the worker serves on */
	{
		pier_peer *next = connect_to(address);
		pier_sent_request *req = send_request(next, 12, "next");

		rr = recv_request(worker, &m);
		pier_msg_free(m);
		ck_assert_int_eq(pier_received_request_send_response(rr, 12, "ok", 2, NULL, 0), 0);
		pier_received_request_free(rr);
		ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 12, "ok");
		pier_msg_free(m);
		pier_sent_request_free(req);
		pier_peer_free(next);
	}
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* --- topics -------------------------------------------------------------- */

/* The next message of p: a stream message of topic with body (NULL:
 * any). */
static pier_msg *expect_stream(pier_peer *p, int32_t topic, const char *body)
{
	pier_received_request *rr = NULL;
	pier_msg *m;
	int r = pier_peer_recv(p, &m, &rr, WAIT);

	ck_assert_msg(r == 0, "recv: %s", pier_strerror(r));
	ck_assert_ptr_null(rr);
	ck_assert_int_eq(pier_msg_header(m)->type, PIER_MSG_STREAM);
	ck_assert_int_eq(pier_msg_header(m)->service_id, topic);
	if (body)
		assert_body(m, body);
	return m;
}

static void publish(pier_peer *p, int32_t topic, const char *body, int fd)
{
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), topic, body, strlen(body),
						 &fd, fd < 0 ? 0 : 1), 0);
}

/* A stream message on a topic reaches every subscriber of it, each with
 * its own fd for the same file, and nobody else. */
START_TEST(topic_fan_out_with_fds)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *subs[3], *publisher = connect_to(address);
	int fd = memfd_with("pixels");
	struct stat sent, got;

	ck_assert_int_eq(fstat(fd, &sent), 0);
	for (int i = 0; i < 3; i++)
		subs[i] = subscriber_of(address, 7);
	control_ok(subs[2], BROKER_SUBSCRIBE, (int32_t[]){ 8 }, 1);
	publish(publisher, 7, "frame", fd);
	close(fd);
	for (int i = 0; i < 3; i++) {
		pier_msg *m = expect_stream(subs[i], 7, "frame");

		ck_assert_uint_eq(pier_msg_fd_count(m), 1);
		assert_fd_holds(m, 0, "pixels");
		ck_assert_int_eq(fstat(pier_msg_fd(m, 0), &got), 0);
		ck_assert(got.st_ino == sent.st_ino && got.st_dev == sent.st_dev);
		pier_msg_free(m);
	}
	publish(publisher, 8, "eight", -1);
	publish(publisher, 9, "nobody's", -1);
	publish(publisher, 7, "next", -1);
	pier_msg_free(expect_stream(subs[2], 8, "eight"));
	/* in order: a copy of 8 or 9 would have come first */
	for (int i = 0; i < 3; i++)
		pier_msg_free(expect_stream(subs[i], 7, "next"));
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_PUBLISHED), 4);
	/* counted once sent, which may be after the subscriber has it */
	wait_until(broker_stat(b, BROKER_STAT_DELIVERED) == 7, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_DROPPED), 0);
	for (int i = 0; i < 3; i++)
		pier_peer_free(subs[i]);
	pier_peer_free(publisher);
	broker_free(b);
}
END_TEST

/* Unsubscribed, a peer gets no more of that topic (and asking twice is
 * no error); subscribed again, it does. */
START_TEST(unsubscribe)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *sub = subscriber_of(address, 7), *publisher = connect_to(address);

	control_ok(sub, BROKER_SUBSCRIBE, (int32_t[]){ 8, 8 }, 2);
	publish(publisher, 7, "one", -1);
	pier_msg_free(expect_stream(sub, 7, "one"));
	control_ok(sub, BROKER_UNSUBSCRIBE, (int32_t[]){ 7 }, 1);
	control_ok(sub, BROKER_UNSUBSCRIBE, (int32_t[]){ 7 }, 1);
	publish(publisher, 7, "gone", -1);
	publish(publisher, 8, "still", -1);
	pier_msg_free(expect_stream(sub, 8, "still"));
	control_ok(sub, BROKER_SUBSCRIBE, (int32_t[]){ 7 }, 1);
	publish(publisher, 7, "back", -1);
	pier_msg_free(expect_stream(sub, 7, "back"));
	/* counted once sent, which may be after the subscriber has it */
	wait_until(broker_stat(b, BROKER_STAT_DELIVERED) == 3, WAIT);
	pier_peer_free(sub);
	pier_peer_free(publisher);
	broker_free(b);
}
END_TEST

/* Publishes n messages of size bytes (each with an fd, if fd) on topic 3,
 * each only once fast has the one before: fast must get every one as soon
 * as it is published.  Then slow reads what was not dropped for it; returns
 * how many that were. */
static int flood(broker *b, pier_peer *publisher, pier_peer *fast, pier_peer *slow, int n,
		 size_t size, bool fd)
{
	uint64_t delivered = broker_stat(b, BROKER_STAT_DELIVERED);
	uint64_t dropped = broker_stat(b, BROKER_STAT_DROPPED);
	char *body = malloc(size);
	int got = 0;

	ck_assert_ptr_nonnull(body);
	memset(body, 'x', size);
	for (int i = 0; i < n; i++) {
		int memfd = fd ? memfd_with("frame") : -1;
		pier_msg *m;

		snprintf(body, size, "%d", i);
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(publisher), 3, body,
							 size, &memfd, fd), 0);
		if (fd)
			close(memfd);
		m = expect_stream(fast, 3, NULL);
		ck_assert_int_eq(atoi(pier_msg_body(m, NULL)), i);
		ck_assert_uint_eq(pier_msg_fd_count(m), fd);
		pier_msg_free(m);
	}
	free(body);
	/* every copy sent or dropped */
	wait_until(broker_stat(b, BROKER_STAT_DELIVERED) + broker_stat(b, BROKER_STAT_DROPPED) ==
		   delivered + dropped + 2 * (uint64_t)n, WAIT);
	dropped = broker_stat(b, BROKER_STAT_DROPPED) - dropped;
	delivered = broker_stat(b, BROKER_STAT_DELIVERED) - delivered;
	ck_assert_msg(dropped > 0, "nothing was dropped for the subscriber that does not read");
	/* What was not dropped waits for it, in order; then nothing. */
	while (got + dropped < (uint64_t)n) {
		pier_msg *m = expect_stream(slow, 3, NULL);

		ck_assert_int_ge(atoi(pier_msg_body(m, NULL)), got);
		got++;
		pier_msg_free(m);
	}
	ck_assert_uint_eq(delivered, (uint64_t)n + (uint64_t)got);
	return got;
}

/* A subscriber that does not read: its copies are dropped once its send
 * queue at the broker is full, in bytes or in fds, and counted; the
 * subscriber that reads gets every message meanwhile, each as soon as it
 * is published. */
START_TEST(slow_subscriber_bounded)
{
	struct broker_limits lim = { .send_queue = 64 << 10, .send_fds = 16 };
	char address[256];
	broker *b = start_broker(&lim, address, sizeof(address));
	pier_peer *slow = subscriber_of(address, 3), *fast = subscriber_of(address, 3);
	pier_peer *publisher = connect_to(address);
	int got;

	/* 2 MB: what waits is the socket's buffer (the seqpacket transport
	 * asks for twice the largest packet, the kernel doubles that) and the
	 * send queue */
	got = flood(b, publisher, fast, slow, 1000, 2048, false);
	ck_assert_msg((size_t)got * 2048 <= 2 * 2 * (12 + (128 << 10)) + lim.send_queue,
		      "%d of 1000 copies of 2 KiB were queued for a subscriber that does not read",
		      got);
	/* small, an fd each: 16 fds in flight or queued */
	got = flood(b, publisher, fast, slow, 200, 16, true);
	ck_assert_msg(got <= 32, "%d of 200 copies with an fd were queued for a subscriber that "
		      "does not read", got);
	pier_peer_free(slow);
	pier_peer_free(fast);
	pier_peer_free(publisher);
	broker_free(b);
}
END_TEST

/* --- bounds and bad bodies ----------------------------------------------- */

/* Control requests with bodies that are no list of ids, too many ids, or
 * reserved ones: refused, each with what is wrong, and nothing of them
 * done.  In both byte orders. */
START_TEST(bad_control_bodies)
{
	struct broker_limits lim = { .max_services = 4, .max_topics = 2 };
	char address[256];
	broker *b;
	pier_peer *p, *client;
	unsigned char body[6 * 4];
	int32_t five[5] = { 1, 2, 3, 4, 5 };

	order = orders[_i];
	b = start_broker(&lim, address, sizeof(address));
	p = connect_to(address);
	client = connect_to(address);
	broker_encode_ids(body, five, 5, order);
	control_refused(p, BROKER_REGISTER, body, 3, "3 bytes are not");
	control_refused(p, BROKER_REGISTER, body, 0, "the body lists no service ids");
	control_refused(p, BROKER_SUBSCRIBE, body, 7, "7 bytes are not");
	control_refused(p, BROKER_UNREGISTER, body, 5, "5 bytes are not");
	control_refused(p, BROKER_REGISTER, body, 20,
			"5 service ids in one request, over the limit of 4");
	control_refused(p, BROKER_SUBSCRIBE, body, 12,
			"3 topic ids in one request, over the limit of 2");
	control_ok(p, BROKER_REGISTER, five, 3);
	control_ok(p, BROKER_REGISTER, five, 2); /* had them already */
	control_refused(p, BROKER_REGISTER, body + 8, 12,
			"at most 4 service ids (this one has 3, and asked for 2 more)");
	broker_encode_ids(body, (int32_t[]){ 4, -2 }, 2, order);
	control_refused(p, BROKER_REGISTER, body, 8, "service id -2 is reserved");
	broker_encode_ids(body, (int32_t[]){ -1 }, 1, order);
	control_refused(p, BROKER_REGISTER, body, 4, "service id -1 is reserved");
	/* none of the refused ids was registered */
	expect_error(send_request(client, 4, "x"), "no worker serves service id 4");
	expect_error(send_request(client, 5, "x"), "no worker serves service id 5");
	/* the limit counts what is registered now */
	control_ok(p, BROKER_UNREGISTER, five, 3);
	control_ok(p, BROKER_REGISTER, five + 1, 4);
	control_ok(p, BROKER_SUBSCRIBE, five, 2);
	control_refused(p, BROKER_SUBSCRIBE, body, 4, "at most 2 topic ids");
	pier_peer_free(client);
	pier_peer_free(p);
	broker_free(b);
}
END_TEST

/* A client's requests in flight and a worker's are bounded: past them,
 * requests get an error response at once. */
START_TEST(bounds_in_flight)
{
	struct broker_limits lim = { .max_requests = 2, .max_forwarded = 3 };
	char address[256];
	broker *b = start_broker(&lim, address, sizeof(address));
	pier_peer *worker = worker_of(address, 13);
	pier_peer *a = connect_to(address), *c = connect_to(address);
	pier_sent_request *req[4];
	pier_received_request *rr[3];
	pier_msg *m;

	/* One at a time: a peer's requests are dispatched side by side, and
	 * the one refused is the one counted last. */
	req[0] = send_request(a, 13, "a0");
	rr[0] = recv_request(worker, &m);
	pier_msg_free(m);
	req[1] = send_request(a, 13, "a1");
	rr[1] = recv_request(worker, &m);
	pier_msg_free(m);
	expect_error(send_request(a, 13, "a2"), "too many requests in flight (limit 2)");
	req[2] = send_request(c, 13, "c0");
	rr[2] = recv_request(worker, &m);
	pier_msg_free(m);
	expect_error(send_request(c, 13, "c1"),
		     "every worker of service id 13 has 3 requests in flight, the broker's limit: "
		     "retry later or start more workers");
	ck_assert_int_eq(pier_received_request_send_response(rr[0], 13, "ok", 2, NULL, 0), 0);
	pier_received_request_free(rr[0]);
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 2, WAIT);
	req[3] = send_request(c, 13, "c2");
	rr[0] = recv_request(worker, &m);
	assert_msg(m, PIER_MSG_REQUEST, 13, "c2");
	pier_msg_free(m);
	for (int i = 0; i < 3; i++)
		pier_received_request_free(rr[i]);
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pier_sent_request_recv_response(req[i], &m, WAIT), 0);
		pier_msg_free(m);
		pier_sent_request_free(req[i]);
	}
	pier_peer_free(a);
	pier_peer_free(c);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* A stop lets relayed requests finish (here as long as they take): their
 * updates and responses are relayed while it waits. */
START_TEST(stop_lets_relays_finish)
{
	char address[256];
	broker *b = make_broker(NULL, address, sizeof(address));
	pier_peer *worker, *client;
	pier_sent_request *req[2];
	pier_received_request *rr[2];
	pier_msg *m;

	ck_assert_int_eq(pier_server_set_stop_timeout(broker_server(b), -1), 0);
	ck_assert_int_eq(pier_server_start(broker_server(b)), 0);
	worker = worker_of(address, 14);
	client = connect_to(address);
	for (int i = 0; i < 2; i++) {
		req[i] = send_request(client, 14, "job");
		rr[i] = recv_request(worker, &m);
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_server_stop(broker_server(b)), 0);
	update_to_worker(req[0], rr[0], "still there?");
	update_to_client(rr[0], req[0], "nearly");
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pier_received_request_send_response(rr[i], 14, "done", 4, NULL, 0),
				 0);
		ck_assert_int_eq(pier_sent_request_recv_response(req[i], &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 14, "done");
		pier_msg_free(m);
		pier_sent_request_free(req[i]);
		pier_received_request_free(rr[i]);
	}
	ck_assert_int_eq(pier_server_wait(broker_server(b), WAIT), 0);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_RESPONSES), 2);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 0);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* A stop whose timeout has passed (at once, here) ends the relays left:
 * each client gets an error response, and each worker a BROKER_CANCELLED
 * update that says why, before its connection closes. */
START_TEST(stop_cancels_workers)
{
	char address[256];
	broker *b = make_broker(NULL, address, sizeof(address));
	pier_peer *worker, *client;
	pier_sent_request *req[2];
	pier_received_request *rr[2];
	pier_msg *m;

	ck_assert_int_eq(pier_server_set_stop_timeout(broker_server(b), 0), 0);
	ck_assert_int_eq(pier_server_start(broker_server(b)), 0);
	worker = worker_of(address, 14);
	client = connect_to(address);
	for (int i = 0; i < 2; i++) {
		req[i] = send_request(client, 14, "job");
		rr[i] = recv_request(worker, &m);
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_server_stop(broker_server(b)), 0);
	for (int i = 0; i < 2; i++) {
		int r;

		expect_error(req[i], "the server stopped before the request finished");
		r = pier_received_request_recv_update(rr[i], &m, WAIT);
		ck_assert_msg(r == 0, "the worker's request %d ended without a cancel: %s", i,
			      pier_strerror(r));
		assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
			   "the broker stopped before the request finished");
		pier_msg_free(m);
		pier_received_request_free(rr[i]);
	}
	ck_assert_int_eq(pier_server_wait(broker_server(b), WAIT), 0);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 2);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* --- peers that race ----------------------------------------------------- */

struct responder {
	pthread_barrier_t *go;
	pier_received_request *rr;
};

static void *respond(void *arg)
{
	struct responder *r = arg;

	pthread_barrier_wait(r->go);
	/* Whether the broker is still there for it or not. */
	pier_received_request_send_response(r->rr, 16, "late?", 5, NULL, 0);
	return NULL;
}

/* The worker's response and the client's disconnect, at the same time,
 * over and over: each relay ends once, one way or the other (its response
 * relayed, or the worker cancelled), and nothing of it is left. */
START_TEST(response_races_client_disconnect)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 16);
	const int rounds = 20;
	int fds_before = open_fd_count();

	for (int i = 0; i < rounds; i++) {
		pier_peer *client = connect_to(address);
		pier_sent_request *req = send_request(client, 16, "race");
		pthread_barrier_t go;
		struct responder r = { &go, NULL };
		pthread_t th;
		pier_msg *m;

		r.rr = recv_request(worker, &m);
		pier_msg_free(m);
		ck_assert_int_eq(pthread_barrier_init(&go, NULL, 2), 0);
		ck_assert_int_eq(pthread_create(&th, NULL, respond, &r), 0);
		pthread_barrier_wait(&go);
		pier_sent_request_free(req);
		pier_peer_free(client);
		ck_assert_int_eq(pthread_join(th, NULL), 0);
		pthread_barrier_destroy(&go);
		pier_received_request_free(r.rr);
	}
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_RESPONSES) + broker_stat(b, BROKER_STAT_BROKEN),
			  rounds);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FDS), 0);
	/* every client's socket and every relay's eventfds closed */
	wait_until(open_fd_count() == fds_before, WAIT);
	/* and the worker serves on */
	{
		pier_peer *client = connect_to(address);
		pier_sent_request *req = send_request(client, 16, "after");
		pier_received_request *rr;
		pier_msg *m;

		rr = recv_request(worker, &m);
		assert_msg(m, PIER_MSG_REQUEST, 16, "after");
		pier_msg_free(m);
		ck_assert_int_eq(pier_received_request_send_response(rr, 16, "ok", 2, NULL, 0), 0);
		pier_received_request_free(rr);
		ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, 16, "ok");
		pier_msg_free(m);
		pier_sent_request_free(req);
		pier_peer_free(client);
	}
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* --- updates on the broker's ids ----------------------------------------- */

/* An update on one of the broker's ids (-6 to -1) is refused both ways:
 * a client's on -6 cannot pass for the broker's cancel.  The relay ends,
 * each side told why. */
START_TEST(reserved_ids_in_updates)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 17), *client = connect_to(address);
	pier_sent_request *req;
	pier_received_request *rr;
	pier_msg *m;

	/* the client's, on -6 and on -1 */
	for (int32_t id = BROKER_CANCELLED; id <= PIER_SERVICE_ERROR; id += 5) {
		char want[160];

		req = send_request(client, 17, "job");
		rr = recv_request(worker, &m);
		pier_msg_free(m);
		ck_assert_int_eq(pier_sent_request_send_update(req, id, "forged", 6, NULL, 0), 0);
		snprintf(want, sizeof(want), "your update is on service id %d, one of the broker's "
			 "own (-6 to -1): use another id", (int)id);
		expect_error(req, want);
		ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
		snprintf(want, sizeof(want), "the broker ended the request: the client's update is "
			 "on service id %d, one of the broker's own (-6 to -1)", (int)id);
		assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED, want);
		pier_msg_free(m);
		pier_received_request_free(rr);
	}
	/* the worker's, on -2 */
	req = send_request(client, 17, "job");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_update(rr, BROKER_REGISTER, "x", 1, NULL, 0), 0);
	expect_error(req, "the worker's update is on service id -2, one of the broker's own");
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
		   "the broker ended the request: your update is on service id -2, one of the "
		   "broker's own (-6 to -1): use another id");
	pier_msg_free(m);
	pier_received_request_free(rr);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_UPDATES), 0);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_BROKEN), 3);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* --- fds ----------------------------------------------------------------- */

/* Sends with nfds fds (memfds holding "fd"): as a request (*out) when out,
 * else as a stream message on service. */
static int send_with_fds(pier_peer *p, int32_t service, size_t nfds, pier_sent_request **out)
{
	int fds[64], r;

	ck_assert_uint_le(nfds, 64);
	for (size_t i = 0; i < nfds; i++)
		fds[i] = memfd_with("fd");
	if (out)
		r = pier_writer_send_request(pier_peer_get_writer(p), service, "x", 1, fds, nfds,
					     out);
	else
		r = pier_writer_send_stream(pier_peer_get_writer(p), service, "x", 1, fds, nfds);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return r;
}

/* An update with nfds fds on req (a sent request) or rr (a received one). */
static void update_with_fds(pier_sent_request *req, pier_received_request *rr, size_t nfds)
{
	int fds[8];

	ck_assert_uint_le(nfds, 8);
	for (size_t i = 0; i < nfds; i++)
		fds[i] = memfd_with("fd");
	if (req)
		ck_assert_int_eq(pier_sent_request_send_update(req, 1, "u", 1, fds, nfds), 0);
	else
		ck_assert_int_eq(pier_received_request_send_update(rr, 1, "u", 1, fds, nfds), 0);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
}

/* A request, an update either way, a response and a stream message with
 * more fds than the broker passes: each refused, with an error that names
 * the numbers (the stream message in the log); those within the limit
 * pass.  A message of more fds than the library's default per message (32)
 * is read and answered too, not taken for a broken connection. */
START_TEST(messages_over_the_fd_limit)
{
	struct broker_limits lim = { .msg_fds = 2 };
	struct test_log log;
	char address[256];
	broker *b;
	pier_peer *worker, *client, *sub, *big;
	pier_sent_request *req;
	pier_received_request *rr;
	pier_msg *m;

	test_log_init(&log);
	b = make_broker_log(&lim, &log, address, sizeof(address));
	ck_assert_int_eq(pier_server_start(broker_server(b)), 0);
	worker = worker_of(address, 18);
	client = connect_to(address);
	sub = subscriber_of(address, 3);

	ck_assert_int_eq(send_with_fds(client, 18, 3, &req), 0);
	expect_error(req, "the request carries 3 fds; the broker passes at most 2");

	/* the client's update */
	ck_assert_int_eq(send_with_fds(client, 18, 2, &req), 0);
	rr = recv_request(worker, &m);
	ck_assert_uint_eq(pier_msg_fd_count(m), 2);
	pier_msg_free(m);
	update_with_fds(req, NULL, 3);
	expect_error(req, "your update carries 3 fds; the broker passes at most 2");
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
		   "the broker ended the request: the client's update carries 3 fds; the broker "
		   "passes at most 2");
	pier_msg_free(m);
	pier_received_request_free(rr);

	/* the worker's update */
	req = send_request(client, 18, "job");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	update_with_fds(NULL, rr, 3);
	expect_error(req, "the worker's update carries 3 fds; the broker passes at most 2");
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
		   "the broker ended the request: your update carries 3 fds; the broker passes at "
		   "most 2");
	pier_msg_free(m);
	pier_received_request_free(rr);

	/* the worker's response */
	req = send_request(client, 18, "job");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	{
		int fds[3] = { memfd_with("a"), memfd_with("b"), memfd_with("c") };

		ck_assert_int_eq(pier_received_request_send_response(rr, 18, "r", 1, fds, 3), 0);
		for (int i = 0; i < 3; i++)
			close(fds[i]);
	}
	expect_error(req, "the worker's response carries 3 fds; the broker passes at most 2");
	pier_received_request_free(rr);

	/* a stream message: dropped, and said in the log; the next, within
	 * the limit, arrives */
	ck_assert_int_eq(send_with_fds(client, 3, 3, NULL), 0);
	ck_assert_int_eq(send_with_fds(client, 3, 2, NULL), 0);
	m = expect_stream(sub, 3, "x");
	ck_assert_uint_eq(pier_msg_fd_count(m), 2);
	pier_msg_free(m);
	test_log_wait(&log, "a stream message on topic 3 was dropped: it carries 3 fds; the broker "
			    "passes at most 2", 0);

	/* 40 fds, over the library's default of 32 a message */
	big = connect_fds(address, 40);
	ck_assert_int_eq(send_with_fds(big, 18, 40, &req), 0);
	expect_error(req, "the request carries 40 fds; the broker passes at most 2");
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FD_REFUSED), 6);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_UPDATES), 0);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_RESPONSES), 0);
	pier_peer_free(big);
	pier_peer_free(sub);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* The fd budget bounds the fds the broker passes, whatever the number of
 * peers: subscribers that do not read hold at most their send_fds each,
 * and past the budget copies with fds are dropped and relays refused, with
 * an error that says so, until peers that hold some disconnect. */
START_TEST(fd_budget)
{
	struct broker_limits lim = { .send_fds = 4, .msg_fds = 2, .fd_budget = 8 };
	struct test_log log;
	char address[256];
	broker *b;
	pier_peer *subs[3], *publisher, *worker, *client;
	pier_sent_request *req;
	pier_received_request *rr;
	pier_msg *m;

	test_log_init(&log);
	b = make_broker_log(&lim, &log, address, sizeof(address));
	ck_assert_int_eq(pier_server_start(broker_server(b)), 0);
	ck_assert_uint_eq(broker_limits(b)->fd_budget, 8);
	worker = worker_of(address, 19);
	client = connect_to(address);
	publisher = connect_to(address);
	for (int i = 0; i < 3; i++)
		subs[i] = subscriber_of(address, 3);
	/* 3 subscribers x 4 fds would be 12 */
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(send_with_fds(publisher, 3, 2, NULL), 0);
	/* what went for them with 2 fds each, then a copy without fds */
	publish(publisher, 3, "no fds", -1);
	wait_until(broker_stat(b, BROKER_STAT_DELIVERED) + broker_stat(b, BROKER_STAT_DROPPED) == 15,
		   WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FDS), 8);
	ck_assert_uint_ge(broker_stat(b, BROKER_STAT_FD_REFUSED), 1);
	test_log_wait(&log, "the broker holds 8 fds for what it passes on, its budget", 0);
	/* a relay's eventfds do not fit either */
	req = send_request(client, 19, "job");
	expect_error(req, "the broker cannot relay the request: it holds as many fds as it may (8) "
			  "for what it passes on; retry later");
	for (int i = 0; i < 3; i++)
		pier_peer_free(subs[i]);
	wait_until(broker_stat(b, BROKER_STAT_FDS) == 0, WAIT);
	/* room again: a relay, with an fd each way */
	req = send_request_fd(client, 19, "job", "in");
	rr = recv_request(worker, &m);
	assert_fd_holds(m, 0, "in");
	pier_msg_free(m);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FDS), 2 + 1);
	{
		int fd = memfd_with("out");

		ck_assert_int_eq(pier_received_request_send_response(rr, 19, "done", 4, &fd, 1), 0);
		close(fd);
	}
	ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 19, "done");
	assert_fd_holds(m, 0, "out");
	pier_msg_free(m);
	pier_received_request_free(rr);
	pier_sent_request_free(req);
	/* the relay's eventfds back; the fd each side was passed stays
	 * charged while it is connected */
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);
	ck_assert_uint_eq(broker_stat(b, BROKER_STAT_FDS), 2);
	pier_peer_free(publisher);
	pier_peer_free(client);
	pier_peer_free(worker);
	wait_until(broker_stat(b, BROKER_STAT_FDS) == 0, WAIT);
	broker_free(b);
}
END_TEST

/* broker_new() raises the fd soft limit to the hard one, derives the
 * budget from it, and says so when the limits multiplied out do not fit.
 * Each test runs in a process of its own: the limits lowered here stay
 * there. */
START_TEST(fd_limit_plan)
{
	/* (64 + 253 + 4 x (1 + 4 + 253)) out of the budget, 4 x (8 + 2 x 2) in it */
	struct broker_limits small = { .workers = 1, .max_peers = 4, .max_requests = 2,
				       .send_fds = 8, .msg_fds = 4 };
	struct test_log log;
	struct rlimit rl;
	pier_config *cfg;
	broker *b;

	if (under_valgrind()) {
		fprintf(stderr, "fd_limit_plan: skipped under valgrind, which keeps the fd limit to "
				"itself\n");
		return;
	}
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 4096) {
		fprintf(stderr, "fd_limit_plan: skipped: the hard fd limit is %llu\n",
			(unsigned long long)rl.rlim_max);
		return;
	}
	rl.rlim_cur = 1024;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	test_log_init(&log);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(broker_new(&b, cfg, order, &small, test_log_collect, &log), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert(rl.rlim_cur == rl.rlim_max);
	ck_assert_uint_eq(broker_limits(b)->fd_budget, 48);
	ck_assert_uint_eq(log.n, 0);
	broker_free(b);

	/* A hard limit of 4096: the defaults do not fit. */
	rl.rlim_cur = 1024;
	rl.rlim_max = 4096;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_int_eq(broker_new(&b, cfg, order, NULL, test_log_collect, &log), 0);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	ck_assert_uint_eq(rl.rlim_cur, 4096);
	ck_assert_uint_eq(broker_limits(b)->fd_budget, 1024);
	test_log_wait(&log, "and RLIMIT_NOFILE is 4096: 1024 peers", 0);
	test_log_wait(&log, "the broker passes at most 1024 fds at once", 0);
	broker_free(b);
	/* msg_fds over send_fds */
	small.msg_fds = 9;
	ck_assert_int_eq(broker_new(&b, cfg, order, &small, NULL, NULL), -EINVAL);
	pier_config_free(cfg);
}
END_TEST

/* --- tables -------------------------------------------------------------- */

/* The topic that ends a round of publications. */
#define END_TOPIC 1000

/* How many stream messages of each topic below 256 p gets before the one
 * on END_TOPIC. */
static void topics_received(pier_peer *p, unsigned int got[256])
{
	memset(got, 0, 256 * sizeof(*got));
	for (;;) {
		pier_received_request *rr = NULL;
		pier_msg *m;
		int32_t t;
		int r = pier_peer_recv(p, &m, &rr, WAIT);

		ck_assert_msg(r == 0, "recv: %s", pier_strerror(r));
		ck_assert_ptr_null(rr);
		t = pier_msg_header(m)->service_id;
		pier_msg_free(m);
		if (t == END_TOPIC)
			return;
		ck_assert_msg(t >= 0 && t < 256, "topic %d", (int)t);
		got[t]++;
	}
}

/* A control request op of the topics t < 200 for which keep(t, k) holds,
 * in requests of up to 64 ids. */
static void control_where(pier_peer *p, int32_t op, bool (*keep)(int32_t t, int k), int k)
{
	int32_t ids[64];
	size_t n = 0;

	for (int32_t t = 0; t < 200; t++) {
		if (keep(t, k))
			ids[n++] = t;
		if (n == 64 || (t == 199 && n)) {
			control_ok(p, op, ids, n);
			n = 0;
		}
	}
}

static bool multiple_of(int32_t t, int k)
{
	return t % k == 0;
}

static bool below(int32_t t, int k)
{
	return t < k;
}

/* Subscriptions that come and go in many ways, with hundreds of ids
 * (the tables grow): each topic then reaches exactly its subscribers,
 * once each. */
START_TEST(tables_under_churn)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *subs[4], *publisher = connect_to(address);
	bool want[4][256] = { { false } };
	unsigned int got[256];
	const int32_t end = END_TOPIC;

	for (int s = 0; s < 4; s++) {
		subs[s] = connect_to(address);
		control_where(subs[s], BROKER_SUBSCRIBE, multiple_of, s + 1);
		control_ok(subs[s], BROKER_SUBSCRIBE, &end, 1);
		for (int32_t t = 0; t < 200; t++)
			want[s][t] = t % (s + 1) == 0;
	}
	/* 0 lets go of the multiples of 4 and comes back for 8's, 1 of
	 * everything below 100, 2 disconnects, 3 asks again for what it has
	 * (nothing changes) and for 7 */
	control_where(subs[0], BROKER_UNSUBSCRIBE, multiple_of, 4);
	control_where(subs[0], BROKER_SUBSCRIBE, multiple_of, 8);
	control_where(subs[1], BROKER_UNSUBSCRIBE, below, 100);
	pier_peer_free(subs[2]);
	subs[2] = NULL;
	control_where(subs[3], BROKER_SUBSCRIBE, multiple_of, 4);
	control_ok(subs[3], BROKER_SUBSCRIBE, (int32_t[]){ 7 }, 1);
	for (int32_t t = 0; t < 200; t++) {
		want[0][t] = t % 4 != 0 || t % 8 == 0;
		want[1][t] = t >= 100 && t % 2 == 0;
	}
	want[3][7] = true;
	for (int32_t t = 0; t < 200; t++)
		publish(publisher, t, "t", -1);
	publish(publisher, END_TOPIC, "end", -1);
	for (int s = 0; s < 4; s++) {
		if (!subs[s])
			continue;
		topics_received(subs[s], got);
		for (int32_t t = 0; t < 256; t++)
			ck_assert_msg(got[t] == want[s][t], "subscriber %d got %u of topic %d, "
				      "expected %d", s, got[t], (int)t, want[s][t]);
		pier_peer_free(subs[s]);
	}
	pier_peer_free(publisher);
	broker_free(b);
}
END_TEST

/* A registration that runs out of memory midway registers nothing: every
 * allocation it needs is made before anything changes.  The allocations
 * fail one after the other, then none. */
START_TEST(register_all_or_nothing)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 30), *client = connect_to(address);
	const int32_t ids[] = { 31, 32, 33 };
	int failed = 0;
	char *error;

	for (int left = 0;; left++) {
		atomic_store(&broker_test_allocs_left, left);
		error = control(worker, BROKER_REGISTER, ids, 3);
		atomic_store(&broker_test_allocs_left, -1);
		if (!error)
			break;
		ck_assert_str_eq(error, "the broker is out of memory: retry later");
		free(error);
		failed++;
		for (int i = 0; i < 3; i++) {
			char want[64];

			snprintf(want, sizeof(want), "no worker serves service id %d", (int)ids[i]);
			expect_error(send_request(client, ids[i], "x"), want);
		}
		/* what it had stays */
		{
			pier_sent_request *req = send_request(client, 30, "x");
			pier_msg *m;

			pier_received_request_free(recv_request(worker, &m));
			pier_msg_free(m);
			expect_error(req, "dropped without a response");
		}
	}
	/* new ids need a node each, room for a member each, and room among
	 * the worker's own: at least 3 steps could fail */
	ck_assert_int_ge(failed, 3);
	for (int i = 0; i < 3; i++) {
		pier_sent_request *req = send_request(client, ids[i], "x");
		pier_received_request *rr;
		pier_msg *m;

		rr = recv_request(worker, &m);
		assert_msg(m, PIER_MSG_REQUEST, ids[i], "x");
		pier_msg_free(m);
		pier_received_request_free(rr);
		expect_error(req, "the request was dropped without a response");
	}
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* --- errors that say why ------------------------------------------------- */

/* A client that does not read while its worker sends updates: the relay
 * ends, and the worker's cancel says why (the client's error response
 * goes through the very queue that is full: the client gets it, or the
 * library's "dropped without a response", once it reads). */
START_TEST(client_that_does_not_read)
{
	struct broker_limits lim = { .send_queue = 16 << 10 };
	char address[256];
	broker *b = start_broker(&lim, address, sizeof(address));
	pier_peer *worker = worker_of(address, 20), *client = connect_to(address);
	pier_sent_request *req = send_request(client, 20, "job");
	pier_received_request *rr;
	char *chunk = calloc(1, 16 << 10);
	pier_msg *m;
	int r, sent = 0;

	ck_assert_ptr_nonnull(chunk);
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	/* Far more than the client's socket and queue at the broker hold
	 * (the seqpacket socket buffer is about 512 KiB), until the broker
	 * gives up on the client. */
	while ((r = pier_received_request_recv_update(rr, &m, 0)) == -EAGAIN && sent < 200) {
		ck_assert_int_eq(pier_received_request_send_update(rr, 1, chunk, 16 << 10, NULL, 0),
				 0);
		sent++;
	}
	if (r == -EAGAIN)
		r = pier_received_request_recv_update(rr, &m, WAIT);
	ck_assert_msg(r == 0, "no cancel after %d updates: %s", sent, pier_strerror(r));
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
		   "the broker ended the request: your update could not be relayed to the client: "
		   "it does not read (its queue at the broker is full)");
	pier_msg_free(m);
	pier_received_request_free(rr);
	/* the client, reading at last: the updates that were queued, then an
	 * error response */
	while ((r = pier_sent_request_recv(req, &m, WAIT)) == 0 &&
	       pier_msg_header(m)->type == PIER_MSG_RESPONDER_UPDATE)
		pier_msg_free(m);
	ck_assert_int_eq(r, 0);
	ck_assert(pier_msg_is_error(m));
	pier_msg_free(m);
	pier_sent_request_free(req);
	free(chunk);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

/* A relay the broker cannot watch (no fd left for the eventfds of its
 * watches): the client's error response and the worker's cancel say why. */
START_TEST(cannot_watch_says_why)
{
	char address[256];
	broker *b = start_broker(NULL, address, sizeof(address));
	pier_peer *worker = worker_of(address, 21), *client = connect_to(address);
	pier_sent_request *req;
	pier_received_request *rr;
	struct rlimit saved;
	pier_msg *m;

	if (under_valgrind()) {
		fprintf(stderr, "cannot_watch_says_why: skipped under valgrind, which keeps the fd "
				"limit to itself\n");
		pier_peer_free(client);
		pier_peer_free(worker);
		broker_free(b);
		return;
	}
	/* a round trip first: each side's connection has what it waits with */
	req = send_request(client, 21, "first");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_response(rr, 21, "ok", 2, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(req, &m, WAIT), 0);
	pier_msg_free(m);
	pier_sent_request_free(req);
	pier_received_request_free(rr);
	wait_until(broker_stat(b, BROKER_STAT_RELAYS) == 0, WAIT);

	no_fd_left(&saved);
	req = send_request(client, 21, "second");
	rr = recv_request(worker, &m);
	pier_msg_free(m);
	/* tried, and given up; then the limit back, for the waits below */
	wait_until(broker_stat(b, BROKER_STAT_BROKEN) == 1, WAIT);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_REQUESTER_UPDATE, BROKER_CANCELLED,
		   "the broker ended the request: it cannot watch it: Too many open files");
	pier_msg_free(m);
	expect_error(req, "the broker cannot watch the request: Too many open files; retry later");
	pier_received_request_free(rr);
	pier_peer_free(client);
	pier_peer_free(worker);
	broker_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = th_tcase("broker", TH_TIMEOUT);
	int norders = (int)(sizeof(orders) / sizeof(orders[0]));

	tcase_add_test(tc, forwards_request_with_fds);
	tcase_add_test(tc, relays_updates_both_ways_with_fds);
	tcase_add_test(tc, relays_response);
	tcase_add_test(tc, several_workers_for_one_id);
	tcase_add_loop_test(tc, no_worker, 0, norders);
	tcase_add_test(tc, worker_dies_mid_request);
	tcase_add_test(tc, client_dies_mid_request);
	tcase_add_test(tc, topic_fan_out_with_fds);
	tcase_add_test(tc, unsubscribe);
	tcase_add_test(tc, slow_subscriber_bounded);
	tcase_add_loop_test(tc, bad_control_bodies, 0, norders);
	tcase_add_test(tc, bounds_in_flight);
	tcase_add_test(tc, stop_lets_relays_finish);
	tcase_add_test(tc, stop_cancels_workers);
	tcase_add_test(tc, response_races_client_disconnect);
	tcase_add_test(tc, reserved_ids_in_updates);
	tcase_add_test(tc, messages_over_the_fd_limit);
	tcase_add_test(tc, fd_budget);
	tcase_add_test(tc, fd_limit_plan);
	tcase_add_test(tc, tables_under_churn);
	tcase_add_test(tc, register_all_or_nothing);
	tcase_add_test(tc, client_that_does_not_read);
	tcase_add_test(tc, cannot_watch_says_why);
	suite_add_tcase(s, tc);
	return th_run(s);
}
