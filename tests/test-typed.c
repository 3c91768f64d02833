/* SPDX-License-Identifier: MIT */
/*
 * Typed bodies: the code pier-scanner generates for tests/typed.pier, on
 * the library's typed-body functions.  JSON is compared byte for byte with
 * what serde_json writes for the same Rust values (written here by hand
 * from serde_json's representation: compact, fields in order, unit
 * variants as strings, other variants as {"Name": data}, () and None as
 * null, byte arrays as arrays, floats as ryu writes them); decode errors
 * are compared whole; fds go in field order, beside the body.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier/typed.h>

#include "peers.h"
#include "typed-pier.h"

/* A literal as a value's char *: encoding only reads it. */
#define S(literal) ((char *)(literal))

/* --- without a format: what does not need JSON ------------------------------------ */

START_TEST(init_sets_fds_to_minus_one_and_free_closes_them)
{
	struct typed_frame f;

	typed_frame_init(&f);
	ck_assert_int_eq(f.image, -1);
	ck_assert_int_eq(f.meta.depth, -1);
	ck_assert_uint_eq(typed_frame_type.fds, 2);
	f.image = memfd_with("image");
	f.meta.depth = memfd_with("depth");
	/* the fd-leak fixture fails the test if these stay open */
	typed_frame_free(&f);
	ck_assert_int_eq(f.image, -1);
	ck_assert_int_eq(f.meta.depth, -1);
	typed_frame_free(&f); /* freeing the empty value again does nothing */
}
END_TEST

/* A tagged union of updates whose first variant holds fds (as a service
 * whose first response update is an image would have): its empty value
 * and a decoded one hold no fd, so that freeing them closes none (fd 0
 * least of all). */
static const struct pier_variant frame_first_variants[] = {
	{ "frame", &typed_frame_type, 8 },
	{ "state", &typed_state_type, 8 },
};
static const struct pier_type frame_first = {
	.kind = PIER_KIND_ENUM, .name = "frame first", .size = 8 + sizeof(struct typed_frame),
	.variants = frame_first_variants, .count = 2,
};
static const struct pier_variant frame_second_variants[] = {
	{ "state", &typed_state_type, 8 },
	{ "frame", &typed_frame_type, 8 },
};
static const struct pier_type frame_second = {
	.kind = PIER_KIND_ENUM, .name = "frame second", .size = 8 + sizeof(struct typed_frame),
	.variants = frame_second_variants, .count = 2,
};

START_TEST(an_enum_of_fd_variants_holds_no_fd)
{
	union {
		unsigned char bytes[8 + sizeof(struct typed_frame)];
		uint64_t align;
	} v;
	struct typed_frame *f = (struct typed_frame *)(v.bytes + 8);
	static const char body[] = "{\"frame\":{\"seq\":1,\"meta\":{\"width\":2}}}";

	pier_value_init(&frame_first, v.bytes);
	ck_assert_int_eq(f->image, -1);
	ck_assert_int_eq(f->meta.depth, -1);
	pier_value_free(&frame_first, v.bytes);
	ck_assert_int_ne(fcntl(0, F_GETFD), -1);
	if (!pier_format_json())
		return;
	/* the union carries no fds of its own: the frame's are not in the body */
	ck_assert_int_eq(pier_decode(pier_format_json(), &frame_first, NULL, body, strlen(body),
				     NULL, 0, v.bytes, NULL), 0);
	ck_assert_uint_eq(f->seq, 1);
	ck_assert_int_eq(f->image, -1);
	ck_assert_int_eq(f->meta.depth, -1);
	pier_value_free(&frame_first, v.bytes);
	ck_assert_int_ne(fcntl(0, F_GETFD), -1);
	/* decoded into a variant that is not the first */
	ck_assert_int_eq(pier_decode(pier_format_json(), &frame_second, NULL, body, strlen(body),
				     NULL, 0, v.bytes, NULL), 0);
	ck_assert_int_eq(f->image, -1);
	ck_assert_int_eq(f->meta.depth, -1);
	pier_value_free(&frame_second, v.bytes);
	ck_assert_int_ne(fcntl(0, F_GETFD), -1);
}
END_TEST

