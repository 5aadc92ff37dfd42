/* Tests for apid/render.c: base64 and the exact JSON of KV entries and
 * members, as Consul writes them. */
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "render.h"
#include "suites.h"

static struct arena a;

static void setup(void) { arena_init(&a, 0); }

static void teardown(void) { arena_close(&a); }

/* Dumps j compactly (stealing it) and returns the text (arena). */
static const char *dump(json_t *j)
{
	char *s = NULL;
	size_t n;

	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(render_dump(&a, j, false, &s, &n), 0);
	ck_assert_uint_eq(strlen(s), n);
	json_decref(j);
	return s;
}

START_TEST(base64_vectors)
{
	/* RFC 4648 section 10 */
	static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const out[] = {"",	      "Zg==",	  "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	size_t i;

	for (i = 0; i < 7; i++)
		ck_assert_str_eq(render_base64(&a, (const uint8_t *)in[i], strlen(in[i])), out[i]);
	ck_assert_str_eq(render_base64(&a, (const uint8_t *)"\xff\xfe\x00", 3), "//4A");
}
END_TEST

START_TEST(kv_entry_shape)
{
	struct proto_kv_entry e = {
	    .key = "greeting",
	    .create_index = 5,
	    .modify_index = 7,
	    .lock_index = 0,
	    .flags = 42,
	    .value = {(const uint8_t *)"hello", 5},
	};

	ck_assert_str_eq(
	    dump(render_kv_entry(&e)),
	    "{\"LockIndex\":0,\"Key\":\"greeting\",\"Flags\":42,\"Value\":\"aGVsbG8=\","
	    "\"CreateIndex\":5,\"ModifyIndex\":7}");
	/* empty value is null; a session shows between Value and CreateIndex */
	e.value.ptr = NULL;
	e.value.len = 0;
	e.session = "adf4238a-882b-9ddc-4a9d-5b6758e4159e";
	e.lock_index = 1;
	ck_assert_str_eq(dump(render_kv_entry(&e)),
			 "{\"LockIndex\":1,\"Key\":\"greeting\",\"Flags\":42,\"Value\":null,"
			 "\"Session\":\"adf4238a-882b-9ddc-4a9d-5b6758e4159e\","
			 "\"CreateIndex\":5,\"ModifyIndex\":7}");
}
END_TEST

START_TEST(kv_entries_array)
{
	struct proto_kv_entry e[2] = {
	    {.key = "a", .create_index = 1, .modify_index = 1},
	    {.key = "a/b",
	     .create_index = 2,
	     .modify_index = 3,
	     .value = {(const uint8_t *)"x", 1}},
	};
	struct proto_strs none = {0};

	ck_assert_str_eq(dump(render_kv_entries(e, 2)),
			 "[{\"LockIndex\":0,\"Key\":\"a\",\"Flags\":0,\"Value\":null,"
			 "\"CreateIndex\":1,\"ModifyIndex\":1},"
			 "{\"LockIndex\":0,\"Key\":\"a/b\",\"Flags\":0,\"Value\":\"eA==\","
			 "\"CreateIndex\":2,\"ModifyIndex\":3}]");
	ck_assert_str_eq(dump(render_kv_entries(e, 0)), "[]");
	ck_assert_str_eq(dump(render_strs(&none)), "[]");
}
END_TEST

START_TEST(kv_flags_full_range)
{
	struct proto_kv_entry e[3] = {
	    {.key = "a\"Flags\":0", .flags = UINT64_MAX, .create_index = 1, .modify_index = 1},
	    {.key = "b", .flags = 7, .create_index = 2, .modify_index = 2},
	    {.key = "c", .flags = (uint64_t)INT64_MAX + 1, .create_index = 3, .modify_index = 3},
	};
	char *s;
	size_t n;

	ck_assert_int_eq(render_kv_dump(&a, e, 3, false, &s, &n), 0);
	ck_assert_uint_eq(strlen(s), n);
	ck_assert_str_eq(s, "[{\"LockIndex\":0,\"Key\":\"a\\\"Flags\\\":0\","
			    "\"Flags\":18446744073709551615,\"Value\":null,\"CreateIndex\":1,"
			    "\"ModifyIndex\":1},"
			    "{\"LockIndex\":0,\"Key\":\"b\",\"Flags\":7,\"Value\":null,"
			    "\"CreateIndex\":2,\"ModifyIndex\":2},"
			    "{\"LockIndex\":0,\"Key\":\"c\",\"Flags\":9223372036854775808,"
			    "\"Value\":null,\"CreateIndex\":3,\"ModifyIndex\":3}]");
	ck_assert_int_eq(render_kv_dump(&a, e, 1, true, &s, &n), 0);
	ck_assert_ptr_nonnull(strstr(s, "\"Flags\": 18446744073709551615,"));
	ck_assert_int_eq(render_kv_dump(&a, e + 1, 1, false, &s, &n), 0);
	ck_assert_ptr_nonnull(strstr(s, "\"Flags\":7,"));
}
END_TEST

START_TEST(string_invalid_utf8)
{
	ck_assert_str_eq(dump(render_string("a\xff"
					    "b")),
			 "\"a\xef\xbf\xbd"
			 "b\"");
	ck_assert_str_eq(dump(render_string("\xe2\x82\xac")), "\"\xe2\x82\xac\"");
	ck_assert_str_eq(dump(render_string(NULL)), "\"\"");
}
END_TEST

START_TEST(member_shape)
{
	const char *keys[] = {"role", "dc"};
	const char *vals[] = {"consul", "dc1"};
	struct proto_member m = {
	    .name = "node1",
	    .addr = "127.0.0.1",
	    .port = 8301,
	    .tags = {keys, vals, 2},
	    .status = 1,
	};

	/* tags come out in key order, as Go writes maps */
	ck_assert_str_eq(dump(render_members(&m, 1)),
			 "[{\"Name\":\"node1\",\"Addr\":\"127.0.0.1\",\"Port\":8301,"
			 "\"Tags\":{\"dc\":\"dc1\",\"role\":\"consul\"},\"Status\":1,"
			 "\"ProtocolMin\":1,\"ProtocolMax\":5,\"ProtocolCur\":2,"
			 "\"DelegateMin\":2,\"DelegateMax\":5,\"DelegateCur\":4}]");
}
END_TEST

START_TEST(agent_self_shape)
{
	struct config cfg = {0};
	struct proto_member m = {.name = "n1", .addr = "127.0.0.1", .port = 8301, .status = 1};
	json_t *j;

	cfg.datacenter = "dc1";
	cfg.node_name = "n1";
	cfg.node_id = "11111111-2222-3333-4444-555555555555";
	cfg.server = true;
	j = render_agent_self(&cfg, &m);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "Config"), "Datacenter")), "dc1");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "Config"), "NodeID")),
			 cfg.node_id);
	ck_assert(json_is_true(json_object_get(json_object_get(j, "Config"), "Server")));
	ck_assert_ptr_nonnull(json_object_get(json_object_get(j, "Config"), "Version"));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "Member"), "Name")),
			 "n1");
	ck_assert_int_eq(
	    json_integer_value(json_object_get(json_object_get(j, "Member"), "DelegateCur")), 4);
	json_decref(j);
}
END_TEST

START_TEST(pretty_dump)
{
	char *s;
	size_t n;
	json_t *j = json_pack("[s]", "a");

	ck_assert_int_eq(render_dump(&a, j, true, &s, &n), 0);
	ck_assert_str_eq(s, "[\n    \"a\"\n]\n");
	json_decref(j);
}
END_TEST

Suite *render_suite(void)
{
	Suite *s = suite_create("render");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, base64_vectors);
	tcase_add_test(tc, kv_entry_shape);
	tcase_add_test(tc, kv_entries_array);
	tcase_add_test(tc, kv_flags_full_range);
	tcase_add_test(tc, string_invalid_utf8);
	tcase_add_test(tc, member_shape);
	tcase_add_test(tc, agent_self_shape);
	tcase_add_test(tc, pretty_dump);
	suite_add_tcase(s, tc);
	return s;
}
