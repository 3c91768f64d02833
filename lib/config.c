/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "conf.h"
#include "loop.h"
#include "private.h"
#include "tls-session.h"
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
		.coalesce_us = PIER_DEFAULT_COALESCE_US,
		.connect_timeout_ms = PIER_DEFAULT_CONNECT_TIMEOUT_MS,
		.socket_gid = (gid_t)-1,
		.idle_timeout_ms = -1,
		.ping_interval_ms = -1,
	};
}

static void loop_attr_free(struct loop_attr *a)
{
	if (!a)
		return;
	if (a->cpus)
		CPU_FREE(a->cpus);
	free(a);
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
	tls_settings_free(cfg->tls);
	loop_attr_free(cfg->loop_attr);
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

PIER_EXPORT int pier_config_set_max_fds(pier_config *cfg, size_t max_fds)
{
	if (!cfg || max_fds > WIRE_MAX_FDS)
		return -EINVAL;
	cfg->max_fds = (unsigned int)max_fds;
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

unsigned int config_default_queued_fds(void)
{
	struct rlimit rl;
	rlim_t n = 65536 * 4;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur;
	n /= 4;
	return n < 64 ? 64 : n > 65536 ? 65536 : (unsigned int)n;
}

PIER_EXPORT int pier_config_set_max_queued_fds(pier_config *cfg, size_t recv_fds,
					       size_t send_fds)
{
	/* No process holds more fds than an int numbers. */
	if (!cfg || recv_fds > INT_MAX || send_fds > INT_MAX)
		return -EINVAL;
	cfg->max_recv_fds = (unsigned int)recv_fds;
	cfg->max_send_fds = (unsigned int)send_fds;
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

PIER_EXPORT int pier_config_set_coalescing(pier_config *cfg, unsigned int max_delay_us)
{
	if (!cfg || max_delay_us > PIER_MAX_COALESCE_US)
		return -EINVAL;
	cfg->coalesce_us = max_delay_us;
	return 0;
}

PIER_EXPORT int pier_config_set_connect_timeout(pier_config *cfg, int timeout_ms)
{
	if (!cfg || timeout_ms < -1)
		return -EINVAL;
	cfg->connect_timeout_ms = timeout_ms;
	cfg->connect_timeout_set = true;
	return 0;
}

PIER_EXPORT int pier_config_set_log(pier_config *cfg, pier_log_fn *fn, void *userdata)
{
	if (!cfg)
		return -EINVAL;
	cfg->log = fn;
	cfg->log_data = fn ? userdata : NULL;
	return 0;
}

PIER_EXPORT int pier_config_set_socket_mode(pier_config *cfg, mode_t mode, gid_t gid)
{
	/* Permission bits only: set-id and sticky bits mean nothing on a
	 * socket. */
	if (!cfg || (mode & ~(mode_t)0777))
		return -EINVAL;
	cfg->socket_mode = mode;
	cfg->socket_gid = gid;
	return 0;
}

/* --- liveness ------------------------------------------------------------ */

PIER_EXPORT int pier_config_set_tcp_keepalive(pier_config *cfg, int idle_s, int interval_s,
					      int count)
{
	bool off = idle_s == 0 && interval_s == 0 && count == 0;

	/* Checked against the kernel's limits here, so that every socket
	 * takes them later. */
	if (!cfg || (!off && (idle_s < 1 || idle_s > PIER_MAX_KEEPALIVE_S || interval_s < 1 ||
			      interval_s > PIER_MAX_KEEPALIVE_S || count < 1 ||
			      count > PIER_MAX_KEEPALIVE_COUNT)))
		return -EINVAL;
	cfg->ka_idle_s = idle_s;
	cfg->ka_interval_s = interval_s;
	cfg->ka_count = count;
	return 0;
}

PIER_EXPORT int pier_config_set_idle_timeout(pier_config *cfg, int timeout_ms)
{
	if (!cfg || timeout_ms == 0 || timeout_ms < -1)
		return -EINVAL;
	cfg->idle_timeout_ms = timeout_ms;
	return 0;
}

PIER_EXPORT int pier_config_set_ping(pier_config *cfg, int32_t service_id, int interval_ms)
{
	/* An error response's id names no service a request could be on. */
	if (!cfg || interval_ms < -1 || (interval_ms >= 0 && service_id == PIER_SERVICE_ERROR))
		return -EINVAL;
	cfg->ping_interval_ms = interval_ms;
	cfg->ping_service = interval_ms >= 0 ? service_id : 0;
	return 0;
}

/* --- latest-only streams ------------------------------------------------- */

PIER_EXPORT int pier_config_set_stream_latest(pier_config *cfg, int32_t service_id,
					      unsigned int keep)
{
	unsigned int i;

	if (!cfg || keep > PIER_MAX_STREAM_KEEP)
		return -EINVAL;
	for (i = 0; i < cfg->nlatest && cfg->latest[i].service != service_id; i++)
		;
	if (keep == 0) {
		/* Removed, if it was there: the last one takes its place. */
		if (i < cfg->nlatest)
			cfg->latest[i] = cfg->latest[--cfg->nlatest];
		return 0;
	}
	if (i == cfg->nlatest) {
		if (cfg->nlatest == PIER_MAX_STREAM_LATEST)
			return -ENOSPC;
		cfg->nlatest++;
	}
	cfg->latest[i] = (struct stream_latest){ service_id, keep };
	return 0;
}

/* --- loop threads -------------------------------------------------------- */

/* Beyond any machine's CPU numbers (the kernel's own limit is 8192). */
#define PIER_MAX_CPUS 65536u

/* The loop settings of cfg (made on first use), to change, or NULL. */
static struct loop_attr *loop_attr_edit(pier_config *cfg)
{
	if (!cfg->loop_attr && (cfg->loop_attr = calloc(1, sizeof(*cfg->loop_attr))))
		cfg->loop_attr->policy = -1;
	return cfg->loop_attr;
}

/* A CPU set (CPU_FREE()) of the n CPUs numbered in cpus (each below
 * PIER_MAX_CPUS), its size in *size; or NULL. */
static cpu_set_t *cpu_set_of(const unsigned int *cpus, size_t n, size_t *size)
{
	unsigned int count = 0;
	cpu_set_t *set;

	for (size_t i = 0; i < n; i++)
		count = cpus[i] >= count ? cpus[i] + 1 : count;
	set = CPU_ALLOC(count);
	if (!set)
		return NULL;
	*size = CPU_ALLOC_SIZE(count);
	CPU_ZERO_S(*size, set);
	for (size_t i = 0; i < n; i++)
		CPU_SET_S(cpus[i], *size, set);
	return set;
}

PIER_EXPORT int pier_config_set_loop_affinity(pier_config *cfg, const unsigned int *cpus,
					      size_t ncpus)
{
	struct loop_attr *a;
	cpu_set_t *set = NULL;
	size_t size = 0;

	if (!cfg || (ncpus && !cpus))
		return -EINVAL;
	for (size_t i = 0; i < ncpus; i++)
		if (cpus[i] >= PIER_MAX_CPUS)
			return -EINVAL;
	if (ncpus && !(set = cpu_set_of(cpus, ncpus, &size)))
		return -ENOMEM;
	if (!(a = loop_attr_edit(cfg))) {
		if (set)
			CPU_FREE(set);
		return -ENOMEM;
	}
	if (a->cpus)
		CPU_FREE(a->cpus);
	a->cpus = set;
	a->cpus_size = size;
	return 0;
}

/* The policies a thread can be given with a priority alone
 * (SCHED_DEADLINE needs sched_setattr() and a budget). */
static bool policy_valid(int policy, int priority)
{
	switch (policy) {
	case SCHED_OTHER:
	case SCHED_BATCH:
	case SCHED_IDLE:
	case SCHED_FIFO:
	case SCHED_RR:
		return priority >= sched_get_priority_min(policy) &&
		       priority <= sched_get_priority_max(policy);
	default:
		return false;
	}
}

PIER_EXPORT int pier_config_set_loop_scheduling(pier_config *cfg, int policy, int priority)
{
	struct loop_attr *a;

	if (!cfg || (policy == -1 ? priority != 0 : !policy_valid(policy, priority)))
		return -EINVAL;
	if (!(a = loop_attr_edit(cfg)))
		return -ENOMEM;
	a->policy = policy;
	a->priority = priority;
	return 0;
}

/* --- TLS ----------------------------------------------------------------- */

/* The settings changed: the next connect builds its context anew. */
static void tls_settings_changed(struct tls_settings *s)
{
#ifdef HAVE_OPENSSL
	if (s->client_ctx)
		tls_ctx_free(s->client_ctx);
#endif
	s->client_ctx = NULL;
}

void tls_settings_free(struct tls_settings *s)
{
	if (!s)
		return;
	tls_settings_changed(s);
	free(s->ca_file);
	free(s->ca_dir);
	free(s->cert_file);
	free(s->key_file);
	free(s->server_name);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Replaces the strings *dst[i] with copies of src[i] (NULL stays NULL), all
 * or none; n is at most 2. */
static int set_strings(char **dst[], const char *const src[], size_t n)
{
	char *copy[2] = { NULL, NULL };

	for (size_t i = 0; i < n; i++) {
		if (src[i] && !(copy[i] = strdup(src[i]))) {
			for (size_t j = 0; j < i; j++)
				free(copy[j]);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(*dst[i]);
		*dst[i] = copy[i];
	}
	return 0;
}

/* The settings of cfg (made on first use), to change, or NULL with *err
 * set. */
static struct tls_settings *tls_settings_edit(pier_config *cfg, int *err)
{
#ifdef HAVE_OPENSSL
	if (!cfg->tls) {
		cfg->tls = calloc(1, sizeof(*cfg->tls));
		if (!cfg->tls) {
			*err = -ENOMEM;
			return NULL;
		}
		pthread_mutex_init(&cfg->tls->mu, NULL);
	}
	tls_settings_changed(cfg->tls);
	return cfg->tls;
#else
	*err = -PIER_ETLSUNAVAILABLE;
	return NULL;
#endif
}

PIER_EXPORT int pier_config_set_tls_ca(pier_config *cfg, const char *file, const char *dir)
{
	struct tls_settings *s;
	int r;

	if (!cfg || (file && !*file) || (dir && !*dir))
		return -EINVAL;
	/* Read now, to say which file is wrong; again on each use. */
	if ((r = tls_check_ca(file, dir)) < 0 && r != -PIER_ETLSUNAVAILABLE)
		return r;
	if (!(s = tls_settings_edit(cfg, &r)))
		return r;
	return set_strings((char **[]){ &s->ca_file, &s->ca_dir },
			   (const char *const[]){ file, dir }, 2);
}

PIER_EXPORT int pier_config_set_tls_cert(pier_config *cfg, const char *cert_file,
					 const char *key_file)
{
	struct tls_settings *s;
	int r;

	if (!cfg || !cert_file != !key_file || (cert_file && (!*cert_file || !*key_file)))
		return -EINVAL;
	if ((r = tls_check_cert(cert_file, key_file)) < 0 && r != -PIER_ETLSUNAVAILABLE)
		return r;
	if (!(s = tls_settings_edit(cfg, &r)))
		return r;
	return set_strings((char **[]){ &s->cert_file, &s->key_file },
			   (const char *const[]){ cert_file, key_file }, 2);
}

PIER_EXPORT int pier_config_set_tls_client_auth(pier_config *cfg,
						enum pier_tls_client_auth mode)
{
	struct tls_settings *s;
	int r;

	if (!cfg || (unsigned int)mode > PIER_TLS_CLIENT_CERT_REQUIRED)
		return -EINVAL;
	if (!(s = tls_settings_edit(cfg, &r)))
		return r;
	s->client_auth = mode;
	return 0;
}

PIER_EXPORT int pier_config_set_tls_server_name(pier_config *cfg, const char *name)
{
	struct tls_settings *s;
	int r;

	if (!cfg || (name && !*name))
		return -EINVAL;
	if (!(s = tls_settings_edit(cfg, &r)))
		return r;
	return set_strings((char **[]){ &s->server_name }, (const char *const[]){ name }, 1);
}
