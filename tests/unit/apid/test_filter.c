/* The ?filter= expression language: parsing, errors, and evaluation
 * against Consul-shaped JSON. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "filter.h"

static json_t *entry;

static void setup(void)
{
	entry = json_loads(
	    "{\"Node\":{\"Node\":\"n1\",\"Address\":\"10.0.0.1\",\"Meta\":{\"rack\":\"a\","
	    "\"env.zone\":\"z1\"}},"
	    "\"Service\":{\"ID\":\"web1\",\"Service\":\"web\",\"Tags\":[\"v1\",\"primary\"],"
	    "\"Port\":8080,\"EnableTagOverride\":false,\"Meta\":{},\"Weight\":1.5},"
	    "\"Checks\":[{\"CheckID\":\"c1\",\"Status\":\"passing\",\"Output\":\"ok\"},"
	    "{\"CheckID\":\"c2\",\"Status\":\"critical\",\"Output\":\"\"}]}",
	    0, NULL);
	ck_assert_ptr_nonnull(entry);
}

static void teardown(void) { json_decref(entry); }

/* Parses expr (must succeed) and evaluates it on the entry. */
static bool eval(const char *expr)
{
	struct filter *f;
	char err[256] = "";
	bool r;

	ck_assert_msg(filter_parse(expr, &f, err, sizeof(err)) == 0, "parse [%s]: %s", expr, err);
	r = filter_match(f, entry);
	filter_free(f);
	return r;
}

static void parse_fails(const char *expr)
{
	struct filter *f = NULL;
	char err[256] = "";

	ck_assert_msg(filter_parse(expr, &f, err, sizeof(err)) == -EINVAL, "[%s] parsed", expr);
	ck_assert_ptr_null(f);
	ck_assert_msg(strstr(err, "Failed to create boolean expression evaluator"), "err [%s]",
		      err);
}

START_TEST(equality)
{
	ck_assert(eval("Service.Service == web"));
	ck_assert(eval("Service.Service == \"web\""));
	ck_assert(!eval("Service.Service == Web"));
	ck_assert(eval("Service.Service != db"));
	ck_assert(eval("Service.Port == 8080"));
	ck_assert(!eval("Service.Port == 80"));
	ck_assert(eval("Service.EnableTagOverride == false"));
	ck_assert(eval("Service.Weight == 1.5"));
	ck_assert(eval("Node.Address == 10.0.0.1"));
	ck_assert(eval("Node.Meta.rack == a"));
	ck_assert(eval("Node.Meta[\"env.zone\"] == `z1`"));
	/* a missing field selects nothing: == false, != true */
	ck_assert(!eval("Service.Nope == x"));
	ck_assert(eval("Service.Nope != x"));
}
END_TEST

START_TEST(collections)
{
	ck_assert(eval("Service.Tags contains primary"));
	ck_assert(!eval("Service.Tags contains v2"));
	ck_assert(eval("Service.Tags not contains v2"));
	ck_assert(eval("primary in Service.Tags"));
	ck_assert(eval("\"v1\" in Service.Tags"));
	ck_assert(eval("v2 not in Service.Tags"));
	ck_assert(!eval("v1 not in Service.Tags"));
	ck_assert(eval("rack in Node.Meta"));		/* map keys */
	ck_assert(eval("Service.Service contains eb")); /* substrings */
	/* through an array: any element */
	ck_assert(eval("Checks.Status == critical"));
	ck_assert(eval("Checks.Status == passing"));
	ck_assert(!eval("Checks.Status == warning"));
	ck_assert(!eval("Checks.Status != critical"));
	ck_assert(eval("Service.Meta is empty"));
	ck_assert(eval("Service.Missing is empty"));
	ck_assert(eval("Service.Tags is not empty"));
	ck_assert(!eval("Service.Tags is empty"));
}
END_TEST

START_TEST(logic_and_regex)
{
	ck_assert(eval("Service.Service == web and Service.Port == 8080"));
	ck_assert(!eval("Service.Service == web and Service.Port == 80"));
	ck_assert(eval("Service.Service == db or Service.Port == 8080"));
	ck_assert(eval("not Service.Service == db"));
	ck_assert(!eval("not (Service.Service == web)"));
	/* and binds tighter than or */
	ck_assert(eval("Service.Service == db and Service.Port == 1 or Service.ID == web1"));
	ck_assert(!eval("Service.Service == db and (Service.Port == 1 or Service.ID == web1)"));
	ck_assert(eval("Service.ID matches \"^web[0-9]+$\""));
	ck_assert(!eval("Service.ID matches \"^db\""));
	ck_assert(eval("Service.ID not matches \"^db\""));
}
END_TEST

START_TEST(errors)
{
	char big[FILTER_MAX_LEN + 10];
	char deep[1000];
	size_t n = 0;

	parse_fails("");
	parse_fails("Service.Service ==");
	parse_fails("Service.Service = web");
	parse_fails("== web");
	parse_fails("Service.Service == web and");
	parse_fails("(Service.Service == web");
	parse_fails("Service.Service == \"unterminated");
	parse_fails("Service.Service is full");
	parse_fails("Service.ID matches \"(\"");
	parse_fails("Service.Service == web extra");
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	parse_fails(big);
	for (int i = 0; i < 100; i++)
		deep[n++] = '(';
	memcpy(deep + n, "a == b", 6);
	n += 6;
	for (int i = 0; i < 100; i++)
		deep[n++] = ')';
	deep[n] = 0;
	parse_fails(deep);
}
END_TEST

START_TEST(arrays_and_objects)
{
	struct filter *f;
	char err[256];
	json_t *arr = json_pack("[{s:s},{s:s},{s:s}]", "Status", "passing", "Status", "critical",
				"Status", "passing");
	json_t *obj =
	    json_pack("{s:{s:s},s:{s:s}}", "a", "Status", "passing", "b", "Status", "critical");

	ck_assert_int_eq(filter_parse("Status == passing", &f, err, sizeof(err)), 0);
	filter_array(f, arr);
	ck_assert_uint_eq(json_array_size(arr), 2);
	filter_object(f, obj);
	ck_assert_uint_eq(json_object_size(obj), 1);
	ck_assert_ptr_nonnull(json_object_get(obj, "a"));
	filter_free(f);
	json_decref(arr);
	json_decref(obj);
}
END_TEST

static Suite *filter_suite(void)
{
	Suite *s = suite_create("filter");
	TCase *tc = tcase_create("filter");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, equality);
	tcase_add_test(tc, collections);
	tcase_add_test(tc, logic_and_regex);
	tcase_add_test(tc, errors);
	tcase_add_test(tc, arrays_and_objects);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(filter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
