/* SPDX-License-Identifier: MIT */
/* Mapping received fds (pier_msg_map_fd()): only memfds sealed against
 * shrinking, only within their size, so that no lie of a remote raises
 * SIGBUS in the receiver; every refusal with its own error. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "map.h"
#include "msg.h"
#include "peers.h"

#define MEMFD_NAME "pier-map-test"
#define PAGE 4096u

static const enum pair_kind fd_kinds[] = { PAIR_SEQPACKET, PAIR_SEQPACKET_FD, PAIR_ABSTRACT };

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 4096 + 3);
}

/* A memfd of size bytes of pattern(), with seals added (0: none). */
static int memfd_of(size_t size, unsigned int seals)
{
	int fd = memfd_create(MEMFD_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	unsigned char *p;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ck_assert_ptr_ne(p, MAP_FAILED);
	for (size_t i = 0; i < size; i++)
		p[i] = pattern(i);
	munmap(p, size);
	if (seals)
		ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
	return fd;
}

/* A message carrying fd (taken), as a remote would have sent it. */
static pier_msg *msg_with(int fd)
{
	pier_msg *m = msg_new(0, 1);

	ck_assert_ptr_nonnull(m);
	m->hdr = (struct pier_header){ .type = PIER_MSG_STREAM, .service_id = 1 };
	m->fds[0] = fd;
	return m;
}

/* How many mappings of the test's memfds the process has. */
static int memfd_mappings(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	int n = 0;

	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "memfd:" MEMFD_NAME))
			n++;
	fclose(f);
	return n;
}

/* Maps length bytes at offset of fd 0 of m and checks them against
 * pattern(). */
static void assert_maps(const pier_msg *m, size_t offset, size_t length)
{
	pier_mapping *map;
	const unsigned char *p;
	size_t len = 0;
	int r = pier_msg_map_fd(m, 0, offset, length, 0, &map);

	ck_assert_msg(r == 0, "map %zu at %zu: %s", length, offset, pier_strerror(r));
	p = pier_mapping_data(map, &len);
	ck_assert_uint_eq(len, length);
	for (size_t i = 0; i < length; i++)
		ck_assert_msg(p[i] == pattern(offset + i), "byte %zu of the file", offset + i);
	pier_mapping_free(map);
}

/* The call refuses with err, and writes nothing to *out, and maps
 * nothing. */
static void assert_refused(const pier_msg *m, size_t index, size_t offset, size_t length,
			   unsigned int flags, int err)
{
	pier_mapping *sentinel = (pier_mapping *)&sentinel, *map = sentinel;
	int before = memfd_mappings();
	int r = pier_msg_map_fd(m, index, offset, length, flags, &map);

	ck_assert_msg(r == err, "map %zu at %zu of fd %zu: got %s, want %s", length, offset,
		      index, pier_strerror(r), pier_strerror(err));
	ck_assert_ptr_eq(map, sentinel);
	ck_assert_int_eq(memfd_mappings(), before);
}

START_TEST(sealed_memfd_maps)
{
	const size_t size = 3 * PAGE + 100;
	pier_msg *m = msg_with(memfd_of(size, F_SEAL_SHRINK));
	pier_mapping *map;
	const unsigned char *p;
	size_t len;

	assert_maps(m, 0, size);
	assert_maps(m, 5000, 100); /* not on a page boundary */
	assert_maps(m, PAGE, PAGE);
	assert_maps(m, size - 1, 1);
	ck_assert_int_eq(memfd_mappings(), 0);

	/* The mapping holds the file, not the fd: it outlives the message. */
	ck_assert_int_eq(pier_msg_map_fd(m, 0, 5000, 200, 0, &map), 0);
	pier_msg_free(m);
	p = pier_mapping_data(map, &len);
	ck_assert_uint_eq(len, 200);
	ck_assert_uint_eq(p[199], pattern(5199));
	ck_assert_int_eq(memfd_mappings(), 1);
	pier_mapping_free(map);
	ck_assert_int_eq(memfd_mappings(), 0);

	ck_assert_ptr_null(pier_mapping_data(NULL, &len));
	ck_assert_uint_eq(len, 0);
	pier_mapping_free(NULL);
}
END_TEST

