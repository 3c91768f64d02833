/* SPDX-License-Identifier: MIT */
/*
 * Socket activation: the listening sockets a service manager passes, as
 * sd_listen_fds(3) documents it.  Fds from 3 on, LISTEN_FDS of them, meant
 * for the process LISTEN_PID names, named by the colon-separated
 * LISTEN_FDNAMES.  Each is checked before the server takes any: a
 * listening socket of a kind pier serves.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <syslog.h>
#include <unistd.h>

#include "private.h"
#include "server.h"

#define LISTEN_FDS_START 3

/* A decimal number in [0, max]: 0, or -EINVAL. */
static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The name of fd number i in names (colon-separated), copied into buf;
 * "unknown" where there is none, as systemd says. */
static const char *fd_name(const char *names, unsigned long i, char *buf, size_t len)
{
	const char *p = names;

	for (unsigned long k = 0; p && k < i; k++) {
		p = strchr(p, ':');
		p = p ? p + 1 : NULL;
	}
	if (!p || *p == ':' || !*p)
		return "unknown";
	len = strcspn(p, ":") < len ? strcspn(p, ":") + 1 : len;
	memcpy(buf, p, len - 1);
	buf[len - 1] = '\0';
	return buf;
}

static const char *why_not(int err)
{
	switch (-err) {
	case EBADF:
		return "it is not open";
	case ENOTSOCK:
		return "it is not a socket";
	case EINVAL:
		return "the socket does not listen (a unit with Accept=yes passes "
		       "connections; pier needs Accept=no)";
	case EPROTONOSUPPORT:
		return "pier serves TCP, and Unix stream and seqpacket sockets";
	default:
		return pier_strerror(err);
	}
}

/* Whether fd is a listening socket of a kind pier serves: 0, -EBADF,
 * -ENOTSOCK, -EINVAL (it does not listen), -EPROTONOSUPPORT. */
static int check_fd(int fd)
{
	int domain = 0, type = 0, proto = 0, on = 0;
	socklen_t l1 = sizeof(int), l2 = sizeof(int), l3 = sizeof(int), l4 = sizeof(int);
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -EBADF;
	if (!S_ISSOCK(st.st_mode))
		return -ENOTSOCK;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l1) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l2) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l3) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &l4) < 0)
		return -errno;
	if (domain == AF_UNIX ? type != SOCK_STREAM && type != SOCK_SEQPACKET
	    : (domain != AF_INET && domain != AF_INET6) || type != SOCK_STREAM ||
		      proto != IPPROTO_TCP)
		return -EPROTONOSUPPORT;
	return on ? 0 : -EINVAL;
}

/* How many fds were passed to this process (*n; 0 if none), each of
 * those named name (NULL: all) checked: 0, or the error of the first that
 * is not fit, said in the log. */
static int check_passed(pier_server *s, const char *name, const char *names,
			unsigned long *n)
{
	const char *pid_s = getenv("LISTEN_PID"), *fds_s = getenv("LISTEN_FDS");
	unsigned long pid, count;

	*n = 0;
	if (!pid_s || !fds_s)
		return 0;
	if (parse_uint(pid_s, INT_MAX, &pid) < 0 || parse_uint(fds_s, INT_MAX - 3, &count) < 0) {
		server_log(s, LOG_ERR, "socket activation: LISTEN_PID=%s LISTEN_FDS=%s: "
			   "not numbers", pid_s, fds_s);
		return -EINVAL;
	}
	if ((pid_t)pid != getpid())
		return 0; /* meant for another process (our parent, say) */
	for (unsigned long i = 0; i < count; i++) {
		int fd = (int)(LISTEN_FDS_START + i), r;
		char buf[256];
		const char *nm = fd_name(names, i, buf, sizeof(buf));

		if (name && strcmp(name, nm) != 0)
			continue;
		r = check_fd(fd);
		if (r < 0) {
			server_log(s, LOG_ERR, "socket activation: fd %d (%s): %s", fd, nm,
				   why_not(r));
			return r;
		}
	}
	*n = count;
	return 0;
}

static void unset(void)
{
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

PIER_EXPORT int pier_server_listen_activated(pier_server *s, const char *name,
					     int unset_environment)
{
	const char *names = getenv("LISTEN_FDNAMES");
	unsigned long n;
	int r, taken = 0;

	if (!s)
		return -EINVAL;
	/* Before anything is taken: the sockets stay the process's. */
	if (server_started(s))
		return -EBUSY;
	r = check_passed(s, name, names, &n);
	for (unsigned long i = 0; r == 0 && i < n; i++) {
		int fd = (int)(LISTEN_FDS_START + i);
		char buf[256];
		const char *nm = fd_name(names, i, buf, sizeof(buf));
		pier_listener *l;

		if (name && strcmp(name, nm) != 0)
			continue;
		r = pier_listener_adopt(&l, fd, server_config(s));
		if (r < 0) {
			server_log(s, LOG_ERR, "socket activation: fd %d (%s): %s", fd, nm,
				   why_not(r));
			break;
		}
		r = server_add_listener(s, l);
		if (r == 0)
			taken++;
	}
	if (unset_environment)
		unset();
	return r < 0 ? r : taken;
}
