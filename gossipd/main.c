/* cairn-gossipd: membership. Wires the config, the keyring, one gossip
 * pool per network (LAN; WAN on servers), the local API and the persisted
 * state together; the protocol lives in swim.c, the sockets in gossip_io.c. */
#include <errno.h>
#include <gnutls/crypto.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "arena.h"
#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "err.h"
#include "events.h"
#include "gossip_api.h"
#include "gossip_io.h"
#include "keyring.h"
#include "log.h"
#include "loop.h"
#include "members.h"
#include "proto.h"
#include "rpc.h"
#include "vivaldi.h"

#define JOIN_WAIT_MS 5000
#define LEAVE_WAIT_MS 5000
#define MAX_REJOIN 16

enum waiter_kind { WAIT_JOIN, WAIT_LEAVE, WAIT_EVENTS, WAIT_KEYRING };

struct waiter {
	struct rpc_req *req;
	enum waiter_kind kind;
	struct gossip_net *net; /* join: the pool */
	uint64_t before;	/* join: replies before; events: min_index */
	uint64_t deadline_ms;
};

#define KQ_MAX_KEYS 32

/* The keyring operation in progress (one at a time, as Consul's). */
struct keyring_query {
	bool active;
	char id[48];
	struct rpc_req *req;
	uint64_t expected, responses;
	uint8_t keys[KQ_MAX_KEYS][KEYRING_KEY_LEN];
	uint64_t count[KQ_MAX_KEYS], primary[KQ_MAX_KEYS];
	size_t n_keys;
	char errors[8][128];
	size_t n_errors;
};

/* One pool's network coordinate client (serf keeps one per pool). */
struct pool_coord {
	struct vivaldi *v;
	uint64_t updates, rejected; /* observations applied / refused */
};

struct gossipd {
	struct config *cfg;
	struct loop *l;
	struct keyring keyring;
	struct members lan, wan;
	struct gossip_net *lan_net, *wan_net;
	struct gossip_api *api;
	struct waiter waiters[32];
	size_t n_waiters;
	uint64_t waiter_timer;
	/* automatic (re)join: persisted members, -join and -retry-join */
	char **join_addrs;
	size_t n_join;
	uint64_t join_backoff_ms;
	uint64_t join_timer;
	uint64_t join_replies0;
	uint64_t leave_deadline_ms;
	struct events events;
	char keyring_path[4200];
	struct keyring_query kq;
	struct pool_coord lan_coord, wan_coord;
};

static void on_event(void *ctx, struct gossip_net *n, enum member_event ev, const struct member *m,
		     uint64_t seq)
{
	struct gossipd *g = ctx;

	if (ev == MEMBER_EVENT_LEAVE || ev == MEMBER_EVENT_REAP) {
		struct pool_coord *pc = n == g->wan_net ? &g->wan_coord : &g->lan_coord;

		if (pc->v)
			vivaldi_forget(pc->v, m->name); /* serf's ForgetNode */
	}
	if (n != g->lan_net && g->lan_net)
		return; /* subscribers follow the LAN pool only */
	if (!g->api)
		return;
	log_info("member %s: %s", m->name,
		 ev == MEMBER_EVENT_JOIN     ? "join"
		 : ev == MEMBER_EVENT_UPDATE ? "update"
		 : ev == MEMBER_EVENT_LEAVE  ? "leave"
		 : ev == MEMBER_EVENT_FAIL   ? "failed"
					     : "reap");
	if (gossip_api_publish(g->api, seq, ev, m) < 0)
		log_warn("publishing member event %llu failed", (unsigned long long)seq);
}

/* ---- network coordinates (serf's ping delegate) ----------------------------- */

/* Our coordinate rides on every ACK we send. */
static size_t coord_ack_payload(void *ctx, uint8_t *buf, size_t cap)
{
	struct pool_coord *pc = ctx;

	if (!pc->v || cap < VIVALDI_WIRE_LEN)
		return 0;
	vivaldi_coord_encode(vivaldi_get(pc->v), buf);
	return VIVALDI_WIRE_LEN;
}

/* A direct probe answered with the peer's coordinate: one observation. */
static void coord_ping_complete(void *ctx, const char *name, uint64_t rtt_us,
				const uint8_t *payload, size_t len)
{
	struct pool_coord *pc = ctx;
	struct vivaldi_coord other;

	if (!pc->v || vivaldi_coord_decode(payload, len, &other) < 0 ||
	    vivaldi_update(pc->v, name, &other, (double)rtt_us / 1e6) < 0) {
		pc->rejected++;
		return;
	}
	pc->updates++;
}

static int coord_add(struct arena *a, struct proto_coord *out, const char *node, const char *dc,
		     const struct vivaldi_coord *c)
{
	uint8_t *buf = arena_alloc(a, VIVALDI_WIRE_LEN);

	if (!buf)
		return -ENOMEM;
	vivaldi_coord_encode(c, buf);
	memset(out, 0, sizeof(*out));
	out->node = node;
	out->segment = "";
	out->datacenter = dc;
	out->coord.ptr = buf;
	out->coord.len = VIVALDI_WIRE_LEN;
	return 0;
}

