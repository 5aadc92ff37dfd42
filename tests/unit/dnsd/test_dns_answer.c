/* Unit tests: DNS query parsing and reply building (dns_answer.c). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "dns_answer.h"
#include "dns_server.h"
#include "err.h"

Suite *dns_answer_suite(void);

#define NOW_S 1700000000u

static const struct dns_answer_cfg cfg = {
    .domain = "consul.",
    .alt_domain = NULL,
    .node_ttl_s = 7,
    .soa_min_ttl_s = 3,
    .enable_truncate = true,
    .node_meta_txt = true,
    .datacenter = "dc1",
    .service_ttl_s = 9,
    .udp_answer_limit = 3,
    .a_record_limit = 0,
};

/* A query in wire form; edns_size 0 = no OPT. Caller frees. */
static uint8_t *make_query(const char *name, ldns_rr_type type, uint16_t id, uint16_t edns_size,
			   ldns_pkt_opcode opcode, size_t *out_len)
{
	ldns_pkt *q = NULL;
	uint8_t *wire = NULL;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, id);
	ldns_pkt_set_opcode(q, opcode);
	if (edns_size)
		ldns_pkt_set_edns_udp_size(q, edns_size);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, out_len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	return wire;
}

/* Runs a query through parse and build; returns the parsed reply. */
static ldns_pkt *run(const char *name, ldns_rr_type type, const struct dns_node_result *node,
		     enum dns_action want_act)
{
	size_t len, rlen;
	uint8_t *wire = make_query(name, type, 0x1234, 0, LDNS_PACKET_QUERY, &len);
	uint8_t *reply_wire = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;
	enum dns_action act = dns_query_parse(&q, wire, len, &cfg);

	ck_assert_int_eq(act, want_act);
	ck_assert_int_eq(dns_answer_build(&q, node, NULL, &cfg, NOW_S, true, &reply_wire, &rlen),
			 0);
	ck_assert_uint_le(rlen, DNS_UDP_MIN);
	ck_assert_int_eq(ldns_wire2pkt(&reply, reply_wire, rlen), LDNS_STATUS_OK);
	ck_assert_int_eq(ldns_pkt_id(reply), 0x1234);
	ck_assert(ldns_pkt_qr(reply));
	ck_assert(ldns_pkt_rd(reply));
	dns_query_close(&q);
	free(wire);
	free(reply_wire);
	return reply;
}

static char *rdf_str(const ldns_rdf *rdf)
{
	char *s = ldns_rdf2str(rdf);

	ck_assert_ptr_nonnull(s);
	return s;
}

static void assert_rdf(const ldns_rdf *rdf, const char *want)
{
	char *s = rdf_str(rdf);

	ck_assert_str_eq(s, want);
	free(s);
}

/* The authority section holds exactly Consul's SOA for consul. */
static void assert_soa(const ldns_rr *soa)
{
	ck_assert_int_eq(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
	assert_rdf(ldns_rr_owner(soa), "consul.");
	ck_assert_uint_eq(ldns_rr_ttl(soa), 3);
	assert_rdf(ldns_rr_rdf(soa, 0), "ns.consul.");
	assert_rdf(ldns_rr_rdf(soa, 1), "hostmaster.consul.");
	ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 2)), NOW_S);
	ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 3)), 3600);
	ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 4)), 600);
	ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 5)), 86400);
	ck_assert_uint_eq(ldns_rdf2native_int32(ldns_rr_rdf(soa, 6)), 3);
}

static void assert_negative(ldns_pkt *reply, ldns_pkt_rcode rcode)
{
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), rcode);
	ck_assert(ldns_pkt_aa(reply));
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
	ck_assert_uint_eq(ldns_pkt_nscount(reply), 1);
	assert_soa(ldns_rr_list_rr(ldns_pkt_authority(reply), 0));
}

