/* The linearizability checker on hand-made histories. */
#include <check.h>
#include <stdint.h>

#include "lin.h"

Suite *lin_suite(void);

#define PUT(k, v, c, r)                                                                            \
	{                                                                                          \
		(k), LIN_PUT, (v), 0, 0, (c), (r)                                                  \
	}
#define GET(k, v, c, r)                                                                            \
	{                                                                                          \
		(k), LIN_GET, 0, 0, (v), (c), (r)                                                  \
	}
#define CAS(k, a, b, ok, c, r)                                                                     \
	{                                                                                          \
		(k), LIN_CAS, (a), (b), (ok), (c), (r)                                             \
	}
#define U LIN_UNKNOWN

static int check(const struct lin_op *ops, size_t n)
{
	unsigned key = 99;
	int rc = lin_check(ops, n, &key);
	return rc;
}

START_TEST(sequential)
{
	struct lin_op h[] = {PUT(0, 1, 0, 10),	GET(0, 1, 20, 30),	 CAS(0, 1, 2, 1, 40, 50),
			     GET(0, 2, 60, 70), CAS(0, 1, 3, 0, 80, 90), GET(0, 2, 100, 110)};
	ck_assert_int_eq(check(h, 6), 1);
	ck_assert_int_eq(check(h, 0), 1);
}
END_TEST

START_TEST(concurrent_read_sees_either)
{
	/* A read overlapping a write may return the old or the new value. */
	struct lin_op old[] = {PUT(0, 1, 0, 10), PUT(0, 2, 20, 50), GET(0, 1, 30, 40)};
	struct lin_op neu[] = {PUT(0, 1, 0, 10), PUT(0, 2, 20, 50), GET(0, 2, 30, 40)};
	struct lin_op absent[] = {GET(0, 0, 0, 5), PUT(0, 7, 0, 10)};
	ck_assert_int_eq(check(old, 3), 1);
	ck_assert_int_eq(check(neu, 3), 1);
	ck_assert_int_eq(check(absent, 2), 1);
}
END_TEST

START_TEST(stale_read_rejected)
{
	/* put 1, then put 2 completes, then a read returns 1: a stale read. */
	struct lin_op h[] = {PUT(0, 1, 0, 10), PUT(0, 2, 20, 30), GET(0, 1, 40, 50)};
	unsigned key = 99;
	ck_assert_int_eq(lin_check(h, 3, &key), 0);
	ck_assert_uint_eq(key, 0);
	/* Two reads that see the new value and then the old one. */
	struct lin_op flip[] = {PUT(0, 1, 0, 10), PUT(0, 2, 20, 100), GET(0, 2, 30, 40),
				GET(0, 1, 50, 60)};
	ck_assert_int_eq(check(flip, 4), 0);
}
END_TEST

START_TEST(cas_semantics)
{
	/* Two concurrent cas from the same value cannot both succeed. */
	struct lin_op both[] = {PUT(0, 1, 0, 10), CAS(0, 1, 2, 1, 20, 40), CAS(0, 1, 3, 1, 20, 40)};
	struct lin_op one[] = {PUT(0, 1, 0, 10), CAS(0, 1, 2, 1, 20, 40), CAS(0, 1, 3, 0, 20, 40),
			       GET(0, 2, 50, 60)};
	struct lin_op wrong[] = {PUT(0, 1, 0, 10), CAS(0, 1, 2, 0, 20, 30)};
	ck_assert_int_eq(check(both, 3), 0);
	ck_assert_int_eq(check(one, 4), 1);
	ck_assert_int_eq(check(wrong, 2), 0);
}
END_TEST

START_TEST(unknown_outcomes)
{
	/* A write that timed out may have happened... */
	struct lin_op took[] = {PUT(0, 5, 0, U), GET(0, 5, 100, 110)};
	/* ...or not... */
	struct lin_op not [] = {PUT(0, 5, 0, U), GET(0, 0, 100, 110)};
	/* ...but not both ways. */
	struct lin_op both[] = {PUT(0, 5, 0, U), GET(0, 5, 100, 110), GET(0, 0, 120, 130)};
	/* It cannot take effect before it was sent. */
	struct lin_op early[] = {GET(0, 5, 0, 10), PUT(0, 5, 20, U)};
	/* An unknown cas may have swapped. */
	struct lin_op cas[] = {PUT(0, 1, 0, 10), CAS(0, 1, 9, 0, 20, U), GET(0, 9, 50, 60)};
	ck_assert_int_eq(check(took, 2), 1);
	ck_assert_int_eq(check(not, 2), 1);
	ck_assert_int_eq(check(both, 3), 0);
	ck_assert_int_eq(check(early, 2), 0);
	ck_assert_int_eq(check(cas, 3), 1);
}
END_TEST

START_TEST(keys_are_independent)
{
	unsigned key = 99;
	struct lin_op h[] = {PUT(1, 1, 0, 10), PUT(2, 1, 0, 10), GET(1, 1, 20, 30),
			     GET(2, 0, 20, 30)};
	ck_assert_int_eq(lin_check(h, 4, &key), 0);
	ck_assert_uint_eq(key, 2);
}
END_TEST

START_TEST(long_concurrent_history)
{
	/* 4 clients, 600 overlapping operations on one register, produced by
	 * a sequential execution with each operation's interval widened: it
	 * must be accepted quickly thanks to the cache. */
	static struct lin_op h[600];
	int64_t v = 0;
	for (unsigned i = 0; i < 600; i++) {
		uint64_t t = (uint64_t)i * 10;
		switch (i % 3) {
		case 0:
			h[i] = (struct lin_op)PUT(0, (int64_t)i, t, t + 25);
			v = (int64_t)i;
			break;
		case 1:
			h[i] = (struct lin_op)GET(0, v, t, t + 25);
			break;
		default:
			h[i] = (struct lin_op)CAS(0, v, (int64_t)i, 1, t, t + 25);
			v = (int64_t)i;
			break;
		}
	}
	ck_assert_int_eq(check(h, 600), 1);
	/* Corrupt one read in the middle: a value from long ago. */
	h[301] = (struct lin_op)GET(0, 3, 3010, 3035);
	ck_assert_int_eq(check(h, 600), 0);
}
END_TEST

Suite *lin_suite(void)
{
	Suite *s = suite_create("lin");
	TCase *tc = tcase_create("checker");

	tcase_add_test(tc, sequential);
	tcase_add_test(tc, concurrent_read_sees_either);
	tcase_add_test(tc, stale_read_rejected);
	tcase_add_test(tc, cas_semantics);
	tcase_add_test(tc, unknown_outcomes);
	tcase_add_test(tc, keys_are_independent);
	tcase_add_test(tc, long_concurrent_history);
	suite_add_tcase(s, tc);
	return s;
}
