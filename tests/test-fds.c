/* SPDX-License-Identifier: MIT */
/* File descriptors in messages: seqpacket carries them, the rest refuse. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "peers.h"

static const enum pair_kind fd_kinds[] = { PAIR_SEQPACKET, PAIR_SEQPACKET_FD, PAIR_ABSTRACT };
static const enum pair_kind stream_kinds[] = { PAIR_TCP, PAIR_UNIX, PAIR_UNIX_FD };

static void assert_fd_content(const pier_msg *m, size_t i, const char *content)
{
	int fd = pier_msg_fd(m, i);
	char *got;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	got = read_fd(fd);
	ck_assert_str_eq(got, content);
	free(got);
}

/* The reference crate's scenario: a body and two memfds. */
START_TEST(body_and_two_memfds)
{
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;
	int fds[2] = { memfd_with("first file"), memfd_with("second") };
	int taken;

	make_pair(fd_kinds[_i], &a, &b);
	ck_assert_uint_eq(pier_writer_max_fds(pier_peer_get_writer(a)), 32);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), 4, "two files", 9, fds, 2, &sr), 0);
	/* Sending borrowed them: the caller closes its own. */
	ck_assert_int_eq(close(fds[0]), 0);
	ck_assert_int_eq(close(fds[1]), 0);

	rr = recv_request(b, &m);
	assert_body(m, "two files");
	ck_assert_uint_eq(pier_msg_fd_count(m), 2);
	assert_fd_content(m, 0, "first file");
	assert_fd_content(m, 1, "second");
	ck_assert_int_eq(pier_msg_fd(m, 2), -EINVAL);
	/* Take one; the message closes the other when freed. */
	taken = pier_msg_take_fd(m, 1);
	ck_assert_int_ge(taken, 0);
	ck_assert_int_eq(pier_msg_fd(m, 1), -EBADF);
	ck_assert_int_eq(pier_msg_take_fd(m, 1), -EBADF);
	pier_msg_free(m);
	ck_assert_int_eq(fcntl(taken, F_GETFD) >= 0, 1);
	close(taken);

	/* fds on updates and on the response too */
	fds[0] = memfd_with("from-oracle");
	ck_assert_int_eq(pier_received_request_send_update(rr, 1, "u", 1, fds, 1), 0);
	ck_assert_int_eq(pier_received_request_send_response(rr, 4, "r", 1, fds, 1), 0);
	ck_assert_int_eq(close(fds[0]), 0);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	assert_fd_content(m, 0, "from-oracle");
	pier_msg_free(m);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 4, "r");
	assert_fd_content(m, 0, "from-oracle");
	pier_msg_free(m);

	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Freeing a peer closes the fds of the messages still queued for it. */
START_TEST(unread_fds_closed)
{
	enum { N = 20, FDS = 8 };
	pier_peer *a, *b;
	int fd = memfd_with("x");
	int fds[FDS], before;

	for (int i = 0; i < FDS; i++)
		fds[i] = fd;
	make_pair(fd_kinds[_i], &a, &b);
	/* A pollable fd has b's loop read in the background.  Without it,
	 * no thread of b's waiting, the messages would stay in the socket
	 * (fds_in_the_socket_closed) and never reach the queue. */
	ck_assert_int_ge(pier_peer_fd(b), 0);
	before = open_fd_count();
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, NULL, 0, fds, FDS), 0);
	close(fd);
	/* A message is counted when read, before it is queued: once one more
	 * is read after them, all N are queued, with their fds. */
	wait_until(pier_peer_stat(b, PIER_STAT_MSGS_RECEIVED) == N, WAIT);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 2, NULL, 0, NULL, 0), 0);
	wait_until(pier_peer_stat(b, PIER_STAT_MSGS_RECEIVED) == N + 1, WAIT);
	ck_assert_uint_eq(pier_peer_stat(b, PIER_STAT_DROPPED), 0);
	ck_assert_int_ge(open_fd_count(), before - 1 + N * FDS);
	pier_peer_free(b); /* with everything unread */
	pier_peer_free(a);
	/* the fd-leak fixture checks that none is left */
}
END_TEST

/* A peer freed, or aborted, while messages are still in its socket,
 * unread: they are read and dropped, or discarded with the connection, and
 * their fds closed.  Every kind of pair, freed (_i < 3) and aborted. */
