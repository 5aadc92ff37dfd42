/* Process-test harness: real agents on free ports, HTTP/DNS/ZeroMQ clients. */
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <ldns/ldns.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "arena.h"
#include "proto.h"

#define HARNESS_N_PORTS 5

uint64_t harness_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void harness_pause_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void harness_base64(const void *in, size_t len, char *out)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = in;
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= (uint32_t)p[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

/* ---- ports ------------------------------------------------------------ */

/* Picks n distinct ports that are free for both TCP and UDP on 127.0.0.1
 * right now. The sockets are held until all are chosen so the kernel does
 * not hand out the same port twice, then closed for the agent to bind. */
static int pick_ports(int *out, size_t n)
{
	int fds[HARNESS_N_PORTS * 2];
	size_t nfds = 0, got = 0;
	int rc = 0;

	for (size_t tries = 0; got < n && tries < 200; tries++) {
		struct sockaddr_in sa = {.sin_family = AF_INET};
		socklen_t sl = sizeof(sa);
		int t, u;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (t < 0) {
			rc = -errno;
			break;
		}
		if (bind(t, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
		    getsockname(t, (struct sockaddr *)&sa, &sl) < 0) {
			close(t);
			continue;
		}
		u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (u < 0 || bind(u, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			if (u >= 0)
				close(u);
			close(t);
			continue;
		}
		fds[nfds++] = t;
		fds[nfds++] = u;
		out[got++] = ntohs(sa.sin_port);
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	if (rc == 0 && got < n)
		rc = -EADDRINUSE;
	return rc;
}

/* ---- /proc ------------------------------------------------------------ */

/* Reads comm, state and ppid of pid. Returns 0 or -errno. */
static int proc_stat(pid_t pid, char *comm, size_t commlen, char *state, pid_t *ppid)
{
	char path[64], buf[1024];
	char *open_paren, *close_paren;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	open_paren = strchr(buf, '(');
	close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren || close_paren[1] == '\0')
		return -EIO;
	if (comm) {
		size_t len = (size_t)(close_paren - open_paren - 1);
		if (len >= commlen)
			len = commlen - 1;
		memcpy(comm, open_paren + 1, len);
		comm[len] = '\0';
	}
	{
		char st = 0;
		int pp = 0;
		if (sscanf(close_paren + 2, "%c %d", &st, &pp) != 2)
			return -EIO;
		if (state)
			*state = st;
		if (ppid)
			*ppid = pp;
	}
	return 0;
}

bool harness_pid_alive(pid_t pid)
{
	char st;

	if (pid <= 0)
		return false;
	if (proc_stat(pid, NULL, 0, &st, NULL) < 0)
		return false;
	return st != 'Z' && st != 'X' && st != 'x';
}

/* True when /proc/<pid>/cmdline contains needle in one of its arguments. */
static bool cmdline_contains(pid_t pid, const char *needle)
{
	char path[64];
	char buf[8192];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1)
		if (strstr(buf + i, needle))
			return true;
	return false;
}

static bool is_descendant(pid_t pid, pid_t ancestor)
{
	for (int depth = 0; depth < 8 && pid > 1; depth++) {
		pid_t pp = 0;
		if (proc_stat(pid, NULL, 0, NULL, &pp) < 0)
			return false;
		if (pp == ancestor)
			return true;
		pid = pp;
	}
	return false;
}

pid_t harness_daemon_pid(const struct agent *a, const char *role)
{
	char want[32];
	pid_t found = 0;
	DIR *d;
	struct dirent *de;

	snprintf(want, sizeof(want), "cairn-%s", role);
	d = opendir("/proc");
	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL && found == 0) {
		char comm[64], st;
		char *end;
		long v = strtol(de->d_name, &end, 10);
		pid_t pid;

		if (*end != '\0' || v <= 0)
			continue;
		pid = (pid_t)v;
		if (proc_stat(pid, comm, sizeof(comm), &st, NULL) < 0)
			continue;
		if (strcmp(comm, want) != 0 || st == 'Z' || st == 'X')
			continue;
		if ((a->pid > 0 && is_descendant(pid, a->pid)) ||
		    (a->tmp_dir[0] && cmdline_contains(pid, a->tmp_dir)))
			found = pid;
	}
	closedir(d);
	return found;
}

pid_t harness_wait_daemon(const struct agent *a, const char *role, pid_t old_pid,
			  uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		pid_t p = harness_daemon_pid(a, role);
		if (p > 0 && p != old_pid)
			return p;
		if (harness_now_ms() >= deadline)
			return 0;
		harness_pause_ms(50);
	}
}

/* ---- logs ------------------------------------------------------------- */

static void log_tail(const struct agent *a, size_t max_bytes, char *out, size_t outlen)
{
	FILE *f;
	long size, start;
	size_t n;

	if (outlen == 0)
		return;
	out[0] = '\0';
	f = fopen(a->log_path, "r");
	if (!f)
		return;
	if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0) {
		if (max_bytes >= outlen)
			max_bytes = outlen - 1;
		start = size > (long)max_bytes ? size - (long)max_bytes : 0;
		if (fseek(f, start, SEEK_SET) == 0) {
			n = fread(out, 1, max_bytes, f);
			out[n] = '\0';
		}
	}
	fclose(f);
}

void harness_dump_log(const struct agent *a, size_t max_bytes)
{
	char *buf;

	if (!a || a->log_path[0] == '\0')
		return;
	buf = malloc(max_bytes + 1);
	if (!buf)
		return;
	log_tail(a, max_bytes, buf, max_bytes + 1);
	fprintf(stderr, "---- tail of %s ----\n%s\n---- end of agent log ----\n", a->log_path, buf);
	free(buf);
}

