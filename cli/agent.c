/* `cairn agent`: a supervisor of the four daemons (see agent.h).
 *
 * One poll() over a signalfd (SIGCHLD, SIGINT, SIGTERM) and a datagram
 * socket the children's sd_notify("READY=1") reaches (NOTIFY_SOCKET is set
 * for them), with the poll time-out at the nearest pending restart, start
 * or kill deadline: no busy waiting. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "daemon.h"
#include "err.h"
#include "log.h"
#include "supervise.h"

extern char **environ;

/* How long the other daemons wait for raftd's READY=1 before starting
 * anyway, and how long stopping daemons get before SIGKILL. */
#define AGENT_READY_WAIT_MS 5000u
#define AGENT_STOP_GRACE_MS 10000u

struct child {
	const char *role;    /* "raftd" */
	char path[PATH_MAX]; /* binary */
	char **argv;	     /* from supervise_child_argv */
	pid_t pid;	     /* 0 when not running */
	bool held;	     /* not started yet: waiting for the one before */
	bool ready;	     /* sent READY=1 since its last start */
	uint64_t started_ms; /* when last started */
	uint64_t backoff_ms; /* current restart delay */
	uint64_t restart_ms; /* when to start again; 0 = not scheduled */
	unsigned restarts;   /* how many times restarted */
	bool term_sent;	     /* asked to stop (agent stopping) */
};

struct agent {
	struct config cfg;
	char data_dir_tmp[PATH_MAX]; /* non-empty when we made a temp dir */
	struct child kids[SUPERVISE_MAX_ROLES];
	size_t nkids;
	char **envp;	      /* environ with our NOTIFY_SOCKET */
	char notify_env[128]; /* "NOTIFY_SOCKET=@..." */
	int sfd;	      /* signalfd */
	int nfd;	      /* notify socket */
	bool stopping;
	bool announced;		/* "agent running" printed */
	uint64_t hold_until_ms; /* start held daemons by then */
	uint64_t kill_at_ms;	/* SIGKILL stragglers then (when stopping) */
};

static bool is_executable(const char *path, void *ctx)
{
	(void)ctx;
	return access(path, X_OK) == 0;
}

/* Resolves the directory part of path (build/cli/../raftd reads better as
 * build/raftd) but keeps the file name: a daemon may be a symlink whose
 * name matters. Leaves path alone when anything fails. */
static void tidy_path(char *path, size_t len)
{
	char dir[PATH_MAX], real[PATH_MAX];
	char *slash = strrchr(path, '/');
	int n;

	if (!slash || slash == path)
		return;
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (!realpath(dir, real))
		return;
	n = snprintf(dir, sizeof(dir), "%s%s", real, slash);
	if (n > 0 && (size_t)n < len)
		memcpy(path, dir, (size_t)n + 1);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0)
		log_warn("cannot remove %s: %s", path, strerror(errno));
	return 0;
}

static int make_temp_dir(char *out, size_t len)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	/* ipc socket paths (<data_dir>/run/<name>.sock) must stay under ~100
	 * bytes: fall back to /tmp when TMPDIR is long. */
	if (!tmp || !*tmp || strlen(tmp) > 40)
		tmp = "/tmp";
	n = snprintf(out, len, "%s/cairn-dev-XXXXXX", tmp);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	if (!mkdtemp(out))
		return -errno;
	return 0;
}

static int build_env(struct agent *a)
{
	size_t n = 0, k = 0;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char name[96];
	socklen_t salen;
	int one = 1;

	/* An abstract socket: no path to clean up, no length trouble. */
	snprintf(name, sizeof(name), "cairn-agent/%ld/%llx", (long)getpid(),
		 (unsigned long long)clock_wall_ms());
	memcpy(sa.sun_path + 1, name, strlen(name));
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
	a->nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (a->nfd < 0)
		return -errno;
	if (setsockopt(a->nfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(a->nfd, (struct sockaddr *)&sa, salen) < 0)
		return -errno;
	snprintf(a->notify_env, sizeof(a->notify_env), "NOTIFY_SOCKET=@%s", name);

	while (environ[n])
		n++;
	a->envp = calloc(n + 2, sizeof(*a->envp));
	if (!a->envp)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) != 0)
			a->envp[k++] = environ[i];
	a->envp[k++] = a->notify_env;
	a->envp[k] = NULL;
	return 0;
}

