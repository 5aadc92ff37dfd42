/* The /v1/coordinate endpoints and the coordinate sync (see
 * coordinate_api.h). */
#include "coordinate_api.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "arena.h"
#include "json_body.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "query.h"
#include "rpc.h"
#include "vivaldi.h"

static int text(struct arena *a, unsigned status, const char *msg, struct routes_action *out)
{
	out->respond = true;
	return routes_text(a, status, msg ? msg : "out of memory", &out->resp);
}

json_t *coordinate_api_coord_json(const uint8_t *buf, size_t len)
{
	struct vivaldi_coord c;
	json_t *vec, *o;

	if (vivaldi_coord_decode(buf, len, &c) < 0)
		return NULL;
	vec = json_array();
	for (int i = 0; vec && i < VIVALDI_DIM; i++)
		if (json_array_append_new(vec, json_real(c.vec[i])) < 0) {
			json_decref(vec);
			return NULL;
		}
	if (!vec)
		return NULL;
	o = json_pack("{s:f,s:f,s:f,s:o}", "Adjustment", c.adjustment, "Error", c.error, "Height",
		      c.height, "Vec", vec);
	return o;
}

static bool number(const json_t *o, const char *key, double *out)
{
	json_t *v = json_body_get(o, key);

	if (!v) {
		*out = 0;
		return true; /* Go's zero value */
	}
	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

const char *coordinate_api_coord_parse(const json_t *o, uint8_t *out)
{
	struct vivaldi_coord c = {0};
	json_t *vec;
	size_t i;
	json_t *x;

	if (!json_is_object(o))
		return "Missing Coord";
	vec = json_body_get(o, "Vec");
	if (!json_is_array(vec) || json_array_size(vec) != VIVALDI_DIM)
		return "Coordinate dimensionality must be 8";
	json_array_foreach(vec, i, x)
	{
		if (!json_is_number(x))
			return "Invalid coordinate";
		c.vec[i] = json_number_value(x);
	}
	if (!number(o, "Error", &c.error) || !number(o, "Adjustment", &c.adjustment) ||
	    !number(o, "Height", &c.height) || !vivaldi_coord_valid(&c))
		return "Invalid coordinate";
	vivaldi_coord_encode(&c, out);
	return NULL;
}

/* {Node, Segment, Coord}; with_segment false for the datacenter maps'
 * entries' shape is the same in Consul (structs.Coordinate). */
static json_t *entry_json(const struct proto_coord *c)
{
	json_t *coord = coordinate_api_coord_json(c->coord.ptr, c->coord.len);

	if (!coord)
		return NULL;
	return json_pack("{s:s,s:s,s:o}", "Node", c->node ? c->node : "", "Segment",
			 c->segment ? c->segment : "", "Coord", coord);
}

static json_t *entries_json(const struct proto_coord *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++) {
		json_t *e = entry_json(&v[i]);

		if (!e)
			continue; /* a damaged coordinate is left out */
		if (json_array_append_new(arr, e) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* PUT /v1/coordinate/update: {Node, Segment, Coord}. */
static int parse_update(const struct routes_env *env, const struct routes_req *req,
			const struct query *q, struct arena *a, struct routes_action *out)
{
	struct routes_call *c = &out->call;
	struct proto_coord *rec;
	json_t *body, *node, *seg;
	uint8_t *wire;
	const char *bad = NULL;

	if (!req->body || req->body_len == 0)
		return text(a, 400, "Request decode failed: EOF", out);
	body = json_loadb((const char *)req->body, req->body_len, 0, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		return text(a, 400, "Request decode failed: invalid JSON", out);
	}
	rec = arena_alloc(a, sizeof(*rec));
	wire = arena_alloc(a, VIVALDI_WIRE_LEN);
	if (!rec || !wire) {
		json_decref(body);
		return -ENOMEM;
	}
	memset(rec, 0, sizeof(*rec));
	node = json_body_get(body, "Node");
	seg = json_body_get(body, "Segment");
	if (!json_is_string(node) || !*json_string_value(node))
		bad = "Missing node name";
	else if (seg && !json_is_null(seg) && !json_is_string(seg))
		bad = "Invalid segment";
	else
		bad = coordinate_api_coord_parse(json_body_get(body, "Coord"), wire);
	if (!bad) {
		rec->node = arena_strdup(a, json_string_value(node));
		rec->segment = arena_strdup(a, json_is_string(seg) ? json_string_value(seg) : "");
		if (!rec->node || !rec->segment)
			bad = "out of memory";
	}
	json_decref(body);
	if (bad && !strcmp(bad, "out of memory"))
		return -ENOMEM;
	if (bad)
		return text(a, 400, bad, out);
	rec->coord.ptr = wire;
	rec->coord.len = VIVALDI_WIRE_LEN;
	c->msg = proto_msg_make(PROTO_COORD_UPDATE);
	c->msg.u.coord_update.dc = query_get(q, "dc");
	c->msg.u.coord_update.coords.v = rec;
	c->msg.u.coord_update.coords.n = 1;
	c->op = ROUTES_OP_COORDINATE;
	c->peer = ROUTES_PEER_RAFTD;
	c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	out->respond = false;
	(void)env;
	return 0;
}

int coordinate_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			    const char *path, const struct query *q, struct arena *a,
			    struct routes_action *out)
{
	const char *rel = path + strlen("/v1/coordinate/");
	const char *dc = query_get(q, "dc");
	bool other = dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0;
	struct routes_call *c = &out->call;
	bool nodes = !strcmp(rel, "nodes"), one = !strncmp(rel, "node/", 5);

	out->respond = true;
	if (!strcmp(rel, "update")) {
		if (strcmp(req->method, "PUT") != 0)
			return text(a, 405, arena_printf(a, "method %s not allowed", req->method),
				    out);
		if (other)
			return text(a, 500, "No path to datacenter", out);
		return parse_update(env, req, q, a, out);
	}
	if (strcmp(req->method, "GET") != 0 && (nodes || one || !strcmp(rel, "datacenters")))
		return text(a, 405, arena_printf(a, "method %s not allowed", req->method), out);
	if (!strcmp(rel, "datacenters")) {
		c->msg = proto_msg_make(PROTO_COORD_GET);
		c->msg.u.coord_get.wan = true;
		c->op = ROUTES_OP_COORDINATE;
		c->peer = ROUTES_PEER_GOSSIPD;
		c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		out->respond = false;
		return 0;
	}
	if (nodes || one) {
		struct routes_read_opts ro;
		const char *bad;

		if (one && !rel[5])
			return text(a, 400, "Missing node name", out);
		bad = routes_parse_read_opts(a, q, &ro);
		if (bad)
			return text(a, 400, bad, out);
		if (other)
			return text(a, 500, "No path to datacenter", out);
		c->msg = proto_msg_make(PROTO_COORD_QUERY);
		c->msg.u.coord_query.node = one ? rel + 5 : NULL;
		c->msg.u.coord_query.mode = ro.mode;
		c->msg.u.coord_query.max_stale_ms = ro.max_stale_ms;
		c->msg.u.coord_query.min_index = ro.min_index;
		c->msg.u.coord_query.wait_ms = ro.wait_ms;
		c->timeout_ms = ro.timeout_ms;
		c->consistency = ro.mode;
		c->op = ROUTES_OP_COORDINATE;
		c->peer = ROUTES_PEER_RAFTD;
		out->respond = false;
		return 0;
	}
	return text(a, 404, "404 page not found", out);
}

static int meta_headers(struct arena *a, struct routes_resp *out, uint64_t index, bool known,
			uint64_t contact, unsigned consistency)
{
	static const char *const names[] = {"leader", "consistent", "stale"};
	int rc = routes_header_add(out, "X-Consul-Index",
				   arena_printf(a, "%" PRIu64, index ? index : 1));

	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-KnownLeader", known ? "true" : "false");
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-LastContact",
				       arena_printf(a, "%" PRIu64, contact));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Effective-Consistency",
				       names[consistency % 3]);
	return rc;
}

