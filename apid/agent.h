/* The agent's local state at run time: persistence in the data directory,
 * the check runner's tick, and anti-entropy with the catalog.
 *
 * Glue around agent_state.c (pure): restores <data_dir>/agent-local.json
 * on start (services and checks come back with their last status, so the
 * catalog never sees them vanish), writes it again after every change
 * (temporary file, fsync, rename), ticks the check runner and the TTL and
 * DeregisterCriticalServiceAfter clocks, and keeps the catalog in step:
 * every change is pushed at once (one CATALOG_WRITE per changed service,
 * with its checks), and a full sync every AGENT_FULL_SYNC_MS re-reads what
 * the catalog holds for this node, removes what the agent does not have
 * (except the servers' serfHealth check) and re-pushes everything (an
 * unchanged registration is a no-op in the state machine), so a server
 * restart or a lost write cannot leave the catalog stale. */
#ifndef CAIRN_APID_AGENT_H
#define CAIRN_APID_AGENT_H

#include <stddef.h>

struct agent;
struct agent_state;
struct config;
struct loop;
struct rpc_client;

/* Consul's anti-entropy base interval (scaled up for large clusters in
 * Consul; the cluster size is not known here yet). The environment
 * variable CAIRN_TEST_ANTI_ENTROPY_MS (a test hook) shortens it. */
#define AGENT_FULL_SYNC_MS (60u * 1000u)

/* Restores the local state and starts the tick. cfg and raftd are
 * borrowed. Returns NULL with a reason in err. */
struct agent *agent_new(struct loop *l, const struct config *cfg, struct rpc_client *raftd,
			char *err, size_t errlen);
/* Saves, stops the runner and frees. NULL is fine. */
void agent_free(struct agent *ag);

/* The local state the HTTP handlers use. */
struct agent_state *agent_local_state(struct agent *ag);

#endif
