/* raftd's durable store: one transactional key/value environment holding
 * the Raft log, the Raft metadata and the state machine's tables.
 *
 * Model: named tables (enum store_table) of byte keys, sorted bytewise, to
 * byte values. Every read and write happens inside a transaction; a write
 * transaction's commit is durable (fsync) before store_txn_commit returns,
 * which is what lets raftd acknowledge a write right after it. Only one
 * write transaction may be open at a time; read transactions see a
 * consistent snapshot.
 *
 * Production implementation: store_lmdb.c (one LMDB environment in
 * <data_dir>/raft/, one named database per table). Values returned by reads
 * point into the store and stay valid only until the transaction ends (or
 * until the next write to that table within a write transaction). */
#ifndef CAIRN_RAFTD_STORE_H
#define CAIRN_RAFTD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;
struct store_txn;

enum store_table {
	STORE_META = 0,	   /* Raft metadata: current_term, voted_for, last_applied */
	STORE_LOG = 1,	   /* Raft log: u64 BE index -> msgpack [term, type, payload] */
	STORE_KV = 2,	   /* KV entries: key -> msgpack record (fsm.c) */
	STORE_KV_TOMB = 3, /* KV tombstones: key -> u64 BE index of the delete */
	STORE_NODES = 4,   /* catalog nodes: lower-cased name -> msgpack record */
	STORE_INDEX = 5,   /* per-table max index: table name -> u64 BE */
	STORE_SERVICES = 6, /* catalog services: lc node NUL service id -> msgpack (catalog.c) */
	STORE_CHECKS = 7,   /* catalog checks: lc node NUL check id -> msgpack (catalog.c) */
	STORE_SVC_NAMES = 8, /* service name NUL lc node NUL service id -> empty */
	STORE_SESSIONS = 9,  /* sessions: ID -> JSON object text (session.c) */
	STORE_N_TABLES = 10,
};

/* Longest key any table accepts, bytes (LMDB's compile-time limit). */
#define STORE_KEY_MAX 511

/* Default map size: the most the environment may grow to before it has to
 * be enlarged, bytes. Address space only; the file grows as it is used. */
#define STORE_MAP_SIZE_DEFAULT (4ull << 30)

struct store_val {
	const void *ptr; /* borrowed; see the header comment for lifetime */
	size_t len;
};

/* Opens (creating if needed) the store in directory dir, which must exist.
 * map_size 0 picks STORE_MAP_SIZE_DEFAULT. Returns 0 and the store in
 * *out_st, or a negative code with a reason in err. */
int store_open(const char *dir, uint64_t map_size, struct store **out_st, char *err, size_t errlen);
/* Opens an existing store in dir read-only, for a process other than the
 * writer (cairn-apid's direct KV reads): LMDB supports readers in other
 * processes through its lock file. Only read transactions work; a map grown
 * by the writer is adopted at the next read transaction. Returns 0 and
 * *out_st, -ENOENT when there is no store, or CAIRN_E_STORE (reason in
 * err). */
int store_open_readonly(const char *dir, struct store **out_st, char *err, size_t errlen);
/* Frees the reader slots of processes that died inside a read transaction
 * (a killed cairn-apid reading directly: store_open_readonly), which would
 * otherwise pin old pages and, after enough restarts, fill the reader
 * table. Returns 0 (the count in *out_dead, may be NULL) or CAIRN_E_STORE. */
int store_reader_check(struct store *st, int *out_dead);
/* Closes the store; every transaction must have ended. NULL is fine. */
void store_close(struct store *st);

/* Makes sure roughly `bytes` more can be written: enlarges the map when the
 * environment is getting full. Must be called with no transaction open.
 * Returns 0 or CAIRN_E_STORE. */
int store_reserve(struct store *st, size_t bytes);

/* True when store_reserve(st, bytes) would have to enlarge the map, which
 * needs every transaction of the process ended (a reader thread too). */
bool store_reserve_needed(struct store *st, size_t bytes);

