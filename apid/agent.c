/* The agent's local state at run time (see agent.h). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent_api.h"
#include "agent_state.h"
#include "arena.h"
#include "json_body.h"
#include "checks.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "routes.h"
#include "rpc.h"

#define TICK_MS 50u
#define RETRY_MS 1000u
#define STATUS_SAVE_MS 2000u
#define DEF_SAVE_MS 100u

struct agent {
	struct loop *loop;
	const struct config *cfg;
	struct rpc_client *raftd;
	struct agent_state st;
	struct checks *runner;
	char path[4200];  /* agent-local.json */
	uint64_t tick_id; /* loop timer */
	size_t in_flight; /* sync calls outstanding */
	bool sync_failed; /* a call of the round failed: retry later */
	bool no_servers;  /* said once that no server is known (client agent) */
	uint64_t retry_at_ms;
	uint64_t next_full_ms;
	int full_pending;	  /* catalog reads of a full sync outstanding */
	struct op *ops;		  /* calls in flight, cancelled by agent_free */
	uint64_t full_sync_ms;	  /* AGENT_FULL_SYNC_MS, or the test hook's */
	uint64_t status_saved_ms; /* last save (statuses are saved lazily) */
};

/* What one sync call was for. */
enum op_kind {
	OP_SERVICE,
	OP_NODE,
	OP_RM_SERVICE,
	OP_RM_CHECK,
	OP_READ_SERVICES,
	OP_READ_CHECKS,
	OP_READ_NODES,
};

struct op {
	struct agent *ag;
	struct op *prev, *next; /* the agent's calls in flight */
	uint64_t call_id;
	enum op_kind kind;
	char *id;
	uint64_t gen;
};

struct agent_state *agent_local_state(struct agent *ag) { return &ag->st; }

static struct routes_env env_of(struct agent *ag)
{
	struct routes_env env = {.cfg = ag->cfg, .agent = &ag->st, .now_ms = loop_now_ms(ag->loop)};

	return env;
}

/* ---- persistence ------------------------------------------------------ */

static int save(struct agent *ag)
{
	json_t *doc = json_object(), *svcs = json_array(), *chks = json_array();
	char tmp[4300], *text = NULL;
	int fd = -1, rc = -ENOMEM;

	if (!doc || !svcs || !chks)
		goto out;
	for (size_t i = 0; i < ag->st.n_services; i++)
		json_array_append(svcs, ag->st.services[i]->def);
	for (size_t i = 0; i < ag->st.n_checks; i++) {
		const struct agent_check *c = ag->st.checks[i];
		json_t *e;

		if (c->kind == AGENT_CHECK_MAINT)
			e = json_pack("{s:b,s:s,s:s}", "Maintenance", 1, "ServiceID", c->service_id,
				      "Reason", c->notes);
		else
			e = json_pack("{s:O,s:s,s:s}", "Definition", c->def, "Status", c->status,
				      "Output", c->output);
		if (!e || json_array_append_new(chks, e) < 0)
			goto out;
	}
	json_object_set(doc, "Services", svcs);
	json_object_set(doc, "Checks", chks);
	snprintf(tmp, sizeof(tmp), "%s.tmp", ag->path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* one buffer, one write: json_dumpfd writes token by token */
	text = json_dumps(doc, JSON_COMPACT);
	if (!text) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t off = 0, len = strlen(text); fd >= 0 && off < len;) {
		ssize_t n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			goto out;
		}
		off += (size_t)n;
	}
	if (fd < 0 || fsync(fd) < 0) {
		rc = -errno ? -errno : -EIO;
		goto out;
	}
	close(fd);
	fd = -1;
	rc = rename(tmp, ag->path) < 0 ? -errno : 0;
	if (rc == 0) {
		/* the rename itself must survive a power loss */
		int dfd = open(ag->cfg->data_dir ? ag->cfg->data_dir : ".",
			       O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		if (dfd >= 0) {
			(void)fsync(dfd); /* best effort: the file itself is synced */
			close(dfd);
		}
	}
out:
	free(text);
	if (fd >= 0)
		close(fd);
	json_decref(svcs);
	json_decref(chks);
	json_decref(doc);
	return rc;
}

