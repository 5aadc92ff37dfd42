/* DNS reply building for the .consul domain; see dns_answer.h. */
#include "dns_answer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"

/* Consul's SOA timers (agent/dns.go defaults), seconds. */
#define SOA_REFRESH_S 3600
#define SOA_RETRY_S 600
#define SOA_EXPIRE_S 86400

/* The largest DNS message (RFC 1035 4.2.2: 16-bit TCP length). */
#define DNS_TCP_MAX 65535

uint32_t dns_service_ttl(const struct dns_answer_cfg *cfg, const char *service)
{
	size_t best = 0;
	bool have = false;
	uint32_t ttl = cfg->service_ttl_s;

	for (size_t i = 0; i < cfg->n_service_ttls; i++) {
		const struct dns_ttl_rule *r = &cfg->service_ttls[i];
		size_t n = strlen(r->pattern);

		if (n > 0 && r->pattern[n - 1] == '*') {
			n--;
			if (strncasecmp(service, r->pattern, n) != 0 || (have && n < best))
				continue;
			best = n;
			have = true;
			ttl = r->ttl_s;
		} else if (strcasecmp(service, r->pattern) == 0) {
			return r->ttl_s; /* exact beats every prefix */
		}
	}
	return ttl;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dns_reverse_parse(const char *qname, char *out, size_t outlen)
{
	char name[DNS_NAME_TEXT_MAX + 2], *lab[40];
	size_t len = strlen(qname), n = 0;
	uint8_t bytes[16];

	if (len > 0 && qname[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_TEXT_MAX)
		return -EINVAL;
	memcpy(name, qname, len);
	name[len] = '\0';
	for (char *p = name;;) {
		char *dot = strchr(p, '.');

		if (n == sizeof(lab) / sizeof(lab[0]))
			return -EINVAL;
		lab[n++] = p;
		if (!dot)
			break;
		*dot = '\0';
		p = dot + 1;
	}
	if (n == 6 && strcasecmp(lab[4], "in-addr") == 0 && strcasecmp(lab[5], "arpa") == 0) {
		for (size_t i = 0; i < 4; i++) {
			char *end;
			unsigned long v = strtoul(lab[3 - i], &end, 10);

			if (!*lab[3 - i] || *end || v > 255 || strlen(lab[3 - i]) > 3 ||
			    (lab[3 - i][0] == '0' && lab[3 - i][1]))
				return -EINVAL;
			bytes[i] = (uint8_t)v;
		}
		return inet_ntop(AF_INET, bytes, out, (socklen_t)outlen) ? 0 : -EINVAL;
	}
	if (n == 34 && strcasecmp(lab[32], "ip6") == 0 && strcasecmp(lab[33], "arpa") == 0) {
		for (size_t i = 0; i < 32; i++) {
			int v = strlen(lab[31 - i]) == 1 ? hexval(lab[31 - i][0]) : -1;

			if (v < 0)
				return -EINVAL;
			if (i % 2 == 0)
				bytes[i / 2] = (uint8_t)(v << 4);
			else
				bytes[i / 2] |= (uint8_t)v;
		}
		return inet_ntop(AF_INET6, bytes, out, (socklen_t)outlen) ? 0 : -EINVAL;
	}
	return -EINVAL;
}

enum dns_action dns_query_parse(struct dns_query *q, const uint8_t *wire, size_t len,
				const struct dns_answer_cfg *cfg)
{
	ldns_rr *question;
	char *text;
	int rc;

	memset(q, 0, sizeof(*q));
	q->rcode = LDNS_RCODE_NOERROR;
	q->udp_limit = DNS_UDP_MIN;
	q->qtype = LDNS_RR_TYPE_A;
	if (len < LDNS_HEADER_SIZE)
		return DNS_ACT_DROP;
	if (LDNS_QR_WIRE(wire))
		return DNS_ACT_DROP; /* a response: answering it could loop */
	q->id = LDNS_ID_WIRE(wire);
	q->opcode = (uint8_t)LDNS_OPCODE_WIRE(wire);
	q->rd = LDNS_RD_WIRE(wire) != 0;

	if (ldns_wire2pkt(&q->pkt, wire, len) != LDNS_STATUS_OK) {
		q->pkt = NULL;
		q->rcode = q->opcode == LDNS_PACKET_QUERY ? LDNS_RCODE_FORMERR : LDNS_RCODE_NOTIMPL;
		return DNS_ACT_REPLY;
	}
	if (ldns_pkt_edns(q->pkt)) {
		uint16_t size = ldns_pkt_edns_udp_size(q->pkt);

		q->edns = true;
		/* RFC 6891 6.2.5: below 512 means 512 */
		q->udp_limit = size < DNS_UDP_MIN   ? DNS_UDP_MIN
			       : size > DNS_UDP_MAX ? DNS_UDP_MAX
						    : size;
		q->badvers = ldns_pkt_edns_version(q->pkt) != 0;
	}
	if (q->opcode != LDNS_PACKET_QUERY) {
		q->rcode = LDNS_RCODE_NOTIMPL;
		return DNS_ACT_REPLY;
	}
	/* One question, no answers or authority: what a query is (the same
	 * acceptance test as Consul's DNS library, miekg/dns). */
	if (ldns_pkt_qdcount(q->pkt) != 1 || ldns_pkt_ancount(q->pkt) != 0 ||
	    ldns_pkt_nscount(q->pkt) != 0) {
		q->rcode = LDNS_RCODE_FORMERR;
		return DNS_ACT_REPLY;
	}
	if (q->badvers)
		return DNS_ACT_REPLY;

	question = ldns_rr_list_rr(ldns_pkt_question(q->pkt), 0);
	q->qtype = ldns_rr_get_type(question);
	if (ldns_rr_get_class(question) != LDNS_RR_CLASS_IN &&
	    ldns_rr_get_class(question) != LDNS_RR_CLASS_ANY) {
		q->rcode = LDNS_RCODE_REFUSED;
		return DNS_ACT_REPLY;
	}
	text = ldns_rdf2str(ldns_rr_owner(question));
	if (!text) {
		q->rcode = LDNS_RCODE_SERVFAIL;
		return DNS_ACT_REPLY;
	}
	rc = dns_name_parse(text, cfg->domain, cfg->alt_domain, &q->name);
	free(text);
	q->name_ok = rc == 0;
	if (!q->name_ok)
		return DNS_ACT_REPLY; /* NXDOMAIN: only names in the domain are checked */
	if (q->name.kind == DNS_NAME_FOREIGN && q->qtype == LDNS_RR_TYPE_PTR) {
		text = ldns_rdf2str(ldns_rr_owner(question));
		rc = text ? dns_reverse_parse(text, q->ptr_addr, sizeof(q->ptr_addr)) : -ENOMEM;
		free(text);
		if (rc == 0) {
			q->ptr = true;
			return DNS_ACT_PTR;
		}
	}
	if (q->name.kind == DNS_NAME_FOREIGN && cfg->recurse)
		return DNS_ACT_RECURSE;
	if (q->name.kind == DNS_NAME_FOREIGN) {
		q->rcode = LDNS_RCODE_REFUSED;
		return DNS_ACT_REPLY;
	}
	if (q->name.kind == DNS_NAME_NODE)
		return DNS_ACT_NODE;
	if (q->name.kind == DNS_NAME_SERVICE)
		return DNS_ACT_SERVICE;
	return DNS_ACT_REPLY;
}

void dns_query_close(struct dns_query *q)
{
	if (q->pkt)
		ldns_pkt_free(q->pkt);
	q->pkt = NULL;
}

static const ldns_rdf *query_name(const struct dns_query *q)
{
	return ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(q->pkt), 0));
}

