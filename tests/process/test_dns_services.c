/* Process test: DNS service lookups against a real agent. Services are
 * registered through /v1/catalog/register in several health states, then
 * asked over UDP and TCP with ldns-built queries: only healthy instances,
 * SRV with the addresses in the additional section, tag and RFC 2782
 * forms, NXDOMAIN with the SOA, truncation over UDP and the full answer
 * over TCP, PTR of a known node, forwarding to recursors (a tiny upstream
 * on loopback). */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ptest.h"

static struct agent ag;
static char ag_err[4096];
static int ag_rc = -1;
static char cfg_path[128];

/* ---- a tiny upstream DNS server on loopback -------------------------- */

static int up_fd = -1, up_port, dead_port;

/* Answers example.test. A with 192.0.2.7; stays silent for every other
 * name (so dnsd has to time out). */
static void *upstream_serve(void *arg)
{
	(void)arg;
	for (;;) {
		uint8_t buf[4096], *wire = NULL;
		struct sockaddr_storage from;
		socklen_t flen = sizeof(from);
		ssize_t n = recvfrom(up_fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		ldns_pkt *q = NULL, *r = NULL;
		ldns_rr *rr = NULL;
		char *name = NULL;
		size_t len = 0;

		if (n < 0)
			return NULL;
		if (ldns_wire2pkt(&q, buf, (size_t)n) != LDNS_STATUS_OK)
			continue;
		name = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
		if (name && strcmp(name, "example.test.") == 0 &&
		    ldns_rr_new_frm_str(&rr, "example.test. 30 IN A 192.0.2.7", 0, NULL, NULL) ==
			LDNS_STATUS_OK) {
			r = ldns_pkt_new();
			ldns_pkt_set_id(r, ldns_pkt_id(q));
			ldns_pkt_set_qr(r, true);
			ldns_pkt_set_ra(r, true);
			ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION,
					 ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
			ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
			if (ldns_pkt2wire(&wire, r, &len) == LDNS_STATUS_OK)
				(void)sendto(up_fd, wire, len, 0, (struct sockaddr *)&from, flen);
			free(wire);
			ldns_pkt_free(r);
		}
		free(name);
		ldns_pkt_free(q);
	}
}

/* A bound loopback UDP socket on a free port; *port gets the port. */
static int udp_bind(int *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static void ptest_setup(void)
{
	static const char *extra[3];
	pthread_t th;
	FILE *f;
	int dead;

	/* a port nobody listens on (first recursor: refused at once), then
	 * the upstream */
	dead = udp_bind(&dead_port);
	if (dead >= 0)
		close(dead);
	up_fd = udp_bind(&up_port);
	if (up_fd >= 0 && pthread_create(&th, NULL, upstream_serve, NULL) == 0)
		pthread_detach(th);
	snprintf(cfg_path, sizeof(cfg_path), "/tmp/cairn-dns-svc-%d.json", (int)getpid());
	f = fopen(cfg_path, "w");
	if (f) {
		/* a UDP limit above the 40-instance service, so truncation shows */
		fprintf(
		    f,
		    "{\"dns_config\": {\"udp_answer_limit\": 50, \"recursor_timeout\": "
		    "\"500ms\", \"service_ttl\": {\"*\": \"7s\", \"dead*\": \"1s\", "
		    "\"many\": \"11s\"}}, \"recursors\": [\"127.0.0.1:%d\", \"127.0.0.1:%d\"]}\n",
		    dead_port, up_port);
		fclose(f);
	}
	extra[0] = "-config-file";
	extra[1] = cfg_path;
	extra[2] = NULL;
	ag_rc = harness_agent_start(&ag, "dns-svc", extra, 90000, ag_err, sizeof(ag_err));
	if (ag_rc < 0)
		fprintf(stderr, "agent start failed: %s\n", ag_err);
}

static void ptest_teardown(void)
{
	harness_agent_stop(&ag);
	if (up_fd >= 0)
		shutdown(up_fd, SHUT_RDWR);
	(void)unlink(cfg_path);
}

static void put_ok(const char *body)
{
	struct http_resp r;

	http_put(&ag, "/v1/catalog/register", body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
}

/* One instance of service on its own node, with a check in status (NULL:
 * no check). */
static void reg(const char *node, const char *addr, const char *service, const char *tags,
		const char *svc_addr, int port, const char *status)
{
	char body[1024], check[256] = "";

	if (status)
		snprintf(check, sizeof(check),
			 ",\"Check\":{\"CheckID\":\"c-%s\",\"Name\":\"c\",\"Status\":\"%s\","
			 "\"ServiceID\":\"%s\"}",
			 node, status, service);
	snprintf(body, sizeof(body),
		 "{\"Node\":\"%s\",\"Address\":\"%s\",\"Service\":{\"Service\":\"%s\","
		 "\"Tags\":[%s],\"Address\":\"%s\",\"Port\":%d}%s}",
		 node, addr, service, tags, svc_addr, port, check);
	put_ok(body);
}

/* Sends a query for name/type (no EDNS) over UDP or TCP; returns the
 * parsed reply or NULL when none came within 3 s. */
static ldns_pkt *ask(const char *name, ldns_rr_type type, bool tcp)
{
	ldns_pkt *q = NULL, *reply;
	uint8_t *wire = NULL;
	size_t len = 0, n = 0;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 0x5151);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	reply = harness_dns_exchange(&ag, wire, len, tcp, 3000, &n);
	free(wire);
	if (reply && !tcp && n > 512)
		ck_abort_msg("UDP answer of %zu bytes without EDNS", n);
	if (reply)
		ck_assert_uint_eq(ldns_pkt_id(reply), 0x5151);
	return reply;
}

/* Asks until the answer has rcode (dnsd reads the catalog through
 * raftd; registration is committed before the HTTP answer, so this is
 * quick), then returns it. */
static ldns_pkt *ask_rcode(const char *name, ldns_rr_type type, bool tcp, ldns_pkt_rcode rcode)
{
	uint64_t deadline = harness_now_ms() + 20000;

	for (;;) {
		ldns_pkt *p = ask(name, type, tcp);

		if (p && (ldns_pkt_get_rcode(p) == rcode || harness_now_ms() >= deadline))
			return p;
		if (!p && harness_now_ms() >= deadline)
			ck_abort_msg("DNS %s: no answer", name);
		if (p)
			ldns_pkt_free(p);
		harness_pause_ms(100);
	}
}

static char *rdf_text(const ldns_rdf *rdf)
{
	char *s = ldns_rdf2str(rdf);

	ck_assert_ptr_nonnull(s);
	return s;
}

/* Whether the sorted answer addresses of p equal want (sorted, comma
 * separated). */
static void expect_addrs(ldns_pkt *p, const char *want)
{
	char got[1024] = "";
	char *v[64];
	size_t n = ldns_rr_list_rr_count(ldns_pkt_answer(p));

	ck_assert_uint_le(n, 64);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);

		ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_A);
		v[i] = rdf_text(ldns_rr_rdf(rr, 0));
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(v[j], v[i]) < 0) {
				char *t = v[i];

				v[i] = v[j];
				v[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(got, ",");
		strcat(got, v[i]);
		free(v[i]);
	}
	ck_assert_str_eq(got, want);
}

