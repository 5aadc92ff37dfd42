/* Process test: dnsd's answer cache against a real agent. Answers follow
 * catalog changes (health turning critical, deregistration, a node's new
 * address) while queries are served from the cache; with raftd stopped
 * (SIGSTOP) warm names are still answered, up to max_stale, then
 * SERVFAIL, and answers come back after SIGCONT. Also PTR of a service
 * address, the .query. form, FORMERR for truncated packets, and a
 * recursor's truncated UDP answer asked again over TCP for a TCP client. */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ptest.h"

static struct agent ag;
static char ag_err[4096];
static int ag_rc = -1;
static char cfg_path[128];

/* ---- an upstream on loopback: UDP answers to big.test. are truncated
 * (TC, no records), TCP gives all 30 A records; other names REFUSED --- */

static int up_udp = -1, up_tcp = -1, up_port;

/* The reply to wire/len over tcp or not, into *out (malloc'd). */
static size_t upstream_answer(const uint8_t *wire, size_t len, bool tcp, uint8_t **out)
{
	ldns_pkt *q = NULL, *r = NULL;
	char *name = NULL;
	size_t n = 0;

	*out = NULL;
	if (ldns_wire2pkt(&q, wire, len) != LDNS_STATUS_OK)
		return 0;
	name = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
	r = ldns_pkt_new();
	ldns_pkt_set_id(r, ldns_pkt_id(q));
	ldns_pkt_set_qr(r, true);
	ldns_pkt_set_ra(r, true);
	ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION,
			 ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0)));
	if (name && strcmp(name, "big.test.") == 0 && !tcp) {
		ldns_pkt_set_tc(r, true);
	} else if (name && strcmp(name, "big.test.") == 0) {
		for (int i = 1; i <= 30; i++) {
			char text[64];
			ldns_rr *rr = NULL;

			snprintf(text, sizeof(text), "big.test. 30 IN A 192.0.2.%d", i);
			if (ldns_rr_new_frm_str(&rr, text, 0, NULL, NULL) == LDNS_STATUS_OK)
				ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, rr);
		}
	} else {
		ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
	}
	if (ldns_pkt2wire(out, r, &n) != LDNS_STATUS_OK)
		n = 0;
	free(name);
	ldns_pkt_free(q);
	ldns_pkt_free(r);
	return n;
}

static void *upstream_serve(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd pf[2] = {{.fd = up_udp, .events = POLLIN}, {.fd = up_tcp, .events = POLLIN}};
		uint8_t buf[4096], *out = NULL;

		if (poll(pf, 2, -1) < 0)
			return NULL;
		if (pf[0].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t flen = sizeof(from);
			ssize_t n = recvfrom(up_udp, buf, sizeof(buf), 0, (struct sockaddr *)&from,
					     &flen);
			size_t len;

			if (n < 0)
				return NULL;
			len = upstream_answer(buf, (size_t)n, false, &out);
			if (len)
				(void)sendto(up_udp, out, len, 0, (struct sockaddr *)&from, flen);
			free(out);
		}
		if (pf[1].revents & POLLIN) {
			int c = accept(up_tcp, NULL, NULL);
			size_t got = 0, want = 2, len;
			uint8_t hdr[2];

			if (c < 0)
				return NULL;
			while (got < want) {
				ssize_t n = recv(c, buf + got, want - got, 0);

				if (n <= 0)
					break;
				got += (size_t)n;
				if (got == 2 && want == 2)
					want = 2 + ((size_t)buf[0] << 8 | buf[1]);
			}
			if (got == want && want > 2) {
				len = upstream_answer(buf + 2, want - 2, true, &out);
				hdr[0] = (uint8_t)(len >> 8);
				hdr[1] = (uint8_t)len;
				if (len) {
					(void)send(c, hdr, 2, MSG_NOSIGNAL);
					(void)send(c, out, len, MSG_NOSIGNAL);
				}
				free(out);
			}
			close(c);
		}
	}
}

