/* raftd's RPC service: requests, group commit, blocking queries. */
#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "arena.h"
#include "autopilot.h"
#include "catalog.h"
#include "coordinate.h"
#include "cluster.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "fsm.h"
#include "lease_pub.h"
#include "log.h"
#include "loop.h"
#include "member_feed.h"
#include "mp.h"
#include "operator.h"
#include "raft/raft.h"
#include "reconcile.h"
#include "replica.h"
#include "rpc.h"
#include "session.h"
#include "store.h"
#include "txn.h"
#include "vivaldi.h"
#include "watch.h"

/* Consul has no hard key limit; LMDB's is 511 bytes. */
#define KEY_MAX STORE_KEY_MAX

struct server {
	struct loop *loop;
	const struct config *cfg;
	struct replica *rp;
	bool snap_watched;  /* the replica's snapshot eventfd is on the loop */
	struct cluster *cl; /* multi-server glue, NULL for a single server */
	struct rpc_server *rpc;
	struct watch_set *ws;
	struct arena scratch;	 /* replies under construction; reset after each */
	struct mp_writer cmd;	 /* command being proposed */
	uint64_t timer_id;	 /* the one deadline timer, 0 when none */
	uint64_t timer_deadline; /* when it fires (loop ms) */
	uint64_t rng;		 /* xorshift64 state for jitter */
	char leader_addr[320];	 /* host:port of our RPC address */
	bool failed;
	struct session_timers *sess_timers; /* the leader's session TTL timers */
	uint64_t sess_tick_id;		    /* their periodic check, 0 when none */
	struct session_lock_delays *lock_delays; /* keys inside a lock-delay */
	struct member_feed *feed;		 /* gossipd's LAN members */
	struct reconcile *rec;			 /* the leader's catalog reconciliation */
	struct autopilot *ap;			 /* autopilot (autopilot.h) */
	struct lease_pub *lease;		 /* the read lease page (lease_pub.h), or NULL */
	uint64_t lease_gen;			 /* store generation published with it */
	uint64_t lease_tick_id;			 /* its refresh timer */
	uint64_t lease_written_ms;		 /* when the page was last written */
	uint64_t lease_ticks;			 /* lease_tick calls (reader checks) */
};

static uint64_t rng_next(struct server *s)
{
	uint64_t x = s->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
}

static bool dc_ok(const struct server *s, const char *dc)
{
	return !dc || !*dc || strcasecmp(dc, s->cfg->datacenter) == 0;
}

static void fill_meta_kv(struct proto_kv_get_reply *r, uint64_t index)
{
	r->index = index ? index : 1;
	r->known_leader = true; /* single voter: we are the leader */
	r->last_contact_ms = 0;
}

/* ---- reads ---------------------------------------------------------------- */

struct near_ctx {
	struct store_txn *txn;
	const char *near;
	struct vivaldi_coord from;
};

/* A node is nearest to itself: 0, not the estimate from its coordinate to
 * itself (twice its height and adjustment), which on a fast network can
 * exceed the estimate to a neighbour. */
static double near_dist(void *ctx, const char *node)
{
	struct near_ctx *n = ctx;
	struct vivaldi_coord c;

	if (!node)
		return INFINITY;
	if (!strcasecmp(node, n->near))
		return 0.0;
	if (coordinate_get(n->txn, node, &c) < 0)
		return INFINITY;
	return vivaldi_distance_s(&n->from, &c);
}

/* ?near=: sorts a by estimated RTT from node near; as Consul, a source
 * without a coordinate leaves the order alone. */
static int near_sort(struct server *s, struct store_txn *txn, const char *near, unsigned view,
		     struct catalog_answer *a)
{
	struct near_ctx n = {.txn = txn, .near = near};

	if (!near || !*near || coordinate_get(txn, near, &n.from) < 0)
		return 0;
	return coordinate_sort_answer(&s->scratch, view, a, near_dist, &n);
}

/* A CATALOG_QUERY's view (catalog.h) into *out, in s->scratch. */
static int catalog_evaluate(struct server *s, struct store_txn *txn, const struct proto_msg *q,
			    struct proto_msg *out)
{
	struct catalog_answer a;
	struct proto_catalog_query_reply *r;
	/* CATALOG_QUERY_NEAR starts with CATALOG_QUERY's fields (messages.def) */
	int rc = catalog_query(txn, &s->scratch, &q->u.catalog_query, &a);

	if (rc == 0 && q->type == PROTO_CATALOG_QUERY_NEAR)
		rc = near_sort(s, txn, q->u.catalog_query_near.near,
			       (unsigned)q->u.catalog_query.view, &a);
	if (rc < 0)
		return rc;
	*out = proto_msg_make(PROTO_CATALOG_QUERY_REPLY);
	r = &out->u.catalog_query_reply;
	r->index = a.index ? a.index : 1;
	r->known_leader = true;
	r->found = a.found;
	r->nodes.v = a.nodes;
	r->nodes.n = a.n_nodes;
	r->services.v = a.services;
	r->services.n = a.n_services;
	r->checks.v = a.checks;
	r->checks.n = a.n_checks;
	return 0;
}

/* Evaluates a KV_GET or CATALOG_NODE into *out (built in s->scratch).
 * Returns 0 or a negative code. */
static int evaluate(struct server *s, struct store_txn *txn, const struct proto_msg *q,
		    struct proto_msg *out)
{
	int rc;

	if (q->type == PROTO_CATALOG_QUERY || q->type == PROTO_CATALOG_QUERY_NEAR)
		return catalog_evaluate(s, txn, q, out);
	if (q->type == PROTO_COORD_QUERY) {
		struct proto_coord_query_reply *cr;
		uint64_t index = 0;

		*out = proto_msg_make(PROTO_COORD_QUERY_REPLY);
		cr = &out->u.coord_query_reply;
		rc = coordinate_list(txn, &s->scratch, q->u.coord_query.node, &cr->coords.v,
				     &cr->coords.n, &index);
		cr->index = index ? index : 1;
		cr->known_leader = true;
		return rc;
	}
	if (q->type == PROTO_SESSION_QUERY) {
		const char **v;
		size_t n;
		uint64_t index;

		rc = session_query(txn, &s->scratch, (unsigned)q->u.session_query.view,
				   q->u.session_query.arg, &v, &n, &index);
		if (rc < 0)
			return rc;
		*out = proto_msg_make(PROTO_SESSION_REPLY);
		out->u.session_reply.index = index;
		out->u.session_reply.sessions.v = v;
		out->u.session_reply.sessions.n = n;
		return 0;
	}
	if (q->type == PROTO_KV_GET) {
		const struct proto_kv_get *g = &q->u.kv_get;
		const char *key = g->key ? g->key : "";
		struct fsm_kv_answer a;

		if (g->keys_only)
			rc = fsm_kv_keys(txn, &s->scratch, key, g->separator, &a);
		else if (g->recurse)
			rc = fsm_kv_list(txn, &s->scratch, key, &a);
		else
			rc = fsm_kv_get(txn, &s->scratch, key, &a);
		if (rc < 0)
			return rc;
		*out = proto_msg_make(PROTO_KV_GET_REPLY);
		fill_meta_kv(&out->u.kv_get_reply, a.index);
		out->u.kv_get_reply.entries.v = a.entries;
		out->u.kv_get_reply.entries.n = a.n_entries;
		out->u.kv_get_reply.keys.v = a.keys;
		out->u.kv_get_reply.keys.n = a.n_keys;
		return 0;
	}
	/* PROTO_CATALOG_NODE */
	struct proto_node *node;
	uint64_t index;

