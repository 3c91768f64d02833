/* SPDX-License-Identifier: MIT */
/*
 * A whole peer fed arbitrary input by a hostile remote: bytes on a Unix
 * stream socket, or packets (with memfds attached) on a seqpacket socket.
 * The application side receives everything, answers some requests, takes
 * some fds, and frees the peer.  Properties: no crash or sanitizer report,
 * every wait ends (a receive that times out is a hang), and afterwards
 * the process has exactly the fds it had before.
 *
 * Input: byte 0 chooses the transport (bit 0: seqpacket), the peer's
 * byte order (bits 1-2), and whether stream messages of services 0 and 1
 * are latest-only (bit 3; the newest 1 and 2 kept).  On a stream, the rest
 * is the byte stream.  On
 * seqpacket, the rest is a series of packets, each a 2-byte little-endian
 * length, a byte whose low 3 bits say how many memfds go with it, and the
 * packet's bytes (cut short at the end of the input).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pier.h>

#include "fuzz.h"

/* Long enough for any input to be read; a receive that waits this long
 * means the peer hangs. */
#define HANG_MS 10000

struct remote {
	int fd;
	bool packets;
	const uint8_t *data;
	size_t size;
};

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	fuzz_assert(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void send_packet(int fd, const uint8_t *p, size_t len, unsigned int nfds)
{
	char cbuf[CMSG_SPACE(7 * sizeof(int))] = { 0 };
	struct iovec iov = { (void *)p, len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fds[7];

	for (unsigned int i = 0; i < nfds; i++) {
		fds[i] = memfd_create("fuzz", MFD_CLOEXEC);
		fuzz_assert(fds[i] >= 0);
	}
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	/* The peer may have hung up already: that is its right. */
	(void)sendmsg(fd, &mh, MSG_NOSIGNAL);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* Writes the input, then reads (and drops) what the peer answers until it
 * hangs up, so that the peer never blocks on a full socket. */
static void *remote_thread(void *arg)
{
	struct remote *r = arg;
	char buf[4096];

	if (!r->packets) {
		size_t off = 0;

		while (off < r->size) {
			ssize_t n = send(r->fd, r->data + off, r->size - off, MSG_NOSIGNAL);

			if (n <= 0)
				break;
			off += (size_t)n;
		}
	} else {
		size_t off = 0;

		while (off + 3 <= r->size) {
			size_t len = r->data[off] | (size_t)r->data[off + 1] << 8;
			unsigned int nfds = r->data[off + 2] & 7;

			off += 3;
			if (len > r->size - off)
				len = r->size - off;
			send_packet(r->fd, r->data + off, len, nfds);
			off += len;
		}
	}
	shutdown(r->fd, SHUT_WR);
	while (recv(r->fd, buf, sizeof(buf), 0) > 0)
		;
	return NULL;
}

/* Does what an application would with each item, driven by its bytes. */
static void consume(pier_msg *m, pier_received_request *rr)
{
	size_t len;
	const unsigned char *body = pier_msg_body(m, &len);
	unsigned int choice = len ? body[0] : 0;

	if (pier_msg_fd_count(m) > 0 && (choice & 1)) {
		int fd = pier_msg_take_fd(m, 0);

		fuzz_assert(fd >= 0);
		close(fd);
	}
	if (rr) {
		if (choice & 2)
			pier_received_request_send_response(rr, 1, body, len, NULL, 0);
		else if (choice & 4)
			pier_received_request_send_error(rr, "no");
		pier_received_request_free(rr); /* unanswered: an error response */
	}
	pier_msg_free(m);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* A fresh loop per input: the epoll backend sets up fastest. */
	setenv("PIER_BACKEND", "epoll", 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum pier_byte_order orders[] = {
		PIER_BYTE_ORDER_LITTLE, PIER_BYTE_ORDER_BIG, PIER_BYTE_ORDER_NATIVE, PIER_BYTE_ORDER_LITTLE,
	};
	struct remote remote;
	pier_config *cfg;
	pier_peer *peer;
	pthread_t th;
	int sv[2], before, r;

	if (size < 1)
		return 0;
	before = count_fds();
	remote = (struct remote){ .packets = data[0] & 1, .data = data + 1, .size = size - 1 };
	fuzz_assert(socketpair(AF_UNIX, (remote.packets ? SOCK_SEQPACKET : SOCK_STREAM) |
						SOCK_CLOEXEC, 0, sv) == 0);
	remote.fd = sv[1];
	/* Small limits, so that inputs reach them. */
	fuzz_assert(pier_config_new(&cfg) == 0);
	fuzz_assert(pier_config_set_byte_order(cfg, orders[(data[0] >> 1) & 3]) == 0);
	fuzz_assert(pier_config_set_max_body(cfg, 4096, 4096) == 0);
	fuzz_assert(pier_config_set_max_fds(cfg, 3) == 0);
	fuzz_assert(pier_config_set_max_open_requests(cfg, 4) == 0);
	if (data[0] & 8) {
		fuzz_assert(pier_config_set_stream_latest(cfg, 0, 1) == 0);
		fuzz_assert(pier_config_set_stream_latest(cfg, 1, 2) == 0);
	}
	r = pier_peer_adopt(&peer, sv[0], cfg);
	pier_config_free(cfg);
	fuzz_assert(r == 0);
	fuzz_assert(pthread_create(&th, NULL, remote_thread, &remote) == 0);

	for (;;) {
		pier_received_request *rr;
		pier_msg *m;

		r = pier_peer_recv(peer, &m, &rr, HANG_MS);
		fuzz_assert(r != -ETIMEDOUT);
		if (r < 0)
			break;
		consume(m, rr);
	}
	/* The input ended one way or another, with a reason. */
	fuzz_assert(r != -EAGAIN && r != -EINVAL);
	pier_peer_free(peer); /* its own loop: returns once it is closed */
	pthread_join(th, NULL);
	close(sv[1]);
	fuzz_assert(count_fds() == before);
	return 0;
}
