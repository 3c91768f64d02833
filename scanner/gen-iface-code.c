/* SPDX-License-Identifier: MIT */
/*
 * The C file's part of each interface: its description (the services,
 * their updates, the streams: struct pier_interface_type, which is also
 * what introspection shows), and the client's and server's functions,
 * thin ones over the library's typed calls (pier_typed_call(3)), which
 * check what the remote sent.
 */
#include "config.h"

#include <string.h>

#include "gen.h"
#include "names.h"
#include "text.h"

/* The value argument for a parameter of type t: name, or NULL for (). */
static const char *arg(const struct typeref *t, const char *name)
{
	return t->kind == TK_UNIT ? "NULL" : name;
}

static const char *svc(struct gen *g, const struct inames *n, size_t index)
{
	return arena_printf(g->a, "&%s__services[%zu]", n->i, index);
}

/* --- the description -------------------------------------------------------------- */

static void messages(struct gen *g, const char *table, const struct message *m, size_t count)
{
	if (count == 0)
		return;
	fprintf(g->out, "static const struct pier_message_type %s[] = {\n", table);
	for (size_t i = 0; i < count; i++) {
		fprintf(g->out, "\t{ \"%s\", %d, &%s, ", m[i].name, m[i].id,
			gen_descriptor(g, m[i].body));
		gen_c_string(g, m[i].doc);
		fprintf(g->out, ", %s },\n", m[i].hidden ? "true" : "false");
	}
	fputs("};\n", g->out);
}

/* The description of a tagged union of updates: an enum, for its layout. */
static void update_union(struct gen *g, const struct inames *n, const struct service *s,
			 const char *kind, const struct message *u, size_t count)
{
	const char *name = arena_printf(g->a, "%s_%s_%s_update", n->i, snake(g, s->name), kind);

	if (count == 0)
		return;
	fprintf(g->out, "static const struct pier_variant %s__variants[] = {\n", name);
	for (size_t j = 0; j < count; j++)
		fprintf(g->out, "\t{ \"%s\", &%s, offsetof(struct %s, %s) },\n", u[j].name,
			gen_descriptor(g, u[j].body), name, snake(g, u[j].name));
	fprintf(g->out, "};\nstatic const struct pier_type %s__type = {\n"
		"\t.kind = PIER_KIND_ENUM, .name = \"%s %s update\", .size = sizeof(struct %s),\n"
		"\t.variants = %s__variants, .count = %zu,\n};\n"
		"_Static_assert(sizeof(enum %s_tag) == sizeof(unsigned int),\n"
		"\t       \"the library reads a tag as an unsigned int\");\n\n"
		"void %s_free(struct %s *update)\n{\n\tpier_value_free(&%s__type, update);\n}\n\n",
		name, s->name, kind, name, name, count, name, name, name, name);
}

