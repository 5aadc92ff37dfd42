/* Deterministic Raft cluster simulation: fake clock, network and disks. */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lin.h"
#include "raft/raft.h"

#define MAX_NODES 7
#define N_KEYS 3
#define CLIENT_TIMEOUT_MS 3000

/* ---- entries and logs --------------------------------------------------------- */

struct sentry {
	uint64_t term;
	unsigned type;
	uint8_t *payload; /* owned */
	size_t len;
	uint64_t chain; /* hash of the whole prefix up to this entry */
};

struct slog {
	struct sentry *v; /* index i at v[i-base-1] */
	size_t n, cap;
	uint64_t base;	     /* entries up to here compacted (or a snapshot installed) */
	uint64_t base_term;  /* term of entry base */
	uint64_t base_chain; /* prefix hash up to base */
};

#define CFG_MAX (RAFT_MAX_SERVERS * (RAFT_ID_MAX + RAFT_ADDR_MAX + 8))

/* A snapshot of the fake state machine: the registers as of index, with
 * the configuration in force there and the prefix hash up to it. */
struct ssnap {
	uint64_t index, term, chain, cfg_index;
	int64_t kv[N_KEYS];
	uint8_t cfg[CFG_MAX];
	size_t cfg_len;
};

/* Serialized image: index, term, chain, cfg_index, kv[], cfg_len (8
 * bytes each), cfg. */
#define IMG_MAX (8 * (5 + N_KEYS) + CFG_MAX)

/* A client command, the payload of a COMMAND entry. */
struct op {
	uint64_t op_id;
	uint32_t kind; /* enum lin_kind */
	uint32_t key;
	int64_t a, b;
};

struct snode {
	struct sim *sim;
	unsigned idx;
	char id[16];
	bool alive;
	struct raft r;
	struct raft_io io;
	bool have_raft;
	/* durable */
	uint64_t term;
	char vote[RAFT_ID_MAX + 1];
	struct slog disk;
	/* volatile */
	struct slog log;
	size_t same_upto; /* log and disk agree on 1..same_upto */
	bool dirty;
	uint64_t sync_at;
	uint64_t next_tick;
	bool flush_due;
	uint64_t applied;
	int64_t kv[N_KEYS];
	uint64_t checked_commit;
	unsigned group;
	/* snapshots */
	struct ssnap snap;	/* latest taken or installed (volatile) */
	struct ssnap disk_snap; /* durable */
	bool install_pending;	/* snap installed, not synced yet */
	uint8_t applied_cfg[CFG_MAX]; /* configuration as of applied */
	size_t applied_cfg_len;
	uint64_t applied_cfg_index;
	uint64_t recv_index, recv_term; /* InstallSnapshot being received */
	uint8_t recv[IMG_MAX];
	size_t recv_len;
};

struct smsg {
	uint64_t at, seq;
	unsigned to;
	struct raft_msg m;
	struct raft_entry *ents;
	uint8_t **payloads;
	uint8_t *snap_data, *snap_cfg; /* InstallSnapshot chunk and configuration */
};

enum hstatus { H_PENDING, H_OK, H_UNKNOWN, H_FAILED };

struct hist {
	struct lin_op op;
	unsigned status;
	uint64_t op_id;
};

struct client {
	bool busy;
	size_t h;	/* history index */
	unsigned node;	/* where the op was proposed */
	uint64_t index; /* its log index */
	uint64_t deadline;
	uint64_t next_at;
	int believed;	      /* node this client takes for the leader, -1: none */
	bool barrier;	      /* a read waiting for its ReadIndex round */
	uint64_t seq, rindex; /* ...its sequence and read index */
};

struct tcommit {
	bool set;
	uint64_t chain;
	uint64_t term; /* highest term in the cluster when first seen committed */
};

struct tpair {
	uint64_t term, chain;
};

struct sim {
	struct sim_opts o;
	uint64_t rng;
	uint64_t now;
	bool failed;
	char err[512];
	struct snode nodes[MAX_NODES];
	struct smsg *msgs;
	size_t n_msgs, cap_msgs;
	uint64_t msg_seq;
	struct client clients[8];
	struct hist *hist;
	size_t n_hist, cap_hist;
	uint64_t next_op_id;
	int64_t next_value;
	uint64_t next_fault;
	bool quiet;
	/* invariants */
	char (*leader_of)[RAFT_ID_MAX + 1]; /* per term */
	size_t cap_terms;
	struct tcommit *committed; /* per index */
	size_t cap_committed;
	uint64_t max_committed;
	struct tpair **seen; /* per index: (term, chain) pairs seen in any log */
	size_t cap_seen;
	struct {
		uint64_t index, op_id;
	} * acked;
	size_t n_acked, cap_acked;
	struct sim_stats st;
};