/* COORD_GET: our LAN coordinate; with wan, our WAN coordinate then every
 * WAN peer's last one (names without their ".dc" suffix). */
static void answer_coords(struct gossipd *g, struct rpc_req *req)
{
	struct proto_msg r = proto_msg_make(PROTO_COORD_GET_REPLY);
	bool wan = req->msg.u.coord_get.wan;
	struct pool_coord *pc = wan ? &g->wan_coord : &g->lan_coord;
	struct proto_coord *v;
	size_t n = 0, cap;

	if (!pc->v) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "this agent has no WAN pool");
		return;
	}
	cap = 1 + (wan ? vivaldi_peer_count(pc->v) : 0);
	v = arena_alloc(&req->arena, cap * sizeof(*v));
	if (!v || coord_add(&req->arena, &v[n++], g->cfg->node_name, g->cfg->datacenter,
			    vivaldi_get(pc->v)) < 0)
		goto oom;
	for (size_t i = 0; wan && i < vivaldi_peer_count(pc->v); i++) {
		const char *name, *dc = NULL;
		const struct vivaldi_coord *c;
		const struct member *m;
		char *shortname;

		vivaldi_peer(pc->v, i, &name, &c);
		m = members_find(&g->wan, name);
		if (m)
			dc = member_tag_get(m, "dc");
		if (!m || !dc || m->status != MEMBER_ALIVE)
			continue;
		shortname = arena_strdup(&req->arena, name);
		if (!shortname)
			goto oom;
		{
			size_t ln = strlen(shortname), ld = strlen(dc);

			if (ln > ld + 1 && shortname[ln - ld - 1] == '.' &&
			    !strcmp(shortname + ln - ld, dc))
				shortname[ln - ld - 1] = 0;
		}
		if (coord_add(&req->arena, &v[n++], shortname, dc, c) < 0)
			goto oom;
	}
	r.u.coord_get_reply.coords.v = v;
	r.u.coord_get_reply.coords.n = n;
	(void)rpc_reply(req, &r); /* a gone caller is not our problem */
	return;
oom:
	(void)rpc_reply_error(req, -ENOMEM, "out of memory");
}

/* ---- counters (agent/metrics) ------------------------------------------------ */

/* GOSSIP_STATS: cumulative counters of both pools and a few gauges, by
 * Consul's metric names where Consul has one. Packets no installed key
 * opens are counted by the keyring shared by both pools. */
