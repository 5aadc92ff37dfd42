/* Raft core in a deterministic simulated cluster: scenarios, then many
 * seeded random schedules with the invariants checked after every step.
 *
 * CAIRN_SIM_SEEDS=N runs N schedules per random scenario (default 100);
 * CAIRN_SIM_SEED=S runs only seed S (what a failure message prints). */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft/raft.h"
#include "sim.h"

Suite *lin_suite(void);

static bool has_leader(struct sim *s) { return sim_leader(s) >= 0; }

static struct sim *cluster(unsigned nodes, unsigned voters, uint64_t seed)
{
	struct sim_opts o = {.seed = seed, .n_nodes = nodes, .n_voters = voters};
	struct sim *s = sim_new(&o);
	ck_assert_ptr_nonnull(s);
	return s;
}

#define RUN_OK(expr)                                                                               \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		ck_assert_msg(rc_ == 0, "%s: %d (%s)", #expr, rc_, sim_error(s));                  \
	} while (0)

START_TEST(elects_one_leader)
{
	struct sim *s = cluster(3, 3, 1);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	/* Election within a couple of election timeouts (1-2 s each). */
	ck_assert_uint_lt(sim_now(s), 4000);
	int l = sim_leader(s);
	RUN_OK(sim_run_for(s, 3000));
	ck_assert_int_eq(sim_leader(s), l); /* stable without faults */
	unsigned leaders = 0;
	for (unsigned i = 0; i < 3; i++)
		leaders += sim_raft(s, i)->role == RAFT_LEADER;
	ck_assert_uint_eq(leaders, 1);
	sim_free(s);
}
END_TEST

static int target_value;
static bool all_have_value(struct sim *s)
{
	for (unsigned i = 0; i < 3; i++)
		if (sim_value(s, i, 0) != target_value)
			return false;
	return true;
}

START_TEST(replicates_and_applies)
{
	struct sim *s = cluster(3, 3, 2);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	int l = sim_leader(s);
	ck_assert_int_eq(sim_put(s, (unsigned)l, 0, 42), 0);
	target_value = 42;
	RUN_OK(sim_run_until(s, all_have_value, 1000));
	/* A follower refuses proposals. */
	ck_assert_int_eq(sim_put(s, (unsigned)((l + 1) % 3), 0, 7), CAIRN_E_NOLEADER);
	sim_free(s);
}
END_TEST

static int old_leader;
static bool old_stepped_down(struct sim *s)
{
	return sim_raft(s, (unsigned)old_leader)->role != RAFT_LEADER;
}
static bool new_leader_elected(struct sim *s)
{
	int l = sim_leader(s);
	return l >= 0 && l != old_leader;
}

START_TEST(check_quorum_steps_down)
{
	struct sim *s = cluster(3, 3, 3);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	old_leader = sim_leader(s);
	uint64_t t0 = sim_now(s);
	sim_set_group(s, (unsigned)old_leader, 1);
	RUN_OK(sim_run_until(s, old_stepped_down, 5000));
	/* Within about two election timeouts of losing its majority. */
	ck_assert_uint_le(sim_now(s) - t0, 2100);
	RUN_OK(sim_run_until(s, new_leader_elected, 5000));
	ck_assert_uint_gt(sim_raft(s, (unsigned)sim_leader(s))->current_term,
			  sim_raft(s, (unsigned)old_leader)->current_term - 1);
	sim_free(s);
}
END_TEST

START_TEST(rejoining_node_does_not_depose)
{
	struct sim *s = cluster(3, 3, 4);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	int l = sim_leader(s);
	unsigned f = (unsigned)(l + 1) % 3;
	uint64_t term = sim_raft(s, (unsigned)l)->current_term;
	sim_set_group(s, f, 1);
	RUN_OK(sim_run_for(s, 10000));
	/* Pre-vote: the isolated node never raised its term... */
	ck_assert_uint_eq(sim_raft(s, f)->current_term, term);
	sim_heal(s);
	RUN_OK(sim_run_for(s, 5000));
	/* ...and its return leaves the leader in place. */
	ck_assert_int_eq(sim_leader(s), l);
	ck_assert_uint_eq(sim_raft(s, (unsigned)l)->current_term, term);
	sim_free(s);
}
END_TEST

