/* Tests for common/servers: a client agent's choice of server, spread,
 * failover, hold-back and rebalancing, with a fake clock and seeded
 * randomness; and which gossip members are servers to use. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "member_feed.h"
#include "servers.h"

struct fake {
	uint64_t now;
	uint32_t seed;
};

static uint64_t fake_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static uint32_t fake_rand(void *ctx)
{
	struct fake *f = ctx;

	/* a plain LCG: deterministic per seed */
	f->seed = f->seed * 1664525u + 1013904223u;
	return f->seed >> 8;
}

static struct servers *pool_new(struct fake *f)
{
	struct servers *s = servers_new(&(struct servers_io){
	    .ctx = f, .now_ms = fake_now, .rand_u32 = fake_rand});

	ck_assert_ptr_nonnull(s);
	return s;
}

static void add3(struct servers *s)
{
	ck_assert_int_eq(servers_set(s, "s1", "tcp://10.0.0.1:8300"), 0);
	ck_assert_int_eq(servers_set(s, "s2", "tcp://10.0.0.2:8300"), 0);
	ck_assert_int_eq(servers_set(s, "s3", "tcp://10.0.0.3:8300"), 0);
}

START_TEST(empty_pool_has_no_choice)
{
	struct fake f = {.now = 1000, .seed = 1};
	struct servers *s = pool_new(&f);

	ck_assert_ptr_null(servers_pick(s));
	ck_assert_ptr_null(servers_in_use(s));
	ck_assert_uint_eq(servers_count(s), 0);
	servers_failed(s, "tcp://10.0.0.9:8300"); /* unknown: fine */
	servers_remove(s, "nobody");
	ck_assert_ptr_null(servers_pick(s));
	servers_free(s);
	servers_free(NULL);
}
END_TEST

START_TEST(choice_is_sticky)
{
	struct fake f = {.now = 1000, .seed = 7};
	struct servers *s = pool_new(&f);
	const char *first;
	char keep[64];

	add3(s);
	ck_assert_uint_eq(servers_count(s), 3);
	first = servers_pick(s);
	ck_assert_ptr_nonnull(first);
	snprintf(keep, sizeof(keep), "%s", first);
	ck_assert_str_eq(servers_in_use(s), keep);
	for (int i = 0; i < 100; i++) {
		f.now += 1000; /* 100 s: within the rebalance period */
		ck_assert_str_eq(servers_pick(s), keep);
	}
	/* a server joining does not move us before the rebalance */
	ck_assert_int_eq(servers_set(s, "s4", "tcp://10.0.0.4:8300"), 0);
	ck_assert_str_eq(servers_pick(s), keep);
	/* setting the same endpoint again changes nothing */
	ck_assert_int_eq(servers_set(s, "s4", "tcp://10.0.0.4:8300"), 0);
	ck_assert_uint_eq(servers_count(s), 4);
	servers_free(s);
}
END_TEST

/* Many agents, each with its own random numbers, spread over the servers. */
START_TEST(choices_spread_across_agents)
{
	unsigned hits[3] = {0, 0, 0};

	for (uint32_t agent = 0; agent < 300; agent++) {
		struct fake f = {.now = 5000, .seed = agent * 2654435761u + 1};
		struct servers *s = pool_new(&f);
		const char *ep;

		add3(s);
		ep = servers_pick(s);
		ck_assert_ptr_nonnull(ep);
		hits[ep[strlen(ep) - 6] - '1']++; /* tcp://10.0.0.N:8300 */
		servers_free(s);
	}
	ck_assert_uint_eq(hits[0] + hits[1] + hits[2], 300);
	/* uniform would be 100 each; every server gets a real share */
	for (int i = 0; i < 3; i++)
		ck_assert_uint_gt(hits[i], 50);
}
END_TEST

START_TEST(failover_to_another_and_hold)
{
	struct fake f = {.now = 1000, .seed = 3};
	struct servers *s = pool_new(&f);
	char bad[64], next[64], third[64];
	const char *ep;

	add3(s);
	snprintf(bad, sizeof(bad), "%s", servers_pick(s));
	servers_failed(s, bad);
	ck_assert_ptr_null(servers_in_use(s));
	snprintf(next, sizeof(next), "%s", servers_pick(s));
	ck_assert_str_ne(next, bad);
	/* the new choice sticks; the failed one stays held back */
	for (int i = 0; i < 20; i++) {
		f.now += 100;
		ck_assert_str_eq(servers_pick(s), next);
	}
	servers_failed(s, next);
	snprintf(third, sizeof(third), "%s", servers_pick(s));
	ck_assert_str_ne(third, bad);
	ck_assert_str_ne(third, next);
	/* the holds of the first two end: they are candidates again */
	f.now += SERVERS_HOLD_MS;
	servers_failed(s, third);
	ep = servers_pick(s);
	ck_assert(!strcmp(ep, bad) || !strcmp(ep, next));
	servers_free(s);
}
END_TEST

