/* SPDX-License-Identifier: MIT */
/*
 * The test harness every suite uses: Check in fork mode, a per-test timeout,
 * and a checked fixture that fails any test that leaves an fd open.
 */
#ifndef PIER_TEST_HARNESS_H
#define PIER_TEST_HARNESS_H

#include <check.h>

/* The default per-test timeout, in seconds (Check scales it by
 * CK_TIMEOUT_MULTIPLIER, which slow builds such as valgrind runs may set). */
#define TH_TIMEOUT 10

/* A test case with the fd-leak fixture and the given timeout (seconds). */
TCase *th_tcase(const char *name, double timeout);

/* Runs the suite in fork mode, prints Check's report and frees the suite.
 * Returns a process exit status: 0 if every test passed. */
int th_run(Suite *s);

/* The fd-leak fixture itself, for suites that build their own TCase. */
void th_fd_setup(void);
void th_fd_teardown(void);

#endif
