/* SPDX-License-Identifier: MIT */
/*
 * An interface as interface-file text: the interface, then every type it
 * uses (at any depth), in the order of the file, with their doc comments.
 * What introspection answers (pier_describe(3)), so it parses back into the
 * same interface: parse_file() and check_file() of it give the same ids,
 * names, types and docs.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "text.h"

struct text {
	struct arena *a;
	FILE *out;
	const struct file *f;
	bool *used; /* by index in f->types */
};

static void type(struct text *t, const struct typeref *r)
{
	fputs(type_spelling(t->a, r), t->out);
}

/* Whether doc reads back the same from /// lines: reading takes off the
 * indent all its non-blank lines share, and reads a line of blanks as
 * empty, so it must have a line that starts with no blank, and none of
 * blanks only. */
static bool doc_as_lines(const char *doc)
{
	bool flush = false;

	while (*doc) {
		size_t len = strcspn(doc, "\n"), blanks = strspn(doc, " \t");

		if (len && blanks >= len)
			return false;
		if (len && !blanks)
			flush = true;
		doc += len + (doc[len] == '\n');
	}
	return flush;
}

/* doc as one #[doc = "..."] attribute: it reads back whole (a doc
 * pier-scanner read ends in a newline, which reading adds again). */
static void doc_attribute(struct text *t, const char *doc, const char *indent)
{
	size_t len = strlen(doc);

	if (len && doc[len - 1] == '\n')
		len--;
	fprintf(t->out, "%s#[doc = \"", indent);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)doc[i];

		if (c == '"' || c == '\\')
			fprintf(t->out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", t->out);
		else if (c == '\t')
			fputs("\\t", t->out);
		else if (c == '\r')
			fputs("\\r", t->out);
		else if (c < 0x20 || c == 0x7f)
			fprintf(t->out, "\\u{%x}", c);
		else
			fputc(c, t->out);
	}
	fputs("\"]\n", t->out);
}

/* The doc comments of an item, after indent; then #[hidden]. */
static void attrs(struct text *t, const char *doc, bool hidden, const char *indent)
{
	if (doc && !doc_as_lines(doc)) {
		doc_attribute(t, doc, indent);
		doc = NULL;
	}
	while (doc && *doc) {
		const char *end = strchr(doc, '\n');
		size_t len = end ? (size_t)(end - doc) : strlen(doc);

		/* One space after the slashes, which reading takes off again
		 * with the indent all lines share. */
		fprintf(t->out, "%s///%s%.*s\n", indent, len ? " " : "", (int)len, doc);
		doc += len + (end != NULL);
	}
	if (hidden)
		fprintf(t->out, "%s#[hidden]\n", indent);
}

/* --- which types the interface uses ---------------------------------------------- */

static void use(struct text *t, const struct typeref *r);

static void use_fields(struct text *t, const struct field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		use(t, fields[i].type);
}

static void use(struct text *t, const struct typeref *r)
{
	const struct typedef_ *d;
	size_t i;

	if (r->kind == TK_LIST || r->kind == TK_OPTION) {
		use(t, r->item);
		return;
	}
	if (r->kind != TK_NAMED)
		return;
	d = r->def;
	i = (size_t)(d - t->f->types);
	if (t->used[i])
		return;
	t->used[i] = true;
	use_fields(t, d->fields, d->n_fields);
	for (size_t j = 0; j < d->n_variants; j++)
		use_fields(t, d->variants[j].fields, d->variants[j].n_fields);
}

static void use_body(void *t, const struct typeref *r)
{
	use(t, r);
}

/* --- writing ------------------------------------------------------------------------ */

static void message(struct text *t, const char *keyword, const struct message *m,
		    const char *indent)
{
	attrs(t, m->doc, m->hidden, indent);
	fprintf(t->out, "%s%s %d %s: ", indent, keyword, (int)m->id, m->name);
	type(t, m->body);
	fputs(",\n", t->out);
}

static void interface(struct text *t, const struct interface *in)
{
	attrs(t, in->doc, in->hidden, "");
	fprintf(t->out, "interface %s {\n", in->name);
	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];

		if (i)
			fputc('\n', t->out);
		attrs(t, s->doc, s->hidden, "\t");
		fprintf(t->out, "\tservice %d %s: ", (int)s->id, s->name);
		type(t, s->request);
		fputs(" -> ", t->out);
		type(t, s->response);
		if (!s->n_request_updates && !s->n_response_updates) {
			fputs(",\n", t->out);
			continue;
		}
		fputs(" {\n", t->out);
		for (size_t j = 0; j < s->n_request_updates; j++)
			message(t, "request_update", &s->request_updates[j], "\t\t");
		for (size_t j = 0; j < s->n_response_updates; j++)
			message(t, "response_update", &s->response_updates[j], "\t\t");
		fputs("\t},\n", t->out);
	}
	for (size_t i = 0; i < in->n_streams; i++) {
		if (i || in->n_services)
			fputc('\n', t->out);
		message(t, "stream", &in->streams[i], "\t");
	}
	fputs("}\n", t->out);
}

static void fields(struct text *t, const struct field *f, size_t n, const char *indent)
{
	for (size_t i = 0; i < n; i++) {
		attrs(t, f[i].doc, false, indent);
		fprintf(t->out, "%s%s: ", indent, f[i].name);
		type(t, f[i].type);
		fputs(",\n", t->out);
	}
}

static void typedef_(struct text *t, const struct typedef_ *d)
{
	fputc('\n', t->out);
	attrs(t, d->doc, false, "");
	if (d->kind == D_STRUCT) {
		fprintf(t->out, "struct %s {%s", d->name, d->n_fields ? "\n" : "");
		fields(t, d->fields, d->n_fields, "\t");
		fputs("}\n", t->out);
		return;
	}
	fprintf(t->out, "enum %s {\n", d->name);
	for (size_t i = 0; i < d->n_variants; i++) {
		const struct variant *v = &d->variants[i];

		attrs(t, v->doc, false, "\t");
		fprintf(t->out, "\t%s", v->name);
		switch (v->kind) {
		case V_UNIT:
			break;
		case V_NEWTYPE:
		case V_TUPLE:
			fputc('(', t->out);
			for (size_t j = 0; j < v->n_fields; j++) {
				if (j)
					fputs(", ", t->out);
				type(t, v->fields[j].type);
			}
			fputc(')', t->out);
			break;
		case V_STRUCT:
			fputs(" {\n", t->out);
			fields(t, v->fields, v->n_fields, "\t\t");
			fputs("\t}", t->out);
			break;
		}
		fputs(",\n", t->out);
	}
	fputs("}\n", t->out);
}

const char *text_of_interface(struct arena *a, const struct file *f, const struct interface *in)
{
	struct text t = { .a = a, .f = f, .used = arena_alloc(a, f->n_types * sizeof(*t.used)) };
	char *buf = NULL, *text;
	size_t len = 0;

	t.out = open_memstream(&buf, &len);
	if (!t.out)
		arena_oom();
	interface_bodies(in, use_body, &t);
	interface(&t, in);
	for (size_t i = 0; i < f->n_types; i++)
		if (t.used[i])
			typedef_(&t, &f->types[i]);
	if (fclose(t.out) != 0)
		arena_oom(); /* what a memory stream fails for */
	text = arena_strndup(a, buf, len);
	free(buf);
	return text;
}
