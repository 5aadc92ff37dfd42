/* Process test: PUT /v1/txn end to end against a real agent: a KV
 * transaction commits at one index with Consul's Results; one failing
 * check rolls everything back (same values, same indexes) with a 409 and
 * Errors; read-only transactions take the read path (?stale, KnownLeader,
 * LastContact); lock/unlock with a session; catalog Node/Service ops
 * visible through /v1/catalog; the limits (128 operations,
 * txn_max_req_len, bad bodies). */
#include <inttypes.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("txn-node", NULL)

/* PUT /v1/txn with body; returns the parsed JSON (caller frees) and the
 * response in r (caller frees). */
static json_t *txn(const char *query, const char *body, struct http_resp *r)
{
	char path[128];

	snprintf(path, sizeof(path), "/v1/txn%s", query ? query : "");
	http_request(&ag, "PUT", path, body, strlen(body), r);
	return http_json(r);
}

/* The value of key as a string (or "" when missing) and its ModifyIndex
 * (0 when missing); the KV GET's X-Consul-Index in *x_index. */
static void kv_state(const char *key, char *val, size_t vlen, uint64_t *modify, uint64_t *x_index)
{
	char path[256];
	struct http_resp r;

	snprintf(path, sizeof(path), "/v1/kv/%s?raw", key);
	http_get(&ag, path, &r);
	ck_assert_msg(r.status == 200 || r.status == 404, "GET %s: %ld", key, r.status);
	snprintf(val, vlen, "%s", r.status == 200 && r.body ? r.body : "");
	if (x_index)
		*x_index = http_index(&r);
	http_resp_free(&r);
	*modify = 0;
	snprintf(path, sizeof(path), "/v1/kv/%s", key);
	http_get(&ag, path, &r);
	if (r.status == 200) {
		json_t *j = http_json(&r);

		*modify = (uint64_t)json_integer_value(
		    json_object_get(json_array_get(j, 0), "ModifyIndex"));
		json_decref(j);
	}
	http_resp_free(&r);
}

START_TEST(kv_transaction_commits_at_one_index)
{
	struct http_resp r;
	json_t *j, *res;
	char val[64], b64a[16], b64b[16], body[1024];
	uint64_t ma, mb, xi;

	REQUIRE_AGENT();
	harness_base64("one", 3, b64a);
	harness_base64("two", 3, b64b);
	snprintf(body, sizeof(body),
		 "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"t/a\",\"Value\":\"%s\",\"Flags\":5}},"
		 "{\"KV\":{\"Verb\":\"set\",\"Key\":\"t/b\",\"Value\":\"%s\"}},"
		 "{\"KV\":{\"Verb\":\"get\",\"Key\":\"t/a\"}},"
		 "{\"KV\":{\"Verb\":\"check-not-exists\",\"Key\":\"t/c\"}}]",
		 b64a, b64b);
	j = txn(NULL, body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	ck_assert(json_is_null(json_object_get(j, "Errors")));
	res = json_object_get(j, "Results");
	ck_assert_uint_eq(json_array_size(res), 3);
	json_t *kv0 = json_object_get(json_array_get(res, 0), "KV");
	ck_assert_str_eq(json_string_value(json_object_get(kv0, "Key")), "t/a");
	ck_assert(json_is_null(json_object_get(kv0, "Value"))); /* writes hide the value */
	ck_assert_int_eq(json_integer_value(json_object_get(kv0, "Flags")), 5);
	json_t *kv2 = json_object_get(json_array_get(res, 2), "KV");
	ck_assert_str_eq(json_string_value(json_object_get(kv2, "Value")), b64a);
	uint64_t idx = (uint64_t)json_integer_value(json_object_get(kv0, "ModifyIndex"));
	ck_assert_uint_gt(idx, 0);
	ck_assert_uint_eq(http_index(&r), idx);
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(json_array_get(res, 1), "KV"), "ModifyIndex")),
			 (json_int_t)idx);
	json_decref(j);
	http_resp_free(&r);
	kv_state("t/a", val, sizeof(val), &ma, &xi);
	ck_assert_str_eq(val, "one");
	kv_state("t/b", val, sizeof(val), &mb, NULL);
	ck_assert_str_eq(val, "two");
	ck_assert_uint_eq(ma, idx);
	ck_assert_uint_eq(mb, idx);
}
END_TEST