/* Pushes rr into section, taking ownership either way. */
static int push(ldns_pkt *reply, ldns_pkt_section section, ldns_rr *rr)
{
	if (!ldns_pkt_push_rr(reply, section, rr)) {
		ldns_rr_free(rr);
		return -ENOMEM;
	}
	return 0;
}

/* The domain's SOA, as Consul builds it: ns.<domain>, hostmaster.<domain>,
 * serial now, TTL and minimum soa_min_ttl. */
static int add_soa(ldns_pkt *reply, ldns_pkt_section section, const struct dns_query *q,
		   const struct dns_answer_cfg *cfg, uint64_t now_s)
{
	const char *domain = q->name.alt && cfg->alt_domain ? cfg->alt_domain : cfg->domain;
	size_t dlen = strlen(domain);
	const char *dot = dlen > 0 && domain[dlen - 1] == '.' ? "" : ".";
	char text[1024];
	ldns_rr *rr = NULL;
	int n;

	n = snprintf(text, sizeof(text), "%s%s %u IN SOA ns.%s%s hostmaster.%s%s %u %u %u %u %u",
		     domain, dot, cfg->soa_min_ttl_s, domain, dot, domain, dot, (uint32_t)now_s,
		     SOA_REFRESH_S, SOA_RETRY_S, SOA_EXPIRE_S, cfg->soa_min_ttl_s);
	if (n < 0 || (size_t)n >= sizeof(text))
		return -EINVAL;
	if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) != LDNS_STATUS_OK)
		return -EINVAL;
	return push(reply, section, rr);
}

