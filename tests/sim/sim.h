/* Deterministic simulation of a cluster of Raft cores in one process.
 *
 * N nodes (raftd/raft/ cores) share a virtual clock and a fake network
 * that delays (so reorders), loses and duplicates messages and can be cut
 * by partitions. Each node has a fake disk: appends and truncations go to
 * a volatile log and reach the "disk" at a later sync event, which is when
 * the core is told they are durable; a crash either loses what was not
 * synced or keeps it. sim_step() processes the next event (a delivery, a
 * disk sync, a node's tick, a client action or a fault) in a fixed
 * tie-break order and then checks the Raft safety properties:
 *
 * - Election Safety: at most one leader per term;
 * - Log Matching: two logs with an entry of the same index and term are
 *   identical up to it (every entry carries a hash of its whole prefix);
 * - Leader Completeness: a leader of term T holds every entry committed
 *   while no term above T had started;
 * - State Machine Safety: every node applies the same entry at an index.
 *
 * With snapshot_threshold set, each node snapshots its registers (with
 * the configuration and the prefix hash) after that many applied entries
 * once its log is synced that far, compacts its log, and serves the
 * snapshot to followers that need compacted entries through
 * InstallSnapshot in chunks of 1-48 bytes; an installed snapshot becomes
 * durable at the next disk sync (a crash before keeps the old state).
 *
 * Clients send put/get/cas on a few registers to whoever they think leads
 * (gets through the leader's lease or through the log) and record a
 * history that lin.h checks. Everything derives from one seed. */
#ifndef CAIRN_TEST_SIM_SIM_H
#define CAIRN_TEST_SIM_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sim;

struct sim_opts {
	uint64_t seed;	       /* everything derives from it */
	unsigned n_nodes;      /* nodes n1..nN (<= 7) */
	unsigned n_voters;     /* the first n_voters bootstrap the cluster; the
				* others wait to be added */
	unsigned loss_pct;     /* message loss, percent */
	unsigned dup_pct;      /* duplication, percent */
	unsigned delay_max_ms; /* delivery delay in [1, delay_max_ms] */
	unsigned sync_max_ms;  /* disk sync delay in [1, sync_max_ms] */
	unsigned n_clients;    /* concurrent clients (0: none) */
	bool faults;	       /* random partitions, crashes, restarts, transfers */
	bool membership;       /* random add/remove of servers */
	bool fast;	       /* short timings (election 100 ms, heartbeat 20 ms,
				* lease 50 ms) and faults every 20-200 ms, so a
				* schedule sees many elections */
	unsigned snapshot_threshold; /* snapshot after this many applied entries
				      * and compact the log (0: never) */
	unsigned trailing_logs;	     /* entries kept behind a snapshot */
};

/* Creates the cluster (bootstrapped, started, nothing delivered yet).
 * NULL on out of memory. */
struct sim *sim_new(const struct sim_opts *o);
void sim_free(struct sim *s);

/* Processes the next event and checks the invariants. Returns 0, or -1
 * when an invariant broke (sim_error says which). */
int sim_step(struct sim *s);
/* Steps until pred holds (0), budget_ms of virtual time passed (-2) or an
 * invariant broke (-1). */
int sim_run_until(struct sim *s, bool (*pred)(struct sim *s), uint64_t budget_ms);
/* Steps for ms of virtual time. Returns 0 or -1. */
int sim_run_for(struct sim *s, uint64_t ms);

const char *sim_error(const struct sim *s);
uint64_t sim_now(const struct sim *s);

/* Node index (0-based) of the leader with the highest term among live
 * nodes, -1 if none. */
int sim_leader(const struct sim *s);
/* A node's core (read only), or its liveness. */
const struct raft *sim_raft(const struct sim *s, unsigned node);
bool sim_alive(const struct sim *s, unsigned node);

/* Faults. Partition groups: nodes talk only within the same group. */
void sim_set_group(struct sim *s, unsigned node, unsigned group);
void sim_heal(struct sim *s);
void sim_crash(struct sim *s, unsigned node, bool lose_unsynced);
int sim_restart(struct sim *s, unsigned node);
/* Restarts node with a recovery configuration (raft_recover_config). */
struct raft_config;
int sim_restart_recover(struct sim *s, unsigned node, const struct raft_config *recover);
/* Stops random faults and client traffic (for a final convergence). */
void sim_quiesce(struct sim *s);

/* Proposes a put through node (must be leader). Returns 0 or the core's
 * code. */
int sim_put(struct sim *s, unsigned node, unsigned key, int64_t value);
/* A node's register value as applied there. */
int64_t sim_value(const struct sim *s, unsigned node, unsigned key);

/* True when every live member of the leader's configuration applied the
 * leader's commit index and there is a leader. */
bool sim_converged(struct sim *s);
/* Final checks after sim_converged: every acknowledged write is applied at
 * the same index on every live member; the recorded history is
 * linearizable. Returns 0 or -1 (sim_error). */
int sim_final_check(struct sim *s);

/* Counters for reports. */
struct sim_stats {
	uint64_t steps, delivered, dropped, acked, unknown, failed, lease_reads, index_reads,
	    elections, crashes, config_changes, transfers, snapshots, installs;
};
void sim_stats(const struct sim *s, struct sim_stats *out);

/* Runs one seeded random schedule: faults for run_ms, then healing until
 * converged, then the final checks. Returns 0, or -1 with the reason in
 * err (which names the seed). */
int sim_run_schedule(const struct sim_opts *o, uint64_t run_ms, char *err, size_t errlen,
		     struct sim_stats *out_stats);

#endif
