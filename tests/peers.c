/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "peers.h"
#include "pki.h"

const char *const pair_kind_name[PAIR_KINDS] = {
	"tcp", "tcp6", "unix", "seqpacket", "unix-fd", "seqpacket-fd", "abstract",
#ifdef HAVE_OPENSSL
	"tls",
#endif
};

bool pair_kind_has_fds(enum pair_kind kind)
{
	return kind == PAIR_SEQPACKET || kind == PAIR_SEQPACKET_FD || kind == PAIR_ABSTRACT;
}

static void pair_socketpair(int type, const pier_config *ca, const pier_config *cb,
			    pier_peer **a, pier_peer **b)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(a, sv[0], ca), 0);
	ck_assert_int_eq(pier_peer_adopt(b, sv[1], cb), 0);
}

static void pair_listener(const char *address, const pier_config *ca, const pier_config *cb,
			  pier_peer **a, pier_peer **b)
{
	pier_listener *l;
	char bound[256];
	int r;

	r = pier_listener_new(&l, address, cb);
	ck_assert_msg(r == 0, "listen on %s: %s", address, pier_strerror(r));
	ck_assert_int_eq(pier_listener_address(l, bound, sizeof(bound)), 0);
	r = pier_peer_connect(a, bound, ca);
	ck_assert_msg(r == 0, "connect to %s: %s", bound, pier_strerror(r));
	/* Under valgrind, a TLS handshake on a busy machine can take seconds. */
	ck_assert_int_eq(pier_listener_accept(l, b, under_valgrind() ? 6 * WAIT : WAIT), 0);
	pier_listener_free(l);
}

#ifdef HAVE_OPENSSL
/* Connects over TLS with the test PKI: the client trusts the test CA, the
 * server shows its certificate for 127.0.0.1. */
static void pair_tls(const pier_config *ca, const pier_config *cb, pier_peer **a,
		     pier_peer **b)
{
	const struct pki *pki = pki_get();
	pier_config *client = (pier_config *)ca, *server = (pier_config *)cb;

	if (!client)
		ck_assert_int_eq(pier_config_new(&client), 0);
	if (!server)
		ck_assert_int_eq(pier_config_new(&server), 0);
	ck_assert_int_eq(pier_config_set_tls_ca(client, pki->ca, NULL), 0);
	ck_assert_int_eq(pier_config_set_tls_cert(server, pki->server, pki->server_key), 0);
	pair_listener("tls://127.0.0.1:0", client, server, a, b);
	if (client != ca)
		pier_config_free(client);
	if (server != cb)
		pier_config_free(server);
}
#endif

int ipv6_loopback(void)
{
	struct sockaddr_in6 any_port = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), r = 0;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&any_port, sizeof(any_port)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Ends the test, as passed, if this machine cannot make a pair of this
 * kind, saying why: Check has no "skipped", and the test's own fds and
 * threads end with its process (fork mode). */
static void skip_unless_possible(enum pair_kind kind)
{
	int r = kind == PAIR_TCP6 ? ipv6_loopback() : 0;

	if (r == 0)
		return;
	fprintf(stderr, "skipped a %s case: this machine has no IPv6 loopback (binding [::1]:0: %s)\n",
		pair_kind_name[kind], strerror(-r));
	fflush(NULL);
	_exit(EXIT_SUCCESS);
}

