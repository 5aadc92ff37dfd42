/* The replicated state machine: KV and catalog nodes. */
#include "fsm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "catalog.h"
#include "autopilot.h"
#include "coordinate.h"
#include "session.h"
#include "txn.h"
#include "err.h"
#include "mp.h"
#include "store.h"

#define INDEX_KV "kv"
#define INDEX_NODES "nodes"

/* ---- commands ------------------------------------------------------------ */

void fsm_cmd_kv_set(struct mp_writer *w, const char *key, const uint8_t *value, size_t vlen,
		    uint64_t flags, bool has_cas, uint64_t cas)
{
	mp_writer_reset(w);
	mp_write_array(w, 6);
	mp_write_u64(w, FSM_OP_KV_SET);
	mp_write_str(w, key, strlen(key));
	mp_write_bin(w, value, vlen);
	mp_write_u64(w, flags);
	mp_write_bool(w, has_cas);
	mp_write_u64(w, cas);
}

void fsm_cmd_kv_delete(struct mp_writer *w, const char *key, bool recurse, bool has_cas,
		       uint64_t cas)
{
	mp_writer_reset(w);
	mp_write_array(w, 5);
	mp_write_u64(w, FSM_OP_KV_DELETE);
	mp_write_str(w, key, strlen(key));
	mp_write_bool(w, recurse);
	mp_write_bool(w, has_cas);
	mp_write_u64(w, cas);
}

void fsm_cmd_kv_lock(struct mp_writer *w, const char *key, const uint8_t *value, size_t vlen,
		     uint64_t flags, const char *session, bool acquire)
{
	mp_writer_reset(w);
	mp_write_array(w, 6);
	mp_write_u64(w, FSM_OP_KV_LOCK);
	mp_write_str(w, key, strlen(key));
	mp_write_bin(w, value, vlen);
	mp_write_u64(w, flags);
	mp_write_str(w, session, strlen(session));
	mp_write_bool(w, acquire);
}

static void write_map(struct mp_writer *w, const struct proto_map *m)
{
	mp_write_map(w, (uint32_t)m->n);
	for (size_t i = 0; i < m->n; i++) {
		mp_write_str(w, m->keys[i], strlen(m->keys[i]));
		mp_write_cstr_or_nil(w, m->vals[i]);
	}
}

void fsm_cmd_node_register(struct mp_writer *w, const struct proto_node *n)
{
	mp_writer_reset(w);
	mp_write_array(w, 7);
	mp_write_u64(w, FSM_OP_NODE_REGISTER);
	mp_write_cstr_or_nil(w, n->id);
	mp_write_cstr_or_nil(w, n->node);
	mp_write_cstr_or_nil(w, n->address);
	mp_write_cstr_or_nil(w, n->datacenter);
	write_map(w, &n->tagged_addresses);
	write_map(w, &n->meta);
}

/* A string as it sits in the buffer being read. */
struct span {
	const char *p;
	size_t len;
};

struct raw {
	const uint8_t *p; /* start of an encoded msgpack value */
	size_t len;
};

/* Skips a string map, checking its shape, and returns its encoded bytes. */
static struct raw read_str_map(struct mp_reader *r)
{
	struct raw out = {r->data + r->pos, 0};
	size_t start = r->pos, n;
	uint32_t count = mp_read_map(r);

	if (count > r->len) /* every pair takes at least two bytes */
		r->err = -EINVAL;
	for (uint32_t i = 0; i < count && !r->err; i++) {
		(void)mp_read_str(r, &n);
		(void)mp_read_str(r, &n);
	}
	out.len = r->pos - start;
	return out;
}

/* ---- helpers ------------------------------------------------------------- */

static int bump_index(struct store_txn *txn, const char *table, uint64_t index)
{
	uint64_t cur;
	int rc = store_get_u64(txn, STORE_INDEX, table, &cur);

	if (rc < 0)
		return rc;
	if (index <= cur)
		return 0;
	return store_put_u64(txn, STORE_INDEX, table, index);
}

struct kv_rec {
	uint64_t create_index, modify_index, lock_index, flags;
	struct span session;
	const uint8_t *value;
	size_t vlen;
};

