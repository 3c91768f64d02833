/* SPDX-License-Identifier: MIT */
/*
 * The libraries users would pick instead, doing the same work as the
 * libpier scenarios: ZeroMQ and nng, PUSH/PULL one way and REQ/REP round
 * trips, over their Unix-socket (ipc://) transports, and ZeroMQ's
 * PUSH/PULL over tcp:// too.  Built only when
 * configure found them; the library never depends on either.
 */
#define _GNU_SOURCE
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "others.h"

#ifdef HAVE_ZMQ
#include <zmq.h>
#endif
#ifdef HAVE_NNG
#include <nng/nng.h>
#include <nng/protocol/pipeline0/pull.h>
#include <nng/protocol/pipeline0/push.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#endif

#if defined(HAVE_ZMQ) || defined(HAVE_NNG)
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void endpoint(char *buf, size_t len, const char *lib)
{
	snprintf(buf, len, "ipc:///tmp/pier-bench-%s-%d", lib, (int)getpid());
}

/* Waits for a child, and removes the socket file of the endpoint ep it
 * bound (if any), which the library leaves behind; false if it failed. */
static bool reaped(pid_t pid, const char *ep)
{
	int status;
	bool ok = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0;

	if (ep)
		unlink(ep + strlen("ipc://"));
	return ok;
}
#endif

#ifdef HAVE_ZMQ
bool zmq_available(void)
{
	return true;
}

/* PUSH/PULL: the client pushes count messages; the puller says when it has
 * them all over a pipe (PULL cannot answer).  Over ipc://, or tcp:// on the
 * loopback (ZeroMQ sets TCP_NODELAY, as libpier does); the puller binds and
 * tells the pusher its endpoint through the pipe.  Returns messages/s, or
 * -1. */
double zmq_push_pull(size_t size, long count, bool tcp)
{
	char ep[128], *body = calloc(1, size + 1), ack;
	unsigned char eplen;
	int pipefd[2];
	pid_t pid;
	double t0;

	endpoint(ep, sizeof(ep), "zmq");
	if (tcp)
		snprintf(ep, sizeof(ep), "tcp://127.0.0.1:*");
	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PULL);
		char *buf = malloc(size + 1), bound[128];
		size_t blen = sizeof(bound);

		close(pipefd[0]);
		if (zmq_bind(s, ep) != 0 || zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, bound, &blen) != 0)
			_exit(1);
		eplen = (unsigned char)strlen(bound);
		if (write(pipefd[1], &eplen, 1) != 1 || write(pipefd[1], bound, eplen) != eplen)
			_exit(1);
		for (long i = 0; i < count; i++)
			if (zmq_recv(s, buf, size + 1, 0) < 0)
				_exit(1);
		if (write(pipefd[1], "k", 1) != 1)
			_exit(1);
		zmq_close(s);
		zmq_ctx_term(ctx);
		_exit(0);
	}
	close(pipefd[1]);
	{
		void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
		int hwm = 100000, linger = 0;
		char bound[128];

		zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
		zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
		if (read(pipefd[0], &eplen, 1) != 1 || read(pipefd[0], bound, eplen) != eplen)
			t0 = -1;
		else if ((bound[eplen] = 0, zmq_connect(s, bound)) != 0)
			t0 = -1;
		else {
			t0 = now_s();
			for (long i = 0; i < count; i++)
				if (zmq_send(s, body, size, 0) < 0)
					break;
			t0 = read(pipefd[0], &ack, 1) == 1 ? count / (now_s() - t0) : -1;
		}
		zmq_close(s);
		zmq_ctx_term(ctx);
	}
	close(pipefd[0]);
	free(body);
	return reaped(pid, tcp ? NULL : ep) ? t0 : -1;
}

/* REQ/REP: iters round trips of size bytes.  Returns seconds per round
 * trip, or -1. */
double zmq_req_rep(size_t size, long iters)
{
	char ep[128], *body = calloc(1, size + 1), *buf = malloc(size + 1), ack;
	int pipefd[2];
	pid_t pid;
	double t = -1;

	endpoint(ep, sizeof(ep), "zmqrr");
	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REP);
		int n;

		close(pipefd[0]);
		if (zmq_bind(s, ep) != 0 || write(pipefd[1], "r", 1) != 1)
			_exit(1);
		for (long i = 0; i < iters + 100; i++) {
			n = zmq_recv(s, buf, size + 1, 0);
			if (n < 0 || zmq_send(s, buf, (size_t)n, 0) < 0)
				_exit(1);
		}
		zmq_close(s);
		zmq_ctx_term(ctx);
		_exit(0);
	}
	close(pipefd[1]);
	{
		void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_REQ);
		double t0 = 0;

		if (read(pipefd[0], &ack, 1) == 1 && zmq_connect(s, ep) == 0) {
			long i;

			for (i = -100; i < iters; i++) {
				if (i == 0)
					t0 = now_s();
				if (zmq_send(s, body, size, 0) < 0 || zmq_recv(s, buf, size + 1, 0) < 0)
					break;
			}
			if (i == iters)
				t = (now_s() - t0) / iters;
		}
		zmq_close(s);
		zmq_ctx_term(ctx);
	}
	close(pipefd[0]);
	free(body);
	free(buf);
	return reaped(pid, ep) ? t : -1;
}
#else
bool zmq_available(void)
{
	return false;
}