static bool registered;

static void register_all(void)
{
	if (registered)
		return;
	/* web: passing, warning, critical, passing with a service address,
	 * no check at all */
	reg("w1", "10.3.0.1", "web", "\"primary\",\"v1\"", "", 8001, "passing");
	reg("w2", "10.3.0.2", "web", "\"v1\"", "", 8002, "warning");
	reg("w3", "10.3.0.3", "web", "\"primary\"", "", 8003, "critical");
	reg("w4", "10.3.0.4", "web", "", "10.3.1.4", 8004, "passing");
	reg("w5", "10.3.0.5", "web", "", "", 8005, NULL);
	/* dead: its only instance is critical */
	reg("d1", "10.4.0.1", "dead", "", "", 9000, "critical");
	/* many: 40 passing instances */
	for (int i = 1; i <= 40; i++) {
		char node[32], addr[32];

		snprintf(node, sizeof(node), "m%d", i);
		snprintf(addr, sizeof(addr), "10.5.0.%d", i);
		reg(node, addr, "many", "", "", 7000 + i, "passing");
	}
	registered = true;
}

START_TEST(healthy_instances_only)
{
	ldns_pkt *p;

	REQUIRE_AGENT();
	register_all();
	p = ask_rcode("web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(p));
	/* w3 (critical) is left out; w2 (warning) stays; w4 by its service
	 * address */
	expect_addrs(p, "10.3.0.1,10.3.0.2,10.3.0.5,10.3.1.4");
	ck_assert_uint_eq(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)), 7);
	ldns_pkt_free(p);
	/* case-insensitive, with the datacenter */
	p = ask_rcode("WEB.service.dc1.consul.", LDNS_RR_TYPE_A, true, LDNS_RCODE_NOERROR);
	expect_addrs(p, "10.3.0.1,10.3.0.2,10.3.0.5,10.3.1.4");
	ldns_pkt_free(p);
}
END_TEST

