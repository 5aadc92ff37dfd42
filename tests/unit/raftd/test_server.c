/* RPC server over a real ipc socket: requests, group commit, blocking
 * queries and malformed input, driven by a raw DEALER on the same loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "arena.h"
#include "config.h"
#include "err.h"
#include "loop.h"
#include "proto.h"
#include "server.h"
#include "suites.h"

static char dir[256];
static struct config cfg;
static struct loop *l;
static void *zctx, *dealer;
static struct server *srv;
static struct arena rar;
static struct proto_msg replies[64];
static int n_replies, want;
static bool guard_fired;

static void on_dealer(struct loop *lp, void *ctx, unsigned events)
{
	(void)ctx;
	(void)events;
	for (;;) {
		zmq_msg_t m;

		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, dealer, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			break;
		}
		ck_assert_int_lt(n_replies, 64);
		ck_assert_int_eq(proto_decode(zmq_msg_data(&m), zmq_msg_size(&m), &rar,
					      &replies[n_replies], NULL, 0),
				 0);
		n_replies++;
		zmq_msg_close(&m);
	}
	if (n_replies >= want)
		loop_stop(lp);
}

static int64_t on_guard(struct loop *lp, void *ctx)
{
	(void)ctx;
	guard_fired = true;
	loop_stop(lp);
	return LOOP_TIMER_STOP;
}

/* Runs the loop until n replies in total have arrived (a generous guard
 * turns a hang into a failure; it is not a timing assertion). */
static void run_until(int n)
{
	uint64_t guard;

	want = n;
	if (n_replies >= want)
		return;
	guard = loop_timer_add(l, 20000, on_guard, NULL);
	ck_assert_int_eq(loop_run(l), 0);
	loop_timer_del(l, guard);
	ck_assert_msg(!guard_fired, "no reply: have %d of %d", n_replies, n);
}

/* Lets the loop run a few iterations (to deliver and process requests). */
static int64_t on_tick(struct loop *lp, void *ctx)
{
	int *left = ctx;

	if (--*left <= 0) {
		loop_stop(lp);
		return LOOP_TIMER_STOP;
	}
	return 1;
}

static void spin(int ticks)
{
	int left = ticks;

	loop_timer_add(l, 1, on_tick, &left);
	ck_assert_int_eq(loop_run(l), 0);
}

static void send_msg(struct proto_msg *m, uint64_t id)
{
	uint8_t *buf;
	size_t len;

	m->id = id;
	ck_assert_int_eq(proto_encode(m, &buf, &len), 0);
	ck_assert_int_eq(zmq_send(dealer, buf, len, 0), (int)len);
	free(buf);
}

static const struct proto_msg *reply_for(uint64_t id)
{
	for (int i = 0; i < n_replies; i++)
		if (replies[i].id == id)
			return &replies[i];
	ck_abort_msg("no reply with id %llu", (unsigned long long)id);
	return NULL;
}

static void setup(void)
{
	char err[512], ep[600];

	test_tmpdir(dir, sizeof(dir));
	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "Node-A";
	cfg.node_id = "6f1b2e36-5a36-4e35-9b52-1c9d3b0e8a01";
	cfg.data_dir = dir;
	cfg.run_dir = dir;
	cfg.advertise_addr = "127.0.0.1";
	cfg.bind_addr = "127.0.0.1";
	cfg.ports.server = -1; /* ipc only: no port clashes between tests */
	cfg.kv_max_value_size = 512 * 1024;
	l = loop_new();
	zctx = zmq_ctx_new();
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_nonnull(zctx);
	ck_assert_msg(server_new(l, zctx, &cfg, &srv, err, sizeof(err)) == 0, "%s", err);
	dealer = zmq_socket(zctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof(zero));
	ck_assert_int_eq(config_ipc_endpoint(&cfg, CONFIG_SOCK_RAFTD, ep, sizeof(ep)), 0);
	ck_assert_int_eq(zmq_connect(dealer, ep), 0);
	ck_assert_int_eq(loop_watch_zsock(l, dealer, LOOP_READ, on_dealer, NULL), 0);
	arena_init(&rar, 0);
	n_replies = 0;
	guard_fired = false;
}

