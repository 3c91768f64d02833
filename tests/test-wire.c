/* SPDX-License-Identifier: MIT */
/* The wire codec: byte-exact vectors, and the parsers against every chunking
 * and every malformed-input class. */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "wire.h"

/* --- helpers -------------------------------------------------------------- */

/* An allocator that counts, fails on request, and frees what it handed out. */
struct counting_alloc {
	int allocs, frees;
	int fail_at; /* the allocation number that fails; 0 for none */
	size_t last_len;
};

static void *count_alloc(void *ctx, const struct pier_header *h, size_t len)
{
	struct counting_alloc *c = ctx;

	c->last_len = len;
	if (++c->allocs == c->fail_at)
		return NULL;
	return malloc(len ? len : 1);
}

static void count_free(void *ctx, void *body)
{
	struct counting_alloc *c = ctx;

	c->frees++;
	free(body);
}

static const uint8_t hello_request[] = {
	0x11, 0x00, 0x00, 0x00, /* length 17 */
	0x00, 0x00, 0x00, 0x00, /* request */
	0x15, 0x00, 0x00, 0x00, /* request id 21 */
	0x01, 0x00, 0x00, 0x00, /* service 1 */
	'H',  'e',  'l',  'l',  'o',
};

/* Encodes a stream frame into buf; returns its size. */
static size_t encode_frame(uint8_t *buf, const struct pier_header *h,
			   const void *body, size_t len, enum pier_byte_order order)
{
	ck_assert_int_eq(wire_stream_prefix_encode(buf, h, len, order), 0);
	if (len)
		memcpy(buf + WIRE_STREAM_OVERHEAD, body, len);
	return WIRE_STREAM_OVERHEAD + len;
}

static void assert_frame(const struct wire_frame *f, enum pier_msg_type type,
			 uint32_t id, int32_t svc, const void *body, size_t len)
{
	ck_assert_int_eq(f->hdr.type, type);
	ck_assert_uint_eq(f->hdr.request_id, id);
	ck_assert_int_eq(f->hdr.service_id, svc);
	ck_assert_uint_eq(f->body_len, len);
	ck_assert_ptr_nonnull(f->body);
	ck_assert(len == 0 || memcmp(f->body, body, len) == 0);
}

/* Feeds all of data to p in one call per frame; expects every byte used. */
static int feed_all(struct wire_parser *p, const void *data, size_t len,
		    struct wire_frame *frames, int max_frames)
{
	const uint8_t *in = data;
	int n = 0;

	while (len > 0) {
		size_t used;
		int r = wire_parser_feed(p, in, len, &used, &frames[n]);

		if (r < 0)
			return r;
		ck_assert_uint_le(used, len);
		in += used;
		len -= used;
		if (r == 1) {
			ck_assert_int_lt(n, max_frames);
			n++;
		} else {
			ck_assert_uint_eq(len, 0);
		}
	}
	return n;
}

static void free_frames(struct wire_frame *frames, int n)
{
	for (int i = 0; i < n; i++)
		free(frames[i].body);
}

/* --- byte-exact vectors ------------------------------------------------- */

START_TEST(vector_hello_request)
{
	struct pier_header h = { PIER_MSG_REQUEST, 21, 1 };
	uint8_t buf[64];
	struct wire_parser p;
	struct wire_frame f;

	ck_assert_uint_eq(encode_frame(buf, &h, "Hello", 5, PIER_BYTE_ORDER_LITTLE),
			  sizeof(hello_request));
	ck_assert_mem_eq(buf, hello_request, sizeof(hello_request));

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 8192, NULL);
	ck_assert_int_eq(feed_all(&p, hello_request, sizeof(hello_request), &f, 1), 1);
	assert_frame(&f, PIER_MSG_REQUEST, 21, 1, "Hello", 5);
	ck_assert_int_eq(wire_parser_eof(&p), 0);
	free(f.body);
}
END_TEST

