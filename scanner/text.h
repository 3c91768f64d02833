/* SPDX-License-Identifier: MIT */
/* An interface written back as interface-file text (scanner/text.c). */
#ifndef PIER_SCANNER_TEXT_H
#define PIER_SCANNER_TEXT_H

#include "ast.h"

/* The text of interface in of f (which check_file() resolved): the
 * interface and the types it uses, a file of its own that parses back into
 * the same.  In a. */
const char *text_of_interface(struct arena *a, const struct file *f, const struct interface *in);

#endif
