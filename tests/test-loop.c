/* SPDX-License-Identifier: MIT */
/* Loop threads: named, and started on the CPUs and with the scheduling the
 * configuration asks for, explicit loops and each peer's own alike; what
 * the kernel refuses fails the call that makes the loop. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "peers.h"

#define LOOP_NAME "pier-loop"
#define MAX_LOOPS 8

/* The ids of this process's threads named as loop threads are (up to
 * MAX_LOOPS in tids, which may be NULL); returns how many there are. */
static int loop_threads(pid_t *tids)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* a thread that has just ended */
		if (fgets(comm, sizeof(comm), f) && strcmp(comm, LOOP_NAME "\n") == 0) {
			if (tids && n < MAX_LOOPS)
				tids[n] = (pid_t)atoi(e->d_name);
			n++;
		}
		fclose(f);
	}
	closedir(d);
	return n;
}

/* The one loop thread of the process. */
static pid_t the_loop_thread(void)
{
	pid_t tid[MAX_LOOPS];

	ck_assert_int_eq(loop_threads(tid), 1);
	return tid[0];
}

/* The highest-numbered CPU this process may run on, and whether it may
 * run on others too (if not, a thread pinned to it looks like any). */
static unsigned int a_cpu(bool *others)
{
	cpu_set_t set;
	int cpu = -1;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpu = i;
	ck_assert_int_ge(cpu, 0);
	*others = CPU_COUNT(&set) > 1;
	return (unsigned int)cpu;
}

static void assert_runs_on(pid_t tid, unsigned int cpu)
{
	cpu_set_t set;

	ck_assert_int_eq(sched_getaffinity(tid, sizeof(set), &set), 0);
	ck_assert_int_eq(CPU_COUNT(&set), 1);
	ck_assert(CPU_ISSET(cpu, &set));
}

static void assert_same_cpus_as_me(pid_t tid)
{
	cpu_set_t mine, its;

	ck_assert_int_eq(sched_getaffinity(0, sizeof(mine), &mine), 0);
	ck_assert_int_eq(sched_getaffinity(tid, sizeof(its), &its), 0);
	ck_assert(CPU_EQUAL(&mine, &its));
}

static void assert_scheduled(pid_t tid, int policy, int priority)
{
	struct sched_param sp;

	ck_assert_int_eq(sched_getscheduler(tid), policy);
	ck_assert_int_eq(sched_getparam(tid, &sp), 0);
	ck_assert_int_eq(sp.sched_priority, priority);
}

static void *nothing(void *arg)
{
	return arg;
}

/* Whether this process may start a SCHED_FIFO thread of this priority:
 * 0, or the error pthread_create() gives (EPERM without CAP_SYS_NICE
 * and above RLIMIT_RTPRIO), tried with a thread of the test's own. */
static int try_fifo(int priority)
{
	struct sched_param sp = { .sched_priority = priority };
	pthread_attr_t pa;
	pthread_t t;
	int r;

	ck_assert_int_eq(pthread_attr_init(&pa), 0);
	ck_assert_int_eq(pthread_attr_setinheritsched(&pa, PTHREAD_EXPLICIT_SCHED), 0);
	ck_assert_int_eq(pthread_attr_setschedpolicy(&pa, SCHED_FIFO), 0);
	ck_assert_int_eq(pthread_attr_setschedparam(&pa, &sp), 0);
	r = pthread_create(&t, &pa, nothing, NULL);
	pthread_attr_destroy(&pa);
	if (r == 0)
		pthread_join(t, NULL);
	return -r;
}

/* From here on this process may not use real-time scheduling, whoever
 * runs the test: no CAP_SYS_NICE in effect, RLIMIT_RTPRIO 0. */
static void no_real_time(void)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[2];
	struct rlimit none = { 0, 0 };

	ck_assert_int_eq(syscall(SYS_capget, &hdr, data), 0);
	data[CAP_TO_INDEX(CAP_SYS_NICE)].effective &= ~CAP_TO_MASK(CAP_SYS_NICE);
	ck_assert_int_eq(syscall(SYS_capset, &hdr, data), 0);
	ck_assert_int_eq(setrlimit(RLIMIT_RTPRIO, &none), 0);
	ck_assert_int_eq(try_fifo(1), -EPERM);
}

