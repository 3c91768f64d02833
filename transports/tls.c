/* SPDX-License-Identifier: MIT */
/* TLS over TCP: tls://host:port, with host as for tcp://.  The socket is a
 * TCP socket; the connection runs a TLS session over it (lib/tls.h).  In a
 * build without OpenSSL every tls:// address fails with
 * -PIER_ETLSUNAVAILABLE. */
#include "config.h"

#include <pier.h>

#include "transport.h"

static int tls_parse(const struct transport *t, const char *rest, struct transport_addr *a)
{
#ifdef HAVE_OPENSSL
	return transport_tcp.parse(t, rest, a);
#else
	return -PIER_ETLSUNAVAILABLE;
#endif
}

static int tls_connect(const struct transport_addr *a, int timeout_ms)
{
	return transport_tcp.connect(a, timeout_ms);
}

static int tls_listen(const struct transport_addr *a, int backlog)
{
	return transport_tcp.listen(a, backlog);
}

static void tls_prepare(int fd)
{
	transport_tcp.prepare(fd);
}

static int tls_describe(const struct transport *t, int fd, bool remote, char *buf, size_t len)
{
	return transport_tcp.describe(t, fd, remote, buf, len);
}

const struct transport transport_tls = {
	.scheme = "tls",
	.caps = TRANSPORT_TLS,
	.sock_type = SOCK_STREAM,
	.parse = tls_parse,
	.connect = tls_connect,
	.listen = tls_listen,
	.prepare = tls_prepare,
	.describe = tls_describe,
};
