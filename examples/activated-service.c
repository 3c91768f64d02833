/* SPDX-License-Identifier: MIT */
/*
 * A service as systemd runs it: started by its socket unit on the first
 * connection (socket activation), ready when it says so (Type=notify), and
 * stopped by SIGTERM, letting the requests in flight finish.  pier_server
 * does the serving: listeners, a bounded pool of workers, dispatch by
 * service id, the access check, and the stop.
 *
 *   systemd-socket-activate -l /tmp/square.sock activated-service
 *   pier call unix:///tmp/square.sock 1 12          (prints 144)
 *
 * Without a socket from systemd it listens at the address it is given:
 *   activated-service unix:///tmp/square.sock
 *
 * The units activated-service.socket and activated-service.service next
 * to this file install it as a system service.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier.h>

#define SVC_SQUARE 1
#define SVC_WHOAMI 2

static int square(void *ud, pier_peer *peer, void *peer_data, pier_msg *msg,
		  pier_received_request *req)
{
	char in[32] = "", out[32];
	size_t len;
	const char *body = pier_msg_body(msg, &len);
	long long n;

	memcpy(in, body, len < sizeof(in) - 1 ? len : sizeof(in) - 1);
	n = atoll(in);
	snprintf(out, sizeof(out), "%lld", n * n);
	pier_received_request_send_response(req, SVC_SQUARE, out, strlen(out), NULL, 0);
	return PIER_HANDLER_DONE;
}

/* What the service knows of its caller, and of itself. */
static int whoami(void *ud, pier_peer *peer, void *peer_data, pier_msg *msg,
		  pier_received_request *req)
{
	char out[128];
	int32_t pid = 0;
	uint32_t uid = 0;

	pier_peer_credentials(peer, &pid, &uid, NULL);
	snprintf(out, sizeof(out), "you are pid %d uid %u; I am pid %d", pid, uid, (int)getpid());
	pier_received_request_send_response(req, SVC_WHOAMI, out, strlen(out), NULL, 0);
	return PIER_HANDLER_DONE;
}

/* The access policy: processes of the service's own user (and root). */
static int on_connect(void *ud, pier_peer *peer, void **peer_data)
{
	uint32_t uid;

	if (pier_peer_credentials(peer, NULL, &uid, NULL) < 0)
		return 0; /* TCP: no credentials; a real service would check more */
	return uid == getuid() || uid == 0 ? 0 : -EACCES;
}

static void say(void *ud, int priority, const char *message)
{
	fprintf(stderr, "activated-service: %s\n", message);
}

static pier_server *server;

static void on_signal(int sig)
{
	pier_server_stop(server); /* async-signal-safe */
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "activated-service: %s: %s\n", what, pier_strerror(err));
	return 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	pier_config *cfg;
	char address[256];
	int r;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "usage: activated-service [ADDRESS]\n");
		return 2;
	}
	r = pier_config_new(&cfg);
	if (r < 0)
		return fail("config", r);
	pier_config_set_log(cfg, say, NULL);
	r = pier_server_new(&server, cfg);
	pier_config_free(cfg);
	if (r < 0)
		return fail("server", r);
	pier_server_handle_requests(server, SVC_SQUARE, square, NULL);
	pier_server_handle_requests(server, SVC_WHOAMI, whoami, NULL);
	pier_server_set_peer_hooks(server, on_connect, NULL, NULL);
	/* Sockets from systemd first; the variables go, so that nothing this
	 * process starts takes them for its own. */
	r = pier_server_listen_activated(server, NULL, 1);
	if (r == 0 && argc == 2)
		r = pier_server_listen(server, argv[1]);
	else if (r == 0)
		r = -EINVAL;
	if (r < 0)
		return fail(argc == 2 ? argv[1] : "no socket from systemd (LISTEN_FDS) and no ADDRESS", r);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	r = pier_server_start(server);
	if (r < 0)
		return fail("start", r);
	for (size_t i = 0; pier_server_address(server, i, address, sizeof(address)) == 0; i++)
		printf("activated-service: serving on %s\n", address);
	pier_server_wait(server, -1);
	printf("activated-service: stopped after %llu requests\n",
	       (unsigned long long)pier_server_stat(server, PIER_SERVER_STAT_REQUESTS));
	pier_server_free(server);
	return 0;
}
