/* Unit tests: dnsd's UDP and TCP transports and the raftd lookup path,
 * end to end inside one process: a fake raftd (an rpc_server answering
 * CATALOG_NODE) on an ipc socket, the real dns_server, dns_udp and
 * dns_tcp on ephemeral ports, and client sockets watched by the same
 * loop. Waits are loop runs until a condition holds, bounded by a guard
 * timer that fails the test. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <ldns/ldns.h>

#include "dns_server.h"
#include "dns_tcp.h"
#include "dns_udp.h"
#include "err.h"
#include "loop.h"
#include "rpc.h"

Suite *dns_transport_suite(void);

#define GUARD_MS 10000
#define MAX_KEPT 64

static struct {
	struct loop *l;
	void *zctx;
	char dir[64];
	char endpoint[128];
	struct rpc_server *raftd;
	struct rpc_client *rpc;
	struct dns_server *srv;
	struct dns_udp *udp;
	struct dns_tcp *tcp;
	struct rpc_req *kept[MAX_KEPT];
	size_t n_kept;
	size_t lookups; /* CATALOG_NODE requests seen by the fake raftd */
	bool guard_fired;
	bool down;	       /* the fake raftd keeps every request unanswered */
	const char *alpha_addr; /* alpha's address (NULL: 127.0.0.1) */
	uint64_t index;	       /* the node view's index (0: 5) */
} fx;

/* The fake raftd: "alpha" is 127.0.0.1, "six" is 2001:db8::6, "slow"
 * never answers, anything else is unknown. */
static enum rpc_disposition fake_raftd(void *ctx, struct rpc_req *req)
{
	struct proto_msg reply = proto_msg_make(PROTO_CATALOG_NODE_REPLY);
	struct proto_node *node;
	const char *name;

	if (req->msg.type != PROTO_CATALOG_NODE) {
		(void)rpc_reply_error(req, CAIRN_E_BADREQ, "unexpected");
		return RPC_DONE;
	}
	fx.lookups++;
	name = req->msg.u.catalog_node.node;
	ck_assert_uint_eq(req->msg.u.catalog_node.mode, 2); /* stale, as Consul's DNS */
	if ((strcasecmp(name, "slow") == 0 || fx.down ||
	     (req->msg.u.catalog_node.min_index &&
	      req->msg.u.catalog_node.min_index >= (fx.index ? fx.index : 5))) &&
	    fx.n_kept < MAX_KEPT) {
		/* "slow", raftd down, or a blocking query with nothing new */
		fx.kept[fx.n_kept++] = req;
		return RPC_KEEP;
	}
	reply.u.catalog_node_reply.index = fx.index ? fx.index : 5;
	if (strcasecmp(name, "alpha") == 0 || strcasecmp(name, "six") == 0) {
		node = arena_zalloc(&req->arena, sizeof(*node));
		node->node = "alpha";
		node->address = strcasecmp(name, "six") == 0 ? "2001:db8::6"
				: fx.alpha_addr			 ? fx.alpha_addr
								 : "127.0.0.1";
		node->datacenter = "dc1";
		reply.u.catalog_node_reply.nodes.v = node;
		reply.u.catalog_node_reply.nodes.n = 1;
	}
	(void)rpc_reply(req, &reply);
	return RPC_DONE;
}

