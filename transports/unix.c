/* SPDX-License-Identifier: MIT */
/*
 * Unix sockets: unix:///path (stream) and seqpacket:///path (one message per
 * packet, with file descriptors).  A path that starts with '@' names a Linux
 * abstract socket: unix://@name.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "private.h"
#include "transport.h"

static int unix_parse(const struct transport *t, const char *rest, struct transport_addr *a)
{
	size_t len = strlen(rest);

	if (len == 0 || (rest[0] == '@' && len == 1))
		return -EINVAL;
	if (len >= sizeof(a->un.sun_path))
		return -ENAMETOOLONG;
	a->un.sun_family = AF_UNIX;
	memcpy(a->un.sun_path, rest, len);
	a->abstract = rest[0] == '@';
	if (a->abstract) {
		a->un.sun_path[0] = '\0';
		a->un_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	} else {
		a->un_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
	}
	return 0;
}

static int unix_socket(const struct transport_addr *a)
{
	int fd = socket(AF_UNIX, a->t->sock_type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	return fd < 0 ? -errno : fd;
}

static int unix_connect(const struct transport_addr *a, int timeout_ms)
{
	int fd = unix_socket(a), r;

	if (fd < 0)
		return fd;
	if (connect(fd, (const struct sockaddr *)&a->un, a->un_len) == 0)
		return fd;
	/* A full backlog makes a non-blocking connect fail with EAGAIN; wait
	 * for room as a blocking connect would. */
	r = errno == EINPROGRESS || errno == EAGAIN ? transport_connect_wait(fd, timeout_ms)
						    : -errno;
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/* A socket file left behind by a process that is gone is in the way of
 * bind(): remove it, but only if it is a socket and nobody answers on it. */
static int remove_stale(const struct transport_addr *a)
{
	struct stat st;
	int fd, r;

	if (a->abstract || lstat(a->un.sun_path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	fd = unix_socket(a);
	if (fd < 0)
		return fd;
	r = connect(fd, (const struct sockaddr *)&a->un, a->un_len);
	r = r == 0 || errno == EAGAIN || errno == EINPROGRESS ? -EADDRINUSE : -errno;
	close(fd);
	if (r == -EADDRINUSE)
		return r;
	if (r != -ECONNREFUSED && r != -ENOENT)
		return r;
	return unlink(a->un.sun_path) < 0 && errno != ENOENT ? -errno : 0;
}

static int unix_listen(const struct transport_addr *a, int backlog)
{
	int fd, r;

	r = remove_stale(a);
	if (r < 0)
		return r;
	fd = unix_socket(a);
	if (fd < 0)
		return fd;
	if (bind(fd, (const struct sockaddr *)&a->un, a->un_len) < 0 ||
	    listen(fd, backlog) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static void unix_prepare(int fd)
{
}

static int unix_describe(const struct transport *t, int fd, bool remote, char *buf,
			 size_t len)
{
	struct sockaddr_un un;
	socklen_t sl = sizeof(un);
	size_t plen;
	int n;

	if ((remote ? getpeername : getsockname)(fd, (struct sockaddr *)&un, &sl) < 0)
		return -errno;
	plen = sl > offsetof(struct sockaddr_un, sun_path)
		       ? sl - offsetof(struct sockaddr_un, sun_path)
		       : 0;
	if (plen > 0 && un.sun_path[0] == '\0') /* abstract: not terminated */
		n = snprintf(buf, len, "%s://@%.*s", t->scheme, (int)plen - 1, un.sun_path + 1);
	else
		n = snprintf(buf, len, "%s://%.*s", t->scheme, (int)strnlen(un.sun_path, plen),
			     un.sun_path);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const struct transport transport_unix = {
	.scheme = "unix",
	.caps = TRANSPORT_CREDENTIALS,
	.sock_type = SOCK_STREAM,
	.parse = unix_parse,
	.connect = unix_connect,
	.listen = unix_listen,
	.prepare = unix_prepare,
	.describe = unix_describe,
};

const struct transport transport_seqpacket = {
	.scheme = "seqpacket",
	.caps = TRANSPORT_FDS | TRANSPORT_BOUNDARIES | TRANSPORT_CREDENTIALS,
	.sock_type = SOCK_SEQPACKET,
	.parse = unix_parse,
	.connect = unix_connect,
	.listen = unix_listen,
	.prepare = unix_prepare,
	.describe = unix_describe,
};
