/* SPDX-License-Identifier: MIT */
/* Addresses, listeners, accepting, peer information, shared loops. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "loop.h"
#include "peers.h"

static void temp_path(char *buf, size_t len, const char *scheme)
{
	static unsigned int n;

	snprintf(buf, len, "%s:///tmp/pier-listener-%d-%u.sock", scheme, getpid(), n++);
}

/* The resolver, interposed: the library's calls come here, and fail with
 * fake_gai_error when it is set. */
static int fake_gai_error;

int getaddrinfo(const char *restrict node, const char *restrict service,
		const struct addrinfo *restrict hints, struct addrinfo **restrict res)
{
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

	if (fake_gai_error)
		return fake_gai_error;
	*(void **)&real = dlsym(RTLD_NEXT, "getaddrinfo");
	return real(node, service, hints, res);
}

/* bind() and listen(), interposed: the mode of the last Unix socket file
 * bind() made, right after bind() and when listen() started on it. */
static struct sockaddr_un bound;
static mode_t mode_at_bind, mode_at_listen;

static mode_t file_mode(const struct sockaddr_un *un)
{
	struct stat st;

	return lstat(un->sun_path, &st) < 0 ? (mode_t)-1 : st.st_mode & 07777;
}

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t);
	int r;

	*(void **)&real = dlsym(RTLD_NEXT, "bind");
	r = real(fd, addr, len);
	if (r == 0 && addr->sa_family == AF_UNIX && len <= sizeof(bound)) {
		memset(&bound, 0, sizeof(bound));
		memcpy(&bound, addr, len);
		mode_at_bind = bound.sun_path[0] ? file_mode(&bound) : (mode_t)-1;
	}
	return r;
}

int listen(int fd, int backlog)
{
	int (*real)(int, int);

	*(void **)&real = dlsym(RTLD_NEXT, "listen");
	if (bound.sun_path[0])
		mode_at_listen = file_mode(&bound);
	return real(fd, backlog);
}

/* accept4(), interposed: with fake_accept_errno set, the next call accepts
 * the connection, closes it and fails with that errno, as Linux does with
 * a network error already pending on the new socket (the epoll backend's
 * accept4() comes here; io_uring's does not). */
static atomic_int fake_accept_errno; /* set by the test, read by the loop */

int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	int (*real)(int, struct sockaddr *, socklen_t *, int);
	int r, e;

	*(void **)&real = dlsym(RTLD_NEXT, "accept4");
	r = real(fd, addr, addrlen, flags);
	if (r >= 0 && (e = atomic_exchange(&fake_accept_errno, 0)) != 0) {
		close(r);
		errno = e;
		return -1;
	}
	return r;
}

START_TEST(bad_addresses)
{
	static const struct {
		const char *address;
		int err;
	} cases[] = {
		{ "", -EINVAL },
		{ "tcp:/127.0.0.1:1", -EINVAL },
		{ "foo://bar", -EPROTONOSUPPORT },
		{ "tcp://127.0.0.1", -EINVAL },
		{ "tcp://127.0.0.1:", -EINVAL },
		{ "tcp://127.0.0.1:12x", -EINVAL },
		/* ports are decimal numbers of 16 bits, never service names */
		{ "tcp://127.0.0.1:99999", -EINVAL },
		{ "tcp://127.0.0.1:65536", -EINVAL },
		{ "tcp://127.0.0.1:18446744073709551617", -EINVAL },
		{ "tcp://127.0.0.1:-1", -EINVAL },
		{ "tcp://127.0.0.1:+80", -EINVAL },
		{ "tcp://127.0.0.1: 80", -EINVAL },
		{ "tcp://127.0.0.1:0x50", -EINVAL },
		{ "tcp://127.0.0.1:http", -EINVAL },
		{ "tcp://localhost:http", -EINVAL },
		{ "tcp://::1:5000", -EINVAL },
		{ "tcp://[::1:5000", -EINVAL },
		{ "unix://", -EINVAL },
		{ "seqpacket://@", -EINVAL },
		{ "unix:///aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		  -ENAMETOOLONG },
	};
	pier_listener *l = NULL;
	pier_peer *p = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(pier_peer_connect(&p, cases[i].address, NULL) == cases[i].err,
			      "connect %s", cases[i].address);
		ck_assert_msg(pier_listener_new(&l, cases[i].address, NULL) == cases[i].err,
			      "listen %s", cases[i].address);
	}
	ck_assert_ptr_null(p);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(pier_peer_connect(NULL, "tcp://127.0.0.1:1", NULL), -EINVAL);
	ck_assert_int_eq(pier_peer_connect(&p, NULL, NULL), -EINVAL);
}
END_TEST

