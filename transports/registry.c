/* SPDX-License-Identifier: MIT */
/* The transports there are: found by an address's scheme, or by what an
 * adopted socket is.  A new transport is one more entry here. */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

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
	for (size_t i = 0; i < PIER_ARRAY_SIZE(transports); i++) {
		if (transports[i]->adopts && transports[i]->adopts(domain, type)) {
			*t = transports[i];
			return 0;
		}
	}
	return -EPROTONOSUPPORT;
}
