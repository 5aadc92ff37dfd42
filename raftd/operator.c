/* raftd's operator requests: Raft configuration and peer removal. */
#include "operator.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "replica.h"
#include "store.h"

struct name_find {
	const char *id;
	char *out;
	size_t outlen;
};

/* Catalog nodes are [ID, Node, ...]: finds the node name of an ID. */
static int match_id(void *ctx, struct store_val key, struct store_val val)
{
	struct name_find *f = ctx;
	struct mp_reader r;
	const char *id, *node;
	size_t idlen, nodelen;

	(void)key;
	mp_reader_init(&r, val.ptr, val.len);
	if (mp_read_array(&r) < 2)
		return 0;
	id = mp_read_str(&r, &idlen);
	node = mp_read_str(&r, &nodelen);
	if (r.err || !id || !node || idlen != strlen(f->id) || memcmp(id, f->id, idlen) != 0)
		return 0;
	snprintf(f->out, f->outlen, "%.*s", (int)nodelen, node);
	return 1;
}

static void node_name(struct replica *rp, struct store_txn *txn, const char *id, char *out,
		      size_t outlen)
{
	struct name_find f = {id, out, outlen};

	out[0] = '\0';
	if (txn)
		(void)store_scan_prefix(txn, STORE_NODES, NULL, 0, match_id, &f);
	(void)rp;
}

static enum rpc_disposition configuration(struct replica *rp, struct rpc_req *req)
{
	const struct raft_config *cfg = replica_config_of(rp);
	struct proto_msg m = proto_msg_make(PROTO_OPERATOR_RAFT_CONFIG_REPLY);
	struct proto_raft_server *sv;
	struct store_txn *txn = NULL;
	const char *leader = replica_leader_id(rp);
	const char *self_addr[1];
	unsigned n = cfg->n ? cfg->n : 1;

	sv = arena_zalloc(&req->arena, n * sizeof(*sv));
	if (!sv) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	if (store_txn_begin(replica_store(rp), false, &txn) < 0)
		txn = NULL;
	if (cfg->n == 0) {
		/* A single server: itself, the only voter. */
		(void)replica_voters(rp, self_addr, 1);
		sv[0].id = leader;
		sv[0].address = self_addr[0];
		sv[0].leader = replica_is_leader(rp);
		sv[0].voter = true;
	}
	for (unsigned i = 0; i < cfg->n; i++) {
		sv[i].id = cfg->s[i].id;
		sv[i].address = cfg->s[i].address;
		sv[i].leader = strcmp(cfg->s[i].id, leader) == 0;
		sv[i].voter = cfg->s[i].voter;
	}
	for (unsigned i = 0; i < n; i++) {
		char name[256];
		node_name(rp, txn, sv[i].id ? sv[i].id : "", name, sizeof(name));
		sv[i].node = arena_strdup(&req->arena, name);
	}
	store_txn_abort(txn);
	m.u.operator_raft_config_reply.index =
	    replica_config_index(rp) ? replica_config_index(rp) : 1;
	m.u.operator_raft_config_reply.servers.v = sv;
	m.u.operator_raft_config_reply.servers.n = n;
	(void)rpc_reply(req, &m);
	return RPC_DONE;
}

static enum rpc_disposition remove_peer(struct replica *rp, struct rpc_req *req)
{
	const struct proto_operator_raft_remove *q = &req->msg.u.operator_raft_remove;
	const struct raft_config *cfg = replica_config_of(rp);
	const char *id = NULL;
	uint64_t index;
	int rc;

	for (unsigned i = 0; i < cfg->n && !id; i++) {
		if (q->id && *q->id && strcmp(q->id, cfg->s[i].id) == 0)
			id = cfg->s[i].id;
		else if ((!q->id || !*q->id) && q->address && *q->address &&
			 strcmp(q->address, cfg->s[i].address) == 0)
			id = cfg->s[i].id;
	}
	if (!id) {
		if (q->id && *q->id)
			rpc_reply_error(req, -ENOENT,
					"id \"%s\" was not found in the Raft configuration", q->id);
		else
			rpc_reply_error(req, -ENOENT,
					"address \"%s\" was not found in the Raft configuration",
					q->address ? q->address : "");
		return RPC_DONE;
	}
	rc = replica_remove_server(rp, id, req, &index);
	if (rc == -EBUSY) {
		rpc_reply_error(req, CAIRN_E_UNAVAILABLE,
				"a configuration change is already in progress");
		return RPC_DONE;
	}
	if (rc == -EINVAL) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "cannot remove the last server");
		return RPC_DONE;
	}
	if (rc < 0) {
		rpc_reply_error(req, rc, "cannot remove %s: %s", id, err_str(rc));
		return RPC_DONE;
	}
	return RPC_KEEP; /* answered by the applied callback */
}

enum rpc_disposition operator_handle(struct replica *rp, struct rpc_req *req)
{
	if (req->msg.type == PROTO_OPERATOR_RAFT_CONFIG)
		return configuration(rp, req);
	return remove_peer(rp, req);
}
