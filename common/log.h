/* Levelled logging to stderr (journald picks it up under systemd).
 *
 * Log once, where the decision is made: modules return codes, the daemon's
 * boundary (main.c, a loop callback, an HTTP handler) logs. */
#ifndef CAIRN_LOG_H
#define CAIRN_LOG_H

enum log_level {
	LOGL_ERROR = 0,
	LOGL_WARN = 1,
	LOGL_INFO = 2,
	LOGL_DEBUG = 3,
};

/* Sets the program name shown on every line and the most verbose level
 * printed. May be called again (after config load). */
void log_init(const char *prog, enum log_level level);

/* Parses "err"/"error", "warn", "info", "debug", "trace" (case-insensitive).
 * Returns the level, or -EINVAL. */
int log_level_parse(const char *s);

/* True when lines of this level are printed: guards costly debug output. */
int log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