/* One record owned by owner (borrowed, copied) in section. Takes
 * ownership of rdata. */
static int add_record_at(ldns_pkt *reply, ldns_pkt_section section, const ldns_rdf *owner_name,
			 ldns_rr_type type, uint32_t ttl_s, ldns_rdf *rdata)
{
	ldns_rdf *owner = ldns_rdf_clone(owner_name);
	ldns_rr *rr = ldns_rr_new();

	if (!rdata || !owner || !rr) {
		ldns_rdf_deep_free(rdata);
		ldns_rdf_deep_free(owner);
		ldns_rr_free(rr);
		return -ENOMEM;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_type(rr, type);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl_s);
	if (!ldns_rr_push_rdf(rr, rdata)) {
		ldns_rdf_deep_free(rdata);
		ldns_rr_free(rr);
		return -ENOMEM;
	}
	return push(reply, section, rr);
}

/* One record owned by the question's name. Takes ownership of rdata. */
static int add_record(ldns_pkt *reply, const struct dns_query *q, ldns_rr_type type, uint32_t ttl_s,
		      ldns_rdf *rdata)
{
	return add_record_at(reply, LDNS_SECTION_ANSWER, query_name(q), type, ttl_s, rdata);
}

static bool wants(ldns_rr_type qtype, ldns_rr_type have)
{
	return qtype == have || qtype == LDNS_RR_TYPE_ANY;
}

/* A for IPv4, AAAA for IPv6 (when qtype asks for that type or ANY), or a
 * CNAME when the address is a host name, as Consul does, owned by owner in
 * section. Adds nothing when the type does not match (NODATA). */
static int add_address_at(ldns_pkt *reply, ldns_pkt_section section, const ldns_rdf *owner,
			  ldns_rr_type qtype, const char *address, uint32_t ttl_s)
{
	uint8_t bytes[16];

	if (inet_pton(AF_INET, address, bytes) == 1) {
		if (!wants(qtype, LDNS_RR_TYPE_A))
			return 0;
		return add_record_at(reply, section, owner, LDNS_RR_TYPE_A, ttl_s,
				     ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, bytes));
	}
	if (inet_pton(AF_INET6, address, bytes) == 1) {
		if (!wants(qtype, LDNS_RR_TYPE_AAAA))
			return 0;
		return add_record_at(reply, section, owner, LDNS_RR_TYPE_AAAA, ttl_s,
				     ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, bytes));
	}
	if (qtype == LDNS_RR_TYPE_A || qtype == LDNS_RR_TYPE_AAAA || qtype == LDNS_RR_TYPE_CNAME ||
	    qtype == LDNS_RR_TYPE_ANY) {
		ldns_rdf *target = ldns_dname_new_frm_str(address);

		if (!target)
			return 0; /* not a usable host name either: NODATA */
		if (!ldns_dname_str_absolute(address)) {
			ldns_rdf *root = ldns_dname_new_frm_str(".");

			if (!root || ldns_dname_cat(target, root) != LDNS_STATUS_OK) {
				ldns_rdf_deep_free(root);
				ldns_rdf_deep_free(target);
				return -ENOMEM;
			}
			ldns_rdf_deep_free(root);
		}
		return add_record_at(reply, section, owner, LDNS_RR_TYPE_CNAME, ttl_s, target);
	}
	return 0;
}