/* Port 0 is "any free port" to a listener, and no port to connect to. */
START_TEST(port_zero)
{
	char address[128];
	pier_listener *l;
	pier_peer *p = NULL;
	unsigned long port;

	ck_assert_int_eq(pier_peer_connect(&p, "tcp://127.0.0.1:0", NULL), -EINVAL);
	ck_assert_int_eq(pier_peer_connect(&p, "tcp://127.0.0.1:00000", NULL), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	port = strtoul(strrchr(address, ':') + 1, NULL, 10);
	ck_assert(port >= 1 && port <= 65535);
	pier_listener_free(l);
}
END_TEST

/* Each resolver failure has its own code: a name that does not exist is
 * not a route that is missing, and a resolver that did not answer is
 * neither. */
START_TEST(resolver_errors)
{
	static const struct {
		int gai, err;
	} cases[] = {
		{ EAI_NONAME, -PIER_EHOSTNOTFOUND },
		{ EAI_NODATA, -PIER_EHOSTNOTFOUND },
		{ EAI_AGAIN, -PIER_ERESOLVER },
		{ EAI_FAIL, -PIER_ERESOLVER },
		{ EAI_ADDRFAMILY, -EHOSTUNREACH },
		{ EAI_MEMORY, -ENOMEM },
	};
	pier_listener *l = NULL;
	pier_peer *p = NULL;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		fake_gai_error = cases[i].gai;
		ck_assert_int_eq(pier_peer_connect(&p, "tcp://camera.example:5000", NULL),
				 cases[i].err);
		ck_assert_int_eq(pier_listener_new(&l, "tcp://camera.example:5000", NULL),
				 cases[i].err);
	}
	ck_assert_ptr_null(p);
	ck_assert_ptr_null(l);
	ck_assert_str_eq(pier_strerror(-PIER_EHOSTNOTFOUND),
			 "Host name not found (check its spelling, or use an IP address)");
	ck_assert_str_eq(pier_strerror(PIER_ERESOLVER),
			 "Host name lookup failed: the name server did not answer (try again later)");
}
END_TEST

START_TEST(connect_failures)
{
	char address[128];
	pier_listener *l;
	pier_peer *p = NULL;
	int r;

	/* nothing listens there */
	temp_path(address, sizeof(address), "unix");
	ck_assert_int_eq(pier_peer_connect(&p, address, NULL), -ENOENT);
	ck_assert_int_eq(pier_peer_connect(&p, "seqpacket://@pier-nobody-here", NULL),
			 -ECONNREFUSED);
	/* a port that was just free */
	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	pier_listener_free(l);
	ck_assert_int_eq(pier_peer_connect(&p, address, NULL), -ECONNREFUSED);
	/* a name that cannot resolve (.invalid never does: RFC 6761), or
	 * PIER_ERESOLVER where no name server answers */
	r = pier_peer_connect(&p, "tcp://no-such-host.invalid:1", NULL);
	ck_assert_msg(r == -PIER_EHOSTNOTFOUND || r == -PIER_ERESOLVER, "%s", pier_strerror(r));
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(accept_timeouts)
{
	pier_listener *l;
	pier_peer *p = NULL;
	struct pollfd pfd;
	char address[128];
	pier_peer *a;

	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_accept(l, &p, 0), -EAGAIN);
	ck_assert_int_eq(pier_listener_accept(l, &p, 50), -ETIMEDOUT);
	ck_assert_ptr_null(p);
	pfd = (struct pollfd){ .fd = pier_listener_fd(l), .events = POLLIN };
	ck_assert_int_ge(pfd.fd, 0);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	ck_assert_int_eq(pier_peer_connect(&a, address, NULL), 0);
	ck_assert_int_eq(poll(&pfd, 1, WAIT), 1);
	ck_assert_int_eq(pier_listener_accept(l, &p, 0), 0);
	ck_assert_int_eq(poll(&pfd, 1, 0), 0);
	pier_peer_free(p);
	pier_peer_free(a);
	pier_listener_free(l);
}
END_TEST

START_TEST(peer_info_unix)
{
	char address[128], remote[128];
	pier_listener *l;
	pier_peer *a, *b;
	int32_t pid;
	uint32_t uid, gid;

	temp_path(address, sizeof(address), _i ? "seqpacket" : "unix");
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, remote, sizeof(remote)), 0);
	ck_assert_str_eq(remote, address);
	ck_assert_int_eq(pier_peer_connect(&a, address, NULL), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	ck_assert_int_eq(pier_peer_credentials(b, &pid, &uid, &gid), 0);
	ck_assert_int_eq(pid, getpid());
	ck_assert_uint_eq(uid, getuid());
	ck_assert_uint_eq(gid, getgid());
	ck_assert_int_eq(pier_peer_credentials(a, &pid, NULL, NULL), 0);
	ck_assert_int_eq(pid, getpid());
	/* the client's view names the listener's path */
	ck_assert_int_eq(pier_peer_remote_address(a, remote, sizeof(remote)), 0);
	ck_assert_str_eq(remote, address);
	ck_assert_int_eq(pier_peer_remote_address(a, remote, 4), -ENAMETOOLONG);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l);
	/* the listener removes its socket file */
	ck_assert_int_eq(access(address + strlen(_i ? "seqpacket://" : "unix://"), F_OK), -1);
}
END_TEST

