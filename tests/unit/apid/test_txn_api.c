/* Tests for /v1/txn in apid (txn_api.c through routes.c): the TXN call a
 * body becomes (KV with base64 values, Node, Service, Check), consistency
 * options, the 400/413 answers and their texts, and the exact JSON, status
 * and headers of committed (200) and rolled-back (409) replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <check.h>
#include <jansson.h>

#include "arena.h"
#include "config.h"
#include "routes.h"
#include "txn_api.h"

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
	cfg.txn_max_req_len = 512 * 1024;
	memset(&env, 0, sizeof(env));
	env.cfg = &cfg;
	env.last_index = 9;
}

static void teardown(void) { arena_close(&a); }

static void put(const char *target, const char *b)
{
	struct routes_req req = {.method = "PUT",
				 .target = target,
				 .body = (const uint8_t *)b,
				 .body_len = b ? strlen(b) : 0,
				 .body_seen = b ? strlen(b) : 0};

	memset(&act, 0, sizeof(act));
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

static void expect_text(unsigned status, const char *text)
{
	ck_assert(act.respond);
	ck_assert_uint_eq(act.resp.status, status);
	ck_assert_str_eq(body(&act.resp), text);
}

START_TEST(body_becomes_one_txn_call)
{
	const struct proto_txn *t;

	put("/v1/txn",
	    "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"a\",\"Value\":\"aGVsbG8=\",\"Flags\":3}},"
	    "{\"kv\":{\"verb\":\"cas\",\"key\":\"b\",\"index\":7,\"value\":null}},"
	    "{\"Node\":{\"Verb\":\"set\",\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\","
	    "\"Meta\":{\"r\":\"1\"},\"ModifyIndex\":4}}},"
	    "{\"Service\":{\"Verb\":\"delete\",\"Node\":\"n1\",\"Service\":{\"ID\":\"s1\"}}},"
	    "{\"Check\":{\"Verb\":\"cas\",\"Check\":{\"Node\":\"n1\",\"CheckID\":\"c1\","
	    "\"Status\":\"passing\",\"Definition\":{\"HTTP\":\"http://x\"},\"ModifyIndex\":5}}},"
	    "{}]");
	ck_assert(!act.respond);
	ck_assert_int_eq(act.call.op, ROUTES_OP_TXN);
	ck_assert_int_eq(act.call.msg.type, PROTO_TXN);
	t = &act.call.msg.u.txn;
	ck_assert_uint_eq(t->ops.n, 6);
	ck_assert_uint_eq(t->ops.v[0].kind, 1);
	ck_assert_str_eq(t->ops.v[0].verb, "set");
	ck_assert_str_eq(t->ops.v[0].key, "a");
	ck_assert_uint_eq(t->ops.v[0].value.len, 5);
	ck_assert(memcmp(t->ops.v[0].value.ptr, "hello", 5) == 0);
	ck_assert_uint_eq(t->ops.v[0].flags, 3);
	ck_assert_str_eq(t->ops.v[1].verb, "cas"); /* keys case-insensitive */
	ck_assert_uint_eq(t->ops.v[1].index, 7);
	ck_assert_uint_eq(t->ops.v[1].value.len, 0);
	ck_assert_uint_eq(t->ops.v[2].kind, 2);
	ck_assert_str_eq(t->ops.v[2].node.v[0].node, "n1");
	ck_assert_str_eq(t->ops.v[2].node.v[0].meta.vals[0], "1");
	ck_assert_uint_eq(t->ops.v[2].index, 4);
	ck_assert_uint_eq(t->ops.v[3].kind, 3);
	ck_assert_str_eq(t->ops.v[3].key, "n1");
	ck_assert_str_eq(t->ops.v[3].service.v[0].id, "s1");
	ck_assert_uint_eq(t->ops.v[4].kind, 4);
	ck_assert_str_eq(t->ops.v[4].check.v[0].check_id, "c1");
	ck_assert_str_eq(t->ops.v[4].check.v[0].definition, "{\"HTTP\":\"http://x\"}");
	ck_assert_uint_eq(t->ops.v[4].index, 5);
	ck_assert_uint_eq(t->ops.v[5].kind, 0); /* raftd: "no operation specified" */
	ck_assert_uint_eq(t->mode, 0);

	put("/v1/txn?stale&max_stale=5s", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\"}}]");
	ck_assert(!act.respond);
	ck_assert_uint_eq(act.call.msg.u.txn.mode, 2);
	ck_assert_uint_eq(act.call.msg.u.txn.max_stale_ms, 5000);
	put("/v1/txn?consistent", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\"}}]");
	ck_assert_uint_eq(act.call.msg.u.txn.mode, 1);
}
END_TEST

