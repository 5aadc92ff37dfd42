/* The replicated catalog's services and checks, and the read views. */
#include "catalog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "coordinate.h"
#include "err.h"
#include "mp.h"
#include "session.h"
#include "store.h"

#define IDX_NODES "nodes"
#define IDX_SERVICES "services"
#define IDX_CHECKS "checks"
#define KEY_CATALOG "catalog"
#define SVC_PREFIX "svc:"

#define SVC_FIELDS 14
#define CHK_FIELDS 13

/* ---- record codecs ---------------------------------------------------- */

static void write_str(struct mp_writer *w, const char *s)
{
	mp_write_str(w, s ? s : "", s ? strlen(s) : 0);
}

static void write_strs(struct mp_writer *w, const struct proto_strs *s)
{
	mp_write_array(w, (uint32_t)s->n);
	for (size_t i = 0; i < s->n; i++)
		write_str(w, s->v[i]);
}

static void write_map(struct mp_writer *w, const struct proto_map *m)
{
	mp_write_map(w, (uint32_t)m->n);
	for (size_t i = 0; i < m->n; i++) {
		write_str(w, m->keys[i]);
		write_str(w, m->vals[i]);
	}
}

static void svc_write(struct mp_writer *w, const struct proto_service *s)
{
	mp_write_array(w, SVC_FIELDS);
	write_str(w, s->node);
	write_str(w, s->id);
	write_str(w, s->service);
	write_strs(w, &s->tags);
	write_str(w, s->address);
	mp_write_u64(w, s->port);
	write_map(w, &s->meta);
	mp_write_cstr_or_nil(w, s->tagged_addresses);
	mp_write_u64(w, s->weight_passing);
	mp_write_u64(w, s->weight_warning);
	mp_write_bool(w, s->enable_tag_override);
	mp_write_cstr_or_nil(w, s->kind);
	mp_write_u64(w, s->create_index);
	mp_write_u64(w, s->modify_index);
}

static void chk_write(struct mp_writer *w, const struct proto_check *c)
{
	mp_write_array(w, CHK_FIELDS);
	write_str(w, c->node);
	write_str(w, c->check_id);
	write_str(w, c->name);
	write_str(w, c->status);
	write_str(w, c->notes);
	write_str(w, c->output);
	write_str(w, c->service_id);
	write_str(w, c->service_name);
	write_strs(w, &c->service_tags);
	write_str(w, c->type);
	mp_write_cstr_or_nil(w, c->definition);
	mp_write_u64(w, c->create_index);
	mp_write_u64(w, c->modify_index);
}

/* A string from r copied into a ("" for nil unless nullable). */
static const char *rd_str(struct mp_reader *r, struct arena *a, bool nullable, bool *oom)
{
	size_t n;
	const char *s = mp_read_str(r, &n);
	char *d;

	if (r->err)
		return NULL;
	if (!s && nullable)
		return NULL;
	d = arena_strndup(a, s ? s : "", s ? n : 0);
	if (!d)
		*oom = true;
	return d;
}

