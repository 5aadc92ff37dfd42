/* Replica: group commit, durable term/vote, replay after a crash. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "replica.h"
#include "store.h"
#include "suites.h"

static char dir[256], sub[300];
static struct replica *rp;
static struct arena ar;
static struct mp_writer w;

static int n_applied, n_changes;
static uint64_t applied_index[512];
static uintptr_t applied_ud[512];
static struct fsm_result applied_res[512];

static void on_applied(void *ctx, void *ud, uint64_t index, const struct fsm_result *res)
{
	(void)ctx;
	ck_assert_int_lt(n_applied, 512);
	applied_index[n_applied] = index;
	applied_ud[n_applied] = (uintptr_t)ud;
	applied_res[n_applied] = *res;
	n_applied++;
}

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	(void)space;
	(void)key;
	(void)klen;
	n_changes++;
}

static void open_rp(void)
{
	char err[256];
	struct replica_config c = {.dir = sub, .map_size = 64ull << 20, .server_id = "node-1"};

	ck_assert_msg(replica_open(&c, on_applied, on_change, NULL, &rp, err, sizeof(err)) == 0,
		      "%s", err);
}

static void setup(void)
{
	test_tmpdir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/raft", dir);
	arena_init(&ar, 0);
	mp_writer_init(&w);
	n_applied = n_changes = 0;
	open_rp();
}

static void teardown(void)
{
	replica_close(rp);
	mp_writer_close(&w);
	arena_close(&ar);
	test_rmtree(dir);
}

static struct fsm_kv_answer get(const char *key)
{
	struct store_txn *txn;
	struct fsm_kv_answer a;

	ck_assert_int_eq(store_txn_begin(replica_store(rp), false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	store_txn_abort(txn);
	return a;
}

static void start(void)
{
	ck_assert_int_eq(replica_start(rp), 0);
	ck_assert_int_eq(replica_flush(rp), 0);
}

START_TEST(start_terms_persist)
{
	uint64_t idx;

	fsm_cmd_kv_set(&w, "k", (const uint8_t *)"v", 1, 0, false, 0);
	ck_assert_int_eq(replica_propose(rp, w.buf, w.len, NULL, &idx), CAIRN_E_NOLEADER);
	start();
	ck_assert(replica_is_leader(rp));
	ck_assert_uint_eq(replica_term(rp), 1);
	ck_assert_uint_eq(replica_last_index(rp), 1); /* the no-op */
	ck_assert_uint_eq(replica_last_applied(rp), 1);
	ck_assert_int_eq(n_applied, 0); /* no-op has no caller */

	replica_close(rp);
	open_rp();
	ck_assert(!replica_is_leader(rp));
	ck_assert_uint_eq(replica_term(rp), 1);
	ck_assert_uint_eq(replica_last_applied(rp), 1);
	start();
	ck_assert_uint_eq(replica_term(rp), 2);
	ck_assert_uint_eq(replica_last_index(rp), 2);
	ck_assert_uint_eq(replica_last_applied(rp), 2);
}
END_TEST

