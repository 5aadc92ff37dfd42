/* Tests for common/server_proxy: the client agents' relay, in one process
 * against a fake gossipd (a ROUTER answering MEMBERS and an XPUB for
 * MEMBER_EVENT on ipc sockets) and two fake servers (rpc_servers on
 * loopback TCP ports) that answer, or park requests to keep them in
 * flight. Checks the relay's answers, that a choice sticks, and failover:
 * reads in flight re-asked elsewhere when the connection drops or gossip
 * declares the server failed, writes in flight answered with the error,
 * unsent requests (writes too) sent to another server. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "err.h"
#include "loop.h"
#include "proto.h"
#include "rpc.h"
#include "server_proxy.h"

#define N_SRV 2

struct fake_server {
	const char *name;
	int port;
	char ep[64];
	struct rpc_server *srv;
	bool park;		 /* keep requests for key "park" */
	struct rpc_req *parked[8];
	size_t n_parked;
	int served; /* requests answered at once */
	uint64_t status; /* gossip status published for it */
};

struct result {
	int done;
	int status;
	enum proto_type type;
	int64_t code;
	char text[128]; /* error message, or the answering server's name */
};

static struct {
	char dir[64];
	char rpc_ep[200], pub_ep[200], proxy_ep[200];
	struct loop *l;
	void *z;
	struct rpc_server *gossipd;
	void *xpub;
	uint64_t seq;
	size_t n_members; /* servers listed in MEMBERS answers */
	struct fake_server s[N_SRV];
	struct config cfg;
	struct server_proxy *proxy;
	struct rpc_client *client;
} G;

/* ---- helpers -------------------------------------------------------------- */

static int free_port(unsigned *seed)
{
	for (int tries = 0; tries < 1000; tries++) {
		int port = 20000 + (int)(rand_r(seed) % 12000);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int t = socket(AF_INET, SOCK_STREAM, 0);
		bool ok;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = t >= 0 && bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (t >= 0)
			close(t);
		if (ok)
			return port;
	}
	return -1;
}

static void fill_member(struct proto_member *p, const struct fake_server *fs, char *port,
			const char **keys, const char **vals)
{
	memset(p, 0, sizeof(*p));
	p->name = fs->name;
	p->addr = "127.0.0.1";
	p->port = 8301;
	snprintf(port, 16, "%d", fs->port);
	keys[0] = "dc";
	vals[0] = "dc1";
	keys[1] = "port";
	vals[1] = port;
	keys[2] = "role";
	vals[2] = "consul";
	p->tags.keys = keys;
	p->tags.vals = vals;
	p->tags.n = 3;
	p->status = fs->status;
}

static enum rpc_disposition gossipd_handler(void *ctx, struct rpc_req *req)
{
	struct proto_msg m = proto_msg_make(PROTO_MEMBERS_REPLY);
	struct proto_member v[N_SRV];
	const char *k[N_SRV][3], *vals[N_SRV][3];
	char ports[N_SRV][16];

	(void)ctx;
	ck_assert_int_eq(req->msg.type, PROTO_MEMBERS);
	for (size_t i = 0; i < G.n_members; i++)
		fill_member(&v[i], &G.s[i], ports[i], k[i], vals[i]);
	m.u.members_reply.seq = G.seq;
	m.u.members_reply.members.v = v;
	m.u.members_reply.members.n = G.n_members;
	(void)rpc_reply(req, &m);
	return RPC_DONE;
}

static enum rpc_disposition server_handler(void *ctx, struct rpc_req *req)
{
	struct fake_server *fs = ctx;
	const char *key = req->msg.type == PROTO_KV_GET   ? req->msg.u.kv_get.key
			  : req->msg.type == PROTO_KV_PUT ? req->msg.u.kv_put.key
							  : "";

