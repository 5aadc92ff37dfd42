/* Request-target parsing for the HTTP API: percent-decoding, the query
 * string, and Consul's parameter syntaxes (flags, numbers, durations).
 *
 * Pure: no I/O. Decoding follows Go's net/url, which is what Consul's
 * handlers see: the path is percent-decoded in full (%2F included, '+'
 * stays '+'); query pairs are split on '&', keys and values have '+'
 * turned into a space and %XX decoded, a pair with a bad escape is
 * dropped. A parameter's value is the first one given. */
#ifndef CAIRN_APID_QUERY_H
#define CAIRN_APID_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

struct query_param {
	const char *key;   /* decoded */
	const char *value; /* decoded; "" when the pair had no '=' */
};

struct query {
	struct query_param *v; /* arena-owned */
	size_t n;
};

/* Percent-decodes s[0..len) into the arena (NUL-terminated). With
 * plus_is_space, '+' becomes ' ' (query strings). Returns the decoded
 * string, or NULL on a malformed escape or out of memory; *out_len gets
 * the decoded length (may be NULL). The result may hold NUL bytes when
 * the input has %00: callers that need C strings check *out_len. */
char *query_pct_decode(struct arena *a, const char *s, size_t len, bool plus_is_space,
		       size_t *out_len);

/* Splits a raw request target ("/v1/kv/a%2Fb?recurse&dc=dc1") into its
 * decoded path and query. An absolute-form target ("http://host/...") is
 * reduced to its path. Returns 0, -EINVAL for a malformed path escape or
 * a path with %00, or -ENOMEM. Everything lives in the arena. */
int query_split_target(struct arena *a, const char *target, const char **out_path,
		       struct query *out_q);

/* Parses a raw query string (without '?') into out. Returns 0 or -ENOMEM. */
int query_parse(struct arena *a, const char *qs, size_t len, struct query *out);

/* True when the parameter is present, whatever its value: Consul's flags
 * (?recurse, ?recurse=1, ?keys=True, even ?recurse=false, mean on). */
bool query_has(const struct query *q, const char *key);
/* The first value of key, or NULL when absent. */
const char *query_get(const struct query *q, const char *key);

/* Parses a whole unsigned decimal (Go's strconv.ParseUint base 10: digits
 * only, no sign or spaces, no overflow). Returns 0 or -EINVAL. */
int query_parse_u64(const char *s, uint64_t *out);

/* Parses a duration as Go's time.ParseDuration does ("10s", "60000ms",
 * "5m", "1h30m", "1.5s", "250us", "0"), and also plain digits as seconds,
 * into milliseconds (sub-millisecond parts are dropped). Negative
 * durations are refused. Returns 0 or -EINVAL. */
int query_parse_duration_ms(const char *s, uint64_t *out_ms);

#endif
