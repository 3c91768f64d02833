/* SPDX-License-Identifier: MIT */
/* Servers: dispatch by service id, hooks, limits, the worker pool,
 * stopping, socket activation and notifications. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include "peers.h"

enum {
	SVC_ECHO = 1,
	SVC_UPPER = 2,
	SVC_HOLD = 3,     /* waits until released, then answers */
	SVC_CHAT = 4,     /* updates both ways in the handler */
	SVC_KEEP = 5,     /* kept: answered later by the test */
	SVC_CALLBACK = 6, /* asks its caller, answers with the answer */
	SVC_FOREVER = 7,  /* waits for an update that never comes */
	SVC_ASK = 20,     /* what SVC_CALLBACK sends back */
	SVC_STREAM = 30,
	SVC_ORDERED = 31, /* stream handler: "hold" waits for an overlap */
	SVC_SUM = 40,     /* kept, its updates summed through a watch */
	SVC_SLOW = 41,    /* works for SLOW_US, then answers */
};

#define SLOW_US 200

/* What the handlers saw and do, shared with the test's thread. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int running, most_running; /* handlers running now, and at most */
	bool release;              /* SVC_HOLD handlers may answer */
	int streams;
	char last_stream[64];
	pier_received_request *kept;
	int connects, disconnects, last_reason;
	void *last_data;
	uint32_t banned_uid;
	bool ban;
	int done; /* SVC_FOREVER handlers returned */
	int forever_err;
	int ordered_running, ordered_overlaps; /* SVC_ORDERED handlers */
	char ordered[64];                      /* their bodies, in turn */
	int watch_calls, watch_status;         /* w_count() */
	int other_requests, other_streams;
} H = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void enter(void)
{
	pthread_mutex_lock(&H.mu);
	if (++H.running > H.most_running)
		H.most_running = H.running;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

static void leave(void)
{
	pthread_mutex_lock(&H.mu);
	H.running--;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

static void respond(pier_received_request *req, int32_t svc, const char *text)
{
	ck_assert_int_eq(pier_received_request_send_response(req, svc, text, strlen(text), NULL, 0),
			 0);
}

static int h_echo(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	size_t len;
	const void *b = pier_msg_body(m, &len);

	pier_received_request_send_response(req, SVC_ECHO, b, len, NULL, 0);
	return PIER_HANDLER_DONE;
}

static int h_upper(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	char buf[64] = "";
	size_t len;
	const char *b = pier_msg_body(m, &len);

	for (size_t i = 0; i < len && i < sizeof(buf) - 1; i++)
		buf[i] = (char)(b[i] >= 'a' && b[i] <= 'z' ? b[i] - 32 : b[i]);
	respond(req, SVC_UPPER, buf);
	return PIER_HANDLER_DONE;
}

static int h_hold(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	enter();
	pthread_mutex_lock(&H.mu);
	while (!H.release)
		pthread_cond_wait(&H.cond, &H.mu);
	pthread_mutex_unlock(&H.mu);
	pier_received_request_send_response(req, SVC_HOLD, "held", 4, NULL, 0);
	leave();
	return PIER_HANDLER_DONE;
}

/* A handler that waits SLOW_US for something outside the server (the
 * worker is taken, the CPU is free for the rest). */
static int h_slow(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	struct timespec t = { 0, SLOW_US * 1000 };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
	respond(req, SVC_SLOW, "slow");
	return PIER_HANDLER_DONE;
}

/* Sums the requester's updates, telling the running sum in an update
 * each time, until "end". */
static int h_chat(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	long sum = 0;
	pier_msg *u;

	while (pier_received_request_recv_update(req, &u, WAIT) == 0) {
		char buf[32] = "", out[32];
		size_t len;
		const char *b = pier_msg_body(u, &len);

		memcpy(buf, b, len < sizeof(buf) - 1 ? len : sizeof(buf) - 1);
		pier_msg_free(u);
		if (strcmp(buf, "end") == 0)
			break;
		sum += atol(buf);
		snprintf(out, sizeof(out), "%ld", sum);
		ck_assert_int_eq(pier_received_request_send_update(req, SVC_CHAT, out, strlen(out),
								   NULL, 0), 0);
	}
	respond(req, SVC_CHAT, "bye");
	return PIER_HANDLER_DONE;
}

static int h_keep(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	pthread_mutex_lock(&H.mu);
	H.kept = req;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
	return PIER_HANDLER_KEEP;
}

static int h_callback(void *ud, pier_peer *peer, void *pd, pier_msg *m,
		      pier_received_request *req)
{
	pier_sent_request *ask;
	pier_msg *answer;
	char buf[64] = "answer: ";
	size_t len;
	const char *b;

	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(peer), SVC_ASK, "who?", 4,
						  NULL, 0, &ask), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(ask, &answer, WAIT), 0);
	b = pier_msg_body(answer, &len);
	memcpy(buf + 8, b, len < 32 ? len : 32);
	respond(req, SVC_CALLBACK, buf);
	pier_msg_free(answer);
	pier_sent_request_free(ask);
	return PIER_HANDLER_DONE;
}

static int h_forever(void *ud, pier_peer *peer, void *pd, pier_msg *m,
		     pier_received_request *req)
{
	pier_msg *u;
	int r;

	enter();
	r = pier_received_request_recv_update(req, &u, -1);
	if (r == 0)
		pier_msg_free(u);
	pthread_mutex_lock(&H.mu);
	H.done++;
	H.forever_err = r;
	pthread_mutex_unlock(&H.mu);
	leave();
	return PIER_HANDLER_DONE;
}

