/* SPDX-License-Identifier: MIT */
/*
 * Reading a typed value from JSON (json-c parses, this walks the result
 * along the type): what serde_json's from_slice() accepts for the same
 * Rust type with its derived Deserialize, and stricter in two ways the
 * typed interface wants: a field the type does not have is an error, not
 * ignored, and numbers out of their type's range (f32 included) are
 * errors, never saturated.  Missing Option fields read as None, as serde
 * reads them; every other missing field is an error.
 *
 * Not seen: a key given twice in one object, which json-c keeps the last
 * of (serde_json refuses it).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "json-int.h"
#include "typed-int.h"

struct reader {
	struct pier_value_error *err;
	struct tpath path;
	const char *body;
	size_t len;
	int overflow; /* whether body has an integer beyond 64 bits: -1 not known yet */
};

/* Whether the integer literal s (n digits, no sign) is above limit (a
 * string of digits of the same kind). */
static bool digits_above(const char *s, size_t n, const char *limit)
{
	size_t ln = strlen(limit);

	return n != ln ? n > ln : memcmp(s, limit, n) > 0;
}

/* json-c saturates integers beyond 64 bits, silently: a value at either
 * end of the range may be one.  Tells whether the body has such a literal,
 * scanning it once, the first time a saturated-looking value is met. */
static bool body_overflows(struct reader *r)
{
	const char *s = r->body, *end = s + r->len;

	if (r->overflow >= 0)
		return r->overflow;
	r->overflow = 0;
	while (s < end) {
		bool negative = false;
		const char *start;

		if (*s == '"') {
			for (s++; s < end && *s != '"'; s++)
				if (*s == '\\')
					s++;
			s++;
			continue;
		}
		if (*s != '-' && (*s < '0' || *s > '9')) {
			s++;
			continue;
		}
		if (*s == '-')
			negative = true, s++;
		start = s;
		while (s < end && *s >= '0' && *s <= '9')
			s++;
		if (s < end && (*s == '.' || *s == 'e' || *s == 'E'))
			continue; /* a float: json-c keeps those whole */
		if (digits_above(start, (size_t)(s - start),
				 negative ? "9223372036854775808" : "18446744073709551615")) {
			r->overflow = 1;
			break;
		}
	}
	return r->overflow;
}

/* What a JSON value is, for "expected X, got Y". */
static const char *got(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null: return "null";
	case json_type_boolean: return json_object_get_boolean(o) ? "true" : "false";
	case json_type_int:
	case json_type_double: return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	case json_type_string: return "a string";
	case json_type_array: return "an array";
	case json_type_object: return "an object";
	}
	return "something else";
}

static int type_error(struct reader *r, const struct pier_type *type, struct json_object *o)
{
	tpath_error(r->err, &r->path, "expected %s, got %s", typed_kind_name(type), got(o));
	return -EBADMSG;
}

/* A JSON integer as sign and magnitude; fails on one json-c saturated. */
static int read_integer(struct reader *r, const struct pier_type *type, struct json_object *o,
			bool *negative, uint64_t *magnitude)
{
	int64_t i = json_object_get_int64(o);

	*negative = i < 0;
	*magnitude = *negative ? (uint64_t)(-(i + 1)) + 1 : json_object_get_uint64(o);
	if (((*negative && i == INT64_MIN) || (!*negative && *magnitude == UINT64_MAX)) &&
	    body_overflows(r)) {
		tpath_error(r->err, &r->path, "expected %s, got a number beyond 64 bits",
			    typed_kind_name(type));
		return -EBADMSG;
	}
	return 0;
}

