/* SPDX-License-Identifier: MIT */
/*
 * Buffer pools: memory shared once, frames handed over as small messages,
 * buffers given back in batches.  Frames end to end, backpressure, batching
 * (counted in messages), every lie either side can tell (each refused with
 * its own error, to the liar too), peers that go away with buffers out, and
 * nothing left behind: no fd (the fixture), no mapping.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peers.h"
#include "pool-wire.h"

#define SVC_POOL 40
#define PAGE 4096u

static const enum pair_kind fd_kinds[] = { PAIR_SEQPACKET, PAIR_SEQPACKET_FD, PAIR_ABSTRACT };
#define FD_KINDS ((int)(sizeof(fd_kinds) / sizeof(fd_kinds[0])))

/* --- helpers ------------------------------------------------------------- */

/* How many mappings of memfds named name the process has. */
static int mappings_of(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512], want[64];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	snprintf(want, sizeof(want), "memfd:%s ", name);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want))
			n++;
	fclose(f);
	return n;
}

static int pool_mappings(void)
{
	return mappings_of("pier-pool");
}

/* b receives the share request a sent and accepts it. */
static pier_remote_pool *accept_pool(pier_peer *b, unsigned int flags)
{
	pier_received_request *req;
	pier_remote_pool *rp = NULL;
	pier_msg *m;
	int r;

	req = recv_request(b, &m);
	ck_assert_int_eq(pier_msg_header(m)->service_id, SVC_POOL);
	r = pier_remote_pool_accept(&rp, req, m, flags, WAIT);
	ck_assert_msg(r == 0, "accept: %s", pier_strerror(r));
	pier_msg_free(m);
	return rp;
}

/* A pool of count buffers of size bytes shared by a with b, accepted. */
static void shared(pier_peer *a, pier_peer *b, size_t size, unsigned int count,
		   unsigned int flags, pier_pool **pool, pier_shared_pool **sp,
		   pier_remote_pool **rp)
{
	int r;

	ck_assert_int_eq(pier_pool_new(pool, size, count, flags), 0);
	r = pier_pool_share(*pool, pier_peer_get_writer(a), SVC_POOL, sp);
	ck_assert_msg(r == 0, "share: %s", pier_strerror(r));
	*rp = accept_pool(b, 0);
}

static unsigned char pattern(uint32_t seq, size_t i)
{
	return (unsigned char)(seq * 31 + i * 7 + i / PAGE);
}

/* Acquires a buffer, fills length bytes of it for frame seq, publishes it
 * with seq as metadata.  Returns its index. */
static unsigned int publish(pier_pool *pool, pier_shared_pool *sp, uint32_t seq, size_t length)
{
	unsigned char *data;
	size_t size;
	int i = pier_pool_acquire(pool, (void **)&data, &size, WAIT), r;

	ck_assert_msg(i >= 0, "acquire: %s", pier_strerror(i));
	ck_assert_uint_ge(size, length);
	for (size_t k = 0; k < length; k++)
		data[k] = pattern(seq, k);
	r = pier_pool_publish(sp, (unsigned int)i, 0, length, &seq, sizeof(seq), 0);
	ck_assert_msg(r == 0, "publish: %s", pier_strerror(r));
	return (unsigned int)i;
}

/* Receives a frame, which must be frame seq of length bytes. */
static pier_pool_frame *receive(pier_remote_pool *rp, uint32_t seq, size_t length)
{
	pier_pool_frame *f = NULL;
	const unsigned char *data;
	const uint32_t *meta;
	size_t len, meta_len;
	int r = pier_remote_pool_recv(rp, &f, WAIT);

	ck_assert_msg(r == 0, "recv: %s", pier_strerror(r));
	data = pier_pool_frame_data(f, &len);
	meta = pier_pool_frame_meta(f, &meta_len);
	ck_assert_uint_eq(len, length);
	ck_assert_uint_eq(meta_len, sizeof(seq));
	ck_assert_uint_eq(*meta, seq);
	for (size_t k = 0; k < length; k += 997)
		ck_assert_msg(data[k] == pattern(seq, k), "frame %u byte %zu", seq, k);
	ck_assert_uint_eq(data[length - 1], pattern(seq, length - 1));
	return f;
}

static uint64_t stat_of(pier_peer *p, enum pier_stat s)
{
	return pier_peer_stat(p, s);
}

/* --- frames end to end --------------------------------------------------- */

START_TEST(frames_end_to_end)
{
	const size_t size = 64 * PAGE + 100;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	int fds_shared = 0;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, size, 4, 0, &pool, &sp, &rp);
	/* One memfd: the owner's mapping and the receiver's. */
	ck_assert_int_eq(pool_mappings(), 2);
	for (uint32_t seq = 0; seq < 40; seq++) {
		pier_pool_frame *f;

		/* From the first frame on (whose wait made the connection's
		 * wake fd, once). */
		if (seq == 1)
			fds_shared = open_fd_count();

		publish(pool, sp, seq, size - seq);
		f = receive(rp, seq, size - seq);
		ck_assert_uint_eq(pier_pool_frame_seq(f), seq);
		ck_assert_uint_lt(pier_pool_frame_index(f), 4);
		pier_pool_frame_free(f);
	}
	/* Not one fd opened per frame, nor a mapping. */
	ck_assert_int_eq(open_fd_count(), fds_shared);
	ck_assert_int_eq(pool_mappings(), 2);
	pier_remote_pool_free(rp);
	ck_assert_int_eq(pool_mappings(), 1);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Frames pipelined: the owner keeps every buffer busy, the receiver takes
 * them as they come, and each is the frame it should be. */
START_TEST(frames_pipelined)
{
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	uint32_t sent = 0, got = 0;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, 3 * PAGE, 4, 0, &pool, &sp, &rp);
	while (got < 200) {
		pier_pool_frame *f[4];
		unsigned int n = 0;

		/* As many as the pool has free, then as many as came. */
		while (sent < 200 && sent - got < 4)
			publish(pool, sp, sent++, 3 * PAGE);
		while (got < sent)
			f[n++] = receive(rp, got++, 3 * PAGE);
		while (n)
			pier_pool_frame_free(f[--n]);
	}
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Where the frame lies in its buffer, and frames without metadata. */
START_TEST(frame_offsets)
{
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	pier_pool_frame *f;
	unsigned char *data;
	const unsigned char *got;
	size_t len, size;
	int i;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	shared(a, b, 2 * PAGE, 2, 0, &pool, &sp, &rp);
	i = pier_pool_acquire(pool, (void **)&data, &size, 0);
	ck_assert_int_ge(i, 0);
	ck_assert_uint_eq(size, 2 * PAGE);
	memset(data, 1, size);
	data[PAGE + 3] = 42;
	data[2 * PAGE - 1] = 43;
	ck_assert_int_eq(pier_pool_publish(sp, (unsigned int)i, PAGE + 3, PAGE - 3, NULL, 0, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), 0);
	got = pier_pool_frame_data(f, &len);
	ck_assert_uint_eq(len, PAGE - 3);
	ck_assert_uint_eq(got[0], 42);
	ck_assert_uint_eq(got[len - 1], 43);
	ck_assert_ptr_null(pier_pool_frame_meta(f, &len));
	ck_assert_uint_eq(len, 0);
	pier_pool_frame_free(f);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- backpressure -------------------------------------------------------- */

struct freer {
	pier_remote_pool *rp;
	pier_pool_frame *frame;
	pid_t waiter; /* the thread to see blocked first */
};

static void *free_when_blocked(void *arg)
{
	struct freer *fr = arg;

	wait_until(thread_waits(fr->waiter, false), WAIT);
	pier_pool_frame_free(fr->frame);
	/* The receiver goes back to wait: the release goes with that. */
	ck_assert_int_eq(pier_remote_pool_flush(fr->rp), 0);
	return NULL;
}

START_TEST(acquire_exhausted)
{
	struct timespec deadline;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	pier_pool_frame *f0, *f1;
	struct freer fr;
	pthread_t t;
	int i;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 2, 0, &pool, &sp, &rp);
	publish(pool, sp, 0, PAGE);
	publish(pool, sp, 1, PAGE);
	f0 = receive(rp, 0, PAGE);
	f1 = receive(rp, 1, PAGE);
	/* Every buffer is out: no wait fails at once, a wait times out. */
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	deadline = deadline_in(100);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 100), -ETIMEDOUT);
	ck_assert(deadline_passed(&deadline));
	/* A release ends the wait. */
	fr = (struct freer){ rp, f1, thread_id() };
	ck_assert_int_eq(pthread_create(&t, NULL, free_when_blocked, &fr), 0);
	i = pier_pool_acquire(pool, NULL, NULL, -1);
	ck_assert_int_eq(i, (int)pier_pool_frame_index(f1));
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	/* Given back unpublished, it is free again at once. */
	ck_assert_int_eq(pier_pool_drop(pool, (unsigned int)i), 0);
	ck_assert_int_eq(pier_pool_drop(pool, (unsigned int)i), -EPERM);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), i);
	ck_assert_int_eq(pier_pool_drop(pool, (unsigned int)i), 0);
	pier_pool_frame_free(f0);
	pier_remote_pool_free(rp);
	/* The receiver let go: everything comes back. */
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A pool nobody holds buffers of but the application: a drop wakes a
 * waiting acquire. */
