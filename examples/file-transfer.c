/* SPDX-License-Identifier: MIT */
/*
 * File transfer with progress: one request per file.  The client streams
 * the file's chunks as requester updates; the server answers each chunk
 * with a responder update saying how far it got, and the final response
 * carries the checksum of what it received, which the client checks
 * against its own.
 *
 *   file-transfer server unix:///tmp/files.sock DIRECTORY   (terminal 1)
 *   file-transfer send unix:///tmp/files.sock FILE          (terminal 2)
 *   file-transfer demo [MEGABYTES]          (both, two processes, a made-up file)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>

#define SVC_UPLOAD 10
#define SVC_CHUNK 11
#define SVC_PROGRESS 12
#define CHUNK (64 * 1024)

static int fail(const char *what, int err)
{
	fprintf(stderr, "file-transfer: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* FNV-1a, 64 bits: enough to notice a byte out of place. */
static uint64_t checksum(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}
#define CHECKSUM_START 0xcbf29ce484222325ull

/* --- server ------------------------------------------------------------- */

/* Receives one upload: chunks until an empty one, then the checksum.  The
 * request's body is "NAME SIZE". */
static void receive_upload(pier_received_request *req, pier_msg *m, int dirfd)
{
	char header[300], name[256], text[64];
	uint64_t sum = CHECKSUM_START, got = 0;
	unsigned long long size;
	size_t len;
	const char *body = pier_msg_body(m, &len);
	int fd, last_pct = -1;

	if (len >= sizeof(header)) {
		pier_received_request_send_error(req, "the request body is NAME SIZE");
		return;
	}
	memcpy(header, body, len);
	header[len] = '\0';
	if (sscanf(header, "%255s %llu", name, &size) != 2 || strchr(name, '/')) {
		pier_received_request_send_error(req, "the request body is NAME SIZE");
		return;
	}
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		pier_received_request_send_error(req, strerror(errno));
		return;
	}
	for (;;) {
		pier_msg *chunk;
		const unsigned char *data;
		size_t n;
		int pct;

		if (pier_received_request_recv_update(req, &chunk, 10000) < 0)
			break; /* the connection ended, or the client went quiet */
		data = pier_msg_body(chunk, &n);
		if (n == 0) {
			pier_msg_free(chunk);
			snprintf(text, sizeof(text), "%016" PRIx64, sum);
			if (got == size)
				pier_received_request_send_response(req, SVC_UPLOAD, text,
								    strlen(text), NULL, 0);
			else
				pier_received_request_send_error(req, "the file is short");
			break;
		}
		if (write(fd, data, n) != (ssize_t)n) {
			pier_msg_free(chunk);
			pier_received_request_send_error(req, "cannot write the file");
			break;
		}
		sum = checksum(sum, data, n);
		got += n;
		pier_msg_free(chunk);
		pct = size ? (int)(got * 100 / size) : 100;
		if (pct != last_pct) {
			snprintf(text, sizeof(text), "%d", pct);
			pier_received_request_send_update(req, SVC_PROGRESS, text, strlen(text),
							  NULL, 0);
			last_pct = pct;
		}
	}
	close(fd);
}

static void serve(pier_peer *peer, int dirfd)
{
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		if (req && pier_msg_header(m)->service_id == SVC_UPLOAD)
			receive_upload(req, m, dirfd);
		else if (req)
			pier_received_request_send_error(req, "this server only takes uploads");
		if (req)
			pier_received_request_free(req);
		pier_msg_free(m);
	}
}

static int run_server(const char *address, const char *dir)
{
	pier_listener *l;
	pier_peer *peer;
	char bound[256];
	int r, dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dirfd < 0)
		return fail(dir, -errno);
	r = pier_listener_new(&l, address, NULL);
	if (r < 0)
		return fail(address, r);
	/* The address as bound: the port a tcp://HOST:0 address got. */
	pier_listener_address(l, bound, sizeof(bound));
	printf("server: listening on %s, storing uploads in %s\n", bound, dir);
	while ((r = pier_listener_accept(l, &peer, -1)) == 0) {
		serve(peer, dirfd);
		pier_peer_free(peer);
	}
	pier_listener_free(l);
	close(dirfd);
	return fail("accept", r);
}

/* --- client ------------------------------------------------------------- */

/* Takes the progress updates that have come in, without waiting, and shows
 * the latest: on a terminal as a live line, elsewhere every quarter. */
static void show_progress(pier_sent_request *req, int *pct)
{
	bool tty = isatty(STDOUT_FILENO);
	pier_msg *m;

	while (pier_sent_request_recv_update(req, &m, 0) == 0) {
		char text[8] = "";
		size_t n;
		const char *b = pier_msg_body(m, &n);
		int was = *pct;

		memcpy(text, b, n < sizeof(text) - 1 ? n : sizeof(text) - 1);
		*pct = atoi(text);
		if (tty)
			printf("\rsending: %3d%%", *pct);
		else if (*pct / 25 != was / 25)
			printf("sending: %d%%\n", *pct);
		fflush(stdout);
		pier_msg_free(m);
	}
}

