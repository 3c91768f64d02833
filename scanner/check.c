/* SPDX-License-Identifier: MIT */
/*
 * The checker: names resolved, duplicates (the ones fizyr-rpc's macro
 * refuses, and those C would), types that contain themselves, where fds
 * may go, and the C names the generated code declares.  It reports every
 * error it finds, in file order within each kind of check.
 */
#include "config.h"

#include <string.h>

#include "names.h"

/* The most fds one message may carry (Linux's SCM_MAX_FD). */
#define MAX_FDS 253

/* Where a type is used, for the rules about fds and options. */
enum place {
	IN_FIELD,   /* a struct's field */
	IN_VARIANT, /* an enum variant's data */
	IN_BODY,    /* a message's body */
	IN_LIST,    /* Vec<...> */
	IN_OPTION,  /* Option<...> */
};

/* A C name the generated code declares, to find two that clash. */
struct cname {
	bool tag;          /* a struct or enum tag, not an ordinary identifier */
	const char *name;
	const char *what;  /* for the error: "type `Image`" */
	struct pos pos;
};

struct checker {
	struct arena *a;
	struct diag *d;
	struct file *f;
	const char *prefix;
	struct cname *names;
	size_t n_names;
};

static bool builtin_name(const char *name)
{
	static const char *const names[] = {
		"bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64",
		"String", "fd", "Vec", "Option", "usize", "isize", "u128", "i128", "char", "str",
		"Box",
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static struct typedef_ *find_type(struct file *f, const char *name)
{
	for (size_t i = 0; i < f->n_types; i++)
		if (!strcmp(f->types[i].name, name))
			return &f->types[i];
	return NULL;
}

/* --- names and members ------------------------------------------------------- */

static void check_type_names(struct checker *c)
{
	for (size_t i = 0; i < c->f->n_types; i++) {
		struct typedef_ *t = &c->f->types[i];

		if (builtin_name(t->name)) {
			diag_error(c->d, t->pos, "`%s` is a built-in type's name", t->name);
			continue;
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(c->f->types[j].name, t->name)) {
				diag_error(c->d, t->pos, "duplicate type name `%s` (first at line %d)",
					   t->name, c->f->types[j].pos.line);
				break;
			}
		}
	}
}

static void check_fields(struct checker *c, const struct field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (c->prefix && c_reserved(fields[i].name))
			diag_error(c->d, fields[i].pos, "field name `%s` is reserved in C",
				   fields[i].name);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(fields[i].name, fields[j].name)) {
				diag_error(c->d, fields[i].pos, "duplicate field name `%s`",
					   fields[i].name);
				break;
			}
		}
	}
}

static void check_variants(struct checker *c, struct typedef_ *t)
{
	if (t->n_variants == 0) {
		diag_error(c->d, t->pos, "enum `%s` has no variants: no value could be sent",
			   t->name);
		return;
	}
	t->unit_only = true;
	for (size_t i = 0; i < t->n_variants; i++) {
		struct variant *v = &t->variants[i];
		const char *snake = c_snake(c->a, v->name);

		if (v->kind != V_UNIT)
			t->unit_only = false;
		if (v->kind == V_STRUCT)
			check_fields(c, v->fields, v->n_fields);
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(v->name, t->variants[j].name)) {
				diag_error(c->d, v->pos, "duplicate variant name `%s`", v->name);
				break;
			}
			if (c->prefix && !strcmp(snake, c_snake(c->a, t->variants[j].name))) {
				diag_error(c->d, v->pos, "variants `%s` and `%s` have the same C name `%s`",
					   t->variants[j].name, v->name, snake);
				break;
			}
		}
	}
	/* a variant's data is the union member named after it, beside the tag */
	for (size_t i = 0; c->prefix && i < t->n_variants && !t->unit_only; i++) {
		const char *snake = c_snake(c->a, t->variants[i].name);

		if (t->variants[i].kind != V_UNIT && (!strcmp(snake, "tag") || c_reserved(snake)))
			diag_error(c->d, t->variants[i].pos,
				   "variant `%s` would be the C member `%s`, which is reserved",
				   t->variants[i].name, snake);
	}
}