START_TEST(peer_info_tcp)
{
	char address[128], remote[128], local[128];
	pier_listener *l;
	pier_peer *a, *b;

	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	ck_assert_int_eq(strncmp(address, "tcp://127.0.0.1:", 16), 0);
	ck_assert_int_eq(pier_peer_connect(&a, address, NULL), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	ck_assert_int_eq(pier_peer_remote_address(a, remote, sizeof(remote)), 0);
	ck_assert_str_eq(remote, address);
	ck_assert_int_eq(pier_peer_remote_address(b, local, sizeof(local)), 0);
	ck_assert_int_eq(strncmp(local, "tcp://127.0.0.1:", 16), 0);
	ck_assert_str_ne(local, address);
	ck_assert_int_eq(pier_peer_credentials(b, NULL, NULL, NULL), -ENOTSUP);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l);
}
END_TEST

/* A stale socket file is removed; anything else at the path is left alone. */
START_TEST(stale_socket_files)
{
	char address[128];
	const char *path;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	pier_listener *l, *l2;
	int fd;

	temp_path(address, sizeof(address), "unix");
	path = address + strlen("unix://");
	/* a socket file whose owner is gone */
	strcpy(un.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	close(fd);
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), 0);
	/* a live listener is not taken over */
	ck_assert_int_eq(pier_listener_new(&l2, address, NULL), -EADDRINUSE);
	pier_listener_free(l);
	/* a regular file is never removed */
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), -EADDRINUSE);
	ck_assert_int_eq(access(path, F_OK), 0);
	unlink(path);
}
END_TEST

/* Accepted peers share the listener's loop; one explicit loop can serve a
 * listener and clients alike. */
START_TEST(shared_loop)
{
	enum { N = 20 };
	pier_loop *loop;
	pier_config *cfg;
	pier_listener *l;
	pier_peer *clients[N], *servers[N];
	char address[128];

	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_ptr_nonnull(pier_loop_backend(loop)); /* test-backend checks which */
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	ck_assert_ptr_null(pier_loop_unref(loop)); /* the config holds it */
	temp_path(address, sizeof(address), "seqpacket");
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(pier_peer_connect(&clients[i], address, cfg), 0);
		ck_assert_int_eq(pier_listener_accept(l, &servers[i], WAIT), 0);
	}
	pier_listener_free(l);
	pier_config_free(cfg);
	for (int i = 0; i < N; i++) {
		pier_sent_request *sr = send_request(clients[i], i, "ping");
		pier_received_request *rr;
		pier_msg *m;

		rr = recv_request(servers[i], &m);
		pier_msg_free(m);
		ck_assert_int_eq(pier_received_request_send_response(rr, i, "pong", 4, NULL, 0), 0);
		ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
		assert_msg(m, PIER_MSG_RESPONSE, i, "pong");
		pier_msg_free(m);
		pier_sent_request_free(sr);
		pier_received_request_free(rr);
	}
	for (int i = 0; i < N; i++) {
		pier_peer_free(clients[i]);
		pier_peer_free(servers[i]);
	}
}
END_TEST

/* Connections the application never accepted are closed with the listener. */
START_TEST(unaccepted_peers)
{
	pier_listener *l;
	pier_peer *clients[5];
	char address[128];
	pier_received_request *rr;
	pier_msg *m;

	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pier_peer_connect(&clients[i], address, NULL), 0);
	/* The listener's loop has accepted them all: none is left in the
	 * kernel's backlog, which would reset it when the listener goes. */
	wait_until(accepted_sockets((unsigned int)atoi(strrchr(address, ':') + 1)) == 5, WAIT);
	pier_listener_free(l);
	for (int i = 0; i < 5; i++) {
		/* Closed by pier. */
		int r = pier_peer_recv(clients[i], &m, &rr, WAIT);

		ck_assert_msg(r == -PIER_ECLOSED, "%s", pier_strerror(r));
		pier_peer_free(clients[i]);
	}
}
END_TEST

/* pier_peer_adopt takes the fd only when it succeeds. */
START_TEST(adopt_ownership)
{
	pier_peer *p = NULL;
	int fd = memfd_with("not a socket"), sv[2];

	ck_assert_int_eq(pier_peer_adopt(&p, fd, NULL), -ENOTSOCK);
	ck_assert_int_eq(fcntl(fd, F_GETFD) >= 0, 1); /* still the caller's */
	close(fd);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], NULL), -EPROTONOSUPPORT);
	close(sv[0]);
	close(sv[1]);
	ck_assert_int_eq(pier_peer_adopt(&p, -1, NULL), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0); /* no CLOEXEC */
	ck_assert_int_eq(pier_peer_adopt(&p, sv[0], NULL), 0);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1); /* taken */
	close(sv[1]);
	pier_peer_free(p);
}
END_TEST

