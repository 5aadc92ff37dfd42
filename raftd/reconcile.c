/* The leader's catalog reconciliation with the LAN pool; see reconcile.h. */
#include "reconcile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "catalog.h"
#include "config.h"
#include "err.h"
#include "fsm.h"
#include "log.h"
#include "loop.h"
#include "member_feed.h"
#include "mp.h"
#include "raft/raft.h"
#include "replica.h"
#include "store.h"

#define RECONCILE_TICK_MS 200
#define RECONCILE_MAX_WRITES 256 /* per tick: one group commit */

enum reconcile_op reconcile_decide(const char *name, const struct member_feed_member *m,
				   const struct reconcile_node *node, const char *dc,
				   const char *self, bool settled)
{
	bool same_addr, is_self = self && name && strcasecmp(name, self) == 0;

	if (m) {
		const char *mdc = member_feed_tag(m, "dc");

		if (mdc && dc && strcasecmp(mdc, dc) != 0)
			return RECONCILE_NONE; /* another datacenter's member */
	}
	if (!m) {
		/* reconcileReaped: only nodes this reconciliation put there */
		if (!node || !node->serf_status || is_self)
			return RECONCILE_NONE;
		if (strcmp(node->serf_status, "critical") == 0 || settled)
			return RECONCILE_DEREGISTER;
		return RECONCILE_NONE; /* maybe just not heard of yet */
	}
	same_addr = node && node->address && m->addr && strcmp(node->address, m->addr) == 0;
	switch (m->status) {
	case MEMBER_FEED_ALIVE:
		if (same_addr && node->serf_status && strcmp(node->serf_status, "passing") == 0)
			return RECONCILE_NONE;
		return RECONCILE_ALIVE;
	case MEMBER_FEED_FAILED:
		if (!node)
			return RECONCILE_NONE; /* Consul ignores a failed unknown node */
		if (same_addr && node->serf_status && strcmp(node->serf_status, "critical") == 0)
			return RECONCILE_NONE;
		return RECONCILE_FAILED;
	case MEMBER_FEED_LEFT:
		return node && !is_self ? RECONCILE_DEREGISTER : RECONCILE_NONE;
	default:
		return RECONCILE_NONE; /* leaving: wait for left */
	}
}

bool reconcile_server_of(const struct member_feed_member *m, const char *dc, char *out_id,
			 size_t id_len, char *out_addr, size_t addr_len)
{
	const char *id = member_feed_tag(m, "id"), *port = member_feed_tag(m, "port");
	const char *mdc = member_feed_tag(m, "dc");
	int n;

	if (m->status != MEMBER_FEED_ALIVE || !member_feed_is_server(m) || !id || !*id ||
	    !port || !*port || !m->addr || !*m->addr || (mdc && dc && strcasecmp(mdc, dc) != 0))
		return false;
	n = strchr(m->addr, ':') ? snprintf(out_addr, addr_len, "[%s]:%s", m->addr, port)
				 : snprintf(out_addr, addr_len, "%s:%s", m->addr, port);
	if (n < 0 || (size_t)n >= addr_len || strlen(id) >= id_len)
		return false;
	memcpy(out_id, id, strlen(id) + 1);
	return true;
}

/* ---- the driver ------------------------------------------------------------- */

struct reconcile {
	struct loop *loop;
	struct replica *rp;
	const struct config *cfg;
	struct member_feed *feed;
	uint64_t timer;
	struct mp_writer cmd;
	struct arena a;
	bool leader;	      /* leader at the last tick */
	bool need_full;	      /* a full pass is due */
	uint64_t ready_index; /* a new leader waits until this is applied */
	uint64_t wait_index;  /* the last pass's writes */
	uint64_t next_full_ms;
	uint64_t synced_ms;  /* when the feed was first seen synced; 0 before */
	uint64_t removal_ms; /* the last member removal the feed reported */
	char **dirty; /* member names changed since the last pass */
	size_t n_dirty, cap_dirty;
	char **seen; /* every name the feed showed as a member, sorted */
	size_t n_seen, cap_seen;
	uint64_t writes;
};

