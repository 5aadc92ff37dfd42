/* JSON bodies of the HTTP API (see render.h). */
#include "render.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"

#ifndef CAIRN_VERSION
#define CAIRN_VERSION "0.0.0"
#endif

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Writes the base64 of p[0..n) to out ((n + 2) / 3 * 4 bytes, no NUL);
 * returns that length. */
static size_t base64_into(char *out, const uint8_t *p, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];

		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = '=';
	}
	return o;
}

char *render_base64(struct arena *a, const uint8_t *p, size_t n)
{
	char *out = arena_alloc(a, (n + 2) / 3 * 4 + 1);

	if (!out)
		return NULL;
	out[base64_into(out, p, n)] = '\0';
	return out;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

json_t *render_string(const char *s)
{
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), i, o = 0, k;
	char *buf;
	json_t *j;

	j = json_stringn(s ? s : "", n);
	if (j)
		return j;
	/* invalid UTF-8: replace each bad byte with U+FFFD (3 bytes) */
	buf = malloc(n * 3 + 1);
	if (!buf)
		return NULL;
	for (i = 0; i < n;) {
		size_t len = utf8_seq(u + i, n - i);

		if (len == 0) {
			buf[o++] = (char)0xef;
			buf[o++] = (char)0xbf;
			buf[o++] = (char)0xbd;
			i++;
			continue;
		}
		for (k = 0; k < len; k++)
			buf[o++] = (char)u[i + k];
		i += len;
	}
	j = json_stringn(buf, o);
	free(buf);
	return j;
}

/* Adds key -> value to obj, stealing value; false (and obj unchanged
 * apart from the lost value) when out of memory. */
static bool put(json_t *obj, const char *key, json_t *value)
{
	return value && json_object_set_new(obj, key, value) == 0;
}

