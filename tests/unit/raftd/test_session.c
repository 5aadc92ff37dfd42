/* Sessions as replicated state (raftd/session.c) on LMDB: create, the
 * info/node/list views, destroy, indexes and change notifications. */
#include <check.h>
#include <jansson.h>
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
#include "tmpstore.h"

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static int n_changed;

/* Sessions need their node and the checks they list (Consul's
 * sessionCreateTxn): n1 with a passing serfHealth, n2 without checks. */
static void register_nodes(void)
{
	struct proto_node n = {.node = "n1", .address = "10.0.0.1"};
	struct proto_check c = {.check_id = "serfHealth", .name = "Serf Health Status",
				.status = "passing"};
	struct store_txn *txn;
	struct fsm_result res;

	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	catalog_cmd_register(&w, &n, false, NULL, &c, 1);
	ck_assert_int_eq(fsm_apply(txn, 1, w.buf, w.len, &res, NULL, NULL), 0);
	ck_assert_int_eq(res.code, 0);
	n.node = "n2";
	catalog_cmd_register(&w, &n, false, NULL, NULL, 0);
	ck_assert_int_eq(fsm_apply(txn, 1, w.buf, w.len, &res, NULL, NULL), 0);
	ck_assert_int_eq(res.code, 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
}

static void setup(void)
{
	st = tmpstore_open("session", dir, sizeof(dir));
	arena_init(&ar, 0);
	mp_writer_init(&w);
	register_nodes();
}

static void teardown(void)
{
	mp_writer_close(&w);
	arena_close(&ar);
	tmpstore_close(st, dir);
}

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	if (space == FSM_SPACE_SESSIONS && klen == 8 && !memcmp(key, "sessions", 8))
		n_changed++;
}

static struct fsm_result apply_w(uint64_t index)
{
	struct store_txn *txn;
	struct fsm_result res;

	n_changed = 0;
	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, w.buf, w.len, &res, on_change, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

/* Runs a view; returns the sessions as one JSON array (caller frees). */
static json_t *view(unsigned v, const char *arg, uint64_t *index)
{
	struct store_txn *txn;
	const char **s;
	size_t n;
	json_t *arr = json_array();

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(session_query(txn, &ar, v, arg, &s, &n, index), 0);
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_loads(s[i], 0, NULL);

		ck_assert_ptr_nonnull(o);
		json_array_append_new(arr, o);
	}
	store_txn_abort(txn);
	arena_reset(&ar);
	return arr;
}

static const char *S1 = "{\"Name\":\"a\",\"Node\":\"n1\",\"LockDelay\":15000000000,"
			"\"Behavior\":\"release\",\"TTL\":\"\",\"NodeChecks\":[\"serfHealth\"],"
			"\"ServiceChecks\":null}";
static const char *S2 = "{\"Name\":\"b\",\"Node\":\"n2\",\"LockDelay\":0,"
			"\"Behavior\":\"delete\",\"TTL\":\"10s\",\"NodeChecks\":[],"
			"\"ServiceChecks\":null}";

START_TEST(create_views_destroy)
{
	struct fsm_result res;
	uint64_t idx;
	json_t *a, *s;

	a = view(SESSION_VIEW_LIST, "", &idx);
	ck_assert_uint_eq(json_array_size(a), 0);
	ck_assert_uint_eq(idx, 1); /* never 0 */
	json_decref(a);

	session_cmd_create(&w, "id-1", S1);
	res = apply_w(5);
	ck_assert_int_eq(res.code, 0);
	ck_assert(res.ok);
	ck_assert_int_eq(n_changed, 1);
	session_cmd_create(&w, "id-2", S2);
	ck_assert_int_eq(apply_w(7).code, 0);

	a = view(SESSION_VIEW_INFO, "id-1", &idx);
	ck_assert_uint_eq(idx, 7);
	ck_assert_uint_eq(json_array_size(a), 1);
	s = json_array_get(a, 0);
	ck_assert_str_eq(json_string_value(json_object_get(s, "ID")), "id-1");
	ck_assert_str_eq(json_string_value(json_object_get(s, "Node")), "n1");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "CreateIndex")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "ModifyIndex")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "LockDelay")), 15000000000);
	json_decref(a);

	a = view(SESSION_VIEW_NODE, "n2", &idx);
	ck_assert_uint_eq(json_array_size(a), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "ID")), "id-2");
	json_decref(a);
	a = view(SESSION_VIEW_LIST, "", &idx);
	ck_assert_uint_eq(json_array_size(a), 2);
	json_decref(a);

	/* the same ID twice is refused, state untouched */
	session_cmd_create(&w, "id-1", S2);
	res = apply_w(8);
	ck_assert_int_eq(res.code, CAIRN_E_BADREQ);
	a = view(SESSION_VIEW_INFO, "id-1", &idx);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a, 0), "Node")), "n1");
	ck_assert_uint_eq(idx, 7);
	json_decref(a);

	session_cmd_destroy(&w, "id-1");
	res = apply_w(9);
	ck_assert_int_eq(res.code, 0);
	ck_assert(res.ok);
	ck_assert_int_eq(n_changed, 1);
	a = view(SESSION_VIEW_INFO, "id-1", &idx);
	ck_assert_uint_eq(json_array_size(a), 0);
	ck_assert_uint_eq(idx, 9);
	json_decref(a);
	a = view(SESSION_VIEW_RENEW, "id-2", &idx);
	ck_assert_uint_eq(json_array_size(a), 1);
	json_decref(a);

	/* destroying a missing session succeeds and changes nothing */
	session_cmd_destroy(&w, "id-1");
	res = apply_w(10);
	ck_assert_int_eq(res.code, 0);
	ck_assert_int_eq(n_changed, 0);
	a = view(SESSION_VIEW_LIST, "", &idx);
	ck_assert_uint_eq(idx, 9);
	ck_assert_uint_eq(json_array_size(a), 1);
	json_decref(a);
}
END_TEST