static int64_t guard(struct loop *l, void *ctx)
{
	fx.guard_fired = true;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

/* Runs the loop until a callback stops it; fails on the guard. */
static void run_loop(void)
{
	uint64_t t = loop_timer_add(fx.l, GUARD_MS, guard, NULL);

	ck_assert_uint_ne(t, 0);
	ck_assert_int_eq(loop_run(fx.l), 0);
	loop_timer_del(fx.l, t);
	ck_assert_msg(!fx.guard_fired, "timed out waiting");
}

static uint64_t rpc_timeout_ms = 1000; /* generous: a loaded box must not SERVFAIL */
static bool with_cache;
static uint64_t max_stale_ms = 1000;

static void setup(void)
{
	char err[256];

	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/cairn-dnsd-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx.dir));
	snprintf(fx.endpoint, sizeof(fx.endpoint), "ipc://%s/raftd.sock", fx.dir);
	fx.l = loop_new();
	fx.zctx = zmq_ctx_new();
	ck_assert_ptr_nonnull(fx.l);
	ck_assert_ptr_nonnull(fx.zctx);
	const char *eps[] = {fx.endpoint, NULL};
	fx.raftd = rpc_server_new(fx.l, fx.zctx, eps, fake_raftd, NULL, err, sizeof(err));
	ck_assert_msg(fx.raftd != NULL, "%s", err);
	fx.rpc = rpc_client_new(fx.l, fx.zctx, fx.endpoint);
	ck_assert_ptr_nonnull(fx.rpc);
	fx.srv = dns_server_new(
	    fx.rpc, &(struct dns_server_cfg){
			.answer = {.domain = "consul.", .node_ttl_s = 0, .enable_truncate = true},
			.allow_stale = true,
			.max_stale_ms = max_stale_ms,
			.rpc_timeout_ms = rpc_timeout_ms,
			.max_pending = 64,
			.loop = fx.l,
			.use_cache = with_cache,
			.cache_wait_ms = 300,
			.cache_retry_max_ms = 200,
			.cache_idle_ms = 1500,
		    });
	ck_assert_ptr_nonnull(fx.srv);
	fx.udp = dns_udp_open(fx.l, fx.srv, "127.0.0.1", 0, err, sizeof(err));
	ck_assert_msg(fx.udp != NULL, "%s", err);
	fx.tcp = dns_tcp_open(fx.l, fx.srv, "127.0.0.1", 0, err, sizeof(err));
	ck_assert_msg(fx.tcp != NULL, "%s", err);
}

static void teardown(void)
{
	char path[160];

	dns_tcp_close(fx.tcp);
	dns_udp_close(fx.udp);
	dns_server_free(fx.srv);
	rpc_client_free(fx.rpc);
	for (size_t i = 0; i < fx.n_kept; i++)
		rpc_req_free(fx.kept[i]);
	rpc_server_free(fx.raftd);
	zmq_ctx_term(fx.zctx);
	loop_free(fx.l);
	snprintf(path, sizeof(path), "%s/raftd.sock", fx.dir);
	(void)unlink(path); /* may already be gone */
	(void)rmdir(fx.dir);
}

static uint8_t *query_wire(const char *name, ldns_rr_type type, uint16_t id, size_t *out_len)
{
	ldns_pkt *q = NULL;
	uint8_t *wire = NULL;

	ck_assert_int_eq(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
			 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, id);
	ck_assert_int_eq(ldns_pkt2wire(&wire, q, out_len), LDNS_STATUS_OK);
	ldns_pkt_free(q);
	return wire;
}