static void description(struct gen *g, const struct inames *n, const struct interface *in,
			const char *text)
{
	for (size_t i = 0; i < in->n_services; i++) {
		const struct service *s = &in->services[i];
		const char *sn = snake(g, s->name);

		messages(g, arena_printf(g->a, "%s__%s_request_updates", n->i, sn),
			 s->request_updates, s->n_request_updates);
		messages(g, arena_printf(g->a, "%s__%s_response_updates", n->i, sn),
			 s->response_updates, s->n_response_updates);
		update_union(g, n, s, "request", s->request_updates, s->n_request_updates);
		update_union(g, n, s, "response", s->response_updates, s->n_response_updates);
	}
	if (in->n_services) {
		fprintf(g->out, "static const struct pier_service_type %s__services[] = {\n", n->i);
		for (size_t i = 0; i < in->n_services; i++) {
			const struct service *s = &in->services[i];
			const char *sn = snake(g, s->name);
			const char *base = arena_printf(g->a, "%s__%s", n->i, sn);
			const char *ubase = arena_printf(g->a, "%s_%s", n->i, sn);

			fprintf(g->out, "\t{\n\t\t.name = \"%s\", .service_id = %d, .hidden = %s,\n"
				"\t\t.doc = ", s->name, s->id, s->hidden ? "true" : "false");
			gen_c_string(g, s->doc);
			fprintf(g->out, ",\n\t\t.request = &%s, .response = &%s,\n",
				gen_descriptor(g, s->request), gen_descriptor(g, s->response));
			if (s->n_request_updates)
				fprintf(g->out, "\t\t.request_updates = %s_request_updates,\n"
					"\t\t.n_request_updates = %zu,\n"
					"\t\t.request_updates_union = &%s_request_update__type,\n",
					base, s->n_request_updates, ubase);
			if (s->n_response_updates)
				fprintf(g->out, "\t\t.response_updates = %s_response_updates,\n"
					"\t\t.n_response_updates = %zu,\n"
					"\t\t.response_updates_union = &%s_response_update__type,\n",
					base, s->n_response_updates, ubase);
			fputs("\t},\n", g->out);
		}
		fputs("};\n", g->out);
	}
	messages(g, arena_printf(g->a, "%s__streams", n->i), in->streams, in->n_streams);
	fprintf(g->out, "const struct pier_interface_type %s_interface = {\n\t.name = \"%s\", .doc = ",
		n->i, in->name);
	gen_c_string(g, in->doc);
	fprintf(g->out, ", .hidden = %s,\n\t.source =\n", in->hidden ? "true" : "false");
	gen_c_lines(g, text, "\t\t");
	fputs(",\n", g->out);
	if (in->n_services)
		fprintf(g->out, "\t.services = %s__services, .n_services = %zu,\n", n->i, in->n_services);
	if (in->n_streams)
		fprintf(g->out, "\t.streams = %s__streams, .n_streams = %zu,\n", n->i, in->n_streams);
	fputs("};\n\n", g->out);
}

/* --- the client ---------------------------------------------------------------------- */

static void client_service(struct gen *g, const struct inames *n, const struct service *s,
			   size_t index)
{
	const char *sn = snake(g, s->name);
	const char *call = arena_printf(g->a, "%s_%s_call", n->i, sn);
	const char *desc = svc(g, n, index);

	if (s->n_request_updates == 0 && s->n_response_updates == 0) {
		fprintf(g->out, "int %s_%s(struct %s_client *client%s%s, int timeout_ms,\n"
			"\t\tstruct pier_value_error *err)\n{\n"
			"\tpier_sent_request *req;\n\tint r;\n\n"
			"\tif (!client)\n\t\treturn -EINVAL;\n"
			"\tr = pier_typed_call(client->writer, client->fmt, %s, %s, &req, err);\n"
			"\tif (r < 0)\n\t\treturn r;\n"
			"\tr = pier_typed_call_recv_response(req, client->fmt, %s, %s, timeout_ms, err);\n"
			"\tpier_sent_request_free(req);\n\treturn r;\n}\n\n",
			n->i, sn, n->i, param_in(g, s->request, "request"),
			param_out(g, s->response, "response"), desc, arg(s->request, "request"), desc,
			arg(s->response, "response"));
		return;
	}
	fprintf(g->out, "struct %s {\n\tpier_sent_request *req;\n\tconst struct pier_format *fmt;\n};\n\n"
		"int %s_%s(struct %s_client *client%s, struct %s **call,\n"
		"\t\tstruct pier_value_error *err)\n{\n"
		"\tstruct %s *c;\n\tint r;\n\n"
		"\tif (!client || !call)\n\t\treturn -EINVAL;\n"
		"\tif (!(c = malloc(sizeof(*c))))\n\t\treturn -ENOMEM;\n"
		"\tc->fmt = client->fmt;\n"
		"\tr = pier_typed_call(client->writer, client->fmt, %s, %s, &c->req, err);\n"
		"\tif (r < 0) {\n\t\tfree(c);\n\t\treturn r;\n\t}\n"
		"\t*call = c;\n\treturn 0;\n}\n\n",
		call, n->i, sn, n->i, param_in(g, s->request, "request"), call, call, desc,
		arg(s->request, "request"));
	if (s->n_response_updates)
		fprintf(g->out, "int %s_recv_update(struct %s *call, struct %s_%s_response_update *update,\n"
			"\t\tint timeout_ms, struct pier_value_error *err)\n{\n"
			"\tif (!call)\n\t\treturn -EINVAL;\n"
			"\treturn pier_typed_call_recv_update(call->req, call->fmt, %s, update, timeout_ms,\n"
			"\t\t\t\t\t   err);\n}\n\n", call, call, n->i, sn, desc);
	fprintf(g->out, "int %s_recv_response(struct %s *call%s, int timeout_ms,\n"
		"\t\tstruct pier_value_error *err)\n{\n"
		"\tif (!call)\n\t\treturn -EINVAL;\n"
		"\treturn pier_typed_call_recv_response(call->req, call->fmt, %s, %s, timeout_ms, err);\n"
		"}\n\n", call, call, param_out(g, s->response, "response"), desc,
		arg(s->response, "response"));
	for (size_t j = 0; j < s->n_request_updates; j++)
		fprintf(g->out, "int %s_send_%s(struct %s *call%s, struct pier_value_error *err)\n{\n"
			"\tif (!call)\n\t\treturn -EINVAL;\n"
			"\treturn pier_typed_call_send_update(call->req, call->fmt, %s, %zu, %s, err);\n"
			"}\n\n", call, snake(g, s->request_updates[j].name), call,
			param_in(g, s->request_updates[j].body, "update"), desc, j,
			arg(s->request_updates[j].body, "update"));
	fprintf(g->out, "pier_sent_request *%s_request(struct %s *call)\n{\n"
		"\treturn call ? call->req : NULL;\n}\n\n"
		"void %s_free(struct %s *call)\n{\n\tif (!call)\n\t\treturn;\n"
		"\tpier_sent_request_free(call->req);\n\tfree(call);\n}\n\n", call, call, call, call);
}

