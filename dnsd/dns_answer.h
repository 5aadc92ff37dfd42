/* Builds DNS replies from parsed queries and lookup results (Knot's
 * "layer": packet in, packet out; the transports only move bytes).
 *
 * Pure: no sockets, no clock. A query goes through two steps:
 *
 *   dns_query_parse()  wire -> struct dns_query, and a decision: drop it,
 *                      answer at once, or look a node up first;
 *   dns_answer_build() struct dns_query (+ the lookup result) -> wire.
 *
 * Node answers: A or AAAA with the node's address (a CNAME when it is a
 * host name), and the node's meta as TXT records ("key=value", RFC 1464
 * escaping; keys starting "rfc1035-" give the bare value) in the answer
 * for TXT and ANY questions and in the additional section otherwise.
 *
 * Behaviour follows Consul's DNS interface: answers inside the domain are
 * authoritative (aa); unknown names get NXDOMAIN with the domain's SOA in
 * the authority section; a known name without records of the asked type
 * gets NOERROR/NODATA with the SOA; names outside the domain are REFUSED
 * (recursors come later); UDP answers fit 512 bytes or the EDNS0 size
 * (RFC 6891 6.2.5) and set TC when records had to be left out (RFC 2181
 * 9). Wire format is ldns's. */
#ifndef CAIRN_DNS_ANSWER_H
#define CAIRN_DNS_ANSWER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ldns/ldns.h>

#include "dns_name.h"

/* Plain UDP payload limit without EDNS0 (RFC 1035 4.2.1). */
#define DNS_UDP_MIN 512
/* Largest EDNS0 payload we advertise and honour. */
#define DNS_UDP_MAX 4096

/* One dns_config.service_ttl entry: a service name, or a prefix ending in
 * '*' ("*" alone matches every service). */
struct dns_ttl_rule {
	const char *pattern; /* lower-case */
	uint32_t ttl_s;
};

struct dns_answer_cfg {
	const char *domain;			 /* "consul." */
	const char *alt_domain;			 /* NULL when unset */
	uint32_t node_ttl_s;			 /* TTL of node records */
	uint32_t soa_min_ttl_s;			 /* SOA minimum and the SOA's own TTL */
	bool enable_truncate;			 /* set TC when a UDP answer was cut */
	bool node_meta_txt;			 /* node meta as TXT in the additional section of
						    A/AAAA answers (Consul's
						    enable_additional_node_meta_txt, default on) */
	const char *datacenter;			 /* local datacenter, for SRV targets ("dc1") */
	uint32_t service_ttl_s;			 /* TTL of service records without a rule */
	const struct dns_ttl_rule *service_ttls; /* dns_config.service_ttl */
	size_t n_service_ttls;
	bool recurse;		   /* recursors configured: names outside the domain (and
				      PTR names of no node) are forwarded, not REFUSED */
	uint32_t udp_answer_limit; /* service answers over UDP (0: no limit) */
	uint32_t a_record_limit;   /* service answers everywhere (0: no limit) */
};

enum dns_action {
	DNS_ACT_DROP = 0,    /* send nothing (no readable header, or a response) */
	DNS_ACT_REPLY = 1,   /* call dns_answer_build() with no lookup */
	DNS_ACT_NODE = 2,    /* look up node q->name.target in datacenter q->name.dc
				("" = local), then dns_answer_build() */
	DNS_ACT_SERVICE = 3, /* look up the healthy instances of service
				q->name.target (tag q->name.tag, "" any) in
				q->name.dc, then dns_answer_build() */
	DNS_ACT_PTR = 4,     /* PTR question for q->ptr_addr (in-addr.arpa or
				ip6.arpa): find the nodes with that address,
				then dns_answer_build() */
	DNS_ACT_RECURSE = 5, /* a name outside the domain with cfg->recurse:
				forward the query to the recursors */
};

struct dns_query {
	ldns_pkt *pkt;	      /* the parsed query; NULL when it did not parse */
	uint16_t id;	      /* from the header */
	uint8_t opcode;	      /* from the header */
	bool rd;	      /* recursion desired, echoed */
	ldns_pkt_rcode rcode; /* error decided while parsing, or NOERROR */
	bool edns;	      /* the query carried an OPT record */
	bool badvers;	      /* EDNS version we do not speak (RFC 6891 6.1.3) */
	size_t udp_limit;     /* bytes a UDP answer may take */
	ldns_rr_type qtype;   /* the question's type */
	bool name_ok;	      /* name parsed (false: invalid name in the domain) */
	struct dns_name name; /* what the question's name means */
	bool ptr;	      /* a PTR question for a reverse name */
	char ptr_addr[46];    /* with ptr: the address it names, textual */
};

