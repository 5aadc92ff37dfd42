/* Process test: client agents (server = false). Three servers (bootstrap-
 * expect 3) in one LAN pool and two client agents that know nothing but a
 * join address: through a client's HTTP API, KV, catalog and health work;
 * a service registered on a client reaches the catalog (anti-entropy) and
 * is seen from a server; DNS through a client's dnsd answers; agent/self
 * says Server false; the client's own node is in the catalog. Killing
 * (-9) the server a client uses: its requests keep working after
 * failover, and a blocking query parked on the killed server is asked
 * again of another. A client with no server answers 500 "No known Consul
 * servers". */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ldns/ldns.h>

#include "ptest.h"

#define N_SRV 3
#define N_CLI 2

static struct agent srv[N_SRV];
static struct agent cli[N_CLI];
static struct agent lonely; /* a client that joins nobody */
static char serf_join[64];
static const char *cli_extra[8];
static const char *lonely_extra[4] = {"-server=false", "-bootstrap-expect", "0", NULL};
static char start_err[4096];
static int start_rc = -1;

/* GET path on a; true when it answers 200. */
static bool get_ok(const struct agent *a, const char *path)
{
	struct http_resp r;
	bool ok = http_get(a, path, &r) == 0 && r.status == 200;

	http_resp_free(&r);
	return ok;
}

/* Number of entries in a JSON array answered by GET path (-1: not 200). */
static int array_len(const struct agent *a, const char *path)
{
	struct http_resp r;
	int n = -1;

	if (http_get(a, path, &r) == 0 && r.status == 200) {
		json_t *j = http_json(&r);

		if (json_is_array(j))
			n = (int)json_array_size(j);
		json_decref(j);
	}
	http_resp_free(&r);
	return n;
}

static void setup(void)
{
	static const char *cnames[N_CLI] = {"c-client1", "c-client2"};
	/* raftd finds its peers through -retry-join on their server ports;
	 * then c-srv2 and c-srv3 join c-srv1's LAN pool */
	const struct harness_cluster_opts o = {
	    .name_prefix = "c-srv", .join = HARNESS_JOIN_RAFT, .join_lan_pool = true};
	size_t ne = 0;
	uint64_t deadline;

	start_rc = harness_cluster_start(srv, N_SRV, &o, start_err, sizeof(start_err));
	if (start_rc < 0)
		return;
	snprintf(serf_join, sizeof(serf_join), "127.0.0.1:%d", srv[0].serf_lan_port);
	/* clients: the join address is all they know; start-up waits until
	 * /v1/status/leader answers through a server */
	ne = 0;
	cli_extra[ne++] = "-server=false";
	cli_extra[ne++] = "-bootstrap-expect";
	cli_extra[ne++] = "0";
	cli_extra[ne++] = "-retry-join";
	cli_extra[ne++] = serf_join;
	cli_extra[ne] = NULL;
	for (int i = 0; i < N_CLI; i++) {
		start_rc = harness_agent_start(&cli[i], cnames[i], cli_extra, 90000, start_err,
					       sizeof(start_err));
		if (start_rc < 0)
			return;
	}
	start_rc = -1;
	if (harness_agent_prepare(&lonely, "c-lonely", start_err, sizeof(start_err)) < 0)
		return;
	for (size_t k = 0; lonely_extra[k]; k++)
		lonely.extra[lonely.n_extra++] = lonely_extra[k];
	(void)harness_agent_relaunch(&lonely, 0, start_err, sizeof(start_err));
	deadline = harness_now_ms() + 30000;
	while (!get_ok(&lonely, "/v1/agent/self") && harness_now_ms() < deadline)
		harness_pause_ms(100);
	if (!get_ok(&lonely, "/v1/agent/self")) {
		snprintf(start_err, sizeof(start_err), "lonely client: no /v1/agent/self in 30 s");
		return;
	}
	start_rc = 0;
}

static void teardown(void)
{
	for (int i = 0; i < N_CLI; i++)
		harness_agent_stop(&cli[i]);
	harness_agent_stop(&lonely);
	harness_cluster_stop(srv, N_SRV);
}

#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

