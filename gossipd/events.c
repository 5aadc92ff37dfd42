/* Recent user events; see events.h. */
#include "events.h"

#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "proto.h"
#include "swim.h"

void events_init(struct events *e) { memset(e, 0, sizeof(*e)); }

static void entry_free(struct events_entry *x)
{
	free(x->id);
	free(x->name);
	free(x->node_filter);
	free(x->service_filter);
	free(x->tag_filter);
	free(x->payload);
	memset(x, 0, sizeof(*x));
}

void events_close(struct events *e)
{
	for (size_t i = 0; i < EVENTS_KEEP; i++)
		entry_free(&e->v[i]);
	memset(e, 0, sizeof(*e));
}

static bool matches(const char *re, const char *s)
{
	regex_t r;
	bool m;

	if (!re || !*re)
		return true;
	if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	m = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return m;
}

static char *dup0(const char *s) { return strdup(s ? s : ""); }

int events_add(struct events *e, const struct swim_user_event *ev, const char *node)
{
	struct events_entry x = {0};
	size_t slot;

	if (!matches(ev->node_filter, node))
		return 0;
	x.id = dup0(ev->id);
	x.name = dup0(ev->name);
	x.node_filter = dup0(ev->node_filter);
	x.service_filter = dup0(ev->service_filter);
	x.tag_filter = dup0(ev->tag_filter);
	x.payload_len = ev->payload_len;
	x.payload = malloc(ev->payload_len ? ev->payload_len : 1);
	x.ltime = ev->ltime;
	if (!x.id || !x.name || !x.node_filter || !x.service_filter || !x.tag_filter ||
	    !x.payload) {
		entry_free(&x);
		return -ENOMEM;
	}
	if (ev->payload_len)
		memcpy(x.payload, ev->payload, ev->payload_len);
	if (e->n < EVENTS_KEEP) {
		slot = (e->start + e->n) % EVENTS_KEEP;
		e->n++;
	} else {
		slot = e->start; /* overwrite the oldest */
		entry_free(&e->v[slot]);
		e->start = (e->start + 1) % EVENTS_KEEP;
	}
	e->v[slot] = x;
	e->index++;
	return 1;
}

int events_to_proto(const struct events *e, const char *name, struct arena *a,
		    struct proto_user_event **out_v, size_t *out_n)
{
	struct proto_user_event *v = NULL;
	size_t n = 0;

	if (e->n > 0) {
		v = arena_zalloc(a, e->n * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (size_t i = 0; i < e->n; i++) {
		const struct events_entry *x = &e->v[(e->start + i) % EVENTS_KEEP];

		if (name && *name && strcmp(name, x->name) != 0)
			continue;
		v[n].id = x->id;
		v[n].name = x->name;
		v[n].payload.ptr = x->payload_len ? x->payload : NULL;
		v[n].payload.len = x->payload_len;
		v[n].node_filter = x->node_filter;
		v[n].service_filter = x->service_filter;
		v[n].tag_filter = x->tag_filter;
		v[n].ltime = x->ltime;
		n++;
	}
	*out_v = v;
	*out_n = n;
	return 0;
}
