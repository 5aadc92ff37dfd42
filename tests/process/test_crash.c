/* Process test: kill -9 of raftd while writes flow. Every acknowledged write
 * must survive with the same indexes; apid answers 500 with a reason while
 * raftd is gone and recovers by itself without being restarted. */
#include <inttypes.h>
#include <ldns/ldns.h>
#include <pthread.h>
#include <stdatomic.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("crash-node", NULL)

#define N_WRITERS 3
#define WRITES_PER_WRITER 400

struct writer {
	int id;
	const char *prefix; /* keys are <prefix>/w<id>/<i> */
	size_t pad;         /* value bytes beyond "value-<id>-<i>" */
	atomic_bool *stop;
	atomic_int *acked_total;
	bool acked[WRITES_PER_WRITER];    /* PUT answered 200 "true" */
	long status[WRITES_PER_WRITER];   /* HTTP status per write, 0: no answer */
	char bad_body[WRITES_PER_WRITER]; /* non-200 answer had an empty body */
	int done;                         /* writes attempted */
	int n_500;
	int n_other;                      /* statuses other than 200 and 500 */
	long other_status;
	char other_body[200];
};

/* "value-<id>-<i>" followed by pad filler bytes; caller frees. */
static char *make_value(int id, int i, size_t pad)
{
	char head[64];
	int n = snprintf(head, sizeof(head), "value-%d-%d", id, i);
	char *v = malloc((size_t)n + pad + 1);

	ck_assert_ptr_nonnull(v);
	memcpy(v, head, (size_t)n);
	for (size_t k = 0; k < pad; k++)
		v[(size_t)n + k] = (char)('a' + (id + i + (int)k) % 26);
	v[(size_t)n + pad] = '\0';
	return v;
}

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint64_t deadline = harness_now_ms() + 90000;

	for (int i = 0; i < WRITES_PER_WRITER && !atomic_load(w->stop) &&
			harness_now_ms() < deadline;
	     i++) {
		char path[128];
		char *val = make_value(w->id, i, w->pad);
		struct http_resp r;

		snprintf(path, sizeof(path), "/v1/kv/%s/w%d/%04d", w->prefix, w->id, i);
		http_put(&ag, path, val, &r);
		free(val);
		w->status[i] = r.status;
		if (r.status == 200 && r.body_len == 4 && memcmp(r.body, "true", 4) == 0) {
			w->acked[i] = true;
			atomic_fetch_add(w->acked_total, 1);
		} else if (r.status == 500) {
			w->n_500++;
			w->bad_body[i] = r.body_len == 0;
		} else if (r.status != 0) {
			w->n_other++;
			w->other_status = r.status;
			snprintf(w->other_body, sizeof(w->other_body), "%.150s", r.body);
		}
		http_resp_free(&r);
		w->done = i + 1;
		if (r.status != 200)
			harness_pause_ms(20); /* do not spin while raftd restarts */
	}
	return NULL;
}

static bool wait_count(atomic_int *n, int want, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	while (atomic_load(n) < want) {
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(20);
	}
	return true;
}

/* Polls until a PUT succeeds again (raftd back and reachable). */
static bool wait_writable(uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct http_resp r;
		bool ok;

		http_put(&ag, "/v1/kv/crash-probe", "p", &r);
		ok = r.status == 200 && r.body_len == 4 && memcmp(r.body, "true", 4) == 0;
		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(50);
	}
}

/* Key -> indexes, as read with ?recurse. */
struct snap {
	json_t *by_key; /* object: key -> [CreateIndex, ModifyIndex, Value] */
};

static struct snap snapshot(const char *prefix)
{
	char path[128];
	struct http_resp r;
	struct snap s = {json_object()};
	json_t *arr;
	size_t i;
	json_t *e;

	snprintf(path, sizeof(path), "/v1/kv/%s/?recurse", prefix);
	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	arr = http_json(&r);
	ck_assert_msg(json_is_array(arr), "recurse answer not an array: [%.200s]", r.body);
	http_resp_free(&r);
	json_array_foreach(arr, i, e)
	{
		json_t *rec = json_pack("[IIO]", json_integer_value(json_object_get(e, "CreateIndex")),
					json_integer_value(json_object_get(e, "ModifyIndex")),
					json_object_get(e, "Value"));
		json_object_set_new(s.by_key, json_string_value(json_object_get(e, "Key")), rec);
	}
	json_decref(arr);
	return s;
}

