/* Process test: malformed input on every socket of a real agent. Malformed
 * msgpack sent with a ZeroMQ DEALER straight to raftd's and gossipd's ipc
 * ROUTER sockets gets an ERROR reply; garbage on the DNS and HTTP ports gets
 * an error answer or silence; every daemon stays up (same pid) and nothing
 * is written. */
#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "arena.h"
#include "err.h"
#include "proto.h"
#include "ptest.h"

PTEST_AGENT_FIXTURE("malformed-node", NULL)

struct bad_frame {
	const char *what;
	const uint8_t *bytes;
	size_t len;
	bool envelope_ok; /* version/type/id readable: the reply echoes the id */
	uint64_t id;
};

#define B(s) (const uint8_t *)(s), sizeof(s) - 1

/* Hand-made msgpack: [version, type, id, body] with something wrong. */
static const struct bad_frame bad_frames[] = {
    {"never-used byte 0xc1", B("\xc1\xc1\xc1"), false, 0},
    {"empty frame", (const uint8_t *)"", 0, false, 0},
    {"not an array", B("\x05"), false, 0},
    {"array too short", B("\x92\x01\x02"), false, 0},
    {"array too long", B("\x95\x01\x11\x07\x91\x00\x00"), false, 0},
    {"version 99", B("\x94\x63\x11\x07\x91\x00"), false, 0},
    {"unknown type 250", B("\x94\x01\xcc\xfa\x08\x90"), true, 8},
    {"PING with no fields", B("\x94\x01\x11\x09\x90"), true, 9},
    {"PING with a string field", B("\x94\x01\x11\x0a\x91\xa1x"), true, 10},
    {"body not an array", B("\x94\x01\x11\x0b\x00"), true, 11},
    {"string claims 4 GiB", B("\x94\x01\x11\x0c\x91\xdb\xff\xff\xff\xff"), true, 12},
    {"array claims 4 G elements", B("\x94\x01\x11\x0d\xdd\xff\xff\xff\xff"), true, 13},
    {"truncated map", B("\x94\x01\x11\x0e\x91\x81"), true, 14},
    {"negative id", B("\x94\x01\x11\xff\x91\x00"), false, 0},
};

/* Sends one frame to endpoint and asserts an ERROR reply. */
static void expect_error_reply(const char *endpoint, const struct bad_frame *f)
{
	struct arena ar;
	struct proto_msg m;
	int rc;

	arena_init(&ar, 0);
	rc = zmq_roundtrip(endpoint, f->bytes, f->len, 5000, &ar, &m);
	ck_assert_msg(rc == 0, "%s: %s: no decodable reply (%s)", endpoint, f->what,
		      rc == -ETIMEDOUT ? "timed out" : err_str(rc));
	ck_assert_msg(m.type == PROTO_ERROR, "%s: %s: reply is %s, want ERROR", endpoint, f->what,
		      proto_type_name(m.type));
	ck_assert_msg(m.u.error.code < 0, "%s: %s: ERROR code %lld not negative", endpoint,
		      f->what, (long long)m.u.error.code);
	ck_assert_msg(m.u.error.message && m.u.error.message[0], "%s: %s: ERROR without message",
		      endpoint, f->what);
	if (f->envelope_ok)
		ck_assert_msg(m.id == f->id, "%s: %s: reply id %llu, want %llu", endpoint, f->what,
			      (unsigned long long)m.id, (unsigned long long)f->id);
	arena_close(&ar);
}

/* A valid PING gets a reply (PONG, or an ERROR if the daemon does not
 * implement PING): the socket still works after the garbage. */
static void expect_ping_answered(const char *endpoint)
{
	struct proto_msg req = proto_msg_make(PROTO_PING), m;
	struct arena ar;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	req.id = 4242;
	req.u.ping.sent_ms = 77;
	ck_assert_int_eq(proto_encode(&req, &buf, &len), 0);
	arena_init(&ar, 0);
	rc = zmq_roundtrip(endpoint, buf, len, 5000, &ar, &m);
	free(buf);
	ck_assert_msg(rc == 0, "%s: PING after garbage: no reply (%s)", endpoint, err_str(rc));
	ck_assert_msg(m.id == 4242, "%s: PING reply id %llu", endpoint, (unsigned long long)m.id);
	ck_assert_msg(m.type == PROTO_PONG || m.type == PROTO_ERROR, "%s: PING answered with %s",
		      endpoint, proto_type_name(m.type));
	if (m.type == PROTO_PONG)
		ck_assert_uint_eq(m.u.pong.sent_ms, 77);
	arena_close(&ar);
}

