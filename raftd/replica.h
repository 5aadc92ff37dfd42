/* One server's replica: the Raft core, its log and metadata in the store,
 * the state machine, and the group-commit write path.
 *
 * Write path (single voter): replica_propose() hands a command to the Raft
 * core, which appends it to an in-memory batch. replica_flush(), called
 * once per event-loop iteration, then runs ONE write transaction that
 * stores every batched log entry, applies every committed entry to the
 * state machine, records lastApplied, and commits (one fsync). Only after
 * that commit does it report each entry's outcome (applied callback) and
 * each changed key (change callback), so nothing is acknowledged or
 * announced before it is durable.
 *
 * Start: replica_open() loads currentTerm, votedFor, lastApplied and the
 * log's tail; replica_start() becomes leader of a new term and appends a
 * no-op; the next flush applies every entry after lastApplied (replaying
 * what a crash left unapplied) up to and including the no-op.
 *
 * A store failure is fatal for the replica: every later call returns
 * CAIRN_E_STORE, and the caller should exit and let the supervisor restart
 * it (the log on disk is consistent). */
#ifndef CAIRN_RAFTD_REPLICA_H
#define CAIRN_RAFTD_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm.h"

struct mp_writer;
struct replica;
struct store;

struct replica_config {
	const char *dir;       /* store directory (<data_dir>/raft) */
	uint64_t map_size;     /* 0: store default */
	const char *server_id; /* this server's Raft id (the node ID) */
	const char *address;   /* this server's RPC address (host:port); NULL: none */
	bool await_config;     /* multi-server: with an empty log, wait for a
				* bootstrap or a leader instead of being the
				* only voter */
	uint64_t election_ms;  /* 0: raft default (1000) */
	uint64_t heartbeat_ms; /* 0: raft default (100) */
	uint64_t snapshot_threshold; /* compact after this many applied entries (Consul's
				      * raft_snapshot_threshold); 0: never */
	uint64_t trailing_logs;	     /* entries kept behind the compaction point
				      * (raft_trailing_logs) */
};

/* Log entry type of a snapshot restore (PUT /v1/snapshot): the payload is
 * an archive (snapshot.h) that replaces the state machine's tables when
 * applied, on every server alike. */
#define REPLICA_ENTRY_RESTORE 3u

/* Largest InstallSnapshot chunk, bytes. */
#define REPLICA_SNAPSHOT_CHUNK (256u * 1024u)

struct proto_raft_rpc;
struct raft_config;

/* Hands an encoded RAFT_RPC message to the transport, for the server at
 * address (host:port). buf is borrowed for the call. Called only after
 * the flush that made everything the message acknowledges durable. */
typedef void (*replica_send_fn)(void *ctx, const char *address, const uint8_t *buf, size_t len);

/* Outcome of a proposal, after its commit. ud is the proposal's. */
typedef void (*replica_applied_fn)(void *ctx, void *ud, uint64_t index,
				   const struct fsm_result *res);

/* Opens the store and loads the Raft state. applied/change may be NULL;
 * change gets every key a committed entry changed (borrowed for the call).
 * Returns 0 and *out, or a negative code with a reason in err. */
int replica_open(const struct replica_config *cfg, replica_applied_fn applied, fsm_change_fn change,
		 void *ctx, struct replica **out, char *err, size_t errlen);
/* Closes the store. Pending proposals are dropped without callbacks, so
 * flush first. NULL is fine. */
void replica_close(struct replica *rp);

/* Starts the Raft core: as the only voter it becomes leader of a new term
 * (term and vote made durable at once) and proposes the no-op; in a
 * cluster it starts the election timer. Call once, then flush. */
int replica_start(struct replica *rp);

/* Proposes a command (fsm.h encoding; copied). ud comes back in the
 * applied callback once the entry is committed and applied. Returns 0 with
 * the entry's index, CAIRN_E_NOLEADER, -ENOMEM or CAIRN_E_STORE. */
int replica_propose(struct replica *rp, const uint8_t *cmd, size_t len, void *ud,
		    uint64_t *out_index);

/* True when proposals wait for replica_flush. */
bool replica_has_pending(const struct replica *rp);

/* Reports every proposal still waiting for its commit as failed with code
 * (shutdown: their requests are answered instead of leaked). */
void replica_fail_outstanding(struct replica *rp, int code);

/* The group commit described above. Returns 0 or a negative code; on
 * failure every pending proposal is reported with code CAIRN_E_STORE and
 * the replica is failed. */
int replica_flush(struct replica *rp);

/* The store, for read transactions (never write through it). */
struct store *replica_store(struct replica *rp);

/* Multi-server: where outgoing Raft messages go. */
void replica_set_transport(struct replica *rp, replica_send_fn fn, void *ctx);

/* A Raft message from a peer (entries borrowed for the call). Effects
 * (appends, applies, answers) complete at the next replica_flush. Returns
 * 0 or a negative code (a store failure: the replica is failed). */
int replica_receive(struct replica *rp, const struct proto_raft_rpc *m);

/* Advances Raft timers (elections, heartbeats); call every ~10-20 ms. */
int replica_tick(struct replica *rp);

/* Bootstraps a fresh replica (empty log, term 0) with cfg, durably (the
 * configuration entry is flushed before this returns). Returns 0, -EEXIST
 * when already bootstrapped (never twice), or a negative code. */
int replica_bootstrap(struct replica *rp, const struct raft_config *cfg);

/* Leader: proposes adding a voter (one change at a time). Returns 0,
 * CAIRN_E_NOLEADER, -EBUSY, -EEXIST or -EINVAL (raft_add_server). */
