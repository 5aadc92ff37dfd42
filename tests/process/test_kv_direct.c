/* Process test: apid's direct KV reads (apid/kv_direct.c) from raftd's
 * store under raftd's lease page (raftd/lease_pub.c).
 *
 * - Default-mode and ?stale reads (served directly on this single server)
 *   answer exactly as ?consistent reads (always through raftd's RPC):
 *   status, body, Content-Type, X-Consul-Index, KnownLeader, LastContact,
 *   for one key, missing keys, ?raw, ?recurse, ?keys, ?separator.
 * - raftd stopped (SIGSTOP): direct reads stop once its page's liveness
 *   bound passes, and apid answers 500 through the RPC as before; SIGCONT
 *   brings 200 back.
 * - raftd killed (supervisor held): 500 as before; restarted: the same
 *   answers again (apid reopens the store under the new generation).
 * - The longest key, percent-encoded in full, with 2 KB of headers, fits
 *   apid's 8 KiB MHD pool. */
#include "ptest.h"

PTEST_AGENT_FIXTURE("kvd-node", NULL)

static const char *const urls[] = {
    "/v1/kv/kvd/a",
    "/v1/kv/kvd/a?raw",
    "/v1/kv/kvd/b/c",
    "/v1/kv/kvd/empty",
    "/v1/kv/kvd/empty?raw",
    "/v1/kv/kvd/flags",
    "/v1/kv/kvd/?recurse",
    "/v1/kv/kvd?recurse",
    "/v1/kv/kvd/?keys",
    "/v1/kv/kvd/?keys&separator=/",
    "/v1/kv/?keys&separator=/",
    "/v1/kv/kvd/missing",
    "/v1/kv/kvd/missing?raw",
    "/v1/kv/kvd-none/?recurse",
    "/v1/kv/kvd-none/?keys",
    "/v1/kv/kvd/odd%20key%C3%A9",
};

static void put_ok(const char *path, const char *body)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
}

static void populate(void)
{
	put_ok("/v1/kv/kvd/a", "alpha");
	put_ok("/v1/kv/kvd/b/c", "gamma");
	put_ok("/v1/kv/kvd/empty", "");
	put_ok("/v1/kv/kvd/flags?flags=18446744073709551615", "f");
	put_ok("/v1/kv/kvd/odd%20key%C3%A9", "odd");
}

/* The header's value, or "" when absent. */
static void header(const struct http_resp *r, const char *name, char *out, size_t n)
{
	if (!http_header(r, name, out, n))
		out[0] = '\0';
}

/* path (direct) and path with `extra` (RPC) answer the same. */
static void same(const char *path, const char *extra)
{
	static const char *const hdrs[] = {"Content-Type", "X-Consul-Index",
					   "X-Consul-KnownLeader", "X-Consul-LastContact",
					   "X-Content-Type-Options"};
	char other[512], a[256], b[256];
	struct http_resp d, c;

	snprintf(other, sizeof(other), "%s%s%s", path, strchr(path, '?') ? "&" : "?", extra);
	http_get(&ag, path, &d);
	http_get(&ag, other, &c);
	ck_assert_msg(d.status == 200 || d.status == 404, "%s: %ld", path, d.status);
	ck_assert_msg(d.status == c.status, "%s: status %ld, %s: %ld", path, d.status, other,
		      c.status);
	ck_assert_msg(d.body_len == c.body_len && memcmp(d.body, c.body, d.body_len) == 0,
		      "%s: body [%.300s] vs [%.300s]", path, d.body, c.body);
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++) {
		header(&d, hdrs[i], a, sizeof(a));
		header(&c, hdrs[i], b, sizeof(b));
		ck_assert_msg(strcmp(a, b) == 0, "%s: %s [%s] vs [%s] (%s)", path, hdrs[i], a, b,
			      other);
	}
	http_resp_free(&d);
	http_resp_free(&c);
}

START_TEST(direct_equals_rpc)
{
	REQUIRE_AGENT();
	populate();
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		same(urls[i], "consistent");
		/* ?stale is served directly too; compare it with the RPC's */
		{
			char stale[512];

			snprintf(stale, sizeof(stale), "%s%sstale", urls[i],
				 strchr(urls[i], '?') ? "&" : "?");
			same(stale, "index=1&wait=1ms");
		}
	}
	/* a write is visible to the next direct read */
	put_ok("/v1/kv/kvd/a", "alpha2");
	same("/v1/kv/kvd/a", "consistent");
	same("/v1/kv/kvd/?recurse", "consistent");
}
END_TEST

/* GETs path until it answers `want` (each bounded by the client), at most
 * until deadline; returns the last answer's status. */
static long poll_status(const char *path, long want, uint64_t deadline_ms, char *body, size_t n)
{
	long st = 0;

	do {
		struct http_resp r;

		http_get(&ag, path, &r);
		st = r.status;
		snprintf(body, n, "%.*s", (int)r.body_len, r.body ? r.body : "");
		http_resp_free(&r);
		ck_assert_msg(st == 200 || st == 500, "%s: HTTP %ld [%s]", path, st, body);
		if (st == want)
			break;
		harness_pause_ms(50);
	} while (harness_now_ms() < deadline_ms);
	return st;
}