static bool fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct sim *s, const char *fmt, ...)
{
	va_list ap;

	if (s->failed)
		return false;
	s->failed = true;
	va_start(ap, fmt);
	int n = snprintf(s->err, sizeof(s->err),
			 "seed %llu, t=%llu ms: ", (unsigned long long)s->o.seed,
			 (unsigned long long)s->now);
	vsnprintf(s->err + n, sizeof(s->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return false;
}

static uint64_t rnd(struct sim *s)
{
	/* xorshift64* */
	uint64_t x = s->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->rng = x;
	return x * 2685821657736338717ull;
}

static uint64_t rnd_in(struct sim *s, uint64_t lo, uint64_t hi) /* inclusive */
{
	return lo + rnd(s) % (hi - lo + 1);
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *np = realloc(*p, c * elem);
	if (!np)
		return false;
	memset((char *)np + *cap * elem, 0, (c - *cap) * elem);
	*p = np;
	*cap = c;
	return true;
}

static uint64_t hash_entry(uint64_t prev, uint64_t term, unsigned type, const uint8_t *p,
			   size_t len)
{
	uint64_t h = prev ^ 0x9e3779b97f4a7c15ull;

	h = (h ^ term) * 0x100000001b3ull;
	h = (h ^ type) * 0x100000001b3ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	h ^= h >> 31;
	return h;
}

static void log_trunc(struct slog *l, size_t n)
{
	while (l->n > n)
		free(l->v[--l->n].payload);
}

static uint64_t log_last(const struct slog *l) { return l->base + l->n; }

/* Entry i, NULL when compacted or beyond the end. */
static const struct sentry *log_get(const struct slog *l, uint64_t i)
{
	return i > l->base && i <= log_last(l) ? &l->v[i - l->base - 1] : NULL;
}

static uint64_t log_last_term(const struct slog *l)
{
	return l->n ? l->v[l->n - 1].term : l->base_term;
}

static uint64_t log_last_chain(const struct slog *l)
{
	return l->n ? l->v[l->n - 1].chain : l->base_chain;
}

/* Keeps entries up to index i (absolute). */
static void log_trunc_to(struct slog *l, uint64_t i) { log_trunc(l, i > l->base ? i - l->base : 0); }

/* Drops entries up to upto (compaction). */
static void log_drop_prefix(struct slog *l, uint64_t upto)
{
	const struct sentry *e = log_get(l, upto);
	size_t k;

	if (!e)
		return;
	l->base_term = e->term;
	l->base_chain = e->chain;
	k = upto - l->base;
	for (size_t i = 0; i < k; i++)
		free(l->v[i].payload);
	memmove(l->v, l->v + k, (l->n - k) * sizeof(*l->v));
	l->n -= k;
	l->base = upto;
}

static bool log_push(struct slog *l, const struct sentry *e)
{
	if (!grow((void **)&l->v, &l->cap, l->n + 1, sizeof(*l->v)))
		return false;
	struct sentry *d = &l->v[l->n];
	*d = *e;
	d->payload = NULL;
	if (e->len) {
		d->payload = malloc(e->len);
		if (!d->payload)
			return false;
		memcpy(d->payload, e->payload, e->len);
	}
	l->n++;
	return true;
}

static void log_free(struct slog *l)
{
	log_trunc(l, 0);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Replaces dst by a copy of src. */
static bool log_copy(struct slog *dst, const struct slog *src)
{
	log_trunc(dst, 0);
	dst->base = src->base;
	dst->base_term = src->base_term;
	dst->base_chain = src->base_chain;
	for (size_t i = 0; i < src->n; i++)
		if (!log_push(dst, &src->v[i]))
			return false;
	return true;
}

/* ---- invariant bookkeeping ------------------------------------------------------ */

static uint64_t max_term(const struct sim *s)
{
	uint64_t t = 0;

	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		const struct snode *n = &s->nodes[i];
		uint64_t nt = n->alive && n->have_raft ? n->r.current_term : n->term;
		if (nt > t)
			t = nt;
	}
	return t;
}

static bool note_committed(struct sim *s, uint64_t index, uint64_t chain, const char *who)
{
	if (!grow((void **)&s->committed, &s->cap_committed, index + 1, sizeof(*s->committed)))
		return fail(s, "out of memory");
	struct tcommit *c = &s->committed[index];
	if (!c->set) {
		c->set = true;
		c->chain = chain;
		c->term = max_term(s);
		if (index > s->max_committed)
			s->max_committed = index;
		return true;
	}
	if (c->chain != chain)
		return fail(s, "State Machine Safety: %s has a different committed entry at %llu",
			    who, (unsigned long long)index);
	return true;
}

/* ---- node io --------------------------------------------------------------------- */

static uint64_t io_now(void *ctx) { return ((struct snode *)ctx)->sim->now; }

static uint32_t io_rand(void *ctx) { return (uint32_t)(rnd(((struct snode *)ctx)->sim) >> 32); }

static int io_vote(void *ctx, uint64_t term, const char *vote)
{
	struct snode *n = ctx;

	n->term = term;
	snprintf(n->vote, sizeof(n->vote), "%s", vote);
	return 0;
}

static void mark_dirty(struct snode *n)
{
	if (!n->dirty) {
		n->dirty = true;
		n->sync_at = n->sim->now + rnd_in(n->sim, 1, n->sim->o.sync_max_ms);
	}
}

static int io_append(void *ctx, const struct raft_entry *e)
{
	struct snode *n = ctx;
	struct sim *s = n->sim;
	struct sentry se;

	if (e->index != log_last(&n->log) + 1) {
		fail(s, "%s: append at %llu with a log of %llu", n->id,
		     (unsigned long long)e->index, (unsigned long long)log_last(&n->log));
		return -EIO;
	}
	se.term = e->term;
	se.type = e->type;
	se.payload = (uint8_t *)e->payload;
	se.len = e->len;
	se.chain = hash_entry(log_last_chain(&n->log), e->term, e->type, e->payload, e->len);
	if (!log_push(&n->log, &se)) {
		fail(s, "out of memory");
		return -ENOMEM;
	}
	/* Log Matching, incrementally: an (index, term) pair always comes
	 * with the same prefix hash, in every log, forever. */
	uint64_t idx = e->index;
	if (!grow((void **)&s->seen, &s->cap_seen, idx + 1, sizeof(*s->seen))) {
		fail(s, "out of memory");
		return -ENOMEM;
	}
	struct tpair *list = s->seen[idx];
	unsigned cnt = 0;
	if (list)
		while (list[cnt].term)
			cnt++;
	for (unsigned k = 0; k < cnt; k++) {
		if (list[k].term == e->term) {
			if (list[k].chain != se.chain) {
				fail(s, "Log Matching: %s has another prefix for %llu/%llu", n->id,
				     (unsigned long long)idx, (unsigned long long)e->term);
				return -EIO;
			}
			goto dirty;
		}
	}
	list = realloc(list, (cnt + 2) * sizeof(*list));
	if (!list) {
		fail(s, "out of memory");
		return -ENOMEM;
	}
	list[cnt].term = e->term;
	list[cnt].chain = se.chain;
	list[cnt + 1].term = 0;
	s->seen[idx] = list;
dirty:
	mark_dirty(n);
	return 0;
}

static int io_truncate(void *ctx, uint64_t index)
{
	struct snode *n = ctx;

	if (index <= n->log.base || index > log_last(&n->log) + 1) {
		fail(n->sim, "%s: truncate at %llu with a log of %llu", n->id,
		     (unsigned long long)index, (unsigned long long)log_last(&n->log));
		return -EIO;
	}
	log_trunc_to(&n->log, index - 1);
	if (n->same_upto > index - 1)
		n->same_upto = index - 1;
	mark_dirty(n);
	return 0;
}

static void complete(struct sim *s, struct client *c, unsigned status, int64_t out)
{
	struct hist *h = &s->hist[c->h];

	h->status = status;
	if (status == H_OK) {
		h->op.out = out;
		h->op.ret_ms = s->now;
		s->st.acked++;
	} else if (status == H_UNKNOWN) {
		h->op.ret_ms = LIN_UNKNOWN;
		s->st.unknown++;
	} else {
		s->st.failed++;
	}
	c->busy = false;
	c->barrier = false;
	c->next_at = s->now + rnd_in(s, 0, 20);
}

/* Consistent reads: served once the leader's heartbeat round is
 * acknowledged by a majority and its read index applied; a read whose
 * leader stepped down or crashed failed (reads change nothing). */
static void check_barriers(struct sim *s)
{
	for (unsigned k = 0; k < s->o.n_clients; k++) {
		struct client *c = &s->clients[k];
		struct snode *n = &s->nodes[c->node];
		if (!c->busy || !c->barrier)
			continue;
		if (!n->alive || n->r.role != RAFT_LEADER) {
			complete(s, c, H_FAILED, 0);
			continue;
		}
		if (raft_read_ready(&n->r, c->seq) && n->applied >= c->rindex) {
			s->st.index_reads++;
			complete(s, c, H_OK, n->kv[s->hist[c->h].op.key % N_KEYS]);
		}
	}
}

static int io_apply(void *ctx, uint64_t commit)
{
	struct snode *n = ctx;
	struct sim *s = n->sim;

	if (commit > log_last(&n->log)) {
		fail(s, "%s: commit %llu beyond its log (%llu)", n->id, (unsigned long long)commit,
		     (unsigned long long)log_last(&n->log));
		return -EIO;
	}
	for (uint64_t i = n->applied + 1; i <= commit; i++) {
		const struct sentry *e = log_get(&n->log, i);
		int64_t out = 0;
		struct op op;

		if (!e) {
			fail(s, "%s: applying compacted entry %llu", n->id, (unsigned long long)i);
			return -EIO;
		}
		if (!note_committed(s, i, e->chain, n->id))
			return -EIO;
		if (e->type == RAFT_ENTRY_CONFIG && e->len <= CFG_MAX) {
			memcpy(n->applied_cfg, e->payload, e->len);
			n->applied_cfg_len = e->len;
			n->applied_cfg_index = i;
		}
		memset(&op, 0, sizeof(op));
		if (e->type == RAFT_ENTRY_COMMAND && e->len == sizeof(op)) {
			memcpy(&op, e->payload, sizeof(op));
			int64_t *v = &n->kv[op.key % N_KEYS];
			if (op.kind == LIN_PUT) {
				*v = op.a;
			} else if (op.kind == LIN_GET) {
				out = *v;
			} else if (*v == op.a) {
				*v = op.b;
				out = 1;
			}
		}
		n->applied = i;
		for (unsigned k = 0; k < s->o.n_clients; k++) {
			struct client *c = &s->clients[k];
			if (!c->busy || c->node != n->idx || c->index != i)
				continue;
			if (e->type == RAFT_ENTRY_COMMAND && op.op_id == s->hist[c->h].op_id) {
				if (!grow((void **)&s->acked, &s->cap_acked, s->n_acked + 1,
					  sizeof(*s->acked)))
					return -ENOMEM;
				s->acked[s->n_acked].index = i;
				s->acked[s->n_acked].op_id = op.op_id;
				s->n_acked++;
				complete(s, c, H_OK, out);
			} else {
				complete(s, c, H_FAILED, 0); /* another entry won the index */
			}
		}
	}
	return 0;
}

static bool linked(const struct sim *s, unsigned a, unsigned b)
{
	return s->nodes[a].group == s->nodes[b].group;
}

static int node_of(const struct sim *s, const char *id)
{
	for (unsigned i = 0; i < s->o.n_nodes; i++)
		if (strcmp(s->nodes[i].id, id) == 0)
			return (int)i;
	return -1;
}

static bool enqueue(struct sim *s, struct snode *from, unsigned to, const struct raft_msg *m)
{
	struct smsg *q;
	uint64_t n = m->type == RAFT_MSG_APPEND ? m->u.append.n_entries : 0;

	if (!grow((void **)&s->msgs, &s->cap_msgs, s->n_msgs + 1, sizeof(*s->msgs)))
		return false;
	q = &s->msgs[s->n_msgs];
	memset(q, 0, sizeof(*q));
	q->m = *m;
	q->to = to;
	q->seq = s->msg_seq++;
	q->at = s->now + rnd_in(s, 1, s->o.delay_max_ms);
	if (n) {
		uint64_t prev = m->u.append.prev_index;
		if (prev + n > log_last(&from->log) || prev < from->log.base) {
			fail(s, "%s sent entries outside its log", from->id);
			return false;
		}
		q->ents = calloc(n, sizeof(*q->ents));
		q->payloads = calloc(n, sizeof(*q->payloads));
		if (!q->ents || !q->payloads)
			return false;
		for (uint64_t k = 0; k < n; k++) {
			const struct sentry *e = log_get(&from->log, prev + 1 + k);
			q->ents[k].index = prev + 1 + k;
			q->ents[k].term = e->term;
			q->ents[k].type = e->type;
			q->ents[k].len = e->len;
			if (e->len) {
				q->payloads[k] = malloc(e->len);
				if (!q->payloads[k])
					return false;
				memcpy(q->payloads[k], e->payload, e->len);
			}
			q->ents[k].payload = q->payloads[k];
		}
		q->m.u.append.entries = q->ents;
	}
	if (m->type == RAFT_MSG_SNAPSHOT) {
		q->snap_data = malloc(m->u.snapshot.len + 1);
		q->snap_cfg = malloc(m->u.snapshot.config_len + 1);
		if (!q->snap_data || !q->snap_cfg) {
			free(q->snap_data);
			free(q->snap_cfg);
			return false;
		}
		if (m->u.snapshot.len)
			memcpy(q->snap_data, m->u.snapshot.data, m->u.snapshot.len);
		if (m->u.snapshot.config_len)
			memcpy(q->snap_cfg, m->u.snapshot.config, m->u.snapshot.config_len);
		q->m.u.snapshot.data = q->snap_data;
		q->m.u.snapshot.config = q->snap_cfg;
	}
	s->n_msgs++;
	return true;
}

static void msg_free(struct smsg *q)
{
	uint64_t n = q->m.type == RAFT_MSG_APPEND ? q->m.u.append.n_entries : 0;

	if (q->payloads)
		for (uint64_t k = 0; k < n; k++)
			free(q->payloads[k]);
	free(q->payloads);
	free(q->ents);
	free(q->snap_data);
	free(q->snap_cfg);
}

/* ---- snapshots --------------------------------------------------------------------- */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static size_t snap_encode(const struct ssnap *sn, uint8_t *buf)
{
	size_t o = 0;

	put_u64(buf + o, sn->index), o += 8;
	put_u64(buf + o, sn->term), o += 8;
	put_u64(buf + o, sn->chain), o += 8;
	put_u64(buf + o, sn->cfg_index), o += 8;
	for (unsigned k = 0; k < N_KEYS; k++)
		put_u64(buf + o, (uint64_t)sn->kv[k]), o += 8;
	put_u64(buf + o, sn->cfg_len), o += 8;
	memcpy(buf + o, sn->cfg, sn->cfg_len);
	return o + sn->cfg_len;
}

static bool snap_decode(const uint8_t *buf, size_t len, struct ssnap *sn)
{
	size_t o = 0;

	if (len < 8 * (5 + N_KEYS))
		return false;
	sn->index = get_u64(buf + o), o += 8;
	sn->term = get_u64(buf + o), o += 8;
	sn->chain = get_u64(buf + o), o += 8;
	sn->cfg_index = get_u64(buf + o), o += 8;
	for (unsigned k = 0; k < N_KEYS; k++)
		sn->kv[k] = (int64_t)get_u64(buf + o), o += 8;
	sn->cfg_len = get_u64(buf + o), o += 8;
	if (sn->cfg_len > CFG_MAX || o + sn->cfg_len != len)
		return false;
	memcpy(sn->cfg, buf + o, sn->cfg_len);
	return true;
}

/* Leader's host: attaches the chunk at m's offset of its latest snapshot
 * (chunks of 1-48 bytes, so an image takes several). */
static bool fill_snapshot(struct snode *n, struct raft_msg *m, uint8_t *img)
{
	size_t len = snap_encode(&n->snap, img), chunk;
	uint64_t off = m->u.snapshot.offset;

	if (n->snap.index == 0 || n->snap.index < n->log.base)
		return fail(n->sim, "%s must send a snapshot it does not have", n->id);
	if (off > len)
		off = 0;
	chunk = (size_t)rnd_in(n->sim, 1, 48);
	if (chunk > len - off)
		chunk = len - (size_t)off;
	m->u.snapshot.offset = off;
	m->u.snapshot.last_index = n->snap.index;
	m->u.snapshot.last_term = n->snap.term;
	m->u.snapshot.data = img + off;
	m->u.snapshot.len = chunk;
	m->u.snapshot.done = off + chunk == len;
	m->u.snapshot.config = n->snap.cfg;
	m->u.snapshot.config_len = n->snap.cfg_len;
	return true;
}

static int io_snapshot_recv(void *ctx, const struct raft_msg *m, uint64_t *next)
{
	struct snode *n = ctx;
	const uint64_t off = m->u.snapshot.offset;
	struct ssnap sn;

	if (off == 0) {
		n->recv_index = m->u.snapshot.last_index;
		n->recv_term = m->u.snapshot.last_term;
		n->recv_len = 0;
	}
	if (n->recv_index != m->u.snapshot.last_index || n->recv_term != m->u.snapshot.last_term) {
		*next = 0;
		return 0;
	}
	if (off != n->recv_len || off + m->u.snapshot.len > IMG_MAX) {
		*next = n->recv_len; /* a duplicate or a gap */
		return 0;
	}
	memcpy(n->recv + off, m->u.snapshot.data, m->u.snapshot.len);
	n->recv_len += m->u.snapshot.len;
	*next = n->recv_len;
	if (!m->u.snapshot.done)
		return 0;
	if (!snap_decode(n->recv, n->recv_len, &sn) || sn.index != n->recv_index ||
	    sn.term != n->recv_term) {
		n->recv_len = 0;
		n->recv_index = 0;
		*next = 0;
		return 0;
	}
	return 1;
}

static int io_snapshot_install(void *ctx, uint64_t index, uint64_t term)
{
	struct snode *n = ctx;
	struct sim *s = n->sim;
	struct ssnap sn;

	if (!snap_decode(n->recv, n->recv_len, &sn) || sn.index != index || sn.term != term) {
		fail(s, "%s: install of a snapshot that is not staged", n->id);
		return -EIO;
	}
	if (!note_committed(s, index, sn.chain, n->id))
		return -EIO;
	n->recv_index = 0;
	n->recv_len = 0;
	n->snap = sn;
	n->install_pending = true;
	log_trunc(&n->log, 0);
	n->log.base = index;
	n->log.base_term = term;
	n->log.base_chain = sn.chain;
	n->same_upto = 0;
	memcpy(n->kv, sn.kv, sizeof(n->kv));
	memcpy(n->applied_cfg, sn.cfg, sn.cfg_len);
	n->applied_cfg_len = sn.cfg_len;
	n->applied_cfg_index = sn.cfg_index;
	n->applied = index;
	if (n->checked_commit < index)
		n->checked_commit = index;
	s->st.installs++;
	/* Proposals of this node up to there: their fate is unknown here. */
	for (unsigned k = 0; k < s->o.n_clients; k++) {
		struct client *c = &s->clients[k];
		if (c->busy && !c->barrier && c->node == n->idx && c->index <= index)
			complete(s, c, H_UNKNOWN, 0);
	}
	mark_dirty(n);
	return 0;
}

/* Host policy: after snapshot_threshold applied entries, snapshot the
 * state (durably: a real host fsyncs it first) and drop the log up to
 * trailing entries behind it. Only once the log is synced that far, so
 * the disk log and the snapshot always agree. */
static int maybe_snapshot(struct snode *n)
{
	struct sim *s = n->sim;
	const struct sentry *e;
	uint64_t upto;
	int rc;

	if (!s->o.snapshot_threshold || !n->alive || n->install_pending ||
	    n->applied < n->snap.index + s->o.snapshot_threshold || n->applied > n->same_upto)
		return 0;
	e = log_get(&n->log, n->applied);
	if (!e)
		return 0;
	n->snap.index = n->applied;
	n->snap.term = e->term;
	n->snap.chain = e->chain;
	memcpy(n->snap.kv, n->kv, sizeof(n->kv));
	memcpy(n->snap.cfg, n->applied_cfg, n->applied_cfg_len);
	n->snap.cfg_len = n->applied_cfg_len;
	n->snap.cfg_index = n->applied_cfg_index;
	n->disk_snap = n->snap;
	s->st.snapshots++;
	upto = n->applied > s->o.trailing_logs ? n->applied - s->o.trailing_logs : 0;
	if (upto <= n->log.base)
		return 0;
	rc = raft_compact(&n->r, upto);
	if (rc < 0)
		return rc;
	log_drop_prefix(&n->log, upto);
	log_drop_prefix(&n->disk, upto);
	return 0;
}

static int io_send(void *ctx, const struct raft_msg *m)
{
	struct snode *n = ctx;
	struct sim *s = n->sim;
	int to = node_of(s, m->to);
	struct raft_msg sm;
	uint8_t img[IMG_MAX];

	if (m->type == RAFT_MSG_SNAPSHOT) {
		sm = *m;
		if (!fill_snapshot(n, &sm, img))
			return -EIO;
		m = &sm;
	}

	if (to < 0 || !linked(s, n->idx, (unsigned)to) || rnd_in(s, 0, 99) < s->o.loss_pct) {
		s->st.dropped++;
		return 0;
	}
	if (!enqueue(s, n, (unsigned)to, m))
		return s->failed ? -EIO : -ENOMEM;
	if (rnd_in(s, 0, 99) < s->o.dup_pct && !enqueue(s, n, (unsigned)to, m))
		return s->failed ? -EIO : -ENOMEM;
	return 0;
}

/* ---- node lifecycle -------------------------------------------------------------- */

static void schedule_tick(struct snode *n)
{
	uint64_t t = raft_next_tick_ms(&n->r);

	n->next_tick = t > n->sim->now ? t : n->sim->now + 1;
}

static int boot_node(struct sim *s, struct snode *n, const struct raft_config *recover)
{
	struct raft_boot b;
	uint64_t *terms = NULL;
	int rc;

	memset(&b, 0, sizeof(b));
	b.current_term = n->term;
	b.voted_for = n->vote;
	b.last_index = log_last(&n->disk);
	b.last_term = log_last_term(&n->disk);
	b.base_index = n->disk.base;
	b.base_term = n->disk.base_term;
	b.last_applied = n->disk_snap.index;
	b.await_config = true;
	if (s->o.fast) {
		b.opts.election_ms = 100;
		b.opts.heartbeat_ms = 20;
		b.opts.lease_ms = 50;
	}
	if (n->disk.n) {
		terms = malloc(n->disk.n * sizeof(*terms));
		if (!terms)
			return -ENOMEM;
		for (size_t i = 0; i < n->disk.n; i++)
			terms[i] = n->disk.v[i].term;
	}
	b.terms = terms;
	n->io.ctx = n;
	n->io.persist_vote = io_vote;
	n->io.append = io_append;
	n->io.apply = io_apply;
	n->io.truncate = io_truncate;
	n->io.send = io_send;
	n->io.now_ms = io_now;
	n->io.rand_u32 = io_rand;
	n->io.snapshot_recv = io_snapshot_recv;
	n->io.snapshot_install = io_snapshot_install;
	rc = raft_init(&n->r, &n->io, n->id, &b);
	free(terms);
	if (rc < 0)
		return rc;
	n->have_raft = true;
	if (n->disk_snap.index) {
		/* The configuration as of the snapshot, then later ones. */
		rc = raft_boot_config(&n->r, n->disk_snap.cfg_index, n->disk_snap.cfg,
				      n->disk_snap.cfg_len);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < n->disk.n; i++) {
		const struct sentry *e = &n->disk.v[i];
		uint64_t idx = n->disk.base + 1 + i;
		if (e->type == RAFT_ENTRY_CONFIG &&
		    (!n->disk_snap.index || idx > n->disk_snap.cfg_index)) {
			rc = raft_boot_config(&n->r, idx, e->payload, e->len);
			if (rc < 0)
				return rc;
		}
	}
	if (recover) {
		rc = raft_recover_config(&n->r, recover);
		if (rc < 0)
			return rc;
	}
	/* The volatile log starts as the disk; the state as the snapshot. */
	if (!log_copy(&n->log, &n->disk))
		return -ENOMEM;
	n->same_upto = log_last(&n->disk);
	n->dirty = false;
	n->snap = n->disk_snap;
	n->install_pending = false;
	n->recv_index = 0;
	n->recv_len = 0;
	n->applied = n->snap.index;
	n->checked_commit = n->snap.index;
	memcpy(n->kv, n->snap.kv, sizeof(n->kv));
	memcpy(n->applied_cfg, n->snap.cfg, n->snap.cfg_len);
	n->applied_cfg_len = n->snap.cfg_len;
	n->applied_cfg_index = n->snap.cfg_index;
	n->alive = true;
	return 0;
}

static void sync_disk(struct snode *n)
{
	if (n->install_pending || n->disk.base != n->log.base) {
		/* An installed snapshot and the log after it, atomically. */
		(void)log_copy(&n->disk, &n->log); /* OOM shows as a short disk */
		n->disk_snap = n->snap;
		n->install_pending = false;
	} else {
		log_trunc_to(&n->disk, n->same_upto);
		for (uint64_t i = log_last(&n->disk) + 1; i <= log_last(&n->log); i++)
			(void)log_push(&n->disk, log_get(&n->log, i));
	}
	n->same_upto = log_last(&n->disk);
	n->dirty = false;
}

void sim_crash(struct sim *s, unsigned node, bool lose_unsynced)
{
	struct snode *n = &s->nodes[node];

	if (!n->alive)
		return;
	if (!lose_unsynced)
		sync_disk(n);
	n->alive = false;
	raft_close(&n->r);
	n->have_raft = false;
	n->dirty = false;
	s->st.crashes++;
	for (unsigned k = 0; k < s->o.n_clients; k++) {
		struct client *c = &s->clients[k];
		if (c->busy && c->node == node)
			complete(s, c, c->barrier ? H_FAILED : H_UNKNOWN, 0);
	}
}

int sim_restart(struct sim *s, unsigned node) { return sim_restart_recover(s, node, NULL); }

int sim_restart_recover(struct sim *s, unsigned node, const struct raft_config *recover)
{
	struct snode *n = &s->nodes[node];
	int rc;

	if (n->alive)
		return 0;
	rc = boot_node(s, n, recover);
	if (rc == 0)
		rc = raft_start(&n->r);
	if (rc < 0) {
		fail(s, "%s: restart failed (%d)", n->id, rc);
		return -1;
	}
	schedule_tick(n);
	return 0;
}

struct sim *sim_new(const struct sim_opts *o)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct raft_config cfg;

	if (!s)
		return NULL;
	s->o = *o;
	if (s->o.n_nodes == 0 || s->o.n_nodes > MAX_NODES)
		s->o.n_nodes = 3;
	if (s->o.n_voters == 0 || s->o.n_voters > s->o.n_nodes)
		s->o.n_voters = s->o.n_nodes;
	if (!s->o.delay_max_ms)
		s->o.delay_max_ms = 20;
	if (!s->o.sync_max_ms)
		s->o.sync_max_ms = 5;
	if (s->o.n_clients > 8)
		s->o.n_clients = 8;
	s->rng = o->seed * 0x9e3779b97f4a7c15ull + 0x1234567;
	if (!s->rng)
		s->rng = 1;
	s->next_value = 1;
	s->next_op_id = 1;
	memset(&cfg, 0, sizeof(cfg));
	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		struct snode *n = &s->nodes[i];
		n->sim = s;
		n->idx = i;
		snprintf(n->id, sizeof(n->id), "n%u", i + 1);
		if (i < s->o.n_voters) {
			snprintf(cfg.s[cfg.n].id, sizeof(cfg.s[0].id), "%s", n->id);
			snprintf(cfg.s[cfg.n].address, sizeof(cfg.s[0].address), "10.0.0.%u:8300",
				 i + 1);
			cfg.s[cfg.n].voter = true;
			cfg.n++;
		}
	}
	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		struct snode *n = &s->nodes[i];
		if (boot_node(s, n, NULL) < 0)
			goto fail;
		if (i < s->o.n_voters) {
			if (raft_bootstrap(&n->r, &cfg) < 0)
				goto fail;
			sync_disk(n); /* a bootstrap is fsync'd before anything else */
		}
		if (raft_start(&n->r) < 0)
			goto fail;
		schedule_tick(n);
	}
	for (unsigned k = 0; k < s->o.n_clients; k++) {
		s->clients[k].next_at = rnd_in(s, 0, 50);
		s->clients[k].believed = -1;
	}
	s->next_fault = s->o.faults || s->o.membership ? rnd_in(s, 100, 400) : UINT64_MAX;
	return s;