static int read_int(struct reader *r, const struct pier_type *type, struct json_object *o,
		    void *value)
{
	static const struct {
		uint64_t max; /* of the magnitude of a positive value */
		uint64_t min; /* of the magnitude of a negative value */
	} range[] = {
		[PIER_KIND_I8] = { INT8_MAX, 128 },
		[PIER_KIND_I16] = { INT16_MAX, 32768 },
		[PIER_KIND_I32] = { INT32_MAX, 2147483648u },
		[PIER_KIND_I64] = { INT64_MAX, 9223372036854775808u },
		[PIER_KIND_U8] = { UINT8_MAX, 0 },
		[PIER_KIND_U16] = { UINT16_MAX, 0 },
		[PIER_KIND_U32] = { UINT32_MAX, 0 },
		[PIER_KIND_U64] = { UINT64_MAX, 0 },
	};
	uint64_t m;
	int64_t s;
	bool negative;
	int e;

	if (!json_object_is_type(o, json_type_int))
		return type_error(r, type, o);
	if ((e = read_integer(r, type, o, &negative, &m)) < 0)
		return e;
	if (negative ? m > range[type->kind].min : m > range[type->kind].max)
		return type_error(r, type, o);
	s = negative ? (int64_t)(0 - m) : (int64_t)m;
	switch (type->kind) {
	case PIER_KIND_I8: *(int8_t *)value = (int8_t)s; break;
	case PIER_KIND_I16: *(int16_t *)value = (int16_t)s; break;
	case PIER_KIND_I32: *(int32_t *)value = (int32_t)s; break;
	case PIER_KIND_I64: *(int64_t *)value = s; break;
	case PIER_KIND_U8: *(uint8_t *)value = (uint8_t)m; break;
	case PIER_KIND_U16: *(uint16_t *)value = (uint16_t)m; break;
	case PIER_KIND_U32: *(uint32_t *)value = (uint32_t)m; break;
	default: *(uint64_t *)value = m; break;
	}
	return 0;
}

static int read_float(struct reader *r, const struct pier_type *type, struct json_object *o,
		      void *value)
{
	double d;

	if (json_object_is_type(o, json_type_int)) {
		uint64_t m;
		bool negative;
		int e = read_integer(r, type, o, &negative, &m);

		if (e < 0)
			return e;
		d = negative ? -(double)m : (double)m;
	} else if (json_object_is_type(o, json_type_double)) {
		d = json_object_get_double(o);
	} else {
		return type_error(r, type, o);
	}
	/* NaN and infinities are not JSON, and json-c reads 1e400 as one */
	if (!isfinite(d) || (type->kind == PIER_KIND_F32 && !isfinite((float)d)))
		return type_error(r, type, o);
	if (type->kind == PIER_KIND_F32)
		*(float *)value = (float)d;
	else
		*(double *)value = d;
	return 0;
}

static int read_string(struct reader *r, const struct pier_type *type, struct json_object *o,
		       char **value)
{
	const char *s;
	size_t n;

	if (!json_object_is_type(o, json_type_string))
		return type_error(r, type, o);
	s = json_object_get_string(o);
	n = (size_t)json_object_get_string_len(o);
	if (memchr(s, '\0', n)) {
		tpath_error(r->err, &r->path, "a string with a NUL character (\\u0000)");
		return -EBADMSG;
	}
	if (!(*value = malloc(n + 1)))
		return -ENOMEM;
	memcpy(*value, s, n + 1);
	return 0;
}

static int read_bytes(struct reader *r, const struct pier_type *type, struct json_object *o,
		      struct pier_bytes *b)
{
	static const struct pier_type u8 = { .kind = PIER_KIND_U8, .name = "u8", .size = 1 };
	size_t n;

	if (!json_object_is_type(o, json_type_array))
		return type_error(r, type, o);
	n = json_object_array_length(o);
	if (n && !(b->data = malloc(n)))
		return -ENOMEM;
	b->len = n;
	for (size_t i = 0; i < n; i++) {
		int e;

		tpath_push_index(&r->path, i);
		e = read_int(r, &u8, json_object_array_get_idx(o, i), &b->data[i]);
		tpath_pop(&r->path);
		if (e < 0)
			return e;
	}
	return 0;
}

