/* The /v1/operator/autopilot endpoints (Consul's agent/operator_endpoint.go):
 *   GET /v1/operator/autopilot/configuration  the replicated configuration
 *   PUT /v1/operator/autopilot/configuration  replace it (?cas=<ModifyIndex>
 *                                             answers true/false; without
 *                                             cas, true)
 *   GET /v1/operator/autopilot/health         server health from the
 *                                             leader; 429 when unhealthy
 * Durations are Go's: shown as time.Duration prints them ("200ms"), read
 * as a duration string or a number of nanoseconds (api.ReadableDuration).
 * A PUT replaces every field: one left out becomes zero/false, as Consul
 * decodes it.
 *
 * Pure, like routes.c. */
#ifndef CAIRN_APID_AUTOPILOT_API_H
#define CAIRN_APID_AUTOPILOT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routes.h"

struct query;

/* Handles a request for one of the paths above: a response (400 with a
 * reason, 500 for another datacenter) or a raftd call. Returns 0 or
 * -ENOMEM. */
int autopilot_api_dispatch(const struct routes_env *env, const struct routes_req *req,
			   const char *path, const struct query *q, struct arena *a,
			   struct routes_action *out);

/* Renders raftd's reply (AUTOPILOT_CONFIG, WRITE_REPLY or
 * AUTOPILOT_HEALTH_REPLY; ERROR replies are handled by routes_finish).
 * Returns 0 or -ENOMEM. */
int autopilot_api_finish(const struct routes_env *env, const struct routes_call *call,
			 const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

/* Parses a Go duration ("200ms", "1m30s", "1.5h", "0") into ms (rounded
 * down). Returns 0, or -EINVAL for anything else (negative included). */
int autopilot_api_parse_duration(const char *s, uint64_t *out_ms);

/* Writes ms as Go's time.Duration prints it ("0s", "200ms", "10s",
 * "1m30s") into buf (NUL-terminated). */
void autopilot_api_format_duration(uint64_t ms, char *buf, size_t len);

#endif
