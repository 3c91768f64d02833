/* SPDX-License-Identifier: MIT */
/* The JSON format's parts: the writer, the reader (with json-c only) and
 * numbers, which format-json.c puts in one struct pier_format. */
#ifndef PIER_JSON_INT_H
#define PIER_JSON_INT_H

#include <stddef.h>

#include <pier/typed.h>

/* The longest number json_format_f64() writes, with room to spare. */
#define JSON_FLOAT_MAX 40

/* v (finite) as serde_json writes an f64 or an f32; returns the length
 * written (no NUL). */
size_t json_format_f64(double v, char out[JSON_FLOAT_MAX]);
size_t json_format_f32(float v, char out[JSON_FLOAT_MAX]);

/* The length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
size_t json_utf8_sequence(const unsigned char *s, size_t n);
/* The offset of the first byte of s (n bytes) that is not valid UTF-8, or
 * n if all of it is. */
size_t json_utf8_invalid(const char *s, size_t n);

int json_encode(const struct pier_type *type, const void *value, const char *what,
		struct pier_encoded *out, struct pier_value_error *err);
int json_decode(const struct pier_type *type, void *value, const char *what, const void *body,
		size_t len, struct pier_value_error *err);

#endif