START_TEST(tag_forms)
{
	ldns_pkt *p;

	REQUIRE_AGENT();
	register_all();
	/* primary: w1 passing, w3 critical */
	p = ask_rcode("primary.web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	expect_addrs(p, "10.3.0.1");
	ldns_pkt_free(p);
	p = ask_rcode("v1.web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	expect_addrs(p, "10.3.0.1,10.3.0.2");
	ldns_pkt_free(p);
	/* RFC 2782 with a tag */
	p = ask_rcode("_web._v1.service.consul.", LDNS_RR_TYPE_SRV, false, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 2);
	ldns_pkt_free(p);
	/* a tag nobody has: NXDOMAIN */
	p = ask_rcode("nosuch.web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NXDOMAIN);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
}
END_TEST

START_TEST(srv_with_additional)
{
	ldns_pkt *p;
	size_t n;
	bool seen_w1 = false, seen_w4 = false;

	REQUIRE_AGENT();
	register_all();
	p = ask_rcode("_web._tcp.service.consul.", LDNS_RR_TYPE_SRV, true, LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(p));
	n = ldns_rr_list_rr_count(ldns_pkt_answer(p));
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(ldns_pkt_arcount(p), 4);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), i);
		char *target = rdf_text(ldns_rr_rdf(rr, 3));
		uint16_t port = ldns_rdf2native_int16(ldns_rr_rdf(rr, 2));
		bool found = false;

		ck_assert_int_eq(ldns_rr_get_type(rr), LDNS_RR_TYPE_SRV);
		/* default Weights {Passing: 1, Warning: 1} */
		ck_assert_uint_eq(ldns_rdf2native_int16(ldns_rr_rdf(rr, 1)), 1);
		if (strcmp(target, "w1.node.dc1.consul.") == 0) {
			ck_assert_uint_eq(port, 8001);
			seen_w1 = true;
		}
		if (strcmp(target, "0a030104.addr.dc1.consul.") == 0) {
			ck_assert_uint_eq(port, 8004);
			seen_w4 = true;
		}
		/* the target's address is in the additional section */
		for (size_t k = 0; k < ldns_pkt_arcount(p); k++) {
			ldns_rr *ad = ldns_rr_list_rr(ldns_pkt_additional(p), k);
			char *owner = rdf_text(ldns_rr_owner(ad));

			found |=
			    strcmp(owner, target) == 0 && ldns_rr_get_type(ad) == LDNS_RR_TYPE_A;
			free(owner);
		}
		ck_assert_msg(found, "no additional record for %s", target);
		free(target);
	}
	ck_assert(seen_w1 && seen_w4);
	ldns_pkt_free(p);
	/* the plain name asked for SRV too */
	p = ask_rcode("web.service.consul.", LDNS_RR_TYPE_SRV, false, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 4);
	ldns_pkt_free(p);
}
END_TEST

