/* The agent's local endpoints (see agent_api.h). */
#include "agent_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_state.h"
#include "arena.h"
#include "catalog_api.h"
#include "config.h"
#include "filter.h"
#include "json_body.h"
#include "query.h"
#include "render.h"

#define JGET json_body_get
#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"

/* Consul's default check time-out. */
#define DEFAULT_TIMEOUT_MS 10000u

static int text(struct arena *a, unsigned status, const char *msg, struct routes_action *out)
{
	out->respond = true;
	return routes_text(a, status, msg ? msg : "out of memory", &out->resp);
}

/* 200 with an empty body, as Consul answers agent writes. */
static int empty_ok(struct routes_action *out)
{
	out->respond = true;
	memset(&out->resp, 0, sizeof(out->resp));
	out->resp.status = 200;
	return 0;
}

static int json_out(struct arena *a, unsigned status, json_t *j, bool pretty,
		    struct routes_action *out)
{
	char *body;
	size_t len;
	int rc;

	out->respond = true;
	if (!j)
		return -ENOMEM;
	rc = render_dump(a, j, pretty, &body, &len);
	json_decref(j);
	if (rc < 0)
		return rc;
	memset(&out->resp, 0, sizeof(out->resp));
	out->resp.status = status;
	out->resp.content_type = CT_JSON;
	out->resp.body = body;
	out->resp.body_len = len;
	return 0;
}

/* ---- definitions ------------------------------------------------------ */

static const char *jstring(const json_t *o, const char *key)
{
	json_t *v = JGET(o, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A Consul duration: "10s" or an integer of nanoseconds. Returns 0 (absent
 * is 0), or -EINVAL for anything else, negative included. */
static int jduration(const json_t *o, const char *key, uint64_t *out_ms)
{
	json_t *v = JGET(o, key);

	*out_ms = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return -EINVAL;
		*out_ms = (uint64_t)json_integer_value(v) / 1000000u;
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);

		if (!*s)
			return 0;
		return config_duration_ms(s, out_ms);
	}
	return -EINVAL;
}

static int juint32(const json_t *o, const char *key, uint32_t *out)
{
	json_t *v = JGET(o, key);

	*out = 0;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000)
		return -EINVAL;
	*out = (uint32_t)json_integer_value(v);
	return 0;
}

static bool script_checks_enabled(const struct routes_env *env)
{
	const json_t *doc = env->cfg->json;

	return json_is_true(json_object_get(doc, "enable_script_checks")) ||
	       json_is_true(json_object_get(doc, "enable_local_script_checks"));
}

static char *sdup(const char *s) { return strdup(s ? s : ""); }

const char *agent_api_register_check(struct agent_state *st, const struct routes_env *env,
				     const json_t *body, const char *service_id,
				     const char *default_id, const char *default_name,
				     struct arena *a)
{
	struct agent_check *c;
	const char *id, *name, *sid, *status, *v;
	json_t *args;
	int kinds = 0, rc;

	if (!json_is_object(body))
		return "Request decode failed: check must be an object";
	c = agent_check_new();
	if (!c)
		return "out of memory";
	name = jstring(body, "Name");
	if (!name || !*name)
		name = default_name;
	if (!name || !*name) {
		agent_check_free(c);
		return "Missing check name";
	}
	id = jstring(body, "CheckID");
	if (!id || !*id)
		id = jstring(body, "ID");
	if (!id || !*id)
		id = default_id && *default_id ? default_id : name;
	sid = jstring(body, "ServiceID");
	if (!sid || !*sid)
		sid = service_id ? service_id : "";
	c->id = sdup(id);
	c->name = sdup(name);
	free(c->service_id);
	c->service_id = sdup(sid);
	free(c->notes);
	c->notes = sdup(jstring(body, "Notes"));
	c->def = json_deep_copy(body);
	if (!c->id || !c->name || !c->service_id || !c->notes || !c->def) {
		agent_check_free(c);
		return "out of memory";
	}
	/* the service's ID and the defaults are implied when registered
	 * with it: persist them explicitly */
	if (*c->service_id)
		json_object_set_new(c->def, "ServiceID", json_string(c->service_id));
	json_object_set_new(c->def, "CheckID", json_string(c->id));
	json_object_set_new(c->def, "Name", json_string(c->name));