static int load(struct agent *ag, char *err, size_t errlen)
{
	json_error_t je;
	json_t *doc, *v;
	struct routes_env env = env_of(ag);
	struct arena a;
	size_t i;

	if (access(ag->path, F_OK) < 0)
		return 0;
	doc = json_load_file(ag->path, 0, &je);
	if (!doc) {
		snprintf(err, errlen, "%s: %s", ag->path, je.text);
		return CAIRN_E_CONFIG;
	}
	arena_init(&a, 4096);
	json_array_foreach(json_object_get(doc, "Services"), i, v)
	{
		const char *bad = agent_api_register_service(&ag->st, &env, v, true, &a);

		if (bad)
			log_warn("restoring a service from %s: %s", ag->path, bad);
	}
	json_array_foreach(json_object_get(doc, "Checks"), i, v)
	{
		const char *bad = NULL, *sid = json_string_value(json_object_get(v, "ServiceID"));
		json_t *def = json_object_get(v, "Definition");

		if (json_is_true(json_object_get(v, "Maintenance"))) {
			if (agent_maintenance(&ag->st, sid && *sid ? sid : NULL, true,
					      json_string_value(json_object_get(v, "Reason")),
					      env.now_ms) < 0)
				bad = "cannot restore maintenance mode";
		} else {
			bad = agent_api_register_check(&ag->st, &env, def, NULL, NULL, NULL, &a);
			if (!bad) {
				const char *id =
				    json_string_value(json_body_get(def, "CheckID"));
				struct agent_check *c = NULL;

				if (!id || !*id)
					id = json_string_value(json_body_get(def, "ID"));
				if (!id || !*id)
					id = json_string_value(json_body_get(def, "Name"));
				if (id)
					c = agent_check_find(&ag->st, id);
				if (c) {
					const char *s =
					    json_string_value(json_object_get(v, "Status"));
					const char *o =
					    json_string_value(json_object_get(v, "Output"));

					/* the last known status, not a fresh critical: the
					 * catalog must not flap across a restart */
					if (s && *s)
						(void)agent_check_result(&ag->st, c, s, o ? o : "",
									 env.now_ms);
					c->successes = c->failures = 0;
				}
			}
		}
		if (bad)
			log_warn("restoring a check from %s: %s", ag->path, bad);
	}
	arena_close(&a);
	json_decref(doc);
	ag->st.dirty = false;
	ag->st.status_dirty = false;
	return 0;
}

/* ---- anti-entropy ----------------------------------------------------- */

static const char *type_name(enum agent_check_kind k)
{
	switch (k) {
	case AGENT_CHECK_TTL:
		return "ttl";
	case AGENT_CHECK_HTTP:
		return "http";
	case AGENT_CHECK_TCP:
		return "tcp";
	case AGENT_CHECK_SCRIPT:
		return "script";
	case AGENT_CHECK_ALIAS:
		return "alias";
	case AGENT_CHECK_MAINT:
		break;
	}
	return "";
}

static void sync_kick(struct agent *ag);

static void on_sync_reply(void *ctx, int status, const struct proto_msg *reply);

static int send_op(struct agent *ag, struct proto_msg *m, enum op_kind kind, const char *id,
		   uint64_t gen)
{
	struct op *op = calloc(1, sizeof(*op));
	int rc;

	if (!op || (id && !(op->id = strdup(id)))) {
		free(op);
		return -ENOMEM;
	}
	op->ag = ag;
	op->kind = kind;
	op->gen = gen;
	rc = rpc_call(ag->raftd, m, ROUTES_RPC_TIMEOUT_MS, on_sync_reply, op, &op->call_id);
	if (rc < 0) {
		free(op->id);
		free(op);
		return rc;
	}
	op->next = ag->ops;
	if (ag->ops)
		ag->ops->prev = op;
	ag->ops = op;
	ag->in_flight++;
	return 0;
}

/* The node as Consul's agents register it (raftd registers a server's
 * own node the same way): tagged lan/wan addresses and the network
 * segment meta key. Used when the catalog does not have the node yet (a
 * client agent's first sync). addrs must hold 4 pointers and outlive n. */
static struct proto_node self_node(const struct agent *ag, const char **addrs)
{
	static const char *tkeys4[4] = {"lan", "lan_ipv4", "wan", "wan_ipv4"};
	static const char *tkeys6[4] = {"lan", "lan_ipv6", "wan", "wan_ipv6"};
	static const char *mkeys[1] = {"consul-network-segment"};
	static const char *mvals[1] = {""};
	const char *addr = ag->cfg->advertise_addr ? ag->cfg->advertise_addr : "127.0.0.1";
	struct proto_node n = {
	    .id = ag->cfg->node_id,
	    .node = ag->cfg->node_name,
	    .address = addr,
	    .datacenter = ag->cfg->datacenter,
	    .tagged_addresses = {strchr(addr, ':') ? tkeys6 : tkeys4, addrs, 4},
	    .meta = {mkeys, mvals, 1},
	};

