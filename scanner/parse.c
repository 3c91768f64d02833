/* SPDX-License-Identifier: MIT */
/*
 * The parser: recursive descent over the grammar of pier-interface(5),
 * which is the body of fizyr-rpc's interface! macro plus Rust's struct and
 * enum definitions.  It stops at the first syntax error; the checker
 * (check.c) finds everything else.
 */
#include "config.h"

#include <string.h>

#include "lex.h"

struct parser {
	struct lexer lx;
	struct arena *a;
	struct diag *d;
	struct token tok;   /* the current token */
	struct file *f;
};

/* What an item's attributes said. */
struct attrs {
	const char *doc;    /* NULL if none */
	bool hidden;
	struct pos hidden_pos;
	struct pos first;   /* of the first attribute */
	bool any;
};

static int next(struct parser *p)
{
	return lex_next(&p->lx, &p->tok);
}

static bool is(const struct parser *p, enum tok kind)
{
	return p->tok.kind == kind;
}

static bool is_word(const struct parser *p, const char *word)
{
	return p->tok.kind == TOK_IDENT && strlen(word) == p->tok.len &&
	       !memcmp(word, p->tok.text, p->tok.len);
}

/* The current token as an error message shows it. */
static const char *found(struct parser *p)
{
	switch (p->tok.kind) {
	case TOK_IDENT:
	case TOK_OTHER:
	case TOK_INT:
		return arena_printf(p->a, "`%.*s`", (int)(p->tok.kind == TOK_OTHER ? 1 : p->tok.len),
				    p->tok.text);
	default:
		return tok_name(p->tok.kind);
	}
}

static int expected(struct parser *p, const char *what)
{
	diag_error(p->d, p->tok.pos, "expected %s, found %s", what, found(p));
	return -1;
}

static int expect(struct parser *p, enum tok kind)
{
	if (!is(p, kind))
		return expected(p, tok_name(kind));
	return next(p);
}

static int ident(struct parser *p, const char *what, const char **name, struct pos *pos)
{
	if (!is(p, TOK_IDENT))
		return expected(p, what);
	*name = arena_strndup(p->a, p->tok.text, p->tok.len);
	*pos = p->tok.pos;
	return next(p);
}

/* --- attributes -------------------------------------------------------------- */

/* The doc text of an item, as fizyr-rpc makes it: each line without the
 * leading spaces all its non-blank lines share, each ending in "\n". */
static const char *doc_text(struct parser *p, const char **lines, size_t n)
{
	size_t common = (size_t)-1, total = 0, len = 0;
	char *doc;

	for (size_t i = 0; i < n; i++) {
		size_t spaces = strspn(lines[i], " ");

		if (lines[i][spaces] && spaces < common)
			common = spaces;
		total += strlen(lines[i]) + 1;
	}
	doc = arena_alloc(p->a, total + 1);
	for (size_t i = 0; i < n; i++) {
		if (lines[i][strspn(lines[i], " ")]) {
			strcpy(doc + len, lines[i] + common);
			len += strlen(lines[i] + common);
		}
		doc[len++] = '\n';
	}
	return doc;
}

static int attribute(struct parser *p, struct attrs *at, const char ***lines, size_t *n)
{
	struct pos pos;

	if (next(p) < 0 || expect(p, TOK_LBRACKET) < 0)
		return -1;
	pos = p->tok.pos;
	if (is_word(p, "doc")) {
		if (next(p) < 0 || expect(p, TOK_EQ) < 0)
			return -1;
		if (!is(p, TOK_STRING))
			return expected(p, "a string");
		*ARENA_PUSH(p->a, *lines, *n) = p->tok.text;
		if (next(p) < 0)
			return -1;
	} else if (is_word(p, "hidden")) {
		if (next(p) < 0)
			return -1;
		if (!is(p, TOK_RBRACKET)) {
			diag_error(p->d, p->tok.pos, "`hidden` takes no value");
			return -1;
		}
		at->hidden = true;
		at->hidden_pos = pos;
	} else if (is(p, TOK_IDENT)) {
		diag_error(p->d, pos, "unknown attribute `%.*s`", (int)p->tok.len, p->tok.text);
		return -1;
	} else {
		return expected(p, "an attribute");
	}
	return expect(p, TOK_RBRACKET);
}

static int attributes(struct parser *p, struct attrs *at)
{
	const char **lines = NULL;
	size_t n = 0;

	memset(at, 0, sizeof(*at));
	at->first = p->tok.pos;
	while (is(p, TOK_DOC) || is(p, TOK_HASH)) {
		at->any = true;
		if (is(p, TOK_DOC)) {
			*ARENA_PUSH(p->a, lines, n) = p->tok.text;
			if (next(p) < 0)
				return -1;
		} else if (attribute(p, at, &lines, &n) < 0) {
			return -1;
		}
	}
	if (n)
		at->doc = doc_text(p, lines, n);
	return 0;
}

