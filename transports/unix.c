/* SPDX-License-Identifier: MIT */
/*
 * Unix sockets: unix:///path (stream) and seqpacket:///path (one message per
 * packet, with file descriptors).  A path that starts with '@' names a Linux
 * abstract socket: unix://@name.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "private.h"
#include "link.h"
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

static int unix_socket(const struct transport_addr *a, int flags)
{
	int fd = socket(AF_UNIX, a->t->sock_type | SOCK_CLOEXEC | flags, 0);

	return fd < 0 ? -errno : fd;
}

static int unix_connect(const struct transport_addr *a, int timeout_ms)
{
	struct timeval tv = { 0 };
	int fd = unix_socket(a, 0), r = 0;

	if (fd < 0)
		return fd;
	/* A Unix connect waits only while the listener's backlog is full,
	 * for as long as the send timeout says. */
	if (timeout_ms >= 0) {
		tv.tv_sec = timeout_ms / 1000;
		tv.tv_usec = (timeout_ms % 1000) * 1000;
		if (timeout_ms == 0)
			tv.tv_usec = 1; /* 0 would mean forever */
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (connect(fd, (const struct sockaddr *)&a->un, a->un_len) < 0) {
		if (errno == EINTR)
			continue;
		r = errno == EAGAIN ? -ETIMEDOUT : -errno;
		break;
	}
	tv = (struct timeval){ 0 };
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
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
	fd = unix_socket(a, SOCK_NONBLOCK);
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

/* Gives the socket file bind() just made its group, then its exact mode
 * (the umask may have taken bits away).  Nobody can connect before
 * listen(), so until then the file's permissions do not matter yet.  The
 * path is the file bind() made unless someone who may write the directory
 * swapped it; such a one could replace the socket anyway, but must not
 * get a file of ours chmod'ed: only a socket is touched. */
static int set_file_perms(const char *path, const struct transport_listen *o)
{
	struct stat st;

	if (o->file_gid != (gid_t)-1 &&
	    fchownat(AT_FDCWD, path, (uid_t)-1, o->file_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!o->file_mode)
		return 0;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode))
		return -EADDRINUSE;
	if ((st.st_mode & 07777) != o->file_mode && chmod(path, o->file_mode) < 0)
		return -errno;
	return 0;
}

static int unix_listen(const struct transport_addr *a, const struct transport_listen *o)
{
	int fd, r;

	if (a->abstract && (o->file_mode || o->file_gid != (gid_t)-1))
		return -EINVAL; /* no file, no permissions: anyone may connect */
	r = remove_stale(a);
	if (r < 0)
		return r;
	fd = unix_socket(a, SOCK_NONBLOCK);
	if (fd < 0)
		return fd;
	/* Linux gives the file this inode's mode less the umask: from its
	 * first moment it is never looser than asked. */
	if (o->file_mode && fchmod(fd, o->file_mode) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (bind(fd, (const struct sockaddr *)&a->un, a->un_len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	r = a->abstract ? 0 : set_file_perms(a->un.sun_path, o);
	if (r == 0 && listen(fd, o->backlog) < 0)
		r = -errno;
	if (r < 0) {
		close(fd);
		if (!a->abstract)
			unlink(a->un.sun_path);
		return r;
	}
	return fd;
}

static bool unix_adopts(int domain, int type)
{
	return domain == AF_UNIX && type == SOCK_STREAM;
}

static bool seqpacket_adopts(int domain, int type)
{
	return domain == AF_UNIX && type == SOCK_SEQPACKET;
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
	.framing = &framing_stream,
	.parse = unix_parse,
	.connect = unix_connect,
	.listen = unix_listen,
	.adopts = unix_adopts,
	.prepare = unix_prepare,
	.describe = unix_describe,
};

const struct transport transport_seqpacket = {
	.scheme = "seqpacket",
	.caps = TRANSPORT_FDS | TRANSPORT_CREDENTIALS,
	.sock_type = SOCK_SEQPACKET,
	.framing = &framing_packet,
	.parse = unix_parse,
	.connect = unix_connect,
	.listen = unix_listen,
	.adopts = seqpacket_adopts,
	.prepare = unix_prepare,
	.describe = unix_describe,
};