START_TEST(free_releases_every_kind_of_owned_memory)
{
	/* valgrind and ASan's leak checker find what this leaves behind */
	struct typed_tree t;
	struct typed_reason r;
	struct typed_shape s;

	typed_tree_init(&t);
	t.children.items = calloc(2, sizeof(*t.children.items));
	t.children.len = 2;
	t.children.items[1].matrix.items = calloc(1, sizeof(*t.children.items[1].matrix.items));
	t.children.items[1].matrix.len = 1;
	t.children.items[1].matrix.items[0].items = calloc(3, sizeof(struct typed_option_u16));
	t.children.items[1].matrix.items[0].len = 3;
	typed_tree_free(&t);
	ck_assert_ptr_null(t.children.items);
	ck_assert_uint_eq(t.children.len, 0);

	typed_reason_init(&r);
	r.tag = TYPED_REASON_TIMEOUT;
	r.timeout._1.present = true;
	r.timeout._1.value = strdup("late");
	typed_reason_free(&r);
	ck_assert_int_eq(r.tag, TYPED_REASON_BECAUSE_I_SAID_SO);

	typed_shape_init(&s);
	s.tag = TYPED_SHAPE_LABELLED;
	s.labelled.label = strdup("label");
	s.labelled.tags.items = calloc(2, sizeof(char *));
	s.labelled.tags.len = 2;
	s.labelled.tags.items[0] = strdup("a");
	typed_shape_free(&s);
}
END_TEST

START_TEST(without_a_format_nothing_is_encoded)
{
	struct pier_encoded out = { 0 };
	struct typed_empty e;

	typed_empty_init(&e);
	ck_assert_int_eq(typed_empty_encode(&e, NULL, &out, NULL), -EINVAL);
	ck_assert_int_eq(typed_empty_decode(&e, NULL, "{}", 2, NULL, 0, NULL), -EINVAL);
#ifndef HAVE_JSON_C
	ck_assert_ptr_null(pier_format_json());
#else
	ck_assert_ptr_nonnull(pier_format_json());
	ck_assert_str_eq(pier_format_json()->name, "json");
#endif
}
END_TEST

#ifdef HAVE_JSON_C

/* --- helpers ------------------------------------------------------------------------ */

/* Encodes value as JSON and checks the body is exactly expected. */
static void assert_json(const struct pier_type *type, const void *value, const char *expected)
{
	struct pier_encoded out = { 0 };
	struct pier_value_error err = { { 0 } };
	int r = pier_encode(pier_format_json(), type, value, NULL, &out, &err);

	ck_assert_msg(r == 0, "encode failed (%d): %s", r, err.message);
	ck_assert_msg(out.len == strlen(expected) && !memcmp(out.body, expected, out.len),
		      "encoded\n  %.*s\nexpected\n  %s", (int)out.len, out.body, expected);
	pier_encoded_release(&out);
}

/* Decodes json (as value of type, named what) and checks it fails with
 * exactly message; value is left freed. */
static void assert_decode_error(const struct pier_type *type, const char *what, const char *json,
				const char *message)
{
	char value[512];
	struct pier_value_error err = { { 0 } };
	int r;

	ck_assert_uint_le(type->size, sizeof(value));
	r = pier_decode(pier_format_json(), type, what, json, strlen(json), NULL, 0, value, &err);
	ck_assert_msg(r == -EBADMSG, "decoding %s gave %d, not -EBADMSG", json, r);
	ck_assert_str_eq(err.message, message);
}

/* Decodes json into value, checks it encodes back to the same bytes. */
static void assert_round_trip(const struct pier_type *type, const char *json, void *value)
{
	struct pier_value_error err = { { 0 } };
	int r = pier_decode(pier_format_json(), type, NULL, json, strlen(json), NULL, 0, value, &err);

	ck_assert_msg(r == 0, "decoding %s failed (%d): %s", json, r, err.message);
	assert_json(type, value, json);
}

static void record_example(struct typed_record *rec)
{
	typed_record_init(rec);
	rec->settings.exposure = 100;
	rec->settings.gain.present = true;
	rec->settings.gain.value = 0.5;
	rec->settings.name = strdup("cam \"1\"\n");
	rec->settings.flags.items = calloc(2, sizeof(bool));
	rec->settings.flags.items[0] = true;
	rec->settings.flags.len = 2;
	rec->color = true;
	rec->blob.data = malloc(3);
	memcpy(rec->blob.data, "\x00\x01\xff", 3);
	rec->blob.len = 3;
}