	rc = fsm_node_get(txn, &s->scratch, q->u.catalog_node.node ? q->u.catalog_node.node : "",
			  &node, &index);
	if (rc < 0)
		return rc;
	*out = proto_msg_make(PROTO_CATALOG_NODE_REPLY);
	out->u.catalog_node_reply.index = index ? index : 1;
	out->u.catalog_node_reply.known_leader = true;
	out->u.catalog_node_reply.last_contact_ms = 0;
	out->u.catalog_node_reply.nodes.v = node;
	out->u.catalog_node_reply.nodes.n = node ? 1 : 0;
	return 0;
}

static uint64_t min_index_of(const struct proto_msg *q)
{
	if (q->type == PROTO_CATALOG_QUERY || q->type == PROTO_CATALOG_QUERY_NEAR)
		return q->u.catalog_query.min_index;
	if (q->type == PROTO_COORD_QUERY)
		return q->u.coord_query.min_index;
	if (q->type == PROTO_SESSION_QUERY)
		return q->u.session_query.min_index;
	return q->type == PROTO_KV_GET ? q->u.kv_get.min_index : q->u.catalog_node.min_index;
}

enum answer_outcome {
	ANSWERED,  /* replied (an answer or an error); req is gone */
	NOT_READY, /* the index has not passed min_index yet */
};

/* X-Consul-KnownLeader and X-Consul-LastContact from the Raft state. */
static void stamp_leader_meta(const struct server *s, struct proto_msg *out)
{
	bool known = replica_known_leader(s->rp);
	uint64_t contact = replica_last_contact_ms(s->rp);

	if (out->type == PROTO_KV_GET_REPLY) {
		out->u.kv_get_reply.known_leader = known;
		out->u.kv_get_reply.last_contact_ms = contact;
	} else if (out->type == PROTO_CATALOG_QUERY_REPLY) {
		out->u.catalog_query_reply.known_leader = known;
		out->u.catalog_query_reply.last_contact_ms = contact;
	} else if (out->type == PROTO_COORD_QUERY_REPLY) {
		out->u.coord_query_reply.known_leader = known;
		out->u.coord_query_reply.last_contact_ms = contact;
	} else if (out->type == PROTO_CATALOG_NODE_REPLY) {
		out->u.catalog_node_reply.known_leader = known;
		out->u.catalog_node_reply.last_contact_ms = contact;
	} else if (out->type == PROTO_SESSION_REPLY) {
		out->u.session_reply.known_leader = known;
		out->u.session_reply.last_contact_ms = contact;
	}
}

/* Answers req from the current state unless it blocks and nothing newer
 * than its min_index exists (force: answer anyway, the wait is over). */
static enum answer_outcome answer_read(struct server *s, struct store_txn *txn, struct rpc_req *req,
				       bool force)
{
	struct proto_msg out;
	uint64_t min = min_index_of(&req->msg), index;
	int rc;

	rc = evaluate(s, txn, &req->msg, &out);
	if (rc == CAIRN_E_BADREQ) {
		arena_reset(&s->scratch);
		rpc_reply_error(req, rc, "invalid query");
		return ANSWERED;
	}
	if (rc < 0) {
		log_error("read %s: %s (%s)", proto_type_name(req->msg.type), err_str(rc),
			  store_errmsg(replica_store(s->rp)));
		arena_reset(&s->scratch);
		rpc_reply_error(req, rc == -ENOMEM ? rc : CAIRN_E_STORE, "state store read failed");
		return ANSWERED;
	}
	stamp_leader_meta(s, &out);
	index = out.type == PROTO_KV_GET_REPLY	     ? out.u.kv_get_reply.index
		: out.type == PROTO_CATALOG_QUERY_REPLY ? out.u.catalog_query_reply.index
		: out.type == PROTO_COORD_QUERY_REPLY	? out.u.coord_query_reply.index
		: out.type == PROTO_SESSION_REPLY	? out.u.session_reply.index
							: out.u.catalog_node_reply.index;
	if (!force && min > 0 && index <= min) {
		arena_reset(&s->scratch);
		return NOT_READY;
	}
	(void)rpc_reply(req, &out); /* a vanished peer is not our problem */
	arena_reset(&s->scratch);
	return ANSWERED;
}

static int64_t on_timer(struct loop *l, void *ctx);

/* Keeps the single loop timer armed for the earliest deadline. */
static void arm_timer(struct server *s)
{
	uint64_t d = watch_next_deadline(s->ws), now = loop_now_ms(s->loop);

	if (d == UINT64_MAX) {
		if (s->timer_id)
			loop_timer_del(s->loop, s->timer_id);
		s->timer_id = 0;
		return;
	}
	if (s->timer_id && s->timer_deadline <= d)
		return; /* fires first and re-arms itself */
	if (s->timer_id)
		loop_timer_del(s->loop, s->timer_id);
	s->timer_id = loop_timer_add(s->loop, d > now ? d - now : 0, on_timer, s);
	s->timer_deadline = d;
	if (!s->timer_id)
		log_error("out of memory arming the blocking-query timer");
}

