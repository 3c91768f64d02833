/* SPDX-License-Identifier: MIT */
/*
 * The camera interface of examples/camera.pier, served and called through
 * the code pier-scanner generates from it (camera-pier.h): a typed client
 * and a typed server, with JSON bodies a Rust peer of fizyr-rpc reads as
 * its own, and each image's pixels in a sealed memfd, an fd field.
 *
 *   typed-camera server ADDRESS          serves the camera on a pier_server,
 *                                        and its description (pier describe)
 *   typed-camera client ADDRESS [COUNT]  pings, records COUNT images,
 *                                        cancels after half of them
 *   typed-camera demo [COUNT]            both, two processes
 *
 * ADDRESS must carry fds: seqpacket:///path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>
#include <pier/typed.h>

#include "camera-pier.h"

#define WIDTH 64
#define HEIGHT 48
#define WAIT_MS 5000
#define FRAME_MS 20 /* a camera of 50 frames/s */

static int fail(const char *what, int err)
{
	fprintf(stderr, "typed-camera: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* --- the camera ---------------------------------------------------------------- */

/* A sealed memfd of one grey image, every pixel the image's number. */
static int make_image(uint32_t n)
{
	static unsigned char pixels[WIDTH * HEIGHT];
	int fd = memfd_create("image", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	if (fd < 0)
		return -errno;
	memset(pixels, (int)(n & 0xff), sizeof(pixels));
	if (write(fd, pixels, sizeof(pixels)) != (ssize_t)sizeof(pixels) ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		close(fd);
		return -EIO;
	}
	return fd;
}

static int on_ping(void *userdata, pier_peer *peer, void *peer_data,
		   struct camera_ping_reply *reply)
{
	camera_ping_reply_respond(reply, NULL);
	return PIER_HANDLER_DONE;
}

/* Sends count images, one per frame time, and stops early on a cancel. */
static int on_record(void *userdata, pier_peer *peer, void *peer_data,
		     struct camera_record_request *request, struct camera_record_reply *reply)
{
	enum camera_record_state state = CAMERA_RECORD_STATE_RECORDING;
	struct camera_record_summary summary;
	struct camera_record_request_update u;
	struct pier_value_error err;
	int r = 0;

	camera_record_summary_init(&summary);
	camera_record_reply_send_state(reply, &state, &err);
	while (summary.images < request->count && !summary.cancelled.present) {
		struct camera_image image = { WIDTH, HEIGHT, 1, make_image(summary.images) };

		if (image.data < 0 || (r = camera_record_reply_send_image(reply, &image, &err)) < 0)
			break;
		close(image.data); /* the send duplicated it */
		summary.images++;
		/* the time to the next frame: a cancel may come meanwhile */
		if (camera_record_reply_recv_update(reply, &u, FRAME_MS, &err) == 0) {
			summary.cancelled.present = true;
			summary.cancelled.value = u.cancel;
			camera_record_request_update_free(&u);
		}
	}
	if (r < 0) {
		camera_record_reply_fail(reply, err.message);
		return PIER_HANDLER_DONE;
	}
	state = CAMERA_RECORD_STATE_DONE;
	camera_record_reply_send_state(reply, &state, &err);
	if (camera_record_reply_respond(reply, &summary, &err) < 0)
		fprintf(stderr, "typed-camera: %s\n", err.message);
	return PIER_HANDLER_DONE;
}

static void on_record_state(void *userdata, pier_peer *peer, void *peer_data,
			    enum camera_record_state *state)
{
	printf("camera: a client says its record state is %d\n", (int)*state);
}

static const struct camera_handlers handlers = {
	.ping = on_ping,
	.record = on_record,
	.record_state = on_record_state,
};

static int run_server(const char *address)
{
	const struct camera_server camera = { &handlers, pier_format_json(), NULL };
	const struct pier_interface_type *describes[] = { &camera_interface };
	pier_server *s;
	sigset_t stop;
	int r, sig;

	if (!camera.fmt)
		return fail("JSON", -ENOTSUP);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before the workers start */
	if ((r = pier_server_new(&s, NULL)) < 0)
		return fail("server", r);
	/* pier describe ADDRESS prints the interface; pier call -d calls it */
	if ((r = camera_serve(s, &camera)) < 0 ||
	    (r = pier_server_handle_describe(s, PIER_DESCRIBE_SERVICE, describes, 1)) < 0 ||
	    (r = pier_server_listen(s, address)) < 0 || (r = pier_server_start(s)) < 0) {
		pier_server_free(s);
		return fail(address, r);
	}
	printf("camera: serving on %s\n", address);
	sigwait(&stop, &sig);
	pier_server_stop(s);
	pier_server_wait(s, -1);
	pier_server_free(s);
	return 0;
}

/* --- the client ------------------------------------------------------------------ */

/* Whether the image's pixels are what the camera made of image n. */
static bool image_ok(const struct camera_image *image, uint32_t n)
{
	size_t len = (size_t)image->width * image->height;
	const unsigned char *p;
	bool ok = true;

	/* the camera sealed it: it cannot shrink under this mapping */
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, image->data, 0);
	if (p == MAP_FAILED)
		return false;
	for (size_t i = 0; i < len && ok; i++)
		ok = p[i] == (unsigned char)(n & 0xff);
	munmap((void *)p, len);
	return ok;
}

static int record(struct camera_client *client, uint32_t count)
{
	struct camera_record_request request = { .color = true, .count = count };
	enum camera_cancel_reason cancel = CAMERA_CANCEL_REASON_BECAUSE_I_SAID_SO;
	struct camera_record_response_update u;
	struct camera_record_summary summary;
	struct camera_record_call *call;
	struct pier_value_error err;
	uint32_t images = 0;
	int r;

	if ((r = camera_record(client, &request, &call, &err)) < 0)
		return fail(err.message, r);
	while ((r = camera_record_call_recv_update(call, &u, WAIT_MS, &err)) == 0) {
		bool image = u.tag == CAMERA_RECORD_RESPONSE_UPDATE_IMAGE;

		if (!image) {
			printf("client: state %d\n", (int)u.state);
		} else if (!image_ok(&u.image, images++)) {
			fprintf(stderr, "typed-camera: image %u is not what was sent\n", images - 1);
			r = -EBADMSG;
		}
		camera_record_response_update_free(&u); /* closes the image's fd */
		if (r < 0)
			break;
		/* enough: the camera stops at its next image */
		if (image && images == count / 2 &&
		    (r = camera_record_call_send_cancel(call, &cancel, &err)) < 0)
			break;
	}
	if (r == -PIER_ERESPONSE)
		r = camera_record_call_recv_response(call, &summary, WAIT_MS, &err);
	camera_record_call_free(call);
	if (r < 0)
		return fail(err.message, r);
	printf("client: %u images recorded, %u received, %s\n", summary.images, images,
	       summary.cancelled.present ? "cancelled" : "not cancelled");
	r = summary.images == images ? 0 : 1;
	camera_record_summary_free(&summary);
	return r;
}

static int run_client(pier_peer *peer, uint32_t count)
{
	struct camera_client client = { pier_peer_get_writer(peer), pier_format_json() };
	enum camera_record_state processing = CAMERA_RECORD_STATE_PROCESSING;
	struct pier_value_error err;
	int r;

	if (!client.fmt)
		return fail("JSON", -ENOTSUP);
	if ((r = camera_ping(&client, WAIT_MS, &err)) < 0)
		return fail(err.message, r);
	if ((r = camera_send_record_state(&client, &processing, &err)) < 0)
		return fail(err.message, r);
	return record(&client, count);
}

static int run_demo(uint32_t count)
{
	const struct camera_server camera = { &handlers, pier_format_json(), NULL };
	pier_peer *peer;
	int sv[2], status, r;
	pid_t child;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return fail("socketpair", -errno);
	child = fork();
	if (child == 0) {
		/* the camera, one peer on this thread, until the client leaves */
		close(sv[0]);
		if (pier_peer_adopt(&peer, sv[1], NULL) < 0)
			_exit(1);
		r = camera_serve_peer(&camera, peer, -1);
		pier_peer_free(peer);
		_exit(r < 0 ? 1 : 0);
	}
	close(sv[1]);
	if (child < 0 || (r = pier_peer_adopt(&peer, sv[0], NULL)) < 0) {
		close(sv[0]);
		return fail("demo", child < 0 ? -errno : r);
	}
	r = run_client(peer, count);
	pier_peer_free(peer);
	if (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		r = 1;
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	pier_peer *peer;
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "server") == 0 && argc == 3)
		return run_server(argv[2]);
	if (strcmp(mode, "client") == 0 && (argc == 3 || argc == 4)) {
		if ((r = pier_peer_connect(&peer, argv[2], NULL)) < 0)
			return fail(argv[2], r);
		r = run_client(peer, argc == 4 ? (uint32_t)atoi(argv[3]) : 10);
		pier_peer_free(peer);
		return r;
	}
	if (strcmp(mode, "demo") == 0 && argc <= 3)
		return run_demo(argc == 3 ? (uint32_t)atoi(argv[2]) : 10);
	fprintf(stderr, "usage: typed-camera server ADDRESS\n"
			"       typed-camera client ADDRESS [COUNT]\n"
			"       typed-camera demo [COUNT]\n");
	return 2;
}
