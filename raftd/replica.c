/* One server's replica: Raft core + store + state machine, group commit. */
#include "replica.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "rpc.h"
#include "snapshot.h"
#include "store.h"

#define META_TERM "current_term"
#define META_VOTE "voted_for"
#define META_APPLIED "last_applied"
/* Snapshots and compaction: the term of last_applied and the
 * configuration in force there (written as entries are applied, so a read
 * transaction sees them consistent with the tables), where the log now
 * starts, and where the last local snapshot was taken. */
#define META_APPLIED_TERM "applied_term"
#define META_APPLIED_CFG "applied_config"
#define META_APPLIED_CFG_INDEX "applied_config_index"
#define META_LOG_BASE "log_base"
#define META_LOG_BASE_TERM "log_base_term"
#define META_SNAP_INDEX "snapshot_index"

struct pending {
	uint64_t index;
	size_t off, len; /* encoded log value in rp->batch */
};

/* A proposal waiting for its entry to be committed and applied. */
struct outstanding {
	uint64_t index, term;
	void *ud;
	struct fsm_result res;
	bool done; /* applied in the flush now running (res valid) */
};

/* An encoded message waiting for the end of the flush. */
struct outmsg {
	char addr[RAFT_ADDR_MAX + 1];
	uint8_t *buf;
	size_t len;
};

#define BOOK_MAX 32 /* id -> address entries remembered from peers */

#define BG_CFG_MAX (RAFT_MAX_SERVERS * (RAFT_ID_MAX + RAFT_ADDR_MAX + 8))

enum bg_state { BG_IDLE, BG_RUNNING, BG_JOINED };

/* An archive copied by a thread from its own LMDB read transaction. The
 * loop thread owns everything but w, meta and rc while it runs. */
struct bg_archive {
	enum bg_state state;
	pthread_t th;
	atomic_bool done;
	int efd; /* eventfd: readable once the thread finished */
	struct store *st;
	uint8_t cfg[BG_CFG_MAX]; /* configuration for data from before snapshots */
	size_t cfg_len;
	struct snapshot_writer w; /* the result */
	struct snapshot_meta meta;
	int rc;
	bool for_install;	  /* the leader wants it for InstallSnapshot */
	struct rpc_req **waiting; /* SNAPSHOT_SAVE requests this copy answers */
	size_t n_waiting, cap_waiting;
	struct rpc_req **queued; /* ...and those that arrived after it began */
	size_t n_queued, cap_queued;
};

struct replica {
	struct store *st;
	struct raft raft;
	enum raft_role logged_role; /* role and term last logged (note_role) */
	uint64_t logged_term;
	struct raft_io io;
	replica_applied_fn applied_fn;
	fsm_change_fn change_fn;
	void *ctx;
	uint64_t last_applied;
	bool failed;
	struct store_txn *txn; /* the flush's write transaction, while open */
	struct pending *pend;  /* proposals since the last flush, index order */
	size_t n_pend, cap_pend;
	struct mp_writer batch;	  /* encoded log values of pend */
	struct mp_writer changes; /* [space u8][len u16 BE][key] per change */
	struct mp_writer scratch;
	struct outstanding *out; /* proposals in index order */
	size_t n_out, cap_out;
	struct outmsg *msgs; /* messages to send after the flush */
	size_t n_msgs, cap_msgs;
	uint64_t disk_last;	/* last log index written to the store */
	uint64_t trunc_from;	/* delete store entries from here at the flush, 0: none */
	uint64_t commit_target; /* apply up to here at the flush */
	char address[RAFT_ADDR_MAX + 1];
	char peers_json[4200]; /* <dir>/peers.json while a recovery is pending, else "" */
	replica_send_fn send_fn;
	void *send_ctx;
	struct {
		char id[RAFT_ID_MAX + 1];
		char addr[RAFT_ADDR_MAX + 1];
	} book[BOOK_MAX]; /* addresses learnt from peers' messages */
	unsigned n_book, book_next;
	/* compaction */
	uint64_t snap_threshold, trailing;
	uint64_t snap_index;	  /* last local snapshot point */
	uint64_t compact_to;	  /* flush: entries up to here deleted in its txn */
	struct bg_archive bg; /* archive being copied off the loop thread */
	/* InstallSnapshot, leader side: the archive chunks are cut from */
	struct snapshot_writer img;
	struct snapshot_meta img_meta;
	bool have_img;
	/* InstallSnapshot, follower side: the archive being received */
	uint8_t *recv;
	size_t recv_len, recv_cap;
	uint64_t recv_index, recv_term;
	bool installing; /* the received archive replaces everything at the next flush */
	uint64_t install_index, install_term;
};

void replica_encode_entry(struct mp_writer *w, uint64_t term, unsigned type, const uint8_t *payload,
			  size_t len)
{
	mp_writer_reset(w);
	mp_write_array(w, 3);
	mp_write_u64(w, term);
	mp_write_u64(w, type);
	if (type == RAFT_ENTRY_NOOP && len == 0)
		mp_write_nil(w);
	else
		mp_write_bin(w, payload, len);
}

/* ---- raft io ------------------------------------------------------------- */

static int io_persist_vote(void *ctx, uint64_t term, const char *voted_for)
{
	struct replica *rp = ctx;
	struct store_txn *txn;
	int rc;

	if (rp->txn)
		return -EINVAL; /* never inside the flush (one write txn at a time) */
	rc = store_txn_begin(rp->st, true, &txn);
	if (rc < 0)
		return rc;
	rc = store_put_u64(txn, STORE_META, META_TERM, term);
	if (rc == 0)
		rc = store_put(txn, STORE_META, META_VOTE, strlen(META_VOTE), voted_for,
			       strlen(voted_for));
	if (rc < 0) {
		store_txn_abort(txn);
		return rc;
	}
	return store_txn_commit(txn);
}

static int io_append(void *ctx, const struct raft_entry *e)
{
	struct replica *rp = ctx;
	struct pending *p;
	size_t off = rp->batch.len;

	if (rp->n_pend == rp->cap_pend) {
		size_t cap = rp->cap_pend ? rp->cap_pend * 2 : 64;
		p = realloc(rp->pend, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		rp->pend = p;
		rp->cap_pend = cap;
	}
	replica_encode_entry(&rp->scratch, e->term, e->type, e->payload, e->len);
	if (rp->scratch.err)
		return rp->scratch.err;
	mp_write_raw(&rp->batch, rp->scratch.buf, rp->scratch.len);
	if (rp->batch.err) {
		rp->batch.err = 0;
		rp->batch.len = off;
		return -ENOMEM;
	}
	p = &rp->pend[rp->n_pend++];
	memset(p, 0, sizeof(*p));
	p->index = e->index;
	p->off = off;
	p->len = rp->scratch.len;
	return 0;
}

static void record_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	struct replica *rp = ctx;
	uint8_t hdr[3] = {(uint8_t)space, (uint8_t)(klen >> 8), (uint8_t)klen};

	/* Keys are at most STORE_KEY_MAX bytes: two length bytes suffice. */
	mp_write_raw(&rp->changes, hdr, sizeof(hdr));
	mp_write_raw(&rp->changes, key, klen);
}

static struct pending *find_pending(struct replica *rp, uint64_t index)
{
	if (!rp->n_pend || index < rp->pend[0].index)
		return NULL;
	uint64_t i = index - rp->pend[0].index;
	return i < rp->n_pend ? &rp->pend[i] : NULL;
}

/* Parses a stored log value [term, type, payload]. */
static int parse_entry(const void *buf, size_t len, uint64_t *term, uint64_t *type,
		       const uint8_t **payload, size_t *plen)
{
	struct mp_reader r;

	mp_reader_init(&r, buf, len);
	if (mp_read_array(&r) != 3)
		return CAIRN_E_STORE;
	*term = mp_read_u64(&r);
	*type = mp_read_u64(&r);
	if (mp_read_nil(&r))
		*payload = NULL, *plen = 0;
	else
		*payload = mp_read_bin(&r, plen);
	return mp_reader_done(&r) ? 0 : CAIRN_E_STORE;
}

/* Reads entry index from the batch or, through txn, the store. */
static int read_entry(struct replica *rp, struct store_txn *txn, uint64_t index, uint64_t *term,
		      uint64_t *type, const uint8_t **payload, size_t *plen)
{
	struct pending *p = find_pending(rp, index);
	struct store_val v;
	uint8_t key[8];
	int rc;

	if (p)
		return parse_entry(rp->batch.buf + p->off, p->len, term, type, payload, plen);
	store_u64_to_be(index, key);
	rc = store_get(txn, STORE_LOG, key, sizeof(key), &v);
	if (rc < 0)
		return rc == -ENOENT ? CAIRN_E_STORE : rc;
	return parse_entry(v.ptr, v.len, term, type, payload, plen);
}

/* ---- snapshots: state copy and replacement ----------------------------- */

/* A key of a watched table changed (a restore or an install replaces
 * every table: each old and new key is reported, so blocking queries on
 * any of them wake up). */
