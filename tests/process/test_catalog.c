/* Process test: /v1/catalog and /v1/health end to end against a real
 * agent: Consul's register/deregister bodies (also lower-case and
 * snake_case keys), the read views and their JSON shapes, ?passing ?tag
 * ?node-meta, blocking queries woken by a registration, and 400s with a
 * reason for bad bodies. */
#include <inttypes.h>
#include <pthread.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("cat-node", NULL)

static json_t *get_ok(const char *path, uint64_t *out_index)
{
	struct http_resp r;
	json_t *j;

	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	if (out_index)
		*out_index = http_index(&r);
	j = http_json(&r);
	ck_assert_msg(j, "not JSON: %.300s", r.body);
	http_resp_free(&r);
	return j;
}

static void put_ok(const char *path, const char *body)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
}

static void put_400(const char *path, const char *body, const char *reason_part)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, 400);
	ck_assert_msg(r.body && strstr(r.body, reason_part), "body [%s] lacks [%s]", r.body,
		      reason_part);
	http_resp_free(&r);
}

static const char *sfield(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	ck_assert_msg(json_is_string(v), "field %s missing or not a string", k);
	return json_string_value(v);
}

static json_int_t ifield(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	ck_assert_msg(json_is_integer(v), "field %s missing or not an integer", k);
	return json_integer_value(v);
}

