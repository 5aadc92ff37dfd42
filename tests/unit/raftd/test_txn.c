/* Transactions (raftd/txn.c) on LMDB: every KV verb, the Node, Service
 * and Check verbs, all-or-nothing rollback (values, indexes and change
 * notifications untouched), Consul's error texts, the limits checked
 * before proposing, and read-only transactions. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "catalog.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "session.h"
#include "store.h"
#include "txn.h"
#include "tmpstore.h"

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static int n_changed;

#define SESS "11111111-2222-3333-4444-555555555555"
#define SESS2 "99999999-2222-3333-4444-555555555555"

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	(void)space;
	(void)key;
	(void)klen;
	n_changed++;
}

/* Applies the command in w at index; returns the result. */
static struct fsm_result apply_w(uint64_t index)
{
	struct store_txn *txn;
	struct fsm_result res;

	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, w.buf, w.len, &res, on_change, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

/* n1 with a passing serfHealth (index 1), and sessions SESS, SESS2 on it
 * (indexes 2, 3). */
static void seed(void)
{
	struct proto_node n = {.node = "n1", .address = "10.0.0.1"};
	struct proto_check c = {.check_id = "serfHealth", .name = "Serf Health Status",
				.status = "passing"};
	const char *js = "{\"Name\":\"a\",\"Node\":\"n1\",\"LockDelay\":0,"
			 "\"Behavior\":\"release\",\"TTL\":\"\",\"NodeChecks\":[\"serfHealth\"],"
			 "\"ServiceChecks\":null}";

	catalog_cmd_register(&w, &n, false, NULL, &c, 1);
	ck_assert_int_eq(apply_w(1).code, 0);
	session_cmd_create(&w, SESS, js);
	ck_assert_int_eq(apply_w(2).code, 0);
	session_cmd_create(&w, SESS2, js);
	ck_assert_int_eq(apply_w(3).code, 0);
}

static void setup(void)
{
	st = tmpstore_open("txn", dir, sizeof(dir));
	arena_init(&ar, 0);
	mp_writer_init(&w);
	seed();
}

static void teardown(void)
{
	mp_writer_close(&w);
	arena_close(&ar);
	tmpstore_close(st, dir);
}

/* ---- building operations ----------------------------------------------- */

static struct proto_txn_op kv(const char *verb, const char *key, const char *value,
			      uint64_t flags, uint64_t index, const char *session)
{
	struct proto_txn_op op = {.kind = TXN_KV, .verb = verb, .key = key, .flags = flags,
				  .index = index, .session = session};

	if (value) {
		op.value.ptr = (const uint8_t *)value;
		op.value.len = strlen(value);
	}
	return op;
}

/* Runs ops as a write transaction at index (encode, apply, commit) and
 * returns its outcome (caller frees). */
static struct txn_outcome *run_at(struct proto_txn_op *ops, size_t n, uint64_t index)
{
	struct proto_txn t = {.ops = {ops, n}};
	struct txn_outcome *o = txn_outcome_new();
	struct fsm_result res;

	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", NULL, 0, o), 0);
	if (o->n_errors)
		return o; /* refused before proposing */
	txn_outcome_free(o);
	ck_assert_int_eq(txn_results_want(index), 0);
	n_changed = 0;
	res = apply_w(index);
	ck_assert_int_eq(res.code, 0);
	o = txn_results_take(index);
	ck_assert_ptr_nonnull(o);
	ck_assert(res.ok == (o->n_errors == 0));
	ck_assert(txn_results_take(index) == NULL); /* taken once */
	return o;
}

static struct txn_outcome *run_read(struct proto_txn_op *ops, size_t n)
{
	struct proto_txn t = {.ops = {ops, n}};
	struct txn_outcome *o = txn_outcome_new();
	struct store_txn *txn;