struct dropper {
	pier_pool *pool;
	unsigned int index;
	pid_t waiter;
};

static void *drop_when_blocked(void *arg)
{
	struct dropper *d = arg;

	wait_until(thread_waits(d->waiter, false), WAIT);
	ck_assert_int_eq(pier_pool_drop(d->pool, d->index), 0);
	return NULL;
}

START_TEST(drop_wakes_acquire)
{
	struct dropper d;
	pier_pool *pool;
	pthread_t t;
	int i;

	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 1, 0), 0);
	i = pier_pool_acquire(pool, NULL, NULL, 0);
	ck_assert_int_eq(i, 0);
	d = (struct dropper){ pool, 0, thread_id() };
	ck_assert_int_eq(pthread_create(&t, NULL, drop_when_blocked, &d), 0);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, -1), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pier_pool_free(pool);
}
END_TEST

/* --- batching ------------------------------------------------------------ */

/* Eight frames out, taken and freed one after another: the receiver
 * tells the owner in two messages, not eight. */
START_TEST(releases_batched)
{
	pier_pool_frame *f[8];
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	uint64_t sent0, got0;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 8, 0, &pool, &sp, &rp);
	for (uint32_t seq = 0; seq < 8; seq++)
		publish(pool, sp, seq, PAGE);
	sent0 = stat_of(b, PIER_STAT_MSGS_SENT);
	got0 = stat_of(a, PIER_STAT_MSGS_RECEIVED);
	for (uint32_t seq = 0; seq < 8; seq++) {
		f[seq] = receive(rp, seq, PAGE);
		pier_pool_frame_free(f[seq]);
	}
	ck_assert_uint_eq(stat_of(b, PIER_STAT_MSGS_SENT) - sent0, 2);
	/* Every buffer back, from those two messages. */
	for (unsigned int k = 0; k < 8; k++)
		ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	ck_assert_uint_eq(stat_of(a, PIER_STAT_MSGS_RECEIVED) - got0, 2);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

struct receiver {
	pier_remote_pool *rp;
	pid_t tid;
	int r;
	pier_pool_frame *f;
};

static void *receive_one(void *arg)
{
	struct receiver *rc = arg;

	rc->tid = thread_id();
	rc->r = pier_remote_pool_recv(rc->rp, &rc->f, WAIT);
	return NULL;
}

/* A release below the batch waits until the receiver has nothing to do:
 * a receive that finds no frame, or a thread waiting in one. */
START_TEST(releases_go_when_waiting)
{
	struct receiver rc = { 0 };
	pier_pool_frame *f;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	uint64_t sent0;
	pthread_t t;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 8, 0, &pool, &sp, &rp);
	sent0 = stat_of(b, PIER_STAT_MSGS_SENT);

	publish(pool, sp, 0, PAGE);
	pier_pool_frame_free(receive(rp, 0, PAGE));
	ck_assert_uint_eq(stat_of(b, PIER_STAT_MSGS_SENT) - sent0, 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, 0), -EAGAIN);
	ck_assert_uint_eq(stat_of(b, PIER_STAT_MSGS_SENT) - sent0, 1);

	/* Freed while another thread waits for a frame: at once. */
	publish(pool, sp, 1, PAGE);
	f = receive(rp, 1, PAGE);
	rc.rp = rp;
	ck_assert_int_eq(pthread_create(&t, NULL, receive_one, &rc), 0);
	wait_until(rc.tid && thread_waits(rc.tid, false), WAIT);
	pier_pool_frame_free(f);
	ck_assert_uint_eq(stat_of(b, PIER_STAT_MSGS_SENT) - sent0, 2);
	publish(pool, sp, 2, PAGE);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(rc.r, 0);
	ck_assert_uint_eq(pier_pool_frame_seq(rc.f), 2);
	pier_pool_frame_free(rc.f);

	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- a lying owner ------------------------------------------------------- */

#define LIE_NAME "pier-pool-lie"

/* A memfd of size bytes (a pattern in it) with seals added (0: none). */
static int lie_memfd(size_t size, unsigned int seals)
{
	int fd = memfd_create(LIE_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsigned char *p;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	for (size_t i = 0; i < size; i += 64)
		p[i] = pattern(0, i);
	munmap(p, size);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A share request of one fd and count buffers of size bytes each, one
 * after another, pool id 7. */
static size_t share_body(uint8_t *out, uint32_t count, uint64_t size)
{
	struct pool_entry e[16];

	ck_assert_uint_le(count, 16);
	for (uint32_t i = 0; i < count; i++)
		e[i] = (struct pool_entry){ 0, i * size, size };
	return pool_share_encode(out, 7, count, 1, e);
}

/* The next message of sr is an ERROR of code err about about (the kind of
 * message, or 0: the share request), whose text has text in it. */
static void expect_error(pier_sent_request *sr, int err, uint32_t about, const char *text)
{
	struct pool_error e;
	const void *body;
	pier_msg *m;
	size_t len;

	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	ck_assert_int_eq(pier_msg_header(m)->type, PIER_MSG_RESPONDER_UPDATE);
	ck_assert_int_eq(pier_msg_header(m)->service_id, POOL_ERROR);
	body = pier_msg_body(m, &len);
	ck_assert_int_eq(pool_error_parse(body, len, &e), 0);
	ck_assert_msg(e.code == -err && e.about == about, "error %d about %u (%.*s), want %d about %u",
		      e.code, e.about, (int)e.text_len, e.text, -err, about);
	ck_assert_msg(memmem(e.text, e.text_len, text, strlen(text)), "\"%.*s\" lacks \"%s\"",
		      (int)e.text_len, e.text, text);
	pier_msg_free(m);
}

/* The owner's request sr is refused: an ERROR, then an error response. */
static void expect_refused(pier_sent_request *sr, int err, const char *text)
{
	pier_msg *m;

	const char *body;
	size_t len;

	expect_error(sr, err, POOL_ABOUT_SHARE, text);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	ck_assert(pier_msg_is_error(m));
	body = pier_msg_body(m, &len);
	ck_assert_msg(len > 14 && memcmp(body, "pool refused: ", 14) == 0, "error \"%.*s\"",
		      (int)len, body);
	pier_msg_free(m);
}

/* b accepts what a sent (body, fds): refused with err, text in the
 * reason, nothing left mapped. */
static void share_lie(pier_peer *a, pier_peer *b, const void *body, size_t len, const int *fds,
		      size_t nfds, int err, const char *text)
{
	pier_received_request *rr;
	pier_remote_pool *rp = NULL;
	pier_sent_request *sr;
	pier_msg *m;

	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), SVC_POOL, body, len, fds,
						  nfds, &sr), 0);
	rr = recv_request(b, &m);
	ck_assert_int_eq(pier_remote_pool_accept(&rp, rr, m, 0, 200), err);
	ck_assert_ptr_null(rp);
	pier_msg_free(m);
	expect_refused(sr, err, text);
	pier_sent_request_free(sr);
	ck_assert_int_eq(mappings_of(LIE_NAME), 0);
}