START_TEST(fds_in_the_socket_closed)
{
	pier_peer *a, *b;
	int fd = memfd_with("x");
	int fds[8];

	for (int i = 0; i < 8; i++)
		fds[i] = fd;
	make_pair(fd_kinds[_i % 3], &a, &b);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, NULL, 0, fds, 8), 0);
	close(fd);
	/* No thread of b's waited: nothing was read. */
	if (_i >= 3)
		pier_writer_abort(pier_peer_get_writer(b));
	pier_peer_free(b);
	pier_peer_free(a);
	/* the fd-leak fixture checks that none is left */
}
END_TEST

/* Freeing a request closes the fds of the updates and the response still
 * queued for it, on either side. */
START_TEST(unread_request_fds_closed)
{
	enum { N = 10, FDS = 8 };
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	int fd = memfd_with("x");
	int fds[FDS], before;

	for (int i = 0; i < FDS; i++)
		fds[i] = fd;
	make_pair(fd_kinds[_i], &a, &b);
	open_request(a, b, 1, "open", &sr, &rr);
	/* Both loops read in the background (see unread_fds_closed). */
	ck_assert_int_ge(pier_sent_request_fd(sr), 0);
	ck_assert_int_ge(pier_received_request_fd(rr), 0);
	before = open_fd_count();
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(pier_sent_request_send_update(sr, 1, NULL, 0, fds, FDS), 0);
		ck_assert_int_eq(pier_received_request_send_update(rr, 1, NULL, 0, fds, FDS), 0);
	}
	/* A message is counted when read, before it is queued: once one more
	 * is read after them, all are queued.  b's: the request, the
	 * updates, the stream that follows them.  Only then the response,
	 * which closes the request to updates still unread. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 2, NULL, 0, NULL, 0), 0);
	wait_until(pier_peer_stat(b, PIER_STAT_MSGS_RECEIVED) == N + 2, WAIT);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, NULL, 0, fds, FDS), 0);
	close(fd);
	/* a's: the updates, the response, the stream that follows them. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(b), 2, NULL, 0, NULL, 0), 0);
	wait_until(pier_peer_stat(a, PIER_STAT_MSGS_RECEIVED) == N + 2, WAIT);
	for (int i = 0; i < 2; i++) {
		pier_peer *p = i ? b : a;

		ck_assert_uint_eq(pier_peer_stat(p, PIER_STAT_DROPPED), 0);
		ck_assert_uint_eq(pier_peer_stat(p, PIER_STAT_UNKNOWN_IDS), 0);
	}
	ck_assert_int_ge(open_fd_count(), before - 1 + (2 * N + 1) * FDS);
	pier_sent_request_free(sr); /* with everything unread */
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
	/* the fd-leak fixture checks that none is left */
}
END_TEST

START_TEST(max_fds_in_one_message)
{
	pier_config *cfg;
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;
	int fds[253], fd = memfd_with("many");

	for (int i = 0; i < 253; i++)
		fds[i] = fd;
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_fds(cfg, 253), 0);
	ck_assert_int_eq(pier_config_set_max_fds(cfg, 254), -EINVAL);
	make_pair_cfg(fd_kinds[_i], cfg, cfg, &a, &b);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "many", 4, fds, 253), 0);
	close(fd);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_uint_eq(pier_msg_fd_count(m), 253);
	assert_fd_content(m, 252, "many");
	pier_msg_free(m);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(cfg);
}
END_TEST

/* Over the sender's limit: refused, nothing sent.  Over the receiver's:
 * the connection ends with PIER_EFDLIMIT and the fds are closed. */
START_TEST(fd_limits)
{
	pier_config *ca, *cb;
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;
	int fds[5], fd = memfd_with("lim");

	for (int i = 0; i < 5; i++)
		fds[i] = fd;
	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_new(&cb), 0);
	ck_assert_int_eq(pier_config_set_max_fds(ca, 4), 0);
	ck_assert_int_eq(pier_config_set_max_fds(cb, 3), 0);
	make_pair_cfg(fd_kinds[_i], ca, cb, &a, &b);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, fds, 5),
			 -PIER_EFDLIMIT);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, fds, 3), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, fds, 4), 0);
	close(fd);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_uint_eq(pier_msg_fd_count(m), 3);
	pier_msg_free(m);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_EFDLIMIT);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_config_free(ca);
	pier_config_free(cb);
}
END_TEST

