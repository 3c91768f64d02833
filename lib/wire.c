/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"
#include "wire.h"

static inline bool order_is_big(enum pier_byte_order order)
{
	assert(wire_order_valid(order));
	if (order == PIER_BYTE_ORDER_NATIVE)
		return BYTE_ORDER == BIG_ENDIAN;
	return order == PIER_BYTE_ORDER_BIG;
}

/* The fields sit at any alignment in the buffer: memcpy, which compilers
 * turn into a plain load or store, and <endian.h> for the byte order. */
static inline uint32_t load32(const uint8_t *p, bool big)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return big ? be32toh(v) : le32toh(v);
}

static inline void store32(uint8_t *p, uint32_t v, bool big)
{
	v = big ? htobe32(v) : htole32(v);
	memcpy(p, &v, sizeof(v));
}

void wire_header_encode(void *out, const struct pier_header *h,
			enum pier_byte_order order)
{
	bool big = order_is_big(order);
	uint8_t *o = out;

	assert(wire_type_valid(h->type));
	store32(o, (uint32_t)h->type, big);
	store32(o + 4, h->request_id, big);
	store32(o + 8, (uint32_t)h->service_id, big);
}

int wire_header_decode(struct pier_header *h, const void *in,
		       enum pier_byte_order order)
{
	bool big = order_is_big(order);
	const uint8_t *i = in;
	uint32_t type = load32(i, big);

	h->type = (enum pier_msg_type)type;
	h->request_id = load32(i + 4, big);
	h->service_id = (int32_t)load32(i + 8, big);
	return wire_type_valid(type) ? 0 : -PIER_EBADTYPE;
}

int wire_stream_prefix_encode(void *out, const struct pier_header *h,
			      size_t body_len, enum pier_byte_order order)
{
	uint8_t *o = out;

	if (body_len > WIRE_STREAM_MAX_BODY)
		return -EMSGSIZE;
	store32(o, (uint32_t)(WIRE_HEADER_SIZE + body_len), order_is_big(order));
	wire_header_encode(o + WIRE_PREFIX_SIZE, h, order);
	return 0;
}

int wire_packet_parse(const void *pkt, size_t len, enum pier_byte_order order,
		      size_t max_body, struct wire_packet *out)
{
	int r;

	if (len < WIRE_HEADER_SIZE)
		return -PIER_ESHORTFRAME;
	r = wire_header_decode(&out->hdr, pkt, order);
	if (r < 0)
		return r;
	if (len - WIRE_HEADER_SIZE > max_body)
		return -PIER_EBODYLIMIT;
	out->body = (const uint8_t *)pkt + WIRE_HEADER_SIZE;
	out->body_len = len - WIRE_HEADER_SIZE;
	return 0;
}

/* --- stream parser ------------------------------------------------------ */

static void *default_alloc(void *ctx, const struct pier_header *h, size_t len)
{
	return malloc(len ? len : 1);
}

static void default_free(void *ctx, void *body)
{
	free(body);
}

static const struct wire_body_alloc malloc_alloc = {
	.alloc = default_alloc,
	.free = default_free,
};

void wire_parser_init(struct wire_parser *p, enum pier_byte_order order,
		      size_t max_body, const struct wire_body_alloc *alloc)
{
	assert(wire_order_valid(order));
	*p = (struct wire_parser){
		.alloc = alloc ? alloc : &malloc_alloc,
		.max_body = max_body,
		.order = order,
	};
}

void wire_parser_release(struct wire_parser *p)
{
	if (p->in_body)
		p->alloc->free(p->alloc->ctx, p->body);
	p->in_body = false;
	p->body = NULL;
	p->head_have = 0;
}

static int parser_fail(struct wire_parser *p, int err)
{
	wire_parser_release(p);
	p->error = err;
	return err;
}

/* Hands the completed frame over and gets ready for the next one. */
static int parser_emit(struct wire_parser *p, struct wire_frame *frame)
{
	frame->hdr = p->hdr;
	frame->body = p->body;
	frame->body_len = p->body_len;
	p->in_body = false;
	p->body = NULL;
	p->head_have = 0;
	return 1;
}

/* The length prefix is in: refuse the frame before anything is allocated. */
static int parser_check_length(struct wire_parser *p)
{
	uint32_t len = load32(p->head, order_is_big(p->order));

	if (len < WIRE_HEADER_SIZE)
		return -PIER_ESHORTFRAME;
	if (len - WIRE_HEADER_SIZE > p->max_body)
		return -PIER_EBODYLIMIT;
	p->body_len = len - WIRE_HEADER_SIZE;
	return 0;
}

/* The header is in: check it, then ask for the body's storage. */
static int parser_start_body(struct wire_parser *p)
{
	int r = wire_header_decode(&p->hdr, p->head + WIRE_PREFIX_SIZE, p->order);

	if (r < 0)
		return r;
	p->body = p->alloc->alloc(p->alloc->ctx, &p->hdr, p->body_len);
	if (!p->body)
		return -ENOMEM;
	p->body_have = 0;
	p->in_body = true;
	return 0;
}

/* Takes bytes into the prefix and header.  Returns 1 when the header is
 * complete, 0 when the input ran out first, or an error. */
static int parser_take_head(struct wire_parser *p, const uint8_t *in, size_t len,
			    size_t *pos)
{
	while (*pos < len) {
		size_t want = (p->head_have < WIRE_PREFIX_SIZE ? WIRE_PREFIX_SIZE
							       : WIRE_STREAM_OVERHEAD) -
			      p->head_have;
		size_t n = len - *pos < want ? len - *pos : want;
		int r;

		memcpy(p->head + p->head_have, in + *pos, n);
		p->head_have += (uint8_t)n;
		*pos += n;
		if (p->head_have == WIRE_PREFIX_SIZE) {
			r = parser_check_length(p);
			if (r < 0)
				return r;
		} else if (p->head_have == WIRE_STREAM_OVERHEAD) {
			r = parser_start_body(p);
			return r < 0 ? r : 1;
		}
	}
	return 0;
}

int wire_parser_feed(struct wire_parser *p, const void *data, size_t len,
		     size_t *used, struct wire_frame *frame)
{
	const uint8_t *in = data;
	size_t pos = 0;
	int r;

	*used = 0;
	if (p->error)
		return p->error;
	if (!p->in_body) {
		r = parser_take_head(p, in, len, &pos);
		if (r < 0)
			return parser_fail(p, r);
		if (r == 0) {
			*used = pos;
			return 0;
		}
	}
	size_t n = p->body_len - p->body_have;
	if (n > len - pos)
		n = len - pos;
	if (n)
		memcpy(p->body + p->body_have, in + pos, n);
	*used = pos + n;
	return wire_parser_body_commit(p, n, frame);
}

size_t wire_parser_body_window(struct wire_parser *p, void **dst)
{
	if (!p->in_body) {
		*dst = NULL;
		return 0;
	}
	*dst = p->body + p->body_have;
	return p->body_len - p->body_have;
}

int wire_parser_body_commit(struct wire_parser *p, size_t n,
			    struct wire_frame *frame)
{
	assert(p->in_body && n <= p->body_len - p->body_have);
	p->body_have += n;
	if (p->body_have < p->body_len)
		return 0;
	return parser_emit(p, frame);
}

int wire_parser_eof(const struct wire_parser *p)
{
	if (p->error)
		return p->error;
	return p->in_body || p->head_have ? -PIER_EPARTIAL : 0;
}
