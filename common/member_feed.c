/* gossipd member feed; see member_feed.h. */
#include "member_feed.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "arena.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "rpc.h"

#define FEED_DEFAULT_RETRY_MS 1000
#define FEED_DEFAULT_RESYNC_MS 30000
#define FEED_DEFAULT_TIMEOUT_MS 2000
/* Events kept while a snapshot is on its way; more means we are far behind
 * and the snapshot after this one will repair it. */
#define FEED_MAX_PENDING 4096
/* Events read per loop callback (level-triggered: the rest come next). */
#define FEED_READ_BATCH 256

struct pending_event {
	uint8_t *buf;
	size_t len;
};

struct member_feed {
	struct loop *loop;
	void *sub;
	struct rpc_client *rpc;
	struct member_feed_opts opts;
	member_feed_fn fn;
	void *ctx;
	struct member_feed_table table;
	uint64_t seq;     /* last applied sequence */
	bool synced;      /* a snapshot was applied */
	bool fetching;    /* a MEMBERS call is pending */
	uint64_t call_id; /* of that call */
	uint64_t timer;   /* retry or periodic resync; 0 = none */
	struct pending_event *pending;
	size_t n_pending;
	bool pending_overflow;
};

/* ---- the table ------------------------------------------------------------ */

static void member_free(struct member_feed_member *m)
{
	size_t i;

	free(m->name);
	free(m->addr);
	for (i = 0; i < m->n_tags; i++) {
		free(m->tag_keys[i]);
		free(m->tag_vals[i]);
	}
	free(m->tag_keys);
	free(m->tag_vals);
	memset(m, 0, sizeof(*m));
}

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* Copies p into *out (zeroed on failure), tags sorted by key. */
static int member_from_proto(const struct proto_member *p, struct member_feed_member *out)
{
	struct member_feed_member m = {0};
	size_t i, j;

	m.name = dup_or_empty(p->name);
	m.addr = dup_or_empty(p->addr);
	m.port = (uint16_t)p->port;
	m.status = (enum member_feed_status)p->status;
	if (!m.name || !m.addr)
		goto fail;
	if (p->tags.n) {
		m.tag_keys = calloc(p->tags.n, sizeof(char *));
		m.tag_vals = calloc(p->tags.n, sizeof(char *));
		if (!m.tag_keys || !m.tag_vals)
			goto fail;
	}
	for (i = 0; i < p->tags.n; i++) {
		char *k = dup_or_empty(p->tags.keys[i]);
		char *v = dup_or_empty(p->tags.vals[i]);

		if (!k || !v) {
			free(k);
			free(v);
			goto fail;
		}
		/* insertion sort: tag maps are a dozen entries */
		for (j = m.n_tags; j > 0 && strcmp(m.tag_keys[j - 1], k) > 0; j--) {
			m.tag_keys[j] = m.tag_keys[j - 1];
			m.tag_vals[j] = m.tag_vals[j - 1];
		}
		m.tag_keys[j] = k;
		m.tag_vals[j] = v;
		m.n_tags++;
	}
	*out = m;
	return 0;
fail:
	member_free(&m);
	return -ENOMEM;
}

static bool member_equal(const struct member_feed_member *a, const struct member_feed_member *b)
{
	size_t i;

	if (strcmp(a->addr, b->addr) || a->port != b->port || a->status != b->status ||
	    a->n_tags != b->n_tags)
		return false;
	for (i = 0; i < a->n_tags; i++)
		if (strcmp(a->tag_keys[i], b->tag_keys[i]) || strcmp(a->tag_vals[i], b->tag_vals[i]))
			return false;
	return true;
}

/* Index of name, or where it would go (*found false). */
static size_t table_search(const struct member_feed_table *t, const char *name, bool *found)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