	if (jduration(body, "Interval", &c->interval_ms) < 0 ||
	    jduration(body, "Timeout", &c->timeout_ms) < 0 ||
	    jduration(body, "TTL", &c->ttl_ms) < 0 ||
	    jduration(body, "DeregisterCriticalServiceAfter", &c->deregister_after_ms) < 0) {
		agent_check_free(c);
		return "Invalid check: durations must be non-negative like \"10s\"";
	}
	if (juint32(body, "SuccessBeforePassing", &c->success_before_passing) < 0 ||
	    juint32(body, "FailuresBeforeCritical", &c->failures_before_critical) < 0) {
		agent_check_free(c);
		return "Invalid check: SuccessBeforePassing and FailuresBeforeCritical must be "
		       "non-negative integers";
	}
	if ((v = jstring(body, "HTTP")) && *v) {
		kinds++;
		c->kind = AGENT_CHECK_HTTP;
		c->http = sdup(v);
		c->method = sdup(jstring(body, "Method") ? jstring(body, "Method") : "GET");
		c->body = jstring(body, "Body") ? sdup(jstring(body, "Body")) : NULL;
		c->tls_skip_verify = json_is_true(JGET(body, "TLSSkipVerify"));
		if (json_is_object(JGET(body, "Header")))
			c->header = json_incref(JGET(body, "Header"));
	}
	if ((v = jstring(body, "TCP")) && *v) {
		kinds++;
		c->kind = AGENT_CHECK_TCP;
		c->tcp = sdup(v);
	}
	args = JGET(body, "Args");
	if (!args)
		args = JGET(body, "ScriptArgs");
	if (json_is_array(args) && json_array_size(args)) {
		kinds++;
		c->kind = AGENT_CHECK_SCRIPT;
		for (size_t i = 0; i < json_array_size(args); i++)
			if (!json_is_string(json_array_get(args, i))) {
				agent_check_free(c);
				return "Invalid check: Args must be strings";
			}
		c->args = json_incref(args);
	}
	if ((v = jstring(body, "AliasService")) && *v) {
		kinds++;
		c->kind = AGENT_CHECK_ALIAS;
		c->alias_service = sdup(v);
	}
	if (c->ttl_ms) {
		kinds++;
		c->kind = AGENT_CHECK_TTL;
	}
	if (JGET(body, "GRPC") || JGET(body, "DockerContainerID") || JGET(body, "H2PING") ||
	    JGET(body, "UDP") || JGET(body, "OSService")) {
		agent_check_free(c);
		return "Invalid check: this check type is not supported by this agent";
	}
	if (kinds != 1) {
		agent_check_free(c);
		return kinds ? "Invalid check: only one of TTL, HTTP, TCP, Args or AliasService "
			       "may be set"
			     : "Invalid check: one of TTL, HTTP, TCP, Args or AliasService is "
			       "required";
	}
	if ((c->kind == AGENT_CHECK_HTTP || c->kind == AGENT_CHECK_TCP ||
	     c->kind == AGENT_CHECK_SCRIPT) &&
	    c->interval_ms == 0) {
		agent_check_free(c);
		return "Invalid check: Interval must be > 0 for Script, HTTP or TCP checks";
	}
	if (c->kind == AGENT_CHECK_SCRIPT && !script_checks_enabled(env)) {
		agent_check_free(c);
		return "Scripts are disabled on this agent; to enable, configure "
		       "'enable_script_checks' or 'enable_local_script_checks' to true";
	}
	if (c->kind == AGENT_CHECK_HTTP && (!c->http || !c->method)) {
		agent_check_free(c);
		return "out of memory";
	}
	if (c->timeout_ms == 0)
		c->timeout_ms = DEFAULT_TIMEOUT_MS;
	if (c->interval_ms && c->interval_ms < 1000)
		c->interval_ms = 1000; /* Consul's MinInterval */
	status = jstring(body, "Status");
	if (status && *status) {
		if (strcmp(status, "passing") && strcmp(status, "warning") &&
		    strcmp(status, "critical")) {
			agent_check_free(c);
			return arena_printf(a, "Invalid check status: \"%s\"", status);
		}
		free(c->status);
		c->status = sdup(status);
	}
	rc = agent_check_put(st, c, status && *status, env->now_ms);
	if (rc == -ENOENT)
		return arena_printf(a, "ServiceID \"%s\" does not exist", sid);
	if (rc < 0)
		return "out of memory";
	return NULL;
}

