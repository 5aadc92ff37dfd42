/* Process test: `cairn lock` leader election among five client processes
 * on a 3-server cluster (issue 7). Each contender runs `cairn lock` in a
 * loop against one of the three servers' HTTP ports; its child (this
 * program re-executed with --child) appends "S <id> <ns>" when it starts
 * and "E <id> <ns>" when it ends (also on SIGTERM) to one O_APPEND file,
 * with CLOCK_MONOTONIC stamps. From the records we check that at most one
 * holder ran at any time, over many hand-overs:
 *  - while the Raft leader's agent is killed with -9 (chosen at a moment
 *    when the lock holder talks to another agent), hand-overs go on;
 *  - when the holder's own agent is killed with -9, its child is ended,
 *    its session is invalidated, and the next holder starts no earlier
 *    than the invalidation plus the session's LockDelay (2 s here).
 * Also: a 2-slot semaphore (-n 2) never has three holders, and `cairn kv
 * export` / `import` round-trip keys, flags above 2^63 and binary values
 * through Consul's JSON. Every loop is bounded in count and time. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ptest.h"

#define N 3
#define NCONT 5
#define LOCK_DELAY_MS 2000
#define PREFIX "election/lock"

/* Gossip joins, as Consul's retry_join: the servers find each other in
 * the LAN pool, and a member that dies turns its serfHealth critical. */
PTEST_CLUSTER_FIXTURE(N, {.name_prefix = "srv", .join = HARNESS_JOIN_GOSSIP})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

static char self_exe[1024];
static char cairn_exe[1024];
static char work_dir[256];

/* ---- the child: records its run ---------------------------------------- */

static int child_fd = -1;
static char child_id[16];

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One write(2) per record: O_APPEND keeps records whole and ordered. */
static void record(char kind)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "%c %s %" PRIu64 "\n", kind, child_id, mono_ns());

	(void)!write(child_fd, line, (size_t)n);
}

static void child_on_term(int sig)
{
	(void)sig;
	record('E');
	_exit(0);
}

static int child_main(const char *file, const char *id, const char *hold_ms)
{
	struct sigaction sa = {.sa_handler = child_on_term};
	struct timespec ts;
	long ms = atol(hold_ms);

	snprintf(child_id, sizeof(child_id), "%s", id);
	child_fd = open(file, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (child_fd < 0 || !getenv("CONSUL_LOCK_HELD"))
		return 3;
	sigaction(SIGTERM, &sa, NULL);
	record('S');
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000;
	while (nanosleep(&ts, &ts) < 0)
		;
	record('E');
	return 0;
}

/* ---- cluster ------------------------------------------------------------ */

static atomic_bool dead[N];

static int live_agent(void)
{
	for (int i = 0; i < N; i++)
		if (!dead[i])
			return i;
	return 0;
}

/* Polls until agent i creates a session with the defaults (then destroys
 * it); false at the deadline. */
static bool wait_session_ok(int i, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct http_resp r;
		json_t *j = NULL;
		bool ok;

		http_put(&ags[i], "/v1/session/create", "", &r);
		ok = r.status == 200 && (j = http_json(&r)) &&
		     json_string_value(json_object_get(j, "ID"));
		if (ok) {
			char path[128];
			struct http_resp d;

			snprintf(path, sizeof(path), "/v1/session/destroy/%s",
				 json_string_value(json_object_get(j, "ID")));
			http_put(&ags[i], path, "", &d);
			http_resp_free(&d);
		}
		json_decref(j);
		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(200);
	}
}

static void setup(void)
{
	const char *root = getenv("CAIRN_BUILD_ROOT");
	ssize_t n;

	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	self_exe[n > 0 ? n : 0] = '\0';
	snprintf(cairn_exe, sizeof(cairn_exe), "%s/cli/cairn", root ? root : ".");
	snprintf(work_dir, sizeof(work_dir), "/tmp/cairn-lock-XXXXXX");
	if (!mkdtemp(work_dir)) {
		snprintf(start_err, sizeof(start_err), "mkdtemp failed");
		return;
	}
	cluster_setup();
	if (start_rc < 0)
		return;
	/* A lock session is bound to its agent's node checks (serfHealth),
	 * which the leader registers for each member: wait until every agent
	 * can create one. */
	for (int i = 0; i < N && start_rc == 0; i++)
		if (!wait_session_ok(i, 90000)) {
			start_rc = -1;
			snprintf(start_err, sizeof(start_err),
				 "srv%d cannot create a session within 90 s", i + 1);
		}
}

