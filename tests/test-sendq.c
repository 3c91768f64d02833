/* SPDX-License-Identifier: MIT */
/*
 * The send queue: what it owns while the loop writes, what it counts
 * against its limits (bytes, fds, the memory of queued packets), and how a
 * sender waits when a limit is reached.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include "loop.h"
#include "route.h"
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

/* A task the loop thread runs between its I/O, where it holds no lock,
 * that parks it until released: a test can then change the connection
 * under a write the loop has in flight without racing it. */
static int park_req[2], park_ack[2];
static struct loop_task park_task;

static void park_fn(struct loop_task *t, unsigned int events)
{
	char c = 'p';

	(void)t;
	(void)events;
	if (write(park_ack[1], &c, 1) != 1)
		_exit(3);
	while (read(park_req[0], &c, 1) < 0 && errno == EINTR)
		;
}

static void park_setup(void)
{
	ck_assert_int_eq(pipe2(park_req, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(park_ack, O_CLOEXEC), 0);
	park_task = (struct loop_task){ .fn = park_fn };
}

static void park_teardown(void)
{
	close(park_req[0]);
	close(park_req[1]);
	close(park_ack[0]);
	close(park_ack[1]);
}

/* Has the loop thread of c park; returns once it is parked. */
static void park(struct conn *c)
{
	char b;

	loop_post(c->loop, &park_task, 1);
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
		writing = c->wr_op.in_flight && c->link.wmsg.msg_iovlen >= 2;
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

enum { WRITE_FRAMES = 4, FRAME_BODY = 16 << 10 };

/* The bytes a stream connection sends for WRITE_FRAMES stream messages whose
 * bodies are FRAME_BODY bytes of 'a' + i. */
static unsigned char *expected_stream(size_t *len)
{
	size_t frame = WIRE_STREAM_OVERHEAD + FRAME_BODY;
	unsigned char *buf = malloc(WRITE_FRAMES * frame);

	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < WRITE_FRAMES; i++) {
		struct pier_header h = { .type = PIER_MSG_STREAM, .request_id = 0,
					 .service_id = 1 };

		wire_stream_prefix_encode(buf + i * frame, &h, FRAME_BODY, PIER_BYTE_ORDER_LITTLE);
		memset(buf + i * frame + WIRE_STREAM_OVERHEAD, 'a' + i, FRAME_BODY);
	}
	*len = WRITE_FRAMES * frame;
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
	c = &a->conn;
	park(c);
	for (int i = 0; i < WRITE_FRAMES; i++) {
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


/* --- fds, counted like bytes --------------------------------------------- */

enum { FDS_PER_FRAME = 4 };

/* Sends a stream message with FDS_PER_FRAME dups of fd. */
static int send_with_fds(pier_peer *p, int fd)
{
	int fds[FDS_PER_FRAME];

	for (int i = 0; i < FDS_PER_FRAME; i++)
		fds[i] = fd;
	return pier_writer_send_stream(pier_peer_get_writer(p), 1, "frame", 5, fds,
				       FDS_PER_FRAME);
}

/* Reads one packet off a raw seqpacket socket (waiting up to WAIT ms),
 * closing the fds it carried; returns how many it carried, or -1 at the
 * end or on a timeout. */
static int read_packet_fds_within(int fd, int timeout_ms)
{
	char buf[256], cbuf[CMSG_SPACE(64 * sizeof(int))];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct pollfd pfd = { fd, POLLIN, 0 };
	int n = 0;

	if (poll(&pfd, 1, timeout_ms) != 1 || recvmsg(fd, &mh, MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		int *fds = (int *)(void *)CMSG_DATA(cm);
		size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		for (size_t i = 0; i < count; i++, n++)
			close(fds[i]);
	}
	return n;
}

static int read_packet_fds(int fd)
{
	return read_packet_fds_within(fd, WAIT);
}

/* One packet of len bytes with nfds (at most 16) fds, sent on a raw
 * socket without waiting: sendmsg()'s result. */
static ssize_t raw_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds)
{
	char cbuf[CMSG_SPACE(16 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)buf, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = CMSG_SPACE(nfds * sizeof(int)) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	ck_assert_uint_le(nfds, 16);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	return sendmsg(sock, &mh, MSG_DONTWAIT);
}

/* A peer over one end of a seqpacket socketpair; *remote is the other. */
static pier_peer *seqpacket_peer(const pier_config *cfg, int *remote)
{
	pier_peer *p;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], cfg), 0);
	*remote = sv[1];
	return p;
}

/* A remote that reads nothing: fds sent and queued count against the
 * send limit, and a sender that may not wait gets -EAGAIN once they reach
 * it, however much room the byte limit has; once the remote has read
 * everything, sending goes on. */
START_TEST(fds_in_flight_and_queued_are_bounded)
{
	enum { LIMIT = 4 * FDS_PER_FRAME };
	pier_config *cfg;
	pier_peer *p;
	int remote, memfd = memfd_with("frame"), before, sent = 0, r;

	use_backend(_i);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, 0, LIMIT), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 0), 0);
	p = seqpacket_peer(cfg, &remote);
	pier_config_free(cfg);
	before = open_fd_count();
	while ((r = send_with_fds(p, memfd)) == 0)
		sent++;
	ck_assert_msg(r == -EAGAIN, "%s", pier_strerror(r));
	ck_assert_int_eq(sent, LIMIT / FDS_PER_FRAME);
	ck_assert_int_le(open_fd_count(), before + LIMIT);

	for (int i = 0; i < sent; i++)
		ck_assert_int_eq(read_packet_fds(remote), FDS_PER_FRAME);
	ck_assert_int_eq(send_with_fds(p, memfd), 0);
	ck_assert_int_eq(read_packet_fds(remote), FDS_PER_FRAME);
	pier_peer_free(p);
	close(remote);
	close(memfd);
}
END_TEST

