/* SPDX-License-Identifier: MIT */
/* The JSON format: the writer and the reader in one table.  The reader
 * needs json-c; a library built without it has no JSON format at all, so
 * that no peer of it ever sends bodies it could not read back. */
#include "config.h"

#include <stddef.h>

#include "json-int.h"
#include "private.h"

#ifdef HAVE_JSON_C
static const struct pier_format json_format = {
	.name = "json",
	.encode = json_encode,
	.decode = json_decode,
};
#endif

PIER_EXPORT const struct pier_format *pier_format_json(void)
{
#ifdef HAVE_JSON_C
	return &json_format;
#else
	return NULL;
#endif
}