static int read_value(struct reader *r, const struct pier_type *type, struct json_object *o,
		      void *value);

static int read_list(struct reader *r, const struct pier_type *type, struct json_object *o,
		     void *value)
{
	struct {
		void *items;
		size_t len;
	} *list = value;
	size_t n;

	if (!json_object_is_type(o, json_type_array))
		return type_error(r, type, o);
	n = json_object_array_length(o);
	/* Zeroed items are initialised ones: lists hold no fds. */
	if (n && !(list->items = calloc(n, type->item->size)))
		return -ENOMEM;
	list->len = n;
	for (size_t i = 0; i < n; i++) {
		int e;

		tpath_push_index(&r->path, i);
		e = read_value(r, type->item, json_object_array_get_idx(o, i),
			       (char *)list->items + i * type->item->size);
		tpath_pop(&r->path);
		if (e < 0)
			return e;
	}
	return 0;
}

static int read_field(struct reader *r, const struct pier_field *f, struct json_object *o,
		      void *value)
{
	int e;

	tpath_push(&r->path, f->name);
	e = read_value(r, f->type, o, (char *)value + f->offset);
	tpath_pop(&r->path);
	return e;
}

static const struct pier_field *find_field(const struct pier_type *type, const char *name)
{
	for (size_t i = 0; i < type->count; i++)
		if (type->fields[i].type->kind != PIER_KIND_FD && !strcmp(type->fields[i].name, name))
			return &type->fields[i];
	return NULL;
}

static int read_struct(struct reader *r, const struct pier_type *type, struct json_object *o,
		       void *value)
{
	size_t found = 0;
	int e;

	if (!json_object_is_type(o, json_type_object))
		return type_error(r, type, o);
	for (size_t i = 0; i < type->count; i++) {
		const struct pier_field *f = &type->fields[i];
		struct json_object *v;

		if (f->type->kind == PIER_KIND_FD)
			continue;
		if (!json_object_object_get_ex(o, f->name, &v)) {
			if (f->type->kind == PIER_KIND_OPTION)
				continue; /* None, as serde reads a missing Option */
			tpath_error(r->err, &r->path, "missing field `%s`", f->name);
			return -EBADMSG;
		}
		found++;
		if ((e = read_field(r, f, v, value)) < 0)
			return e;
	}
	if ((size_t)json_object_object_length(o) == found)
		return 0;
	json_object_object_foreach(o, key, unused) {
		(void)unused;
		if (!find_field(type, key)) {
			tpath_error(r->err, &r->path, "unknown field `%s`", key);
			return -EBADMSG;
		}
	}
	return 0;
}

static int read_tuple(struct reader *r, const struct pier_type *type, struct json_object *o,
		      void *value)
{
	size_t n;
	int e;

	if (!json_object_is_type(o, json_type_array))
		return type_error(r, type, o);
	if ((n = json_object_array_length(o)) != type->count) {
		tpath_error(r->err, &r->path, "expected an array of %zu, got %zu item%s",
			    type->count, n, n == 1 ? "" : "s");
		return -EBADMSG;
	}
	for (size_t i = 0; i < n; i++)
		if ((e = read_field(r, &type->fields[i], json_object_array_get_idx(o, i), value)) < 0)
			return e;
	return 0;
}

static int unknown_variant(struct reader *r, const struct pier_type *type, const char *name)
{
	char list[160];
	size_t n = 0;

	list[0] = '\0';
	for (size_t i = 0; i < type->count && n < sizeof(list); i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s`%s`", i ? ", " : "",
				      type->variants[i].name);
	tpath_error(r->err, &r->path, "unknown variant `%s`, expected one of %s", name, list);
	return -EBADMSG;
}