struct slow_reader {
	int fd;
	int frames;
	atomic_int read; /* frames read so far */
};

static void *read_slowly(void *arg)
{
	struct slow_reader *sr = arg;

	for (int i = 0; i < sr->frames; i++) {
		struct timespec pause = { 0, 200000 };

		nanosleep(&pause, NULL); /* slower than the sender, on purpose */
		if (read_packet_fds(sr->fd) != FDS_PER_FRAME)
			break;
		atomic_fetch_add(&sr->read, 1);
	}
	return NULL;
}

/* A sender that may wait is held back by the fd limit until a slow remote
 * reads, and every send succeeds; the process's fds stay within the
 * limit meanwhile. */
START_TEST(sender_waits_for_fds_to_be_read)
{
	enum { LIMIT = 8 * FDS_PER_FRAME, FRAMES = 200 };
	struct slow_reader sr = { .frames = FRAMES };
	pier_config *cfg;
	pier_peer *p;
	struct conn *c;
	pthread_t t;
	int memfd = memfd_with("frame");
	unsigned int most = 0;

	use_backend(_i);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, 0, LIMIT), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, WAIT), 0);
	p = seqpacket_peer(cfg, &sr.fd);
	pier_config_free(cfg);
	c = &p->conn;
	ck_assert_int_eq(pthread_create(&t, NULL, read_slowly, &sr), 0);
	for (int i = 0; i < FRAMES; i++) {
		unsigned int counted;
		int ahead;

		ck_assert_int_eq(send_with_fds(p, memfd), 0);
		pthread_mutex_lock(&c->out_mu);
		counted = c->out_fds + c->fds_in_flight;
		pthread_mutex_unlock(&c->out_mu);
		most = counted > most ? counted : most;
		/* What was sent and not read yet: within the limit (and the
		 * one the reader may be taking right now). */
		ahead = i + 1 - atomic_load(&sr.read);
		ck_assert_int_le(ahead, LIMIT / FDS_PER_FRAME + 1);
	}
	pthread_join(t, NULL);
	ck_assert_uint_le(most, LIMIT);
	pier_peer_free(p);
	close(sr.fd);
	close(memfd);
}
END_TEST

/* With no limit set, the send limit is a quarter of the fd limit. */
START_TEST(fd_limit_follows_rlimit_nofile)
{
	struct rlimit saved, low;
	pier_config *cfg;
	pier_peer *p;
	int remote, memfd = memfd_with("frame"), sent = 0, r;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	low.rlim_cur = 512;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 0), 0);
	p = seqpacket_peer(cfg, &remote);
	pier_config_free(cfg);
	while ((r = send_with_fds(p, memfd)) == 0 && sent < 1000)
		sent++;
	ck_assert_msg(r == -EAGAIN, "%s", pier_strerror(r));
	ck_assert_int_eq(sent * FDS_PER_FRAME, 512 / 4);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	pier_peer_free(p);
	close(remote);
	close(memfd);
}
END_TEST

