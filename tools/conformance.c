/* SPDX-License-Identifier: MIT */
/*
 * The conformance service set (serve-conformance) and its client
 * (test-conformance), exactly as the conformance document describes them,
 * so that any two Fizyr RPC implementations can be checked against each
 * other.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

enum {
	SVC_ECHO = 1,
	SVC_COUNTDOWN = 2,
	SVC_SUM = 3,
	SVC_FDS = 4,
	SVC_ERROR = 5,
	SVC_ASK_BACK = 6,
	SVC_STREAM_IN = 7,
	SVC_STREAM_OUT = 8,
};

static int timeout_ms = 5000;

static bool body_is(const pier_msg *m, const char *text)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);

	return len == strlen(text) && memcmp(body, text, len) == 0;
}

/* The body as a NUL-terminated string (malloc'd). */
static char *body_string(const pier_msg *m)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);
	char *s = malloc(len + 1);

	if (s) {
		memcpy(s, body, len);
		s[len] = '\0';
	}
	return s;
}

static bool parse_i64(const char *s, int64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoll(s, &end, 10);
	return !errno && end != s && *end == '\0';
}

/* A memfd holding content, its offset at 0. */
static int memfd_with(const char *content)
{
	int fd = memfd_create("pier-conformance", MFD_CLOEXEC);
	size_t len = strlen(content);

	if (fd >= 0 && pwrite(fd, content, len, 0) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* How many bytes the file behind fd holds, read from offset 0. */
static long long file_length(int fd)
{
	char buf[65536];
	long long total = 0;
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), total)) > 0)
		total += n;
	return n < 0 ? -1 : total;
}

/* --- the server ---------------------------------------------------------- */

/*
 * A pier_server with a fixed pool of workers.  Handlers never wait for a
 * client: sends queue (see sent()), and a request that waits for its
 * client (sum for its updates, ask-back for the answer to its ping) is
 * kept and watched (pier_server_watch()): it costs no thread while it
 * waits.  The server refuses a connection's requests beyond MAX_REQUESTS
 * in flight, so that one client never takes what the others need, and
 * hands a connection's stream messages over one at a time, so that their
 * echoes keep their order.
 */
enum {
	WORKERS = 4,
	MAX_REQUESTS = 64, /* in flight per connection, waiting ones included */
	SEND_QUEUE = 16 << 20, /* bytes a client may leave unread */
	STOP_TIMEOUT_MS = 1000, /* what a stop lets requests in flight take */
};

static pier_server *server;

/* Handlers never wait for a client: sends queue (up to SEND_QUEUE bytes a
 * connection) and fail with -EAGAIN past that, when the client has left
 * that much unread.  Its connection ends then, so that its next sends fail
 * at once and the workers serve the others meanwhile. */
static void sent(pier_writer *w, int r)
{
	if (r == -EAGAIN)
		pier_writer_abort(w);
}

static void respond(pier_writer *w, pier_received_request *req, int32_t svc, const void *body,
		    size_t len)
{
	sent(w, pier_received_request_send_response(req, svc, body, len, NULL, 0));
}

static void refuse(pier_writer *w, pier_received_request *req, const char *text)
{
	sent(w, pier_received_request_send_error(req, text));
}

static int h_echo(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);

	respond(pier_peer_get_writer(peer), req, SVC_ECHO, body, len);
	return PIER_HANDLER_DONE;
}

static int h_countdown(void *ud, pier_peer *peer, void *pd, pier_msg *m,
		       pier_received_request *req)
{
	pier_writer *w = pier_peer_get_writer(peer);
	char *text = body_string(m);
	int64_t n;

	if (!text || !parse_i64(text, &n) || n < 0 || n > 100000) {
		refuse(w, req, "countdown wants a count");
	} else {
		for (int64_t i = 0; i < n; i++) {
			char body[24];
			int len = snprintf(body, sizeof(body), "%" PRId64, i);
			int r = pier_received_request_send_update(req, SVC_COUNTDOWN, body,
								  (size_t)len, NULL, 0);

			if (r < 0) {
				sent(w, r);
				break;
			}
		}
		respond(w, req, SVC_COUNTDOWN, "done", 4);
	}
	free(text);
	return PIER_HANDLER_DONE;
}