START_TEST(owner_lies_about_fds)
{
	uint8_t body[POOL_SHARE_MAX];
	size_t len = share_body(body, 2, PAGE);
	struct statfs sfs;
	pier_peer *a, *b;
	int fd, p[2];
	char tmp[] = "/tmp/pier-pool-test-XXXXXX";

	make_pair(fd_kinds[_i], &a, &b);
	/* Unsealed: the owner could shrink it under the receiver. */
	fd = lie_memfd(2 * PAGE, 0);
	share_lie(a, b, body, len, &fd, 1, -EPERM, "fd 0 of the pool");
	/* ... and shrunk after sending: still refused, and no SIGBUS. */
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	share_lie(a, b, body, len, &fd, 1, -EPERM, "Operation not permitted");
	close(fd);
	/* Sealed, but not against shrinking. */
	fd = lie_memfd(2 * PAGE, F_SEAL_GROW | F_SEAL_SEAL);
	share_lie(a, b, body, len, &fd, 1, -EPERM, "fd 0");
	close(fd);
	/* Sealed, but shorter than the buffers it claims to hold. */
	fd = lie_memfd(2 * PAGE - 1, F_SEAL_SHRINK);
	share_lie(a, b, body, len, &fd, 1, -ERANGE, "bytes 0 to 8192");
	close(fd);
	/* Not a memfd: a pipe, and a file on a disk (or tmpfs, unsealable). */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	share_lie(a, b, body, len, &p[0], 1, -ENODEV, "fd 0");
	close(p[0]);
	close(p[1]);
	fd = mkostemp(tmp, O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	unlink(tmp);
	ck_assert_int_eq(ftruncate(fd, 2 * PAGE), 0);
	ck_assert_int_eq(fstatfs(fd, &sfs), 0);
	share_lie(a, b, body, len, &fd, 1, sfs.f_type == TMPFS_MAGIC ? -EPERM : -ENOTSUP, "fd 0");
	close(fd);
	/* No fd at all. */
	share_lie(a, b, body, len, NULL, 0, -EBADMSG, "0 fds with the request");
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

START_TEST(owner_lies_about_geometry)
{
	uint8_t body[POOL_SHARE_MAX + 64];
	struct pool_entry e[2];
	pier_peer *a, *b;
	size_t len;
	int fd, fds[2];

	make_pair(fd_kinds[_i], &a, &b);
	fd = lie_memfd(2 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	fds[0] = fds[1] = fd;

	len = share_body(body, 1, PAGE);
	body[0] = 2; /* version */
	share_lie(a, b, body, len, &fd, 1, -EPROTONOSUPPORT, "version 2");
	len = share_body(body, 1, PAGE);
	body[16] = 1; /* a flag nobody knows */
	share_lie(a, b, body, len, &fd, 1, -EBADMSG, "flags");
	len = share_body(body, 1, PAGE);
	share_lie(a, b, body, len - 1, &fd, 1, -EBADMSG, "of 47 bytes for 1 buffers");
	share_lie(a, b, body, 10, &fd, 1, -EBADMSG, "shorter than 24");
	len = pool_share_encode(body, 7, 0, 1, e);
	share_lie(a, b, body, len, &fd, 1, -EBADMSG, "no buffers");
	/* More buffers than a pool may have: refused before the table is
	 * looked at. */
	len = share_body(body, 1, PAGE);
	body[8] = (PIER_POOL_MAX_BUFFERS + 1) & 0xff;
	body[9] = (PIER_POOL_MAX_BUFFERS + 1) >> 8;
	share_lie(a, b, body, len, &fd, 1, -E2BIG, "more than 1024");
	/* More fds than buffers, a buffer in an fd the pool has not, an fd
	 * holding no buffer, a buffer of no bytes. */
	e[0] = (struct pool_entry){ 0, 0, PAGE };
	len = pool_share_encode(body, 7, 1, 2, e);
	share_lie(a, b, body, len, fds, 2, -EBADMSG, "2 fds for 1 buffers");
	e[1] = (struct pool_entry){ 2, 0, PAGE };
	len = pool_share_encode(body, 7, 2, 2, e);
	share_lie(a, b, body, len, fds, 2, -EBADMSG, "buffer 1 names fd 2");
	e[1] = (struct pool_entry){ 0, PAGE, PAGE };
	len = pool_share_encode(body, 7, 2, 2, e);
	share_lie(a, b, body, len, fds, 2, -EBADMSG, "fd 1 holds no buffer");
	e[1] = (struct pool_entry){ 0, PAGE, 0 };
	len = pool_share_encode(body, 7, 2, 1, e);
	share_lie(a, b, body, len, fds, 1, -EBADMSG, "buffer 1 has no bytes");
	/* Sizes that overflow, or add up beyond what a pool may map. */
	e[1] = (struct pool_entry){ 0, UINT64_MAX - 10, PAGE };
	len = pool_share_encode(body, 7, 2, 1, e);
	share_lie(a, b, body, len, &fd, 1, -EOVERFLOW, "buffer 1: offset + size overflows");
	e[1] = (struct pool_entry){ 0, PAGE, PIER_POOL_MAX_BYTES };
	len = pool_share_encode(body, 7, 2, 1, e);
	share_lie(a, b, body, len, &fd, 1, -E2BIG, "larger than");
	/* Two small buffers far apart in one fd: a huge mapping. */
	e[1] = (struct pool_entry){ 0, PIER_POOL_MAX_BYTES, PAGE };
	len = pool_share_encode(body, 7, 2, 1, e);
	share_lie(a, b, body, len, &fd, 1, -E2BIG, "spans more than");
	close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A pool of three fds, whose last two come in an update. */
START_TEST(owner_lies_in_more_fds)
{
	uint8_t body[POOL_SHARE_MAX], more[POOL_FDS_SIZE];
	struct pool_entry e[3] = { { 0, 0, PAGE }, { 1, 0, PAGE }, { 2, 0, PAGE } };
	size_t len = pool_share_encode(body, 7, 3, 3, e);
	pier_received_request *rr;
	pier_remote_pool *rp = NULL;
	pier_sent_request *sr;
	pier_peer *a, *b;
	pier_msg *m;
	int fds[3], bad;

	make_pair(fd_kinds[_i], &a, &b);
	for (int i = 0; i < 3; i++)
		fds[i] = lie_memfd(PAGE, F_SEAL_SHRINK);
	bad = lie_memfd(PAGE, 0);

	/* The rest never comes. */
	share_lie(a, b, body, len, fds, 1, -ETIMEDOUT, "fds 1 to 2 of the pool did not come");

	/* The rest comes wrong: from the wrong place, for another pool,
	 * unsealed, or not as fds at all. */
	for (int lie = 0; lie < 4; lie++) {
		static const int errs[] = { -EBADMSG, -ENOENT, -EPERM, -EBADMSG };
		static const char *const texts[] = { "2 fds from fd 2, where fd 1 of 3 is next",
						     "fds for unknown pool 8", "fd 2 of the pool",
						     "a message of kind 2 before fd 1" };
		int extra[2] = { fds[1], lie == 2 ? bad : fds[2] };

		ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), SVC_POOL, body,
							  len, fds, 1, &sr), 0);
		pool_fds_encode(more, lie == 1 ? 8 : 7, lie == 0 ? 2 : 1);
		ck_assert_int_eq(pier_sent_request_send_update(sr, lie == 3 ? POOL_FRAME : POOL_FDS,
							       more, sizeof(more), extra, 2), 0);
		rr = recv_request(b, &m);
		ck_assert_int_eq(pier_remote_pool_accept(&rp, rr, m, 0, WAIT), errs[lie]);
		pier_msg_free(m);
		expect_refused(sr, errs[lie], texts[lie]);
		pier_sent_request_free(sr);
		ck_assert_int_eq(mappings_of(LIE_NAME), 0);
	}

	/* Right, in two updates of one fd each. */
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), SVC_POOL, body, len, fds,
						  1, &sr), 0);
	for (uint32_t i = 1; i < 3; i++) {
		pool_fds_encode(more, 7, i);
		ck_assert_int_eq(pier_sent_request_send_update(sr, POOL_FDS, more, sizeof(more),
							       &fds[i], 1), 0);
	}
	rr = recv_request(b, &m);
	ck_assert_int_eq(pier_remote_pool_accept(&rp, rr, m, 0, WAIT), 0);
	pier_msg_free(m);
	ck_assert_int_eq(mappings_of(LIE_NAME), 3);
	pier_remote_pool_free(rp);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	ck_assert(!pier_msg_is_error(m));
	pier_msg_free(m);
	pier_sent_request_free(sr);
	ck_assert_int_eq(mappings_of(LIE_NAME), 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	close(bad);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A frame the raw owner sr sends: refused by rp with err, and sr told. */
static void frame_lie(pier_sent_request *sr, pier_remote_pool *rp, int32_t kind,
		      const void *body, size_t len, const int *fds, size_t nfds, int err,
		      uint32_t about, const char *text)
{
	pier_pool_frame *f = NULL;

	ck_assert_int_eq(pier_sent_request_send_update(sr, kind, body, len, fds, nfds), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), err);
	ck_assert_ptr_null(f);
	expect_error(sr, err, about, text);
}

