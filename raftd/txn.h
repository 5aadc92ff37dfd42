/* Transactions (Consul's /v1/txn): up to TXN_MAX_OPS KV, node, service and
 * check operations applied atomically at one Raft index, or read together
 * from one snapshot when none of them writes.
 *
 * Write transactions are one log command (applied by fsm_apply; never
 * change the layout):
 *   [9, [op ...]]   op = [kind, verb, name|nil, id|nil, index, flags,
 *                         session|nil, cmd(bin)]
 * kind and verb are enum txn_kind and the verb numbers below; name is the
 * KV key or the node name; id the service or check ID; cmd the embedded
 * fsm/catalog command that performs a write verb (fsm_cmd_kv_set,
 * fsm_cmd_kv_lock, fsm_cmd_kv_delete, fsm_cmd_node_register,
 * catalog_cmd_register, catalog_cmd_deregister), empty for reads. Each op
 * runs through fsm_apply (the same code as the single-key writes) inside a
 * nested store transaction; every op runs even after one failed, so all
 * errors are reported (Consul's txnDispatch), and any failure aborts the
 * nested transaction: nothing changes, no index moves, no watcher wakes.
 *
 * Results travel to the waiting request out of band: the server registers
 * the log index it waits for (txn_results_want) and takes the outcome the
 * apply left for it (txn_results_take) when the entry is reported applied.
 * Replicas nobody waits on keep nothing. */
#ifndef CAIRN_RAFTD_TXN_H
#define CAIRN_RAFTD_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "fsm.h"
#include "proto.h"

struct mp_reader;
struct mp_writer;
struct session_lock_delays;
struct store_txn;

/* Consul's maxTxnOps. */
#define TXN_MAX_OPS 128

enum txn_kind {
	TXN_KV = 1,
	TXN_NODE = 2,
	TXN_SERVICE = 3,
	TXN_CHECK = 4,
};

/* KV verbs (api.KVOp). */
enum txn_kv_verb {
	TXN_KV_SET = 1,
	TXN_KV_CAS = 2,
	TXN_KV_LOCK = 3,
	TXN_KV_UNLOCK = 4,
	TXN_KV_GET = 5,
	TXN_KV_GET_OR_EMPTY = 6,
	TXN_KV_GET_TREE = 7,
	TXN_KV_CHECK_INDEX = 8,
	TXN_KV_CHECK_SESSION = 9,
	TXN_KV_CHECK_NOT_EXISTS = 10,
	TXN_KV_DELETE = 11,
	TXN_KV_DELETE_TREE = 12,
	TXN_KV_DELETE_CAS = 13,
};

/* Node, Service and Check verbs. */
enum txn_cat_verb {
	TXN_CAT_GET = 1,
	TXN_CAT_SET = 2,
	TXN_CAT_CAS = 3,
	TXN_CAT_DELETE = 4,
	TXN_CAT_DELETE_CAS = 5,
};

/* The verb number of verb for kind, 0 when unknown. */
unsigned txn_verb_code(unsigned kind, const char *verb);

/* Whether the op changes state (KV: set, cas, lock, unlock, delete*;
 * others: anything but get). Unknown verbs count as reads (Consul's
 * isWrite), and fail when run. */
bool txn_op_writes(const struct proto_txn_op *op);
/* Whether any op of t writes: then t goes through the log. */
bool txn_writes(const struct proto_txn *t);

/* A transaction's outcome: results (committed) or errors (rolled back),
 * everything in its own arena. */
struct txn_outcome {
	struct arena a;
	struct proto_txn_result *results;
	size_t n_results, cap_results;
	struct proto_txn_error *errors;
	size_t n_errors, cap_errors;
};

/* Heap outcome with an empty arena; NULL on out of memory. */
struct txn_outcome *txn_outcome_new(void);
/* Frees o and everything in it. NULL is fine. */
void txn_outcome_free(struct txn_outcome *o);
/* Appends an error (what copied into o's arena). 0 or -ENOMEM. */
int txn_outcome_error(struct txn_outcome *o, size_t op_index, const char *what);

/* Checks t before it is proposed and encodes the log command into w
 * (reset first). dc fills a node's empty Datacenter; lock_delays/now (may
 * be NULL) refuse a lock inside its lock-delay, as Consul's preCheck. An
 * op that cannot run (unknown verb, missing key, session or node name,
 * key too long, lock-delay) is recorded in errs and nothing is encoded.
 * Returns 0 (see errs->n_errors) or -ENOMEM. */
int txn_cmd_encode(struct mp_writer *w, const struct proto_txn *t, const char *dc,
		   struct session_lock_delays *lock_delays, uint64_t now, struct txn_outcome *errs);

/* Applies a transaction command whose op number and array header
 * fsm_apply read (n = 2). out->ok is true when committed, false when
 * rolled back; out->code is CAIRN_E_PROTO for a malformed command. Calls
 * change only after a commit. Returns 0 or a negative store error (the
 * enclosing transaction must then be aborted). */
int txn_apply(struct store_txn *txn, uint64_t index, struct mp_reader *r, struct fsm_result *out,
	      fsm_change_fn change, void *ctx);

/* Runs a read-only transaction (no op may write) against the snapshot txn
 * into out. Returns 0 (out holds results or errors) or a negative store
 * error / -ENOMEM. */
int txn_read(struct store_txn *txn, const struct proto_txn *t, struct txn_outcome *out);

/* Asks the next apply of log index `index` to keep its outcome. Returns 0
 * or -ENOMEM. */
int txn_results_want(uint64_t index);
/* Takes what the apply of index kept (caller frees with
 * txn_outcome_free), and forgets the wish either way; NULL when the entry
 * was not applied as a transaction here. */
struct txn_outcome *txn_results_take(uint64_t index);

#endif