static void child_start(struct agent *a, struct child *c, uint64_t now)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid < 0) {
		log_error("cannot fork for cairn-%s: %s", c->role, strerror(errno));
		c->backoff_ms = supervise_backoff_next(c->backoff_ms, 0);
		c->restart_ms = now + c->backoff_ms;
		return;
	}
	if (pid == 0) {
		sigset_t none;
		int devnull;

		/* Our own process group: Ctrl-C reaches only the agent, which
		 * then stops the daemons in order. They die with the agent. */
		(void)setpgid(0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0 && devnull != STDIN_FILENO) {
			(void)dup2(devnull, STDIN_FILENO);
			close(devnull);
		}
		execve(c->path, c->argv, a->envp);
		fprintf(stderr, "cairn agent: cannot run %s: %s\n", c->path, strerror(errno));
		_exit(127);
	}
	c->pid = pid;
	c->held = false;
	c->ready = false;
	c->term_sent = false;
	c->started_ms = now;
	c->restart_ms = 0;
	log_debug("started cairn-%s (pid %ld)", c->role, (long)pid);
}

static struct child *child_by_pid(struct agent *a, pid_t pid)
{
	for (size_t i = 0; i < a->nkids; i++)
		if (a->kids[i].pid == pid)
			return &a->kids[i];
	return NULL;
}

/* Daemons start one after another, each once the one before it is ready
 * (raftd, then gossipd, then apid and dnsd, which ask the first two): a
 * client never sees apid answer before gossipd can. Starts the next held
 * daemon and arms the wait for it. */
static void start_held(struct agent *a, uint64_t now)
{
	for (size_t i = 0; i < a->nkids; i++) {
		if (!a->kids[i].held)
			continue;
		child_start(a, &a->kids[i], now);
		a->hold_until_ms = now + AGENT_READY_WAIT_MS;
		return;
	}
	a->hold_until_ms = 0;
}

static void stop_all(struct agent *a, int sig, uint64_t now);

static void reap(struct agent *a, uint64_t now)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);
		struct child *c;
		char why[96];

		if (pid <= 0)
			return;
		c = child_by_pid(a, pid);
		if (!c)
			continue;
		c->pid = 0;
		c->ready = false;
		supervise_describe_status(status, why, sizeof(why));
		if (a->stopping) {
			log_info("cairn-%s stopped (%s)", c->role, why);
			stop_all(a, SIGTERM, now); /* raftd's turn once it is alone */
			continue;
		}
		if (!supervise_should_restart(status)) {
			log_warn("cairn-%s %s; not restarting", c->role, why);
			continue;
		}
		c->backoff_ms = supervise_backoff_next(c->backoff_ms, now - c->started_ms);
		c->restart_ms = now + c->backoff_ms;
		log_warn("cairn-%s (pid %ld) %s; restarting in %llu ms", c->role, (long)pid, why,
			 (unsigned long long)c->backoff_ms);
		/* Waiting for a daemon that died: start the next one now. */
		if (a->hold_until_ms)
			start_held(a, now);
	}
}

/* Stops the daemons: with SIGTERM, raftd (which the others talk to) only
 * once the others are gone, so that in-flight requests can finish; with
 * SIGKILL, everyone at once. Called again as daemons exit. */
