/* SPDX-License-Identifier: MIT */
/*
 * Liveness: TCP keepalive on tcp:// and tls:// sockets, the idle timeout
 * (a remote that says nothing, a remote process stopped), and pings that
 * keep a quiet, healthy pair alive without the applications seeing them.
 * Timed tests use short intervals and wait for conditions with generous
 * deadlines: a loaded machine makes them slower, never wrong.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"

#define PING_SERVICE 7001

/* The timed tests' pairs: TCP and Unix, stream and packet framing, TLS.
 * Their timeouts are hundreds of milliseconds: a loaded machine may stall
 * a thread for a good part of that, never for all of it. */
static const enum pair_kind live_kinds[] = {
	PAIR_TCP, PAIR_UNIX_FD, PAIR_SEQPACKET_FD,
#ifdef HAVE_OPENSSL
	PAIR_TLS,
#endif
};
#define LIVE_KINDS ((int)(sizeof(live_kinds) / sizeof(live_kinds[0])))

/* Milliseconds scaled for slow runs (valgrind slows the loop threads
 * tenfold and more). */
static int ms(int n)
{
	return under_valgrind() ? n * 10 : n;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A configuration with an idle timeout (0: none) and pings on service
 * (interval ping_ms; -1: none). */
static pier_config *live_config_on(int idle_ms, int32_t service, int ping_ms)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	if (idle_ms)
		ck_assert_int_eq(pier_config_set_idle_timeout(cfg, idle_ms), 0);
	if (ping_ms >= 0)
		ck_assert_int_eq(pier_config_set_ping(cfg, service, ping_ms), 0);
	return cfg;
}

static pier_config *live_config(int idle_ms, int ping_ms)
{
	return live_config_on(idle_ms, PING_SERVICE, ping_ms);
}

/* --- arguments ------------------------------------------------------------ */

START_TEST(invalid_arguments)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);

	ck_assert_int_eq(pier_config_set_tcp_keepalive(NULL, 10, 5, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 0, 5, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 10, 0, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 10, 5, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, -1, 5, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 32768, 5, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 10, 32768, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 10, 5, 128), -EINVAL);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 32767, 32767, 127), 0);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 0, 0, 0), 0);

	ck_assert_int_eq(pier_config_set_idle_timeout(NULL, 100), -EINVAL);
	ck_assert_int_eq(pier_config_set_idle_timeout(cfg, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_idle_timeout(cfg, -2), -EINVAL);
	ck_assert_int_eq(pier_config_set_idle_timeout(cfg, 1), 0);
	ck_assert_int_eq(pier_config_set_idle_timeout(cfg, -1), 0);

	ck_assert_int_eq(pier_config_set_ping(NULL, 1, 100), -EINVAL);
	ck_assert_int_eq(pier_config_set_ping(cfg, 1, -2), -EINVAL);
	ck_assert_int_eq(pier_config_set_ping(cfg, PIER_SERVICE_ERROR, 100), -EINVAL);
	ck_assert_int_eq(pier_config_set_ping(cfg, PIER_SERVICE_ERROR, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_ping(cfg, PIER_SERVICE_ERROR, -1), 0);
	ck_assert_int_eq(pier_config_set_ping(cfg, 1, 0), 0);
	ck_assert_int_eq(pier_config_set_ping(cfg, 1, 100), 0);

	ck_assert_ptr_nonnull(strstr(pier_strerror(-PIER_EIDLE), "idle timeout"));
	pier_config_free(cfg);
}
END_TEST

/* --- TCP keepalive -------------------------------------------------------- */

struct keepalive {
	int on, idle, interval, count;
	unsigned int user_timeout;
};

static struct keepalive keepalive_of(int fd)
{
	struct keepalive k;
	socklen_t len = sizeof(int);

	ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &k.on, &len), 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &k.idle, &len), 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &k.interval, &len), 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &k.count, &len), 0);
	ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &k.user_timeout, &len), 0);
	return k;
}

/* The connected TCP sockets of this process (the pair's two ends: the
 * one that connected and the one a listener accepted), up to max. */
