/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every part of the library.  Not installed. */
#ifndef PIER_PRIVATE_H
#define PIER_PRIVATE_H

#include <stddef.h>

/* Marks the definition of a public function: the library is built with
 * -fvisibility=hidden and lists every exported name in libpier.sym. */
#define PIER_EXPORT __attribute__((visibility("default")))

#define PIER_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The object of type type whose member member is at ptr. */
#define pier_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#define pier_likely(x) __builtin_expect(!!(x), 1)
#define pier_unlikely(x) __builtin_expect(!!(x), 0)

#endif