static void note_table_key(struct replica *rp, unsigned table, const void *key, size_t klen)
{
	switch (table) {
	case STORE_KV:
		record_change(rp, FSM_SPACE_KV, key, klen);
		break;
	case STORE_NODES:
		record_change(rp, FSM_SPACE_NODES, key, klen);
		break;
	case STORE_INDEX: /* catalog table indexes and "sessions" */
		record_change(rp, FSM_SPACE_CATALOG, key, klen);
		record_change(rp, FSM_SPACE_SESSIONS, key, klen);
		break;
	default:
		break;
	}
}

struct restore_ctx {
	struct replica *rp;
	struct store_txn *txn;
	unsigned table;
	uint64_t bump; /* raise every table index to at least this */
};

static int note_old_key(void *ctx, struct store_val key, struct store_val val)
{
	struct restore_ctx *c = ctx;

	(void)val;
	note_table_key(c->rp, c->table, key.ptr, key.len);
	return 0;
}

static int restore_record(void *ctx, unsigned table, const uint8_t *key, size_t klen,
			  const uint8_t *val, size_t vlen)
{
	struct restore_ctx *c = ctx;
	int rc;

	if (!store_is_state(table))
		return 0; /* a table this version does not have (refused before
			   * proposing; skipped alike everywhere otherwise) */
	if (table == STORE_INDEX && c->bump && vlen == 8) {
		uint64_t v;
		uint8_t b[8];
		(void)store_be_to_u64((struct store_val){val, vlen}, &v);
		if (v < c->bump) {
			/* Indexes never go back: blocking queries see the
			 * restore as a change. */
			store_u64_to_be(c->bump, b);
			rc = store_put(c->txn, STORE_INDEX, key, klen, b, sizeof(b));
			if (rc == 0)
				note_table_key(c->rp, table, key, klen);
			return rc;
		}
	}
	rc = store_put(c->txn, (enum store_table)table, key, klen, val, vlen);
	if (rc == 0)
		note_table_key(c->rp, table, key, klen);
	return rc;
}

/* Replaces every state table with the archive's records, in txn. With
 * bump, table indexes below it are raised to it. */
static int restore_state(struct replica *rp, struct store_txn *txn, const uint8_t *buf, size_t len,
			 uint64_t bump)
{
	struct restore_ctx c = {rp, txn, 0, bump};
	int rc = 0;

	for (unsigned t = 0; t < STORE_N_TABLES && rc == 0; t++) {
		if (!store_is_state(t))
			continue;
		c.table = t;
		rc = store_scan_prefix(txn, (enum store_table)t, NULL, 0, note_old_key, &c);
		if (rc == 0)
			rc = store_clear(txn, (enum store_table)t);
	}
	if (rc == 0)
		rc = snapshot_each(buf, len, restore_record, &c);
	if (rc == 0 && rp->changes.err)
		rc = rp->changes.err;
	return rc;
}

/* Applies entries last_applied+1 .. commit_index inside the flush's write
 * transaction, reading them back from the log (which covers both this
 * batch and entries a crash left unapplied). */
static int apply_now(struct replica *rp, uint64_t commit_index)
{
	uint64_t i, last_term = 0;
	int rc = 0;

	for (i = rp->last_applied + 1; i <= commit_index; i++) {
		struct fsm_result res = {0};
		uint64_t term, type;
		const uint8_t *payload;
		size_t plen;

		rc = read_entry(rp, rp->txn, i, &term, &type, &payload, &plen);
		if (rc < 0)
			return rc;
		last_term = term;
		if (type == RAFT_ENTRY_COMMAND) {
			rc = fsm_apply(rp->txn, i, payload, plen, &res, record_change, rp);
			if (rc < 0)
				return rc;
			if (rp->changes.err)
				return rp->changes.err;
		} else if (type == RAFT_ENTRY_NOOP || type == RAFT_ENTRY_CONFIG) {
			res.ok = true;
			if (type == RAFT_ENTRY_CONFIG) {
				/* The configuration as of last_applied, for
				 * snapshots taken from a read transaction. */
				rc = store_put(rp->txn, STORE_META, META_APPLIED_CFG,
					       strlen(META_APPLIED_CFG), payload, plen);
				if (rc == 0)
					rc = store_put_u64(rp->txn, STORE_META,
							   META_APPLIED_CFG_INDEX, i);
				if (rc < 0)
					return rc;
			}
		} else if (type == REPLICA_ENTRY_RESTORE) {
			struct snapshot_meta sm;
			const char *why;
			/* Checked before it was proposed; the same bytes give
			 * the same verdict on every server. */
			if (snapshot_parse(payload, plen, &sm, &why) < 0) {
				res.code = CAIRN_E_BADREQ;
				(void)why;
			} else {
				rc = restore_state(rp, rp->txn, payload, plen, i);
				if (rc < 0)
					return rc;
				res.ok = true;
			}
		} else {
			res.code = CAIRN_E_PROTO; /* an entry type from the future */
		}
		/* Proposals: ours if the committed entry has the term we
		 * proposed it in; otherwise another leader's entry won. */
		for (size_t k = 0; k < rp->n_out; k++) {
			struct outstanding *o = &rp->out[k];
			if (o->index > i)
				break;
			if (o->index == i && !o->done) {
				o->done = true;
				if (o->term == term) {
					o->res = res;
				} else {
					o->res.code = CAIRN_E_NOLEADER;
					o->res.ok = false;
				}
			}
		}
	}
	rc = store_put_u64(rp->txn, STORE_META, META_APPLIED, commit_index);
	if (rc == 0 && last_term)
		rc = store_put_u64(rp->txn, STORE_META, META_APPLIED_TERM, last_term);
	if (rc < 0)
		return rc;
	rp->last_applied = commit_index;
	return 0;
}

static int io_apply(void *ctx, uint64_t commit_index)
{
	struct replica *rp = ctx;

	if (commit_index > rp->commit_target)
		rp->commit_target = commit_index;
	/* Outside the flush the entries are applied at the next flush, in
	 * the transaction that also writes them. */
	if (!rp->txn)
		return 0;
	return apply_now(rp, rp->commit_target);
}

/* Reports the outcome of outstanding proposals from k on as failed with
 * code (their entries were overwritten or the store failed). */
static void fail_outstanding_from(struct replica *rp, size_t k, int code)
{
	size_t n = rp->n_out;

	rp->n_out = k;
	for (size_t i = k; i < n; i++) {
		struct fsm_result res = {.code = code, .ok = false};
		if (rp->applied_fn)
			rp->applied_fn(rp->ctx, rp->out[i].ud, rp->out[i].index, &res);
	}
}

void replica_fail_outstanding(struct replica *rp, int code)
{
	if (rp)
		fail_outstanding_from(rp, 0, code);
}

static int io_truncate(void *ctx, uint64_t index)
{
	struct replica *rp = ctx;
	size_t k;

	if (rp->txn)
		return -EINVAL;
	/* The batch: drop entries from index on. */
	for (k = 0; k < rp->n_pend && rp->pend[k].index < index; k++)
		;
	if (k < rp->n_pend) {
		rp->batch.len = rp->pend[k].off;
		rp->n_pend = k;
	}
	/* The store: delete at the next flush, before the new entries. */
	if (index <= rp->disk_last && (rp->trunc_from == 0 || index < rp->trunc_from))
		rp->trunc_from = index;
	/* Proposals there will never commit. */
	for (k = 0; k < rp->n_out && rp->out[k].index < index; k++)
		;
	fail_outstanding_from(rp, k, CAIRN_E_NOLEADER);
	return 0;
}

static const char *book_find(const struct replica *rp, const char *id)
{
	int i = raft_config_find(&rp->raft.config, id);

	if (i >= 0 && rp->raft.config.s[i].address[0])
		return rp->raft.config.s[i].address;
	for (unsigned k = 0; k < rp->n_book; k++)
		if (strcmp(rp->book[k].id, id) == 0)
			return rp->book[k].addr;
	return NULL;
}

static void book_note(struct replica *rp, const char *id, const char *addr)
{
	if (!id || !*id || !addr || !*addr || strlen(id) > RAFT_ID_MAX ||
	    strlen(addr) > RAFT_ADDR_MAX)
		return;
	for (unsigned k = 0; k < rp->n_book; k++) {
		if (strcmp(rp->book[k].id, id) == 0) {
			strcpy(rp->book[k].addr, addr);
			return;
		}
	}
	unsigned k = rp->n_book < BOOK_MAX ? rp->n_book++ : rp->book_next++ % BOOK_MAX;
	strcpy(rp->book[k].id, id);
	strcpy(rp->book[k].addr, addr);
}

/* ---- InstallSnapshot ------------------------------------------------------ */

struct copy_ctx {
	struct snapshot_writer *w;
	unsigned table;
};

static int copy_record(void *ctx, struct store_val key, struct store_val val)
{
	struct copy_ctx *c = ctx;

	return snapshot_writer_add(c->w, c->table, key.ptr, key.len, val.ptr, val.len);
}

