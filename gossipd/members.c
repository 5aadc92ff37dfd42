/* The gossip member table; see members.h. */
#include "members.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "proto.h"

void members_init(struct members *t) { memset(t, 0, sizeof(*t)); }

void member_free_fields(struct member *m)
{
	free(m->name);
	free(m->addr);
	for (size_t i = 0; i < m->n_tags; i++) {
		free(m->tags[i].key);
		free(m->tags[i].val);
	}
	free(m->tags);
	memset(m, 0, sizeof(*m));
}

void members_close(struct members *t)
{
	for (size_t i = 0; i < t->n; i++)
		member_free_fields(&t->v[i]);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Index of key in the sorted tags, or where it would go (*found false). */
static size_t tag_pos(const struct member *m, const char *key, bool *found)
{
	size_t lo = 0, hi = m->n_tags;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(m->tags[mid].key, key);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int member_tag_set(struct member *m, const char *key, const char *val)
{
	bool found;
	size_t pos = tag_pos(m, key, &found);
	char *v = strdup(val);
	char *k = NULL;
	struct member_tag *tags;

	if (!v)
		return -ENOMEM;
	if (found) {
		free(m->tags[pos].val);
		m->tags[pos].val = v;
		return 0;
	}
	k = strdup(key);
	tags = k ? realloc(m->tags, (m->n_tags + 1) * sizeof(*tags)) : NULL;
	if (!tags) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	m->tags = tags;
	memmove(&tags[pos + 1], &tags[pos], (m->n_tags - pos) * sizeof(*tags));
	tags[pos].key = k;
	tags[pos].val = v;
	m->n_tags++;
	return 0;
}

const char *member_tag_get(const struct member *m, const char *key)
{
	bool found;
	size_t pos = tag_pos(m, key, &found);

	return found ? m->tags[pos].val : NULL;
}

/* Deep copy of src into *dst (zeroed by the caller). */
static int member_copy(struct member *dst, const struct member *src)
{
	dst->name = strdup(src->name);
	dst->addr = strdup(src->addr ? src->addr : "");
	dst->port = src->port;
	dst->status = src->status;
	if (!dst->name || !dst->addr)
		goto fail;
	for (size_t i = 0; i < src->n_tags; i++)
		if (member_tag_set(dst, src->tags[i].key, src->tags[i].val) < 0)
			goto fail;
	return 0;
fail:
	member_free_fields(dst);
	return -ENOMEM;
}

int members_self_build(const struct members_self *self, bool wan, struct member *out)
{
	struct member m = {0};
	char num[32];
	int rc = -ENOMEM;

	if (!self->node_name || !*self->node_name || !self->addr || !*self->addr ||
	    !self->datacenter)
		return -EINVAL;
	if (wan) {
		size_t len = strlen(self->node_name) + strlen(self->datacenter) + 2;

		m.name = malloc(len);
		if (m.name)
			snprintf(m.name, len, "%s.%s", self->node_name, self->datacenter);
	} else {
		m.name = strdup(self->node_name);
	}
	m.addr = strdup(self->addr);
	m.port = self->port;
	m.status = MEMBER_ALIVE;
	if (!m.name || !m.addr)
		goto fail;

	/* Consul's serf tags (agent/consul/server_serf.go, client_serf.go) */
	if (member_tag_set(&m, "role", self->server ? "consul" : "node") < 0 ||
	    member_tag_set(&m, "dc", self->datacenter) < 0 ||
	    member_tag_set(&m, "segment", "") < 0 ||
	    member_tag_set(&m, "id", self->node_id ? self->node_id : "") < 0 ||
	    member_tag_set(&m, "vsn", "2") < 0 || member_tag_set(&m, "vsn_min", "2") < 0 ||
	    member_tag_set(&m, "vsn_max", "3") < 0 ||
	    member_tag_set(&m, "build", self->build ? self->build : "") < 0)
		goto fail;
	if (self->server) {
		snprintf(num, sizeof(num), "%d", self->server_port);
		if (member_tag_set(&m, "port", num) < 0 || member_tag_set(&m, "raft_vsn", "3") < 0)
			goto fail;
		if (self->bootstrap_expect > 0) {
			snprintf(num, sizeof(num), "%d", self->bootstrap_expect);
			if (member_tag_set(&m, "expect", num) < 0)
				goto fail;
		}
	}
	*out = m;
	return 0;
fail:
	member_free_fields(&m);
	return rc;
}

/* Index of name in the sorted table, or where it would go. */
static size_t member_pos(const struct members *t, const char *name, bool *found)
{
	size_t lo = 0, hi = t->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(t->v[mid].name, name);

		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

const struct member *members_find(const struct members *t, const char *name)
{
	bool found;
	size_t pos = member_pos(t, name, &found);

	return found ? &t->v[pos] : NULL;
}

static bool same_tags(const struct member *a, const struct member *b)
{
	if (a->n_tags != b->n_tags)
		return false;
	for (size_t i = 0; i < a->n_tags; i++) {
		const char *v = member_tag_get(b, a->tags[i].key);

		if (!v || strcmp(v, a->tags[i].val) != 0)
			return false;
	}
	return true;
}

static enum member_event classify(const struct member *old, const struct member *m)
{
	bool gone = old->status == MEMBER_LEFT || old->status == MEMBER_FAILED;

	if (old->status != m->status) {
		switch (m->status) {
		case MEMBER_ALIVE:
			return gone ? MEMBER_EVENT_JOIN : MEMBER_EVENT_UPDATE;
		case MEMBER_LEAVING:
			return MEMBER_EVENT_UPDATE;
		case MEMBER_LEFT:
			return MEMBER_EVENT_LEAVE;
		case MEMBER_FAILED:
			return MEMBER_EVENT_FAIL;
		default:
			return MEMBER_EVENT_UPDATE;
		}
	}
	if (strcmp(old->addr, m->addr ? m->addr : "") != 0 || old->port != m->port ||
	    !same_tags(old, m))
		return MEMBER_EVENT_UPDATE;
	return MEMBER_EVENT_NONE;
}

int members_upsert(struct members *t, const struct member *m, enum member_event *out_event)
{
	struct member copy = {0};
	enum member_event ev;
	bool found;
	size_t pos;

	if (!m->name)
		return -EINVAL;
	pos = member_pos(t, m->name, &found);
	ev = found ? classify(&t->v[pos], m) : MEMBER_EVENT_JOIN;
	if (ev == MEMBER_EVENT_NONE) {
		if (out_event)
			*out_event = ev;
		return 0;
	}
	if (member_copy(&copy, m) < 0)
		return -ENOMEM;
	if (found) {
		member_free_fields(&t->v[pos]);
	} else {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 8;
			struct member *v = realloc(t->v, cap * sizeof(*v));

			if (!v) {
				member_free_fields(&copy);
				return -ENOMEM;
			}
			t->v = v;
			t->cap = cap;
		}
		memmove(&t->v[pos + 1], &t->v[pos], (t->n - pos) * sizeof(*t->v));
		t->n++;
	}
	t->v[pos] = copy;
	t->seq++;
	if (out_event)
		*out_event = ev;
	return 0;
}

int members_remove(struct members *t, const char *name)
{
	bool found;
	size_t pos = member_pos(t, name, &found);

	if (!found)
		return -ENOENT;
	member_free_fields(&t->v[pos]);
	memmove(&t->v[pos], &t->v[pos + 1], (t->n - pos - 1) * sizeof(*t->v));
	t->n--;
	t->seq++;
	return 0;
}

int member_to_proto(const struct member *m, struct arena *a, struct proto_member *out)
{
	struct proto_member r = {0};

	r.name = m->name;
	r.addr = m->addr;
	r.port = m->port;
	r.status = (uint64_t)m->status;
	r.tags.n = m->n_tags;
	if (m->n_tags > 0) {
		r.tags.keys = arena_alloc(a, m->n_tags * sizeof(*r.tags.keys));
		r.tags.vals = arena_alloc(a, m->n_tags * sizeof(*r.tags.vals));
		if (!r.tags.keys || !r.tags.vals)
			return -ENOMEM;
		for (size_t i = 0; i < m->n_tags; i++) {
			r.tags.keys[i] = m->tags[i].key;
			r.tags.vals[i] = m->tags[i].val;
		}
	}
	*out = r;
	return 0;
}

int members_to_proto(const struct members *t, struct arena *a, struct proto_member **out_v,
		     size_t *out_n)
{
	struct proto_member *v = NULL;

	if (t->n > 0) {
		v = arena_zalloc(a, t->n * sizeof(*v));
		if (!v)
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->n; i++) {
		int rc = member_to_proto(&t->v[i], a, &v[i]);

		if (rc < 0)
			return rc;
	}
	*out_v = v;
	*out_n = t->n;
	return 0;
}
