/* SPDX-License-Identifier: MIT */
/*
 * The header's part of each interface: its client (the calls, their
 * handles, the tagged union of the updates a call receives), and its
 * server (the reply handles, the tagged union of the updates a reply
 * receives, the table of handlers).  A body of type () is no parameter at
 * all.  gen-iface-code.c writes what these declare.
 */
#include "config.h"

#include <string.h>

#include "gen.h"
#include "names.h"

struct inames inames(struct gen *g, const struct interface *in)
{
	const char *i = c_snake(g->a, in->name);

	return (struct inames){ i, c_upper(g->a, i) };
}

const char *snake(struct gen *g, const char *name)
{
	return c_snake(g->a, name);
}

const char *param_in(struct gen *g, const struct typeref *t, const char *name)
{
	if (t->kind == TK_UNIT)
		return "";
	return arena_printf(g->a, ", %s const *%s", c_type(g->a, g->prefix, t), name);
}

const char *param_out(struct gen *g, const struct typeref *t, const char *name)
{
	const char *ctype;

	if (t->kind == TK_UNIT)
		return "";
	ctype = c_type(g->a, g->prefix, t);
	return arena_printf(g->a, ", %s%s*%s", ctype, ctype[strlen(ctype) - 1] == '*' ? "" : " ",
			    name);
}

/* --- the header ---------------------------------------------------------------- */

/* The tagged union of one direction's updates, received. */
static void update_union(struct gen *g, const struct inames *n, const struct service *s,
			 const char *kind, const struct message *u, size_t count)
{
	const char *name = arena_printf(g->a, "%s_%s_%s_update", n->i, snake(g, s->name), kind);
	const char *upper = c_upper(g->a, name);

	if (count == 0)
		return;
	fprintf(g->out, "/* A %s update of %s, received: the data of the update tag names. */\n"
		"enum %s_tag {\n", kind, s->name, name);
	for (size_t j = 0; j < count; j++)
		fprintf(g->out, "\t%s_%s = %zu,\n", upper, c_upper(g->a, snake(g, u[j].name)), j);
	fprintf(g->out, "};\n\nstruct %s {\n\tenum %s_tag tag;\n\tunion {\n", name, name);
	for (size_t j = 0; j < count; j++) {
		const char *ctype = c_type(g->a, g->prefix, u[j].body);

		fprintf(g->out, "\t\t%s%s%s;\n", ctype, ctype[strlen(ctype) - 1] == '*' ? "" : " ",
			snake(g, u[j].name));
	}
	fprintf(g->out, "\t};\n};\n\n/* Frees what update owns (pier_value_free(3)). */\n"
		"void %s_free(struct %s *update);\n\n", name, name);
}

static void client_service(struct gen *g, const struct inames *n, const struct service *s)
{
	const char *sn = snake(g, s->name);
	const char *call = arena_printf(g->a, "%s_%s_call", n->i, sn);

	gen_doc(g, s->doc, "");
	if (s->n_request_updates == 0 && s->n_response_updates == 0) {
		fprintf(g->out, "/* Calls %s and waits for its response (owned by the caller). */\n"
			"int %s_%s(struct %s_client *client%s%s, int timeout_ms,\n"
			"\t\tstruct pier_value_error *err);\n\n", s->name, n->i, sn, n->i,
			param_in(g, s->request, "request"), param_out(g, s->response, "response"));
		return;
	}
	update_union(g, n, s, "response", s->response_updates, s->n_response_updates);
	fprintf(g->out, "/* A call of %s: owned, freed by %s_free(). */\nstruct %s;\n"
		"int %s_%s(struct %s_client *client%s, struct %s **call,\n"
		"\t\tstruct pier_value_error *err);\n", s->name, call, call, n->i, sn, n->i,
		param_in(g, s->request, "request"), call);
	if (s->n_response_updates)
		fprintf(g->out, "/* 0 and an update (owned: %s_%s_response_update_free()), or\n"
			" * -PIER_ERESPONSE when the response is next. */\n"
			"int %s_recv_update(struct %s *call, struct %s_%s_response_update *update,\n"
			"\t\tint timeout_ms, struct pier_value_error *err);\n", n->i, sn, call, call,
			n->i, sn);
	fprintf(g->out, "/* The response (owned by the caller); -PIER_EREMOTE for an error\n"
		" * response, whose text is in err. */\n"
		"int %s_recv_response(struct %s *call%s, int timeout_ms,\n"
		"\t\tstruct pier_value_error *err);\n", call, call,
		param_out(g, s->response, "response"));
	for (size_t j = 0; j < s->n_request_updates; j++) {
		gen_doc(g, s->request_updates[j].doc, "");
		fprintf(g->out, "int %s_send_%s(struct %s *call%s, struct pier_value_error *err);\n",
			call, snake(g, s->request_updates[j].name), call,
			param_in(g, s->request_updates[j].body, "update"));
	}
	fprintf(g->out, "/* The request, borrowed: its fd (pier_sent_request_fd()) or writer. */\n"
		"pier_sent_request *%s_request(struct %s *call);\n"
		"void %s_free(struct %s *call);\n\n", call, call, call, call);
}

