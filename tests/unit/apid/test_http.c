/* Tests for apid/http.c in one process: the HTTP server and a fake raftd
 * (an rpc_server) share one event loop, while a client thread drives
 * libcurl. They check that requests needing an RPC are parked (suspended)
 * until the reply comes, that many can be parked at once, that a missing
 * raftd gives a 500 at once, that over-limit bodies never reach raftd, and
 * that stopping with parked requests answers them with 503.
 *
 * The loop polls the client's progress from a 2 ms timer; nothing sleeps. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "http.h"
#include "loop.h"
#include "rpc.h"
#include "suites.h"

#define MAX_REQS 64

/* ---- the fake raftd ------------------------------------------------------ */

struct fake {
	struct rpc_server *srv;
	bool hold; /* keep requests instead of answering */
	struct rpc_req *held[MAX_REQS];
	size_t n_held;
	size_t n_seen;
};

static void fake_answer(struct rpc_req *req)
{
	struct proto_msg m;
	static struct proto_kv_entry e;

	if (req->msg.type == PROTO_KV_GET) {
		m = proto_msg_make(PROTO_KV_GET_REPLY);
		e.key = arena_strdup(&req->arena, req->msg.u.kv_get.key);
		e.create_index = 3;
		e.modify_index = 7;
		e.value.ptr = (const uint8_t *)"v";
		e.value.len = 1;
		m.u.kv_get_reply.index = 7;
		m.u.kv_get_reply.known_leader = true;
		m.u.kv_get_reply.entries.v = &e;
		m.u.kv_get_reply.entries.n = 1;
	} else if (req->msg.type == PROTO_KV_PUT) {
		m = proto_msg_make(PROTO_WRITE_REPLY);
		m.u.write_reply.index = 8;
		m.u.write_reply.ok = true;
	} else {
		(void)rpc_reply_error(req, -ENOTSUP, "not in this fake");
		return;
	}
	(void)rpc_reply(req, &m);
}

static enum rpc_disposition fake_handle(void *ctx, struct rpc_req *req)
{
	struct fake *f = ctx;

	f->n_seen++;
	if (f->hold && f->n_held < MAX_REQS) {
		f->held[f->n_held++] = req;
		return RPC_KEEP;
	}
	fake_answer(req);
	return RPC_DONE;
}

static void fake_release(struct fake *f)
{
	size_t i;

	for (i = 0; i < f->n_held; i++)
		fake_answer(f->held[i]);
	f->n_held = 0;
	f->hold = false;
}

/* ---- the client thread -------------------------------------------------- */

struct result {
	long status;
	char body[512];
	size_t body_len;
	char index[32]; /* X-Consul-Index, "" when absent */
};

struct job {
	int port;
	int n;
	const char *method;
	const char *path;
	const char *body;
	size_t body_len;
	struct result res[MAX_REQS];
	atomic_int done;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
	struct result *r = ud;
	size_t n = sz * nm, room = sizeof(r->body) - 1 - r->body_len;

	memcpy(r->body + r->body_len, p, n < room ? n : room);
	r->body_len += n < room ? n : room;
	r->body[r->body_len] = '\0';
	return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
	struct result *r = ud;
	size_t n = sz * nm;

	if (n > 16 && strncasecmp(p, "X-Consul-Index: ", 16) == 0)
		snprintf(r->index, sizeof(r->index), "%.*s", (int)strcspn(p + 16, "\r\n"), p + 16);
	return n;
}

static void *client_main(void *arg)
{
	struct job *j = arg;
	CURLM *m = curl_multi_init();
	CURL *h[MAX_REQS];
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:");
	char url[256];
	int running = 1, i;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", j->port, j->path);
	for (i = 0; i < j->n; i++) {
		h[i] = curl_easy_init();
		curl_easy_setopt(h[i], CURLOPT_URL, url);
		curl_easy_setopt(h[i], CURLOPT_CUSTOMREQUEST, j->method);
		curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &j->res[i]);
		curl_easy_setopt(h[i], CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h[i], CURLOPT_HEADERDATA, &j->res[i]);
		curl_easy_setopt(h[i], CURLOPT_TIMEOUT, 30L);
		if (j->body) {
			curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, j->body);
			curl_easy_setopt(h[i], CURLOPT_POSTFIELDSIZE_LARGE,
					 (curl_off_t)j->body_len);
		}
		curl_multi_add_handle(m, h[i]);
	}
	while (running) {
		curl_multi_perform(m, &running);
		if (running)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	for (i = 0; i < j->n; i++) {
		curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &j->res[i].status);
		curl_multi_remove_handle(m, h[i]);
		curl_easy_cleanup(h[i]);
	}
	curl_slist_free_all(hdrs);
	curl_multi_cleanup(m);
	atomic_store(&j->done, 1);
	return NULL;
}