/* GET /v1/coordinate/datacenters: one map per datacenter, ours first
 * (the entries gossipd sent start with this server). */
static json_t *datacenters_json(const struct routes_env *env, const struct proto_coord *v,
				size_t n)
{
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const char *dc = v[i].datacenter ? v[i].datacenter : env->cfg->datacenter;
		json_t *map = NULL, *coords, *e;
		size_t j;

		json_array_foreach(arr, j, e)
		{
			if (!strcasecmp(json_string_value(json_object_get(e, "Datacenter")), dc))
				map = e;
		}
		if (!map) {
			map = json_pack("{s:s,s:s,s:[]}", "Datacenter", dc, "AreaID", "wan",
					"Coordinates");
			if (!map || json_array_append_new(arr, map) < 0)
				goto oom;
		}
		coords = json_object_get(map, "Coordinates");
		e = entry_json(&v[i]);
		if (e && json_array_append_new(coords, e) < 0)
			goto oom;
	}
	return arr;
oom:
	json_decref(arr);
	return NULL;
}

int coordinate_api_finish(const struct routes_env *env, const struct routes_call *call,
			  const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	int rc;

	switch (call->msg.type) {
	case PROTO_COORD_UPDATE:
		if (reply->type != PROTO_WRITE_REPLY)
			break;
		memset(out, 0, sizeof(*out));
		out->status = 200; /* Consul answers an empty body */
		return 0;
	case PROTO_COORD_QUERY: {
		const struct proto_coord_query_reply *r = &reply->u.coord_query_reply;

		if (reply->type != PROTO_COORD_QUERY_REPLY)
			break;
		if (call->msg.u.coord_query.node && r->coords.n == 0) {
			/* Consul: 404 with an empty body for an unknown node */
			memset(out, 0, sizeof(*out));
			out->status = 404;
			rc = 0;
		} else {
			rc = routes_json(a, 200, entries_json(r->coords.v, r->coords.n),
					 call->pretty, out);
		}
		return rc < 0 ? rc
			      : meta_headers(a, out, r->index, r->known_leader, r->last_contact_ms,
					     call->consistency);
	}
	case PROTO_COORD_GET:
		if (reply->type != PROTO_COORD_GET_REPLY)
			break;
		return routes_json(a, 200,
				   datacenters_json(env, reply->u.coord_get_reply.coords.v,
						    reply->u.coord_get_reply.coords.n),
				   call->pretty, out);
	default:
		break;
	}
	return routes_text(a, 500,
			   arena_printf(a, "rpc error: unexpected %s reply",
					proto_type_name(reply->type)),
			   out);
}

