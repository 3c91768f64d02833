/* SPDX-License-Identifier: MIT */
/*
 * Latest-only streams (pier_config_set_stream_latest()): of a stream's
 * messages waiting for the application only the newest few stay, the
 * older ones dropped with their fds and counted; everything else keeps its
 * place; reading goes on while the application is busy, so that a slow
 * consumer never holds the sender back.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"
#include "peers.h"
#include "route.h"

enum { LATEST = 7, OTHER = 8 };

/* The case of a looped test: the pair kind, and how many to keep (1 or 3). */
static enum pair_kind kind_of(int i)
{
	return (enum pair_kind)(i / 2);
}

static unsigned int keep_of(int i)
{
	return i % 2 ? 3 : 1;
}

/* A configuration with the latest-only stream LATEST keeping keep. */
static pier_config *latest_config(unsigned int keep)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, LATEST, keep), 0);
	return cfg;
}

/* What waits for the application on p, as the receive limits count it. */
static void queued(pier_peer *p, size_t *bytes, unsigned int *fds)
{
	pthread_mutex_lock(&p->conn.mu);
	*bytes = p->conn.in_bytes;
	*fds = p->conn.in_fds;
	pthread_mutex_unlock(&p->conn.mu);
}

static bool read_paused(pier_peer *p)
{
	bool paused;

	pthread_mutex_lock(&p->conn.mu);
	paused = p->conn.pause == PAUSE_RECV;
	pthread_mutex_unlock(&p->conn.mu);
	return paused;
}

static void assert_nothing_queued(pier_peer *p)
{
	pier_received_request *rr;
	pier_msg *m;
	unsigned int fds;
	size_t bytes;

	ck_assert_int_eq(pier_peer_recv(p, &m, &rr, 0), -EAGAIN);
	queued(p, &bytes, &fds);
	ck_assert_uint_eq(bytes, 0);
	ck_assert_uint_eq(fds, 0);
}

static int send_stream(pier_peer *p, int32_t service, const char *body, const int *fds,
		       size_t nfds)
{
	return pier_writer_send_stream(pier_peer_get_writer(p), service, body, strlen(body), fds,
				       nfds);
}

/* --- the setter ----------------------------------------------------------- */

START_TEST(setter_checks_its_arguments)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_set_stream_latest(NULL, LATEST, 1), -EINVAL);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, LATEST, 65537), -EINVAL);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, LATEST, UINT32_MAX), -EINVAL);
	ck_assert_uint_eq(cfg->nlatest, 0);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, LATEST, 65536), 0);
	/* Removing what is not there is no error. */
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, OTHER, 0), 0);
	ck_assert_uint_eq(cfg->nlatest, 1);

	/* Sixteen services; a seventeenth has no room, but each of the
	 * sixteen may still be changed, and removing one makes room. */
	for (int32_t s = 100; s < 115; s++)
		ck_assert_int_eq(pier_config_set_stream_latest(cfg, s, 2), 0);
	ck_assert_uint_eq(cfg->nlatest, 16);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, INT32_MIN, 1), -ENOSPC);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, LATEST, 3), 0);
	ck_assert_uint_eq(cfg->nlatest, 16);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, 100, 0), 0);
	ck_assert_uint_eq(cfg->nlatest, 15);
	ck_assert_int_eq(pier_config_set_stream_latest(cfg, INT32_MIN, 1), 0);
	for (unsigned int i = 0; i < cfg->nlatest; i++) {
		ck_assert_int_ne(cfg->latest[i].service, 100);
		if (cfg->latest[i].service == LATEST)
			ck_assert_uint_eq(cfg->latest[i].keep, 3);
	}
	pier_config_free(cfg);
}
END_TEST

/* --- what stays ----------------------------------------------------------- */

struct expected {
	enum pier_msg_type type;
	int32_t service;
	char body[16];
	bool latest;
	bool gone; /* dropped for a newer one */
};

