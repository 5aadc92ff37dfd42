/* cairn-gossipd: membership. For now it knows only its own member (LAN,
 * and WAN on servers), serves MEMBERS/PING and publishes its own join;
 * SWIM plugs into the member tables in a later issue. Only wiring here. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "err.h"
#include "gossip_api.h"
#include "log.h"
#include "loop.h"
#include "members.h"

int main(int argc, char **argv)
{
	struct config cfg = {0};
	struct members lan, wan;
	struct member self_lan = {0}, self_wan = {0};
	struct loop *l = NULL;
	void *zctx = NULL;
	struct gossip_api *api = NULL;
	enum member_event ev;
	char err[512], rpc_ep[512], pub_ep[512];
	int rc, level;

	members_init(&lan);
	members_init(&wan);
	log_init("cairn-gossipd", LOGL_INFO);
	rc = config_load(argc, argv, &cfg, err, sizeof(err));
	if (rc < 0) {
		log_error("config: %s", err);
		return 2;
	}
	level = log_level_parse(cfg.log_level ? cfg.log_level : "info");
	log_init("cairn-gossipd", level < 0 ? LOGL_INFO : (enum log_level)level);

	struct members_self self = {
	    .node_name = cfg.node_name,
	    .addr = cfg.advertise_addr,
	    .port = (uint16_t)cfg.ports.serf_lan,
	    .datacenter = cfg.datacenter,
	    .node_id = cfg.node_id,
	    .server = cfg.server,
	    .server_port = cfg.ports.server,
	    .bootstrap_expect = cfg.bootstrap_expect,
	    .build = CAIRN_VERSION,
	};
	rc = members_self_build(&self, false, &self_lan);
	if (rc == 0)
		rc = members_upsert(&lan, &self_lan, &ev);
	if (rc == 0 && cfg.server) {
		self.port = (uint16_t)cfg.ports.serf_wan;
		rc = members_self_build(&self, true, &self_wan);
		if (rc == 0)
			rc = members_upsert(&wan, &self_wan, NULL);
	}
	if (rc < 0) {
		log_error("local member: %s", err_str(rc));
		goto out;
	}

	rc = -ENOMEM;
	l = loop_new();
	zctx = zmq_ctx_new();
	if (!l || !zctx) {
		log_error("out of memory");
		goto out;
	}
	rc = loop_handle_signals(l);
	if (rc < 0) {
		log_error("signals: %s", err_str(rc));
		goto out;
	}
	rc = config_ipc_endpoint(&cfg, CONFIG_SOCK_GOSSIPD, rpc_ep, sizeof(rpc_ep));
	if (rc == 0)
		rc = config_ipc_endpoint(&cfg, CONFIG_SOCK_GOSSIP_EVENTS, pub_ep, sizeof(pub_ep));
	if (rc < 0) {
		log_error("endpoints: %s", err_str(rc));
		goto out;
	}
	api = gossip_api_new(l, zctx, rpc_ep, pub_ep, &lan, cfg.server ? &wan : NULL, err,
			     sizeof(err));
	if (!api) {
		log_error("%s", err);
		rc = -EADDRINUSE;
		goto out;
	}
	/* our own join, seq 1; subscribers that come later take the snapshot */
	rc = gossip_api_publish(api, lan.seq, ev, members_find(&lan, cfg.node_name));
	if (rc < 0)
		log_warn("publishing our join: %s", err_str(rc));
	log_info("member %s (%s:%d, %s) in %s; serving %s, events on %s", cfg.node_name,
		 cfg.advertise_addr, cfg.ports.serf_lan, cfg.server ? "server" : "client",
		 cfg.datacenter, rpc_ep, pub_ep);
	daemon_notify_ready();
	rc = loop_run(l);
	daemon_notify_stopping();
	if (rc < 0)
		log_error("event loop: %s", err_str(rc));
out:
	gossip_api_free(api);
	if (zctx)
		zmq_ctx_term(zctx);
	loop_free(l);
	member_free_fields(&self_lan);
	member_free_fields(&self_wan);
	members_close(&lan);
	members_close(&wan);
	config_close(&cfg);
	return rc < 0 ? 1 : 0;
}