/* Polls GET path on a until the body contains want (200), or timeout. */
static bool wait_body(const struct agent *a, const char *path, const char *want,
		      uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct http_resp r;
		bool ok = http_get(a, path, &r) == 0 && r.status == 200 && r.body &&
			  strstr(r.body, want);

		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(50);
	}
}

/* Polls a PUT until it answers 200 "true". */
static bool wait_put(const struct agent *a, const char *path, const char *body,
		     uint64_t timeout_ms, struct http_resp *last)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		bool ok;

		http_put(a, path, body, last);
		ok = last->status == 200 && last->body && !strcmp(last->body, "true");
		if (ok || harness_now_ms() >= deadline)
			return ok;
		http_resp_free(last);
		harness_pause_ms(50);
	}
}

START_TEST(client_agent_self_and_leader)
{
	struct http_resp r;
	json_t *j;
	char want[64];
	bool found = false;

	REQUIRE_CLUSTER();
	http_get(&cli[0], "/v1/agent/self", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_ptr_nonnull(j);
	ck_assert(json_is_false(json_object_get(json_object_get(j, "Config"), "Server")));
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "Config"), "NodeName")),
	    "c-client1");
	json_decref(j);
	http_resp_free(&r);
	/* no raftd runs on a client */
	ck_assert_int_eq(harness_daemon_pid(&cli[0], "raftd"), 0);
	ck_assert_int_gt(harness_daemon_pid(&cli[0], "apid"), 0);
	/* the leader, as the servers know it */
	http_get(&cli[0], "/v1/status/leader", &r);
	EXPECT_STATUS(r, 200);
	for (int i = 0; i < N_SRV; i++) {
		snprintf(want, sizeof(want), "\"127.0.0.1:%d\"", srv[i].server_port);
		found |= r.body && !strcmp(r.body, want);
	}
	ck_assert_msg(found, "leader %s is no server", r.body);
	http_resp_free(&r);
	ck_assert_int_eq(array_len(&cli[1], "/v1/status/peers"), N_SRV);
}
END_TEST