static int h_fds(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	pier_writer *w = pier_peer_get_writer(peer);
	size_t n = pier_msg_fd_count(m);
	char out[4096] = "";
	size_t used = 0;
	int fd;

	if (pier_writer_max_fds(w) == 0) {
		refuse(w, req, "this transport carries no fds");
		return PIER_HANDLER_DONE;
	}
	for (size_t i = 0; i < n; i++) {
		long long len = file_length(pier_msg_fd(m, i));

		if (len < 0) {
			refuse(w, req, "cannot read a received fd");
			return PIER_HANDLER_DONE;
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%lld", i ? "," : "",
					 len);
		if (used >= sizeof(out)) {
			refuse(w, req, "too many fds");
			return PIER_HANDLER_DONE;
		}
	}
	fd = memfd_with("from-oracle");
	if (fd < 0) {
		refuse(w, req, "cannot make a memfd");
		return PIER_HANDLER_DONE;
	}
	sent(w, pier_received_request_send_response(req, SVC_FDS, out, used, &fd, 1));
	close(fd);
	return PIER_HANDLER_DONE;
}

static int h_error(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	refuse(pier_peer_get_writer(peer), req, "oracle error");
	return PIER_HANDLER_DONE;
}

static void h_stream(void *ud, pier_peer *peer, void *pd, pier_msg *m)
{
	pier_writer *w = pier_peer_get_writer(peer);
	size_t len;
	const void *body = pier_msg_body(m, &len);

	sent(w, pier_writer_send_stream(w, SVC_STREAM_OUT, body, len, NULL, 0));
}

/* sum: kept, its updates added up as they come. */
struct sum {
	pier_writer *w;
	pier_received_request *req;
	int64_t total;
};

static void sum_step(void *ud, int status)
{
	struct sum *sum = ud;
	pier_msg *m;
	int r = status;

	while (r == 0 && (r = pier_received_request_recv_update(sum->req, &m, 0)) == 0) {
		char *text = body_string(m), out[24];
		bool end = text && strcmp(text, "end") == 0;
		int64_t v = 0;

		pier_msg_free(m);
		if (end) {
			snprintf(out, sizeof(out), "%" PRId64, sum->total);
			respond(sum->w, sum->req, SVC_SUM, out, strlen(out));
			r = -PIER_EDONE;
		} else if (!text || !parse_i64(text, &v)) {
			refuse(sum->w, sum->req, "sum wants integers, then end");
			r = -PIER_EDONE;
		}
		sum->total += v;
		free(text);
	}
	if (r == -EAGAIN &&
	    pier_server_watch(server, pier_received_request_fd(sum->req), sum_step, sum, NULL) == 0)
		return;
	/* Done, its connection ended, or the server stops. */
	pier_received_request_free(sum->req);
	pier_writer_unref(sum->w);
	free(sum);
}

static int h_sum(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	struct sum *sum = calloc(1, sizeof(*sum));

	if (!sum)
		return PIER_HANDLER_DONE; /* answered with an error */
	sum->w = pier_writer_ref(pier_peer_get_writer(peer));
	sum->req = req;
	sum_step(sum, 0);
	return PIER_HANDLER_KEEP;
}

/*
 * ask-back: the ping is sent, the request kept; two watches wait, one for
 * the ping's answer, one for a timerfd at the deadline.  The first to run
 * answers the request and cancels the other; the last to let go frees.
 */
struct ask {
	pthread_mutex_t mu;
	pier_writer *w;
	pier_received_request *req;
	pier_sent_request *ping;
	int timer;
	uint64_t ping_watch, timer_watch;
	int refs; /* one per watch that will run */
	bool answered;
};