START_TEST(stream_transports_refuse_fds)
{
	pier_peer *a, *b;
	pier_sent_request *sr = NULL;
	int fd = memfd_with("no");

	make_pair(stream_kinds[_i], &a, &b);
	ck_assert_uint_eq(pier_writer_max_fds(pier_peer_get_writer(a)), 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, &fd, 1),
			 -PIER_ENOFDS);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), 1, "x", 1, &fd, 1, &sr),
			 -PIER_ENOFDS);
	ck_assert_ptr_null(sr);
	/* the refused request left no open id behind */
	sr = send_request(a, 1, "x");
	ck_assert_uint_eq(pier_sent_request_id(sr), 0);
	pier_sent_request_free(sr);
	close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

enum { FILLERS_MAX = 4096 };

/* Fills the fd table (with copies of fd 0) to near the open-file limit,
 * so that a limit lowered to what is open is still a high one: the kernel
 * also compares it with the fds the user has in flight in all of its
 * processes when this one sends (unless it has CAP_SYS_RESOURCE), and a
 * low one fails the send with ETOOMANYREFS whenever other tests pass fds
 * at the same time.  Returns how many fds it opened. */
static int fill_fd_table(int *fillers)
{
	struct rlimit rl;
	int n = 0;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	/* Room left for what the test and its loops open meanwhile. */
	while (n < FILLERS_MAX && (rlim_t)n + 64 < rl.rlim_cur) {
		fillers[n] = dup(0);
		ck_assert_int_ge(fillers[n], 0);
		if ((rlim_t)fillers[n++] + 64 >= rl.rlim_cur)
			break;
	}
	return n;
}

/* The receiver is at its open-file limit: the kernel cannot pass every fd
 * (MSG_CTRUNC), and the message is never delivered short of them. */
START_TEST(fds_lost_at_the_limit)
{
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_msg *m;
	struct rlimit rl;
	int fds[16], fd = memfd_with("lost"), lowest_free, fillers[FILLERS_MAX], nfillers;

	for (int i = 0; i < 16; i++)
		fds[i] = fd;
	make_pair(fd_kinds[_i], &a, &b);
	/* Make sure the loops have every fd they need before the limit. */
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "warm", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	pier_msg_free(m);
	nfillers = fill_fd_table(fillers);
	/* New fds take the lowest free numbers below the limit. */
	lowest_free = dup(0);
	ck_assert_int_ge(lowest_free, 0);
	close(lowest_free);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	rl.rlim_cur = (rlim_t)lowest_free + 4; /* room for 4 of the 16 */
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	if (under_valgrind()) {
		/* valgrind keeps the kernel's open-file limit to itself and
		 * applies the process's only to the calls it sees, which
		 * excludes the fds the kernel installs on recvmsg. */
		for (int i = 0; i < nfillers; i++)
			close(fillers[i]);
		close(fd);
		pier_peer_free(a);
		pier_peer_free(b);
		return;
	}
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "x", 1, fds, 16), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), -PIER_EFDTRUNC);
	for (int i = 0; i < nfillers; i++)
		close(fillers[i]);
	close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Counts of fds are size_t: a count that does not fit the limits is
 * refused, never cut down to one that does. */
START_TEST(fd_count_arguments)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_fds(cfg, 254), -EINVAL);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, INT_MAX, INT_MAX), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, (size_t)INT_MAX + 1, 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, 1, (size_t)INT_MAX + 1), -EINVAL);
#if SIZE_MAX > UINT_MAX
	/* As unsigned int, these were 253 and 1. */
	ck_assert_int_eq(pier_config_set_max_fds(cfg, (size_t)UINT_MAX + 254), -EINVAL);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, (size_t)UINT_MAX + 2, 1), -EINVAL);
#endif
	pier_config_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fds");
	TCase *tc = th_tcase("fds", 30);

	tcase_add_loop_test(tc, body_and_two_memfds, 0, 3);
	tcase_add_loop_test(tc, unread_fds_closed, 0, 3);
	tcase_add_loop_test(tc, unread_request_fds_closed, 0, 3);
	tcase_add_loop_test(tc, fds_in_the_socket_closed, 0, 6);
	tcase_add_loop_test(tc, max_fds_in_one_message, 0, 3);
	tcase_add_loop_test(tc, fd_limits, 0, 3);
	tcase_add_loop_test(tc, stream_transports_refuse_fds, 0, 3);
	tcase_add_loop_test(tc, fds_lost_at_the_limit, 0, 3);
	tcase_add_test(tc, fd_count_arguments);
	suite_add_tcase(s, tc);
	return th_run(s);
}
