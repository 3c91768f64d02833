/* SPDX-License-Identifier: MIT */
/*
 * The lexer: Rust's comments (// and nesting block comments), /// doc comments,
 * identifiers, integer literals (decimal, 0x, 0o, 0b, with _ and a type
 * suffix), string literals with Rust's escapes, and the punctuation an
 * interface file uses.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "lex.h"

void lex_init(struct lexer *lx, struct arena *a, struct diag *d, const char *text, size_t len)
{
	lx->a = a;
	lx->d = d;
	lx->p = text;
	lx->end = text + len;
	lx->line_start = text;
	lx->line = 1;
}

static struct pos here(const struct lexer *lx)
{
	return (struct pos){ lx->line, (int)(lx->p - lx->line_start) + 1 };
}

static int peek(const struct lexer *lx, size_t ahead)
{
	return lx->p + ahead < lx->end ? (unsigned char)lx->p[ahead] : -1;
}

static void newline(struct lexer *lx)
{
	lx->line++;
	lx->line_start = lx->p + 1;
}

/* After "/" "*": skips to the matching "*" "/" (they nest, as in Rust). */
static int block_comment(struct lexer *lx, struct pos start)
{
	int depth = 1;

	lx->p += 2;
	while (lx->p < lx->end) {
		if (peek(lx, 0) == '/' && peek(lx, 1) == '*') {
			depth++;
			lx->p += 2;
		} else if (peek(lx, 0) == '*' && peek(lx, 1) == '/') {
			lx->p += 2;
			if (--depth == 0)
				return 0;
		} else {
			if (*lx->p == '\n')
				newline(lx);
			lx->p++;
		}
	}
	diag_error(lx->d, start, "unterminated comment");
	return -1;
}

/* Skips blanks and comments; stops at a doc comment, which is a token. */
static int skip_space(struct lexer *lx)
{
	while (lx->p < lx->end) {
		int c = peek(lx, 0);
		struct pos start = here(lx);

		if (c == '\n') {
			newline(lx);
			lx->p++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			lx->p++;
		} else if (c == '/' && peek(lx, 1) == '/') {
			if (peek(lx, 2) == '/' && peek(lx, 3) != '/')
				return 0; /* a doc comment (//// is a plain one, as in Rust) */
			if (peek(lx, 2) == '!') {
				diag_error(lx->d, start, "inner doc comments (//!) are not supported: use ///");
				return -1;
			}
			while (lx->p < lx->end && *lx->p != '\n')
				lx->p++;
		} else if (c == '/' && peek(lx, 1) == '*') {
			if ((peek(lx, 2) == '*' && peek(lx, 3) != '*' && peek(lx, 3) != '/') ||
			    peek(lx, 2) == '!') {
				diag_error(lx->d, start,
					   "block doc comments (/** */, /*! */) are not supported: use ///");
				return -1;
			}
			if (block_comment(lx, start) < 0)
				return -1;
		} else {
			return 0;
		}
	}
	return 0;
}

static bool ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool ident_char(int c)
{
	return ident_start(c) || (c >= '0' && c <= '9');
}

static int digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return 99;
}

