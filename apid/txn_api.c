/* The /v1/txn endpoint: see txn_api.h. */
#include "txn_api.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "catalog_api.h"
#include "config.h"
#include "json_body.h"
#include "query.h"
#include "render.h"

#define CT_JSON "application/json"
#define JGET json_body_get

enum { KIND_KV = 1, KIND_NODE = 2, KIND_SERVICE = 3, KIND_CHECK = 4 };

uint64_t txn_api_body_limit(const struct config *cfg)
{
	return cfg->txn_max_req_len > cfg->kv_max_value_size ? cfg->txn_max_req_len
							       : cfg->kv_max_value_size;
}

static int b64_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int txn_api_base64_decode(const char *s, struct arena *a, uint8_t **out, size_t *out_len)
{
	size_t n = strlen(s), j = 0;
	uint32_t acc = 0;
	int bits = 0;
	uint8_t *p;

	while (n && s[n - 1] == '=')
		n--;
	if (strlen(s) - n > 2 || n % 4 == 1)
		return -EINVAL;
	p = arena_alloc(a, n * 3 / 4 + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int v = b64_val((unsigned char)s[i]);

		if (v < 0)
			return -EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[j++] = (uint8_t)(acc >> bits);
		}
	}
	p[j] = 0;
	*out = p;
	*out_len = j;
	return 0;
}

/* ---- body ----------------------------------------------------------------- */

/* Consul's txn texts: "Failed to parse body: ..."; unsigned fields may be
 * written as reals (Flags 1.0). */
static const struct json_body_dialect body_dialect = {
    .prefix = "Failed to parse body",
    .map_not_string = "must hold strings",
    .whole_reals = true,
};

/* A one-element list of a zeroed record in the arena. */
#define ONE(list, a)                                                                               \
	((list).v = arena_zalloc((a), sizeof(*(list).v)), (list).n = (list).v ? 1 : 0, (list).v)

static const char *parse_kv(const json_t *o, const struct config *cfg, struct arena *a,
			    struct proto_txn_op *op, unsigned *status)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	json_t *v;

	op->kind = KIND_KV;
	op->verb = json_body_str(&jb, o, "Verb");
	op->key = json_body_str(&jb, o, "Key");
	op->flags = json_body_uint(&jb, o, "Flags", 0);
	op->index = json_body_uint(&jb, o, "Index", 0);
	op->session = json_body_str(&jb, o, "Session");
	if (jb.bad)
		return jb.bad;
	v = JGET(o, "Value");
	if (v && !json_is_null(v)) {
		uint8_t *p;
		size_t n;

		if (!json_is_string(v))
			return "Failed to parse body: Value must be a base64 string";
		if (txn_api_base64_decode(json_string_value(v), a, &p, &n) < 0)
			return "Failed to parse body: failed to decode value: illegal base64 data";
		if (n > cfg->kv_max_value_size) {
			*status = 413;
			return arena_printf(a, "Value for key \"%s\" is too large (%zu > %" PRIu64
					    " bytes)",
					    op->key ? op->key : "", n, cfg->kv_max_value_size);
		}
		op->value.ptr = p;
		op->value.len = n;
	}
	return NULL;
}

static const char *parse_node(const json_t *o, struct arena *a, struct proto_txn_op *op)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	json_t *n = JGET(o, "Node");
	struct proto_node *nd;

	op->kind = KIND_NODE;
	op->verb = json_body_str(&jb, o, "Verb");
	if (jb.bad)
		return jb.bad;
	if (!ONE(op->node, a))
		return "out of memory";
	if (!n || json_is_null(n))
		return NULL;
	if (!json_is_object(n))
		return "Failed to parse body: Node must be an object";
	nd = op->node.v;
	nd->id = json_body_str(&jb, n, "ID");
	nd->node = json_body_str(&jb, n, "Node");
	nd->address = json_body_str(&jb, n, "Address");
	nd->datacenter = json_body_str(&jb, n, "Datacenter");
	if (json_body_map(&jb, n, "TaggedAddresses", &nd->tagged_addresses) < 0 ||
	    json_body_map(&jb, n, "Meta", &nd->meta) < 0)
		return "out of memory";
	op->index = json_body_uint(&jb, n, "ModifyIndex", 0);
	return jb.bad;
}

