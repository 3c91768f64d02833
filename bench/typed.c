/* SPDX-License-Identifier: MIT */
/*
 * Typed bodies: encoding and decoding a struct of ten fields as JSON (the
 * code pier-scanner generates from bench/bench.pier, over the library's
 * walks and json-c), and a typed round trip of a 16-byte payload against
 * an untyped one of the same 16 bytes, each to a server process of its
 * own, in the same run.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pier.h>
#include <pier/typed.h>

#include "bench.h"

#ifdef HAVE_JSON_C
#include "bench-pier.h"

#define PAYLOAD "0123456789abcdef" /* 16 bytes */

static void sample(struct bench_sample *s)
{
	bench_sample_init(s);
	s->seq = 123456789;
	s->stamp = -1733580000123456789;
	s->x = 0.25;
	s->y = -12.5;
	s->z = 1034.0625;
	s->valid = true;
	s->sensor = strdup("left-camera");
	s->gain = 1.5f;
	s->exposure = 8000;
	s->flags = 0x0102;
}

/* Microseconds per encode and per decode of a sample, the best of a few
 * runs. */
static void codec_times(double *enc_us, double *dec_us)
{
	long iters = quick ? 20000 : 200000;
	struct pier_encoded out = { 0 };
	struct pier_value_error err;
	struct bench_sample s, back;
	int rounds = quick ? 1 : 5;
	int r;

	sample(&s);
	*enc_us = *dec_us = 1e9;
	for (int round = 0; round < rounds; round++) {
		double t0 = now_s(), t;

		for (long i = 0; i < iters; i++)
			if ((r = bench_sample_encode(&s, pier_format_json(), &out, &err)) < 0)
				die(err.message, r);
		t = (now_s() - t0) / iters * 1e6;
		*enc_us = t < *enc_us ? t : *enc_us;
		t0 = now_s();
		for (long i = 0; i < iters; i++) {
			if ((r = bench_sample_decode(&back, pier_format_json(), out.body, out.len, NULL,
						     0, &err)) < 0)
				die(err.message, r);
			bench_sample_free(&back);
		}
		t = (now_s() - t0) / iters * 1e6;
		*dec_us = t < *dec_us ? t : *dec_us;
	}
	/* what was timed is what was meant */
	if (bench_sample_decode(&back, pier_format_json(), out.body, out.len, NULL, 0, &err) < 0 ||
	    back.seq != s.seq || back.z != s.z || strcmp(back.sensor, s.sensor) != 0)
		die("the sample did not come back", -EBADMSG);
	bench_sample_free(&back);
	bench_sample_free(&s);
	pier_encoded_release(&out);
}

/* --- round trips ---------------------------------------------------------------------- */

struct rt_arg {
	long iters;
	bool pinned;
};

static int on_echo(void *userdata, pier_peer *peer, void *peer_data,
		   struct bench_payload *request, struct bench_echo_reply *reply)
{
	(void)userdata;
	(void)peer;
	(void)peer_data;
	return bench_echo_reply_respond(reply, request, NULL) < 0 ? -1 : PIER_HANDLER_DONE;
}

static const struct bench_handlers handlers = { .echo = on_echo };

static void typed_server(int fd, void *arg)
{
	const struct bench_server server = { &handlers, pier_format_json(), NULL };
	struct rt_arg *a = arg;
	pier_peer *peer;

	if (a->pinned)
		pin_to_cpu0();
	if (pier_peer_adopt(&peer, fd, NULL) < 0)
		_exit(1);
	if (bench_serve_peer(&server, peer, 60000) < 0)
		_exit(1);
	pier_peer_free(peer);
}

/* The untyped far end: bench.c's echo. */
static void untyped_server(int fd, void *arg)
{
	struct rt_arg *a = arg;
	pier_peer *peer;

	if (a->pinned)
		pin_to_cpu0();
	if (pier_peer_adopt(&peer, fd, NULL) < 0)
		_exit(1);
	serve(peer, 0);
	pier_peer_free(peer);
}

/* Seconds per round trip of the payload, typed or not, after 100 to warm
 * up. */
static double round_trips(struct rt_arg *a, bool typed)
{
	struct bench_payload req = { .text = (char *)PAYLOAD }, resp;
	struct pier_value_error err;
	struct bench_client client;
	pier_peer *peer;
	double t0 = 0;
	int sv[2], r;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", -errno);
	pid = spawn(typed ? typed_server : untyped_server, sv[1], sv[0], a);
	if ((r = pier_peer_adopt(&peer, sv[0], NULL)) < 0)
		die("adopt", r);
	client = (struct bench_client){ pier_peer_get_writer(peer), pier_format_json() };
	for (long i = -100; i < a->iters; i++) {
		if (i == 0)
			t0 = now_s();
		if (typed) {
			if ((r = bench_echo(&client, &req, &resp, 30000, &err)) < 0)
				die(err.message, r);
			bench_payload_free(&resp);
			continue;
		}
		call(peer, PAYLOAD, strlen(PAYLOAD), NULL, 0, "round trip");
	}
	t0 = (now_s() - t0) / a->iters;
	pier_peer_free(peer);
	reap(pid);
	return t0;
}

void bench_typed(void)
{
	double enc, dec;

	if (selected("typed-encode-10-fields") || selected("typed-decode-10-fields")) {
		codec_times(&enc, &dec);
		result("typed-encode-10-fields", enc, "us", 0, ABSOLUTE_MAX, 2.0);
		result("typed-decode-10-fields", dec, "us", 0, ABSOLUTE_MAX, 2.0);
	}
	for (int pinned = 1; pinned >= 0; pinned--) {
		struct rt_arg a = { quick ? 2000 : 20000, pinned };
		char name[64];
		double typed = 1e9, untyped = 1e9;
		cpu_set_t saved;

		snprintf(name, sizeof(name), "typed-rtt-16-seqpacket-%s",
			 pinned ? "pinned" : "unpinned");
		if (!selected(name))
			continue;
		sched_getaffinity(0, sizeof(saved), &saved);
		set_pinned(pinned, &saved);
		/* Alternated, the best of each: the machine is shared. */
		for (int round = 0; round < (quick ? 1 : pinned ? 3 : 7); round++) {
			double u = round_trips(&a, false), t = round_trips(&a, true);

			untyped = u < untyped ? u : untyped;
			typed = t < typed ? t : typed;
		}
		set_pinned(false, &saved);
		result(name, typed * 1e6, "us", untyped * 1e6, LOWER, 1.3);
	}
}

#else

void bench_typed(void)
{
	printf("typed rows: not built (no json-c)\n");
}

#endif
