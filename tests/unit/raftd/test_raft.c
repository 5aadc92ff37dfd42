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
static struct raft_io io = {
    .ctx = &f, .persist_vote = f_vote, .append = f_append, .apply = f_apply};

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

/* ---- multi-server: a core driven by hand with a recording fake io ---- */

struct mfake {
	uint64_t now;
	struct raft_msg sent[64];
	int n_sent;
	uint64_t applied;
	uint64_t truncated_at;
	uint64_t term;
	char vote[RAFT_ID_MAX + 1];
};

static struct mfake mf;

static int m_vote(void *ctx, uint64_t term, const char *v)
{
	(void)ctx;
	mf.term = term;
	strcpy(mf.vote, v);
	return 0;
}
static int m_append(void *ctx, const struct raft_entry *e)
{
	(void)ctx;
	(void)e;
	return 0;
}
static int m_apply(void *ctx, uint64_t c)
{
	(void)ctx;
	mf.applied = c;
	return 0;
}
static int m_truncate(void *ctx, uint64_t i)
{
	(void)ctx;
	mf.truncated_at = i;
	return 0;
}
static int m_send(void *ctx, const struct raft_msg *m)
{
	(void)ctx;
	if (mf.n_sent < 64)
		mf.sent[mf.n_sent++] = *m;
	return 0;
}
static uint64_t m_now(void *ctx)
{
	(void)ctx;
	return mf.now;
}
static uint32_t m_rand(void *ctx)
{
	(void)ctx;
	return 0;
}

static const struct raft_io mio = {.ctx = &mf,
				   .persist_vote = m_vote,
				   .append = m_append,
				   .apply = m_apply,
				   .truncate = m_truncate,
				   .send = m_send,
				   .now_ms = m_now,
				   .rand_u32 = m_rand};

static const uint8_t cfg3[] = "n1 - 1\nn2 - 1\nn3 - 1\n";

/* A follower n1 with log terms `terms` (entry 1: the 3-voter config). */
static void boot3(struct raft *r, const uint64_t *terms, uint64_t n, uint64_t term, uint64_t commit)
{
	struct raft_boot b = {.current_term = term,
			      .last_index = n,
			      .last_term = terms[n - 1],
			      .last_applied = commit,
			      .terms = terms,
			      .await_config = true};
	memset(&mf, 0, sizeof(mf));
	ck_assert_int_eq(raft_init(r, &mio, "n1", &b), 0);
	ck_assert_int_eq(raft_boot_config(r, 1, cfg3, sizeof(cfg3) - 1), 0);
	ck_assert_int_eq(raft_start(r), 0);
}

static struct raft_msg msg(unsigned type, const char *from, uint64_t term)
{
	struct raft_msg m;
	memset(&m, 0, sizeof(m));
	m.type = type;
	strcpy(m.from, from);
	strcpy(m.to, "n1");
	m.term = term;
	return m;
}

static const struct raft_msg *last_sent(unsigned type, const char *to)
{
	for (int i = mf.n_sent - 1; i >= 0; i--)
		if (mf.sent[i].type == type && (!to || strcmp(mf.sent[i].to, to) == 0))
			return &mf.sent[i];
	return NULL;
}

/* Drives n1 through pre-vote and vote to leadership with n2's help. */
static void win(struct raft *r)
{
	struct raft_msg m;
	uint64_t term = r->current_term;

	mf.now += 2000; /* past any election timeout and the restart vote hold */
	ck_assert_int_eq(raft_tick(r), 0);
	ck_assert_int_eq(r->role, RAFT_PRECANDIDATE);
	ck_assert_uint_eq(r->current_term, term); /* pre-vote: term unchanged */
	ck_assert_ptr_nonnull(last_sent(RAFT_MSG_VOTE, "n2"));
	ck_assert(last_sent(RAFT_MSG_VOTE, "n2")->u.vote.pre_vote);
	m = msg(RAFT_MSG_VOTE_REPLY, "n2", term + 1);
	m.u.vote_reply.pre_vote = true;
	m.u.vote_reply.granted = true;
	ck_assert_int_eq(raft_receive(r, &m), 0);
	ck_assert_int_eq(r->role, RAFT_CANDIDATE);
	ck_assert_uint_eq(r->current_term, term + 1);
	ck_assert_str_eq(mf.vote, "n1");
	m = msg(RAFT_MSG_VOTE_REPLY, "n2", term + 1);
	m.u.vote_reply.granted = true;
	ck_assert_int_eq(raft_receive(r, &m), 0);
	ck_assert_int_eq(r->role, RAFT_LEADER);
}