START_TEST(kv_through_clients)
{
	struct http_resp r;
	char b64[64];

	REQUIRE_CLUSTER();
	ck_assert(wait_put(&cli[0], "/v1/kv/clients/k1", "from-client1", 20000, &r));
	http_resp_free(&r);
	harness_base64("from-client1", 12, b64);
	/* read through the other client (maybe another server) and a server */
	ck_assert(wait_body(&cli[1], "/v1/kv/clients/k1", b64, 20000));
	ck_assert(wait_body(&srv[2], "/v1/kv/clients/k1?stale", b64, 20000));
	http_get(&cli[1], "/v1/kv/clients/k1?raw", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "from-client1");
	http_resp_free(&r);
	/* a missing key is a 404 from the server, relayed */
	http_get(&cli[1], "/v1/kv/clients/none", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

START_TEST(service_on_client_in_catalog)
{
	static const char body[] =
	    "{\"ID\":\"web1\",\"Name\":\"web\",\"Port\":8080,\"Tags\":[\"v1\"],"
	    "\"Check\":{\"TTL\":\"60s\",\"Status\":\"passing\"}}";
	struct http_resp r;

	REQUIRE_CLUSTER();
	http_put(&cli[0], "/v1/agent/service/register", body, &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	/* anti-entropy pushes it through a server: seen from a server's API */
	ck_assert(wait_body(&srv[1], "/v1/catalog/service/web", "\"Node\":\"c-client1\"", 30000));
	ck_assert(wait_body(&srv[1], "/v1/catalog/service/web", "\"ServicePort\":8080", 1000));
	/* health through the other client, passing */
	ck_assert(wait_body(&cli[1], "/v1/health/service/web?passing", "\"ServiceID\":\"web1\"",
			    30000));
	/* both clients' own nodes are catalog nodes, with their address */
	ck_assert(wait_body(&cli[1], "/v1/catalog/nodes", "\"Node\":\"c-client1\"", 30000));
	ck_assert(wait_body(&srv[0], "/v1/catalog/nodes", "\"Node\":\"c-client2\"", 30000));
	ck_assert(wait_body(&srv[0], "/v1/catalog/node/c-client1", "\"Address\":\"127.0.0.1\"",
			    30000));
}
END_TEST

/* Polls a DNS query on a until it answers NOERROR with an A record. */
static bool wait_dns_a(const struct agent *a, const char *name, uint64_t timeout_ms,
		       struct dns_result *res)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		memset(res, 0, sizeof(*res));
		if (dns_query(a, name, LDNS_RR_TYPE_A, 2000, res) == 0 &&
		    res->rcode == LDNS_RCODE_NOERROR && res->n_a > 0)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(50);
	}
}

START_TEST(dns_through_client)
{
	static const char body[] = "{\"ID\":\"db1\",\"Name\":\"db\",\"Port\":5432}";
	struct dns_result res;
	struct http_resp r;

	REQUIRE_CLUSTER();
	http_put(&cli[0], "/v1/agent/service/register", body, &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	/* the service of client1, asked of client2's dnsd */
	ck_assert_msg(wait_dns_a(&cli[1], "db.service.consul", 30000, &res),
		      "db.service.consul through client2: rcode %d, %zu A", res.rcode, res.n_a);
	ck_assert_str_eq(res.a[0], "127.0.0.1");
	/* a client's own node */
	ck_assert(wait_dns_a(&cli[1], "c-client1.node.consul", 30000, &res));
	ck_assert_str_eq(res.a[0], "127.0.0.1");
	/* a server node, from the other client */
	ck_assert(wait_dns_a(&cli[0], "c-srv2.node.consul", 30000, &res));
}
END_TEST

/* Session create on a client: the default Node is the client's own. */
START_TEST(session_on_client)
{
	struct http_resp r;
	json_t *j;
	char id[64], path[128];

	REQUIRE_CLUSTER();
	/* the node must be in the catalog first (anti-entropy) */
	ck_assert(wait_body(&srv[0], "/v1/catalog/nodes", "\"Node\":\"c-client2\"", 30000));
	/* the default NodeChecks ["serfHealth"] must be registered too (the
	 * leader's reconciliation of members): poll */
	{
		uint64_t deadline = harness_now_ms() + 30000;

		for (;;) {
			http_put(&cli[1], "/v1/session/create", "{\"Name\":\"s-client\"}", &r);
			if (r.status == 200 || harness_now_ms() >= deadline)
				break;
			http_resp_free(&r);
			harness_pause_ms(100);
		}
	}
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(j, "ID")));
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "ID")));
	json_decref(j);
	http_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/session/info/%s?stale", id);
	ck_assert(wait_body(&srv[1], path, "\"Node\":\"c-client2\"", 20000));
	/* members through a client: the servers and both clients */
	ck_assert(wait_body(&cli[1], "/v1/agent/members", "\"Name\":\"c-client1\"", 20000));
	ck_assert_int_ge(array_len(&cli[1], "/v1/agent/members"), N_SRV + N_CLI);
}
END_TEST

START_TEST(no_known_servers)
{
	struct http_resp r;
	json_t *j;

	REQUIRE_CLUSTER();
	http_get(&lonely, "/v1/kv/anything", &r);
	EXPECT_STATUS(r, 500);
	EXPECT_BODY(r, "No known Consul servers");
	http_resp_free(&r);
	http_put(&lonely, "/v1/kv/anything", "x", &r);
	EXPECT_STATUS(r, 500);
	EXPECT_BODY(r, "No known Consul servers");
	http_resp_free(&r);
	http_get(&lonely, "/v1/status/leader", &r);
	EXPECT_STATUS(r, 500);
	EXPECT_BODY(r, "No known Consul servers");
	http_resp_free(&r);
	http_get(&lonely, "/v1/catalog/services", &r);
	EXPECT_STATUS(r, 500);
	EXPECT_BODY(r, "No known Consul servers");
	http_resp_free(&r);
	/* what needs no server still works */
	http_get(&lonely, "/v1/agent/self", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert(json_is_false(json_object_get(json_object_get(j, "Config"), "Server")));
	json_decref(j);
	http_resp_free(&r);
	ck_assert_int_eq(array_len(&lonely, "/v1/agent/members"), 1);
	ck_assert_int_eq(harness_daemon_pid(&lonely, "raftd"), 0);
}
END_TEST

/* Server port of the server client c's apid sends to, from its log (the
 * relay logs each change); 0 when none is logged. */
static int server_in_use(const struct agent *c)
{
	static const char mark[] = "cairn-apid: sending server RPCs to tcp://127.0.0.1:";
	FILE *f = fopen(c->log_path, "r");
	char line[1024];
	int port = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		const char *p = strstr(line, mark);

		if (p)
			port = atoi(p + strlen(mark));
	}
	fclose(f);
	return port;
}

