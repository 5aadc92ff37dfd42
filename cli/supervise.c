/* Pure policy of `cairn agent`'s supervision (see supervise.h). */
#include "supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

size_t supervise_roles(bool server, const char *out[SUPERVISE_MAX_ROLES])
{
	size_t n = 0;

	if (server)
		out[n++] = "raftd";
	out[n++] = "gossipd";
	out[n++] = "apid";
	out[n++] = "dnsd";
	return n;
}

static int fmt(char *out, size_t outlen, const char *f1, int dlen, const char *d, const char *f2,
	       const char *role)
{
	int n = snprintf(out, outlen, "%s%.*s%scairn-%s", f1, dlen, d, f2, role);

	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int supervise_daemon_path(const char *role, const char *exe, const char *libexec_dir,
			  supervise_exists_fn exists, void *ctx, char *out, size_t outlen)
{
	const char *slash;
	int dlen, rc;

	if (libexec_dir && *libexec_dir) {
		size_t l = strlen(libexec_dir);

		while (l > 1 && libexec_dir[l - 1] == '/')
			l--;
		return fmt(out, outlen, "", (int)l, libexec_dir, "/", role);
	}
	slash = exe ? strrchr(exe, '/') : NULL;
	if (!slash)
		return -EINVAL;
	dlen = (int)(slash - exe);
	/* Build tree: build/cli/cairn next to build/<role>/cairn-<role>. */
	{
		char sub[64];
		int n = snprintf(sub, sizeof(sub), "/../%s/", role);

		if (n < 0 || (size_t)n >= sizeof(sub))
			return -ENAMETOOLONG;
		rc = fmt(out, outlen, "", dlen, exe, sub, role);
		if (rc < 0)
			return rc;
		if (exists && exists(out, ctx))
			return 0;
	}
	/* Installed: daemons in sbindir (/usr/sbin) beside bindir (/usr/bin). */
	rc = fmt(out, outlen, "", dlen, exe, "/../sbin/", role);
	if (rc < 0)
		return rc;
	if (exists && exists(out, ctx))
		return 0;
	/* Installed side by side: /opt/cairn/cairn next to /opt/cairn/cairn-<role>. */
	return fmt(out, outlen, "", dlen, exe, "/", role);
}

char **supervise_child_argv(const char *path, int nargs, char *const *args, const char *data_dir)
{
	static const char flag[] = "-data-dir=";
	size_t n = (size_t)nargs + 3; /* path, -data-dir, NULL */
	size_t extra = data_dir ? sizeof(flag) + strlen(data_dir) : 0;
	char **argv = malloc(n * sizeof(*argv) + extra);
	size_t i = 0;

	if (!argv)
		return NULL;
	argv[i++] = (char *)path;
	for (int k = 0; k < nargs; k++)
		argv[i++] = args[k];
	if (data_dir) {
		char *s = (char *)(argv + n);

		memcpy(s, flag, sizeof(flag) - 1);
		memcpy(s + sizeof(flag) - 1, data_dir, strlen(data_dir) + 1);
		argv[i++] = s;
	}
	argv[i] = NULL;
	return argv;
}

bool supervise_should_restart(int wait_status)
{
	(void)wait_status; /* every end counts: see supervise.h */
	return true;
}

uint64_t supervise_backoff_next(uint64_t cur_ms, uint64_t ran_ms)
{
	if (cur_ms == 0 || ran_ms >= SUPERVISE_STABLE_MS)
		return SUPERVISE_BACKOFF_MIN_MS;
	if (cur_ms >= SUPERVISE_BACKOFF_MAX_MS / 2)
		return SUPERVISE_BACKOFF_MAX_MS;
	return cur_ms * 2;
}

const char *supervise_describe_status(int wait_status, char *buf, size_t len)
{
	if (WIFEXITED(wait_status)) {
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(wait_status));
	} else if (WIFSIGNALED(wait_status)) {
		int sig = WTERMSIG(wait_status);
		const char *abbrev = sigabbrev_np(sig);

		snprintf(buf, len, "killed by signal %d (SIG%s)%s", sig, abbrev ? abbrev : "?",
			 WCOREDUMP(wait_status) ? ", core dumped" : "");
	} else {
		snprintf(buf, len, "ended with wait status 0x%x", (unsigned)wait_status);
	}
	return buf;
}
