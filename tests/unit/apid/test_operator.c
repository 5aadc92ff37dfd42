/* Tests for the operator/raft endpoints of apid/routes.c and their
 * rendering (apid/render.c): the RPC each request becomes, the 400s, and
 * the JSON, status and body each reply becomes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <check.h>
#include <jansson.h>

#include "arena.h"
#include "config.h"
#include "err.h"
#include "render.h"
#include "routes.h"

static struct arena a;
static struct config cfg;
static struct routes_env env;
static struct routes_action act;

static void setup(void)
{
	arena_init(&a, 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "node1";
	cfg.server = true;
	cfg.kv_max_value_size = 512 * 1024;
	cfg.http_max_body = 576 * 1024;
	memset(&env, 0, sizeof(env));
	env.cfg = &cfg;
	env.last_index = 9;
}

static void teardown(void) { arena_close(&a); }

static void run(const char *method, const char *target)
{
	struct routes_req req = {.method = method, .target = target};

	ck_assert_int_eq(routes_dispatch(&env, &req, &a, &act), 0);
}

static const char *hdr(const struct routes_resp *r, const char *name)
{
	for (size_t i = 0; i < r->n_hdrs; i++)
		if (strcasecmp(r->hdrs[i].name, name) == 0)
			return r->hdrs[i].value;
	return NULL;
}

static const char *body(const struct routes_resp *r)
{
	return arena_strndup(&a, r->body ? r->body : "", r->body_len);
}

static void expect_text(const struct routes_resp *r, unsigned status, const char *text)
{
	ck_assert_uint_eq(r->status, status);
	ck_assert_str_eq(r->content_type, "text/plain; charset=utf-8");
	ck_assert_str_eq(body(r), text);
}

static struct proto_raft_server servers[3] = {
    {.id = "aaaa", .node = "s1", .address = "127.0.0.1:8300", .leader = false, .voter = true},
    {.id = "bbbb", .node = "s2", .address = "127.0.0.1:8310", .leader = true, .voter = true},
    {.id = "cccc", .node = "", .address = "127.0.0.1:8320", .leader = false, .voter = false},
};

static struct proto_msg config_reply(size_t n)
{
	struct proto_msg m = proto_msg_make(PROTO_OPERATOR_RAFT_CONFIG_REPLY);

	m.u.operator_raft_config_reply.index = 42;
	m.u.operator_raft_config_reply.servers.v = servers;
	m.u.operator_raft_config_reply.servers.n = n;
	return m;
}

START_TEST(config_request)
{
	run("GET", "/v1/operator/raft/configuration");
	ck_assert(!act.respond);
	ck_assert_int_eq(act.call.op, ROUTES_OP_RAFT_CONFIG);
	ck_assert_int_eq(act.call.peer, ROUTES_PEER_RAFTD);
	ck_assert_int_eq(act.call.msg.type, PROTO_OPERATOR_RAFT_CONFIG);
	ck_assert_uint_eq(act.call.timeout_ms, ROUTES_RPC_TIMEOUT_MS);
	ck_assert_uint_eq(act.call.consistency, 0);

	run("GET", "/v1/operator/raft/configuration?stale");
	ck_assert(!act.respond);
	ck_assert_uint_eq(act.call.consistency, 2);
	run("GET", "/v1/operator/raft/configuration?stale=&dc=DC1");
	ck_assert(!act.respond);
	ck_assert_uint_eq(act.call.consistency, 2);

	run("GET", "/v1/operator/raft/configuration?stale&consistent");
	ck_assert(act.respond);
	expect_text(&act.resp, 400,
		    "Cannot specify ?stale with ?consistent, conflicting semantics.");
	run("GET", "/v1/operator/raft/configuration?dc=dc2");
	expect_text(&act.resp, 500, "No path to datacenter");
	run("PUT", "/v1/operator/raft/configuration");
	ck_assert_uint_eq(act.resp.status, 405);
	ck_assert_str_eq(hdr(&act.resp, "Allow"), "OPTIONS,GET");
}
END_TEST

START_TEST(peer_request)
{
	run("DELETE", "/v1/operator/raft/peer?address=127.0.0.1:8320");
	ck_assert(!act.respond);
	ck_assert_int_eq(act.call.op, ROUTES_OP_RAFT_REMOVE);
	ck_assert_int_eq(act.call.peer, ROUTES_PEER_RAFTD);
	ck_assert_int_eq(act.call.msg.type, PROTO_OPERATOR_RAFT_REMOVE);
	ck_assert_str_eq(act.call.msg.u.operator_raft_remove.address, "127.0.0.1:8320");
	ck_assert_str_eq(act.call.msg.u.operator_raft_remove.id, "");

	run("DELETE", "/v1/operator/raft/peer?id=cccc-dd%2Dee");
	ck_assert(!act.respond);
	ck_assert_str_eq(act.call.msg.u.operator_raft_remove.id, "cccc-dd-ee");
	ck_assert_str_eq(act.call.msg.u.operator_raft_remove.address, "");

	run("DELETE", "/v1/operator/raft/peer");
	expect_text(&act.resp, 400,
		    "Must specify either ?id with the server's ID or ?address with IP:port of "
		    "peer to remove");
	run("DELETE", "/v1/operator/raft/peer?id=a&address=b");
	expect_text(&act.resp, 400, "Must specify only one of ?id or ?address");
	run("GET", "/v1/operator/raft/peer?id=a");
	ck_assert_uint_eq(act.resp.status, 405);
	ck_assert_str_eq(hdr(&act.resp, "Allow"), "OPTIONS,DELETE");
	run("OPTIONS", "/v1/operator/raft/peer");
	ck_assert_uint_eq(act.resp.status, 200);
	ck_assert_str_eq(hdr(&act.resp, "Allow"), "OPTIONS,DELETE");
}
END_TEST

START_TEST(config_render)
{
	struct proto_msg m = config_reply(3);
	json_t *j = render_raft_configuration(&m.u.operator_raft_config_reply);
	char *text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);

	ck_assert_str_eq(
	    text,
	    "{\"Servers\":["
	    "{\"ID\":\"aaaa\",\"Node\":\"s1\",\"Address\":\"127.0.0.1:8300\",\"Leader\":false,"
	    "\"ProtocolVersion\":\"3\",\"Voter\":true},"
	    "{\"ID\":\"bbbb\",\"Node\":\"s2\",\"Address\":\"127.0.0.1:8310\",\"Leader\":true,"
	    "\"ProtocolVersion\":\"3\",\"Voter\":true},"
	    "{\"ID\":\"cccc\",\"Node\":\"\",\"Address\":\"127.0.0.1:8320\",\"Leader\":false,"
	    "\"ProtocolVersion\":\"3\",\"Voter\":false}],\"Index\":42}");
	free(text);
	json_decref(j);

	m = config_reply(0);
	j = render_raft_configuration(&m.u.operator_raft_config_reply);
	text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	ck_assert_str_eq(text, "{\"Servers\":[],\"Index\":42}");
	free(text);
	json_decref(j);
}
END_TEST

START_TEST(config_reply_response)
{
	struct routes_resp resp;
	struct proto_msg m = config_reply(3);
	json_t *j;

	run("GET", "/v1/operator/raft/configuration");
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &m, &a, &resp), 0);
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_str_eq(resp.content_type, "application/json");
	j = json_loadb(resp.body, resp.body_len, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "Servers")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "Index")), 42);
	json_decref(j);
	ck_assert_str_eq(hdr(&resp, "X-Consul-Index"), "42");
	ck_assert_str_eq(hdr(&resp, "X-Consul-KnownLeader"), "true");

	/* no leader among the servers */
	m = config_reply(1);
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &m, &a, &resp), 0);
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_str_eq(hdr(&resp, "X-Consul-KnownLeader"), "false");

	/* ?pretty */
	run("GET", "/v1/operator/raft/configuration?pretty");
	m = config_reply(1);
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &m, &a, &resp), 0);
	ck_assert_ptr_nonnull(strstr(body(&resp), "\n    \"Servers\": [\n"));
}
END_TEST

