/* SPDX-License-Identifier: MIT */
/*
 * What the generators share: the C types the file needs, in an order C
 * can define them in (what a struct holds by value comes first; a list
 * holds its items through a pointer, for which a forward declaration is
 * enough),
 * doc comments, and the names of descriptors.
 */
#include "config.h"

#include <string.h>

#include "gen.h"
#include "names.h"

static struct ctype *find(struct gen *g, const char *name)
{
	for (size_t i = 0; i < g->n_types; i++)
		if (!strcmp(g->types[i].name, name))
			return &g->types[i];
	return NULL;
}

static void add_compounds(struct gen *g, const struct typeref *t)
{
	const char *name;

	if (t->kind != TK_LIST && t->kind != TK_OPTION)
		return;
	add_compounds(g, t->item);
	name = c_compound_name(g->a, g->prefix, t);
	if (!find(g, name))
		*ARENA_PUSH(g->a, g->types, g->n_types) =
			(struct ctype){ .kind = CT_COMPOUND, .name = name, .t = t };
}

static void add_body(void *g, const struct typeref *t)
{
	add_compounds(g, t);
}

static void add_fields(struct gen *g, const struct field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		add_compounds(g, fields[i].type);
}

/* Every C type, in file order (then sorted by place()). */
static void collect(struct gen *g)
{
	const struct file *f = g->f;

	for (size_t i = 0; i < f->n_types; i++) {
		const struct typedef_ *d = &f->types[i];

		*ARENA_PUSH(g->a, g->types, g->n_types) =
			(struct ctype){ .kind = CT_DEF, .name = c_def_name(g->a, g->prefix, d), .def = d };
		add_fields(g, d->fields, d->n_fields);
		for (size_t j = 0; j < d->n_variants; j++) {
			const struct variant *v = &d->variants[j];

			add_fields(g, v->fields, v->n_fields);
			if (v->kind == V_TUPLE || v->kind == V_STRUCT)
				*ARENA_PUSH(g->a, g->types, g->n_types) = (struct ctype){
					.kind = CT_VARIANT, .def = d, .v = v,
					.name = c_variant_struct(g->a, g->prefix, d, v) };
		}
	}
	for (size_t i = 0; i < f->n_interfaces; i++)
		interface_bodies(&f->interfaces[i], add_body, g);
}

static void place(struct gen *g, struct ctype *c, struct ctype **order, size_t *n);

/* The C type that a value of type t needs defined first, if any. */
static void place_value(struct gen *g, const struct typeref *t, struct ctype **order, size_t *n)
{
	struct ctype *c = NULL;

	if (t->kind == TK_OPTION || t->kind == TK_LIST)
		c = find(g, c_compound_name(g->a, g->prefix, t));
	else if (t->kind == TK_NAMED && !(t->def->kind == D_ENUM && t->def->unit_only))
		c = find(g, c_def_name(g->a, g->prefix, t->def));
	if (c)
		place(g, c, order, n);
}

static void place_fields(struct gen *g, const struct field *fields, size_t count,
			 struct ctype **order, size_t *n)
{
	for (size_t i = 0; i < count; i++)
		place_value(g, fields[i].type, order, n);
}

/* Depth first, what c holds by value before c (the checker refused
 * cycles). */
static void place(struct gen *g, struct ctype *c, struct ctype **order, size_t *n)
{
	if (c->state)
		return;
	c->state = 1;
	switch (c->kind) {
	case CT_DEF:
		place_fields(g, c->def->fields, c->def->n_fields, order, n);
		for (size_t i = 0; i < c->def->n_variants; i++) {
			const struct variant *v = &c->def->variants[i];

			if (v->kind == V_NEWTYPE)
				place_value(g, v->fields[0].type, order, n);
			else if (v->kind != V_UNIT)
				place(g, find(g, c_variant_struct(g->a, g->prefix, c->def, v)), order, n);
		}
		break;
	case CT_VARIANT:
		place_fields(g, c->v->fields, c->v->n_fields, order, n);
		break;
	case CT_COMPOUND:
		if (c->t->kind == TK_OPTION)
			place_value(g, c->t->item, order, n);
		break;
	}
	order[(*n)++] = c;
}

void gen_collect(struct gen *g)
{
	struct ctype **order, *sorted;
	size_t n = 0;

	collect(g);
	order = arena_alloc(g->a, (g->n_types + 1) * sizeof(*order));
	for (size_t i = 0; i < g->n_types; i++)
		place(g, &g->types[i], order, &n);
	sorted = arena_alloc(g->a, (g->n_types + 1) * sizeof(*sorted));
	for (size_t i = 0; i < n; i++)
		sorted[i] = *order[i];
	g->types = sorted;
}

void gen_doc(struct gen *g, const char *doc, const char *indent)
{
	const char *line = doc;

	if (!doc)
		return;
	fprintf(g->out, "%s/*\n", indent);
	while (*line) {
		size_t n = strcspn(line, "\n");

		fprintf(g->out, "%s *%s", indent, n ? " " : "");
		/* a doc that says "*" "/" must not end the comment */
		for (size_t i = 0; i < n; i++) {
			fputc(line[i], g->out);
			if (line[i] == '*' && i + 1 < n && line[i + 1] == '/')
				fputc('\\', g->out);
		}
		fputc('\n', g->out);
		line += n + (line[n] == '\n');
	}
	fprintf(g->out, "%s */\n", indent);
}

const char *gen_descriptor(struct gen *g, const struct typeref *t)
{
	if (t->kind == TK_NAMED)
		return arena_printf(g->a, "%s_type", c_def_name(g->a, g->prefix, t->def));
	return arena_printf(g->a, "%s__t_%s", g->prefix, type_mangled(g->a, t));
}

/* The characters of s up to end, escaped for a C string literal. */
static void c_chars(struct gen *g, const char *s, const char *end)
{
	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(g->out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", g->out);
		else if (c == '\t')
			fputs("\\t", g->out);
		else if (c < 0x20 || c == 0x7f || c == '?') /* ? also: no trigraphs */
			fprintf(g->out, "\\%03o", c);
		else
			fputc(c, g->out);
	}
}

void gen_c_string(struct gen *g, const char *s)
{
	if (!s) {
		fputs("NULL", g->out);
		return;
	}
	fputc('"', g->out);
	c_chars(g, s, s + strlen(s));
	fputc('"', g->out);
}

void gen_c_lines(struct gen *g, const char *s, const char *indent)
{
	bool first = true;

	do {
		const char *end = strchr(s, '\n');

		end = end ? end + 1 : s + strlen(s);
		fprintf(g->out, "%s%s\"", first ? "" : "\n", indent);
		c_chars(g, s, end);
		fputc('"', g->out);
		first = false;
		s = end;
	} while (*s);
}
