/* GET and PUT /v1/snapshot: Consul's snapshot endpoint with Cairn's own
 * archive format (raftd/snapshot.h: it restores only into Cairn).
 *
 * GET answers the archive of the current state (from the leader, or with
 * ?stale from the local server) as application/octet-stream with
 * X-Consul-Index; PUT restores one through the Raft log, so every server
 * ends with the restored state. A corrupted archive is refused with 400.
 * Pure like routes.c (which calls in here). Memory: the request's arena. */
#ifndef CAIRN_APID_SNAPSHOT_API_H
#define CAIRN_APID_SNAPSHOT_API_H

#include "routes.h"

struct query;

/* Largest archive PUT /v1/snapshot accepts, bytes (raftd restores it as
 * one log entry). */
#define SNAPSHOT_API_MAX_BODY (32u * 1024u * 1024u)

/* Handles /v1/snapshot: fills out with a response (400, 500 for another
 * datacenter) or the call to raftd. Returns 0 or -ENOMEM. */
int snapshot_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			  const struct query *q, struct arena *a, struct routes_action *out);

/* Renders a successful SNAPSHOT_DATA (GET) or WRITE_REPLY (PUT) into out.
 * Returns 0 or -ENOMEM. */
int snapshot_api_finish(const struct routes_env *env, const struct routes_call *call,
			const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

#endif
