/* Autopilot: the replicated autopilot configuration, server health as the
 * leader sees it, and dead-server cleanup (Consul's operator/autopilot).
 *
 * Model (Consul's agent/consul/autopilot and hashicorp/raft-autopilot):
 *   - The configuration (CleanupDeadServers, LastContactThreshold,
 *     MaxTrailingLogs, MinQuorum, ServerStabilizationTime) lives in the
 *     state machine: STORE_INDEX key "autopilot:config" -> msgpack
 *     [cleanup, threshold_ms, trailing, min_quorum, stabilization_ms,
 *     create_index, modify_index]. Absent means the defaults. It changes
 *     only through the log (AUTOPILOT_OP_SET), optionally with a
 *     check-and-set on ModifyIndex, so every server holds the same one and
 *     snapshots carry it.
 *   - Health is computed on the leader from the Raft core's per-follower
 *     progress and the gossip (LAN) member table: a server is healthy when
 *     gossip says it is alive, the leader heard from it within
 *     LastContactThreshold, it has an entry of the leader's term and its
 *     log trails the leader's by at most MaxTrailingLogs.
 *   - Cleanup, on the leader every second: servers of the Raft
 *     configuration that gossip reports failed or left are removed, one
 *     change at a time, only while the voters that stay keep a quorum of
 *     the configuration they leave (at most (voters - 1) / 2 removals) and
 *     never below MinQuorum voters. Servers gossip does not know at all
 *     are left alone (the member table may simply be incomplete). A
 *     server gossip reports alive again is added back by the leader's
 *     reconciliation (reconcile.c), as a non-voter the core promotes.
 *
 * The decision logic (autopilot_health_eval, autopilot_removals) and the
 * duration text helpers are pure; the rest is raftd glue on the loop. */
#ifndef CAIRN_RAFTD_AUTOPILOT_H
#define CAIRN_RAFTD_AUTOPILOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm.h"
#include "rpc.h"

struct loop;
struct member_feed;
struct mp_reader;
struct mp_writer;
struct replica;
struct store_txn;

#define AUTOPILOT_OP_SET 17		   /* the command's op number (fsm.h) */
#define AUTOPILOT_STORE_KEY "autopilot:config" /* STORE_INDEX key */
#define AUTOPILOT_CLEANUP_EVERY_MS 1000

/* The configuration, as Consul's structs.AutopilotConfig. */
struct autopilot_config {
	bool cleanup_dead_servers;		/* remove failed/left servers */
	uint64_t last_contact_threshold_ms;	/* healthy: heard within, ms */
	uint64_t max_trailing_logs;		/* healthy: entries behind at most */
	uint64_t min_quorum;			/* cleanup never leaves fewer voters */
	uint64_t server_stabilization_time_ms; /* shown; promotion is the core's */
	uint64_t create_index;			/* 0: never set (defaults) */
	uint64_t modify_index;			/* ModifyIndex, for ?cas= */
};

/* Gossip status of a server (member_feed.h's numbers). */
enum autopilot_serf {
	AUTOPILOT_SERF_NONE = 0, /* not in the member table */
	AUTOPILOT_SERF_ALIVE = 1,
	AUTOPILOT_SERF_LEAVING = 2,
	AUTOPILOT_SERF_LEFT = 3,
	AUTOPILOT_SERF_FAILED = 4,
};

/* One server of the Raft configuration with what the leader knows of it. */
struct autopilot_server {
	const char *id;		  /* Raft server id (node ID); borrowed */
	const char *name;	  /* node name from gossip, "" when unknown */
	const char *address;	  /* server RPC address host:port */
	const char *version;	  /* build version from gossip, "" when unknown */
	enum autopilot_serf serf; /* gossip status */
	bool leader;		  /* it is the leader (this server) */
	bool voter;		  /* it votes */
	bool contacted;		  /* the leader heard from it this term */
	uint64_t last_contact_ms; /* ms since then (0 on the leader) */
	uint64_t last_term;	  /* term of its last entry, as far as known */
	uint64_t last_index;	  /* its log matches the leader's up to here */
	bool healthy;		  /* output of autopilot_health_eval */
};