	ck_assert(!txn_writes(&t));
	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(txn_read(txn, &t, o), 0);
	store_txn_abort(txn);
	return o;
}

/* The stored entry of key (NULL when missing) and the KV table's index. */
static struct proto_kv_entry *entry(const char *key, uint64_t *kv_index)
{
	struct store_txn *txn;
	struct fsm_kv_answer a, missing;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	if (kv_index) {
		ck_assert_int_eq(fsm_kv_get(txn, &ar, "\x01no-such-key", &missing), 0);
		*kv_index = missing.index;
	}
	store_txn_abort(txn);
	return a.n_entries ? &a.entries[0] : NULL;
}

static void assert_value(const struct proto_kv_entry *e, const char *v)
{
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->value.len, strlen(v));
	ck_assert(memcmp(e->value.ptr, v, e->value.len) == 0);
}

/* ---- KV ------------------------------------------------------------------ */

START_TEST(kv_set_cas_get_results)
{
	struct proto_txn_op ops[] = {
	    kv("set", "a", "1", 7, 0, NULL),
	    kv("cas", "b", "2", 0, 0, NULL), /* index 0: only if absent */
	    kv("get", "a", NULL, 0, 0, NULL),
	};
	struct txn_outcome *o = run_at(ops, 3, 10);
	uint64_t kvi;

	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 3);
	/* set and cas: the entry without its value, at the transaction's index */
	ck_assert_str_eq(o->results[0].kv.v[0].key, "a");
	ck_assert_uint_eq(o->results[0].kv.v[0].flags, 7);
	ck_assert_uint_eq(o->results[0].kv.v[0].value.len, 0);
	ck_assert_uint_eq(o->results[0].kv.v[0].create_index, 10);
	ck_assert_uint_eq(o->results[0].kv.v[0].modify_index, 10);
	ck_assert_str_eq(o->results[1].kv.v[0].key, "b");
	ck_assert_uint_eq(o->results[1].kv.v[0].value.len, 0);
	/* get: with the value, seeing the set before it */
	assert_value(&o->results[2].kv.v[0], "1");
	txn_outcome_free(o);
	assert_value(entry("a", &kvi), "1");
	assert_value(entry("b", NULL), "2");
	ck_assert_uint_eq(kvi, 10);
	ck_assert_int_eq(n_changed, 2);

	/* cas at the right index moves it; cas 0 on an existing key fails */
	struct proto_txn_op ops2[] = {kv("cas", "a", "3", 0, 10, NULL)};
	o = run_at(ops2, 1, 11);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->results[0].kv.v[0].modify_index, 11);
	ck_assert_uint_eq(o->results[0].kv.v[0].create_index, 10);
	txn_outcome_free(o);
	struct proto_txn_op ops3[] = {kv("cas", "a", "4", 0, 0, NULL)};
	o = run_at(ops3, 1, 12);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_uint_eq(o->errors[0].op_index, 0);
	ck_assert_str_eq(o->errors[0].what, "failed to set key \"a\", index is stale");
	txn_outcome_free(o);
	assert_value(entry("a", &kvi), "3");
	ck_assert_uint_eq(kvi, 11);
}
END_TEST

START_TEST(failed_check_changes_nothing)
{
	struct proto_txn_op seedops[] = {kv("set", "x", "1", 0, 0, NULL),
					 kv("set", "t/1", "a", 0, 0, NULL)};
	struct txn_outcome *o = run_at(seedops, 2, 10);
	uint64_t kvi;

	txn_outcome_free(o);
	/* writes first, then a failing check: everything is rolled back */
	struct proto_txn_op ops[] = {
	    kv("set", "x", "2", 0, 0, NULL),	 kv("set", "y", "new", 0, 0, NULL),
	    kv("delete-tree", "t/", NULL, 0, 0, NULL), kv("check-index", "x", NULL, 0, 9, NULL),
	    kv("get", "missing", NULL, 0, 0, NULL),
	};
	o = run_at(ops, 5, 20);
	ck_assert_uint_eq(o->n_results, 0);
	/* every failing op is reported, in order */
	ck_assert_uint_eq(o->n_errors, 2);
	ck_assert_uint_eq(o->errors[0].op_index, 3);
	ck_assert_str_eq(o->errors[0].what,
			 "failed index check for key \"x\", current modify index 20 != 9");
	ck_assert_uint_eq(o->errors[1].op_index, 4);
	ck_assert_str_eq(o->errors[1].what, "key \"missing\" doesn't exist");
	txn_outcome_free(o);
	ck_assert_int_eq(n_changed, 0); /* no watcher woken */
	struct proto_kv_entry *x = entry("x", &kvi);
	assert_value(x, "1");
	ck_assert_uint_eq(x->modify_index, 10);
	ck_assert_ptr_null(entry("y", NULL));
	assert_value(entry("t/1", NULL), "a");
	ck_assert_uint_eq(kvi, 10); /* the table's index did not move */
}
END_TEST

