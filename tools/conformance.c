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

struct job {
	pier_peer *peer;
	pier_received_request *req;
	pier_msg *msg;
};

static void respond(pier_received_request *req, int32_t svc, const char *text)
{
	pier_received_request_send_response(req, svc, text, strlen(text), NULL, 0);
}

static void serve_countdown(struct job *j)
{
	char *text = body_string(j->msg);
	int64_t n;

	if (!text || !parse_i64(text, &n) || n < 0 || n > 100000) {
		pier_received_request_send_error(j->req, "countdown wants a count");
	} else {
		for (int64_t i = 0; i < n; i++) {
			char body[24];
			int len = snprintf(body, sizeof(body), "%" PRId64, i);

			if (pier_received_request_send_update(j->req, SVC_COUNTDOWN, body,
							      (size_t)len, NULL, 0) < 0)
				break;
		}
		respond(j->req, SVC_COUNTDOWN, "done");
	}
	free(text);
}

static void serve_sum(struct job *j)
{
	int64_t sum = 0;
	char out[24];

	for (;;) {
		pier_msg *m;
		char *text;
		int64_t v;
		int r = pier_received_request_recv_update(j->req, &m, -1);

		if (r < 0)
			return; /* the connection ended */
		text = body_string(m);
		pier_msg_free(m);
		if (text && strcmp(text, "end") == 0) {
			free(text);
			break;
		}
		if (!text || !parse_i64(text, &v)) {
			free(text);
			pier_received_request_send_error(j->req, "sum wants integers, then end");
			return;
		}
		free(text);
		sum += v;
	}
	snprintf(out, sizeof(out), "%" PRId64, sum);
	respond(j->req, SVC_SUM, out);
}

static void serve_fds(struct job *j)
{
	size_t n = pier_msg_fd_count(j->msg);
	char out[4096] = "";
	size_t used = 0;
	int fd;

	if (pier_writer_max_fds(pier_peer_get_writer(j->peer)) == 0) {
		pier_received_request_send_error(j->req, "this transport carries no fds");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		long long len = file_length(pier_msg_fd(j->msg, i));

		if (len < 0) {
			pier_received_request_send_error(j->req, "cannot read a received fd");
			return;
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%lld", i ? "," : "",
					 len);
		if (used >= sizeof(out)) {
			pier_received_request_send_error(j->req, "too many fds");
			return;
		}
	}
	fd = memfd_with("from-oracle");
	if (fd < 0) {
		pier_received_request_send_error(j->req, "cannot make a memfd");
		return;
	}
	pier_received_request_send_response(j->req, SVC_FDS, out, used, &fd, 1);
	close(fd);
}

static void serve_ask_back(struct job *j)
{
	pier_sent_request *back;
	pier_msg *m;
	size_t len;
	const void *body;
	int r;

	r = pier_writer_send_request(pier_peer_get_writer(j->peer), SVC_ECHO, "ping", 4, NULL, 0,
				     &back);
	if (r < 0) {
		pier_received_request_send_error(j->req, "cannot ask back");
		return;
	}
	r = pier_sent_request_recv_response(back, &m, timeout_ms);
	if (r < 0) {
		pier_received_request_send_error(j->req, "no answer to the ping");
	} else {
		body = pier_msg_body(m, &len);
		if (pier_msg_is_error(m))
			pier_received_request_send_error(j->req, "the ping got an error");
		else
			pier_received_request_send_response(j->req, SVC_ASK_BACK, body, len, NULL, 0);
		pier_msg_free(m);
	}
	pier_sent_request_free(back);
}

