/* Runs queries for the transports: parses each packet, answers at once or
 * asks raftd (CATALOG_NODE over rpc_call, stale reads allowed as in
 * Consul's DNS) and answers when the reply comes.
 *
 * With use_cache the views come from the local cache (dns_cache.h): a
 * query for a view held and followed by a blocking query is answered at
 * once with no RPC; a query for a new view waits for its first fetch;
 * while raftd does not answer, held views are served up to max_stale
 * after their last successful fetch, then SERVFAIL. A reply built from a
 * cached view is kept with it (per question: name, type, transport, UDP
 * size, EDNS, RD, instance rotation; rebuilt each wall second for the SOA
 * serial) and sent again to the next asker with the id and question
 * patched.
 *
 * Services: CATALOG_QUERY with the health-service view (8), the tag as
 * filter, passing=only_passing; instances with a critical check (service
 * or node) are left out, the rest shuffled for each answer.
 *
 * Names outside the domain, with recursors configured, are forwarded over
 * UDP to each recursor in turn (recursor_timeout_ms each) and the first
 * answer relayed; SERVFAIL when none answers. A truncated (TC) answer for
 * a TCP client is asked again over TCP from the same recursor (the
 * truncated one is relayed if that fails); UDP clients get it with TC and
 * retry over TCP. So are PTR questions for an address no node or service
 * has.
 *
 * Model: a transport hands over a packet with an opaque owner (the UDP
 * socket, a TCP connection), the peer address and a send callback. The
 * server keeps a pending entry (the parsed query, the peer) while the RPC
 * is in flight, and calls send exactly once per answered query, possibly
 * from a later loop iteration. A transport that goes away calls
 * dns_server_forget() so nothing is sent to it afterwards. */
#ifndef CAIRN_DNS_SERVER_H
#define CAIRN_DNS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "dns_answer.h"

struct rpc_client;
struct dns_server;

struct dns_peer {
	struct sockaddr_storage addr; /* where the query came from (UDP) */
	socklen_t len;		      /* 0 when unused (TCP) */
};

/* Sends one reply. wire is borrowed until the callback returns. */
typedef void (*dns_send_fn)(void *owner, const struct dns_peer *peer, const uint8_t *wire,
			    size_t len);

struct dns_server_cfg {
	struct dns_answer_cfg answer;		  /* strings borrowed; must outlive the server */
	bool allow_stale;			  /* CATALOG_NODE mode 2 (stale) instead of 0 */
	uint64_t max_stale_ms;			  /* with allow_stale */
	uint64_t rpc_timeout_ms;		  /* answer SERVFAIL after this */
	size_t max_pending;			  /* queries waiting for raftd at once */
	bool only_passing;			  /* services: passing instances only (else
						     passing and warning) */
	struct loop *loop;			  /* for forwarding (NULL: no recursors) */
	const struct sockaddr_storage *recursors; /* tried in turn, borrowed */
	const socklen_t *recursor_lens;
	size_t n_recursors;
	uint64_t recursor_timeout_ms; /* per recursor */
	/* the local answer cache (dns_cache.h); needs loop */
	bool use_cache;		    /* answer from cached views kept current by
				       blocking queries (else one RPC per query) */
	uint64_t cache_wait_ms;	    /* blocking query wait (0: 10 s; capped by
				       cache_max_age) */
	uint64_t cache_max_age_ms;  /* Consul's cache_max_age: 0, or the longest
				       interval between confirmations from raftd */
	uint64_t cache_idle_ms;	    /* drop views not asked for this long (0: 5 min) */
	size_t cache_max_entries;   /* 0: 4096 */
	uint64_t cache_retry_max_ms; /* back-off cap after failed fetches (0: 5 s) */
};

/* Parses a recursor address as Consul takes them ("192.0.2.1",
 * "192.0.2.1:5353", "2001:db8::1", "[2001:db8::1]:53"; port 53 when
 * none). Returns 0 or -EINVAL. */
int dns_recursor_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len);

/* rpc is borrowed (connected to raftd) and must outlive the server. NULL
 * when out of memory. */
struct dns_server *dns_server_new(struct rpc_client *rpc, const struct dns_server_cfg *cfg);
/* Cancels every pending query without answering. NULL is fine. */
void dns_server_free(struct dns_server *s);

/* Handles one query packet (borrowed). udp: limit the answer to the UDP
 * size rules. peer may be NULL. send may run before this returns. */
void dns_server_handle(struct dns_server *s, const uint8_t *pkt, size_t len, bool udp, void *owner,
		       const struct dns_peer *peer, dns_send_fn send);

/* Drops every pending query of owner: its send will not be called. */
void dns_server_forget(struct dns_server *s, void *owner);

/* Queries waiting for raftd, in total and for one owner. */
size_t dns_server_pending(const struct dns_server *s, const void *owner);

/* Counters, for tests and logs. */
struct dns_server_stats {
	uint64_t queries;      /* handled packets */
	uint64_t cache_hits;   /* answered from a fresh cached view */
	uint64_t cache_stale;  /* answered from a view past a failed fetch */
	uint64_t cache_waits;  /* parked until a view's fetch ended */
	uint64_t fetches;      /* RPCs sent to fill or follow cached views */
	uint64_t wire_reused;  /* replies sent as stored, id and question patched */
	size_t cache_entries;  /* views held now */
};
void dns_server_stats(const struct dns_server *s, struct dns_server_stats *out);

#endif