static void teardown(void)
{
	cluster_teardown();
	if (!getenv("CAIRN_TEST_KEEP") && work_dir[0]) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", work_dir);
		(void)!system(cmd);
	}
}

/* ---- contenders ------------------------------------------------------- */

struct contenders {
	char file[320];	       /* the records */
	char log[320];	       /* the lock clients' stdout/stderr */
	int hold_ms;	       /* how long each child runs */
	const char *retry;     /* -monitor-retry */
	const char *limit;     /* -n */
	const char *prefix;    /* the lock prefix */
	atomic_bool stop;      /* no new attempts */
	atomic_int pid[NCONT]; /* running `cairn lock`, 0 when none */
	atomic_int agent[NCONT]; /* agent index of the running attempt */
	atomic_int runs;       /* attempts finished */
	pthread_t th[NCONT];
};

struct cont_arg {
	struct contenders *c;
	int id;
};

static struct cont_arg cargs[NCONT];

static void *contender_main(void *arg)
{
	struct cont_arg *ca = arg;
	struct contenders *c = ca->c;

	for (int attempt = 0; attempt < 400 && !c->stop; attempt++) {
		char addr[64], id[8], hold[16], retry[32], limit[32];
		int ai = (ca->id + attempt) % N, status;
		pid_t pid;

		for (int k = 0; k < N && dead[ai]; k++)
			ai = (ai + 1) % N;
		snprintf(addr, sizeof(addr), "-http-addr=127.0.0.1:%d", ags[ai].http_port);
		snprintf(id, sizeof(id), "%d", ca->id);
		snprintf(hold, sizeof(hold), "%d", c->hold_ms);
		snprintf(retry, sizeof(retry), "-monitor-retry=%s", c->retry);
		snprintf(limit, sizeof(limit), "-n=%s", c->limit);
		c->agent[ca->id] = ai;
		pid = fork();
		if (pid == 0) {
			int fd = open(c->log, O_WRONLY | O_APPEND | O_CREAT, 0644);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
			}
			execl(cairn_exe, cairn_exe, "lock", "-shell=false", "-lock-delay=2s", retry,
			      limit, addr, c->prefix, self_exe, "--child", c->file, id, hold,
			      (char *)NULL);
			_exit(127);
		}
		if (pid < 0)
			break;
		c->pid[ca->id] = pid;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		c->pid[ca->id] = 0;
		c->runs++;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			harness_pause_ms(200); /* e.g. its agent is gone: try another */
	}
	return NULL;
}

static void contenders_start(struct contenders *c, const char *name, int hold_ms,
			     const char *retry)
{
	memset(c, 0, sizeof(*c));
	c->limit = "1";
	c->prefix = PREFIX;
	snprintf(c->file, sizeof(c->file), "%s/%s.records", work_dir, name);
	snprintf(c->log, sizeof(c->log), "%s/%s.log", work_dir, name);
	c->hold_ms = hold_ms;
	c->retry = retry;
	if (strcmp(name, "semaphore") == 0) {
		c->limit = "2";
		c->prefix = "election/sem";
	}
	for (int i = 0; i < NCONT; i++) {
		cargs[i].c = c;
		cargs[i].id = i;
		ck_assert_int_eq(pthread_create(&c->th[i], NULL, contender_main, &cargs[i]), 0);
	}
}

/* Stops new attempts and lets the running ones finish (each waits its
 * turn, so this takes a few hand-overs); kills what is left after 40 s. */
static void contenders_stop(struct contenders *c)
{
	uint64_t deadline = harness_now_ms() + 40000;
	bool left = true;

	c->stop = true;
	while (left && harness_now_ms() < deadline) {
		left = false;
		for (int i = 0; i < NCONT; i++)
			left |= c->pid[i] != 0;
		if (left)
			harness_pause_ms(50);
	}
	for (int i = 0; i < NCONT; i++)
		if (c->pid[i])
			kill(c->pid[i], SIGKILL);
	for (int i = 0; i < NCONT; i++)
		pthread_join(c->th[i], NULL);
}