START_TEST(kv_reads_and_checks)
{
	struct proto_txn_op seedops[] = {kv("set", "d/a", "A", 0, 0, NULL),
					 kv("set", "d/b", "B", 3, 0, NULL)};
	txn_outcome_free(run_at(seedops, 2, 10));

	struct proto_txn_op ops[] = {
	    kv("get-tree", "d/", NULL, 0, 0, NULL),
	    kv("get-or-empty", "d/none", NULL, 5, 42, NULL),
	    kv("check-index", "d/a", NULL, 0, 10, NULL),
	    kv("check-not-exists", "d/none", NULL, 0, 0, NULL),
	    kv("check-session", "d/a", NULL, 0, 0, NULL), /* no session == "" */
	};
	struct txn_outcome *o = run_read(ops, 5);

	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 5); /* 2 from get-tree, none from check-not-exists */
	assert_value(&o->results[0].kv.v[0], "A");
	assert_value(&o->results[1].kv.v[0], "B");
	ck_assert_str_eq(o->results[2].kv.v[0].key, "d/none");
	ck_assert_uint_eq(o->results[2].kv.v[0].flags, 5);
	ck_assert_uint_eq(o->results[2].kv.v[0].modify_index, 42);
	ck_assert_uint_eq(o->results[2].kv.v[0].create_index, 0);
	ck_assert_uint_eq(o->results[2].kv.v[0].value.len, 0);
	ck_assert_str_eq(o->results[3].kv.v[0].key, "d/a");
	ck_assert_uint_eq(o->results[3].kv.v[0].value.len, 0); /* checks drop the value */
	ck_assert_str_eq(o->results[4].kv.v[0].key, "d/a");
	txn_outcome_free(o);

	struct proto_txn_op bad[] = {
	    kv("check-not-exists", "d/a", NULL, 0, 0, NULL),
	    kv("check-index", "d/none", NULL, 0, 1, NULL),
	    kv("check-session", "d/none", NULL, 0, 0, SESS),
	    kv("check-session", "d/a", NULL, 0, 0, SESS),
	    kv("get", "d/none", NULL, 0, 0, NULL),
	    kv("frobnicate", "d/a", NULL, 0, 0, NULL),
	};
	o = run_read(bad, 6);
	ck_assert_uint_eq(o->n_errors, 6);
	ck_assert_str_eq(o->errors[0].what, "key \"d/a\" exists");
	ck_assert_str_eq(o->errors[1].what, "failed to check index, key \"d/none\" doesn't exist");
	ck_assert_str_eq(o->errors[2].what,
			 "failed to check session, key \"d/none\" doesn't exist");
	ck_assert_str_eq(o->errors[3].what, "failed session check for key \"d/a\", current session "
					    "\"\" != \"" SESS "\"");
	ck_assert_str_eq(o->errors[4].what, "key \"d/none\" doesn't exist");
	ck_assert_uint_eq(o->errors[5].op_index, 5);
	ck_assert_str_eq(o->errors[5].what, "unknown KV verb \"frobnicate\"");
	txn_outcome_free(o);
}
END_TEST

