/* SPDX-License-Identifier: MIT */
/*
 * pier_server's benchmarks (bench --only server):
 *
 *   server-echo-*       64 connections from another process, each with 16
 *                       requests of 16 B in flight, against pier_server with
 *                       2 workers and against a minimal epoll echo server
 *                       doing the same framing (stream framing over Unix
 *                       stream sockets), alternately, in the same run;
 *   server-idle-peers-* what each idle peer served costs the server's
 *                       process;
 *   server-stop-*       a stop with 1,000 requests in flight: how long it
 *                       takes against its deadline, and what the clients
 *                       saw of each request.
 *
 * The clients are raw programs (one thread, epoll or blocking reads), the
 * same for both servers, so that the numbers are the servers'.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pier.h>

#include "bench.h"

#define SVC 1
#define HEADER 16 /* the stream framing: length, type, id, service id */

/* --- the raw side ----------------------------------------------------------- */

/* A frame of the Fizyr stream framing, little-endian (this host's order,
 * and libpier's default): the length counts the 12 header bytes after it. */
static size_t put_frame(unsigned char *buf, uint32_t type, uint32_t id, int32_t svc,
			const void *body, size_t len)
{
	uint32_t w[4] = { (uint32_t)(12 + len), type, id, (uint32_t)svc };

	memcpy(buf, w, HEADER);
	memcpy(buf + HEADER, body, len);
	return HEADER + len;
}

/* The frame at buf (have bytes): its size, or 0 when it is not all there. */
static size_t frame_size(const unsigned char *buf, size_t have)
{
	uint32_t len;

	if (have < 4)
		return 0;
	memcpy(&len, buf, 4);
	if (len < 12 || len > 1 << 20)
		die("a frame's length", -EPROTO);
	return have >= 4 + (size_t)len ? 4 + (size_t)len : 0;
}

static void frame_header(const unsigned char *f, uint32_t *type, uint32_t *id, int32_t *svc)
{
	uint32_t w[3];

	memcpy(w, f + 4, 12);
	*type = w[0];
	*id = w[1];
	*svc = (int32_t)w[2];
}

static int unix_listen(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	unlink(path);
	if (l < 0 || bind(l, (struct sockaddr *)&un, sizeof(un)) < 0 || listen(l, 4096) < 0)
		die("listen", -errno);
	return l;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(un.sun_path, sizeof(un.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0)
		die("connect", -errno);
	return fd;
}

/* --- the echo row: the servers ---------------------------------------------- */

#define ECHO_CONNS 64
#define ECHO_DEPTH 16
#define ECHO_BODY 16

struct echo_arg {
	char path[108];
};

/* The baseline: one thread, epoll, reads that do not wait; answers each
 * request with its body, every response of one read in one write. */
struct raw_conn {
	int fd;
	size_t have;
	unsigned char in[64 * 1024];
	unsigned char out[64 * 1024];
};

static bool raw_conn_readable(struct raw_conn *c)
{
	size_t done = 0, out = 0;
	ssize_t n = recv(c->fd, c->in + c->have, sizeof(c->in) - c->have, MSG_DONTWAIT);
	size_t f;

	if (n <= 0)
		return n < 0 && errno == EAGAIN;
	c->have += (size_t)n;
	while ((f = frame_size(c->in + done, c->have - done)) > 0) {
		uint32_t type, id;
		int32_t svc;

		frame_header(c->in + done, &type, &id, &svc);
		out += put_frame(c->out + out, 1, id, svc, c->in + done + HEADER, f - HEADER);
		done += f;
	}
	memmove(c->in, c->in + done, c->have - done);
	c->have -= done;
	/* At most ECHO_DEPTH responses wait in a client's socket: the write
	 * never finds it full. */
	return write_full(c->fd, c->out, out) == 0;
}

static void raw_epoll_server(int ctl, void *arg)
{
	struct echo_arg *a = arg;
	int l = unix_listen(a->path), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[64];
	bool running = true;

	epoll_ctl(ep, EPOLL_CTL_ADD, l, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &l });
	epoll_ctl(ep, EPOLL_CTL_ADD, ctl, &ev);
	write_full(ctl, "r", 1);
	while (running) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			struct raw_conn *c = evs[i].data.ptr;

			if (!c) {
				running = false;
			} else if (evs[i].data.ptr == &l) {
				struct raw_conn *nc = calloc(1, sizeof(*nc));

				nc->fd = accept4(l, NULL, NULL, SOCK_CLOEXEC);
				if (nc->fd < 0)
					die("accept", -errno);
				epoll_ctl(ep, EPOLL_CTL_ADD, nc->fd,
					  &(struct epoll_event){ .events = EPOLLIN, .data.ptr = nc });
			} else if (!raw_conn_readable(c)) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				free(c);
			}
		}
	}
	unlink(a->path);
}

