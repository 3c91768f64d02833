/* SPDX-License-Identifier: MIT */
/*
 * The client and server pier-scanner generates for tests/typed.pier's
 * interface: calls with updates both ways and fds, error responses (a
 * handler's, and the automatic one for a request that is not one, which
 * names the field), what a remote may send wrong, a pier_server serving
 * the handlers, and the interface's description.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pier/typed.h>

#include "peers.h"
#include "typed-pier.h"

#ifdef HAVE_JSON_C

/* What the handlers saw and are told to do. */
struct state {
	int pings;
	bool fail;                     /* record: answer with an error */
	struct typed_record_reply *kept; /* record: kept, not answered */
	char shape_label[32];
	uint32_t exposure;
};

static int on_ping(void *userdata, pier_peer *peer, void *peer_data, struct typed_ping_reply *reply)
{
	struct state *st = userdata;

	st->pings++;
	ck_assert_int_eq(typed_ping_reply_respond(reply, NULL), 0);
	return PIER_HANDLER_DONE;
}

/* Sends two updates (the second with two fds), waits for the client's
 * cancel, and answers. */
static int on_record(void *userdata, pier_peer *peer, void *peer_data, struct typed_record *request,
		     struct typed_record_reply *reply)
{
	struct state *st = userdata;
	enum typed_state recording = TYPED_STATE_RECORDING;
	struct typed_record_request_update u;
	struct typed_numbers n = { .a = -1, .h = UINT64_MAX, .y = 0.5 };
	struct typed_frame f;
	struct pier_value_error err;

	st->exposure = request->settings.exposure;
	if (st->fail) {
		ck_assert_int_eq(typed_record_reply_fail(reply, "no camera"), 0);
		return PIER_HANDLER_DONE;
	}
	if (request->settings.exposure == 0) {
		__atomic_store_n(&st->kept, reply, __ATOMIC_RELEASE);
		return PIER_HANDLER_KEEP;
	}
	ck_assert_int_eq(typed_record_reply_send_state(reply, &recording, &err), 0);
	typed_frame_init(&f);
	f.image = memfd_with("image");
	f.meta.depth = memfd_with("depth");
	f.seq = 3;
	ck_assert_int_eq(typed_record_reply_send_frame(reply, &f, &err), 0);
	typed_frame_free(&f); /* the send duplicated them */
	ck_assert_int_eq(typed_record_reply_recv_update(reply, &u, WAIT, &err), 0);
	ck_assert_int_eq(u.tag, TYPED_RECORD_REQUEST_UPDATE_CANCEL);
	ck_assert_int_eq(u.cancel.tag, TYPED_REASON_OBSTRUCTED);
	ck_assert_str_eq(u.cancel.obstructed, "a tree");
	typed_record_request_update_free(&u);
	ck_assert_int_eq(typed_record_reply_respond(reply, &n, &err), 0);
	return PIER_HANDLER_DONE;
}

static int on_tree(void *userdata, pier_peer *peer, void *peer_data, struct typed_tree *request,
		   struct typed_tree_reply *reply)
{
	/* the answer: the request's children, taken from it */
	int r = typed_tree_reply_respond(reply, &request->children, NULL);

	ck_assert_int_eq(r, 0);
	return PIER_HANDLER_DONE;
}

static void on_shape(void *userdata, pier_peer *peer, void *peer_data, struct typed_shape *value)
{
	struct state *st = userdata;

	ck_assert_int_eq(value->tag, TYPED_SHAPE_LABELLED);
	snprintf(st->shape_label, sizeof(st->shape_label), "%s", value->labelled.label);
}

static const struct typed_handlers handlers = {
	.ping = on_ping, .record = on_record, .tree = on_tree, .shape = on_shape,
};

/* A peer served by typed_serve_peer() on a thread of its own. */
struct served {
	pthread_t thread;
	struct typed_server server;
	struct state st;
	pier_peer *peer;
	int result;
};

static void *serve_thread(void *arg)
{
	struct served *s = arg;

	s->result = typed_serve_peer(&s->server, s->peer, 4 * WAIT);
	return NULL;
}

/* The client's peer in *client, the other one served. */
static void start(struct served *s, const struct typed_handlers *h, pier_peer **client)
{
	memset(s, 0, sizeof(*s));
	s->server = (struct typed_server){ h, pier_format_json(), &s->st };
	make_pair(PAIR_SEQPACKET_FD, client, &s->peer);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, serve_thread, s), 0);
}

