/* SPDX-License-Identifier: MIT */
/* The public handles of a peer: connecting and adopting, the read half
 * (pier_peer) and the write half (pier_writer). */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "msg.h"
#include "private.h"
#include "route.h"
#include "tls-session.h"
#include "transport.h"

/* --- creating peers ------------------------------------------------------ */

/* Makes fd (taken) a peer, with tls its TLS session (taken, or NULL); on
 * failure both are closed. */
static int peer_create(pier_peer **out, int fd, const struct transport *t,
		       const pier_config *cfg, struct tls *tls)
{
	struct pier_config conf;
	struct pier_loop *loop;
	struct pier_peer *p;
	int r;

	if (cfg)
		conf = *cfg;
	else
		config_defaults(&conf);
	if (conf.loop) {
		loop = loop_ref(conf.loop);
	} else {
		r = loop_new(&loop, conf.loop_attr);
		if (r < 0) {
			close(fd);
			tls_free(tls);
			return r;
		}
	}
	r = route_peer_new(&p, fd, t, &conf, loop, tls);
	if (r < 0) {
		close(fd);
		tls_free(tls);
		loop_unref(loop);
		return r;
	}
	/* Once nothing can fail: an adopted socket that stays the caller's
	 * keeps its options. */
	t->prepare(fd);
	conn_start(&p->conn);
	*out = p;
	return 0;
}

/* The socket blocks; pier's own non-blocking calls say MSG_DONTWAIT. */
static int make_blocking(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* A TLS session for connecting to a (the name its certificate must show),
 * or NULL with *err set. */
static struct tls *client_session(const struct transport_addr *a, const pier_config *cfg,
				  int *err)
{
	struct tls_settings *s = cfg ? cfg->tls : NULL;
	const char *host = s && s->server_name ? s->server_name : a->host;
	struct tls_ctx *ctx;
	struct tls *tls;

	if (!*host) {
		*err = -EINVAL; /* no name to check the certificate against */
		return NULL;
	}
	*err = tls_client_ctx(&ctx, s);
	if (*err < 0)
		return NULL;
	*err = tls_new(&tls, ctx, host);
	tls_ctx_free(ctx); /* the session holds its own reference */
	return *err < 0 ? NULL : tls;
}

PIER_EXPORT int pier_peer_connect(pier_peer **out, const char *address,
				  const pier_config *cfg)
{
	int timeout = cfg ? cfg->connect_timeout_ms : PIER_DEFAULT_CONNECT_TIMEOUT_MS;
	struct timespec deadline;
	struct transport_addr a;
	struct tls *tls = NULL;
	struct conn *c;
	pier_peer *p;
	int r, fd;

	if (!out || !address)
		return -EINVAL;
	if (timeout > 0)
		deadline = deadline_after(timeout);
	r = transport_parse(address, &a);
	if (r < 0)
		return r;
	if ((a.t->caps & TRANSPORT_TLS) && !(tls = client_session(&a, cfg, &r)))
		return r;
	fd = a.t->connect(&a, timeout);
	if (fd < 0) {
		tls_free(tls);
		return fd;
	}
	r = make_blocking(fd);
	if (r < 0) {
		close(fd);
		tls_free(tls);
		return r;
	}
	r = peer_create(&p, fd, a.t, cfg, tls);
	if (r < 0)
		return r;
	if (!tls) {
		*out = p;
		return 0;
	}
	/* The loop runs the handshake; the connect timeout covers it too. */
	c = &p->conn;
	pthread_mutex_lock(&c->mu);
	r = timeout == 0 ? -ETIMEDOUT : conn_wait_ready_locked(c, timeout > 0 ? &deadline : NULL);
	pthread_mutex_unlock(&c->mu);
	if (r < 0) {
		conn_abort(c);
		pier_peer_free(p);
		return r;
	}
	*out = p;
	return 0;
}

PIER_EXPORT int pier_peer_adopt(pier_peer **out, int fd, const pier_config *cfg)
{
	const struct transport *t;
	int r, copy, flags;

	if (!out || fd < 0)
		return -EINVAL;
	r = transport_for_fd(fd, &t);
	if (r < 0)
		return r;
	flags = fcntl(fd, F_GETFL);
	if (flags < 0)
		return -errno;
	/* Work on a close-on-exec duplicate until nothing can fail, so that
	 * the caller keeps fd on every failure. */
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return -errno;
	r = make_blocking(copy);
	if (r < 0)
		close(copy);
	else
		r = peer_create(out, copy, t, cfg, NULL); /* closes copy on failure */
	if (r < 0) {
		/* The duplicate shares fd's file status flags: as they were. */
		fcntl(fd, F_SETFL, flags);
		return r;
	}
	close(fd);
	return 0;
}

PIER_EXPORT void pier_peer_free(pier_peer *peer)
{
	struct conn *c;
	bool last = false;

	if (!peer)
		return;
	c = &peer->conn;
	pthread_mutex_lock(&c->mu);
	peer->reader = false;
	route_drain_locked(peer, &peer->in);
	/* Requests now get refused by the loop. */
	conn_rd_background_locked(c);
	conn_handle_unref_locked(c, &last);
	pthread_mutex_unlock(&c->mu);
	if (last)
		conn_release_last(c);
}

PIER_EXPORT pier_writer *pier_peer_get_writer(pier_peer *peer)
{
	return peer ? &peer->writer : NULL;
}

PIER_EXPORT int pier_peer_recv(pier_peer *peer, pier_msg **msg, pier_received_request **req,
			       int timeout_ms)
{
	struct pier_msg *m;
	struct conn *c;
	int r;

	if (!peer || !msg || !req || timeout_ms < -1)
		return -EINVAL;
	c = &peer->conn;
	pthread_mutex_lock(&c->mu);
	r = msgq_wait_locked(c, &peer->in, false, timeout_ms);
	m = r == 0 ? route_take_locked(peer) : NULL;
	pthread_mutex_unlock(&c->mu);
	if (!m)
		return r;
	*req = m->req ? &m->req->h.r : NULL;
	m->req = NULL;
	*msg = m;
	return 0;
}

PIER_EXPORT int pier_peer_fd(pier_peer *peer)
{
	int r;

	if (!peer)
		return -EINVAL;
	pthread_mutex_lock(&peer->conn.mu);
	r = msgq_fd_locked(&peer->conn, &peer->in);
	pthread_mutex_unlock(&peer->conn.mu);
	return r;
}

PIER_EXPORT int pier_peer_remote_address(pier_peer *peer, char *buf, size_t len)
{
	size_t n;

	if (!peer || !buf || len == 0)
		return -EINVAL;
	n = strlen(peer->conn.remote);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, peer->conn.remote, n + 1);
	return 0;
}