START_TEST(all_held_tries_the_earliest)
{
	struct fake f = {.now = 1000, .seed = 11};
	struct servers *s = pool_new(&f);

	add3(s);
	servers_failed(s, "tcp://10.0.0.2:8300");
	f.now += 10;
	servers_failed(s, "tcp://10.0.0.3:8300");
	f.now += 10;
	servers_failed(s, "tcp://10.0.0.1:8300");
	/* every server held: the one held first comes first */
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.2:8300");
	/* it fails again: the next earliest */
	servers_failed(s, "tcp://10.0.0.2:8300");
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.3:8300");
	/* its hold ends while the others' do not: it is kept */
	f.now += SERVERS_HOLD_MS - 10;
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.3:8300");
	ck_assert_str_eq(servers_in_use(s), "tcp://10.0.0.3:8300");
	servers_free(s);
}
END_TEST

START_TEST(a_held_current_gives_way)
{
	struct fake f = {.now = 1000, .seed = 5};
	struct servers *s = pool_new(&f);

	ck_assert_int_eq(servers_set(s, "s1", "tcp://10.0.0.1:8300"), 0);
	servers_failed(s, "tcp://10.0.0.1:8300");
	/* alone and held: used anyway */
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.1:8300");
	/* another server appears: the held one gives way at once */
	ck_assert_int_eq(servers_set(s, "s2", "tcp://10.0.0.2:8300"), 0);
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.2:8300");
	servers_free(s);
}
END_TEST

START_TEST(removal_of_the_server_in_use)
{
	struct fake f = {.now = 1000, .seed = 9};
	struct servers *s = pool_new(&f);
	char used[64];
	const char *names[3] = {"s1", "s2", "s3"};

	add3(s);
	snprintf(used, sizeof(used), "%s", servers_pick(s));
	/* removing another keeps the choice (indexes shift correctly) */
	for (int i = 0; i < 3; i++) {
		char ep[64];

		snprintf(ep, sizeof(ep), "tcp://10.0.0.%d:8300", i + 1);
		if (strcmp(ep, used) != 0) {
			servers_remove(s, names[i]);
			break;
		}
	}
	ck_assert_uint_eq(servers_count(s), 2);
	ck_assert_str_eq(servers_pick(s), used);
	ck_assert_str_eq(servers_in_use(s), used);
	ck_assert_int_eq(servers_has_endpoint(s, used), 1);
	ck_assert_ptr_null(servers_endpoint(s, "nobody"));
	{
		int present = 0;

		for (int i = 0; i < 3; i++) {
			const char *e = servers_endpoint(s, names[i]);
			char want[64];

			snprintf(want, sizeof(want), "tcp://10.0.0.%d:8300", i + 1);
			if (e) {
				ck_assert_str_eq(e, want);
				present++;
			}
		}
		ck_assert_int_eq(present, 2);
	}
	/* remove the one in use: another is chosen */
	for (int i = 0; i < 3; i++) {
		char ep[64];

		snprintf(ep, sizeof(ep), "tcp://10.0.0.%d:8300", i + 1);
		if (!strcmp(ep, used))
			servers_remove(s, names[i]);
	}
	ck_assert_uint_eq(servers_count(s), 1);
	ck_assert_ptr_null(servers_in_use(s));
	ck_assert_int_eq(servers_has_endpoint(s, used), 0);
	ck_assert_str_ne(servers_pick(s), used);
	servers_free(s);
}
END_TEST

START_TEST(endpoint_change_ends_hold)
{
	struct fake f = {.now = 1000, .seed = 2};
	struct servers *s = pool_new(&f);

	ck_assert_int_eq(servers_set(s, "s1", "tcp://10.0.0.1:8300"), 0);
	ck_assert_int_eq(servers_set(s, "s2", "tcp://10.0.0.2:8300"), 0);
	servers_failed(s, "tcp://10.0.0.1:8300");
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.2:8300");
	servers_failed(s, "tcp://10.0.0.2:8300");
	/* s1 restarted on a new port: no longer held, chosen */
	ck_assert_int_eq(servers_set(s, "s1", "tcp://10.0.0.1:9300"), 0);
	ck_assert_str_eq(servers_pick(s), "tcp://10.0.0.1:9300");
	ck_assert_int_eq(servers_has_endpoint(s, "tcp://10.0.0.1:8300"), 0);
	servers_free(s);
}
END_TEST

