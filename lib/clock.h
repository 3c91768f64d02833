/* SPDX-License-Identifier: MIT */
/*
 * Time, always CLOCK_MONOTONIC: the one clock the library measures with, so
 * that a wall-clock step never stretches or cuts a timeout.
 */
#ifndef PIER_CLOCK_H
#define PIER_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Now, in nanoseconds. */
int64_t clock_now_ns(void);
/* The time timeout_ms (>= 0) from now, for pthread_cond_timedwait() on a
 * condition variable made by cond_init_monotonic(). */
struct timespec deadline_after(int timeout_ms);
/* Milliseconds left until deadline, rounded up (0 once it passed). */
int ms_until(const struct timespec *deadline);
/* A condition variable whose timed waits use CLOCK_MONOTONIC. */
void cond_init_monotonic(pthread_cond_t *cond);

#endif
