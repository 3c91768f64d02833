/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "idmap.h"

#define IDMAP_MIN 16

static size_t home_of(const struct idmap *m, uint32_t key)
{
	uint64_t x = key ^ m->seed;

	if (!m->seed)
		return key & m->mask;
	/* MurmurHash3's finalizer: every bit of the seeded id moves every
	 * bit of the result. */
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (size_t)x & m->mask;
}

static uint64_t new_seed(const void *salt)
{
	uint64_t seed;
	struct timespec ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		/* No entropy yet (early boot): the clock and an address,
		 * which the remote does not see closely, will do. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint64_t)ts.tv_sec << 30 ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)salt) *
		       0x9e3779b97f4a7c15ull;
	}
	return seed | 1; /* 0 would mean low bits */
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->count = 0;
	m->far = 0;
	m->seed = 0;
}

void idmap_fini(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

/* The slot holding key, or -1.  An entry is never more than far slots from
 * its home, nor past an empty slot. */
static ptrdiff_t find(const struct idmap *m, uint32_t key)
{
	size_t i, d;

	if (!m->slots)
		return -1;
	for (i = home_of(m, key), d = 0; d <= m->far && m->slots[i].value;
	     i = (i + 1) & m->mask, d++)
		if (m->slots[i].key == key)
			return (ptrdiff_t)i;
	return -1;
}

void *idmap_get(const struct idmap *m, uint32_t key)
{
	ptrdiff_t i = find(m, key);

	return i < 0 ? NULL : m->slots[i].value;
}

/* Puts key in the first empty slot from its home; false, leaving the map as
 * it is, when with homes by low bits that is more than IDMAP_NEAR on. */
static bool place(struct idmap *m, uint32_t key, void *value)
{
	size_t i = home_of(m, key), d = 0;

	for (; m->slots[i].value; i = (i + 1) & m->mask)
		if (++d > IDMAP_NEAR && !m->seed)
			return false;
	m->slots[i].key = key;
	m->slots[i].value = value;
	m->count++;
	if (d > m->far)
		m->far = d;
	return true;
}

/* Moves every entry into capacity new slots, homed by low bits unless
 * seeded, or unless one of them would then sit far from its home. */
static int rebuild(struct idmap *m, size_t capacity, bool seeded)
{
	struct idmap_slot *old = m->slots;
	size_t old_cap = old ? m->mask + 1 : 0, i = 0;
	struct idmap fresh;

	idmap_init(&fresh);
	fresh.slots = calloc(capacity, sizeof(*fresh.slots));
	if (!fresh.slots)
		return -ENOMEM;
	fresh.mask = capacity - 1;
	fresh.seed = seeded ? new_seed(fresh.slots) : 0;
	while (i < old_cap) {
		if (!old[i].value || place(&fresh, old[i].key, old[i].value)) {
			i++;
			continue;
		}
		/* One would sit far from its home: start again, seeded. */
		memset(fresh.slots, 0, capacity * sizeof(*fresh.slots));
		fresh.count = 0;
		fresh.far = 0;
		fresh.seed = new_seed(fresh.slots);
		i = 0;
	}
	free(old);
	*m = fresh;
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, void *value)
{
	size_t cap = m->slots ? m->mask + 1 : 0;
	int r;

	/* Keep the load at or under 1/2: probes stay short. */
	if ((m->count + 1) * 2 > cap) {
		r = rebuild(m, cap ? cap * 2 : IDMAP_MIN, false);
		if (r < 0)
			return r;
	}
	if (place(m, key, value))
		return 0;
	/* Ids crowd together: hash them, seeded, from now on. */
	r = rebuild(m, m->mask + 1, true);
	if (r < 0)
		return r;
	place(m, key, value); /* seeded, it always can */
	return 0;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
	ptrdiff_t found = find(m, key);
	size_t i, j;
	void *value;

	if (found < 0)
		return NULL;
	i = (size_t)found;
	value = m->slots[i].value;
	m->slots[i].value = NULL;
	m->count--;
	/* Shift back the entries of the run that follows, so no probe
	 * sequence passes through a hole.  Only an entry within far slots of
	 * the hole can have its home at or before it. */
	for (j = (i + 1) & m->mask; m->slots[j].value && ((j - i) & m->mask) <= m->far;
	     j = (j + 1) & m->mask) {
		size_t home = home_of(m, m->slots[j].key);

		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].value = NULL;
			i = j;
		}
	}
	if (!m->count) {
		/* Empty, the map can go back to low bits for nothing. */
		m->far = 0;
		m->seed = 0;
	}
	/* Give memory back after a burst, but not on every small swing. */
	if (m->mask + 1 > 1024 && m->count * 8 < m->mask + 1)
		rebuild(m, (m->mask + 1) / 2, false); /* on failure, the map stays as it is */
	return value;
}

void idmap_each(const struct idmap *m, void (*fn)(void *value, void *ctx), void *ctx)
{
	if (!m->slots)
		return;
	for (size_t i = 0; i <= m->mask; i++)
		if (m->slots[i].value)
			fn(m->slots[i].value, ctx);
}