bool harness_log_has_sanitizer_report(const struct agent *a, char *out, size_t outlen)
{
	static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
					    "runtime error:", "ERROR: UndefinedBehaviorSanitizer"};
	char line[1024];
	bool found = false;
	FILE *f = fopen(a->log_path, "r");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++) {
			if (strstr(line, marks[i])) {
				found = true;
				if (out && outlen) {
					line[strcspn(line, "\n")] = '\0';
					snprintf(out, outlen, "%s", line);
				}
				break;
			}
		}
	}
	fclose(f);
	return found;
}

/* ---- agent lifecycle -------------------------------------------------- */

static void live_remove(struct agent *a);

static void curl_init_once(void)
{
	static bool done;

	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = true;
	}
}

/* <build root>/cli/cairn, from CAIRN_BUILD_ROOT or else from our own path
 * (<root>/tests/process/<exe>). */
static int find_cairn(char *out, size_t outlen)
{
	const char *root = getenv("CAIRN_BUILD_ROOT");
	char self[PATH_MAX];

	if (root && root[0]) {
		snprintf(out, outlen, "%s/cli/cairn", root);
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return -ENOENT;
	self[n] = '\0';
	for (int i = 0; i < 3; i++) {
		char *slash = strrchr(self, '/');
		if (!slash)
			return -ENOENT;
		*slash = '\0';
	}
	snprintf(out, outlen, "%.4000s/cli/cairn", self);
	return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	(void)remove(path); /* best effort: a leftover temp file is harmless */
	return 0;
}

static bool waited_exit(pid_t pid, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD && !harness_pid_alive(pid)))
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(20);
	}
}

void harness_agent_stop(struct agent *a)
{
	static const char *const roles[] = {"apid", "dnsd", "gossipd", "raftd"};
	pid_t daemons[4] = {0};

	if (!a)
		return;
	for (size_t i = 0; i < 4; i++)
		if (a->tmp_dir[0])
			daemons[i] = harness_daemon_pid(a, roles[i]);
	if (a->pid > 0) {
		(void)kill(a->pid, SIGCONT); /* a test may have stopped it */
		(void)kill(a->pid, SIGTERM);
		if (!waited_exit(a->pid, 15000)) {
			fprintf(stderr, "harness: agent %d ignored SIGTERM for 15 s; killing\n",
				(int)a->pid);
		}
		(void)kill(-a->pid, SIGKILL); /* whatever is left in its group */
		(void)waited_exit(a->pid, 5000);
	}
	/* Daemons that escaped the group or were orphaned by a crash. */
	for (size_t i = 0; i < 4; i++) {
		char comm[64];
		if (daemons[i] > 0 && proc_stat(daemons[i], comm, sizeof(comm), NULL, NULL) == 0 &&
		    strncmp(comm, "cairn-", 6) == 0 && harness_pid_alive(daemons[i])) {
			fprintf(stderr, "harness: cairn-%s (%d) outlived its agent; killing\n",
				roles[i], (int)daemons[i]);
			(void)kill(daemons[i], SIGKILL);
		}
	}
	a->pid = 0;
	live_remove(a);
	if (a->tmp_dir[0]) {
		if (!getenv("CAIRN_TEST_KEEP"))
			(void)nftw(a->tmp_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		else
			fprintf(stderr, "harness: keeping %s\n", a->tmp_dir);
		a->tmp_dir[0] = '\0';
	}
}

int harness_agent_terminate(struct agent *a, int sig, uint64_t timeout_ms, char *err,
			    size_t errlen)
{
	static const char *const roles[] = {"apid", "dnsd", "gossipd", "raftd"};
	pid_t daemons[4] = {0};
	uint64_t deadline = harness_now_ms() + timeout_ms;
	char line[512];

	for (size_t i = 0; i < 4; i++)
		daemons[i] = harness_daemon_pid(a, roles[i]);
	if (a->pid <= 0 || kill(a->pid, sig) < 0) {
		errf(err, errlen, "no agent to signal");
		return -ESRCH;
	}
	for (;;) {
		bool left = harness_pid_alive(a->pid);
		for (size_t i = 0; i < 4 && !left; i++)
			left = harness_pid_alive(daemons[i]);
		if (!left)
			break;
		if (harness_now_ms() >= deadline) {
			errf(err, errlen,
			     "still running %llu ms after signal %d: agent %s, apid %s, dnsd %s, "
			     "gossipd %s, raftd %s",
			     (unsigned long long)timeout_ms, sig,
			     harness_pid_alive(a->pid) ? "yes" : "no",
			     harness_pid_alive(daemons[0]) ? "yes" : "no",
			     harness_pid_alive(daemons[1]) ? "yes" : "no",
			     harness_pid_alive(daemons[2]) ? "yes" : "no",
			     harness_pid_alive(daemons[3]) ? "yes" : "no");
			return -ETIMEDOUT;
		}
		harness_pause_ms(20);
	}
	if (harness_log_has_sanitizer_report(a, line, sizeof(line))) {
		errf(err, errlen, "sanitizer report in agent log: %s", line);
		return -EFAULT;
	}
	return 0;
}

bool harness_wait_leader(const struct agent *a, uint64_t timeout_ms)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		struct http_resp r;
		bool ok = http_get(a, "/v1/status/leader", &r) == 0 && r.status == 200 &&
			  r.body_len > 2 && r.body[0] == '"' && strcmp(r.body, "\"\"") != 0;
		http_resp_free(&r);
		if (ok)
			return true;
		if (harness_now_ms() >= deadline)
			return false;
		harness_pause_ms(100);
	}
}