START_TEST(peer_reply_response)
{
	struct routes_resp resp;
	struct proto_msg ok = proto_msg_make(PROTO_WRITE_REPLY);
	struct proto_msg err = proto_msg_make(PROTO_ERROR);

	run("DELETE", "/v1/operator/raft/peer?address=127.0.0.1:9");
	ok.u.write_reply.ok = true;
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &ok, &a, &resp), 0);
	ck_assert_uint_eq(resp.status, 200);
	ck_assert_uint_eq(resp.body_len, 0);
	ck_assert_ptr_null(resp.content_type);

	/* raftd's message, bare, as Consul answers an RPC error */
	err.u.error.code = -ENOENT;
	err.u.error.message = "address \"127.0.0.1:9\" was not found in the Raft configuration";
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &err, &a, &resp), 0);
	expect_text(&resp, 500, "address \"127.0.0.1:9\" was not found in the Raft configuration");
	err.u.error.code = CAIRN_E_BADREQ;
	err.u.error.message = "cannot remove the last server";
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &err, &a, &resp), 0);
	expect_text(&resp, 500, "cannot remove the last server");
	err.u.error.code = CAIRN_E_NOLEADER;
	err.u.error.message = "";
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &err, &a, &resp), 0);
	expect_text(&resp, 500, "No cluster leader");

	/* raftd down, or a reply of the wrong type */
	ck_assert_int_eq(routes_finish(&env, &act.call, -ETIMEDOUT, NULL, &a, &resp), 0);
	expect_text(&resp, 500, "rpc error: cairn-raftd unavailable: no answer in time");
	run("GET", "/v1/operator/raft/configuration");
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &ok, &a, &resp), 0);
	ck_assert_uint_eq(resp.status, 500);
}
END_TEST

static Suite *operator_suite(void)
{
	Suite *s = suite_create("apid-operator");
	TCase *tc = tcase_create("raft");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, config_request);
	tcase_add_test(tc, peer_request);
	tcase_add_test(tc, config_render);
	tcase_add_test(tc, config_reply_response);
	tcase_add_test(tc, peer_reply_response);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(operator_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
