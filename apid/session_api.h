/* The /v1/session endpoints: request parsing into one SESSION_WRITE or
 * SESSION_QUERY, and Consul's answers for the replies.
 *
 * Pure like routes.c (which calls in here), except that create draws the
 * new session's UUID from getrandom(2). Memory: the request's arena. */
#ifndef CAIRN_APID_SESSION_API_H
#define CAIRN_APID_SESSION_API_H

#include "routes.h"

struct query;

/* Handles a request whose path starts with /v1/session/: fills out with a
 * response (404, 405, 400 with a reason) or a call to raftd. Returns 0 or
 * -ENOMEM. */
int session_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			 const char *path, const struct query *q, struct arena *a,
			 struct routes_action *out);

/* Renders a successful WRITE_REPLY (create, destroy) or SESSION_REPLY for
 * call into out. Returns 0 or -ENOMEM. */
int session_api_finish(const struct routes_env *env, const struct routes_call *call,
		       const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

/* Validates a create body (NULL/empty: every default) and builds the
 * stored session JSON text (without ID and indexes) in a; node_default is
 * the agent's node. Returns NULL and *out_json, or a reason for a 400. */
const char *session_api_parse_create(const char *body, size_t len, const char *node_default,
				     struct arena *a, const char **out_json);

#endif
