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
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
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
 * The thread that accepts also reads every connection, never blocking; a
 * fixed pool of workers sends (never waiting: see sent()).
 * Each connection's jobs go to one worker, in order (stream echoes and
 * countdown updates must not overtake each other), and a connection whose
 * worker has MAX_JOBS queued is not read until it catches up.
 *
 * A request that waits for its client (sum for its updates, ask-back for
 * the answer to its ping) is an entry on the reading thread's list, polled
 * through its fd: it costs no thread.  A connection may keep MAX_WAITING of
 * them; beyond that a request is refused with an error response, so that
 * one client never takes what the others need.
 */
enum {
	WORKERS = 4,
	MAX_WAITING = 64, /* waiting requests per connection */
	MAX_JOBS = 256, /* queued per worker */
	SEND_QUEUE = 16 << 20, /* bytes a client may leave unread */
	READ_BURST = 32, /* messages read from one connection per turn */
};

enum job_kind {
	JOB_SERVE, /* a request served from start to end */
	JOB_REPLY, /* the answer to a request whose wait is over */
	JOB_STREAM, /* a stream message to echo */
	JOB_ASK, /* ask-back: send the ping, then hand the wait back */
};

struct waiting;

/* Work for a worker; it holds a reference to its connection's write half. */
struct job {
	struct job *next;
	enum job_kind kind;
	pier_writer *w;
	pier_received_request *req;
	pier_msg *msg; /* the request, the stream message, or the reply's body */
	int32_t svc; /* JOB_REPLY: the reply's service, or PIER_SERVICE_ERROR */
	char text[128]; /* JOB_REPLY without msg: the body or the error text */
	struct waiting *wait; /* JOB_ASK */
};

/* A request waiting for its client; it holds a write-half reference. */
struct waiting {
	struct waiting *next; /* while handed back */
	pier_writer *w;
	pier_received_request *req; /* NULL: the wait ended in the worker */
	pier_sent_request *ping; /* ask-back's; NULL for sum */
	int64_t sum;
	long long deadline_ms; /* ask-back: for the ping's answer; < 0: none */
};

struct worker {
	struct server *s;
	pthread_t thread;
	pthread_cond_t cond;
	struct job *jobs, **tail;
	size_t njobs;
};

struct sconn {
	pier_peer *peer;
	struct worker *wk;
	unsigned int waiting;
};

struct server {
	pthread_mutex_t mu; /* the job queues, handed_back, stopping */
	struct worker workers[WORKERS];
	size_t nworkers;
	struct waiting *handed_back;
	int wake_fd; /* an eventfd: something was handed back */
	bool stopping;
	/* The reading thread's own. */
	struct sconn *conns;
	size_t nconns, next_worker;
	struct waiting **waits;
	size_t nwaits;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Workers never wait for a client: sends queue (up to SEND_QUEUE bytes a
 * connection) and fail with -EAGAIN past that, when the client has left
 * that much unread.  Its connection ends then, so that its next jobs fail
 * at once and the worker's other connections are served meanwhile. */
static void sent(pier_writer *w, int r)
{
	if (r == -EAGAIN)
		pier_writer_abort(w);
}

static void respond(struct job *j, int32_t svc, const char *text)
{
	sent(j->w, pier_received_request_send_response(j->req, svc, text, strlen(text), NULL, 0));
}

static void refuse(struct job *j, const char *text)
{
	sent(j->w, pier_received_request_send_error(j->req, text));
}

static void serve_countdown(struct job *j)
{
	char *text = body_string(j->msg);
	int64_t n;

	if (!text || !parse_i64(text, &n) || n < 0 || n > 100000) {
		refuse(j, "countdown wants a count");
	} else {
		for (int64_t i = 0; i < n; i++) {
			char body[24];
			int len = snprintf(body, sizeof(body), "%" PRId64, i);
			int r = pier_received_request_send_update(j->req, SVC_COUNTDOWN, body,
								  (size_t)len, NULL, 0);

			if (r < 0) {
				sent(j->w, r);
				break;
			}
		}
		respond(j, SVC_COUNTDOWN, "done");
	}
	free(text);
}

static void serve_fds(struct job *j)
{
	size_t n = pier_msg_fd_count(j->msg);
	char out[4096] = "";
	size_t used = 0;
	int fd;

	if (pier_writer_max_fds(j->w) == 0) {
		refuse(j, "this transport carries no fds");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		long long len = file_length(pier_msg_fd(j->msg, i));

		if (len < 0) {
			refuse(j, "cannot read a received fd");
			return;
		}
		used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%lld", i ? "," : "",
					 len);
		if (used >= sizeof(out)) {
			refuse(j, "too many fds");
			return;
		}
	}
	fd = memfd_with("from-oracle");
	if (fd < 0) {
		refuse(j, "cannot make a memfd");
		return;
	}
	sent(j->w, pier_received_request_send_response(j->req, SVC_FDS, out, used, &fd, 1));
	close(fd);
}

