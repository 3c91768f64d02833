/* SPDX-License-Identifier: MIT */
/*
 * libpier: Fizyr RPC peers over TCP and Unix sockets, with file-descriptor
 * passing.  See pier(7) for the overview.
 *
 * Conventions used by every function of this header:
 *  - functions that can fail return 0 (or a count) on success and a negative
 *    error code on failure: either -errno, or -PIER_E* for pier's own
 *    conditions.  errno is never the error channel.  pier_strerror() names
 *    both kinds;
 *  - constructors return int and fill an out pointer;
 *  - objects are opaque and owned through explicit new/free (or ref/unref).
 */
#ifndef PIER_H
#define PIER_H

#include <stdint.h>

#include <pier-version.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of the library actually loaded at run time (compare with the
 * PIER_VERSION_* macros, which tell the version of the headers). */
const char *pier_version(void);
unsigned long pier_version_number(void);

/* The five Fizyr RPC message kinds, with their wire values. */
enum pier_msg_type {
	PIER_MSG_REQUEST = 0,
	PIER_MSG_RESPONSE = 1,
	PIER_MSG_REQUESTER_UPDATE = 2,
	PIER_MSG_RESPONDER_UPDATE = 3,
	PIER_MSG_STREAM = 4,
};

/* "request", "response", "requester-update", "responder-update", "stream",
 * or NULL for a value outside the enumeration. */
const char *pier_msg_type_name(enum pier_msg_type type);

/* The service id of an error response; its body is UTF-8 text. */
#define PIER_SERVICE_ERROR (-1)

/* The 12-byte header every message carries. */
struct pier_header {
	enum pier_msg_type type;
	uint32_t request_id; /* 0 on stream messages */
	int32_t service_id;  /* PIER_SERVICE_ERROR on an error response */
};

/* Byte order of every integer on the wire (header and length prefix). */
enum pier_byte_order {
	PIER_BYTE_ORDER_LITTLE = 0, /* the default on every transport */
	PIER_BYTE_ORDER_BIG = 1,
	PIER_BYTE_ORDER_NATIVE = 2, /* the host's order */
};

/*
 * pier's own error codes.  Functions return them negated, like -errno.  They
 * start above every errno value, so one int carries either kind.
 */
enum pier_error {
	/* A frame or packet shorter than the 12-byte header (a stream length
	 * prefix below 12, or a seqpacket packet of 1 to 11 bytes). */
	PIER_ESHORTFRAME = 4096,
	/* A message type other than the five of enum pier_msg_type. */
	PIER_EBADTYPE,
	/* A received body larger than the configured read limit. */
	PIER_EBODYLIMIT,
	/* The stream ended in the middle of a frame. */
	PIER_EPARTIAL,
	PIER_ERROR_END_ /* one past the last code; not an error itself */
};

/* A static, thread-safe description of err, which is a pier error code or an
 * errno value, negated or not.  Never NULL. */
const char *pier_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* PIER_H */
