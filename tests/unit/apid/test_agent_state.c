/* The agent's local state: the check state machine (thresholds, TTL
 * expiry, maintenance, DeregisterCriticalServiceAfter), registration
 * through the HTTP handlers, and the bookkeeping anti-entropy relies on. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent_api.h"
#include "agent_state.h"
#include "arena.h"
#include "config.h"
#include "routes.h"

static struct agent_state st;
static struct config cfg;
static struct routes_env env;
static struct arena ar;

static void setup(void)
{
	agent_state_init(&st);
	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "n1";
	cfg.kv_max_value_size = 1024;
	cfg.http_max_body = 65536;
	cfg.json = json_pack("{s:b}", "enable_script_checks", 0);
	env.cfg = &cfg;
	env.agent = &st;
	env.now_ms = 1000;
	arena_init(&ar, 0);
}

static void teardown(void)
{
	arena_close(&ar);
	json_decref(cfg.json);
	agent_state_close(&st);
}

/* Registers a service from JSON text; returns the 400 reason or NULL. */
static const char *reg(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	const char *bad;

	ck_assert_ptr_nonnull(j);
	bad = agent_api_register_service(&st, &env, j, false, &ar);
	json_decref(j);
	return bad;
}

START_TEST(thresholds)
{
	struct agent_check *c;

	ck_assert_ptr_null(
	    reg("{\"Name\":\"web\",\"Check\":{\"HTTP\":\"http://x/\",\"Interval\":"
		"\"10s\",\"SuccessBeforePassing\":2,\"FailuresBeforeCritical\":3}}"));
	c = agent_check_find(&st, "service:web");
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(c->status, "critical");
	ck_assert_uint_eq(c->interval_ms, 10000);
	ck_assert_uint_eq(c->timeout_ms, 10000);
	/* one success is not enough */
	ck_assert(!agent_check_result(&st, c, "passing", "ok", 2000));
	ck_assert_str_eq(c->status, "critical");
	ck_assert(agent_check_result(&st, c, "passing", "ok", 3000));
	ck_assert_str_eq(c->status, "passing");
	ck_assert_str_eq(c->output, "ok");
	/* two failures are not enough, a success in between resets */
	ck_assert(!agent_check_result(&st, c, "critical", "bad", 4000));
	ck_assert(!agent_check_result(&st, c, "critical", "bad", 5000));
	ck_assert(!agent_check_result(&st, c, "passing", "ok", 6000));
	ck_assert(!agent_check_result(&st, c, "critical", "bad", 7000));
	ck_assert(!agent_check_result(&st, c, "critical", "bad", 8000));
	ck_assert_str_eq(c->status, "passing");
	ck_assert(agent_check_result(&st, c, "critical", "bad", 9000));
	ck_assert_str_eq(c->status, "critical");
	ck_assert_uint_eq(c->critical_since_ms, 9000);

	/* a new output alone shows locally but reaches the catalog only after
	 * check_update_interval (or with the next status change) */
	{
		struct agent_service *s = agent_service_find(&st, "web");
		uint64_t g = s->gen;

		c->failures = c->failures_before_critical;
		ck_assert(agent_check_result(&st, c, "critical", "worse", 10000));
		ck_assert_str_eq(c->output, "worse");
		ck_assert_uint_eq(s->gen, g);
		ck_assert_uint_eq(agent_check_flush_outputs(&st, 10000 + AGENT_CHECK_UPDATE_MS - 1),
				  0);
		ck_assert_uint_eq(agent_check_flush_outputs(&st, 10000 + AGENT_CHECK_UPDATE_MS), 1);
		ck_assert_uint_gt(s->gen, g);
	}
}
END_TEST

