/* Transactions: see txn.h. */
#include "txn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog.h"
#include "err.h"
#include "mp.h"
#include "session.h"
#include "store.h"

#define OP_FIELDS 8

/* ---- verbs ---------------------------------------------------------------- */

static const char *const kv_verbs[] = {
    [TXN_KV_SET] = "set",
    [TXN_KV_CAS] = "cas",
    [TXN_KV_LOCK] = "lock",
    [TXN_KV_UNLOCK] = "unlock",
    [TXN_KV_GET] = "get",
    [TXN_KV_GET_OR_EMPTY] = "get-or-empty",
    [TXN_KV_GET_TREE] = "get-tree",
    [TXN_KV_CHECK_INDEX] = "check-index",
    [TXN_KV_CHECK_SESSION] = "check-session",
    [TXN_KV_CHECK_NOT_EXISTS] = "check-not-exists",
    [TXN_KV_DELETE] = "delete",
    [TXN_KV_DELETE_TREE] = "delete-tree",
    [TXN_KV_DELETE_CAS] = "delete-cas",
};

static const char *const cat_verbs[] = {
    [TXN_CAT_GET] = "get",	 [TXN_CAT_SET] = "set",		    [TXN_CAT_CAS] = "cas",
    [TXN_CAT_DELETE] = "delete", [TXN_CAT_DELETE_CAS] = "delete-cas",
};

unsigned txn_verb_code(unsigned kind, const char *verb)
{
	const char *const *v = kind == TXN_KV ? kv_verbs : cat_verbs;
	size_t n = kind == TXN_KV ? sizeof(kv_verbs) / sizeof(kv_verbs[0])
				  : sizeof(cat_verbs) / sizeof(cat_verbs[0]);

	if (!verb || kind < TXN_KV || kind > TXN_CHECK)
		return 0;
	for (size_t i = 1; i < n; i++)
		if (strcmp(v[i], verb) == 0)
			return (unsigned)i;
	return 0;
}

static bool verb_writes(unsigned kind, unsigned verb)
{
	if (kind == TXN_KV)
		return verb == TXN_KV_SET || verb == TXN_KV_CAS || verb == TXN_KV_LOCK ||
		       verb == TXN_KV_UNLOCK || verb == TXN_KV_DELETE ||
		       verb == TXN_KV_DELETE_TREE || verb == TXN_KV_DELETE_CAS;
	return verb != 0 && verb != TXN_CAT_GET;
}

bool txn_op_writes(const struct proto_txn_op *op)
{
	/* Consul: a Node/Service/Check op with any verb but get writes. */
	if (op->kind != TXN_KV)
		return !op->verb || strcmp(op->verb, "get") != 0;
	return verb_writes(TXN_KV, txn_verb_code(TXN_KV, op->verb));
}

bool txn_writes(const struct proto_txn *t)
{
	for (size_t i = 0; i < t->ops.n; i++)
		if (txn_op_writes(&t->ops.v[i]))
			return true;
	return false;
}

/* ---- outcomes ------------------------------------------------------------- */

struct txn_outcome *txn_outcome_new(void)
{
	struct txn_outcome *o = calloc(1, sizeof(*o));

	if (o)
		arena_init(&o->a, 4096);
	return o;
}

void txn_outcome_free(struct txn_outcome *o)
{
	if (!o)
		return;
	arena_close(&o->a);
	free(o);
}

static int grow(struct arena *a, void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8;
	void *p = arena_zalloc(a, ncap * elem);
	if (!p)
		return -ENOMEM;
	if (n)
		memcpy(p, *arr, n * elem);
	*arr = p;
	*cap = ncap;
	return 0;
}

int txn_outcome_error(struct txn_outcome *o, size_t op_index, const char *what)
{
	struct proto_txn_error *e;

	if (grow(&o->a, (void **)&o->errors, &o->cap_errors, o->n_errors, sizeof(*o->errors)) < 0)
		return -ENOMEM;
	e = &o->errors[o->n_errors];
	e->op_index = op_index;
	e->what = arena_strdup(&o->a, what ? what : "");
	if (!e->what)
		return -ENOMEM;
	o->n_errors++;
	return 0;
}