/* Whoever else holds an unsealed memfd may shrink it under the mapping. */
START_TEST(unsealed_refused)
{
	pier_msg *m = msg_with(memfd_of(PAGE, 0));
	int fd;

	assert_refused(m, 0, 0, PAGE, 0, -EPERM);
	assert_refused(m, 0, 0, 1, PIER_MAP_DMABUF, -EPERM);
	pier_msg_free(m);

	/* Sealed, but not against shrinking. */
	m = msg_with(memfd_of(PAGE, F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));
	assert_refused(m, 0, 0, PAGE, 0, -EPERM);
	pier_msg_free(m);

	/* A memfd made without MFD_ALLOW_SEALING can never be sealed. */
	fd = memfd_create(MEMFD_NAME, MFD_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, PAGE), 0);
	m = msg_with(fd);
	assert_refused(m, 0, 0, PAGE, 0, -EPERM);
	pier_msg_free(m);
}
END_TEST

/* The message claims more than the file holds. */
START_TEST(smaller_than_claimed_refused)
{
	pier_msg *m = msg_with(memfd_of(PAGE, F_SEAL_SHRINK | F_SEAL_GROW));

	assert_refused(m, 0, 0, PAGE + 1, 0, -ERANGE);
	assert_refused(m, 0, PAGE, 1, 0, -ERANGE);
	assert_refused(m, 0, 1, PAGE, 0, -ERANGE);
	assert_refused(m, 0, (size_t)1 << 40, PAGE, 0, -ERANGE);
	assert_maps(m, PAGE - 1, 1);
	assert_maps(m, 0, PAGE);
	pier_msg_free(m);
}
END_TEST

/* An offset and length whose sum wraps would pass the size check. */
START_TEST(overflow_refused)
{
	pier_msg *m = msg_with(memfd_of(PAGE, F_SEAL_SHRINK));

	assert_refused(m, 0, SIZE_MAX, 2, 0, -EOVERFLOW);
	assert_refused(m, 0, 2, SIZE_MAX, 0, -EOVERFLOW);
	assert_refused(m, 0, SIZE_MAX - PAGE + 1, PAGE, 0, -EOVERFLOW);
	/* Beyond what a file offset holds. */
	assert_refused(m, 0, (size_t)INT64_MAX, 1, 0, -EOVERFLOW);
	assert_refused(m, 0, (size_t)INT64_MAX - 1, 1, 0, -ERANGE);
	pier_msg_free(m);
}
END_TEST

/* Pipes, sockets, devices and the like have no size to check. */
START_TEST(not_a_file_refused)
{
	int p[2], sv[2], fds[5];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fds[0] = p[0];
	fds[1] = p[1];
	fds[2] = sv[0];
	fds[3] = open("/dev/null", O_RDONLY | O_CLOEXEC);
	fds[4] = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(fds[3], 0);
	ck_assert_int_ge(fds[4], 0);
	close(sv[1]);
	for (int i = 0; i < 5; i++) {
		pier_msg *m = msg_with(fds[i]);

		assert_refused(m, 0, 0, 1, 0, -ENODEV);
		/* Nor is any of them a dmabuf. */
		assert_refused(m, 0, 0, 1, PIER_MAP_DMABUF, -ENODEV);
		pier_msg_free(m);
	}
}
END_TEST

/* A new file, unlinked: in the build tree, which is on a disk more often
 * than /tmp is, or else in /tmp. */
