/* SPDX-License-Identifier: MIT */
/*
 * pier-scanner's parser and checker: files that are good (what they parse
 * into), and one file per error with the exact "file:line:col: message"
 * it must give.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ast.h"
#include "harness.h"
#include "text.h"

/* Parses and checks text as the file t.pier (prefix t): the errors, "" if
 * none (malloc'd).  f and a are the caller's when given. */
static char *scan_into(const char *text, struct arena *a, struct file *f)
{
	struct diag d = { .file = "t.pier" };
	char *errors;

	memset(f, 0, sizeof(*f));
	f->path = d.file;
	if (parse_file(a, &d, text, strlen(text), f) == 0)
		check_file(a, &d, f, "t");
	errors = strdup(d.text ? d.text : "");
	diag_free(&d);
	return errors;
}

static char *scan(const char *text)
{
	struct arena a = { 0 };
	struct file f;
	char *errors = scan_into(text, &a, &f);

	arena_free(&a);
	return errors;
}

static void assert_error(const char *text, const char *expected)
{
	char *errors = scan(text);

	ck_assert_msg(!strcmp(errors, expected), "for\n%s\ngot\n%sexpected\n%s", text, errors,
		      expected);
	free(errors);
}

/* --- good files ---------------------------------------------------------------------- */

static const char camera[] =
	"// The camera of fizyr-rpc's tests, and types for it.\n"
	"/// Interface to a camera server.\n"
	"///\n"
	"/// A camera server can represent many different types of cameras,\n"
	"///   indented.\n"
	"pub interface Camera {\n"
	"\t/// Ping the server.\n"
	"\tservice 0 ping: () -> (),\n"
	"\n"
	"\t/// Record an image.\n"
	"\tservice 1 record: RecordRequest -> () {\n"
	"\t\t/// Cancel the recording prematurely.\n"
	"\t\trequest_update 10 cancel: CancelReason,\n"
	"\t\t#[hidden]\n"
	"\t\trequest_update 101 disconnect: (),\n"
	"\t\tresponse_update 11 state: RecordState,\n"
	"\t\tresponse_update 12 image: Image\n" /* no comma before } */
	"\t}\n" /* nor after the updates */
	"\t#[hidden]\n"
	"\tservice 0x2 hidden_service: () -> (),\n"
	"\t/* a /* nested */ comment */\n"
	"\t#[hidden]\n"
	"\tstream 3_i32 hidden_stream: (),\n"
	"}\n"
	"interface CameraEvents { stream 11 record_state: RecordState, }\n"
	"pub struct RecordRequest { pub color: bool, cloud: bool }\n"
	"enum RecordState { Recording, Processing, Done }\n"
	"enum CancelReason { BecauseISaidSo, Other(String), Both(u8, Vec<u8>), Detail { why: String, }, }\n"
	"struct Image { width: u32, height: u32, format: u32, data: fd, rest: Vec<u8>, list: Vec<Option<Vec<u16>>>, }\n"
	"//// four slashes: a plain comment\n";