PIER_EXPORT int pier_peer_credentials(pier_peer *peer, int32_t *pid, uint32_t *uid,
				      uint32_t *gid)
{
	struct ucred cred;
	int r;

	if (!peer)
		return -EINVAL;
	r = conn_credentials(&peer->conn, &cred);
	if (r < 0)
		return r;
	if (pid)
		*pid = cred.pid;
	if (uid)
		*uid = cred.uid;
	if (gid)
		*gid = cred.gid;
	return 0;
}

PIER_EXPORT int pier_peer_tls_subject(pier_peer *peer, char *buf, size_t len)
{
	struct conn *c;
	int r = 0;

	if (!peer || !buf || len == 0)
		return -EINVAL;
	c = &peer->conn;
	if (!(c->t->caps & TRANSPORT_TLS))
		return -ENOTSUP;
	pthread_mutex_lock(&c->mu);
	if (!c->tls_subject)
		r = -ENODATA;
	else if (strlen(c->tls_subject) >= len)
		r = -ENAMETOOLONG;
	else
		strcpy(buf, c->tls_subject);
	pthread_mutex_unlock(&c->mu);
	return r;
}

PIER_EXPORT uint64_t pier_peer_stat(pier_peer *peer, enum pier_stat stat)
{
	if (!peer || (unsigned int)stat >= PIER_STAT_END_)
		return 0;
	return atomic_load_explicit(&peer->conn.stats[stat], memory_order_relaxed);
}

/* --- write halves -------------------------------------------------------- */

PIER_EXPORT pier_writer *pier_writer_ref(pier_writer *w)
{
	struct conn *c;

	if (!w)
		return NULL;
	c = &w->peer->conn;
	pthread_mutex_lock(&c->mu);
	w->peer->writer_refs++;
	conn_handle_ref_locked(c);
	pthread_mutex_unlock(&c->mu);
	return w;
}

PIER_EXPORT pier_writer *pier_writer_unref(pier_writer *w)
{
	struct conn *c;
	bool last = false;

	if (!w)
		return NULL;
	c = &w->peer->conn;
	pthread_mutex_lock(&c->mu);
	assert(w->peer->writer_refs > 0);
	w->peer->writer_refs--;
	conn_handle_unref_locked(c, &last);
	pthread_mutex_unlock(&c->mu);
	if (last)
		conn_release_last(c);
	return NULL;
}

PIER_EXPORT int pier_writer_send_stream(pier_writer *w, int32_t service_id, const void *body,
					size_t len, const int *fds, size_t nfds)
{
	struct pier_header h = { PIER_MSG_STREAM, 0, service_id };
	struct iovec v;
	struct conn_body b = conn_body_one(&v, body, len);

	if (!w || (len && !body) || (nfds && !fds))
		return -EINVAL;
	return conn_send(&w->peer->conn, &h, &b, fds, nfds, false);
}

PIER_EXPORT int pier_writer_send_streamv(pier_writer *w, int32_t service_id,
					 const struct iovec *iov, size_t iovcnt, const int *fds,
					 size_t nfds)
{
	struct pier_header h = { PIER_MSG_STREAM, 0, service_id };
	struct conn_body b;

	if (!w || (nfds && !fds) || conn_body_pieces(&b, iov, iovcnt) < 0)
		return -EINVAL;
	return conn_send(&w->peer->conn, &h, &b, fds, nfds, false);
}

PIER_EXPORT size_t pier_writer_max_fds(const pier_writer *w)
{
	return w ? w->peer->conn.cfg.max_fds : 0;
}

PIER_EXPORT int pier_writer_same_peer(const pier_writer *a, const pier_writer *b)
{
	return a && b && a->peer == b->peer;
}

PIER_EXPORT void pier_writer_close(pier_writer *w)
{
	if (w)
		conn_close(&w->peer->conn);
}

PIER_EXPORT int pier_writer_flush(pier_writer *w)
{
	if (!w)
		return -EINVAL;
	return conn_send_flush(&w->peer->conn, false);
}

PIER_EXPORT void pier_writer_abort(pier_writer *w)
{
	if (w)
		conn_abort(&w->peer->conn);
}