START_TEST(failed_check_changes_nothing)
{
	struct http_resp r;
	json_t *j, *errs;
	char val[64], b64[16], body[1024];
	uint64_t m_before, m_after, x_before, x_after, m_new;

	REQUIRE_AGENT();
	http_put(&ag, "/v1/kv/rb/x", "old", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	kv_state("rb/x", val, sizeof(val), &m_before, &x_before);
	harness_base64("new", 3, b64);
	snprintf(body, sizeof(body),
		 "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"rb/x\",\"Value\":\"%s\"}},"
		 "{\"KV\":{\"Verb\":\"set\",\"Key\":\"rb/y\",\"Value\":\"%s\"}},"
		 "{\"KV\":{\"Verb\":\"delete\",\"Key\":\"rb/x\"}},"
		 "{\"KV\":{\"Verb\":\"check-index\",\"Key\":\"rb/x\",\"Index\":1}}]",
		 b64, b64);
	j = txn(NULL, body, &r);
	EXPECT_STATUS(r, 409);
	EXPECT_CTYPE(r, "application/json");
	ck_assert(json_is_null(json_object_get(j, "Results")));
	errs = json_object_get(j, "Errors");
	ck_assert_uint_eq(json_array_size(errs), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(errs, 0), "OpIndex")),
			 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(errs, 0), "What")),
			 "failed to check index, key \"rb/x\" doesn't exist");
	json_decref(j);
	http_resp_free(&r);
	kv_state("rb/x", val, sizeof(val), &m_after, &x_after);
	ck_assert_str_eq(val, "old");
	ck_assert_uint_eq(m_after, m_before);
	kv_state("rb/y", val, sizeof(val), &m_new, NULL);
	ck_assert_uint_eq(m_new, 0);
	/* the KV index did not move (rb/x's own index answers its GET) */
	ck_assert_uint_eq(x_after, x_before);
}
END_TEST

START_TEST(read_only_takes_the_read_path)
{
	struct http_resp r;
	json_t *j;
	char h[64], body[512];

	REQUIRE_AGENT();
	http_put(&ag, "/v1/kv/ro/a", "A", &r);
	http_resp_free(&r);
	snprintf(body, sizeof(body),
		 "[{\"KV\":{\"Verb\":\"get-tree\",\"Key\":\"ro/\"}},"
		 "{\"KV\":{\"Verb\":\"get-or-empty\",\"Key\":\"ro/none\"}}]");
	const char *modes[] = {"", "?stale", "?consistent"};
	for (size_t i = 0; i < 3; i++) {
		j = txn(modes[i], body, &r);
		EXPECT_STATUS(r, 200);
		ck_assert_uint_eq(json_array_size(json_object_get(j, "Results")), 2);
		EXPECT_HEADER(r, "X-Consul-KnownLeader", h);
		ck_assert_str_eq(h, "true");
		EXPECT_HEADER(r, "X-Consul-LastContact", h);
		ck_assert_uint_gt(http_index(&r), 0);
		json_decref(j);
		http_resp_free(&r);
	}
	/* a write transaction carries no read metadata */
	j = txn(NULL, "[{\"KV\":{\"Verb\":\"delete\",\"Key\":\"ro/zz\"}}]", &r);
	EXPECT_STATUS(r, 200);
	ck_assert(!http_header(&r, "X-Consul-KnownLeader", h, sizeof(h)));
	ck_assert_uint_eq(json_array_size(json_object_get(j, "Results")), 0);
	json_decref(j);
	http_resp_free(&r);
	/* a read-only failure is a 409 too */
	j = txn("?stale", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"ro/none\"}}]", &r);
	EXPECT_STATUS(r, 409);
	json_decref(j);
	http_resp_free(&r);
	j = txn("?stale&consistent", "[{\"KV\":{\"Verb\":\"get\",\"Key\":\"ro/a\"}}]", &r);
	EXPECT_STATUS(r, 400);
	json_decref(j);
	http_resp_free(&r);
}
END_TEST

START_TEST(lock_and_unlock_with_a_session)
{
	struct http_resp r;
	json_t *j, *kv;
	char id[64], body[1024], path[160];

	REQUIRE_AGENT();
	http_put(&ag, "/v1/session/create", "{\"LockDelay\":\"0s\"}", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(j, "ID")));
	json_decref(j);
	http_resp_free(&r);
	snprintf(body, sizeof(body),
		 "[{\"KV\":{\"Verb\":\"lock\",\"Key\":\"lk/leader\",\"Value\":\"bWU=\","
		 "\"Session\":\"%s\"}},"
		 "{\"KV\":{\"Verb\":\"check-session\",\"Key\":\"lk/leader\",\"Session\":\"%s\"}}]",
		 id, id);
	j = txn(NULL, body, &r);
	EXPECT_STATUS(r, 200);
	kv = json_object_get(json_array_get(json_object_get(j, "Results"), 0), "KV");
	ck_assert_int_eq(json_integer_value(json_object_get(kv, "LockIndex")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(kv, "Session")), id);
	json_decref(j);
	http_resp_free(&r);
	/* the KV API sees the holder: another ?acquire fails */
	http_put(&ag, "/v1/session/create", "{\"LockDelay\":\"0s\"}", &r);
	j = http_json(&r);
	snprintf(path, sizeof(path), "/v1/kv/lk/leader?acquire=%s",
		 json_string_value(json_object_get(j, "ID")));
	json_decref(j);
	http_resp_free(&r);
	http_put(&ag, path, "x", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "false");
	http_resp_free(&r);
	snprintf(body, sizeof(body),
		 "[{\"KV\":{\"Verb\":\"unlock\",\"Key\":\"lk/leader\",\"Session\":\"%s\"}}]", id);
	j = txn(NULL, body, &r);
	EXPECT_STATUS(r, 200);
	kv = json_object_get(json_array_get(json_object_get(j, "Results"), 0), "KV");
	ck_assert_ptr_null(json_object_get(kv, "Session"));
	json_decref(j);
	http_resp_free(&r);
	http_put(&ag, path, "x", &r);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
}
END_TEST