/* Attributes before something that is not an item. */
static int stray_attributes(struct parser *p, const struct attrs *at)
{
	diag_error(p->d, at->first, "doc comment or attribute not followed by an item");
	return -1;
}

static int no_hidden(struct parser *p, const struct attrs *at, const char *what)
{
	if (!at->hidden)
		return 0;
	diag_error(p->d, at->hidden_pos,
		   "`#[hidden]` is for interfaces, services, updates and streams, not %s", what);
	return -1;
}

/* --- types ------------------------------------------------------------------- */

static const struct {
	const char *name;
	enum tkind kind;
} builtin[] = {
	{ "bool", TK_BOOL }, { "i8", TK_I8 }, { "i16", TK_I16 }, { "i32", TK_I32 },
	{ "i64", TK_I64 }, { "u8", TK_U8 }, { "u16", TK_U16 }, { "u32", TK_U32 },
	{ "u64", TK_U64 }, { "f32", TK_F32 }, { "f64", TK_F64 }, { "String", TK_STRING },
	{ "fd", TK_FD },
};

static const struct {
	const char *name;
	const char *why;
} unsupported[] = {
	{ "usize", "has no fixed size: use u64" },
	{ "isize", "has no fixed size: use i64" },
	{ "u128", "is not supported: 64 bits at most" },
	{ "i128", "is not supported: 64 bits at most" },
	{ "char", "is not supported: use String" },
	{ "str", "is not supported: use String" },
	{ "Box", "is not supported: a field holds its value, and Vec makes recursion" },
};

static int type(struct parser *p, struct typeref **out);

/* After Vec or Option: "<" type ">". */
static int type_argument(struct parser *p, const char *name, struct typeref *t)
{
	if (!is(p, TOK_LT))
		return expected(p, arena_printf(p->a, "`<` after `%s`", name));
	if (next(p) < 0 || type(p, &t->item) < 0)
		return -1;
	return expect(p, TOK_GT);
}

static int named_type(struct parser *p, struct typeref *t)
{
	const char *name = arena_strndup(p->a, p->tok.text, p->tok.len);

	if (next(p) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		if (!strcmp(builtin[i].name, name))
			t->kind = builtin[i].kind;
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		if (!strcmp(unsupported[i].name, name)) {
			diag_error(p->d, t->pos, "`%s` %s", name, unsupported[i].why);
			return -1;
		}
	}
	if (!strcmp(name, "Vec") || !strcmp(name, "Option")) {
		t->kind = name[0] == 'V' ? TK_LIST : TK_OPTION;
		if (type_argument(p, name, t) < 0)
			return -1;
		if (t->kind == TK_LIST && t->item->kind == TK_U8)
			t->kind = TK_BYTES; /* Vec<u8>: a byte array */
		return 0;
	}
	if (t->kind == TK_UNIT)
		t->kind = TK_NAMED;
	t->name = name;
	if (is(p, TOK_LT)) {
		diag_error(p->d, p->tok.pos, "type `%s` takes no parameters", name);
		return -1;
	}
	if (is(p, TOK_COLON) && p->lx.p < p->lx.end && *p->lx.p == ':') {
		diag_error(p->d, t->pos, "paths (`%s::...`) are not supported: every type is in "
			   "this file", name);
		return -1;
	}
	return 0;
}

static int type(struct parser *p, struct typeref **out)
{
	struct typeref *t = arena_alloc(p->a, sizeof(*t));

	*out = t;
	t->pos = p->tok.pos;
	if (is(p, TOK_LPAREN)) {
		t->kind = TK_UNIT;
		if (next(p) < 0)
			return -1;
		if (!is(p, TOK_RPAREN)) {
			diag_error(p->d, t->pos, "tuples are not supported, only `()`");
			return -1;
		}
		return next(p);
	}
	if (is(p, TOK_IDENT))
		return named_type(p, t);
	return expected(p, "a type");
}

/* --- ids ---------------------------------------------------------------------- */

#define ID_MAX 2147483647 /* service ids are i32; -1 marks error responses */

static int service_id(struct parser *p, int32_t *id, struct pos *pos)
{
	*pos = p->tok.pos;
	if (is(p, TOK_MINUS)) {
		if (next(p) < 0)
			return -1;
		if (!is(p, TOK_INT))
			return expected(p, "a service id");
		diag_error(p->d, *pos, "service id -%.*s is out of range (0 to %d)",
			   (int)(p->lx.p - p->tok.text), p->tok.text, ID_MAX);
		return -1;
	}
	if (!is(p, TOK_INT))
		return expected(p, "a service id");
	if (p->tok.overflow || p->tok.value > ID_MAX) {
		diag_error(p->d, *pos, "service id %.*s is out of range (0 to %d)",
			   (int)(p->lx.p - p->tok.text), p->tok.text, ID_MAX);
		return -1;
	}
	*id = (int32_t)p->tok.value;
	return next(p);
}