/* A round trip through a pair of peers on loop. */
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

/* ps -L and top -H show each loop thread by name. */
START_TEST(threads_named)
{
	pier_loop *loop;
	pier_peer *a, *b;
	int sv[2];

	ck_assert_int_eq(loop_threads(NULL), 0);
	ck_assert_int_eq(pier_loop_new(&loop), 0);
	ck_assert_int_eq(loop_threads(NULL), 1);
	pier_loop_unref(loop);
	ck_assert_int_eq(loop_threads(NULL), 0);

	/* Each peer made without a loop has its own. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], NULL), 0);
	ck_assert_int_eq(pier_peer_adopt(&b, sv[1], NULL), 0);
	ck_assert_int_eq(loop_threads(NULL), 2);
	round_trip(a, b, "ping", "pong");
	pier_peer_free(a);
	pier_peer_free(b);
	wait_until(loop_threads(NULL) == 0, WAIT);
}
END_TEST

START_TEST(affinity_of_a_loop)
{
	bool others;
	unsigned int cpu = a_cpu(&others);
	pier_config *cfg;
	pier_loop *loop;

	if (!others)
		printf("affinity_of_a_loop: this process runs on CPU %u alone, so the loop "
		       "thread's CPUs look inherited\n", cpu);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, &cpu, 1), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), 0);
	assert_runs_on(the_loop_thread(), cpu);
	round_trip_on(loop);
	pier_loop_unref(loop);

	/* ncpus 0: the creating thread's again. */
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, NULL, 0), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), 0);
	assert_same_cpus_as_me(the_loop_thread());
	pier_loop_unref(loop);
	pier_config_free(cfg);

	/* No configuration: the defaults. */
	ck_assert_int_eq(pier_loop_new_with_config(&loop, NULL), 0);
	assert_same_cpus_as_me(the_loop_thread());
	pier_loop_unref(loop);
}
END_TEST

/* A peer's or listener's own loop starts as the configuration says; the
 * copies they keep of it need it no more. */
START_TEST(own_loops_configured)
{
	bool others;
	unsigned int cpu = a_cpu(&others);
	pier_listener *l;
	pier_peer *a, *b;
	pier_config *cfg;
	pid_t tid[MAX_LOOPS];
	char address[64], bound[128];

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, &cpu, 1), 0);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_BATCH, 0), 0);
	snprintf(address, sizeof(address), "seqpacket://@pier-test-loop-%d", (int)getpid());
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), 0);
	ck_assert_int_eq(pier_listener_address(l, bound, sizeof(bound)), 0);
	ck_assert_int_eq(pier_peer_connect(&a, bound, cfg), 0);
	pier_config_free(cfg);
	ck_assert_int_eq(pier_listener_accept(l, &b, WAIT), 0);

	/* The listener's loop (which b shares) and a's. */
	ck_assert_int_eq(loop_threads(tid), 2);
	for (int i = 0; i < 2; i++) {
		assert_runs_on(tid[i], cpu);
		assert_scheduled(tid[i], SCHED_BATCH, 0);
	}
	round_trip(a, b, "ping", "pong");
	pier_peer_free(a);
	pier_peer_free(b);
	pier_listener_free(l);
}
END_TEST

/* A CPU the machine does not have cannot run the thread. */
START_TEST(affinity_unusable)
{
	unsigned int cpu = (unsigned int)sysconf(_SC_NPROCESSORS_CONF) + 1;
	pier_config *cfg;
	pier_loop *loop = NULL;
	pier_peer *a;
	int sv[2];

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, &cpu, 1), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), -EINVAL);
	ck_assert_ptr_null(loop);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], cfg), -EINVAL);
	ck_assert_int_eq(loop_threads(NULL), 0);
	pier_config_free(cfg);
	close(sv[0]); /* the caller's still, after a failed adopt */
	close(sv[1]);
}
END_TEST

/* SCHED_FIFO where this process may use it (as root, or below
 * RLIMIT_RTPRIO), -EPERM where it may not: CI runs the suite both ways. */
