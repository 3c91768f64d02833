/* SPDX-License-Identifier: MIT */
/*
 * One service, many clients: a pier_server accepts every client, checks
 * who it is in its connect hook (the kernel tells the pid, uid and gid of
 * a Unix socket's peer), and answers their requests on a fixed pool of
 * worker threads, however many clients come.  Only processes of the
 * service's own user are served; anybody else is turned away.
 *
 *   listener-service server unix:///tmp/service.sock        (terminal 1)
 *   listener-service client unix:///tmp/service.sock 100    (terminals 2..n)
 *   listener-service demo [CLIENTS]    (a server and CLIENTS client processes)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>

#define SVC_SQUARE 1

static int fail(const char *what, int err)
{
	fprintf(stderr, "listener-service: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* --- server ------------------------------------------------------------- */

static pier_server *srv;
static atomic_int served, clients_gone;
static int clients_expected; /* 0: serve until a signal */

/* Answers "square N". */
static int square(void *ud, pier_peer *peer, void *pd, pier_msg *m, pier_received_request *req)
{
	char text[32] = "", out[32];
	size_t len;
	const char *body = pier_msg_body(m, &len);
	long long n;

	memcpy(text, body, len < sizeof(text) - 1 ? len : sizeof(text) - 1);
	n = atoll(text);
	snprintf(out, sizeof(out), "%lld", n * n);
	pier_received_request_send_response(req, SVC_SQUARE, out, strlen(out), NULL, 0);
	atomic_fetch_add(&served, 1);
	return PIER_HANDLER_DONE;
}

/* The access policy: processes of this user only. */
static int on_connect(void *ud, pier_peer *peer, void **pd)
{
	int32_t pid = 0;
	uint32_t uid = 0;
	int r = pier_peer_credentials(peer, &pid, &uid, NULL);

	if (r < 0 || uid != getuid()) {
		printf("server: turned away pid %d (uid %u)\n", pid, uid);
		return -EACCES;
	}
	return 0;
}

static void on_disconnect(void *ud, pier_peer *peer, void *pd, int reason)
{
	if (atomic_fetch_add(&clients_gone, 1) + 1 == clients_expected)
		pier_server_stop(srv);
}

static void on_signal(int sig)
{
	pier_server_stop(srv); /* async-signal-safe */
}

/* Serves until `clients` clients have come and gone (0: until SIGINT or
 * SIGTERM).  Once it listens, it writes a byte to ready_fd (if not -1). */
static int run_server(const char *address, int clients, int ready_fd)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char bound[256];
	int r;

	clients_expected = clients;
	r = pier_server_new(&srv, NULL);
	if (r == 0)
		r = pier_server_handle_requests(srv, SVC_SQUARE, square, NULL);
	if (r == 0)
		r = pier_server_set_peer_hooks(srv, on_connect, on_disconnect, NULL);
	if (r == 0)
		r = pier_server_listen(srv, address);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (r == 0)
		r = pier_server_start(srv);
	if (r < 0) {
		pier_server_free(srv);
		return fail(address, r);
	}
	/* The address as bound: the port a tcp://HOST:0 address got. */
	pier_server_address(srv, 0, bound, sizeof(bound));
	printf("server: listening on %s\n", bound);
	if (ready_fd >= 0 && (write(ready_fd, "", 1) != 1 || close(ready_fd) < 0))
		pier_server_stop(srv);
	pier_server_wait(srv, -1);
	printf("server: served %d requests from %d clients\n", atomic_load(&served),
	       atomic_load(&clients_gone));
	pier_server_free(srv);
	return 0;
}

/* --- client ------------------------------------------------------------- */

/* Sends `count` requests, all before reading any answer, and checks them. */
static int run_client(const char *address, int count)
{
	pier_sent_request **reqs = calloc((size_t)count, sizeof(*reqs));
	pier_peer *peer;
	int r, good = 0;

	r = pier_peer_connect(&peer, address, NULL);
	if (r < 0) {
		free(reqs);
		return fail(address, r);
	}
	for (int i = 0; i < count && r == 0; i++) {
		char text[16];

		snprintf(text, sizeof(text), "%d", i);
		r = pier_writer_send_request(pier_peer_get_writer(peer), SVC_SQUARE, text,
					     strlen(text), NULL, 0, &reqs[i]);
	}
	for (int i = 0; i < count && reqs[i]; i++) {
		pier_msg *m;
		char expect[32];

		snprintf(expect, sizeof(expect), "%lld", (long long)i * i);
		if (pier_sent_request_recv_response(reqs[i], &m, 5000) == 0) {
			size_t len;
			const char *b = pier_msg_body(m, &len);

			good += len == strlen(expect) && memcmp(b, expect, len) == 0;
			pier_msg_free(m);
		}
		pier_sent_request_free(reqs[i]);
	}
	printf("client %d: %d of %d answers right\n", (int)getpid(), good, count);
	free(reqs);
	pier_peer_free(peer);
	return good == count ? 0 : 1;
}
static int run_demo(int clients)
{
	char address[64], byte;
	pid_t server, pids[64];
	int status, r = 0, ready[2];

	if (clients < 1 || clients > 64)
		clients = 8;
	snprintf(address, sizeof(address), "unix:///tmp/listener-service-%d.sock", (int)getpid());
	if (pipe(ready) < 0)
		return fail("pipe", -errno);
	server = fork();
	if (server == 0) {
		close(ready[0]);
		r = run_server(address, clients, ready[1]);
		fflush(stdout); /* _exit() does not */
		_exit(r);
	}
	close(ready[1]);
	/* The clients start once the server listens. */
	if (server < 0 || read(ready[0], &byte, 1) != 1) {
		close(ready[0]);
		return fail("server", -ECHILD);
	}
	close(ready[0]);
	for (int i = 0; i < clients; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			int rc = run_client(address, 200);

			fflush(stdout);
			_exit(rc);
		}
	}
	for (int i = 0; i < clients; i++)
		if (pids[i] < 0 || waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			r = 1;
	if (waitpid(server, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
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
		return run_server(argv[2], 0, -1);
	if (strcmp(mode, "client") == 0 && argc == 4)
		return run_client(argv[2], atoi(argv[3]));
	if (strcmp(mode, "demo") == 0 && argc <= 3)
		return run_demo(argc == 3 ? atoi(argv[2]) : 8);
	fprintf(stderr, "usage: listener-service server ADDRESS\n"
			"       listener-service client ADDRESS COUNT\n"
			"       listener-service demo [CLIENTS]\n");
	return 2;
}
