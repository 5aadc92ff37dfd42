/* Process test: a 3-server cluster started with `cairn agent -server
 * -bootstrap-expect 3 -retry-join ...` on loopback. A leader is elected
 * and known by all; writes through any server are readable (stale) on
 * all; kill -9 of the leader's raftd while writers run elects a new
 * leader, loses no acknowledged write, and the killed raftd (restarted by
 * its agent) catches up. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "proto.h"
#include "ptest.h"

/* The register linearizability checker of tests/sim, compiled in here so
 * that this program needs nothing beyond the shared process-test build. */
#include "../sim/lin.c"

#define N 3

/* Three servers joined through each other's Raft ports. */
PTEST_CLUSTER_FIXTURE(N, {.name_prefix = "srv", .join = HARNESS_JOIN_RAFT})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

static char join_args[N][64]; /* "127.0.0.1:<server port>", as the leader is named */

/* Leader address as agent i sees it, "" if none. */
static void leader_of(int i, char *out, size_t len)
{
	struct http_resp r;

	out[0] = '\0';
	if (http_get(&ags[i], "/v1/status/leader", &r) == 0 && r.status == 200 && r.body_len > 2)
		snprintf(out, len, "%.*s", (int)r.body_len - 2, r.body + 1);
	http_resp_free(&r);
}

static void setup(void)
{
	cluster_setup();
	for (int i = 0; i < N; i++)
		snprintf(join_args[i], sizeof(join_args[i]), "127.0.0.1:%d", ags[i].server_port);
}

START_TEST(one_leader_three_peers)
{
	REQUIRE_CLUSTER();
	ck_assert_int_ge(cluster_leader(0, -1), 0);
	for (int i = 0; i < N; i++) {
		struct http_resp r;
		http_get(&ags[i], "/v1/status/peers", &r);
		EXPECT_STATUS(r, 200);
		json_t *j = http_json(&r);
		ck_assert_ptr_nonnull(j);
		ck_assert_uint_eq(json_array_size(j), N);
		for (int k = 0; k < N; k++) {
			bool found = false;
			for (size_t m = 0; m < N; m++)
				found |= strcmp(json_string_value(json_array_get(j, m)),
						join_args[k]) == 0;
			ck_assert_msg(found, "%s not among the peers: %s", join_args[k], r.body);
		}
		json_decref(j);
		http_resp_free(&r);
	}
}
END_TEST

/* Polls a stale read on agent i until key holds want. */
static bool wait_value(int i, const char *key, const char *want_b64, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;
	char path[256];

	snprintf(path, sizeof(path), "/v1/kv/%s?stale", key);
	for (;;) {
		struct http_resp r;
		bool ok = http_get(&ags[i], path, &r) == 0 && r.status == 200 && r.body &&
			  strstr(r.body, want_b64);
		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(20);
	}
}

struct blocking_get {
	int agent;
	char path[160];
	struct http_resp r;
};

static void *blocking_get_run(void *arg)
{
	struct blocking_get *b = arg;
	http_get(&ags[b->agent], b->path, &b->r);
	return NULL;
}

START_TEST(blocking_queries_on_followers)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);
	int f1 = (l + 1) % N, f2 = (l + 2) % N;
	struct http_resp r;
	char b64[64];

	http_put(&ags[l], "/v1/kv/block/k", "v1", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	harness_base64("v1", 2, b64);
	ck_assert(wait_value(f1, "block/k", b64, 10000));
	ck_assert(wait_value(f2, "block/k", b64, 10000));
	http_get(&ags[f1], "/v1/kv/block/k?stale", &r);
	uint64_t idx = http_index(&r);
	http_resp_free(&r);
	ck_assert_uint_gt(idx, 0);
	/* Default mode on a follower blocks on the leader; ?stale blocks on
	 * the follower itself. Both wake on the write, long before 30 s. */
	static struct blocking_get g[2];
	pthread_t th[2];
	g[0].agent = f1;
	snprintf(g[0].path, sizeof(g[0].path), "/v1/kv/block/k?index=%" PRIu64 "&wait=30s", idx);
	g[1].agent = f2;
	snprintf(g[1].path, sizeof(g[1].path), "/v1/kv/block/k?stale&index=%" PRIu64 "&wait=30s",
		 idx);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, blocking_get_run, &g[i]), 0);
	harness_pause_ms(300); /* only to let both park; correctness does not depend on it */
	http_put(&ags[f2], "/v1/kv/block/k", "v2", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	harness_base64("v2", 2, b64);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		EXPECT_STATUS(g[i].r, 200);
		ck_assert_msg(strstr(g[i].r.body, b64), "blocking query %d answered %s", i,
			      g[i].r.body);
		ck_assert_uint_gt(http_index(&g[i].r), idx);
		http_resp_free(&g[i].r);
	}
}
END_TEST