	if (fs->park && key && !strcmp(key, "park") && fs->n_parked < 8) {
		fs->parked[fs->n_parked++] = req;
		return RPC_KEEP;
	}
	fs->served++;
	if (req->msg.type == PROTO_KV_GET) {
		struct proto_msg m = proto_msg_make(PROTO_KV_GET_REPLY);
		const char *who[1] = {fs->name};

		m.u.kv_get_reply.index = 7;
		m.u.kv_get_reply.keys.v = who;
		m.u.kv_get_reply.keys.n = 1;
		(void)rpc_reply(req, &m);
	} else {
		struct proto_msg m = proto_msg_make(PROTO_WRITE_REPLY);

		m.u.write_reply.index = 8;
		m.u.write_reply.ok = true;
		(void)rpc_reply(req, &m);
	}
	return RPC_DONE;
}

/* Answers fs's oldest parked read with its name. */
static void server_release(struct fake_server *fs)
{
	struct proto_msg m = proto_msg_make(PROTO_KV_GET_REPLY);
	const char *who[1] = {fs->name};

	ck_assert_uint_gt(fs->n_parked, 0);
	m.u.kv_get_reply.index = 9;
	m.u.kv_get_reply.keys.v = who;
	m.u.kv_get_reply.keys.n = 1;
	(void)rpc_reply(fs->parked[0], &m);
	memmove(&fs->parked[0], &fs->parked[1], --fs->n_parked * sizeof(fs->parked[0]));
}

static void server_start(struct fake_server *fs)
{
	const char *eps[2] = {fs->ep, NULL};
	char err[160];

	fs->srv = rpc_server_new(G.l, G.z, eps, server_handler, fs, err, sizeof(err));
	ck_assert_msg(fs->srv != NULL, "%s", err);
}

/* The server dies: its parked requests vanish, its connections close. */
static void server_kill(struct fake_server *fs)
{
	for (size_t i = 0; i < fs->n_parked; i++)
		rpc_req_free(fs->parked[i]);
	fs->n_parked = 0;
	rpc_server_free(fs->srv);
	fs->srv = NULL;
}

static void publish_status(struct fake_server *fs, uint64_t status)
{
	struct proto_msg ev = proto_msg_make(PROTO_MEMBER_EVENT);
	struct proto_member p;
	const char *k[3], *v[3];
	char port[16];

	fs->status = status;
	fill_member(&p, fs, port, k, v);
	ev.u.member_event.seq = ++G.seq;
	ev.u.member_event.kind = status == 4 ? 4 : 2;
	ev.u.member_event.members.v = &p;
	ev.u.member_event.members.n = 1;
	ck_assert_int_eq(rpc_publish(G.xpub, &ev), 0);
}

typedef int (*pred_fn)(void *arg);

struct until {
	pred_fn p;
	void *arg;
};

static int64_t check_pred(struct loop *l, void *ctx)
{
	struct until *u = ctx;

	if (u->p(u->arg))
		loop_stop(l);
	return 2;
}

