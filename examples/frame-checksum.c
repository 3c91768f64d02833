/* SPDX-License-Identifier: MIT */
/*
 * Zero-copy frames over a Unix socket: a camera shares a pool of frame
 * buffers with a vision process listening on a seqpacket socket path, and
 * the vision process computes nothing but a checksum of each whole frame,
 * reading it where the camera wrote it (its mapping of the pool), with no
 * copy and no fd per frame.  It sends each checksum back as a stream
 * message; the camera, which knows what it wrote, checks every one.
 *
 *   frame-checksum vision seqpacket:///tmp/frames.sock      (terminal 1)
 *   frame-checksum camera seqpacket:///tmp/frames.sock 200  (terminal 2)
 *   frame-checksum demo 200       (both, as two processes, on a socket in
 *                                  a temporary directory)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>

#define WIDTH 1280
#define HEIGHT 720
#define FRAME_BYTES ((size_t)WIDTH * HEIGHT * 3)
#define BUFFERS 3
#define SVC_POOL 7
#define SVC_CHECKSUM 8

struct checksum {
	uint32_t seq;
	uint64_t sum;
};

static int fail(const char *what, int err)
{
	fprintf(stderr, "frame-checksum: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* FNV-1a over 64-bit words: every byte of the frame counts. */
static uint64_t checksum(const unsigned char *p, size_t len)
{
	uint64_t h = 0xcbf29ce484222325u, w;

	for (size_t i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3u;
	}
	for (size_t i = len & ~(size_t)7; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

/* --- vision ------------------------------------------------------------- */

/* Checksums the frames of the pool the camera shares, until it closes it. */
static int checksum_frames(pier_peer *peer, pier_received_request *req, pier_msg *m)
{
	pier_remote_pool *rp;
	pier_pool_frame *f;
	unsigned int n = 0;
	int r = pier_remote_pool_accept(&rp, req, m, 0, 5000);

	if (r < 0)
		return fail("pool refused", r);
	while ((r = pier_remote_pool_recv(rp, &f, -1)) == 0) {
		struct checksum c = { pier_pool_frame_seq(f), 0 };
		size_t len;
		const unsigned char *px = pier_pool_frame_data(f, &len);

		/* Read where the camera wrote it: the mapping is the pool's. */
		c.sum = checksum(px, len);
		pier_pool_frame_free(f);
		r = pier_writer_send_stream(pier_peer_get_writer(peer), SVC_CHECKSUM, &c, sizeof(c),
					    NULL, 0);
		if (r < 0)
			break;
		n++;
	}
	pier_remote_pool_free(rp);
	printf("vision: %u frames checksummed\n", n);
	return r == -PIER_EDONE ? 0 : fail("frames", r);
}

static int serve(pier_peer *peer)
{
	pier_received_request *req;
	pier_msg *m;
	int r = 0;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		if (req && pier_received_request_service_id(req) == SVC_POOL)
			r |= checksum_frames(peer, req, m); /* takes req */
		else
			pier_received_request_free(req);
		pier_msg_free(m);
	}
	return r;
}

/* Serves cameras one after another; with once, the first only. */
static int run_vision(const char *address, int once_fd)
{
	pier_listener *l;
	pier_peer *peer;
	char bound[256];
	int r = pier_listener_new(&l, address, NULL);

	if (r < 0)
		return fail(address, r);
	pier_listener_address(l, bound, sizeof(bound));
	printf("vision: waiting for cameras on %s\n", bound);
	if (once_fd >= 0) {
		/* The demo's camera may connect now. */
		if (write(once_fd, "r", 1) != 1)
			return 1;
		close(once_fd);
	}
	while ((r = pier_listener_accept(l, &peer, -1)) == 0) {
		r = serve(peer);
		pier_peer_free(peer);
		if (once_fd >= 0)
			break;
	}
	pier_listener_free(l);
	return r < 0 ? fail("accept", r) : r;
}

/* --- camera ------------------------------------------------------------- */

/* Frame seq: every byte depends on where it is and on seq. */
static void draw(unsigned char *px, uint32_t seq)
{
	for (size_t i = 0; i < FRAME_BYTES; i += 8) {
		uint64_t v = (i * 0x9e3779b97f4a7c15u) ^ ((uint64_t)seq << 32);

		memcpy(px + i, &v, 8);
	}
}

/* Takes the checksums that came back, and checks each against sums. */
static int check_sums(pier_peer *peer, const uint64_t *sums, uint32_t frames, uint32_t *checked,
		      int timeout_ms)
{
	pier_received_request *req;
	pier_msg *m;
	int r = 0;

	while (*checked < frames && (r = pier_peer_recv(peer, &m, &req, timeout_ms)) == 0) {
		struct checksum c;
		size_t len;
		const void *body = pier_msg_body(m, &len);

		pier_received_request_free(req);
		if (len != sizeof(c)) {
			pier_msg_free(m);
			return -EPROTO;
		}
		memcpy(&c, body, sizeof(c));
		pier_msg_free(m);
		if (c.seq >= frames || c.sum != sums[c.seq]) {
			fprintf(stderr, "frame-checksum: frame %" PRIu32 ": checksum %016" PRIx64
				", expected %016" PRIx64 "\n", c.seq, c.sum,
				c.seq < frames ? sums[c.seq] : 0);
			return -EPROTO;
		}
		(*checked)++;
	}
	return *checked == frames || r == -EAGAIN ? 0 : r;
}

static int run_camera(const char *address, uint32_t frames)
{
	uint64_t *sums = calloc(frames ? frames : 1, sizeof(*sums));
	pier_shared_pool *share = NULL;
	pier_pool *pool = NULL;
	pier_peer *peer;
	uint32_t checked = 0;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0) {
		free(sums);
		return fail(address, r);
	}
	if (!sums || (r = pier_pool_new(&pool, FRAME_BYTES, BUFFERS, 0)) < 0 ||
	    (r = pier_pool_share(pool, pier_peer_get_writer(peer), SVC_POOL, &share)) < 0)
		goto out;
	for (uint32_t seq = 0; seq < frames && r >= 0; seq++) {
		void *px;
		int i = pier_pool_acquire(pool, &px, NULL, 5000);

		if ((r = i) < 0)
			break;
		draw(px, seq);
		sums[seq] = checksum(px, FRAME_BYTES);
		r = pier_pool_publish(share, (unsigned int)i, 0, FRAME_BYTES, NULL, 0, 0);
		/* What came back meanwhile, without waiting. */
		if (r >= 0)
			r = check_sums(peer, sums, frames, &checked, 0);
	}
	if (r >= 0)
		r = check_sums(peer, sums, frames, &checked, 5000);
out:
	pier_shared_pool_free(share);
	pier_pool_free(pool);
	pier_peer_free(peer);
	free(sums);
	if (r < 0)
		return fail("frames", r);
	printf("camera: %" PRIu32 " frames of %zu bytes, every checksum right: the vision "
	       "process read each frame where the camera wrote it\n", checked, FRAME_BYTES);
	return 0;
}

