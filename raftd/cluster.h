/* raftd's multi-server glue: the peer transport, server discovery and
 * bootstrap, request routing to the leader, and the Raft timer.
 *
 * Transport: Raft messages travel as one-way RAFT_RPC requests on the
 * server port (ports.server): one DEALER per peer address sends them to
 * the peer's ROUTER (the same endpoint that serves requests); nobody
 * answers them. A peer that is down just loses messages, as Raft allows.
 *
 * Discovery: while this server has no configuration it sends RAFT_HELLO to
 * every -join / -retry-join address (host:port, or host meaning port
 * 8300) every 500 ms; both sides merge the servers they know. Once
 * exactly bootstrap_expect servers are known and none of them is
 * bootstrapped, every one of them bootstraps the same configuration (the
 * known servers sorted by id), durably, so it never happens twice. A
 * server that finds a bootstrapped cluster asks its leader (found through
 * the HELLO reply) to add it as a voter.
 *
 * Routing: writes and default/consistent reads reaching a follower are
 * forwarded to the leader and its answer relayed; `?stale` reads are
 * served locally. With no leader known (or, on the leader, no valid lease
 * for a read) a request waits up to 3 s for one, then gets ERROR
 * CAIRN_E_NOLEADER "No cluster leader". Each server registers its own
 * catalog node, with serfHealth passing, through the leader once one is
 * known (the leader's reconciliation then follows the LAN pool). */
#ifndef CAIRN_RAFTD_CLUSTER_H
#define CAIRN_RAFTD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc.h"

struct cluster;
struct config;
struct loop;
struct replica;

/* Re-runs a request through the server's handler (after a wait). */
typedef enum rpc_disposition (*cluster_dispatch_fn)(void *ctx, struct rpc_req *req);

/* True when cfg asks for a multi-server cluster (bootstrap_expect > 1,
 * or join addresses). */
bool cluster_wanted(const struct config *cfg);

/* Starts the glue for rp: a 20 ms Raft tick, discovery, routing. self is
 * this server's RPC address (host:port); cfg is borrowed and outlives the
 * cluster. Returns 0 and *out, or a negative code with a reason in err. */
int cluster_new(struct loop *l, void *zctx, const struct config *cfg, struct replica *rp,
		const char *self, cluster_dispatch_fn dispatch, void *ctx, struct cluster **out,
		char *err, size_t errlen);
/* A server of the LAN pool (gossip member with role "consul"): its RPC
 * address host:port joins the -join / -retry-join addresses that
 * discovery says hello to, so servers that only joined the same gossip
 * pool find each other for bootstrap_expect (Consul's maybeBootstrap over
 * serf members). Ignored once this server has a configuration, and with
 * bootstrap_expect 1 (that server bootstraps alone). NULL c is fine. */
void cluster_note_server(struct cluster *c, const char *addr);

/* Answers waiting requests with NOLEADER, closes sockets. NULL is fine. */
void cluster_free(struct cluster *c);

/* A leaving leader hands leadership to another voter first (TimeoutNow),
 * so the cluster does not wait out an election timeout. Call after
 * loop_run returned; when this returns true, run the loop again: it stops
 * once leadership moved or after 3 s. */
bool cluster_leave_begin(struct cluster *c);

/* Takes RAFT_RPC and RAFT_HELLO, and requests that must go to (or wait
 * for) the leader; sets *handled. When *handled is false the server
 * serves req itself. */
enum rpc_disposition cluster_handle(struct cluster *c, struct rpc_req *req, bool *handled);

#endif