START_TEST(register_and_read_views)
{
	json_t *j, *e;
	uint64_t idx;

	REQUIRE_AGENT();
	put_ok("/v1/catalog/register",
	       "{\"Node\":\"ext1\",\"Address\":\"10.1.0.1\",\"NodeMeta\":{\"rack\":\"r1\"},"
	       "\"Service\":{\"ID\":\"redis1\",\"Service\":\"redis\",\"Tags\":[\"primary\",\"v1\"],"
	       "\"Port\":6379,\"Meta\":{\"ver\":\"7\"}},"
	       "\"Check\":{\"CheckID\":\"redis-alive\",\"Name\":\"Redis alive\","
	       "\"Status\":\"passing\",\"ServiceID\":\"redis1\"}}");
	/* python-consul style: lower-case keys, snake_case */
	put_ok("/v1/catalog/register",
	       "{\"node\":\"ext2\",\"address\":\"10.1.0.2\",\"node_meta\":{\"rack\":\"r2\"},"
	       "\"service\":{\"service\":\"redis\",\"tags\":[\"v1\"],\"port\":6380},"
	       "\"check\":{\"name\":\"redis\",\"status\":\"critical\",\"service_id\":\"redis\"}}");

	j = get_ok("/v1/catalog/service/redis", &idx);
	ck_assert_uint_eq(json_array_size(j), 2);
	e = json_array_get(j, 0);
	ck_assert_str_eq(sfield(e, "Node"), "ext1");
	ck_assert_str_eq(sfield(e, "Address"), "10.1.0.1");
	ck_assert_str_eq(sfield(e, "Datacenter"), "dc1");
	ck_assert_str_eq(sfield(e, "ServiceID"), "redis1");
	ck_assert_str_eq(sfield(e, "ServiceName"), "redis");
	ck_assert_int_eq(ifield(e, "ServicePort"), 6379);
	ck_assert_str_eq(sfield(json_object_get(e, "NodeMeta"), "rack"), "r1");
	ck_assert_str_eq(sfield(json_object_get(e, "ServiceMeta"), "ver"), "7");
	ck_assert_int_eq(ifield(json_object_get(e, "ServiceWeights"), "Passing"), 1);
	ck_assert(json_is_false(json_object_get(e, "ServiceEnableTagOverride")));
	ck_assert_int_eq(ifield(e, "CreateIndex"), ifield(e, "ModifyIndex"));
	ck_assert_str_eq(sfield(json_array_get(j, 1), "ServiceID"), "redis"); /* ID defaults */
	ck_assert_uint_ge(idx, (uint64_t)ifield(e, "ModifyIndex"));
	json_decref(j);

	j = get_ok("/v1/catalog/service/redis?tag=primary", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	j = get_ok("/v1/catalog/service/redis?tag=primary&tag=v2", NULL);
	ck_assert_uint_eq(json_array_size(j), 0);
	json_decref(j);

	j = get_ok("/v1/health/service/redis?passing", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	e = json_array_get(j, 0);
	ck_assert_str_eq(sfield(json_object_get(e, "Node"), "Node"), "ext1");
	ck_assert_str_eq(sfield(json_object_get(e, "Service"), "ID"), "redis1");
	ck_assert_str_eq(sfield(json_object_get(e, "Service"), "Service"), "redis");
	ck_assert_uint_eq(json_array_size(json_object_get(e, "Checks")), 1);
	e = json_array_get(json_object_get(e, "Checks"), 0);
	ck_assert_str_eq(sfield(e, "CheckID"), "redis-alive");
	ck_assert_str_eq(sfield(e, "Status"), "passing");
	ck_assert_str_eq(sfield(e, "ServiceName"), "redis");
	ck_assert_str_eq(sfield(e, "Node"), "ext1");
	json_decref(j);
	j = get_ok("/v1/health/service/redis", NULL);
	ck_assert_uint_eq(json_array_size(j), 2);
	json_decref(j);

	j = get_ok("/v1/health/state/critical", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(sfield(json_array_get(j, 0), "CheckID"), "redis");
	json_decref(j);
	j = get_ok("/v1/health/checks/redis", NULL);
	ck_assert_uint_eq(json_array_size(j), 2);
	json_decref(j);
	j = get_ok("/v1/health/node/ext2", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);

	j = get_ok("/v1/catalog/services", NULL);
	ck_assert(json_is_array(json_object_get(j, "redis")));
	ck_assert_uint_eq(json_array_size(json_object_get(j, "redis")), 2);
	json_decref(j);
	j = get_ok("/v1/catalog/nodes?node-meta=rack:r2", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(sfield(json_array_get(j, 0), "Node"), "ext2");
	json_decref(j);
	j = get_ok("/v1/catalog/nodes", NULL);
	ck_assert_uint_eq(json_array_size(j), 3); /* with the agent's own node */
	json_decref(j);

	j = get_ok("/v1/catalog/node/ext1", NULL);
	ck_assert_str_eq(sfield(json_object_get(j, "Node"), "Node"), "ext1");
	ck_assert_str_eq(
	    sfield(json_object_get(json_object_get(j, "Services"), "redis1"), "Service"), "redis");
	json_decref(j);
	j = get_ok("/v1/catalog/node/nosuch", NULL);
	ck_assert(json_is_null(j));
	json_decref(j);
	j = get_ok("/v1/catalog/node-services/nosuch", NULL);
	ck_assert(json_is_null(json_object_get(j, "Node")));
	ck_assert_uint_eq(json_array_size(json_object_get(j, "Services")), 0);
	json_decref(j);
	j = get_ok("/v1/catalog/node-services/ext2", NULL);
	ck_assert_uint_eq(json_array_size(json_object_get(j, "Services")), 1);
	json_decref(j);
	j = get_ok("/v1/catalog/datacenters", NULL);
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "dc1");
	json_decref(j);

	/* ?filter= */
	j = get_ok("/v1/health/service/redis?filter=Service.ID%20%3D%3D%20redis1", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	j = get_ok("/v1/catalog/service/redis?filter=ServiceTags%20contains%20primary%20or%20"
		   "NodeMeta.rack%20%3D%3D%20r2",
		   NULL);
	ck_assert_uint_eq(json_array_size(j), 2);
	json_decref(j);
	j = get_ok("/v1/health/state/any?filter=Status%20%3D%3D%20critical", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	{
		struct http_resp r;

		http_get(&ag, "/v1/catalog/nodes?filter=Node%20%3D%3D", &r);
		EXPECT_STATUS(r, 400);
		http_resp_free(&r);
	}

	put_ok("/v1/catalog/deregister", "{\"Node\":\"ext2\",\"ServiceID\":\"redis\"}");
	j = get_ok("/v1/health/service/redis", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	put_ok("/v1/catalog/deregister", "{\"Node\":\"ext2\"}");
	j = get_ok("/v1/catalog/node/ext2", NULL);
	ck_assert(json_is_null(j));
	json_decref(j);
}
END_TEST

struct blocked {
	char path[256];
	struct http_resp r;
};

static void *block_get(void *arg)
{
	struct blocked *b = arg;

	http_get(&ag, b->path, &b->r);
	return NULL;
}

START_TEST(blocking_query_wakes_on_registration)
{
	struct blocked b;
	pthread_t th;
	json_t *j;
	uint64_t idx, idx2;

	REQUIRE_AGENT();
	put_ok("/v1/catalog/register",
	       "{\"Node\":\"blk1\",\"Address\":\"10.2.0.1\",\"Service\":{\"Service\":\"api\"}}");
	j = get_ok("/v1/health/service/api", &idx);
	ck_assert_uint_eq(json_array_size(j), 1);
	json_decref(j);
	/* a change to another service does not concern this view's index */
	put_ok("/v1/catalog/register",
	       "{\"Node\":\"blk1\",\"Address\":\"10.2.0.1\",\"Service\":{\"Service\":\"other\"}}");
	j = get_ok("/v1/health/service/api", &idx2);
	ck_assert_uint_eq(idx2, idx);
	json_decref(j);

	memset(&b, 0, sizeof(b));
	snprintf(b.path, sizeof(b.path), "/v1/health/service/api?index=%" PRIu64 "&wait=60s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, block_get, &b), 0);
	/* the query is parked before this lands or answers it at once: either
	 * way the answer must show the second instance */
	harness_pause_ms(200);
	put_ok("/v1/catalog/register",
	       "{\"Node\":\"blk2\",\"Address\":\"10.2.0.2\",\"Service\":{\"Service\":\"api\"}}");
	pthread_join(th, NULL);
	EXPECT_STATUS(b.r, 200);
	ck_assert_uint_gt(http_index(&b.r), idx);
	j = http_json(&b.r);
	ck_assert_uint_eq(json_array_size(j), 2);
	json_decref(j);
	http_resp_free(&b.r);
}
END_TEST

START_TEST(bad_requests)
{
	struct http_resp r;

	REQUIRE_AGENT();
	put_400("/v1/catalog/register", "{\"Node\":", "Request decode failed");
	put_400("/v1/catalog/register", "", "Request decode failed");
	put_400("/v1/catalog/register", "{\"Address\":\"1.2.3.4\"}", "Must provide node");
	put_400("/v1/catalog/register", "{\"Node\":\"x\"}", "Must provide address");
	put_400("/v1/catalog/register",
		"{\"Node\":\"x\",\"Address\":\"1.2.3.4\",\"Service\":{\"Port\":1}}",
		"Missing service name");
	put_400(
	    "/v1/catalog/register",
	    "{\"Node\":\"x\",\"Address\":\"1.2.3.4\",\"Check\":{\"Name\":\"c\",\"Status\":\"ok\"}}",
	    "Invalid check status");
	put_400("/v1/catalog/register",
		"{\"Node\":\"x\",\"Address\":\"1.2.3.4\",\"Check\":{\"Name\":\"c\","
		"\"ServiceID\":\"nosuch\"}}",
		"rejected");
	put_400("/v1/catalog/deregister", "{}", "Must provide node");
	http_get(&ag, "/v1/health/state/bogus", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_get(&ag, "/v1/catalog/register", &r);
	EXPECT_STATUS(r, 405);
	http_resp_free(&r);
	http_get(&ag, "/v1/catalog/bogus", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
	/* apid is still fine */
	http_get(&ag, "/v1/catalog/nodes", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
}
END_TEST

static Suite *catalog_suite(void)
{
	Suite *s = suite_create("process-catalog");
	TCase *tc = tcase_create("catalog");

	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, register_and_read_views);
	tcase_add_test(tc, blocking_query_wakes_on_registration);
	tcase_add_test(tc, bad_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return ptest_run(catalog_suite()); }
