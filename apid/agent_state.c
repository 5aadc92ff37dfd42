/* The agent's local services and checks (see agent_state.h). */
#include "agent_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAINT_NODE_ID "_node_maintenance"
#define MAINT_SERVICE_PREFIX "_service_maintenance:"

static char *dupz(const char *s) { return strdup(s ? s : ""); }

static int push(void ***arr, size_t *n, size_t *cap, void *item)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		void **p = realloc(*arr, ncap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*arr = p;
		*cap = ncap;
	}
	(*arr)[(*n)++] = item;
	return 0;
}

static void strs_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void agent_state_init(struct agent_state *st) { memset(st, 0, sizeof(*st)); }

static void svc_free_fields(struct proto_service *s)
{
	free((char *)s->id);
	free((char *)s->service);
	free((char *)s->address);
	free((char *)s->tagged_addresses);
	free((char *)s->kind);
	for (size_t i = 0; i < s->tags.n; i++)
		free((char *)s->tags.v[i]);
	free(s->tags.v);
	for (size_t i = 0; i < s->meta.n; i++) {
		free((char *)s->meta.keys[i]);
		free((char *)s->meta.vals[i]);
	}
	free(s->meta.keys);
	free(s->meta.vals);
}

static void service_free(struct agent_service *s)
{
	if (!s)
		return;
	svc_free_fields(&s->svc);
	json_decref(s->def);
	free(s);
}

void agent_check_free(struct agent_check *c)
{
	if (!c)
		return;
	free(c->id);
	free(c->name);
	free(c->service_id);
	free(c->notes);
	free(c->status);
	free(c->output);
	free(c->http);
	free(c->method);
	free(c->body);
	free(c->tcp);
	free(c->alias_service);
	json_decref(c->header);
	json_decref(c->args);
	json_decref(c->def);
	free(c);
}

struct agent_check *agent_check_new(void)
{
	struct agent_check *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->status = strdup("critical");
	c->output = strdup("");
	c->notes = strdup("");
	c->service_id = strdup("");
	if (!c->status || !c->output || !c->notes || !c->service_id) {
		agent_check_free(c);
		return NULL;
	}
	return c;
}

void agent_state_close(struct agent_state *st)
{
	for (size_t i = 0; i < st->n_services; i++)
		service_free(st->services[i]);
	free(st->services);
	for (size_t i = 0; i < st->n_checks; i++)
		agent_check_free(st->checks[i]);
	free(st->checks);
	strs_free(st->removed_services, st->n_removed_services);
	strs_free(st->removed_checks, st->n_removed_checks);
	memset(st, 0, sizeof(*st));
}

struct agent_service *agent_service_find(const struct agent_state *st, const char *id)
{
	for (size_t i = 0; i < st->n_services; i++)
		if (!strcmp(st->services[i]->svc.id, id))
			return st->services[i];
	return NULL;
}

struct agent_check *agent_check_find(const struct agent_state *st, const char *id)
{
	for (size_t i = 0; i < st->n_checks; i++)
		if (!strcmp(st->checks[i]->id, id))
			return st->checks[i];
	return NULL;
}

/* Bumps the generations the sync follows, without marking a definition
 * change (status and output are persisted lazily). */
static void touch_status(struct agent_state *st, const char *service_id)
{
	bool dirty = st->dirty;

	agent_state_touch(st, service_id);
	st->dirty = dirty;
	st->status_dirty = true;
}

void agent_state_touch(struct agent_state *st, const char *service_id)
{
	st->gen++;
	st->dirty = true;
	if (service_id && *service_id) {
		struct agent_service *s = agent_service_find(st, service_id);

		if (s)
			s->gen = st->gen;
	} else {
		st->node_gen = st->gen;
	}
}

/* Forgets a pending catalog removal of id (it was registered again). */
static void unremove(char **v, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i], id)) {
			free(v[i]);
			v[i] = v[--*n];
			return;
		}
}