fail:
	sim_free(s);
	return NULL;
}

void sim_free(struct sim *s)
{
	if (!s)
		return;
	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		struct snode *n = &s->nodes[i];
		if (n->have_raft)
			raft_close(&n->r);
		log_free(&n->log);
		log_free(&n->disk);
	}
	for (size_t i = 0; i < s->n_msgs; i++)
		msg_free(&s->msgs[i]);
	free(s->msgs);
	free(s->hist);
	free(s->leader_of);
	free(s->committed);
	for (size_t i = 0; i < s->cap_seen; i++)
		free(s->seen[i]);
	free(s->seen);
	free(s->acked);
	free(s);
}

/* ---- clients ------------------------------------------------------------------------ */

/* Like a real client, keep talking to the node we believe leads until it
 * refuses (so a deposed leader that does not know it yet gets requests). */
static int leader_guess(struct sim *s, struct client *c)
{
	const struct snode *b = c->believed >= 0 ? &s->nodes[c->believed] : NULL;

	if (b && b->alive && b->r.role == RAFT_LEADER && rnd_in(s, 0, 9) > 0)
		return c->believed;
	c->believed = sim_leader(s);
	if (c->believed < 0 || rnd_in(s, 0, 9) < 2)
		return (int)rnd_in(s, 0, s->o.n_nodes - 1);
	return c->believed;
}