START_TEST(vector_error_response)
{
	static const uint8_t le[] = {
		0x1c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x15, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 'u',  'n',  'k',  'n',
		'o',  'w',  'n',  ' ',  's',  'e',  'r',  'v',  'i',  'c',
		'e',  '!',
	};
	static const uint8_t be[] = {
		0x00, 0x00, 0x00, 0x1c, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x15, 0xff, 0xff, 0xff, 0xff, 'u',  'n',  'k',  'n',
		'o',  'w',  'n',  ' ',  's',  'e',  'r',  'v',  'i',  'c',
		'e',  '!',
	};
	struct pier_header h = { PIER_MSG_RESPONSE, 21, PIER_SERVICE_ERROR };
	const char *text = "unknown service!";
	uint8_t buf[64];
	struct wire_parser p;
	struct wire_frame f;

	ck_assert_uint_eq(encode_frame(buf, &h, text, 16, PIER_BYTE_ORDER_LITTLE),
			  sizeof(le));
	ck_assert_mem_eq(buf, le, sizeof(le));
	ck_assert_uint_eq(encode_frame(buf, &h, text, 16, PIER_BYTE_ORDER_BIG),
			  sizeof(be));
	ck_assert_mem_eq(buf, be, sizeof(be));

	wire_parser_init(&p, PIER_BYTE_ORDER_BIG, 8192, NULL);
	ck_assert_int_eq(feed_all(&p, be, sizeof(be), &f, 1), 1);
	assert_frame(&f, PIER_MSG_RESPONSE, 21, -1, text, 16);
	free(f.body);
}
END_TEST

START_TEST(vector_stream_message)
{
	static const uint8_t le[] = {
		0x14, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x07, 0x00, 0x00, 0x00, 's',  't',  'r',  'e',  'a',  'm',
		'-',  '1',
	};
	struct pier_header h = { PIER_MSG_STREAM, 0, 7 };
	uint8_t buf[64];
	struct wire_packet pkt;

	ck_assert_uint_eq(encode_frame(buf, &h, "stream-1", 8, PIER_BYTE_ORDER_LITTLE),
			  sizeof(le));
	ck_assert_mem_eq(buf, le, sizeof(le));
	/* the same message as a seqpacket packet: no prefix */
	ck_assert_int_eq(wire_packet_parse(le + 4, sizeof(le) - 4,
					   PIER_BYTE_ORDER_LITTLE, 4096, &pkt),
			 0);
	ck_assert_int_eq(pkt.hdr.type, PIER_MSG_STREAM);
	ck_assert_uint_eq(pkt.hdr.request_id, 0);
	ck_assert_int_eq(pkt.hdr.service_id, 7);
	ck_assert_uint_eq(pkt.body_len, 8);
	ck_assert_ptr_eq(pkt.body, le + 16); /* parsed in place */
}
END_TEST

/* Every type, both explicit orders, and native, against hand-written bytes. */
START_TEST(vector_every_type)
{
	int t = _i;
	struct pier_header h = { (enum pier_msg_type)t, 0x01020304, 0x0a0b0c0d };
	const uint8_t le[12] = { (uint8_t)t, 0, 0, 0, 4, 3, 2, 1, 0x0d, 0x0c, 0x0b, 0x0a };
	const uint8_t be[12] = { 0, 0, 0, (uint8_t)t, 1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d };
	const uint8_t *native = __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__ ? be : le;
	uint8_t buf[12];
	struct pier_header d;

	wire_header_encode(buf, &h, PIER_BYTE_ORDER_LITTLE);
	ck_assert_mem_eq(buf, le, 12);
	wire_header_encode(buf, &h, PIER_BYTE_ORDER_BIG);
	ck_assert_mem_eq(buf, be, 12);
	wire_header_encode(buf, &h, PIER_BYTE_ORDER_NATIVE);
	ck_assert_mem_eq(buf, native, 12);

	ck_assert_int_eq(wire_header_decode(&d, le, PIER_BYTE_ORDER_LITTLE), 0);
	ck_assert_mem_eq(&d, &h, sizeof(h));
	ck_assert_int_eq(wire_header_decode(&d, be, PIER_BYTE_ORDER_BIG), 0);
	ck_assert_mem_eq(&d, &h, sizeof(h));
	ck_assert_int_eq(wire_header_decode(&d, native, PIER_BYTE_ORDER_NATIVE), 0);
	ck_assert_mem_eq(&d, &h, sizeof(h));
}
END_TEST