/* The address records of the question's name. */
static int add_address(ldns_pkt *reply, const struct dns_query *q, const char *address,
		       uint32_t ttl_s)
{
	return add_address_at(reply, LDNS_SECTION_ANSWER, query_name(q), q->qtype, address, ttl_s);
}

/* RFC 1464 "key=value", as Consul's encodeKVasRFC1464: in the key, '`'
 * and '=' are quoted with '`', and so are leading and trailing spaces; in
 * the value only '`' is. Returns a malloc'd string or NULL. */
static char *rfc1464(const char *key, const char *val)
{
	size_t klen = strlen(key), vlen = strlen(val);
	size_t lead = 0, trail = 0, pos = 0;
	char *out = malloc(2 * klen + 2 * vlen + 2);

	if (!out)
		return NULL;
	while (lead < klen && key[lead] == ' ')
		lead++;
	while (trail < klen - lead && key[klen - 1 - trail] == ' ')
		trail++;
	for (size_t i = 0; i < klen; i++) {
		char c = key[i];

		if (c == '`' || c == '=' || (c == ' ' && (i < lead || i >= klen - trail)))
			out[pos++] = '`';
		out[pos++] = c;
	}
	out[pos++] = '=';
	for (size_t i = 0; i < vlen; i++) {
		if (val[i] == '`')
			out[pos++] = '`';
		out[pos++] = val[i];
	}
	out[pos] = '\0';
	return out;
}

/* One TXT record holding text, split into character-strings of at most
 * 255 bytes (RFC 1035 3.3.14). */
static int add_txt(ldns_pkt *reply, ldns_pkt_section section, const struct dns_query *q,
		   const char *text, uint32_t ttl_s)
{
	ldns_rdf *owner = ldns_rdf_clone(query_name(q));
	ldns_rr *rr = ldns_rr_new();
	size_t len = strlen(text), pos = 0;

	if (!owner || !rr) {
		ldns_rdf_deep_free(owner);
		ldns_rr_free(rr);
		return -ENOMEM;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl_s);
	do {
		size_t n = len - pos > 255 ? 255 : len - pos;
		uint8_t chunk[256];
		ldns_rdf *rdf;

		chunk[0] = (uint8_t)n;
		memcpy(chunk + 1, text + pos, n);
		rdf = ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, n + 1, chunk);
		if (!rdf || !ldns_rr_push_rdf(rr, rdf)) {
			ldns_rdf_deep_free(rdf);
			ldns_rr_free(rr);
			return -ENOMEM;
		}
		pos += n;
	} while (pos < len);
	if (!ldns_pkt_push_rr(reply, section, rr)) {
		ldns_rr_free(rr);
		return -ENOMEM;
	}
	return 0;
}

