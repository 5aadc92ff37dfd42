/* Process test: status and agent endpoints, DNS node lookups (ldns and dig)
 * and the `cairn` command against a real agent. */
#include <ldns/ldns.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/wait.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("api-node", NULL)

static json_t *get_json_ok(const char *path)
{
	struct http_resp r;
	json_t *j;

	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	j = http_json(&r);
	ck_assert_msg(j != NULL, "GET %s: not JSON: [%.300s]", path, r.body);
	http_resp_free(&r);
	return j;
}

START_TEST(status_leader)
{
	struct http_resp r;
	char want[64];

	REQUIRE_AGENT();
	http_get(&ag, "/v1/status/leader", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	snprintf(want, sizeof(want), "\"127.0.0.1:%d\"", ag.server_port);
	EXPECT_BODY(r, want);
	http_resp_free(&r);
}
END_TEST

START_TEST(status_peers)
{
	char want[64];
	json_t *j;

	REQUIRE_AGENT();
	j = get_json_ok("/v1/status/peers");
	snprintf(want, sizeof(want), "127.0.0.1:%d", ag.server_port);
	ck_assert_msg(json_is_array(j) && json_array_size(j) == 1, "peers: want one element");
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)), want);
	json_decref(j);
}
END_TEST

static void expect_local_member(json_t *m)
{
	json_t *tags;

	ck_assert_msg(json_is_object(m), "member is not an object");
	ck_assert_str_eq(json_string_value(json_object_get(m, "Name")), ag.name);
	ck_assert_str_eq(json_string_value(json_object_get(m, "Addr")), "127.0.0.1");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "Port")), ag.serf_lan_port);
	ck_assert_int_eq(json_integer_value(json_object_get(m, "Status")), 1);
	tags = json_object_get(m, "Tags");
	ck_assert_msg(json_is_object(tags), "member has no Tags object");
	ck_assert_str_eq(json_string_value(json_object_get(tags, "role")), "consul");
	ck_assert_str_eq(json_string_value(json_object_get(tags, "dc")), "dc1");
}

START_TEST(agent_self)
{
	json_t *j, *cfg;
	const char *id, *version;

	REQUIRE_AGENT();
	j = get_json_ok("/v1/agent/self");
	cfg = json_object_get(j, "Config");
	ck_assert_msg(json_is_object(cfg), "no Config object");
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "Datacenter")), "dc1");
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "NodeName")), ag.name);
	id = json_string_value(json_object_get(cfg, "NodeID"));
	ck_assert_msg(id && strlen(id) == 36 && id[8] == '-' && id[13] == '-' && id[18] == '-' &&
			      id[23] == '-',
		      "NodeID [%s] is not a UUID", id ? id : "(missing)");
	ck_assert_msg(json_is_true(json_object_get(cfg, "Server")), "Config.Server not true");
	version = json_string_value(json_object_get(cfg, "Version"));
	ck_assert_msg(version && version[0], "Config.Version missing");
	expect_local_member(json_object_get(j, "Member"));
	json_decref(j);

}
END_TEST

START_TEST(agent_members)
{
	json_t *j;

	REQUIRE_AGENT();
	j = get_json_ok("/v1/agent/members");
	ck_assert_msg(json_is_array(j), "members is not an array");
	ck_assert_uint_eq(json_array_size(j), 1);
	expect_local_member(json_array_get(j, 0));
	json_decref(j);
}
END_TEST

/* Polls name/type until it answers with want_rcode (dnsd may still be
 * learning the catalog); returns the last result. */
static struct dns_result dns_poll(const char *name, int type, int want_rcode)
{
	struct dns_result d;
	uint64_t deadline = harness_now_ms() + 20000;
	int rc;

	for (;;) {
		rc = dns_query(&ag, name, type, 2000, &d);
		if ((rc == 0 && d.rcode == want_rcode) || harness_now_ms() >= deadline)
			break;
		harness_pause_ms(100);
	}
	ck_assert_msg(rc == 0, "DNS %s: no answer (%s)", name, strerror(-rc));
	ck_assert_int_eq(d.id_received, d.id_sent);
	return d;
}