static void answer_stats(struct gossipd *g, struct rpc_req *req)
{
	struct proto_msg r = proto_msg_make(PROTO_GOSSIP_STATS_REPLY);
	static const char *ckeys[] = {
	    "consul.memberlist.decrypt_failed", "consul.memberlist.udp.received",
	    "consul.memberlist.udp.sent",	"consul.memberlist.malformed",
	    "consul.memberlist.probes",		"consul.memberlist.probe_failures",
	    "consul.serf.coordinate.updates",	"consul.serf.coordinate.rejected",
	};
	static const char *gkeys[] = {"consul.memberlist.health.score",
					    "consul.serf.coordinate.error"};
	uint64_t c[8] = {0};
	const char **cv = arena_alloc(&req->arena, sizeof(ckeys));
	const char **gv = arena_alloc(&req->arena, sizeof(gkeys));
	struct gossip_net *nets[2] = {g->lan_net, g->wan_net};
	struct pool_coord *pcs[2] = {&g->lan_coord, &g->wan_coord};

	if (!cv || !gv) {
		(void)rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	c[0] = g->keyring.decrypt_failures;
	for (int i = 0; i < 2; i++) {
		const struct swim_stats *st;

		if (!nets[i])
			continue;
		st = swim_stats(gossip_net_swim(nets[i]));
		c[1] += st->packets_recv;
		c[2] += st->packets_sent;
		c[3] += st->bad_packets;
		c[4] += st->probes;
		c[5] += st->probe_failures;
		c[6] += pcs[i]->updates;
		c[7] += pcs[i]->rejected;
	}
	for (size_t i = 0; i < 8; i++)
		cv[i] = arena_printf(&req->arena, "%llu", (unsigned long long)c[i]);
	gv[0] = arena_printf(&req->arena, "%u", swim_awareness(gossip_net_swim(g->lan_net)));
	gv[1] = arena_printf(&req->arena, "%.6f", vivaldi_get(g->lan_coord.v)->error);
	{
		time_t t = (time_t)(clock_wall_ms() / 1000);
		struct tm tm;
		char ts[64];

		gmtime_r(&t, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
		r.u.gossip_stats_reply.timestamp = arena_strdup(&req->arena, ts);
	}
	r.u.gossip_stats_reply.counters.keys = ckeys;
	r.u.gossip_stats_reply.counters.vals = cv;
	r.u.gossip_stats_reply.counters.n = 8;
	r.u.gossip_stats_reply.gauges.keys = gkeys;
	r.u.gossip_stats_reply.gauges.vals = gv;
	r.u.gossip_stats_reply.gauges.n = 2;
	(void)rpc_reply(req, &r); /* a gone caller is not our problem */
}

/* ---- user events ------------------------------------------------------------ */

static void on_user_event(void *ctx, const struct swim_user_event *ev)
{
	struct gossipd *g = ctx;

	if (events_add(&g->events, ev, g->cfg->node_name) < 0)
		log_warn("user event %s: out of memory", ev->name);
}

static void answer_events(struct gossipd *g, struct rpc_req *req)
{
	struct proto_msg r = proto_msg_make(PROTO_EVENT_LIST_REPLY);
	const char *name = req->msg.u.event_list.name;

	r.u.event_list_reply.index = g->events.index ? g->events.index : 1;
	if (events_to_proto(&g->events, name, &req->arena, &r.u.event_list_reply.events.v,
			    &r.u.event_list_reply.events.n) < 0) {
		(void)rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	(void)rpc_reply(req, &r); /* a gone caller is not our problem */
}

static void fire_event(struct gossipd *g, struct rpc_req *req)
{
	const struct proto_event_fire *f = &req->msg.u.event_fire;
	struct proto_msg r = proto_msg_make(PROTO_EVENT_FIRE_REPLY);
	struct proto_user_event *out;
	struct swim_user_event ev = {0};
	uint8_t u[16];
	char id[40];
	int rc;

	if (f->events.n != 1 || !f->events.v[0].name || !*f->events.v[0].name) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "one named event expected");
		return;
	}
	if (gnutls_rnd(GNUTLS_RND_NONCE, u, sizeof(u)) < 0) {
		(void)rpc_reply_error(req, -EIO, "no randomness for the event id");
		return;
	}
	u[6] = (uint8_t)((u[6] & 0x0f) | 0x40); /* UUID v4 */
	u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
	snprintf(id, sizeof(id),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1],
		 u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
		 u[15]);
	ev.id = id;
	ev.name = f->events.v[0].name;
	ev.payload = f->events.v[0].payload.ptr;
	ev.payload_len = f->events.v[0].payload.len;
	ev.node_filter = f->events.v[0].node_filter ? f->events.v[0].node_filter : "";
	ev.service_filter = f->events.v[0].service_filter ? f->events.v[0].service_filter : "";
	ev.tag_filter = f->events.v[0].tag_filter ? f->events.v[0].tag_filter : "";
	rc = swim_fire_event(gossip_net_swim(g->lan_net), &ev);
	if (rc == -EINVAL) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ,
				      "user event exceeds the limit of %d bytes", SWIM_EVENT_MAX);
		return;
	}
	gossip_net_kick(g->lan_net);
	out = arena_zalloc(&req->arena, sizeof(*out));
	if (rc < 0 || !out) {
		(void)rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	out->id = arena_strdup(&req->arena, id);
	out->name = ev.name;
	out->payload = f->events.v[0].payload;
	out->node_filter = ev.node_filter;
	out->service_filter = ev.service_filter;
	out->tag_filter = ev.tag_filter;
	out->ltime = ev.ltime;
	r.u.event_fire_reply.events.v = out;
	r.u.event_fire_reply.events.n = 1;
	(void)rpc_reply(req, &r);
}

/* ---- keyring --------------------------------------------------------------- */

/* Saves the keyring (primary first) so that a restart keeps a rotation;
 * it then takes precedence over `encrypt`, as Consul's local.keyring. */