/* The node's meta as TXT records (Consul's generateMeta). */
static int add_meta_txt(ldns_pkt *reply, ldns_pkt_section section, const struct dns_query *q,
			const struct dns_node_result *node, uint32_t ttl_s)
{
	for (size_t i = 0; i < node->n_meta; i++) {
		const char *key = node->meta_keys[i] ? node->meta_keys[i] : "";
		const char *val = node->meta_vals[i] ? node->meta_vals[i] : "";
		char *text;
		int rc;

		if (strncasecmp(key, "rfc1035-", 8) == 0)
			text = strdup(val);
		else
			text = rfc1464(key, val);
		if (!text)
			return -ENOMEM;
		rc = add_txt(reply, section, q, text, ttl_s);
		free(text);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* <hex>.addr: 8 hex digits are an IPv4 address, 32 an IPv6 one (Consul's
 * addr form). The name parser has checked the digits. */
static int add_hex_address(ldns_pkt *reply, const struct dns_query *q, uint32_t ttl_s)
{
	const char *hex = q->name.target;
	size_t n = strlen(hex) / 2;
	uint8_t bytes[16];

	for (size_t i = 0; i < n && i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	if (n == 4 && wants(q->qtype, LDNS_RR_TYPE_A))
		return add_record(reply, q, LDNS_RR_TYPE_A, ttl_s,
				  ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, bytes));
	if (n == 16 && wants(q->qtype, LDNS_RR_TYPE_AAAA))
		return add_record(reply, q, LDNS_RR_TYPE_AAAA, ttl_s,
				  ldns_rdf_new_frm_data(LDNS_RDF_TYPE_AAAA, 16, bytes));
	return 0;
}

static const char *inst_address(const struct dns_instance *in)
{
	return in->address && *in->address ? in->address : in->node_address ? in->node_address : "";
}

/* How many answers the service may give: a_record_limit, and
 * udp_answer_limit over UDP (Consul's defaults: none and 3). */
static size_t service_limit(const struct dns_answer_cfg *cfg, bool udp, size_t n)
{
	if (cfg->a_record_limit && n > cfg->a_record_limit)
		n = cfg->a_record_limit;
	if (udp && cfg->udp_answer_limit && n > cfg->udp_answer_limit)
		n = cfg->udp_answer_limit;
	return n;
}

/* The SRV target of an instance: <hex>.addr.<dc>.<domain> for a service
 * IP address, the host name for a service host name, else
 * <node>.node.<dc>.<domain> (Consul's forms). Writes the text into buf;
 * *addr_target says whether an address record for it belongs in the
 * additional section (not for host names). Returns 0 or -EINVAL. */
static int srv_target(const struct dns_query *q, const struct dns_answer_cfg *cfg,
		      const struct dns_instance *in, char *buf, size_t size, bool *addr_target)
{
	const char *domain = q->name.alt && cfg->alt_domain ? cfg->alt_domain : cfg->domain;
	const char *dc = q->name.dc[0] ? q->name.dc : cfg->datacenter ? cfg->datacenter : "dc1";
	size_t dlen = strlen(domain);
	const char *dot = dlen > 0 && domain[dlen - 1] == '.' ? "" : ".";
	uint8_t bytes[16];
	int n;

	*addr_target = true;
	if (in->address && *in->address) {
		char hex[33];
		size_t len = 0;

		if (inet_pton(AF_INET, in->address, bytes) == 1)
			len = 4;
		else if (inet_pton(AF_INET6, in->address, bytes) == 1)
			len = 16;
		if (len) {
			for (size_t i = 0; i < len; i++)
				snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
			n = snprintf(buf, size, "%s.addr.%s.%s%s", hex, dc, domain, dot);
		} else {
			*addr_target = false;
			n = snprintf(buf, size, "%s%s", in->address,
				     ldns_dname_str_absolute(in->address) ? "" : ".");
		}
	} else {
		n = snprintf(buf, size, "%s.node.%s.%s%s", in->node, dc, domain, dot);
	}
	return n < 0 || (size_t)n >= size ? -EINVAL : 0;
}

/* One SRV answer for in (priority 1 and its weight, as Consul) and the address
 * of its target in the additional section. Instances whose names do not
 * make a valid target are left out. */
static int add_srv(ldns_pkt *reply, const struct dns_query *q, const struct dns_answer_cfg *cfg,
		   const struct dns_instance *in, uint32_t ttl_s)
{
	char target[DNS_NAME_TEXT_MAX + 8];
	ldns_rr *rr = NULL;
	ldns_rdf *tname = NULL, *owner = NULL, *rd[3] = {NULL, NULL, NULL}, *tclone = NULL;
	uint16_t weight = (uint16_t)(in->weight || in->warning ? in->weight : 1);
	bool addr_target;
	int rc = 0;

	if (srv_target(q, cfg, in, target, sizeof(target), &addr_target) < 0)
		return 0;
	tname = ldns_dname_new_frm_str(target);
	if (!tname)
		return 0; /* not a valid name: skip the instance */
	/* built field by field: ldns's text parser costs more than the
	 * rest of the answer */
	rr = ldns_rr_new_frm_type(LDNS_RR_TYPE_SRV);
	owner = ldns_rdf_clone(query_name(q));
	rd[0] = ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, 1); /* priority, as Consul */
	rd[1] = ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, weight);
	rd[2] = ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, in->port);
	tclone = ldns_rdf_clone(tname);
	if (!rr || !owner || !rd[0] || !rd[1] || !rd[2] || !tclone) {
		ldns_rr_free(rr);
		ldns_rdf_deep_free(owner);
		for (int i = 0; i < 3; i++)
			ldns_rdf_deep_free(rd[i]);
		ldns_rdf_deep_free(tclone);
		rc = -ENOMEM;
		goto out;
	}
	ldns_rr_set_owner(rr, owner);
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, ttl_s);
	(void)ldns_rr_set_rdf(rr, rd[0], 0); /* the rdf slots exist: nothing returned to free */
	(void)ldns_rr_set_rdf(rr, rd[1], 1);
	(void)ldns_rr_set_rdf(rr, rd[2], 2);
	(void)ldns_rr_set_rdf(rr, tclone, 3);
	rc = push(reply, LDNS_SECTION_ANSWER, rr);
	if (rc == 0 && addr_target)
		rc = add_address_at(reply, LDNS_SECTION_ADDITIONAL, tname, LDNS_RR_TYPE_ANY,
				    inst_address(in), ttl_s);
