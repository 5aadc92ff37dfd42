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
};

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

/* Becomes leader of a new term (term and vote made durable at once) and
 * proposes the no-op. Call once, then flush. */
int replica_start(struct replica *rp);

/* Proposes a command (fsm.h encoding; copied). ud comes back in the
 * applied callback once the entry is committed and applied. Returns 0 with
 * the entry's index, CAIRN_E_NOLEADER, -ENOMEM or CAIRN_E_STORE. */
int replica_propose(struct replica *rp, const uint8_t *cmd, size_t len, void *ud,
		    uint64_t *out_index);

/* True when proposals wait for replica_flush. */
bool replica_has_pending(const struct replica *rp);

/* The group commit described above. Returns 0 or a negative code; on
 * failure every pending proposal is reported with code CAIRN_E_STORE and
 * the replica is failed. */
int replica_flush(struct replica *rp);

/* The store, for read transactions (never write through it). */
struct store *replica_store(struct replica *rp);

/* Raft state, for status and tests. */
uint64_t replica_term(const struct replica *rp);
uint64_t replica_last_index(const struct replica *rp);
uint64_t replica_last_applied(const struct replica *rp);
bool replica_is_leader(const struct replica *rp);

/* Writes a log entry's stored form ([term, type, payload]) into w (reset
 * first). Exposed for tests that craft a log by hand. */
void replica_encode_entry(struct mp_writer *w, uint64_t term, unsigned type, const uint8_t *payload,
			  size_t len);

#endif
