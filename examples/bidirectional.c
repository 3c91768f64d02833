/* SPDX-License-Identifier: MIT */
/*
 * Both ways at once: while the client's request is open, the server calls
 * back into the client over the same connection, and only answers once the
 * client has answered it.  Either side of a Fizyr RPC connection can send
 * requests; each direction has its own request ids.
 *
 * The client asks for a greeting (service 1); to write it, the server asks
 * the client for the user's name (service 2), which the client serves from
 * a thread that reads its own incoming requests.
 *
 *   bidirectional server unix:///tmp/greeter.sock      (terminal 1)
 *   bidirectional client unix:///tmp/greeter.sock Ada  (terminal 2)
 *   bidirectional demo                                 (both, two processes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>

#define SVC_GREET 1
#define SVC_WHO 2

static int fail(const char *what, int err)
{
	fprintf(stderr, "bidirectional: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* --- server ------------------------------------------------------------- */

static void greet(pier_peer *peer, pier_received_request *req)
{
	pier_sent_request *ask;
	pier_msg *answer;
	char text[300];
	size_t len;
	const char *name;
	int r;

	/* Call back while the client's request is still open. */
	r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_WHO, "who are you?", 12,
				     NULL, 0, &ask);
	if (r == 0)
		r = pier_sent_request_recv_response(ask, &answer, 5000);
	if (r < 0) {
		pier_received_request_send_error(req, "could not ask who you are");
		if (ask)
			pier_sent_request_free(ask);
		return;
	}
	name = pier_msg_body(answer, &len);
	printf("server: the client says it is %.*s\n", (int)len, name);
	snprintf(text, sizeof(text), "Hello, %.*s!", (int)(len < 256 ? len : 256), name);
	pier_received_request_send_response(req, SVC_GREET, text, strlen(text), NULL, 0);
	pier_msg_free(answer);
	pier_sent_request_free(ask);
}

static void serve(pier_peer *peer)
{
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(peer, &m, &req, -1) == 0) {
		if (req && pier_msg_header(m)->service_id == SVC_GREET)
			greet(peer, req);
		else if (req)
			pier_received_request_send_error(req, "unknown service");
		if (req)
			pier_received_request_free(req);
		pier_msg_free(m);
	}
}

static int run_server(const char *address)
{
	pier_listener *l;
	pier_peer *peer;
	char bound[256];
	int r = pier_listener_new(&l, address, NULL);

	if (r < 0)
		return fail(address, r);
	/* The address as bound: the port a tcp://HOST:0 address got. */
	pier_listener_address(l, bound, sizeof(bound));
	printf("server: listening on %s\n", bound);
	while ((r = pier_listener_accept(l, &peer, -1)) == 0) {
		serve(peer);
		pier_peer_free(peer);
	}
	pier_listener_free(l);
	return fail("accept", r);
}

/* --- client ------------------------------------------------------------- */

struct client {
	pier_peer *peer;
	const char *name;
};

/* The client's own incoming requests: the server's questions. */
static void *answer_questions(void *arg)
{
	struct client *c = arg;
	pier_received_request *req;
	pier_msg *m;

	while (pier_peer_recv(c->peer, &m, &req, -1) == 0) {
		if (req && pier_msg_header(m)->service_id == SVC_WHO) {
			printf("client: the server asks who I am\n");
			pier_received_request_send_response(req, SVC_WHO, c->name, strlen(c->name),
							    NULL, 0);
		} else if (req) {
			pier_received_request_send_error(req, "unknown service");
		}
		if (req)
			pier_received_request_free(req);
		pier_msg_free(m);
	}
	return NULL;
}

static int run_client(pier_peer *peer, const char *name)
{
	struct client c = { peer, name };
	pier_sent_request *req;
	pthread_t th;
	pier_msg *m;
	size_t len;
	const char *text;
	int r;

	if (pthread_create(&th, NULL, answer_questions, &c) != 0)
		return fail("thread", -EAGAIN);
	r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_GREET, NULL, 0, NULL, 0, &req);
	if (r == 0) {
		r = pier_sent_request_recv_response(req, &m, 5000);
		pier_sent_request_free(req);
	}
	if (r == 0) {
		text = pier_msg_body(m, &len);
		printf("client: %s: %.*s\n", pier_msg_is_error(m) ? "error" : "greeting", (int)len,
		       text);
		r = pier_msg_is_error(m) ? -EPROTO : 0;
		pier_msg_free(m);
	}
	/* Closing ends the question thread's wait. */
	pier_writer_close(pier_peer_get_writer(peer));
	pthread_join(th, NULL);
	return r < 0 ? fail("greeting", r) : 0;
}

static int run_client_at(const char *address, const char *name)
{
	pier_peer *peer;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0)
		return fail(address, r);
	r = run_client(peer, name);
	pier_peer_free(peer);
	return r;
}

static int run_demo(void)
{
	pier_peer *peer;
	int sv[2], status, r = 1;
	pid_t child;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return fail("socketpair", -errno);
	child = fork();
	if (child == 0) {
		close(sv[0]);
		if (pier_peer_adopt(&peer, sv[1], NULL) < 0)
			_exit(1);
		serve(peer);
		pier_peer_free(peer);
		fflush(stdout); /* _exit() does not */
		_exit(0);
	}
	close(sv[1]);
	if (child > 0 && pier_peer_adopt(&peer, sv[0], NULL) == 0) {
		r = run_client(peer, "Ada");
		pier_peer_free(peer);
	} else {
		close(sv[0]);
	}
	if (child > 0 && (waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
			  WEXITSTATUS(status) != 0))
		r = 1;
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	/* Line by line even into a pipe or a log, and nothing buffered twice
	 * across fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "server") == 0 && argc == 3)
		return run_server(argv[2]);
	if (strcmp(mode, "client") == 0 && argc == 4)
		return run_client_at(argv[2], argv[3]);
	if (strcmp(mode, "demo") == 0 && argc == 2)
		return run_demo();
	fprintf(stderr, "usage: bidirectional server ADDRESS\n"
			"       bidirectional client ADDRESS NAME\n"
			"       bidirectional demo\n");
	return 2;
}
