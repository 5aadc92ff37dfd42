/* The agent's local state: services and checks registered on this agent,
 * the check state machine, maintenance modes, and the bookkeeping that
 * anti-entropy needs to keep the catalog in step.
 *
 * Pure: no I/O and no clock (callers pass now_ms). The check runner
 * (agent.c) executes checks and reports results through
 * agent_check_result(); the HTTP handlers (agent_api.c) register and
 * query; agent.c persists and syncs. Every string in these structs is
 * malloc'd and owned by the state.
 *
 * A status change is synced to the catalog at once; a new output with the
 * same status waits up to AGENT_CHECK_UPDATE_MS (Consul's
 * check_update_interval), so thousands of checks with changing output do
 * not turn into a stream of Raft writes.
 *
 * Check statuses follow Consul's agent/checks StatusHandler: a passing or
 * warning result is applied once SuccessBeforePassing consecutive
 * successes were seen, a critical one once FailuresBeforeCritical
 * consecutive failures were (both default to applying at once). TTL checks
 * turn critical ("TTL expired") when not updated within their TTL. */
#ifndef CAIRN_APID_AGENT_STATE_H
#define CAIRN_APID_AGENT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"

enum agent_check_kind {
	AGENT_CHECK_TTL = 1,
	AGENT_CHECK_HTTP,
	AGENT_CHECK_TCP,
	AGENT_CHECK_SCRIPT,
	AGENT_CHECK_ALIAS,
	AGENT_CHECK_MAINT, /* a maintenance-mode marker: always critical */
};

/* Output is bounded, as Consul's check output buffer. */
#define AGENT_OUTPUT_MAX 4096
/* Consul's check_update_interval: how long a changed output alone (same
 * status) may wait before it is synced to the catalog. */
#define AGENT_CHECK_UPDATE_MS (5u * 60u * 1000u)

struct agent_check {
	char *id;	  /* CheckID, unique on the agent */
	char *name;	  /* Name */
	char *service_id; /* "" for a node check */
	char *notes;	  /* Notes */
	char *status;	  /* passing / warning / critical */
	char *output;	  /* last output, <= AGENT_OUTPUT_MAX bytes */
	enum agent_check_kind kind;
	uint64_t interval_ms;	      /* HTTP/TCP/script: between runs */
	uint64_t timeout_ms;	      /* HTTP/TCP/script: per run (default 10 s) */
	uint64_t ttl_ms;	      /* TTL: time allowed between updates */
	uint64_t deregister_after_ms; /* DeregisterCriticalServiceAfter; 0 = never */
	uint32_t success_before_passing;
	uint32_t failures_before_critical;
	char *http;	      /* HTTP: URL */
	char *method;	      /* HTTP: method (default GET) */
	char *body;	      /* HTTP: request body or NULL */
	json_t *header;	      /* HTTP: {"Name": ["v", ...]} or NULL */
	bool tls_skip_verify; /* HTTP: TLSSkipVerify */
	char *tcp;	      /* TCP: host:port */
	json_t *args;	      /* script: argv array */
	char *alias_service;  /* alias: the service ID mirrored */
	json_t *def;	      /* the definition as registered (persisted) */

	/* runtime */
	uint32_t successes, failures; /* consecutive, for the thresholds */
	uint64_t ttl_deadline_ms;     /* TTL: when it expires */
	uint64_t next_run_ms;	      /* runner: next start */
	uint64_t critical_since_ms;   /* 0 when not critical */
	uint64_t output_pending_ms;   /* output changed, not yet synced: since */
	bool running;		      /* the runner has a run in flight */
	uint64_t run_id;	      /* which run (checks.c) */
	uint64_t gen;		      /* bumped on every visible change */
};

struct agent_service {
	struct proto_service svc; /* node unused; strings owned */
	json_t *def;		  /* definition as registered, without checks */
	uint64_t gen;		  /* bumped on every change of it or its checks */
	uint64_t synced_gen;	  /* gen the catalog is known to hold */
	bool maintenance;	  /* service maintenance mode is on */
};

struct agent_state {
	struct agent_service **services;
	size_t n_services, cap_services;
	struct agent_check **checks;
	size_t n_checks, cap_checks;
	uint64_t gen;	   /* global change counter */
	uint64_t node_gen; /* bumped when node-level checks change */
	uint64_t node_synced_gen;
	char **removed_services; /* deregistered locally, to remove from the catalog */
	size_t n_removed_services, cap_removed_services;
	char **removed_checks; /* checks deregistered locally (not with their service) */
	size_t n_removed_checks, cap_removed_checks;
	bool dirty;	   /* a definition changed: persist now */
	bool status_dirty; /* only statuses/outputs changed: persist soon */
};