START_TEST(vector_extreme_ids)
{
	static const struct {
		struct pier_header h;
		uint8_t le[12], be[12];
	} v[] = {
		{ { PIER_MSG_RESPONSE, 0xffffffffu, -1 },
		  { 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
		  { 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff } },
		{ { PIER_MSG_REQUESTER_UPDATE, 0, INT32_MIN },
		  { 2, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x80 },
		  { 0, 0, 0, 2, 0, 0, 0, 0, 0x80, 0x00, 0x00, 0x00 } },
		{ { PIER_MSG_RESPONDER_UPDATE, 0x80000000u, INT32_MAX },
		  { 3, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f },
		  { 0, 0, 0, 3, 0x80, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff } },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint8_t buf[12];
		struct pier_header d;

		wire_header_encode(buf, &v[i].h, PIER_BYTE_ORDER_LITTLE);
		ck_assert_mem_eq(buf, v[i].le, 12);
		wire_header_encode(buf, &v[i].h, PIER_BYTE_ORDER_BIG);
		ck_assert_mem_eq(buf, v[i].be, 12);
		ck_assert_int_eq(wire_header_decode(&d, v[i].le, PIER_BYTE_ORDER_LITTLE), 0);
		ck_assert_mem_eq(&d, &v[i].h, sizeof(d));
		ck_assert_int_eq(wire_header_decode(&d, v[i].be, PIER_BYTE_ORDER_BIG), 0);
		ck_assert_mem_eq(&d, &v[i].h, sizeof(d));
	}
}
END_TEST

START_TEST(vector_empty_body)
{
	static const uint8_t be[] = {
		0, 0, 0, 12, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1,
	};
	struct pier_header h = { PIER_MSG_REQUEST, 0xffffffffu, 1 };
	uint8_t buf[16];
	struct wire_parser p;
	struct wire_frame f;
	struct wire_packet pkt;

	ck_assert_uint_eq(encode_frame(buf, &h, NULL, 0, PIER_BYTE_ORDER_BIG), 16);
	ck_assert_mem_eq(buf, be, 16);
	wire_parser_init(&p, PIER_BYTE_ORDER_BIG, 0, NULL); /* limit 0 still fits */
	ck_assert_int_eq(feed_all(&p, be, 16, &f, 1), 1);
	assert_frame(&f, PIER_MSG_REQUEST, 0xffffffffu, 1, NULL, 0);
	free(f.body);

	ck_assert_int_eq(wire_packet_parse(be + 4, 12, PIER_BYTE_ORDER_BIG, 0, &pkt), 0);
	ck_assert_uint_eq(pkt.body_len, 0);
}
END_TEST

START_TEST(prefix_encode_refuses_huge_body)
{
	struct pier_header h = { PIER_MSG_STREAM, 0, 1 };
	uint8_t buf[16];

	memset(buf, 0xaa, sizeof(buf));
	ck_assert_int_eq(wire_stream_prefix_encode(buf, &h, WIRE_STREAM_MAX_BODY + 1,
						   PIER_BYTE_ORDER_LITTLE),
			 -EMSGSIZE);
	for (size_t i = 0; i < sizeof(buf); i++)
		ck_assert_uint_eq(buf[i], 0xaa); /* nothing written */
	ck_assert_int_eq(wire_stream_prefix_encode(buf, &h, WIRE_STREAM_MAX_BODY,
						   PIER_BYTE_ORDER_LITTLE),
			 0);
	ck_assert_mem_eq(buf, "\xff\xff\xff\xff", 4);
}
END_TEST

/* --- chunking ------------------------------------------------------------- */

#define MANY 40

/* Builds a stream of MANY frames of every type, sizes 0 to ~3000. */
static size_t build_stream(uint8_t **out, enum pier_byte_order order)
{
	uint8_t *buf = malloc(MANY * (WIRE_STREAM_OVERHEAD + 3000));
	uint8_t body[3000];
	size_t len = 0;

	ck_assert_ptr_nonnull(buf);
	for (int i = 0; i < MANY; i++) {
		struct pier_header h = { (enum pier_msg_type)(i % 5), (uint32_t)i * 7919u,
					 (int32_t)(i - 20) };
		size_t blen = (size_t)(i * i * 7) % 3000;

		for (size_t j = 0; j < blen; j++)
			body[j] = (uint8_t)(i + j);
		len += encode_frame(buf + len, &h, body, blen, order);
	}
	*out = buf;
	return len;
}

static void assert_same_frames(const struct wire_frame *a, const struct wire_frame *b,
			       int n)
{
	for (int i = 0; i < n; i++) {
		ck_assert_mem_eq(&a[i].hdr, &b[i].hdr, sizeof(a[i].hdr));
		ck_assert_uint_eq(a[i].body_len, b[i].body_len);
		ck_assert(a[i].body_len == 0 ||
			  memcmp(a[i].body, b[i].body, a[i].body_len) == 0);
	}
}

START_TEST(parse_whole_stream)
{
	enum pier_byte_order order = (enum pier_byte_order)_i;
	struct wire_frame f[MANY];
	struct wire_parser p;
	uint8_t *buf;
	size_t len = build_stream(&buf, order);

	wire_parser_init(&p, order, 3000, NULL);
	ck_assert_int_eq(feed_all(&p, buf, len, f, MANY), MANY);
	for (int i = 0; i < MANY; i++) {
		size_t blen = (size_t)(i * i * 7) % 3000;

		ck_assert_int_eq(f[i].hdr.type, i % 5);
		ck_assert_uint_eq(f[i].hdr.request_id, (uint32_t)i * 7919u);
		ck_assert_int_eq(f[i].hdr.service_id, i - 20);
		ck_assert_uint_eq(f[i].body_len, blen);
		for (size_t j = 0; j < blen; j++)
			ck_assert_uint_eq(((uint8_t *)f[i].body)[j], (uint8_t)(i + j));
	}
	ck_assert_int_eq(wire_parser_eof(&p), 0);
	free_frames(f, MANY);
	free(buf);
}
END_TEST

START_TEST(parse_byte_by_byte)
{
	struct wire_frame whole[MANY], bytes[MANY];
	struct wire_parser p;
	uint8_t *buf;
	size_t len = build_stream(&buf, PIER_BYTE_ORDER_LITTLE);
	int n = 0;

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 3000, NULL);
	ck_assert_int_eq(feed_all(&p, buf, len, whole, MANY), MANY);

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 3000, NULL);
	for (size_t i = 0; i < len; i++) {
		size_t used;
		int r = wire_parser_feed(&p, buf + i, 1, &used, &bytes[n]);

		ck_assert_int_ge(r, 0);
		ck_assert_uint_eq(used, 1);
		if (r == 1)
			n++;
		/* between frames exactly when a frame just ended */
		ck_assert_int_eq(wire_parser_eof(&p) == 0, r == 1);
	}
	ck_assert_int_eq(n, MANY);
	assert_same_frames(whole, bytes, MANY);
	free_frames(whole, MANY);
	free_frames(bytes, MANY);
	free(buf);
}
END_TEST

