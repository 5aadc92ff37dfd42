/* Tests for apid/query.c: percent-decoding, query strings, numbers and
 * durations as Consul (Go's net/url, strconv, time) reads them. */
#include <errno.h>
#include <string.h>

#include "arena.h"
#include "query.h"
#include "suites.h"

static struct arena a;

static void setup(void) { arena_init(&a, 0); }

static void teardown(void) { arena_close(&a); }

START_TEST(pct_decode_basic)
{
	size_t n;
	char *s = query_pct_decode(&a, "a%2Fb%2fc%20d+e", 15, false, &n);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "a/b/c d+e");
	ck_assert_uint_eq(n, 9);
	s = query_pct_decode(&a, "a+b%2B", 6, true, &n);
	ck_assert_str_eq(s, "a b+");
	s = query_pct_decode(&a, "", 0, true, &n);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(n, 0);
	s = query_pct_decode(&a, "%e2%82%AC", 9, false, &n);
	ck_assert_str_eq(s, "\xe2\x82\xac");
}
END_TEST

START_TEST(pct_decode_malformed)
{
	size_t n;

	ck_assert_ptr_null(query_pct_decode(&a, "a%zzb", 5, false, &n));
	ck_assert_ptr_null(query_pct_decode(&a, "a%2", 3, false, &n));
	ck_assert_ptr_null(query_pct_decode(&a, "a%", 2, false, &n));
	ck_assert_ptr_nonnull(query_pct_decode(&a, "a%00b", 5, false, &n));
	ck_assert_uint_eq(n, 3);
}
END_TEST

START_TEST(split_target)
{
	const char *path;
	struct query q;

	ck_assert_int_eq(query_split_target(&a, "/v1/kv/a%2Fb?recurse&dc=dc1&x=1+2", &path, &q), 0);
	ck_assert_str_eq(path, "/v1/kv/a/b");
	ck_assert_uint_eq(q.n, 3);
	ck_assert(query_has(&q, "recurse"));
	ck_assert_str_eq(query_get(&q, "recurse"), "");
	ck_assert_str_eq(query_get(&q, "dc"), "dc1");
	ck_assert_str_eq(query_get(&q, "x"), "1 2");
	ck_assert(!query_has(&q, "keys"));

	/* '+' in a path is a plus; no query at all */
	ck_assert_int_eq(query_split_target(&a, "/v1/kv/a+b", &path, &q), 0);
	ck_assert_str_eq(path, "/v1/kv/a+b");
	ck_assert_uint_eq(q.n, 0);

	/* absolute form, fragment */
	ck_assert_int_eq(query_split_target(&a, "http://h:8500/v1/kv/x?raw#frag", &path, &q), 0);
	ck_assert_str_eq(path, "/v1/kv/x");
	ck_assert(query_has(&q, "raw"));

	ck_assert_int_eq(query_split_target(&a, "/v1/kv/%zz", &path, &q), -EINVAL);
	ck_assert_int_eq(query_split_target(&a, "/v1/kv/a%00b", &path, &q), -EINVAL);
}
END_TEST

START_TEST(query_pairs)
{
	struct query q;
	const char *qs = "a=1&a=2&&b&c=%zz&d=%41%42&e=x=y&stale=";

	ck_assert_int_eq(query_parse(&a, qs, strlen(qs), &q), 0);
	/* first value wins; empty pairs and bad escapes are dropped */
	ck_assert_str_eq(query_get(&q, "a"), "1");
	ck_assert(query_has(&q, "b"));
	ck_assert(!query_has(&q, "c"));
	ck_assert_str_eq(query_get(&q, "d"), "AB");
	ck_assert_str_eq(query_get(&q, "e"), "x=y");
	ck_assert(query_has(&q, "stale"));
	ck_assert_ptr_null(query_get(&q, "zz"));
}
END_TEST

START_TEST(parse_u64)
{
	uint64_t v = 7;

	ck_assert_int_eq(query_parse_u64("0", &v), 0);
	ck_assert_uint_eq(v, 0);
	ck_assert_int_eq(query_parse_u64("18446744073709551615", &v), 0);
	ck_assert(v == UINT64_MAX);
	ck_assert_int_eq(query_parse_u64("18446744073709551616", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64("-1", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64("+1", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64("", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64("12a", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64(" 1", &v), -EINVAL);
	ck_assert_int_eq(query_parse_u64("abc", &v), -EINVAL);
}
END_TEST

START_TEST(parse_duration)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} ok[] = {
	    {"10s", 10000},  {"60000ms", 60000},     {"5m", 300000},
	    {"1h", 3600000}, {"1h30m", 5400000},     {"1.5s", 1500},
	    {"250us", 0},    {"2000000us", 2000},    {"10", 10000},
	    {"0", 0},	     {"+3s", 3000},	     {"1m0.5s", 60500},
	    {".5s", 500},    {"3000000000ns", 3000}, {"1\xc2\xb5s", 0},
	};
	static const char *const bad[] = {"", "xyz", "5x", "-5s", "s", "1.s.", "10 s", "1e3s", "."};
	uint64_t ms;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(query_parse_duration_ms(ok[i].s, &ms) == 0, "%s", ok[i].s);
		ck_assert_msg(ms == ok[i].ms, "%s -> %llu", ok[i].s, (unsigned long long)ms);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(query_parse_duration_ms(bad[i], &ms) == -EINVAL, "%s", bad[i]);
}
END_TEST

Suite *query_suite(void)
{
	Suite *s = suite_create("query");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, pct_decode_basic);
	tcase_add_test(tc, pct_decode_malformed);
	tcase_add_test(tc, split_target);
	tcase_add_test(tc, query_pairs);
	tcase_add_test(tc, parse_u64);
	tcase_add_test(tc, parse_duration);
	suite_add_tcase(s, tc);
	return s;
}