START_TEST(kv_deletes)
{
	struct proto_txn_op seedops[] = {kv("set", "p/a", "A", 0, 0, NULL),
					 kv("set", "p/b", "B", 0, 0, NULL),
					 kv("set", "q", "Q", 0, 0, NULL), kv("set", "r", "R", 0, 0, NULL)};
	txn_outcome_free(run_at(seedops, 4, 10));
	uint64_t kvi;

	/* delete-cas at a stale index fails and rolls back the others */
	struct proto_txn_op stale[] = {kv("delete-tree", "p/", NULL, 0, 0, NULL),
				       kv("delete-cas", "q", NULL, 0, 3, NULL)};
	struct txn_outcome *o = run_at(stale, 2, 11);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_str_eq(o->errors[0].what, "failed to delete key \"q\", index is stale");
	txn_outcome_free(o);
	ck_assert_ptr_nonnull(entry("p/a", NULL));

	struct proto_txn_op ops[] = {kv("delete-tree", "p/", NULL, 0, 0, NULL),
				     kv("delete-cas", "q", NULL, 0, 10, NULL),
				     kv("delete", "r", NULL, 0, 0, NULL),
				     kv("delete", "never", NULL, 0, 0, NULL)};
	o = run_at(ops, 4, 12);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 0); /* deletes add no result */
	txn_outcome_free(o);
	ck_assert_ptr_null(entry("p/a", NULL));
	ck_assert_ptr_null(entry("p/b", NULL));
	ck_assert_ptr_null(entry("q", NULL));
	ck_assert_ptr_null(entry("r", &kvi));
	ck_assert_uint_eq(kvi, 12);
}
END_TEST

START_TEST(kv_lock_unlock)
{
	struct proto_txn_op lock[] = {kv("lock", "l", "me", 0, 0, SESS),
				      kv("check-session", "l", NULL, 0, 0, SESS)};
	struct txn_outcome *o = run_at(lock, 2, 10);

	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->results[0].kv.v[0].lock_index, 1);
	ck_assert_str_eq(o->results[0].kv.v[0].session, SESS);
	ck_assert_str_eq(o->results[1].kv.v[0].session, SESS);
	txn_outcome_free(o);

	/* held by SESS: SESS2 can neither lock nor unlock; re-lock keeps LockIndex */
	struct proto_txn_op other[] = {kv("lock", "l", "x", 0, 0, SESS2)};
	o = run_at(other, 1, 11);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_str_eq(o->errors[0].what, "failed to lock key \"l\", lock is already held");
	txn_outcome_free(o);
	struct proto_txn_op other_un[] = {kv("unlock", "l", "x", 0, 0, SESS2)};
	o = run_at(other_un, 1, 12);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_str_eq(o->errors[0].what, "failed to unlock key \"l\", lock isn't held, or is "
					    "held by another session");
	txn_outcome_free(o);
	struct proto_txn_op relock[] = {kv("lock", "l", "again", 0, 0, SESS)};
	o = run_at(relock, 1, 13);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->results[0].kv.v[0].lock_index, 1);
	txn_outcome_free(o);

	struct proto_txn_op bad[] = {kv("lock", "m", "x", 0, 0, "no-such-session")};
	o = run_at(bad, 1, 14);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_str_eq(o->errors[0].what, "invalid session \"no-such-session\"");
	txn_outcome_free(o);

	struct proto_txn_op un[] = {kv("unlock", "l", "bye", 0, 0, SESS)};
	o = run_at(un, 1, 15);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_ptr_null(o->results[0].kv.v[0].session);
	ck_assert_uint_eq(o->results[0].kv.v[0].lock_index, 1);
	txn_outcome_free(o);
	assert_value(entry("l", NULL), "bye");

	/* a second acquisition bumps LockIndex, as ?acquire does */
	struct proto_txn_op lock2[] = {kv("lock", "l", "2", 0, 0, SESS2)};
	o = run_at(lock2, 1, 16);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->results[0].kv.v[0].lock_index, 2);
	txn_outcome_free(o);
}
END_TEST