static const char record_json[] =
	"{\"settings\":{\"exposure\":100,\"gain\":0.5,\"name\":\"cam \\\"1\\\"\\n\","
	"\"flags\":[true,false]},\"color\":true,\"cloud\":false,\"nothing\":null,"
	"\"extra\":null,\"blob\":[0,1,255]}";

/* --- serde_json's representation, byte for byte ------------------------------------------ */

START_TEST(struct_encodes_as_serde_json_writes_it)
{
	struct typed_record rec, back;

	record_example(&rec);
	assert_json(&typed_record_type, &rec, record_json);
	assert_round_trip(&typed_record_type, record_json, &back);
	ck_assert_str_eq(back.settings.name, "cam \"1\"\n");
	ck_assert_uint_eq(back.blob.len, 3);
	ck_assert_uint_eq(back.blob.data[2], 255);
	ck_assert(!back.extra.present);
	typed_record_free(&back);
	typed_record_free(&rec);
}
END_TEST

START_TEST(numbers_at_their_limits)
{
	struct typed_numbers n = {
		.a = INT8_MIN, .b = INT16_MIN, .c = INT32_MIN, .d = INT64_MIN,
		.e = UINT8_MAX, .f = UINT16_MAX, .g = UINT32_MAX, .h = UINT64_MAX,
		.x = 0.1f, .y = 1e20,
	};
	static const char json[] =
		"{\"a\":-128,\"b\":-32768,\"c\":-2147483648,\"d\":-9223372036854775808,"
		"\"e\":255,\"f\":65535,\"g\":4294967295,\"h\":18446744073709551615,"
		"\"x\":0.1,\"y\":1e20}";
	struct typed_numbers back;

	assert_json(&typed_numbers_type, &n, json);
	assert_round_trip(&typed_numbers_type, json, &back);
	ck_assert(back.a == n.a && back.b == n.b && back.c == n.c && back.d == n.d);
	ck_assert(back.e == n.e && back.f == n.f && back.g == n.g && back.h == n.h);
	ck_assert(back.x == n.x && back.y == n.y);
	n = (struct typed_numbers){ .a = INT8_MAX, .b = INT16_MAX, .c = INT32_MAX, .d = INT64_MAX };
	assert_json(&typed_numbers_type, &n,
		    "{\"a\":127,\"b\":32767,\"c\":2147483647,\"d\":9223372036854775807,"
		    "\"e\":0,\"f\":0,\"g\":0,\"h\":0,\"x\":0.0,\"y\":0.0}");
}
END_TEST

