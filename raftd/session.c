/* Sessions as replicated state: see session.h. */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "arena.h"
#include "catalog.h"
#include "err.h"
#include "mp.h"
#include "store.h"

#define SESSION_INDEX "sessions"

void session_cmd_create(struct mp_writer *w, const char *id, const char *json)
{
	mp_writer_reset(w);
	mp_write_array(w, 3);
	mp_write_u64(w, FSM_OP_SESSION_CREATE);
	mp_write_str(w, id, strlen(id));
	mp_write_str(w, json, strlen(json));
}

void session_cmd_destroy(struct mp_writer *w, const char *id)
{
	mp_writer_reset(w);
	mp_write_array(w, 2);
	mp_write_u64(w, FSM_OP_SESSION_DESTROY);
	mp_write_str(w, id, strlen(id));
}

static int bump(struct store_txn *txn, uint64_t index)
{
	uint64_t cur;
	int rc = store_get_u64(txn, STORE_INDEX, SESSION_INDEX, &cur);

	if (rc < 0)
		return rc;
	if (index <= cur)
		return 0;
	return store_put_u64(txn, STORE_INDEX, SESSION_INDEX, index);
}

/* A string field of the record: present strings only. */
static bool str_ok(const json_t *o, const char *key)
{
	return json_is_string(json_object_get(o, key));
}

/* Calls fn for every check ID the session object o lists (NodeChecks
 * strings, ServiceChecks[].ID) until fn returns non-zero, which is
 * returned. */
static int each_bound_check(const json_t *o, int (*fn)(void *ctx, const char *check_id),
			    void *ctx)
{
	const json_t *nc = json_object_get(o, "NodeChecks"), *sc = json_object_get(o, "ServiceChecks");
	size_t i;
	int rc;

	for (i = 0; json_is_array(nc) && i < json_array_size(nc); i++) {
		const char *cid = json_string_value(json_array_get(nc, i));

		if (cid && (rc = fn(ctx, cid)) != 0)
			return rc;
	}
	for (i = 0; json_is_array(sc) && i < json_array_size(sc); i++) {
		const char *cid = json_string_value(json_object_get(json_array_get(sc, i), "ID"));

		if (cid && (rc = fn(ctx, cid)) != 0)
			return rc;
	}
	return 0;
}

struct bind_ctx {
	struct store_txn *txn;
	struct arena *a;
	const char *node;
	struct fsm_result *out;
};

static int bind_check(void *ctx, const char *cid)
{
	struct bind_ctx *b = ctx;
	struct proto_check chk;
	int rc = catalog_check_get(b->txn, b->a, b->node, cid, &chk);

	if (rc == -ENOENT) {
		b->out->code = -ENOENT;
		snprintf(b->out->msg, sizeof(b->out->msg), "Missing check '%s' registration", cid);
		return 1;
	}
	if (rc < 0)
		return rc;
	if (strcmp(chk.status, "critical") == 0) {
		b->out->code = -EPERM;
		snprintf(b->out->msg, sizeof(b->out->msg), "Check '%s' is in %s state", cid,
			 chk.status);
		return 1;
	}
	return 0;
}

/* Consul's sessionCreateTxn: the node must exist, and every check the
 * session lists must exist on it and not be critical; otherwise out->code
 * and out->msg say why (Consul's texts). Returns 0 or a store error. */
static int check_bindings(struct store_txn *txn, const json_t *o, struct fsm_result *out)
{
	const char *node = json_string_value(json_object_get(o, "Node"));
	struct proto_node *n = NULL;
	struct arena a;
	uint64_t idx;
	int rc;

	arena_init(&a, 1024);
	rc = fsm_node_get(txn, &a, node, &n, &idx);
	if (rc == 0 && !n) {
		out->code = -ENOENT;
		snprintf(out->msg, sizeof(out->msg), "Missing node registration");
	} else if (rc == 0) {
		struct bind_ctx b = {txn, &a, node, out};

		rc = each_bound_check(o, bind_check, &b);
		if (rc > 0)
			rc = 0;
	}
	arena_close(&a);
	return rc;
}

