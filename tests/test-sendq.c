/* SPDX-License-Identifier: MIT */
/*
 * The send queue: what it owns while the loop writes, what it counts
 * against its limits (bytes, fds, the memory of queued packets), and how a
 * sender waits when a limit is reached.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"
#include "peers.h"
#include "wire.h"

/* The backends a test runs on: whatever the environment chooses, then
 * epoll, where each sendmsg is made by the loop thread itself (so that
 * ASan sees the memory it reads). */
static void use_backend(int i)
{
	if (i == 1)
		ck_assert_int_eq(setenv("PIER_BACKEND", "epoll", 1), 0);
}

/* --- holding the loop thread still --------------------------------------- */

/* A signal handler that parks the loop thread until released, so that a
 * test can change the connection under a write the loop has in flight
 * without racing it.  The pipes make it async-signal-safe. */
static int park_req[2], park_ack[2];

static void park_handler(int sig)
{
	char c = 'p';

	(void)sig;
	if (write(park_ack[1], &c, 1) != 1)
		_exit(3);
	while (read(park_req[0], &c, 1) < 0 && errno == EINTR)
		;
}

static void park_setup(void)
{
	struct sigaction sa = { .sa_handler = park_handler };

	ck_assert_int_eq(pipe2(park_req, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(park_ack, O_CLOEXEC), 0);
	ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
}

static void park_teardown(void)
{
	signal(SIGUSR1, SIG_DFL);
	close(park_req[0]);
	close(park_req[1]);
	close(park_ack[0]);
	close(park_ack[1]);
}

/* Stops the loop thread of c where it is; returns once it is stopped. */
static void park(struct conn *c)
{
	char b;

	ck_assert_int_eq(pthread_kill(c->loop->thread, SIGUSR1), 0);
	ck_assert_int_eq(read(park_ack[0], &b, 1), 1);
}

static void unpark(void)
{
	ck_assert_int_eq(write(park_req[1], "u", 1), 1);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Parks the loop once it has a write in flight over at least two queued
 * frames (waiting up to WAIT ms for it). */
static void park_writing(struct conn *c)
{
	int64_t deadline = now_ms() + WAIT;

	for (;;) {
		bool writing;

		park(c);
		writing = c->wr.in_flight && c->wmsg.msg_iovlen >= 2;
		if (writing)
			return;
		unpark();
		ck_assert_msg(now_ms() < deadline, "the loop never wrote the queued frames");
		sched_yield();
	}
}

/* Reads what is there on fd without waiting; returns the byte count. */
static size_t drain(int fd, unsigned char *buf, size_t size)
{
	size_t got = 0;
	ssize_t n;

	while (got < size && (n = recv(fd, buf + got, size - got, MSG_DONTWAIT)) > 0)
		got += (size_t)n;
	return got;
}

/* --- ownership of frames under a write ----------------------------------- */

enum { FRAMES = 4, FRAME_BODY = 16 << 10 };

/* The bytes a stream connection sends for FRAMES stream messages whose
 * bodies are FRAME_BODY bytes of 'a' + i. */
static unsigned char *expected_stream(size_t *len)
{
	size_t frame = WIRE_STREAM_OVERHEAD + FRAME_BODY;
	unsigned char *buf = malloc(FRAMES * frame);

	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < FRAMES; i++) {
		struct pier_header h = { .type = PIER_MSG_STREAM, .request_id = 0,
					 .service_id = 1 };

		wire_stream_prefix_encode(buf + i * frame, &h, FRAME_BODY, PIER_BYTE_ORDER_LITTLE);
		memset(buf + i * frame + WIRE_STREAM_OVERHEAD, 'a' + i, FRAME_BODY);
	}
	*len = FRAMES * frame;
	return buf;
}

/* Fills the socket fd until it takes nothing more; returns the byte count. */
static size_t fill(int fd)
{
	static const unsigned char junk[16 << 10];
	size_t filled = 0;
	ssize_t n;

	while ((n = send(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		filled += (size_t)n;
	ck_assert_int_eq(errno, EAGAIN);
	return filled;
}

/* The loop has one write in flight over several queued frames when a
 * thread reading for itself finds the connection broken (the remote sent
 * a bad frame) and ends it.  Every frame that write points into must stay
 * alive until it completes: the remote then receives those frames intact
 * up to where the connection was cut, never freed (and reused) memory. */
START_TEST(write_in_flight_outlives_failing_read)
{
	const unsigned char bad[8] = { 4, 0, 0, 0 }; /* a frame of 4 bytes */
	size_t want_len, junk, got;
	unsigned char *want = expected_stream(&want_len), *buf;
	pier_received_request *rr;
	pier_peer *a;
	pier_msg *m;
	struct conn *c;
	int sv[2], r;

	use_backend(_i);
	park_setup();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* The socket is full before the frames come: all of them are queued
	 * while the loop cannot run, so that its write covers them all. */
	junk = fill(sv[0]);
	buf = malloc(junk + want_len + 1);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], NULL), 0);
	c = conn_of_peer(a);
	park(c);
	for (int i = 0; i < FRAMES; i++) {
		char body[FRAME_BODY];

		memset(body, 'a' + i, sizeof(body));
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, body,
							 sizeof(body), NULL, 0), 0);
	}
	unpark();
	park_writing(c);

	/* Room for the whole write, and a broken frame for the reading
	 * thread, while the loop is held: the reader ends the connection
	 * first. */
	got = drain(sv[1], buf, junk);
	ck_assert_uint_eq(got, junk);
	ck_assert_int_eq(write(sv[1], bad, sizeof(bad)), (ssize_t)sizeof(bad));
	r = pier_peer_recv(a, &m, &rr, WAIT);
	ck_assert_msg(r == -PIER_ESHORTFRAME, "%s", pier_strerror(r));
	unpark();

	/* Whatever of the frames arrives before the end is what was sent. */
	got = 0;
	for (;;) {
		ssize_t n = recv(sv[1], buf + got, want_len + 1 - got, 0);

		if (n <= 0)
			break;
		got += (size_t)n;
	}
	ck_assert_uint_le(got, want_len);
	ck_assert_msg(memcmp(buf, want, got) == 0, "the remote received bytes never sent");
	pier_peer_free(a);
	close(sv[1]);
	park_teardown();
	free(buf);
	free(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sendq");
	TCase *tc = th_tcase("sendq", 30);

	tcase_add_loop_test(tc, write_in_flight_outlives_failing_read, 0, 2);
	suite_add_tcase(s, tc);
	return th_run(s);
}
