/* Which server a client agent sends its RPCs to: the pure choice and
 * failover logic (no sockets, no clock, no randomness of its own).
 *
 * Model (Consul's agent/router manager): the pool holds the servers of our
 * datacenter as the LAN gossip pool reports them (name -> ZeroMQ endpoint).
 * One of them is in use at a time; each agent chooses it at random, so
 * thousands of clients spread over the servers, and keeps it (one
 * connection, no per-request spraying) until:
 *   - a call to it fails: the caller reports it with servers_failed(); it is
 *     then held back for SERVERS_HOLD_MS and another one is chosen;
 *   - it leaves the pool (servers_remove);
 *   - the rebalance period (SERVERS_REBALANCE_MS plus a random part) ends:
 *     a new random choice, so that servers that joined later get their
 *     share of clients.
 * When every server is held back, the one whose hold ends first is tried
 * anyway: a cluster that lost all servers at once must be found again as
 * soon as one comes back. */
#ifndef CAIRN_SERVERS_H
#define CAIRN_SERVERS_H

#include <stddef.h>
#include <stdint.h>

struct member_feed_member;
struct servers;

/* A failed server is not chosen again for this long (unless all are). */
#define SERVERS_HOLD_MS 10000u
/* A choice is kept at least this long, plus up to as much again at
 * random, before a new random choice (Consul rebalances every ~2 min). */
#define SERVERS_REBALANCE_MS 120000u

/* Effects the pool needs: the time and random numbers. */
struct servers_io {
	void *ctx;
	uint64_t (*now_ms)(void *ctx);	/* monotonic milliseconds */
	uint32_t (*rand_u32)(void *ctx); /* uniform random */
};

/* An empty pool using io (copied). NULL when out of memory. */
struct servers *servers_new(const struct servers_io *io);
/* Frees the pool. NULL is fine. */
void servers_free(struct servers *s);

/* Adds server name reachable at endpoint, or updates its endpoint (a
 * changed endpoint also ends its hold). Both strings are copied. Returns
 * 0, or -ENOMEM. */
int servers_set(struct servers *s, const char *name, const char *endpoint);
/* Removes server name (unknown names are fine). If it was in use, the
 * next servers_pick() chooses again. */
void servers_remove(struct servers *s, const char *name);
/* Number of servers in the pool. */
size_t servers_count(const struct servers *s);
/* The endpoint of server name, or NULL when it is not in the pool.
 * Borrowed like servers_pick's answer. */
const char *servers_endpoint(const struct servers *s, const char *name);
/* Whether some server of the pool has this endpoint. */
int servers_has_endpoint(const struct servers *s, const char *endpoint);

/* The endpoint to send the next call to: the server in use, or a new
 * random choice when there is none, its rebalance period is over, or it
 * is held back while another is not. NULL when the pool is empty.
 * Borrowed: valid until the next call that changes the pool. */
const char *servers_pick(struct servers *s);
/* The endpoint of the server in use, or NULL when none is chosen; never
 * chooses. Borrowed like servers_pick's answer. */
const char *servers_in_use(const struct servers *s);
/* Reports that a call to endpoint failed (the server went away, refused
 * the connection or did not answer): holds it back for SERVERS_HOLD_MS
 * and, if it was in use, makes the next pick choose another. Unknown
 * endpoints are fine (the server may have left meanwhile). */
void servers_failed(struct servers *s, const char *endpoint);

/* Whether gossip member m is a server of datacenter dc (case-insensitive)
 * we can send calls to: alive, tag role "consul" (or "server"), tag dc,
 * tag port. If so, writes its endpoint "tcp://<addr>:<port>" (IPv6
 * addresses in brackets) into buf and returns 1; returns 0 when it is not
 * a candidate, -ENAMETOOLONG when buf is too small. */
int servers_member_endpoint(const struct member_feed_member *m, const char *dc, char *buf,
			    size_t len);

#endif