static unsigned transfer_target;
static bool target_leads(struct sim *s) { return sim_leader(s) == (int)transfer_target; }

START_TEST(leadership_transfer)
{
	struct sim *s = cluster(3, 3, 5);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	int l = sim_leader(s);
	RUN_OK(sim_run_for(s, 500)); /* let the no-op commit everywhere */
	transfer_target = (unsigned)(l + 2) % 3;
	char id[8];
	snprintf(id, sizeof(id), "n%u", transfer_target + 1);
	ck_assert_int_eq(raft_transfer((struct raft *)sim_raft(s, (unsigned)l), id), 0);
	/* Proposals are refused meanwhile. */
	ck_assert_int_eq(sim_put(s, (unsigned)l, 0, 1), CAIRN_E_NOLEADER);
	uint64_t t0 = sim_now(s);
	RUN_OK(sim_run_until(s, target_leads, 2000));
	ck_assert_uint_lt(sim_now(s) - t0, 200); /* no election timeout involved */
	sim_free(s);
}
END_TEST

static bool n4_has_value(struct sim *s) { return sim_value(s, 3, 1) == 99; }
static bool n4_votes(struct sim *s)
{
	int l = sim_leader(s);
	if (l < 0)
		return false;
	const struct raft_config *c = &sim_raft(s, (unsigned)l)->config;
	int i = raft_config_find(c, "n4");
	return i >= 0 && c->s[i].voter &&
	       sim_raft(s, (unsigned)l)->commit_index >= sim_raft(s, (unsigned)l)->config_index;
}
static bool leader_not_n1(struct sim *s)
{
	int l = sim_leader(s);
	return l > 0;
}

START_TEST(membership_add_remove)
{
	struct sim *s = cluster(4, 3, 6);
	uint64_t idx;
	RUN_OK(sim_run_until(s, has_leader, 5000));
	int l = sim_leader(s);
	struct raft *lr = (struct raft *)sim_raft(s, (unsigned)l);
	/* Not before the no-op committed. */
	if (lr->commit_index < lr->leader_first_index)
		ck_assert_int_eq(raft_add_server(lr, "n4", "10.0.0.4:8300", &idx), -EBUSY);
	RUN_OK(sim_run_for(s, 300));
	ck_assert_int_eq(raft_add_server(lr, "n4", "10.0.0.4:8300", &idx), 0);
	/* One change at a time. */
	ck_assert_int_eq(raft_remove_server(lr, "n2", &idx), -EBUSY);
	ck_assert_int_eq(sim_put(s, (unsigned)l, 1, 99), 0);
	RUN_OK(sim_run_until(s, n4_has_value, 2000));
	ck_assert_uint_eq(sim_raft(s, 3)->config.n, 4);
	/* It joined as a non-voter and was promoted once caught up. */
	RUN_OK(sim_run_until(s, n4_votes, 2000));
	ck_assert_int_eq(raft_add_server(lr, "n4", "", &idx), -EEXIST);
	/* Make n1 the leader, then remove it: it steps down and the other
	 * three carry on. */
	if (l != 0) {
		ck_assert_int_eq(raft_transfer(lr, "n1"), 0);
		transfer_target = 0;
		RUN_OK(sim_run_until(s, target_leads, 3000));
		RUN_OK(sim_run_for(s, 300));
		lr = (struct raft *)sim_raft(s, 0);
	}
	ck_assert_int_eq(raft_remove_server(lr, "n1", &idx), 0);
	RUN_OK(sim_run_until(s, leader_not_n1, 5000));
	ck_assert_int_ne(sim_raft(s, 0)->role, RAFT_LEADER);
	ck_assert_uint_eq(sim_raft(s, (unsigned)sim_leader(s))->config.n, 3);
	sim_free(s);
}
END_TEST