START_TEST(test_a_answer)
{
	struct dns_node_result found = {.status = 0, .address = "127.0.0.1"};
	ldns_pkt *reply = run("Web1.node.consul.", LDNS_RR_TYPE_A, &found, DNS_ACT_NODE);
	ldns_rr *rr;

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(reply));
	ck_assert(!ldns_pkt_tc(reply));
	ck_assert_uint_eq(ldns_pkt_qdcount(reply), 1);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	ck_assert_uint_eq(ldns_pkt_nscount(reply), 0);
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_A);
	ck_assert_int_eq(ldns_rr_get_class(rr), LDNS_RR_CLASS_IN);
	ck_assert_uint_eq(ldns_rr_ttl(rr), 7);
	assert_rdf(ldns_rr_owner(rr), "Web1.node.consul."); /* as asked */
	assert_rdf(ldns_rr_rdf(rr, 0), "127.0.0.1");
	ldns_pkt_free(reply);

	/* ANY: the address set */
	reply = run("web1.node.dc1.consul.", LDNS_RR_TYPE_ANY, &found, DNS_ACT_NODE);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	ck_assert_int_eq(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_answer(reply), 0)),
			 LDNS_RR_TYPE_A);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_aaaa_and_nodata)
{
	struct dns_node_result v6 = {.status = 0, .address = "2001:db8::1"};
	struct dns_node_result v4 = {.status = 0, .address = "10.0.0.5"};
	ldns_pkt *reply = run("web1.node.consul.", LDNS_RR_TYPE_AAAA, &v6, DNS_ACT_NODE);
	ldns_rr *rr;

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_AAAA);
	assert_rdf(ldns_rr_rdf(rr, 0), "2001:db8::1");
	ldns_pkt_free(reply);

	/* A asked of an IPv6 node, AAAA or TXT of an IPv4 one: NODATA */
	reply = run("web1.node.consul.", LDNS_RR_TYPE_A, &v6, DNS_ACT_NODE);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);
	reply = run("web1.node.consul.", LDNS_RR_TYPE_AAAA, &v4, DNS_ACT_NODE);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);
	reply = run("web1.node.consul.", LDNS_RR_TYPE_MX, &v4, DNS_ACT_NODE);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_cname_for_host_name)
{
	struct dns_node_result host = {.status = 0, .address = "db.example.org"};
	ldns_pkt *reply = run("web1.node.consul.", LDNS_RR_TYPE_A, &host, DNS_ACT_NODE);
	ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);

	ck_assert_ptr_nonnull(rr);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_CNAME);
	assert_rdf(ldns_rr_rdf(rr, 0), "db.example.org.");
	ldns_pkt_free(reply);
}
END_TEST

static void assert_txt(const ldns_rr *rr, const char *want)
{
	char *s;

	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_TXT);
	ck_assert_uint_eq(ldns_rr_ttl(rr), 7);
	s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
	ck_assert_str_eq(s, want);
	free(s);
}

