/* SPDX-License-Identifier: MIT */
/*
 * Faults: a remote killed at the worst moments, a remote that never reads,
 * thousands of connections coming and going, many threads doing everything
 * at once while connections die under them, and fork.  Every wait must end
 * with a clear result, and nothing may leak (the fixture counts fds; the
 * tests that churn measure memory too).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"

#if defined(__SANITIZE_THREAD__)
#define RUNNING_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RUNNING_UNDER_TSAN 1
#endif
#endif
#ifndef RUNNING_UNDER_TSAN
#define RUNNING_UNDER_TSAN 0
#endif

/* The two socketpair kinds a child process can hold the other end of. */
static const int pair_types[] = { SOCK_STREAM, SOCK_SEQPACKET };

static long vm_size_kib(void)
{
	long pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld", &pages), 1);
	fclose(f);
	return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* What a connection that died under us may report. */
static bool is_end(int r)
{
	/* Over TLS, a remote gone without close_notify ends it "truncated". */
	return r == -PIER_ECLOSED || r == -ECONNRESET || r == -EPIPE || r == -PIER_EPARTIAL ||
	       r == -PIER_ETLSTRUNCATED;
}

/* Forks a child that runs fn(its end of a socketpair, notify) and then
 * waits to be killed; returns its pid.  The child writes to notify when it
 * has done what it should. */
static pid_t spawn_remote(int type, int *ours, int *notify, void (*fn)(int fd, int notify))
{
	int sv[2], pipefd[2];
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		close(pipefd[0]);
		fn(sv[1], pipefd[1]);
		for (;;)
			pause();
	}
	close(sv[1]);
	close(pipefd[1]);
	*ours = sv[0];
	*notify = pipefd[0];
	return pid;
}

static void wait_notice(int notify)
{
	char c;

	ck_assert_int_eq(read(notify, &c, 1), 1);
}

static void kill_remote(pid_t pid, int notify)
{
	int status;

	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status),
		      "the remote exited with status %d before it was killed (its stderr says why)",
		      WEXITSTATUS(status));
	close(notify);
}

/* --- killed mid-request -------------------------------------------------- */

/* Takes the request and holds it open. */
static void holding_remote(int fd, int notify)
{
	pier_received_request *rr;
	pier_peer *p;
	pier_msg *m;

	if (pier_peer_adopt(&p, fd, NULL) < 0 || pier_peer_recv(p, &m, &rr, WAIT) < 0 || !rr)
		_exit(1);
	if (write(notify, "r", 1) != 1)
		_exit(1);
}

struct waiter {
	pier_peer *peer;
	pier_sent_request *sr;
	int timeout;
	atomic_int tid;
	int result;
	bool at_deadline; /* the wait lasted until its deadline */
};

static void *wait_peer(void *arg)
{
	struct waiter *w = arg;
	struct timespec deadline = deadline_in(w->timeout);
	pier_received_request *rr;
	pier_msg *m;

	atomic_store(&w->tid, thread_id());
	w->result = pier_peer_recv(w->peer, &m, &rr, w->timeout);
	w->at_deadline = w->timeout >= 0 && deadline_passed(&deadline);
	if (w->result == 0) {
		pier_msg_free(m);
		pier_received_request_free(rr);
	}
	return NULL;
}

static void *wait_response(void *arg)
{
	struct waiter *w = arg;
	struct timespec deadline = deadline_in(w->timeout);
	pier_msg *m;

	atomic_store(&w->tid, thread_id());
	w->result = pier_sent_request_recv_response(w->sr, &m, w->timeout);
	w->at_deadline = w->timeout >= 0 && deadline_passed(&deadline);
	if (w->result == 0)
		pier_msg_free(m);
	return NULL;
}

/* The remote dies holding our request: the thread waiting for the response
 * and the one waiting on the peer both learn the connection ended, and
 * sending fails.  Both are blocked in their waits when the remote dies:
 * one reads the socket, and the other, whose wait has a deadline, must be
 * woken when the reader learns of the end.  _i: the socket type, and which
 * one reads (the one on the peer for _i < 2). */