static int echo_handler(void *userdata, pier_peer *peer, void *peer_data, pier_msg *m,
			pier_received_request *req)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);

	(void)userdata;
	(void)peer;
	(void)peer_data;
	pier_received_request_send_response(req, pier_msg_header(m)->service_id, body, len, NULL,
					    0);
	return PIER_HANDLER_DONE;
}

static pier_server *new_server(const char *path, unsigned int workers)
{
	char address[160];
	pier_server *s;
	int r;

	snprintf(address, sizeof(address), "unix://%s", path);
	unlink(path);
	if ((r = pier_server_new(&s, NULL)) < 0 || (r = pier_server_set_workers(s, workers)) < 0 ||
	    (r = pier_server_listen(s, address)) < 0)
		die("server", r);
	return s;
}

static void pier_echo_server(int ctl, void *arg)
{
	struct echo_arg *a = arg;
	pier_server *s = new_server(a->path, 2);
	char c;
	int r;

	if ((r = pier_server_handle_requests(s, SVC, echo_handler, NULL)) < 0 ||
	    (r = pier_server_start(s)) < 0)
		die("server", r);
	write_full(ctl, "r", 1);
	read_full(ctl, &c, 1);
	pier_server_free(s);
	unlink(a->path);
}

/* --- the echo row: the client ----------------------------------------------- */

struct echo_result {
	double rate, p50, p99; /* requests/s, seconds */
};

struct client_conn {
	int fd;
	uint32_t next_id;
	size_t have;
	struct {
		uint32_t id;
		double sent;
	} slot[ECHO_DEPTH];
	unsigned char in[4096];
};

struct latencies {
	float *v;
	size_t n, cap;
	bool on;
	long done;
};

static void send_request(struct client_conn *c, unsigned int slot, unsigned char *out, size_t *len)
{
	static const unsigned char body[ECHO_BODY] = "0123456789abcdef";

	c->slot[slot].id = c->next_id++;
	c->slot[slot].sent = now_s();
	*len += put_frame(out + *len, 0, c->slot[slot].id, SVC, body, sizeof(body));
}

/* Takes the responses that came on c and sends as many new requests. */
static void client_readable(struct client_conn *c, struct latencies *lat)
{
	unsigned char out[ECHO_DEPTH * (HEADER + ECHO_BODY)];
	size_t done = 0, len = 0, f;
	ssize_t n = recv(c->fd, c->in + c->have, sizeof(c->in) - c->have, MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n <= 0)
		die("the echo server closed a connection", -EPIPE);
	c->have += (size_t)n;
	while ((f = frame_size(c->in + done, c->have - done)) > 0) {
		uint32_t type, id;
		int32_t svc;
		unsigned int s = 0;

		frame_header(c->in + done, &type, &id, &svc);
		while (s < ECHO_DEPTH && c->slot[s].id != id)
			s++;
		if (type != 1 || svc != SVC || s == ECHO_DEPTH)
			die("an echo response", -EPROTO);
		if (lat->on) {
			if (lat->n < lat->cap)
				lat->v[lat->n++] = (float)(now_s() - c->slot[s].sent);
			lat->done++;
		}
		send_request(c, s, out, &len);
		done += f;
	}
	memmove(c->in, c->in + done, c->have - done);
	c->have -= done;
	if (len && write_full(c->fd, out, len) < 0)
		die("write", -errno);
}

static int cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* Drives ECHO_CONNS connections with ECHO_DEPTH requests in flight each
 * for a warm-up, then for the measured time. */
