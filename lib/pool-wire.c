/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "pool-wire.h"

/* --- little endian, whatever the host ------------------------------------ */

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

__attribute__((format(printf, 3, 4)))
static int refuse(char *why, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, POOL_WHY_SIZE, fmt, ap);
	va_end(ap);
	return err;
}

/* --- parsing ------------------------------------------------------------- */

/* The entries, once the header is known good: each one on its own, then
 * that every fd holds a buffer and the pool is not too large. */
static int share_entries_check(const struct pool_share *s, char *why)
{
	uint8_t used[PIER_POOL_MAX_BUFFERS / 8] = { 0 };
	uint64_t total = 0;

	for (uint32_t i = 0; i < s->count; i++) {
		const uint8_t *p = s->entries + (size_t)i * POOL_ENTRY_SIZE;
		struct pool_entry e;
		uint64_t end;

		pool_share_entry(s, i, &e);
		if (e.fd >= s->nfds)
			return refuse(why, -EBADMSG, "buffer %u names fd %u of a pool of %u fds", i,
				      e.fd, s->nfds);
		if (get32(p + 4) != 0)
			return refuse(why, -EBADMSG, "buffer %u: reserved field not 0", i);
		if (e.size == 0)
			return refuse(why, -EBADMSG, "buffer %u has no bytes", i);
		if (__builtin_add_overflow(e.offset, e.size, &end) || end > (uint64_t)INT64_MAX)
			return refuse(why, -EOVERFLOW, "buffer %u: offset + size overflows", i);
		if (__builtin_add_overflow(total, e.size, &total) || total > PIER_POOL_MAX_BYTES)
			return refuse(why, -E2BIG, "the pool is larger than %llu bytes",
				      (unsigned long long)PIER_POOL_MAX_BYTES);
		used[e.fd / 8] |= (uint8_t)(1u << (e.fd % 8));
	}
	for (uint32_t fd = 0; fd < s->nfds; fd++)
		if (!(used[fd / 8] & (1u << (fd % 8))))
			return refuse(why, -EBADMSG, "fd %u holds no buffer", fd);
	return 0;
}

int pool_share_parse(const void *body, size_t len, struct pool_share *s, char *why)
{
	const uint8_t *p = body;
	uint32_t version, flags;

	if (len < POOL_SHARE_HEAD)
		return refuse(why, -EBADMSG, "a share request of %zu bytes, shorter than %u", len,
			      POOL_SHARE_HEAD);
	version = get32(p);
	s->pool_id = get32(p + 4);
	s->count = get32(p + 8);
	s->nfds = get32(p + 12);
	flags = get32(p + 16);
	if (version != POOL_VERSION)
		return refuse(why, -EPROTONOSUPPORT, "pool protocol version %u, not %u", version,
			      POOL_VERSION);
	if (flags != 0 || get32(p + 20) != 0)
		return refuse(why, -EBADMSG, "unknown flags or reserved field not 0");
	if (s->count == 0)
		return refuse(why, -EBADMSG, "a pool of no buffers");
	if (s->count > PIER_POOL_MAX_BUFFERS)
		return refuse(why, -E2BIG, "%u buffers, more than %u", s->count,
			      PIER_POOL_MAX_BUFFERS);
	if (s->nfds == 0 || s->nfds > s->count)
		return refuse(why, -EBADMSG, "%u fds for %u buffers", s->nfds, s->count);
	if (len != POOL_SHARE_HEAD + (size_t)s->count * POOL_ENTRY_SIZE)
		return refuse(why, -EBADMSG, "a share request of %zu bytes for %u buffers", len,
			      s->count);
	s->entries = p + POOL_SHARE_HEAD;
	return share_entries_check(s, why);
}

void pool_share_entry(const struct pool_share *s, uint32_t i, struct pool_entry *e)
{
	const uint8_t *p = s->entries + (size_t)i * POOL_ENTRY_SIZE;

	e->fd = get32(p);
	e->offset = get64(p + 8);
	e->size = get64(p + 16);
}

int pool_fds_parse(const void *body, size_t len, uint32_t *pool_id, uint32_t *first, char *why)
{
	if (len != POOL_FDS_SIZE)
		return refuse(why, -EBADMSG, "an fds message of %zu bytes, not %u", len,
			      POOL_FDS_SIZE);
	*pool_id = get32(body);
	*first = get32((const uint8_t *)body + 4);
	return 0;
}

int pool_frame_parse(const void *body, size_t len, struct pool_frame *f, char *why)
{
	const uint8_t *p = body;
	uint64_t end;

	if (len < POOL_FRAME_HEAD)
		return refuse(why, -EBADMSG, "a frame of %zu bytes, shorter than %u", len,
			      POOL_FRAME_HEAD);
	f->pool_id = get32(p);
	f->buffer = get32(p + 4);
	f->seq = get32(p + 8);
	f->meta_len = get32(p + 12);
	f->offset = get64(p + 16);
	f->length = get64(p + 24);
	f->meta = p + POOL_FRAME_HEAD;
	if (f->meta_len > PIER_POOL_MAX_META)
		return refuse(why, -EMSGSIZE, "%u bytes of metadata, more than %u", f->meta_len,
			      PIER_POOL_MAX_META);
	if (len != POOL_FRAME_HEAD + (size_t)f->meta_len)
		return refuse(why, -EBADMSG, "a frame of %zu bytes with %u bytes of metadata",
			      len, f->meta_len);
	if (f->length == 0)
		return refuse(why, -EBADMSG, "a frame of no bytes");
	if (__builtin_add_overflow(f->offset, f->length, &end))
		return refuse(why, -EOVERFLOW, "offset + length overflows");
	return 0;
}

