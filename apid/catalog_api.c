/* The /v1/catalog and /v1/health endpoints (see catalog_api.h). */
#include "catalog_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "catalog_json.h"
#include "config.h"
#include "err.h"
#include "filter.h"
#include "json_body.h"
#include "query.h"
#include "render.h"

/* The views, as raftd/catalog.h numbers them (the wire protocol). */
enum {
	VIEW_NODES = 1,
	VIEW_SERVICES = 2,
	VIEW_SERVICE = 3,
	VIEW_NODE = 4,
	VIEW_NODE_SERVICES = 5,
	VIEW_HEALTH_NODE = 6,
	VIEW_HEALTH_CHECKS = 7,
	VIEW_HEALTH_SERVICE = 8,
	VIEW_HEALTH_STATE = 9,
};

#define CT_JSON "application/json"

/* ---- small helpers ---------------------------------------------------- */

static int text(struct arena *a, unsigned status, const char *msg, struct routes_action *out)
{
	out->respond = true;
	return routes_text(a, status, msg ? msg : "out of memory", &out->resp);
}

/* Sets o[key] = v (stolen); remembers a failure in *bad. */
static void jset(json_t *o, const char *key, json_t *v, bool *bad)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		*bad = true;
}

static json_t *jstr(const char *s) { return json_string(s ? s : ""); }