START_TEST(raftd_stopped_falls_back)
{
	pid_t raftd;
	char before[512], body[512];
	long st;

	REQUIRE_AGENT();
	populate();
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_int_gt(raftd, 0);
	st = poll_status("/v1/kv/kvd/a?raw", 200, harness_now_ms() + 10000, before,
			 sizeof(before));
	ck_assert_int_eq(st, 200);
	ck_assert_int_eq(kill(raftd, SIGSTOP), 0);
	/* served directly until raftd's promise (1 s) runs out, then through
	 * the RPC, which times out: 500 as without direct reads */
	st = poll_status("/v1/kv/kvd/a?raw", 500, harness_now_ms() + 40000, body, sizeof(body));
	ck_assert_int_eq(kill(raftd, SIGCONT), 0);
	ck_assert_msg(st == 500, "no 500 while raftd was stopped (last %ld)", st);
	ck_assert_msg(strstr(body, "cairn-raftd") != NULL, "500 body [%s]", body);
	st = poll_status("/v1/kv/kvd/a?raw", 200, harness_now_ms() + 30000, body, sizeof(body));
	ck_assert_msg(st == 200, "no 200 after SIGCONT (last %ld [%s])", st, body);
	ck_assert_str_eq(body, before);
}
END_TEST

START_TEST(raftd_killed_then_restarted)
{
	pid_t raftd, raftd2;
	char before[512], body[512];
	long st;

	REQUIRE_AGENT();
	populate();
	raftd = harness_daemon_pid(&ag, "raftd");
	ck_assert_int_gt(raftd, 0);
	st = poll_status("/v1/kv/kvd/?keys", 200, harness_now_ms() + 10000, before,
			 sizeof(before));
	ck_assert_int_eq(st, 200);
	/* hold the supervisor so that raftd stays down while we look */
	ck_assert_int_eq(kill(ag.pid, SIGSTOP), 0);
	ck_assert_int_eq(kill(raftd, SIGKILL), 0);
	st = poll_status("/v1/kv/kvd/?keys", 500, harness_now_ms() + 40000, body, sizeof(body));
	ck_assert_int_eq(kill(ag.pid, SIGCONT), 0);
	ck_assert_msg(st == 500, "no 500 while raftd was dead (last %ld)", st);
	ck_assert_msg(strstr(body, "cairn-raftd") != NULL, "500 body [%s]", body);
	raftd2 = harness_wait_daemon(&ag, "raftd", raftd, 30000);
	ck_assert_msg(raftd2 > 0, "raftd not restarted");
	st = poll_status("/v1/kv/kvd/?keys", 200, harness_now_ms() + 30000, body, sizeof(body));
	ck_assert_msg(st == 200, "no 200 after raftd's restart (last %ld [%s])", st, body);
	ck_assert_str_eq(body, before);
	same("/v1/kv/kvd/?recurse", "consistent");
}
END_TEST

/* apid's HTTP pool (8 KiB) still takes the longest key (511 bytes, every
 * byte percent-encoded: 1,533 characters) with 2 KB of headers, on a
 * kept-alive connection, for a write, a direct read and a blocking read. */
START_TEST(longest_key_with_big_headers)
{
	char key[512], path[2048], big[2100], hdr[2200];
	const char *hdrs[] = {hdr, "X-Consul-Token: 00000000-0000-0000-0000-000000000000", NULL};
	struct http_opts o = {.headers = hdrs};
	struct http_conn *hc;
	struct http_resp r;
	size_t n = 0;

	REQUIRE_AGENT();
	memset(key, 0, sizeof(key));
	for (int i = 0; i < 511; i++)
		key[i] = (char)(0xc3 + (i & 1) * (0xa9 - 0xc3)); /* "é" 255 times, + one byte */
	key[510] = 'k';
	n = (size_t)snprintf(path, sizeof(path), "/v1/kv/");
	for (int i = 0; i < 511; i++)
		n += (size_t)snprintf(path + n, sizeof(path) - n, "%%%02X", (unsigned char)key[i]);
	memset(big, 'h', 2000);
	big[2000] = '\0';
	snprintf(hdr, sizeof(hdr), "X-Filler: %s", big);
	hc = http_conn_new(&ag);
	ck_assert_ptr_nonnull(hc);
	http_conn_request(hc, "PUT", path, "long", 4, &o, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	snprintf(path + n, sizeof(path) - n, "?raw");
	http_conn_request(hc, "GET", path, NULL, 0, &o, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "long");
	http_resp_free(&r);
	snprintf(path + n, sizeof(path) - n, "?raw&index=1&wait=1s");
	http_conn_request(hc, "GET", path, NULL, 0, &o, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "long");
	http_resp_free(&r);
	http_conn_free(hc);
}
END_TEST

static Suite *kv_direct_suite(void)
{
	Suite *s = suite_create("kv_direct");
	TCase *tc = tcase_create("kv_direct");

	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, direct_equals_rpc);
	tcase_add_test(tc, longest_key_with_big_headers);
	tcase_add_test(tc, raftd_stopped_falls_back);
	tcase_add_test(tc, raftd_killed_then_restarted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return ptest_run(kv_direct_suite()); }
