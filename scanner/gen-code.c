/* SPDX-License-Identifier: MIT */
/*
 * The generated C file: a description (struct pier_type) of every type,
 * static but for those the file names, which the library's typed-body
 * functions walk; and each named type's four functions, which call them.
 */
#include "config.h"

#include <string.h>

#include "gen.h"
#include "names.h"

static const char *const kind_names[] = {
	[TK_UNIT] = "UNIT", [TK_BOOL] = "BOOL",
	[TK_I8] = "I8", [TK_I16] = "I16", [TK_I32] = "I32", [TK_I64] = "I64",
	[TK_U8] = "U8", [TK_U16] = "U16", [TK_U32] = "U32", [TK_U64] = "U64",
	[TK_F32] = "F32", [TK_F64] = "F64",
	[TK_STRING] = "STRING", [TK_BYTES] = "BYTES", [TK_FD] = "FD",
};

static const char *const kind_ctypes[] = {
	[TK_UNIT] = "struct pier_unit", [TK_BOOL] = "bool",
	[TK_I8] = "int8_t", [TK_I16] = "int16_t", [TK_I32] = "int32_t", [TK_I64] = "int64_t",
	[TK_U8] = "uint8_t", [TK_U16] = "uint16_t", [TK_U32] = "uint32_t", [TK_U64] = "uint64_t",
	[TK_F32] = "float", [TK_F64] = "double",
	[TK_STRING] = "char *", [TK_BYTES] = "struct pier_bytes", [TK_FD] = "int",
};

/* The built-in types the file uses, each described once. */
struct used {
	bool kind[TK_FD + 1];
};

static void use(struct used *u, const struct typeref *t)
{
	if (t->kind == TK_LIST || t->kind == TK_OPTION)
		use(u, t->item);
	else if (t->kind <= TK_FD)
		u->kind[t->kind] = true;
}

static void use_body(void *u, const struct typeref *t)
{
	use(u, t);
}

static void use_fields(struct used *u, const struct field *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		use(u, f[i].type);
}

static void builtins(struct gen *g)
{
	struct used u = { { false } };
	const struct file *f = g->f;

	for (size_t i = 0; i < f->n_types; i++) {
		use_fields(&u, f->types[i].fields, f->types[i].n_fields);
		for (size_t j = 0; j < f->types[i].n_variants; j++)
			use_fields(&u, f->types[i].variants[j].fields, f->types[i].variants[j].n_fields);
	}
	for (size_t i = 0; i < g->n_types; i++)
		if (g->types[i].kind == CT_COMPOUND)
			use(&u, g->types[i].t);
	for (size_t i = 0; i < f->n_interfaces; i++)
		interface_bodies(&f->interfaces[i], use_body, &u);
	for (int k = 0; k <= TK_FD; k++) {
		struct typeref t = { .kind = (enum tkind)k };

		if (!u.kind[k])
			continue;
		fprintf(g->out, "PIER_GEN_STATIC const struct pier_type %s = {\n"
			"\t.kind = PIER_KIND_%s, .name = \"%s\", .size = sizeof(%s),%s\n};\n",
			gen_descriptor(g, &t), kind_names[k], type_spelling(g->a, &t), kind_ctypes[k],
			k == TK_FD ? " .fds = 1," : "");
	}
	fputc('\n', g->out);
}

/* Tentative definitions, so that descriptors can point to each other in
 * any order (a list of a struct that holds that list). */
static void declare_all(struct gen *g)
{
	for (size_t i = 0; i < g->n_types; i++) {
		const struct ctype *c = &g->types[i];

		if (c->kind == CT_DEF)
			continue; /* extern in the header */
		fprintf(g->out, "PIER_GEN_STATIC const struct pier_type %s__t_%s;\n", g->prefix,
			c->name + strlen(g->prefix) + 1);
	}
	fputc('\n', g->out);
}

static size_t fds_of(const struct typeref *t)
{
	return t->kind == TK_FD ? 1 : t->kind == TK_NAMED ? t->def->fds : 0;
}

/* The fields of a struct (or tuple), and returns their fds. */
static size_t field_table(struct gen *g, const char *table, const char *ctag,
			  const struct field *f, size_t n, bool tuple)
{
	size_t fds = 0;

	if (n == 0)
		return 0;
	fprintf(g->out, "static const struct pier_field %s[] = {\n", table);
	for (size_t i = 0; i < n; i++) {
		fprintf(g->out, "\t{ \"%s\", &%s, offsetof(struct %s, %s%s) },\n", f[i].name,
			gen_descriptor(g, f[i].type), ctag, tuple ? "_" : "", f[i].name);
		fds += fds_of(f[i].type);
	}
	fputs("};\n", g->out);
	return fds;
}

static void struct_type(struct gen *g, const char *object, bool is_static, const char *name,
			const char *ctag, const struct field *f, size_t n, bool tuple)
{
	const char *table = arena_printf(g->a, "%s_fields", object);
	size_t fds = field_table(g, table, ctag, f, n, tuple);

	fprintf(g->out, "%sconst struct pier_type %s = {\n"
		"\t.kind = PIER_KIND_%s, .name = \"%s\", .size = sizeof(struct %s),\n"
		"\t.fields = %s, .count = %zu, .fds = %zu,\n};\n\n",
		is_static ? "PIER_GEN_STATIC " : "", object, tuple ? "TUPLE" : "STRUCT", name, ctag,
		n ? table : "NULL", n, fds);
}