static void rd_strs(struct mp_reader *r, struct arena *a, struct proto_strs *out, bool *oom)
{
	uint32_t n = mp_read_array(r);

	memset(out, 0, sizeof(*out));
	if (r->err || n > r->len) {
		r->err = -EINVAL;
		return;
	}
	if (n == 0)
		return;
	out->v = arena_alloc(a, n * sizeof(*out->v));
	if (!out->v) {
		*oom = true;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		out->v[i] = rd_str(r, a, false, oom);
	out->n = r->err || *oom ? 0 : n;
}

static void rd_map(struct mp_reader *r, struct arena *a, struct proto_map *out, bool *oom)
{
	uint32_t n = mp_read_map(r);

	memset(out, 0, sizeof(*out));
	if (r->err || n > r->len) {
		r->err = -EINVAL;
		return;
	}
	if (n == 0)
		return;
	out->keys = arena_alloc(a, n * sizeof(*out->keys));
	out->vals = arena_alloc(a, n * sizeof(*out->vals));
	if (!out->keys || !out->vals) {
		*oom = true;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		out->keys[i] = rd_str(r, a, false, oom);
		out->vals[i] = rd_str(r, a, false, oom);
	}
	out->n = r->err || *oom ? 0 : n;
}

/* Reads a service record; returns 0, -EINVAL (malformed) or -ENOMEM. */
static int svc_read(struct mp_reader *r, struct arena *a, struct proto_service *s)
{
	bool oom = false;

	memset(s, 0, sizeof(*s));
	if (mp_read_array(r) != SVC_FIELDS)
		r->err = -EINVAL;
	s->node = rd_str(r, a, false, &oom);
	s->id = rd_str(r, a, false, &oom);
	s->service = rd_str(r, a, false, &oom);
	rd_strs(r, a, &s->tags, &oom);
	s->address = rd_str(r, a, false, &oom);
	s->port = mp_read_u64(r);
	rd_map(r, a, &s->meta, &oom);
	s->tagged_addresses = rd_str(r, a, true, &oom);
	s->weight_passing = mp_read_u64(r);
	s->weight_warning = mp_read_u64(r);
	s->enable_tag_override = mp_read_bool(r);
	s->kind = rd_str(r, a, true, &oom);
	s->create_index = mp_read_u64(r);
	s->modify_index = mp_read_u64(r);
	if (oom)
		return -ENOMEM;
	return r->err ? -EINVAL : 0;
}

static int chk_read(struct mp_reader *r, struct arena *a, struct proto_check *c)
{
	bool oom = false;

	memset(c, 0, sizeof(*c));
	if (mp_read_array(r) != CHK_FIELDS)
		r->err = -EINVAL;
	c->node = rd_str(r, a, false, &oom);
	c->check_id = rd_str(r, a, false, &oom);
	c->name = rd_str(r, a, false, &oom);
	c->status = rd_str(r, a, false, &oom);
	c->notes = rd_str(r, a, false, &oom);
	c->output = rd_str(r, a, false, &oom);
	c->service_id = rd_str(r, a, false, &oom);
	c->service_name = rd_str(r, a, false, &oom);
	rd_strs(r, a, &c->service_tags, &oom);
	c->type = rd_str(r, a, false, &oom);
	c->definition = rd_str(r, a, true, &oom);
	c->create_index = mp_read_u64(r);
	c->modify_index = mp_read_u64(r);
	if (oom)
		return -ENOMEM;
	return r->err ? -EINVAL : 0;
}

/* Decodes a stored value; a bad one is store corruption. */
static int svc_from_val(struct store_val v, struct arena *a, struct proto_service *s)
{
	struct mp_reader r;
	int rc;

	mp_reader_init(&r, v.ptr, v.len);
	rc = svc_read(&r, a, s);
	if (rc == 0 && !mp_reader_done(&r))
		rc = -EINVAL;
	return rc == -EINVAL ? CAIRN_E_STORE : rc;
}

static int chk_from_val(struct store_val v, struct arena *a, struct proto_check *c)
{
	struct mp_reader r;
	int rc;

	mp_reader_init(&r, v.ptr, v.len);
	rc = chk_read(&r, a, c);
	if (rc == 0 && !mp_reader_done(&r))
		rc = -EINVAL;
	return rc == -EINVAL ? CAIRN_E_STORE : rc;
}

/* ---- commands --------------------------------------------------------- */

void catalog_cmd_register(struct mp_writer *w, const struct proto_node *node, bool skip_node_update,
			  const struct proto_service *svc, const struct proto_check *checks,
			  size_t n_checks)
{
	mp_writer_reset(w);
	mp_write_array(w, 5);
	mp_write_u64(w, FSM_OP_CATALOG_REGISTER);
	mp_write_array(w, 6);
	mp_write_cstr_or_nil(w, node->id);
	mp_write_cstr_or_nil(w, node->node);
	mp_write_cstr_or_nil(w, node->address);
	mp_write_cstr_or_nil(w, node->datacenter);
	write_map(w, &node->tagged_addresses);
	write_map(w, &node->meta);
	mp_write_bool(w, skip_node_update);
	if (svc) {
		struct proto_service s = *svc;

		s.create_index = s.modify_index = 0;
		svc_write(w, &s);
	} else {
		mp_write_nil(w);
	}
	mp_write_array(w, (uint32_t)n_checks);
	for (size_t i = 0; i < n_checks; i++) {
		struct proto_check c = checks[i];

		c.create_index = c.modify_index = 0;
		chk_write(w, &c);
	}
}

void catalog_cmd_deregister(struct mp_writer *w, const char *node, const char *service_id,
			    const char *check_id)
{
	mp_writer_reset(w);
	mp_write_array(w, 4);
	mp_write_u64(w, FSM_OP_CATALOG_DEREGISTER);
	write_str(w, node);
	mp_write_cstr_or_nil(w, service_id);
	mp_write_cstr_or_nil(w, check_id);
}

/* ---- keys and indexes ------------------------------------------------- */

static size_t lower_into(char *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	return n;
}

/* "lcnode\0id" into out; returns its length or -EINVAL when too long. */
static int pair_key(char *out, const char *node, const char *id, bool lower_id)
{
	size_t nl = strlen(node), il = strlen(id);

	if (nl + 1 + il > STORE_KEY_MAX || nl == 0)
		return -EINVAL;
	lower_into(out, node, nl);
	out[nl] = 0;
	if (lower_id)
		lower_into(out + nl + 1, id, il);
	else
		memcpy(out + nl + 1, id, il);
	return (int)(nl + 1 + il);
}

/* "lcname\0lcnode\0id" */
static int name_key(char *out, const char *name, const char *node, const char *id)
{
	size_t sl = strlen(name);
	int rc;

	if (sl == 0 || sl + 1 > STORE_KEY_MAX)
		return -EINVAL;
	lower_into(out, name, sl);
	out[sl] = 0;
	if (sl + 1 + strlen(node) + 1 + strlen(id) > STORE_KEY_MAX)
		return -EINVAL;
	rc = pair_key(out + sl + 1, node, id, false);
	return rc < 0 ? rc : (int)(sl + 1) + rc;
}

/* "svc:lcname" (NUL-terminated) into out (STORE_KEY_MAX + 1 bytes). */
static int svc_index_key(char *out, const char *name)
{
	size_t n = strlen(name), pl = strlen(SVC_PREFIX);

	if (n + pl > STORE_KEY_MAX)
		return -EINVAL;
	memcpy(out, SVC_PREFIX, pl);
	lower_into(out + pl, name, n);
	out[pl + n] = 0;
	return (int)(pl + n);
}

static int bump(struct store_txn *txn, const char *key, uint64_t index)
{
	uint64_t cur;
	int rc = store_get_u64(txn, STORE_INDEX, key, &cur);

	if (rc < 0)
		return rc;
	if (index <= cur)
		return 0;
	return store_put_u64(txn, STORE_INDEX, key, index);
}

static void notify(fsm_change_fn change, void *ctx, const char *key)
{
	if (change)
		change(ctx, FSM_SPACE_CATALOG, key, strlen(key));
}

/* Moves a table's index and tells the watchers. */
static int touch(struct store_txn *txn, uint64_t index, const char *table, fsm_change_fn change,
		 void *ctx)
{
	int rc = bump(txn, table, index);

	if (rc == 0) {
		notify(change, ctx, table);
		notify(change, ctx, KEY_CATALOG);
	}
	return rc;
}

static int touch_service(struct store_txn *txn, uint64_t index, const char *name,
			 fsm_change_fn change, void *ctx)
{
	char key[STORE_KEY_MAX + 1];

	if (svc_index_key(key, name) < 0)
		return 0; /* refused at registration; cannot exist */
	return touch(txn, index, key, change, ctx);
}

/* ---- scans ------------------------------------------------------------ */

struct collect {
	struct arena *a;
	struct mp_writer keys; /* u16 length + bytes, for deletes after a scan */
	struct proto_service *svcs;
	size_t n_svcs, cap_svcs;
	struct proto_check *chks;
	size_t n_chks, cap_chks;
	const char *only_service_id; /* checks: keep only this service's (NULL: all) */
	bool also_node_checks;	     /* with only_service_id: node checks too */
};

static int grow(struct arena *a, void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 8;
	p = arena_alloc(a, ncap * elem);
	if (!p)
		return -ENOMEM;
	if (n)
		memcpy(p, *arr, n * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

static void key_push(struct collect *c, struct store_val k)
{
	uint8_t len[2] = {(uint8_t)(k.len >> 8), (uint8_t)k.len};

	mp_write_raw(&c->keys, len, sizeof(len));
	mp_write_raw(&c->keys, k.ptr, k.len);
}

static int collect_svc(void *ctx, struct store_val k, struct store_val v)
{
	struct collect *c = ctx;
	int rc = grow(c->a, (void **)&c->svcs, &c->cap_svcs, c->n_svcs, sizeof(*c->svcs));

	if (rc < 0)
		return rc;
	rc = svc_from_val(v, c->a, &c->svcs[c->n_svcs]);
	if (rc < 0)
		return rc;
	c->n_svcs++;
	key_push(c, k);
	return c->keys.err;
}

/* The ServiceID of a stored check without decoding the rest (a node with
 * many services has many checks; a health query wants few of them). */
static bool chk_wanted(const struct collect *c, struct store_val v)
{
	struct mp_reader r;
	const char *sid;
	size_t n, want;

	if (!c->only_service_id)
		return true;
	mp_reader_init(&r, v.ptr, v.len);
	(void)mp_read_array(&r);
	for (int i = 0; i < 6; i++)
		(void)mp_read_str(&r, &n);
	sid = mp_read_str(&r, &n);
	if (r.err)
		return true; /* let the full decode report it */
	if (n == 0)
		return c->also_node_checks;
	want = strlen(c->only_service_id);
	return sid && n == want && memcmp(sid, c->only_service_id, n) == 0;
}

static int collect_chk(void *ctx, struct store_val k, struct store_val v)
{
	struct collect *c = ctx;
	struct proto_check chk;
	int rc;

	if (!chk_wanted(c, v))
		return 0;
	rc = chk_from_val(v, c->a, &chk);
	if (rc < 0)
		return rc;
	if (c->only_service_id && *chk.service_id &&
	    strcmp(chk.service_id, c->only_service_id) != 0)
		return 0;
	if (c->only_service_id && !*chk.service_id && !c->also_node_checks)
		return 0;
	rc = grow(c->a, (void **)&c->chks, &c->cap_chks, c->n_chks, sizeof(*c->chks));
	if (rc < 0)
		return rc;
	c->chks[c->n_chks++] = chk;
	key_push(c, k);
	return c->keys.err;
}

/* Entries of table t under "lcnode\0". */
static int scan_node(struct store_txn *txn, enum store_table t, const char *node, struct collect *c)
{
	char key[STORE_KEY_MAX + 1];
	int klen = pair_key(key, node, "", false);

	if (klen < 0)
		return 0;
	return store_scan_prefix(txn, t, key, (size_t)klen,
				 t == STORE_SERVICES ? collect_svc : collect_chk, c);
}

/* The i-th key pushed by key_push. */
static const char *key_at(const struct collect *c, size_t *pos, size_t *out_len)
{
	size_t p = *pos;

	if (p + 2 > c->keys.len)
		return NULL;
	*out_len = ((size_t)c->keys.buf[p] << 8) | c->keys.buf[p + 1];
	*pos = p + 2 + *out_len;
	return (const char *)c->keys.buf + p + 2;
}

/* ---- apply ------------------------------------------------------------ */

static bool status_ok(const char *s)
{
	return !strcmp(s, "passing") || !strcmp(s, "warning") || !strcmp(s, "critical");
}

/* Bumps the service index of every service on node (a node-level check
 * changed: Consul's health views of those services change). */
static int touch_node_services(struct store_txn *txn, struct arena *a, uint64_t index,
			       const char *node, fsm_change_fn change, void *ctx)
{
	struct collect c = {.a = a};
	int rc;

	mp_writer_init(&c.keys);
	rc = scan_node(txn, STORE_SERVICES, node, &c);
	for (size_t i = 0; rc == 0 && i < c.n_svcs; i++)
		rc = touch_service(txn, index, c.svcs[i].service, change, ctx);
	mp_writer_close(&c.keys);
	return rc;
}

/* Writes rec under key unless the stored value equals it but for the
 * trailing modify index. *out_changed says whether it wrote. */
static int put_if_changed(struct store_txn *txn, enum store_table t, const char *key, size_t klen,
			  struct mp_writer *w, bool *out_changed)
{
	struct store_val old;
	int rc = store_get(txn, t, key, klen, &old);

	*out_changed = false;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	/* records end with the modify index as a fixed 9-byte uint64
	 * (write_u64_fixed): equal but for it means nothing changed */
	if (rc == 0 && old.len == w->len && w->len > 9 && memcmp(old.ptr, w->buf, w->len - 9) == 0)
		return 0;
	rc = store_put(txn, t, key, klen, w->buf, w->len);
	if (rc == 0)
		*out_changed = true;
	return rc;
}

/* Encodes a record with the modify index as a fixed 9-byte uint64 so that
 * put_if_changed's prefix comparison is exact. */
static void write_u64_fixed(struct mp_writer *w, uint64_t v)
{
	uint8_t b[9] = {0xcf};

	for (int i = 0; i < 8; i++)
		b[1 + i] = (uint8_t)(v >> (56 - 8 * i));
	mp_write_raw(w, b, sizeof(b));
}

static void svc_encode_stored(struct mp_writer *w, const struct proto_service *s)
{
	struct proto_service t = *s;

	mp_writer_reset(w);
	/* svc_write ends with modify: write everything else, then fixed */
	t.modify_index = 0;
	svc_write(w, &t);
	w->len -= 1; /* drop the fixint 0 */
	write_u64_fixed(w, s->modify_index);
}

static void chk_encode_stored(struct mp_writer *w, const struct proto_check *c)
{
	struct proto_check t = *c;

	mp_writer_reset(w);
	t.modify_index = 0;
	chk_write(w, &t);
	w->len -= 1;
	write_u64_fixed(w, c->modify_index);
}

static int ensure_service(struct store_txn *txn, struct arena *a, uint64_t index,
			  struct proto_service *s, fsm_change_fn change, void *ctx)
{
	char key[STORE_KEY_MAX + 1], nkey[STORE_KEY_MAX + 1];
	struct store_val v;
	struct proto_service old;
	bool exists = false, changed;
	struct mp_writer w;
	int klen = pair_key(key, s->node, s->id, false), nklen, rc;

	if (klen < 0)
		return CAIRN_E_BADREQ;
	rc = store_get(txn, STORE_SERVICES, key, (size_t)klen, &v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		rc = svc_from_val(v, a, &old);
		if (rc < 0)
			return rc;
		exists = true;
	}
	s->create_index = exists ? old.create_index : index;
	s->modify_index = index;
	mp_writer_init(&w);
	svc_encode_stored(&w, s);
	rc = w.err ? w.err : put_if_changed(txn, STORE_SERVICES, key, (size_t)klen, &w, &changed);
	mp_writer_close(&w);
	if (rc < 0 || !changed)
		return rc;
	if (exists && strcasecmp(old.service, s->service) != 0) {
		nklen = name_key(nkey, old.service, old.node, old.id);
		if (nklen > 0) {
			rc = store_del(txn, STORE_SVC_NAMES, nkey, (size_t)nklen);
			if (rc < 0 && rc != -ENOENT)
				return rc;
		}
		rc = touch_service(txn, index, old.service, change, ctx);
		if (rc < 0)
			return rc;
	}
	nklen = name_key(nkey, s->service, s->node, s->id);
	if (nklen < 0)
		return CAIRN_E_BADREQ;
	rc = store_put(txn, STORE_SVC_NAMES, nkey, (size_t)nklen, "", 0);
	if (rc == 0)
		rc = touch(txn, index, IDX_SERVICES, change, ctx);
	if (rc == 0)
		rc = touch_service(txn, index, s->service, change, ctx);
	return rc;
}

static int ensure_check(struct store_txn *txn, struct arena *a, uint64_t index,
			struct proto_check *c, fsm_change_fn change, void *ctx)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	struct proto_check old;
	bool exists = false, changed;
	struct mp_writer w;
	int klen = pair_key(key, c->node, c->check_id, false), rc;

	if (klen < 0)
		return CAIRN_E_BADREQ;
	rc = store_get(txn, STORE_CHECKS, key, (size_t)klen, &v);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == 0) {
		rc = chk_from_val(v, a, &old);
		if (rc < 0)
			return rc;
		exists = true;
	}
	c->create_index = exists ? old.create_index : index;
	c->modify_index = index;
	mp_writer_init(&w);
	chk_encode_stored(&w, c);
	rc = w.err ? w.err : put_if_changed(txn, STORE_CHECKS, key, (size_t)klen, &w, &changed);
	mp_writer_close(&w);
	/* Consul's ensureCheckTxn: a critical check ends the sessions bound
	 * to it (their locks released or deleted, with the lock-delay) */
	if (rc == 0 && strcmp(c->status, "critical") == 0)
		rc = session_invalidate_check(txn, index, c->node, c->check_id, change, ctx);
	if (rc < 0 || !changed)
		return rc;
	rc = touch(txn, index, IDX_CHECKS, change, ctx);
	if (rc < 0)
		return rc;
	if (*c->service_id)
		return touch_service(txn, index, c->service_name, change, ctx);
	return touch_node_services(txn, a, index, c->node, change, ctx);
}

int catalog_node_changed(struct store_txn *txn, uint64_t index, const char *node,
			 fsm_change_fn change, void *ctx)
{
	struct arena a;
	int rc;

	notify(change, ctx, IDX_NODES);
	notify(change, ctx, KEY_CATALOG);
	arena_init(&a, 4096);
	rc = touch_node_services(txn, &a, index, node, change, ctx);
	arena_close(&a);
	return rc;
}

/* Forwards fsm.c's node change and remembers it. */
struct node_change {
	fsm_change_fn change;
	void *ctx;
};

static void forward_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	struct node_change *nc = ctx;

	if (nc->change)
		nc->change(nc->ctx, space, key, klen);
}