static int copy_service(struct proto_service *d, const struct proto_service *s)
{
	memset(d, 0, sizeof(*d));
	d->id = dupz(s->id);
	d->service = dupz(s->service);
	d->address = dupz(s->address);
	d->tagged_addresses = s->tagged_addresses ? strdup(s->tagged_addresses) : NULL;
	d->kind = s->kind ? strdup(s->kind) : NULL;
	d->port = s->port;
	d->weight_passing = s->weight_passing;
	d->weight_warning = s->weight_warning;
	d->enable_tag_override = s->enable_tag_override;
	if (!d->id || !d->service || !d->address)
		return -ENOMEM;
	if (s->tags.n) {
		d->tags.v = calloc(s->tags.n, sizeof(*d->tags.v));
		if (!d->tags.v)
			return -ENOMEM;
		for (size_t i = 0; i < s->tags.n; i++, d->tags.n++)
			if (!(d->tags.v[i] = strdup(s->tags.v[i])))
				return -ENOMEM;
	}
	if (s->meta.n) {
		d->meta.keys = calloc(s->meta.n, sizeof(*d->meta.keys));
		d->meta.vals = calloc(s->meta.n, sizeof(*d->meta.vals));
		if (!d->meta.keys || !d->meta.vals)
			return -ENOMEM;
		for (size_t i = 0; i < s->meta.n; i++) {
			d->meta.keys[i] = strdup(s->meta.keys[i]);
			d->meta.vals[i] = strdup(s->meta.vals[i]);
			d->meta.n++;
			if (!d->meta.keys[i] || !d->meta.vals[i])
				return -ENOMEM;
		}
	}
	return 0;
}

int agent_service_put(struct agent_state *st, const struct proto_service *s, json_t *def,
		      bool replace_checks)
{
	struct agent_service *n = calloc(1, sizeof(*n)), *old;
	int rc;

	if (!n)
		return -ENOMEM;
	rc = copy_service(&n->svc, s);
	if (rc < 0) {
		service_free(n);
		return rc;
	}
	n->def = json_incref(def);
	old = agent_service_find(st, s->id);
	if (old) {
		n->maintenance = old->maintenance;
		n->synced_gen = old->synced_gen;
		for (size_t i = 0; i < st->n_services; i++)
			if (st->services[i] == old)
				st->services[i] = n;
		service_free(old);
		if (replace_checks) {
			for (size_t i = 0; i < st->n_checks;) {
				struct agent_check *c = st->checks[i];

				if (!strcmp(c->service_id, s->id) && c->kind != AGENT_CHECK_MAINT) {
					st->checks[i] = st->checks[--st->n_checks];
					agent_check_free(c);
				} else {
					i++;
				}
			}
		}
	} else {
		rc = push((void ***)&st->services, &st->n_services, &st->cap_services, n);
		if (rc < 0) {
			service_free(n);
			return rc;
		}
	}
	unremove(st->removed_services, &st->n_removed_services, s->id);
	agent_state_touch(st, s->id);
	return 0;
}

int agent_service_remove(struct agent_state *st, const char *id)
{
	struct agent_service *s = agent_service_find(st, id);
	char *copy;

	if (!s)
		return -ENOENT;
	copy = strdup(id);
	if (copy && push((void ***)&st->removed_services, &st->n_removed_services,
			 &st->cap_removed_services, copy) < 0)
		free(copy);
	for (size_t i = 0; i < st->n_checks;) {
		struct agent_check *c = st->checks[i];

		if (!strcmp(c->service_id, id)) {
			st->checks[i] = st->checks[--st->n_checks];
			agent_check_free(c);
		} else {
			i++;
		}
	}
	for (size_t i = 0; i < st->n_services; i++)
		if (st->services[i] == s) {
			st->services[i] = st->services[--st->n_services];
			break;
		}
	service_free(s);
	st->gen++;
	st->dirty = true;
	return 0;
}

int agent_check_put(struct agent_state *st, struct agent_check *c, bool status_given,
		    uint64_t now_ms)
{
	struct agent_check *old;
	int rc;

	if (*c->service_id && !agent_service_find(st, c->service_id)) {
		agent_check_free(c);
		return -ENOENT;
	}
	if (c->success_before_passing == 0)
		c->success_before_passing = 1;
	if (c->failures_before_critical == 0)
		c->failures_before_critical = 1;
	if (c->kind == AGENT_CHECK_TTL)
		c->ttl_deadline_ms = now_ms + c->ttl_ms;
	if (!strcmp(c->status, "critical"))
		c->critical_since_ms = now_ms ? now_ms : 1;
	old = agent_check_find(st, c->id);
	if (old) {
		if (!status_given) {
			char *s = strdup(old->status), *o = strdup(old->output);

			if (!s || !o) {
				free(s);
				free(o);
				agent_check_free(c);
				return -ENOMEM;
			}
			free(c->status);
			free(c->output);
			c->status = s;
			c->output = o;
			c->critical_since_ms = old->critical_since_ms;
		}
		/* a check moving from the node to a service: the node's view
		 * changes too */
		if (strcmp(old->service_id, c->service_id) != 0)
			agent_state_touch(st, old->service_id);
		for (size_t i = 0; i < st->n_checks; i++)
			if (st->checks[i] == old)
				st->checks[i] = c;
		agent_check_free(old);
	} else {
		rc = push((void ***)&st->checks, &st->n_checks, &st->cap_checks, c);
		if (rc < 0) {
			agent_check_free(c);
			return rc;
		}
	}
	unremove(st->removed_checks, &st->n_removed_checks, c->id);
	agent_state_touch(st, c->service_id);
	return 0;
}

