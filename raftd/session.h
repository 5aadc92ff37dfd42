/* Sessions as replicated state (Consul's /v1/session), applied by
 * fsm_apply.
 *
 * Commands (log payloads; never change a layout):
 *   [6, id, session_json]   session create: a JSON object text with Name,
 *                           Node, LockDelay (ns), Behavior, TTL,
 *                           NodeChecks, ServiceChecks (apid validated it);
 *                           refused as Consul does ("Missing node
 *                           registration", "Missing check '<id>'
 *                           registration", "Check '<id>' is in critical
 *                           state", in fsm_result.msg) unless the node and
 *                           every listed check exist and none is critical
 *   [7, id]                 session destroy (a missing ID is not an error)
 *
 * Table (store.h): STORE_SESSIONS ID -> the JSON object text as Consul
 * shows it, with ID, CreateIndex and ModifyIndex set at apply time.
 * STORE_INDEX "sessions" is the table's index (creates and destroys).
 * Changes are reported in FSM_SPACE_SESSIONS under the key "sessions". */
#ifndef CAIRN_RAFTD_SESSION_H
#define CAIRN_RAFTD_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm.h"
#include "proto.h"

struct arena;
struct mp_reader;
struct mp_writer;
struct store_txn;

/* Read views (the SESSION_QUERY view field). */
enum session_view {
	SESSION_VIEW_INFO = 1,	/* /v1/session/info/<id> */
	SESSION_VIEW_NODE = 2,	/* /v1/session/node/<node> */
	SESSION_VIEW_LIST = 3,	/* /v1/session/list */
	SESSION_VIEW_RENEW = 4, /* /v1/session/renew/<id>: info, answered by the leader */
};

/* Encode commands into w (reset first). Strings borrowed. */
void session_cmd_create(struct mp_writer *w, const char *id, const char *json);
void session_cmd_destroy(struct mp_writer *w, const char *id);

/* Apply a create / destroy whose op and array header fsm_apply read. */
int session_apply_create(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			 struct fsm_result *out, fsm_change_fn change, void *ctx);
int session_apply_destroy(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			  struct fsm_result *out, fsm_change_fn change, void *ctx);

/* Consul's session invalidation, applied inside the catalog command that
 * causes it (so every server does the same): every session of node (any
 * case) that lists check_id (in NodeChecks or ServiceChecks[].ID), or with
 * check_id NULL every session of node, is destroyed as by a destroy
 * command (locks released or keys deleted by Behavior, lock-delays
 * reported in FSM_SPACE_LOCK_DELAY). catalog.c calls it when a check is
 * written critical or deleted, and when a node is deleted. Returns 0 or a
 * store error. */
int session_invalidate_check(struct store_txn *txn, uint64_t index, const char *node,
			     const char *check_id, fsm_change_fn change, void *ctx);

/* Evaluates a view: the matching sessions' JSON texts (ID order) into
 * *out_v / *out_n and the sessions table's index (never 0), all in a.
 * arg is the ID or node name. Returns 0, CAIRN_E_BADREQ for an unknown
 * view, -ENOMEM or a store error. */
int session_query(struct store_txn *txn, struct arena *a, unsigned view, const char *arg,
		  const char ***out_v, size_t *out_n, uint64_t *out_index);

/* The TTL of a stored session JSON text in ms (Go duration in "TTL"); 0
 * when none or unparsable. */
uint64_t session_ttl_ms(const char *json, size_t len);

/* Calls fn(ctx, id, ttl_ms) for every stored session with a TTL. Returns 0,
 * fn's negative code, or a store error. */
int session_each_ttl(struct store_txn *txn, int (*fn)(void *ctx, const char *id, uint64_t ttl_ms),
		     void *ctx);

/* The leader's TTL timers (in memory; rebuilt from the table after an
 * election): ID -> deadline (loop ms). Pure: the caller passes the time. */
struct session_timers;
struct session_timers *session_timers_new(void);
void session_timers_free(struct session_timers *t);
/* Forgets every timer (on losing leadership). */
void session_timers_clear(struct session_timers *t);
size_t session_timers_count(const struct session_timers *t);
/* A sweep: begin, touch every stored TTL session (a new one gets deadline
 * now + 2 x TTL, Consul's grace), end (drops timers of sessions no longer
 * stored). Return 0 or -ENOMEM. */
void session_timers_begin(struct session_timers *t);
int session_timers_touch(struct session_timers *t, const char *id, uint64_t ttl_ms, uint64_t now);
void session_timers_end(struct session_timers *t);
/* Renew: deadline = now + 2 x TTL. Returns false when id has no timer. */
bool session_timers_renew(struct session_timers *t, const char *id, uint64_t now);
/* The next expired timer's ID (deadline <= now), marked so that it is not
 * returned again until touched anew; NULL when none. Borrowed until the
 * next call that changes t. */
const char *session_timers_next_expired(struct session_timers *t, uint64_t now);

/* Lock-delays (Consul's, in memory on every server, filled as
 * invalidations are applied): a key released by an invalidation cannot be
 * acquired until its delay passes. Pure: the caller passes the time. */
struct session_lock_delays;
struct session_lock_delays *session_lock_delays_new(void);
void session_lock_delays_free(struct session_lock_delays *d);
/* Refuses acquires of key (klen bytes) until `until`. 0 or -ENOMEM. */
int session_lock_delays_set(struct session_lock_delays *d, const char *key, size_t klen,
			    uint64_t until, uint64_t now);
/* Whether key is still inside its lock-delay at now. */
bool session_lock_delayed(struct session_lock_delays *d, const char *key, uint64_t now);

#endif