static int64_t guard_fired(struct loop *l, void *ctx)
{
	*(int *)ctx = 1;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

/* Runs the loop until p(arg) holds, at most 5 s. */
static void run_until(pred_fn p, void *arg)
{
	struct until u = {p, arg};
	int fired = 0;
	uint64_t t, guard;

	if (p(arg))
		return;
	t = loop_timer_add(G.l, 1, check_pred, &u);
	guard = loop_timer_add(G.l, 5000, guard_fired, &fired);
	while (!p(arg) && !fired)
		loop_run(G.l);
	loop_timer_del(G.l, t);
	loop_timer_del(G.l, guard);
	ck_assert_msg(p(arg), "condition not reached in 5 s");
}

static int known_is(void *arg)
{
	return server_proxy_known(G.proxy) == *(size_t *)arg;
}

static int is_done(void *arg)
{
	return ((struct result *)arg)->done;
}

static int has_parked(void *arg)
{
	(void)arg;
	return G.s[0].n_parked + G.s[1].n_parked > 0;
}

static int parked_on(void *arg)
{
	return ((struct fake_server *)arg)->n_parked > 0;
}

static void on_result(void *ctx, int status, const struct proto_msg *reply)
{
	struct result *r = ctx;

	r->done = 1;
	r->status = status;
	if (!reply)
		return;
	r->type = reply->type;
	if (reply->type == PROTO_ERROR) {
		r->code = reply->u.error.code;
		snprintf(r->text, sizeof(r->text), "%s",
			 reply->u.error.message ? reply->u.error.message : "");
	} else if (reply->type == PROTO_KV_GET_REPLY && reply->u.kv_get_reply.keys.n == 1) {
		snprintf(r->text, sizeof(r->text), "%s", reply->u.kv_get_reply.keys.v[0]);
	}
}

static void call(enum proto_type type, const char *key, struct result *r)
{
	struct proto_msg m = proto_msg_make(type);

	memset(r, 0, sizeof(*r));
	if (type == PROTO_KV_GET)
		m.u.kv_get.key = key;
	else
		m.u.kv_put.key = key;
	ck_assert_int_eq(rpc_call(G.client, &m, 5000, on_result, r, NULL), 0);
}

/* Calls and waits for the answer. */
static void call_wait(enum proto_type type, const char *key, struct result *r)
{
	call(type, key, r);
	run_until(is_done, r);
}

/* ---- fixture ---------------------------------------------------------------- */

static void setup(void)
{
	unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
	const char *eps[2];
	char err[200];
	int zero = 0;

	memset(&G, 0, sizeof(G));
	snprintf(G.dir, sizeof(G.dir), "/tmp/cairn-sp-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(G.dir));
	snprintf(G.rpc_ep, sizeof(G.rpc_ep), "ipc://%s/gossipd.sock", G.dir);
	snprintf(G.pub_ep, sizeof(G.pub_ep), "ipc://%s/gossipd-events.sock", G.dir);
	G.l = loop_new();
	G.z = zmq_ctx_new();
	ck_assert_ptr_nonnull(G.l);
	G.xpub = zmq_socket(G.z, ZMQ_XPUB);
	zmq_setsockopt(G.xpub, ZMQ_LINGER, &zero, sizeof(zero));
	ck_assert_int_eq(zmq_bind(G.xpub, G.pub_ep), 0);
	eps[0] = G.rpc_ep;
	eps[1] = NULL;
	G.gossipd = rpc_server_new(G.l, G.z, eps, gossipd_handler, NULL, err, sizeof(err));
	ck_assert_msg(G.gossipd != NULL, "%s", err);
	G.seq = 1;
	for (int i = 0; i < N_SRV; i++) {
		struct fake_server *fs = &G.s[i];

		fs->name = i == 0 ? "s1" : "s2";
		fs->port = free_port(&seed);
		ck_assert_int_gt(fs->port, 0);
		fs->status = 1;
		snprintf(fs->ep, sizeof(fs->ep), "tcp://127.0.0.1:%d", fs->port);
		server_start(fs);
	}
	G.cfg.datacenter = (char *)"dc1";
	G.cfg.run_dir = G.dir;
	G.cfg.server = false;
}

/* Starts the relay with n servers listed by the fake gossipd. */
static void start_proxy(size_t n)
{
	char err[200];

	G.n_members = n;
	ck_assert_int_eq(server_proxy_endpoint(G.l, G.z, &G.cfg, &G.proxy, G.proxy_ep,
					       sizeof(G.proxy_ep), err, sizeof(err)),
			 0);
	ck_assert_ptr_nonnull(G.proxy);
	ck_assert(strncmp(G.proxy_ep, "inproc://", 9) == 0);
	G.client = rpc_client_new(G.l, G.z, G.proxy_ep);
	ck_assert_ptr_nonnull(G.client);
	run_until(known_is, &n);
	/* the feed's subscription reached the XPUB: events published from
	 * now on are delivered */
	{
		uint8_t buf[16];
		int timeout = 5000;

		zmq_setsockopt(G.xpub, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
		ck_assert_int_ge(zmq_recv(G.xpub, buf, sizeof(buf), 0), 1);
		ck_assert_int_eq(buf[0], 1);
	}
}

static void teardown(void)
{
	char path[300];

	rpc_client_free(G.client);
	server_proxy_free(G.proxy);
	for (int i = 0; i < N_SRV; i++)
		if (G.s[i].srv)
			server_kill(&G.s[i]);
	rpc_server_free(G.gossipd);
	zmq_close(G.xpub);
	zmq_ctx_term(G.z);
	loop_free(G.l);
	snprintf(path, sizeof(path), "%s/gossipd.sock", G.dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/gossipd-events.sock", G.dir);
	unlink(path);
	rmdir(G.dir);
}

/* The fake server whose name answered r. */
static struct fake_server *by_name(const char *name)
{
	for (int i = 0; i < N_SRV; i++)
		if (!strcmp(G.s[i].name, name))
			return &G.s[i];
	ck_abort_msg("no server %s", name);
	return NULL;
}

/* ---- tests ------------------------------------------------------------------ */

START_TEST(servers_use_the_local_raftd)
{
	struct config c = {.run_dir = G.dir, .datacenter = (char *)"dc1", .server = true};
	struct server_proxy *p = (struct server_proxy *)&c; /* must be overwritten */
	char ep[256], err[100], want[256];

	ck_assert_int_eq(server_proxy_endpoint(G.l, G.z, &c, &p, ep, sizeof(ep), err, sizeof(err)),
			 0);
	ck_assert_ptr_null(p);
	snprintf(want, sizeof(want), "ipc://%s/raftd.sock", G.dir);
	ck_assert_str_eq(ep, want);
	c.server = false;
	c.dev = true;
	ck_assert_int_eq(server_proxy_endpoint(G.l, G.z, &c, &p, ep, sizeof(ep), err, sizeof(err)),
			 0);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(ep, want);
}
END_TEST

START_TEST(no_known_servers)
{
	struct result r;

	start_proxy(0);
	call_wait(PROTO_KV_GET, "k", &r);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.type, PROTO_ERROR);
	ck_assert_int_eq(r.code, CAIRN_E_NOSERVERS);
	ck_assert_str_eq(r.text, "No known Consul servers");
	call_wait(PROTO_KV_PUT, "k", &r);
	ck_assert_int_eq(r.code, CAIRN_E_NOSERVERS);
}
END_TEST

START_TEST(relays_and_sticks)
{
	struct result r;
	char first[128];

	start_proxy(2);
	call_wait(PROTO_KV_GET, "k", &r);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.type, PROTO_KV_GET_REPLY);
	snprintf(first, sizeof(first), "%s", r.text);
	for (int i = 0; i < 20; i++) {
		call_wait(PROTO_KV_GET, "k", &r);
		ck_assert_str_eq(r.text, first);
	}
	call_wait(PROTO_KV_PUT, "k", &r);
	ck_assert_int_eq(r.type, PROTO_WRITE_REPLY);
	ck_assert_int_eq(by_name(first)->served, 22);
	ck_assert_int_eq(G.s[0].served + G.s[1].served, 22);
}
END_TEST

START_TEST(read_in_flight_reasked_after_a_drop)
{
	struct result r;
	struct fake_server *victim, *other;

	G.s[0].park = G.s[1].park = true;
	start_proxy(2);
	call(PROTO_KV_GET, "park", &r);
	run_until(has_parked, NULL);
	victim = G.s[0].n_parked ? &G.s[0] : &G.s[1];
	other = victim == &G.s[0] ? &G.s[1] : &G.s[0];
	server_kill(victim);
	/* the relay asks the other server, which parks it too */
	run_until(parked_on, other);
	ck_assert_uint_eq(other->n_parked, 1);
	ck_assert(!r.done);
	server_release(other);
	run_until(is_done, &r);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.type, PROTO_KV_GET_REPLY);
	ck_assert_str_eq(r.text, other->name);
	/* and the next request goes there directly */
	call_wait(PROTO_KV_GET, "k", &r);
	ck_assert_str_eq(r.text, other->name);
}
END_TEST

START_TEST(write_in_flight_gets_the_error)
{
	struct result r;
	struct fake_server *victim, *other;

	G.s[0].park = G.s[1].park = true;
	start_proxy(2);
	call(PROTO_KV_PUT, "park", &r);
	run_until(has_parked, NULL);
	victim = G.s[0].n_parked ? &G.s[0] : &G.s[1];
	other = victim == &G.s[0] ? &G.s[1] : &G.s[0];
	server_kill(victim);
	run_until(is_done, &r);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.type, PROTO_ERROR);
	ck_assert_int_eq(r.code, CAIRN_E_UNAVAILABLE);
	ck_assert_uint_eq(other->n_parked, 0); /* never sent twice */
	ck_assert_int_eq(other->served, 0);
}
END_TEST