static void h_stream(void *ud, pier_peer *peer, void *pd, pier_msg *m)
{
	size_t len;
	const char *b = pier_msg_body(m, &len);

	pthread_mutex_lock(&H.mu);
	H.streams++;
	snprintf(H.last_stream, sizeof(H.last_stream), "%.*s", (int)len, b);
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

/* Stream messages of one peer, one at a time: the handler of "hold"
 * waits a while for another of them to start (which would be an
 * overlap). */
static void h_ordered(void *ud, pier_peer *peer, void *pd, pier_msg *m)
{
	size_t len;
	const char *b = pier_msg_body(m, &len);
	struct timespec until = deadline_in(300);

	pthread_mutex_lock(&H.mu);
	if (H.ordered_running++)
		H.ordered_overlaps++;
	pthread_cond_broadcast(&H.cond);
	strncat(H.ordered, b, len < 8 ? len : 8);
	if (len == 4 && memcmp(b, "hold", 4) == 0)
		while (H.ordered_running == 1 &&
		       pthread_cond_timedwait(&H.cond, &H.mu, &until) != ETIMEDOUT)
			;
	H.ordered_running--;
	pthread_mutex_unlock(&H.mu);
}

static int h_other(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	char out[32];

	pthread_mutex_lock(&H.mu);
	H.other_requests++;
	pthread_mutex_unlock(&H.mu);
	snprintf(out, sizeof(out), "other %d", (int)pier_msg_header(m)->service_id);
	respond(req, pier_msg_header(m)->service_id, out);
	return PIER_HANDLER_DONE;
}

static void h_other_stream(void *ud, pier_peer *peer, void *pd, pier_msg *m)
{
	pthread_mutex_lock(&H.mu);
	H.other_streams++;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

/* SVC_SUM: the request is kept, and a watch on its fd adds up its
 * updates as they come, holding no worker between them. */
struct sum {
	pier_server *s;
	pier_received_request *req;
	long total;
};

static void w_sum(void *ud, int status)
{
	struct sum *sum = ud;
	pier_msg *u;
	int r;

	while (status == 0 && (r = pier_received_request_recv_update(sum->req, &u, 0)) == 0) {
		char buf[32] = "";
		size_t len;
		const char *b = pier_msg_body(u, &len);

		memcpy(buf, b, len < sizeof(buf) - 1 ? len : sizeof(buf) - 1);
		pier_msg_free(u);
		if (strcmp(buf, "end") == 0) {
			snprintf(buf, sizeof(buf), "%ld", sum->total);
			respond(sum->req, SVC_SUM, buf);
			break;
		}
		sum->total += atol(buf);
	}
	if (status == 0 && r == -EAGAIN &&
	    pier_server_watch(sum->s, pier_received_request_fd(sum->req), w_sum, sum, NULL) == 0)
		return;
	pier_received_request_free(sum->req);
	free(sum);
}

static int h_sum(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	struct sum *sum = calloc(1, sizeof(*sum));

	ck_assert_ptr_nonnull(sum);
	sum->s = ud;
	sum->req = req;
	ck_assert_int_eq(pier_server_watch(sum->s, pier_received_request_fd(req), w_sum, sum, NULL),
			 0);
	return PIER_HANDLER_KEEP;
}

static void w_count(void *ud, int status)
{
	pthread_mutex_lock(&H.mu);
	H.watch_calls++;
	H.watch_status = status;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

static int on_connect(void *ud, pier_peer *peer, void **pd)
{
	uint32_t uid = 0;
	bool banned;

	pthread_mutex_lock(&H.mu);
	H.connects++;
	banned = pier_peer_credentials(peer, NULL, &uid, NULL) == 0 && H.ban &&
		 uid == H.banned_uid;
	pthread_mutex_unlock(&H.mu);
	if (banned)
		return -EACCES;
	*pd = ud;
	return 0;
}

static void on_disconnect(void *ud, pier_peer *peer, void *pd, int reason)
{
	pthread_mutex_lock(&H.mu);
	H.disconnects++;
	H.last_reason = reason;
	H.last_data = pd;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

#define WAIT_H(what)                                                                      \
	do {                                                                              \
		pthread_mutex_lock(&H.mu);                                                \
		struct timespec wh_ = deadline_in(WAIT);                                  \
		while (!(what))                                                           \
			ck_assert_msg(pthread_cond_timedwait(&H.cond, &H.mu, &wh_) != ETIMEDOUT \
				      || (what), "waited in vain for %s", #what);          \
		pthread_mutex_unlock(&H.mu);                                              \
	} while (0)

static void release_all(void)
{
	pthread_mutex_lock(&H.mu);
	H.release = true;
	pthread_cond_broadcast(&H.cond);
	pthread_mutex_unlock(&H.mu);
}

static struct test_log slog;

/* A server with every test handler, listening on a Unix socket, not
 * started; *address is where. */
static pier_server *make_server(char *address, size_t len)
{
	static unsigned int n;
	pier_config *cfg;
	pier_server *s;
	char path[128];

	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&H.cond, &ca);
	pthread_condattr_destroy(&ca);
	test_log_init(&slog);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_log(cfg, test_log_collect, &slog), 0);
	ck_assert_int_eq(pier_server_new(&s, cfg), 0);
	pier_config_free(cfg);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_ECHO, h_echo, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_UPPER, h_upper, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_HOLD, h_hold, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_CHAT, h_chat, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_KEEP, h_keep, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_CALLBACK, h_callback, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_FOREVER, h_forever, NULL), 0);
	ck_assert_int_eq(pier_server_handle_streams(s, SVC_STREAM, h_stream, NULL), 0);
	ck_assert_int_eq(pier_server_handle_streams(s, SVC_ORDERED, h_ordered, NULL), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_SUM, h_sum, s), 0);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_SLOW, h_slow, NULL), 0);
	snprintf(path, sizeof(path), "unix:///tmp/pier-server-%u-%d-%u.sock", (unsigned int)getuid(),
		 (int)getpid(), n++);
	ck_assert_int_eq(pier_server_listen(s, path), 0);
	ck_assert_int_eq(pier_server_address(s, 0, address, len), 0);
	return s;
}

