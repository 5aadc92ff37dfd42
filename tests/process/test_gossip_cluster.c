/* Process test: SWIM gossip between real agents on loopback. Three agents
 * (servers, bootstrap-expect 1 each, until Raft clustering lands) share a
 * gossip key and join through the first; they converge, see a stopped
 * gossipd fail and come back, see a crashed agent fail and rejoin after a
 * restart, see a graceful leave and a force-leave; an agent with another
 * key cannot join and changes nothing. */
#include <sys/wait.h>
#include <unistd.h>

#include "ptest.h"

#define N_AG 3
#define WAIT_MS 60000

static struct agent ags[N_AG], stranger;
static char key1[64], key2[64], join_arg[64];
static const char *args_first[8], *args_rest[8], *args_stranger[8];
static char start_err[4096];
static int start_rc = -1;

/* Runs `cairn <args>` and copies its first output line (stdout and
 * stderr) into out; returns the exit status. */
static int run_cli(const char *args, char *out, size_t outlen)
{
	char cmd[1024];
	const char *root = getenv("CAIRN_BUILD_ROOT");
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/cli/cairn %s 2>&1", root ? root : ".", args);
	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	out[0] = 0;
	if (!fgets(out, (int)outlen, p))
		out[0] = 0;
	out[strcspn(out, "\n")] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A key from `cairn keygen`: 44 characters of base64. */
static void make_key(char *out)
{
	ck_assert_int_eq(run_cli("keygen", out, 64), 0);
	ck_assert_uint_eq(strlen(out), 44);
}

static void setup(void)
{
	static const char *names[N_AG] = {"gossip-a", "gossip-b", "gossip-c"};

	make_key(key1);
	make_key(key2);
	args_first[0] = "-encrypt";
	args_first[1] = key1;
	args_first[2] = NULL;
	start_rc =
	    harness_agent_start(&ags[0], names[0], args_first, 90000, start_err, sizeof(start_err));
	if (start_rc < 0)
		return;
	snprintf(join_arg, sizeof(join_arg), "127.0.0.1:%d", ags[0].serf_lan_port);
	args_rest[0] = "-encrypt";
	args_rest[1] = key1;
	args_rest[2] = "-retry-join";
	args_rest[3] = join_arg;
	args_rest[4] = NULL;
	for (int i = 1; i < N_AG && start_rc == 0; i++)
		start_rc = harness_agent_start(&ags[i], names[i], args_rest, 90000, start_err,
					       sizeof(start_err));
	args_stranger[0] = "-encrypt";
	args_stranger[1] = key2;
	args_stranger[2] = NULL;
	if (start_rc == 0)
		start_rc = harness_agent_start(&stranger, "gossip-stranger", args_stranger, 90000,
					       start_err, sizeof(start_err));
	if (start_rc < 0)
		fprintf(stderr, "agent start failed: %s\n", start_err);
}

static void teardown(void)
{
	for (int i = 0; i < N_AG; i++)
		harness_agent_stop(&ags[i]);
	harness_agent_stop(&stranger);
}

/* Status of member name in a's /v1/agent/members; 0 if absent, -1 if the
 * request failed. *out_n gets the number of members. */
static int member_status(const struct agent *a, const char *name, size_t *out_n)
{
	struct http_resp r;
	json_t *doc, *m;
	size_t i;
	int st = -1;

	if (http_get(a, "/v1/agent/members", &r) < 0 || r.status != 200) {
		http_resp_free(&r);
		return -1;
	}
	doc = http_json(&r);
	http_resp_free(&r);
	if (!json_is_array(doc)) {
		json_decref(doc);
		return -1;
	}
	st = 0;
	json_array_foreach(doc, i, m)
	{
		const char *n = json_string_value(json_object_get(m, "Name"));

		if (n && strcmp(n, name) == 0)
			st = (int)json_integer_value(json_object_get(m, "Status"));
	}
	if (out_n)
		*out_n = json_array_size(doc);
	json_decref(doc);
	return st;
}

/* Polls until a sees name with status want. */
static bool wait_status(const struct agent *a, const char *name, int want, uint64_t timeout_ms)
{
	uint64_t end = harness_now_ms() + timeout_ms;

	for (;;) {
		if (member_status(a, name, NULL) == want)
			return true;
		if (harness_now_ms() >= end)
			return false;
		harness_pause_ms(200);
	}
}

#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "agents did not start: %s", start_err)

#define EXPECT_SEES(ag_, who_, want_)                                                              \
	ck_assert_msg(wait_status(&(ag_), (who_), (want_), WAIT_MS),                               \
		      "%s does not see %s with Status %d (has %d)", (ag_).name, (who_), (want_),   \
		      member_status(&(ag_), (who_), NULL))

START_TEST(members_converge)
{
	size_t n = 0;

	REQUIRE_CLUSTER();
	for (int i = 0; i < N_AG; i++)
		for (int j = 0; j < N_AG; j++)
			EXPECT_SEES(ags[i], ags[j].name, 1);
	ck_assert_int_eq(member_status(&ags[0], ags[2].name, &n), 1);
	ck_assert_uint_eq(n, N_AG);
}
END_TEST

START_TEST(wrong_key_cannot_join)
{
	struct http_resp r;
	char path[128];
	size_t n = 0;

	REQUIRE_CLUSTER();
	EXPECT_SEES(ags[0], ags[1].name, 1);
	/* a join through the API is answered only when a member answers:
	 * nobody can open the stranger's packets, so it fails */
	snprintf(path, sizeof(path), "/v1/agent/join/127.0.0.1:%d", ags[0].serf_lan_port);
	ck_assert_int_eq(http_put(&stranger, path, "", &r), 0);
	EXPECT_STATUS(r, 500);
	http_resp_free(&r);
	ck_assert_int_eq(member_status(&stranger, ags[0].name, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(member_status(&ags[0], stranger.name, &n), 0);
	ck_assert_uint_eq(n, N_AG);
	/* the right address with the right key works (c is already a member:
	 * a join is a full state exchange), here through the CLI */
	{
		char args[256], out[256];

		snprintf(args, sizeof(args), "join -http-addr=127.0.0.1:%d 127.0.0.1:%d",
			 ags[2].http_port, ags[0].serf_lan_port);
		ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
		ck_assert_str_eq(out, "Successfully joined cluster by contacting 1 nodes.");
		snprintf(args, sizeof(args), "join -http-addr=127.0.0.1:%d 127.0.0.1:%d",
			 stranger.http_port, ags[0].serf_lan_port);
		ck_assert_int_eq(run_cli(args, out, sizeof(out)), 1);
	}
	/* GET is not how Consul joins */
	ck_assert_int_eq(http_get(&ags[2], path, &r), 0);
	EXPECT_STATUS(r, 405);
	http_resp_free(&r);
}
END_TEST

START_TEST(stopped_gossipd_fails_then_refutes)
{
	pid_t pid;

	REQUIRE_CLUSTER();
	EXPECT_SEES(ags[0], ags[2].name, 1);
	pid = harness_daemon_pid(&ags[2], "gossipd");
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill(pid, SIGSTOP), 0);
	EXPECT_SEES(ags[0], ags[2].name, 4);
	EXPECT_SEES(ags[1], ags[2].name, 4);
	ck_assert_int_eq(kill(pid, SIGCONT), 0);
	/* it learns it was declared dead and refutes with a higher
	 * incarnation (its reconnects and the others' both help) */
	EXPECT_SEES(ags[0], ags[2].name, 1);
	EXPECT_SEES(ags[1], ags[2].name, 1);
	ck_assert_int_eq(harness_daemon_pid(&ags[2], "gossipd"), pid);
}
END_TEST

START_TEST(crashed_agent_fails_then_rejoins)
{
	char err[4096];

	REQUIRE_CLUSTER();
	EXPECT_SEES(ags[0], ags[1].name, 1);
	harness_agent_kill9(&ags[1]);
	EXPECT_SEES(ags[0], ags[1].name, 4);
	EXPECT_SEES(ags[2], ags[1].name, 4);
	ck_assert_msg(harness_agent_relaunch(&ags[1], 90000, err, sizeof(err)) == 0, "%s", err);
	EXPECT_SEES(ags[0], ags[1].name, 1);
	EXPECT_SEES(ags[2], ags[1].name, 1);
	EXPECT_SEES(ags[1], ags[0].name, 1);
	EXPECT_SEES(ags[1], ags[2].name, 1);
}
END_TEST

/* The event named name in a's /v1/event/list (a new reference), or NULL;
 * *out_index gets X-Consul-Index. */
static json_t *find_event(const struct agent *a, const char *name, uint64_t *out_index)
{
	struct http_resp r;
	json_t *doc, *e, *found = NULL;
	size_t i;

	if (http_get(a, "/v1/event/list", &r) < 0 || r.status != 200) {
		http_resp_free(&r);
		return NULL;
	}
	if (out_index)
		*out_index = http_index(&r);
	doc = http_json(&r);
	http_resp_free(&r);
	json_array_foreach(doc, i, e)
	{
		const char *n = json_string_value(json_object_get(e, "Name"));

		if (n && strcmp(n, name) == 0)
			found = json_incref(e);
	}
	json_decref(doc);
	return found;
}

static json_t *wait_event(const struct agent *a, const char *name)
{
	uint64_t end = harness_now_ms() + WAIT_MS;

	for (;;) {
		json_t *e = find_event(a, name, NULL);

		if (e || harness_now_ms() >= end)
			return e;
		harness_pause_ms(100);
	}
}

START_TEST(user_events)
{
	struct http_resp r;
	json_t *doc, *e;
	uint64_t idx = 0;
	char path[256];

	REQUIRE_CLUSTER();
	EXPECT_SEES(ags[0], ags[2].name, 1);
	/* fired on a, filtered to a alone */
	snprintf(path, sizeof(path), "/v1/event/fire/only-a?node=^%s$", ags[0].name);
	ck_assert_int_eq(http_put(&ags[0], path, "", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	/* fired on a for everyone, with a payload */
	ck_assert_int_eq(http_put(&ags[0], "/v1/event/fire/deploy", "hello", &r), 0);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	doc = http_json(&r);
	http_resp_free(&r);
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "Name")), "deploy");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "Payload")), "aGVsbG8=");
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(doc, "ID"))), 36);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "Version")), 1);

	/* it reaches c by gossip, same ID */
	e = wait_event(&ags[2], "deploy");
	ck_assert_msg(e != NULL, "event did not reach %s", ags[2].name);
	ck_assert_str_eq(json_string_value(json_object_get(e, "ID")),
			 json_string_value(json_object_get(doc, "ID")));
	ck_assert_str_eq(json_string_value(json_object_get(e, "Payload")), "aGVsbG8=");
	json_decref(e);
	json_decref(doc);
	e = wait_event(&ags[0], "only-a");
	ck_assert_ptr_nonnull(e);
	json_decref(e);
	ck_assert_ptr_null(find_event(&ags[2], "only-a", &idx));
	ck_assert_uint_gt(idx, 0);

	/* blocking: an index already passed answers at once; the current one
	 * waits out ?wait and answers the same index */
	ck_assert_int_eq(http_get(&ags[2], "/v1/event/list?index=0&wait=1s", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/event/list?index=%llu&wait=1s", (unsigned long long)idx);
	ck_assert_int_eq(http_get(&ags[2], path, &r), 0);
	EXPECT_STATUS(r, 200);
	ck_assert_uint_eq(http_index(&r), idx);
	http_resp_free(&r);
	/* filtered by name */
	ck_assert_int_eq(http_get(&ags[2], "/v1/event/list?name=nothing", &r), 0);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "[]");
	http_resp_free(&r);
}
END_TEST