/* A connected TCP socket made elsewhere becomes a peer too. */
START_TEST(adopt_tcp)
{
	pier_listener *l;
	pier_peer *a, *b;
	pier_sent_request *sr;
	pier_received_request *rr;
	pier_msg *m;
	char address[128];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int fd;

	ck_assert_int_eq(pier_listener_new(&l, "tcp://127.0.0.1:0", NULL), 0);
	ck_assert_int_eq(pier_listener_address(l, address, sizeof(address)), 0);
	ck_assert_int_eq(inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr), 1);
	sin.sin_port = htons((uint16_t)atoi(strrchr(address, ':') + 1));
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, len), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, fd, NULL), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	pier_listener_free(l);
	sr = send_request(a, 1, "adopted");
	rr = recv_request(b, &m);
	assert_body(m, "adopted");
	pier_msg_free(m);
	ck_assert_int_eq(pier_received_request_send_response(rr, 1, "ok", 2, NULL, 0), 0);
	ck_assert_int_eq(pier_sent_request_recv(sr, &m, WAIT), 0);
	assert_body(m, "ok");
	pier_msg_free(m);
	pier_sent_request_free(sr);
	pier_received_request_free(rr);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* A listener that never accepts: once its backlog is full, connecting
 * waits for the connect timeout and no longer. */
START_TEST(connect_timeout_full_backlog)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char address[128];
	pier_config *cfg;
	pier_peer *p[8];
	int lfd, n = 0, r;

	temp_path(address, sizeof(address), "unix");
	strcpy(un.sun_path, address + strlen("unix://"));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&un, sizeof(un)), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_connect_timeout(cfg, 100), 0);
	while ((r = pier_peer_connect(&p[n], address, cfg)) == 0)
		ck_assert_int_lt(++n, 8);
	ck_assert_int_eq(r, -ETIMEDOUT);
	ck_assert_int_ge(n, 1);
	while (n > 0)
		pier_peer_free(p[--n]);
	pier_config_free(cfg);
	close(lfd);
	unlink(un.sun_path);
}
END_TEST

/* --- socket file permissions --------------------------------------------- */

START_TEST(socket_mode_arguments)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_socket_mode(NULL, 0660, (gid_t)-1), -EINVAL);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 01777, (gid_t)-1), -EINVAL);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 02770, (gid_t)-1), -EINVAL);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 04700, (gid_t)-1), -EINVAL);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 0140777, (gid_t)-1), -EINVAL);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 0660, (gid_t)-1), 0);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 0, 0), 0);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, 0777, 12345), 0);
	pier_config_free(cfg);
}
END_TEST

static pier_config *mode_config(mode_t mode, gid_t gid)
{
	pier_config *cfg;

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_socket_mode(cfg, mode, gid), 0);
	return cfg;
}

static struct stat stat_socket(const char *address)
{
	struct stat st;

