/* The /v1/session endpoints: see session_api.h. */
#include "session_api.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/random.h>

#include <jansson.h>

#include "arena.h"
#include "json_body.h"
#include "config.h"
#include "query.h"
#include "render.h"

#define CT_JSON "application/json"
#define SESSION_TTL_MIN_MS 10000ull
#define SESSION_TTL_MAX_MS 86400000ull
#define SESSION_LOCK_DELAY_DEFAULT_NS 15000000000ull
#define NS_PER_MS 1000000ull

/* Consul's FixupLockDelay: a number below 1000 counts seconds, a larger one
 * nanoseconds; a string is a Go duration. Returns NULL or a 400 reason. */
static const char *parse_lock_delay(const json_t *v, uint64_t *out_ns)
{
	uint64_t ms;

	if (!v || json_is_null(v))
		return NULL;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		json_int_t n = json_integer_value(v);

		*out_ns = n < 1000 ? (uint64_t)n * 1000000000ull : (uint64_t)n;
		return NULL;
	}
	if (json_is_real(v) && json_real_value(v) >= 0 && json_real_value(v) < 1e18) {
		double d = json_real_value(v);

		*out_ns = d < 1000 ? (uint64_t)(d * 1e9) : (uint64_t)d;
		return NULL;
	}
	if (json_is_string(v) && query_parse_duration_ms(json_string_value(v), &ms) == 0 &&
	    ms < UINT64_MAX / NS_PER_MS) {
		*out_ns = ms * NS_PER_MS;
		return NULL;
	}
	return "Request decode failed: invalid LockDelay";
}

/* A JSON array of strings, or null/absent. */
static bool strings_or_null(const json_t *v)
{
	size_t i;
	json_t *e;

	if (!v || json_is_null(v))
		return true;
	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e) if (!json_is_string(e)) return false;
	return true;
}

const char *session_api_parse_create(const char *body, size_t len, const char *node_default,
				     struct arena *a, const char **out_json)
{
	json_t *in = NULL, *o = NULL, *v;
	const char *bad = NULL, *behavior = "release", *ttl = "", *name = "", *node = node_default;
	uint64_t delay = SESSION_LOCK_DELAY_DEFAULT_NS;
	char *text = NULL;

	*out_json = NULL;
	if (body && len) {
		in = json_loadb(body, len, 0, NULL);
		if (!json_is_object(in) && !json_is_null(in)) {
			bad = "Request decode failed: invalid JSON body";
			goto out;
		}
	}
	if ((v = json_body_get(in, "Name")) && !json_is_null(v)) {
		if (!json_is_string(v)) {
			bad = "Request decode failed: Name must be a string";
			goto out;
		}
		name = json_string_value(v);
	}
	if ((v = json_body_get(in, "Node")) && json_is_string(v) && *json_string_value(v))
		node = json_string_value(v);
	if (!node || !*node) {
		bad = "Missing node";
		goto out;
	}
	if ((v = json_body_get(in, "Behavior")) && json_is_string(v) && *json_string_value(v))
		behavior = json_string_value(v);
	if (strcmp(behavior, "release") != 0 && strcmp(behavior, "delete") != 0) {
		bad = arena_printf(a, "Invalid Behavior setting '%s'", behavior);
		goto out;
	}
	if ((bad = parse_lock_delay(json_body_get(in, "LockDelay"), &delay)))
		goto out;
	if ((v = json_body_get(in, "TTL")) && json_is_string(v) && *json_string_value(v)) {
		uint64_t ms;

		ttl = json_string_value(v);
		if (query_parse_duration_ms(ttl, &ms) < 0) {
			bad = arena_printf(a, "Request decode failed: invalid TTL '%s'", ttl);
			goto out;
		}
		if (ms != 0 && (ms < SESSION_TTL_MIN_MS || ms > SESSION_TTL_MAX_MS)) {
			bad = arena_printf(a,
					   "Invalid Session TTL '%s', must be between [10s=24h0m0s]",
					   ttl);
			goto out;
		}
	}
	o = json_object();
	if (!o)
		goto oom;
	json_object_set_new(o, "Name", json_string(name));
	json_object_set_new(o, "Node", json_string(node));
	json_object_set_new(o, "LockDelay", json_integer((json_int_t)delay));
	json_object_set_new(o, "Behavior", json_string(behavior));
	json_object_set_new(o, "TTL", json_string(ttl));
	v = json_body_get(in, "NodeChecks");
	if (!v) /* Consul: absent means the node's serfHealth check */
		v = json_body_get(in, "Checks");
	if (!strings_or_null(v)) {
		bad = "Request decode failed: NodeChecks must be a list of check IDs";
		goto out;
	}
	if (!v) {
		json_t *d = json_array();

		if (!d || json_array_append_new(d, json_string("serfHealth")) < 0) {
			json_decref(d);
			goto oom;
		}
		json_object_set_new(o, "NodeChecks", d);
	} else {
		json_object_set_new(o, "NodeChecks", json_is_null(v) ? json_null() : json_copy(v));
	}
	v = json_body_get(in, "ServiceChecks");
	if (v && !json_is_null(v) && !json_is_array(v)) {
		bad = "Request decode failed: ServiceChecks must be a list";
		goto out;
	}
	json_object_set_new(o, "ServiceChecks", v && !json_is_null(v) ? json_deep_copy(v)
								       : json_null());
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (!text)
		goto oom;
	*out_json = arena_strdup(a, text);
	free(text);
	if (!*out_json)
		goto oom;
	goto out;
oom:
	bad = "out of memory";
out:
	json_decref(o);
	json_decref(in);
	return bad;
}

/* A random (version 4) UUID in a. */
static char *new_uuid(struct arena *a)
{
	uint8_t b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return NULL;
		got += (size_t)n;
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	return arena_printf(a,
			    "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			    b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
			    b[11], b[12], b[13], b[14], b[15]);
}