enum { BURST = 40 };

/* A burst of BURST messages of the latest-only stream, with stream
 * messages of another service and requests of the same service among
 * them: exactly the newest keep of the stream stay, in order, and
 * everything else stays too, each in its place; the drops are counted,
 * and the receive limits count what stays, then nothing. */
START_TEST(burst_leaves_the_newest)
{
	enum pair_kind kind = kind_of(_i);
	unsigned int keep = keep_of(_i), n = 0, left;
	struct expected want[BURST * 2];
	pier_sent_request *sr[BURST];
	unsigned int nsr = 0, fds;
	size_t bytes, want_bytes = 0;
	pier_config *cfg = latest_config(keep);
	pier_peer *a, *b;

	make_pair_cfg(kind, NULL, cfg, &a, &b);
	pier_config_free(cfg);
	for (int i = 0; i < BURST; i++) {
		struct expected *w = &want[n++];

		*w = (struct expected){ PIER_MSG_STREAM, LATEST, "", true, false };
		snprintf(w->body, sizeof(w->body), "L%d", i);
		ck_assert_int_eq(send_stream(a, LATEST, w->body, NULL, 0), 0);
		if (i % 4 == 1) {
			w = &want[n++];
			*w = (struct expected){ PIER_MSG_STREAM, OTHER, "", false, false };
			snprintf(w->body, sizeof(w->body), "S%d", i);
			ck_assert_int_eq(send_stream(a, OTHER, w->body, NULL, 0), 0);
		}
		if (i % 5 == 2) {
			w = &want[n++];
			*w = (struct expected){ PIER_MSG_REQUEST, LATEST, "", false, false };
			snprintf(w->body, sizeof(w->body), "R%d", i);
			sr[nsr++] = send_request(a, LATEST, w->body);
		}
	}
	/* The last message sent is of the stream: once it is queued, all
	 * are.  Nobody waits on b meanwhile: its loop reads. */
	wait_until(pier_peer_stat(b, PIER_STAT_SUPERSEDED) == BURST - keep, WAIT);
	ck_assert_uint_eq(pier_peer_stat(b, PIER_STAT_DROPPED), 0);

	/* What the application will get: all but the newest keep of the
	 * stream gone. */
	left = BURST;
	for (unsigned int i = 0; i < n; i++) {
		if (want[i].latest && left-- > keep) {
			want[i].gone = true;
			continue;
		}
		want_bytes += strlen(want[i].body) + sizeof(struct pier_msg);
	}
	queued(b, &bytes, &fds);
	ck_assert_uint_eq(bytes, want_bytes);
	ck_assert_uint_eq(fds, 0);
	for (unsigned int i = 0; i < n; i++) {
		pier_received_request *rr;
		pier_msg *m;

		if (want[i].gone)
			continue;
		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, 0), 0);
		assert_msg(m, want[i].type, want[i].service, want[i].body);
		ck_assert((rr != NULL) == (want[i].type == PIER_MSG_REQUEST));
		pier_msg_free(m);
		pier_received_request_free(rr);
	}
	assert_nothing_queued(b);
	for (unsigned int i = 0; i < nsr; i++)
		pier_sent_request_free(sr[i]);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

enum { FD_KINDS = 3 };
static const enum pair_kind fd_kinds[FD_KINDS] = { PAIR_SEQPACKET, PAIR_SEQPACKET_FD,
						  PAIR_ABSTRACT };

/* The fds of dropped messages are closed when they are dropped, and those
 * that stay are the newest messages' own. */
