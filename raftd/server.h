/* raftd's RPC service: the ROUTER endpoints, request handling, the
 * group-commit hook and parked blocking queries.
 *
 * Glue between the event loop and the replica: requests arrive through
 * rpc_server; reads are answered from a read transaction at once (or
 * parked in a watch_set when they block); writes are proposed to the
 * replica and kept until the before-sleep hook has committed the batch
 * (replica_flush), then answered with WRITE_REPLY. Changed keys wake the
 * parked queries that watch them; a single loop timer serves every
 * deadline. No HTTP here: apid maps replies to Consul's HTTP answers. */
#ifndef CAIRN_RAFTD_SERVER_H
#define CAIRN_RAFTD_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct loop;
struct server;

/* Opens the store in <data_dir>/raft, replays it, becomes leader of a new
 * term, registers the local node in the catalog (committed before this
 * returns), binds the RPC endpoints (config_ipc_endpoint(CONFIG_SOCK_RAFTD)
 * and tcp://<bind_addr>:<ports.server>) and hooks into the loop. cfg is
 * borrowed and must outlive the server. Returns 0 and *out, or a negative
 * code with a reason in err. */
int server_new(struct loop *l, void *zctx, const struct config *cfg, struct server **out, char *err,
	       size_t errlen);

/* Commits pending writes, answers every parked query with the current
 * state, closes the sockets and the store cleanly. NULL is fine. Call
 * after loop_run returned, before loop_free. */
void server_free(struct server *s);

/* After loop_run returned on a signal: a cluster leader starts handing
 * its leadership over; true means run the loop again until it is done. */
bool server_leave_begin(struct server *s);

/* True once the store failed (the loop was stopped): exit non-zero so the
 * supervisor restarts raftd, which then recovers from the log. */
bool server_failed(const struct server *s);

#endif