/* Builds an archive from one read transaction of its own (safe off the
 * loop thread): a frozen view of the tables and of the metadata that says
 * which index, term and configuration they reflect. cfg is the
 * configuration to record when the store has none yet (data from before
 * snapshots). */
static int archive_build(struct store *st, const uint8_t *cfg, size_t cfg_len,
			 struct snapshot_writer *w, struct snapshot_meta *out)
{
	struct snapshot_meta m;
	struct store_txn *txn;
	struct store_val v;
	const char *why;
	int rc;

	memset(&m, 0, sizeof(m));
	rc = store_txn_begin_reader(st, &txn);
	if (rc < 0)
		return rc;
	rc = store_get_u64(txn, STORE_META, META_APPLIED, &m.index);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_APPLIED_TERM, &m.term);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_APPLIED_CFG_INDEX, &m.config_index);
	if (rc == 0 && m.term == 0 && m.index > 0) {
		/* Not recorded yet: the applied entry's own term. */
		uint8_t key[8];
		struct mp_reader r;
		store_u64_to_be(m.index, key);
		rc = store_get(txn, STORE_LOG, key, sizeof(key), &v);
		if (rc == 0) {
			mp_reader_init(&r, v.ptr, v.len);
			if (mp_read_array(&r) == 3)
				m.term = mp_read_u64(&r);
			if (r.err)
				rc = CAIRN_E_STORE;
		}
	}
	if (rc == 0) {
		rc = store_get(txn, STORE_META, META_APPLIED_CFG, strlen(META_APPLIED_CFG), &v);
		if (rc == 0) {
			m.config = v.ptr;
			m.config_len = v.len;
		} else if (rc == -ENOENT) {
			m.config = cfg;
			m.config_len = cfg_len;
			rc = 0;
		}
	}
	m.created_ms = clock_wall_ms();
	if (rc == 0)
		rc = snapshot_writer_begin(w, &m);
	for (unsigned t = 0; rc == 0 && t < STORE_N_TABLES; t++) {
		struct copy_ctx c = {w, t};
		if (store_is_state(t))
			rc = store_scan_prefix(txn, (enum store_table)t, NULL, 0, copy_record, &c);
	}
	if (rc == 0)
		rc = snapshot_writer_end(w);
	store_txn_abort(txn);
	if (rc == 0)
		rc = snapshot_parse(w->buf, w->len, out, &why);
	return rc;
}

/* The configuration in force as of last_applied, for archive_build. */
static size_t fallback_config(const struct replica *rp, uint8_t *buf, size_t cap)
{
	const struct raft_config *c =
	    rp->raft.config_index <= rp->last_applied ? &rp->raft.config : &rp->raft.prev_config;
	size_t n = raft_config_encode(c, buf, cap);

	return n <= cap ? n : 0;
}

int replica_snapshot_archive(struct replica *rp, struct snapshot_writer *w,
			     struct snapshot_meta *out)
{
	uint8_t cfg[BG_CFG_MAX];
	size_t n = fallback_config(rp, cfg, sizeof(cfg));

	return archive_build(rp->st, cfg, n, w, out);
}

/* ---- archives built off the loop thread ------------------------------------ */

static void *bg_main(void *arg)
{
	struct bg_archive *b = arg;
	uint64_t one = 1;

	b->rc = archive_build(b->st, b->cfg, b->cfg_len, &b->w, &b->meta);
	atomic_store(&b->done, true);
	if (write(b->efd, &one, sizeof(one)) < 0) {
		/* the counter cannot overflow here; nothing else to do */
	}
	return NULL;
}

/* Starts building an archive in a thread (the loop goes on serving and
 * committing; LMDB readers do not block the writer). */
static int bg_start(struct replica *rp)
{
	struct bg_archive *b = &rp->bg;
	int rc;

	if (b->state != BG_IDLE)
		return 0;
	b->st = rp->st;
	b->cfg_len = fallback_config(rp, b->cfg, sizeof(b->cfg));
	b->rc = 0;
	memset(&b->w, 0, sizeof(b->w));
	atomic_store(&b->done, false);
	rc = pthread_create(&b->th, NULL, bg_main, b);
	if (rc != 0)
		return -rc;
	b->state = BG_RUNNING;
	return 0;
}

/* Waits for the thread (it holds a read transaction). */
static void bg_join(struct replica *rp)
{
	if (rp->bg.state == BG_RUNNING) {
		pthread_join(rp->bg.th, NULL);
		rp->bg.state = BG_JOINED;
	}
}

static void reply_archive(struct replica *rp, struct rpc_req *req, int rc,
			  const struct snapshot_writer *w, const struct snapshot_meta *sm)
{
	struct proto_msg m = proto_msg_make(PROTO_SNAPSHOT_DATA);

	if (rc < 0) {
		rpc_reply_error(req, rc, "cannot take a snapshot: %s", err_str(rc));
		return;
	}
	if (w->len > PROTO_MAX_MSG - 4096) {
		rpc_reply_error(req, CAIRN_E_TOOLARGE,
				"snapshot of %zu bytes is over the %u byte message limit", w->len,
				PROTO_MAX_MSG);
		return;
	}
	m.u.snapshot_data.index = sm->index;
	m.u.snapshot_data.term = sm->term;
	m.u.snapshot_data.known_leader = replica_known_leader(rp);
	m.u.snapshot_data.last_contact_ms = replica_last_contact_ms(rp);
	m.u.snapshot_data.data.ptr = w->buf;
	m.u.snapshot_data.data.len = w->len;
	(void)rpc_reply(req, &m);
}

static bool bg_park(struct rpc_req ***v, size_t *n, size_t *cap, struct rpc_req *req)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 4;
		struct rpc_req **nv = realloc(*v, c * sizeof(*nv));
		if (!nv)
			return false;
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = req;
	return true;
}

int replica_snapshot_fd(const struct replica *rp) { return rp->bg.efd; }

bool replica_snapshot_busy(const struct replica *rp) { return rp->bg.state != BG_IDLE; }

void replica_snapshot_poll(struct replica *rp)
{
	struct bg_archive *b = &rp->bg;
	uint64_t n;

	while (read(b->efd, &n, sizeof(n)) > 0)
		;
	if (b->state == BG_RUNNING && atomic_load(&b->done))
		bg_join(rp);
	if (b->state != BG_JOINED)
		return;
	/* Requests that arrived before the copy began get it. */
	for (size_t i = 0; i < b->n_waiting; i++)
		reply_archive(rp, b->waiting[i], b->rc, &b->w, &b->meta);
	b->n_waiting = 0;
	if (b->for_install && b->rc == 0 && rp->raft.role == RAFT_LEADER &&
	    b->meta.index >= rp->raft.base_index) {
		/* InstallSnapshot chunks are cut from it from now on (the next
		 * heartbeat sends the chunk the core asks for). */
		snapshot_writer_free(&rp->img);
		rp->img = b->w;
		rp->img_meta = b->meta;
		rp->have_img = true;
		memset(&b->w, 0, sizeof(b->w));
	}
	snapshot_writer_free(&b->w);
	b->for_install = false;
	b->state = BG_IDLE;
	if (b->n_queued) {
		/* Later requests want a copy taken after they arrived. */
		struct rpc_req **t = b->waiting;
		size_t tc = b->cap_waiting;
		b->waiting = b->queued;
		b->n_waiting = b->n_queued;
		b->cap_waiting = b->cap_queued;
		b->queued = t;
		b->cap_queued = tc;
		b->n_queued = 0;
		if (bg_start(rp) < 0) {
			for (size_t i = 0; i < b->n_waiting; i++)
				rpc_reply_error(b->waiting[i], -EAGAIN, "cannot start a snapshot");
			b->n_waiting = 0;
		}
	}
}

/* Leader: an archive the chunks can be cut from, started in the
 * background when there is none (or compaction went past it: a follower
 * must be able to continue after its index). Returns true when ready. */
static bool ensure_image(struct replica *rp)
{
	if (rp->have_img && rp->img_meta.index >= rp->raft.base_index)
		return true;
	snapshot_writer_free(&rp->img);
	rp->have_img = false;
	rp->bg.for_install = true;
	(void)bg_start(rp); /* not started: the next heartbeat tries again */
	return false;
}

