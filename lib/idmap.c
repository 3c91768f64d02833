/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "idmap.h"

#define IDMAP_MIN 16

static size_t slot_of(const struct idmap *m, uint32_t key)
{
	/* Fibonacci hashing: ids are mostly consecutive; spread them. */
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & m->mask;
}

void idmap_init(struct idmap *m)
{
	m->slots = NULL;
	m->mask = 0;
	m->count = 0;
}

void idmap_fini(struct idmap *m)
{
	free(m->slots);
	idmap_init(m);
}

void *idmap_get(const struct idmap *m, uint32_t key)
{
	if (!m->slots)
		return NULL;
	for (size_t i = slot_of(m, key);; i = (i + 1) & m->mask) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			return m->slots[i].value;
	}
}

static void insert(struct idmap *m, uint32_t key, void *value)
{
	size_t i = slot_of(m, key);

	while (m->slots[i].value)
		i = (i + 1) & m->mask;
	m->slots[i].key = key;
	m->slots[i].value = value;
	m->count++;
}

static int resize(struct idmap *m, size_t capacity)
{
	struct idmap_slot *old = m->slots;
	size_t old_cap = old ? m->mask + 1 : 0;

	m->slots = calloc(capacity, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -ENOMEM;
	}
	m->mask = capacity - 1;
	m->count = 0;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].value)
			insert(m, old[i].key, old[i].value);
	free(old);
	return 0;
}

int idmap_put(struct idmap *m, uint32_t key, void *value)
{
	size_t cap = m->slots ? m->mask + 1 : 0;

	/* Keep the load at or under 1/2: probes stay short. */
	if ((m->count + 1) * 2 > cap) {
		int r = resize(m, cap ? cap * 2 : IDMAP_MIN);

		if (r < 0)
			return r;
	}
	insert(m, key, value);
	return 0;
}

void *idmap_del(struct idmap *m, uint32_t key)
{
	size_t i, j;
	void *value;

	if (!m->slots)
		return NULL;
	for (i = slot_of(m, key);; i = (i + 1) & m->mask) {
		if (!m->slots[i].value)
			return NULL;
		if (m->slots[i].key == key)
			break;
	}
	value = m->slots[i].value;
	m->slots[i].value = NULL;
	m->count--;
	/* Shift back the entries of the run that follows, so no probe
	 * sequence passes through a hole. */
	for (j = (i + 1) & m->mask; m->slots[j].value; j = (j + 1) & m->mask) {
		size_t home = slot_of(m, m->slots[j].key);

		/* Move j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & m->mask) >= ((j - i) & m->mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].value = NULL;
			i = j;
		}
	}
	/* Give memory back after a burst, but not on every small swing. */
	if (m->mask + 1 > 1024 && m->count * 8 < m->mask + 1)
		resize(m, (m->mask + 1) / 2); /* on failure, the map stays as it is */
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