START_TEST(camera_parses_as_fizyr_rpc_reads_it)
{
	struct arena a = { 0 };
	struct file f;
	char *errors = scan_into(camera, &a, &f);
	struct interface *cam;
	struct service *rec;

	ck_assert_str_eq(errors, "");
	ck_assert_uint_eq(f.n_interfaces, 2);
	cam = &f.interfaces[0];
	ck_assert_str_eq(cam->name, "Camera");
	/* each line without the spaces all share, each ending in \n */
	ck_assert_str_eq(cam->doc, "Interface to a camera server.\n\n"
			 "A camera server can represent many different types of cameras,\n"
			 "  indented.\n");
	ck_assert_uint_eq(cam->n_services, 3);
	ck_assert_str_eq(cam->services[0].doc, "Ping the server.\n");
	ck_assert_int_eq(cam->services[0].request->kind, TK_UNIT);
	rec = &cam->services[1];
	ck_assert_int_eq(rec->id, 1);
	ck_assert_str_eq(rec->request->def->name, "RecordRequest");
	ck_assert_uint_eq(rec->n_request_updates, 2);
	ck_assert_int_eq(rec->request_updates[1].id, 101);
	ck_assert(rec->request_updates[1].hidden);
	ck_assert(!rec->request_updates[0].hidden);
	ck_assert_uint_eq(rec->n_response_updates, 2);
	ck_assert_str_eq(rec->response_updates[1].name, "image");
	ck_assert_int_eq(cam->services[2].id, 2);
	ck_assert(cam->services[2].hidden);
	ck_assert_ptr_null(cam->services[2].doc);
	ck_assert_uint_eq(cam->n_streams, 1);
	ck_assert_int_eq(cam->streams[0].id, 3);
	ck_assert_int_eq(f.interfaces[1].streams[0].id, 11);

	ck_assert_uint_eq(f.n_types, 4);
	ck_assert(f.types[1].unit_only);
	ck_assert(!f.types[2].unit_only);
	ck_assert_int_eq(f.types[2].variants[1].kind, V_NEWTYPE);
	ck_assert_int_eq(f.types[2].variants[2].kind, V_TUPLE);
	ck_assert_str_eq(f.types[2].variants[2].fields[1].name, "1");
	ck_assert_int_eq(f.types[2].variants[2].fields[1].type->kind, TK_BYTES);
	ck_assert_int_eq(f.types[2].variants[3].kind, V_STRUCT);
	ck_assert_uint_eq(f.types[3].fds, 1);
	ck_assert_int_eq(f.types[3].fields[5].type->kind, TK_LIST);
	ck_assert_int_eq(f.types[3].fields[5].type->item->item->kind, TK_LIST);
	ck_assert_int_eq(f.types[3].fields[5].type->item->item->item->kind, TK_U16);
	free(errors);
	arena_free(&a);
}
END_TEST

START_TEST(doc_attributes_and_escapes)
{
	struct arena a = { 0 };
	struct file f;
	char *errors = scan_into("#[doc = \" tab\\there \\\"q\\\" \\u{e9}\\x41\"]\n"
				 "/// line two\n#[doc=\"\"]\nstruct S {}\n", &a, &f);

	ck_assert_str_eq(errors, "");
	ck_assert_str_eq(f.types[0].doc, "tab\there \"q\" \xc3\xa9" "A\nline two\n\n");
	free(errors);
	arena_free(&a);
}
END_TEST

START_TEST(empty_file_and_crlf)
{
	char *errors = scan("");

	ck_assert_str_eq(errors, "");
	free(errors);
	errors = scan("/// a\r\nstruct A {\r\n\tx: u8,\r\n}\r\n");
	ck_assert_str_eq(errors, "");
	free(errors);
	/* columns count bytes after a CRLF too */
	assert_error("struct A {\r\n\tx: Y,\r\n}\r\n", "t.pier:2:5: unknown type `Y`\n");
}
END_TEST

/* --- an interface written back (introspection's text) ------------------------------- */

static void same_doc(const char *a, const char *b, const char *what)
{
	ck_assert_msg((!a && !b) || (a && b && !strcmp(a, b)), "%s: doc \"%s\" came back as \"%s\"",
		      what, a ? a : "(none)", b ? b : "(none)");
}

static void same_type(const struct typeref *a, const struct typeref *b, const char *what)
{
	ck_assert_msg(a->kind == b->kind, "%s: type kind %d came back as %d", what, a->kind, b->kind);
	if (a->kind == TK_LIST || a->kind == TK_OPTION)
		same_type(a->item, b->item, what);
	if (a->kind == TK_NAMED)
		ck_assert_str_eq(a->def->name, b->def->name);
}

static void same_fields(const struct field *a, const struct field *b, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(a[i].name, b[i].name);
		same_doc(a[i].doc, b[i].doc, a[i].name);
		same_type(a[i].type, b[i].type, a[i].name);
	}
	(void)what;
}

static void same_def(const struct typedef_ *a, const struct typedef_ *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_int_eq(a->kind, b->kind);
	same_doc(a->doc, b->doc, a->name);
	ck_assert_uint_eq(a->n_fields, b->n_fields);
	same_fields(a->fields, b->fields, a->n_fields, a->name);
	ck_assert_uint_eq(a->n_variants, b->n_variants);
	for (size_t i = 0; i < a->n_variants; i++) {
		const struct variant *va = &a->variants[i], *vb = &b->variants[i];

		ck_assert_str_eq(va->name, vb->name);
		ck_assert_int_eq(va->kind, vb->kind);
		same_doc(va->doc, vb->doc, va->name);
		ck_assert_uint_eq(va->n_fields, vb->n_fields);
		same_fields(va->fields, vb->fields, va->n_fields, va->name);
	}
	ck_assert_uint_eq(a->fds, b->fds);
}