	ck_assert_int_eq(lstat(strstr(address, "://") + 3, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	return st;
}

/* The file gets exactly the bits asked for, whatever the umask takes away
 * or would have let through; the umask is left alone. */
START_TEST(socket_mode_applied)
{
	static const struct {
		mode_t umask, mode;
	} cases[] = {
		{ 022, 0660 }, /* the umask took bits away: widened */
		{ 0, 0600 },   /* the umask let more through: narrowed */
		{ 077, 0666 },
		{ 0, 0 },      /* as the umask makes it */
		{ 027, 0 },
	};
	const char *scheme = _i ? "seqpacket" : "unix";

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pier_config *cfg = mode_config(cases[i].mode, (gid_t)-1);
		mode_t want = cases[i].mode ? cases[i].mode : 0777 & ~cases[i].umask;
		char address[128];
		pier_listener *l;
		pier_peer *a, *b;

		umask(cases[i].umask);
		temp_path(address, sizeof(address), scheme);
		ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
		ck_assert_uint_eq(umask(0), cases[i].umask);
		ck_assert_msg((stat_socket(address).st_mode & 07777) == want,
			      "umask %03o, mode %03o: the file has %03o", cases[i].umask,
			      cases[i].mode, stat_socket(address).st_mode & 07777);
		/* never looser than asked, and final before anyone can
		 * connect */
		ck_assert_msg((mode_at_bind & ~want) == 0, "mode %03o: %03o after bind()",
			      cases[i].mode, mode_at_bind);
		ck_assert_msg(mode_at_listen == want, "mode %03o: %03o at listen()",
			      cases[i].mode, mode_at_listen);
		/* peers ignore the setting */
		ck_assert_int_eq(pier_peer_connect(&a, address, cfg), 0);
		ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
		pier_peer_free(a);
		pier_peer_free(b);
		pier_listener_free(l);
		pier_config_free(cfg);
	}
}
END_TEST

/* A group this process may give its files: any as root, else one of its
 * supplementary groups other than the one files get anyway. */
static bool other_group(gid_t *gid)
{
	gid_t groups[256];
	int n;

	if (geteuid() == 0) {
		*gid = 4242;
		return true;
	}
	n = getgroups(256, groups);
	for (int i = 0; i < n; i++) {
		if (groups[i] != getegid()) {
			*gid = groups[i];
			return true;
		}
	}
	return false;
}

START_TEST(socket_group_applied)
{
	char address[128];
	pier_config *cfg;
	pier_listener *l;
	struct stat st;
	gid_t gid;

	if (!other_group(&gid)) {
		fprintf(stderr, "socket_group_applied: skipped: not root and in no group "
				"but the primary one, so no group to give a socket file\n");
		return;
	}
	/* the group alone: the mode stays as the umask makes it */
	umask(022);
	cfg = mode_config(0, gid);
	temp_path(address, sizeof(address), "unix");
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	st = stat_socket(address);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_uint_eq(st.st_mode & 07777, 0755);
	pier_listener_free(l);
	pier_config_free(cfg);
	/* both */
	cfg = mode_config(0660, gid);
	temp_path(address, sizeof(address), "seqpacket");
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	st = stat_socket(address);
	ck_assert_uint_eq(st.st_gid, gid);
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	pier_listener_free(l);
	pier_config_free(cfg);
}
END_TEST

/* In a child that runs as user 65534 with group gid and no other groups:
 * connect() to the socket file at path; its errno, or 0. */
static int connect_as(const char *path, gid_t gid)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	pid_t pid;
	int status;

	strcpy(un.sun_path, path);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int fd;

		/* async-signal-safe calls only: the parent has threads */
		if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(65534) < 0)
			_exit(100);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		_exit(connect(fd, (struct sockaddr *)&un, sizeof(un)) < 0 ? errno : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_ne(WEXITSTATUS(status), 100);
	return WEXITSTATUS(status);
}

/* The camera user and the vision user of pier_config_set_socket_mode(3): a
 * process in the socket's group connects, any other is refused. */
START_TEST(socket_mode_enforced)
{
	char address[128];
	const char *path;
	pier_config *cfg;
	pier_listener *l;

	if (geteuid() != 0) {
		fprintf(stderr, "socket_mode_enforced: skipped: needs root, to connect "
				"as other users\n");
		return;
	}
	umask(022);
	temp_path(address, sizeof(address), "unix");
	path = address + strlen("unix://");
	/* the default: only the owner (root) can connect */
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), 0);
	ck_assert_int_eq(connect_as(path, 4242), EACCES);
	pier_listener_free(l);
	cfg = mode_config(0660, 4242);
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	ck_assert_int_eq(connect_as(path, 4242), 0);
	ck_assert_int_eq(connect_as(path, 4243), EACCES);
	pier_listener_free(l);
	pier_config_free(cfg);
}
END_TEST

/* Addresses without a socket file have no permissions: asking for some is
 * refused rather than ignored. */
START_TEST(socket_mode_without_file)
{
	static const char *const addresses[] = {
		"unix://@pier-mode-test", "seqpacket://@pier-mode-test",
		"tcp://127.0.0.1:0",
	};
	pier_config *mode = mode_config(0660, (gid_t)-1), *group = mode_config(0, 0);
	pier_listener *l = NULL;

	for (size_t i = 0; i < sizeof(addresses) / sizeof(addresses[0]); i++) {
		ck_assert_int_eq(pier_listener_new(&l, addresses[i], mode), -EINVAL);
		ck_assert_int_eq(pier_listener_new(&l, addresses[i], group), -EINVAL);
	}
	ck_assert_ptr_null(l);
	pier_config_free(mode);
	pier_config_free(group);
}
END_TEST

/* pier_listener_new() with a group that may not be given: its error (0 if
 * it succeeded); the socket file and fds must be gone. */
static int listen_with_forbidden_group(void)
{
	char address[128];
	pier_config *cfg;
	pier_listener *l = NULL;
	int fds = open_fd_count(), r;
	gid_t gid = 0;

	while (gid == getegid() || group_member(gid))
		gid++;
	temp_path(address, sizeof(address), "seqpacket");
	cfg = mode_config(0660, gid);
	r = pier_listener_new(&l, address, cfg);
	pier_config_free(cfg);
	if (r == 0)
		pier_listener_free(l);
	else if (access(strstr(address, "://") + 3, F_OK) == 0 || fds != open_fd_count())
		r = -EEXIST; /* something was left behind */
	return r;
}