/* Result of a node lookup, for dns_answer_build(). */
struct dns_node_result {
	int status;		      /* 0 found; CAIRN_E_NOTFOUND unknown node; other
					 negative codes: the lookup failed (SERVFAIL) */
	const char *address;	      /* with status 0: IPv4/IPv6 literal or host name */
	const char *const *meta_keys; /* node meta, n_meta pairs (may be 0) */
	const char *const *meta_vals;
	size_t n_meta;
};

/* One healthy service instance, for dns_answer_build(). */
struct dns_instance {
	const char *node;	  /* node name (SRV target <node>.node.<dc>.<domain>) */
	const char *node_address; /* the node's address */
	const char *address;	  /* the service's own address, or "" / NULL */
	uint16_t port;		  /* SRV port */
	uint16_t weight;	  /* SRV weight: Weights.Passing, or Weights.Warning
				     for an instance with a warning check (0 in a
				     result means 1 for a passing one) */
	bool warning;		  /* some check is warning (weight may be 0) */
};

/* Result of a service lookup: the instances in answer order (the caller
 * shuffles them). status as in dns_node_result; n == 0 means NXDOMAIN, as
 * Consul answers a service without healthy instances. */
struct dns_service_result {
	int status;
	const struct dns_instance *v;
	size_t n;
	uint32_t ttl_s; /* TTL of these records (service_ttl for the name) */
};

/* The TTL of service's records, as Consul picks it: an exact rule, else
 * the longest matching prefix rule ("web*", "*"), else
 * cfg->service_ttl_s. Service names compare case-insensitively. */
uint32_t dns_service_ttl(const struct dns_answer_cfg *cfg, const char *service);

/* Result of a reverse lookup: the names of the nodes with the address,
 * else of the services with an instance at that address (Consul looks at
 * services only when no node has it). status as in dns_node_result;
 * n == 0 and n_services == 0: nobody has it (REFUSED, as any name outside
 * the domain without recursors). */
struct dns_ptr_result {
	int status;
	const char *const *nodes;
	size_t n;
	const char *const *services; /* <service>.service.<dc>.<domain>, service TTL */
	size_t n_services;
};

/* Parses wire (len bytes; borrowed) into *q. Returns a DNS_ACT_* value;
 * q must be passed to dns_query_close() whatever the result. Never fails:
 * malformed packets become FORMERR (when the header is readable; id
 * echoed), other opcodes NOTIMP, names outside the domain REFUSED. */
enum dns_action dns_query_parse(struct dns_query *q, const uint8_t *wire, size_t len,
				const struct dns_answer_cfg *cfg);

/* Frees what dns_query_parse allocated. Safe on a zeroed struct. */
void dns_query_close(struct dns_query *q);

/* Builds the reply to q into a buffer the caller frees with free().
 * node: the lookup result for DNS_ACT_NODE, NULL otherwise. svc: the
 * lookup result for DNS_ACT_SERVICE, NULL otherwise: A/AAAA (or CNAME)
 * records of the instances' addresses (service address, else node
 * address), or SRV records targeting <node>.node.<dc>.<domain> (or
 * <hex>.addr.<dc>.<domain> for a service address, or a service host name,
 * priority 1 and the instance's weight)
 * with the addresses in the additional section; at most a_record_limit
 * answers, and udp_answer_limit over UDP. now_s: wall
 * clock seconds (the SOA serial, as Consul). udp: limit the size to
 * q->udp_limit (TCP allows 65535). Returns 0, -ENOMEM, or -EIO when ldns
 * could not encode. */
int dns_answer_build(const struct dns_query *q, const struct dns_node_result *node,
		     const struct dns_service_result *svc, const struct dns_answer_cfg *cfg,
		     uint64_t now_s, bool udp, uint8_t **out_wire, size_t *out_len);

/* As dns_answer_build, for DNS_ACT_PTR: PTR records naming
 * <node>.node.<datacenter>.<domain> for each node in ptr (node_ttl), then
 * <service>.service.<datacenter>.<domain> for each service (its TTL). */
int dns_answer_build_ptr(const struct dns_query *q, const struct dns_ptr_result *ptr,
			 const struct dns_answer_cfg *cfg, uint64_t now_s, bool udp,
			 uint8_t **out_wire, size_t *out_len);

/* Parses a reverse name ("4.3.2.1.in-addr.arpa." or the 32 nibbles of
 * ip6.arpa, any case, trailing dot optional) into the address's text.
 * Returns 0, or -EINVAL for any other name. */
int dns_reverse_parse(const char *qname, char *out, size_t outlen);

/* Encodes reply (whose section counts it fixes) into at most max_len
 * bytes: records are removed from the end of the additional, then the
 * authority, then the answer section until it fits, and TC is set when an
 * answer record was removed and set_tc is true. Modifies reply. Returns 0,
 * -ENOMEM, -EIO, or -EMSGSIZE when even the bare header and question do
 * not fit. Caller frees *out_wire with free(). */
int dns_answer_encode(ldns_pkt *reply, size_t max_len, bool set_tc, uint8_t **out_wire,
		      size_t *out_len);

#endif
