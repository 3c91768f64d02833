/* SPDX-License-Identifier: MIT */
/*
 * The generated header: the service ids of each interface, the C types of
 * the file's types (with who owns what written beside each member), and
 * the functions and descriptors of each type.
 */
#include "config.h"

#include <string.h>

#include "gen.h"
#include "names.h"

static const char *ownership_note(const struct typeref *t)
{
	switch (t->kind) {
	case TK_STRING: return "owned, malloc'd UTF-8 (NULL is sent as \"\")";
	case TK_BYTES: return "owned: data is malloc'd";
	case TK_FD: return "an fd, owned by the value: closed by _free(); -1 for none";
	case TK_LIST: return "owned: items is malloc'd";
	default: return NULL;
	}
}

static void member(struct gen *g, const struct typeref *t, const char *name, const char *doc,
		   const char *indent)
{
	const char *ctype = c_type(g->a, g->prefix, t);
	const char *note = ownership_note(t);

	gen_doc(g, doc, indent);
	fprintf(g->out, "%s%s%s%s;", indent, ctype, ctype[strlen(ctype) - 1] == '*' ? "" : " ",
		name);
	if (note)
		fprintf(g->out, " /* %s: %s */", type_spelling(g->a, t), note);
	fputc('\n', g->out);
}

static void fields(struct gen *g, const struct field *f, size_t n, bool tuple)
{
	for (size_t i = 0; i < n; i++)
		member(g, f[i].type, tuple ? arena_printf(g->a, "_%s", f[i].name) : f[i].name,
		       f[i].doc, "\t");
	if (n == 0)
		fputs("\tchar unused; /* C has no empty structs */\n", g->out);
}

static void variant_constants(struct gen *g, const struct typedef_ *d, const char *cname)
{
	const char *upper = c_upper(g->a, cname);

	for (size_t i = 0; i < d->n_variants; i++) {
		const struct variant *v = &d->variants[i];

		gen_doc(g, v->doc, "\t");
		fprintf(g->out, "\t%s_%s = %zu,\n", upper, c_upper(g->a, c_snake(g->a, v->name)), i);
	}
}

static void unit_enum(struct gen *g, const struct typedef_ *d)
{
	const char *cname = c_def_name(g->a, g->prefix, d);

	gen_doc(g, d->doc, "");
	fprintf(g->out, "enum %s {\n", cname);
	variant_constants(g, d, cname);
	fputs("};\n\n", g->out);
}

static void data_enum(struct gen *g, const struct typedef_ *d, const char *cname)
{
	fprintf(g->out, "enum %s_tag {\n", cname);
	variant_constants(g, d, cname);
	fputs("};\n\n", g->out);
	gen_doc(g, d->doc, "");
	fprintf(g->out, "struct %s {\n\tenum %s_tag tag;\n"
		"\t/* the data of the variant tag names (unit variants have none) */\n\tunion {\n",
		cname, cname);
	for (size_t i = 0; i < d->n_variants; i++) {
		const struct variant *v = &d->variants[i];
		const char *member_name = c_snake(g->a, v->name);

		if (v->kind == V_NEWTYPE)
			member(g, v->fields[0].type, member_name, v->doc, "\t\t");
		else if (v->kind != V_UNIT)
			fprintf(g->out, "\t\tstruct %s %s;\n",
				c_variant_struct(g->a, g->prefix, d, v), member_name);
	}
	fputs("\t};\n};\n\n", g->out);
}

static void compound(struct gen *g, const struct ctype *c)
{
	const struct typeref *item = c->t->item;
	const char *ctype = c_type(g->a, g->prefix, item);
	const char *space = ctype[strlen(ctype) - 1] == '*' ? "" : " ";

	if (c->t->kind == TK_LIST)
		fprintf(g->out, "/* %s: owns items (malloc'd) and each item's own */\n"
			"struct %s {\n\t%s%s*items;\n\tsize_t len;\n};\n\n",
			type_spelling(g->a, c->t), c->name, ctype, space);
	else
		fprintf(g->out, "/* %s: value is meaningful (and owned) when present */\n"
			"struct %s {\n\tbool present;\n\t%s%svalue;\n};\n\n",
			type_spelling(g->a, c->t), c->name, ctype, space);
}

static void define(struct gen *g, const struct ctype *c)
{
	switch (c->kind) {
	case CT_DEF:
		if (c->def->kind == D_ENUM) {
			if (!c->def->unit_only)
				data_enum(g, c->def, c->name);
			return;
		}
		gen_doc(g, c->def->doc, "");
		fprintf(g->out, "struct %s {\n", c->name);
		fields(g, c->def->fields, c->def->n_fields, false);
		fputs("};\n\n", g->out);
		return;
	case CT_VARIANT:
		fprintf(g->out, "/* The data of %s::%s */\nstruct %s {\n", c->def->name, c->v->name,
			c->name);
		fields(g, c->v->fields, c->v->n_fields, c->v->kind == V_TUPLE);
		fputs("};\n\n", g->out);
		return;
	case CT_COMPOUND:
		compound(g, c);
		return;
	}
}

