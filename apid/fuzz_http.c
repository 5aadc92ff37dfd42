/* Fuzz target for the HTTP API's request handling: any bytes as a request
 * (first line the method, second line the raw target, the rest the body)
 * through routes_dispatch(), and, when that asks for an RPC, routes_finish()
 * with a failure, an ERROR reply and a reply of the right type built from
 * the same bytes. Every answer must have a sane status and, when it says
 * application/json, a body jansson can parse.
 *
 * Built with -fsanitize=fuzzer it is a libFuzzer binary; linked with
 * tests/fuzz/replay_main.c it runs every file of the directories
 * (or files) named on the command line, so `meson test --suite fuzz`
 * replays the corpus on every build. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "arena.h"
#include "config.h"
#include "err.h"
#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_resp(const struct routes_resp *r)
{
	json_t *j;

	if (r->status < 100 || r->status > 599 || (r->body_len && !r->body) ||
	    r->n_hdrs > ROUTES_MAX_HDRS)
		abort();
	if (r->content_type && strcmp(r->content_type, "application/json") == 0) {
		j = json_loadb(r->body, r->body_len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
			       NULL);
		if (!j)
			abort(); /* we wrote JSON that does not parse */
		json_decref(j);
	}
}

/* A reply of the type the call expects, with strings from the input. */
static struct proto_msg typed_reply(const struct routes_call *c, const char *s, size_t n,
				    struct proto_kv_entry *e, struct proto_member *m,
				    const char **strs)
{
	struct proto_msg r = proto_msg_make(PROTO_NONE);

	strs[0] = s;
	strs[1] = "";
	switch (c->op) {
	case ROUTES_OP_KV_GET:
	case ROUTES_OP_KV_KEYS:
		r = proto_msg_make(PROTO_KV_GET_REPLY);
		e->key = s;
		e->flags = n % 3 == 0 ? UINT64_MAX : n;
		e->value.ptr = (const uint8_t *)s;
		e->value.len = n;
		e->session = n % 2 ? s : NULL;
		r.u.kv_get_reply.index = n;
		r.u.kv_get_reply.entries.v = e;
		r.u.kv_get_reply.entries.n = n % 4 ? 1 : 0;
		r.u.kv_get_reply.keys.v = strs;
		r.u.kv_get_reply.keys.n = n % 3;
		break;
	case ROUTES_OP_KV_PUT:
	case ROUTES_OP_KV_DELETE:
		r = proto_msg_make(PROTO_WRITE_REPLY);
		r.u.write_reply.ok = n % 2;
		break;
	case ROUTES_OP_STATUS_LEADER:
		r = proto_msg_make(PROTO_STATUS_LEADER_REPLY);
		r.u.status_leader_reply.leader = s;
		break;
	case ROUTES_OP_STATUS_PEERS:
		r = proto_msg_make(PROTO_STATUS_PEERS_REPLY);
		r.u.status_peers_reply.peers.v = strs;
		r.u.status_peers_reply.peers.n = 2;
		break;
	case ROUTES_OP_AGENT_SELF:
	case ROUTES_OP_AGENT_MEMBERS:
		r = proto_msg_make(PROTO_MEMBERS_REPLY);
		m->name = n % 2 ? "fuzz" : s;
		m->addr = s;
		m->tags.keys = strs;
		m->tags.vals = strs;
		m->tags.n = 1;
		r.u.members_reply.members.v = m;
		r.u.members_reply.members.n = 1;
		break;
	case ROUTES_OP_AGENT_METRICS:
		r = proto_msg_make(PROTO_GOSSIP_STATS_REPLY);
		r.u.gossip_stats_reply.timestamp = s;
		r.u.gossip_stats_reply.counters.keys = strs;
		r.u.gossip_stats_reply.counters.vals = strs;
		r.u.gossip_stats_reply.counters.n = 2;
		break;
	case ROUTES_OP_AGENT_GOSSIP:
		r = proto_msg_make(n % 2 ? PROTO_GOSSIP_DONE : PROTO_GOSSIP_JOIN_REPLY);
		break;
	case ROUTES_OP_EVENT_FIRE:
		r = proto_msg_make(PROTO_EVENT_FIRE_REPLY);
		break;
	case ROUTES_OP_KEYRING:
		r = proto_msg_make(PROTO_KEYRING_REPLY);
		r.u.keyring_reply.num_nodes = n;
		break;
	case ROUTES_OP_EVENT_LIST:
		r = proto_msg_make(PROTO_EVENT_LIST_REPLY);
		r.u.event_list_reply.index = n;
		break;
	case ROUTES_OP_CATALOG_WRITE:
		r = proto_msg_make(PROTO_WRITE_REPLY);
		r.u.write_reply.ok = true;
		break;
	case ROUTES_OP_AUTOPILOT:
		r = proto_msg_make(c->msg.type == PROTO_AUTOPILOT_SET	    ? PROTO_WRITE_REPLY
				    : c->msg.type == PROTO_AUTOPILOT_GET ? PROTO_AUTOPILOT_CONFIG
									 : PROTO_AUTOPILOT_HEALTH_REPLY);
		if (r.type == PROTO_AUTOPILOT_HEALTH_REPLY) {
			r.u.autopilot_health_reply.healthy = n % 2;
			r.u.autopilot_health_reply.servers = n % 3 ? s : "[]";
		} else if (r.type == PROTO_AUTOPILOT_CONFIG) {
			r.u.autopilot_config.last_contact_threshold_ms = n * 997;
			r.u.autopilot_config.modify_index = n;
		} else {
			r.u.write_reply.ok = n % 2;
		}
		break;
	case ROUTES_OP_COORDINATE:
		r = proto_msg_make(c->msg.type == PROTO_COORD_UPDATE  ? PROTO_WRITE_REPLY
				    : c->msg.type == PROTO_COORD_QUERY ? PROTO_COORD_QUERY_REPLY
								       : PROTO_COORD_GET_REPLY);
		if (r.type == PROTO_COORD_QUERY_REPLY)
			r.u.coord_query_reply.index = n;
		break;
	case ROUTES_OP_CATALOG_QUERY: {
		static struct proto_node node;
		static struct proto_service svc;
		static struct proto_check chk;

		node = (struct proto_node){.node = s, .address = s};
		svc = (struct proto_service){.node = s, .id = s, .service = s,
					     .tagged_addresses = s};
		chk = (struct proto_check){.node = s, .check_id = s, .status = s,
					   .service_id = n % 2 ? s : "", .definition = s};
		r = proto_msg_make(PROTO_CATALOG_QUERY_REPLY);
		r.u.catalog_query_reply.index = n;
		r.u.catalog_query_reply.found = n % 2;
		r.u.catalog_query_reply.nodes.v = &node;
		r.u.catalog_query_reply.nodes.n = n % 3 ? 1 : 0;
		r.u.catalog_query_reply.services.v = &svc;
		r.u.catalog_query_reply.services.n = n % 5 ? 1 : 0;
		r.u.catalog_query_reply.checks.v = &chk;
		r.u.catalog_query_reply.checks.n = n % 7 ? 1 : 0;
		break;
	}
	case ROUTES_OP_RAFT_CONFIG: {
		static struct proto_raft_server sv[2];

		sv[0] = (struct proto_raft_server){
		    .id = s, .node = s, .address = s, .leader = n % 2, .voter = true};
		sv[1] = (struct proto_raft_server){.id = "", .node = NULL, .address = s};
		r = proto_msg_make(PROTO_OPERATOR_RAFT_CONFIG_REPLY);
		r.u.operator_raft_config_reply.index = n;
		r.u.operator_raft_config_reply.servers.v = sv;
		r.u.operator_raft_config_reply.servers.n = n % 3;
		break;
	}
	case ROUTES_OP_SNAPSHOT_SAVE:
		r = proto_msg_make(PROTO_SNAPSHOT_DATA);
		r.u.snapshot_data.index = n;
		r.u.snapshot_data.data.ptr = (const uint8_t *)s;
		r.u.snapshot_data.data.len = n;
		break;
	case ROUTES_OP_RAFT_REMOVE:
	case ROUTES_OP_SESSION_WRITE:
	case ROUTES_OP_SNAPSHOT_RESTORE:
		r = proto_msg_make(PROTO_WRITE_REPLY);
		r.u.write_reply.ok = true;
		break;
	case ROUTES_OP_SESSION_QUERY: {
		static const char *sess[2];

		sess[0] = s;
		sess[1] = "{\"ID\":\"x\",\"Node\":\"n\",\"CreateIndex\":1}";
		r = proto_msg_make(PROTO_SESSION_REPLY);
		r.u.session_reply.index = n;
		r.u.session_reply.sessions.v = sess;
		r.u.session_reply.sessions.n = n % 3;
		break;
	}
	case ROUTES_OP_TXN: {
		static struct proto_txn_result res[2];
		static struct proto_txn_error terr;

		*e = (struct proto_kv_entry){.key = s, .value = {(const uint8_t *)s, n}};
		res[0] = (struct proto_txn_result){.kv = {e, 1}};
		res[1] = (struct proto_txn_result){0};
		terr = (struct proto_txn_error){.op_index = n, .what = s};
		r = proto_msg_make(PROTO_TXN_REPLY);
		r.u.txn_reply.index = n;
		r.u.txn_reply.results.v = res;
		r.u.txn_reply.results.n = n % 3;
		r.u.txn_reply.errors.v = &terr;
		r.u.txn_reply.errors.n = n % 2;
		break;
	}
	case ROUTES_OP_NONE:
		break;
	}
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg = {0};
	struct routes_env env = {0};
	struct routes_req req = {0};
	struct routes_action act;
	struct routes_resp resp;
	struct proto_msg reply;
	struct proto_kv_entry e = {0};
	struct proto_member m = {0};
	const char *strs[2];
	struct arena a;
	char *copy, *method, *target, *nl;

	cfg.datacenter = "dc1";
	cfg.node_name = "fuzz";
	cfg.node_id = "11111111-2222-3333-4444-555555555555";
	cfg.kv_max_value_size = 64;
	cfg.http_max_body = 128;
	env.cfg = &cfg;
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	method = copy;
	nl = memchr(copy, '\n', size);
	target = nl ? nl + 1 : copy + size;
	if (nl)
		*nl = '\0';
	nl = memchr(target, '\n', (size_t)(copy + size - target));
	if (nl) {
		*nl = '\0';
		req.body = (const uint8_t *)(nl + 1);
		req.body_len = (size_t)(copy + size - (nl + 1));
	}
	req.method = method;
	req.target = target;
	req.body_seen = req.body_len;
	if (req.body_len > routes_body_limit(&env, method, target)) {
		req.body_too_large = true;
		req.body = NULL;
		req.body_len = 0;
	}
	/* strings handed to routes are C strings: stop at the first NUL */
	arena_init(&a, 0);
	if (routes_dispatch(&env, &req, &a, &act) == 0) {
		if (act.respond) {
			check_resp(&act.resp);
		} else {
			static const int fails[] = {CAIRN_E_UNAVAILABLE, -ETIMEDOUT, CAIRN_E_PROTO};
			const char *s = target;
			size_t n = strlen(s);

			for (size_t i = 0; i < 3; i++)
				if (routes_finish(&env, &act.call, fails[i], NULL, &a, &resp) == 0)
					check_resp(&resp);
			reply = proto_msg_make(PROTO_ERROR);
			reply.u.error.code = -(int64_t)(n % 1100);
			reply.u.error.message = s;
			if (routes_finish(&env, &act.call, 0, &reply, &a, &resp) == 0)
				check_resp(&resp);
			reply = typed_reply(&act.call, s, n, &e, &m, strs);
			if (routes_finish(&env, &act.call, 0, &reply, &a, &resp) == 0)
				check_resp(&resp);
		}
	}
	arena_close(&a);
	free(copy);
	return 0;
}