static struct proto_txn_result *add_result(struct txn_outcome *o)
{
	struct proto_txn_result *r;

	if (grow(&o->a, (void **)&o->results, &o->cap_results, o->n_results,
		 sizeof(*o->results)) < 0)
		return NULL;
	r = &o->results[o->n_results++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* Go's %q for the plain strings keys and names are: quotes, with quote,
 * backslash and control bytes escaped. */
static const char *quote(struct arena *a, const char *s)
{
	size_t n = strlen(s ? s : ""), j = 0;
	char *out = arena_alloc(a, n * 4 + 3);

	if (!out)
		return "\"\"";
	out[j++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			out[j++] = '\\';
			out[j++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			j += (size_t)snprintf(out + j, 5, "\\x%02x", c);
		} else {
			out[j++] = (char)c;
		}
	}
	out[j++] = '"';
	out[j] = 0;
	return out;
}

/* ---- running operations ---------------------------------------------------- */

/* One decoded operation. Strings are NUL-terminated. */
struct op {
	unsigned kind, verb;
	const char *name; /* KV key / node name */
	const char *id;	  /* service / check ID */
	uint64_t index, flags;
	const char *session;
	const uint8_t *cmd; /* embedded write command */
	size_t cmd_len;
};

struct run {
	struct store_txn *t;
	uint64_t index;
	bool read_only;
	struct txn_outcome *o;
	struct mp_writer changes; /* [space u8][len u16 BE][key] per change */
	size_t i;		  /* the op running */
	int oom;
};

static void collect_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	struct run *ru = ctx;
	uint8_t hdr[3] = {(uint8_t)space, (uint8_t)(klen >> 8), (uint8_t)klen};

	if (klen > 0xffff)
		return;
	mp_write_raw(&ru->changes, hdr, sizeof(hdr));
	mp_write_raw(&ru->changes, key, klen);
}

static int fail(struct run *ru, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records op ru->i's error. Returns 0 or -ENOMEM. */
static int fail(struct run *ru, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return txn_outcome_error(ru->o, ru->i, buf);
}

/* Runs the op's embedded command through fsm_apply. */
static int apply_cmd(struct run *ru, const struct op *op, struct fsm_result *res)
{
	struct mp_reader r;

	memset(res, 0, sizeof(*res));
	if (ru->read_only || !op->cmd_len) {
		res->code = CAIRN_E_PROTO;
		return 0;
	}
	/* Never a transaction inside a transaction. */
	mp_reader_init(&r, op->cmd, op->cmd_len);
	(void)mp_read_array(&r);
	if (r.err || mp_read_u64(&r) == FSM_OP_TXN || r.err) {
		res->code = CAIRN_E_PROTO;
		return 0;
	}
	return fsm_apply(ru->t, ru->index, op->cmd, op->cmd_len, res, collect_change, ru);
}

static int kv_result(struct run *ru, const struct proto_kv_entry *e, bool keep_value)
{
	struct proto_txn_result *r = add_result(ru->o);
	struct proto_kv_entry *c;

	if (!r)
		return -ENOMEM;
	c = arena_alloc(&ru->o->a, sizeof(*c));
	if (!c)
		return -ENOMEM;
	*c = *e;
	if (!keep_value) {
		c->value.ptr = NULL;
		c->value.len = 0;
	}
	r->kv.v = c;
	r->kv.n = 1;
	return 0;
}

/* The entry at key, read back (value dropped) as a result. */
static int kv_read_back(struct run *ru, const char *key)
{
	struct fsm_kv_answer a;
	int rc = fsm_kv_get(ru->t, &ru->o->a, key, &a);

	if (rc < 0 || a.n_entries == 0)
		return rc;
	return kv_result(ru, &a.entries[0], false);
}

static const char *failed_why(const struct fsm_result *res)
{
	return res->code == CAIRN_E_PROTO ? "malformed operation" : "invalid operation";
}

/* Consul's txnKVS. */
static int run_kv(struct run *ru, const struct op *op)
{
	struct arena *a = &ru->o->a;
	const char *key = op->name ? op->name : "";
	const char *q = quote(a, key);
	struct fsm_kv_answer ans;
	struct fsm_result res;
	int rc;

	switch (op->verb) {
	case TXN_KV_SET:
	case TXN_KV_CAS:
	case TXN_KV_LOCK:
	case TXN_KV_UNLOCK:
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		if (op->verb == TXN_KV_LOCK && res.code == CAIRN_E_BADREQ)
			return fail(ru, "invalid session %s", quote(a, op->session));
		if (op->verb == TXN_KV_UNLOCK && res.code == CAIRN_E_BADREQ)
			res = (struct fsm_result){0}; /* Consul: not held by that session */
		else if (res.code)
			return fail(ru, "failed to set key %s: %s", q, failed_why(&res));
		if (!res.ok) {
			if (op->verb == TXN_KV_CAS)
				return fail(ru, "failed to set key %s, index is stale", q);
			if (op->verb == TXN_KV_LOCK)
				return fail(ru, "failed to lock key %s, lock is already held", q);
			if (op->verb == TXN_KV_UNLOCK)
				return fail(ru,
					    "failed to unlock key %s, lock isn't held, or is held by "
					    "another session",
					    q);
			return fail(ru, "failed to set key %s", q);
		}
		return kv_read_back(ru, key);
	case TXN_KV_DELETE:
	case TXN_KV_DELETE_TREE:
	case TXN_KV_DELETE_CAS:
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		if (res.code)
			return fail(ru, "failed to delete key %s: %s", q, failed_why(&res));
		if (!res.ok)
			return fail(ru, "failed to delete key %s, index is stale", q);
		return 0;
	case TXN_KV_GET:
	case TXN_KV_GET_OR_EMPTY:
	case TXN_KV_CHECK_INDEX:
	case TXN_KV_CHECK_SESSION:
	case TXN_KV_CHECK_NOT_EXISTS:
		rc = fsm_kv_get(ru->t, a, key, &ans);
		if (rc < 0)
			return rc;
		if (op->verb == TXN_KV_CHECK_NOT_EXISTS)
			return ans.n_entries ? fail(ru, "key %s exists", q) : 0;
		if (ans.n_entries == 0) {
			if (op->verb == TXN_KV_GET)
				return fail(ru, "key %s doesn't exist", q);
			if (op->verb == TXN_KV_CHECK_INDEX)
				return fail(ru, "failed to check index, key %s doesn't exist", q);
			if (op->verb == TXN_KV_CHECK_SESSION)
				return fail(ru, "failed to check session, key %s doesn't exist", q);
			/* get-or-empty: the op's own entry, without a value */
			struct proto_kv_entry e = {.key = key,
						   .flags = op->flags,
						   .modify_index = op->index,
						   .session = op->session};
			return kv_result(ru, &e, false);
		}
		if (op->verb == TXN_KV_CHECK_INDEX && ans.entries[0].modify_index != op->index)
			return fail(ru,
				    "failed index check for key %s, current modify index %llu != "
				    "%llu",
				    q, (unsigned long long)ans.entries[0].modify_index,
				    (unsigned long long)op->index);
		if (op->verb == TXN_KV_CHECK_SESSION) {
			const char *cur = ans.entries[0].session ? ans.entries[0].session : "";
			const char *want = op->session ? op->session : "";

			if (strcmp(cur, want) != 0)
				return fail(ru,
					    "failed session check for key %s, current session %s "
					    "!= %s",
					    q, quote(a, cur), quote(a, want));
		}
		return kv_result(ru, &ans.entries[0],
				 op->verb == TXN_KV_GET || op->verb == TXN_KV_GET_OR_EMPTY);
	case TXN_KV_GET_TREE:
		rc = fsm_kv_list(ru->t, a, key, &ans);
		for (size_t i = 0; rc == 0 && i < ans.n_entries; i++)
			rc = kv_result(ru, &ans.entries[i], true);
		return rc;
	default:
		return fail(ru, "unknown KV verb");
	}
}

static int node_result(struct run *ru, struct proto_node *n)
{
	struct proto_txn_result *r = add_result(ru->o);

	if (!r)
		return -ENOMEM;
	r->node.v = n;
	r->node.n = 1;
	return 0;
}

/* Consul's txnNode (nodes by name). */
static int run_node(struct run *ru, const struct op *op)
{
	struct arena *a = &ru->o->a;
	const char *name = op->name ? op->name : "";
	const char *q = quote(a, name);
	struct proto_node *n;
	struct fsm_result res;
	uint64_t idx;
	int rc;

	rc = fsm_node_get(ru->t, a, name, &n, &idx);
	if (rc < 0)
		return rc;
	switch (op->verb) {
	case TXN_CAT_GET:
		return n ? node_result(ru, n) : fail(ru, "node %s doesn't exist", q);
	case TXN_CAT_CAS:
		/* Consul's ensureNodeCASTxn: index 0 means "only if absent" */
		if ((op->index == 0 && n) || (op->index != 0 && (!n || n->modify_index != op->index)))
			return fail(ru, "failed to set node %s, index is stale", q);
		/* fall through */
	case TXN_CAT_SET:
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		if (res.code)
			return fail(ru, "failed to set node %s: %s", q,
				    res.code == CAIRN_E_BADREQ ? "node name and address are required"
							       : failed_why(&res));
		rc = fsm_node_get(ru->t, a, name, &n, &idx);
		if (rc < 0 || !n)
			return rc;
		return node_result(ru, n);
	case TXN_CAT_DELETE_CAS:
		if (!n || n->modify_index != op->index)
			return fail(ru, "failed to delete node %s, index is stale", q);
		/* fall through */
	case TXN_CAT_DELETE:
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		return res.code ? fail(ru, "failed to delete node %s: %s", q, failed_why(&res)) : 0;
	default:
		return fail(ru, "unknown Node verb");
	}
}

/* The service id on node (catalog's node-services view), or NULL. */
static int service_find(struct run *ru, const char *node, const char *id,
			struct proto_service **out)
{
	struct proto_catalog_query cq = {.view = CATALOG_VIEW_NODE_SERVICES, .name = node};
	struct catalog_answer ans;
	int rc = catalog_query(ru->t, &ru->o->a, &cq, &ans);

	*out = NULL;
	if (rc < 0)
		return rc == CAIRN_E_BADREQ ? 0 : rc;
	for (size_t i = 0; i < ans.n_services; i++)
		if (ans.services[i].id && strcmp(ans.services[i].id, id) == 0)
			*out = &ans.services[i];
	return 0;
}

static int check_find(struct run *ru, const char *node, const char *id, struct proto_check **out)
{
	struct proto_catalog_query cq = {.view = CATALOG_VIEW_HEALTH_NODE, .name = node};
	struct catalog_answer ans;
	int rc = catalog_query(ru->t, &ru->o->a, &cq, &ans);

	*out = NULL;
	if (rc < 0)
		return rc == CAIRN_E_BADREQ ? 0 : rc;
	for (size_t i = 0; i < ans.n_checks; i++)
		if (ans.checks[i].check_id && strcmp(ans.checks[i].check_id, id) == 0)
			*out = &ans.checks[i];
	return 0;
}

/* Consul's txnService and txnCheck, which share their shape. */
static int run_svc_or_check(struct run *ru, const struct op *op)
{
	struct arena *a = &ru->o->a;
	bool svc = op->kind == TXN_SERVICE;
	const char *what = svc ? "service" : "check";
	const char *qn = quote(a, op->name ? op->name : ""), *qi = quote(a, op->id ? op->id : "");
	struct proto_service *s = NULL;
	struct proto_check *c = NULL;
	struct proto_node *n;
	struct fsm_result res;
	uint64_t idx, cur = 0;
	bool exists;
	int rc;

	if (!op->name || !*op->name || !op->id || !*op->id) {
		if (op->verb < TXN_CAT_GET || op->verb > TXN_CAT_DELETE_CAS)
			return fail(ru, "unknown %s verb", svc ? "Service" : "Check");
		return fail(ru, "%s operation needs a node name and an ID", what);
	}
	rc = svc ? service_find(ru, op->name, op->id, &s) : check_find(ru, op->name, op->id, &c);
	if (rc < 0)
		return rc;
	exists = svc ? s != NULL : c != NULL;
	if (exists)
		cur = svc ? s->modify_index : c->modify_index;
	switch (op->verb) {
	case TXN_CAT_GET:
		if (!exists)
			return fail(ru, "%s %s on node %s doesn't exist", what, qi, qn);
		break;
	case TXN_CAT_CAS:
		if ((op->index == 0 && exists) || (op->index != 0 && (!exists || cur != op->index)))
			return fail(ru, "failed to set %s %s on node %s, index is stale", what, qi,
				    qn);
		/* fall through */
	case TXN_CAT_SET:
		rc = fsm_node_get(ru->t, a, op->name, &n, &idx);
		if (rc < 0)
			return rc;
		if (!n)
			return fail(ru, "Missing node registration");
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		if (res.code == CAIRN_E_BADREQ)
			return fail(ru, svc ? "Missing service name" : "Missing service registration");
		if (res.code)
			return fail(ru, "failed to set %s %s on node %s: %s", what, qi, qn,
				    failed_why(&res));
		rc = svc ? service_find(ru, op->name, op->id, &s)
			 : check_find(ru, op->name, op->id, &c);
		if (rc < 0)
			return rc;
		break;
	case TXN_CAT_DELETE_CAS:
		if (!exists || cur != op->index)
			return fail(ru, "failed to delete %s %s on node %s, index is stale", what, qi,
				    qn);
		/* fall through */
	case TXN_CAT_DELETE:
		rc = apply_cmd(ru, op, &res);
		if (rc < 0)
			return rc;
		return res.code ? fail(ru, "failed to delete %s %s on node %s: %s", what, qi, qn,
				       failed_why(&res))
				: 0;
	default:
		return fail(ru, "unknown %s verb", svc ? "Service" : "Check");
	}
	if (!s && !c)
		return 0;
	struct proto_txn_result *r = add_result(ru->o);
	if (!r)
		return -ENOMEM;
	if (s) {
		r->service.v = s;
		r->service.n = 1;
	} else {
		r->check.v = c;
		r->check.n = 1;
	}
	return 0;
}

/* Runs one op; a refusal is recorded in ru->o. */
static int run_one(struct run *ru, const struct op *op)
{
	int rc;

	switch (op->kind) {
	case TXN_KV:
		rc = run_kv(ru, op);
		break;
	case TXN_NODE:
		rc = run_node(ru, op);
		break;
	case TXN_SERVICE:
	case TXN_CHECK:
		rc = run_svc_or_check(ru, op);
		break;
	default:
		rc = fail(ru, "no operation specified");
		break;
	}
	if (rc == CAIRN_E_BADREQ) /* a view refused the name: not a store failure */
		rc = fail(ru, "invalid operation");
	return rc;
}

/* Runs every op (all of them, so that every error is reported). */
static int run_ops(struct run *ru, const struct op *ops, size_t n)
{
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		ru->i = i;
		rc = run_one(ru, &ops[i]);
	}
	return rc;
}

/* ---- the waiting requests' outcomes ---------------------------------------- */

struct wanted {
	uint64_t index;
	struct txn_outcome *o;
};

/* Few entries (one per write transaction in flight): a linear scan. */
static struct wanted *wanted;
static size_t n_wanted, cap_wanted;

static struct wanted *wanted_find(uint64_t index)
{
	for (size_t i = 0; i < n_wanted; i++)
		if (wanted[i].index == index)
			return &wanted[i];
	return NULL;
}

int txn_results_want(uint64_t index)
{
	if (wanted_find(index))
		return 0;
	if (n_wanted == cap_wanted) {
		size_t cap = cap_wanted ? cap_wanted * 2 : 16;
		struct wanted *w = realloc(wanted, cap * sizeof(*w));

		if (!w)
			return -ENOMEM;
		wanted = w;
		cap_wanted = cap;
	}
	wanted[n_wanted++] = (struct wanted){index, NULL};
	return 0;
}

struct txn_outcome *txn_results_take(uint64_t index)
{
	struct wanted *w = wanted_find(index);
	struct txn_outcome *o;

