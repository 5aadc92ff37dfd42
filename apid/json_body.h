/* JSON request bodies read into proto records: the key lookup and the
 * string, unsigned, map and string-list readers the endpoints share.
 *
 * Pure. Keys match case-insensitively with underscores ignored, so
 * Consul's "TaggedAddresses", python-consul's lower-case "address" and
 * snake_case "tagged_addresses" all work. Strings and arrays are copied
 * into the request's arena. Each endpoint keeps Consul's own 400 texts
 * (catalog "Request decode failed: ...", txn "Failed to parse body: ...")
 * through a struct json_body_dialect. */
#ifndef CAIRN_APID_JSON_BODY_H
#define CAIRN_APID_JSON_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "proto.h"

struct arena;

/* How one endpoint words its decode errors and reads numbers. */
struct json_body_dialect {
	const char *prefix;	    /* before ": <Key> must be ...", e.g. "Request decode failed" */
	const char *map_not_string; /* after "<Key> " when a map holds a non-string value */
	bool whole_reals;	    /* unsigned fields also take reals in [0, 1.8e19), truncated */
};

/* A body being read: the readers record their last error in bad (a text
 * in a, or a constant) and keep going, so a caller reads every field and
 * checks bad once. */
struct json_body {
	struct arena *a;			 /* copies and error texts */
	const struct json_body_dialect *dialect; /* the endpoint's texts */
	const char *bad;			 /* the last decode error, or NULL */
};

/* Looks up key in object o ignoring case and underscores ("ServiceID",
 * "service_id" and "serviceid" are the same key). NULL when absent or o is
 * not an object. */
json_t *json_body_get(const json_t *o, const char *key);

/* Parses body (len bytes, a JSON object) into *out_obj, a new reference
 * the caller decrefs. Returns NULL, or a 400 text in a ("Request decode
 * failed: EOF", "...: <jansson's reason>", "...: body must be a JSON
 * object"; NULL *out_obj then). */
const char *json_body_decode_object(const void *body, size_t len, struct arena *a,
				    json_t **out_obj);

/* o[key] copied into b->a: NULL when absent or null; NULL and b->bad
 * ("<prefix>: <key> must be a string") when not a string. */
const char *json_body_str(struct json_body *b, const json_t *o, const char *key);

/* o[key] as an unsigned integer: dflt when absent, null or invalid (then
 * b->bad "<prefix>: <key> must be a non-negative integer"). */
uint64_t json_body_uint(struct json_body *b, const json_t *o, const char *key, uint64_t dflt);

/* o[key], an object of strings, into *m (keys and values in b->a; zeroed
 * when absent, null or invalid, which sets b->bad). Returns 0 or -ENOMEM. */
int json_body_map(struct json_body *b, const json_t *o, const char *key, struct proto_map *m);

/* o[key], an array of strings, into *s (in b->a; zeroed when absent, null
 * or invalid, which sets b->bad). Returns 0 or -ENOMEM. */
int json_body_strs(struct json_body *b, const json_t *o, const char *key, struct proto_strs *s);

/* o[key] (any JSON value) as compact text with sorted keys in a; NULL when
 * absent, null or out of memory. */
const char *json_body_raw(const json_t *o, const char *key, struct arena *a);

#endif
