/* cairn-raftd: the Raft log and replicated state, served over ZeroMQ RPC.
 * Only wiring: configuration, logging, the loop, the server (store, Raft,
 * state machine, RPC endpoints), signals and readiness. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "server.h"

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct loop *l = NULL;
	void *zctx = NULL;
	struct server *srv = NULL;
	char err[512];
	int rc;

	if (daemon_config("cairn-raftd", argc, argv, &cfg) < 0)
		return 2;
	if (!cfg.data_dir) {
		log_error("config: data_dir is required");
		rc = CAIRN_E_CONFIG;
		goto out;
	}

	rc = daemon_loop(&l, &zctx);
	if (rc < 0)
		goto out;
	rc = server_new(l, zctx, &cfg, &srv, err, sizeof(err));
	if (rc < 0) {
		log_error("%s", err);
		goto out;
	}
	log_info("serving raft state for %s (node %s, datacenter %s) on server port %d",
		 cfg.data_dir, cfg.node_name, cfg.datacenter, cfg.ports.server);
	daemon_notify_ready();
	rc = loop_run(l);
	daemon_notify_stopping();
	/* A leader hands over before leaving (Consul's leave_on_terminate
	 * does the same), so the cluster does not wait out a timeout. */
	if (rc == 0 && server_leave_begin(srv))
		rc = loop_run(l);
	if (rc < 0)
		log_error("event loop: %s", err_str(rc));
	if (server_failed(srv))
		rc = CAIRN_E_STORE;
out:
	server_free(srv); /* commits, answers parked queries, closes LMDB */
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(l);
	config_close(&cfg);
	return rc < 0 ? 1 : 0;
}
