/* Tests for the pure parts of cli/lock.c and cli/kv_io.c: Go durations,
 * the semaphore's .lock JSON (decode, prune, encode as Go marshals it),
 * the export text (Go's MarshalIndent with tabs and HTML-safe escapes),
 * the import parser, and flags above 2^63 through the quoting pre-pass. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "kv_io.h"
#include "lock.h"

START_TEST(durations)
{
	uint64_t ms = 1;

	ck_assert_int_eq(lock_parse_duration_ms("0", &ms), 0);
	ck_assert_uint_eq(ms, 0);
	ck_assert_int_eq(lock_parse_duration_ms("15s", &ms), 0);
	ck_assert_uint_eq(ms, 15000);
	ck_assert_int_eq(lock_parse_duration_ms("1m30s", &ms), 0);
	ck_assert_uint_eq(ms, 90000);
	ck_assert_int_eq(lock_parse_duration_ms("250ms", &ms), 0);
	ck_assert_uint_eq(ms, 250);
	ck_assert_int_eq(lock_parse_duration_ms("1.5h", &ms), 0);
	ck_assert_uint_eq(ms, 5400000);
	ck_assert_int_eq(lock_parse_duration_ms("2000us", &ms), 0);
	ck_assert_uint_eq(ms, 2);
	ck_assert_int_eq(lock_parse_duration_ms("", &ms), -EINVAL);
	ck_assert_int_eq(lock_parse_duration_ms("10", &ms), -EINVAL); /* Go needs a unit */
	ck_assert_int_eq(lock_parse_duration_ms("5x", &ms), -EINVAL);
	ck_assert_int_eq(lock_parse_duration_ms("-1s", &ms), -EINVAL);
	ck_assert_int_eq(lock_parse_duration_ms("s", &ms), -EINVAL);
}
END_TEST

START_TEST(sem_decode_empty_and_value)
{
	json_t *h = NULL;
	int64_t limit = 0;
	const char *v = "{\"Limit\":3,\"Holders\":{\"s1\":true,\"s2\":true,\"s3\":false}}";

	ck_assert_int_eq(lock_sem_decode(NULL, 0, 4, &limit, &h), 0);
	ck_assert_int_eq(limit, 4);
	ck_assert_uint_eq(json_object_size(h), 0);
	json_decref(h);

	ck_assert_int_eq(lock_sem_decode(v, strlen(v), 4, &limit, &h), 0);
	ck_assert_int_eq(limit, 3);
	ck_assert_uint_eq(json_object_size(h), 2); /* false is not a holder */
	ck_assert(json_is_true(json_object_get(h, "s1")));
	ck_assert(json_is_true(json_object_get(h, "s2")));
	json_decref(h);

	/* Go matches field names case-insensitively; null holders are none */
	v = "{\"limit\":2,\"holders\":null}";
	ck_assert_int_eq(lock_sem_decode(v, strlen(v), 9, &limit, &h), 0);
	ck_assert_int_eq(limit, 2);
	ck_assert_uint_eq(json_object_size(h), 0);
	json_decref(h);

	/* no Limit decodes as 0, which conflicts with any -n */
	v = "{\"Holders\":{}}";
	ck_assert_int_eq(lock_sem_decode(v, strlen(v), 9, &limit, &h), 0);
	ck_assert_int_eq(limit, 0);
	json_decref(h);

	ck_assert_int_eq(lock_sem_decode("x", 1, 2, &limit, &h), -EINVAL);
	ck_assert_int_eq(lock_sem_decode("[1]", 3, 2, &limit, &h), -EINVAL);
	ck_assert_int_eq(lock_sem_decode("{\"Limit\":\"2\"}", 13, 2, &limit, &h), -EINVAL);
}
END_TEST