START_TEST(owner_lies_about_frames)
{
	uint8_t share[POOL_SHARE_MAX], body[POOL_FRAME_MAX + 16] = { 0 };
	size_t len = share_body(share, 4, 2 * PAGE);
	struct pool_frame fr = { 7, 0, 100, 0, 0, PAGE, NULL };
	pier_received_request *rr;
	pier_remote_pool *rp = NULL;
	pier_pool_frame *f, *held;
	pier_sent_request *sr;
	pier_peer *a, *b;
	pier_msg *m;
	int fd;

	make_pair(fd_kinds[_i], &a, &b);
	fd = lie_memfd(8 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(a), SVC_POOL, share, len, &fd,
						  1, &sr), 0);
	rr = recv_request(b, &m);
	ck_assert_int_eq(pier_remote_pool_accept(&rp, rr, m, 0, WAIT), 0);
	pier_msg_free(m);

	/* A buffer the pool has not. */
	fr.buffer = 4;
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -ERANGE, POOL_FRAME,
		  "frame in buffer 4 of a pool of 4");
	/* Bytes beyond its buffer (but within the file: the next buffer's). */
	fr = (struct pool_frame){ 7, 1, 101, 0, PAGE, PAGE + 1, NULL };
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -ERANGE, POOL_FRAME,
		  "bytes 4096 to 8193 of buffer 1 of 8192 bytes");
	/* An offset and length whose sum wraps. */
	fr = (struct pool_frame){ 7, 1, 102, 0, UINT64_MAX - 5, 10, NULL };
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -EOVERFLOW, POOL_FRAME, "overflows");
	/* No bytes. */
	fr = (struct pool_frame){ 7, 1, 103, 0, 0, 0, NULL };
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -EBADMSG, POOL_FRAME, "no bytes");
	/* Metadata too long, or not as long as it says. */
	fr = (struct pool_frame){ 7, 1, 104, 0, 0, 1, NULL };
	len = pool_frame_encode(body, &fr);
	body[12] = (PIER_POOL_MAX_META + 1) & 0xff;
	body[13] = (PIER_POOL_MAX_META + 1) >> 8;
	frame_lie(sr, rp, POOL_FRAME, body, POOL_FRAME_HEAD + PIER_POOL_MAX_META + 1, NULL, 0,
		  -EMSGSIZE, POOL_FRAME, "more than 1024");
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len + 3, NULL, 0, -EBADMSG, POOL_FRAME,
		  "a frame of 35 bytes with 0 bytes of metadata");
	frame_lie(sr, rp, POOL_FRAME, body, 20, NULL, 0, -EBADMSG, POOL_FRAME, "shorter than 32");
	/* Another pool's. */
	fr = (struct pool_frame){ 9, 1, 105, 0, 0, 1, NULL };
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -ENOENT, POOL_FRAME, "unknown pool 9");
	/* With an fd (closed with the message: the fixture sees no leak). */
	fr = (struct pool_frame){ 7, 1, 106, 0, 0, 1, NULL };
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, &fd, 1, -EBADMSG, POOL_FRAME,
		  "fds with a message of kind 2");
	/* Kinds that have no business here. */
	frame_lie(sr, rp, 77, body, len, NULL, 0, -EBADMSG, 77, "unknown message kind 77");
	frame_lie(sr, rp, POOL_FDS, body, POOL_FDS_SIZE, &fd, 1, -EBADMSG, POOL_FDS,
		  "after the pool was complete");
	frame_lie(sr, rp, POOL_FDS, body, POOL_FDS_SIZE, NULL, 0, -EBADMSG, POOL_FDS,
		  "after the pool was complete");
	frame_lie(sr, rp, POOL_CLOSE, "\x09\0\0\0", 4, NULL, 0, -ENOENT, POOL_CLOSE,
		  "close of unknown pool 9");

	/* After all that, a true frame. */
	fr = (struct pool_frame){ 7, 2, 107, 0, 64, 128, NULL };
	len = pool_frame_encode(body, &fr);
	ck_assert_int_eq(pier_sent_request_send_update(sr, POOL_FRAME, body, len, NULL, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &held, WAIT), 0);
	ck_assert_uint_eq(pier_pool_frame_seq(held), 107);
	ck_assert_uint_eq(((const unsigned char *)pier_pool_frame_data(held, NULL))[0],
			  pattern(0, 4 * PAGE + 64));
	/* The same buffer again, while the receiver still reads it. */
	fr.seq = 108;
	len = pool_frame_encode(body, &fr);
	frame_lie(sr, rp, POOL_FRAME, body, len, NULL, 0, -EBUSY, POOL_FRAME,
		  "buffer 2 is still this side's");
	/* An error from the owner is no frame. */
	len = pool_error_encode(body, 7, EPERM, POOL_RELEASE, 0, 0, "no");
	ck_assert_int_eq(pier_sent_request_send_update(sr, POOL_ERROR, body, len, NULL, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), -EPROTO);

	/* The owner closes: answered, and nothing more comes. */
	ck_assert_int_eq(pier_sent_request_send_update(sr, POOL_CLOSE, "\x07\0\0\0", 4, NULL, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), -PIER_EDONE);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	ck_assert(!pier_msg_is_error(m));
	pier_msg_free(m);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, 0), -PIER_EDONE);
	pier_pool_frame_free(held);
	pier_remote_pool_free(rp);
	ck_assert_int_eq(mappings_of(LIE_NAME), 0);
	pier_sent_request_free(sr);
	close(fd);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A peer may share only so many pools at once. */
START_TEST(pools_per_peer)
{
	pier_remote_pool *rp[PIER_POOL_MAX_PER_PEER + 1];
	pier_shared_pool *sp[PIER_POOL_MAX_PER_PEER + 1];
	pier_received_request *rr;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_msg *m;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 1, 0), 0);
	for (unsigned int i = 0; i <= PIER_POOL_MAX_PER_PEER; i++)
		ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp[i]), 0);
	for (unsigned int i = 0; i < PIER_POOL_MAX_PER_PEER; i++)
		rp[i] = accept_pool(b, 0);
	rr = recv_request(b, &m);
	ck_assert_int_eq(pier_remote_pool_accept(&rp[PIER_POOL_MAX_PER_PEER], rr, m, 0, WAIT),
			 -EMFILE);
	pier_msg_free(m);
	/* The owner hears why once it reads: a frame sent before that comes
	 * back with the refusal, and the next publish fails with it. */
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert_int_eq(pier_pool_publish(sp[PIER_POOL_MAX_PER_PEER], 0, 0, 1, NULL, 0, 0), 0);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	ck_assert_int_eq(pier_pool_publish(sp[PIER_POOL_MAX_PER_PEER], 0, 0, 1, NULL, 0, 0),
			 -EMFILE);
	ck_assert_int_eq(pier_pool_drop(pool, 0), 0);
	/* One freed, one more may come. */
	pier_remote_pool_free(rp[0]);
	pier_shared_pool_free(sp[0]);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp[0]), 0);
	rp[0] = accept_pool(b, 0);
	for (unsigned int i = 0; i <= PIER_POOL_MAX_PER_PEER; i++) {
		if (i < PIER_POOL_MAX_PER_PEER)
			pier_remote_pool_free(rp[i]);
		pier_shared_pool_free(sp[i]);
	}
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- a lying receiver ---------------------------------------------------- */

