/* Unit tests: dnsd's answer cache (dns_cache.c) on a fake clock: keys,
 * freshness, blocking re-arm, back-off, serving stale within max_stale,
 * idle expiry and the LRU bound. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "dns_cache.h"

Suite *dns_cache_suite(void);

static const struct dns_cache_cfg cfg = {
    .wait_ms = 30000,
    .max_stale_ms = 10000,
    .idle_ms = 60000,
    .max_entries = 3,
    .retry_min_ms = 250,
    .retry_max_ms = 4000,
    .timeout_slack_ms = 2000,
};

static char evicted[16][64];
static size_t n_evicted;

static void on_evict(void *ctx, struct dns_cache_entry *e)
{
	(void)ctx;
	if (n_evicted < 16)
		strcpy(evicted[n_evicted], e->name);
	n_evicted++;
	free(e->val);
}

static struct dns_cache *mk(void)
{
	struct dns_cache *c = dns_cache_new(&cfg, on_evict, NULL);

	ck_assert_ptr_nonnull(c);
	n_evicted = 0;
	return c;
}

START_TEST(keys_case_and_kind)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *a = dns_cache_get(c, DNS_CACHE_SERVICE, "Web", NULL, 0);
	struct dns_cache_entry *b = dns_cache_get(c, DNS_CACHE_SERVICE, "web", "", 1);
	struct dns_cache_entry *t = dns_cache_get(c, DNS_CACHE_SERVICE, "web", "Primary", 2);
	struct dns_cache_entry *n = dns_cache_get(c, DNS_CACHE_NODE, "web", NULL, 3);

	ck_assert_ptr_eq(a, b);
	ck_assert_str_eq(a->name, "web");
	ck_assert_ptr_ne(a, t);
	ck_assert_str_eq(t->tag, "primary");
	ck_assert_ptr_ne(a, n);
	ck_assert_ptr_eq(dns_cache_get(c, DNS_CACHE_SERVICE, "WEB", "PRIMARY", 4), t);
	ck_assert_uint_eq(dns_cache_count(c), 3);
	ck_assert_uint_eq(a->used_ms, 1);
	dns_cache_free(c);
	ck_assert_uint_eq(n_evicted, 3);
}
END_TEST

START_TEST(name_too_long)
{
	struct dns_cache *c = mk();
	char name[DNS_NAME_TEXT_MAX + 2];

	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_ptr_null(dns_cache_get(c, DNS_CACHE_NODE, name, NULL, 0));
	ck_assert_uint_eq(dns_cache_count(c), 0);
	dns_cache_free(c);
}
END_TEST

START_TEST(first_fetch_then_blocking)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *e = dns_cache_get(c, DNS_CACHE_NODE, "n1", NULL, 100);
	struct dns_cache_fetch f;

	/* a new entry: queries wait for the first (plain) fetch */
	ck_assert_int_eq(dns_cache_state(c, e, 100), DNS_CACHE_WAIT);
	ck_assert(dns_cache_fetch_due(e, 100));
	dns_cache_fetch_start(c, e, 100, &f);
	ck_assert_uint_eq(f.min_index, 0);
	ck_assert_uint_eq(f.wait_ms, 0);
	ck_assert_uint_eq(f.timeout_ms, 2000);
	ck_assert(!dns_cache_fetch_due(e, 100));
	ck_assert_int_eq(dns_cache_state(c, e, 150), DNS_CACHE_WAIT);
	ck_assert(dns_cache_fetch_done(c, e, 200, 17));
	ck_assert_int_eq(dns_cache_state(c, e, 200), DNS_CACHE_FRESH);
	/* re-armed at once as a blocking query after index 17 */
	ck_assert(dns_cache_fetch_due(e, 200));
	dns_cache_fetch_start(c, e, 200, &f);
	ck_assert_uint_eq(f.min_index, 17);
	ck_assert_uint_eq(f.wait_ms, 30000);
	ck_assert_uint_eq(f.timeout_ms, 30000 + 30000 / 16 + 2000);
	/* while it waits the value stays fresh, however long */
	ck_assert_int_eq(dns_cache_state(c, e, 25000), DNS_CACHE_FRESH);
	/* the wait ran out without a change: same index, nothing changed */
	ck_assert(!dns_cache_fetch_done(c, e, 30200, 17));
	/* a change */
	dns_cache_fetch_start(c, e, 30200, &f);
	ck_assert(dns_cache_fetch_done(c, e, 30300, 18));
	ck_assert_uint_eq(e->index, 18);
	ck_assert_uint_eq(e->ok_ms, 30300);
	dns_cache_free(c);
}
END_TEST

