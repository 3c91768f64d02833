/* SPDX-License-Identifier: MIT */
/* What bench.c shares with the scenarios in the other files of the
 * benchmark program (server.c). */
#ifndef PIER_BENCH_H
#define PIER_BENCH_H

#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <pier.h>

extern bool quick;

enum goal {
	LOWER, /* value / baseline <= target (times, costs) */
	HIGHER, /* value / baseline >= target (rates) */
	ABSOLUTE_MAX, /* value <= target, no baseline */
	INFO, /* a ratio worth knowing, with no target of its own */
	MEASURE, /* a number worth knowing, with neither baseline nor target */
};

double now_s(void);
_Noreturn void die(const char *what, int err);
/* Prints a table row and the BENCH line of one scenario. */
void result(const char *name, double value, const char *unit, double baseline,
	    enum goal goal, double target);
/* Whether the scenario name was asked for (--only). */
bool selected(const char *name);
/* Runs server(fd, arg) in a child process, other closed there; returns
 * its pid.  fd is closed in the caller. */
pid_t spawn(void (*server)(int fd, void *arg), int fd, int other, void *arg);
/* Waits for a child; exits when it failed. */
void reap(pid_t pid);
int read_full(int fd, void *buf, size_t len);
int write_full(int fd, const void *buf, size_t len);
/* One request of len bytes on service 1, waited for; exits on failure. */
void call(pier_peer *peer, const void *body, size_t len, const int *fds, size_t nfds,
	  const char *what);
/* The far end of round trips: answers every request with its body, and
 * acknowledges the count-th stream message (0: none), until the
 * connection ends. */
void serve(pier_peer *peer, long count);
/* This process's resident memory. */
long rss_kib(void);

/* Runs this process, and the children it forks from now on, on CPU 0. */
void pin_to_cpu0(void);
/* Runs the rest of this process, and the children it forks, on CPU 0
 * (pinned) or where the scheduler likes (saved: what to go back to). */
void set_pinned(bool pinned, const cpu_set_t *saved);

/* The scenarios of server.c. */
void bench_server(void);
/* The scenarios of typed.c (typed bodies; nothing without json-c). */
void bench_typed(void);

#endif