START_TEST(crash_losing_unsynced_writes)
{
	struct sim *s = cluster(3, 3, 7);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	int l = sim_leader(s);
	ck_assert_int_eq(sim_put(s, (unsigned)l, 2, 5), 0);
	target_value = 5;
	/* Crash the leader right after proposing, losing unsynced data. */
	sim_crash(s, (unsigned)l, true);
	RUN_OK(sim_run_for(s, 3000));
	ck_assert_int_ge(sim_leader(s), 0);
	ck_assert_int_eq(sim_restart(s, (unsigned)l), 0);
	sim_quiesce(s);
	RUN_OK(sim_run_until(s, sim_converged, 10000));
	RUN_OK(sim_final_check(s));
	sim_free(s);
}
END_TEST

/* Writes n values to key 0 through whoever leads, 20 ms apart. */
static void write_some(struct sim *s, unsigned n, int64_t first)
{
	for (unsigned i = 0; i < n; i++) {
		int l = sim_leader(s);
		if (l >= 0)
			(void)sim_put(s, (unsigned)l, 0, first + i);
		RUN_OK(sim_run_for(s, 20));
	}
}

static bool all_have_target(struct sim *s)
{
	for (unsigned i = 0; i < 3; i++)
		if (!sim_alive(s, i) || sim_value(s, i, 0) != target_value)
			return false;
	return sim_converged(s);
}

/* A follower that was down (or cut off) while the others compacted their
 * logs past what it has catches up through InstallSnapshot. */
static void catch_up_by_snapshot(bool crash, uint64_t seed)
{
	struct sim_opts o = {.seed = seed,
			     .n_nodes = 3,
			     .snapshot_threshold = 5,
			     .trailing_logs = 2};
	struct sim *s = sim_new(&o);
	struct sim_stats st;

	ck_assert_ptr_nonnull(s);
	RUN_OK(sim_run_until(s, has_leader, 5000));
	write_some(s, 3, 1);
	unsigned f = ((unsigned)sim_leader(s) + 1) % 3;
	if (crash)
		sim_crash(s, f, true);
	else
		sim_set_group(s, f, 1);
	write_some(s, 40, 100);
	int l = sim_leader(s);
	ck_assert_int_ge(l, 0);
	ck_assert_uint_gt(sim_raft(s, (unsigned)l)->base_index, sim_raft(s, f)->last_index);
	target_value = 139;
	if (crash)
		ck_assert_int_eq(sim_restart(s, f), 0);
	sim_quiesce(s);
	RUN_OK(sim_run_until(s, all_have_target, 10000));
	/* It holds the leader's state without the entries it missed. */
	ck_assert_uint_gt(sim_raft(s, f)->base_index, 3);
	sim_stats(s, &st);
	ck_assert_uint_gt(st.installs, 0);
	ck_assert_uint_gt(st.snapshots, 0);
	RUN_OK(sim_final_check(s));
	/* And keeps it across a crash once it is synced. */
	RUN_OK(sim_run_for(s, 200));
	sim_crash(s, f, true);
	ck_assert_int_eq(sim_restart(s, f), 0);
	RUN_OK(sim_run_until(s, all_have_target, 10000));
	sim_free(s);
}

START_TEST(follower_catches_up_by_snapshot_after_crash)
{
	catch_up_by_snapshot(true, 11);
}
END_TEST

START_TEST(follower_catches_up_by_snapshot_after_partition)
{
	catch_up_by_snapshot(false, 12);
}
END_TEST

static int iso_leader;
static bool other_leader_applied(struct sim *s)
{
	int l = sim_leader(s);
	return l >= 0 && l != iso_leader && sim_value(s, (unsigned)l, 0) == 2;
}

