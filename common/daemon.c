/* systemd readiness notification. */
#include <errno.h>

#include <systemd/sd-daemon.h>
#include <zmq.h>

#include "config.h"
#include "daemon.h"
#include "err.h"
#include "log.h"
#include "loop.h"

int daemon_config(const char *prog, int argc, char **argv, struct config *out)
{
	char err[512];
	int rc, level;

	log_init(prog, LOGL_INFO);
	rc = config_load(argc, argv, out, err, sizeof(err));
	if (rc < 0) {
		log_error("config: %s", err);
		return rc;
	}
	level = log_level_parse(out->log_level ? out->log_level : "info");
	if (level < 0)
		log_warn("config: unknown log_level '%s'; using info", out->log_level);
	log_init(prog, level < 0 ? LOGL_INFO : (enum log_level)level);
	return 0;
}

int daemon_loop(struct loop **out_loop, void **out_zctx)
{
	int rc;

	*out_loop = loop_new();
	*out_zctx = zmq_ctx_new();
	if (!*out_loop || !*out_zctx) {
		log_error("out of memory");
		return -ENOMEM;
	}
	rc = loop_handle_signals(*out_loop);
	if (rc < 0)
		log_error("signals: %s", err_str(rc));
	return rc;
}

void daemon_notify_ready(void)
{
	/* Outside systemd NOTIFY_SOCKET is unset and this returns 0: fine. */
	(void)sd_notify(0, "READY=1");
}

void daemon_notify_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1");
}
