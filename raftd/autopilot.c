/* Autopilot: replicated configuration, server health, dead-server cleanup. */
#include "autopilot.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "member_feed.h"
#include "mp.h"
#include "proto.h"
#include "raft/raft.h"
#include "replica.h"
#include "store.h"

/* ---- pure decisions ------------------------------------------------------- */

void autopilot_config_default(struct autopilot_config *out)
{
	memset(out, 0, sizeof(*out));
	out->cleanup_dead_servers = true;
	out->last_contact_threshold_ms = 200;
	out->max_trailing_logs = 250;
	out->min_quorum = 0;
	out->server_stabilization_time_ms = 10000;
}

void autopilot_health_eval(const struct autopilot_config *cfg, uint64_t leader_term,
			   uint64_t leader_last_index, struct autopilot_server *v, size_t n,
			   bool *out_healthy, uint64_t *out_failure_tolerance)
{
	uint64_t voters = 0, healthy_voters = 0, quorum;
	bool all = true;

	for (size_t i = 0; i < n; i++) {
		struct autopilot_server *s = &v[i];
		bool ok = s->serf == AUTOPILOT_SERF_ALIVE;

		if (ok && !s->leader) {
			ok = s->contacted && s->last_contact_ms <= cfg->last_contact_threshold_ms &&
			     s->last_term == leader_term &&
			     s->last_index + cfg->max_trailing_logs >= leader_last_index;
		}
		s->healthy = ok;
		all = all && ok;
		if (s->voter) {
			voters++;
			healthy_voters += ok;
		}
	}
	quorum = voters / 2 + 1;
	*out_healthy = all;
	*out_failure_tolerance = healthy_voters > quorum ? healthy_voters - quorum : 0;
}

size_t autopilot_removals(const struct autopilot_config *cfg, const struct autopilot_server *v,
			  size_t n, size_t *out_idx, size_t max)
{
	uint64_t voters = 0, tolerance, left;
	size_t k = 0;

	if (!cfg->cleanup_dead_servers)
		return 0;
	for (size_t i = 0; i < n; i++)
		voters += v[i].voter;
	tolerance = voters ? (voters - 1) / 2 : 0;
	left = voters;
	for (size_t i = 0; i < n && k < max; i++) {
		const struct autopilot_server *s = &v[i];

		if (s->leader || (s->serf != AUTOPILOT_SERF_FAILED && s->serf != AUTOPILOT_SERF_LEFT))
			continue;
		if (s->voter) {
			/* the voters that stay keep a quorum of the
			 * configuration they leave, and MinQuorum */
			if (tolerance == 0 || left - 1 < cfg->min_quorum)
				continue;
			tolerance--;
			left--;
		}
		out_idx[k++] = i;
	}
	return k;
}

/* Go prints the fraction of a unit without trailing zeros. */
static int frac_text(char *buf, size_t len, uint64_t whole, uint64_t milli, const char *unit)
{
	if (milli == 0)
		return snprintf(buf, len, "%llu%s", (unsigned long long)whole, unit);
	char f[8];
	int fl = snprintf(f, sizeof(f), "%03llu", (unsigned long long)milli);

	while (fl > 0 && f[fl - 1] == '0')
		f[--fl] = '\0';
	return snprintf(buf, len, "%llu.%s%s", (unsigned long long)whole, f, unit);
}

void autopilot_duration_format(uint64_t ms, char *buf, size_t len)
{
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, rest = ms % 1000;
	int off = 0;

	if (len == 0)
		return;
	if (ms == 0) {
		snprintf(buf, len, "0s");
		return;
	}
	if (ms < 1000) {
		snprintf(buf, len, "%llums", (unsigned long long)ms);
		return;
	}
	if (h)
		off = snprintf(buf, len, "%lluh%llum", (unsigned long long)h,
			       (unsigned long long)m);
	else if (m)
		off = snprintf(buf, len, "%llum", (unsigned long long)m);
	if (off < 0 || (size_t)off >= len)
		return;
	(void)frac_text(buf + off, len - (size_t)off, s, rest, "s");
}

/* ---- the replicated configuration ----------------------------------------- */