START_TEST(test_node_meta_txt)
{
	static const char *const keys[] = {"consul-network-segment", "a=b", " sp ", "rfc1035-raw",
					   "big"};
	char big[301];
	const char *vals[] = {"", "v`1", "x", "as is=", big};
	struct dns_node_result found = {
	    .status = 0, .address = "127.0.0.1", .meta_keys = keys, .meta_vals = vals, .n_meta = 5};
	ldns_pkt *reply;
	ldns_rr *rr;

	memset(big, 'z', 300);
	big[300] = '\0';

	/* A: the address in the answer, the meta in the additional section */
	reply = run("web1.node.consul.", LDNS_RR_TYPE_A, &found, DNS_ACT_NODE);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	ck_assert_uint_eq(ldns_pkt_arcount(reply), 5);
	assert_txt(ldns_rr_list_rr(ldns_pkt_additional(reply), 0), "\"consul-network-segment=\"");
	assert_txt(ldns_rr_list_rr(ldns_pkt_additional(reply), 1), "\"a`=b=v``1\"");
	assert_txt(ldns_rr_list_rr(ldns_pkt_additional(reply), 2), "\"` sp` =x\"");
	assert_txt(ldns_rr_list_rr(ldns_pkt_additional(reply), 3), "\"as is=\"");
	/* over 255 bytes: two character-strings */
	rr = ldns_rr_list_rr(ldns_pkt_additional(reply), 4);
	ck_assert_uint_eq(ldns_rr_rd_count(rr), 2);
	ck_assert_uint_eq(ldns_rdf_size(ldns_rr_rdf(rr, 0)), 256);
	ck_assert_uint_eq(ldns_rdf_size(ldns_rr_rdf(rr, 1)), 1 + 304 - 255);
	ldns_pkt_free(reply);

	/* TXT: only the meta, in the answer */
	found.n_meta = 1;
	reply = run("web1.node.consul.", LDNS_RR_TYPE_TXT, &found, DNS_ACT_NODE);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	ck_assert_uint_eq(ldns_pkt_arcount(reply), 0);
	assert_txt(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), "\"consul-network-segment=\"");
	ldns_pkt_free(reply);

	/* ANY: address and meta in the answer */
	reply = run("web1.node.consul.", LDNS_RR_TYPE_ANY, &found, DNS_ACT_NODE);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 2);
	ldns_pkt_free(reply);

	/* TXT of a node without meta: NODATA */
	found.n_meta = 0;
	reply = run("web1.node.consul.", LDNS_RR_TYPE_TXT, &found, DNS_ACT_NODE);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_nxdomain)
{
	struct dns_node_result missing = {.status = CAIRN_E_NOTFOUND, .address = NULL};
	ldns_pkt *reply = run("nope.node.consul.", LDNS_RR_TYPE_A, &missing, DNS_ACT_NODE);

	assert_negative(reply, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(reply);

	/* forms that name nothing (yet), and bad labels in the domain */
	reply = run("whatever.consul.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);
	assert_negative(reply, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(reply);
	reply = run("we\\032b.node.consul.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);
	assert_negative(reply, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_servfail)
{
	struct dns_node_result failed = {.status = -ETIMEDOUT, .address = NULL};
	ldns_pkt *reply = run("web1.node.consul.", LDNS_RR_TYPE_A, &failed, DNS_ACT_NODE);

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_SERVFAIL);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_apex_and_addr)
{
	ldns_pkt *reply = run("consul.", LDNS_RR_TYPE_SOA, NULL, DNS_ACT_REPLY);

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(reply));
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	assert_soa(ldns_rr_list_rr(ldns_pkt_answer(reply), 0));
	ldns_pkt_free(reply);

	reply = run("consul.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);

	reply = run("7f000001.addr.consul.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), 0), "127.0.0.1");
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_refused_foreign)
{
	ldns_pkt *reply = run("www.example.com.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_REFUSED);
	ck_assert(!ldns_pkt_aa(reply));
	ck_assert_uint_eq(ldns_pkt_qdcount(reply), 1);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
	ck_assert_uint_eq(ldns_pkt_nscount(reply), 0);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_notimp)
{
	size_t len, rlen;
	uint8_t *wire =
	    make_query("web1.node.consul.", LDNS_RR_TYPE_A, 77, 0, LDNS_PACKET_STATUS, &len);
	uint8_t *rw = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;

	ck_assert_int_eq(dns_query_parse(&q, wire, len, &cfg), DNS_ACT_REPLY);
	ck_assert_int_eq(dns_answer_build(&q, NULL, NULL, &cfg, NOW_S, true, &rw, &rlen), 0);
	ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOTIMPL);
	ck_assert_int_eq(ldns_pkt_id(reply), 77);
	ck_assert_int_eq(ldns_pkt_get_opcode(reply), LDNS_PACKET_STATUS);
	ldns_pkt_free(reply);
	dns_query_close(&q);
	free(rw);
	free(wire);
}
END_TEST

/* Every truncation of a valid query: no header -> dropped; a header ->
 * FORMERR with the id echoed. */
START_TEST(test_formerr_truncated)
{
	size_t len;
	uint8_t *wire =
	    make_query("web1.node.consul.", LDNS_RR_TYPE_A, 0xbeef, 1232, LDNS_PACKET_QUERY, &len);

	ck_assert_uint_gt(len, LDNS_HEADER_SIZE + 20);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);
		uint8_t *rw = NULL;
		size_t rlen;
		ldns_pkt *reply = NULL;
		struct dns_query q;
		enum dns_action act;

		memcpy(copy, wire, cut);
		act = dns_query_parse(&q, copy, cut, &cfg);
		if (cut < LDNS_HEADER_SIZE) {
			ck_assert_int_eq(act, DNS_ACT_DROP);
		} else {
			ck_assert_msg(act == DNS_ACT_REPLY, "cut %zu: act %d", cut, act);
			ck_assert_int_eq(
			    dns_answer_build(&q, NULL, NULL, &cfg, NOW_S, true, &rw, &rlen), 0);
			ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
			ck_assert_msg(ldns_pkt_get_rcode(reply) == LDNS_RCODE_FORMERR, "cut %zu",
				      cut);
			ck_assert_int_eq(ldns_pkt_id(reply), 0xbeef);
			ck_assert(ldns_pkt_qr(reply));
			ldns_pkt_free(reply);
			free(rw);
		}
		dns_query_close(&q);
		free(copy);
	}
	free(wire);
}
END_TEST

START_TEST(test_drop_responses_and_formerr_counts)
{
	size_t len, rlen;
	uint8_t *wire =
	    make_query("web1.node.consul.", LDNS_RR_TYPE_A, 5, 0, LDNS_PACKET_QUERY, &len);
	uint8_t *rw = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;

	LDNS_QR_SET(wire);
	ck_assert_int_eq(dns_query_parse(&q, wire, len, &cfg), DNS_ACT_DROP);
	dns_query_close(&q);
	LDNS_QR_CLR(wire);

	/* no question at all */
	wire[LDNS_QDCOUNT_OFF + 1] = 0;
	ck_assert_int_eq(dns_query_parse(&q, wire, LDNS_HEADER_SIZE, &cfg), DNS_ACT_REPLY);
	ck_assert_int_eq(dns_answer_build(&q, NULL, NULL, &cfg, NOW_S, true, &rw, &rlen), 0);
	ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_FORMERR);
	ldns_pkt_free(reply);
	dns_query_close(&q);
	free(rw);
	free(wire);
}
END_TEST

START_TEST(test_edns_limits)
{
	static const struct {
		uint16_t edns;
		size_t limit;
	} cases[] = {{0, 512}, {100, 512}, {1232, 1232}, {4096, 4096}, {65000, 4096}};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len, rlen;
		uint8_t *wire = make_query("web1.node.consul.", LDNS_RR_TYPE_A, 9, cases[i].edns,
					   LDNS_PACKET_QUERY, &len);
		struct dns_node_result found = {.status = 0, .address = "127.0.0.1"};
		uint8_t *rw = NULL;
		ldns_pkt *reply = NULL;
		struct dns_query q;

		ck_assert_int_eq(dns_query_parse(&q, wire, len, &cfg), DNS_ACT_NODE);
		ck_assert_uint_eq(q.udp_limit, cases[i].limit);
		ck_assert_int_eq(q.edns, cases[i].edns != 0);
		ck_assert_int_eq(dns_answer_build(&q, &found, NULL, &cfg, NOW_S, true, &rw, &rlen),
				 0);
		ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
		/* an OPT in the reply exactly when the query had one */
		ck_assert_int_eq(ldns_pkt_edns(reply), cases[i].edns != 0);
		ldns_pkt_free(reply);
		dns_query_close(&q);
		free(rw);
		free(wire);
	}
}
END_TEST

START_TEST(test_badvers)
{
	size_t len, rlen;
	ldns_pkt *qp = NULL;
	uint8_t *wire = NULL, *rw = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&qp, "web1.node.consul.", LDNS_RR_TYPE_A,
						    LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_edns_udp_size(qp, 1232);
	ldns_pkt_set_edns_version(qp, 1);
	ck_assert_int_eq(ldns_pkt2wire(&wire, qp, &len), LDNS_STATUS_OK);
	ck_assert_int_eq(dns_query_parse(&q, wire, len, &cfg), DNS_ACT_REPLY);
	ck_assert_int_eq(dns_answer_build(&q, NULL, NULL, &cfg, NOW_S, true, &rw, &rlen), 0);
	ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
	ck_assert_int_eq(ldns_pkt_edns_extended_rcode(reply), 1); /* BADVERS = 16 */
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), 0);
	ldns_pkt_free(reply);
	ldns_pkt_free(qp);
	dns_query_close(&q);
	free(rw);
	free(wire);
}
END_TEST

