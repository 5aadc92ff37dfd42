/* The HTTP API's request handling: a parsed request in, either a finished
 * response or one RPC to make (and, with its reply, the response) out.
 *
 * Pure: no sockets, no clock, no MHD. http.c feeds requests and replies in
 * and moves bytes; everything a client can observe (paths, methods, query
 * parameters, status codes, headers, JSON bodies) is decided here, as
 * Consul's agent/http*.go and *_endpoint.go decide it.
 *
 * Memory: every string and body in the outputs lives in the arena passed
 * in (the request's arena), valid until that arena is reset. */
#ifndef CAIRN_APID_ROUTES_H
#define CAIRN_APID_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct agent_state;
struct arena;
struct catalog_api_cache;
struct config;
struct json_t;
struct query;

/* Non-blocking RPCs (writes, plain reads) give up after this long. */
#define ROUTES_RPC_TIMEOUT_MS 10000u
/* Blocking queries: Consul's default and longest wait. */
#define ROUTES_WAIT_DEFAULT_MS (5u * 60u * 1000u)
#define ROUTES_WAIT_MAX_MS (10u * 60u * 1000u)

/* What the agent knows that answers may show; owned by http.c. */
struct routes_env {
	const struct config *cfg; /* borrowed */
	uint64_t last_index;	  /* highest Raft index seen in any reply */
	bool known_leader;	  /* from the latest read reply */
	struct agent_state *agent; /* local services and checks (agent_api.c); NULL: none */
	uint64_t now_ms;	   /* loop clock at dispatch, for agent-local changes */
	struct catalog_api_cache *catalog_cache; /* last rendered views (catalog_api.h); may be NULL */
};

struct routes_req {
	const char *method;  /* "GET", as received */
	const char *target;  /* raw request target: path?query, undecoded */
	const uint8_t *body; /* NULL when empty */
	size_t body_len;     /* bytes kept in body */
	bool body_too_large; /* the body passed routes_body_limit() */
	uint64_t body_seen;  /* bytes the client sent (Content-Length) */
};

struct routes_hdr {
	const char *name;
	const char *value;
};

#define ROUTES_MAX_HDRS 8

struct routes_resp {
	unsigned status;	  /* HTTP status code */
	const char *content_type; /* NULL: no Content-Type */
	const char *body;	  /* may be NULL when body_len is 0 */
	size_t body_len;
	struct routes_hdr hdrs[ROUTES_MAX_HDRS];
	size_t n_hdrs;
};

enum routes_op {
	ROUTES_OP_NONE = 0,
	ROUTES_OP_KV_GET,  /* one key or ?recurse */
	ROUTES_OP_KV_KEYS, /* ?keys */
	ROUTES_OP_KV_PUT,
	ROUTES_OP_KV_DELETE,
	ROUTES_OP_STATUS_LEADER,
	ROUTES_OP_STATUS_PEERS,
	ROUTES_OP_AGENT_SELF,
	ROUTES_OP_AGENT_MEMBERS,
	ROUTES_OP_AGENT_METRICS, /* agent/metrics: gossipd's counters */
	ROUTES_OP_AGENT_GOSSIP, /* agent/join, agent/leave, agent/force-leave: gossipd */
	ROUTES_OP_EVENT_FIRE,	/* event/fire: gossipd */
	ROUTES_OP_EVENT_LIST,	/* event/list: gossipd, blocking */
	ROUTES_OP_KEYRING,	/* operator/keyring: gossipd */
	ROUTES_OP_CATALOG_WRITE, /* catalog_api.c: /v1/catalog/register, deregister */
	ROUTES_OP_CATALOG_QUERY, /* catalog_api.c: /v1/catalog/..., /v1/health/... */
	ROUTES_OP_RAFT_CONFIG,	 /* operator/raft/configuration */
	ROUTES_OP_RAFT_REMOVE,	 /* DELETE operator/raft/peer */
	ROUTES_OP_SESSION_WRITE, /* session_api.c: session create, destroy */
	ROUTES_OP_SESSION_QUERY, /* session_api.c: info, node, list, renew */
	ROUTES_OP_COORDINATE,	 /* coordinate_api.c: /v1/coordinate/ */
	ROUTES_OP_SNAPSHOT_SAVE,    /* snapshot_api.c: GET /v1/snapshot */
	ROUTES_OP_SNAPSHOT_RESTORE, /* snapshot_api.c: PUT /v1/snapshot */
	ROUTES_OP_TXN,		 /* txn_api.c: /v1/txn */
	ROUTES_OP_AUTOPILOT,	 /* autopilot_api.c: /v1/operator/autopilot/ */
};