static void *serve_request(void *arg)
{
	struct job *j = arg;
	int32_t svc = pier_msg_header(j->msg)->service_id;
	size_t len;
	const void *body = pier_msg_body(j->msg, &len);

	switch (svc) {
	case SVC_ECHO:
		pier_received_request_send_response(j->req, SVC_ECHO, body, len, NULL, 0);
		break;
	case SVC_COUNTDOWN:
		serve_countdown(j);
		break;
	case SVC_SUM:
		serve_sum(j);
		break;
	case SVC_FDS:
		serve_fds(j);
		break;
	case SVC_ERROR:
		pier_received_request_send_error(j->req, "oracle error");
		break;
	case SVC_ASK_BACK:
		serve_ask_back(j);
		break;
	default: {
		char text[64];

		snprintf(text, sizeof(text), "unknown service id %d", svc);
		pier_received_request_send_error(j->req, text);
	}
	}
	pier_received_request_free(j->req);
	pier_msg_free(j->msg);
	pier_writer_unref(pier_peer_get_writer(j->peer));
	free(j);
	return NULL;
}

/* One thread per peer reads; each request gets a thread of its own, so a
 * request waiting for updates never holds up another. */
static void *serve_peer(void *arg)
{
	pier_peer *peer = arg;
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		struct job *j;
		pthread_t th;
		pthread_attr_t attr;

		if (!req) {
			if (pier_msg_header(m)->service_id == SVC_STREAM_IN) {
				size_t len;
				const void *body = pier_msg_body(m, &len);

				pier_writer_send_stream(pier_peer_get_writer(peer), SVC_STREAM_OUT, body,
							len, NULL, 0);
			}
			pier_msg_free(m);
			continue;
		}
		j = malloc(sizeof(*j));
		if (!j) {
			pier_received_request_free(req);
			pier_msg_free(m);
			continue;
		}
		/* The job's write-half reference keeps the connection. */
		*j = (struct job){ peer, req, m };
		pier_writer_ref(pier_peer_get_writer(peer));
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &attr, serve_request, j) != 0)
			serve_request(j);
		pthread_attr_destroy(&attr);
	}
	/* Jobs still running hold the write half; the peer's memory stays
	 * until the last of them lets go. */
	pier_peer_free(peer);
	return NULL;
}

static volatile sig_atomic_t stop_serving;

static void on_stop(int sig)
{
	stop_serving = 1;
}

static const char serve_usage[] =
	"Usage: pier serve-conformance [OPTIONS] ADDRESS\n"
	"Serve the conformance services on ADDRESS until interrupted.\n";

int cmd_serve_conformance(int argc, char **argv, const struct tool_opts *opts)
{
	struct tool_opts o = *opts;
	struct sigaction sa = { .sa_handler = on_stop };
	int first = tool_parse_args(argc, argv, serve_usage, &o);
	pier_listener *l;
	pier_config *cfg;
	char bound[256];
	int r;

	if (argc - first != 1) {
		fputs(serve_usage, stderr);
		return EXIT_USAGE;
	}
	timeout_ms = o.timeout_ms;
	cfg = tool_config(&o);
	r = pier_listener_new(&l, argv[first], cfg);
	pier_config_free(cfg);
	if (r < 0)
		return tool_fail(argv[first], r);
	pier_listener_address(l, bound, sizeof(bound));
	printf("serving the conformance services on %s\n", bound);
	fflush(stdout);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_serving) {
		pier_peer *peer;
		pthread_t th;

		r = pier_listener_accept(l, &peer, 200);
		if (r == -ETIMEDOUT || r == -EINTR)
			continue;
		if (r < 0) {
			tool_fail("accept", r);
			break;
		}
		if (pthread_create(&th, NULL, serve_peer, peer) != 0) {
			pier_peer_free(peer);
			continue;
		}
		pthread_detach(th);
	}
	pier_listener_free(l);
	return EXIT_OK;
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

static const char test_usage[] =
	"Usage: pier test-conformance [OPTIONS] ADDRESS\n"
	"Check the peer at ADDRESS against the conformance services: prints PASS or\n"
	"FAIL for each scenario, then a count; exits 0 only if all passed.\n";

int cmd_test_conformance(int argc, char **argv, const struct tool_opts *opts)
{
	struct tool_opts o = *opts;
	int first = tool_parse_args(argc, argv, test_usage, &o);
	struct incoming in = { 0 };
	pier_config *cfg;
	int r, passed = 0, failed = 0;

	if (argc - first != 1) {
		fputs(test_usage, stderr);
		return EXIT_USAGE;
	}
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