START_TEST(sem_prune_and_encode)
{
	json_t *h = json_pack("{s:b,s:b,s:b}", "s-live", 1, "s-dead", 1, "s-other", 1);
	json_t *entries = json_loads(
	    "[{\"Key\":\"p/.lock\",\"Session\":\"\"},"
	    "{\"Key\":\"p/s-live\",\"Session\":\"s-live\"},"
	    "{\"Key\":\"p/s-dead\"},"
	    "{\"Key\":\"p/s-other\",\"Session\":\"s-other\"}]",
	    0, NULL);
	char *text;

	ck_assert_ptr_nonnull(entries);
	lock_sem_prune(h, entries);
	ck_assert_uint_eq(json_object_size(h), 2);
	ck_assert_ptr_null(json_object_get(h, "s-dead"));
	text = lock_sem_encode(2, h);
	/* Go: struct fields in order, map keys sorted, compact */
	ck_assert_str_eq(text, "{\"Limit\":2,\"Holders\":{\"s-live\":true,\"s-other\":true}}");
	free(text);

	lock_sem_prune(h, NULL); /* no entries: nobody is alive */
	ck_assert_uint_eq(json_object_size(h), 0);
	text = lock_sem_encode(5, h);
	ck_assert_str_eq(text, "{\"Limit\":5,\"Holders\":{}}");
	free(text);

	ck_assert_ptr_nonnull(lock_find_entry(entries, "p/.lock"));
	ck_assert_str_eq(json_string_value(json_object_get(lock_find_entry(entries, "p/s-live"),
							   "Session")),
			 "s-live");
	ck_assert_ptr_null(lock_find_entry(entries, "p/none"));
	json_decref(entries);
	json_decref(h);
}
END_TEST

START_TEST(sem_round_trip)
{
	json_t *h = json_pack("{s:b}", "b4d1", 1), *h2 = NULL;
	char *text = lock_sem_encode(3, h);
	int64_t limit;

	ck_assert_int_eq(lock_sem_decode(text, strlen(text), 1, &limit, &h2), 0);
	ck_assert_int_eq(limit, 3);
	ck_assert(json_equal(h, h2));
	free(text);
	json_decref(h);
	json_decref(h2);
}
END_TEST

START_TEST(quote_big_flags)
{
	const char *in = "[{\"Key\":\"a\\\"Flags\\\":1\",\"Flags\":16210313421097356768,"
			 "\"ModifyIndex\":7},{\"flags\": 3304740253564472344},{\"Flags\":\"x\"}]";
	char *q = kv_io_quote_flags(in, strlen(in));
	json_t *doc;

	ck_assert_str_eq(q, "[{\"Key\":\"a\\\"Flags\\\":1\",\"Flags\":\"16210313421097356768\","
			    "\"ModifyIndex\":7},{\"flags\":\"3304740253564472344\"},{\"Flags\":\"x\"}]");
	doc = json_loads(q, 0, NULL);
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(doc, 0), "Key")),
			 "a\"Flags\":1");
	ck_assert(kv_io_flags(json_object_get(json_array_get(doc, 0), "Flags")) ==
		  LOCK_SEM_FLAG_VALUE);
	ck_assert(kv_io_flags(json_object_get(json_array_get(doc, 1), "flags")) ==
		  LOCK_FLAG_VALUE);
	ck_assert_uint_eq(kv_io_flags(json_object_get(json_array_get(doc, 2), "Flags")), 0);
	ck_assert_uint_eq(kv_io_flags(json_object_get(json_array_get(doc, 0), "ModifyIndex")), 7);
	json_decref(doc);
	free(q);
}
END_TEST

START_TEST(export_text)
{
	json_t *entries = json_loads(
	    "[{\"LockIndex\":0,\"Key\":\"app/<cfg>&\\n\",\"Flags\":42,\"Value\":\"aGVsbG8=\","
	    "\"CreateIndex\":5,\"ModifyIndex\":6},"
	    "{\"Key\":\"app/empty\",\"Flags\":0,\"Value\":null}]",
	    0, NULL);
	char *text = NULL;

	ck_assert_ptr_nonnull(entries);
	ck_assert_int_eq(kv_io_export_text(entries, &text), 0);
	ck_assert_str_eq(text, "[\n"
			       "\t{\n"
			       "\t\t\"key\": \"app/\\u003ccfg\\u003e\\u0026\\n\",\n"
			       "\t\t\"flags\": 42,\n"
			       "\t\t\"value\": \"aGVsbG8=\"\n"
			       "\t},\n"
			       "\t{\n"
			       "\t\t\"key\": \"app/empty\",\n"
			       "\t\t\"flags\": 0,\n"
			       "\t\t\"value\": \"\"\n"
			       "\t}\n"
			       "]\n");
	free(text);
	json_decref(entries);

	ck_assert_int_eq(kv_io_export_text(NULL, &text), 0); /* 404: no keys */
	ck_assert_str_eq(text, "[]\n");
	free(text);

	entries = json_loads("[{\"Flags\":1}]", 0, NULL);
	ck_assert_int_eq(kv_io_export_text(entries, &text), -EINVAL);
	json_decref(entries);
}
END_TEST

