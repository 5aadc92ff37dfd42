/* Unit tests: query name forms of the .consul domain (dns_name.c). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dns_name.h"

Suite *dns_name_suite(void);

static struct dns_name parse_ok(const char *qname)
{
	struct dns_name n;
	int rc;

	memset(&n, 0x5a, sizeof(n));
	rc = dns_name_parse(qname, "consul.", "cairn.example.", &n);
	ck_assert_msg(rc == 0, "parse %s: %d", qname, rc);
	return n;
}

START_TEST(test_node_forms)
{
	struct dns_name n = parse_ok("web1.node.consul.");

	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "web1");
	ck_assert_str_eq(n.dc, "");
	ck_assert(!n.alt);

	n = parse_ok("web1.node.dc2.consul");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "web1");
	ck_assert_str_eq(n.dc, "dc2");

	n = parse_ok("web1.node.DC2.dc.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.dc, "dc2");

	/* node names may hold dots, as in Consul */
	n = parse_ok("web.rack-1.node.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "web.rack-1");

	/* a node called "node" */
	n = parse_ok("node.node.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "node");
}
END_TEST

START_TEST(test_case_and_trailing_dot)
{
	struct dns_name n = parse_ok("Web1.NODE.Consul.");

	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "Web1"); /* case kept: lookups ignore it */

	n = parse_ok("web1.node.CONSUL");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "web1");

	/* the configured domain may come without its dot */
	ck_assert_int_eq(dns_name_parse("a.node.consul", "consul", NULL, &n), 0);
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert_str_eq(n.target, "a");
}
END_TEST

