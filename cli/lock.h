/* `cairn lock`: runs a child process while holding a lock (or a semaphore
 * slot) in the KV store, as Consul's `consul lock` with api.Lock and
 * api.Semaphore under it.
 *
 * Model: a session (TTL 15 s renewed every TTL/2 by a thread, the agent's
 * node checks, LockDelay 15 s unless -lock-delay says otherwise) is created
 * through the local agent; the lock is acquired with blocking queries, the
 * child runs, a monitor thread watches the lock with consistent blocking
 * queries and ends the child (SIGTERM, SIGKILL after 5 s) when it is lost;
 * when the child exits the lock is released, the session destroyed and the
 * lock key removed when nobody holds it.
 *
 * -n 1: the key <prefix>/.lock acquired with the session and flags
 * LOCK_FLAG_VALUE. -n N > 1: Consul's semaphore: a contender key
 * <prefix>/<session> acquired with the session, and <prefix>/.lock holding
 * {"Limit":N,"Holders":{"<session>":true,...}} (flags LOCK_SEM_FLAG_VALUE)
 * updated by check-and-set; holders whose contender key lost its session
 * are pruned.
 *
 * The lock_sem_* and lock_parse_duration_ms functions are pure. */
#ifndef CAIRN_CLI_LOCK_H
#define CAIRN_CLI_LOCK_H

#include <stddef.h>
#include <stdint.h>

struct json_t;

#define LOCK_FLAG_VALUE 0x2ddccbc058a50c18ull     /* api.LockFlagValue */
#define LOCK_SEM_FLAG_VALUE 0xe0f69a2baa414de0ull /* api.SemaphoreFlagValue */

/* Parses a Go duration ("15s", "1m30s", "250ms", "1.5h", "0") into
 * milliseconds (rounded down). Returns 0 or -EINVAL. */
int lock_parse_duration_ms(const char *s, uint64_t *out_ms);

/* Decodes the value of <prefix>/.lock (len 0: no lock yet, giving
 * limit_default and no holders). On success writes the limit and a new
 * JSON object of holders (session -> true; caller json_decref()s) and
 * returns 0; -EINVAL when the value is not {"Limit":n,"Holders":{...}}. */
int lock_sem_decode(const void *value, size_t len, int64_t limit_default, int64_t *out_limit,
		    struct json_t **out_holders);

/* Removes from holders every session that holds none of the entries (the
 * JSON array of GET /v1/kv/<prefix>/?recurse; NULL for none), as Consul's
 * pruneDeadHolders: a holder is alive while some key has it as Session. */
void lock_sem_prune(struct json_t *holders, const struct json_t *entries);

/* The .lock value as Go's json.Marshal writes a semaphoreLock:
 * {"Limit":N,"Holders":{...}} with the sessions sorted. Returns a malloc'd
 * string (caller frees) or NULL when out of memory. */
char *lock_sem_encode(int64_t limit, const struct json_t *holders);

/* The entry whose Key is key in a KV list answer, or NULL. Borrowed. */
const struct json_t *lock_find_entry(const struct json_t *entries, const char *key);

/* `cairn lock [options] <prefix> <child...>` (argv[0] is the first argument
 * after "lock"). Returns the exit code: 0, or 1 on a usage, agent or lock
 * error; with -child-exit-code, 2 when the child failed (as Consul). */
int cmd_lock(int argc, char **argv);

#endif