void autopilot_encode_set(struct mp_writer *w, const struct autopilot_config *cfg, bool has_cas,
			  uint64_t cas)
{
	mp_writer_reset(w);
	mp_write_array(w, 2);
	mp_write_u64(w, AUTOPILOT_OP_SET);
	mp_write_array(w, 7);
	mp_write_bool(w, cfg->cleanup_dead_servers);
	mp_write_u64(w, cfg->last_contact_threshold_ms);
	mp_write_u64(w, cfg->max_trailing_logs);
	mp_write_u64(w, cfg->min_quorum);
	mp_write_u64(w, cfg->server_stabilization_time_ms);
	mp_write_bool(w, has_cas);
	mp_write_u64(w, cas);
}

static void read_fields(struct mp_reader *r, struct autopilot_config *c)
{
	c->cleanup_dead_servers = mp_read_bool(r);
	c->last_contact_threshold_ms = mp_read_u64(r);
	c->max_trailing_logs = mp_read_u64(r);
	c->min_quorum = mp_read_u64(r);
	c->server_stabilization_time_ms = mp_read_u64(r);
}

int autopilot_config_get(struct store_txn *txn, struct autopilot_config *out)
{
	struct store_val v;
	struct mp_reader r;
	struct autopilot_config c;
	int rc;

	autopilot_config_default(out);
	rc = store_get(txn, STORE_INDEX, AUTOPILOT_STORE_KEY, strlen(AUTOPILOT_STORE_KEY), &v);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	mp_reader_init(&r, v.ptr, v.len);
	if (mp_read_array(&r) != 7)
		return CAIRN_E_STORE;
	read_fields(&r, &c);
	c.create_index = mp_read_u64(&r);
	c.modify_index = mp_read_u64(&r);
	if (r.err)
		return CAIRN_E_STORE;
	*out = c;
	return 0;
}

int autopilot_apply_set(struct store_txn *txn, uint64_t index, struct mp_reader *r,
			struct fsm_result *out)
{
	struct autopilot_config cur, c;
	struct mp_writer w;
	bool has_cas;
	uint64_t cas;
	int rc;

	if (mp_read_array(r) != 7) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	read_fields(r, &c);
	has_cas = mp_read_bool(r);
	cas = mp_read_u64(r);
	if (r->err) {
		out->code = CAIRN_E_PROTO;
		return 0;
	}
	rc = autopilot_config_get(txn, &cur);
	if (rc < 0)
		return rc;
	if (has_cas && cas != cur.modify_index) {
		out->ok = false; /* Consul answers false, nothing changes */
		return 0;
	}
	c.create_index = cur.create_index ? cur.create_index : index;
	c.modify_index = index;
	mp_writer_init(&w);
	mp_write_array(&w, 7);
	mp_write_bool(&w, c.cleanup_dead_servers);
	mp_write_u64(&w, c.last_contact_threshold_ms);
	mp_write_u64(&w, c.max_trailing_logs);
	mp_write_u64(&w, c.min_quorum);
	mp_write_u64(&w, c.server_stabilization_time_ms);
	mp_write_u64(&w, c.create_index);
	mp_write_u64(&w, c.modify_index);
	rc = w.err ? -ENOMEM
		   : store_put(txn, STORE_INDEX, AUTOPILOT_STORE_KEY, strlen(AUTOPILOT_STORE_KEY),
			       w.buf, w.len);
	mp_writer_close(&w);
	if (rc == 0)
		out->ok = true;
	return rc;
}

/* ---- raftd glue ----------------------------------------------------------- */

#define MAX_TRACK RAFT_MAX_SERVERS

struct track {
	char id[RAFT_ID_MAX + 1];
	bool healthy;
	uint64_t since_wall_ms; /* StableSince */
};

struct autopilot {
	struct loop *loop;
	struct replica *rp;
	struct member_feed *feed;
	const char *self_node;
	uint64_t timer;
	struct mp_writer cmd;
	struct track track[MAX_TRACK];
};

static const struct member_feed_member *member_of(struct autopilot *ap, const char *id,
						  const char *address)
{
	size_t n = ap->feed ? member_feed_count(ap->feed) : 0;

	for (size_t i = 0; i < n; i++) {
		const struct member_feed_member *m = member_feed_at(ap->feed, i);
		const char *mid = member_feed_tag(m, "id");

		if (member_feed_is_server(m) && mid && *mid && strcmp(mid, id) == 0)
			return m;
	}
	/* no id tag: the same host and server port */
	for (size_t i = 0; i < n; i++) {
		const struct member_feed_member *m = member_feed_at(ap->feed, i);
		const char *port = member_feed_tag(m, "port");
		char hp[320];

		if (!member_feed_is_server(m) || !port || !m->addr)
			continue;
		snprintf(hp, sizeof(hp), strchr(m->addr, ':') ? "[%s]:%s" : "%s:%s", m->addr, port);
		if (strcmp(hp, address) == 0)
			return m;
	}
	return NULL;
}