/* Queueing a message dups its fds: when the process has no fd to spare,
 * the send fails with -EMFILE (not -ENOMEM), and the connection goes on. */
START_TEST(no_fd_to_queue_is_emfile)
{
	struct rlimit saved;
	pier_peer *p;
	int remote, memfd = memfd_with("frame"), r;
	size_t junk;

	p = seqpacket_peer(NULL, &remote);
	/* The socket is full: the next message must be queued. */
	junk = 0;
	while (send(p->conn.link.fd, "junk", 4, MSG_DONTWAIT) == 4)
		junk++;
	no_fd_left(&saved);
	r = send_with_fds(p, memfd);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	ck_assert_msg(r == -EMFILE, "%s", pier_strerror(r));

	/* Nothing was sent or lost: the remote reads the junk, then the
	 * next message arrives whole. */
	for (size_t i = 0; i < junk; i++)
		ck_assert_int_eq(read_packet_fds(remote), 0);
	ck_assert_int_eq(send_with_fds(p, memfd), 0);
	ck_assert_int_eq(read_packet_fds(remote), FDS_PER_FRAME);
	pier_peer_free(p);
	close(remote);
	close(memfd);
}
END_TEST

/* Drops CAP_SYS_ADMIN and CAP_SYS_RESOURCE from this process, which exempt
 * root from the kernel's limit on fds in flight. */
static void drop_fd_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	ck_assert_int_eq(syscall(SYS_capget, &h, d), 0);
	for (int i = 0; i < 2; i++) {
		uint32_t drop = 0;

		if (CAP_SYS_ADMIN / 32 == i)
			drop |= 1u << (CAP_SYS_ADMIN % 32);
		if (CAP_SYS_RESOURCE / 32 == i)
			drop |= 1u << (CAP_SYS_RESOURCE % 32);
		d[i].effective &= ~drop;
		d[i].permitted &= ~drop;
	}
	ck_assert_int_eq(syscall(SYS_capset, &h, d), 0);
}

/* Sends packets with fds on fd until the kernel refuses more fds in
 * flight for this user; returns how many went. */
enum { FILL_FDS = 16 };

static int fill_fds_in_flight(int fd, int memfd)
{
	int fds[FILL_FDS], n = 0;

	for (int i = 0; i < FILL_FDS; i++)
		fds[i] = memfd;
	for (;;) {
		char byte = 1;

		if (raw_send_fds(fd, &byte, 1, fds, FILL_FDS) != 1)
			break;
		n++;
	}
	ck_assert_msg(errno == ETOOMANYREFS, "filling fds in flight: %s", strerror(errno));
	return n;
}

/* The kernel refuses fds in flight for this user past RLIMIT_NOFILE
 * (ETOOMANYREFS), here because of another socket: a send is not refused
 * and the connection does not end; the message waits and goes once the
 * other socket's fds are read. */
START_TEST(kernel_fd_refusal_is_a_wait)
{
	struct rlimit saved, low;
	pier_config *cfg;
	pier_peer *p;
	int remote, other[2], memfd, filled;

	if (under_valgrind()) {
		/* It keeps the fd limit to itself: the kernel never sees it. */
		fprintf(stderr, "kernel_fd_refusal_is_a_wait: skipped under valgrind, whose fd "
				"limit the kernel does not see\n");
		return;
	}
	use_backend(_i);
	memfd = memfd_with("frame");
	if (geteuid() == 0) {
		/* The kernel counts fds in flight per user, in every process:
		 * a user of its own keeps the suites running beside this one
		 * out of the count (and has no capability to bypass it). */
		uid_t uid = 0x7ff00000u + (uid_t)(getpid() & 0xfffff);

		ck_assert_int_eq(setresgid(uid, uid, uid), 0);
		ck_assert_int_eq(setresuid(uid, uid, uid), 0);
	} else {
		drop_fd_caps();
	}
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
	low = saved;
	/* The kernel counts this user's fds in flight in every process: a
	 * limit well above what other tests hold at once. */
	low.rlim_cur = 512;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, other), 0);
	filled = fill_fds_in_flight(other[0], memfd);

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 0), 0);
	p = seqpacket_peer(cfg, &remote);
	pier_config_free(cfg);
	ck_assert_int_eq(send_with_fds(p, memfd), 0);
	for (int i = 0; i < filled; i++)
		ck_assert_int_eq(read_packet_fds(other[1]), FILL_FDS);
	/* As an ordinary user, other processes of the user (other suites)
	 * may hold fds in flight for a while yet. */
	ck_assert_int_eq(read_packet_fds_within(remote, 4 * WAIT), FDS_PER_FRAME);
	ck_assert_int_eq(send_with_fds(p, memfd), 0);
	ck_assert_int_eq(read_packet_fds(remote), FDS_PER_FRAME);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	pier_peer_free(p);
	close(remote);
	close(other[0]);
	close(other[1]);
	close(memfd);
}
END_TEST

