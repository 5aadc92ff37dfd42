/* Process test: restarting apid, dnsd or gossipd alone. While one is down
 * (held down by stopping the supervising agent) the others keep serving;
 * once the agent restarts it, it works again and nothing else restarted. */
#include <ldns/ldns.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("restart-node", NULL)

static const char *const roles[] = {"apid", "dnsd", "gossipd", "raftd"};

struct pids {
	pid_t p[4]; /* in roles[] order */
};

static struct pids all_pids(void)
{
	struct pids s;

	for (size_t i = 0; i < 4; i++) {
		s.p[i] = harness_daemon_pid(&ag, roles[i]);
		ck_assert_msg(s.p[i] > 0, "cairn-%s not running", roles[i]);
	}
	return s;
}

static pid_t pid_of(const struct pids *s, const char *role)
{
	for (size_t i = 0; i < 4; i++)
		if (strcmp(roles[i], role) == 0)
			return s->p[i];
	return 0;
}

/* Every daemon except `except` still has the pid it had before. */
static void expect_unchanged(const struct pids *before, const char *except)
{
	for (size_t i = 0; i < 4; i++) {
		pid_t now;
		if (strcmp(roles[i], except) == 0)
			continue;
		now = harness_daemon_pid(&ag, roles[i]);
		ck_assert_msg(now == before->p[i], "cairn-%s restarted (%d -> %d) while %s was down",
			      roles[i], (int)before->p[i], (int)now, except);
	}
}

static bool kv_roundtrip(const char *key, const char *val)
{
	char path[128];
	struct http_resp r;
	bool ok;

	snprintf(path, sizeof(path), "/v1/kv/%s", key);
	http_put(&ag, path, val, &r);
	ok = r.status == 200 && r.body_len == 4 && memcmp(r.body, "true", 4) == 0;
	http_resp_free(&r);
	if (!ok)
		return false;
	snprintf(path, sizeof(path), "/v1/kv/%s?raw", key);
	http_get(&ag, path, &r);
	ok = r.status == 200 && r.body_len == strlen(val) && memcmp(r.body, val, r.body_len) == 0;
	http_resp_free(&r);
	return ok;
}

static bool dns_answers(uint64_t timeout_ms)
{
	char name[128];
	uint64_t deadline = harness_now_ms() + timeout_ms;

	snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
	for (;;) {
		struct dns_result d;
		if (dns_query(&ag, name, LDNS_RR_TYPE_A, 1000, &d) == 0 &&
		    d.rcode == LDNS_RCODE_NOERROR && d.n_a == 1 && strcmp(d.a[0], "127.0.0.1") == 0)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(100);
	}
}

static bool members_has_self(uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct http_resp r;
		bool ok = false;
		http_get(&ag, "/v1/agent/members", &r);
		if (r.status == 200) {
			json_t *j = http_json(&r);
			ok = json_is_array(j) && json_array_size(j) == 1 &&
			     json_is_string(json_object_get(json_array_get(j, 0), "Name")) &&
			     strcmp(json_string_value(json_object_get(json_array_get(j, 0), "Name")),
				    ag.name) == 0;
			json_decref(j);
		}
		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(100);
	}
}

/* Stops the agent (so it cannot restart anything), SIGKILLs role's daemon
 * and waits until it is gone. Returns its old pid. */
static pid_t take_down(const char *role)
{
	pid_t p = harness_daemon_pid(&ag, role);
	uint64_t deadline;

	ck_assert_msg(p > 0, "cairn-%s not running", role);
	ck_assert_int_eq(kill(ag.pid, SIGSTOP), 0);
	ck_assert_int_eq(kill(p, SIGKILL), 0);
	deadline = harness_now_ms() + 10000;
	while (harness_pid_alive(p) && harness_now_ms() < deadline)
		harness_pause_ms(20);
	ck_assert_msg(!harness_pid_alive(p), "cairn-%s survived SIGKILL", role);
	return p;
}

