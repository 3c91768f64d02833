/* SPDX-License-Identifier: MIT */
/* The request-id map: what it holds against a plain array, ids counting up
 * side by side in their slots, ids that crowd together kept near their
 * homes by the seeded hash, and memory given back after a burst. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>

#include "harness.h"
#include "idmap.h"

/* Far past where the seeded hash ever puts an entry at a load of 1/2 (the
 * chance is below 2^-100), and far short of a crowd's length. */
#define NEAR_ENOUGH 200

/* Every entry of m sits no farther than m->far from its home slot; and with
 * homes by low bits, that is at most IDMAP_NEAR. */
static void check_far(const struct idmap *m)
{
	ck_assert(m->seed || m->far <= IDMAP_NEAR);
	ck_assert_uint_le(m->far, NEAR_ENOUGH);
}

/* Puts and deletes at random among n ids, i << shift (0: counting up; 16:
 * crowding on the same low bits), checked against an array. */
static void random_ops(unsigned int shift, unsigned int n, unsigned long ops)
{
	char *in = calloc(n, 1);
	struct idmap m;
	size_t count = 0;

	idmap_init(&m);
	srand(1);
	for (unsigned long op = 0; op < ops; op++) {
		/* Phases of many ids and of few, so that the map grows and
		 * shrinks. */
		unsigned int i = (unsigned int)rand() % (op / 50000 % 2 ? 64 : n);
		uint32_t id = (uint32_t)i << shift;

		switch (rand() % 3) {
		case 0:
			if (in[i])
				break;
			ck_assert_int_eq(idmap_put(&m, id, &in[i]), 0);
			in[i] = 1;
			count++;
			break;
		case 1:
			ck_assert_ptr_eq(idmap_del(&m, id), in[i] ? &in[i] : NULL);
			count -= in[i];
			in[i] = 0;
			break;
		default:
			ck_assert_ptr_eq(idmap_get(&m, id), in[i] ? &in[i] : NULL);
		}
		ck_assert_uint_eq(m.count, count);
	}
	check_far(&m);
	for (unsigned int i = 0; i < n; i++)
		ck_assert_ptr_eq(idmap_get(&m, (uint32_t)i << shift), in[i] ? &in[i] : NULL);
	idmap_fini(&m);
	free(in);
}

START_TEST(matches_an_array)
{
	random_ops(_i ? 16 : 0, 20000, 400000);
}
END_TEST

/* Ids counting up, while a block of older ones stays open: each sits in the
 * slot of its low bits, so one request after another touches the cache
 * line and page of the one before. */
START_TEST(counting_ids_side_by_side)
{
	static char v[1];
	struct idmap m;

	idmap_init(&m);
	for (uint32_t id = 0; id < 100000; id++)
		ck_assert_int_eq(idmap_put(&m, id, v), 0);
	for (uint32_t id = 100000; id < 150000; id++) {
		ck_assert_int_eq(idmap_put(&m, id, v), 0);
		ck_assert_ptr_eq(idmap_get(&m, id), v);
		ck_assert_ptr_eq(idmap_del(&m, id), v);
	}
	ck_assert_uint_eq(m.seed, 0);
	ck_assert_uint_eq(m.far, 0);
	for (uint32_t id = 0; id < 100000; id++) {
		ck_assert_uint_eq(m.slots[id & m.mask].key, id);
		ck_assert_ptr_eq(m.slots[id & m.mask].value, v);
	}
	idmap_fini(&m);
}
END_TEST

/* Ids a remote chose to share their low bits would pile up on one slot
 * (_i 0); a counter come round onto a block still open would probe across
 * it (_i 1).  Both end up near their homes, by the seeded hash, and are all
 * found. */