static struct sockaddr_in local(int port)
{
	struct sockaddr_in a = {0};

	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* ---- UDP ---------------------------------------------------------------- */

struct udp_client {
	int fd;
	uint8_t buf[4096];
	ssize_t len;
};

static void udp_client_readable(struct loop *l, void *ctx, unsigned events)
{
	struct udp_client *c = ctx;

	c->len = recv(c->fd, c->buf, sizeof(c->buf), MSG_DONTWAIT);
	if (c->len > 0)
		loop_stop(l);
}

/* One UDP exchange. While the RPC client is still connecting the answer
 * can be SERVFAIL (raftd unavailable); such answers are retried, which
 * polls the connection instead of sleeping. */
static ldns_pkt *udp_ask(const char *name, ldns_rr_type type, bool retry_servfail)
{
	struct udp_client c = {0};
	struct sockaddr_in to = local(dns_udp_port(fx.udp));
	ldns_pkt *reply = NULL;
	size_t len;
	uint8_t *wire = query_wire(name, type, 4242, &len);

	c.fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(c.fd, 0);
	ck_assert_int_eq(loop_watch_fd(fx.l, c.fd, LOOP_READ, udp_client_readable, &c), 0);
	for (int attempt = 0; attempt < 1000; attempt++) {
		ck_assert_int_eq(sendto(c.fd, wire, len, 0, (struct sockaddr *)&to, sizeof(to)),
				 (ssize_t)len);
		c.len = 0;
		run_loop();
		ck_assert_int_gt(c.len, 0);
		ck_assert_int_eq(ldns_wire2pkt(&reply, c.buf, (size_t)c.len), LDNS_STATUS_OK);
		if (!retry_servfail || ldns_pkt_get_rcode(reply) != LDNS_RCODE_SERVFAIL)
			break;
		ldns_pkt_free(reply);
		reply = NULL;
	}
	loop_unwatch_fd(fx.l, c.fd);
	close(c.fd);
	free(wire);
	ck_assert_ptr_nonnull(reply);
	ck_assert_int_eq(ldns_pkt_id(reply), 4242);
	return reply;
}

static void assert_answer(ldns_pkt *reply, ldns_rr_type type, const char *want)
{
	ldns_rr *rr;
	char *s;

	ck_assert_int_eq(ldns_pkt_get_rcode(reply), LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(ldns_pkt_ancount(reply), 1);
	rr = ldns_rr_list_rr(ldns_pkt_answer(reply), 0);
	ck_assert_int_eq(ldns_rr_get_type(rr), type);
	s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
	ck_assert_str_eq(s, want);
	free(s);
}

START_TEST(test_udp_lookups)
{
	ldns_pkt *r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true);

	assert_answer(r, LDNS_RR_TYPE_A, "127.0.0.1");
	ck_assert(ldns_pkt_aa(r));
	ldns_pkt_free(r);

	r = udp_ask("SIX.node.consul", LDNS_RR_TYPE_AAAA, true);
	assert_answer(r, LDNS_RR_TYPE_AAAA, "2001:db8::6");
	ldns_pkt_free(r);

	r = udp_ask("ghost.node.consul.", LDNS_RR_TYPE_A, true);
	ck_assert_int_eq(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	ck_assert_uint_eq(ldns_pkt_nscount(r), 1);
	ldns_pkt_free(r);

	/* answered without asking raftd */
	size_t before = fx.lookups;
	r = udp_ask("example.org.", LDNS_RR_TYPE_A, false);
	ck_assert_int_eq(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	ck_assert_uint_eq(fx.lookups, before);

	/* raftd keeps the request: SERVFAIL at the RPC time-out */
	r = udp_ask("slow.node.consul.", LDNS_RR_TYPE_A, false);
	ck_assert_int_eq(ldns_pkt_get_rcode(r), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(r);
	ck_assert_uint_eq(dns_server_pending(fx.srv, NULL), 0);
}
END_TEST

/* ---- TCP ---------------------------------------------------------------- */

struct tcp_client {
	int fd;
	uint8_t buf[65536];
	size_t len;
	size_t want; /* replies to wait for */
	size_t got;  /* complete replies in buf */
	bool eof;
	bool wait_eof; /* stop only at EOF */
};

static size_t count_frames(const uint8_t *b, size_t len)
{
	size_t n = 0, pos = 0;

	while (len - pos >= 2 && len - pos - 2 >= ((size_t)b[pos] << 8 | b[pos + 1])) {
		pos += 2 + ((size_t)b[pos] << 8 | b[pos + 1]);
		n++;
	}
	return n;
}

static void tcp_client_readable(struct loop *l, void *ctx, unsigned events)
{
	struct tcp_client *c = ctx;
	ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);

	if (n == 0) {
		c->eof = true;
		loop_unwatch_fd(l, c->fd);
		loop_stop(l);
		return;
	}
	if (n < 0)
		return;
	c->len += (size_t)n;
	c->got = count_frames(c->buf, c->len);
	if (!c->wait_eof && c->got >= c->want)
		loop_stop(l);
}

static int tcp_connect(void)
{
	struct sockaddr_in to = local(dns_tcp_port(fx.tcp));
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	return fd;
}

static void send_frame(int fd, const char *name, ldns_rr_type type, uint16_t id)
{
	size_t len;
	uint8_t *wire = query_wire(name, type, id, &len);
	uint8_t hdr[2] = {(uint8_t)(len >> 8), (uint8_t)len};

	ck_assert_int_eq(send(fd, hdr, 2, MSG_NOSIGNAL), 2);
	ck_assert_int_eq(send(fd, wire, len, MSG_NOSIGNAL), (ssize_t)len);
	free(wire);
}

/* The id -> rcode of each reply frame in c. */
static void parse_frames(const struct tcp_client *c, uint16_t *ids, ldns_pkt_rcode *rcodes)
{
	size_t pos = 0;

	for (size_t i = 0; i < c->got; i++) {
		size_t len = (size_t)c->buf[pos] << 8 | c->buf[pos + 1];
		ldns_pkt *p = NULL;

		ck_assert_int_eq(ldns_wire2pkt(&p, c->buf + pos + 2, len), LDNS_STATUS_OK);
		ids[i] = ldns_pkt_id(p);
		rcodes[i] = ldns_pkt_get_rcode(p);
		ldns_pkt_free(p);
		pos += 2 + len;
	}
}

START_TEST(test_tcp_pipelined_and_half_close)
{
	static struct tcp_client c;
	uint16_t ids[8];
	ldns_pkt_rcode rcodes[8];
	int seen = 0;

	/* make sure the RPC connection is up first (UDP retries SERVFAIL) */
	ldns_pkt_free(udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true));

	memset(&c, 0, sizeof(c));
	c.fd = tcp_connect();
	/* four queries in one go, then no more: answers must still come, and
	 * the server closes once they are out */
	send_frame(c.fd, "alpha.node.consul.", LDNS_RR_TYPE_A, 1);
	send_frame(c.fd, "ghost.node.consul.", LDNS_RR_TYPE_A, 2);
	send_frame(c.fd, "example.org.", LDNS_RR_TYPE_A, 3);
	send_frame(c.fd, "six.node.consul.", LDNS_RR_TYPE_AAAA, 4);
	ck_assert_int_eq(shutdown(c.fd, SHUT_WR), 0);
	c.want = 4;
	c.wait_eof = true;
	ck_assert_int_eq(loop_watch_fd(fx.l, c.fd, LOOP_READ, tcp_client_readable, &c), 0);
	run_loop();
	ck_assert(c.eof);
	ck_assert_uint_eq(c.got, 4);
	parse_frames(&c, ids, rcodes);
	for (size_t i = 0; i < 4; i++) {
		seen |= 1 << ids[i];
		if (ids[i] == 1 || ids[i] == 4)
			ck_assert_int_eq(rcodes[i], LDNS_RCODE_NOERROR);
		else if (ids[i] == 2)
			ck_assert_int_eq(rcodes[i], LDNS_RCODE_NXDOMAIN);
		else
			ck_assert_int_eq(rcodes[i], LDNS_RCODE_REFUSED);
	}
	ck_assert_int_eq(seen, 0x1e);
	close(c.fd);
}
END_TEST

static int64_t until_no_conns(struct loop *l, void *ctx)
{
	if (dns_tcp_conns(fx.tcp) == 0) {
		loop_stop(l);
		return LOOP_TIMER_STOP;
	}
	return 5;
}

/* Runs with an RPC time-out far beyond the guard: the pending lookup can
 * only go away because the connection's reset made the server forget it. */
static void setup_long_rpc(void)
{
	rpc_timeout_ms = 600000;
	setup();
	rpc_timeout_ms = 1000;
}

START_TEST(test_tcp_reset_with_pending)
{
	static struct tcp_client c;
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	ldns_pkt_free(udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true));
	memset(&c, 0, sizeof(c));
	c.fd = tcp_connect();
	send_frame(c.fd, "slow.node.consul.", LDNS_RR_TYPE_A, 9);
	send_frame(c.fd, "alpha.node.consul.", LDNS_RR_TYPE_A, 10);
	c.want = 1;
	ck_assert_int_eq(loop_watch_fd(fx.l, c.fd, LOOP_READ, tcp_client_readable, &c), 0);
	run_loop(); /* the fast one comes back first */
	ck_assert_uint_ge(c.got, 1);
	ck_assert_uint_eq(dns_server_pending(fx.srv, NULL), 1);
	ck_assert_uint_eq(rpc_client_pending(fx.rpc), 1);
	loop_unwatch_fd(fx.l, c.fd);
	/* close with a reset */
	ck_assert_int_eq(setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
	close(c.fd);
	ck_assert_uint_ne(loop_timer_add(fx.l, 5, until_no_conns, NULL), 0);
	run_loop();
	ck_assert_uint_eq(dns_tcp_conns(fx.tcp), 0);
	ck_assert_uint_eq(dns_server_pending(fx.srv, NULL), 0);
	ck_assert_uint_eq(rpc_client_pending(fx.rpc), 0); /* the call was cancelled */
}
END_TEST

START_TEST(test_tcp_garbage_frame)
{
	static struct tcp_client c;
	const uint8_t junk[] = {0x00, 0x05, 0x12, 0x34, 0x01, 0x00, 0x00};
	uint16_t ids[2];
	ldns_pkt_rcode rcodes[2];

	memset(&c, 0, sizeof(c));
	c.fd = tcp_connect();
	/* a 5-byte message: too short for a header, dropped; the 0-length
	 * frame too; then a real query still gets its answer */
	ck_assert_int_eq(send(c.fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	send_frame(c.fd, "example.org.", LDNS_RR_TYPE_A, 77);
	c.want = 1;
	ck_assert_int_eq(loop_watch_fd(fx.l, c.fd, LOOP_READ, tcp_client_readable, &c), 0);
	run_loop();
	ck_assert_uint_eq(c.got, 1);
	parse_frames(&c, ids, rcodes);
	ck_assert_int_eq(ids[0], 77);
	ck_assert_int_eq(rcodes[0], LDNS_RCODE_REFUSED);
	loop_unwatch_fd(fx.l, c.fd);
	close(c.fd);
}
END_TEST

/* ---- the answer cache ------------------------------------------------ */

static void setup_cache(void)
{
	with_cache = true;
	max_stale_ms = 3000;
	setup();
	with_cache = false;
	max_stale_ms = 1000;
}

static int64_t stop_loop(struct loop *l, void *ctx)
{
	(void)ctx;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

/* Lets the loop run for ms (timers, RPC replies), without a query. */
static void run_for(uint64_t ms)
{
	ck_assert_uint_ne(loop_timer_add(fx.l, ms, stop_loop, NULL), 0);
	run_loop();
}

/* Answers every kept request (blocking queries) with the current state. */
static void release_kept(void)
{
	size_t n = fx.n_kept;

	fx.n_kept = 0;
	for (size_t i = 0; i < n; i++) {
		struct proto_msg reply = proto_msg_make(PROTO_CATALOG_NODE_REPLY);
		struct proto_node *node = arena_zalloc(&fx.kept[i]->arena, sizeof(*node));

		node->node = "alpha";
		node->address = fx.alpha_addr ? fx.alpha_addr : "127.0.0.1";
		reply.u.catalog_node_reply.index = fx.index ? fx.index : 5;
		reply.u.catalog_node_reply.nodes.v = node;
		reply.u.catalog_node_reply.nodes.n = 1;
		(void)rpc_reply(fx.kept[i], &reply);
	}
}

static const char *answer_of(ldns_pkt *r, char *buf, size_t len)
{
	char *s;

	if (ldns_pkt_get_rcode(r) != LDNS_RCODE_NOERROR || ldns_pkt_ancount(r) != 1)
		return ldns_pkt_get_rcode(r) == LDNS_RCODE_SERVFAIL ? "SERVFAIL" : "other";
	s = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(r), 0), 0));
	snprintf(buf, len, "%s", s ? s : "?");
	free(s);
	return buf;
}

START_TEST(test_cache_steady_state_no_rpc)
{
	struct dns_server_stats st;
	ldns_pkt *r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true);
	size_t after_first;
	char buf[64];
	bool changed = false, stale_seen = false, servfail_seen = false, back = false;

	assert_answer(r, LDNS_RR_TYPE_A, "127.0.0.1");
	ldns_pkt_free(r);
	/* the first fetch, then the blocking query parked at raftd */
	run_for(50);
	ck_assert_uint_eq(fx.n_kept, 1);
	ck_assert_uint_eq(fx.kept[0]->msg.u.catalog_node.min_index, 5);
	ck_assert_uint_eq(fx.kept[0]->msg.u.catalog_node.wait_ms, 300);
	after_first = fx.lookups;
	for (int i = 0; i < 20; i++) {
		r = udp_ask("ALPHA.node.consul.", LDNS_RR_TYPE_A, false);
		assert_answer(r, LDNS_RR_TYPE_A, "127.0.0.1");
		ldns_pkt_free(r);
	}
	/* steady state: not one RPC for 20 queries */
	ck_assert_uint_eq(fx.lookups, after_first);
	dns_server_stats(fx.srv, &st);
	ck_assert_uint_ge(st.cache_hits, 20);
	ck_assert_uint_eq(st.cache_entries, 1);

	/* the node changes: the blocking query returns, the answer follows */
	fx.alpha_addr = "10.0.0.9";
	fx.index = 6;
	release_kept();
	for (int i = 0; i < 100 && !changed; i++) {
		r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, false);
		changed = strcmp(answer_of(r, buf, sizeof(buf)), "10.0.0.9") == 0;
		ldns_pkt_free(r);
		if (!changed)
			run_for(20);
	}
	ck_assert_msg(changed, "the cached answer did not follow the change");
	run_for(50);
	ck_assert_uint_eq(fx.n_kept, 1);
	ck_assert_uint_eq(fx.kept[0]->msg.u.catalog_node.min_index, 6);