START_TEST(catalog_operations)
{
	struct http_resp r;
	json_t *j, *res;

	REQUIRE_AGENT();
	j = txn(NULL,
		"[{\"Node\":{\"Verb\":\"set\",\"Node\":{\"Node\":\"txn-web\","
		"\"Address\":\"10.1.2.3\",\"Meta\":{\"rack\":\"r1\"}}}},"
		"{\"Service\":{\"Verb\":\"set\",\"Node\":\"txn-web\",\"Service\":{\"ID\":\"web1\","
		"\"Service\":\"web\",\"Port\":8080,\"Tags\":[\"v1\"]}}},"
		"{\"Check\":{\"Verb\":\"set\",\"Check\":{\"Node\":\"txn-web\",\"CheckID\":\"c1\","
		"\"Name\":\"up\",\"Status\":\"passing\",\"ServiceID\":\"web1\"}}}]",
		&r);
	EXPECT_STATUS(r, 200);
	res = json_object_get(j, "Results");
	ck_assert_uint_eq(json_array_size(res), 3);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(json_array_get(res, 0), "Node"), "Address")),
			 "10.1.2.3");
	ck_assert_int_eq(json_integer_value(json_object_get(
			     json_object_get(json_array_get(res, 1), "Service"), "Port")),
			 8080);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_object_get(json_array_get(res, 2), "Check"), "Status")),
			 "passing");
	json_decref(j);
	http_resp_free(&r);
	http_get(&ag, "/v1/health/service/web?passing", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	http_resp_free(&r);
	/* a service on an unknown node: 409, nothing registered */
	j = txn(NULL,
		"[{\"Service\":{\"Verb\":\"set\",\"Node\":\"ghost\",\"Service\":{\"ID\":\"g1\","
		"\"Service\":\"ghostsvc\"}}}]",
		&r);
	EXPECT_STATUS(r, 409);
	ck_assert_str_eq(json_string_value(json_object_get(
			     json_array_get(json_object_get(j, "Errors"), 0), "What")),
			 "Missing node registration");
	json_decref(j);
	http_resp_free(&r);
	j = txn(NULL, "[{\"Node\":{\"Verb\":\"delete\",\"Node\":{\"Node\":\"txn-web\"}}}]", &r);
	EXPECT_STATUS(r, 200);
	json_decref(j);
	http_resp_free(&r);
	http_get(&ag, "/v1/catalog/node/txn-web", &r);
	EXPECT_BODY(r, "null");
	http_resp_free(&r);
}
END_TEST

START_TEST(limits_and_bad_bodies)
{
	struct http_resp r;
	size_t cap = 129 * 64 + 16, len = 0;
	char *body = malloc(cap);

	REQUIRE_AGENT();
	ck_assert_ptr_nonnull(body);
	body[len++] = '[';
	for (int i = 0; i < 129; i++)
		len += (size_t)snprintf(body + len, cap - len,
					"%s{\"KV\":{\"Verb\":\"get\",\"Key\":\"k%d\"}}", i ? "," : "",
					i);
	body[len++] = ']';
	body[len] = 0;
	http_request(&ag, "PUT", "/v1/txn", body, len, &r);
	EXPECT_STATUS(r, 413);
	EXPECT_BODY(r, "Transaction contains too many operations (129 > 128)");
	http_resp_free(&r);
	free(body);

	/* over txn_max_req_len (512 KiB by default) */
	len = 600 * 1024;
	body = malloc(len + 1);
	ck_assert_ptr_nonnull(body);
	memset(body, ' ', len);
	body[0] = '[';
	body[len - 1] = ']';
	body[len] = 0;
	http_request(&ag, "PUT", "/v1/txn", body, len, &r);
	EXPECT_STATUS(r, 413);
	EXPECT_BODY(r, "Request body too large, max size: 524288 bytes");
	http_resp_free(&r);
	free(body);

	http_put(&ag, "/v1/txn", "{\"KV\":{}}", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_put(&ag, "/v1/txn", "[{\"KV\":{\"Verb\":\"set\",\"Key\":\"b\",\"Value\":\"!!\"}}]", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_get(&ag, "/v1/txn", &r);
	EXPECT_STATUS(r, 405);
	http_resp_free(&r);
	/* unknown verb: 409 naming the op */
	http_put(&ag, "/v1/txn", "[{\"KV\":{\"Verb\":\"bogus\",\"Key\":\"b\"}}]", &r);
	EXPECT_STATUS(r, 409);
	http_resp_free(&r);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-txn");
	TCase *tc = tcase_create("txn");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, kv_transaction_commits_at_one_index);
	tcase_add_test(tc, failed_check_changes_nothing);
	tcase_add_test(tc, read_only_takes_the_read_path);
	tcase_add_test(tc, lock_and_unlock_with_a_session);
	tcase_add_test(tc, catalog_operations);
	tcase_add_test(tc, limits_and_bad_bodies);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
