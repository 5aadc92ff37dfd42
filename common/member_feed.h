/* A subscriber for gossipd's LAN member events: a local copy of the member
 * table kept in step by snapshot plus sequenced deltas.
 *
 * Model (DESIGN.md "Local events"): the feed SUBscribes to gossipd's PUB
 * socket (CONFIG_SOCK_GOSSIP_EVENTS) first, then asks gossipd's ROUTER
 * (CONFIG_SOCK_GOSSIPD) for a MEMBERS snapshot, which carries the sequence
 * of the last event it includes. Events that arrive while the snapshot is
 * on its way are buffered and applied afterwards when their sequence is
 * larger. From then on every MEMBER_EVENT must carry last + 1:
 *   - a larger sequence means events were lost (PUB drops when a
 *     subscriber is slow or not connected yet): take a new snapshot;
 *   - a sequence not larger than the last one means gossipd restarted (its
 *     sequence starts again at 1): take a new snapshot;
 *   - gossipd not running (the MEMBERS call fails or times out): retry
 *     every retry_ms;
 *   - in any case a snapshot is taken again every resync_ms, which repairs
 *     a restart of gossipd that published nothing afterwards.
 * A snapshot is applied as a difference against the table the feed holds,
 * so callers get one callback per member that really changed, whether the
 * change came from an event or from a snapshot. After every snapshot the
 * callback also gets MEMBER_FEED_SYNCED (m and old NULL): a point where the
 * table is known to match gossipd, good for a full reconciliation.
 *
 * Single-threaded, on the daemon's loop (loop.h). Users: raftd's leader
 * (catalog reconciliation, server discovery), client agents' apid/dnsd
 * (choosing a server: members whose tag "role" is "consul"). */
#ifndef CAIRN_MEMBER_FEED_H
#define CAIRN_MEMBER_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct member_feed;
struct proto_member;

/* Serf/Consul member status numbers (as gossipd sends them). */
enum member_feed_status {
	MEMBER_FEED_NONE = 0,
	MEMBER_FEED_ALIVE = 1,
	MEMBER_FEED_LEAVING = 2,
	MEMBER_FEED_LEFT = 3,
	MEMBER_FEED_FAILED = 4,
};

/* One member as the feed holds it. Every string is owned by the feed. */
struct member_feed_member {
	char *name;                     /* node name, unique */
	char *addr;                     /* gossip address, IP literal */
	uint16_t port;                  /* gossip port */
	char **tag_keys;                /* sorted by key */
	char **tag_vals;                /* tag_vals[i] belongs to tag_keys[i] */
	size_t n_tags;
	enum member_feed_status status; /* 1 alive .. 4 failed */
};

enum member_feed_change {
	MEMBER_FEED_ADDED = 1,   /* m is new (old NULL) */
	MEMBER_FEED_UPDATED = 2, /* address, port, tags or status changed */
	MEMBER_FEED_REMOVED = 3, /* m is gone (reaped, or absent from a snapshot) */
	MEMBER_FEED_SYNCED = 4,  /* a snapshot was applied; m and old NULL */
};

/* Called once per change, after the table was changed. m is the member
 * now (REMOVED: as it was), old the previous version (UPDATED only, else
 * NULL). Both are borrowed until the callback returns. The callback may
 * look up and iterate the feed, but must not free it. */
typedef void (*member_feed_fn)(void *ctx, enum member_feed_change change,
			       const struct member_feed_member *m,
			       const struct member_feed_member *old);

/* Tunables; zero picks the default. */
struct member_feed_opts {
	uint64_t retry_ms;   /* after a failed snapshot; default 1000 */
	uint64_t resync_ms;  /* periodic snapshot; default 30000 */
	uint64_t timeout_ms; /* MEMBERS call time-out; default 2000 */
};

/* Creates the feed: connects a SUB to sub_endpoint (gossipd's event PUB)
 * and a DEALER to rpc_endpoint (gossipd's ROUTER), both on zctx, and asks
 * for the first snapshot at once. fn (may be NULL) gets every change.
 * opts may be NULL. Returns NULL on failure (out of memory, bad endpoint). */
struct member_feed *member_feed_new(struct loop *l, void *zctx, const char *sub_endpoint,
				    const char *rpc_endpoint, const struct member_feed_opts *opts,
				    member_feed_fn fn, void *ctx);
/* Closes both sockets and frees the table. NULL is fine. Must not be
 * called from the feed's own callback. */
void member_feed_free(struct member_feed *f);

/* Whether a snapshot has been applied since the feed started. Before
 * that, the table is empty. */
bool member_feed_synced(const struct member_feed *f);
/* The gossipd sequence the table reflects (0 before the first snapshot). */
uint64_t member_feed_seq(const struct member_feed *f);
/* Asks for a new snapshot now (unless one is on its way). */
void member_feed_resync(struct member_feed *f);

/* Number of members, and the i-th (0 <= i < count) in name order: the way
 * to iterate. Pointers are borrowed until the next loop callback. */
size_t member_feed_count(const struct member_feed *f);
const struct member_feed_member *member_feed_at(const struct member_feed *f, size_t i);
/* The member called name, or NULL. Borrowed as above. */
const struct member_feed_member *member_feed_find(const struct member_feed *f, const char *name);

/* The value of tag key on m, or NULL. Borrowed from m. */
const char *member_feed_tag(const struct member_feed_member *m, const char *key);
/* Whether m is a server: tag role "consul" (Consul's serf tag; "server" is
 * accepted too). */
bool member_feed_is_server(const struct member_feed_member *m);

/* ---- the table alone (pure; exposed for tests and for callers that get
 * members another way) ---------------------------------------------------- */

struct member_feed_table {
	struct member_feed_member *v; /* sorted by name */
	size_t n, cap;
};

/* Frees every member; the table may be reused after. Zeroed is fine. */
void member_feed_table_clear(struct member_feed_table *t);
/* Inserts or replaces the member p (copied). Calls fn with ADDED or
 * UPDATED unless nothing changed. Returns 0 or -ENOMEM. */
int member_feed_table_upsert(struct member_feed_table *t, const struct proto_member *p,
			     member_feed_fn fn, void *ctx);
/* Removes name, calling fn with REMOVED. Returns 0 or -ENOENT. */
int member_feed_table_remove(struct member_feed_table *t, const char *name, member_feed_fn fn,
			     void *ctx);
/* Makes the table equal to the n members in v (a snapshot), calling fn
 * for every member added, changed or removed (not SYNCED). Returns 0 or
 * -ENOMEM (the table is then partly updated; a retry completes it). */
int member_feed_table_replace(struct member_feed_table *t, const struct proto_member *v, size_t n,
			      member_feed_fn fn, void *ctx);
/* Member called name, or NULL. */
const struct member_feed_member *member_feed_table_find(const struct member_feed_table *t,
							const char *name);

#endif