/* Agents started by this process, stopped at exit whatever happens: Check
 * ends a failed test with exit() before any teardown runs. Entries carry
 * the pid that started them, since forked children inherit the list. */
#define HARNESS_MAX_LIVE 8
static struct agent *live[HARNESS_MAX_LIVE];
static pid_t live_owner[HARNESS_MAX_LIVE];

static void stop_live_at_exit(void)
{
	for (size_t i = 0; i < HARNESS_MAX_LIVE; i++)
		if (live[i] && live_owner[i] == getpid())
			harness_agent_stop(live[i]);
}

static void live_add(struct agent *a)
{
	static bool registered;
	size_t free_slot = HARNESS_MAX_LIVE;

	if (!registered) {
		atexit(stop_live_at_exit);
		registered = true;
	}
	for (size_t i = 0; i < HARNESS_MAX_LIVE; i++) {
		if (live[i] == a && live_owner[i] == getpid())
			return;
		if ((!live[i] || live_owner[i] != getpid()) && free_slot == HARNESS_MAX_LIVE)
			free_slot = i;
	}
	if (free_slot < HARNESS_MAX_LIVE) {
		live[free_slot] = a;
		live_owner[free_slot] = getpid();
	}
}

static void live_remove(struct agent *a)
{
	for (size_t i = 0; i < HARNESS_MAX_LIVE; i++)
		if (live[i] == a && live_owner[i] == getpid())
			live[i] = NULL;
}

/* Reads "Data Dir: X" from the agent's banner (dev mode picks its own). */
static void learn_data_dir(struct agent *a)
{
	char line[512];
	FILE *f = fopen(a->log_path, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "Data Dir: ");
		if (p) {
			p += strlen("Data Dir: ");
			p[strcspn(p, " \r\n")] = '\0';
			snprintf(a->data_dir, sizeof(a->data_dir), "%s", p);
			break;
		}
	}
	fclose(f);
}

static bool members_ok(const struct agent *a)
{
	struct http_resp r;
	bool ok = http_get(a, "/v1/agent/members", &r) == 0 && r.status == 200;

	http_resp_free(&r);
	return ok;
}