static void ack(struct raft *r, const char *from, uint64_t match)
{
	struct raft_msg m = msg(RAFT_MSG_APPEND_REPLY, from, r->current_term);
	m.u.append_reply.success = true;
	m.u.append_reply.match_index = match;
	ck_assert_int_eq(raft_receive(r, &m), 0);
}

START_TEST(old_term_entries_not_committed_by_counting)
{
	/* Figure 3.7 of the dissertation: entry 2 of term 2 on a majority
	 * must not be committed by a leader of term 4 until an entry of
	 * term 4 is. */
	struct raft r;
	const uint64_t terms[] = {1, 2};
	boot3(&r, terms, 2, 3, 1);
	win(&r);
	ck_assert_uint_eq(r.last_index, 3); /* the no-op of term 4 */
	ack(&r, "n2", 2);
	ck_assert_uint_eq(r.commit_index, 1);
	ck_assert_uint_eq(mf.applied, 0);
	/* Durable on n2 but not on the leader: the leader counts itself
	 * only for what it persisted. */
	ack(&r, "n2", 3);
	ck_assert_uint_eq(r.commit_index, 1);
	ck_assert_int_eq(raft_persisted(&r, 3, 4), 0);
	ck_assert_uint_eq(r.commit_index, 3);
	ck_assert_uint_eq(mf.applied, 3);
	raft_close(&r);
}
END_TEST

START_TEST(follower_acks_only_durable_entries)
{
	struct raft r;
	const uint64_t terms[] = {1};
	struct raft_entry e[2] = {{.index = 2, .term = 2, .type = RAFT_ENTRY_NOOP},
				  {.index = 3,
				   .term = 2,
				   .type = RAFT_ENTRY_COMMAND,
				   .payload = (const uint8_t *)"x",
				   .len = 1}};
	struct raft_msg m;

	boot3(&r, terms, 1, 1, 1);
	m = msg(RAFT_MSG_APPEND, "n2", 2);
	m.u.append.prev_index = 1;
	m.u.append.prev_term = 1;
	m.u.append.commit = 1;
	m.u.append.n_entries = 2;
	m.u.append.entries = e;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert_uint_eq(r.last_index, 3);
	ck_assert_str_eq(r.leader_id, "n2");
	ck_assert_ptr_null(last_sent(RAFT_MSG_APPEND_REPLY, NULL)); /* not durable yet */
	ck_assert_int_eq(raft_persisted(&r, 2, 2), 0);
	ck_assert_ptr_null(last_sent(RAFT_MSG_APPEND_REPLY, NULL));
	ck_assert_int_eq(raft_persisted(&r, 3, 2), 0);
	const struct raft_msg *rep = last_sent(RAFT_MSG_APPEND_REPLY, "n2");
	ck_assert_ptr_nonnull(rep);
	ck_assert(rep->u.append_reply.success);
	ck_assert_uint_eq(rep->u.append_reply.match_index, 3);
	raft_close(&r);
}
END_TEST

START_TEST(conflict_hint_and_truncation)
{
	/* n1 holds 1:t1 2:t2 3:t2 4:t2 (uncommitted tail); the leader n2 of
	 * term 5 has 1:t1 2:t3 ... */
	struct raft r;
	const uint64_t terms[] = {1, 2, 2, 2};
	struct raft_msg m;
	boot3(&r, terms, 4, 2, 1);
	m = msg(RAFT_MSG_APPEND, "n2", 5);
	m.u.append.prev_index = 4;
	m.u.append.prev_term = 3;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	const struct raft_msg *rep = last_sent(RAFT_MSG_APPEND_REPLY, "n2");
	ck_assert_ptr_nonnull(rep);
	ck_assert(!rep->u.append_reply.success);
	ck_assert_uint_eq(rep->u.append_reply.hint_term, 2);
	ck_assert_uint_eq(rep->u.append_reply.hint_index, 2); /* where term 2 starts */
	ck_assert_uint_eq(r.current_term, 5);
	/* The leader's entry 2 of term 3 replaces the whole term-2 suffix. */
	struct raft_entry e = {.index = 2, .term = 3, .type = RAFT_ENTRY_NOOP};
	m.u.append.prev_index = 1;
	m.u.append.prev_term = 1;
	m.u.append.n_entries = 1;
	m.u.append.entries = &e;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert_uint_eq(mf.truncated_at, 2);
	ck_assert_uint_eq(r.last_index, 2);
	ck_assert_uint_eq(raft_term_at(&r, 2), 3);
	/* A durability report about the overwritten entry is ignored. */
	mf.n_sent = 0;
	ck_assert_int_eq(raft_persisted(&r, 2, 2), 0);
	ck_assert_ptr_null(last_sent(RAFT_MSG_APPEND_REPLY, NULL));
	ck_assert_int_eq(raft_persisted(&r, 2, 3), 0);
	ck_assert_ptr_nonnull(last_sent(RAFT_MSG_APPEND_REPLY, "n2"));
	raft_close(&r);
}
END_TEST