static int unlinked_file(void)
{
	char here[] = "pier-map-test-XXXXXX", tmp[] = "/tmp/pier-map-test-XXXXXX";
	char *path = here;
	int fd = mkostemp(here, O_CLOEXEC);

	if (fd < 0) {
		path = tmp;
		fd = mkostemp(tmp, O_CLOEXEC);
	}
	ck_assert_msg(fd >= 0, "no file to make: %s", strerror(errno));
	ck_assert_int_eq(unlink(path), 0);
	return fd;
}

/* An ordinary file: whoever has it open may truncate it. */
START_TEST(unsealable_file_refused)
{
	int fd = unlinked_file(), want;
	struct statfs sfs;
	pier_msg *m;

	ck_assert_int_eq(ftruncate(fd, PAGE), 0);
	/* A file on tmpfs has seals, but may never be sealed; a file
	 * elsewhere has none. */
	ck_assert_int_eq(fstatfs(fd, &sfs), 0);
	want = sfs.f_type == TMPFS_MAGIC ? -EPERM : -ENOTSUP;
	m = msg_with(fd);
	assert_refused(m, 0, 0, PAGE, 0, want);
	assert_refused(m, 0, 0, PAGE, PIER_MAP_DMABUF, want);
	pier_msg_free(m);
}
END_TEST

START_TEST(bad_arguments)
{
	pier_msg *m = msg_with(memfd_of(PAGE, F_SEAL_SHRINK));
	pier_mapping *map;
	int fd;

	ck_assert_int_eq(pier_msg_map_fd(NULL, 0, 0, 1, 0, &map), -EINVAL);
	ck_assert_int_eq(pier_msg_map_fd(m, 0, 0, 1, 0, NULL), -EINVAL);
	assert_refused(m, 0, 0, 0, 0, -EINVAL);         /* nothing to map */
	assert_refused(m, 0, 0, 1, 1u << 7, -EINVAL);   /* an unknown flag */
	/* The message has fewer fds than its body may claim. */
	assert_refused(m, 1, 0, 1, 0, -EINVAL);
	assert_refused(m, SIZE_MAX, 0, 1, 0, -EINVAL);
	/* Taken: the message has it no more. */
	fd = pier_msg_take_fd(m, 0);
	ck_assert_int_ge(fd, 0);
	assert_refused(m, 0, 0, 1, 0, -EBADF);
	close(fd);
	pier_msg_free(m);
}
END_TEST

/* The buffer pool checks raw fds with map_check() and maps them once. */
START_TEST(raw_fd_check)
{
	int fd = memfd_of(2 * PAGE, F_SEAL_SHRINK);
	struct map_region r;
	size_t align = 0;

	ck_assert_int_eq(map_check(fd, 0, 2 * PAGE, 0, &align), 0);
	ck_assert_uint_eq(align, (size_t)sysconf(_SC_PAGESIZE));
	ck_assert_int_eq(map_check(fd, PAGE, PAGE + 1, 0, NULL), -ERANGE);
	/* Without a mapping, that the kernel would refuse too, to stop
	 * them. */
	ck_assert_int_eq(map_check(fd, SIZE_MAX, 2, 0, NULL), -EOVERFLOW);
	ck_assert_int_eq(map_check(fd, PAGE, SIZE_MAX, 0, NULL), -EOVERFLOW);
	ck_assert_int_eq(map_check(fd, 0, 0, 0, NULL), -EINVAL);
	ck_assert_int_eq(map_region_map(&r, fd, PAGE + 10, 20, 0), 0);
	ck_assert_uint_eq(r.len, 20);
	ck_assert_uint_eq(r.data[0], pattern(PAGE + 10));
	ck_assert_int_eq(memfd_mappings(), 1);
	map_region_unmap(&r);
	ck_assert_int_eq(memfd_mappings(), 0);
	close(fd);
}
END_TEST

/* A frame sent through a real connection maps, and its fd may be taken or
 * closed with the message while the mapping lives. */