static void teardown(void)
{
	loop_unwatch_zsock(l, dealer);
	zmq_close(dealer);
	server_free(srv);
	zmq_ctx_term(zctx);
	loop_free(l);
	arena_close(&rar);
	test_rmtree(dir);
}

static struct proto_msg kv_put(const char *key, const char *val)
{
	struct proto_msg m = proto_msg_make(PROTO_KV_PUT);

	m.u.kv_put.key = key;
	m.u.kv_put.value.ptr = (const uint8_t *)val;
	m.u.kv_put.value.len = strlen(val);
	return m;
}

static struct proto_msg kv_get(const char *key, uint64_t min_index, uint64_t wait_ms)
{
	struct proto_msg m = proto_msg_make(PROTO_KV_GET);

	m.u.kv_get.key = key;
	m.u.kv_get.min_index = min_index;
	m.u.kv_get.wait_ms = wait_ms;
	return m;
}

START_TEST(ping_status_and_self_node)
{
	struct proto_msg m = proto_msg_make(PROTO_PING);
	const struct proto_msg *r;

	m.u.ping.sent_ms = 1234;
	send_msg(&m, 1);
	m = proto_msg_make(PROTO_STATUS_LEADER);
	send_msg(&m, 2);
	m = proto_msg_make(PROTO_STATUS_PEERS);
	send_msg(&m, 3);
	m = proto_msg_make(PROTO_CATALOG_NODE);
	m.u.catalog_node.node = "node-a"; /* case-insensitive */
	send_msg(&m, 4);
	run_until(4);

	r = reply_for(1);
	ck_assert_int_eq(r->type, PROTO_PONG);
	ck_assert_uint_eq(r->u.pong.sent_ms, 1234);
	r = reply_for(2);
	ck_assert_int_eq(r->type, PROTO_STATUS_LEADER_REPLY);
	ck_assert_str_eq(r->u.status_leader_reply.leader, "127.0.0.1:-1"); /* ports.server */
	r = reply_for(3);
	ck_assert_uint_eq(r->u.status_peers_reply.peers.n, 1);
	ck_assert_str_eq(r->u.status_peers_reply.peers.v[0], "127.0.0.1:-1");
	r = reply_for(4);
	ck_assert_int_eq(r->type, PROTO_CATALOG_NODE_REPLY);
	ck_assert(r->u.catalog_node_reply.known_leader);
	ck_assert_uint_eq(r->u.catalog_node_reply.nodes.n, 1);
	ck_assert_str_eq(r->u.catalog_node_reply.nodes.v[0].node, "Node-A");
	ck_assert_str_eq(r->u.catalog_node_reply.nodes.v[0].address, "127.0.0.1");
	ck_assert_str_eq(r->u.catalog_node_reply.nodes.v[0].id, cfg.node_id);
	ck_assert_uint_gt(r->u.catalog_node_reply.index, 1);
}
END_TEST

