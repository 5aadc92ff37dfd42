/* Snapshots: the archive format, log compaction in the store, archive and
 * restore through the log, and InstallSnapshot in chunks between real
 * replicas (LMDB in temporary directories, messages carried in process). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "clock.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "replica.h"
#include "snapshot.h"
#include "store.h"

#include <dirent.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_tmpdir(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(buf, len, "%s/cairn-snap-test-XXXXXX", base && *base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

static void test_rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d) {
		(void)unlink(path);
		return;
	}
	while ((e = readdir(d))) {
		char p[4096];
		struct stat sb;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
			test_rmtree(p);
		else
			(void)unlink(p);
	}
	closedir(d);
	(void)rmdir(path);
}

/* ---- the archive format -------------------------------------------------------- */

static void build_sample(struct snapshot_writer *w)
{
	struct snapshot_meta m = {.index = 42, .term = 7, .config_index = 3, .created_ms = 1000};

	m.config = (const uint8_t *)"n1 10.0.0.1:8300 1\n";
	m.config_len = strlen((const char *)m.config);
	ck_assert_int_eq(snapshot_writer_begin(w, &m), 0);
	ck_assert_int_eq(snapshot_writer_add(w, STORE_KV, "a", 1, "1", 1), 0);
	ck_assert_int_eq(snapshot_writer_add(w, STORE_KV, "b", 1, "", 0), 0);
	ck_assert_int_eq(snapshot_writer_add(w, STORE_INDEX, "kvs", 3, "12345678", 8), 0);
	ck_assert_int_eq(snapshot_writer_end(w), 0);
}

static int n_rec;
static char rec_keys[8][8];

static int collect(void *ctx, unsigned table, const uint8_t *key, size_t klen, const uint8_t *val,
		   size_t vlen)
{
	(void)ctx, (void)val, (void)vlen;
	ck_assert_int_lt(n_rec, 8);
	snprintf(rec_keys[n_rec], sizeof(rec_keys[0]), "%u:%.*s", table, (int)klen, key);
	n_rec++;
	return 0;
}

START_TEST(format_roundtrip)
{
	struct snapshot_writer w = {0};
	struct snapshot_meta m;
	const char *why;

	build_sample(&w);
	ck_assert_int_eq(snapshot_parse(w.buf, w.len, &m, &why), 0);
	ck_assert_uint_eq(m.index, 42);
	ck_assert_uint_eq(m.term, 7);
	ck_assert_uint_eq(m.config_index, 3);
	ck_assert_uint_eq(m.created_ms, 1000);
	ck_assert_uint_eq(m.records, 3);
	ck_assert_uint_eq(m.size, w.len);
	ck_assert_int_eq(memcmp(m.config, "n1 10.0.0.1:8300 1\n", m.config_len), 0);
	n_rec = 0;
	ck_assert_int_eq(snapshot_each(w.buf, w.len, collect, NULL), 0);
	ck_assert_int_eq(n_rec, 3);
	ck_assert_str_eq(rec_keys[0], "2:a");
	ck_assert_str_eq(rec_keys[1], "2:b");
	ck_assert_str_eq(rec_keys[2], "5:kvs");
	/* A CRC-32 as zlib computes it. */
	ck_assert_uint_eq(snapshot_crc32(0, "123456789", 9), 0xCBF43926u);
	snapshot_writer_free(&w);
}
END_TEST

START_TEST(format_refuses_corruption)
{
	struct snapshot_writer w = {0};
	struct snapshot_meta m;
	const char *why;

	build_sample(&w);
	/* Every single flipped byte and every truncation is refused. */
	for (size_t i = 0; i < w.len; i++) {
		w.buf[i] ^= 0x40;
		ck_assert_int_eq(snapshot_parse(w.buf, w.len, &m, &why), -EINVAL);
		ck_assert(*why);
		w.buf[i] ^= 0x40;
	}
	for (size_t n = 0; n < w.len; n++)
		ck_assert_int_eq(snapshot_parse(w.buf, n, &m, &why), -EINVAL);
	ck_assert_int_eq(snapshot_parse(w.buf, w.len, &m, &why), 0);
	ck_assert_int_eq(snapshot_parse((const uint8_t *)"hello", 5, &m, &why), -EINVAL);
	ck_assert_str_eq(why, "not a Cairn snapshot archive");
	snapshot_writer_free(&w);
}
END_TEST

