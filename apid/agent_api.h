/* The agent's local endpoints: /v1/agent/service/..., /v1/agent/services,
 * /v1/agent/check/..., /v1/agent/checks, /v1/agent/maintenance and
 * /v1/agent/health/service/..., answered from the agent's local state
 * (agent_state.h) without an RPC.
 *
 * Pure like routes.c: the state and the current time come in through
 * routes_env. Changes are visible in the state's generation counters,
 * which agent.c watches to persist and push to the catalog. */
#ifndef CAIRN_APID_AGENT_API_H
#define CAIRN_APID_AGENT_API_H

#include <jansson.h>
#include <stdbool.h>

#include "routes.h"

struct agent_check;
struct agent_state;
struct query;

/* True when path is one of the agent-local endpoints. */
bool agent_api_owns(const char *path);

/* Handles such a request into out (always a response). Returns 0 or
 * -ENOMEM. */
int agent_api_dispatch(const struct routes_env *env, const struct routes_req *req, const char *path,
		       const struct query *q, struct arena *a, struct routes_action *out);

/* Registers a service definition (the /v1/agent/service/register body,
 * also as persisted) with its Check/Checks into st. Returns NULL, or a
 * reason for a 400 (in a). */
const char *agent_api_register_service(struct agent_state *st, const struct routes_env *env,
				       const json_t *body, bool replace_checks, struct arena *a);

/* Registers a check definition (the /v1/agent/check/register body) into
 * st; service_id (may be NULL) applies when the body names none, and
 * default_id / default_name fill in a missing CheckID / Name. Returns NULL
 * or a reason for a 400. */
const char *agent_api_register_check(struct agent_state *st, const struct routes_env *env,
				     const json_t *body, const char *service_id,
				     const char *default_id, const char *default_name,
				     struct arena *a);

/* The /v1/agent/checks object of a check. New reference or NULL. */
json_t *agent_api_check_json(const struct routes_env *env, const struct agent_state *st,
			     const struct agent_check *c);

#endif