static void stop_all(struct agent *a, int sig, uint64_t now)
{
	bool others = false;

	if (!a->stopping) {
		a->stopping = true;
		a->kill_at_ms = now + AGENT_STOP_GRACE_MS;
		log_info("stopping the daemons");
	}
	for (size_t i = 0; i < a->nkids; i++) {
		a->kids[i].restart_ms = 0;
		a->kids[i].held = false;
		if (a->kids[i].pid > 0 && strcmp(a->kids[i].role, "raftd") != 0)
			others = true;
	}
	for (size_t i = a->nkids; i-- > 0;) {
		struct child *c = &a->kids[i];

		if (c->pid <= 0 || (sig == SIGTERM && c->term_sent))
			continue;
		if (sig == SIGTERM && others && strcmp(c->role, "raftd") == 0)
			continue;
		(void)kill(c->pid, sig); /* ESRCH: already gone, reaped soon */
		c->term_sent = true;
	}
}

static size_t running(const struct agent *a)
{
	size_t n = 0;

	for (size_t i = 0; i < a->nkids; i++)
		n += a->kids[i].pid > 0;
	return n;
}

static void on_notify(struct agent *a, uint64_t now)
{
	for (;;) {
		char buf[4096];
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(struct ucred))];
		} ctl;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf) - 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf)};
		struct cmsghdr *cm;
		struct ucred cred = {0};
		struct child *c;
		ssize_t n = recvmsg(a->nfd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		if (n < 0)
			return;
		buf[n] = '\0';
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS)
				memcpy(&cred, CMSG_DATA(cm), sizeof(cred));
		c = cred.pid > 0 ? child_by_pid(a, cred.pid) : NULL;
		if (!c || c->ready)
			continue;
		if (strncmp(buf, "READY=1", 7) != 0 && !strstr(buf, "\nREADY=1"))
			continue;
		c->ready = true;
		log_info("cairn-%s ready (pid %ld)", c->role, (long)c->pid);
		if (a->hold_until_ms)
			start_held(a, now);
	}
}

static void maybe_announce(struct agent *a)
{
	if (a->announced || a->stopping)
		return;
	for (size_t i = 0; i < a->nkids; i++)
		if (!a->kids[i].ready)
			return;
	a->announced = true;
	fprintf(stderr, "==> Cairn agent running!\n");
	daemon_notify_ready();
}

static void print_banner(const struct agent *a)
{
	const struct config *c = &a->cfg;

	fprintf(stderr,
		"==> Starting Cairn agent...\n"
		"           Version: '%s'\n"
		"         Node name: '%s'\n"
		"        Datacenter: '%s'\n"
		"            Server: %s (Bootstrap: %s, Dev: %s)\n"
		"       Client Addr: [%s] (HTTP: %d, DNS: %d)\n"
		"      Cluster Addr: %s (LAN: %d, WAN: %d, RPC: %d)\n"
		"          Data Dir: %s%s\n",
		CAIRN_VERSION, c->node_name ? c->node_name : "", c->datacenter ? c->datacenter : "",
		c->server ? "true" : "false", c->bootstrap_expect > 0 ? "true" : "false",
		c->dev ? "true" : "false", c->client_addr ? c->client_addr : "", c->ports.http,
		c->ports.dns, c->advertise_addr ? c->advertise_addr : "", c->ports.serf_lan,
		c->ports.serf_wan, c->ports.server,
		a->data_dir_tmp[0] ? a->data_dir_tmp : (c->data_dir ? c->data_dir : ""),
		a->data_dir_tmp[0] ? " (temporary, removed on exit)" : "");
	fprintf(stderr, "    HTTP API: http://%s:%d   DNS: %s port %d\n",
		c->client_addr ? c->client_addr : "127.0.0.1", c->ports.http,
		c->client_addr ? c->client_addr : "127.0.0.1", c->ports.dns);
}

