/* SPDX-License-Identifier: MIT */
/*
 * Proves that the harness catches what it claims to catch: each test runs an
 * inner suite that misbehaves on purpose and checks the inner runner's verdict.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness.h"

START_TEST(inner_leaks_fd)
{
	ck_assert_int_ge(eventfd(0, EFD_CLOEXEC), 0); /* never closed */
}
END_TEST

START_TEST(inner_closes_fd)
{
	int fd = eventfd(0, EFD_CLOEXEC);

	ck_assert_int_ge(fd, 0);
	close(fd);
}
END_TEST

START_TEST(inner_hangs)
{
	for (;;)
		pause();
}
END_TEST

START_TEST(inner_crashes)
{
	abort(); /* not SIGSEGV: sanitizers catch that one themselves */
}
END_TEST

/* Runs one test under the harness's fixture and timeout, silently, and
 * returns its result (the runner is left for the caller to free). */
static SRunner *run_inner(const TTest *test, double timeout)
{
	Suite *s = suite_create("inner");
	TCase *tc = th_tcase("inner", timeout);
	SRunner *sr;

	tcase_add_test(tc, test);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_SILENT);
	return sr;
}

static void assert_one_failure(SRunner *sr, int rtype, const char *msg_part)
{
	TestResult **results;

	ck_assert_int_eq(srunner_ntests_run(sr), 1);
	ck_assert_int_eq(srunner_ntests_failed(sr), 1);
	results = srunner_failures(sr);
	ck_assert_int_eq(tr_rtype(results[0]), rtype);
	ck_assert_msg(strstr(tr_msg(results[0]), msg_part) != NULL,
		      "inner failure message \"%s\" lacks \"%s\"", tr_msg(results[0]),
		      msg_part);
	free(results);
	srunner_free(sr);
}

START_TEST(fixture_catches_leak)
{
	assert_one_failure(run_inner(inner_leaks_fd, 5), CK_FAILURE, "fd leaked");
}
END_TEST

START_TEST(fixture_passes_clean_test)
{
	SRunner *sr = run_inner(inner_closes_fd, 5);

	ck_assert_int_eq(srunner_ntests_run(sr), 1);
	ck_assert_int_eq(srunner_ntests_failed(sr), 0);
	srunner_free(sr);
}
END_TEST

START_TEST(timeout_catches_hang)
{
	assert_one_failure(run_inner(inner_hangs, 1), CK_ERROR, "timeout");
}
END_TEST

START_TEST(fork_mode_catches_crash)
{
	assert_one_failure(run_inner(inner_crashes, 5), CK_ERROR, "signal 6");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("sanity");
	TCase *tc = th_tcase("harness", TH_TIMEOUT);

	tcase_add_test(tc, fixture_catches_leak);
	tcase_add_test(tc, fixture_passes_clean_test);
	tcase_add_test(tc, timeout_catches_hang);
	tcase_add_test(tc, fork_mode_catches_crash);
	suite_add_tcase(s, tc);
	return th_run(s);
}