START_TEST(index_backwards_and_zero)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *e = dns_cache_get(c, DNS_CACHE_NODES, "", NULL, 0);
	struct dns_cache_fetch f;

	dns_cache_fetch_start(c, e, 0, &f);
	dns_cache_fetch_done(c, e, 1, 50);
	dns_cache_fetch_start(c, e, 1, &f);
	/* a restored snapshot: the index goes back and is followed */
	ck_assert(dns_cache_fetch_done(c, e, 2, 9));
	dns_cache_fetch_start(c, e, 2, &f);
	ck_assert_uint_eq(f.min_index, 9);
	/* no index: re-polled with plain reads every retry_max_ms, never
	 * a busy loop */
	ck_assert(dns_cache_fetch_done(c, e, 3, 0));
	ck_assert_int_eq(dns_cache_state(c, e, 3), DNS_CACHE_FRESH);
	ck_assert(!dns_cache_fetch_due(e, 3));
	ck_assert(!dns_cache_fetch_due(e, 4002));
	ck_assert(dns_cache_fetch_due(e, 4003));
	dns_cache_fetch_start(c, e, 4003, &f);
	ck_assert_uint_eq(f.min_index, 0);
	dns_cache_free(c);
}
END_TEST

START_TEST(backoff_and_stale)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *e = dns_cache_get(c, DNS_CACHE_SERVICE, "web", NULL, 0);
	struct dns_cache_fetch f;
	uint64_t now = 1000;
	static const uint64_t want[] = {250, 500, 1000, 2000, 4000, 4000};

	dns_cache_fetch_start(c, e, 0, &f);
	dns_cache_fetch_done(c, e, 1000, 5);
	/* the blocking query times out: raftd stopped */
	dns_cache_fetch_start(c, e, 1000, &f);
	now = 1000 + f.timeout_ms;
	dns_cache_fetch_failed(c, e, now);
	ck_assert_uint_eq(e->failures, 1);
	/* the value is served stale, and retries back off, as plain reads */
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		ck_assert_int_eq(dns_cache_state(c, e, now), now - 1000 <= 10000
								  ? DNS_CACHE_STALE
								  : DNS_CACHE_FAIL);
		ck_assert_uint_eq(e->retry_ms - now, want[i]);
		ck_assert(!dns_cache_fetch_due(e, e->retry_ms - 1));
		now = e->retry_ms;
		ck_assert(dns_cache_fetch_due(e, now));
		dns_cache_fetch_start(c, e, now, &f);
		ck_assert_uint_eq(f.min_index, 0);
		ck_assert_uint_eq(f.timeout_ms, 2000);
		now += f.timeout_ms;
		dns_cache_fetch_failed(c, e, now);
	}
	/* past max_stale after the last success: SERVFAIL until a fetch
	 * succeeds; a query after the back-off waits for the retry */
	ck_assert_uint_gt(now - 1000, 10000);
	ck_assert_int_eq(dns_cache_state(c, e, now), DNS_CACHE_FAIL);
	ck_assert_int_eq(dns_cache_state(c, e, e->retry_ms), DNS_CACHE_WAIT);
	/* raftd is back */
	now = e->retry_ms;
	dns_cache_fetch_start(c, e, now, &f);
	ck_assert_int_eq(dns_cache_state(c, e, now), DNS_CACHE_WAIT);
	ck_assert(!dns_cache_fetch_done(c, e, now + 1, 5));
	ck_assert_int_eq(dns_cache_state(c, e, now + 1), DNS_CACHE_FRESH);
	ck_assert_uint_eq(e->failures, 0);
	dns_cache_fetch_start(c, e, now + 1, &f);
	ck_assert_uint_eq(f.min_index, 5);
	dns_cache_free(c);
}
END_TEST

START_TEST(first_fetch_fails)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *e = dns_cache_get(c, DNS_CACHE_NODE, "n", NULL, 0);
	struct dns_cache_fetch f;

	dns_cache_fetch_start(c, e, 0, &f);
	dns_cache_fetch_failed(c, e, 2000);
	/* nothing to serve: SERVFAIL at once during the back-off */
	ck_assert_int_eq(dns_cache_state(c, e, 2000), DNS_CACHE_FAIL);
	ck_assert_int_eq(dns_cache_state(c, e, 2249), DNS_CACHE_FAIL);
	ck_assert_int_eq(dns_cache_state(c, e, 2250), DNS_CACHE_WAIT);
	dns_cache_free(c);
}
END_TEST

