/* SPDX-License-Identifier: MIT */
/* A hash map from request id to pointer: open addressing, linear probing,
 * backward-shift deletion (no tombstones), so lookups stay flat however many
 * requests are open and however long they have been churning.
 *
 * Ids mostly count up, so an id's home slot is its low bits: the requests
 * made one after another sit side by side, and a new one lands on the cache
 * line and page of the one before, however big the map.  Ids that crowd
 * together that way (chosen to, or a counter that came round onto requests
 * still open) would make long probes, so as soon as an entry would sit more
 * than IDMAP_NEAR slots from its home, the map goes over to a hash seeded at
 * random, which ids chosen by someone who does not know the seed cannot
 * crowd; it tries low bits again when it next grows, shrinks or empties.
 * Ids crowded on purpose thus cost a rebuild now and then, never a walk
 * across the other requests on every lookup. */
#ifndef PIER_IDMAP_H
#define PIER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#define IDMAP_NEAR 32

struct idmap_slot {
	uint32_t key;
	void *value; /* NULL marks an empty slot */
};

struct idmap {
	struct idmap_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t count;
	size_t far;    /* no entry sits farther than this from its home slot */
	uint64_t seed; /* 0: homes are ids' low bits; else (odd) the hash's seed */
};

void idmap_init(struct idmap *m);
void idmap_fini(struct idmap *m);
void *idmap_get(const struct idmap *m, uint32_t key);
/* Returns 0, or -ENOMEM.  value is not NULL and key is not present. */
int idmap_put(struct idmap *m, uint32_t key, void *value);
/* Returns the value removed, or NULL. */
void *idmap_del(struct idmap *m, uint32_t key);

/* Calls fn on every value; fn must not change the map. */
void idmap_each(const struct idmap *m, void (*fn)(void *value, void *ctx), void *ctx);

#endif
