/* SPDX-License-Identifier: MIT */
/* Peers: routing of incoming messages, queues and waiting, the read half and
 * the write half. */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "peer.h"
#include "private.h"
#include "tls.h"

/* What a queued message costs against the receive limit besides its body,
 * so that a flood of empty messages is bounded too. */
#define MSG_OVERHEAD sizeof(struct pier_msg)

void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}

struct timespec deadline_after(int timeout_ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/* --- queues -------------------------------------------------------------- */

void msgq_init(struct msgq *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->evfd = -1;
	q->readable = false;
	cond_init_monotonic(&q->cond);
}

void msgq_fini(struct msgq *q)
{
	pthread_cond_destroy(&q->cond);
	if (q->evfd >= 0)
		close(q->evfd);
}

/* A call to receive from q would not block. */
static bool msgq_ready(const struct conn *c, const struct msgq *q, const struct req *r)
{
	return q->head || c->error || (r && r->done);
}

/* Keeps the pollable fd readable exactly while a receive would not block. */
static void msgq_sync_fd_locked(struct conn *c, struct msgq *q, struct req *r, bool ready)
{
	if (q->evfd >= 0 && ready != q->readable) {
		uint64_t v = 1;
		ssize_t n;

		n = ready ? write(q->evfd, &v, sizeof(v)) : read(q->evfd, &v, sizeof(v));
		(void)n;
		q->readable = ready;
	}
}

void msgq_changed_locked(struct conn *c, struct msgq *q, struct req *r)
{
	bool ready = msgq_ready(c, q, r);

	if (ready) {
		pthread_cond_broadcast(&q->cond);
		if (q == c->rd_q && c->wake_fd >= 0 &&
		    !pthread_equal(c->rd_thread, pthread_self())) {
			/* The thread waiting on q reads the socket: cut that
			 * short. */
			uint64_t v = 1;
			ssize_t n = write(c->wake_fd, &v, sizeof(v));

			(void)n;
		}
	}
	msgq_sync_fd_locked(c, q, r, ready);
}

int msgq_fd_locked(struct conn *c, struct msgq *q, struct req *r)
{
	if (q->evfd < 0) {
		q->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->evfd < 0)
			return -errno;
		q->readable = false;
		msgq_changed_locked(c, q, r);
		/* Nobody may be waiting when it becomes readable: the loop
		 * reads from now on. */
		c->polled = true;
		conn_rd_kick_locked(c);
	}
	return q->evfd;
}

void msgq_push_locked(struct conn *c, struct msgq *q, struct req *r, struct pier_msg *m)
{
	m->next = NULL;
	*q->tail = m;
	q->tail = &m->next;
	conn_queued_locked(c, m->len + MSG_OVERHEAD, m->nfds);
	msgq_changed_locked(c, q, r);
}

struct pier_msg *msgq_pop_locked(struct conn *c, struct msgq *q, struct req *r)
{
	struct pier_msg *m = q->head;

	if (!m)
		return NULL;
	q->head = m->next;
	if (!q->head)
		q->tail = &q->head;
	m->next = NULL;
	conn_consumed_locked(c, m->len + MSG_OVERHEAD, m->nfds);
	/* Taking a message wakes nobody: only the fd may have to follow. */
	msgq_sync_fd_locked(c, q, r, msgq_ready(c, q, r));
	return m;
}

static void waiter_add(struct conn *c, struct rd_waiter *w, bool *listed)
{
	if (*listed)
		return;
	w->next = c->waiters;
	c->waiters = w;
	*listed = true;
}

static void waiter_del(struct conn *c, struct rd_waiter *w, bool *listed)
{
	if (!*listed)
		return;
	for (struct rd_waiter **p = &c->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			break;
		}
	}
	*listed = false;
}

/* A thread waiting for a message reads the socket itself while nobody else
 * does; otherwise it waits for the reader to hand it a message, or the role.
 * On the way out it hands the role on to another waiting thread (or to the
 * loop), if anybody needs it. */
