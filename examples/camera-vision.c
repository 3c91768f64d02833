/* SPDX-License-Identifier: MIT */
/*
 * camera -> vision: frames handed over as sealed memfds, not copied.
 *
 * The camera process fills each 1920x1080 RGB frame into a memfd, seals it
 * (nobody can change it any more), and sends it to the vision process as a
 * request over a seqpacket socket: the body says what the frame is, the fd
 * is the frame.  The vision process maps it read-only with
 * pier_msg_map_fd(), which first checks that the camera can no longer
 * shrink it (a frame shrunk under the mapping would kill the reader with
 * SIGBUS), computes the mean brightness of each third of the image,
 * reporting progress as responder updates, and answers with the mean of
 * the whole frame.
 *
 *   camera-vision vision seqpacket:///tmp/vision.sock      (terminal 1)
 *   camera-vision camera seqpacket:///tmp/vision.sock 5    (terminal 2)
 *   camera-vision demo 5      (both, as two processes, for 5 seconds)
 */
#define _GNU_SOURCE
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
#define SVC_FRAME 1
#define SVC_PROGRESS 2
#define IN_FLIGHT 3 /* frames the camera sends ahead of the answers */

/* What the request body says about the frame behind the fd. */
struct frame_info {
	uint32_t seq, width, height, stride;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "camera-vision: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* --- vision ------------------------------------------------------------- */

static void answer_frame(pier_received_request *req, pier_msg *m)
{
	struct frame_info info;
	size_t len;
	const void *body = pier_msg_body(m, &len);
	const unsigned char *px;
	pier_mapping *map;
	uint64_t sum = 0;
	char text[96];
	int r;

	if (len != sizeof(info) || pier_msg_fd_count(m) != 1) {
		pier_received_request_send_error(req, "a frame is a frame_info and one fd");
		return;
	}
	memcpy(&info, body, sizeof(info));
	if (info.width != WIDTH || info.height != HEIGHT || info.stride != WIDTH * 3) {
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
	px = pier_mapping_data(map, NULL);
	/* The work, in thirds, with a progress update after each. */
	for (int part = 0; part < 3; part++) {
		size_t from = FRAME_BYTES / 3 * part, to = FRAME_BYTES / 3 * (part + 1);

		for (size_t i = from; i < to; i += 64)
			sum += px[i];
		snprintf(text, sizeof(text), "%d%%", (part + 1) * 100 / 3);
		pier_received_request_send_update(req, SVC_PROGRESS, text, strlen(text), NULL, 0);
	}
	pier_mapping_free(map);
	snprintf(text, sizeof(text), "frame %" PRIu32 " mean %.1f", info.seq,
		 (double)sum / (FRAME_BYTES / 64));
	pier_received_request_send_response(req, SVC_FRAME, text, strlen(text), NULL, 0);
}

/* Serves one camera until it goes away. */
static void serve_camera(pier_peer *peer)
{
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		if (req) {
			answer_frame(req, m);
			pier_received_request_free(req);
		}
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

/* A new sealed memfd holding frame number seq (a moving gradient). */
static int make_frame(uint32_t seq)
{
	int fd = memfd_create("frame", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsigned char *px;

	if (fd < 0 || ftruncate(fd, (off_t)FRAME_BYTES) < 0)
		goto fail;
	px = mmap(NULL, FRAME_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (px == MAP_FAILED)
		goto fail;
	for (size_t y = 0; y < HEIGHT; y++)
		memset(px + y * WIDTH * 3, (int)((y + seq * 8) & 0xff), WIDTH * 3);
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

struct inflight {
	pier_sent_request *req;
	double sent_at;
};

/* Waits for one frame's progress updates and answer; returns the latency
 * in seconds, or a negative error. */
static double collect(struct inflight *f, int *progress)
{
	pier_msg *m;
	int r;

	while ((r = pier_sent_request_recv(f->req, &m, 5000)) == 0) {
		int last = pier_msg_header(m)->type == PIER_MSG_RESPONSE;
		int error = pier_msg_is_error(m);

		if (!last)
			(*progress)++;
		pier_msg_free(m);
		if (last) {
			pier_sent_request_free(f->req);
			f->req = NULL;
			return error ? -EPROTO : now_s() - f->sent_at;
		}
	}
	pier_sent_request_free(f->req);
	f->req = NULL;
	return r;
}

struct stats {
	double start, latency_sum, latency_max;
	unsigned int done;
	int progress;
};

/* Waits for the answer to a frame in flight and accounts for it. */
static int finish(struct inflight *f, struct stats *st)
{
	double lat = collect(f, &st->progress);

	if (lat < 0)
		return fail("frame", (int)lat);
	st->latency_sum += lat;
	st->latency_max = lat > st->latency_max ? lat : st->latency_max;
	st->done++;
	return 0;
}

static void report(const struct stats *st, bool tty)
{
	double t = now_s() - st->start;

	printf("%scamera: %4u frames  %6.1f frames/s  %7.1f MB handed over%s", tty ? "\r" : "",
	       st->done, st->done / t, st->done * (FRAME_BYTES / 1e6), tty ? "" : "\n");
	fflush(stdout);
}

static int run_camera(pier_peer *peer, double seconds)
{
	struct inflight flight[IN_FLIGHT] = { 0 };
	struct stats st = { .start = now_s() };
	double last_report = st.start, t;
	bool tty = isatty(STDOUT_FILENO);
	uint32_t seq = 0;

	printf("camera: sending %dx%d RGB frames for %.0f s\n", WIDTH, HEIGHT, seconds);
	/* IN_FLIGHT frames travel at once: while the vision process works on
	 * one, the next is already being made and sent. */
	while (now_s() - st.start < seconds) {
		struct inflight *f = &flight[seq % IN_FLIGHT];
		struct frame_info info = { seq, WIDTH, HEIGHT, WIDTH * 3 };
		int fd, r;

		if (f->req && finish(f, &st) < 0)
			return 1;
		fd = make_frame(seq);
		if (fd < 0)
			return fail("memfd", fd);
		f->sent_at = now_s();
		r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_FRAME, &info,
					     sizeof(info), &fd, 1, &f->req);
		close(fd); /* sending borrowed it; the vision process has its own now */
		if (r < 0)
			return fail("send", r);
		seq++;
		if (now_s() - last_report >= 0.5) {
			report(&st, tty);
			last_report = now_s();
		}
	}
	for (int i = 0; i < IN_FLIGHT; i++)
		if (flight[i].req && finish(&flight[i], &st) < 0)
			return 1;
	report(&st, tty);
	t = now_s() - st.start;
	printf("\n%u frames in %.1f s: %.1f frames/s.\n", st.done, t, st.done / t);
	printf("%.1f MB of images handed over as file descriptors: not one byte of them was "
	       "copied through the socket.\n", st.done * (FRAME_BYTES / 1e6));
	if (st.done)
		printf("Request latency (send to answer, %d frames in flight): %.2f ms on average, "
		       "%.2f ms at worst; %d progress updates arrived.\n", IN_FLIGHT,
		       st.latency_sum / st.done * 1e3, st.latency_max * 1e3, st.progress);
	return st.done > 0 ? 0 : 1;
}

static int run_camera_at(const char *address, double seconds)
{
	pier_peer *peer;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0)
		return fail(address, r);
	r = run_camera(peer, seconds);
	pier_peer_free(peer);
	return r;
}

/* Both sides, as two processes joined by a seqpacket socketpair. */
static int run_demo(double seconds)
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
	r = run_camera(peer, seconds);
	pier_peer_free(peer); /* the vision process sees the end and exits */
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r = 1;
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	/* Line by line even into a pipe or a log, and nothing buffered twice
	 * across fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "vision") == 0 && argc == 3)
		return run_vision(argv[2]);
	if (strcmp(mode, "camera") == 0 && (argc == 3 || argc == 4))
		return run_camera_at(argv[2], argc == 4 ? atof(argv[3]) : 5);
	if (strcmp(mode, "demo") == 0 && argc <= 3)
		return run_demo(argc == 3 ? atof(argv[2]) : 5);
	fprintf(stderr, "usage: camera-vision vision ADDRESS\n"
			"       camera-vision camera ADDRESS [SECONDS]\n"
			"       camera-vision demo [SECONDS]\n");
	return 2;
}
