/* Tests for common/: arena, durations, config loading, the event loop and
 * the RPC layer (client and server in one process over inproc/ipc). */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "arena.h"
#include "config.h"
#include "err.h"
#include "loop.h"
#include "rpc.h"

/* ---- arena ---------------------------------------------------------------- */

START_TEST(arena_basics)
{
	struct arena a;
	char *s;
	void *big;

	arena_init(&a, 64);
	s = arena_strdup(&a, "hello");
	ck_assert_str_eq(s, "hello");
	ck_assert_uint_eq(((uintptr_t)arena_alloc(&a, 3)) % 16, 0);
	big = arena_zalloc(&a, 10000); /* larger than a chunk */
	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(((unsigned char *)big)[9999], 0);
	ck_assert_str_eq(arena_printf(&a, "%d-%s", 7, "x"), "7-x");
	arena_reset(&a);
	ck_assert_uint_eq(a.used, 0);
	ck_assert_str_eq(arena_strndup(&a, "abcdef", 3), "abc");
	arena_close(&a);
}
END_TEST

/* ---- durations and config ------------------------------------------------------ */

START_TEST(durations)
{
	uint64_t ms;

	ck_assert_int_eq(config_duration_ms("10s", &ms), 0);
	ck_assert_uint_eq(ms, 10000);
	ck_assert_int_eq(config_duration_ms("60000ms", &ms), 0);
	ck_assert_uint_eq(ms, 60000);
	ck_assert_int_eq(config_duration_ms("5m", &ms), 0);
	ck_assert_uint_eq(ms, 300000);
	ck_assert_int_eq(config_duration_ms("1h30m", &ms), 0);
	ck_assert_uint_eq(ms, 5400000);
	ck_assert_int_eq(config_duration_ms("1.5s", &ms), 0);
	ck_assert_uint_eq(ms, 1500);
	ck_assert_int_eq(config_duration_ms("7", &ms), 0);
	ck_assert_uint_eq(ms, 7000);
	ck_assert_int_eq(config_duration_ms("", &ms), -EINVAL);
	ck_assert_int_eq(config_duration_ms("10x", &ms), -EINVAL);
	ck_assert_int_eq(config_duration_ms("-1s", &ms), -EINVAL);
	ck_assert_int_eq(config_duration_ms("s", &ms), -EINVAL);
	ck_assert_int_eq(config_duration_ms("99999999999999999999h", &ms), -EINVAL);
}
END_TEST

static char tmpdir[64];

static void tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/cairn-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(config_defaults_and_flags)
{
	char data[128], err[256], *argv[16];
	struct config c;
	int argc = 0;

	snprintf(data, sizeof(data), "%s/data", tmpdir);
	argv[argc++] = "x";
	argv[argc++] = "-server";
	argv[argc++] = "-data-dir";
	argv[argc++] = data;
	argv[argc++] = "--node=alpha";
	argv[argc++] = "-http-port=18500";
	argv[argc++] = "-datacenter";
	argv[argc++] = "EU-West";
	argv[argc++] = "-retry-join=10.0.0.1";
	argv[argc++] = "-retry-join";
	argv[argc++] = "10.0.0.2";
	argv[argc++] = "-bind=127.0.0.1";
	ck_assert_int_eq(config_load(argc, argv, &c, err, sizeof(err)), 0);
	ck_assert(c.server);
	ck_assert(!c.dev);
	ck_assert_str_eq(c.node_name, "alpha");
	ck_assert_str_eq(c.datacenter, "eu-west");
	ck_assert_int_eq(c.ports.http, 18500);
	ck_assert_int_eq(c.ports.dns, 8600);
	ck_assert_int_eq(c.ports.server, 8300);
	ck_assert_str_eq(c.domain, "consul.");
	ck_assert_str_eq(c.advertise_addr, "127.0.0.1");
	ck_assert_str_eq(c.retry_join[0], "10.0.0.1");
	ck_assert_str_eq(c.retry_join[1], "10.0.0.2");
	ck_assert_ptr_null(c.retry_join[2]);
	ck_assert_uint_eq(c.kv_max_value_size, 512 * 1024);
	ck_assert_uint_eq(strlen(c.node_id), 36);
	ck_assert(c.dns.allow_stale);
	ck_assert_uint_eq(c.dns.udp_answer_limit, 3);
	{
		char ep[256], id2[64];
		struct config c2;

		ck_assert_int_eq(config_ipc_endpoint(&c, CONFIG_SOCK_RAFTD, ep, sizeof(ep)), 0);
		ck_assert_ptr_nonnull(strstr(ep, "/data/run/raftd.sock"));
		/* The node id persists: a second load agrees. */
		snprintf(id2, sizeof(id2), "%s", c.node_id);
		ck_assert_int_eq(config_load(argc, argv, &c2, err, sizeof(err)), 0);
		ck_assert_str_eq(c2.node_id, id2);
		config_close(&c2);
	}
	config_close(&c);
}
END_TEST