START_TEST(parse_random_splits)
{
	struct wire_frame whole[MANY], split[MANY];
	struct wire_parser p;
	uint8_t *buf;
	size_t len = build_stream(&buf, PIER_BYTE_ORDER_BIG);
	unsigned int seed = 12345;

	wire_parser_init(&p, PIER_BYTE_ORDER_BIG, 3000, NULL);
	ck_assert_int_eq(feed_all(&p, buf, len, whole, MANY), MANY);

	for (int round = 0; round < 200; round++) {
		size_t pos = 0;
		int n = 0;

		wire_parser_init(&p, PIER_BYTE_ORDER_BIG, 3000, NULL);
		while (pos < len) {
			/* chunks from 1 byte to several frames long */
			size_t chunk = 1 + (size_t)rand_r(&seed) % (round % 2 ? 40 : 9000);

			if (chunk > len - pos)
				chunk = len - pos;
			n += feed_all(&p, buf + pos, chunk, split + n, MANY - n);
			pos += chunk;
		}
		ck_assert_int_eq(n, MANY);
		ck_assert_int_eq(wire_parser_eof(&p), 0);
		assert_same_frames(whole, split, MANY);
		free_frames(split, MANY);
	}
	free_frames(whole, MANY);
	free(buf);
}
END_TEST