START_TEST(socket_group_refused)
{
	pid_t pid;
	int status;

	if (geteuid() != 0) {
		ck_assert_int_eq(listen_with_forbidden_group(), -EPERM);
		return;
	}
	/* Root may give any group: try as another user, in a child that
	 * has no threads yet. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		_exit(-listen_with_forbidden_group() == EPERM ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_msg(WEXITSTATUS(status) == 0, "as user 65534: %s",
		      WEXITSTATUS(status) == 100 ? "cannot become that user"
						 : "no -EPERM, or something left behind");
}
END_TEST

/* --- relative paths and bursts ------------------------------------------- */

/* A relative socket path is where it was when the listener was made: a
 * later chdir() neither loses the file nor removes another one. */
START_TEST(relative_socket_path)
{
	char dir[] = "/tmp/pier-rel-XXXXXX", file[64], address[128];
	pier_listener *l;
	pier_peer *a, *b;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chdir(dir), 0);
	ck_assert_int_eq(pier_listener_new(&l, "unix://rel.sock", NULL), 0);
	ck_assert_int_eq(chdir("/"), 0);
	snprintf(file, sizeof(file), "%s/rel.sock", dir);
	snprintf(address, sizeof(address), "unix://%s", file);
	ck_assert_int_eq(pier_peer_connect(&a, address, NULL), 0);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l);
	ck_assert_msg(access(file, F_OK) < 0 && errno == ENOENT, "%s is left behind", file);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* A burst of connections to a listener whose application does not accept
 * waits in the kernel's backlog; with a backlog of 128, the connects past
 * that (and the 64 the listener accepts on its own) would fail with
 * EAGAIN. */
START_TEST(backlog_holds_bursts)
{
	enum { N = 1000 };
	static int fds[N];
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct rlimit rl;
	char address[128];
	pier_listener *l;
	int n = N, somaxconn = 0;
	FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");

	if (f) {
		if (fscanf(f, "%d", &somaxconn) != 1)
			somaxconn = 0;
		fclose(f);
	}
	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if ((rlim_t)n + 200 > rl.rlim_cur)
		n = (int)rl.rlim_cur - 200;
	if (somaxconn < n)
		n = somaxconn;
	if (n < 512) {
		fprintf(stderr, "backlog_holds_bursts: skipped: room for %d connections "
				"(net.core.somaxconn %d, fd limit %ld), too few to tell a "
				"backlog of 128 from the system's\n",
			n, somaxconn, (long)rl.rlim_cur);
		return;
	}
	temp_path(address, sizeof(address), "unix");
	strcpy(un.sun_path, address + strlen("unix://"));
	ck_assert_int_eq(pier_listener_new(&l, address, NULL), 0);
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		ck_assert_int_ge(fds[i], 0);
		ck_assert_msg(connect(fds[i], (struct sockaddr *)&un, sizeof(un)) == 0,
			      "connect %d of %d: %s", i + 1, n, strerror(errno));
	}
	for (int i = 0; i < n; i++)
		close(fds[i]);
	pier_listener_free(l);
}
END_TEST

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

/* Accepting fails for want of fds (EMFILE): the listener says so and
 * pauses instead of trying again at once, which would fail again at once
 * and spin the loop thread; once fds are free, the connection waiting in
 * the backlog is accepted. */
START_TEST(accept_pauses_without_fds)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	struct test_log log;
	struct rlimit saved;
	struct timespec cpu0, cpu1, wall0, wall1;
	char address[128];
	pier_listener *l;
	pier_config *cfg;
	pier_loop *loop;
	pier_peer *p;
	clockid_t loop_cpu;
	unsigned int first, third;
	int fd;
	double cpu_ms, wall_ms, pauses_ms;

	if (under_valgrind()) {
		fprintf(stderr, "accept_pauses_without_fds: skipped under valgrind, which keeps "
				"the fd limit to itself\n");
		return;
	}
	test_log_init(&log);
	temp_path(address, sizeof(address), "unix");
	strcpy(un.sun_path, address + strlen("unix://"));
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	ck_assert_int_eq(pier_config_set_log(cfg, test_log_collect, &log), 0);
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	pier_config_free(cfg);
	ck_assert_int_eq(pthread_getcpuclockid(((struct pier_loop *)loop)->thread, &loop_cpu), 0);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);

	no_fd_left(&saved); /* accept4() fails */
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
	first = test_log_wait(&log, "cannot accept connections: Too many open files", 0);
	clock_gettime(loop_cpu, &cpu0);
	clock_gettime(CLOCK_MONOTONIC, &wall0);
	/* Two pauses later (of 5 and 10 ms): the loop thread slept meanwhile
	 * rather than spin. */
	third = test_log_wait(&log, "cannot accept connections",
			      test_log_wait(&log, "cannot accept connections", first + 1) + 1);
	clock_gettime(loop_cpu, &cpu1);
	clock_gettime(CLOCK_MONOTONIC, &wall1);
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
	pauses_ms = ms_between(&log.when[first], &log.when[third]);
	ck_assert_msg(pauses_ms >= 15, "three failed accepts within %.1f ms: no pauses",
		      pauses_ms);
	cpu_ms = ms_between(&cpu0, &cpu1);
	wall_ms = ms_between(&wall0, &wall1);
	ck_assert_msg(cpu_ms < wall_ms / 2, "the loop thread ran %.1f ms of %.1f ms", cpu_ms,
		      wall_ms);

	ck_assert_int_eq(pier_listener_accept(l, &p, WAIT), 0);
	pier_peer_free(p);
	close(fd);
	pier_listener_free(l);
	pier_loop_unref(loop);
}
END_TEST