/* A synthetic answer of 60 A records (about 1 KB) through the encoder. */
static ldns_pkt *big_reply(void)
{
	ldns_pkt *p = NULL;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&p, "web.service.consul.", LDNS_RR_TYPE_A,
						    LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_qr(p, true);
	for (int i = 0; i < 60; i++) {
		char text[128];
		ldns_rr *rr = NULL;

		snprintf(text, sizeof(text), "web.service.consul. 0 IN A 10.0.%d.%d", i / 250,
			 i % 250);
		ck_assert_int_eq(ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL), LDNS_STATUS_OK);
		ck_assert(ldns_pkt_push_rr(p, LDNS_SECTION_ANSWER, rr));
	}
	return p;
}

START_TEST(test_truncation)
{
	ldns_pkt *p = big_reply();
	ldns_pkt *back = NULL;
	uint8_t *wire = NULL;
	size_t len;

	ck_assert_int_eq(dns_answer_encode(p, 512, true, &wire, &len), 0);
	ck_assert_uint_le(len, 512);
	ck_assert_int_eq(ldns_wire2pkt(&back, wire, len), LDNS_STATUS_OK);
	ck_assert(ldns_pkt_tc(back));
	ck_assert_uint_gt(ldns_pkt_ancount(back), 0);
	ck_assert_uint_lt(ldns_pkt_ancount(back), 60);
	ldns_pkt_free(back);
	free(wire);
	ldns_pkt_free(p);

	/* enable_truncate off: cut to fit, but no TC */
	p = big_reply();
	ck_assert_int_eq(dns_answer_encode(p, 512, false, &wire, &len), 0);
	ck_assert_uint_le(len, 512);
	ck_assert_int_eq(ldns_wire2pkt(&back, wire, len), LDNS_STATUS_OK);
	ck_assert(!ldns_pkt_tc(back));
	ldns_pkt_free(back);
	free(wire);
	ldns_pkt_free(p);

	/* room enough (EDNS0 4096, or TCP): everything, no TC */
	p = big_reply();
	ck_assert_int_eq(dns_answer_encode(p, 4096, true, &wire, &len), 0);
	ck_assert_uint_gt(len, 512);
	ck_assert_int_eq(ldns_wire2pkt(&back, wire, len), LDNS_STATUS_OK);
	ck_assert(!ldns_pkt_tc(back));
	ck_assert_uint_eq(ldns_pkt_ancount(back), 60);
	ldns_pkt_free(back);
	free(wire);
	ldns_pkt_free(p);

	/* not even the question fits */
	p = big_reply();
	ck_assert_int_eq(dns_answer_encode(p, 20, true, &wire, &len), -EMSGSIZE);
	ldns_pkt_free(p);
}
END_TEST

