/* Sessions as replicated state: see session.h. */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
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

int session_apply_create(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			 struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	size_t idlen = 0, jlen = 0;
	const char *id = mp_read_str(r, &idlen), *js = mp_read_str(r, &jlen);
	json_t *o = NULL;
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
	if (json_object_set_new(o, "ID", json_string(idz)) < 0 ||
	    json_object_set_new(o, "CreateIndex", json_integer((json_int_t)index)) < 0 ||
	    json_object_set_new(o, "ModifyIndex", json_integer((json_int_t)index)) < 0) {
		rc = -ENOMEM;
		goto out;
	}
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

int session_apply_destroy(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			  struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	size_t idlen = 0;
	const char *id = mp_read_str(r, &idlen);
	struct store_val v;
	json_t *o;
	const char *b;
	bool del;
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
	o = json_loadb(v.ptr, v.len, 0, NULL);
	b = json_string_value(json_object_get(o, "Behavior"));
	del = b && strcmp(b, "delete") == 0;
	json_decref(o);
	/* its locks go in the same command: released, or their keys deleted */
	rc = fsm_kv_invalidate_session(txn, index, id, idlen, del, change, ctx);
	if (rc == 0)
		rc = store_del(txn, STORE_SESSIONS, id, idlen);
	if (rc == 0)
		rc = bump(txn, index);
	if (rc == 0 && change)
		change(ctx, FSM_SPACE_SESSIONS, SESSION_INDEX, strlen(SESSION_INDEX));
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