static void client_act(struct sim *s, struct client *c)
{
	struct hist h;
	struct op op;
	int target = leader_guess(s, c);
	struct snode *n = &s->nodes[target];
	uint64_t index;
	int rc;

	c->next_at = s->now + rnd_in(s, 1, 20);
	if (!n->alive || n->r.role != RAFT_LEADER)
		return; /* refused at once: never entered a log */
	memset(&h, 0, sizeof(h));
	memset(&op, 0, sizeof(op));
	h.op.key = (unsigned)rnd_in(s, 0, N_KEYS - 1);
	h.op.call_ms = s->now;
	unsigned dice = (unsigned)rnd_in(s, 0, 9);
	h.op.kind = dice < 4 ? LIN_PUT : dice < 7 ? LIN_GET : LIN_CAS;
	if (h.op.kind == LIN_PUT) {
		h.op.a = s->next_value++;
	} else if (h.op.kind == LIN_CAS) {
		/* Compare against what the node holds now (often right) or
		 * an older value (often wrong). */
		h.op.a = rnd_in(s, 0, 1) ? n->kv[h.op.key]
					 : (int64_t)rnd_in(s, 0, (uint64_t)s->next_value);
		h.op.b = s->next_value++;
	}
	if (h.op.kind == LIN_GET && rnd_in(s, 0, 1) && raft_lease_valid(&n->r)) {
		/* Default-mode read: served by the leader while its lease holds. */
		h.op.out = n->kv[h.op.key];
		h.op.ret_ms = s->now;
		h.status = H_OK;
		h.op_id = s->next_op_id++;
		if (!grow((void **)&s->hist, &s->cap_hist, s->n_hist + 1, sizeof(*s->hist))) {
			fail(s, "out of memory");
			return;
		}
		s->hist[s->n_hist++] = h;
		s->st.lease_reads++;
		return;
	}
	if (h.op.kind == LIN_GET && rnd_in(s, 0, 1)) {
		/* ?consistent: a ReadIndex heartbeat round, then the state. */
		uint64_t seq, ri;
		if (raft_read_index(&n->r, &seq, &ri) < 0)
			return;
		h.op_id = s->next_op_id++;
		h.status = H_PENDING;
		if (!grow((void **)&s->hist, &s->cap_hist, s->n_hist + 1, sizeof(*s->hist))) {
			fail(s, "out of memory");
			return;
		}
		s->hist[s->n_hist] = h;
		c->busy = true;
		c->barrier = true;
		c->seq = seq;
		c->rindex = ri;
		c->h = s->n_hist++;
		c->node = (unsigned)target;
		c->index = 0;
		c->deadline = s->now + CLIENT_TIMEOUT_MS;
		return;
	}
	h.op_id = s->next_op_id++;
	op.op_id = h.op_id;
	op.kind = h.op.kind;
	op.key = h.op.key;
	op.a = h.op.a;
	op.b = h.op.b;
	rc = raft_propose(&n->r, RAFT_ENTRY_COMMAND, (const uint8_t *)&op, sizeof(op), &index);
	if (rc < 0)
		return; /* refused (transferring): nothing happened */
	if (!grow((void **)&s->hist, &s->cap_hist, s->n_hist + 1, sizeof(*s->hist))) {
		fail(s, "out of memory");
		return;
	}
	h.status = H_PENDING;
	s->hist[s->n_hist] = h;
	c->busy = true;
	c->h = s->n_hist++;
	c->node = (unsigned)target;
	c->index = index;
	c->deadline = s->now + CLIENT_TIMEOUT_MS;
	n->flush_due = true; /* batching: flushed after this instant's proposals */
}