/* Closes the client's peer: the serving ends with 0. */
static void stop(struct served *s, pier_peer *client)
{
	pier_peer_free(client);
	ck_assert_int_eq(pthread_join(s->thread, NULL), 0);
	ck_assert_int_eq(s->result, 0);
	pier_peer_free(s->peer);
}

static void record_request(struct typed_record *rec, uint32_t exposure)
{
	typed_record_init(rec);
	rec->settings.exposure = exposure;
}

/* --- calls --------------------------------------------------------------------------- */

START_TEST(ping_and_a_call_without_updates)
{
	struct served s;
	pier_peer *c;
	struct typed_client client;
	struct typed_tree t;
	struct typed_list_tree back;
	struct pier_value_error err;

	start(&s, &handlers, &c);
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	ck_assert_int_eq(typed_ping(&client, WAIT, &err), 0);
	ck_assert_int_eq(typed_ping(&client, WAIT, &err), 0);

	typed_tree_init(&t);
	t.children.items = calloc(2, sizeof(*t.children.items));
	t.children.len = 2;
	t.children.items[1].value = 42;
	ck_assert_int_eq(typed_tree(&client, &t, &back, WAIT, &err), 0);
	ck_assert_uint_eq(back.len, 2);
	ck_assert_int_eq(back.items[1].value, 42);
	pier_value_free(typed_interface.services[2].response, &back);
	typed_tree_free(&t);
	stop(&s, c);
	ck_assert_int_eq(s.st.pings, 2);
}
END_TEST

START_TEST(updates_both_ways_with_fds)
{
	struct served s;
	pier_peer *c;
	struct typed_client client;
	struct typed_record rec;
	struct typed_record_call *call;
	struct typed_record_response_update u;
	struct typed_reason cancel = { .tag = TYPED_REASON_OBSTRUCTED };
	struct typed_numbers n;
	struct pier_value_error err;
	char *image;

	start(&s, &handlers, &c);
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	record_request(&rec, 100);
	ck_assert_int_eq(typed_record(&client, &rec, &call, &err), 0);
	typed_record_free(&rec);

	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), 0);
	ck_assert_int_eq(u.tag, TYPED_RECORD_RESPONSE_UPDATE_STATE);
	ck_assert_int_eq(u.state, TYPED_STATE_RECORDING);
	typed_record_response_update_free(&u);
	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), 0);
	ck_assert_int_eq(u.tag, TYPED_RECORD_RESPONSE_UPDATE_FRAME);
	ck_assert_uint_eq(u.frame.seq, 3);
	image = read_fd(u.frame.image);
	ck_assert_str_eq(image, "image");
	free(image);
	typed_record_response_update_free(&u); /* closes its two fds */

	cancel.obstructed = strdup("a tree");
	ck_assert_int_eq(typed_record_call_send_cancel(call, &cancel, &err), 0);
	typed_reason_free(&cancel);
	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), -PIER_ERESPONSE);
	ck_assert_int_eq(typed_record_call_recv_response(call, &n, WAIT, &err), 0);
	ck_assert_int_eq(n.a, -1);
	ck_assert(n.h == UINT64_MAX);
	ck_assert(n.y == 0.5);
	typed_record_call_free(call);
	stop(&s, c);
	ck_assert_uint_eq(s.st.exposure, 100);
}
END_TEST

START_TEST(streams_reach_their_handler)
{
	struct served s;
	pier_peer *c;
	struct typed_client client;
	struct typed_shape shape = { .tag = TYPED_SHAPE_LABELLED };
	struct pier_value_error err;

	start(&s, &handlers, &c);
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	shape.labelled.label = strdup("square");
	ck_assert_int_eq(typed_send_shape(&client, &shape, &err), 0);
	typed_shape_free(&shape);
	/* a ping after it: once answered, the stream message was handled */
	ck_assert_int_eq(typed_ping(&client, WAIT, &err), 0);
	stop(&s, c);
	ck_assert_str_eq(s.st.shape_label, "square");
}
END_TEST