static void server_service(struct gen *g, const struct inames *n, const struct service *s)
{
	const char *sn = snake(g, s->name);
	const char *reply = arena_printf(g->a, "%s_%s_reply", n->i, sn);

	update_union(g, n, s, "request", s->request_updates, s->n_request_updates);
	fprintf(g->out, "/* The answering side of a call of %s: the handler's during its call,\n"
		" * or owned once it returns PIER_HANDLER_KEEP (then %s_free()). */\n"
		"struct %s;\n"
		"int %s_respond(struct %s *reply%s, struct pier_value_error *err);\n"
		"int %s_fail(struct %s *reply, const char *message);\n",
		s->name, reply, reply, reply, reply, param_in(g, s->response, "response"), reply,
		reply);
	for (size_t j = 0; j < s->n_response_updates; j++) {
		gen_doc(g, s->response_updates[j].doc, "");
		fprintf(g->out, "int %s_send_%s(struct %s *reply%s, struct pier_value_error *err);\n",
			reply, snake(g, s->response_updates[j].name), reply,
			param_in(g, s->response_updates[j].body, "update"));
	}
	if (s->n_request_updates)
		fprintf(g->out, "int %s_recv_update(struct %s *reply, struct %s_%s_request_update *update,\n"
			"\t\tint timeout_ms, struct pier_value_error *err);\n", reply, reply, n->i, sn);
	fprintf(g->out, "pier_received_request *%s_request(struct %s *reply);\n"
		"void %s_free(struct %s *reply);\n\n", reply, reply, reply, reply);
}

static void handlers(struct gen *g, const struct inames *n, const struct interface *in)
{
	fprintf(g->out, "/* What serves %s: a function per service and stream (NULL: not\n"
		" * served).  A request handler returns PIER_HANDLER_DONE or _KEEP (it keeps\n"
		" * the reply); the request's value is its during the call, freed after (it\n"
		" * may take what it wants from it, leaving NULL or -1). */\n"
		"struct %s_handlers {\n", in->name, n->i);
	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];

		fprintf(g->out, "\tint (*%s)(void *userdata, pier_peer *peer, void *peer_data%s,\n"
			"\t\t\tstruct %s_%s_reply *reply);\n", snake(g, s->name),
			s->request->kind == TK_UNIT ? "" :
			param_out(g, s->request, "request"), n->i, snake(g, s->name));
	}
	for (size_t i = 0; i < in->n_streams; i++)
		fprintf(g->out, "\tvoid (*%s)(void *userdata, pier_peer *peer, void *peer_data%s);\n",
			snake(g, in->streams[i].name), param_out(g, in->streams[i].body, "value"));
	if (in->n_services + in->n_streams == 0)
		fputs("\tchar unused; /* C has no empty structs */\n", g->out);
	fprintf(g->out, "};\n\n"
		"/* A server of %s: handlers, format and userdata, borrowed: they must\n"
		" * outlive the serving. */\n"
		"struct %s_server {\n\tconst struct %s_handlers *handlers;\n"
		"\tconst struct pier_format *fmt;\n\tvoid *userdata;\n};\n\n"
		"/* Registers the handlers on s (server borrowed, kept while s runs). */\n"
		"int %s_serve(pier_server *s, const struct %s_server *server);\n"
		"/* Serves one peer on this thread until it closes (0) or a receive fails\n"
		" * (its error, -ETIMEDOUT after timeout_ms of silence). */\n"
		"int %s_serve_peer(const struct %s_server *server, pier_peer *peer, int timeout_ms);\n\n",
		in->name, n->i, n->i, n->i, n->i, n->i, n->i);
}

void gen_iface_header(struct gen *g, const struct interface *in)
{
	struct inames n = inames(g, in);

	fprintf(g->out, "/* --- interface %s ---------------------------------------------- */\n\n"
		"/* Its description (services, ids, types, docs), static. */\n"
		"extern const struct pier_interface_type %s_interface;\n\n"
		"/* A client: a peer's writer and a format, borrowed (they must outlive\n"
		" * the calls). */\n"
		"struct %s_client {\n\tpier_writer *writer;\n\tconst struct pier_format *fmt;\n};\n\n",
		in->name, n.i, n.i);
	for (size_t i = 0; i < in->n_services; i++)
		client_service(g, &n, &in->services[i]);
	for (size_t i = 0; i < in->n_streams; i++) {
		gen_doc(g, in->streams[i].doc, "");
		fprintf(g->out, "int %s_send_%s(struct %s_client *client%s, struct pier_value_error *err);\n\n",
			n.i, snake(g, in->streams[i].name), n.i,
			param_in(g, in->streams[i].body, "value"));
	}
	for (size_t i = 0; i < in->n_services; i++)
		server_service(g, &n, &in->services[i]);
	handlers(g, &n, in);
}