static void keyring_save(struct gossipd *g)
{
	json_t *arr = json_array();
	char tmp[4300];

	for (size_t i = 0; arr && i < g->keyring.n; i++) {
		gnutls_datum_t in = {g->keyring.keys[i], KEYRING_KEY_LEN}, out = {NULL, 0};

		if (gnutls_base64_encode2(&in, &out) == 0) {
			char b64[64];

			snprintf(b64, sizeof(b64), "%.*s", (int)out.size, out.data);
			(void)json_array_append_new(arr, json_string(b64));
			gnutls_free(out.data);
		}
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", g->keyring_path);
	if (!arr || json_dump_file(arr, tmp, JSON_COMPACT) < 0 || rename(tmp, g->keyring_path) < 0)
		log_warn("saving %s: %s", g->keyring_path, strerror(errno));
	json_decref(arr);
}

/* A keyring query arrived (ours too): apply it, answer [status][keys...]. */
static void on_query(void *ctx, const char *op, const uint8_t *arg, size_t arg_len, uint8_t *out,
		     size_t *out_len)
{
	struct gossipd *g = ctx;
	int rc = 0;
	size_t n = 1;

	if (strncmp(op, "keyring-", 8) != 0) {
		*out_len = 0;
		return;
	}
	op += 8;
	if (strcmp(op, "list") != 0 && arg_len != KEYRING_KEY_LEN)
		rc = -EINVAL;
	else if (strcmp(op, "install") == 0)
		rc = keyring_add(&g->keyring, arg);
	else if (strcmp(op, "use") == 0)
		rc = keyring_use(&g->keyring, arg);
	else if (strcmp(op, "remove") == 0)
		rc = keyring_remove(&g->keyring, arg);
	else if (strcmp(op, "list") != 0)
		rc = -EINVAL;
	if (rc == -EEXIST)
		rc = 0; /* installing twice is fine */
	if (rc == 0 && strcmp(op, "list") != 0) {
		log_info("keyring: %s done", op);
		keyring_save(g);
	}
	out[0] = (uint8_t)(rc < 0 ? -rc : 0);
	for (size_t i = 0; i < g->keyring.n && n + KEYRING_KEY_LEN <= *out_len; i++) {
		memcpy(out + n, g->keyring.keys[i], KEYRING_KEY_LEN);
		n += KEYRING_KEY_LEN;
	}
	*out_len = n;
}

static void on_query_response(void *ctx, const char *id, const char *node, const uint8_t *p,
			      size_t len)
{
	struct gossipd *g = ctx;
	struct keyring_query *q = &g->kq;

	if (!q->active || strcmp(id, q->id) != 0 || len < 1 || (len - 1) % KEYRING_KEY_LEN)
		return;
	q->responses++;
	if (p[0] && q->n_errors < 8)
		snprintf(q->errors[q->n_errors++], sizeof(q->errors[0]), "%s: %s", node,
			 strerror(p[0]));
	for (size_t off = 1; off < len; off += KEYRING_KEY_LEN) {
		size_t k;

		for (k = 0; k < q->n_keys; k++)
			if (memcmp(q->keys[k], p + off, KEYRING_KEY_LEN) == 0)
				break;
		if (k == q->n_keys) {
			if (q->n_keys == KQ_MAX_KEYS)
				continue;
			memcpy(q->keys[q->n_keys++], p + off, KEYRING_KEY_LEN);
			q->count[k] = q->primary[k] = 0;
		}
		q->count[k]++;
		if (off == 1)
			q->primary[k]++;
	}
}

static void keyring_answer(struct gossipd *g)
{
	struct keyring_query *q = &g->kq;
	struct rpc_req *req = q->req;
	struct proto_msg r = proto_msg_make(PROTO_KEYRING_REPLY);
	struct proto_keyring_reply *kr = &r.u.keyring_reply;
	struct arena *a = &req->arena;

	q->active = false;
	kr->num_nodes = q->expected;
	kr->responses = q->responses;
	kr->keys.keys = arena_zalloc(a, (q->n_keys + 1) * sizeof(char *));
	kr->keys.vals = arena_zalloc(a, (q->n_keys + 1) * sizeof(char *));
	kr->primary_keys.keys = arena_zalloc(a, (q->n_keys + 1) * sizeof(char *));
	kr->primary_keys.vals = arena_zalloc(a, (q->n_keys + 1) * sizeof(char *));
	kr->errors.v = arena_zalloc(a, (q->n_errors + 1) * sizeof(char *));
	if (!kr->keys.keys || !kr->keys.vals || !kr->primary_keys.keys || !kr->primary_keys.vals ||
	    !kr->errors.v) {
		(void)rpc_reply_error(req, -ENOMEM, "out of memory");
		return;
	}
	for (size_t k = 0; k < q->n_keys; k++) {
		gnutls_datum_t in = {q->keys[k], KEYRING_KEY_LEN}, out = {NULL, 0};
		char *b64 = NULL;

		if (gnutls_base64_encode2(&in, &out) == 0) {
			b64 = arena_strndup(a, (const char *)out.data, out.size);
			gnutls_free(out.data);
		}
		if (!b64)
			continue;
		kr->keys.keys[kr->keys.n] = b64;
		kr->keys.vals[kr->keys.n++] =
		    arena_printf(a, "%llu", (unsigned long long)q->count[k]);
		if (q->primary[k]) {
			kr->primary_keys.keys[kr->primary_keys.n] = b64;
			kr->primary_keys.vals[kr->primary_keys.n++] =
			    arena_printf(a, "%llu", (unsigned long long)q->primary[k]);
		}
	}
	for (size_t i = 0; i < q->n_errors; i++)
		kr->errors.v[kr->errors.n++] = arena_strdup(a, q->errors[i]);
	(void)rpc_reply(req, &r);
}

static int keyring_start(struct gossipd *g, struct rpc_req *req)
{
	const struct proto_keyring_op *op = &req->msg.u.keyring_op;
	struct keyring_query *q = &g->kq;
	uint8_t key[KEYRING_KEY_LEN], u[8];
	char qop[64];
	bool list = op->op && strcmp(op->op, "list") == 0;
	int rc;

	if (!op->op || (!list && strcmp(op->op, "install") && strcmp(op->op, "use") &&
			strcmp(op->op, "remove"))) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "unknown keyring operation");
		return 0;
	}
	if (!keyring_enabled(&g->keyring)) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "gossip encryption is not enabled");
		return 0;
	}
	if (!list && (!op->key || keyring_key_decode(op->key, key) < 0)) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "key must be 32 bytes, base64");
		return 0;
	}
	if (q->active) {
		(void)rpc_reply_error(req, -EBUSY, "a keyring operation is in progress");
		return 0;
	}
	memset(q, 0, sizeof(*q));
	if (gnutls_rnd(GNUTLS_RND_NONCE, u, sizeof(u)) < 0) {
		(void)rpc_reply_error(req, -EIO, "no randomness");
		return 0;
	}
	snprintf(q->id, sizeof(q->id), "kq-%02x%02x%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2],
		 u[3], u[4], u[5], u[6], u[7]);
	snprintf(qop, sizeof(qop), "keyring-%s", op->op);
	q->active = true;
	q->req = req;
	q->expected = swim_num_live(gossip_net_swim(g->lan_net));
	rc = swim_query(gossip_net_swim(g->lan_net), q->id, qop, list ? NULL : key,
			list ? 0 : KEYRING_KEY_LEN);
	gossip_net_kick(g->lan_net);
	if (rc < 0) {
		q->active = false;
		(void)rpc_reply_error(req, rc, "keyring query failed");
		return 0;
	}
	return 1;
}