/* Bodies written straight into the parser's window, as a socket read would. */
START_TEST(parse_body_window)
{
	static const char body[] = "a body read straight into place";
	struct pier_header h = { PIER_MSG_RESPONDER_UPDATE, 9, 3 };
	uint8_t buf[64];
	size_t len = encode_frame(buf, &h, body, sizeof(body), PIER_BYTE_ORDER_LITTLE);
	struct wire_parser p;
	struct wire_frame f;
	size_t used;
	void *dst;

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 100, NULL);
	ck_assert_uint_eq(wire_parser_body_window(&p, &dst), 0);
	ck_assert_ptr_null(dst);
	/* the header plus 3 body bytes through feed */
	ck_assert_int_eq(wire_parser_feed(&p, buf, WIRE_STREAM_OVERHEAD + 3, &used, &f), 0);
	ck_assert_uint_eq(used, WIRE_STREAM_OVERHEAD + 3);
	ck_assert_uint_eq(wire_parser_body_window(&p, &dst), sizeof(body) - 3);
	memcpy(dst, body + 3, 10);
	ck_assert_int_eq(wire_parser_body_commit(&p, 10, &f), 0);
	ck_assert_int_eq(wire_parser_eof(&p), -PIER_EPARTIAL);
	ck_assert_uint_eq(wire_parser_body_window(&p, &dst), sizeof(body) - 13);
	memcpy(dst, body + 13, sizeof(body) - 13);
	ck_assert_int_eq(wire_parser_body_commit(&p, sizeof(body) - 13, &f), 1);
	assert_frame(&f, PIER_MSG_RESPONDER_UPDATE, 9, 3, body, sizeof(body));
	ck_assert_uint_eq(wire_parser_body_window(&p, &dst), 0);
	ck_assert_int_eq(wire_parser_eof(&p), 0);
	free(f.body);
	(void)len;
}
END_TEST

/* --- malformed input ------------------------------------------------------ */

static void assert_fails_before_alloc(const uint8_t *data, size_t len, size_t max_body,
				      int expect, size_t expect_used_bytes_fed)
{
	struct counting_alloc c = { 0 };
	struct wire_body_alloc a = { count_alloc, count_free, &c };
	struct wire_parser p;
	struct wire_frame f;
	size_t used = 99;

	/* byte by byte, so the error is seen at the earliest byte */
	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, max_body, &a);
	for (size_t i = 0; i < len; i++) {
		int r = wire_parser_feed(&p, data + i, 1, &used, &f);

		if (r < 0) {
			ck_assert_int_eq(r, expect);
			ck_assert_uint_eq(used, 0);
			ck_assert_uint_eq(i + 1, expect_used_bytes_fed);
			break;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_uint_lt(i + 1, len);
	}
	ck_assert_int_eq(c.allocs, 0);
	/* the error is final */
	ck_assert_int_eq(wire_parser_feed(&p, hello_request, sizeof(hello_request),
					  &used, &f),
			 expect);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(wire_parser_eof(&p), expect);
	wire_parser_release(&p);
	ck_assert_int_eq(c.allocs, 0);
	ck_assert_int_eq(c.frees, 0);
}

START_TEST(malformed_short_length)
{
	/* every length below 12 fails as soon as the prefix is complete */
	uint8_t frame[16] = { 0 };

	frame[0] = (uint8_t)_i;
	assert_fails_before_alloc(frame, sizeof(frame), 8192, -PIER_ESHORTFRAME, 4);
}
END_TEST

START_TEST(malformed_length_beyond_limit)
{
	uint8_t frame[16] = { 0 };
	uint32_t lens[] = { 12 + 101, 0xffffffffu, 0x80000000u };

	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memcpy(frame, &(uint32_t){ htole32(lens[i]) }, 4);
		assert_fails_before_alloc(frame, sizeof(frame), 100, -PIER_EBODYLIMIT, 4);
	}
}
END_TEST