/* The listening socket of the Unix address in address (unix://path), found
 * among this process's fds, or -1. */
static int listening_fd_of(const char *address)
{
	const char *path = address + strlen("unix://");

	for (int fd = 3; fd < 4096; fd++) {
		struct sockaddr_un un;
		socklen_t len = sizeof(un);
		int on = 0;
		socklen_t on_len = sizeof(on);

		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &on_len) < 0 || !on)
			continue;
		if (getsockname(fd, (struct sockaddr *)&un, &len) == 0 &&
		    un.sun_family == AF_UNIX && strcmp(un.sun_path, path) == 0)
			return fd;
	}
	return -1;
}

/* A log function that lets the test run something on the loop thread:
 * the first line it is told, it calls fn (if set) and then waits until
 * the test opens the gate; later lines pass. */
struct log_gate {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool entered, open;
	void (*fn)(struct log_gate *g);
	struct rlimit saved; /* for fn */
	int steal_fd;        /* for fn: the socket to take a connection from */
	int stolen;          /* what that accept4() returned */
	int stolen_errno;
};

static void log_gate_init(struct log_gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cond, NULL);
	g->steal_fd = -1;
	g->stolen = -1;
}

static void log_gate_fn(void *userdata, int priority, const char *message)
{
	struct log_gate *g = userdata;

	pthread_mutex_lock(&g->mu);
	if (!g->entered) {
		g->entered = true;
		if (g->fn)
			g->fn(g);
		pthread_cond_broadcast(&g->cond);
		while (!g->open)
			pthread_cond_wait(&g->cond, &g->mu);
	}
	pthread_mutex_unlock(&g->mu);
}

/* Whether the log function was called within WAIT ms. */
static bool log_gate_wait_entered(struct log_gate *g)
{
	struct timespec deadline;
	bool entered;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += WAIT / 1000;
	pthread_mutex_lock(&g->mu);
	while (!g->entered && pthread_cond_timedwait(&g->cond, &g->mu, &deadline) == 0)
		;
	entered = g->entered;
	pthread_mutex_unlock(&g->mu);
	return entered;
}

static void log_gate_open(struct log_gate *g)
{
	pthread_mutex_lock(&g->mu);
	g->open = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->mu);
}

/* On the loop thread, between the loop seeing the victim's socket readable
 * and its accept4(): fds again, and the pending connection taken, as
 * another process sharing the socket would. */
static void steal_connection(struct log_gate *g)
{
	setrlimit(RLIMIT_NOFILE, &g->saved);
	g->stolen = accept4(g->steal_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	g->stolen_errno = errno;
}

static void connect_unix(int fd, const char *address)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };

	strcpy(un.sun_path, address + strlen("unix://"));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&un, sizeof(un)), 0);
}

/* The epoll backend calls accept4() on the loop thread once the listening
 * socket is readable.  The connection may be gone by then (another process
 * sharing the socket took it): accept4() must fail with EAGAIN, not block
 * the loop thread, which serves every other listener and connection of
 * the loop.  Made to happen every time: listener C's failed accept (no fd
 * left) holds the loop thread in the log function while A and B get a
 * connection each; the loop then sees both readable in one wait, A's
 * accept fails too, and A's log function takes B's connection before B's
 * accept4(). */