START_TEST(deposed_leader_serves_no_reads)
{
	/* A leader cut off from the others keeps its role until check-quorum
	 * fires; meanwhile the majority elects another leader that commits a
	 * write. The old one must not serve a read after that: neither from
	 * its lease nor through a read barrier. Over many seeds some hit the
	 * window where both think they lead. */
	unsigned overlaps = 0;
	for (uint64_t seed = 100; seed < 160; seed++) {
		struct sim_opts o = {.seed = seed, .n_nodes = 3};
		struct sim *s = sim_new(&o);
		ck_assert_ptr_nonnull(s);
		RUN_OK(sim_run_until(s, has_leader, 5000));
		iso_leader = sim_leader(s);
		const struct raft *a = sim_raft(s, (unsigned)iso_leader);
		ck_assert_int_eq(sim_put(s, (unsigned)iso_leader, 0, 1), 0);
		RUN_OK(sim_run_for(s, 500));
		/* Cut it off at a random point of its heartbeat cycle. */
		RUN_OK(sim_run_for(s, seed % 100));
		sim_set_group(s, (unsigned)iso_leader, 1);
		uint64_t seq, ri;
		bool barrier = raft_read_index((struct raft *)a, &seq, &ri) == 0;
		RUN_OK(sim_run_until(s, has_leader, 100)); /* still itself */
		uint64_t deadline = sim_now(s) + 6000;
		bool wrote = false;
		while (sim_now(s) < deadline) {
			RUN_OK(sim_step(s));
			int l = sim_leader(s);
			if (!wrote && l >= 0 && l != iso_leader) {
				wrote = sim_put(s, (unsigned)l, 0, 2) == 0;
				continue;
			}
			if (!wrote || !other_leader_applied(s))
				continue;
			if (a->role == RAFT_LEADER)
				overlaps++;
			ck_assert_msg(!raft_lease_valid(a),
				      "seed %" PRIu64 ": deposed leader's lease holds", seed);
			ck_assert_msg(!barrier || !raft_read_ready(a, seq),
				      "seed %" PRIu64 ": deposed leader's read barrier passed",
				      seed);
		}
		ck_assert_msg(wrote, "seed %" PRIu64 ": no new leader", seed);
		sim_free(s);
	}
	fprintf(stderr, "deposed leader still leading after a rival's commit: %u steps\n",
		overlaps);
}
END_TEST

static unsigned survivors_n;
static unsigned survivors[2];
static bool survivor_leads_with_value(struct sim *s)
{
	int l = sim_leader(s);
	if (l < 0)
		return false;
	for (unsigned k = 0; k < survivors_n; k++)
		if (sim_value(s, survivors[k], 1) != 77)
			return false;
	return raft_recovered(sim_raft(s, (unsigned)l));
}