static int tcp_sockets(int *fds, int max)
{
	int n = 0;

	for (int fd = 3; fd < 1024 && n < max; fd++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss), tlen = sizeof(int);
		int type = 0;

		if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
			continue;
		fds[n++] = fd;
	}
	return n;
}

static const enum pair_kind tcp_kinds[] = {
	PAIR_TCP,
#ifdef HAVE_OPENSSL
	PAIR_TLS,
#endif
};

/* Both ends of a tcp:// or tls:// pair, connected and accepted, get the
 * keepalive settings; without them, the kernel's (no keepalive). */
START_TEST(keepalive_on_tcp_sockets)
{
	enum pair_kind kind = tcp_kinds[_i];
	pier_config *ca, *cb;
	pier_peer *a, *b;
	int fds[4];

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(ca, 7, 3, 4), 0);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cb, 11, 2, 5), 0);
	make_pair_cfg(kind, ca, cb, &a, &b);
	round_trip(a, b, "hello", "there");
	ck_assert_int_eq(tcp_sockets(fds, 4), 2);
	for (int i = 0; i < 2; i++) {
		struct keepalive k = keepalive_of(fds[i]);

		/* Which end this is shows in its settings. */
		ck_assert_int_eq(k.on, 1);
		if (k.idle == 7) {
			ck_assert_int_eq(k.interval, 3);
			ck_assert_int_eq(k.count, 4);
			ck_assert_uint_eq(k.user_timeout, (7 + 3 * 4) * 1000);
		} else {
			ck_assert_int_eq(k.idle, 11);
			ck_assert_int_eq(k.interval, 2);
			ck_assert_int_eq(k.count, 5);
			ck_assert_uint_eq(k.user_timeout, (11 + 2 * 5) * 1000);
		}
	}
	ck_assert_int_ne(keepalive_of(fds[0]).idle, keepalive_of(fds[1]).idle);
	pier_peer_free(a);
	pier_peer_free(b);

	/* The default: as the kernel makes sockets. */
	pier_config_free(ca);
	pier_config_free(cb);
	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	make_pair_cfg(kind, ca, cb, &a, &b);
	round_trip(a, b, "hello", "there");
	ck_assert_int_eq(tcp_sockets(fds, 4), 2);
	ck_assert_int_eq(keepalive_of(fds[0]).on, 0);
	ck_assert_int_eq(keepalive_of(fds[1]).on, 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(ca);
	pier_config_free(cb);
}
END_TEST

/* Unix sockets have no keepalive: the setting is ignored there. */
START_TEST(keepalive_ignored_on_unix)
{
	pier_config *cfg;
	pier_peer *a, *b;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_tcp_keepalive(cfg, 7, 3, 4), 0);
	make_pair_cfg(PAIR_UNIX, cfg, cfg, &a, &b);
	round_trip(a, b, "hello", "there");
	pier_peer_free(a);
	pier_peer_free(b);
	make_pair_cfg(PAIR_SEQPACKET_FD, cfg, cfg, &a, &b);
	round_trip(a, b, "hello", "there");
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* --- the idle timeout ----------------------------------------------------- */

static const int raw_types[] = { SOCK_STREAM, SOCK_SEQPACKET };

/* The remote is a raw socket that never writes: a peer waiting for a
 * message fails with PIER_EIDLE, not before the timeout. */
START_TEST(idle_timeout_ends_silent_connection)
{
	const int idle = ms(100);
	pier_config *cfg = live_config(idle, -1);
	pier_received_request *req;
	pier_peer *p;
	pier_msg *m;
	int64_t t0 = now_ms(), waited;
	int sv[2], r;

	ck_assert_int_eq(socketpair(AF_UNIX, raw_types[_i] | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], cfg), 0);
	r = pier_peer_recv(p, &m, &req, 4 * WAIT);
	waited = now_ms() - t0;
	ck_assert_msg(r == -PIER_EIDLE, "recv: %s", pier_strerror(r));
	ck_assert_int_ge(waited, idle);
	/* The end stays the connection's reason. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(p), 1, "x", 1, NULL, 0),
			 -PIER_EIDLE);
	pier_peer_free(p);
	close(sv[1]);
	pier_config_free(cfg);
}
END_TEST

/* Nobody waits for a message: the connection ends on its own all the
 * same, and says why to the next call. */
