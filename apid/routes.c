/* The HTTP API's request handling (see routes.h). */
#include "routes.h"

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "agent_api.h"
#include "arena.h"
#include "agent_state.h"
#include "catalog_api.h"
#include "session_api.h"
#include "coordinate_api.h"
#include "snapshot_api.h"
#include "txn_api.h"
#include "autopilot_api.h"
#include "config.h"
#include "err.h"
#include "query.h"
#include "render.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

/* ---- response helpers ------------------------------------------------- */

int routes_header_add(struct routes_resp *r, const char *name, const char *value)
{
	if (!value)
		return -ENOMEM;
	if (r->n_hdrs == ROUTES_MAX_HDRS)
		return -ENOSPC; /* our bug: raise ROUTES_MAX_HDRS */
	r->hdrs[r->n_hdrs].name = name;
	r->hdrs[r->n_hdrs].value = value;
	r->n_hdrs++;
	return 0;
}

int routes_text(struct arena *a, unsigned status, const char *text, struct routes_resp *out)
{
	char *body = arena_strdup(a, text);

	if (!body)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	out->status = status;
	out->content_type = CT_TEXT;
	out->body = body;
	out->body_len = strlen(body);
	return 0;
}

int routes_json(struct arena *a, unsigned status, json_t *j, bool pretty,
		struct routes_resp *out)
{
	char *body;
	size_t len;
	int rc;

	if (!j)
		return -ENOMEM;
	rc = render_dump(a, j, pretty, &body, &len);
	json_decref(j);
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	out->status = status;
	out->content_type = CT_JSON;
	out->body = body;
	out->body_len = len;
	return 0;
}

/* X-Consul-Index (never 0: a client blocking on ?index=0 would spin),
 * X-Consul-KnownLeader and X-Consul-LastContact, as Consul's setMeta. */
static int add_meta(struct arena *a, struct routes_resp *r, uint64_t index, bool known_leader,
		    uint64_t last_contact_ms)
{
	int rc;

	rc = routes_header_add(r, "X-Consul-Index", arena_printf(a, "%" PRIu64, index ? index : 1));
	if (rc == 0)
		rc = routes_header_add(r, "X-Consul-KnownLeader", known_leader ? "true" : "false");
	if (rc == 0)
		rc = routes_header_add(r, "X-Consul-LastContact",
			     arena_printf(a, "%" PRIu64, last_contact_ms));
	return rc;
}

static const char *const consistency_names[] = {"leader", "consistent", "stale"};

/* ---- routing ---------------------------------------------------------- */

enum route {
	ROUTE_NONE,
	ROUTE_KV,
	ROUTE_STATUS_LEADER,
	ROUTE_STATUS_PEERS,
	ROUTE_AGENT_SELF,
	ROUTE_AGENT_MEMBERS,
	ROUTE_AGENT_METRICS, /* agent/metrics: gossipd's counters */
	ROUTE_AGENT_GOSSIP, /* agent/join, agent/leave, agent/force-leave */
	ROUTE_EVENT,	    /* event/fire, event/list */
	ROUTE_KEYRING,	    /* operator/keyring */
	ROUTE_CATALOG, /* /v1/catalog/ and /v1/health/: catalog_api.c */
	ROUTE_AGENT_LOCAL, /* agent services, checks, maintenance: agent_api.c */
	ROUTE_RAFT_CONFIG, /* operator/raft/configuration */
	ROUTE_RAFT_PEER,   /* operator/raft/peer */
	ROUTE_SESSION,	   /* /v1/session/: session_api.c */
	ROUTE_COORDINATE,  /* /v1/coordinate/: coordinate_api.c */
	ROUTE_SNAPSHOT,	   /* /v1/snapshot: snapshot_api.c */
	ROUTE_TXN,	   /* /v1/txn: txn_api.c */
	ROUTE_AUTOPILOT,   /* /v1/operator/autopilot/: autopilot_api.c */
};

struct route_def {
	const char *path; /* exact path, or prefix when it ends in '/' */
	enum route route;
	const char *allow; /* methods, as Consul's Allow header lists them */
};

static const struct route_def route_defs[] = {
    {"/v1/kv/", ROUTE_KV, "OPTIONS,GET,PUT,DELETE"},
    {"/v1/kv", ROUTE_KV, "OPTIONS,GET,PUT,DELETE"},
    {"/v1/status/leader", ROUTE_STATUS_LEADER, "OPTIONS,GET"},
    {"/v1/status/peers", ROUTE_STATUS_PEERS, "OPTIONS,GET"},
    {"/v1/agent/self", ROUTE_AGENT_SELF, "OPTIONS,GET"},
    {"/v1/agent/members", ROUTE_AGENT_MEMBERS, "OPTIONS,GET"},
    {"/v1/agent/metrics", ROUTE_AGENT_METRICS, "OPTIONS,GET"},
    {"/v1/agent/join/", ROUTE_AGENT_GOSSIP, "OPTIONS,PUT"},
    {"/v1/agent/leave", ROUTE_AGENT_GOSSIP, "OPTIONS,PUT"},
    {"/v1/agent/force-leave/", ROUTE_AGENT_GOSSIP, "OPTIONS,PUT"},
    {"/v1/event/fire/", ROUTE_EVENT, "OPTIONS,PUT"},
    {"/v1/event/list", ROUTE_EVENT, "OPTIONS,GET"},
    {"/v1/operator/keyring", ROUTE_KEYRING, "OPTIONS,GET,POST,PUT,DELETE"},
    {"/v1/operator/raft/configuration", ROUTE_RAFT_CONFIG, "OPTIONS,GET"},
    {"/v1/operator/raft/peer", ROUTE_RAFT_PEER, "OPTIONS,DELETE"},
    {"/v1/operator/autopilot/configuration", ROUTE_AUTOPILOT, "OPTIONS,GET,PUT"},
    {"/v1/operator/autopilot/health", ROUTE_AUTOPILOT, "OPTIONS,GET"},
    {"/v1/catalog/", ROUTE_CATALOG, "OPTIONS,GET,PUT"},
    {"/v1/agent/service/", ROUTE_AGENT_LOCAL, "OPTIONS,GET,PUT"},
    {"/v1/agent/services", ROUTE_AGENT_LOCAL, "OPTIONS,GET"},
    {"/v1/agent/check/", ROUTE_AGENT_LOCAL, "OPTIONS,PUT"},
    {"/v1/agent/checks", ROUTE_AGENT_LOCAL, "OPTIONS,GET"},
    {"/v1/agent/maintenance", ROUTE_AGENT_LOCAL, "OPTIONS,PUT"},
    {"/v1/agent/health/service/", ROUTE_AGENT_LOCAL, "OPTIONS,GET"},
    {"/v1/health/", ROUTE_CATALOG, "OPTIONS,GET"},
    {"/v1/session/", ROUTE_SESSION, "OPTIONS,GET,PUT"},
    {"/v1/coordinate/", ROUTE_COORDINATE, "OPTIONS,GET,PUT"},
    {"/v1/snapshot", ROUTE_SNAPSHOT, "OPTIONS,GET,PUT"},
    {"/v1/txn", ROUTE_TXN, "OPTIONS,PUT"},
};

