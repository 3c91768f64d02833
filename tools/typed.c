/* SPDX-License-Identifier: MIT */
/*
 * pier call --interface and --describe, and pier describe: calls by
 * service name with JSON bodies, checked and encoded by an interface file
 * read when the tool runs (or the one the remote describes), and the
 * updates and the response printed as JSON.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier/typed.h>

#include "runtime.h"
#include "tool.h"

struct typed_ifaces {
	struct arena a;
	const struct pier_interface_type **in;
	size_t n;
};

void typed_ifaces_free(struct typed_ifaces *t)
{
	if (!t)
		return;
	arena_free(&t->a);
	free(t->in);
	free(t);
}

/* Reads text as the interface file named name, adding its interfaces to
 * t: 0, or the errors printed ("name:line:col: message"). */
static int add_file(struct typed_ifaces *t, const char *name, const char *text, size_t len)
{
	struct diag d = { .file = name };
	struct file *f = arena_alloc(&t->a, sizeof(*f));
	const struct pier_interface_type **grown;

	f->path = name;
	if (parse_file(&t->a, &d, text, len, f) < 0 || check_file(&t->a, &d, f, NULL) < 0) {
		fputs(d.text, stderr);
		diag_free(&d);
		return -1;
	}
	diag_free(&d);
	grown = realloc(t->in, (t->n + f->n_interfaces + 1) * sizeof(*grown));
	if (!grown) {
		fputs("pier: out of memory\n", stderr);
		return -1;
	}
	t->in = grown;
	for (size_t i = 0; i < f->n_interfaces; i++)
		t->in[t->n++] = runtime_interface(&t->a, f, &f->interfaces[i]);
	return 0;
}

static struct typed_ifaces *ifaces_new(void)
{
	struct typed_ifaces *t = calloc(1, sizeof(*t));

	if (!t)
		fputs("pier: out of memory\n", stderr);
	return t;
}

int typed_load_file(const char *path, struct typed_ifaces **out)
{
	struct typed_ifaces *t;
	size_t len;
	char *text;
	int r = tool_read_file(path, &text, &len);

	if (r < 0) {
		fprintf(stderr, "pier: %s: %s\n", path, pier_strerror(r));
		return EXIT_USAGE;
	}
	if (!(t = ifaces_new()) || add_file(t, path, text, len) < 0) {
		free(text);
		typed_ifaces_free(t);
		return EXIT_USAGE;
	}
	free(text);
	if (t->n == 0) {
		fprintf(stderr, "pier: %s declares no interface\n", path);
		typed_ifaces_free(t);
		return EXIT_USAGE;
	}
	*out = t;
	return EXIT_OK;
}

/* Asks peer for its description: EXIT_OK with *d, or the failure said;
 * option is how the user names another id. */
static int ask(pier_peer *peer, int32_t id, int timeout_ms, const char *option,
	       struct pier_description *d)
{
	struct pier_value_error err = { "" };
	int r = pier_describe(pier_peer_get_writer(peer), id, timeout_ms, d, &err);

	if (r == -PIER_EREMOTE) {
		fprintf(stderr, "pier: the remote does not describe itself on service id %d: %s "
				"(%s ID asks on another)\n",
			(int)id, err.message + strlen("describe: "), option);
		return EXIT_REMOTE_ERROR;
	}
	if (r == -EBADMSG) {
		fprintf(stderr, "pier: the remote's answer on service id %d is not a description: "
				"%s\n", (int)id, err.message);
		return EXIT_FAILURE_IO;
	}
	if (r == -ENOTSUP) {
		fputs("pier: this pier was built without json-c: it has no JSON bodies\n", stderr);
		return EXIT_USAGE;
	}
	if (r < 0)
		return tool_fail(r == -ETIMEDOUT ? "no description in time" : "no description", r);
	return EXIT_OK;
}