START_TEST(idle_timeout_without_waiting_thread)
{
	pier_config *cfg = live_config(ms(50), -1);
	pier_received_request *req;
	pier_peer *p;
	pier_msg *m;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], cfg), 0);
	wait_until(pier_writer_send_stream(pier_peer_get_writer(p), 1, "x", 1, NULL, 0) ==
			   -PIER_EIDLE,
		   4 * WAIT);
	ck_assert_int_eq(pier_peer_recv(p, &m, &req, 0), -PIER_EIDLE);
	pier_peer_free(p);
	close(sv[1]);
	pier_config_free(cfg);
}
END_TEST

/* The remote shuts its end while nobody waits for a message: the
 * liveness timer has the loop read, and the connection ends as closed, not
 * as idle. */
START_TEST(idle_watch_reads_remote_close)
{
	pier_config *cfg = live_config(ms(400), -1);
	pier_received_request *req;
	pier_peer *p;
	pier_msg *m;
	char c;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], cfg), 0);
	ck_assert_int_eq(shutdown(sv[1], SHUT_WR), 0);
	/* The peer's socket is closed once its connection ended. */
	wait_until(recv(sv[1], &c, 1, MSG_DONTWAIT) == 0, 4 * WAIT);
	ck_assert_int_eq(pier_peer_recv(p, &m, &req, 0), -PIER_ECLOSED);
	pier_peer_free(p);
	close(sv[1]);
	pier_config_free(cfg);
}
END_TEST

/* Messages keep coming for several timeouts: the connection lives on. */
START_TEST(traffic_keeps_connection_alive)
{
	const int idle = ms(400);
	pier_config *cfg = live_config(idle, -1);
	pier_peer *a, *b;
	int64_t t0;
	int n = 0;

	make_pair_cfg(live_kinds[_i], cfg, cfg, &a, &b);
	t0 = now_ms();
	while (now_ms() - t0 < 3 * idle) {
		round_trip(a, b, "are you there", "yes");
		n++;
	}
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(pier_peer_stat(a, PIER_STAT_PINGS_SENT), 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* --- a remote process stopped -------------------------------------------- */

/* Runs in the child: a peer over fd that answers pings and waits for a
 * message, which must never come (a ping is no message); then the child
 * waits to be killed. */
static void pinged_remote(int fd, int notify)
{
	pier_config *cfg = NULL;
	pier_received_request *req;
	pier_peer *p;
	pier_msg *m;

	if (pier_config_new(&cfg) < 0 || pier_config_set_ping(cfg, PING_SERVICE, 0) < 0 ||
	    pier_peer_adopt(&p, fd, cfg) < 0)
		_exit(1);
	if (write(notify, "r", 1) != 1)
		_exit(1);
	pier_peer_recv(p, &m, &req, -1);
	_exit(2);
}

/* A connected pair of sockets of kind 0 (Unix stream) or 1 (TCP on the
 * loopback). */
static void raw_pair(int kind, int sv[2])
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int l;

	if (kind == 0) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		return;
	}
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(l, 0);
	ck_assert_int_eq(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(l, 1), 0);
	ck_assert_int_eq(getsockname(l, (struct sockaddr *)&sin, &len), 0);
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(sv[0], 0);
	ck_assert_int_eq(connect(sv[0], (struct sockaddr *)&sin, sizeof(sin)), 0);
	sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	ck_assert_int_ge(sv[1], 0);
	close(l);
}

/* The remote is a pier peer in another process that answers pings, until
 * it is stopped (SIGSTOP): its socket stays open, it just says nothing.
 * The live end, pinging, fails with PIER_EIDLE. */