/* f64 as the ryu crate writes it (serde_json's float writer). */
START_TEST(f64_as_ryu_writes_it)
{
	static const struct {
		double v;
		const char *json;
	} cases[] = {
		{ 1.0, "1.0" }, { -0.0, "-0.0" }, { 0.1, "0.1" }, { -2.5, "-2.5" },
		{ 123.456, "123.456" }, { 1.0 / 3, "0.3333333333333333" },
		/* 15 digits, the most that every normal number keeps, and 16 */
		{ 0.123456789012345, "0.123456789012345" }, { 98765.4321098765, "98765.4321098765" },
		{ 1e15, "1000000000000000.0" }, { 1e16, "1e16" }, { 1.5e17, "1.5e17" },
		{ 9007199254740992.0, "9007199254740992.0" },
		{ 123456789012345680.0, "1.2345678901234568e17" },
		{ 0.0001, "0.0001" }, { 0.00001, "0.00001" }, { 0.000001, "1e-6" },
		{ 1.5e-7, "1.5e-7" }, { 5e-324, "5e-324" },
		{ 1.7976931348623157e308, "1.7976931348623157e308" },
		{ 2.2250738585072014e-308, "2.2250738585072014e-308" },
		{ 0x1p-1022, "2.2250738585072014e-308" }, { 0x1p60, "1.152921504606847e18" },
		/* powers of two whose shortest decimal is one up from the nearest
		 * of that many digits (which does not read back) */
		{ 0x1p-1017, "7.120236347223045e-307" }, { 0x1p-1007, "7.291122019556398e-304" },
		{ NAN, "null" }, { INFINITY, "null" }, { -INFINITY, "null" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct typed_numbers n = { .y = cases[i].v };
		char json[160];

		snprintf(json, sizeof(json), "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,"
			 "\"g\":0,\"h\":0,\"x\":0.0,\"y\":%s}", cases[i].json);
		assert_json(&typed_numbers_type, &n, json);
	}
}
END_TEST

START_TEST(f32_as_ryu_writes_it)
{
	static const struct {
		float v;
		const char *json;
	} cases[] = {
		{ 0.1f, "0.1" }, { 1.0f / 3, "0.33333334" }, { 16777216.0f, "16777216.0" },
		{ 123456789.0f, "123456790.0" }, { 1e10f, "10000000000.0" }, { 1e13f, "1e13" },
		{ 3.4028235e38f, "3.4028235e38" }, { 0.000001f, "0.000001" }, { 1e-7f, "1e-7" },
		{ 1e-45f, "1e-45" }, { -1.5f, "-1.5" }, { 0.123456f, "0.123456" },
		{ 1.234567f, "1.234567" }, { 0x1p-12f, "0.00024414062" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct typed_numbers n = { .x = cases[i].v };
		char json[160];

		snprintf(json, sizeof(json), "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,"
			 "\"g\":0,\"h\":0,\"x\":%s,\"y\":0.0}", cases[i].json);
		assert_json(&typed_numbers_type, &n, json);
	}
}
END_TEST

START_TEST(enums_are_externally_tagged)
{
	enum typed_state st = TYPED_STATE_PROCESSING;
	struct typed_reason r, back;
	struct typed_shape s;

	assert_json(&typed_state_type, &st, "\"Processing\"");
	typed_reason_init(&r);
	assert_json(&typed_reason_type, &r, "\"BecauseISaidSo\"");
	r.tag = TYPED_REASON_OBSTRUCTED;
	r.obstructed = S("a tree");
	assert_json(&typed_reason_type, &r, "{\"Obstructed\":\"a tree\"}");
	r.tag = TYPED_REASON_TIMEOUT;
	r.timeout._0 = 5;
	r.timeout._1.present = false;
	assert_json(&typed_reason_type, &r, "{\"Timeout\":[5,null]}");
	r.tag = TYPED_REASON_FAILED;
	r.failed.code = -1;
	r.failed.detail = S("x");
	assert_json(&typed_reason_type, &r, "{\"Failed\":{\"code\":-1,\"detail\":\"x\"}}");
	r.tag = TYPED_REASON_NOTHING;
	assert_json(&typed_reason_type, &r, "{\"Nothing\":null}");

	typed_shape_init(&s);
	s.tag = TYPED_SHAPE_RECT;
	s.rect.w = 1.5f;
	s.rect.h = 2;
	assert_json(&typed_shape_type, &s, "{\"Rect\":{\"w\":1.5,\"h\":2.0}}");
	s.tag = TYPED_SHAPE_POINT;
	assert_json(&typed_shape_type, &s, "\"Point\"");
	s.tag = TYPED_SHAPE_CIRCLE;
	s.circle = 0.25;
	assert_json(&typed_shape_type, &s, "{\"Circle\":0.25}");

	assert_round_trip(&typed_reason_type, "{\"Timeout\":[7,\"late\"]}", &back);
	ck_assert_int_eq(back.tag, TYPED_REASON_TIMEOUT);
	ck_assert_str_eq(back.timeout._1.value, "late");
	typed_reason_free(&back);
	assert_round_trip(&typed_reason_type, "{\"Failed\":{\"code\":3,\"detail\":\"d\"}}", &back);
	typed_reason_free(&back);
	assert_round_trip(&typed_shape_type, "{\"Labelled\":{\"label\":\"l\",\"tags\":[\"a\",\"b\"]}}",
			  &s);
	ck_assert_str_eq(s.labelled.tags.items[1], "b");
	typed_shape_free(&s);
	/* serde_json also reads a unit variant written as an object */
	ck_assert_int_eq(typed_state_decode(&st, pier_format_json(), "{\"Done\":null}", 13, NULL, 0,
					    NULL), 0);
	ck_assert_int_eq(st, TYPED_STATE_DONE);
}
END_TEST

START_TEST(strings_escaped_as_serde_json_escapes_them)
{
	struct typed_labelled l = { .label = S("\x01\x1f\x7f \xc3\xa9 \\ / \b\f\t\r") };

	/* control characters by name or \u00xx (lowercase); DEL, /, UTF-8 as they are */
	assert_json(&typed_labelled_type, &l,
		    "{\"label\":\"\\u0001\\u001f\x7f \xc3\xa9 \\\\ / \\b\\f\\t\\r\",\"tags\":[]}");
	l.label = NULL; /* NULL is the empty string */
	assert_json(&typed_labelled_type, &l, "{\"label\":\"\",\"tags\":[]}");
}
END_TEST

START_TEST(recursion_lists_and_options)
{
	static const char json[] = "{\"value\":1,\"children\":[{\"value\":-2,\"children\":[],"
				   "\"matrix\":[]}],\"matrix\":[[1,null,65535],[]]}";
	struct typed_tree t;
	struct typed_empty e = { 0 };

	assert_round_trip(&typed_tree_type, json, &t);
	ck_assert_uint_eq(t.children.len, 1);
	ck_assert_int_eq(t.children.items[0].value, -2);
	ck_assert_uint_eq(t.matrix.items[0].len, 3);
	ck_assert(!t.matrix.items[0].items[1].present);
	ck_assert_uint_eq(t.matrix.items[0].items[2].value, 65535);
	typed_tree_free(&t);
	assert_json(&typed_empty_type, &e, "{}");
	/* blanks around the value are read, and not written */
	ck_assert_int_eq(typed_empty_decode(&e, pier_format_json(), " {} \n", 5, NULL, 0, NULL), 0);
}
END_TEST

START_TEST(a_missing_option_field_reads_as_none)
{
	struct typed_settings s;
	static const char json[] = "{\"exposure\":1,\"name\":\"n\",\"flags\":[]}";

	ck_assert_int_eq(typed_settings_decode(&s, pier_format_json(), json, strlen(json), NULL, 0,
					       NULL), 0);
	ck_assert(!s.gain.present);
	typed_settings_free(&s);
}
END_TEST

/* --- bad input: errors that name the field ---------------------------------------------------- */

START_TEST(decode_errors_name_the_field)
{
	const struct pier_type *rec = &typed_record_type;

	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":-1,\"name\":\"\",\"flags\":[]},\"color\":true,"
			    "\"cloud\":false,\"nothing\":null,\"blob\":[]}",
			    "record.settings.exposure: expected u32, got -1");
	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":1.5,\"name\":\"\",\"flags\":[]}}",
			    "record.settings.exposure: expected u32, got 1.5");
	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[]},\"color\":\"yes\"}",
			    "record.color: expected bool, got a string");
	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[]},\"cloud\":true}",
			    "record: missing field `color`");
	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[],\"zoom\":2},"
			    "\"color\":true,\"cloud\":false,\"nothing\":null,\"blob\":[]}",
			    "record.settings: unknown field `zoom`");
	assert_decode_error(rec, "record",
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[true,0]}}",
			    "record.settings.flags[1]: expected bool, got 0");
	assert_decode_error(rec, NULL,
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[]},\"color\":true,"
			    "\"cloud\":false,\"nothing\":null,\"blob\":[1,256]}",
			    "Record.blob[1]: expected u8, got 256");
	assert_decode_error(rec, NULL,
			    "{\"settings\":{\"exposure\":1,\"name\":\"\",\"flags\":[]},\"color\":true,"
			    "\"cloud\":false,\"nothing\":0,\"blob\":[]}",
			    "Record.nothing: expected (), got 0");
	assert_decode_error(&typed_tree_type, NULL,
			    "{\"value\":1,\"children\":[{\"value\":2,\"children\":[],"
			    "\"matrix\":[[1,\"x\"]]}],\"matrix\":[]}",
			    "Tree.children[0].matrix[0][1]: expected u16, got a string");
	assert_decode_error(&typed_labelled_type, NULL, "{\"label\":\"a\\u0000b\",\"tags\":[]}",
			    "Labelled.label: a string with a NUL character (\\u0000)");
	assert_decode_error(&typed_labelled_type, NULL, "[\"a\",[]]",
			    "Labelled: expected Labelled, got an array");
}
END_TEST

