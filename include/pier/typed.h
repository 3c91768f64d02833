/* SPDX-License-Identifier: MIT */
/*
 * Typed message bodies: what the code pier-scanner(1) generates builds on.
 *
 * An interface file (pier-interface(5)) declares types; pier-scanner turns
 * each into a C type and a description of it, a struct pier_type, which
 * these functions walk: to initialise and free a value, and to encode and
 * decode it through a format (struct pier_format; JSON in serde_json's
 * representation is the first, pier_format_json()).
 *
 * Ownership follows <pier.h>'s words.  A value owns what its pointers point
 * to (strings, byte arrays, list items) and its fd fields: pier_value_free()
 * releases all of it and closes the fds.  Encoding borrows the value;
 * decoding fills a value the caller then owns.
 *
 * Needs C11 (the generated tagged unions have anonymous members).
 */
#ifndef PIER_TYPED_H
#define PIER_TYPED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pier.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The kinds of types an interface file can name.  Values of PIER_KIND_*
 * are stable: generated code stores them. */
enum pier_kind {
	PIER_KIND_UNIT,   /* (): struct pier_unit; JSON null */
	PIER_KIND_BOOL,   /* bool */
	PIER_KIND_I8,     /* int8_t ... */
	PIER_KIND_I16,
	PIER_KIND_I32,
	PIER_KIND_I64,
	PIER_KIND_U8,     /* uint8_t ... */
	PIER_KIND_U16,
	PIER_KIND_U32,
	PIER_KIND_U64,
	PIER_KIND_F32,    /* float */
	PIER_KIND_F64,    /* double */
	PIER_KIND_STRING, /* char *: owned, NUL-terminated UTF-8; NULL reads as "" */
	PIER_KIND_BYTES,  /* struct pier_bytes (Vec<u8>) */
	PIER_KIND_FD,     /* int: owned, -1 for none; travels as a message fd */
	PIER_KIND_LIST,   /* struct { T *items; size_t len; } (Vec<T>) */
	PIER_KIND_OPTION, /* struct { bool present; T value; } (Option<T>) */
	PIER_KIND_STRUCT, /* a struct with named fields */
	PIER_KIND_TUPLE,  /* a struct with fields _0, _1...: a tuple variant's data */
	PIER_KIND_ENUM,   /* an enum: its tag (an int) first, then a union */
};

/* The value of (): nothing, but a C member needs a size. */
struct pier_unit {
	char unused;
};

/* A byte array (Vec<u8>).  The value owns data (malloc'd; NULL when len
 * is 0). */
struct pier_bytes {
	uint8_t *data;
	size_t len;
};

struct pier_type;

/* A field of a struct (or of a tuple: names "0", "1"...). */
struct pier_field {
	const char *name;
	const struct pier_type *type;
	size_t offset;
};

/* A variant of an enum.  type is NULL for a unit variant; otherwise the
 * variant's data (its one type, or the struct generated for its fields)
 * lies at offset in the enum's value. */
struct pier_variant {
	const char *name;
	const struct pier_type *type;
	size_t offset;
};

/* The description of a type, written by pier-scanner.  Every pointer in it
 * is borrowed and static. */
struct pier_type {
	enum pier_kind kind;
	const char *name;            /* as written: "Image", "u32", "Vec<u8>" */
	size_t size;                 /* sizeof a value */
	const struct pier_type *item; /* LIST, OPTION: the element type */
	size_t item_offset;          /* OPTION: offsetof its value member */
	const struct pier_field *fields;     /* STRUCT, TUPLE */
	const struct pier_variant *variants; /* ENUM, in tag order from 0 */
	size_t count;                /* how many fields or variants */
	size_t fds;                  /* fds a value carries (its fd fields) */
};

/* Fills value with the empty value of type: zeroes, fds -1, enums at their
 * first variant, options absent. */
void pier_value_init(const struct pier_type *type, void *value);

/* Frees what value owns (closing its fds) and leaves it as
 * pier_value_init() would.  NULL type or value: nothing. */
void pier_value_free(const struct pier_type *type, void *value);

/* What an encode or a decode tells when it fails: the field's path and what
 * was wrong, e.g. "record.settings.exposure: expected u32, got -1". */
struct pier_value_error {
	char message[256];
};

/* The most fds one message may carry (Linux's SCM_MAX_FD). */
#define PIER_TYPED_MAX_FDS 253

/* An encoded message: a body and the fds of the value's fd fields, in
 * order.  Start from { 0 }; reuse it for many encodes (the body's buffer
 * grows and stays); pier_encoded_release() frees the buffer.  body is
 * owned by the struct; the fds are borrowed from the value encoded. */
struct pier_encoded {
	char *body;
	size_t len;
	size_t cap;
	int fds[PIER_TYPED_MAX_FDS];
	size_t n_fds;
};

void pier_encoded_release(struct pier_encoded *out);

/* A format: how values become bodies and back.  The fds of fd fields are
 * not a format's business: pier_encode() and pier_decode() handle them.
 *
 * encode writes the body of value into out->body, out->len (growing
 * out->body with realloc() as needed, out->cap its size).  decode fills
 * value, which the caller initialised, from body, and on failure leaves
 * it freed (as pier_value_init() leaves it).  Both return 0, -EINVAL
 * (encode: a value the format cannot represent), -EBADMSG (decode: a body
 * that is not a value of type) or -ENOMEM, and on failure write err
 * (which may be NULL), starting the path with what. */
struct pier_format {
	const char *name;
	int (*encode)(const struct pier_type *type, const void *value, const char *what,
		      struct pier_encoded *out, struct pier_value_error *err);
	int (*decode)(const struct pier_type *type, void *value, const char *what,
		      const void *body, size_t len, struct pier_value_error *err);
};