START_TEST(idle_timeout_ends_stopped_remote)
{
	const int idle = ms(500);
	pier_config *cfg;
	pier_received_request *req;
	pier_peer *p;
	pier_msg *m;
	int sv[2], pipefd[2], status, r;
	pid_t pid;
	char c;

	/* Before this process has threads: the child starts its own. */
	raw_pair(_i, sv);
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		close(pipefd[0]);
		pinged_remote(sv[1], pipefd[1]);
	}
	close(sv[1]);
	close(pipefd[1]);
	ck_assert_int_eq(read(pipefd[0], &c, 1), 1);

	cfg = live_config(idle, ms(25));
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], cfg), 0);
	/* Alive, pinging, for longer than the timeout. */
	wait_until(pier_peer_stat(p, PIER_STAT_PINGS_ANSWERED) >= 25, ms(4 * WAIT));
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	r = pier_peer_recv(p, &m, &req, 4 * WAIT);
	ck_assert_msg(r == -PIER_EIDLE, "recv: %s", pier_strerror(r));
	pier_peer_free(p);

	/* The child never saw a ping as a message: it is still waiting. */
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFSIGNALED(status), "the remote exited with status %d",
		      WEXITSTATUS(status));
	close(pipefd[0]);
	pier_config_free(cfg);
}
END_TEST

/* --- pings ---------------------------------------------------------------- */

/* Both ends ping and have an idle timeout; neither application reads.  The
 * quiet pair lives on for many timeouts, and no ping reaches either
 * application. */