static int read_enum(struct reader *r, const struct pier_type *type, struct json_object *o,
		     void *value)
{
	struct json_object *data = NULL;
	const struct pier_variant *v;
	const char *name = NULL;
	unsigned int tag;
	int e;

	if (json_object_is_type(o, json_type_string)) {
		name = json_object_get_string(o);
	} else if (json_object_is_type(o, json_type_object) && json_object_object_length(o) == 1) {
		json_object_object_foreach(o, key, val) {
			name = key;
			data = val;
		}
	} else {
		tpath_error(r->err, &r->path,
			    "expected %s (a variant's name, or an object of one), got %s",
			    type->name, got(o));
		return -EBADMSG;
	}
	for (tag = 0; tag < type->count; tag++)
		if (!strcmp(type->variants[tag].name, name))
			break;
	if (tag == type->count)
		return unknown_variant(r, type, name);
	v = &type->variants[tag];
	memcpy(value, &tag, sizeof(tag));
	if (!v->type) {
		/* serde_json also takes {"Unit": null} */
		if (data && !json_object_is_type(data, json_type_null)) {
			tpath_error(r->err, &r->path, "variant `%s` has no data, got %s", name,
				    got(data));
			return -EBADMSG;
		}
		return 0;
	}
	if (json_object_is_type(o, json_type_string)) {
		tpath_error(r->err, &r->path, "variant `%s` has data: expected {\"%s\": ...}",
			    name, name);
		return -EBADMSG;
	}
	/* Its fd fields, which the body does not carry, hold none. */
	if (v->type->fds)
		pier_value_init(v->type, (char *)value + v->offset);
	tpath_push(&r->path, v->name);
	e = read_value(r, v->type, data, (char *)value + v->offset);
	tpath_pop(&r->path);
	return e;
}

static int read_value(struct reader *r, const struct pier_type *type, struct json_object *o,
		      void *value)
{
	switch (type->kind) {
	case PIER_KIND_UNIT:
		return json_object_is_type(o, json_type_null) ? 0 : type_error(r, type, o);
	case PIER_KIND_BOOL:
		if (!json_object_is_type(o, json_type_boolean))
			return type_error(r, type, o);
		*(bool *)value = json_object_get_boolean(o);
		return 0;
	case PIER_KIND_I8: case PIER_KIND_I16: case PIER_KIND_I32: case PIER_KIND_I64:
	case PIER_KIND_U8: case PIER_KIND_U16: case PIER_KIND_U32: case PIER_KIND_U64:
		return read_int(r, type, o, value);
	case PIER_KIND_F32: case PIER_KIND_F64:
		return read_float(r, type, o, value);
	case PIER_KIND_STRING: return read_string(r, type, o, value);
	case PIER_KIND_BYTES: return read_bytes(r, type, o, value);
	case PIER_KIND_LIST: return read_list(r, type, o, value);
	case PIER_KIND_OPTION:
		if (json_object_is_type(o, json_type_null))
			return 0;
		*(bool *)value = true;
		return read_value(r, type->item, o, (char *)value + type->item_offset);
	case PIER_KIND_STRUCT: return read_struct(r, type, o, value);
	case PIER_KIND_TUPLE: return read_tuple(r, type, o, value);
	case PIER_KIND_ENUM: return read_enum(r, type, o, value);
	default:
		tpath_error(r->err, &r->path, "cannot decode a %s here", typed_kind_name(type));
		return -EINVAL;
	}
}

static bool only_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

/* What json-c lets through and serde_json does not: bytes that are not
 * UTF-8 (json-c's check takes overlong forms), and control characters
 * written as they are inside strings.  The offset of the first, or len. */
static size_t lax_byte(const char *s, size_t len)
{
	size_t bad = json_utf8_invalid(s, len);
	bool in_string = false;

	for (size_t i = 0; i < bad; i++) {
		if (!in_string) {
			in_string = s[i] == '"';
		} else if (s[i] == '\\') {
			i++;
		} else if (s[i] == '"') {
			in_string = false;
		} else if ((unsigned char)s[i] < 0x20) {
			return i;
		}
	}
	return bad;
}

