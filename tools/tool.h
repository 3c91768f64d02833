/* SPDX-License-Identifier: MIT */
/* Shared by the parts of the pier command-line tool. */
#ifndef PIER_TOOL_H
#define PIER_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pier.h>

/* Options every command takes. */
struct tool_opts {
	int timeout_ms;
	enum pier_byte_order order;
	size_t max_body;
	bool hex;
	/* TLS (tls:// addresses) */
	const char *ca, *cert, *key, *server_name;
	enum pier_tls_client_auth client_auth;
};

/* What a command is, for its help and its errors. */
struct tool_cmd {
	const char *name; /* "pier call" */
	const char *args; /* its arguments, "ADDRESS SERVICE [BODY]" */
	const char *usage; /* what --help prints before the common options */
	unsigned int opts; /* CMD_* */
};

enum {
	CMD_PRINTS = 1 << 0, /* prints bodies: -x applies */
	CMD_LISTENER = 1 << 1, /* listens: the listener's TLS options */
};

/* Parses the options every command takes; returns the index of the first
 * argument.  Exits on --help and on a bad option. */
int tool_parse_args(int argc, char **argv, const struct tool_cmd *cmd, struct tool_opts *o);

/* Exits, saying what is missing or too many, unless argv[first..argc) are
 * the arguments cmd->args names (at most max). */
void tool_check_args(int argc, char **argv, int first, int max, const struct tool_cmd *cmd);

/* A configuration from the options; exits on failure. */
pier_config *tool_config(const struct tool_opts *o);

/* Prints why a call failed ("pier: what: reason") and returns the exit
 * status for it. */
int tool_fail(const char *what, int err);

/* Like tool_fail(), for a listener that could not be made at address:
 * says what to do where it can. */
int tool_fail_listen(const char *address, int err);

/* Writes a body as text (non-printable bytes escaped) or as hex. */
void tool_print_body(FILE *f, const void *body, size_t len, bool hex);

/* Reads a whole file ("-" for stdin) into *buf (malloc'd). */
int tool_read_file(const char *path, char **buf, size_t *len);

/* Parses a signed 32-bit number; false if it is not one. */
bool tool_parse_i32(const char *s, int32_t *out);

/* Exit statuses. */
enum {
	EXIT_OK = 0,
	EXIT_REMOTE_ERROR = 1, /* the remote answered with an error response */
	EXIT_USAGE = 2,
	EXIT_FAILURE_IO = 3, /* connection, protocol, timeout */
};

/* --- typed calls (typed.c): interfaces read when the tool runs --------- */

struct typed_ifaces;

/* The interfaces of the interface file at path, or of the remote's
 * description on service id: EXIT_OK with *out, or the exit status with
 * the reason printed. */
int typed_load_file(const char *path, struct typed_ifaces **out);
int typed_load_described(pier_peer *peer, int32_t id, int timeout_ms, struct typed_ifaces **out);
void typed_ifaces_free(struct typed_ifaces *t);
/* Prints the remote's description on service id: the exit status. */
int typed_describe(pier_peer *peer, int32_t id, int timeout_ms);

/* A call by an interface: the service's name (or INTERFACE.NAME, or its
 * id), the request as JSON (NULL for () ), the fds the request's fd fields
 * get (borrowed), requester updates as JSON ({"NAME": VALUE}) from the
 * command line and from standard input. */
struct typed_call_args {
	const char *service;
	const char *body;
	size_t body_len;
	const int *fds;
	size_t nfds;
	const char *const *updates;
	size_t nupdates;
	bool stdin_updates;
	int timeout_ms;
};

/* Makes the call on peer and prints each update and the response as
 * JSON: the exit status. */
int typed_call(pier_peer *peer, const struct typed_ifaces *t, const struct typed_call_args *a);

int cmd_serve_conformance(int argc, char **argv, const struct tool_opts *o);
int cmd_test_conformance(int argc, char **argv, const struct tool_opts *o);

#endif