/* Both sides as two processes, on a socket in a temporary directory. */
static int run_demo(uint32_t frames)
{
	char dir[] = "/tmp/frame-checksum-XXXXXX", address[128], path[96], c;
	int ready[2], status, r;
	pid_t child;

	if (!mkdtemp(dir))
		return fail("mkdtemp", -errno);
	snprintf(path, sizeof(path), "%s/frames.sock", dir);
	snprintf(address, sizeof(address), "seqpacket://%s", path);
	if (pipe(ready) < 0)
		return fail("pipe", -errno);
	child = fork();
	if (child < 0)
		return fail("fork", -errno);
	if (child == 0) {
		close(ready[0]);
		_exit(run_vision(address, ready[1]));
	}
	close(ready[1]);
	r = read(ready[0], &c, 1) == 1 ? run_camera(address, frames) : 1;
	close(ready[0]);
	if (r != 0)
		kill(child, SIGTERM);
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r = 1;
	unlink(path);
	rmdir(dir);
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "vision") == 0 && argc == 3)
		return run_vision(argv[2], -1);
	if (strcmp(mode, "camera") == 0 && (argc == 3 || argc == 4))
		return run_camera(argv[2], argc == 4 ? (uint32_t)atoi(argv[3]) : 200);
	if (strcmp(mode, "demo") == 0 && argc <= 3)
		return run_demo(argc == 3 ? (uint32_t)atoi(argv[2]) : 200);
	fprintf(stderr, "usage: frame-checksum vision ADDRESS\n"
			"       frame-checksum camera ADDRESS [FRAMES]\n"
			"       frame-checksum demo [FRAMES]\n");
	return 2;
}