START_TEST(a_kept_reply_answers_later)
{
	struct served s;
	pier_peer *c;
	struct typed_client client;
	struct typed_record rec;
	struct typed_record_call *call;
	struct typed_numbers n = { .c = 7 }, back;
	struct pier_value_error err;

	start(&s, &handlers, &c);
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	record_request(&rec, 0); /* 0: the handler keeps the reply */
	ck_assert_int_eq(typed_record(&client, &rec, &call, &err), 0);
	typed_record_free(&rec);
	wait_until(__atomic_load_n(&s.st.kept, __ATOMIC_ACQUIRE) != NULL, WAIT);
	ck_assert_ptr_nonnull(typed_record_reply_request(s.st.kept));
	ck_assert_int_eq(typed_record_reply_respond(s.st.kept, &n, &err), 0);
	typed_record_reply_free(s.st.kept);
	ck_assert_int_eq(typed_record_call_recv_response(call, &back, WAIT, &err), 0);
	ck_assert_int_eq(back.c, 7);
	typed_record_call_free(call);
	stop(&s, c);
}
END_TEST

/* --- errors -------------------------------------------------------------------------- */

START_TEST(a_handlers_error_response)
{
	struct served s;
	pier_peer *c;
	struct typed_client client;
	struct typed_record rec;
	struct typed_record_call *call;
	struct typed_numbers n;
	struct pier_value_error err;

	start(&s, &handlers, &c);
	s.st.fail = true;
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	record_request(&rec, 5);
	ck_assert_int_eq(typed_record(&client, &rec, &call, &err), 0);
	typed_record_free(&rec);
	ck_assert_int_eq(typed_record_call_recv_update(call, NULL, WAIT, &err), -EINVAL);
	ck_assert_int_eq(typed_record_call_recv_response(call, &n, WAIT, &err), -PIER_EREMOTE);
	ck_assert_str_eq(err.message, "record: no camera");
	typed_record_call_free(call);
	stop(&s, c);
}
END_TEST

/* A request whose body is not the service's is answered with the decode
 * error, naming the field; the handler never sees it. */
START_TEST(a_bad_request_is_answered_with_the_field)
{
	static const char body[] = "{\"settings\":{\"exposure\":-1,\"name\":\"\",\"flags\":[]},"
				   "\"color\":true,\"cloud\":false,\"nothing\":null,\"blob\":[]}";
	struct served s;
	pier_peer *c;
	pier_sent_request *req;
	struct typed_numbers n;
	struct pier_value_error err;

	start(&s, &handlers, &c);
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(c), TYPED_SERVICE_RECORD_ID,
						  body, strlen(body), NULL, 0, &req), 0);
	ck_assert_int_eq(pier_typed_call_recv_response(req, pier_format_json(),
						       &typed_interface.services[1], &n, WAIT, &err),
			 -PIER_EREMOTE);
	ck_assert_str_eq(err.message, "record: record.settings.exposure: expected u32, got -1");
	pier_sent_request_free(req);
	/* and a service nobody serves */
	ck_assert_int_eq(pier_writer_send_request(pier_peer_get_writer(c), 77, "null", 4, NULL, 0,
						  &req), 0);
	ck_assert_int_eq(pier_typed_call_recv_response(req, pier_format_json(),
						       &typed_interface.services[0], NULL, WAIT, &err),
			 -PIER_EREMOTE);
	ck_assert_str_eq(err.message, "ping: unknown service id 77");
	pier_sent_request_free(req);
	stop(&s, c);
	ck_assert_uint_eq(s.st.exposure, 0);
}
END_TEST

/* A remote that sends what the service does not have: an update with an
 * id it has not, a response with another id, a body that is not one. */
