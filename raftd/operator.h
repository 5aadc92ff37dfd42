/* raftd's operator requests: the Raft configuration
 * (/v1/operator/raft/configuration) and server removal
 * (DELETE /v1/operator/raft/peer). In a cluster, cluster.c routes both to
 * the leader first. */
#ifndef CAIRN_RAFTD_OPERATOR_H
#define CAIRN_RAFTD_OPERATOR_H

#include "rpc.h"

struct replica;

/* Answers OPERATOR_RAFT_CONFIG at once; proposes OPERATOR_RAFT_REMOVE and
 * keeps the request (RPC_KEEP) until the change is applied, when the
 * replica's applied callback answers it with WRITE_REPLY. */
enum rpc_disposition operator_handle(struct replica *rp, struct rpc_req *req);

#endif
