/* render_kv_dump writes compact KV JSON directly: its bytes must equal the
 * jansson rendering (render_kv_dump_jansson) for every entry shape: odd
 * keys (escapes, controls, invalid UTF-8), empty values (null), every
 * value length modulo 3, flags and indexes above INT64_MAX, Session set,
 * empty or absent. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "render.h"

#define N_RANDOM 600

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* A random string (NUL-terminated, no NUL inside) drawn mostly from bytes
 * that need care in JSON. */
static char *random_str(size_t max)
{
	static const unsigned char pool[] = {'a',  'Z',	 '/',  '"',  '\\', '\b', '\f', '\n', '\r',
					     '\t', 0x01, 0x1f, 0x7f, 0x20, 0xc3, 0xa9, 0xe2, 0x82,
					     0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xc0, 0xed, 0xa0};
	size_t n = next() % (max + 1), i;
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++)
		s[i] = (char)pool[next() % sizeof(pool)];
	s[n] = '\0';
	return s;
}

static uint64_t random_u64(void)
{
	switch (next() % 4) {
	case 0:
		return next() % 100;
	case 1:
		return (uint64_t)INT64_MAX + next() % 3; /* around the edge */
	case 2:
		return UINT64_MAX - next() % 2;
	default:
		return next();
	}
}

static void same(const struct proto_kv_entry *e, size_t n)
{
	struct arena a;
	char *want, *got;
	size_t want_len, got_len;

	arena_init(&a, 0);
	ck_assert_int_eq(render_kv_dump_jansson(&a, e, n, false, &want, &want_len), 0);
	ck_assert_int_eq(render_kv_dump(&a, e, n, false, &got, &got_len), 0);
	ck_assert_uint_eq(got_len, want_len);
	ck_assert_uint_eq(strlen(got), got_len);
	ck_assert_str_eq(got, want);
	/* ?pretty goes through jansson: unchanged */
	ck_assert_int_eq(render_kv_dump_jansson(&a, e, n, true, &want, &want_len), 0);
	ck_assert_int_eq(render_kv_dump(&a, e, n, true, &got, &got_len), 0);
	ck_assert_uint_eq(got_len, want_len);
	ck_assert_str_eq(got, want);
	arena_close(&a);
}

START_TEST(known_bytes)
{
	static const uint8_t val[] = {'h', 'i', '!', 0};
	struct proto_kv_entry e = {.key = "a\"b\\c\x01\n\xff\xc3\xa9",
				   .lock_index = 2,
				   .flags = UINT64_MAX,
				   .value = {val, 4},
				   .session = "s-1",
				   .create_index = 3,
				   .modify_index = (uint64_t)INT64_MAX + 1};
	struct arena a;
	char *s;
	size_t n;

	arena_init(&a, 0);
	ck_assert_int_eq(render_kv_dump(&a, &e, 1, false, &s, &n), 0);
	ck_assert_str_eq(s,
			 "[{\"LockIndex\":2,\"Key\":\"a\\\"b\\\\c\\u0001\\n\xef\xbf\xbd\xc3\xa9\","
			 "\"Flags\":18446744073709551615,\"Value\":\"aGkhAA==\","
			 "\"Session\":\"s-1\",\"CreateIndex\":3,"
			 "\"ModifyIndex\":-9223372036854775808}]");
	ck_assert_int_eq(render_kv_dump(&a, &e, 0, false, &s, &n), 0);
	ck_assert_str_eq(s, "[]");
	ck_assert_uint_eq(n, 2);
	arena_close(&a);
}
END_TEST

START_TEST(fixed_shapes)
{
	static const uint8_t bytes[] = {0, 1, 2, 0xfb, 0xff, 0xfe, '"', '\\'};
	struct proto_kv_entry e[] = {
	    {.key = ""},
	    {.key = NULL},
	    {.key = "k", .value = {bytes, 1}},
	    {.key = "k", .value = {bytes, 2}},
	    {.key = "k", .value = {bytes, 3}},
	    {.key = "k", .value = {bytes, 8}},
	    {.key = "a\"Flags\":0", .flags = (uint64_t)INT64_MAX + 1},
	    {.key = "x", .flags = (uint64_t)INT64_MAX},
	    {.key = "x", .session = ""},
	    {.key = "x", .session = "\xff\"\x1f"},
	    {.key = "\xed\xa0\x80\xf4\x90\x80\x80\xe0\x80\x80\xc3"},
	    {.key = "x", .lock_index = UINT64_MAX, .create_index = UINT64_MAX},
	};
	size_t i;

	for (i = 0; i < sizeof(e) / sizeof(e[0]); i++)
		same(&e[i], 1);
	same(e, sizeof(e) / sizeof(e[0]));
	same(e, 0);
}
END_TEST

START_TEST(random_entries)
{
	struct proto_kv_entry *e = calloc(N_RANDOM, sizeof(*e));
	uint8_t *vals[N_RANDOM];
	size_t i, j;

	ck_assert_ptr_nonnull(e);
	for (i = 0; i < N_RANDOM; i++) {
		size_t vlen = next() % 4 == 0 ? 0 : next() % 300;

		vals[i] = malloc(vlen + 1);
		ck_assert_ptr_nonnull(vals[i]);
		for (j = 0; j < vlen; j++)
			vals[i][j] = (uint8_t)next();
		e[i].key = random_str(40);
		e[i].value.ptr = vlen ? vals[i] : NULL;
		e[i].value.len = vlen;
		e[i].flags = random_u64();
		e[i].lock_index = random_u64();
		e[i].create_index = random_u64();
		e[i].modify_index = random_u64();
		e[i].session = next() % 3 == 0 ? random_str(12) : NULL;
		same(&e[i], 1);
	}
	same(e, N_RANDOM);
	for (i = 0; i < N_RANDOM; i++) {
		free((char *)e[i].key);
		free((char *)e[i].session);
		free(vals[i]);
	}
	free(e);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("kv_json");
	TCase *tc = tcase_create("kv_json");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, known_bytes);
	tcase_add_test(tc, fixed_shapes);
	tcase_add_test(tc, random_entries);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
