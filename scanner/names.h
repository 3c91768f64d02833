/* SPDX-License-Identifier: MIT */
/* The C names of what an interface file declares. */
#ifndef PIER_SCANNER_NAMES_H
#define PIER_SCANNER_NAMES_H

#include "ast.h"

/* RecordRequest -> record_request, HTTPServer -> http_server. */
char *c_snake(struct arena *a, const char *name);
/* record_request -> RECORD_REQUEST */
char *c_upper(struct arena *a, const char *name);
/* Whether name cannot name a C member: a C keyword (C23's included), a
 * macro every C program may see, or a reserved identifier. */
bool c_reserved(const char *name);

/* A type as the file writes it: "u32", "Vec<Image>", "Option<String>". */
char *type_spelling(struct arena *a, const struct typeref *t);
/* A type as part of a C name: "u32", "list_image", "option_string". */
char *type_mangled(struct arena *a, const struct typeref *t);

/* The C type of a type, with prefix: "uint32_t", "struct camera_image",
 * "enum camera_state", "struct camera_list_u32". */
char *c_type(struct arena *a, const char *prefix, const struct typeref *t);

/* The C name of a list or option type (struct NAME), with prefix. */
char *c_compound_name(struct arena *a, const char *prefix, const struct typeref *t);
/* The C name of a defined type, with prefix: camera_record_request. */
char *c_def_name(struct arena *a, const char *prefix, const struct typedef_ *d);
/* The C name of a tuple or struct variant's data: camera_shape_rect. */
char *c_variant_struct(struct arena *a, const char *prefix, const struct typedef_ *d,
		       const struct variant *v);

/* Turns a file name into a C prefix: its base name up to the first dot,
 * other characters than letters, digits and _ as _ (camera.pier ->
 * camera, "my-api.pier" -> my_api).  NULL if that does not start with a
 * letter. */
char *prefix_from_path(struct arena *a, const char *path);

#endif
