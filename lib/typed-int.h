/* SPDX-License-Identifier: MIT */
/* Between the files of typed bodies (typed.c and the formats): the path of
 * the value being encoded or decoded, for error messages. */
#ifndef PIER_TYPED_INT_H
#define PIER_TYPED_INT_H

#include <stddef.h>

#include <pier/typed.h>

/* Deeper than this, a path shows "..." in place of the rest. */
#define TPATH_MAX 48

/* Where in a value a walk is: a stack of field names and list indexes.
 * Pushing stores a pointer, so a walk that succeeds never formats it; only
 * an error message does (tpath_error()). */
struct tpath {
	const char *what;
	size_t depth;
	struct {
		const char *name; /* a field or variant; NULL for an index */
		size_t index;
	} seg[TPATH_MAX];
};

static inline void tpath_init(struct tpath *p, const struct pier_type *type, const char *what)
{
	p->what = what ? what : type->name;
	p->depth = 0;
}

static inline void tpath_push(struct tpath *p, const char *name)
{
	if (p->depth < TPATH_MAX) {
		p->seg[p->depth].name = name;
		p->seg[p->depth].index = 0;
	}
	p->depth++;
}

static inline void tpath_push_index(struct tpath *p, size_t index)
{
	if (p->depth < TPATH_MAX) {
		p->seg[p->depth].name = NULL;
		p->seg[p->depth].index = index;
	}
	p->depth++;
}

static inline void tpath_pop(struct tpath *p)
{
	p->depth--;
}

/* Writes "PATH: MESSAGE" into err (if not NULL). */
void tpath_error(struct pier_value_error *err, const struct tpath *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The name of a kind of type, as an interface file writes it ("u32"). */
const char *typed_kind_name(const struct pier_type *type);

#endif