/* ---- faults ---------------------------------------------------------------------------- */

static unsigned n_alive(const struct sim *s)
{
	unsigned k = 0;

	for (unsigned i = 0; i < s->o.n_nodes; i++)
		k += s->nodes[i].alive;
	return k;
}

static void fault(struct sim *s)
{
	unsigned a = (unsigned)rnd_in(s, 0, 9);
	unsigned node = (unsigned)rnd_in(s, 0, s->o.n_nodes - 1);
	int l = sim_leader(s);

	s->next_fault = s->now + (s->o.fast ? rnd_in(s, 20, 200) : rnd_in(s, 50, 400));
	if (s->o.membership && (!s->o.faults || a >= 7)) {
		uint64_t idx;
		if (l < 0)
			return;
		struct raft *r = &s->nodes[l].r;
		int in = raft_config_find(&r->config, s->nodes[node].id);
		int rc;
		if (in < 0) {
			rc = raft_add_server(r, s->nodes[node].id, "x", &idx);
		} else {
			if (r->config.n <= 2)
				return;
			rc = raft_remove_server(r, s->nodes[node].id, &idx);
		}
		if (rc == 0)
			s->st.config_changes++;
		return;
	}
	if (!s->o.faults)
		return;
	switch (a) {
	case 0: /* split into two random groups */
		for (unsigned i = 0; i < s->o.n_nodes; i++)
			s->nodes[i].group = (unsigned)rnd_in(s, 0, 1);
		break;
	case 1: /* isolate one node (often the leader) */
		if (l >= 0 && rnd_in(s, 0, 1))
			node = (unsigned)l;
		sim_heal(s);
		s->nodes[node].group = 1;
		break;
	case 2:
	case 3:
		sim_heal(s);
		break;
	case 4:
		if (l >= 0 && rnd_in(s, 0, 1))
			node = (unsigned)l;
		if (n_alive(s) > 1)
			sim_crash(s, node, rnd_in(s, 0, 1));
		break;
	case 5:
		for (unsigned i = 0; i < s->o.n_nodes; i++)
			if (!s->nodes[i].alive) {
				(void)sim_restart(s, i);
				break;
			}
		break;
	case 6:
		if (l >= 0 && raft_transfer(&s->nodes[l].r, NULL) == 0)
			s->st.transfers++;
		break;
	default:
		s->o.loss_pct = (unsigned)rnd_in(s, 0, 3) * 5;
		break;
	}
}