START_TEST(killed_mid_request)
{
	int fd, notify, r;
	pid_t pid = spawn_remote(pair_types[_i % 2], &fd, &notify, holding_remote);
	struct waiter wp, wr, *reader, *other;
	pier_sent_request *sr;
	pier_peer *p;
	pthread_t tp, tr;

	ck_assert_int_eq(pier_peer_adopt(&p, fd, NULL), 0);
	sr = send_request(p, 1, "hold this");
	wait_notice(notify);
	wp = (struct waiter){ .peer = p, .timeout = -1 };
	wr = (struct waiter){ .sr = sr, .timeout = -1 };
	reader = _i < 2 ? &wp : &wr;
	other = _i < 2 ? &wr : &wp;
	other->timeout = WAIT;
	atomic_init(&wp.tid, 0);
	atomic_init(&wr.tid, 0);
	if (reader == &wp) {
		ck_assert_int_eq(pthread_create(&tp, NULL, wait_peer, &wp), 0);
		wait_until(thread_waits(atomic_load(&wp.tid), true), WAIT);
		ck_assert_int_eq(pthread_create(&tr, NULL, wait_response, &wr), 0);
	} else {
		ck_assert_int_eq(pthread_create(&tr, NULL, wait_response, &wr), 0);
		wait_until(thread_waits(atomic_load(&wr.tid), true), WAIT);
		ck_assert_int_eq(pthread_create(&tp, NULL, wait_peer, &wp), 0);
	}
	wait_until(thread_waits(atomic_load(&other->tid), false), WAIT);
	kill_remote(pid, notify);
	pthread_join(tp, NULL);
	pthread_join(tr, NULL);
	ck_assert_msg(is_end(reader->result), "%s", pier_strerror(reader->result));
	ck_assert_msg(is_end(other->result), "%s", pier_strerror(other->result));
	ck_assert_msg(!other->at_deadline, "a wait ended at its deadline: nothing woke it");
	r = pier_writer_send_stream(pier_peer_get_writer(p), 1, "x", 1, NULL, 0);
	ck_assert_msg(r < 0, "sent to a dead remote");
	pier_sent_request_free(sr);
	pier_peer_free(p);
}
END_TEST

/* --- killed mid-frame ---------------------------------------------------- */

/* Writes one whole stream frame and the first half of the next. */
static void half_frame_remote(int fd, int notify)
{
	unsigned char buf[12 + 12 + 100] = { 0 };

	buf[0] = 12 + 4;          /* length: header + "done" */
	buf[4] = PIER_MSG_STREAM; /* type */
	memcpy(buf + 16, "done", 4);
	buf[20] = 12 + 100;       /* the next: header + 100 bytes */
	buf[24] = PIER_MSG_STREAM;
	if (write(fd, buf, 20 + 4 + 12 + 40) != 20 + 4 + 12 + 40 || write(notify, "w", 1) != 1)
		_exit(1);
}

/* The whole frame is delivered; the cut one ends the connection with
 * PIER_EPARTIAL, never as a message. */
START_TEST(killed_mid_frame)
{
	int fd, notify, r;
	pid_t pid = spawn_remote(SOCK_STREAM, &fd, &notify, half_frame_remote);
	pier_received_request *rr;
	pier_peer *p;
	pier_msg *m;

	ck_assert_int_eq(pier_peer_adopt(&p, fd, NULL), 0);
	wait_notice(notify);
	kill_remote(pid, notify);
	ck_assert_int_eq(pier_peer_recv(p, &m, &rr, WAIT), 0);
	assert_msg(m, PIER_MSG_STREAM, 0, "done");
	pier_msg_free(m);
	r = pier_peer_recv(p, &m, &rr, WAIT);
	ck_assert_msg(r == -PIER_EPARTIAL, "%s", pier_strerror(r));
	pier_peer_free(p);
}
END_TEST

/* --- killed mid-fd-send -------------------------------------------------- */

enum { FDS_PER_MSG = 5 };

/* Sends messages with fds as fast as the reader takes them, forever.  It
 * must still be sending when it is killed, so it keeps few fds queued and
 * in flight: without CAP_SYS_RESOURCE, the kernel refuses to pass more fds
 * than RLIMIT_NOFILE in flight at once for the user (ETOOMANYREFS), and the
 * library's queue holds a copy of every fd it keeps. */
static void fd_flood_remote(int fd, int notify)
{
	int fds[FDS_PER_MSG], r, smallest = 1, sock = dup(fd);
	pier_config *cfg;
	pier_peer *p;

	for (int i = 0; i < FDS_PER_MSG; i++)
		fds[i] = memfd_with("flood");
	/* A one-byte send queue limit lets one message wait in the library,
	 * and the kernel's smallest send buffer takes a few more.  The buffer
	 * is shrunk (through a second fd, as adopting takes fd) after the
	 * library has sized it for its largest packet. */
	if (pier_config_new(&cfg) < 0 || pier_config_set_max_queued(cfg, 4u << 20, 1) < 0 ||
	    pier_peer_adopt(&p, fd, cfg) < 0 ||
	    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &smallest, sizeof(smallest)) < 0 ||
	    write(notify, "s", 1) != 1)
		_exit(1);
	for (int i = 0;; i++) {
		r = pier_writer_send_stream(pier_peer_get_writer(p), i, "f", 1, fds, FDS_PER_MSG);
		if (r < 0) {
			fprintf(stderr, "the flood's send %d failed: %s\n", i, pier_strerror(r));
			_exit(1);
		}
	}
}