START_TEST(epoll_accept_never_blocks)
{
	struct log_gate gate_c, gate_a;
	char addr_a[128], addr_b[128], addr_c[128];
	pier_listener *la, *lb, *lc;
	pier_config *cfg;
	pier_loop *loop;
	pier_peer *p;
	int ca, cb, cc, cb2;

	if (under_valgrind()) {
		fprintf(stderr, "epoll_accept_never_blocks: skipped under valgrind, which keeps "
				"the fd limit to itself\n");
		return;
	}
	setenv("PIER_BACKEND", "epoll", 1);
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_str_eq(pier_loop_backend(loop), "epoll");
	log_gate_init(&gate_c);
	log_gate_init(&gate_a);
	gate_a.fn = steal_connection;
	gate_a.open = true; /* it only runs steal_connection() */
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	temp_path(addr_c, sizeof(addr_c), "unix");
	temp_path(addr_a, sizeof(addr_a), "unix");
	temp_path(addr_b, sizeof(addr_b), "unix");
	ck_assert_int_eq(pier_config_set_log(cfg, log_gate_fn, &gate_c), 0);
	ck_assert_int_eq(pier_listener_new(&lc, addr_c, cfg), 0);
	ck_assert_int_eq(pier_config_set_log(cfg, log_gate_fn, &gate_a), 0);
	ck_assert_int_eq(pier_listener_new(&la, addr_a, cfg), 0);
	ck_assert_int_eq(pier_config_set_log(cfg, NULL, NULL), 0);
	ck_assert_int_eq(pier_listener_new(&lb, addr_b, cfg), 0);
	pier_config_free(cfg);
	gate_a.steal_fd = listening_fd_of(addr_b);
	ck_assert_int_ge(gate_a.steal_fd, 0);
	cc = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ca = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cb = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cb2 = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert(cc >= 0 && ca >= 0 && cb >= 0 && cb2 >= 0);

	no_fd_left(&gate_a.saved);
	connect_unix(cc, addr_c);
	/* The loop thread waits in C's log function meanwhile. */
	ck_assert_msg(log_gate_wait_entered(&gate_c), "C never failed to accept");
	connect_unix(ca, addr_a);
	connect_unix(cb, addr_b);
	log_gate_open(&gate_c);
	ck_assert_msg(log_gate_wait_entered(&gate_a), "A never failed to accept");
	ck_assert_msg(gate_a.stolen >= 0, "taking B's connection: %s",
		      strerror(gate_a.stolen_errno));
	close(gate_a.stolen);

	/* The loop thread is free: A accepts once its pause is over, and B
	 * still accepts. */
	ck_assert_int_eq(pier_listener_accept(la, &p, WAIT), 0);
	pier_peer_free(p);
	connect_unix(cb2, addr_b);
	ck_assert_int_eq(pier_listener_accept(lb, &p, WAIT), 0);
	pier_peer_free(p);
	pier_listener_free(la);
	pier_listener_free(lb);
	pier_listener_free(lc);
	pier_loop_unref(loop);
	close(ca);
	close(cb);
	close(cb2);
	close(cc);
}
END_TEST

/* An error accept() returns for one connection (a network error pending on
 * it, see accept(2)) costs that connection, not the listener. */
START_TEST(accept_error_of_one_connection)
{
	char address[128];
	pier_listener *l;
	pier_config *cfg;
	pier_loop *loop;
	pier_peer *p;
	int fd;

	setenv("PIER_BACKEND", "epoll", 1); /* its accept4() is the one interposed */
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	pier_loop_unref(loop);
	temp_path(address, sizeof(address), "unix");
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	pier_config_free(cfg);
	atomic_store(&fake_accept_errno, ENETDOWN);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	connect_unix(fd, address);
	ck_assert_int_eq(pier_listener_accept(l, &p, 200), -ETIMEDOUT);
	close(fd);
	ck_assert_int_eq(pier_peer_connect(&p, address, NULL), 0);
	pier_peer_free(p);
	ck_assert_int_eq(pier_listener_accept(l, &p, WAIT), 0);
	pier_peer_free(p);
	pier_listener_free(l);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("listener");
	TCase *tc = th_tcase("listener", 30);

	tcase_add_test(tc, bad_addresses);
	tcase_add_test(tc, port_zero);
	tcase_add_test(tc, resolver_errors);
	tcase_add_test(tc, connect_failures);
	tcase_add_test(tc, accept_timeouts);
	tcase_add_loop_test(tc, peer_info_unix, 0, 2);
	tcase_add_test(tc, peer_info_tcp);
	tcase_add_test(tc, stale_socket_files);
	tcase_add_test(tc, shared_loop);
	tcase_add_test(tc, unaccepted_peers);
	tcase_add_test(tc, adopt_ownership);
	tcase_add_test(tc, adopt_tcp);
	tcase_add_test(tc, connect_timeout_full_backlog);
	tcase_add_test(tc, socket_mode_arguments);
	tcase_add_loop_test(tc, socket_mode_applied, 0, 2);
	tcase_add_test(tc, socket_group_applied);
	tcase_add_test(tc, socket_mode_enforced);
	tcase_add_test(tc, socket_mode_without_file);
	tcase_add_test(tc, socket_group_refused);
	tcase_add_test(tc, accept_pauses_without_fds);
	tcase_add_test(tc, epoll_accept_never_blocks);
	tcase_add_test(tc, accept_error_of_one_connection);
	tcase_add_test(tc, relative_socket_path);
	tcase_add_test(tc, backlog_holds_bursts);
	suite_add_tcase(s, tc);
	return th_run(s);
}