static void client(struct gen *g, const struct inames *n, const struct interface *in)
{
	for (size_t i = 0; i < in->n_services; i++)
		client_service(g, n, &in->services[i], i);
	for (size_t i = 0; i < in->n_streams; i++)
		fprintf(g->out, "int %s_send_%s(struct %s_client *client%s, struct pier_value_error *err)\n"
			"{\n\tif (!client)\n\t\treturn -EINVAL;\n"
			"\treturn pier_typed_send_stream(client->writer, client->fmt, &%s__streams[%zu], %s,\n"
			"\t\t\t\t      err);\n}\n\n", n->i, snake(g, in->streams[i].name), n->i,
			param_in(g, in->streams[i].body, "value"), n->i, i,
			arg(in->streams[i].body, "value"));
}

/* --- the server ---------------------------------------------------------------------- */

static void reply_functions(struct gen *g, const struct inames *n, const struct service *s,
			    size_t index)
{
	const char *sn = snake(g, s->name);
	const char *reply = arena_printf(g->a, "%s_%s_reply", n->i, sn);
	const char *desc = svc(g, n, index);

	fprintf(g->out, "struct %s {\n\tpier_received_request *req;\n\tconst struct pier_format *fmt;\n};\n\n"
		"int %s_respond(struct %s *reply%s, struct pier_value_error *err)\n{\n"
		"\tif (!reply)\n\t\treturn -EINVAL;\n"
		"\treturn pier_typed_reply_send_response(reply->req, reply->fmt, %s, %s, err);\n}\n\n"
		"int %s_fail(struct %s *reply, const char *message)\n{\n"
		"\treturn reply ? pier_received_request_send_error(reply->req, message) : -EINVAL;\n}\n\n",
		reply, reply, reply, param_in(g, s->response, "response"), desc,
		arg(s->response, "response"), reply, reply);
	for (size_t j = 0; j < s->n_response_updates; j++)
		fprintf(g->out, "int %s_send_%s(struct %s *reply%s, struct pier_value_error *err)\n{\n"
			"\tif (!reply)\n\t\treturn -EINVAL;\n"
			"\treturn pier_typed_reply_send_update(reply->req, reply->fmt, %s, %zu, %s, err);\n"
			"}\n\n", reply, snake(g, s->response_updates[j].name), reply,
			param_in(g, s->response_updates[j].body, "update"), desc, j,
			arg(s->response_updates[j].body, "update"));
	if (s->n_request_updates)
		fprintf(g->out, "int %s_recv_update(struct %s *reply, struct %s_%s_request_update *update,\n"
			"\t\tint timeout_ms, struct pier_value_error *err)\n{\n"
			"\tif (!reply)\n\t\treturn -EINVAL;\n"
			"\treturn pier_typed_reply_recv_update(reply->req, reply->fmt, %s, update, timeout_ms,\n"
			"\t\t\t\t\t    err);\n}\n\n", reply, reply, n->i, sn, desc);
	fprintf(g->out, "pier_received_request *%s_request(struct %s *reply)\n{\n"
		"\treturn reply ? reply->req : NULL;\n}\n\n"
		"void %s_free(struct %s *reply)\n{\n\tif (!reply)\n\t\treturn;\n"
		"\tpier_received_request_free(reply->req);\n\tfree(reply);\n}\n\n",
		reply, reply, reply, reply);
}