static int setup(struct agent *a, int argc, char **argv)
{
	char err[512] = "";
	char exe[PATH_MAX];
	const char *roles[SUPERVISE_MAX_ROLES];
	const char *libexec = getenv("CAIRN_LIBEXEC_DIR");
	ssize_t n;
	sigset_t mask;
	int rc, lvl;

	rc = config_load(argc, argv, &a->cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "cairn agent: %s\n", err[0] ? err : err_str(rc));
		return rc;
	}
	lvl = log_level_parse(a->cfg.log_level ? a->cfg.log_level : "info");
	log_init("cairn-agent", lvl < 0 ? LOGL_INFO : (enum log_level)lvl);

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n < 0) {
		rc = -errno;
		log_error("cannot read /proc/self/exe: %s", strerror(errno));
		return rc;
	}
	exe[n] = '\0';

	a->nkids = supervise_roles(a->cfg.server || a->cfg.dev, roles);
	for (size_t i = 0; i < a->nkids; i++) {
		struct child *c = &a->kids[i];

		c->role = roles[i];
		rc = supervise_daemon_path(c->role, exe, libexec, is_executable, NULL, c->path,
					   sizeof(c->path));
		if (rc < 0 || !is_executable(c->path, NULL)) {
			log_error("cannot find an executable cairn-%s (tried %s); build it or set "
				  "CAIRN_LIBEXEC_DIR",
				  c->role, rc < 0 ? "nothing" : c->path);
			return rc < 0 ? rc : -ENOENT;
		}
		tidy_path(c->path, sizeof(c->path));
	}

	if (a->cfg.dev && !a->cfg.data_dir) {
		rc = make_temp_dir(a->data_dir_tmp, sizeof(a->data_dir_tmp));
		if (rc < 0) {
			log_error("cannot create a temporary data directory: %s", strerror(-rc));
			a->data_dir_tmp[0] = '\0';
			return rc;
		}
	}
	for (size_t i = 0; i < a->nkids; i++) {
		struct child *c = &a->kids[i];

		c->argv = supervise_child_argv(c->path, argc - 1, argv + 1,
					       a->data_dir_tmp[0] ? a->data_dir_tmp : NULL);
		if (!c->argv)
			return -ENOMEM;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -errno;
	a->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (a->sfd < 0)
		return -errno;
	rc = build_env(a);
	if (rc < 0) {
		log_error("cannot create the readiness socket: %s", strerror(-rc));
		return rc;
	}
	return 0;
}

static void on_signals(struct agent *a, uint64_t now)
{
	struct signalfd_siginfo si;

	while (read(a->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap(a, now);
			break;
		case SIGINT:
		case SIGTERM:
			if (a->stopping) {
				log_warn("second signal: killing the daemons");
				stop_all(a, SIGKILL, now);
			} else {
				log_info("caught signal %s", sigabbrev_np((int)si.ssi_signo));
				stop_all(a, SIGTERM, now);
			}
			break;
		case SIGHUP:
			/* The daemons do not reload yet (SIGHUP would kill them),
			 * and a closed terminal should not stop the agent. */
			log_info("SIGHUP ignored: configuration reload is not supported yet");
			break;
		default:
			break;
		}
	}
	/* Deaths whose SIGCHLD merged into one already read. */
	reap(a, now);
}

/* Milliseconds to the nearest deadline, or -1 for none. */
static int next_timeout(const struct agent *a, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (a->stopping) {
		next = a->kill_at_ms;
	} else {
		if (a->hold_until_ms)
			next = a->hold_until_ms;
		for (size_t i = 0; i < a->nkids; i++)
			if (a->kids[i].restart_ms && a->kids[i].restart_ms < next)
				next = a->kids[i].restart_ms;
	}
	if (next == UINT64_MAX)
		return -1;
	if (next <= now)
		return 0;
	return next - now > INT_MAX ? INT_MAX : (int)(next - now);
}

static void on_deadlines(struct agent *a, uint64_t now)
{
	if (a->stopping) {
		if (now >= a->kill_at_ms && running(a) > 0) {
			log_warn("daemons still running after %u ms: sending SIGKILL",
				 AGENT_STOP_GRACE_MS);
			stop_all(a, SIGKILL, now);
			a->kill_at_ms = UINT64_MAX - 1; /* once */
		}
		return;
	}
	if (a->hold_until_ms && now >= a->hold_until_ms) {
		log_warn("a daemon was not ready after %u ms; starting the next anyway",
			 AGENT_READY_WAIT_MS);
		start_held(a, now);
	}
	for (size_t i = 0; i < a->nkids; i++) {
		struct child *c = &a->kids[i];

		if (c->restart_ms && now >= c->restart_ms) {
			c->restarts++;
			log_info("restarting cairn-%s (restart %u)", c->role, c->restarts);
			child_start(a, c, now);
		}
	}
}