START_TEST(nxdomain_with_soa)
{
	ldns_pkt *p;
	ldns_rr *soa;
	char *mname;

	REQUIRE_AGENT();
	register_all();
	/* make sure the catalog has the services before the negative checks
	 * (another datacenter: NXDOMAIN until multi-datacenter support) */
	ldns_pkt_free(ask_rcode("web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR));
	const char *names[] = {"dead.service.consul.", "nosuch.service.consul.",
			       "web.service.dc9.consul.", "w1.node.dc9.consul.",
			       "_dead._tcp.service.consul."};
	for (size_t i = 0; i < 5; i++) {
		p = ask_rcode(names[i], i == 4 ? LDNS_RR_TYPE_SRV : LDNS_RR_TYPE_A, false,
			      LDNS_RCODE_NXDOMAIN);
		ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
		ck_assert(ldns_pkt_aa(p));
		ck_assert_uint_eq(ldns_pkt_ancount(p), 0);
		ck_assert_uint_eq(ldns_pkt_nscount(p), 1);
		soa = ldns_rr_list_rr(ldns_pkt_authority(p), 0);
		ck_assert_int_eq(ldns_rr_get_type(soa), LDNS_RR_TYPE_SOA);
		mname = rdf_text(ldns_rr_rdf(soa, 0));
		ck_assert_str_eq(mname, "ns.consul.");
		free(mname);
		ldns_pkt_free(p);
	}
}
END_TEST

START_TEST(truncation_then_tcp)
{
	ldns_pkt *p;

	REQUIRE_AGENT();
	register_all();
	/* 40 A records are more than 512 bytes: cut, TC set */
	p = ask_rcode("many.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_tc(p));
	ck_assert_uint_gt(ldns_pkt_ancount(p), 0);
	ck_assert_uint_lt(ldns_pkt_ancount(p), 40);
	/* its own service_ttl rule */
	ck_assert_uint_eq(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_answer(p), 0)), 11);
	ldns_pkt_free(p);
	/* over TCP: every instance */
	p = ask_rcode("many.service.consul.", LDNS_RR_TYPE_A, true, LDNS_RCODE_NOERROR);
	ck_assert(!ldns_pkt_tc(p));
	ck_assert_uint_eq(ldns_pkt_ancount(p), 40);
	ldns_pkt_free(p);
}
END_TEST

START_TEST(health_change_shows)
{
	ldns_pkt *p;
	uint64_t deadline;

	REQUIRE_AGENT();
	register_all();
	/* w1's check turns critical: it leaves the primary tag's answer */
	reg("w1", "10.3.0.1", "web", "\"primary\",\"v1\"", "", 8001, "critical");
	deadline = harness_now_ms() + 20000;
	for (;;) {
		p = ask("primary.web.service.consul.", LDNS_RR_TYPE_A, false);
		ck_assert_ptr_nonnull(p);
		if (ldns_pkt_get_rcode(p) == LDNS_RCODE_NXDOMAIN || harness_now_ms() >= deadline)
			break;
		ldns_pkt_free(p);
		harness_pause_ms(100);
	}
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(p);
	reg("w1", "10.3.0.1", "web", "\"primary\",\"v1\"", "", 8001, "passing");
	p = ask_rcode("primary.web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	expect_addrs(p, "10.3.0.1");
	ldns_pkt_free(p);
}
END_TEST

START_TEST(ptr_of_known_node)
{
	ldns_pkt *p;
	char *target;

	REQUIRE_AGENT();
	register_all();
	p = ask_rcode("1.0.3.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, false, LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_aa(p));
	ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
	target = rdf_text(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	ck_assert_str_eq(target, "w1.node.dc1.consul.");
	free(target);
	ldns_pkt_free(p);
	/* an address no node has goes to the recursors; the test upstream
	 * does not answer it: SERVFAIL */
	p = ask("9.9.9.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, false);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 0);
	ldns_pkt_free(p);
}
END_TEST

START_TEST(recursors_in_turn)
{
	ldns_pkt *p;
	char *addr;

	REQUIRE_AGENT();
	/* the first recursor refuses, the second answers: relayed as is */
	p = ask_rcode("example.test.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
	addr = rdf_text(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), 0), 0));
	ck_assert_str_eq(addr, "192.0.2.7");
	free(addr);
	ldns_pkt_free(p);
	/* over TCP too */
	p = ask_rcode("example.test.", LDNS_RR_TYPE_A, true, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(p), 1);
	ldns_pkt_free(p);
	/* nobody answers: SERVFAIL once the upstream's time-out passed */
	p = ask("silent.test.", LDNS_RR_TYPE_A, false);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(p);
}
END_TEST

/* Runs cmd and returns its whole output (malloc'd). */
static char *run_cmd(const char *cmd)
{
	FILE *f = popen(cmd, "r");
	char *out = calloc(1, 65536);
	size_t n = 0;

	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(out);
	while (n < 65535) {
		size_t r = fread(out + n, 1, 65535 - n, f);

		if (r == 0)
			break;
		n += r;
	}
	pclose(f);
	return out;
}

START_TEST(dig_srv_and_recursion)
{
	char cmd[512], *out;

	REQUIRE_AGENT();
	register_all();
	ck_assert_msg(system("command -v dig >/dev/null 2>&1") == 0, "dig not installed");
	/* make sure dnsd sees the catalog first */
	ldns_pkt_free(ask_rcode("web.service.consul.", LDNS_RR_TYPE_A, false, LDNS_RCODE_NOERROR));
	snprintf(cmd, sizeof(cmd),
		 "dig @127.0.0.1 -p %d _web._tcp.service.consul SRV +noedns +time=3 +tries=1",
		 ag.dns_port);
	out = run_cmd(cmd);
	ck_assert_msg(strstr(out, "status: NOERROR") && strstr(out, " aa") &&
			  strstr(out, "ANSWER: 4,") && strstr(out, "ADDITIONAL: 4"),
		      "dig SRV:\n%s", out);
	ck_assert_msg(strstr(out, "IN\tSRV\t1 1 8001 w1.node.dc1.consul."), "dig SRV:\n%s", out);
	ck_assert_msg(strstr(out, "w1.node.dc1.consul.\t7\tIN\tA\t10.3.0.1"), "dig SRV:\n%s", out);
	free(out);
	snprintf(cmd, sizeof(cmd), "dig @127.0.0.1 -p %d example.test A +short +time=3 +tries=1",
		 ag.dns_port);
	out = run_cmd(cmd);
	ck_assert_str_eq(out, "192.0.2.7\n");
	free(out);
}
END_TEST

static Suite *dns_services_suite(void)
{
	Suite *s = suite_create("process-dns-services");
	TCase *tc = tcase_create("dns-services");

	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, healthy_instances_only);
	tcase_add_test(tc, tag_forms);
	tcase_add_test(tc, srv_with_additional);
	tcase_add_test(tc, nxdomain_with_soa);
	tcase_add_test(tc, truncation_then_tcp);
	tcase_add_test(tc, health_change_shows);
	tcase_add_test(tc, ptr_of_known_node);
	tcase_add_test(tc, recursors_in_turn);
	tcase_add_test(tc, dig_srv_and_recursion);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return ptest_run(dns_services_suite()); }
