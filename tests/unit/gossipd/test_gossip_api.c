/* Unit tests: gossipd's local interface (gossip_api.c) over real ipc
 * sockets in one process: MEMBERS on the LAN and WAN pools, PING, an
 * unsupported request, and MEMBER_EVENT on the PUB socket. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "arena.h"
#include "err.h"
#include "gossip_api.h"
#include "loop.h"
#include "members.h"
#include "proto.h"
#include "rpc.h"

Suite *gossip_api_suite(void);

#define GUARD_MS 10000

static struct {
	struct loop *l;
	void *zctx;
	char dir[64];
	char rpc_ep[128], pub_ep[128];
	struct members lan, wan;
	struct gossip_api *api;
	struct rpc_client *client;
	bool guard_fired;
	/* the last reply */
	int status;
	enum proto_type type;
	uint64_t seq;
	size_t n_members;
	char first_name[64];
	char first_role[16];
	uint64_t pong_ms;
	int64_t error_code;
} fx;

static const struct members_self self = {
    .node_name = "alpha",
    .addr = "127.0.0.1",
    .port = 8301,
    .datacenter = "dc1",
    .node_id = "00000000-0000-0000-0000-000000000001",
    .server = true,
    .server_port = 8300,
    .bootstrap_expect = 1,
    .build = "0.1.0",
};

static int64_t guard(struct loop *l, void *ctx)
{
	fx.guard_fired = true;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

static void run_loop(void)
{
	uint64_t t = loop_timer_add(fx.l, GUARD_MS, guard, NULL);

	ck_assert_int_eq(loop_run(fx.l), 0);
	loop_timer_del(fx.l, t);
	ck_assert_msg(!fx.guard_fired, "timed out waiting");
}

static void setup_tables(bool server)
{
	struct member m;

	members_init(&fx.lan);
	members_init(&fx.wan);
	ck_assert_int_eq(members_self_build(&self, false, &m), 0);
	ck_assert_int_eq(members_upsert(&fx.lan, &m, NULL), 0);
	member_free_fields(&m);
	if (server) {
		ck_assert_int_eq(members_self_build(&self, true, &m), 0);
		ck_assert_int_eq(members_upsert(&fx.wan, &m, NULL), 0);
		member_free_fields(&m);
	}
}

static void start(bool server)
{
	char err[256];

	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/cairn-gossipd-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(fx.dir));
	snprintf(fx.rpc_ep, sizeof(fx.rpc_ep), "ipc://%s/gossipd.sock", fx.dir);
	snprintf(fx.pub_ep, sizeof(fx.pub_ep), "ipc://%s/gossipd-events.sock", fx.dir);
	setup_tables(server);
	fx.l = loop_new();
	fx.zctx = zmq_ctx_new();
	fx.api = gossip_api_new(fx.l, fx.zctx, fx.rpc_ep, fx.pub_ep, &fx.lan,
				server ? &fx.wan : NULL, err, sizeof(err));
	ck_assert_msg(fx.api != NULL, "%s", err);
	fx.client = rpc_client_new(fx.l, fx.zctx, fx.rpc_ep);
	ck_assert_ptr_nonnull(fx.client);
}

static void setup_server(void) { start(true); }

static void setup_client(void) { start(false); }

static void teardown(void)
{
	char path[160];

	rpc_client_free(fx.client);
	gossip_api_free(fx.api);
	zmq_ctx_term(fx.zctx);
	loop_free(fx.l);
	members_close(&fx.lan);
	members_close(&fx.wan);
	snprintf(path, sizeof(path), "%s/gossipd.sock", fx.dir);
	(void)unlink(path); /* may be gone already */
	snprintf(path, sizeof(path), "%s/gossipd-events.sock", fx.dir);
	(void)unlink(path);
	(void)rmdir(fx.dir);
}

static void on_reply(void *ctx, int status, const struct proto_msg *reply)
{
	fx.status = status;
	if (status == 0) {
		fx.type = reply->type;
		if (reply->type == PROTO_MEMBERS_REPLY) {
			const struct proto_members_reply *r = &reply->u.members_reply;

			fx.seq = r->seq;
			fx.n_members = r->members.n;
			if (r->members.n > 0) {
				snprintf(fx.first_name, sizeof(fx.first_name), "%s",
					 r->members.v[0].name);
				for (size_t i = 0; i < r->members.v[0].tags.n; i++)
					if (strcmp(r->members.v[0].tags.keys[i], "role") == 0)
						snprintf(fx.first_role, sizeof(fx.first_role), "%s",
							 r->members.v[0].tags.vals[i]);
			}
		} else if (reply->type == PROTO_PONG) {
			fx.pong_ms = reply->u.pong.sent_ms;
		} else if (reply->type == PROTO_ERROR) {
			fx.error_code = reply->u.error.code;
		}
	}
	loop_stop(fx.l);
}

