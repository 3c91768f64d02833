/* SPDX-License-Identifier: MIT */
/*
 * camera -> vision: 1920x1080 RGB frames handed over through a buffer pool.
 *
 * The camera process makes a pool of four frame buffers (sealed memfds) and
 * shares it with the vision process once, over a seqpacket socket.  From
 * then on a frame is a small message naming a buffer, with the frame's
 * number and the time it was sent as metadata: no fd crosses the socket.
 * The vision process reads each frame in the mapping it made once (checked:
 * the camera cannot shrink it under the reader), computes its mean
 * brightness, and frees it; the camera learns the buffers are free again in
 * batches, and waits for one when all four are out.
 *
 * With --fresh-memfd it works the way it did before pools: each frame a new
 * sealed memfd, sent with a request, mapped (checked) and unmapped by the
 * vision process, which answers with the mean.
 *
 * The vision process measures each frame's latency from the camera's send
 * to its release, and counts the fds it receives; the camera counts the fds
 * it makes, and both report.
 *
 *   camera-vision vision seqpacket:///tmp/vision.sock        (terminal 1)
 *   camera-vision camera seqpacket:///tmp/vision.sock 5      (terminal 2)
 *   camera-vision demo 5          (both, as two processes: the pool for 5
 *                                  seconds, then a fresh memfd per frame)
 *   camera-vision demo 5 --fresh-memfd    (only the old way; --pool: only
 *                                          the pool)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pier.h>

#define WIDTH 1920
#define HEIGHT 1080
#define FRAME_BYTES ((size_t)WIDTH * HEIGHT * 3)
#define SVC_FRAME 1 /* a frame in a fresh memfd: a request, answered */
#define SVC_POOL 2  /* the pool: a request kept open while it is shared */
#define SVC_STATS 3 /* what the vision process saw: a request, answered */
#define POOL_BUFFERS 4
#define IN_FLIGHT 3 /* frames the camera sends ahead in the fresh way */

/* What goes with each frame: the pool's metadata, or the request body. */
struct frame_info {
	uint32_t seq, width, height, stride;
	int64_t sent_ns; /* CLOCK_MONOTONIC, which both processes share */
};

/* What the vision process reports at the end. */
struct vision_stats {
	uint64_t frames, latency_sum_ns, latency_max_ns;
	uint64_t fds_received; /* with frames, not with the pool's share */
	double mean;           /* brightness of the last frame */
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double now_s(void)
{
	return (double)now_ns() / 1e9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "camera-vision: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* --- vision ------------------------------------------------------------- */

/* The work: the mean of one byte in 64. */
static double mean_brightness(const unsigned char *px)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < FRAME_BYTES; i += 64)
		sum += px[i];
	return (double)sum / (FRAME_BYTES / 64);
}

static bool geometry_ok(const struct frame_info *info)
{
	return info->width == WIDTH && info->height == HEIGHT && info->stride == WIDTH * 3;
}

/* A frame is released: its latency counts. */
static void released(struct vision_stats *st, const struct frame_info *info)
{
	uint64_t lat = (uint64_t)(now_ns() - info->sent_ns);

	st->frames++;
	st->latency_sum_ns += lat;
	st->latency_max_ns = lat > st->latency_max_ns ? lat : st->latency_max_ns;
}

/* Whether a receive failed on a frame the camera got wrong (it was told
 * why, and the next frame comes), not because the pool or camera is gone. */
static bool refused(int r)
{
	return r == -ERANGE || r == -EOVERFLOW || r == -EMSGSIZE || r == -ENOENT ||
	       r == -EBUSY || r == -EBADMSG || r == -EPROTO;
}

/* Takes the frames of a pool the camera shares, until it closes it. */
static void take_pool(pier_received_request *req, pier_msg *m, struct vision_stats *st)
{
	pier_remote_pool *rp;
	pier_pool_frame *f;
	int r = pier_remote_pool_accept(&rp, req, m, 0, 5000);

	if (r < 0) {
		fail("pool refused", r);
		return;
	}
	while ((r = pier_remote_pool_recv(rp, &f, -1)) != -PIER_EDONE) {
		struct frame_info info;
		size_t len, meta_len;
		const void *meta;

		if (r < 0 && !refused(r))
			break; /* the camera went away */
		if (r < 0)
			continue;
		meta = pier_pool_frame_meta(f, &meta_len);
		if (meta_len == sizeof(info)) {
			memcpy(&info, meta, sizeof(info));
			if (geometry_ok(&info) && pier_pool_frame_data(f, &len) && len == FRAME_BYTES)
				st->mean = mean_brightness(pier_pool_frame_data(f, NULL));
		}
		pier_pool_frame_free(f);
		if (meta_len == sizeof(info))
			released(st, &info);
	}
	pier_remote_pool_free(rp);
}

