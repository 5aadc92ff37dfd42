/* The replicated catalog's services and checks, and the catalog and health
 * read views, with Consul's semantics and per-view indexes.
 *
 * Commands (log payloads, applied by fsm_apply; never change a layout):
 *   [4, [id, node, address, dc, {tagged}, {meta}], skip_node_update,
 *      service|nil, [check ...]]                       catalog register
 *   [5, node, service_id|nil, check_id|nil]            catalog deregister
 * where service and check are the stored record layouts below with their
 * create/modify indexes set to 0.
 *
 * Tables (store.h): STORE_SERVICES "lcnode\0id" -> [node, id, service,
 * [tags], address, port, {meta}, tagged|nil, weight_passing,
 * weight_warning, enable_tag_override, kind|nil, create, modify];
 * STORE_CHECKS "lcnode\0check_id" -> [node, check_id, name, status, notes,
 * output, service_id, service_name, [service_tags], type, definition|nil,
 * create, modify]; STORE_SVC_NAMES "lcname\0lcnode\0id" -> empty (finds a
 * service's instances without a scan). STORE_INDEX "services", "checks"
 * and "svc:<lcname>" (Consul's per-service index: moved by any change to an
 * instance of the service, its checks, or its node's checks) beside
 * fsm.c's "nodes".
 *
 * Changes are reported in FSM_SPACE_CATALOG with the keys "nodes",
 * "services", "checks", "svc:<lcname>" and "catalog" (any change), so a
 * parked query watches the one key its view's index follows. */
#ifndef CAIRN_RAFTD_CATALOG_H
#define CAIRN_RAFTD_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fsm.h"
#include "proto.h"

struct arena;
struct mp_reader;
struct mp_writer;
struct store_txn;

/* Read views (the CATALOG_QUERY view field). */
enum catalog_view {
	CATALOG_VIEW_NODES = 1,		 /* /v1/catalog/nodes */
	CATALOG_VIEW_SERVICES = 2,	 /* /v1/catalog/services */
	CATALOG_VIEW_SERVICE = 3,	 /* /v1/catalog/service/<name> */
	CATALOG_VIEW_NODE = 4,		 /* /v1/catalog/node/<node> */
	CATALOG_VIEW_NODE_SERVICES = 5,	 /* /v1/catalog/node-services/<node> */
	CATALOG_VIEW_HEALTH_NODE = 6,	 /* /v1/health/node/<node> */
	CATALOG_VIEW_HEALTH_CHECKS = 7,	 /* /v1/health/checks/<service> */
	CATALOG_VIEW_HEALTH_SERVICE = 8, /* /v1/health/service/<service> */
	CATALOG_VIEW_HEALTH_STATE = 9,	 /* /v1/health/state/<state> */
};

/* Encodes a register command into w (reset first). node is required;
 * svc may be NULL; checks[0..n_checks). Strings borrowed. */
void catalog_cmd_register(struct mp_writer *w, const struct proto_node *node, bool skip_node_update,
			  const struct proto_service *svc, const struct proto_check *checks,
			  size_t n_checks);
/* Encodes a deregister command: the whole node when both ids are NULL,
 * else one service (with its checks) or one check. */
void catalog_cmd_deregister(struct mp_writer *w, const char *node, const char *service_id,
			    const char *check_id);

/* Applies a register (n = 5 items) or deregister (n = 4) whose op number
 * was already read from r. Consul's ensureRegistrationTxn / deleteNodeTxn
 * / deleteServiceTxn / deleteCheckTxn: a refused command (missing node
 * name or address, a check naming a service the node does not have, an
 * invalid status) changes nothing and sets out->code. Returns 0 or a
 * negative store error. */
int catalog_apply_register(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			   struct fsm_result *out, fsm_change_fn change, void *ctx);
int catalog_apply_deregister(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			     struct fsm_result *out, fsm_change_fn change, void *ctx);

/* Called by fsm.c after node (lower-cased key) was created or changed:
 * notifies the "nodes" and "catalog" watchers and moves the index of
 * every service on the node (their health views show the node). Returns
 * 0 or a store error. */
int catalog_node_changed(struct store_txn *txn, uint64_t index, const char *node,
			 fsm_change_fn change, void *ctx);

/* The check check_id (exact case) on node (any case) into *out, strings in
 * a. Returns 0, -ENOENT, -ENOMEM or a store error. */
int catalog_check_get(struct store_txn *txn, struct arena *a, const char *node,
		      const char *check_id, struct proto_check *out);

/* A view's answer. Everything lives in the caller's arena. */
struct catalog_answer {
	uint64_t index; /* X-Consul-Index of the view, never 0 */
	bool found;	/* node views: the node exists */
	struct proto_node *nodes;
	size_t n_nodes;
	struct proto_service *services;
	size_t n_services;
	struct proto_check *checks;
	size_t n_checks;
	const char *watch_key; /* FSM_SPACE_CATALOG key a blocking query parks on */
};

/* Evaluates q's view against the state in txn. Returns 0, CAIRN_E_BADREQ
 * for an unknown view or state, -ENOMEM or a store error. */
int catalog_query(struct store_txn *txn, struct arena *a, const struct proto_catalog_query *q,
		  struct catalog_answer *out);

#endif
