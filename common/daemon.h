/* What every daemon's main does the same way: configuration and logging,
 * the event loop and ZeroMQ context, readiness for systemd. These are
 * "logging" functions: they report failures themselves, so main only
 * decides the exit status. */
#ifndef CAIRN_DAEMON_H
#define CAIRN_DAEMON_H

struct config;
struct loop;

/* Logs as prog, loads the configuration from argv (common/config.h) and
 * applies its log_level. Returns 0, or CAIRN_E_CONFIG (or -ENOMEM) after
 * logging why; *out is then untouched. */
int daemon_config(const char *prog, int argc, char **argv, struct config *out);

/* Creates the event loop (stopping on SIGINT/SIGTERM) and the ZeroMQ
 * context. Returns 0 with both set, or a negative code after logging why;
 * whatever was created is then in *out_loop / *out_zctx for the caller's
 * cleanup. */
int daemon_loop(struct loop **out_loop, void **out_zctx);

/* Tells systemd (Type=notify) the daemon serves; a no-op outside systemd. */
void daemon_notify_ready(void);
/* Tells systemd the daemon is stopping. */
void daemon_notify_stopping(void);

#endif
