/* Pure policy of `cairn agent`'s process supervision: which daemons run,
 * where their binaries are, what arguments they get, when a dead one
 * restarts. No I/O: the agent (agent.c) does the forking and waiting. */
#ifndef CAIRN_CLI_SUPERVISE_H
#define CAIRN_CLI_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SUPERVISE_MAX_ROLES 4

/* First restart delay, the cap it doubles up to, and how long a daemon
 * must have run for its back-off to start again from the first delay. */
#define SUPERVISE_BACKOFF_MIN_MS 100u
#define SUPERVISE_BACKOFF_MAX_MS 5000u
#define SUPERVISE_STABLE_MS 10000u

/* Fills out[] with the roles to run, in start order: raftd first (only
 * when server), then gossipd, apid, dnsd. Returns how many (3 or 4). The
 * strings are static. */
size_t supervise_roles(bool server, const char *out[SUPERVISE_MAX_ROLES]);

/* Tells whether path names an executable file; ctx is the caller's. */
typedef bool (*supervise_exists_fn)(const char *path, void *ctx);

/* Finds the binary of a role ("raftd"): <libexec_dir>/cairn-<role> when
 * libexec_dir (env CAIRN_LIBEXEC_DIR) is set and non-empty; else the
 * build-tree layout <dir of exe>/../<role>/cairn-<role> when exists() says
 * so; else the installed layout <dir of exe>/../sbin/cairn-<role> (meson
 * installs the daemons in sbindir, cairn in bindir) when exists() says so;
 * else <dir of exe>/cairn-<role> (all in one directory). exe is the
 * absolute path of the cairn binary (/proc/self/exe). Writes the path into
 * out. Returns 0, -EINVAL when exe has no directory, -ENAMETOOLONG. */
int supervise_daemon_path(const char *role, const char *exe, const char *libexec_dir,
			  supervise_exists_fn exists, void *ctx, char *out, size_t outlen);

/* Builds a daemon's argv: { path, args[0..nargs), "-data-dir=<data_dir>"
 * (only when data_dir is non-NULL), NULL }. The array is malloc'd (caller
 * frees it with free()); the strings in it are borrowed except the
 * -data-dir one, which lives in the same allocation. Returns NULL when out
 * of memory. */
char **supervise_child_argv(const char *path, int nargs, char *const *args, const char *data_dir);

/* Whether a daemon that ended with this waitpid() status is started again
 * while the agent runs. The agent restarts on any end (a daemon of a
 * running agent never stops on its own, and tests stop daemons with
 * SIGTERM as well as SIGKILL to see them come back). */
bool supervise_should_restart(int wait_status);

/* Next restart delay: SUPERVISE_BACKOFF_MIN_MS when the daemon ran at least
 * SUPERVISE_STABLE_MS or cur_ms is 0, else cur_ms doubled up to
 * SUPERVISE_BACKOFF_MAX_MS. */
uint64_t supervise_backoff_next(uint64_t cur_ms, uint64_t ran_ms);

/* Describes a waitpid() status: "exited with status 1", "killed by signal
 * 9 (SIGKILL)". Writes into buf; returns buf. */
const char *supervise_describe_status(int wait_status, char *buf, size_t len);

#endif