static int send_snapshot_msg(struct replica *rp, const char *addr, const struct raft_msg *m)
{
	struct proto_msg pm = proto_msg_make(PROTO_RAFT_SNAPSHOT);
	struct proto_raft_snapshot *q = &pm.u.raft_snapshot;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	q->kind = m->type;
	q->from = m->from;
	q->from_addr = rp->address;
	q->to = m->to;
	q->term = m->term;
	if (m->type == RAFT_MSG_SNAPSHOT && !ensure_image(rp)) {
		/* The archive is being copied: an empty chunk of index 0 only
		 * tells the follower its leader is alive (the core drops it
		 * after resetting the election timer); heartbeats repeat. */
		q->seq = m->u.snapshot.seq;
	} else if (m->type == RAFT_MSG_SNAPSHOT) {
		uint64_t off = m->u.snapshot.offset, n;
		if (off > rp->img.len)
			off = 0;
		n = rp->img.len - off;
		if (n > REPLICA_SNAPSHOT_CHUNK)
			n = REPLICA_SNAPSHOT_CHUNK;
		q->last_index = rp->img_meta.index;
		q->last_term = rp->img_meta.term;
		q->offset = off;
		q->seq = m->u.snapshot.seq;
		q->flags = off + n == rp->img.len ? 1u : 0;
		q->config.ptr = rp->img_meta.config;
		q->config.len = rp->img_meta.config_len;
		q->data.ptr = rp->img.buf + off;
		q->data.len = (size_t)n;
	} else {
		q->last_index = m->u.snapshot_reply.last_index;
		q->offset = m->u.snapshot_reply.next_offset;
		q->seq = m->u.snapshot_reply.seq;
		q->flags = m->u.snapshot_reply.have ? 2u : 0;
	}
	rc = proto_encode(&pm, &buf, &len);
	if (rc < 0)
		return rc;
	/* Neither acknowledges log entries (an installed snapshot is
	 * acknowledged by an AppendEntries answer after its flush). */
	rp->send_fn(rp->send_ctx, addr, buf, len);
	free(buf);
	return 0;
}

static int io_snapshot_recv(void *ctx, const struct raft_msg *m, uint64_t *next)
{
	struct replica *rp = ctx;
	const uint64_t off = m->u.snapshot.offset;
	struct snapshot_meta sm;
	const char *why;

	if (off == 0) {
		rp->recv_index = m->u.snapshot.last_index;
		rp->recv_term = m->u.snapshot.last_term;
		rp->recv_len = 0;
	}
	*next = 0;
	if (rp->recv_index != m->u.snapshot.last_index || rp->recv_term != m->u.snapshot.last_term)
		return 0; /* another image: start over */
	if (off != rp->recv_len) {
		*next = rp->recv_len; /* a duplicate or a gap */
		return 0;
	}
	if (rp->recv_len + m->u.snapshot.len > rp->recv_cap) {
		size_t cap = rp->recv_cap ? rp->recv_cap : REPLICA_SNAPSHOT_CHUNK;
		while (cap < rp->recv_len + m->u.snapshot.len)
			cap *= 2;
		uint8_t *b = realloc(rp->recv, cap);
		if (!b)
			return 0; /* start over later */
		rp->recv = b;
		rp->recv_cap = cap;
	}
	if (m->u.snapshot.len)
		memcpy(rp->recv + rp->recv_len, m->u.snapshot.data, m->u.snapshot.len);
	rp->recv_len += m->u.snapshot.len;
	*next = rp->recv_len;
	if (!m->u.snapshot.done)
		return 0;
	if (snapshot_parse(rp->recv, rp->recv_len, &sm, &why) < 0 || sm.index != rp->recv_index ||
	    sm.term != rp->recv_term) {
		rp->recv_len = 0;
		rp->recv_index = 0;
		*next = 0;
		return 0;
	}
	return 1;
}

static int io_snapshot_install(void *ctx, uint64_t index, uint64_t term)
{
	struct replica *rp = ctx;

	if (rp->txn)
		return -EINVAL;
	rp->installing = true;
	rp->install_index = index;
	rp->install_term = term;
	/* The core dropped its whole log: so do the batch and the store
	 * (at the flush, with the state replaced in the same transaction). */
	rp->n_pend = 0;
	rp->batch.len = 0;
	rp->trunc_from = 0;
	/* Proposals of a former leadership: their fate is not known here. */
	fail_outstanding_from(rp, 0, CAIRN_E_NOLEADER);
	return 0;
}

/* Replaces state and log with the received archive, in the flush's
 * transaction (atomic: a crash leaves the old state or the new one). */
static int install_now(struct replica *rp, struct store_txn *txn)
{
	struct snapshot_meta sm;
	const char *why;
	int rc;

	rc = snapshot_parse(rp->recv, rp->recv_len, &sm, &why);
	if (rc == 0)
		rc = restore_state(rp, txn, rp->recv, rp->recv_len, 0);
	if (rc == 0)
		rc = store_clear(txn, STORE_LOG);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_APPLIED, sm.index);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_APPLIED_TERM, sm.term);
	if (rc == 0)
		rc = store_put(txn, STORE_META, META_APPLIED_CFG, strlen(META_APPLIED_CFG), sm.config,
			       sm.config_len);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_APPLIED_CFG_INDEX, sm.config_index);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_LOG_BASE, sm.index);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_LOG_BASE_TERM, sm.term);
	if (rc == 0)
		rc = store_put_u64(txn, STORE_META, META_SNAP_INDEX, sm.index);
	if (rc < 0)
		return rc;
	rp->disk_last = sm.index;
	rp->last_applied = sm.index;
	if (rp->commit_target < sm.index)
		rp->commit_target = sm.index;
	rp->snap_index = sm.index;
	return 0;
}

int replica_receive_snapshot(struct replica *rp, const struct proto_raft_snapshot *q)
{
	struct raft_msg m;
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	if (!q->from || !q->to || strlen(q->from) > RAFT_ID_MAX || strlen(q->to) > RAFT_ID_MAX)
		return 0;
	book_note(rp, q->from, q->from_addr);
	memset(&m, 0, sizeof(m));
	m.type = (unsigned)q->kind;
	strcpy(m.from, q->from);
	strcpy(m.to, q->to);
	m.term = q->term;
	if (m.type == RAFT_MSG_SNAPSHOT) {
		m.u.snapshot.offset = q->offset;
		m.u.snapshot.seq = q->seq;
		m.u.snapshot.last_index = q->last_index;
		m.u.snapshot.last_term = q->last_term;
		m.u.snapshot.done = q->flags & 1u;
		m.u.snapshot.data = q->data.ptr;
		m.u.snapshot.len = q->data.len;
		m.u.snapshot.config = q->config.ptr;
		m.u.snapshot.config_len = q->config.len;
	} else if (m.type == RAFT_MSG_SNAPSHOT_REPLY) {
		m.u.snapshot_reply.last_index = q->last_index;
		m.u.snapshot_reply.next_offset = q->offset;
		m.u.snapshot_reply.seq = q->seq;
		m.u.snapshot_reply.have = q->flags & 2u;
	} else {
		return 0; /* malformed */
	}
	rc = raft_receive(&rp->raft, &m);
	if (rc < 0)
		rp->failed = true;
	return rc;
}

static int io_send(void *ctx, const struct raft_msg *m)
{
	struct replica *rp = ctx;
	const char *addr = book_find(rp, m->to);
	struct proto_msg pm = proto_msg_make(PROTO_RAFT_RPC);
	struct proto_raft_rpc *q = &pm.u.raft_rpc;
	struct proto_raft_entry *ents = NULL;
	struct store_txn *txn = rp->txn;
	bool own_txn = false;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = 0;

	if (!addr || !rp->send_fn)
		return 0; /* nowhere to send: like a lost message */
	if (m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_SNAPSHOT_REPLY)
		return send_snapshot_msg(rp, addr, m);
	q->kind = m->type;
	q->from = m->from;
	q->from_addr = rp->address;
	q->to = m->to;
	q->term = m->term;
	switch (m->type) {
	case RAFT_MSG_VOTE:
		q->flags = (m->u.vote.pre_vote ? 1u : 0) | (m->u.vote.transfer ? 2u : 0);
		q->last_index = m->u.vote.last_index;
		q->last_term = m->u.vote.last_term;
		break;
	case RAFT_MSG_VOTE_REPLY:
		q->flags = (m->u.vote_reply.pre_vote ? 1u : 0) | (m->u.vote_reply.granted ? 4u : 0);
		break;
	case RAFT_MSG_APPEND:
		q->prev_index = m->u.append.prev_index;
		q->prev_term = m->u.append.prev_term;
		q->commit = m->u.append.commit;
		q->last_term = m->u.append.seq;
		if (m->u.append.n_entries) {
			uint64_t n = m->u.append.n_entries;
			ents = calloc(n, sizeof(*ents));
			if (!ents)
				return -ENOMEM;
			if (!txn) {
				rc = store_txn_begin(rp->st, false, &txn);
				if (rc < 0) {
					free(ents);
					return rc;
				}
				own_txn = true;
			}
			for (uint64_t k = 0; k < n && rc == 0; k++) {
				uint64_t term, type;
				const uint8_t *payload;
				size_t plen;
				rc = read_entry(rp, txn, m->u.append.prev_index + 1 + k, &term,
						&type, &payload, &plen);
				ents[k].index = m->u.append.prev_index + 1 + k;
				ents[k].term = term;
				ents[k].type = type;
				ents[k].payload.ptr = payload;
				ents[k].payload.len = plen;
			}
			q->entries.v = ents;
			q->entries.n = n;
		}
		break;
	case RAFT_MSG_APPEND_REPLY:
		q->flags = m->u.append_reply.success ? 8u : 0;
		q->match_index = m->u.append_reply.match_index;
		q->reject_index = m->u.append_reply.reject_index;
		q->hint_index = m->u.append_reply.hint_index;
		q->hint_term = m->u.append_reply.hint_term;
		q->last_index = m->u.append_reply.last_index;
		q->last_term = m->u.append_reply.seq;
		break;
	default:
		break;
	}
	if (rc == 0)
		rc = proto_encode(&pm, &buf, &len);
	if (own_txn)
		store_txn_abort(txn);
	free(ents);
	if (rc < 0)
		return rc;
	if (m->type != RAFT_MSG_APPEND_REPLY) {
		/* Nothing here acknowledges log entries: votes were made durable
		 * before, and a leader's AppendEntries may leave before its own
		 * fsync (it counts itself only once durable), so the followers'
		 * fsyncs run in parallel with the leader's. */
		rp->send_fn(rp->send_ctx, addr, buf, len);
		free(buf);
		return 0;
	}
	if (rp->n_msgs == rp->cap_msgs) {
		size_t cap = rp->cap_msgs ? rp->cap_msgs * 2 : 16;
		struct outmsg *nm = realloc(rp->msgs, cap * sizeof(*nm));
		if (!nm) {
			free(buf);
			return -ENOMEM;
		}
		rp->msgs = nm;
		rp->cap_msgs = cap;
	}
	struct outmsg *o = &rp->msgs[rp->n_msgs++];
	snprintf(o->addr, sizeof(o->addr), "%s", addr);
	o->buf = buf;
	o->len = len;
	return 0;
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return clock_now_ms();
}