int typed_load_described(pier_peer *peer, int32_t id, int timeout_ms, struct typed_ifaces **out)
{
	struct pier_description d = { 0 };
	struct typed_ifaces *t;
	int status = ask(peer, id, timeout_ms, "--describe-service", &d);

	if (status != EXIT_OK)
		return status;
	if (!(t = ifaces_new())) {
		pier_description_free(&d);
		return EXIT_FAILURE_IO;
	}
	for (size_t i = 0; i < d.n && status == EXIT_OK; i++) {
		char *name = arena_printf(&t->a, "(the remote's interface %zu)", i + 1);

		if (add_file(t, name, d.sources[i], strlen(d.sources[i])) < 0) {
			fputs("pier: the remote's description does not read as an interface "
			      "file\n", stderr);
			status = EXIT_FAILURE_IO;
		}
	}
	pier_description_free(&d);
	if (status == EXIT_OK && t->n == 0) {
		fputs("pier: the remote describes no interface\n", stderr);
		status = EXIT_FAILURE_IO;
	}
	if (status != EXIT_OK) {
		typed_ifaces_free(t);
		return status;
	}
	*out = t;
	return EXIT_OK;
}

int typed_describe(pier_peer *peer, int32_t id, int timeout_ms)
{
	struct pier_description d = { 0 };
	int status = ask(peer, id, timeout_ms, "-s", &d);

	if (status != EXIT_OK)
		return status;
	for (size_t i = 0; i < d.n; i++)
		printf("%s%s", i ? "\n" : "", d.sources[i]);
	fflush(stdout);
	pier_description_free(&d);
	return EXIT_OK;
}

/* --- finding the service --------------------------------------------------------------- */

/* The service name names (NAME, INTERFACE.NAME, or a service id), or NULL
 * with the reason printed. */
static const struct pier_service_type *find(const struct typed_ifaces *t, const char *name)
{
	const struct pier_service_type *found = NULL;
	const char *dot = strchr(name, '.');
	size_t matches = 0;
	int32_t id;
	bool by_id = tool_parse_i32(name, &id);

	for (size_t i = 0; i < t->n; i++) {
		const struct pier_interface_type *in = t->in[i];
		const char *svc = name;

		if (dot) {
			if (strncmp(in->name, name, (size_t)(dot - name)) ||
			    in->name[dot - name] != '\0')
				continue;
			svc = dot + 1;
		}
		for (size_t j = 0; j < in->n_services; j++) {
			const struct pier_service_type *s = &in->services[j];

			if (by_id ? s->service_id == id : !strcmp(s->name, svc)) {
				found = s;
				matches++;
			}
		}
	}
	if (matches == 1)
		return found;
	if (matches > 1) {
		fprintf(stderr, "pier: more than one interface has service %s: name it as "
				"INTERFACE.SERVICE\n", name);
		return NULL;
	}
	fprintf(stderr, "pier: no service %s; there are:", name);
	for (size_t i = 0; i < t->n; i++)
		for (size_t j = 0; j < t->in[i]->n_services; j++)
			fprintf(stderr, " %s.%s (%d)", t->in[i]->name, t->in[i]->services[j].name,
				(int)t->in[i]->services[j].service_id);
	fputc('\n', stderr);
	return NULL;
}

/* --- the call -------------------------------------------------------------------------- */