/* Resumes the agent and waits for it to restart role. */
static void bring_back(const char *role, pid_t old)
{
	pid_t p;

	ck_assert_int_eq(kill(ag.pid, SIGCONT), 0);
	p = harness_wait_daemon(&ag, role, old, 30000);
	ck_assert_msg(p > 0, "the agent did not restart cairn-%s within 30 s", role);
}

START_TEST(dnsd_down_others_serve)
{
	struct pids before;
	pid_t old;
	char name[128];
	struct dns_result d;

	REQUIRE_AGENT();
	ck_assert_msg(dns_answers(20000), "DNS not answering before the test");
	before = all_pids();
	old = take_down("dnsd");
	ck_assert_msg(kv_roundtrip("rs/dnsd-down", "kv-while-dnsd-down"),
		      "KV failed while dnsd was down");
	ck_assert_msg(members_has_self(5000), "/v1/agent/members failed while dnsd was down");
	snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
	ck_assert_msg(dns_query(&ag, name, LDNS_RR_TYPE_A, 500, &d) != 0,
		      "DNS answered with dnsd killed: wrong process found?");
	bring_back("dnsd", old);
	ck_assert_msg(dns_answers(30000), "restarted dnsd does not answer within 30 s");
	ck_assert_msg(kv_roundtrip("rs/dnsd-back", "x"), "KV failed after dnsd came back");
	expect_unchanged(&before, "dnsd");
	ck_assert_int_ne(pid_of(&before, "dnsd"), harness_daemon_pid(&ag, "dnsd"));
}
END_TEST

START_TEST(apid_down_others_serve)
{
	struct pids before;
	pid_t old;
	struct http_resp r;

	REQUIRE_AGENT();
	ck_assert_msg(kv_roundtrip("rs/before-apid", "kept"), "KV not working before the test");
	before = all_pids();
	old = take_down("apid");
	ck_assert_msg(dns_answers(10000), "DNS stopped answering while apid was down");
	http_get(&ag, "/v1/status/leader", &r);
	ck_assert_msg(r.status == 0, "HTTP answered %ld with apid killed", r.status);
	http_resp_free(&r);
	bring_back("apid", old);
	ck_assert_msg(harness_wait_leader(&ag, 30000), "restarted apid has no leader in 30 s");
	http_get(&ag, "/v1/kv/rs/before-apid?raw", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "kept");
	http_resp_free(&r);
	ck_assert_msg(kv_roundtrip("rs/after-apid", "y"), "KV write failed after apid came back");
	ck_assert_msg(members_has_self(30000), "members failed after apid came back");
	expect_unchanged(&before, "apid");
}
END_TEST

START_TEST(gossipd_down_others_serve)
{
	struct pids before;
	pid_t old;

	REQUIRE_AGENT();
	ck_assert_msg(members_has_self(20000), "members not working before the test");
	before = all_pids();
	old = take_down("gossipd");
	ck_assert_msg(kv_roundtrip("rs/gossipd-down", "z"), "KV failed while gossipd was down");
	ck_assert_msg(dns_answers(10000), "DNS stopped answering while gossipd was down");
	{
		/* members may fail now, but must answer (no hang, no crash). */
		struct http_resp r;
		http_get(&ag, "/v1/agent/members", &r);
		ck_assert_msg(r.status == 200 || r.status == 500,
			      "members while gossipd is down: %ld (%s)", r.status, r.err);
		http_resp_free(&r);
	}
	bring_back("gossipd", old);
	ck_assert_msg(members_has_self(30000), "members does not work within 30 s of gossipd's "
					       "restart (apid did not reconnect?)");
	ck_assert_msg(kv_roundtrip("rs/gossipd-back", "w"), "KV failed after gossipd came back");
	expect_unchanged(&before, "gossipd");
}
END_TEST

START_TEST(sigterm_stops_everything)
{
	char err[1024];
	int rc;

	REQUIRE_AGENT();
	rc = harness_agent_terminate(&ag, SIGTERM, 20000, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-restart");
	TCase *tc = tcase_create("restart");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, dnsd_down_others_serve);
	tcase_add_test(tc, apid_down_others_serve);
	tcase_add_test(tc, gossipd_down_others_serve);
	tcase_add_test(tc, sigterm_stops_everything);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