void make_pair_cfg(enum pair_kind kind, const pier_config *ca, const pier_config *cb,
		   pier_peer **a, pier_peer **b)
{
	static unsigned int n;
	char address[128];

	skip_unless_possible(kind);
	switch (kind) {
	case PAIR_TCP:
		pair_listener("tcp://127.0.0.1:0", ca, cb, a, b);
		break;
	case PAIR_TCP6:
		pair_listener("tcp://[::1]:0", ca, cb, a, b);
		break;
	case PAIR_UNIX:
	case PAIR_SEQPACKET:
		snprintf(address, sizeof(address), "%s:///tmp/pier-test-%d-%u.sock",
			 kind == PAIR_UNIX ? "unix" : "seqpacket", getpid(), n++);
		pair_listener(address, ca, cb, a, b);
		break;
	case PAIR_ABSTRACT:
		snprintf(address, sizeof(address), "seqpacket://@pier-test-%d-%u", getpid(), n++);
		pair_listener(address, ca, cb, a, b);
		break;
	case PAIR_UNIX_FD:
		pair_socketpair(SOCK_STREAM, ca, cb, a, b);
		break;
	case PAIR_SEQPACKET_FD:
		pair_socketpair(SOCK_SEQPACKET, ca, cb, a, b);
		break;
#ifdef HAVE_OPENSSL
	case PAIR_TLS:
		pair_tls(ca, cb, a, b);
		break;
#endif
	default:
		ck_abort_msg("no pair kind %d", kind);
	}
}

void make_pair(enum pair_kind kind, pier_peer **a, pier_peer **b)
{
	make_pair_cfg(kind, NULL, NULL, a, b);
}

pier_sent_request *send_request(pier_peer *p, int32_t service, const char *body)
{
	pier_sent_request *req = NULL;
	int r = pier_writer_send_request(pier_peer_get_writer(p), service, body, strlen(body),
					 NULL, 0, &req);

	ck_assert_msg(r == 0, "send_request: %s", pier_strerror(r));
	return req;
}

pier_received_request *recv_request(pier_peer *p, pier_msg **msg)
{
	pier_received_request *req = NULL;
	int r = pier_peer_recv(p, msg, &req, WAIT);

	ck_assert_msg(r == 0, "recv: %s", pier_strerror(r));
	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(pier_msg_header(*msg)->type, PIER_MSG_REQUEST);
	return req;
}

void assert_body(const pier_msg *m, const char *body)
{
	size_t len;
	const char *b = pier_msg_body(m, &len);

	ck_assert_msg(len == strlen(body) && memcmp(b, body, len) == 0,
		      "body \"%.*s\", expected \"%s\"", (int)len, b, body);
}

void assert_msg(const pier_msg *m, enum pier_msg_type type, int32_t service, const char *body)
{
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(pier_msg_header(m)->type, type);
	ck_assert_int_eq(pier_msg_header(m)->service_id, service);
	assert_body(m, body);
}