/* ---- parked commands ------------------------------------------------------ */

static bool leave_done(struct gossipd *g)
{
	return (!g->lan_net || swim_leave_done(gossip_net_swim(g->lan_net))) &&
	       (!g->wan_net || swim_leave_done(gossip_net_swim(g->wan_net)));
}

static int64_t on_waiters(struct loop *l, void *ctx)
{
	struct gossipd *g = ctx;
	uint64_t now = clock_now_ms();

	(void)l;
	for (size_t i = 0; i < g->n_waiters;) {
		struct waiter *w = &g->waiters[i];
		bool done = false;

		if (w->kind == WAIT_KEYRING) {
			if (g->kq.responses >= g->kq.expected || now >= w->deadline_ms) {
				keyring_answer(g);
				done = true;
			}
		} else if (w->kind == WAIT_EVENTS) {
			if (g->events.index > w->before || now >= w->deadline_ms) {
				answer_events(g, w->req);
				done = true;
			}
		} else if (w->kind == WAIT_LEAVE) {
			if (leave_done(g) || now >= w->deadline_ms) {
				struct proto_msg r = proto_msg_make(PROTO_GOSSIP_DONE);

				(void)rpc_reply(w->req, &r); /* a gone caller is not our problem */
				done = true;
			}
		} else {
			uint64_t got = gossip_net_join_replies(w->net) - w->before;

			if (got > 0) {
				struct proto_msg r = proto_msg_make(PROTO_GOSSIP_JOIN_REPLY);

				r.u.gossip_join_reply.joined = got;
				(void)rpc_reply(w->req, &r);
				done = true;
			} else if (now >= w->deadline_ms) {
				(void)rpc_reply_error(w->req, -ETIMEDOUT,
						      "failed to join: no member answered");
				done = true;
			}
		}
		if (done) {
			g->waiters[i] = g->waiters[--g->n_waiters];
			continue;
		}
		i++;
	}
	if (g->n_waiters == 0) {
		g->waiter_timer = 0;
		return LOOP_TIMER_STOP;
	}
	return 50;
}

static int park(struct gossipd *g, struct waiter w)
{
	if (g->n_waiters == sizeof(g->waiters) / sizeof(g->waiters[0]))
		return -EBUSY;
	g->waiters[g->n_waiters++] = w;
	if (!g->waiter_timer)
		g->waiter_timer = loop_timer_add(g->l, 50, on_waiters, g);
	return g->waiter_timer ? 0 : -ENOMEM;
}

static void do_leave(struct gossipd *g)
{
	if (g->lan_net) {
		(void)swim_leave(gossip_net_swim(g->lan_net));
		gossip_net_mark_left(g->lan_net);
		gossip_net_kick(g->lan_net);
	}
	if (g->wan_net) {
		(void)swim_leave(gossip_net_swim(g->wan_net));
		gossip_net_mark_left(g->wan_net);
		gossip_net_kick(g->wan_net);
	}
	if (g->join_timer) {
		loop_timer_del(g->l, g->join_timer);
		g->join_timer = 0;
	}
}

static int64_t on_leave_wait(struct loop *l, void *ctx)
{
	struct gossipd *g = ctx;

	if (leave_done(g) || clock_now_ms() >= g->leave_deadline_ms) {
		loop_stop(l);
		return LOOP_TIMER_STOP;
	}
	return 50;
}

