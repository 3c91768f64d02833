/* SPDX-License-Identifier: MIT */
/*
 * Typed values: initialising and freeing them by their description, and
 * encoding and decoding them through a format.  The fds of fd fields are
 * handled here, the same for every format: a format never sees them.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "private.h"
#include "typed-int.h"

static unsigned int enum_tag(const void *value)
{
	unsigned int tag;

	/* The generated enums are ints with values 0..count-1 (pier-scanner
	 * asserts their size). */
	memcpy(&tag, value, sizeof(tag));
	return tag;
}

/* Sets every fd field of value (a struct holding fds, through its fields
 * only: the scanner allows them nowhere else) to -1. */
static void fds_clear(const struct pier_type *type, void *value)
{
	if (type->kind == PIER_KIND_FD) {
		*(int *)value = -1;
		return;
	}
	for (size_t i = 0; i < type->count; i++) {
		const struct pier_field *f = &type->fields[i];

		if (f->type->fds)
			fds_clear(f->type, (char *)value + f->offset);
	}
}

PIER_EXPORT void pier_value_init(const struct pier_type *type, void *value)
{
	const struct pier_variant *first;

	if (!type || !value)
		return;
	memset(value, 0, type->size);
	if (type->fds)
		fds_clear(type, value);
	/* An enum is at its first variant, whose data may hold fds (the
	 * tagged unions of updates): none, not fd 0. */
	if (type->kind == PIER_KIND_ENUM && type->count && (first = &type->variants[0])->type &&
	    first->type->fds)
		fds_clear(first->type, (char *)value + first->offset);
}

static void value_release(const struct pier_type *type, void *value);

static void list_release(const struct pier_type *item, void *value)
{
	struct {
		void *items;
		size_t len;
	} *list = value;

	if (item->kind >= PIER_KIND_STRING)
		for (size_t i = 0; i < list->len; i++)
			value_release(item, (char *)list->items + i * item->size);
	free(list->items);
}

/* Frees what value owns, leaving the memory as it is. */
static void value_release(const struct pier_type *type, void *value)
{
	switch (type->kind) {
	case PIER_KIND_STRING:
		free(*(char **)value);
		break;
	case PIER_KIND_BYTES:
		free(((struct pier_bytes *)value)->data);
		break;
	case PIER_KIND_FD:
		if (*(int *)value >= 0)
			close(*(int *)value);
		break;
	case PIER_KIND_LIST:
		list_release(type->item, value);
		break;
	case PIER_KIND_OPTION:
		if (*(bool *)value)
			value_release(type->item, (char *)value + type->item_offset);
		break;
	case PIER_KIND_STRUCT:
	case PIER_KIND_TUPLE:
		for (size_t i = 0; i < type->count; i++)
			value_release(type->fields[i].type, (char *)value + type->fields[i].offset);
		break;
	case PIER_KIND_ENUM: {
		unsigned int tag = enum_tag(value);

		if (tag < type->count && type->variants[tag].type)
			value_release(type->variants[tag].type,
				      (char *)value + type->variants[tag].offset);
		break;
	}
	default: /* numbers, bool, (): nothing owned */
		break;
	}
}

PIER_EXPORT void pier_value_free(const struct pier_type *type, void *value)
{
	if (!type || !value)
		return;
	value_release(type, value);
	pier_value_init(type, value);
}

void tpath_error(struct pier_value_error *err, const struct tpath *p, const char *fmt, ...)
{
	char *buf, *end;
	size_t depth = p->depth < TPATH_MAX ? p->depth : TPATH_MAX;
	va_list ap;
	int n;

	if (!err)
		return;
	buf = err->message;
	end = buf + sizeof(err->message);
	n = snprintf(buf, (size_t)(end - buf), "%s", p->what);
	for (size_t i = 0; i < depth && n >= 0 && n < end - buf; i++) {
		buf += n;
		if (p->seg[i].name)
			n = snprintf(buf, (size_t)(end - buf), ".%s", p->seg[i].name);
		else
			n = snprintf(buf, (size_t)(end - buf), "[%zu]", p->seg[i].index);
	}
	if (n >= 0 && n < end - buf && p->depth > TPATH_MAX) {
		buf += n;
		n = snprintf(buf, (size_t)(end - buf), "...");
	}
	if (n < 0 || n >= end - buf)
		return; /* cut: the path is what matters most */
	buf += n;
	n = snprintf(buf, (size_t)(end - buf), ": ");
	if (n < 0 || n >= end - buf)
		return;
	buf += n;
	va_start(ap, fmt);
	vsnprintf(buf, (size_t)(end - buf), fmt, ap);
	va_end(ap);
}

