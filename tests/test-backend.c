/* SPDX-License-Identifier: MIT */
/* Loop backends: io_uring by default, epoll where io_uring is refused (here
 * with a seccomp filter, as container runtimes do), and PIER_BACKEND to
 * force either. */
#include "config.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peers.h"

/* From here on, io_uring_setup() fails with EPERM in this process (each
 * test runs in a process of its own). */
static void refuse_io_uring(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(filter) / sizeof(filter[0]), filter };

	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog), 0);
}

/* A request and its response over a socketpair, both peers on loop. */
static void round_trip_on(pier_loop *loop)
{
	pier_config *cfg;
	pier_peer *a, *b;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop(cfg, loop), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], cfg), 0);
	ck_assert_int_eq(pier_peer_adopt(&b, sv[1], cfg), 0);
	pier_config_free(cfg);
	round_trip(a, b, "ping", "pong");
	pier_peer_free(a);
	pier_peer_free(b);
}

/* io_uring whenever this machine allows it. */
START_TEST(default_is_io_uring_if_allowed)
{
	pier_loop *loop;
	int r;

	setenv("PIER_BACKEND", "uring", 1);
	r = pier_loop_new(&loop);
	if (r == 0)
		pier_loop_unref(loop);
	unsetenv("PIER_BACKEND");
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_str_eq(pier_loop_backend(loop), r == 0 ? "io_uring" : "epoll");
	round_trip_on(loop);
	pier_loop_unref(loop);
}
END_TEST

START_TEST(falls_back_to_epoll)
{
	pier_loop *loop;

	unsetenv("PIER_BACKEND");
	refuse_io_uring();
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_str_eq(pier_loop_backend(loop), "epoll");
	round_trip_on(loop);
	pier_loop_unref(loop);
}
END_TEST

START_TEST(forced_uring_fails_when_refused)
{
	pier_loop *loop = NULL;

	setenv("PIER_BACKEND", "uring", 1);
	refuse_io_uring();
	ck_assert_int_eq(pier_loop_new(&loop), -EPERM);
	ck_assert_ptr_null(loop);
}
END_TEST

START_TEST(forced_epoll)
{
	pier_loop *loop;

	setenv("PIER_BACKEND", "epoll", 1);
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_str_eq(pier_loop_backend(loop), "epoll");
	round_trip_on(loop);
	pier_loop_unref(loop);
}
END_TEST

START_TEST(unknown_backend_refused)
{
	pier_loop *loop = NULL;

	setenv("PIER_BACKEND", "kqueue", 1);
	ck_assert_int_eq(pier_loop_new(&loop), -EINVAL);
	ck_assert_ptr_null(loop);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("backend");
	TCase *tc = th_tcase("backend", TH_TIMEOUT);

	tcase_add_test(tc, default_is_io_uring_if_allowed);
	tcase_add_test(tc, falls_back_to_epoll);
	tcase_add_test(tc, forced_uring_fails_when_refused);
	tcase_add_test(tc, forced_epoll);
	tcase_add_test(tc, unknown_backend_refused);
	suite_add_tcase(s, tc);
	return th_run(s);
}