/* A frame in a fresh memfd: mapped (checked), read, unmapped, answered. */
static void take_fresh(pier_received_request *req, pier_msg *m, struct vision_stats *st)
{
	struct frame_info info;
	size_t len;
	const void *body = pier_msg_body(m, &len);
	pier_mapping *map;
	char text[96];
	int r;

	st->fds_received += pier_msg_fd_count(m);
	if (len != sizeof(info) || pier_msg_fd_count(m) != 1) {
		pier_received_request_send_error(req, "a frame is a frame_info and one fd");
		return;
	}
	memcpy(&info, body, sizeof(info));
	if (!geometry_ok(&info)) {
		pier_received_request_send_error(req, "unexpected frame geometry");
		return;
	}
	/* Mapped only if the fd holds the whole frame for good: a sealed
	 * memfd at least FRAME_BYTES long.  The fd stays the message's. */
	r = pier_msg_map_fd(m, 0, 0, FRAME_BYTES, 0, &map);
	if (r < 0) {
		snprintf(text, sizeof(text), "cannot map the frame: %s", pier_strerror(r));
		pier_received_request_send_error(req, text);
		return;
	}
	st->mean = mean_brightness(pier_mapping_data(map, NULL));
	pier_mapping_free(map);
	released(st, &info);
	snprintf(text, sizeof(text), "frame %" PRIu32 " mean %.1f", info.seq, st->mean);
	pier_received_request_send_response(req, SVC_FRAME, text, strlen(text), NULL, 0);
}

/* Serves one camera until it goes away. */
static void serve_camera(pier_peer *peer)
{
	struct vision_stats st = { 0 };
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		int32_t svc = req ? pier_received_request_service_id(req) : 0;

		if (svc == SVC_POOL) {
			take_pool(req, m, &st); /* takes req */
			req = NULL;
		} else if (svc == SVC_FRAME) {
			take_fresh(req, m, &st);
		} else if (svc == SVC_STATS) {
			pier_received_request_send_response(req, SVC_STATS, &st, sizeof(st), NULL,
							    0);
			memset(&st, 0, sizeof(st));
		}
		pier_received_request_free(req);
		pier_msg_free(m);
	}
}

static int run_vision(const char *address)
{
	pier_listener *l;
	pier_peer *peer;
	int32_t pid;
	uint32_t uid;
	char bound[256];
	int r = pier_listener_new(&l, address, NULL);

	if (r < 0)
		return fail(address, r);
	/* The address as bound: the port a tcp://HOST:0 address got. */
	pier_listener_address(l, bound, sizeof(bound));
	printf("vision: waiting for cameras on %s\n", bound);
	while ((r = pier_listener_accept(l, &peer, -1)) == 0) {
		if (pier_peer_credentials(peer, &pid, &uid, NULL) == 0)
			printf("vision: camera connected (pid %d, uid %u)\n", pid, uid);
		serve_camera(peer);
		pier_peer_free(peer);
		printf("vision: camera gone\n");
	}
	pier_listener_free(l);
	return fail("accept", r);
}

/* --- camera ------------------------------------------------------------- */

/* Frame seq: a gradient that moves down a little with every frame. */
static void draw(unsigned char *px, uint32_t seq)
{
	for (size_t y = 0; y < HEIGHT; y++)
		memset(px + y * WIDTH * 3, (int)((y + seq * 8) & 0xff), WIDTH * 3);
}

/* What one run of the camera did, and what the vision process saw. */
struct run {
	const char *way;
	double seconds;
	uint64_t frames;
	uint64_t fds_made; /* by the camera for frames, after the pool's share */
	struct vision_stats vision;
};

static void progress(const struct run *run, double start, bool tty)
{
	double t = now_s() - start;

	printf("%scamera (%s): %5" PRIu64 " frames  %7.1f frames/s%s", tty ? "\r" : "", run->way,
	       run->frames, (double)run->frames / t, tty ? "" : "\n");
	fflush(stdout);
}