const char *typed_kind_name(const struct pier_type *type)
{
	static const char *const names[] = {
		[PIER_KIND_UNIT] = "()", [PIER_KIND_BOOL] = "bool",
		[PIER_KIND_I8] = "i8", [PIER_KIND_I16] = "i16",
		[PIER_KIND_I32] = "i32", [PIER_KIND_I64] = "i64",
		[PIER_KIND_U8] = "u8", [PIER_KIND_U16] = "u16",
		[PIER_KIND_U32] = "u32", [PIER_KIND_U64] = "u64",
		[PIER_KIND_F32] = "f32", [PIER_KIND_F64] = "f64",
		[PIER_KIND_STRING] = "String", [PIER_KIND_BYTES] = "Vec<u8>",
		[PIER_KIND_FD] = "fd",
	};

	if ((size_t)type->kind < PIER_ARRAY_SIZE(names) && names[type->kind])
		return names[type->kind];
	return type->name;
}

/* Gathers the fds of value's fd fields into fds, in field order.  Fails,
 * naming the field, on one that holds no fd. */
static int fds_collect(const struct pier_type *type, const void *value, int *fds, size_t *n,
		       struct tpath *p, struct pier_value_error *err)
{
	if (type->kind == PIER_KIND_FD) {
		int fd = *(const int *)value;

		if (fd < 0) {
			tpath_error(err, p, "no fd (%d)", fd);
			return -EINVAL;
		}
		fds[(*n)++] = fd;
		return 0;
	}
	for (size_t i = 0; i < type->count; i++) {
		const struct pier_field *f = &type->fields[i];
		int r;

		if (!f->type->fds)
			continue;
		tpath_push(p, f->name);
		r = fds_collect(f->type, (const char *)value + f->offset, fds, n, p, err);
		tpath_pop(p);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Puts fds into value's fd fields, in field order, and takes them from the
 * array (each entry becomes -1). */
static void fds_assign(const struct pier_type *type, void *value, int *fds, size_t *n)
{
	if (type->kind == PIER_KIND_FD) {
		*(int *)value = fds[*n];
		fds[(*n)++] = -1;
		return;
	}
	for (size_t i = 0; i < type->count; i++) {
		const struct pier_field *f = &type->fields[i];

		if (f->type->fds)
			fds_assign(f->type, (char *)value + f->offset, fds, n);
	}
}

PIER_EXPORT void pier_encoded_release(struct pier_encoded *out)
{
	if (!out)
		return;
	free(out->body);
	out->body = NULL;
	out->len = out->cap = 0;
	out->n_fds = 0;
}

PIER_EXPORT int pier_encode(const struct pier_format *fmt, const struct pier_type *type,
			    const void *value, const char *what, struct pier_encoded *out,
			    struct pier_value_error *err)
{
	struct tpath p;
	int r;

	if (!fmt || !fmt->encode || !type || !value || !out || type->fds > PIER_TYPED_MAX_FDS)
		return -EINVAL;
	tpath_init(&p, type, what);
	out->len = 0;
	out->n_fds = 0;
	if (type->fds && (r = fds_collect(type, value, out->fds, &out->n_fds, &p, err)) < 0) {
		out->n_fds = 0;
		return r;
	}
	r = fmt->encode(type, value, p.what, out, err);
	if (r < 0) {
		out->len = 0;
		out->n_fds = 0;
	}
	return r;
}

static int fd_count_error(struct pier_value_error *err, const struct pier_type *type,
			  const char *what, size_t n_fds)
{
	struct tpath p;

	tpath_init(&p, type, what);
	tpath_error(err, &p, "expected %zu fd%s, got %zu", type->fds, type->fds == 1 ? "" : "s",
		    n_fds);
	return -EBADMSG;
}

PIER_EXPORT int pier_decode(const struct pier_format *fmt, const struct pier_type *type,
			    const char *what, const void *body, size_t len, int *fds, size_t n_fds,
			    void *value, struct pier_value_error *err)
{
	size_t n = 0;
	int r;

	if (!fmt || !fmt->decode || !type || !value || (!body && len) || (!fds && n_fds))
		return -EINVAL;
	if (n_fds != type->fds)
		return fd_count_error(err, type, what, n_fds);
	pier_value_init(type, value);
	r = fmt->decode(type, value, what ? what : type->name, body, len, err);
	if (r < 0)
		return r;
	if (type->fds)
		fds_assign(type, value, fds, &n);
	return 0;
}

PIER_EXPORT int pier_msg_decode(pier_msg *msg, const struct pier_format *fmt,
				const struct pier_type *type, const char *what, void *value,
				struct pier_value_error *err)
{
	int fds[PIER_TYPED_MAX_FDS];
	size_t n, len;
	const void *body;
	int r;

	if (!msg || !type)
		return -EINVAL;
	n = pier_msg_fd_count(msg);
	if (n != type->fds)
		return fd_count_error(err, type, what, n);
	for (size_t i = 0; i < n; i++) {
		if ((fds[i] = pier_msg_fd(msg, i)) < 0) {
			struct tpath p;

			tpath_init(&p, type, what);
			tpath_error(err, &p, "fd %zu of the message was already taken", i);
			return -EBADMSG;
		}
	}
	body = pier_msg_body(msg, &len);
	r = pier_decode(fmt, type, what, body, len, fds, n, value, err);
	if (r < 0)
		return r;
	/* The value holds them now: the message must forget them. */
	for (size_t i = 0; i < n; i++)
		pier_msg_take_fd(msg, i);
	return 0;
}