int replica_add_server(struct replica *rp, const char *id, const char *address);

/* Consistent reads (raft_read_index): starts a heartbeat round; the read
 * may be served once replica_read_ready says so (*out_failed: leadership
 * was lost, the read must fail). */
int replica_read_index(struct replica *rp, uint64_t *out_seq, uint64_t *out_index);
bool replica_read_ready(const struct replica *rp, uint64_t seq, uint64_t index, bool *out_failed);

/* A peers.json recovery is pending (until its configuration commits). */
bool replica_recovering(const struct replica *rp);

/* Leader handing its leadership over (proposals are refused meanwhile). */
bool replica_transferring(const struct replica *rp);

/* Leader: hands leadership to the most up-to-date voter (raft_transfer).
 * Returns 0, CAIRN_E_NOLEADER, -ENOENT (no other voter) or -EBUSY. */
int replica_transfer(struct replica *rp);

/* Leader: proposes removing server id; ud comes back in the applied
 * callback once the change is committed (like replica_propose). Returns 0
 * with the entry's index, CAIRN_E_NOLEADER, -EBUSY, -ENOENT or -EINVAL. */
int replica_remove_server(struct replica *rp, const char *id, void *ud, uint64_t *out_index);
/* Log index of the configuration in force, 0 when none (single server). */
uint64_t replica_config_index(const struct replica *rp);
/* Id of the known leader, "" when none. */
const char *replica_leader_id(const struct replica *rp);

/* True once the replica has a configuration (bootstrapped or replicated). */
bool replica_has_config(const struct replica *rp);
/* The leader's RPC address, "" when unknown (this server's own when it
 * leads). */
const char *replica_leader_addr(const struct replica *rp);
/* The voters' addresses (at most max) into out; returns how many. */
size_t replica_voters(const struct replica *rp, const char **out, size_t max);
/* The Raft configuration in force (read only). */
const struct raft_config *replica_config_of(const struct replica *rp);
/* A leader is known (this server or another). */
bool replica_known_leader(const struct replica *rp);
/* ms since the leader was last heard from (0 on the leader). */
uint64_t replica_last_contact_ms(const struct replica *rp);
/* Leader whose lease holds (default-mode reads may be served locally). */
bool replica_lease_valid(const struct replica *rp);
/* When that lease ends (clock_now_ms time; 0 when it does not hold,
 * UINT64_MAX for a single voter). For lease_pub.h. */
uint64_t replica_lease_until_ms(const struct replica *rp);

struct snapshot_writer;
struct snapshot_meta;
struct proto_raft_snapshot;

/* Writes an archive of the applied state (one read transaction: writes go
 * on meanwhile), in the calling thread, into w (begun here; free it with snapshot_writer_free).
 * Fills *out with its index, term and configuration. Returns 0 or a
 * negative code. */
int replica_snapshot_archive(struct replica *rp, struct snapshot_writer *w,
			     struct snapshot_meta *out);

/* Proposes restoring an archive (checked first: -EINVAL with *why when
 * it is corrupted). Through the log, like replica_propose: ud comes back
 * in the applied callback once every table was replaced. */
int replica_propose_restore(struct replica *rp, const uint8_t *archive, size_t len, void *ud,
			    uint64_t *out_index, const char **why);

/* An InstallSnapshot chunk or answer from a peer (RAFT_SNAPSHOT). Returns
 * 0 or a negative code (the replica is failed). */
int replica_receive_snapshot(struct replica *rp, const struct proto_raft_snapshot *m);

struct rpc_req;
/* SNAPSHOT_SAVE: keeps the request (RPC_KEEP) and answers SNAPSHOT_DATA
 * once a background copy of this server's applied state is done
 * (replica_snapshot_poll; cluster.c sent default and consistent reads to
 * the leader). SNAPSHOT_RESTORE: refuses a corrupted archive
 * (CAIRN_E_BADREQ), else proposes it and keeps the request (RPC_KEEP):
 * the applied callback answers it with WRITE_REPLY. Returns the rpc
 * disposition (enum rpc_disposition). */
int replica_snapshot_rpc(struct replica *rp, struct rpc_req *req);

/* Archives for SNAPSHOT_SAVE and InstallSnapshot are copied by a thread
 * from its own LMDB read transaction, so the loop keeps serving and
 * committing. This eventfd turns readable when a copy finished: watch it
 * on the loop and call replica_snapshot_poll, which answers the waiting
 * requests and hands the archive to InstallSnapshot. */
int replica_snapshot_fd(const struct replica *rp);
void replica_snapshot_poll(struct replica *rp);
/* A copy is running or waits for replica_snapshot_poll. */
bool replica_snapshot_busy(const struct replica *rp);

/* Log compaction so far: entries up to the returned index are gone. */
uint64_t replica_log_base(const struct replica *rp);

/* Raft state, for status and tests. */
uint64_t replica_term(const struct replica *rp);
uint64_t replica_last_index(const struct replica *rp);
uint64_t replica_last_applied(const struct replica *rp);
bool replica_is_leader(const struct replica *rp);
/* The Raft core, read only (autopilot reads the leader's per-follower
 * progress). Borrowed; valid while the replica is open. */
struct raft;
const struct raft *replica_raft(const struct replica *rp);

/* Writes a log entry's stored form ([term, type, payload]) into w (reset
 * first). Exposed for tests that craft a log by hand. */
void replica_encode_entry(struct mp_writer *w, uint64_t term, unsigned type, const uint8_t *payload,
			  size_t len);

#endif
