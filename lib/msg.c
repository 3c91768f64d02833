/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "map.h"
#include "msg.h"
#include "private.h"

static size_t fds_offset(size_t len)
{
	return (len + _Alignof(int) - 1) & ~(_Alignof(int) - 1);
}

struct pier_msg *msg_new(size_t len, unsigned int nfds)
{
	size_t off = fds_offset(len);
	struct pier_msg *m;

	if (len > SIZE_MAX - sizeof(*m) - off - nfds * sizeof(int))
		return NULL;
	m = malloc(sizeof(*m) + off + nfds * sizeof(int));
	if (!m)
		return NULL;
	m->next = NULL;
	m->pprev = NULL;
	m->req = NULL;
	m->latest = NULL;
	m->latest_next = NULL;
	m->nfds = nfds;
	m->fds = nfds ? (int *)(void *)(m->body + off) : NULL;
	m->len = len;
	return m;
}

struct pier_msg *msg_of_body(void *body)
{
	return pier_container_of(body, struct pier_msg, body);
}

void msg_free(struct pier_msg *m)
{
	if (!m)
		return;
	for (unsigned int i = 0; i < m->nfds; i++)
		if (m->fds[i] >= 0)
			close(m->fds[i]);
	free(m);
}

PIER_EXPORT const struct pier_header *pier_msg_header(const pier_msg *msg)
{
	return msg ? &msg->hdr : NULL;
}

PIER_EXPORT const void *pier_msg_body(const pier_msg *msg, size_t *len)
{
	if (!msg) {
		if (len)
			*len = 0;
		return NULL;
	}
	if (len)
		*len = msg->len;
	return msg->body;
}

PIER_EXPORT int pier_msg_is_error(const pier_msg *msg)
{
	return msg && msg->hdr.type == PIER_MSG_RESPONSE &&
	       msg->hdr.service_id == PIER_SERVICE_ERROR;
}

PIER_EXPORT size_t pier_msg_fd_count(const pier_msg *msg)
{
	return msg ? msg->nfds : 0;
}

PIER_EXPORT int pier_msg_fd(const pier_msg *msg, size_t index)
{
	if (!msg || index >= msg->nfds)
		return -EINVAL;
	return msg->fds[index] >= 0 ? msg->fds[index] : -EBADF;
}

PIER_EXPORT int pier_msg_take_fd(pier_msg *msg, size_t index)
{
	int fd;

	if (!msg || index >= msg->nfds)
		return -EINVAL;
	fd = msg->fds[index];
	if (fd < 0)
		return -EBADF;
	msg->fds[index] = -1;
	return fd;
}

PIER_EXPORT int pier_msg_map_fd(const pier_msg *msg, size_t index, size_t offset,
				size_t length, unsigned int flags, pier_mapping **out)
{
	int fd;

	if (!out || length == 0 || (flags & ~(unsigned int)PIER_MAP_DMABUF))
		return -EINVAL;
	fd = pier_msg_fd(msg, index);
	if (fd < 0)
		return fd;
	return map_new(out, fd, offset, length, flags);
}

PIER_EXPORT void pier_msg_free(pier_msg *msg)
{
	msg_free(msg);
}