/* UDP and TCP sockets on one free loopback port. */
static void upstream_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	pthread_t th;
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int attempt = 0; attempt < 20; attempt++) {
		sa.sin_port = 0;
		up_udp = socket(AF_INET, SOCK_DGRAM, 0);
		if (up_udp < 0 || bind(up_udp, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(up_udp, (struct sockaddr *)&sa, &len) < 0)
			return;
		up_tcp = socket(AF_INET, SOCK_STREAM, 0);
		(void)setsockopt(up_tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (up_tcp >= 0 && bind(up_tcp, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    listen(up_tcp, 16) == 0)
			break;
		/* the TCP port is taken: another pair */
		close(up_udp);
		if (up_tcp >= 0)
			close(up_tcp);
		up_udp = up_tcp = -1;
	}
	if (up_udp < 0)
		return;
	up_port = ntohs(sa.sin_port);
	if (pthread_create(&th, NULL, upstream_serve, NULL) == 0)
		pthread_detach(th);
}

static void ptest_setup(void)
{
	static const char *extra[3];
	FILE *f;

	upstream_start();

	snprintf(cfg_path, sizeof(cfg_path), "/tmp/cairn-dns-cache-%d.json", (int)getpid());
	f = fopen(cfg_path, "w");
	if (f) {
		/* confirmations from raftd every 2 s (so a stopped raftd is
		 * noticed in about 4 s), stale answers up to 12 s old */
		fprintf(f,
			"{\"dns_config\": {\"cache_max_age\": \"2s\", \"max_stale\": \"12s\", "
			"\"recursor_timeout\": \"2s\"}, \"recursors\": [\"127.0.0.1:%d\"]}\n",
			up_port);
		fclose(f);
	}
	extra[0] = "-config-file";
	extra[1] = cfg_path;
	extra[2] = NULL;
	ag_rc = harness_agent_start(&ag, "dns-cache", extra, 90000, ag_err, sizeof(ag_err));
	if (ag_rc < 0)
		fprintf(stderr, "agent start failed: %s\n", ag_err);
}

static void ptest_teardown(void)
{
	harness_agent_stop(&ag);
	if (up_udp >= 0)
		shutdown(up_udp, SHUT_RDWR);
	(void)unlink(cfg_path);
}

static void put_ok(const char *path, const char *body)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
}

/* One instance of service on node, with one check in status. */
static void reg(const char *node, const char *addr, const char *service, const char *svc_addr,
		const char *status)
{
	char body[1024];

	snprintf(body, sizeof(body),
		 "{\"Node\":\"%s\",\"Address\":\"%s\",\"Service\":{\"Service\":\"%s\","
		 "\"Address\":\"%s\",\"Port\":80},\"Check\":{\"CheckID\":\"c-%s\",\"Name\":\"c\","
		 "\"Status\":\"%s\",\"ServiceID\":\"%s\"}}",
		 node, addr, service, svc_addr, node, status, service);
	put_ok("/v1/catalog/register", body);
}

/* Sends wire over UDP (or TCP) and returns the parsed reply, or NULL when
 * none came within timeout_ms. */
static ldns_pkt *exchange(const uint8_t *wire, size_t len, bool tcp, unsigned timeout_ms)
{
	return harness_dns_exchange(&ag, wire, len, tcp, timeout_ms, NULL);
}

static ldns_pkt *ask(const char *name, ldns_rr_type type, unsigned timeout_ms)
{
	ldns_pkt *q = NULL, *r;
	uint8_t *wire = NULL;
	size_t len = 0;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 0x6161);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	r = exchange(wire, len, false, timeout_ms);
	free(wire);
	if (r)
		ck_assert_uint_eq(ldns_pkt_id(r), 0x6161);
	return r;
}

/* The answer as text: the sorted A addresses or PTR targets joined by
 * ',', or the rcode's name ("NXDOMAIN", "SERVFAIL"), or "timeout". */
static void summary(ldns_pkt *p, char *out, size_t outlen)
{
	char *v[16];
	size_t n;

	out[0] = '\0';
	if (!p) {
		snprintf(out, outlen, "timeout");
		return;
	}
	if (ldns_pkt_get_rcode(p) != LDNS_RCODE_NOERROR) {
		ldns_lookup_table *t = ldns_lookup_by_id(ldns_rcodes, ldns_pkt_get_rcode(p));

		snprintf(out, outlen, "%s", t ? t->name : "rcode?");
		return;
	}
	n = ldns_rr_list_rr_count(ldns_pkt_answer(p));
	ck_assert_uint_le(n, 16);
	for (size_t i = 0; i < n; i++)
		v[i] = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(p), i), 0));
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(v[j], v[i]) < 0) {
				char *t = v[i];

				v[i] = v[j];
				v[j] = t;
			}
	for (size_t i = 0; i < n; i++) {
		if (i)
			strncat(out, ",", outlen - strlen(out) - 1);
		strncat(out, v[i], outlen - strlen(out) - 1);
		free(v[i]);
	}
}

static void ask_text(const char *name, ldns_rr_type type, char *out, size_t outlen)
{
	ldns_pkt *p = ask(name, type, 3000);

	summary(p, out, outlen);
	ldns_pkt_free(p);
}