int catalog_check_get(struct store_txn *txn, struct arena *a, const char *node,
		      const char *check_id, struct proto_check *out)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	int klen = pair_key(key, node, check_id, false), rc;

	if (klen < 0)
		return -ENOENT;
	rc = store_get(txn, STORE_CHECKS, key, (size_t)klen, &v);
	if (rc < 0)
		return rc;
	return chk_from_val(v, a, out);
}

/* Looks up the service id on node into *out (in a). Returns 0, -ENOENT or
 * a store error. */
static int service_get(struct store_txn *txn, struct arena *a, const char *node, const char *id,
		       struct proto_service *out)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	int klen = pair_key(key, node, id, false), rc;

	if (klen < 0)
		return -ENOENT;
	rc = store_get(txn, STORE_SERVICES, key, (size_t)klen, &v);
	if (rc < 0)
		return rc;
	return svc_from_val(v, a, out);
}

static bool node_exists(struct store_txn *txn, const char *node, int *out_rc)
{
	char key[STORE_KEY_MAX + 1];
	struct store_val v;
	int klen = fsm_node_key(node, key, sizeof(key)), rc;

	*out_rc = 0;
	if (klen < 0)
		return false;
	rc = store_get(txn, STORE_NODES, key, (size_t)klen, &v);
	if (rc < 0 && rc != -ENOENT)
		*out_rc = rc;
	return rc == 0;
}

