/* Wing–Gong linearizability check with Lowe's cache, per key. */
#include "lin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPS 4096
#define WORDS (MAX_OPS / 64)

struct event {
	uint64_t t;  /* time */
	bool ret;    /* return event (else call) */
	unsigned op; /* index into the per-key op array */
	struct event *prev, *next;
	struct event *match; /* call <-> return */
};

struct cache_ent {
	uint64_t hash;
	int64_t state;
	uint64_t *bits; /* nw words */
	struct cache_ent *next;
};

struct search {
	const struct lin_op *const *ops;
	unsigned n, nw;
	struct cache_ent **tab;
	size_t tab_size;
	struct cache_ent *pool; /* every entry, for freeing */
	size_t pool_n, pool_cap;
	uint64_t *bits_pool;
};

static bool step(const struct lin_op *op, int64_t state, int64_t *out_state)
{
	bool unknown = op->ret_ms == LIN_UNKNOWN;

	switch (op->kind) {
	case LIN_PUT:
		*out_state = op->a;
		return true;
	case LIN_GET:
		*out_state = state;
		return unknown || op->out == state;
	case LIN_CAS:
		if (state == op->a) {
			*out_state = op->b;
			return unknown || op->out == 1;
		}
		*out_state = state;
		return unknown || op->out == 0;
	default:
		return false;
	}
}

static uint64_t hash_of(const uint64_t *bits, unsigned nw, int64_t state)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)state;

	for (unsigned i = 0; i < nw; i++) {
		h ^= bits[i];
		h *= 1099511628211ull;
		h ^= h >> 29;
	}
	return h;
}

/* Adds (bits, state) to the cache; false when already there. -1 on OOM. */
static int cache_add(struct search *s, const uint64_t *bits, int64_t state)
{
	uint64_t h = hash_of(bits, s->nw, state);
	size_t b = h % s->tab_size;

	for (struct cache_ent *e = s->tab[b]; e; e = e->next)
		if (e->hash == h && e->state == state && memcmp(e->bits, bits, s->nw * 8) == 0)
			return 0;
	struct cache_ent *e = malloc(sizeof(*e));
	if (!e)
		return -1;
	e->bits = malloc(s->nw * 8);
	if (!e->bits) {
		free(e);
		return -1;
	}
	memcpy(e->bits, bits, s->nw * 8);
	e->hash = h;
	e->state = state;
	e->next = s->tab[b];
	s->tab[b] = e;
	return 1;
}

static void cache_free(struct search *s)
{
	for (size_t b = 0; b < s->tab_size; b++) {
		struct cache_ent *e = s->tab[b];
		while (e) {
			struct cache_ent *nx = e->next;
			free(e->bits);
			free(e);
			e = nx;
		}
	}
	free(s->tab);
}

static int cmp_event(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	/* At equal times calls come first: touching intervals overlap. */
	if (x->ret != y->ret)
		return x->ret ? 1 : -1;
	return x->op < y->op ? -1 : x->op > y->op;
}

static void lift(struct event *call)
{
	call->prev->next = call->next;
	if (call->next)
		call->next->prev = call->prev;
	struct event *ret = call->match;
	ret->prev->next = ret->next;
	if (ret->next)
		ret->next->prev = ret->prev;
}

static void unlift(struct event *call)
{
	struct event *ret = call->match;
	ret->prev->next = ret;
	if (ret->next)
		ret->next->prev = ret;
	call->prev->next = call;
	if (call->next)
		call->next->prev = call;
}

/* One key's history. Returns 1, 0 or a negative code. */
static int check_one(const struct lin_op *const *ops, unsigned n)
{
	struct search s = {0};
	struct event head = {0}, *ev = NULL, *e;
	struct {
		struct event *call;
		int64_t state;
	} *stack = NULL;
	uint64_t *bits = NULL;
	unsigned depth = 0;
	int64_t state = 0;
	int rc = -ENOMEM;

	s.ops = ops;
	s.n = n;
	s.nw = (n + 63) / 64;
	s.tab_size = 4093;
	s.tab = calloc(s.tab_size, sizeof(*s.tab));
	ev = calloc(2 * (size_t)n, sizeof(*ev));
	stack = calloc(n + 1, sizeof(*stack));
	bits = calloc(s.nw ? s.nw : 1, 8);
	if (!s.tab || !ev || !stack || !bits)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		ev[2 * i].t = ops[i]->call_ms;
		ev[2 * i].op = i;
		ev[2 * i + 1].t = ops[i]->ret_ms;
		ev[2 * i + 1].ret = true;
		ev[2 * i + 1].op = i;
	}
	qsort(ev, 2 * (size_t)n, sizeof(*ev), cmp_event);
	{
		/* Link the sorted events and pair calls with returns. */
		struct event **call_of = calloc(n, sizeof(*call_of));
		if (!call_of)
			goto out;
		struct event *prev = &head;
		for (size_t i = 0; i < 2 * (size_t)n; i++) {
			e = &ev[i];
			e->prev = prev;
			prev->next = e;
			prev = e;
			if (!e->ret) {
				call_of[e->op] = e;
			} else {
				e->match = call_of[e->op];
				call_of[e->op]->match = e;
			}
		}
		free(call_of);
	}
	e = head.next;
	while (head.next) {
		if (!e) {
			rc = 0; /* cannot happen: the list ends with a return */
			goto out;
		}
		if (!e->ret) {
			int64_t ns;
			if (step(ops[e->op], state, &ns)) {
				bits[e->op / 64] |= 1ull << (e->op % 64);
				int added = cache_add(&s, bits, ns);
				if (added < 0)
					goto out;
				if (added) {
					stack[depth].call = e;
					stack[depth].state = state;
					depth++;
					state = ns;
					lift(e);
					e = head.next;
					continue;
				}
				bits[e->op / 64] &= ~(1ull << (e->op % 64));
			}
			e = e->next;
		} else {
			/* A return whose call is still pending: backtrack. */
			if (depth == 0) {
				rc = 0;
				goto out;
			}
			depth--;
			e = stack[depth].call;
			state = stack[depth].state;
			bits[e->op / 64] &= ~(1ull << (e->op % 64));
			unlift(e);
			e = e->next;
		}
	}
	rc = 1;
out:
	cache_free(&s);
	free(ev);
	free(stack);
	free(bits);
	return rc;
}

int lin_check(const struct lin_op *ops, size_t n, unsigned *out_key)
{
	const struct lin_op **sub = malloc((n ? n : 1) * sizeof(*sub));
	bool *done = calloc(n ? n : 1, 1);
	int rc = 1;

	if (!sub || !done) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && rc == 1; i++) {
		unsigned k = ops[i].key, m = 0;
		if (done[i])
			continue;
		for (size_t j = i; j < n; j++) {
			if (ops[j].key != k)
				continue;
			done[j] = true;
			if (m == MAX_OPS) {
				rc = -E2BIG;
				goto out;
			}
			sub[m++] = &ops[j];
		}
		rc = check_one(sub, m);
		if (rc == 0 && out_key)
			*out_key = k;
	}
out:
	free(sub);
	free(done);
	return rc;
}