static pier_peer *client(const char *address)
{
	pier_peer *p;
	int r = pier_peer_connect(&p, address, NULL);

	ck_assert_msg(r == 0, "connect %s: %s", address, pier_strerror(r));
	return p;
}

/* The response (or error response) of req, checked, and req freed. */
static void expect(pier_sent_request *req, int32_t svc, const char *body)
{
	pier_msg *m;
	int r = pier_sent_request_recv_response(req, &m, WAIT);

	ck_assert_msg(r == 0, "response: %s", pier_strerror(r));
	assert_msg(m, PIER_MSG_RESPONSE, svc, body);
	pier_msg_free(m);
	pier_sent_request_free(req);
}

static void call(pier_peer *p, int32_t svc, const char *body, int32_t rsvc, const char *rbody)
{
	expect(send_request(p, svc, body), rsvc, rbody);
}

/* The threads of this process. */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

START_TEST(dispatch_by_service_id)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_peer *p;

	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	call(p, SVC_ECHO, "hello", SVC_ECHO, "hello");
	call(p, SVC_UPPER, "hello", SVC_UPPER, "HELLO");
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), SVC_STREAM, "s1", 2, NULL, 0),
			 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), SVC_STREAM, "s2", 2, NULL, 0),
			 0);
	WAIT_H(H.streams == 2);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_REQUESTS), 2);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_STREAMS), 2);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_PEERS), 1);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

START_TEST(unknown_service_ids)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_peer *p;

	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	call(p, 99, "x", PIER_SERVICE_ERROR, "unknown service id 99");
	call(p, -7, "x", PIER_SERVICE_ERROR, "unknown service id -7");
	/* A stream message's id is not a request's: no request handler
	 * takes it, and it is dropped, counted and logged. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), SVC_ECHO, "lost", 4, NULL,
						 0), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), SVC_STREAM, "kept", 4,
						 NULL, 0), 0);
	WAIT_H(H.streams == 1);
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_UNKNOWN_STREAMS) == 1, WAIT);
	test_log_wait(&slog, "stream message for unknown service id 1 from", 0);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_UNKNOWN_REQUESTS), 2);
	ck_assert_str_eq(H.last_stream, "kept");
	/* and the peer is served as before */
	call(p, SVC_ECHO, "still", SVC_ECHO, "still");
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* The handlers for ids without one of their own take what the others
 * do not. */
START_TEST(other_handlers)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_peer *p;

	ck_assert_int_eq(pier_server_handle_other_requests(s, h_other, NULL), 0);
	ck_assert_int_eq(pier_server_handle_other_requests(s, h_other, NULL), -EEXIST);
	ck_assert_int_eq(pier_server_handle_other_streams(s, h_other_stream, NULL), 0);
	ck_assert_int_eq(pier_server_handle_other_streams(s, h_other_stream, NULL), -EEXIST);
	ck_assert_int_eq(pier_server_start(s), 0);
	ck_assert_int_eq(pier_server_handle_other_requests(s, h_other, NULL), -EBUSY);
	p = client(address);
	call(p, 99, "x", 99, "other 99");
	call(p, -7, "x", -7, "other -7");
	call(p, SVC_ECHO, "mine", SVC_ECHO, "mine");
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), 77, "o", 1, NULL, 0), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), SVC_STREAM, "s", 1, NULL,
						 0), 0);
	WAIT_H(H.other_streams == 1 && H.streams == 1);
	ck_assert_int_eq(H.other_requests, 2);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_UNKNOWN_REQUESTS), 0);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_UNKNOWN_STREAMS), 0);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* One peer's stream messages are handled one at a time, in the order
 * sent, however many workers are free. */
START_TEST(streams_in_order)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_writer *w;
	pier_peer *p;

	ck_assert_int_eq(pier_server_set_workers(s, 4), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	w = pier_peer_get_writer(p);
	ck_assert_int_eq(pier_writer_send_stream(w, SVC_ORDERED, "hold", 4, NULL, 0), 0);
	for (char c = 'a'; c <= 'h'; c++)
		ck_assert_int_eq(pier_writer_send_stream(w, SVC_ORDERED, &c, 1, NULL, 0), 0);
	WAIT_H(strlen(H.ordered) == 12);
	ck_assert_str_eq(H.ordered, "holdabcdefgh");
	ck_assert_int_eq(H.ordered_overlaps, 0);
	/* and requests still run beside a stream handler */
	call(p, SVC_ECHO, "x", SVC_ECHO, "x");
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* A kept request's updates are handled through a watch on its fd: with
 * one worker, other requests are served while it waits for them. */
START_TEST(watch_kept_request)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *req[3];
	pier_peer *p;

	ck_assert_int_eq(pier_server_set_workers(s, 1), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	for (int i = 0; i < 3; i++)
		req[i] = send_request(p, SVC_SUM, "");
	call(p, SVC_ECHO, "free", SVC_ECHO, "free");
	for (int v = 1; v <= 4; v++)
		for (int i = 0; i < 3; i++) {
			char b[8];

			snprintf(b, sizeof(b), "%d", v * (i + 1));
			ck_assert_int_eq(pier_sent_request_send_update(req[i], SVC_SUM, b, strlen(b),
								       NULL, 0), 0);
			call(p, SVC_ECHO, "still", SVC_ECHO, "still");
		}
	for (int i = 0; i < 3; i++) {
		char want[8];

		ck_assert_int_eq(pier_sent_request_send_update(req[i], SVC_SUM, "end", 3, NULL, 0), 0);
		snprintf(want, sizeof(want), "%d", 10 * (i + 1));
		expect(req[i], SVC_SUM, want);
	}
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_IN_FLIGHT) == 0, WAIT);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* A watch cancelled does not run (and its fd may be watched again); one
 * left when the server stops runs with -PIER_ESHUTDOWN; none is taken
 * after. */