static int apply_register(struct store_txn *txn, struct arena *a, uint64_t index,
			  struct mp_reader *r, struct fsm_result *out, fsm_change_fn change,
			  void *ctx)
{
	struct proto_node node = {0};
	struct proto_service svc, *svcp = NULL;
	struct proto_check *checks = NULL;
	bool skip, oom = false;
	uint32_t n_checks;
	int rc;

	if (mp_read_array(r) != 6)
		r->err = -EINVAL;
	node.id = rd_str(r, a, true, &oom);
	node.node = rd_str(r, a, false, &oom);
	node.address = rd_str(r, a, false, &oom);
	node.datacenter = rd_str(r, a, true, &oom);
	rd_map(r, a, &node.tagged_addresses, &oom);
	rd_map(r, a, &node.meta, &oom);
	skip = mp_read_bool(r);
	if (mp_read_nil(r)) {
		svcp = NULL;
	} else {
		rc = svc_read(r, a, &svc);
		if (rc == -ENOMEM)
			return rc;
		svcp = &svc;
	}
	n_checks = mp_read_array(r);
	if (!r->err && n_checks <= r->len) {
		checks = arena_zalloc(a, (n_checks + 1) * sizeof(*checks));
		if (!checks)
			return -ENOMEM;
		for (uint32_t i = 0; i < n_checks && !r->err; i++)
			if (chk_read(r, a, &checks[i]) == -ENOMEM)
				return -ENOMEM;
	} else {
		r->err = -EINVAL;
	}
	if (oom)
		return -ENOMEM;
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}

	/* Validate everything before the first write: a refused command
	 * leaves no trace (Consul aborts its memdb transaction). */
	char key[STORE_KEY_MAX + 1];
	if (!node.node || !*node.node || fsm_node_key(node.node, key, sizeof(key)) < 0 ||
	    (!skip && (!node.address || !*node.address))) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	if (svcp) {
		if (!*svcp->service || !*svcp->id || memchr(svcp->id, 0, strlen(svcp->id)) ||
		    name_key(key, svcp->service, node.node, svcp->id) < 0) {
			out->code = CAIRN_E_BADREQ;
			return 0;
		}
		svcp->node = node.node;
	}
	for (uint32_t i = 0; i < n_checks; i++) {
		struct proto_check *c = &checks[i];
		struct proto_service found;

		c->node = node.node;
		if (!*c->status)
			c->status = "critical";
		if (!*c->check_id || !status_ok(c->status) ||
		    pair_key(key, node.node, c->check_id, false) < 0) {
			out->code = CAIRN_E_BADREQ;
			return 0;
		}
		if (!*c->service_id) {
			c->service_name = "";
			memset(&c->service_tags, 0, sizeof(c->service_tags));
			continue;
		}
		if (svcp && strcmp(svcp->id, c->service_id) == 0) {
			found = *svcp;
		} else {
			rc = service_get(txn, a, node.node, c->service_id, &found);
			if (rc == -ENOENT) {
				out->code = CAIRN_E_BADREQ;
				return 0;
			}
			if (rc < 0)
				return rc;
		}
		c->service_name = found.service;
		c->service_tags = found.tags;
	}

	/* The node: through fsm.c's ensureNodeTxn unless asked to keep it. */
	int nrc = 0;
	bool exists = node_exists(txn, node.node, &nrc);
	if (nrc < 0)
		return nrc;
	if (!skip || !exists) {
		struct mp_writer w;
		struct fsm_result nres;
		struct node_change nc = {change, ctx};

		if (!node.address || !*node.address) {
			out->code = CAIRN_E_BADREQ;
			return 0;
		}
		mp_writer_init(&w);
		fsm_cmd_node_register(&w, &node);
		rc =
		    w.err ? w.err : fsm_apply(txn, index, w.buf, w.len, &nres, forward_change, &nc);
		mp_writer_close(&w);
		if (rc < 0)
			return rc;
		if (nres.code < 0) {
			out->code = nres.code;
			return 0;
		}
	}
	if (svcp) {
		rc = ensure_service(txn, a, index, svcp, change, ctx);
		if (rc < 0)
			return rc;
	}
	for (uint32_t i = 0; i < n_checks; i++) {
		rc = ensure_check(txn, a, index, &checks[i], change, ctx);
		if (rc < 0)
			return rc;
	}
	out->ok = true;
	return 0;
}

