/* Unit tests: Vivaldi network coordinates (gossipd/vivaldi.c): serf's
 * defaults and distance rule, the wire form, input validation, and
 * convergence on a simulated network with known pairwise latencies. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vivaldi.h"

START_TEST(test_defaults_and_distance)
{
	struct vivaldi_config cfg;
	struct vivaldi_coord a, b;

	vivaldi_config_default(&cfg);
	ck_assert(cfg.error_max == 1.5 && cfg.ce == 0.25 && cfg.cc == 0.25);
	ck_assert_uint_eq(cfg.adjust_window, 20);
	ck_assert_uint_eq(cfg.filter_size, 3);
	ck_assert(cfg.height_min == 10.0e-6 && cfg.gravity_rho == 150.0);
	vivaldi_coord_init(&a, &cfg);
	ck_assert(a.error == 1.5 && a.height == 10.0e-6 && a.adjustment == 0.0);
	b = a;
	/* 3-4-5 triangle plus both heights */
	a.vec[0] = 0.003;
	b.vec[1] = 0.004;
	ck_assert(fabs(vivaldi_distance_s(&a, &b) - (0.005 + 20.0e-6)) < 1e-12);
	/* adjustments count while the sum stays positive */
	a.adjustment = 0.001;
	ck_assert(fabs(vivaldi_distance_s(&a, &b) - (0.006 + 20.0e-6)) < 1e-12);
	a.adjustment = -1.0;
	ck_assert(fabs(vivaldi_distance_s(&a, &b) - (0.005 + 20.0e-6)) < 1e-12);
}
END_TEST

START_TEST(test_wire_roundtrip)
{
	struct vivaldi_config cfg;
	struct vivaldi_coord a, b;
	uint8_t buf[VIVALDI_WIRE_LEN];

	vivaldi_config_default(&cfg);
	vivaldi_coord_init(&a, &cfg);
	for (int i = 0; i < VIVALDI_DIM; i++)
		a.vec[i] = (i - 3) * 0.0125;
	a.error = 0.3;
	a.adjustment = -0.0002;
	a.height = 0.0001;
	vivaldi_coord_encode(&a, buf);
	ck_assert_uint_eq(buf[0], 1);
	ck_assert_int_eq(vivaldi_coord_decode(buf, sizeof(buf), &b), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	ck_assert_int_eq(vivaldi_coord_decode(buf, sizeof(buf) - 1, &b), -EINVAL);
	buf[0] = 2;
	ck_assert_int_eq(vivaldi_coord_decode(buf, sizeof(buf), &b), -EINVAL);
	buf[0] = 1;
	a.height = NAN;
	vivaldi_coord_encode(&a, buf);
	ck_assert_int_eq(vivaldi_coord_decode(buf, sizeof(buf), &b), -EINVAL);
}
END_TEST

START_TEST(test_update_validation_and_peers)
{
	struct vivaldi *v = vivaldi_new(NULL, 1);
	struct vivaldi_coord other;
	struct vivaldi_config cfg;
	const char *name;
	const struct vivaldi_coord *pc;

	ck_assert_ptr_nonnull(v);
	vivaldi_config_default(&cfg);
	vivaldi_coord_init(&other, &cfg);
	ck_assert_int_eq(vivaldi_update(v, "b", &other, 0.0), -EINVAL);
	ck_assert_int_eq(vivaldi_update(v, "b", &other, -0.1), -EINVAL);
	ck_assert_int_eq(vivaldi_update(v, "b", &other, 11.0), -EINVAL);
	other.vec[2] = INFINITY;
	ck_assert_int_eq(vivaldi_update(v, "b", &other, 0.01), -EINVAL);
	ck_assert_uint_eq(vivaldi_peer_count(v), 0);
	other.vec[2] = 0;
	/* coinciding points: pushed apart in a random direction */
	ck_assert_int_eq(vivaldi_update(v, "b", &other, 0.01), 0);
	ck_assert(vivaldi_distance_s(vivaldi_get(v), &other) > 0.001);
	ck_assert(vivaldi_get(v)->error < 1.5);
	ck_assert_uint_eq(vivaldi_peer_count(v), 1);
	vivaldi_peer(v, 0, &name, &pc);
	ck_assert_str_eq(name, "b");
	ck_assert_mem_eq(pc, &other, sizeof(other));
	vivaldi_forget(v, "b");
	ck_assert_uint_eq(vivaldi_peer_count(v), 0);
	ck_assert_uint_eq(vivaldi_resets(v), 0);
	vivaldi_free(v);
	vivaldi_free(NULL);
}
END_TEST

/* The latency filter answers the median of the last 3 samples, so one
 * outlier does not move the coordinate more than a normal sample. */
START_TEST(test_latency_filter)
{
	struct vivaldi *a = vivaldi_new(NULL, 7), *b = vivaldi_new(NULL, 7);
	struct vivaldi_config cfg;
	struct vivaldi_coord other;

	vivaldi_config_default(&cfg);
	vivaldi_coord_init(&other, &cfg);
	other.vec[0] = 0.02;
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(vivaldi_update(a, "p", &other, 0.02), 0);
		ck_assert_int_eq(vivaldi_update(b, "p", &other, 0.02), 0);
	}
	/* a sees a 5 s spike; b sees the normal RTT: the median is the same */
	ck_assert_int_eq(vivaldi_update(a, "p", &other, 5.0), 0);
	ck_assert_int_eq(vivaldi_update(b, "p", &other, 0.02), 0);
	ck_assert(fabs(vivaldi_distance_s(vivaldi_get(a), &other) -
		       vivaldi_distance_s(vivaldi_get(b), &other)) < 1e-9);
	vivaldi_free(a);
	vivaldi_free(b);
}
END_TEST