/* ---- records ------------------------------------------------------------ */

struct rec {
	char kind; /* 'S' or 'E' */
	int id;
	uint64_t ms; /* CLOCK_MONOTONIC, as harness_now_ms() */
	uint64_t ns;
};

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;

	return x->ns < y->ns ? -1 : x->ns > y->ns;
}

/* Reads the records sorted by stamp; returns how many (at most max). */
static size_t read_records(const char *file, struct rec *out, size_t max)
{
	FILE *f = fopen(file, "r");
	size_t n = 0;
	char kind;
	int id;
	uint64_t ns;

	if (!f)
		return 0;
	while (n < max && fscanf(f, " %c %d %" SCNu64, &kind, &id, &ns) == 3) {
		out[n].kind = kind;
		out[n].id = id;
		out[n].ns = ns;
		out[n].ms = ns / 1000000u;
		n++;
	}
	fclose(f);
	qsort(out, n, sizeof(*out), rec_cmp);
	return n;
}

/* Asserts mutual exclusion: every start finds nobody running and every
 * end belongs to the one running. Returns the number of starts. */
static size_t check_exclusive(const struct rec *r, size_t n)
{
	int active = -1;
	size_t starts = 0;

	for (size_t i = 0; i < n; i++) {
		if (r[i].kind == 'S') {
			ck_assert_msg(active == -1,
				      "record %zu: contender %d started at %" PRIu64
				      " ms while %d was running",
				      i, r[i].id, r[i].ms, active);
			active = r[i].id;
			starts++;
		} else {
			ck_assert_msg(active == r[i].id,
				      "record %zu: contender %d ended at %" PRIu64
				      " ms but %d was the holder",
				      i, r[i].id, r[i].ms, active);
			active = -1;
		}
	}
	return starts;
}

static size_t count_starts(const char *file, uint64_t after_ms)
{
	static struct rec r[4096];
	size_t n = read_records(file, r, 4096), s = 0;

	for (size_t i = 0; i < n; i++)
		s += r[i].kind == 'S' && r[i].ms > after_ms;
	return s;
}

static bool wait_starts(const char *file, uint64_t after_ms, size_t want, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	while (count_starts(file, after_ms) < want) {
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(50);
	}
	return true;
}

/* No sanitizer report from any lock client. */
static void check_client_log(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[1024];

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		ck_assert_msg(!strstr(line, "ERROR: AddressSanitizer") &&
				  !strstr(line, "runtime error:") &&
				  !strstr(line, "ERROR: LeakSanitizer"),
			      "lock client: %s", line);
	fclose(f);
}

/* The current holder's session and the node it belongs to, read from a
 * live agent; false when nobody holds the lock. */
static char holder_seen[512]; /* the last answer holder() read, for failures */

static bool holder(char *session, size_t slen, char *node, size_t nlen)
{
	struct http_resp r;
	json_t *j;
	char path[160];
	bool ok = false;

	http_get(&ags[live_agent()], "/v1/kv/" PREFIX "/.lock", &r);
	snprintf(holder_seen, sizeof(holder_seen), "%ld %.400s", r.status, r.body ? r.body : "");
	j = r.status == 200 ? http_json(&r) : NULL;
	http_resp_free(&r);
	if (j && json_string_value(json_object_get(json_array_get(j, 0), "Session"))) {
		snprintf(session, slen, "%s",
			 json_string_value(json_object_get(json_array_get(j, 0), "Session")));
		ok = session[0] != '\0';
	}
	json_decref(j);
	if (!ok)
		return false;
	snprintf(path, sizeof(path), "/v1/session/info/%s", session);
	http_get(&ags[live_agent()], path, &r);
	j = r.status == 200 ? http_json(&r) : NULL;
	http_resp_free(&r);
	ok = j && json_string_value(json_object_get(json_array_get(j, 0), "Node"));
	if (ok)
		snprintf(node, nlen, "%s",
			 json_string_value(json_object_get(json_array_get(j, 0), "Node")));
	json_decref(j);
	return ok;
}

/* A machine crash: every daemon and the agent SIGKILLed at once. The
 * agent is stopped first: its daemons get SIGTERM (PR_SET_PDEATHSIG) when
 * it dies, and raftd would then leave the cluster gracefully (handing
 * leadership over) instead of vanishing. */