/* --- resolving ------------------------------------------------------------------ */

static void resolve(struct checker *c, struct typeref *t)
{
	if (t->kind == TK_LIST || t->kind == TK_OPTION) {
		resolve(c, t->item);
		return;
	}
	if (t->kind != TK_NAMED)
		return;
	if (!(t->def = find_type(c->f, t->name)))
		diag_error(c->d, t->pos, "unknown type `%s`", t->name);
}

/* Calls fn on each type written in f, with where it is used. */
static void each_typeref(struct checker *c, void (*fn)(struct checker *, struct typeref *,
						      enum place))
{
	struct file *f = c->f;

	for (size_t i = 0; i < f->n_types; i++) {
		struct typedef_ *t = &f->types[i];

		for (size_t j = 0; j < t->n_fields; j++)
			fn(c, t->fields[j].type, IN_FIELD);
		for (size_t j = 0; j < t->n_variants; j++)
			for (size_t k = 0; k < t->variants[j].n_fields; k++)
				fn(c, t->variants[j].fields[k].type, IN_VARIANT);
	}
	for (size_t i = 0; i < f->n_interfaces; i++) {
		struct interface *in = &f->interfaces[i];

		for (size_t j = 0; j < in->n_services; j++) {
			struct service *s = &in->services[j];

			fn(c, s->request, IN_BODY);
			fn(c, s->response, IN_BODY);
			for (size_t k = 0; k < s->n_request_updates; k++)
				fn(c, s->request_updates[k].body, IN_BODY);
			for (size_t k = 0; k < s->n_response_updates; k++)
				fn(c, s->response_updates[k].body, IN_BODY);
		}
		for (size_t j = 0; j < in->n_streams; j++)
			fn(c, in->streams[j].body, IN_BODY);
	}
}

static void resolve_one(struct checker *c, struct typeref *t, enum place place)
{
	(void)place;
	resolve(c, t);
}

/* --- containment and fds --------------------------------------------------------- */

static void visit(struct checker *c, struct typedef_ *t);

/* What a value of type t, held by value, adds: fds, and types visited. */
static size_t visit_value(struct checker *c, struct typeref *t)
{
	switch (t->kind) {
	case TK_FD:
		return 1;
	case TK_OPTION:
		return visit_value(c, t->item);
	case TK_NAMED:
		if (!t->def)
			return 0;
		visit(c, t->def);
		return t->def->fds;
	default: /* a list holds its items through a pointer */
		return 0;
	}
}

/* Depth first: a type met again while it is being visited contains
 * itself.  Counts each struct's fds on the way back. */
static void visit(struct checker *c, struct typedef_ *t)
{
	size_t fds = 0;

	if (t->visit == 2)
		return;
	if (t->visit == 1) {
		diag_error(c->d, t->pos, "type `%s` contains itself: nest it in a Vec", t->name);
		t->visit = 3; /* reported */
		return;
	}
	if (t->visit == 3)
		return;
	t->visit = 1;
	for (size_t i = 0; i < t->n_fields; i++)
		fds += visit_value(c, t->fields[i].type);
	for (size_t i = 0; i < t->n_variants; i++)
		for (size_t j = 0; j < t->variants[i].n_fields; j++)
			visit_value(c, t->variants[i].fields[j].type);
	if (t->visit == 1)
		t->visit = 2;
	t->fds = fds;
	if (t->kind == D_STRUCT && fds > MAX_FDS)
		diag_error(c->d, t->pos, "type `%s` carries %zu fds: a message carries %d at most",
			   t->name, fds, MAX_FDS);
}

