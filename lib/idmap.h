/* SPDX-License-Identifier: MIT */
/* A hash map from request id to pointer: open addressing, linear probing,
 * backward-shift deletion (no tombstones), so lookups stay flat however many
 * requests are open and however long they have been churning. */
#ifndef PIER_IDMAP_H
#define PIER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap_slot {
	uint32_t key;
	void *value; /* NULL marks an empty slot */
};

struct idmap {
	struct idmap_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t count;
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
