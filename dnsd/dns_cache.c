/* dnsd's local answer cache; see dns_cache.h. */
#include "dns_cache.h"

#include <ctype.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

struct dns_cache {
	struct dns_cache_cfg cfg;
	dns_cache_evict_fn evict;
	void *ctx;
	struct dns_cache_entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t n;
	struct dns_cache_entry *head, *tail; /* recency: head most recent */
};

static uint64_t key_hash(enum dns_cache_kind kind, const char *name, const char *tag)
{
	/* FNV-1a over kind, lower-cased name, a separator, lower-cased tag */
	uint64_t h = 1469598103934665603ull;

	h = (h ^ (uint64_t)kind) * 1099511628211ull;
	for (const char *p = name; *p; p++)
		h = (h ^ (uint64_t)(unsigned char)tolower((unsigned char)*p)) * 1099511628211ull;
	h = (h ^ 0xffu) * 1099511628211ull;
	for (const char *p = tag; *p; p++)
		h = (h ^ (uint64_t)(unsigned char)tolower((unsigned char)*p)) * 1099511628211ull;
	return h;
}

struct dns_cache *dns_cache_new(const struct dns_cache_cfg *cfg, dns_cache_evict_fn evict,
				void *ctx)
{
	struct dns_cache *c = calloc(1, sizeof(*c));
	size_t nb = 16;

	if (!c)
		return NULL;
	c->cfg = *cfg;
	if (c->cfg.max_entries == 0)
		c->cfg.max_entries = 1;
	while (nb < c->cfg.max_entries && nb < (1u << 20))
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->n_buckets = nb;
	c->evict = evict;
	c->ctx = ctx;
	return c;
}

static void lru_unlink(struct dns_cache *c, struct dns_cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct dns_cache *c, struct dns_cache_entry *e)
{
	e->prev = NULL;
	e->next = c->head;
	if (c->head)
		c->head->prev = e;
	else
		c->tail = e;
	c->head = e;
}

static void entry_drop(struct dns_cache *c, struct dns_cache_entry *e)
{
	struct dns_cache_entry **pp =
	    &c->buckets[key_hash(e->kind, e->name, e->tag) & (c->n_buckets - 1)];

	while (*pp && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = e->hnext;
	lru_unlink(c, e);
	c->n--;
	if (c->evict)
		c->evict(c->ctx, e);
	free(e);
}

void dns_cache_free(struct dns_cache *c)
{
	if (!c)
		return;
	while (c->head)
		entry_drop(c, c->head);
	free(c->buckets);
	free(c);
}

static bool copy_lower(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		return false;
	for (size_t i = 0; i <= n; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	return true;
}

struct dns_cache_entry *dns_cache_get(struct dns_cache *c, enum dns_cache_kind kind,
				      const char *name, const char *tag, uint64_t now_ms)
{
	struct dns_cache_entry *e;
	size_t b;

	name = name ? name : "";
	tag = tag ? tag : "";
	b = key_hash(kind, name, tag) & (c->n_buckets - 1);
	for (e = c->buckets[b]; e; e = e->hnext)
		if (e->kind == kind && strcasecmp(e->name, name) == 0 &&
		    strcasecmp(e->tag, tag) == 0)
			break;
	if (e) {
		e->used_ms = now_ms;
		if (c->head != e) {
			lru_unlink(c, e);
			lru_push_front(c, e);
		}
		return e;
	}
	if (c->n >= c->cfg.max_entries) {
		/* make room: the least recently used entry nobody waits on */
		struct dns_cache_entry *v = c->tail;

		while (v && v->waiters)
			v = v->prev;
		if (!v)
			return NULL;
		entry_drop(c, v);
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	if (!copy_lower(e->name, sizeof(e->name), name) ||
	    !copy_lower(e->tag, sizeof(e->tag), tag)) {
		free(e);
		return NULL;
	}
	e->kind = kind;
	e->used_ms = now_ms;
	e->hnext = c->buckets[b];
	c->buckets[b] = e;
	lru_push_front(c, e);
	c->n++;
	return e;
}

enum dns_cache_state dns_cache_state(const struct dns_cache *c, const struct dns_cache_entry *e,
				     uint64_t now_ms)
{
	if (e->has_val && e->failures == 0)
		return DNS_CACHE_FRESH;
	if (e->has_val && now_ms - e->ok_ms <= c->cfg.max_stale_ms)
		return DNS_CACHE_STALE;
	if (e->fetching || e->failures == 0 || now_ms >= e->retry_ms)
		return DNS_CACHE_WAIT;
	return DNS_CACHE_FAIL;
}

bool dns_cache_fetch_due(const struct dns_cache_entry *e, uint64_t now_ms)
{
	return !e->fetching && now_ms >= e->retry_ms;
}

void dns_cache_fetch_start(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms,
			   struct dns_cache_fetch *out)
{
	(void)now_ms;
	e->fetching = true;
	memset(out, 0, sizeof(*out));
	if (e->has_val && e->failures == 0 && e->index > 0) {
		/* follow the view: raftd answers when it moves past index */
		out->min_index = e->index;
		out->wait_ms = c->cfg.wait_ms;
		out->timeout_ms = c->cfg.wait_ms + c->cfg.wait_ms / 16 + c->cfg.timeout_slack_ms;
	} else {
		/* first fetch, or finding out whether raftd is back */
		out->timeout_ms = c->cfg.timeout_slack_ms;
	}
}

bool dns_cache_fetch_done(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms,
			  uint64_t index)
{
	bool changed = !e->has_val || index != e->index || index == 0;

	e->fetching = false;
	e->has_val = true;
	e->failures = 0;
	e->ok_ms = now_ms;
	/* an index that went backwards (a restored snapshot, a new leader
	 * with less state) is followed as it is, as Consul resets then */
	e->index = index;
	e->retry_ms = index == 0 ? now_ms + c->cfg.retry_max_ms : 0;
	return changed;
}

void dns_cache_fetch_failed(struct dns_cache *c, struct dns_cache_entry *e, uint64_t now_ms)
{
	uint64_t backoff = c->cfg.retry_min_ms;

	e->fetching = false;
	if (e->failures < 64)
		e->failures++;
	for (unsigned i = 1; i < e->failures && backoff < c->cfg.retry_max_ms; i++)
		backoff *= 2;
	if (backoff > c->cfg.retry_max_ms)
		backoff = c->cfg.retry_max_ms;
	e->retry_ms = now_ms + backoff;
}

size_t dns_cache_expire(struct dns_cache *c, uint64_t now_ms)
{
	struct dns_cache_entry *e = c->tail;
	size_t n = 0;

	/* from the least recently used end: stop at the first recent one */
	while (e && now_ms - e->used_ms >= c->cfg.idle_ms) {
		struct dns_cache_entry *prev = e->prev;

		if (!e->waiters) {
			entry_drop(c, e);
			n++;
		}
		e = prev;
	}
	return n;
}

void dns_cache_foreach_due(struct dns_cache *c, uint64_t now_ms,
			   void (*fn)(void *ctx, struct dns_cache_entry *e), void *ctx)
{
	/* O(entries) per call: the caller ticks a few times a second and
	 * max_entries bounds the walk */
	for (struct dns_cache_entry *e = c->head; e; e = e->next)
		if (dns_cache_fetch_due(e, now_ms))
			fn(ctx, e);
}

size_t dns_cache_count(const struct dns_cache *c) { return c->n; }