static void ask_unref(struct ask *a)
{
	bool last;

	pthread_mutex_lock(&a->mu);
	last = --a->refs == 0;
	pthread_mutex_unlock(&a->mu);
	if (!last)
		return;
	pier_received_request_free(a->req);
	pier_sent_request_free(a->ping);
	pier_writer_unref(a->w);
	close(a->timer);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* Answers the request once: with the ping's answer m (taken), or the
 * error text; and cancels the other watch (the timer's, from_ping). */
static void ask_answer(struct ask *a, pier_msg *m, const char *error, bool from_ping)
{
	uint64_t other;
	bool first;

	pthread_mutex_lock(&a->mu);
	first = !a->answered;
	a->answered = true;
	other = from_ping ? a->timer_watch : a->ping_watch;
	pthread_mutex_unlock(&a->mu);
	if (first && m) {
		size_t len;
		const void *body = pier_msg_body(m, &len);

		respond(a->w, a->req, SVC_ASK_BACK, body, len);
	} else if (first) {
		refuse(a->w, a->req, error);
	}
	pier_msg_free(m);
	if (first && pier_server_unwatch(server, other) == 0)
		ask_unref(a); /* for the watch that will not run */
}

static void ask_ping_step(void *ud, int status)
{
	struct ask *a = ud;
	pier_msg *m = NULL;
	int r = status;

	/* Updates to a ping are no answer: skipped. */
	while (r == 0 && (r = pier_sent_request_recv(a->ping, &m, 0)) == 0 &&
	       pier_msg_header(m)->type != PIER_MSG_RESPONSE) {
		pier_msg_free(m);
		m = NULL;
	}
	pthread_mutex_lock(&a->mu);
	if (r == -EAGAIN && !a->answered &&
	    pier_server_watch(server, pier_sent_request_fd(a->ping), ask_ping_step, a,
			      &a->ping_watch) == 0) {
		pthread_mutex_unlock(&a->mu);
		return;
	}
	pthread_mutex_unlock(&a->mu);
	if (r == 0 && pier_msg_is_error(m)) {
		pier_msg_free(m);
		ask_answer(a, NULL, "the ping got an error", true);
	} else {
		ask_answer(a, r == 0 ? m : NULL, "no answer to the ping", true);
	}
	ask_unref(a);
}

static void ask_timer_step(void *ud, int status)
{
	struct ask *a = ud;

	ask_answer(a, NULL, "no answer to the ping in time", false);
	ask_unref(a);
}

static int h_ask_back(void *ud, pier_peer *peer, void *pd, pier_msg *m,
		      pier_received_request *req)
{
	pier_writer *w = pier_peer_get_writer(peer);
	struct ask *a = calloc(1, sizeof(*a));
	struct itimerspec its = { .it_value = { timeout_ms / 1000, timeout_ms % 1000 * 1000000L } };
	bool timer_ok, ping_ok;
	int r;

	if (!a || (a->timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC)) < 0) {
		free(a);
		refuse(w, req, "cannot ask back");
		return PIER_HANDLER_DONE;
	}
	r = pier_writer_send_request(w, SVC_ECHO, "ping", 4, NULL, 0, &a->ping);
	if (r < 0) {
		sent(w, r);
		close(a->timer);
		free(a);
		refuse(w, req, "cannot ask back");
		return PIER_HANDLER_DONE;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->w = pier_writer_ref(w);
	a->req = req;
	/* Held until both watches are made: neither runs meanwhile.  Once
	 * both are, a is theirs: it may be freed as soon as this lets go. */
	pthread_mutex_lock(&a->mu);
	if (timeout_ms >= 0)
		timerfd_settime(a->timer, 0, &its, NULL); /* -1: never */
	timer_ok = pier_server_watch(server, a->timer, ask_timer_step, a, &a->timer_watch) == 0;
	ping_ok = pier_server_watch(server, pier_sent_request_fd(a->ping), ask_ping_step, a,
				    &a->ping_watch) == 0;
	/* The server stops: the watch made (if any) is cancelled below, or
	 * lets go when it runs; this call holds the reference of the other. */
	a->refs = timer_ok + ping_ok + !(timer_ok && ping_ok);
	pthread_mutex_unlock(&a->mu);
	if (!(timer_ok && ping_ok)) {
		ask_answer(a, NULL, "cannot ask back", timer_ok);
		ask_unref(a);
	}
	return PIER_HANDLER_KEEP;
}

static void on_stop(int sig)
{
	pier_server_stop(server); /* async-signal-safe */
}

static const struct tool_cmd serve_cmd = {
	"pier serve-conformance", "ADDRESS",
	"Usage: pier serve-conformance [OPTIONS] ADDRESS\n"
	"Serve the conformance services on ADDRESS until interrupted.\n"
	"  -t, --timeout MS       wait at most MS milliseconds for a client to answer\n"
	"                         ask-back's ping; default 5000, -1: for ever.  A client\n"
	"                         that leaves 16 MiB of answers unread is disconnected\n",
	CMD_LISTENER,
};

static int make_server(const char *address, const struct tool_opts *o)
{
	pier_config *cfg = tool_config(o);
	int r = pier_config_set_send_timeout(cfg, 0);

	if (r == 0)
		r = pier_config_set_max_queued(cfg, 4 << 20, SEND_QUEUE);
	if (r == 0)
		r = pier_server_new(&server, cfg);
	pier_config_free(cfg);
	if (r < 0)
		return tool_fail("cannot make the server", r);
	if ((r = pier_server_set_workers(server, WORKERS)) < 0 ||
	    (r = pier_server_set_max_requests(server, MAX_REQUESTS)) < 0 ||
	    (r = pier_server_set_stop_timeout(server, STOP_TIMEOUT_MS)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_ECHO, h_echo, NULL)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_COUNTDOWN, h_countdown, NULL)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_SUM, h_sum, NULL)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_FDS, h_fds, NULL)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_ERROR, h_error, NULL)) < 0 ||
	    (r = pier_server_handle_requests(server, SVC_ASK_BACK, h_ask_back, NULL)) < 0 ||
	    (r = pier_server_handle_streams(server, SVC_STREAM_IN, h_stream, NULL)) < 0)
		return tool_fail("cannot make the server", r);
	r = pier_server_listen(server, address);
	return r < 0 ? tool_fail_listen(address, r) : 0;
}

