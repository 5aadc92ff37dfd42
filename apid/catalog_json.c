/* Direct JSON writer for the hot catalog views (see catalog_json.h). */
#include "catalog_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "catalog_api.h"

struct jw {
	char *buf; /* malloc'd while writing; copied into the arena at the end */
	size_t len, cap;
	bool oom;
};

static void raw(struct jw *w, const char *s, size_t n)
{
	if (w->oom)
		return;
	if (w->len + n + 1 > w->cap) {
		size_t ncap = w->cap ? w->cap : 4096;
		char *p;

		while (w->len + n + 1 > ncap)
			ncap *= 2;
		p = realloc(w->buf, ncap);
		if (!p) {
			w->oom = true;
			return;
		}
		w->buf = p;
		w->cap = ncap;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

#define LIT(w, s) raw((w), (s), sizeof(s) - 1)

/* A JSON string, escaped as jansson does by default (no ASCII or slash
 * escaping; short escapes for \b \f \n \r \t, \u00XX for other controls). */
static void str(struct jw *w, const char *s)
{
	const char *p = s ? s : "", *run = p;

	raw(w, "\"", 1);
	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;
		const char *esc = NULL;
		char u[8];

		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c < 0x20) {
			switch (c) {
			case '\b':
				esc = "\\b";
				break;
			case '\f':
				esc = "\\f";
				break;
			case '\n':
				esc = "\\n";
				break;
			case '\r':
				esc = "\\r";
				break;
			case '\t':
				esc = "\\t";
				break;
			default:
				snprintf(u, sizeof(u), "\\u%04X", c);
				esc = u;
			}
		}
		if (!esc)
			continue;
		raw(w, run, (size_t)(p - run));
		raw(w, esc, strlen(esc));
		run = p + 1;
	}
	raw(w, run, (size_t)(p - run));
	raw(w, "\"", 1);
}

static void key(struct jw *w, const char *k, bool first)
{
	if (!first)
		raw(w, ",", 1);
	str(w, k);
	raw(w, ":", 1);
}

static void u64(struct jw *w, uint64_t v)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%" PRId64, (int64_t)v); /* json_int_t, as jansson */

	raw(w, b, (size_t)n);
}

static void strs(struct jw *w, const struct proto_strs *s)
{
	raw(w, "[", 1);
	for (size_t i = 0; i < s->n; i++) {
		if (i)
			raw(w, ",", 1);
		str(w, s->v[i]);
	}
	raw(w, "]", 1);
}

static void map(struct jw *w, const struct proto_map *m)
{
	raw(w, "{", 1);
	for (size_t i = 0; i < m->n; i++) {
		/* jansson keeps one value per key: the last set wins, in the
		 * first one's position; stored maps come from JSON objects, so
		 * keys are unique */
		key(w, m->keys[i], i == 0);
		str(w, m->vals[i]);
	}
	raw(w, "}", 1);
}

/* A stored JSON object text (compact, sorted, from json_dumps), or {}. */
static void stored(struct jw *w, const char *text)
{
	if (text && *text)
		raw(w, text, strlen(text));
	else
		LIT(w, "{}");
}

static void node(struct jw *w, const struct proto_node *n)
{
	LIT(w, "{\"ID\":");
	str(w, n->id);
	LIT(w, ",\"Node\":");
	str(w, n->node);
	LIT(w, ",\"Address\":");
	str(w, n->address);
	LIT(w, ",\"Datacenter\":");
	str(w, n->datacenter);
	LIT(w, ",\"TaggedAddresses\":");
	map(w, &n->tagged_addresses);
	LIT(w, ",\"Meta\":");
	map(w, &n->meta);
	LIT(w, ",\"CreateIndex\":");
	u64(w, n->create_index);
	LIT(w, ",\"ModifyIndex\":");
	u64(w, n->modify_index);
	LIT(w, "}");
}

static void weights(struct jw *w, const struct proto_service *s)
{
	LIT(w, "{\"Passing\":");
	u64(w, s->weight_passing ? s->weight_passing : 1);
	LIT(w, ",\"Warning\":");
	u64(w, s->weight_warning);
	LIT(w, "}");
}

static void service(struct jw *w, const struct proto_service *s)
{
	raw(w, "{", 1);
	if (s->kind && *s->kind) {
		LIT(w, "\"Kind\":");
		str(w, s->kind);
		LIT(w, ",");
	}
	LIT(w, "\"ID\":");
	str(w, s->id);
	LIT(w, ",\"Service\":");
	str(w, s->service);
	LIT(w, ",\"Tags\":");
	strs(w, &s->tags);
	LIT(w, ",\"Address\":");
	str(w, s->address);
	LIT(w, ",\"TaggedAddresses\":");
	stored(w, s->tagged_addresses);
	LIT(w, ",\"Meta\":");
	map(w, &s->meta);
	LIT(w, ",\"Port\":");
	u64(w, s->port);
	LIT(w, ",\"Weights\":");
	weights(w, s);
	LIT(w, ",\"EnableTagOverride\":");
	if (s->enable_tag_override)
		LIT(w, "true");
	else
		LIT(w, "false");
	LIT(w, ",\"Proxy\":{\"MeshGateway\":{},\"Expose\":{}},\"Connect\":{},\"CreateIndex\":");
	u64(w, s->create_index);
	LIT(w, ",\"ModifyIndex\":");
	u64(w, s->modify_index);
	LIT(w, "}");
}