/* ---- the periodic sync ----------------------------------------------------- */

struct coordinate_sync {
	struct loop *l;
	const struct config *cfg;
	struct rpc_client *raftd, *gossipd;
	uint64_t timer_id;
	uint64_t call_id;	  /* the call in flight, 0 when none */
	struct rpc_client *busy;  /* which client call_id belongs to */
	uint64_t interval_ms;
	uint64_t rng;
	uint64_t sent, failed;
};

static uint64_t jitter(struct coordinate_sync *s, uint64_t ms)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return ms / 4 ? s->rng % (ms / 4) : 0;
}

static void on_update_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct coordinate_sync *s = ctx;

	s->call_id = 0;
	s->busy = NULL;
	if (status < 0 || reply->type == PROTO_ERROR) {
		s->failed++;
		log_debug("coordinate update: %s",
			  status < 0 ? err_str(status)
			  : reply->u.error.message ? reply->u.error.message
						   : "refused");
		return;
	}
	s->sent++;
}

static void on_coord_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct coordinate_sync *s = ctx;
	struct proto_msg m;
	struct proto_coord rec;

	s->call_id = 0;
	s->busy = NULL;
	if (status < 0 || reply->type != PROTO_COORD_GET_REPLY ||
	    reply->u.coord_get_reply.coords.n == 0) {
		s->failed++;
		return;
	}
	rec = reply->u.coord_get_reply.coords.v[0];
	rec.node = s->cfg->node_name; /* as the catalog knows us */
	rec.segment = "";
	rec.datacenter = NULL;
	m = proto_msg_make(PROTO_COORD_UPDATE);
	m.u.coord_update.coords.v = &rec;
	m.u.coord_update.coords.n = 1;
	if (rpc_call(s->raftd, &m, ROUTES_RPC_TIMEOUT_MS, on_update_reply, s, &s->call_id) == 0)
		s->busy = s->raftd;
	else
		s->failed++;
}

static int64_t on_sync_timer(struct loop *l, void *ctx)
{
	struct coordinate_sync *s = ctx;
	struct proto_msg m = proto_msg_make(PROTO_COORD_GET);

	(void)l;
	if (!s->call_id) {
		m.u.coord_get.wan = false;
		if (rpc_call(s->gossipd, &m, ROUTES_RPC_TIMEOUT_MS, on_coord_reply, s,
			     &s->call_id) == 0)
			s->busy = s->gossipd;
		else
			s->failed++;
	}
	return (int64_t)(s->interval_ms + jitter(s, s->interval_ms));
}

struct coordinate_sync *coordinate_sync_new(struct loop *l, const struct config *cfg,
					    struct rpc_client *raftd, struct rpc_client *gossipd)
{
	struct coordinate_sync *s = calloc(1, sizeof(*s));
	const char *v = getenv("CAIRN_TEST_COORD_SYNC_MS"); /* test hook */
	uint64_t first;

	if (!s)
		return NULL;
	s->l = l;
	s->cfg = cfg;
	s->raftd = raftd;
	s->gossipd = gossipd;
	s->interval_ms = v && atoi(v) > 0 ? (uint64_t)atoi(v) : COORDINATE_SYNC_MS;
	s->rng = clock_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	if (!s->rng)
		s->rng = 1;
	/* the first update soon (the node registers in the catalog first) */
	first = s->interval_ms < 3000 ? s->interval_ms : 3000;
	s->timer_id = loop_timer_add(l, first + jitter(s, first), on_sync_timer, s);
	if (!s->timer_id) {
		free(s);
		return NULL;
	}
	return s;
}

void coordinate_sync_free(struct coordinate_sync *s)
{
	if (!s)
		return;
	if (s->timer_id)
		loop_timer_del(s->l, s->timer_id);
	if (s->call_id && s->busy)
		rpc_cancel(s->busy, s->call_id);
	free(s);
}
