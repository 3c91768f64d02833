/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "clock.h"

#define NS_PER_S 1000000000
#define NS_PER_MS 1000000

int64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NS_PER_S + ts.tv_nsec;
}

struct timespec deadline_after(int timeout_ms)
{
	int64_t ns = clock_now_ns() + (int64_t)timeout_ms * NS_PER_MS;

	return (struct timespec){ .tv_sec = ns / NS_PER_S, .tv_nsec = ns % NS_PER_S };
}

int ms_until(const struct timespec *deadline)
{
	int64_t ns = ((int64_t)deadline->tv_sec * NS_PER_S + deadline->tv_nsec) - clock_now_ns();

	if (ns <= 0)
		return 0;
	return ns / NS_PER_MS >= INT32_MAX ? INT32_MAX : (int)((ns + NS_PER_MS - 1) / NS_PER_MS);
}

void cond_init_monotonic(pthread_cond_t *cond)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
}