START_TEST(write_anywhere_read_everywhere)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(0, -1);
	ck_assert_int_ge(l, 0);
	int f = (l + 1) % N;
	struct http_resp r;
	char b64[64], hdr[64];

	/* Through a follower: forwarded to the leader, answered once applied. */
	http_put(&ags[f], "/v1/kv/cluster/a", "via-follower", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_put(&ags[l], "/v1/kv/cluster/b", "via-leader", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	harness_base64("via-follower", 12, b64);
	for (int i = 0; i < N; i++)
		ck_assert_msg(wait_value(i, "cluster/a", b64, 10000), "srv%d lacks cluster/a",
			      i + 1);
	/* Default mode on a follower is answered by the leader. */
	http_get(&ags[f], "/v1/kv/cluster/b", &r);
	EXPECT_STATUS(r, 200);
	harness_base64("via-leader", 10, b64);
	ck_assert_ptr_nonnull(strstr(r.body, b64));
	EXPECT_HEADER(r, "X-Consul-KnownLeader", hdr);
	ck_assert_str_eq(hdr, "true");
	http_resp_free(&r);
	/* Stale on a follower: its own state (b arrives with the next
	 * heartbeat's commit index), with a real last contact. */
	ck_assert(wait_value(f, "cluster/b", b64, 10000));
	http_get(&ags[f], "/v1/kv/cluster/b?stale", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_HEADER(r, "X-Consul-LastContact", hdr);
	ck_assert_int_lt(atoi(hdr), 2000);
	http_resp_free(&r);
	/* Each server registered its node through the leader. */
	uint64_t deadline = harness_now_ms() + 10000;
	for (;;) {
		http_get(&ags[f], "/v1/catalog/nodes?stale", &r);
		json_t *j = http_json(&r);
		size_t n = j ? json_array_size(j) : 0;
		json_decref(j);
		http_resp_free(&r);
		if (n == N)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "%zu catalog nodes, want %d", n, N);
		harness_pause_ms(50);
	}
}
END_TEST

#define WRITERS 3
#define MAX_WRITES 2000

struct writer {
	int id;
	atomic_bool *stop;
	int n;			/* writes attempted */
	bool acked[MAX_WRITES]; /* answered 200 "true" */
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint64_t deadline = harness_now_ms() + 60000;

	for (int i = 0; i < MAX_WRITES && !atomic_load(w->stop) && harness_now_ms() < deadline;
	     i++) {
		char path[128], val[64];
		struct http_resp r;

		snprintf(path, sizeof(path), "/v1/kv/fo/w%d/%04d", w->id, i);
		snprintf(val, sizeof(val), "v-%d-%d", w->id, i);
		/* Writers go through every server in turn. */
		http_put(&ags[(w->id + i) % N], path, val, &r);
		w->acked[i] = r.status == 200 && r.body_len == 4 && memcmp(r.body, "true", 4) == 0;
		w->n = i + 1;
		http_resp_free(&r);
	}
	return NULL;
}

static int acked_count(const struct writer *ws)
{
	int n = 0;
	for (int k = 0; k < WRITERS; k++)
		for (int i = 0; i < ws[k].n; i++)
			n += ws[k].acked[i];
	return n;
}

/* ---- a recorded history for the linearizability checker ---- */

#define LIN_CLIENTS 3
#define LIN_MAX_OPS 3000

struct lin_client {
	int id;
	atomic_bool *stop;
	struct lin_op ops[LIN_MAX_OPS];
	size_t n;
	atomic_int *next_value;
};

static int b64val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* The integer stored (as decimal text) in a KV GET answer; 0 if absent. */
static bool read_value(const struct http_resp *r, int64_t *out)
{
	char dec[64];
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0;

	if (r->status == 404) {
		*out = 0;
		return true;
	}
	if (r->status != 200)
		return false;
	json_t *j = http_json(r);
	const char *v = json_string_value(json_object_get(json_array_get(j, 0), "Value"));
	for (; v && *v && *v != '=' && n + 1 < sizeof(dec); v++) {
		int x = b64val(*v);
		if (x < 0)
			break;
		acc = (acc << 6) | (unsigned)x;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dec[n++] = (char)((acc >> bits) & 0xff);
		}
	}
	dec[n] = '\0';
	json_decref(j);
	*out = atoll(dec);
	return n > 0;
}

