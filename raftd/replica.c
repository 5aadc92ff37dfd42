/* One server's replica: Raft core + store + state machine, group commit. */
#include "replica.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "store.h"

#define META_TERM "current_term"
#define META_VOTE "voted_for"
#define META_APPLIED "last_applied"

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

/* Applies entries last_applied+1 .. commit_index inside the flush's write
 * transaction, reading them back from the log (which covers both this
 * batch and entries a crash left unapplied). */
static int apply_now(struct replica *rp, uint64_t commit_index)
{
	uint64_t i;
	int rc = 0;

	for (i = rp->last_applied + 1; i <= commit_index; i++) {
		struct fsm_result res = {0};
		uint64_t term, type;
		const uint8_t *payload;
		size_t plen;

		rc = read_entry(rp, rp->txn, i, &term, &type, &payload, &plen);
		if (rc < 0)
			return rc;
		if (type == RAFT_ENTRY_COMMAND) {
			rc = fsm_apply(rp->txn, i, payload, plen, &res, record_change, rp);
			if (rc < 0)
				return rc;
			if (rp->changes.err)
				return rp->changes.err;
		} else if (type == RAFT_ENTRY_NOOP || type == RAFT_ENTRY_CONFIG) {
			res.ok = true;
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
	uint64_t cfg_index[2]; /* the last two configuration entries, 0: none */
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
	 * not); the one before it is kept for a truncation. */
	for (int ck = 0; ck < 2; ck++) {
		uint64_t ci = terms.cfg_index[ck], term, type;
		const uint8_t *payload;
		size_t plen;
		if (!ci)
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
	free(rp);
}

int replica_start(struct replica *rp)
{
	if (rp->failed)
		return CAIRN_E_STORE;
	return raft_start(&rp->raft);
}

int replica_propose(struct replica *rp, const uint8_t *cmd, size_t len, void *ud,
		    uint64_t *out_index)
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
	rc = raft_propose(&rp->raft, RAFT_ENTRY_COMMAND, cmd, len, &index);
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
	       rp->n_msgs > 0;
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

int replica_flush(struct replica *rp)
{
	struct store_txn *txn = NULL;
	size_t n_flushed = 0;
	int rc;

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
	if (rp->n_pend == 0 && !rp->trunc_from && rp->commit_target <= rp->last_applied) {
		send_msgs(rp); /* votes, heartbeats, acks of durable entries */
		return 0;
	}
	rc = store_reserve(rp->st, rp->batch.len);
	if (rc < 0)
		goto fail;
	rc = store_txn_begin(rp->st, true, &txn);
	if (rc < 0)
		goto fail;
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
	}
	if (rc == 0 && rp->commit_target > rp->last_applied)
		rc = apply_now(rp, rp->commit_target);
	rp->txn = NULL;
	if (rc < 0)
		goto fail;
	rc = store_txn_commit(txn); /* fsync: nothing is acknowledged before */
	txn = NULL;
	if (rc < 0)
		goto fail;
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
	return rc;
}

int replica_tick(struct replica *rp)
{
	int rc;

	if (rp->failed)
		return CAIRN_E_STORE;
	rc = raft_tick(&rp->raft);
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

uint64_t replica_term(const struct replica *rp) { return rp->raft.current_term; }

uint64_t replica_last_index(const struct replica *rp) { return rp->raft.last_index; }

uint64_t replica_last_applied(const struct replica *rp) { return rp->last_applied; }

bool replica_is_leader(const struct replica *rp)
{
	return rp->raft.role == RAFT_LEADER && !rp->failed;
}