START_TEST(recovery_after_losing_quorum)
{
	/* 5 servers; 3 are lost for good. The 2 survivors restart with a
	 * recovery configuration naming just them: they elect a leader,
	 * keep every committed entry and commit again. */
	for (uint64_t seed = 20; seed < 30; seed++) {
		struct sim_opts o = {.seed = seed, .n_nodes = 5};
		struct sim *s = sim_new(&o);
		struct raft_config rc = {.n = 2};
		ck_assert_ptr_nonnull(s);
		RUN_OK(sim_run_until(s, has_leader, 5000));
		int l = sim_leader(s);
		ck_assert_int_eq(sim_put(s, (unsigned)l, 0, 5), 0);
		RUN_OK(sim_run_for(s, 500));
		survivors_n = 2;
		survivors[0] = (unsigned)(l + 1) % 5;
		survivors[1] = (unsigned)(l + 2) % 5;
		for (unsigned i = 0; i < 5; i++)
			sim_crash(s, i, seed % 2);
		for (unsigned k = 0; k < 2; k++) {
			snprintf(rc.s[k].id, sizeof(rc.s[k].id), "n%u", survivors[k] + 1);
			rc.s[k].voter = true;
		}
		/* Without recovery two of five cannot elect anyone. */
		ck_assert_int_eq(sim_restart(s, survivors[0]), 0);
		ck_assert_int_eq(sim_run_until(s, has_leader, 5000), -2);
		sim_crash(s, survivors[0], false);
		for (unsigned k = 0; k < 2; k++)
			ck_assert_int_eq(sim_restart_recover(s, survivors[k], &rc), 0);
		RUN_OK(sim_run_until(s, has_leader, 5000));
		l = sim_leader(s);
		ck_assert_int_eq(sim_put(s, (unsigned)l, 1, 77), 0);
		RUN_OK(sim_run_until(s, survivor_leads_with_value, 5000));
		for (unsigned k = 0; k < 2; k++)
			ck_assert_int_eq(sim_value(s, survivors[k], 0), 5); /* nothing lost */
		ck_assert_uint_eq(sim_raft(s, (unsigned)l)->config.n, 2);
		/* The recovered configuration is in the log: a normal restart
		 * keeps it. */
		sim_crash(s, survivors[0], false);
		sim_crash(s, survivors[1], false);
		ck_assert_int_eq(sim_restart(s, survivors[0]), 0);
		ck_assert_int_eq(sim_restart(s, survivors[1]), 0);
		RUN_OK(sim_run_until(s, has_leader, 5000));
		sim_free(s);
	}
}
END_TEST

static unsigned env_seeds(void)
{
	const char *e = getenv("CAIRN_SIM_SEEDS");
	return e && atoi(e) > 0 ? (unsigned)atoi(e) : 100;
}

static void campaign(const struct sim_opts *base, uint64_t run_ms, uint64_t seed_base)
{
	const char *one = getenv("CAIRN_SIM_SEED");
	unsigned n = env_seeds();
	struct sim_stats tot = {0}, st;
	char err[600];

	for (unsigned i = 0; i < n; i++) {
		struct sim_opts o = *base;
		o.seed = one ? strtoull(one, NULL, 10) : seed_base + i;
		if (sim_run_schedule(&o, run_ms, err, sizeof(err), &st) < 0)
			ck_abort_msg("%s (replay: CAIRN_SIM_SEED=%" PRIu64 ")", err, o.seed);
		tot.steps += st.steps;
		tot.acked += st.acked;
		tot.unknown += st.unknown;
		tot.lease_reads += st.lease_reads;
		tot.index_reads += st.index_reads;
		tot.elections += st.elections;
		tot.crashes += st.crashes;
		tot.config_changes += st.config_changes;
		tot.transfers += st.transfers;
		tot.snapshots += st.snapshots;
		tot.installs += st.installs;
		if (one)
			break;
	}
	fprintf(stderr,
		"sim %u nodes/%u voters, %u schedules: %" PRIu64 " steps, %" PRIu64
		" acked ops, %" PRIu64 " unknown, %" PRIu64 " lease reads, %" PRIu64
		" read-index reads, %" PRIu64 " leaders, %" PRIu64 " crashes, %" PRIu64
		" config changes, %" PRIu64 " transfers, %" PRIu64 " snapshots, %" PRIu64
		" installs\n",
		base->n_nodes, base->n_voters, one ? 1 : n, tot.steps, tot.acked, tot.unknown,
		tot.lease_reads, tot.index_reads, tot.elections, tot.crashes, tot.config_changes,
		tot.transfers, tot.snapshots, tot.installs);
	if (base->snapshot_threshold) {
		ck_assert_uint_gt(tot.snapshots, 0);
		ck_assert_uint_gt(tot.installs, 0);
	}
	/* The schedules must actually exercise the system. */
	ck_assert_uint_gt(tot.acked, 0);
	ck_assert_uint_gt(tot.elections, 0);
}