int pool_close_parse(const void *body, size_t len, uint32_t *pool_id, char *why)
{
	if (len != POOL_CLOSE_SIZE)
		return refuse(why, -EBADMSG, "a close message of %zu bytes, not %u", len,
			      POOL_CLOSE_SIZE);
	*pool_id = get32(body);
	return 0;
}

int pool_release_parse(const void *body, size_t len, struct pool_release *r, char *why)
{
	const uint8_t *p = body;

	if (len < POOL_RELEASE_HEAD)
		return refuse(why, -EBADMSG, "a release of %zu bytes, shorter than %u", len,
			      POOL_RELEASE_HEAD);
	r->pool_id = get32(p);
	r->count = get32(p + 4);
	r->entries = p + POOL_RELEASE_HEAD;
	if (r->count == 0 || r->count > PIER_POOL_MAX_BUFFERS)
		return refuse(why, -EBADMSG, "a release of %u buffers", r->count);
	if (len != POOL_RELEASE_HEAD + (size_t)r->count * POOL_RELEASE_ENTRY)
		return refuse(why, -EBADMSG, "a release of %zu bytes for %u buffers", len,
			      r->count);
	return 0;
}

void pool_release_entry(const struct pool_release *r, uint32_t i, uint32_t *buffer,
			uint32_t *seq)
{
	const uint8_t *p = r->entries + (size_t)i * POOL_RELEASE_ENTRY;

	*buffer = get32(p);
	*seq = get32(p + 4);
}

int pool_error_parse(const void *body, size_t len, struct pool_error *e)
{
	const uint8_t *p = body;

	if (len < POOL_ERROR_HEAD || len > POOL_ERROR_MAX)
		return -EBADMSG;
	e->pool_id = get32(p);
	e->code = (int32_t)get32(p + 4);
	e->about = get32(p + 8);
	e->buffer = get32(p + 12);
	e->seq = get32(p + 16);
	e->text = (const char *)p + POOL_ERROR_HEAD;
	e->text_len = len - POOL_ERROR_HEAD;
	/* A code that is no errno value: the refusal still stands. */
	if (e->code <= 0 || e->code >= 4096)
		e->code = EPROTO;
	return 0;
}

/* --- encoding ------------------------------------------------------------ */

size_t pool_share_encode(void *out, uint32_t pool_id, uint32_t count, uint32_t nfds,
			 const struct pool_entry *entries)
{
	uint8_t *p = out;

	put32(p, POOL_VERSION);
	put32(p + 4, pool_id);
	put32(p + 8, count);
	put32(p + 12, nfds);
	put32(p + 16, 0);
	put32(p + 20, 0);
	for (uint32_t i = 0; i < count; i++) {
		uint8_t *e = p + POOL_SHARE_HEAD + (size_t)i * POOL_ENTRY_SIZE;

		put32(e, entries[i].fd);
		put32(e + 4, 0);
		put64(e + 8, entries[i].offset);
		put64(e + 16, entries[i].size);
	}
	return POOL_SHARE_HEAD + (size_t)count * POOL_ENTRY_SIZE;
}

size_t pool_fds_encode(void *out, uint32_t pool_id, uint32_t first)
{
	put32(out, pool_id);
	put32((uint8_t *)out + 4, first);
	return POOL_FDS_SIZE;
}

size_t pool_frame_encode(void *out, const struct pool_frame *f)
{
	uint8_t *p = out;

	put32(p, f->pool_id);
	put32(p + 4, f->buffer);
	put32(p + 8, f->seq);
	put32(p + 12, f->meta_len);
	put64(p + 16, f->offset);
	put64(p + 24, f->length);
	if (f->meta_len)
		memcpy(p + POOL_FRAME_HEAD, f->meta, f->meta_len);
	return POOL_FRAME_HEAD + f->meta_len;
}

size_t pool_close_encode(void *out, uint32_t pool_id)
{
	put32(out, pool_id);
	return POOL_CLOSE_SIZE;
}

size_t pool_release_encode(void *out, uint32_t pool_id, uint32_t count,
			   const uint32_t *buffers, const uint32_t *seqs)
{
	uint8_t *p = out;

	put32(p, pool_id);
	put32(p + 4, count);
	for (uint32_t i = 0; i < count; i++) {
		put32(p + POOL_RELEASE_HEAD + (size_t)i * POOL_RELEASE_ENTRY, buffers[i]);
		put32(p + POOL_RELEASE_HEAD + (size_t)i * POOL_RELEASE_ENTRY + 4, seqs[i]);
	}
	return POOL_RELEASE_HEAD + (size_t)count * POOL_RELEASE_ENTRY;
}

size_t pool_error_encode(void *out, uint32_t pool_id, int code, uint32_t about,
			 uint32_t buffer, uint32_t seq, const char *text)
{
	uint8_t *p = out;
	size_t n = strlen(text);

	if (n > POOL_ERROR_MAX_TEXT)
		n = POOL_ERROR_MAX_TEXT;
	put32(p, pool_id);
	put32(p + 4, (uint32_t)(code < 0 ? -code : code));
	put32(p + 8, about);
	put32(p + 12, buffer);
	put32(p + 16, seq);
	memcpy(p + POOL_ERROR_HEAD, text, n);
	return POOL_ERROR_HEAD + n;
}