START_TEST(watch_cancel_and_stop)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), quiet = eventfd(0, EFD_CLOEXEC);
	uint64_t id, id2, one = 1;

	ck_assert_int_ge(efd, 0);
	ck_assert_int_ge(quiet, 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	ck_assert_int_eq(pier_server_watch(s, efd, w_count, NULL, &id), 0);
	ck_assert_uint_ne(id, 0);
	ck_assert_int_eq(pier_server_watch(s, efd, w_count, NULL, NULL), -EEXIST);
	ck_assert_int_eq(pier_server_unwatch(s, id), 0);
	ck_assert_int_eq(pier_server_unwatch(s, id), -ENOENT);
	ck_assert_int_eq(pier_server_watch(s, efd, w_count, NULL, &id2), 0);
	ck_assert_uint_ne(id2, id);
	ck_assert_int_eq(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
	WAIT_H(H.watch_calls == 1);
	ck_assert_int_eq(H.watch_status, 0);
	ck_assert_int_eq(pier_server_unwatch(s, id2), -ENOENT);
	/* readable still: a new watch runs at once */
	ck_assert_int_eq(pier_server_watch(s, efd, w_count, NULL, NULL), 0);
	WAIT_H(H.watch_calls == 2);
	ck_assert_int_eq(pier_server_watch(s, quiet, w_count, NULL, NULL), 0);
	ck_assert_int_eq(pier_server_stop(s), 0);
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	ck_assert_int_eq(H.watch_calls, 3);
	ck_assert_int_eq(H.watch_status, -PIER_ESHUTDOWN);
	ck_assert_int_eq(pier_server_watch(s, quiet, w_count, NULL, NULL), -PIER_ESHUTDOWN);
	ck_assert_int_eq(pier_server_watch(NULL, quiet, w_count, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_unwatch(s, 0), -EINVAL);
	pier_server_free(s);
	close(efd);
	close(quiet);
}
END_TEST

/* A handler exchanges updates both ways on a request it holds. */
START_TEST(updates_both_ways)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *req;
	pier_peer *p;
	pier_msg *m;

	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	req = send_request(p, SVC_CHAT, "");
	for (int i = 1; i <= 3; i++) {
		char v[8], sum[8];

		snprintf(v, sizeof(v), "%d", i);
		snprintf(sum, sizeof(sum), "%d", i * (i + 1) / 2);
		ck_assert_int_eq(pier_sent_request_send_update(req, SVC_CHAT, v, strlen(v), NULL, 0),
				 0);
		ck_assert_int_eq(pier_sent_request_recv_update(req, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONDER_UPDATE, SVC_CHAT, sum);
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_sent_request_send_update(req, SVC_CHAT, "end", 3, NULL, 0), 0);
	expect(req, SVC_CHAT, "bye");
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* A handler keeps the request; another thread answers it later, and the
 * peer is served meanwhile. */
START_TEST(kept_request)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *req;
	pier_received_request *kept;
	pier_peer *p;
	pier_msg *m;

	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	req = send_request(p, SVC_KEEP, "later");
	WAIT_H(H.kept != NULL);
	kept = H.kept;
	call(p, SVC_ECHO, "meanwhile", SVC_ECHO, "meanwhile");
	/* (a request stops counting once its response is sent: just after
	 * the client may have it) */
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_IN_FLIGHT) == 1, WAIT);
	ck_assert_int_eq(pier_received_request_send_update(kept, SVC_KEEP, "soon", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_update(req, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONDER_UPDATE, SVC_KEEP, "soon");
	pier_msg_free(m);
	respond(kept, SVC_KEEP, "now");
	pier_received_request_free(kept);
	expect(req, SVC_KEEP, "now");
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_IN_FLIGHT) == 0, WAIT);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* A handler sends a request back to the peer that called it, on the same
 * connection, and answers with what it heard. */
START_TEST(handler_calls_back)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_received_request *ask;
	pier_sent_request *req;
	pier_peer *p;
	pier_msg *m;

	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	req = send_request(p, SVC_CALLBACK, "");
	ask = recv_request(p, &m);
	assert_msg(m, PIER_MSG_REQUEST, SVC_ASK, "who?");
	pier_msg_free(m);
	respond(ask, SVC_ASK, "me");
	pier_received_request_free(ask);
	expect(req, SVC_CALLBACK, "answer: me");
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* The connect hook refuses peers by their credentials; the disconnect
 * hook hears of the others, with what the connect hook set. */
START_TEST(access_by_credentials)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	static int token;
	pier_peer *p;
	pier_msg *m;
	pier_received_request *rr;

	ck_assert_int_eq(pier_server_set_peer_hooks(s, on_connect, on_disconnect, &token), 0);
	H.ban = true;
	H.banned_uid = getuid();
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	/* turned away: the connection ends */
	ck_assert_int_eq(pier_peer_recv(p, &m, &rr, WAIT), -PIER_ECLOSED);
	pier_peer_free(p);
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_REFUSED_PEERS) == 1, WAIT);
	ck_assert_int_eq(H.disconnects, 0); /* never served: nothing to hear */

	pthread_mutex_lock(&H.mu);
	H.banned_uid = getuid() + 1;
	pthread_mutex_unlock(&H.mu);
	p = client(address);
	call(p, SVC_ECHO, "welcome", SVC_ECHO, "welcome");
	pier_peer_free(p);
	WAIT_H(H.disconnects == 1);
	ck_assert_int_eq(H.last_reason, -PIER_ECLOSED);
	ck_assert_ptr_eq(H.last_data, &token);
	ck_assert_int_eq(H.connects, 2);
	pier_server_free(s);
}
END_TEST

