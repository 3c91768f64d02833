/* SPDX-License-Identifier: MIT */
/* What the socket transports share: waiting for a connect, with a timeout. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "private.h"
#include "transport.h"

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