	for (int i = 0; i < 4; i++)
		addrs[i] = addr;
	return n;
}

static void fill_check(const struct agent *ag, const struct agent_check *c, struct proto_check *pc)
{
	memset(pc, 0, sizeof(*pc));
	pc->node = ag->cfg->node_name;
	pc->check_id = c->id;
	pc->name = c->name;
	pc->status = c->status;
	pc->notes = c->notes;
	pc->output = c->output;
	pc->service_id = c->service_id;
	pc->type = type_name(c->kind);
}

/* Consul's HealthCheckDefinition as the catalog shows it: the runnable
 * parts of the check's definition (empty fields left out). Returns a
 * malloc'd compact JSON text, or NULL (then the catalog shows {}). */
static char *definition_text(const struct agent_check *c)
{
	static const char *const keys[] = {
	    "HTTP",	  "Header",	   "Method",
	    "Body",	  "TLSSkipVerify", "TCP",
	    "Interval",	  "Timeout",	   "DeregisterCriticalServiceAfter",
	    "ScriptArgs", "Args",	   "AliasService",
	};
	json_t *o = json_object();
	char *text = NULL;

	if (!o)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		json_t *v = json_body_get(c->def, keys[i]);

		if (v && !json_is_null(v))
			json_object_set(o, !strcmp(keys[i], "Args") ? "ScriptArgs" : keys[i], v);
	}
	if (json_object_size(o))
		text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Pushes one service with its checks (or, svc NULL, the node's checks). */
static int push(struct agent *ag, struct agent_service *svc)
{
	struct proto_msg m = proto_msg_make(PROTO_CATALOG_WRITE);
	struct proto_catalog_write *w = &m.u.catalog_write;
	const char *addrs[4];
	struct proto_node n = self_node(ag, addrs);
	struct proto_check *checks = calloc(ag->st.n_checks + 1, sizeof(*checks));
	size_t nc = 0;
	int rc;

	if (!checks)
		return -ENOMEM;
	for (size_t i = 0; i < ag->st.n_checks; i++) {
		const struct agent_check *c = ag->st.checks[i];

		if (svc ? !strcmp(c->service_id, svc->svc.id) : !*c->service_id) {
			fill_check(ag, c, &checks[nc]);
			checks[nc++].definition = definition_text(c);
		}
	}
	w->nodes.v = &n;
	w->nodes.n = 1;
	w->skip_node_update = true;
	if (svc) {
		w->services.v = &svc->svc;
		w->services.n = 1;
	}
	w->checks.v = checks;
	w->checks.n = nc;
	rc = send_op(ag, &m, svc ? OP_SERVICE : OP_NODE, svc ? svc->svc.id : NULL,
		     svc ? svc->gen : ag->st.node_gen);
	for (size_t i = 0; i < nc; i++)
		free((char *)checks[i].definition);
	free(checks);
	return rc;
}

static int remove_remote(struct agent *ag, const char *service_id, const char *check_id)
{
	struct proto_msg m = proto_msg_make(PROTO_CATALOG_WRITE);
	struct proto_node n = {.node = ag->cfg->node_name};

	m.u.catalog_write.deregister = true;
	m.u.catalog_write.nodes.v = &n;
	m.u.catalog_write.nodes.n = 1;
	m.u.catalog_write.service_id = service_id;
	m.u.catalog_write.check_id = check_id;
	return send_op(ag, &m, service_id ? OP_RM_SERVICE : OP_RM_CHECK,
		       service_id ? service_id : check_id, 0);
}

static int read_catalog(struct agent *ag, unsigned view)
{
	struct proto_msg m = proto_msg_make(PROTO_CATALOG_QUERY);

	m.u.catalog_query.view = view;
	m.u.catalog_query.name = ag->cfg->node_name;
	return send_op(ag, &m,
		       view == 5   ? OP_READ_SERVICES
		       : view == 6 ? OP_READ_CHECKS
				   : OP_READ_NODES,
		       NULL, 0);
}

static void remove_from(char **v, size_t *n, const char *id)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(v[i], id)) {
			free(v[i]);
			v[i] = v[--*n];
			return;
		}
}