/* ---- fixture ------------------------------------------------------------ */

static struct loop *l;
static void *zctx;
static struct fake fake;
static struct rpc_client *raftd;
static struct http_server *http;
static struct config cfg;
static char dir[64];
static char endpoint[128];

/* What the loop's tick does for the running test. */
static struct job *job;
static size_t release_at; /* release held requests once this many are parked */
static size_t max_parked;
static bool stop_when_parked; /* stop the loop instead (shutdown test) */

static int64_t tick(struct loop *lp, void *ctx)
{
	size_t parked = http_server_parked(http);

	(void)ctx;
	if (parked > max_parked)
		max_parked = parked;
	if (release_at && parked == release_at && fake.n_held == release_at) {
		if (stop_when_parked) {
			loop_stop(lp);
			return LOOP_TIMER_STOP;
		}
		fake_release(&fake);
		release_at = 0;
	}
	if (job && atomic_load(&job->done)) {
		loop_stop(lp);
		return LOOP_TIMER_STOP;
	}
	return 2;
}

static bool pinged;
static bool ping_in_flight;

static void on_pong(void *ctx, int status, const struct proto_msg *reply)
{
	(void)ctx;
	(void)reply;
	ping_in_flight = false;
	if (status == 0)
		pinged = true;
}

static int64_t ping_tick(struct loop *lp, void *ctx)
{
	struct proto_msg m = proto_msg_make(PROTO_PING);

	(void)ctx;
	if (pinged) {
		loop_stop(lp);
		return LOOP_TIMER_STOP;
	}
	if (!ping_in_flight && rpc_call(raftd, &m, 1000, on_pong, NULL, NULL) == 0)
		ping_in_flight = true;
	return 2;
}

/* Binds the fake raftd and runs the loop until the client reaches it (the
 * DEALER connects asynchronously and refuses sends until then). */
static void start_fake(void)
{
	const char *eps[] = {endpoint, NULL};
	char err[128];

	fake.srv = rpc_server_new(l, zctx, eps, fake_handle, &fake, err, sizeof(err));
	ck_assert_msg(fake.srv != NULL, "fake raftd: %s", err);
	pinged = ping_in_flight = false;
	ck_assert_uint_ne(loop_timer_add(l, 0, ping_tick, NULL), 0);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert(pinged);
	fake.n_seen = 0;
}

static void setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/cairn-test-http.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(endpoint, sizeof(endpoint), "ipc://%s/raftd.sock", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "n1";
	cfg.node_id = "11111111-2222-3333-4444-555555555555";
	cfg.client_addr = "127.0.0.1";
	cfg.ports.http = 0;
	cfg.kv_max_value_size = 1024;
	cfg.http_max_body = 2048;
	memset(&fake, 0, sizeof(fake));
	job = NULL;
	release_at = 0;
	max_parked = 0;
	stop_when_parked = false;
	l = loop_new();
	zctx = zmq_ctx_new();
	ck_assert(l && zctx);
	raftd = rpc_client_new(l, zctx, endpoint);
	ck_assert_ptr_nonnull(raftd);
	http = http_server_new(l, &cfg, raftd, NULL, err, sizeof(err));
	ck_assert_msg(http != NULL, "http_server_new: %s", err);
	ck_assert_int_gt(http_server_port(http), 0);
}

static void teardown(void)
{
	size_t i;

	http_server_free(http);
	for (i = 0; i < fake.n_held; i++)
		rpc_req_free(fake.held[i]);
	rpc_server_free(fake.srv);
	rpc_client_free(raftd);
	zmq_ctx_term(zctx);
	loop_free(l);
	snprintf(endpoint, sizeof(endpoint), "%s/raftd.sock", dir);
	(void)unlink(endpoint);
	(void)rmdir(dir);
}

/* Runs the loop until the job's client thread is done. */
static void run_job(struct job *j, const char *method, const char *path, int n)
{
	pthread_t t;

	memset(j, 0, sizeof(*j));
	j->port = http_server_port(http);
	j->method = method;
	j->path = path;
	j->n = n;
	job = j;
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, j), 0);
	ck_assert_uint_ne(loop_timer_add(l, 2, tick, NULL), 0);
	ck_assert_int_eq(loop_run(l), 0);
	pthread_join(t, NULL);
}

/* ---- tests -------------------------------------------------------------- */