START_TEST(lock_delay_refused_before_proposing)
{
	struct session_lock_delays *d = session_lock_delays_new();
	struct proto_txn_op ops[] = {kv("set", "a", "1", 0, 0, NULL),
				     kv("lock", "held", "x", 0, 0, SESS)};
	struct proto_txn t = {.ops = {ops, 2}};
	struct txn_outcome *o = txn_outcome_new();

	ck_assert_int_eq(session_lock_delays_set(d, "held", 4, 5000, 1000), 0);
	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", d, 2000, o), 0);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_uint_eq(o->errors[0].op_index, 1);
	ck_assert_str_eq(o->errors[0].what, "failed to lock key \"held\" due to lock delay");
	txn_outcome_free(o);
	/* after the delay the same transaction encodes */
	o = txn_outcome_new();
	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", d, 5000, o), 0);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_gt(w.len, 0);
	txn_outcome_free(o);
	session_lock_delays_free(d);
}
END_TEST

START_TEST(refused_before_proposing)
{
	struct proto_txn_op ops[TXN_MAX_OPS + 1];
	struct proto_txn t = {.ops = {ops, TXN_MAX_OPS + 1}};
	struct txn_outcome *o = txn_outcome_new();
	char longkey[STORE_KEY_MAX + 2];

	for (size_t i = 0; i < TXN_MAX_OPS + 1; i++)
		ops[i] = kv("set", "k", "v", 0, 0, NULL);
	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", NULL, 0, o), 0);
	ck_assert_uint_eq(o->n_errors, 1);
	txn_outcome_free(o);

	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = 0;
	ops[0] = kv("set", "", "v", 0, 0, NULL);
	ops[1] = kv("bogus", "k", NULL, 0, 0, NULL);
	ops[2] = kv("lock", "k", "v", 0, 0, NULL); /* no session */
	ops[3] = kv("set", longkey, "v", 0, 0, NULL);
	ops[4] = (struct proto_txn_op){.kind = 0};
	t.ops.n = 5;
	o = txn_outcome_new();
	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", NULL, 0, o), 0);
	ck_assert_uint_eq(o->n_errors, 5);
	ck_assert_str_eq(o->errors[0].what, "Missing key name");
	ck_assert_str_eq(o->errors[1].what, "unknown KV verb \"bogus\"");
	ck_assert_str_eq(o->errors[2].what, "missing session");
	ck_assert_str_eq(o->errors[3].what, "Key too long (max 511 bytes)");
	ck_assert_str_eq(o->errors[4].what, "no operation specified");
	for (size_t i = 0; i < 5; i++)
		ck_assert_uint_eq(o->errors[i].op_index, i);
	txn_outcome_free(o);
	/* which transactions write */
	ops[0] = kv("get", "k", NULL, 0, 0, NULL);
	ops[1] = kv("check-index", "k", NULL, 0, 1, NULL);
	t.ops.n = 2;
	ck_assert(!txn_writes(&t));
	ops[1] = kv("delete-cas", "k", NULL, 0, 1, NULL);
	ck_assert(txn_writes(&t));
}
END_TEST

START_TEST(malformed_command_rejected)
{
	struct fsm_result res;

	/* [9, [[1, 1, "k", nil, 0, 0, nil, <a nested txn>]]] */
	mp_writer_reset(&w);
	mp_write_array(&w, 2);
	mp_write_u64(&w, FSM_OP_TXN);
	mp_write_array(&w, 1);
	mp_write_array(&w, 8);
	mp_write_u64(&w, TXN_KV);
	mp_write_u64(&w, TXN_KV_SET);
	mp_write_str(&w, "k", 1);
	mp_write_nil(&w);
	mp_write_u64(&w, 0);
	mp_write_u64(&w, 0);
	mp_write_nil(&w);
	mp_write_bin(&w, "\x92\x09\x90", 3); /* [9, []] */
	res = apply_w(10);
	ck_assert_int_eq(res.code, 0);
	ck_assert(!res.ok);
	ck_assert_ptr_null(entry("k", NULL));
	/* truncated */
	w.len -= 2;
	res = apply_w(11);
	ck_assert_int_eq(res.code, CAIRN_E_PROTO);
}
END_TEST

