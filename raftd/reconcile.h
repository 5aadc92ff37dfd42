/* The Raft leader's catalog reconciliation with the LAN pool (Consul's
 * leader_reconcile: reconcileMember / reconcileReaped).
 *
 * On the leader only, every member of the LAN pool is kept as a catalog
 * node with the check `serfHealth` ("Serf Health Status"):
 *   alive          -> node registered at the member's address, serfHealth
 *                     passing, "Agent alive and reachable";
 *   failed         -> serfHealth critical, "Agent not live or unreachable"
 *                     (a node the catalog does not have is left out, as
 *                     Consul does);
 *   left / reaped  -> the node deregistered with its services and checks
 *                     (never the leader's own node: a follower does that
 *                     after the leader left);
 *   leaving        -> nothing yet.
 * Members whose tag dc names another datacenter are ignored. A catalog node
 * that has a serfHealth check but is no longer a member is deregistered
 * (Consul's reconcileReaped) at once when its serfHealth is critical (a
 * failed member reaped); with serfHealth passing only when this server's
 * feed saw it as a member before and the member table has been stable for
 * 30 s since (no member removed, synced for that long): a gossipd that
 * just restarted has not heard from everyone yet, and a pool this server
 * never shared with the node (servers that only know each other's Raft
 * addresses) proves nothing; neither must empty the catalog. Sessions bound to serfHealth
 * end through the catalog writes themselves (session.c, in the FSM).
 *
 * Servers (Consul's joinConsulServer): an alive server member of this
 * datacenter (tag role "consul", with tags id and port) that the Raft
 * configuration lacks is added as a voter, one change at a time; so a
 * server removed while it was dead (autopilot, remove-peer) comes back by
 * rejoining the pool.
 *
 * Timing: member changes reported by the feed are handled at the next
 * tick (200 ms); a full pass runs after each election (once the new
 * leader applied its whole log), after every feed resynchronisation, and
 * every 60 s (Consul's reconcile_interval). Writes are ordinary catalog
 * register/deregister commands proposed through the Raft log, at most 256
 * per tick (one group commit); a pass waits until the previous pass's
 * writes are applied, so it never repeats a write still in flight.
 *
 * reconcile_decide() is the pure decision, tested alone. */
#ifndef CAIRN_RAFTD_RECONCILE_H
#define CAIRN_RAFTD_RECONCILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct loop;
struct member_feed;
struct member_feed_member;
struct replica;
struct reconcile;

#define RECONCILE_CHECK_ID "serfHealth"
#define RECONCILE_CHECK_NAME "Serf Health Status"
#define RECONCILE_ALIVE_OUTPUT "Agent alive and reachable"
#define RECONCILE_FAILED_OUTPUT "Agent not live or unreachable"
#define RECONCILE_INTERVAL_MS 60000
#define RECONCILE_SETTLE_MS 30000

enum reconcile_op {
	RECONCILE_NONE = 0,	  /* the catalog already agrees */
	RECONCILE_ALIVE = 1,	  /* register the node, serfHealth passing */
	RECONCILE_FAILED = 2,	  /* serfHealth critical (node record kept) */
	RECONCILE_DEREGISTER = 3, /* remove the node, its services and checks */
};

/* What the catalog holds for one node, for the decision. */
struct reconcile_node {
	const char *address;	 /* the node's Address */
	const char *serf_status; /* its serfHealth check's Status; NULL: no such check */
};

/* The write (if any) that brings node `name` in line with member m.
 * m: the member, or NULL when the pool does not have it (reaped, or never
 * a member); node: the catalog's record, or NULL when it has none; dc: the
 * local datacenter; self: the leader's own node name; settled: a member
 * the table lacks is known to be gone (it was a member, and the table has
 * been stable long enough since); else only a node whose serfHealth is
 * critical is removed. Pure. */
enum reconcile_op reconcile_decide(const char *name, const struct member_feed_member *m,
				   const struct reconcile_node *node, const char *dc,
				   const char *self, bool settled);

/* Whether m is an alive server of datacenter dc whose Raft identity is
 * known: its tag id into out_id and its RPC address host:port (tag port)
 * into out_addr. Pure. */
bool reconcile_server_of(const struct member_feed_member *m, const char *dc, char *out_id,
			 size_t id_len, char *out_addr, size_t addr_len);

/* The driver. rp, cfg and feed are borrowed and outlive it; feed may be
 * NULL (nothing is reconciled then). Returns NULL when out of memory. */
struct reconcile *reconcile_new(struct loop *l, struct replica *rp, const struct config *cfg,
				struct member_feed *feed);
/* NULL is fine. */
void reconcile_free(struct reconcile *r);

/* The feed reported a change of member name; removed: it left the table. */
void reconcile_member_changed(struct reconcile *r, const char *name, bool removed);
/* Ask for a full pass at the next tick (after a feed resynchronisation). */
void reconcile_request_full(struct reconcile *r);

/* Writes proposed since the start (for tests and logs). */
uint64_t reconcile_writes(const struct reconcile *r);

#endif