START_TEST(decode_range_checks)
{
	static const char *const fields[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
	static const char *const too_big[] = {
		"128", "32768", "2147483648", "9223372036854775808",
		"256", "65536", "4294967296", NULL,
	};
	static const char *const too_small[] = {
		"-129", "-32769", "-2147483649", NULL, "-1", "-1", "-1", "-1",
	};
	static const char *const kinds[] = { "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64" };

	for (size_t i = 0; i < 8; i++) {
		for (int small = 0; small < 2; small++) {
			const char *v = small ? too_small[i] : too_big[i];
			char json[256], message[128];

			if (!v)
				continue;
			snprintf(json, sizeof(json), "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,"
				 "\"g\":0,\"h\":0,\"x\":0,\"y\":0,\"%s\":%s}", fields[i], v);
			/* json-c keeps the last of a key given twice: the bad one */
			snprintf(message, sizeof(message), "Numbers.%s: expected %s, got %s",
				 fields[i], kinds[i], v);
			assert_decode_error(&typed_numbers_type, NULL, json, message);
		}
	}
	/* beyond 64 bits: json-c saturates these; they are refused, not cut */
	assert_decode_error(&typed_numbers_type, NULL,
			    "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,"
			    "\"h\":18446744073709551616,\"x\":0,\"y\":0}",
			    "Numbers.h: expected u64, got a number beyond 64 bits");
	assert_decode_error(&typed_numbers_type, NULL,
			    "{\"a\":0,\"b\":0,\"c\":0,\"d\":-9223372036854775809,\"e\":0,\"f\":0,"
			    "\"g\":0,\"h\":0,\"x\":0,\"y\":0}",
			    "Numbers.d: expected i64, got a number beyond 64 bits");
	assert_decode_error(&typed_numbers_type, NULL,
			    "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,"
			    "\"x\":1e39,\"y\":0}",
			    "Numbers.x: expected f32, got 1e39");
	assert_decode_error(&typed_numbers_type, NULL,
			    "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,"
			    "\"x\":0,\"y\":1e400}",
			    "Numbers.y: expected f64, got 1e400");
	assert_decode_error(&typed_numbers_type, NULL,
			    "{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,"
			    "\"x\":0,\"y\":NaN}",
			    "Numbers.y: expected f64, got NaN");
}
END_TEST

START_TEST(decode_enum_errors)
{
	assert_decode_error(&typed_state_type, "state", "\"Stopped\"",
			    "state: unknown variant `Stopped`, expected one of `Recording`, "
			    "`Processing`, `Done`");
	assert_decode_error(&typed_state_type, "state", "{\"Done\":1}",
			    "state: variant `Done` has no data, got 1");
	assert_decode_error(&typed_state_type, "state", "{\"Done\":null,\"Recording\":null}",
			    "state: expected State (a variant's name, or an object of one), got an "
			    "object");
	assert_decode_error(&typed_reason_type, "cancel", "\"Obstructed\"",
			    "cancel: variant `Obstructed` has data: expected {\"Obstructed\": ...}");
	assert_decode_error(&typed_reason_type, "cancel", "{\"Timeout\":[5]}",
			    "cancel.Timeout: expected an array of 2, got 1 item");
	assert_decode_error(&typed_reason_type, "cancel", "{\"Failed\":{\"code\":1}}",
			    "cancel.Failed: missing field `detail`");
}
END_TEST

START_TEST(decode_refuses_what_is_not_one_json_value)
{
	/* json-c reads the last three; serde_json does not: an overlong form,
	 * raw control characters in a string */
	static const char *const bodies[] = {
		"", "{", "{} x", "{}{}", "nul", "\"\xff\"", "{\"a\":}",
		"{\"\xc0\x8b\":1}", "{\"a\x15\":1}", "{\"\n\":1}",
	};

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct typed_empty e;
		struct pier_value_error err = { { 0 } };
		int r = typed_empty_decode(&e, pier_format_json(), bodies[i], strlen(bodies[i]), NULL,
					   0, &err);

		ck_assert_msg(r == -EBADMSG, "%s: %d", bodies[i], r);
		ck_assert_msg(!strncmp(err.message, "Empty: not JSON: ", 17), "%s: %s", bodies[i],
			      err.message);
	}
}
END_TEST