/* JSON as serde_json writes and reads it by default: borrowed, static.
 * NULL when the library was built without json-c. */
const struct pier_format *pier_format_json(void);

/* Encodes value (borrowed) of type into out with fmt.  what names the
 * value in error messages (NULL: the type's name).  out->fds receives the
 * value's fds, borrowed; an fd field of -1 is an error. */
int pier_encode(const struct pier_format *fmt, const struct pier_type *type, const void *value,
		const char *what, struct pier_encoded *out, struct pier_value_error *err);

/* Decodes body into value (uninitialised on entry; owned by the caller on
 * success, to free with pier_value_free()).  fds are the message's: their
 * count must be type->fds.  On success the value has taken every one of
 * them and fds[i] are set to -1; on failure they stay the caller's. */
int pier_decode(const struct pier_format *fmt, const struct pier_type *type, const char *what,
		const void *body, size_t len, int *fds, size_t n_fds, void *value,
		struct pier_value_error *err);

/* pier_decode() of a received message's body and fds: on success the value
 * has taken the message's fds (pier_msg_take_fd()); on failure the message
 * keeps them. */
int pier_msg_decode(pier_msg *msg, const struct pier_format *fmt, const struct pier_type *type,
		    const char *what, void *value, struct pier_value_error *err);

/* --- interfaces: typed calls ------------------------------------------------ */

/* An update or a stream message of an interface, as pier-scanner
 * describes it: its service id, name and body type; doc and hidden as the
 * interface file says (doc NULL for none). */
struct pier_message_type {
	const char *name;
	int32_t service_id;
	const struct pier_type *body;
	const char *doc;
	bool hidden;
};

/* A service: its request and response types, and its updates each way.
 * request_updates_union and response_updates_union describe the tagged
 * unions pier-scanner generates for received updates: ENUM types whose
 * variant i is update i of the list (NULL when the list is empty). */
struct pier_service_type {
	const char *name;
	int32_t service_id;
	const char *doc;
	bool hidden;
	const struct pier_type *request;
	const struct pier_type *response;
	const struct pier_message_type *request_updates;
	size_t n_request_updates;
	const struct pier_message_type *response_updates;
	size_t n_response_updates;
	const struct pier_type *request_updates_union;
	const struct pier_type *response_updates_union;
};

/* An interface: its services and streams, for introspection.  source is
 * the interface-file text (pier-interface(5)) that declares it and every
 * type it uses: what pier_describe_reply(3) answers. */
struct pier_interface_type {
	const char *name;
	const char *doc;
	bool hidden;
	const struct pier_service_type *services;
	size_t n_services;
	const struct pier_message_type *streams;
	size_t n_streams;
	const char *source;
};

/* The calls the generated client and server make: pier_typed_call(3).
 * Values borrowed; received ones owned by the caller on success
 * (pier_value_free()).  Error messages start with the service's name. */
int pier_typed_call(pier_writer *w, const struct pier_format *fmt,
		    const struct pier_service_type *svc, const void *request,
		    pier_sent_request **out, struct pier_value_error *err);
int pier_typed_call_send_update(pier_sent_request *req, const struct pier_format *fmt,
				const struct pier_service_type *svc, size_t index,
				const void *update, struct pier_value_error *err);
int pier_typed_call_recv_update(pier_sent_request *req, const struct pier_format *fmt,
				const struct pier_service_type *svc, void *update, int timeout_ms,
				struct pier_value_error *err);
int pier_typed_call_recv_response(pier_sent_request *req, const struct pier_format *fmt,
				  const struct pier_service_type *svc, void *response,
				  int timeout_ms, struct pier_value_error *err);
int pier_typed_reply_send_update(pier_received_request *req, const struct pier_format *fmt,
				 const struct pier_service_type *svc, size_t index,
				 const void *update, struct pier_value_error *err);
int pier_typed_reply_recv_update(pier_received_request *req, const struct pier_format *fmt,
				 const struct pier_service_type *svc, void *update,
				 int timeout_ms, struct pier_value_error *err);
int pier_typed_reply_send_response(pier_received_request *req, const struct pier_format *fmt,
				   const struct pier_service_type *svc, const void *response,
				   struct pier_value_error *err);
int pier_typed_send_stream(pier_writer *w, const struct pier_format *fmt,
			   const struct pier_message_type *stream, const void *value,
			   struct pier_value_error *err);

/* --- introspection: pier_describe(3) ------------------------------------------- */

/* The service id pier(1) asks for a description on unless told another.
 * Any id works, as long as both sides use the same. */
#define PIER_DESCRIBE_SERVICE (-100)

/* A description: the sources (struct pier_interface_type) of the
 * interfaces a peer serves, each a file of its own.  In JSON, an array of
 * strings (Vec<String>).  From pier_describe(), owned by its caller:
 * pier_description_free(). */
struct pier_description {
	char **sources;
	size_t n;
};

/* Answers req (borrowed; not freed) with the sources of ifaces[0..n)
 * (borrowed). */
int pier_describe_reply(pier_received_request *req,
			const struct pier_interface_type *const *ifaces, size_t n,
			struct pier_value_error *err);
/* Has s answer requests on service_id with the sources of ifaces[0..n),
 * which it copies. */
int pier_server_handle_describe(pier_server *s, int32_t service_id,
				const struct pier_interface_type *const *ifaces, size_t n);
/* Asks the remote of w for its description on service_id: *out on
 * success; -PIER_EREMOTE when it answered with an error (its text in
 * err). */
int pier_describe(pier_writer *w, int32_t service_id, int timeout_ms,
		  struct pier_description *out, struct pier_value_error *err);
/* Frees what d owns and empties it; NULL: nothing. */
void pier_description_free(struct pier_description *d);

#ifdef __cplusplus
}
#endif

#endif