/* --- structs and enums ------------------------------------------------------- */

/* One "name: type" with its attributes; pub is allowed, as in Rust. */
static int field(struct parser *p, struct field *f)
{
	struct attrs at;

	if (attributes(p, &at) < 0 || no_hidden(p, &at, "fields") < 0)
		return -1;
	if (!is(p, TOK_IDENT) && at.any)
		return stray_attributes(p, &at);
	if (is_word(p, "pub") && next(p) < 0)
		return -1;
	f->doc = at.doc;
	if (ident(p, "a field name", &f->name, &f->pos) < 0 || expect(p, TOK_COLON) < 0)
		return -1;
	return type(p, &f->type);
}

/* "{" fields, separated by commas (one at the end is allowed) "}". */
static int fields(struct parser *p, struct field **out, size_t *n)
{
	if (expect(p, TOK_LBRACE) < 0)
		return -1;
	while (!is(p, TOK_RBRACE)) {
		if (field(p, ARENA_PUSH(p->a, *out, *n)) < 0)
			return -1;
		if (is(p, TOK_COMMA)) {
			if (next(p) < 0)
				return -1;
		} else if (!is(p, TOK_RBRACE)) {
			return expected(p, "`,` or `}`");
		}
	}
	return next(p);
}

static int tuple_fields(struct parser *p, struct variant *v)
{
	struct pos open = p->tok.pos;

	if (next(p) < 0)
		return -1;
	while (!is(p, TOK_RPAREN)) {
		struct field *f = ARENA_PUSH(p->a, v->fields, v->n_fields);

		f->name = arena_printf(p->a, "%zu", v->n_fields - 1);
		f->pos = p->tok.pos;
		if (type(p, &f->type) < 0)
			return -1;
		if (is(p, TOK_COMMA)) {
			if (next(p) < 0)
				return -1;
		} else if (!is(p, TOK_RPAREN)) {
			return expected(p, "`,` or `)`");
		}
	}
	if (v->n_fields == 0) {
		diag_error(p->d, open, "variant `%s` has no data: write `%s` without `()`",
			   v->name, v->name);
		return -1;
	}
	v->kind = v->n_fields == 1 ? V_NEWTYPE : V_TUPLE;
	return next(p);
}

static int variant(struct parser *p, struct variant *v)
{
	struct attrs at;

	if (attributes(p, &at) < 0 || no_hidden(p, &at, "variants") < 0)
		return -1;
	if (!is(p, TOK_IDENT) && at.any)
		return stray_attributes(p, &at);
	v->doc = at.doc;
	if (ident(p, "a variant name", &v->name, &v->pos) < 0)
		return -1;
	if (is(p, TOK_LPAREN))
		return tuple_fields(p, v);
	if (is(p, TOK_LBRACE)) {
		struct pos open = p->tok.pos;

		v->kind = V_STRUCT;
		if (fields(p, &v->fields, &v->n_fields) < 0)
			return -1;
		if (v->n_fields == 0) {
			diag_error(p->d, open, "variant `%s` has no fields: write `%s` without `{}`",
				   v->name, v->name);
			return -1;
		}
		return 0;
	}
	if (is(p, TOK_EQ)) {
		diag_error(p->d, p->tok.pos, "explicit discriminants are not supported: a "
			   "variant is written by its name");
		return -1;
	}
	v->kind = V_UNIT;
	return 0;
}

static int struct_def(struct parser *p, struct typedef_ *t)
{
	t->kind = D_STRUCT;
	if (next(p) < 0 || ident(p, "a struct name", &t->name, &t->pos) < 0)
		return -1;
	if (is(p, TOK_SEMI) || is(p, TOK_LPAREN)) {
		diag_error(p->d, p->tok.pos, "only structs with named fields are supported: "
			   "`struct %s { ... }`", t->name);
		return -1;
	}
	if (is(p, TOK_LT)) {
		diag_error(p->d, p->tok.pos, "generic types are not supported");
		return -1;
	}
	return fields(p, &t->fields, &t->n_fields);
}

static int enum_def(struct parser *p, struct typedef_ *t)
{
	t->kind = D_ENUM;
	if (next(p) < 0 || ident(p, "an enum name", &t->name, &t->pos) < 0)
		return -1;
	if (is(p, TOK_LT)) {
		diag_error(p->d, p->tok.pos, "generic types are not supported");
		return -1;
	}
	if (expect(p, TOK_LBRACE) < 0)
		return -1;
	while (!is(p, TOK_RBRACE)) {
		if (variant(p, ARENA_PUSH(p->a, t->variants, t->n_variants)) < 0)
			return -1;
		if (is(p, TOK_COMMA)) {
			if (next(p) < 0)
				return -1;
		} else if (!is(p, TOK_RBRACE)) {
			return expected(p, "`,` or `}`");
		}
	}
	return next(p);
}

