/* SPDX-License-Identifier: MIT */
/*
 * pier-scanner's view of an interface file (pier-interface(5)): what the
 * parser builds, the checker resolves and verifies, and the generators
 * write out.  Everything lives in one arena, freed at once.
 */
#ifndef PIER_SCANNER_AST_H
#define PIER_SCANNER_AST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- memory ---------------------------------------------------------------- */

struct arena {
	struct arena_block *blocks;
};

/* Zeroed memory that lives until arena_free(); aborts when out of memory
 * (a code generator has nothing better to do). */
void *arena_alloc(struct arena *a, size_t size);
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void arena_free(struct arena *a);
/* Says so and aborts: what running out of memory does to the scanner. */
void arena_oom(void) __attribute__((noreturn));

/* Appends one element to a growing array: *items holds *n of size each. */
void *arena_push(struct arena *a, void *items_ptr, size_t *n, size_t size);
#define ARENA_PUSH(a, items, n) ((__typeof__(items))arena_push((a), &(items), &(n), sizeof(*(items))))

/* --- positions and errors -------------------------------------------------- */

/* A place in the file: line and column count from 1; a column counts
 * bytes (a tab is one). */
struct pos {
	int line, col;
};

/* Errors, each "file:line:col: message\n", in the order found. */
struct diag {
	const char *file;
	char *text; /* malloc'd */
	size_t len;
	unsigned int count;
};

void diag_error(struct diag *d, struct pos pos, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void diag_free(struct diag *d);

/* --- the file -------------------------------------------------------------- */

enum tkind {
	TK_UNIT, TK_BOOL,
	TK_I8, TK_I16, TK_I32, TK_I64,
	TK_U8, TK_U16, TK_U32, TK_U64,
	TK_F32, TK_F64,
	TK_STRING, TK_BYTES, TK_FD,
	TK_LIST, TK_OPTION, TK_NAMED,
};

struct typedef_;

/* A type as written where it is used. */
struct typeref {
	enum tkind kind;
	struct pos pos;
	struct typeref *item;   /* TK_LIST, TK_OPTION */
	const char *name;       /* TK_NAMED: as written */
	struct typedef_ *def;   /* TK_NAMED: set by the checker */
};

struct field {
	const char *name;       /* "0", "1"... in a tuple variant */
	struct pos pos;
	const char *doc;
	struct typeref *type;
};

enum variant_kind { V_UNIT, V_NEWTYPE, V_TUPLE, V_STRUCT };

struct variant {
	const char *name;
	struct pos pos;
	const char *doc;
	enum variant_kind kind;
	struct field *fields;   /* V_NEWTYPE: one; V_TUPLE, V_STRUCT: the fields */
	size_t n_fields;
};

enum def_kind { D_STRUCT, D_ENUM };

struct typedef_ {
	enum def_kind kind;
	const char *name;
	struct pos pos;
	const char *doc;
	struct field *fields;     /* D_STRUCT */
	size_t n_fields;
	struct variant *variants; /* D_ENUM */
	size_t n_variants;
	/* set by the checker */
	size_t fds;               /* fds a value carries */
	bool unit_only;           /* an enum of unit variants: a plain C enum */
	int visit;                /* for finding types that contain themselves */
};

/* An update or a stream message: an id, a name, a body. */
struct message {
	const char *name;
	struct pos pos;
	int32_t id;
	struct pos id_pos;
	const char *doc;
	bool hidden;
	struct typeref *body;
};

struct service {
	const char *name;
	struct pos pos;
	int32_t id;
	struct pos id_pos;
	const char *doc;
	bool hidden;
	struct typeref *request, *response;
	struct message *request_updates;
	size_t n_request_updates;
	struct message *response_updates;
	size_t n_response_updates;
};

struct interface {
	const char *name;
	struct pos pos;
	const char *doc;
	bool hidden;
	struct service *services;
	size_t n_services;
	struct message *streams;
	size_t n_streams;
};

struct file {
	const char *path;
	struct interface *interfaces;
	size_t n_interfaces;
	struct typedef_ *types;
	size_t n_types;
};

/* Calls fn(ctx, t) for the type t of each request, response, update and
 * stream body of in, in order. */
void interface_bodies(const struct interface *in, void (*fn)(void *ctx, const struct typeref *t),
		      void *ctx);

/* Parses text (len bytes; it need not end in NUL) into f, allocating in a.
 * Stops at the first syntax error: returns 0, or -1 with the error in d. */
int parse_file(struct arena *a, struct diag *d, const char *text, size_t len, struct file *f);

/* Resolves the type names of f and checks everything the grammar cannot,
 * the C names the generated code will declare (with prefix) included, or
 * not when prefix is NULL (a file read to call by, not to generate C
 * from): returns 0, or -1 with every error found in d. */
int check_file(struct arena *a, struct diag *d, struct file *f, const char *prefix);

#endif