START_TEST(limits_and_bad_bodies)
{
	size_t cap = 200 * 48 + 8, len = 0;
	char *b = malloc(cap);

	b[len++] = '[';
	for (int i = 0; i < 129; i++)
		len += (size_t)snprintf(b + len, cap - len, "%s{\"KV\":{\"Verb\":\"get\",\"Key\":\"k\"}}",
					i ? "," : "");
	b[len++] = ']';
	b[len] = 0;
	put("/v1/txn", b);
	expect_text(413, "Transaction contains too many operations (129 > 128)");
	free(b);

	struct routes_req big = {.method = "PUT", .target = "/v1/txn", .body_too_large = true,
				 .body_seen = 600 * 1024};
	memset(&act, 0, sizeof(act));
	ck_assert_int_eq(routes_dispatch(&env, &big, &a, &act), 0);
	expect_text(413, "Request body too large, max size: 524288 bytes");
	ck_assert_uint_eq(routes_body_limit(&env, "PUT", "/v1/txn"), 512 * 1024);
	cfg.txn_max_req_len = 1024 * 1024; /* the larger of the two limits */
	ck_assert_uint_eq(routes_body_limit(&env, "PUT", "/v1/txn?dc=dc1"), 1024 * 1024);
	cfg.txn_max_req_len = 512 * 1024;

	cfg.kv_max_value_size = 3;
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"a\",\"Value\":\"aGVsbG8=\"}}]");
	expect_text(413, "Value for key \"a\" is too large (5 > 3 bytes)");
	cfg.kv_max_value_size = 512 * 1024;

	put("/v1/txn", "{\"KV\":{}}");
	ck_assert_uint_eq(act.resp.status, 400);
	put("/v1/txn", NULL);
	expect_text(400, "Failed to parse body: EOF");
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"a\",\"Value\":\"a!==\"}}]");
	expect_text(400, "Failed to parse body: failed to decode value: illegal base64 data");
	put("/v1/txn", "[{\"KV\":{\"Verb\":3}}]");
	ck_assert_uint_eq(act.resp.status, 400);
	put("/v1/txn?stale&consistent", "[]");
	ck_assert_uint_eq(act.resp.status, 400);

	/* an empty transaction succeeds without a call */
	put("/v1/txn", "[]");
	ck_assert(act.respond);
	ck_assert_uint_eq(act.resp.status, 200);
	ck_assert_str_eq(body(&act.resp), "{\"Results\":[],\"Errors\":null}");
}
END_TEST

/* The field readers' texts (json_body.c with the txn dialect). */
START_TEST(field_texts)
{
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"get\",\"Key\":5}}]");
	expect_text(400, "Failed to parse body: Key must be a string");
	/* every field is read; the last error is the one answered */
	put("/v1/txn", "[{\"KV\":{\"Verb\":1,\"Key\":2}}]");
	expect_text(400, "Failed to parse body: Key must be a string");
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\",\"Flags\":-1}}]");
	expect_text(400, "Failed to parse body: Flags must be a non-negative integer");
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\",\"Index\":\"7\"}}]");
	expect_text(400, "Failed to parse body: Index must be a non-negative integer");
	put("/v1/txn", "[{\"Node\":{\"Verb\":\"set\",\"Node\":{\"Node\":\"n\",\"Meta\":[]}}}]");
	expect_text(400, "Failed to parse body: Meta must be an object");
	put("/v1/txn",
	    "[{\"Node\":{\"Verb\":\"set\",\"Node\":{\"Node\":\"n\",\"Meta\":{\"r\":1}}}}]");
	expect_text(400, "Failed to parse body: Meta must hold strings");
	put("/v1/txn",
	    "[{\"Check\":{\"Verb\":\"set\",\"Check\":{\"Node\":\"n\",\"ServiceTags\":\"x\"}}}]");
	expect_text(400, "Failed to parse body: ServiceTags must be an array");
	put("/v1/txn",
	    "[{\"Check\":{\"Verb\":\"set\",\"Check\":{\"Node\":\"n\",\"ServiceTags\":[1]}}}]");
	expect_text(400, "Failed to parse body: ServiceTags must hold strings");

	/* whole reals are unsigned fields here */
	put("/v1/txn", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\",\"Flags\":2.0,\"index\":3}}]");
	ck_assert(!act.respond);
	ck_assert_uint_eq(act.call.msg.u.txn.ops.v[0].flags, 2);
	ck_assert_uint_eq(act.call.msg.u.txn.ops.v[0].index, 3);
}
END_TEST