int cmd_serve_conformance(int argc, char **argv, const struct tool_opts *opts)
{
	struct tool_opts o = *opts;
	struct sigaction sa = { .sa_handler = on_stop };
	int first = tool_parse_args(argc, argv, &serve_cmd, &o);
	char bound[256];
	int status;

	tool_check_args(argc, argv, first, 1, &serve_cmd);
	timeout_ms = o.timeout_ms;
	status = make_server(argv[first], &o);
	if (status == 0) {
		pier_server_address(server, 0, bound, sizeof(bound));
		printf("serving the conformance services on %s\n", bound);
		fflush(stdout);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		if (pier_server_start(server) < 0)
			status = tool_fail("cannot start the workers", -EAGAIN);
		else
			pier_server_wait(server, -1);
	}
	pier_server_free(server);
	return status;
}

/* --- the client ---------------------------------------------------------- */

/* What arrives on the client's own read half: the server's ping (which the
 * client answers, as echo) and stream messages, kept for the stream
 * scenario.  Anything else is unexpected. */
struct incoming {
	pier_peer *peer;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pier_msg *streams[64];
	size_t nstreams;
	int pings;
	int unexpected;
	char unexpected_what[128];
};

__attribute__((format(printf, 2, 3)))
static void note_unexpected(struct incoming *in, const char *fmt, ...)
{
	va_list ap;

	in->unexpected++;
	if (in->unexpected == 1) {
		va_start(ap, fmt);
		vsnprintf(in->unexpected_what, sizeof(in->unexpected_what), fmt, ap);
		va_end(ap);
	}
}