/* Whether the owner, looking for a buffer (there is none), read what the
 * raw receiver sent, and m is its answer. */
static bool owner_answered(pier_pool *pool, pier_received_request *rr, pier_msg **m)
{
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	return pier_received_request_recv_update(rr, m, 0) == 0;
}

/* The raw receiver rr sends a RELEASE-kind update (body), which the owner
 * reads while it looks for a buffer; it answers with err. */
static void release_lie(pier_pool *pool, pier_received_request *rr, int32_t kind,
			const void *body, size_t len, const int *fds, size_t nfds, int err,
			const char *text)
{
	struct pool_error e;
	const void *eb;
	pier_msg *m;
	size_t elen;

	ck_assert_int_eq(pier_received_request_send_update(rr, kind, body, len, fds, nfds), 0);
	wait_until(owner_answered(pool, rr, &m), WAIT);
	ck_assert_int_eq(pier_msg_header(m)->service_id, POOL_ERROR);
	eb = pier_msg_body(m, &elen);
	ck_assert_int_eq(pool_error_parse(eb, elen, &e), 0);
	ck_assert_msg(e.code == -err, "error %d (%.*s), want %d", e.code, (int)e.text_len, e.text,
		      -err);
	ck_assert_msg(memmem(e.text, e.text_len, text, strlen(text)), "\"%.*s\" lacks \"%s\"",
		      (int)e.text_len, e.text, text);
	pier_msg_free(m);
}

/* The pool id of a share request. */
static uint32_t share_id(const pier_msg *m)
{
	char why[POOL_WHY_SIZE];
	struct pool_share s;
	size_t len;
	const void *body = pier_msg_body(m, &len);

	ck_assert_int_eq(pool_share_parse(body, len, &s, why), 0);
	return s.pool_id;
}

static size_t release_body(uint8_t *out, uint32_t pool_id, uint32_t n, const uint32_t *bufs,
			   const uint32_t *seqs)
{
	return pool_release_encode(out, pool_id, n, bufs, seqs);
}

START_TEST(receiver_lies)
{
	uint8_t body[POOL_RELEASE_MAX];
	pier_received_request *rr;
	pier_shared_pool *sp;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_msg *m;
	uint32_t id, bufs[2], seqs[2];
	struct pool_frame fr;
	uint64_t got;
	size_t len;
	int fd;

	make_pair(fd_kinds[_i], &a, &b);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 2, 0), 0);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp), 0);
	rr = recv_request(b, &m);
	id = share_id(m);
	pier_msg_free(m);
	publish(pool, sp, 0, 10);
	publish(pool, sp, 1, 10);
	for (int k = 0; k < 2; k++) {
		char why[POOL_WHY_SIZE];
		const void *fb;

		ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
		fb = pier_msg_body(m, &len);
		ck_assert_int_eq(pool_frame_parse(fb, len, &fr, why), 0);
		ck_assert_uint_eq(fr.seq, (uint32_t)k);
		pier_msg_free(m);
	}

	bufs[0] = 2, seqs[0] = 0;
	len = release_body(body, id, 1, bufs, seqs);
	release_lie(pool, rr, POOL_RELEASE, body, len, NULL, 0, -ERANGE,
		    "release of buffer 2 of a pool of 2");
	bufs[0] = 0, seqs[0] = 5;
	len = release_body(body, id, 1, bufs, seqs);
	release_lie(pool, rr, POOL_RELEASE, body, len, NULL, 0, -EPERM,
		    "buffer 0 (frame 5) is not held by this peer");
	bufs[0] = 0, seqs[0] = 0;
	len = release_body(body, id + 1, 1, bufs, seqs);
	release_lie(pool, rr, POOL_RELEASE, body, len, NULL, 0, -ENOENT, "unknown pool");
	len = release_body(body, id, 1, bufs, seqs);
	release_lie(pool, rr, POOL_RELEASE, body, len - 1, NULL, 0, -EBADMSG,
		    "a release of 15 bytes for 1 buffers");
	release_lie(pool, rr, POOL_RELEASE, body, 4, NULL, 0, -EBADMSG, "shorter than 8");
	fd = lie_memfd(PAGE, 0);
	release_lie(pool, rr, POOL_RELEASE, body, len, &fd, 1, -EBADMSG, "sends no fds");
	close(fd);
	release_lie(pool, rr, 99, body, len, NULL, 0, -EBADMSG, "unknown message kind 99");

	/* The truth, then the same again. */
	ck_assert_int_eq(pier_received_request_send_update(rr, POOL_RELEASE, body, len, NULL, 0), 0);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	release_lie(pool, rr, POOL_RELEASE, body, len, NULL, 0, -EALREADY,
		    "buffer 0 (frame 0) was released already");
	/* A true release and a false one in one message: the true one
	 * counts. */
	bufs[0] = 3, seqs[0] = 0;
	bufs[1] = 1, seqs[1] = 1;
	len = release_body(body, id, 2, bufs, seqs);
	ck_assert_int_eq(pier_received_request_send_update(rr, POOL_RELEASE, body, len, NULL, 0), 0);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, WAIT), 1);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	ck_assert_int_eq(pier_msg_header(m)->service_id, POOL_ERROR);
	pier_msg_free(m);
	/* An error from the receiver is never answered: the owner reads it
	 * (while buffer 0 is out again), and what comes next is the close. */
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 10, NULL, 0, 0), 0);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	ck_assert_int_eq(pier_msg_header(m)->service_id, POOL_FRAME);
	pier_msg_free(m);
	got = stat_of(a, PIER_STAT_MSGS_RECEIVED);
	len = pool_error_encode(body, id, ERANGE, POOL_RELEASE, 0, 0, "x");
	ck_assert_int_eq(pier_received_request_send_update(rr, POOL_ERROR, body, len, NULL, 0), 0);
	wait_until(pier_pool_acquire(pool, NULL, NULL, 0) == -EAGAIN &&
			   stat_of(a, PIER_STAT_MSGS_RECEIVED) == got + 1,
		   WAIT);
	ck_assert_int_eq(pier_pool_drop(pool, 1), 0);
	pier_shared_pool_free(sp);
	ck_assert_int_eq(pier_received_request_recv_update(rr, &m, WAIT), 0);
	ck_assert_int_eq(pier_msg_header(m)->service_id, POOL_CLOSE);
	pier_msg_free(m);
	pier_received_request_free(rr);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* The receiver's send queue is full when it releases (its sends do not
 * wait): the releases wait for room, and go with the next flush. */