static int method_not_allowed(struct arena *a, const char *method, const char *allow,
			      struct routes_action *out)
{
	int rc = routes_text(a, 405, arena_printf(a, "method %s not allowed", method), &out->resp);

	return rc < 0 ? rc : routes_header_add(&out->resp, "Allow", allow);
}

int session_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			 const char *path, const struct query *q, struct arena *a,
			 struct routes_action *out)
{
	const char *sub = path + strlen("/v1/session/"), *arg = NULL, *bad = NULL;
	const char *dc = query_get(q, "dc");
	bool is_put = strcmp(req->method, "PUT") == 0, is_get = strcmp(req->method, "GET") == 0;
	unsigned view = 0;
	struct routes_call *c = &out->call;

	memset(out, 0, sizeof(*out));
	out->respond = true; /* until a call is set up below */
	c->pretty = query_has(q, "pretty");
	c->peer = ROUTES_PEER_RAFTD;
	c->timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	if (strcmp(sub, "create") == 0) {
		if (!is_put)
			return method_not_allowed(a, req->method, "OPTIONS,PUT", out);
		const char *json, *id;

		bad = session_api_parse_create((const char *)req->body, req->body_len,
					       env->cfg->node_name, a, &json);
		if (bad)
			return routes_text(a, 400, bad, &out->resp);
		id = new_uuid(a);
		if (!id)
			return -ENOMEM;
		out->respond = false;
		c->op = ROUTES_OP_SESSION_WRITE;
		c->msg = proto_msg_make(PROTO_SESSION_WRITE);
		c->msg.u.session_write.dc = dc;
		c->msg.u.session_write.op = 1;
		c->msg.u.session_write.id = id;
		c->msg.u.session_write.session = json;
		return 0;
	}
	if (strncmp(sub, "destroy/", 8) == 0) {
		if (!is_put)
			return method_not_allowed(a, req->method, "OPTIONS,PUT", out);
		arg = sub + 8;
		if (!*arg)
			return routes_text(a, 400, "Missing session", &out->resp);
		out->respond = false;
		c->op = ROUTES_OP_SESSION_WRITE;
		c->msg = proto_msg_make(PROTO_SESSION_WRITE);
		c->msg.u.session_write.dc = dc;
		c->msg.u.session_write.op = 2;
		c->msg.u.session_write.id = arg;
		return 0;
	}
	if (strncmp(sub, "renew/", 6) == 0) {
		if (!is_put)
			return method_not_allowed(a, req->method, "OPTIONS,PUT", out);
		view = 4;
		arg = sub + 6;
	} else if (strncmp(sub, "info/", 5) == 0) {
		view = 1;
		arg = sub + 5;
	} else if (strncmp(sub, "node/", 5) == 0) {
		view = 2;
		arg = sub + 5;
	} else if (strcmp(sub, "list") == 0) {
		view = 3;
		arg = "";
	} else {
		return routes_text(a, 404, "404 page not found", &out->resp);
	}
	if (view != 4 && !is_get)
		return method_not_allowed(a, req->method, "OPTIONS,GET", out);
	if (view != 3 && !*arg)
		return routes_text(a, 400, view == 2 ? "Missing node name" : "Missing session",
				   &out->resp);
	out->respond = false;
	c->op = ROUTES_OP_SESSION_QUERY;
	c->msg = proto_msg_make(PROTO_SESSION_QUERY);
	c->msg.u.session_query.dc = dc;
	c->msg.u.session_query.view = view;
	c->msg.u.session_query.arg = arg;
	if (view == 4) {
		c->msg.u.session_query.mode = 1; /* the leader renews */
		c->consistency = 1;
	} else {
		struct proto_session_query *sq = &c->msg.u.session_query;
		struct routes_read_opts ro;

		bad = routes_parse_read_opts(a, q, &ro);
		if (bad)
			return routes_text(a, 400, bad, &out->resp);
		sq->mode = ro.mode;
		sq->max_stale_ms = ro.max_stale_ms;
		sq->min_index = ro.min_index;
		sq->wait_ms = ro.wait_ms;
		c->timeout_ms = ro.timeout_ms;
		c->consistency = ro.mode;
	}
	return 0;
}

int session_api_finish(const struct routes_env *env, const struct routes_call *call,
		       const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	static const char *const consistency[] = {"leader", "consistent", "stale"};
	const struct proto_session_reply *r;
	json_t *arr;
	int rc;

	(void)env;
	if (call->op == ROUTES_OP_SESSION_WRITE) {
		if (call->msg.u.session_write.op == 1)
			return routes_json(a, 200, json_pack("{s:s}", "ID", call->msg.u.session_write.id),
					 call->pretty, out);
		return routes_json(a, 200, json_true(), call->pretty, out);
	}
	r = &reply->u.session_reply;
	if (call->msg.u.session_query.view == 4 && r->sessions.n == 0) {
		const char *msg =
		    arena_printf(a, "Session id '%s' not found", call->msg.u.session_query.arg);

		return msg ? routes_text(a, 404, msg, out) : -ENOMEM;
	}
	arr = json_array();
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < r->sessions.n; i++) {
		json_t *o = json_loads(r->sessions.v[i], 0, NULL);

		if (o && json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return -ENOMEM;
		}
	}
	rc = routes_json(a, 200, arr, call->pretty, out);
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Index", arena_printf(a, "%" PRIu64, r->index ? r->index : 1));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-KnownLeader", r->known_leader ? "true" : "false");
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-LastContact", arena_printf(a, "%" PRIu64, r->last_contact_ms));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Effective-Consistency", consistency[call->consistency % 3]);
	return rc;
}