START_TEST(get_parks_until_reply)
{
	static struct job j;

	start_fake();
	fake.hold = true;
	release_at = 1;
	run_job(&j, "GET", "/v1/kv/a%2Fb?index=5&wait=10s", 1);
	ck_assert_uint_eq(max_parked, 1);
	ck_assert_uint_eq(http_server_parked(http), 0);
	ck_assert_int_eq(j.res[0].status, 200);
	ck_assert_str_eq(j.res[0].index, "7");
	ck_assert_str_eq(j.res[0].body, "[{\"LockIndex\":0,\"Key\":\"a/b\",\"Flags\":0,"
					"\"Value\":\"dg==\",\"CreateIndex\":3,\"ModifyIndex\":7}]");
}
END_TEST

START_TEST(many_parked_at_once)
{
	static struct job j;
	int i;

	start_fake();
	fake.hold = true;
	release_at = 50;
	run_job(&j, "GET", "/v1/kv/w?index=5&wait=20s", 50);
	ck_assert_uint_eq(max_parked, 50);
	ck_assert_uint_eq(fake.n_seen, 50);
	for (i = 0; i < 50; i++) {
		ck_assert_int_eq(j.res[i].status, 200);
		ck_assert_str_eq(j.res[i].index, "7");
	}
}
END_TEST

START_TEST(put_round_trip)
{
	static struct job j;

	start_fake();
	memset(&j, 0, sizeof(j));
	j.body = "hello";
	j.body_len = 5;
	{
		pthread_t t;

		j.port = http_server_port(http);
		j.method = "PUT";
		j.path = "/v1/kv/greeting";
		j.n = 1;
		job = &j;
		ck_assert_int_eq(pthread_create(&t, NULL, client_main, &j), 0);
		ck_assert_uint_ne(loop_timer_add(l, 2, tick, NULL), 0);
		ck_assert_int_eq(loop_run(l), 0);
		pthread_join(t, NULL);
	}
	ck_assert_int_eq(j.res[0].status, 200);
	ck_assert_str_eq(j.res[0].body, "true");
	ck_assert_uint_eq(fake.n_seen, 1);
}
END_TEST

START_TEST(raftd_missing_is_500)
{
	static struct job j;

	/* no fake server bound: ZMQ_IMMEDIATE refuses the send at once */
	run_job(&j, "GET", "/v1/kv/x", 1);
	ck_assert_int_eq(j.res[0].status, 500);
	ck_assert_str_eq(j.res[0].body, "rpc error: cairn-raftd unavailable");
	ck_assert_uint_eq(max_parked, 0);
}
END_TEST

START_TEST(too_large_never_reaches_raftd)
{
	static struct job j;
	static char big[1025];
	pthread_t t;

	start_fake();
	memset(big, 'x', sizeof(big));
	memset(&j, 0, sizeof(j));
	j.body = big;
	j.body_len = sizeof(big); /* kv_max_value_size + 1 */
	j.port = http_server_port(http);
	j.method = "PUT";
	j.path = "/v1/kv/big";
	j.n = 1;
	job = &j;
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, &j), 0);
	ck_assert_uint_ne(loop_timer_add(l, 2, tick, NULL), 0);
	ck_assert_int_eq(loop_run(l), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(j.res[0].status, 413);
	ck_assert_uint_eq(fake.n_seen, 0);
}
END_TEST

START_TEST(stop_answers_parked_503)
{
	static struct job j;
	pthread_t t;

	start_fake();
	fake.hold = true;
	release_at = 3;
	stop_when_parked = true;
	memset(&j, 0, sizeof(j));
	j.port = http_server_port(http);
	j.method = "GET";
	j.path = "/v1/kv/s?index=1&wait=30s";
	j.n = 3;
	job = &j;
	ck_assert_int_eq(pthread_create(&t, NULL, client_main, &j), 0);
	ck_assert_uint_ne(loop_timer_add(l, 2, tick, NULL), 0);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_uint_eq(http_server_parked(http), 3);
	http_server_free(http); /* answers the parked requests */
	http = NULL;
	pthread_join(t, NULL);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(j.res[i].status, 503);
		ck_assert_str_eq(j.res[i].body, "agent shutting down");
	}
}
END_TEST

Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("loop");

	curl_global_init(CURL_GLOBAL_DEFAULT);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, get_parks_until_reply);
	tcase_add_test(tc, many_parked_at_once);
	tcase_add_test(tc, put_round_trip);
	tcase_add_test(tc, raftd_missing_is_500);
	tcase_add_test(tc, too_large_never_reaches_raftd);
	tcase_add_test(tc, stop_answers_parked_503);
	suite_add_tcase(s, tc);
	return s;
}
