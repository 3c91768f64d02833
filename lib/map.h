/* SPDX-License-Identifier: MIT */
/*
 * Mapping fds a remote sent: only those whose size nobody can take back
 * (memfds sealed against shrinking; dmabufs, when asked for), and only
 * within that size, so that reading the mapping never raises SIGBUS.
 * pier_msg_map_fd() maps a message's fd with these; a buffer pool checks
 * its fds once with map_check() and maps them with map_region_map().
 */
#ifndef PIER_MAP_H
#define PIER_MAP_H

#include <stddef.h>

#include <pier.h>

/* A read-only shared mapping of part of an fd. */
struct map_region {
	void *base;      /* what mmap() returned: aligned as the fd needs */
	size_t base_len; /* what munmap() needs */
	const unsigned char *data; /* the bytes asked for, within base */
	size_t len;
};

/* Whether length bytes at offset of fd (borrowed) can be mapped and read
 * for as long as the mapping lives, whatever the fd's other holders do.
 * flags: 0 or PIER_MAP_DMABUF.  Returns 0, with *align (if not NULL) the
 * alignment a mapping of fd needs (a power of two, at least the page
 * size); or the refusal pier_msg_map_fd(3) documents: -EINVAL (length 0),
 * -EOVERFLOW, -ENODEV, -ENOTSUP, -EPERM, -ERANGE, or another -errno of
 * fstat() or fcntl(). */
int map_check(int fd, size_t offset, size_t length, unsigned int flags, size_t *align);

/* Checks as map_check() does, then maps length bytes at offset of fd
 * (borrowed: the mapping keeps the file, not the fd) into *r, read-only.
 * Returns 0, a refusal of map_check(), or -errno of mmap(). */
int map_region_map(struct map_region *r, int fd, size_t offset, size_t length,
		   unsigned int flags);
/* Unmaps what map_region_map() mapped. */
void map_region_unmap(struct map_region *r);

/* *out: a new mapping (pier_mapping_free()) of length bytes at offset of
 * fd, borrowed.  Returns as map_region_map(), or -ENOMEM. */
int map_new(pier_mapping **out, int fd, size_t offset, size_t length, unsigned int flags);

#endif