static void *incoming_thread(void *arg)
{
	struct incoming *in = arg;
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(in->peer, &m, &req, -1) == 0) {
		const struct pier_header *h = pier_msg_header(m);

		pthread_mutex_lock(&in->mu);
		if (req && h->service_id == SVC_ECHO) {
			size_t len;
			const void *body = pier_msg_body(m, &len);

			if (body_is(m, "ping"))
				in->pings++;
			else
				note_unexpected(in, "a request for echo that is no ping");
			pier_received_request_send_response(req, SVC_ECHO, body, len, NULL, 0);
		} else if (req) {
			note_unexpected(in, "a request for service %d", h->service_id);
			pier_received_request_send_error(req, "the conformance client serves echo only");
		} else if (h->service_id == SVC_STREAM_OUT && in->nstreams < 64) {
			in->streams[in->nstreams++] = m;
			m = NULL;
			pthread_cond_broadcast(&in->cond);
		} else {
			note_unexpected(in, "a stream message for service %d", h->service_id);
		}
		pthread_mutex_unlock(&in->mu);
		if (req)
			pier_received_request_free(req);
		pier_msg_free(m);
	}
	return NULL;
}

typedef int (*scenario_fn)(pier_peer *peer, struct incoming *in, char *why, size_t size);

#define FAIL(...)                                   \
	do {                                        \
		snprintf(why, size, __VA_ARGS__);   \
		goto fail;                          \
	} while (0)

static int send_req(pier_peer *peer, int32_t svc, const void *body, size_t len, const int *fds,
		    size_t nfds, pier_sent_request **req, char *why, size_t size)
{
	int r = pier_writer_send_request(pier_peer_get_writer(peer), svc, body, len, fds, nfds, req);

	if (r < 0)
		snprintf(why, size, "cannot send the request: %s", pier_strerror(r));
	return r;
}

/* Receives the response of req, which must come without updates. */
static int expect_response(pier_sent_request *req, int32_t svc, const void *body, size_t len,
			   char *why, size_t size)
{
	pier_msg *m;
	size_t got_len;
	const void *got;
	int r = pier_sent_request_recv(req, &m, timeout_ms);

	if (r < 0) {
		snprintf(why, size, "no response: %s", pier_strerror(r));
		return -1;
	}
	got = pier_msg_body(m, &got_len);
	if (pier_msg_header(m)->type != PIER_MSG_RESPONSE)
		snprintf(why, size, "an update came instead of the response");
	else if (pier_msg_header(m)->service_id != svc)
		snprintf(why, size, "response service %d, expected %d", pier_msg_header(m)->service_id,
			 svc);
	else if (got_len != len || (len && memcmp(got, body, len) != 0))
		snprintf(why, size, "response body of %zu bytes differs from the %zu expected", got_len,
			 len);
	else
		why[0] = '\0';
	pier_msg_free(m);
	return why[0] ? -1 : 0;
}

static int run_echo(pier_peer *peer, const void *body, size_t len, char *why, size_t size)
{
	pier_sent_request *req;
	int r;

	if (send_req(peer, SVC_ECHO, body, len, NULL, 0, &req, why, size) < 0)
		return -1;
	r = expect_response(req, SVC_ECHO, body, len, why, size);
	pier_sent_request_free(req);
	return r;
}

static int sc_echo(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	return run_echo(peer, "Hello, oracle!", 14, why, size);
}

static int sc_echo_empty(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	return run_echo(peer, NULL, 0, why, size);
}

static int sc_echo_large(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	char body[4000];

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	return run_echo(peer, body, sizeof(body), why, size);
}

