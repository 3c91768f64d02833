/* SPDX-License-Identifier: MIT */
/*
 * Writing a typed value as JSON, byte for byte as serde_json's to_vec()
 * writes the same Rust value with its derived Serialize: compact, fields in
 * declaration order, structs as objects, unit variants as strings, other
 * variants as {"Name": data}, () and None as null, byte arrays as arrays of
 * numbers, strings with serde_json's escapes (", \, and the control
 * characters; \b \f \n \r \t by name, the rest as \u00xx), non-finite
 * floats as null.  fd fields are not in the body.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json-int.h"
#include "typed-int.h"

/* Deeper than this, a value (of a recursive type) is refused rather than
 * risking the stack. */
#define WRITE_MAX_DEPTH 128

struct writer {
	struct pier_encoded *out;
	struct pier_value_error *err;
	struct tpath path;
	unsigned int depth;
};

static int reserve(struct writer *w, size_t n)
{
	struct pier_encoded *o = w->out;
	size_t cap;
	char *body;

	if (o->cap - o->len >= n)
		return 0;
	cap = o->cap ? o->cap : 256;
	while (cap - o->len < n) {
		if (cap > SIZE_MAX / 2)
			return -ENOMEM;
		cap *= 2;
	}
	if (!(body = realloc(o->body, cap)))
		return -ENOMEM;
	o->body = body;
	o->cap = cap;
	return 0;
}

static int put(struct writer *w, const char *s, size_t n)
{
	int r = reserve(w, n);

	if (r < 0)
		return r;
	memcpy(w->out->body + w->out->len, s, n);
	w->out->len += n;
	return 0;
}

static int put_char(struct writer *w, char c)
{
	return put(w, &c, 1);
}

static int put_u64(struct writer *w, uint64_t v, bool negative)
{
	char buf[24], *p = buf + sizeof(buf);

	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	if (negative)
		*--p = '-';
	return put(w, p, (size_t)(buf + sizeof(buf) - p));
}

static int put_i64(struct writer *w, int64_t v)
{
	/* -(v + 1) + 1 does not overflow for INT64_MIN */
	return v < 0 ? put_u64(w, (uint64_t)(-(v + 1)) + 1, true) : put_u64(w, (uint64_t)v, false);
}

static int put_string(struct writer *w, const char *str)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)(str ? str : "");
	size_t n = strlen((const char *)s), start = 0;
	int r;

	if ((r = put_char(w, '"')) < 0)
		return r;
	for (size_t i = 0; i < n;) {
		unsigned char c = s[i];
		char esc[6] = { '\\', 0 };
		size_t esc_len = 2, seq;

		if (c >= 0x80) {
			if (!(seq = json_utf8_sequence(s + i, n - i))) {
				tpath_error(w->err, &w->path, "not valid UTF-8 (byte %zu)", i);
				return -EINVAL;
			}
			i += seq;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\') {
			i++;
			continue;
		}
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			esc_len = 6;
		}
		if ((r = put(w, (const char *)s + start, i - start)) < 0 ||
		    (r = put(w, esc, esc_len)) < 0)
			return r;
		start = ++i;
	}
	if ((r = put(w, (const char *)s + start, n - start)) < 0)
		return r;
	return put_char(w, '"');
}

static int put_float(struct writer *w, double v, bool single)
{
	char buf[JSON_FLOAT_MAX];

	if (!isfinite(v))
		return put(w, "null", 4);
	return put(w, buf, single ? json_format_f32((float)v, buf) : json_format_f64(v, buf));
}

static int put_bytes(struct writer *w, const struct pier_bytes *b)
{
	int r;

	if (!b->data && b->len) {
		tpath_error(w->err, &w->path, "data is NULL but len is %zu", b->len);
		return -EINVAL;
	}
	if ((r = put_char(w, '[')) < 0)
		return r;
	for (size_t i = 0; i < b->len; i++)
		if ((i && (r = put_char(w, ',')) < 0) || (r = put_u64(w, b->data[i], false)) < 0)
			return r;
	return put_char(w, ']');
}

static int write_value(struct writer *w, const struct pier_type *type, const void *value);

static int write_list(struct writer *w, const struct pier_type *type, const void *value)
{
	const struct {
		const void *items;
		size_t len;
	} *list = value;
	int r;

	if (!list->items && list->len) {
		tpath_error(w->err, &w->path, "items is NULL but len is %zu", list->len);
		return -EINVAL;
	}
	if ((r = put_char(w, '[')) < 0)
		return r;
	for (size_t i = 0; i < list->len; i++) {
		if (i && (r = put_char(w, ',')) < 0)
			return r;
		tpath_push_index(&w->path, i);
		r = write_value(w, type->item, (const char *)list->items + i * type->item->size);
		tpath_pop(&w->path);
		if (r < 0)
			return r;
	}
	return put_char(w, ']');
}

