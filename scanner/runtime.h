/* SPDX-License-Identifier: MIT */
/* Descriptions of an interface file's types made at run time
 * (scanner/runtime.c), for tools that read interface files. */
#ifndef PIER_SCANNER_RUNTIME_H
#define PIER_SCANNER_RUNTIME_H

#include <pier/typed.h>

#include "ast.h"

/* The description of interface in of f (which check_file() resolved), as
 * pier-scanner's generated code would hold it, source included; every
 * part of it in a, valid until a is freed. */
const struct pier_interface_type *runtime_interface(struct arena *a, const struct file *f,
						    const struct interface *in);

#endif