	/* raftd stops answering: the blocking query times out (300 ms wait
	 * + 1 s), the value is served stale up to max_stale (3 s after the
	 * last success), then SERVFAIL; every answer is right or SERVFAIL */
	fx.down = true;
	for (int i = 0; i < 200 && !servfail_seen; i++) {
		const char *a;

		r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, false);
		a = answer_of(r, buf, sizeof(buf));
		ldns_pkt_free(r);
		if (strcmp(a, "SERVFAIL") == 0) {
			servfail_seen = true;
			break;
		}
		ck_assert_str_eq(a, "10.0.0.9");
		dns_server_stats(fx.srv, &st);
		stale_seen = stale_seen || st.cache_stale > 0;
		run_for(50);
	}
	ck_assert_msg(stale_seen, "never served stale");
	ck_assert_msg(servfail_seen, "stale answers beyond max_stale");

	/* raftd is back: a retry succeeds and the answers come back */
	fx.down = false;
	for (int i = 0; i < 200 && !back; i++) {
		r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, false);
		back = strcmp(answer_of(r, buf, sizeof(buf)), "10.0.0.9") == 0;
		ldns_pkt_free(r);
		if (!back)
			run_for(50);
	}
	ck_assert_msg(back, "no answers after raftd came back");
}
END_TEST