START_TEST(encode_refuses_values_json_cannot_carry)
{
	struct typed_labelled l = { .label = S("a\xff") };
	struct typed_shape s = { .tag = 9 };
	struct pier_encoded out = { 0 };
	struct pier_value_error err;

	ck_assert_int_eq(typed_labelled_encode(&l, pier_format_json(), &out, &err), -EINVAL);
	ck_assert_str_eq(err.message, "Labelled.label: not valid UTF-8 (byte 1)");
	l.label = S("\xed\xa0\x80"); /* a surrogate */
	ck_assert_int_eq(typed_labelled_encode(&l, pier_format_json(), &out, &err), -EINVAL);
	l.label = S("ok");
	l.tags.len = 2;
	ck_assert_int_eq(typed_labelled_encode(&l, pier_format_json(), &out, &err), -EINVAL);
	ck_assert_str_eq(err.message, "Labelled.tags: items is NULL but len is 2");
	ck_assert_int_eq(typed_shape_encode(&s, pier_format_json(), &out, &err), -EINVAL);
	ck_assert_str_eq(err.message, "Shape: tag 9 is not a variant of Shape");
	ck_assert_uint_eq(out.len, 0);
	pier_encoded_release(&out);
}
END_TEST

/* --- fds ---------------------------------------------------------------------------------------- */

