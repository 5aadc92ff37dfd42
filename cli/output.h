/* Pure formatting of API answers the way Consul's CLI prints them: the
 * members table, `kv get -recurse` lines and `kv get -detailed` blocks.
 * Inputs are parsed JSON (jansson, borrowed); outputs are malloc'd text
 * that the caller frees with free(). */
#ifndef CAIRN_CLI_OUTPUT_H
#define CAIRN_CLI_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>

struct json_t;

/* Decodes a KV "Value" (base64 string, or JSON null for empty) into a
 * malloc'd buffer with a NUL after the bytes. Returns 0, -EINVAL for a
 * value that is neither, -ENOMEM. */
int output_kv_value(const struct json_t *value, char **out, size_t *out_len);

/* One `kv get` entry as text: the raw value when !detailed, else Consul's
 * aligned block (CreateIndex, Flags, Key, LockIndex, ModifyIndex, Session,
 * Value). With recurse, "key:value" per entry. Always ends in a newline.
 * entries is the JSON array from GET /v1/kv/<key>[?recurse]. Returns 0,
 * -EINVAL on a malformed answer, -ENOMEM. */
int output_kv(const struct json_t *entries, bool recurse, bool detailed, char **out);

/* `kv get -keys`: the JSON array of key names from GET ?keys, one per
 * line. Returns 0, -EINVAL when it is not an array of strings, -ENOMEM. */
int output_kv_keys(const struct json_t *keys, char **out);

/* The `cairn members` table from GET /v1/agent/members: columns Node,
 * Address, Status, Type, Build, Protocol, DC, Segment, sorted by node name
 * (detailed: Node, Address, Status, Tags). Returns 0, -EINVAL on a
 * malformed answer, -ENOMEM. */
int output_members(const struct json_t *members, bool detailed, char **out);

#endif
