/* Choice of a server for a client agent's RPCs (see servers.h).
 *
 * A handful of servers per datacenter: a plain array, linear scans. */
#include "servers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "member_feed.h"

struct server_entry {
	char *name;	       /* gossip member name */
	char *endpoint;	       /* "tcp://addr:port" */
	uint64_t held_until_ms; /* not chosen before this (0: never failed) */
};

struct servers {
	struct servers_io io;
	struct server_entry *v;
	size_t n, cap;
	size_t current;		/* index in v of the server in use */
	int has_current;	/* current is valid */
	uint64_t rebalance_at_ms; /* choose again after this */
};

struct servers *servers_new(const struct servers_io *io)
{
	struct servers *s = calloc(1, sizeof(*s));

	if (s)
		s->io = *io;
	return s;
}

void servers_free(struct servers *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].name);
		free(s->v[i].endpoint);
	}
	free(s->v);
	free(s);
}

static struct server_entry *find_name(const struct servers *s, const char *name, size_t *out_i)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, name)) {
			if (out_i)
				*out_i = i;
			return &s->v[i];
		}
	return NULL;
}

int servers_set(struct servers *s, const char *name, const char *endpoint)
{
	struct server_entry *e = find_name(s, name, NULL);
	char *ep;

	if (e && !strcmp(e->endpoint, endpoint))
		return 0;
	ep = strdup(endpoint);
	if (!ep)
		return -ENOMEM;
	if (e) {
		free(e->endpoint);
		e->endpoint = ep;
		e->held_until_ms = 0;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct server_entry *v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			free(ep);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	e = &s->v[s->n];
	e->name = strdup(name);
	if (!e->name) {
		free(ep);
		return -ENOMEM;
	}
	e->endpoint = ep;
	e->held_until_ms = 0;
	s->n++;
	return 0;
}

void servers_remove(struct servers *s, const char *name)
{
	size_t i;

	if (!find_name(s, name, &i))
		return;
	free(s->v[i].name);
	free(s->v[i].endpoint);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
	s->n--;
	if (s->has_current) {
		if (s->current == i)
			s->has_current = 0;
		else if (s->current > i)
			s->current--;
	}
}

size_t servers_count(const struct servers *s)
{
	return s->n;
}

const char *servers_endpoint(const struct servers *s, const char *name)
{
	const struct server_entry *e = find_name(s, name, NULL);

	return e ? e->endpoint : NULL;
}

int servers_has_endpoint(const struct servers *s, const char *endpoint)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].endpoint, endpoint))
			return 1;
	return 0;
}

/* A uniformly random index among the servers not held back at now; when
 * all are, the one whose hold ends first. */
static size_t choose(struct servers *s, uint64_t now)
{
	size_t free_n = 0, k, first = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].held_until_ms <= now)
			free_n++;
		if (s->v[i].held_until_ms < s->v[first].held_until_ms)
			first = i;
	}
	if (free_n == 0)
		return first;
	k = s->io.rand_u32(s->io.ctx) % free_n;
	for (size_t i = 0; i < s->n; i++) {
		if (s->v[i].held_until_ms > now)
			continue;
		if (k-- == 0)
			return i;
	}
	return first; /* not reached */
}

static int any_free(const struct servers *s, uint64_t now)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i].held_until_ms <= now)
			return 1;
	return 0;
}

const char *servers_pick(struct servers *s)
{
	uint64_t now;

	if (s->n == 0)
		return NULL;
	now = s->io.now_ms(s->io.ctx);
	if (s->has_current && now < s->rebalance_at_ms &&
	    (s->v[s->current].held_until_ms <= now || !any_free(s, now)))
		return s->v[s->current].endpoint;
	s->current = choose(s, now);
	s->has_current = 1;
	s->rebalance_at_ms = now + SERVERS_REBALANCE_MS +
			     s->io.rand_u32(s->io.ctx) % (SERVERS_REBALANCE_MS + 1);
	return s->v[s->current].endpoint;
}

const char *servers_in_use(const struct servers *s)
{
	return s->has_current ? s->v[s->current].endpoint : NULL;
}

void servers_failed(struct servers *s, const char *endpoint)
{
	uint64_t now = s->io.now_ms(s->io.ctx);

	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].endpoint, endpoint) != 0)
			continue;
		s->v[i].held_until_ms = now + SERVERS_HOLD_MS;
		if (s->has_current && s->current == i)
			s->has_current = 0;
	}
}

int servers_member_endpoint(const struct member_feed_member *m, const char *dc, char *buf,
			    size_t len)
{
	const char *mdc = member_feed_tag(m, "dc");
	const char *port = member_feed_tag(m, "port");
	char *end;
	unsigned long p;
	int n;

	if (m->status != MEMBER_FEED_ALIVE || !member_feed_is_server(m) || !mdc || !dc ||
	    strcasecmp(mdc, dc) != 0 || !port || !*port || !m->addr || !*m->addr)
		return 0;
	p = strtoul(port, &end, 10);
	if (*end || p == 0 || p > 65535)
		return 0;
	if (strchr(m->addr, ':'))
		n = snprintf(buf, len, "tcp://[%s]:%lu", m->addr, p);
	else
		n = snprintf(buf, len, "tcp://%s:%lu", m->addr, p);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 1;
}
