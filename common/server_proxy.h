/* Client agents' way to raftd: an in-process relay that sends each request
 * to a server of the datacenter (see servers.h for the choice).
 *
 * A client agent (server = false) runs no raftd. Its apid and dnsd still
 * talk to "raftd" through an rpc_client; on a client that client connects
 * to this relay's inproc ROUTER instead of the local ipc socket, and the
 * relay forwards every request over TCP to the chosen server's
 * ports.server socket (raftd serves the same handler there), then relays
 * the answer. The rest of the daemon does not know the difference.
 *
 * The servers come from gossipd's LAN member events (member_feed.h):
 * alive members with tag role "consul" in our datacenter, at
 * tcp://<addr>:<tag port>. Failures:
 *   - no server known: the request is answered with an ERROR
 *     CAIRN_E_NOSERVERS, "No known Consul servers" (Consul's text);
 *   - the request could not be sent (the server is down and the
 *     connection gone, or a new connection could not be made within
 *     SERVER_PROXY_CONNECT_MS): the server is reported failed and the
 *     request goes to another one; it never left, so this is safe for
 *     writes too;
 *   - the connection dropped with the request in flight: reads are sent
 *     once more to another server, writes get the error (they may have
 *     been applied; Consul does the same);
 *   - no answer in time: the server is reported failed, the caller gets
 *     the error. */
#ifndef CAIRN_SERVER_PROXY_H
#define CAIRN_SERVER_PROXY_H

#include <stddef.h>

struct config;
struct loop;
struct server_proxy;

/* How long a new connection to a server may take before the server counts
 * as failed. */
#define SERVER_PROXY_CONNECT_MS 2000u

/* Where the daemon's "raftd" rpc_client should connect. On a server (or
 * -dev), writes the local raftd ipc endpoint into buf and sets *out_proxy
 * to NULL. On a client agent, starts a relay on the loop (subscribing to
 * gossipd's member events through the local gossipd sockets) and writes
 * its inproc endpoint into buf; the caller frees *out_proxy with
 * server_proxy_free() after the rpc_clients connected to it. zctx must be
 * the context the rpc_client uses (inproc). Returns 0, or a negative code
 * with a reason in err. */
int server_proxy_endpoint(struct loop *l, void *zctx, const struct config *cfg,
			  struct server_proxy **out_proxy, char *buf, size_t len, char *err,
			  size_t errlen);

/* Stops the relay: pending requests are dropped unanswered. NULL is fine. */
void server_proxy_free(struct server_proxy *p);

/* Servers the relay knows (tests and logs). */
size_t server_proxy_known(const struct server_proxy *p);

#endif
