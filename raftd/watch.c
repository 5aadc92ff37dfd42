/* Parked blocking queries: matching changes to watches, and deadlines. */
#include "watch.h"

#include <stdlib.h>
#include <string.h>

#define NOT_IN_HEAP SIZE_MAX

/* Every watch on one (space, key, prefix) shares one of these. */
struct wkey {
	struct wkey *hnext; /* hash bucket chain */
	uint64_t hash;
	unsigned space;
	bool prefix;
	size_t klen;
	struct watch *head; /* watches on this key */
	char key[];
};

struct watch {
	struct watch *prev, *next;	       /* in wk's list */
	struct watch *fired_prev, *fired_next; /* in the set's fired list */
	struct wkey *wk;
	uint64_t deadline_ms;
	size_t heap_idx; /* NOT_IN_HEAP once expired */
	bool fired;
	void *ud;
};

struct watch_set {
	struct wkey **buckets;
	size_t n_buckets; /* power of two */
	size_t n_keys;
	size_t n_watches;
	struct watch **heap; /* min-heap on deadline_ms */
	size_t heap_len, heap_cap;
	struct watch *fired_head, *fired_tail;
	uint32_t prefix_len_count[WATCH_KEY_MAX + 1]; /* prefix keys per length */
	size_t max_prefix_len;
};

static uint64_t hash_key(unsigned space, bool prefix, const char *key, size_t klen)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */

	h = (h ^ (space * 2u + (prefix ? 1u : 0u))) * 1099511628211ull;
	for (size_t i = 0; i < klen; i++)
		h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
	return h;
}

struct watch_set *watch_set_new(void)
{
	struct watch_set *ws = calloc(1, sizeof(*ws));

	if (!ws)
		return NULL;
	ws->n_buckets = 64;
	ws->buckets = calloc(ws->n_buckets, sizeof(*ws->buckets));
	if (!ws->buckets) {
		free(ws);
		return NULL;
	}
	return ws;
}

void watch_set_free(struct watch_set *ws)
{
	if (!ws)
		return;
	for (size_t i = 0; i < ws->n_buckets; i++) {
		struct wkey *k = ws->buckets[i];
		while (k) {
			struct wkey *kn = k->hnext;
			struct watch *w = k->head;
			while (w) {
				struct watch *wn = w->next;
				free(w);
				w = wn;
			}
			free(k);
			k = kn;
		}
	}
	free(ws->buckets);
	free(ws->heap);
	free(ws);
}

static struct wkey *find_key(const struct watch_set *ws, uint64_t h, unsigned space, bool prefix,
			     const char *key, size_t klen)
{
	for (struct wkey *k = ws->buckets[h & (ws->n_buckets - 1)]; k; k = k->hnext)
		if (k->hash == h && k->space == space && k->prefix == prefix && k->klen == klen &&
		    memcmp(k->key, key, klen) == 0)
			return k;
	return NULL;
}

static void rehash(struct watch_set *ws)
{
	size_t n = ws->n_buckets * 2;
	struct wkey **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* keep the old table: slower, still correct */
	for (size_t i = 0; i < ws->n_buckets; i++) {
		struct wkey *k = ws->buckets[i];
		while (k) {
			struct wkey *kn = k->hnext;
			k->hnext = b[k->hash & (n - 1)];
			b[k->hash & (n - 1)] = k;
			k = kn;
		}
	}
	free(ws->buckets);
	ws->buckets = b;
	ws->n_buckets = n;
}

/* ---- deadline heap ------------------------------------------------------- */

static void heap_set(struct watch_set *ws, size_t i, struct watch *w)
{
	ws->heap[i] = w;
	w->heap_idx = i;
}

static void heap_up(struct watch_set *ws, size_t i)
{
	struct watch *w = ws->heap[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (ws->heap[p]->deadline_ms <= w->deadline_ms)
			break;
		heap_set(ws, i, ws->heap[p]);
		i = p;
	}
	heap_set(ws, i, w);
}

static void heap_down(struct watch_set *ws, size_t i)
{
	struct watch *w = ws->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= ws->heap_len)
			break;
		if (c + 1 < ws->heap_len && ws->heap[c + 1]->deadline_ms < ws->heap[c]->deadline_ms)
			c++;
		if (ws->heap[c]->deadline_ms >= w->deadline_ms)
			break;
		heap_set(ws, i, ws->heap[c]);
		i = c;
	}
	heap_set(ws, i, w);
}

static void heap_remove(struct watch_set *ws, struct watch *w)
{
	size_t i = w->heap_idx;

	if (i == NOT_IN_HEAP)
		return;
	w->heap_idx = NOT_IN_HEAP;
	ws->heap_len--;
	if (i == ws->heap_len)
		return;
	struct watch *moved = ws->heap[ws->heap_len];
	heap_set(ws, i, moved);
	heap_down(ws, i);
	heap_up(ws, moved->heap_idx);
}

/* ---- watches ------------------------------------------------------------- */

