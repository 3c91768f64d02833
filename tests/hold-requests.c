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

int main(int argc, char **argv)
{
	pier_sent_request **reqs;
	pier_peer *peer;
	long n = argc == 3 ? strtol(argv[2], NULL, 10) : 0;
	long kept = 0, refused = 0;
	char buf[64];
	int r;

	if (n <= 0) {
		fputs("usage: hold-requests ADDRESS N\n", stderr);
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