static const char *parse_service(const json_t *o, struct arena *a, struct proto_txn_op *op)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	const char *why;
	json_t *s = JGET(o, "Service");
	struct proto_service *sv;

	op->kind = KIND_SERVICE;
	op->verb = json_body_str(&jb, o, "Verb");
	op->key = json_body_str(&jb, o, "Node");
	if (jb.bad)
		return jb.bad;
	if (!ONE(op->service, a))
		return "out of memory";
	if (!s || json_is_null(s))
		return NULL;
	if (!json_is_object(s))
		return "Failed to parse body: Service must be an object";
	sv = op->service.v;
	op->index = json_body_uint(&jb, s, "ModifyIndex", 0);
	if (jb.bad)
		return jb.bad;
	if (op->verb && (strcmp(op->verb, "set") == 0 || strcmp(op->verb, "cas") == 0)) {
		why = catalog_api_parse_service(s, a, sv);
		if (why && strcmp(why, "Missing service name") != 0)
			return why;
		return NULL;
	}
	/* get and the deletes only name the instance */
	sv->id = json_body_str(&jb, s, "ID");
	sv->service = json_body_str(&jb, s, "Service");
	return jb.bad;
}

static const char *parse_check(const json_t *o, struct arena *a, struct proto_txn_op *op)
{
	struct json_body jb = {.a = a, .dialect = &body_dialect};
	json_t *c = JGET(o, "Check"), *d;
	struct proto_check *ck;

	op->kind = KIND_CHECK;
	op->verb = json_body_str(&jb, o, "Verb");
	if (jb.bad)
		return jb.bad;
	if (!ONE(op->check, a))
		return "out of memory";
	if (!c || json_is_null(c))
		return NULL;
	if (!json_is_object(c))
		return "Failed to parse body: Check must be an object";
	ck = op->check.v;
	ck->node = json_body_str(&jb, c, "Node");
	ck->check_id = json_body_str(&jb, c, "CheckID");
	ck->name = json_body_str(&jb, c, "Name");
	ck->status = json_body_str(&jb, c, "Status");
	ck->notes = json_body_str(&jb, c, "Notes");
	ck->output = json_body_str(&jb, c, "Output");
	ck->service_id = json_body_str(&jb, c, "ServiceID");
	ck->service_name = json_body_str(&jb, c, "ServiceName");
	ck->type = json_body_str(&jb, c, "Type");
	if (json_body_strs(&jb, c, "ServiceTags", &ck->service_tags) < 0)
		return "out of memory";
	d = JGET(c, "Definition");
	if (d && json_is_object(d) && json_object_size(d)) {
		char *text = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (!text)
			return "out of memory";
		ck->definition = arena_strdup(a, text);
		free(text);
	}
	op->index = json_body_uint(&jb, c, "ModifyIndex", 0);
	return jb.bad;
}

int txn_api_dispatch(const struct routes_env *env, const struct routes_req *req,
		     const struct query *q, struct arena *a, struct routes_action *out)
{
	uint64_t limit = txn_api_body_limit(env->cfg);
	struct routes_read_opts ro;
	struct proto_txn *t;
	json_t *body = NULL, *e;
	json_error_t jerr;
	const char *bad = NULL;
	unsigned status = 400;
	size_t n, i;
	int rc = 0;

	out->respond = true;
	if (req->body_too_large || req->body_seen > limit || req->body_len > limit) {
		const char *msg =
		    arena_printf(a, "Request body too large, max size: %" PRIu64 " bytes", limit);

		return msg ? routes_text(a, 413, msg, &out->resp) : -ENOMEM;
	}
	if ((bad = routes_parse_read_opts(a, q, &ro)))
		return routes_text(a, 400, bad, &out->resp);
	body = req->body_len ? json_loadb((const char *)req->body, req->body_len, 0, &jerr) : NULL;
	if (!json_is_array(body)) {
		bad = arena_printf(a, "Failed to parse body: %s",
				   body ? "the body must be a JSON array of operations"
					: (req->body_len ? jerr.text : "EOF"));
		json_decref(body);
		return bad ? routes_text(a, 400, bad, &out->resp) : -ENOMEM;
	}
	n = json_array_size(body);
	if (n > TXN_API_MAX_OPS) {
		json_decref(body);
		bad = arena_printf(a, "Transaction contains too many operations (%zu > %d)", n,
				   TXN_API_MAX_OPS);
		return bad ? routes_text(a, 413, bad, &out->resp) : -ENOMEM;
	}
	out->call.msg = proto_msg_make(PROTO_TXN);
	t = &out->call.msg.u.txn;
	t->ops.v = n ? arena_zalloc(a, n * sizeof(*t->ops.v)) : NULL;
	if (n && !t->ops.v) {
		rc = -ENOMEM;
		goto out;
	}
	t->ops.n = n;
	json_array_foreach(body, i, e) {
		struct proto_txn_op *op = &t->ops.v[i];
		json_t *x;

		if (!json_is_object(e)) {
			bad = "Failed to parse body: every operation must be an object";
			break;
		}
		if ((x = JGET(e, "KV")) && json_is_object(x))
			bad = parse_kv(x, env->cfg, a, op, &status);
		else if ((x = JGET(e, "Node")) && json_is_object(x))
			bad = parse_node(x, a, op);
		else if ((x = JGET(e, "Service")) && json_is_object(x))
			bad = parse_service(x, a, op);
		else if ((x = JGET(e, "Check")) && json_is_object(x))
			bad = parse_check(x, a, op);
		/* none of them: kind 0, which raftd answers "no operation specified" */
		if (bad)
			break;
	}
	if (bad) {
		rc = strcmp(bad, "out of memory") == 0 ? -ENOMEM
							: routes_text(a, status, bad, &out->resp);
		goto out;
	}
	if (n == 0) {
		/* Consul: an empty transaction commits nothing and succeeds */
		rc = routes_json(a, 200,
				 json_pack("{s:[],s:n}", "Results", "Errors"), out->call.pretty,
				 &out->resp);
		if (rc == 0)
			rc = routes_header_add(&out->resp, "X-Consul-Index",
					       arena_printf(a, "%" PRIu64,
							    env->last_index ? env->last_index : 1));
		goto out;
	}
	t->dc = query_get(q, "dc");
	t->mode = ro.mode;
	t->max_stale_ms = ro.max_stale_ms;
	out->respond = false;
	out->call.op = ROUTES_OP_TXN;
	out->call.peer = ROUTES_PEER_RAFTD;
	out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	out->call.consistency = ro.mode;
out:
	json_decref(body);
	return rc;
}