/* Runs a service query (udp or TCP size rules) with result svc under
 * config c; returns the parsed reply. */
static ldns_pkt *run_svc(const char *name, ldns_rr_type type, const struct dns_service_result *svc,
			 const struct dns_answer_cfg *c, bool udp)
{
	size_t len, rlen;
	uint8_t *wire = make_query(name, type, 0x4321, 0, LDNS_PACKET_QUERY, &len);
	uint8_t *reply_wire = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;

	ck_assert_int_eq(dns_query_parse(&q, wire, len, c), DNS_ACT_SERVICE);
	ck_assert_int_eq(dns_answer_build(&q, NULL, svc, c, NOW_S, udp, &reply_wire, &rlen), 0);
	ck_assert_int_eq(ldns_wire2pkt(&reply, reply_wire, rlen), LDNS_STATUS_OK);
	ck_assert_int_eq(ldns_pkt_id(reply), 0x4321);
	ck_assert(ldns_pkt_aa(reply));
	dns_query_close(&q);
	free(wire);
	free(reply_wire);
	return reply;
}

static const struct dns_instance five[] = {
    {.node = "n1", .node_address = "10.0.0.1", .address = "", .port = 8001},
    {.node = "n2", .node_address = "10.0.0.2", .address = NULL, .port = 8002},
    {.node = "n3", .node_address = "10.0.0.3", .address = "192.168.1.3", .port = 8003},
    {.node = "n4", .node_address = "10.0.0.4", .address = "", .port = 8004},
    {.node = "n5", .node_address = "10.0.0.5", .address = "", .port = 8005},
};