START_TEST(release_waits_for_room)
{
	pier_pool_frame *f[4];
	pier_config *cfg;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	pier_received_request *req;
	pier_msg *m;
	char filler[1024] = { 0 };
	int r;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_send_timeout(cfg, 0), 0);
	ck_assert_int_eq(pier_config_set_max_queued(cfg, 1 << 20, 4096), 0);
	/* Nothing held back to be written after the queue was seen full. */
	ck_assert_int_eq(pier_config_set_coalescing(cfg, 0), 0);
	make_pair_cfg(fd_kinds[_i], NULL, cfg, &a, &b);
	pier_config_free(cfg);
	shared(a, b, PAGE, 4, 0, &pool, &sp, &rp);
	for (uint32_t seq = 0; seq < 4; seq++) {
		publish(pool, sp, seq, PAGE);
		f[seq] = receive(rp, seq, PAGE);
	}
	pier_pool_frame_free(f[0]); /* one of four: batched */
	/* The owner reads nothing meanwhile: the socket and the queue fill. */
	for (size_t n = sizeof(filler); n; n /= 2)
		while (pier_writer_send_stream(pier_peer_get_writer(b), 9, filler, n, NULL, 0) == 0)
			;
	ck_assert_int_eq(pier_remote_pool_flush(rp), -EAGAIN);
	/* The owner reads what came, and the release goes once there is
	 * room. */
	do {
		while ((r = pier_peer_recv(a, &m, &req, 0)) == 0)
			pier_msg_free(m);
		ck_assert_int_eq(r, -EAGAIN);
		r = pier_remote_pool_flush(rp);
		ck_assert_msg(r == 0 || r == -EAGAIN, "flush: %s", pier_strerror(r));
	} while (r == -EAGAIN);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, WAIT),
			 (int)pier_pool_frame_index(f[0]));
	for (int k = 1; k < 4; k++)
		pier_pool_frame_free(f[k]);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- peers that go away -------------------------------------------------- */

/* The receiver's connection ends with every buffer out: all come back. */
START_TEST(receiver_gone_returns_buffers)
{
	pier_pool_frame *f[3];
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	int r;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 3, 0, &pool, &sp, &rp);
	for (uint32_t seq = 0; seq < 3; seq++) {
		publish(pool, sp, seq, PAGE);
		f[seq] = receive(rp, seq, PAGE);
	}
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	pier_writer_abort(pier_peer_get_writer(b));
	for (int k = 0; k < 3; k++)
		ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	r = pier_pool_publish(sp, 0, 0, 1, NULL, 0, 0);
	ck_assert_msg(r == -PIER_ECLOSED || r == -EPIPE || r == -ECONNRESET, "publish: %s",
		      pier_strerror(r));
	/* The receiver's frames stay readable until it frees them. */
	for (uint32_t seq = 0; seq < 3; seq++) {
		ck_assert_uint_eq(((const unsigned char *)pier_pool_frame_data(f[seq], NULL))[7],
				  pattern(seq, 7));
		pier_pool_frame_free(f[seq]);
	}
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* The same with a receiver process killed while it holds the buffers. */
START_TEST(receiver_killed_returns_buffers)
{
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	int sv[2], ready[2], status;
	char c;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		pier_remote_pool *rp;
		pier_pool_frame *f;

		close(sv[0]);
		if (pier_peer_adopt(&b, sv[1], NULL) < 0)
			_exit(1);
		rp = accept_pool(b, 0);
		for (int k = 0; k < 4; k++)
			if (pier_remote_pool_recv(rp, &f, WAIT) < 0)
				_exit(2);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		pause();
		_exit(0);
	}
	close(sv[1]);
	close(ready[1]);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], NULL), 0);
	ck_assert_int_eq(pier_pool_new(&pool, 64 * PAGE, 4, 0), 0);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp), 0);
	for (uint32_t seq = 0; seq < 4; seq++)
		publish(pool, sp, seq, PAGE);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	for (int k = 0; k < 4; k++)
		ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
}
END_TEST

/* The owner goes away (closes the pool, or its connection ends) while the
 * receiver holds frames: they stay readable, and releasing them is
 * harmless. */
START_TEST(release_after_owner_gone)
{
	pier_pool_frame *f[2], *g;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	bool abort_conn = _i == 1;
	int r;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	shared(a, b, 16 * PAGE, 2, 0, &pool, &sp, &rp);
	for (uint32_t seq = 0; seq < 2; seq++) {
		publish(pool, sp, seq, 16 * PAGE);
		f[seq] = receive(rp, seq, 16 * PAGE);
	}
	if (abort_conn)
		pier_writer_abort(pier_peer_get_writer(a));
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	/* Only the receiver's mapping is left, and it reads whole. */
	ck_assert_int_eq(pool_mappings(), 1);
	r = pier_remote_pool_recv(rp, &g, WAIT);
	ck_assert_msg(r == (abort_conn ? -PIER_ECLOSED : -PIER_EDONE), "recv: %s",
		      pier_strerror(r));
	for (uint32_t seq = 0; seq < 2; seq++) {
		const unsigned char *d = pier_pool_frame_data(f[seq], NULL);

		for (size_t k = 0; k < 16 * PAGE; k += PAGE)
			ck_assert_uint_eq(d[k], pattern(seq, k));
	}
	pier_pool_frame_free(f[0]);
	r = pier_remote_pool_flush(rp);
	ck_assert_msg(r == 0 || r == -PIER_ECLOSED || r == -EPIPE, "flush: %s", pier_strerror(r));
	/* The handle first, the last frame after: the mapping goes with it. */
	pier_remote_pool_free(rp);
	ck_assert_int_eq(pool_mappings(), 1);
	pier_pool_frame_free(f[1]);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(b);
}
END_TEST

/* The owner frees its share while the receiver reads a frame: the buffers
 * are the pool's again, the receiver learns the pool closed. */