/* Begins a read transaction of its own that another thread may use (the
 * loop thread's transactions go on meanwhile: MDB_NOTLS). End it with
 * store_txn_abort from that thread. Returns 0 or CAIRN_E_STORE/-ENOMEM. */
int store_txn_begin_reader(struct store *st, struct store_txn **out_txn);

/* Text of the last LMDB failure (for the caller to log), "" if none. */
const char *store_errmsg(const struct store *st);

/* Write transactions committed so far (tests check group commit with it). */
uint64_t store_commits(const struct store *st);

/* Begins a transaction. Returns 0 and the transaction, or CAIRN_E_STORE
 * (-EBUSY if a write transaction is already open and write is true). */
int store_txn_begin(struct store *st, bool write, struct store_txn **out_txn);
/* Commits (a write transaction: durably) and ends txn either way. Returns 0,
 * -ENOSPC when the map is full (nothing was written), or CAIRN_E_STORE. */
int store_txn_commit(struct store_txn *txn);
/* Ends txn discarding its writes. NULL is fine. */
void store_txn_abort(struct store_txn *txn);
/* Begins a transaction nested in the open write transaction parent (LMDB
 * nested transactions): committing it folds its writes into parent,
 * aborting it discards them and leaves parent as it was. parent must not
 * be used until the nested one ends (store_txn_commit / store_txn_abort).
 * Returns 0 and the transaction, -EBUSY when one is already nested, or
 * CAIRN_E_STORE. */
int store_txn_begin_nested(struct store_txn *parent, struct store_txn **out_txn);

/* Looks key up. Returns 0 with *out, -ENOENT, or CAIRN_E_STORE. */
int store_get(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
	      struct store_val *out);
/* Inserts or replaces. Returns 0, -EINVAL for an empty or too long key,
 * -ENOSPC when the map is full (the transaction must then be aborted), or
 * CAIRN_E_STORE. */
int store_put(struct store_txn *txn, enum store_table t, const void *key, size_t klen,
	      const void *val, size_t vlen);
/* Deletes key. Returns 0, -ENOENT, or CAIRN_E_STORE. */
int store_del(struct store_txn *txn, enum store_table t, const void *key, size_t klen);
/* Empties a table (write transaction). Returns 0 or CAIRN_E_STORE. */
int store_clear(struct store_txn *txn, enum store_table t);

/* True for the state machine's tables (everything but STORE_META and
 * STORE_LOG): what a snapshot copies and an install replaces. */
static inline int store_is_state(unsigned t) { return t >= STORE_KV && t < STORE_N_TABLES; }

/* Called for each entry of a scan, in key order. Return 0 to continue, 1 to
 * stop, or a negative code to stop and make the scan return it. The
 * callback must not write to the table being scanned. */
typedef int (*store_scan_fn)(void *ctx, struct store_val key, struct store_val val);

/* Calls fn for every entry whose key starts with prefix (all entries when
 * plen is 0). Returns 0, the callback's negative code, or CAIRN_E_STORE. */
int store_scan_prefix(struct store_txn *txn, enum store_table t, const void *prefix, size_t plen,
		      store_scan_fn fn, void *ctx);
/* Calls fn for every entry with key >= from (all entries when flen is 0). */
int store_scan_from(struct store_txn *txn, enum store_table t, const void *from, size_t flen,
		    store_scan_fn fn, void *ctx);
/* The greatest key of a table. Returns 0, -ENOENT when empty, or
 * CAIRN_E_STORE. */
int store_last(struct store_txn *txn, enum store_table t, struct store_val *out_key,
	       struct store_val *out_val);

/* Helpers for u64 values and keys stored big-endian (sorts numerically). */
void store_u64_to_be(uint64_t v, uint8_t out[8]);
/* Returns 0, or -EINVAL when v is not 8 bytes. */
int store_be_to_u64(struct store_val v, uint64_t *out);
/* Reads a u64 value; *out is 0 when absent. Returns 0 or CAIRN_E_STORE/-EINVAL. */
int store_get_u64(struct store_txn *txn, enum store_table t, const char *key, uint64_t *out);
int store_put_u64(struct store_txn *txn, enum store_table t, const char *key, uint64_t v);

#endif