static struct echo_result echo_client(const char *path)
{
	double warm = quick ? 0.05 : 0.3, run = quick ? 0.2 : 2.0, t0, t_end;
	struct client_conn *conns = calloc(ECHO_CONNS, sizeof(*conns));
	struct latencies lat = { .cap = 4 << 20 };
	struct echo_result res;
	struct epoll_event evs[ECHO_CONNS];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	lat.v = malloc(lat.cap * sizeof(*lat.v));
	for (int i = 0; i < ECHO_CONNS; i++) {
		unsigned char out[ECHO_DEPTH * (HEADER + ECHO_BODY)];
		size_t len = 0;

		conns[i].fd = unix_connect(path);
		epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd,
			  &(struct epoll_event){ .events = EPOLLIN, .data.ptr = &conns[i] });
		for (unsigned int s = 0; s < ECHO_DEPTH; s++)
			send_request(&conns[i], s, out, &len);
		if (write_full(conns[i].fd, out, len) < 0)
			die("write", -errno);
	}
	t0 = now_s();
	t_end = t0 + warm + run;
	for (double t = t0; t < t_end; t = now_s()) {
		int n = epoll_wait(ep, evs, ECHO_CONNS, 1000);

		if (n <= 0)
			die("the echo server stalled", n < 0 ? -errno : -ETIMEDOUT);
		if (!lat.on && t >= t0 + warm) {
			lat.on = true;
			t0 = t;
		}
		for (int i = 0; i < n; i++)
			client_readable(evs[i].data.ptr, &lat);
	}
	res.rate = lat.done / (now_s() - t0);
	qsort(lat.v, lat.n, sizeof(*lat.v), cmp_float);
	res.p50 = lat.n ? lat.v[lat.n / 2] : 0;
	res.p99 = lat.n ? lat.v[lat.n * 99 / 100] : 0;
	for (int i = 0; i < ECHO_CONNS; i++)
		close(conns[i].fd);
	close(ep);
	free(conns);
	free(lat.v);
	return res;
}

static struct echo_result echo_run(void (*server)(int ctl, void *arg))
{
	struct echo_arg a;
	struct echo_result res;
	int ctl[2];
	pid_t pid;
	char c;

	snprintf(a.path, sizeof(a.path), "/tmp/pier-bench-server-%d.sock", (int)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0)
		die("socketpair", -errno);
	pid = spawn(server, ctl[1], ctl[0], &a);
	if (read_full(ctl[0], &c, 1) < 0)
		die("the echo server did not start", -EIO);
	res = echo_client(a.path);
	close(ctl[0]);
	reap(pid);
	return res;
}

static void bench_server_echo(void)
{
	const char *name = "server-echo-64x16-16B-unix";
	struct echo_result best_pier = { 0, 0, 0 }, best_raw = { 0, 0, 0 };
	char row[96];

	if (!selected(name))
		return;
	for (int round = 0; round < (quick ? 1 : 3); round++) {
		struct echo_result p = echo_run(pier_echo_server), r = echo_run(raw_epoll_server);

		if (p.rate > best_pier.rate)
			best_pier = p;
		if (r.rate > best_raw.rate)
			best_raw = r;
	}
	result(name, best_pier.rate / 1e3, "kreq/s", best_raw.rate / 1e3, HIGHER, 0.5);
	snprintf(row, sizeof(row), "%s-p50", name);
	result(row, best_pier.p50 * 1e6, "us", best_raw.p50 * 1e6, INFO, 0);
	snprintf(row, sizeof(row), "%s-p99", name);
	result(row, best_pier.p99 * 1e6, "us", best_raw.p99 * 1e6, INFO, 0);
}

/* --- idle peers ------------------------------------------------------------- */

struct idle_arg {
	char path[108];
	long n;
};

/* n raw connections that sit idle until told. */
static void idle_client(int ctl, void *arg)
{
	struct idle_arg *a = arg;
	int *fds = calloc((size_t)a->n, sizeof(int));
	char c;

	for (long i = 0; i < a->n; i++)
		fds[i] = unix_connect(a->path);
	write_full(ctl, "c", 1);
	read_full(ctl, &c, 1);
	for (long i = 0; i < a->n; i++)
		close(fds[i]);
	free(fds);
}

/* Each peer the server serves holds its socket, and no other fd: one fd
 * in the server's process, one in the clients'. */
