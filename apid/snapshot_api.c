/* /v1/snapshot: save and restore (see snapshot_api.h). */
#include "snapshot_api.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "config.h"
#include "query.h"

/* Snapshots of a large state take a while to build and to restore. */
#define SNAPSHOT_RPC_TIMEOUT_MS 60000u

int snapshot_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			  const struct query *q, struct arena *a, struct routes_action *out)
{
	struct routes_call *c = &out->call;
	const char *dc = query_get(q, "dc");

	if (dc && *dc && strcasecmp(dc, env->cfg->datacenter) != 0)
		return routes_text(a, 500, "No path to datacenter", &out->resp);
	out->respond = false;
	c->peer = ROUTES_PEER_RAFTD;
	c->timeout_ms = SNAPSHOT_RPC_TIMEOUT_MS;
	if (strcmp(req->method, "GET") == 0) {
		struct routes_read_opts o;
		const char *bad = routes_parse_read_opts(a, q, &o);

		if (bad) {
			out->respond = true;
			return routes_text(a, 400, bad, &out->resp);
		}
		c->op = ROUTES_OP_SNAPSHOT_SAVE;
		c->consistency = o.mode;
		c->msg = proto_msg_make(PROTO_SNAPSHOT_SAVE);
		c->msg.u.snapshot_save.dc = dc;
		c->msg.u.snapshot_save.mode = o.mode;
		return 0;
	}
	/* PUT */
	if (req->body_too_large) {
		out->respond = true;
		return routes_text(a,
				   413, "Request body too large, max size: 33554432 bytes.",
				   &out->resp);
	}
	if (!req->body || req->body_len == 0) {
		out->respond = true;
		return routes_text(a, 400, "Missing snapshot archive in the request body",
				   &out->resp);
	}
	c->op = ROUTES_OP_SNAPSHOT_RESTORE;
	c->msg = proto_msg_make(PROTO_SNAPSHOT_RESTORE);
	c->msg.u.snapshot_restore.dc = dc;
	c->msg.u.snapshot_restore.data.ptr = req->body;
	c->msg.u.snapshot_restore.data.len = req->body_len;
	return 0;
}

int snapshot_api_finish(const struct routes_env *env, const struct routes_call *call,
			const struct proto_msg *reply, struct arena *a, struct routes_resp *out)
{
	const struct proto_snapshot_data *d;
	char *copy;
	int rc;

	(void)env;
	memset(out, 0, sizeof(*out));
	if (call->op == ROUTES_OP_SNAPSHOT_RESTORE) {
		out->status = 200; /* Consul answers a restore with an empty body */
		return 0;
	}
	d = &reply->u.snapshot_data;
	out->status = 200;
	out->content_type = "application/octet-stream";
	if (d->data.len) {
		/* the reply is borrowed; the response outlives it */
		copy = arena_alloc(a, d->data.len);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, d->data.ptr, d->data.len);
		out->body = copy;
		out->body_len = d->data.len;
	}
	rc = routes_header_add(out, "X-Consul-Index",
			       arena_printf(a, "%" PRIu64, d->index ? d->index : 1));
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-KnownLeader",
				       d->known_leader ? "true" : "false");
	if (rc == 0)
		rc = routes_header_add(out, "X-Consul-LastContact",
				       arena_printf(a, "%" PRIu64, d->last_contact_ms));
	return rc;
}
