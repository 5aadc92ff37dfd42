/* The /v1/operator/autopilot endpoints. */
#include "autopilot_api.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "json_body.h"
#include "config.h"
#include "query.h"

static int text(struct arena *a, unsigned status, const char *msg, struct routes_action *out)
{
	out->respond = true;
	return msg ? routes_text(a, status, msg, &out->resp) : -ENOMEM;
}

/* ---- durations ------------------------------------------------------------ */

static double unit_ns(const char *u, size_t n)
{
	static const struct {
		const char *name;
		double ns;
	} units[] = {{"ns", 1.0},	    {"us", 1e3},	{"\xc2\xb5s", 1e3},
		     {"\xce\xbcs", 1e3},    {"ms", 1e6},	{"s", 1e9},
		     {"m", 60e9},	    {"h", 3600e9}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == n && memcmp(units[i].name, u, n) == 0)
			return units[i].ns;
	return 0.0;
}

int autopilot_api_parse_duration(const char *s, uint64_t *out_ms)
{
	double total_ns = 0.0;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '+')
		s++;
	if (strcmp(s, "0") == 0) {
		*out_ms = 0;
		return 0;
	}
	if (!*s)
		return -EINVAL;
	while (*s) {
		const char *p = s, *u;
		double v = 0.0, scale = 1.0, ns;
		bool digits = false;

		while (*p >= '0' && *p <= '9') {
			v = v * 10 + (*p++ - '0');
			digits = true;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				scale /= 10;
				v += (*p++ - '0') * scale;
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		u = p;
		while (*p && !(*p >= '0' && *p <= '9') && *p != '.')
			p++;
		ns = unit_ns(u, (size_t)(p - u));
		if (ns == 0.0)
			return -EINVAL; /* missing or unknown unit */
		total_ns += v * ns;
		s = p;
	}
	if (total_ns / 1e6 > 1.8e19)
		return -EINVAL;
	*out_ms = (uint64_t)(total_ns / 1e6);
	return 0;
}

void autopilot_api_format_duration(uint64_t ms, char *buf, size_t len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, rest = ms % 1000;
	char frac[8] = "";
	int off = 0;

	if (len == 0)
		return;
	if (ms < 1000) {
		snprintf(buf, len, ms ? "%" PRIu64 "ms" : "0s", ms);
		return;
	}
	if (rest) {
		int fl = snprintf(frac, sizeof(frac), ".%03" PRIu64, rest);
		while (fl > 1 && frac[fl - 1] == '0')
			frac[--fl] = '\0';
	}
	if (h)
		off = snprintf(buf, len, "%" PRIu64 "h%" PRIu64 "m", h, m);
	else if (m)
		off = snprintf(buf, len, "%" PRIu64 "m", m);
	if (off < 0 || (size_t)off >= len)
		return;
	snprintf(buf + off, len - (size_t)off, "%" PRIu64 "%ss", s, frac);
}

/* A ReadableDuration field: a string, or a number of nanoseconds. */
static const char *duration_field(const json_t *body, const char *key, uint64_t *out_ms)
{
	const json_t *v = json_body_get(body, key);

	*out_ms = 0;
	if (!v || json_is_null(v))
		return NULL;
	if (json_is_string(v)) {
		if (autopilot_api_parse_duration(json_string_value(v), out_ms) < 0)
			return "invalid duration";
		return NULL;
	}
	if (json_is_number(v) && json_number_value(v) >= 0) {
		*out_ms = (uint64_t)(json_number_value(v) / 1e6);
		return NULL;
	}
	return "invalid duration";
}

static const char *uint_field(const json_t *body, const char *key, uint64_t *out)
{
	const json_t *v = json_body_get(body, key);

	*out = 0;
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return "invalid number";
	*out = (uint64_t)json_integer_value(v);
	return NULL;
}

/* ---- requests ------------------------------------------------------------- */

static int parse_set(const struct routes_req *req, const struct query *q, struct arena *a,
		     struct routes_action *out)
{
	struct proto_autopilot_set *s = &out->call.msg.u.autopilot_set;
	const char *cas = query_get(q, "cas"), *bad = NULL;
	const json_t *cleanup;
	json_t *body;

