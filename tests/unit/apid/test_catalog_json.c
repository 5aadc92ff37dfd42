/* catalog_json.c writes the hot views directly: its bytes must equal the
 * jansson rendering (catalog_api.c) for every field, including strings
 * that need escaping, absent optional fields and stored JSON objects. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "catalog_api.h"
#include "catalog_json.h"
#include "config.h"
#include "routes.h"

static const char *tags[] = {"v1", "quote\"d", "back\\slash"};
static const char *mk[] = {"rack", "ctl"};
static const char *mv[] = {"a/b", "\x01\x1f\t\n\r\b\f"};

static struct proto_node nodes[2] = {
    {.id = "11111111-2222-3333-4444-555555555555",
     .node = "n1",
     .address = "10.0.0.1",
     .datacenter = "dc1",
     .meta = {mk, mv, 2},
     .create_index = 5,
     .modify_index = 9},
    {.node = "n\xc3\xa9", .address = "10.0.0.2", .datacenter = "dc1"},
};
static struct proto_service svcs[3] = {
    {.node = "n1",
     .id = "web1",
     .service = "web",
     .tags = {tags, 3},
     .port = 80,
     .weight_passing = 3,
     .weight_warning = 1,
     .create_index = 7,
     .modify_index = 8,
     .tagged_addresses = "{\"lan\":{\"Address\":\"10.0.0.1\",\"Port\":80}}"},
    {.node = "n1",
     .id = "web2",
     .service = "web",
     .kind = "connect-proxy",
     .enable_tag_override = true,
     .meta = {mk, mv, 1}},
    {.node = "n\xc3\xa9", .id = "web3", .service = "web", .port = 65535},
};
static struct proto_check checks[5] = {
    /* web1: its check, then n1's node check */
    {.node = "n1",
     .check_id = "c1",
     .name = "C \"one\"",
     .status = "passing",
     .output = "HTTP GET http://x/: 200 Output: {\"ok\":true}\n",
     .service_id = "web1",
     .service_name = "web",
     .service_tags = {tags, 1},
     .type = "http",
     .definition = "{\"HTTP\":\"http://x/\",\"Interval\":\"10s\"}",
     .create_index = 7,
     .modify_index = 8},
    {.node = "n1",
     .check_id = "serfHealth",
     .name = "Serf",
     .status = "passing",
     .service_id = "",
     .service_name = ""},
    /* web2: no check of its own, n1's node check again */
    {.node = "n1",
     .check_id = "serfHealth",
     .name = "Serf",
     .status = "passing",
     .service_id = "",
     .service_name = ""},
    /* web3: two of its own */
    {.node = "n\xc3\xa9", .check_id = "a", .status = "critical", .service_id = "web3"},
    {.node = "n\xc3\xa9", .check_id = "b", .status = "warning", .service_id = "web3"},
};

static void compare(unsigned view)
{
	struct config cfg = {.datacenter = "dc1", .node_name = "n1"};
	struct routes_env env = {.cfg = &cfg};
	struct routes_call call = {.op = ROUTES_OP_CATALOG_QUERY};
	struct proto_msg reply = proto_msg_make(PROTO_CATALOG_QUERY_REPLY);
	struct routes_resp fast, slow;
	struct arena a;

	reply.u.catalog_query_reply.index = 9;
	reply.u.catalog_query_reply.found = true;
	reply.u.catalog_query_reply.nodes.v = nodes;
	reply.u.catalog_query_reply.nodes.n = 2;
	reply.u.catalog_query_reply.services.v = svcs;
	reply.u.catalog_query_reply.services.n = 3;
	reply.u.catalog_query_reply.checks.v = checks;
	reply.u.catalog_query_reply.checks.n = 5;
	call.msg = proto_msg_make(PROTO_CATALOG_QUERY);
	call.msg.u.catalog_query.view = view;
	call.msg.u.catalog_query.name = "web";
	arena_init(&a, 0);
	ck_assert_int_eq(catalog_api_finish(&env, &call, &reply, &a, &fast), 0);
	/* a filter every entry passes takes the jansson path */
	call.filter = "Nope is empty";
	ck_assert_int_eq(catalog_api_finish(&env, &call, &reply, &a, &slow), 0);
	ck_assert_int_eq(fast.status, 200);
	ck_assert_msg(fast.body_len == slow.body_len &&
			  !memcmp(fast.body, slow.body, fast.body_len),
		      "view %u differs:\nfast %.*s\nslow %.*s", view, (int)fast.body_len, fast.body,
		      (int)slow.body_len, slow.body);
	arena_close(&a);
}

START_TEST(same_bytes_as_jansson)
{
	compare(1); /* nodes */
	compare(3); /* catalog/service */
	compare(6); /* health checks views */
	compare(7);
	compare(9);
	compare(8); /* health/service with check groups */
}
END_TEST

START_TEST(other_views_are_not_written)
{
	struct proto_catalog_query_reply r = {0};
	struct arena a;
	char *out;
	size_t len;

	arena_init(&a, 0);
	ck_assert_int_eq(catalog_json_render(&a, 2, &r, &out, &len), -ENOTSUP);
	ck_assert_int_eq(catalog_json_render(&a, 4, &r, &out, &len), -ENOTSUP);
	ck_assert_int_eq(catalog_json_render(&a, 8, &r, &out, &len), 0);
	ck_assert_str_eq(out, "[]");
	arena_close(&a);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("catalog_json");
	TCase *tc = tcase_create("catalog_json");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, same_bytes_as_jansson);
	tcase_add_test(tc, other_views_are_not_written);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