static int kv_rec_decode(struct store_val v, struct kv_rec *out)
{
	struct mp_reader r;

	mp_reader_init(&r, v.ptr, v.len);
	if (mp_read_array(&r) != 6)
		return CAIRN_E_STORE;
	out->create_index = mp_read_u64(&r);
	out->modify_index = mp_read_u64(&r);
	out->lock_index = mp_read_u64(&r);
	out->flags = mp_read_u64(&r);
	out->session.p = mp_read_str(&r, &out->session.len);
	out->value = mp_read_bin(&r, &out->vlen);
	return mp_reader_done(&r) ? 0 : CAIRN_E_STORE;
}

static int kv_rec_put(struct store_txn *txn, struct mp_writer *w, const char *key, size_t klen,
		      const struct kv_rec *rec)
{
	mp_writer_reset(w);
	mp_write_array(w, 6);
	mp_write_u64(w, rec->create_index);
	mp_write_u64(w, rec->modify_index);
	mp_write_u64(w, rec->lock_index);
	mp_write_u64(w, rec->flags);
	if (rec->session.len)
		mp_write_str(w, rec->session.p, rec->session.len);
	else
		mp_write_nil(w);
	mp_write_bin(w, rec->value, rec->vlen);
	if (w->err)
		return w->err;
	return store_put(txn, STORE_KV, key, klen, w->buf, w->len);
}

/* Writes rec at key as the change of index: the record (rec.session may
 * point into the store: kv_rec_put encodes it before the put can touch
 * that page), the KV table index, the outcome and the change callback. */
static int kv_rec_commit(struct store_txn *txn, uint64_t index, const char *key, size_t klen,
			 const struct kv_rec *rec, struct fsm_result *out, fsm_change_fn change,
			 void *ctx)
{
	struct mp_writer w;
	int rc;

	mp_writer_init(&w);
	rc = kv_rec_put(txn, &w, key, klen, rec);
	mp_writer_close(&w);
	if (rc < 0)
		return rc;
	rc = bump_index(txn, INDEX_KV, index);
	if (rc < 0)
		return rc;
	out->ok = true;
	if (change)
		change(ctx, FSM_SPACE_KV, key, klen);
	return 0;
}

/* ---- apply --------------------------------------------------------------- */

