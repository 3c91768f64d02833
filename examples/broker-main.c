/* SPDX-License-Identifier: MIT */
/*
 * A broker in the middle (broker.c): workers register the service ids they
 * serve, clients send requests to the broker, which relays each to a
 * worker, and the updates of both sides, the response and their fds back
 * and forth for as long as the request lasts; stream messages on a topic
 * reach every peer subscribed to it.
 *
 * The worker here serves "shout": each requester update comes back as a
 * responder update in capitals, with the fds it carried; "end" gets the
 * response, the request's body in capitals, with the request's fds.
 *
 *   broker serve seqpacket:///tmp/broker.sock                (terminal 1)
 *   broker worker seqpacket:///tmp/broker.sock 1             (terminals 2, 3)
 *   broker subscribe seqpacket:///tmp/broker.sock 7          (terminal 4)
 *   pier call -u 1:one -u 1:end seqpacket:///tmp/broker.sock 1 hello
 *   pier send seqpacket:///tmp/broker.sock 7 news
 *   broker demo        (a broker, two workers, two subscribers, a client)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pier.h>

#include "broker.h"

#define SVC_SHOUT 1
#define TOPIC_NEWS 7
#define WAIT_MS 5000

static int fail(const char *what, int err)
{
	fprintf(stderr, "broker: %s: %s\n", what, pier_strerror(err));
	return 1;
}

/* A memfd holding text. */
static int memfd_with(const char *text)
{
	int fd = memfd_create("broker-example", MFD_CLOEXEC);
	size_t len = strlen(text);

	if (fd >= 0 && pwrite(fd, text, len, 0) != (ssize_t)len) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* What the file behind fd holds (its first bytes), as a string. */
static void fd_text(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	buf[n < 0 ? 0 : n] = '\0';
}

static void shout(char *out, size_t size, const void *body, size_t len)
{
	const char *in = body;
	size_t i;

	for (i = 0; i < len && i < size - 1; i++)
		out[i] = (char)(in[i] >= 'a' && in[i] <= 'z' ? in[i] - 32 : in[i]);
	out[i] = '\0';
}

/* One control request (register, subscribe) of one id; 0 once done. */
static int control(pier_peer *peer, int32_t op, int32_t id)
{
	unsigned char body[4];
	pier_sent_request *req;
	pier_msg *m;
	int r;

	broker_encode_ids(body, &id, 1, PIER_BYTE_ORDER_LITTLE);
	r = pier_writer_send_request(pier_peer_get_writer(peer), op, body, sizeof(body), NULL, 0,
				     &req);
	if (r < 0)
		return r;
	r = pier_sent_request_recv_response(req, &m, WAIT_MS);
	if (r == 0 && pier_msg_is_error(m)) {
		size_t len;
		const char *text = pier_msg_body(m, &len);

		fprintf(stderr, "broker: the broker says: %.*s\n", (int)len, text);
		r = -EPROTO;
	}
	if (r == 0)
		pier_msg_free(m);
	pier_sent_request_free(req);
	return r;
}

/* --- the broker ----------------------------------------------------------- */

/* What the broker has to say (its limits that do not fit the fd limit,
 * refusals), on standard error. */
static void log_line(void *userdata, int priority, const char *message)
{
	fprintf(stderr, "broker: %s\n", message);
}

/* Serves with lim (NULL: the defaults) until SIGINT or SIGTERM.  Once it
 * listens, it writes a byte to ready_fd (if not -1). */
static int run_broker(char **addresses, int n, const struct broker_limits *lim, int ready_fd)
{
	pier_config *cfg;
	pier_server *server;
	broker *b = NULL;
	char bound[256], summary[512];
	int r;

	r = pier_config_new(&cfg);
	if (r == 0)
		r = broker_new(&b, cfg, PIER_BYTE_ORDER_LITTLE, lim, log_line, NULL);
	pier_config_free(cfg);
	if (r < 0)
		return fail("cannot make the broker", r);
	server = broker_server(b);
	for (int i = 0; i < n && r == 0; i++)
		if ((r = pier_server_listen(server, addresses[i])) < 0)
			fail(addresses[i], r);
	broker_stop_on_signals(b);
	if (r == 0 && (r = pier_server_start(server)) < 0)
		fail("cannot start", r);
	if (r < 0) {
		broker_free(b);
		return 1;
	}
	for (int i = 0; i < n; i++) {
		/* The address as bound: the port a tcp://HOST:0 address got. */
		pier_server_address(server, (size_t)i, bound, sizeof(bound));
		printf("broker: listening on %s\n", bound);
	}
	if (ready_fd >= 0 && (write(ready_fd, "", 1) != 1 || close(ready_fd) < 0))
		pier_server_stop(server);
	pier_server_wait(server, -1);
	printf("broker: %s\n", broker_summary(b, summary, sizeof(summary)));
	broker_free(b);
	return 0;
}

/* --- a worker ------------------------------------------------------------- */

struct shout_job {
	pier_received_request *req; /* owned */
	pier_msg *m;                /* the request, with its fds: owned */
};

/* Serves one shout request, on a thread of its own: it lasts as long as
 * the client sends updates. */
static void *shout_job(void *arg)
{
	struct shout_job *j = arg;
	pier_received_request *req = j->req;
	unsigned int id = pier_received_request_id(req);
	bool end = false;
	size_t len;
	const char *body;
	char out[256];
	int fds[16];
	pier_msg *u;

	printf("worker %d: request %u\n", (int)getpid(), id);
	while (!end && pier_received_request_recv_update(req, &u, -1) == 0) {
		const struct pier_header *h = pier_msg_header(u);
		size_t nfds = broker_msg_fds(u, fds, 16);

		body = pier_msg_body(u, &len);
		end = len == 3 && memcmp(body, "end", 3) == 0;
		if (h->service_id == BROKER_CANCELLED) {
			/* The client is gone: whatever this sends is dropped. */
			printf("worker %d: request %u cancelled: %.*s\n", (int)getpid(), id, (int)len,
			       body);
			pier_msg_free(u);
			break;
		}
		if (!end) {
			shout(out, sizeof(out), body, len);
			pier_received_request_send_update(req, h->service_id, out, strlen(out), fds,
							  nfds);
		}
		pier_msg_free(u);
	}
	if (end) {
		body = pier_msg_body(j->m, &len);
		shout(out, sizeof(out), body, len);
		pier_received_request_send_response(req, SVC_SHOUT, out, strlen(out), fds,
						    broker_msg_fds(j->m, fds, 16));
		printf("worker %d: request %u answered\n", (int)getpid(), id);
	}
	/* Unanswered, it gets an error response. */
	pier_received_request_free(req);
	pier_msg_free(j->m);
	free(j);
	return NULL;
}

/* Registers for the services and serves them until the broker goes.
 * Once registered, it writes a byte to ready_fd (if not -1). */
static int run_worker(const char *address, char **ids, int n, int ready_fd)
{
	pier_received_request *req;
	pier_peer *peer;
	pier_msg *m;
	int r = pier_peer_connect(&peer, address, NULL);

	if (r < 0)
		return fail(address, r);
	for (int i = 0; i < n && r == 0; i++)
		r = control(peer, BROKER_REGISTER, atoi(ids[i]));
	if (r < 0) {
		pier_peer_free(peer);
		return fail("cannot register", r);
	}
	printf("worker %d: serving\n", (int)getpid());
	if (ready_fd >= 0 && (write(ready_fd, "", 1) != 1 || close(ready_fd) < 0))
		r = -EPIPE;
	while (r == 0 && pier_peer_recv(peer, &m, &req, -1) == 0) {
		struct shout_job *j = req ? malloc(sizeof(*j)) : NULL;
		pthread_t th;

		if (j) {
			*j = (struct shout_job){ req, m };
			if (pthread_create(&th, NULL, shout_job, j) == 0) {
				pthread_detach(th);
				continue;
			}
			free(j);
		}
		pier_received_request_free(req); /* answered with an error */
		pier_msg_free(m);
	}
	pier_peer_free(peer);
	return 0;
}

/* --- a subscriber --------------------------------------------------------- */

/* Prints the stream messages of the topics, count of them (0: until the
 * broker goes); each one's fd, if any, must hold its body.  Once
 * subscribed, it writes a byte to ready_fd (if not -1). */
static int run_subscriber(const char *address, char **topics, int n, int count, int ready_fd)
{
	pier_received_request *req;
	pier_peer *peer;
	pier_msg *m;
	int r = pier_peer_connect(&peer, address, NULL), got = 0, wrong = 0;

	if (r < 0)
		return fail(address, r);
	for (int i = 0; i < n && r == 0; i++)
		r = control(peer, BROKER_SUBSCRIBE, atoi(topics[i]));
	if (r < 0) {
		pier_peer_free(peer);
		return fail("cannot subscribe", r);
	}
	if (ready_fd >= 0 && (write(ready_fd, "", 1) != 1 || close(ready_fd) < 0))
		r = -EPIPE;
	while (r == 0 && (count == 0 || got < count) && pier_peer_recv(peer, &m, &req, -1) == 0) {
		size_t len;
		const char *body = pier_msg_body(m, &len);
		char text[256] = "";

		if (req) {
			pier_received_request_send_error(req, "a subscriber serves nothing");
			pier_received_request_free(req);
		} else {
			if (pier_msg_fd_count(m)) {
				fd_text(pier_msg_fd(m, 0), text, sizeof(text));
				wrong += strlen(text) != len || memcmp(text, body, len) != 0;
			}
			printf("subscriber %d: topic %d: %.*s%s%s\n", (int)getpid(),
			       pier_msg_header(m)->service_id, (int)len, body,
			       *text ? ", its fd holds: " : "", text);
			got++;
		}
		pier_msg_free(m);
	}
	pier_peer_free(peer);
	return wrong ? 1 : 0;
}

/* --- a client, and the demo ----------------------------------------------- */

/* What a message holds, printed: "BODY (fd: TEXT)". */
static void print_answer(const char *what, const pier_msg *m)
{
	size_t len;
	const char *body = pier_msg_body(m, &len);
	char text[256] = "";

	if (pier_msg_fd_count(m))
		fd_text(pier_msg_fd(m, 0), text, sizeof(text));
	printf("client: %s%s: %.*s%s%s%s\n", what, pier_msg_is_error(m) ? " (error)" : "",
	       (int)len, body, *text ? " (its fd holds: " : "", text, *text ? ")" : "");
}

/* A shout request through the broker with updates both ways, each with
 * an fd; and a request for a service nobody serves. */
static int run_client(pier_peer *peer)
{
	static const char *const words[] = { "one", "two", "three" };
	pier_writer *w = pier_peer_get_writer(peer);
	pier_sent_request *req;
	pier_msg *m;
	int fd = memfd_with("the request's fd"), r;
	bool right = true;

	r = pier_writer_send_request(w, SVC_SHOUT, "hello", 5, &fd, fd < 0 ? 0 : 1, &req);
	if (fd >= 0)
		close(fd);
	for (size_t i = 0; r == 0 && i < 3; i++) {
		fd = memfd_with(words[i]);
		r = pier_sent_request_send_update(req, SVC_SHOUT, words[i], strlen(words[i]), &fd,
						  fd < 0 ? 0 : 1);
		if (fd >= 0)
			close(fd);
		if (r == 0)
			r = pier_sent_request_recv_update(req, &m, WAIT_MS);
		if (r == 0) {
			print_answer("update", m);
			right &= pier_msg_fd_count(m) == 1;
			pier_msg_free(m);
		}
	}
	if (r == 0)
		r = pier_sent_request_send_update(req, SVC_SHOUT, "end", 3, NULL, 0);
	if (r == 0)
		r = pier_sent_request_recv_response(req, &m, WAIT_MS);
	if (r == 0) {
		print_answer("response", m);
		right &= !pier_msg_is_error(m) && pier_msg_fd_count(m) == 1;
		pier_msg_free(m);
	}
	if (req)
		pier_sent_request_free(req);
	if (r < 0)
		return fail("shout", r);
	/* Nobody serves 99. */
	r = pier_writer_send_request(w, 99, "anyone?", 7, NULL, 0, &req);
	if (r == 0) {
		r = pier_sent_request_recv_response(req, &m, WAIT_MS);
		pier_sent_request_free(req);
	}
	if (r == 0) {
		print_answer("service 99", m);
		right &= pier_msg_is_error(m);
		pier_msg_free(m);
	}
	return r < 0 ? fail("service 99", r) : !right;
}

/* Publishes count news, each with an fd holding its body. */
static int publish(pier_peer *peer, int count)
{
	int r = 0;

	for (int i = 1; i <= count && r == 0; i++) {
		char text[32];
		int fd;

		snprintf(text, sizeof(text), "news %d", i);
		fd = memfd_with(text);
		r = pier_writer_send_stream(pier_peer_get_writer(peer), TOPIC_NEWS, text, strlen(text),
					    &fd, fd < 0 ? 0 : 1);
		if (fd >= 0)
			close(fd);
	}
	return r < 0 ? fail("publish", r) : 0;
}

enum role { BROKER, WORKER, SUBSCRIBER };

/* Forks a process of role at address, and waits until it is ready. */
static pid_t spawn(enum role role, char *address)
{
	/* A handful of peers: limits whose fds fit the usual fd limits. */
	static const struct broker_limits small = { .max_peers = 16 };
	char svc[] = "1", topic[] = "7", byte;
	int ready[2], rc = 1;
	pid_t pid;

	if (pipe(ready) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(ready[0]);
		if (role == BROKER)
			rc = run_broker(&address, 1, &small, ready[1]);
		else if (role == WORKER)
			rc = run_worker(address, (char *[]){ svc }, 1, ready[1]);
		else
			rc = run_subscriber(address, (char *[]){ topic }, 1, 3, ready[1]);
		fflush(stdout); /* _exit() does not */
		_exit(rc);
	}
	close(ready[1]);
	if (pid > 0 && read(ready[0], &byte, 1) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		pid = -1;
	}
	close(ready[0]);
	return pid;
}

static bool exited_well(pid_t pid)
{
	int status;

	return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	       WEXITSTATUS(status) == 0;
}

static int run_demo(void)
{
	char address[128];
	pid_t middle, workers[2], subscribers[2];
	pier_peer *peer = NULL;
	int r = 1;

	snprintf(address, sizeof(address), "seqpacket:///tmp/broker-demo-%d.sock", (int)getpid());
	middle = spawn(BROKER, address);
	for (int i = 0; i < 2; i++) {
		workers[i] = middle > 0 ? spawn(WORKER, address) : -1;
		subscribers[i] = middle > 0 ? spawn(SUBSCRIBER, address) : -1;
	}
	if (workers[0] > 0 && workers[1] > 0 && subscribers[0] > 0 && subscribers[1] > 0 &&
	    pier_peer_connect(&peer, address, NULL) == 0) {
		r = run_client(peer);
		r |= publish(peer, 3);
		pier_peer_free(peer);
	}
	/* The subscribers leave after three news each; the workers once the
	 * broker stops. */
	for (int i = 0; i < 2; i++)
		r |= !exited_well(subscribers[i]);
	if (middle > 0)
		kill(middle, SIGTERM);
	for (int i = 0; i < 2; i++)
		r |= !exited_well(workers[i]);
	r |= !exited_well(middle);
	return r;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	/* Line by line even into a pipe or a log, and nothing buffered twice
	 * across fork(). */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(mode, "serve") == 0 && argc >= 3)
		return run_broker(argv + 2, argc - 2, NULL, -1);
	if (strcmp(mode, "worker") == 0 && argc >= 4)
		return run_worker(argv[2], argv + 3, argc - 3, -1);
	if (strcmp(mode, "subscribe") == 0 && argc >= 4)
		return run_subscriber(argv[2], argv + 3, argc - 3, 0, -1);
	if (strcmp(mode, "demo") == 0 && argc == 2)
		return run_demo();
	fprintf(stderr, "usage: broker serve ADDRESS...\n"
			"       broker worker ADDRESS SERVICE...\n"
			"       broker subscribe ADDRESS TOPIC...\n"
			"       broker demo\n");
	return 2;
}