void member_feed_table_clear(struct member_feed_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		member_free(&t->v[i]);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

const struct member_feed_member *member_feed_table_find(const struct member_feed_table *t,
							const char *name)
{
	bool found;
	size_t i;

	if (!name)
		return NULL;
	i = table_search(t, name, &found);
	return found ? &t->v[i] : NULL;
}

int member_feed_table_upsert(struct member_feed_table *t, const struct proto_member *p,
			     member_feed_fn fn, void *ctx)
{
	struct member_feed_member m, old;
	bool found;
	size_t i;
	int rc;

	if (!p->name || !*p->name)
		return 0; /* nameless members cannot be tracked; gossipd never sends them */
	rc = member_from_proto(p, &m);
	if (rc < 0)
		return rc;
	i = table_search(t, m.name, &found);
	if (found) {
		if (member_equal(&t->v[i], &m)) {
			member_free(&m);
			return 0;
		}
		old = t->v[i];
		t->v[i] = m;
		if (fn)
			fn(ctx, MEMBER_FEED_UPDATED, &t->v[i], &old);
		member_free(&old);
		return 0;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct member_feed_member *v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			member_free(&m);
			return -ENOMEM;
		}
		t->v = v;
		t->cap = cap;
	}
	memmove(&t->v[i + 1], &t->v[i], (t->n - i) * sizeof(*t->v));
	t->v[i] = m;
	t->n++;
	if (fn)
		fn(ctx, MEMBER_FEED_ADDED, &t->v[i], NULL);
	return 0;
}

int member_feed_table_remove(struct member_feed_table *t, const char *name, member_feed_fn fn,
			     void *ctx)
{
	struct member_feed_member gone;
	bool found;
	size_t i;

	if (!name)
		return -ENOENT;
	i = table_search(t, name, &found);
	if (!found)
		return -ENOENT;
	gone = t->v[i];
	memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
	t->n--;
	if (fn)
		fn(ctx, MEMBER_FEED_REMOVED, &gone, NULL);
	member_free(&gone);
	return 0;
}