static int run_countdown(pier_peer *peer, int n, char *why, size_t size)
{
	pier_sent_request *req;
	char body[16];
	int r = -1;

	snprintf(body, sizeof(body), "%d", n);
	if (send_req(peer, SVC_COUNTDOWN, body, strlen(body), NULL, 0, &req, why, size) < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		pier_msg *m;

		r = pier_sent_request_recv_update(req, &m, timeout_ms);
		if (r < 0)
			FAIL("update %d: %s", i, pier_strerror(r));
		snprintf(body, sizeof(body), "%d", i);
		r = pier_msg_header(m)->service_id == SVC_COUNTDOWN && body_is(m, body) ? 0 : -1;
		pier_msg_free(m);
		if (r < 0)
			FAIL("update %d is not service 2, body \"%d\"", i, i);
	}
	r = expect_response(req, SVC_COUNTDOWN, "done", 4, why, size);
fail:
	pier_sent_request_free(req);
	return r < 0 ? -1 : 0;
}

static int sc_countdown(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	return run_countdown(peer, 5, why, size);
}

static int sc_countdown_zero(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	return run_countdown(peer, 0, why, size);
}

static int sc_sum(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	static const char *const parts[] = { "10", "20", "-7", "100", "end" };
	pier_sent_request *req;
	int r = -1;

	if (send_req(peer, SVC_SUM, NULL, 0, NULL, 0, &req, why, size) < 0)
		return -1;
	for (size_t i = 0; i < 5; i++) {
		r = pier_sent_request_send_update(req, SVC_SUM, parts[i], strlen(parts[i]), NULL, 0);
		if (r < 0)
			FAIL("cannot send update %s: %s", parts[i], pier_strerror(r));
	}
	r = expect_response(req, SVC_SUM, "123", 3, why, size);
fail:
	pier_sent_request_free(req);
	return r < 0 ? -1 : 0;
}

static int sc_fds(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	static const char *const contents[] = { "abc", "hello world", "" };
	pier_sent_request *req = NULL;
	int fds[3] = { -1, -1, -1 };
	pier_msg *m;
	int r = -1;

	if (pier_writer_max_fds(pier_peer_get_writer(peer)) == 0) {
		/* Without fds, the service answers with an error. */
		if (send_req(peer, SVC_FDS, NULL, 0, NULL, 0, &req, why, size) < 0)
			return -1;
		r = pier_sent_request_recv_response(req, &m, timeout_ms);
		if (r < 0)
			FAIL("no response: %s", pier_strerror(r));
		r = pier_msg_is_error(m) ? 0 : -1;
		pier_msg_free(m);
		if (r < 0)
			FAIL("service 4 on a transport without fds must answer with an error");
		goto fail;
	}
	for (int i = 0; i < 3; i++)
		if ((fds[i] = memfd_with(contents[i])) < 0)
			FAIL("cannot make a memfd");
	if (send_req(peer, SVC_FDS, NULL, 0, fds, 3, &req, why, size) < 0)
		goto fail;
	r = pier_sent_request_recv_response(req, &m, timeout_ms);
	if (r < 0)
		FAIL("no response: %s", pier_strerror(r));
	if (pier_msg_header(m)->service_id != SVC_FDS || !body_is(m, "3,11,0")) {
		pier_msg_free(m);
		FAIL("the response is not service 4, body \"3,11,0\"");
	}
	if (pier_msg_fd_count(m) != 1) {
		snprintf(why, size, "the response carries %zu fds, not 1", pier_msg_fd_count(m));
		r = -1;
	} else {
		char buf[32] = "";
		ssize_t n = pread(pier_msg_fd(m, 0), buf, sizeof(buf) - 1, 0);

		r = n == 11 && memcmp(buf, "from-oracle", 11) == 0 ? 0 : -1;
		if (r < 0)
			snprintf(why, size, "the attached file does not hold \"from-oracle\"");
	}
	pier_msg_free(m);
fail:
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (req)
		pier_sent_request_free(req);
	return r < 0 ? -1 : 0;
}