/* Forks and execs `cairn agent` with a's settings, then waits for a leader. */
static int launch(struct agent *a, uint64_t timeout_ms, char *err, size_t errlen)
{
	char cairn[PATH_MAX];
	char ports_s[HARNESS_N_PORTS][16];
	const char *argv[64];
	size_t argc = 0;
	uint64_t deadline;
	pid_t parent = getpid();
	int rc;

	rc = find_cairn(cairn, sizeof(cairn));
	if (rc < 0 || access(cairn, X_OK) != 0) {
		errf(err, errlen, "cannot run %s (CAIRN_BUILD_ROOT=%s): not built?", cairn,
		     getenv("CAIRN_BUILD_ROOT") ? getenv("CAIRN_BUILD_ROOT") : "unset");
		return -ENOENT;
	}
	snprintf(ports_s[0], sizeof(ports_s[0]), "%d", a->http_port);
	snprintf(ports_s[1], sizeof(ports_s[1]), "%d", a->dns_port);
	snprintf(ports_s[2], sizeof(ports_s[2]), "%d", a->server_port);
	snprintf(ports_s[3], sizeof(ports_s[3]), "%d", a->serf_lan_port);
	snprintf(ports_s[4], sizeof(ports_s[4]), "%d", a->serf_wan_port);

	argv[argc++] = cairn;
	argv[argc++] = "agent";
	if (a->dev) {
		argv[argc++] = "-dev";
	} else {
		argv[argc++] = "-server";
		argv[argc++] = "-bootstrap-expect";
		argv[argc++] = "1";
		argv[argc++] = "-data-dir";
		argv[argc++] = a->data_dir;
	}
	argv[argc++] = "-node";
	argv[argc++] = a->name;
	argv[argc++] = "-bind";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "-client";
	argv[argc++] = "127.0.0.1";
	argv[argc++] = "-http-port";
	argv[argc++] = ports_s[0];
	argv[argc++] = "-dns-port";
	argv[argc++] = ports_s[1];
	argv[argc++] = "-server-port";
	argv[argc++] = ports_s[2];
	argv[argc++] = "-serf-lan-port";
	argv[argc++] = ports_s[3];
	argv[argc++] = "-serf-wan-port";
	argv[argc++] = ports_s[4];
	for (size_t i = 0; i < a->n_extra && argc < 62; i++)
		argv[argc++] = a->extra[i];
	argv[argc] = NULL;

	fflush(NULL);
	a->pid = fork();
	if (a->pid < 0) {
		rc = -errno;
		a->pid = 0;
		errf(err, errlen, "fork: %s", strerror(-rc));
		return rc;
	}
	if (a->pid == 0) {
		int fd;

		(void)setpgid(0, 0);
		/* Do not outlive the test program, whatever kills it. */
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		fd = open(a->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		execv(cairn, (char *const *)argv);
		fprintf(stderr, "harness: exec %s: %s\n", cairn, strerror(errno));
		_exit(127);
	}
	(void)setpgid(a->pid, a->pid); /* also from here: no race with kill(-pgid) */
	live_add(a);

	deadline = harness_now_ms() + timeout_ms;
	for (;;) {
		if (!harness_pid_alive(a->pid)) {
			char tail[1500];
			log_tail(a, sizeof(tail) - 1, tail, sizeof(tail));
			errf(err, errlen, "cairn agent exited during start-up; log tail:\n%s", tail);
			return -ECHILD;
		}
		/* Ready as a user sees it: a leader, and apid can reach gossipd
		 * (the agent starts apid and gossipd together, so the leader
		 * can answer a moment before members does). */
		if (harness_wait_leader(a, 0) && members_ok(a))
			break;
		if (harness_now_ms() >= deadline) {
			char tail[1500];
			log_tail(a, sizeof(tail) - 1, tail, sizeof(tail));
			errf(err, errlen,
			     "no leader on /v1/status/leader or no /v1/agent/members (port %d) "
			     "after %llu ms; log tail:\n%s",
			     a->http_port, (unsigned long long)timeout_ms, tail);
			return -ETIMEDOUT;
		}
		harness_pause_ms(100);
	}
	if (a->dev)
		learn_data_dir(a);
	return 0;
}

static int start(struct agent *a, const char *name, bool dev, const char *const *extra_args,
		 uint64_t timeout_ms, char *err, size_t errlen)
{
	int ports[HARNESS_N_PORTS];
	int rc;

	memset(a, 0, sizeof(*a));
	curl_init_once();
	a->dev = dev;
	snprintf(a->tmp_dir, sizeof(a->tmp_dir), "/tmp/cairn-pt-XXXXXX");
	if (!mkdtemp(a->tmp_dir)) {
		rc = -errno;
		a->tmp_dir[0] = '\0';
		errf(err, errlen, "mkdtemp: %s", strerror(-rc));
		return rc;
	}
	if (!dev)
		snprintf(a->data_dir, sizeof(a->data_dir), "%s/data", a->tmp_dir);
	snprintf(a->log_path, sizeof(a->log_path), "%s/agent.log", a->tmp_dir);
	if (name)
		snprintf(a->name, sizeof(a->name), "%s", name);
	else
		snprintf(a->name, sizeof(a->name), "node-%d", (int)getpid());
	for (size_t i = 0; extra_args && extra_args[i] && a->n_extra < HARNESS_MAX_EXTRA; i++)
		a->extra[a->n_extra++] = extra_args[i];
	rc = pick_ports(ports, HARNESS_N_PORTS);
	if (rc < 0) {
		errf(err, errlen, "no free ports: %s", strerror(-rc));
		goto fail;
	}
	a->http_port = ports[0];
	a->dns_port = ports[1];
	a->server_port = ports[2];
	a->serf_lan_port = ports[3];
	a->serf_wan_port = ports[4];
	rc = launch(a, timeout_ms, err, errlen);
	if (rc < 0)
		goto fail;
	return 0;
fail:
	harness_agent_stop(a);
	return rc;
}

int harness_agent_start(struct agent *a, const char *name, const char *const *extra_args,
			uint64_t timeout_ms, char *err, size_t errlen)
{
	return start(a, name, false, extra_args, timeout_ms, err, errlen);
}

int harness_agent_start_dev(struct agent *a, const char *name, uint64_t timeout_ms, char *err,
			    size_t errlen)
{
	return start(a, name, true, NULL, timeout_ms, err, errlen);
}

void harness_agent_kill9(struct agent *a)
{
	static const char *const roles[] = {"apid", "dnsd", "gossipd", "raftd"};
	pid_t daemons[4] = {0};

	for (size_t i = 0; i < 4; i++)
		daemons[i] = harness_daemon_pid(a, roles[i]);
	/* A crash, not a shutdown: the daemons die by SIGKILL before the
	 * agent does, because the agent's death would otherwise reach them
	 * first as SIGTERM (PR_SET_PDEATHSIG) and raftd would leave
	 * gracefully. The agent is stopped first so it cannot restart them. */
	if (a->pid > 0)
		(void)kill(a->pid, SIGSTOP);
	for (size_t i = 0; i < 4; i++)
		if (daemons[i] > 0)
			(void)kill(daemons[i], SIGKILL);
	if (a->pid > 0) {
		(void)kill(-a->pid, SIGKILL);
		(void)kill(a->pid, SIGKILL);
		(void)waited_exit(a->pid, 5000);
	}
	for (size_t i = 0; i < 4; i++) {
		uint64_t deadline = harness_now_ms() + 5000;
		if (daemons[i] <= 0)
			continue;
		while (harness_pid_alive(daemons[i]) && harness_now_ms() < deadline)
			harness_pause_ms(10);
	}
	a->pid = 0;
}

int harness_agent_relaunch(struct agent *a, uint64_t timeout_ms, char *err, size_t errlen)
{
	if (a->pid > 0 && harness_pid_alive(a->pid)) {
		errf(err, errlen, "agent %d still running", (int)a->pid);
		return -EBUSY;
	}
	return launch(a, timeout_ms, err, errlen);
}

/* ---- HTTP ------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_add(struct buf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;
		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
	return buf_add(ctx, data, size * nmemb) == 0 ? size * nmemb : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
	struct buf *b = ctx;

	/* A new status line (after 100 Continue) starts a new header block. */
	if (size * nmemb >= 5 && strncmp(data, "HTTP/", 5) == 0)
		b->len = 0;
	return buf_add(b, data, size * nmemb) == 0 ? size * nmemb : 0;
}

struct upload {
	const uint8_t *p;
	size_t left;
	size_t piece; /* bytes per read callback: several chunks */
};