START_TEST(test_cache_idle_views_dropped)
{
	struct dns_server_stats st;
	ldns_pkt *r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true);
	size_t before;

	ldns_pkt_free(r);
	dns_server_stats(fx.srv, &st);
	ck_assert_uint_eq(st.cache_entries, 1);
	/* nobody asks for 1.5 s: the view and its watch go */
	for (int i = 0; i < 100 && st.cache_entries; i++) {
		run_for(100);
		dns_server_stats(fx.srv, &st);
	}
	ck_assert_uint_eq(st.cache_entries, 0);
	ck_assert_uint_eq(rpc_client_pending(fx.rpc), 0); /* the blocking query cancelled */
	/* asked again: fetched again */
	before = fx.lookups;
	r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, false);
	assert_answer(r, LDNS_RR_TYPE_A, "127.0.0.1");
	ldns_pkt_free(r);
	ck_assert_uint_gt(fx.lookups, before);
}
END_TEST

START_TEST(test_tcp_idle_timeout)
{
	struct tcp_client c;
	uint16_t ids[1];
	ldns_pkt_rcode rcodes[1];

	dns_tcp_set_idle_ms(fx.tcp, 300);
	memset(&c, 0, sizeof(c));
	c.fd = tcp_connect();
	/* one query answered, then silence: the server closes */
	send_frame(c.fd, "example.org.", LDNS_RR_TYPE_A, 91);
	c.want = 1;
	c.wait_eof = true;
	ck_assert_int_eq(loop_watch_fd(fx.l, c.fd, LOOP_READ, tcp_client_readable, &c), 0);
	run_loop();
	ck_assert(c.eof);
	ck_assert_uint_eq(c.got, 1);
	parse_frames(&c, ids, rcodes);
	ck_assert_int_eq(ids[0], 91);
	ck_assert_uint_eq(dns_tcp_conns(fx.tcp), 0);
	loop_unwatch_fd(fx.l, c.fd);
	close(c.fd);
}
END_TEST