START_TEST(idle_expiry)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *a = dns_cache_get(c, DNS_CACHE_NODE, "a", NULL, 0);
	struct dns_cache_entry *b = dns_cache_get(c, DNS_CACHE_NODE, "b", NULL, 10000);

	a->val = malloc(8);
	ck_assert_uint_eq(dns_cache_expire(c, 59999), 0);
	ck_assert_uint_eq(dns_cache_expire(c, 60000), 1);
	ck_assert_uint_eq(n_evicted, 1);
	ck_assert_str_eq(evicted[0], "a");
	/* asking again keeps b */
	ck_assert_ptr_eq(dns_cache_get(c, DNS_CACHE_NODE, "b", NULL, 65000), b);
	ck_assert_uint_eq(dns_cache_expire(c, 124999), 0);
	/* an entry with a parked query stays */
	b->waiters = 1;
	ck_assert_uint_eq(dns_cache_expire(c, 125000), 0);
	b->waiters = 0;
	ck_assert_uint_eq(dns_cache_expire(c, 125000), 1);
	ck_assert_uint_eq(dns_cache_count(c), 0);
	dns_cache_free(c);
}
END_TEST

START_TEST(lru_bound)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *a = dns_cache_get(c, DNS_CACHE_NODE, "a", NULL, 1);
	struct dns_cache_entry *b = dns_cache_get(c, DNS_CACHE_NODE, "b", NULL, 2);
	struct dns_cache_entry *d;

	(void)dns_cache_get(c, DNS_CACHE_NODE, "c", NULL, 3);
	/* a used again: b is now the least recent */
	ck_assert_ptr_eq(dns_cache_get(c, DNS_CACHE_NODE, "a", NULL, 4), a);
	d = dns_cache_get(c, DNS_CACHE_NODE, "d", NULL, 5);
	ck_assert_ptr_nonnull(d);
	ck_assert_uint_eq(dns_cache_count(c), 3);
	ck_assert_uint_eq(n_evicted, 1);
	ck_assert_str_eq(evicted[0], "b");
	(void)b;
	/* entries with waiters are never evicted: c is skipped, a goes */
	dns_cache_get(c, DNS_CACHE_NODE, "c", NULL, 6)->waiters = 1;
	d->waiters = 1;
	ck_assert_ptr_nonnull(dns_cache_get(c, DNS_CACHE_NODE, "e", NULL, 7));
	ck_assert_str_eq(evicted[1], "a");
	/* all waited on: no room */
	dns_cache_get(c, DNS_CACHE_NODE, "e", NULL, 8)->waiters = 1;
	ck_assert_ptr_null(dns_cache_get(c, DNS_CACHE_NODE, "f", NULL, 9));
	ck_assert_uint_eq(dns_cache_count(c), 3);
	dns_cache_free(c);
}
END_TEST

static size_t n_due;
static void count_due(void *ctx, struct dns_cache_entry *e)
{
	struct dns_cache_fetch f;

	dns_cache_fetch_start(ctx, e, 0, &f);
	n_due++;
}

START_TEST(foreach_due)
{
	struct dns_cache *c = mk();
	struct dns_cache_entry *a = dns_cache_get(c, DNS_CACHE_NODE, "a", NULL, 0);
	struct dns_cache_fetch f;

	(void)dns_cache_get(c, DNS_CACHE_NODE, "b", NULL, 0);
	dns_cache_fetch_start(c, a, 0, &f);
	dns_cache_fetch_failed(c, a, 0);
	n_due = 0;
	dns_cache_foreach_due(c, 0, count_due, c);
	ck_assert_uint_eq(n_due, 1); /* b; a backs off */
	n_due = 0;
	dns_cache_foreach_due(c, 250, count_due, c);
	ck_assert_uint_eq(n_due, 1); /* a; b is running */
	dns_cache_free(c);
}
END_TEST

Suite *dns_cache_suite(void)
{
	Suite *s = suite_create("dns_cache");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, keys_case_and_kind);
	tcase_add_test(tc, name_too_long);
	tcase_add_test(tc, first_fetch_then_blocking);
	tcase_add_test(tc, index_backwards_and_zero);
	tcase_add_test(tc, backoff_and_stale);
	tcase_add_test(tc, first_fetch_fails);
	tcase_add_test(tc, idle_expiry);
	tcase_add_test(tc, lru_bound);
	tcase_add_test(tc, foreach_due);
	suite_add_tcase(s, tc);
	return s;
}
