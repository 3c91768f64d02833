/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* The fds open when the test started.  Tests run in forked children, so a
 * plain static is per test. */
#define TH_MAX_FD 65536
static unsigned char fds_at_setup[TH_MAX_FD / 8];

static bool was_open(int fd)
{
	return fd < TH_MAX_FD && (fds_at_setup[fd / 8] & (1u << (fd % 8)));
}

/* Calls fn(fd) for every open fd but the directory's own. */
static void for_each_open_fd(void (*fn)(int fd))
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	ck_assert_msg(d != NULL, "cannot list /proc/self/fd");
	while ((e = readdir(d)) != NULL) {
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end != '\0' || e->d_name[0] == '\0' || fd == dirfd(d))
			continue;
		fn((int)fd);
	}
	closedir(d);
}

static void remember_fd(int fd)
{
	ck_assert_msg(fd < TH_MAX_FD, "fd %d is beyond the harness's table", fd);
	fds_at_setup[fd / 8] |= (unsigned char)(1u << (fd % 8));
}

static void check_fd(int fd)
{
	char path[64], target[PATH_MAX];
	ssize_t n;

	if (was_open(fd))
		return;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	target[n < 0 ? 0 : n] = '\0';
	ck_abort_msg("fd leaked: fd %d (%s) was opened by the test and is still open",
		     fd, target);
}

void th_fd_setup(void)
{
	memset(fds_at_setup, 0, sizeof(fds_at_setup));
	for_each_open_fd(remember_fd);
}

void th_fd_teardown(void)
{
	for_each_open_fd(check_fd);
}

TCase *th_tcase(const char *name, double timeout)
{
	TCase *tc = tcase_create(name);

	tcase_add_checked_fixture(tc, th_fd_setup, th_fd_teardown);
	tcase_set_timeout(tc, timeout);
	return tc;
}

int th_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