START_TEST(max_peers)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_peer *a, *b, *c;
	pier_received_request *rr;
	pier_msg *m;

	ck_assert_int_eq(pier_server_set_max_peers(s, 2), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	a = client(address);
	call(a, SVC_ECHO, "a", SVC_ECHO, "a");
	b = client(address);
	call(b, SVC_ECHO, "b", SVC_ECHO, "b");
	c = client(address);
	ck_assert_int_eq(pier_peer_recv(c, &m, &rr, WAIT), -PIER_ECLOSED);
	test_log_wait(&slog, "closed: the server serves 2 peers, its limit", 0);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_FULL), 1);
	pier_peer_free(c);
	/* one goes: there is room again */
	pier_peer_free(a);
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_PEERS) == 1, WAIT);
	c = client(address);
	call(c, SVC_ECHO, "c", SVC_ECHO, "c");
	pier_peer_free(b);
	pier_peer_free(c);
	pier_server_free(s);
}
END_TEST

/* Over the limit of requests in flight, a peer gets an error response at
 * once, however many it sends, and the server keeps nothing for them. */
START_TEST(max_requests_in_flight)
{
	enum { FLOOD = 2000 };
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *held[2], **flood = calloc(FLOOD, sizeof(*flood));
	pier_peer *p;

	ck_assert_int_eq(pier_server_set_workers(s, 4), 0);
	ck_assert_int_eq(pier_server_set_max_requests(s, 2), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	held[0] = send_request(p, SVC_HOLD, "");
	held[1] = send_request(p, SVC_HOLD, "");
	WAIT_H(H.running == 2);
	for (int i = 0; i < FLOOD; i++)
		flood[i] = send_request(p, SVC_ECHO, "more");
	for (int i = 0; i < FLOOD; i++)
		expect(flood[i], PIER_SERVICE_ERROR, "too many requests in flight (limit 2)");
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_OVER_LIMIT), FLOOD);
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_IN_FLIGHT) == 2, WAIT);
	release_all();
	expect(held[0], SVC_HOLD, "held");
	expect(held[1], SVC_HOLD, "held");
	/* answered, they no longer count */
	call(p, SVC_ECHO, "again", SVC_ECHO, "again");
	free(flood);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* A worker takes a peer's messages one after another; a request whose
 * handler runs long gives the peer's next ones to another worker: those
 * sent behind it on the same connection are answered while it runs. */
START_TEST(long_request_does_not_hold_up_next)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *held, *next[4];
	pier_peer *p;

	ck_assert_int_eq(pier_server_set_workers(s, 2), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	/* Sent back to back: the server reads them together, and one
	 * worker takes them in order. */
	held = send_request(p, SVC_HOLD, "");
	for (int i = 0; i < 4; i++)
		next[i] = send_request(p, SVC_ECHO, "next");
	for (int i = 0; i < 4; i++)
		expect(next[i], SVC_ECHO, "next");
	pthread_mutex_lock(&H.mu);
	ck_assert_int_eq(H.running, 1); /* still held */
	pthread_mutex_unlock(&H.mu);
	release_all();
	expect(held, SVC_HOLD, "held");
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* Keeps FLOOD_DEPTH slow requests in flight on its peer until told. */
#define FLOOD_DEPTH 16
struct flood {
	pier_peer *p;
	atomic_bool stop;
	long answered;
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	pier_sent_request *ring[FLOOD_DEPTH];
	unsigned int i = 0;

	for (int k = 0; k < FLOOD_DEPTH; k++)
		ring[k] = send_request(f->p, SVC_SLOW, "");
	while (!atomic_load(&f->stop)) {
		expect(ring[i], SVC_SLOW, "slow");
		f->answered++;
		ring[i] = send_request(f->p, SVC_SLOW, "");
		i = (i + 1) % FLOOD_DEPTH;
	}
	for (int k = 0; k < FLOOD_DEPTH; k++)
		expect(ring[(i + k) % FLOOD_DEPTH], SVC_SLOW, "slow");
	return NULL;
}

/* Peers that always have work for the only worker do not keep the server
 * from accepting and serving another. */
START_TEST(busy_workers_still_accept)
{
	enum { FLOODS = 4 };
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	struct flood f[FLOODS] = { 0 };
	pthread_t t[FLOODS];
	pier_peer *q;

	ck_assert_int_eq(pier_server_set_workers(s, 1), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	for (int i = 0; i < FLOODS; i++) {
		f[i].p = client(address);
		ck_assert_int_eq(pthread_create(&t[i], NULL, flood_main, &f[i]), 0);
	}
	wait_until(pier_server_stat(s, PIER_SERVER_STAT_REQUESTS) >= FLOODS * FLOOD_DEPTH, WAIT);
	q = client(address);
	call(q, SVC_ECHO, "me too", SVC_ECHO, "me too");
	for (int i = 0; i < FLOODS; i++) {
		atomic_store(&f[i].stop, true);
		pthread_join(t[i], NULL);
		pier_peer_free(f[i].p);
	}
	pier_peer_free(q);
	pier_server_free(s);
}
END_TEST

/* However many peers send however many requests, the server runs its
 * workers and its loop, no more threads; and as many handlers at once as
 * it has workers. */
START_TEST(worker_pool_bound)
{
	enum { PEERS = 8, EACH = 16 };
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *reqs[PEERS][EACH];
	pier_peer *p[PEERS];
	int before, during;

	ck_assert_int_eq(pier_server_set_workers(s, 2), 0);
	ck_assert_int_eq(pier_server_set_max_requests(s, EACH), 0);
	before = thread_count();
	ck_assert_int_eq(pier_server_start(s), 0);
	for (int i = 0; i < PEERS; i++) {
		p[i] = client(address);
		for (int k = 0; k < EACH; k++)
			reqs[i][k] = send_request(p[i], SVC_HOLD, "");
	}
	WAIT_H(H.running == 2);
	/* Give every peer's requests time to reach the server: its
	 * handlers still run two at a time. */
	wait_until(pier_peer_stat(p[PEERS - 1], PIER_STAT_MSGS_SENT) == EACH, WAIT);
	during = thread_count();
	/* the workers, the server's loop thread, and each client's loop */
	ck_assert_int_le(during, before + 2 + 1 + PEERS);
	ck_assert_int_eq(H.most_running, 2);
	release_all();
	for (int i = 0; i < PEERS; i++)
		for (int k = 0; k < EACH; k++)
			expect(reqs[i][k], SVC_HOLD, "held");
	ck_assert_int_eq(H.most_running, 2);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_REQUESTS), PEERS * EACH);
	for (int i = 0; i < PEERS; i++)
		pier_peer_free(p[i]);
	pier_server_free(s);
	/* and its loop, which ran before it started, is gone too */
	ck_assert_int_eq(thread_count(), before - 1);
}
END_TEST

