/* raftd's multi-server glue: transport, discovery, routing, Raft timer. */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "raft/raft.h"
#include "reconcile.h"
#include "replica.h"
#include "txn.h"

#define TICK_MS 20
#define HELLO_EVERY_MS 500
#define REGISTER_EVERY_MS 1000
#define NOLEADER_WAIT_MS 3000
#define FORWARD_TIMEOUT_MS 8000
#define DEFAULT_SERVER_PORT 8300
#define MAX_KNOWN 16
#define MAX_JOIN 16

struct peer {
	char addr[RAFT_ADDR_MAX + 1];
	void *sock; /* DEALER */
};

struct waiting {
	struct rpc_req *req;
	uint64_t deadline_ms;
	struct waiting *next;
};

/* A consistent read waiting for its heartbeat round (ReadIndex). */
struct barrier {
	struct rpc_req *req;
	uint64_t seq, index, deadline_ms;
	struct barrier *next;
};

struct known {
	char id[RAFT_ID_MAX + 1];
	char addr[RAFT_ADDR_MAX + 1];
};

struct forward {
	struct cluster *c;
	struct rpc_req *req;
	uint64_t call_id;
	struct rpc_client *cli; /* the client the call went through */
	struct forward *next, *prev;
};

struct cluster {
	struct loop *loop;
	void *zctx;
	const struct config *cfg;
	struct replica *rp;
	cluster_dispatch_fn dispatch;
	void *dctx;
	char self[RAFT_ADDR_MAX + 1];
	char id[RAFT_ID_MAX + 1];
	uint64_t timer;
	struct peer *peers;
	size_t n_peers;
	struct waiting *waiting;
	struct forward *forwards; /* in flight, to cancel at free */
	/* discovery */
	struct known known[MAX_KNOWN];
	unsigned n_known;
	char join[MAX_JOIN][RAFT_ADDR_MAX + 1];
	struct rpc_client *join_cli[MAX_JOIN];
	unsigned n_join;
	bool remote_bootstrapped;
	uint64_t next_hello_ms;
	/* leader connection for forwarding */
	char leader_addr[RAFT_ADDR_MAX + 1];
	struct rpc_client *leader_cli;
	struct rpc_client *retired[8]; /* former leaders' clients, until answered */
	/* self registration */
	struct proto_msg reg;
	struct proto_node reg_node;
	struct proto_check reg_check; /* serfHealth passing: we are alive */
	const char *tkeys[4], *tvals[4], *mkeys[1], *mvals[1];
	bool registered, reg_inflight;
	uint64_t next_reg_ms;
	char logged_leader[RAFT_ADDR_MAX + 1];	 /* last leader we logged */
	bool recovering;			 /* logged a peers.json recovery */
	struct barrier *barriers;		 /* consistent reads in progress */
	uint64_t leave_timer, leave_deadline_ms; /* leaving: waiting for the transfer */
	struct rpc_req *bypass;			 /* being served after its barrier */
};

bool cluster_wanted(const struct config *cfg)
{
	return cfg->bootstrap_expect > 1 || (cfg->start_join && cfg->start_join[0]) ||
	       (cfg->retry_join && cfg->retry_join[0]);
}

/* ---- transport -------------------------------------------------------------- */