int agent_check_remove(struct agent_state *st, const char *id)
{
	struct agent_check *c = agent_check_find(st, id);

	if (!c)
		return -ENOENT;
	{
		char *copy = strdup(id);

		if (copy && push((void ***)&st->removed_checks, &st->n_removed_checks,
				 &st->cap_removed_checks, copy) < 0)
			free(copy);
	}
	agent_state_touch(st, c->service_id);
	for (size_t i = 0; i < st->n_checks; i++)
		if (st->checks[i] == c) {
			st->checks[i] = st->checks[--st->n_checks];
			break;
		}
	agent_check_free(c);
	return 0;
}

/* Sets status and output; returns whether anything changed. */
static bool set_status(struct agent_state *st, struct agent_check *c, const char *status,
		       const char *output, uint64_t now_ms)
{
	size_t olen = output ? strlen(output) : 0;
	bool changed;
	char *s, *o;

	if (olen > AGENT_OUTPUT_MAX)
		olen = AGENT_OUTPUT_MAX;
	changed = strcmp(c->status, status) != 0 ||
		  (output && (strlen(c->output) != olen || memcmp(c->output, output, olen) != 0));
	if (!changed)
		return false;
	s = strdup(status);
	o = output ? strndup(output, olen) : strdup(c->output);
	if (!s || !o) {
		free(s);
		free(o);
		return false;
	}
	bool status_changed = strcmp(c->status, status) != 0;

	if (status_changed)
		c->critical_since_ms = !strcmp(status, "critical") ? (now_ms ? now_ms : 1) : 0;
	free(c->status);
	free(c->output);
	c->status = s;
	c->output = o;
	c->gen++;
	if (status_changed) {
		c->output_pending_ms = 0;
		touch_status(st, c->service_id);
	} else {
		/* Consul's check_update_interval: a new output alone reaches
		 * the catalog at most this often, or with the next status
		 * change; locally it shows at once */
		if (!c->output_pending_ms)
			c->output_pending_ms = now_ms ? now_ms : 1;
		st->status_dirty = true;
	}
	return true;
}

size_t agent_check_flush_outputs(struct agent_state *st, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < st->n_checks; i++) {
		struct agent_check *c = st->checks[i];

		if (!c->output_pending_ms || now_ms - c->output_pending_ms < AGENT_CHECK_UPDATE_MS)
			continue;
		c->output_pending_ms = 0;
		touch_status(st, c->service_id);
		n++;
	}
	return n;
}

bool agent_check_result(struct agent_state *st, struct agent_check *c, const char *status,
			const char *output, uint64_t now_ms)
{
	if (!strcmp(status, "critical")) {
		c->successes = 0;
		if (c->failures < UINT32_MAX)
			c->failures++;
		if (c->failures < c->failures_before_critical)
			return false; /* not yet: Consul keeps the old status */
	} else {
		c->failures = 0;
		if (c->successes < UINT32_MAX)
			c->successes++;
		if (c->successes < c->success_before_passing)
			return false;
	}
	return set_status(st, c, status, output, now_ms);
}

int agent_check_ttl_update(struct agent_state *st, struct agent_check *c, const char *status,
			   const char *output, uint64_t now_ms)
{
	if (c->kind != AGENT_CHECK_TTL)
		return -EINVAL;
	c->ttl_deadline_ms = now_ms + c->ttl_ms;
	(void)set_status(st, c, status, output ? output : "", now_ms);
	return 0;
}

size_t agent_check_ttl_expire(struct agent_state *st, uint64_t now_ms)
{
	size_t n = 0;

	for (size_t i = 0; i < st->n_checks; i++) {
		struct agent_check *c = st->checks[i];

		if (c->kind != AGENT_CHECK_TTL || c->ttl_deadline_ms > now_ms)
			continue;
		c->ttl_deadline_ms = UINT64_MAX; /* until the next update */
		if (set_status(st, c, "critical", "TTL expired", now_ms))
			n++;
	}
	return n;
}

uint64_t agent_check_next_ttl(const struct agent_state *st)
{
	uint64_t best = UINT64_MAX;

	for (size_t i = 0; i < st->n_checks; i++)
		if (st->checks[i]->kind == AGENT_CHECK_TTL && st->checks[i]->ttl_deadline_ms < best)
			best = st->checks[i]->ttl_deadline_ms;
	return best;
}