void sim_set_group(struct sim *s, unsigned node, unsigned group) { s->nodes[node].group = group; }

void sim_heal(struct sim *s)
{
	for (unsigned i = 0; i < s->o.n_nodes; i++)
		s->nodes[i].group = 0;
}

void sim_quiesce(struct sim *s)
{
	s->quiet = true;
	s->next_fault = UINT64_MAX;
	s->o.loss_pct = 0;
	sim_heal(s);
	for (unsigned i = 0; i < s->o.n_nodes; i++)
		(void)sim_restart(s, i);
}

/* ---- invariants ------------------------------------------------------------------------- */

static bool check(struct sim *s)
{
	for (unsigned i = 0; i < s->o.n_nodes && !s->failed; i++) {
		struct snode *n = &s->nodes[i];
		struct raft *r = &n->r;

		if (!n->alive)
			continue;
		if (r->last_index != log_last(&n->log) || r->base_index != n->log.base)
			return fail(s, "%s: core log %llu (from %llu), host log %llu (from %llu)",
				    n->id, (unsigned long long)r->last_index,
				    (unsigned long long)r->base_index,
				    (unsigned long long)log_last(&n->log),
				    (unsigned long long)n->log.base);
		if (r->role == RAFT_LEADER) {
			/* Election Safety. */
			uint64_t t = r->current_term;
			if (!grow((void **)&s->leader_of, &s->cap_terms, t + 1,
				  sizeof(*s->leader_of)))
				return fail(s, "out of memory");
			if (!s->leader_of[t][0]) {
				snprintf(s->leader_of[t], sizeof(s->leader_of[t]), "%s", n->id);
				s->st.elections++;
			} else if (strcmp(s->leader_of[t], n->id) != 0) {
				return fail(s, "Election Safety: %s and %s both lead term %llu",
					    s->leader_of[t], n->id, (unsigned long long)t);
			}
			/* Leader Completeness: every entry committed before
			 * term t began is in this leader's log. */
			uint64_t k = s->max_committed;
			while (k > 0 && (!s->committed[k].set || s->committed[k].term >= t))
				k--;
			/* Entries up to the compaction point were checked
			 * when this node committed them. */
			const struct sentry *ke = log_get(&n->log, k);
			if (k > n->log.base && (!ke || ke->chain != s->committed[k].chain))
				return fail(s,
					    "Leader Completeness: leader %s of term %llu lacks "
					    "committed entry %llu",
					    n->id, (unsigned long long)t, (unsigned long long)k);
		}
		/* Committed entries never change (a prefix hash at the
		 * compaction point covers everything before it). */
		if (r->commit_index > log_last(&n->log))
			return fail(s, "%s: commit beyond log", n->id);
		for (uint64_t c = n->checked_commit + 1; c <= r->commit_index; c++) {
			const struct sentry *ce = log_get(&n->log, c);
			if (c < n->log.base)
				continue;
			if (!note_committed(s, c, ce ? ce->chain : n->log.base_chain, n->id))
				return false;
		}
		if (r->commit_index > n->checked_commit)
			n->checked_commit = r->commit_index;
		const struct sentry *cc = log_get(&n->log, n->checked_commit);
		if (cc && s->committed[n->checked_commit].chain != cc->chain)
			return fail(s, "%s: committed entry %llu changed", n->id,
				    (unsigned long long)n->checked_commit);
	}
	return !s->failed;
}