static void *peer_sock(struct cluster *c, const char *addr)
{
	char ep[RAFT_ADDR_MAX + 16];
	int zero = 0, one = 1, hwm = 1000;

	for (size_t i = 0; i < c->n_peers; i++)
		if (strcmp(c->peers[i].addr, addr) == 0)
			return c->peers[i].sock;
	struct peer *np = realloc(c->peers, (c->n_peers + 1) * sizeof(*np));
	if (!np)
		return NULL;
	c->peers = np;
	struct peer *p = &c->peers[c->n_peers];
	snprintf(p->addr, sizeof(p->addr), "%s", addr);
	p->sock = zmq_socket(c->zctx, ZMQ_DEALER);
	if (!p->sock)
		return NULL;
	(void)zmq_setsockopt(p->sock, ZMQ_LINGER, &zero, sizeof(zero));
	(void)zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	(void)zmq_setsockopt(p->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	(void)zmq_setsockopt(p->sock, ZMQ_IPV6, &one, sizeof(one));
	snprintf(ep, sizeof(ep), "tcp://%s", addr);
	if (zmq_connect(p->sock, ep) < 0) {
		log_warn("raft peer %s: %s", addr, zmq_strerror(zmq_errno()));
		zmq_close(p->sock);
		return NULL;
	}
	c->n_peers++;
	return p->sock;
}

/* Keeps a connection open to every other server of the configuration.
 * Peer sockets use ZMQ_IMMEDIATE, so a message to a peer whose connection
 * is not up yet is dropped: without this, followers (which never talk to
 * each other) lost the first pre-vote of every election to a socket
 * created by that very send, and fail-over took a second timeout. */
static void warm_peers(struct cluster *c)
{
	const struct raft_config *cfg = replica_config_of(c->rp);

	for (unsigned i = 0; cfg && i < cfg->n; i++)
		if (strcmp(cfg->s[i].id, c->id) != 0 && cfg->s[i].address[0])
			(void)peer_sock(c, cfg->s[i].address);
}

/* replica_send_fn: best effort, like the network Raft assumes. */
static void send_to(void *ctx, const char *address, const uint8_t *buf, size_t len)
{
	struct cluster *c = ctx;
	void *sock = peer_sock(c, address);

	if (sock && zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0)
		log_debug("raft: message to %s dropped: %s", address, zmq_strerror(zmq_errno()));
}

/* ---- discovery ------------------------------------------------------------- */

static void note_known(struct cluster *c, const char *id, const char *addr)
{
	if (!id || !*id || !addr || !*addr || strlen(id) > RAFT_ID_MAX ||
	    strlen(addr) > RAFT_ADDR_MAX || strchr(id, ' ') || strchr(addr, ' '))
		return;
	for (unsigned i = 0; i < c->n_known; i++) {
		if (strcmp(c->known[i].id, id) == 0) {
			snprintf(c->known[i].addr, sizeof(c->known[i].addr), "%s", addr);
			return;
		}
	}
	if (c->n_known == MAX_KNOWN)
		return;
	snprintf(c->known[c->n_known].id, sizeof(c->known[0].id), "%s", id);
	snprintf(c->known[c->n_known].addr, sizeof(c->known[0].addr), "%s", addr);
	c->n_known++;
	log_info("raft: discovered server %s at %s (%u known)", id, addr, c->n_known);
}

static void note_list(struct cluster *c, const struct proto_strs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		char id[RAFT_ID_MAX + 2], addr[RAFT_ADDR_MAX + 2];
		if (l->v[i] && sscanf(l->v[i], "%65s %128s", id, addr) == 2)
			note_known(c, id, addr);
	}
}

static int cmp_known(const void *a, const void *b)
{
	return strcmp(((const struct known *)a)->id, ((const struct known *)b)->id);
}

static void maybe_bootstrap(struct cluster *c)
{
	struct raft_config cfg;
	int rc;

	if (replica_has_config(c->rp) || c->remote_bootstrapped || c->cfg->bootstrap_expect < 1 ||
	    c->n_known != (unsigned)c->cfg->bootstrap_expect || c->n_known > RAFT_MAX_SERVERS)
		return;
	memset(&cfg, 0, sizeof(cfg));
	struct known sorted[MAX_KNOWN];
	memcpy(sorted, c->known, sizeof(sorted));
	qsort(sorted, c->n_known, sizeof(sorted[0]), cmp_known);
	for (unsigned i = 0; i < c->n_known; i++) {
		snprintf(cfg.s[i].id, sizeof(cfg.s[i].id), "%.*s", RAFT_ID_MAX, sorted[i].id);
		snprintf(cfg.s[i].address, sizeof(cfg.s[i].address), "%.*s", RAFT_ADDR_MAX,
			 sorted[i].addr);
		cfg.s[i].voter = true;
	}
	cfg.n = c->n_known;
	rc = replica_bootstrap(c->rp, &cfg);
	if (rc < 0 && rc != -EEXIST)
		log_error("raft: bootstrap failed: %s", err_str(rc));
	else if (rc == 0)
		log_info("raft: bootstrapped a cluster of %u servers", cfg.n);
}

static const char **known_list(struct cluster *c, struct arena *a, size_t *out_n)
{
	const char **v = arena_alloc(a, (c->n_known + 1) * sizeof(*v));
	size_t n = 0;

	if (!v)
		return NULL;
	for (unsigned i = 0; i < c->n_known; i++) {
		char *s = arena_alloc(a, strlen(c->known[i].id) + strlen(c->known[i].addr) + 2);
		if (!s)
			return NULL;
		sprintf(s, "%s %s", c->known[i].id, c->known[i].addr);
		v[n++] = s;
	}
	*out_n = n;
	return v;
}