START_TEST(unsent_write_goes_to_another_server)
{
	struct result r;
	struct fake_server *victim, *other;

	start_proxy(2);
	call_wait(PROTO_KV_PUT, "k", &r);
	ck_assert_int_eq(r.type, PROTO_WRITE_REPLY);
	victim = G.s[0].served ? &G.s[0] : &G.s[1];
	other = victim == &G.s[0] ? &G.s[1] : &G.s[0];
	server_kill(victim);
	/* nothing in flight: the next write cannot be sent to the victim and
	 * goes to the other server (the connection may take a moment to be
	 * seen as gone: poll) */
	for (int i = 0; i < 200 && other->served == 0; i++) {
		call_wait(PROTO_KV_PUT, "k", &r);
		ck_assert_int_eq(r.status, 0);
		if (r.type == PROTO_ERROR)
			ck_assert_int_eq(r.code, CAIRN_E_UNAVAILABLE);
	}
	ck_assert_int_eq(other->served, 1);
	ck_assert_int_eq(r.type, PROTO_WRITE_REPLY);
}
END_TEST

/* A server gossip lists but whose port refuses connections: requests wait
 * for the connection up to SERVER_PROXY_CONNECT_MS, then go elsewhere
 * (writes too: they were never sent). */
START_TEST(unreachable_server_is_skipped)
{
	struct result r;

	server_kill(&G.s[0]); /* listed, never reachable */
	start_proxy(2);
	for (int i = 0; i < 4; i++) {
		call_wait(i % 2 ? PROTO_KV_PUT : PROTO_KV_GET, "k", &r);
		ck_assert_int_eq(r.status, 0);
		ck_assert_int_ne(r.type, PROTO_ERROR);
	}
	ck_assert_int_eq(G.s[1].served, 4);
}
END_TEST