/* After the rebalance period a new random choice is made: over many
 * periods every server is used, so servers added later get clients. */
START_TEST(rebalance_reaches_new_servers)
{
	struct fake f = {.now = 1000, .seed = 21};
	struct servers *s = pool_new(&f);
	int seen_new = 0, changes = 0;
	char last[64];

	ck_assert_int_eq(servers_set(s, "s1", "tcp://10.0.0.1:8300"), 0);
	snprintf(last, sizeof(last), "%s", servers_pick(s));
	ck_assert_int_eq(servers_set(s, "s2", "tcp://10.0.0.2:8300"), 0);
	ck_assert_int_eq(servers_set(s, "s3", "tcp://10.0.0.3:8300"), 0);
	/* not before SERVERS_REBALANCE_MS */
	f.now += SERVERS_REBALANCE_MS - 1;
	ck_assert_str_eq(servers_pick(s), last);
	for (int i = 0; i < 40; i++) {
		const char *ep;

		f.now += 2 * SERVERS_REBALANCE_MS + 1; /* past any jitter */
		ep = servers_pick(s);
		if (strcmp(ep, last) != 0)
			changes++;
		if (strcmp(ep, "tcp://10.0.0.1:8300") != 0)
			seen_new = 1;
		snprintf(last, sizeof(last), "%s", ep);
	}
	ck_assert_int_eq(seen_new, 1);
	ck_assert_int_gt(changes, 5);
	servers_free(s);
}
END_TEST

/* ---- members -------------------------------------------------------- */

static struct member_feed_member member(const char *addr, enum member_feed_status st,
					 char **keys, char **vals, size_t n)
{
	struct member_feed_member m = {
	    .name = (char *)"n1",
	    .addr = (char *)addr,
	    .port = 8301,
	    .tag_keys = keys,
	    .tag_vals = vals,
	    .n_tags = n,
	    .status = st,
	};

	return m;
}

START_TEST(members_that_are_servers)
{
	/* tags sorted by key, as the feed keeps them */
	char *keys[] = {"dc", "port", "role"};
	char *srv[] = {"dc1", "8300", "consul"};
	char *other_dc[] = {"dc2", "8300", "consul"};
	char *client[] = {"dc1", "8300", "node"};
	char *bad_port[] = {"dc1", "x1", "consul"};
	char *keys2[] = {"dc", "role"};
	char *no_port[] = {"dc1", "consul"};
	struct member_feed_member m;
	char buf[64];

	m = member("10.1.2.3", MEMBER_FEED_ALIVE, keys, srv, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 1);
	ck_assert_str_eq(buf, "tcp://10.1.2.3:8300");
	ck_assert_int_eq(servers_member_endpoint(&m, "DC1", buf, sizeof(buf)), 1);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, 10), -ENAMETOOLONG);
	m = member("fd00::1", MEMBER_FEED_ALIVE, keys, srv, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 1);
	ck_assert_str_eq(buf, "tcp://[fd00::1]:8300");
	m = member("10.1.2.3", MEMBER_FEED_FAILED, keys, srv, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
	m = member("10.1.2.3", MEMBER_FEED_LEFT, keys, srv, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
	m = member("10.1.2.3", MEMBER_FEED_ALIVE, keys, other_dc, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
	m = member("10.1.2.3", MEMBER_FEED_ALIVE, keys, client, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
	m = member("10.1.2.3", MEMBER_FEED_ALIVE, keys, bad_port, 3);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
	m = member("10.1.2.3", MEMBER_FEED_ALIVE, keys2, no_port, 2);
	ck_assert_int_eq(servers_member_endpoint(&m, "dc1", buf, sizeof(buf)), 0);
}
END_TEST

static Suite *servers_suite(void)
{
	Suite *s = suite_create("servers");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, empty_pool_has_no_choice);
	tcase_add_test(tc, choice_is_sticky);
	tcase_add_test(tc, choices_spread_across_agents);
	tcase_add_test(tc, failover_to_another_and_hold);
	tcase_add_test(tc, all_held_tries_the_earliest);
	tcase_add_test(tc, a_held_current_gives_way);
	tcase_add_test(tc, removal_of_the_server_in_use);
	tcase_add_test(tc, endpoint_change_ends_hold);
	tcase_add_test(tc, rebalance_reaches_new_servers);
	tcase_add_test(tc, members_that_are_servers);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(servers_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