/* Reading ahead stops at the receive fd limit: a remote that sends fds
 * faster than the application takes them fills this process's fd table
 * only up to the limit. */
START_TEST(reading_ahead_stops_at_the_fd_limit)
{
	enum { LIMIT = 4 * FDS_PER_FRAME, FRAMES = 40 };
	pier_config *cfg;
	pier_peer *p;
	struct conn *c;
	int remote, memfd = memfd_with("frame"), before, fds[FDS_PER_FRAME];
	int64_t deadline = now_ms() + WAIT;
	bool paused = false;

	use_backend(_i);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, LIMIT, 0), 0);
	p = seqpacket_peer(cfg, &remote);
	pier_config_free(cfg);
	c = &p->conn;
	ck_assert_int_ge(pier_peer_fd(p), 0); /* the loop reads ahead */
	before = open_fd_count();
	for (int i = 0; i < FDS_PER_FRAME; i++)
		fds[i] = memfd;
	for (int i = 0; i < FRAMES; i++) {
		unsigned char pkt[WIRE_HEADER_SIZE];
		struct pier_header h = { .type = PIER_MSG_STREAM, .service_id = 1 };

		wire_header_encode(pkt, &h, PIER_BYTE_ORDER_LITTLE);
		ck_assert_int_eq(raw_send_fds(remote, pkt, sizeof(pkt), fds, FDS_PER_FRAME),
				 (ssize_t)sizeof(pkt));
	}
	while (!paused) {
		ck_assert_msg(now_ms() < deadline, "reading never paused");
		sched_yield();
		pthread_mutex_lock(&c->mu);
		paused = c->pause == PAUSE_RECV;
		pthread_mutex_unlock(&c->mu);
	}
	ck_assert_int_le(open_fd_count() - before, LIMIT + FDS_PER_FRAME);
	/* Taking messages lets reading go on: all of them arrive. */
	for (int i = 0; i < FRAMES; i++) {
		pier_received_request *rr;
		pier_msg *m;

		ck_assert_int_eq(pier_peer_recv(p, &m, &rr, WAIT), 0);
		ck_assert_uint_eq(pier_msg_fd_count(m), FDS_PER_FRAME);
		pier_msg_free(m);
	}
	pier_peer_free(p);
	close(remote);
	close(memfd);
}
END_TEST

/* A sender waiting for room in the queue fails as soon as the connection
 * is closed, instead of waiting on a remote that never reads. */
struct waiting_sender {
	pier_peer *p;
	atomic_int result; /* 1 while no send failed */
};

static void *send_until_refused(void *arg)
{
	struct waiting_sender *s = arg;
	static unsigned char body[4096];
	int r;

	do {
		r = pier_writer_send_stream(pier_peer_get_writer(s->p), 1, body, sizeof(body),
					    NULL, 0);
	} while (r == 0);
	atomic_store(&s->result, r);
	return NULL;
}

START_TEST(close_fails_waiting_senders)
{
	enum { LIMIT = 64 << 10 };
	struct waiting_sender s = { .result = 1 };
	int64_t deadline = now_ms() + WAIT;
	pier_config *cfg;
	struct conn *c;
	pthread_t th;
	int remote;
	bool full = false;

	use_backend(_i);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, LIMIT, LIMIT), 0);
	s.p = seqpacket_peer(cfg, &remote); /* the remote never reads */
	pier_config_free(cfg);
	c = &s.p->conn;
	ck_assert_int_eq(pthread_create(&th, NULL, send_until_refused, &s), 0);
	/* Full: the next 4 KiB frame does not fit; then the sender is in
	 * (or on its way into) a send that must wait. */
	while (!full) {
		ck_assert_msg(now_ms() < deadline, "the send queue never filled");
		sched_yield();
		pthread_mutex_lock(&c->out_mu);
		full = c->out_bytes + 8192 > LIMIT;
		pthread_mutex_unlock(&c->out_mu);
	}
	pier_writer_close(pier_peer_get_writer(s.p));
	deadline = now_ms() + WAIT;
	while (atomic_load(&s.result) == 1) {
		ck_assert_msg(now_ms() < deadline, "the waiting sender was not woken");
		sched_yield();
	}
	ck_assert_int_eq(atomic_load(&s.result), -PIER_ESHUTDOWN);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	close(remote); /* the rest of the queue can never go */
	pier_peer_free(s.p);
}
END_TEST