static void on_hello_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct cluster *c = ctx;

	if (status < 0 || reply->type != PROTO_RAFT_HELLO_REPLY)
		return;
	const struct proto_raft_hello_reply *h = &reply->u.raft_hello_reply;
	note_known(c, h->id, h->address);
	note_list(c, &h->servers);
	if (h->bootstrapped && !c->remote_bootstrapped) {
		/* Never bootstrap a second configuration: the cluster's
		 * leader replicates ours (if it names us) or adds us. */
		c->remote_bootstrapped = true;
		log_info("raft: %s is part of a bootstrapped cluster; waiting to be replicated to",
			 h->address ? h->address : "?");
	}
	if (h->bootstrapped && h->leader && *h->leader && c->n_join < MAX_JOIN) {
		bool have = false;
		for (unsigned i = 0; i < c->n_join; i++)
			have |= strcmp(c->join[i], h->leader) == 0;
		if (!have && strlen(h->leader) <= RAFT_ADDR_MAX)
			snprintf(c->join[c->n_join++], sizeof(c->join[0]), "%s", h->leader);
	}
	maybe_bootstrap(c);
}

static void send_hellos(struct cluster *c)
{
	struct arena a;

	arena_init(&a, 4096);
	for (unsigned i = 0; i < c->n_join; i++) {
		struct proto_msg m = proto_msg_make(PROTO_RAFT_HELLO);
		char ep[RAFT_ADDR_MAX + 16];

		if (strcmp(c->join[i], c->self) == 0)
			continue;
		if (!c->join_cli[i]) {
			snprintf(ep, sizeof(ep), "tcp://%s", c->join[i]);
			c->join_cli[i] = rpc_client_new(c->loop, c->zctx, ep);
			if (!c->join_cli[i])
				continue;
		}
		m.u.raft_hello.id = c->id;
		m.u.raft_hello.address = c->self;
		m.u.raft_hello.datacenter = c->cfg->datacenter;
		m.u.raft_hello.bootstrap_expect =
		    (uint64_t)(c->cfg->bootstrap_expect > 0 ? c->cfg->bootstrap_expect : 0);
		m.u.raft_hello.bootstrapped = replica_has_config(c->rp);
		m.u.raft_hello.servers.v = known_list(c, &a, &m.u.raft_hello.servers.n);
		if (!m.u.raft_hello.servers.v)
			m.u.raft_hello.servers.n = 0;
		(void)rpc_call(c->join_cli[i], &m, HELLO_EVERY_MS * 2, on_hello_reply, c, NULL);
	}
	arena_close(&a);
}

static enum rpc_disposition handle_hello(struct cluster *c, struct rpc_req *req)
{
	const struct proto_raft_hello *h = &req->msg.u.raft_hello;
	struct proto_msg m = proto_msg_make(PROTO_RAFT_HELLO_REPLY);

	if (h->datacenter && strcmp(h->datacenter, c->cfg->datacenter) != 0) {
		rpc_reply_error(req, CAIRN_E_BADREQ, "server of datacenter %s", h->datacenter);
		return RPC_DONE;
	}
	note_known(c, h->id, h->address);
	note_list(c, &h->servers);
	if (h->bootstrapped)
		c->remote_bootstrapped = true;
	/* A leader adds a server that found the cluster after its bootstrap
	 * (one change at a time; the joiner keeps saying hello until in). */
	if (!h->bootstrapped && replica_is_leader(c->rp) && h->id && h->address &&
	    raft_config_find(replica_config_of(c->rp), h->id) < 0) {
		int rc = replica_add_server(c->rp, h->id, h->address);
		if (rc == 0)
			log_info("raft: adding server %s at %s", h->id, h->address);
	}
	m.u.raft_hello_reply.id = c->id;
	m.u.raft_hello_reply.address = c->self;
	m.u.raft_hello_reply.bootstrapped = replica_has_config(c->rp);
	m.u.raft_hello_reply.leader = replica_leader_addr(c->rp);
	m.u.raft_hello_reply.servers.v =
	    known_list(c, &req->arena, &m.u.raft_hello_reply.servers.n);
	if (!m.u.raft_hello_reply.servers.v)
		m.u.raft_hello_reply.servers.n = 0;
	(void)rpc_reply(req, &m);
	maybe_bootstrap(c);
	return RPC_DONE;
}

/* ---- routing ------------------------------------------------------------------ */

static void forward_unlink(struct cluster *c, struct forward *f);