/* ---- catalog ------------------------------------------------------------- */

START_TEST(node_service_check_verbs)
{
	struct proto_node node = {.node = "web1", .address = "10.0.0.9"};
	struct proto_service svc = {.id = "api1", .service = "api", .port = 80,
				    .weight_passing = 1, .weight_warning = 1};
	struct proto_check chk = {.node = "web1", .check_id = "c1", .name = "alive",
				  .status = "passing", .service_id = "api1"};
	struct proto_txn_op ops[] = {
	    {.kind = TXN_NODE, .verb = "set", .node = {&node, 1}},
	    {.kind = TXN_SERVICE, .verb = "set", .key = "web1", .service = {&svc, 1}},
	    {.kind = TXN_CHECK, .verb = "set", .check = {&chk, 1}},
	};
	struct txn_outcome *o = run_at(ops, 3, 20);

	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 3);
	ck_assert_str_eq(o->results[0].node.v[0].node, "web1");
	ck_assert_str_eq(o->results[0].node.v[0].datacenter, "dc1");
	ck_assert_uint_eq(o->results[0].node.v[0].modify_index, 20);
	ck_assert_str_eq(o->results[1].service.v[0].id, "api1");
	ck_assert_uint_eq(o->results[1].service.v[0].port, 80);
	ck_assert_uint_eq(o->results[1].service.v[0].modify_index, 20);
	ck_assert_str_eq(o->results[2].check.v[0].check_id, "c1");
	ck_assert_str_eq(o->results[2].check.v[0].service_name, "api");
	txn_outcome_free(o);

	/* gets, read-only */
	struct proto_txn_op gets[] = {
	    {.kind = TXN_NODE, .verb = "get", .node = {&node, 1}},
	    {.kind = TXN_SERVICE, .verb = "get", .key = "web1", .service = {&svc, 1}},
	    {.kind = TXN_CHECK, .verb = "get", .check = {&chk, 1}},
	};
	o = run_read(gets, 3);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 3);
	ck_assert_str_eq(o->results[0].node.v[0].address, "10.0.0.9");
	ck_assert_str_eq(o->results[1].service.v[0].service, "api");
	ck_assert_str_eq(o->results[2].check.v[0].status, "passing");
	txn_outcome_free(o);

	/* cas: stale indexes fail, the right one updates */
	struct proto_service svc2 = svc;
	struct proto_node node2 = node;
	svc2.port = 81;
	node2.address = "10.0.0.10";
	struct proto_txn_op cas_bad[] = {
	    {.kind = TXN_SERVICE, .verb = "cas", .key = "web1", .index = 5, .service = {&svc2, 1}},
	    {.kind = TXN_NODE, .verb = "cas", .index = 0, .node = {&node2, 1}},
	};
	o = run_at(cas_bad, 2, 21);
	ck_assert_uint_eq(o->n_errors, 2);
	ck_assert_str_eq(o->errors[0].what,
			 "failed to set service \"api1\" on node \"web1\", index is stale");
	ck_assert_str_eq(o->errors[1].what, "failed to set node \"web1\", index is stale");
	txn_outcome_free(o);
	struct proto_txn_op cas_ok[] = {
	    {.kind = TXN_SERVICE, .verb = "cas", .key = "web1", .index = 20, .service = {&svc2, 1}},
	    {.kind = TXN_NODE, .verb = "cas", .index = 20, .node = {&node2, 1}},
	};
	o = run_at(cas_ok, 2, 22);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->results[0].service.v[0].port, 81);
	ck_assert_str_eq(o->results[1].node.v[0].address, "10.0.0.10");
	txn_outcome_free(o);

	/* a service on a node that does not exist */
	struct proto_txn_op orphan[] = {
	    {.kind = TXN_SERVICE, .verb = "set", .key = "ghost", .service = {&svc, 1}}};
	o = run_at(orphan, 1, 23);
	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_str_eq(o->errors[0].what, "Missing node registration");
	txn_outcome_free(o);

	/* deletes: check (cas), service, then the node (cas at its index) */
	chk.modify_index = 0;
	struct proto_txn_op dels[] = {
	    {.kind = TXN_CHECK, .verb = "delete-cas", .index = 20, .check = {&chk, 1}},
	    {.kind = TXN_SERVICE, .verb = "delete", .key = "web1", .service = {&svc, 1}},
	    {.kind = TXN_NODE, .verb = "delete-cas", .index = 22, .node = {&node, 1}},
	};
	o = run_at(dels, 3, 24);
	ck_assert_uint_eq(o->n_errors, 0);
	ck_assert_uint_eq(o->n_results, 0);
	txn_outcome_free(o);
	o = run_read(gets, 3);
	ck_assert_uint_eq(o->n_errors, 3);
	ck_assert_str_eq(o->errors[0].what, "node \"web1\" doesn't exist");
	ck_assert_str_eq(o->errors[1].what, "service \"api1\" on node \"web1\" doesn't exist");
	ck_assert_str_eq(o->errors[2].what, "check \"c1\" on node \"web1\" doesn't exist");
	txn_outcome_free(o);
}
END_TEST