/* Keys[key] and NumNodes of a's /v1/operator/keyring (LAN entry). */
static long keyring_count(const struct agent *a, const char *key, long *out_nodes)
{
	struct http_resp r;
	json_t *doc, *pool;
	long n = -1;

	if (http_get(a, "/v1/operator/keyring", &r) < 0 || r.status != 200) {
		fprintf(stderr, "keyring list: %ld %s\n", r.status, r.body ? r.body : "");
		http_resp_free(&r);
		return -1;
	}
	doc = http_json(&r);
	http_resp_free(&r);
	pool = json_array_get(doc, 0);
	if (json_is_object(pool)) {
		json_t *v = json_object_get(json_object_get(pool, "Keys"), key);

		n = v ? (long)json_integer_value(v) : 0;
		if (out_nodes)
			*out_nodes = (long)json_integer_value(json_object_get(pool, "NumNodes"));
	}
	json_decref(doc);
	return n;
}

START_TEST(key_rotation)
{
	char key3[64], args[256], out[256];
	long nodes = 0;

	REQUIRE_CLUSTER();
	for (int i = 0; i < N_AG; i++)
		for (int j = 0; j < N_AG; j++)
			EXPECT_SEES(ags[i], ags[j].name, 1);
	make_key(key3);
	ck_assert_int_eq(keyring_count(&ags[0], key1, &nodes), N_AG);
	ck_assert_int_eq(nodes, N_AG);
	/* install everywhere, make primary, remove the old one: Consul's
	 * rotation, through the CLI on different agents */
	snprintf(args, sizeof(args), "keyring -install=%s -http-addr=127.0.0.1:%d", key3,
		 ags[0].http_port);
	ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
	ck_assert_int_eq(keyring_count(&ags[2], key3, NULL), N_AG);
	snprintf(args, sizeof(args), "keyring -use=%s -http-addr=127.0.0.1:%d", key3,
		 ags[1].http_port);
	ck_assert_msg(run_cli(args, out, sizeof(out)) == 0, "use: %s", out);
	snprintf(args, sizeof(args), "keyring -remove=%s -http-addr=127.0.0.1:%d", key1,
		 ags[2].http_port);
	ck_assert_msg(run_cli(args, out, sizeof(out)) == 0, "remove: %s", out);
	ck_assert_int_eq(keyring_count(&ags[0], key1, NULL), 0);
	ck_assert_int_eq(keyring_count(&ags[0], key3, &nodes), N_AG);
	snprintf(args, sizeof(args), "keyring -list -http-addr=127.0.0.1:%d", ags[0].http_port);
	ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "==> Gathering installed encryption keys...");
	/* the pool still works on the new key alone: an event goes round */
	{
		struct http_resp r;
		json_t *e;

		ck_assert_int_eq(http_put(&ags[1], "/v1/event/fire/after-rotation", "", &r), 0);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
		e = wait_event(&ags[2], "after-rotation");
		ck_assert_ptr_nonnull(e);
		json_decref(e);
	}
	for (int i = 0; i < N_AG; i++)
		for (int j = 0; j < N_AG; j++)
			ck_assert_int_eq(member_status(&ags[i], ags[j].name, NULL), 1);
	/* the primary key cannot be removed */
	snprintf(args, sizeof(args), "keyring -remove=%s -http-addr=127.0.0.1:%d", key3,
		 ags[0].http_port);
	ck_assert_int_eq(run_cli(args, out, sizeof(out)), 1);
}
END_TEST

