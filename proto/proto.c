/* Table-driven msgpack codec for the messages in messages.def.
 *
 * The encoder and decoder for every record and message are generated as
 * code from the X-macros (so each field is read and written with its real C
 * type), and the descriptor tables used for docs/protocol.md come from the
 * same lists.
 *
 * Encoding uses msgpack-c's packer. Decoding uses a small bounded cursor
 * with a sticky error (after Knot's wire_ctx): after the first fault every
 * read returns zero and the decoder checks once per field. Nothing is
 * trusted: every count is checked against the bytes that remain before any
 * allocation, so a hostile length cannot make us allocate more than the
 * message itself could hold. */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "arena.h"
#include "err.h"
#include "proto.h"

/* Wire numbers never change once released: pin them. (Duplicate numbers
 * are caught by the decoder's switch, which would not compile.) */
static_assert(PROTO_ERROR == 1, "wire number");
static_assert(PROTO_KV_GET == 2, "wire number");
static_assert(PROTO_KV_PUT == 4, "wire number");
static_assert(PROTO_WRITE_REPLY == 6, "wire number");
static_assert(PROTO_CATALOG_NODE == 12, "wire number");
static_assert(PROTO_MEMBER_EVENT == 16, "wire number");
static_assert(PROTO_PONG == 18, "wire number");

/* ---- decoding cursor --------------------------------------------------- */

struct cur {
	const uint8_t *p;  /* next byte */
	size_t left;       /* bytes remaining */
	int err;           /* sticky: 0 or CAIRN_E_PROTO / -ENOMEM */
	const char *what;  /* first problem found */
	const char *field; /* field being decoded when it was found */
};

static void cur_fail(struct cur *c, const char *what)
{
	if (!c->err) {
		c->err = CAIRN_E_PROTO;
		c->what = what;
	}
}

static const uint8_t *cur_take(struct cur *c, size_t n)
{
	const uint8_t *p;

	if (c->err)
		return NULL;
	if (n > c->left) {
		cur_fail(c, "truncated");
		return NULL;
	}
	p = c->p;
	c->p += n;
	c->left -= n;
	return p;
}

