/* Process test: snapshots on a 3-server cluster with tiny thresholds
 * (raft_snapshot_threshold 64, raft_trailing_logs 16). A follower that was
 * down while the others compacted their logs catches up through
 * InstallSnapshot and has every key; GET /v1/snapshot (default and
 * ?stale), writes, PUT /v1/snapshot: every server's state equals the saved
 * one again; corrupted archives are refused with 400; `cairn snapshot
 * save|inspect|restore` round-trip a file. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ptest.h"

#define N 3
#define KEYS 200

/* Three servers joined through each other's Raft ports, with tiny
 * snapshot thresholds. */
PTEST_CLUSTER_FIXTURE(N, {.name_prefix = "snap",
			  .join = HARNESS_JOIN_RAFT,
			  .config_json = "{\"raft_snapshot_threshold\": 64,"
					 " \"raft_trailing_logs\": 16}\n"})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

/* Agent i's ?stale view of snap/: "key=value;" for every key, sorted. */
static char *state_of(int i)
{
	struct http_resp r;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	ck_assert_ptr_nonnull(f);
	if (http_get(&ags[i], "/v1/kv/snap/?recurse&stale", &r) == 0 && r.status == 200) {
		json_t *j = http_json(&r);
		for (size_t k = 0; j && k < json_array_size(j); k++) {
			json_t *e = json_array_get(j, k);
			const char *v = json_string_value(json_object_get(e, "Value"));
			fprintf(f, "%s=%s;", json_string_value(json_object_get(e, "Key")),
				v ? v : "");
		}
		json_decref(j);
	}
	http_resp_free(&r);
	fclose(f);
	return out;
}

/* Waits until agent i's state of snap/ is want. */
static bool wait_state(int i, const char *want, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		char *s = state_of(i);
		bool ok = strcmp(s, want) == 0;
		free(s);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(50);
	}
}

static bool log_has(const struct agent *a, const char *needle)
{
	FILE *f = fopen(a->log_path, "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static void put_key(int i, const char *key, const char *val)
{
	char path[128];
	struct http_resp r;

	snprintf(path, sizeof(path), "/v1/kv/%s", key);
	http_put(&ags[i], path, val, &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
}

static int run_cli(const char *args, char *out, size_t outlen)
{
	char cmd[2048];
	const char *root = getenv("CAIRN_BUILD_ROOT");
	size_t used = 0;
	FILE *p;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/cli/cairn %s 2>&1", root ? root : ".", args);
	p = popen(cmd, "r");
	ck_assert_msg(p != NULL, "popen %s", cmd);
	out[0] = 0;
	while (used + 1 < outlen && fgets(out + used, (int)(outlen - used), p))
		used += strlen(out + used);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(follower_catches_up_then_save_and_restore)
{
	REQUIRE_CLUSTER();
	int l = cluster_leader(10000, -1);
	ck_assert_int_ge(l, 0);
	int f = (l + 1) % N, other = (l + 2) % N;
	char key[32], val[32], err[4096];
	struct http_resp r;

	/* A follower goes down; the others write past the threshold three
	 * times over, compacting their logs past everything it has. */
	put_key(l, "snap/first", "before");
	harness_agent_kill9(&ags[f]);
	ck_assert_int_eq(cluster_leader(20000, -1), l); /* the killed agent does not count */
	for (int i = 0; i < KEYS; i++) {
		snprintf(key, sizeof(key), "snap/k%03d", i);
		snprintf(val, sizeof(val), "v%03d", i);
		put_key(i % 2 ? l : other, key, val);
	}
	char *want = state_of(l);
	ck_assert_ptr_nonnull(strstr(want, "snap/k199="));
	ck_assert_msg(harness_agent_relaunch(&ags[f], 60000, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(wait_state(f, want, 30000), "the restarted follower lacks keys");
	ck_assert_msg(log_has(&ags[f], "installed a snapshot"),
		      "the follower caught up without InstallSnapshot");

	/* Save through a follower (default mode: the leader's state) and
	 * with ?stale (its own). */
	http_get(&ags[f], "/v1/snapshot?stale", &r);
	EXPECT_STATUS(r, 200);
	ck_assert_uint_gt(r.body_len, 100);
	ck_assert_int_eq(memcmp(r.body, "CAIRNSNP", 8), 0);
	http_resp_free(&r);
	struct http_resp saved;
	http_get(&ags[f], "/v1/snapshot", &saved);
	EXPECT_STATUS(saved, 200);
	ck_assert_uint_gt(http_index(&saved), 2 * KEYS / 2);

	/* Change things, then restore: every server is back to the saved
	 * state (through the log). */
	put_key(l, "snap/extra", "new");
	put_key(f, "snap/k000", "changed");
	http_request(&ags[l], "DELETE", "/v1/kv/snap/k001", NULL, 0, &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	char *changed = state_of(l);
	ck_assert(wait_state(other, changed, 10000));
	free(changed);
	http_request(&ags[other], "PUT", "/v1/snapshot", saved.body, saved.body_len, &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	for (int i = 0; i < N; i++)
		ck_assert_msg(wait_state(i, want, 20000), "snap%d does not hold the restored state",
			      i + 1);

	/* Corrupted archives are refused with 400 and change nothing. */
	saved.body[saved.body_len / 2] ^= 0x01;
	http_request(&ags[l], "PUT", "/v1/snapshot", saved.body, saved.body_len, &r);
	EXPECT_STATUS(r, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "checksum"));
	http_resp_free(&r);
	http_request(&ags[f], "PUT", "/v1/snapshot", "not an archive", 14, &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_request(&ags[f], "PUT", "/v1/snapshot", saved.body, saved.body_len / 3, &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_resp_free(&saved);

	/* The CLI: save to a file, inspect it, change a key, restore. */
	char out[4096], args[1024], file[400];
	snprintf(file, sizeof(file), "%s/backup.snap", ags[l].tmp_dir);
	snprintf(args, sizeof(args), "snapshot save -http-addr=127.0.0.1:%d %s", ags[f].http_port,
		 file);
	ck_assert_msg(run_cli(args, out, sizeof(out)) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "Saved and verified snapshot to index"));
	snprintf(args, sizeof(args), "snapshot inspect %s", file);
	ck_assert_msg(run_cli(args, out, sizeof(out)) == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "ID "));
	ck_assert_ptr_nonnull(strstr(out, "Index "));
	ck_assert_ptr_nonnull(strstr(out, "Term "));
	ck_assert_ptr_nonnull(strstr(out, "Size "));
	put_key(l, "snap/k002", "changed-again");
	snprintf(args, sizeof(args), "snapshot restore -http-addr=127.0.0.1:%d %s",
		 ags[other].http_port, file);
	ck_assert_msg(run_cli(args, out, sizeof(out)) == 0, "%s", out);
	for (int i = 0; i < N; i++)
		ck_assert_msg(wait_state(i, want, 20000), "snap%d: CLI restore not applied",
			      i + 1);
	free(want);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-snapshot");
	TCase *tc = tcase_create("snapshot");

	tcase_add_unchecked_fixture(tc, cluster_setup, cluster_teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, follower_catches_up_then_save_and_restore);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