int catalog_apply_register(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			   struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct arena a;
	int rc;

	arena_init(&a, 4096);
	rc = apply_register(txn, &a, index, r, out, change, ctx);
	arena_close(&a);
	if (rc == CAIRN_E_BADREQ) {
		out->code = rc;
		rc = 0;
	}
	return rc;
}

/* Deletes the checks collected in c (their keys), bumping indexes. */
static int delete_checks(struct store_txn *txn, struct arena *a, uint64_t index, struct collect *c,
			 fsm_change_fn change, void *ctx)
{
	size_t pos = 0, klen;
	const char *k;
	int rc = 0;

	(void)a;
	for (size_t i = 0; rc == 0 && i < c->n_chks && (k = key_at(c, &pos, &klen)); i++) {
		rc = store_del(txn, STORE_CHECKS, k, klen);
		if (rc == -ENOENT)
			rc = 0;
		/* Consul's deleteCheckTxn: sessions bound to the check end */
		if (rc == 0)
			rc = session_invalidate_check(txn, index, c->chks[i].node,
						      c->chks[i].check_id, change, ctx);
	}
	if (rc == 0 && c->n_chks)
		rc = touch(txn, index, IDX_CHECKS, change, ctx);
	return rc;
}

static int delete_service(struct store_txn *txn, const struct proto_service *s, uint64_t index,
			  fsm_change_fn change, void *ctx)
{
	char key[STORE_KEY_MAX + 1];
	int klen = pair_key(key, s->node, s->id, false), rc;

	if (klen < 0)
		return 0;
	rc = store_del(txn, STORE_SERVICES, key, (size_t)klen);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	klen = name_key(key, s->service, s->node, s->id);
	if (klen > 0) {
		rc = store_del(txn, STORE_SVC_NAMES, key, (size_t)klen);
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	rc = touch(txn, index, IDX_SERVICES, change, ctx);
	if (rc == 0)
		rc = touch_service(txn, index, s->service, change, ctx);
	return rc;
}

static int apply_deregister(struct store_txn *txn, struct arena *a, uint64_t index,
			    struct mp_reader *r, struct fsm_result *out, fsm_change_fn change,
			    void *ctx)
{
	bool oom = false;
	const char *node = rd_str(r, a, false, &oom);
	const char *sid = rd_str(r, a, true, &oom);
	const char *cid = rd_str(r, a, true, &oom);
	char key[STORE_KEY_MAX + 1];
	struct collect c = {.a = a};
	int klen, rc = 0;

	if (oom)
		return -ENOMEM;
	if (!mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	if (!node || !*node || fsm_node_key(node, key, sizeof(key)) < 0) {
		out->code = CAIRN_E_BADREQ;
		return 0;
	}
	out->ok = true;
	mp_writer_init(&c.keys);
	if (cid) {
		/* deleteCheckTxn */
		struct store_val v;
		struct proto_check chk;

		klen = pair_key(key, node, cid, false);
		if (klen < 0)
			goto out;
		rc = store_get(txn, STORE_CHECKS, key, (size_t)klen, &v);
		if (rc == -ENOENT) {
			rc = 0;
			goto out;
		}
		if (rc == 0)
			rc = chk_from_val(v, a, &chk);
		if (rc == 0)
			rc = store_del(txn, STORE_CHECKS, key, (size_t)klen);
		if (rc == 0)
			rc = session_invalidate_check(txn, index, node, cid, change, ctx);
		if (rc == 0)
			rc = touch(txn, index, IDX_CHECKS, change, ctx);
		if (rc == 0 && *chk.service_id)
			rc = touch_service(txn, index, chk.service_name, change, ctx);
		else if (rc == 0)
			rc = touch_node_services(txn, a, index, node, change, ctx);
		goto out;
	}
	if (sid) {
		/* deleteServiceTxn: the service and its checks */
		struct proto_service s;

		rc = service_get(txn, a, node, sid, &s);
		if (rc == -ENOENT) {
			rc = 0;
			goto out;
		}
		if (rc < 0)
			goto out;
		c.only_service_id = sid;
		rc = scan_node(txn, STORE_CHECKS, node, &c);
		if (rc == 0)
			rc = delete_checks(txn, a, index, &c, change, ctx);
		if (rc == 0)
			rc = delete_service(txn, &s, index, change, ctx);
		goto out;
	}
	/* deleteNodeTxn: checks, services, then the node */
	rc = scan_node(txn, STORE_CHECKS, node, &c);
	if (rc == 0)
		rc = delete_checks(txn, a, index, &c, change, ctx);
	if (rc == 0)
		rc = scan_node(txn, STORE_SERVICES, node, &c);
	for (size_t i = 0; rc == 0 && i < c.n_svcs; i++)
		rc = delete_service(txn, &c.svcs[i], index, change, ctx);
	if (rc < 0)
		goto out;
	klen = fsm_node_key(node, key, sizeof(key));
	rc = store_del(txn, STORE_NODES, key, (size_t)klen);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	/* Consul's deleteNodeTxn: the node's coordinate goes too */
	if (rc == 0)
		rc = coordinate_node_deleted(txn, index, key, (size_t)klen, change, ctx);
	/* Consul's deleteNodeTxn: the node's sessions end */
	if (rc == 0)
		rc = session_invalidate_check(txn, index, node, NULL, change, ctx);
	if (rc == 0)
		rc = touch(txn, index, IDX_NODES, change, ctx);
	if (rc == 0 && change)
		change(ctx, FSM_SPACE_NODES, key, (size_t)klen);
out:
	mp_writer_close(&c.keys);
	return rc;
}

int catalog_apply_deregister(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			     struct fsm_result *out, fsm_change_fn change, void *ctx)
{
	struct arena a;
	int rc;

	arena_init(&a, 4096);
	rc = apply_deregister(txn, &a, index, r, out, change, ctx);
	arena_close(&a);
	return rc;
}

/* ---- reads ------------------------------------------------------------ */

static int idx_of(struct store_txn *txn, const char *key, uint64_t *out)
{
	return store_get_u64(txn, STORE_INDEX, key, out);
}

/* The largest of the named tables' indexes (at least 1). */
static int max_index(struct store_txn *txn, const char *const *keys, size_t n, uint64_t *out)
{
	uint64_t best = 0, v;

	for (size_t i = 0; i < n; i++) {
		int rc = idx_of(txn, keys[i], &v);

		if (rc < 0)
			return rc;
		if (v > best)
			best = v;
	}
	*out = best ? best : 1;
	return 0;
}

static bool meta_match(const struct proto_node *n, const struct proto_map *want)
{
	for (size_t i = 0; i < want->n; i++) {
		bool hit = false;

		for (size_t j = 0; j < n->meta.n && !hit; j++)
			hit = !strcmp(n->meta.keys[j], want->keys[i]) &&
			      !strcmp(n->meta.vals[j], want->vals[i] ? want->vals[i] : "");
		if (!hit)
			return false;
	}
	return true;
}

/* Consul's serviceTagsFilter: every wanted tag present, case-insensitive. */
static bool tags_match(const struct proto_strs *have, const struct proto_strs *want)
{
	for (size_t i = 0; i < want->n; i++) {
		bool hit = false;

		for (size_t j = 0; j < have->n && !hit; j++)
			hit = !strcasecmp(have->v[j], want->v[i]);
		if (!hit)
			return false;
	}
	return true;
}

struct builder {
	struct arena *a;
	struct catalog_answer *out;
	size_t cap_nodes, cap_svcs, cap_chks;
	const struct proto_map *node_meta;
};

/* Adds node (by name) to the answer unless it is already the last one
 * added; *out_ok is false when it does not exist or fails node-meta. */
static int add_node(struct store_txn *txn, struct builder *b, const char *name, bool *out_ok)
{
	struct catalog_answer *o = b->out;
	struct proto_node *n;
	uint64_t ignore;
	int rc;

	*out_ok = false;
	/* callers add a node's entries together: the last one is enough */
	if (o->n_nodes && !strcasecmp(o->nodes[o->n_nodes - 1].node, name)) {
		*out_ok = true;
		return 0;
	}
	rc = fsm_node_get(txn, b->a, name, &n, &ignore);
	if (rc < 0 || !n)
		return rc;
	if (b->node_meta && !meta_match(n, b->node_meta))
		return 0;
	rc = grow(b->a, (void **)&o->nodes, &b->cap_nodes, o->n_nodes, sizeof(*o->nodes));
	if (rc < 0)
		return rc;
	o->nodes[o->n_nodes++] = *n;
	*out_ok = true;
	return 0;
}

static int add_svc(struct builder *b, const struct proto_service *s)
{
	struct catalog_answer *o = b->out;
	int rc =
	    grow(b->a, (void **)&o->services, &b->cap_svcs, o->n_services, sizeof(*o->services));

	if (rc == 0)
		o->services[o->n_services++] = *s;
	return rc;
}

static int add_chk(struct builder *b, const struct proto_check *c)
{
	struct catalog_answer *o = b->out;
	int rc = grow(b->a, (void **)&o->checks, &b->cap_chks, o->n_checks, sizeof(*o->checks));

	if (rc == 0)
		o->checks[o->n_checks++] = *c;
	return rc;
}

struct node_scan {
	struct builder *b;
	struct store_txn *txn;
};

static int nodes_scan_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct node_scan *ns = ctx;
	char name[STORE_KEY_MAX + 1];
	bool ok;

	(void)v;
	if (k.len > STORE_KEY_MAX)
		return CAIRN_E_STORE;
	memcpy(name, k.ptr, k.len);
	name[k.len] = 0;
	return add_node(ns->txn, ns->b, name, &ok);
}

static int cmp_svc_name(const void *x, const void *y)
{
	const struct proto_service *a = x, *b = y;
	int c = strcmp(a->service, b->service);

	return c ? c : strcmp(a->node, b->node);
}

/* Instances of a service (by its lower-cased name index), filtered. */
struct inst_scan {
	struct store_txn *txn;
	struct builder *b;
	const struct proto_catalog_query *q;
	size_t namelen; /* bytes of "lcname\0" */
};

static int inst_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct inst_scan *is = ctx;
	const char *rest = (const char *)k.ptr + is->namelen;
	size_t rlen = k.len - is->namelen;
	const char *nul = memchr(rest, 0, rlen);
	struct store_val sv;
	struct proto_service s;
	char key[STORE_KEY_MAX + 1], node[STORE_KEY_MAX + 1];
	bool ok;
	int rc;

	(void)v;
	if (!nul || rlen > STORE_KEY_MAX)
		return CAIRN_E_STORE;
	memcpy(key, rest, rlen);
	rc = store_get(is->txn, STORE_SERVICES, key, rlen, &sv);
	if (rc == -ENOENT)
		return 0;
	if (rc == 0)
		rc = svc_from_val(sv, is->b->a, &s);
	if (rc < 0)
		return rc;
	if (!tags_match(&s.tags, &is->q->tags))
		return 0;
	memcpy(node, s.node, strlen(s.node) + 1);
	rc = add_node(is->txn, is->b, node, &ok);
	if (rc < 0 || !ok)
		return rc;
	return add_svc(is->b, &s);
}