static json_t *jmap(const struct proto_map *m)
{
	json_t *o = json_object();

	for (size_t i = 0; o && i < m->n; i++)
		if (json_object_set_new(o, m->keys[i], jstr(m->vals[i])) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

static json_t *jstrs(const struct proto_strs *s)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < s->n; i++)
		if (json_array_append_new(arr, jstr(s->v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

/* A stored JSON object text, or {} / null. */
static json_t *jraw(const char *text_or_null, bool null_if_none)
{
	json_t *j = NULL;

	if (text_or_null && *text_or_null)
		j = json_loads(text_or_null, JSON_DECODE_ANY, NULL);
	if (!j)
		j = null_if_none ? json_null() : json_object();
	return j;
}

static json_t *jweights(const struct proto_service *s)
{
	return json_pack("{s:I,s:I}", "Passing",
			 (json_int_t)(s->weight_passing ? s->weight_passing : 1), "Warning",
			 (json_int_t)s->weight_warning);
}

json_t *catalog_api_node_json(const struct proto_node *n)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	jset(o, "ID", jstr(n->id), &bad);
	jset(o, "Node", jstr(n->node), &bad);
	jset(o, "Address", jstr(n->address), &bad);
	jset(o, "Datacenter", jstr(n->datacenter), &bad);
	jset(o, "TaggedAddresses", jmap(&n->tagged_addresses), &bad);
	jset(o, "Meta", jmap(&n->meta), &bad);
	jset(o, "CreateIndex", json_integer((json_int_t)n->create_index), &bad);
	jset(o, "ModifyIndex", json_integer((json_int_t)n->modify_index), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *catalog_api_service_json(const struct proto_service *s)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	if (s->kind && *s->kind)
		jset(o, "Kind", jstr(s->kind), &bad);
	jset(o, "ID", jstr(s->id), &bad);
	jset(o, "Service", jstr(s->service), &bad);
	jset(o, "Tags", jstrs(&s->tags), &bad);
	jset(o, "Address", jstr(s->address), &bad);
	jset(o, "TaggedAddresses", jraw(s->tagged_addresses, false), &bad);
	jset(o, "Meta", jmap(&s->meta), &bad);
	jset(o, "Port", json_integer((json_int_t)s->port), &bad);
	jset(o, "Weights", jweights(s), &bad);
	jset(o, "EnableTagOverride", json_boolean(s->enable_tag_override), &bad);
	jset(o, "Proxy", json_pack("{s:{},s:{}}", "MeshGateway", "Expose"), &bad);
	jset(o, "Connect", json_object(), &bad);
	jset(o, "CreateIndex", json_integer((json_int_t)s->create_index), &bad);
	jset(o, "ModifyIndex", json_integer((json_int_t)s->modify_index), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *catalog_api_check_json(const struct proto_check *c)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	jset(o, "Node", jstr(c->node), &bad);
	jset(o, "CheckID", jstr(c->check_id), &bad);
	jset(o, "Name", jstr(c->name), &bad);
	jset(o, "Status", jstr(c->status), &bad);
	jset(o, "Notes", jstr(c->notes), &bad);
	jset(o, "Output", jstr(c->output), &bad);
	jset(o, "ServiceID", jstr(c->service_id), &bad);
	jset(o, "ServiceName", jstr(c->service_name), &bad);
	jset(o, "ServiceTags", jstrs(&c->service_tags), &bad);
	jset(o, "Type", jstr(c->type), &bad);
	jset(o, "Interval", jstr(""), &bad);
	jset(o, "Timeout", jstr(""), &bad);
	jset(o, "ExposedPort", json_integer(0), &bad);
	jset(o, "Definition", jraw(c->definition, false), &bad);
	jset(o, "CreateIndex", json_integer((json_int_t)c->create_index), &bad);
	jset(o, "ModifyIndex", json_integer((json_int_t)c->modify_index), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* /v1/catalog/service entries: node fields flattened with Service*. */
static json_t *catalog_service_entry(const struct proto_node *n, const struct proto_service *s)
{
	json_t *o = json_object();
	bool bad = !o;

	if (bad)
		return NULL;
	jset(o, "ID", jstr(n ? n->id : ""), &bad);
	jset(o, "Node", jstr(s->node), &bad);
	jset(o, "Address", jstr(n ? n->address : ""), &bad);
	jset(o, "Datacenter", jstr(n ? n->datacenter : ""), &bad);
	jset(o, "TaggedAddresses", n ? jmap(&n->tagged_addresses) : json_object(), &bad);
	jset(o, "NodeMeta", n ? jmap(&n->meta) : json_object(), &bad);
	jset(o, "ServiceKind", jstr(s->kind), &bad);
	jset(o, "ServiceID", jstr(s->id), &bad);
	jset(o, "ServiceName", jstr(s->service), &bad);
	jset(o, "ServiceTags", jstrs(&s->tags), &bad);
	jset(o, "ServiceAddress", jstr(s->address), &bad);
	jset(o, "ServiceTaggedAddresses", jraw(s->tagged_addresses, false), &bad);
	jset(o, "ServiceWeights", jweights(s), &bad);
	jset(o, "ServiceMeta", jmap(&s->meta), &bad);
	jset(o, "ServicePort", json_integer((json_int_t)s->port), &bad);
	jset(o, "ServiceSocketPath", jstr(""), &bad);
	jset(o, "ServiceEnableTagOverride", json_boolean(s->enable_tag_override), &bad);
	jset(o, "ServiceProxy", json_pack("{s:{},s:{}}", "MeshGateway", "Expose"), &bad);
	jset(o, "ServiceConnect", json_object(), &bad);
	jset(o, "CreateIndex", json_integer((json_int_t)s->create_index), &bad);
	jset(o, "ModifyIndex", json_integer((json_int_t)s->modify_index), &bad);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- request bodies --------------------------------------------------- */

/* Consul's catalog (and agent) texts: "Request decode failed: ...";
 * unsigned fields take integers only. */
static const struct json_body_dialect body_dialect = {
    .prefix = "Request decode failed",
    .map_not_string = "values must be strings",
    .whole_reals = false,
};

#define JGET json_body_get

const char *catalog_api_parse_service(const json_t *o, struct arena *a, struct proto_service *s)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	json_t *w;

	memset(s, 0, sizeof(*s));
	if (!json_is_object(o))
		return "Request decode failed: Service must be an object";
	s->id = json_body_str(&jb, o, "ID");
	s->service = json_body_str(&jb, o, "Service");
	if (!s->service)
		s->service = json_body_str(&jb, o, "Name");
	s->address = json_body_str(&jb, o, "Address");
	s->kind = json_body_str(&jb, o, "Kind");
	s->port = json_body_uint(&jb, o, "Port", 0);
	if (json_body_strs(&jb, o, "Tags", &s->tags) < 0 ||
	    json_body_map(&jb, o, "Meta", &s->meta) < 0)
		return "out of memory";
	s->tagged_addresses = json_body_raw(o, "TaggedAddresses", a);
	w = JGET(o, "EnableTagOverride");
	if (w && !json_is_null(w)) {
		if (!json_is_boolean(w))
			return "Request decode failed: EnableTagOverride must be a boolean";
		s->enable_tag_override = json_is_true(w);
	}
	s->weight_passing = 1;
	s->weight_warning = 1;
	w = JGET(o, "Weights");
	if (w && !json_is_null(w)) {
		if (!json_is_object(w))
			return "Request decode failed: Weights must be an object";
		s->weight_passing = json_body_uint(&jb, w, "Passing", 1);
		s->weight_warning = json_body_uint(&jb, w, "Warning", 1);
		if (!jb.bad && s->weight_passing == 0)
			return "Passing must be greater than 0";
	}
	if (jb.bad)
		return jb.bad;
	if (!s->service || !*s->service)
		return "Missing service name";
	if (!s->id || !*s->id)
		s->id = s->service;
	if (s->port > 65535)
		return "Invalid service port";
	return NULL;
}

/* A catalog Check object; node fills the Node when absent. */
static const char *parse_check(const json_t *o, struct arena *a, const char *node,
			       struct proto_check *c)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	const char *cnode;

	memset(c, 0, sizeof(*c));
	if (!json_is_object(o))
		return "Request decode failed: Check must be an object";
	cnode = json_body_str(&jb, o, "Node");
	c->check_id = json_body_str(&jb, o, "CheckID");
	c->name = json_body_str(&jb, o, "Name");
	c->status = json_body_str(&jb, o, "Status");
	c->notes = json_body_str(&jb, o, "Notes");
	c->output = json_body_str(&jb, o, "Output");
	c->service_id = json_body_str(&jb, o, "ServiceID");
	c->type = json_body_str(&jb, o, "Type");
	c->definition = json_body_raw(o, "Definition", a);
	if (jb.bad)
		return jb.bad;
	if (cnode && *cnode && strcasecmp(cnode, node) != 0)
		return "Check node must match the registered node";
	if (!c->check_id || !*c->check_id)
		c->check_id = c->name;
	if (!c->check_id || !*c->check_id)
		return "Missing check ID or name";
	if (!c->name || !*c->name)
		c->name = c->check_id;
	if (c->status && *c->status && strcmp(c->status, "passing") &&
	    strcmp(c->status, "warning") && strcmp(c->status, "critical"))
		return arena_printf(a, "Invalid check status: \"%s\"", c->status);
	return NULL;
}

/* /v1/catalog/register (Consul's CatalogRegister + structs.RegisterRequest). */
static const char *parse_register(const struct routes_env *env, const json_t *b, struct arena *a,
				  struct proto_catalog_write *w)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	const char *bad, *dc;
	struct proto_node *n = arena_zalloc(a, sizeof(*n));
	json_t *svc, *chk, *chks;
	size_t nchk = 0, cap;

	if (!n)
		return "out of memory";
	dc = json_body_str(&jb, b, "Datacenter");
	if (dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0)
		return "No path to datacenter";
	n->id = json_body_str(&jb, b, "ID");
	n->node = json_body_str(&jb, b, "Node");
	n->address = json_body_str(&jb, b, "Address");
	if (json_body_map(&jb, b, "TaggedAddresses", &n->tagged_addresses) < 0 ||
	    json_body_map(&jb, b, "NodeMeta", &n->meta) < 0)
		return "out of memory";
	if (jb.bad)
		return jb.bad;
	if (!n->node || !*n->node)
		return "Must provide node";
	w->skip_node_update = json_is_true(JGET(b, "SkipNodeUpdate"));
	if (!w->skip_node_update && (!n->address || !*n->address))
		return "Must provide address";
	w->nodes.v = n;
	w->nodes.n = 1;
	svc = JGET(b, "Service");
	if (svc && !json_is_null(svc)) {
		struct proto_service *s = arena_zalloc(a, sizeof(*s));

		if (!s)
			return "out of memory";
		bad = catalog_api_parse_service(svc, a, s);
		if (bad)
			return bad;
		w->services.v = s;
		w->services.n = 1;
	}
	chk = JGET(b, "Check");
	chks = JGET(b, "Checks");
	if (chks && !json_is_null(chks) && !json_is_array(chks))
		return "Request decode failed: Checks must be an array";
	cap =
	    (chk && !json_is_null(chk) ? 1 : 0) + (json_is_array(chks) ? json_array_size(chks) : 0);
	if (cap) {
		w->checks.v = arena_zalloc(a, cap * sizeof(*w->checks.v));
		if (!w->checks.v)
			return "out of memory";
	}
	if (chk && !json_is_null(chk)) {
		bad = parse_check(chk, a, n->node, &w->checks.v[nchk++]);
		if (bad)
			return bad;
	}
	for (size_t i = 0; json_is_array(chks) && i < json_array_size(chks); i++) {
		bad = parse_check(json_array_get(chks, i), a, n->node, &w->checks.v[nchk++]);
		if (bad)
			return bad;
	}
	w->checks.n = nchk;
	/* a check on the registered service without its ServiceID: Consul
	 * leaves it a node check, as do we */
	return NULL;
}

static const char *parse_deregister(const struct routes_env *env, const json_t *b, struct arena *a,
				    struct proto_catalog_write *w)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	const char *dc;
	struct proto_node *n = arena_zalloc(a, sizeof(*n));

	if (!n)
		return "out of memory";
	dc = json_body_str(&jb, b, "Datacenter");
	if (dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0)
		return "No path to datacenter";
	n->node = json_body_str(&jb, b, "Node");
	w->service_id = json_body_str(&jb, b, "ServiceID");
	w->check_id = json_body_str(&jb, b, "CheckID");
	if (jb.bad)
		return jb.bad;
	if (!n->node || !*n->node)
		return "Must provide node";
	if (w->service_id && !*w->service_id)
		w->service_id = NULL;
	if (w->check_id && !*w->check_id)
		w->check_id = NULL;
	w->deregister = true;
	w->nodes.v = n;
	w->nodes.n = 1;
	return NULL;
}

/* ---- reads ------------------------------------------------------------ */

/* ?node-meta=key:value (repeatable). */
static const char *node_meta(struct arena *a, const struct query *q, struct proto_map *m)
{
	size_t n = 0;

	memset(m, 0, sizeof(*m));
	for (size_t i = 0; i < q->n; i++)
		n += strcmp(q->v[i].key, "node-meta") == 0;
	if (!n)
		return NULL;
	m->keys = arena_alloc(a, n * sizeof(*m->keys));
	m->vals = arena_alloc(a, n * sizeof(*m->vals));
	if (!m->keys || !m->vals)
		return "out of memory";
	for (size_t i = 0; i < q->n; i++) {
		const char *v = q->v[i].value, *colon;

		if (strcmp(q->v[i].key, "node-meta") != 0)
			continue;
		colon = strchr(v, ':');
		m->keys[m->n] = colon ? arena_strndup(a, v, (size_t)(colon - v)) : v;
		m->vals[m->n] = colon ? colon + 1 : "";
		if (!m->keys[m->n])
			return "out of memory";
		m->n++;
	}
	return NULL;
}

static const char *tags(struct arena *a, const struct query *q, struct proto_strs *s)
{
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < q->n; i++)
		n += strcmp(q->v[i].key, "tag") == 0;
	if (!n)
		return NULL;
	s->v = arena_alloc(a, n * sizeof(*s->v));
	if (!s->v)
		return "out of memory";
	for (size_t i = 0; i < q->n; i++)
		if (strcmp(q->v[i].key, "tag") == 0)
			s->v[s->n++] = q->v[i].value;
	return NULL;
}

struct endpoint {
	const char *prefix; /* path after /v1/ ; trailing '/' takes a name */
	unsigned view;	    /* 0: special */
	bool needs_name;
};

static const struct endpoint endpoints[] = {
    {"catalog/nodes", VIEW_NODES, false},
    {"catalog/services", VIEW_SERVICES, false},
    {"catalog/service/", VIEW_SERVICE, true},
    {"catalog/node/", VIEW_NODE, true},
    {"catalog/node-services/", VIEW_NODE_SERVICES, true},
    {"health/node/", VIEW_HEALTH_NODE, true},
    {"health/checks/", VIEW_HEALTH_CHECKS, true},
    {"health/service/", VIEW_HEALTH_SERVICE, true},
    {"health/state/", VIEW_HEALTH_STATE, true},
};

/* The fields ?filter= may select, per view (filter_check_selectors):
 * Consul's structs.Node, ServiceNode, NodeService, HealthCheck and
 * CheckServiceNode. */
#define SCHEMA_NODE                                                                                \
	"ID Node Address Datacenter TaggedAddresses{} Meta{} CreateIndex ModifyIndex Partition "   \
	"PeerName Locality{}"
#define SCHEMA_SERVICE_NODE                                                                        \
	"ID Node Address Datacenter TaggedAddresses{} NodeMeta{} ServiceKind ServiceID "           \
	"ServiceName ServiceTags[] ServiceAddress ServiceTaggedAddresses{} "                       \
	"ServiceWeights(Passing Warning) ServiceMeta{} ServicePort ServiceSocketPath "             \
	"ServiceEnableTagOverride ServiceProxy{} ServiceConnect{} ServiceLocality{} CreateIndex "  \
	"ModifyIndex Partition PeerName Namespace"
#define SCHEMA_NODE_SERVICE                                                                        \
	"Kind ID Service Tags[] Address TaggedAddresses{} Meta{} Port SocketPath "                 \
	"Weights(Passing Warning) EnableTagOverride Proxy{} Connect{} Locality{} CreateIndex "     \
	"ModifyIndex Namespace Partition PeerName"
#define SCHEMA_CHECK                                                                               \
	"Node CheckID Name Status Notes Output ServiceID ServiceName ServiceTags[] Type Interval "  \
	"Timeout ExposedPort Definition{} CreateIndex ModifyIndex Namespace Partition PeerName"

static const char *filter_schema(unsigned view)
{
	switch (view) {
	case VIEW_NODES:
		return SCHEMA_NODE;
	case VIEW_SERVICES:
	case VIEW_SERVICE:
		return SCHEMA_SERVICE_NODE;
	case VIEW_NODE:
	case VIEW_NODE_SERVICES:
		return SCHEMA_NODE_SERVICE;
	case VIEW_HEALTH_NODE:
	case VIEW_HEALTH_CHECKS:
	case VIEW_HEALTH_STATE:
		return SCHEMA_CHECK;
	case VIEW_HEALTH_SERVICE:
		return "Node(" SCHEMA_NODE ") Service(" SCHEMA_NODE_SERVICE ") Checks[](" SCHEMA_CHECK
		       ")";
	default:
		return NULL;
	}
}

/* ?near=<node> (or _agent: this agent's node) on the views that list
 * nodes or instances: the query becomes a CATALOG_QUERY_NEAR, which raftd
 * answers sorted by estimated round trip time from that node (Consul's
 * sortNodesByDistanceFrom). Its leading fields are CATALOG_QUERY's. */
static void near_query(const struct routes_env *env, const struct query *q, unsigned view,
		       struct proto_msg *m)
{
	const char *near = query_get(q, "near");
	struct proto_catalog_query cq = m->u.catalog_query;
	struct proto_catalog_query_near *n;

	if (!near || !*near ||
	    (view != VIEW_NODES && view != VIEW_SERVICE && view != VIEW_HEALTH_SERVICE &&
	     view != VIEW_HEALTH_CHECKS && view != VIEW_HEALTH_STATE))
		return;
	*m = proto_msg_make(PROTO_CATALOG_QUERY_NEAR);
	n = &m->u.catalog_query_near;
	n->dc = cq.dc;
	n->view = cq.view;
	n->name = cq.name;
	n->tags = cq.tags;
	n->node_meta = cq.node_meta;
	n->passing = cq.passing;
	n->mode = cq.mode;
	n->max_stale_ms = cq.max_stale_ms;
	n->min_index = cq.min_index;
	n->wait_ms = cq.wait_ms;
	n->near = !strcmp(near, "_agent") ? env->cfg->node_name : near;
}

int catalog_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			 const char *path, const struct query *q, struct arena *a,
			 struct routes_action *out)
{
	const char *rel = path + 4; /* after "/v1/" */
	struct routes_call *c = &out->call;
	const char *bad, *dc = query_get(q, "dc");
	bool other = dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0;

	out->respond = true;
	if (!strcmp(rel, "catalog/register") || !strcmp(rel, "catalog/deregister")) {
		bool reg = rel[8] == 'r';
		json_t *body;
		struct proto_catalog_write *w;

		if (strcmp(req->method, "PUT") != 0)
			return text(a, 405, arena_printf(a, "method %s not allowed", req->method),
				    out);
		bad = json_body_decode_object(req->body, req->body_len, a, &body);
		if (bad)
			return text(a, 400, bad, out);
		c->msg = proto_msg_make(PROTO_CATALOG_WRITE);
		w = &c->msg.u.catalog_write;
		bad = reg ? parse_register(env, body, a, w) : parse_deregister(env, body, a, w);
		json_decref(body);
		if (bad && !strcmp(bad, "out of memory"))
			return -ENOMEM;
		if (bad)
			return text(a, strcmp(bad, "No path to datacenter") ? 400 : 500, bad, out);
		if (other)
			return text(a, 500, "No path to datacenter", out);
		c->op = ROUTES_OP_CATALOG_WRITE;
		c->peer = ROUTES_PEER_RAFTD;
		c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
		out->respond = false;
		return 0;
	}
	if (!strcmp(rel, "catalog/datacenters")) {
		json_t *arr;

		if (strcmp(req->method, "GET") != 0)
			return text(a, 405, arena_printf(a, "method %s not allowed", req->method),
				    out);
		arr = json_pack("[s]", env->cfg->datacenter ? env->cfg->datacenter : "dc1");
		return routes_json(a, 200, arr, c->pretty, &out->resp);
	}
	for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
		const struct endpoint *e = &endpoints[i];
		size_t n = strlen(e->prefix);
		struct proto_catalog_query *cq;
		struct routes_read_opts ro;
		const char *name;

		if (e->needs_name ? strncmp(rel, e->prefix, n) != 0 : strcmp(rel, e->prefix) != 0)
			continue;
		name = e->needs_name ? rel + n : NULL;
		if (strcmp(req->method, "GET") != 0)
			return text(a, 405, arena_printf(a, "method %s not allowed", req->method),
				    out);
		if (e->needs_name && !*name) {
			static const char *const what[] = {
			    [VIEW_SERVICE] = "Missing service name",
			    [VIEW_NODE] = "Missing node name",
			    [VIEW_NODE_SERVICES] = "Missing node name",
			    [VIEW_HEALTH_NODE] = "Missing node name",
			    [VIEW_HEALTH_CHECKS] = "Missing service name",
			    [VIEW_HEALTH_SERVICE] = "Missing service name",
			    [VIEW_HEALTH_STATE] = "Missing check state",
			};
			return text(a, 400, what[e->view], out);
		}
		c->msg = proto_msg_make(PROTO_CATALOG_QUERY);
		cq = &c->msg.u.catalog_query;
		cq->view = e->view;
		cq->name = name;
		bad = routes_parse_read_opts(a, q, &ro);
		if (!bad) {
			cq->mode = ro.mode;
			cq->max_stale_ms = ro.max_stale_ms;
			cq->min_index = ro.min_index;
			cq->wait_ms = ro.wait_ms;
			c->timeout_ms = ro.timeout_ms;
			c->consistency = ro.mode;
			bad = node_meta(a, q, &cq->node_meta);
		}
		if (!bad && (e->view == VIEW_SERVICE || e->view == VIEW_HEALTH_SERVICE))
			bad = tags(a, q, &cq->tags);
		if (!bad && e->view == VIEW_HEALTH_SERVICE && query_has(q, "passing")) {
			const char *v = query_get(q, "passing");

			if (!*v || !strcasecmp(v, "true") || !strcmp(v, "1"))
				cq->passing = true;
			else if (strcasecmp(v, "false") && strcmp(v, "0"))
				bad = arena_printf(a, "Invalid value for ?passing");
		}
		if (!bad && e->view == VIEW_HEALTH_STATE && strcmp(name, "any") &&
		    strcmp(name, "passing") && strcmp(name, "warning") && strcmp(name, "critical"))
			bad = "Invalid check state";
		if (!bad && query_get(q, "filter") && *query_get(q, "filter")) {
			struct filter *f;
			char ferr[256];
			int frc = filter_parse(query_get(q, "filter"), &f, ferr, sizeof(ferr));

			if (frc == -ENOMEM)
				return -ENOMEM;
			if (frc == 0 && filter_schema(e->view))
				frc = filter_check_selectors(f, filter_schema(e->view), ferr,
							     sizeof(ferr));
			if (frc < 0)
				bad = arena_strdup(a, ferr);
			filter_free(f);
			c->filter = query_get(q, "filter");
		}
		if (bad && !strcmp(bad, "out of memory"))
			return -ENOMEM;
		if (bad)
			return text(a, 400, bad, out);
		if (other)
			return text(a, 500, "No path to datacenter", out);
		near_query(env, q, e->view, &c->msg);
		c->op = ROUTES_OP_CATALOG_QUERY;
		c->peer = ROUTES_PEER_RAFTD;
		out->respond = false;
		return 0;
	}
	return text(a, 404, "404 page not found", out);
}

/* ---- replies ---------------------------------------------------------- */

static const struct proto_node *find_node(const struct proto_catalog_query_reply *r,
					  const char *name)
{
	for (size_t i = 0; i < r->nodes.n; i++)
		if (!strcasecmp(r->nodes.v[i].node, name))
			return &r->nodes.v[i];
	return NULL;
}

static json_t *checks_array(const struct proto_check *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, catalog_api_check_json(&v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

size_t catalog_api_check_group(const struct proto_catalog_query_reply *r, size_t k,
			       const struct proto_service *s)
{
	/* raftd sends one group per instance: its service's checks, then its
	 * node's, each in check ID order; a node check not after the previous
	 * one starts the next instance's group */
	const char *last_node_check = NULL;

	for (; k < r->checks.n; k++) {
		const struct proto_check *ck = &r->checks.v[k];

		if (strcasecmp(ck->node, s->node) != 0)
			break;
		if (*ck->service_id) {
			if (last_node_check || strcmp(ck->service_id, s->id) != 0)
				break;
		} else {
			if (last_node_check && strcmp(ck->check_id, last_node_check) <= 0)
				break;
			last_node_check = ck->check_id;
		}
	}
	return k;
}

const struct proto_node *catalog_api_find_node(const struct proto_catalog_query_reply *r,
					       const char *name)
{
	return find_node(r, name);
}

static json_t *render_view(const struct routes_env *env, unsigned view,
			   const struct proto_catalog_query_reply *r)
{
	json_t *j = NULL;
	bool bad = false;

	(void)env;
	switch (view) {
	case VIEW_NODES:
		j = json_array();
		for (size_t i = 0; j && i < r->nodes.n; i++)
			if (json_array_append_new(j, catalog_api_node_json(&r->nodes.v[i])) < 0)
				bad = true;
		break;
	case VIEW_SERVICES:
		j = json_object();
		for (size_t i = 0; j && i < r->services.n; i++)
			jset(j, r->services.v[i].service, jstrs(&r->services.v[i].tags), &bad);
		break;
	case VIEW_SERVICE:
		j = json_array();
		for (size_t i = 0; j && i < r->services.n; i++) {
			const struct proto_service *s = &r->services.v[i];

			if (json_array_append_new(
				j, catalog_service_entry(find_node(r, s->node), s)) < 0)
				bad = true;
		}
		break;
	case VIEW_NODE:
	case VIEW_NODE_SERVICES: {
		json_t *svcs;

		/* Consul: /node/ answers null for an unknown node (its reply is a
		 * pointer); /node-services/ a struct: {"Node": null, "Services": []} */
		if ((!r->found || r->nodes.n == 0) && view == VIEW_NODE)
			return json_null();
		if (!r->found || r->nodes.n == 0)
			return json_pack("{s:n,s:[]}", "Node", "Services");
		j = json_object();
		if (!j)
			return NULL;
		jset(j, "Node", catalog_api_node_json(&r->nodes.v[0]), &bad);
		svcs = view == VIEW_NODE ? json_object() : json_array();
		for (size_t i = 0; svcs && i < r->services.n; i++) {
			json_t *s = catalog_api_service_json(&r->services.v[i]);

			if (view == VIEW_NODE)
				jset(svcs, r->services.v[i].id, s, &bad);
			else if (json_array_append_new(svcs, s) < 0)
				bad = true;
		}
		jset(j, "Services", svcs, &bad);
		break;
	}
	case VIEW_HEALTH_NODE:
	case VIEW_HEALTH_CHECKS:
	case VIEW_HEALTH_STATE:
		j = checks_array(r->checks.v, r->checks.n);
		break;
	case VIEW_HEALTH_SERVICE: {
		size_t k = 0;

		j = json_array();
		for (size_t i = 0; j && i < r->services.n; i++) {
			const struct proto_service *s = &r->services.v[i];
			const struct proto_node *n = find_node(r, s->node);
			json_t *e = json_object(), *checks = json_array();

			size_t end = catalog_api_check_group(r, k, s);

			for (; checks && k < end; k++)
				if (json_array_append_new(
					checks, catalog_api_check_json(&r->checks.v[k])) < 0)
					bad = true;
			if (!e) {
				json_decref(checks);
				bad = true;
				break;
			}
			jset(e, "Node", n ? catalog_api_node_json(n) : json_null(), &bad);
			jset(e, "Service", catalog_api_service_json(s), &bad);
			jset(e, "Checks", checks, &bad);
			if (json_array_append_new(j, e) < 0)
				bad = true;
		}
		break;
	}
	default:
		break;
	}
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

struct cache_slot {
	char *key;  /* query text, see cache_key */
	char *body; /* rendered JSON */
	size_t len;
};

struct catalog_api_cache {
	struct cache_slot slots[CATALOG_API_CACHE_SLOTS];
	size_t next; /* round-robin victim */
};

struct catalog_api_cache *catalog_api_cache_new(void)
{
	return calloc(1, sizeof(struct catalog_api_cache));
}

void catalog_api_cache_free(struct catalog_api_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < CATALOG_API_CACHE_SLOTS; i++) {
		free(c->slots[i].key);
		free(c->slots[i].body);
	}
	free(c);
}

/* Everything the answer depends on, or NULL when the view is not cached
 * (its index may not move with everything its content shows). */
static const char *cache_key(const struct routes_call *call, uint64_t index, struct arena *a)
{
	const struct proto_catalog_query *q = &call->msg.u.catalog_query;
	const char *k;

	/* ?near= answers also depend on coordinates, which the index ignores */
	if (call->msg.type == PROTO_CATALOG_QUERY_NEAR ||
	    (q->view != VIEW_SERVICE && q->view != VIEW_HEALTH_SERVICE))
		return NULL;
	k = arena_printf(a, "%" PRIu64 "|%" PRIu64 "|%d|%d|%s|%s", (uint64_t)q->view, index,
			 q->passing, call->pretty, q->name ? q->name : "",
			 call->filter ? call->filter : "");
	for (size_t i = 0; k && i < q->tags.n; i++)
		k = arena_printf(a, "%s|t%s", k, q->tags.v[i]);
	for (size_t i = 0; k && i < q->node_meta.n; i++)
		k = arena_printf(a, "%s|m%s:%s", k, q->node_meta.keys[i], q->node_meta.vals[i]);
	return k;
}

static const struct cache_slot *cache_find(const struct catalog_api_cache *c, const char *key)
{
	for (size_t i = 0; c && key && i < CATALOG_API_CACHE_SLOTS; i++)
		if (c->slots[i].key && !strcmp(c->slots[i].key, key))
			return &c->slots[i];
	return NULL;
}

static void cache_put(struct catalog_api_cache *c, const char *key, const char *body, size_t len)
{
	struct cache_slot *s;
	char *k, *b;

	if (!c || !key)
		return;
	k = strdup(key);
	b = malloc(len + 1);
	if (!k || !b) {
		free(k);
		free(b);
		return; /* only a missed optimisation */
	}
	memcpy(b, body, len);
	b[len] = 0;
	s = &c->slots[c->next];
	c->next = (c->next + 1) % CATALOG_API_CACHE_SLOTS;
	free(s->key);
	free(s->body);
	s->key = k;
	s->body = b;
	s->len = len;
}

int catalog_api_finish(const struct routes_env *env, const struct routes_call *call,
		       const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	static const char *const consistency[] = {"leader", "consistent", "stale"};
	const struct proto_catalog_query_reply *r;
	char *fast;
	size_t fast_len;
	int rc = 0;

	if (call->op == ROUTES_OP_CATALOG_WRITE)
		return routes_json(a, 200, json_true(), call->pretty, out);
	r = &reply->u.catalog_query_reply;
	const char *key = cache_key(call, r->index, a);
	const struct cache_slot *hit = cache_find(env->catalog_cache, key);

	if (hit) {
		char *body = arena_alloc(a, hit->len + 1);

		if (!body)
			return -ENOMEM;
		memcpy(body, hit->body, hit->len + 1);
		memset(out, 0, sizeof(*out));
		out->status = 200;
		out->content_type = CT_JSON;
		out->body = body;
		out->body_len = hit->len;
	} else if (!call->pretty && !call->filter &&
		   (rc = catalog_json_render(a, (unsigned)call->msg.u.catalog_query.view, r, &fast,
					     &fast_len)) != -ENOTSUP) {
		/* the hot views, written directly (same bytes as jansson's) */
		if (rc < 0)
			return rc;
		memset(out, 0, sizeof(*out));
		out->status = 200;
		out->content_type = CT_JSON;
		out->body = fast;
		out->body_len = fast_len;
		cache_put(env->catalog_cache, key, fast, fast_len);
	} else {
		json_t *j = render_view(env, (unsigned)call->msg.u.catalog_query.view, r);
		struct filter *f = NULL;
		char ferr[256];

		/* parsed once at dispatch already: only out of memory fails here */
		if (j && call->filter && filter_parse(call->filter, &f, ferr, sizeof(ferr)) < 0) {
			json_decref(j);
			return -ENOMEM;
		}
		if (f && json_is_array(j))
			filter_array(f, j);
		else if (f && json_is_object(j) &&
			 call->msg.u.catalog_query.view == VIEW_NODE_SERVICES)
			filter_array(f, json_object_get(j, "Services"));
		filter_free(f);
		rc = routes_json(a, 200, j, call->pretty, out);
		if (rc == 0)
			cache_put(env->catalog_cache, key, out->body, out->body_len);
	}
	if (rc < 0)
		return rc;
	rc = routes_header_add(out, "X-Consul-Index", arena_printf(a, "%" PRIu64, r->index ? r->index : 1));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-KnownLeader", r->known_leader ? "true" : "false");
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-LastContact",
			 arena_printf(a, "%" PRIu64, r->last_contact_ms));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Effective-Consistency", consistency[call->consistency % 3]);
	return rc;
}