/* ---- the core's InstallSnapshot, message by message ------------------------------ */

#define IMG "0123456789" /* the leader's archive: 10 bytes, sent 4 at a time */

struct cnode {
	struct raft r;
	struct raft_io io;
	struct raft_msg out[16]; /* sent, in order */
	int n_out;
	char recv[16];
	size_t recv_len;
	uint64_t recv_index;
	uint64_t installed; /* index passed to snapshot_install */
	uint64_t appended;
};

static uint64_t c_now(void *ctx)
{
	(void)ctx;
	return 5000;
}

static int c_vote(void *ctx, uint64_t t, const char *v)
{
	(void)ctx, (void)t, (void)v;
	return 0;
}

static int c_append(void *ctx, const struct raft_entry *e)
{
	((struct cnode *)ctx)->appended = e->index;
	return 0;
}

static int c_apply(void *ctx, uint64_t c)
{
	(void)ctx, (void)c;
	return 0;
}

static int c_truncate(void *ctx, uint64_t i)
{
	(void)ctx, (void)i;
	return 0;
}

static const char cfg_text[] = "L - 1\nF - 0\n";

static int c_send(void *ctx, const struct raft_msg *m)
{
	struct cnode *n = ctx;
	struct raft_msg *o = &n->out[n->n_out++];

	ck_assert_int_le(n->n_out, 16);
	static struct raft_entry ents[16][8];

	*o = *m;
	if (m->type == RAFT_MSG_APPEND && m->u.append.n_entries) {
		/* the host attaches the entries (no-ops here) */
		ck_assert_uint_le(m->u.append.n_entries, 8);
		for (uint64_t k = 0; k < m->u.append.n_entries; k++) {
			uint64_t idx = m->u.append.prev_index + 1 + k;
			ents[n->n_out - 1][k] = (struct raft_entry){
			    .index = idx, .term = raft_term_at(&n->r, idx), .type = RAFT_ENTRY_NOOP};
		}
		o->u.append.entries = ents[n->n_out - 1];
	}
	if (m->type == RAFT_MSG_SNAPSHOT) {
		uint64_t off = m->u.snapshot.offset <= 10 ? m->u.snapshot.offset : 0;
		size_t len = 10 - off < 4 ? 10 - off : 4;
		o->u.snapshot.offset = off;
		o->u.snapshot.last_index = 100;
		o->u.snapshot.last_term = 2;
		o->u.snapshot.data = (const uint8_t *)IMG + off;
		o->u.snapshot.len = len;
		o->u.snapshot.done = off + len == 10;
		o->u.snapshot.config = (const uint8_t *)cfg_text;
		o->u.snapshot.config_len = strlen(cfg_text);
	}
	return 0;
}

static int c_recv(void *ctx, const struct raft_msg *m, uint64_t *next)
{
	struct cnode *n = ctx;

	if (m->u.snapshot.offset == 0) {
		n->recv_len = 0;
		n->recv_index = m->u.snapshot.last_index;
	}
	*next = n->recv_len;
	if (m->u.snapshot.offset != n->recv_len || n->recv_index != m->u.snapshot.last_index)
		return 0;
	memcpy(n->recv + n->recv_len, m->u.snapshot.data, m->u.snapshot.len);
	n->recv_len += m->u.snapshot.len;
	*next = n->recv_len;
	return m->u.snapshot.done && n->recv_len == 10 && memcmp(n->recv, IMG, 10) == 0;
}

static int c_install(void *ctx, uint64_t index, uint64_t term)
{
	ck_assert_uint_eq(term, 2);
	((struct cnode *)ctx)->installed = index;
	return 0;
}

static void cnode_init(struct cnode *n, const char *id, const struct raft_boot *b)
{
	memset(n, 0, sizeof(*n));
	n->io = (struct raft_io){.ctx = n,
				 .persist_vote = c_vote,
				 .append = c_append,
				 .apply = c_apply,
				 .truncate = c_truncate,
				 .send = c_send,
				 .now_ms = c_now,
				 .snapshot_recv = c_recv,
				 .snapshot_install = c_install};
	ck_assert_int_eq(raft_init(&n->r, &n->io, id, b), 0);
}