START_TEST(gossip_failure_reasks_reads)
{
	struct result r;
	struct fake_server *victim, *other;
	size_t one = 1;

	G.s[0].park = G.s[1].park = true;
	start_proxy(2);
	call(PROTO_KV_GET, "park", &r);
	run_until(has_parked, NULL);
	victim = G.s[0].n_parked ? &G.s[0] : &G.s[1];
	other = victim == &G.s[0] ? &G.s[1] : &G.s[0];
	/* the victim still holds the connection, but gossip says failed */
	publish_status(victim, 4);
	run_until(known_is, &one);
	run_until(parked_on, other);
	ck_assert_uint_eq(other->n_parked, 1);
	server_release(other);
	run_until(is_done, &r);
	ck_assert_int_eq(r.type, PROTO_KV_GET_REPLY);
	ck_assert_str_eq(r.text, other->name);
	/* alive again: known again */
	{
		size_t two = 2;

		publish_status(victim, 1);
		run_until(known_is, &two);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("server_proxy");
	TCase *tc = tcase_create("relay");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, servers_use_the_local_raftd);
	tcase_add_test(tc, no_known_servers);
	tcase_add_test(tc, relays_and_sticks);
	tcase_add_test(tc, read_in_flight_reasked_after_a_drop);
	tcase_add_test(tc, write_in_flight_gets_the_error);
	tcase_add_test(tc, unsent_write_goes_to_another_server);
	tcase_add_test(tc, unreachable_server_is_skipped);
	tcase_add_test(tc, gossip_failure_reasks_reads);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