/* Random put/get on three keys through random servers, recording call
 * and return times; reads alternate between default and ?consistent. */
static void *lin_run(void *arg)
{
	struct lin_client *c = arg;
	unsigned seed = (unsigned)c->id * 7919u + 1;

	while (!atomic_load(c->stop) && c->n < LIN_MAX_OPS) {
		struct lin_op *op = &c->ops[c->n];
		int srv = (int)(rand_r(&seed) % N);
		char path[96];
		struct http_resp r;

		memset(op, 0, sizeof(*op));
		op->key = (unsigned)(rand_r(&seed) % 3);
		op->kind = rand_r(&seed) % 2 ? LIN_PUT : LIN_GET;
		op->call_ms = harness_now_ms();
		if (op->kind == LIN_PUT) {
			char val[32];
			op->a = atomic_fetch_add(c->next_value, 1);
			snprintf(val, sizeof(val), "%lld", (long long)op->a);
			snprintf(path, sizeof(path), "/v1/kv/lin/%u", op->key);
			http_put(&ags[srv], path, val, &r);
			op->ret_ms = harness_now_ms();
			if (!(r.status == 200 && r.body_len == 4 && !memcmp(r.body, "true", 4)))
				op->ret_ms = LIN_UNKNOWN; /* may or may not have happened */
			c->n++;
		} else {
			snprintf(path, sizeof(path), "/v1/kv/lin/%u%s", op->key,
				 rand_r(&seed) % 2 ? "?consistent" : "");
			http_get(&ags[srv], path, &r);
			op->ret_ms = harness_now_ms();
			if (read_value(&r, &op->out))
				c->n++; /* a failed read has no effect: left out */
		}
		http_resp_free(&r);
	}
	return NULL;
}

