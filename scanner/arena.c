/* SPDX-License-Identifier: MIT */
/* The scanner's memory: blocks freed all at once when the run ends. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ast.h"

struct arena_block {
	struct arena_block *next;
	max_align_t data[];
};

void arena_oom(void)
{
	fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
	abort();
}

void *arena_alloc(struct arena *a, size_t size)
{
	struct arena_block *b = calloc(1, sizeof(*b) + (size ? size : 1));

	if (!b)
		arena_oom();
	b->next = a->blocks;
	a->blocks = b;
	return b->data;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	p = arena_alloc(a, (size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

void *arena_push(struct arena *a, void *items_ptr, size_t *n, size_t size)
{
	char **items = items_ptr;
	char *grown;

	/* Doubling: the old copies stay in the arena until the end. */
	if ((*n & (*n - 1)) == 0) {
		grown = arena_alloc(a, (*n ? *n * 2 : 1) * size);
		if (*n)
			memcpy(grown, *items, *n * size);
		*items = grown;
	}
	return *items + (*n)++ * size;
}

void arena_free(struct arena *a)
{
	while (a->blocks) {
		struct arena_block *next = a->blocks->next;

		free(a->blocks);
		a->blocks = next;
	}
}