static void teardown(struct agent *a)
{
	for (size_t i = 0; i < a->nkids; i++)
		free(a->kids[i].argv);
	free(a->envp);
	if (a->sfd >= 0)
		close(a->sfd);
	if (a->nfd >= 0)
		close(a->nfd);
	if (a->data_dir_tmp[0]) {
		if (nftw(a->data_dir_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
			log_warn("cannot remove %s: %s", a->data_dir_tmp, strerror(errno));
	}
	config_close(&a->cfg);
}

static const char agent_usage[] =
    "Usage: cairn agent [options]\n\n"
    "Starts cairn-raftd (servers), cairn-gossipd, cairn-apid and cairn-dnsd with\n"
    "these options, restarts any that dies, and stops them on SIGINT/SIGTERM.\n\n"
    "  -dev                   single in-memory-ish server on loopback, temp data dir\n"
    "  -server                run as a server (runs cairn-raftd); without it, a client\n"
    "                         agent that sends its state requests to a server it\n"
    "                         finds through the pool it joins (-join/-retry-join)\n"
    "  -bootstrap-expect=N    servers expected in the datacenter\n"
    "  -data-dir=PATH         where state lives (required unless -dev)\n"
    "  -config-file=FILE      JSON configuration file (repeatable)\n"
    "  -config-dir=DIR        directory of *.json configuration files\n"
    "  -node=NAME -datacenter=DC -log-level=info\n"
    "  -bind=ADDR -advertise=ADDR -client=ADDR\n"
    "  -http-port=8500 -dns-port=8600 -server-port=8300\n"
    "  -serf-lan-port=8301 -serf-wan-port=8302\n"
    "  -join=ADDR -retry-join=ADDR (repeatable)\n\n"
    "Daemons are looked up in $CAIRN_LIBEXEC_DIR, else next to this binary.\n";

int agent_main(int argc, char **argv)
{
	struct agent a = {.sfd = -1, .nfd = -1};
	uint64_t now;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "-help") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			fputs(agent_usage, stdout);
			return 0;
		}
	}
	log_init("cairn-agent", LOGL_INFO);
	rc = setup(&a, argc, argv);
	if (rc < 0) {
		teardown(&a);
		return 1;
	}
	print_banner(&a);

	now = clock_now_ms();
	for (size_t i = 0; i < a.nkids; i++) {
		struct child *c = &a.kids[i];

		if (i > 0)
			c->held = true; /* until the one before it is ready */
		else
			child_start(&a, c, now);
	}
	if (a.nkids > 1)
		a.hold_until_ms = now + AGENT_READY_WAIT_MS;

	while (!a.stopping || running(&a) > 0) {
		struct pollfd pfd[2] = {{.fd = a.sfd, .events = POLLIN},
					{.fd = a.nfd, .events = POLLIN}};
		int n = poll(pfd, 2, next_timeout(&a, clock_now_ms()));

		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			stop_all(&a, SIGKILL, clock_now_ms());
			break;
		}
		now = clock_now_ms();
		if (n > 0 && (pfd[1].revents & POLLIN))
			on_notify(&a, now);
		if (n > 0 && (pfd[0].revents & POLLIN))
			on_signals(&a, now);
		on_deadlines(&a, now);
		maybe_announce(&a);
	}
	/* After a poll failure: wait for the SIGKILLed ones. */
	while (running(&a) > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		struct child *c;

		if (pid < 0)
			break;
		c = child_by_pid(&a, pid);
		if (c)
			c->pid = 0;
	}
	log_info("agent stopped");
	teardown(&a);
	return 0;
}