static int send_file(pier_peer *peer, const char *path)
{
	static unsigned char buf[CHUNK];
	uint64_t sum = CHECKSUM_START;
	char header[300], name[256], expect[32];
	pier_sent_request *req;
	struct stat st;
	pier_msg *m;
	ssize_t n;
	int fd, r, pct = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail(path, -errno);
	snprintf(name, sizeof(name), "%s", path);
	snprintf(header, sizeof(header), "%s %llu", basename(name), (unsigned long long)st.st_size);
	r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_UPLOAD, header,
				     strlen(header), NULL, 0, &req);
	if (r < 0) {
		close(fd);
		return fail("send", r);
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		sum = checksum(sum, buf, (size_t)n);
		r = pier_sent_request_send_update(req, SVC_CHUNK, buf, (size_t)n, NULL, 0);
		if (r < 0)
			break;
		show_progress(req, &pct);
	}
	close(fd);
	if (r == 0)
		r = pier_sent_request_send_update(req, SVC_CHUNK, NULL, 0, NULL, 0); /* the end */
	/* The last progress updates, then the response. */
	while (r == 0 && (r = pier_sent_request_recv_update(req, &m, 10000)) == 0)
		pier_msg_free(m);
	if (r == -PIER_ERESPONSE)
		r = pier_sent_request_recv_response(req, &m, 0);
	if (r < 0) {
		pier_sent_request_free(req);
		return fail("upload", r);
	}
	snprintf(expect, sizeof(expect), "%016" PRIx64, sum);
	{
		size_t len;
		const char *got = pier_msg_body(m, &len);

		if (pier_msg_is_error(m)) {
			printf("\nthe server refused: %.*s\n", (int)len, got);
			r = 1;
		} else if (len != strlen(expect) || memcmp(got, expect, len) != 0) {
			printf("\nchecksum MISMATCH: sent %s, the server got %.*s\n", expect, (int)len, got);
			r = 1;
		} else {
			printf("%ssent %s: %lld bytes, checksum %s verified by the server\n",
			       isatty(STDOUT_FILENO) ? "\r" : "", path, (long long)st.st_size, expect);
		}
	}
	pier_msg_free(m);
	pier_sent_request_free(req);
	return r;
}

static int run_send(const char *address, const char *path)
{
	pier_peer *peer;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0)
		return fail(address, r);
	r = send_file(peer, path);
	pier_peer_free(peer);
	return r;
}

/* Both sides in two processes, on a made-up file of `megabytes` MB. */
static int run_demo(int megabytes)
{
	char dir[] = "/tmp/file-transfer-XXXXXX", src[64], dst[64];
	static unsigned char buf[CHUNK];
	pier_peer *peer;
	int sv[2], status, fd, r = 1;
	pid_t child;

	if (!mkdtemp(dir))
		return fail("mkdtemp", -errno);
	snprintf(src, sizeof(src), "%s/source.bin", dir);
	snprintf(dst, sizeof(dst), "%s/received", dir);
	mkdir(dst, 0700);
	fd = open(src, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	for (int i = 0; fd >= 0 && i < megabytes * 16; i++) {
		for (size_t j = 0; j < sizeof(buf); j++)
			buf[j] = (unsigned char)(i * 31 + j * 7);
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
			break;
	}
	if (fd >= 0)
		close(fd);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail("socketpair", -errno);
	child = fork();
	if (child == 0) {
		int dirfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		close(sv[0]);
		if (dirfd < 0 || pier_peer_adopt(&peer, sv[1], NULL) < 0)
			_exit(1);
		serve(peer, dirfd);
		pier_peer_free(peer);
		_exit(0);
	}
	close(sv[1]);
	if (child > 0 && pier_peer_adopt(&peer, sv[0], NULL) == 0) {
		r = send_file(peer, src);
		pier_peer_free(peer);
	} else {
		close(sv[0]);
	}
	if (child > 0 && (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
			  WEXITSTATUS(status) != 0))
		r = 1;
	snprintf(src, sizeof(src), "%s/source.bin", dir);
	unlink(src);
	snprintf(src, sizeof(src), "%s/received/source.bin", dir);
	unlink(src);
	rmdir(dst);
	rmdir(dir);
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	/* Line by line even into a pipe or a log, and nothing buffered twice
	 * across fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "server") == 0 && argc == 4)
		return run_server(argv[2], argv[3]);
	if (strcmp(mode, "send") == 0 && argc == 4)
		return run_send(argv[2], argv[3]);
	if (strcmp(mode, "demo") == 0 && argc <= 3)
		return run_demo(argc == 3 ? atoi(argv[2]) : 16);
	fprintf(stderr, "usage: file-transfer server ADDRESS DIRECTORY\n"
			"       file-transfer send ADDRESS FILE\n"
			"       file-transfer demo [MEGABYTES]\n");
	return 2;
}