	if (!w)
		return NULL;
	o = w->o;
	*w = wanted[--n_wanted];
	if (n_wanted == 0) {
		free(wanted);
		wanted = NULL;
		cap_wanted = 0;
	}
	return o;
}

/* ---- encoding --------------------------------------------------------------- */

static void write_op_head(struct mp_writer *w, unsigned kind, unsigned verb, const char *name,
			  const char *id, uint64_t index, uint64_t flags, const char *session)
{
	mp_write_array(w, OP_FIELDS);
	mp_write_u64(w, kind);
	mp_write_u64(w, verb);
	mp_write_cstr_or_nil(w, name);
	mp_write_cstr_or_nil(w, id);
	mp_write_u64(w, index);
	mp_write_u64(w, flags);
	mp_write_cstr_or_nil(w, session && *session ? session : NULL);
}

/* Validates one op and writes it; a refusal goes to errs. */
static int encode_op(struct mp_writer *w, struct mp_writer *sub, const struct proto_txn_op *op,
		     size_t i, const char *dc, struct session_lock_delays *ld, uint64_t now,
		     struct txn_outcome *errs)
{
	unsigned verb = txn_verb_code((unsigned)op->kind, op->verb);
	const char *name = NULL, *id = NULL;
	uint64_t index = op->index;
	char buf[600];

