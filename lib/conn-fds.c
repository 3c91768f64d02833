/* SPDX-License-Identifier: MIT */
/*
 * fds in flight.  Nothing tells a sender when the remote has read the fds it
 * sent: the kernel only says how much the socket holds unread (SIOCOUTQ: on
 * a Unix socket, the memory of the packets not yet read).  So while packets
 * with fds may be unread, every send is measured: what the socket holds
 * after it less what it held after the one before (or, for the first, just
 * before it) is that packet's memory, or less when the remote read
 * meanwhile.  Their sum since the oldest such packet went (c->charged) is at
 * most what those packets really took; less what the socket holds now, it
 * is at most what the remote has read of them.  A packet with fds whose
 * running sum is within that has been read, and its fds handed over,
 * however busy the socket stays with other messages.
 *
 * Everything here is under out_mu.
 */
#include "config.h"

#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "conn-int.h"
#include "transport.h"

/* Packets with fds tracked at most: one more than can be in flight under
 * the limit (each carries one fd at least), within what a ring of a few
 * MiB holds.  Past it, a packet is not tracked: its fds count until the
 * socket is empty, which errs on the side of waiting. */
#define FD_PACKETS_MAX 65536u

static unsigned int ring_cap(const struct conn *c)
{
	return (c->cfg.max_send_fds < FD_PACKETS_MAX ? c->cfg.max_send_fds : FD_PACKETS_MAX) + 1;
}

/* What the socket holds unread, or -1 when it cannot say. */
static int sock_unread_locked(const struct conn *c)
{
	int unread;

	if (c->link.fd < 0 || ioctl(c->link.fd, SIOCOUTQ, &unread) < 0)
		return -1;
	return unread;
}

/* What the socket held unread before a packet with nfds fds about to go,
 * for conn_fd_packet_sent_locked(): measured after the last packet while
 * packets with fds are tracked (nothing else went since), or now for the
 * first of them; -1 when it need not be known. */
int conn_unread_before_locked(const struct conn *c, size_t nfds)
{
	if (!(c->t->caps & TRANSPORT_FDS) || (!nfds && !c->fdp_count))
		return -1;
	return c->fdp_count ? c->unread_last : sock_unread_locked(c);
}

/* A packet with nfds fds went, the socket holding unread_before just
 * before: counts its memory, and records it if it carried fds. */
void conn_fd_packet_sent_locked(struct conn *c, unsigned int nfds, int unread_before)
{
	unsigned int cap = ring_cap(c);
	int unread_after;

	if (!(c->t->caps & TRANSPORT_FDS) || (!nfds && !c->fdp_count))
		return;
	unread_after = sock_unread_locked(c);
	c->unread_last = unread_after;
	if (!c->fdp_count)
		c->charged = 0;
	if (unread_before >= 0 && unread_after > unread_before)
		c->charged += unread_after - unread_before;
	if (!nfds)
		return;
	if (!c->fd_packets)
		c->fd_packets = malloc(cap * sizeof(*c->fd_packets));
	if (c->fd_packets && c->fdp_count < cap)
		c->fd_packets[(c->fdp_head + c->fdp_count++) % cap] =
			(struct fd_packet){ nfds, c->charged };
	/* Else it cannot be tracked: its fds count until the socket is
	 * empty. */
	c->fds_in_flight += nfds;
}

/* Forgets the packets with fds that the remote has read. */
void conn_fds_refresh_locked(struct conn *c)
{
	unsigned int cap = ring_cap(c);
	int64_t read_at_least;
	int unread;

	if (!c->fds_in_flight || (unread = sock_unread_locked(c)) < 0)
		return;
	if (unread == 0) {
		c->fdp_count = 0;
		c->fds_in_flight = 0;
		return;
	}
	read_at_least = c->charged - unread;
	while (c->fdp_count && c->fd_packets[c->fdp_head].charged <= read_at_least) {
		c->fds_in_flight -= c->fd_packets[c->fdp_head].nfds;
		c->fdp_head = (c->fdp_head + 1) % cap;
		c->fdp_count--;
	}
}
