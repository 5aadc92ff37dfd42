/* dnsd's local answer cache: which catalog views it holds, how fresh each
 * is, when to (re)fetch it from raftd and which entries to drop.
 *
 * Pure: no I/O, no clock (every call takes now_ms), no knowledge of what
 * a value holds. The caller (dns_server.c) stores its decoded answer in
 * entry->val, runs the fetches (blocking queries) and reports their
 * outcome here.
 *
 * Model, as Consul's agent cache for DNS (use_cache) with stale reads
 * (allow_stale / max_stale): an entry is created by the first query for
 * its key and fetched with a plain read; from then on a blocking query
 * (min_index = the last index, wait_ms) is kept parked at raftd and
 * re-armed on each answer, so the value follows every change of the view
 * and a query for a warm key costs no RPC. When a fetch fails (raftd
 * down or stopped) the entry retries with exponential back-off using
 * plain reads, and its last value is served for max_stale_ms after its
 * last successful fetch; after that (or with no value at all) queries get
 * SERVFAIL. Entries nobody asked for in idle_ms are dropped (and their
 * watch cancelled by the caller); at max_entries the least recently used
 * entry without parked queries makes room. */
#ifndef CAIRN_DNS_CACHE_H
#define CAIRN_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns_name.h"

/* What an entry holds (each is one raftd read). */
enum dns_cache_kind {
	DNS_CACHE_NODE = 1,	 /* CATALOG_NODE name */
	DNS_CACHE_SERVICE = 2,	 /* health service view of name, tag filter */
	DNS_CACHE_NODES = 3,	 /* catalog nodes view (PTR) */
	DNS_CACHE_SERVICES = 4,	 /* catalog services view: the names (PTR) */
	DNS_CACHE_INSTANCES = 5, /* catalog service view of name, any health (PTR) */
};

/* Freshness of an entry for a query. */
enum dns_cache_state {
	DNS_CACHE_FRESH = 0, /* value confirmed by the last fetch: answer from it */
	DNS_CACHE_STALE = 1, /* fetches fail but the value is within max_stale:
				answer from it */
	DNS_CACHE_WAIT = 2,  /* no usable value; a fetch is running or may start
				now: park the query until it ends */
	DNS_CACHE_FAIL = 3,  /* no usable value and fetches fail: SERVFAIL */
};

struct dns_cache_cfg {
	uint64_t wait_ms;	   /* blocking query wait (cache_max_age caps it) */
	uint64_t max_stale_ms;	   /* serve a value this long after its last
				      successful fetch once fetches fail */
	uint64_t idle_ms;	   /* drop entries not asked for this long */
	size_t max_entries;	   /* at most this many entries */
	uint64_t retry_min_ms;	   /* first back-off after a failed fetch */
	uint64_t retry_max_ms;	   /* back-off cap; also the re-poll delay of a
				      view that reports no index */
	uint64_t timeout_slack_ms; /* RPC time-out beyond the wait (raftd adds up
				      to wait/16 of jitter, then the transit) */
};

struct dns_cache_entry {
	/* key (lower-case) */
	enum dns_cache_kind kind;
	char name[DNS_NAME_TEXT_MAX + 1];
	char tag[DNS_NAME_TEXT_MAX + 1];
	/* the caller's: its decoded answer and watch state; the cache never
	 * looks inside (the evict callback frees them) */
	void *val;
	void *user;
	/* state, read-only for the caller */
	bool has_val;	   /* a fetch succeeded once */
	uint64_t index;	   /* X-Consul-Index of val (0: the view gave none) */
	uint64_t ok_ms;	   /* time of the last successful fetch */
	uint64_t used_ms;  /* time of the last query */
	bool fetching;	   /* a fetch is running */
	unsigned failures; /* consecutive failed fetches */
	uint64_t retry_ms; /* no fetch starts before this */
	unsigned waiters;  /* queries parked on the entry (never evicted) */
	/* private */
	struct dns_cache_entry *hnext;	     /* hash chain */
	struct dns_cache_entry *prev, *next; /* recency list, most recent first */
};

/* What a fetch should ask raftd. */
struct dns_cache_fetch {
	uint64_t min_index;  /* 0: a plain read */
	uint64_t wait_ms;    /* with min_index */
	uint64_t timeout_ms; /* RPC time-out */
};

struct dns_cache;

/* Called before an entry is dropped: the caller cancels its fetch and
 * frees val and user. The entry is freed after the callback returns. */
typedef void (*dns_cache_evict_fn)(void *ctx, struct dns_cache_entry *e);

/* A cache with cfg (copied) and the eviction callback. NULL when out of
 * memory. */
struct dns_cache *dns_cache_new(const struct dns_cache_cfg *cfg, dns_cache_evict_fn evict,
				void *ctx);
/* Evicts every entry (through the callback) and frees the cache. NULL is
 * fine. */
void dns_cache_free(struct dns_cache *c);

/* The entry for (kind, name, tag) (name and tag matched case-insensitively;
 * tag may be NULL), created when absent (evicting the least recently used
 * entry without waiters when full), marked as used at now_ms. Returns the
 * entry (owned by the cache; valid until evicted), or NULL when the name
 * is too long, memory is short or every entry has waiters. */
struct dns_cache_entry *dns_cache_get(struct dns_cache *c, enum dns_cache_kind kind,
				      const char *name, const char *tag, uint64_t now_ms);

/* How a query at now_ms may use e; see enum dns_cache_state. */
enum dns_cache_state dns_cache_state(const struct dns_cache *c, const struct dns_cache_entry *e,
				     uint64_t now_ms);

/* Whether a fetch of e should start now: none is running and the
 * back-off (or re-poll delay) has passed. */
bool dns_cache_fetch_due(const struct dns_cache_entry *e, uint64_t now_ms);

/* Marks a fetch of e as started and says what to ask: a blocking query
 * after the last index while fetches succeed, a plain read first and after
 * a failure. Precondition: dns_cache_fetch_due(). */
void dns_cache_fetch_start(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms,
			   struct dns_cache_fetch *out);

/* The running fetch of e succeeded with index (0 when the view gives
 * none: the next fetch is a plain read after retry_max_ms). The caller has
 * stored (or kept) the value. Returns whether the value may have changed
 * (first value, or another index). */
bool dns_cache_fetch_done(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms,
			  uint64_t index);

/* The running fetch of e failed (time-out, raftd unreachable, an error
 * reply): back off retry_min_ms, doubling per failure up to retry_max_ms. */
void dns_cache_fetch_failed(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms);

/* Drops the entries without waiters not asked for in idle_ms. Returns how
 * many. */
size_t dns_cache_expire(struct dns_cache *c, uint64_t now_ms);

/* Calls fn for every entry whose fetch is due (dns_cache_fetch_due); fn
 * may start the fetch but must not add or evict entries. */
void dns_cache_foreach_due(struct dns_cache *c, uint64_t now_ms,
			   void (*fn)(void *ctx, struct dns_cache_entry *e), void *ctx);

/* Entries held now. */
size_t dns_cache_count(const struct dns_cache *c);

#endif