static void same_messages(const struct message *a, const struct message *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(a[i].name, b[i].name);
		ck_assert_int_eq(a[i].id, b[i].id);
		ck_assert_int_eq(a[i].hidden, b[i].hidden);
		same_doc(a[i].doc, b[i].doc, a[i].name);
		same_type(a[i].body, b[i].body, a[i].name);
	}
}

/* Every interface of text, written back and read again, is what it was,
 * with the types it uses and no other. */
static void assert_text_round_trip(const char *text, size_t types_used[])
{
	struct arena a = { 0 };
	struct file f;
	char *errors = scan_into(text, &a, &f);

	ck_assert_str_eq(errors, "");
	free(errors);
	for (size_t i = 0; i < f.n_interfaces; i++) {
		const struct interface *in = &f.interfaces[i], *back;
		const char *written = text_of_interface(&a, &f, in);
		struct arena b = { 0 };
		struct file g;

		errors = scan_into(written, &b, &g);
		ck_assert_msg(!strcmp(errors, ""), "%s\nreads back with errors:\n%s", written, errors);
		free(errors);
		ck_assert_uint_eq(g.n_interfaces, 1);
		back = &g.interfaces[0];
		ck_assert_str_eq(back->name, in->name);
		same_doc(in->doc, back->doc, in->name);
		ck_assert_int_eq(back->hidden, in->hidden);
		ck_assert_uint_eq(back->n_services, in->n_services);
		for (size_t j = 0; j < in->n_services; j++) {
			const struct service *s = &in->services[j], *t = &back->services[j];

			ck_assert_str_eq(s->name, t->name);
			ck_assert_int_eq(s->id, t->id);
			ck_assert_int_eq(s->hidden, t->hidden);
			same_doc(s->doc, t->doc, s->name);
			same_type(s->request, t->request, s->name);
			same_type(s->response, t->response, s->name);
			ck_assert_uint_eq(s->n_request_updates, t->n_request_updates);
			same_messages(s->request_updates, t->request_updates, s->n_request_updates);
			ck_assert_uint_eq(s->n_response_updates, t->n_response_updates);
			same_messages(s->response_updates, t->response_updates, s->n_response_updates);
		}
		ck_assert_uint_eq(back->n_streams, in->n_streams);
		same_messages(in->streams, back->streams, in->n_streams);
		ck_assert_msg(g.n_types == types_used[i], "%s: %zu types written, %zu used", in->name,
			      g.n_types, types_used[i]);
		for (size_t j = 0; j < g.n_types; j++) {
			const struct typedef_ *d = NULL;

			for (size_t k = 0; k < f.n_types && !d; k++)
				if (!strcmp(f.types[k].name, g.types[j].name))
					d = &f.types[k];
			ck_assert_msg(d != NULL, "%s: type %s written, not in the file", in->name,
				      g.types[j].name);
			same_def(d, &g.types[j]);
		}
		arena_free(&b);
	}
	arena_free(&a);
}

START_TEST(interface_text_reads_back_the_same)
{
	/* Camera uses all four types; CameraEvents only RecordState. */
	assert_text_round_trip(camera, (size_t[]){ 4, 1 });
	/* Docs from attributes, with escapes and blank lines; types that
	 * are not used; a type used only inside another; every number. */
	assert_text_round_trip(
		"#[doc = \" tab\\there \\\"q\\\" \\u{e9}\"]\n/// two\n#[doc=\"\"]\n///   deeper\n"
		"#[hidden] interface I {\n"
		"\tservice 7 a: Outer -> Option<Vec<i64>>,\n"
		"\tstream 0x7fffffff s: (),\n"
		"\tstream 8 n: N,\n"
		"}\n"
		"interface J {}\n"
		"struct Unused { x: u8 }\n"
		"/// Outer.\n"
		"struct Outer { /* plain */ /// The inner one.\n inner: Inner, e: E, }\n"
		"struct Inner { a: i8, b: i16, c: i32, d: u16, e: u32, f: u64, g: f32, h: f64, }\n"
		"#[doc = \"\\n  indented after a blank line, in one attribute\"]\n"
		"#[doc = \"  \"]\n"
		"struct N {}\n"
		"enum E { A, B(Vec<Inner>), C(u8, bool), /// D.\n D { /// S.\n s: String } }\n",
		(size_t[]){ 4, 0 });
}
END_TEST

