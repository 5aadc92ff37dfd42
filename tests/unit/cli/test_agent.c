/* `cairn agent` supervision, against fake daemons (fake_daemon.c) found
 * through CAIRN_LIBEXEC_DIR: start order and arguments, the -dev temporary
 * data dir, restart after SIGKILL, clean stop on SIGTERM.
 * Usage: test_agent <path of cairn> <path of fake_daemon>. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *cairn_path;
static const char *fake_path;
static char tmp[64];
static char bindir[128];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int rm_entry(const char *p, const struct stat *st, int f, struct FTW *ftw)
{
	(void)st;
	(void)f;
	(void)ftw;
	return remove(p);
}

static void setup(void)
{
	const char *roles[] = {"raftd", "gossipd", "apid", "dnsd"};
	char fake_abs[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "/tmp/cairn-ta-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	snprintf(bindir, sizeof(bindir), "%s/bin", tmp);
	ck_assert_int_eq(mkdir(bindir, 0755), 0);
	ck_assert_ptr_nonnull(realpath(fake_path, fake_abs));
	for (size_t i = 0; i < 4; i++) {
		char link[256];

		snprintf(link, sizeof(link), "%s/cairn-%s", bindir, roles[i]);
		ck_assert_int_eq(symlink(fake_abs, link), 0);
	}
}

static void teardown(void) { (void)nftw(tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS); /* best effort */ }

/* Starts `cairn agent args...` with the fake daemons; output to agent.log. */
static pid_t start_agent(const char *libexec, const char *const *args)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *argv[32] = {cairn_path, "agent"};
		char log[128];
		size_t n = 2;
		int fd;

		for (size_t i = 0; args[i] && n < 31; i++)
			argv[n++] = args[i];
		argv[n] = NULL;
		snprintf(log, sizeof(log), "%s/agent.log", tmp);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		setenv("CAIRN_LIBEXEC_DIR", libexec, 1);
		setenv("FAKE_DIR", tmp, 1);
		setenv("TMPDIR", tmp, 1);
		unsetenv("NOTIFY_SOCKET");
		execv(cairn_path, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

/* Reads <tmp>/cairn-<role>.pid: the pid, and the arguments into args. */
static pid_t read_pid(const char *role, char *args, size_t len)
{
	char path[256], buf[1024];
	long pid = 0;
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/cairn-%s.pid", tmp, role);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	if (sscanf(buf, "%ld%n", &pid, &n) != 1)
		return 0;
	if (args)
		snprintf(args, len, "%s", buf + n);
	return (pid_t)pid;
}

/* Waits until the role's pid file names a pid other than old. */
static pid_t wait_pid(const char *role, pid_t old, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		pid_t p = read_pid(role, NULL, 0);

		if (p > 0 && p != old)
			return p;
		if (now_ms() >= deadline)
			return 0;
		pause_ms(10);
	}
}

/* Waits for the agent to exit; returns its wait status or -1. */
static int wait_exit(pid_t pid, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return status;
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		pause_ms(10);
	}
}

static bool gone(pid_t pid) { return kill(pid, 0) < 0 && errno == ESRCH; }