/* Frees cli, answering the forwards that went through it. */
static void drop_client(struct cluster *c, struct rpc_client *cli)
{
	struct forward *f = c->forwards;

	while (f) {
		struct forward *nx = f->next;
		if (f->cli == cli) {
			forward_unlink(c, f);
			rpc_reply_error(f->req, CAIRN_E_UNAVAILABLE,
					"the leader changed before answering");
			free(f);
		}
		f = nx;
	}
	rpc_client_free(cli); /* cancels a registration too */
	c->reg_inflight = false;
}

static struct rpc_client *leader_client(struct cluster *c)
{
	const char *addr = replica_leader_addr(c->rp);
	char ep[RAFT_ADDR_MAX + 16];

	if (!*addr)
		return NULL;
	if (c->leader_cli && strcmp(addr, c->leader_addr) == 0)
		return c->leader_cli;
	/* A new leader: calls in flight to the old one keep their client
	 * until they are answered or time out (a write there may have been
	 * applied: only its answer can tell). */
	if (c->leader_cli) {
		unsigned k;
		for (k = 0; k < 8 && c->retired[k]; k++)
			;
		if (k == 8) {
			/* Too many leader changes at once: the oldest goes and
			 * its calls are answered as failed here. */
			k = 0;
			drop_client(c, c->retired[0]);
		}
		c->retired[k] = c->leader_cli;
		c->leader_cli = NULL;
	}
	snprintf(c->leader_addr, sizeof(c->leader_addr), "%s", addr);
	snprintf(ep, sizeof(ep), "tcp://%s", addr);
	c->leader_cli = rpc_client_new(c->loop, c->zctx, ep);
	return c->leader_cli;
}

static void forward_unlink(struct cluster *c, struct forward *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		c->forwards = f->next;
	if (f->next)
		f->next->prev = f->prev;
}

static enum rpc_disposition park_until_leader(struct cluster *c, struct rpc_req *req);

/* The request's routing deadline, kept in its arena (req->priv is ours
 * until the server serves the request itself). */
static uint64_t deadline_of(struct cluster *c, struct rpc_req *req)
{
	uint64_t *d = req->priv;

	if (!d) {
		d = arena_alloc(&req->arena, sizeof(*d));
		if (!d)
			return 0;
		*d = loop_now_ms(c->loop) + NOLEADER_WAIT_MS;
		req->priv = d;
	}
	return *d;
}

static void on_forward_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct forward *f = ctx;
	struct cluster *c = f->c;
	bool retry = status == CAIRN_E_UNAVAILABLE || (status == 0 && reply->type == PROTO_ERROR &&
						       reply->u.error.code == CAIRN_E_NOLEADER);

	forward_unlink(c, f);
	/* Never sent (the leader is gone) or refused by a former leader:
	 * nothing happened, so wait for the next leader and try again. */
	if (retry && loop_now_ms(c->loop) < deadline_of(c, f->req)) {
		(void)park_until_leader(c, f->req); /* keeps it, or answers */
	} else if (status < 0) {
		rpc_reply_error(f->req, status == -ETIMEDOUT ? -ETIMEDOUT : CAIRN_E_NOLEADER, "%s",
				status == -ETIMEDOUT ? "leader did not answer in time"
						     : "No cluster leader");
	} else {
		struct proto_msg copy = *reply;
		(void)rpc_reply(f->req, &copy);
	}
	free(f);
}

static uint64_t wait_of(const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_KV_GET:
		return m->u.kv_get.min_index ? m->u.kv_get.wait_ms : 0;
	case PROTO_CATALOG_NODE:
		return m->u.catalog_node.min_index ? m->u.catalog_node.wait_ms : 0;
	case PROTO_CATALOG_QUERY:
	case PROTO_CATALOG_QUERY_NEAR: /* same leading fields */
		return m->u.catalog_query.min_index ? m->u.catalog_query.wait_ms : 0;
	case PROTO_COORD_QUERY:
		return m->u.coord_query.min_index ? m->u.coord_query.wait_ms : 0;
	case PROTO_SESSION_QUERY:
		return m->u.session_query.min_index ? m->u.session_query.wait_ms : 0;
	default:
		return 0;
	}
}

static enum rpc_disposition forward(struct cluster *c, struct rpc_req *req)
{
	struct rpc_client *cli = leader_client(c);
	struct proto_msg copy = req->msg;
	uint64_t wait = wait_of(&req->msg);
	struct forward *f;
	int rc;

