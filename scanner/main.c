/* SPDX-License-Identifier: MIT */
/*
 * pier-scanner: reads an interface file (pier-interface(5)) and writes the
 * C header or the C file of its types, the way wayland-scanner is used:
 * one run per output, so that a Makefile rule makes each.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "names.h"

enum { EXIT_INPUT = 1, EXIT_USAGE = 2 };

static void usage(FILE *out)
{
	fputs("usage: pier-scanner [OPTION]... header|code|check [INPUT [OUTPUT]]\n"
	      "\n"
	      "Reads an interface file (pier-interface(5)) from INPUT (or standard input)\n"
	      "and writes, to OUTPUT (or standard output), the C header of its types\n"
	      "(header), or the C file that goes with it (code); check only checks it.\n"
	      "\n"
	      "  -p, --prefix=NAME   the prefix of every C name (default: INPUT's name\n"
	      "                      up to its first dot: camera.pier -> camera)\n"
	      "  -i, --include=FILE  the header the C file includes (default: OUTPUT\n"
	      "                      with .h for .c)\n"
	      "  -h, --help          show this and exit\n"
	      "  -v, --version       show the version and exit\n", out);
}

/* The whole of path ("-": standard input) in a malloc'd buffer. */
static char *read_all(const char *path, size_t *len)
{
	FILE *in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	size_t cap = 4096, n = 0;
	char *buf = NULL, *grown;

	if (!in)
		return NULL;
	do {
		if (!(grown = realloc(buf, cap *= 2))) {
			free(buf);
			buf = NULL;
			errno = ENOMEM;
			break;
		}
		buf = grown;
		n += fread(buf + n, 1, cap - n, in);
	} while (n == cap);
	if (buf && ferror(in)) {
		free(buf);
		buf = NULL;
	}
	if (in != stdin)
		fclose(in);
	*len = n;
	return buf;
}

/* The default include of the C file: OUTPUT's base name, .c made .h. */
static const char *default_include(struct arena *a, const char *output)
{
	const char *base;
	size_t n;

	if (!output || !strcmp(output, "-"))
		return NULL;
	base = strrchr(output, '/');
	base = base ? base + 1 : output;
	n = strlen(base);
	if (n < 3 || strcmp(base + n - 2, ".c"))
		return NULL;
	return arena_printf(a, "%.*s.h", (int)(n - 2), base);
}

struct options {
	const char *mode, *input, *output, *prefix, *include;
};

static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option longs[] = {
		{ "prefix", required_argument, NULL, 'p' },
		{ "include", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:i:hv", longs, NULL)) != -1) {
		switch (c) {
		case 'p': o->prefix = optarg; break;
		case 'i': o->include = optarg; break;
		case 'h': usage(stdout); exit(EXIT_SUCCESS);
		case 'v': puts("pier-scanner " PACKAGE_VERSION); exit(EXIT_SUCCESS);
		default: usage(stderr); return -1;
		}
	}
	if (optind >= argc || argc - optind > 3) {
		usage(stderr);
		return -1;
	}
	o->mode = argv[optind];
	o->input = optind + 1 < argc ? argv[optind + 1] : "-";
	o->output = optind + 2 < argc ? argv[optind + 2] : "-";
	if (strcmp(o->mode, "header") && strcmp(o->mode, "code") && strcmp(o->mode, "check")) {
		fprintf(stderr, "pier-scanner: unknown mode '%s' (header, code or check)\n", o->mode);
		return -1;
	}
	return 0;
}

/* A C identifier that starts with a letter (a leading _ would make
 * reserved names of the generated ones). */
static bool valid_prefix(const char *p)
{
	if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
		return false;
	for (; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

/* Writes the output of mode; 0, or an exit status. */
static int generate(struct options *o, struct gen *g)
{
	FILE *out = strcmp(o->output, "-") ? fopen(o->output, "w") : stdout;
	int r;

	if (!out) {
		fprintf(stderr, "pier-scanner: cannot write %s: %s\n", o->output, strerror(errno));
		return EXIT_INPUT;
	}
	g->out = out;
	gen_collect(g);
	r = !strcmp(o->mode, "header") ? gen_header(g) : gen_code(g);
	if ((out != stdout && fclose(out) != 0) || (out == stdout && fflush(out) != 0))
		r = -1;
	if (r < 0) {
		fprintf(stderr, "pier-scanner: cannot write %s: %s\n", o->output, strerror(errno));
		if (out != stdout)
			remove(o->output);
		return EXIT_INPUT;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct arena a = { 0 };
	struct diag d = { 0 };
	struct file f = { 0 };
	struct gen g = { 0 };
	size_t len;
	char *text;
	int status = EXIT_SUCCESS;

	if (parse_options(argc, argv, &o) < 0)
		return EXIT_USAGE;
	if (!o.prefix && !strcmp(o.input, "-")) {
		fprintf(stderr, "pier-scanner: reading standard input: give --prefix\n");
		return EXIT_USAGE;
	}
	if (!o.prefix && !(o.prefix = prefix_from_path(&a, o.input))) {
		fprintf(stderr, "pier-scanner: no prefix can be made of '%s': give --prefix\n",
			o.input);
		arena_free(&a);
		return EXIT_USAGE;
	}
	if (!valid_prefix(o.prefix)) {
		fprintf(stderr, "pier-scanner: the prefix '%s' is not a C identifier that starts "
			"with a letter\n", o.prefix);
		arena_free(&a);
		return EXIT_USAGE;
	}
	if (!strcmp(o.mode, "code") && !o.include && !(o.include = default_include(&a, o.output))) {
		fprintf(stderr, "pier-scanner: code: give --include (OUTPUT does not end in .c)\n");
		arena_free(&a);
		return EXIT_USAGE;
	}
	if (!(text = read_all(o.input, &len))) {
		fprintf(stderr, "pier-scanner: cannot read %s: %s\n", o.input, strerror(errno));
		arena_free(&a);
		return EXIT_INPUT;
	}
	d.file = strcmp(o.input, "-") ? o.input : "<stdin>";
	f.path = d.file;
	if (parse_file(&a, &d, text, len, &f) < 0 || check_file(&a, &d, &f, o.prefix) < 0) {
		fputs(d.text, stderr);
		status = EXIT_INPUT;
	} else if (strcmp(o.mode, "check")) {
		const char *base = strrchr(d.file, '/');

		/* the generated files name their source without its directory,
		 * so that they do not depend on where they were made */
		g = (struct gen){ .a = &a, .f = &f, .prefix = o.prefix,
				  .source = base ? base + 1 : d.file, .header = o.include };
		status = generate(&o, &g);
	}
	diag_free(&d);
	free(text);
	arena_free(&a);
	return status;
}
