/* SPDX-License-Identifier: MIT */
/* UTF-8 as Rust's str has it: no overlong forms, no surrogates, nothing
 * above U+10FFFF.  The writer refuses strings that are not; the reader
 * refuses bodies that are not (json-c's own check lets overlong forms
 * through). */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "json-int.h"

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 if it is
 * not a valid one (overlong, a surrogate, above U+10FFFF, cut). */
size_t json_utf8_sequence(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t c;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, c = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, c = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, c = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return len;
}

size_t json_utf8_invalid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		uint64_t word;
		size_t seq;

		/* ASCII, most of a JSON body, eight bytes at a time */
		if (n - i >= sizeof(word)) {
			memcpy(&word, u + i, sizeof(word));
			if (!(word & UINT64_C(0x8080808080808080))) {
				i += sizeof(word);
				continue;
			}
		}
		seq = json_utf8_sequence(u + i, n - i);

		if (!seq)
			return i;
		i += seq;
	}
	return n;
}