static size_t on_read(char *dst, size_t size, size_t nmemb, void *ctx)
{
	struct upload *u = ctx;
	size_t n = size * nmemb;

	if (n > u->left)
		n = u->left;
	if (n > u->piece)
		n = u->piece;
	memcpy(dst, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

struct http_conn {
	CURL *c;
	int port;
};

struct http_conn *http_conn_new(const struct agent *a)
{
	struct http_conn *hc = calloc(1, sizeof(*hc));

	if (!hc)
		return NULL;
	curl_init_once();
	hc->c = curl_easy_init();
	hc->port = a->http_port;
	if (!hc->c) {
		free(hc);
		return NULL;
	}
	return hc;
}

void http_conn_free(struct http_conn *hc)
{
	if (!hc)
		return;
	curl_easy_cleanup(hc->c);
	free(hc);
}

int http_conn_request(struct http_conn *hc, const char *method, const char *path,
		      const void *body, size_t body_len, const struct http_opts *opts,
		      struct http_resp *out)
{
	struct buf hb = {0}, bb = {0};
	struct curl_slist *hdrs = NULL;
	struct upload up = {body, body_len, 4096};
	char url[2048];
	CURL *c = hc->c;
	CURLcode cc;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", hc->port, path);
	curl_easy_reset(c); /* keeps the connection cache */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	for (size_t i = 0; opts && opts->headers && opts->headers[i]; i++)
		hdrs = curl_slist_append(hdrs, opts->headers[i]);
	if (opts && opts->chunked)
		hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") == 0 && !body) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (body && opts && opts->chunked) {
		/* Upload with no length: curl sends the body in chunks. */
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(c, CURLOPT_READDATA, &up);
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	} else {
		if (body) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		}
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(c);
	if (cc != CURLE_OK) {
		snprintf(out->err, sizeof(out->err), "%.16s %.120s: %.100s", method, url,
			 curl_easy_strerror(cc));
		rc = -EIO;
	} else {
		long nc = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nc);
		out->new_connections = nc;
	}
	curl_slist_free_all(hdrs);
	if (!hb.p)
		(void)buf_add(&hb, "", 0);
	if (!bb.p)
		(void)buf_add(&bb, "", 0);
	out->headers = hb.p;
	out->body = bb.p;
	out->body_len = bb.len;
	if (rc < 0)
		out->status = 0;
	return rc;
}

int http_request(const struct agent *a, const char *method, const char *path, const void *body,
		 size_t body_len, struct http_resp *out)
{
	struct http_conn *hc = http_conn_new(a);
	int rc;

	if (!hc) {
		memset(out, 0, sizeof(*out));
		snprintf(out->err, sizeof(out->err), "curl_easy_init failed");
		out->headers = calloc(1, 1);
		out->body = calloc(1, 1);
		return -ENOMEM;
	}
	rc = http_conn_request(hc, method, path, body, body_len, NULL, out);
	http_conn_free(hc);
	return rc;
}

int http_get(const struct agent *a, const char *path, struct http_resp *out)
{
	return http_request(a, "GET", path, NULL, 0, out);
}

int http_put(const struct agent *a, const char *path, const char *body, struct http_resp *out)
{
	return http_request(a, "PUT", path, body ? body : "", body ? strlen(body) : 0, out);
}

int http_delete(const struct agent *a, const char *path, struct http_resp *out)
{
	return http_request(a, "DELETE", path, NULL, 0, out);
}

void http_resp_free(struct http_resp *r)
{
	if (!r)
		return;
	free(r->headers);
	free(r->body);
	r->headers = NULL;
	r->body = NULL;
	r->body_len = 0;
}

bool http_header(const struct http_resp *r, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);
	const char *line = r->headers;

	while (line && *line) {
		const char *eol = strchr(line, '\n');
		size_t llen = eol ? (size_t)(eol - line) : strlen(line);

		if (llen > nlen && strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			size_t vlen;
			while (*v == ' ' || *v == '\t')
				v++;
			vlen = (size_t)(line + llen - v);
			while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
				vlen--;
			if (out && outlen) {
				if (vlen >= outlen)
					vlen = outlen - 1;
				memcpy(out, v, vlen);
				out[vlen] = '\0';
			}
			return true;
		}
		line = eol ? eol + 1 : NULL;
	}
	return false;
}

uint64_t http_index(const struct http_resp *r)
{
	char v[64];
	char *end;
	unsigned long long n;

	if (!http_header(r, "X-Consul-Index", v, sizeof(v)) || !isdigit((unsigned char)v[0]))
		return 0;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end)
		return 0;
	return n;
}

struct json_t *http_json(const struct http_resp *r)
{
	json_error_t je;

	if (!r->body)
		return NULL;
	return json_loadb(r->body, r->body_len, JSON_DECODE_ANY, &je);
}

/* ---- DNS -------------------------------------------------------------- */

