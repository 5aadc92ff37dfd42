/* A stand-in for the four daemons in the agent supervision test: records
 * its pid and arguments in $FAKE_DIR/<argv[0] basename>.pid, says READY=1
 * like the real ones, and exits 0 on SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

int main(int argc, char **argv)
{
	const char *dir = getenv("FAKE_DIR");
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	char path[512], tmp[520];
	struct sigaction sa = {.sa_handler = on_term};
	sigset_t block, old;
	FILE *f;

	if (!dir)
		return 2;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGTERM, &sa, NULL);
	snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return 2;
	fprintf(f, "%ld", (long)getpid());
	for (int i = 1; i < argc; i++)
		fprintf(f, " %s", argv[i]);
	fprintf(f, "\n");
	fclose(f);
	rename(tmp, path); /* atomic: readers never see half a file */
	sd_notify(0, "READY=1");
	while (!stop)
		sigsuspend(&old);
	return 0;
}
