/* SPDX-License-Identifier: MIT */
/*
 * One generated decoder of tests/typed.pier against any body: FUZZ_TYPE
 * names the description of the type (one target per message body type of
 * the interface).  Properties: a body is decoded or refused with -EBADMSG
 * and a message, never a crash or a leak (fds included: the type's count
 * of them is given, and a refused decode leaves them here to close); what
 * was decoded encodes, and encoding is stable over a second decode.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "typed-pier.h"

#define VALUE_MAX 512

static void decode(const uint8_t *data, size_t size, void *value, int *r)
{
	int fds[PIER_TYPED_MAX_FDS];
	struct pier_value_error err = { { 0 } };
	size_t n = FUZZ_TYPE.fds;

	for (size_t i = 0; i < n; i++)
		fuzz_assert((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
	*r = pier_decode(pier_format_json(), &FUZZ_TYPE, "fuzz", data, size, fds, n, value, &err);
	for (size_t i = 0; i < n; i++) {
		fuzz_assert((fds[i] == -1) == (*r == 0));
		if (fds[i] >= 0)
			close(fds[i]);
	}
	fuzz_assert(*r == 0 || *r == -EBADMSG || *r == -ENOMEM);
	fuzz_assert(*r == 0 || err.message[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_Alignas(max_align_t) unsigned char value[VALUE_MAX], again[VALUE_MAX];
	struct pier_encoded first = { 0 }, second = { 0 };
	struct pier_value_error err;
	int r;

	fuzz_assert(FUZZ_TYPE.size <= VALUE_MAX);
	decode(data, size, value, &r);
	if (r < 0)
		return 0;
	/* what a peer sent and we read, we can send: valid UTF-8, known tags */
	fuzz_assert(pier_encode(pier_format_json(), &FUZZ_TYPE, value, NULL, &first, &err) == 0);
	decode((const uint8_t *)first.body, first.len, again, &r);
	fuzz_assert(r == 0);
	fuzz_assert(pier_encode(pier_format_json(), &FUZZ_TYPE, again, NULL, &second, &err) == 0);
	fuzz_assert(first.len == second.len && !memcmp(first.body, second.body, first.len));
	pier_value_free(&FUZZ_TYPE, value);
	pier_value_free(&FUZZ_TYPE, again);
	pier_encoded_release(&first);
	pier_encoded_release(&second);
	return 0;
}