/* Frames through a pool shared once, for seconds. */
static int camera_pool(pier_peer *peer, double seconds, struct run *run)
{
	double start, last_report;
	bool tty = isatty(STDOUT_FILENO);
	pier_shared_pool *share;
	pier_pool *pool;
	int r = pier_pool_new(&pool, FRAME_BYTES, POOL_BUFFERS, 0);

	if (r < 0)
		return fail("pool", r);
	/* The pool's memfd goes to the vision process once, here. */
	r = pier_pool_share(pool, pier_peer_get_writer(peer), SVC_POOL, &share);
	if (r < 0) {
		pier_pool_free(pool);
		return fail("share", r);
	}
	start = last_report = now_s();
	while (now_s() - start < seconds) {
		struct frame_info info = { (uint32_t)run->frames, WIDTH, HEIGHT, WIDTH * 3, 0 };
		void *px;
		int i = pier_pool_acquire(pool, &px, NULL, 5000);

		if (i < 0) {
			r = i;
			break;
		}
		draw(px, info.seq);
		info.sent_ns = now_ns();
		r = pier_pool_publish(share, (unsigned int)i, 0, FRAME_BYTES, &info, sizeof(info), 0);
		if (r < 0)
			break;
		run->frames++;
		if (now_s() - last_report >= 0.5) {
			progress(run, start, tty);
			last_report = now_s();
		}
	}
	/* Every buffer back: the vision process is done with them all. */
	for (int k = 0; r >= 0 && k < POOL_BUFFERS; k++)
		r = pier_pool_acquire(pool, NULL, NULL, 5000);
	run->seconds = now_s() - start;
	progress(run, start, tty);
	printf("\n");
	pier_shared_pool_free(share);
	pier_pool_free(pool);
	return r < 0 ? fail("pool frames", r) : 0;
}

/* A new sealed memfd holding frame seq. */
static int make_frame(uint32_t seq)
{
	int fd = memfd_create("frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsigned char *px;

	if (fd < 0 || ftruncate(fd, (off_t)FRAME_BYTES) < 0)
		goto fail;
	px = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (px == MAP_FAILED)
		goto fail;
	draw(px, seq);
	munmap(px, FRAME_BYTES);
	/* Sealed: the vision process may rely on the frame never changing. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		goto fail;
	return fd;
fail:
	if (fd >= 0)
		close(fd);
	return -errno;
}

/* Waits for the answer to a frame sent the old way. */
static int answered(pier_sent_request **req)
{
	pier_msg *m;
	int r = pier_sent_request_recv_response(*req, &m, 5000);

	if (r == 0) {
		r = pier_msg_is_error(m) ? -EPROTO : 0;
		pier_msg_free(m);
	}
	pier_sent_request_free(*req);
	*req = NULL;
	return r;
}

/* Frames the way before pools, a fresh memfd each, for seconds. */
static int camera_fresh(pier_peer *peer, double seconds, struct run *run)
{
	pier_sent_request *flight[IN_FLIGHT] = { 0 };
	bool tty = isatty(STDOUT_FILENO);
	double start = now_s(), last_report = start;
	int r = 0;

	while (r == 0 && now_s() - start < seconds) {
		struct frame_info info = { (uint32_t)run->frames, WIDTH, HEIGHT, WIDTH * 3, 0 };
		pier_sent_request **slot = &flight[run->frames % IN_FLIGHT];
		int fd;

		if (*slot && (r = answered(slot)) < 0)
			break;
		info.sent_ns = now_ns();
		fd = make_frame(info.seq);
		if (fd < 0) {
			r = fd;
			break;
		}
		run->fds_made++;
		r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_FRAME, &info,
					     sizeof(info), &fd, 1, slot);
		close(fd); /* sending borrowed it; the vision process has its own now */
		run->frames += r == 0;
		if (now_s() - last_report >= 0.5) {
			progress(run, start, tty);
			last_report = now_s();
		}
	}
	for (int i = 0; i < IN_FLIGHT; i++)
		if (flight[i] && answered(&flight[i]) < 0 && r == 0)
			r = -EPROTO;
	run->seconds = now_s() - start;
	progress(run, start, tty);
	printf("\n");
	return r < 0 ? fail("frame", r) : 0;
}

/* Asks the vision process what it saw. */
static int vision_stats(pier_peer *peer, struct vision_stats *st)
{
	pier_sent_request *req;
	pier_msg *m;
	size_t len;
	int r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_STATS, NULL, 0, NULL, 0,
					 &req);

	if (r < 0)
		return r;
	r = pier_sent_request_recv_response(req, &m, 5000);
	if (r == 0) {
		const void *body = pier_msg_body(m, &len);

		if (len == sizeof(*st))
			memcpy(st, body, sizeof(*st));
		else
			r = -EPROTO;
		pier_msg_free(m);
	}
	pier_sent_request_free(req);
	return r;
}

static void report(const struct run *run)
{
	const struct vision_stats *v = &run->vision;
	double frames = run->frames ? (double)run->frames : 1;

	printf("%-12s %6" PRIu64 " frames in %.1f s: %7.1f frames/s; send to release %6.2f ms "
	       "mean, %6.2f ms worst; fds opened per frame: %.2f\n",
	       run->way, run->frames, run->seconds, (double)run->frames / run->seconds,
	       v->frames ? (double)v->latency_sum_ns / (double)v->frames / 1e6 : 0,
	       (double)v->latency_max_ns / 1e6,
	       (double)(run->fds_made + v->fds_received) / frames);
}

