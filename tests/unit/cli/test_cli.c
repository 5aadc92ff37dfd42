/* Unit tests of the `cairn` command: args.c, supervise.c, output.c,
 * client_escape_key, and the agent's flags as config_load reads them. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "args.h"
#include "client.h"
#include "config.h"
#include "output.h"
#include "supervise.h"

#define ARGV(...) ((char *[]){__VA_ARGS__, NULL})
#define ARGC(...) ((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)))
#define PARSE_KV(cmd, out, ...)                                                                    \
	args_parse_kv(cmd, ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), out, err, sizeof(err))

static char err[256];

/* ---- generic flags ---- */

START_TEST(test_flags_forms)
{
	const char *s = NULL;
	uint64_t n = 0;
	bool b = false, seen_n = false;
	const struct args_flag flags[] = {
	    {"name", ARGS_STR, &s, NULL},
	    {"num", ARGS_U64, &n, &seen_n},
	    {"on", ARGS_BOOL, &b, NULL},
	};
	int next = -1;

	ck_assert_int_eq(args_parse_flags(flags, 3, 5, ARGV("-name=a", "--num", "42", "-on", "pos"),
					  &next, err, sizeof(err)),
			 0);
	ck_assert_str_eq(s, "a");
	ck_assert_uint_eq(n, 42);
	ck_assert(seen_n);
	ck_assert(b);
	ck_assert_int_eq(next, 4);

	ck_assert_int_eq(args_parse_flags(flags, 3, 4, ARGV("-name", "b", "--num=7", "-on=false"),
					  &next, err, sizeof(err)),
			 0);
	ck_assert_str_eq(s, "b");
	ck_assert_uint_eq(n, 7);
	ck_assert(!b);
	ck_assert_int_eq(next, 4);

	/* A value that looks like a flag is still the value. */
	ck_assert_int_eq(
	    args_parse_flags(flags, 3, 2, ARGV("-name", "-x"), &next, err, sizeof(err)), 0);
	ck_assert_str_eq(s, "-x");
}
END_TEST

START_TEST(test_flags_stop)
{
	bool b = false;
	const struct args_flag flags[] = {{"on", ARGS_BOOL, &b, NULL}};
	int next = -1;

	ck_assert_int_eq(
	    args_parse_flags(flags, 1, 3, ARGV("-", "-on", "x"), &next, err, sizeof(err)), 0);
	ck_assert_int_eq(next, 0);
	ck_assert(!b);
	ck_assert_int_eq(
	    args_parse_flags(flags, 1, 3, ARGV("--", "-on", "x"), &next, err, sizeof(err)), 0);
	ck_assert_int_eq(next, 1);
	ck_assert_int_eq(args_parse_flags(flags, 1, 2, ARGV("key", "-on"), &next, err, sizeof(err)),
			 0);
	ck_assert_int_eq(next, 0);
	ck_assert(!b);
	ck_assert_int_eq(args_parse_flags(flags, 1, 0, ARGV(NULL), &next, err, sizeof(err)), 0);
	ck_assert_int_eq(next, 0);
}
END_TEST

START_TEST(test_flags_errors)
{
	uint64_t n = 0;
	bool b = false;
	const struct args_flag flags[] = {
	    {"num", ARGS_U64, &n, NULL},
	    {"on", ARGS_BOOL, &b, NULL},
	};
	int next;

	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-nope"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "flag provided but not defined: -nope");
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-num"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "flag needs an argument: -num");
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-num=1x"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-num=-1"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-num=18446744073709551616"), &next,
					  err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-num=18446744073709551615"), &next,
					  err, sizeof(err)),
			 0);
	ck_assert_uint_eq(n, UINT64_MAX);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-on=maybe"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("---on"), &next, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("-h"), &next, err, sizeof(err)),
			 -ECANCELED);
	ck_assert_int_eq(args_parse_flags(flags, 2, 1, ARGV("--help"), &next, err, sizeof(err)),
			 -ECANCELED);
}
END_TEST

/* ---- kv ---- */