static void bench_server_idle(void)
{
	struct idle_arg a = { .n = quick ? 1000 : 10000 };
	struct rlimit rl = { (rlim_t)a.n + 64, (rlim_t)a.n + 64 };
	char name[64], c;
	pier_server *s;
	long before, after;
	double t_end;
	int ctl[2], r;
	pid_t pid;

	if (!selected("server-idle-peers"))
		return;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		a.n = (long)rl.rlim_cur - 64;
	}
	snprintf(name, sizeof(name), "server-idle-peers-%ld", a.n);
	snprintf(a.path, sizeof(a.path), "/tmp/pier-bench-server-%d.sock", (int)getpid());
	s = new_server(a.path, 2);
	if ((r = pier_server_handle_requests(s, SVC, echo_handler, NULL)) < 0)
		die("server", r);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0)
		die("socketpair", -errno);
	/* Started after the fork: the child is a plain single-threaded program. */
	pid = spawn(idle_client, ctl[1], ctl[0], &a);
	if ((r = pier_server_start(s)) < 0)
		die("start", r);
	before = rss_kib();
	if (read_full(ctl[0], &c, 1) < 0)
		die("the clients did not connect", -EIO);
	t_end = now_s() + 30;
	while (pier_server_stat(s, PIER_SERVER_STAT_PEERS) < (uint64_t)a.n && now_s() < t_end)
		usleep(1000);
	if (pier_server_stat(s, PIER_SERVER_STAT_PEERS) < (uint64_t)a.n)
		die("the server did not take every peer", -ETIMEDOUT);
	usleep(100000);
	after = rss_kib();
	write_full(ctl[0], "x", 1);
	close(ctl[0]);
	reap(pid);
	pier_server_free(s);
	unlink(a.path);
	result(name, (double)(after - before) / a.n, "KiB/peer", 0, ABSOLUTE_MAX, 16);
}

/* --- a stop with requests in flight ------------------------------------------ */

#define STOP_CONNS 100
#define STOP_DEPTH 10
#define STOP_REQUESTS (STOP_CONNS * STOP_DEPTH)
/* The documented errors: a request in flight at the deadline, one that
 * came after the stop began. */
#define STOPPED_ERROR "the server stopped before the request finished"
#define SHUTTING_DOWN_ERROR "the server is shutting down"

struct stop_arg {
	char path[108];
};

/* What the clients saw, per request. */
struct stop_seen {
	long responses, stopped, shutting_down, neither;
};

/* Reads one connection's answers until it closes; each request's first
 * answer counts. */
static void stop_read(int fd, struct stop_seen *seen)
{
	unsigned char buf[16384];
	bool answered[STOP_DEPTH] = { false };
	size_t have = 0, done, f;
	long got = 0;
	ssize_t n;

	while ((n = read(fd, buf + have, sizeof(buf) - have)) > 0) {
		have += (size_t)n;
		done = 0;
		while ((f = frame_size(buf + done, have - done)) > 0) {
			const char *body = (const char *)buf + done + HEADER;
			size_t len = f - HEADER;
			uint32_t type, id;
			int32_t svc;

			frame_header(buf + done, &type, &id, &svc);
			done += f;
			if (type != 1 || id >= STOP_DEPTH || answered[id])
				continue;
			answered[id] = true;
			got++;
			if (svc == SVC)
				seen->responses++;
			else if (len >= strlen(STOPPED_ERROR) && !memcmp(body, STOPPED_ERROR, strlen(STOPPED_ERROR)))
				seen->stopped++;
			else if (len == strlen(SHUTTING_DOWN_ERROR) && !memcmp(body, SHUTTING_DOWN_ERROR, len))
				seen->shutting_down++;
			else
				seen->neither++;
		}
		memmove(buf, buf + done, have - done);
		have -= done;
	}
	seen->neither += STOP_DEPTH - got;
}