static uint64_t cur_be(struct cur *c, size_t n)
{
	const uint8_t *p = cur_take(c, n);
	uint64_t v = 0;

	if (!p)
		return 0;
	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static uint8_t cur_byte(struct cur *c)
{
	const uint8_t *p = cur_take(c, 1);

	return p ? *p : 0;
}

/* Peeks the next type byte without consuming it; 0 on error. */
static int cur_peek(struct cur *c, uint8_t *out)
{
	if (c->err)
		return 0;
	if (!c->left) {
		cur_fail(c, "truncated");
		return 0;
	}
	*out = c->p[0];
	return 1;
}

/* Reads any integer; sets *neg when it is negative. */
static uint64_t cur_anyint(struct cur *c, int *neg)
{
	uint8_t t = cur_byte(c);

	*neg = 0;
	if (c->err)
		return 0;
	if (t <= 0x7f)
		return t;
	if (t >= 0xe0) {
		*neg = 1;
		return (uint64_t)(int64_t)(int8_t)t;
	}
	switch (t) {
	case 0xcc:
		return cur_be(c, 1);
	case 0xcd:
		return cur_be(c, 2);
	case 0xce:
		return cur_be(c, 4);
	case 0xcf:
		return cur_be(c, 8);
	case 0xd0: {
		int64_t v = (int8_t)cur_be(c, 1);
		*neg = v < 0;
		return (uint64_t)v;
	}
	case 0xd1: {
		int64_t v = (int16_t)cur_be(c, 2);
		*neg = v < 0;
		return (uint64_t)v;
	}
	case 0xd2: {
		int64_t v = (int32_t)cur_be(c, 4);
		*neg = v < 0;
		return (uint64_t)v;
	}
	case 0xd3: {
		int64_t v = (int64_t)cur_be(c, 8);
		*neg = v < 0;
		return (uint64_t)v;
	}
	default:
		cur_fail(c, "expected an integer");
		return 0;
	}
}

static uint64_t cur_uint(struct cur *c)
{
	int neg;
	uint64_t v = cur_anyint(c, &neg);

	if (neg) {
		cur_fail(c, "negative where unsigned expected");
		return 0;
	}
	return v;
}

static int64_t cur_int(struct cur *c)
{
	int neg;
	uint64_t v = cur_anyint(c, &neg);

	if (!neg && v > (uint64_t)INT64_MAX) {
		cur_fail(c, "integer out of range");
		return 0;
	}
	return (int64_t)v;
}

static bool cur_bool(struct cur *c)
{
	uint8_t t = cur_byte(c);

	if (t == 0xc3)
		return true;
	if (t != 0xc2)
		cur_fail(c, "expected a boolean");
	return false;
}

/* Reads an array header; the count is checked against the bytes left
 * (every element takes at least one byte). */
static size_t cur_array(struct cur *c)
{
	uint8_t t = cur_byte(c);
	size_t n;

	if (c->err)
		return 0;
	if (t >= 0x90 && t <= 0x9f)
		n = t & 0x0f;
	else if (t == 0xdc)
		n = (size_t)cur_be(c, 2);
	else if (t == 0xdd)
		n = (size_t)cur_be(c, 4);
	else {
		cur_fail(c, "expected an array");
		return 0;
	}
	if (n > c->left) {
		cur_fail(c, "array count exceeds message");
		return 0;
	}
	return n;
}

static size_t cur_mapn(struct cur *c)
{
	uint8_t t = cur_byte(c);
	size_t n;

	if (c->err)
		return 0;
	if (t >= 0x80 && t <= 0x8f)
		n = t & 0x0f;
	else if (t == 0xde)
		n = (size_t)cur_be(c, 2);
	else if (t == 0xdf)
		n = (size_t)cur_be(c, 4);
	else {
		cur_fail(c, "expected a map");
		return 0;
	}
	if (n > c->left / 2) {
		cur_fail(c, "map count exceeds message");
		return 0;
	}
	return n;
}

/* Reads a str or bin header and returns the payload (borrowed from the
 * buffer). is_nil is set for nil. */
static const uint8_t *cur_raw(struct cur *c, size_t *out_len, int allow_bin, int *is_nil)
{
	uint8_t t = cur_byte(c);
	size_t n;
	int bin = 0;

	*out_len = 0;
	*is_nil = 0;
	if (c->err)
		return NULL;
	if (t == 0xc0) {
		*is_nil = 1;
		return NULL;
	}
	if (t >= 0xa0 && t <= 0xbf)
		n = t & 0x1f;
	else if (t == 0xd9)
		n = (size_t)cur_be(c, 1);
	else if (t == 0xda)
		n = (size_t)cur_be(c, 2);
	else if (t == 0xdb)
		n = (size_t)cur_be(c, 4);
	else if (t == 0xc4)
		n = (size_t)cur_be(c, 1), bin = 1;
	else if (t == 0xc5)
		n = (size_t)cur_be(c, 2), bin = 1;
	else if (t == 0xc6)
		n = (size_t)cur_be(c, 4), bin = 1;
	else {
		cur_fail(c, allow_bin ? "expected bytes" : "expected a string");
		return NULL;
	}
	if (bin && !allow_bin) {
		cur_fail(c, "expected a string, got bytes");
		return NULL;
	}
	*out_len = n;
	return cur_take(c, n);
}

static const char *cur_str(struct cur *c, struct arena *a)
{
	size_t n;
	int nil;
	const uint8_t *p = cur_raw(c, &n, 0, &nil);
	char *s;

	if (c->err || nil)
		return NULL;
	if (memchr(p, 0, n)) {
		cur_fail(c, "NUL byte in string");
		return NULL;
	}
	s = arena_strndup(a, (const char *)p, n);
	if (!s)
		c->err = -ENOMEM;
	return s;
}

static void cur_bin(struct cur *c, struct arena *a, struct proto_bytes *out)
{
	size_t n;
	int nil;
	const uint8_t *p = cur_raw(c, &n, 1, &nil);
	uint8_t *copy;

	out->ptr = NULL;
	out->len = 0;
	if (c->err || nil || n == 0)
		return;
	copy = arena_alloc(a, n);
	if (!copy) {
		c->err = -ENOMEM;
		return;
	}
	memcpy(copy, p, n);
	out->ptr = copy;
	out->len = n;
}

static void cur_strs(struct cur *c, struct arena *a, struct proto_strs *out)
{
	size_t n = cur_array(c);

	out->v = NULL;
	out->n = 0;
	if (c->err || !n)
		return;
	out->v = arena_zalloc(a, n * sizeof(*out->v));
	if (!out->v) {
		c->err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n && !c->err; i++) {
		out->v[i] = cur_str(c, a);
		if (!c->err && !out->v[i])
			cur_fail(c, "nil in string list");
	}
	out->n = c->err ? 0 : n;
}

static void cur_map(struct cur *c, struct arena *a, struct proto_map *out)
{
	size_t n = cur_mapn(c);

	out->keys = out->vals = NULL;
	out->n = 0;
	if (c->err || !n)
		return;
	out->keys = arena_zalloc(a, n * sizeof(*out->keys));
	out->vals = arena_zalloc(a, n * sizeof(*out->vals));
	if (!out->keys || !out->vals) {
		c->err = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n && !c->err; i++) {
		out->keys[i] = cur_str(c, a);
		out->vals[i] = cur_str(c, a);
		if (!c->err && (!out->keys[i] || !out->vals[i]))
			cur_fail(c, "nil in string map");
	}
	out->n = c->err ? 0 : n;
}

/* ---- encoding helpers ---------------------------------------------------- */

struct enc {
	msgpack_sbuffer sb;
	int err; /* set when the buffer could not grow */
};

static int enc_write(void *data, const char *buf, size_t len)
{
	struct enc *e = data;

	if (e->err)
		return -1;
	if (msgpack_sbuffer_write(&e->sb, buf, len) < 0) {
		e->err = -ENOMEM;
		return -1;
	}
	return 0;
}

static void enc_str(msgpack_packer *pk, const char *s)
{
	size_t n;

	if (!s) {
		msgpack_pack_nil(pk);
		return;
	}
	n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void enc_bin(msgpack_packer *pk, const struct proto_bytes *b)
{
	msgpack_pack_bin(pk, b->len);
	if (b->len)
		msgpack_pack_bin_body(pk, b->ptr, b->len);
}

static void enc_strs(msgpack_packer *pk, const struct proto_strs *s)
{
	msgpack_pack_array(pk, s->n);
	for (size_t i = 0; i < s->n; i++)
		enc_str(pk, s->v[i] ? s->v[i] : "");
}

static void enc_map(msgpack_packer *pk, const struct proto_map *m)
{
	msgpack_pack_map(pk, m->n);
	for (size_t i = 0; i < m->n; i++) {
		enc_str(pk, m->keys[i] ? m->keys[i] : "");
		enc_str(pk, m->vals[i] ? m->vals[i] : "");
	}
}

/* ---- generated codecs ------------------------------------------------------ */

#define COUNT_FIELD(T, name, rec, doc) +1

#define ENC_U64(p, rec) msgpack_pack_uint64(pk, *(p))
#define ENC_I64(p, rec) msgpack_pack_int64(pk, *(p))
#define ENC_BOOL(p, rec) (*(p) ? msgpack_pack_true(pk) : msgpack_pack_false(pk))
#define ENC_STR(p, rec) enc_str(pk, *(p))
#define ENC_BIN(p, rec) enc_bin(pk, (p))
#define ENC_STRS(p, rec) enc_strs(pk, (p))
#define ENC_MAP(p, rec) enc_map(pk, (p))
#define ENC_LIST(p, rec)                                                                           \
	do {                                                                                       \
		msgpack_pack_array(pk, (p)->n);                                                    \
		for (size_t i_ = 0; i_ < (p)->n; i_++)                                             \
			enc_##rec(pk, &(p)->v[i_]);                                                \
	} while (0)
#define ENC_FIELD(T, name, rec, doc) ENC_##T(&s->name, rec);

#define DEC_U64(p, rec) *(p) = cur_uint(c)
#define DEC_I64(p, rec) *(p) = cur_int(c)
#define DEC_BOOL(p, rec) *(p) = cur_bool(c)
#define DEC_STR(p, rec) *(p) = cur_str(c, a)
#define DEC_BIN(p, rec) cur_bin(c, a, (p))
#define DEC_STRS(p, rec) cur_strs(c, a, (p))
#define DEC_MAP(p, rec) cur_map(c, a, (p))
#define DEC_LIST(p, rec)                                                                           \
	do {                                                                                       \
		size_t nl_ = cur_array(c);                                                         \
		(p)->n = 0;                                                                        \
		(p)->v = NULL;                                                                     \
		if (c->err || !nl_)                                                                \
			break;                                                                     \
		(p)->v = arena_zalloc(a, nl_ * sizeof(*(p)->v));                                    \
		if (!(p)->v) {                                                                     \
			c->err = -ENOMEM;                                                          \
			break;                                                                     \
		}                                                                                  \
		for (size_t i_ = 0; i_ < nl_ && !c->err; i_++)                                     \
			dec_##rec(c, a, &(p)->v[i_]);                                              \
		(p)->n = nl_;                                                                      \
	} while (0)
#define DEC_FIELD(T, name, rec, doc)                                                               \
	if (!c->err) {                                                                             \
		DEC_##T(&s->name, rec);                                                            \
		if (c->err && !c->field)                                                           \
			c->field = #name;                                                          \
	}

#define GEN_CODEC(name)                                                                            \
	static void enc_##name(msgpack_packer *pk, const struct proto_##name *s)                   \
	{                                                                                          \
		msgpack_pack_array(pk, 0 PROTO_FIELDS_##name(COUNT_FIELD));                        \
		PROTO_FIELDS_##name(ENC_FIELD)                                                     \
	}                                                                                          \
	static void dec_##name(struct cur *c, struct arena *a, struct proto_##name *s)             \
	{                                                                                          \
		size_t nf_ = cur_array(c);                                                         \
		(void)a; /* unused by messages without strings */                                  \
		if (!c->err && nf_ != (0 PROTO_FIELDS_##name(COUNT_FIELD)))                         \
			cur_fail(c, "wrong field count for " #name);                               \
		PROTO_FIELDS_##name(DEC_FIELD)                                                     \
	}

#define GEN_FWD(name, doc)                                                                         \
	static void enc_##name(msgpack_packer *pk, const struct proto_##name *s);                  \
	static void dec_##name(struct cur *c, struct arena *a, struct proto_##name *s);
#define GEN_REC_CODEC(name, doc) GEN_CODEC(name)
#define GEN_MSG_CODEC(U, num, name, kind, doc) GEN_CODEC(name)

PROTO_RECORDS(GEN_FWD)
PROTO_RECORDS(GEN_REC_CODEC)
PROTO_MESSAGES(GEN_MSG_CODEC)

/* ---- descriptors ------------------------------------------------------------ */

#define DOC_FIELD(T, name, rec, doc) {#name, PROTO_T_##T, #rec, doc},
#define GEN_DESC(name, doc)                                                                        \
	static const struct proto_field_desc fd_##name[] = {PROTO_FIELDS_##name(DOC_FIELD)};       \
	static const struct proto_record_desc rd_##name = {                                        \
		#name, fd_##name, sizeof(fd_##name) / sizeof(fd_##name[0]), doc};
#define GEN_MSG_DESC(U, num, name, kind, doc) GEN_DESC(name, doc)
PROTO_RECORDS(GEN_DESC)
PROTO_MESSAGES(GEN_MSG_DESC)

#define MSG_ENTRY(U, num, name, kind, doc) {PROTO_##U, #U, PROTO_KIND_##kind, &rd_##name},
static const struct proto_msg_desc msg_descs[] = {PROTO_MESSAGES(MSG_ENTRY)};

#define REC_ENTRY(name, doc) &rd_##name,
static const struct proto_record_desc *const rec_descs[] = {PROTO_RECORDS(REC_ENTRY)};

const struct proto_msg_desc *proto_msg_desc(enum proto_type type)
{
	for (size_t i = 0; i < sizeof(msg_descs) / sizeof(msg_descs[0]); i++)
		if (msg_descs[i].type == type)
			return &msg_descs[i];
	return NULL;
}

const struct proto_msg_desc *proto_msg_descs(size_t *out_n)
{
	*out_n = sizeof(msg_descs) / sizeof(msg_descs[0]);
	return msg_descs;
}

const struct proto_record_desc *const *proto_record_descs(size_t *out_n)
{
	*out_n = sizeof(rec_descs) / sizeof(rec_descs[0]);
	return rec_descs;
}

const char *proto_type_name(enum proto_type type)
{
	const struct proto_msg_desc *d = proto_msg_desc(type);

	return d ? d->upper : "UNKNOWN";
}

/* ---- entry points ------------------------------------------------------------ */

int proto_encode(const struct proto_msg *m, uint8_t **out_buf, size_t *out_len)
{
	msgpack_packer pk;
	struct enc e = {0};

	if (!proto_msg_desc(m->type))
		return -EINVAL;
	msgpack_sbuffer_init(&e.sb);
	msgpack_packer_init(&pk, &e, enc_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_uint32(&pk, PROTO_VERSION);
	msgpack_pack_uint32(&pk, (uint32_t)m->type);
	msgpack_pack_uint64(&pk, m->id);

#define ENC_CASE(U, num, name, kind, doc)                                                          \
	case PROTO_##U:                                                                            \
		enc_##name(&pk, &m->u.name);                                                       \
		break;
	switch (m->type) {
		PROTO_MESSAGES(ENC_CASE)
	default:
		break;
	}
	if (e.err) {
		msgpack_sbuffer_destroy(&e.sb);
		return e.err;
	}
	*out_len = e.sb.size;
	*out_buf = (uint8_t *)msgpack_sbuffer_release(&e.sb);
	return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int proto_decode(const uint8_t *buf, size_t len, struct arena *a, struct proto_msg *out, char *err,
		 size_t errlen)
{
	struct cur cur = {buf, len, 0, NULL, NULL}, *c = &cur;
	uint64_t version, type, id;
	uint8_t peek;

	memset(out, 0, sizeof(*out));
	if (len > PROTO_MAX_MSG) {
		set_err(err, errlen, "message of %zu bytes over the limit", len);
		return CAIRN_E_PROTO;
	}
	if (cur_array(c) != 4 || c->err) {
		set_err(err, errlen, "envelope is not a 4-element array");
		return CAIRN_E_PROTO;
	}
	version = cur_uint(c);
	type = cur_uint(c);
	id = cur_uint(c);
	if (c->err) {
		set_err(err, errlen, "bad envelope: %s", c->what);
		return CAIRN_E_PROTO;
	}
	out->id = id;
	out->version = (uint32_t)version;
	if (!proto_msg_desc((enum proto_type)type) || type > 0xffffffffu) {
		set_err(err, errlen, "unknown message type %llu", (unsigned long long)type);
		return CAIRN_E_PROTO;
	}
	out->type = (enum proto_type)type;
	if (version != PROTO_VERSION) {
		set_err(err, errlen, "protocol version %llu not supported (want %d)",
			(unsigned long long)version, PROTO_VERSION);
		return CAIRN_E_VERSION;
	}
	if (!cur_peek(c, &peek)) {
		set_err(err, errlen, "missing body");
		return CAIRN_E_PROTO;
	}

#define DEC_CASE(U, num, name, kind, doc)                                                          \
	case num:                                                                                  \
		dec_##name(c, a, &out->u.name);                                                    \
		break;
	switch (type) {
		PROTO_MESSAGES(DEC_CASE)
	default:
		cur_fail(c, "unknown type");
		break;
	}
	if (!c->err && c->left)
		cur_fail(c, "trailing bytes");
	if (c->err) {
		if (c->err == -ENOMEM) {
			set_err(err, errlen, "out of memory decoding %s", proto_type_name(out->type));
			return -ENOMEM;
		}
		set_err(err, errlen, "%s: %s%s%s", proto_type_name(out->type), c->what,
			c->field ? " in field " : "", c->field ? c->field : "");
		return CAIRN_E_PROTO;
	}
	return 0;
}