/* Consul's defaults: cleanup on, 200ms, 250, 0, 10s, indexes 0. */
void autopilot_config_default(struct autopilot_config *out);

/* Decides health (pure). Sets v[i].healthy for each of the n servers, as
 * raft-autopilot's isServerHealthy: gossip alive, and (the leader itself
 * apart) heard from within last_contact_threshold_ms, last_term equal to
 * leader_term and last_index + max_trailing_logs >= leader_last_index.
 * *out_healthy: every server is healthy (Consul's Healthy);
 * *out_failure_tolerance: healthy voters minus a quorum of the voters
 * (voters / 2 + 1), at least 0. */
void autopilot_health_eval(const struct autopilot_config *cfg, uint64_t leader_term,
			   uint64_t leader_last_index, struct autopilot_server *v, size_t n,
			   bool *out_healthy, uint64_t *out_failure_tolerance);

/* Decides dead-server cleanup (pure). Writes into out_idx (room for max)
 * the indexes into v of the servers to remove, in order, and returns how
 * many. None when cleanup_dead_servers is off. Candidates are servers that
 * are not the leader and whose gossip status is failed or left. A
 * non-voter is always removable; a voter only while fewer than
 * (voters - 1) / 2 voters were chosen before it (the voters that stay keep
 * a quorum of the current configuration) and voters - 1 - chosen >=
 * min_quorum. */
size_t autopilot_removals(const struct autopilot_config *cfg, const struct autopilot_server *v,
			  size_t n, size_t *out_idx, size_t max);

/* Writes ms as Go's time.Duration prints it ("0s", "200ms", "10s",
 * "1.5s", "1m30s", "2h0m0s") into buf (NUL-terminated, truncated to len). */
void autopilot_duration_format(uint64_t ms, char *buf, size_t len);

/* Encodes the AUTOPILOT_OP_SET command for cfg (its indexes ignored) into
 * w (reset first); with has_cas the FSM applies it only when the stored
 * ModifyIndex (0 when never set) equals cas. */
void autopilot_encode_set(struct mp_writer *w, const struct autopilot_config *cfg, bool has_cas,
			  uint64_t cas);

/* FSM: applies an AUTOPILOT_OP_SET command whose array header (2
 * elements) and op were read from r. out->ok false when the cas failed.
 * Returns 0 or a store error (out->code CAIRN_E_PROTO when malformed). */
int autopilot_apply_set(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			struct fsm_result *out);

/* Reads the stored configuration (the defaults when never set) into out.
 * Returns 0 or a store error. */
int autopilot_config_get(struct store_txn *txn, struct autopilot_config *out);

/* ---- raftd glue ----------------------------------------------------------- */

struct autopilot;

/* Creates the leader's cleanup timer (every AUTOPILOT_CLEANUP_EVERY_MS) on
 * l: it removes dead servers (autopilot_removals). Adding servers back
 * once gossip reports them alive is reconcile.c's (Consul's
 * joinConsulServer); dc is unused for now. rp, feed and self_node are
 * borrowed and must outlive the autopilot; feed may be
 * NULL (health then reports every server's SerfStatus "none" but the
 * leader's, and nothing is cleaned up). Returns NULL when out of memory. */
struct autopilot *autopilot_new(struct loop *l, struct replica *rp, struct member_feed *feed,
				const char *self_node, const char *dc);
void autopilot_free(struct autopilot *ap);

/* Serves AUTOPILOT_GET (answered at once), AUTOPILOT_HEALTH (answered at
 * once; the cluster layer routes both to the leader) and AUTOPILOT_SET
 * (proposed; answered with WRITE_REPLY by the replica's applied callback,
 * hence RPC_KEEP). */
enum rpc_disposition autopilot_handle(struct autopilot *ap, struct rpc_req *req);

#endif
