/* SPDX-License-Identifier: MIT */
/* Shared by the fuzz targets, built either for libFuzzer or with replay.c. */
#ifndef PIER_FUZZ_H
#define PIER_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional: libFuzzer calls it once before the first input (replay.c does
 * not, so a target must work without it). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* An assertion that stays on in every build: a property the target checks. */
#define fuzz_assert(cond)                                                          \
	do {                                                                       \
		if (!(cond)) {                                                     \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, \
				__LINE__, #cond);                                  \
			abort();                                                   \
		}                                                                  \
	} while (0)

#endif
