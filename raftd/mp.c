/* Minimal msgpack reader and writer for raftd's durable records. */
#include "mp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mp_reader_init(struct mp_reader *r, const void *data, size_t len)
{
	r->data = data;
	r->len = len;
	r->pos = 0;
	r->err = 0;
}

static int need(struct mp_reader *r, size_t n)
{
	if (r->err)
		return 0;
	if (r->len - r->pos < n) {
		r->err = -EINVAL;
		return 0;
	}
	return 1;
}

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Reads n big-endian bytes; 0 on error. */
static uint64_t read_be(struct mp_reader *r, size_t n)
{
	if (!need(r, n))
		return 0;
	uint64_t v = be(r->data + r->pos, n);
	r->pos += n;
	return v;
}

static int peek(struct mp_reader *r)
{
	if (!need(r, 1))
		return -1;
	return r->data[r->pos];
}

static void fail(struct mp_reader *r)
{
	if (!r->err)
		r->err = -EINVAL;
}

uint32_t mp_read_array(struct mp_reader *r)
{
	int c = peek(r);
	if (c < 0)
		return 0;
	r->pos++;
	if ((c & 0xf0) == 0x90)
		return (uint32_t)(c & 0x0f);
	if (c == 0xdc)
		return (uint32_t)read_be(r, 2);
	if (c == 0xdd)
		return (uint32_t)read_be(r, 4);
	fail(r);
	return 0;
}

uint32_t mp_read_map(struct mp_reader *r)
{
	int c = peek(r);
	if (c < 0)
		return 0;
	r->pos++;
	if ((c & 0xf0) == 0x80)
		return (uint32_t)(c & 0x0f);
	if (c == 0xde)
		return (uint32_t)read_be(r, 2);
	if (c == 0xdf)
		return (uint32_t)read_be(r, 4);
	fail(r);
	return 0;
}

uint64_t mp_read_u64(struct mp_reader *r)
{
	int c = peek(r);
	if (c < 0)
		return 0;
	r->pos++;
	if (c <= 0x7f)
		return (uint64_t)c;
	switch (c) {
	case 0xcc:
		return read_be(r, 1);
	case 0xcd:
		return read_be(r, 2);
	case 0xce:
		return read_be(r, 4);
	case 0xcf:
		return read_be(r, 8);
	default:
		fail(r);
		return 0;
	}
}

bool mp_read_bool(struct mp_reader *r)
{
	int c = peek(r);
	if (c < 0)
		return false;
	r->pos++;
	if (c == 0xc2)
		return false;
	if (c == 0xc3)
		return true;
	fail(r);
	return false;
}

bool mp_read_nil(struct mp_reader *r)
{
	if (peek(r) == 0xc0) {
		r->pos++;
		return true;
	}
	return false;
}

/* Reads a str or bin header (per the flags) and returns a pointer to the
 * payload. */
static const uint8_t *read_raw(struct mp_reader *r, size_t *out_len, bool allow_str, bool allow_bin)
{
	size_t n;
	int c = peek(r);

	*out_len = 0;
	if (c < 0)
		return NULL;
	r->pos++;
	if (allow_str && (c & 0xe0) == 0xa0)
		n = (size_t)(c & 0x1f);
	else if (allow_str && c == 0xd9)
		n = (size_t)read_be(r, 1);
	else if (allow_str && c == 0xda)
		n = (size_t)read_be(r, 2);
	else if (allow_str && c == 0xdb)
		n = (size_t)read_be(r, 4);
	else if (allow_bin && c == 0xc4)
		n = (size_t)read_be(r, 1);
	else if (allow_bin && c == 0xc5)
		n = (size_t)read_be(r, 2);
	else if (allow_bin && c == 0xc6)
		n = (size_t)read_be(r, 4);
	else {
		fail(r);
		return NULL;
	}
	if (!need(r, n))
		return NULL;
	const uint8_t *p = r->data + r->pos;
	r->pos += n;
	*out_len = n;
	return n ? p : NULL;
}