/* ---- stepping ----------------------------------------------------------------------------- */

enum ev_kind { EV_MSG, EV_SYNC, EV_TICK, EV_CLIENT, EV_FLUSH, EV_TIMEOUT, EV_FAULT, EV_NONE };

int sim_step(struct sim *s)
{
	uint64_t best = UINT64_MAX;
	enum ev_kind kind = EV_NONE;
	size_t which = 0;
	int rc = 0;

	if (s->failed)
		return -1;
	for (size_t i = 0; i < s->n_msgs; i++)
		if (s->msgs[i].at < best || (s->msgs[i].at == best && kind == EV_MSG &&
					     s->msgs[i].seq < s->msgs[which].seq))
			best = s->msgs[i].at, kind = EV_MSG, which = i;
	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		struct snode *n = &s->nodes[i];
		if (!n->alive)
			continue;
		if (n->dirty && n->sync_at < best)
			best = n->sync_at, kind = EV_SYNC, which = i;
	}
	for (unsigned i = 0; i < s->o.n_nodes; i++)
		if (s->nodes[i].alive && s->nodes[i].next_tick < best)
			best = s->nodes[i].next_tick, kind = EV_TICK, which = i;
	for (unsigned k = 0; !s->quiet && k < s->o.n_clients; k++)
		if (!s->clients[k].busy && s->clients[k].next_at < best)
			best = s->clients[k].next_at, kind = EV_CLIENT, which = k;
	for (unsigned i = 0; i < s->o.n_nodes; i++)
		if (s->nodes[i].alive && s->nodes[i].flush_due && s->now < best)
			best = s->now, kind = EV_FLUSH, which = i;
	for (unsigned k = 0; k < s->o.n_clients; k++)
		if (s->clients[k].busy && s->clients[k].deadline < best)
			best = s->clients[k].deadline, kind = EV_TIMEOUT, which = k;
	if (s->next_fault < best)
		best = s->next_fault, kind = EV_FAULT;
	if (kind == EV_NONE)
		return fail(s, "nothing left to do"), -1;
	if (best > s->now)
		s->now = best;
	s->st.steps++;
	switch (kind) {
	case EV_MSG: {
		struct smsg q = s->msgs[which];
		s->msgs[which] = s->msgs[--s->n_msgs];
		struct snode *n = &s->nodes[q.to];
		if (n->alive) {
			s->st.delivered++;
			rc = raft_receive(&n->r, &q.m);
			schedule_tick(n);
		}
		msg_free(&q);
		break;
	}
	case EV_SYNC: {
		struct snode *n = &s->nodes[which];
		sync_disk(n);
		if (log_last(&n->log))
			rc = raft_persisted(&n->r, log_last(&n->log), log_last_term(&n->log));
		schedule_tick(n);
		break;
	}
	case EV_TICK: {
		struct snode *n = &s->nodes[which];
		rc = raft_tick(&n->r);
		schedule_tick(n);
		break;
	}
	case EV_CLIENT:
		client_act(s, &s->clients[which]);
		break;
	case EV_FLUSH: {
		struct snode *n = &s->nodes[which];
		n->flush_due = false;
		rc = raft_flush(&n->r);
		schedule_tick(n);
		break;
	}
	case EV_TIMEOUT:
		complete(s, &s->clients[which], H_UNKNOWN, 0);
		break;
	case EV_FAULT:
		fault(s);
		break;
	case EV_NONE:
		break;
	}
	for (unsigned i = 0; rc == 0 && i < s->o.n_nodes; i++)
		rc = maybe_snapshot(&s->nodes[i]);
	if (rc < 0 && !s->failed)
		fail(s, "core returned %d", rc);
	check_barriers(s);
	return check(s) ? 0 : -1;
}