const char *agent_api_register_service(struct agent_state *st, const struct routes_env *env,
				       const json_t *body, bool replace_checks, struct arena *a)
{
	struct proto_service s;
	const char *bad;
	json_t *def, *chk, *chks;
	int rc;

	if (!json_is_object(body))
		return "Request decode failed: body must be a JSON object";
	bad = catalog_api_parse_service(body, a, &s);
	if (bad)
		return bad;
	chk = JGET(body, "Check");
	chks = JGET(body, "Checks");
	if (chks && !json_is_null(chks) && !json_is_array(chks))
		return "Request decode failed: Checks must be an array";
	if (chk && !json_is_null(chk) && !json_is_object(chk))
		return "Request decode failed: Check must be an object";
	def = json_deep_copy(body);
	if (!def)
		return "out of memory";
	/* checks persist on their own */
	{
		const char *k;
		json_t *v;
		void *tmp;

		json_object_foreach_safe(def, tmp, k, v)
		{
			if (!strcasecmp(k, "Check") || !strcasecmp(k, "Checks"))
				json_object_del(def, k);
		}
	}
	json_object_set_new(def, "ID", json_string(s.id));
	rc = agent_service_put(st, &s, def, replace_checks);
	json_decref(def);
	if (rc < 0)
		return "out of memory";
	if (chk && json_is_object(chk)) {
		const char *dflt_id = arena_printf(a, "service:%s", s.id);
		const char *dflt_name = arena_printf(a, "Service '%s' check", s.service);

		bad = agent_api_register_check(st, env, chk, s.id, dflt_id, dflt_name, a);
		if (bad)
			goto undo;
	}
	for (size_t i = 0; json_is_array(chks) && i < json_array_size(chks); i++) {
		const char *dflt_id = arena_printf(a, "service:%s:%zu", s.id, i + 1);
		const char *dflt_name = arena_printf(a, "Service '%s' check", s.service);

		bad = agent_api_register_check(st, env, json_array_get(chks, i), s.id, dflt_id,
					       dflt_name, a);
		if (bad)
			goto undo;
	}
	return NULL;
undo:
	/* Consul validates every check before adding the service */
	(void)agent_service_remove(st, s.id);
	return bad;
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *service_json(const struct routes_env *env, const struct agent_service *as)
{
	const struct proto_service *s = &as->svc;
	json_t *o = catalog_api_service_json(s);

	if (!o)
		return NULL;
	json_object_del(o, "CreateIndex");
	json_object_del(o, "ModifyIndex");
	json_object_del(o, "Proxy");
	json_object_del(o, "Connect");
	if (!s->tagged_addresses)
		json_object_del(o, "TaggedAddresses");
	json_object_set_new(o, "Datacenter", json_string(env->cfg->datacenter));
	return o;
}

json_t *agent_api_check_json(const struct routes_env *env, const struct agent_state *st,
			     const struct agent_check *c)
{
	static const char *const types[] = {
	    [AGENT_CHECK_TTL] = "ttl",	   [AGENT_CHECK_HTTP] = "http",
	    [AGENT_CHECK_TCP] = "tcp",	   [AGENT_CHECK_SCRIPT] = "script",
	    [AGENT_CHECK_ALIAS] = "alias", [AGENT_CHECK_MAINT] = "maintenance",
	};
	struct agent_service *s = *c->service_id ? agent_service_find(st, c->service_id) : NULL;
	struct proto_check pc = {
	    .node = env->cfg->node_name,
	    .check_id = c->id,
	    .name = c->name,
	    .status = c->status,
	    .notes = c->notes,
	    .output = c->output,
	    .service_id = c->service_id,
	    .service_name = s ? s->svc.service : "",
	    .type = c->kind == AGENT_CHECK_MAINT ? "" : types[c->kind],
	};
	json_t *o;
	char buf[32];

	if (s)
		pc.service_tags = s->svc.tags;
	o = catalog_api_check_json(&pc);
	if (!o)
		return NULL;
	if (c->interval_ms) {
		snprintf(buf, sizeof(buf), "%llus", (unsigned long long)(c->interval_ms / 1000));
		json_object_set_new(o, "Interval", json_string(buf));
	}
	if (c->kind == AGENT_CHECK_HTTP || c->kind == AGENT_CHECK_TCP ||
	    c->kind == AGENT_CHECK_SCRIPT) {
		if (c->timeout_ms % 1000 == 0)
			snprintf(buf, sizeof(buf), "%llus",
				 (unsigned long long)(c->timeout_ms / 1000));
		else
			snprintf(buf, sizeof(buf), "%llums", (unsigned long long)c->timeout_ms);
		json_object_set_new(o, "Timeout", json_string(buf));
	}
	json_object_del(o, "CreateIndex");
	json_object_del(o, "ModifyIndex");
	return o;
}

/* ---- endpoints -------------------------------------------------------- */

static bool prefixed(const char *path, const char *prefix, const char **rest)
{
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0)
		return false;
	*rest = path + n;
	return true;
}