json_t *render_kv_entry(const struct proto_kv_entry *e)
{
	json_t *o = json_object();
	json_t *value;

	if (!o)
		return NULL;
	if (e->value.len == 0) {
		value = json_null();
	} else {
		size_t olen = (e->value.len + 2) / 3 * 4;
		struct arena tmp;
		char *b64;

		/* one allocation the size of the encoding, freed at once */
		arena_init(&tmp, olen + 64);
		b64 = render_base64(&tmp, e->value.ptr, e->value.len);
		value = b64 ? json_stringn_nocheck(b64, olen) : NULL;
		arena_close(&tmp);
	}
	if (!put(o, "LockIndex", json_integer((json_int_t)e->lock_index)) ||
	    !put(o, "Key", render_string(e->key)) ||
	    !put(o, "Flags", json_integer(e->flags > INT64_MAX ? 0 : (json_int_t)e->flags)) ||
	    !put(o, "Value", value))
		goto fail;
	if (e->session && e->session[0] && !put(o, "Session", render_string(e->session)))
		goto fail;
	if (!put(o, "CreateIndex", json_integer((json_int_t)e->create_index)) ||
	    !put(o, "ModifyIndex", json_integer((json_int_t)e->modify_index)))
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

json_t *render_kv_entries(const struct proto_kv_entry *v, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < n; i++) {
		if (json_array_append_new(arr, render_kv_entry(&v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

json_t *render_strs(const struct proto_strs *s)
{
	json_t *arr = json_array();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < s->n; i++) {
		if (json_array_append_new(arr, render_string(s->v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static int cmp_key(const void *x, const void *y, void *keys)
{
	const char *const *k = keys;
	const char *a = k[*(const size_t *)x], *b = k[*(const size_t *)y];

	return strcmp(a ? a : "", b ? b : "");
}

/* A string map, keys in byte order as Go's encoding/json writes maps. */
static json_t *render_map(const struct proto_map *m)
{
	json_t *o = json_object();
	size_t *idx = NULL, i;

	if (!o)
		return NULL;
	if (m->n) {
		idx = malloc(m->n * sizeof(*idx));
		if (!idx)
			goto fail;
		for (i = 0; i < m->n; i++)
			idx[i] = i;
		qsort_r(idx, m->n, sizeof(*idx), cmp_key, (void *)m->keys);
	}
	for (i = 0; i < m->n; i++) {
		size_t k = idx[i];

		if (!put(o, m->keys[k] ? m->keys[k] : "", render_string(m->vals[k])))
			goto fail;
	}
	free(idx);
	return o;
fail:
	free(idx);
	json_decref(o);
	return NULL;
}

json_t *render_member(const struct proto_member *m)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	/* serf's protocol range and memberlist's delegate range, as Consul
	 * 1.x reports them */
	if (!put(o, "Name", render_string(m->name)) || !put(o, "Addr", render_string(m->addr)) ||
	    !put(o, "Port", json_integer((json_int_t)m->port)) ||
	    !put(o, "Tags", render_map(&m->tags)) ||
	    !put(o, "Status", json_integer((json_int_t)m->status)) ||
	    !put(o, "ProtocolMin", json_integer(1)) || !put(o, "ProtocolMax", json_integer(5)) ||
	    !put(o, "ProtocolCur", json_integer(2)) || !put(o, "DelegateMin", json_integer(2)) ||
	    !put(o, "DelegateMax", json_integer(5)) || !put(o, "DelegateCur", json_integer(4))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *render_members(const struct proto_member *v, size_t n)
{
	json_t *arr = json_array();
	size_t i;

	if (!arr)
		return NULL;
	for (i = 0; i < n; i++) {
		if (json_array_append_new(arr, render_member(&v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

static json_t *render_coord(void)
{
	/* a fresh Vivaldi coordinate, as a new Consul agent reports it */
	return json_pack("{s:[i,i,i,i,i,i,i,i],s:f,s:i,s:f}", "Vec", 0, 0, 0, 0, 0, 0, 0, 0,
			 "Error", 1.5, "Adjustment", 0, "Height", 1e-05);
}

json_t *render_agent_self(const struct config *cfg, const struct proto_member *member)
{
	json_t *o = json_object(), *c = json_object(), *dbg = json_object();

	if (!o || !c || !dbg)
		goto fail;
	if (!put(c, "Datacenter", render_string(cfg->datacenter)) ||
	    !put(c, "PrimaryDatacenter", render_string(cfg->datacenter)) ||
	    !put(c, "NodeName", render_string(cfg->node_name)) ||
	    !put(c, "NodeID", render_string(cfg->node_id)) ||
	    !put(c, "Revision", json_string("")) || !put(c, "Server", json_boolean(cfg->server)) ||
	    !put(c, "Version", json_string(CAIRN_VERSION)) || !put(c, "BuildDate", json_string("")))
		goto fail;
	if (!put(dbg, "Datacenter", render_string(cfg->datacenter)) ||
	    !put(dbg, "NodeName", render_string(cfg->node_name)) ||
	    !put(dbg, "NodeID", render_string(cfg->node_id)) ||
	    !put(dbg, "DataDir", render_string(cfg->data_dir)) ||
	    !put(dbg, "ServerMode", json_boolean(cfg->server)) ||
	    !put(dbg, "DevMode", json_boolean(cfg->dev)) ||
	    !put(dbg, "BootstrapExpect", json_integer(cfg->bootstrap_expect)) ||
	    !put(dbg, "HTTPPort", json_integer(cfg->ports.http)) ||
	    !put(dbg, "DNSPort", json_integer(cfg->ports.dns)) ||
	    !put(dbg, "ServerPort", json_integer(cfg->ports.server)) ||
	    !put(dbg, "SerfPortLAN", json_integer(cfg->ports.serf_lan)) ||
	    !put(dbg, "SerfPortWAN", json_integer(cfg->ports.serf_wan)) ||
	    !put(dbg, "DNSDomain", render_string(cfg->domain)))
		goto fail;
	if (!put(o, "Config", c)) {
		c = NULL;
		goto fail;
	}
	c = NULL;
	if (!put(o, "DebugConfig", dbg)) {
		dbg = NULL;
		goto fail;
	}
	dbg = NULL;
	if (!put(o, "Coord", render_coord()) || !put(o, "Member", render_member(member)) ||
	    !put(o, "Stats", json_object()) ||
	    !put(o, "Meta", json_pack("{s:s}", "consul-network-segment", "")))
		goto fail;
	return o;
fail:
	json_decref(c);
	json_decref(dbg);
	json_decref(o);
	return NULL;
}

int render_dump(struct arena *a, const json_t *j, bool pretty, char **out, size_t *out_len)
{
	size_t flags = JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15) |
		       (pretty ? JSON_INDENT(4) : JSON_COMPACT);
	size_t need = json_dumpb(j, NULL, 0, flags), got;
	char *buf;

	if (need == 0)
		return -ENOMEM;
	buf = arena_alloc(a, need + 2);
	if (!buf)
		return -ENOMEM;
	got = json_dumpb(j, buf, need, flags);
	if (got != need)
		return -ENOMEM;
	if (pretty)
		buf[got++] = '\n';
	buf[got] = '\0';
	*out = buf;
	*out_len = got;
	return 0;
}

int render_kv_dump_jansson(struct arena *a, const struct proto_kv_entry *v, size_t n, bool pretty,
			   char **out, size_t *out_len)
{
	static const char pat[] = "\"Flags\":";
	json_t *arr = render_kv_entries(v, n);
	char *text, *buf, *o;
	const char *p;
	size_t len, i, big = 0, entry = 0;
	int rc;

	if (!arr)
		return -ENOMEM;
	rc = render_dump(a, arr, pretty, &text, &len);
	json_decref(arr);
	if (rc < 0)
		return rc;
	for (i = 0; i < n; i++)
		if (v[i].flags > INT64_MAX)
			big++;
	if (big == 0) {
		*out = text;
		*out_len = len;
		return 0;
	}
	/* Entries above INT64_MAX were written with Flags 0: put the real
	 * number in. The k-th "Flags": in the text is entry k's key, since a
	 * quote inside a JSON string is always escaped. */
	buf = arena_alloc(a, len + big * 20 + 1);
	if (!buf)
		return -ENOMEM;
	o = buf;
	p = text;
	while (entry < n) {
		const char *hit = strstr(p, pat);

		if (!hit)
			break;
		hit += sizeof(pat) - 1;
		if (*hit == ' ')
			hit++;
		memcpy(o, p, (size_t)(hit - p));
		o += hit - p;
		p = hit;
		if (v[entry].flags > INT64_MAX && *p == '0') {
			o += sprintf(o, "%llu", (unsigned long long)v[entry].flags);
			p++;
		}
		entry++;
	}
	len = strlen(p);
	memcpy(o, p, len + 1);
	o += len;
	*out = buf;
	*out_len = (size_t)(o - buf);
	return 0;
}

/* ---- direct KV writer ------------------------------------------------- */

/* Worst-case bytes of kv_str(s): every byte as \u00XX. */
static size_t kv_str_bound(const char *s) { return 2 + 6 * (s ? strlen(s) : 0); }

/* Writes s as a JSON string the way render_string + jansson's compact dump
 * do: invalid UTF-8 bytes become U+FFFD, '"' and '\\' and control bytes
 * are escaped (\b \f \n \r \t short, others \u00XX); all else verbatim. */
static char *kv_str(char *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)u), i = 0;

	*o++ = '"';
	while (i < n) {
		unsigned char c = u[i];
		size_t len;

		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c < 0x80) {
			*o++ = '\\';
			switch (c) {
			case '"':
			case '\\':
				*o++ = (char)c;
				break;
			case '\b':
				*o++ = 'b';
				break;
			case '\f':
				*o++ = 'f';
				break;
			case '\n':
				*o++ = 'n';
				break;
			case '\r':
				*o++ = 'r';
				break;
			case '\t':
				*o++ = 't';
				break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[c >> 4];
				*o++ = hex[c & 15];
			}
			i++;
			continue;
		}
		len = utf8_seq(u + i, n - i);
		if (len == 0) {
			*o++ = (char)0xef;
			*o++ = (char)0xbf;
			*o++ = (char)0xbd;
			i++;
			continue;
		}
		memcpy(o, u + i, len);
		o += len;
		i += len;
	}
	*o++ = '"';
	return o;
}

/* A uint64 as decimal digits. */
static char *kv_u64(char *o, uint64_t v)
{
	char b[20];
	size_t n = 0;

	do {
		b[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		*o++ = b[--n];
	return o;
}

/* An index as jansson writes a json_int_t cast from it (negative above
 * INT64_MAX, as the jansson rendering does). */
static char *kv_int(char *o, uint64_t v)
{
	if (v > INT64_MAX) {
		*o++ = '-';
		return kv_u64(o, (uint64_t)0 - v);
	}
	return kv_u64(o, v);
}

#define KV_LIT(o, s) (memcpy((o), (s), sizeof(s) - 1), (o) + sizeof(s) - 1)

/* Compact rendering straight into one arena buffer sized for the worst
 * case; the bytes equal render_kv_dump_jansson(..., false, ...). */
static int kv_dump_compact(struct arena *a, const struct proto_kv_entry *v, size_t n, char **out,
			   size_t *out_len)
{
	/* keys, punctuation and five numbers of at most 20 digits + sign */
	const size_t fixed = 128 + 5 * 21;
	size_t need = 3, i;
	char *buf, *o;

	for (i = 0; i < n; i++) {
		const struct proto_kv_entry *e = &v[i];

		need += fixed + kv_str_bound(e->key) + (e->value.len + 2) / 3 * 4;
		if (e->session && e->session[0])
			need += kv_str_bound(e->session);
	}
	buf = arena_alloc(a, need);
	if (!buf)
		return -ENOMEM;
	o = buf;
	*o++ = '[';
	for (i = 0; i < n; i++) {
		const struct proto_kv_entry *e = &v[i];

		if (i)
			*o++ = ',';
		o = KV_LIT(o, "{\"LockIndex\":");
		o = kv_int(o, e->lock_index);
		o = KV_LIT(o, ",\"Key\":");
		o = kv_str(o, e->key);
		o = KV_LIT(o, ",\"Flags\":");
		o = kv_u64(o, e->flags);
		o = KV_LIT(o, ",\"Value\":");
		if (e->value.len == 0) {
			o = KV_LIT(o, "null");
		} else {
			*o++ = '"';
			o += base64_into(o, e->value.ptr, e->value.len);
			*o++ = '"';
		}
		if (e->session && e->session[0]) {
			o = KV_LIT(o, ",\"Session\":");
			o = kv_str(o, e->session);
		}
		o = KV_LIT(o, ",\"CreateIndex\":");
		o = kv_int(o, e->create_index);
		o = KV_LIT(o, ",\"ModifyIndex\":");
		o = kv_int(o, e->modify_index);
		*o++ = '}';
	}
	*o++ = ']';
	*o = '\0';
	*out = buf;
	*out_len = (size_t)(o - buf);
	return 0;
}

int render_kv_dump(struct arena *a, const struct proto_kv_entry *v, size_t n, bool pretty,
		   char **out, size_t *out_len)
{
	if (pretty)
		return render_kv_dump_jansson(a, v, n, true, out, out_len);
	return kv_dump_compact(a, v, n, out, out_len);
}

json_t *render_user_event(const struct proto_user_event *e)
{
	json_t *o = json_object();
	json_t *payload = json_null();

	if (!o)
		return NULL;
	if (e->payload.len > 0) {
		/* render_base64 wants an arena; a small one just for this */
		struct arena a;
		char *b64;

		arena_init(&a, 0);
		b64 = render_base64(&a, e->payload.ptr, e->payload.len);
		payload = b64 ? json_string(b64) : NULL;
		arena_close(&a);
	}
	if (json_object_set_new(o, "ID", json_string(e->id ? e->id : "")) < 0 ||
	    json_object_set_new(o, "Name", json_string(e->name ? e->name : "")) < 0 ||
	    json_object_set_new(o, "Payload", payload) < 0 ||
	    json_object_set_new(o, "NodeFilter",
				json_string(e->node_filter ? e->node_filter : "")) < 0 ||
	    json_object_set_new(o, "ServiceFilter",
				json_string(e->service_filter ? e->service_filter : "")) < 0 ||
	    json_object_set_new(o, "TagFilter", json_string(e->tag_filter ? e->tag_filter : "")) <
		0 ||
	    json_object_set_new(o, "Version", json_integer(1)) < 0 ||
	    json_object_set_new(o, "LTime", json_integer((json_int_t)e->ltime)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *render_user_events(const struct proto_user_event *v, size_t n)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, render_user_event(&v[i])) < 0) {
			json_decref(arr);
			return NULL;
		}
	return arr;
}

json_t *render_raft_configuration(const struct proto_operator_raft_config_reply *r)
{
	json_t *o = json_object(), *arr = json_array();

	if (!o || !arr || !put(o, "Servers", arr)) {
		if (!o)
			json_decref(arr);
		json_decref(o);
		return NULL;
	}
	for (size_t i = 0; i < r->servers.n; i++) {
		const struct proto_raft_server *sv = &r->servers.v[i];
		json_t *s = json_object();

		/* Raft protocol 3 is what every server speaks (Consul's serf
		 * tag raft_vsn) */
		if (!s || json_array_append_new(arr, s) < 0 ||
		    !put(s, "ID", render_string(sv->id)) ||
		    !put(s, "Node", render_string(sv->node)) ||
		    !put(s, "Address", render_string(sv->address)) ||
		    !put(s, "Leader", json_boolean(sv->leader)) ||
		    !put(s, "ProtocolVersion", json_string("3")) ||
		    !put(s, "Voter", json_boolean(sv->voter))) {
			json_decref(o);
			return NULL;
		}
	}
	if (!put(o, "Index", json_integer((json_int_t)r->index))) {
		json_decref(o);
		return NULL;
	}
	return o;
}