static uint32_t io_rand(void *ctx)
{
	struct replica *rp = ctx;
	/* Jitter only: any spread will do, seeded per server by its id. */
	uint64_t x = rp->raft.now_ms * 0x9e3779b97f4a7c15ull;
	for (const char *c = rp->raft.id; *c; c++)
		x = (x ^ (uint8_t)*c) * 0x100000001b3ull;
	x ^= (uint64_t)(uintptr_t)rp;
	x ^= x >> 29;
	return (uint32_t)x;
}

/* ---- lifecycle ------------------------------------------------------------ */
/* ---- lifecycle ------------------------------------------------------------ */

struct terms_acc {
	uint64_t *v;
	size_t n, cap;
	uint64_t base; /* the log starts after this index */
	uint64_t cfg_index[2]; /* the last two configuration entries, 0: none */
};

/* Collects each log entry's term, in index order (the core keeps them). */
static int collect_term(void *ctx, struct store_val key, struct store_val val)
{
	struct terms_acc *t = ctx;
	struct mp_reader r;
	uint64_t index;

	if (store_be_to_u64(key, &index) < 0 || index != t->base + t->n + 1)
		return CAIRN_E_STORE;
	mp_reader_init(&r, val.ptr, val.len);
	if (mp_read_array(&r) != 3)
		return CAIRN_E_STORE;
	uint64_t term = mp_read_u64(&r);
	uint64_t type = mp_read_u64(&r);
	if (r.err)
		return CAIRN_E_STORE;
	if (type == RAFT_ENTRY_CONFIG) {
		t->cfg_index[0] = t->cfg_index[1];
		t->cfg_index[1] = index;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 256;
		uint64_t *nv = realloc(t->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		t->v = nv;
		t->cap = cap;
	}
	t->v[t->n++] = term;
	return 0;
}

static int load(struct replica *rp, const struct replica_config *cfg, char *err, size_t errlen)
{
	struct terms_acc terms = {0};
	struct store_txn *txn;
	struct raft_boot boot = {0};
	struct store_val k, v;
	char vote[RAFT_ID_MAX + 1] = "";
	uint64_t cfg_index = 0;
	int rc;

	rc = store_txn_begin(rp->st, false, &txn);
	if (rc < 0) {
		snprintf(err, errlen, "read raft state: %s", store_errmsg(rp->st));
		return rc;
	}
	rc = store_get_u64(txn, STORE_META, META_TERM, &boot.current_term);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_APPLIED, &boot.last_applied);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_LOG_BASE, &boot.base_index);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_LOG_BASE_TERM, &boot.base_term);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_SNAP_INDEX, &rp->snap_index);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_APPLIED_CFG_INDEX, &cfg_index);
	if (rc == 0) {
		rc = store_get(txn, STORE_META, META_VOTE, strlen(META_VOTE), &v);
		if (rc == 0 && v.len <= RAFT_ID_MAX)
			memcpy(vote, v.ptr, v.len);
		else if (rc == 0)
			rc = CAIRN_E_STORE;
		else if (rc == -ENOENT)
			rc = 0;
	}
	if (rc == 0) {
		rc = store_last(txn, STORE_LOG, &k, &v);
		if (rc == -ENOENT) {
			/* Empty: nothing, or everything up to the base is in
			 * an installed snapshot. */
			boot.last_index = boot.base_index;
			boot.last_term = boot.base_term;
			rc = 0;
		} else if (rc == 0) {
			struct mp_reader r;
			if (store_be_to_u64(k, &boot.last_index) < 0)
				rc = CAIRN_E_STORE;
			mp_reader_init(&r, v.ptr, v.len);
			if (mp_read_array(&r) != 3)
				rc = CAIRN_E_STORE;
			boot.last_term = mp_read_u64(&r);
			if (r.err)
				rc = CAIRN_E_STORE;
		}
	}
	terms.base = boot.base_index;
	if (rc == 0 && boot.last_index > boot.base_index) {
		rc = store_scan_from(txn, STORE_LOG, NULL, 0, collect_term, &terms);
		if (rc == 0 && terms.n != boot.last_index - boot.base_index)
			rc = CAIRN_E_STORE;
	}
	store_txn_abort(txn);
	if (rc < 0) {
		free(terms.v);
		snprintf(err, errlen, "read raft state: malformed or unreadable (%s)",
			 store_errmsg(rp->st));
		return rc;
	}
	boot.voted_for = vote;
	boot.terms = terms.v;
	boot.await_config = cfg->await_config;
	boot.opts.election_ms = cfg->election_ms;
	boot.opts.heartbeat_ms = cfg->heartbeat_ms;
	rc = raft_init(&rp->raft, &rp->io, cfg->server_id, &boot);
	free(terms.v);
	if (rc < 0) {
		snprintf(err, errlen,
			 "inconsistent raft state (term %llu, last log %llu/%llu, applied %llu) or "
			 "bad id",
			 (unsigned long long)boot.current_term, (unsigned long long)boot.last_index,
			 (unsigned long long)boot.last_term, (unsigned long long)boot.last_applied);
		return rc;
	}
	rp->last_applied = boot.last_applied;
	rp->commit_target = boot.last_applied;
	rp->peers_json[0] = '\0';
	rp->disk_last = boot.last_index;
	/* The configuration in force is the latest in the log (committed or
	 * not); the one before it is kept for a truncation. The one applied
	 * last comes first: the log may have been compacted past it. */
	if (cfg_index) {
		rc = store_txn_begin(rp->st, false, &txn);
		if (rc == 0) {
			rc = store_get(txn, STORE_META, META_APPLIED_CFG, strlen(META_APPLIED_CFG),
				       &v);
			if (rc == 0)
				rc = raft_boot_config(&rp->raft, cfg_index, v.ptr, v.len);
			store_txn_abort(txn);
		}
		if (rc < 0) {
			snprintf(err, errlen, "applied configuration (%llu) unreadable",
				 (unsigned long long)cfg_index);
			return rc;
		}
	}
	for (int ck = 0; ck < 2; ck++) {
		uint64_t ci = terms.cfg_index[ck], term, type;
		const uint8_t *payload;
		size_t plen;
		if (!ci || ci <= cfg_index)
			continue;
		rc = store_txn_begin(rp->st, false, &txn);
		if (rc == 0) {
			rc = read_entry(rp, txn, ci, &term, &type, &payload, &plen);
			if (rc == 0)
				rc = raft_boot_config(&rp->raft, ci, payload, plen);
			store_txn_abort(txn);
		}
		if (rc < 0) {
			snprintf(err, errlen, "configuration entry %llu unreadable",
				 (unsigned long long)ci);
			return rc;
		}
	}
	return 0;
}

/* Manual recovery (Consul's peers.json, format v3): <dir>/peers.json is
 * [{"id": ..., "address": "host:port", "non_voter": false}, ...]. It
 * overrides the configuration; the file is removed once the recovered
 * configuration is committed in the log (replica_flush). */