START_TEST(votes_held_after_restart_and_in_lease)
{
	struct raft r;
	const uint64_t terms[] = {1};
	struct raft_msg m;
	boot3(&r, terms, 1, 1, 1);
	/* Just restarted: we may have acked a leader whose lease still runs. */
	m = msg(RAFT_MSG_VOTE, "n2", 2);
	m.u.vote.last_index = 1;
	m.u.vote.last_term = 1;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert(!last_sent(RAFT_MSG_VOTE_REPLY, "n2")->u.vote_reply.granted);
	ck_assert_uint_eq(r.current_term, 1); /* not disrupted */
	mf.now += 1000;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert(last_sent(RAFT_MSG_VOTE_REPLY, "n2")->u.vote_reply.granted);
	ck_assert_uint_eq(r.current_term, 2);
	ck_assert_str_eq(mf.vote, "n2");
	/* A candidate with a shorter log is refused. */
	m = msg(RAFT_MSG_VOTE, "n3", 3);
	m.u.vote.last_index = 0;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert(!last_sent(RAFT_MSG_VOTE_REPLY, "n3")->u.vote_reply.granted);
	/* While hearing from a leader, votes are ignored (stickiness)... */
	struct raft_msg hb = msg(RAFT_MSG_APPEND, "n2", 3);
	hb.u.append.prev_index = 1;
	hb.u.append.prev_term = 1;
	ck_assert_int_eq(raft_receive(&r, &hb), 0);
	m = msg(RAFT_MSG_VOTE, "n3", 4);
	m.u.vote.last_index = 1;
	m.u.vote.last_term = 1;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert(!last_sent(RAFT_MSG_VOTE_REPLY, "n3")->u.vote_reply.granted);
	ck_assert_uint_eq(r.current_term, 3);
	/* ...except for a leadership transfer. */
	m.u.vote.transfer = true;
	ck_assert_int_eq(raft_receive(&r, &m), 0);
	ck_assert(last_sent(RAFT_MSG_VOTE_REPLY, "n3")->u.vote_reply.granted);
	ck_assert_uint_eq(r.current_term, 4);
	raft_close(&r);
}
END_TEST

START_TEST(config_payloads)
{
	struct raft_config c;
	uint8_t buf[256];
	ck_assert_int_eq(raft_config_decode(cfg3, sizeof(cfg3) - 1, &c), 0);
	ck_assert_uint_eq(c.n, 3);
	ck_assert_str_eq(c.s[1].id, "n2");
	ck_assert_str_eq(c.s[1].address, "");
	ck_assert(c.s[2].voter);
	strcpy(c.s[0].address, "127.0.0.1:8300");
	size_t n = raft_config_encode(&c, buf, sizeof(buf));
	ck_assert_uint_le(n, sizeof(buf));
	struct raft_config d;
	ck_assert_int_eq(raft_config_decode(buf, n, &d), 0);
	ck_assert_str_eq(d.s[0].address, "127.0.0.1:8300");
	ck_assert_int_eq(raft_config_decode((const uint8_t *)"n1 - 1", 6, &d), -EINVAL);
	ck_assert_int_eq(raft_config_decode((const uint8_t *)"n1 - 2\n", 7, &d), -EINVAL);
	ck_assert_int_eq(raft_config_decode((const uint8_t *)"n1 - 1\nn1 - 1\n", 14, &d), -EINVAL);
	ck_assert_int_eq(raft_config_decode((const uint8_t *)"n1 - 1 x\n", 9, &d), -EINVAL);
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
	TCase *tm = tcase_create("multi-server");
	tcase_add_test(tm, old_term_entries_not_committed_by_counting);
	tcase_add_test(tm, follower_acks_only_durable_entries);
	tcase_add_test(tm, conflict_hint_and_truncation);
	tcase_add_test(tm, votes_held_after_restart_and_in_lease);
	tcase_add_test(tm, config_payloads);
	suite_add_tcase(s, tm);
	return s;
}