/* One run, then what the vision process saw. */
static int camera_run(pier_peer *peer, double seconds, bool fresh, struct run *run)
{
	int r;

	*run = (struct run){ .way = fresh ? "fresh memfd" : "pool" };
	if (fresh)
		printf("camera: sending %dx%d RGB frames for %.0f s, a fresh sealed memfd each "
		       "(the old way)\n", WIDTH, HEIGHT, seconds);
	else
		printf("camera: sending %dx%d RGB frames for %.0f s through a pool of %d buffers "
		       "shared once\n", WIDTH, HEIGHT, seconds, POOL_BUFFERS);
	r = fresh ? camera_fresh(peer, seconds, run) : camera_pool(peer, seconds, run);
	if (r == 0 && (r = vision_stats(peer, &run->vision)) < 0)
		return fail("stats", r);
	if (r == 0 && run->vision.frames != run->frames) {
		fprintf(stderr, "camera-vision: %" PRIu64 " frames sent, %" PRIu64 " seen\n",
			run->frames, run->vision.frames);
		return 1;
	}
	if (r == 0)
		report(run);
	return r;
}

/* The ways asked for (pool, fresh or both), one after the other. */
static int run_camera(pier_peer *peer, double seconds, bool pool, bool fresh)
{
	struct run runs[2];
	int n = 0, r = 0;

	if (pool && (r = camera_run(peer, seconds, false, &runs[n++])) != 0)
		return r;
	if (fresh && (r = camera_run(peer, seconds, true, &runs[n++])) != 0)
		return r;
	if (n == 2)
		printf("The pool: %.0f times the frames per second, %.1f times less latency, "
		       "and no fd per frame: the frames' memory was shared once, and each frame "
		       "was a message with a %zu-byte body.\n",
		       ((double)runs[0].frames / runs[0].seconds) /
			       ((double)runs[1].frames / runs[1].seconds),
		       ((double)runs[1].vision.latency_sum_ns / (double)runs[1].vision.frames) /
			       ((double)runs[0].vision.latency_sum_ns / (double)runs[0].vision.frames),
		       32 + sizeof(struct frame_info));
	return r;
}

static int run_camera_at(const char *address, double seconds, bool pool, bool fresh)
{
	pier_peer *peer;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0)
		return fail(address, r);
	r = run_camera(peer, seconds, pool, fresh);
	pier_peer_free(peer);
	return r;
}

/* Both sides, as two processes joined by a seqpacket socketpair. */
static int run_demo(double seconds, bool pool, bool fresh)
{
	pier_peer *peer;
	int sv[2], status, r;
	pid_t child;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fail("socketpair", -errno);
	child = fork();
	if (child < 0)
		return fail("fork", -errno);
	if (child == 0) {
		close(sv[0]);
		if (pier_peer_adopt(&peer, sv[1], NULL) < 0)
			_exit(1);
		serve_camera(peer);
		pier_peer_free(peer);
		_exit(0);
	}
	close(sv[1]);
	printf("demo: the vision process (pid %d) and this camera process share a seqpacket "
	       "socket\n", (int)child);
	r = pier_peer_adopt(&peer, sv[0], NULL);
	if (r < 0) {
		close(sv[0]);
		kill(child, SIGTERM);
		waitpid(child, NULL, 0);
		return fail("adopt", r);
	}
	r = run_camera(peer, seconds, pool, fresh);
	pier_peer_free(peer); /* the vision process sees the end and exits */
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r = 1;
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	bool pool = true, fresh = true, only = false;
	double seconds = 5;
	int args = argc;

	/* Line by line even into a pipe or a log, and nothing buffered twice
	 * across fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (args > 2 && strcmp(argv[args - 1], "--fresh-memfd") == 0) {
		pool = false;
		only = true;
		args--;
	} else if (args > 2 && strcmp(argv[args - 1], "--pool") == 0) {
		fresh = false;
		only = true;
		args--;
	}
	if (strcmp(mode, "vision") == 0 && args == 3 && !only)
		return run_vision(argv[2]);
	/* camera: the pool, unless told --fresh-memfd. */
	if (strcmp(mode, "camera") == 0 && (args == 3 || args == 4)) {
		if (args == 4)
			seconds = atof(argv[3]);
		return run_camera_at(argv[2], seconds, pool, !pool);
	}
	if (strcmp(mode, "demo") == 0 && args <= 3) {
		if (args == 3)
			seconds = atof(argv[2]);
		return run_demo(seconds, pool, fresh);
	}
	fprintf(stderr, "usage: camera-vision vision ADDRESS\n"
			"       camera-vision camera ADDRESS [SECONDS] [--fresh-memfd]\n"
			"       camera-vision demo [SECONDS] [--pool | --fresh-memfd]\n");
	return 2;
}
