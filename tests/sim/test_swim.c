/* Deterministic simulation of a SWIM pool (gossipd/swim.c through
 * gossipd/swim_sim.c): 1,000 nodes by default (SWIM_SIM_N), seeded by
 * SWIM_SIM_SEED (printed on failure), virtual time only. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "swim_sim.h"

static size_t sim_n(void)
{
	const char *e = getenv("SWIM_SIM_N");

	return e && atoi(e) > 8 ? (size_t)atoi(e) : 1000;
}

static uint64_t sim_seed(void)
{
	const char *e = getenv("SWIM_SIM_SEED");

	return e ? strtoull(e, NULL, 10) : 1;
}

/* The partition scenario heals through a storm of full-state exchanges
 * (every node retries the other side every 30 s), which costs ~25 s of CPU
 * at 1,000 nodes under ASan; the suite runs it at SWIM_SIM_PARTITION_N
 * (default 250) and bench/gossip at 1,000. */
static size_t partition_n(void)
{
	const char *e = getenv("SWIM_SIM_PARTITION_N");

	return e && atoi(e) > 8 ? (size_t)atoi(e) : 250;
}

static struct swim_sim *make_n(size_t n, double loss)
{
	struct swim_sim_config c = {0};
	struct swim_sim *sim;

	c.n = n;
	c.seed = sim_seed();
	c.loss = loss;
	swim_config_lan(&c.swim);
	sim = swim_sim_new(&c);
	ck_assert_msg(sim != NULL, "simulation of %zu nodes", c.n);
	fprintf(stderr, "swim sim: n=%zu seed=%llu\n", c.n, (unsigned long long)c.seed);
	return sim;
}

static struct swim_sim *make(double loss) { return make_n(sim_n(), loss); }

struct view {
	size_t about;
	unsigned mask;
};

/* Everyone running sees `about` in one of the states of mask. */
static bool all_see(struct swim_sim *sim, void *ctx)
{
	const struct view *v = ctx;

	return swim_sim_count_view(sim, v->about, v->mask) == swim_sim_count_running(sim, v->about);
}

#define M(st) (1u << (st))

START_TEST(test_join_reaches_all)
{
	struct swim_sim *sim = make(0);
	size_t n = swim_sim_size(sim);
	int j;
	struct view v;

	swim_sim_run_until(sim, 5000);
	j = swim_sim_add(sim);
	ck_assert_int_ge(j, 0);
	swim_sim_join(sim, (size_t)j, 0);
	v.about = (size_t)j;
	v.mask = M(SWIM_ALIVE);
	ck_assert_msg(swim_sim_run_pred(sim, all_see, &v, 100, 30000),
		      "join known to %zu of %zu after 30 s (seed %llu)",
		      swim_sim_count_view(sim, v.about, v.mask), n, (unsigned long long)sim_seed());
	/* the joiner learned everyone through push/pull */
	ck_assert_uint_eq(swim_num_live(swim_sim_node(sim, (size_t)j)), n + 1);
	fprintf(stderr, "cpu %.1fs at t=%llus events %llu\n", (double)clock() / CLOCKS_PER_SEC,
		(unsigned long long)swim_sim_now(sim) / 1000,
		(unsigned long long)swim_sim_events(sim));
	swim_sim_free(sim);
}
END_TEST

START_TEST(test_killed_member_declared_failed)
{
	struct swim_sim *sim = make(0);
	struct view v = {.about = 7, .mask = M(SWIM_DEAD)};
	uint64_t killed_ms;

	swim_sim_run_until(sim, 5000);
	killed_ms = swim_sim_now(sim);
	swim_sim_kill(sim, 7);
	ck_assert_msg(swim_sim_run_pred(sim, all_see, &v, 250, 120000),
		      "failure known to %zu of %zu after 120 s (seed %llu)",
		      swim_sim_count_view(sim, 7, v.mask), swim_sim_count_running(sim, 7),
		      (unsigned long long)sim_seed());
	/* nobody declares it dead before the minimum suspicion time:
	 * 4 × log10(N) × 1 s after a failed probe */
	ck_assert_uint_ge(swim_sim_declared(sim, 7)->dead_ms - killed_ms,
			  (uint64_t)(4 * log10((double)swim_sim_size(sim)) * 1000) - 1);
	/* and no live member was declared dead meanwhile */
	for (size_t i = 0; i < swim_sim_size(sim); i++)
		if (i != 7)
			ck_assert_uint_eq(swim_sim_declared(sim, i)->n_dead, 0);
	fprintf(stderr, "cpu %.1fs at t=%llus events %llu\n", (double)clock() / CLOCKS_PER_SEC,
		(unsigned long long)swim_sim_now(sim) / 1000,
		(unsigned long long)swim_sim_events(sim));
	swim_sim_free(sim);
}
END_TEST

