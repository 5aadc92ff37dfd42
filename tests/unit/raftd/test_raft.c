/* Pure Raft core with a recording fake io. */
#include <errno.h>
#include <string.h>

#include "err.h"
#include "raft/raft.h"
#include "suites.h"

struct fake {
	int votes;
	uint64_t vote_term;
	char vote_for[RAFT_ID_MAX + 1];
	int vote_rc;
	struct raft_entry appended[16];
	int n_appended;
	int append_rc;
	uint64_t applied_to[16];
	int n_apply;
};

static int f_vote(void *ctx, uint64_t term, const char *voted_for)
{
	struct fake *f = ctx;

	if (f->vote_rc)
		return f->vote_rc;
	f->votes++;
	f->vote_term = term;
	strcpy(f->vote_for, voted_for);
	return 0;
}

static int f_append(void *ctx, const struct raft_entry *e)
{
	struct fake *f = ctx;

	if (f->append_rc)
		return f->append_rc;
	f->appended[f->n_appended] = *e;
	f->appended[f->n_appended].payload = NULL; /* borrowed: do not keep */
	f->n_appended++;
	return 0;
}

static int f_apply(void *ctx, uint64_t commit_index)
{
	struct fake *f = ctx;

	f->applied_to[f->n_apply++] = commit_index;
	return 0;
}

static struct fake f;
static struct raft_io io = {.ctx = &f, .persist_vote = f_vote, .append = f_append, .apply = f_apply};

static void setup(void) { memset(&f, 0, sizeof(f)); }

START_TEST(init_checks)
{
	struct raft r;
	struct raft_boot ok = {
	    .current_term = 3, .last_index = 5, .last_term = 3, .last_applied = 4};
	struct raft_boot bad_applied = {.current_term = 3, .last_index = 5, .last_applied = 6};
	struct raft_boot bad_term = {.current_term = 2, .last_index = 5, .last_term = 3};

	ck_assert_int_eq(raft_init(&r, &io, "", &ok), -EINVAL);
	ck_assert_int_eq(raft_init(&r, &io, NULL, &ok), -EINVAL);
	ck_assert_int_eq(raft_init(&r, &io, "n1", &bad_applied), -EINVAL);
	ck_assert_int_eq(raft_init(&r, &io, "n1", &bad_term), -EINVAL);
	ck_assert_int_eq(raft_init(&r, &io, "n1", &ok), 0);
	ck_assert_int_eq(r.role, RAFT_FOLLOWER);
	ck_assert_uint_eq(r.commit_index, 4);
	ck_assert_uint_eq(r.persisted_index, 5);
	raft_close(&r);
}
END_TEST

START_TEST(start_becomes_leader)
{
	struct raft r;
	struct raft_boot boot = {.current_term = 7,
				 .voted_for = "n1",
				 .last_index = 10,
				 .last_term = 7,
				 .last_applied = 8};
	uint64_t idx;

	ck_assert_int_eq(raft_init(&r, &io, "n1", &boot), 0);
	ck_assert_int_eq(raft_propose(&r, RAFT_ENTRY_COMMAND, NULL, 0, &idx), CAIRN_E_NOLEADER);
	ck_assert_int_eq(raft_start(&r), 0);
	ck_assert_int_eq(r.role, RAFT_LEADER);
	ck_assert_uint_eq(r.current_term, 8);
	ck_assert_int_eq(f.votes, 1);
	ck_assert_uint_eq(f.vote_term, 8);
	ck_assert_str_eq(f.vote_for, "n1");
	ck_assert_int_eq(f.n_appended, 1);
	ck_assert_uint_eq(f.appended[0].index, 11);
	ck_assert_uint_eq(f.appended[0].term, 8);
	ck_assert_uint_eq(f.appended[0].type, RAFT_ENTRY_NOOP);
	ck_assert_int_eq(raft_start(&r), -EINVAL); /* once */

	ck_assert_int_eq(raft_propose(&r, RAFT_ENTRY_COMMAND, (const uint8_t *)"x", 1, &idx), 0);
	ck_assert_uint_eq(idx, 12);
	ck_assert_uint_eq(r.last_index, 12);

	/* Entries of an earlier term are not committed by being durable... */
	ck_assert_int_eq(raft_persisted(&r, 10, 7), 0);
	ck_assert_int_eq(f.n_apply, 0);
	/* ...only through the leader's own no-op (Raft §5.4.2). */
	ck_assert_int_eq(raft_persisted(&r, 11, 8), 0);
	ck_assert_int_eq(f.n_apply, 1);
	ck_assert_uint_eq(f.applied_to[0], 11);
	/* Beyond the log or with another term: ignored; repeats do nothing. */
	ck_assert_int_eq(raft_persisted(&r, 99, 8), 0);
	ck_assert_int_eq(raft_persisted(&r, 12, 7), 0);
	ck_assert_int_eq(f.n_apply, 1);
	ck_assert_int_eq(raft_persisted(&r, 12, 8), 0);
	ck_assert_int_eq(f.n_apply, 2);
	ck_assert_uint_eq(f.applied_to[1], 12);
	ck_assert_int_eq(raft_persisted(&r, 12, 8), 0);
	ck_assert_int_eq(f.n_apply, 2);
	ck_assert_uint_eq(r.commit_index, 12);
	raft_close(&r);
}
END_TEST

START_TEST(io_failures)
{
	struct raft r;
	struct raft_boot boot = {0};
	uint64_t idx = 77;

	ck_assert_int_eq(raft_init(&r, &io, "n1", &boot), 0);
	f.vote_rc = CAIRN_E_STORE;
	ck_assert_int_eq(raft_start(&r), CAIRN_E_STORE);
	ck_assert_int_eq(r.role, RAFT_FOLLOWER);
	ck_assert_uint_eq(r.current_term, 0);
	f.vote_rc = 0;
	ck_assert_int_eq(raft_start(&r), 0);
	ck_assert_uint_eq(r.current_term, 1);
	f.append_rc = -ENOMEM;
	ck_assert_int_eq(raft_propose(&r, RAFT_ENTRY_COMMAND, NULL, 0, &idx), -ENOMEM);
	ck_assert_uint_eq(idx, 77); /* out parameter untouched on failure */
	ck_assert_uint_eq(r.last_index, 1);
	raft_close(&r);
}
END_TEST

Suite *raft_suite(void)
{
	Suite *s = suite_create("raft");
	TCase *tc = tcase_create("single-voter");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, init_checks);
	tcase_add_test(tc, start_becomes_leader);
	tcase_add_test(tc, io_failures);
	suite_add_tcase(s, tc);
	return s;
}
