/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "peer.h"
#include "private.h"
#include "wire.h"

void config_defaults(struct pier_config *c)
{
	*c = (struct pier_config){
		.order = PIER_BYTE_ORDER_LITTLE,
		.max_fds = PIER_DEFAULT_MAX_FDS,
		.max_recv_queued = PIER_DEFAULT_MAX_QUEUED,
		.max_send_queued = PIER_DEFAULT_MAX_QUEUED,
		.max_open = PIER_DEFAULT_MAX_OPEN,
		.send_timeout_ms = -1,
		.connect_timeout_ms = PIER_DEFAULT_CONNECT_TIMEOUT_MS,
	};
}

PIER_EXPORT int pier_config_new(pier_config **out)
{
	struct pier_config *c;

	if (!out)
		return -EINVAL;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	config_defaults(c);
	*out = c;
	return 0;
}

PIER_EXPORT void pier_config_free(pier_config *cfg)
{
	if (!cfg)
		return;
	if (cfg->loop)
		pier_loop_unref(cfg->loop);
	free(cfg);
}

PIER_EXPORT int pier_config_set_loop(pier_config *cfg, pier_loop *loop)
{
	if (!cfg)
		return -EINVAL;
	if (loop)
		pier_loop_ref(loop);
	if (cfg->loop)
		pier_loop_unref(cfg->loop);
	cfg->loop = loop;
	return 0;
}

PIER_EXPORT int pier_config_set_byte_order(pier_config *cfg, enum pier_byte_order order)
{
	if (!cfg || !wire_order_valid(order))
		return -EINVAL;
	cfg->order = order;
	return 0;
}

PIER_EXPORT int pier_config_set_max_body(pier_config *cfg, size_t read_max, size_t write_max)
{
	if (!cfg || read_max > WIRE_STREAM_MAX_BODY || write_max > WIRE_STREAM_MAX_BODY)
		return -EINVAL;
	cfg->max_body_read = read_max;
	cfg->max_body_write = write_max;
	return 0;
}

PIER_EXPORT int pier_config_set_max_fds(pier_config *cfg, unsigned int max_fds)
{
	if (!cfg || max_fds > WIRE_MAX_FDS)
		return -EINVAL;
	cfg->max_fds = max_fds;
	return 0;
}

PIER_EXPORT int pier_config_set_max_queued(pier_config *cfg, size_t recv_bytes,
					   size_t send_bytes)
{
	if (!cfg || recv_bytes == 0 || send_bytes == 0)
		return -EINVAL;
	cfg->max_recv_queued = recv_bytes;
	cfg->max_send_queued = send_bytes;
	return 0;
}

PIER_EXPORT int pier_config_set_max_open_requests(pier_config *cfg, unsigned int max_open)
{
	if (!cfg || max_open == 0)
		return -EINVAL;
	cfg->max_open = max_open;
	return 0;
}

PIER_EXPORT int pier_config_set_send_timeout(pier_config *cfg, int timeout_ms)
{
	if (!cfg || timeout_ms < -1)
		return -EINVAL;
	cfg->send_timeout_ms = timeout_ms;
	return 0;
}

PIER_EXPORT int pier_config_set_connect_timeout(pier_config *cfg, int timeout_ms)
{
	if (!cfg || timeout_ms < -1)
		return -EINVAL;
	cfg->connect_timeout_ms = timeout_ms;
	return 0;
}