ldns_pkt *harness_dns_exchange(const struct agent *a, const uint8_t *wire, size_t len, bool tcp,
			       unsigned timeout_ms, size_t *out_len)
{
	static uint8_t buf[65536 + 2];
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->dns_port)};
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	ldns_pkt *reply = NULL;
	ssize_t n = -1;
	int fd;

	if (out_len)
		*out_len = 0;
	if (len > 65535)
		return NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto out;
	if (tcp) {
		size_t got = 0, want = 2;

		buf[0] = (uint8_t)(len >> 8);
		buf[1] = (uint8_t)len;
		memcpy(buf + 2, wire, len);
		if (send(fd, buf, len + 2, 0) != (ssize_t)(len + 2))
			goto out;
		while (got < want) {
			n = recv(fd, buf + got, want - got, 0);
			if (n <= 0)
				goto out;
			got += (size_t)n;
			if (got == 2 && want == 2)
				want = 2 + ((size_t)buf[0] << 8 | buf[1]);
		}
		n = (ssize_t)(want - 2);
		memmove(buf, buf + 2, (size_t)n);
	} else {
		if (send(fd, wire, len, 0) != (ssize_t)len)
			goto out;
		n = recv(fd, buf, sizeof(buf), 0);
	}
	if (n > 0 && ldns_wire2pkt(&reply, buf, (size_t)n) != LDNS_STATUS_OK)
		reply = NULL;
	if (reply && out_len)
		*out_len = (size_t)n;
out:
	close(fd);
	return reply;
}

int dns_query(const struct agent *a, const char *name, int rr_type, uint64_t timeout_ms,
	      struct dns_result *out)
{
	ldns_rdf *qname = NULL;
	ldns_pkt *q = NULL, *reply = NULL;
	uint8_t *wire = NULL;
	size_t wire_len = 0;
	uint8_t rbuf[65536];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct pollfd pfd;
	ssize_t n;
	uint64_t deadline;
	int fd = -1, rc;

	memset(out, 0, sizeof(*out));
	qname = ldns_dname_new_frm_str(name);
	if (!qname) {
		rc = -EINVAL;
		goto out;
	}
	q = ldns_pkt_query_new(qname, (ldns_rr_type)rr_type, LDNS_RR_CLASS_IN, LDNS_RD);
	if (!q) {
		ldns_rdf_deep_free(qname);
		rc = -ENOMEM;
		goto out;
	}
	out->id_sent = (uint16_t)(harness_now_ms() ^ (uint64_t)getpid());
	ldns_pkt_set_id(q, out->id_sent);
	if (ldns_pkt2wire(&wire, q, &wire_len) != LDNS_STATUS_OK) {
		rc = -EINVAL;
		goto out;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)a->dns_port);
	if (sendto(fd, wire, wire_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	deadline = harness_now_ms() + timeout_ms;
	for (;;) {
		uint64_t now = harness_now_ms();
		int left = now >= deadline ? 0 : (int)(deadline - now);

		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			rc = rc < 0 ? -errno : -ETIMEDOUT;
			goto out;
		}
		n = recv(fd, rbuf, sizeof(rbuf), 0);
		if (n < 0) {
			/* ECONNREFUSED: nothing listens (yet). */
			rc = -errno;
			goto out;
		}
		break;
	}
	if (ldns_wire2pkt(&reply, rbuf, (size_t)n) != LDNS_STATUS_OK) {
		rc = -EPROTO;
		goto out;
	}
	out->rcode = ldns_pkt_get_rcode(reply);
	out->aa = ldns_pkt_aa(reply);
	out->id_received = ldns_pkt_id(reply);
	{
		ldns_rr_list *ans = ldns_pkt_answer(reply);
		ldns_rr_list *auth = ldns_pkt_authority(reply);

		out->n_answer = ans ? ldns_rr_list_rr_count(ans) : 0;
		out->n_authority = auth ? ldns_rr_list_rr_count(auth) : 0;
		for (size_t i = 0; i < out->n_answer; i++) {
			ldns_rr *rr = ldns_rr_list_rr(ans, i);
			ldns_rr_type t = ldns_rr_get_type(rr);
			if ((t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA) && out->n_a < 8 &&
			    ldns_rr_rd_count(rr) > 0) {
				char *s = ldns_rdf2str(ldns_rr_rdf(rr, 0));
				if (s) {
					if (out->n_a == 0)
						out->a_ttl = ldns_rr_ttl(rr);
					snprintf(out->a[out->n_a++], sizeof(out->a[0]), "%s", s);
					free(s);
				}
			}
		}
		for (size_t i = 0; i < out->n_authority; i++)
			if (ldns_rr_get_type(ldns_rr_list_rr(auth, i)) == LDNS_RR_TYPE_SOA)
				out->soa_in_authority = true;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	free(wire);
	ldns_pkt_free(q);
	ldns_pkt_free(reply);
	return rc;
}

/* ---- ZeroMQ ----------------------------------------------------------- */

void harness_ipc_endpoint(const struct agent *a, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "ipc://%s/run/%s.sock", a->data_dir, name);
}

int zmq_roundtrip(const char *endpoint, const void *buf, size_t len, uint64_t timeout_ms,
		  struct arena *arena, struct proto_msg *out)
{
	void *ctx = zmq_ctx_new();
	void *s = NULL;
	zmq_msg_t m;
	bool have_msg = false;
	int linger = 0, rc;
	uint64_t deadline;
	char err[256];

	if (!ctx)
		return -ENOMEM;
	s = zmq_socket(ctx, ZMQ_DEALER);
	if (!s) {
		rc = -errno;
		goto out;
	}
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_connect(s, endpoint) < 0) {
		rc = -errno;
		goto out;
	}
	if (zmq_send(s, buf, len, 0) < 0) {
		rc = -errno;
		goto out;
	}
	deadline = harness_now_ms() + timeout_ms;
	zmq_msg_init(&m);
	have_msg = true;
	for (;;) {
		zmq_pollitem_t pi = {.socket = s, .events = ZMQ_POLLIN};
		uint64_t now = harness_now_ms();
		long left = now >= deadline ? 0 : (long)(deadline - now);
		int more = 0;
		size_t more_len = sizeof(more);

		rc = zmq_poll(&pi, 1, left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0) {
			rc = rc < 0 ? -errno : -ETIMEDOUT;
			goto out;
		}
		/* Keep the last frame of the reply: the payload. */
		do {
			if (zmq_msg_recv(&m, s, 0) < 0) {
				rc = -errno;
				goto out;
			}
			zmq_getsockopt(s, ZMQ_RCVMORE, &more, &more_len);
		} while (more);
		break;
	}
	err[0] = '\0';
	rc = proto_decode(zmq_msg_data(&m), zmq_msg_size(&m), arena, out, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "zmq_roundtrip: undecodable reply (%zu bytes): %s\n",
			zmq_msg_size(&m), err);