/* Each thread's tokener, made on its first decode and kept: a tokener
 * costs allocations that would otherwise be a good part of a small
 * body's decode.  Freed when the thread exits (the library is never
 * unloaded: it links with -z nodelete), or after a body over
 * TOKENER_KEEP_MAX, whose longest string the tokener's buffer would keep
 * the size of. */
#define TOKENER_KEEP_MAX 65536
static pthread_key_t tokener_key;
static pthread_once_t tokener_once = PTHREAD_ONCE_INIT;
static bool tokener_key_made;

static void tokener_free(void *tok)
{
	json_tokener_free(tok);
}

static void tokener_key_make(void)
{
	tokener_key_made = pthread_key_create(&tokener_key, tokener_free) == 0;
}

/* A tokener for this thread, reset: its own kept one, or one for this
 * decode only (*kept false) when it cannot be kept.  NULL when out of
 * memory. */
static struct json_tokener *tokener(bool *kept)
{
	struct json_tokener *tok;

	pthread_once(&tokener_once, tokener_key_make);
	if (tokener_key_made && (tok = pthread_getspecific(tokener_key))) {
		*kept = true;
		return tok;
	}
	if (!(tok = json_tokener_new()))
		return NULL;
	/* Strict, as serde_json is; UTF-8 was checked already, more strictly
	 * than json-c checks it (lax_byte()). */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	*kept = tokener_key_made && pthread_setspecific(tokener_key, tok) == 0;
	return tok;
}

/* A decode of len bytes is done with tok. */
static void tokener_done(struct json_tokener *tok, bool kept, size_t len)
{
	if (kept && len <= TOKENER_KEEP_MAX) {
		json_tokener_reset(tok);
		return;
	}
	if (kept)
		pthread_setspecific(tokener_key, NULL);
	json_tokener_free(tok);
}

/* Parses body as one JSON value (null is a NULL object): 0, or an error
 * written to err. */
static int parse(struct reader *r, struct json_object **out)
{
	struct json_tokener *tok;
	enum json_tokener_error e;
	struct json_object *o;
	bool kept;
	size_t end;

	if (r->len > INT_MAX) {
		tpath_error(r->err, &r->path, "not JSON: a body of %zu bytes", r->len);
		return -EBADMSG;
	}
	if ((end = lax_byte(r->body, r->len)) != r->len) {
		tpath_error(r->err, &r->path, "not JSON: %s at byte %zu",
			    (unsigned char)r->body[end] < 0x20 ? "a control character in a string" :
			    "not UTF-8", end);
		return -EBADMSG;
	}
	if (!(tok = tokener(&kept)))
		return -ENOMEM;
	o = json_tokener_parse_ex(tok, r->body, (int)r->len);
	e = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	/* A number at the very end needs to see the end: json-c's is a NUL */
	if (e == json_tokener_continue) {
		o = json_tokener_parse_ex(tok, "", 1);
		e = json_tokener_get_error(tok);
		end = r->len;
	}
	tokener_done(tok, kept, r->len);
	if (e == json_tokener_success && !only_space(r->body + end, r->len - end)) {
		json_object_put(o);
		tpath_error(r->err, &r->path, "not JSON: more after the value, at byte %zu", end);
		return -EBADMSG;
	}
	if (e != json_tokener_success) {
		tpath_error(r->err, &r->path, "not JSON: %s at byte %zu", json_tokener_error_desc(e),
			    end);
		return -EBADMSG;
	}
	*out = o;
	return 0;
}

int json_decode(const struct pier_type *type, void *value, const char *what, const void *body,
		size_t len, struct pier_value_error *err)
{
	struct reader r = { .err = err, .body = body ? body : "", .len = len, .overflow = -1 };
	struct json_object *o;
	int e;

	tpath_init(&r.path, type, what);
	if ((e = parse(&r, &o)) < 0)
		return e;
	e = read_value(&r, type, o, value);
	json_object_put(o);
	if (e < 0)
		pier_value_free(type, value);
	return e;
}