START_TEST(config_files_merge_and_flags_win)
{
	char f1[128], dir[96], f2[160], data[160], err[256];
	char *argv[8];
	struct config c;
	int argc = 0;

	snprintf(f1, sizeof(f1), "%s/a.json", tmpdir);
	snprintf(dir, sizeof(dir), "%s/conf.d", tmpdir);
	snprintf(data, sizeof(data), "%s/d", tmpdir);
	mkdir(dir, 0755);
	write_file(f1, "{\"datacenter\": \"dc7\", \"ports\": {\"http\": 1, \"dns\": 2},"
		       " \"dns_config\": {\"node_ttl\": \"30s\", \"service_ttl\": {\"*\": \"5s\"},"
		       " \"only_passing\": true}}");
	snprintf(f2, sizeof(f2), "%s/10-b.json", dir);
	write_file(f2, "{\"ports\": {\"dns\": 5353}, \"node_name\": \"fromdir\"}");
	snprintf(f2, sizeof(f2), "%s/ignored.txt", dir);
	write_file(f2, "not json");
	argv[argc++] = "x";
	argv[argc++] = "-config-file";
	argv[argc++] = f1;
	argv[argc++] = "-config-dir";
	argv[argc++] = dir;
	argv[argc++] = "-http-port=9";
	argv[argc++] = "-data-dir";
	argv[argc++] = data;
	ck_assert_int_eq(config_load(argc, argv, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c.datacenter, "dc7");
	ck_assert_int_eq(c.ports.http, 9);    /* flag wins */
	ck_assert_int_eq(c.ports.dns, 5353);  /* later file wins, sibling kept */
	ck_assert_str_eq(c.node_name, "fromdir");
	ck_assert_uint_eq(c.dns.node_ttl_s, 30);
	ck_assert_uint_eq(c.dns.service_ttl_s, 5);
	ck_assert(c.dns.only_passing);
	config_close(&c);
}
END_TEST

static int load_expect_fail(int argc, char **argv, const char *needle)
{
	struct config c;
	char err[256] = "";
	int rc = config_load(argc, argv, &c, err, sizeof(err));

	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
	return rc;
}

START_TEST(config_rejects_bad_input)
{
	char f1[128], data[128];

	snprintf(data, sizeof(data), "%s/d", tmpdir);
	snprintf(f1, sizeof(f1), "%s/bad.json", tmpdir);
	write_file(f1, "{\"ports\": {\"http\": \"eighty\"}}");
	{
		char *argv[] = {"x", "-bogus"};
		load_expect_fail(2, argv, "unknown flag");
	}
	{
		char *argv[] = {"x", "-data-dir", data, "-http-port", "abc"};
		load_expect_fail(5, argv, "not a valid number");
	}
	{
		char *argv[] = {"x", "-data-dir", data, "-http-port", "70000"};
		load_expect_fail(5, argv, "out of range");
	}
	{
		char *argv[] = {"x", "-data-dir", data, "-config-file", f1};
		load_expect_fail(5, argv, "ports.http");
	}
	{
		char *argv[] = {"x", "-config-file", "/nonexistent.json"};
		load_expect_fail(3, argv, "nonexistent");
	}
	{
		char *argv[] = {"x", "-server"};
		load_expect_fail(2, argv, "data_dir is required");
	}
	{
		char *argv[] = {"x", "-data-dir", data, "-datacenter", "bad dc"};
		load_expect_fail(5, argv, "datacenter");
	}
	{
		char *argv[] = {"x", "-data-dir", data, "-bootstrap-expect", "3"};
		load_expect_fail(5, argv, "server");
	}
	{
		char *argv[] = {"x", "-data-dir"};
		load_expect_fail(2, argv, "needs a value");
	}
	write_file(f1, "[1,2]");
	{
		char *argv[] = {"x", "-config-file", f1};
		load_expect_fail(3, argv, "JSON object");
	}
	write_file(f1, "{\"a\": 1, \"a\": 2}");
	{
		char *argv[] = {"x", "-config-file", f1};
		load_expect_fail(3, argv, "duplicate");
	}
}
END_TEST

START_TEST(config_dev_mode)
{
	char *argv[] = {"x", "-dev"};
	struct config c;
	char err[256];

	ck_assert_int_eq(config_load(2, argv, &c, err, sizeof(err)), 0);
	ck_assert(c.dev);
	ck_assert(c.server);
	ck_assert_int_eq(c.bootstrap_expect, 1);
	ck_assert_str_eq(c.bind_addr, "127.0.0.1");
	ck_assert_ptr_null(c.data_dir); /* cairn agent picks a temp dir */
	config_close(&c);
}
END_TEST

/* ---- loop ------------------------------------------------------------------- */

static int order[16], n_order;

static int64_t timer_record(struct loop *l, void *ctx)
{
	order[n_order++] = (int)(intptr_t)ctx;
	if (n_order >= 4)
		loop_stop(l);
	return LOOP_TIMER_STOP;
}

START_TEST(loop_timers_fire_in_order)
{
	struct loop *l = loop_new();
	uint64_t cancelled;

	n_order = 0;
	loop_timer_add(l, 30, timer_record, (void *)3);
	loop_timer_add(l, 10, timer_record, (void *)1);
	cancelled = loop_timer_add(l, 15, timer_record, (void *)99);
	loop_timer_add(l, 20, timer_record, (void *)2);
	loop_timer_add(l, 0, timer_record, (void *)0);
	ck_assert_uint_ne(cancelled, 0);
	loop_timer_del(l, cancelled);
	loop_timer_del(l, cancelled); /* twice is harmless */
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_int_eq(n_order, 4);
	ck_assert_int_eq(order[0], 0);
	ck_assert_int_eq(order[1], 1);
	ck_assert_int_eq(order[2], 2);
	ck_assert_int_eq(order[3], 3);
	loop_free(l);
}
END_TEST

static int repeats;

static int64_t timer_repeat(struct loop *l, void *ctx)
{
	(void)ctx;
	if (++repeats == 5) {
		loop_stop(l);
		return LOOP_TIMER_STOP;
	}
	return 1;
}

struct pipe_ctx {
	int fds[2];
	int reads;
	int hooks;
};

static void on_pipe(struct loop *l, void *ctx, unsigned ev)
{
	struct pipe_ctx *p = ctx;
	char c;

	ck_assert(ev & LOOP_READ);
	ck_assert_int_eq(read(p->fds[0], &c, 1), 1);
	p->reads++;
	loop_unwatch_fd(l, p->fds[0]); /* removing itself during dispatch */
}

static void hook(struct loop *l, void *ctx)
{
	(void)l;
	((struct pipe_ctx *)ctx)->hooks++;
}

START_TEST(loop_fd_watch_and_repeat)
{
	struct loop *l = loop_new();
	struct pipe_ctx p = {0};

	repeats = 0;
	ck_assert_int_eq(pipe(p.fds), 0);
	ck_assert_int_eq(write(p.fds[1], "ab", 2), 2);
	ck_assert_int_eq(loop_watch_fd(l, p.fds[0], LOOP_READ, on_pipe, &p), 0);
	ck_assert_int_eq(loop_add_before_sleep(l, hook, &p), 0);
	loop_timer_add(l, 1, timer_repeat, NULL);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_int_eq(repeats, 5);
	ck_assert_int_eq(p.reads, 1); /* unwatched after the first byte */
	ck_assert_int_ge(p.hooks, 5);
	close(p.fds[0]);
	close(p.fds[1]);
	loop_free(l);
}
END_TEST

static void counting_hook(struct loop *l, void *ctx)
{
	int *n = ctx;

	if (++*n == 3)
		loop_stop(l);
}

START_TEST(loop_hook_removal)
{
	struct loop *l = loop_new();
	int a = 0, b = 0;

	ck_assert_int_eq(loop_add_before_sleep(l, counting_hook, &a), 0);
	ck_assert_int_eq(loop_add_before_sleep(l, counting_hook, &b), 0);
	loop_del_before_sleep(l, counting_hook, &a);
	loop_del_before_sleep(l, counting_hook, &a); /* already gone */
	repeats = -100; /* keeps the loop turning; the hook stops it */
	loop_timer_add(l, 1, timer_repeat, NULL);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_int_eq(a, 0);
	ck_assert_int_eq(b, 3);
	loop_free(l);
}
END_TEST

/* ---- rpc -------------------------------------------------------------------- */

struct rpc_fixture {
	struct loop *l;
	void *z;
	struct rpc_server *srv;
	struct rpc_client *cli;
	struct rpc_req *kept;
	int replies;
	int last_status;
	int64_t last_code;
	uint64_t last_sent;
	enum proto_type last_type;
};

static enum rpc_disposition handler(void *ctx, struct rpc_req *req)
{
	struct rpc_fixture *f = ctx;
	struct proto_msg m;

	if (req->msg.type == PROTO_PING && req->msg.u.ping.sent_ms == 7) {
		f->kept = req; /* answer later, as a blocking query does */
		return RPC_KEEP;
	}
	if (req->msg.type != PROTO_PING) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "no %s here", proto_type_name(req->msg.type));
		return RPC_DONE;
	}
	m = proto_msg_make(PROTO_PONG);
	m.u.pong.sent_ms = req->msg.u.ping.sent_ms;
	rpc_reply(req, &m);
	return RPC_DONE;
}