START_TEST(test_lossy_member_not_declared_dead)
{
	struct swim_sim *sim = make(0);
	struct view v = {.about = 5, .mask = M(SWIM_ALIVE)};

	swim_sim_set_node_loss(sim, 5, 0.10);
	swim_sim_run_until(sim, 120000);
	ck_assert_uint_eq(swim_sim_declared(sim, 5)->n_dead, 0);
	ck_assert(all_see(sim, &v));
	fprintf(stderr, "cpu %.1fs at t=%llus events %llu\n", (double)clock() / CLOCKS_PER_SEC,
		(unsigned long long)swim_sim_now(sim) / 1000,
		(unsigned long long)swim_sim_events(sim));
	swim_sim_free(sim);
}
END_TEST

static bool pair_dead(struct swim_sim *sim, void *ctx)
{
	(void)ctx;
	return swim_member_state(swim_sim_node(sim, 1), swim_sim_name(sim, 0)) == SWIM_DEAD &&
	       swim_member_state(swim_sim_node(sim, 0), swim_sim_name(sim, 1)) == SWIM_DEAD;
}

START_TEST(test_partition_heals)
{
	struct swim_sim *sim = make_n(partition_n(), 0);
	size_t n = swim_sim_size(sim);
	struct view b = {.about = 0, .mask = M(SWIM_ALIVE)};
	bool healed = true;

	for (size_t i = 0; i < n; i++)
		swim_sim_set_group(sim, i, i % 10 == 0 ? 1 : 0); /* 10% cut off */
	swim_sim_run_until(sim, 2000);
	swim_sim_partition(sim, true);
	/* each side sees the other fail: node 1 (majority) sees node 0 and node
	 * 0 (minority) sees node 1 dead */
	ck_assert(swim_sim_run_pred(sim, pair_dead, NULL, 1000, 300000));
	swim_sim_partition(sim, false);
	/* every node alive in every view again */
	for (size_t i = 0; i < n; i += n / 20) {
		b.about = i;
		if (!swim_sim_run_pred(sim, all_see, &b, 1000, 300000)) {
			healed = false;
			fprintf(stderr, "node %zu alive for %zu of %zu\n", i,
				swim_sim_count_view(sim, i, b.mask), n - 1);
			break;
		}
	}
	ck_assert_msg(healed, "partition did not heal (seed %llu)", (unsigned long long)sim_seed());
	fprintf(stderr, "cpu %.1fs at t=%llus events %llu\n", (double)clock() / CLOCKS_PER_SEC,
		(unsigned long long)swim_sim_now(sim) / 1000,
		(unsigned long long)swim_sim_events(sim));
	swim_sim_free(sim);
}
END_TEST

START_TEST(test_leave_and_restart)
{
	struct swim_sim *sim = make(0);
	struct view left = {.about = 3, .mask = M(SWIM_LEFT)};
	struct view dead = {.about = 4, .mask = M(SWIM_DEAD)};
	struct view alive = {.about = 4, .mask = M(SWIM_ALIVE)};

	swim_sim_run_until(sim, 3000);
	swim_sim_leave(sim, 3);
	ck_assert(swim_sim_run_pred(sim, all_see, &left, 100, 30000));
	ck_assert_uint_eq(swim_sim_declared(sim, 3)->n_dead, 0);
	ck_assert(swim_leave_done(swim_sim_node(sim, 3)));
	swim_sim_kill(sim, 3); /* the process exits after its leave spread */

	swim_sim_kill(sim, 4);
	ck_assert_msg(swim_sim_run_pred(sim, all_see, &dead, 250, 120000),
		      "dead for %zu of %zu; alive %zu suspect %zu",
		      swim_sim_count_view(sim, 4, dead.mask), swim_sim_count_running(sim, 4),
		      swim_sim_count_view(sim, 4, M(SWIM_ALIVE)),
		      swim_sim_count_view(sim, 4, M(SWIM_SUSPECT)));
	swim_sim_restart(sim, 4, 9);
	ck_assert(swim_sim_run_pred(sim, all_see, &alive, 100, 60000));
	ck_assert_uint_ge(swim_incarnation(swim_sim_node(sim, 4)), 1);
	fprintf(stderr, "cpu %.1fs at t=%llus events %llu\n", (double)clock() / CLOCKS_PER_SEC,
		(unsigned long long)swim_sim_now(sim) / 1000,
		(unsigned long long)swim_sim_events(sim));
	swim_sim_free(sim);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("swim_sim");
	TCase *tc = tcase_create("pool");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_join_reaches_all);
	tcase_add_test(tc, test_killed_member_declared_failed);
	tcase_add_test(tc, test_lossy_member_not_declared_dead);
	tcase_add_test(tc, test_partition_heals);
	tcase_add_test(tc, test_leave_and_restart);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