/* A pier_request_handler: decodes the request (a body that is not one is
 * answered with the error, naming the field), calls the handler. */
static void serve_service(struct gen *g, const struct inames *n, const struct service *s)
{
	const char *sn = snake(g, s->name);
	const char *ctype = c_type(g->a, g->prefix, s->request);

	fprintf(g->out, "static int %s__serve_%s(void *userdata, pier_peer *peer, void *peer_data,\n"
		"\t\t\t   pier_msg *msg, pier_received_request *req)\n{\n"
		"\tconst struct %s_server *server = userdata;\n"
		"\t%s%srequest;\n\tstruct %s_%s_reply *reply;\n\tstruct pier_value_error err;\n\tint r;\n\n"
		"\tif (pier_msg_decode(msg, server->fmt, &%s, \"%s\", &request, &err) < 0) {\n"
		"\t\tpier_received_request_send_error(req, err.message);\n"
		"\t\treturn PIER_HANDLER_DONE;\n\t}\n"
		"\tif (!(reply = malloc(sizeof(*reply)))) {\n"
		"\t\tpier_value_free(&%s, &request);\n"
		"\t\tpier_received_request_send_error(req, \"out of memory\");\n"
		"\t\treturn PIER_HANDLER_DONE;\n\t}\n"
		"\treply->req = req;\n\treply->fmt = server->fmt;\n"
		"\tr = server->handlers->%s(server->userdata, peer, peer_data%s, reply);\n"
		"\tpier_value_free(&%s, &request);\n"
		"\tif (r == PIER_HANDLER_KEEP)\n\t\treturn PIER_HANDLER_KEEP;\n"
		"\tfree(reply);\n\treturn PIER_HANDLER_DONE;\n}\n\n",
		n->i, sn, n->i, ctype, ctype[strlen(ctype) - 1] == '*' ? "" : " ", n->i, sn,
		gen_descriptor(g, s->request), s->name, gen_descriptor(g, s->request), sn,
		s->request->kind == TK_UNIT ? "" : ", &request", gen_descriptor(g, s->request));
}

/* A pier_stream_handler: a message that is not one of the stream's is
 * dropped, as a message of an unknown stream is. */
static void serve_stream(struct gen *g, const struct inames *n, const struct message *m)
{
	const char *ctype = c_type(g->a, g->prefix, m->body);

	fprintf(g->out, "static void %s__stream_%s(void *userdata, pier_peer *peer, void *peer_data,\n"
		"\t\t\t     pier_msg *msg)\n{\n"
		"\tconst struct %s_server *server = userdata;\n\t%s%svalue;\n\n"
		"\tif (pier_msg_decode(msg, server->fmt, &%s, \"%s\", &value, NULL) < 0)\n\t\treturn;\n"
		"\tserver->handlers->%s(server->userdata, peer, peer_data%s);\n"
		"\tpier_value_free(&%s, &value);\n}\n\n",
		n->i, snake(g, m->name), n->i, ctype, ctype[strlen(ctype) - 1] == '*' ? "" : " ",
		gen_descriptor(g, m->body), m->name, snake(g, m->name),
		m->body->kind == TK_UNIT ? "" : ", &value", gen_descriptor(g, m->body));
}