START_TEST(base64_decoder)
{
	uint8_t *p;
	size_t n;

	ck_assert_int_eq(txn_api_base64_decode("", &a, &p, &n), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_int_eq(txn_api_base64_decode("Zm9vYmFy", &a, &p, &n), 0);
	ck_assert_str_eq((char *)p, "foobar");
	ck_assert_int_eq(txn_api_base64_decode("Zm9vYg==", &a, &p, &n), 0);
	ck_assert_str_eq((char *)p, "foob");
	ck_assert_int_eq(txn_api_base64_decode("Zm9vYmE", &a, &p, &n), 0); /* no padding */
	ck_assert_str_eq((char *)p, "fooba");
	ck_assert_int_eq(txn_api_base64_decode("Z", &a, &p, &n), -EINVAL);
	ck_assert_int_eq(txn_api_base64_decode("Zm9v===", &a, &p, &n), -EINVAL);
	ck_assert_int_eq(txn_api_base64_decode("Zm-v", &a, &p, &n), -EINVAL);
}
END_TEST

/* Finishes the call made for a read-only or a write body with reply r. */
static void finish(const char *b, const struct proto_msg *r)
{
	put("/v1/txn", b);
	ck_assert(!act.respond);
	memset(&act.resp, 0, sizeof(act.resp));
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, r, &a, &act.resp), 0);
}

START_TEST(committed_and_rolled_back_replies)
{
	struct proto_kv_entry e = {.key = "a", .create_index = 5, .modify_index = 6,
				   .lock_index = 1, .flags = 3, .session = "s1"};
	struct proto_node n = {.id = "", .node = "n1", .address = "10.0.0.1", .datacenter = "dc1",
			       .create_index = 2, .modify_index = 6};
	struct proto_txn_result res[2] = {{.kv = {&e, 1}}, {.node = {&n, 1}}};
	struct proto_txn_error errs[2] = {{.op_index = 0, .what = "key \"a\" doesn't exist"},
					  {.op_index = 2, .what = "boom"}};
	struct proto_msg m = proto_msg_make(PROTO_TXN_REPLY);

	m.u.txn_reply.index = 6;
	m.u.txn_reply.results.v = res;
	m.u.txn_reply.results.n = 2;
	finish("[{\"KV\":{\"Verb\":\"set\",\"Key\":\"a\"}}]", &m);
	ck_assert_uint_eq(act.resp.status, 200);
	ck_assert_str_eq(act.resp.content_type, "application/json");
	ck_assert_str_eq(body(&act.resp),
			 "{\"Results\":[{\"KV\":{\"LockIndex\":1,\"Key\":\"a\",\"Flags\":3,\"Value\":"
			 "null,\"Session\":\"s1\",\"CreateIndex\":5,\"ModifyIndex\":6}},{\"Node\":"
			 "{\"ID\":\"\",\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Datacenter\":"
			 "\"dc1\",\"TaggedAddresses\":{},\"Meta\":{},\"CreateIndex\":2,"
			 "\"ModifyIndex\":6}}],\"Errors\":null}");
	ck_assert_str_eq(hdr(&act.resp, "X-Consul-Index"), "6");
	ck_assert_ptr_null(hdr(&act.resp, "X-Consul-KnownLeader")); /* a write */

	m.u.txn_reply.results.n = 0;
	m.u.txn_reply.errors.v = errs;
	m.u.txn_reply.errors.n = 2;
	m.u.txn_reply.known_leader = true;
	m.u.txn_reply.last_contact_ms = 0;
	finish("[{\"KV\":{\"Verb\":\"get\",\"Key\":\"a\"}}]", &m);
	ck_assert_uint_eq(act.resp.status, 409);
	ck_assert_str_eq(act.resp.content_type, "application/json");
	ck_assert_str_eq(body(&act.resp),
			 "{\"Results\":null,\"Errors\":[{\"OpIndex\":0,\"What\":\"key \\\"a\\\" "
			 "doesn't exist\"},{\"OpIndex\":2,\"What\":\"boom\"}]}");
	ck_assert_str_eq(hdr(&act.resp, "X-Consul-KnownLeader"), "true"); /* read-only */
	ck_assert_str_eq(hdr(&act.resp, "X-Consul-LastContact"), "0");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("apid-txn");
	TCase *tc = tcase_create("txn");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, body_becomes_one_txn_call);
	tcase_add_test(tc, limits_and_bad_bodies);
	tcase_add_test(tc, field_texts);
	tcase_add_test(tc, base64_decoder);
	tcase_add_test(tc, committed_and_rolled_back_replies);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