START_TEST(malformed_commands)
{
	struct fsm_result res;

	session_cmd_create(&w, "id-x", "not json");
	res = apply_w(3);
	ck_assert_int_eq(res.code, CAIRN_E_BADREQ);
	session_cmd_create(&w, "id-x", "{\"Name\":\"no node\"}");
	res = apply_w(4);
	ck_assert_int_eq(res.code, CAIRN_E_BADREQ);
	session_cmd_destroy(&w, "");
	res = apply_w(5);
	ck_assert_int_eq(res.code, CAIRN_E_PROTO);
	ck_assert_int_eq(n_changed, 0);
}
END_TEST

/* The entry for key: its Session (or "" when none) and LockIndex. */
static bool kv_entry(const char *key, char *sess, size_t slen, uint64_t *lock_index,
		     uint64_t *modify_index)
{
	struct store_txn *txn;
	struct fsm_kv_answer a;
	bool found;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	found = a.n_entries == 1;
	if (found) {
		snprintf(sess, slen, "%s", a.entries[0].session ? a.entries[0].session : "");
		*lock_index = a.entries[0].lock_index;
		*modify_index = a.entries[0].modify_index;
	}
	store_txn_abort(txn);
	arena_reset(&ar);
	return found;
}

static struct fsm_result lock(uint64_t index, const char *key, const char *sess, bool acquire)
{
	fsm_cmd_kv_lock(&w, key, (const uint8_t *)"v", 1, 0, sess, acquire);
	return apply_w(index);
}