START_TEST(leave_and_force_leave)
{
	struct http_resp r;
	char path[128];

	REQUIRE_CLUSTER();
	EXPECT_SEES(ags[0], ags[1].name, 1);
	EXPECT_SEES(ags[0], ags[2].name, 1);
	/* graceful leave: Status 3 everywhere, never 4 */
	ck_assert_int_eq(http_put(&ags[1], "/v1/agent/leave", "", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	EXPECT_SEES(ags[0], ags[1].name, 3);
	EXPECT_SEES(ags[2], ags[1].name, 3);

	/* force-leave of a failed member turns it left */
	harness_agent_kill9(&ags[2]);
	EXPECT_SEES(ags[0], ags[2].name, 4);
	snprintf(path, sizeof(path), "/v1/agent/force-leave/%s", ags[2].name);
	ck_assert_int_eq(http_put(&ags[0], path, "", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_int_eq(member_status(&ags[0], ags[2].name, NULL), 3);
	/* ... and -prune forgets it (through the CLI) */
	{
		char args[256], out[256];

		snprintf(args, sizeof(args), "force-leave -prune -http-addr=127.0.0.1:%d %s",
			 ags[0].http_port, ags[2].name);
		ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
	}
	ck_assert_int_eq(member_status(&ags[0], ags[2].name, NULL), 0);
	ck_assert_int_eq(http_put(&ags[0], "/v1/agent/force-leave/nobody", "", &r), 0);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-gossip");
	TCase *tc = tcase_create("cluster");

	tcase_set_timeout(tc, 240);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, members_converge);
	tcase_add_test(tc, wrong_key_cannot_join);
	tcase_add_test(tc, stopped_gossipd_fails_then_refutes);
	tcase_add_test(tc, crashed_agent_fails_then_rejoins);
	tcase_add_test(tc, user_events);
	tcase_add_test(tc, key_rotation);
	tcase_add_test(tc, leave_and_force_leave);
	suite_add_tcase(s, tc);
	{
		/* no fork: tests restart agents, and an agent started in a
		 * forked test would be stopped when that test's process exits */
		SRunner *sr = srunner_create(s);
		int failed;

		srunner_set_fork_status(sr, CK_NOFORK);
		srunner_run_all(sr, CK_ENV);
		failed = srunner_ntests_failed(sr);
		srunner_free(sr);
		return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	}
}