static void serve(struct gen *g, const struct inames *n, const struct interface *in)
{
	fprintf(g->out, "int %s_serve(pier_server *s, const struct %s_server *server)\n{\n"
		"\tint r = 0;\n\n"
		"\tif (!s || !server || !server->handlers || !server->fmt)\n\t\treturn -EINVAL;\n",
		n->i, n->i);
	for (size_t i = 0; i < in->n_services; i++) {
		const char *sn = snake(g, in->services[i].name);

		fprintf(g->out, "\tif (r == 0 && server->handlers->%s)\n"
			"\t\tr = pier_server_handle_requests(s, %d, %s__serve_%s, (void *)server);\n",
			sn, in->services[i].id, n->i, sn);
	}
	for (size_t i = 0; i < in->n_streams; i++) {
		const char *tn = snake(g, in->streams[i].name);

		fprintf(g->out, "\tif (r == 0 && server->handlers->%s)\n"
			"\t\tr = pier_server_handle_streams(s, %d, %s__stream_%s, (void *)server);\n",
			tn, in->streams[i].id, n->i, tn);
	}
	fputs("\treturn r;\n}\n\n", g->out);

	/* one peer, as a server would serve it: the same handlers */
	fprintf(g->out, "static void %s__request(const struct %s_server *server, pier_peer *peer,\n"
		"\t\t\t   pier_msg *msg, pier_received_request *req)\n{\n"
		"\tint32_t id = pier_received_request_service_id(req);\n\tint r = -1;\n\n"
		"\tswitch (id) {\n", n->i, n->i);
	for (size_t i = 0; i < in->n_services; i++) {
		const char *sn = snake(g, in->services[i].name);

		fprintf(g->out, "\tcase %d:\n\t\tif (server->handlers->%s)\n"
			"\t\t\tr = %s__serve_%s((void *)server, peer, NULL, msg, req);\n\t\tbreak;\n",
			in->services[i].id, sn, n->i, sn);
	}
	fprintf(g->out, "\tdefault:\n\t\tbreak;\n\t}\n"
		"\tif (r < 0) {\n\t\tchar text[48];\n\n"
		"\t\tsnprintf(text, sizeof(text), \"unknown service id %%d\", (int)id);\n"
		"\t\tpier_received_request_send_error(req, text);\n\t}\n"
		"\tif (r != PIER_HANDLER_KEEP)\n\t\tpier_received_request_free(req);\n}\n\n"
		"static void %s__stream(const struct %s_server *server, pier_peer *peer, pier_msg *msg)\n{\n"
		"\tswitch (pier_msg_header(msg)->service_id) {\n", n->i, n->i);
	for (size_t i = 0; i < in->n_streams; i++) {
		const char *tn = snake(g, in->streams[i].name);

		fprintf(g->out, "\tcase %d:\n\t\tif (server->handlers->%s)\n"
			"\t\t\t%s__stream_%s((void *)server, peer, NULL, msg);\n\t\tbreak;\n",
			in->streams[i].id, tn, n->i, tn);
	}
	fprintf(g->out, "\tdefault: /* dropped, as a server drops it */\n\t\tbreak;\n\t}\n}\n\n"
		"int %s_serve_peer(const struct %s_server *server, pier_peer *peer, int timeout_ms)\n{\n"
		"\tif (!server || !server->handlers || !server->fmt || !peer)\n\t\treturn -EINVAL;\n"
		"\tfor (;;) {\n\t\tpier_received_request *req = NULL;\n\t\tpier_msg *msg;\n"
		"\t\tint r = pier_peer_recv(peer, &msg, &req, timeout_ms);\n\n"
		"\t\tif (r < 0)\n\t\t\treturn r == -PIER_ECLOSED ? 0 : r;\n"
		"\t\tif (req)\n\t\t\t%s__request(server, peer, msg, req);\n"
		"\t\telse\n\t\t\t%s__stream(server, peer, msg);\n"
		"\t\tpier_msg_free(msg);\n\t}\n}\n\n", n->i, n->i, n->i, n->i);
}

void gen_iface_code(struct gen *g, const struct interface *in)
{
	struct inames n = inames(g, in);
	const char *text = text_of_interface(g->a, g->f, in);

	fprintf(g->out, "/* --- interface %s ---------------------------------------------- */\n\n",
		in->name);
	description(g, &n, in, text);
	client(g, &n, in);
	for (size_t i = 0; i < in->n_services; i++)
		reply_functions(g, &n, &in->services[i], i);
	for (size_t i = 0; i < in->n_services; i++)
		serve_service(g, &n, &in->services[i]);
	for (size_t i = 0; i < in->n_streams; i++)
		serve_stream(g, &n, &in->streams[i]);
	serve(g, &n, in);
}
