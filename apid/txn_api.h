/* The /v1/txn endpoint (Consul's agent/txn_endpoint.go): the JSON body of
 * operations into one TXN request, and Consul's answer for its reply
 * (200 with Results, 409 with Errors).
 *
 * Pure like routes.c (which calls in here). Memory: the request's arena. */
#ifndef CAIRN_APID_TXN_API_H
#define CAIRN_APID_TXN_API_H

#include "routes.h"

struct query;

/* Consul's maxTxnOps. */
#define TXN_API_MAX_OPS 128

/* The body limit of PUT /v1/txn: txn_max_req_len, or kv_max_value_size
 * when that is larger (Consul keeps the larger for compatibility). */
uint64_t txn_api_body_limit(const struct config *cfg);

/* Handles PUT /v1/txn (the method was checked): 413 for a body over the
 * limit or more than TXN_API_MAX_OPS operations or a value over
 * kv_max_value_size, 400 for a body that is not an array of operations,
 * else the TXN call (with ?stale / ?consistent for a read-only one).
 * Returns 0 or -ENOMEM. */
int txn_api_dispatch(const struct routes_env *env, const struct routes_req *req,
		     const struct query *q, struct arena *a, struct routes_action *out);

/* Renders a TXN_REPLY: 200 {"Results": [...], "Errors": null} or 409
 * {"Results": null, "Errors": [{"OpIndex", "What"}]}, with X-Consul-Index
 * (and X-Consul-KnownLeader / LastContact for a read-only transaction).
 * Returns 0 or -ENOMEM. */
int txn_api_finish(const struct routes_call *call, const struct proto_txn_reply *r,
		   struct arena *a, struct routes_resp *out);

/* Decodes standard base64 (padding optional) into a, NUL-terminated.
 * Returns 0 with *out / *out_len, -EINVAL or -ENOMEM. */
int txn_api_base64_decode(const char *s, struct arena *a, uint8_t **out, size_t *out_len);

#endif