/* A struct as an object, a tuple as an array; fd fields left out. */
static int write_fields(struct writer *w, const struct pier_type *type, const void *value)
{
	bool object = type->kind == PIER_KIND_STRUCT, first = true;
	int r;

	if ((r = put_char(w, object ? '{' : '[')) < 0)
		return r;
	for (size_t i = 0; i < type->count; i++) {
		const struct pier_field *f = &type->fields[i];

		if (f->type->kind == PIER_KIND_FD)
			continue;
		if (!first && (r = put_char(w, ',')) < 0)
			return r;
		first = false;
		if (object && ((r = put_string(w, f->name)) < 0 || (r = put_char(w, ':')) < 0))
			return r;
		tpath_push(&w->path, f->name);
		r = write_value(w, f->type, (const char *)value + f->offset);
		tpath_pop(&w->path);
		if (r < 0)
			return r;
	}
	return put_char(w, object ? '}' : ']');
}

static int write_enum(struct writer *w, const struct pier_type *type, const void *value)
{
	const struct pier_variant *v;
	unsigned int tag;
	int r;

	memcpy(&tag, value, sizeof(tag));
	if (tag >= type->count) {
		tpath_error(w->err, &w->path, "tag %u is not a variant of %s", tag, type->name);
		return -EINVAL;
	}
	v = &type->variants[tag];
	if (!v->type)
		return put_string(w, v->name);
	if ((r = put_char(w, '{')) < 0 || (r = put_string(w, v->name)) < 0 ||
	    (r = put_char(w, ':')) < 0)
		return r;
	tpath_push(&w->path, v->name);
	r = write_value(w, v->type, (const char *)value + v->offset);
	tpath_pop(&w->path);
	return r < 0 ? r : put_char(w, '}');
}

static int write_value(struct writer *w, const struct pier_type *type, const void *value)
{
	int r;

	switch (type->kind) {
	case PIER_KIND_UNIT: return put(w, "null", 4);
	case PIER_KIND_BOOL: return *(const bool *)value ? put(w, "true", 4) : put(w, "false", 5);
	case PIER_KIND_I8: return put_i64(w, *(const int8_t *)value);
	case PIER_KIND_I16: return put_i64(w, *(const int16_t *)value);
	case PIER_KIND_I32: return put_i64(w, *(const int32_t *)value);
	case PIER_KIND_I64: return put_i64(w, *(const int64_t *)value);
	case PIER_KIND_U8: return put_u64(w, *(const uint8_t *)value, false);
	case PIER_KIND_U16: return put_u64(w, *(const uint16_t *)value, false);
	case PIER_KIND_U32: return put_u64(w, *(const uint32_t *)value, false);
	case PIER_KIND_U64: return put_u64(w, *(const uint64_t *)value, false);
	case PIER_KIND_F32: return put_float(w, *(const float *)value, true);
	case PIER_KIND_F64: return put_float(w, *(const double *)value, false);
	case PIER_KIND_STRING: return put_string(w, *(const char *const *)value);
	case PIER_KIND_BYTES: return put_bytes(w, value);
	case PIER_KIND_OPTION:
		if (!*(const bool *)value)
			return put(w, "null", 4);
		return write_value(w, type->item, (const char *)value + type->item_offset);
	default:
		break;
	}
	if (++w->depth > WRITE_MAX_DEPTH) {
		tpath_error(w->err, &w->path, "nested deeper than %d", WRITE_MAX_DEPTH);
		return -EINVAL;
	}
	switch (type->kind) {
	case PIER_KIND_LIST: r = write_list(w, type, value); break;
	case PIER_KIND_STRUCT:
	case PIER_KIND_TUPLE: r = write_fields(w, type, value); break;
	case PIER_KIND_ENUM: r = write_enum(w, type, value); break;
	default:
		/* an fd outside a struct, or a kind this library does not know */
		tpath_error(w->err, &w->path, "cannot encode a %s here", typed_kind_name(type));
		r = -EINVAL;
	}
	w->depth--;
	return r;
}

int json_encode(const struct pier_type *type, const void *value, const char *what,
		struct pier_encoded *out, struct pier_value_error *err)
{
	struct writer w = { .out = out, .err = err };

	tpath_init(&w.path, type, what);
	return write_value(&w, type, value);
}