START_TEST(fds_travel_beside_the_body_in_field_order)
{
	struct typed_frame f, back;
	struct pier_encoded out = { 0 };
	struct pier_value_error err;
	int fds[2];

	typed_frame_init(&f);
	f.image = memfd_with("image");
	f.meta.depth = memfd_with("depth");
	f.seq = 7;
	f.meta.width = 640;
	ck_assert_int_eq(typed_frame_encode(&f, pier_format_json(), &out, &err), 0);
	ck_assert_str_eq((out.body[out.len] = '\0', out.body), "{\"seq\":7,\"meta\":{\"width\":640}}");
	ck_assert_uint_eq(out.n_fds, 2);
	ck_assert_int_eq(out.fds[0], f.image);
	ck_assert_int_eq(out.fds[1], f.meta.depth);

	/* decoding takes the fds it is given, in the same order */
	fds[0] = dup(f.image);
	fds[1] = dup(f.meta.depth);
	ck_assert_int_eq(typed_frame_decode(&back, pier_format_json(), out.body, out.len, fds, 2,
					    &err), 0);
	ck_assert_int_eq(fds[0], -1);
	ck_assert_int_eq(fds[1], -1);
	ck_assert_uint_eq(back.seq, 7);
	{
		char *image = read_fd(back.image), *depth = read_fd(back.meta.depth);

		ck_assert_str_eq(image, "image");
		ck_assert_str_eq(depth, "depth");
		free(image);
		free(depth);
	}
	typed_frame_free(&back);
	typed_frame_free(&f);
	pier_encoded_release(&out);
}
END_TEST