static void functions(struct gen *g, const struct typedef_ *d)
{
	const char *cname = c_def_name(g->a, g->prefix, d);
	const char *ctype = arena_printf(g->a, "%s %s",
					 d->kind == D_ENUM && d->unit_only ? "enum" : "struct", cname);

	fprintf(g->out, "/* %s: its description, and pier_value_init(), pier_value_free(),\n"
		" * pier_encode() and pier_decode() on it: pier_encode(3). */\n"
		"extern const struct pier_type %s_type;\n"
		"void %s_init(%s *v);\n"
		"void %s_free(%s *v);\n"
		"int %s_encode(const %s *v, const struct pier_format *fmt,\n"
		"\t\tstruct pier_encoded *out, struct pier_value_error *err);\n"
		"int %s_decode(%s *v, const struct pier_format *fmt, const void *body, size_t len,\n"
		"\t\tint *fds, size_t n_fds, struct pier_value_error *err);\n\n",
		d->name, cname, cname, ctype, cname, ctype, cname, ctype, cname, ctype);
}

static void service_ids(struct gen *g, const struct interface *in)
{
	const char *iname = c_upper(g->a, c_snake(g->a, in->name));

	gen_doc(g, in->doc, "");
	fprintf(g->out, "/* The service ids of interface %s */\nenum {\n", in->name);
	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];
		const char *sname = c_upper(g->a, c_snake(g->a, s->name));

		gen_doc(g, s->doc, "\t");
		fprintf(g->out, "\t%s_SERVICE_%s_ID = %d, /* %s -> %s */\n", iname, sname, s->id,
			type_spelling(g->a, s->request), type_spelling(g->a, s->response));
		for (size_t j = 0; j < s->n_request_updates; j++)
			fprintf(g->out, "\t%s_%s_REQUEST_UPDATE_%s_ID = %d, /* %s */\n", iname, sname,
				c_upper(g->a, c_snake(g->a, s->request_updates[j].name)), s->request_updates[j].id,
				type_spelling(g->a, s->request_updates[j].body));
		for (size_t j = 0; j < s->n_response_updates; j++)
			fprintf(g->out, "\t%s_%s_RESPONSE_UPDATE_%s_ID = %d, /* %s */\n", iname, sname,
				c_upper(g->a, c_snake(g->a, s->response_updates[j].name)), s->response_updates[j].id,
				type_spelling(g->a, s->response_updates[j].body));
	}
	for (size_t i = 0; i < in->n_streams; i++) {
		gen_doc(g, in->streams[i].doc, "\t");
		fprintf(g->out, "\t%s_STREAM_%s_ID = %d, /* %s */\n", iname,
			c_upper(g->a, c_snake(g->a, in->streams[i].name)), in->streams[i].id,
			type_spelling(g->a, in->streams[i].body));
	}
	fputs("};\n\n", g->out);
}

int gen_header(struct gen *g)
{
	const char *guard = c_upper(g->a, arena_printf(g->a, "%s_pier_h", g->prefix));

	fprintf(g->out,
		"/* Generated by pier-scanner from %s: do not edit. */\n"
		"/*\n"
		" * Values of these types own what they point to: strings, byte arrays,\n"
		" * list items, and the fds of fd fields.  TYPE_free() releases all of it\n"
		" * (closing the fds) and leaves the empty value TYPE_init() makes.\n"
		" * TYPE_encode() borrows the value, its fds too; TYPE_decode() fills a\n"
		" * value the caller then owns, taking the fds it is given.\n"
		" */\n"
		"#ifndef %s\n#define %s\n\n"
		"#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n\n"
		"#include <pier/typed.h>\n\n"
		"#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
		g->source, guard, guard);
	for (size_t i = 0; i < g->f->n_interfaces; i++)
		service_ids(g, &g->f->interfaces[i]);
	for (size_t i = 0; i < g->n_types; i++)
		if (g->types[i].kind != CT_DEF || g->types[i].def->kind != D_ENUM ||
		    !g->types[i].def->unit_only)
			fprintf(g->out, "struct %s;\n", g->types[i].name);
	fputc('\n', g->out);
	for (size_t i = 0; i < g->f->n_types; i++)
		if (g->f->types[i].kind == D_ENUM && g->f->types[i].unit_only)
			unit_enum(g, &g->f->types[i]);
	for (size_t i = 0; i < g->n_types; i++)
		define(g, &g->types[i]);
	for (size_t i = 0; i < g->f->n_types; i++)
		functions(g, &g->f->types[i]);
	for (size_t i = 0; i < g->f->n_interfaces; i++)
		gen_iface_header(g, &g->f->interfaces[i]);
	fprintf(g->out, "#ifdef __cplusplus\n}\n#endif\n\n#endif\n");
	return ferror(g->out) ? -1 : 0;
}
