/* What every daemon's main does the same way: readiness for systemd. */
#ifndef CAIRN_DAEMON_H
#define CAIRN_DAEMON_H

/* Tells systemd (Type=notify) the daemon serves; a no-op outside systemd. */
void daemon_notify_ready(void);
/* Tells systemd the daemon is stopping. */
void daemon_notify_stopping(void);

#endif
