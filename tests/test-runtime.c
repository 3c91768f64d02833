/* SPDX-License-Identifier: MIT */
/*
 * Descriptions made at run time from an interface file (what pier call
 * --interface uses) against those pier-scanner wrote for the same file and
 * the compiler laid out: every kind, name, size, offset and fd count the
 * same, so the library reads and writes a run-time value as it does a
 * generated one.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pier/typed.h>

#include "harness.h"
#include "runtime.h"
#include "typed-pier.h"

/* The description of tests/typed.pier made at run time, in a. */
static const struct pier_interface_type *load(struct arena *a)
{
	FILE *in = fopen(TYPED_PIER, "r");
	struct diag d = { .file = TYPED_PIER };
	struct file *f = arena_alloc(a, sizeof(*f));
	char text[16384];
	size_t len;

	ck_assert_ptr_nonnull(in);
	len = fread(text, 1, sizeof(text), in);
	fclose(in);
	ck_assert_uint_lt(len, sizeof(text));
	ck_assert_int_eq(parse_file(a, &d, text, len, f), 0);
	ck_assert_int_eq(check_file(a, &d, f, "typed"), 0);
	diag_free(&d);
	ck_assert_uint_eq(f->n_interfaces, 1);
	return runtime_interface(a, f, &f->interfaces[0]);
}

/* Types already compared (recursion through lists). */
static const struct pier_type *seen[256];
static size_t n_seen;

static void same_type(const struct pier_type *gen, const struct pier_type *rt, const char *where)
{
	if (!gen || !rt) {
		ck_assert_msg(gen == rt, "%s: %s on one side only", where, gen ? gen->name : rt->name);
		return;
	}
	for (size_t i = 0; i < n_seen; i++)
		if (seen[i] == gen)
			return;
	ck_assert_uint_lt(n_seen, 256);
	seen[n_seen++] = gen;
	ck_assert_msg(gen->kind == rt->kind, "%s: kind %d, at run time %d", where, gen->kind,
		      rt->kind);
	ck_assert_msg(!strcmp(gen->name, rt->name), "%s: %s, at run time %s", where, gen->name,
		      rt->name);
	ck_assert_msg(gen->size == rt->size, "%s (%s): size %zu, at run time %zu", where,
		      gen->name, gen->size, rt->size);
	ck_assert_msg(gen->fds == rt->fds, "%s (%s): %zu fds, at run time %zu", where, gen->name,
		      gen->fds, rt->fds);
	ck_assert_msg(gen->item_offset == rt->item_offset, "%s (%s): item at %zu, at run time %zu",
		      where, gen->name, gen->item_offset, rt->item_offset);
	ck_assert_uint_eq(gen->count, rt->count);
	same_type(gen->item, rt->item, gen->name);
	for (size_t i = 0; gen->fields && i < gen->count; i++) {
		ck_assert_str_eq(gen->fields[i].name, rt->fields[i].name);
		ck_assert_msg(gen->fields[i].offset == rt->fields[i].offset,
			      "%s.%s: at %zu, at run time %zu", gen->name, gen->fields[i].name,
			      gen->fields[i].offset, rt->fields[i].offset);
		same_type(gen->fields[i].type, rt->fields[i].type, gen->fields[i].name);
	}
	for (size_t i = 0; gen->variants && i < gen->count; i++) {
		ck_assert_str_eq(gen->variants[i].name, rt->variants[i].name);
		ck_assert_msg(gen->variants[i].offset == rt->variants[i].offset,
			      "%s::%s: at %zu, at run time %zu", gen->name, gen->variants[i].name,
			      gen->variants[i].offset, rt->variants[i].offset);
		same_type(gen->variants[i].type, rt->variants[i].type, gen->variants[i].name);
	}
}

static void same_doc(const char *a, const char *b)
{
	ck_assert((!a && !b) || (a && b && !strcmp(a, b)));
}

static void same_messages(const struct pier_message_type *gen, const struct pier_message_type *rt,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(gen[i].name, rt[i].name);
		ck_assert_int_eq(gen[i].service_id, rt[i].service_id);
		ck_assert_int_eq(gen[i].hidden, rt[i].hidden);
		same_doc(gen[i].doc, rt[i].doc);
		same_type(gen[i].body, rt[i].body, gen[i].name);
	}
}

START_TEST(run_time_descriptions_match_the_generated_ones)
{
	const struct pier_interface_type *gen = &typed_interface, *rt;
	struct arena a = { 0 };

	rt = load(&a);
	ck_assert_str_eq(gen->name, rt->name);
	same_doc(gen->doc, rt->doc);
	ck_assert_int_eq(gen->hidden, rt->hidden);
	ck_assert_str_eq(gen->source, rt->source);
	ck_assert_uint_eq(gen->n_services, rt->n_services);
	for (size_t i = 0; i < gen->n_services; i++) {
		const struct pier_service_type *g = &gen->services[i], *r = &rt->services[i];

		ck_assert_str_eq(g->name, r->name);
		ck_assert_int_eq(g->service_id, r->service_id);
		ck_assert_int_eq(g->hidden, r->hidden);
		same_doc(g->doc, r->doc);
		same_type(g->request, r->request, g->name);
		same_type(g->response, r->response, g->name);
		ck_assert_uint_eq(g->n_request_updates, r->n_request_updates);
		same_messages(g->request_updates, r->request_updates, g->n_request_updates);
		ck_assert_uint_eq(g->n_response_updates, r->n_response_updates);
		same_messages(g->response_updates, r->response_updates, g->n_response_updates);
		same_type(g->request_updates_union, r->request_updates_union, g->name);
		same_type(g->response_updates_union, r->response_updates_union, g->name);
	}
	ck_assert_uint_eq(gen->n_streams, rt->n_streams);
	same_messages(gen->streams, rt->streams, gen->n_streams);
	arena_free(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("runtime");
	TCase *tc = th_tcase("runtime", TH_TIMEOUT);

	tcase_add_test(tc, run_time_descriptions_match_the_generated_ones);
	suite_add_tcase(s, tc);
	return th_run(s);
}