static const struct route_def *route_match(const char *path)
{
	size_t i;

	for (i = 0; i < sizeof(route_defs) / sizeof(route_defs[0]); i++) {
		const struct route_def *d = &route_defs[i];
		size_t n = strlen(d->path);

		if (d->path[n - 1] == '/' ? strncmp(path, d->path, n) == 0
					  : strcmp(path, d->path) == 0)
			return d;
	}
	return NULL;
}

static bool method_allowed(const char *allow, const char *method)
{
	size_t n = strlen(method);
	const char *p = allow;

	while (*p) {
		size_t len = strcspn(p, ",");

		if (len == n && strncmp(p, method, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

uint64_t routes_body_limit(const struct routes_env *env, const char *method, const char *target)
{
	if (strcmp(method, "PUT") == 0 && (strcmp(target, "/v1/snapshot") == 0 ||
					   strncmp(target, "/v1/snapshot?", 13) == 0))
		return SNAPSHOT_API_MAX_BODY;
	if (strcmp(method, "PUT") == 0 &&
	    (strncmp(target, "/v1/kv/", 7) == 0 || strncmp(target, "/v1/kv?", 7) == 0))
		return env->cfg->kv_max_value_size;
	if (strcmp(method, "PUT") == 0 &&
	    (strcmp(target, "/v1/txn") == 0 || strncmp(target, "/v1/txn?", 8) == 0))
		return txn_api_body_limit(env->cfg);
	return env->cfg->http_max_body;
}

/* ---- query options common to reads (Consul's parse()) ----------------- */


const char *routes_parse_read_opts(struct arena *a, const struct query *q,
				   struct routes_read_opts *o)
{
	const char *v;
	uint64_t wait_ms = 0;
	bool stale = query_has(q, "stale"), consistent = query_has(q, "consistent");

	memset(o, 0, sizeof(*o));
	if (stale && consistent)
		return "Cannot specify ?stale with ?consistent, conflicting semantics.";
	o->mode = consistent ? 1 : stale ? 2 : 0;
	v = query_get(q, "max_stale");
	if (v && *v && query_parse_duration_ms(v, &o->max_stale_ms) < 0) {
		const char *msg = arena_printf(a, "Invalid max_stale value %s", v);

		return msg ? msg : "Invalid max_stale value";
	}
	v = query_get(q, "wait");
	if (v && *v && query_parse_duration_ms(v, &wait_ms) < 0)
		return "Invalid wait time";
	v = query_get(q, "index");
	if (v && *v && query_parse_u64(v, &o->min_index) < 0)
		return "Invalid index";
	if (o->min_index > 0) {
		/* Consul: no or zero wait means the default; longer than the
		 * maximum is cut to it. The server adds up to wait/16 of jitter,
		 * so the call must outlive that. */
		if (wait_ms == 0)
			wait_ms = ROUTES_WAIT_DEFAULT_MS;
		if (wait_ms > ROUTES_WAIT_MAX_MS)
			wait_ms = ROUTES_WAIT_MAX_MS;
		o->wait_ms = wait_ms;
		o->timeout_ms = wait_ms + wait_ms / 16 + ROUTES_RPC_TIMEOUT_MS;
	} else {
		o->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	}
	return NULL;
}

/* True when ?dc names another datacenter than ours. */
static bool other_dc(const struct routes_env *env, const struct query *q)
{
	const char *dc = query_get(q, "dc");

	return dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0;
}

/* ---- KV --------------------------------------------------------------- */

static int kv_dispatch(const struct routes_env *env, const struct routes_req *req, const char *key,
		       const struct query *q, struct arena *a, struct routes_action *out)
{
	struct routes_call *c = &out->call;
	const char *v;

	if (strcmp(req->method, "GET") == 0) {
		struct routes_read_opts o;
		const char *bad = routes_parse_read_opts(a, q, &o);
		bool keys = query_has(q, "keys"), recurse = query_has(q, "recurse");
		struct proto_kv_get *g;

		if (bad)
			goto bad_request_msg;
		if (!keys && !recurse && key[0] == '\0') {
			bad = "Missing key name";
			goto bad_request_msg;
		}
		if (other_dc(env, q))
			goto no_dc;
		c->op = keys ? ROUTES_OP_KV_KEYS : ROUTES_OP_KV_GET;
		c->peer = ROUTES_PEER_RAFTD;
		c->msg = proto_msg_make(PROTO_KV_GET);
		c->timeout_ms = o.timeout_ms;
		c->raw = !keys && !recurse && query_has(q, "raw");
		c->has_prefix = key[0] != '\0';
		c->consistency = o.mode;
		g = &c->msg.u.kv_get;
		g->key = key;
		g->recurse = !keys && recurse;
		g->keys_only = keys;
		if (keys) {
			/* Consul still honours its historic misspelling */
			v = query_get(q, "separator");
			if (!v)
				v = query_get(q, "seperator");
			g->separator = v && *v ? v : NULL;
		}
		g->mode = o.mode;
		g->max_stale_ms = o.max_stale_ms;
		g->min_index = o.min_index;
		g->wait_ms = o.wait_ms;
		out->respond = false;
		return 0;

	bad_request_msg:
		out->respond = true;
		return routes_text(a, 400, bad, &out->resp);
	}

	if (strcmp(req->method, "PUT") == 0) {
		struct proto_kv_put *p;
		int nflags =
		    query_has(q, "cas") + query_has(q, "acquire") + query_has(q, "release");

		out->respond = true;
		if (key[0] == '\0')
			return routes_text(a, 400, "Missing key name", &out->resp);
		if (nflags > 1)
			return routes_text(a, 400, "Conflicting flags: cas, acquire and release",
					   &out->resp);
		c->msg = proto_msg_make(PROTO_KV_PUT);
		p = &c->msg.u.kv_put;
		p->key = key;
		v = query_get(q, "flags");
		if (v && query_parse_u64(v, &p->flags) < 0)
			return routes_text(a, 400, "Invalid flags value: want an unsigned integer",
					   &out->resp);
		v = query_get(q, "cas");
		if (v) {
			if (query_parse_u64(v, &p->cas) < 0)
				return routes_text(a, 400,
						   "Invalid cas value: want an unsigned integer",
						   &out->resp);
			p->has_cas = true;
			c->want_result = true;
		}
		const char *lock_sess = query_get(q, query_has(q, "acquire") ? "acquire" : "release");
		if (lock_sess && !*lock_sess)
			return routes_text(a, 400, "Missing session", &out->resp);
		if (req->body_too_large || req->body_len > env->cfg->kv_max_value_size) {
			const char *msg =
			    req->body_seen > env->cfg->kv_max_value_size
				? arena_printf(a,
					       "Request body(%" PRIu64
					       " bytes) too large, max size: %" PRIu64
					       " bytes. See "
					       "https://developer.hashicorp.com/docs/agent/"
					       "config/config-files#kv_max_value_size.",
					       req->body_seen, env->cfg->kv_max_value_size)
				: arena_printf(
				      a, "Request body too large, max size: %" PRIu64 " bytes.",
				      env->cfg->kv_max_value_size);

			if (!msg)
				return -ENOMEM;
			return routes_text(a, 413, msg, &out->resp);
		}
		if (other_dc(env, q))
			goto no_dc;
		p->value.ptr = req->body_len ? req->body : NULL;
		p->value.len = req->body_len;
		if (lock_sess) {
			/* ?acquire= / ?release=: one KV_LOCK; the answer is its outcome */
			struct proto_kv_put put = *p;

			c->msg = proto_msg_make(PROTO_KV_LOCK);
			c->msg.u.kv_lock.dc = put.dc;
			c->msg.u.kv_lock.key = put.key;
			c->msg.u.kv_lock.value = put.value;
			c->msg.u.kv_lock.flags = put.flags;
			c->msg.u.kv_lock.session = lock_sess;
			c->msg.u.kv_lock.acquire = query_has(q, "acquire");
			c->want_result = true;
		}
		c->op = ROUTES_OP_KV_PUT;
		c->peer = ROUTES_PEER_RAFTD;
		c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		out->respond = false;
		return 0;
	}

	if (strcmp(req->method, "DELETE") == 0) {
		struct proto_kv_delete *d;

		out->respond = true;
		if (query_has(q, "recurse") && query_has(q, "cas"))
			return routes_text(a, 400, "Conflicting flags: recurse and cas",
					   &out->resp);
		c->msg = proto_msg_make(PROTO_KV_DELETE);
		d = &c->msg.u.kv_delete;
		d->key = key;
		d->recurse = query_has(q, "recurse");
		if (!d->recurse && key[0] == '\0')
			return routes_text(a, 400, "Missing key name", &out->resp);
		v = query_get(q, "cas");
		if (v) {
			if (query_parse_u64(v, &d->cas) < 0)
				return routes_text(a, 400,
						   "Invalid cas value: want an unsigned integer",
						   &out->resp);
			d->has_cas = true;
			c->want_result = true;
		}
		if (other_dc(env, q))
			goto no_dc;
		c->op = ROUTES_OP_KV_DELETE;
		c->peer = ROUTES_PEER_RAFTD;
		c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		out->respond = false;
		return 0;
	}
	/* the method was checked against the route's list */
	out->respond = true;
	return routes_text(a, 405, "method not allowed", &out->resp);

no_dc:
	/* Consul's RPC layer answers this for a datacenter it cannot reach;
	 * only the local one exists until the WAN pool does. */
	memset(c, 0, sizeof(*c));
	out->respond = true;
	return routes_text(a, 500, "No path to datacenter", &out->resp);
}

/* PUT /v1/agent/join/<address>[?wan], /v1/agent/leave,
 * /v1/agent/force-leave/<node>[?prune][&wan]: one request to gossipd,
 * answered with an empty 200 as Consul does. */
static int agent_gossip_dispatch(const char *path, const struct query *q, struct arena *a,
				 struct routes_action *out)
{
	struct proto_msg *m = &out->call.msg;

	if (strncmp(path, "/v1/agent/join/", 15) == 0) {
		const char **v = arena_alloc(a, sizeof(*v));

		if (!v)
			return -ENOMEM;
		if (!path[15])
			return routes_text(a, 400, "Missing address to join", &out->resp);
		v[0] = path + 15;
		*m = proto_msg_make(PROTO_GOSSIP_JOIN);
		m->u.gossip_join.addresses.v = v;
		m->u.gossip_join.addresses.n = 1;
		m->u.gossip_join.wan = query_has(q, "wan");
	} else if (strncmp(path, "/v1/agent/force-leave/", 22) == 0) {
		if (!path[22])
			return routes_text(a, 400, "Missing node name", &out->resp);
		*m = proto_msg_make(PROTO_GOSSIP_FORCE_LEAVE);
		m->u.gossip_force_leave.node = path + 22;
		m->u.gossip_force_leave.prune = query_has(q, "prune");
		m->u.gossip_force_leave.wan = query_has(q, "wan");
	} else if (strcmp(path, "/v1/agent/leave") == 0) {
		*m = proto_msg_make(PROTO_GOSSIP_LEAVE);
	} else {
		return routes_text(a, 404, "404 page not found", &out->resp);
	}
	out->respond = false;
	out->call.op = ROUTES_OP_AGENT_GOSSIP;
	out->call.peer = ROUTES_PEER_GOSSIPD;
	out->call.timeout_ms = 15000; /* gossipd waits up to 5 s for a join or leave */
	return 0;
}

/* PUT /v1/event/fire/<name>[?node=][&service=][&tag=] (body: payload) and
 * GET /v1/event/list[?name=][&index=&wait=]: gossipd keeps the events. */
static int event_dispatch(const struct routes_req *req, const char *path, const struct query *q,
			  struct arena *a, struct routes_action *out)
{
	struct proto_msg *m = &out->call.msg;

	if (strncmp(path, "/v1/event/fire/", 15) == 0) {
		struct proto_user_event *ev = arena_zalloc(a, sizeof(*ev));

		if (!ev)
			return -ENOMEM;
		if (!path[15])
			return routes_text(a, 400, "Missing name", &out->resp);
		ev->name = path + 15;
		ev->payload.ptr = req->body_len ? req->body : NULL;
		ev->payload.len = req->body_len;
		ev->node_filter = query_get(q, "node");
		ev->service_filter = query_get(q, "service");
		ev->tag_filter = query_get(q, "tag");
		if (ev->tag_filter && *ev->tag_filter &&
		    !(ev->service_filter && *ev->service_filter))
			return routes_text(a, 400, "Cannot provide tag filter without service filter.",
					   &out->resp);
		*m = proto_msg_make(PROTO_EVENT_FIRE);
		m->u.event_fire.events.v = ev;
		m->u.event_fire.events.n = 1;
		out->call.op = ROUTES_OP_EVENT_FIRE;
		out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	} else if (strcmp(path, "/v1/event/list") == 0) {
		struct routes_read_opts o;
		const char *bad = routes_parse_read_opts(a, q, &o);

		if (bad)
			return routes_text(a, 400, bad, &out->resp);
		*m = proto_msg_make(PROTO_EVENT_LIST);
		m->u.event_list.name = query_get(q, "name");
		m->u.event_list.min_index = o.min_index;
		m->u.event_list.wait_ms = o.wait_ms;
		out->call.op = ROUTES_OP_EVENT_LIST;
		out->call.timeout_ms = o.timeout_ms;
	} else {
		return routes_text(a, 404, "404 page not found", &out->resp);
	}
	out->respond = false;
	out->call.peer = ROUTES_PEER_GOSSIPD;
	return 0;
}

/* /v1/operator/keyring: GET lists, POST installs, PUT uses, DELETE
 * removes the key of the body {"Key": "<base64>"}, across the LAN pool. */
static int keyring_dispatch(const struct routes_req *req, struct arena *a,
			    struct routes_action *out)
{
	struct proto_msg *m = &out->call.msg;
	const char *op = strcmp(req->method, "GET") == 0	? "list"
			 : strcmp(req->method, "POST") == 0 ? "install"
			 : strcmp(req->method, "PUT") == 0	? "use"
								: "remove";
	const char *key = NULL;

	if (strcmp(op, "list") != 0) {
		json_t *doc = req->body ? json_loadb((const char *)req->body, req->body_len, 0, NULL)
					: NULL;
		const char *k;
		json_t *v;

		json_object_foreach(doc, k, v)
		{
			if (strcasecmp(k, "Key") == 0 && json_is_string(v))
				key = arena_strdup(a, json_string_value(v));
		}
		json_decref(doc);
		if (!key)
			return routes_text(a, 400, "Request body must have a Key", &out->resp);
	}
	*m = proto_msg_make(PROTO_KEYRING_OP);
	m->u.keyring_op.op = op;
	m->u.keyring_op.key = key;
	out->respond = false;
	out->call.op = ROUTES_OP_KEYRING;
	out->call.peer = ROUTES_PEER_GOSSIPD;
	out->call.timeout_ms = 15000; /* gossipd gathers answers for up to 3 s */
	return 0;
}

static int keyring_reply(const struct routes_env *env, const struct routes_call *call,
			 const struct proto_keyring_reply *kr, struct arena *a,
			 struct routes_resp *out)
{
	json_t *arr, *o, *keys, *prim, *msgs;

	if (strcmp(call->msg.u.keyring_op.op, "list") != 0) {
		if (kr->errors.n > 0) {
			const char *msg = arena_printf(a, "%zu nodes reported failure: %s",
						       kr->errors.n, kr->errors.v[0]);

			return msg ? routes_text(a, 500, msg, out) : -ENOMEM;
		}
		memset(out, 0, sizeof(*out));
		out->status = 200;
		return 0;
	}
	arr = json_array();
	o = json_object();
	keys = json_object();
	prim = json_object();
	msgs = json_object();
	for (size_t i = 0; keys && i < kr->keys.n; i++)
		(void)json_object_set_new(keys, kr->keys.keys[i],
					  json_integer(strtoll(kr->keys.vals[i], NULL, 10)));
	for (size_t i = 0; prim && i < kr->primary_keys.n; i++)
		(void)json_object_set_new(
		    prim, kr->primary_keys.keys[i],
		    json_integer(strtoll(kr->primary_keys.vals[i], NULL, 10)));
	if (!arr || !o || !keys || !prim || !msgs) {
		json_decref(arr);
		json_decref(o);
		json_decref(keys);
		json_decref(prim);
		json_decref(msgs);
		return -ENOMEM;
	}
	(void)json_object_set_new(o, "WAN", json_false());
	(void)json_object_set_new(o, "Datacenter", json_string(env->cfg->datacenter));
	(void)json_object_set_new(o, "Segment", json_string(""));
	(void)json_object_set_new(o, "Messages", msgs);
	(void)json_object_set_new(o, "Keys", keys);
	(void)json_object_set_new(o, "PrimaryKeys", prim);
	(void)json_object_set_new(o, "NumNodes", json_integer((json_int_t)kr->num_nodes));
	(void)json_array_append_new(arr, o);
	return routes_json(a, 200, arr, call->pretty, out);
}

/* ---- operator/raft ---------------------------------------------------- */

/* GET /v1/operator/raft/configuration[?stale] and
 * DELETE /v1/operator/raft/peer?id=...|address=... (Consul's
 * operator_endpoint.go): one request to raftd, which routes both to the
 * leader. */
static int raft_dispatch(const struct routes_env *env, bool config, const struct query *q,
			 struct arena *a, struct routes_action *out)
{
	struct proto_msg *m = &out->call.msg;

	if (other_dc(env, q))
		return routes_text(a, 500, "No path to datacenter", &out->resp);
	if (config) {
		struct routes_read_opts o;
		const char *bad = routes_parse_read_opts(a, q, &o);

		if (bad)
			return routes_text(a, 400, bad, &out->resp);
		/* OPERATOR_RAFT_CONFIG carries no consistency mode: raftd
		 * answers from the leader whatever the mode asked. */
		*m = proto_msg_make(PROTO_OPERATOR_RAFT_CONFIG);
		out->call.op = ROUTES_OP_RAFT_CONFIG;
		out->call.consistency = o.mode;
	} else {
		const char *id = query_get(q, "id"), *addr = query_get(q, "address");

		if (!id && !addr)
			return routes_text(a, 400,
					   "Must specify either ?id with the server's ID or "
					   "?address with IP:port of peer to remove",
					   &out->resp);
		if (id && addr)
			return routes_text(a, 400, "Must specify only one of ?id or ?address",
					   &out->resp);
		*m = proto_msg_make(PROTO_OPERATOR_RAFT_REMOVE);
		m->u.operator_raft_remove.id = id ? id : "";
		m->u.operator_raft_remove.address = addr ? addr : "";
		out->call.op = ROUTES_OP_RAFT_REMOVE;
	}
	out->respond = false;
	out->call.peer = ROUTES_PEER_RAFTD;
	out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	return 0;
}

/* ---- dispatch --------------------------------------------------------- */

int routes_dispatch(const struct routes_env *env, const struct routes_req *req, struct arena *a,
		    struct routes_action *out)
{
	const struct route_def *d;
	const char *path;
	struct query q;
	int rc;

	memset(out, 0, sizeof(*out));
	out->respond = true;
	rc = query_split_target(a, req->target, &path, &q);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0)
		return routes_text(a, 400, "Bad request: invalid URL escape", &out->resp);
	d = route_match(path);
	if (!d)
		return routes_text(a, 404, "404 page not found", &out->resp);
	if (strcmp(req->method, "OPTIONS") == 0) {
		memset(&out->resp, 0, sizeof(out->resp));
		out->resp.status = 200;
		return routes_header_add(&out->resp, "Allow", d->allow);
	}
	if (!method_allowed(d->allow, req->method)) {
		const char *msg = arena_printf(a, "method %s not allowed", req->method);

		if (!msg)
			return -ENOMEM;
		rc = routes_text(a, 405, msg, &out->resp);
		if (rc == 0)
			rc = routes_header_add(&out->resp, "Allow", d->allow);
		return rc;
	}
	if (req->body_too_large && d->route != ROUTE_KV && d->route != ROUTE_SNAPSHOT && d->route != ROUTE_TXN) {
		const char *msg =
		    arena_printf(a, "Request body too large, max size: %" PRIu64 " bytes.",
				 env->cfg->http_max_body);

		return msg ? routes_text(a, 413, msg, &out->resp) : -ENOMEM;
	}
	out->call.pretty = query_has(&q, "pretty");

	switch (d->route) {
	case ROUTE_KV: {
		const char *key = strncmp(path, "/v1/kv/", 7) == 0 ? path + 7 : "";
		bool pretty = out->call.pretty;

		rc = kv_dispatch(env, req, key, &q, a, out);
		out->call.pretty = pretty;
		return rc;
	}
	case ROUTE_STATUS_LEADER:
	case ROUTE_STATUS_PEERS: {
		bool leader = d->route == ROUTE_STATUS_LEADER;

		if (other_dc(env, &q))
			return routes_text(a, 500, "No path to datacenter", &out->resp);
		out->respond = false;
		out->call.op = leader ? ROUTES_OP_STATUS_LEADER : ROUTES_OP_STATUS_PEERS;
		out->call.peer = ROUTES_PEER_RAFTD;
		out->call.msg = proto_msg_make(leader ? PROTO_STATUS_LEADER : PROTO_STATUS_PEERS);
		out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		return 0;
	}
	case ROUTE_AGENT_METRICS:
		out->respond = false;
		out->call.op = ROUTES_OP_AGENT_METRICS;
		out->call.peer = ROUTES_PEER_GOSSIPD;
		out->call.msg = proto_msg_make(PROTO_GOSSIP_STATS);
		out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		return 0;
	case ROUTE_AGENT_SELF:
	case ROUTE_AGENT_MEMBERS:
		out->respond = false;
		out->call.op =
		    d->route == ROUTE_AGENT_SELF ? ROUTES_OP_AGENT_SELF : ROUTES_OP_AGENT_MEMBERS;
		out->call.peer = ROUTES_PEER_GOSSIPD;
		out->call.msg = proto_msg_make(PROTO_MEMBERS);
		out->call.msg.u.members.wan =
		    d->route == ROUTE_AGENT_MEMBERS && query_has(&q, "wan");
		out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		return 0;
	case ROUTE_AGENT_GOSSIP:
		return agent_gossip_dispatch(path, &q, a, out);
	case ROUTE_EVENT:
		return event_dispatch(req, path, &q, a, out);
	case ROUTE_KEYRING:
		return keyring_dispatch(req, a, out);
	case ROUTE_CATALOG:
		return catalog_api_dispatch(env, req, path, &q, a, out);
	case ROUTE_SESSION:
		return session_api_dispatch(env, req, path, &q, a, out);
	case ROUTE_COORDINATE:
		return coordinate_api_dispatch(env, req, path, &q, a, out);
	case ROUTE_SNAPSHOT:
		return snapshot_api_dispatch(env, req, &q, a, out);
	case ROUTE_TXN:
		return txn_api_dispatch(env, req, &q, a, out);
	case ROUTE_AUTOPILOT:
		return autopilot_api_dispatch(env, req, path, &q, a, out);
	case ROUTE_AGENT_LOCAL:
		return agent_api_dispatch(env, req, path, &q, a, out);
	case ROUTE_RAFT_CONFIG:
	case ROUTE_RAFT_PEER:
		return raft_dispatch(env, d->route == ROUTE_RAFT_CONFIG, &q, a, out);
	case ROUTE_NONE:
		break;
	}
	return routes_text(a, 404, "404 page not found", &out->resp);
}

/* GET /v1/agent/metrics in Consul's shape (go-metrics' summary): gossipd's
 * counters as cumulative counts since it started (Consul's are per 10 s
 * interval), its gauges as values. */
static json_t *render_metrics(const struct proto_gossip_stats_reply *m)
{
	json_t *gauges = json_array(), *counters = json_array();

	for (size_t i = 0; gauges && i < m->gauges.n; i++)
		if (json_array_append_new(gauges,
					  json_pack("{s:s,s:f,s:{}}", "Name", m->gauges.keys[i],
						    "Value", strtod(m->gauges.vals[i], NULL),
						    "Labels")) < 0) {
			json_decref(gauges);
			gauges = NULL;
		}
	for (size_t i = 0; counters && i < m->counters.n; i++) {
		json_int_t n = (json_int_t)strtoll(m->counters.vals[i], NULL, 10);

		if (json_array_append_new(
			counters, json_pack("{s:s,s:I,s:f,s:I,s:f,s:f,s:f,s:f,s:{}}", "Name",
					    m->counters.keys[i], "Count", n, "Rate", 0.0, "Sum", n,
					    "Min", 1.0, "Max", 1.0, "Mean", 1.0, "Stddev", 0.0,
					    "Labels")) < 0) {
			json_decref(counters);
			counters = NULL;
		}
	}
	if (!gauges || !counters) {
		json_decref(gauges);
		json_decref(counters);
		return NULL;
	}
	return json_pack("{s:s,s:o,s:[],s:o,s:[]}", "Timestamp",
			 m->timestamp ? m->timestamp : "", "Gauges", gauges, "Points", "Counters",
			 counters, "Samples");
}

/* ---- user event filters -------------------------------------------------- */

static bool ev_match(const regex_t *re, const char *s)
{
	return regexec(re, s ? s : "", 0, NULL, 0) == 0;
}

/* Consul's shouldProcessUserEvent, for the filters gossipd cannot apply
 * (it knows no services): with a service filter, some local service's ID
 * or name must match it and, with a tag filter too, one of that service's
 * tags must match that. An invalid expression matches nothing. The node
 * filter was applied by gossipd when the event arrived. */
static bool event_for_us(const struct routes_env *env, const struct proto_user_event *ev)
{
	regex_t sre, tre;
	bool found = false, has_tag = ev->tag_filter && *ev->tag_filter;

	if (!ev->service_filter || !*ev->service_filter)
		return true;
	if (regcomp(&sre, ev->service_filter, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	if (has_tag && regcomp(&tre, ev->tag_filter, REG_EXTENDED | REG_NOSUB) != 0) {
		regfree(&sre);
		return false;
	}
	for (size_t i = 0; env->agent && !found && i < env->agent->n_services; i++) {
		const struct proto_service *s = &env->agent->services[i]->svc;

		if (!ev_match(&sre, s->id) && !ev_match(&sre, s->service))
			continue;
		if (!has_tag) {
			found = true;
			break;
		}
		for (size_t t = 0; !found && t < s->tags.n; t++)
			found = ev_match(&tre, s->tags.v[t]);
	}
	regfree(&sre);
	if (has_tag)
		regfree(&tre);
	return found;
}

/* ---- replies ---------------------------------------------------------- */

static const char *peer_name(enum routes_peer p)
{
	return p == ROUTES_PEER_GOSSIPD ? "cairn-gossipd" : "cairn-raftd";
}

static enum proto_type expected_reply(enum routes_op op)
{
	switch (op) {
	case ROUTES_OP_KV_GET:
	case ROUTES_OP_KV_KEYS:
		return PROTO_KV_GET_REPLY;
	case ROUTES_OP_KV_PUT:
	case ROUTES_OP_KV_DELETE:
		return PROTO_WRITE_REPLY;
	case ROUTES_OP_STATUS_LEADER:
		return PROTO_STATUS_LEADER_REPLY;
	case ROUTES_OP_STATUS_PEERS:
		return PROTO_STATUS_PEERS_REPLY;
	case ROUTES_OP_AGENT_SELF:
	case ROUTES_OP_AGENT_MEMBERS:
		return PROTO_MEMBERS_REPLY;
	case ROUTES_OP_AGENT_METRICS:
		return PROTO_GOSSIP_STATS_REPLY;
	case ROUTES_OP_AGENT_GOSSIP:
		return PROTO_GOSSIP_DONE; /* or GOSSIP_JOIN_REPLY: see routes_finish */
	case ROUTES_OP_EVENT_FIRE:
		return PROTO_EVENT_FIRE_REPLY;
	case ROUTES_OP_EVENT_LIST:
		return PROTO_EVENT_LIST_REPLY;
	case ROUTES_OP_KEYRING:
		return PROTO_KEYRING_REPLY;
	case ROUTES_OP_CATALOG_WRITE:
		return PROTO_WRITE_REPLY;
	case ROUTES_OP_CATALOG_QUERY:
		return PROTO_CATALOG_QUERY_REPLY;
	case ROUTES_OP_RAFT_CONFIG:
		return PROTO_OPERATOR_RAFT_CONFIG_REPLY;
	case ROUTES_OP_RAFT_REMOVE:
	case ROUTES_OP_SESSION_WRITE:
		return PROTO_WRITE_REPLY;
	case ROUTES_OP_SESSION_QUERY:
		return PROTO_SESSION_REPLY;
	case ROUTES_OP_COORDINATE: /* three kinds: coordinate_api_finish checks */
		break;
	case ROUTES_OP_SNAPSHOT_SAVE:
		return PROTO_SNAPSHOT_DATA;
	case ROUTES_OP_SNAPSHOT_RESTORE:
		return PROTO_WRITE_REPLY;
	case ROUTES_OP_TXN:
		return PROTO_TXN_REPLY;
	case ROUTES_OP_AUTOPILOT: /* three kinds: autopilot_api_finish checks */
		break;
	case ROUTES_OP_NONE:
		break;
	}
	return PROTO_NONE;
}

/* An ERROR reply from a daemon, as Consul maps RPC errors to HTTP. */
static int error_reply(const struct routes_call *call, const struct proto_error *e, struct arena *a,
		       struct routes_resp *out)
{
	const char *msg = e->message && *e->message ? e->message : err_str((int)e->code);

	switch (e->code) {
	case CAIRN_E_NOLEADER:
		return routes_text(a, 500, "No cluster leader", out);
	case CAIRN_E_NOSERVERS: /* a client agent that knows no server */
		return routes_text(a, 500, "No known Consul servers", out);
	case CAIRN_E_BADREQ:
	case -EINVAL:
		return routes_text(a, 400, msg, out);
	case CAIRN_E_NOTFOUND:
		return routes_text(a, 404, msg, out);
	case CAIRN_E_TOOLARGE:
		return routes_text(a, 413, msg, out);
	default:
		msg = arena_printf(a, "rpc error: %s: %s", peer_name(call->peer), msg);
		return msg ? routes_text(a, 500, msg, out) : -ENOMEM;
	}
}

static int status_headers(const struct routes_env *env, struct arena *a, struct routes_resp *out,
			  bool known_leader)
{
	/* Consul sends no index on these; we send the newest we saw so that
	 * every read carries the three headers, as the issue asks. */
	return add_meta(a, out, env->last_index, known_leader, 0);
}

static int kv_get_reply(const struct routes_env *env, const struct routes_call *call,
			const struct proto_kv_get_reply *r, struct arena *a,
			struct routes_resp *out)
{
	int rc;

	if (call->op == ROUTES_OP_KV_KEYS) {
		if (r->keys.n == 0 && call->has_prefix) {
			memset(out, 0, sizeof(*out));
			out->status = 404;
		} else {
			rc = routes_json(a, 200, render_strs(&r->keys), call->pretty, out);
			if (rc < 0)
				return rc;
		}
	} else if (r->entries.n == 0) {
		memset(out, 0, sizeof(*out));
		out->status = 404;
	} else if (call->raw) {
		const struct proto_kv_entry *e = &r->entries.v[0];

		memset(out, 0, sizeof(*out));
		out->status = 200;
		/* what Consul sends so a browser never runs a stored value */
		out->content_type = "text/plain";
		if (e->value.len) {
			/* the reply is borrowed; the response outlives it */
			char *copy = arena_alloc(a, e->value.len);

			if (!copy)
				return -ENOMEM;
			memcpy(copy, e->value.ptr, e->value.len);
			out->body = copy;
			out->body_len = e->value.len;
		}
		rc = routes_header_add(out, "X-Content-Type-Options", "nosniff");
		if (rc == 0)
			rc = routes_header_add(out, "Content-Security-Policy", "sandbox");
		if (rc < 0)
			return rc;
	} else {
		char *text;
		size_t len;

		rc = render_kv_dump(a, r->entries.v, r->entries.n, call->pretty, &text, &len);
		if (rc < 0)
			return rc;
		memset(out, 0, sizeof(*out));
		out->status = 200;
		out->content_type = CT_JSON;
		out->body = text;
		out->body_len = len;
	}
	rc = add_meta(a, out, r->index, r->known_leader, r->last_contact_ms);
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Effective-Consistency",
			     consistency_names[call->consistency % 3]);
	(void)env;
	return rc;
}

static const struct proto_member *find_member(const struct proto_members_reply *r, const char *name)
{
	size_t i;

	for (i = 0; i < r->members.n; i++)
		if (r->members.v[i].name && strcasecmp(r->members.v[i].name, name) == 0)
			return &r->members.v[i];
	return NULL;
}

int routes_finish(const struct routes_env *env, const struct routes_call *call, int status,
		  const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if (call->op == ROUTES_OP_AGENT_SELF) {
		/* agent/self must answer even when gossipd does not */
		const struct proto_member *m = NULL;
		struct proto_member local;

		if (status == 0 && reply && reply->type == PROTO_MEMBERS_REPLY)
			m = find_member(&reply->u.members_reply, env->cfg->node_name);
		if (!m) {
			rc = routes_local_member(env->cfg, a, &local);
			if (rc < 0)
				return rc;
			m = &local;
		}
		rc = routes_json(a, 200, render_agent_self(env->cfg, m), call->pretty, out);
		return rc < 0 ? rc : status_headers(env, a, out, env->known_leader);
	}
	if (status < 0 || !reply) {
		const char *msg;

		if (status == -ETIMEDOUT)
			msg = arena_printf(a, "rpc error: %s unavailable: no answer in time",
					   peer_name(call->peer));
		else if (status == CAIRN_E_UNAVAILABLE || status == 0)
			msg = arena_printf(a, "rpc error: %s unavailable", peer_name(call->peer));
		else
			msg = arena_printf(a, "rpc error: %s unavailable: %s",
					   peer_name(call->peer), err_str(status));
		return msg ? routes_text(a, 500, msg, out) : -ENOMEM;
	}
	if (reply->type == PROTO_ERROR && reply->u.error.code != CAIRN_E_NOLEADER &&
	    (call->op == ROUTES_OP_RAFT_CONFIG || call->op == ROUTES_OP_RAFT_REMOVE ||
	     call->op == ROUTES_OP_AUTOPILOT)) {
		/* Consul answers a failed operator RPC with its bare message */
		const struct proto_error *e = &reply->u.error;

		return routes_text(a, 500,
				   e->message && *e->message ? e->message : err_str((int)e->code),
				   out);
	}
	if (reply->type == PROTO_ERROR)
		return error_reply(call, &reply->u.error, a, out);
	if (call->op == ROUTES_OP_AGENT_GOSSIP &&
	    (reply->type == PROTO_GOSSIP_DONE || reply->type == PROTO_GOSSIP_JOIN_REPLY)) {
		memset(out, 0, sizeof(*out));
		out->status = 200; /* Consul answers these with an empty body */
		return 0;
	}
	if (call->op == ROUTES_OP_COORDINATE)
		return coordinate_api_finish(env, call, reply, a, out);
	if (call->op == ROUTES_OP_AUTOPILOT)
		return autopilot_api_finish(env, call, reply, a, out);
	if (reply->type != expected_reply(call->op)) {
		const char *msg = arena_printf(a, "rpc error: %s sent an unexpected %s reply",
					       peer_name(call->peer), proto_type_name(reply->type));

		return msg ? routes_text(a, 500, msg, out) : -ENOMEM;
	}

	switch (call->op) {
	case ROUTES_OP_KV_GET:
	case ROUTES_OP_KV_KEYS:
		return kv_get_reply(env, call, &reply->u.kv_get_reply, a, out);
	case ROUTES_OP_KV_PUT:
	case ROUTES_OP_KV_DELETE: {
		/* Consul answers the outcome only for cas; a plain write that
		 * was applied is simply true */
		bool ok = call->want_result ? reply->u.write_reply.ok : true;

		return routes_json(a, 200, json_boolean(ok), call->pretty, out);
	}
	case ROUTES_OP_STATUS_LEADER: {
		const char *leader = reply->u.status_leader_reply.leader;

		rc = routes_json(a, 200, render_string(leader), call->pretty, out);
		return rc < 0 ? rc : status_headers(env, a, out, leader && *leader);
	}
	case ROUTES_OP_STATUS_PEERS:
		rc = routes_json(a, 200, render_strs(&reply->u.status_peers_reply.peers),
			       call->pretty, out);
		return rc < 0 ? rc : status_headers(env, a, out, env->known_leader);
	case ROUTES_OP_AGENT_METRICS:
		return routes_json(a, 200, render_metrics(&reply->u.gossip_stats_reply),
				   call->pretty, out);
	case ROUTES_OP_AGENT_MEMBERS: {
		const struct proto_members_reply *m = &reply->u.members_reply;

		rc = routes_json(a, 200, render_members(m->members.v, m->members.n), call->pretty,
			       out);
		return rc < 0 ? rc : status_headers(env, a, out, env->known_leader);
	}
	case ROUTES_OP_CATALOG_WRITE:
	case ROUTES_OP_CATALOG_QUERY:
		return catalog_api_finish(env, call, reply, a, out);
	case ROUTES_OP_SESSION_WRITE:
	case ROUTES_OP_SESSION_QUERY:
		return session_api_finish(env, call, reply, a, out);
	case ROUTES_OP_COORDINATE: /* answered above */
		break;
	case ROUTES_OP_SNAPSHOT_SAVE:
	case ROUTES_OP_SNAPSHOT_RESTORE:
		return snapshot_api_finish(env, call, reply, a, out);
	case ROUTES_OP_TXN:
		return txn_api_finish(call, &reply->u.txn_reply, a, out);
	case ROUTES_OP_AUTOPILOT: /* answered above */
		break;
	case ROUTES_OP_AGENT_SELF:
	case ROUTES_OP_EVENT_FIRE:
		if (reply->u.event_fire_reply.events.n != 1)
			break;
		return routes_json(a, 200, render_user_event(&reply->u.event_fire_reply.events.v[0]),
				 call->pretty, out);
	case ROUTES_OP_EVENT_LIST: {
		const struct proto_event_list_reply *el = &reply->u.event_list_reply;
		struct proto_user_event *kept = arena_alloc(a, (el->events.n + 1) * sizeof(*kept));
		size_t n_kept = 0;

		if (!kept)
			return -ENOMEM;
		for (size_t i = 0; i < el->events.n; i++)
			if (event_for_us(env, &el->events.v[i]))
				kept[n_kept++] = el->events.v[i];
		rc = routes_json(a, 200, render_user_events(kept, n_kept), call->pretty, out);
		return rc < 0 ? rc : add_meta(a, out, reply->u.event_list_reply.index, true, 0);
	}
	case ROUTES_OP_KEYRING:
		return keyring_reply(env, call, &reply->u.keyring_reply, a, out);
	case ROUTES_OP_RAFT_CONFIG: {
		const struct proto_operator_raft_config_reply *r =
		    &reply->u.operator_raft_config_reply;
		bool leader = false;

		for (size_t i = 0; i < r->servers.n; i++)
			leader = leader || r->servers.v[i].leader;
		rc = routes_json(a, 200, render_raft_configuration(r), call->pretty, out);
		return rc < 0 ? rc : add_meta(a, out, r->index, leader, 0);
	}
	case ROUTES_OP_RAFT_REMOVE:
		memset(out, 0, sizeof(*out));
		out->status = 200; /* Consul answers with an empty body */
		return 0;
	case ROUTES_OP_AGENT_GOSSIP: /* answered above */
	case ROUTES_OP_NONE:
		break;
	}
	return routes_text(a, 500, "internal error: no such operation", out);
}

/* ---- the local member ------------------------------------------------- */

int routes_local_member(const struct config *cfg, struct arena *a, struct proto_member *out)
{
	/* Consul's serf LAN tags, in key order */
	const char *keys[16], *vals[16];
	size_t n = 0;
	const char **kv, **vv;

#define TAG(k, v)                                                                                  \
	do {                                                                                       \
		keys[n] = (k);                                                                     \
		vals[n] = (v);                                                                     \
		if (!vals[n])                                                                      \
			return -ENOMEM;                                                            \
		n++;                                                                               \
	} while (0)

	if (cfg->server)
		TAG("acls", "0");
	TAG("build", CAIRN_VERSION ":");
	TAG("dc", cfg->datacenter ? cfg->datacenter : "dc1");
	if (cfg->server && cfg->bootstrap_expect > 0)
		TAG("expect", arena_printf(a, "%d", cfg->bootstrap_expect));
	if (cfg->server) {
		TAG("ft_fs", "1");
		TAG("ft_si", "1");
	}
	TAG("id", cfg->node_id ? cfg->node_id : "");
	if (cfg->server) {
		TAG("port", arena_printf(a, "%d", cfg->ports.server));
		TAG("raft_vsn", "3");
	}
	TAG("role", cfg->server ? "consul" : "node");
	TAG("segment", "");
	TAG("vsn", "2");
	TAG("vsn_max", "3");
	TAG("vsn_min", "2");
	if (cfg->server)
		TAG("wan_join_port", arena_printf(a, "%d", cfg->ports.serf_wan));
#undef TAG

	kv = arena_alloc(a, n * sizeof(*kv));
	vv = arena_alloc(a, n * sizeof(*vv));
	if (!kv || !vv)
		return -ENOMEM;
	memcpy(kv, keys, n * sizeof(*kv));
	memcpy(vv, vals, n * sizeof(*vv));
	memset(out, 0, sizeof(*out));
	out->name = cfg->node_name ? cfg->node_name : "";
	out->addr = cfg->advertise_addr ? cfg->advertise_addr : "127.0.0.1";
	out->port = cfg->ports.serf_lan > 0 ? (uint64_t)cfg->ports.serf_lan : 0;
	out->tags.keys = kv;
	out->tags.vals = vv;
	out->tags.n = n;
	out->status = 1;
	return 0;
}