size_t agent_reap_candidates(const struct agent_state *st, uint64_t now_ms, const char **out,
			     size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < st->n_checks && n < max; i++) {
		const struct agent_check *c = st->checks[i];
		bool dup = false;

		if (!c->deregister_after_ms || !*c->service_id || !c->critical_since_ms ||
		    now_ms - c->critical_since_ms < c->deregister_after_ms)
			continue;
		for (size_t k = 0; k < n && !dup; k++)
			dup = !strcmp(out[k], c->service_id);
		if (!dup)
			out[n++] = c->service_id;
	}
	return n;
}

int agent_maintenance(struct agent_state *st, const char *service_id, bool enable,
		      const char *reason, uint64_t now_ms)
{
	struct agent_service *s = NULL;
	struct agent_check *c;
	char *id;
	int rc;

	if (service_id) {
		s = agent_service_find(st, service_id);
		if (!s)
			return -ENOENT;
		id = malloc(strlen(MAINT_SERVICE_PREFIX) + strlen(service_id) + 1);
		if (!id)
			return -ENOMEM;
		strcpy(id, MAINT_SERVICE_PREFIX);
		strcat(id, service_id);
	} else {
		id = strdup(MAINT_NODE_ID);
		if (!id)
			return -ENOMEM;
	}
	if (!enable) {
		if (s)
			s->maintenance = false;
		(void)agent_check_remove(st, id); /* absent is fine */
		free(id);
		return 0;
	}
	c = agent_check_new();
	if (!c) {
		free(id);
		return -ENOMEM;
	}
	c->id = id;
	c->kind = AGENT_CHECK_MAINT;
	c->name = strdup(s ? "Service Maintenance Mode" : "Node Maintenance Mode");
	free(c->notes);
	c->notes = strdup(reason && *reason ? reason
			  : s ? "Maintenance mode is enabled for this service, but no reason "
				"was provided. This is a default message."
			      : "Maintenance mode is enabled for this node, but no reason was "
				"provided. This is a default message.");
	if (s) {
		free(c->service_id);
		c->service_id = strdup(service_id);
	}
	if (!c->name || !c->notes || !c->service_id) {
		agent_check_free(c);
		return -ENOMEM;
	}
	rc = agent_check_put(st, c, true, now_ms);
	if (rc == 0 && s)
		s->maintenance = true;
	return rc;
}

/* Queues id for removal unless already queued. */
static void queue_removal(char ***v, size_t *n, size_t *cap, const char *id)
{
	char *copy;

	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*v)[i], id))
			return;
	copy = strdup(id);
	if (copy && push((void ***)v, n, cap, copy) < 0)
		free(copy);
}

void agent_state_reconcile(struct agent_state *st, const struct proto_service *svcs, size_t n_svcs,
			   const struct proto_check *checks, size_t n_checks)
{
	for (size_t i = 0; i < n_svcs; i++)
		if (!agent_service_find(st, svcs[i].id))
			queue_removal(&st->removed_services, &st->n_removed_services,
				      &st->cap_removed_services, svcs[i].id);
	for (size_t i = 0; i < n_checks; i++) {
		const struct proto_check *c = &checks[i];

		if (!strcmp(c->check_id, "serfHealth") || agent_check_find(st, c->check_id))
			continue;
		if (*c->service_id && !agent_service_find(st, c->service_id))
			continue; /* goes with its service */
		queue_removal(&st->removed_checks, &st->n_removed_checks, &st->cap_removed_checks,
			      c->check_id);
	}
	for (size_t i = 0; i < st->n_services; i++)
		st->services[i]->synced_gen = 0;
	st->node_synced_gen = 0;
	st->node_gen = ++st->gen;
}

uint64_t agent_sync_interval_ms(uint64_t base_ms, uint64_t nodes)
{
	uint64_t factor = 1, n = 128;

	/* ceil(log2(nodes / 128)) + 1, in integers */
	while (n < nodes) {
		n *= 2;
		factor++;
	}
	return base_ms * factor;
}

static int rank(const char *status)
{
	if (!strcmp(status, "critical"))
		return 2;
	if (!strcmp(status, "warning"))
		return 1;
	return 0;
}

const char *agent_service_health(const struct agent_state *st, const struct agent_service *s)
{
	static const char *const names[] = {"passing", "warning", "critical"};
	int worst = 0;

	for (size_t i = 0; i < st->n_checks; i++) {
		const struct agent_check *c = st->checks[i];

		if (*c->service_id && strcmp(c->service_id, s->svc.id) != 0)
			continue;
		if (rank(c->status) > worst)
			worst = rank(c->status);
	}
	return names[worst];
}