out:
	ldns_rdf_deep_free(tname);
	return rc;
}

/* Answers for a service name: rcode and sections, or a negative code. */
static int answer_service(ldns_pkt *reply, const struct dns_query *q,
			  const struct dns_service_result *svc, const struct dns_answer_cfg *cfg,
			  bool udp, bool *nxdomain)
{
	size_t limit, given = 0;
	int rc;

	*nxdomain = false;
	if (!svc || (svc->status < 0 && svc->status != CAIRN_E_NOTFOUND)) {
		ldns_pkt_set_rcode(reply, LDNS_RCODE_SERVFAIL);
		return 1;
	}
	if (svc->status == CAIRN_E_NOTFOUND || svc->n == 0) {
		*nxdomain = true;
		return 0;
	}
	limit = service_limit(cfg, udp, svc->n);
	for (size_t i = 0; i < svc->n && given < limit; i++) {
		const struct dns_instance *in = &svc->v[i];
		bool dup = false;

		if (q->qtype == LDNS_RR_TYPE_SRV) {
			rc = add_srv(reply, q, cfg, in, svc->ttl_s);
			if (rc < 0)
				return rc;
			given++;
			continue;
		}
		/* one record per address (Consul skips repeats: the same
		 * service on several ports of a node) */
		for (size_t j = 0; j < i && !dup; j++)
			dup = strcmp(inst_address(&svc->v[j]), inst_address(in)) == 0;
		if (dup || !*inst_address(in))
			continue;
		rc = add_address(reply, q, inst_address(in), svc->ttl_s);
		if (rc < 0)
			return rc;
		given++;
	}
	return 0;
}

/* PTR answers naming each node of ptr; REFUSED when there is none (the
 * name is then answered as any name outside the domain). */
static int answer_ptr(ldns_pkt *reply, const struct dns_query *q, const struct dns_ptr_result *ptr,
		      const struct dns_answer_cfg *cfg)
{
	const char *dc = cfg->datacenter ? cfg->datacenter : "dc1";
	size_t dlen = strlen(cfg->domain);
	const char *dot = dlen > 0 && cfg->domain[dlen - 1] == '.' ? "" : ".";

	if (!ptr || (ptr->status < 0 && ptr->status != CAIRN_E_NOTFOUND)) {
		ldns_pkt_set_rcode(reply, LDNS_RCODE_SERVFAIL);
		return 0;
	}
	for (size_t i = 0; i < ptr->n; i++) {
		char target[DNS_NAME_TEXT_MAX + 8];
		ldns_rdf *rdf;
		int n, rc;

		n = snprintf(target, sizeof(target), "%s.node.%s.%s%s", ptr->nodes[i], dc,
			     cfg->domain, dot);
		if (n < 0 || (size_t)n >= sizeof(target))
			continue;
		rdf = ldns_dname_new_frm_str(target);
		if (!rdf)
			continue; /* a node name that is no DNS name */
		rc = add_record(reply, q, LDNS_RR_TYPE_PTR, cfg->node_ttl_s, rdf);
		if (rc < 0)
			return rc;
	}
	/* service addresses: <service>.service.<dc>.<domain>, as Consul */
	for (size_t i = 0; i < ptr->n_services; i++) {
		char target[DNS_NAME_TEXT_MAX + 8];
		ldns_rdf *rdf;
		int n, rc;

		n = snprintf(target, sizeof(target), "%s.service.%s.%s%s", ptr->services[i], dc,
			     cfg->domain, dot);
		if (n < 0 || (size_t)n >= sizeof(target))
			continue;
		rdf = ldns_dname_new_frm_str(target);
		if (!rdf)
			continue;
		rc = add_record(reply, q, LDNS_RR_TYPE_PTR, dns_service_ttl(cfg, ptr->services[i]),
				rdf);
		if (rc < 0)
			return rc;
	}
	if (ldns_rr_list_rr_count(ldns_pkt_answer(reply)) == 0)
		ldns_pkt_set_rcode(reply, LDNS_RCODE_REFUSED);
	else
		ldns_pkt_set_aa(reply, true);
	return 0;
}

