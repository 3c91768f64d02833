/* SPDX-License-Identifier: MIT */
/*
 * Configurations: what pier_config_*() set, copied into each connection and
 * listener when it is made (a pier_config may be freed or changed after).
 */
#ifndef PIER_CONF_H
#define PIER_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pier.h>

struct loop_attr;
struct tls_settings;

/* Latest-only streams a configuration may name (see
 * pier_config_set_stream_latest(3), which documents the number). */
#define PIER_MAX_STREAM_LATEST 16u
/* The most messages one keeps: a handful is what the policy is for, and a
 * larger number is more likely a negative one converted. */
#define PIER_MAX_STREAM_KEEP 65536u

/* A latest-only stream: of the stream messages of service waiting for the
 * application, only the newest keep stay. */
struct stream_latest {
	int32_t service;
	unsigned int keep;
};

struct pier_config {
	struct pier_loop *loop; /* referenced, or NULL for a loop of its own */
	enum pier_byte_order order;
	size_t max_body_read, max_body_write; /* 0: the framing's default */
	unsigned int max_fds;
	size_t max_recv_queued, max_send_queued;
	/* fds queued for the application / queued and in flight to the
	 * remote; 0: derived from RLIMIT_NOFILE when a connection is made. */
	unsigned int max_recv_fds, max_send_fds;
	unsigned int max_open;
	int send_timeout_ms;
	unsigned int coalesce_us; /* 0: every frame is written at once */
	int connect_timeout_ms;
	bool connect_timeout_set; /* by the application (listeners default
				   * to a shorter handshake deadline) */
	pier_log_fn *log; /* or NULL */
	void *log_data;
	/* A listener's Unix socket file: 0 and (gid_t)-1 leave it as the
	 * umask and the system make it. */
	mode_t socket_mode;
	gid_t socket_gid;
	/* Liveness: TCP keepalive (0: the kernel's); the idle timeout (-1:
	 * none); pings on ping_service, sent after ping_interval_ms without
	 * anything received (0: only answered; -1: neither). */
	int ka_idle_s, ka_interval_s, ka_count;
	int idle_timeout_ms;
	int ping_interval_ms;
	int32_t ping_service;
	/* TLS settings, or NULL for the defaults; owned by the pier_config
	 * object only (copies of the struct clear it). */
	struct tls_settings *tls;
	/* The threads of the loops made with it, or NULL for the defaults;
	 * owned by the pier_config object only (copies of the struct clear
	 * it, or use it during the call that copied only). */
	struct loop_attr *loop_attr;
	/* Latest-only streams, by service id, each once; copied with the
	 * struct. */
	struct stream_latest latest[PIER_MAX_STREAM_LATEST];
	unsigned int nlatest;
};

#define PIER_DEFAULT_MAX_FDS 32u
#define PIER_DEFAULT_MAX_QUEUED (4u << 20)
#define PIER_DEFAULT_MAX_OPEN 65536u
#define PIER_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define PIER_DEFAULT_COALESCE_US 20u
/* Far longer than any write takes: a delay beyond it is a mistake. */
#define PIER_MAX_COALESCE_US 10000000u
/* The kernel's limits on TCP keepalive settings (MAX_TCP_KEEPIDLE,
 * MAX_TCP_KEEPINTVL, MAX_TCP_KEEPCNT). */
#define PIER_MAX_KEEPALIVE_S 32767
#define PIER_MAX_KEEPALIVE_COUNT 127

void config_defaults(struct pier_config *c);
/* The default limit on fds queued one way on a connection: a quarter of
 * the process's fd limit (RLIMIT_NOFILE), within [64, 65536]. */
unsigned int config_default_queued_fds(void);

#endif