static void dirty_clear(struct reconcile *r)
{
	for (size_t i = 0; i < r->n_dirty; i++)
		free(r->dirty[i]);
	r->n_dirty = 0;
}

/* Index of name in the sorted seen list, or where it goes (*found). */
static size_t seen_pos(const struct reconcile *r, const char *name, bool *found)
{
	size_t lo = 0, hi = r->n_seen;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(r->seen[mid], name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Remembers that name was a member (best effort: out of memory only means
 * its node is not removed by a full pass). */
static void seen_add(struct reconcile *r, const char *name)
{
	bool found;
	size_t i = seen_pos(r, name, &found);
	char *d;

	if (found)
		return;
	if (r->n_seen == r->cap_seen) {
		size_t cap = r->cap_seen ? r->cap_seen * 2 : 16;
		char **nv = realloc(r->seen, cap * sizeof(*nv));

		if (!nv)
			return;
		r->seen = nv;
		r->cap_seen = cap;
	}
	d = strdup(name);
	if (!d)
		return;
	memmove(&r->seen[i + 1], &r->seen[i], (r->n_seen - i) * sizeof(*r->seen));
	r->seen[i] = d;
	r->n_seen++;
}

void reconcile_member_changed(struct reconcile *r, const char *name, bool removed)
{
	char *d;

	if (r && name && !removed)
		seen_add(r, name);
	if (r && removed)
		r->removal_ms = loop_now_ms(r->loop);
	if (!r || !name || !*name || !r->leader)
		return; /* a follower reconciles nothing; a new leader does a full pass */
	for (size_t i = 0; i < r->n_dirty; i++)
		if (strcmp(r->dirty[i], name) == 0)
			return;
	if (r->n_dirty == r->cap_dirty) {
		size_t cap = r->cap_dirty ? r->cap_dirty * 2 : 16;
		char **nv = realloc(r->dirty, cap * sizeof(*nv));

		if (!nv) {
			r->need_full = true; /* the full pass covers it */
			return;
		}
		r->dirty = nv;
		r->cap_dirty = cap;
	}
	d = strdup(name);
	if (!d) {
		r->need_full = true;
		return;
	}
	r->dirty[r->n_dirty++] = d;
}

void reconcile_request_full(struct reconcile *r)
{
	if (r)
		r->need_full = true;
}

uint64_t reconcile_writes(const struct reconcile *r)
{
	return r ? r->writes : 0;
}

/* The catalog's record of name into *out (strings in r->a); false when the
 * catalog has no such node. */
static int catalog_view(struct reconcile *r, struct store_txn *txn, const char *name,
			struct proto_node **out_node, struct reconcile_node *out)
{
	struct proto_check chk;
	uint64_t idx;
	int rc;

	*out_node = NULL;
	memset(out, 0, sizeof(*out));
	rc = fsm_node_get(txn, &r->a, name, out_node, &idx);
	if (rc < 0 || !*out_node)
		return rc;
	out->address = (*out_node)->address;
	rc = catalog_check_get(txn, &r->a, name, RECONCILE_CHECK_ID, &chk);
	if (rc == 0)
		out->serf_status = chk.status;
	return rc == -ENOENT ? 0 : rc;
}

/* Proposes the write for op. Returns 0 or a negative code. */
static int propose(struct reconcile *r, enum reconcile_op op, const char *name,
		   const struct member_feed_member *m, const struct proto_node *have)
{
	struct proto_check chk = {
	    .node = name,
	    .check_id = RECONCILE_CHECK_ID,
	    .name = RECONCILE_CHECK_NAME,
	    .status = op == RECONCILE_ALIVE ? "passing" : "critical",
	    .output = op == RECONCILE_ALIVE ? RECONCILE_ALIVE_OUTPUT : RECONCILE_FAILED_OUTPUT,
	};
	struct proto_node n = {0};
	uint64_t index;
	int rc;

	if (op == RECONCILE_DEREGISTER) {
		catalog_cmd_deregister(&r->cmd, name, NULL, NULL);
	} else {
		/* keep what the node's own agent registered (Consul copies the
		 * tagged addresses and meta into the request) */
		if (have)
			n = *have;
		n.node = have ? have->node : name;
		n.address = m->addr;
		n.datacenter = r->cfg->datacenter;
		if (!have || !have->id || !*have->id)
			n.id = member_feed_tag(m, "id");
		catalog_cmd_register(&r->cmd, &n, op == RECONCILE_FAILED, NULL, &chk, 1);
	}
	if (r->cmd.err) {
		rc = r->cmd.err;
		mp_writer_reset(&r->cmd);
		return rc;
	}
	rc = replica_propose(r->rp, r->cmd.buf, r->cmd.len, NULL, &index);
	mp_writer_reset(&r->cmd);
	if (rc < 0)
		return rc;
	r->writes++;
	r->wait_index = index;
	log_info("reconcile: %s %s", name,
		 op == RECONCILE_ALIVE	  ? "alive (serfHealth passing)"
		 : op == RECONCILE_FAILED ? "failed (serfHealth critical)"
					  : "gone (deregistered)");
	return 0;
}

/* Whether the member table has been stable long enough to trust that a
 * member it lacks is gone. */
static bool settled(const struct reconcile *r, const char *name)
{
	uint64_t now = loop_now_ms(r->loop);
	bool seen;

	(void)seen_pos(r, name, &seen);
	return seen && r->synced_ms && now - r->synced_ms >= RECONCILE_SETTLE_MS &&
	       (!r->removal_ms || now - r->removal_ms >= RECONCILE_SETTLE_MS);
}

/* Decides and writes for one name. Returns 1 when a write was proposed, 0
 * when none was needed, or a negative code. */
static int reconcile_one(struct reconcile *r, struct store_txn *txn, const char *name)
{
	const struct member_feed_member *m = member_feed_find(r->feed, name);
	struct proto_node *have;
	struct reconcile_node view;
	enum reconcile_op op;
	int rc = catalog_view(r, txn, name, &have, &view);

	if (rc < 0)
		return rc;
	op = reconcile_decide(name, m, have ? &view : NULL, r->cfg->datacenter, r->cfg->node_name,
			      settled(r, name));
	if (op == RECONCILE_NONE)
		return 0;
	rc = propose(r, op, name, m, have);
	return rc < 0 ? rc : 1;
}

/* Every member and every catalog node. Returns the writes proposed, or a
 * negative code; *out_done false when the write budget ran out. */
static int full_pass(struct reconcile *r, struct store_txn *txn, bool *out_done)
{
	struct proto_catalog_query q = {.view = CATALOG_VIEW_NODES};
	struct catalog_answer ans;
	size_t n = member_feed_count(r->feed), i;
	int writes = 0, rc;

	*out_done = false;
	for (i = 0; i < n; i++) {
		if (writes >= RECONCILE_MAX_WRITES)
			return writes;
		seen_add(r, member_feed_at(r->feed, i)->name);
		rc = reconcile_one(r, txn, member_feed_at(r->feed, i)->name);
		if (rc < 0)
			return rc;
		writes += rc;
	}
	rc = catalog_query(txn, &r->a, &q, &ans);
	if (rc < 0)
		return rc;
	for (i = 0; i < ans.n_nodes; i++) {
		const char *name = ans.nodes[i].node;

		if (!name || member_feed_find(r->feed, name))
			continue; /* members were done above */
		if (writes >= RECONCILE_MAX_WRITES)
			return writes;
		rc = reconcile_one(r, txn, name);
		if (rc < 0)
			return rc;
		writes += rc;
	}
	*out_done = true;
	return writes;
}

/* Adds the first alive server member the Raft configuration lacks (one
 * configuration change at a time: the others follow at later ticks). */
static void add_missing_server(struct reconcile *r)
{
	const struct raft_config *cfg = replica_config_of(r->rp);
	char id[RAFT_ID_MAX + 1], addr[RAFT_ADDR_MAX + 1];
	size_t i, n = member_feed_count(r->feed);

	if (!cfg || cfg->n == 0)
		return; /* not bootstrapped: discovery's business */
	for (i = 0; i < n; i++) {
		const struct member_feed_member *m = member_feed_at(r->feed, i);
		int rc;

		if (!reconcile_server_of(m, r->cfg->datacenter, id, sizeof(id), addr,
					 sizeof(addr)) ||
		    raft_config_find(cfg, id) >= 0)
			continue;
		rc = replica_add_server(r->rp, id, addr);
		if (rc == 0)
			log_info("reconcile: adding server %s (%s at %s) to the Raft configuration",
				 m->name, id, addr);
		return;
	}
}

static int64_t on_tick(struct loop *l, void *ctx)
{
	struct reconcile *r = ctx;
	uint64_t now = loop_now_ms(l);
	struct store_txn *txn;
	int rc = 0, writes = 0;

	if (r->feed && member_feed_synced(r->feed) && !r->synced_ms)
		r->synced_ms = now;
	if (!replica_is_leader(r->rp) || replica_transferring(r->rp)) {
		r->leader = false;
		dirty_clear(r);
		return RECONCILE_TICK_MS;
	}
	if (!r->leader) {
		/* Consul reconciles after the new leader's barrier: wait until
		 * everything up to our no-op is applied */
		r->leader = true;
		r->need_full = true;
		r->ready_index = replica_last_index(r->rp);
		r->wait_index = 0;
	}
	if (!r->feed || !member_feed_synced(r->feed) ||
	    replica_last_applied(r->rp) < r->ready_index ||
	    replica_last_applied(r->rp) < r->wait_index)
		return RECONCILE_TICK_MS;
	add_missing_server(r);
	if (now >= r->next_full_ms)
		r->need_full = true;
	if (!r->need_full && r->n_dirty == 0)
		return RECONCILE_TICK_MS;
	if (store_txn_begin(replica_store(r->rp), false, &txn) < 0)
		return RECONCILE_TICK_MS;
	if (r->need_full) {
		bool done;

		rc = full_pass(r, txn, &done);
		if (rc >= 0 && done) {
			r->need_full = false;
			r->next_full_ms = now + RECONCILE_INTERVAL_MS;
			dirty_clear(r); /* covered */
		}
		writes = rc;
	} else {
		size_t i;

		for (i = 0; i < r->n_dirty && writes < RECONCILE_MAX_WRITES; i++) {
			rc = reconcile_one(r, txn, r->dirty[i]);
			if (rc < 0)
				break;
			writes += rc;
		}
		/* drop what was handled; a failure leaves it for the next tick */
		for (size_t k = 0; k < i; k++)
			free(r->dirty[k]);
		memmove(r->dirty, r->dirty + i, (r->n_dirty - i) * sizeof(*r->dirty));
		r->n_dirty -= i;
	}
	store_txn_abort(txn);
	arena_reset(&r->a);
	if (rc < 0)
		log_warn("reconcile: %s; retrying", err_str(rc));
	return RECONCILE_TICK_MS;
}

struct reconcile *reconcile_new(struct loop *l, struct replica *rp, const struct config *cfg,
				struct member_feed *feed)
{
	struct reconcile *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->loop = l;
	r->rp = rp;
	r->cfg = cfg;
	r->feed = feed;
	mp_writer_init(&r->cmd);
	arena_init(&r->a, 16 * 1024);
	r->timer = loop_timer_add(l, RECONCILE_TICK_MS, on_tick, r);
	if (!r->timer) {
		reconcile_free(r);
		return NULL;
	}
	return r;
}

void reconcile_free(struct reconcile *r)
{
	if (!r)
		return;
	if (r->timer)
		loop_timer_del(r->loop, r->timer);
	dirty_clear(r);
	free(r->dirty);
	for (size_t i = 0; i < r->n_seen; i++)
		free(r->seen[i]);
	free(r->seen);
	mp_writer_close(&r->cmd);
	arena_close(&r->a);
	free(r);
}