bool agent_api_owns(const char *path)
{
	const char *r;

	return prefixed(path, "/v1/agent/service/", &r) || !strcmp(path, "/v1/agent/services") ||
	       prefixed(path, "/v1/agent/check/", &r) || !strcmp(path, "/v1/agent/checks") ||
	       !strcmp(path, "/v1/agent/maintenance") ||
	       prefixed(path, "/v1/agent/health/service/", &r);
}

static int method_not_allowed(struct arena *a, const struct routes_req *req,
			      struct routes_action *out)
{
	return text(a, 405, arena_printf(a, "method %s not allowed", req->method), out);
}

/* /v1/agent/health/service/...: {AggregatedStatus, Service, Checks}. */
static json_t *health_entry(const struct routes_env *env, const struct agent_state *st,
			    const struct agent_service *s, const char *status)
{
	json_t *o = json_object(), *checks = json_array();

	if (!o || !checks) {
		json_decref(o);
		json_decref(checks);
		return NULL;
	}
	for (size_t i = 0; i < st->n_checks; i++) {
		const struct agent_check *c = st->checks[i];

		if (*c->service_id && strcmp(c->service_id, s->svc.id) != 0)
			continue;
		json_array_append_new(checks, agent_api_check_json(env, st, c));
	}
	json_object_set_new(o, "AggregatedStatus", json_string(status));
	json_object_set_new(o, "Service", service_json(env, s));
	json_object_set_new(o, "Checks", checks);
	return o;
}

static unsigned health_code(const char *status)
{
	if (!strcmp(status, "passing"))
		return 200;
	if (!strcmp(status, "warning"))
		return 429;
	return 503;
}

static int health_service(const struct routes_env *env, struct agent_state *st, const char *rest,
			  const struct query *q, struct arena *a, bool pretty,
			  struct routes_action *out)
{
	bool as_text = query_has(q, "format") && !strcmp(query_get(q, "format"), "text");
	const char *name, *worst = "passing";
	json_t *arr;
	size_t found = 0;

	if (prefixed(rest, "id/", &name)) {
		struct agent_service *s = agent_service_find(st, name);
		const char *status;

		if (!*name)
			return text(a, 400, "Missing serviceID", out);
		if (!s)
			return text(a, 404, arena_printf(a, "ServiceId %s not found", name), out);
		status = agent_service_health(st, s);
		if (as_text)
			return text(a, health_code(status), status, out);
		return json_out(a, health_code(status), health_entry(env, st, s, status), pretty,
				out);
	}
	if (!prefixed(rest, "name/", &name))
		return text(a, 404, "404 page not found", out);
	if (!*name)
		return text(a, 400, "Missing service Name", out);
	arr = json_array();
	if (!arr)
		return -ENOMEM;
	for (size_t i = 0; i < st->n_services; i++) {
		struct agent_service *s = st->services[i];
		const char *status;

		if (strcmp(s->svc.service, name) != 0)
			continue;
		found++;
		status = agent_service_health(st, s);
		if (health_code(status) > health_code(worst))
			worst = status;
		json_array_append_new(arr, health_entry(env, st, s, status));
	}
	if (!found) {
		json_decref(arr);
		if (as_text)
			return text(a, 404, "ServiceName not found", out);
		return json_out(a, 404, json_array(), pretty, out);
	}
	if (as_text) {
		json_decref(arr);
		return text(a, health_code(worst), worst, out);
	}
	return json_out(a, health_code(worst), arr, pretty, out);
}