START_TEST(import_parse)
{
	const char *in = "[{\"key\":\"a/b\",\"flags\":16210313421097356768,\"value\":\"aGk=\"},"
			 "{\"Key\":\"c\",\"Value\":\"\"},{\"key\":\"d\",\"value\":null}]";
	struct kv_io_entry *e = NULL;
	size_t n = 0;
	char err[256];

	ck_assert_int_eq(kv_io_import_parse(in, strlen(in), NULL, &e, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(e[0].key, "a/b");
	ck_assert(e[0].flags == LOCK_SEM_FLAG_VALUE);
	ck_assert_uint_eq(e[0].len, 2);
	ck_assert_mem_eq(e[0].value, "hi", 2);
	ck_assert_str_eq(e[1].key, "c");
	ck_assert_uint_eq(e[1].len, 0);
	ck_assert_uint_eq(e[1].flags, 0);
	ck_assert_uint_eq(e[2].len, 0);
	kv_io_entries_free(e, n);

	ck_assert_int_eq(kv_io_import_parse(in, strlen(in), "backup", &e, &n, err, sizeof(err)),
			 0);
	ck_assert_str_eq(e[0].key, "backup/a/b");
	kv_io_entries_free(e, n);
	ck_assert_int_eq(kv_io_import_parse(in, strlen(in), "backup/", &e, &n, err, sizeof(err)),
			 0);
	ck_assert_str_eq(e[2].key, "backup/d");
	kv_io_entries_free(e, n);

	ck_assert_int_eq(kv_io_import_parse("[]", 2, NULL, &e, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 0);
	kv_io_entries_free(e, n);

	ck_assert_int_eq(kv_io_import_parse("{", 1, NULL, &e, &n, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strncmp(err, "Cannot unmarshal data", 21) == 0, "%s", err);
	ck_assert_int_eq(kv_io_import_parse("{}", 2, NULL, &e, &n, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(kv_io_import_parse("[{\"value\":\"\"}]", 14, NULL, &e, &n, err,
					    sizeof(err)),
			 -EINVAL);
	in = "[{\"key\":\"k\",\"value\":\"***\"}]";
	ck_assert_int_eq(kv_io_import_parse(in, strlen(in), NULL, &e, &n, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "Error base 64 decoding value for key k");
	in = "[{\"key\":\"k\",\"flags\":-1}]";
	ck_assert_int_eq(kv_io_import_parse(in, strlen(in), NULL, &e, &n, err, sizeof(err)),
			 -EINVAL);
}
END_TEST

START_TEST(export_import_round_trip)
{
	json_t *entries = json_loads("[{\"Key\":\"x/\\u00e9t\\u00e9\",\"Flags\":9,"
				     "\"Value\":\"AAEC/w==\"}]",
				     0, NULL);
	struct kv_io_entry *e = NULL;
	size_t n = 0;
	char *text = NULL, err[128];

	ck_assert_int_eq(kv_io_export_text(entries, &text), 0);
	ck_assert_int_eq(kv_io_import_parse(text, strlen(text), NULL, &e, &n, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(e[0].key, "x/\xc3\xa9t\xc3\xa9");
	ck_assert_uint_eq(e[0].flags, 9);
	ck_assert_uint_eq(e[0].len, 4);
	ck_assert_mem_eq(e[0].value, "\x00\x01\x02\xff", 4);
	kv_io_entries_free(e, n);
	free(text);
	json_decref(entries);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cli-lock");
	TCase *tc = tcase_create("pure");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, durations);
	tcase_add_test(tc, sem_decode_empty_and_value);
	tcase_add_test(tc, sem_prune_and_encode);
	tcase_add_test(tc, sem_round_trip);
	tcase_add_test(tc, quote_big_flags);
	tcase_add_test(tc, export_text);
	tcase_add_test(tc, import_parse);
	tcase_add_test(tc, export_import_round_trip);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
