/* The /v1/coordinate endpoints, and the agent's periodic coordinate
 * update to the servers.
 *
 * Endpoints (Consul's agent/coordinate_endpoint.go):
 *   GET /v1/coordinate/nodes          every node's coordinate (raftd, blocking)
 *   GET /v1/coordinate/node/<node>    one node's, 404 when none (blocking)
 *   PUT /v1/coordinate/update         {Node, Segment, Coord} stored (raftd)
 *   GET /v1/coordinate/datacenters    the WAN pool's server coordinates per
 *                                     datacenter (gossipd; AreaID "wan")
 * Coordinates travel as gossipd/vivaldi.h's wire form and are shown as
 * Consul's {"Vec": [8 numbers], "Error", "Adjustment", "Height"}.
 *
 * Sync: like Consul's agent (sendCoordinate), every agent reads its LAN
 * coordinate from gossipd and sends it to the servers as a COORD_UPDATE,
 * first a few seconds after start and then every COORDINATE_SYNC_MS plus
 * up to 25% jitter (Consul: sync_coordinate_interval_min 15 s, longer
 * only above 64 updates per second, i.e. ~1,000 nodes). The environment
 * variable CAIRN_TEST_COORD_SYNC_MS (a test hook) shortens the interval.
 *
 * The request side is pure like routes.c; the sync is loop glue. */
#ifndef CAIRN_APID_COORDINATE_API_H
#define CAIRN_APID_COORDINATE_API_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "routes.h"

struct config;
struct loop;
struct query;
struct rpc_client;

#define COORDINATE_SYNC_MS 15000u

/* Handles a request whose path starts with /v1/coordinate/: a response
 * (404, 405, 400 with a reason) or a call. Returns 0 or -ENOMEM. */
int coordinate_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			    const char *path, const struct query *q, struct arena *a,
			    struct routes_action *out);

/* Renders the reply to a call made for a /v1/coordinate/ request (a
 * COORD_QUERY_REPLY, WRITE_REPLY or COORD_GET_REPLY; ERROR replies are
 * handled by routes_finish). Returns 0 or -ENOMEM. */
int coordinate_api_finish(const struct routes_env *env, const struct routes_call *call,
			  const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

/* Consul's Coord object for a wire-form coordinate; NULL when buf is not
 * one or out of memory. New reference. */
json_t *coordinate_api_coord_json(const uint8_t *buf, size_t len);

/* Parses Consul's Coord object into the wire form (out: VIVALDI_WIRE_LEN
 * bytes). Returns NULL or a reason for a 400. */
const char *coordinate_api_coord_parse(const json_t *o, uint8_t *out);

/* The periodic sync. cfg, raftd and gossipd are borrowed and must
 * outlive it. NULL when out of memory. */
struct coordinate_sync;
struct coordinate_sync *coordinate_sync_new(struct loop *l, const struct config *cfg,
					    struct rpc_client *raftd, struct rpc_client *gossipd);
/* Stops the timer and cancels the calls in flight. NULL is fine. */
void coordinate_sync_free(struct coordinate_sync *s);

#endif
