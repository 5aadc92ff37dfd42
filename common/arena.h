/* Bump allocator for per-request memory, released all at once.
 *
 * Decoded messages, parsed queries and response scratch live in an arena
 * that the request's owner resets when the request ends (Knot's per-query
 * pool, NSD's regions). */
#ifndef CAIRN_ARENA_H
#define CAIRN_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head; /* newest chunk; older ones follow */
	size_t chunk_size;        /* default size of a new chunk, bytes */
	size_t used;              /* bytes handed out since the last reset */
};

/* Caller-provided storage; chunk_size 0 picks 4 KiB. */
void arena_init(struct arena *a, size_t chunk_size);
/* Frees every chunk. */
void arena_close(struct arena *a);
/* Forgets every allocation but keeps the first chunk for reuse. */
void arena_reset(struct arena *a);

/* Returns n bytes aligned to 16, or NULL when out of memory. Valid until
 * the next reset or close. */
void *arena_alloc(struct arena *a, size_t n);
/* Zeroed variant. */
void *arena_zalloc(struct arena *a, size_t n);
/* Copies len bytes and appends a NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t len);
char *arena_strdup(struct arena *a, const char *s);
/* printf into the arena. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