/* Fills v (room for RAFT_MAX_SERVERS) with the configuration's servers as
 * this server (the leader) sees them; returns how many. name/version point
 * into the feed (valid until the next loop callback). */
static size_t gather(struct autopilot *ap, struct autopilot_server *v, const char **self_addr)
{
	const struct raft *r = replica_raft(ap->rp);
	const struct raft_config *cfg = replica_config_of(ap->rp);
	uint64_t now = r->now_ms;
	size_t n = 0;

	memset(v, 0, RAFT_MAX_SERVERS * sizeof(*v));
	if (cfg->n == 0) {
		/* a single server: itself, the only voter */
		(void)replica_voters(ap->rp, self_addr, 1);
		v[0].id = r->id;
		v[0].address = *self_addr ? *self_addr : "";
		v[0].leader = replica_is_leader(ap->rp);
		v[0].voter = true;
		n = 1;
	}
	for (unsigned i = 0; i < cfg->n && n < RAFT_MAX_SERVERS; i++, n++) {
		struct autopilot_server *s = &v[n];
		const struct raft_progress *p = &r->prog[i];

		s->id = cfg->s[i].id;
		s->address = cfg->s[i].address;
		s->voter = cfg->s[i].voter;
		s->leader = strcmp(cfg->s[i].id, r->id) == 0 && replica_is_leader(ap->rp);
		if (s->leader)
			continue;
		s->contacted = p->last_reply_ms != 0;
		s->last_contact_ms = now > p->last_reply_ms ? now - p->last_reply_ms : 0;
		s->last_index = p->match_index;
		/* it holds an entry of this term once it matched the no-op */
		s->last_term = p->match_index >= r->leader_first_index && r->leader_first_index
				   ? r->current_term
				   : raft_term_at(r, p->match_index);
	}
	for (size_t i = 0; i < n; i++) {
		struct autopilot_server *s = &v[i];
		const struct member_feed_member *m = member_of(ap, s->id, s->address);

		s->name = "";
		s->version = "";
		if (m) {
			const char *b = member_feed_tag(m, "build");
			s->name = m->name;
			s->version = b ? b : "";
			s->serf = (enum autopilot_serf)m->status;
		} else if (s->leader || !ap->feed) {
			/* ourselves, before gossip listed us: we are alive */
			s->serf = s->leader ? AUTOPILOT_SERF_ALIVE : AUTOPILOT_SERF_NONE;
			s->name = s->leader && ap->self_node ? ap->self_node : "";
		}
		if (s->leader) {
			s->last_term = r->current_term;
			s->last_index = r->last_index;
		}
	}
	return n;
}

/* StableSince: when each server's health last changed. */
static uint64_t stable_since(struct autopilot *ap, const struct autopilot_server *s,
			     uint64_t wall_ms)
{
	struct track *free_slot = NULL;

	for (unsigned i = 0; i < MAX_TRACK; i++) {
		struct track *t = &ap->track[i];
		if (t->id[0] && strcmp(t->id, s->id) == 0) {
			if (t->healthy != s->healthy) {
				t->healthy = s->healthy;
				t->since_wall_ms = wall_ms;
			}
			return t->since_wall_ms;
		}
		if (!t->id[0] && !free_slot)
			free_slot = t;
	}
	if (!free_slot)
		free_slot = &ap->track[0]; /* a server left: its slot is reused */
	snprintf(free_slot->id, sizeof(free_slot->id), "%s", s->id);
	free_slot->healthy = s->healthy;
	free_slot->since_wall_ms = wall_ms;
	return wall_ms;
}

static const char *serf_name(enum autopilot_serf s)
{
	switch (s) {
	case AUTOPILOT_SERF_ALIVE:
		return "alive";
	case AUTOPILOT_SERF_LEAVING:
		return "leaving";
	case AUTOPILOT_SERF_LEFT:
		return "left";
	case AUTOPILOT_SERF_FAILED:
		return "failed";
	default:
		return "none";
	}
}