	if (!cli) {
		rpc_reply_error(req, CAIRN_E_NOLEADER, "No cluster leader");
		return RPC_DONE;
	}
	if (wait)
		wait = (wait > 600000 ? 600000 : wait) * 17 / 16 + 1000; /* server-side jitter */
	f = calloc(1, sizeof(*f));
	if (!f) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	f->c = c;
	f->req = req;
	f->cli = cli;
	rc = rpc_call(cli, &copy, FORWARD_TIMEOUT_MS + wait, on_forward_reply, f, &f->call_id);
	if (rc < 0) {
		free(f);
		if (loop_now_ms(c->loop) < deadline_of(c, req))
			return park_until_leader(c, req); /* leader unreachable: wait */
		rpc_reply_error(req, CAIRN_E_NOLEADER, "No cluster leader");
		return RPC_DONE;
	}
	f->next = c->forwards;
	if (c->forwards)
		c->forwards->prev = f;
	c->forwards = f;
	return RPC_KEEP;
}

static enum rpc_disposition park_until_leader(struct cluster *c, struct rpc_req *req)
{
	struct waiting *w = calloc(1, sizeof(*w));

	if (!w) {
		rpc_reply_error(req, CAIRN_E_NOLEADER, "No cluster leader");
		return RPC_DONE;
	}
	w->req = req;
	w->deadline_ms = deadline_of(c, req);
	w->next = c->waiting;
	c->waiting = w;
	return RPC_KEEP;
}

static bool is_write(unsigned type)
{
	return type == PROTO_KV_PUT || type == PROTO_KV_DELETE || type == PROTO_CATALOG_REGISTER ||
	       type == PROTO_CATALOG_WRITE || type == PROTO_OPERATOR_RAFT_REMOVE ||
	       type == PROTO_SNAPSHOT_RESTORE ||
	       type == PROTO_SESSION_WRITE || type == PROTO_KV_LOCK ||
	       type == PROTO_COORD_UPDATE || type == PROTO_AUTOPILOT_SET;
}

static bool is_read(unsigned type, const struct proto_msg *m, uint64_t *mode)
{
	switch (type) {
	case PROTO_TXN: /* read-only transactions (txn.h) */
		*mode = m->u.txn.mode;
		return !txn_writes(&m->u.txn);
	case PROTO_KV_GET:
		*mode = m->u.kv_get.mode;
		return true;
	case PROTO_CATALOG_NODE:
		*mode = m->u.catalog_node.mode;
		return true;
	case PROTO_CATALOG_QUERY:
	case PROTO_CATALOG_QUERY_NEAR: /* same leading fields */
		*mode = m->u.catalog_query.mode;
		return true;
	case PROTO_COORD_QUERY:
		*mode = m->u.coord_query.mode;
		return true;
	case PROTO_SESSION_QUERY:
		*mode = m->u.session_query.mode;
		return true;
	case PROTO_OPERATOR_RAFT_CONFIG:
	case PROTO_AUTOPILOT_GET:
	case PROTO_AUTOPILOT_HEALTH:
		*mode = 0; /* the leader's view, as Consul serves it */
		return true;
	case PROTO_SNAPSHOT_SAVE:
		*mode = m->u.snapshot_save.mode;
		return true;
	default:
		return false;
	}
}

/* Runs req through the server's handler as rpc.c would. */
static void redispatch(struct cluster *c, struct rpc_req *req)
{
	req->in_handler = 1;
	enum rpc_disposition d = c->dispatch(c->dctx, req);
	req->in_handler = 0;
	if (d == RPC_DONE || req->replied)
		rpc_req_free(req);
}

/* Serves consistent reads whose heartbeat round a majority answered and
 * whose read index is applied; fails those whose leadership ended. */
static void check_barriers(struct cluster *c, uint64_t now)
{
	struct barrier **pp = &c->barriers;

	while (*pp) {
		struct barrier *b = *pp;
		bool failed;
		bool ready = replica_read_ready(c->rp, b->seq, b->index, &failed);
		if (!ready && !failed && now < b->deadline_ms) {
			pp = &b->next;
			continue;
		}
		*pp = b->next;
		if (ready) {
			c->bypass = b->req;
			redispatch(c, b->req);
			c->bypass = NULL;
		} else {
			rpc_reply_error(b->req, CAIRN_E_NOLEADER, "No cluster leader");
		}
		free(b);
	}
}

/* ?consistent on the leader: confirm leadership with a heartbeat round
 * first (§6.4), then serve from state that includes the commit index of
 * when the read arrived. */
static enum rpc_disposition consistent_read(struct cluster *c, struct rpc_req *req)
{
	struct barrier *b;
	int rc;