/* Fills the answer for a question inside the domain. */
static int answer_in_domain(ldns_pkt *reply, const struct dns_query *q,
			    const struct dns_node_result *node,
			    const struct dns_service_result *svc, const struct dns_answer_cfg *cfg,
			    uint64_t now_s, bool udp)
{
	bool nx = false;
	int rc = 0;

	ldns_pkt_set_aa(reply, true);
	if (!q->name_ok)
		goto nxdomain;
	switch (q->name.kind) {
	case DNS_NAME_APEX:
		if (wants(q->qtype, LDNS_RR_TYPE_SOA))
			return add_soa(reply, LDNS_SECTION_ANSWER, q, cfg, now_s);
		goto nodata;
	case DNS_NAME_NODE:
		if (!node || (node->status < 0 && node->status != CAIRN_E_NOTFOUND)) {
			ldns_pkt_set_rcode(reply, LDNS_RCODE_SERVFAIL);
			return 0;
		}
		if (node->status == CAIRN_E_NOTFOUND || !node->address)
			goto nxdomain;
		if (q->qtype != LDNS_RR_TYPE_TXT) {
			rc = add_address(reply, q, node->address, cfg->node_ttl_s);
			if (rc < 0)
				return rc;
		}
		if (q->qtype == LDNS_RR_TYPE_TXT || q->qtype == LDNS_RR_TYPE_ANY)
			rc = add_meta_txt(reply, LDNS_SECTION_ANSWER, q, node, cfg->node_ttl_s);
		else if (cfg->node_meta_txt && ldns_rr_list_rr_count(ldns_pkt_answer(reply)) > 0)
			rc = add_meta_txt(reply, LDNS_SECTION_ADDITIONAL, q, node, cfg->node_ttl_s);
		if (rc < 0)
			return rc;
		if (ldns_rr_list_rr_count(ldns_pkt_answer(reply)) == 0)
			goto nodata;
		return 0;
	case DNS_NAME_ADDR:
		rc = add_hex_address(reply, q, cfg->node_ttl_s);
		if (rc < 0)
			return rc;
		if (ldns_rr_list_rr_count(ldns_pkt_answer(reply)) == 0)
			goto nodata;
		return 0;
	case DNS_NAME_SERVICE:
		rc = answer_service(reply, q, svc, cfg, udp, &nx);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		if (nx)
			goto nxdomain;
		if (ldns_rr_list_rr_count(ldns_pkt_answer(reply)) == 0)
			goto nodata;
		return 0;
	default:
		/* connect, ingress and query forms come with their
		 * issues; until then they name nothing */
		goto nxdomain;
	}
nxdomain:
	ldns_pkt_set_rcode(reply, LDNS_RCODE_NXDOMAIN);
nodata:
	return add_soa(reply, LDNS_SECTION_AUTHORITY, q, cfg, now_s);
}