/* Collects the instances of q->name into the answer: services plus their
 * nodes. */
static int service_instances(struct store_txn *txn, struct builder *b,
			     const struct proto_catalog_query *q)
{
	char key[STORE_KEY_MAX + 1];
	size_t n = q->name ? strlen(q->name) : 0;
	struct inst_scan is = {txn, b, q, n + 1};

	if (n == 0 || n + 1 > STORE_KEY_MAX)
		return 0;
	lower_into(key, q->name, n);
	key[n] = 0;
	return store_scan_prefix(txn, STORE_SVC_NAMES, key, n + 1, inst_cb, &is);
}

/* Index and watch key of a per-service view: the service's own index, or
 * the tables' when it has none (Consul's maxIndexForService). */
static int service_view_index(struct store_txn *txn, struct arena *a, const char *name,
			      bool with_checks, struct catalog_answer *out)
{
	static const char *const tables[] = {IDX_NODES, IDX_SERVICES, IDX_CHECKS};
	char key[STORE_KEY_MAX + 1];
	uint64_t v = 0;
	int rc;

	if (name && *name && svc_index_key(key, name) > 0) {
		rc = idx_of(txn, key, &v);
		if (rc < 0)
			return rc;
		if (v) {
			out->index = v;
			out->watch_key = arena_strdup(a, key);
			return out->watch_key ? 0 : -ENOMEM;
		}
	}
	out->watch_key = KEY_CATALOG;
	return max_index(txn, tables, with_checks ? 3 : 2, &out->index);
}