START_TEST(test_udp_batch_helpers)
{
	static struct dns_udp_batch b;
	struct sockaddr_in to = local(0);
	socklen_t tl = sizeof(to);
	int rx = socket(AF_INET, SOCK_DGRAM, 0), tx = socket(AF_INET, SOCK_DGRAM, 0);
	uint8_t big[DNS_UDP_DGRAM_MAX + 1] = {0}, buf[64];
	size_t got = 0;
	bool seen[DNS_UDP_BATCH] = {false};

	ck_assert_int_ge(rx, 0);
	ck_assert_int_ge(tx, 0);
	ck_assert_int_eq(bind(rx, (struct sockaddr *)&to, sizeof(to)), 0);
	ck_assert_int_eq(getsockname(rx, (struct sockaddr *)&to, &tl), 0);
	dns_udp_batch_init(&b);
	ck_assert(!dns_udp_batch_add(&b, (struct sockaddr *)&to, tl, big, sizeof(big)));
	for (int i = 0; i < DNS_UDP_BATCH; i++) {
		uint8_t msg[2] = {(uint8_t)i, 0xab};

		ck_assert(dns_udp_batch_add(&b, (struct sockaddr *)&to, tl, msg, sizeof(msg)));
	}
	ck_assert(!dns_udp_batch_add(&b, (struct sockaddr *)&to, tl, buf, 1)); /* full */
	ck_assert_uint_eq(b.n, DNS_UDP_BATCH);
	ck_assert_uint_eq(dns_udp_batch_flush(&b, tx), DNS_UDP_BATCH);
	ck_assert_uint_eq(b.n, 0);
	/* loopback delivers at once: every datagram is queued on rx */
	for (;;) {
		ssize_t n = recv(rx, buf, sizeof(buf), MSG_DONTWAIT);

		if (n < 0)
			break;
		ck_assert_int_eq(n, 2);
		ck_assert_uint_lt(buf[0], DNS_UDP_BATCH);
		ck_assert_uint_eq(buf[1], 0xab);
		ck_assert(!seen[buf[0]]);
		seen[buf[0]] = true;
		got++;
	}
	ck_assert_uint_eq(got, DNS_UDP_BATCH);
	ck_assert_uint_eq(dns_udp_batch_flush(&b, tx), 0);
	close(rx);
	close(tx);
}
END_TEST