START_TEST(leader_raftd_killed_under_writes)
{
	REQUIRE_CLUSTER();
	static struct writer ws[WRITERS];
	pthread_t th[WRITERS];
	atomic_bool stop = false;
	int l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);

	static struct lin_client lc[LIN_CLIENTS];
	pthread_t lth[LIN_CLIENTS];
	atomic_int next_value = 1;

	for (int k = 0; k < WRITERS; k++) {
		ws[k].id = k;
		ws[k].stop = &stop;
		ck_assert_int_eq(pthread_create(&th[k], NULL, writer_run, &ws[k]), 0);
	}
	for (int k = 0; k < LIN_CLIENTS; k++) {
		lc[k].id = k;
		lc[k].n = 0;
		lc[k].stop = &stop;
		lc[k].next_value = &next_value;
		ck_assert_int_eq(pthread_create(&lth[k], NULL, lin_run, &lc[k]), 0);
	}
	/* Let writes flow, then kill -9 the leader's raftd. */
	uint64_t t0 = harness_now_ms();
	while (acked_count(ws) < 100 && harness_now_ms() - t0 < 20000)
		harness_pause_ms(10);
	pid_t victim = harness_daemon_pid(&ags[l], "raftd");
	ck_assert_int_gt(victim, 0);
	int before = acked_count(ws);
	uint64_t kill_ms = harness_now_ms();
	ck_assert_int_eq(kill(victim, SIGKILL), 0);
	/* A leader again, agreed by all (the agent restarts the killed raftd
	 * at once, so it may win the new term itself). */
	int nl = -1;
	uint64_t deadline = kill_ms + 15000;
	while (nl < 0 && harness_now_ms() < deadline) {
		nl = cluster_leader(0, -1);
		if (nl == l && harness_daemon_pid(&ags[l], "raftd") == victim)
			nl = -1; /* still the killed process's leadership */
		if (nl < 0)
			harness_pause_ms(20);
	}
	ck_assert_msg(nl >= 0, "no leader within 15 s of the kill");
	uint64_t elected_ms = harness_now_ms();
	/* Writes keep being acknowledged after the fail-over. */
	int at_election = acked_count(ws);
	deadline = harness_now_ms() + 20000;
	while (acked_count(ws) < at_election + 100 && harness_now_ms() < deadline)
		harness_pause_ms(10);
	atomic_store(&stop, true);
	for (int k = 0; k < WRITERS; k++)
		pthread_join(th[k], NULL);
	for (int k = 0; k < LIN_CLIENTS; k++)
		pthread_join(lth[k], NULL);
	{
		/* The history of put/get across the fail-over is linearizable. */
		static struct lin_op all[LIN_CLIENTS * LIN_MAX_OPS];
		size_t n = 0;
		unsigned bad = 0;
		for (int k = 0; k < LIN_CLIENTS; k++)
			for (size_t i = 0; i < lc[k].n; i++)
				all[n++] = lc[k].ops[i];
		int lrc = lin_check(all, n, &bad);
		fprintf(stderr, "linearizability: %zu operations checked: %s\n", n,
			lrc == 1 ? "ok" : "NOT linearizable");
		ck_assert_msg(lrc == 1, "history of lin/%u is not linearizable (%d)", bad, lrc);
		ck_assert_uint_gt(n, 50);
	}
	int total = acked_count(ws);
	ck_assert_int_ge(total, at_election + 100);
	fprintf(stderr,
		"fail-over: leader (srv%d, was srv%d) agreed %" PRIu64 " ms after kill -9; "
		"%d writes acked before the kill, %d in all\n",
		nl + 1, l + 1, elected_ms - kill_ms, before, total);
	/* The agent restarts the killed raftd, which catches up: every
	 * acknowledged write is on every server. */
	ck_assert_int_gt(harness_wait_daemon(&ags[l], "raftd", victim, 20000), 0);
	for (int i = 0; i < N; i++) {
		for (int k = 0; k < WRITERS; k++) {
			for (int n = 0; n < ws[k].n; n++) {
				char key[64], val[64], b64[96];
				if (!ws[k].acked[n])
					continue;
				snprintf(key, sizeof(key), "fo/w%d/%04d", k, n);
				snprintf(val, sizeof(val), "v-%d-%d", k, n);
				harness_base64(val, strlen(val), b64);
				ck_assert_msg(wait_value(i, key, b64, 20000),
					      "srv%d lacks acknowledged write %s", i + 1, key);
			}
		}
	}
	/* The cluster still agrees on one leader with all three servers. */
	ck_assert_int_ge(cluster_leader(10000, -1), 0);
}
END_TEST