static int build(const struct dns_query *q, const struct dns_node_result *node,
		 const struct dns_service_result *svc, const struct dns_ptr_result *ptr,
		 const struct dns_answer_cfg *cfg, uint64_t now_s, bool udp, uint8_t **out_wire,
		 size_t *out_len)
{
	ldns_pkt *reply = ldns_pkt_new();
	int rc = 0;

	if (!reply)
		return -ENOMEM;
	ldns_pkt_set_id(reply, q->id);
	ldns_pkt_set_qr(reply, true);
	ldns_pkt_set_opcode(reply, (ldns_pkt_opcode)q->opcode);
	ldns_pkt_set_rd(reply, q->rd);
	ldns_pkt_set_ra(reply, cfg->recurse); /* as Consul: recursors configured */
	ldns_pkt_set_rcode(reply, LDNS_RCODE_NOERROR);
	if (q->pkt && ldns_rr_list_rr_count(ldns_pkt_question(q->pkt)) == 1) {
		ldns_rr *qrr = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q->pkt), 0));

		if (!qrr) {
			rc = -ENOMEM;
			goto out;
		}
		rc = push(reply, LDNS_SECTION_QUESTION, qrr);
		if (rc < 0)
			goto out;
	}
	if (q->edns)
		ldns_pkt_set_edns_udp_size(reply, DNS_UDP_MAX); /* also adds the OPT */

	if (q->rcode != LDNS_RCODE_NOERROR) {
		ldns_pkt_set_rcode(reply, (uint8_t)q->rcode);
	} else if (q->badvers) {
		/* BADVERS is 16: upper bits in the OPT, lower in the header */
		ldns_pkt_set_edns_extended_rcode(reply, 1);
	} else if (q->ptr) {
		rc = answer_ptr(reply, q, ptr, cfg);
		if (rc < 0)
			goto out;
	} else {
		rc = answer_in_domain(reply, q, node, svc, cfg, now_s, udp);
		if (rc < 0)
			goto out;
	}
	rc = dns_answer_encode(reply, udp ? q->udp_limit : DNS_TCP_MAX, cfg->enable_truncate,
			       out_wire, out_len);
out:
	ldns_pkt_free(reply);
	return rc;
}

int dns_answer_build(const struct dns_query *q, const struct dns_node_result *node,
		     const struct dns_service_result *svc, const struct dns_answer_cfg *cfg,
		     uint64_t now_s, bool udp, uint8_t **out_wire, size_t *out_len)
{
	return build(q, node, svc, NULL, cfg, now_s, udp, out_wire, out_len);
}

int dns_answer_build_ptr(const struct dns_query *q, const struct dns_ptr_result *ptr,
			 const struct dns_answer_cfg *cfg, uint64_t now_s, bool udp,
			 uint8_t **out_wire, size_t *out_len)
{
	return build(q, NULL, NULL, ptr, cfg, now_s, udp, out_wire, out_len);
}

static void fix_counts(ldns_pkt *p)
{
	ldns_pkt_set_qdcount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_question(p)));
	ldns_pkt_set_ancount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_answer(p)));
	ldns_pkt_set_nscount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_authority(p)));
	ldns_pkt_set_arcount(p, (uint16_t)ldns_rr_list_rr_count(ldns_pkt_additional(p)));
}

/* Drops the last record of the first non-empty section among additional,
 * authority, answer. Returns the section it came from, or -1 when all
 * three are empty. */
static int drop_one(ldns_pkt *p)
{
	ldns_rr_list *lists[] = {ldns_pkt_additional(p), ldns_pkt_authority(p), ldns_pkt_answer(p)};
	static const int sections[] = {LDNS_SECTION_ADDITIONAL, LDNS_SECTION_AUTHORITY,
				       LDNS_SECTION_ANSWER};

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		if (ldns_rr_list_rr_count(lists[i]) == 0)
			continue;
		ldns_rr_free(ldns_rr_list_pop_rr(lists[i]));
		return sections[i];
	}
	return -1;
}

int dns_answer_encode(ldns_pkt *reply, size_t max_len, bool set_tc, uint8_t **out_wire,
		      size_t *out_len)
{
	/* Re-encodes after each removed record: O(n^2) in the records, but a
	 * reply that overflows carries few enough (512 bytes hold about 30
	 * A records) that a smarter cut has not been needed. */
	for (;;) {
		uint8_t *wire = NULL;
		size_t len = 0;
		int from;

		fix_counts(reply);
		if (ldns_pkt2wire(&wire, reply, &len) != LDNS_STATUS_OK) {
			free(wire);
			return -EIO;
		}
		if (len <= max_len) {
			*out_wire = wire;
			*out_len = len;
			return 0;
		}
		free(wire);
		from = drop_one(reply);
		if (from < 0)
			return -EMSGSIZE;
		if (from == (int)LDNS_SECTION_ANSWER && set_tc)
			ldns_pkt_set_tc(reply, true);
	}
}
