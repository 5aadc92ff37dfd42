/* gossipd's local interface: the ROUTER answering MEMBERS and PING, and
 * the PUB socket carrying MEMBER_EVENT.
 *
 * Subscribers (raftd's leader, apid) connect to the PUB socket first, then
 * ask MEMBERS for a snapshot with its sequence, and apply only events with
 * a larger sequence (DESIGN.md "Local events"); so events published before
 * anyone subscribed are never needed. */
#ifndef CAIRN_GOSSIP_API_H
#define CAIRN_GOSSIP_API_H

#include <stddef.h>

#include "members.h"

struct loop;
struct gossip_api;

/* Binds the ROUTER on rpc_endpoint and the PUB on pub_endpoint. lan and
 * wan (NULL on clients: their WAN pool is empty) are borrowed and must
 * outlive the API. NULL on failure, with a reason in err. */
struct gossip_api *gossip_api_new(struct loop *l, void *zctx, const char *rpc_endpoint,
				  const char *pub_endpoint, const struct members *lan,
				  const struct members *wan, char *err, size_t errlen);
/* Closes both sockets. NULL is fine. */
void gossip_api_free(struct gossip_api *g);

/* Requests other than MEMBERS and PING (GOSSIP_JOIN, GOSSIP_LEAVE ...) go
 * to fn, which replies or keeps the request (rpc.h). Without fn they get
 * an error reply. */
struct rpc_req;
typedef int (*gossip_api_cmd_fn)(void *ctx, struct rpc_req *req);
void gossip_api_set_commands(struct gossip_api *g, gossip_api_cmd_fn fn, void *ctx);

/* Publishes MEMBER_EVENT {seq, kind, [m]}. Returns 0 or a negative code. */
int gossip_api_publish(struct gossip_api *g, uint64_t seq, enum member_event kind,
		       const struct member *m);

#endif