static void on_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct rpc_fixture *f = ctx;

	f->replies++;
	f->last_status = status;
	f->last_type = reply ? reply->type : PROTO_NONE;
	if (reply && reply->type == PROTO_PONG)
		f->last_sent = reply->u.pong.sent_ms;
	if (reply && reply->type == PROTO_ERROR)
		f->last_code = reply->u.error.code;
	loop_stop(f->l);
}

static int64_t stop_loop(struct loop *l, void *ctx)
{
	(void)ctx;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

static void run_until_reply(struct rpc_fixture *f, int want)
{
	uint64_t guard = loop_timer_add(f->l, 5000, stop_loop, NULL);

	while (f->replies < want) {
		int before = f->replies;

		loop_run(f->l);
		if (f->replies == before)
			break; /* the guard fired */
	}
	loop_timer_del(f->l, guard);
	ck_assert_int_eq(f->replies, want);
}

static struct rpc_fixture F;
static char rpc_ep[128];

static void rpc_setup(void)
{
	const char *eps[2];
	char err[128];

	tmp_setup();
	memset(&F, 0, sizeof(F));
	snprintf(rpc_ep, sizeof(rpc_ep), "ipc://%s/s.sock", tmpdir);
	eps[0] = rpc_ep;
	eps[1] = NULL;
	F.l = loop_new();
	F.z = zmq_ctx_new();
	F.srv = rpc_server_new(F.l, F.z, eps, handler, &F, err, sizeof(err));
	ck_assert_msg(F.srv != NULL, "%s", err);
	F.cli = rpc_client_new(F.l, F.z, rpc_ep);
	ck_assert_ptr_nonnull(F.cli);
}

static void rpc_teardown(void)
{
	rpc_req_free(F.kept);
	rpc_client_free(F.cli);
	rpc_server_free(F.srv);
	zmq_ctx_term(F.z);
	loop_free(F.l);
	tmp_teardown();
}

/* The client connects asynchronously: retry while it says unavailable. */
static void call_ping(uint64_t sent, uint64_t timeout_ms)
{
	struct proto_msg m = proto_msg_make(PROTO_PING);
	int rc;

	m.u.ping.sent_ms = sent;
	for (int i = 0; i < 500; i++) {
		rc = rpc_call(F.cli, &m, timeout_ms, on_reply, &F, NULL);
		if (rc != CAIRN_E_UNAVAILABLE)
			break;
		usleep(2000); /* connection set-up happens in zmq's I/O thread */
	}
	ck_assert_int_eq(rc, 0);
}

START_TEST(rpc_roundtrip)
{
	call_ping(42, 5000);
	run_until_reply(&F, 1);
	ck_assert_int_eq(F.last_status, 0);
	ck_assert_int_eq(F.last_type, PROTO_PONG);
	ck_assert_uint_eq(F.last_sent, 42);
	ck_assert_uint_eq(rpc_client_pending(F.cli), 0);
}
END_TEST

START_TEST(rpc_kept_request_answered_later)
{
	struct proto_msg m;

	call_ping(7, 5000);        /* kept by the handler */
	call_ping(8, 5000);        /* answered at once, overtaking the first */
	run_until_reply(&F, 1);
	ck_assert_uint_eq(F.last_sent, 8);
	ck_assert_ptr_nonnull(F.kept);
	m = proto_msg_make(PROTO_PONG);
	m.u.pong.sent_ms = 7;
	rpc_reply(F.kept, &m);
	F.kept = NULL;
	run_until_reply(&F, 2);
	ck_assert_uint_eq(F.last_sent, 7);
}
END_TEST

START_TEST(rpc_timeout)
{
	call_ping(7, 50); /* kept and never answered */
	run_until_reply(&F, 1);
	ck_assert_int_eq(F.last_status, -ETIMEDOUT);
	ck_assert_uint_eq(rpc_client_pending(F.cli), 0);
}
END_TEST

START_TEST(rpc_malformed_gets_error_reply)
{
	void *dealer = zmq_socket(F.z, ZMQ_DEALER);
	uint8_t buf[512];
	struct proto_msg out;
	struct arena a;
	int n, timeout = 100;

	ck_assert_int_eq(zmq_connect(dealer, rpc_ep), 0);
	zmq_setsockopt(dealer, ZMQ_RCVTIMEO, &timeout, sizeof(timeout));
	arena_init(&a, 0);
	ck_assert_int_eq(zmq_send(dealer, "\x94\x01\x11\x05\xa3xyz", 8, 0), 8);
	for (int i = 0; i < 100; i++) {
		struct loop *l = F.l;

		loop_timer_add(l, 10, stop_loop, NULL);
		loop_run(l);
		n = zmq_recv(dealer, buf, sizeof(buf), ZMQ_DONTWAIT);
		if (n > 0)
			break;
	}
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(proto_decode(buf, (size_t)n, &a, &out, NULL, 0), 0);
	ck_assert_int_eq(out.type, PROTO_ERROR);
	ck_assert_int_eq(out.u.error.code, CAIRN_E_PROTO);
	ck_assert_uint_eq(out.id, 5);
	ck_assert_ptr_nonnull(strstr(out.u.error.message, "PING"));
	arena_close(&a);
	zmq_close(dealer);
}
END_TEST

START_TEST(rpc_wrong_request_type_gets_error)
{
	struct proto_msg m = proto_msg_make(PROTO_KV_GET);
	int rc;

	for (int i = 0; i < 500; i++) {
		rc = rpc_call(F.cli, &m, 5000, on_reply, &F, NULL);
		if (rc != CAIRN_E_UNAVAILABLE)
			break;
		usleep(2000);
	}
	ck_assert_int_eq(rc, 0);
	run_until_reply(&F, 1);
	ck_assert_int_eq(F.last_type, PROTO_ERROR);
	ck_assert_int_eq(F.last_code, CAIRN_E_BADREQ);
}
END_TEST

START_TEST(rpc_unavailable_without_server)
{
	struct rpc_client *c;
	struct proto_msg m = proto_msg_make(PROTO_PING);
	char ep[160];

	snprintf(ep, sizeof(ep), "ipc://%s/nobody.sock", tmpdir);
	c = rpc_client_new(F.l, F.z, ep);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(rpc_call(c, &m, 1000, on_reply, &F, NULL), CAIRN_E_UNAVAILABLE);
	rpc_client_free(c);
}
END_TEST

static Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("basics"), *tcfg = tcase_create("config"),
	      *tr = tcase_create("rpc");

	tcase_add_test(tc, arena_basics);
	tcase_add_test(tc, durations);
	tcase_add_test(tc, loop_timers_fire_in_order);
	tcase_add_test(tc, loop_fd_watch_and_repeat);
	tcase_add_test(tc, loop_hook_removal);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tcfg, tmp_setup, tmp_teardown);
	tcase_add_test(tcfg, config_defaults_and_flags);
	tcase_add_test(tcfg, config_files_merge_and_flags_win);
	tcase_add_test(tcfg, config_rejects_bad_input);
	tcase_add_test(tcfg, config_dev_mode);
	suite_add_tcase(s, tcfg);
	tcase_add_checked_fixture(tr, rpc_setup, rpc_teardown);
	tcase_add_test(tr, rpc_roundtrip);
	tcase_add_test(tr, rpc_kept_request_answered_later);
	tcase_add_test(tr, rpc_timeout);
	tcase_add_test(tr, rpc_malformed_gets_error_reply);
	tcase_add_test(tr, rpc_wrong_request_type_gets_error);
	tcase_add_test(tr, rpc_unavailable_without_server);
	tcase_set_timeout(tr, 30);
	suite_add_tcase(s, tr);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(common_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