/* A sender waiting for room wakes whenever the queue shrinks: also when
 * the loop's first write takes the last queued frame at once and keeps its
 * chunk for the next burst, which frees nothing.  (It once woke only when
 * a write freed frames, and then slept on with the queue empty.) */
struct one_sender {
	pier_peer *p;
	atomic_int tid;
	atomic_int result; /* 1 until its send returned */
};

static void *send_two(void *arg)
{
	struct one_sender *s = arg;

	atomic_store(&s->tid, thread_id());
	atomic_store(&s->result,
		     pier_writer_send_stream(pier_peer_get_writer(s->p), 2, "two", 3, NULL, 0));
	return NULL;
}

START_TEST(sender_wakes_when_the_queue_empties_into_a_kept_chunk)
{
	enum { LIMIT = 1024 };
	struct one_sender s = { .result = 1 };
	unsigned char buf[64], *space;
	pier_config *cfg;
	struct conn *c;
	pthread_t th;
	size_t junk;
	int sv[2];

	use_backend(_i);
	park_setup();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	junk = fill(sv[0]);
	space = malloc(junk);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, LIMIT, LIMIT), 0);
	ck_assert_int_eq(pier_peer_adopt(&s.p, sv[0], cfg), 0);
	pier_config_free(cfg);
	c = &s.p->conn;
	/* The loop is held: the first frame waits in a chunk of the queue
	 * (the socket is full), which is over the limit, and the second
	 * sender waits for room. */
	park(c);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(s.p), 1, "one", 3, NULL, 0),
			 0);
	ck_assert_int_eq(pthread_create(&th, NULL, send_two, &s), 0);
	wait_until(thread_waits(atomic_load(&s.tid), false), WAIT);
	ck_assert_int_eq(atomic_load(&s.result), 1);
	/* Room in the socket: the loop's first write takes the frame at
	 * once. */
	ck_assert_uint_eq(drain(sv[1], space, junk), junk);
	unpark();
	wait_until(atomic_load(&s.result) != 1, WAIT);
	ck_assert_int_eq(atomic_load(&s.result), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	/* Both went, in order. */
	for (size_t got = 0; got < 2 * (WIRE_STREAM_OVERHEAD + 3);) {
		ssize_t n = recv(sv[1], buf + got, sizeof(buf) - got, 0);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	ck_assert_int_eq(memcmp(buf + WIRE_STREAM_OVERHEAD, "one", 3), 0);
	ck_assert_int_eq(memcmp(buf + 2 * WIRE_STREAM_OVERHEAD + 3, "two", 3), 0);
	pier_peer_free(s.p);
	close(sv[1]);
	park_teardown();
	free(space);
}
END_TEST

/* Other messages keep the socket busy while fds go too: a packet's fds
 * count as read once the remote has read that packet, not only once it
 * has read everything (which never happens while the traffic goes on), so
 * a sender of fds is never starved by the rest. */
struct chatter {
	pier_peer *peer;
	atomic_bool stop;
};

static void *chat(void *arg)
{
	struct chatter *ch = arg;

	while (!atomic_load(&ch->stop)) {
		int r = pier_writer_send_stream(pier_peer_get_writer(ch->peer), 2, "chatter", 7,
						NULL, 0);

		if (r < 0 && r != -ETIMEDOUT)
			break;
	}
	return NULL;
}

struct counting_reader {
	int fd;
	atomic_int seen; /* packets with fds */
};

/* Reads everything until the end, a little slower than the chatter
 * comes. */
static void *read_all(void *arg)
{
	struct counting_reader *cr = arg;

	for (long n = 0;; n++) {
		int fds = read_packet_fds(cr->fd);

		if (fds < 0)
			break;
		if (fds > 0)
			atomic_fetch_add(&cr->seen, 1);
		if (n % 16 == 0) {
			struct timespec pause = { 0, 100000 };

			nanosleep(&pause, NULL);
		}
	}
	return NULL;
}

START_TEST(fd_sends_go_on_beside_other_traffic)
{
	enum { LIMIT = 2 * FDS_PER_FRAME, FD_FRAMES = 20 };
	struct chatter ch = { 0 };
	struct counting_reader cr = { 0 };
	int64_t deadline;
	pthread_t tc, tr;
	pier_config *cfg;
	int memfd = memfd_with("frame");

	use_backend(_i);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cfg, 0, LIMIT), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, 4 << 20, 64 << 10), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, WAIT), 0);
	ch.peer = seqpacket_peer(cfg, &cr.fd);
	pier_config_free(cfg);
	ck_assert_int_eq(pthread_create(&tc, NULL, chat, &ch), 0);
	ck_assert_int_eq(pthread_create(&tr, NULL, read_all, &cr), 0);
	for (int i = 0; i < FD_FRAMES; i++) {
		int r = send_with_fds(ch.peer, memfd);

		ck_assert_msg(r == 0, "fd message %d of %d: %s", i + 1, FD_FRAMES, pier_strerror(r));
	}
	deadline = now_ms() + WAIT;
	while (atomic_load(&cr.seen) < FD_FRAMES) {
		ck_assert_msg(now_ms() < deadline, "%d of %d fd messages arrived",
			      atomic_load(&cr.seen), FD_FRAMES);
		sched_yield();
	}
	/* The end for both threads: the chatter's sends fail, the reader
	 * reads the end. */
	atomic_store(&ch.stop, true);
	shutdown(cr.fd, SHUT_RDWR);
	pthread_join(tc, NULL);
	pthread_join(tr, NULL);
	pier_peer_free(ch.peer);
	close(cr.fd);
	close(memfd);
}
END_TEST