/* Writers under prefix with pad-byte values; raftd is killed once they
 * have 60 acknowledged writes, then once more with nothing in flight. */
static void kill9_under_writes(const char *prefix, size_t pad)
{
	static struct writer w[N_WRITERS];
	pthread_t th[N_WRITERS];
	atomic_bool stop = false;
	atomic_int acked = 0;
	pid_t raftd, raftd2, raftd3, apid;
	int acked_before, total_acked = 0, n_500 = 0;
	struct snap s1, s2;

	REQUIRE_AGENT();
	apid = harness_daemon_pid(&ag, "apid");
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_msg(apid > 0 && raftd > 0, "daemons not found: apid %d raftd %d", (int)apid,
		      (int)raftd);

	for (int k = 0; k < N_WRITERS; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].id = k;
		w[k].prefix = prefix;
		w[k].pad = pad;
		w[k].stop = &stop;
		w[k].acked_total = &acked;
		ck_assert_int_eq(pthread_create(&th[k], NULL, writer_run, &w[k]), 0);
	}
	ck_assert_msg(wait_count(&acked, 60, 30000), "only %d writes acknowledged in 30 s",
		      atomic_load(&acked));
	ck_assert_int_eq(kill(raftd, SIGKILL), 0);
	raftd2 = harness_wait_daemon(&ag, "raftd", raftd, 30000);
	ck_assert_msg(raftd2 > 0, "the agent did not restart raftd within 30 s");
	acked_before = atomic_load(&acked);
	/* Writes must flow again: 60 more acknowledged after the restart. */
	ck_assert_msg(wait_count(&acked, acked_before + 60, 40000),
		      "writes did not resume after raftd restarted (%d acked)",
		      atomic_load(&acked));
	atomic_store(&stop, true);
	for (int k = 0; k < N_WRITERS; k++)
		pthread_join(th[k], NULL);

	for (int k = 0; k < N_WRITERS; k++) {
		ck_assert_msg(w[k].n_other == 0,
			      "writer %d got HTTP %ld (want 200, or 500 while raftd is down): %s",
			      k, w[k].other_status, w[k].other_body);
		n_500 += w[k].n_500;
		for (int i = 0; i < w[k].done; i++)
			ck_assert_msg(!w[k].bad_body[i], "a 500 answer had an empty body");
	}
	fprintf(stderr, "kill -9 under writes (%s, %zu-byte pad): %d writes acknowledged, %d "
			"answered 500\n",
		prefix, pad, atomic_load(&acked), n_500);

	/* Every acknowledged write is there with its value. */
	s1 = snapshot(prefix);
	for (int k = 0; k < N_WRITERS; k++) {
		for (int i = 0; i < w[k].done; i++) {
			char key[128], *val, *b64;
			json_t *rec;

			if (!w[k].acked[i])
				continue;
			total_acked++;
			snprintf(key, sizeof(key), "%s/w%d/%04d", prefix, k, i);
			val = make_value(k, i, pad);
			b64 = malloc(4 * (strlen(val) + 2) / 3 + 8);
			ck_assert_ptr_nonnull(b64);
			harness_base64(val, strlen(val), b64);
			rec = json_object_get(s1.by_key, key);
			ck_assert_msg(rec != NULL, "acknowledged write %s lost after kill -9", key);
			ck_assert_msg(strcmp(json_string_value(json_array_get(rec, 2)), b64) == 0,
				      "%s has another value after kill -9", key);
			free(val);
			free(b64);
		}
	}
	ck_assert_int_gt(total_acked, 0);

	/* A second kill -9 with nothing in flight: replay from the log must
	 * give exactly the same state and indexes. */
	raftd2 = harness_daemon_pid(&ag, "raftd");
	ck_assert_int_eq(kill(raftd2, SIGKILL), 0);
	raftd3 = harness_wait_daemon(&ag, "raftd", raftd2, 30000);
	ck_assert_msg(raftd3 > 0, "raftd not restarted after the second kill");
	ck_assert_msg(wait_writable(30000), "no successful write 30 s after the second restart");
	s2 = snapshot(prefix);
	ck_assert_uint_eq(json_object_size(s2.by_key), json_object_size(s1.by_key));
	{
		const char *key;
		json_t *rec;
		json_object_foreach(s1.by_key, key, rec)
		{
			json_t *rec2 = json_object_get(s2.by_key, key);
			ck_assert_msg(rec2 != NULL, "%s vanished after the second kill -9", key);
			ck_assert_msg(json_equal(rec, rec2),
				      "%s changed across a restart: [%lld,%lld] -> [%lld,%lld]", key,
				      (long long)json_integer_value(json_array_get(rec, 0)),
				      (long long)json_integer_value(json_array_get(rec, 1)),
				      (long long)json_integer_value(json_array_get(rec2, 0)),
				      (long long)json_integer_value(json_array_get(rec2, 1)));
		}
	}
	json_decref(s1.by_key);
	json_decref(s2.by_key);
	ck_assert_msg(harness_daemon_pid(&ag, "apid") == apid,
		      "apid was restarted; it must recover from raftd's crash by itself");
	/* dnsd reconnects to the new raftd too: a name it cannot have cached
	 * needs a fresh lookup. */
	{
		char name[128];
		struct dns_result d;
		uint64_t deadline = harness_now_ms() + 30000;
		int rc;
		snprintf(name, sizeof(name), "never-%d.node.consul.", (int)raftd3);
		do {
			rc = dns_query(&ag, name, LDNS_RR_TYPE_A, 1000, &d);
			if (rc == 0 && d.rcode == LDNS_RCODE_NXDOMAIN)
				break;
			harness_pause_ms(100);
		} while (harness_now_ms() < deadline);
		ck_assert_msg(rc == 0 && d.rcode == LDNS_RCODE_NXDOMAIN,
			      "dnsd did not answer NXDOMAIN from the restarted raftd (rc %d rcode %d)",
			      rc, d.rcode);
		ck_assert_msg(d.soa_in_authority, "NXDOMAIN without SOA");
	}
}