static void close_all(const int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

/* A value of a type made at run time: the memory, and its type. */
struct value {
	const struct pier_type *type;
	void *mem;
};

static int value_new(struct value *v, const struct pier_type *type)
{
	v->type = type;
	v->mem = malloc(type->size);
	if (!v->mem) {
		fputs("pier: out of memory\n", stderr);
		return -ENOMEM;
	}
	pier_value_init(type, v->mem);
	return 0;
}

static void value_free(struct value *v)
{
	if (v->mem)
		pier_value_free(v->type, v->mem);
	free(v->mem);
	v->mem = NULL;
}

/* Prints "label: JSON", with the fds the value carries; a value that
 * does not encode (an fd field with no fd) says why instead. */
static void print_value(const char *label, const struct pier_type *type, const void *value,
			size_t nfds)
{
	struct pier_encoded enc = { 0 };
	struct pier_value_error err = { "" };

	if (pier_encode(pier_format_json(), type, value, label, &enc, &err) < 0)
		printf("%s: (%s)", label, err.message);
	else
		printf("%s: %.*s", label, (int)enc.len, enc.body);
	if (nfds)
		printf(" (+%zu fd%s)", nfds, nfds == 1 ? "" : "s");
	putchar('\n');
	fflush(stdout);
	pier_encoded_release(&enc);
}

/* Sends the update json ({"NAME": VALUE}, as serde writes an enum) of
 * svc on req, or only checks it when req is NULL: EXIT_OK or the failure
 * said. */
static int send_update(pier_sent_request *req, const struct pier_service_type *svc,
		       const char *json, size_t len)
{
	const struct pier_type *u = svc->request_updates_union;
	struct pier_value_error err = { "" };
	struct value v = { 0 };
	unsigned int tag;
	int r;

	if (!u) {
		fprintf(stderr, "pier: %s takes no requester updates\n", svc->name);
		return EXIT_USAGE;
	}
	if (value_new(&v, u) < 0)
		return EXIT_FAILURE_IO;
	r = pier_decode(pier_format_json(), u, "update", json, len, NULL, 0, v.mem, &err);
	if (r < 0) {
		fprintf(stderr, "pier: %s (an update is {\"NAME\": VALUE}, NAME one of:", err.message);
		for (size_t i = 0; i < svc->n_request_updates; i++)
			fprintf(stderr, " %s", svc->request_updates[i].name);
		fputs(")\n", stderr);
		free(v.mem);
		return EXIT_USAGE;
	}
	memcpy(&tag, v.mem, sizeof(tag));
	if (u->variants[tag].type && u->variants[tag].type->fds) {
		fprintf(stderr, "pier: update %s carries fds, which pier call cannot attach to "
				"an update\n", u->variants[tag].name);
		value_free(&v);
		return EXIT_USAGE;
	}
	if (!req) {
		value_free(&v); /* only checked */
		return EXIT_OK;
	}
	r = pier_typed_call_send_update(req, pier_format_json(), svc, tag,
					(char *)v.mem + u->variants[tag].offset, &err);
	value_free(&v);
	if (r == -PIER_EDONE)
		return EXIT_OK; /* answered already: the response tells */
	if (r < 0) {
		fprintf(stderr, "pier: %s\n", err.message);
		return EXIT_FAILURE_IO;
	}
	return EXIT_OK;
}

static int send_stdin_updates(pier_sent_request *req, const struct pier_service_type *svc)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int status = EXIT_OK;

	while (status == EXIT_OK && (n = getline(&line, &cap, stdin)) > 0) {
		if (line[n - 1] == '\n')
			n--;
		if (n > 0)
			status = send_update(req, svc, line, (size_t)n);
	}
	free(line);
	return status;
}

/* Prints one received message of the call: an update (by name) or the
 * response.  EXIT_OK, EXIT_REMOTE_ERROR for an error response, or the
 * failure said. */
static int print_received(const struct pier_service_type *svc, pier_msg *m)
{
	const struct pier_header *h = pier_msg_header(m);
	const struct pier_message_type *mt = NULL;
	struct pier_value_error err = { "" };
	const struct pier_type *type = svc->response;
	char label[160];
	struct value v;
	size_t len, nfds = pier_msg_fd_count(m);
	const char *body = pier_msg_body(m, &len);

	if (pier_msg_is_error(m)) {
		printf("error response: ");
		tool_print_body(stdout, body, len, false);
		putchar('\n');
		fflush(stdout);
		return EXIT_REMOTE_ERROR;
	}
	snprintf(label, sizeof(label), "response");
	if (h->type == PIER_MSG_RESPONDER_UPDATE) {
		for (size_t i = 0; i < svc->n_response_updates && !mt; i++)
			if (svc->response_updates[i].service_id == h->service_id)
				mt = &svc->response_updates[i];
		if (!mt) {
			fprintf(stderr, "pier: an update with service id %d, which %s has not\n",
				(int)h->service_id, svc->name);
			return EXIT_FAILURE_IO;
		}
		type = mt->body;
		snprintf(label, sizeof(label), "update %s", mt->name);
	}
	if (value_new(&v, type) < 0)
		return EXIT_FAILURE_IO;
	if (pier_msg_decode(m, pier_format_json(), type, label, v.mem, &err) < 0) {
		fprintf(stderr, "pier: %s\n", err.message);
		free(v.mem);
		return EXIT_FAILURE_IO;
	}
	print_value(label, type, v.mem, nfds);
	value_free(&v);
	return EXIT_OK;
}

