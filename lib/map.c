/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "map.h"
#include "private.h"

/* configure's AC_SYS_LARGEFILE: every offset of a file fits. */
_Static_assert(sizeof(off_t) == sizeof(int64_t), "off_t has 64 bits");

struct pier_mapping {
	struct map_region r;
};

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Where the range ends, or why it cannot: the offset and length come from
 * the remote, and a sum that wraps would pass the size check. */
static int range_end(size_t offset, size_t length, uint64_t *end)
{
	if (length == 0)
		return -EINVAL;
	if (__builtin_add_overflow((uint64_t)offset, (uint64_t)length, end) ||
	    *end > (uint64_t)INT64_MAX)
		return -EOVERFLOW;
	return 0;
}

/* The size of a memfd (or another shmem file) with these seals, if nobody
 * can take it back. */
static int sealed_size(const struct stat *st, int seals, uint64_t *size, size_t *align)
{
	/* Without this seal any holder of the file may truncate it, and
	 * reading the mapping past the new end raises SIGBUS. */
	if (!(seals & F_SEAL_SHRINK))
		return -EPERM;
	*size = (uint64_t)st->st_size;
	*align = page_size();
	/* hugetlbfs gives its page size here, and maps only whole ones
	 * (tmpfs may give a huge page size too: aligning to it costs
	 * nothing). */
	if (st->st_blksize > 0 && (size_t)st->st_blksize > *align &&
	    !((size_t)st->st_blksize & ((size_t)st->st_blksize - 1)))
		*align = (size_t)st->st_blksize;
	return 0;
}

/* Whether fd is a dmabuf, and then its size, which the kernel fixed when
 * the buffer was made. */
static bool dmabuf_size(int fd, uint64_t *size)
{
	struct statfs sfs;
	off_t end;

	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != DMA_BUF_MAGIC)
		return false;
	/* A dmabuf tells its size as its end, and seeking moves nothing. */
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		return false;
	*size = (uint64_t)end;
	return true;
}

/* The size of fd that nobody can take back, and the alignment its
 * mappings need; or why it has none. */
static int fixed_size(int fd, unsigned int flags, uint64_t *size, size_t *align)
{
	struct stat st;
	int seals, refusal;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		seals = fcntl(fd, F_GET_SEALS);
		if (seals >= 0)
			return sealed_size(&st, seals, size, align);
		if (errno != EINVAL)
			return -errno;
		refusal = -ENOTSUP; /* a file where seals do not exist */
	} else {
		refusal = -ENODEV; /* a pipe, a socket, a device, ... */
	}
	/* Asked only now: the memfds of the common case pay no fstatfs(). */
	if ((flags & PIER_MAP_DMABUF) && dmabuf_size(fd, size)) {
		*align = page_size();
		return 0;
	}
	return refusal;
}

int map_check(int fd, size_t offset, size_t length, unsigned int flags, size_t *align)
{
	uint64_t end, size = 0;
	size_t a = 0;
	int r;

	if ((r = range_end(offset, length, &end)) < 0 ||
	    (r = fixed_size(fd, flags, &size, &a)) < 0)
		return r;
	if (size < end)
		return -ERANGE;
	if (align)
		*align = a;
	return 0;
}

int map_region_map(struct map_region *r, int fd, size_t offset, size_t length,
		   unsigned int flags)
{
	size_t align, lead, span;
	void *p;
	int err = map_check(fd, offset, length, flags, &align);

	if (err < 0)
		return err;
	/* mmap() takes an aligned offset: map from the boundary below. */
	lead = offset & (align - 1);
	if (__builtin_add_overflow(lead, length, &span) ||
	    __builtin_add_overflow(span, align - 1, &span))
		return -EOVERFLOW;
	span &= ~(align - 1);
	p = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)(offset - lead));
	if (p == MAP_FAILED)
		return -errno;
	*r = (struct map_region){
		.base = p,
		.base_len = span,
		.data = (const unsigned char *)p + lead,
		.len = length,
	};
	return 0;
}

void map_region_unmap(struct map_region *r)
{
	munmap(r->base, r->base_len);
}

int map_new(pier_mapping **out, int fd, size_t offset, size_t length, unsigned int flags)
{
	struct pier_mapping *m = malloc(sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	r = map_region_map(&m->r, fd, offset, length, flags);
	if (r < 0) {
		free(m);
		return r;
	}
	*out = m;
	return 0;
}

/* --- public interface ---------------------------------------------------- */

PIER_EXPORT const void *pier_mapping_data(const pier_mapping *map, size_t *len)
{
	if (len)
		*len = map ? map->r.len : 0;
	return map ? map->r.data : NULL;
}

PIER_EXPORT void pier_mapping_free(pier_mapping *map)
{
	if (!map)
		return;
	map_region_unmap(&map->r);
	free(map);
}