START_TEST(group_commit)
{
	uint64_t before, idx, first = 0;
	char key[32], val[32];

	start();
	before = store_commits(replica_store(rp));
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "k/%03d", i);
		snprintf(val, sizeof(val), "v%d", i);
		/* every 7th is a cas create-only on an existing key: fails */
		fsm_cmd_kv_set(&w, i % 7 == 6 ? "k/000" : key, (const uint8_t *)val, strlen(val), 0,
			       i % 7 == 6, 0);
		ck_assert_int_eq(
		    replica_propose(rp, w.buf, w.len, (void *)(uintptr_t)(i + 1), &idx), 0);
		if (i == 0)
			first = idx;
		ck_assert_uint_eq(idx, first + (uint64_t)i);
	}
	ck_assert(replica_has_pending(rp));
	/* Nothing is reported before the commit. */
	ck_assert_int_eq(n_applied, 0);
	ck_assert_uint_eq(get("k/000").n_entries, 0);

	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_uint_eq(store_commits(replica_store(rp)), before + 1); /* one transaction */
	ck_assert(!replica_has_pending(rp));
	ck_assert_int_eq(n_applied, 200);
	for (int i = 0; i < 200; i++) {
		ck_assert_uint_eq(applied_ud[i], (uintptr_t)(i + 1));
		ck_assert_uint_eq(applied_index[i], first + (uint64_t)i);
		ck_assert_int_eq(applied_res[i].code, 0);
		ck_assert(applied_res[i].ok == (i % 7 != 6));
	}
	ck_assert_int_eq(n_changes, 200 - 200 / 7);
	ck_assert_uint_eq(replica_last_applied(rp), first + 199);
	ck_assert_uint_eq(get("k/005").entries[0].modify_index, first + 5);
	ck_assert_uint_eq(get("k/000").entries[0].modify_index, first);

	/* An empty flush commits nothing. */
	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_uint_eq(store_commits(replica_store(rp)), before + 1);
}
END_TEST

/* Writes log entries straight into the store, as if the process crashed
 * after the log append and before applying (a multi-server follower's
 * state, or a torn single-voter sequence). */
static void append_unapplied(uint64_t index, uint64_t term, const uint8_t *cmd, size_t len)
{
	struct store *st = replica_store(rp);
	struct store_txn *txn;
	struct mp_writer e;
	uint8_t key[8];

	mp_writer_init(&e);
	replica_encode_entry(&e, term, RAFT_ENTRY_COMMAND, cmd, len);
	store_u64_to_be(index, key);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(store_put(txn, STORE_LOG, key, 8, e.buf, e.len), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	mp_writer_close(&e);
}

START_TEST(replay_unapplied_log)
{
	static const uint8_t junk[] = {0x92, 0x01, 0xc1};
	uint64_t base;

	start(); /* term 1, no-op at 1 */
	base = replica_last_index(rp);
	fsm_cmd_kv_set(&w, "r/a", (const uint8_t *)"A", 1, 3, false, 0);
	append_unapplied(base + 1, 1, w.buf, w.len);
	append_unapplied(base + 2, 1, junk, sizeof(junk)); /* malformed command */
	fsm_cmd_kv_set(&w, "r/b", (const uint8_t *)"B", 1, 0, false, 0);
	append_unapplied(base + 3, 1, w.buf, w.len);
	fsm_cmd_kv_delete(&w, "r/a", false, false, 0);
	append_unapplied(base + 4, 1, w.buf, w.len);
	fsm_cmd_kv_set(&w, "r/a", (const uint8_t *)"A2", 2, 0, false, 0);
	append_unapplied(base + 5, 1, w.buf, w.len);

	replica_close(rp);
	open_rp();
	/* Loaded, not yet applied. */
	ck_assert_uint_eq(replica_last_index(rp), base + 5);
	ck_assert_uint_eq(replica_last_applied(rp), base);
	ck_assert_uint_eq(get("r/b").n_entries, 0);

	start(); /* term 2: its no-op commits and applies everything before it */
	ck_assert_uint_eq(replica_term(rp), 2);
	ck_assert_uint_eq(replica_last_applied(rp), base + 6);
	struct fsm_kv_answer a = get("r/a");
	ck_assert_uint_eq(a.n_entries, 1);
	ck_assert_uint_eq(a.entries[0].create_index, base + 5); /* re-created after the delete */
	ck_assert_uint_eq(a.entries[0].value.len, 2);
	ck_assert_uint_eq(get("r/b").entries[0].modify_index, base + 3);
	ck_assert_int_eq(n_changes, 4);

	/* Replay happened once: a restart finds nothing left to apply. */
	replica_close(rp);
	n_changes = 0;
	open_rp();
	ck_assert_uint_eq(replica_last_applied(rp), base + 6);
	start();
	ck_assert_int_eq(n_changes, 0);
	ck_assert_uint_eq(get("r/a").entries[0].modify_index, base + 5);
}
END_TEST

START_TEST(unflushed_is_lost_not_acked)
{
	uint64_t idx;

	start();
	fsm_cmd_kv_set(&w, "gone", (const uint8_t *)"x", 1, 0, false, 0);
	ck_assert_int_eq(replica_propose(rp, w.buf, w.len, (void *)1, &idx), 0);
	replica_close(rp); /* "crash" before the group commit */
	open_rp();
	ck_assert_int_eq(n_applied, 0);
	ck_assert_uint_eq(replica_last_index(rp), idx - 1);
	start();
	ck_assert_uint_eq(get("gone").n_entries, 0);
}
END_TEST

START_TEST(map_grows_when_full)
{
	static uint8_t val[200 * 1024];
	char err[256], key[32];
	struct replica_config c = {.dir = sub, .map_size = 1u << 20, .server_id = "node-1"};
	uint64_t idx;

	/* Reopen with a 1 MiB map and write 16 MiB: the store must grow. */
	replica_close(rp);
	ck_assert_msg(replica_open(&c, on_applied, on_change, NULL, &rp, err, sizeof(err)) == 0,
		      "%s", err);
	start();
	memset(val, 'v', sizeof(val));
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < 10; i++) {
			snprintf(key, sizeof(key), "big/%d/%d", round, i);
			fsm_cmd_kv_set(&w, key, val, sizeof(val), 0, false, 0);
			ck_assert_int_eq(replica_propose(rp, w.buf, w.len, (void *)1, &idx), 0);
		}
		ck_assert_int_eq(replica_flush(rp), 0);
	}
	ck_assert_int_eq(n_applied, 80);
	for (int i = 0; i < 80; i++)
		ck_assert(applied_res[i].ok);
	ck_assert_uint_eq(get("big/7/9").entries[0].value.len, sizeof(val));
}
END_TEST

