/* Autopilot (raftd/autopilot.c): the pure health and dead-server cleanup
 * decisions, Go duration text, and the replicated configuration applied
 * through fsm_apply (defaults, set, check-and-set on ModifyIndex). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "autopilot.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "store.h"
#include "tmpstore.h"

/* ---- fixtures for the pure functions -------------------------------------- */

static struct autopilot_config cfg;

static void srv(struct autopilot_server *s, const char *id, enum autopilot_serf serf, bool voter)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->name = id;
	s->address = "127.0.0.1:8300";
	s->version = "";
	s->serf = serf;
	s->voter = voter;
	s->contacted = true;
	s->last_contact_ms = 10;
	s->last_term = 3;
	s->last_index = 100;
}

static size_t removals(struct autopilot_server *v, size_t n, size_t *idx)
{
	return autopilot_removals(&cfg, v, n, idx, 8);
}

static void pure_setup(void)
{
	autopilot_config_default(&cfg);
}

START_TEST(test_defaults)
{
	ck_assert(cfg.cleanup_dead_servers);
	ck_assert_uint_eq(cfg.last_contact_threshold_ms, 200);
	ck_assert_uint_eq(cfg.max_trailing_logs, 250);
	ck_assert_uint_eq(cfg.min_quorum, 0);
	ck_assert_uint_eq(cfg.server_stabilization_time_ms, 10000);
	ck_assert_uint_eq(cfg.create_index, 0);
	ck_assert_uint_eq(cfg.modify_index, 0);
}
END_TEST