START_TEST(no_leader_answers_500_after_a_bounded_wait)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);
	int f = (l + 1) % N, o = (l + 2) % N;
	pid_t pl = harness_daemon_pid(&ags[l], "raftd"), po = harness_daemon_pid(&ags[o], "raftd");
	ck_assert_int_gt(pl, 0);
	ck_assert_int_gt(po, 0);
	/* Freeze two of three raftds: the third cannot have a leader. */
	ck_assert_int_eq(kill(pl, SIGSTOP), 0);
	ck_assert_int_eq(kill(po, SIGSTOP), 0);
	uint64_t deadline = harness_now_ms() + 10000;
	char ld[128] = "x";
	while (ld[0] && harness_now_ms() < deadline) {
		leader_of(f, ld, sizeof(ld));
		if (ld[0])
			harness_pause_ms(50);
	}
	bool forgot = ld[0] == '\0';
	struct http_resp r;
	uint64_t t0 = harness_now_ms();
	http_put(&ags[f], "/v1/kv/nl/x", "x", &r);
	uint64_t took = harness_now_ms() - t0;
	struct http_resp st;
	http_get(&ags[f], "/v1/kv/cluster/a?stale", &st);
	char known[16] = "";
	(void)http_header(&st, "X-Consul-KnownLeader", known, sizeof(known));
	(void)kill(pl, SIGCONT);
	(void)kill(po, SIGCONT);
	ck_assert_msg(forgot, "the follower still names a leader");
	EXPECT_STATUS(r, 500);
	EXPECT_BODY(r, "No cluster leader");
	ck_assert_uint_lt(took, 8000); /* a bounded wait, not apid's time-out */
	http_resp_free(&r);
	/* Stale reads still work, saying no leader is known. */
	EXPECT_STATUS(st, 200);
	ck_assert_str_eq(known, "false");
	http_resp_free(&st);
	ck_assert_int_ge(cluster_leader(20000, -1), 0);
}
END_TEST

static bool log_contains(const struct agent *a, const char *needle)
{
	char line[2048];
	bool found = false;
	FILE *f = fopen(a->log_path, "r");

	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	if (f)
		fclose(f);
	return found;
}

START_TEST(leaving_leader_transfers_leadership)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(20000, -1);
	ck_assert_int_ge(l, 0);
	pid_t p = harness_daemon_pid(&ags[l], "raftd");
	ck_assert_int_gt(p, 0);
	/* SIGTERM: the leader hands over to another voter, then exits. */
	ck_assert_int_eq(kill(p, SIGTERM), 0);
	int nl = cluster_leader(20000, l);
	ck_assert_msg(nl >= 0 && nl != l, "no other leader after the leader left");
	uint64_t deadline = harness_now_ms() + 10000;
	while (!log_contains(&ags[l], "leadership transferred") && harness_now_ms() < deadline)
		harness_pause_ms(50);
	ck_assert_msg(log_contains(&ags[l], "leadership transferred"),
		      "the leaving leader did not hand over");
	/* Its agent brings raftd back; the cluster has three servers again. */
	ck_assert_int_gt(harness_wait_daemon(&ags[l], "raftd", p, 20000), 0);
	ck_assert_int_ge(cluster_leader(20000, -1), 0);
}
END_TEST

/* One request to agent i's raftd over its ipc socket. */
static int raftd_call(int i, struct proto_msg *m, struct arena *ar, struct proto_msg *out)
{
	char ep[512];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	m->version = PROTO_VERSION;
	m->id = 7;
	rc = proto_encode(m, &buf, &len);
	if (rc < 0)
		return rc;
	harness_ipc_endpoint(&ags[i], "raftd", ep, sizeof(ep));
	rc = zmq_roundtrip(ep, buf, len, 10000, ar, out);
	free(buf);
	return rc;
}

/* Runs `cairn <args>` (stderr folded into stdout); returns its exit
 * status and its output in out. */