START_TEST(test_service_a)
{
	struct dns_service_result svc = {.status = 0, .v = five, .n = 5, .ttl_s = 9};
	static const char *const want[] = {"10.0.0.1", "10.0.0.2", "192.168.1.3", "10.0.0.4",
					   "10.0.0.5"};
	ldns_pkt *reply;

	/* UDP: udp_answer_limit (3), in the order given; service address
	 * before node address */
	reply = run_svc("Web.service.consul.", LDNS_RR_TYPE_A, &svc, &cfg, true);
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 3);
	for (size_t i = 0; i < 3; i++) {
		ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(reply), i);

		ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_A);
		ck_assert_uint_eq(ldns_rr_ttl(rr), 9);
		assert_rdf(ldns_rr_owner(rr), "Web.service.consul.");
		assert_rdf(ldns_rr_rdf(rr, 0), want[i]);
	}
	ldns_pkt_free(reply);

	/* TCP: all of them */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &cfg, false);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 5);
	for (size_t i = 0; i < 5; i++)
		assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), i), 0), want[i]);
	ldns_pkt_free(reply);

	/* a_record_limit applies over TCP too */
	{
		struct dns_answer_cfg c = cfg;

		c.a_record_limit = 2;
		reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &c, false);
		ck_assert_uint_eq(ldns_pkt_ancount(reply), 2);
		ldns_pkt_free(reply);
		c.a_record_limit = 0;
		c.udp_answer_limit = 0; /* no UDP limit either */
		reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &c, true);
		ck_assert_uint_eq(ldns_pkt_ancount(reply), 5);
		ldns_pkt_free(reply);
	}

	/* AAAA of IPv4 instances: NODATA with the SOA */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_AAAA, &svc, &cfg, true);
	assert_negative(reply, LDNS_RCODE_NOERROR);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_service_dedup_and_aaaa)
{
	static const struct dns_instance v[] = {
	    {.node = "n1", .node_address = "10.0.0.1", .address = "", .port = 1},
	    {.node = "n1", .node_address = "10.0.0.1", .address = "", .port = 2},
	    {.node = "n2", .node_address = "10.0.0.2", .address = "2001:db8::2", .port = 3},
	};
	struct dns_service_result svc = {.status = 0, .v = v, .n = 3, .ttl_s = 0};
	ldns_pkt *reply;

	/* the same address twice gives one record */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &cfg, true);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), 0), "10.0.0.1");
	ldns_pkt_free(reply);
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_AAAA, &svc, &cfg, true);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), 0), "2001:db8::2");
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_service_srv)
{
	struct dns_service_result svc = {.status = 0, .v = five, .n = 3, .ttl_s = 9};
	ldns_pkt *reply;
	ldns_rr *rr;

	reply = run_svc("_web._tcp.service.consul.", LDNS_RR_TYPE_SRV, &svc, &cfg, true);
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 3);
	ck_assert_uint_eq(ldns_pkt_arcount(reply), 3);
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_SRV);
	ck_assert_uint_eq(ldns_rr_ttl(rr), 9);
	assert_rdf(ldns_rr_owner(rr), "_web._tcp.service.consul.");
	ck_assert_uint_eq(ldns_rdf2native_int16(ldns_rr_rdf(rr, 0)), 1);
	ck_assert_uint_eq(ldns_rdf2native_int16(ldns_rr_rdf(rr, 1)), 1);
	ck_assert_uint_eq(ldns_rdf2native_int16(ldns_rr_rdf(rr, 2)), 8001);
	assert_rdf(ldns_rr_rdf(rr, 3), "n1.node.dc1.consul.");
	rr = ldns_rr_list_rr(ldns_pkt_additional(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_A);
	assert_rdf(ldns_rr_owner(rr), "n1.node.dc1.consul.");
	assert_rdf(ldns_rr_rdf(rr, 0), "10.0.0.1");
	/* a service address: the addr form */
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 2);
	assert_rdf(ldns_rr_rdf(rr, 3), "c0a80103.addr.dc1.consul.");
	rr = ldns_rr_list_rr(ldns_pkt_additional(reply), 2);
	assert_rdf(ldns_rr_owner(rr), "c0a80103.addr.dc1.consul.");
	assert_rdf(ldns_rr_rdf(rr, 0), "192.168.1.3");
	ldns_pkt_free(reply);

	/* weights: 0 means 1 for a passing instance, stays 0 for a warning one */
	{
		static const struct dns_instance w[] = {
		    {.node = "a", .node_address = "10.0.0.1", .port = 1, .weight = 10},
		    {.node = "b", .node_address = "10.0.0.2", .port = 2, .weight = 0},
		    {.node = "c",
		     .node_address = "10.0.0.3",
		     .port = 3,
		     .weight = 0,
		     .warning = true},
		};
		struct dns_service_result ws = {.status = 0, .v = w, .n = 3};

		reply = run_svc("web.service.consul.", LDNS_RR_TYPE_SRV, &ws, &cfg, false);
		ck_assert_uint_eq(ldns_rdf2native_int16(
				      ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 0), 1)),
				  10);
		ck_assert_uint_eq(ldns_rdf2native_int16(
				      ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 1), 1)),
				  1);
		ck_assert_uint_eq(ldns_rdf2native_int16(
				      ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 2), 1)),
				  0);
		ldns_pkt_free(reply);
	}

	/* the datacenter asked for names the targets */
	reply = run_svc("db.web.service.dc2.consul.", LDNS_RR_TYPE_SRV, &svc, &cfg, false);
	assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 1), 3),
		   "n2.node.dc2.consul.");
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_service_negative)
{
	struct dns_service_result none = {.status = 0, .v = NULL, .n = 0};
	struct dns_service_result failed = {.status = -ETIMEDOUT};
	ldns_pkt *reply;

	/* no healthy instance: NXDOMAIN with the SOA, as Consul */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &none, &cfg, true);
	assert_negative(reply, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(reply);
	reply = run_svc("_web._tcp.service.consul.", LDNS_RR_TYPE_SRV, &none, &cfg, true);
	assert_negative(reply, LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(reply);
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &failed, &cfg, true);
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_service_truncation)
{
	struct dns_instance v[40];
	char addrs[40][16];
	struct dns_answer_cfg c = cfg;
	struct dns_service_result svc = {.status = 0, .v = v, .n = 40};
	ldns_pkt *reply;

	for (int i = 0; i < 40; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.1.0.%d", i + 1);
		v[i] = (struct dns_instance){.node = "n", .node_address = addrs[i], .port = 1};
	}
	c.udp_answer_limit = 100;
	/* 40 A records do not fit 512 bytes: TC, fewer records */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &c, true);
	ck_assert(ldns_pkt_tc(reply));
	ck_assert_uint_gt(ldns_pkt_ancount(reply), 0);
	ck_assert_uint_lt(ldns_pkt_ancount(reply), 40);
	ldns_pkt_free(reply);
	/* TCP: all */
	reply = run_svc("web.service.consul.", LDNS_RR_TYPE_A, &svc, &c, false);
	ck_assert(!ldns_pkt_tc(reply));
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 40);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_service_ttl_rules)
{
	static const struct dns_ttl_rule rules[] = {
	    {"*", 5}, {"we*", 6}, {"web*", 7}, {"web", 8}, {"db", 9},
	};
	struct dns_answer_cfg c = cfg;

	ck_assert_uint_eq(dns_service_ttl(&c, "web"), 9); /* no rules: the default */
	c.service_ttls = rules;
	c.n_service_ttls = 5;
	ck_assert_uint_eq(dns_service_ttl(&c, "web"), 8);
	ck_assert_uint_eq(dns_service_ttl(&c, "WEB"), 8);
	ck_assert_uint_eq(dns_service_ttl(&c, "webapp"), 7);
	ck_assert_uint_eq(dns_service_ttl(&c, "west"), 6);
	ck_assert_uint_eq(dns_service_ttl(&c, "db"), 9);
	ck_assert_uint_eq(dns_service_ttl(&c, "dbx"), 5);
	c.n_service_ttls = 4; /* without "db" */
	ck_assert_uint_eq(dns_service_ttl(&c, "db"), 5);
	/* order of the rules does not matter for the longest prefix */
	{
		static const struct dns_ttl_rule rev[] = {{"web*", 7}, {"we*", 6}, {"*", 5}};

		c.service_ttls = rev;
		c.n_service_ttls = 3;
		ck_assert_uint_eq(dns_service_ttl(&c, "webapp"), 7);
		ck_assert_uint_eq(dns_service_ttl(&c, "other"), 5);
	}
}
END_TEST

