/* SPDX-License-Identifier: MIT */
/* ZeroMQ and nng doing libpier's benchmark scenarios (see others.c).
 * Rates are messages per second, round trips seconds; -1 on failure or
 * when the library was not built in. */
#ifndef PIER_BENCH_OTHERS_H
#define PIER_BENCH_OTHERS_H

#include <stdbool.h>
#include <stddef.h>

bool zmq_available(void);
double zmq_push_pull(size_t size, long count, bool tcp);
double zmq_req_rep(size_t size, long iters);

bool nng_available(void);
double nng_push_pull(size_t size, long count);
double nng_req_rep(size_t size, long iters);

#endif