static void check_socket(const char *sock, const char *role)
{
	char ep[512];
	pid_t before = harness_daemon_pid(&ag, role);

	ck_assert_msg(before > 0, "cairn-%s not running", role);
	harness_ipc_endpoint(&ag, sock, ep, sizeof(ep));
	for (size_t i = 0; i < sizeof(bad_frames) / sizeof(bad_frames[0]); i++)
		expect_error_reply(ep, &bad_frames[i]);
	expect_ping_answered(ep);
	ck_assert_msg(harness_daemon_pid(&ag, role) == before, "cairn-%s restarted (crashed?)",
		      role);
}

START_TEST(raftd_socket_rejects_garbage)
{
	REQUIRE_AGENT();
	check_socket("raftd", "raftd");
}
END_TEST

START_TEST(gossipd_socket_rejects_garbage)
{
	REQUIRE_AGENT();
	check_socket("gossipd", "gossipd");
}
END_TEST

/* Encodes a KV_PUT of key "mal/<tag>" and returns it (caller frees). */
static uint8_t *kv_put_frame(const char *key, size_t *out_len)
{
	struct proto_msg m = proto_msg_make(PROTO_KV_PUT);
	uint8_t *buf = NULL;

	m.id = 99;
	m.u.kv_put.key = key;
	m.u.kv_put.value.ptr = (const uint8_t *)"evil";
	m.u.kv_put.value.len = 4;
	ck_assert_int_eq(proto_encode(&m, &buf, out_len), 0);
	return buf;
}

START_TEST(raftd_malformed_writes_write_nothing)
{
	char ep[512];
	size_t len;
	uint8_t *buf;
	pid_t before;
	struct http_resp r;

	REQUIRE_AGENT();
	before = harness_daemon_pid(&ag, "raftd");
	harness_ipc_endpoint(&ag, "raftd", ep, sizeof(ep));

	/* Every strict prefix of a valid KV_PUT. */
	buf = kv_put_frame("mal/truncated", &len);
	for (size_t cut = 1; cut < len; cut++) {
		struct bad_frame f = {"truncated KV_PUT", buf, cut, false, 0};
		expect_error_reply(ep, &f);
	}
	/* A valid KV_PUT with its version byte changed. */
	{
		uint8_t *copy = malloc(len);
		struct bad_frame f = {"KV_PUT version 2", copy, len, false, 0};
		ck_assert_ptr_nonnull(copy);
		memcpy(copy, buf, len);
		ck_assert_uint_eq(copy[0], 0x94); /* fixarray of 4 */
		copy[1] = 0x02;
		expect_error_reply(ep, &f);
		free(copy);
	}
	free(buf);
	/* KV_PUT whose key is an integer. */
	{
		static const uint8_t wrong_type[] = {0x94, 0x01, 0x04, 0x21, 0x96, 0xc0, 0x07,
						     0xc4, 0x01, 'x',  0x00, 0xc2, 0x00};
		struct bad_frame f = {"KV_PUT key as int", wrong_type, sizeof(wrong_type), true,
				      0x21};
		expect_error_reply(ep, &f);
	}
	ck_assert_msg(harness_daemon_pid(&ag, "raftd") == before, "raftd restarted");
	http_get(&ag, "/v1/kv/mal/?recurse", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

START_TEST(dnsd_survives_garbage)
{
	static const uint8_t garbage[][16] = {
	    {0},
	    {0x12, 0x34, 0x01, 0x00, 0x00, 0x05, 0, 0, 0, 0, 0, 0}, /* qdcount 5, no questions */
	    {0x12, 0x35, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0x3f, 'a'}, /* label overrun */
	    {0x12, 0x36, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0}, /* a response, not a query */
	};
	static const size_t lens[] = {1, 12, 14, 12};
	struct sockaddr_in sa = {.sin_family = AF_INET};
	pid_t before;
	char name[128];
	struct dns_result d;
	int fd;

	REQUIRE_AGENT();
	before = harness_daemon_pid(&ag, "dnsd");
	ck_assert_msg(before > 0, "dnsd not running");
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)ag.dns_port);
	for (size_t i = 0; i < 4; i++) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		uint8_t rbuf[1500];
		ck_assert_int_ge(
		    sendto(fd, garbage[i], lens[i], 0, (struct sockaddr *)&sa, sizeof(sa)), 0);
		/* An answer (FORMERR) or silence are both fine; drain it. */
		if (poll(&pfd, 1, 500) > 0)
			(void)recv(fd, rbuf, sizeof(rbuf), 0);
	}
	close(fd);
	/* TCP: a garbage message, a length that promises more than is sent,
	 * and a connection that says nothing, all left open while we query. */
	{
		static const uint8_t tcp_garbage[] = {0x00, 0x05, 'g', 'a', 'r', 'b', 'a'};
		static const uint8_t tcp_short[] = {0xff, 0xff, 0x12, 0x34};
		int t[3];
		for (int i = 0; i < 3; i++) {
			t[i] = socket(AF_INET, SOCK_STREAM, 0);
			ck_assert_int_ge(t[i], 0);
			ck_assert_int_eq(connect(t[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		}
		ck_assert_int_ge(send(t[0], tcp_garbage, sizeof(tcp_garbage), MSG_NOSIGNAL), 0);
		ck_assert_int_ge(send(t[1], tcp_short, sizeof(tcp_short), MSG_NOSIGNAL), 0);
		snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
		ck_assert_msg(dns_query(&ag, name, LDNS_RR_TYPE_A, 5000, &d) == 0 &&
				      d.rcode == LDNS_RCODE_NOERROR,
			      "UDP query not answered while TCP clients misbehave");
		for (int i = 0; i < 3; i++)
			close(t[i]);
	}
	snprintf(name, sizeof(name), "%s.node.consul.", ag.name);
	{
		uint64_t deadline = harness_now_ms() + 20000;
		int rc;
		do {
			rc = dns_query(&ag, name, LDNS_RR_TYPE_A, 1000, &d);
			if (rc == 0 && d.rcode == LDNS_RCODE_NOERROR)
				break;
			harness_pause_ms(100);
		} while (harness_now_ms() < deadline);
		ck_assert_msg(rc == 0, "no DNS answer after garbage: %s", strerror(-rc));
	}
	ck_assert_int_eq(d.rcode, LDNS_RCODE_NOERROR);
	ck_assert_uint_eq(d.n_a, 1);
	ck_assert_msg(harness_daemon_pid(&ag, "dnsd") == before, "dnsd restarted");
}
END_TEST

/* Raw bytes to the HTTP port; returns what came back (may be empty). */
static void raw_http(const char *req, size_t len, char *out, size_t outlen)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	size_t n = 0;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint64_t deadline = harness_now_ms() + 5000;

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)ag.http_port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_ge(send(fd, req, len, MSG_NOSIGNAL), 0);
	(void)shutdown(fd, SHUT_WR);
	while (n + 1 < outlen && harness_now_ms() < deadline) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t got;
		if (poll(&pfd, 1, 500) <= 0)
			continue;
		got = recv(fd, out + n, outlen - 1 - n, 0);
		if (got <= 0)
			break;
		n += (size_t)got;
	}
	out[n] = '\0';
	close(fd);
}