START_TEST(test_kv_get)
{
	struct args_kv kv;

	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "greeting"), 0);
	ck_assert_str_eq(kv.key, "greeting");
	ck_assert(!kv.recurse && !kv.detailed);
	ck_assert_ptr_null(kv.http.http_addr);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-recurse", "-http-addr", "10.0.0.1:8600",
				  "-detailed", "app/"),
			 0);
	ck_assert(kv.recurse && kv.detailed);
	ck_assert_str_eq(kv.key, "app/");
	ck_assert_str_eq(kv.http.http_addr, "10.0.0.1:8600");

	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-recurse"), 0);
	ck_assert_str_eq(kv.key, "");

	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-keys"), 0);
	ck_assert(kv.keys);
	ck_assert_str_eq(kv.separator, "/");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-keys", "-separator=", "app/"), 0);
	ck_assert_str_eq(kv.separator, "");
	ck_assert_str_eq(kv.key, "app/");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-keys", "-detailed", "a"), -EINVAL);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-token=secret", "-datacenter=dc2", "k"), 0);
	ck_assert_str_eq(kv.http.token, "secret");
	ck_assert_str_eq(kv.http.datacenter, "dc2");

	ck_assert_int_eq(args_parse_kv(ARGS_KV_GET, 0, ARGV(NULL), &kv, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "Error! Missing KEY argument");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "a", "b"), -EINVAL);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "-cas", "a"), -EINVAL);
	/* Flags after the key are not flags (Go's flag package). */
	ck_assert_int_eq(PARSE_KV(ARGS_KV_GET, &kv, "a", "-recurse"), -EINVAL);
}
END_TEST

