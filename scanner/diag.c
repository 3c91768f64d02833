/* SPDX-License-Identifier: MIT */
/* The scanner's errors: "file:line:col: message" lines, kept in order. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "ast.h"

void diag_error(struct diag *d, struct pos pos, const char *fmt, ...)
{
	char msg[512];
	char *text;
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n = snprintf(NULL, 0, "%s:%d:%d: %s\n", d->file, pos.line, pos.col, msg);
	if (!(text = realloc(d->text, d->len + (size_t)n + 1))) {
		fputs("pier-scanner: out of memory\n", stderr);
		abort();
	}
	snprintf(text + d->len, (size_t)n + 1, "%s:%d:%d: %s\n", d->file, pos.line, pos.col, msg);
	d->text = text;
	d->len += (size_t)n;
	d->count++;
}

void diag_free(struct diag *d)
{
	free(d->text);
	d->text = NULL;
	d->len = 0;
	d->count = 0;
}