static void check(struct jw *w, const struct proto_check *c)
{
	LIT(w, "{\"Node\":");
	str(w, c->node);
	LIT(w, ",\"CheckID\":");
	str(w, c->check_id);
	LIT(w, ",\"Name\":");
	str(w, c->name);
	LIT(w, ",\"Status\":");
	str(w, c->status);
	LIT(w, ",\"Notes\":");
	str(w, c->notes);
	LIT(w, ",\"Output\":");
	str(w, c->output);
	LIT(w, ",\"ServiceID\":");
	str(w, c->service_id);
	LIT(w, ",\"ServiceName\":");
	str(w, c->service_name);
	LIT(w, ",\"ServiceTags\":");
	strs(w, &c->service_tags);
	LIT(w, ",\"Type\":");
	str(w, c->type);
	LIT(w, ",\"Interval\":\"\",\"Timeout\":\"\",\"ExposedPort\":0,\"Definition\":");
	stored(w, c->definition);
	LIT(w, ",\"CreateIndex\":");
	u64(w, c->create_index);
	LIT(w, ",\"ModifyIndex\":");
	u64(w, c->modify_index);
	LIT(w, "}");
}

static void catalog_entry(struct jw *w, const struct proto_node *n, const struct proto_service *s)
{
	static const struct proto_map empty;

	LIT(w, "{\"ID\":");
	str(w, n ? n->id : "");
	LIT(w, ",\"Node\":");
	str(w, s->node);
	LIT(w, ",\"Address\":");
	str(w, n ? n->address : "");
	LIT(w, ",\"Datacenter\":");
	str(w, n ? n->datacenter : "");
	LIT(w, ",\"TaggedAddresses\":");
	map(w, n ? &n->tagged_addresses : &empty);
	LIT(w, ",\"NodeMeta\":");
	map(w, n ? &n->meta : &empty);
	LIT(w, ",\"ServiceKind\":");
	str(w, s->kind);
	LIT(w, ",\"ServiceID\":");
	str(w, s->id);
	LIT(w, ",\"ServiceName\":");
	str(w, s->service);
	LIT(w, ",\"ServiceTags\":");
	strs(w, &s->tags);
	LIT(w, ",\"ServiceAddress\":");
	str(w, s->address);
	LIT(w, ",\"ServiceTaggedAddresses\":");
	stored(w, s->tagged_addresses);
	LIT(w, ",\"ServiceWeights\":");
	weights(w, s);
	LIT(w, ",\"ServiceMeta\":");
	map(w, &s->meta);
	LIT(w, ",\"ServicePort\":");
	u64(w, s->port);
	LIT(w, ",\"ServiceSocketPath\":\"\",\"ServiceEnableTagOverride\":");
	if (s->enable_tag_override)
		LIT(w, "true");
	else
		LIT(w, "false");
	LIT(w, ",\"ServiceProxy\":{\"MeshGateway\":{},\"Expose\":{}},\"ServiceConnect\":{},"
	       "\"CreateIndex\":");
	u64(w, s->create_index);
	LIT(w, ",\"ModifyIndex\":");
	u64(w, s->modify_index);
	LIT(w, "}");
}

int catalog_json_render(struct arena *a, unsigned view, const struct proto_catalog_query_reply *r,
			char **out, size_t *out_len)
{
	struct jw w = {0};
	char *copy;

	raw(&w, "[", 1);
	switch (view) {
	case 1: /* nodes */
		for (size_t i = 0; i < r->nodes.n; i++) {
			if (i)
				raw(&w, ",", 1);
			node(&w, &r->nodes.v[i]);
		}
		break;
	case 3: /* catalog/service */
		for (size_t i = 0; i < r->services.n; i++) {
			if (i)
				raw(&w, ",", 1);
			catalog_entry(&w, catalog_api_find_node(r, r->services.v[i].node),
				      &r->services.v[i]);
		}
		break;
	case 6: /* health node, checks, state */
	case 7:
	case 9:
		for (size_t i = 0; i < r->checks.n; i++) {
			if (i)
				raw(&w, ",", 1);
			check(&w, &r->checks.v[i]);
		}
		break;
	case 8: { /* health/service */
		size_t k = 0;

		for (size_t i = 0; i < r->services.n; i++) {
			const struct proto_service *s = &r->services.v[i];
			const struct proto_node *n = catalog_api_find_node(r, s->node);
			size_t end = catalog_api_check_group(r, k, s);

			if (i)
				raw(&w, ",", 1);
			LIT(&w, "{\"Node\":");
			if (n)
				node(&w, n);
			else
				LIT(&w, "null");
			LIT(&w, ",\"Service\":");
			service(&w, s);
			LIT(&w, ",\"Checks\":[");
			for (size_t c = k; c < end; c++) {
				if (c > k)
					raw(&w, ",", 1);
				check(&w, &r->checks.v[c]);
			}
			LIT(&w, "]}");
			k = end;
		}
		break;
	}
	default:
		free(w.buf);
		return -ENOTSUP;
	}
	raw(&w, "]", 1);
	if (w.oom) {
		free(w.buf);
		return -ENOMEM;
	}
	copy = arena_alloc(a, w.len + 1);
	if (!copy) {
		free(w.buf);
		return -ENOMEM;
	}
	memcpy(copy, w.buf, w.len);
	copy[w.len] = 0;
	free(w.buf);
	*out = copy;
	*out_len = w.len;
	return 0;
}