int msgq_wait_locked(struct conn *c, struct msgq *q, struct req *r, int timeout_ms)
{
	struct rd_waiter w = { .q = q };
	struct timespec deadline;
	bool listed = false, expired = false;
	/* Our own response ends a received request's wait; nothing read
	 * does, so a reading thread must be woken for it. */
	bool interruptible = r && !r->sent;
	int ret;

	if (timeout_ms > 0)
		deadline = deadline_after(timeout_ms);
	for (;;) {
		int e;

		if (q->head) {
			ret = 0;
			break;
		}
		if (r && r->done) {
			ret = -PIER_EDONE;
			break;
		}
		if (c->error) {
			ret = c->error;
			break;
		}
		if (expired) {
			ret = timeout_ms == 0 ? -EAGAIN : -ETIMEDOUT;
			break;
		}
		if (c->rd_owner == RD_NONE && !c->read_paused && !c->loop_only) {
			waiter_del(c, &w, &listed);
			e = conn_read_locked(c, q, interruptible, timeout_ms, &deadline);
			if (e == -EAGAIN || e == -ETIMEDOUT)
				expired = true;
			else if (e < 0 && !c->error) {
				ret = e; /* could not wait at all */
				break;
			}
			continue;
		}
		if (timeout_ms == 0) {
			expired = true;
			continue;
		}
		waiter_add(c, &w, &listed);
		e = timeout_ms < 0 ? pthread_cond_wait(&q->cond, &c->mu)
				   : pthread_cond_timedwait(&q->cond, &c->mu, &deadline);
		if (e == ETIMEDOUT)
			expired = true;
	}
	waiter_del(c, &w, &listed);
	conn_rd_kick_locked(c);
	return ret;
}

void msgq_drain_locked(struct conn *c, struct msgq *q)
{
	struct pier_msg *m;

	while ((m = q->head) != NULL) {
		q->head = m->next;
		conn_consumed_locked(c, m->len + MSG_OVERHEAD, m->nfds);
		if (m->req)
			req_release_locked(m->req, true, NULL);
		msg_free(m);
	}
	q->tail = &q->head;
}

/* --- routing (by whoever reads) ------------------------------------------ */

static void count(struct conn *c, enum pier_stat s)
{
	atomic_fetch_add_explicit(&c->stats[s], 1, memory_order_relaxed);
}

/* Answers a request nobody will see with an error response. */
static void refuse_locked(struct conn *c, uint32_t id, const char *why)
{
	struct pier_header h = { PIER_MSG_RESPONSE, id, PIER_SERVICE_ERROR };

	conn_send(c, &h, why, strlen(why), NULL, 0, true);
}

static void route_request_locked(struct conn *c, struct pier_msg *m)
{
	struct req *r;

	if (idmap_get(&c->received, m->hdr.request_id)) {
		/* Answering would hit the open request of that id. */
		count(c, PIER_STAT_DUPLICATE_IDS);
		msg_free(m);
		return;
	}
	if (!c->reader) {
		count(c, PIER_STAT_DROPPED);
		refuse_locked(c, m->hdr.request_id, "the peer does not receive requests");
		msg_free(m);
		return;
	}
	if (c->received.count >= c->cfg.max_open) {
		count(c, PIER_STAT_REFUSED_REQUESTS);
		refuse_locked(c, m->hdr.request_id, "too many open requests");
		msg_free(m);
		return;
	}
	r = req_new(c, m->hdr.request_id, m->hdr.service_id, false);
	if (!r) {
		refuse_locked(c, m->hdr.request_id, "out of memory");
		msg_free(m);
		return;
	}
	m->req = r;
	msgq_push_locked(c, &c->in, NULL, m);
}

static void route_to_request_locked(struct conn *c, struct pier_msg *m, struct idmap *table)
{
	struct req *r = idmap_get(table, m->hdr.request_id);
	bool response = m->hdr.type == PIER_MSG_RESPONSE;

	if (!r) {
		count(c, PIER_STAT_UNKNOWN_IDS);
		msg_free(m);
		return;
	}
	if (response) {
		idmap_del(table, r->id);
		r->in_table = false;
		r->done = true;
	}
	if (r->reader) {
		msgq_push_locked(c, &r->q, r, m);
		return;
	}
	/* The application let go of this request: drop quietly. */
	count(c, PIER_STAT_DROPPED);
	msg_free(m);
	if (response && !r->writers)
		req_free(r);
}