int typed_call(pier_peer *peer, const struct typed_ifaces *t, const struct typed_call_args *a)
{
	const struct pier_service_type *svc = find(t, a->service);
	struct pier_value_error err = { "" };
	const char *body = a->body ? a->body : "null";
	size_t body_len = a->body ? a->body_len : 4;
	struct value req_value = { 0 };
	pier_sent_request *req = NULL;
	int fds[PIER_TYPED_MAX_FDS];
	int r, status = EXIT_OK;

	if (!svc)
		return EXIT_USAGE;
	if (!a->body && svc->request->kind != PIER_KIND_UNIT) {
		fprintf(stderr, "pier: %s takes a %s: give it as JSON\n", svc->name,
			svc->request->name);
		return EXIT_USAGE;
	}
	if (a->nfds != svc->request->fds && !svc->request->fds) {
		fprintf(stderr, "pier: %s's request carries no fds: drop the -f\n", svc->name);
		return EXIT_USAGE;
	}
	if (a->nfds != svc->request->fds) {
		fprintf(stderr, "pier: %s's request, a %s, carries %zu fd%s (its fd fields, in "
				"order): give each with -f FILE (%zu given)\n",
			svc->name, svc->request->name, svc->request->fds,
			svc->request->fds == 1 ? "" : "s", a->nfds);
		return EXIT_USAGE;
	}
	/* The updates are checked before anything is sent. */
	for (size_t i = 0; i < a->nupdates; i++)
		if ((status = send_update(NULL, svc, a->updates[i], strlen(a->updates[i]))) != 0)
			return status;
	if (value_new(&req_value, svc->request) < 0)
		return EXIT_FAILURE_IO;
	/* The value takes copies of the caller's fds. */
	for (size_t i = 0; i < a->nfds; i++) {
		if ((fds[i] = dup(a->fds[i])) < 0) {
			r = -errno;
			close_all(fds, i);
			free(req_value.mem);
			return tool_fail("cannot attach a file", r);
		}
	}
	r = pier_decode(pier_format_json(), svc->request, "request", body, body_len, fds,
			a->nfds, req_value.mem, &err);
	if (r < 0) {
		fprintf(stderr, "pier: %s\n", err.message);
		close_all(fds, a->nfds);
		free(req_value.mem);
		return EXIT_USAGE;
	}
	r = pier_typed_call(pier_peer_get_writer(peer), pier_format_json(), svc, req_value.mem,
			    &req, &err);
	value_free(&req_value);
	if (r < 0) {
		fprintf(stderr, "pier: cannot send the request: %s\n", err.message);
		return EXIT_FAILURE_IO;
	}
	for (size_t i = 0; i < a->nupdates && status == EXIT_OK; i++)
		status = send_update(req, svc, a->updates[i], strlen(a->updates[i]));
	if (status == EXIT_OK && a->stdin_updates)
		status = send_stdin_updates(req, svc);
	while (status == EXIT_OK) {
		pier_msg *m;
		bool last;

		r = pier_sent_request_recv(req, &m, a->timeout_ms);
		if (r < 0) {
			status = tool_fail(r == -ETIMEDOUT ? "no answer in time" : "no response", r);
			break;
		}
		last = pier_msg_header(m)->type == PIER_MSG_RESPONSE;
		status = print_received(svc, m);
		pier_msg_free(m);
		if (last)
			break;
	}
	pier_sent_request_free(req);
	return status;
}
