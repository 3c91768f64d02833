/* SPDX-License-Identifier: MIT */
/* What every transport shares: the scheme table and connect with a timeout. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "private.h"
#include "transport.h"

static const struct transport *const transports[] = {
	&transport_tcp,
	&transport_unix,
	&transport_seqpacket,
	&transport_tls,
};

int transport_parse(const char *address, struct transport_addr *a)
{
	const char *sep = strstr(address, "://");

	if (!sep)
		return -EINVAL;
	memset(a, 0, sizeof(*a));
	for (size_t i = 0; i < PIER_ARRAY_SIZE(transports); i++) {
		const struct transport *t = transports[i];
		size_t n = strlen(t->scheme);

		if ((size_t)(sep - address) == n && strncmp(address, t->scheme, n) == 0) {
			a->t = t;
			return t->parse(t, sep + 3, a);
		}
	}
	return -EPROTONOSUPPORT;
}

int transport_for_fd(int fd, const struct transport **t)
{
	int type, domain;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		return -errno;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
		return -errno;
	if ((domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM)
		*t = &transport_tcp;
	else if (domain == AF_UNIX && type == SOCK_STREAM)
		*t = &transport_unix;
	else if (domain == AF_UNIX && type == SOCK_SEQPACKET)
		*t = &transport_seqpacket;
	else
		return -EPROTONOSUPPORT;
	return 0;
}

int transport_connect_wait(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	struct timespec deadline;
	int err = 0, r;
	socklen_t len = sizeof(err);

	if (timeout_ms >= 0)
		deadline = deadline_after(timeout_ms);
	for (;;) {
		r = poll(&pfd, 1, timeout_ms >= 0 ? ms_until(&deadline) : -1);
		if (r > 0)
			break;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}