static void route_locked(struct conn *c, struct pier_msg *m)
{
	switch (m->hdr.type) {
	case PIER_MSG_REQUEST:
		route_request_locked(c, m);
		break;
	case PIER_MSG_RESPONSE:
	case PIER_MSG_RESPONDER_UPDATE:
		route_to_request_locked(c, m, &c->sent);
		break;
	case PIER_MSG_REQUESTER_UPDATE:
		route_to_request_locked(c, m, &c->received);
		break;
	case PIER_MSG_STREAM:
		if (c->reader) {
			msgq_push_locked(c, &c->in, NULL, m);
		} else {
			count(c, PIER_STAT_DROPPED);
			msg_free(m);
		}
		break;
	}
}

void peer_route(struct conn *c, struct pier_msg *list)
{
	uint64_t n = 0, bytes = 0;

	/* Counted before any of them can be seen. */
	for (struct pier_msg *m = list; m; m = m->next) {
		n++;
		bytes += m->len;
	}
	atomic_fetch_add_explicit(&c->stats[PIER_STAT_MSGS_RECEIVED], n, memory_order_relaxed);
	atomic_fetch_add_explicit(&c->stats[PIER_STAT_BYTES_RECEIVED], bytes,
				  memory_order_relaxed);
	pthread_mutex_lock(&c->mu);
	while (list) {
		struct pier_msg *m = list;

		list = m->next;
		m->next = NULL;
		route_locked(c, m);
	}
	pthread_mutex_unlock(&c->mu);
}

/* --- handles and the connection's lifetime ------------------------------- */

void conn_handle_ref_locked(struct conn *c)
{
	c->handles++;
}

void conn_handle_unref_locked(struct conn *c, bool *last)
{
	assert(c->handles > 0);
	if (--c->handles == 0)
		*last = true;
}

/* The application holds nothing of c any more: the loop closes it. */
void conn_release_last(struct conn *c)
{
	struct pier_loop *loop = c->loop;

	conn_post(c, CONN_EV_RELEASE);
	loop_unref(loop); /* for a loop of its own: waits until closed */
}

/* --- creating peers ------------------------------------------------------ */

/* Makes fd (taken) a peer, with tls its TLS session (taken, or NULL); on
 * failure both are closed. */
static int peer_create(pier_peer **out, int fd, const struct transport *t,
		       const pier_config *cfg, struct tls *tls)
{
	struct pier_config conf;
	struct pier_loop *loop;
	struct conn *c;
	int r;

	if (cfg)
		conf = *cfg;
	else
		config_defaults(&conf);
	if (conf.loop) {
		loop = loop_ref(conf.loop);
	} else {
		r = loop_new(&loop);
		if (r < 0) {
			close(fd);
			tls_free(tls);
			return r;
		}
	}
	t->prepare(fd);
	r = conn_new(&c, fd, t, &conf, loop, tls);
	if (r < 0) {
		close(fd);
		tls_free(tls);
		loop_unref(loop);
		return r;
	}
	c->reader = true;
	c->handles = 1;
	conn_post(c, CONN_EV_START);
	*out = (pier_peer *)c;
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
	c = conn_of_peer(p);
	pthread_mutex_lock(&c->mu);
	r = timeout == 0 ? -ETIMEDOUT : conn_wait_tls_locked(c, timeout > 0 ? &deadline : NULL);
	pthread_mutex_unlock(&c->mu);
	if (r < 0) {
		pier_writer_abort(&c->writer);
		pier_peer_free(p);
		return r;
	}
	*out = p;
	return 0;
}

PIER_EXPORT int pier_peer_adopt(pier_peer **out, int fd, const pier_config *cfg)
{
	const struct transport *t;
	int r, copy;

	if (!out || fd < 0)
		return -EINVAL;
	r = transport_for_fd(fd, &t);
	if (r < 0)
		return r;
	/* Work on a close-on-exec duplicate until nothing can fail, so that
	 * the caller keeps fd on every failure. */
	copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return -errno;
	r = make_blocking(copy);
	if (r < 0) {
		close(copy);
		return r;
	}
	r = peer_create(out, copy, t, cfg, NULL);
	if (r < 0)
		return r;
	close(fd);
	return 0;
}

PIER_EXPORT void pier_peer_free(pier_peer *peer)
{
	struct conn *c = conn_of_peer(peer);
	bool last = false;

	if (!peer)
		return;
	pthread_mutex_lock(&c->mu);
	c->reader = false;
	msgq_drain_locked(c, &c->in);
	/* Requests now get refused by the loop. */
	conn_rd_kick_locked(c);
	conn_handle_unref_locked(c, &last);
	pthread_mutex_unlock(&c->mu);
	if (last)
		conn_release_last(c);
}

