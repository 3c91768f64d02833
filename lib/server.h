/* SPDX-License-Identifier: MIT */
/*
 * Servers (server.c): what the other files of the server use of it.
 * Socket activation (activation.c) hands it the listeners it made.
 */
#ifndef PIER_SERVER_H
#define PIER_SERVER_H

#include <pier.h>

/* The configuration listeners of s are made with (its loop set). */
const pier_config *server_config(const pier_server *s);
/* Whether s was started (then it takes no more listeners). */
int server_started(const pier_server *s);
/* Adds l (taken, even on failure) to s's listeners: 0, -EBUSY (s was
 * started), -ENOMEM. */
int server_add_listener(pier_server *s, pier_listener *l);
/* pier_server_handle_requests(), with data owned by s: free_data(data)
 * when s is freed (not on failure: data stays the caller's). */
int server_handle_requests_owned(pier_server *s, int32_t service_id, pier_request_handler *fn,
				 void *data, void (*free_data)(void *data));
/* Says a line through the configuration's log function, if any, at most
 * a few a second. */
void server_log(pier_server *s, int priority, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
