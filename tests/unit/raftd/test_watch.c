/* Watch registry: which parked queries a change wakes, and deadlines. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fsm.h"
#include "suites.h"
#include "watch.h"

static struct watch_set *ws;

static void setup(void)
{
	ws = watch_set_new();
	ck_assert_ptr_nonnull(ws);
}

static void teardown(void) { watch_set_free(ws); }

static struct watch *add(const char *key, bool prefix, uint64_t deadline, void *ud)
{
	struct watch *w = watch_add(ws, FSM_SPACE_KV, key, strlen(key), prefix, deadline, ud);

	ck_assert_ptr_nonnull(w);
	return w;
}

static size_t notify(const char *key) { return watch_notify(ws, FSM_SPACE_KV, key, strlen(key)); }

/* Drains the fired list, returning the uds as a bit mask (ud = 1 << n). */
static uintptr_t drain(void)
{
	uintptr_t mask = 0;
	struct watch *w;

	while ((w = watch_next_fired(ws)))
		mask |= (uintptr_t)watch_ud(w);
	return mask;
}

START_TEST(exact_and_prefix)
{
	add("a", false, 100, (void *)1);     /* exact a */
	add("a/b", false, 100, (void *)2);   /* exact a/b */
	add("a/", true, 100, (void *)4);     /* prefix a/ */
	add("", true, 100, (void *)8);	     /* everything */
	add("a/b/c", true, 100, (void *)16); /* a longer prefix */
	struct watch *nodes = watch_add(ws, FSM_SPACE_NODES, "", 0, true, 100, (void *)32);
	ck_assert_ptr_nonnull(nodes);

	ck_assert_uint_eq(notify("a"), 2);
	ck_assert_uint_eq(drain(), 1 | 8);
	ck_assert_uint_eq(notify("ab"), 1);
	ck_assert_uint_eq(drain(), 8);
	ck_assert_uint_eq(notify("a/b"), 3);
	ck_assert_uint_eq(drain(), 2 | 4 | 8);
	ck_assert_uint_eq(notify("a/b/c/d"), 3);
	ck_assert_uint_eq(drain(), 4 | 8 | 16);
	ck_assert_uint_eq(watch_notify(ws, FSM_SPACE_NODES, "web", 3), 1);
	ck_assert_uint_eq(drain(), 32);
	ck_assert_uint_eq(drain(), 0);
	ck_assert_uint_eq(watch_count(ws), 6);
}
END_TEST

START_TEST(fired_once_and_removal)
{
	struct watch *a = add("k", false, 100, (void *)1);
	struct watch *b = add("k", false, 100, (void *)2);
	struct watch *c = add("k", true, 100, (void *)4);

	/* Two changes to the same key in one commit wake each watch once. */
	ck_assert_uint_eq(notify("k"), 3);
	ck_assert_uint_eq(notify("k"), 0);
	/* Removing a fired watch takes it off the fired list. */
	watch_remove(ws, b);
	struct watch *w1 = watch_next_fired(ws);
	struct watch *w2 = watch_next_fired(ws);
	ck_assert_ptr_nonnull(w1);
	ck_assert_ptr_nonnull(w2);
	ck_assert_ptr_null(watch_next_fired(ws));
	ck_assert(((uintptr_t)watch_ud(w1) | (uintptr_t)watch_ud(w2)) == (1 | 4));
	/* Fired-and-taken watches stay parked until removed. */
	ck_assert_uint_eq(watch_count(ws), 2);
	ck_assert_uint_eq(notify("k"), 2);
	watch_remove(ws, a);
	watch_remove(ws, c);
	ck_assert_ptr_null(watch_next_fired(ws));
	ck_assert_uint_eq(watch_count(ws), 0);
	ck_assert_uint_eq(notify("k"), 0);
	ck_assert_uint_eq(watch_next_deadline(ws), UINT64_MAX);
}
END_TEST

