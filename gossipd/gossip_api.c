/* gossipd's local interface; see gossip_api.h. */
#include "gossip_api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "arena.h"
#include "err.h"
#include "log.h"
#include "proto.h"
#include "rpc.h"

struct gossip_api {
	struct rpc_server *rpc;
	void *pub;
	const struct members *lan;
	const struct members *wan;
	gossip_api_cmd_fn cmd;
	void *cmd_ctx;
};

void gossip_api_set_commands(struct gossip_api *g, gossip_api_cmd_fn fn, void *ctx)
{
	g->cmd = fn;
	g->cmd_ctx = ctx;
}

static void answer_members(struct gossip_api *g, struct rpc_req *req)
{
	struct proto_msg reply = proto_msg_make(PROTO_MEMBERS_REPLY);
	const struct members *t = req->msg.u.members.wan ? g->wan : g->lan;
	struct proto_members_reply *r = &reply.u.members_reply;
	int rc;

	if (t) {
		r->seq = t->seq;
		rc = members_to_proto(t, &req->arena, &r->members.v, &r->members.n);
		if (rc < 0) {
			(void)rpc_reply_error(req, rc, "out of memory");
			return;
		}
	}
	(void)rpc_reply(req, &reply); /* a gone caller is not our problem */
}

static enum rpc_disposition handle(void *ctx, struct rpc_req *req)
{
	struct gossip_api *g = ctx;
	struct proto_msg reply;

	switch (req->msg.type) {
	case PROTO_MEMBERS:
		answer_members(g, req);
		break;
	case PROTO_PING:
		reply = proto_msg_make(PROTO_PONG);
		reply.u.pong.sent_ms = req->msg.u.ping.sent_ms;
		(void)rpc_reply(req, &reply);
		break;
	default:
		if (g->cmd)
			return g->cmd(g->cmd_ctx, req) ? RPC_KEEP : RPC_DONE;
		log_debug("gossip: %s is not served here", proto_type_name(req->msg.type));
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "gossipd does not serve %s",
				      proto_type_name(req->msg.type));
		break;
	}
	return RPC_DONE;
}

struct gossip_api *gossip_api_new(struct loop *l, void *zctx, const char *rpc_endpoint,
				  const char *pub_endpoint, const struct members *lan,
				  const struct members *wan, char *err, size_t errlen)
{
	struct gossip_api *g = calloc(1, sizeof(*g));
	const char *endpoints[] = {rpc_endpoint, NULL};
	int zero = 0;

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	g->lan = lan;
	g->wan = wan;
	g->pub = zmq_socket(zctx, ZMQ_PUB);
	if (!g->pub) {
		snprintf(err, errlen, "pub socket: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	(void)zmq_setsockopt(g->pub, ZMQ_LINGER, &zero, sizeof(zero)); /* best effort */
	if (zmq_bind(g->pub, pub_endpoint) < 0) {
		snprintf(err, errlen, "bind %s: %s", pub_endpoint, zmq_strerror(zmq_errno()));
		goto fail;
	}
	g->rpc = rpc_server_new(l, zctx, endpoints, handle, g, err, errlen);
	if (!g->rpc)
		goto fail;
	return g;
fail:
	gossip_api_free(g);
	return NULL;
}

void gossip_api_free(struct gossip_api *g)
{
	if (!g)
		return;
	rpc_server_free(g->rpc);
	if (g->pub)
		zmq_close(g->pub);
	free(g);
}

int gossip_api_publish(struct gossip_api *g, uint64_t seq, enum member_event kind,
		       const struct member *m)
{
	struct proto_msg ev = proto_msg_make(PROTO_MEMBER_EVENT);
	struct proto_member rec;
	struct arena a;
	int rc;

	arena_init(&a, 0);
	rc = member_to_proto(m, &a, &rec);
	if (rc < 0)
		goto out;
	ev.u.member_event.seq = seq;
	ev.u.member_event.kind = (uint64_t)kind;
	ev.u.member_event.members.v = &rec;
	ev.u.member_event.members.n = 1;
	rc = rpc_publish(g->pub, &ev);
out:
	arena_close(&a);
	return rc;
}