START_TEST(put_get_delete)
{
	struct proto_msg m = kv_put("greeting", "hello");
	const struct proto_msg *r;
	uint64_t idx;

	send_msg(&m, 10);
	run_until(1);
	r = reply_for(10);
	ck_assert_int_eq(r->type, PROTO_WRITE_REPLY);
	ck_assert(r->u.write_reply.ok);
	idx = r->u.write_reply.index;
	ck_assert_uint_gt(idx, 2); /* after the no-op and the self registration */

	m = kv_get("greeting", 0, 0);
	send_msg(&m, 11);
	m = kv_get("missing", 0, 0);
	send_msg(&m, 12);
	run_until(3);
	r = reply_for(11);
	ck_assert_int_eq(r->type, PROTO_KV_GET_REPLY);
	ck_assert_uint_eq(r->u.kv_get_reply.index, idx);
	ck_assert(r->u.kv_get_reply.known_leader);
	ck_assert_uint_eq(r->u.kv_get_reply.last_contact_ms, 0);
	ck_assert_uint_eq(r->u.kv_get_reply.entries.n, 1);
	ck_assert(memcmp(r->u.kv_get_reply.entries.v[0].value.ptr, "hello", 5) == 0);
	r = reply_for(12);
	ck_assert_uint_eq(r->u.kv_get_reply.entries.n, 0);
	ck_assert_uint_eq(r->u.kv_get_reply.index, idx);

	m = proto_msg_make(PROTO_KV_DELETE);
	m.u.kv_delete.key = "greeting";
	send_msg(&m, 13);
	run_until(4);
	ck_assert(reply_for(13)->u.write_reply.ok);
	ck_assert_uint_eq(reply_for(13)->u.write_reply.index, idx + 1);
}
END_TEST

START_TEST(writes_in_one_iteration_share_a_commit)
{
	char key[16];
	struct proto_msg m;

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "g/%d", i);
		m = kv_put(key, "v");
		send_msg(&m, 100 + (uint64_t)i);
	}
	run_until(20);
	for (int i = 0; i < 20; i++) {
		const struct proto_msg *r = reply_for(100 + (uint64_t)i);
		ck_assert_int_eq(r->type, PROTO_WRITE_REPLY);
		ck_assert(r->u.write_reply.ok);
	}
	/* Indexes are consecutive in arrival order. */
	ck_assert_uint_eq(reply_for(119)->u.write_reply.index,
			  reply_for(100)->u.write_reply.index + 19);
}
END_TEST

START_TEST(blocking_query_wakes_on_its_key)
{
	struct proto_msg m = kv_put("watched", "v1");
	uint64_t idx;

	send_msg(&m, 1);
	run_until(1);
	idx = reply_for(1)->u.write_reply.index;

	/* Park two queries at the current index: one on the key, one on an
	 * unrelated prefix; and a prefix query on "watch". */
	m = kv_get("watched", idx, 60000);
	send_msg(&m, 2);
	m = kv_get("other/", idx, 60000);
	m.u.kv_get.recurse = true;
	send_msg(&m, 3);
	m = kv_get("watch", idx, 60000);
	m.u.kv_get.keys_only = true;
	send_msg(&m, 4);
	spin(5);
	ck_assert_int_eq(n_replies, 1); /* all parked */

	m = kv_put("watched", "v2");
	send_msg(&m, 5);
	run_until(4);
	ck_assert(reply_for(5)->u.write_reply.ok);
	const struct proto_msg *r = reply_for(2);
	ck_assert_uint_eq(r->u.kv_get_reply.index, idx + 1);
	ck_assert(memcmp(r->u.kv_get_reply.entries.v[0].value.ptr, "v2", 2) == 0);
	r = reply_for(4);
	ck_assert_uint_eq(r->u.kv_get_reply.index, idx + 1);
	ck_assert_uint_eq(r->u.kv_get_reply.keys.n, 1);
	ck_assert_str_eq(r->u.kv_get_reply.keys.v[0], "watched");
	/* The unrelated prefix query is still parked. */
	for (int i = 0; i < n_replies; i++)
		ck_assert_uint_ne(replies[i].id, 3);

	/* A query whose index has already passed answers at once. */
	m = kv_get("watched", idx, 60000);
	send_msg(&m, 6);
	run_until(5);
	ck_assert_uint_eq(reply_for(6)->u.kv_get_reply.index, idx + 1);
}
END_TEST