static int sc_error(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	pier_sent_request *req;
	int r;

	if (send_req(peer, SVC_ERROR, NULL, 0, NULL, 0, &req, why, size) < 0)
		return -1;
	r = expect_response(req, PIER_SERVICE_ERROR, "oracle error", 12, why, size);
	pier_sent_request_free(req);
	return r;
}

static int sc_ask_back(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	pier_sent_request *req;
	int r, pings;

	if (send_req(peer, SVC_ASK_BACK, NULL, 0, NULL, 0, &req, why, size) < 0)
		return -1;
	r = expect_response(req, SVC_ASK_BACK, "ping", 4, why, size);
	pier_sent_request_free(req);
	pthread_mutex_lock(&in->mu);
	pings = in->pings;
	pthread_mutex_unlock(&in->mu);
	if (r == 0 && pings != 1) {
		snprintf(why, size, "%d pings seen, not 1", pings);
		r = -1;
	}
	return r;
}

static int sc_stream(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	static const char *const bodies[] = { "stream-1", "stream-2", "" };
	struct timespec deadline;
	int r = 0;

	for (int i = 0; i < 3; i++) {
		r = pier_writer_send_stream(pier_peer_get_writer(peer), SVC_STREAM_IN, bodies[i],
					    strlen(bodies[i]), NULL, 0);
		if (r < 0) {
			snprintf(why, size, "cannot send: %s", pier_strerror(r));
			return -1;
		}
	}
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000 + 1;
	pthread_mutex_lock(&in->mu);
	while (in->nstreams < 3 && r == 0)
		r = pthread_cond_timedwait(&in->cond, &in->mu, &deadline);
	if (in->nstreams < 3) {
		snprintf(why, size, "%zu of 3 stream messages came back", in->nstreams);
		r = -1;
	} else {
		r = 0;
		for (int i = 0; i < 3 && r == 0; i++)
			if (!body_is(in->streams[i], bodies[i])) {
				snprintf(why, size, "stream message %d is not \"%s\"", i + 1, bodies[i]);
				r = -1;
			}
	}
	for (size_t i = 0; i < in->nstreams; i++)
		pier_msg_free(in->streams[i]);
	in->nstreams = 0;
	pthread_mutex_unlock(&in->mu);
	return r;
}

static int sc_concurrent(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	pier_sent_request *req[9] = { NULL };
	char bodies[8][32];
	int r = -1;

	for (int i = 0; i < 8; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "concurrent-%d", i);
		if (send_req(peer, SVC_ECHO, bodies[i], strlen(bodies[i]), NULL, 0, &req[i], why,
			     size) < 0)
			goto fail;
	}
	if (send_req(peer, SVC_COUNTDOWN, "3", 1, NULL, 0, &req[8], why, size) < 0)
		goto fail;
	for (int i = 0; i < 9; i++)
		for (int k = 0; k < i; k++)
			if (pier_sent_request_id(req[i]) == pier_sent_request_id(req[k]))
				FAIL("two open requests share id %u", pier_sent_request_id(req[i]));
	/* Replies in the reverse order of the requests. */
	for (int i = 8; i >= 0; i--) {
		if (i == 8) {
			for (int u = 0; u < 3; u++) {
				pier_msg *m;
				char body[4];

				r = pier_sent_request_recv_update(req[8], &m, timeout_ms);
				if (r < 0)
					FAIL("countdown update %d: %s", u, pier_strerror(r));
				snprintf(body, sizeof(body), "%d", u);
				r = body_is(m, body) ? 0 : -1;
				pier_msg_free(m);
				if (r < 0)
					FAIL("countdown update %d has the wrong body", u);
			}
			r = expect_response(req[8], SVC_COUNTDOWN, "done", 4, why, size);
		} else {
			r = expect_response(req[i], SVC_ECHO, bodies[i], strlen(bodies[i]), why, size);
		}
		if (r < 0)
			goto fail;
	}
	r = 0;