static bool enable_param(const struct query *q, bool *out_enable)
{
	const char *v = query_get(q, "enable");

	if (!v)
		return false;
	if (!strcmp(v, "true"))
		*out_enable = true;
	else if (!strcmp(v, "false"))
		*out_enable = false;
	else
		return false;
	return true;
}

int agent_api_dispatch(const struct routes_env *env, const struct routes_req *req, const char *path,
		       const struct query *q, struct arena *a, struct routes_action *out)
{
	struct agent_state *st = env->agent;
	bool put = !strcmp(req->method, "PUT"), get = !strcmp(req->method, "GET");
	bool pretty = query_has(q, "pretty");
	const char *rest, *bad;
	json_t *body;

	out->respond = true;
	if (!st)
		return text(a, 500, "agent state is not available", out);

	if (!strcmp(path, "/v1/agent/services") || !strcmp(path, "/v1/agent/checks")) {
		bool svcs = path[10] == 's';
		json_t *o;

		if (!get)
			return method_not_allowed(a, req, out);
		o = json_object();
		if (!o)
			return -ENOMEM;
		if (svcs)
			for (size_t i = 0; i < st->n_services; i++)
				json_object_set_new(o, st->services[i]->svc.id,
						    service_json(env, st->services[i]));
		else
			for (size_t i = 0; i < st->n_checks; i++)
				json_object_set_new(o, st->checks[i]->id,
						    agent_api_check_json(env, st, st->checks[i]));
		if (query_get(q, "filter") && *query_get(q, "filter")) {
			struct filter *f;
			char ferr[256];
			int rc = filter_parse(query_get(q, "filter"), &f, ferr, sizeof(ferr));

			if (rc < 0) {
				json_decref(o);
				return rc == -ENOMEM ? rc
						     : text(a, 400, arena_strdup(a, ferr), out);
			}
			filter_object(f, o);
			filter_free(f);
		}
		return json_out(a, 200, o, pretty, out);
	}
	if (!strcmp(path, "/v1/agent/maintenance")) {
		bool enable;

		if (!put)
			return method_not_allowed(a, req, out);
		if (!query_has(q, "enable"))
			return text(a, 400, "Missing value for enable", out);
		if (!enable_param(q, &enable))
			return text(a, 400, "Invalid value for enable", out);
		if (agent_maintenance(st, NULL, enable, query_get(q, "reason"), env->now_ms) < 0)
			return -ENOMEM;
		return empty_ok(out);
	}
	if (prefixed(path, "/v1/agent/health/service/", &rest)) {
		if (!get)
			return method_not_allowed(a, req, out);
		return health_service(env, st, rest, q, a, pretty, out);
	}
	if (prefixed(path, "/v1/agent/service/", &rest)) {
		const char *id;

		if (!strcmp(rest, "register")) {
			if (!put)
				return method_not_allowed(a, req, out);
			bad = json_body_decode_object(req->body, req->body_len, a, &body);
			if (!bad) {
				bad = agent_api_register_service(
				    st, env, body, query_has(q, "replace-existing-checks"), a);
				json_decref(body);
			}
			if (bad && !strcmp(bad, "out of memory"))
				return -ENOMEM;
			return bad ? text(a, 400, bad, out) : empty_ok(out);
		}
		if (prefixed(rest, "deregister/", &id)) {
			/* PUT only: Consul 1.x answers python-consul 0.7.1's GET
			 * with 405, and so do we (shared/CLIENTS.md). */
			if (!put)
				return method_not_allowed(a, req, out);
			if (agent_service_remove(st, id) < 0)
				return text(a, 404,
					    arena_printf(a, "Unknown service ID \"%s\"", id), out);
			return empty_ok(out);
		}
		if (prefixed(rest, "maintenance/", &id)) {
			bool enable;
			int rc;

			if (!put)
				return method_not_allowed(a, req, out);
			if (!query_has(q, "enable"))
				return text(a, 400, "Missing value for enable", out);
			if (!enable_param(q, &enable))
				return text(a, 400, "Invalid value for enable", out);
			rc = agent_maintenance(st, id, enable, query_get(q, "reason"), env->now_ms);
			if (rc == -ENOENT)
				return text(a, 404,
					    arena_printf(a, "Unknown service ID \"%s\"", id), out);
			if (rc < 0)
				return -ENOMEM;
			return empty_ok(out);
		}
		/* GET /v1/agent/service/<id> */
		if (!get)
			return method_not_allowed(a, req, out);
		{
			struct agent_service *s = agent_service_find(st, rest);

			if (!s)
				return text(a, 404, arena_printf(a, "unknown service ID: %s", rest),
					    out);
			return json_out(a, 200, service_json(env, s), pretty, out);
		}
	}
	if (prefixed(path, "/v1/agent/check/", &rest)) {
		const char *id, *status = NULL;
		struct agent_check *c;
		/* PUT only, as Consul 1.x: GET (python-consul 0.7.1) gets 405. */
		if (!put)
			return method_not_allowed(a, req, out);
		if (!strcmp(rest, "register")) {
			bad = json_body_decode_object(req->body, req->body_len, a, &body);
			if (!bad) {
				bad = agent_api_register_check(st, env, body, NULL, NULL, NULL, a);
				json_decref(body);
			}
			if (bad && !strcmp(bad, "out of memory"))
				return -ENOMEM;
			return bad ? text(a, 400, bad, out) : empty_ok(out);
		}
		if (prefixed(rest, "deregister/", &id)) {
			if (agent_check_remove(st, id) < 0)
				return text(a, 404, arena_printf(a, "Unknown check ID \"%s\"", id),
					    out);
			return empty_ok(out);
		}
		if (prefixed(rest, "pass/", &id))
			status = "passing";
		else if (prefixed(rest, "warn/", &id))
			status = "warning";
		else if (prefixed(rest, "fail/", &id))
			status = "critical";
		if (status) {
			const char *note = query_get(q, "note");

			c = agent_check_find(st, id);
			if (!c)
				return text(a, 404, arena_printf(a, "Unknown check ID \"%s\"", id),
					    out);
			if (agent_check_ttl_update(st, c, status, note ? note : "", env->now_ms) <
			    0)
				return text(a, 500,
					    arena_printf(a,
							 "CheckID \"%s\" does not have "
							 "associated TTL",
							 id),
					    out);
			return empty_ok(out);
		}
		if (prefixed(rest, "update/", &id)) {
			const char *output;

			c = agent_check_find(st, id);
			if (!c)
				return text(a, 404, arena_printf(a, "Unknown check ID \"%s\"", id),
					    out);
			bad = json_body_decode_object(req->body, req->body_len, a, &body);
			if (bad)
				return text(a, 400, bad, out);
			status = jstring(body, "Status");
			output = jstring(body, "Output");
			if (!status || (strcmp(status, "passing") && strcmp(status, "warning") &&
					strcmp(status, "critical"))) {
				json_decref(body);
				return text(a, 400,
					    arena_printf(a, "Invalid check status: '%s'",
							 status ? status : ""),
					    out);
			}
			status = arena_strdup(a, status);
			output = output ? arena_strdup(a, output) : "";
			json_decref(body);
			if (agent_check_ttl_update(st, c, status, output, env->now_ms) < 0)
				return text(a, 500,
					    arena_printf(a,
							 "CheckID \"%s\" does not have "
							 "associated TTL",
							 id),
					    out);
			return empty_ok(out);
		}
		return text(a, 404, "404 page not found", out);
	}
	return text(a, 404, "404 page not found", out);
}