START_TEST(test_kv_put)
{
	struct args_kv kv;

	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "greeting", "hello"), 0);
	ck_assert_str_eq(kv.key, "greeting");
	ck_assert_str_eq(kv.value, "hello");
	ck_assert(!kv.cas && !kv.has_flags);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "k"), 0);
	ck_assert_ptr_null(kv.value);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "k", "-"), 0);
	ck_assert_str_eq(kv.value, "-");

	ck_assert_int_eq(
	    PARSE_KV(ARGS_KV_PUT, &kv, "-cas", "-modify-index=12", "-flags", "42", "k", "v"), 0);
	ck_assert(kv.cas && kv.has_modify_index && kv.has_flags);
	ck_assert_uint_eq(kv.modify_index, 12);
	ck_assert_uint_eq(kv.flags, 42);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "-cas", "-modify-index", "0", "k", "v"), 0);
	ck_assert(kv.cas && kv.has_modify_index);
	ck_assert_uint_eq(kv.modify_index, 0);

	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "-cas", "k", "v"), -EINVAL);
	ck_assert_str_eq(err, "Must specify -modify-index with -cas!");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "-modify-index=3", "k", "v"), -EINVAL);
	ck_assert_str_eq(err, "Cannot specify -modify-index without -cas!");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "k", "v", "extra"), -EINVAL);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "-recurse", "k"), -EINVAL);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_PUT, &kv, "-flags=x", "k"), -EINVAL);
	ck_assert_int_eq(args_parse_kv(ARGS_KV_PUT, 0, ARGV(NULL), &kv, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_kv_delete)
{
	struct args_kv kv;

	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "k"), 0);
	ck_assert_str_eq(kv.key, "k");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "-recurse", "app"), 0);
	ck_assert(kv.recurse);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "-recurse"), 0);
	ck_assert_str_eq(kv.key, "");
	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "-cas", "-modify-index", "5", "k"), 0);
	ck_assert(kv.cas);
	ck_assert_uint_eq(kv.modify_index, 5);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "-cas", "-recurse", "-modify-index=5", "k"),
			 -EINVAL);
	ck_assert_str_eq(err, "Cannot specify both -cas and -recurse!");
	ck_assert_int_eq(args_parse_kv(ARGS_KV_DELETE, 0, ARGV(NULL), &kv, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(PARSE_KV(ARGS_KV_DELETE, &kv, "-flags=1", "k"), -EINVAL);
}
END_TEST

START_TEST(test_members_args)
{
	struct args_members m;

	ck_assert_int_eq(args_parse_members(0, ARGV(NULL), &m, err, sizeof(err)), 0);
	ck_assert(!m.wan && !m.detailed);
	ck_assert_int_eq(
	    args_parse_members(3, ARGV("-wan", "-http-addr", "h:1", NULL), &m, err, sizeof(err)),
	    0);
	ck_assert(m.wan);
	ck_assert_str_eq(m.http.http_addr, "h:1");
	ck_assert_int_eq(args_parse_members(1, ARGV("extra"), &m, err, sizeof(err)), -EINVAL);
}
END_TEST

/* ---- HTTP address ---- */

START_TEST(test_http_base)
{
	char out[128];

	ck_assert_int_eq(args_http_base(NULL, NULL, NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://127.0.0.1:8500");
	ck_assert_int_eq(args_http_base(NULL, "", "", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://127.0.0.1:8500");
	ck_assert_int_eq(args_http_base(NULL, NULL, "10.1.2.3:9000", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://10.1.2.3:9000");
	ck_assert_int_eq(args_http_base(NULL, "cairn:1", "consul:2", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://cairn:1");
	ck_assert_int_eq(args_http_base("flag:3", "cairn:1", "consul:2", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://flag:3");
	ck_assert_int_eq(args_http_base(NULL, NULL, "http://localhost:8500/", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://localhost:8500");
	ck_assert_int_eq(args_http_base(NULL, "HTTPS://h:8501", NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "https://h:8501");
	ck_assert_int_eq(args_http_base("[::1]:8500", NULL, NULL, out, sizeof(out)), 0);
	ck_assert_str_eq(out, "http://[::1]:8500");
	ck_assert_int_eq(args_http_base(NULL, NULL, "unix:///tmp/c.sock", out, sizeof(out)),
			 -EINVAL);
	ck_assert_int_eq(args_http_base("http://", NULL, NULL, out, sizeof(out)), -EINVAL);
	ck_assert_int_eq(args_http_base("a-long-host-name:8500", NULL, NULL, out, 10),
			 -ENAMETOOLONG);

	ck_assert_str_eq(args_http_token("f", "a", "b"), "f");
	ck_assert_str_eq(args_http_token(NULL, "", "b"), "b");
	ck_assert_ptr_null(args_http_token(NULL, NULL, ""));
}
END_TEST

/* ---- daemon paths and restart policy ---- */

static bool exists_in(const char *path, void *ctx) { return strcmp(path, (const char *)ctx) == 0; }

START_TEST(test_daemon_path)
{
	char out[256];

	/* Build tree: build/cli/cairn -> build/cli/../raftd/cairn-raftd. */
	ck_assert_int_eq(supervise_daemon_path("raftd", "/src/build/cli/cairn", NULL, exists_in,
					       "/src/build/cli/../raftd/cairn-raftd", out,
					       sizeof(out)),
			 0);
	ck_assert_str_eq(out, "/src/build/cli/../raftd/cairn-raftd");
	/* Installed by meson: /usr/bin/cairn -> /usr/bin/../sbin/cairn-apid. */
	ck_assert_int_eq(supervise_daemon_path("apid", "/usr/bin/cairn", NULL, exists_in,
					       "/usr/bin/../sbin/cairn-apid", out, sizeof(out)),
			 0);
	ck_assert_str_eq(out, "/usr/bin/../sbin/cairn-apid");
	/* All in one directory: /usr/bin/cairn -> /usr/bin/cairn-apid. */
	ck_assert_int_eq(supervise_daemon_path("apid", "/usr/bin/cairn", NULL, exists_in, "none",
					       out, sizeof(out)),
			 0);
	ck_assert_str_eq(out, "/usr/bin/cairn-apid");
	ck_assert_int_eq(supervise_daemon_path("apid", "/usr/bin/cairn", "", exists_in, "none", out,
					       sizeof(out)),
			 0);
	ck_assert_str_eq(out, "/usr/bin/cairn-apid");
	/* The environment wins, even over a build tree. */
	ck_assert_int_eq(supervise_daemon_path("dnsd", "/src/build/cli/cairn", "/opt/cairn/",
					       exists_in, "/src/build/cli/../dnsd/cairn-dnsd", out,
					       sizeof(out)),
			 0);
	ck_assert_str_eq(out, "/opt/cairn/cairn-dnsd");
	ck_assert_int_eq(
	    supervise_daemon_path("dnsd", "cairn", NULL, exists_in, "x", out, sizeof(out)),
	    -EINVAL);
	ck_assert_int_eq(
	    supervise_daemon_path("dnsd", "/usr/bin/cairn", NULL, exists_in, "x", out, 8),
	    -ENAMETOOLONG);
}
END_TEST

START_TEST(test_roles_and_argv)
{
	const char *roles[SUPERVISE_MAX_ROLES];
	char *args[] = {"-dev", "-node", "n1"};
	char **argv;

	ck_assert_uint_eq(supervise_roles(true, roles), 4);
	ck_assert_str_eq(roles[0], "raftd");
	ck_assert_str_eq(roles[1], "gossipd");
	ck_assert_str_eq(roles[2], "apid");
	ck_assert_str_eq(roles[3], "dnsd");
	ck_assert_uint_eq(supervise_roles(false, roles), 3);
	ck_assert_str_eq(roles[0], "gossipd");

	argv = supervise_child_argv("/b/cairn-apid", 3, args, "/tmp/cairn-dev-x");
	ck_assert_ptr_nonnull(argv);
	ck_assert_str_eq(argv[0], "/b/cairn-apid");
	ck_assert_str_eq(argv[1], "-dev");
	ck_assert_str_eq(argv[3], "n1");
	ck_assert_str_eq(argv[4], "-data-dir=/tmp/cairn-dev-x");
	ck_assert_ptr_null(argv[5]);
	free(argv);

	argv = supervise_child_argv("/b/cairn-apid", 0, args, NULL);
	ck_assert_ptr_nonnull(argv);
	ck_assert_str_eq(argv[0], "/b/cairn-apid");
	ck_assert_ptr_null(argv[1]);
	free(argv);
}
END_TEST

START_TEST(test_backoff)
{
	ck_assert_uint_eq(supervise_backoff_next(0, 0), 100);
	ck_assert_uint_eq(supervise_backoff_next(100, 50), 200);
	ck_assert_uint_eq(supervise_backoff_next(1600, 50), 3200);
	ck_assert_uint_eq(supervise_backoff_next(3200, 50), 5000);
	ck_assert_uint_eq(supervise_backoff_next(5000, 50), 5000);
	/* A daemon that ran a while starts over. */
	ck_assert_uint_eq(supervise_backoff_next(5000, SUPERVISE_STABLE_MS), 100);
}
END_TEST

START_TEST(test_describe_status)
{
	char buf[96];

	ck_assert_str_eq(supervise_describe_status(1 << 8, buf, sizeof(buf)),
			 "exited with status 1");
	ck_assert_str_eq(supervise_describe_status(9, buf, sizeof(buf)),
			 "killed by signal 9 (SIGKILL)");
	ck_assert(supervise_should_restart(9));
	ck_assert(supervise_should_restart(0));
}
END_TEST

/* ---- output ---- */

static json_t *parse(const char *s)
{
	json_error_t e;
	json_t *j = json_loads(s, 0, &e);

	ck_assert_msg(j != NULL, "bad test JSON: %s", e.text);
	return j;
}

START_TEST(test_output_kv)
{
	json_t *j =
	    parse("[{\"Key\":\"app/a\",\"Value\":\"aGVsbG8=\",\"Flags\":42,"
		  "\"CreateIndex\":5,\"ModifyIndex\":7,\"LockIndex\":0,\"Session\":\"\"},"
		  "{\"Key\":\"app/b\",\"Value\":null,\"CreateIndex\":8,\"ModifyIndex\":8}]");
	char *out = NULL;

	ck_assert_int_eq(output_kv(j, false, false, &out), 0);
	ck_assert_str_eq(out, "hello\n");
	free(out);
	ck_assert_int_eq(output_kv(j, true, false, &out), 0);
	ck_assert_str_eq(out, "app/a:hello\napp/b:\n");
	free(out);
	ck_assert_int_eq(output_kv(j, false, true, &out), 0);
	ck_assert_str_eq(out, "CreateIndex      5\n"
			      "Flags            42\n"
			      "Key              app/a\n"
			      "LockIndex        0\n"
			      "ModifyIndex      7\n"
			      "Session          -\n"
			      "Value            hello\n");
	free(out);
	json_decref(j);

	/* a lock's flags (above 2^63) arrive quoted by kv_io_quote_flags */
	j = parse("[{\"Key\":\"l/.lock\",\"Value\":null,\"Flags\":\"16210313421097356768\","
		  "\"CreateIndex\":3,\"ModifyIndex\":4,\"LockIndex\":1,\"Session\":\"s1\"}]");
	ck_assert_int_eq(output_kv(j, false, true, &out), 0);
	ck_assert_ptr_nonnull(strstr(out, "Flags            16210313421097356768\n"));
	free(out);
	json_decref(j);

	j = parse("[\"app/\",\"greeting\"]");
	ck_assert_int_eq(output_kv_keys(j, &out), 0);
	ck_assert_str_eq(out, "app/\ngreeting\n");
	free(out);
	json_decref(j);
	j = parse("[\"a\",1]");
	ck_assert_int_eq(output_kv_keys(j, &out), -EINVAL);
	json_decref(j);

	j = parse("[{\"Value\":\"aGVsbG8=\"}]");
	ck_assert_int_eq(output_kv(j, false, false, &out), -EINVAL);
	json_decref(j);
	j = parse("[{\"Key\":\"k\",\"Value\":\"!!!\"}]");
	ck_assert_int_eq(output_kv(j, false, false, &out), -EINVAL);
	json_decref(j);
	j = parse("{}");
	ck_assert_int_eq(output_kv(j, false, false, &out), -EINVAL);
	json_decref(j);
}
END_TEST

START_TEST(test_output_members)
{
	json_t *j = parse(
	    "[{\"Name\":\"zeta\",\"Addr\":\"10.0.0.2\",\"Port\":8301,\"Status\":4,"
	    "\"Tags\":{\"role\":\"node\",\"build\":\"0.1.0:abc\",\"vsn\":\"2\",\"dc\":\"dc1\"}},"
	    "{\"Name\":\"alpha\",\"Addr\":\"127.0.0.1\",\"Port\":8301,\"Status\":1,"
	    "\"Tags\":{\"role\":\"consul\",\"build\":\"0.1.0\",\"vsn\":\"2\",\"dc\":\"dc1\"}}]");
	char *out = NULL;

	ck_assert_int_eq(output_members(j, false, &out), 0);
	ck_assert_str_eq(out,
			 "Node   Address         Status  Type    Build  Protocol  DC   Segment\n"
			 "alpha  127.0.0.1:8301  alive   server  0.1.0  2         dc1  <all>\n"
			 "zeta   10.0.0.2:8301   failed  client  0.1.0  2         dc1  "
			 "<default>\n");
	free(out);
	ck_assert_int_eq(output_members(j, true, &out), 0);
	ck_assert_str_eq(out, "Node   Address         Status  Tags\n"
			      "alpha  127.0.0.1:8301  alive   "
			      "build=0.1.0,dc=dc1,role=consul,vsn=2\n"
			      "zeta   10.0.0.2:8301   failed  "
			      "build=0.1.0:abc,dc=dc1,role=node,vsn=2\n");
	free(out);
	json_decref(j);

	j = parse("[]");
	ck_assert_int_eq(output_members(j, false, &out), 0);
	ck_assert_str_eq(out, "Node  Address  Status  Type  Build  Protocol  DC  Segment\n");
	free(out);
	json_decref(j);
	j = parse("[1]");
	ck_assert_int_eq(output_members(j, false, &out), -EINVAL);
	json_decref(j);
}
END_TEST

START_TEST(test_escape_key)
{
	char *s = client_escape_key("app/a b?c%/é");

	ck_assert_str_eq(s, "app/a%20b%3Fc%25/%C3%A9");
	free(s);
}
END_TEST

/* ---- agent flags: config_load reads what `cairn agent` passes on ---- */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *st, int f, struct FTW *ftw)
{
	(void)st;
	(void)f;
	(void)ftw;
	return remove(p);
}

static void setup_tmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/cairn-test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_tmp(void)
{
	(void)nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS); /* best effort */
}

START_TEST(test_agent_flags)
{
	char dd[128], cerr[256] = "";
	struct config c = {0};
	char *argv[] = {"agent",
			"-server",
			"-node",
			"n1",
			"-datacenter=DC2",
			"-http-port",
			"18500",
			"-dns-port=18600",
			"-bootstrap-expect",
			"1",
			"-data-dir",
			dd,
			"-retry-join=10.0.0.9",
			NULL};

	snprintf(dd, sizeof(dd), "%s/data", tmpdir);
	ck_assert_msg(config_load(13, argv, &c, cerr, sizeof(cerr)) == 0, "%s", cerr);
	ck_assert(c.server);
	ck_assert(!c.dev);
	ck_assert_str_eq(c.node_name, "n1");
	ck_assert_str_eq(c.datacenter, "dc2");
	ck_assert_int_eq(c.ports.http, 18500);
	ck_assert_int_eq(c.ports.dns, 18600);
	ck_assert_int_eq(c.bootstrap_expect, 1);
	ck_assert_str_eq(c.data_dir, dd);
	ck_assert_ptr_nonnull(c.retry_join);
	ck_assert_str_eq(c.retry_join[0], "10.0.0.9");
	ck_assert_ptr_null(c.retry_join[1]);
	config_close(&c);
}
END_TEST

START_TEST(test_agent_dev_flags)
{
	char cerr[256] = "";
	struct config c = {0};
	char *argv[] = {"agent", "--dev", "--node=devnode", NULL};

	ck_assert_msg(config_load(3, argv, &c, cerr, sizeof(cerr)) == 0, "%s", cerr);
	ck_assert(c.dev);
	ck_assert_str_eq(c.node_name, "devnode");
	/* The agent picks the temporary data dir itself. */
	ck_assert_ptr_null(c.data_dir);
	config_close(&c);

	memset(&c, 0, sizeof(c));
	{
		char *bad[] = {"agent", "-dev", "-http-port", "notaport", NULL};

		ck_assert_int_lt(config_load(4, bad, &c, cerr, sizeof(cerr)), 0);
		ck_assert_str_ne(cerr, "");
		config_close(&c);
	}
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *t = tcase_create("args");
	TCase *a = tcase_create("agent");

	tcase_add_test(t, test_flags_forms);
	tcase_add_test(t, test_flags_stop);
	tcase_add_test(t, test_flags_errors);
	tcase_add_test(t, test_kv_get);
	tcase_add_test(t, test_kv_put);
	tcase_add_test(t, test_kv_delete);
	tcase_add_test(t, test_members_args);
	tcase_add_test(t, test_http_base);
	tcase_add_test(t, test_daemon_path);
	tcase_add_test(t, test_roles_and_argv);
	tcase_add_test(t, test_backoff);
	tcase_add_test(t, test_describe_status);
	tcase_add_test(t, test_output_kv);
	tcase_add_test(t, test_output_members);
	tcase_add_test(t, test_escape_key);
	suite_add_tcase(s, t);

	tcase_add_checked_fixture(a, setup_tmp, teardown_tmp);
	tcase_add_test(a, test_agent_flags);
	tcase_add_test(a, test_agent_dev_flags);
	suite_add_tcase(s, a);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