/* Takes the last message a sent. */
static struct raft_msg last_of(struct cnode *a)
{
	ck_assert_int_gt(a->n_out, 0);
	return a->out[a->n_out - 1];
}

START_TEST(core_install_snapshot_chunks)
{
	static struct cnode L, F;
	uint64_t lterms[10];
	struct raft_msg m, chunk0;

	for (int i = 0; i < 10; i++)
		lterms[i] = 2;
	/* L: entries 91..100 of term 2 after a compaction at 90; the only
	 * voter, so it leads at once. F: an empty non-voter. */
	struct raft_boot lb = {.current_term = 2,
			       .last_index = 100,
			       .last_term = 2,
			       .last_applied = 100,
			       .base_index = 90,
			       .base_term = 1,
			       .terms = lterms};
	struct raft_boot fb = {.await_config = true};
	cnode_init(&L, "L", &lb);
	cnode_init(&F, "F", &fb);
	ck_assert_int_eq(raft_boot_config(&L.r, 95, (const uint8_t *)cfg_text, strlen(cfg_text)), 0);
	ck_assert_uint_eq(raft_term_at(&L.r, 90), 1);
	ck_assert_uint_eq(raft_term_at(&L.r, 89), 0); /* compacted */
	ck_assert_uint_eq(raft_term_at(&L.r, 91), 2);
	ck_assert_int_eq(raft_start(&L.r), 0);
	ck_assert_int_eq(raft_start(&F.r), 0);
	ck_assert_int_eq(L.r.role, RAFT_LEADER);
	ck_assert_int_eq(raft_persisted(&L.r, 101, 3), 0); /* its no-op */

	/* F rejects the first AppendEntries (its log is empty): the entries
	 * it needs are compacted, so chunk 0 of the snapshot goes out. */
	m = last_of(&L);
	ck_assert_int_eq(m.type, RAFT_MSG_APPEND);
	ck_assert_int_eq(raft_receive(&F.r, &m), 0);
	m = last_of(&F);
	ck_assert_int_eq(m.type, RAFT_MSG_APPEND_REPLY);
	ck_assert(!m.u.append_reply.success);
	ck_assert_int_eq(raft_receive(&L.r, &m), 0);
	chunk0 = last_of(&L);
	ck_assert_int_eq(chunk0.type, RAFT_MSG_SNAPSHOT);
	ck_assert_uint_eq(chunk0.u.snapshot.offset, 0);

	/* Chunk by chunk, the follower naming the next offset; a duplicate
	 * of chunk 0 and a heartbeat repeat change nothing. */
	ck_assert_int_eq(raft_receive(&F.r, &chunk0), 0);
	m = last_of(&F);
	ck_assert_int_eq(m.type, RAFT_MSG_SNAPSHOT_REPLY);
	ck_assert_uint_eq(m.u.snapshot_reply.next_offset, 4);
	ck_assert_int_eq(raft_receive(&F.r, &chunk0), 0); /* restarts at 0: same image */
	ck_assert_uint_eq(last_of(&F).u.snapshot_reply.next_offset, 4);
	ck_assert_int_eq(raft_receive(&L.r, &m), 0);
	m = last_of(&L);
	ck_assert_uint_eq(m.u.snapshot.offset, 4);
	ck_assert_int_eq(raft_receive(&F.r, &m), 0);
	ck_assert_int_eq(raft_receive(&F.r, &m), 0); /* duplicate of chunk 4 */
	ck_assert_uint_eq(last_of(&F).u.snapshot_reply.next_offset, 8);
	ck_assert_int_eq(raft_receive(&L.r, &F.out[F.n_out - 1]), 0);
	m = last_of(&L);
	ck_assert_uint_eq(m.u.snapshot.offset, 8);
	ck_assert(m.u.snapshot.done);

	/* The last chunk: installed, the log reset after it, acknowledged
	 * only once durable. */
	int before = F.n_out;
	ck_assert_int_eq(raft_receive(&F.r, &m), 0);
	ck_assert_uint_eq(F.installed, 100);
	ck_assert_uint_eq(F.r.base_index, 100);
	ck_assert_uint_eq(F.r.last_index, 100);
	ck_assert_uint_eq(F.r.commit_index, 100);
	ck_assert_uint_eq(F.r.config.n, 2);
	ck_assert_int_eq(F.n_out, before); /* nothing before it is durable */
	ck_assert_int_eq(raft_persisted(&F.r, 100, 2), 0);
	m = last_of(&F);
	ck_assert_int_eq(m.type, RAFT_MSG_APPEND_REPLY);
	ck_assert(m.u.append_reply.success);
	ck_assert_uint_eq(m.u.append_reply.match_index, 100);
	ck_assert_int_eq(raft_receive(&L.r, &m), 0);
	ck_assert(!L.r.prog[1].snapshot);
	ck_assert_uint_eq(L.r.prog[1].match_index, 100);
	/* Back to AppendEntries: the no-op at 101 follows the snapshot. */
	m = last_of(&L);
	ck_assert_int_eq(m.type, RAFT_MSG_APPEND);
	ck_assert_uint_eq(m.u.append.prev_index, 100);
	ck_assert_uint_eq(m.u.append.prev_term, 2);

	/* A late repeat of the last chunk is answered "have". */
	before = F.n_out;
	ck_assert_int_eq(raft_receive(&F.r, &L.out[L.n_out - 2]), 0);
	ck_assert_int_eq(F.n_out, before + 1);
	ck_assert(last_of(&F).u.snapshot_reply.have);
	ck_assert_uint_eq(F.installed, 100);

	/* Compaction bounds: only committed entries in the log. */
	ck_assert_int_eq(raft_compact(&L.r, 102), -EINVAL);
	ck_assert_int_eq(raft_compact(&L.r, 95), 0);
	ck_assert_uint_eq(raft_term_at(&L.r, 95), 2);
	ck_assert_uint_eq(raft_term_at(&L.r, 94), 0);
	ck_assert_uint_eq(raft_term_at(&L.r, 101), 3);
	raft_close(&L.r);
	raft_close(&F.r);
}
END_TEST