START_TEST(dns_node_a)
{
	char name[128];
	struct dns_result d;

	REQUIRE_AGENT();
	snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
	d = dns_poll(name, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ck_assert_int_eq(d.rcode, LDNS_RCODE_NOERROR);
	ck_assert_msg(d.aa, "answer not authoritative");
	ck_assert_uint_eq(d.n_a, 1);
	ck_assert_str_eq(d.a[0], "127.0.0.1");

	/* Names are case-insensitive. */
	for (char *p = name; *p; p++)
		*p = (char)((*p >= 'a' && *p <= 'z') ? *p - 32 : *p);
	d = dns_poll(name, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(d.n_a, 1);
	ck_assert_str_eq(d.a[0], "127.0.0.1");
}
END_TEST

START_TEST(dns_unknown_nxdomain)
{
	struct dns_result d;

	REQUIRE_AGENT();
	d = dns_poll("no-such-node.node.consul.", LDNS_RR_TYPE_A, LDNS_RCODE_NXDOMAIN);
	ck_assert_int_eq(d.rcode, LDNS_RCODE_NXDOMAIN);
	ck_assert_uint_eq(d.n_answer, 0);
	ck_assert_msg(d.soa_in_authority, "NXDOMAIN without an SOA in the authority section");
}
END_TEST

START_TEST(dns_node_forms)
{
	char name[128];
	struct dns_result d;

	REQUIRE_AGENT();
	/* With the datacenter label, as Consul accepts. */
	snprintf(name, sizeof(name), "%s.node.dc1.consul.", ag.name);
	d = dns_poll(name, LDNS_RR_TYPE_A, LDNS_RCODE_NOERROR);
	ck_assert_int_eq(d.rcode, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(d.n_a, 1);
	ck_assert_str_eq(d.a[0], "127.0.0.1");
	/* AAAA for a node with only an IPv4 address: NOERROR, no answer, SOA. */
	snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
	d = dns_poll(name, LDNS_RR_TYPE_AAAA, LDNS_RCODE_NOERROR);
	ck_assert_int_eq(d.rcode, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(d.n_a, 0);
	ck_assert_msg(d.soa_in_authority, "empty AAAA answer without an SOA");
}
END_TEST

/* Runs cmd with sh -c; returns its exit status and its stdout in out. */
static int run_cmd(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int st;

	ck_assert_msg(p != NULL, "popen %s", cmd);
	while (n + 1 < outlen) {
		size_t got = fread(out + n, 1, outlen - 1 - n, p);
		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

START_TEST(dig_node_a)
{
	char cmd[512], out[1024], name[128];
	uint64_t deadline;
	int st;

	REQUIRE_AGENT();
	if (system("command -v dig >/dev/null 2>&1") != 0) {
		fprintf(stderr, "dig_node_a: dig not installed (tools/deps test installs it)\n");
		ck_abort_msg("dig not installed");
	}
	snprintf(name, sizeof(name), "%s.node.consul", ag.name);
	snprintf(cmd, sizeof(cmd), "dig @127.0.0.1 -p %d %s A +short +time=2 +tries=1", ag.dns_port,
		 name);
	deadline = harness_now_ms() + 20000;
	do {
		st = run_cmd(cmd, out, sizeof(out));
		if (st == 0 && strcmp(out, "127.0.0.1\n") == 0)
			break;
		harness_pause_ms(100);
	} while (harness_now_ms() < deadline);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(out, "127.0.0.1\n");
}
END_TEST

START_TEST(dig_tcp_node_a)
{
	char cmd[512], out[1024];
	uint64_t deadline;
	int st;

	REQUIRE_AGENT();
	snprintf(cmd, sizeof(cmd), "dig @127.0.0.1 -p %d %s.node.consul A +tcp +short +time=2 +tries=1",
		 ag.dns_port, ag.name);
	deadline = harness_now_ms() + 20000;
	do {
		st = run_cmd(cmd, out, sizeof(out));
		if (st == 0 && strcmp(out, "127.0.0.1\n") == 0)
			break;
		harness_pause_ms(100);
	} while (harness_now_ms() < deadline);
	ck_assert_int_eq(st, 0);
	ck_assert_str_eq(out, "127.0.0.1\n");
}
END_TEST

START_TEST(cli_kv_members_version)
{
	char cairn[512], cmd[1024], out[4096];
	const char *root = getenv("CAIRN_BUILD_ROOT");
	int st;

	REQUIRE_AGENT();
	ck_assert_msg(root != NULL, "CAIRN_BUILD_ROOT not set");
	snprintf(cairn, sizeof(cairn), "%s/cli/cairn", root);

	snprintf(cmd, sizeof(cmd), "%s kv put -http-addr=127.0.0.1:%d greeting hello 2>&1", cairn,
		 ag.http_port);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d: %s", cmd, st, out);

	snprintf(cmd, sizeof(cmd), "%s kv get -http-addr=127.0.0.1:%d greeting", cairn,
		 ag.http_port);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_str_eq(out, "hello\n");

	/* The environment variables Consul's CLI honours. */
	snprintf(cmd, sizeof(cmd), "CONSUL_HTTP_ADDR=127.0.0.1:%d %s kv get greeting", ag.http_port,
		 cairn);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_str_eq(out, "hello\n");
	snprintf(cmd, sizeof(cmd), "CAIRN_HTTP_ADDR=http://127.0.0.1:%d %s kv get greeting",
		 ag.http_port, cairn);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_str_eq(out, "hello\n");

	/* What the HTTP API sees is the same value. */
	{
		struct http_resp r;
		http_get(&ag, "/v1/kv/greeting?raw", &r);
		EXPECT_STATUS(r, 200);
		EXPECT_BODY(r, "hello");
		http_resp_free(&r);
	}

	snprintf(cmd, sizeof(cmd), "%s kv delete -http-addr=127.0.0.1:%d greeting 2>&1", cairn,
		 ag.http_port);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d: %s", cmd, st, out);
	snprintf(cmd, sizeof(cmd), "%s kv get -http-addr=127.0.0.1:%d greeting 2>&1", cairn,
		 ag.http_port);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st != 0, "kv get of a deleted key exited 0: %s", out);

	snprintf(cmd, sizeof(cmd), "%s members -http-addr=127.0.0.1:%d", cairn, ag.http_port);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_msg(strstr(out, ag.name) && strstr(out, "alive") && strstr(out, "server"),
		      "members output lacks name/alive/server:\n%s", out);

	snprintf(cmd, sizeof(cmd), "%s version", cairn);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_msg(strlen(out) > 0, "cairn version printed nothing");
}
END_TEST

START_TEST(cli_kv_cas_flags_recurse)
{
	char cairn[512], cmd[1024], out[4096], addr[64];
	const char *root = getenv("CAIRN_BUILD_ROOT");
	struct http_resp r;
	json_t *j;
	long long mi;
	int st;

	REQUIRE_AGENT();
	ck_assert_msg(root != NULL, "CAIRN_BUILD_ROOT not set");
	snprintf(cairn, sizeof(cairn), "%s/cli/cairn", root);
	snprintf(addr, sizeof(addr), "-http-addr=127.0.0.1:%d", ag.http_port);

	snprintf(cmd, sizeof(cmd), "%s kv put %s -flags=42 cli/a one 2>&1", cairn, addr);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d: %s", cmd, st, out);
	ck_assert_str_eq(out, "Success! Data written to: cli/a\n");
	j = get_json_ok("/v1/kv/cli/a");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(j, 0), "Flags")), 42);
	mi = json_integer_value(json_object_get(json_array_get(j, 0), "ModifyIndex"));
	json_decref(j);

	/* -cas with a stale index fails with exit 1; with the current one, works. */
	snprintf(cmd, sizeof(cmd), "%s kv put %s -cas -modify-index=%lld cli/a two 2>&1", cairn,
		 addr, mi + 1000);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st != 0, "stale -cas put succeeded: %s", out);
	ck_assert_msg(strstr(out, "CAS failed") != NULL, "stale -cas put said: %s", out);
	snprintf(cmd, sizeof(cmd), "%s kv put %s -cas -modify-index=%lld cli/a two 2>&1", cairn,
		 addr, mi);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "-cas put with the current index failed: %s", out);
	http_get(&ag, "/v1/kv/cli/a?raw", &r);
	EXPECT_BODY(r, "two");
	http_resp_free(&r);

	snprintf(cmd, sizeof(cmd), "%s kv put %s cli/b/c three >/dev/null 2>&1", cairn, addr);
	ck_assert_int_eq(run_cmd(cmd, out, sizeof(out)), 0);
	/* Consul prints KEY:VALUE per line for -recurse. */
	snprintf(cmd, sizeof(cmd), "%s kv get %s -recurse cli/", cairn, addr);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d", cmd, st);
	ck_assert_str_eq(out, "cli/a:two\ncli/b/c:three\n");

	snprintf(cmd, sizeof(cmd), "%s kv delete %s -recurse cli/ 2>&1", cairn, addr);
	st = run_cmd(cmd, out, sizeof(out));
	ck_assert_msg(st == 0, "%s: exit %d: %s", cmd, st, out);
	ck_assert_str_eq(out, "Success! Deleted keys with prefix: cli/\n");
	http_get(&ag, "/v1/kv/cli/?recurse", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

/* Last: SIGTERM stops all four daemons, with a clean log. */
START_TEST(sigterm_stops_everything)
{
	char err[1024];
	int rc;

	REQUIRE_AGENT();
	rc = harness_agent_terminate(&ag, SIGTERM, 20000, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

/* `cairn agent -dev`: works with no data dir of its own and removes its
 * temporary one when stopped. Runs its own agent. */
START_TEST(dev_agent)
{
	struct agent d;
	char err[4096];
	struct http_resp r;
	struct stat st;

	ck_assert_msg(harness_agent_start_dev(&d, "dev-node", 90000, err, sizeof(err)) == 0,
		      "dev agent start: %s", err);
	ck_assert_msg(d.data_dir[0] != '\0', "no \"Data Dir:\" in the dev agent's banner");
	ck_assert_msg(stat(d.data_dir, &st) == 0, "dev data dir %s does not exist", d.data_dir);
	/* A fresh store still answers a miss with a non-zero index. */
	http_get(&d, "/v1/kv/dev/missing", &r);
	EXPECT_STATUS(r, 404);
	ck_assert_msg(http_index(&r) > 0, "fresh agent: 404 with X-Consul-Index 0 or missing");
	http_resp_free(&r);
	http_put(&d, "/v1/kv/dev/key", "dev", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_get(&d, "/v1/kv/dev/key?raw", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "dev");
	http_resp_free(&r);
	/* DELETE ?recurse with no key empties the whole store, as in Consul. */
	http_put(&d, "/v1/kv/dev/other", "o", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_delete(&d, "/v1/kv/?recurse", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_get(&d, "/v1/kv/?recurse", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
	ck_assert_msg(harness_agent_terminate(&d, SIGINT, 20000, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(stat(d.data_dir, &st) != 0, "dev data dir %s left behind after Ctrl-C",
		      d.data_dir);
	harness_agent_stop(&d);
}
END_TEST

/* Configuration end to end: a -config-dir of two JSON files (Consul's
 * option names) merged with flags. Runs its own agent. */
START_TEST(config_dir_merged)
{
	char dir[] = "/tmp/cairn-pt-cfg-XXXXXX";
	char f1[128], f2[128], name[128], err[4096];
	const char *extra[3];
	struct agent c;
	struct dns_result d;
	FILE *f;
	json_t *j;
	int rc;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(f1, sizeof(f1), "%s/10-dc.json", dir);
	snprintf(f2, sizeof(f2), "%s/20-dns.json", dir);
	f = fopen(f1, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"datacenter\": \"DC7\", \"node_name\": \"overridden-by-flag\"}\n", f);
	fclose(f);
	f = fopen(f2, "w");
	ck_assert_ptr_nonnull(f);
	fputs("{\"dns_config\": {\"node_ttl\": \"30s\"}}\n", f);
	fclose(f);
	extra[0] = "-config-dir";
	extra[1] = dir;
	extra[2] = NULL;
	/* The files stay until the agent is gone: every daemon reads them when
	 * it starts, and the agent starts them one after another (and again
	 * after a crash). */
	rc = harness_agent_start(&c, "cfg-node", extra, 90000, err, sizeof(err));
	ck_assert_msg(rc == 0, "agent with -config-dir: %s", err);

	{
		struct http_resp r;
		http_get(&c, "/v1/agent/self", &r);
		EXPECT_STATUS(r, 200);
		j = http_json(&r);
		http_resp_free(&r);
	}
	ck_assert_msg(j != NULL, "agent/self not JSON");
	/* Consul lower-cases the datacenter; the flag beats the file. */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "Config"), "Datacenter")),
			 "dc7");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "Config"), "NodeName")),
			 "cfg-node");
	json_decref(j);

	snprintf(name, sizeof(name), "cfg-node.node.dc7.consul.");
	{
		uint64_t deadline = harness_now_ms() + 20000;
		do {
			rc = dns_query(&c, name, LDNS_RR_TYPE_A, 1000, &d);
			if (rc == 0 && d.rcode == LDNS_RCODE_NOERROR && d.n_a == 1)
				break;
			harness_pause_ms(100);
		} while (harness_now_ms() < deadline);
	}
	ck_assert_msg(rc == 0 && d.rcode == LDNS_RCODE_NOERROR && d.n_a == 1,
		      "no A answer for %s (rc %d, rcode %d)", name, rc, d.rcode);
	ck_assert_str_eq(d.a[0], "127.0.0.1");
	ck_assert_uint_eq(d.a_ttl, 30);
	ck_assert_msg(harness_agent_terminate(&c, SIGTERM, 20000, err, sizeof(err)) == 0, "%s", err);
	harness_agent_stop(&c);
	(void)remove(f1);
	(void)remove(f2);
	(void)rmdir(dir);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-api");
	TCase *tc = tcase_create("api");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, status_leader);
	tcase_add_test(tc, status_peers);
	tcase_add_test(tc, agent_self);
	tcase_add_test(tc, agent_members);
	tcase_add_test(tc, dns_node_a);
	tcase_add_test(tc, dns_unknown_nxdomain);
	tcase_add_test(tc, dns_node_forms);
	tcase_add_test(tc, dig_node_a);
	tcase_add_test(tc, dig_tcp_node_a);
	tcase_add_test(tc, cli_kv_members_version);
	tcase_add_test(tc, cli_kv_cas_flags_recurse);
	tcase_add_test(tc, sigterm_stops_everything);
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, config_dir_merged);
	suite_add_tcase(s, tc);

	tc = tcase_create("dev");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, dev_agent);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