static int health_checks_for(struct store_txn *txn, struct builder *b, const char *node,
			     const char *service_id, bool node_checks_too)
{
	struct collect c = {.a = b->a,
			    .only_service_id = service_id ? service_id : "",
			    .also_node_checks = node_checks_too};
	int rc;

	mp_writer_init(&c.keys);
	rc = scan_node(txn, STORE_CHECKS, node, &c);
	/* the service's checks, then the node's, each in check ID order:
	 * apid tells one instance's group from the next by that order */
	for (size_t i = 0; rc == 0 && i < c.n_chks; i++)
		if (service_id && !strcmp(c.chks[i].service_id, service_id))
			rc = add_chk(b, &c.chks[i]);
	for (size_t i = 0; rc == 0 && node_checks_too && i < c.n_chks; i++)
		if (!*c.chks[i].service_id)
			rc = add_chk(b, &c.chks[i]);
	mp_writer_close(&c.keys);
	return rc;
}

static int state_cb(void *ctx, struct store_val k, struct store_val v)
{
	struct inst_scan *is = ctx;
	struct proto_check c;
	bool ok;
	int rc;

	(void)k;
	rc = chk_from_val(v, is->b->a, &c);
	if (rc < 0)
		return rc;
	if (strcmp(is->q->name, "any") != 0 && strcmp(c.status, is->q->name) != 0)
		return 0;
	if (is->q->node_meta.n) {
		rc = add_node(is->txn, is->b, c.node, &ok);
		if (rc < 0 || !ok)
			return rc;
	}
	return add_chk(is->b, &c);
}

int catalog_query(struct store_txn *txn, struct arena *a, const struct proto_catalog_query *q,
		  struct catalog_answer *out)
{
	static const char *const nodes_services[] = {IDX_NODES, IDX_SERVICES};
	struct builder b = {.a = a, .out = out};
	const char *name = q->name ? q->name : "";
	bool ok;
	int rc;