START_TEST(catalog_register_and_blocking_node_query)
{
	static const char *tk[] = {"lan"};
	static const char *tv[] = {"10.1.2.3"};
	struct proto_node n = {0};
	struct proto_msg m = proto_msg_make(PROTO_CATALOG_NODE);
	uint64_t idx;

	m.u.catalog_node.node = "web";
	send_msg(&m, 1);
	run_until(1);
	ck_assert_uint_eq(reply_for(1)->u.catalog_node_reply.nodes.n, 0); /* unknown */
	idx = reply_for(1)->u.catalog_node_reply.index;
	ck_assert_uint_gt(idx, 0);

	m.u.catalog_node.min_index = idx;
	m.u.catalog_node.wait_ms = 60000;
	send_msg(&m, 2);
	spin(5);
	ck_assert_int_eq(n_replies, 1);

	n.node = "Web";
	n.address = "10.1.2.3";
	n.tagged_addresses.keys = tk;
	n.tagged_addresses.vals = tv;
	n.tagged_addresses.n = 1;
	m = proto_msg_make(PROTO_CATALOG_REGISTER);
	m.u.catalog_register.nodes.v = &n;
	m.u.catalog_register.nodes.n = 1;
	send_msg(&m, 3);
	run_until(3);
	ck_assert(reply_for(3)->u.write_reply.ok);
	const struct proto_msg *r = reply_for(2);
	ck_assert_uint_eq(r->u.catalog_node_reply.index, reply_for(3)->u.write_reply.index);
	ck_assert_uint_eq(r->u.catalog_node_reply.nodes.n, 1);
	ck_assert_str_eq(r->u.catalog_node_reply.nodes.v[0].address, "10.1.2.3");
	ck_assert_str_eq(r->u.catalog_node_reply.nodes.v[0].datacenter, "dc1"); /* filled in */

	/* Two nodes in one register are refused. */
	struct proto_node two[2] = {n, n};
	m = proto_msg_make(PROTO_CATALOG_REGISTER);
	m.u.catalog_register.nodes.v = two;
	m.u.catalog_register.nodes.n = 2;
	send_msg(&m, 4);
	run_until(4);
	ck_assert_int_eq(reply_for(4)->u.error.code, CAIRN_E_BADREQ);
}
END_TEST

START_TEST(blocking_query_expires)
{
	struct proto_msg m = kv_get("nothing", 1000000, 1); /* 1 ms: no jitter */

	send_msg(&m, 7);
	run_until(1);
	const struct proto_msg *r = reply_for(7);
	ck_assert_int_eq(r->type, PROTO_KV_GET_REPLY);
	ck_assert_uint_eq(r->u.kv_get_reply.entries.n, 0);
	ck_assert_uint_lt(r->u.kv_get_reply.index, 1000000); /* answered anyway */
	ck_assert_uint_gt(r->u.kv_get_reply.index, 0);
}
END_TEST

START_TEST(refusals)
{
	struct proto_msg m;
	static char big[512 * 1024 + 1];

	m = kv_put("", "v");
	send_msg(&m, 1);
	m = proto_msg_make(PROTO_KV_PUT);
	m.u.kv_put.key = "big";
	m.u.kv_put.value.ptr = (const uint8_t *)big;
	m.u.kv_put.value.len = sizeof(big);
	send_msg(&m, 2);
	m = proto_msg_make(PROTO_MEMBERS);
	send_msg(&m, 3);
	m = kv_put("k", "v");
	m.u.kv_put.dc = "dc9";
	send_msg(&m, 4);
	m = proto_msg_make(PROTO_KV_DELETE); /* no key, no recurse */
	send_msg(&m, 5);
	run_until(5);
	ck_assert_int_eq(reply_for(1)->type, PROTO_ERROR);
	ck_assert_int_eq(reply_for(1)->u.error.code, CAIRN_E_BADREQ);
	ck_assert_int_eq(reply_for(2)->u.error.code, CAIRN_E_TOOLARGE);
	ck_assert_int_eq(reply_for(3)->u.error.code, CAIRN_E_BADREQ);
	ck_assert_int_eq(reply_for(4)->u.error.code, CAIRN_E_UNAVAILABLE);
	ck_assert_int_eq(reply_for(5)->u.error.code, CAIRN_E_BADREQ);
}
END_TEST

