/* Request-target parsing for the HTTP API (see query.h). */
#include "query.h"

#include <errno.h>
#include <string.h>

#include "arena.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int pct_decode(struct arena *a, const char *s, size_t len, bool plus_is_space, char **out,
		      size_t *out_len)
{
	char *buf = arena_alloc(a, len + 1);
	size_t i, o = 0;

	if (!buf)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (len - i < 3)
				return -EINVAL;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			buf[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+' && plus_is_space) {
			buf[o++] = ' ';
		} else {
			buf[o++] = c;
		}
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
}

char *query_pct_decode(struct arena *a, const char *s, size_t len, bool plus_is_space,
		       size_t *out_len)
{
	char *out;
	size_t n;

	if (pct_decode(a, s, len, plus_is_space, &out, &n) < 0)
		return NULL;
	if (out_len)
		*out_len = n;
	return out;
}

int query_parse(struct arena *a, const char *qs, size_t len, struct query *out)
{
	size_t n = 1, i, start = 0;
	struct query q = {0};

	for (i = 0; i < len; i++)
		if (qs[i] == '&')
			n++;
	q.v = arena_alloc(a, n * sizeof(*q.v));
	if (!q.v)
		return -ENOMEM;
	for (i = 0; i <= len; i++) {
		const char *pair, *eq;
		size_t plen, klen, klen_dec, vlen_dec;
		char *k, *v;
		int rk, rv;

		if (i < len && qs[i] != '&')
			continue;
		pair = qs + start;
		plen = i - start;
		start = i + 1;
		if (plen == 0)
			continue;
		eq = memchr(pair, '=', plen);
		klen = eq ? (size_t)(eq - pair) : plen;
		rk = pct_decode(a, pair, klen, true, &k, &klen_dec);
		rv = eq ? pct_decode(a, eq + 1, plen - klen - 1, true, &v, &vlen_dec)
			: pct_decode(a, "", 0, true, &v, &vlen_dec);
		if (rk == -ENOMEM || rv == -ENOMEM)
			return -ENOMEM;
		/* Go drops a pair whose escapes are malformed; so do we. A
		 * NUL inside would truncate the C string: drop those too. */
		if (rk < 0 || rv < 0 || strlen(k) != klen_dec || strlen(v) != vlen_dec)
			continue;
		q.v[q.n].key = k;
		q.v[q.n].value = v;
		q.n++;
	}
	*out = q;
	return 0;
}

int query_split_target(struct arena *a, const char *target, const char **out_path,
		       struct query *out_q)
{
	const char *p = target, *qm, *hash;
	size_t plen, dlen;
	char *path;
	struct query q = {0};
	int rc;

	/* absolute-form: scheme://authority/path */
	if (strncmp(p, "http://", 7) == 0 || strncmp(p, "https://", 8) == 0) {
		p = strstr(p, "://") + 3;
		p += strcspn(p, "/?");
	}
	hash = strchr(p, '#');
	qm = strchr(p, '?');
	if (hash && qm && hash < qm)
		qm = NULL;
	plen = qm ? (size_t)(qm - p) : (hash ? (size_t)(hash - p) : strlen(p));
	rc = pct_decode(a, p, plen, false, &path, &dlen);
	if (rc < 0)
		return rc;
	if (strlen(path) != dlen)
		return -EINVAL;
	if (qm) {
		const char *qs = qm + 1;
		size_t qlen = hash && hash > qm ? (size_t)(hash - qs) : strlen(qs);

		rc = query_parse(a, qs, qlen, &q);
		if (rc < 0)
			return rc;
	}
	*out_path = path;
	*out_q = q;
	return 0;
}

bool query_has(const struct query *q, const char *key) { return query_get(q, key) != NULL; }

const char *query_get(const struct query *q, const char *key)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		if (strcmp(q->v[i].key, key) == 0)
			return q->v[i].value;
	return NULL;
}

int query_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

struct unit {
	const char *name;
	uint64_t ns;
};

static const struct unit units[] = {
    {"ns", 1ull},
    {"us", 1000ull},
    {"\xc2\xb5s", 1000ull}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000ull}, /* U+03BC Greek mu */
    {"ms", 1000000ull},
    {"s", 1000000000ull},
    {"m", 60ull * 1000000000ull},
    {"h", 3600ull * 1000000000ull},
};

int query_parse_duration_ms(const char *s, uint64_t *out_ms)
{
	uint64_t total_ns = 0;
	const char *p = s;
	bool all_digits = true;
	size_t i;

	if (!s || !*s)
		return -EINVAL;
	if (*p == '+')
		p++;
	else if (*p == '-') {
		/* "-0" is zero in Go; any other negative wait is refused */
		if (strcmp(p, "-0") == 0) {
			*out_ms = 0;
			return 0;
		}
		return -EINVAL;
	}
	for (i = 0; p[i]; i++)
		if (p[i] < '0' || p[i] > '9')
			all_digits = false;
	if (*p == '\0')
		return -EINVAL;
	if (all_digits) {
		uint64_t secs;

		/* Go wants a unit except for "0"; we take bare digits as
		 * seconds, as Consul's documentation reads them. */
		if (query_parse_u64(p, &secs) < 0 || secs > UINT64_MAX / 1000)
			return -EINVAL;
		*out_ms = secs * 1000;
		return 0;
	}
	while (*p) {
		uint64_t whole = 0, frac = 0, scale = 1, unit_ns = 0;
		bool had_whole = false, had_frac = false;
		size_t ulen = 0;

		while (*p >= '0' && *p <= '9') {
			unsigned d = (unsigned)(*p - '0');

			if (whole > (UINT64_MAX - d) / 10)
				return -EINVAL;
			whole = whole * 10 + d;
			had_whole = true;
			p++;
		}
		if (*p == '.') {
			p++;
			while (*p >= '0' && *p <= '9') {
				/* keep at most 18 fractional digits */
				if (scale < 1000000000000000000ull) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					scale *= 10;
				}
				had_frac = true;
				p++;
			}
		}
		if (!had_whole && !had_frac)
			return -EINVAL;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
			size_t n = strlen(units[i].name);

			/* longest match: "ms" before "m", "s" */
			if (strncmp(p, units[i].name, n) == 0 && n > ulen) {
				ulen = n;
				unit_ns = units[i].ns;
			}
		}
		if (ulen == 0)
			return -EINVAL;
		p += ulen;
		if (whole > UINT64_MAX / unit_ns)
			return -EINVAL;
		whole *= unit_ns;
		/* frac/scale * unit_ns, computed without overflow */
		whole += (uint64_t)((long double)frac * (long double)unit_ns / (long double)scale);
		if (total_ns > UINT64_MAX - whole)
			return -EINVAL;
		total_ns += whole;
	}
	*out_ms = total_ns / 1000000ull;
	return 0;
}
