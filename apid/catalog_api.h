/* The /v1/catalog and /v1/health endpoints: request parsing into one
 * CATALOG_WRITE or CATALOG_QUERY, and Consul's JSON shapes for the
 * replies.
 *
 * Pure, like routes.c (which calls in here): no sockets, no clock. JSON
 * request bodies are read through json_body.h (keys matched
 * case-insensitively, underscores ignored).
 * Memory: everything lives in the request's arena. */
#ifndef CAIRN_APID_CATALOG_API_H
#define CAIRN_APID_CATALOG_API_H

#include <jansson.h>

#include "routes.h"

struct query;

/* Handles a request whose path starts with /v1/catalog/ or /v1/health/:
 * fills out with a response (404, 405, 400 with a reason, the datacenter
 * list) or a call to raftd. Returns 0 or -ENOMEM. */
int catalog_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			 const char *path, const struct query *q, struct arena *a,
			 struct routes_action *out);

/* Renders a successful CATALOG_QUERY_REPLY or WRITE_REPLY for call into
 * out (status, JSON body, X-Consul-* headers). Returns 0 or -ENOMEM. */
int catalog_api_finish(const struct routes_env *env, const struct routes_call *call,
		       const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

/* Rendered answers of the per-service views (catalog/service and
 * health/service), kept by their query and X-Consul-Index: a view's
 * content is a function of its index, so when ten thousand parked
 * watchers wake on one change the JSON is built once, not ten thousand
 * times. Holds CATALOG_API_CACHE_SLOTS entries, replaced round-robin. */
#define CATALOG_API_CACHE_SLOTS 64
struct catalog_api_cache;
struct catalog_api_cache *catalog_api_cache_new(void);
void catalog_api_cache_free(struct catalog_api_cache *c);

/* Health-service replies: the end of instance s's check group starting at
 * k (see raftd's health view), and a node of the reply by name. */
size_t catalog_api_check_group(const struct proto_catalog_query_reply *r, size_t k,
			       const struct proto_service *s);
const struct proto_node *catalog_api_find_node(const struct proto_catalog_query_reply *r,
					       const char *name);

/* JSON objects as Consul shows them; new references, NULL on OOM. */
json_t *catalog_api_node_json(const struct proto_node *n);
json_t *catalog_api_check_json(const struct proto_check *c);
/* The agent/health "Service" object (ID, Service, Tags ...). */
json_t *catalog_api_service_json(const struct proto_service *s);

/* Parses a Consul service definition object (catalog Service or agent
 * service register body) into s, strings in a. Returns NULL or a reason
 * for a 400. */
const char *catalog_api_parse_service(const json_t *o, struct arena *a, struct proto_service *s);

#endif