START_TEST(crowding_ids_stay_near)
{
	static char v[1];
	uint32_t n = 20000, k = 10000, lap = 0;
	struct idmap m;

	idmap_init(&m);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_int_eq(idmap_put(&m, _i ? i : i << 16, v), 0);
	if (_i) {
		/* Not so many that the map grows, which would undo the lap. */
		lap = (uint32_t)m.mask + 1;
		ck_assert_uint_le(n + k, lap / 2);
		for (uint32_t i = 0; i < k; i++)
			ck_assert_int_eq(idmap_put(&m, lap + i, v), 0);
	}
	ck_assert_uint_ne(m.seed, 0);
	check_far(&m);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_ptr_eq(idmap_get(&m, _i ? i : i << 16), v);
	for (uint32_t i = 0; i < (_i ? k : 0); i++)
		ck_assert_ptr_eq(idmap_get(&m, lap + i), v);
	idmap_fini(&m);
}
END_TEST

/* Each map draws its own seed: what crowds one map's slots says nothing
 * of another's. */
START_TEST(seeds_differ)
{
	static char v[1];
	struct idmap a, b;

	idmap_init(&a);
	idmap_init(&b);
	for (uint32_t i = 0; i < 1000; i++) {
		ck_assert_int_eq(idmap_put(&a, i << 16, v), 0);
		ck_assert_int_eq(idmap_put(&b, i << 16, v), 0);
	}
	ck_assert_uint_ne(a.seed, 0);
	ck_assert_uint_ne(b.seed, 0);
	ck_assert_uint_ne(a.seed, b.seed);
	idmap_fini(&a);
	idmap_fini(&b);
}
END_TEST

/* After a burst of ids counting up (_i 0) or crowding (_i 1), the map
 * shrinks back, with a few stragglers left or with none; empty, it has its
 * homes by low bits again. */
START_TEST(burst_given_back)
{
	static char v[1];
	uint32_t n = 100000, left = _i ? 0 : 5;
	struct idmap m;

	idmap_init(&m);
	for (uint32_t i = 0; i < n; i++)
		ck_assert_int_eq(idmap_put(&m, _i ? i << 16 | i >> 16 : i, v), 0);
	ck_assert_uint_ge(m.mask + 1, 2 * n);
	for (uint32_t i = left; i < n; i++)
		ck_assert_ptr_eq(idmap_del(&m, _i ? i << 16 | i >> 16 : i), v);
	ck_assert_uint_eq(m.count, left);
	ck_assert_uint_le(m.mask + 1, 1024);
	ck_assert_uint_eq(m.seed, 0);
	for (uint32_t i = 0; i < left; i++)
		ck_assert_ptr_eq(idmap_get(&m, i), v);
	idmap_fini(&m);
}
END_TEST

/* A counter come round onto a block still open sends the map to the seeded
 * hash; once that block is answered and the map next shrinks, ids sit by
 * their low bits again. */
START_TEST(low_bits_come_back)
{
	static char v[1];
	uint32_t n = 5000, k = 1000, lap;
	struct idmap m;

	idmap_init(&m);
	for (uint32_t id = 0; id < n; id++)
		ck_assert_int_eq(idmap_put(&m, id, v), 0);
	lap = (uint32_t)m.mask + 1;
	ck_assert_uint_le(n + k, lap / 2);
	for (uint32_t id = lap; id < lap + k; id++)
		ck_assert_int_eq(idmap_put(&m, id, v), 0);
	ck_assert_uint_ne(m.seed, 0);
	for (uint32_t id = 0; id < n; id++)
		ck_assert_ptr_eq(idmap_del(&m, id), v);
	for (uint32_t id = lap; id < lap + k - 100; id++)
		ck_assert_ptr_eq(idmap_del(&m, id), v);
	ck_assert_uint_eq(m.count, 100);
	ck_assert_uint_eq(m.seed, 0);
	ck_assert_uint_eq(m.far, 0);
	for (uint32_t id = lap + k - 100; id < lap + k; id++)
		ck_assert_ptr_eq(idmap_get(&m, id), v);
	idmap_fini(&m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("idmap");
	TCase *tc = th_tcase("idmap", 30);

	tcase_add_loop_test(tc, matches_an_array, 0, 2);
	tcase_add_test(tc, counting_ids_side_by_side);
	tcase_add_loop_test(tc, crowding_ids_stay_near, 0, 2);
	tcase_add_test(tc, seeds_differ);
	tcase_add_loop_test(tc, burst_given_back, 0, 2);
	tcase_add_test(tc, low_bits_come_back);
	suite_add_tcase(s, tc);
	return th_run(s);
}