START_TEST(ttl_expiry)
{
	struct agent_check *c;
	struct agent_service *s;

	ck_assert_ptr_null(reg("{\"Name\":\"api\",\"ID\":\"a1\",\"Check\":{\"TTL\":\"5s\"}}"));
	c = agent_check_find(&st, "service:a1");
	s = agent_service_find(&st, "a1");
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->kind, AGENT_CHECK_TTL);
	ck_assert_uint_eq(agent_check_next_ttl(&st), 6000);
	ck_assert_int_eq(agent_check_ttl_update(&st, c, "passing", "up", 2000), 0);
	ck_assert_str_eq(agent_service_health(&st, s), "passing");
	ck_assert_uint_eq(agent_check_ttl_expire(&st, 6999), 0);
	ck_assert_uint_eq(agent_check_ttl_expire(&st, 7000), 1);
	ck_assert_str_eq(c->status, "critical");
	ck_assert_str_eq(c->output, "TTL expired");
	ck_assert_str_eq(agent_service_health(&st, s), "critical");
	/* not re-expired until updated again */
	ck_assert_uint_eq(agent_check_ttl_expire(&st, 99999), 0);
}
END_TEST

START_TEST(maintenance_and_reaping)
{
	struct agent_service *s;
	const char *ids[4];
	uint64_t g;

	ck_assert_ptr_null(reg("{\"Name\":\"db\",\"Check\":{\"TTL\":\"5s\",\"Status\":\"passing\","
			       "\"DeregisterCriticalServiceAfter\":\"1m\"}}"));
	s = agent_service_find(&st, "db");
	ck_assert_str_eq(agent_service_health(&st, s), "passing");
	g = s->gen;
	ck_assert_int_eq(agent_maintenance(&st, "db", true, "", 1000), 0);
	ck_assert_str_eq(agent_service_health(&st, s), "critical");
	ck_assert_uint_gt(s->gen, g);
	ck_assert_ptr_nonnull(agent_check_find(&st, "_service_maintenance:db"));
	ck_assert_int_eq(agent_maintenance(&st, "db", false, NULL, 1000), 0);
	ck_assert_str_eq(agent_service_health(&st, s), "passing");
	ck_assert_int_eq(agent_maintenance(&st, "nosuch", true, NULL, 1000), -ENOENT);
	/* the check's removal is remembered for the catalog */
	ck_assert_uint_eq(st.n_removed_checks, 1);

	/* critical since 7000 (TTL expiry); reaped one minute later */
	ck_assert_uint_eq(agent_check_ttl_expire(&st, 7000), 1);
	ck_assert_uint_eq(agent_reap_candidates(&st, 66999, ids, 4), 0);
	ck_assert_uint_eq(agent_reap_candidates(&st, 67000, ids, 4), 1);
	ck_assert_str_eq(ids[0], "db");
	ck_assert_int_eq(agent_service_remove(&st, "db"), 0);
	ck_assert_uint_eq(st.n_checks, 0);
	ck_assert_uint_eq(st.n_removed_services, 1);
	/* registering it again cancels the pending catalog removal */
	ck_assert_ptr_null(reg("{\"Name\":\"db\"}"));
	ck_assert_uint_eq(st.n_removed_services, 0);
}
END_TEST

START_TEST(bad_definitions)
{
	const char *bad;

	bad = reg("{\"Port\":1}");
	ck_assert_ptr_nonnull(bad);
	ck_assert_ptr_nonnull(strstr(bad, "Missing service name"));
	bad = reg("{\"Name\":\"x\",\"Check\":{\"TCP\":\"1.2.3.4:5\",\"Interval\":\"-1s\"}}");
	ck_assert_ptr_nonnull(strstr(bad, "Invalid check"));
	bad = reg("{\"Name\":\"x\",\"Check\":{\"TCP\":\"1.2.3.4:5\"}}");
	ck_assert_ptr_nonnull(strstr(bad, "Interval"));
	bad = reg("{\"Name\":\"x\",\"Check\":{\"TTL\":\"5s\",\"TCP\":\"1.2.3.4:5\"}}");
	ck_assert_ptr_nonnull(strstr(bad, "only one"));
	bad = reg("{\"Name\":\"x\",\"Check\":{\"Args\":[\"true\"],\"Interval\":\"5s\"}}");
	ck_assert_ptr_nonnull(strstr(bad, "Scripts are disabled"));
	bad = reg("{\"Name\":\"x\",\"Check\":{\"TTL\":\"5s\",\"Status\":\"fine\"}}");
	ck_assert_ptr_nonnull(strstr(bad, "Invalid check status"));
	/* nothing half-registered */
	ck_assert_uint_eq(st.n_services, 0);
	ck_assert_uint_eq(st.n_checks, 0);
	/* snake_case and lower-case keys */
	ck_assert_ptr_null(reg("{\"name\":\"y\",\"enable_tag_override\":true,"
			       "\"checks\":[{\"ttl\":\"5s\"},{\"tcp\":\"1.2.3.4:5\",\"interval\":"
			       "\"5s\",\"failures_before_critical\":2}]}"));
	ck_assert(agent_service_find(&st, "y")->svc.enable_tag_override);
	ck_assert_ptr_nonnull(agent_check_find(&st, "service:y:1"));
	ck_assert_uint_eq(agent_check_find(&st, "service:y:2")->failures_before_critical, 2);
}
END_TEST

