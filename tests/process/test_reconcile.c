/* Process test: the Raft leader keeps the catalog in step with the LAN
 * pool. Three servers started with `-bootstrap-expect 3`, the second and
 * third joining the first by gossip only (no Raft join address), form one
 * Raft cluster (servers discovered through the LAN pool); every agent is a
 * catalog node with serfHealth passing; a session bound to node B holds a
 * lock; kill -9 of B's agent turns its serfHealth critical, which ends the
 * session: the key's Session is cleared, LockIndex kept, and another
 * session cannot acquire it until the lock-delay passed; B restarted is
 * passing again; a graceful leave deregisters the node. Every wait polls a
 * condition against a deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptest.h"

#define N 3
#define WAIT_MS 60000

/* Gossip joins only: the second and third retry-join the first's LAN
 * port, and the servers find each other in the LAN pool. */
PTEST_CLUSTER_FIXTURE(N,
		      {.name_prefix = "recon", .join = HARNESS_JOIN_GOSSIP, .timeout_ms = WAIT_MS})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

/* Status of node's serfHealth as agent i's catalog shows it ("" when the
 * node has none, "gone" when the node is not in /v1/catalog/nodes, NULL
 * when the request failed); the check's Name and Output into name/output. */
static const char *serf_status(int i, const char *node, char *name, char *output)
{
	static char status[32];
	struct http_resp r;
	char path[200];
	json_t *doc, *c;
	size_t k;
	bool listed = false;

	if (http_get(&ags[i], "/v1/catalog/nodes", &r) < 0 || r.status != 200) {
		http_resp_free(&r);
		return NULL;
	}
	doc = http_json(&r);
	http_resp_free(&r);
	json_array_foreach(doc, k, c)
	{
		const char *n = json_string_value(json_object_get(c, "Node"));

		listed |= n && strcmp(n, node) == 0;
	}
	json_decref(doc);
	if (!listed)
		return "gone";
	snprintf(path, sizeof(path), "/v1/health/node/%s", node);
	if (http_get(&ags[i], path, &r) < 0 || r.status != 200) {
		http_resp_free(&r);
		return NULL;
	}
	doc = http_json(&r);
	http_resp_free(&r);
	status[0] = '\0';
	json_array_foreach(doc, k, c)
	{
		const char *id = json_string_value(json_object_get(c, "CheckID"));

		if (id && strcmp(id, "serfHealth") == 0) {
			snprintf(status, sizeof(status), "%s",
				 json_string_value(json_object_get(c, "Status")));
			if (name)
				snprintf(name, 64, "%s", json_string_value(json_object_get(c, "Name")));
			if (output)
				snprintf(output, 64, "%s",
					 json_string_value(json_object_get(c, "Output")));
		}
	}
	json_decref(doc);
	return status;
}

/* Polls agent i until node's serfHealth is want ("gone": deregistered). */
static bool wait_serf(int i, const char *node, const char *want)
{
	uint64_t end = harness_now_ms() + WAIT_MS;

	for (;;) {
		const char *s = serf_status(i, node, NULL, NULL);

		if (s && strcmp(s, want) == 0)
			return true;
		if (harness_now_ms() >= end)
			return false;
		harness_pause_ms(200);
	}
}

/* PUT path with body on agent i; the answer's body (caller frees) or NULL
 * when the status is not 200. */
static char *put(int i, const char *path, const char *body)
{
	struct http_resp r;
	char *out = NULL;

	if (http_put(&ags[i], path, body, &r) == 0 && r.status == 200)
		out = strdup(r.body ? r.body : "");
	else
		fprintf(stderr, "PUT %s: %ld %s\n", path, r.status, r.body ? r.body : r.err);
	http_resp_free(&r);
	return out;
}

/* Creates a session on node (via agent i) with the given lock-delay;
 * returns its ID in id. */
static void create_session(int i, const char *node, const char *delay, char *id, size_t idlen)
{
	char body[256], *ans;
	json_t *doc;

	snprintf(body, sizeof(body), "{\"Node\":\"%s\",\"LockDelay\":\"%s\"}", node, delay);
	ans = put(i, "/v1/session/create", body);
	ck_assert_msg(ans != NULL, "session create on %s failed", node);
	doc = json_loads(ans, 0, NULL);
	free(ans);
	ck_assert_ptr_nonnull(doc);
	snprintf(id, idlen, "%s", json_string_value(json_object_get(doc, "ID")));
	json_decref(doc);
	ck_assert_uint_eq(strlen(id), 36);
}

static bool acquire(int i, const char *key, const char *sess)
{
	char path[200], *ans;
	bool ok;

	snprintf(path, sizeof(path), "/v1/kv/%s?acquire=%s", key, sess);
	ans = put(i, path, "held");
	ck_assert_ptr_nonnull(ans);
	ok = strcmp(ans, "true") == 0;
	free(ans);
	return ok;
}

/* The key's Session ("" when none) and LockIndex on agent i. */
static void key_lock(int i, const char *key, char *sess, size_t slen, uint64_t *lock_index)
{
	struct http_resp r;
	char path[200];
	json_t *doc, *e;

	snprintf(path, sizeof(path), "/v1/kv/%s", key);
	ck_assert_int_eq(http_get(&ags[i], path, &r), 0);
	EXPECT_STATUS(r, 200);
	doc = http_json(&r);
	http_resp_free(&r);
	e = json_array_get(doc, 0);
	ck_assert_ptr_nonnull(e);
	snprintf(sess, slen, "%s",
		 json_string_value(json_object_get(e, "Session"))
		     ? json_string_value(json_object_get(e, "Session"))
		     : "");
	*lock_index = (uint64_t)json_integer_value(json_object_get(e, "LockIndex"));
	json_decref(doc);
}