static char *rfc3339(uint64_t wall_ms, char *buf, size_t len)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "0001-01-01T00:00:00Z");
	return buf;
}

static int config_of_store(struct autopilot *ap, struct autopilot_config *out)
{
	struct store_txn *txn = NULL;
	int rc = store_txn_begin(replica_store(ap->rp), false, &txn);

	if (rc < 0)
		return rc;
	rc = autopilot_config_get(txn, out);
	store_txn_abort(txn);
	return rc;
}

static enum rpc_disposition handle_health(struct autopilot *ap, struct rpc_req *req)
{
	struct autopilot_server v[RAFT_MAX_SERVERS];
	struct autopilot_config cfg;
	struct proto_msg m = proto_msg_make(PROTO_AUTOPILOT_HEALTH_REPLY);
	const struct raft *r = replica_raft(ap->rp);
	const char *self_addr = NULL;
	uint64_t tolerance, wall = clock_wall_ms();
	bool healthy;
	json_t *arr;
	char *text;
	size_t n;
	int rc;

	if (!replica_is_leader(ap->rp)) {
		rpc_reply_error(req, CAIRN_E_NOLEADER, "No cluster leader");
		return RPC_DONE;
	}
	rc = config_of_store(ap, &cfg);
	if (rc < 0) {
		rpc_reply_error(req, rc, "autopilot configuration: %s", err_str(rc));
		return RPC_DONE;
	}
	n = gather(ap, v, &self_addr);
	autopilot_health_eval(&cfg, r->current_term, r->last_index, v, n, &healthy, &tolerance);
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++) {
		char lc[32], since[40], ver[64];
		json_t *o;

		/* the build tag is "<version>:<revision>" */
		snprintf(ver, sizeof(ver), "%.*s", (int)strcspn(v[i].version, ":"), v[i].version);

		autopilot_duration_format(v[i].leader ? 0 : v[i].last_contact_ms, lc, sizeof(lc));
		o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I, s:b, s:b, s:s}", "ID",
			      v[i].id, "Name", v[i].name, "Address", v[i].address, "SerfStatus",
			      serf_name(v[i].serf), "Version", ver, "Leader",
			      v[i].leader, "LastContact", v[i].contacted || v[i].leader ? lc : "-1ns",
			      "LastTerm", (json_int_t)v[i].last_term, "LastIndex",
			      (json_int_t)v[i].last_index, "Healthy", v[i].healthy, "Voter",
			      v[i].voter, "StableSince",
			      rfc3339(stable_since(ap, &v[i], wall), since, sizeof(since)));
		if (!o || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
	json_decref(arr);
	if (!text) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	m.u.autopilot_health_reply.healthy = healthy;
	m.u.autopilot_health_reply.failure_tolerance = tolerance;
	m.u.autopilot_health_reply.servers = arena_strdup(&req->arena, text);
	free(text);
	if (!m.u.autopilot_health_reply.servers) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	(void)rpc_reply(req, &m);
	return RPC_DONE;
}

static enum rpc_disposition handle_get(struct autopilot *ap, struct rpc_req *req)
{
	struct proto_msg m = proto_msg_make(PROTO_AUTOPILOT_CONFIG);
	struct proto_autopilot_config *o = &m.u.autopilot_config;
	struct autopilot_config c;
	int rc = config_of_store(ap, &c);

	if (rc < 0) {
		rpc_reply_error(req, rc, "autopilot configuration: %s", err_str(rc));
		return RPC_DONE;
	}
	o->cleanup_dead_servers = c.cleanup_dead_servers;
	o->last_contact_threshold_ms = c.last_contact_threshold_ms;
	o->max_trailing_logs = c.max_trailing_logs;
	o->min_quorum = c.min_quorum;
	o->server_stabilization_time_ms = c.server_stabilization_time_ms;
	o->create_index = c.create_index;
	o->modify_index = c.modify_index;
	(void)rpc_reply(req, &m);
	return RPC_DONE;
}

static enum rpc_disposition handle_set(struct autopilot *ap, struct rpc_req *req)
{
	const struct proto_autopilot_set *q = &req->msg.u.autopilot_set;
	struct autopilot_config c;
	uint64_t index;
	int rc;

