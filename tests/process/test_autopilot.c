/* Process test: autopilot on a 3-server cluster (servers found through the
 * LAN pool, as test_reconcile.c starts them). The configuration endpoint
 * answers Consul's defaults, PUT replaces it (?cas= answers true/false),
 * and a new leader serves it while the old one's raftd is frozen (it lives
 * in the replicated state);
 * `cairn operator autopilot get-config|set-config` read and change it;
 * /v1/operator/autopilot/health shows three healthy voters with one
 * leader; a follower whose agent is killed (-9) makes the cluster
 * unhealthy (429) and, with CleanupDeadServers off, stays in the Raft
 * configuration while gossip reports it failed; switched on, autopilot
 * removes it and the two left are healthy with FailureTolerance 0. Every
 * wait polls a condition against a deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptest.h"

#define N 3
#define WAIT_MS 60000

/* Three servers in one LAN pool (the second and third retry-join the
 * first's gossip port). */
PTEST_CLUSTER_FIXTURE(N,
		      {.name_prefix = "apilot", .join = HARNESS_JOIN_GOSSIP, .timeout_ms = WAIT_MS})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

/* GET path on agent i as JSON (NULL unless the status is want); *status
 * gets the status when not NULL. */
static json_t *get_json(int i, const char *path, long want, long *status)
{
	struct http_resp r;
	json_t *j = NULL;

	if (http_get(&ags[i], path, &r) == 0 && r.status == want)
		j = http_json(&r);
	if (status)
		*status = r.status;
	http_resp_free(&r);
	return j;
}

static long put(int i, const char *path, const char *body, char *out, size_t outlen)
{
	struct http_resp r;
	long st;

	(void)http_put(&ags[i], path, body, &r);
	st = r.status;
	if (out)
		snprintf(out, outlen, "%.*s", (int)r.body_len, r.body ? r.body : "");
	http_resp_free(&r);
	return st;
}

static json_int_t jint(json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* Leader address as agent i sees it ("" when none). */
static void leader_addr(int i, char *out, size_t len)
{
	struct http_resp r;

	out[0] = '\0';
	if (http_get(&ags[i], "/v1/status/leader", &r) == 0 && r.status == 200 && r.body_len > 2)
		snprintf(out, len, "%.*s", (int)r.body_len - 2, r.body + 1);
	http_resp_free(&r);
}

/* Servers in the Raft configuration as agent i's leader reports them. */
static int raft_servers(int i)
{
	json_t *c = get_json(i, "/v1/operator/raft/configuration", 200, NULL);
	int n = c ? (int)json_array_size(json_object_get(c, "Servers")) : -1;

	json_decref(c);
	return n;
}

/* Polls agent i's health until it answers want (200/429) with n servers;
 * returns the document or NULL at the deadline. */
static json_t *wait_health(int i, long want, size_t n, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		long st = 0;
		json_t *h = get_json(i, "/v1/operator/autopilot/health", want, &st);

		if (h && json_array_size(json_object_get(h, "Servers")) == n)
			return h;
		json_decref(h);
		if (harness_now_ms() >= deadline)
			return NULL;
		harness_pause_ms(100);
	}
}

/* Runs `cairn operator autopilot <args> -http-addr=<agent i>`; returns its
 * exit status with stdout and stderr in out. */