static void serve_request(struct job *j)
{
	int32_t svc = pier_msg_header(j->msg)->service_id;
	size_t len;
	const void *body = pier_msg_body(j->msg, &len);
	char text[64];

	switch (svc) {
	case SVC_ECHO:
		sent(j->w, pier_received_request_send_response(j->req, SVC_ECHO, body, len, NULL, 0));
		break;
	case SVC_COUNTDOWN:
		serve_countdown(j);
		break;
	case SVC_FDS:
		serve_fds(j);
		break;
	case SVC_ERROR:
		refuse(j, "oracle error");
		break;
	default:
		snprintf(text, sizeof(text), "unknown service id %d", svc);
		refuse(j, text);
	}
}

static void serve_reply(struct job *j)
{
	size_t len;
	const void *body;

	if (j->svc == PIER_SERVICE_ERROR) {
		refuse(j, j->text);
	} else if (j->msg) {
		body = pier_msg_body(j->msg, &len);
		sent(j->w, pier_received_request_send_response(j->req, j->svc, body, len, NULL, 0));
	} else {
		respond(j, j->svc, j->text);
	}
}

static void serve_stream(struct job *j)
{
	size_t len;
	const void *body = pier_msg_body(j->msg, &len);

	sent(j->w, pier_writer_send_stream(j->w, SVC_STREAM_OUT, body, len, NULL, 0));
}

static void hand_back(struct server *s, struct waiting *wt)
{
	uint64_t one = 1;
	ssize_t n;

	pthread_mutex_lock(&s->mu);
	wt->next = s->handed_back;
	s->handed_back = wt;
	pthread_mutex_unlock(&s->mu);
	n = write(s->wake_fd, &one, sizeof(one));
	(void)n; /* an eventfd only fails to count past 2^64 - 2 */
}

/* Sends the ping; the reading thread waits for its answer. */
static void serve_ask(struct server *s, struct job *j)
{
	struct waiting *wt = j->wait;
	int r = pier_writer_send_request(j->w, SVC_ECHO, "ping", 4, NULL, 0, &wt->ping);

	if (r < 0) {
		sent(j->w, r);
		refuse(j, "cannot ask back");
	} else {
		wt->req = j->req;
		j->req = NULL;
		wt->deadline_ms = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	}
	wt->w = j->w;
	j->w = NULL;
	j->wait = NULL;
	hand_back(s, wt);
}