/* Asks until the answer reads want (20 s at most). */
static void expect_eventually(const char *name, ldns_rr_type type, const char *want)
{
	uint64_t deadline = harness_now_ms() + 20000;
	char got[512];

	for (;;) {
		ask_text(name, type, got, sizeof(got));
		if (strcmp(got, want) == 0)
			return;
		ck_assert_msg(harness_now_ms() < deadline, "%s: [%s], want [%s]", name, got, want);
		harness_pause_ms(100);
	}
}

START_TEST(answers_follow_changes)
{
	REQUIRE_AGENT();
	reg("cn1", "10.6.0.1", "cached", "", "passing");
	reg("cn2", "10.6.0.2", "cached", "", "passing");
	expect_eventually("cached.service.consul.", LDNS_RR_TYPE_A, "10.6.0.1,10.6.0.2");
	/* warm: asked again and again, same answer */
	for (int i = 0; i < 20; i++) {
		char got[512];

		ask_text("cached.service.consul.", LDNS_RR_TYPE_A, got, sizeof(got));
		ck_assert_str_eq(got, "10.6.0.1,10.6.0.2");
	}
	/* cn2's check turns critical: it leaves the answer */
	reg("cn2", "10.6.0.2", "cached", "", "critical");
	expect_eventually("cached.service.consul.", LDNS_RR_TYPE_A, "10.6.0.1");
	/* deregistered: no healthy instance left */
	put_ok("/v1/catalog/deregister", "{\"Node\":\"cn1\",\"ServiceID\":\"cached\"}");
	expect_eventually("cached.service.consul.", LDNS_RR_TYPE_A, "NXDOMAIN");
	/* back to passing */
	reg("cn2", "10.6.0.2", "cached", "", "passing");
	expect_eventually("cached.service.consul.", LDNS_RR_TYPE_A, "10.6.0.2");
	/* node form: a new address shows */
	expect_eventually("cn1.node.consul.", LDNS_RR_TYPE_A, "10.6.0.1");
	reg("cn1", "10.6.0.11", "other", "", "passing");
	expect_eventually("cn1.node.consul.", LDNS_RR_TYPE_A, "10.6.0.11");
	/* a node that appears after a negative answer was cached */
	expect_eventually("late.node.consul.", LDNS_RR_TYPE_A, "NXDOMAIN");
	reg("late", "10.6.0.99", "other", "", "passing");
	expect_eventually("late.node.consul.", LDNS_RR_TYPE_A, "10.6.0.99");
}
END_TEST

START_TEST(ptr_of_service_address)
{
	REQUIRE_AGENT();
	reg("pn", "10.7.0.1", "ptrsvc", "10.7.9.9", "passing");
	/* a node's address names the node, a service's address the service */
	expect_eventually("1.0.7.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, "pn.node.dc1.consul.");
	expect_eventually("9.9.7.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, "ptrsvc.service.dc1.consul.");
	/* nobody's address, no recursors: REFUSED */
	expect_eventually("8.9.7.10.in-addr.arpa.", LDNS_RR_TYPE_PTR, "REFUSED");
}
END_TEST

START_TEST(query_form_nxdomain)
{
	ldns_pkt *p;

	REQUIRE_AGENT();
	p = ask("anything.query.consul.", LDNS_RR_TYPE_A, 3000);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NXDOMAIN);
	ck_assert(ldns_pkt_aa(p));
	ck_assert_uint_eq(ldns_rr_list_rr_count(ldns_pkt_authority(p)), 1);
	ck_assert_int_eq(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_authority(p), 0)),
			 LDNS_RR_TYPE_SOA);
	ldns_pkt_free(p);
}
END_TEST

START_TEST(truncated_packets_formerr)
{
	ldns_pkt *q = NULL, *p;
	uint8_t *wire = NULL;
	size_t len = 0;
	pid_t before = harness_daemon_pid(&ag, "dnsd");
	char got[512];

	REQUIRE_AGENT();
	ck_assert_int_gt(before, 0);
	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, "cached.service.consul.", LDNS_RR_TYPE_A,
						    LDNS_RR_CLASS_IN, 0),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 0x7272);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	/* every cut from a bare header to one byte short of the query, over
	 * UDP and TCP: FORMERR with the id echoed */
	for (size_t cut = 12; cut < len; cut++) {
		for (int tcp = 0; tcp < 2; tcp++) {
			p = exchange(wire, cut, tcp, 3000);
			ck_assert_msg(p != NULL, "no answer to a %zu-byte cut (tcp %d)", cut, tcp);
			ck_assert_uint_eq(ldns_pkt_id(p), 0x7272);
			ck_assert_msg(ldns_pkt_get_rcode(p) == LDNS_RCODE_FORMERR,
				      "%zu-byte cut: rcode %d", cut, (int)ldns_pkt_get_rcode(p));
			ldns_pkt_free(p);
		}
	}
	/* a label length running past the end */
	wire[12] = 60;
	p = exchange(wire, len, false, 3000);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_FORMERR);
	ldns_pkt_free(p);
	free(wire);
	/* still serving, same process */
	ask_text("anything.query.consul.", LDNS_RR_TYPE_A, got, sizeof(got));
	ck_assert_str_eq(got, "NXDOMAIN");
	ck_assert_int_eq(harness_daemon_pid(&ag, "dnsd"), before);
}
END_TEST