/* --- errors, each with its place ----------------------------------------------------------- */

START_TEST(syntax_errors)
{
	assert_error("interface I { service 1 a: () () }",
		     "t.pier:1:31: expected `->`, found `(`\n");
	assert_error("interface I { stream 1 s: () }", "t.pier:1:30: expected `,`, found `}`\n");
	assert_error("interface I { service 1 a: () -> () }",
		     "t.pier:1:37: expected `,` or `{`, found `}`\n");
	assert_error("interface I { rpc 1 a: () -> (), }",
		     "t.pier:1:15: expected `service` or `stream`, found `rpc`\n");
	assert_error("interface I {\n\tservice 1 a: () -> () {\n\t\tupdate 2 u: (),\n\t}\n}\n",
		     "t.pier:3:3: expected `request_update` or `response_update`, found `update`\n");
	assert_error("struct A { x u8 }", "t.pier:1:14: expected `:`, found `u8`\n");
	assert_error("struct A { x: u8 y: u8 }", "t.pier:1:18: expected `,` or `}`, found `y`\n");
	assert_error("struct A { x: u8,", "t.pier:1:18: expected a field name, found the end of the file\n");
	assert_error("fn main() {}", "t.pier:1:1: expected `interface`, `struct` or `enum`, found `fn`\n");
	assert_error("struct A;", "t.pier:1:9: only structs with named fields are supported: "
		     "`struct A { ... }`\n");
	assert_error("struct A { v: Vec }", "t.pier:1:19: expected `<` after `Vec`, found `}`\n");
	assert_error("struct A { v: Vec<u8 }", "t.pier:1:22: expected `>`, found `}`\n");
	assert_error("struct A { t: (u8, u8) }", "t.pier:1:15: tuples are not supported, only `()`\n");
	assert_error("struct A { b: super::B }",
		     "t.pier:1:15: paths (`super::...`) are not supported: every type is in this file\n");
	assert_error("struct A { n: usize }", "t.pier:1:15: `usize` has no fixed size: use u64\n");
	assert_error("struct A { n: HashMap<String, u8> }",
		     "t.pier:1:22: type `HashMap` takes no parameters\n");
	assert_error("enum E { A() }", "t.pier:1:11: variant `A` has no data: write `A` without `()`\n");
	assert_error("enum E { A {} }", "t.pier:1:12: variant `A` has no fields: write `A` without `{}`\n");
	assert_error("enum E { A = 1 }", "t.pier:1:12: explicit discriminants are not supported: a "
		     "variant is written by its name\n");
	assert_error("struct A { \xc3\xa9: u8 }",
		     "t.pier:1:12: unexpected character `\xc3\xa9` (identifiers are ASCII)\n");
	assert_error("struct A { x: u8 } @", "t.pier:1:20: expected `interface`, `struct` or `enum`, "
		     "found `@`\n");
}
END_TEST

START_TEST(comment_and_string_errors)
{
	assert_error("struct A {}\n  /* x /* y */\n", "t.pier:2:3: unterminated comment\n");
	assert_error("#[doc = \"abc]\nstruct A {}\n", "t.pier:1:9: unterminated string\n");
	assert_error("#[doc = \"a\\q\"]\nstruct A {}\n", "t.pier:1:11: unknown character escape `\\q`\n");
	assert_error("#[doc = \"\\u{d800}\"]\nstruct A {}\n",
		     "t.pier:1:10: \\u takes {1 to 6 hex digits} naming a Unicode scalar value\n");
	assert_error("#[doc = \"\\x80\"]\nstruct A {}\n",
		     "t.pier:1:10: \\x takes two hex digits, at most 7f\n");
	assert_error("/** doc */\nstruct A {}\n",
		     "t.pier:1:1: block doc comments (/** */, /*! */) are not supported: use ///\n");
	assert_error("//! inner\nstruct A {}\n",
		     "t.pier:1:1: inner doc comments (//!) are not supported: use ///\n");
	assert_error("#[doc = 1]\nstruct A {}\n", "t.pier:1:9: expected a string, found `1`\n");
}
END_TEST