static void job_free(struct job *j)
{
	if (j->req)
		pier_received_request_free(j->req);
	pier_msg_free(j->msg);
	pier_writer_unref(j->w);
	free(j->wait);
	free(j);
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct server *s = wk->s;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct job *j;

		while (!wk->jobs && !s->stopping)
			pthread_cond_wait(&wk->cond, &s->mu);
		if (!(j = wk->jobs))
			break;
		if (!(wk->jobs = j->next))
			wk->tail = &wk->jobs;
		wk->njobs--;
		pthread_mutex_unlock(&s->mu);
		if (j->kind == JOB_SERVE)
			serve_request(j);
		else if (j->kind == JOB_REPLY)
			serve_reply(j);
		else if (j->kind == JOB_STREAM)
			serve_stream(j);
		else
			serve_ask(s, j);
		job_free(j);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Queues a job for c's worker; it takes req and msg (freed on failure,
 * which answers req with an error response).  A JOB_REPLY answers with
 * svc and text (or msg's body). */
static bool push_job(struct server *s, struct sconn *c, enum job_kind kind,
		     pier_received_request *req, pier_msg *msg, int32_t svc, const char *text)
{
	struct job *j = calloc(1, sizeof(*j));

	if (j && kind == JOB_ASK && !(j->wait = calloc(1, sizeof(*j->wait)))) {
		free(j);
		j = NULL;
	}
	if (!j) {
		if (req)
			pier_received_request_free(req);
		pier_msg_free(msg);
		return false;
	}
	j->kind = kind;
	j->w = pier_writer_ref(pier_peer_get_writer(c->peer));
	j->req = req;
	j->msg = msg;
	j->svc = svc;
	snprintf(j->text, sizeof(j->text), "%s", text ? text : "");
	pthread_mutex_lock(&s->mu);
	*c->wk->tail = j;
	c->wk->tail = &j->next;
	c->wk->njobs++;
	pthread_cond_signal(&c->wk->cond);
	pthread_mutex_unlock(&s->mu);
	return true;
}

static bool worker_full(struct server *s, struct worker *wk)
{
	bool full;

	pthread_mutex_lock(&s->mu);
	full = wk->njobs >= MAX_JOBS;
	pthread_mutex_unlock(&s->mu);
	return full;
}

static struct sconn *find_conn(struct server *s, pier_writer *w)
{
	for (size_t i = 0; i < s->nconns; i++)
		if (pier_peer_get_writer(s->conns[i].peer) == w)
			return &s->conns[i];
	return NULL;
}

static void waiting_free(struct waiting *wt)
{
	if (wt->ping)
		pier_sent_request_free(wt->ping);
	if (wt->req)
		pier_received_request_free(wt->req);
	pier_writer_unref(wt->w);
	free(wt);
}

static void add_wait(struct server *s, struct sconn *c, struct waiting *wt)
{
	struct waiting **nw = realloc(s->waits, (s->nwaits + 1) * sizeof(*nw));

	if (!nw) {
		c->waiting--;
		waiting_free(wt); /* answers the request with an error response */
		return;
	}
	s->waits = nw;
	s->waits[s->nwaits++] = wt;
}

static void end_wait(struct server *s, size_t i)
{
	struct sconn *c = find_conn(s, s->waits[i]->w);

	if (c)
		c->waiting--;
	waiting_free(s->waits[i]);
	s->waits[i] = s->waits[--s->nwaits];
}

/* The wait i is over: its request is answered with svc and text (or
 * msg's body). */
static void reply(struct server *s, size_t i, int32_t svc, const char *text, pier_msg *msg)
{
	struct waiting *wt = s->waits[i];
	struct sconn *c = find_conn(s, wt->w);

	if (c)
		push_job(s, c, JOB_REPLY, wt->req, msg, svc, text);
	else
		pier_msg_free(msg);
	wt->req = c ? NULL : wt->req;
	end_wait(s, i);
}

/* Adds up the updates a sum has received. */
static void step_sum(struct server *s, size_t i)
{
	struct waiting *wt = s->waits[i];

	for (;;) {
		pier_msg *m;
		char *text, out[24];
		int64_t v;
		bool end, bad;
		int r = pier_received_request_recv_update(wt->req, &m, 0);

		if (r == -EAGAIN)
			return;
		if (r < 0) {
			end_wait(s, i); /* the connection ended */
			return;
		}
		text = body_string(m);
		pier_msg_free(m);
		end = text && strcmp(text, "end") == 0;
		bad = !end && (!text || !parse_i64(text, &v));
		free(text);
		if (end) {
			snprintf(out, sizeof(out), "%" PRId64, wt->sum);
			reply(s, i, SVC_SUM, out, NULL);
			return;
		}
		if (bad) {
			reply(s, i, PIER_SERVICE_ERROR, "sum wants integers, then end", NULL);
			return;
		}
		wt->sum += v;
	}
}

static void step_ask(struct server *s, size_t i)
{
	struct waiting *wt = s->waits[i];
	pier_msg *m;
	int r = pier_sent_request_recv_response(wt->ping, &m, 0);

	if (r == -EAGAIN) {
		if (wt->deadline_ms >= 0 && now_ms() >= wt->deadline_ms)
			reply(s, i, PIER_SERVICE_ERROR, "no answer to the ping in time", NULL);
		return;
	}
	if (r < 0) {
		reply(s, i, PIER_SERVICE_ERROR, "no answer to the ping", NULL);
	} else if (pier_msg_is_error(m)) {
		pier_msg_free(m);
		reply(s, i, PIER_SERVICE_ERROR, "the ping got an error", NULL);
	} else {
		reply(s, i, SVC_ASK_BACK, "", m); /* takes m */
	}
}

/* Takes the pings the workers sent; a wait whose connection ended meanwhile
 * ends too. */
static void take_handed_back(struct server *s)
{
	struct waiting *list;
	uint64_t v;
	ssize_t n = read(s->wake_fd, &v, sizeof(v));

	(void)n; /* nothing to read is fine: the list says */
	pthread_mutex_lock(&s->mu);
	list = s->handed_back;
	s->handed_back = NULL;
	pthread_mutex_unlock(&s->mu);
	while (list) {
		struct waiting *wt = list;
		struct sconn *c = find_conn(s, wt->w);

		list = wt->next;
		if (c && wt->req) {
			add_wait(s, c, wt);
		} else {
			if (c)
				c->waiting--;
			waiting_free(wt);
		}
	}
}

static void take_request(struct server *s, struct sconn *c, pier_received_request *req,
			 pier_msg *m)
{
	int32_t svc = pier_msg_header(m)->service_id;
	struct waiting *wt;
	char text[128];

	if (svc != SVC_SUM && svc != SVC_ASK_BACK) {
		push_job(s, c, JOB_SERVE, req, m, 0, NULL);
		return;
	}
	pier_msg_free(m);
	if (c->waiting >= MAX_WAITING) {
		snprintf(text, sizeof(text),
			 "refused: %d requests already wait on this connection; finish one first",
			 MAX_WAITING);
		push_job(s, c, JOB_REPLY, req, NULL, PIER_SERVICE_ERROR, text);
		return;
	}
	if (svc == SVC_ASK_BACK) {
		if (push_job(s, c, JOB_ASK, req, NULL, 0, NULL))
			c->waiting++;
		return;
	}
	if (!(wt = calloc(1, sizeof(*wt)))) {
		pier_received_request_free(req);
		return;
	}
	wt->w = pier_writer_ref(pier_peer_get_writer(c->peer));
	wt->req = req;
	c->waiting++;
	add_wait(s, c, wt);
}

static void drop_conn(struct server *s, size_t i)
{
	pier_writer *w = pier_peer_get_writer(s->conns[i].peer);

	for (size_t k = s->nwaits; k-- > 0;)
		if (s->waits[k]->w == w)
			end_wait(s, k);
	/* Queued jobs hold the write half; the peer's memory stays until the
	 * last of them lets go. */
	pier_peer_free(s->conns[i].peer);
	s->conns[i] = s->conns[--s->nconns];
}

/* Takes a burst of what connection i sent. */
static void read_conn(struct server *s, size_t i)
{
	struct sconn *c = &s->conns[i];

	for (int n = 0; n < READ_BURST && !worker_full(s, c->wk); n++) {
		pier_received_request *req;
		pier_msg *m;
		int r = pier_peer_recv(c->peer, &m, &req, 0);

		if (r == -EAGAIN)
			return;
		if (r < 0) {
			drop_conn(s, i);
			return;
		}
		if (req)
			take_request(s, c, req, m);
		else if (pier_msg_header(m)->service_id == SVC_STREAM_IN)
			push_job(s, c, JOB_STREAM, NULL, m, 0, NULL);
		else
			pier_msg_free(m);
	}
}

static void accept_conns(struct server *s, pier_listener *l)
{
	pier_peer *p;

	while (pier_listener_accept(l, &p, 0) == 0) {
		struct sconn *nc = realloc(s->conns, (s->nconns + 1) * sizeof(*nc));

		if (!nc) {
			pier_peer_free(p);
			continue;
		}
		s->conns = nc;
		s->conns[s->nconns++] = (struct sconn){
			p, &s->workers[s->next_worker++ % s->nworkers], 0
		};
	}
}

/* One turn: waits for something to do (at most 200 ms), and does it. */
static int serve_turn(struct server *s, pier_listener *l)
{
	size_t nc = s->nconns, nw = s->nwaits, n = 2 + nc + nw;
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	bool paused = false;
	int r;

	if (!pfd)
		return -ENOMEM;
	pfd[0] = (struct pollfd){ s->wake_fd, POLLIN, 0 };
	pfd[1] = (struct pollfd){ pier_listener_fd(l), POLLIN, 0 };
	for (size_t i = 0; i < nc; i++) {
		/* A connection whose worker is behind is not read. */
		bool full = worker_full(s, s->conns[i].wk);

		paused |= full;
		pfd[2 + i] = (struct pollfd){ full ? -1 : pier_peer_fd(s->conns[i].peer), POLLIN, 0 };
	}
	for (size_t i = 0; i < nw; i++) {
		struct waiting *wt = s->waits[i];

		pfd[2 + nc + i] = (struct pollfd){
			wt->ping ? pier_sent_request_fd(wt->ping) : pier_received_request_fd(wt->req),
			POLLIN, 0
		};
	}
	r = poll(pfd, n, paused ? 20 : 200);
	if (r >= 0) {
		/* From the end: ending a wait or a connection moves the last
		 * one into its place, which is done already. */
		for (size_t i = nw; i-- > 0;)
			if (s->waits[i]->ping)
				step_ask(s, i); /* also when its deadline passed */
			else if (pfd[2 + nc + i].revents)
				step_sum(s, i);
		for (size_t i = nc; i-- > 0;)
			if (pfd[2 + i].revents)
				read_conn(s, i);
		if (pfd[0].revents)
			take_handed_back(s);
		if (pfd[1].revents)
			accept_conns(s, l);
	}
	free(pfd);
	return r < 0 && errno != EINTR ? -errno : 0;
}

static int server_start(struct server *s)
{
	*s = (struct server){ .mu = PTHREAD_MUTEX_INITIALIZER };
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0)
		return -errno;
	for (; s->nworkers < WORKERS; s->nworkers++) {
		struct worker *wk = &s->workers[s->nworkers];

		*wk = (struct worker){ .s = s };
		wk->tail = &wk->jobs;
		pthread_cond_init(&wk->cond, NULL);
		if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
			pthread_cond_destroy(&wk->cond);
			break;
		}
	}
	return s->nworkers ? 0 : -EAGAIN;
}