double zmq_push_pull(size_t size, long count, bool tcp)
{
	return -1;
}

double zmq_req_rep(size_t size, long iters)
{
	return -1;
}
#endif

#ifdef HAVE_NNG
bool nng_available(void)
{
	return true;
}

/* nng refuses to run in a process forked after it started (it panics), so
 * every nng measurement runs in a fresh child of its own, which reports
 * its result through a pipe. */
static double in_child(double (*fn)(size_t, long), size_t size, long n)
{
	int fds[2];
	double v = -1;
	pid_t pid;

	if (pipe(fds) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		v = fn(size, n);
		_exit(write(fds[1], &v, sizeof(v)) == sizeof(v) ? 0 : 1);
	}
	close(fds[1]);
	if (pid < 0 || read(fds[0], &v, sizeof(v)) != sizeof(v))
		v = -1;
	close(fds[0]);
	return reaped(pid, NULL) ? v : -1;
}

/* Queues like the others have, so that a send does not wait for the
 * receiver's every message (nng's default is none). */
static void nng_buffers(nng_socket s)
{
	nng_socket_set_int(s, NNG_OPT_SENDBUF, 8192);
	nng_socket_set_int(s, NNG_OPT_RECVBUF, 8192);
	/* A run that stalls fails instead of hanging the benchmark. */
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 60000);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 60000);
}

static double nng_push_pull_here(size_t size, long count)
{
	char ep[128], *body = calloc(1, size + 1), ack;
	int pipefd[2];
	pid_t pid;
	double t0 = -1;

	endpoint(ep, sizeof(ep), "nng");
	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		nng_socket s;

		close(pipefd[0]);
		if (nng_pull0_open(&s) != 0)
			_exit(1);
		nng_buffers(s);
		if (nng_listen(s, ep, NULL, 0) != 0 || write(pipefd[1], "r", 1) != 1)
			_exit(1);
		for (long i = 0; i < count; i++) {
			char *buf;
			size_t sz;

			if (nng_recv(s, &buf, &sz, NNG_FLAG_ALLOC) != 0)
				_exit(1);
			nng_free(buf, sz);
		}
		if (write(pipefd[1], "k", 1) != 1)
			_exit(1);
		nng_close(s);
		_exit(0);
	}
	close(pipefd[1]);
	{
		nng_socket s;

		if (read(pipefd[0], &ack, 1) == 1 && nng_push0_open(&s) == 0) {
			nng_buffers(s);
			if (nng_dial(s, ep, NULL, 0) == 0) {
				double start = now_s();
				long i;

				for (i = 0; i < count; i++)
					if (nng_send(s, body, size, 0) != 0)
						break;
				if (i == count && read(pipefd[0], &ack, 1) == 1)
					t0 = count / (now_s() - start);
			}
			nng_close(s);
		}
	}
	close(pipefd[0]);
	free(body);
	return reaped(pid, ep) ? t0 : -1;
}

static double nng_req_rep_here(size_t size, long iters)
{
	char ep[128], *body = calloc(1, size + 1), ack;
	int pipefd[2];
	pid_t pid;
	double t = -1;

	endpoint(ep, sizeof(ep), "nngrr");
	if (pipe(pipefd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		nng_socket s;

		close(pipefd[0]);
		if (nng_rep0_open(&s) != 0 || nng_listen(s, ep, NULL, 0) != 0 ||
		    write(pipefd[1], "r", 1) != 1)
			_exit(1);
		for (long i = 0; i < iters + 100; i++) {
			char *buf;
			size_t sz;

			if (nng_recv(s, &buf, &sz, NNG_FLAG_ALLOC) != 0 ||
			    nng_send(s, buf, sz, NNG_FLAG_ALLOC) != 0)
				_exit(1);
		}
		nng_close(s);
		_exit(0);
	}
	close(pipefd[1]);
	{
		nng_socket s;

		if (read(pipefd[0], &ack, 1) == 1 && nng_req0_open(&s) == 0) {
			if (nng_dial(s, ep, NULL, 0) == 0) {
				double t0 = 0;
				long i;

				for (i = -100; i < iters; i++) {
					char *buf;
					size_t sz;

					if (i == 0)
						t0 = now_s();
					if (nng_send(s, body, size, 0) != 0 ||
					    nng_recv(s, &buf, &sz, NNG_FLAG_ALLOC) != 0)
						break;
					nng_free(buf, sz);
				}
				if (i == iters)
					t = (now_s() - t0) / iters;
			}
			nng_close(s);
		}
	}
	close(pipefd[0]);
	free(body);
	return reaped(pid, ep) ? t : -1;
}

double nng_push_pull(size_t size, long count)
{
	return in_child(nng_push_pull_here, size, count);
}

double nng_req_rep(size_t size, long iters)
{
	return in_child(nng_req_rep_here, size, iters);
}
#else
bool nng_available(void)
{
	return false;
}

double nng_push_pull(size_t size, long count)
{
	return -1;
}

double nng_req_rep(size_t size, long iters)
{
	return -1;
}
#endif