/* Answers every parked query whose wait is over, with the current state. */
static int64_t on_timer(struct loop *l, void *ctx)
{
	struct server *s = ctx;
	uint64_t now = loop_now_ms(l), next;
	struct store_txn *txn = NULL;
	struct watch *w;

	while ((w = watch_pop_expired(s->ws, now))) {
		struct rpc_req *req = watch_ud(w);

		watch_remove(s->ws, w);
		if (!txn && store_txn_begin(replica_store(s->rp), false, &txn) < 0) {
			txn = NULL;
			rpc_reply_error(req, CAIRN_E_STORE, "state store read failed");
			continue;
		}
		(void)answer_read(s, txn, req, true);
	}
	store_txn_abort(txn);
	next = watch_next_deadline(s->ws);
	if (next == UINT64_MAX) {
		s->timer_id = 0;
		return LOOP_TIMER_STOP;
	}
	s->timer_deadline = next;
	return (int64_t)(next > now ? next - now : 1);
}

/* Parks a blocking read. Returns RPC_KEEP, or answers at once if it
 * cannot be parked. */
static enum rpc_disposition park(struct server *s, struct store_txn *txn, struct rpc_req *req)
{
	const struct proto_msg *q = &req->msg;
	uint64_t wait = q->type == PROTO_KV_GET ? q->u.kv_get.wait_ms : q->u.catalog_node.wait_ms;
	unsigned space;
	const char *key;
	bool prefix;
	struct watch *w;

	if (q->type == PROTO_COORD_QUERY) {
		wait = watch_wait_ms(q->u.coord_query.wait_ms, rng_next(s));
		w = watch_add(s->ws, FSM_SPACE_CATALOG, COORDINATE_WATCH_KEY,
			      strlen(COORDINATE_WATCH_KEY), false, loop_now_ms(s->loop) + wait, req);
		if (!w) {
			(void)answer_read(s, txn, req, true);
			return RPC_DONE;
		}
		req->priv = w;
		arm_timer(s);
		return RPC_KEEP;
	}
	if (q->type == PROTO_CATALOG_QUERY || q->type == PROTO_CATALOG_QUERY_NEAR) {
		struct catalog_answer a;

		/* the view names the one index key it follows */
		wait = q->u.catalog_query.wait_ms;
		space = FSM_SPACE_CATALOG;
		key = "catalog";
		if (catalog_query(txn, &s->scratch, &q->u.catalog_query, &a) == 0 && a.watch_key)
			key = a.watch_key;
		prefix = false;
		wait = watch_wait_ms(wait, rng_next(s));
		w = watch_add(s->ws, space, key, strlen(key), prefix, loop_now_ms(s->loop) + wait,
			      req);
		arena_reset(&s->scratch);
		if (!w) {
			(void)answer_read(s, txn, req, true);
			return RPC_DONE;
		}
		req->priv = w;
		arm_timer(s);
		return RPC_KEEP;
	}
	if (q->type == PROTO_SESSION_QUERY)
		wait = q->u.session_query.wait_ms;
	wait = watch_wait_ms(wait, rng_next(s));
	if (q->type == PROTO_SESSION_QUERY) {
		space = FSM_SPACE_SESSIONS;
		key = "sessions";
		prefix = false;
	} else if (q->type == PROTO_KV_GET) {
		space = FSM_SPACE_KV;
		key = q->u.kv_get.key ? q->u.kv_get.key : "";
		prefix = q->u.kv_get.recurse || q->u.kv_get.keys_only;
	} else {
		/* Consul's node query reports the node table's index, which
		 * any node's change moves: watch the whole table. */
		space = FSM_SPACE_NODES;
		key = "";
		prefix = true;
	}
	w = watch_add(s->ws, space, key, strlen(key), prefix, loop_now_ms(s->loop) + wait, req);
	if (!w) {
		(void)answer_read(s, txn, req, true);
		return RPC_DONE;
	}
	req->priv = w;
	arm_timer(s);
	return RPC_KEEP;
}

static enum rpc_disposition handle_read(struct server *s, struct rpc_req *req)
{
	struct store_txn *txn;
	enum rpc_disposition disp = RPC_DONE;
	const char *dc = req->msg.type == PROTO_KV_GET	      ? req->msg.u.kv_get.dc
			 : req->msg.type == PROTO_CATALOG_QUERY ? req->msg.u.catalog_query.dc
			 : req->msg.type == PROTO_CATALOG_QUERY_NEAR ? req->msg.u.catalog_query.dc
			 : req->msg.type == PROTO_COORD_QUERY ? req->msg.u.coord_query.dc
			 : req->msg.type == PROTO_SESSION_QUERY ? req->msg.u.session_query.dc
								: req->msg.u.catalog_node.dc;