static const char *place_name(enum place place)
{
	switch (place) {
	case IN_LIST: return "inside Vec";
	case IN_OPTION: return "inside Option";
	case IN_VARIANT: return "an enum variant's data";
	default: return "there";
	}
}

/* fds travel beside the body, matched to fd fields by position: only
 * fields whose number is fixed by the type may hold them. */
static void check_place(struct checker *c, struct typeref *t, enum place place)
{
	switch (t->kind) {
	case TK_FD:
		if (place != IN_FIELD)
			diag_error(c->d, t->pos, "`fd` can only be the type of a struct's field");
		break;
	case TK_LIST:
		check_place(c, t->item, IN_LIST);
		break;
	case TK_OPTION:
		if (t->item->kind == TK_UNIT || t->item->kind == TK_OPTION)
			diag_error(c->d, t->pos, "`%s`: JSON writes both None and Some(%s) as null",
				   type_spelling(c->a, t),
				   t->item->kind == TK_UNIT ? "()" : "None");
		else
			check_place(c, t->item, IN_OPTION);
		break;
	case TK_NAMED:
		if (t->def && t->def->fds &&
		    (place == IN_LIST || place == IN_OPTION || place == IN_VARIANT))
			diag_error(c->d, t->pos, "`%s` holds fds, so it cannot be %s: a message's "
				   "fds are matched to fd fields by position", t->name,
				   place_name(place));
		break;
	default:
		break;
	}
}

/* --- interfaces --------------------------------------------------------------------- */

static void check_messages(struct checker *c, const struct message *m, size_t n,
			   const char *kind)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (m[i].id == m[j].id) {
				diag_error(c->d, m[i].id_pos, "duplicate %s id %d (also `%s`)", kind,
					   m[i].id, m[j].name);
				break;
			}
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(m[i].name, m[j].name)) {
				diag_error(c->d, m[i].pos, "duplicate %s name `%s`", kind, m[i].name);
				break;
			}
		}
	}
}

static void check_interface(struct checker *c, size_t index)
{
	struct interface *in = &c->f->interfaces[index];

	for (size_t j = 0; j < index; j++)
		if (!strcmp(in->name, c->f->interfaces[j].name))
			diag_error(c->d, in->pos, "duplicate interface name `%s`", in->name);
	for (size_t i = 0; i < in->n_services; i++) {
		struct service *s = &in->services[i];

		for (size_t j = 0; j < i; j++) {
			if (s->id == in->services[j].id) {
				diag_error(c->d, s->id_pos, "duplicate service id %d (also `%s`)", s->id,
					   in->services[j].name);
				break;
			}
		}
		for (size_t j = 0; j < i; j++) {
			if (!strcmp(s->name, in->services[j].name)) {
				diag_error(c->d, s->pos, "duplicate service name `%s`", s->name);
				break;
			}
		}
		check_messages(c, s->request_updates, s->n_request_updates, "request_update");
		check_messages(c, s->response_updates, s->n_response_updates, "response_update");
	}
	check_messages(c, in->streams, in->n_streams, "stream");
}

/* --- C names --------------------------------------------------------------------------- */

static void declare(struct checker *c, bool tag, const char *name, const char *what,
		    struct pos pos)
{
	struct cname *n;

	for (size_t i = 0; i < c->n_names; i++) {
		if (c->names[i].tag != tag || strcmp(c->names[i].name, name))
			continue;
		if (strcmp(c->names[i].what, what))
			diag_error(c->d, pos, "the C name `%s` of %s is also that of %s", name, what,
				   c->names[i].what);
		return; /* the same list or option type, used twice: one C type */
	}
	n = ARENA_PUSH(c->a, c->names, c->n_names);
	*n = (struct cname){ tag, name, what, pos };
}