static void enum_type(struct gen *g, const struct typedef_ *d, const char *cname)
{
	const char *ctype = arena_printf(g->a, "%s %s", d->unit_only ? "enum" : "struct", cname);

	fprintf(g->out, "_Static_assert(sizeof(%s%s) == sizeof(unsigned int),\n"
		"\t       \"the library reads a tag as an unsigned int\");\n",
		d->unit_only ? ctype : "enum ", d->unit_only ? "" : arena_printf(g->a, "%s_tag", cname));
	fprintf(g->out, "static const struct pier_variant %s_variants[] = {\n", cname);
	for (size_t i = 0; i < d->n_variants; i++) {
		const struct variant *v = &d->variants[i];

		if (v->kind == V_UNIT)
			fprintf(g->out, "\t{ \"%s\", NULL, 0 },\n", v->name);
		else if (v->kind == V_NEWTYPE)
			fprintf(g->out, "\t{ \"%s\", &%s, offsetof(%s, %s) },\n", v->name,
				gen_descriptor(g, v->fields[0].type), ctype, c_snake(g->a, v->name));
		else
			fprintf(g->out, "\t{ \"%s\", &%s__t_%s, offsetof(%s, %s) },\n", v->name,
				g->prefix, c_variant_struct(g->a, g->prefix, d, v) +
				strlen(g->prefix) + 1, ctype, c_snake(g->a, v->name));
	}
	fprintf(g->out, "};\nconst struct pier_type %s_type = {\n"
		"\t.kind = PIER_KIND_ENUM, .name = \"%s\", .size = sizeof(%s),\n"
		"\t.variants = %s_variants, .count = %zu,\n};\n\n",
		cname, d->name, ctype, cname, d->n_variants);
}

static void compound_type(struct gen *g, const struct ctype *c)
{
	const char *object = gen_descriptor(g, c->t);

	if (c->t->kind == TK_LIST)
		fprintf(g->out, "_Static_assert(offsetof(struct %s, len) == sizeof(void *),\n"
			"\t       \"the library reads a list as { void *items; size_t len; }\");\n"
			"PIER_GEN_STATIC const struct pier_type %s = {\n"
			"\t.kind = PIER_KIND_LIST, .name = \"%s\", .size = sizeof(struct %s),\n"
			"\t.item = &%s,\n};\n\n",
			c->name, object, type_spelling(g->a, c->t), c->name,
			gen_descriptor(g, c->t->item));
	else
		fprintf(g->out, "PIER_GEN_STATIC const struct pier_type %s = {\n"
			"\t.kind = PIER_KIND_OPTION, .name = \"%s\", .size = sizeof(struct %s),\n"
			"\t.item = &%s, .item_offset = offsetof(struct %s, value),\n};\n\n",
			object, type_spelling(g->a, c->t), c->name, gen_descriptor(g, c->t->item),
			c->name);
}

static void describe(struct gen *g, const struct ctype *c)
{
	switch (c->kind) {
	case CT_DEF:
		if (c->def->kind == D_ENUM)
			enum_type(g, c->def, c->name);
		else
			struct_type(g, arena_printf(g->a, "%s_type", c->name), false, c->def->name,
				    c->name, c->def->fields, c->def->n_fields, false);
		return;
	case CT_VARIANT:
		struct_type(g, arena_printf(g->a, "%s__t_%s", g->prefix,
					    c->name + strlen(g->prefix) + 1),
			    true, arena_printf(g->a, "%s::%s", c->def->name, c->v->name), c->name,
			    c->v->fields, c->v->n_fields, c->v->kind == V_TUPLE);
		return;
	case CT_COMPOUND:
		compound_type(g, c);
		return;
	}
}

static void functions(struct gen *g, const struct typedef_ *d)
{
	const char *cname = c_def_name(g->a, g->prefix, d);
	const char *ctype = arena_printf(g->a, "%s %s",
					 d->kind == D_ENUM && d->unit_only ? "enum" : "struct", cname);

	fprintf(g->out,
		"void %s_init(%s *v)\n{\n\tpier_value_init(&%s_type, v);\n}\n\n"
		"void %s_free(%s *v)\n{\n\tpier_value_free(&%s_type, v);\n}\n\n"
		"int %s_encode(const %s *v, const struct pier_format *fmt,\n"
		"\t\tstruct pier_encoded *out, struct pier_value_error *err)\n"
		"{\n\treturn pier_encode(fmt, &%s_type, v, NULL, out, err);\n}\n\n"
		"int %s_decode(%s *v, const struct pier_format *fmt, const void *body, size_t len,\n"
		"\t\tint *fds, size_t n_fds, struct pier_value_error *err)\n"
		"{\n\treturn pier_decode(fmt, &%s_type, NULL, body, len, fds, n_fds, v, err);\n}\n\n",
		cname, ctype, cname, cname, ctype, cname, cname, ctype, cname, cname, ctype, cname);
}

int gen_code(struct gen *g)
{
	fprintf(g->out, "/* Generated by pier-scanner from %s: do not edit. */\n"
		"#include <errno.h>\n#include <stddef.h>\n#include <stdio.h>\n#include <stdlib.h>\n\n"
		"#include \"%s\"\n\n"
		"/* The descriptions of the types only message bodies use are for the\n"
		" * typed client and server. */\n"
		"#ifdef __GNUC__\n#define PIER_GEN_STATIC static __attribute__((unused))\n"
		"#else\n#define PIER_GEN_STATIC static\n#endif\n\n", g->source, g->header);
	builtins(g);
	declare_all(g);
	for (size_t i = 0; i < g->n_types; i++)
		describe(g, &g->types[i]);
	for (size_t i = 0; i < g->f->n_types; i++)
		functions(g, &g->f->types[i]);
	for (size_t i = 0; i < g->f->n_interfaces; i++)
		gen_iface_code(g, &g->f->interfaces[i]);
	return ferror(g->out) ? -1 : 0;
}