	autopilot_config_default(&c);
	c.cleanup_dead_servers = q->cleanup_dead_servers;
	c.last_contact_threshold_ms = q->last_contact_threshold_ms;
	c.max_trailing_logs = q->max_trailing_logs;
	c.min_quorum = q->min_quorum;
	c.server_stabilization_time_ms = q->server_stabilization_time_ms;
	autopilot_encode_set(&ap->cmd, &c, q->has_cas, q->cas);
	if (ap->cmd.err) {
		mp_writer_reset(&ap->cmd);
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	rc = replica_propose(ap->rp, ap->cmd.buf, ap->cmd.len, req, &index);
	if (rc < 0) {
		rpc_reply_error(req, rc, "cannot append to the log: %s", err_str(rc));
		return RPC_DONE;
	}
	return RPC_KEEP; /* WRITE_REPLY from the applied callback */
}

enum rpc_disposition autopilot_handle(struct autopilot *ap, struct rpc_req *req)
{
	switch (req->msg.type) {
	case PROTO_AUTOPILOT_GET:
		return handle_get(ap, req);
	case PROTO_AUTOPILOT_HEALTH:
		return handle_health(ap, req);
	case PROTO_AUTOPILOT_SET:
		return handle_set(ap, req);
	default:
		rpc_reply_error(req, CAIRN_E_BADREQ, "not an autopilot request");
		return RPC_DONE;
	}
}

/* The leader's cleanup: one removal at a time (the core allows one
 * configuration change in flight; the next tick picks the next). */
static int64_t on_cleanup(struct loop *l, void *ctx)
{
	struct autopilot *ap = ctx;
	struct autopilot_server v[RAFT_MAX_SERVERS];
	struct autopilot_config cfg;
	const char *self_addr = NULL;
	size_t n, idx[RAFT_MAX_SERVERS], k;
	uint64_t index;
	int rc;

	(void)l;
	if (!ap->feed || !member_feed_synced(ap->feed) || !replica_is_leader(ap->rp) ||
	    replica_config_of(ap->rp)->n < 2 || replica_transferring(ap->rp))
		return AUTOPILOT_CLEANUP_EVERY_MS;
	if (config_of_store(ap, &cfg) < 0)
		return AUTOPILOT_CLEANUP_EVERY_MS;
	n = gather(ap, v, &self_addr);
	k = autopilot_removals(&cfg, v, n, idx, RAFT_MAX_SERVERS);
	if (k == 0)
		return AUTOPILOT_CLEANUP_EVERY_MS;
	/* copies: v[].id points into the configuration, which the proposal
	 * changes at once */
	char id[RAFT_ID_MAX + 1], name[128];
	enum autopilot_serf serf = v[idx[0]].serf;

	snprintf(id, sizeof(id), "%s", v[idx[0]].id);
	snprintf(name, sizeof(name), "%s", v[idx[0]].name);
	rc = replica_remove_server(ap->rp, id, NULL, &index);
	if (rc == 0)
		log_info("autopilot: removing dead server %s (%s, gossip status %s) at index %llu",
			 id, name, serf_name(serf), (unsigned long long)index);
	else if (rc != -EBUSY)
		log_warn("autopilot: cannot remove dead server %s: %s", id, err_str(rc));
	return AUTOPILOT_CLEANUP_EVERY_MS;
}

struct autopilot *autopilot_new(struct loop *l, struct replica *rp, struct member_feed *feed,
				const char *self_node, const char *dc)
{
	struct autopilot *ap = calloc(1, sizeof(*ap));

	if (!ap)
		return NULL;
	ap->loop = l;
	ap->rp = rp;
	ap->feed = feed;
	ap->self_node = self_node;
	(void)dc; /* re-adding servers is reconcile.c's (joinConsulServer) */
	mp_writer_init(&ap->cmd);
	ap->timer = loop_timer_add(l, AUTOPILOT_CLEANUP_EVERY_MS, on_cleanup, ap);
	if (!ap->timer) {
		autopilot_free(ap);
		return NULL;
	}
	return ap;
}

void autopilot_free(struct autopilot *ap)
{
	if (!ap)
		return;
	if (ap->timer)
		loop_timer_del(ap->loop, ap->timer);
	mp_writer_close(&ap->cmd);
	free(ap);
}
