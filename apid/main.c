/* cairn-apid: the HTTP API (libmicrohttpd on client_addr:ports.http).
 * Only wiring: configuration, the loop, the RPC clients to raftd and
 * gossipd, the HTTP server, signals and readiness. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <zmq.h>

#include "agent.h"
#include "config.h"
#include "daemon.h"
#include "err.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "coordinate_api.h"
#include "rpc.h"
#include "server_proxy.h"

/* Every parked blocking query holds a socket: allow as many as the hard
 * limit lets us. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open-file limit: %s", err_str(-errno));
	}
}

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct loop *l = NULL;
	void *zctx = NULL;
	struct rpc_client *raftd = NULL, *gossipd = NULL;
	struct http_server *http = NULL;
	struct agent *agent = NULL;
	struct coordinate_sync *coord_sync = NULL;
	struct server_proxy *proxy = NULL;
	char err[512];
	char raftd_ep[512], gossipd_ep[512];
	int rc;

	if (daemon_config("cairn-apid", argc, argv, &cfg) < 0)
		return 2;
	if (cfg.ports.http <= 0) {
		log_info("HTTP API disabled (ports.http = %d)", cfg.ports.http);
		rc = 0;
		goto out;
	}
	raise_nofile();

	rc = daemon_loop(&l, &zctx);
	if (rc < 0)
		goto out;
	/* servers: the local raftd; client agents: a relay to a server */
	rc = server_proxy_endpoint(l, zctx, &cfg, &proxy, raftd_ep, sizeof(raftd_ep), err,
				   sizeof(err));
	if (rc < 0) {
		log_error("%s", err);
		goto out;
	}
	rc = config_ipc_endpoint(&cfg, CONFIG_SOCK_GOSSIPD, gossipd_ep, sizeof(gossipd_ep));
	if (rc < 0) {
		log_error("socket endpoints: %s", err_str(rc));
		goto out;
	}
	rc = -ENOMEM;
	raftd = rpc_client_new(l, zctx, raftd_ep);
	gossipd = rpc_client_new(l, zctx, gossipd_ep);
	if (!raftd || !gossipd) {
		log_error("cannot create RPC clients (%s, %s)", raftd_ep, gossipd_ep);
		goto out;
	}
	rc = -EADDRNOTAVAIL;
	http = http_server_new(l, &cfg, raftd, gossipd, err, sizeof(err));
	if (!http) {
		log_error("%s", err);
		goto out;
	}
	rc = CAIRN_E_CONFIG;
	agent = agent_new(l, &cfg, raftd, err, sizeof(err));
	if (!agent) {
		log_error("agent state: %s", err);
		goto out;
	}
	http_server_set_agent(http, agent_local_state(agent));
	coord_sync = coordinate_sync_new(l, &cfg, raftd, gossipd);
	if (!coord_sync) {
		log_error("out of memory");
		rc = -ENOMEM;
		goto out;
	}
	log_info("serving the HTTP API on %s port %d; state from %s, members from %s",
		 cfg.client_addr, cfg.ports.http, raftd_ep, gossipd_ep);
	daemon_notify_ready();
	rc = loop_run(l);
	daemon_notify_stopping();
	if (rc < 0)
		log_error("event loop: %s", err_str(rc));
out:
	/* the server first: it cancels its calls on the clients */
	http_server_free(http);
	agent_free(agent); /* before raftd's client: it cancels its sync calls */
	coordinate_sync_free(coord_sync); /* likewise */
	rpc_client_free(gossipd);
	rpc_client_free(raftd);
	server_proxy_free(proxy); /* after the clients connected to it */
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(l);
	config_close(&cfg);
	return rc < 0 ? 1 : 0;
}
