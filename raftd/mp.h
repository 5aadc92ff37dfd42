/* Minimal msgpack reader and writer for raftd's durable records.
 *
 * raftd's log entries and state-table values are small msgpack arrays of
 * known shape. The reader is a sticky-error cursor (Knot's wire_ctx): after
 * the first malformed or truncated item every read returns a zero value and
 * does nothing, so a decoder checks `cur.err` once at the end. It never
 * allocates: strings and byte strings point into the buffer being read.
 * The writer appends to a growable heap buffer with a sticky -ENOMEM.
 *
 * Only what raftd stores is supported: nil, bool, unsigned integers,
 * str, bin, array and map headers. Anything else is an error. */
#ifndef CAIRN_RAFTD_MP_H
#define CAIRN_RAFTD_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mp_reader {
	const uint8_t *data; /* borrowed; must outlive every pointer read */
	size_t len;	     /* bytes in data */
	size_t pos;	     /* next byte to read */
	int err;	     /* 0, or -EINVAL after the first bad item */
};

/* Starts reading len bytes at data. */
void mp_reader_init(struct mp_reader *r, const void *data, size_t len);
/* Array header: element count. */
uint32_t mp_read_array(struct mp_reader *r);
/* Map header: pair count. */
uint32_t mp_read_map(struct mp_reader *r);
/* Unsigned integer (positive fixint, uint8..uint64). */
uint64_t mp_read_u64(struct mp_reader *r);
bool mp_read_bool(struct mp_reader *r);
/* True (and consumes it) when the next item is nil. */
bool mp_read_nil(struct mp_reader *r);
/* String; *out_len is its length. Points into the buffer (not
 * NUL-terminated). Nil is accepted as the empty string and returns NULL. */
const char *mp_read_str(struct mp_reader *r, size_t *out_len);
/* Byte string (bin or str accepted); NULL when empty. */
const uint8_t *mp_read_bin(struct mp_reader *r, size_t *out_len);
/* True when every byte was consumed without error. */
bool mp_reader_done(const struct mp_reader *r);

struct mp_writer {
	uint8_t *buf; /* malloc'd; the caller takes it (or frees it with mp_writer_close) */
	size_t len;   /* bytes written */
	size_t cap;   /* bytes allocated */
	int err;      /* 0, or -ENOMEM after the first failed growth */
};

void mp_writer_init(struct mp_writer *w);
/* Frees the buffer. */
void mp_writer_close(struct mp_writer *w);
/* Forgets the contents, keeps the allocation. */
void mp_writer_reset(struct mp_writer *w);
void mp_write_array(struct mp_writer *w, uint32_t n);
void mp_write_map(struct mp_writer *w, uint32_t n);
void mp_write_u64(struct mp_writer *w, uint64_t v);
void mp_write_bool(struct mp_writer *w, bool v);
void mp_write_nil(struct mp_writer *w);
/* Writes a str; s may be NULL only when len is 0. */
void mp_write_str(struct mp_writer *w, const char *s, size_t len);
/* Writes a str, or nil when s is NULL. */
void mp_write_cstr_or_nil(struct mp_writer *w, const char *s);
void mp_write_bin(struct mp_writer *w, const void *p, size_t len);
/* Appends len bytes verbatim (an already encoded value, or raw bytes when
 * the writer is used as a plain growable buffer). */
void mp_write_raw(struct mp_writer *w, const void *p, size_t len);

#endif