/* Stopping under load: requests in flight finish within the stop timeout
 * or end with its error; new requests are refused; every handler returns
 * and every peer goes. */
START_TEST(stop_under_load)
{
	enum { PEERS = 4, EACH = 8 };
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *quick[PEERS][EACH], *forever[PEERS];
	pier_peer *p[PEERS];
	pier_msg *m;

	ck_assert_int_eq(pier_server_set_workers(s, PEERS + 1), 0);
	ck_assert_int_eq(pier_server_set_stop_timeout(s, 300), 0);
	ck_assert_int_eq(pier_server_set_peer_hooks(s, NULL, on_disconnect, NULL), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	for (int i = 0; i < PEERS; i++) {
		p[i] = client(address);
		forever[i] = send_request(p[i], SVC_FOREVER, "");
	}
	WAIT_H(H.running == PEERS);
	for (int i = 0; i < PEERS; i++)
		for (int k = 0; k < EACH; k++)
			quick[i][k] = send_request(p[i], SVC_ECHO, "q");
	ck_assert_int_eq(pier_server_stop(s), 0);
	/* Each quick request was answered, or refused by the stop. */
	for (int i = 0; i < PEERS; i++) {
		for (int k = 0; k < EACH; k++) {
			size_t len;
			const char *b;

			ck_assert_int_eq(pier_sent_request_recv_response(quick[i][k], &m, WAIT), 0);
			b = pier_msg_body(m, &len);
			ck_assert_msg((pier_msg_header(m)->service_id == SVC_ECHO && len == 1) ||
					      (pier_msg_is_error(m) &&
					       strncmp(b, "the server is shutting down", len) == 0),
				      "got %.*s", (int)len, b);
			pier_msg_free(m);
			pier_sent_request_free(quick[i][k]);
		}
	}
	/* Those that would not finish end with the stop's error. */
	for (int i = 0; i < PEERS; i++)
		expect(forever[i], PIER_SERVICE_ERROR,
		       "the server stopped before the request finished (stop timeout 300 ms)");
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	ck_assert_int_eq(H.done, PEERS);
	ck_assert_int_eq(H.forever_err, -PIER_EDONE);
	ck_assert_int_eq(H.disconnects, PEERS);
	ck_assert_int_eq(H.last_reason, -PIER_ESHUTDOWN);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_STOPPED_REQUESTS), PEERS);
	/* No more accepting. */
	{
		pier_peer *late;

		ck_assert_int_lt(pier_peer_connect(&late, address, NULL), 0);
	}
	for (int i = 0; i < PEERS; i++) {
		pier_received_request *rr;

		ck_assert_int_eq(pier_peer_recv(p[i], &m, &rr, WAIT), -PIER_ECLOSED);
		pier_peer_free(p[i]);
	}
	pier_server_free(s);
}
END_TEST

/* Requests that finish before the timeout are not cut: the stop waits for
 * them, and no more. */
START_TEST(stop_waits_for_requests)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	pier_sent_request *req;
	pier_peer *p;

	ck_assert_int_eq(pier_server_set_stop_timeout(s, -1), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	req = send_request(p, SVC_HOLD, "");
	WAIT_H(H.running == 1);
	ck_assert_int_eq(pier_server_stop(s), 0);
	ck_assert_int_eq(pier_server_wait(s, 0), -EAGAIN);
	call(p, SVC_ECHO, "late", PIER_SERVICE_ERROR, "the server is shutting down");
	ck_assert_int_eq(pier_server_wait(s, 50), -ETIMEDOUT);
	release_all();
	expect(req, SVC_HOLD, "held");
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

static pier_server *signalled;

static void on_sigterm(int sig)
{
	pier_server_stop(signalled);
}

START_TEST(stop_on_signal)
{
	char address[256];
	pier_server *s = make_server(address, sizeof(address));
	struct sigaction sa = { .sa_handler = on_sigterm };
	pier_peer *p;

	signalled = s;
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGTERM, &sa, NULL), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	p = client(address);
	call(p, SVC_ECHO, "x", SVC_ECHO, "x");
	ck_assert_int_eq(kill(getpid(), SIGTERM), 0);
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	pier_peer_free(p);
	pier_server_free(s);
}
END_TEST

/* --- socket activation --------------------------------------------------- */