START_TEST(http_garbage)
{
	static const char *const reqs[] = {
	    "\x01\x02\x03 garbage\r\n\r\n",
	    "GET /v1/kv/x HTTP/9.9\r\n\r\n",
	    "PUT /v1/kv/mal/len HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nabc",
	    "PUT /v1/kv/mal/chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	    "zz\r\nabc\r\n0\r\n\r\n",
	    "GET /v1/kv/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
	};
	pid_t before;
	char out[4096];
	struct http_resp r;

	REQUIRE_AGENT();
	before = harness_daemon_pid(&ag, "apid");
	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		raw_http(reqs[i], strlen(reqs[i]), out, sizeof(out));
		/* Either the connection is closed or a 4xx (or 505 for the
		 * unknown HTTP version) comes back. */
		if (out[0])
			ck_assert_msg(strncmp(out, "HTTP/1.", 7) == 0 &&
					  (out[9] == '4' || strncmp(out + 9, "505", 3) == 0),
				      "request %zu answered: %.100s", i, out);
	}
	/* Slow clients holding half-sent requests do not stall the others. */
	{
		enum { N = 50 };
		int fds[N];
		struct sockaddr_in sa = {.sin_family = AF_INET};
		static const char partial[] = "GET /v1/kv/x HTTP/1.1\r\nHost: x\r\nX-Slow: ";

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa.sin_port = htons((uint16_t)ag.http_port);
		for (int i = 0; i < N; i++) {
			fds[i] = socket(AF_INET, SOCK_STREAM, 0);
			ck_assert_int_ge(fds[i], 0);
			ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
			ck_assert_int_ge(send(fds[i], partial, sizeof(partial) - 1, MSG_NOSIGNAL), 0);
		}
		for (int i = 0; i < 10; i++) {
			http_get(&ag, "/v1/status/leader", &r);
			EXPECT_STATUS(r, 200);
			http_resp_free(&r);
		}
		for (int i = 0; i < N; i++)
			close(fds[i]);
	}
	http_get(&ag, "/v1/kv/mal/?recurse", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
	ck_assert_msg(harness_daemon_pid(&ag, "apid") == before, "apid restarted");
}
END_TEST