static void server_stop(struct server *s)
{
	while (s->nwaits)
		end_wait(s, s->nwaits - 1);
	while (s->nconns)
		drop_conn(s, s->nconns - 1);
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	for (size_t i = 0; i < s->nworkers; i++)
		pthread_cond_signal(&s->workers[i].cond);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < s->nworkers; i++) {
		pthread_join(s->workers[i].thread, NULL);
		pthread_cond_destroy(&s->workers[i].cond);
	}
	take_handed_back(s); /* no connection left: each wait ends */
	free(s->waits);
	free(s->conns);
	close(s->wake_fd);
}

static volatile sig_atomic_t stop_serving;

static void on_stop(int sig)
{
	stop_serving = 1;
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

int cmd_serve_conformance(int argc, char **argv, const struct tool_opts *opts)
{
	struct tool_opts o = *opts;
	struct sigaction sa = { .sa_handler = on_stop };
	int first = tool_parse_args(argc, argv, &serve_cmd, &o);
	struct server s;
	pier_listener *l;
	pier_config *cfg;
	char bound[256];
	int r;

	tool_check_args(argc, argv, first, 1, &serve_cmd);
	timeout_ms = o.timeout_ms;
	cfg = tool_config(&o);
	r = pier_config_set_send_timeout(cfg, 0);
	if (r == 0)
		r = pier_config_set_max_queued(cfg, 4 << 20, SEND_QUEUE);
	if (r == 0)
		r = pier_listener_new(&l, argv[first], cfg);
	pier_config_free(cfg);
	if (r < 0)
		return tool_fail_listen(argv[first], r);
	r = server_start(&s);
	if (r < 0) {
		pier_listener_free(l);
		return tool_fail("cannot start the workers", r);
	}
	pier_listener_address(l, bound, sizeof(bound));
	printf("serving the conformance services on %s\n", bound);
	fflush(stdout);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!stop_serving && r == 0)
		r = serve_turn(&s, l);
	if (r < 0)
		tool_fail("poll", r);
	server_stop(&s);
	pier_listener_free(l);
	return r < 0 ? EXIT_FAILURE_IO : EXIT_OK;
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
