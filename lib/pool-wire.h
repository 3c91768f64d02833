/* SPDX-License-Identifier: MIT */
/*
 * The buffer pools' messages (doc/POOL-PROTOCOL.md): bodies of ordinary
 * Fizyr RPC messages, encoded and parsed here, bytes only.  Every integer
 * is little endian, whatever the connection's byte order.  The parsers
 * check everything a body can get wrong by itself (sizes, limits,
 * overflows, reserved fields) and say why in text; what depends on state
 * (which pool, which buffers are held) is the caller's to check.
 */
#ifndef PIER_POOL_WIRE_H
#define PIER_POOL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pier.h>

#define POOL_VERSION 1u

/* The kinds of updates, as their service ids. */
enum pool_kind {
	POOL_FDS = 1,     /* owner: more of the pool's fds */
	POOL_FRAME = 2,   /* owner: a buffer is ready */
	POOL_CLOSE = 3,   /* owner: done with the pool */
	POOL_RELEASE = 4, /* receiver: buffers it no longer reads */
	POOL_ERROR = 5,   /* either: a message refused, and why */
};
/* What an error refers to besides the updates: the share request. */
#define POOL_ABOUT_SHARE 0u

#define POOL_SHARE_HEAD 24u
#define POOL_ENTRY_SIZE 24u
#define POOL_FDS_SIZE 8u
#define POOL_FRAME_HEAD 32u
#define POOL_CLOSE_SIZE 4u
#define POOL_RELEASE_HEAD 8u
#define POOL_RELEASE_ENTRY 8u
#define POOL_ERROR_HEAD 20u
#define POOL_ERROR_MAX_TEXT 200u
/* The largest body of each kind. */
#define POOL_SHARE_MAX (POOL_SHARE_HEAD + PIER_POOL_MAX_BUFFERS * POOL_ENTRY_SIZE)
#define POOL_FRAME_MAX (POOL_FRAME_HEAD + PIER_POOL_MAX_META)
#define POOL_RELEASE_MAX (POOL_RELEASE_HEAD + PIER_POOL_MAX_BUFFERS * POOL_RELEASE_ENTRY)
#define POOL_ERROR_MAX (POOL_ERROR_HEAD + POOL_ERROR_MAX_TEXT)

/* Room for the text of a refusal. */
#define POOL_WHY_SIZE 160u

/* A share request: the pool's geometry; entries (count of them) follow
 * the header in the body. */
struct pool_share {
	uint32_t pool_id;
	uint32_t count; /* buffers */
	uint32_t nfds;  /* fds of the pool, in this message and FDS updates */
	const uint8_t *entries;
};

/* One buffer of a share request: where it lies. */
struct pool_entry {
	uint32_t fd; /* which of the pool's fds, from 0 */
	uint64_t offset, size;
};

struct pool_frame {
	uint32_t pool_id, buffer, seq, meta_len;
	uint64_t offset, length;
	const void *meta;
};

struct pool_release {
	uint32_t pool_id, count;
	const uint8_t *entries; /* (buffer, seq) pairs */
};

struct pool_error {
	uint32_t pool_id;
	int32_t code; /* a positive errno value (Linux numbering) */
	uint32_t about; /* POOL_ABOUT_SHARE or the kind refused */
	uint32_t buffer, seq;
	const char *text; /* not terminated */
	size_t text_len;
};

/* Parsers: 0, or a negative errno with why (POOL_WHY_SIZE bytes) saying
 * what is wrong.  A share request is checked whole: every entry names one
 * of its fds, lies within 2^63, has bytes, and every fd holds a buffer;
 * the pool is at most PIER_POOL_MAX_BYTES. */
int pool_share_parse(const void *body, size_t len, struct pool_share *s, char *why);
void pool_share_entry(const struct pool_share *s, uint32_t i, struct pool_entry *e);
int pool_fds_parse(const void *body, size_t len, uint32_t *pool_id, uint32_t *first, char *why);
int pool_frame_parse(const void *body, size_t len, struct pool_frame *f, char *why);
int pool_close_parse(const void *body, size_t len, uint32_t *pool_id, char *why);
int pool_release_parse(const void *body, size_t len, struct pool_release *r, char *why);
void pool_release_entry(const struct pool_release *r, uint32_t i, uint32_t *buffer,
			uint32_t *seq);
int pool_error_parse(const void *body, size_t len, struct pool_error *e);

/* Encoders: they write the body into out (room for the kind's largest)
 * and return its length.  The share's entries and the release's pairs
 * are given as arrays. */
size_t pool_share_encode(void *out, uint32_t pool_id, uint32_t count, uint32_t nfds,
			 const struct pool_entry *entries);
size_t pool_fds_encode(void *out, uint32_t pool_id, uint32_t first);
size_t pool_frame_encode(void *out, const struct pool_frame *f);
size_t pool_close_encode(void *out, uint32_t pool_id);
size_t pool_release_encode(void *out, uint32_t pool_id, uint32_t count,
			   const uint32_t *buffers, const uint32_t *seqs);
/* text: at most POOL_ERROR_MAX_TEXT bytes of it are sent. */
size_t pool_error_encode(void *out, uint32_t pool_id, int code, uint32_t about,
			 uint32_t buffer, uint32_t seq, const char *text);

#endif