START_TEST(test_service_forms)
{
	struct dns_name n = parse_ok("web.service.consul.");

	ck_assert_int_eq(n.kind, DNS_NAME_SERVICE);
	ck_assert_str_eq(n.target, "web");
	ck_assert_str_eq(n.tag, "");
	ck_assert(!n.rfc2782);

	n = parse_ok("primary.db.service.dc1.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_SERVICE);
	ck_assert_str_eq(n.target, "db");
	ck_assert_str_eq(n.tag, "primary");
	ck_assert_str_eq(n.dc, "dc1");

	n = parse_ok("_db._primary.service.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_SERVICE);
	ck_assert(n.rfc2782);
	ck_assert_str_eq(n.target, "db");
	ck_assert_str_eq(n.tag, "primary");

	n = parse_ok("_db._tcp.service.consul.");
	ck_assert(n.rfc2782);
	ck_assert_str_eq(n.target, "db");
	ck_assert_str_eq(n.tag, ""); /* _tcp: any tag */

	n = parse_ok("web.connect.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_CONNECT);
	ck_assert_str_eq(n.target, "web");

	n = parse_ok("web.ingress.dc3.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_INGRESS);
	ck_assert_str_eq(n.target, "web");
	ck_assert_str_eq(n.dc, "dc3");
}
END_TEST

START_TEST(test_addr_and_query_forms)
{
	struct dns_name n = parse_ok("7f000001.addr.dc1.consul.");

	ck_assert_int_eq(n.kind, DNS_NAME_ADDR);
	ck_assert_str_eq(n.target, "7f000001");
	ck_assert_str_eq(n.dc, "dc1");

	n = parse_ok("20010DB8000000000000000000000001.addr.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_ADDR);
	ck_assert_str_eq(n.target, "20010db8000000000000000000000001");

	/* not 8 or 32 hex digits, or not hex */
	ck_assert_int_eq(parse_ok("7f0001.addr.consul.").kind, DNS_NAME_UNKNOWN);
	ck_assert_int_eq(parse_ok("7f00000g.addr.consul.").kind, DNS_NAME_UNKNOWN);

	n = parse_ok("my-query.query.consul.");
	ck_assert_int_eq(n.kind, DNS_NAME_QUERY);
	ck_assert_str_eq(n.target, "my-query");
}
END_TEST

START_TEST(test_apex_unknown_alt)
{
	struct dns_name n = parse_ok("consul.");

	ck_assert_int_eq(n.kind, DNS_NAME_APEX);
	ck_assert_int_eq(parse_ok("Consul").kind, DNS_NAME_APEX);

	/* inside the domain, no form */
	ck_assert_int_eq(parse_ok("web.consul.").kind, DNS_NAME_UNKNOWN);
	ck_assert_int_eq(parse_ok("node.consul.").kind, DNS_NAME_UNKNOWN);
	ck_assert_int_eq(parse_ok("a.b.c.node.consul.").kind, DNS_NAME_NODE);
	ck_assert_int_eq(parse_ok("web.node.dc1.extra.consul.").kind, DNS_NAME_UNKNOWN);
	ck_assert_int_eq(parse_ok("a.b.connect.consul.").kind, DNS_NAME_UNKNOWN);

	n = parse_ok("web1.node.cairn.example.");
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	ck_assert(n.alt);
	ck_assert_str_eq(n.target, "web1");
}
END_TEST

START_TEST(test_foreign)
{
	ck_assert_int_eq(parse_ok("example.com.").kind, DNS_NAME_FOREIGN);
	ck_assert_int_eq(parse_ok("web.node.consul.com.").kind, DNS_NAME_FOREIGN);
	ck_assert_int_eq(parse_ok("web.node.xconsul.").kind, DNS_NAME_FOREIGN);
	ck_assert_int_eq(parse_ok(".").kind, DNS_NAME_FOREIGN);
	ck_assert_int_eq(parse_ok("").kind, DNS_NAME_FOREIGN);
	/* odd bytes outside the domain are not ours to judge */
	ck_assert_int_eq(parse_ok("we\\032b.example.com.").kind, DNS_NAME_FOREIGN);
	/* an escaped dot does not split labels: one label "x.consul" */
	ck_assert_int_eq(parse_ok("x\\.consul.").kind, DNS_NAME_FOREIGN);
}
END_TEST

START_TEST(test_bad_labels)
{
	static const char *const bad[] = {
	    "..consul.",	   "web..node.consul.",	    ".web.node.consul.",
	    "web.node.consul..",   "we\\032b.node.consul.", /* escaped space */
	    "we\\.b.node.consul.",			    /* escaped dot */
	    "we b.node.consul.",   "we*b.node.consul.",	    "web.node.d$c.consul.",
	    "trailing\\",
	};
	char label[80], name[400];
	struct dns_name n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&n, 0x5a, sizeof(n));
		ck_assert_msg(dns_name_parse(bad[i], "consul.", NULL, &n) == -EINVAL, "%s accepted",
			      bad[i]);
		ck_assert_int_eq(((unsigned char *)&n)[0], 0x5a); /* untouched */
	}

	/* a 63-octet label is fine, 64 is not */
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(name, sizeof(name), "%s.node.consul.", label);
	ck_assert_int_eq(dns_name_parse(name, "consul.", NULL, &n), 0);
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(name, sizeof(name), "%s.node.consul.", label);
	ck_assert_int_eq(dns_name_parse(name, "consul.", NULL, &n), -EINVAL);

	/* 253 characters fit, 254 do not */
	memset(name, 0, sizeof(name));
	for (size_t i = 0; i < 3; i++)
		strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.");
	memset(label, 'b', 49);
	label[49] = '\0';
	strcat(name, label);
	strcat(name, ".node.consul.");
	ck_assert_int_eq(strlen(name), 254); /* with its trailing dot */
	ck_assert_int_eq(dns_name_parse(name, "consul.", NULL, &n), 0);
	ck_assert_int_eq(n.kind, DNS_NAME_NODE);
	name[strlen(name) - 1] = '\0';
	strcat(name, "x.");
	ck_assert_int_eq(dns_name_parse(name, "consul.", NULL, &n), -EINVAL);
}
END_TEST

Suite *dns_name_suite(void)
{
	Suite *s = suite_create("dns_name");
	TCase *tc = tcase_create("forms");

	tcase_add_test(tc, test_node_forms);
	tcase_add_test(tc, test_case_and_trailing_dot);
	tcase_add_test(tc, test_service_forms);
	tcase_add_test(tc, test_addr_and_query_forms);
	tcase_add_test(tc, test_apex_unknown_alt);
	tcase_add_test(tc, test_foreign);
	tcase_add_test(tc, test_bad_labels);
	suite_add_tcase(s, tc);
	return s;
}