/* ---- a follower replica driven by hand ---- */

static int n_sent;
static struct proto_msg sent_msgs[16];
static struct arena sent_arena;

static void on_send(void *ctx, const char *address, const uint8_t *buf, size_t len)
{
	char err[128];
	(void)ctx;
	ck_assert_str_eq(address, "10.0.0.2:8300");
	ck_assert_int_lt(n_sent, 16);
	ck_assert_int_eq(proto_decode(buf, len, &sent_arena, &sent_msgs[n_sent], err, sizeof(err)),
			 0);
	n_sent++;
}

static void open_follower(void)
{
	char err[256];
	struct replica_config c = {.dir = sub,
				   .map_size = 64ull << 20,
				   .server_id = "n1",
				   .address = "10.0.0.1:8300",
				   .await_config = true};

	ck_assert_msg(replica_open(&c, on_applied, on_change, NULL, &rp, err, sizeof(err)) == 0,
		      "%s", err);
	replica_set_transport(rp, on_send, NULL);
	ck_assert_int_eq(replica_start(rp), 0);
}

/* An AppendEntries from leader n2 (term) with commands setting key=val
 * at prev+1.. (terms[i] for each). */
static void append(uint64_t term, uint64_t prev, uint64_t prev_term, uint64_t commit,
		   const uint64_t *terms, const char *const *vals, size_t n)
{
	struct proto_raft_rpc q = {0};
	struct proto_raft_entry e[8];
	static struct mp_writer cmds[8];

	q.kind = RAFT_MSG_APPEND;
	q.from = "n2";
	q.from_addr = "10.0.0.2:8300";
	q.to = "n1";
	q.term = term;
	q.prev_index = prev;
	q.prev_term = prev_term;
	q.commit = commit;
	for (size_t i = 0; i < n; i++) {
		mp_writer_init(&cmds[i]);
		fsm_cmd_kv_set(&cmds[i], "k", (const uint8_t *)vals[i], strlen(vals[i]), 0, false,
			       0);
		e[i] = (struct proto_raft_entry){
		    .index = prev + 1 + i, .term = terms[i], .type = RAFT_ENTRY_COMMAND};
		e[i].payload.ptr = cmds[i].buf;
		e[i].payload.len = cmds[i].len;
	}
	q.entries.v = e;
	q.entries.n = n;
	ck_assert_int_eq(replica_receive(rp, &q), 0);
	for (size_t i = 0; i < n; i++)
		mp_writer_close(&cmds[i]);
}