/* Every message that arrives carries all of its fds; then the end. */
START_TEST(killed_mid_fd_send)
{
	int fd, notify, r, got = 0;
	pid_t pid = spawn_remote(SOCK_SEQPACKET, &fd, &notify, fd_flood_remote);
	pier_received_request *rr;
	pier_peer *p;
	pier_msg *m;

	ck_assert_int_eq(pier_peer_adopt(&p, fd, NULL), 0);
	wait_notice(notify);
	/* Let some arrive, and the flood fill the socket while we read. */
	for (int i = 0; i < 50; i++) {
		ck_assert_int_eq(pier_peer_recv(p, &m, &rr, WAIT), 0);
		ck_assert_uint_eq(pier_msg_fd_count(m), FDS_PER_MSG);
		pier_msg_free(m);
		got++;
	}
	kill_remote(pid, notify);
	while ((r = pier_peer_recv(p, &m, &rr, WAIT)) == 0) {
		ck_assert_uint_eq(pier_msg_fd_count(m), FDS_PER_MSG);
		ck_assert_int_eq(pier_msg_header(m)->service_id, got);
		pier_msg_free(m);
		got++;
	}
	ck_assert_msg(is_end(r), "%s", pier_strerror(r));
	pier_peer_free(p);
}
END_TEST

/* --- a remote that never reads ------------------------------------------- */

/* The sender blocks until its timeout, then gets -ETIMEDOUT (or at once
 * -EAGAIN without one), and its memory stays within the send limit however
 * much it tries to send. */
START_TEST(slow_reader_bounds_memory)
{
	enum { BODY = 64 << 10, LIMIT = 1 << 20 };
	pier_config *ca;
	pier_peer *a, *b;
	char *body = calloc(1, BODY);
	long before;
	int r = 0, sent = 0;

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_set_max_queued(ca, LIMIT, LIMIT), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(ca, 50), 0);
	make_pair_cfg(_i, ca, NULL, &a, &b);
	/* b's application never waits, so nothing reads its socket. */
	before = rss_kib();
	for (int i = 0; i < 2000 && r == 0; i++) {
		r = pier_writer_send_stream(pier_peer_get_writer(a), i, body, BODY, NULL, 0);
		sent += r == 0;
	}
	ck_assert_int_eq(r, -ETIMEDOUT);
	/* What was accepted is bounded by the socket buffers and the limit;
	 * 2000 bodies would be 128 MiB. */
	ck_assert_int_lt(sent, 1000);
	if (plain_memory())
		ck_assert_int_lt(rss_kib() - before, 4 * (LIMIT / 1024) + 8192);
	/* b first: a would otherwise linger trying to flush to it. */
	pier_peer_free(b);
	pier_peer_free(a);
	pier_config_free(ca);
	free(body);
}
END_TEST

/* A send that got part of a large frame out and then cannot queue the rest
 * (out of memory) breaks the stream: it fails, and the connection ends with
 * that reason for everyone waiting on it, instead of going on corrupt. */
START_TEST(send_out_of_memory_midway)
{
	enum { BIG = 8 << 20 };
	pier_config *cfg;
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	struct rlimit saved, tight;
	char *body;
	pier_msg *m;
	int r;

	if (!plain_memory())
		return;
	body = calloc(1, BIG);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_body(cfg, BIG, BIG), 0);
	make_pair_cfg(PAIR_UNIX_FD, cfg, cfg, &a, &b);
	pier_config_free(cfg);
	open_request(a, b, 1, "waiting", &sr, &rr);
	/* No room to map another 8 MiB: the socket takes a few hundred KiB,
	 * and queueing the rest fails. */
	ck_assert_int_eq(getrlimit(RLIMIT_AS, &saved), 0);
	tight = saved;
	tight.rlim_cur = (rlim_t)vm_size_kib() * 1024 + (1 << 20);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &tight), 0);
	r = pier_writer_send_stream(pier_peer_get_writer(a), 1, body, BIG, NULL, 0);
	ck_assert_int_eq(setrlimit(RLIMIT_AS, &saved), 0);
	ck_assert_int_eq(r, -ENOMEM);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), -ENOMEM);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, NULL, 0),
			 -ENOMEM);
	/* The remote sees the cut frame for what it is. */
	r = pier_received_request_recv_update(rr, &m, WAIT);
	ck_assert_msg(r == -PIER_EPARTIAL, "%s", pier_strerror(r));
	pier_received_request_free(rr);
	pier_sent_request_free(sr);
	pier_peer_free(a);
	pier_peer_free(b);
	free(body);
}
END_TEST