static int run_cli(const char *args, char *out, size_t outlen)
{
	const char *root = getenv("CAIRN_BUILD_ROOT");
	char cmd[1024];
	FILE *p;
	size_t n = 0;
	int st;

	ck_assert_msg(root != NULL, "CAIRN_BUILD_ROOT not set");
	snprintf(cmd, sizeof(cmd), "%s/cli/cairn %s 2>&1", root, args);
	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	while (n + 1 < outlen) {
		size_t got = fread(out + n, 1, outlen - 1 - n, p);
		if (got == 0)
			break;
		n += got;
	}
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* /v1/operator/raft/configuration on every server (default and ?stale),
 * `cairn operator raft list-peers` and remove-peer's errors. */
START_TEST(operator_http_configuration_and_cli)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(20000, -1);
	ck_assert_int_ge(l, 0);
	int f = (l + 1) % N;
	char args[256], out[4096], ct[128];
	struct http_resp hr;

	for (int i = 0; i < 2 * N; i++) {
		http_get(&ags[i % N],
			 i < N ? "/v1/operator/raft/configuration"
			       : "/v1/operator/raft/configuration?stale",
			 &hr);
		EXPECT_STATUS(hr, 200);
		ck_assert(http_header(&hr, "Content-Type", ct, sizeof(ct)));
		ck_assert_str_eq(ct, "application/json");
		json_t *j = http_json(&hr), *servers = json_object_get(j, "Servers"), *sv;
		size_t k, leaders = 0;
		ck_assert_uint_eq(json_array_size(servers), N);
		ck_assert_int_ge(json_integer_value(json_object_get(j, "Index")), 1);
		json_array_foreach(servers, k, sv)
		{
			const char *addr = json_string_value(json_object_get(sv, "Address"));
			const char *node = json_string_value(json_object_get(sv, "Node"));
			const char *id = json_string_value(json_object_get(sv, "ID"));
			bool known = false;
			ck_assert(addr && node && id && *id);
			for (int a = 0; a < N; a++)
				known |= strcmp(addr, join_args[a]) == 0 &&
					 strcmp(node, ags[a].name) == 0;
			ck_assert_msg(known, "server %s at %s (node %s) unknown", id, addr, node);
			ck_assert(json_is_true(json_object_get(sv, "Voter")));
			ck_assert_str_eq(json_string_value(json_object_get(sv, "ProtocolVersion")),
					 "3");
			if (json_is_true(json_object_get(sv, "Leader"))) {
				leaders++;
				ck_assert_str_eq(addr, join_args[l]);
			}
		}
		ck_assert_uint_eq(leaders, 1);
		json_decref(j);
		http_resp_free(&hr);
	}

	/* The CLI, through a follower: a header and one row per server, the
	 * leader's row saying so. */
	for (int stale = 0; stale < 2; stale++) {
		snprintf(args, sizeof(args), "operator raft list-peers%s -http-addr=127.0.0.1:%d",
			 stale ? " -stale" : "", ags[f].http_port);
		ck_assert_int_eq(run_cli(args, out, sizeof(out)), 0);
		char *line = out, *nl;
		int rows = 0, leader_rows = 0;
		ck_assert_msg(strncmp(out, "Node ", 5) == 0, "list-peers printed [%s]", out);
		ck_assert_msg(strstr(out, "  State     Voter  RaftProtocol\n"), "header of [%s]",
			      out);
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			if (line != out) {
				int who = -1;
				for (int a = 0; a < N; a++)
					if (strncmp(line, ags[a].name, strlen(ags[a].name)) == 0 &&
					    strstr(line, join_args[a]))
						who = a;
				ck_assert_msg(who >= 0, "row [%s]", line);
				ck_assert_msg(strlen(line) > 10 && strcmp(line + strlen(line) - 10,
									  "  true   3") == 0,
					      "row [%s]", line);
				if (strstr(line, "  leader  ")) {
					leader_rows++;
					ck_assert_int_eq(who, l);
				} else {
					ck_assert_msg(strstr(line, "  follower  "), "row [%s]",
						      line);
				}
				rows++;
			}
			line = nl + 1;
		}
		ck_assert_int_eq(rows, N);
		ck_assert_int_eq(leader_rows, 1);
	}

	/* Removal errors: no server named, an unknown address (raftd's
	 * message as a 500, and the CLI's wording around it). */
	http_delete(&ags[f], "/v1/operator/raft/peer", &hr);
	EXPECT_STATUS(hr, 400);
	http_resp_free(&hr);
	http_delete(&ags[f], "/v1/operator/raft/peer?address=127.0.0.1:1", &hr);
	EXPECT_STATUS(hr, 500);
	EXPECT_BODY(hr, "address \"127.0.0.1:1\" was not found in the Raft configuration");
	http_resp_free(&hr);
	snprintf(args, sizeof(args),
		 "operator raft remove-peer -address=127.0.0.1:1 -http-addr=127.0.0.1:%d",
		 ags[f].http_port);
	ck_assert_int_eq(run_cli(args, out, sizeof(out)), 1);
	ck_assert_str_eq(out, "Error removing peer: Unexpected response code: 500 (address "
			      "\"127.0.0.1:1\" was not found in the Raft configuration)\n");
}
END_TEST

