/* SPDX-License-Identifier: MIT */
/* TCP: tcp://host:port, where host is a name, an IPv4 address, or an IPv6
 * address in brackets; "*" or an empty host listens on every address.  The
 * port is a decimal number, 1 to 65535, or 0 on a listener for any free one.
 * TLS: tls://host:port, the same TCP socket with a TLS session over it
 * (its framing in tls.c, the session in tls-session.c); in a build without
 * OpenSSL every tls:// address fails with -PIER_ETLSUNAVAILABLE. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier.h>

#include "private.h"
#include "link.h"
#include "transport.h"

/* A port number in decimal, 0 to 65535, kept in its plain form.  Service
 * names are refused: what they mean depends on /etc/services. */
static int parse_port(const char *s, struct transport_addr *a)
{
	unsigned long v;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	v = strtoul(s, NULL, 10); /* ULONG_MAX when far too long */
	if (v > 65535)
		return -EINVAL;
	snprintf(a->port, sizeof(a->port), "%lu", v);
	return 0;
}

static int tcp_parse(const struct transport *t, const char *rest, struct transport_addr *a)
{
	const char *host = rest, *host_end, *colon;

	if (*rest == '[') {
		host = rest + 1;
		host_end = strchr(host, ']');
		if (!host_end || host_end[1] != ':')
			return -EINVAL;
		colon = host_end + 1;
	} else {
		colon = strrchr(rest, ':');
		if (!colon)
			return -EINVAL;
		host_end = colon;
		if (memchr(rest, ':', (size_t)(colon - rest)))
			return -EINVAL; /* a bare IPv6 address needs brackets */
	}
	if ((size_t)(host_end - host) >= sizeof(a->host))
		return -ENAMETOOLONG;
	if (parse_port(colon + 1, a) < 0)
		return -EINVAL;
	memcpy(a->host, host, (size_t)(host_end - host));
	a->host[host_end - host] = '\0';
	if (strcmp(a->host, "*") == 0)
		a->host[0] = '\0';
	return 0;
}

/* getaddrinfo's errors as errno values. */
static int gai_errno(int r)
{
	switch (r) {
	case EAI_NONAME:
#ifdef EAI_NODATA
	case EAI_NODATA:
#endif
		return -PIER_EHOSTNOTFOUND;
#ifdef EAI_ADDRFAMILY
	case EAI_ADDRFAMILY:
		/* The host exists, but has no address of a family this
		 * machine has configured. */
		return -EHOSTUNREACH;
#endif
	case EAI_AGAIN:
	case EAI_FAIL:
		return -PIER_ERESOLVER;
	case EAI_MEMORY:
		return -ENOMEM;
	case EAI_SYSTEM:
		return -errno;
	default:
		return -EINVAL;
	}
}

static bool tcp_adopts(int domain, int type)
{
	return (domain == AF_INET || domain == AF_INET6) && type == SOCK_STREAM;
}

static void tcp_prepare(int fd)
{
	int one = 1;

	/* Requests are small and latency matters: no Nagle delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void tcp_keepalive(int fd, int idle_s, int interval_s, int count)
{
	/* Keepalive probes go only while nothing sent waits for its
	 * acknowledgement; the user timeout bounds that case too, by the
	 * same time the probes would take to give up. */
	long long total_ms = ((long long)idle_s + (long long)interval_s * count) * 1000;
	unsigned int user_ms = total_ms > INT_MAX ? INT_MAX : (unsigned int)total_ms;
	int one = 1;

	/* The configuration checked the values against the kernel's
	 * limits: a TCP socket takes them. */
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof(idle_s));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof(interval_s));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_ms, sizeof(user_ms));
}

static int tcp_connect(const struct transport_addr *a, int timeout_ms)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV,
	};
	struct addrinfo *res, *ai;
	int r, fd = -1, err = -ECONNREFUSED;

	if (strcmp(a->port, "0") == 0)
		return -EINVAL; /* "any port" means something to a listener only */
	r = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res);
	if (r != 0)
		return gai_errno(r);
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			err = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno == EINPROGRESS ? transport_connect_wait(fd, timeout_ms) : -errno;
		if (err == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return err;
	tcp_prepare(fd);
	return fd;
}

static int tcp_listen(const struct transport_addr *a, const struct transport_listen *o)
{
	struct addrinfo hints = {
		.ai_socktype = SOCK_STREAM,
		.ai_flags = AI_PASSIVE | AI_ADDRCONFIG | AI_NUMERICSERV,
	};
	struct addrinfo *res;
	int r, fd, one = 1;

	if (o->file_mode || o->file_gid != (gid_t)-1)
		return -EINVAL; /* no socket file: anyone on the network may connect */
	r = getaddrinfo(a->host[0] ? a->host : NULL, a->port, &hints, &res);
	if (r != 0)
		return gai_errno(r);
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, o->backlog) < 0) {
		r = -errno;
		close(fd);
		goto out;
	}
	r = fd;
out:
	freeaddrinfo(res);
	return r;
}

static int tcp_describe(const struct transport *t, int fd, bool remote, char *buf,
			size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	const void *addr;
	unsigned int port;
	int n;

	if ((remote ? getpeername : getsockname)(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

		addr = &in->sin_addr;
		port = ntohs(in->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

		addr = &in6->sin6_addr;
		port = ntohs(in6->sin6_port);
	} else {
		return -EAFNOSUPPORT;
	}
	inet_ntop(ss.ss_family, addr, host, sizeof(host));
	n = snprintf(buf, len, ss.ss_family == AF_INET6 ? "%s://[%s]:%u" : "%s://%s:%u",
		     t->scheme, host, port);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const struct transport transport_tcp = {
	.scheme = "tcp",
	.caps = 0,
	.sock_type = SOCK_STREAM,
	.framing = &framing_stream,
	.parse = tcp_parse,
	.connect = tcp_connect,
	.listen = tcp_listen,
	.adopts = tcp_adopts,
	.prepare = tcp_prepare,
	.keepalive = tcp_keepalive,
	.describe = tcp_describe,
};

static int tls_parse(const struct transport *t, const char *rest, struct transport_addr *a)
{
#ifdef HAVE_OPENSSL
	return tcp_parse(t, rest, a);
#else
	return -PIER_ETLSUNAVAILABLE;
#endif
}

const struct transport transport_tls = {
	.scheme = "tls",
	.caps = TRANSPORT_TLS,
	.sock_type = SOCK_STREAM,
	.framing = &framing_tls,
	.parse = tls_parse,
	.connect = tcp_connect,
	.listen = tcp_listen,
	.prepare = tcp_prepare,
	.keepalive = tcp_keepalive,
	.describe = tcp_describe,
};