	b = calloc(1, sizeof(*b));
	if (!b) {
		rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	rc = replica_read_index(c->rp, &b->seq, &b->index);
	if (rc < 0) {
		free(b);
		if (rc == -EAGAIN)
			return park_until_leader(c, req); /* no-op not committed yet */
		rpc_reply_error(req, CAIRN_E_NOLEADER, "No cluster leader");
		return RPC_DONE;
	}
	b->req = req;
	b->deadline_ms = loop_now_ms(c->loop) + NOLEADER_WAIT_MS;
	b->next = c->barriers;
	c->barriers = b;
	return RPC_KEEP;
}

enum rpc_disposition cluster_handle(struct cluster *c, struct rpc_req *req, bool *handled)
{
	uint64_t mode = 0;
	unsigned t = req->msg.type;

	*handled = true;
	if (req == c->bypass) {
		*handled = false;
		return RPC_DONE;
	}
	if (t == PROTO_RAFT_RPC) {
		int rc = replica_receive(c->rp, &req->msg.u.raft_rpc);
		if (rc < 0)
			log_error("raft: handling a message failed: %s", err_str(rc));
		if (c->barriers)
			check_barriers(c, loop_now_ms(c->loop));
		return RPC_DONE; /* one way: no answer */
	}
	if (t == PROTO_RAFT_SNAPSHOT) {
		int rc = replica_receive_snapshot(c->rp, &req->msg.u.raft_snapshot);
		if (rc < 0)
			log_error("raft: handling a snapshot message failed: %s", err_str(rc));
		if (c->barriers)
			check_barriers(c, loop_now_ms(c->loop));
		return RPC_DONE; /* one way: no answer */
	}
	if (t == PROTO_RAFT_HELLO)
		return handle_hello(c, req);
	if (is_write(t) || (t == PROTO_TXN && txn_writes(&req->msg.u.txn))) {
		if (replica_is_leader(c->rp)) {
			if (replica_transferring(c->rp))
				return park_until_leader(c, req); /* then to the new one */
			*handled = false;
			return RPC_DONE;
		}
		if (replica_known_leader(c->rp))
			return forward(c, req);
		return park_until_leader(c, req);
	}
	if (is_read(t, &req->msg, &mode) && mode == 2 && !replica_is_leader(c->rp)) {
		/* ?stale&max_stale=: state older than that is re-read on the
		 * leader, as Consul does. */
		uint64_t max = t == PROTO_KV_GET	  ? req->msg.u.kv_get.max_stale_ms
			       : (t == PROTO_CATALOG_QUERY || t == PROTO_CATALOG_QUERY_NEAR)
				 ? req->msg.u.catalog_query.max_stale_ms
			       : t == PROTO_TXN ? req->msg.u.txn.max_stale_ms
							  : 0;
		if (max && (!replica_known_leader(c->rp) || replica_last_contact_ms(c->rp) > max)) {
			if (replica_known_leader(c->rp))
				return forward(c, req);
			return park_until_leader(c, req);
		}
	}
	if (is_read(t, &req->msg, &mode) && mode != 2) {
		/* Default and consistent reads: the leader answers while its
		 * lease holds (a majority acknowledged it within lease_ms). */
		if (replica_is_leader(c->rp)) {
			if (mode == 1)
				return consistent_read(c, req);
			if (replica_lease_valid(c->rp)) {
				*handled = false;
				return RPC_DONE;
			}
			return park_until_leader(c, req);
		}
		if (replica_known_leader(c->rp))
			return forward(c, req);
		return park_until_leader(c, req);
	}
	*handled = false;
	return RPC_DONE;
}

/* ---- timer -------------------------------------------------------------------- */

static void on_register_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct cluster *c = ctx;

	c->reg_inflight = false;
	if (status == 0 && reply->type == PROTO_WRITE_REPLY) {
		c->registered = true;
		log_info("raft: registered this server's node in the catalog (index %llu)",
			 (unsigned long long)reply->u.write_reply.index);
	}
}

static void redispatch_waiting(struct cluster *c, uint64_t now)
{
	struct waiting **pp = &c->waiting;

	while (*pp) {
		struct waiting *w = *pp;
		bool ready = replica_is_leader(c->rp) ? replica_lease_valid(c->rp)
						      : replica_known_leader(c->rp);
		if (!ready && now < w->deadline_ms) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		if (!ready) {
			rpc_reply_error(w->req, CAIRN_E_NOLEADER, "No cluster leader");
		} else {
			redispatch(c, w->req);
		}
		free(w);
	}
}