START_TEST(acquire_release)
{
	struct fsm_result res;
	char sess[64];
	uint64_t li, mi;

	session_cmd_create(&w, "s1", S1);
	ck_assert_int_eq(apply_w(2).code, 0);
	session_cmd_create(&w, "s2", S1);
	ck_assert_int_eq(apply_w(3).code, 0);

	/* an unknown session is refused */
	ck_assert_int_eq(lock(4, "l/k", "nope", true).code, CAIRN_E_BADREQ);
	ck_assert(!kv_entry("l/k", sess, sizeof(sess), &li, &mi));

	res = lock(5, "l/k", "s1", true);
	ck_assert_int_eq(res.code, 0);
	ck_assert(res.ok);
	ck_assert(kv_entry("l/k", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "s1");
	ck_assert_uint_eq(li, 1);
	ck_assert_uint_eq(mi, 5);

	/* held: another session is refused, the holder re-acquires without
	 * a new LockIndex */
	res = lock(6, "l/k", "s2", true);
	ck_assert_int_eq(res.code, 0);
	ck_assert(!res.ok);
	res = lock(7, "l/k", "s1", true);
	ck_assert(res.ok);
	ck_assert(kv_entry("l/k", sess, sizeof(sess), &li, &mi));
	ck_assert_uint_eq(li, 1);
	ck_assert_uint_eq(mi, 7);

	/* only the holder releases */
	ck_assert(!lock(8, "l/k", "s2", false).ok);
	res = lock(9, "l/k", "s1", false);
	ck_assert(res.ok);
	ck_assert(kv_entry("l/k", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "");
	ck_assert_uint_eq(li, 1);
	ck_assert(!lock(10, "l/k", "s1", false).ok);

	/* the other session now acquires: LockIndex 2 */
	ck_assert(lock(11, "l/k", "s2", true).ok);
	ck_assert(kv_entry("l/k", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "s2");
	ck_assert_uint_eq(li, 2);
}
END_TEST

START_TEST(destroy_releases_or_deletes)
{
	char sess[64];
	uint64_t li, mi;

	session_cmd_create(&w, "rel", S1); /* Behavior release */
	ck_assert_int_eq(apply_w(2).code, 0);
	session_cmd_create(&w, "del", S2); /* Behavior delete */
	ck_assert_int_eq(apply_w(3).code, 0);
	ck_assert(lock(4, "a/1", "rel", true).ok);
	ck_assert(lock(5, "a/2", "rel", true).ok);
	ck_assert(lock(6, "b/1", "del", true).ok);

	session_cmd_destroy(&w, "rel");
	ck_assert_int_eq(apply_w(7).code, 0);
	ck_assert(kv_entry("a/1", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "");
	ck_assert_uint_eq(mi, 7);
	ck_assert_uint_eq(li, 1);
	ck_assert(kv_entry("a/2", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "");
	ck_assert(kv_entry("b/1", sess, sizeof(sess), &li, &mi));
	ck_assert_str_eq(sess, "del");

	session_cmd_destroy(&w, "del");
	ck_assert_int_eq(apply_w(8).code, 0);
	ck_assert(!kv_entry("b/1", sess, sizeof(sess), &li, &mi));
	ck_assert(kv_entry("a/1", sess, sizeof(sess), &li, &mi));
	ck_assert_uint_eq(mi, 7);
}
END_TEST

static int count_ttl(void *ctx, const char *id, uint64_t ttl_ms)
{
	int *n = ctx;

	ck_assert_str_eq(id, "ttl");
	ck_assert_uint_eq(ttl_ms, 10000);
	(*n)++;
	return 0;
}

START_TEST(ttl_timers)
{
	struct session_timers *t = session_timers_new();

	ck_assert_uint_eq(session_ttl_ms(S2, strlen(S2)), 10000);
	ck_assert_uint_eq(session_ttl_ms(S1, strlen(S1)), 0);
	ck_assert_uint_eq(session_ttl_ms("{\"TTL\":\"1m30s\"}", 15), 90000);
	ck_assert_uint_eq(session_ttl_ms("{\"TTL\":\"1.5h\"}", 14), 5400000);

	ck_assert_ptr_nonnull(t);
	session_timers_begin(t);
	ck_assert_int_eq(session_timers_touch(t, "a", 10000, 1000), 0);
	ck_assert_int_eq(session_timers_touch(t, "b", 20000, 1000), 0);
	session_timers_end(t);
	ck_assert_uint_eq(session_timers_count(t), 2);
	/* Consul's grace: expiry at 2 x TTL */
	ck_assert_ptr_null(session_timers_next_expired(t, 20999));
	ck_assert_str_eq(session_timers_next_expired(t, 21000), "a");
	ck_assert_ptr_null(session_timers_next_expired(t, 21000)); /* reported once */
	/* a renew pushes the deadline and re-arms */
	ck_assert(session_timers_renew(t, "a", 30000));
	ck_assert(!session_timers_renew(t, "zz", 30000));
	ck_assert_ptr_null(session_timers_next_expired(t, 40999));
	ck_assert_str_eq(session_timers_next_expired(t, 41000), "b");
	ck_assert_str_eq(session_timers_next_expired(t, 50000), "a");
	/* a touch keeps the deadline; a sweep drops sessions no longer stored */
	session_timers_begin(t);
	ck_assert_int_eq(session_timers_touch(t, "b", 20000, 99999), 0);
	session_timers_end(t);
	ck_assert_uint_eq(session_timers_count(t), 1);
	session_timers_clear(t);
	ck_assert_uint_eq(session_timers_count(t), 0);
	session_timers_free(t);
}
END_TEST

START_TEST(each_ttl_lists_ttl_sessions)
{
	struct store_txn *txn;
	int n = 0;

	session_cmd_create(&w, "no-ttl", S1);
	ck_assert_int_eq(apply_w(2).code, 0);
	session_cmd_create(&w, "ttl", S2);
	ck_assert_int_eq(apply_w(3).code, 0);
	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(session_each_ttl(txn, count_ttl, &n), 0);
	store_txn_abort(txn);
	ck_assert_int_eq(n, 1);
}
END_TEST

START_TEST(lock_delays)
{
	struct session_lock_delays *d = session_lock_delays_new();

	ck_assert_ptr_nonnull(d);
	ck_assert(!session_lock_delayed(d, "k", 0));
	ck_assert_int_eq(session_lock_delays_set(d, "kx", 1, 5000, 1000), 0); /* key "k" */
	ck_assert(session_lock_delayed(d, "k", 1000));
	ck_assert(session_lock_delayed(d, "k", 4999));
	ck_assert(!session_lock_delayed(d, "kx", 4999));
	ck_assert(!session_lock_delayed(d, "k", 5000));
	/* a later delay extends, an earlier one does not shorten */
	ck_assert_int_eq(session_lock_delays_set(d, "k", 1, 9000, 6000), 0);
	ck_assert_int_eq(session_lock_delays_set(d, "k", 1, 7000, 6000), 0);
	ck_assert(session_lock_delayed(d, "k", 8999));
	ck_assert(!session_lock_delayed(d, "k", 9000));
	session_lock_delays_free(d);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raftd-session");
	TCase *tc = tcase_create("session");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, create_views_destroy);
	tcase_add_test(tc, malformed_commands);
	tcase_add_test(tc, acquire_release);
	tcase_add_test(tc, destroy_releases_or_deletes);
	tcase_add_test(tc, ttl_timers);
	tcase_add_test(tc, lock_delays);
	tcase_add_test(tc, each_ttl_lists_ttl_sessions);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
