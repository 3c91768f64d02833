/* SPDX-License-Identifier: MIT */
/*
 * The connection's states, each changed in one place that checks the
 * change is legal and, with PIER_DEBUG=1 in the environment, says it on
 * stderr; and the two things every part of the connection does: posting
 * work to the loop and counting.
 */
#include "config.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"

/* --- states -------------------------------------------------------------- */

static const char *const state_names[] = {
	[CONN_HANDSHAKING] = "handshaking", [CONN_OPEN] = "open",   [CONN_CLOSING] = "closing",
	[CONN_SHUT] = "shut",               [CONN_ENDED] = "ended", [CONN_CLOSED] = "closed",
};
static const char *const rd_names[] = {
	[RD_NONE] = "none", [RD_LOOP] = "loop",   [RD_APP] = "app",
	[RD_LEAVING] = "leaving", [RD_GONE] = "gone",
};
static const char *const pause_names[] = {
	[PAUSE_NONE] = "none", [PAUSE_RECV] = "recv", [PAUSE_SEND] = "send",
};
static const char *const wr_names[] = {
	[WR_IDLE] = "idle",	    [WR_HELD] = "held",	      [WR_LOOP] = "loop",
	[WR_DIRECT] = "direct", [WR_LEAVING] = "leaving",
};

atomic_int conn_debug = -1;

/* PIER_DEBUG=1 in the environment: every state change on stderr. */
static bool debug_on(void)
{
	int v = atomic_load_explicit(&conn_debug, memory_order_relaxed);

	if (pier_unlikely(v < 0)) {
		const char *e = getenv("PIER_DEBUG");

		v = e && *e && strcmp(e, "0") != 0;
		atomic_store_explicit(&conn_debug, v, memory_order_relaxed);
	}
	return v;
}

static void say(const struct conn *c, const char *what, const char *from, const char *to)
{
	int64_t ns = clock_now_ns();

	fprintf(stderr, "[%10.6f] pier: connection %p (%s): %s %s -> %s\n", (double)ns / 1e9,
		(const void *)c, c->remote, what, from, to);
}

void conn_set_state_locked(struct conn *c, enum conn_state s)
{
	enum conn_state from = c->state;

	if (s == from)
		return;
	/* Forward only; HANDSHAKING -> OPEN is the one step that can be
	 * skipped over, by closing or ending first. */
	assert(s > from);
	assert(loop_on_thread(c->loop));
	c->state = s;
	pthread_cond_broadcast(&c->state_cond);
	if (pier_unlikely(debug_on()))
		say(c, "state", state_names[from], state_names[s]);
}

void conn_say_rd(const struct conn *c, enum conn_rd from, enum conn_rd to)
{
	if (debug_on())
		say(c, "reader", rd_names[from], rd_names[to]);
}

void conn_say_pause(const struct conn *c, enum conn_pause from, enum conn_pause to)
{
	if (debug_on())
		say(c, "pause", pause_names[from], pause_names[to]);
}

void conn_say_wr(const struct conn *c, enum conn_wr from, enum conn_wr to)
{
	if (debug_on())
		say(c, "writer", wr_names[from], wr_names[to]);
}

void conn_post(struct conn *c, unsigned int events)
{
	loop_post(c->loop, &c->task, events);
}

void conn_count(struct conn *c, enum pier_stat s, uint64_t n)
{
	atomic_fetch_add_explicit(&c->stats[s], n, memory_order_relaxed);
}
