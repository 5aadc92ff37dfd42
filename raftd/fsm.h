/* The replicated state machine: KV and catalog nodes, with Consul's
 * semantics and indexes, applied from committed log entries.
 *
 * Commands are msgpack arrays stored as log entry payloads (the encoding is
 * durable: never change an op's layout, add a new op instead):
 *   [1, key, value(bin), flags, has_cas, cas]              KV set
 *   [2, key, recurse, has_cas, cas]                        KV delete
 *   [3, id|nil, node, address, dc|nil, {tagged}, {meta}]   catalog node register
 *   [8, key, value(bin), flags, session, acquire]          KV ?acquire / ?release
 *
 * Tables (store.h): STORE_KV key -> [create, modify, lock, flags,
 * session|nil, value(bin)]; STORE_KV_TOMB key -> u64 BE delete index;
 * STORE_NODES lower-cased name -> [id, node, address, dc, {tagged}, {meta},
 * create, modify]; STORE_INDEX "kv" / "nodes" -> u64 BE table index (the
 * highest index that changed the table; "kv" also counts deletes).
 *
 * Applying is deterministic: a malformed or refused command is rejected the
 * same way on every replica (result code set, state untouched) and the log
 * moves on. Only a store failure aborts. Reads return what Consul's state
 * store would, including the X-Consul-Index (never 0). */
#ifndef CAIRN_RAFTD_FSM_H
#define CAIRN_RAFTD_FSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct arena;
struct mp_writer;
struct store_txn;

enum fsm_op {
	FSM_OP_KV_SET = 1,
	FSM_OP_KV_DELETE = 2,
	FSM_OP_NODE_REGISTER = 3,
	FSM_OP_CATALOG_REGISTER = 4,   /* catalog.h */
	FSM_OP_CATALOG_DEREGISTER = 5, /* catalog.h */
	FSM_OP_SESSION_CREATE = 6,     /* session.h */
	FSM_OP_SESSION_DESTROY = 7,    /* session.h */
	FSM_OP_KV_LOCK = 8,
	FSM_OP_TXN = 9,		       /* txn.h */
};

/* Watch spaces, for change notifications. */
enum fsm_space {
	FSM_SPACE_KV = 0,    /* key is a KV key */
	FSM_SPACE_NODES = 1, /* key is a lower-cased node name */
	FSM_SPACE_CATALOG = 2, /* key names a catalog index (catalog.h) */
	FSM_SPACE_SESSIONS = 3, /* key "sessions" (session.h) */
	FSM_SPACE_LOCK_DELAY = 4, /* not watched: key = u64 BE lock-delay ms + KV key, for
				   * each lock an invalidation released (session.c) */
};

/* Outcome of applying one command. */
struct fsm_result {
	int code; /* 0, or CAIRN_E_PROTO (malformed) / CAIRN_E_BADREQ (refused) */
	bool ok;  /* with code 0: false when a cas condition failed */
	char msg[160]; /* with code < 0: Consul's error text when it has one, else "" */
};

/* Called for every key a command changed. key borrowed for the call. */
typedef void (*fsm_change_fn)(void *ctx, enum fsm_space space, const char *key, size_t klen);

/* Encode commands into w (reset first). Strings are borrowed. */
void fsm_cmd_kv_set(struct mp_writer *w, const char *key, const uint8_t *value, size_t vlen,
		    uint64_t flags, bool has_cas, uint64_t cas);
void fsm_cmd_kv_delete(struct mp_writer *w, const char *key, bool recurse, bool has_cas,
		       uint64_t cas);
void fsm_cmd_node_register(struct mp_writer *w, const struct proto_node *n);
/* Consul's kvsLockTxn (acquire) / kvsUnlockTxn (release): acquire sets
 * Session and bumps LockIndex unless the key is held by another session
 * (ok false; the same session only updates the value); release clears
 * Session only for the holder (else ok false). An unknown session is
 * refused (CAIRN_E_BADREQ). */
void fsm_cmd_kv_lock(struct mp_writer *w, const char *key, const uint8_t *value, size_t vlen,
		     uint64_t flags, const char *session, bool acquire);

/* Session invalidation (session.c): every key held by session (slen
 * bytes) is released (Session cleared) or, with delete_keys, deleted, at
 * index; with lock_delay_ms, each such key is also reported in
 * FSM_SPACE_LOCK_DELAY. Returns 0 or a store error. */
int fsm_kv_invalidate_session(struct store_txn *txn, uint64_t index, const char *session,
			      size_t slen, bool delete_keys, uint64_t lock_delay_ms,
			      fsm_change_fn change, void *ctx);

/* Applies the command in payload at log index `index` inside the write
 * transaction txn, filling *out. Calls change (may be NULL) for each key it
 * changed. Returns 0 (see out->code for a rejected command) or a negative
 * store error, after which the transaction must be aborted. */
int fsm_apply(struct store_txn *txn, uint64_t index, const uint8_t *payload, size_t len,
	      struct fsm_result *out, fsm_change_fn change, void *ctx);

/* A KV read's answer; everything lives in the caller's arena. */
struct fsm_kv_answer {
	uint64_t index;			/* X-Consul-Index, never 0 */
	struct proto_kv_entry *entries; /* found entries, key order */
	size_t n_entries;
	const char **keys; /* keys_only: key names (rolled up) */
	size_t n_keys;
};

/* One key: its entry (or none) and index = its ModifyIndex, or the KV
 * table's index when missing. Returns 0, -ENOMEM or a store error. */
int fsm_kv_get(struct store_txn *txn, struct arena *a, const char *key, struct fsm_kv_answer *out);
/* Every entry under prefix; index = highest ModifyIndex or tombstone
 * index under the prefix, else the table's index. */
int fsm_kv_list(struct store_txn *txn, struct arena *a, const char *prefix,
		struct fsm_kv_answer *out);
/* Key names under prefix; with a non-empty separator, each name is cut
 * after the first separator following the prefix and consecutive
 * duplicates are dropped (Consul's kvsListKeysTxn). Index as for a list. */
int fsm_kv_keys(struct store_txn *txn, struct arena *a, const char *prefix, const char *sep,
		struct fsm_kv_answer *out);

/* The catalog node named `name` (case-insensitive), or NULL in *out_node;
 * index = the node table's index (never 0). */
int fsm_node_get(struct store_txn *txn, struct arena *a, const char *name,
		 struct proto_node **out_node, uint64_t *out_index);

/* Lower-cases an ASCII node name into out (outlen >= strlen + 1). Returns
 * the length, or -EINVAL when it does not fit or is empty. */
int fsm_node_key(const char *name, char *out, size_t outlen);

#endif