START_TEST(test_dev_agent_lifecycle)
{
	const char *args[] = {"-dev", "-node", "t1", "-http-port=18577", NULL};
	const char *roles[] = {"raftd", "gossipd", "apid", "dnsd"};
	pid_t pids[4], agent, apid2;
	char a[512], data_dir[256] = "";
	struct stat st;
	int status;

	agent = start_agent(bindir, args);
	for (size_t i = 0; i < 4; i++) {
		pids[i] = wait_pid(roles[i], 0, 15000);
		ck_assert_msg(pids[i] > 0, "cairn-%s not started", roles[i]);
	}
	/* Same arguments for all, plus the agent's temporary data dir. */
	for (size_t i = 0; i < 4; i++) {
		const char *dd;

		read_pid(roles[i], a, sizeof(a));
		ck_assert_msg(strncmp(a, " -dev -node t1 -http-port=18577 -data-dir=", 42) == 0,
			      "cairn-%s args: %s", roles[i], a);
		dd = a + 42;
		if (i == 0)
			snprintf(data_dir, sizeof(data_dir), "%.*s", (int)strcspn(dd, "\n"), dd);
		ck_assert_int_eq(strncmp(dd, data_dir, strlen(data_dir)), 0);
	}
	ck_assert_msg(strncmp(data_dir, tmp, strlen(tmp)) == 0, "data dir %s not in TMPDIR",
		      data_dir);
	ck_assert_int_eq(stat(data_dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));

	/* A daemon killed is started again; the others stay. */
	ck_assert_int_eq(kill(pids[2], SIGKILL), 0);
	apid2 = wait_pid("apid", pids[2], 15000);
	ck_assert_msg(apid2 > 0 && apid2 != pids[2], "cairn-apid not restarted");
	ck_assert_int_eq(read_pid("raftd", NULL, 0), pids[0]);
	ck_assert_int_eq(read_pid("dnsd", NULL, 0), pids[3]);

	/* SIGTERM: every daemon stopped, the temp dir removed, exit 0. */
	ck_assert_int_eq(kill(agent, SIGTERM), 0);
	status = wait_exit(agent, 15000);
	ck_assert_msg(status >= 0, "agent did not stop");
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(gone(pids[0]) && gone(pids[1]) && gone(apid2) && gone(pids[3]));
	ck_assert_int_eq(stat(data_dir, &st), -1);
}
END_TEST

START_TEST(test_client_agent_has_no_raftd)
{
	char dd[128];
	const char *args[] = {"-data-dir", dd, "-node=c1", NULL};
	pid_t agent, p;
	int status;
	struct stat st;

	snprintf(dd, sizeof(dd), "%s/data", tmp);
	agent = start_agent(bindir, args);
	ck_assert_int_gt(p = wait_pid("gossipd", 0, 15000), 0);
	ck_assert_int_gt(wait_pid("apid", 0, 15000), 0);
	ck_assert_int_gt(wait_pid("dnsd", 0, 15000), 0);
	ck_assert_int_eq(read_pid("raftd", NULL, 0), 0);
	ck_assert_int_eq(kill(agent, SIGINT), 0);
	status = wait_exit(agent, 15000);
	ck_assert(status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(gone(p));
	/* A data dir the user chose stays. */
	ck_assert_int_eq(stat(dd, &st), 0);
}
END_TEST

START_TEST(test_missing_daemons_fail)
{
	const char *args[] = {"-dev", NULL};
	char nowhere[128];
	pid_t agent;
	int status;

	snprintf(nowhere, sizeof(nowhere), "%s/nowhere", tmp);
	agent = start_agent(nowhere, args);
	status = wait_exit(agent, 15000);
	ck_assert(status >= 0 && WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
}
END_TEST

START_TEST(test_bad_flag_fails)
{
	const char *args[] = {"-dev", "-http-port", "nope", NULL};
	pid_t agent = start_agent(bindir, args);
	int status = wait_exit(agent, 15000);

	ck_assert(status >= 0 && WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 1);
	ck_assert_int_eq(read_pid("gossipd", NULL, 0), 0);
}
END_TEST

int main(int argc, char **argv)
{
	Suite *s = suite_create("cli-agent");
	TCase *t = tcase_create("supervise");
	SRunner *sr;
	int failed;

	if (argc != 3) {
		fprintf(stderr, "usage: %s <cairn> <fake_daemon>\n", argv[0]);
		return 2;
	}
	cairn_path = argv[1];
	fake_path = argv[2];
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_set_timeout(t, 60);
	tcase_add_test(t, test_dev_agent_lifecycle);
	tcase_add_test(t, test_client_agent_has_no_raftd);
	tcase_add_test(t, test_missing_daemons_fail);
	tcase_add_test(t, test_bad_flag_fails);
	suite_add_tcase(s, t);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