/* Returns 1 when the request was kept, 0 when answered. */
static int on_command(void *ctx, struct rpc_req *req)
{
	struct gossipd *g = ctx;
	struct proto_msg r;

	switch (req->msg.type) {
	case PROTO_GOSSIP_JOIN: {
		const struct proto_gossip_join *j = &req->msg.u.gossip_join;
		struct gossip_net *n = j->wan ? g->wan_net : g->lan_net;
		struct waiter w = {0};

		if (!n) {
			(void)rpc_reply_error(req, CAIRN_E_BADREQ, "this agent has no WAN pool");
			return 0;
		}
		w.req = req;
		w.kind = WAIT_JOIN;
		w.net = n;
		w.before = gossip_net_join_replies(n);
		w.deadline_ms = clock_now_ms() + JOIN_WAIT_MS;
		if (gossip_net_join(n, (const char *const *)j->addresses.v, j->addresses.n) == 0) {
			(void)rpc_reply_error(req, -EINVAL, "failed to join: no address resolved");
			return 0;
		}
		if (park(g, w) < 0) {
			(void)rpc_reply_error(req, -EBUSY, "too many joins in progress");
			return 0;
		}
		return 1;
	}
	case PROTO_GOSSIP_LEAVE: {
		struct waiter w = {0};

		log_info("leaving the cluster (requested)");
		do_leave(g);
		w.req = req;
		w.kind = WAIT_LEAVE;
		w.deadline_ms = clock_now_ms() + LEAVE_WAIT_MS;
		if (park(g, w) < 0) {
			r = proto_msg_make(PROTO_GOSSIP_DONE);
			(void)rpc_reply(req, &r);
			return 0;
		}
		return 1;
	}
	case PROTO_KEYRING_OP: {
		struct waiter w = {0};

		if (!keyring_start(g, req))
			return 0;
		w.req = req;
		w.kind = WAIT_KEYRING;
		w.deadline_ms = clock_now_ms() + 3000; /* then answer what we have */
		if (park(g, w) < 0) {
			keyring_answer(g);
			return 0;
		}
		return 1;
	}
	case PROTO_EVENT_FIRE:
		fire_event(g, req);
		return 0;
	case PROTO_COORD_GET:
		answer_coords(g, req);
		return 0;
	case PROTO_GOSSIP_STATS:
		answer_stats(g, req);
		return 0;
	case PROTO_EVENT_LIST: {
		const struct proto_event_list *q = &req->msg.u.event_list;
		struct waiter w = {0};

		if (q->min_index == 0 || g->events.index > q->min_index) {
			answer_events(g, req);
			return 0;
		}
		w.req = req;
		w.kind = WAIT_EVENTS;
		w.before = q->min_index;
		w.deadline_ms = clock_now_ms() + (q->wait_ms ? q->wait_ms : 300000);
		if (park(g, w) < 0) {
			answer_events(g, req);
			return 0;
		}
		return 1;
	}
	case PROTO_GOSSIP_FORCE_LEAVE: {
		const struct proto_gossip_force_leave *f = &req->msg.u.gossip_force_leave;
		struct gossip_net *n = f->wan ? g->wan_net : g->lan_net;
		int rc;

		if (!n || !f->node) {
			(void)rpc_reply_error(req, CAIRN_E_NOTFOUND, "no such member");
			return 0;
		}
		rc = swim_force_leave(gossip_net_swim(n), f->node, f->prune);
		gossip_net_kick(n);
		if (rc == -ENOENT) {
			(void)rpc_reply_error(req, CAIRN_E_NOTFOUND, "no such member: %s", f->node);
			return 0;
		}
		r = proto_msg_make(PROTO_GOSSIP_DONE);
		r.u.gossip_done.count = rc == 0 ? 1 : 0; /* alive (-EBUSY): nothing to do */
		(void)rpc_reply(req, &r);
		return 0;
	}
	default:
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "gossipd does not serve %s",
				      proto_type_name(req->msg.type));
		return 0;
	}
}

/* ---- automatic join -------------------------------------------------------- */

static int64_t on_join_timer(struct loop *l, void *ctx)
{
	struct gossipd *g = ctx;

	(void)l;
	if (gossip_net_join_replies(g->lan_net) > g->join_replies0 ||
	    swim_num_live(gossip_net_swim(g->lan_net)) > 1) {
		log_info("joined the LAN pool (%zu members alive)",
			 swim_num_live(gossip_net_swim(g->lan_net)));
		g->join_timer = 0;
		return LOOP_TIMER_STOP;
	}
	if (gossip_net_join(g->lan_net, (const char *const *)g->join_addrs, g->n_join) == 0)
		log_warn("join: no address resolved; retrying");
	g->join_backoff_ms = g->join_backoff_ms ? g->join_backoff_ms * 2 : 1000;
	if (g->join_backoff_ms > 30000)
		g->join_backoff_ms = 30000;
	return (int64_t)g->join_backoff_ms;
}