START_TEST(attribute_errors)
{
	assert_error("#[derive(Debug)]\nstruct A {}\n", "t.pier:1:3: unknown attribute `derive`\n");
	assert_error("#[hidden]\nstruct A {}\n",
		     "t.pier:1:3: `#[hidden]` is for interfaces, services, updates and streams, not types\n");
	assert_error("struct A { #[hidden] x: u8 }",
		     "t.pier:1:14: `#[hidden]` is for interfaces, services, updates and streams, not fields\n");
	assert_error("#[hidden(x)]\ninterface I {}\n", "t.pier:1:9: `hidden` takes no value\n");
	assert_error("struct A {\n\tx: u8,\n\t/// dangling\n}\n",
		     "t.pier:3:2: doc comment or attribute not followed by an item\n");
	assert_error("interface I { /// dangling\n}\n",
		     "t.pier:1:15: doc comment or attribute not followed by an item\n");
	assert_error("struct A {}\n/// at the end\n",
		     "t.pier:2:1: doc comment or attribute not followed by an item\n");
}
END_TEST

START_TEST(id_errors)
{
	assert_error("interface I { service 2147483648 a: () -> (), }",
		     "t.pier:1:23: service id 2147483648 is out of range (0 to 2147483647)\n");
	assert_error("interface I { stream -1 s: (), }",
		     "t.pier:1:22: service id -1 is out of range (0 to 2147483647)\n");
	assert_error("interface I { stream 0xffff_ffff s: (), }",
		     "t.pier:1:22: service id 0xffff_ffff is out of range (0 to 2147483647)\n");
	assert_error("interface I { stream 99999999999999999999999 s: (), }",
		     "t.pier:1:22: service id 99999999999999999999999 is out of range (0 to 2147483647)\n");
	assert_error("interface I { stream 1x s: (), }",
		     "t.pier:1:23: invalid suffix `x` for an integer literal\n");
	assert_error("interface I { stream s: (), }",
		     "t.pier:1:22: expected a service id, found `s`\n");
	assert_error("interface I { stream 0x s: (), }",
		     "t.pier:1:22: an integer literal with no digits\n");
	/* the largest is fine */
	assert_error("interface I { stream 2147483647 s: (), }", "");
}
END_TEST

START_TEST(duplicate_errors)
{
	assert_error("interface I {\n\tservice 1 a: () -> (),\n\tservice 1 b: () -> (),\n}\n",
		     "t.pier:3:10: duplicate service id 1 (also `a`)\n");
	assert_error("interface I {\n\tservice 1 a: () -> (),\n\tservice 2 a: () -> (),\n}\n",
		     "t.pier:3:12: duplicate service name `a`\n");
	/* a stream and a service may share an id, as in fizyr-rpc; two streams not */
	assert_error("interface I {\n\tservice 1 a: () -> (),\n\tstream 1 s: (),\n\tstream 1 t: (),\n}\n",
		     "t.pier:4:9: duplicate stream id 1 (also `s`)\n");
	assert_error("interface I { service 1 a: () -> () { request_update 5 u: (), request_update 5 v: () } }",
		     "t.pier:1:78: duplicate request_update id 5 (also `u`)\n");
	/* request and response updates are apart */
	assert_error("interface I { service 1 a: () -> () { request_update 5 u: (), response_update 5 u: () } }",
		     "");
	assert_error("interface I { service 1 a: () -> () { response_update 5 u: (), response_update 6 u: () } }",
		     "t.pier:1:82: duplicate response_update name `u`\n");
	assert_error("interface I {}\ninterface I {}\n", "t.pier:2:11: duplicate interface name `I`\n");
	assert_error("struct A {}\nenum A { X }\n",
		     "t.pier:2:6: duplicate type name `A` (first at line 1)\n");
	assert_error("struct String {}\n", "t.pier:1:8: `String` is a built-in type's name\n");
	assert_error("struct A { x: u8, x: u8 }", "t.pier:1:19: duplicate field name `x`\n");
	assert_error("enum E { X, Y, X }", "t.pier:1:16: duplicate variant name `X`\n");
	assert_error("enum E { FooBar, Foo_Bar }",
		     "t.pier:1:18: variants `FooBar` and `Foo_Bar` have the same C name `foo_bar`\n");
}
END_TEST