out:
	if (have_msg)
		zmq_msg_close(&m);
	if (s)
		zmq_close(s);
	zmq_ctx_term(ctx);
	return rc;
}

/* ---- clusters of servers ---------------------------------------------- */

/* A port in 20000-31999 free for TCP and UDP on 127.0.0.1 right now and
 * not among the taken ones; -1 after 1000 tries. */
static int random_free_port(unsigned *seed, const int *taken, size_t n_taken)
{
	for (int tries = 0; tries < 1000; tries++) {
		int port = 20000 + (int)(rand_r(seed) % 12000);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		int t, u;
		bool ok = true;

		for (size_t i = 0; i < n_taken; i++)
			ok &= taken[i] != port;
		if (!ok)
			continue;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		t = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		ok = t >= 0 && u >= 0 && bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		     bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0;
		if (t >= 0)
			close(t);
		if (u >= 0)
			close(u);
		if (ok)
			return port;
	}
	return -1;
}

int harness_agent_prepare(struct agent *a, const char *name, char *err, size_t errlen)
{
	static unsigned seed;
	int p[HARNESS_N_PORTS];

	if (seed == 0)
		seed = ((unsigned)getpid() ^ (unsigned)harness_now_ms()) | 1u;
	memset(a, 0, sizeof(*a));
	curl_init_once();
	for (size_t k = 0; k < HARNESS_N_PORTS; k++) {
		p[k] = random_free_port(&seed, p, k);
		if (p[k] < 0) {
			errf(err, errlen, "no free port in 20000-31999");
			return -EADDRINUSE;
		}
	}
	snprintf(a->name, sizeof(a->name), "%s", name);
	snprintf(a->tmp_dir, sizeof(a->tmp_dir), "/tmp/cairn-pt-XXXXXX");
	if (!mkdtemp(a->tmp_dir)) {
		int rc = -errno;

		a->tmp_dir[0] = '\0';
		errf(err, errlen, "mkdtemp: %s", strerror(-rc));
		return rc;
	}
	snprintf(a->data_dir, sizeof(a->data_dir), "%s/data", a->tmp_dir);
	snprintf(a->log_path, sizeof(a->log_path), "%s/agent.log", a->tmp_dir);
	a->http_port = p[0];
	a->dns_port = p[1];
	a->server_port = p[2];
	a->serf_lan_port = p[3];
	a->serf_wan_port = p[4];
	return 0;
}

/* Appends the argument s to a: literals are borrowed; with copy, s is
 * copied into a->arg_buf first. Returns 0 or -E2BIG. */
static int add_arg(struct agent *a, const char *s, bool copy)
{
	if (a->n_extra >= HARNESS_MAX_EXTRA)
		return -E2BIG;
	if (copy) {
		size_t len = strlen(s) + 1;

		if (len > sizeof(a->arg_buf) - a->arg_used)
			return -E2BIG;
		memcpy(a->arg_buf + a->arg_used, s, len);
		s = a->arg_buf + a->arg_used;
		a->arg_used += len;
	}
	a->extra[a->n_extra++] = s;
	return 0;
}

/* Composes server i's arguments (see harness_cluster_start). */
static int cluster_args(struct agent *ags, size_t n, size_t i, const struct harness_cluster_opts *o,
			char *err, size_t errlen)
{
	struct agent *a = &ags[i];
	char s[320];
	int rc;

	snprintf(s, sizeof(s), "%zu", n);
	rc = add_arg(a, "-bootstrap-expect", false);
	if (rc == 0)
		rc = add_arg(a, s, true);
	if (rc == 0 && o->config_json) {
		FILE *f;

		snprintf(s, sizeof(s), "%s/cluster.json", a->tmp_dir);
		f = fopen(s, "w");
		if (!f || fputs(o->config_json, f) < 0 || fclose(f) != 0) {
			rc = -errno;
			errf(err, errlen, "writing %s: %s", s, strerror(-rc));
			return rc;
		}
		rc = add_arg(a, "-config-file", false);
		if (rc == 0)
			rc = add_arg(a, s, true);
	}
	for (size_t k = 0; rc == 0 && o->extra_args && o->extra_args[k]; k++)
		rc = add_arg(a, o->extra_args[k], false);
	if (o->join == HARNESS_JOIN_GOSSIP && i > 0) {
		snprintf(s, sizeof(s), "127.0.0.1:%d", ags[0].serf_lan_port);
		if (rc == 0)
			rc = add_arg(a, "-retry-join", false);
		if (rc == 0)
			rc = add_arg(a, s, true);
	}
	for (size_t k = 0; o->join == HARNESS_JOIN_RAFT && rc == 0 && k < n; k++) {
		snprintf(s, sizeof(s), "127.0.0.1:%d", ags[k].server_port);
		rc = add_arg(a, "-retry-join", false);
		if (rc == 0)
			rc = add_arg(a, s, true);
	}
	if (rc < 0)
		errf(err, errlen, "%s: too many arguments for struct agent", a->name);
	return rc;
}