enum routes_peer {
	ROUTES_PEER_RAFTD,
	ROUTES_PEER_GOSSIPD,
};

/* One RPC the request needs, and what rendering its reply needs. */
struct routes_call {
	enum routes_op op;
	enum routes_peer peer; /* which daemon to ask */
	struct proto_msg msg;  /* the request; strings in the arena */
	uint64_t timeout_ms;   /* client-side time-out for the call */
	bool raw;	       /* KV GET ?raw on a single key */
	bool pretty;	       /* ?pretty */
	const char *filter;    /* ?filter= (catalog_api.c views), NULL when none */
	bool want_result;      /* PUT/DELETE with cas: answer the outcome */
	bool has_prefix;       /* ?keys: the prefix is not empty */
	unsigned consistency;  /* 0 default, 1 consistent, 2 stale */
};

struct routes_action {
	bool respond; /* true: send resp now; false: make call */
	struct routes_resp resp;
	struct routes_call call;
};

/* The largest body the request may carry, from its method and raw
 * target: kv_max_value_size for PUT /v1/kv/..., http_max_body otherwise.
 * http.c stops accumulating past it and sets body_too_large. */
uint64_t routes_body_limit(const struct routes_env *env, const char *method, const char *target);

/* Routes req: matches the path, checks the method, parses and validates
 * the query and body, and fills out with a response (404, 405, 400, 413,
 * 500 for another datacenter ...) or the RPC to make. Returns 0, or
 * -ENOMEM (the caller then answers 500 itself). */
int routes_dispatch(const struct routes_env *env, const struct routes_req *req, struct arena *a,
		    struct routes_action *out);

/* Turns the outcome of call into the response. status is what the RPC
 * client reported: 0 with reply set (which may be an ERROR message), or a
 * negative code (-ETIMEDOUT, CAIRN_E_UNAVAILABLE ...) with reply NULL,
 * which becomes a 500 naming the daemon. Returns 0 or -ENOMEM. */
int routes_finish(const struct routes_env *env, const struct routes_call *call, int status,
		  const struct proto_msg *reply, struct arena *a, struct routes_resp *out);

/* A short text/plain response with the given status; for http.c's own
 * failures (out of memory, shutting down). Returns 0 or -ENOMEM. */
int routes_text(struct arena *a, unsigned status, const char *text, struct routes_resp *out);

/* Query options common to reads (Consul's parse()). */
struct routes_read_opts {
	unsigned mode;	       /* 0 default, 1 consistent, 2 stale */
	uint64_t max_stale_ms; /* 0: not given */
	uint64_t min_index;    /* 0: not blocking */
	uint64_t wait_ms;      /* effective wait when blocking */
	uint64_t timeout_ms;   /* RPC time-out */
};

/* Parses ?stale ?consistent ?max_stale ?wait ?index (no or zero wait on a
 * blocking read means the default, longer is cut to the maximum; the RPC
 * time-out covers the wait and its jitter). Returns NULL, or a text for a
 * 400 answer. */
const char *routes_parse_read_opts(struct arena *a, const struct query *q,
				   struct routes_read_opts *o);

/* Appends a header (name and value borrowed; both must outlive the
 * response). Returns 0, -ENOMEM for a NULL value (a failed arena_printf),
 * or -ENOSPC past ROUTES_MAX_HDRS. */
int routes_header_add(struct routes_resp *r, const char *name, const char *value);

/* A JSON response: j rendered compactly, or indented when pretty. Steals
 * j (NULL means out of memory). Returns 0 or -ENOMEM. */
int routes_json(struct arena *a, unsigned status, struct json_t *j, bool pretty,
		struct routes_resp *out);

/* The local member as the configuration describes it, with Consul's serf
 * tags; /v1/agent/self uses it when gossipd does not answer. Strings and
 * arrays live in the arena. Returns 0 or -ENOMEM. */
int routes_local_member(const struct config *cfg, struct arena *a, struct proto_member *out);

#endif
