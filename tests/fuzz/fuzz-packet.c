/* SPDX-License-Identifier: MIT */
/*
 * Fuzzes the seqpacket packet parser: whatever it accepts must encode back to
 * the same header bytes, and the body must be the rest of the packet.
 *
 * Input: byte 0 picks the byte order and the body limit, the rest is the packet.
 */
#include "config.h"

#include <string.h>

#include "fuzz.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t limits[] = { 0, 16, 4096, 65536 };
	struct wire_packet pkt;
	uint8_t again[WIRE_HEADER_SIZE];
	enum pier_byte_order order;
	size_t max_body;
	int r;

	if (size < 1)
		return 0;
	order = (enum pier_byte_order)(data[0] % 3);
	max_body = limits[(data[0] >> 2) % 4];
	data++;
	size--;
	r = wire_packet_parse(data, size, order, max_body, &pkt);
	if (size < WIRE_HEADER_SIZE) {
		fuzz_assert(r == -PIER_ESHORTFRAME);
		return 0;
	}
	if (r < 0) {
		fuzz_assert(r == -PIER_EBADTYPE || r == -PIER_EBODYLIMIT);
		return 0;
	}
	fuzz_assert(pkt.body == data + WIRE_HEADER_SIZE);
	fuzz_assert(pkt.body_len == size - WIRE_HEADER_SIZE);
	fuzz_assert(pkt.body_len <= max_body);
	wire_header_encode(again, &pkt.hdr, order);
	fuzz_assert(memcmp(again, data, WIRE_HEADER_SIZE) == 0);
	return 0;
}