START_TEST(what_a_remote_may_send_wrong)
{
	struct typed_record rec;
	struct typed_record_response_update u;
	struct typed_numbers n;
	struct pier_value_error err;
	struct typed_client client;
	struct typed_record_call *call;
	pier_received_request *rreq;
	pier_peer *a, *b;
	pier_msg *msg;

	make_pair(PAIR_SEQPACKET_FD, &a, &b);
	client = (struct typed_client){ pier_peer_get_writer(a), pier_format_json() };
	record_request(&rec, 1);
	ck_assert_int_eq(typed_record(&client, &rec, &call, &err), 0);
	typed_record_free(&rec);
	ck_assert_int_eq(pier_peer_recv(b, &msg, &rreq, WAIT), 0);
	pier_msg_free(msg);
	ck_assert_int_eq(pier_received_request_send_update(rreq, 99, "null", 4, NULL, 0), 0);
	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "record: an update with service id 99, which it has not");
	ck_assert_int_eq(pier_received_request_send_update(rreq, TYPED_RECORD_RESPONSE_UPDATE_STATE_ID,
							   "\"Lost\"", 6, NULL, 0), 0);
	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "record update state: unknown variant `Lost`, expected one "
			 "of `Recording`, `Processing`, `Done`");
	/* a frame update without its fds */
	ck_assert_int_eq(pier_received_request_send_update(rreq, TYPED_RECORD_RESPONSE_UPDATE_FRAME_ID,
							   "{}", 2, NULL, 0), 0);
	ck_assert_int_eq(typed_record_call_recv_update(call, &u, WAIT, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "record update frame: expected 2 fds, got 0");
	ck_assert_int_eq(pier_received_request_send_response(rreq, 5, "{}", 2, NULL, 0), 0);
	ck_assert_int_eq(typed_record_call_recv_response(call, &n, WAIT, &err), -EBADMSG);
	ck_assert_str_eq(err.message, "record: a response with service id 5");
	typed_record_call_free(call);
	pier_received_request_free(rreq);
	pier_peer_free(a);
	pier_peer_free(b);
}
END_TEST

/* --- a server ------------------------------------------------------------------------------ */

