/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the stream-frame parser, differentially: the input is parsed once
 * whole and once in chunks whose sizes the input itself chooses, and both
 * runs must agree on every frame and on the final error.
 *
 * Input: byte 0 picks the byte order and the body limit, byte 1 seeds the
 * chunk sizes, the rest is the stream.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "wire.h"

struct outcome {
	uint64_t digest; /* of every frame's header and body, in order */
	unsigned int frames;
	int error; /* the final error, or wire_parser_eof() */
};

static uint64_t mix(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull; /* FNV-1a */
	return h;
}

static void take(struct outcome *o, struct wire_frame *f, size_t max_body)
{
	fuzz_assert(f->body_len <= max_body);
	fuzz_assert(f->hdr.type <= PIER_MSG_STREAM);
	o->digest = mix(o->digest, &f->hdr, sizeof(f->hdr));
	o->digest = mix(o->digest, &f->body_len, sizeof(f->body_len));
	o->digest = mix(o->digest, f->body, f->body_len);
	o->frames++;
	free(f->body);
}

static struct outcome parse(const uint8_t *data, size_t len, enum pier_byte_order order,
			    size_t max_body, uint8_t chunk_seed)
{
	struct outcome o = { .digest = 0xcbf29ce484222325ull };
	struct wire_parser p;
	unsigned int state = chunk_seed;
	size_t pos = 0;

	wire_parser_init(&p, order, max_body, NULL);
	while (pos < len) {
		size_t chunk = len - pos, used;
		struct wire_frame f;
		int r;

		if (chunk_seed) {
			state = state * 1103515245u + 12345u;
			chunk = 1 + (state >> 16) % 64;
			if (chunk > len - pos)
				chunk = len - pos;
		}
		r = wire_parser_feed(&p, data + pos, chunk, &used, &f);
		if (r < 0) {
			fuzz_assert(used == 0);
			o.error = r;
			wire_parser_release(&p);
			return o;
		}
		fuzz_assert(used <= chunk);
		fuzz_assert(r == 1 || used == chunk);
		pos += used;
		if (r == 1)
			take(&o, &f, max_body);
	}
	o.error = wire_parser_eof(&p);
	wire_parser_release(&p);
	return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 0, 16, 4096, 65536 };
	enum pier_byte_order order;
	size_t max_body;
	struct outcome whole, split;

	if (size < 2)
		return 0;
	order = (enum pier_byte_order)(data[0] % 3);
	max_body = limits[(data[0] >> 2) % 4];
	whole = parse(data + 2, size - 2, order, max_body, 0);
	split = parse(data + 2, size - 2, order, max_body, data[1] | 1);
	fuzz_assert(whole.frames == split.frames);
	fuzz_assert(whole.digest == split.digest);
	fuzz_assert(whole.error == split.error);
	fuzz_assert(whole.error == 0 || whole.error == -PIER_ESHORTFRAME ||
		    whole.error == -PIER_EBADTYPE || whole.error == -PIER_EBODYLIMIT ||
		    whole.error == -PIER_EPARTIAL);
	return 0;
}