/* Sends a valid request and returns its decoded reply (memory in ar). */
static void roundtrip_ok(const char *sock, struct proto_msg *req, struct arena *ar,
			 struct proto_msg *out)
{
	char ep[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	harness_ipc_endpoint(&ag, sock, ep, sizeof(ep));
	ck_assert_int_eq(proto_encode(req, &buf, &len), 0);
	rc = zmq_roundtrip(ep, buf, len, 5000, ar, out);
	free(buf);
	ck_assert_msg(rc == 0, "%s: %s: no reply (%s)", sock, proto_type_name(req->type),
		      err_str(rc));
	ck_assert_msg(out->id == req->id, "%s: reply id %llu, want %llu", sock,
		      (unsigned long long)out->id, (unsigned long long)req->id);
}

/* The same sockets answer well-formed requests as messages.def says. */
START_TEST(ipc_valid_requests)
{
	struct arena ar;
	struct proto_msg req, rep;
	char want[64];
	const struct proto_member *self = NULL;

	REQUIRE_AGENT();
	arena_init(&ar, 0);

	req = proto_msg_make(PROTO_MEMBERS);
	req.id = 501;
	roundtrip_ok("gossipd", &req, &ar, &rep);
	ck_assert_msg(rep.type == PROTO_MEMBERS_REPLY, "MEMBERS answered with %s",
		      proto_type_name(rep.type));
	ck_assert_msg(rep.u.members_reply.seq >= 1, "snapshot seq %llu: the join is event 1",
		      (unsigned long long)rep.u.members_reply.seq);
	for (size_t i = 0; i < rep.u.members_reply.members.n; i++)
		if (strcmp(rep.u.members_reply.members.v[i].name, ag.name) == 0)
			self = &rep.u.members_reply.members.v[i];
	ck_assert_msg(self != NULL, "MEMBERS_REPLY lacks the local member");
	ck_assert_str_eq(self->addr, "127.0.0.1");
	ck_assert_uint_eq(self->port, (uint64_t)ag.serf_lan_port);
	ck_assert_uint_eq(self->status, 1);
	arena_reset(&ar);

	req = proto_msg_make(PROTO_STATUS_LEADER);
	req.id = 502;
	roundtrip_ok("raftd", &req, &ar, &rep);
	ck_assert_msg(rep.type == PROTO_STATUS_LEADER_REPLY, "STATUS_LEADER answered with %s",
		      proto_type_name(rep.type));
	snprintf(want, sizeof(want), "127.0.0.1:%d", ag.server_port);
	ck_assert_str_eq(rep.u.status_leader_reply.leader, want);
	arena_reset(&ar);

	req = proto_msg_make(PROTO_KV_GET);
	req.id = 503;
	req.u.kv_get.key = "mal/none";
	roundtrip_ok("raftd", &req, &ar, &rep);
	ck_assert_msg(rep.type == PROTO_KV_GET_REPLY, "KV_GET answered with %s",
		      proto_type_name(rep.type));
	ck_assert_msg(rep.u.kv_get_reply.index > 0, "KV_GET_REPLY index 0");
	ck_assert_uint_eq(rep.u.kv_get_reply.entries.n, 0);
	arena_reset(&ar);

	/* A request type raftd does not serve: an ERROR, not silence. */
	req = proto_msg_make(PROTO_MEMBERS);
	req.id = 504;
	roundtrip_ok("raftd", &req, &ar, &rep);
	ck_assert_msg(rep.type == PROTO_ERROR, "MEMBERS to raftd answered with %s",
		      proto_type_name(rep.type));
	arena_close(&ar);
}
END_TEST

START_TEST(sigterm_stops_everything)
{
	char err[1024];
	int rc;

	REQUIRE_AGENT();
	rc = harness_agent_terminate(&ag, SIGTERM, 20000, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-malformed");
	TCase *tc = tcase_create("malformed");

	tcase_set_timeout(tc, 90);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, raftd_socket_rejects_garbage);
	tcase_add_test(tc, gossipd_socket_rejects_garbage);
	tcase_add_test(tc, raftd_malformed_writes_write_nothing);
	tcase_add_test(tc, dnsd_survives_garbage);
	tcase_add_test(tc, http_garbage);
	tcase_add_test(tc, ipc_valid_requests);
	tcase_add_test(tc, sigterm_stops_everything);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