static int cli(int i, const char *args, char *out, size_t outlen)
{
	char cmd[1024];
	const char *root = getenv("CAIRN_BUILD_ROOT");
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/cli/cairn operator autopilot %s -http-addr=127.0.0.1:%d 2>&1",
		 root ? root : ".", args, ags[i].http_port);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, outlen - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(configuration_defaults_set_cas)
{
	char body[256];
	json_t *c;
	json_int_t mi;

	REQUIRE_CLUSTER();
	for (int i = 0; i < N; i++) {
		c = get_json(i, "/v1/operator/autopilot/configuration", 200, NULL);
		ck_assert_ptr_nonnull(c);
		ck_assert(json_is_true(json_object_get(c, "CleanupDeadServers")));
		ck_assert_str_eq(jstr(c, "LastContactThreshold"), "200ms");
		ck_assert_int_eq(jint(c, "MaxTrailingLogs"), 250);
		ck_assert_int_eq(jint(c, "MinQuorum"), 0);
		ck_assert_str_eq(jstr(c, "ServerStabilizationTime"), "10s");
		json_decref(c);
	}
	/* cas=0: only when never set */
	ck_assert_int_eq(put(1, "/v1/operator/autopilot/configuration?cas=0",
			     "{\"CleanupDeadServers\": false, \"LastContactThreshold\": \"1.5s\","
			     " \"MaxTrailingLogs\": 300, \"MinQuorum\": 2,"
			     " \"ServerStabilizationTime\": \"1m30s\"}",
			     body, sizeof(body)),
			 200);
	ck_assert_str_eq(body, "true");
	c = get_json(2, "/v1/operator/autopilot/configuration", 200, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert(json_is_false(json_object_get(c, "CleanupDeadServers")));
	ck_assert_str_eq(jstr(c, "LastContactThreshold"), "1.5s");
	ck_assert_int_eq(jint(c, "MaxTrailingLogs"), 300);
	ck_assert_int_eq(jint(c, "MinQuorum"), 2);
	ck_assert_str_eq(jstr(c, "ServerStabilizationTime"), "1m30s");
	mi = jint(c, "ModifyIndex");
	ck_assert_int_gt(mi, 0);
	ck_assert_int_eq(jint(c, "CreateIndex"), mi);
	json_decref(c);
	/* a stale cas is refused and changes nothing */
	ck_assert_int_eq(put(0, "/v1/operator/autopilot/configuration?cas=0",
			     "{\"CleanupDeadServers\": true}", body, sizeof(body)),
			 200);
	ck_assert_str_eq(body, "false");
	snprintf(body, sizeof(body), "/v1/operator/autopilot/configuration?cas=%lld",
		 (long long)mi);
	{
		char out[64];
		/* durations as nanoseconds work too */
		ck_assert_int_eq(put(0, body,
				     "{\"CleanupDeadServers\": false, \"LastContactThreshold\":"
				     " 200000000, \"MaxTrailingLogs\": 250,"
				     " \"ServerStabilizationTime\": \"10s\"}",
				     out, sizeof(out)),
				 200);
		ck_assert_str_eq(out, "true");
	}
	c = get_json(0, "/v1/operator/autopilot/configuration", 200, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(jstr(c, "LastContactThreshold"), "200ms");
	ck_assert_int_eq(jint(c, "MinQuorum"), 0); /* left out: zero, as Consul */
	ck_assert_int_eq(jint(c, "CreateIndex"), mi);
	ck_assert_int_gt(jint(c, "ModifyIndex"), mi);
	json_decref(c);
	/* the CLI: set-config changes only the flags given (with ?cas=) */
	{
		char out[2048];

		ck_assert_int_eq(cli(0, "set-config -max-trailing-logs=260", out, sizeof(out)), 0);
		ck_assert_msg(strstr(out, "Configuration updated!") != NULL, "set-config: %s", out);
		ck_assert_int_eq(cli(1, "get-config", out, sizeof(out)), 0);
		ck_assert_msg(strstr(out, "CleanupDeadServers = false\n") &&
				  strstr(out, "LastContactThreshold = 200ms\n") &&
				  strstr(out, "MaxTrailingLogs = 260\n") &&
				  strstr(out, "MinQuorum = 0\n") &&
				  strstr(out, "ServerStabilizationTime = 10s\n"),
			      "get-config: %s", out);
		ck_assert_int_ne(cli(0, "set-config -cleanup-dead-servers=maybe", out, sizeof(out)),
				 0);
	}
	/* bad input */
	ck_assert_int_eq(put(0, "/v1/operator/autopilot/configuration?cas=x", "{}", NULL, 0), 400);
	ck_assert_int_eq(put(0, "/v1/operator/autopilot/configuration", "{\"LastContactThreshold\":"
			     " \"soon\"}", NULL, 0), 400);
	ck_assert_int_eq(put(0, "/v1/operator/autopilot/configuration", "[", NULL, 0), 400);
	ck_assert_int_eq(put(0, "/v1/operator/autopilot/health", "{}", NULL, 0), 405);
}
END_TEST

START_TEST(health_three_and_config_survives_leader_change)
{
	json_t *h, *s;
	size_t k;
	int leaders = 0, l, nl;
	pid_t old;

	REQUIRE_CLUSTER();
	h = wait_health(1, 200, 3, 30000);
	ck_assert_msg(h != NULL, "no healthy 3-server answer");
	ck_assert(json_is_true(json_object_get(h, "Healthy")));
	ck_assert_int_eq(jint(h, "FailureTolerance"), 1);
	json_array_foreach(json_object_get(h, "Servers"), k, s)
	{
		bool named = false;

		for (int i = 0; i < N; i++)
			named |= strcmp(jstr(s, "Name"), ags[i].name) == 0;
		ck_assert_msg(named, "server name %s", jstr(s, "Name"));
		ck_assert_str_eq(jstr(s, "SerfStatus"), "alive");
		ck_assert(json_is_true(json_object_get(s, "Healthy")));
		ck_assert(json_is_true(json_object_get(s, "Voter")));
		ck_assert_int_gt(jint(s, "LastTerm"), 0);
		ck_assert_int_gt(jint(s, "LastIndex"), 0);
		ck_assert_int_gt((long)strlen(jstr(s, "StableSince")), 0);
		leaders += json_is_true(json_object_get(s, "Leader"));
		if (json_is_true(json_object_get(s, "Leader")))
			ck_assert_str_eq(jstr(s, "LastContact"), "0s");
	}
	ck_assert_int_eq(leaders, 1);
	json_decref(h);

	/* the configuration is replicated: with the leader's raftd frozen,
	 * the two others elect a leader that serves the same */
	l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);
	old = harness_daemon_pid(&ags[l], "raftd");
	ck_assert_int_gt(old, 0);
	ck_assert_int_eq(kill(old, SIGSTOP), 0);
	nl = -1;
	for (uint64_t deadline = harness_now_ms() + 30000; nl < 0 && harness_now_ms() < deadline;) {
		char a[128] = "", b[128] = "", want[64];
		int o1 = (l + 1) % N, o2 = (l + 2) % N;

		leader_addr(o1, a, sizeof(a));
		leader_addr(o2, b, sizeof(b));
		for (int i = 0; i < N && a[0] && strcmp(a, b) == 0; i++) {
			snprintf(want, sizeof(want), "127.0.0.1:%d", ags[i].server_port);
			if (i != l && strcmp(want, a) == 0)
				nl = i;
		}
		if (nl < 0)
			harness_pause_ms(100);
	}
	if (nl >= 0) {
		json_t *c = get_json(nl, "/v1/operator/autopilot/configuration", 200, NULL);

		(void)kill(old, SIGCONT);
		ck_assert_ptr_nonnull(c);
		ck_assert(json_is_false(json_object_get(c, "CleanupDeadServers")));
		ck_assert_int_eq(jint(c, "MaxTrailingLogs"), 260);
		json_decref(c);
	}
	(void)kill(old, SIGCONT);
	ck_assert_msg(nl >= 0, "no new leader while the old one's raftd was frozen");
	/* the old leader follows again and everyone is healthy */
	h = wait_health(nl, 200, 3, 30000);
	ck_assert_msg(h != NULL, "not healthy again after the raftd resumed");
	json_decref(h);
}
END_TEST

START_TEST(dead_server_cleanup)
{
	int l, victim = -1;
	json_t *h, *s;
	size_t k;
	bool failed_seen = false;
	uint64_t deadline;

	REQUIRE_CLUSTER();
	l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);
	victim = (l + 1) % N;
	harness_agent_kill9(&ags[victim]);
	/* unhealthy (429) while it is in the configuration; with cleanup off
	 * it stays there, reported failed by gossip */
	deadline = harness_now_ms() + 30000;
	while (!failed_seen && harness_now_ms() < deadline) {
		h = wait_health(l, 429, 3, 5000);
		if (h) {
			ck_assert(json_is_false(json_object_get(h, "Healthy")));
			ck_assert_int_eq(jint(h, "FailureTolerance"), 0);
			json_array_foreach(json_object_get(h, "Servers"), k, s)
			{
				if (strcmp(jstr(s, "Name"), ags[victim].name) == 0) {
					ck_assert(json_is_false(json_object_get(s, "Healthy")));
					failed_seen |= strcmp(jstr(s, "SerfStatus"), "failed") == 0;
				}
			}
			json_decref(h);
		}
		if (!failed_seen)
			harness_pause_ms(200);
	}
	ck_assert_msg(failed_seen, "gossip never reported %s failed", ags[victim].name);
	/* three cleanup rounds (one a second) later it is still a peer */
	deadline = harness_now_ms() + 3000;
	while (harness_now_ms() < deadline) {
		ck_assert_int_eq(raft_servers(l), 3);
		harness_pause_ms(250);
	}
	/* switched on: removed, and the two left are healthy */
	ck_assert_int_eq(put(l, "/v1/operator/autopilot/configuration",
			     "{\"CleanupDeadServers\": true, \"LastContactThreshold\": \"200ms\","
			     " \"MaxTrailingLogs\": 250, \"ServerStabilizationTime\": \"10s\"}",
			     NULL, 0),
			 200);
	deadline = harness_now_ms() + 20000;
	while (raft_servers(l) != 2 && harness_now_ms() < deadline)
		harness_pause_ms(100);
	ck_assert_int_eq(raft_servers(l), 2);
	h = wait_health(l, 200, 2, 20000);
	ck_assert_msg(h != NULL, "two servers not healthy after the removal");
	ck_assert_int_eq(jint(h, "FailureTolerance"), 0);
	json_array_foreach(json_object_get(h, "Servers"), k, s)
	    ck_assert_str_ne(jstr(s, "Name"), ags[victim].name);
	json_decref(h);
	/* and they still commit writes */
	{
		struct http_resp r;
		ck_assert_int_eq(http_put(&ags[l], "/v1/kv/autopilot-after", "x", &r), 0);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("autopilot");
	TCase *tc = tcase_create("three-servers");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, configuration_defaults_set_cas);
	tcase_add_test(tc, health_three_and_config_survives_leader_change);
	tcase_add_test(tc, dead_server_cleanup);
	suite_add_tcase(s, tc);
	{
		SRunner *sr = srunner_create(s);
		int failed;

		srunner_set_fork_status(sr, CK_NOFORK);
		srunner_run_all(sr, CK_ENV);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	}
}