/* --- connections coming and going --------------------------------------- */

/* 10,000 connections accepted and dropped: fds and memory stay flat. */
START_TEST(connect_disconnect_cycles)
{
	enum { CYCLES = 10000, WARM = 500 };
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char address[128];
	pier_listener *l;
	long rss_warm = 0;

	snprintf(address, sizeof(address), "unix://%s/pier-cycles-%d", P_tmpdir, getpid());
	snprintf(un.sun_path, sizeof(un.sun_path), "%s/pier-cycles-%d", P_tmpdir, getpid());
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), 0);
	for (int i = 0; i < CYCLES; i++) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		pier_peer *p;

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
		ck_assert_int_eq(pier_listener_accept(l, &p, WAIT), 0);
		/* Half of them the remote leaves first, half the application. */
		if (i % 2)
			close(fd);
		pier_peer_free(p);
		if (!(i % 2))
			close(fd);
		if (i == WARM)
			rss_warm = rss_kib();
	}
	if (plain_memory())
		ck_assert_int_lt(rss_kib() - rss_warm, 2048);
	pier_listener_free(l);
	unlink(un.sun_path);
}
END_TEST

/* --- everything at once -------------------------------------------------- */

enum { STRESS_THREADS = 4, STRESS_REQUESTS = 300 };

struct stress {
	pier_writer *w;
	unsigned int seed;
	int ok, ended;
	bool bad;
	int why; /* the result that was bad */
	bool at_deadline; /* ...from a wait that lasted until its deadline */
};

/* Requests, updates and streams, freeing some requests early; until the
 * connection dies under it. */
static void *stress_client(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < STRESS_REQUESTS; i++) {
		unsigned int dice = (unsigned int)rand_r(&s->seed);
		pier_sent_request *sr = NULL;
		pier_msg *m;
		int r = pier_writer_send_request(s->w, 1, "s", 1, NULL, 0, &sr);

		if (r == 0 && dice % 3 == 0) {
			pier_sent_request_free(sr); /* never mind the answer */
			continue;
		}
		if (r == 0 && dice % 5 == 0)
			r = pier_writer_send_stream(s->w, 2, "t", 1, NULL, 0);
		if (r == 0) {
			struct timespec deadline = deadline_in(WAIT);

			r = pier_sent_request_recv_response(sr, &m, WAIT);
			/* The end comes at once to every waiter: one that
			 * learnt of it only at its deadline was never woken. */
			s->at_deadline = r < 0 && deadline_passed(&deadline);
		}
		if (r == 0)
			pier_msg_free(m);
		pier_sent_request_free(sr);
		if (r == 0) {
			s->ok++;
		} else if (!s->at_deadline &&
			   (is_end(r) || r == -PIER_EABORTED || r == -PIER_ESHUTDOWN)) {
			s->ended++;
		} else {
			s->bad = true; /* a timeout, or anything unexplained */
			s->why = r;
			break;
		}
	}
	pier_writer_unref(s->w);
	return NULL;
}

enum stress_end { STRESS_RUN, STRESS_ABORT, STRESS_CLOSE };

struct stress_server {
	pier_peer *peer;
	enum stress_end end; /* what it does midway, if anything */
	unsigned int midway; /* after this many messages */
};

/* Answers requests (or drops them: an error response goes out) until the
 * connection ends; aborts or closes its side after srv->midway messages,
 * if told to: the clients' at least 1200 messages cannot all have come,
 * nor 2/3 of their requests have been answered. */