static int64_t retry_soon(struct loop *l, void *ctx)
{
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

/* Calls until the connection is up (CAIRN_E_UNAVAILABLE until then: we
 * poll it on the loop rather than sleep). */
static void call(struct proto_msg *req)
{
	for (int attempt = 0; attempt < 2000; attempt++) {
		int rc = rpc_call(fx.client, req, 5000, on_reply, NULL, NULL);

		if (rc == 0) {
			run_loop();
			if (fx.status != CAIRN_E_UNAVAILABLE)
				return;
		} else {
			ck_assert_int_eq(rc, CAIRN_E_UNAVAILABLE);
			ck_assert_uint_ne(loop_timer_add(fx.l, 5, retry_soon, NULL), 0);
			run_loop();
		}
	}
	ck_abort_msg("gossipd never became reachable");
}

START_TEST(test_members_lan_wan_server)
{
	struct proto_msg req = proto_msg_make(PROTO_MEMBERS);

	call(&req);
	ck_assert_int_eq(fx.status, 0);
	ck_assert_int_eq(fx.type, PROTO_MEMBERS_REPLY);
	ck_assert_uint_eq(fx.seq, 1);
	ck_assert_uint_eq(fx.n_members, 1);
	ck_assert_str_eq(fx.first_name, "alpha");
	ck_assert_str_eq(fx.first_role, "consul");

	req = proto_msg_make(PROTO_MEMBERS);
	req.u.members.wan = true;
	call(&req);
	ck_assert_int_eq(fx.type, PROTO_MEMBERS_REPLY);
	ck_assert_uint_eq(fx.n_members, 1);
	ck_assert_str_eq(fx.first_name, "alpha.dc1");
}
END_TEST

START_TEST(test_members_wan_client_empty)
{
	struct proto_msg req = proto_msg_make(PROTO_MEMBERS);

	req.u.members.wan = true;
	call(&req);
	ck_assert_int_eq(fx.type, PROTO_MEMBERS_REPLY);
	ck_assert_uint_eq(fx.n_members, 0);
}
END_TEST

START_TEST(test_ping_and_unsupported)
{
	struct proto_msg req = proto_msg_make(PROTO_PING);

	req.u.ping.sent_ms = 123456;
	call(&req);
	ck_assert_int_eq(fx.type, PROTO_PONG);
	ck_assert_uint_eq(fx.pong_ms, 123456);

	req = proto_msg_make(PROTO_KV_GET);
	req.u.kv_get.key = "x";
	call(&req);
	ck_assert_int_eq(fx.type, PROTO_ERROR);
	ck_assert_int_eq(fx.error_code, CAIRN_E_BADREQ);
}
END_TEST

/* A SUB socket gets the events published after it connected. PUB/SUB
 * joins are asynchronous, so the test publishes until one arrives (a
 * subscriber never relies on earlier events: it takes a snapshot). */
START_TEST(test_member_event_published)
{
	void *sub = zmq_socket(fx.zctx, ZMQ_SUB);
	struct arena a;
	struct proto_msg ev;
	const struct member *me = members_find(&fx.lan, "alpha");
	uint8_t buf[4096];
	int n = -1, zero = 0;

	ck_assert_ptr_nonnull(sub);
	ck_assert_int_eq(zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero)), 0);
	ck_assert_int_eq(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0), 0);
	ck_assert_int_eq(zmq_connect(sub, fx.pub_ep), 0);
	for (int attempt = 0; attempt < 2000 && n < 0; attempt++) {
		zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};

		ck_assert_int_eq(gossip_api_publish(fx.api, 1, MEMBER_EVENT_JOIN, me), 0);
		if (zmq_poll(&it, 1, 5) == 1)
			n = zmq_recv(sub, buf, sizeof(buf), ZMQ_DONTWAIT);
	}
	ck_assert_int_gt(n, 0);
	arena_init(&a, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &a, &ev, NULL, 0), 0);
	ck_assert_int_eq(ev.type, PROTO_MEMBER_EVENT);
	ck_assert_uint_eq(ev.u.member_event.seq, 1);
	ck_assert_uint_eq(ev.u.member_event.kind, MEMBER_EVENT_JOIN);
	ck_assert_uint_eq(ev.u.member_event.members.n, 1);
	ck_assert_str_eq(ev.u.member_event.members.v[0].name, "alpha");
	ck_assert_str_eq(ev.u.member_event.members.v[0].addr, "127.0.0.1");
	ck_assert_uint_eq(ev.u.member_event.members.v[0].status, 1);
	arena_close(&a);
	zmq_close(sub);
}
END_TEST

Suite *gossip_api_suite(void)
{
	Suite *s = suite_create("gossip_api");
	TCase *srv = tcase_create("server");
	TCase *cli = tcase_create("client");

	tcase_add_checked_fixture(srv, setup_server, teardown);
	tcase_set_timeout(srv, 30);
	tcase_add_test(srv, test_members_lan_wan_server);
	tcase_add_test(srv, test_ping_and_unsupported);
	tcase_add_test(srv, test_member_event_published);
	suite_add_tcase(s, srv);

	tcase_add_checked_fixture(cli, setup_client, teardown);
	tcase_set_timeout(cli, 30);
	tcase_add_test(cli, test_members_wan_client_empty);
	suite_add_tcase(s, cli);
	return s;
}
