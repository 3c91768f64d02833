/* SPDX-License-Identifier: MIT */
/*
 * Descriptions built while a program runs: what pier-scanner writes as C
 * (struct pier_type, struct pier_interface_type), made in memory from an
 * interface file read at run time, so that a tool can encode and decode
 * the bodies of an interface it was not built with (pier call
 * --interface).  The values they describe live only in that program, so
 * their layout need only agree with itself; it follows C's rules anyway,
 * as the generated types do.
 */
#include "config.h"

#include <stdalign.h>
#include <string.h>

#include "names.h"
#include "runtime.h"
#include "text.h"

/* A list whose item type is made later (see compound()). */
struct pending {
	struct pier_type *list;
	const struct typeref *item;
};

struct rt {
	struct arena *a;
	const struct file *f;
	struct pier_type **defs; /* by index in f->types, made once each */
	struct pending *pending; /* lists whose item is not made yet */
	size_t n_pending;
};

/* Where a type must start. */
static size_t align_of(const struct pier_type *t)
{
	switch (t->kind) {
	case PIER_KIND_UNIT:
	case PIER_KIND_BOOL:
	case PIER_KIND_I8:
	case PIER_KIND_U8:
		return 1;
	case PIER_KIND_I16:
	case PIER_KIND_U16:
		return alignof(int16_t);
	case PIER_KIND_I32:
	case PIER_KIND_U32:
	case PIER_KIND_F32:
	case PIER_KIND_FD:
		return alignof(int32_t);
	case PIER_KIND_I64:
	case PIER_KIND_U64:
		return alignof(int64_t);
	case PIER_KIND_F64:
		return alignof(double);
	case PIER_KIND_STRING:
	case PIER_KIND_BYTES:
	case PIER_KIND_LIST:
		return alignof(void *);
	case PIER_KIND_OPTION:
		return align_of(t->item);
	case PIER_KIND_STRUCT:
	case PIER_KIND_TUPLE:
	case PIER_KIND_ENUM: {
		size_t most = t->kind == PIER_KIND_ENUM ? alignof(unsigned int) : 1;

		for (size_t i = 0; i < t->count; i++) {
			const struct pier_type *m = t->kind == PIER_KIND_ENUM ? t->variants[i].type
									      : t->fields[i].type;
			size_t al = m ? align_of(m) : 1;

			most = al > most ? al : most;
		}
		return most;
	}
	}
	return alignof(max_align_t);
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static const struct pier_type *type_of(struct rt *rt, const struct typeref *r);

static const struct pier_type *builtin(struct rt *rt, const struct typeref *r)
{
	static const struct {
		enum pier_kind kind;
		size_t size;
	} kinds[] = {
		[TK_UNIT] = { PIER_KIND_UNIT, sizeof(struct pier_unit) },
		[TK_BOOL] = { PIER_KIND_BOOL, sizeof(bool) },
		[TK_I8] = { PIER_KIND_I8, 1 }, [TK_I16] = { PIER_KIND_I16, 2 },
		[TK_I32] = { PIER_KIND_I32, 4 }, [TK_I64] = { PIER_KIND_I64, 8 },
		[TK_U8] = { PIER_KIND_U8, 1 }, [TK_U16] = { PIER_KIND_U16, 2 },
		[TK_U32] = { PIER_KIND_U32, 4 }, [TK_U64] = { PIER_KIND_U64, 8 },
		[TK_F32] = { PIER_KIND_F32, sizeof(float) }, [TK_F64] = { PIER_KIND_F64, sizeof(double) },
		[TK_STRING] = { PIER_KIND_STRING, sizeof(char *) },
		[TK_BYTES] = { PIER_KIND_BYTES, sizeof(struct pier_bytes) },
		[TK_FD] = { PIER_KIND_FD, sizeof(int) },
	};
	struct pier_type *t = arena_alloc(rt->a, sizeof(*t));

	t->kind = kinds[r->kind].kind;
	t->name = type_spelling(rt->a, r);
	t->size = kinds[r->kind].size;
	t->fds = r->kind == TK_FD;
	return t;
}

static const struct pier_type *compound(struct rt *rt, const struct typeref *r)
{
	struct pier_type *t = arena_alloc(rt->a, sizeof(*t));

	t->name = type_spelling(rt->a, r);
	if (r->kind == TK_LIST) {
		/* { void *items; size_t len; }: its size needs nothing of the
		 * item's, which is made once the type being made is done.  So
		 * a type that holds a list of a type that holds it by value
		 * (Dir { entries: Vec<Entry> }, Entry { Dir(Dir) }) is laid
		 * out when complete, not seen half made. */
		t->kind = PIER_KIND_LIST;
		t->size = sizeof(void *) + sizeof(size_t);
		*ARENA_PUSH(rt->a, rt->pending, rt->n_pending) = (struct pending){ t, r->item };
		return t;
	}
	/* { bool present; T value; } */
	t->item = type_of(rt, r->item);
	t->kind = PIER_KIND_OPTION;
	t->item_offset = round_up(sizeof(bool), align_of(t->item));
	t->size = round_up(t->item_offset + t->item->size, align_of(t->item));
	return t;
}

/* The fields of a struct or tuple laid out in t, which is finished. */
static void lay_fields(struct rt *rt, struct pier_type *t, const struct field *f, size_t n)
{
	struct pier_field *fields = arena_alloc(rt->a, (n ? n : 1) * sizeof(*fields));
	size_t at = 0;

	t->fields = fields;
	t->count = n;
	for (size_t i = 0; i < n; i++) {
		const struct pier_type *ft = type_of(rt, f[i].type);

		at = round_up(at, align_of(ft));
		fields[i] = (struct pier_field){ f[i].name, ft, at };
		at += ft->size;
		t->fds += ft->fds;
	}
	/* an empty struct still takes a byte, as the generated ones do */
	t->size = round_up(at ? at : 1, align_of(t));
}

static const struct pier_type *variant_data(struct rt *rt, const struct typedef_ *d,
					    const struct variant *v)
{
	struct pier_type *t;

	if (v->kind == V_UNIT)
		return NULL;
	if (v->kind == V_NEWTYPE)
		return type_of(rt, v->fields[0].type);
	t = arena_alloc(rt->a, sizeof(*t));
	t->kind = v->kind == V_TUPLE ? PIER_KIND_TUPLE : PIER_KIND_STRUCT;
	t->name = arena_printf(rt->a, "%s::%s", d->name, v->name);
	lay_fields(rt, t, v->fields, v->n_fields);
	return t;
}

/* An enum: its tag, an unsigned int, then a union of its variants' data;
 * the variants given as names and types (NULL: no data). */
static void lay_enum(struct rt *rt, struct pier_type *t, const char *const *names,
		     const struct pier_type *const *types, size_t n)
{
	struct pier_variant *variants = arena_alloc(rt->a, n * sizeof(*variants));
	size_t at, most = 0;

	t->kind = PIER_KIND_ENUM;
	t->variants = variants;
	t->count = n;
	for (size_t i = 0; i < n; i++) {
		variants[i] = (struct pier_variant){ names[i], types[i], 0 };
		if (types[i] && types[i]->size > most)
			most = types[i]->size;
	}
	at = round_up(sizeof(unsigned int), align_of(t));
	for (size_t i = 0; i < n; i++)
		if (types[i])
			variants[i].offset = at;
	t->size = round_up(at + most, align_of(t));
}

static const struct pier_type *def(struct rt *rt, const struct typedef_ *d)
{
	size_t index = (size_t)(d - rt->f->types);
	struct pier_type *t = rt->defs[index];

	if (t)
		return t; /* made, or being made: only its address is needed */
	t = rt->defs[index] = arena_alloc(rt->a, sizeof(*t));
	t->name = d->name;
	if (d->kind == D_STRUCT) {
		t->kind = PIER_KIND_STRUCT;
		lay_fields(rt, t, d->fields, d->n_fields);
		return t;
	}
	{
		const char **names = arena_alloc(rt->a, d->n_variants * sizeof(*names));
		const struct pier_type **types = arena_alloc(rt->a, d->n_variants * sizeof(*types));

		for (size_t i = 0; i < d->n_variants; i++) {
			names[i] = d->variants[i].name;
			types[i] = variant_data(rt, d, &d->variants[i]);
		}
		lay_enum(rt, t, names, types, d->n_variants);
	}
	return t;
}

static const struct pier_type *type_of(struct rt *rt, const struct typeref *r)
{
	if (r->kind == TK_NAMED)
		return def(rt, r->def);
	if (r->kind == TK_LIST || r->kind == TK_OPTION)
		return compound(rt, r);
	return builtin(rt, r);
}

/* The type of r, complete: with the items of its lists, and theirs. */
static const struct pier_type *complete_type(struct rt *rt, const struct typeref *r)
{
	const struct pier_type *t = type_of(rt, r);

	while (rt->n_pending) {
		struct pending p = rt->pending[--rt->n_pending];

		p.list->item = type_of(rt, p.item);
	}
	return t;
}

/* --- interfaces ---------------------------------------------------------------------- */

static const struct pier_message_type *messages(struct rt *rt, const struct message *m, size_t n)
{
	struct pier_message_type *out = arena_alloc(rt->a, (n ? n : 1) * sizeof(*out));

	for (size_t i = 0; i < n; i++)
		out[i] = (struct pier_message_type){ m[i].name, m[i].id, complete_type(rt, m[i].body),
						     m[i].doc, m[i].hidden };
	return out;
}

/* The tagged union of a list of updates, or NULL for none. */
static const struct pier_type *update_union(struct rt *rt, const struct service *s,
					    const char *kind, const struct pier_message_type *u,
					    size_t n)
{
	const char **names;
	const struct pier_type **types;
	struct pier_type *t;

	if (!n)
		return NULL;
	names = arena_alloc(rt->a, n * sizeof(*names));
	types = arena_alloc(rt->a, n * sizeof(*types));
	for (size_t i = 0; i < n; i++) {
		names[i] = u[i].name;
		types[i] = u[i].body;
	}
	t = arena_alloc(rt->a, sizeof(*t));
	t->name = arena_printf(rt->a, "%s %s update", s->name, kind);
	lay_enum(rt, t, names, types, n);
	return t;
}

const struct pier_interface_type *runtime_interface(struct arena *a, const struct file *f,
						    const struct interface *in)
{
	struct rt rt = { a, f, arena_alloc(a, (f->n_types ? f->n_types : 1) * sizeof(*rt.defs)) };
	struct pier_interface_type *it = arena_alloc(a, sizeof(*it));
	struct pier_service_type *svcs = arena_alloc(a, (in->n_services ? in->n_services : 1) *
							     sizeof(*svcs));

	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];
		struct pier_service_type *o = &svcs[i];

		o->name = s->name;
		o->service_id = s->id;
		o->doc = s->doc;
		o->hidden = s->hidden;
		o->request = complete_type(&rt, s->request);
		o->response = complete_type(&rt, s->response);
		o->request_updates = messages(&rt, s->request_updates, s->n_request_updates);
		o->n_request_updates = s->n_request_updates;
		o->response_updates = messages(&rt, s->response_updates, s->n_response_updates);
		o->n_response_updates = s->n_response_updates;
		o->request_updates_union = update_union(&rt, s, "request", o->request_updates,
							s->n_request_updates);
		o->response_updates_union = update_union(&rt, s, "response", o->response_updates,
							 s->n_response_updates);
	}
	it->name = in->name;
	it->doc = in->doc;
	it->hidden = in->hidden;
	it->services = svcs;
	it->n_services = in->n_services;
	it->streams = messages(&rt, in->streams, in->n_streams);
	it->n_streams = in->n_streams;
	it->source = text_of_interface(a, f, in);
	return it;
}