struct blocking_get {
	const struct agent *a;
	char path[200];
	struct http_resp r;
};

static void *blocking_get_run(void *arg)
{
	struct blocking_get *b = arg;

	http_get(b->a, b->path, &b->r);
	return NULL;
}

/* Last: kills a server for good. */
START_TEST(failover_when_the_server_dies)
{
	static struct blocking_get g;
	struct http_resp r;
	pthread_t th;
	char b64[64];
	uint64_t idx;
	int port, victim = -1, other;

	REQUIRE_CLUSTER();
	ck_assert(wait_put(&cli[0], "/v1/kv/fo/k", "before", 20000, &r));
	http_resp_free(&r);
	harness_base64("before", 6, b64);
	ck_assert(wait_body(&cli[0], "/v1/kv/fo/k", b64, 20000));
	port = server_in_use(&cli[0]);
	for (int i = 0; i < N_SRV; i++)
		if (srv[i].server_port == port)
			victim = i;
	ck_assert_msg(victim >= 0, "client1 uses no known server (port %d)", port);
	other = (victim + 1) % N_SRV;

	/* a blocking query parked on the victim through client1 */
	http_get(&cli[0], "/v1/kv/fo/k", &r);
	EXPECT_STATUS(r, 200);
	idx = http_index(&r);
	http_resp_free(&r);
	ck_assert_uint_gt(idx, 0);
	g.a = &cli[0];
	snprintf(g.path, sizeof(g.path), "/v1/kv/fo/k?stale&index=%" PRIu64 "&wait=25s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocking_get_run, &g), 0);
	harness_pause_ms(300); /* only to let it park; the result does not depend on it */

	/* raftd first: on SIGTERM (which its daemons get when the agent
	 * dies) it would answer parked queries on its way out */
	{
		pid_t raftd = harness_daemon_pid(&srv[victim], "raftd");

		ck_assert_int_gt(raftd, 0);
		ck_assert_int_eq(kill(raftd, SIGKILL), 0);
	}
	harness_agent_kill9(&srv[victim]);

	/* reads and writes through client1 work again (after a new
	 * election when the victim led) */
	ck_assert(wait_put(&cli[0], "/v1/kv/fo/k", "after", 60000, &r));
	http_resp_free(&r);
	harness_base64("after", 5, b64);
	ck_assert(wait_body(&cli[0], "/v1/kv/fo/k", b64, 20000));
	ck_assert(wait_body(&srv[other], "/v1/kv/fo/k?stale", b64, 20000));
	ck_assert_int_ne(server_in_use(&cli[0]), srv[victim].server_port);
	/* the parked read was asked again elsewhere and woke on the write */
	pthread_join(th, NULL);
	EXPECT_STATUS(g.r, 200);
	ck_assert_msg(g.r.body && strstr(g.r.body, b64), "blocking query (index %" PRIu64
		      ") answered %s with index %" PRIu64, idx, g.r.body, http_index(&g.r));
	http_resp_free(&g.r);
	/* DNS through client1's dnsd too */
	{
		struct dns_result res;

		ck_assert(wait_dns_a(&cli[0], "c-client2.node.consul", 30000, &res));
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("clients");
	TCase *tc = tcase_create("clients");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, client_agent_self_and_leader);
	tcase_add_test(tc, kv_through_clients);
	tcase_add_test(tc, service_on_client_in_catalog);
	tcase_add_test(tc, dns_through_client);
	tcase_add_test(tc, session_on_client);
	tcase_add_test(tc, no_known_servers);
	tcase_add_test(tc, failover_when_the_server_dies); /* last: kills a server */
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
