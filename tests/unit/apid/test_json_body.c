/* Tests for apid's JSON request body readers (json_body.c): key lookup
 * ignoring case and underscores, the readers' values and texts, raw
 * values and object decoding. The endpoints' texts through these readers
 * are tested in test_txn_api.c (txn) and test_routes.c (catalog). */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "arena.h"
#include "json_body.h"

static struct arena a;

static void setup(void) { arena_init(&a, 0); }

static void teardown(void) { arena_close(&a); }

START_TEST(readers)
{
	static const struct json_body_dialect d = {
	    .prefix = "P", .map_not_string = "has a non-string", .whole_reals = false};
	struct json_body b = {.a = &a, .dialect = &d};
	json_t *o = json_loads("{\"service_id\":\"x\",\"n\":4,\"r\":1.5,\"m\":{\"k\":true},"
			       "\"s\":[\"a\",\"b\"],\"nul\":null}",
			       0, NULL);
	struct proto_map m;
	struct proto_strs s;
	json_t *obj;

	ck_assert_ptr_nonnull(o);
	ck_assert_ptr_eq(json_body_get(o, "ServiceID"), json_object_get(o, "service_id"));
	ck_assert_ptr_null(json_body_get(o, "Service"));
	ck_assert_ptr_null(json_body_get(json_object_get(o, "s"), "s"));
	ck_assert_str_eq(json_body_str(&b, o, "ServiceID"), "x");
	ck_assert_ptr_null(json_body_str(&b, o, "nul"));
	ck_assert_ptr_null(b.bad);
	ck_assert_uint_eq(json_body_uint(&b, o, "N", 9), 4);
	ck_assert_uint_eq(json_body_uint(&b, o, "absent", 9), 9);
	ck_assert_ptr_null(b.bad);
	ck_assert_uint_eq(json_body_uint(&b, o, "r", 9), 9);
	ck_assert_str_eq(b.bad, "P: r must be a non-negative integer");
	ck_assert_int_eq(json_body_map(&b, o, "m", &m), 0);
	ck_assert_uint_eq(m.n, 0);
	ck_assert_str_eq(b.bad, "P: m has a non-string");
	ck_assert_int_eq(json_body_strs(&b, o, "s", &s), 0);
	ck_assert_uint_eq(s.n, 2);
	ck_assert_str_eq(s.v[1], "b");
	ck_assert_str_eq(json_body_raw(o, "m", &a), "{\"k\":true}");
	ck_assert_ptr_null(json_body_raw(o, "nul", &a));
	ck_assert_str_eq(json_body_decode_object("{\"a\":", 5, &a, &obj),
			 "Request decode failed: unexpected token near end of file");
	ck_assert_ptr_null(obj);
	ck_assert_ptr_null(json_body_decode_object("{\"a\":1}", 7, &a, &obj));
	ck_assert(json_is_object(obj));
	json_decref(obj);
	json_decref(o);
}
END_TEST

static Suite *json_body_suite(void)
{
	Suite *s = suite_create("apid-json-body");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, readers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(json_body_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
