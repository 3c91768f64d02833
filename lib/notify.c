/* SPDX-License-Identifier: MIT */
/*
 * Telling the service manager how the service is doing: the notification
 * protocol of sd_notify(3), a datagram of newline-separated VARIABLE=value
 * lines to the Unix socket $NOTIFY_SOCKET names (a path, or an abstract
 * name written with a leading '@').  See doc/ARCHITECTURE.md for why
 * libpier speaks it itself instead of linking libsystemd.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <pier.h>

#include "private.h"

/* The address $NOTIFY_SOCKET names, its length in *len: 0 or -errno. */
static int notify_address(const char *e, struct sockaddr_un *un, socklen_t *len)
{
	size_t n = strlen(e);

	/* Other forms (vsock:CID:PORT, for virtual machines) are not
	 * spoken here. */
	if (e[0] != '/' && e[0] != '@')
		return -EAFNOSUPPORT;
	if (n < 2 || n >= sizeof(un->sun_path))
		return -EINVAL;
	memset(un, 0, sizeof(*un));
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, e, n);
	if (e[0] == '@') {
		/* An abstract name is its bytes, without a terminating NUL. */
		un->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

PIER_EXPORT int pier_notify(const char *state)
{
	const char *e = getenv("NOTIFY_SOCKET");
	struct sockaddr_un un;
	socklen_t len;
	ssize_t n;
	int fd, r;

	if (!state || !*state)
		return -EINVAL;
	if (!e || !*e)
		return 0;
	r = notify_address(e, &un, &len);
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&un, len);
	r = n < 0 ? -errno : (size_t)n != strlen(state) ? -EMSGSIZE : 1;
	close(fd);
	return r;
}