static void declare_compounds(struct checker *c, struct typeref *t, enum place place)
{
	(void)place;
	if (t->kind != TK_LIST && t->kind != TK_OPTION)
		return;
	declare_compounds(c, t->item, IN_FIELD);
	declare(c, true, c_compound_name(c->a, c->prefix, t),
		arena_printf(c->a, "`%s`", type_spelling(c->a, t)), t->pos);
}

static void declare_type(struct checker *c, const struct typedef_ *t)
{
	const char *name = c_def_name(c->a, c->prefix, t);
	const char *what = arena_printf(c->a, "type `%s`", t->name);
	const char *upper = c_upper(c->a, name);
	static const char *const functions[] = { "init", "free", "encode", "decode", "type" };

	declare(c, true, name, what, t->pos);
	for (size_t i = 0; i < sizeof(functions) / sizeof(functions[0]); i++)
		declare(c, false, arena_printf(c->a, "%s_%s", name, functions[i]), what, t->pos);
	if (t->kind == D_ENUM && !t->unit_only)
		declare(c, true, arena_printf(c->a, "%s_tag", name), what, t->pos);
	for (size_t i = 0; i < t->n_variants; i++) {
		const struct variant *v = &t->variants[i];
		const char *vwhat = arena_printf(c->a, "variant `%s::%s`", t->name, v->name);

		declare(c, false, arena_printf(c->a, "%s_%s", upper, c_upper(c->a, c_snake(c->a,
			v->name))), vwhat, v->pos);
		if (v->kind == V_TUPLE || v->kind == V_STRUCT)
			declare(c, true, c_variant_struct(c->a, c->prefix, t, v), vwhat, v->pos);
	}
}

static void declare_message(struct checker *c, const char *name, const char *what,
			    struct pos pos)
{
	declare(c, false, c_upper(c->a, name), what, pos);
}

/* The names of a service's client and server (gen-iface.c). */
static void declare_service(struct checker *c, const char *iname, const struct service *s)
{
	const char *sname = arena_printf(c->a, "%s_%s", iname, c_snake(c->a, s->name));
	const char *what = arena_printf(c->a, "service `%s`", s->name);
	static const char *const tags[] = { "call", "reply", "request_update", "response_update",
					    "request_update_tag", "response_update_tag" };

	declare(c, false, sname, what, s->pos);
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		declare(c, true, arena_printf(c->a, "%s_%s", sname, tags[i]), what, s->pos);
	declare_message(c, arena_printf(c->a, "%s_service_%s_id", iname, c_snake(c->a, s->name)),
			what, s->pos);
	for (size_t j = 0; j < s->n_request_updates; j++)
		declare_message(c, arena_printf(c->a, "%s_request_update_%s_id", sname,
						c_snake(c->a, s->request_updates[j].name)),
				arena_printf(c->a, "request_update `%s`", s->request_updates[j].name),
				s->request_updates[j].pos);
	for (size_t j = 0; j < s->n_response_updates; j++)
		declare_message(c, arena_printf(c->a, "%s_response_update_%s_id", sname,
						c_snake(c->a, s->response_updates[j].name)),
				arena_printf(c->a, "response_update `%s`", s->response_updates[j].name),
				s->response_updates[j].pos);
}

static void declare_interface(struct checker *c, const struct interface *in)
{
	const char *iname = c_snake(c->a, in->name);
	const char *what = arena_printf(c->a, "interface `%s`", in->name);
	static const char *const tags[] = { "client", "server", "handlers" };

	declare(c, false, arena_printf(c->a, "%s_interface", iname), what, in->pos);
	declare(c, false, arena_printf(c->a, "%s_serve", iname), what, in->pos);
	declare(c, false, arena_printf(c->a, "%s_serve_peer", iname), what, in->pos);
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++)
		declare(c, true, arena_printf(c->a, "%s_%s", iname, tags[i]), what, in->pos);
	for (size_t i = 0; i < in->n_services; i++)
		declare_service(c, iname, &in->services[i]);
	for (size_t i = 0; i < in->n_streams; i++) {
		const char *tname = c_snake(c->a, in->streams[i].name);
		const char *swhat = arena_printf(c->a, "stream `%s`", in->streams[i].name);

		declare_message(c, arena_printf(c->a, "%s_stream_%s_id", iname, tname), swhat,
				in->streams[i].pos);
		declare(c, false, arena_printf(c->a, "%s_send_%s", iname, tname), swhat,
			in->streams[i].pos);
	}
}

