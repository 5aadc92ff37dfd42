/* `cairn kv export` and `cairn kv import`: the KV tree as Consul's JSON
 * (an array of {"key", "flags", "value"} with the value in base64), the
 * format Consul's `consul kv export` writes and `consul kv import` reads.
 * kv_io_export_text and kv_io_import_parse are pure; the kv_io_cmd_*
 * functions talk to the agent. */
#ifndef CAIRN_CLI_KV_IO_H
#define CAIRN_CLI_KV_IO_H

#include <stddef.h>
#include <stdint.h>

struct json_t;

/* One imported entry. */
struct kv_io_entry {
	char *key;      /* malloc'd, NUL-terminated */
	uint64_t flags; /* the entry's "flags" (0 when absent) */
	char *value;    /* malloc'd decoded bytes with a NUL after them */
	size_t len;     /* value length in bytes */
};

/* Flags are unsigned 64-bit and locks use values above 2^63 (Consul's
 * LockFlagValue, SemaphoreFlagValue), which jansson cannot hold as an
 * integer. Returns a malloc'd copy of json[0..len) (NUL-terminated) in
 * which every number given to a "Flags"/"flags" member is quoted
 * ("Flags":"16210313421097356768"), so it parses and kv_io_flags reads
 * it exactly; NULL when out of memory. A member name cannot occur
 * unescaped inside a string, so only real members change. */
char *kv_io_quote_flags(const char *json, size_t len);

/* The unsigned value of a flags member: a quoted decimal (see above) or
 * a non-negative integer; 0 otherwise. */
uint64_t kv_io_flags(const struct json_t *v);

/* Consul's export text for the JSON array answered by GET
 * /v1/kv/<prefix>?recurse (entries may be NULL for a 404: no keys): Go's
 * json.MarshalIndent(entries, "", "\t") of {key, flags, value}, value in
 * standard base64 ("" for an empty value), then a newline; "[]\n" when
 * there are none. Strings are escaped as Go does (<, > and & as \u003c,
 * \u003e, \u0026). Returns 0 with a malloc'd text in out (caller frees),
 * -EINVAL when an entry lacks a string Key, -ENOMEM. */
int kv_io_export_text(const struct json_t *entries, char **out);

/* Parses export text (text[0..len)): a JSON array of objects with "key"
 * (string, required), "flags" (non-negative integer, optional) and
 * "value" (base64 string, optional; null or "" is empty). Key names are
 * matched case-insensitively, as Go's encoding/json does. prefix, when
 * non-NULL and non-empty, is joined in front of every key with one "/".
 * On success returns 0 with a malloc'd array in out (free with
 * kv_io_entries_free); on bad input returns -EINVAL with Consul-like text
 * in err; -ENOMEM. */
int kv_io_import_parse(const char *text, size_t len, const char *prefix,
		       struct kv_io_entry **out, size_t *out_n, char *err, size_t errlen);

/* Frees n entries and the array; NULL does nothing. */
void kv_io_entries_free(struct kv_io_entry *e, size_t n);

/* `cairn kv export [flags] [PREFIX]` (argv[0] is the first argument after
 * "export"): prints the tree under PREFIX. Returns the exit code. */
int kv_io_cmd_export(int argc, char **argv);

/* `cairn kv import [-prefix=P] [flags] DATA|@file|-`: writes every entry
 * (PUT with its flags), printing "Imported: <key>" for each. Returns the
 * exit code (1 at the first failed write). */
int kv_io_cmd_import(int argc, char **argv);

#endif