fail:
	for (int i = 0; i < 9; i++)
		if (req[i])
			pier_sent_request_free(req[i]);
	return r < 0 ? -1 : 0;
}

static int sc_no_unexpected(pier_peer *peer, struct incoming *in, char *why, size_t size)
{
	int r = 0;

	usleep(100000); /* anything late has time to arrive */
	pthread_mutex_lock(&in->mu);
	if (in->unexpected) {
		snprintf(why, size, "%d unexpected, the first: %s", in->unexpected,
			 in->unexpected_what);
		r = -1;
	} else if (in->nstreams) {
		snprintf(why, size, "%zu stream messages nobody asked for", in->nstreams);
		r = -1;
	}
	pthread_mutex_unlock(&in->mu);
	return r;
}

static const struct {
	const char *name;
	scenario_fn fn;
} scenarios[] = {
	{ "echo", sc_echo },
	{ "echo-empty", sc_echo_empty },
	{ "echo-large", sc_echo_large },
	{ "countdown", sc_countdown },
	{ "countdown-zero", sc_countdown_zero },
	{ "sum", sc_sum },
	{ "fds", sc_fds },
	{ "error", sc_error },
	{ "ask-back", sc_ask_back },
	{ "stream", sc_stream },
	{ "concurrent", sc_concurrent },
	{ "no-unexpected-messages", sc_no_unexpected },
};

static const struct tool_cmd test_cmd = {
	"pier test-conformance", "ADDRESS",
	"Usage: pier test-conformance [OPTIONS] ADDRESS\n"
	"Check the peer at ADDRESS against the conformance services: prints PASS or\n"
	"FAIL for each scenario, then a count; exits 0 only if all passed.\n"
	"  -t, --timeout MS       wait at most MS milliseconds to connect, and for each\n"
	"                         answer (default 5000; -1: for ever)\n",
	0,
};

int cmd_test_conformance(int argc, char **argv, const struct tool_opts *opts)
{
	struct tool_opts o = *opts;
	int first = tool_parse_args(argc, argv, &test_cmd, &o);
	struct incoming in = { 0 };
	pier_config *cfg;
	int r, passed = 0, failed = 0;

	tool_check_args(argc, argv, first, 1, &test_cmd);
	timeout_ms = o.timeout_ms;
	cfg = tool_config(&o);
	r = pier_peer_connect(&in.peer, argv[first], cfg);
	pier_config_free(cfg);
	if (r < 0) {
		char what[300];

		snprintf(what, sizeof(what), "cannot connect to %s", argv[first]);
		return tool_fail(what, r);
	}
	pthread_mutex_init(&in.mu, NULL);
	pthread_cond_init(&in.cond, NULL);
	if (pthread_create(&in.thread, NULL, incoming_thread, &in) != 0) {
		pier_peer_free(in.peer);
		return tool_fail("cannot start a thread", -EAGAIN);
	}
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		char why[256] = "";

		if (scenarios[i].fn(in.peer, &in, why, sizeof(why)) == 0) {
			printf("PASS %s\n", scenarios[i].name);
			passed++;
		} else {
			printf("FAIL %s: %s\n", scenarios[i].name, why);
			failed++;
		}
		fflush(stdout);
	}
	printf("%d passed, %d failed\n", passed, failed);
	/* Ending the connection ends the incoming thread's wait. */
	pier_writer_abort(pier_peer_get_writer(in.peer));
	pthread_join(in.thread, NULL);
	for (size_t i = 0; i < in.nstreams; i++)
		pier_msg_free(in.streams[i]);
	pier_peer_free(in.peer);
	pthread_mutex_destroy(&in.mu);
	pthread_cond_destroy(&in.cond);
	return failed ? EXIT_REMOTE_ERROR : EXIT_OK;
}