START_TEST(pings_keep_quiet_pair_alive)
{
	const int idle = ms(500), interval = ms(25);
	pier_config *cfg = live_config(idle, interval);
	pier_received_request *req;
	pier_peer *a, *b;
	pier_msg *m;
	uint64_t answered;

	make_pair_cfg(live_kinds[_i], cfg, cfg, &a, &b);
	/* Each side pings at most once per interval: of 121 pings, one side
	 * sent 61, which took three timeouts at least. */
	wait_until(pier_peer_stat(a, PIER_STAT_PINGS_ANSWERED) +
				   pier_peer_stat(b, PIER_STAT_PINGS_ANSWERED) >=
			   121,
		   ms(8 * WAIT));
	ck_assert_int_eq(pier_peer_recv(a, &m, &req, 0), -EAGAIN);
	ck_assert_int_eq(pier_peer_recv(b, &m, &req, 0), -EAGAIN);
	/* A ping is counted received before its answer is sent. */
	answered = pier_peer_stat(a, PIER_STAT_PINGS_ANSWERED);
	ck_assert_uint_ge(pier_peer_stat(b, PIER_STAT_PINGS_RECEIVED), answered);
	ck_assert_uint_ge(pier_peer_stat(a, PIER_STAT_PINGS_SENT), answered);
	round_trip(a, b, "still", "here");
	ck_assert_int_eq(pier_peer_stat(a, PIER_STAT_UNKNOWN_IDS), 0);
	ck_assert_int_eq(pier_peer_stat(b, PIER_STAT_UNKNOWN_IDS), 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* A peer that did not enable pings sees one as an ordinary request; its
 * answer reaches the pinging side's library, not its application.  (On
 * service 0, the one a configuration without pings holds.) */
START_TEST(ping_to_plain_peer_is_a_request)
{
	pier_config *cfg = live_config_on(0, 0, ms(10));
	pier_received_request *req;
	pier_peer *a, *b;
	pier_msg *m;
	size_t len;

	make_pair_cfg(_i, cfg, NULL, &a, &b);
	req = recv_request(b, &m);
	ck_assert_int_eq(pier_msg_header(m)->service_id, 0);
	pier_msg_body(m, &len);
	ck_assert_uint_eq(len, 0);
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_response(req, 0, NULL, 0, NULL, 0), 0);
	pier_received_request_free(req);
	wait_until(pier_peer_stat(a, PIER_STAT_PINGS_ANSWERED) >= 1, WAIT);
	ck_assert_int_eq(pier_peer_recv(a, &m, &req, 0), -EAGAIN);
	ck_assert_int_eq(pier_peer_stat(a, PIER_STAT_UNKNOWN_IDS), 0);
	ck_assert_int_eq(pier_peer_stat(a, PIER_STAT_DROPPED), 0);
	ck_assert_int_eq(pier_peer_stat(b, PIER_STAT_PINGS_RECEIVED), 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* Pings take their ids where the application's requests do: while many of
 * those are open, the remote (which sees pings as requests) never gets
 * two requests with one id. */
START_TEST(ping_ids_never_collide)
{
	pier_config *cfg = live_config(0, ms(5));
	pier_sent_request *sent[32];
	pier_received_request *held[32];
	uint32_t ids[32 + 8];
	unsigned int nids = 0, nheld = 0, pings = 0;
	pier_peer *a, *b;

	make_pair_cfg(PAIR_UNIX, cfg, NULL, &a, &b);
	for (unsigned int i = 0; i < 32; i++)
		sent[i] = send_request(a, 1, "held");
	/* b holds every request of a's application open, and answers
	 * pings. */
	while (pings < 8) {
		pier_received_request *req;
		pier_msg *m;

		ck_assert_uint_lt(nids, 32 + 8);
		req = recv_request(b, &m);
		ids[nids] = pier_received_request_id(req);
		for (unsigned int j = 0; j < nids; j++)
			ck_assert_uint_ne(ids[j], ids[nids]);
		nids++;
		if (pier_msg_header(m)->service_id == PING_SERVICE) {
			pings++;
			ck_assert_int_eq(pier_received_request_send_response(req, PING_SERVICE, NULL,
									     0, NULL, 0),
					 0);
			pier_received_request_free(req);
		} else {
			ck_assert_uint_lt(nheld, 32);
			held[nheld++] = req;
		}
		pier_msg_free(m);
	}
	ck_assert_int_eq(pier_peer_stat(b, PIER_STAT_DUPLICATE_IDS), 0);
	for (unsigned int i = 0; i < nheld; i++)
		pier_received_request_free(held[i]);
	for (unsigned int i = 0; i < 32; i++)
		pier_sent_request_free(sent[i]);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* A ping in flight does not count against the application's limit of
 * open requests. */
START_TEST(ping_outside_open_request_limit)
{
	pier_config *cfg = live_config(0, ms(5));
	pier_received_request *ping;
	pier_sent_request *req;
	pier_peer *a, *b;
	pier_msg *m;

	ck_assert_int_eq(pier_config_set_max_open_requests(cfg, 1), 0);
	make_pair_cfg(PAIR_UNIX, cfg, NULL, &a, &b);
	/* b holds the ping unanswered. */
	ping = recv_request(b, &m);
	ck_assert_int_eq(pier_msg_header(m)->service_id, PING_SERVICE);
	pier_msg_free(m);
	/* Counted once sent: b may have read it first. */
	wait_until(pier_peer_stat(a, PIER_STAT_PINGS_SENT) == 1, WAIT);
	req = send_request(a, 1, "mine");
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), 1, "two", 3, NULL, 0,
						  &(pier_sent_request *){ NULL }),
			 -PIER_EREQLIMIT);
	pier_sent_request_free(req);
	pier_received_request_free(ping);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("live");
	TCase *tc = th_tcase("live", 60);

	tcase_add_test(tc, invalid_arguments);
	tcase_add_loop_test(tc, keepalive_on_tcp_sockets, 0, (int)(sizeof(tcp_kinds) / sizeof(tcp_kinds[0])));
	tcase_add_test(tc, keepalive_ignored_on_unix);
	tcase_add_loop_test(tc, idle_timeout_ends_silent_connection, 0, 2);
	tcase_add_test(tc, idle_timeout_without_waiting_thread);
	tcase_add_test(tc, idle_watch_reads_remote_close);
	tcase_add_loop_test(tc, traffic_keeps_connection_alive, 0, LIVE_KINDS);
	tcase_add_loop_test(tc, idle_timeout_ends_stopped_remote, 0, 2);
	tcase_add_loop_test(tc, pings_keep_quiet_pair_alive, 0, LIVE_KINDS);
	tcase_add_loop_test(tc, ping_to_plain_peer_is_a_request, 0, PAIR_KINDS);
	tcase_add_test(tc, ping_ids_never_collide);
	tcase_add_test(tc, ping_outside_open_request_limit);
	suite_add_tcase(s, tc);
	return th_run(s);
}