START_TEST(dropped_fds_are_closed)
{
	enum { FRAMES = 64 };
	enum pair_kind kind = fd_kinds[_i / 2];
	unsigned int keep = keep_of(_i), fds;
	pier_config *cfg = latest_config(keep);
	pier_peer *a, *b;
	size_t bytes;
	int before;

	make_pair_cfg(kind, NULL, cfg, &a, &b);
	pier_config_free(cfg);
	before = open_fd_count();
	for (int i = 0; i < FRAMES; i++) {
		char content[32];
		int fd;

		snprintf(content, sizeof(content), "frame %d", i);
		fd = memfd_with(content);
		ck_assert_int_eq(send_stream(a, LATEST, content, &fd, 1), 0);
		close(fd);
	}
	wait_until(pier_peer_stat(b, PIER_STAT_SUPERSEDED) == FRAMES - keep, WAIT);
	/* The sender frees what the remote read once its write completes:
	 * a moment later, maybe. */
	wait_until(open_fd_count() == before + (int)keep, WAIT);
	queued(b, &bytes, &fds);
	ck_assert_uint_eq(fds, keep);
	for (unsigned int i = FRAMES - keep; i < FRAMES; i++) {
		pier_received_request *rr;
		char content[32], *got;
		pier_msg *m;

		snprintf(content, sizeof(content), "frame %u", i);
		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, 0), 0);
		assert_msg(m, PIER_MSG_STREAM, LATEST, content);
		ck_assert_uint_eq(pier_msg_fd_count(m), 1);
		got = read_fd(pier_msg_fd(m, 0));
		ck_assert_str_eq(got, content);
		free(got);
		pier_msg_free(m);
	}
	assert_nothing_queued(b);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Messages of the stream still queued when the peer is freed are freed
 * with it, their fds closed (the fd-leak fixture checks). */
START_TEST(unread_latest_freed_with_the_peer)
{
	pier_config *cfg = latest_config(3);
	pier_peer *a, *b;
	int fd = memfd_with("frame");

	make_pair_cfg(fd_kinds[_i], NULL, cfg, &a, &b);
	pier_config_free(cfg);
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(send_stream(a, LATEST, "frame", &fd, 1), 0);
	close(fd);
	wait_until(pier_peer_stat(b, PIER_STAT_SUPERSEDED) == 7, WAIT);
	pier_peer_free(b);
	pier_peer_free(a);
}
END_TEST

/* --- reading goes on ------------------------------------------------------ */

/* A flood of the stream far beyond the receive limit never pauses
 * reading: a dropped message stops counting before the next one counts,
 * so a limit with room for keep of them is enough.  Other messages still
 * count, and pause reading at the limit as ever. */
