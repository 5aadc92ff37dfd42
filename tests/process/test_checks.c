/* Process test: agent services with every check kind against real local
 * HTTP and TCP servers this test runs, broken and repaired while
 * /v1/health/service/<name>?passing follows; TTL, script and maintenance;
 * registrations surviving an apid restart; 400s for bad definitions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptest.h"

static struct agent ag;
static char ag_err[4096];
static int ag_rc = -1;
static char cfg_path[256];
static char flag_path[256]; /* the script check's exit code */

static void ptest_setup(void)
{
	static const char *extra[3];
	FILE *f;

	snprintf(cfg_path, sizeof(cfg_path), "/tmp/cairn-checks-%d.json", (int)getpid());
	snprintf(flag_path, sizeof(flag_path), "/tmp/cairn-checks-%d.code", (int)getpid());
	f = fopen(cfg_path, "w");
	if (f) {
		fputs("{\"enable_script_checks\": true}\n", f);
		fclose(f);
	}
	/* full anti-entropy syncs every second (agent.h's test hook) */
	setenv("CAIRN_TEST_ANTI_ENTROPY_MS", "1000", 1);
	extra[0] = "-config-file";
	extra[1] = cfg_path;
	extra[2] = NULL;
	ag_rc = harness_agent_start(&ag, "chk-node", extra, 90000, ag_err, sizeof(ag_err));
	if (ag_rc < 0)
		fprintf(stderr, "agent start failed: %s\n", ag_err);
}

static void ptest_teardown(void)
{
	harness_agent_stop(&ag);
	(void)unlink(cfg_path);
	(void)unlink(flag_path);
}

/* ---- a tiny HTTP server whose status the test sets ------------------- */

static atomic_int http_status = 200;
static int http_fd = -1, http_port;

static void *http_serve(void *arg)
{
	(void)arg;
	for (;;) {
		char buf[2048], resp[256];
		int c = accept(http_fd, NULL, NULL);
		int n;

		if (c < 0)
			return NULL;
		n = (int)read(c, buf, sizeof(buf));
		(void)n;
		n = snprintf(resp, sizeof(resp),
			     "HTTP/1.0 %d X\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
			     atomic_load(&http_status));
		if (write(c, resp, (size_t)n) < 0) {
			/* the checker gave up: fine */
		}
		close(c);
	}
}

static int listen_any(int *out_port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*out_port = ntohs(sa.sin_port);
	return fd;
}

/* ---- helpers --------------------------------------------------------- */

static void put_expect(const char *path, const char *body, long want)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, want);
	http_resp_free(&r);
}

/* Instances in /v1/health/service/<name>?passing. */
static int passing_count(const char *name)
{
	char path[256];
	struct http_resp r;
	json_t *j;
	int n;

	snprintf(path, sizeof(path), "/v1/health/service/%s?passing", name);
	http_get(&ag, path, &r);
	if (r.status != 200) {
		http_resp_free(&r);
		return -1;
	}
	j = http_json(&r);
	n = json_is_array(j) ? (int)json_array_size(j) : -1;
	json_decref(j);
	http_resp_free(&r);
	return n;
}

/* Polls until the passing count is want; fails at the deadline. */
static void wait_passing(const char *name, int want, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;
	int got;

	while ((got = passing_count(name)) != want) {
		ck_assert_msg(harness_now_ms() < deadline,
			      "%s: %d passing instances, want %d, after %llu ms", name, got, want,
			      (unsigned long long)timeout_ms);
		harness_pause_ms(100);
	}
}

