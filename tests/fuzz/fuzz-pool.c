/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the parsers of the buffer pools' messages (lib/pool-wire.c), which
 * read what a remote sent: whatever one accepts is within the pools'
 * limits and encodes back to the same bytes; whatever it refuses, it says
 * why.
 *
 * Input: byte 0 picks the message kind (share request, fds, frame, close,
 * release, error), the rest is its body.
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "pool-wire.h"

static uint8_t again[POOL_SHARE_MAX + POOL_FRAME_MAX];

static void share(const uint8_t *data, size_t size, char *why)
{
	static struct pool_entry e[PIER_POOL_MAX_BUFFERS];
	uint8_t used[PIER_POOL_MAX_BUFFERS] = { 0 };
	struct pool_share s;
	uint64_t total = 0;
	int r = pool_share_parse(data, size, &s, why);

	if (r < 0) {
		fuzz_assert(r == -EBADMSG || r == -E2BIG || r == -EOVERFLOW ||
			    r == -EPROTONOSUPPORT);
		fuzz_assert(why[0]);
		return;
	}
	fuzz_assert(s.count >= 1 && s.count <= PIER_POOL_MAX_BUFFERS);
	fuzz_assert(s.nfds >= 1 && s.nfds <= s.count);
	fuzz_assert(size == POOL_SHARE_HEAD + (size_t)s.count * POOL_ENTRY_SIZE);
	for (uint32_t i = 0; i < s.count; i++) {
		pool_share_entry(&s, i, &e[i]);
		fuzz_assert(e[i].fd < s.nfds && e[i].size > 0);
		fuzz_assert(e[i].offset <= (uint64_t)INT64_MAX - e[i].size);
		total += e[i].size;
		used[e[i].fd] = 1;
	}
	fuzz_assert(total <= PIER_POOL_MAX_BYTES);
	for (uint32_t fd = 0; fd < s.nfds; fd++)
		fuzz_assert(used[fd]);
	fuzz_assert(pool_share_encode(again, s.pool_id, s.count, s.nfds, e) == size);
	fuzz_assert(memcmp(again, data, size) == 0);
}

static void frame(const uint8_t *data, size_t size, char *why)
{
	struct pool_frame f;
	int r = pool_frame_parse(data, size, &f, why);

	if (r < 0) {
		fuzz_assert(r == -EBADMSG || r == -EMSGSIZE || r == -EOVERFLOW);
		fuzz_assert(why[0]);
		return;
	}
	fuzz_assert(f.meta_len <= PIER_POOL_MAX_META);
	fuzz_assert(size == POOL_FRAME_HEAD + f.meta_len);
	fuzz_assert(f.length > 0 && f.offset <= UINT64_MAX - f.length);
	fuzz_assert(pool_frame_encode(again, &f) == size);
	fuzz_assert(memcmp(again, data, size) == 0);
}

static void release(const uint8_t *data, size_t size, char *why)
{
	static uint32_t bufs[PIER_POOL_MAX_BUFFERS], seqs[PIER_POOL_MAX_BUFFERS];
	struct pool_release rel;
	int r = pool_release_parse(data, size, &rel, why);

	if (r < 0) {
		fuzz_assert(r == -EBADMSG && why[0]);
		return;
	}
	fuzz_assert(rel.count >= 1 && rel.count <= PIER_POOL_MAX_BUFFERS);
	fuzz_assert(size == POOL_RELEASE_HEAD + (size_t)rel.count * POOL_RELEASE_ENTRY);
	for (uint32_t i = 0; i < rel.count; i++)
		pool_release_entry(&rel, i, &bufs[i], &seqs[i]);
	fuzz_assert(pool_release_encode(again, rel.pool_id, rel.count, bufs, seqs) == size);
	fuzz_assert(memcmp(again, data, size) == 0);
}

static void refusal(const uint8_t *data, size_t size)
{
	struct pool_error e;
	int r = pool_error_parse(data, size, &e);

	if (r < 0) {
		fuzz_assert(size < POOL_ERROR_HEAD || size > POOL_ERROR_MAX);
		return;
	}
	fuzz_assert(e.code > 0 && e.code < 4096);
	fuzz_assert(e.text == (const char *)data + POOL_ERROR_HEAD);
	fuzz_assert(e.text_len == size - POOL_ERROR_HEAD);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[POOL_WHY_SIZE] = "";
	uint32_t id, first;
	int r;

	if (size < 1)
		return 0;
	switch (data[0] % 6) {
	case 0:
		share(data + 1, size - 1, why);
		break;
	case 1:
		r = pool_fds_parse(data + 1, size - 1, &id, &first, why);
		fuzz_assert(r == 0 ? size - 1 == POOL_FDS_SIZE : r == -EBADMSG && why[0]);
		if (r == 0) {
			pool_fds_encode(again, id, first);
			fuzz_assert(memcmp(again, data + 1, POOL_FDS_SIZE) == 0);
		}
		break;
	case 2:
		frame(data + 1, size - 1, why);
		break;
	case 3:
		r = pool_close_parse(data + 1, size - 1, &id, why);
		fuzz_assert(r == 0 ? size - 1 == POOL_CLOSE_SIZE : r == -EBADMSG && why[0]);
		break;
	case 4:
		release(data + 1, size - 1, why);
		break;
	default:
		refusal(data + 1, size - 1);
		break;
	}
	return 0;
}
