/* SPDX-License-Identifier: MIT */
/* Helpers for the peer suites: connected pairs over every transport, and
 * short forms of the calls the tests make all the time. */
#ifndef PIER_TEST_PEERS_H
#define PIER_TEST_PEERS_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>

#include <pier.h>

#include "harness.h"

/* The ways a pair of peers gets connected; every conformance test runs
 * once per kind. */
enum pair_kind {
	PAIR_TCP,        /* listener and connect, tcp://127.0.0.1 */
	PAIR_TCP6,       /* listener and connect, tcp://[::1] */
	PAIR_UNIX,       /* listener and connect, unix:///path */
	PAIR_SEQPACKET,  /* listener and connect, seqpacket:///path */
	PAIR_UNIX_FD,    /* socketpair, adopted */
	PAIR_SEQPACKET_FD,
	PAIR_ABSTRACT,   /* listener and connect, seqpacket://@name */
#ifdef HAVE_OPENSSL
	PAIR_TLS,        /* listener and connect, tls://127.0.0.1, test PKI */
#endif
	PAIR_KINDS
};

extern const char *const pair_kind_name[PAIR_KINDS];

bool pair_kind_has_fds(enum pair_kind kind);
/* Whether this machine has an IPv6 loopback (containers and build servers
 * often have none): 0, or the negative errno of binding [::1]:0. */
int ipv6_loopback(void);

/* Connects *a (configured by ca) to *b (configured by cb); NULL configs
 * mean the defaults.  For PAIR_TLS, the test PKI's settings are added to
 * the configs given (server certificate on cb, CA on ca).  Where this
 * machine cannot make the pair (PAIR_TCP6 without an IPv6 loopback), it
 * prints why and ends the test there, as a pass. */
void make_pair_cfg(enum pair_kind kind, const pier_config *ca, const pier_config *cb,
		   pier_peer **a, pier_peer **b);
void make_pair(enum pair_kind kind, pier_peer **a, pier_peer **b);

/* Sends a request whose body is the string body. */
pier_sent_request *send_request(pier_peer *p, int32_t service, const char *body);
/* Receives the next incoming item, which must be a request. */
pier_received_request *recv_request(pier_peer *p, pier_msg **msg);
/* a sends a request (service, body) that b receives: both handles, the
 * request message checked and freed. */
void open_request(pier_peer *a, pier_peer *b, int32_t service, const char *body,
		  pier_sent_request **sr, pier_received_request **rr);
/* a sends request (service 1) to b, which answers with response: the whole
 * exchange, checked, with nothing left open. */
void round_trip(pier_peer *a, pier_peer *b, const char *request, const char *response);
/* The message's body equals the string. */
void assert_body(const pier_msg *m, const char *body);
void assert_msg(const pier_msg *m, enum pier_msg_type type, int32_t service, const char *body);

/* A memfd holding the string content. */
int memfd_with(const char *content);
/* The content of the file behind fd, read from offset 0. */
char *read_fd(int fd);

#define WAIT 5000 /* ms: any wait in a test that should succeed */

/* The time timeout_ms from now (now, if negative), on CLOCK_MONOTONIC. */
struct timespec deadline_in(int timeout_ms);
/* Whether the time deadline has come.  Taken just before a wait with the
 * same timeout, it tells a wait that lasted until its deadline, which
 * nothing woke, from one that ended earlier. */
bool deadline_passed(const struct timespec *deadline);
/* One step of a loop that polls for a condition until deadline: false once
 * the deadline has passed, otherwise true after a pause of a millisecond. */
bool wait_tick(const struct timespec *deadline);
/* Polls the expression cond until it holds; fails the test, naming cond,
 * if timeout_ms pass first.  A test waits so for what it needs to have
 * happened, never for a fixed time that usually suffices. */
#define wait_until(cond, timeout_ms)                                            \
	do {                                                                    \
		const int wu_ms_ = (timeout_ms);                                \
		const struct timespec wu_deadline_ = deadline_in(wu_ms_);       \
		while (!(cond))                                                 \
			ck_assert_msg(wait_tick(&wu_deadline_), "waited %d ms in vain for %s", \
				      wu_ms_, #cond);                           \
	} while (0)

/* The calling thread's id (gettid()), for thread_waits(). */
pid_t thread_id(void);
/* Whether thread tid sleeps where a thread waiting for a message does:
 * reading the socket itself (recv or recvmsg, or poll with a deadline or a
 * wake fd); or, unless reading, on a condition variable (futex) while
 * another thread or the loop reads.  For tests that must not go on until a
 * thread is blocked in its wait. */
bool thread_waits(pid_t tid, bool reading);
/* Whether thread tid sleeps in a read of the socket itself (recv or
 * recvmsg, not in poll first). */
bool thread_in_socket_read(pid_t tid);

/* Whether the test runs under valgrind (which keeps the fd limit to
 * itself). */
bool under_valgrind(void);
/* Whether the process's memory is plain: no valgrind or sanitizer under it,
 * whose own memory (ASan's quarantine of freed blocks, shadow memory)
 * grows meanwhile and whose allocators do not fail as malloc does.  Then
 * RSS measures what the library uses, and an address-space limit makes
 * large allocations fail with NULL. */
bool plain_memory(void);

/* The lines a listener or peer logged (pier_config_set_log()), from its
 * loop thread: pass test_log_collect with the struct as userdata. */
#define TEST_LOG_LINES 64u

struct test_log {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	unsigned int n; /* lines logged, kept or not */
	char lines[TEST_LOG_LINES][256];
	int priority[TEST_LOG_LINES];
	struct timespec when[TEST_LOG_LINES]; /* CLOCK_MONOTONIC */
};

void test_log_init(struct test_log *log);
void test_log_collect(void *userdata, int priority, const char *message);
/* The index of the first line from index from on that contains text,
 * waiting up to WAIT ms for it; fails the test if none comes. */
unsigned int test_log_wait(struct test_log *log, const char *text, unsigned int from);

/* The process's resident memory in KiB. */
long rss_kib(void);
/* How many fds the process has open (and one for the listing). */
int open_fd_count(void);
/* How many connected TCP sockets of this process have port as their local
 * port: the connections a listener of this process on port has accepted. */
int accepted_sockets(unsigned int port);
/* Lowers RLIMIT_NOFILE to the lowest free fd number, so that no new fd can
 * be made (accept, dup, socket fail with EMFILE); *saved is the limit to
 * put back. */
void no_fd_left(struct rlimit *saved);

#endif