int sim_run_until(struct sim *s, bool (*pred)(struct sim *s), uint64_t budget_ms)
{
	uint64_t end = s->now + budget_ms;

	while (!pred(s)) {
		if (s->now >= end)
			return -2;
		if (sim_step(s) < 0)
			return -1;
	}
	return 0;
}

int sim_run_for(struct sim *s, uint64_t ms)
{
	uint64_t end = s->now + ms;

	while (s->now < end)
		if (sim_step(s) < 0)
			return -1;
	return 0;
}

/* ---- queries ------------------------------------------------------------------------------- */

const char *sim_error(const struct sim *s) { return s->err; }

uint64_t sim_now(const struct sim *s) { return s->now; }

int sim_leader(const struct sim *s)
{
	int best = -1;

	for (unsigned i = 0; i < s->o.n_nodes; i++) {
		const struct snode *n = &s->nodes[i];
		if (n->alive && n->r.role == RAFT_LEADER &&
		    (best < 0 || n->r.current_term > s->nodes[best].r.current_term))
			best = (int)i;
	}
	return best;
}

const struct raft *sim_raft(const struct sim *s, unsigned node) { return &s->nodes[node].r; }

bool sim_alive(const struct sim *s, unsigned node) { return s->nodes[node].alive; }

int sim_put(struct sim *s, unsigned node, unsigned key, int64_t value)
{
	struct op op;
	uint64_t index;
	int rc;

	memset(&op, 0, sizeof(op));
	op.op_id = s->next_op_id++;
	op.kind = LIN_PUT;
	op.key = key;
	op.a = value;
	rc = raft_propose(&s->nodes[node].r, RAFT_ENTRY_COMMAND, (const uint8_t *)&op, sizeof(op),
			  &index);
	if (rc == 0)
		s->nodes[node].flush_due = true;
	return rc;
}

int64_t sim_value(const struct sim *s, unsigned node, unsigned key)
{
	return s->nodes[node].kv[key % N_KEYS];
}

bool sim_converged(struct sim *s)
{
	int l = sim_leader(s);

	if (l < 0)
		return false;
	const struct raft *lr = &s->nodes[l].r;
	if (lr->commit_index < lr->leader_first_index || lr->commit_index != lr->last_index)
		return false;
	for (unsigned i = 0; i < lr->config.n; i++) {
		int k = node_of(s, lr->config.s[i].id);
		if (k < 0 || !s->nodes[k].alive || s->nodes[k].applied != lr->commit_index ||
		    log_last(&s->nodes[k].log) != lr->last_index)
			return false;
	}
	for (unsigned k = 0; k < s->o.n_clients; k++)
		if (s->clients[k].busy)
			return false;
	return true;
}

int sim_final_check(struct sim *s)
{
	int l = sim_leader(s);
	struct lin_op *ops = NULL;
	size_t n = 0;
	unsigned bad_key = 0;
	int rc;

	if (l < 0)
		return fail(s, "no leader at the end"), -1;
	const struct raft *lr = &s->nodes[l].r;
	for (size_t a = 0; a < s->n_acked; a++) {
		uint64_t i = s->acked[a].index;
		for (unsigned m = 0; m < lr->config.n; m++) {
			int k = node_of(s, lr->config.s[m].id);
			const struct snode *nd = &s->nodes[k];
			const struct sentry *e = log_get(&nd->log, i);
			struct op op;
			if (i > nd->applied)
				return fail(s, "acknowledged write %llu missing on %s",
					    (unsigned long long)i, nd->id),
				       -1;
			if (i <= nd->log.base)
				continue; /* in its snapshot, whose prefix hash was checked */
			if (!e || e->len != sizeof(op))
				return fail(s, "acknowledged write %llu missing on %s",
					    (unsigned long long)i, nd->id),
				       -1;
			memcpy(&op, e->payload, sizeof(op));
			if (op.op_id != s->acked[a].op_id)
				return fail(s, "acknowledged write %llu replaced on %s",
					    (unsigned long long)i, nd->id),
				       -1;
		}
	}
	ops = malloc((s->n_hist ? s->n_hist : 1) * sizeof(*ops));
	if (!ops)
		return fail(s, "out of memory"), -1;
	for (size_t i = 0; i < s->n_hist; i++) {
		if (s->hist[i].status == H_FAILED)
			continue;
		if (s->hist[i].status == H_PENDING)
			s->hist[i].op.ret_ms = LIN_UNKNOWN;
		ops[n++] = s->hist[i].op;
	}
	rc = lin_check(ops, n, &bad_key);
	free(ops);
	if (rc < 0)
		return fail(s, "linearizability check failed to run (%d)", rc), -1;
	if (rc == 0)
		return fail(s, "history of key %u is not linearizable (%zu operations)", bad_key,
			    n),
		       -1;
	return 0;
}

void sim_stats(const struct sim *s, struct sim_stats *out) { *out = s->st; }

int sim_run_schedule(const struct sim_opts *o, uint64_t run_ms, char *err, size_t errlen,
		     struct sim_stats *out_stats)
{
	struct sim *s = sim_new(o);
	int rc;

	if (!s) {
		snprintf(err, errlen, "seed %llu: cannot build the cluster",
			 (unsigned long long)o->seed);
		return -1;
	}
	rc = sim_run_for(s, run_ms);
	if (rc == 0) {
		sim_quiesce(s);
		rc = sim_run_until(s, sim_converged, 60000);
		if (rc == -2)
			fail(s, "no convergence within 60 s after healing (leader %d)",
			     sim_leader(s));
	}
	if (rc == 0)
		rc = sim_final_check(s);
	if (rc < 0)
		snprintf(err, errlen, "%s", s->err);
	if (out_stats)
		sim_stats(s, out_stats);
	sim_free(s);
	return rc < 0 ? -1 : 0;
}