/* Leader address as a sees it ("" when none) into out. */
static void leader_seen(const struct agent *a, char *out, size_t outlen)
{
	struct http_resp r;

	out[0] = '\0';
	if (http_get(a, "/v1/status/leader", &r) == 0 && r.status == 200 && r.body_len > 2)
		snprintf(out, outlen, "%.*s", (int)r.body_len - 2, r.body + 1);
	http_resp_free(&r);
}

/* One look at the cluster: the index harness_cluster_leader wants, or -1. */
static int agreed_leader(const struct agent *ags, size_t n)
{
	char first[128] = "", l[128];

	for (size_t i = 0; i < n; i++) {
		if (ags[i].pid == 0)
			continue;
		leader_seen(&ags[i], l, sizeof(l));
		if (!l[0] || (first[0] && strcmp(first, l) != 0))
			return -1;
		snprintf(first, sizeof(first), "%s", l);
	}
	for (size_t i = 0; i < n; i++) {
		char want[64];

		snprintf(want, sizeof(want), "127.0.0.1:%d", ags[i].server_port);
		if (ags[i].pid != 0 && strcmp(want, first) == 0)
			return (int)i;
	}
	return -1;
}

int harness_cluster_leader(const struct agent *ags, size_t n, uint64_t timeout_ms, int not_this)
{
	uint64_t deadline = harness_now_ms() + timeout_ms;

	for (;;) {
		int l = agreed_leader(ags, n);

		if (l >= 0 && l != not_this)
			return l;
		if (harness_now_ms() >= deadline)
			break;
		harness_pause_ms(50);
	}
	for (size_t i = 0; timeout_ms > 0 && i < n; i++) {
		struct http_resp r;

		if (ags[i].pid == 0)
			continue;
		(void)http_get(&ags[i], "/v1/status/leader", &r);
		fprintf(stderr, "harness: %s (pid %d) says leader %ld %s\n", ags[i].name,
			(int)ags[i].pid, r.status, r.body ? r.body : r.err);
		http_resp_free(&r);
	}
	return -1;
}

/* Members server i lists on /v1/agent/members (0 when it does not answer). */
static size_t members_of(const struct agent *a)
{
	struct http_resp r;
	json_t *j = NULL;
	size_t n = 0;

	if (http_get(a, "/v1/agent/members", &r) == 0 && r.status == 200)
		j = http_json(&r);
	http_resp_free(&r);
	if (json_is_array(j))
		n = json_array_size(j);
	json_decref(j);
	return n;
}

/* Servers 2..n join server 1's LAN pool; waits until all list n members. */
static int cluster_pool(struct agent *ags, size_t n, uint64_t timeout_ms, char *err, size_t errlen)
{
	uint64_t deadline;
	bool ok = false;

	for (size_t i = 1; i < n; i++) {
		char path[128];
		struct http_resp r;

		snprintf(path, sizeof(path), "/v1/agent/join/127.0.0.1:%d", ags[0].serf_lan_port);
		ok = http_put(&ags[i], path, NULL, &r) == 0 && r.status == 200;
		http_resp_free(&r);
		if (!ok) {
			errf(err, errlen, "%s could not join the LAN pool", ags[i].name);
			return -EIO;
		}
	}
	deadline = harness_now_ms() + timeout_ms;
	for (;;) {
		ok = true;
		for (size_t i = 0; ok && i < n; i++)
			ok = members_of(&ags[i]) == n;
		if (ok)
			return 0;
		if (harness_now_ms() >= deadline) {
			errf(err, errlen, "the LAN pool did not converge within %llu ms",
			     (unsigned long long)timeout_ms);
			return -ETIMEDOUT;
		}
		harness_pause_ms(100);
	}
}

int harness_cluster_start(struct agent *out, size_t n, const struct harness_cluster_opts *o,
			  char *err, size_t errlen)
{
	static const struct harness_cluster_opts defaults;
	uint64_t timeout_ms;
	int rc = 0;

	if (!o)
		o = &defaults;
	timeout_ms = o->timeout_ms ? o->timeout_ms : 60000;
	memset(out, 0, n * sizeof(*out));
	for (size_t i = 0; i < n && rc == 0; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%.40s%zu", o->name_prefix ? o->name_prefix : "node",
			 i + 1);
		rc = harness_agent_prepare(&out[i], name, err, errlen);
	}
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = cluster_args(out, n, i, o, err, errlen);
	/* Spawn all without waiting: no leader exists before they all run. */
	for (size_t i = 0; i < n && rc == 0; i++) {
		char ignored[256];

		(void)harness_agent_relaunch(&out[i], 0, ignored, sizeof(ignored));
	}
	if (rc == 0 && harness_cluster_leader(out, n, timeout_ms, -1) < 0) {
		errf(err, errlen, "no agreed leader within %llu ms",
		     (unsigned long long)timeout_ms);
		rc = -ETIMEDOUT;
	}
	if (rc == 0 && o->join_lan_pool)
		rc = cluster_pool(out, n, timeout_ms, err, errlen);
	if (rc < 0)
		for (size_t i = 0; i < n; i++)
			if (out[i].tmp_dir[0])
				harness_dump_log(&out[i], 3000);
	return rc;
}

void harness_cluster_stop(struct agent *ags, size_t n)
{
	for (size_t i = 0; i < n; i++)
		harness_agent_stop(&ags[i]);
}
