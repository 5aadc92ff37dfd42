/* The event loop: zmq_poll over sockets and fds, a timer heap, hooks.
 *
 * Watches live in an array that is turned into a zmq_pollitem_t array
 * whenever it changes. Removal during dispatch only marks the watch; the
 * array is compacted after dispatch, so indexes stay valid while callbacks
 * run. Timers live in a slot array (id = generation << 32 | slot, so a stale
 * id never cancels a newer timer) ordered by a binary min-heap of slots. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <zmq.h>

#include "clock.h"
#include "loop.h"

struct watch {
	void *zsock;    /* ZeroMQ socket, or NULL for a plain fd */
	int fd;         /* when zsock is NULL */
	unsigned events;
	loop_io_fn fn;
	void *ctx;
	bool removed;   /* unwatched during dispatch; compacted afterwards */
};

struct timer {
	uint32_t gen;      /* bumped when the slot is freed */
	uint32_t heap_pos; /* index in heap, or UINT32_MAX when not queued */
	bool active;       /* allocated */
	bool running;      /* callback in progress */
	bool cancelled;    /* deleted while running */
	uint64_t when_ms;
	loop_timer_fn fn;
	void *ctx;
	uint32_t next_free;
};

struct hook {
	loop_hook_fn fn;
	void *ctx;
};

struct loop {
	struct watch *watches;
	size_t n_watches, cap_watches;
	zmq_pollitem_t *items;
	size_t cap_items;
	bool dirty;        /* items must be rebuilt */
	bool dispatching;  /* removals must be deferred */

	struct timer *timers;
	uint32_t n_timer_slots, cap_timer_slots;
	uint32_t free_timer; /* head of free slot list, UINT32_MAX if none */
	uint32_t *heap;
	uint32_t n_heap, cap_heap;

	struct hook *hooks;
	size_t n_hooks, cap_hooks;

	int signal_fd;
	bool stop;
	int64_t cap_ms; /* -1: no cap this iteration */
	uint64_t now_ms;
};

#define NO_SLOT UINT32_MAX

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *p;

	if (need <= *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*arr, ncap * elem);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

struct loop *loop_new(void)
{
	struct loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	l->signal_fd = -1;
	l->free_timer = NO_SLOT;
	l->cap_ms = -1;
	l->now_ms = clock_now_ms();
	return l;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->signal_fd >= 0)
		close(l->signal_fd);
	free(l->watches);
	free(l->items);
	free(l->timers);
	free(l->heap);
	free(l->hooks);
	free(l);
}

/* ---- watches ------------------------------------------------------------- */

static struct watch *find_watch(struct loop *l, void *zsock, int fd)
{
	for (size_t i = 0; i < l->n_watches; i++) {
		struct watch *w = &l->watches[i];

		if (w->removed)
			continue;
		if (zsock ? w->zsock == zsock : (!w->zsock && w->fd == fd))
			return w;
	}
	return NULL;
}

static int add_watch(struct loop *l, void *zsock, int fd, unsigned events, loop_io_fn fn, void *ctx)
{
	struct watch *w = find_watch(l, zsock, fd);

	if (!w) {
		if (grow((void **)&l->watches, &l->cap_watches, l->n_watches + 1, sizeof(*w)) < 0)
			return -ENOMEM;
		w = &l->watches[l->n_watches++];
	}
	*w = (struct watch){.zsock = zsock, .fd = fd, .events = events, .fn = fn, .ctx = ctx};
	l->dirty = true;
	return 0;
}

int loop_watch_zsock(struct loop *l, void *zsock, unsigned events, loop_io_fn fn, void *ctx)
{
	return add_watch(l, zsock, -1, events, fn, ctx);
}

int loop_watch_fd(struct loop *l, int fd, unsigned events, loop_io_fn fn, void *ctx)
{
	return add_watch(l, NULL, fd, events, fn, ctx);
}

static int update_watch(struct loop *l, void *zsock, int fd, unsigned events)
{
	struct watch *w = find_watch(l, zsock, fd);

	if (!w)
		return -ENOENT;
	if (w->events != events) {
		w->events = events;
		l->dirty = true;
	}
	return 0;
}

int loop_update_zsock(struct loop *l, void *zsock, unsigned events)
{
	return update_watch(l, zsock, -1, events);
}

int loop_update_fd(struct loop *l, int fd, unsigned events)
{
	return update_watch(l, NULL, fd, events);
}

static void compact_watches(struct loop *l)
{
	size_t j = 0;

	for (size_t i = 0; i < l->n_watches; i++)
		if (!l->watches[i].removed)
			l->watches[j++] = l->watches[i];
	if (j != l->n_watches) {
		l->n_watches = j;
		l->dirty = true;
	}
}