/* A listening (or not) socket of the given kind, as fd 3. */
static void socket_at_3(int domain, int type, bool listening, const char *path)
{
	int fd = socket(domain, type, 0);

	ck_assert_int_ge(fd, 0);
	if (domain == AF_UNIX && path) {
		struct sockaddr_un un = { .sun_family = AF_UNIX };

		strcpy(un.sun_path, path);
		unlink(path);
		ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	}
	if (listening)
		ck_assert_int_eq(listen(fd, 16), 0);
	if (fd != 3) {
		ck_assert_int_eq(dup2(fd, 3), 3);
		close(fd);
	}
}

/* In a child: fd 3 as made, the variables set; what
 * pier_server_listen_activated() returns, and whether the child then
 * serves on it, told by its exit status. */
static int activated_child(int domain, int type, bool listening, const char *pid_s,
			   const char *name)
{
	char path[108];
	pid_t pid;
	int status;

	snprintf(path, sizeof(path), "/tmp/pier-activated-%u-%d.sock", (unsigned int)getuid(),
		 (int)getpid());
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char me[16], address[128];
		pier_server *s;
		pier_peer *p;
		int r;

		socket_at_3(domain, type, listening, domain == AF_UNIX ? path : NULL);
		snprintf(me, sizeof(me), "%d", (int)getpid());
		setenv("LISTEN_PID", pid_s ? pid_s : me, 1);
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_FDNAMES", "api", 1);
		if (pier_server_new(&s, NULL) < 0 ||
		    pier_server_handle_requests(s, SVC_UPPER, h_upper, NULL) < 0)
			_exit(100);
		r = pier_server_listen_activated(s, name, 1);
		if (getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
			_exit(101);
		if (r != 1)
			_exit(r < 0 ? -r % 100 : 50 + r);
		if (pier_server_start(s) < 0)
			_exit(102);
		snprintf(address, sizeof(address), "%s://%s",
			 type == SOCK_SEQPACKET ? "seqpacket" : "unix", path);
		if (pier_peer_connect(&p, address, NULL) < 0)
			_exit(103);
		{
			pier_sent_request *req;
			pier_msg *m;
			size_t len;
			const char *b;

			if (pier_writer_send_request(pier_peer_get_writer(p), SVC_UPPER, "ok", 2,
						     NULL, 0, &req) < 0 ||
			    pier_sent_request_recv_response(req, &m, WAIT) < 0)
				_exit(104);
			b = pier_msg_body(m, &len);
			if (len != 2 || memcmp(b, "OK", 2) != 0)
				_exit(105);
			pier_msg_free(m);
			pier_sent_request_free(req);
		}
		pier_peer_free(p);
		pier_server_free(s);
		unlink(path);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	unlink(path);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

START_TEST(socket_activation)
{
	/* served: stream and seqpacket sockets, by any name or by theirs */
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_STREAM, true, NULL, NULL), 0);
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_SEQPACKET, true, NULL, "api"), 0);
	/* not for this process, or by another name: none taken */
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_STREAM, true, "1", NULL), 50);
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_STREAM, true, NULL, "other"), 50);
	/* refused, each with its reason */
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_STREAM, false, NULL, NULL), EINVAL);
	ck_assert_int_eq(activated_child(AF_INET, SOCK_DGRAM, false, NULL, NULL), EPROTONOSUPPORT);
	ck_assert_int_eq(activated_child(AF_UNIX, SOCK_STREAM, true, "12x", NULL), EINVAL);
}
END_TEST

/* Without the variables, nothing is taken, and that is no error. */
START_TEST(no_activation)
{
	pier_server *s;

	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	ck_assert_int_eq(pier_server_new(&s, NULL), 0);
	ck_assert_int_eq(pier_server_listen_activated(s, NULL, 0), 0);
	pier_server_free(s);
}
END_TEST

/* --- notifications ------------------------------------------------------- */

static void recv_notification(int fd, const char *want)
{
	char buf[512];
	ssize_t n;

	n = recv(fd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_msg(strstr(buf, want) != NULL, "notification \"%s\" lacks \"%s\"", buf, want);
}

/* A datagram socket bound to name (a path, or @abstract), with a receive
 * timeout. */
static int notify_socket(const char *name)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct timeval tv = { WAIT / 1000, 0 };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	strcpy(un.sun_path, name);
	if (name[0] == '@')
		un.sun_path[0] = '\0';
	else
		unlink(name);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, len), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	return fd;
}

START_TEST(notifications)
{
	char name[108], address[256];
	pier_server *s;
	int fd;

	/* an abstract name, then a path */
	snprintf(name, sizeof(name), "@pier-notify-%d", (int)getpid());
	fd = notify_socket(name);
	setenv("NOTIFY_SOCKET", name, 1);
	s = make_server(address, sizeof(address));
	ck_assert_int_eq(pier_server_start(s), 0);
	recv_notification(fd, "READY=1");
	ck_assert_int_eq(pier_server_stop(s), 0);
	recv_notification(fd, "STOPPING=1");
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	pier_server_free(s);
	close(fd);

	snprintf(name, sizeof(name), "/tmp/pier-notify-%u-%d", (unsigned int)getuid(), (int)getpid());
	fd = notify_socket(name);
	setenv("NOTIFY_SOCKET", name, 1);
	ck_assert_int_eq(pier_notify("STATUS=testing"), 1);
	recv_notification(fd, "STATUS=testing");
	close(fd);
	unlink(name);
	/* nobody there */
	ck_assert_int_eq(pier_notify("READY=1"), -ENOENT);
	setenv("NOTIFY_SOCKET", "vsock:2:1", 1);
	ck_assert_int_eq(pier_notify("READY=1"), -EAFNOSUPPORT);
	unsetenv("NOTIFY_SOCKET");
	ck_assert_int_eq(pier_notify("READY=1"), 0);
	ck_assert_int_eq(pier_notify(NULL), -EINVAL);
	ck_assert_int_eq(pier_notify(""), -EINVAL);
}
END_TEST