	if (!dc_ok(s, dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (store_txn_begin(replica_store(s->rp), false, &txn) < 0) {
		rpc_reply_error(req, CAIRN_E_STORE, "state store read failed");
		return RPC_DONE;
	}
	if (answer_read(s, txn, req, false) == NOT_READY)
		disp = park(s, txn, req);
	store_txn_abort(txn);
	return disp;
}

/* ---- writes --------------------------------------------------------------- */

static enum rpc_disposition propose(struct server *s, struct rpc_req *req)
{
	uint64_t index;
	int rc;

	if (s->cmd.err) {
		mp_writer_reset(&s->cmd);
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	rc = replica_propose(s->rp, s->cmd.buf, s->cmd.len, req, &index);
	if (rc < 0) {
		rpc_reply_error(req, rc, "cannot append to the log: %s", err_str(rc));
		return RPC_DONE;
	}
	return RPC_KEEP; /* answered by on_applied after the commit */
}

/* PUT /v1/coordinate/update and the agents' periodic updates: one log
 * command per request. Consul batches them on the leader (every 5 s); at
 * one update per agent every 15 s or more a command each is fine for the
 * cluster sizes we run, and costs one fsync per update. */
static enum rpc_disposition handle_coord_update(struct server *s, struct rpc_req *req)
{
	const struct proto_coord_update *u = &req->msg.u.coord_update;
	const char *why = "invalid coordinate update";

	if (!dc_ok(s, u->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (coordinate_cmd_update(&s->cmd, u->coords.v, u->coords.n, &why) < 0) {
		mp_writer_reset(&s->cmd);
		rpc_reply_error(req, CAIRN_E_BADREQ, "%s", why);
		return RPC_DONE;
	}
	return propose(s, req);
}

static bool key_ok(struct rpc_req *req, const char *key, bool allow_empty)
{
	size_t n = key ? strlen(key) : 0;

	if (n == 0 && !allow_empty) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Missing key name");
		return false;
	}
	if (n > KEY_MAX) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Key too long (max %d bytes)", KEY_MAX);
		return false;
	}
	return true;
}

static enum rpc_disposition handle_kv_put(struct server *s, struct rpc_req *req)
{
	const struct proto_kv_put *p = &req->msg.u.kv_put;

	if (!dc_ok(s, p->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (!key_ok(req, p->key, false))
		return RPC_DONE;
	if (p->value.len > s->cfg->kv_max_value_size) {
		rpc_reply_error(req, CAIRN_E_TOOLARGE, "Value exceeds %llu byte limit",
				(unsigned long long)s->cfg->kv_max_value_size);
		return RPC_DONE;
	}
	fsm_cmd_kv_set(&s->cmd, p->key, p->value.ptr, p->value.len, p->flags, p->has_cas, p->cas);
	return propose(s, req);
}

static enum rpc_disposition handle_kv_delete(struct server *s, struct rpc_req *req)
{
	const struct proto_kv_delete *d = &req->msg.u.kv_delete;

	if (!dc_ok(s, d->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (!key_ok(req, d->key, d->recurse))
		return RPC_DONE;
	fsm_cmd_kv_delete(&s->cmd, d->key ? d->key : "", d->recurse, d->has_cas, d->cas);
	return propose(s, req);
}

static enum rpc_disposition handle_catalog_register(struct server *s, struct rpc_req *req)
{
	const struct proto_catalog_register *c = &req->msg.u.catalog_register;
	struct proto_node n;

	if (!dc_ok(s, c->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (c->nodes.n != 1) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide exactly one node");
		return RPC_DONE;
	}
	n = c->nodes.v[0];
	if (!n.node || !*n.node) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide node");
		return RPC_DONE;
	}
	if (strlen(n.node) > KEY_MAX) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Node name too long");
		return RPC_DONE;
	}
	if (!n.address || !*n.address) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide address");
		return RPC_DONE;
	}
	if (!dc_ok(s, n.datacenter)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	n.datacenter = s->cfg->datacenter;
	fsm_cmd_node_register(&s->cmd, &n);
	return propose(s, req);
}

/* Consul's /v1/catalog/register and /deregister, as one log command. */
static enum rpc_disposition handle_catalog_write(struct server *s, struct rpc_req *req)
{
	const struct proto_catalog_write *c = &req->msg.u.catalog_write;
	struct proto_node n;

	if (!dc_ok(s, c->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (c->nodes.n != 1 || !c->nodes.v[0].node || !*c->nodes.v[0].node) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide node");
		return RPC_DONE;
	}
	n = c->nodes.v[0];
	if (strlen(n.node) > KEY_MAX) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Node name too long");
		return RPC_DONE;
	}
	if (c->deregister) {
		catalog_cmd_deregister(&s->cmd, n.node, c->service_id, c->check_id);
		return propose(s, req);
	}
	if (!c->skip_node_update && (!n.address || !*n.address)) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide address");
		return RPC_DONE;
	}
	if (c->services.n > 1) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "At most one service per registration");
		return RPC_DONE;
	}
	if (c->services.n && (!c->services.v[0].service || !*c->services.v[0].service)) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Must provide service name with ID");
		return RPC_DONE;
	}
	n.datacenter = s->cfg->datacenter;
	catalog_cmd_register(&s->cmd, &n, c->skip_node_update, c->services.n ? c->services.v : NULL,
			     c->checks.v, c->checks.n);
	return propose(s, req);
}

/* KV PUT ?acquire= / ?release=, as one log command. */
static enum rpc_disposition handle_kv_lock(struct server *s, struct rpc_req *req)
{
	const struct proto_kv_lock *l = &req->msg.u.kv_lock;

	if (!dc_ok(s, l->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (!key_ok(req, l->key, false))
		return RPC_DONE;
	if (!l->session || !*l->session || strlen(l->session) > 64) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Missing session");
		return RPC_DONE;
	}
	if (l->acquire && s->lock_delays &&
	    session_lock_delayed(s->lock_delays, l->key, loop_now_ms(s->loop))) {
		/* Consul: inside the lock-delay an acquire is refused */
		struct proto_msg m = proto_msg_make(PROTO_WRITE_REPLY);

		m.u.write_reply.index = replica_last_applied(s->rp);
		m.u.write_reply.ok = false;
		(void)rpc_reply(req, &m);
		return RPC_DONE;
	}
	fsm_cmd_kv_lock(&s->cmd, l->key, l->value.ptr, l->value.len, l->flags, l->session,
			l->acquire);
	return propose(s, req);
}

/* /v1/session/create and destroy, as one log command each. */
static enum rpc_disposition handle_session_write(struct server *s, struct rpc_req *req)
{
	const struct proto_session_write *w = &req->msg.u.session_write;

	if (!dc_ok(s, w->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	if (!w->id || !*w->id || strlen(w->id) > 64) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Missing session");
		return RPC_DONE;
	}
	if (w->op == 1 && w->session)
		session_cmd_create(&s->cmd, w->id, w->session);
	else if (w->op == 2)
		session_cmd_destroy(&s->cmd, w->id);
	else {
		rpc_reply_error(req, CAIRN_E_BADREQ, "Invalid session operation");
		return RPC_DONE;
	}
	return propose(s, req);
}

/* A TXN_REPLY from a transaction's outcome (borrowed until the reply is
 * sent). */
static struct proto_msg txn_reply_of(const struct txn_outcome *o, uint64_t index)
{
	struct proto_msg m = proto_msg_make(PROTO_TXN_REPLY);

	m.u.txn_reply.index = index ? index : 1;
	if (o->n_errors) {
		m.u.txn_reply.errors.v = o->errors;
		m.u.txn_reply.errors.n = o->n_errors;
	} else {
		m.u.txn_reply.results.v = o->results;
		m.u.txn_reply.results.n = o->n_results;
	}
	return m;
}

/* /v1/txn (txn.h): a transaction that writes is one log command whose
 * outcome on_applied answers; a read-only one is answered from the state
 * like other reads (the cluster layer already applied the consistency
 * mode). */
static enum rpc_disposition handle_txn(struct server *s, struct rpc_req *req)
{
	const struct proto_txn *t = &req->msg.u.txn;
	struct txn_outcome *o;
	struct proto_msg m;
	uint64_t index;
	int rc;

	if (!dc_ok(s, t->dc)) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
		return RPC_DONE;
	}
	o = txn_outcome_new();
	if (!o) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	if (!txn_writes(t)) {
		struct store_txn *txn;

		if (store_txn_begin(replica_store(s->rp), false, &txn) < 0) {
			txn_outcome_free(o);
			rpc_reply_error(req, CAIRN_E_STORE, "state store read failed");
			return RPC_DONE;
		}
		rc = txn_read(txn, t, o);
		store_txn_abort(txn);
		if (rc < 0) {
			txn_outcome_free(o);
			rpc_reply_error(req, rc == -ENOMEM ? rc : CAIRN_E_STORE,
					"state store read failed");
			return RPC_DONE;
		}
		m = txn_reply_of(o, replica_last_applied(s->rp));
		m.u.txn_reply.known_leader = replica_known_leader(s->rp);
		m.u.txn_reply.last_contact_ms = replica_last_contact_ms(s->rp);
		(void)rpc_reply(req, &m);
		txn_outcome_free(o);
		return RPC_DONE;
	}
	rc = txn_cmd_encode(&s->cmd, t, s->cfg->datacenter, s->lock_delays, loop_now_ms(s->loop),
			    o);
	if (rc < 0 || o->n_errors) {
		if (rc < 0) {
			rpc_reply_error(req, rc, "out of memory");
		} else {
			m = txn_reply_of(o, replica_last_applied(s->rp));
			(void)rpc_reply(req, &m);
		}
		txn_outcome_free(o);
		mp_writer_reset(&s->cmd);
		return RPC_DONE;
	}
	txn_outcome_free(o);
	rc = replica_propose(s->rp, s->cmd.buf, s->cmd.len, req, &index);
	mp_writer_reset(&s->cmd);
	if (rc < 0) {
		rpc_reply_error(req, rc, "cannot append to the log: %s", err_str(rc));
		return RPC_DONE;
	}
	/* The entry is applied at a later flush, never inside propose. */
	if (txn_results_want(index) < 0)
		log_error("out of memory keeping a transaction's results");
	return RPC_KEEP;
}

/* After the commit: a transaction's results or errors. */
static void txn_applied(struct rpc_req *req, uint64_t index, const struct fsm_result *res)
{
	struct txn_outcome *o = txn_results_take(index);
	struct proto_msg m;

	if (res->code < 0 || !o) {
		if (res->code == CAIRN_E_NOLEADER)
			rpc_reply_error(req, res->code, "No cluster leader");
		else
			rpc_reply_error(req, res->code < 0 ? res->code : CAIRN_E_STORE,
					"transaction not applied: %s",
					err_str(res->code < 0 ? res->code : CAIRN_E_STORE));
		txn_outcome_free(o);
		return;
	}
	m = txn_reply_of(o, index);
	(void)rpc_reply(req, &m);
	txn_outcome_free(o);
}

/* After the commit: one reply per write. */
static void on_applied(void *ctx, void *ud, uint64_t index, const struct fsm_result *res)
{
	struct rpc_req *req = ud;
	struct proto_msg m;

	(void)ctx;
	if (!req)
		return; /* the leader's own command (session expiry) */
	if (req->msg.type == PROTO_TXN) {
		txn_applied(req, index, res);
		return;
	}
	if (res->code == CAIRN_E_STORE) {
		rpc_reply_error(req, res->code, "write failed: state store error");
		return;
	}
	if (res->code < 0 && res->msg[0]) {
		rpc_reply_error(req, res->code, "%s", res->msg); /* Consul's own text */
		return;
	}
	if (res->code < 0) {
		rpc_reply_error(req, res->code, "write rejected: %s", err_str(res->code));
		return;
	}
	m = proto_msg_make(PROTO_WRITE_REPLY);
	m.u.write_reply.index = index;
	m.u.write_reply.ok = res->ok;
	(void)rpc_reply(req, &m);
}

/* After the commit: mark the parked queries the change concerns. */
static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	struct server *s = ctx;

	if (space == FSM_SPACE_LOCK_DELAY) {
		uint64_t delay_ms;

		if (klen > 8 && s->lock_delays &&
		    store_be_to_u64((struct store_val){key, 8}, &delay_ms) == 0) {
			uint64_t now = loop_now_ms(s->loop);

			if (session_lock_delays_set(s->lock_delays, key + 8, klen - 8,
						    now + delay_ms, now) < 0)
				log_error("out of memory recording a lock-delay");
		}
		return;
	}
	(void)watch_notify(s->ws, space, key, klen);
}

/* Re-evaluates the woken queries; those whose index passed are answered. */
static void answer_fired(struct server *s)
{
	struct store_txn *txn = NULL;
	struct watch *w;

	while ((w = watch_next_fired(s->ws))) {
		struct rpc_req *req = watch_ud(w);

		if (!txn && store_txn_begin(replica_store(s->rp), false, &txn) < 0) {
			txn = NULL;
			watch_remove(s->ws, w);
			rpc_reply_error(req, CAIRN_E_STORE, "state store read failed");
			continue;
		}
		/* The watch must go first: answering frees req. */
		if (answer_read(s, txn, req, false) == ANSWERED)
			watch_remove(s->ws, w);
	}
	store_txn_abort(txn);
	arm_timer(s);
}

/* ---- the published read lease (lease_pub.h) -------------------------------- */

/* Publishes leadership, the lease and last contact for cairn-apid's direct
 * KV reads: at once when any of it changed, else every
 * LEASE_PUB_REFRESH_MS so that the page's liveness bound keeps moving. */
static void lease_publish(struct server *s)
{
	struct lease_info li = {0};
	const struct lease_info *prev;
	uint64_t now_ms, now_ns, until_ms, contact;

	if (!s->lease)
		return;
	now_ms = clock_now_ms();
	now_ns = lease_now_ns();
	li.generation = s->lease_gen;
	li.pid = (uint64_t)getpid();
	li.is_leader = !s->failed && replica_is_leader(s->rp);
	li.known_leader = replica_known_leader(s->rp);
	contact = replica_last_contact_ms(s->rp);
	li.contact_unknown = contact == UINT64_MAX;
	li.contact_at_ns = li.contact_unknown || contact * 1000000u > now_ns
			       ? 0
			       : now_ns - contact * 1000000u;
	li.applied_index = replica_last_applied(s->rp);
	li.alive_until_ns = s->failed ? 0 : now_ns + (uint64_t)LEASE_PUB_ALIVE_MS * 1000000u;
	until_ms = li.is_leader && !replica_transferring(s->rp) ? replica_lease_until_ms(s->rp) : 0;
	if (until_ms > now_ms) {
		/* the Raft lease is in clock_now_ms time, the same monotonic
		 * clock; never promise more than the liveness bound */
		uint64_t left_ns = (until_ms - now_ms) * 1000000u;

		if (until_ms == UINT64_MAX || left_ns / 1000000u != until_ms - now_ms)
			left_ns = UINT64_MAX;
		li.lease_until_ns = left_ns >= (uint64_t)LEASE_PUB_ALIVE_MS * 1000000u
					? li.alive_until_ns
					: now_ns + left_ns;
	}
	prev = lease_pub_last(s->lease);
	if (prev->generation == li.generation && prev->is_leader == li.is_leader &&
	    prev->known_leader == li.known_leader && prev->contact_unknown == li.contact_unknown &&
	    (prev->lease_until_ns == 0) == (li.lease_until_ns == 0) &&
	    (li.contact_at_ns > prev->contact_at_ns ? li.contact_at_ns - prev->contact_at_ns
						    : prev->contact_at_ns - li.contact_at_ns) <
		10000000u &&
	    now_ms < s->lease_written_ms + LEASE_PUB_REFRESH_MS &&
	    li.lease_until_ns >= prev->lease_until_ns) /* a shrinking lease goes out at once */
		return;
	lease_pub_set(s->lease, &li);
	s->lease_written_ms = now_ms;
}

static int64_t lease_tick(struct loop *l, void *ctx)
{
	struct server *s = ctx;
	int dead = 0;

	(void)l;
	lease_publish(s);
	/* apid reads the store from its own process: clear the reader slots
	 * a killed apid left (every 40 ticks, 10 s) */
	if (++s->lease_ticks % 40 == 0 &&
	    store_reader_check(replica_store(s->rp), &dead) == 0 && dead > 0)
		log_info("cleared %d reader slot(s) of dead processes in the store", dead);
	return LEASE_PUB_REFRESH_MS;
}

/* A snapshot archive copied off the loop thread is ready. */
static void on_snapshot_ready(struct loop *l, void *ctx, unsigned events)
{
	struct server *s = ctx;

	(void)l, (void)events;
	replica_snapshot_poll(s->rp);
}

/* The group commit: everything proposed in this loop iteration is made
 * durable in one transaction before any of it is acknowledged. */
static void before_sleep(struct loop *l, void *ctx)
{
	struct server *s = ctx;
	int rc;

	lease_publish(s);
	if (s->failed || !replica_has_pending(s->rp))
		return;
	rc = replica_flush(s->rp);
	if (rc < 0) {
		log_error("commit failed: %s (%s); stopping so a restart recovers from the log",
			  err_str(rc), store_errmsg(replica_store(s->rp)));
		s->failed = true;
		loop_stop(l);
		return;
	}
	answer_fired(s);
	lease_publish(s);
}

/* ---- session TTLs ---------------------------------------------------------- */

#define SESSION_TICK_MS 1000

struct tick_ctx {
	struct server *s;
	uint64_t now;
};

static int touch_cb(void *ctx, const char *id, uint64_t ttl_ms)
{
	struct tick_ctx *t = ctx;

	return session_timers_touch(t->s->sess_timers, id, ttl_ms, t->now);
}

/* The leader's session timers: every tick, sessions with a TTL are synced
 * from the table (a new leader starts each at now + 2 x TTL, Consul's
 * grace) and each expired one is destroyed by one log command, which
 * releases or deletes its locks. Followers keep no timers. */
static int64_t session_tick(struct loop *l, void *ctx)
{
	struct server *s = ctx;
	struct tick_ctx t = {s, loop_now_ms(l)};
	struct store_txn *txn;
	const char *id;
	int rc;

	if (s->failed || !replica_is_leader(s->rp) || replica_transferring(s->rp)) {
		session_timers_clear(s->sess_timers);
		return SESSION_TICK_MS;
	}
	if (store_txn_begin(replica_store(s->rp), false, &txn) < 0)
		return SESSION_TICK_MS;
	session_timers_begin(s->sess_timers);
	rc = session_each_ttl(txn, touch_cb, &t);
	store_txn_abort(txn);
	if (rc < 0) {
		log_error("session timers: %s", err_str(rc));
		return SESSION_TICK_MS;
	}
	session_timers_end(s->sess_timers);
	while ((id = session_timers_next_expired(s->sess_timers, t.now))) {
		uint64_t index;

		session_cmd_destroy(&s->cmd, id);
		if (s->cmd.err || replica_propose(s->rp, s->cmd.buf, s->cmd.len, NULL, &index) < 0)
			log_error("session %s expired but its destroy was not proposed", id);
		else
			log_info("session %s expired (TTL passed twice over), destroying it", id);
		mp_writer_reset(&s->cmd);
	}
	return SESSION_TICK_MS;
}

/* ---- dispatch -------------------------------------------------------------- */

static enum rpc_disposition handle(void *ctx, struct rpc_req *req)
{
	struct server *s = ctx;
	struct proto_msg m;

	if (s->failed) {
		rpc_reply_error(req, CAIRN_E_STORE, "raftd is stopping after a store failure");
		return RPC_DONE;
	}
	if (s->cl) {
		bool handled;
		enum rpc_disposition d = cluster_handle(s->cl, req, &handled);
		if (handled)
			return d;
	}
	switch (req->msg.type) {
	case PROTO_PING:
		m = proto_msg_make(PROTO_PONG);
		m.u.pong.sent_ms = req->msg.u.ping.sent_ms;
		(void)rpc_reply(req, &m);
		return RPC_DONE;
	case PROTO_STATUS_LEADER:
		if (!dc_ok(s, req->msg.u.status_leader.dc)) {
			rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
			return RPC_DONE;
		}
		m = proto_msg_make(PROTO_STATUS_LEADER_REPLY);
		m.u.status_leader_reply.leader = replica_leader_addr(s->rp);
		(void)rpc_reply(req, &m);
		return RPC_DONE;
	case PROTO_STATUS_PEERS: {
		const char *peers[RAFT_MAX_SERVERS];

		if (!dc_ok(s, req->msg.u.status_peers.dc)) {
			rpc_reply_error(req, CAIRN_E_UNAVAILABLE, "No path to datacenter");
			return RPC_DONE;
		}
		m = proto_msg_make(PROTO_STATUS_PEERS_REPLY);
		m.u.status_peers_reply.peers.v = peers;
		m.u.status_peers_reply.peers.n = replica_voters(s->rp, peers, RAFT_MAX_SERVERS);
		(void)rpc_reply(req, &m);
		return RPC_DONE;
	}
	case PROTO_KV_GET:
	case PROTO_CATALOG_NODE:
		return handle_read(s, req);
	case PROTO_KV_PUT:
		return handle_kv_put(s, req);
	case PROTO_KV_DELETE:
		return handle_kv_delete(s, req);
	case PROTO_CATALOG_REGISTER:
		return handle_catalog_register(s, req);
	case PROTO_CATALOG_WRITE:
		return handle_catalog_write(s, req);
	case PROTO_SESSION_QUERY:
		if (req->msg.u.session_query.view == SESSION_VIEW_RENEW &&
		    replica_is_leader(s->rp) && req->msg.u.session_query.arg)
			(void)session_timers_renew(s->sess_timers, req->msg.u.session_query.arg,
						   loop_now_ms(s->loop));
		return handle_read(s, req);
	case PROTO_CATALOG_QUERY:
	case PROTO_CATALOG_QUERY_NEAR:
	case PROTO_COORD_QUERY:
		return handle_read(s, req);
	case PROTO_COORD_UPDATE:
		return handle_coord_update(s, req);
	case PROTO_SESSION_WRITE:
		return handle_session_write(s, req);
	case PROTO_KV_LOCK:
		return handle_kv_lock(s, req);
	case PROTO_TXN:
		return handle_txn(s, req);
	case PROTO_OPERATOR_RAFT_CONFIG:
	case PROTO_OPERATOR_RAFT_REMOVE:
		return operator_handle(s->rp, req);
	case PROTO_AUTOPILOT_GET:
	case PROTO_AUTOPILOT_SET:
	case PROTO_AUTOPILOT_HEALTH:
		if (!s->ap) {
			rpc_reply_error(req, -ENOMEM, "autopilot not running");
			return RPC_DONE;
		}
		return autopilot_handle(s->ap, req);
	case PROTO_SNAPSHOT_SAVE:
	case PROTO_SNAPSHOT_RESTORE:
		return (enum rpc_disposition)replica_snapshot_rpc(s->rp, req);
	default:
		rpc_reply_error(req, CAIRN_E_BADREQ, "raftd does not serve %s",
				proto_type_name(req->msg.type));
		return RPC_DONE;
	}
}

/* ---- the LAN pool ------------------------------------------------------------ */

static void host_port(char *buf, size_t len, const char *host, int port);

/* Member changes: the leader's reconciliation, and server discovery. */
static void on_member(void *ctx, enum member_feed_change change, const struct member_feed_member *m,
		      const struct member_feed_member *old)
{
	struct server *s = ctx;
	const char *port;
	char hp[320];

	(void)old;
	if (change == MEMBER_FEED_SYNCED) {
		reconcile_request_full(s->rec);
		return;
	}
	reconcile_member_changed(s->rec, m->name, change == MEMBER_FEED_REMOVED);
	port = member_feed_tag(m, "port");
	if (s->cl && change != MEMBER_FEED_REMOVED && m->status == MEMBER_FEED_ALIVE &&
	    member_feed_is_server(m) && port && *port) {
		const char *mdc = member_feed_tag(m, "dc");

		if (!mdc || strcasecmp(mdc, s->cfg->datacenter) == 0) {
			host_port(hp, sizeof(hp), m->addr, atoi(port));
			cluster_note_server(s->cl, hp);
		}
	}
}

static int start_member_feed(struct server *s, void *zctx, char *err, size_t errlen)
{
	char sub[1024], rpc[1024];

	if (config_ipc_endpoint(s->cfg, CONFIG_SOCK_GOSSIP_EVENTS, sub, sizeof(sub)) < 0 ||
	    config_ipc_endpoint(s->cfg, CONFIG_SOCK_GOSSIPD, rpc, sizeof(rpc)) < 0) {
		snprintf(err, errlen, "gossipd endpoints: path too long");
		return -ENAMETOOLONG;
	}
	s->feed = member_feed_new(s->loop, zctx, sub, rpc, NULL, on_member, s);
	if (s->feed)
		s->rec = reconcile_new(s->loop, s->rp, s->cfg, s->feed);
	if (s->feed)
		s->ap = autopilot_new(s->loop, s->rp, s->feed, s->cfg->node_name,
				      s->cfg->datacenter);
	if (!s->feed || !s->rec || !s->ap) {
		snprintf(err, errlen, "member feed: out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* ---- lifecycle ------------------------------------------------------------- */

/* Formats host:port, bracketing IPv6 literals. */
static void host_port(char *buf, size_t len, const char *host, int port)
{
	if (strchr(host, ':'))
		snprintf(buf, len, "[%s]:%d", host, port);
	else
		snprintf(buf, len, "%s:%d", host, port);
}

/* The local node as Consul registers it: tagged lan/wan addresses and the
 * network segment meta key. */
static int register_self(struct server *s)
{
	const struct config *c = s->cfg;
	const char *addr = c->advertise_addr ? c->advertise_addr : "127.0.0.1";
	bool v6 = strchr(addr, ':') != NULL;
	const char *tkeys[4] = {"lan", v6 ? "lan_ipv6" : "lan_ipv4", "wan",
				v6 ? "wan_ipv6" : "wan_ipv4"};
	const char *tvals[4] = {addr, addr, addr, addr};
	const char *mkeys[1] = {"consul-network-segment"};
	const char *mvals[1] = {""};
	struct proto_node n = {
	    .id = c->node_id,
	    .node = c->node_name,
	    .address = addr,
	    .datacenter = c->datacenter,
	    .tagged_addresses = {tkeys, tvals, 4},
	    .meta = {mkeys, mvals, 1},
	};
	/* a single server is its own leader and knows it is alive: its
	 * serfHealth is there before the reconciliation's first pass, so a
	 * session on this node can be created at once */
	struct proto_check serf = {
	    .node = c->node_name,
	    .check_id = RECONCILE_CHECK_ID,
	    .name = RECONCILE_CHECK_NAME,
	    .status = "passing",
	    .output = RECONCILE_ALIVE_OUTPUT,
	};
	uint64_t index;

	catalog_cmd_register(&s->cmd, &n, false, NULL, &serf, 1);
	if (s->cmd.err)
		return s->cmd.err;
	return replica_propose(s->rp, s->cmd.buf, s->cmd.len, NULL, &index);
}

/* Opens the lease page in run_dir; without it apid simply reads through
 * the RPC, so a failure is only logged. */
static void lease_open(struct server *s)
{
	char path[4096];
	int rc;

	if (!s->cfg->run_dir ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", s->cfg->run_dir, LEASE_PUB_FILE) >=
		sizeof(path))
		return;
	if (getrandom(&s->lease_gen, sizeof(s->lease_gen), 0) != sizeof(s->lease_gen) ||
	    s->lease_gen == 0)
		s->lease_gen = s->rng | 1u;
	rc = lease_pub_open(path, &s->lease);
	if (rc < 0) {
		log_warn("read lease page %s: %s (apid reads through raftd)", path, err_str(rc));
		s->lease = NULL;
		return;
	}
	s->lease_tick_id = loop_timer_add(s->loop, LEASE_PUB_REFRESH_MS, lease_tick, s);
	lease_publish(s);
}

int server_new(struct loop *l, void *zctx, const struct config *cfg, struct server **out, char *err,
	       size_t errlen)
{
	struct server *s;
	char dir[4096], ipc[1024], tcp[400], hp[320];
	const char *endpoints[3] = {NULL, NULL, NULL};
	int rc;

	if (!cfg->data_dir || !cfg->node_name || !cfg->datacenter) {
		snprintf(err, errlen, "data_dir, node_name and datacenter are required");
		return CAIRN_E_CONFIG;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	s->loop = l;
	s->cfg = cfg;
	arena_init(&s->scratch, 64 * 1024);
	mp_writer_init(&s->cmd);
	if (getrandom(&s->rng, sizeof(s->rng), 0) != sizeof(s->rng) || s->rng == 0)
		s->rng = 0x9e3779b97f4a7c15ull ^ loop_now_ms(l);
	host_port(s->leader_addr, sizeof(s->leader_addr),
		  cfg->advertise_addr ? cfg->advertise_addr : "127.0.0.1", cfg->ports.server);

	s->ws = watch_set_new();
	s->lock_delays = session_lock_delays_new();
	if (!s->ws || !s->lock_delays) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/raft", cfg->data_dir) >= sizeof(dir)) {
		snprintf(err, errlen, "data_dir too long");
		rc = -ENAMETOOLONG;
		goto fail;
	}
	rc = replica_open(
	    &(struct replica_config){.dir = dir,
				     .server_id = cfg->node_id ? cfg->node_id : cfg->node_name,
				     .address = s->leader_addr,
				     .await_config = cluster_wanted(cfg),
				     .snapshot_threshold = cfg->raft_snapshot_threshold,
				     .trailing_logs = cfg->raft_trailing_logs},
	    on_applied, on_change, s, &s->rp, err, errlen);
	if (rc < 0)
		goto fail;
	rc = replica_start(s->rp);
	if (rc == 0 && !cluster_wanted(cfg))
		rc = register_self(s); /* a cluster registers through its leader */
	if (rc == 0)
		rc = replica_flush(s->rp); /* replay + no-op + self registration */
	if (rc < 0) {
		snprintf(err, errlen, "start raft in %s: %s (%s)", dir, err_str(rc),
			 store_errmsg(replica_store(s->rp)));
		goto fail;
	}

	rc = config_ipc_endpoint(cfg, CONFIG_SOCK_RAFTD, ipc, sizeof(ipc));
	if (rc < 0) {
		snprintf(err, errlen, "raftd ipc endpoint: %s", err_str(rc));
		goto fail;
	}
	endpoints[0] = ipc;
	if (cfg->ports.server > 0) {
		host_port(hp, sizeof(hp), cfg->bind_addr ? cfg->bind_addr : "127.0.0.1",
			  cfg->ports.server);
		snprintf(tcp, sizeof(tcp), "tcp://%s", hp);
		endpoints[1] = tcp;
	}
	s->rpc = rpc_server_new(l, zctx, endpoints, handle, s, err, errlen);
	if (!s->rpc) {
		rc = CAIRN_E_UNAVAILABLE;
		goto fail;
	}
	if (cluster_wanted(cfg)) {
		rc = cluster_new(l, zctx, cfg, s->rp, s->leader_addr, handle, s, &s->cl, err,
				 errlen);
		if (rc < 0)
			goto fail;
	}
	rc = loop_watch_fd(l, replica_snapshot_fd(s->rp), LOOP_READ, on_snapshot_ready, s);
	if (rc < 0) {
		snprintf(err, errlen, "watch the snapshot eventfd: %s", err_str(rc));
		goto fail;
	}
	s->snap_watched = true;
	rc = loop_add_before_sleep(l, before_sleep, s);
	if (rc < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	rc = start_member_feed(s, zctx, err, errlen);
	if (rc < 0)
		goto fail;
	s->sess_timers = session_timers_new();
	s->sess_tick_id = s->sess_timers ? loop_timer_add(l, SESSION_TICK_MS, session_tick, s) : 0;
	if (!s->sess_tick_id) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto fail;
	}
	lease_open(s);
	*out = s;
	return 0;
fail:
	server_free(s);
	return rc;
}

void server_free(struct server *s)
{
	struct watch *w;

	if (!s)
		return;
	/* withdraw the lease first: apid must read through the RPC now */
	if (s->lease_tick_id)
		loop_timer_del(s->loop, s->lease_tick_id);
	lease_pub_close(s->lease);
	s->lease = NULL;
	if (s->rp && !s->failed && replica_has_pending(s->rp)) {
		if (replica_flush(s->rp) < 0)
			log_error("final commit failed: %s", store_errmsg(replica_store(s->rp)));
	}
	/* Parked queries: answer with the current state, so clients re-ask
	 * the restarted raftd instead of waiting out their time-out. */
	if (s->ws) {
		struct store_txn *txn = NULL;

		if (s->rp && store_txn_begin(replica_store(s->rp), false, &txn) < 0)
			txn = NULL;
		while ((w = watch_pop_expired(s->ws, UINT64_MAX))) {
			struct rpc_req *req = watch_ud(w);

			watch_remove(s->ws, w);
			if (txn)
				(void)answer_read(s, txn, req, true);
			else
				rpc_req_free(req);
		}
		store_txn_abort(txn);
		watch_set_free(s->ws);
	}
	if (s->timer_id)
		loop_timer_del(s->loop, s->timer_id);
	if (s->sess_tick_id)
		loop_timer_del(s->loop, s->sess_tick_id);
	session_timers_free(s->sess_timers);
	autopilot_free(s->ap);
	reconcile_free(s->rec);
	member_feed_free(s->feed);
	if (s->snap_watched)
		loop_unwatch_fd(s->loop, replica_snapshot_fd(s->rp));
	/* proposals that did not commit (no quorum) get an error answer */
	replica_fail_outstanding(s->rp, CAIRN_E_UNAVAILABLE);
	cluster_free(s->cl); /* answers what waits for a leader */
	rpc_server_free(s->rpc);
	replica_close(s->rp);
	mp_writer_close(&s->cmd);
	arena_close(&s->scratch);
	session_lock_delays_free(s->lock_delays);
	free(s);
}

bool server_leave_begin(struct server *s)
{
	return s && !s->failed && cluster_leave_begin(s->cl);
}

bool server_failed(const struct server *s) { return s && s->failed; }