	out->call.msg = proto_msg_make(PROTO_AUTOPILOT_SET);
	if (cas) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(cas, &end, 10);
		if (!*cas || *end || errno || *cas == '-')
			return text(a, 400,
				    arena_printf(a, "Error parsing cas value: invalid syntax \"%s\"",
						 cas),
				    out);
		s->has_cas = true;
		s->cas = v;
		out->call.want_result = true;
	}
	if (!req->body || req->body_len == 0)
		return text(a, 400, "Error parsing autopilot config: EOF", out);
	body = json_loadb((const char *)req->body, req->body_len, 0, NULL);
	if (!json_is_object(body)) {
		json_decref(body);
		return text(a, 400, "Error parsing autopilot config: invalid JSON", out);
	}
	cleanup = json_body_get(body, "CleanupDeadServers");
	if (cleanup && !json_is_boolean(cleanup) && !json_is_null(cleanup))
		bad = "CleanupDeadServers must be a boolean";
	s->cleanup_dead_servers = json_is_true(cleanup);
	if (!bad)
		bad = duration_field(body, "LastContactThreshold", &s->last_contact_threshold_ms);
	if (!bad)
		bad = uint_field(body, "MaxTrailingLogs", &s->max_trailing_logs);
	if (!bad)
		bad = uint_field(body, "MinQuorum", &s->min_quorum);
	if (!bad)
		bad = duration_field(body, "ServerStabilizationTime",
				     &s->server_stabilization_time_ms);
	json_decref(body);
	if (bad)
		return text(a, 400, arena_printf(a, "Error parsing autopilot config: %s", bad),
			    out);
	return 0;
}

int autopilot_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			   const char *path, const struct query *q, struct arena *a,
			   struct routes_action *out)
{
	const char *dc = query_get(q, "dc");
	bool health = strcmp(path, "/v1/operator/autopilot/health") == 0;
	int rc;

	if (dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0)
		return text(a, 500, "No path to datacenter", out);
	if (health) {
		out->call.msg = proto_msg_make(PROTO_AUTOPILOT_HEALTH);
	} else if (strcmp(req->method, "PUT") == 0) {
		out->respond = false; /* text() sets it for a 400 */
		rc = parse_set(req, q, a, out);
		if (rc < 0 || out->respond)
			return rc;
	} else {
		struct routes_read_opts o;
		const char *bad = routes_parse_read_opts(a, q, &o);

		if (bad)
			return text(a, 400, bad, out);
		out->call.msg = proto_msg_make(PROTO_AUTOPILOT_GET);
		out->call.consistency = o.mode;
	}
	out->respond = false;
	out->call.op = ROUTES_OP_AUTOPILOT;
	out->call.peer = ROUTES_PEER_RAFTD;
	out->call.timeout_ms = ROUTES_RPC_TIMEOUT_MS;
	return 0;
}

/* ---- replies -------------------------------------------------------------- */

static json_t *config_json(const struct proto_autopilot_config *c)
{
	char lc[32], st[32];

	autopilot_api_format_duration(c->last_contact_threshold_ms, lc, sizeof(lc));
	autopilot_api_format_duration(c->server_stabilization_time_ms, st, sizeof(st));
	return json_pack("{s:b, s:s, s:I, s:I, s:s, s:s, s:b, s:s, s:I, s:I}", "CleanupDeadServers",
			 c->cleanup_dead_servers, "LastContactThreshold", lc, "MaxTrailingLogs",
			 (json_int_t)c->max_trailing_logs, "MinQuorum", (json_int_t)c->min_quorum,
			 "ServerStabilizationTime", st, "RedundancyZoneTag", "",
			 "DisableUpgradeMigration", 0, "UpgradeVersionTag", "", "CreateIndex",
			 (json_int_t)c->create_index, "ModifyIndex", (json_int_t)c->modify_index);
}

int autopilot_api_finish(const struct routes_env *env, const struct routes_call *call,
			 const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	(void)env;
	switch (call->msg.type) {
	case PROTO_AUTOPILOT_GET:
		if (reply->type != PROTO_AUTOPILOT_CONFIG)
			break;
		return routes_json(a, 200, config_json(&reply->u.autopilot_config), call->pretty,
				   out);
	case PROTO_AUTOPILOT_SET:
		if (reply->type != PROTO_WRITE_REPLY)
			break;
		/* Consul answers the cas outcome, and true otherwise */
		return routes_json(a, 200,
				   json_boolean(call->want_result ? reply->u.write_reply.ok : true),
				   call->pretty, out);
	case PROTO_AUTOPILOT_HEALTH: {
		const struct proto_autopilot_health_reply *h = &reply->u.autopilot_health_reply;
		json_t *servers, *o;

		if (reply->type != PROTO_AUTOPILOT_HEALTH_REPLY)
			break;
		servers = h->servers ? json_loads(h->servers, 0, NULL) : json_array();
		if (!json_is_array(servers)) {
			json_decref(servers);
			return routes_text(a, 500, "rpc error: cairn-raftd sent a malformed health reply",
					   out);
		}
		o = json_pack("{s:b, s:I, s:o}", "Healthy", h->healthy, "FailureTolerance",
			      (json_int_t)h->failure_tolerance, "Servers", servers);
		/* Consul: 429 Too Many Requests when the cluster is unhealthy */
		return routes_json(a, h->healthy ? 200 : 429, o, call->pretty, out);
	}
	default:
		break;
	}
	return routes_text(a, 500,
			   arena_printf(a, "rpc error: cairn-raftd sent an unexpected %s reply",
					proto_type_name(reply->type)),
			   out);
}