static int add_join_addr(struct gossipd *g, const char *a)
{
	char **v = realloc(g->join_addrs, (g->n_join + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	g->join_addrs = v;
	v[g->n_join] = strdup(a);
	if (!v[g->n_join])
		return -ENOMEM;
	g->n_join++;
	return 0;
}

/* ---- set-up ----------------------------------------------------------------- */

static int load_keyring(struct gossipd *g, char *err, size_t errlen)
{
	json_t *enc = json_object_get(g->cfg->json, "encrypt");
	uint8_t key[KEYRING_KEY_LEN];

	json_t *saved = json_load_file(g->keyring_path, 0, NULL);

	keyring_init(&g->keyring);
	if (json_is_array(saved) && json_array_size(saved) > 0) {
		size_t i;
		json_t *v;

		/* a rotated keyring survives restarts and wins over `encrypt` */
		json_array_foreach(saved, i, v)
		{
			if (json_is_string(v) && keyring_key_decode(json_string_value(v), key) == 0)
				(void)keyring_add(&g->keyring, key); /* duplicates: skip */
		}
		json_decref(saved);
		if (g->keyring.n > 0)
			return 0;
	}
	json_decref(saved);
	if (!enc || (json_is_string(enc) && !*json_string_value(enc)))
		return 0;
	if (!json_is_string(enc) || keyring_key_decode(json_string_value(enc), key) < 0) {
		snprintf(err, errlen, "encrypt: not a base64 32-byte key (see cairn keygen)");
		return -EINVAL;
	}
	return keyring_add(&g->keyring, key);
}

static bool cfg_bool(const struct config *cfg, const char *name, bool def)
{
	json_t *v = json_object_get(cfg->json, name);

	return json_is_boolean(v) ? json_is_true(v) : def;
}

static struct gossip_net *start_pool(struct gossipd *g, bool wan, uint32_t *io_inc,
				     const char *state_path, struct member *self_out)
{
	struct members_self self = {
	    .node_name = g->cfg->node_name,
	    .addr = g->cfg->advertise_addr,
	    .port = (uint16_t)(wan ? g->cfg->ports.serf_wan : g->cfg->ports.serf_lan),
	    .datacenter = g->cfg->datacenter,
	    .node_id = g->cfg->node_id,
	    .server = g->cfg->server,
	    .server_port = g->cfg->ports.server,
	    .bootstrap_expect = g->cfg->bootstrap_expect,
	    .build = CAIRN_VERSION,
	};
	struct gossip_net_config c = {0};
	struct gossip_net *n;
	char err[512];

	if (members_self_build(&self, wan, self_out) < 0) {
		log_error("local member: missing name or address");
		return NULL;
	}
	c.bind_addr = g->cfg->bind_addr;
	c.port = self.port;
	c.state_path = state_path;
	c.keyring = &g->keyring;
	if (wan)
		swim_config_wan(&c.swim);
	else
		swim_config_lan(&c.swim);
	c.self = self_out;
	c.incarnation = *io_inc;
	c.table = wan ? &g->wan : &g->lan;
	c.on_event = on_event;
	c.on_user_event = wan ? NULL : on_user_event; /* user events are LAN only */
	c.on_query = wan ? NULL : on_query;	      /* the keyring is shared */
	c.on_query_response = wan ? NULL : on_query_response;
	c.ctx = g;
	c.ack_payload = coord_ack_payload;
	c.ping_complete = coord_ping_complete;
	c.coord_ctx = wan ? &g->wan_coord : &g->lan_coord;
	n = gossip_net_new(g->l, &c, err, sizeof(err));
	if (!n)
		log_error("%s pool: %s", wan ? "WAN" : "LAN", err);
	return n;
}

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct gossipd g = {0};
	struct member self_lan = {0}, self_wan = {0};
	void *zctx = NULL;
	char err[512], rpc_ep[512], pub_ep[512], dir[4096], lan_path[4200], wan_path[4200];
	char *saved[MAX_REJOIN];
	size_t n_saved = 0;
	uint32_t inc_lan = 0, inc_wan = 0;
	bool left = false, leave_on_term;
	int rc;

	members_init(&g.lan);
	members_init(&g.wan);
	events_init(&g.events);
	if (daemon_config("cairn-gossipd", argc, argv, &cfg) < 0)
		return 2;
	g.cfg = &cfg;
	snprintf(g.keyring_path, sizeof(g.keyring_path), "%s/gossip/keyring.json", cfg.data_dir);
	rc = load_keyring(&g, err, sizeof(err));
	if (rc < 0) {
		log_error("config: %s", err);
		config_close(&cfg);
		return 2;
	}
	/* Consul: servers stay in the cluster on SIGTERM, clients leave */
	leave_on_term = cfg_bool(&cfg, "leave_on_terminate", !cfg.server);

	snprintf(dir, sizeof(dir), "%s/gossip", cfg.data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		log_error("mkdir %s: %s", dir, strerror(errno));
		rc = -errno;
		goto out;
	}
	snprintf(lan_path, sizeof(lan_path), "%s/lan.json", dir);
	snprintf(wan_path, sizeof(wan_path), "%s/wan.json", dir);
	/* a restart re-enters with a higher incarnation, so that the pool
	 * takes our ALIVE over its memory of us failed */
	if (gossip_state_load(lan_path, &inc_lan, &left, saved, MAX_REJOIN, &n_saved) == 0)
		inc_lan++;
	{
		bool wl;
		char *ws[1];
		size_t wn = 0;

		if (gossip_state_load(wan_path, &inc_wan, &wl, ws, 0, &wn) == 0)
			inc_wan++;
	}

	rc = daemon_loop(&g.l, &zctx);
	if (rc < 0)
		goto out;
	rc = config_ipc_endpoint(&cfg, CONFIG_SOCK_GOSSIPD, rpc_ep, sizeof(rpc_ep));
	if (rc == 0)
		rc = config_ipc_endpoint(&cfg, CONFIG_SOCK_GOSSIP_EVENTS, pub_ep, sizeof(pub_ep));
	if (rc < 0) {
		log_error("endpoints: %s", err_str(rc));
		goto out;
	}
	g.api = gossip_api_new(g.l, zctx, rpc_ep, pub_ep, &g.lan, cfg.server ? &g.wan : NULL, err,
			       sizeof(err));
	if (!g.api) {
		log_error("%s", err);
		rc = -EADDRINUSE;
		goto out;
	}
	gossip_api_set_commands(g.api, on_command, &g);
	g.lan_coord.v = vivaldi_new(NULL, clock_now_ms() ^ (uint64_t)getpid());
	g.wan_coord.v = cfg.server ? vivaldi_new(NULL, clock_now_ms() ^ ~(uint64_t)getpid()) : NULL;
	if (!g.lan_coord.v || (cfg.server && !g.wan_coord.v)) {
		log_error("out of memory");
		rc = -ENOMEM;
		goto out;
	}
	rc = -EADDRINUSE;
	g.lan_net = start_pool(&g, false, &inc_lan, lan_path, &self_lan);
	if (!g.lan_net)
		goto out;
	if (cfg.server) {
		g.wan_net = start_pool(&g, true, &inc_wan, wan_path, &self_wan);
		if (!g.wan_net)
			goto out;
	}
	rc = 0;

	/* where to join: members we knew (unless we had left), then -join and
	 * -retry-join, retried with back-off until someone answers */
	if (!left)
		for (size_t i = 0; i < n_saved; i++)
			(void)add_join_addr(&g, saved[i]); /* best effort */
	for (char **p = cfg.start_join; p && *p; p++)
		(void)add_join_addr(&g, *p);
	for (char **p = cfg.retry_join; p && *p; p++)
		(void)add_join_addr(&g, *p);
	if (g.n_join > 0) {
		g.join_replies0 = gossip_net_join_replies(g.lan_net);
		g.join_timer = loop_timer_add(g.l, 0, on_join_timer, &g);
	}

	log_info("member %s (%s:%d, %s) in %s, incarnation %u%s; serving %s, events on %s",
		 cfg.node_name, cfg.advertise_addr, cfg.ports.serf_lan,
		 cfg.server ? "server" : "client", cfg.datacenter, inc_lan,
		 keyring_enabled(&g.keyring) ? ", encrypted" : "", rpc_ep, pub_ep);
	daemon_notify_ready();
	rc = loop_run(g.l);
	daemon_notify_stopping();
	if (rc < 0)
		log_error("event loop: %s", err_str(rc));
	else if (leave_on_term && !swim_leave_done(gossip_net_swim(g.lan_net))) {
		/* graceful leave: let the news spread before we go */
		log_info("leaving the cluster");
		do_leave(&g);
		g.leave_deadline_ms = clock_now_ms() + 3000;
		if (loop_timer_add(g.l, 50, on_leave_wait, &g))
			(void)loop_run(g.l); /* until spread or the deadline */
	}
out:
	gossip_api_free(g.api);
	gossip_net_free(g.wan_net);
	gossip_net_free(g.lan_net);
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(g.l);
	for (size_t i = 0; i < n_saved; i++)
		free(saved[i]);
	for (size_t i = 0; i < g.n_join; i++)
		free(g.join_addrs[i]);
	free(g.join_addrs);
	member_free_fields(&self_lan);
	member_free_fields(&self_wan);
	members_close(&g.lan);
	members_close(&g.wan);
	vivaldi_free(g.lan_coord.v);
	vivaldi_free(g.wan_coord.v);
	events_close(&g.events);
	config_close(&cfg);
	return rc < 0 ? 1 : 0;
}