static void on_sync_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct op *op = ctx;
	struct agent *ag = op->ag;
	struct agent_state *st = &ag->st;
	bool ok = status == 0 && reply &&
		  (reply->type == PROTO_WRITE_REPLY || reply->type == PROTO_CATALOG_QUERY_REPLY);

	ag->in_flight--;
	if (op->prev)
		op->prev->next = op->next;
	else
		ag->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	if (!ok) {
		ag->sync_failed = true;
		if (status == 0 && reply && reply->type == PROTO_ERROR &&
		    reply->u.error.code == CAIRN_E_NOSERVERS) {
			/* a client agent before it finds a server: once, not
			 * every retry */
			if (!ag->no_servers)
				log_warn("anti-entropy: no known Consul servers yet; retrying");
			ag->no_servers = true;
		} else if (status == 0 && reply && reply->type == PROTO_ERROR) {
			log_warn("anti-entropy: raftd refused a sync: %s",
				 reply->u.error.message ? reply->u.error.message : "");
		}
	} else {
		ag->no_servers = false;
		switch (op->kind) {
		case OP_SERVICE: {
			struct agent_service *s = agent_service_find(st, op->id);

			if (s && op->gen > s->synced_gen)
				s->synced_gen = op->gen;
			break;
		}
		case OP_NODE:
			if (op->gen > st->node_synced_gen)
				st->node_synced_gen = op->gen;
			break;
		case OP_RM_SERVICE:
			remove_from(st->removed_services, &st->n_removed_services, op->id);
			break;
		case OP_RM_CHECK:
			remove_from(st->removed_checks, &st->n_removed_checks, op->id);
			break;
		case OP_READ_SERVICES: {
			const struct proto_catalog_query_reply *r = &reply->u.catalog_query_reply;

			agent_state_reconcile(st, r->services.v, r->services.n, NULL, 0);
			ag->full_pending--;
			break;
		}
		case OP_READ_CHECKS: {
			const struct proto_catalog_query_reply *r = &reply->u.catalog_query_reply;

			agent_state_reconcile(st, NULL, 0, r->checks.v, r->checks.n);
			ag->full_pending--;
			break;
		}
		case OP_READ_NODES:
			/* the next full sync comes later in a large cluster */
			ag->next_full_ms =
			    loop_now_ms(ag->loop) +
			    agent_sync_interval_ms(ag->full_sync_ms,
						   reply->u.catalog_query_reply.nodes.n);
			ag->full_pending--;
			break;
		}
	}
	if (!ok && (op->kind == OP_READ_SERVICES || op->kind == OP_READ_CHECKS ||
		    op->kind == OP_READ_NODES))
		ag->full_pending = 0;
	free(op->id);
	free(op);
	if (ag->in_flight == 0) {
		if (ag->sync_failed)
			ag->retry_at_ms = loop_now_ms(ag->loop) + RETRY_MS;
		ag->sync_failed = false;
		sync_kick(ag);
	}
}

/* Starts a sync round when none is in flight. */
static void sync_kick(struct agent *ag)
{
	struct agent_state *st = &ag->st;
	uint64_t now = loop_now_ms(ag->loop);

	if (ag->in_flight || now < ag->retry_at_ms)
		return;
	if (now >= ag->next_full_ms) {
		ag->next_full_ms = now + ag->full_sync_ms;
		ag->full_pending = 3;
		if (read_catalog(ag, 5) < 0 || read_catalog(ag, 6) < 0 || read_catalog(ag, 1) < 0) {
			ag->full_pending = 0;
			ag->next_full_ms = now + RETRY_MS;
		}
		return;
	}
	for (size_t i = 0; i < st->n_removed_services; i++)
		(void)remove_remote(ag, st->removed_services[i], NULL);
	for (size_t i = 0; i < st->n_removed_checks; i++)
		(void)remove_remote(ag, NULL, st->removed_checks[i]);
	for (size_t i = 0; i < st->n_services; i++)
		if (st->services[i]->gen != st->services[i]->synced_gen)
			(void)push(ag, st->services[i]);
	if (st->node_gen != st->node_synced_gen)
		(void)push(ag, NULL);
}

/* ---- the tick --------------------------------------------------------- */

