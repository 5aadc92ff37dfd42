/* One single-threaded event loop per daemon, over zmq_poll (after Redis ae).
 *
 * Watches ZeroMQ sockets and plain file descriptors in one poll set, runs
 * timers, and calls the before-sleep hooks once per iteration so callers can
 * batch expensive work (one LMDB commit for everything that arrived).
 *
 * ZeroMQ sockets are level-triggered here: a callback that leaves messages
 * queued is called again on the next iteration, so callbacks should read a
 * bounded batch and return. A callback may add or remove any watch or timer,
 * including its own; removed entries are never called again. */
#ifndef CAIRN_LOOP_H
#define CAIRN_LOOP_H

#include <stdint.h>

struct loop;

#define LOOP_READ (1u << 0)
#define LOOP_WRITE (1u << 1)
#define LOOP_ERROR (1u << 2)

/* Stop value for a timer callback. */
#define LOOP_TIMER_STOP (-1)

/* events: the LOOP_* bits that are ready. */
typedef void (*loop_io_fn)(struct loop *l, void *ctx, unsigned events);
/* Returns the delay until the next call in ms, or LOOP_TIMER_STOP. */
typedef int64_t (*loop_timer_fn)(struct loop *l, void *ctx);
typedef void (*loop_hook_fn)(struct loop *l, void *ctx);

/* Returns NULL when out of memory. */
struct loop *loop_new(void);
/* Does not close watched sockets or fds. loop_free(NULL) does nothing. */
void loop_free(struct loop *l);

/* Watches a ZeroMQ socket (zsock) or a file descriptor (fd, with zsock
 * NULL) for the given LOOP_READ/LOOP_WRITE bits. One watch per socket or
 * fd; adding again replaces callback and events. Returns 0 or -ENOMEM. */
int loop_watch_zsock(struct loop *l, void *zsock, unsigned events, loop_io_fn fn, void *ctx);
int loop_watch_fd(struct loop *l, int fd, unsigned events, loop_io_fn fn, void *ctx);
/* Changes the events of an existing watch; -ENOENT if none. */
int loop_update_zsock(struct loop *l, void *zsock, unsigned events);
int loop_update_fd(struct loop *l, int fd, unsigned events);
/* Removes a watch; doing nothing when there is none. */
void loop_unwatch_zsock(struct loop *l, void *zsock);
void loop_unwatch_fd(struct loop *l, int fd);

/* Calls fn after delay_ms, then again after whatever it returns. Returns a
 * timer id (never 0), or 0 when out of memory. */
uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_fn fn, void *ctx);
/* Cancels a timer; unknown or already-finished ids are ignored. */
void loop_timer_del(struct loop *l, uint64_t id);

/* Adds a hook run once per iteration, just before the loop polls. Hooks run
 * in the order added. Returns 0 or -ENOMEM. */
int loop_add_before_sleep(struct loop *l, loop_hook_fn fn, void *ctx);

/* Removes a hook added with the same fn and ctx; nothing if none. */
void loop_del_before_sleep(struct loop *l, loop_hook_fn fn, void *ctx);

/* From a before-sleep hook or callback: poll at most this long in the
 * current iteration (libmicrohttpd's MHD_get_timeout, say). */
void loop_cap_timeout(struct loop *l, uint64_t timeout_ms);

/* Stops loop_run on SIGINT and SIGTERM (through a signalfd), and ignores
 * SIGPIPE. This blocks SIGINT and SIGTERM in the calling process: a child
 * forked afterwards must unblock them (sigprocmask) before exec. Returns 0
 * or -errno. */
int loop_handle_signals(struct loop *l);

/* Runs until loop_stop() or a stop signal. Returns 0, or -errno if polling
 * failed for good. */
int loop_run(struct loop *l);
void loop_stop(struct loop *l);

/* The loop's idea of now (ms, monotonic), refreshed each iteration. */
uint64_t loop_now_ms(const struct loop *l);

#endif
