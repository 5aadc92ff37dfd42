/* What a query name means inside Cairn's DNS domain: node, service, addr,
 * query and the other forms Consul answers.
 *
 * Pure: text in, struct out. The name is the presentation form ldns prints
 * (labels joined by '.', special bytes escaped with a backslash), matched
 * case-insensitively against the configured domain (default "consul.") and
 * the optional alt domain. The trailing dot is optional. Forms, as Consul's
 * DNS interface documents them (labels before the domain):
 *
 *   <node>.node[.<dc>[.dc]]                        DNS_NAME_NODE
 *   [<tag>.]<service>.service[.<dc>[.dc]]          DNS_NAME_SERVICE
 *   _<service>._<tag>.service[.<dc>[.dc]]          DNS_NAME_SERVICE, rfc2782
 *   <service>.connect / <service>.ingress [...]    DNS_NAME_CONNECT / INGRESS
 *   <hex address>.addr[.<dc>[.dc]]                 DNS_NAME_ADDR
 *   <query>.query[.<dc>[.dc]]                      DNS_NAME_QUERY
 *   (nothing)                                      DNS_NAME_APEX
 *
 * Node and query names may contain dots (the labels are joined again), as
 * Consul allows. */
#ifndef CAIRN_DNS_NAME_H
#define CAIRN_DNS_NAME_H

#include <stdbool.h>

/* Longest name in presentation form without the trailing dot (RFC 1035
 * 2.3.4 allows 255 octets on the wire, i.e. 253 characters of text). */
#define DNS_NAME_TEXT_MAX 253
/* Longest label (RFC 1035 2.3.4). */
#define DNS_NAME_LABEL_MAX 63

enum dns_name_kind {
	DNS_NAME_FOREIGN = 0, /* outside the domain and the alt domain */
	DNS_NAME_APEX,	      /* the domain itself */
	DNS_NAME_NODE,	      /* <node>.node[.<dc>] */
	DNS_NAME_SERVICE,     /* [<tag>.]<service>.service[.<dc>] or RFC 2782 */
	DNS_NAME_CONNECT,     /* <service>.connect[.<dc>] */
	DNS_NAME_INGRESS,     /* <service>.ingress[.<dc>] */
	DNS_NAME_ADDR,	      /* <hex>.addr[.<dc>] */
	DNS_NAME_QUERY,	      /* <query>.query[.<dc>] */
	DNS_NAME_UNKNOWN,     /* inside the domain but no known form: NXDOMAIN */
};

struct dns_name {
	enum dns_name_kind kind;
	bool alt;			    /* matched the alt domain rather than the domain */
	bool rfc2782;			    /* service form _<service>._<tag> */
	char target[DNS_NAME_TEXT_MAX + 1]; /* node, service, query name, or hex
					       address, case as asked */
	char tag[DNS_NAME_TEXT_MAX + 1];    /* service tag (no '_'), or "" */
	char dc[DNS_NAME_LABEL_MAX + 1];    /* datacenter, lower-cased; "" = local */
};

/* Parses qname relative to domain (required) and alt_domain (NULL when
 * unset); both may or may not end in a dot. Returns 0 and fills *out (kind
 * DNS_NAME_FOREIGN for names outside both domains, whatever their labels),
 * or -EINVAL for a name that is not a valid DNS name (empty label, label
 * over 63 or name over 253 characters) or a name inside the domain with a
 * label holding anything but letters, digits, '-' and '_' (escaped bytes
 * included); *out is untouched on failure. */
int dns_name_parse(const char *qname, const char *domain, const char *alt_domain,
		   struct dns_name *out);

/* "node", "service" ... for logs and tests. */
const char *dns_name_kind_str(enum dns_name_kind kind);

#endif