START_TEST(fd_count_must_match_the_fd_fields)
{
	static const char body[] = "{\"seq\":7,\"meta\":{\"width\":640}}";
	struct typed_frame f;
	struct pier_encoded out = { 0 };
	struct pier_value_error err;
	int fds[3] = { memfd_with("a"), memfd_with("b"), memfd_with("c") };

	ck_assert_int_eq(pier_decode(pier_format_json(), &typed_frame_type, "frame", body,
				     strlen(body), fds, 1, &f, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "frame: expected 2 fds, got 1");
	ck_assert_int_eq(pier_decode(pier_format_json(), &typed_frame_type, "frame", body,
				     strlen(body), fds, 3, &f, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "frame: expected 2 fds, got 3");
	/* a bad body with the right count: the fds stay the caller's */
	ck_assert_int_eq(pier_decode(pier_format_json(), &typed_frame_type, "frame", "{}", 2, fds, 2,
				     &f, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "frame: missing field `seq`");
	ck_assert_int_ge(fds[0], 0);
	ck_assert_int_ge(fds[1], 0);
	ck_assert_int_eq(pier_decode(pier_format_json(), &typed_empty_type, "empty", "{}", 2, fds, 1,
				     &f, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "empty: expected 0 fds, got 1");

	/* an fd field without an fd is not sent */
	typed_frame_init(&f);
	f.meta.depth = fds[2];
	ck_assert_int_eq(typed_frame_encode(&f, pier_format_json(), &out, &err), -EINVAL);
	ck_assert_str_eq(err.message, "Frame.image: no fd (-1)");
	f.image = fds[0];
	f.meta.depth = -1;
	ck_assert_int_eq(typed_frame_encode(&f, pier_format_json(), &out, &err), -EINVAL);
	ck_assert_str_eq(err.message, "Frame.meta.depth: no fd (-1)");
	ck_assert_uint_eq(out.n_fds, 0);
	close(fds[0]);
	close(fds[1]);
	close(fds[2]);
	pier_encoded_release(&out);
}
END_TEST

/* A frame sent as a stream message over seqpacket, received and decoded:
 * the value takes the message's fds; a failed decode leaves them to the
 * message, which closes them. */
START_TEST(msg_decode_takes_the_messages_fds)
{
	struct typed_frame f, back;
	struct pier_encoded out = { 0 };
	struct pier_value_error err;
	pier_received_request *req = NULL;
	pier_peer *a, *b;
	pier_msg *msg;
	char *image;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	typed_frame_init(&f);
	f.image = memfd_with("image");
	f.meta.depth = memfd_with("depth");
	ck_assert_int_eq(typed_frame_encode(&f, pier_format_json(), &out, &err), 0);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pier_writer_send_stream(pier_peer_get_writer(a), TYPED_RECORD_RESPONSE_UPDATE_FRAME_ID,
							 out.body, out.len, out.fds, out.n_fds), 0);
	typed_frame_free(&f);

	ck_assert_int_eq(pier_peer_recv(b, &msg, &req, WAIT), 0);
	ck_assert_int_eq(pier_msg_decode(msg, pier_format_json(), &typed_frame_type, "frame", &back,
					 &err), 0);
	ck_assert_int_eq(pier_msg_fd(msg, 0), -EBADF); /* taken */
	pier_msg_free(msg);
	image = read_fd(back.image);
	ck_assert_str_eq(image, "image");
	free(image);
	typed_frame_free(&back);

	/* the wrong type: nothing taken, and pier_msg_free() closes them */
	ck_assert_int_eq(pier_peer_recv(b, &msg, &req, WAIT), 0);
	ck_assert_int_eq(pier_msg_decode(msg, pier_format_json(), &typed_empty_type, "empty", &back,
					 &err), -EBADMSG);
	ck_assert_str_eq(err.message, "empty: expected 0 fds, got 2");
	ck_assert_int_ge(pier_msg_fd(msg, 1), 0);
	pier_msg_free(msg);
	pier_encoded_release(&out);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

#endif /* HAVE_JSON_C */

int main(void)
{
	Suite *s = suite_create("typed");
	TCase *tc = th_tcase("values", TH_TIMEOUT);

	tcase_add_test(tc, init_sets_fds_to_minus_one_and_free_closes_them);
	tcase_add_test(tc, an_enum_of_fd_variants_holds_no_fd);
	tcase_add_test(tc, free_releases_every_kind_of_owned_memory);
	tcase_add_test(tc, without_a_format_nothing_is_encoded);
	suite_add_tcase(s, tc);
#ifdef HAVE_JSON_C
	tc = th_tcase("json", TH_TIMEOUT);
	tcase_add_test(tc, struct_encodes_as_serde_json_writes_it);
	tcase_add_test(tc, numbers_at_their_limits);
	tcase_add_test(tc, f64_as_ryu_writes_it);
	tcase_add_test(tc, f32_as_ryu_writes_it);
	tcase_add_test(tc, enums_are_externally_tagged);
	tcase_add_test(tc, strings_escaped_as_serde_json_escapes_them);
	tcase_add_test(tc, recursion_lists_and_options);
	tcase_add_test(tc, a_missing_option_field_reads_as_none);
	suite_add_tcase(s, tc);
	tc = th_tcase("bad input", TH_TIMEOUT);
	tcase_add_test(tc, decode_errors_name_the_field);
	tcase_add_test(tc, decode_range_checks);
	tcase_add_test(tc, decode_enum_errors);
	tcase_add_test(tc, decode_refuses_what_is_not_one_json_value);
	tcase_add_test(tc, encode_refuses_values_json_cannot_carry);
	suite_add_tcase(s, tc);
	tc = th_tcase("fds", TH_TIMEOUT);
	tcase_add_test(tc, fds_travel_beside_the_body_in_field_order);
	tcase_add_test(tc, fd_count_must_match_the_fd_fields);
	tcase_add_test(tc, msg_decode_takes_the_messages_fds);
	suite_add_tcase(s, tc);
#endif
	return th_run(s);
}