/* ---- one replica: compaction, archive, restore --------------------------------- */

static char dir[256], sub[300];
static struct replica *rp;
static struct arena ar;
static struct mp_writer w;
static int n_applied;
static struct fsm_result last_res;
static int n_changes;

static void on_applied(void *ctx, void *ud, uint64_t index, const struct fsm_result *res)
{
	(void)ctx, (void)ud, (void)index;
	n_applied++;
	last_res = *res;
}

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx, (void)space, (void)key, (void)klen;
	n_changes++;
}

static void open_single(void)
{
	char err[256];
	struct replica_config c = {.dir = sub,
				   .map_size = 64ull << 20,
				   .server_id = "node-1",
				   .snapshot_threshold = 10,
				   .trailing_logs = 3};

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
	open_single();
	ck_assert_int_eq(replica_start(rp), 0);
	ck_assert_int_eq(replica_flush(rp), 0);
}

static void teardown(void)
{
	replica_close(rp);
	mp_writer_close(&w);
	arena_close(&ar);
	test_rmtree(dir);
}

static void put_kv(struct replica *r, const char *key, const char *val)
{
	uint64_t idx;

	fsm_cmd_kv_set(&w, key, (const uint8_t *)val, strlen(val), 0, false, 0);
	ck_assert_int_eq(replica_propose(r, w.buf, w.len, (void *)1, &idx), 0);
	ck_assert_int_eq(replica_flush(r), 0);
}