START_TEST(test_reverse_parse)
{
	char out[64];

	ck_assert_int_eq(dns_reverse_parse("4.3.2.10.in-addr.arpa.", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "10.2.3.4");
	ck_assert_int_eq(dns_reverse_parse("1.0.0.127.IN-ADDR.ARPA", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "127.0.0.1");
	ck_assert_int_eq(
	    dns_reverse_parse("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1."
			      "0.0.2.ip6.arpa.",
			      out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "2001:db8::1");
	/* not a whole address, bad octets, other names */
	ck_assert_int_eq(dns_reverse_parse("3.2.10.in-addr.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("256.3.2.10.in-addr.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("01.3.2.10.in-addr.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("x.3.2.10.in-addr.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("..in-addr.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("example.com.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("1.0.ip6.arpa.", out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(dns_reverse_parse("", out, sizeof(out)), -EINVAL);
}
END_TEST

/* A PTR query through parse and build_ptr. */
static ldns_pkt *run_ptr(const char *name, const struct dns_ptr_result *res, const char *want_addr)
{
	size_t len, rlen;
	uint8_t *wire = make_query(name, LDNS_RR_TYPE_PTR, 0x7777, 0, LDNS_PACKET_QUERY, &len);
	uint8_t *reply_wire = NULL;
	ldns_pkt *reply = NULL;
	struct dns_query q;

	ck_assert_int_eq(dns_query_parse(&q, wire, len, &cfg), DNS_ACT_PTR);
	ck_assert_str_eq(q.ptr_addr, want_addr);
	ck_assert_int_eq(dns_answer_build_ptr(&q, res, &cfg, NOW_S, true, &reply_wire, &rlen), 0);
	ck_assert_int_eq(ldns_wire2pkt(&reply, reply_wire, rlen), LDNS_STATUS_OK);
	dns_query_close(&q);
	free(wire);
	free(reply_wire);
	return reply;
}

START_TEST(test_ptr_answer)
{
	static const char *const nodes[] = {"web1", "web2"};
	struct dns_ptr_result found = {.status = 0, .nodes = nodes, .n = 2};
	struct dns_ptr_result none = {.status = 0, .nodes = NULL, .n = 0};
	struct dns_ptr_result failed = {.status = -ETIMEDOUT};
	ldns_pkt *reply;
	ldns_rr *rr;

	reply = run_ptr("4.3.2.10.in-addr.arpa.", &found, "10.2.3.4");
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(reply));
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 2);
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_PTR);
	ck_assert_uint_eq(ldns_rr_ttl(rr), 7);
	assert_rdf(ldns_rr_owner(rr), "4.3.2.10.in-addr.arpa.");
	assert_rdf(ldns_rr_rdf(rr, 0), "web1.node.dc1.consul.");
	assert_rdf(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(reply), 1), 0),
		   "web2.node.dc1.consul.");
	ldns_pkt_free(reply);
	/* no node with the address: as any name outside the domain */
	reply = run_ptr("4.3.2.10.in-addr.arpa.", &none, "10.2.3.4");
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_REFUSED);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 0);
	ldns_pkt_free(reply);
	reply = run_ptr("4.3.2.10.in-addr.arpa.", &failed, "10.2.3.4");
	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(reply);
}
END_TEST

START_TEST(test_recursor_parse)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	char text[64];

	ck_assert_int_eq(dns_recursor_parse("192.0.2.1", &ss, &len), 0);
	ck_assert_int_eq(v4->sin_family, AF_INET);
	ck_assert_uint_eq(ntohs(v4->sin_port), 53);
	ck_assert_uint_eq(len, sizeof(*v4));
	ck_assert_int_eq(dns_recursor_parse("127.0.0.1:5353", &ss, &len), 0);
	ck_assert_uint_eq(ntohs(v4->sin_port), 5353);
	inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
	ck_assert_str_eq(text, "127.0.0.1");
	ck_assert_int_eq(dns_recursor_parse("2001:db8::1", &ss, &len), 0);
	ck_assert_int_eq(v6->sin6_family, AF_INET6);
	ck_assert_uint_eq(ntohs(v6->sin6_port), 53);
	ck_assert_int_eq(dns_recursor_parse("[::1]:8053", &ss, &len), 0);
	ck_assert_uint_eq(ntohs(v6->sin6_port), 8053);
	ck_assert_uint_eq(len, sizeof(*v6));
	ck_assert_int_eq(dns_recursor_parse("dns.example", &ss, &len), -EINVAL);
	ck_assert_int_eq(dns_recursor_parse("1.2.3.4:0", &ss, &len), -EINVAL);
	ck_assert_int_eq(dns_recursor_parse("1.2.3.4:70000", &ss, &len), -EINVAL);
	ck_assert_int_eq(dns_recursor_parse("1.2.3.4:", &ss, &len), -EINVAL);
	ck_assert_int_eq(dns_recursor_parse("[::1", &ss, &len), -EINVAL);
	ck_assert_int_eq(dns_recursor_parse(NULL, &ss, &len), -EINVAL);
}
END_TEST

