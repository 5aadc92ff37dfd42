/* systemd readiness notification. */
#include <systemd/sd-daemon.h>

#include "daemon.h"

void daemon_notify_ready(void)
{
	/* Outside systemd NOTIFY_SOCKET is unset and this returns 0: fine. */
	(void)sd_notify(0, "READY=1");
}

void daemon_notify_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1");
}