START_TEST(replace_keeps_status)
{
	struct agent_check *c;

	ck_assert_ptr_null(reg("{\"Name\":\"w\",\"Check\":{\"TTL\":\"5s\"}}"));
	c = agent_check_find(&st, "service:w");
	ck_assert_int_eq(agent_check_ttl_update(&st, c, "warning", "meh", 1500), 0);
	/* re-registering the same service does not reset its checks' status */
	ck_assert_ptr_null(reg("{\"Name\":\"w\",\"Tags\":[\"new\"],\"Check\":{\"TTL\":\"5s\"}}"));
	c = agent_check_find(&st, "service:w");
	ck_assert_str_eq(c->status, "warning");
	ck_assert_uint_eq(agent_service_find(&st, "w")->svc.tags.n, 1);
}
END_TEST

START_TEST(anti_entropy_decisions)
{
	struct proto_service remote[2] = {{.id = "web"}, {.id = "stray"}};
	struct proto_check rchecks[4] = {
	    {.check_id = "serfHealth", .service_id = ""},
	    {.check_id = "service:web", .service_id = "web"},
	    {.check_id = "old-node-check", .service_id = ""},
	    {.check_id = "stray-check", .service_id = "stray"},
	};

	ck_assert_ptr_null(reg("{\"Name\":\"web\",\"Check\":{\"TTL\":\"5s\"}}"));
	agent_service_find(&st, "web")->synced_gen = agent_service_find(&st, "web")->gen;
	st.node_synced_gen = st.node_gen;
	agent_state_reconcile(&st, remote, 2, rchecks, 4);
	/* the catalog's extra service goes; its check goes with it */
	ck_assert_uint_eq(st.n_removed_services, 1);
	ck_assert_str_eq(st.removed_services[0], "stray");
	/* the extra node check goes; serfHealth and our own stay */
	ck_assert_uint_eq(st.n_removed_checks, 1);
	ck_assert_str_eq(st.removed_checks[0], "old-node-check");
	/* everything local is pushed again */
	ck_assert_uint_ne(agent_service_find(&st, "web")->synced_gen,
			  agent_service_find(&st, "web")->gen);
	ck_assert_uint_ne(st.node_synced_gen, st.node_gen);
	/* Consul's scaling of the full-sync period */
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 3), 60000);
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 128), 60000);
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 129), 120000);
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 256), 120000);
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 257), 180000);
	ck_assert_uint_eq(agent_sync_interval_ms(60000, 10000), 60000 * 8);
	/* a second read queues nothing twice */
	agent_state_reconcile(&st, remote, 2, rchecks, 4);
	ck_assert_uint_eq(st.n_removed_services, 1);
	ck_assert_uint_eq(st.n_removed_checks, 1);
}
END_TEST

static Suite *agent_state_suite(void)
{
	Suite *s = suite_create("agent_state");
	TCase *tc = tcase_create("agent_state");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, thresholds);
	tcase_add_test(tc, ttl_expiry);
	tcase_add_test(tc, maintenance_and_reaping);
	tcase_add_test(tc, bad_definitions);
	tcase_add_test(tc, replace_keeps_status);
	tcase_add_test(tc, anti_entropy_decisions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(agent_state_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