static const char *check_status(const char *id)
{
	static char status[32];
	struct http_resp r;
	json_t *j;

	http_get(&ag, "/v1/agent/checks", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	snprintf(status, sizeof(status), "%s",
		 json_string_value(json_object_get(json_object_get(j, id), "Status"))
		     ? json_string_value(json_object_get(json_object_get(j, id), "Status"))
		     : "(none)");
	json_decref(j);
	http_resp_free(&r);
	return status;
}

/* ---- tests ----------------------------------------------------------- */

START_TEST(http_check_follows_server)
{
	pthread_t th;
	char body[512];

	REQUIRE_AGENT();
	http_fd = listen_any(&http_port);
	ck_assert_int_eq(pthread_create(&th, NULL, http_serve, NULL), 0);
	pthread_detach(th);
	snprintf(body, sizeof(body),
		 "{\"Name\":\"web\",\"ID\":\"web1\",\"Port\":%d,\"Check\":{\"HTTP\":"
		 "\"http://127.0.0.1:%d/health\",\"Interval\":\"1s\",\"Timeout\":\"2s\"}}",
		 http_port, http_port);
	put_expect("/v1/agent/service/register", body, 200);
	wait_passing("web", 1, 30000);
	atomic_store(&http_status, 500);
	wait_passing("web", 0, 30000);
	ck_assert_str_eq(check_status("service:web1"), "critical");
	atomic_store(&http_status, 429);
	wait_passing("web", 0, 30000);
	{
		uint64_t deadline = harness_now_ms() + 30000;

		while (strcmp(check_status("service:web1"), "warning") != 0) {
			ck_assert_msg(harness_now_ms() < deadline, "never turned warning");
			harness_pause_ms(100);
		}
	}
	atomic_store(&http_status, 200);
	wait_passing("web", 1, 30000);
}
END_TEST

START_TEST(tcp_check_follows_listener)
{
	int port, fd;
	char body[512];

	REQUIRE_AGENT();
	fd = listen_any(&port);
	snprintf(body, sizeof(body),
		 "{\"Name\":\"db\",\"Port\":%d,\"Checks\":[{\"TCP\":\"127.0.0.1:%d\","
		 "\"Interval\":\"1s\"}]}",
		 port, port);
	put_expect("/v1/agent/service/register", body, 200);
	wait_passing("db", 1, 30000);
	close(fd); /* nothing listens any more: connection refused */
	wait_passing("db", 0, 30000);
	ck_assert_str_eq(check_status("service:db:1"), "critical");
}
END_TEST

START_TEST(ttl_script_and_maintenance)
{
	FILE *f;
	char body[600];

	REQUIRE_AGENT();
	put_expect("/v1/agent/service/register",
		   "{\"name\":\"api\",\"id\":\"api1\",\"check\":{\"ttl\":\"30s\"}}", 200);
	ck_assert_str_eq(check_status("service:api1"), "critical");
	wait_passing("api", 0, 5000);
	put_expect("/v1/agent/check/pass/service:api1?note=fine", NULL, 200);
	wait_passing("api", 1, 10000);
	put_expect("/v1/agent/service/maintenance/api1?enable=true&reason=deploy", NULL, 200);
	wait_passing("api", 0, 10000);
	put_expect("/v1/agent/service/maintenance/api1?enable=false", NULL, 200);
	wait_passing("api", 1, 10000);
	put_expect("/v1/agent/check/update/service:api1",
		   "{\"Status\":\"critical\",\"Output\":\"x\"}", 200);
	wait_passing("api", 0, 10000);
	put_expect("/v1/agent/check/pass/nosuch", NULL, 404);

	/* script: exit code from a file the test rewrites */
	f = fopen(flag_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("0\n", f);
	fclose(f);
	snprintf(body, sizeof(body),
		 "{\"Name\":\"job\",\"Check\":{\"Args\":[\"/bin/sh\",\"-c\",\"exit $(cat %s)\"],"
		 "\"Interval\":\"1s\"}}",
		 flag_path);
	put_expect("/v1/agent/service/register", body, 200);
	wait_passing("job", 1, 30000);
	f = fopen(flag_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("2\n", f);
	fclose(f);
	wait_passing("job", 0, 30000);
}
END_TEST

START_TEST(registrations_survive_apid_restart)
{
	pid_t old, fresh;
	struct http_resp r;
	json_t *j;

	REQUIRE_AGENT();
	put_expect(
	    "/v1/agent/service/register",
	    "{\"Name\":\"keep\",\"ID\":\"keep1\",\"Tags\":[\"x\"],\"Check\":{\"TTL\":\"60s\","
	    "\"Status\":\"passing\"}}",
	    200);
	wait_passing("keep", 1, 10000);
	old = harness_daemon_pid(&ag, "apid");
	ck_assert_int_gt(old, 0);
	ck_assert_int_eq(kill(old, SIGKILL), 0);
	fresh = harness_wait_daemon(&ag, "apid", old, 30000);
	ck_assert_int_gt(fresh, 0);
	{
		uint64_t deadline = harness_now_ms() + 30000;

		for (;;) {
			http_get(&ag, "/v1/agent/services", &r);
			if (r.status == 200)
				break;
			http_resp_free(&r);
			ck_assert_msg(harness_now_ms() < deadline, "apid did not come back");
			harness_pause_ms(100);
		}
	}
	j = http_json(&r);
	ck_assert_msg(json_object_get(j, "keep1"), "keep1 lost: %s", r.body);
	json_decref(j);
	http_resp_free(&r);
	ck_assert_str_eq(check_status("service:keep1"), "passing");
	ck_assert_int_eq(passing_count("keep"), 1);
}
END_TEST

/* Instances of name in /v1/catalog/service/<name>. */
static int catalog_count(const char *name)
{
	char path[256];
	struct http_resp r;
	json_t *j;
	int n;

	snprintf(path, sizeof(path), "/v1/catalog/service/%s", name);
	http_get(&ag, path, &r);
	j = r.status == 200 ? http_json(&r) : NULL;
	n = json_is_array(j) ? (int)json_array_size(j) : -1;
	json_decref(j);
	http_resp_free(&r);
	return n;
}

static void wait_catalog(const char *name, int want)
{
	uint64_t deadline = harness_now_ms() + 30000;
	int got;

	while ((got = catalog_count(name)) != want) {
		ck_assert_msg(harness_now_ms() < deadline, "%s: %d catalog instances, want %d",
			      name, got, want);
		harness_pause_ms(100);
	}
}

START_TEST(anti_entropy_repairs_the_catalog)
{
	REQUIRE_AGENT();
	put_expect("/v1/agent/service/register",
		   "{\"Name\":\"ae\",\"Check\":{\"TTL\":\"60s\",\"Status\":\"passing\"}}", 200);
	wait_passing("ae", 1, 10000);
	/* someone removes it from the catalog behind the agent's back */
	put_expect("/v1/catalog/deregister", "{\"Node\":\"chk-node\",\"ServiceID\":\"ae\"}", 200);
	/* the next full sync puts it back, with its check */
	wait_passing("ae", 1, 30000);
	/* a service on this node that the agent does not have is removed */
	put_expect("/v1/catalog/register",
		   "{\"Node\":\"chk-node\",\"Address\":\"127.0.0.1\",\"SkipNodeUpdate\":true,"
		   "\"Service\":{\"Service\":\"ghost\"}}",
		   200);
	wait_catalog("ghost", 0);
	/* an agent deregistration leaves the catalog too */
	put_expect("/v1/agent/service/deregister/ae", NULL, 200);
	wait_catalog("ae", 0);
}
END_TEST

START_TEST(bad_definitions)
{
	struct http_resp r;

	REQUIRE_AGENT();
	http_put(&ag, "/v1/agent/service/register", "{\"Port\":1}", &r);
	EXPECT_STATUS(r, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "Missing service name"));
	http_resp_free(&r);
	http_put(
	    &ag, "/v1/agent/service/register",
	    "{\"Name\":\"x\",\"Check\":{\"HTTP\":\"http://127.0.0.1:1/\",\"Interval\":\"-5s\"}}",
	    &r);
	EXPECT_STATUS(r, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "Invalid check"));
	http_resp_free(&r);
	http_put(&ag, "/v1/agent/service/register",
		 "{\"Name\":\"x\",\"Check\":{\"GRPC\":\"127.0.0.1:1\",\"Interval\":\"5s\"}}", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_put(&ag, "/v1/agent/service/register",
		 "{\"Name\":\"x\",\"Check\":{\"Interval\":\"5s\"}}", &r);
	EXPECT_STATUS(r, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "required"));
	http_resp_free(&r);
	http_put(&ag, "/v1/agent/service/register", "{\"Name\":", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_put(&ag, "/v1/agent/check/register", "{\"TTL\":\"10s\"}", &r);
	EXPECT_STATUS(r, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "Missing check name"));
	http_resp_free(&r);
	/* the failed registration left nothing behind */
	http_get(&ag, "/v1/agent/service/x", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

static Suite *checks_suite(void)
{
	Suite *s = suite_create("process-checks");
	TCase *tc = tcase_create("checks");

	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, http_check_follows_server);
	tcase_add_test(tc, tcp_check_follows_listener);
	tcase_add_test(tc, ttl_script_and_maintenance);
	tcase_add_test(tc, registrations_survive_apid_restart);
	tcase_add_test(tc, anti_entropy_repairs_the_catalog);
	tcase_add_test(tc, bad_definitions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void) { return ptest_run(checks_suite()); }