START_TEST(random_three)
{
	struct sim_opts o = {.n_nodes = 3, .n_clients = 3, .faults = true, .dup_pct = 5};
	campaign(&o, 3000, 1000);
}
END_TEST

START_TEST(random_three_fast)
{
	/* Short timeouts, slow disks and frequent faults: many elections,
	 * crashes inside sync windows. */
	struct sim_opts o = {.n_nodes = 3,
			     .n_clients = 3,
			     .faults = true,
			     .dup_pct = 5,
			     .fast = true,
			     .sync_max_ms = 25,
			     .delay_max_ms = 15};
	campaign(&o, 3000, 4000);
}
END_TEST

START_TEST(random_five_fast)
{
	struct sim_opts o = {.n_nodes = 5,
			     .n_clients = 4,
			     .faults = true,
			     .dup_pct = 5,
			     .fast = true,
			     .sync_max_ms = 25,
			     .delay_max_ms = 15,
			     .membership = true,
			     .n_voters = 4};
	campaign(&o, 3000, 5000);
}
END_TEST

START_TEST(random_five)
{
	struct sim_opts o = {
	    .n_nodes = 5, .n_clients = 4, .faults = true, .dup_pct = 5, .loss_pct = 5};
	campaign(&o, 3000, 2000);
}
END_TEST

START_TEST(random_three_snapshots)
{
	/* Tiny thresholds: snapshots, compactions and InstallSnapshot (in
	 * small chunks) all the time, across crashes and partitions. */
	struct sim_opts o = {.n_nodes = 3,
			     .n_clients = 3,
			     .faults = true,
			     .dup_pct = 5,
			     .fast = true,
			     .sync_max_ms = 25,
			     .delay_max_ms = 15,
			     .snapshot_threshold = 8,
			     .trailing_logs = 2};
	campaign(&o, 3000, 6000);
}
END_TEST

START_TEST(random_five_snapshots)
{
	struct sim_opts o = {.n_nodes = 5,
			     .n_voters = 3,
			     .n_clients = 4,
			     .faults = true,
			     .membership = true,
			     .dup_pct = 5,
			     .loss_pct = 5,
			     .snapshot_threshold = 16,
			     .trailing_logs = 4};
	campaign(&o, 3000, 7000);
}
END_TEST

START_TEST(random_membership)
{
	struct sim_opts o = {.n_nodes = 5,
			     .n_voters = 3,
			     .n_clients = 3,
			     .faults = true,
			     .membership = true,
			     .dup_pct = 5};
	campaign(&o, 3000, 3000);
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *s = suite_create("sim");
	TCase *tc = tcase_create("scenarios");
	TCase *tr = tcase_create("random");

	tcase_add_test(tc, elects_one_leader);
	tcase_add_test(tc, replicates_and_applies);
	tcase_add_test(tc, check_quorum_steps_down);
	tcase_add_test(tc, rejoining_node_does_not_depose);
	tcase_add_test(tc, leadership_transfer);
	tcase_add_test(tc, membership_add_remove);
	tcase_add_test(tc, crash_losing_unsynced_writes);
	tcase_add_test(tc, deposed_leader_serves_no_reads);
	tcase_add_test(tc, recovery_after_losing_quorum);
	tcase_add_test(tc, follower_catches_up_by_snapshot_after_crash);
	tcase_add_test(tc, follower_catches_up_by_snapshot_after_partition);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tr, 600);
	tcase_add_test(tr, random_three);
	tcase_add_test(tr, random_five);
	tcase_add_test(tr, random_membership);
	tcase_add_test(tr, random_three_fast);
	tcase_add_test(tr, random_five_fast);
	tcase_add_test(tr, random_three_snapshots);
	tcase_add_test(tr, random_five_snapshots);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lin_suite());
	int failed;

	srunner_add_suite(sr, sim_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