static void crash(struct agent *a)
{
	static const char *const roles[] = {"raftd", "apid", "gossipd", "dnsd"};
	pid_t d[4];

	for (int i = 0; i < 4; i++)
		d[i] = harness_daemon_pid(a, roles[i]);
	(void)kill(a->pid, SIGSTOP);
	for (int i = 0; i < 4; i++)
		if (d[i] > 0)
			(void)kill(d[i], SIGKILL);
	harness_agent_kill9(a);
}

static int agent_named(const char *node)
{
	for (int i = 0; i < N; i++)
		if (strcmp(ags[i].name, node) == 0)
			return i;
	return -1;
}

/* ---- tests ---------------------------------------------------------------- */

/* Runs `cairn <args...>` against agent i, stdout into out (NUL-terminated);
 * returns the exit status. */
static int run_cli(int i, const char *stdin_text, char *out, size_t outlen, const char *const *args)
{
	char addr[64], tmpl[320];
	const char *argv[16];
	size_t n = 0;
	int status, fd_out, fd_in = -1;
	ssize_t got = 0;
	pid_t pid;

	snprintf(addr, sizeof(addr), "-http-addr=127.0.0.1:%d", ags[i].http_port);
	snprintf(tmpl, sizeof(tmpl), "%s/cli-out-XXXXXX", work_dir);
	fd_out = mkstemp(tmpl);
	ck_assert_int_ge(fd_out, 0);
	unlink(tmpl);
	if (stdin_text) {
		snprintf(tmpl, sizeof(tmpl), "%s/cli-in-XXXXXX", work_dir);
		fd_in = mkstemp(tmpl);
		ck_assert_int_ge(fd_in, 0);
		unlink(tmpl);
		ck_assert_int_eq(write(fd_in, stdin_text, strlen(stdin_text)), (ssize_t)strlen(stdin_text));
		lseek(fd_in, 0, SEEK_SET);
	}
	argv[n++] = cairn_exe;
	for (size_t k = 0; args[k] && n < 14; k++) {
		argv[n++] = args[k];
		if (k == 1)
			argv[n++] = addr; /* after "kv export" / "kv import" */
	}
	argv[n] = NULL;
	pid = fork();
	if (pid == 0) {
		dup2(fd_out, 1);
		if (fd_in >= 0)
			dup2(fd_in, 0);
		execv(cairn_exe, (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	lseek(fd_out, 0, SEEK_SET);
	got = read(fd_out, out, outlen - 1);
	out[got > 0 ? got : 0] = '\0';
	close(fd_out);
	if (fd_in >= 0)
		close(fd_in);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

START_TEST(kv_export_import_round_trip)
{
	static char out[65536], out2[65536];
	struct http_resp r;
	json_t *j;
	char b64[64];

	REQUIRE_CLUSTER();
	http_request(&ags[0], "PUT", "/v1/kv/exp/a?flags=16210313421097356768", "\x00\x01\xff", 3,
		     &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_put(&ags[0], "/v1/kv/exp/b/c", "<x&y>", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_put(&ags[0], "/v1/kv/exp/empty", "", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);

	ck_assert_int_eq(run_cli(1, NULL, out, sizeof(out),
				 (const char *const[]){"kv", "export", "exp/", NULL}),
			 0);
	ck_assert_msg(strcmp(out, "[\n"
				  "\t{\n\t\t\"key\": \"exp/a\",\n\t\t\"flags\": 16210313421097356768,\n"
				  "\t\t\"value\": \"AAH/\"\n\t},\n"
				  "\t{\n\t\t\"key\": \"exp/b/c\",\n\t\t\"flags\": 0,\n"
				  "\t\t\"value\": \"PHgmeT4=\"\n\t},\n"
				  "\t{\n\t\t\"key\": \"exp/empty\",\n\t\t\"flags\": 0,\n"
				  "\t\t\"value\": \"\"\n\t}\n"
				  "]\n") == 0,
		      "export:\n%s", out);
	ck_assert_int_eq(run_cli(2, out, out2, sizeof(out2),
				 (const char *const[]){"kv", "import", "-prefix=copy", "-", NULL}),
			 0);
	ck_assert_str_eq(out2, "Imported: copy/exp/a\nImported: copy/exp/b/c\n"
			       "Imported: copy/exp/empty\n");
	/* (jansson cannot hold the flags: the body is checked as text) */
	http_get(&ags[0], "/v1/kv/copy/exp/a", &r);
	EXPECT_STATUS(r, 200);
	harness_base64("\x00\x01\xff", 3, b64);
	ck_assert_msg(strstr(r.body, "\"Flags\":16210313421097356768"), "%s", r.body);
	ck_assert_msg(strstr(r.body, b64), "%s", r.body);
	http_resp_free(&r);
	http_get(&ags[0], "/v1/kv/copy/exp/b/c", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	harness_base64("<x&y>", 5, b64);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "Value")), b64);
	json_decref(j);
	http_resp_free(&r);
	/* an export of nothing is [] */
	ck_assert_int_eq(run_cli(0, NULL, out, sizeof(out),
				 (const char *const[]){"kv", "export", "no/such/prefix", NULL}),
			 0);
	ck_assert_str_eq(out, "[]\n");
	/* bad input changes nothing and fails */
	ck_assert_int_eq(run_cli(0, "[{\"key\":\"bad\",\"value\":\"***\"}]", out, sizeof(out),
				 (const char *const[]){"kv", "import", "-", NULL}),
			 1);
	http_get(&ags[0], "/v1/kv/bad", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

START_TEST(semaphore_two_holders_at_most)
{
	static struct contenders c;
	static struct rec r[4096];
	size_t n, starts = 0;
	int running = 0, most = 0;

	REQUIRE_CLUSTER();
	contenders_start(&c, "semaphore", 200, "3");
	ck_assert_msg(wait_starts(c.file, 0, 12, 60000), "fewer than 12 semaphore runs in 60 s");
	contenders_stop(&c);
	n = read_records(c.file, r, 4096);
	for (size_t i = 0; i < n; i++) {
		running += r[i].kind == 'S' ? 1 : -1;
		starts += r[i].kind == 'S';
		ck_assert_msg(running <= 2, "record %zu: %d holders of a 2-slot semaphore", i,
			      running);
		if (running > most)
			most = running;
	}
	ck_assert_uint_ge(starts, 12);
	check_client_log(c.log);
}
END_TEST

START_TEST(one_holder_while_the_leader_is_killed)
{
	static struct contenders c;
	static struct rec r[4096];
	uint64_t t_kill = 0, deadline;
	char session[64], node[64];
	int l = -1, last_l = -1;
	size_t n, starts;

	REQUIRE_CLUSTER();
	contenders_start(&c, "leader-kill", 150, "3");
	ck_assert_msg(wait_starts(c.file, 0, 12, 60000), "fewer than 12 hand-overs in 60 s");
	/* Kill the leader at a moment when the holder talks to another
	 * agent, so the lock itself is not tied to the dead agent. */
	deadline = harness_now_ms() + 30000;
	node[0] = '\0';
	while (harness_now_ms() < deadline) {
		l = cluster_leader(0, -1);
		if (l >= 0 && holder(session, sizeof(session), node, sizeof(node)) &&
		    agent_named(node) >= 0 && agent_named(node) != l)
			break;
		last_l = l;
		l = -1;
		harness_pause_ms(20);
	}
	ck_assert_msg(l >= 0, "no moment with a holder away from the leader in 30 s "
		      "(last leader %d, holder node '%s')", last_l, node);
	dead[l] = true;
	t_kill = harness_now_ms();
	crash(&ags[l]);
	ck_assert_msg(cluster_leader(30000, -1) >= 0, "no new leader after the kill");
	ck_assert_msg(wait_starts(c.file, t_kill, 12, 75000),
		      "only %zu hand-overs in 75 s after the leader was killed",
		      count_starts(c.file, t_kill));
	contenders_stop(&c);
	n = read_records(c.file, r, 4096);
	starts = check_exclusive(r, n);
	fprintf(stderr, "leader-kill: srv%d killed; %zu starts, %zu after the kill\n", l + 1,
		starts, count_starts(c.file, t_kill));
	ck_assert_uint_ge(starts, 24);
	ck_assert_uint_ge(count_starts(c.file, t_kill), 12);
	check_client_log(c.log);

}
END_TEST

START_TEST(holder_agent_killed_lock_passes_after_lock_delay)
{
	static struct contenders c;
	static struct rec r[4096];
	char session[64] = "", node[64] = "", path[160];
	uint64_t t_alive = 0, t_kill, deadline, next_start = 0;
	int h = -1, holder_id = -1;
	size_t n;

	REQUIRE_CLUSTER();
	/* Bring back a server an earlier case killed (each case runs in its
	 * own process, and an agent started here dies with it). */
	for (int i = 0; i < N; i++)
		if (!harness_pid_alive(ags[i].pid)) {
			char err[4096];

			ck_assert_msg(harness_agent_relaunch(&ags[i], 90000, err, sizeof(err)) == 0,
				      "%s", err);
		}
	ck_assert_int_ge(cluster_leader(30000, -1), 0);
	for (int i = 0; i < N; i++)
		ck_assert_msg(wait_session_ok(i, 90000), "srv%d cannot create a session", i + 1);
	/* -monitor-retry=0: a client whose agent is gone ends its child at once. */
	contenders_start(&c, "holder-kill", 400, "0");
	ck_assert_msg(wait_starts(c.file, 0, 3, 60000), "fewer than 3 hand-overs in 60 s");
	deadline = harness_now_ms() + 30000;
	while (harness_now_ms() < deadline) {
		if (holder(session, sizeof(session), node, sizeof(node)) &&
		    (h = agent_named(node)) >= 0)
			break;
		h = -1;
		harness_pause_ms(10);
	}
	ck_assert_msg(h >= 0, "no holder seen in 30 s (last: %s; node '%s')", holder_seen, node);
	dead[h] = true;
	t_kill = harness_now_ms();
	crash(&ags[h]);
	/* The session's invalidation: the last moment it was still seen is a
	 * lower bound for it (serfHealth turning critical or the TTL). */
	snprintf(path, sizeof(path), "/v1/session/info/%s", session);
	deadline = harness_now_ms() + 90000;
	for (;;) {
		struct http_resp resp;
		uint64_t before = harness_now_ms();
		bool gone;

		http_get(&ags[live_agent()], path, &resp);
		gone = resp.status == 200 && resp.body_len >= 2 && strcmp(resp.body, "[]") == 0;
		if (resp.status == 200 && !gone)
			t_alive = before;
		http_resp_free(&resp);
		if (gone)
			break;
		ck_assert_msg(harness_now_ms() < deadline, "session %s not invalidated in 90 s",
			      session);
		harness_pause_ms(20);
	}
	ck_assert_msg(wait_starts(c.file, t_kill, 2, 60000),
		      "the lock did not pass on after the holder's agent died");
	contenders_stop(&c);
	n = read_records(c.file, r, 4096);
	(void)check_exclusive(r, n);
	/* The holder at the kill: the last start before it. */
	for (size_t i = 0; i < n; i++)
		if (r[i].kind == 'S' && r[i].ms <= t_kill)
			holder_id = r[i].id;
	for (size_t i = 0; i < n && !next_start; i++)
		if (r[i].kind == 'S' && r[i].ms > t_kill)
			next_start = r[i].ms;
	ck_assert_int_ge(holder_id, 0);
	ck_assert_uint_gt(next_start, 0);
	ck_assert_msg(t_alive > 0, "the session was never seen after the kill");
	fprintf(stderr,
		"holder-kill: srv%d killed; session last seen +%" PRId64 " ms; next holder +%" PRId64
		" ms after the kill\n",
		h + 1, (int64_t)(t_alive - t_kill), (int64_t)(next_start - t_kill));
	ck_assert_msg(next_start >= t_alive + LOCK_DELAY_MS,
		      "next holder started at %" PRIu64 " ms, before the invalidation (after %" PRIu64
		      " ms) plus the lock-delay",
		      next_start, t_alive);
	check_client_log(c.log);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s;
	TCase *tc;

	if (argc == 5 && strcmp(argv[1], "--child") == 0)
		return child_main(argv[2], argv[3], argv[4]);
	s = suite_create("lock");
	tc = tcase_create("three-servers");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, kv_export_import_round_trip);
	tcase_add_test(tc, semaphore_two_holders_at_most);
	tcase_add_test(tc, one_holder_while_the_leader_is_killed);
	tcase_add_test(tc, holder_agent_killed_lock_passes_after_lock_delay);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