START_TEST(limit_boundary)
{
	uint8_t buf[WIRE_STREAM_OVERHEAD + 101];
	struct pier_header h = { PIER_MSG_STREAM, 0, 1 };
	struct wire_parser p;
	struct wire_frame f;
	struct wire_packet pkt;

	memset(buf, 'x', sizeof(buf));
	wire_stream_prefix_encode(buf, &h, 100, PIER_BYTE_ORDER_LITTLE);
	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 100, NULL);
	ck_assert_int_eq(feed_all(&p, buf, WIRE_STREAM_OVERHEAD + 100, &f, 1), 1);
	ck_assert_uint_eq(f.body_len, 100);
	free(f.body);

	ck_assert_int_eq(wire_packet_parse(buf + 4, 12 + 100, PIER_BYTE_ORDER_LITTLE, 100,
					   &pkt),
			 0);
	ck_assert_int_eq(wire_packet_parse(buf + 4, 12 + 101, PIER_BYTE_ORDER_LITTLE, 100,
					   &pkt),
			 -PIER_EBODYLIMIT);
}
END_TEST

START_TEST(malformed_unknown_type)
{
	uint32_t types[] = { 5, 6, 0x7fffffff, 0xffffffffu };

	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		uint8_t frame[20] = { 16 };
		struct pier_header d;

		memcpy(frame + 4, &(uint32_t){ htole32(types[i]) }, 4);
		assert_fails_before_alloc(frame, sizeof(frame), 8192, -PIER_EBADTYPE, 16);
		ck_assert_int_eq(wire_header_decode(&d, frame + 4, PIER_BYTE_ORDER_LITTLE),
				 -PIER_EBADTYPE);
		ck_assert_uint_eq((uint32_t)d.type, types[i]);
	}
}
END_TEST

START_TEST(malformed_truncated_then_eof)
{
	struct counting_alloc c = { 0 };
	struct wire_body_alloc a = { count_alloc, count_free, &c };
	struct wire_parser p;
	struct wire_frame f;

	/* cut after every possible byte: in the prefix, the header, the body */
	for (size_t cut = 1; cut < sizeof(hello_request); cut++) {
		wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 8192, &a);
		ck_assert_int_eq(feed_all(&p, hello_request, cut, &f, 1), 0);
		ck_assert_int_eq(wire_parser_eof(&p), -PIER_EPARTIAL);
		wire_parser_release(&p);
		ck_assert_int_eq(c.allocs, c.frees); /* partial body freed */
	}
	ck_assert_int_eq(c.allocs, 5); /* cuts inside the body allocated it */
}
END_TEST

START_TEST(malformed_garbage_after_frames)
{
	uint8_t buf[3 * sizeof(hello_request) + 8];
	struct wire_frame f[3];
	struct wire_parser p;
	int n = 0;
	size_t pos = 0, used;
	int r;

	for (int i = 0; i < 3; i++)
		memcpy(buf + i * sizeof(hello_request), hello_request, sizeof(hello_request));
	memcpy(buf + 3 * sizeof(hello_request), "\x02\x00\x00\x00garb", 8);

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 8192, NULL);
	while ((r = wire_parser_feed(&p, buf + pos, sizeof(buf) - pos, &used, &f[n])) == 1) {
		pos += used;
		n++;
	}
	ck_assert_int_eq(n, 3); /* the valid frames came through first */
	ck_assert_int_eq(r, -PIER_ESHORTFRAME);
	for (int i = 0; i < 3; i++)
		assert_frame(&f[i], PIER_MSG_REQUEST, 21, 1, "Hello", 5);
	free_frames(f, 3);
}
END_TEST

START_TEST(alloc_failure)
{
	struct counting_alloc c = { .fail_at = 2 };
	struct wire_body_alloc a = { count_alloc, count_free, &c };
	struct wire_parser p;
	struct wire_frame f;
	size_t used;

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 8192, &a);
	ck_assert_int_eq(wire_parser_feed(&p, hello_request, sizeof(hello_request), &used, &f),
			 1);
	ck_assert_uint_eq(c.last_len, 5);
	count_free(&c, f.body);
	ck_assert_int_eq(wire_parser_feed(&p, hello_request, sizeof(hello_request), &used, &f),
			 -ENOMEM);
	ck_assert_uint_eq(used, 0);
	ck_assert_int_eq(wire_parser_eof(&p), -ENOMEM);
	wire_parser_release(&p);
	ck_assert_int_eq(c.allocs, 2);
	ck_assert_int_eq(c.frees, 1);
}
END_TEST