int session_apply_create(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			 struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	size_t idlen = 0, jlen = 0;
	const char *id = mp_read_str(r, &idlen), *js = mp_read_str(r, &jlen);
	json_t *o = NULL, *ordered;
	char *text = NULL, *idz = NULL;
	int rc = 0;

	if (r->err || !id || !js || idlen == 0 || idlen > 64) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	o = json_loadb(js, jlen, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(o) || !str_ok(o, "Node") || !str_ok(o, "Behavior")) {
		out->code = CAIRN_E_BADREQ;
		goto out;
	}
	idz = strndup(id, idlen);
	if (!idz) {
		rc = -ENOMEM;
		goto out;
	}
	if (store_get(txn, STORE_SESSIONS, idz, idlen, &(struct store_val){0}) == 0) {
		out->code = CAIRN_E_BADREQ; /* Consul: the ID is already in use */
		goto out;
	}
	rc = check_bindings(txn, o, out);
	if (rc < 0 || out->code < 0)
		goto out;
	/* Consul's field order: ID first, the indexes last */
	(void)json_object_del(o, "ID");
	ordered = json_pack("{s:s}", "ID", idz);
	if (!ordered || json_object_update(ordered, o) < 0 ||
	    json_object_set_new(ordered, "CreateIndex", json_integer((json_int_t)index)) < 0 ||
	    json_object_set_new(ordered, "ModifyIndex", json_integer((json_int_t)index)) < 0) {
		json_decref(ordered);
		rc = -ENOMEM;
		goto out;
	}
	json_decref(o);
	o = ordered;
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	rc = store_put(txn, STORE_SESSIONS, idz, idlen, text, strlen(text));
	if (rc == 0)
		rc = bump(txn, index);
	if (rc == 0) {
		out->ok = true;
		if (change)
			change(ctx, FSM_SPACE_SESSIONS, SESSION_INDEX, strlen(SESSION_INDEX));
	}
out:
	free(text);
	free(idz);
	json_decref(o);
	return rc;
}

static int destroy_stored(struct store_txn *txn, uint64_t index, const char *id, size_t idlen,
			  struct store_val v, fsm_change_fn change, void *ctx);

int session_apply_destroy(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			  struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	size_t idlen = 0;
	const char *id = mp_read_str(r, &idlen);
	struct store_val v;
	int rc;

	if (r->err || !id || idlen == 0 || idlen > STORE_KEY_MAX) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	rc = store_get(txn, STORE_SESSIONS, id, idlen, &v);
	out->ok = true;
	if (rc == -ENOENT)
		return 0; /* Consul: destroying a missing session succeeds */
	if (rc < 0)
		return rc;
	return destroy_stored(txn, index, id, idlen, v, change, ctx);
}

/* Destroys the stored session id (its record v): locks released or keys
 * deleted by Behavior, lock-delays reported, the record removed. */
static int destroy_stored(struct store_txn *txn, uint64_t index, const char *id, size_t idlen,
			  struct store_val v, fsm_change_fn change, void *ctx)
{
	json_t *o;
	const char *b;
	json_int_t delay;
	bool del;
	int rc;

	o = json_loadb(v.ptr, v.len, 0, NULL);
	b = json_string_value(json_object_get(o, "Behavior"));
	del = b && strcmp(b, "delete") == 0;
	delay = json_integer_value(json_object_get(o, "LockDelay"));
	json_decref(o);
	/* its locks go in the same command: released, or their keys deleted */
	rc = fsm_kv_invalidate_session(txn, index, id, idlen, del,
				       delay > 0 ? (uint64_t)delay / 1000000u : 0, change, ctx);
	if (rc == 0)
		rc = store_del(txn, STORE_SESSIONS, id, idlen);
	if (rc == 0)
		rc = bump(txn, index);
	if (rc == 0 && change)
		change(ctx, FSM_SPACE_SESSIONS, SESSION_INDEX, strlen(SESSION_INDEX));
	return rc;
}

/* ---- invalidation ---------------------------------------------------------- */

struct inval_ctx {
	const char *node;
	const char *check_id; /* NULL: every session of the node */
	char (*ids)[80];      /* sessions to destroy */
	size_t n, cap;
	int err;
};

static int match_check(void *ctx, const char *cid)
{
	return strcmp(cid, ctx) == 0;
}

static int inval_collect(void *ctx, struct store_val k, struct store_val v)
{
	struct inval_ctx *c = ctx;
	json_t *o;
	const char *node;
	bool hit;

	if (k.len >= sizeof(c->ids[0]))
		return 0; /* create refuses IDs this long */
	o = json_loadb(v.ptr, v.len, 0, NULL);
	node = json_string_value(json_object_get(o, "Node"));
	hit = node && strcasecmp(node, c->node) == 0 &&
	      (!c->check_id || each_bound_check(o, match_check, (void *)c->check_id) > 0);
	json_decref(o);
	if (!hit)
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		char(*nv)[80] = realloc(c->ids, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		c->ids = nv;
		c->cap = cap;
	}
	memcpy(c->ids[c->n], k.ptr, k.len);
	c->ids[c->n][k.len] = '\0';
	c->n++;
	return 0;
}