static void *stress_server(void *arg)
{
	static pier_received_request *held[STRESS_THREADS * STRESS_REQUESTS];
	struct stress_server *srv = arg;
	pier_received_request *rr;
	pier_msg *m;
	unsigned int seed = 7, n = 0;
	size_t n_held = 0;

	while (pier_peer_recv(srv->peer, &m, &rr, -1) == 0) {
		if (rr && srv->end == STRESS_CLOSE && n >= srv->midway) {
			/* Closed: a request freed now would still get its
			 * automatic answer until the write side is shut, which
			 * on a loaded machine may be after every client is
			 * done.  Kept, they end with the connection. */
			held[n_held++] = rr;
			rr = NULL;
		}
		if (rr && rand_r(&seed) % 4)
			pier_received_request_send_response(rr, 1, "ok", 2, NULL, 0);
		pier_received_request_free(rr);
		pier_msg_free(m);
		if (++n == srv->midway && srv->end == STRESS_ABORT)
			pier_writer_abort(pier_peer_get_writer(srv->peer));
		else if (n == srv->midway && srv->end == STRESS_CLOSE)
			pier_writer_close(pier_peer_get_writer(srv->peer));
	}
	while (n_held)
		pier_received_request_free(held[--n_held]);
	return NULL;
}

/* Rounds of several client threads against a server thread; in some rounds
 * the server side is aborted or closed midway, after a different number of
 * messages each time, and the clients' requests end.  Every thread
 * finishes, every call returns success or the connection's end, and every
 * wait ends before its deadline; nothing leaks. */
START_TEST(stress_with_random_disconnects)
{
	for (unsigned int round = 0; round < 12; round++) {
		struct stress_server server = { .end = (enum stress_end)(round % 3),
						.midway = 20 + round * 20 };
		struct stress s[STRESS_THREADS];
		pthread_t th[STRESS_THREADS], srv;
		pier_peer *a;
		int ended = 0;

		make_pair(_i, &a, &server.peer);
		ck_assert_int_eq(pthread_create(&srv, NULL, stress_server, &server), 0);
		for (int t = 0; t < STRESS_THREADS; t++) {
			s[t] = (struct stress){ pier_writer_ref(pier_peer_get_writer(a)),
						round * 31 + (unsigned int)t };
			ck_assert_int_eq(pthread_create(&th[t], NULL, stress_client, &s[t]), 0);
		}
		/* The client's read half goes early: its writers carry on. */
		pier_peer_free(a);
		for (int t = 0; t < STRESS_THREADS; t++) {
			pthread_join(th[t], NULL);
			ck_assert_msg(!s[t].bad, "round %u thread %d: an unexplained failure: %s%s", round,
				      t, pier_strerror(s[t].why),
				      s[t].at_deadline ? ", at the wait's deadline" : "");
			ck_assert_int_eq(s[t].ok + s[t].ended <= STRESS_REQUESTS, 1);
			ended += s[t].ended;
		}
		if (server.end != STRESS_RUN)
			ck_assert_msg(ended > 0, "round %u: the server's %s ended no request", round,
				      server.end == STRESS_ABORT ? "abort" : "close");
		/* With the clients gone, the server sees the end. */
		pthread_join(srv, NULL);
		pier_peer_free(server.peer);
	}
}
END_TEST

/* --- fork ---------------------------------------------------------------- */

#if !RUNNING_UNDER_TSAN
/* The documented rule: a child of fork() must not touch the parent's pier
 * objects, but may make its own; the parent's keep working.  The child's
 * pair comes from a listener, which needs a loop of the child's own to
 * accept (threads that send and wait do much without one). */
START_TEST(fork_child_makes_its_own)
{
	pier_peer *a, *b;
	pid_t pid;
	int status;

	make_pair(PAIR_UNIX_FD, &a, &b);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pier_peer *c, *d;

		make_pair(PAIR_SEQPACKET, &c, &d);
		round_trip(c, d, "child", "ok");
		pier_peer_free(c);
		pier_peer_free(d);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	round_trip(a, b, "parent", "ok");
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST
#endif

int main(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = th_tcase("faults", 60);

	tcase_add_loop_test(tc, killed_mid_request, 0, 4);
	tcase_add_test(tc, killed_mid_frame);
	tcase_add_test(tc, killed_mid_fd_send);
	tcase_add_loop_test(tc, slow_reader_bounds_memory, 0, PAIR_KINDS);
	tcase_add_test(tc, send_out_of_memory_midway);
	tcase_add_test(tc, connect_disconnect_cycles);
	tcase_add_loop_test(tc, stress_with_random_disconnects, 0, PAIR_KINDS);
#if !RUNNING_UNDER_TSAN
	/* TSan cannot start threads in the child of a threaded process. */
	tcase_add_test(tc, fork_child_makes_its_own);
#endif
	suite_add_tcase(s, tc);
	return th_run(s);
}
