/* SPDX-License-Identifier: MIT */
/* The tokens of an interface file: Rust's, as far as the file uses them. */
#ifndef PIER_SCANNER_LEX_H
#define PIER_SCANNER_LEX_H

#include "ast.h"

enum tok {
	TOK_EOF,
	TOK_IDENT,
	TOK_INT,
	TOK_STRING,
	TOK_DOC,      /* a /// line: text is what follows the slashes */
	TOK_LBRACE, TOK_RBRACE,
	TOK_LPAREN, TOK_RPAREN,
	TOK_LBRACKET, TOK_RBRACKET,
	TOK_LT, TOK_GT,
	TOK_COMMA, TOK_COLON, TOK_SEMI, TOK_HASH, TOK_EQ,
	TOK_ARROW,    /* -> */
	TOK_MINUS,    /* a lone -: only ever an error, but a clear one */
	TOK_OTHER,    /* punctuation the file never uses (text tells which) */
};

struct token {
	enum tok kind;
	struct pos pos;
	const char *text;  /* IDENT, OTHER: the source; DOC, STRING: the value (arena) */
	size_t len;
	uint64_t value;    /* INT, when !overflow */
	bool overflow;     /* INT: beyond 64 bits */
};

struct lexer {
	struct arena *a;
	struct diag *d;
	const char *p, *end;
	const char *line_start;
	int line;
};

void lex_init(struct lexer *lx, struct arena *a, struct diag *d, const char *text, size_t len);

/* Reads the next token into t: 0, or -1 after reporting an error. */
int lex_next(struct lexer *lx, struct token *t);

/* The token kind as an error message names it ("`{`", "an identifier"). */
const char *tok_name(enum tok kind);

#endif