START_TEST(malformed_msgpack_gets_error)
{
	static const uint8_t junk[] = {0xc1, 0x93, 0x01};
	/* A well-formed envelope with a body of the wrong shape. */
	static const uint8_t bad_body[] = {0x94, 0x01, 0x02, 0x05, 0x91, 0xc3};

	ck_assert_int_eq(zmq_send(dealer, junk, sizeof(junk), 0), (int)sizeof(junk));
	ck_assert_int_eq(zmq_send(dealer, bad_body, sizeof(bad_body), 0), (int)sizeof(bad_body));
	run_until(2);
	ck_assert_int_eq(replies[0].type, PROTO_ERROR);
	ck_assert_int_lt(replies[0].u.error.code, 0);
	ck_assert_int_eq(replies[1].type, PROTO_ERROR);
	ck_assert_uint_eq(replies[1].id, 5);

	/* And the server still serves. */
	struct proto_msg m = proto_msg_make(PROTO_PING);
	send_msg(&m, 9);
	run_until(3);
	ck_assert_int_eq(reply_for(9)->type, PROTO_PONG);
}
END_TEST

START_TEST(restart_keeps_acknowledged_writes)
{
	struct proto_msg m = kv_put("durable", "yes");
	zmq_pollitem_t pi = {dealer, 0, ZMQ_POLLIN, 0};
	zmq_msg_t raw;
	char err[512];
	uint64_t idx;

	send_msg(&m, 1);
	run_until(1);
	idx = reply_for(1)->u.write_reply.index;
	/* A parked query is answered when the server shuts down. */
	m = kv_get("durable", idx, 60000);
	send_msg(&m, 2);
	spin(5);
	ck_assert_int_eq(n_replies, 1);
	server_free(srv);
	srv = NULL;
	/* The loop still holds the old server's before-sleep hook (loop.h
	 * cannot remove hooks): read the reply directly, then use a new loop,
	 * as a restarted process would. */
	ck_assert_int_eq(zmq_poll(&pi, 1, 20000), 1);
	zmq_msg_init(&raw);
	ck_assert_int_ge(zmq_msg_recv(&raw, dealer, 0), 0);
	ck_assert_int_eq(
	    proto_decode(zmq_msg_data(&raw), zmq_msg_size(&raw), &rar, &replies[1], NULL, 0), 0);
	zmq_msg_close(&raw);
	n_replies = 2;
	ck_assert_uint_eq(reply_for(2)->u.kv_get_reply.index, idx);
	ck_assert_uint_eq(reply_for(2)->u.kv_get_reply.entries.n, 1);

	loop_unwatch_zsock(l, dealer);
	loop_free(l);
	l = loop_new();
	ck_assert_ptr_nonnull(l);
	ck_assert_int_eq(loop_watch_zsock(l, dealer, LOOP_READ, on_dealer, NULL), 0);
	ck_assert_msg(server_new(l, zctx, &cfg, &srv, err, sizeof(err)) == 0, "%s", err);
	m = kv_get("durable", 0, 0);
	send_msg(&m, 3);
	run_until(3);
	ck_assert_uint_eq(reply_for(3)->u.kv_get_reply.entries.n, 1);
	ck_assert_uint_eq(reply_for(3)->u.kv_get_reply.index, idx);
}
END_TEST

Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("rpc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, ping_status_and_self_node);
	tcase_add_test(tc, put_get_delete);
	tcase_add_test(tc, writes_in_one_iteration_share_a_commit);
	tcase_add_test(tc, blocking_query_wakes_on_its_key);
	tcase_add_test(tc, catalog_register_and_blocking_node_query);
	tcase_add_test(tc, blocking_query_expires);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, malformed_msgpack_gets_error);
	tcase_add_test(tc, restart_keeps_acknowledged_writes);
	suite_add_tcase(s, tc);
	return s;
}