	mp_writer_reset(sub);
	switch (op->kind) {
	case TXN_KV: {
		const char *key = op->key ? op->key : "";
		bool tree = verb == TXN_KV_GET_TREE || verb == TXN_KV_DELETE_TREE;

		if (!verb) {
			snprintf(buf, sizeof(buf), "unknown KV verb \"%.400s\"",
				 op->verb ? op->verb : "");
			return txn_outcome_error(errs, i, buf);
		}
		if ((!*key && !tree) || strlen(key) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i,
						 *key ? "Key too long (max 511 bytes)" : "Missing key name");
		if ((verb == TXN_KV_LOCK || verb == TXN_KV_UNLOCK) &&
		    (!op->session || !*op->session || strlen(op->session) > 64))
			return txn_outcome_error(errs, i, "missing session");
		if (verb == TXN_KV_LOCK && ld && session_lock_delayed(ld, key, now)) {
			snprintf(buf, sizeof(buf), "failed to lock key \"%.500s\" due to lock delay",
				 key);
			return txn_outcome_error(errs, i, buf);
		}
		name = key;
		if (verb == TXN_KV_SET || verb == TXN_KV_CAS)
			fsm_cmd_kv_set(sub, key, op->value.ptr, op->value.len, op->flags,
				       verb == TXN_KV_CAS, op->index);
		else if (verb == TXN_KV_LOCK || verb == TXN_KV_UNLOCK)
			fsm_cmd_kv_lock(sub, key, op->value.ptr, op->value.len, op->flags,
					op->session, verb == TXN_KV_LOCK);
		else if (verb == TXN_KV_DELETE || verb == TXN_KV_DELETE_TREE ||
			 verb == TXN_KV_DELETE_CAS)
			fsm_cmd_kv_delete(sub, key, verb == TXN_KV_DELETE_TREE,
					  verb == TXN_KV_DELETE_CAS, op->index);
		break;
	}
	case TXN_NODE: {
		struct proto_node n;

		if (!verb)
			return txn_outcome_error(errs, i, "unknown Node verb");
		if (op->node.n != 1 || !op->node.v[0].node || !*op->node.v[0].node ||
		    strlen(op->node.v[0].node) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i, "Must provide node");
		n = op->node.v[0];
		name = n.node;
		if (!n.datacenter || !*n.datacenter)
			n.datacenter = dc;
		else if (dc && strcasecmp(n.datacenter, dc) != 0)
			return txn_outcome_error(errs, i, "Node datacenter does not match");
		if (verb == TXN_CAT_SET || verb == TXN_CAT_CAS)
			fsm_cmd_node_register(sub, &n);
		else if (verb == TXN_CAT_DELETE || verb == TXN_CAT_DELETE_CAS)
			catalog_cmd_deregister(sub, n.node, NULL, NULL);
		break;
	}
	case TXN_SERVICE: {
		struct proto_service s;
		struct proto_node n = {0};

		if (!verb)
			return txn_outcome_error(errs, i, "unknown Service verb");
		if (!op->key || !*op->key || strlen(op->key) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i, "Must provide node");
		if (op->service.n != 1)
			return txn_outcome_error(errs, i, "Must provide service");
		s = op->service.v[0];
		if (!s.id || !*s.id)
			s.id = s.service;
		if (!s.id || !*s.id || strlen(s.id) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i, "Must provide service ID");
		name = op->key;
		id = s.id;
		s.node = op->key;
		n.node = op->key;
		if (verb == TXN_CAT_SET || verb == TXN_CAT_CAS)
			catalog_cmd_register(sub, &n, true, &s, NULL, 0);
		else if (verb == TXN_CAT_DELETE || verb == TXN_CAT_DELETE_CAS)
			catalog_cmd_deregister(sub, op->key, s.id, NULL);
		break;
	}
	case TXN_CHECK: {
		struct proto_check c;
		struct proto_node n = {0};

		if (!verb)
			return txn_outcome_error(errs, i, "unknown Check verb");
		if (op->check.n != 1 || !op->check.v[0].node || !*op->check.v[0].node ||
		    strlen(op->check.v[0].node) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i, "Must provide node");
		c = op->check.v[0];
		if (!c.check_id || !*c.check_id || strlen(c.check_id) > STORE_KEY_MAX)
			return txn_outcome_error(errs, i, "Must provide check ID");
		name = c.node;
		id = c.check_id;
		n.node = c.node;
		if (verb == TXN_CAT_SET || verb == TXN_CAT_CAS)
			catalog_cmd_register(sub, &n, true, NULL, &c, 1);
		else if (verb == TXN_CAT_DELETE || verb == TXN_CAT_DELETE_CAS)
			catalog_cmd_deregister(sub, c.node, NULL, c.check_id);
		break;
	}
	default:
		return txn_outcome_error(errs, i, "no operation specified");
	}
	if (sub->err)
		return sub->err;
	write_op_head(w, (unsigned)op->kind, verb, name, id, index, op->flags, op->session);
	mp_write_bin(w, sub->buf, sub->len);
	return w->err;
}

int txn_cmd_encode(struct mp_writer *w, const struct proto_txn *t, const char *dc,
		   struct session_lock_delays *lock_delays, uint64_t now, struct txn_outcome *errs)
{
	struct mp_writer sub;
	int rc = 0;