START_TEST(operator_configuration_and_remove_peer)
{
	REQUIRE_CLUSTER();
	struct arena ar;
	struct proto_msg q, r;
	int l = cluster_leader(20000, -1);
	ck_assert_int_ge(l, 0);
	int f = (l + 1) % N, gone = (l + 2) % N;

	arena_init(&ar, 4096);
	/* The configuration, asked of a follower (answered by the leader). */
	q = proto_msg_make(PROTO_OPERATOR_RAFT_CONFIG);
	ck_assert_int_eq(raftd_call(f, &q, &ar, &r), 0);
	ck_assert_int_eq(r.type, PROTO_OPERATOR_RAFT_CONFIG_REPLY);
	const struct proto_operator_raft_config_reply *c = &r.u.operator_raft_config_reply;
	ck_assert_uint_eq(c->servers.n, N);
	ck_assert_uint_ge(c->index, 1);
	unsigned leaders = 0;
	for (size_t k = 0; k < c->servers.n; k++) {
		const struct proto_raft_server *sv = &c->servers.v[k];
		bool known = false;
		for (int i = 0; i < N; i++)
			known |= strcmp(sv->address, join_args[i]) == 0 &&
				 strcmp(sv->node, ags[i].name) == 0;
		ck_assert_msg(known, "server %s at %s (node %s) unknown", sv->id, sv->address,
			      sv->node);
		ck_assert(sv->voter);
		if (sv->leader) {
			leaders++;
			ck_assert_str_eq(sv->address, join_args[l]);
		}
	}
	ck_assert_uint_eq(leaders, 1);
	/* Unknown address: refused. */
	arena_reset(&ar);
	q = proto_msg_make(PROTO_OPERATOR_RAFT_REMOVE);
	q.u.operator_raft_remove.address = "127.0.0.1:1";
	ck_assert_int_eq(raftd_call(f, &q, &ar, &r), 0);
	ck_assert_int_eq(r.type, PROTO_ERROR);
	/* Remove the third server by address, through a follower's HTTP API
	 * (apid sends OPERATOR_RAFT_REMOVE to its raftd): an empty 200. */
	char path[128];
	snprintf(path, sizeof(path), "/v1/operator/raft/peer?address=%s", join_args[gone]);
	struct http_resp dr;
	http_delete(&ags[f], path, &dr);
	EXPECT_STATUS(dr, 200);
	ck_assert_uint_eq(dr.body_len, 0);
	http_resp_free(&dr);
	/* Two voters remain, and they still commit writes. */
	uint64_t deadline = harness_now_ms() + 10000;
	for (;;) {
		struct http_resp hr;
		http_get(&ags[l], "/v1/status/peers", &hr);
		json_t *j = http_json(&hr);
		size_t n = j ? json_array_size(j) : 0;
		json_decref(j);
		http_resp_free(&hr);
		if (n == 2)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "%zu peers after the removal", n);
		harness_pause_ms(50);
	}
	struct http_resp hr;
	http_put(&ags[f], "/v1/kv/after-removal", "x", &hr);
	EXPECT_STATUS(hr, 200);
	http_resp_free(&hr);
	/* The configuration no longer lists it. */
	http_get(&ags[l], "/v1/operator/raft/configuration", &hr);
	EXPECT_STATUS(hr, 200);
	json_t *cj = http_json(&hr), *sv;
	size_t k;
	ck_assert_uint_eq(json_array_size(json_object_get(cj, "Servers")), 2);
	json_array_foreach(json_object_get(cj, "Servers"), k, sv)
	    ck_assert_str_ne(json_string_value(json_object_get(sv, "Address")), join_args[gone]);
	json_decref(cj);
	http_resp_free(&hr);
	arena_close(&ar);
}
END_TEST