struct watch *watch_add(struct watch_set *ws, unsigned space, const char *key, size_t klen,
			bool prefix, uint64_t deadline_ms, void *ud)
{
	uint64_t h = hash_key(space, prefix, key, klen);
	struct wkey *k;
	struct watch *w;

	if (klen > WATCH_KEY_MAX)
		return NULL;
	if (ws->heap_len == ws->heap_cap) {
		size_t cap = ws->heap_cap ? ws->heap_cap * 2 : 64;
		struct watch **hp = realloc(ws->heap, cap * sizeof(*hp));
		if (!hp)
			return NULL;
		ws->heap = hp;
		ws->heap_cap = cap;
	}
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	k = find_key(ws, h, space, prefix, key, klen);
	if (!k) {
		k = malloc(sizeof(*k) + klen + 1);
		if (!k) {
			free(w);
			return NULL;
		}
		k->hash = h;
		k->space = space;
		k->prefix = prefix;
		k->klen = klen;
		k->head = NULL;
		memcpy(k->key, key, klen);
		k->key[klen] = 0;
		k->hnext = ws->buckets[h & (ws->n_buckets - 1)];
		ws->buckets[h & (ws->n_buckets - 1)] = k;
		ws->n_keys++;
		if (prefix) {
			ws->prefix_len_count[klen]++;
			if (klen > ws->max_prefix_len)
				ws->max_prefix_len = klen;
		}
		if (ws->n_keys > ws->n_buckets)
			rehash(ws);
	}
	w->wk = k;
	w->next = k->head;
	if (k->head)
		k->head->prev = w;
	k->head = w;
	w->ud = ud;
	w->deadline_ms = deadline_ms;
	ws->heap_len++;
	heap_set(ws, ws->heap_len - 1, w);
	heap_up(ws, ws->heap_len - 1);
	ws->n_watches++;
	return w;
}

static void unfire(struct watch_set *ws, struct watch *w)
{
	if (!w->fired)
		return;
	if (w->fired_prev)
		w->fired_prev->fired_next = w->fired_next;
	else
		ws->fired_head = w->fired_next;
	if (w->fired_next)
		w->fired_next->fired_prev = w->fired_prev;
	else
		ws->fired_tail = w->fired_prev;
	w->fired = false;
	w->fired_prev = w->fired_next = NULL;
}

void watch_remove(struct watch_set *ws, struct watch *w)
{
	struct wkey *k = w->wk;

	unfire(ws, w);
	heap_remove(ws, w);
	if (w->prev)
		w->prev->next = w->next;
	else
		k->head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	free(w);
	ws->n_watches--;
	if (k->head)
		return;
	/* Last watch on this key: drop the key. */
	struct wkey **pp = &ws->buckets[k->hash & (ws->n_buckets - 1)];
	while (*pp != k)
		pp = &(*pp)->hnext;
	*pp = k->hnext;
	if (k->prefix) {
		ws->prefix_len_count[k->klen]--;
		while (ws->max_prefix_len > 0 && ws->prefix_len_count[ws->max_prefix_len] == 0)
			ws->max_prefix_len--;
	}
	ws->n_keys--;
	free(k);
}

void *watch_ud(const struct watch *w) { return w->ud; }

static size_t fire_key(struct watch_set *ws, struct wkey *k)
{
	size_t n = 0;

	for (struct watch *w = k ? k->head : NULL; w; w = w->next) {
		if (w->fired)
			continue;
		w->fired = true;
		w->fired_next = NULL;
		w->fired_prev = ws->fired_tail;
		if (ws->fired_tail)
			ws->fired_tail->fired_next = w;
		else
			ws->fired_head = w;
		ws->fired_tail = w;
		n++;
	}
	return n;
}

size_t watch_notify(struct watch_set *ws, unsigned space, const char *key, size_t klen)
{
	size_t n = 0;

	if (ws->n_watches == 0)
		return 0;
	n += fire_key(ws, find_key(ws, hash_key(space, false, key, klen), space, false, key, klen));
	for (size_t len = 0; len <= klen && len <= ws->max_prefix_len; len++) {
		if (!ws->prefix_len_count[len])
			continue;
		n += fire_key(ws,
			      find_key(ws, hash_key(space, true, key, len), space, true, key, len));
	}
	return n;
}

struct watch *watch_next_fired(struct watch_set *ws)
{
	struct watch *w = ws->fired_head;

	if (w)
		unfire(ws, w);
	return w;
}

uint64_t watch_next_deadline(const struct watch_set *ws)
{
	return ws->heap_len ? ws->heap[0]->deadline_ms : UINT64_MAX;
}

struct watch *watch_pop_expired(struct watch_set *ws, uint64_t now_ms)
{
	struct watch *w;

	if (!ws->heap_len || ws->heap[0]->deadline_ms > now_ms)
		return NULL;
	w = ws->heap[0];
	heap_remove(ws, w);
	return w;
}

size_t watch_count(const struct watch_set *ws) { return ws->n_watches; }

uint64_t watch_wait_ms(uint64_t requested_ms, uint64_t rand_u64)
{
	uint64_t wait = requested_ms ? requested_ms : WATCH_WAIT_DEFAULT_MS;

	if (wait > WATCH_WAIT_MAX_MS)
		wait = WATCH_WAIT_MAX_MS;
	if (wait / WATCH_JITTER_FRACTION > 0)
		wait += rand_u64 % (wait / WATCH_JITTER_FRACTION);
	return wait;
}