static int lex_int(struct lexer *lx, struct token *t)
{
	static const char *const suffixes[] = {
		"i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
	};
	unsigned int base = 10, digits = 0;
	const char *suffix;

	t->kind = TOK_INT;
	if (peek(lx, 0) == '0' && (peek(lx, 1) == 'x' || peek(lx, 1) == 'o' || peek(lx, 1) == 'b')) {
		base = peek(lx, 1) == 'x' ? 16 : peek(lx, 1) == 'o' ? 8 : 2;
		lx->p += 2;
	}
	for (; lx->p < lx->end; lx->p++) {
		int v = digit_value(peek(lx, 0));

		if (*lx->p == '_')
			continue;
		if (v >= (int)base)
			break;
		digits++;
		if (t->value > (UINT64_MAX - (uint64_t)v) / base)
			t->overflow = true;
		t->value = t->value * base + (uint64_t)v;
	}
	if (digits == 0) {
		diag_error(lx->d, t->pos, "an integer literal with no digits");
		return -1;
	}
	suffix = lx->p;
	while (lx->p < lx->end && ident_char(peek(lx, 0)))
		lx->p++;
	t->len = (size_t)(lx->p - t->text);
	if (lx->p == suffix)
		return 0;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (strlen(suffixes[i]) == (size_t)(lx->p - suffix) &&
		    !memcmp(suffixes[i], suffix, (size_t)(lx->p - suffix)))
			return 0;
	diag_error(lx->d, (struct pos){ t->pos.line, t->pos.col + (int)(suffix - t->text) },
		   "invalid suffix `%.*s` for an integer literal", (int)(lx->p - suffix), suffix);
	return -1;
}

/* Appends the UTF-8 encoding of c to out. */
static size_t put_utf8(char *out, uint32_t c)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | (c >> 6 & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3f));
	out[2] = (char)(0x80 | (c >> 6 & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/* After a backslash in a string: writes the character it stands for. */
static int escape(struct lexer *lx, char *out, size_t *n)
{
	struct pos at = here(lx);
	int c = peek(lx, 1);
	uint32_t v = 0;

	lx->p += 2;
	switch (c) {
	case 'n': out[(*n)++] = '\n'; return 0;
	case 'r': out[(*n)++] = '\r'; return 0;
	case 't': out[(*n)++] = '\t'; return 0;
	case '0': out[(*n)++] = '\0'; return 0;
	case '\\': case '\'': case '"': out[(*n)++] = (char)c; return 0;
	case '\n':
		/* a line continuation: the newline and the blanks after it go */
		lx->p--;
		while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' ||
					   *lx->p == '\r')) {
			if (*lx->p == '\n')
				newline(lx);
			lx->p++;
		}
		return 0;
	case 'x':
		if (digit_value(peek(lx, 0)) < 8 && digit_value(peek(lx, 1)) < 16) {
			out[(*n)++] = (char)(digit_value(peek(lx, 0)) * 16 + digit_value(peek(lx, 1)));
			lx->p += 2;
			return 0;
		}
		diag_error(lx->d, at, "\\x takes two hex digits, at most 7f");
		return -1;
	case 'u':
		if (peek(lx, 0) == '{') {
			int digits = 0;

			for (lx->p++; digit_value(peek(lx, 0)) < 16 && digits < 6; lx->p++, digits++)
				v = v * 16 + (uint32_t)digit_value(peek(lx, 0));
			if (digits && peek(lx, 0) == '}' && v <= 0x10ffff &&
			    (v < 0xd800 || v > 0xdfff)) {
				lx->p++;
				*n += put_utf8(out + *n, v);
				return 0;
			}
		}
		diag_error(lx->d, at, "\\u takes {1 to 6 hex digits} naming a Unicode scalar value");
		return -1;
	default:
		diag_error(lx->d, at, "unknown character escape `\\%c`", c > ' ' && c < 127 ? c : '?');
		return -1;
	}
}

static int lex_string(struct lexer *lx, struct token *t)
{
	/* The value is never longer than its source. */
	char *out = arena_alloc(lx->a, (size_t)(lx->end - lx->p) + 1);
	size_t n = 0;

	t->kind = TOK_STRING;
	lx->p++;
	while (lx->p < lx->end && *lx->p != '"') {
		if (*lx->p == '\\') {
			if (escape(lx, out, &n) < 0)
				return -1;
			continue;
		}
		if (*lx->p == '\n')
			newline(lx);
		out[n++] = *lx->p++;
	}
	if (lx->p == lx->end) {
		diag_error(lx->d, t->pos, "unterminated string");
		return -1;
	}
	lx->p++;
	t->text = out;
	t->len = n;
	return 0;
}