START_TEST(share_freed_while_held)
{
	pier_pool_frame *f, *g;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 2, 0, &pool, &sp, &rp);
	publish(pool, sp, 0, PAGE);
	f = receive(rp, 0, PAGE);
	pier_shared_pool_free(sp);
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &g, WAIT), -PIER_EDONE);
	ck_assert_uint_eq(((const unsigned char *)pier_pool_frame_data(f, NULL))[3], pattern(0, 3));
	pier_pool_frame_free(f);
	pier_remote_pool_free(rp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- fds: many per pool, brought by the application, or none at all ------- */

/* A memfd per buffer, more than one message takes: they go in updates. */
START_TEST(fds_split_across_messages)
{
	static const unsigned int max_fds[] = { 0, 3 }; /* 0: the default (32) */
	pier_config *cfg;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	uint64_t sent0;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	if (max_fds[_i])
		ck_assert_int_eq(pier_config_set_max_fds(cfg, max_fds[_i]), 0);
	make_pair_cfg(PAIR_SEQPACKET_FD, cfg, cfg, &a, &b);
	pier_config_free(cfg);
	sent0 = stat_of(a, PIER_STAT_MSGS_SENT);
	shared(a, b, 3 * PAGE, 40, PIER_POOL_FD_PER_BUFFER, &pool, &sp, &rp);
	/* The request and the updates it took. */
	ck_assert_uint_eq(stat_of(a, PIER_STAT_MSGS_SENT) - sent0, max_fds[_i] ? 14 : 2);
	ck_assert_int_eq(pool_mappings(), 80);
	for (uint32_t seq = 0; seq < 40; seq++) {
		publish(pool, sp, seq, 3 * PAGE - seq);
		pier_pool_frame_free(receive(rp, seq, 3 * PAGE - seq));
	}
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Buffers the application brings (memfds here; dmabufs alike). */
START_TEST(brought_fds)
{
	size_t sizes[2] = { PAGE, 3 * PAGE };
	int fds[2], p[2];
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	pier_pool_frame *f;
	unsigned char *mine;
	void *data = &data;
	size_t size;
	int i;

	fds[0] = lie_memfd(PAGE, F_SEAL_SHRINK);
	fds[1] = lie_memfd(3 * PAGE, 0);
	/* Checked as the receiver will: unsealed, refused here. */
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, fds, sizes, 2, 0), -EPERM);
	close(fds[1]);
	fds[1] = lie_memfd(3 * PAGE - 1, F_SEAL_SHRINK);
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, fds, sizes, 2, 0), -ERANGE);
	close(fds[1]);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, p, sizes, 1, 0), -ENODEV);
	close(p[0]);
	close(p[1]);
	fds[1] = lie_memfd(3 * PAGE, F_SEAL_SHRINK | F_SEAL_GROW);
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, fds, sizes, 2, 0), 0);
	/* The pool keeps copies: the application may close its own. */
	mine = mmap(NULL, 3 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1], 0);
	ck_assert_ptr_ne(mine, MAP_FAILED);
	close(fds[0]);
	close(fds[1]);

	make_pair(PAIR_SEQPACKET, &a, &b);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp), 0);
	rp = accept_pool(b, 0);
	ck_assert_int_eq(mappings_of(LIE_NAME), 3); /* the receiver's two, and mine */
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	i = pier_pool_acquire(pool, &data, &size, 0);
	ck_assert_int_eq(i, 1);
	ck_assert_ptr_null(data); /* pier maps none of them */
	ck_assert_uint_eq(size, 3 * PAGE);
	mine[2 * PAGE] = 99;
	ck_assert_int_eq(pier_pool_publish(sp, 1, 2 * PAGE, PAGE, NULL, 0, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), 0);
	ck_assert_uint_eq(((const unsigned char *)pier_pool_frame_data(f, NULL))[0], 99);
	pier_pool_frame_free(f);
	munmap(mine, 3 * PAGE);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	ck_assert_int_eq(mappings_of(LIE_NAME), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Transports that carry no fds cannot share a pool. */
START_TEST(no_fds_no_pool)
{
	static const enum pair_kind kinds[] = { PAIR_TCP, PAIR_UNIX, PAIR_UNIX_FD };
	pier_shared_pool *sp = NULL;
	pier_peer *a, *b;
	pier_pool *pool;

	make_pair(kinds[_i], &a, &b);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 2, 0), 0);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a), SVC_POOL, &sp),
			 -PIER_ENOFDS);
	ck_assert_ptr_null(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- one pool, two peers ------------------------------------------------- */

struct acquirer {
	pier_pool *pool;
	pid_t tid;
	int r;
};

static void *acquire_one(void *arg)
{
	struct acquirer *ac = arg;

	ac->tid = thread_id();
	ac->r = pier_pool_acquire(ac->pool, NULL, NULL, WAIT);
	return NULL;
}

/* A frame published to two peers comes back once both let go; an acquire
 * waits on both. */
START_TEST(two_peers_one_buffer)
{
	struct acquirer ac = { 0 };
	pier_peer *a1, *b1, *a2, *b2;
	pier_pool_frame *f1, *f2;
	pier_shared_pool *sp1, *sp2;
	pier_remote_pool *rp1, *rp2;
	pier_pool *pool;
	pthread_t t;
	uint32_t seq = 5;
	int i;

	make_pair(PAIR_SEQPACKET_FD, &a1, &b1);
	make_pair(PAIR_SEQPACKET, &a2, &b2);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 1, 0), 0);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a1), SVC_POOL, &sp1), 0);
	ck_assert_int_eq(pier_pool_share(pool, pier_peer_get_writer(a2), SVC_POOL, &sp2), 0);
	rp1 = accept_pool(b1, 0);
	rp2 = accept_pool(b2, 0);
	for (int round = 0; round < 2; round++) {
		unsigned char *d;

		i = pier_pool_acquire(pool, (void **)&d, NULL, WAIT);
		ck_assert_int_eq(i, 0);
		for (size_t k = 0; k < 16; k++)
			d[k] = pattern(seq, k);
		ck_assert_int_eq(pier_pool_publish(sp1, 0, 0, 16, &seq, 4, PIER_POOL_KEEP), 0);
		ck_assert_int_eq(pier_pool_publish(sp1, 0, 0, 16, &seq, 4, PIER_POOL_KEEP), -EBUSY);
		ck_assert_int_eq(pier_pool_publish(sp2, 0, 0, 16, &seq, 4, 0), 0);
		/* Neither the application's nor free. */
		ck_assert_int_eq(pier_pool_drop(pool, 0), -EPERM);
		f1 = receive(rp1, seq, 16);
		f2 = receive(rp2, seq, 16);
		if (round == 0) {
			uint64_t got = stat_of(a1, PIER_STAT_MSGS_RECEIVED);

			pier_pool_frame_free(f1);
			ck_assert_int_eq(pier_remote_pool_flush(rp1), 0);
			/* Read, and still not free. */
			wait_until(pier_pool_acquire(pool, NULL, NULL, 0) == -EAGAIN &&
					   stat_of(a1, PIER_STAT_MSGS_RECEIVED) == got + 1,
				   WAIT);
			pier_pool_frame_free(f2);
			ck_assert_int_eq(pier_remote_pool_flush(rp2), 0);
			ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
			ck_assert_int_eq(pier_pool_drop(pool, 0), 0);
		} else {
			/* A thread waits on both peers' releases at once. */
			ac.pool = pool;
			ck_assert_int_eq(pthread_create(&t, NULL, acquire_one, &ac), 0);
			wait_until(ac.tid && thread_waits(ac.tid, false), WAIT);
			pier_pool_frame_free(f2);
			ck_assert_int_eq(pier_remote_pool_flush(rp2), 0);
			pier_pool_frame_free(f1);
			ck_assert_int_eq(pier_remote_pool_flush(rp1), 0);
			ck_assert_int_eq(pthread_join(t, NULL), 0);
			ck_assert_int_eq(ac.r, 0);
			ck_assert_int_eq(pier_pool_drop(pool, 0), 0);
		}
		seq++;
	}
	pier_remote_pool_free(rp1);
	pier_remote_pool_free(rp2);
	pier_shared_pool_free(sp1);
	pier_shared_pool_free(sp2);
	pier_pool_free(pool);
	ck_assert_int_eq(pool_mappings(), 0);
	pier_peer_free(a1);
	pier_peer_free(b1);
	pier_peer_free(a2);
	pier_peer_free(b2);
}
END_TEST

/* --- event loops of the application's own ------------------------------- */

static bool readable(int fd, int timeout_ms)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	int n = poll(&pfd, 1, timeout_ms);

	ck_assert_int_ge(n, 0);
	return n == 1;
}

/* Both sides driven by poll(): the fds say when a call would not block. */
START_TEST(pollable_fds)
{
	pier_pool_frame *f[2], *g;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	int pfd, rfd;

	make_pair(fd_kinds[_i], &a, &b);
	shared(a, b, PAGE, 2, 0, &pool, &sp, &rp);
	pfd = pier_pool_fd(pool);
	rfd = pier_remote_pool_fd(rp);
	ck_assert_int_ge(pfd, 0);
	ck_assert_int_ge(rfd, 0);
	ck_assert_int_eq(pier_pool_fd(pool), pfd);
	ck_assert(readable(pfd, 0)); /* buffers free */
	ck_assert(!readable(rfd, 0));
	publish(pool, sp, 0, PAGE);
	publish(pool, sp, 1, PAGE);
	ck_assert(!readable(pfd, 0));
	for (uint32_t seq = 0; seq < 2; seq++) {
		ck_assert(readable(rfd, WAIT));
		ck_assert_int_eq(pier_remote_pool_recv(rp, &f[seq], 0), 0);
	}
	ck_assert(!readable(rfd, 0));
	ck_assert_int_eq(pier_remote_pool_recv(rp, &g, 0), -EAGAIN);
	/* A release, once the receiver found nothing more. */
	pier_pool_frame_free(f[0]);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &g, 0), -EAGAIN);
	ck_assert(readable(pfd, WAIT));
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert(!readable(pfd, 0));
	pier_pool_frame_free(f[1]);
	ck_assert_int_eq(pier_remote_pool_flush(rp), 0);
	ck_assert(readable(pfd, WAIT));
	ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert(!readable(pfd, 0));
	/* The receiver lets go while the application holds every buffer:
	 * the answer makes the fd readable until a try reads it. */
	pier_remote_pool_free(rp);
	ck_assert(readable(pfd, WAIT));
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), -EAGAIN);
	ck_assert(!readable(pfd, 0));
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 1, NULL, 0, 0), -PIER_EDONE);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- threads ------------------------------------------------------------- */

#define THREAD_FRAMES 300

struct producer {
	pier_pool *pool;
	pier_shared_pool *sp;
	uint32_t first;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (uint32_t seq = p->first; seq < p->first + THREAD_FRAMES; seq++)
		publish(p->pool, p->sp, seq, 100);
	return NULL;
}