/* --- arguments ----------------------------------------------------------- */

START_TEST(invalid_arguments)
{
	char address[256], buf[8];
	pier_server *s = make_server(address, sizeof(address));

	ck_assert_int_eq(pier_server_new(NULL, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_set_workers(NULL, 1), -EINVAL);
	ck_assert_int_eq(pier_server_set_max_peers(NULL, 1), -EINVAL);
	ck_assert_int_eq(pier_server_set_max_requests(NULL, 1), -EINVAL);
	ck_assert_int_eq(pier_server_set_max_requests(s, 0), -EINVAL);
	ck_assert_int_eq(pier_server_set_stop_timeout(s, -2), -EINVAL);
	ck_assert_int_eq(pier_server_set_peer_hooks(NULL, NULL, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_handle_requests(s, 1, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_handle_requests(NULL, 1, h_echo, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_handle_requests(s, PIER_SERVICE_ERROR, h_echo, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_handle_requests(s, SVC_ECHO, h_echo, NULL), -EEXIST);
	ck_assert_int_eq(pier_server_handle_streams(s, SVC_STREAM, h_stream, NULL), -EEXIST);
	ck_assert_int_eq(pier_server_handle_streams(s, 1, NULL, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_listen(s, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_listen(NULL, "unix:///tmp/x"), -EINVAL);
	ck_assert_int_eq(pier_server_listen(s, "bogus"), -EINVAL);
	ck_assert_int_eq(pier_server_listen_activated(NULL, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_server_address(s, 1, buf, sizeof(buf)), -ENOENT);
	ck_assert_int_eq(pier_server_address(s, 0, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_server_address(s, 0, buf, sizeof(buf)), -ENAMETOOLONG);
	ck_assert_int_eq(pier_server_wait(s, WAIT), -EINVAL); /* not started */
	ck_assert_int_eq(pier_server_start(NULL), -EINVAL);
	ck_assert_int_eq(pier_server_stop(NULL), -EINVAL);
	ck_assert_int_eq(pier_server_wait(NULL, 0), -EINVAL);
	ck_assert_uint_eq(pier_server_stat(NULL, PIER_SERVER_STAT_PEERS), 0);
	ck_assert_uint_eq(pier_server_stat(s, PIER_SERVER_STAT_END_), 0);
	ck_assert_int_eq(pier_listener_adopt(NULL, 0, NULL), -EINVAL);
	ck_assert_int_eq(pier_server_start(s), 0);
	/* settings belong before the start */
	ck_assert_int_eq(pier_server_start(s), -EBUSY);
	ck_assert_int_eq(pier_server_set_workers(s, 1), -EBUSY);
	ck_assert_int_eq(pier_server_set_max_peers(s, 1), -EBUSY);
	ck_assert_int_eq(pier_server_set_max_requests(s, 1), -EBUSY);
	ck_assert_int_eq(pier_server_set_stop_timeout(s, 1), -EBUSY);
	ck_assert_int_eq(pier_server_set_peer_hooks(s, NULL, NULL, NULL), -EBUSY);
	ck_assert_int_eq(pier_server_handle_requests(s, 50, h_echo, NULL), -EBUSY);
	ck_assert_int_eq(pier_server_listen(s, "unix:///tmp/pier-late.sock"), -EBUSY);
	ck_assert_int_eq(pier_server_listen_activated(s, NULL, 0), -EBUSY);
	ck_assert_int_eq(pier_server_wait(s, -2), -EINVAL);
	pier_server_free(s);
	pier_server_free(NULL);
}
END_TEST

/* pier_listener_adopt() takes a listening socket, and refuses others,
 * leaving them to the caller. */
START_TEST(listener_adopt)
{
	pier_listener *l;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int pipefd[2];
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char address[128];
	pier_peer *a, *b;

	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(pier_listener_adopt(&l, pipefd[0], NULL), -ENOTSOCK);
	ck_assert_int_eq(pier_listener_adopt(&l, udp, NULL), -EPROTONOSUPPORT);
	ck_assert_int_eq(pier_listener_adopt(&l, fd, NULL), -EINVAL); /* not listening */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(pier_listener_adopt(&l, fd, NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	a = client(address);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	round_trip(a, b, "ping", "pong");
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l); /* closes fd */
	close(udp);
	close(pipefd[0]);
	close(pipefd[1]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("server");
	TCase *tc = th_tcase("server", TH_TIMEOUT);

	tcase_add_test(tc, dispatch_by_service_id);
	tcase_add_test(tc, unknown_service_ids);
	tcase_add_test(tc, other_handlers);
	tcase_add_test(tc, streams_in_order);
	tcase_add_test(tc, watch_kept_request);
	tcase_add_test(tc, watch_cancel_and_stop);
	tcase_add_test(tc, updates_both_ways);
	tcase_add_test(tc, kept_request);
	tcase_add_test(tc, handler_calls_back);
	tcase_add_test(tc, access_by_credentials);
	tcase_add_test(tc, max_peers);
	tcase_add_test(tc, max_requests_in_flight);
	tcase_add_test(tc, worker_pool_bound);
	tcase_add_test(tc, long_request_does_not_hold_up_next);
	tcase_add_test(tc, busy_workers_still_accept);
	tcase_add_test(tc, stop_under_load);
	tcase_add_test(tc, stop_waits_for_requests);
	tcase_add_test(tc, stop_on_signal);
	tcase_add_test(tc, socket_activation);
	tcase_add_test(tc, no_activation);
	tcase_add_test(tc, notifications);
	tcase_add_test(tc, invalid_arguments);
	tcase_add_test(tc, listener_adopt);
	suite_add_tcase(s, tc);
	return th_run(s);
}