START_TEST(raftd_stopped_served_from_cache)
{
	pid_t raftd;
	char got[512];
	uint64_t deadline;
	bool servfail = false;
	int answered = 0;

	REQUIRE_AGENT();
	reg("sn1", "10.8.0.1", "stalesvc", "", "passing");
	expect_eventually("stalesvc.service.consul.", LDNS_RR_TYPE_A, "10.8.0.1");
	expect_eventually("sn1.node.consul.", LDNS_RR_TYPE_A, "10.8.0.1");
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_int_gt(raftd, 0);
	ck_assert_int_eq(kill(raftd, SIGSTOP), 0);
	/* a name never asked: raftd cannot answer, SERVFAIL (after the RPC
	 * time-out) */
	ask_text("never-asked.node.consul.", LDNS_RR_TYPE_A, got, sizeof(got));
	if (strcmp(got, "SERVFAIL") != 0) {
		(void)kill(raftd, SIGCONT);
		ck_abort_msg("cold name with raftd stopped: [%s]", got);
	}
	/* warm names: from the cache, then SERVFAIL once the data is older
	 * than max_stale (12 s); never anything else */
	deadline = harness_now_ms() + 60000;
	while (!servfail && harness_now_ms() < deadline) {
		char node[512];

		ask_text("stalesvc.service.consul.", LDNS_RR_TYPE_A, got, sizeof(got));
		ask_text("sn1.node.consul.", LDNS_RR_TYPE_A, node, sizeof(node));
		if (strcmp(got, "SERVFAIL") == 0) {
			servfail = true;
			break;
		}
		if (strcmp(got, "10.8.0.1") != 0 ||
		    (strcmp(node, "10.8.0.1") != 0 && strcmp(node, "SERVFAIL") != 0)) {
			(void)kill(raftd, SIGCONT);
			ck_abort_msg("raftd stopped: service [%s] node [%s]", got, node);
		}
		answered++;
		harness_pause_ms(200);
	}
	(void)kill(raftd, SIGCONT);
	ck_assert_msg(answered > 0, "no answer from the cache with raftd stopped");
	ck_assert_msg(servfail, "stale answers went on past max_stale");
	/* raftd is back: answers return, and follow changes again */
	expect_eventually("stalesvc.service.consul.", LDNS_RR_TYPE_A, "10.8.0.1");
	reg("sn1", "10.8.0.1", "stalesvc", "", "critical");
	expect_eventually("stalesvc.service.consul.", LDNS_RR_TYPE_A, "NXDOMAIN");
}
END_TEST

START_TEST(recursor_truncated_then_tcp)
{
	ldns_pkt *q = NULL, *p;
	uint8_t *wire = NULL;
	size_t len = 0;

	REQUIRE_AGENT();
	ck_assert_int_gt(up_port, 0);
	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, "big.test.", LDNS_RR_TYPE_A,
						    LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 0x3131);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	/* a UDP client gets the recursor's truncated answer, TC set */
	p = exchange(wire, len, false, 5000);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
	ck_assert(ldns_pkt_tc(p));
	ldns_pkt_free(p);
	/* over TCP dnsd asks the recursor again over TCP: all 30 */
	p = exchange(wire, len, true, 5000);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(ldns_pkt_id(p), 0x3131);
	ck_assert_int_eq(ldns_pkt_get_rcode(p), LDNS_RCODE_NOERROR);
	ck_assert(!ldns_pkt_tc(p));
	ck_assert_uint_eq(ldns_rr_list_rr_count(ldns_pkt_answer(p)), 30);
	ldns_pkt_free(p);
	free(wire);
}
END_TEST

static Suite *dns_cache_suite(void)
{
	Suite *s = suite_create("process-dns-cache");
	TCase *tc = tcase_create("dns-cache");

	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, answers_follow_changes);
	tcase_add_test(tc, ptr_of_service_address);
	tcase_add_test(tc, query_form_nxdomain);
	tcase_add_test(tc, truncated_packets_formerr);
	tcase_add_test(tc, recursor_truncated_then_tcp);
	tcase_add_test(tc, raftd_stopped_served_from_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return ptest_run(dns_cache_suite()); }
