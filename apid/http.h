/* The HTTP API server: libmicrohttpd driven by the daemon's event loop.
 *
 * No thread per request. MHD runs in its external epoll mode: its epoll fd
 * sits in the loop's poll set, MHD_run is called when it is readable and
 * whenever MHD_get_timeout says a deadline passed, and the loop's poll
 * time-out is capped by MHD_get_timeout. A request that needs an RPC is
 * suspended (MHD_suspend_connection) while the call is in flight and
 * resumed when the reply or the time-out arrives, so thousands of parked
 * blocking queries cost one small struct and a socket each.
 *
 * Everything a client sees is decided by routes.c; this module only moves
 * bytes between MHD, the RPC clients and routes. On a server, plain KV GETs
 * may skip the RPC: kv_direct.h reads raftd's store when raftd's lease
 * page allows it, and routes renders the answer the same way. */
#ifndef CAIRN_APID_HTTP_H
#define CAIRN_APID_HTTP_H

#include <stddef.h>

struct config;
struct loop;
struct rpc_client;
struct http_server;

/* Starts listening on cfg->client_addr:cfg->ports.http (0 picks a free
 * port, for tests; see http_server_port) and registers with the loop. raftd and gossipd are
 * borrowed and must outlive the server (gossipd may be NULL: agent endpoints then answer as if it
 * were down). Returns NULL on failure with a reason in err. */
struct http_server *http_server_new(struct loop *l, const struct config *cfg,
				    struct rpc_client *raftd, struct rpc_client *gossipd, char *err,
				    size_t errlen);

/* Answers every parked request with 503, stops MHD and frees the server.
 * Call only after loop_run() has returned, and do not run the loop again:
 * loop.h cannot remove the before-sleep hook registered here. NULL is
 * fine. */
void http_server_free(struct http_server *s);

/* The TCP port the server listens on. */
int http_server_port(const struct http_server *s);

/* Gives the agent-local endpoints their state (agent.h); borrowed, must
 * outlive the server. Without it they answer 500. */
struct agent_state;
void http_server_set_agent(struct http_server *s, struct agent_state *st);

/* Requests suspended while their RPC is in flight (for logs and tests). */
size_t http_server_parked(const struct http_server *s);

#endif