static int64_t on_tick(struct loop *l, void *ctx)
{
	struct cluster *c = ctx;
	uint64_t now = loop_now_ms(l);
	int rc;

	warm_peers(c);
	rc = replica_tick(c->rp);
	if (rc < 0)
		log_error("raft: tick failed: %s", err_str(rc));
	if (c->recovering && !replica_recovering(c->rp)) {
		c->recovering = false;
		log_info(
		    "raft: recovery complete: peers.json configuration committed, file removed");
	}
	const char *la = replica_leader_addr(c->rp);
	if (strcmp(la, c->logged_leader) != 0) {
		if (*la)
			log_info("raft: leader is %s%s (term %llu)", la,
				 replica_is_leader(c->rp) ? " (this server)" : "",
				 (unsigned long long)replica_term(c->rp));
		else
			log_info("raft: no leader (term %llu)",
				 (unsigned long long)replica_term(c->rp));
		snprintf(c->logged_leader, sizeof(c->logged_leader), "%s", la);
	}
	if (!replica_has_config(c->rp) && now >= c->next_hello_ms) {
		c->next_hello_ms = now + HELLO_EVERY_MS;
		maybe_bootstrap(c);
		send_hellos(c);
	}
	if (!c->registered && !c->reg_inflight && now >= c->next_reg_ms &&
	    replica_known_leader(c->rp)) {
		struct rpc_client *cli = leader_client(c);
		struct proto_msg m = c->reg;
		c->next_reg_ms = now + REGISTER_EVERY_MS;
		if (cli && rpc_call(cli, &m, FORWARD_TIMEOUT_MS, on_register_reply, c, NULL) == 0)
			c->reg_inflight = true;
	}
	redispatch_waiting(c, now);
	check_barriers(c, now);
	for (unsigned k = 0; k < 8; k++) {
		if (c->retired[k] && rpc_client_pending(c->retired[k]) == 0) {
			rpc_client_free(c->retired[k]);
			c->retired[k] = NULL;
		}
	}
	return TICK_MS;
}

/* ---- leaving ------------------------------------------------------------------ */

static int64_t on_leave_tick(struct loop *l, void *ctx)
{
	struct cluster *c = ctx;

	if (replica_is_leader(c->rp) && loop_now_ms(l) < c->leave_deadline_ms)
		return TICK_MS;
	if (!replica_is_leader(c->rp))
		log_info("raft: leadership transferred (now %s); leaving",
			 *replica_leader_addr(c->rp) ? replica_leader_addr(c->rp) : "electing");
	else
		log_warn("raft: leadership transfer did not complete; leaving anyway");
	c->leave_timer = 0;
	loop_stop(l);
	return LOOP_TIMER_STOP;
}

bool cluster_leave_begin(struct cluster *c)
{
	int rc;

	if (!c || !replica_is_leader(c->rp))
		return false;
	rc = replica_transfer(c->rp);
	if (rc < 0) {
		if (rc != -ENOENT)
			log_warn("raft: cannot transfer leadership before leaving: %s",
				 err_str(rc));
		return false;
	}
	c->leave_deadline_ms = loop_now_ms(c->loop) + 3000;
	c->leave_timer = loop_timer_add(c->loop, TICK_MS, on_leave_tick, c);
	return c->leave_timer != 0;
}

/* ---- lifecycle -------------------------------------------------------------- */

static void add_join(struct cluster *c, const char *a)
{
	if (c->n_join == MAX_JOIN || !a || !*a)
		return;
	if (strchr(a, ':') && (a[0] != '[' || strstr(a, "]:")))
		snprintf(c->join[c->n_join], sizeof(c->join[0]), "%s", a);
	else if (strchr(a, ':') && a[0] != '[')
		snprintf(c->join[c->n_join], sizeof(c->join[0]), "[%s]:%d", a, DEFAULT_SERVER_PORT);
	else
		snprintf(c->join[c->n_join], sizeof(c->join[0]), "%s:%d", a, DEFAULT_SERVER_PORT);
	c->n_join++;
}

void cluster_note_server(struct cluster *c, const char *addr)
{
	if (!c || !addr || !*addr || strlen(addr) > RAFT_ADDR_MAX || replica_has_config(c->rp) ||
	    c->cfg->bootstrap_expect == 1)
		return;
	for (unsigned i = 0; i < c->n_join; i++)
		if (strcmp(c->join[i], addr) == 0)
			return;
	if (c->n_join == MAX_JOIN)
		return;
	log_info("raft: server %s found in the LAN pool", addr);
	add_join(c, addr);
}