START_TEST(flood_never_pauses_reading)
{
	enum { FLOOD = 200, OTHERS = 16 };
	enum pair_kind kind = kind_of(_i);
	unsigned int keep = keep_of(_i), fds;
	char body[1024];
	size_t cost = sizeof(body) - 1 + sizeof(struct pier_msg), bytes;
	pier_config *cfg = latest_config(keep);
	pier_peer *a, *b;

	/* Room for keep of them, not for one more. */
	ck_assert_int_eq(pier_config_set_max_queued(cfg, keep * cost + cost / 2, 4 << 20), 0);
	make_pair_cfg(kind, NULL, cfg, &a, &b);
	pier_config_free(cfg);
	memset(body, 'f', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	for (int i = 0; i < FLOOD; i++)
		ck_assert_int_eq(send_stream(a, LATEST, body, NULL, 0), 0);
	wait_until(pier_peer_stat(b, PIER_STAT_SUPERSEDED) == FLOOD - keep, WAIT);
	queued(b, &bytes, &fds);
	ck_assert_uint_eq(bytes, keep * cost);
	ck_assert(!read_paused(b));

	/* Messages of another service fill the limit: reading pauses. */
	for (int i = 0; i < OTHERS; i++)
		ck_assert_int_eq(send_stream(a, OTHER, body, NULL, 0), 0);
	wait_until(read_paused(b), WAIT);
	for (unsigned int i = 0; i < keep + OTHERS; i++) {
		pier_received_request *rr;
		pier_msg *m;

		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
		assert_msg(m, PIER_MSG_STREAM, i < keep ? LATEST : OTHER, body);
		pier_msg_free(m);
	}
	assert_nothing_queued(b);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- a slow consumer ------------------------------------------------------ */

static int send_frame(pier_peer *p, uint32_t seq, int fd)
{
	return pier_writer_send_stream(pier_peer_get_writer(p), LATEST, &seq, sizeof(seq),
				       fd >= 0 ? &fd : NULL, fd >= 0);
}

/* The number of a frame, or -1 for another message. */
static long frame_seq(const pier_msg *m)
{
	size_t len;
	const void *body = pier_msg_body(m, &len);
	uint32_t seq;

	if (pier_msg_header(m)->service_id != LATEST || len != sizeof(seq))
		return -1;
	memcpy(&seq, body, sizeof(seq));
	return seq;
}

/* The consumer takes one frame for every ten the producer sends, the
 * producer never waits (its send timeout is 0), over a long run; each
 * frame taken is the oldest of the newest keep, never older: of the frames
 * sent, exactly keep - 1 are newer.  The receive limits are small, so that
 * anything kept too long would pause reading at once. */
START_TEST(slow_consumer_never_stalls_the_sender)
{
	enum { ROUNDS = 300, PER_ROUND = 10 };
	enum pair_kind kind = kind_of(_i);
	unsigned int keep = keep_of(_i);
	uint32_t sent = 0, taken = 0;
	pier_config *ca, *cb = latest_config(keep);
	pier_peer *a, *b;
	int fd = pair_kind_has_fds(kind) ? memfd_with("frame") : -1;

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(ca, 0), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cb, 4096, 4 << 20), 0);
	ck_assert_int_eq(pier_config_set_max_queued_fds(cb, 16, 0), 0);
	make_pair_cfg(kind, ca, cb, &a, &b);
	pier_config_free(ca);
	pier_config_free(cb);
	for (int round = 0; round < ROUNDS; round++) {
		pier_received_request *rr;
		pier_msg *m;

		for (int i = 0; i < PER_ROUND; i++, sent++) {
			int r = send_frame(a, sent, fd);

			ck_assert_msg(r == 0, "frame %u: %s", sent, pier_strerror(r));
		}
		/* All of them read, with nobody waiting on b. */
		wait_until(pier_peer_stat(b, PIER_STAT_SUPERSEDED) == sent - taken - keep, WAIT);
		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, 0), 0);
		ck_assert_int_eq(frame_seq(m), sent - keep);
		ck_assert_uint_eq(pier_msg_fd_count(m), fd >= 0);
		pier_msg_free(m);
		taken++;
	}
	for (unsigned int i = 1; i < keep; i++) {
		pier_received_request *rr;
		pier_msg *m;

		ck_assert_int_eq(pier_peer_recv(b, &m, &rr, 0), 0);
		ck_assert_int_eq(frame_seq(m), sent - keep + i);
		pier_msg_free(m);
	}
	assert_nothing_queued(b);
	if (fd >= 0)
		close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

struct consumer {
	pier_peer *peer;
	atomic_uint *sent; /* frames the producer has sent */
	uint32_t last;     /* the last frame's number */
	unsigned int taken;
	char failure[128]; /* what went wrong, or "" */
};

/* The producer sent ten frames more than at (or its last one). */
static bool ten_more(const struct consumer *co, unsigned int at)
{
	unsigned int sent = atomic_load(co->sent);

	return sent >= at + 10 || sent > co->last;
}

/* Takes frames until the last one, each in turn once the producer sent
 * ten more: ten times slower than the producer.  The frames it gets must
 * be ever newer. */
