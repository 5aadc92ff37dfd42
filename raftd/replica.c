/* One server's replica: Raft core + store + state machine, group commit. */
#include "replica.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mp.h"
#include "raft/raft.h"
#include "store.h"

#define META_TERM "current_term"
#define META_VOTE "voted_for"
#define META_APPLIED "last_applied"

struct pending {
	uint64_t index;
	size_t off, len; /* encoded log value in rp->batch */
	void *ud;
	struct fsm_result res;
	bool applied;
};

struct replica {
	struct store *st;
	struct raft raft;
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
	void *next_ud; /* ud of the proposal being appended */
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
	p->ud = rp->next_ud;
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

/* Applies entries last_applied+1 .. commit_index inside the flush's write
 * transaction, reading them back from the log (which covers both this
 * batch and entries a crash left unapplied). */
static int io_apply(void *ctx, uint64_t commit_index)
{
	struct replica *rp = ctx;
	uint64_t i;
	int rc = 0;

	if (!rp->txn)
		return -EINVAL; /* only called from inside replica_flush */
	for (i = rp->last_applied + 1; i <= commit_index; i++) {
		uint8_t key[8];
		struct store_val v;
		struct mp_reader r;
		struct fsm_result res = {0};
		uint64_t type;
		const uint8_t *payload;
		size_t plen;

		store_u64_to_be(i, key);
		rc = store_get(rp->txn, STORE_LOG, key, sizeof(key), &v);
		if (rc < 0)
			return rc == -ENOENT ? CAIRN_E_STORE : rc;
		mp_reader_init(&r, v.ptr, v.len);
		if (mp_read_array(&r) != 3)
			return CAIRN_E_STORE;
		(void)mp_read_u64(&r); /* term */
		type = mp_read_u64(&r);
		if (mp_read_nil(&r))
			payload = NULL, plen = 0;
		else
			payload = mp_read_bin(&r, &plen);
		if (!mp_reader_done(&r))
			return CAIRN_E_STORE;
		if (type == RAFT_ENTRY_COMMAND) {
			rc = fsm_apply(rp->txn, i, payload, plen, &res, record_change, rp);
			if (rc < 0)
				return rc;
			if (rp->changes.err)
				return rp->changes.err;
		} else if (type == RAFT_ENTRY_NOOP) {
			res.ok = true;
		} else {
			res.code = CAIRN_E_PROTO; /* an entry type from the future */
		}
		struct pending *p = find_pending(rp, i);
		if (p) {
			p->res = res;
			p->applied = true;
		}
	}
	rc = store_put_u64(rp->txn, STORE_META, META_APPLIED, commit_index);
	if (rc < 0)
		return rc;
	rp->last_applied = commit_index;
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------ */

struct terms_acc {
	uint64_t *v;
	size_t n, cap;
};

/* Collects each log entry's term, in index order (the core keeps them). */
static int collect_term(void *ctx, struct store_val key, struct store_val val)
{
	struct terms_acc *t = ctx;
	struct mp_reader r;
	uint64_t index;

	if (store_be_to_u64(key, &index) < 0 || index != t->n + 1)
		return CAIRN_E_STORE;
	mp_reader_init(&r, val.ptr, val.len);
	if (mp_read_array(&r) != 3)
		return CAIRN_E_STORE;
	uint64_t term = mp_read_u64(&r);
	if (r.err)
		return CAIRN_E_STORE;
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

static int load(struct replica *rp, const char *id, char *err, size_t errlen)
{
	struct terms_acc terms = {0};
	struct store_txn *txn;
	struct raft_boot boot = {0};
	struct store_val k, v;
	char vote[RAFT_ID_MAX + 1] = "";
	int rc;

	rc = store_txn_begin(rp->st, false, &txn);
	if (rc < 0) {
		snprintf(err, errlen, "read raft state: %s", store_errmsg(rp->st));
		return rc;
	}
	rc = store_get_u64(txn, STORE_META, META_TERM, &boot.current_term);
	if (rc == 0)
		rc = store_get_u64(txn, STORE_META, META_APPLIED, &boot.last_applied);
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
	if (rc == 0 && boot.last_index > 0) {
		rc = store_scan_from(txn, STORE_LOG, NULL, 0, collect_term, &terms);
		if (rc == 0 && terms.n != boot.last_index)
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
	rc = raft_init(&rp->raft, &rp->io, id, &boot);
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
	return 0;
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
	rc = store_open(cfg->dir, cfg->map_size, &rp->st, err, errlen);
	if (rc < 0)
		goto fail;
	rc = load(rp, cfg->server_id, err, errlen);
	if (rc < 0)
		goto fail;
	*out = rp;
	return 0;
fail:
	replica_close(rp);
	return rc;
}

void replica_close(struct replica *rp)
{
	if (!rp)
		return;
	raft_close(&rp->raft);
	store_close(rp->st);
	free(rp->pend);
	mp_writer_close(&rp->batch);
	mp_writer_close(&rp->changes);
	mp_writer_close(&rp->scratch);
	free(rp);
}

int replica_start(struct replica *rp)
{
	if (rp->failed)
		return CAIRN_E_STORE;
	rp->next_ud = NULL;
	return raft_start(&rp->raft);
}

int replica_propose(struct replica *rp, const uint8_t *cmd, size_t len, void *ud,
		    uint64_t *out_index)
{
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	rp->next_ud = ud;
	rc = raft_propose(&rp->raft, RAFT_ENTRY_COMMAND, cmd, len, out_index);
	rp->next_ud = NULL;
	return rc;
}

bool replica_has_pending(const struct replica *rp) { return rp->n_pend > 0; }

static void report(struct replica *rp)
{
	for (size_t i = 0; i < rp->n_pend; i++) {
		struct pending *p = &rp->pend[i];
		if (!p->ud || !rp->applied_fn)
			continue;
		if (!p->applied) {
			/* Durable but not yet committed: cannot happen with one
			 * voter; with peers, these wait for the commit. */
			p->res.code = CAIRN_E_STORE;
		}
		rp->applied_fn(rp->ctx, p->ud, p->index, &p->res);
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

int replica_flush(struct replica *rp)
{
	struct store_txn *txn = NULL;
	int rc;

	if (rp->failed) {
		rc = CAIRN_E_STORE;
		goto fail;
	}
	if (rp->n_pend == 0)
		return 0;
	rc = store_reserve(rp->st, rp->batch.len);
	if (rc < 0)
		goto fail;
	rc = store_txn_begin(rp->st, true, &txn);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < rp->n_pend; i++) {
		uint8_t key[8];
		store_u64_to_be(rp->pend[i].index, key);
		rc = store_put(txn, STORE_LOG, key, sizeof(key), rp->batch.buf + rp->pend[i].off,
			       rp->pend[i].len);
		if (rc < 0)
			goto fail;
	}
	/* The entries are written into the transaction that also applies
	 * them and records lastApplied: they become durable together or not
	 * at all, which is what raft_persisted() asks of us here. */
	rp->txn = txn;
	rc = raft_persisted(&rp->raft, rp->pend[rp->n_pend - 1].index,
			    raft_term_at(&rp->raft, rp->pend[rp->n_pend - 1].index));
	rp->txn = NULL;
	if (rc < 0)
		goto fail;
	rc = store_txn_commit(txn); /* fsync: nothing is acknowledged before */
	txn = NULL;
	if (rc < 0)
		goto fail;
	report(rp);
	batch_reset(rp);
	return 0;
fail:
	store_txn_abort(txn);
	/* The Raft core's view (log tail, commit index) is now ahead of the
	 * disk: refuse everything until a restart reloads from the store. */
	rp->failed = true;
	mp_writer_reset(&rp->changes);
	for (size_t i = 0; i < rp->n_pend; i++) {
		rp->pend[i].applied = false;
		rp->pend[i].res.ok = false;
	}
	report(rp);
	batch_reset(rp);
	return rc < 0 ? rc : CAIRN_E_STORE;
}

struct store *replica_store(struct replica *rp) { return rp->st; }

uint64_t replica_term(const struct replica *rp) { return rp->raft.current_term; }

uint64_t replica_last_index(const struct replica *rp) { return rp->raft.last_index; }

uint64_t replica_last_applied(const struct replica *rp) { return rp->last_applied; }

bool replica_is_leader(const struct replica *rp)
{
	return rp->raft.role == RAFT_LEADER && !rp->failed;
}