void agent_state_init(struct agent_state *st);
void agent_state_close(struct agent_state *st);

struct agent_service *agent_service_find(const struct agent_state *st, const char *id);
struct agent_check *agent_check_find(const struct agent_state *st, const char *id);

/* Adds or replaces service s (strings copied; def borrowed, a reference is
 * taken). Replacing keeps the service's checks unless replace_checks.
 * Returns 0 or -ENOMEM. */
int agent_service_put(struct agent_state *st, const struct proto_service *s, json_t *def,
		      bool replace_checks);
/* Removes a service and its checks. Returns 0 or -ENOENT. */
int agent_service_remove(struct agent_state *st, const char *id);

/* Adds or replaces check c (taken over: c must be heap-allocated with
 * agent_check_new and is owned by the state afterwards, even on error).
 * A replaced check keeps its status unless the new one sets one
 * (status_given). now_ms starts TTL timers. Returns 0, -ENOENT when
 * c->service_id names no local service, or -ENOMEM. */
int agent_check_put(struct agent_state *st, struct agent_check *c, bool status_given,
		    uint64_t now_ms);
/* Removes a check. Returns 0 or -ENOENT. */
int agent_check_remove(struct agent_state *st, const char *id);

/* A zeroed check with status "critical" and no strings; NULL on OOM. */
struct agent_check *agent_check_new(void);
void agent_check_free(struct agent_check *c);

/* Applies a result through the thresholds (see the header comment);
 * output is truncated to AGENT_OUTPUT_MAX. Returns true when the status or
 * output visibly changed. */
bool agent_check_result(struct agent_state *st, struct agent_check *c, const char *status,
			const char *output, uint64_t now_ms);
/* Syncs outputs that waited AGENT_CHECK_UPDATE_MS (marks their service
 * changed). Returns how many. */
size_t agent_check_flush_outputs(struct agent_state *st, uint64_t now_ms);

/* Sets a TTL check (pass/warn/fail/update): the status applies at once
 * and the TTL restarts. Returns 0, -EINVAL for a non-TTL check. */
int agent_check_ttl_update(struct agent_state *st, struct agent_check *c, const char *status,
			   const char *output, uint64_t now_ms);
/* Expires TTL checks whose deadline passed (status critical, output "TTL
 * expired"). Returns how many changed. */
size_t agent_check_ttl_expire(struct agent_state *st, uint64_t now_ms);
/* The earliest TTL deadline, or UINT64_MAX. */
uint64_t agent_check_next_ttl(const struct agent_state *st);

/* Services whose checks have been critical for longer than their
 * DeregisterCriticalServiceAfter: writes up to max IDs (borrowed until the
 * next change) into out. Returns the count. */
size_t agent_reap_candidates(const struct agent_state *st, uint64_t now_ms, const char **out,
			     size_t max);

/* Service (id given) or node (id NULL) maintenance mode on/off with an
 * optional reason. Returns 0, -ENOENT (no such service) or -ENOMEM. */
int agent_maintenance(struct agent_state *st, const char *service_id, bool enable,
		      const char *reason, uint64_t now_ms);

/* Consul's aggregated status of a service: the worst of its checks and
 * the node's ("passing" when none). Maintenance counts as critical. */
const char *agent_service_health(const struct agent_state *st, const struct agent_service *s);

/* Anti-entropy's decision after reading what the catalog holds for this
 * node (services and checks, borrowed): every service and check the agent
 * does not have is queued for removal (except the servers' "serfHealth"
 * check, and checks of services being removed anyway), and everything
 * local is marked unsynced so the next round pushes it again (an
 * unchanged registration is a no-op in the catalog). */
void agent_state_reconcile(struct agent_state *st, const struct proto_service *svcs, size_t n_svcs,
			   const struct proto_check *checks, size_t n_checks);

/* Consul's anti-entropy scaling (agent/ae scaleFactor): the full-sync
 * period base_ms, multiplied by ceil(log2(nodes) - log2(128)) + 1 beyond
 * 128 nodes, so that large clusters do not flood the servers. */
uint64_t agent_sync_interval_ms(uint64_t base_ms, uint64_t nodes);

/* Marks the service's (or, NULL, the node's) state changed. */
void agent_state_touch(struct agent_state *st, const char *service_id);

#endif