int member_feed_table_replace(struct member_feed_table *t, const struct proto_member *v, size_t n,
			      member_feed_fn fn, void *ctx)
{
	size_t i, k;
	int rc;

	/* removals first: members absent from the snapshot */
	for (i = t->n; i > 0; i--) {
		const char *name = t->v[i - 1].name;
		bool present = false;

		for (k = 0; k < n && !present; k++)
			present = v[k].name && strcmp(v[k].name, name) == 0;
		if (!present)
			(void)member_feed_table_remove(t, name, fn, ctx); /* it exists */
	}
	for (k = 0; k < n; k++) {
		rc = member_feed_table_upsert(t, &v[k], fn, ctx);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- the feed ------------------------------------------------------------- */

static void start_fetch(struct member_feed *f);

static int64_t on_timer(struct loop *l, void *ctx)
{
	struct member_feed *f = ctx;

	(void)l;
	f->timer = 0;
	start_fetch(f);
	return LOOP_TIMER_STOP;
}

static void schedule(struct member_feed *f, uint64_t delay_ms)
{
	if (f->timer)
		loop_timer_del(f->loop, f->timer);
	f->timer = loop_timer_add(f->loop, delay_ms, on_timer, f);
	if (!f->timer)
		log_warn("member feed: cannot add a timer (out of memory)");
}

static void drop_pending(struct member_feed *f)
{
	size_t i;

	for (i = 0; i < f->n_pending; i++)
		free(f->pending[i].buf);
	f->n_pending = 0;
	f->pending_overflow = false;
}

static void keep_pending(struct member_feed *f, const uint8_t *buf, size_t len)
{
	struct pending_event *pe;

	if (f->n_pending >= FEED_MAX_PENDING) {
		f->pending_overflow = true;
		return;
	}
	if (!f->pending) {
		f->pending = calloc(FEED_MAX_PENDING, sizeof(*f->pending));
		if (!f->pending) {
			f->pending_overflow = true;
			return;
		}
	}
	pe = &f->pending[f->n_pending];
	pe->buf = malloc(len ? len : 1);
	if (!pe->buf) {
		f->pending_overflow = true;
		return;
	}
	memcpy(pe->buf, buf, len);
	pe->len = len;
	f->n_pending++;
}

/* Applies one encoded MEMBER_EVENT once synced. replay: the event was
 * received before the snapshot was applied, so an old sequence only means
 * the snapshot already holds it. Returns false when a new snapshot is
 * needed. */
static bool apply_event(struct member_feed *f, const uint8_t *buf, size_t len, bool replay)
{
	struct proto_msg m;
	struct arena a;
	const struct proto_member_event *ev;
	bool ok = true;
	size_t i;

	arena_init(&a, 0);
	if (proto_decode(buf, len, &a, &m, NULL, 0) < 0 || m.type != PROTO_MEMBER_EVENT)
		goto out; /* not ours: ignore */
	ev = &m.u.member_event;
	if (ev->seq <= f->seq) {
		if (!replay) {
			log_info("member feed: sequence %llu after %llu: gossipd restarted, resyncing",
				 (unsigned long long)ev->seq, (unsigned long long)f->seq);
			ok = false;
		}
		goto out;
	}
	if (ev->seq != f->seq + 1) {
		log_info("member feed: sequence gap (%llu after %llu), resyncing",
			 (unsigned long long)ev->seq, (unsigned long long)f->seq);
		ok = false;
		goto out;
	}
	for (i = 0; i < ev->members.n; i++) {
		int rc = ev->kind == 5 /* reap */
				 ? member_feed_table_remove(&f->table, ev->members.v[i].name,
							    f->fn, f->ctx)
				 : member_feed_table_upsert(&f->table, &ev->members.v[i], f->fn,
							    f->ctx);
		if (rc == -ENOMEM) {
			ok = false;
			goto out;
		}
	}
	f->seq = ev->seq;
out:
	arena_close(&a);
	return ok;
}

static void on_snapshot(void *ctx, int status, const struct proto_msg *reply)
{
	struct member_feed *f = ctx;
	const struct proto_members_reply *r;
	bool again = false;
	size_t i;

	f->fetching = false;
	f->call_id = 0;
	if (status < 0 || !reply || reply->type != PROTO_MEMBERS_REPLY) {
		log_debug("member feed: no snapshot from gossipd (%d), retrying", status);
		drop_pending(f);
		schedule(f, f->opts.retry_ms);
		return;
	}
	r = &reply->u.members_reply;
	if (member_feed_table_replace(&f->table, r->members.v, r->members.n, f->fn, f->ctx) < 0) {
		log_warn("member feed: out of memory applying a snapshot");
		drop_pending(f);
		schedule(f, f->opts.retry_ms);
		return;
	}
	f->seq = r->seq;
	f->synced = true;
	again = f->pending_overflow;
	for (i = 0; i < f->n_pending && !again; i++)
		again = !apply_event(f, f->pending[i].buf, f->pending[i].len, true);
	drop_pending(f);
	if (f->fn)
		f->fn(f->ctx, MEMBER_FEED_SYNCED, NULL, NULL);
	if (again)
		start_fetch(f);
	else
		schedule(f, f->opts.resync_ms);
}

static void start_fetch(struct member_feed *f)
{
	struct proto_msg req = proto_msg_make(PROTO_MEMBERS);
	int rc;

	if (f->fetching)
		return;
	if (f->timer) {
		loop_timer_del(f->loop, f->timer);
		f->timer = 0;
	}
	req.u.members.wan = false;
	rc = rpc_call(f->rpc, &req, f->opts.timeout_ms, on_snapshot, f, &f->call_id);
	if (rc < 0) {
		log_debug("member feed: MEMBERS call failed (%d), retrying", rc);
		schedule(f, f->opts.retry_ms);
		return;
	}
	f->fetching = true;
}

static void on_sub(struct loop *l, void *ctx, unsigned events)
{
	struct member_feed *f = ctx;
	int n;

	(void)l;
	(void)events;
	for (n = 0; n < FEED_READ_BATCH; n++) {
		zmq_msg_t msg;
		const uint8_t *buf;
		size_t len;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, f->sub, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			break;
		}
		buf = zmq_msg_data(&msg);
		len = zmq_msg_size(&msg);
		if (f->fetching)
			keep_pending(f, buf, len);
		else if (f->synced && !apply_event(f, buf, len, false)) {
			start_fetch(f);
			if (f->fetching)
				keep_pending(f, buf, len);
		}
		/* not synced and not fetching: a retry is scheduled, which
		 * takes a snapshot including this event */
		zmq_msg_close(&msg);
	}
}

struct member_feed *member_feed_new(struct loop *l, void *zctx, const char *sub_endpoint,
				    const char *rpc_endpoint, const struct member_feed_opts *opts,
				    member_feed_fn fn, void *ctx)
{
	struct member_feed *f = calloc(1, sizeof(*f));
	int zero = 0;

	if (!f)
		return NULL;
	f->loop = l;
	f->fn = fn;
	f->ctx = ctx;
	if (opts)
		f->opts = *opts;
	if (!f->opts.retry_ms)
		f->opts.retry_ms = FEED_DEFAULT_RETRY_MS;
	if (!f->opts.resync_ms)
		f->opts.resync_ms = FEED_DEFAULT_RESYNC_MS;
	if (!f->opts.timeout_ms)
		f->opts.timeout_ms = FEED_DEFAULT_TIMEOUT_MS;
	f->sub = zmq_socket(zctx, ZMQ_SUB);
	if (!f->sub)
		goto fail;
	(void)zmq_setsockopt(f->sub, ZMQ_LINGER, &zero, sizeof(zero)); /* best effort */
	if (zmq_setsockopt(f->sub, ZMQ_SUBSCRIBE, "", 0) < 0 ||
	    zmq_connect(f->sub, sub_endpoint) < 0)
		goto fail;
	if (loop_watch_zsock(l, f->sub, LOOP_READ, on_sub, f) < 0)
		goto fail;
	f->rpc = rpc_client_new(l, zctx, rpc_endpoint);
	if (!f->rpc)
		goto fail;
	start_fetch(f);
	return f;
fail:
	member_feed_free(f);
	return NULL;
}

void member_feed_free(struct member_feed *f)
{
	if (!f)
		return;
	if (f->timer)
		loop_timer_del(f->loop, f->timer);
	rpc_client_free(f->rpc);
	if (f->sub) {
		loop_unwatch_zsock(f->loop, f->sub);
		zmq_close(f->sub);
	}
	drop_pending(f);
	free(f->pending);
	member_feed_table_clear(&f->table);
	free(f);
}

bool member_feed_synced(const struct member_feed *f)
{
	return f->synced;
}

uint64_t member_feed_seq(const struct member_feed *f)
{
	return f->seq;
}

void member_feed_resync(struct member_feed *f)
{
	start_fetch(f);
}

size_t member_feed_count(const struct member_feed *f)
{
	return f->table.n;
}

const struct member_feed_member *member_feed_at(const struct member_feed *f, size_t i)
{
	return i < f->table.n ? &f->table.v[i] : NULL;
}

const struct member_feed_member *member_feed_find(const struct member_feed *f, const char *name)
{
	return member_feed_table_find(&f->table, name);
}

const char *member_feed_tag(const struct member_feed_member *m, const char *key)
{
	size_t i;

	for (i = 0; i < m->n_tags; i++)
		if (strcmp(m->tag_keys[i], key) == 0)
			return m->tag_vals[i];
	return NULL;
}

bool member_feed_is_server(const struct member_feed_member *m)
{
	const char *role = member_feed_tag(m, "role");

	return role && (strcmp(role, "consul") == 0 || strcmp(role, "server") == 0);
}
