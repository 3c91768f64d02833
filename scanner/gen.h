/* SPDX-License-Identifier: MIT */
/* What the two generators (the header and the C file) share. */
#ifndef PIER_SCANNER_GEN_H
#define PIER_SCANNER_GEN_H

#include <stdio.h>

#include "ast.h"

/* A C type the generated code defines: a struct or enum of the file, the
 * struct of a tuple or struct variant's data, or a list or option type. */
enum ctype_kind { CT_DEF, CT_VARIANT, CT_COMPOUND };

struct ctype {
	enum ctype_kind kind;
	const char *name;            /* its C tag: camera_image */
	const struct typedef_ *def;  /* CT_DEF; CT_VARIANT: the enum */
	const struct variant *v;     /* CT_VARIANT */
	const struct typeref *t;     /* CT_COMPOUND: the list or option */
	int state;                   /* for ordering */
};

struct gen {
	FILE *out;
	struct arena *a;
	const struct file *f;
	const char *prefix;
	const char *source;   /* the interface file, as named on the command line */
	const char *header;   /* what the C file includes */
	struct ctype *types;  /* every C type, in an order C can define them in */
	size_t n_types;
};

/* Fills g->types. */
void gen_collect(struct gen *g);

/* Writes doc as a C comment, each line after indent ("" or "\t"). */
void gen_doc(struct gen *g, const char *doc, const char *indent);

/* The descriptor (struct pier_type) of a type, for the C file. */
const char *gen_descriptor(struct gen *g, const struct typeref *t);

int gen_header(struct gen *g);
int gen_code(struct gen *g);

/* An interface's client and server: declared in the header, defined in
 * the C file. */
void gen_iface_header(struct gen *g, const struct interface *in);
void gen_iface_code(struct gen *g, const struct interface *in);

/* The names one interface's code is written with. */
struct inames {
	const char *i; /* camera */
	const char *I; /* CAMERA */
};

struct inames inames(struct gen *g, const struct interface *in);
/* name in snake case (RecordState -> record_state). */
const char *snake(struct gen *g, const char *name);
/* ", TYPE const *name" (param_in) or ", TYPE *name" (param_out): a value
 * parameter of type t, or "" for (), which is no parameter. */
const char *param_in(struct gen *g, const struct typeref *t, const char *name);
const char *param_out(struct gen *g, const struct typeref *t, const char *name);
/* Writes s as a C string literal, or NULL without quotes when s is. */
void gen_c_string(struct gen *g, const char *s);
/* Writes s (not NULL) as adjacent C string literals, one per line of it,
 * each after indent, the first without a newline before it. */
void gen_c_lines(struct gen *g, const char *s, const char *indent);

#endif