struct burst {
	int fd;
	size_t got;
	size_t want;
	bool ids[64];
};

static void burst_readable(struct loop *l, void *ctx, unsigned events)
{
	struct burst *bu = ctx;
	uint8_t buf[4096];
	ssize_t n;
	ldns_pkt *r = NULL;

	(void)events;
	while ((n = recv(bu->fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		char *qname;

		ck_assert_int_eq(ldns_wire2pkt(&r, buf, (size_t)n), LDNS_STATUS_OK);
		assert_answer(r, LDNS_RR_TYPE_A, "127.0.0.1");
		ck_assert_uint_lt(ldns_pkt_id(r), 64);
		/* the question comes back as asked (a reused reply is patched) */
		qname = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(r), 0)));
		ck_assert_str_eq(qname, ldns_pkt_id(r) % 2 ? "ALPHA.Node.consul." : "alpha.node.consul.");
		free(qname);
		ck_assert(!bu->ids[ldns_pkt_id(r)]);
		bu->ids[ldns_pkt_id(r)] = true;
		ldns_pkt_free(r);
		bu->got++;
	}
	if (bu->got == bu->want)
		loop_stop(l);
}

START_TEST(test_udp_burst_from_cache)
{
	struct burst bu = {.want = 64};
	struct dns_server_stats st;
	struct sockaddr_in to = local(dns_udp_port(fx.udp));
	ldns_pkt *r = udp_ask("alpha.node.consul.", LDNS_RR_TYPE_A, true);
	size_t before;

	ldns_pkt_free(r);
	run_for(50);
	before = fx.lookups;
	bu.fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(bu.fd, 0);
	/* 64 queries before the server reads any: several recvmmsg batches,
	 * each answered with one sendmmsg */
	for (uint16_t i = 0; i < 64; i++) {
		size_t len;
		uint8_t *wire = query_wire(i % 2 ? "ALPHA.Node.consul." : "alpha.node.consul.",
					   LDNS_RR_TYPE_A, i, &len);

		ck_assert_int_eq(sendto(bu.fd, wire, len, 0, (struct sockaddr *)&to, sizeof(to)),
				 (ssize_t)len);
		free(wire);
	}
	ck_assert_int_eq(loop_watch_fd(fx.l, bu.fd, LOOP_READ, burst_readable, &bu), 0);
	run_loop();
	ck_assert_uint_eq(bu.got, 64);
	ck_assert_uint_eq(fx.lookups, before);
	/* the reply stored for the warm-up query serves every spelling;
	 * only a turn of the wall second forces a rebuild (one per turn) */
	dns_server_stats(fx.srv, &st);
	ck_assert_uint_ge(st.wire_reused, 48);
	loop_unwatch_fd(fx.l, bu.fd);
	close(bu.fd);
}
END_TEST

Suite *dns_transport_suite(void)
{
	Suite *s = suite_create("dns_transport");
	TCase *tc = tcase_create("udp_tcp");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_udp_lookups);
	tcase_add_test(tc, test_tcp_pipelined_and_half_close);
	tcase_add_test(tc, test_tcp_garbage_frame);
	tcase_add_test(tc, test_tcp_idle_timeout);
	suite_add_tcase(s, tc);

	TCase *lr = tcase_create("long_rpc");
	tcase_add_checked_fixture(lr, setup_long_rpc, teardown);
	tcase_set_timeout(lr, 30);
	tcase_add_test(lr, test_tcp_reset_with_pending);
	suite_add_tcase(s, lr);

	TCase *ca = tcase_create("cache");
	tcase_add_checked_fixture(ca, setup_cache, teardown);
	tcase_set_timeout(ca, 60);
	tcase_add_test(ca, test_cache_steady_state_no_rpc);
	tcase_add_test(ca, test_udp_burst_from_cache);
	tcase_add_test(ca, test_cache_idle_views_dropped);
	tcase_add_test(ca, test_udp_batch_helpers);
	suite_add_tcase(s, ca);
	return s;
}