START_TEST(a_server_serves_the_handlers)
{
	struct state st = { 0 };
	struct typed_server ts = { &handlers, pier_format_json(), &st };
	struct typed_client client;
	struct typed_shape shape = { .tag = TYPED_SHAPE_LABELLED, .labelled.label = (char *)"circle" };
	struct pier_value_error err;
	struct typed_numbers n;
	pier_sent_request *req;
	pier_server *s;
	pier_peer *c;
	char address[256];

	ck_assert_int_eq(pier_server_new(&s, NULL), 0);
	ck_assert_int_eq(pier_server_set_workers(s, 2), 0);
	ck_assert_int_eq(typed_serve(s, &ts), 0);
	snprintf(address, sizeof(address), "seqpacket://@pier-typed-%d", getpid());
	ck_assert_int_eq(pier_server_listen(s, address), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	ck_assert_int_eq(pier_peer_connect(&c, address, NULL), 0);
	client = (struct typed_client){ pier_peer_get_writer(c), pier_format_json() };
	ck_assert_int_eq(typed_send_shape(&client, &shape, &err), 0);
	ck_assert_int_eq(typed_ping(&client, WAIT, &err), 0);
	/* the server's workers answer a bad request the same way */
	ck_assert_int_eq(pier_writer_send_request(client.writer, TYPED_SERVICE_RECORD_ID, "[]", 2,
						  NULL, 0, &req), 0);
	ck_assert_int_eq(pier_typed_call_recv_response(req, pier_format_json(),
						       &typed_interface.services[1], &n, WAIT, &err),
			 -PIER_EREMOTE);
	ck_assert_str_eq(err.message, "record: record: expected Record, got an array");
	pier_sent_request_free(req);
	pier_peer_free(c);
	ck_assert_int_eq(pier_server_stop(s), 0);
	ck_assert_int_eq(pier_server_wait(s, WAIT), 0);
	pier_server_free(s);
	/* the workers are gone: what they wrote can be read */
	ck_assert_int_eq(st.pings, 1);
	ck_assert_str_eq(st.shape_label, "circle");
}
END_TEST

/* --- the description ---------------------------------------------------------------------- */

START_TEST(the_interface_describes_itself)
{
	const struct pier_interface_type *in = &typed_interface;
	const struct pier_service_type *rec = &in->services[1];

	ck_assert_str_eq(in->name, "Typed");
	ck_assert_str_eq(in->doc, "Everything a test needs.\n");
	ck_assert_uint_eq(in->n_services, 4);
	ck_assert_str_eq(in->services[0].name, "ping");
	ck_assert_str_eq(in->services[0].doc, "Ping the server.\n");
	ck_assert_int_eq(in->services[0].request->kind, PIER_KIND_UNIT);
	ck_assert_str_eq(rec->name, "record");
	ck_assert_int_eq(rec->service_id, 1);
	ck_assert_ptr_eq(rec->request, &typed_record_type);
	ck_assert_str_eq(rec->response->name, "Numbers");
	ck_assert_uint_eq(rec->n_request_updates, 2);
	ck_assert_str_eq(rec->request_updates[1].name, "disconnect");
	ck_assert_int_eq(rec->request_updates[1].service_id, 101);
	ck_assert(rec->request_updates[1].hidden);
	ck_assert(!rec->request_updates[0].hidden);
	ck_assert_uint_eq(rec->n_response_updates, 2);
	ck_assert_ptr_eq(rec->response_updates[1].body, &typed_frame_type);
	ck_assert(in->services[2].hidden);
	ck_assert_ptr_null(in->services[2].doc);
	ck_assert_str_eq(in->services[2].response->name, "Vec<Tree>");
	ck_assert_uint_eq(in->n_streams, 1);
	ck_assert_str_eq(in->streams[0].name, "shape");
	ck_assert_int_eq(in->streams[0].service_id, 3);
}
END_TEST

/* --- introspection: describe requests ------------------------------------------------- */

static const struct pier_interface_type other_interface = {
	.name = "Other", .source = "interface Other {\n\tstream 1 s: (),\n}\n",
};

START_TEST(a_server_answers_describe)
{
	const struct pier_interface_type *both[] = { &typed_interface, &other_interface };
	const struct pier_interface_type **gone;
	struct pier_description d = { 0 };
	struct pier_value_error err;
	pier_server *s;
	pier_peer *c;
	char address[256];

	ck_assert_int_eq(pier_server_new(&s, NULL), 0);
	ck_assert_int_eq(pier_server_handle_describe(s, PIER_DESCRIBE_SERVICE, both, 2), 0);
	/* one id, one handler */
	ck_assert_int_eq(pier_server_handle_describe(s, PIER_DESCRIBE_SERVICE, both, 1), -EEXIST);
	/* the server copied what it answers: the array may go */
	gone = malloc(sizeof(*gone));
	ck_assert_ptr_nonnull(gone);
	gone[0] = &other_interface;
	ck_assert_int_eq(pier_server_handle_describe(s, 77, gone, 1), 0);
	free(gone);
	snprintf(address, sizeof(address), "seqpacket://@pier-describe-%d", getpid());
	ck_assert_int_eq(pier_server_listen(s, address), 0);
	ck_assert_int_eq(pier_server_start(s), 0);
	ck_assert_int_eq(pier_server_handle_describe(s, 78, both, 1), -EBUSY);
	ck_assert_int_eq(pier_peer_connect(&c, address, NULL), 0);

	ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), PIER_DESCRIBE_SERVICE, WAIT, &d,
				       &err), 0);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_str_eq(d.sources[0], typed_interface.source);
	ck_assert_str_eq(d.sources[1], other_interface.source);
	pier_description_free(&d);
	ck_assert_uint_eq(d.n, 0);
	ck_assert_ptr_null(d.sources);
	ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), 77, WAIT, &d, &err), 0);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.sources[0], other_interface.source);
	pier_description_free(&d);
	/* an id nobody answers */
	ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), 79, WAIT, &d, &err), -PIER_EREMOTE);
	ck_assert_str_eq(err.message, "describe: unknown service id 79");
	pier_peer_free(c);
	pier_server_free(s);
}
END_TEST

/* A peer of its own answers with pier_describe_reply(). */
static void *describe_once(void *arg)
{
	pier_peer *p = arg;
	const struct pier_interface_type *one[] = { &typed_interface }, *bad[] = { NULL };
	pier_received_request *req;
	struct pier_value_error err;
	pier_msg *m;

	ck_assert_int_eq(pier_peer_recv(p, &m, &req, WAIT), 0);
	ck_assert_int_eq(pier_describe_reply(req, bad, 1, &err), -EINVAL);
	ck_assert_int_eq(pier_describe_reply(req, one, 1, &err), 0);
	pier_received_request_free(req);
	pier_msg_free(m);
	/* the second: not a description */
	ck_assert_int_eq(pier_peer_recv(p, &m, &req, WAIT), 0);
	ck_assert_int_eq(pier_received_request_send_response(req, PIER_DESCRIBE_SERVICE, "[1]", 3,
							     NULL, 0), 0);
	pier_received_request_free(req);
	pier_msg_free(m);
	return NULL;
}

