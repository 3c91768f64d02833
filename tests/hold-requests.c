/* SPDX-License-Identifier: MIT */
/*
 * A client that holds many unfinished requests on one connection, for
 * tests/tool.test: it opens N sum requests (service 3 of the conformance
 * services), sends each one update "1" and no "end", and says so once an
 * echo sent after them has come back (the server has read them all).  When
 * standard input ends, it finishes every request and counts the answers:
 * "1" from a sum the server kept, an error response from one it refused.
 *
 * Usage: hold-requests ADDRESS N.  Exits 0 if every request was answered
 * one way or the other and at least one was kept.
 *
 * hold-requests --unread ADDRESS MIB: a client that never reads.  It sends
 * MIB MiB of 64 KiB stream messages to service 7, which the server echoes
 * on service 8, reads none of the echoes, says "sent" and waits for
 * standard input to end.  Sends that the server stops taking (it ended the
 * connection, or stopped reading it) end the sending early.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier.h>

#define WAIT_MS 10000

static int fail(const char *what, int r)
{
	fprintf(stderr, "hold-requests: %s: %s\n", what, pier_strerror(r));
	return 1;
}

/* Sends an echo and waits for it: everything sent before it was read. */
static int echo(pier_peer *peer)
{
	pier_sent_request *req;
	pier_msg *m;
	int r = pier_writer_send_request(pier_peer_get_writer(peer), 1, "x", 1, NULL, 0, &req);

	if (r < 0)
		return r;
	r = pier_sent_request_recv_response(req, &m, WAIT_MS);
	if (r == 0)
		pier_msg_free(m);
	pier_sent_request_free(req);
	return r;
}

static int unread(const char *address, long mib)
{
	static char body[64 << 10];
	pier_config *cfg;
	pier_peer *peer;
	char buf[64];
	int r;

	if ((r = pier_config_new(&cfg)) < 0 || (r = pier_config_set_send_timeout(cfg, 2000)) < 0)
		return fail("config", r);
	r = pier_peer_connect(&peer, address, cfg);
	pier_config_free(cfg);
	if (r < 0)
		return fail(address, r);
	for (long i = 0; i < mib * 16 && r == 0; i++)
		r = pier_writer_send_stream(pier_peer_get_writer(peer), 7, body, sizeof(body),
					    NULL, 0);
	printf("sent\n");
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	pier_peer_free(peer);
	return 0;
}

int main(int argc, char **argv)
{
	pier_sent_request **reqs;
	pier_peer *peer;
	long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
	long kept = 0, refused = 0;
	char buf[64];
	int r;

	if (argc == 4 && strcmp(argv[1], "--unread") == 0 && atol(argv[3]) > 0)
		return unread(argv[2], atol(argv[3]));
	if (n <= 0) {
		fputs("usage: hold-requests ADDRESS N | --unread ADDRESS MIB\n", stderr);
		return 2;
	}
	if (!(reqs = calloc((size_t)n, sizeof(*reqs))))
		return fail("memory", -12);
	if ((r = pier_peer_connect(&peer, argv[1], NULL)) < 0)
		return fail(argv[1], r);
	for (long i = 0; i < n; i++) {
		r = pier_writer_send_request(pier_peer_get_writer(peer), 3, NULL, 0, NULL, 0, &reqs[i]);
		if (r == 0)
			r = pier_sent_request_send_update(reqs[i], 3, "1", 1, NULL, 0);
		/* A refused request is finished already: no update for it. */
		if (r < 0 && r != -PIER_EDONE)
			return fail("send", r);
	}
	if ((r = echo(peer)) < 0)
		return fail("echo", r);
	printf("holding %ld requests\n", n);
	fflush(stdout);
	while (read(STDIN_FILENO, buf, sizeof(buf)) > 0)
		;
	for (long i = 0; i < n; i++) {
		pier_msg *m;
		size_t len;
		const void *body;

		pier_sent_request_send_update(reqs[i], 3, "end", 3, NULL, 0);
		r = pier_sent_request_recv_response(reqs[i], &m, WAIT_MS);
		if (r < 0)
			return fail("a request got no answer", r);
		body = pier_msg_body(m, &len);
		if (pier_msg_is_error(m))
			refused++;
		else if (len == 1 && memcmp(body, "1", 1) == 0)
			kept++;
		pier_msg_free(m);
		pier_sent_request_free(reqs[i]);
	}
	printf("%ld kept, %ld refused\n", kept, refused);
	pier_peer_free(peer);
	free(reqs);
	return kept > 0 && kept + refused == n ? 0 : 1;
}