static bool session_gone(int i, const char *id)
{
	struct http_resp r;
	char path[200];
	bool gone;

	snprintf(path, sizeof(path), "/v1/session/info/%s", id);
	if (http_get(&ags[i], path, &r) < 0 || r.status != 200) {
		http_resp_free(&r);
		return false;
	}
	gone = r.body && (strcmp(r.body, "[]") == 0 || strcmp(r.body, "null") == 0);
	http_resp_free(&r);
	return gone;
}

START_TEST(every_agent_is_a_node_with_serf_health)
{
	REQUIRE_CLUSTER();
	for (int k = 0; k < N; k++) {
		char name[64] = "", output[64] = "";

		ck_assert_msg(wait_serf(0, ags[k].name, "passing"), "%s never passing (%s)",
			      ags[k].name, serf_status(0, ags[k].name, NULL, NULL));
		/* the same on every server (replicated) */
		for (int i = 0; i < N; i++)
			ck_assert_msg(wait_serf(i, ags[k].name, "passing"), "%s on %s",
				      ags[k].name, ags[i].name);
		ck_assert_str_eq(serf_status(0, ags[k].name, name, output), "passing");
		ck_assert_str_eq(name, "Serf Health Status");
		ck_assert_str_eq(output, "Agent alive and reachable");
	}
}
END_TEST

START_TEST(failed_agent_critical_session_invalidated)
{
	int l, b, c;
	char sid[64], sid2[64], sess[64], output[64] = "";
	uint64_t li, end;

	REQUIRE_CLUSTER();
	l = cluster_leader(WAIT_MS, -1);
	ck_assert_int_ge(l, 0);
	b = (l + 1) % N;
	c = (l + 2) % N;
	ck_assert(wait_serf(l, ags[b].name, "passing"));
	ck_assert(wait_serf(l, ags[l].name, "passing"));

	/* a session bound (by default) to node B's serfHealth holds a lock */
	create_session(l, ags[b].name, "10s", sid, sizeof(sid));
	ck_assert(acquire(l, "recon/lock", sid));
	key_lock(l, "recon/lock", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, sid);
	ck_assert_uint_eq(li, 1);

	/* B's machine dies */
	harness_agent_kill9(&ags[b]);
	ck_assert_msg(wait_serf(l, ags[b].name, "critical"), "%s not critical: %s", ags[b].name,
		      serf_status(l, ags[b].name, NULL, NULL));
	ck_assert_str_eq(serf_status(l, ags[b].name, NULL, output), "critical");
	ck_assert_str_eq(output, "Agent not live or unreachable");

	/* the session is gone and its lock released, LockIndex kept */
	end = harness_now_ms() + WAIT_MS;
	while (!session_gone(l, sid) && harness_now_ms() < end)
		harness_pause_ms(100);
	ck_assert_msg(session_gone(l, sid), "session %s survived", sid);
	key_lock(l, "recon/lock", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, "");
	ck_assert_uint_eq(li, 1);
	/* a session on a critical node cannot be created (Consul's text) */
	{
		struct http_resp r;
		char body[128];

		snprintf(body, sizeof(body), "{\"Node\":\"%s\"}", ags[b].name);
		ck_assert_int_eq(http_put(&ags[l], "/v1/session/create", body, &r), 0);
		EXPECT_STATUS(r, 500);
		ck_assert_msg(r.body && strstr(r.body, "Check 'serfHealth' is in critical state"),
			      "%s", r.body);
		http_resp_free(&r);
	}

	/* inside the 10 s lock-delay another session is refused, then it
	 * gets the lock */
	create_session(c, ags[c].name, "0s", sid2, sizeof(sid2));
	ck_assert(!acquire(l, "recon/lock", sid2));
	end = harness_now_ms() + WAIT_MS;
	while (!acquire(l, "recon/lock", sid2) && harness_now_ms() < end)
		harness_pause_ms(250);
	key_lock(l, "recon/lock", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, sid2);
	ck_assert_uint_eq(li, 2);

	/* B restarted: alive again */
	{
		char err[4096];

		ck_assert_msg(harness_agent_relaunch(&ags[b], 90000, err, sizeof(err)) == 0, "%s",
			      err);
	}
	ck_assert_msg(wait_serf(l, ags[b].name, "passing"), "%s not passing after restart",
		      ags[b].name);
}
END_TEST

START_TEST(graceful_leave_deregisters)
{
	int l, c;
	struct http_resp r;

	REQUIRE_CLUSTER();
	l = cluster_leader(WAIT_MS, -1);
	ck_assert_int_ge(l, 0);
	c = (l + 2) % N;
	ck_assert(wait_serf(l, ags[c].name, "passing"));
	ck_assert_int_eq(http_put(&ags[c], "/v1/agent/leave", "", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_msg(wait_serf(l, ags[c].name, "gone"), "%s still in the catalog: %s", ags[c].name,
		      serf_status(l, ags[c].name, NULL, NULL));
	/* the others stay */
	ck_assert_str_eq(serf_status(l, ags[l].name, NULL, NULL), "passing");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("reconcile");
	TCase *tc = tcase_create("three-servers");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, every_agent_is_a_node_with_serf_health);
	tcase_add_test(tc, failed_agent_critical_session_invalidated);
	tcase_add_test(tc, graceful_leave_deregisters);
	suite_add_tcase(s, tc);
	{
		/* no fork: a test restarts an agent, and an agent started in a
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