static void remove_watch(struct loop *l, void *zsock, int fd)
{
	struct watch *w = find_watch(l, zsock, fd);

	if (!w)
		return;
	w->removed = true;
	l->dirty = true;
	if (!l->dispatching)
		compact_watches(l);
}

void loop_unwatch_zsock(struct loop *l, void *zsock)
{
	remove_watch(l, zsock, -1);
}

void loop_unwatch_fd(struct loop *l, int fd)
{
	remove_watch(l, NULL, fd);
}

/* ---- timers -------------------------------------------------------------- */

static bool heap_less(struct loop *l, uint32_t a, uint32_t b)
{
	return l->timers[l->heap[a]].when_ms < l->timers[l->heap[b]].when_ms;
}

static void heap_swap(struct loop *l, uint32_t a, uint32_t b)
{
	uint32_t t = l->heap[a];

	l->heap[a] = l->heap[b];
	l->heap[b] = t;
	l->timers[l->heap[a]].heap_pos = a;
	l->timers[l->heap[b]].heap_pos = b;
}

static void heap_up(struct loop *l, uint32_t i)
{
	while (i > 0 && heap_less(l, i, (i - 1) / 2)) {
		heap_swap(l, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_down(struct loop *l, uint32_t i)
{
	for (;;) {
		uint32_t m = i, c1 = 2 * i + 1, c2 = 2 * i + 2;

		if (c1 < l->n_heap && heap_less(l, c1, m))
			m = c1;
		if (c2 < l->n_heap && heap_less(l, c2, m))
			m = c2;
		if (m == i)
			return;
		heap_swap(l, i, m);
		i = m;
	}
}

static int heap_push(struct loop *l, uint32_t slot)
{
	size_t cap = l->cap_heap;

	if (grow((void **)&l->heap, &cap, (size_t)l->n_heap + 1, sizeof(*l->heap)) < 0)
		return -ENOMEM;
	l->cap_heap = (uint32_t)cap;
	l->heap[l->n_heap] = slot;
	l->timers[slot].heap_pos = l->n_heap;
	l->n_heap++;
	heap_up(l, l->n_heap - 1);
	return 0;
}

static void heap_remove(struct loop *l, uint32_t pos)
{
	uint32_t last = l->n_heap - 1;

	l->timers[l->heap[pos]].heap_pos = NO_SLOT;
	if (pos != last) {
		l->heap[pos] = l->heap[last];
		l->timers[l->heap[pos]].heap_pos = pos;
		l->n_heap--;
		heap_down(l, pos);
		heap_up(l, pos);
	} else {
		l->n_heap--;
	}
}

static void free_slot(struct loop *l, uint32_t slot)
{
	struct timer *t = &l->timers[slot];

	t->active = false;
	t->gen++;
	if (t->gen == 0)
		t->gen = 1;
	t->next_free = l->free_timer;
	l->free_timer = slot;
}

uint64_t loop_timer_add(struct loop *l, uint64_t delay_ms, loop_timer_fn fn, void *ctx)
{
	uint32_t slot;
	struct timer *t;

	if (l->free_timer != NO_SLOT) {
		slot = l->free_timer;
		l->free_timer = l->timers[slot].next_free;
	} else {
		size_t cap = l->cap_timer_slots;

		if (l->n_timer_slots == NO_SLOT - 1)
			return 0;
		if (grow((void **)&l->timers, &cap, (size_t)l->n_timer_slots + 1,
			 sizeof(*l->timers)) < 0)
			return 0;
		l->cap_timer_slots = (uint32_t)cap;
		slot = l->n_timer_slots++;
		l->timers[slot].gen = 1;
	}
	t = &l->timers[slot];
	t->active = true;
	t->running = false;
	t->cancelled = false;
	t->when_ms = clock_now_ms() + delay_ms;
	t->fn = fn;
	t->ctx = ctx;
	t->heap_pos = NO_SLOT;
	if (heap_push(l, slot) < 0) {
		free_slot(l, slot);
		return 0;
	}
	return ((uint64_t)t->gen << 32) | slot;
}

void loop_timer_del(struct loop *l, uint64_t id)
{
	uint32_t slot = (uint32_t)(id & 0xffffffffu), gen = (uint32_t)(id >> 32);
	struct timer *t;

	if (slot >= l->n_timer_slots)
		return;
	t = &l->timers[slot];
	if (!t->active || t->gen != gen)
		return;
	if (t->running) {
		t->cancelled = true;
		return;
	}
	if (t->heap_pos != NO_SLOT)
		heap_remove(l, t->heap_pos);
	free_slot(l, slot);
}

static void run_timers(struct loop *l)
{
	/* Bound the work per iteration: a timer that re-arms with delay 0
	 * must not starve I/O. */
	uint32_t budget = l->n_heap + 1;

	while (l->n_heap && budget--) {
		uint32_t slot = l->heap[0];
		struct timer *t = &l->timers[slot];
		int64_t next;

		if (t->when_ms > l->now_ms)
			break;
		heap_remove(l, 0);
		t->running = true;
		next = t->fn(l, t->ctx);
		t = &l->timers[slot]; /* the array may have moved */
		t->running = false;
		if (next < 0 || t->cancelled) {
			free_slot(l, slot);
			continue;
		}
		t->when_ms = l->now_ms + (uint64_t)next;
		if (heap_push(l, slot) < 0)
			free_slot(l, slot);
	}
}

/* ---- hooks, signals, run ----------------------------------------------------- */

int loop_add_before_sleep(struct loop *l, loop_hook_fn fn, void *ctx)
{
	if (grow((void **)&l->hooks, &l->cap_hooks, l->n_hooks + 1, sizeof(*l->hooks)) < 0)
		return -ENOMEM;
	l->hooks[l->n_hooks++] = (struct hook){fn, ctx};
	return 0;
}

void loop_del_before_sleep(struct loop *l, loop_hook_fn fn, void *ctx)
{
	for (size_t i = 0; i < l->n_hooks; i++) {
		if (l->hooks[i].fn == fn && l->hooks[i].ctx == ctx) {
			memmove(&l->hooks[i], &l->hooks[i + 1],
				(l->n_hooks - i - 1) * sizeof(*l->hooks));
			l->n_hooks--;
			return;
		}
	}
}

void loop_cap_timeout(struct loop *l, uint64_t timeout_ms)
{
	if (l->cap_ms < 0 || (uint64_t)l->cap_ms > timeout_ms)
		l->cap_ms = (int64_t)(timeout_ms > INT32_MAX ? INT32_MAX : timeout_ms);
}

static void on_signal(struct loop *l, void *ctx, unsigned events)
{
	struct signalfd_siginfo si;

	(void)ctx;
	(void)events;
	while (read(l->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		l->stop = true;
}

int loop_handle_signals(struct loop *l)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -errno;
	l->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (l->signal_fd < 0)
		return -errno;
	return loop_watch_fd(l, l->signal_fd, LOOP_READ, on_signal, NULL);
}

static int rebuild_items(struct loop *l)
{
	if (grow((void **)&l->items, &l->cap_items, l->n_watches ? l->n_watches : 1,
		 sizeof(*l->items)) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < l->n_watches; i++) {
		struct watch *w = &l->watches[i];
		zmq_pollitem_t *it = &l->items[i];

		it->socket = w->zsock;
		it->fd = w->zsock ? 0 : w->fd;
		it->events = (short)(((w->events & LOOP_READ) ? ZMQ_POLLIN : 0) |
				     ((w->events & LOOP_WRITE) ? ZMQ_POLLOUT : 0));
		it->revents = 0;
	}
	l->dirty = false;
	return 0;
}

int loop_run(struct loop *l)
{
	l->stop = false;
	while (!l->stop) {
		long timeout;
		size_t n;
		int rc;

		/* A hook may remove hooks: re-read the count every time. */
		for (size_t i = 0; i < l->n_hooks; i++)
			l->hooks[i].fn(l, l->hooks[i].ctx);
		if (l->stop)
			break;
		l->now_ms = clock_now_ms();
		timeout = -1;
		if (l->n_heap) {
			uint64_t when = l->timers[l->heap[0]].when_ms;

			timeout = when <= l->now_ms ? 0 : (long)(when - l->now_ms);
		}
		if (l->cap_ms >= 0 && (timeout < 0 || timeout > l->cap_ms))
			timeout = (long)l->cap_ms;
		l->cap_ms = -1;
		if (l->dirty && rebuild_items(l) < 0)
			return -ENOMEM;
		n = l->n_watches;
		rc = zmq_poll(l->items, (int)n, timeout);
		if (rc < 0) {
			if (zmq_errno() == EINTR)
				continue;
			return -zmq_errno();
		}
		l->now_ms = clock_now_ms();
		if (rc > 0) {
			l->dispatching = true;
			for (size_t i = 0; i < n && i < l->n_watches; i++) {
				short re = l->items[i].revents;
				unsigned ev = 0;
				struct watch *w = &l->watches[i];

				if (!re || w->removed)
					continue;
				if (re & ZMQ_POLLIN)
					ev |= LOOP_READ;
				if (re & ZMQ_POLLOUT)
					ev |= LOOP_WRITE;
				if (re & ZMQ_POLLERR)
					ev |= LOOP_ERROR | LOOP_READ;
				w->fn(l, w->ctx, ev);
			}
			l->dispatching = false;
			compact_watches(l);
		}
		run_timers(l);
	}
	return 0;
}

void loop_stop(struct loop *l)
{
	l->stop = true;
}

uint64_t loop_now_ms(const struct loop *l)
{
	return l->now_ms;
}