/* A simulated network: nodes at known places on a plane with access-link
 * heights; the true RTT is the Euclidean distance plus both heights (the
 * model Vivaldi fits exactly). Each round every node observes one random
 * peer, as one probe per interval does. After enough rounds the estimate
 * of every pair is within 20% (+1 ms) of the truth, and the errors have
 * fallen well below the initial 1.5. */
#define SIM_N 12

static uint64_t sim_rng = 88172645463325252ull;

static uint32_t sim_rand(uint32_t n)
{
	sim_rng ^= sim_rng << 13;
	sim_rng ^= sim_rng >> 7;
	sim_rng ^= sim_rng << 17;
	return (uint32_t)(sim_rng % n);
}

START_TEST(test_converges_on_simulated_network)
{
	struct vivaldi *v[SIM_N];
	double x[SIM_N], y[SIM_N], h[SIM_N], truth[SIM_N][SIM_N];
	char names[SIM_N][8];
	double worst = 0, sum_rel = 0;

	for (int i = 0; i < SIM_N; i++) {
		v[i] = vivaldi_new(NULL, (uint64_t)i + 1);
		ck_assert_ptr_nonnull(v[i]);
		snprintf(names[i], sizeof(names[i]), "n%d", i);
		/* two clusters 80 ms apart, nodes spread within 10 ms */
		x[i] = (i < SIM_N / 2 ? 0.0 : 0.080) + 0.002 * (i % 5);
		y[i] = 0.003 * (i % 4);
		h[i] = 0.0005 + 0.0002 * (i % 3);
	}
	for (int i = 0; i < SIM_N; i++)
		for (int j = 0; j < SIM_N; j++)
			truth[i][j] = hypot(x[i] - x[j], y[i] - y[j]) + h[i] + h[j];
	for (int round = 0; round < 2000; round++)
		for (int i = 0; i < SIM_N; i++) {
			int j = (int)sim_rand(SIM_N - 1);
			struct vivaldi_coord peer;

			if (j >= i)
				j++;
			peer = *vivaldi_get(v[j]); /* as carried by the ack */
			ck_assert_int_eq(vivaldi_update(v[i], names[j], &peer, truth[i][j]), 0);
		}
	for (int i = 0; i < SIM_N; i++) {
		ck_assert(vivaldi_get(v[i])->error < 0.5);
		ck_assert_uint_eq(vivaldi_resets(v[i]), 0);
		for (int j = 0; j < SIM_N; j++) {
			double est, rel;

			if (i == j)
				continue;
			est = vivaldi_distance_s(vivaldi_get(v[i]), vivaldi_get(v[j]));
			rel = fabs(est - truth[i][j]) / truth[i][j];
			sum_rel += rel;
			if (rel > worst)
				worst = rel;
			ck_assert_msg(fabs(est - truth[i][j]) <= 0.2 * truth[i][j] + 0.001,
				      "n%d-n%d: estimate %.4f s, true %.4f s", i, j, est,
				      truth[i][j]);
		}
	}
	/* on average much better than the per-pair bound */
	ck_assert_msg(sum_rel / (SIM_N * (SIM_N - 1)) < 0.1, "mean relative error %.3f",
		      sum_rel / (SIM_N * (SIM_N - 1)));
	/* near sorting works: from n0, every node of its own cluster is
	 * estimated closer than every node of the other */
	for (int i = 1; i < SIM_N / 2; i++)
		for (int j = SIM_N / 2; j < SIM_N; j++)
			ck_assert(vivaldi_distance_s(vivaldi_get(v[0]), vivaldi_get(v[i])) <
				  vivaldi_distance_s(vivaldi_get(v[0]), vivaldi_get(v[j])));
	for (int i = 0; i < SIM_N; i++)
		vivaldi_free(v[i]);
}
END_TEST

static Suite *vivaldi_suite(void)
{
	Suite *s = suite_create("vivaldi");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_defaults_and_distance);
	tcase_add_test(tc, test_wire_roundtrip);
	tcase_add_test(tc, test_update_validation_and_peers);
	tcase_add_test(tc, test_latency_filter);
	tcase_add_test(tc, test_converges_on_simulated_network);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(vivaldi_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
