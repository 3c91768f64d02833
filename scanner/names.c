/* SPDX-License-Identifier: MIT */
/* Naming: snake_case C names from Rust's CamelCase, and the names of the
 * types the generated code declares. */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include "names.h"

char *c_snake(struct arena *a, const char *name)
{
	size_t n = strlen(name), len = 0;
	char *out = arena_alloc(a, 2 * n + 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (isupper(c) && i > 0 && name[i - 1] != '_' &&
		    (islower((unsigned char)name[i - 1]) || isdigit((unsigned char)name[i - 1]) ||
		     (i + 1 < n && islower((unsigned char)name[i + 1]))))
			out[len++] = '_';
		out[len++] = (char)tolower(c);
	}
	return out;
}

char *c_upper(struct arena *a, const char *name)
{
	char *out = arena_strndup(a, name, strlen(name));

	for (char *s = out; *s; s++)
		*s = (char)toupper((unsigned char)*s);
	return out;
}

bool c_reserved(const char *name)
{
	static const char *const words[] = {
		"auto", "bool", "break", "case", "char", "const", "constexpr", "continue",
		"default", "do", "double", "else", "enum", "extern", "false", "float", "for",
		"goto", "if", "inline", "int", "long", "nullptr", "register", "restrict",
		"return", "short", "signed", "sizeof", "static", "static_assert", "struct",
		"switch", "thread_local", "true", "typedef", "typeof", "typeof_unqual", "union",
		"unsigned", "void", "volatile", "while", "alignas", "alignof",
		/* macros: of the C library, and GNU C's predefined ones */
		"errno", "unix", "linux", "i386",
	};

	if (name[0] == '_' && (isupper((unsigned char)name[1]) || name[1] == '_'))
		return true;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (!strcmp(words[i], name))
			return true;
	return false;
}

static const char *const builtin_names[] = {
	[TK_UNIT] = "()", [TK_BOOL] = "bool",
	[TK_I8] = "i8", [TK_I16] = "i16", [TK_I32] = "i32", [TK_I64] = "i64",
	[TK_U8] = "u8", [TK_U16] = "u16", [TK_U32] = "u32", [TK_U64] = "u64",
	[TK_F32] = "f32", [TK_F64] = "f64",
	[TK_STRING] = "String", [TK_BYTES] = "Vec<u8>", [TK_FD] = "fd",
};

char *type_spelling(struct arena *a, const struct typeref *t)
{
	switch (t->kind) {
	case TK_LIST: return arena_printf(a, "Vec<%s>", type_spelling(a, t->item));
	case TK_OPTION: return arena_printf(a, "Option<%s>", type_spelling(a, t->item));
	case TK_NAMED: return arena_strndup(a, t->name, strlen(t->name));
	default: return arena_strndup(a, builtin_names[t->kind], strlen(builtin_names[t->kind]));
	}
}

char *type_mangled(struct arena *a, const struct typeref *t)
{
	switch (t->kind) {
	case TK_UNIT: return arena_printf(a, "unit");
	case TK_STRING: return arena_printf(a, "string");
	case TK_BYTES: return arena_printf(a, "bytes");
	case TK_LIST: return arena_printf(a, "list_%s", type_mangled(a, t->item));
	case TK_OPTION: return arena_printf(a, "option_%s", type_mangled(a, t->item));
	case TK_NAMED: return c_snake(a, t->name);
	default: return arena_printf(a, "%s", builtin_names[t->kind]);
	}
}

char *c_compound_name(struct arena *a, const char *prefix, const struct typeref *t)
{
	return arena_printf(a, "%s_%s", prefix, type_mangled(a, t));
}

char *c_def_name(struct arena *a, const char *prefix, const struct typedef_ *d)
{
	return arena_printf(a, "%s_%s", prefix, c_snake(a, d->name));
}

char *c_variant_struct(struct arena *a, const char *prefix, const struct typedef_ *d,
		       const struct variant *v)
{
	return arena_printf(a, "%s_%s", c_def_name(a, prefix, d), c_snake(a, v->name));
}

char *c_type(struct arena *a, const char *prefix, const struct typeref *t)
{
	static const char *const ctypes[] = {
		[TK_UNIT] = "struct pier_unit", [TK_BOOL] = "bool",
		[TK_I8] = "int8_t", [TK_I16] = "int16_t", [TK_I32] = "int32_t", [TK_I64] = "int64_t",
		[TK_U8] = "uint8_t", [TK_U16] = "uint16_t", [TK_U32] = "uint32_t",
		[TK_U64] = "uint64_t", [TK_F32] = "float", [TK_F64] = "double",
		[TK_STRING] = "char *", [TK_BYTES] = "struct pier_bytes", [TK_FD] = "int",
	};

	switch (t->kind) {
	case TK_LIST:
	case TK_OPTION:
		return arena_printf(a, "struct %s", c_compound_name(a, prefix, t));
	case TK_NAMED:
		return arena_printf(a, "%s %s", t->def->kind == D_ENUM && t->def->unit_only ?
				    "enum" : "struct", c_def_name(a, prefix, t->def));
	default:
		return arena_printf(a, "%s", ctypes[t->kind]);
	}
}

char *prefix_from_path(struct arena *a, const char *path)
{
	const char *base = strrchr(path, '/');
	size_t n;
	char *out;

	base = base ? base + 1 : path;
	n = strcspn(base, ".");
	if (n == 0)
		return NULL;
	out = arena_strndup(a, base, n);
	for (char *s = out; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			*s = '_';
	return isalpha((unsigned char)out[0]) ? out : NULL;
}
