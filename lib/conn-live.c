/* SPDX-License-Identifier: MIT */
/*
 * Liveness: TCP keepalive on the socket, and the loop's timer that ends a
 * connection on which nothing arrived for the idle timeout
 * (-PIER_EIDLE), and has the layer above send a ping when nothing arrived
 * for the ping interval.
 *
 * No clock is read on a message's way: whoever reads counts the reads
 * that brought data (c->reads), and the timer, which runs every quarter of
 * the shorter of the two times, compares that count with the one it saw
 * last.  A change means the remote was heard since the last run, which the
 * timer takes as now: a connection ends no sooner than the timeout after
 * the last data arrived, and at most half as long again after it (a run to
 * see the last change, a run to see the time up).
 */
#include "config.h"

#include <poll.h>

#include "clock.h"
#include "conn-int.h"
#include "private.h"
#include "transport.h"

/* The timer runs this many times per idle timeout (or ping interval). */
#define LIVE_TICKS 4

static int64_t ms_ns(int ms)
{
	return (int64_t)ms * 1000000;
}

/* How often the timer runs: a quarter of the shorter of the two times,
 * and not more often than every millisecond. */
static int64_t live_tick_ns(const struct conn *c)
{
	int idle = c->cfg.idle_timeout_ms, ping = c->cfg.ping_interval_ms;
	int ms = idle > 0 && (ping <= 0 || idle < ping) ? idle : ping;
	int64_t tick = ms_ns(ms) / LIVE_TICKS;

	return tick > 1000000 ? tick : 1000000;
}

void conn_keepalive(struct conn *c)
{
	/* Unix sockets have none: the setting is ignored there, so that
	 * one configuration serves every address. */
	if (c->cfg.ka_idle_s && c->t->keepalive)
		c->t->keepalive(c->link.fd, c->cfg.ka_idle_s, c->cfg.ka_interval_s,
				c->cfg.ka_count);
}

void conn_live_start(struct conn *c)
{
	if (c->cfg.idle_timeout_ms <= 0 && c->cfg.ping_interval_ms <= 0)
		return;
	c->live_since_ns = clock_now_ns();
	c->live_pinged_ns = c->live_since_ns;
	c->live_reads = atomic_load_explicit(&c->reads, memory_order_relaxed);
	loop_timer_arm(c->loop, &c->live_timer, c->live_since_ns + live_tick_ns(c));
}

/* Whether the remote was heard since the last run: something was read, or
 * waits to be read.  What waits is read now by the loop if nobody reads:
 * a ping must be answered, the remote's end seen, whether the application
 * waits for a message or not.  While reading pauses (the application, or
 * the remote reading this side's answers, must catch up first), what waits
 * unread counts as heard. */
static bool heard(struct conn *c)
{
	uint64_t reads = atomic_load_explicit(&c->reads, memory_order_relaxed);
	struct pollfd pfd = { c->link.fd, POLLIN, 0 };

	if (reads != c->live_reads) {
		c->live_reads = reads;
		return true;
	}
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	conn_read_unclaimed(c);
	return true;
}

void conn_live_expired(struct loop_timer *t)
{
	struct conn *c = pier_container_of(t, struct conn, live_timer);
	int idle = c->cfg.idle_timeout_ms, ping = c->cfg.ping_interval_ms;
	int64_t now = clock_now_ns();

	if (c->state >= CONN_ENDED)
		return; /* its end is under way: nothing to watch */
	/* A handshake has its own deadline. */
	if (c->state == CONN_HANDSHAKING || heard(c))
		c->live_since_ns = now;
	if (idle > 0 && now - c->live_since_ns >= ms_ns(idle)) {
		conn_fail(c, -PIER_EIDLE);
		conn_maybe_finish(c);
		return;
	}
	if (ping > 0 && c->state == CONN_OPEN && now - c->live_since_ns >= ms_ns(ping) &&
	    now - c->live_pinged_ns >= ms_ns(ping)) {
		c->live_pinged_ns = now;
		c->ops->ping(c);
	}
	loop_timer_arm(c->loop, t, now + live_tick_ns(c));
	conn_maybe_finish(c);
}