/* Voters of the configuration as agent i's raftd reports them. */
static size_t voters_of(int i)
{
	struct http_resp r;
	http_get(&ags[i], "/v1/status/peers", &r);
	json_t *j = http_json(&r);
	size_t n = j ? json_array_size(j) : 0;
	json_decref(j);
	http_resp_free(&r);
	return n;
}

START_TEST(peers_json_recovery_after_losing_quorum)
{
	REQUIRE_CLUSTER();
	/* After the removal test two voters remain; lose both machines. */
	int l = cluster_leader(20000, -1);
	ck_assert_int_ge(l, 0);
	ck_assert_uint_eq(voters_of(l), 2);
	int voters[2], nv = 0;
	for (int i = 0; i < N; i++) {
		char me[64];
		struct http_resp r;
		snprintf(me, sizeof(me), "\"127.0.0.1:%d\"", ags[i].server_port);
		http_get(&ags[l], "/v1/status/peers", &r);
		if (r.body && strstr(r.body, me) && nv < 2)
			voters[nv++] = i;
		http_resp_free(&r);
	}
	ck_assert_int_eq(nv, 2);
	struct http_resp r;
	http_put(&ags[l], "/v1/kv/before-disaster", "kept", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	char b64[32];
	harness_base64("kept", 4, b64);
	for (int k = 0; k < 2; k++)
		ck_assert(wait_value(voters[k], "before-disaster", b64, 10000));
	harness_agent_kill9(&ags[voters[0]]);
	harness_agent_kill9(&ags[voters[1]]);
	/* The operator writes peers.json on the survivor: itself alone. */
	struct agent *sv = &ags[voters[0]];
	char path[512], id[128] = "";
	snprintf(path, sizeof(path), "%s/node-id", sv->data_dir);
	FILE *f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(id, sizeof(id), f));
	fclose(f);
	id[strcspn(id, "\r\n ")] = '\0';
	snprintf(path, sizeof(path), "%s/raft/peers.json", sv->data_dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[{\"id\": \"%s\", \"address\": \"127.0.0.1:%d\", \"non_voter\": false}]\n", id,
		sv->server_port);
	fclose(f);
	char err[4096];
	ck_assert_msg(harness_agent_relaunch(sv, 60000, err, sizeof(err)) == 0, "%s", err);
	/* It leads alone, kept every committed write and commits again. */
	http_get(sv, "/v1/status/peers", &r);
	ck_assert_msg(voters_of(voters[0]) == 1, "peers: %ld %s", r.status, r.body);
	http_resp_free(&r);
	ck_assert(wait_value(voters[0], "before-disaster", b64, 10000));
	http_put(sv, "/v1/kv/after-recovery", "x", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	uint64_t deadline = harness_now_ms() + 10000;
	while (access(path, F_OK) == 0 && harness_now_ms() < deadline)
		harness_pause_ms(50);
	ck_assert_msg(access(path, F_OK) != 0, "peers.json still there after the recovery");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("raft-cluster");
	TCase *tc = tcase_create("three-servers");

	tcase_add_unchecked_fixture(tc, setup, cluster_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, one_leader_three_peers);
	tcase_add_test(tc, write_anywhere_read_everywhere);
	tcase_add_test(tc, blocking_queries_on_followers);
	tcase_add_test(tc, leader_raftd_killed_under_writes);
	tcase_add_test(tc, no_leader_answers_500_after_a_bounded_wait);
	tcase_add_test(tc, leaving_leader_transfers_leadership);
	tcase_add_test(tc, operator_http_configuration_and_cli);
	tcase_add_test(tc, operator_configuration_and_remove_peer);  /* shrinks the cluster */
	tcase_add_test(tc, peers_json_recovery_after_losing_quorum); /* last: breaks it */
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