static int load_peers_json(struct replica *rp, const char *dir, char *err, size_t errlen)
{
	char path[sizeof(rp->peers_json)];
	struct raft_config c;
	json_error_t je;
	json_t *j;
	size_t i;
	int rc = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/peers.json", dir) >= sizeof(path))
		return 0;
	if (access(path, F_OK) != 0)
		return 0;
	j = json_load_file(path, 0, &je);
	if (!j || !json_is_array(j) || json_array_size(j) == 0 ||
	    json_array_size(j) > RAFT_MAX_SERVERS) {
		snprintf(err, errlen, "%s: not a list of 1 to %d servers (%s)", path,
			 RAFT_MAX_SERVERS, j ? "wrong shape" : je.text);
		json_decref(j);
		return -EINVAL;
	}
	memset(&c, 0, sizeof(c));
	for (i = 0; i < json_array_size(j); i++) {
		json_t *o = json_array_get(j, i);
		const char *id = json_string_value(json_object_get(o, "id"));
		const char *addr = json_string_value(json_object_get(o, "address"));
		json_t *nv = json_object_get(o, "non_voter");
		if (!id || !*id || !addr || strlen(id) > RAFT_ID_MAX ||
		    strlen(addr) > RAFT_ADDR_MAX || strchr(id, ' ') || strchr(addr, ' ') ||
		    raft_config_find(&c, id) >= 0) {
			snprintf(err, errlen,
				 "%s: entry %zu needs a unique \"id\" and an \"address\"", path, i);
			rc = -EINVAL;
			break;
		}
		strcpy(c.s[c.n].id, id);
		strcpy(c.s[c.n].address, addr);
		c.s[c.n].voter = !json_is_true(nv);
		c.n++;
	}
	json_decref(j);
	if (rc == 0 && raft_recover_config(&rp->raft, &c) < 0) {
		snprintf(err, errlen, "%s: cannot apply", path);
		rc = -EINVAL;
	}
	if (rc == 0)
		snprintf(rp->peers_json, sizeof(rp->peers_json), "%s", path);
	return rc;
}

int replica_open(const struct replica_config *cfg, replica_applied_fn applied, fsm_change_fn change,
		 void *ctx, struct replica **out, char *err, size_t errlen)
{
	struct replica *rp = calloc(1, sizeof(*rp));
	int rc;

	if (!rp) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	mp_writer_init(&rp->batch);
	mp_writer_init(&rp->changes);
	mp_writer_init(&rp->scratch);
	rp->applied_fn = applied;
	rp->change_fn = change;
	rp->ctx = ctx;
	rp->io.ctx = rp;
	rp->io.persist_vote = io_persist_vote;
	rp->io.append = io_append;
	rp->io.apply = io_apply;
	rp->io.truncate = io_truncate;
	rp->io.send = io_send;
	rp->io.now_ms = io_now;
	rp->io.rand_u32 = io_rand;
	rp->io.snapshot_recv = io_snapshot_recv;
	rp->io.snapshot_install = io_snapshot_install;
	rp->snap_threshold = cfg->snapshot_threshold;
	rp->trailing = cfg->trailing_logs;
	rp->bg.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (rp->bg.efd < 0) {
		rc = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		replica_close(rp);
		return rc;
	}
	if (cfg->address)
		snprintf(rp->address, sizeof(rp->address), "%s", cfg->address);
	rc = store_open(cfg->dir, cfg->map_size, &rp->st, err, errlen);
	if (rc < 0)
		goto fail;
	rc = load(rp, cfg, err, errlen);
	if (rc < 0)
		goto fail;
	rc = load_peers_json(rp, cfg->dir, err, errlen);
	if (rc < 0)
		goto fail;
	*out = rp;
	return 0;
fail:
	replica_close(rp);
	return rc;
}

static void drop_msgs(struct replica *rp)
{
	for (size_t i = 0; i < rp->n_msgs; i++)
		free(rp->msgs[i].buf);
	rp->n_msgs = 0;
}

void replica_close(struct replica *rp)
{
	if (!rp)
		return;
	raft_close(&rp->raft);
	store_close(rp->st);
	free(rp->pend);
	free(rp->out);
	drop_msgs(rp);
	free(rp->msgs);
	mp_writer_close(&rp->batch);
	mp_writer_close(&rp->changes);
	mp_writer_close(&rp->scratch);
	snapshot_writer_free(&rp->img);
	free(rp->recv);
	/* A copy still running is waited for; its requests are dropped like
	 * pending proposals (the RPC server is gone by now). */
	bg_join(rp);
	snapshot_writer_free(&rp->bg.w);
	for (size_t i = 0; i < rp->bg.n_waiting; i++)
		rpc_req_free(rp->bg.waiting[i]);
	for (size_t i = 0; i < rp->bg.n_queued; i++)
		rpc_req_free(rp->bg.queued[i]);
	free(rp->bg.waiting);
	free(rp->bg.queued);
	if (rp->bg.efd >= 0)
		close(rp->bg.efd);
	free(rp);
}

int replica_start(struct replica *rp)
{
	if (rp->failed)
		return CAIRN_E_STORE;
	return raft_start(&rp->raft);
}

static int propose_type(struct replica *rp, unsigned type, const uint8_t *cmd, size_t len,
			void *ud, uint64_t *out_index);

int replica_propose(struct replica *rp, const uint8_t *cmd, size_t len, void *ud,
		    uint64_t *out_index)
{
	return propose_type(rp, RAFT_ENTRY_COMMAND, cmd, len, ud, out_index);
}

static int known_table(void *ctx, unsigned table, const uint8_t *key, size_t klen,
		       const uint8_t *val, size_t vlen)
{
	(void)ctx, (void)key, (void)klen, (void)val, (void)vlen;
	return store_is_state(table) ? 0 : -EINVAL;
}

/* Largest archive PUT /v1/snapshot restores: it travels as one log entry
 * (AppendEntries messages are at most PROTO_MAX_MSG). */
#define RESTORE_MAX (PROTO_MAX_MSG / 2)

int replica_propose_restore(struct replica *rp, const uint8_t *archive, size_t len, void *ud,
			    uint64_t *out_index, const char **why)
{
	struct snapshot_meta sm;

	if (snapshot_parse(archive, len, &sm, why) < 0)
		return -EINVAL;
	if (snapshot_each(archive, len, known_table, NULL) < 0) {
		*why = "snapshot archive holds tables this version does not know";
		return -EINVAL;
	}
	if (len > RESTORE_MAX) {
		*why = "snapshot archive too large to restore through the log (32 MiB at most)";
		return CAIRN_E_TOOLARGE;
	}
	return propose_type(rp, REPLICA_ENTRY_RESTORE, archive, len, ud, out_index);
}