const char *mp_read_str(struct mp_reader *r, size_t *out_len)
{
	if (mp_read_nil(r)) {
		*out_len = 0;
		return NULL;
	}
	return (const char *)read_raw(r, out_len, true, false);
}

const uint8_t *mp_read_bin(struct mp_reader *r, size_t *out_len)
{
	return read_raw(r, out_len, true, true);
}

bool mp_reader_done(const struct mp_reader *r) { return r->err == 0 && r->pos == r->len; }

/* ---- writer ------------------------------------------------------------ */

void mp_writer_init(struct mp_writer *w) { memset(w, 0, sizeof(*w)); }

void mp_writer_close(struct mp_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void mp_writer_reset(struct mp_writer *w)
{
	w->len = 0;
	w->err = 0;
}

static uint8_t *grow(struct mp_writer *w, size_t n)
{
	if (w->err)
		return NULL;
	if (w->cap - w->len < n) {
		size_t cap = w->cap ? w->cap : 64;
		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->err = -ENOMEM;
				return NULL;
			}
			cap *= 2;
		}
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return NULL;
		}
		w->buf = b;
		w->cap = cap;
	}
	uint8_t *p = w->buf + w->len;
	w->len += n;
	return p;
}

static void put_be(struct mp_writer *w, uint8_t tag, uint64_t v, size_t n)
{
	uint8_t *p = grow(w, 1 + n);
	if (!p)
		return;
	p[0] = tag;
	for (size_t i = 0; i < n; i++)
		p[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void put_byte(struct mp_writer *w, uint8_t b)
{
	uint8_t *p = grow(w, 1);
	if (p)
		*p = b;
}

void mp_write_array(struct mp_writer *w, uint32_t n)
{
	if (n <= 15)
		put_byte(w, (uint8_t)(0x90 | n));
	else if (n <= 0xffff)
		put_be(w, 0xdc, n, 2);
	else
		put_be(w, 0xdd, n, 4);
}

void mp_write_map(struct mp_writer *w, uint32_t n)
{
	if (n <= 15)
		put_byte(w, (uint8_t)(0x80 | n));
	else if (n <= 0xffff)
		put_be(w, 0xde, n, 2);
	else
		put_be(w, 0xdf, n, 4);
}

void mp_write_u64(struct mp_writer *w, uint64_t v)
{
	if (v <= 0x7f)
		put_byte(w, (uint8_t)v);
	else if (v <= 0xff)
		put_be(w, 0xcc, v, 1);
	else if (v <= 0xffff)
		put_be(w, 0xcd, v, 2);
	else if (v <= 0xffffffffu)
		put_be(w, 0xce, v, 4);
	else
		put_be(w, 0xcf, v, 8);
}

void mp_write_bool(struct mp_writer *w, bool v) { put_byte(w, v ? 0xc3 : 0xc2); }

void mp_write_nil(struct mp_writer *w) { put_byte(w, 0xc0); }

void mp_write_raw(struct mp_writer *w, const void *p, size_t len)
{
	if (!len)
		return;
	uint8_t *d = grow(w, len);
	if (d)
		memcpy(d, p, len);
}

void mp_write_str(struct mp_writer *w, const char *s, size_t len)
{
	if (len <= 31)
		put_byte(w, (uint8_t)(0xa0 | len));
	else if (len <= 0xff)
		put_be(w, 0xd9, len, 1);
	else if (len <= 0xffff)
		put_be(w, 0xda, len, 2);
	else
		put_be(w, 0xdb, len, 4);
	mp_write_raw(w, s, len);
}

void mp_write_cstr_or_nil(struct mp_writer *w, const char *s)
{
	if (!s)
		mp_write_nil(w);
	else
		mp_write_str(w, s, strlen(s));
}

void mp_write_bin(struct mp_writer *w, const void *p, size_t len)
{
	if (len <= 0xff)
		put_be(w, 0xc4, len, 1);
	else if (len <= 0xffff)
		put_be(w, 0xc5, len, 2);
	else
		put_be(w, 0xc6, len, 4);
	mp_write_raw(w, p, len);
}