static void stop_clients(int ctl, void *arg)
{
	struct stop_arg *a = arg;
	struct timeval tv = { 30, 0 };
	struct stop_seen seen = { 0, 0, 0, 0 };
	int fds[STOP_CONNS];
	char c;

	if (read_full(ctl, &c, 1) < 0)
		_exit(1);
	for (int i = 0; i < STOP_CONNS; i++) {
		unsigned char out[STOP_DEPTH * (HEADER + 8)];
		size_t len = 0;

		fds[i] = unix_connect(a->path);
		setsockopt(fds[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		for (uint32_t id = 0; id < STOP_DEPTH; id++)
			len += put_frame(out + len, 0, id, SVC, "request", 8);
		if (write_full(fds[i], out, len) < 0)
			_exit(1);
	}
	for (int i = 0; i < STOP_CONNS; i++) {
		stop_read(fds[i], &seen);
		close(fds[i]);
	}
	write_full(ctl, &seen, sizeof(seen));
}

/* Requests kept by the handler, answered by a thread of their own at a
 * steady pace from the stop on: those before the deadline with their
 * response, the others ended by the stop. */
struct keeper {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pier_received_request *reqs[STOP_REQUESTS];
	size_t n;
	double start, interval; /* start 0: not yet */
	long answered;
};

static int keep_handler(void *userdata, pier_peer *peer, void *peer_data, pier_msg *m,
			pier_received_request *req)
{
	struct keeper *k = userdata;

	(void)peer;
	(void)peer_data;
	(void)m;
	pthread_mutex_lock(&k->mu);
	k->reqs[k->n++] = req;
	pthread_cond_broadcast(&k->cond);
	pthread_mutex_unlock(&k->mu);
	return PIER_HANDLER_KEEP;
}

static void *answerer(void *arg)
{
	struct keeper *k = arg;
	bool late = false;

	pthread_mutex_lock(&k->mu);
	while (k->start == 0 || k->n < STOP_REQUESTS)
		pthread_cond_wait(&k->cond, &k->mu);
	pthread_mutex_unlock(&k->mu);
	for (size_t i = 0; i < STOP_REQUESTS; i++) {
		double at = k->start + (double)i * k->interval, t = now_s();

		if (!late && at > t)
			usleep((useconds_t)((at - t) * 1e6));
		if (pier_received_request_send_response(k->reqs[i], SVC, "done", 4, NULL, 0) == 0)
			k->answered++;
		else
			late = true; /* ended by the stop: the rest are too */
		pier_received_request_free(k->reqs[i]);
	}
	return NULL;
}

static void bench_server_stop(void)
{
	const char *name = "server-stop-1000-in-flight";
	int deadline_ms = quick ? 200 : 1000, ctl[2], r;
	struct keeper k = { .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	struct stop_seen seen;
	struct stop_arg a;
	pthread_t thread;
	pier_server *s;
	double t_stop, t_end;
	char row[96];
	pid_t pid;

	if (!selected(name))
		return;
	snprintf(a.path, sizeof(a.path), "/tmp/pier-bench-server-%d.sock", (int)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0)
		die("socketpair", -errno);
	pid = spawn(stop_clients, ctl[1], ctl[0], &a);
	s = new_server(a.path, 2);
	if ((r = pier_server_handle_requests(s, SVC, keep_handler, &k)) < 0 ||
	    (r = pier_server_set_stop_timeout(s, deadline_ms)) < 0 ||
	    (r = pier_server_start(s)) < 0)
		die("server", r);
	pthread_create(&thread, NULL, answerer, &k);
	write_full(ctl[0], "g", 1);
	pthread_mutex_lock(&k.mu);
	while (k.n < STOP_REQUESTS)
		pthread_cond_wait(&k.cond, &k.mu);
	t_stop = now_s();
	pier_server_stop(s);
	/* Half of them answered before the deadline. */
	k.interval = deadline_ms / 1e3 * 2 / STOP_REQUESTS;
	k.start = t_stop;
	pthread_cond_broadcast(&k.cond);
	pthread_mutex_unlock(&k.mu);
	if ((r = pier_server_wait(s, 60000)) < 0)
		die("wait", r);
	t_end = now_s();
	pthread_join(thread, NULL);
	pier_server_free(s);
	unlink(a.path);
	if (read_full(ctl[0], &seen, sizeof(seen)) < 0)
		die("the clients failed", -EIO);
	close(ctl[0]);
	reap(pid);
	result(name, (t_end - t_stop) * 1e3, "ms", deadline_ms, LOWER, 1.1);
	snprintf(row, sizeof(row), "%s-neither", name);
	result(row, (double)seen.neither, "requests", 0, ABSOLUTE_MAX, 0);
	snprintf(row, sizeof(row), "%s-responses", name);
	result(row, (double)seen.responses, "requests", 0, MEASURE, 0);
	snprintf(row, sizeof(row), "%s-stop-errors", name);
	result(row, (double)(seen.stopped + seen.shutting_down), "requests", 0, MEASURE, 0);
	if (seen.responses != k.answered)
		fprintf(stderr, "bench: %s: the server sent %ld responses, the clients saw %ld\n",
			name, k.answered, seen.responses);
}

void bench_server(void)
{
	bench_server_echo();
	bench_server_idle();
	bench_server_stop();
}