START_TEST(type_errors)
{
	/* every error of the checker, not just the first */
	assert_error("struct A { b: B, c: Vec<C> }",
		     "t.pier:1:15: unknown type `B`\nt.pier:1:25: unknown type `C`\n");
	assert_error("interface I { stream 1 s: Nope, }", "t.pier:1:27: unknown type `Nope`\n");
	assert_error("enum E {}", "t.pier:1:6: enum `E` has no variants: no value could be sent\n");
	assert_error("struct A { b: B }\nstruct B { a: Option<A> }\n",
		     "t.pier:1:8: type `A` contains itself: nest it in a Vec\n");
	assert_error("struct A { a: A }\n", "t.pier:1:8: type `A` contains itself: nest it in a Vec\n");
	assert_error("enum E { X(E) }\n", "t.pier:1:6: type `E` contains itself: nest it in a Vec\n");
	assert_error("struct A { a: Vec<A> }\n", "");
	assert_error("struct A { o: Option<()> }",
		     "t.pier:1:15: `Option<()>`: JSON writes both None and Some(()) as null\n");
	assert_error("struct A { o: Option<Option<u8>> }",
		     "t.pier:1:15: `Option<Option<u8>>`: JSON writes both None and Some(None) as null\n");
	assert_error("struct A { int: u8 }", "t.pier:1:12: field name `int` is reserved in C\n");
	assert_error("enum E { A, Tag(u8) }",
		     "t.pier:1:13: variant `Tag` would be the C member `tag`, which is reserved\n");
	assert_error("struct ListU32 {}\nstruct A { v: Vec<u32> }\n",
		     "t.pier:2:15: the C name `t_list_u32` of `Vec<u32>` is also that of type `ListU32`\n");
	/* what the client and server are made of */
	assert_error("struct Client {}\ninterface T {}\n",
		     "t.pier:2:11: the C name `t_client` of interface `T` is also that of type `Client`\n");
	assert_error("interface I { service 1 default: () -> (), }",
		     "t.pier:1:25: service name `default` is reserved in C\n");
	assert_error("interface I { service 1 a: () -> () { response_update 2 tag: () } }",
		     "t.pier:1:57: response_update name `tag` is reserved in C\n");
	assert_error("interface I { service 1 a: () -> (), stream 2 a: (), }",
		     "t.pier:1:47: stream `a` has the name of a service: both would be members of "
		     "the handlers\n");
}
END_TEST

START_TEST(fd_errors)
{
	assert_error("struct A { v: Vec<fd> }",
		     "t.pier:1:19: `fd` can only be the type of a struct's field\n");
	assert_error("interface I { stream 1 s: fd, }",
		     "t.pier:1:27: `fd` can only be the type of a struct's field\n");
	assert_error("enum E { X(fd) }", "t.pier:1:12: `fd` can only be the type of a struct's field\n");
	assert_error("struct F { f: fd }\nstruct A { o: Option<F> }\n",
		     "t.pier:2:22: `F` holds fds, so it cannot be inside Option: a message's fds are "
		     "matched to fd fields by position\n");
	assert_error("struct F { f: fd }\nstruct G { f: F }\nstruct A { v: Vec<G> }\n",
		     "t.pier:3:19: `G` holds fds, so it cannot be inside Vec: a message's fds are "
		     "matched to fd fields by position\n");
	assert_error("struct F { f: fd }\nenum E { X { f: F } }\n",
		     "t.pier:2:17: `F` holds fds, so it cannot be an enum variant's data: a message's "
		     "fds are matched to fd fields by position\n");
	/* a struct of fds is a message body, nested or not */
	assert_error("struct F { f: fd, g: fd }\nstruct G { f: F, h: fd }\n"
		     "interface I { stream 1 s: G, }\n", "");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scanner");
	TCase *tc = th_tcase("good", TH_TIMEOUT);

	tcase_add_test(tc, camera_parses_as_fizyr_rpc_reads_it);
	tcase_add_test(tc, doc_attributes_and_escapes);
	tcase_add_test(tc, empty_file_and_crlf);
	tcase_add_test(tc, interface_text_reads_back_the_same);
	suite_add_tcase(s, tc);
	tc = th_tcase("errors", TH_TIMEOUT);
	tcase_add_test(tc, syntax_errors);
	tcase_add_test(tc, comment_and_string_errors);
	tcase_add_test(tc, attribute_errors);
	tcase_add_test(tc, id_errors);
	tcase_add_test(tc, duplicate_errors);
	tcase_add_test(tc, type_errors);
	tcase_add_test(tc, fd_errors);
	suite_add_tcase(s, tc);
	return th_run(s);
}