/* Services and streams are members of the interface's handlers, updates
 * of their tagged unions (beside tag): names C must allow there. */
static void check_member_names(struct checker *c, const struct interface *in)
{
	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];
		const char *names[2] = { "request_update", "response_update" };
		const struct message *lists[2] = { s->request_updates, s->response_updates };
		size_t counts[2] = { s->n_request_updates, s->n_response_updates };

		if (c_reserved(c_snake(c->a, s->name)))
			diag_error(c->d, s->pos, "service name `%s` is reserved in C", s->name);
		for (size_t k = 0; k < 2; k++)
			for (size_t j = 0; j < counts[k]; j++)
				if (c_reserved(c_snake(c->a, lists[k][j].name)) ||
				    !strcmp(c_snake(c->a, lists[k][j].name), "tag"))
					diag_error(c->d, lists[k][j].pos, "%s name `%s` is reserved in C",
						   names[k], lists[k][j].name);
	}
	for (size_t i = 0; i < in->n_streams; i++) {
		if (c_reserved(c_snake(c->a, in->streams[i].name)))
			diag_error(c->d, in->streams[i].pos, "stream name `%s` is reserved in C",
				   in->streams[i].name);
		for (size_t j = 0; j < in->n_services; j++)
			if (!strcmp(c_snake(c->a, in->streams[i].name),
				    c_snake(c->a, in->services[j].name)))
				diag_error(c->d, in->streams[i].pos,
					   "stream `%s` has the name of a service: both would be "
					   "members of the handlers", in->streams[i].name);
	}
}

int check_file(struct arena *a, struct diag *d, struct file *f, const char *prefix)
{
	struct checker c = { .a = a, .d = d, .f = f, .prefix = prefix };
	unsigned int before = d->count;

	check_type_names(&c);
	for (size_t i = 0; i < f->n_types; i++) {
		if (f->types[i].kind == D_STRUCT)
			check_fields(&c, f->types[i].fields, f->types[i].n_fields);
		else
			check_variants(&c, &f->types[i]);
	}
	each_typeref(&c, resolve_one);
	for (size_t i = 0; i < f->n_types; i++)
		visit(&c, &f->types[i]);
	each_typeref(&c, check_place);
	for (size_t i = 0; i < f->n_interfaces; i++) {
		check_interface(&c, i);
		if (prefix)
			check_member_names(&c, &f->interfaces[i]);
	}
	if (d->count != before || !prefix)
		return d->count != before ? -1 : 0;
	/* Only names that passed everything above: the C names follow them. */
	for (size_t i = 0; i < f->n_types; i++)
		declare_type(&c, &f->types[i]);
	each_typeref(&c, declare_compounds);
	for (size_t i = 0; i < f->n_interfaces; i++)
		declare_interface(&c, &f->interfaces[i]);
	return d->count != before ? -1 : 0;
}

void interface_bodies(const struct interface *in, void (*fn)(void *ctx, const struct typeref *t),
		      void *ctx)
{
	for (size_t j = 0; j < in->n_services; j++) {
		const struct service *s = &in->services[j];

		fn(ctx, s->request);
		fn(ctx, s->response);
		for (size_t k = 0; k < s->n_request_updates; k++)
			fn(ctx, s->request_updates[k].body);
		for (size_t k = 0; k < s->n_response_updates; k++)
			fn(ctx, s->response_updates[k].body);
	}
	for (size_t j = 0; j < in->n_streams; j++)
		fn(ctx, in->streams[j].body);
}