START_TEST(deadlines)
{
	uint64_t d[] = {50, 10, 40, 30, 20, 60, 5};
	struct watch *w[7];

	for (int i = 0; i < 7; i++)
		w[i] = add("x", false, d[i], (void *)(uintptr_t)d[i]);
	ck_assert_uint_eq(watch_next_deadline(ws), 5);
	watch_remove(ws, w[6]); /* deadline 5 */
	watch_remove(ws, w[2]); /* deadline 40, from the middle */
	ck_assert_uint_eq(watch_next_deadline(ws), 10);
	ck_assert_ptr_null(watch_pop_expired(ws, 9));

	uint64_t expect[] = {10, 20, 30};
	for (int i = 0; i < 3; i++) {
		struct watch *e = watch_pop_expired(ws, 35);
		ck_assert_ptr_nonnull(e);
		ck_assert_uint_eq((uintptr_t)watch_ud(e), expect[i]);
		watch_remove(ws, e);
	}
	ck_assert_ptr_null(watch_pop_expired(ws, 35));
	ck_assert_uint_eq(watch_next_deadline(ws), 50);
	ck_assert_uint_eq(watch_count(ws), 2);
}
END_TEST

START_TEST(many_watches_wake_only_matches)
{
	char key[32];
	static struct watch *all[10000];

	for (int i = 0; i < 10000; i++) {
		snprintf(key, sizeof(key), "svc/%d/config", i);
		all[i] = add(key, i % 2 == 0, 1000 + (uint64_t)i, (void *)(uintptr_t)(i + 1));
	}
	ck_assert_uint_eq(watch_count(ws), 10000);
	/* Exact watch 4321 (odd) and nothing else. */
	ck_assert_uint_eq(notify("svc/4321/config"), 1);
	ck_assert_uint_eq((uintptr_t)watch_ud(watch_next_fired(ws)), 4322);
	ck_assert_ptr_null(watch_next_fired(ws));
	/* Prefix watch 1234 (even) matches keys under it only. */
	ck_assert_uint_eq(notify("svc/1234/config/extra"), 1);
	ck_assert_uint_eq((uintptr_t)watch_ud(watch_next_fired(ws)), 1235);
	ck_assert_uint_eq(notify("svc/"), 0);
	for (int i = 0; i < 10000; i++)
		watch_remove(ws, all[i]);
	ck_assert_uint_eq(watch_count(ws), 0);
}
END_TEST

START_TEST(wait_default_cap_jitter)
{
	/* Default 5 min plus jitter below 5 min / 16. */
	ck_assert_uint_eq(watch_wait_ms(0, 0), 300000);
	ck_assert_uint_eq(watch_wait_ms(0, 18749), 300000 + 18749);
	ck_assert_uint_eq(watch_wait_ms(0, 18750), 300000);
	/* Capped at 10 min before the jitter. */
	ck_assert_uint_eq(watch_wait_ms(3600000, 0), 600000);
	ck_assert_uint_eq(watch_wait_ms(3600000, UINT64_MAX), 600000 + UINT64_MAX % 37500);
	/* Short waits: jitter of at most wait/16, none below 16 ms. */
	ck_assert_uint_eq(watch_wait_ms(15, 12345), 15);
	ck_assert_uint_eq(watch_wait_ms(1600, 12345), 1600 + 12345 % 100);
	for (uint64_t r = 0; r < 1000; r++) {
		uint64_t w = watch_wait_ms(60000, r * 7919);
		ck_assert_uint_ge(w, 60000);
		ck_assert_uint_lt(w, 60000 + 60000 / 16);
	}
}
END_TEST

Suite *watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("match");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, exact_and_prefix);
	tcase_add_test(tc, fired_once_and_removal);
	tcase_add_test(tc, deadlines);
	tcase_add_test(tc, many_watches_wake_only_matches);
	tcase_add_test(tc, wait_default_cap_jitter);
	suite_add_tcase(s, tc);
	return s;
}