START_TEST(a_peer_answers_describe)
{
	struct pier_description d = { 0 };
	struct pier_value_error err;
	pier_peer *c, *p;
	pthread_t t;

	make_pair(PAIR_SEQPACKET_FD, &c, &p);
	ck_assert_int_eq(pthread_create(&t, NULL, describe_once, p), 0);
	ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), PIER_DESCRIBE_SERVICE, WAIT, &d,
				       &err), 0);
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.sources[0], typed_interface.source);
	pier_description_free(&d);
	ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), PIER_DESCRIBE_SERVICE, WAIT, &d,
				       &err), -EBADMSG);
	ck_assert_str_eq(err.message, "describe response[0]: expected String, got 1");
	ck_assert_uint_eq(d.n, 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	pier_peer_free(c);
	pier_peer_free(p);
	ck_assert_int_eq(pier_describe(NULL, 1, WAIT, &d, &err), -EINVAL);
	ck_assert_int_eq(pier_describe_reply(NULL, NULL, 0, &err), -EINVAL);
	ck_assert_int_eq(pier_server_handle_describe(NULL, 1, NULL, 0), -EINVAL);
	pier_description_free(NULL);
}
END_TEST

START_TEST(the_source_names_every_type_it_uses)
{
	const char *src = typed_interface.source;

	ck_assert_ptr_nonnull(strstr(src, "interface Typed {\n"));
	ck_assert_ptr_nonnull(strstr(src, "\tservice 1 record: Record -> Numbers {\n"));
	ck_assert_ptr_nonnull(strstr(src, "\t\t#[hidden]\n\t\trequest_update 101 disconnect: (),\n"));
	ck_assert_ptr_nonnull(strstr(src, "struct Meta {\n\tdepth: fd,\n"));
	/* declared in the file, used by none of the interface */
	ck_assert_ptr_null(strstr(src, "Empty"));
}
END_TEST

#endif /* HAVE_JSON_C */

START_TEST(without_a_format_calls_fail)
{
	struct typed_client client = { NULL, pier_format_json() };
	struct pier_value_error err;

	ck_assert_int_eq(typed_ping(&client, WAIT, &err), -EINVAL);
	ck_assert_int_eq(typed_ping(NULL, WAIT, &err), -EINVAL);
	ck_assert_int_eq(typed_serve_peer(NULL, NULL, 0), -EINVAL);
#ifndef HAVE_JSON_C
	{
		/* introspection's answers are JSON */
		const struct pier_interface_type *in = &typed_interface;
		struct pier_description d = { 0 };
		pier_server *s;
		pier_peer *c, *p;

		make_pair(PAIR_SEQPACKET_FD, &c, &p);
		ck_assert_int_eq(pier_describe(pier_peer_get_writer(c), 1, WAIT, &d, &err), -ENOTSUP);
		ck_assert_int_eq(pier_server_new(&s, NULL), 0);
		ck_assert_int_eq(pier_server_handle_describe(s, 1, &in, 1), -ENOTSUP);
		pier_server_free(s);
		pier_peer_free(c);
		pier_peer_free(p);
	}
#endif
}
END_TEST

int main(void)
{
	Suite *s = suite_create("typed calls");
	TCase *tc = th_tcase("calls", TH_TIMEOUT);

	tcase_add_test(tc, without_a_format_calls_fail);
#ifdef HAVE_JSON_C
	tcase_add_test(tc, ping_and_a_call_without_updates);
	tcase_add_test(tc, updates_both_ways_with_fds);
	tcase_add_test(tc, streams_reach_their_handler);
	tcase_add_test(tc, a_kept_reply_answers_later);
	tcase_add_test(tc, a_handlers_error_response);
	tcase_add_test(tc, a_bad_request_is_answered_with_the_field);
	tcase_add_test(tc, what_a_remote_may_send_wrong);
	tcase_add_test(tc, a_server_serves_the_handlers);
	tcase_add_test(tc, the_interface_describes_itself);
	tcase_add_test(tc, a_server_answers_describe);
	tcase_add_test(tc, a_peer_answers_describe);
	tcase_add_test(tc, the_source_names_every_type_it_uses);
#endif
	suite_add_tcase(s, tc);
	return th_run(s);
}