	memset(out, 0, sizeof(*out));
	b.node_meta = q->node_meta.n ? &q->node_meta : NULL;
	switch ((enum catalog_view)q->view) {
	case CATALOG_VIEW_NODES: {
		struct node_scan ns = {&b, txn};

		out->watch_key = IDX_NODES;
		rc = max_index(txn, (const char *const[]){IDX_NODES}, 1, &out->index);
		if (rc == 0)
			rc = store_scan_prefix(txn, STORE_NODES, "", 0, nodes_scan_cb, &ns);
		return rc;
	}
	case CATALOG_VIEW_SERVICES: {
		struct collect c = {.a = a};

		out->watch_key = KEY_CATALOG;
		rc = max_index(txn, nodes_services, 2, &out->index);
		mp_writer_init(&c.keys);
		if (rc == 0)
			rc = store_scan_prefix(txn, STORE_SERVICES, "", 0, collect_svc, &c);
		mp_writer_close(&c.keys);
		if (rc < 0)
			return rc;
		if (c.n_svcs)
			qsort(c.svcs, c.n_svcs, sizeof(*c.svcs), cmp_svc_name);
		/* one entry per name, tags merged in first-seen order */
		for (size_t i = 0; i < c.n_svcs; i++) {
			struct proto_service *s = &c.svcs[i], *last;

			if (b.node_meta) {
				char node[STORE_KEY_MAX + 1];
				size_t save = out->n_nodes;

				memcpy(node, s->node, strlen(s->node) + 1);
				rc = add_node(txn, &b, node, &ok);
				if (rc < 0)
					return rc;
				out->n_nodes = save;
				if (!ok)
					continue;
			}
			last = out->n_services ? &out->services[out->n_services - 1] : NULL;
			if (!last || strcmp(last->service, s->service) != 0) {
				rc = add_svc(&b, s);
				if (rc < 0)
					return rc;
				last = &out->services[out->n_services - 1];
				/* own the tag array: it grows below */
				const char **v = arena_alloc(a, (last->tags.n + 1) * sizeof(*v));
				if (!v)
					return -ENOMEM;
				if (last->tags.n)
					memcpy(v, last->tags.v, last->tags.n * sizeof(*v));
				last->tags.v = v;
				continue;
			}
			for (size_t t = 0; t < s->tags.n; t++) {
				bool dup = false;

				for (size_t u = 0; u < last->tags.n && !dup; u++)
					dup = !strcmp(last->tags.v[u], s->tags.v[t]);
				if (dup)
					continue;
				const char **v = arena_alloc(a, (last->tags.n + 1) * sizeof(*v));
				if (!v)
					return -ENOMEM;
				memcpy(v, last->tags.v, last->tags.n * sizeof(*v));
				v[last->tags.n] = s->tags.v[t];
				last->tags.v = v;
				last->tags.n++;
			}
		}
		out->n_nodes = 0;
		return 0;
	}
	case CATALOG_VIEW_SERVICE:
	case CATALOG_VIEW_HEALTH_SERVICE: {
		bool health = q->view == CATALOG_VIEW_HEALTH_SERVICE;
		struct catalog_answer all;

		rc = service_view_index(txn, a, name, health, out);
		if (rc == 0)
			rc = service_instances(txn, &b, q);
		if (rc < 0 || !health)
			return rc;
		/* checks per instance; ?passing drops instances with any
		 * check that is not passing (Consul's filterNonPassing) */
		all = *out;
		out->n_services = 0;
		for (size_t i = 0; i < all.n_services; i++) {
			const struct proto_service *s = &all.services[i];
			size_t first = out->n_checks;
			bool pass = true;

			rc = health_checks_for(txn, &b, s->node, s->id, true);
			if (rc < 0)
				return rc;
			for (size_t k = first; k < out->n_checks; k++)
				if (strcmp(out->checks[k].status, "passing") != 0)
					pass = false;
			if (q->passing && !pass) {
				out->n_checks = first;
				continue;
			}
			out->services[out->n_services++] = *s;
		}
		return 0;
	}
	case CATALOG_VIEW_NODE:
	case CATALOG_VIEW_NODE_SERVICES: {
		struct collect c = {.a = a};

		out->watch_key = KEY_CATALOG;
		rc = max_index(txn, nodes_services, 2, &out->index);
		if (rc == 0)
			rc = add_node(txn, &b, name, &ok);
		if (rc < 0 || !ok)
			return rc;
		out->found = true;
		mp_writer_init(&c.keys);
		rc = scan_node(txn, STORE_SERVICES, name, &c);
		mp_writer_close(&c.keys);
		for (size_t i = 0; rc == 0 && i < c.n_svcs; i++)
			rc = add_svc(&b, &c.svcs[i]);
		return rc;
	}
	case CATALOG_VIEW_HEALTH_NODE: {
		struct collect c = {.a = a};

		out->watch_key = IDX_CHECKS;
		rc = max_index(txn, (const char *const[]){IDX_CHECKS}, 1, &out->index);
		mp_writer_init(&c.keys);
		if (rc == 0)
			rc = scan_node(txn, STORE_CHECKS, name, &c);
		mp_writer_close(&c.keys);
		for (size_t i = 0; rc == 0 && i < c.n_chks; i++)
			rc = add_chk(&b, &c.chks[i]);
		return rc;
	}
	case CATALOG_VIEW_HEALTH_CHECKS: {
		struct catalog_answer inst;

		out->watch_key = IDX_CHECKS;
		rc = max_index(txn, (const char *const[]){IDX_CHECKS}, 1, &out->index);
		if (rc == 0)
			rc = service_instances(txn, &b, q);
		if (rc < 0)
			return rc;
		inst = *out;
		for (size_t i = 0; rc == 0 && i < inst.n_services; i++)
			rc = health_checks_for(txn, &b, inst.services[i].node, inst.services[i].id,
					       false);
		out->n_services = 0;
		return rc;
	}
	case CATALOG_VIEW_HEALTH_STATE: {
		struct inst_scan is = {txn, &b, q, 0};

		if (!q->name || (strcmp(q->name, "any") && !status_ok(q->name)))
			return CAIRN_E_BADREQ;
		out->watch_key = IDX_CHECKS;
		rc = max_index(txn, (const char *const[]){IDX_CHECKS}, 1, &out->index);
		if (rc == 0)
			rc = store_scan_prefix(txn, STORE_CHECKS, "", 0, state_cb, &is);
		return rc;
	}
	}
	return CAIRN_E_BADREQ;
}