PIER_EXPORT pier_writer *pier_peer_get_writer(pier_peer *peer)
{
	return peer ? &conn_of_peer(peer)->writer : NULL;
}

PIER_EXPORT int pier_peer_recv(pier_peer *peer, pier_msg **msg, pier_received_request **req,
			       int timeout_ms)
{
	struct conn *c = conn_of_peer(peer);
	struct pier_msg *m;
	int r;

	if (!peer || !msg || !req || timeout_ms < -1)
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	r = msgq_wait_locked(c, &c->in, NULL, timeout_ms);
	m = r == 0 ? msgq_pop_locked(c, &c->in, NULL) : NULL;
	pthread_mutex_unlock(&c->mu);
	if (!m)
		return r;
	*req = (pier_received_request *)m->req;
	m->req = NULL;
	*msg = m;
	return 0;
}

PIER_EXPORT int pier_peer_fd(pier_peer *peer)
{
	struct conn *c = conn_of_peer(peer);
	int r;

	if (!peer)
		return -EINVAL;
	pthread_mutex_lock(&c->mu);
	r = msgq_fd_locked(c, &c->in, NULL);
	pthread_mutex_unlock(&c->mu);
	return r;
}

PIER_EXPORT int pier_peer_remote_address(pier_peer *peer, char *buf, size_t len)
{
	struct conn *c = conn_of_peer(peer);
	size_t n;

	if (!peer || !buf || len == 0)
		return -EINVAL;
	n = strlen(c->remote);
	if (n >= len)
		return -ENAMETOOLONG;
	memcpy(buf, c->remote, n + 1);
	return 0;
}

PIER_EXPORT int pier_peer_credentials(pier_peer *peer, int32_t *pid, uint32_t *uid,
				      uint32_t *gid)
{
	struct conn *c = conn_of_peer(peer);
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	if (!peer)
		return -EINVAL;
	if (!(c->t->caps & TRANSPORT_CREDENTIALS))
		return -ENOTSUP;
	pthread_mutex_lock(&c->out_mu); /* the fd is closed under it */
	fd = c->fd;
	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		fd = -1;
	pthread_mutex_unlock(&c->out_mu);
	if (fd < 0)
		return -ENOTCONN;
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
	struct conn *c = conn_of_peer(peer);
	int r = 0;

	if (!peer || !buf || len == 0)
		return -EINVAL;
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
	return atomic_load_explicit(&conn_of_peer(peer)->stats[stat], memory_order_relaxed);
}

/* --- write halves -------------------------------------------------------- */

PIER_EXPORT pier_writer *pier_writer_ref(pier_writer *w)
{
	if (!w)
		return NULL;
	pthread_mutex_lock(&w->conn->mu);
	w->conn->writer_refs++;
	conn_handle_ref_locked(w->conn);
	pthread_mutex_unlock(&w->conn->mu);
	return w;
}

PIER_EXPORT pier_writer *pier_writer_unref(pier_writer *w)
{
	struct conn *c;
	bool last = false;

	if (!w)
		return NULL;
	c = w->conn;
	pthread_mutex_lock(&c->mu);
	assert(c->writer_refs > 0);
	c->writer_refs--;
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

	if (!w || (len && !body) || (nfds && !fds))
		return -EINVAL;
	return conn_send(w->conn, &h, body, len, fds, nfds, false);
}

PIER_EXPORT unsigned int pier_writer_max_fds(const pier_writer *w)
{
	return w ? w->conn->cfg.max_fds : 0;
}

PIER_EXPORT int pier_writer_same_peer(const pier_writer *a, const pier_writer *b)
{
	return a && b && a->conn == b->conn;
}

PIER_EXPORT void pier_writer_close(pier_writer *w)
{
	struct conn *c;

	if (!w)
		return;
	c = w->conn;
	/* Sending stops now; what is queued still goes out. */
	pthread_mutex_lock(&c->out_mu);
	if (!c->out_error)
		c->out_error = -PIER_ESHUTDOWN;
	pthread_mutex_unlock(&c->out_mu);
	conn_post(c, CONN_EV_CLOSE);
}

PIER_EXPORT void pier_writer_abort(pier_writer *w)
{
	if (w)
		conn_post(w->conn, CONN_EV_ABORT);
}
