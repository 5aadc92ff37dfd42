/* Cairn's snapshot archive format (see snapshot.h). */
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC_LEN 8
#define HEADER_FIXED (MAGIC_LEN + 4 + 8 * 4 + 4)

uint32_t snapshot_crc32(uint32_t crc, const void *data, size_t len)
{
	static uint32_t table[256];
	static bool ready;
	const uint8_t *p = data;

	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			table[i] = c;
		}
		ready = true;
	}
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
	return ~crc;
}

static void put(struct snapshot_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void put_u64(struct snapshot_writer *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (56 - 8 * i));
	put(w, b, 8);
}

static void put_u32(struct snapshot_writer *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};

	put(w, b, 4);
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int snapshot_writer_begin(struct snapshot_writer *w, const struct snapshot_meta *m)
{
	w->len = 0;
	w->records = 0;
	w->err = 0;
	if (m->config_len > UINT32_MAX)
		return -EINVAL;
	put(w, SNAPSHOT_MAGIC, MAGIC_LEN);
	put_u32(w, SNAPSHOT_VERSION);
	put_u64(w, m->index);
	put_u64(w, m->term);
	put_u64(w, m->config_index);
	put_u64(w, m->created_ms);
	put_u32(w, (uint32_t)m->config_len);
	put(w, m->config, m->config_len);
	return w->err;
}

int snapshot_writer_add(struct snapshot_writer *w, unsigned table, const void *key, size_t klen,
			const void *val, size_t vlen)
{
	uint8_t t = (uint8_t)table;

	if (table >= SNAPSHOT_END || klen > UINT32_MAX || vlen > UINT32_MAX)
		return -EINVAL;
	put(w, &t, 1);
	put_u32(w, (uint32_t)klen);
	put_u32(w, (uint32_t)vlen);
	put(w, key, klen);
	put(w, val, vlen);
	if (!w->err)
		w->records++;
	return w->err;
}

int snapshot_writer_end(struct snapshot_writer *w)
{
	uint8_t t = SNAPSHOT_END;

	put(w, &t, 1);
	put_u64(w, w->records);
	if (!w->err)
		put_u32(w, snapshot_crc32(0, w->buf, w->len));
	return w->err;
}

void snapshot_writer_free(struct snapshot_writer *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

/* Walks the records from pos; with fn NULL only checks them. */
static int walk(const uint8_t *buf, size_t end, size_t pos, uint64_t *count, snapshot_record_fn fn,
		void *ctx)
{
	uint64_t n = 0;

	while (pos < end) {
		unsigned t = buf[pos];
		uint64_t kl, vl;

		if (t == SNAPSHOT_END) {
			if (end - pos != 1 + 8 || get_u64(buf + pos + 1) != n)
				return -EINVAL;
			*count = n;
			return 0;
		}
		if (end - pos < 9)
			return -EINVAL;
		kl = get_u32(buf + pos + 1);
		vl = get_u32(buf + pos + 5);
		pos += 9;
		if (kl > end - pos || vl > end - pos - kl)
			return -EINVAL;
		if (fn) {
			int rc = fn(ctx, t, buf + pos, (size_t)kl, buf + pos + kl, (size_t)vl);
			if (rc < 0)
				return rc;
		}
		pos += (size_t)(kl + vl);
		n++;
	}
	return -EINVAL; /* no end marker */
}

int snapshot_parse(const uint8_t *buf, size_t len, struct snapshot_meta *out, const char **why)
{
	struct snapshot_meta m;
	size_t body;

	*why = "";
	memset(&m, 0, sizeof(m));
	if (!buf || len < HEADER_FIXED + 1 + 8 + 4 || memcmp(buf, SNAPSHOT_MAGIC, MAGIC_LEN) != 0) {
		*why = "not a Cairn snapshot archive";
		return -EINVAL;
	}
	if (get_u32(buf + MAGIC_LEN) != SNAPSHOT_VERSION) {
		*why = "unsupported snapshot archive version";
		return -EINVAL;
	}
	m.crc = get_u32(buf + len - 4);
	if (snapshot_crc32(0, buf, len - 4) != m.crc) {
		*why = "snapshot archive checksum mismatch (corrupted or truncated)";
		return -EINVAL;
	}
	m.index = get_u64(buf + MAGIC_LEN + 4);
	m.term = get_u64(buf + MAGIC_LEN + 12);
	m.config_index = get_u64(buf + MAGIC_LEN + 20);
	m.created_ms = get_u64(buf + MAGIC_LEN + 28);
	m.config_len = get_u32(buf + MAGIC_LEN + 36);
	body = len - 4;
	if (m.config_len > body - HEADER_FIXED) {
		*why = "malformed snapshot archive header";
		return -EINVAL;
	}
	m.config = buf + HEADER_FIXED;
	if (walk(buf, body, HEADER_FIXED + m.config_len, &m.records, NULL, NULL) < 0) {
		*why = "malformed snapshot archive records";
		return -EINVAL;
	}
	m.size = len;
	*out = m;
	return 0;
}

int snapshot_each(const uint8_t *buf, size_t len, snapshot_record_fn fn, void *ctx)
{
	struct snapshot_meta m;
	const char *why;
	int rc = snapshot_parse(buf, len, &m, &why);

	if (rc < 0)
		return rc;
	return walk(buf, len - 4, HEADER_FIXED + m.config_len, &m.records, fn, ctx);
}
