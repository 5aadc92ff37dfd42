/* Levelled logging to stderr. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

#include "log.h"

static const char *log_prog = "cairn";
static enum log_level log_max = LOGL_INFO;

void log_init(const char *prog, enum log_level level)
{
	if (prog)
		log_prog = prog;
	log_max = level;
}

int log_level_parse(const char *s)
{
	if (!s)
		return -EINVAL;
	if (!strcasecmp(s, "err") || !strcasecmp(s, "error"))
		return LOGL_ERROR;
	if (!strcasecmp(s, "warn") || !strcasecmp(s, "warning"))
		return LOGL_WARN;
	if (!strcasecmp(s, "info"))
		return LOGL_INFO;
	if (!strcasecmp(s, "debug") || !strcasecmp(s, "trace"))
		return LOGL_DEBUG;
	return -EINVAL;
}

int log_enabled(enum log_level level)
{
	return level <= log_max;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_max)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ [%s] %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, names[level], log_prog);
	if (n < 0)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One fprintf per line so lines from one process never interleave. */
	fprintf(stderr, "%s\n", line);
}
