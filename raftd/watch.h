/* Parked blocking queries: which ones a change wakes, and when each expires.
 *
 * Pure bookkeeping, no I/O and no clock: the caller passes deadlines and
 * "now" in ms. A watch is either on one exact key or on a prefix, in a
 * space (fsm_space: KV keys, catalog node names). watch_notify(space, key)
 * marks every watch the change concerns: exact watches on that key, and
 * prefix watches whose prefix the key starts with. Marked watches are then
 * taken one by one with watch_next_fired(); the caller re-evaluates the
 * query and either answers it (watch_remove) or leaves it parked.
 *
 * Cost: a watch is one small allocation (about 80 bytes) plus a shared
 * entry per distinct key. Exact watches are found by one hash lookup per
 * changed key; prefix watches by one lookup per distinct prefix length in
 * use that is not longer than the changed key. Deadlines are a binary heap.
 * Nothing scans all watches. */
#ifndef CAIRN_RAFTD_WATCH_H
#define CAIRN_RAFTD_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct watch_set;
struct watch;

/* Returns NULL when out of memory. */
struct watch_set *watch_set_new(void);
/* Frees the set and every watch still in it (their ud is not touched).
 * NULL is fine. */
void watch_set_free(struct watch_set *ws);

/* Parks a watch on key (klen bytes; any bytes) in space; prefix selects
 * prefix matching. ud is the caller's (e.g. the parked request); the set
 * never touches it. Returns the watch, or NULL when out of memory or the
 * key is longer than WATCH_KEY_MAX. */
#define WATCH_KEY_MAX 1024
struct watch *watch_add(struct watch_set *ws, unsigned space, const char *key, size_t klen,
			bool prefix, uint64_t deadline_ms, void *ud);
/* Removes and frees a watch (parked, fired or both). */
void watch_remove(struct watch_set *ws, struct watch *w);

/* The caller's pointer given to watch_add. */
void *watch_ud(const struct watch *w);

/* Marks every watch that a change to key in space concerns. Returns how
 * many watches were newly marked. */
size_t watch_notify(struct watch_set *ws, unsigned space, const char *key, size_t klen);
/* Takes the next marked watch (unmarking it; it stays parked), or NULL. */
struct watch *watch_next_fired(struct watch_set *ws);

/* Earliest deadline of any parked watch, or UINT64_MAX when none. */
uint64_t watch_next_deadline(const struct watch_set *ws);
/* Removes from the deadline heap and returns a watch whose deadline is
 * <= now_ms, or NULL. The watch stays allocated and keyed until
 * watch_remove, so the caller can answer it first. */
struct watch *watch_pop_expired(struct watch_set *ws, uint64_t now_ms);

/* Consul's blocking wait (agent/consul/rpc.go blockingQuery): 0 means the
 * default 5 min, anything over 10 min is capped, then a random jitter of
 * [0, wait/16) is added so parked clients do not all return at once.
 * rand_u64 is a random number from the caller. Returns the wait in ms. */
#define WATCH_WAIT_DEFAULT_MS (5ull * 60 * 1000)
#define WATCH_WAIT_MAX_MS (10ull * 60 * 1000)
#define WATCH_JITTER_FRACTION 16
uint64_t watch_wait_ms(uint64_t requested_ms, uint64_t rand_u64);

/* Watches parked. */
size_t watch_count(const struct watch_set *ws);

#endif