	mp_writer_reset(w);
	if (t->ops.n == 0 || t->ops.n > TXN_MAX_OPS)
		return txn_outcome_error(errs, 0,
					 t->ops.n ? "Transaction contains too many operations"
						  : "Transaction contains no operations");
	mp_write_array(w, 2);
	mp_write_u64(w, FSM_OP_TXN);
	mp_write_array(w, (uint32_t)t->ops.n);
	mp_writer_init(&sub);
	for (size_t i = 0; i < t->ops.n && rc == 0; i++)
		rc = encode_op(w, &sub, &t->ops.v[i], i, dc, lock_delays, now, errs);
	mp_writer_close(&sub);
	return rc;
}

/* ---- apply ------------------------------------------------------------------ */

static const char *dup_str(struct arena *a, struct mp_reader *r, bool *bad)
{
	size_t n;
	const char *s = mp_read_str(r, &n);

	if (r->err || !s)
		return NULL;
	if (memchr(s, 0, n)) {
		*bad = true;
		return NULL;
	}
	const char *d = arena_strndup(a, s, n);
	if (!d)
		*bad = true;
	return d;
}

int txn_apply(struct store_txn *txn, uint64_t index, struct mp_reader *r, struct fsm_result *out,
	      fsm_change_fn change, void *ctx)
{
	struct run ru = {.index = index};
	struct store_txn *nested = NULL;
	struct op *ops = NULL;
	struct wanted *w;
	uint32_t n;
	bool bad = false;
	int rc = 0;

	ru.o = txn_outcome_new();
	if (!ru.o)
		return -ENOMEM;
	mp_writer_init(&ru.changes);
	n = mp_read_array(r);
	if (r->err || n == 0 || n > TXN_MAX_OPS || n > r->len) {
		out->code = CAIRN_E_PROTO;
		goto out;
	}
	ops = arena_zalloc(&ru.o->a, n * sizeof(*ops));
	if (!ops) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < n && !r->err && !bad; i++) {
		struct op *op = &ops[i];

		if (mp_read_array(r) != OP_FIELDS)
			r->err = -EINVAL;
		op->kind = (unsigned)mp_read_u64(r);
		op->verb = (unsigned)mp_read_u64(r);
		op->name = dup_str(&ru.o->a, r, &bad);
		op->id = dup_str(&ru.o->a, r, &bad);
		op->index = mp_read_u64(r);
		op->flags = mp_read_u64(r);
		op->session = dup_str(&ru.o->a, r, &bad);
		op->cmd = mp_read_bin(r, &op->cmd_len);
	}
	if (bad || !mp_reader_done(r)) {
		out->code = CAIRN_E_PROTO;
		goto out;
	}
	rc = store_txn_begin_nested(txn, &nested);
	if (rc < 0)
		goto out;
	ru.t = nested;
	rc = run_ops(&ru, ops, n);
	if (rc == 0 && ru.changes.err)
		rc = ru.changes.err;
	if (rc < 0 || ru.o->n_errors) {
		store_txn_abort(nested);
		ru.o->n_results = 0; /* Consul: Results null when rolled back */
		goto out;
	}
	rc = store_txn_commit(nested);
	if (rc < 0)
		goto out;
	out->ok = true;
	for (size_t pos = 0; change && pos + 3 <= ru.changes.len;) {
		const uint8_t *b = ru.changes.buf + pos;
		size_t klen = ((size_t)b[1] << 8) | b[2];

		change(ctx, (enum fsm_space)b[0], (const char *)b + 3, klen);
		pos += 3 + klen;
	}
out:
	mp_writer_close(&ru.changes);
	if (rc == 0 && (w = wanted_find(index))) {
		txn_outcome_free(w->o);
		w->o = ru.o;
		ru.o = NULL;
	}
	txn_outcome_free(ru.o);
	return rc;
}

