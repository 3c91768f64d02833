/* SPDX-License-Identifier: MIT */
/*
 * The Fizyr RPC wire codec: bytes in, bytes out.  No I/O, and no allocation
 * policy: the stream parser asks its owner for each body's storage, after it
 * has checked the frame against the limits.
 */
#ifndef PIER_WIRE_H
#define PIER_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pier.h>

#define WIRE_HEADER_SIZE 12u /* message_type, request_id, service_id */
#define WIRE_PREFIX_SIZE 4u  /* stream transports: u32 length = 12 + body */
#define WIRE_STREAM_OVERHEAD (WIRE_PREFIX_SIZE + WIRE_HEADER_SIZE)
#define WIRE_MAX_FDS 253u /* Linux SCM_MAX_FD: fds in one sendmsg */
/* The largest body a stream length prefix can describe. */
#define WIRE_STREAM_MAX_BODY ((size_t)UINT32_MAX - WIRE_HEADER_SIZE)

static inline bool wire_type_valid(uint32_t type)
{
	return type <= PIER_MSG_STREAM;
}

static inline bool wire_order_valid(enum pier_byte_order order)
{
	return (unsigned int)order <= PIER_BYTE_ORDER_NATIVE;
}

/* Writes the 12-byte header.  h->type must be valid. */
void wire_header_encode(void *out, const struct pier_header *h,
			enum pier_byte_order order);

/* Reads a 12-byte header into *h (every field, even on failure).
 * Returns 0, or -PIER_EBADTYPE for an unknown message type. */
int wire_header_decode(struct pier_header *h, const void *in,
		       enum pier_byte_order order);

/* Writes the stream prefix and header (WIRE_STREAM_OVERHEAD bytes) of a frame
 * whose body is body_len bytes long.  Returns 0, or -EMSGSIZE when body_len
 * exceeds WIRE_STREAM_MAX_BODY (nothing is written). */
int wire_stream_prefix_encode(void *out, const struct pier_header *h,
			      size_t body_len, enum pier_byte_order order);

/* One seqpacket packet, parsed in place: body points into the packet. */
struct wire_packet {
	struct pier_header hdr;
	const void *body;
	size_t body_len;
};

/* Parses a whole packet of len bytes.  Returns 0, or -PIER_ESHORTFRAME (fewer
 * than 12 bytes; a 0-byte read is EOF and is the transport's to handle),
 * -PIER_EBADTYPE, or -PIER_EBODYLIMIT (body longer than max_body). */
int wire_packet_parse(const void *pkt, size_t len, enum pier_byte_order order,
		      size_t max_body, struct wire_packet *out);

/* Where the stream parser puts bodies.  alloc() is called once per frame,
 * after the frame passed every check, with the frame's header and its body
 * length (possibly 0); it returns storage for at least len bytes, or NULL
 * (the parser then fails with -ENOMEM).  free() releases storage of a frame
 * that was never completed (see wire_parser_release()). */
struct wire_body_alloc {
	void *(*alloc)(void *ctx, const struct pier_header *h, size_t len);
	void (*free)(void *ctx, void *body);
	void *ctx;
};

/* A complete frame.  body came from the parser's allocator and now belongs
 * to the caller. */
struct wire_frame {
	struct pier_header hdr;
	void *body;
	size_t body_len;
};

/*
 * The incremental stream-frame parser.  It accepts its input in any chunking,
 * checks each frame before asking for storage (length below 12: -PIER_ESHORTFRAME
 * as soon as the prefix is in; body above max_body: -PIER_EBODYLIMIT likewise;
 * unknown type: -PIER_EBADTYPE once the header is in), and never reads past
 * the end of the frame it is completing.  Errors are final: the stream
 * cannot be resynchronised, so every later call returns the same error.
 */
struct wire_parser {
	const struct wire_body_alloc *alloc;
	size_t max_body;
	enum pier_byte_order order;
	int error;
	bool in_body;
	uint8_t head_have;
	uint8_t head[WIRE_STREAM_OVERHEAD];
	struct pier_header hdr;
	uint8_t *body;
	size_t body_len;
	size_t body_have;
};

/* alloc may be NULL for malloc()/free(); otherwise it must outlive p. */
void wire_parser_init(struct wire_parser *p, enum pier_byte_order order,
		      size_t max_body, const struct wire_body_alloc *alloc);

/* Frees the body of an incomplete frame, if any; p may be initialised again. */
void wire_parser_release(struct wire_parser *p);

/* Consumes input until one frame is complete or the input is used up, and
 * sets *used to the bytes consumed.  Returns 1 with *frame filled, 0 when
 * every byte was consumed and no frame is complete yet, or a negative error
 * (then *used is 0 and the input is not to be fed again). */
int wire_parser_feed(struct wire_parser *p, const void *data, size_t len,
		     size_t *used, struct wire_frame *frame);

/* While a body is being assembled: sets *dst to where its missing bytes go
 * and returns how many are missing, so that a reader can put them there
 * directly (no copy), then call wire_parser_body_commit().  Returns 0
 * otherwise. */
size_t wire_parser_body_window(struct wire_parser *p, void **dst);

/* Records that n bytes (at most the window's size) were written into the
 * body window.  Returns 1 with *frame filled if the frame is now complete, 0
 * if not. */
int wire_parser_body_commit(struct wire_parser *p, size_t n,
			    struct wire_frame *frame);

/* For end of input: 0 if the parser stands between frames, -PIER_EPARTIAL
 * inside one, or its earlier error. */
int wire_parser_eof(const struct wire_parser *p);

#endif