START_TEST(fifo_as_permitted)
{
	const int priority = 10;
	int allowed = try_fifo(priority), r;
	pier_config *cfg;
	pier_loop *loop = NULL;

	printf("fifo_as_permitted: SCHED_FIFO %d is %s to this process (uid %d)\n", priority,
	       allowed == 0 ? "allowed" : "refused", (int)getuid());
	ck_assert(allowed == 0 || allowed == -EPERM);
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_FIFO, priority), 0);
	r = pier_loop_new_with_config(&loop, cfg);
	ck_assert_msg(r == allowed, "pier_loop_new_with_config: %s, where a thread of the "
		      "test's own got %s", pier_strerror(r), pier_strerror(allowed));
	if (r == 0) {
		assert_scheduled(the_loop_thread(), SCHED_FIFO, priority);
		round_trip_on(loop);
		pier_loop_unref(loop);
	} else {
		ck_assert_ptr_null(loop);
		ck_assert_int_eq(loop_threads(NULL), 0);
	}

	/* -1: the creating thread's scheduling again. */
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, -1, 0), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), 0);
	assert_scheduled(the_loop_thread(), sched_getscheduler(0), 0);
	pier_loop_unref(loop);
	pier_config_free(cfg);
}
END_TEST

/* Refused, every call that makes a loop says so. */
START_TEST(fifo_refused)
{
	char address[64];
	pier_listener *l = NULL;
	pier_config *cfg;
	pier_loop *loop = NULL;
	pier_peer *a;
	int sv[2];

	no_real_time();
	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_RR, 1), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), -EPERM);
	ck_assert_ptr_null(loop);

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	ck_assert_int_eq(pier_peer_adopt(&a, sv[0], cfg), -EPERM);
	ck_assert_int_eq(fcntl(sv[0], F_GETFD) >= 0, 1);
	close(sv[0]);
	close(sv[1]);

	snprintf(address, sizeof(address), "seqpacket://@pier-test-loop-%d", (int)getpid());
	ck_assert_int_eq(pier_listener_new(&l, address, cfg), -EPERM);
	ck_assert_ptr_null(l);
	ck_assert_int_eq(loop_threads(NULL), 0);

	/* What needs no privilege still works. */
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_BATCH, 0), 0);
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), 0);
	assert_scheduled(the_loop_thread(), SCHED_BATCH, 0);
	pier_loop_unref(loop);
	pier_config_free(cfg);
}
END_TEST

START_TEST(invalid_arguments)
{
	unsigned int cpu = 0, far = 1u << 20;
	pier_config *cfg;
	pier_loop *loop;
	int fifo_max = sched_get_priority_max(SCHED_FIFO);

	ck_assert_int_eq(pier_config_new(&cfg), 0);
	ck_assert_int_eq(pier_config_set_loop_affinity(NULL, &cpu, 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, NULL, 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_affinity(cfg, &far, 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(NULL, SCHED_OTHER, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_FIFO, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_FIFO, fifo_max + 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_RR, -1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_OTHER, 5), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_BATCH, 1), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, SCHED_DEADLINE, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, -1, 3), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, -2, 0), -EINVAL);
	ck_assert_int_eq(pier_config_set_loop_scheduling(cfg, 12345, 0), -EINVAL);
	ck_assert_int_eq(pier_loop_new_with_config(NULL, cfg), -EINVAL);

	/* The refusals changed nothing: the loop starts as by default. */
	ck_assert_int_eq(pier_loop_new_with_config(&loop, cfg), 0);
	assert_same_cpus_as_me(the_loop_thread());
	assert_scheduled(the_loop_thread(), sched_getscheduler(0), 0);
	pier_loop_unref(loop);
	pier_config_free(cfg);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("loop");
	TCase *tc = th_tcase("loop", TH_TIMEOUT);

	tcase_add_test(tc, threads_named);
	tcase_add_test(tc, affinity_of_a_loop);
	tcase_add_test(tc, own_loops_configured);
	tcase_add_test(tc, affinity_unusable);
	tcase_add_test(tc, fifo_as_permitted);
	tcase_add_test(tc, fifo_refused);
	tcase_add_test(tc, invalid_arguments);
	suite_add_tcase(s, tc);
	return th_run(s);
}