START_TEST(test_health_all_good)
{
	struct autopilot_server v[3];
	bool healthy;
	uint64_t ft;

	srv(&v[0], "a", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	srv(&v[1], "b", AUTOPILOT_SERF_ALIVE, true);
	srv(&v[2], "c", AUTOPILOT_SERF_ALIVE, true);
	autopilot_health_eval(&cfg, 3, 100, v, 3, &healthy, &ft);
	ck_assert(healthy);
	ck_assert_uint_eq(ft, 1);
	for (int i = 0; i < 3; i++)
		ck_assert(v[i].healthy);
}
END_TEST

START_TEST(test_health_rules)
{
	struct autopilot_server v[5];
	bool healthy;
	uint64_t ft;

	srv(&v[0], "leader", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	v[0].contacted = false; /* the leader itself needs no contact */
	srv(&v[1], "slow", AUTOPILOT_SERF_ALIVE, true);
	v[1].last_contact_ms = 201; /* past the 200 ms threshold */
	srv(&v[2], "behind", AUTOPILOT_SERF_ALIVE, true);
	v[2].last_index = 1000 - 251; /* one past MaxTrailingLogs */
	srv(&v[3], "oldterm", AUTOPILOT_SERF_ALIVE, true);
	v[3].last_term = 2;
	srv(&v[4], "failed", AUTOPILOT_SERF_FAILED, true);
	v[1].last_index = v[3].last_index = v[4].last_index = 1000;
	autopilot_health_eval(&cfg, 3, 1000, v, 5, &healthy, &ft);
	ck_assert(!healthy);
	ck_assert(v[0].healthy);
	ck_assert(!v[1].healthy);
	ck_assert(!v[2].healthy);
	ck_assert(!v[3].healthy);
	ck_assert(!v[4].healthy);
	ck_assert_uint_eq(ft, 0);

	/* exactly at the limits is healthy */
	v[1].last_contact_ms = 200;
	v[2].last_index = 750;
	v[3].last_term = 3;
	autopilot_health_eval(&cfg, 3, 1000, v, 5, &healthy, &ft);
	ck_assert(v[1].healthy && v[2].healthy && v[3].healthy);
	ck_assert(!healthy); /* "failed" still is not */
	ck_assert_uint_eq(ft, 1); /* 4 healthy voters, quorum 3 */

	/* never contacted this term: unhealthy; non-voters do not count */
	v[1].contacted = false;
	v[4].voter = false;
	autopilot_health_eval(&cfg, 3, 1000, v, 5, &healthy, &ft);
	ck_assert(!v[1].healthy);
	ck_assert_uint_eq(ft, 0); /* 3 healthy of 4 voters, quorum 3 */
}
END_TEST

START_TEST(test_cleanup_three)
{
	struct autopilot_server v[3];
	size_t idx[8];

	srv(&v[0], "a", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	srv(&v[1], "b", AUTOPILOT_SERF_FAILED, true);
	srv(&v[2], "c", AUTOPILOT_SERF_ALIVE, true);
	ck_assert_uint_eq(removals(v, 3, idx), 1);
	ck_assert_uint_eq(idx[0], 1);

	/* left counts as dead too; but only one of three may go */
	v[2].serf = AUTOPILOT_SERF_LEFT;
	ck_assert_uint_eq(removals(v, 3, idx), 1);
	ck_assert_uint_eq(idx[0], 1);

	/* leaving, none (not in gossip) and alive are kept */
	v[1].serf = AUTOPILOT_SERF_LEAVING;
	v[2].serf = AUTOPILOT_SERF_NONE;
	ck_assert_uint_eq(removals(v, 3, idx), 0);

	/* switched off */
	v[1].serf = AUTOPILOT_SERF_FAILED;
	cfg.cleanup_dead_servers = false;
	ck_assert_uint_eq(removals(v, 3, idx), 0);
}
END_TEST

START_TEST(test_cleanup_keeps_quorum)
{
	struct autopilot_server v[5];
	size_t idx[8];

	/* two voters left: removing one would leave a single voter of a
	 * configuration whose quorum was two */
	srv(&v[0], "a", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	srv(&v[1], "b", AUTOPILOT_SERF_FAILED, true);
	ck_assert_uint_eq(removals(v, 2, idx), 0);

	/* five voters, three failed: two may go, the third stays */
	srv(&v[0], "a", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	srv(&v[1], "b", AUTOPILOT_SERF_FAILED, true);
	srv(&v[2], "c", AUTOPILOT_SERF_FAILED, true);
	srv(&v[3], "d", AUTOPILOT_SERF_FAILED, true);
	srv(&v[4], "e", AUTOPILOT_SERF_ALIVE, true);
	ck_assert_uint_eq(removals(v, 5, idx), 2);
	ck_assert_uint_eq(idx[0], 1);
	ck_assert_uint_eq(idx[1], 2);

	/* the leader is never removed, even if gossip says it failed */
	v[0].serf = AUTOPILOT_SERF_FAILED;
	v[2].serf = AUTOPILOT_SERF_ALIVE;
	v[3].serf = AUTOPILOT_SERF_ALIVE;
	ck_assert_uint_eq(removals(v, 5, idx), 1);
	ck_assert_uint_eq(idx[0], 1);
}
END_TEST

START_TEST(test_cleanup_min_quorum_and_nonvoters)
{
	struct autopilot_server v[5];
	size_t idx[8];

	srv(&v[0], "a", AUTOPILOT_SERF_ALIVE, true);
	v[0].leader = true;
	srv(&v[1], "b", AUTOPILOT_SERF_FAILED, true);
	srv(&v[2], "c", AUTOPILOT_SERF_FAILED, true);
	srv(&v[3], "d", AUTOPILOT_SERF_ALIVE, true);
	srv(&v[4], "e", AUTOPILOT_SERF_ALIVE, true);
	cfg.min_quorum = 4; /* five voters: only one may go */
	ck_assert_uint_eq(removals(v, 5, idx), 1);
	ck_assert_uint_eq(idx[0], 1);
	cfg.min_quorum = 5;
	ck_assert_uint_eq(removals(v, 5, idx), 0);

	/* a failed non-voter goes whatever the voters */
	v[4].voter = false;
	v[4].serf = AUTOPILOT_SERF_FAILED;
	ck_assert_uint_eq(removals(v, 5, idx), 1);
	ck_assert_uint_eq(idx[0], 4);

	/* room for max only */
	cfg.min_quorum = 0;
	ck_assert_uint_eq(autopilot_removals(&cfg, v, 5, idx, 1), 1);
	ck_assert_uint_eq(idx[0], 1);
}
END_TEST

START_TEST(test_duration_format)
{
	static const struct {
		uint64_t ms;
		const char *text;
	} cases[] = {{0, "0s"},	     {1, "1ms"},	{200, "200ms"},	     {999, "999ms"},
		     {1000, "1s"},   {1500, "1.5s"},	{10000, "10s"},	     {10250, "10.25s"},
		     {60000, "1m0s"}, {90000, "1m30s"}, {3600000, "1h0m0s"}, {3723004, "1h2m3.004s"}};
	char buf[32];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		autopilot_duration_format(cases[i].ms, buf, sizeof(buf));
		ck_assert_str_eq(buf, cases[i].text);
	}
}
END_TEST

/* ---- the replicated configuration on LMDB --------------------------------- */

static char dir[256];
static struct store *st;
static struct mp_writer w;

static void store_setup(void)
{
	st = tmpstore_open("autopilot", dir, sizeof(dir));
	mp_writer_init(&w);
}

static void store_teardown(void)
{
	mp_writer_close(&w);
	tmpstore_close(st, dir);
}

static struct fsm_result apply_set(uint64_t index, const struct autopilot_config *c, bool has_cas,
				   uint64_t cas)
{
	struct store_txn *txn;
	struct fsm_result res;

	autopilot_encode_set(&w, c, has_cas, cas);
	ck_assert(!w.err);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, w.buf, w.len, &res, NULL, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

static struct autopilot_config stored(void)
{
	struct store_txn *txn;
	struct autopilot_config c;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(autopilot_config_get(txn, &c), 0);
	store_txn_abort(txn);
	return c;
}

START_TEST(test_store_set_and_cas)
{
	struct autopilot_config c = stored(), want;
	struct fsm_result res;

	/* never set: the defaults with index 0 */
	autopilot_config_default(&want);
	ck_assert_mem_eq(&c, &want, sizeof(c));

	c.cleanup_dead_servers = false;
	c.last_contact_threshold_ms = 500;
	c.max_trailing_logs = 10;
	c.min_quorum = 3;
	c.server_stabilization_time_ms = 2500;
	res = apply_set(7, &c, false, 0);
	ck_assert_int_eq(res.code, 0);
	ck_assert(res.ok);
	c = stored();
	ck_assert(!c.cleanup_dead_servers);
	ck_assert_uint_eq(c.last_contact_threshold_ms, 500);
	ck_assert_uint_eq(c.max_trailing_logs, 10);
	ck_assert_uint_eq(c.min_quorum, 3);
	ck_assert_uint_eq(c.server_stabilization_time_ms, 2500);
	ck_assert_uint_eq(c.create_index, 7);
	ck_assert_uint_eq(c.modify_index, 7);

	/* a stale cas changes nothing */
	c.max_trailing_logs = 99;
	res = apply_set(9, &c, true, 6);
	ck_assert_int_eq(res.code, 0);
	ck_assert(!res.ok);
	ck_assert_uint_eq(stored().max_trailing_logs, 10);
	ck_assert_uint_eq(stored().modify_index, 7);

	/* the current ModifyIndex succeeds; CreateIndex stays */
	res = apply_set(11, &c, true, 7);
	ck_assert(res.ok);
	c = stored();
	ck_assert_uint_eq(c.max_trailing_logs, 99);
	ck_assert_uint_eq(c.create_index, 7);
	ck_assert_uint_eq(c.modify_index, 11);
}
END_TEST

START_TEST(test_store_malformed)
{
	struct store_txn *txn;
	struct fsm_result res;

	mp_writer_reset(&w);
	mp_write_array(&w, 2);
	mp_write_u64(&w, AUTOPILOT_OP_SET);
	mp_write_array(&w, 3); /* too short */
	mp_write_bool(&w, true);
	mp_write_u64(&w, 1);
	mp_write_u64(&w, 2);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, 3, w.buf, w.len, &res, NULL, NULL), 0);
	ck_assert_int_eq(res.code, CAIRN_E_PROTO);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	ck_assert_uint_eq(stored().modify_index, 0);
}
END_TEST

static Suite *autopilot_suite(void)
{
	Suite *s = suite_create("autopilot");
	TCase *p = tcase_create("decisions");
	TCase *t = tcase_create("store");

	tcase_add_checked_fixture(p, pure_setup, NULL);
	tcase_add_test(p, test_defaults);
	tcase_add_test(p, test_health_all_good);
	tcase_add_test(p, test_health_rules);
	tcase_add_test(p, test_cleanup_three);
	tcase_add_test(p, test_cleanup_keeps_quorum);
	tcase_add_test(p, test_cleanup_min_quorum_and_nonvoters);
	tcase_add_test(p, test_duration_format);
	suite_add_tcase(s, p);
	tcase_add_checked_fixture(t, store_setup, store_teardown);
	tcase_add_test(t, test_store_set_and_cas);
	tcase_add_test(t, test_store_malformed);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(autopilot_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