START_TEST(mixed_rollback_keeps_catalog)
{
	struct proto_node node = {.node = "db1", .address = "10.0.0.7"};
	struct proto_txn_op ops[] = {
	    {.kind = TXN_NODE, .verb = "set", .node = {&node, 1}},
	    kv("set", "cfg/db", "db1", 0, 0, NULL),
	    kv("check-not-exists", "cfg/db", NULL, 0, 0, NULL), /* fails: just set */
	};
	struct txn_outcome *o = run_at(ops, 3, 30);
	struct proto_node *n;
	struct store_txn *txn;
	uint64_t idx;

	ck_assert_uint_eq(o->n_errors, 1);
	ck_assert_uint_eq(o->errors[0].op_index, 2);
	txn_outcome_free(o);
	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(fsm_node_get(txn, &ar, "db1", &n, &idx), 0);
	ck_assert_ptr_null(n);
	ck_assert_uint_eq(idx, 1); /* the node table's index is still n1's */
	store_txn_abort(txn);
	ck_assert_ptr_null(entry("cfg/db", NULL));
}
END_TEST

START_TEST(unwanted_outcome_not_kept)
{
	struct proto_txn_op ops[] = {kv("set", "a", "1", 0, 0, NULL)};
	struct proto_txn t = {.ops = {ops, 1}};
	struct txn_outcome *o = txn_outcome_new();

	ck_assert_int_eq(txn_cmd_encode(&w, &t, "dc1", NULL, 0, o), 0);
	txn_outcome_free(o);
	ck_assert(apply_w(40).ok); /* a follower's apply: nobody waits */
	ck_assert_ptr_null(txn_results_take(40));
	assert_value(entry("a", NULL), "1");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raftd-txn");
	TCase *tc = tcase_create("txn");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, kv_set_cas_get_results);
	tcase_add_test(tc, failed_check_changes_nothing);
	tcase_add_test(tc, kv_reads_and_checks);
	tcase_add_test(tc, kv_deletes);
	tcase_add_test(tc, kv_lock_unlock);
	tcase_add_test(tc, lock_delay_refused_before_proposing);
	tcase_add_test(tc, refused_before_proposing);
	tcase_add_test(tc, malformed_command_rejected);
	tcase_add_test(tc, node_service_check_verbs);
	tcase_add_test(tc, mixed_rollback_keeps_catalog);
	tcase_add_test(tc, unwanted_outcome_not_kept);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