static int propose_type(struct replica *rp, unsigned type, const uint8_t *cmd, size_t len,
			void *ud, uint64_t *out_index)
{
	uint64_t index;
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	if (ud && rp->n_out == rp->cap_out) {
		size_t cap = rp->cap_out ? rp->cap_out * 2 : 64;
		struct outstanding *o = realloc(rp->out, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		rp->out = o;
		rp->cap_out = cap;
	}
	rc = raft_propose(&rp->raft, type, cmd, len, &index);
	if (rc < 0)
		return rc;
	if (ud) {
		struct outstanding *o = &rp->out[rp->n_out++];
		memset(o, 0, sizeof(*o));
		o->index = index;
		o->term = rp->raft.current_term;
		o->ud = ud;
	}
	*out_index = index;
	return 0;
}

bool replica_has_pending(const struct replica *rp)
{
	return rp->n_pend > 0 || rp->trunc_from || rp->commit_target > rp->last_applied ||
	       rp->n_msgs > 0 || rp->installing;
}

/* After the commit: outcomes of applied proposals, changed keys. */
static void report(struct replica *rp)
{
	size_t k = 0;

	while (k < rp->n_out && rp->out[k].done) {
		if (rp->applied_fn)
			rp->applied_fn(rp->ctx, rp->out[k].ud, rp->out[k].index, &rp->out[k].res);
		k++;
	}
	if (k) {
		memmove(rp->out, rp->out + k, (rp->n_out - k) * sizeof(*rp->out));
		rp->n_out -= k;
	}
	for (size_t pos = 0; rp->change_fn && pos + 3 <= rp->changes.len;) {
		const uint8_t *b = rp->changes.buf + pos;
		size_t klen = ((size_t)b[1] << 8) | b[2];
		rp->change_fn(rp->ctx, (enum fsm_space)b[0], (const char *)b + 3, klen);
		pos += 3 + klen;
	}
}

static void batch_reset(struct replica *rp)
{
	rp->n_pend = 0;
	mp_writer_reset(&rp->batch);
	mp_writer_reset(&rp->changes);
}

static void send_msgs(struct replica *rp)
{
	for (size_t i = 0; i < rp->n_msgs; i++)
		if (rp->send_fn)
			rp->send_fn(rp->send_ctx, rp->msgs[i].addr, rp->msgs[i].buf,
				    rp->msgs[i].len);
	drop_msgs(rp);
}

/* Drops the first n batched entries (written), keeping later ones. */
static void batch_consume(struct replica *rp, size_t n)
{
	if (n >= rp->n_pend) {
		batch_reset(rp);
		return;
	}
	size_t off = rp->pend[n].off;
	memmove(rp->batch.buf, rp->batch.buf + off, rp->batch.len - off);
	rp->batch.len -= off;
	memmove(rp->pend, rp->pend + n, (rp->n_pend - n) * sizeof(*rp->pend));
	rp->n_pend -= n;
	for (size_t i = 0; i < rp->n_pend; i++)
		rp->pend[i].off -= off;
	mp_writer_reset(&rp->changes);
}

/* Leader: a follower is being sent the snapshot. */
static bool snapshot_in_use(const struct replica *rp)
{
	if (rp->raft.role != RAFT_LEADER)
		return false;
	for (unsigned i = 0; i < rp->raft.config.n; i++)
		if (rp->raft.prog[i].snapshot)
			return true;
	return false;
}

/* Log compaction, at the end of a flush's transaction: once
 * snapshot_threshold entries were applied since the last snapshot point,
 * the applied state (durable in this very transaction: the state machine
 * lives in the store) is the new snapshot, and log entries more than
 * trailing_logs behind it are deleted. */
static int compact(struct replica *rp, struct store_txn *txn, uint64_t *new_snap)
{
	uint64_t upto, from;
	int rc;

	*new_snap = rp->snap_index;
	rp->compact_to = 0;
	if (!rp->snap_threshold || rp->last_applied < rp->snap_index + rp->snap_threshold)
		return 0;
	upto = rp->last_applied > rp->trailing ? rp->last_applied - rp->trailing : 0;
	/* Never past the archive a follower is receiving: it must be able
	 * to continue after it (a new archive would start it over). */
	if (rp->have_img && snapshot_in_use(rp) && upto > rp->img_meta.index)
		upto = rp->img_meta.index;
	if (upto > rp->raft.base_index) {
		for (from = rp->raft.base_index + 1; from <= upto; from++) {
			uint8_t key[8];
			store_u64_to_be(from, key);
			rc = store_del(txn, STORE_LOG, key, sizeof(key));
			if (rc < 0 && rc != -ENOENT)
				return rc;
		}
		rc = store_put_u64(txn, STORE_META, META_LOG_BASE, upto);
		if (rc == 0)
			rc = store_put_u64(txn, STORE_META, META_LOG_BASE_TERM,
					   raft_term_at(&rp->raft, upto));
		if (rc < 0)
			return rc;
		rp->compact_to = upto;
	}
	rc = store_put_u64(txn, STORE_META, META_SNAP_INDEX, rp->last_applied);
	if (rc < 0)
		return rc;
	*new_snap = rp->last_applied;
	return 0;
}

/* Logs role and term changes: the operator's record of elections. */
static void note_role(struct replica *rp)
{
	static const char *const names[] = {"follower", "candidate", "leader", "pre-candidate"};
	const struct raft *r = &rp->raft;

	if (r->role == rp->logged_role && r->current_term == rp->logged_term)
		return;
	rp->logged_role = r->role;
	rp->logged_term = r->current_term;
	log_info("raft: %s in term %llu%s%s",
		 (unsigned)r->role < 4 ? names[r->role] : "?", (unsigned long long)r->current_term,
		 r->leader_id[0] ? ", leader " : "", r->leader_id);
}

int replica_flush(struct replica *rp)
{
	struct store_txn *txn = NULL;
	size_t n_flushed = 0;
	uint64_t new_snap = 0;
	int rc;

	note_role(rp);
	if (rp->failed) {
		rc = CAIRN_E_STORE;
		goto fail;
	}
	if (!replica_has_pending(rp))
		return 0;
	/* Batching: every entry proposed during this loop iteration goes out
	 * now, in as few AppendEntries as possible, before the fsync. */
	rc = raft_flush(&rp->raft);
	if (rc < 0)
		goto fail;
	if (rp->n_pend == 0 && !rp->trunc_from && rp->commit_target <= rp->last_applied &&
	    !rp->installing) {
		send_msgs(rp); /* votes, heartbeats, acks of durable entries */
		return 0;
	}
	if (rp->bg.state == BG_RUNNING &&
	    store_reserve_needed(rp->st, rp->batch.len + (rp->installing ? rp->recv_len : 0)))
		bg_join(rp); /* growing the map needs its read transaction ended */
	rc = store_reserve(rp->st, rp->batch.len + (rp->installing ? rp->recv_len : 0));
	if (rc < 0)
		goto fail;
	rc = store_txn_begin(rp->st, true, &txn);
	if (rc < 0)
		goto fail;
	if (rp->installing) {
		/* InstallSnapshot: state and log replaced, before the entries
		 * that follow the snapshot. */
		rc = install_now(rp, txn);
		if (rc < 0)
			goto fail;
		rp->trunc_from = 0;
	}
	if (rp->trunc_from) {
		/* A follower's conflicting suffix goes before the new entries. */
		for (uint64_t i = rp->trunc_from; i <= rp->disk_last; i++) {
			uint8_t key[8];
			store_u64_to_be(i, key);
			rc = store_del(txn, STORE_LOG, key, sizeof(key));
			if (rc < 0 && rc != -ENOENT)
				goto fail;
		}
		rp->disk_last = rp->trunc_from - 1;
	}
	n_flushed = rp->n_pend;
	for (size_t i = 0; i < n_flushed; i++) {
		uint8_t key[8];
		store_u64_to_be(rp->pend[i].index, key);
		rc = store_put(txn, STORE_LOG, key, sizeof(key), rp->batch.buf + rp->pend[i].off,
			       rp->pend[i].len);
		if (rc < 0)
			goto fail;
	}
	/* The entries are written into the transaction that also applies
	 * them and records lastApplied: they become durable together or not
	 * at all, which is what raft_persisted() asks of us here. Messages
	 * it triggers (a follower's ack) wait in rp->msgs until the commit. */
	rp->txn = txn;
	if (n_flushed) {
		uint64_t last = rp->pend[n_flushed - 1].index;
		rc = raft_persisted(&rp->raft, last, raft_term_at(&rp->raft, last));
	} else if (rp->installing) {
		rc = raft_persisted(&rp->raft, rp->install_index, rp->install_term);
	}
	if (rc == 0 && rp->commit_target > rp->last_applied)
		rc = apply_now(rp, rp->commit_target);
	rp->txn = NULL;
	if (rc == 0)
		rc = compact(rp, txn, &new_snap);
	if (rc < 0)
		goto fail;
	rc = store_txn_commit(txn); /* fsync: nothing is acknowledged before */
	txn = NULL;
	if (rc < 0)
		goto fail;
	if (rp->installing) {
		log_info("raft: installed a snapshot up to index %llu (term %llu) from the leader",
			 (unsigned long long)rp->install_index, (unsigned long long)rp->install_term);
		rp->installing = false;
		free(rp->recv);
		rp->recv = NULL;
		rp->recv_len = rp->recv_cap = 0;
		rp->recv_index = 0;
	}
	rp->snap_index = new_snap;
	if (rp->compact_to) {
		/* The entries are gone from the store: the core forgets them. */
		rc = raft_compact(&rp->raft, rp->compact_to);
		rp->compact_to = 0;
		if (rc < 0)
			goto fail;
	}
	if (rp->have_img && !snapshot_in_use(rp)) {
		snapshot_writer_free(&rp->img); /* no follower needs it any more */
		rp->have_img = false;
	}
	if (n_flushed && rp->pend[n_flushed - 1].index > rp->disk_last)
		rp->disk_last = rp->pend[n_flushed - 1].index;
	rp->trunc_from = 0;
	report(rp);
	/* Entries the core appended during this flush (a leader's
	 * configuration change triggered by a commit) go in the next one. */
	batch_consume(rp, n_flushed);
	send_msgs(rp);
	if (rp->peers_json[0] && raft_recovered(&rp->raft)) {
		/* The recovered configuration is committed in the log now:
		 * the file must not override a later configuration. */
		(void)unlink(rp->peers_json); /* a leftover would be re-applied: see docs/raft.md */
		rp->peers_json[0] = '\0';
	}
	return 0;
fail:
	rp->txn = NULL;
	store_txn_abort(txn);
	/* The Raft core's view (log tail, commit index) is now ahead of the
	 * disk: refuse everything until a restart reloads from the store. */
	rp->failed = true;
	mp_writer_reset(&rp->changes);
	drop_msgs(rp);
	fail_outstanding_from(rp, 0, CAIRN_E_STORE);
	batch_reset(rp);
	return rc < 0 ? rc : CAIRN_E_STORE;
}

void replica_set_transport(struct replica *rp, replica_send_fn fn, void *ctx)
{
	rp->send_fn = fn;
	rp->send_ctx = ctx;
}

int replica_receive(struct replica *rp, const struct proto_raft_rpc *q)
{
	struct raft_msg m;
	struct raft_entry *ents = NULL;
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	if (!q->from || !q->to || strlen(q->from) > RAFT_ID_MAX || strlen(q->to) > RAFT_ID_MAX)
		return 0; /* malformed: dropped */
	book_note(rp, q->from, q->from_addr);
	memset(&m, 0, sizeof(m));
	m.type = (unsigned)q->kind;
	strcpy(m.from, q->from);
	strcpy(m.to, q->to);
	m.term = q->term;
	switch (m.type) {
	case RAFT_MSG_VOTE:
		m.u.vote.pre_vote = q->flags & 1u;
		m.u.vote.transfer = q->flags & 2u;
		m.u.vote.last_index = q->last_index;
		m.u.vote.last_term = q->last_term;
		break;
	case RAFT_MSG_VOTE_REPLY:
		m.u.vote_reply.pre_vote = q->flags & 1u;
		m.u.vote_reply.granted = q->flags & 4u;
		break;
	case RAFT_MSG_APPEND:
		m.u.append.prev_index = q->prev_index;
		m.u.append.prev_term = q->prev_term;
		m.u.append.commit = q->commit;
		m.u.append.seq = q->last_term;
		if (q->entries.n) {
			ents = calloc(q->entries.n, sizeof(*ents));
			if (!ents)
				return -ENOMEM;
			for (size_t k = 0; k < q->entries.n; k++) {
				ents[k].index = q->entries.v[k].index;
				ents[k].term = q->entries.v[k].term;
				ents[k].type = (unsigned)q->entries.v[k].type;
				ents[k].payload = q->entries.v[k].payload.ptr;
				ents[k].len = q->entries.v[k].payload.len;
			}
			m.u.append.entries = ents;
			m.u.append.n_entries = q->entries.n;
		}
		break;
	case RAFT_MSG_APPEND_REPLY:
		m.u.append_reply.success = q->flags & 8u;
		m.u.append_reply.match_index = q->match_index;
		m.u.append_reply.reject_index = q->reject_index;
		m.u.append_reply.hint_index = q->hint_index;
		m.u.append_reply.hint_term = q->hint_term;
		m.u.append_reply.last_index = q->last_index;
		m.u.append_reply.seq = q->last_term;
		break;
	default:
		break;
	}
	rc = raft_receive(&rp->raft, &m);
	free(ents);
	if (rc < 0)
		rp->failed = true;
	note_role(rp);
	return rc;
}

int replica_tick(struct replica *rp)
{
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	rc = raft_tick(&rp->raft);
	note_role(rp);
	if (rc == 0)
		rc = raft_flush(&rp->raft);
	if (rc < 0)
		rp->failed = true;
	return rc;
}

int replica_bootstrap(struct replica *rp, const struct raft_config *cfg)
{
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	rc = raft_bootstrap(&rp->raft, cfg);
	if (rc < 0)
		return rc;
	return replica_flush(rp); /* durable before anyone hears of it */
}

int replica_add_server(struct replica *rp, const char *id, const char *address)
{
	uint64_t index;

	if (rp->failed)
		return CAIRN_E_STORE;
	return raft_add_server(&rp->raft, id, address, &index);
}

int replica_read_index(struct replica *rp, uint64_t *out_seq, uint64_t *out_index)
{
	if (rp->failed)
		return CAIRN_E_STORE;
	return raft_read_index(&rp->raft, out_seq, out_index);
}

bool replica_read_ready(const struct replica *rp, uint64_t seq, uint64_t index, bool *out_failed)
{
	*out_failed = rp->failed || rp->raft.role != RAFT_LEADER;
	return !*out_failed && raft_read_ready(&rp->raft, seq) && rp->last_applied >= index;
}

int replica_remove_server(struct replica *rp, const char *id, void *ud, uint64_t *out_index)
{
	uint64_t index;
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	if (ud && rp->n_out == rp->cap_out) {
		size_t cap = rp->cap_out ? rp->cap_out * 2 : 64;
		struct outstanding *o = realloc(rp->out, cap * sizeof(*o));
		if (!o)
			return -ENOMEM;
		rp->out = o;
		rp->cap_out = cap;
	}
	rc = raft_remove_server(&rp->raft, id, &index);
	if (rc < 0)
		return rc;
	if (ud) {
		struct outstanding *o = &rp->out[rp->n_out++];
		memset(o, 0, sizeof(*o));
		o->index = index;
		o->term = rp->raft.current_term;
		o->ud = ud;
	}
	*out_index = index;
	return 0;
}

bool replica_recovering(const struct replica *rp) { return rp->peers_json[0] != '\0'; }

bool replica_transferring(const struct replica *rp)
{
	return rp->raft.role == RAFT_LEADER && rp->raft.transfer_to[0];
}

int replica_transfer(struct replica *rp)
{
	if (rp->failed)
		return CAIRN_E_STORE;
	return raft_transfer(&rp->raft, NULL);
}

uint64_t replica_config_index(const struct replica *rp) { return rp->raft.config_index; }

const char *replica_leader_id(const struct replica *rp)
{
	if (rp->raft.role == RAFT_LEADER)
		return rp->raft.id;
	return replica_known_leader(rp) ? rp->raft.leader_id : "";
}

bool replica_has_config(const struct replica *rp) { return rp->raft.config.n > 0; }

const char *replica_leader_addr(const struct replica *rp)
{
	const char *a;

	if (rp->raft.role == RAFT_LEADER)
		return rp->address;
	if (!replica_known_leader(rp))
		return ""; /* silent for too long: as good as none */
	a = book_find(rp, rp->raft.leader_id);
	return a ? a : "";
}

size_t replica_voters(const struct replica *rp, const char **out, size_t max)
{
	size_t n = 0;

	if (rp->raft.config.n == 0) {
		if (max)
			out[n++] = rp->address;
		return n;
	}
	for (unsigned i = 0; i < rp->raft.config.n && n < max; i++)
		if (rp->raft.config.s[i].voter)
			out[n++] = rp->raft.config.s[i].address;
	return n;
}

const struct raft_config *replica_config_of(const struct replica *rp) { return &rp->raft.config; }

bool replica_known_leader(const struct replica *rp)
{
	return !rp->failed && (rp->raft.role == RAFT_LEADER ||
			       (rp->raft.leader_id[0] &&
				raft_last_contact_ms(&rp->raft) < 2 * rp->raft.opts.election_ms));
}

uint64_t replica_last_contact_ms(const struct replica *rp)
{
	uint64_t t = raft_last_contact_ms(&rp->raft);
	return t == UINT64_MAX ? 0 : t;
}

bool replica_lease_valid(const struct replica *rp)
{
	/* Committed is not enough: the state must show it, and entries
	 * committed by a message are applied at the next flush. */
	return !rp->failed && raft_lease_valid(&rp->raft) &&
	       rp->last_applied >= rp->raft.commit_index;
}

uint64_t replica_lease_until_ms(const struct replica *rp)
{
	return replica_lease_valid(rp) ? raft_lease_until_ms(&rp->raft) : 0;
}

struct store *replica_store(struct replica *rp) { return rp->st; }

uint64_t replica_log_base(const struct replica *rp) { return rp->raft.base_index; }

int replica_snapshot_rpc(struct replica *rp, struct rpc_req *req)
{
	if (rp->failed) {
		rpc_reply_error(req, CAIRN_E_STORE, "raftd is stopping after a store failure");
		return RPC_DONE;
	}
	if (req->msg.type == PROTO_SNAPSHOT_SAVE) {
		struct bg_archive *b = &rp->bg;
		bool ok;

		/* Copied by a thread; answered from replica_snapshot_poll. A
		 * request that arrives while a copy runs waits for the next
		 * one, so it sees at least the state of its arrival. */
		if (b->state == BG_IDLE) {
			ok = bg_park(&b->waiting, &b->n_waiting, &b->cap_waiting, req);
			if (ok && bg_start(rp) < 0) {
				b->n_waiting--;
				ok = false;
			}
		} else {
			ok = bg_park(&b->queued, &b->n_queued, &b->cap_queued, req);
		}
		if (!ok) {
			rpc_reply_error(req, -ENOMEM, "cannot start a snapshot");
			return RPC_DONE;
		}
		return RPC_KEEP;
	}
	if (req->msg.type == PROTO_SNAPSHOT_RESTORE) {
		const struct proto_snapshot_restore *q = &req->msg.u.snapshot_restore;
		const char *why = "";
		uint64_t index;
		int rc = replica_propose_restore(rp, q->data.ptr, q->data.len, req, &index, &why);

		if (rc == -EINVAL) {
			rpc_reply_error(req, CAIRN_E_BADREQ, "%s", why);
			return RPC_DONE;
		}
		if (rc < 0) {
			rpc_reply_error(req, rc, "%s", *why ? why : err_str(rc));
			return RPC_DONE;
		}
		return RPC_KEEP; /* answered by the applied callback after the commit */
	}
	rpc_reply_error(req, CAIRN_E_BADREQ, "not a snapshot request");
	return RPC_DONE;
}

uint64_t replica_term(const struct replica *rp) { return rp->raft.current_term; }

uint64_t replica_last_index(const struct replica *rp) { return rp->raft.last_index; }

uint64_t replica_last_applied(const struct replica *rp) { return rp->last_applied; }

bool replica_is_leader(const struct replica *rp)
{
	return rp->raft.role == RAFT_LEADER && !rp->failed;
}

const struct raft *replica_raft(const struct replica *rp)
{
	return &rp->raft;
}