struct consumer {
	pier_remote_pool *rp;
	unsigned int got;
};

static void *consume_and_free(void *arg)
{
	pier_pool_frame *f = arg;

	pier_pool_frame_free(f);
	return NULL;
}

static void *consume(void *arg)
{
	struct consumer *c = arg;
	pier_pool_frame *f;

	while (c->got < 2 * THREAD_FRAMES) {
		const uint32_t *seq;
		pthread_t t;

		ck_assert_int_eq(pier_remote_pool_recv(c->rp, &f, WAIT), 0);
		seq = pier_pool_frame_meta(f, NULL);
		ck_assert_uint_eq(((const unsigned char *)pier_pool_frame_data(f, NULL))[99],
				  pattern(*seq, 99));
		/* Every other frame freed by another thread. */
		if (c->got++ % 2) {
			ck_assert_int_eq(pthread_create(&t, NULL, consume_and_free, f), 0);
			ck_assert_int_eq(pthread_join(t, NULL), 0);
		} else {
			pier_pool_frame_free(f);
		}
	}
	return NULL;
}

START_TEST(threads_share_a_pool)
{
	struct producer p1, p2;
	struct consumer c;
	pthread_t t1, t2, tc;
	pier_peer *a, *b;
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	shared(a, b, PAGE, 3, 0, &pool, &sp, &rp);
	p1 = (struct producer){ pool, sp, 0 };
	p2 = (struct producer){ pool, sp, 1000 };
	c = (struct consumer){ rp, 0 };
	ck_assert_int_eq(pthread_create(&tc, NULL, consume, &c), 0);
	ck_assert_int_eq(pthread_create(&t1, NULL, produce, &p1), 0);
	ck_assert_int_eq(pthread_create(&t2, NULL, produce, &p2), 0);
	ck_assert_int_eq(pthread_join(t1, NULL), 0);
	ck_assert_int_eq(pthread_join(t2, NULL), 0);
	ck_assert_int_eq(pthread_join(tc, NULL), 0);
	ck_assert_uint_eq(c.got, 2 * THREAD_FRAMES);
	/* None lost: every buffer comes back. */
	ck_assert_int_eq(pier_remote_pool_flush(rp), 0);
	for (int k = 0; k < 3; k++)
		ck_assert_int_ge(pier_pool_acquire(pool, NULL, NULL, WAIT), 0);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- calls made wrong ---------------------------------------------------- */

START_TEST(bad_arguments)
{
	pier_pool *pool;
	pier_shared_pool *sp;
	pier_remote_pool *rp;
	pier_pool_frame *f;
	pier_peer *a, *b;
	size_t sizes[1] = { PAGE }, len = 7;
	char meta[PIER_POOL_MAX_META + 1] = { 0 };
	int fd = -1;

	ck_assert_int_eq(pier_pool_new(NULL, PAGE, 1, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_new(&pool, 0, 1, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 0, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, 1, 1u << 9), -EINVAL);
	ck_assert_int_eq(pier_pool_new(&pool, PAGE, PIER_POOL_MAX_BUFFERS + 1, 0), -E2BIG);
	ck_assert_int_eq(pier_pool_new(&pool, PIER_POOL_MAX_BYTES, 2, 0), -E2BIG);
	ck_assert_int_eq(pier_pool_new(&pool, SIZE_MAX, 1, 0), -E2BIG);
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, &fd, sizes, 1, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_new_from_fds(&pool, NULL, sizes, 1, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_acquire(NULL, NULL, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_drop(NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_recv(NULL, &f, 0), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_flush(NULL), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_fd(NULL), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_accept(&rp, NULL, NULL, 0, 0), -EINVAL);
	ck_assert_ptr_null(pier_pool_frame_data(NULL, &len));
	ck_assert_uint_eq(len, 0);
	ck_assert_ptr_null(pier_pool_frame_meta(NULL, NULL));
	pier_pool_free(NULL);
	pier_shared_pool_free(NULL);
	pier_remote_pool_free(NULL);
	pier_pool_frame_free(NULL);

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	shared(a, b, PAGE, 2, 0, &pool, &sp, &rp);
	ck_assert_int_eq(pier_pool_share(pool, NULL, SVC_POOL, &sp), -EINVAL);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, -2), -EINVAL);
	ck_assert_int_eq(pier_pool_drop(pool, 2), -EINVAL);
	ck_assert_int_eq(pier_pool_drop(pool, 0), -EPERM);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 1, NULL, 0, 0), -EPERM);
	ck_assert_int_eq(pier_pool_acquire(pool, NULL, NULL, 0), 0);
	ck_assert_int_eq(pier_pool_publish(NULL, 0, 0, 1, NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 2, 0, 1, NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 0, NULL, 0, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 1, NULL, 1, 0), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 1, meta, sizeof(meta), 0), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, 1, NULL, 0, 1u << 9), -EINVAL);
	ck_assert_int_eq(pier_pool_publish(sp, 0, 1, PAGE, NULL, 0, 0), -ERANGE);
	ck_assert_int_eq(pier_pool_publish(sp, 0, SIZE_MAX, 2, NULL, 0, 0), -ERANGE);
	/* Still the application's after every failure. */
	ck_assert_int_eq(pier_pool_publish(sp, 0, 0, PAGE, meta, PIER_POOL_MAX_META, 0), 0);
	ck_assert_int_eq(pier_remote_pool_recv(rp, NULL, 0), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, -2), -EINVAL);
	ck_assert_int_eq(pier_remote_pool_recv(rp, &f, WAIT), 0);
	pier_pool_frame_meta(f, &len);
	ck_assert_uint_eq(len, PIER_POOL_MAX_META);
	pier_pool_frame_free(f);
	ck_assert_int_ge(pier_remote_pool_fd(rp), 0);
	pier_remote_pool_free(rp);
	pier_shared_pool_free(sp);
	pier_pool_free(pool);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = th_tcase("pool", TH_TIMEOUT);

	tcase_add_loop_test(tc, frames_end_to_end, 0, FD_KINDS);
	tcase_add_loop_test(tc, frames_pipelined, 0, FD_KINDS);
	tcase_add_test(tc, frame_offsets);
	tcase_add_loop_test(tc, acquire_exhausted, 0, FD_KINDS);
	tcase_add_test(tc, drop_wakes_acquire);
	tcase_add_loop_test(tc, releases_batched, 0, FD_KINDS);
	tcase_add_loop_test(tc, releases_go_when_waiting, 0, FD_KINDS);
	tcase_add_loop_test(tc, owner_lies_about_fds, 0, FD_KINDS);
	tcase_add_loop_test(tc, owner_lies_about_geometry, 0, FD_KINDS);
	tcase_add_loop_test(tc, owner_lies_in_more_fds, 0, FD_KINDS);
	tcase_add_loop_test(tc, owner_lies_about_frames, 0, FD_KINDS);
	tcase_add_test(tc, pools_per_peer);
	tcase_add_loop_test(tc, receiver_lies, 0, FD_KINDS);
	tcase_add_loop_test(tc, release_waits_for_room, 0, FD_KINDS);
	tcase_add_loop_test(tc, receiver_gone_returns_buffers, 0, FD_KINDS);
	tcase_add_test(tc, receiver_killed_returns_buffers);
	tcase_add_loop_test(tc, release_after_owner_gone, 0, 2);
	tcase_add_loop_test(tc, share_freed_while_held, 0, FD_KINDS);
	tcase_add_loop_test(tc, fds_split_across_messages, 0, 2);
	tcase_add_test(tc, brought_fds);
	tcase_add_loop_test(tc, no_fds_no_pool, 0, 3);
	tcase_add_test(tc, two_peers_one_buffer);
	tcase_add_loop_test(tc, pollable_fds, 0, FD_KINDS);
	tcase_add_test(tc, threads_share_a_pool);
	tcase_add_test(tc, bad_arguments);
	suite_add_tcase(s, tc);
	return th_run(s);
}