static int lex_doc(struct lexer *lx, struct token *t)
{
	const char *start;

	t->kind = TOK_DOC;
	lx->p += 3;
	start = lx->p;
	while (lx->p < lx->end && *lx->p != '\n')
		lx->p++;
	t->len = (size_t)(lx->p - start);
	if (t->len && start[t->len - 1] == '\r')
		t->len--;
	t->text = arena_strndup(lx->a, start, t->len);
	return 0;
}

static int punctuation(struct lexer *lx, struct token *t)
{
	static const struct {
		char c;
		enum tok kind;
	} one[] = {
		{ '{', TOK_LBRACE }, { '}', TOK_RBRACE }, { '(', TOK_LPAREN }, { ')', TOK_RPAREN },
		{ '[', TOK_LBRACKET }, { ']', TOK_RBRACKET }, { '<', TOK_LT }, { '>', TOK_GT },
		{ ',', TOK_COMMA }, { ':', TOK_COLON }, { ';', TOK_SEMI }, { '#', TOK_HASH },
		{ '=', TOK_EQ },
	};
	int c = peek(lx, 0);

	t->len = 1;
	if (c == '-' && peek(lx, 1) == '>') {
		t->kind = TOK_ARROW;
		t->len = 2;
		lx->p += 2;
		return 0;
	}
	if (c == '-') {
		t->kind = TOK_MINUS;
		lx->p++;
		return 0;
	}
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		if (one[i].c == c) {
			t->kind = one[i].kind;
			lx->p++;
			return 0;
		}
	}
	if (c > ' ' && c < 127) {
		t->kind = TOK_OTHER;
		lx->p++;
		return 0;
	}
	if (c >= 0x80) {
		/* show the whole UTF-8 sequence */
		size_t n = 1;

		while (n < 4 && (peek(lx, n) & 0xc0) == 0x80)
			n++;
		diag_error(lx->d, t->pos, "unexpected character `%.*s` (identifiers are ASCII)",
			   (int)n, lx->p);
	} else {
		diag_error(lx->d, t->pos, "unexpected character 0x%02x", c);
	}
	return -1;
}

int lex_next(struct lexer *lx, struct token *t)
{
	int c;

	if (skip_space(lx) < 0)
		return -1;
	memset(t, 0, sizeof(*t));
	t->pos = here(lx);
	t->text = lx->p;
	if (lx->p == lx->end) {
		t->kind = TOK_EOF;
		return 0;
	}
	c = peek(lx, 0);
	if (c == '/' && peek(lx, 1) == '/')
		return lex_doc(lx, t);
	if (ident_start(c)) {
		t->kind = TOK_IDENT;
		while (lx->p < lx->end && ident_char(peek(lx, 0)))
			lx->p++;
		t->len = (size_t)(lx->p - t->text);
		return 0;
	}
	if (c >= '0' && c <= '9')
		return lex_int(lx, t);
	if (c == '"')
		return lex_string(lx, t);
	return punctuation(lx, t);
}

const char *tok_name(enum tok kind)
{
	switch (kind) {
	case TOK_EOF: return "the end of the file";
	case TOK_IDENT: return "an identifier";
	case TOK_INT: return "an integer";
	case TOK_STRING: return "a string";
	case TOK_DOC: return "a doc comment";
	case TOK_LBRACE: return "`{`";
	case TOK_RBRACE: return "`}`";
	case TOK_LPAREN: return "`(`";
	case TOK_RPAREN: return "`)`";
	case TOK_LBRACKET: return "`[`";
	case TOK_RBRACKET: return "`]`";
	case TOK_LT: return "`<`";
	case TOK_GT: return "`>`";
	case TOK_COMMA: return "`,`";
	case TOK_COLON: return "`:`";
	case TOK_SEMI: return "`;`";
	case TOK_HASH: return "`#`";
	case TOK_EQ: return "`=`";
	case TOK_ARROW: return "`->`";
	case TOK_MINUS: return "`-`";
	case TOK_OTHER: return "punctuation";
	}
	return "a token";
}