START_TEST(follower_appends_truncates_and_reloads)
{
	struct raft_config cfg = {.n = 3};
	const uint64_t t2[] = {2, 2, 2};
	const char *v1[] = {"a", "b", "c"};
	const uint64_t t3[] = {3};
	const char *v2[] = {"z"};

	replica_close(rp);
	test_rmtree(dir);
	test_tmpdir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/raft", dir);
	arena_init(&sent_arena, 0);
	n_sent = 0;
	open_follower();
	ck_assert(!replica_has_config(rp));
	for (unsigned i = 0; i < 3; i++) {
		snprintf(cfg.s[i].id, sizeof(cfg.s[i].id), "n%u", i + 1);
		snprintf(cfg.s[i].address, sizeof(cfg.s[i].address), "10.0.0.%u:8300", i + 1);
		cfg.s[i].voter = true;
	}
	ck_assert_int_eq(replica_bootstrap(rp, &cfg), 0);
	ck_assert_int_eq(replica_bootstrap(rp, &cfg), -EEXIST); /* never twice */
	ck_assert(replica_has_config(rp));

	/* Three entries of term 2, commit 2: nothing is acknowledged before
	 * the flush made them durable. */
	append(2, 1, 1, 2, t2, v1, 3);
	ck_assert_int_eq(n_sent, 0);
	ck_assert(replica_has_pending(rp));
	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_int_eq(n_sent, 1);
	ck_assert_int_eq(sent_msgs[0].u.raft_rpc.kind, RAFT_MSG_APPEND_REPLY);
	ck_assert_uint_eq(sent_msgs[0].u.raft_rpc.flags & 8u, 8u);
	ck_assert_uint_eq(sent_msgs[0].u.raft_rpc.match_index, 4);
	ck_assert_uint_eq(replica_last_applied(rp), 2);
	ck_assert_str_eq(replica_leader_addr(rp), "10.0.0.2:8300");

	/* A leader of term 3 overwrites entries 4 (uncommitted) with its own. */
	append(3, 3, 2, 3, t3, v2, 1);
	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_uint_eq(replica_last_index(rp), 4);
	ck_assert_uint_eq(replica_last_applied(rp), 3);
	struct fsm_kv_answer a = get("k");
	ck_assert_uint_eq(a.n_entries, 1);
	ck_assert_uint_eq(a.entries[0].value.len, 1);
	ck_assert_int_eq(a.entries[0].value.ptr[0], 'b');

	/* Restart: the log (with its terms) and the configuration reload. */
	replica_close(rp);
	open_follower();
	ck_assert(replica_has_config(rp));
	ck_assert_uint_eq(replica_last_index(rp), 4);
	ck_assert_uint_eq(replica_term(rp), 3);
	/* The entry at 4 is term 3's: a heartbeat naming 4/3 matches, and
	 * commit 4 applies "z". */
	append(3, 4, 3, 4, NULL, NULL, 0);
	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_uint_eq(replica_last_applied(rp), 4);
	a = get("k");
	ck_assert_int_eq(a.entries[0].value.ptr[0], 'z');
	arena_close(&sent_arena);
}
END_TEST

Suite *replica_suite(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("commit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, start_terms_persist);
	tcase_add_test(tc, group_commit);
	tcase_add_test(tc, replay_unapplied_log);
	tcase_add_test(tc, unflushed_is_lost_not_acked);
	tcase_add_test(tc, map_grows_when_full);
	tcase_add_test(tc, follower_appends_truncates_and_reloads);
	suite_add_tcase(s, tc);
	return s;
}
