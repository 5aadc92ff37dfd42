/* Cairn's inter-daemon messages: C structs and a table-driven msgpack codec,
 * all produced from messages.def.
 *
 * Wire form: msgpack array [version, type, id, [field...]]. Decoding checks
 * the whole message first (envelope shape, version, known type, field count
 * and every field's type) and fails without side effects on anything
 * malformed, truncated, oversized or wrong-typed.
 *
 * Memory: a decoded message's strings, byte strings and lists live in the
 * arena passed to proto_decode and stay valid until that arena is reset.
 * Encoding only borrows from the message. */
#ifndef CAIRN_PROTO_H
#define CAIRN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.def"

struct arena;

#define PROTO_VERSION 1

/* Longest message a decoder accepts, bytes. */
#define PROTO_MAX_MSG (64u * 1024u * 1024u)

struct proto_bytes {
	const uint8_t *ptr; /* NULL when empty */
	size_t len;
};

struct proto_strs {
	const char **v; /* NUL-terminated strings */
	size_t n;
};

struct proto_map {
	const char **keys;
	const char **vals;
	size_t n;
};

#define PROTO_CTYPE_U64 uint64_t
#define PROTO_CTYPE_I64 int64_t
#define PROTO_CTYPE_BOOL bool
#define PROTO_CTYPE_STR const char *
#define PROTO_CTYPE_BIN struct proto_bytes
#define PROTO_CTYPE_STRS struct proto_strs
#define PROTO_CTYPE_MAP struct proto_map
#define PROTO_CTYPE_LIST(rec)                                                                      \
	struct {                                                                                   \
		struct proto_##rec *v;                                                             \
		size_t n;                                                                          \
	}

#define PROTO_FIELD_U64(rec) PROTO_CTYPE_U64
#define PROTO_FIELD_I64(rec) PROTO_CTYPE_I64
#define PROTO_FIELD_BOOL(rec) PROTO_CTYPE_BOOL
#define PROTO_FIELD_STR(rec) PROTO_CTYPE_STR
#define PROTO_FIELD_BIN(rec) PROTO_CTYPE_BIN
#define PROTO_FIELD_STRS(rec) PROTO_CTYPE_STRS
#define PROTO_FIELD_MAP(rec) PROTO_CTYPE_MAP
#define PROTO_FIELD_LIST(rec) PROTO_CTYPE_LIST(rec)

#define PROTO_DECL_FIELD(T, name, rec, doc) PROTO_FIELD_##T(rec) name;

/* Records first: messages embed lists of them. */
#define PROTO_DECL_RECORD(name, doc)                                                               \
	struct proto_##name {                                                                      \
		PROTO_FIELDS_##name(PROTO_DECL_FIELD)                                              \
	};
PROTO_RECORDS(PROTO_DECL_RECORD)

#define PROTO_DECL_MESSAGE(U, num, name, kind, doc)                                                \
	struct proto_##name {                                                                      \
		PROTO_FIELDS_##name(PROTO_DECL_FIELD)                                              \
	};
PROTO_MESSAGES(PROTO_DECL_MESSAGE)

#define PROTO_DECL_ENUM(U, num, name, kind, doc) PROTO_##U = num,
enum proto_type {
	PROTO_NONE = 0,
	PROTO_MESSAGES(PROTO_DECL_ENUM)
};

#define PROTO_DECL_UNION(U, num, name, kind, doc) struct proto_##name name;
struct proto_msg {
	uint32_t version;     /* PROTO_VERSION when encoding */
	enum proto_type type; /* selects the union member */
	uint64_t id;          /* request id; echoed in the reply */
	union {
		PROTO_MESSAGES(PROTO_DECL_UNION)
	} u;
};

enum proto_kind {
	PROTO_KIND_REQ,
	PROTO_KIND_REPLY,
	PROTO_KIND_EVENT,
};

/* Field types, for the descriptor tables below. */
enum proto_ftype {
	PROTO_T_U64,
	PROTO_T_I64,
	PROTO_T_BOOL,
	PROTO_T_STR,
	PROTO_T_BIN,
	PROTO_T_STRS,
	PROTO_T_MAP,
	PROTO_T_LIST,
};

/* Descriptors, for documentation and introspection (the codec itself is
 * generated as code from the same X-macros). */
struct proto_field_desc {
	const char *name;      /* field name as in messages.def */
	enum proto_ftype type; /* wire and C type */
	const char *rec;       /* element record name for LIST, else "_" */
	const char *doc;       /* one line for docs/protocol.md */
};

struct proto_record_desc {
	const char *name;                      /* record or message name */
	const struct proto_field_desc *fields; /* in wire order */
	size_t n_fields;
	const char *doc; /* one line */
};

struct proto_msg_desc {
	enum proto_type type;
	const char *upper;                    /* "KV_GET" */
	enum proto_kind kind;
	const struct proto_record_desc *body; /* the fields */
};

/* Descriptor of a message type, or NULL for an unknown type. */
const struct proto_msg_desc *proto_msg_desc(enum proto_type type);
/* Every message descriptor in number order; sets *out_n. */
const struct proto_msg_desc *proto_msg_descs(size_t *out_n);
/* Every record descriptor; sets *out_n. */
const struct proto_record_desc *const *proto_record_descs(size_t *out_n);
/* "KV_GET", or "UNKNOWN". */
const char *proto_type_name(enum proto_type type);

/* Encodes m (with version PROTO_VERSION) into a malloc'd buffer that the
 * caller frees with free(). Returns 0, -EINVAL for an unknown type, or
 * -ENOMEM. */
int proto_encode(const struct proto_msg *m, uint8_t **out_buf, size_t *out_len);

/* Decodes buf into out, allocating from a. Returns 0, CAIRN_E_VERSION for
 * another version, or CAIRN_E_PROTO for anything malformed; on failure err
 * (if not NULL) names the problem and out->type/id are set when the
 * envelope was readable (so a request can still get an error reply, with
 * its id) and PROTO_NONE/0 otherwise. */
int proto_decode(const uint8_t *buf, size_t len, struct arena *a, struct proto_msg *out, char *err,
		 size_t errlen);

/* Convenience initialiser: zeroed message of the given type. */
static inline struct proto_msg proto_msg_make(enum proto_type type)
{
	struct proto_msg m = {0};
	m.version = PROTO_VERSION;
	m.type = type;
	return m;
}

#endif
