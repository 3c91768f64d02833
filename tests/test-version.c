/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <pier.h>

#include "harness.h"

START_TEST(version_matches_headers)
{
	char expect[32];

	snprintf(expect, sizeof(expect), "%d.%d.%d", PIER_VERSION_MAJOR,
		 PIER_VERSION_MINOR, PIER_VERSION_MICRO);
	ck_assert_str_eq(pier_version(), expect);
	ck_assert_str_eq(pier_version(), PIER_VERSION_STRING);
	ck_assert_str_eq(PIER_VERSION_STRING, PACKAGE_VERSION);
	ck_assert_uint_eq(pier_version_number(), PIER_VERSION_NUMBER);
	ck_assert_uint_eq(PIER_VERSION_ENCODE(1, 2, 3), 0x010203);
	ck_assert(PIER_CHECK_VERSION(PIER_VERSION_MAJOR, PIER_VERSION_MINOR,
				     PIER_VERSION_MICRO));
	ck_assert(PIER_CHECK_VERSION(0, 0, 0));
	ck_assert(!PIER_CHECK_VERSION(PIER_VERSION_MAJOR + 1, 0, 0));
}
END_TEST

START_TEST(msg_type_names)
{
	ck_assert_str_eq(pier_msg_type_name(PIER_MSG_REQUEST), "request");
	ck_assert_str_eq(pier_msg_type_name(PIER_MSG_RESPONSE), "response");
	ck_assert_str_eq(pier_msg_type_name(PIER_MSG_REQUESTER_UPDATE),
			 "requester-update");
	ck_assert_str_eq(pier_msg_type_name(PIER_MSG_RESPONDER_UPDATE),
			 "responder-update");
	ck_assert_str_eq(pier_msg_type_name(PIER_MSG_STREAM), "stream");
	ck_assert_ptr_null(pier_msg_type_name((enum pier_msg_type)5));
	ck_assert_ptr_null(pier_msg_type_name((enum pier_msg_type)-1));
}
END_TEST

START_TEST(wire_values)
{
	ck_assert_int_eq(PIER_MSG_REQUEST, 0);
	ck_assert_int_eq(PIER_MSG_RESPONSE, 1);
	ck_assert_int_eq(PIER_MSG_REQUESTER_UPDATE, 2);
	ck_assert_int_eq(PIER_MSG_RESPONDER_UPDATE, 3);
	ck_assert_int_eq(PIER_MSG_STREAM, 4);
	ck_assert_int_eq(PIER_SERVICE_ERROR, -1);
}
END_TEST

START_TEST(strerror_pier_codes)
{
	for (int e = PIER_ESHORTFRAME; e < PIER_ERROR_END_; e++) {
		const char *s = pier_strerror(-e);

		ck_assert_ptr_nonnull(s);
		ck_assert_uint_gt(strlen(s), 0);
		ck_assert_str_eq(s, pier_strerror(e));
		ck_assert_str_ne(s, "Unknown error");
		/* every code reads differently */
		for (int f = PIER_ESHORTFRAME; f < e; f++)
			ck_assert_str_ne(s, pier_strerror(-f));
	}
}
END_TEST

START_TEST(strerror_errno_and_unknown)
{
	ck_assert_str_eq(pier_strerror(-EINVAL), "Invalid argument");
	ck_assert_str_eq(pier_strerror(EINVAL), "Invalid argument");
	ck_assert_str_eq(pier_strerror(-ENOMEM), "Cannot allocate memory");
	/* Not "cannot splice": what it means for fds sent on Unix sockets. */
	ck_assert_ptr_nonnull(strstr(pier_strerror(-ETOOMANYREFS), "file descriptors in flight"));
	ck_assert_str_eq(pier_strerror(-EMFILE), "Too many open files");
	ck_assert_str_eq(pier_strerror(0), "Success");
	ck_assert_str_eq(pier_strerror(-PIER_ERROR_END_), "Unknown error");
	ck_assert_str_eq(pier_strerror(INT_MIN), "Unknown error");
	ck_assert_str_eq(pier_strerror(INT_MAX), "Unknown error");
	ck_assert_str_eq(pier_strerror(-4000), "Unknown error");
	/* pier's codes start above every errno value */
	ck_assert_str_eq(pier_strerror(-(PIER_ESHORTFRAME - 1)), "Unknown error");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("version");
	TCase *tc = th_tcase("version", TH_TIMEOUT);

	tcase_add_test(tc, version_matches_headers);
	tcase_add_test(tc, msg_type_names);
	tcase_add_test(tc, wire_values);
	tcase_add_test(tc, strerror_pier_codes);
	tcase_add_test(tc, strerror_errno_and_unknown);
	suite_add_tcase(s, tc);
	return th_run(s);
}