/* --- interfaces ---------------------------------------------------------------- */

/* "id name: type", shared by updates and streams. */
static int message(struct parser *p, const struct attrs *at, struct message *m)
{
	m->doc = at->doc;
	m->hidden = at->hidden;
	if (next(p) < 0 || service_id(p, &m->id, &m->id_pos) < 0 ||
	    ident(p, "a name", &m->name, &m->pos) < 0 || expect(p, TOK_COLON) < 0)
		return -1;
	return type(p, &m->body);
}

static int updates(struct parser *p, struct service *s)
{
	if (next(p) < 0)
		return -1;
	while (!is(p, TOK_RBRACE)) {
		struct attrs at;
		struct message *m;

		if (attributes(p, &at) < 0)
			return -1;
		if (is_word(p, "request_update"))
			m = ARENA_PUSH(p->a, s->request_updates, s->n_request_updates);
		else if (is_word(p, "response_update"))
			m = ARENA_PUSH(p->a, s->response_updates, s->n_response_updates);
		else if (at.any && is(p, TOK_RBRACE))
			return stray_attributes(p, &at);
		else
			return expected(p, "`request_update` or `response_update`");
		if (message(p, &at, m) < 0)
			return -1;
		if (is(p, TOK_COMMA)) {
			if (next(p) < 0)
				return -1;
		} else if (!is(p, TOK_RBRACE)) {
			return expected(p, "`,` or `}`");
		}
	}
	return next(p);
}

static int service(struct parser *p, const struct attrs *at, struct service *s)
{
	s->doc = at->doc;
	s->hidden = at->hidden;
	if (next(p) < 0 || service_id(p, &s->id, &s->id_pos) < 0 ||
	    ident(p, "a service name", &s->name, &s->pos) < 0 || expect(p, TOK_COLON) < 0 ||
	    type(p, &s->request) < 0 || expect(p, TOK_ARROW) < 0 || type(p, &s->response) < 0)
		return -1;
	if (is(p, TOK_COMMA))
		return next(p);
	if (!is(p, TOK_LBRACE))
		return expected(p, "`,` or `{`");
	if (updates(p, s) < 0)
		return -1;
	/* after the updates' braces, the comma is optional (as in fizyr-rpc) */
	if (is(p, TOK_COMMA))
		return next(p);
	return 0;
}

static int interface(struct parser *p, const struct attrs *at, struct interface *i)
{
	i->doc = at->doc;
	i->hidden = at->hidden;
	if (next(p) < 0 || ident(p, "an interface name", &i->name, &i->pos) < 0 ||
	    expect(p, TOK_LBRACE) < 0)
		return -1;
	while (!is(p, TOK_RBRACE)) {
		struct attrs item;

		if (attributes(p, &item) < 0)
			return -1;
		if (is_word(p, "service")) {
			if (service(p, &item, ARENA_PUSH(p->a, i->services, i->n_services)) < 0)
				return -1;
		} else if (is_word(p, "stream")) {
			if (message(p, &item, ARENA_PUSH(p->a, i->streams, i->n_streams)) < 0)
				return -1;
			/* a stream always ends in a comma, as in fizyr-rpc */
			if (expect(p, TOK_COMMA) < 0)
				return -1;
		} else if (item.any && is(p, TOK_RBRACE)) {
			return stray_attributes(p, &item);
		} else {
			return expected(p, "`service` or `stream`");
		}
	}
	return next(p);
}

static int item(struct parser *p)
{
	struct attrs at;

	if (attributes(p, &at) < 0)
		return -1;
	if (at.any && is(p, TOK_EOF))
		return stray_attributes(p, &at);
	if (is_word(p, "pub") && next(p) < 0)
		return -1;
	if (is_word(p, "interface"))
		return interface(p, &at, ARENA_PUSH(p->a, p->f->interfaces, p->f->n_interfaces));
	if (no_hidden(p, &at, "types") < 0)
		return -1;
	if (is_word(p, "struct") || is_word(p, "enum")) {
		struct typedef_ *t = ARENA_PUSH(p->a, p->f->types, p->f->n_types);

		t->doc = at.doc;
		return is_word(p, "struct") ? struct_def(p, t) : enum_def(p, t);
	}
	return expected(p, "`interface`, `struct` or `enum`");
}

int parse_file(struct arena *a, struct diag *d, const char *text, size_t len, struct file *f)
{
	struct parser p = { .a = a, .d = d, .f = f };

	lex_init(&p.lx, a, d, text, len);
	if (next(&p) < 0)
		return -1;
	while (!is(&p, TOK_EOF))
		if (item(&p) < 0)
			return -1;
	return 0;
}