static void *consume(void *arg)
{
	struct consumer *co = arg;
	long prev = -1;

	for (;;) {
		struct timespec deadline = deadline_in(WAIT);
		pier_received_request *rr;
		unsigned int at;
		pier_msg *m;
		long seq;
		int r;

		if ((r = pier_peer_recv(co->peer, &m, &rr, WAIT)) < 0) {
			snprintf(co->failure, sizeof(co->failure), "frame %u: %s", co->taken,
				 pier_strerror(r));
			return NULL;
		}
		seq = frame_seq(m);
		pier_msg_free(m);
		co->taken++;
		if (seq <= prev) {
			snprintf(co->failure, sizeof(co->failure), "frame %ld after %ld", seq, prev);
			return NULL;
		}
		prev = seq;
		if (seq == co->last)
			return NULL;
		at = atomic_load(co->sent);
		while (!ten_more(co, at)) {
			if (!wait_tick(&deadline)) {
				snprintf(co->failure, sizeof(co->failure), "the producer stalled");
				return NULL;
			}
		}
	}
}

/* The same with the consumer on a thread of its own, taking frames while
 * the loop thread reads and drops them: the producer, a non-blocking
 * sender kept within AHEAD frames of what the receiver has read, is never
 * refused; the consumer's frames come in order and end with the last. */
START_TEST(slow_consumer_thread)
{
	enum { FRAMES = 3000, AHEAD = 32 };
	enum pair_kind kind = kind_of(_i);
	unsigned int keep = keep_of(_i);
	atomic_uint sent = 0;
	struct consumer co = { .sent = &sent, .last = FRAMES - 1 };
	pier_config *ca, *cb = latest_config(keep);
	pier_peer *a;
	pthread_t t;
	int fd = pair_kind_has_fds(kind) ? memfd_with("frame") : -1;

	ck_assert_int_eq(pier_config_new(&ca), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(ca, 0), 0);
	/* The sender counts fds in flight from what its socket holds unread,
	 * which errs high while the remote reads as fast as this one does;
	 * with an ordinary user's default (a quarter of 1,024) it can refuse
	 * a send with 32 packets really unread.  Room for 900: what is
	 * tested here is that the receiver keeps reading. */
	ck_assert_int_eq(pier_config_set_max_queued_fds(ca, 256, 900), 0);
	make_pair_cfg(kind, ca, cb, &a, &co.peer);
	pier_config_free(ca);
	pier_config_free(cb);
	ck_assert_int_eq(pthread_create(&t, NULL, consume, &co), 0);
	for (uint32_t i = 0; i < FRAMES; i++) {
		int r;

		/* Not faster than the receiver reads, whoever consumes. */
		wait_until(pier_peer_stat(co.peer, PIER_STAT_MSGS_RECEIVED) + AHEAD > i, WAIT);
		r = send_frame(a, i, fd);
		ck_assert_msg(r == 0, "frame %u: %s", i, pier_strerror(r));
		atomic_store(&sent, i + 1);
	}
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_msg(!co.failure[0], "%s", co.failure);
	ck_assert_uint_eq(pier_peer_stat(co.peer, PIER_STAT_SUPERSEDED) + co.taken, FRAMES);
	ck_assert_uint_lt(co.taken, FRAMES / 5);
	assert_nothing_queued(co.peer);
	if (fd >= 0)
		close(fd);
	pier_peer_free(a);
	pier_peer_free(co.peer);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("latest");
	TCase *tc = th_tcase("latest", 30);

	tcase_add_test(tc, setter_checks_its_arguments);
	tcase_add_loop_test(tc, burst_leaves_the_newest, 0, 2 * PAIR_KINDS);
	tcase_add_loop_test(tc, dropped_fds_are_closed, 0, 2 * FD_KINDS);
	tcase_add_loop_test(tc, unread_latest_freed_with_the_peer, 0, FD_KINDS);
	tcase_add_loop_test(tc, flood_never_pauses_reading, 0, 2 * PAIR_KINDS);
	tcase_add_loop_test(tc, slow_consumer_never_stalls_the_sender, 0, 2 * PAIR_KINDS);
	tcase_add_loop_test(tc, slow_consumer_thread, 0, 2 * PAIR_KINDS);
	suite_add_tcase(s, tc);
	return th_run(s);
}