START_TEST(through_a_peer_pair)
{
	const size_t size = 64 * PAGE;
	int fd = memfd_of(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	pier_peer *a, *b;
	pier_received_request *rr;
	pier_mapping *map;
	const unsigned char *p;
	pier_msg *m;
	size_t len;

	make_pair(fd_kinds[_i], &a, &b);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 7, "frame", 5, &fd, 1),
			 0);
	close(fd);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_ptr_null(rr);
	assert_msg(m, PIER_MSG_STREAM, 7, "frame");
	assert_maps(m, 0, size);
	ck_assert_int_eq(pier_msg_map_fd(m, 0, 10 * PAGE + 3, 5 * PAGE, 0, &map), 0);
	pier_msg_free(m);
	p = pier_mapping_data(map, &len);
	ck_assert_uint_eq(len, 5 * PAGE);
	for (size_t i = 0; i < len; i += 512)
		ck_assert_uint_eq(p[i], pattern(10 * PAGE + 3 + i));
	pier_mapping_free(map);
	ck_assert_int_eq(memfd_mappings(), 0);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* Gives SIGBUS its default action with the system call itself: the
 * runtime of a sanitizer keeps its own handler, which reports and exits,
 * through signal() and sigaction(). */
static void sigbus_default(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} act = { NULL, 0, NULL, 0 }; /* NULL: SIG_DFL */

	syscall(SYS_rt_sigaction, SIGBUS, &act, NULL, sizeof(act.mask));
}

/* Whether reading the last byte of a mapping of fd kills a process with
 * SIGBUS (tried in a child). */
static bool raw_read_raises_sigbus(int fd, size_t size)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const volatile unsigned char *p =
			mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);

		sigbus_default();

		if (p == MAP_FAILED)
			_exit(2);
		_exit(p[size - 1] == pattern(size - 1) ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS;
}

/* The remote shrinks the memfd after sending it: mapped unchecked, the
 * receiver would die reading it; pier_msg_map_fd() refuses it.  Sealed,
 * the remote cannot shrink it, and it maps and reads whole. */
START_TEST(shrunk_after_sending)
{
	const size_t size = 16 * PAGE;
	pier_received_request *rr;
	pier_peer *a, *b;
	pier_msg *m;
	int fd;

	make_pair(fd_kinds[_i], &a, &b);
	fd = memfd_of(size, 0);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "f", 1, &fd, 1), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	/* (valgrind reports the child's death at length: no need) */
	if (!under_valgrind())
		ck_assert(raw_read_raises_sigbus(pier_msg_fd(m, 0), size));
	assert_refused(m, 0, 0, size, 0, -EPERM);
	pier_msg_free(m);
	close(fd);

	fd = memfd_of(size, F_SEAL_SHRINK);
	ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), 1, "f", 1, &fd, 1), 0);
	ck_assert_int_eq(pier_peer_recv(b, &m, &rr, WAIT), 0);
	ck_assert_int_eq(ftruncate(fd, 0), -1);
	ck_assert_int_eq(errno, EPERM);
	if (!under_valgrind())
		ck_assert(!raw_read_raises_sigbus(pier_msg_fd(m, 0), size));
	assert_maps(m, 0, size);
	pier_msg_free(m);
	close(fd);

	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("map");
	TCase *tc = th_tcase("map", TH_TIMEOUT);
	const int kinds = (int)(sizeof(fd_kinds) / sizeof(fd_kinds[0]));

	tcase_add_test(tc, sealed_memfd_maps);
	tcase_add_test(tc, unsealed_refused);
	tcase_add_test(tc, smaller_than_claimed_refused);
	tcase_add_test(tc, overflow_refused);
	tcase_add_test(tc, not_a_file_refused);
	tcase_add_test(tc, unsealable_file_refused);
	tcase_add_test(tc, bad_arguments);
	tcase_add_test(tc, raw_fd_check);
	tcase_add_loop_test(tc, through_a_peer_pair, 0, kinds);
	tcase_add_loop_test(tc, shrunk_after_sending, 0, kinds);
	suite_add_tcase(s, tc);
	return th_run(s);
}