/* Alias checks mirror a local service's aggregated health. */
static void update_aliases(struct agent *ag, uint64_t now)
{
	struct agent_state *st = &ag->st;

	for (size_t i = 0; i < st->n_checks; i++) {
		struct agent_check *c = st->checks[i];
		struct agent_service *s;
		const char *status = "critical", *out = "Service not found on this agent";

		if (c->kind != AGENT_CHECK_ALIAS)
			continue;
		s = agent_service_find(st, c->alias_service);
		if (s) {
			int worst = 0;

			for (size_t k = 0; k < st->n_checks; k++) {
				const struct agent_check *o = st->checks[k];

				if (o == c || strcmp(o->service_id, s->svc.id) != 0)
					continue;
				if (!strcmp(o->status, "critical"))
					worst = 2;
				else if (!strcmp(o->status, "warning") && worst < 1)
					worst = 1;
			}
			status = worst == 2 ? "critical" : worst == 1 ? "warning" : "passing";
			out = worst ? "At least one check is not passing" : "All checks passing";
		}
		(void)agent_check_result(st, c, status, out, now);
	}
}

static int64_t on_tick(struct loop *l, void *ctx)
{
	struct agent *ag = ctx;
	uint64_t now = loop_now_ms(l);
	const char *reap[16];
	size_t n;

	/* statuses and outputs alone: persisted at most every STATUS_SAVE_MS,
	 * so thousands of checks do not rewrite the file every iteration */
	if (ag->st.status_dirty && now - ag->status_saved_ms >= STATUS_SAVE_MS)
		ag->st.dirty = true; /* before_sleep saves */
	(void)agent_check_ttl_expire(&ag->st, now);
	(void)agent_check_flush_outputs(&ag->st, now);
	update_aliases(ag, now);
	checks_tick(ag->runner, now);
	n = agent_reap_candidates(&ag->st, now, reap, 16);
	for (size_t i = 0; i < n; i++) {
		char id[512];

		snprintf(id, sizeof(id), "%s", reap[i]);
		log_info("deregistering service %s: critical for longer than "
			 "DeregisterCriticalServiceAfter",
			 id);
		(void)agent_service_remove(&ag->st, id);
	}
	return TICK_MS;
}

static void before_sleep(struct loop *l, void *ctx)
{
	struct agent *ag = ctx;
	int rc;

	/* definitions: saved at the end of the iteration that changed them,
	 * but not more often than every DEF_SAVE_MS, so that a bulk
	 * registration does not rewrite the whole file per request (the tick
	 * catches up); statuses: see on_tick */
	if (ag->st.dirty && loop_now_ms(l) - ag->status_saved_ms >= DEF_SAVE_MS) {
		ag->st.dirty = false;
		ag->st.status_dirty = false;
		ag->status_saved_ms = loop_now_ms(l);
		rc = save(ag);
		if (rc < 0)
			log_error("cannot save the agent's services and checks to %s: %s", ag->path,
				  err_str(rc));
	}
	sync_kick(ag);
}

struct agent *agent_new(struct loop *l, const struct config *cfg, struct rpc_client *raftd,
			char *err, size_t errlen)
{
	struct agent *ag = calloc(1, sizeof(*ag));
	int rc;

	if (!ag) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ag->loop = l;
	ag->cfg = cfg;
	ag->raftd = raftd;
	agent_state_init(&ag->st);
	ag->full_sync_ms = AGENT_FULL_SYNC_MS;
	{
		/* test hook (tests/process): a short anti-entropy period */
		const char *v = getenv("CAIRN_TEST_ANTI_ENTROPY_MS");

		if (v && atoi(v) > 0)
			ag->full_sync_ms = (uint64_t)atoi(v);
	}
	snprintf(ag->path, sizeof(ag->path), "%s/agent-local.json",
		 cfg->data_dir ? cfg->data_dir : ".");
	rc = load(ag, err, errlen);
	if (rc < 0)
		goto fail;
	ag->runner = checks_new(l, &ag->st);
	ag->tick_id = ag->runner ? loop_timer_add(l, TICK_MS, on_tick, ag) : 0;
	if (!ag->runner || !ag->tick_id || loop_add_before_sleep(l, before_sleep, ag) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return ag;
fail:
	agent_free(ag);
	return NULL;
}

void agent_free(struct agent *ag)
{
	if (!ag)
		return;
	loop_del_before_sleep(ag->loop, before_sleep, ag);
	if (ag->tick_id)
		loop_timer_del(ag->loop, ag->tick_id);
	while (ag->ops) {
		struct op *op = ag->ops;

		ag->ops = op->next;
		rpc_cancel(ag->raftd, op->call_id);
		free(op->id);
		free(op);
	}
	if (ag->st.dirty || ag->st.status_dirty)
		(void)save(ag);
	checks_free(ag->runner);
	agent_state_close(&ag->st);
	free(ag);
}