START_TEST(raftd_kill9_under_writes)
{
	REQUIRE_AGENT();
	kill9_under_writes("crash", 0);
}
END_TEST

/* The same with 16 KiB values: bigger group-commit transactions. */
START_TEST(raftd_kill9_under_large_writes)
{
	REQUIRE_AGENT();
	kill9_under_writes("crashbig", 16 * 1024);
}
END_TEST

START_TEST(raftd_gone_answers_500_then_recovers)
{
	pid_t raftd, raftd2, apid;
	struct http_resp r;
	uint64_t deadline;
	bool saw_500 = false;
	char ct[128];

	REQUIRE_AGENT();
	apid = harness_daemon_pid(&ag, "apid");
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_msg(apid > 0 && raftd > 0, "daemons not found");
	ck_assert_msg(wait_writable(30000), "agent not writable before the test");

	/* Hold the supervisor so raftd stays down while we look (as a slow
	 * systemd restart would); it is resumed below. */
	ck_assert_int_eq(kill(ag.pid, SIGSTOP), 0);
	ck_assert_int_eq(kill(raftd, SIGKILL), 0);
	deadline = harness_now_ms() + 30000;
	while (!saw_500 && harness_now_ms() < deadline) {
		http_put(&ag, "/v1/kv/down/x", "never", &r);
		if (r.status == 500) {
			saw_500 = true;
			ck_assert_msg(r.body_len > 0, "500 without a reason");
			if (http_header(&r, "Content-Type", ct, sizeof(ct)))
				ck_assert_msg(strncmp(ct, "text/plain", 10) == 0,
					      "error body Content-Type %s, want text/plain", ct);
			fprintf(stderr, "PUT while raftd is down: 500 [%.200s]\n", r.body);
		} else {
			ck_assert_msg(r.status != 200, "a PUT succeeded while raftd was dead");
			harness_pause_ms(50);
		}
		http_resp_free(&r);
	}
	if (saw_500) {
		/* ?consistent: a plain GET may still be read from the store
		 * (apid/kv_direct.c) until raftd's lease page lapses (1 s) */
		http_get(&ag, "/v1/kv/down/x?consistent", &r);
		ck_assert_msg(r.status == 500, "GET while raftd is down: %ld, want 500", r.status);
		ck_assert_msg(r.body_len > 0, "500 without a reason");
		http_resp_free(&r);
		http_get(&ag, "/v1/status/leader", &r);
		ck_assert_msg(r.status == 500 || r.status == 200,
			      "status/leader while raftd is down: %ld", r.status);
		http_resp_free(&r);
	}
	ck_assert_int_eq(kill(ag.pid, SIGCONT), 0);
	ck_assert_msg(saw_500, "no 500 answer within 30 s while raftd was dead");

	raftd2 = harness_wait_daemon(&ag, "raftd", raftd, 30000);
	ck_assert_msg(raftd2 > 0, "raftd not restarted after SIGCONT");
	ck_assert_msg(wait_writable(30000), "apid did not recover within 30 s of raftd's restart");
	ck_assert_msg(harness_daemon_pid(&ag, "apid") == apid, "apid was restarted");
	/* The refused writes were not applied. */
	http_get(&ag, "/v1/kv/down/x", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

/* The whole agent killed at once (as by a power cut), then started again
 * on the same data dir: every acknowledged write is back with the same
 * indexes. Runs its own agent. */
START_TEST(whole_agent_kill9_and_restart)
{
	struct agent m;
	char err[4096];
	json_t *before, *after;
	struct http_resp r;
	int acked = 0;

	ck_assert_msg(harness_agent_start(&m, "machine-node", NULL, 90000, err, sizeof(err)) == 0,
		      "agent start: %s", err);
	for (int i = 0; i < 100; i++) {
		char path[64], val[32];
		snprintf(path, sizeof(path), "/v1/kv/machine/%03d", i);
		snprintf(val, sizeof(val), "m%d", i);
		http_put(&m, path, val, &r);
		EXPECT_STATUS(r, 200);
		EXPECT_BODY(r, "true");
		http_resp_free(&r);
		acked++;
	}
	http_delete(&m, "/v1/kv/machine/050", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_get(&m, "/v1/kv/machine/?recurse", &r);
	EXPECT_STATUS(r, 200);
	before = http_json(&r);
	http_resp_free(&r);
	ck_assert_uint_eq(json_array_size(before), (size_t)acked - 1);

	harness_agent_kill9(&m);
	ck_assert_msg(harness_agent_relaunch(&m, 90000, err, sizeof(err)) == 0,
		      "restart on the same data dir: %s", err);
	http_get(&m, "/v1/kv/machine/?recurse", &r);
	EXPECT_STATUS(r, 200);
	after = http_json(&r);
	http_resp_free(&r);
	ck_assert_msg(json_equal(before, after), "state differs after a whole-agent kill -9");
	http_get(&m, "/v1/kv/machine/050", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
	/* New writes continue above the old indexes. */
	{
		json_t *j;
		json_int_t max_old = 0, idx_new;
		size_t i;
		json_t *e;
		json_array_foreach(before, i, e)
		{
			json_int_t mi = json_integer_value(json_object_get(e, "ModifyIndex"));
			if (mi > max_old)
				max_old = mi;
		}
		http_put(&m, "/v1/kv/machine/new", "n", &r);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
		http_get(&m, "/v1/kv/machine/new", &r);
		EXPECT_STATUS(r, 200);
		j = http_json(&r);
		http_resp_free(&r);
		idx_new = json_integer_value(json_object_get(json_array_get(j, 0), "ModifyIndex"));
		ck_assert_msg(idx_new > max_old, "new write got index %lld, not above %lld",
			      (long long)idx_new, (long long)max_old);
		json_decref(j);
	}
	json_decref(before);
	json_decref(after);
	ck_assert_msg(harness_agent_terminate(&m, SIGTERM, 20000, err, sizeof(err)) == 0, "%s", err);
	harness_agent_stop(&m);
}
END_TEST

struct parked {
	char path[256];
	struct http_resp r;
	uint64_t elapsed_ms;
};

static void *parked_run(void *arg)
{
	struct parked *p = arg;
	uint64_t t0 = harness_now_ms();

	http_get(&ag, p->path, &p->r);
	p->elapsed_ms = harness_now_ms() - t0;
	return NULL;
}

/* A blocking query parked in raftd when raftd dies must still be answered
 * (an error, or the unchanged result at the end of its wait), not hang. */
START_TEST(parked_query_survives_raftd_kill)
{
	struct parked p;
	pthread_t th;
	struct http_resp r;
	uint64_t idx;
	pid_t raftd;

	REQUIRE_AGENT();
	ck_assert_msg(wait_writable(30000), "agent not writable before the test");
	memset(&p, 0, sizeof(p));
	http_put(&ag, "/v1/kv/parked/k", "v", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_get(&ag, "/v1/kv/parked/k", &r);
	EXPECT_STATUS(r, 200);
	idx = http_index(&r);
	http_resp_free(&r);
	snprintf(p.path, sizeof(p.path), "/v1/kv/parked/k?index=%llu&wait=5s",
		 (unsigned long long)idx);
	ck_assert_int_eq(pthread_create(&th, NULL, parked_run, &p), 0);
	harness_pause_ms(500); /* let it park; the outcome is checked either way */
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_int_eq(kill(raftd, SIGKILL), 0);
	pthread_join(th, NULL); /* bounded by libcurl's 30 s time-out */
	ck_assert_msg(p.r.status == 200 || p.r.status == 500,
		      "parked query after raftd died: status %ld (%s) after %llu ms", p.r.status,
		      p.r.err, (unsigned long long)p.elapsed_ms);
	if (p.r.status == 200)
		ck_assert_uint_eq(http_index(&p.r), idx);
	http_resp_free(&p.r);
	ck_assert_msg(harness_wait_daemon(&ag, "raftd", raftd, 30000) > 0, "raftd not restarted");
	ck_assert_msg(wait_writable(30000), "not writable after raftd restarted");
}
END_TEST

/* raftd hung (SIGSTOP), not dead: reads fail with a 500 at apid's RPC
 * time-out instead of hanging, other endpoints keep working, and all is
 * well once raftd runs again. */
START_TEST(raftd_hung_times_out)
{
	pid_t raftd, apid;
	struct http_resp r;
	uint64_t t0, took;

	REQUIRE_AGENT();
	ck_assert_msg(wait_writable(30000), "agent not writable before the test");
	raftd = harness_daemon_pid(&ag, "raftd");
	apid = harness_daemon_pid(&ag, "apid");
	ck_assert_int_eq(kill(raftd, SIGSTOP), 0);
	http_get(&ag, "/v1/agent/members", &r);
	ck_assert_msg(r.status == 200, "members with raftd hung: %ld (%s)", r.status, r.err);
	http_resp_free(&r);
	t0 = harness_now_ms();
	/* ?consistent always asks raftd (a plain GET is read from the store
	 * until raftd's lease page lapses: tests/process/test_kv_direct.c) */
	http_get(&ag, "/v1/kv/hung/x?consistent", &r);
	took = harness_now_ms() - t0;
	(void)kill(raftd, SIGCONT);
	ck_assert_msg(r.status == 500, "GET with raftd hung: status %ld (%s) after %llu ms, want 500",
		      r.status, r.err, (unsigned long long)took);
	ck_assert_msg(r.body_len > 0, "500 without a reason");
	http_resp_free(&r);
	ck_assert_msg(wait_writable(30000), "no successful write within 30 s of SIGCONT");
	ck_assert_msg(harness_daemon_pid(&ag, "raftd") == raftd, "raftd was restarted");
	ck_assert_msg(harness_daemon_pid(&ag, "apid") == apid, "apid was restarted");
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
	Suite *s = suite_create("process-crash");
	TCase *tc = tcase_create("crash");

	tcase_set_timeout(tc, 150);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, raftd_kill9_under_writes);
	tcase_add_test(tc, raftd_kill9_under_large_writes);
	tcase_add_test(tc, raftd_gone_answers_500_then_recovers);
	tcase_add_test(tc, parked_query_survives_raftd_kill);
	tcase_add_test(tc, raftd_hung_times_out);
	tcase_add_test(tc, sigterm_stops_everything);
	suite_add_tcase(s, tc);

	tc = tcase_create("machine");
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, whole_agent_kill9_and_restart);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
