/* JSON request bodies into proto records (see json_body.h). */
#include "json_body.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* Compares a JSON key with a Consul field name ignoring case and '_'. */
static bool key_eq(const char *k, const char *want)
{
	for (;;) {
		while (*k == '_')
			k++;
		while (*want == '_')
			want++;
		if (!*k || !*want)
			return !*k && !*want;
		if ((*k | 0x20) != (*want | 0x20))
			return false;
		k++;
		want++;
	}
}

json_t *json_body_get(const json_t *o, const char *key)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return NULL;
	v = json_object_get(o, key);
	if (v)
		return v;
	json_object_foreach((json_t *)o, k, v)
	{
		if (key_eq(k, key))
			return v;
	}
	return NULL;
}

const char *json_body_decode_object(const void *body, size_t len, struct arena *a, json_t **out_obj)
{
	json_error_t e;

	*out_obj = NULL;
	if (!body || len == 0)
		return "Request decode failed: EOF";
	*out_obj = json_loadb((const char *)body, len, 0, &e);
	if (!*out_obj)
		return arena_printf(a, "Request decode failed: %s", e.text);
	if (!json_is_object(*out_obj)) {
		json_decref(*out_obj);
		*out_obj = NULL;
		return "Request decode failed: body must be a JSON object";
	}
	return NULL;
}

/* Records "<prefix>: <key> <what>" as b's error. */
static void fail(struct json_body *b, const char *key, const char *what)
{
	b->bad = arena_printf(b->a, "%s: %s %s", b->dialect->prefix, key, what);
}

const char *json_body_str(struct json_body *b, const json_t *o, const char *key)
{
	json_t *v = json_body_get(o, key);

	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		fail(b, key, "must be a string");
		return NULL;
	}
	return arena_strdup(b->a, json_string_value(v));
}

uint64_t json_body_uint(struct json_body *b, const json_t *o, const char *key, uint64_t dflt)
{
	json_t *v = json_body_get(o, key);

	if (!v || json_is_null(v))
		return dflt;
	if (json_is_integer(v) && json_integer_value(v) >= 0)
		return (uint64_t)json_integer_value(v);
	if (b->dialect->whole_reals && json_is_real(v) && json_real_value(v) >= 0 &&
	    json_real_value(v) < 1.8e19)
		return (uint64_t)json_real_value(v);
	fail(b, key, "must be a non-negative integer");
	return dflt;
}

int json_body_map(struct json_body *b, const json_t *o, const char *key, struct proto_map *m)
{
	json_t *v = json_body_get(o, key), *x;
	const char *k;
	size_t i = 0, n;

	memset(m, 0, sizeof(*m));
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		fail(b, key, "must be an object");
		return 0;
	}
	n = json_object_size(v);
	if (!n)
		return 0;
	m->keys = arena_alloc(b->a, n * sizeof(*m->keys));
	m->vals = arena_alloc(b->a, n * sizeof(*m->vals));
	if (!m->keys || !m->vals)
		return -ENOMEM;
	json_object_foreach(v, k, x)
	{
		if (!json_is_string(x)) {
			fail(b, key, b->dialect->map_not_string);
			return 0;
		}
		m->keys[i] = arena_strdup(b->a, k);
		m->vals[i] = arena_strdup(b->a, json_string_value(x));
		if (!m->keys[i] || !m->vals[i])
			return -ENOMEM;
		i++;
	}
	m->n = i;
	return 0;
}

int json_body_strs(struct json_body *b, const json_t *o, const char *key, struct proto_strs *s)
{
	json_t *v = json_body_get(o, key);
	size_t n;

	memset(s, 0, sizeof(*s));
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_array(v)) {
		fail(b, key, "must be an array");
		return 0;
	}
	n = json_array_size(v);
	if (!n)
		return 0;
	s->v = arena_alloc(b->a, n * sizeof(*s->v));
	if (!s->v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_array_get(v, i);

		if (!json_is_string(x)) {
			fail(b, key, "must hold strings");
			return 0;
		}
		s->v[i] = arena_strdup(b->a, json_string_value(x));
		if (!s->v[i])
			return -ENOMEM;
	}
	s->n = n;
	return 0;
}

const char *json_body_raw(const json_t *o, const char *key, struct arena *a)
{
	json_t *v = json_body_get(o, key);
	char *s, *d;

	if (!v || json_is_null(v))
		return NULL;
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	if (!s)
		return NULL;
	d = arena_strdup(a, s);
	free(s);
	return d;
}