int memfd_with(const char *content)
{
	int fd = memfd_create("pier-test", MFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	return fd;
}

char *read_fd(int fd)
{
	struct stat st;
	char *buf;

	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = calloc(1, (size_t)st.st_size + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	return buf;
}

void open_request(pier_peer *a, pier_peer *b, int32_t service, const char *body,
		  pier_sent_request **sr, pier_received_request **rr)
{
	pier_msg *m;

	*sr = send_request(a, service, body);
	*rr = recv_request(b, &m);
	assert_msg(m, PIER_MSG_REQUEST, service, body);
	pier_msg_free(m);
}

void round_trip(pier_peer *a, pier_peer *b, const char *request, const char *response)
{
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;

	open_request(a, b, 1, request, &sr, &rr);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, response, strlen(response),
							     NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv_response(sr, &m, WAIT), 0);
	assert_msg(m, PIER_MSG_RESPONSE, 1, response);
	pier_msg_free(m);
	pier_received_request_free(rr);
	pier_sent_request_free(sr);
}

pid_t thread_id(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* The system call thread tid is in, or -1 if it runs or cannot be known. */
static long syscall_of(pid_t tid)
{
	char path[64];
	long nr = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%ld", &nr) != 1) /* "running" */
		nr = -1;
	fclose(f);
	return nr;
}

/* Its state, as /proc shows it: 'S' while it sleeps, waiting. */
static char state_of(pid_t tid)
{
	char path[64], buf[512], *end;
	size_t n;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	end = strrchr(buf, ')'); /* after the command's name */
	return end && end[1] == ' ' ? end[2] : 0;
}

/* Whether system call nr reads a socket: recvmsg, or recv() (recvfrom,
 * or recv itself where the kernel has that call). */
static bool socket_read(long nr)
{
#ifdef SYS_recv
	if (nr == SYS_recv)
		return true;
#endif
	return nr == SYS_recvmsg || nr == SYS_recvfrom;
}

bool thread_waits(pid_t tid, bool reading)
{
	long nr;

	if (tid <= 0)
		return false;
	nr = syscall_of(tid);
	/* Still in that call after it was seen asleep. */
	if (nr < 0 || state_of(tid) != 'S' || syscall_of(tid) != nr)
		return false;
#ifdef SYS_poll
	if (nr == SYS_poll)
		return true;
#endif
	if (nr == SYS_ppoll || socket_read(nr))
		return true;
	return !reading && nr == SYS_futex;
}

bool thread_in_socket_read(pid_t tid)
{
	return tid > 0 && socket_read(syscall_of(tid)) && state_of(tid) == 'S' &&
	       socket_read(syscall_of(tid));
}

bool under_valgrind(void)
{
	const char *preload = getenv("LD_PRELOAD");

	return preload && strstr(preload, "vgpreload");
}

bool plain_memory(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(memory_sanitizer)
	return false;
#endif
#endif
	return !under_valgrind();
}

void test_log_collect(void *userdata, int priority, const char *message)
{
	struct test_log *log = userdata;

	pthread_mutex_lock(&log->mu);
	if (log->n < TEST_LOG_LINES) {
		snprintf(log->lines[log->n], sizeof(log->lines[0]), "%s", message);
		log->priority[log->n] = priority;
		clock_gettime(CLOCK_MONOTONIC, &log->when[log->n]);
	}
	log->n++;
	pthread_cond_broadcast(&log->cond);
	pthread_mutex_unlock(&log->mu);
}

void test_log_init(struct test_log *log)
{
	pthread_condattr_t a;

	memset(log, 0, sizeof(*log));
	pthread_mutex_init(&log->mu, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&log->cond, &a);
	pthread_condattr_destroy(&a);
}

unsigned int test_log_wait(struct test_log *log, const char *text, unsigned int from)
{
	struct timespec deadline;
	unsigned int i = from;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WAIT / 1000;
	pthread_mutex_lock(&log->mu);
	for (;;) {
		for (; i < log->n && i < TEST_LOG_LINES; i++) {
			if (strstr(log->lines[i], text)) {
				pthread_mutex_unlock(&log->mu);
				return i;
			}
		}
		if (pthread_cond_timedwait(&log->cond, &log->mu, &deadline) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&log->mu);
	ck_abort_msg("no line with \"%s\" logged (%u lines)", text, log->n);
	return 0;
}

struct timespec deadline_in(int timeout_ms)
{
	struct timespec ts;

	if (timeout_ms < 0)
		timeout_ms = 0;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

bool deadline_passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

bool wait_tick(const struct timespec *deadline)
{
	const struct timespec pause = { 0, 1000000 };

	if (deadline_passed(deadline))
		return false;
	nanosleep(&pause, NULL);
	return true;
}

long rss_kib(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%ld %ld", &pages, &rss), 2);
	fclose(f);
	return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

int open_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

int accepted_sockets(unsigned int port)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss), tlen = sizeof(int), llen = sizeof(int);
		int fd = atoi(e->d_name), listening = 0, type = 0;
		unsigned int local;

		/* Other threads open and close fds meanwhile: one that went
		 * fails a call below, and does not count. */
		if (e->d_name[0] == '.' || fd == dirfd(d) ||
		    getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			continue;
		if (ss.ss_family == AF_INET)
			local = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			local = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		else
			continue;
		if (local != port ||
		    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM ||
		    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &llen) < 0 || listening)
			continue;
		n++;
	}
	closedir(d);
	return n;
}

void no_fd_left(struct rlimit *saved)
{
	struct rlimit low;
	int lowest_free = fcntl(0, F_DUPFD_CLOEXEC, 3);

	ck_assert_int_ge(lowest_free, 3);
	close(lowest_free);
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, saved), 0);
	low = *saved;
	low.rlim_cur = (rlim_t)lowest_free;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
}