int session_invalidate_check(struct store_txn *txn, uint64_t index, const char *node,
			     const char *check_id, fsm_change_fn change, void *ctx)
{
	struct inval_ctx c = {.node = node, .check_id = check_id};
	int rc;

	if (!node || !*node)
		return 0;
	/* collect first: the scan must not see its own deletions */
	rc = store_scan_prefix(txn, STORE_SESSIONS, "", 0, inval_collect, &c);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		size_t idlen = strlen(c.ids[i]);
		struct store_val v;

		rc = store_get(txn, STORE_SESSIONS, c.ids[i], idlen, &v);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc == 0)
			rc = destroy_stored(txn, index, c.ids[i], idlen, v, change, ctx);
	}
	free(c.ids);
	return rc;
}

/* ---- reads --------------------------------------------------------------- */

struct query_ctx {
	struct arena *a;
	const char *node; /* NULL: every session */
	const char **v;
	size_t n, cap;
	int err;
};

static int collect(void *ctx, struct store_val k, struct store_val v)
{
	struct query_ctx *c = ctx;
	char *text;

	(void)k;
	if (c->node) {
		json_t *o = json_loadb(v.ptr, v.len, 0, NULL);
		const char *node = json_string_value(json_object_get(o, "Node"));
		bool match = node && strcmp(node, c->node) == 0;

		json_decref(o);
		if (!match)
			return 0;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		const char **nv = arena_alloc(c->a, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		if (c->n)
			memcpy(nv, c->v, c->n * sizeof(*nv));
		c->v = nv;
		c->cap = cap;
	}
	text = arena_strndup(c->a, v.ptr, v.len);
	if (!text)
		return -ENOMEM;
	c->v[c->n++] = text;
	return 0;
}

int session_query(struct store_txn *txn, struct arena *a, unsigned view, const char *arg,
		  const char ***out_v, size_t *out_n, uint64_t *out_index)
{
	struct query_ctx c = {.a = a};
	uint64_t index = 0;
	int rc;

	*out_v = NULL;
	*out_n = 0;
	rc = store_get_u64(txn, STORE_INDEX, SESSION_INDEX, &index);
	if (rc < 0)
		return rc;
	*out_index = index ? index : 1;
	switch (view) {
	case SESSION_VIEW_INFO:
	case SESSION_VIEW_RENEW: {
		struct store_val v;
		size_t len = arg ? strlen(arg) : 0;

		if (len == 0 || len > STORE_KEY_MAX)
			return 0;
		rc = store_get(txn, STORE_SESSIONS, arg, len, &v);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		rc = collect(&c, (struct store_val){arg, len}, v);
		break;
	}
	case SESSION_VIEW_NODE:
		c.node = arg ? arg : "";
		/* fall through */
	case SESSION_VIEW_LIST:
		rc = store_scan_prefix(txn, STORE_SESSIONS, "", 0, collect, &c);
		break;
	default:
		return CAIRN_E_BADREQ;
	}
	if (rc < 0)
		return rc;
	*out_v = c.v;
	*out_n = c.n;
	return 0;
}

/* ---- TTL timers ------------------------------------------------------------ */

uint64_t session_ttl_ms(const char *json, size_t len)
{
	json_t *o = json_loadb(json, len, 0, NULL);
	const char *p = json_string_value(json_object_get(o, "TTL"));
	double total = 0;

	/* Go durations as apid accepted them: [number unit]+ */
	while (p && *p) {
		char *end;
		double v = strtod(p, &end), mult;

		if (end == p || v < 0)
			break;
		p = end;
		if (!strncmp(p, "ns", 2))
			mult = 1e-6, p += 2;
		else if (!strncmp(p, "us", 2))
			mult = 1e-3, p += 2;
		else if (!strncmp(p, "\xc2\xb5s", 3))
			mult = 1e-3, p += 3;
		else if (!strncmp(p, "ms", 2))
			mult = 1, p += 2;
		else if (*p == 's')
			mult = 1000, p++;
		else if (*p == 'm')
			mult = 60000, p++;
		else if (*p == 'h')
			mult = 3600000, p++;
		else if (!*p)
			mult = 1000; /* plain digits: seconds */
		else
			break;
		total += v * mult;
	}
	json_decref(o);
	return total > 0 && total < 1e15 ? (uint64_t)total : 0;
}

struct each_ctx {
	int (*fn)(void *ctx, const char *id, uint64_t ttl_ms);
	void *ctx;
};

static int each_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct each_ctx *e = ctx;
	char id[80];
	uint64_t ttl;

	if (k.len >= sizeof(id))
		return 0;
	ttl = session_ttl_ms(v.ptr, v.len);
	if (!ttl)
		return 0;
	memcpy(id, k.ptr, k.len);
	id[k.len] = 0;
	return e->fn(e->ctx, id, ttl);
}