/* ---- reply ---------------------------------------------------------------- */

/* Whether raftd took the transaction through the log (its txn_writes):
 * only read-only answers carry X-Consul-KnownLeader / LastContact. */
static bool ops_write(const struct proto_txn *t)
{
	static const char *const kv_writes[] = {"set",	  "cas",	 "lock",      "unlock",
						"delete", "delete-tree", "delete-cas"};

	for (size_t i = 0; i < t->ops.n; i++) {
		const struct proto_txn_op *op = &t->ops.v[i];

		if (op->kind != KIND_KV) {
			if (!op->verb || strcmp(op->verb, "get") != 0)
				return true;
			continue;
		}
		for (size_t k = 0; k < sizeof(kv_writes) / sizeof(kv_writes[0]); k++)
			if (op->verb && strcmp(op->verb, kv_writes[k]) == 0)
				return true;
	}
	return false;
}

static json_t *result_json(const struct proto_txn_result *r)
{
	json_t *o = json_object(), *v = NULL;
	const char *key = NULL;

	if (!o)
		return NULL;
	if (r->kv.n) {
		key = "KV";
		v = render_kv_entry(&r->kv.v[0]);
	} else if (r->node.n) {
		key = "Node";
		v = catalog_api_node_json(&r->node.v[0]);
	} else if (r->service.n) {
		key = "Service";
		v = catalog_api_service_json(&r->service.v[0]);
	} else if (r->check.n) {
		key = "Check";
		v = catalog_api_check_json(&r->check.v[0]);
	} else {
		return o;
	}
	if (!v || json_object_set_new(o, key, v) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int txn_api_finish(const struct routes_call *call, const struct proto_txn_reply *r,
		   struct arena *a, struct routes_resp *out)
{
	bool conflict = r->errors.n > 0;
	json_t *o = json_object(), *arr = json_array();
	int rc;

	if (!o || !arr)
		goto oom;
	if (conflict) {
		for (size_t i = 0; i < r->errors.n; i++) {
			json_t *e = json_pack("{s:I,s:s}", "OpIndex", (json_int_t)r->errors.v[i].op_index,
					      "What", r->errors.v[i].what ? r->errors.v[i].what : "");

			if (!e || json_array_append_new(arr, e) < 0)
				goto oom;
		}
		if (json_object_set_new(o, "Results", json_null()) < 0 ||
		    json_object_set_new(o, "Errors", arr) < 0) {
			arr = NULL;
			goto oom;
		}
	} else {
		for (size_t i = 0; i < r->results.n; i++) {
			json_t *e = result_json(&r->results.v[i]);

			if (!e || json_array_append_new(arr, e) < 0)
				goto oom;
		}
		if (json_object_set_new(o, "Results", arr) < 0 ||
		    json_object_set_new(o, "Errors", json_null()) < 0) {
			arr = NULL;
			goto oom;
		}
	}
	rc = routes_json(a, conflict ? 409 : 200, o, call->pretty, out);
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-Index",
				       arena_printf(a, "%" PRIu64, r->index ? r->index : 1));
	if (rc == 0 && call->msg.type == PROTO_TXN && !ops_write(&call->msg.u.txn)) {
		rc = routes_header_add(out, "X-Consul-KnownLeader",
				       r->known_leader ? "true" : "false");
		if (rc == 0)
			rc = routes_header_add(out, "X-Consul-LastContact",
					       arena_printf(a, "%" PRIu64, r->last_contact_ms));
	}
	return rc;
oom:
	json_decref(arr);
	json_decref(o);
	return -ENOMEM;
}
