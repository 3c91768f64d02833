/* SPDX-License-Identifier: MIT */
/*
 * Transports: one per socket kind, behind one interface.  A transport knows
 * its addresses, how to connect, listen and adopt a socket, what it can
 * carry, and how frames travel on it (its framing, see link.h); the
 * connection code knows nothing else about it.  A new transport is a file
 * with its struct transport, and an entry in transport_parse()'s table.
 */
#ifndef PIER_TRANSPORT_H
#define PIER_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define TRANSPORT_FDS 1u         /* messages can carry file descriptors */
#define TRANSPORT_CREDENTIALS 4u /* SO_PEERCRED tells who the remote is */
#define TRANSPORT_TLS 8u         /* TLS over the socket (see tls.c) */

struct framing;
struct transport;

/* A parsed address. */
struct transport_addr {
	const struct transport *t;
	/* tcp, tls */
	char host[256];
	char port[8]; /* decimal, "0" to "65535" */
	/* unix, seqpacket */
	struct sockaddr_un un;
	socklen_t un_len;
	bool abstract;
};

/* How a listening socket is made. */
struct transport_listen {
	int backlog;
	/* The socket file's permission bits, exactly (0: as the umask leaves
	 * them), and its group ((gid_t)-1: as the system gives it).  Only
	 * Unix sockets with a path have a file; the others fail with -EINVAL
	 * when either is set. */
	mode_t file_mode;
	gid_t file_gid;
};

struct transport {
	const char *scheme; /* as in "scheme://" */
	unsigned int caps;
	int sock_type;
	const struct framing *framing;
	/* Parses what follows "scheme://"; 0 or -EINVAL/-ENAMETOOLONG. */
	int (*parse)(const struct transport *t, const char *rest, struct transport_addr *a);
	/* A connected socket (non-blocking, close-on-exec), or -errno. */
	int (*connect)(const struct transport_addr *a, int timeout_ms);
	/* A listening socket (non-blocking, close-on-exec), or -errno; on
	 * failure, nothing is left behind (no fd, no socket file). */
	int (*listen)(const struct transport_addr *a, const struct transport_listen *o);
	/* Whether an adopted socket of this domain and type is this
	 * transport's (NULL: none can be adopted). */
	bool (*adopts)(int domain, int type);
	/* Readies an accepted or adopted socket (options such as TCP_NODELAY). */
	void (*prepare)(int fd);
	/* Sets TCP keepalive on fd: probes after idle_s seconds of silence,
	 * every interval_s seconds, count of them (values the kernel takes).
	 * NULL: the transport has none (its sockets are left alone). */
	void (*keepalive)(int fd, int idle_s, int interval_s, int count);
	/* Formats the local or remote address of fd as an address string. */
	int (*describe)(const struct transport *t, int fd, bool remote, char *buf, size_t len);
};

extern const struct transport transport_tcp;
extern const struct transport transport_unix;
extern const struct transport transport_seqpacket;
extern const struct transport transport_tls;

/* Parses "scheme://rest" with the transport its scheme names. */
int transport_parse(const char *address, struct transport_addr *a);

/* The transport whose socket type and family fd has, for adopting it. */
int transport_for_fd(int fd, const struct transport **t);

/* Waits for a non-blocking connect() on fd to finish. */
int transport_connect_wait(int fd, int timeout_ms);

#endif