START_TEST(release_mid_body)
{
	struct counting_alloc c = { 0 };
	struct wire_body_alloc a = { count_alloc, count_free, &c };
	struct wire_parser p;
	struct wire_frame f;
	size_t used;

	wire_parser_init(&p, PIER_BYTE_ORDER_LITTLE, 8192, &a);
	ck_assert_int_eq(wire_parser_feed(&p, hello_request, 18, &used, &f), 0);
	ck_assert_int_eq(c.allocs, 1);
	wire_parser_release(&p);
	ck_assert_int_eq(c.frees, 1);
	wire_parser_release(&p); /* twice is harmless */
	ck_assert_int_eq(c.frees, 1);
}
END_TEST

START_TEST(packet_short)
{
	uint8_t pkt[12] = { 0 };
	struct wire_packet out;

	for (size_t len = 0; len < 12; len++)
		ck_assert_int_eq(wire_packet_parse(pkt, len, PIER_BYTE_ORDER_LITTLE, 4096, &out),
				 -PIER_ESHORTFRAME);
	ck_assert_int_eq(wire_packet_parse(pkt, 12, PIER_BYTE_ORDER_LITTLE, 4096, &out), 0);
}
END_TEST

START_TEST(packet_bad_type)
{
	uint8_t pkt[16] = { 0, 0, 0, 5 };
	struct wire_packet out;

	ck_assert_int_eq(wire_packet_parse(pkt, 16, PIER_BYTE_ORDER_BIG, 4096, &out),
			 -PIER_EBADTYPE);
	ck_assert_int_eq(wire_packet_parse(pkt, 16, PIER_BYTE_ORDER_LITTLE, 4096, &out),
			 -PIER_EBADTYPE); /* 0x05000000 */
	pkt[3] = 4;
	ck_assert_int_eq(wire_packet_parse(pkt, 16, PIER_BYTE_ORDER_BIG, 4096, &out), 0);
	ck_assert_int_eq(out.hdr.type, PIER_MSG_STREAM);
	ck_assert_uint_eq(out.body_len, 4);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wire");
	TCase *vectors = th_tcase("vectors", TH_TIMEOUT);
	TCase *chunking = th_tcase("chunking", TH_TIMEOUT);
	TCase *malformed = th_tcase("malformed", TH_TIMEOUT);

	tcase_add_test(vectors, vector_hello_request);
	tcase_add_test(vectors, vector_error_response);
	tcase_add_test(vectors, vector_stream_message);
	tcase_add_loop_test(vectors, vector_every_type, 0, 5);
	tcase_add_test(vectors, vector_extreme_ids);
	tcase_add_test(vectors, vector_empty_body);
	tcase_add_test(vectors, prefix_encode_refuses_huge_body);
	suite_add_tcase(s, vectors);

	tcase_add_loop_test(chunking, parse_whole_stream, 0, 3);
	tcase_add_test(chunking, parse_byte_by_byte);
	tcase_add_test(chunking, parse_random_splits);
	tcase_add_test(chunking, parse_body_window);
	suite_add_tcase(s, chunking);

	tcase_add_loop_test(malformed, malformed_short_length, 0, 12);
	tcase_add_test(malformed, malformed_length_beyond_limit);
	tcase_add_test(malformed, limit_boundary);
	tcase_add_test(malformed, malformed_unknown_type);
	tcase_add_test(malformed, malformed_truncated_then_eof);
	tcase_add_test(malformed, malformed_garbage_after_frames);
	tcase_add_test(malformed, alloc_failure);
	tcase_add_test(malformed, release_mid_body);
	tcase_add_test(malformed, packet_short);
	tcase_add_test(malformed, packet_bad_type);
	suite_add_tcase(s, malformed);
	return th_run(s);
}