/* Consul's kvsSetTxn / kvsSetCASTxn. */
static int apply_kv_set(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct span key;
	struct kv_rec rec = {0}, old;
	struct store_val v;
	bool has_cas, exists;
	uint64_t cas;
	int rc;

	key.p = mp_read_str(r, &key.len);
	rec.value = mp_read_bin(r, &rec.vlen);
	rec.flags = mp_read_u64(r);
	has_cas = mp_read_bool(r);
	cas = mp_read_u64(r);
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	if (key.len == 0 || key.len > STORE_KEY_MAX || memchr(key.p, 0, key.len)) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	rc = store_get(txn, STORE_KV, key.p, key.len, &v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	exists = rc == 0;
	if (exists && kv_rec_decode(v, &old) < 0)
		return CAIRN_E_STORE;
	if (has_cas) {
		/* cas 0: set only if the key does not exist. */
		if ((cas == 0 && exists) || (cas != 0 && (!exists || old.modify_index != cas))) {
			out->ok = false;
			return 0;
		}
	}
	if (exists) {
		rec.create_index = old.create_index;
		rec.lock_index = old.lock_index;
		rec.session = old.session;
	} else {
		rec.create_index = index;
	}
	rec.modify_index = index;
	return kv_rec_commit(txn, index, key.p, key.len, &rec, out, change, ctx);
}

/* Deletes one key leaving a tombstone; *out_deleted tells whether it
 * existed. */
static int kv_del_one(struct store_txn *txn, uint64_t index, const char *key, size_t klen,
		      bool *out_deleted)
{
	uint8_t be[8];
	int rc = store_del(txn, STORE_KV, key, klen);

	*out_deleted = false;
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	store_u64_to_be(index, be);
	rc = store_put(txn, STORE_KV_TOMB, key, klen, be, sizeof(be));
	if (rc < 0)
		return rc;
	*out_deleted = true;
	return 0;
}

struct key_list {
	struct mp_writer w; /* concatenated: u16 length, bytes */
};

static int collect_key(void *ctx, struct store_val k, struct store_val v)
{
	struct key_list *kl = ctx;
	uint8_t len[2] = {(uint8_t)(k.len >> 8), (uint8_t)k.len};

	(void)v;
	mp_write_raw(&kl->w, len, sizeof(len));
	mp_write_raw(&kl->w, k.ptr, k.len);
	return kl->w.err;
}

/* Consul's kvsDeleteTxn / kvsDeleteCASTxn / kvsDeleteTreeTxn. */
static int apply_kv_delete(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			   struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct span key;
	struct key_list kl;
	bool recurse, has_cas, deleted, any = false;
	uint64_t cas;
	int rc;

	key.p = mp_read_str(r, &key.len);
	recurse = mp_read_bool(r);
	has_cas = mp_read_bool(r);
	cas = mp_read_u64(r);
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	if ((!recurse && key.len == 0) || key.len > STORE_KEY_MAX ||
	    (key.len && memchr(key.p, 0, key.len))) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	out->ok = true;
	if (!recurse) {
		if (has_cas) {
			struct store_val v;
			struct kv_rec old;

			rc = store_get(txn, STORE_KV, key.p, key.len, &v);
			if (rc == -ENOENT)
				return 0; /* Consul: cas delete of a missing key is true */
			if (rc < 0)
				return rc;
			if (kv_rec_decode(v, &old) < 0)
				return CAIRN_E_STORE;
			if (old.modify_index != cas) {
				out->ok = false;
				return 0;
			}
		}
		rc = kv_del_one(txn, index, key.p, key.len, &deleted);
		if (rc < 0)
			return rc;
		if (!deleted)
			return 0;
		rc = bump_index(txn, INDEX_KV, index);
		if (rc < 0)
			return rc;
		if (change)
			change(ctx, FSM_SPACE_KV, key.p, key.len);
		return 0;
	}
	/* Recurse: collect first (no writes while a cursor walks the table). */
	mp_writer_init(&kl.w);
	rc = store_scan_prefix(txn, STORE_KV, key.p, key.len, collect_key, &kl);
	for (size_t pos = 0; rc == 0 && pos < kl.w.len;) {
		size_t klen = ((size_t)kl.w.buf[pos] << 8) | kl.w.buf[pos + 1];
		const char *k = (const char *)kl.w.buf + pos + 2;

		rc = kv_del_one(txn, index, k, klen, &deleted);
		if (rc == 0 && deleted) {
			any = true;
			if (change)
				change(ctx, FSM_SPACE_KV, k, klen);
		}
		pos += 2 + klen;
	}
	mp_writer_close(&kl.w);
	if (rc < 0)
		return rc;
	if (any)
		rc = bump_index(txn, INDEX_KV, index);
	return rc;
}

/* Consul's kvsLockTxn / kvsUnlockTxn (see fsm.h). */
static int apply_kv_lock(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			 struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct span key, sess;
	struct kv_rec rec = {0}, old;
	struct store_val v;
	bool acquire, exists, same;
	int rc;

	key.p = mp_read_str(r, &key.len);
	rec.value = mp_read_bin(r, &rec.vlen);
	rec.flags = mp_read_u64(r);
	sess.p = mp_read_str(r, &sess.len);
	acquire = mp_read_bool(r);
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	if (key.len == 0 || key.len > STORE_KEY_MAX || memchr(key.p, 0, key.len) ||
	    sess.len == 0 || sess.len > STORE_KEY_MAX) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	rc = store_get(txn, STORE_SESSIONS, sess.p, sess.len, &v);
	if (rc == -ENOENT) {
		out->code = CAIRN_E_BADREQ; /* Consul: invalid session */
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = store_get(txn, STORE_KV, key.p, key.len, &v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	exists = rc == 0;
	if (exists && kv_rec_decode(v, &old) < 0)
		return CAIRN_E_STORE;
	same = exists && old.session.len == sess.len && memcmp(old.session.p, sess.p, sess.len) == 0;
	if (acquire) {
		if (exists && old.session.len && !same) {
			out->ok = false; /* held by another session */
			return 0;
		}
		rec.create_index = exists ? old.create_index : index;
		rec.lock_index = exists ? old.lock_index : 0;
		if (!same)
			rec.lock_index++;
		rec.session = sess;
	} else {
		if (!same) {
			out->ok = false; /* only the holder releases */
			return 0;
		}
		rec.create_index = old.create_index;
		rec.lock_index = old.lock_index;
	}
	rec.modify_index = index;
	return kv_rec_commit(txn, index, key.p, key.len, &rec, out, change, ctx);
}

struct held_ctx {
	struct key_list kl;
	const char *session;
	size_t slen;
};

static int collect_held(void *ctx, struct store_val k, struct store_val v)
{
	struct held_ctx *h = ctx;
	struct kv_rec rec;

	if (kv_rec_decode(v, &rec) < 0)
		return CAIRN_E_STORE;
	if (rec.session.len != h->slen || memcmp(rec.session.p, h->session, h->slen) != 0)
		return 0;
	return collect_key(&h->kl, k, v);
}

int fsm_kv_invalidate_session(struct store_txn *txn, uint64_t index, const char *session,
			      size_t slen, bool delete_keys, uint64_t lock_delay_ms,
			      fsm_change_fn change, void *ctx)
{
	struct held_ctx h = {.session = session, .slen = slen};
	bool any = false;
	int rc;

	/* Collect first: no writes while a cursor walks the table. */
	mp_writer_init(&h.kl.w);
	rc = store_scan_prefix(txn, STORE_KV, "", 0, collect_held, &h);
	for (size_t pos = 0; rc == 0 && pos < h.kl.w.len;) {
		size_t klen = ((size_t)h.kl.w.buf[pos] << 8) | h.kl.w.buf[pos + 1];
		const char *k = (const char *)h.kl.w.buf + pos + 2;
		bool changed = false;

		if (delete_keys) {
			rc = kv_del_one(txn, index, k, klen, &changed);
		} else {
			struct store_val v;
			struct kv_rec rec;
			struct mp_writer w;

			rc = store_get(txn, STORE_KV, k, klen, &v);
			if (rc == 0 && (rc = kv_rec_decode(v, &rec)) == 0) {
				rec.session.p = NULL;
				rec.session.len = 0;
				rec.modify_index = index;
				mp_writer_init(&w);
				rc = kv_rec_put(txn, &w, k, klen, &rec);
				mp_writer_close(&w);
				changed = rc == 0;
			}
		}
		if (rc == 0 && changed) {
			any = true;
			if (change)
				change(ctx, FSM_SPACE_KV, k, klen);
		}
		if (rc == 0 && changed && change && lock_delay_ms && klen <= STORE_KEY_MAX) {
			char buf[8 + STORE_KEY_MAX];

			store_u64_to_be(lock_delay_ms, (uint8_t *)buf);
			memcpy(buf + 8, k, klen);
			change(ctx, FSM_SPACE_LOCK_DELAY, buf, 8 + klen);
		}
		pos += 2 + klen;
	}
	mp_writer_close(&h.kl.w);
	if (rc == 0 && any)
		rc = bump_index(txn, INDEX_KV, index);
	return rc;
}

int fsm_node_key(const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);

	if (n == 0 || n > STORE_KEY_MAX || n + 1 > outlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	out[n] = 0;
	return (int)n;
}

static void write_span_or_nil(struct mp_writer *w, struct span s, bool nil_if_null)
{
	if (!s.p && nil_if_null)
		mp_write_nil(w);
	else
		mp_write_str(w, s.p, s.len);
}

/* Consul's ensureNodeTxn: create or update, keeping CreateIndex; an
 * identical registration changes nothing (no index bump, no wake-up). */
static int apply_node_register(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			       struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct span id, name, addr, dc;
	struct raw tagged, meta;
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	struct mp_writer w;
	uint64_t create = index;
	int klen, rc;

	id.p = mp_read_str(r, &id.len);
	name.p = mp_read_str(r, &name.len);
	addr.p = mp_read_str(r, &addr.len);
	dc.p = mp_read_str(r, &dc.len);
	tagged = read_str_map(r);
	meta = read_str_map(r);
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	if (name.len == 0 || name.len > STORE_KEY_MAX || memchr(name.p, 0, name.len) ||
	    addr.len == 0) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	memcpy(key, name.p, name.len);
	key[name.len] = 0;
	klen = fsm_node_key(key, key, sizeof(key));
	if (klen < 0) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	rc = store_get(txn, STORE_NODES, key, (size_t)klen, &v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	struct store_val old = {0};
	if (rc == 0) {
		struct mp_reader orr;
		mp_reader_init(&orr, v.ptr, v.len);
		if (mp_read_array(&orr) != 8)
			return CAIRN_E_STORE;
		for (int i = 0; i < 4; i++) {
			size_t n;
			(void)mp_read_str(&orr, &n);
		}
		(void)read_str_map(&orr);
		(void)read_str_map(&orr);
		create = mp_read_u64(&orr);
		(void)mp_read_u64(&orr);
		if (!mp_reader_done(&orr))
			return CAIRN_E_STORE;
		old = v;
	}
	mp_writer_init(&w);
	mp_write_array(&w, 8);
	write_span_or_nil(&w, id, true);
	write_span_or_nil(&w, name, false);
	write_span_or_nil(&w, addr, false);
	write_span_or_nil(&w, dc, true);
	mp_write_raw(&w, tagged.p, tagged.len);
	mp_write_raw(&w, meta.p, meta.len);
	mp_write_u64(&w, create);
	size_t cmp_len = w.len;
	mp_write_u64(&w, index);
	if (w.err) {
		rc = w.err;
		goto out;
	}
	out->ok = true;
	/* Same fields (everything but ModifyIndex): nothing changes. */
	if (old.ptr && old.len >= cmp_len && memcmp(old.ptr, w.buf, cmp_len) == 0) {
		rc = 0;
		goto out;
	}
	rc = store_put(txn, STORE_NODES, key, (size_t)klen, w.buf, w.len);
	if (rc == 0)
		rc = bump_index(txn, INDEX_NODES, index);
	if (rc == 0)
		rc = catalog_node_changed(txn, index, key, change, ctx);
	if (rc == 0 && change)
		change(ctx, FSM_SPACE_NODES, key, (size_t)klen);
out:
	mp_writer_close(&w);
	return rc;
}

int fsm_apply(struct store_txn *txn, uint64_t index, const uint8_t *payload, size_t len,
	      struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct mp_reader r;
	uint32_t n;
	uint64_t op;

	out->code = 0;
	out->ok = false;
	out->msg[0] = '\0';
	mp_reader_init(&r, payload, len);
	n = mp_read_array(&r);
	op = mp_read_u64(&r);
	if (r.err || n == 0) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	switch (op) {
	case FSM_OP_KV_SET:
		if (n != 6)
			break;
		return apply_kv_set(txn, index, &r, out, change, ctx);
	case FSM_OP_KV_DELETE:
		if (n != 5)
			break;
		return apply_kv_delete(txn, index, &r, out, change, ctx);
	case FSM_OP_NODE_REGISTER:
		if (n != 7)
			break;
		return apply_node_register(txn, index, &r, out, change, ctx);
	case FSM_OP_CATALOG_REGISTER:
		if (n != 5)
			break;
		return catalog_apply_register(txn, index, &r, out, change, ctx);
	case FSM_OP_CATALOG_DEREGISTER:
		if (n != 4)
			break;
		return catalog_apply_deregister(txn, index, &r, out, change, ctx);
	case FSM_OP_SESSION_CREATE:
		if (n != 3)
			break;
		return session_apply_create(txn, index, &r, out, change, ctx);
	case FSM_OP_SESSION_DESTROY:
		if (n != 2)
			break;
		return session_apply_destroy(txn, index, &r, out, change, ctx);
	case FSM_OP_KV_LOCK:
		if (n != 6)
			break;
		return apply_kv_lock(txn, index, &r, out, change, ctx);
	case FSM_OP_TXN:
		if (n != 2)
			break;
		return txn_apply(txn, index, &r, out, change, ctx);
	case AUTOPILOT_OP_SET:
		if (n != 2)
			break;
		return autopilot_apply_set(txn, index, &r, out);
	case COORDINATE_OP_UPDATE:
		if (n != 2)
			break;
		return coordinate_apply_update(txn, index, &r, out, change, ctx);
	default:
		break;
	}
	out->code = CAIRN_E_PROTO;
	return 0;
}

/* ---- reads --------------------------------------------------------------- */

static int table_index(struct store_txn *txn, const char *table, uint64_t *out)
{
	int rc = store_get_u64(txn, STORE_INDEX, table, out);

	if (rc < 0)
		return rc;
	if (*out == 0)
		*out = 1; /* never 0: clients treat it as an error or spin */
	return 0;
}

static int fill_entry(struct arena *a, const void *key, size_t klen, struct store_val v,
		      struct proto_kv_entry *e)
{
	struct kv_rec rec;

	if (kv_rec_decode(v, &rec) < 0)
		return CAIRN_E_STORE;
	e->key = arena_strndup(a, key, klen);
	if (!e->key)
		return -ENOMEM;
	e->create_index = rec.create_index;
	e->modify_index = rec.modify_index;
	e->lock_index = rec.lock_index;
	e->flags = rec.flags;
	e->value.ptr = NULL;
	e->value.len = rec.vlen;
	if (rec.vlen) {
		uint8_t *p = arena_alloc(a, rec.vlen);
		if (!p)
			return -ENOMEM;
		memcpy(p, rec.value, rec.vlen);
		e->value.ptr = p;
	}
	e->session = NULL;
	if (rec.session.len) {
		e->session = arena_strndup(a, rec.session.p, rec.session.len);
		if (!e->session)
			return -ENOMEM;
	}
	return 0;
}

int fsm_kv_get(struct store_txn *txn, struct arena *a, const char *key, struct fsm_kv_answer *out)
{
	struct store_val v;
	size_t klen = strlen(key);
	int rc;

	memset(out, 0, sizeof(*out));
	rc = store_get(txn, STORE_KV, key, klen, &v);
	if (rc == -ENOENT)
		return table_index(txn, INDEX_KV, &out->index);
	if (rc < 0)
		return rc;
	out->entries = arena_zalloc(a, sizeof(*out->entries));
	if (!out->entries)
		return -ENOMEM;
	rc = fill_entry(a, key, klen, v, &out->entries[0]);
	if (rc < 0)
		return rc;
	out->n_entries = 1;
	out->index = out->entries[0].modify_index;
	return 0;
}

/* Grows an arena array to hold at least n + 1 elements. */
static int arena_grow(struct arena *a, void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 16;
	void *p = arena_alloc(a, ncap * elem);
	if (!p)
		return -ENOMEM;
	if (n)
		memcpy(p, *arr, n * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

struct list_ctx {
	struct arena *a;
	struct fsm_kv_answer *out;
	size_t cap;
	uint64_t max_index;
	size_t plen;
	const char *sep;
	size_t seplen;
	const char *last; /* last rolled-up key added */
	size_t last_len;
	bool keys_only;
};

static int list_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct list_ctx *c = ctx;
	struct fsm_kv_answer *out = c->out;
	struct kv_rec rec;
	int rc;

	if (c->keys_only) {
		const char *key = k.ptr;
		size_t n = k.len;

		if (kv_rec_decode(v, &rec) < 0)
			return CAIRN_E_STORE;
		if (rec.modify_index > c->max_index)
			c->max_index = rec.modify_index;
		if (c->seplen) {
			const char *after = key + c->plen;
			size_t alen = n - c->plen;
			const char *hit = memmem(after, alen, c->sep, c->seplen);
			if (hit) {
				n = (size_t)(hit - key) + c->seplen;
				if (c->last && c->last_len == n && memcmp(c->last, key, n) == 0)
					return 0;
			}
		}
		rc =
		    arena_grow(c->a, (void **)&out->keys, &c->cap, out->n_keys, sizeof(*out->keys));
		if (rc < 0)
			return rc;
		char *s = arena_strndup(c->a, key, n);
		if (!s)
			return -ENOMEM;
		out->keys[out->n_keys++] = s;
		c->last = s;
		c->last_len = n;
		return 0;
	}
	rc = arena_grow(c->a, (void **)&out->entries, &c->cap, out->n_entries,
			sizeof(*out->entries));
	if (rc < 0)
		return rc;
	rc = fill_entry(c->a, k.ptr, k.len, v, &out->entries[out->n_entries]);
	if (rc < 0)
		return rc;
	if (out->entries[out->n_entries].modify_index > c->max_index)
		c->max_index = out->entries[out->n_entries].modify_index;
	out->n_entries++;
	return 0;
}

static int tomb_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct list_ctx *c = ctx;
	uint64_t idx;

	(void)k;
	if (store_be_to_u64(v, &idx) < 0)
		return CAIRN_E_STORE;
	if (idx > c->max_index)
		c->max_index = idx;
	return 0;
}

/* Consul's kvsListTxn/kvsListKeysTxn index: the highest index of entries
 * and tombstones under the prefix, else the table's. */
static int list_common(struct store_txn *txn, struct list_ctx *c, const char *prefix)
{
	int rc;

	rc = store_scan_prefix(txn, STORE_KV, prefix, c->plen, list_cb, c);
	if (rc < 0)
		return rc;
	rc = store_scan_prefix(txn, STORE_KV_TOMB, prefix, c->plen, tomb_cb, c);
	if (rc < 0)
		return rc;
	if (c->max_index) {
		c->out->index = c->max_index;
		return 0;
	}
	return table_index(txn, INDEX_KV, &c->out->index);
}

int fsm_kv_list(struct store_txn *txn, struct arena *a, const char *prefix,
		struct fsm_kv_answer *out)
{
	struct list_ctx c = {.a = a, .out = out, .plen = strlen(prefix)};

	memset(out, 0, sizeof(*out));
	return list_common(txn, &c, prefix);
}

int fsm_kv_keys(struct store_txn *txn, struct arena *a, const char *prefix, const char *sep,
		struct fsm_kv_answer *out)
{
	struct list_ctx c = {.a = a,
			     .out = out,
			     .plen = strlen(prefix),
			     .sep = sep,
			     .seplen = sep ? strlen(sep) : 0,
			     .keys_only = true};

	memset(out, 0, sizeof(*out));
	return list_common(txn, &c, prefix);
}

static int read_map_into(struct mp_reader *r, struct arena *a, struct proto_map *m)
{
	uint32_t n = mp_read_map(r);

	memset(m, 0, sizeof(*m));
	if (r->err || n > r->len)
		return CAIRN_E_STORE;
	if (n == 0)
		return 0;
	m->keys = arena_alloc(a, n * sizeof(*m->keys));
	m->vals = arena_alloc(a, n * sizeof(*m->vals));
	if (!m->keys || !m->vals)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		size_t kl, vl;
		const char *k = mp_read_str(r, &kl);
		const char *v = mp_read_str(r, &vl);
		m->keys[i] = arena_strndup(a, k ? k : "", kl);
		m->vals[i] = arena_strndup(a, v ? v : "", vl);
		if (!m->keys[i] || !m->vals[i])
			return -ENOMEM;
	}
	m->n = n;
	return r->err ? CAIRN_E_STORE : 0;
}

static const char *dup_span(struct arena *a, struct mp_reader *r, bool *oom)
{
	size_t n;
	const char *s = mp_read_str(r, &n);

	if (!s)
		return NULL;
	const char *d = arena_strndup(a, s, n);
	if (!d)
		*oom = true;
	return d;
}

int fsm_node_get(struct store_txn *txn, struct arena *a, const char *name,
		 struct proto_node **out_node, uint64_t *out_index)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	struct mp_reader r;
	struct proto_node *n;
	bool oom = false;
	int klen, rc;

	*out_node = NULL;
	rc = table_index(txn, INDEX_NODES, out_index);
	if (rc < 0)
		return rc;
	klen = fsm_node_key(name, key, sizeof(key));
	if (klen < 0)
		return 0;
	rc = store_get(txn, STORE_NODES, key, (size_t)klen, &v);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	n = arena_zalloc(a, sizeof(*n));
	if (!n)
		return -ENOMEM;
	mp_reader_init(&r, v.ptr, v.len);
	if (mp_read_array(&r) != 8)
		return CAIRN_E_STORE;
	n->id = dup_span(a, &r, &oom);
	n->node = dup_span(a, &r, &oom);
	n->address = dup_span(a, &r, &oom);
	n->datacenter = dup_span(a, &r, &oom);
	if (oom)
		return -ENOMEM;
	rc = read_map_into(&r, a, &n->tagged_addresses);
	if (rc == 0)
		rc = read_map_into(&r, a, &n->meta);
	if (rc < 0)
		return rc;
	n->create_index = mp_read_u64(&r);
	n->modify_index = mp_read_u64(&r);
	if (!mp_reader_done(&r))
		return CAIRN_E_STORE;
	*out_node = n;
	return 0;
}