/* --- memory --------------------------------------------------------------- */

/* Tiny messages to a remote that reads nothing: every queued packet is an
 * allocation of its own, and the send limit counts what they really take,
 * not only their bytes on the wire (which undercounted them five times). */
START_TEST(tiny_packets_count_their_memory)
{
	enum { LIMIT = 4 << 20 };
	pier_config *cfg;
	pier_peer *p;
	long before;
	int remote, r, sent = 0;

	if (!plain_memory())
		return;
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, LIMIT, LIMIT), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 0), 0);
	p = seqpacket_peer(cfg, &remote);
	pier_config_free(cfg);
	before = rss_kib();
	while ((r = pier_writer_send_stream(pier_peer_get_writer(p), 1, "0123456789abcdef", 16,
					    NULL, 0)) == 0)
		sent++;
	ck_assert_msg(r == -EAGAIN, "%s", pier_strerror(r));
	ck_assert_int_gt(sent, 1000);
	ck_assert_msg(rss_kib() - before < 2 * (LIMIT / 1024),
		      "%d packets queued take %ld KiB for a limit of %d KiB", sent,
		      rss_kib() - before, LIMIT / 1024);
	close(remote); /* first: p would linger trying to flush to it */
	pier_peer_free(p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sendq");
	TCase *tc = th_tcase("sendq", 30);

	tcase_add_loop_test(tc, write_in_flight_outlives_failing_read, 0, 2);
	tcase_add_loop_test(tc, fds_in_flight_and_queued_are_bounded, 0, 2);
	tcase_add_loop_test(tc, sender_waits_for_fds_to_be_read, 0, 2);
	tcase_add_loop_test(tc, fd_sends_go_on_beside_other_traffic, 0, 2);
	tcase_add_test(tc, fd_limit_follows_rlimit_nofile);
	tcase_add_test(tc, no_fd_to_queue_is_emfile);
	tcase_add_loop_test(tc, kernel_fd_refusal_is_a_wait, 0, 2);
	tcase_add_loop_test(tc, reading_ahead_stops_at_the_fd_limit, 0, 2);
	tcase_add_loop_test(tc, close_fails_waiting_senders, 0, 2);
	tcase_add_loop_test(tc, sender_wakes_when_the_queue_empties_into_a_kept_chunk, 0, 2);
	tcase_add_test(tc, tiny_packets_count_their_memory);
	suite_add_tcase(s, tc);
	return th_run(s);
}