/* The value of key in r's state ("" when absent). */
static const char *value_of(struct replica *r, const char *key)
{
	static char out[64];
	struct store_txn *txn;
	struct fsm_kv_answer a;

	ck_assert_int_eq(store_txn_begin(replica_store(r), false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	out[0] = '\0';
	if (a.n_entries)
		snprintf(out, sizeof(out), "%.*s", (int)a.entries[0].value.len,
			 (const char *)a.entries[0].value.ptr);
	store_txn_abort(txn);
	return out;
}

struct first_ctx {
	uint64_t first, n;
};

static int first_cb(void *ctx, struct store_val key, struct store_val val)
{
	struct first_ctx *f = ctx;

	(void)val;
	if (f->n++ == 0)
		ck_assert_int_eq(store_be_to_u64(key, &f->first), 0);
	return 0;
}

static struct first_ctx log_span(struct replica *r)
{
	struct store_txn *txn;
	struct first_ctx f = {0, 0};

	ck_assert_int_eq(store_txn_begin(replica_store(r), false, &txn), 0);
	ck_assert_int_eq(store_scan_from(txn, STORE_LOG, NULL, 0, first_cb, &f), 0);
	store_txn_abort(txn);
	return f;
}

START_TEST(compaction_deletes_old_entries_and_reloads)
{
	char key[16], val[16];

	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		snprintf(val, sizeof(val), "v%d", i);
		put_kv(rp, key, val);
	}
	/* 41 entries (the no-op first): snapshots at 10, 20, 30, 40, each
	 * keeping 3 entries behind it. */
	ck_assert_uint_eq(replica_last_index(rp), 41);
	ck_assert_uint_eq(replica_log_base(rp), 37);
	struct first_ctx f = log_span(rp);
	ck_assert_uint_eq(f.first, 38);
	ck_assert_uint_eq(f.n, 4);

	replica_close(rp);
	open_single();
	ck_assert_uint_eq(replica_last_index(rp), 41);
	ck_assert_uint_eq(replica_last_applied(rp), 41);
	ck_assert_uint_eq(replica_log_base(rp), 37);
	ck_assert_str_eq(value_of(rp, "k00"), "v0");
	ck_assert_str_eq(value_of(rp, "k39"), "v39");
	ck_assert_int_eq(replica_start(rp), 0);
	ck_assert_int_eq(replica_flush(rp), 0);
	put_kv(rp, "after", "restart");
	ck_assert_str_eq(value_of(rp, "after"), "restart");
	ck_assert_uint_eq(replica_term(rp), 2);
}
END_TEST

START_TEST(archive_and_restore_through_the_log)
{
	struct snapshot_writer a = {0};
	struct snapshot_meta m;
	uint64_t idx;
	const char *why = "";

	put_kv(rp, "keep", "1");
	put_kv(rp, "change", "old");
	ck_assert_int_eq(replica_snapshot_archive(rp, &a, &m), 0);
	ck_assert_uint_eq(m.index, replica_last_applied(rp));
	ck_assert_uint_eq(m.term, 1);
	ck_assert_uint_ge(m.records, 2);

	put_kv(rp, "change", "new");
	put_kv(rp, "added", "x");
	ck_assert_str_eq(value_of(rp, "change"), "new");

	/* A corrupted archive is refused before anything is proposed. */
	a.buf[a.len / 2] ^= 1;
	ck_assert_int_eq(replica_propose_restore(rp, a.buf, a.len, (void *)1, &idx, &why), -EINVAL);
	ck_assert(strstr(why, "checksum"));
	a.buf[a.len / 2] ^= 1;

	n_applied = 0;
	n_changes = 0;
	ck_assert_int_eq(replica_propose_restore(rp, a.buf, a.len, (void *)1, &idx, &why), 0);
	ck_assert_int_eq(replica_flush(rp), 0);
	ck_assert_int_eq(n_applied, 1);
	ck_assert_int_eq(last_res.code, 0);
	ck_assert(last_res.ok);
	ck_assert_str_eq(value_of(rp, "keep"), "1");
	ck_assert_str_eq(value_of(rp, "change"), "old");
	ck_assert_str_eq(value_of(rp, "added"), "");
	ck_assert_int_gt(n_changes, 3); /* old and new keys woke their watchers */

	/* The restored state's table indexes do not go back: the KV
	 * table's index (what a read of a missing key shows) is the
	 * restore's. */
	struct store_txn *txn;
	struct fsm_kv_answer ans;
	ck_assert_int_eq(store_txn_begin(replica_store(rp), false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, "missing", &ans), 0);
	ck_assert_uint_eq(ans.n_entries, 0);
	ck_assert_uint_ge(ans.index, idx);
	store_txn_abort(txn);

	/* Survives a restart (it is in the log and in the state). */
	replica_close(rp);
	open_single();
	ck_assert_str_eq(value_of(rp, "change"), "old");
	ck_assert_str_eq(value_of(rp, "added"), "");
	snapshot_writer_free(&a);
}
END_TEST

/* ---- InstallSnapshot between replicas ------------------------------------------ */

#define N_REP 3
static struct replica *reps[N_REP];
static char rdirs[N_REP][300];
static uint64_t fake_now = 1000;
static uint64_t fake_clock(void) { return fake_now; }

struct qmsg {
	unsigned to;
	uint8_t *buf;
	size_t len;
};
static struct qmsg queue[4096];
static size_t n_queue;
static bool cut[N_REP]; /* messages to or from it are lost */
static unsigned n_snapshot_chunks;

static void on_send_rep(void *ctx, const char *address, const uint8_t *buf, size_t len)
{
	unsigned from = (unsigned)(uintptr_t)ctx, to;

	ck_assert_int_eq(sscanf(address, "10.0.0.%u:8300", &to), 1);
	to -= 1;
	if (cut[from] || cut[to] || n_queue == 4096)
		return;
	queue[n_queue].to = to;
	queue[n_queue].buf = malloc(len);
	ck_assert_ptr_nonnull(queue[n_queue].buf);
	memcpy(queue[n_queue].buf, buf, len);
	queue[n_queue].len = len;
	n_queue++;
}

/* Delivers what is queued (and what that triggers), flushing after each. */
static void pump(void)
{
	for (int round = 0; round < 1000 && n_queue; round++) {
		struct qmsg q = queue[0];
		struct proto_msg m;
		char err[128];
		struct arena a;

		memmove(queue, queue + 1, (n_queue - 1) * sizeof(*queue));
		n_queue--;
		arena_init(&a, 0);
		ck_assert_int_eq(proto_decode(q.buf, q.len, &a, &m, err, sizeof(err)), 0);
		if (!cut[q.to]) {
			if (m.type == PROTO_RAFT_RPC) {
				ck_assert_int_eq(replica_receive(reps[q.to], &m.u.raft_rpc), 0);
			} else {
				ck_assert_int_eq(m.type, PROTO_RAFT_SNAPSHOT);
				if (m.u.raft_snapshot.kind == RAFT_MSG_SNAPSHOT)
					n_snapshot_chunks++;
				ck_assert_int_eq(replica_receive_snapshot(reps[q.to], &m.u.raft_snapshot),
						 0);
			}
			ck_assert_int_eq(replica_flush(reps[q.to]), 0);
		}
		arena_close(&a);
		free(q.buf);
	}
}

/* Lets a background archive copy finish (the fd turns readable) and
 * hands it over. */
static void finish_copies(void)
{
	for (unsigned i = 0; i < N_REP; i++) {
		if (!replica_snapshot_busy(reps[i]))
			continue;
		struct pollfd pfd = {.fd = replica_snapshot_fd(reps[i]), .events = POLLIN};
		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		replica_snapshot_poll(reps[i]);
		ck_assert(!replica_snapshot_busy(reps[i]));
	}
}

static void tick_all(uint64_t ms)
{
	finish_copies();
	fake_now += ms;
	for (unsigned i = 0; i < N_REP; i++) {
		if (cut[i])
			continue;
		ck_assert_int_eq(replica_tick(reps[i]), 0);
		ck_assert_int_eq(replica_flush(reps[i]), 0);
	}
	pump();
}

static void open_rep(unsigned i)
{
	char err[256], id[8], addr[32];
	struct replica_config c = {.dir = rdirs[i],
				   .map_size = 64ull << 20,
				   .server_id = id,
				   .address = addr,
				   .await_config = true,
				   .snapshot_threshold = 10,
				   .trailing_logs = 3};

	snprintf(id, sizeof(id), "n%u", i + 1);
	snprintf(addr, sizeof(addr), "10.0.0.%u:8300", i + 1);
	ck_assert_msg(replica_open(&c, NULL, NULL, NULL, &reps[i], err, sizeof(err)) == 0, "%s",
		      err);
	replica_set_transport(reps[i], on_send_rep, (void *)(uintptr_t)i);
	ck_assert_int_eq(replica_start(reps[i]), 0);
}

static int leader_of(void)
{
	for (unsigned i = 0; i < N_REP; i++)
		if (!cut[i] && replica_is_leader(reps[i]))
			return (int)i;
	return -1;
}

START_TEST(follower_catches_up_through_install_snapshot)
{
	struct raft_config cfg = {.n = N_REP};
	char key[16];
	static char big[20001];
	int l = -1;

	clock_now_ms = fake_clock;
	memset(big, 'x', sizeof(big) - 1);
	for (unsigned i = 0; i < N_REP; i++) {
		snprintf(cfg.s[i].id, sizeof(cfg.s[i].id), "n%u", i + 1);
		snprintf(cfg.s[i].address, sizeof(cfg.s[i].address), "10.0.0.%u:8300", i + 1);
		cfg.s[i].voter = true;
	}
	for (unsigned i = 0; i < N_REP; i++) {
		snprintf(rdirs[i], sizeof(rdirs[i]), "%s/r%u", dir, i);
		open_rep(i);
		ck_assert_int_eq(replica_bootstrap(reps[i], &cfg), 0);
	}
	/* n3 is down while the others elect a leader and write 40 values
	 * of 20 KB: the log is compacted past everything n3 has. */
	cut[2] = true;
	for (int t = 0; t < 100 && (l = leader_of()) < 0; t++)
		tick_all(100);
	ck_assert_int_ge(l, 0);
	for (int i = 0; i < 40; i++) {
		uint64_t idx;
		snprintf(key, sizeof(key), "k%02d", i);
		big[0] = (char)('a' + i % 26);
		fsm_cmd_kv_set(&w, key, (const uint8_t *)big, sizeof(big) - 1, 0, false, 0);
		ck_assert_int_eq(replica_propose(reps[l], w.buf, w.len, NULL, &idx), 0);
		ck_assert_int_eq(replica_flush(reps[l]), 0);
		pump();
	}
	for (int t = 0; t < 5; t++)
		tick_all(50);
	ck_assert_uint_gt(replica_log_base(reps[l]), replica_last_index(reps[2]));

	/* n3 comes back: AppendEntries cannot reach it, so it gets the
	 * snapshot (over 800 KB: several 256 KiB chunks), installs it and
	 * follows the log after it. */
	cut[2] = false;
	for (int t = 0; t < 50 && replica_last_applied(reps[2]) < replica_last_applied(reps[l]);
	     t++)
		tick_all(50);
	ck_assert_uint_eq(replica_last_applied(reps[2]), replica_last_applied(reps[l]));
	ck_assert_uint_ge(n_snapshot_chunks, 4);
	ck_assert_uint_gt(replica_log_base(reps[2]), 3);
	ck_assert_str_eq(value_of(reps[2], "k00"), value_of(reps[l], "k00"));
	ck_assert_str_eq(value_of(reps[2], "k39"), value_of(reps[l], "k39"));
	/* It takes part in commitment again: the leader's next write
	 * reaches it through AppendEntries. */
	put_kv(reps[l], "later", "yes");
	pump();
	for (int t = 0; t < 10 && replica_last_applied(reps[2]) < replica_last_applied(reps[l]);
	     t++)
		tick_all(50);
	ck_assert_str_eq(value_of(reps[2], "later"), "yes");

	/* The install survives a restart of n3. */
	replica_close(reps[2]);
	open_rep(2);
	ck_assert_str_eq(value_of(reps[2], "later"), "yes");
	ck_assert_str_eq(value_of(reps[2], "k39"), value_of(reps[l], "k39"));
	ck_assert_uint_eq(replica_last_index(reps[2]), replica_last_index(reps[l]));

	for (unsigned i = 0; i < N_REP; i++)
		replica_close(reps[i]);
	for (size_t i = 0; i < n_queue; i++)
		free(queue[i].buf);
	n_queue = 0;
}
END_TEST

Suite *snapshot_suite(void);

Suite *snapshot_suite(void)
{
	Suite *s = suite_create("snapshot");
	TCase *tf = tcase_create("format");
	TCase *tc = tcase_create("replica");

	tcase_add_test(tf, format_roundtrip);
	tcase_add_test(tf, format_refuses_corruption);
	tcase_add_test(tf, core_install_snapshot_chunks);
	suite_add_tcase(s, tf);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, compaction_deletes_old_entries_and_reloads);
	tcase_add_test(tc, archive_and_restore_through_the_log);
	tcase_add_test(tc, follower_catches_up_through_install_snapshot);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(snapshot_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