int session_each_ttl(struct store_txn *txn, int (*fn)(void *ctx, const char *id, uint64_t ttl_ms),
		     void *ctx)
{
	struct each_ctx e = {fn, ctx};

	return store_scan_prefix(txn, STORE_SESSIONS, "", 0, each_cb, &e);
}

struct session_timer {
	char id[80];
	uint64_t ttl_ms, deadline;
	bool seen, fired;
};

struct session_timers {
	struct session_timer *v;
	size_t n, cap;
};

struct session_timers *session_timers_new(void)
{
	return calloc(1, sizeof(struct session_timers));
}

void session_timers_free(struct session_timers *t)
{
	if (!t)
		return;
	free(t->v);
	free(t);
}

void session_timers_clear(struct session_timers *t)
{
	t->n = 0;
}

size_t session_timers_count(const struct session_timers *t)
{
	return t->n;
}

static struct session_timer *find(struct session_timers *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].id, id))
			return &t->v[i];
	return NULL;
}

void session_timers_begin(struct session_timers *t)
{
	for (size_t i = 0; i < t->n; i++)
		t->v[i].seen = false;
}

int session_timers_touch(struct session_timers *t, const char *id, uint64_t ttl_ms, uint64_t now)
{
	struct session_timer *e = find(t, id);

	if (strlen(id) >= sizeof(e->id))
		return 0;
	if (!e) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 16;
			struct session_timer *nv = realloc(t->v, cap * sizeof(*nv));

			if (!nv)
				return -ENOMEM;
			t->v = nv;
			t->cap = cap;
		}
		e = &t->v[t->n++];
		memset(e, 0, sizeof(*e));
		strcpy(e->id, id);
		e->ttl_ms = ttl_ms;
		e->deadline = now + 2 * ttl_ms;
	}
	e->seen = true;
	return 0;
}

void session_timers_end(struct session_timers *t)
{
	size_t j = 0;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].seen)
			t->v[j++] = t->v[i];
	t->n = j;
}

bool session_timers_renew(struct session_timers *t, const char *id, uint64_t now)
{
	struct session_timer *e = find(t, id);

	if (!e)
		return false;
	e->deadline = now + 2 * e->ttl_ms;
	e->fired = false;
	return true;
}

const char *session_timers_next_expired(struct session_timers *t, uint64_t now)
{
	for (size_t i = 0; i < t->n; i++) {
		if (!t->v[i].fired && t->v[i].deadline <= now) {
			t->v[i].fired = true;
			return t->v[i].id;
		}
	}
	return NULL;
}

/* ---- lock-delay -------------------------------------------------------------- */

struct lock_delay {
	char *key;
	uint64_t until;
};

struct session_lock_delays {
	struct lock_delay *v;
	size_t n, cap;
};

struct session_lock_delays *session_lock_delays_new(void)
{
	return calloc(1, sizeof(struct session_lock_delays));
}

void session_lock_delays_free(struct session_lock_delays *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].key);
	free(d->v);
	free(d);
}

/* Drops the entries that passed. */
static void purge(struct session_lock_delays *d, uint64_t now)
{
	size_t j = 0;

	for (size_t i = 0; i < d->n; i++) {
		if (d->v[i].until > now)
			d->v[j++] = d->v[i];
		else
			free(d->v[i].key);
	}
	d->n = j;
}

int session_lock_delays_set(struct session_lock_delays *d, const char *key, size_t klen,
			    uint64_t until, uint64_t now)
{
	purge(d, now);
	for (size_t i = 0; i < d->n; i++) {
		if (strlen(d->v[i].key) == klen && !memcmp(d->v[i].key, key, klen)) {
			if (until > d->v[i].until)
				d->v[i].until = until;
			return 0;
		}
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct lock_delay *nv = realloc(d->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		d->v = nv;
		d->cap = cap;
	}
	d->v[d->n].key = strndup(key, klen);
	if (!d->v[d->n].key)
		return -ENOMEM;
	d->v[d->n++].until = until;
	return 0;
}

bool session_lock_delayed(struct session_lock_delays *d, const char *key, uint64_t now)
{
	purge(d, now);
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->v[i].key, key))
			return true;
	return false;
}