/* ---- read-only -------------------------------------------------------------- */

int txn_read(struct store_txn *txn, const struct proto_txn *t, struct txn_outcome *out)
{
	struct run ru = {.t = txn, .read_only = true, .o = out};
	struct op *ops;
	int rc;

	if (t->ops.n == 0 || t->ops.n > TXN_MAX_OPS)
		return txn_outcome_error(out, 0,
					 t->ops.n ? "Transaction contains too many operations"
						  : "Transaction contains no operations");
	ops = arena_zalloc(&out->a, t->ops.n * sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	for (size_t i = 0; i < t->ops.n; i++) {
		const struct proto_txn_op *p = &t->ops.v[i];
		struct op *op = &ops[i];

		op->kind = (unsigned)p->kind;
		op->verb = txn_verb_code((unsigned)p->kind, p->verb);
		op->index = p->index;
		op->flags = p->flags;
		op->session = p->session;
		if (p->kind == TXN_KV) {
			op->name = p->key ? p->key : "";
		} else if (p->kind == TXN_NODE && p->node.n == 1) {
			op->name = p->node.v[0].node;
		} else if (p->kind == TXN_SERVICE && p->service.n == 1) {
			op->name = p->key;
			op->id = p->service.v[0].id && *p->service.v[0].id ? p->service.v[0].id
									    : p->service.v[0].service;
		} else if (p->kind == TXN_CHECK && p->check.n == 1) {
			op->name = p->check.v[0].node;
			op->id = p->check.v[0].check_id;
		}
		ru.i = i;
		if (op->kind == TXN_KV && !op->verb)
			rc = fail(&ru, "unknown KV verb %s", quote(&out->a, p->verb ? p->verb : ""));
		else
			rc = run_one(&ru, op);
		if (rc < 0)
			return rc;
	}
	if (out->n_errors)
		out->n_results = 0; /* Consul: Results null when rolled back */
	return 0;
}