START_TEST(test_recurse_action)
{
	struct dns_answer_cfg c = cfg;
	size_t len;
	uint8_t *wire = make_query("example.org.", LDNS_RR_TYPE_A, 1, 0, LDNS_PACKET_QUERY, &len);
	struct dns_query q;

	/* without recursors REFUSED at once; with them, forwarded */
	ck_assert_int_eq(dns_query_parse(&q, wire, len, &c), DNS_ACT_REPLY);
	ck_assert_int_eq(q.rcode, LDNS_RCODE_REFUSED);
	dns_query_close(&q);
	c.recurse = true;
	ck_assert_int_eq(dns_query_parse(&q, wire, len, &c), DNS_ACT_RECURSE);
	dns_query_close(&q);
	/* RA is set on our own answers when recursors are configured */
	{
		ldns_pkt *reply = run("x.addr.consul.", LDNS_RR_TYPE_A, NULL, DNS_ACT_REPLY);
		uint8_t *w2, *rw = NULL;
		size_t l2, rlen;

		ck_assert(!ldns_pkt_ra(reply));
		ldns_pkt_free(reply);
		w2 = make_query("x.node.consul.", LDNS_RR_TYPE_A, 2, 0, LDNS_PACKET_QUERY, &l2);
		ck_assert_int_eq(dns_query_parse(&q, w2, l2, &c), DNS_ACT_NODE);
		ck_assert_int_eq(dns_answer_build(&q, NULL, NULL, &c, NOW_S, true, &rw, &rlen), 0);
		ck_assert_int_eq(ldns_wire2pkt(&reply, rw, rlen), LDNS_STATUS_OK);
		ck_assert(ldns_pkt_ra(reply));
		ldns_pkt_free(reply);
		dns_query_close(&q);
		free(rw);
		free(w2);
	}
	free(wire);
	/* names in the domain never go out */
	wire = make_query("x.node.consul.", LDNS_RR_TYPE_A, 1, 0, LDNS_PACKET_QUERY, &len);
	ck_assert_int_eq(dns_query_parse(&q, wire, len, &c), DNS_ACT_NODE);
	dns_query_close(&q);
	free(wire);
}
END_TEST

Suite *dns_answer_suite(void)
{
	Suite *s = suite_create("dns_answer");
	TCase *tc = tcase_create("answers");

	tcase_add_test(tc, test_a_answer);
	tcase_add_test(tc, test_aaaa_and_nodata);
	tcase_add_test(tc, test_cname_for_host_name);
	tcase_add_test(tc, test_node_meta_txt);
	tcase_add_test(tc, test_nxdomain);
	tcase_add_test(tc, test_servfail);
	tcase_add_test(tc, test_apex_and_addr);
	tcase_add_test(tc, test_refused_foreign);
	tcase_add_test(tc, test_notimp);
	tcase_add_test(tc, test_formerr_truncated);
	tcase_add_test(tc, test_drop_responses_and_formerr_counts);
	tcase_add_test(tc, test_edns_limits);
	tcase_add_test(tc, test_badvers);
	tcase_add_test(tc, test_truncation);
	tcase_add_test(tc, test_service_a);
	tcase_add_test(tc, test_service_dedup_and_aaaa);
	tcase_add_test(tc, test_service_srv);
	tcase_add_test(tc, test_service_negative);
	tcase_add_test(tc, test_service_truncation);
	tcase_add_test(tc, test_service_ttl_rules);
	tcase_add_test(tc, test_reverse_parse);
	tcase_add_test(tc, test_ptr_answer);
	tcase_add_test(tc, test_recursor_parse);
	tcase_add_test(tc, test_recurse_action);
	suite_add_tcase(s, tc);
	return s;
}