int cluster_new(struct loop *l, void *zctx, const struct config *cfg, struct replica *rp,
		const char *self, cluster_dispatch_fn dispatch, void *ctx, struct cluster **out,
		char *err, size_t errlen)
{
	struct cluster *c = calloc(1, sizeof(*c));
	const char *addr = cfg->advertise_addr ? cfg->advertise_addr : "127.0.0.1";
	bool v6 = strchr(addr, ':') != NULL;

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->loop = l;
	c->zctx = zctx;
	c->cfg = cfg;
	c->rp = rp;
	c->dispatch = dispatch;
	c->dctx = ctx;
	snprintf(c->self, sizeof(c->self), "%s", self);
	snprintf(c->id, sizeof(c->id), "%s", cfg->node_id ? cfg->node_id : cfg->node_name);
	note_known(c, c->id, c->self);
	for (char **j = cfg->start_join; j && *j; j++)
		add_join(c, *j);
	for (char **j = cfg->retry_join; j && *j; j++)
		add_join(c, *j);
	/* Our own registration as the single-server path makes it (tagged
	 * lan/wan addresses, network segment), sent to the leader until it
	 * succeeds. Strings are cfg's, which outlives us. */
	c->tkeys[0] = "lan";
	c->tkeys[1] = v6 ? "lan_ipv6" : "lan_ipv4";
	c->tkeys[2] = "wan";
	c->tkeys[3] = v6 ? "wan_ipv6" : "wan_ipv4";
	for (int i = 0; i < 4; i++)
		c->tvals[i] = addr;
	c->mkeys[0] = "consul-network-segment";
	c->mvals[0] = "";
	c->reg_node.id = cfg->node_id;
	c->reg_node.node = cfg->node_name;
	c->reg_node.address = addr;
	c->reg_node.datacenter = cfg->datacenter;
	c->reg_node.tagged_addresses.keys = c->tkeys;
	c->reg_node.tagged_addresses.vals = c->tvals;
	c->reg_node.tagged_addresses.n = 4;
	c->reg_node.meta.keys = c->mkeys;
	c->reg_node.meta.vals = c->mvals;
	c->reg_node.meta.n = 1;
	/* with serfHealth passing, as a single server registers itself: a
	 * session on this server's node works before the leader's
	 * reconciliation ran (or when the servers share no LAN pool) */
	c->reg_check.node = cfg->node_name;
	c->reg_check.check_id = RECONCILE_CHECK_ID;
	c->reg_check.name = RECONCILE_CHECK_NAME;
	c->reg_check.status = "passing";
	c->reg_check.output = RECONCILE_ALIVE_OUTPUT;
	c->reg = proto_msg_make(PROTO_CATALOG_WRITE);
	c->reg.u.catalog_write.nodes.v = &c->reg_node;
	c->reg.u.catalog_write.nodes.n = 1;
	c->reg.u.catalog_write.checks.v = &c->reg_check;
	c->reg.u.catalog_write.checks.n = 1;
	replica_set_transport(rp, send_to, c);
	c->recovering = replica_recovering(rp);
	if (c->recovering)
		log_warn("raft: recovering with the configuration of peers.json (%u servers)",
			 replica_config_of(rp)->n);
	c->timer = loop_timer_add(l, TICK_MS, on_tick, c);
	if (!c->timer) {
		snprintf(err, errlen, "out of memory");
		cluster_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	if (c->timer)
		loop_timer_del(c->loop, c->timer);
	if (c->leave_timer)
		loop_timer_del(c->loop, c->leave_timer);
	while (c->waiting) {
		struct waiting *w = c->waiting;
		c->waiting = w->next;
		rpc_reply_error(w->req, CAIRN_E_NOLEADER, "No cluster leader");
		free(w);
	}
	while (c->barriers) {
		struct barrier *b = c->barriers;
		c->barriers = b->next;
		rpc_reply_error(b->req, CAIRN_E_NOLEADER, "No cluster leader");
		free(b);
	}
	while (c->forwards) {
		struct forward *f = c->forwards;
		c->forwards = f->next;
		rpc_reply_error(f->req, CAIRN_E_NOLEADER, "No cluster leader");
		free(f);
	}
	rpc_client_free(c->leader_cli);
	for (unsigned k = 0; k < 8; k++)
		rpc_client_free(c->retired[k]);
	for (unsigned i = 0; i < c->n_join; i++)
		rpc_client_free(c->join_cli[i]);
	for (size_t i = 0; i < c->n_peers; i++)
		zmq_close(c->peers[i].sock);
	free(c->peers);
	replica_set_transport(c->rp, NULL, NULL);
	free(c);
}
