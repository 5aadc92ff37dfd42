/* Client agents' relay of raftd requests to a server (see server_proxy.h).
 *
 * Every request the inproc ROUTER receives becomes a `struct fwd`, which
 * is either in flight on one server connection or waiting for a new
 * connection to come up. ZeroMQ gives no "connected" event through
 * rpc.h, and with ZMQ_IMMEDIATE a send on a connection still being made
 * fails at once: waiting requests are retried every
 * SERVER_PROXY_RETRY_MS until SERVER_PROXY_CONNECT_MS after the
 * connection was created (on loopback the first retry goes through). */
#include "server_proxy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "member_feed.h"
#include "proto.h"
#include "rpc.h"
#include "servers.h"

#define SERVER_PROXY_RETRY_MS 10u
#define SERVER_PROXY_GC_MS 5000u
/* An unused connection to a server not in use is closed after this. */
#define SERVER_PROXY_IDLE_MS 60000u
/* Sends that fail at once before giving up (each marks a server failed). */
#define SERVER_PROXY_MAX_TRIES 8
/* Same as apid's ROUTES_RPC_TIMEOUT_MS, plus a margin: the caller's own
 * time-out ends first, so a slow server is reported by the caller's
 * error, and the relay still learns it is slow. */
#define SERVER_PROXY_CALL_MS 12000u

struct conn {
	struct conn *next;
	char *endpoint;
	struct rpc_client *client;
	uint64_t created_ms;
	uint64_t used_ms;  /* last request sent or waiting */
	bool connected;	   /* a send went through on it */
	size_t refs;	   /* requests in flight on it or waiting for it */
};

struct fwd {
	struct fwd *prev, *next; /* in p->flying or p->waiting */
	struct server_proxy *p;
	struct rpc_req *req;
	struct conn *conn; /* in flight on, or waiting for */
	uint64_t call_id;
	uint64_t timeout_ms;
	bool waiting;
	bool read;   /* safe to send again after a lost connection */
	bool resent; /* was sent again once */
};

struct server_proxy {
	struct loop *loop;
	void *zctx; /* the daemon's: inproc and new connections */
	const struct config *cfg;
	struct servers *pool;
	struct member_feed *feed;
	struct rpc_server *srv;
	struct conn *conns;
	struct fwd *flying, *waiting;
	uint64_t retry_timer, gc_timer;
	uint32_t rand_state;
	char last_ep[256]; /* last endpoint logged as in use */
};

/* ---- effects for servers.c ---------------------------------------------- */

static uint64_t io_now(void *ctx)
{
	struct server_proxy *p = ctx;

	return loop_now_ms(p->loop);
}

static uint32_t io_rand(void *ctx)
{
	struct server_proxy *p = ctx;
	uint32_t x = p->rand_state;

	/* xorshift32: the spread of choices needs no better */
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	p->rand_state = x;
	return x;
}

/* ---- requests ----------------------------------------------------------- */

static bool is_read(const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_KV_GET:
	case PROTO_STATUS_LEADER:
	case PROTO_STATUS_PEERS:
	case PROTO_CATALOG_NODE:
	case PROTO_CATALOG_QUERY:
	case PROTO_OPERATOR_RAFT_CONFIG:
	case PROTO_SESSION_QUERY: /* info, node, list; renew only resets a timer */
	case PROTO_PING:
		return true;
	default:
		return false;
	}
}

/* Blocking reads wait up to wait_ms (plus the server's jitter, 1/16). */
static uint64_t call_timeout_ms(const struct proto_msg *m)
{
	uint64_t wait = 0;

	switch (m->type) {
	case PROTO_KV_GET:
		wait = m->u.kv_get.wait_ms;
		break;
	case PROTO_CATALOG_NODE:
		wait = m->u.catalog_node.wait_ms;
		break;
	case PROTO_CATALOG_QUERY:
		wait = m->u.catalog_query.wait_ms;
		break;
	case PROTO_SESSION_QUERY:
		wait = m->u.session_query.wait_ms;
		break;
	default:
		break;
	}
	return wait + wait / 16 + SERVER_PROXY_CALL_MS;
}

static void list_add(struct fwd **head, struct fwd *f)
{
	f->prev = NULL;
	f->next = *head;
	if (*head)
		(*head)->prev = f;
	*head = f;
}

static void list_del(struct fwd **head, struct fwd *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		*head = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

/* Takes f off its list and its connection. */
static void fwd_detach(struct fwd *f)
{
	struct server_proxy *p = f->p;

	list_del(f->waiting ? &p->waiting : &p->flying, f);
	f->waiting = false;
	if (f->conn) {
		f->conn->refs--;
		f->conn = NULL;
	}
}

static void fwd_fail(struct fwd *f, int code, const char *msg)
{
	fwd_detach(f);
	(void)rpc_reply_error(f->req, code, "%s", msg); /* the caller may be gone */
	free(f);
}

static struct conn *conn_get(struct server_proxy *p, const char *endpoint)
{
	struct conn *c;

	for (c = p->conns; c; c = c->next)
		if (!strcmp(c->endpoint, endpoint))
			return c;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->endpoint = strdup(endpoint);
	c->client = c->endpoint ? rpc_client_new(p->loop, p->zctx, endpoint) : NULL;
	if (!c->client) {
		free(c->endpoint);
		free(c);
		return NULL;
	}
	c->created_ms = loop_now_ms(p->loop);
	c->next = p->conns;
	p->conns = c;
	return c;
}

static void on_fwd_reply(void *ctx, int status, const struct proto_msg *reply);
static int64_t on_retry(struct loop *l, void *ctx);

/* Sends f to the chosen server, or parks it until the connection is up,
 * or answers it with an error. f is on no list when called. */
static void dispatch(struct fwd *f)
{
	struct server_proxy *p = f->p;
	uint64_t now = loop_now_ms(p->loop);

	for (int tries = 0; tries < SERVER_PROXY_MAX_TRIES; tries++) {
		const char *ep = servers_pick(p->pool);
		struct proto_msg m;
		struct conn *c;
		int rc;

		if (!ep) {
			list_add(&p->flying, f); /* fwd_fail takes it off */
			fwd_fail(f, CAIRN_E_NOSERVERS, "No known Consul servers");
			return;
		}
		if (strcmp(ep, p->last_ep) != 0) {
			log_info("sending server RPCs to %s (%zu servers known)", ep,
				 servers_count(p->pool));
			snprintf(p->last_ep, sizeof(p->last_ep), "%s", ep);
		}
		c = conn_get(p, ep);
		if (!c) {
			list_add(&p->flying, f);
			fwd_fail(f, -ENOMEM, "out of memory");
			return;
		}
		c->used_ms = now;
		m = f->req->msg; /* rpc_call sets its own id: keep the caller's */
		rc = rpc_call(c->client, &m, f->timeout_ms, on_fwd_reply, f, &f->call_id);
		if (rc == 0) {
			c->connected = true;
			c->refs++;
			f->conn = c;
			list_add(&p->flying, f);
			return;
		}
		if (rc != CAIRN_E_UNAVAILABLE) {
			list_add(&p->flying, f);
			fwd_fail(f, rc, err_str(rc));
			return;
		}
		if (!c->connected && now - c->created_ms < SERVER_PROXY_CONNECT_MS) {
			c->refs++;
			f->conn = c;
			f->waiting = true;
			list_add(&p->waiting, f);
			if (!p->retry_timer)
				p->retry_timer =
				    loop_timer_add(p->loop, SERVER_PROXY_RETRY_MS, on_retry, p);
			return;
		}
		/* not sent: safe to try another server, even for a write */
		log_warn("server %s unreachable; trying another", ep);
		servers_failed(p->pool, ep);
	}
	list_add(&p->flying, f);
	fwd_fail(f, CAIRN_E_UNAVAILABLE, "no Consul server reachable");
}

static int64_t on_retry(struct loop *l, void *ctx)
{
	struct server_proxy *p = ctx;
	struct fwd *batch = p->waiting;
	uint64_t now = loop_now_ms(l);

	p->waiting = NULL;
	/* a connection still being made past its time: its server failed */
	for (struct fwd *f = batch; f; f = f->next)
		if (f->conn && !f->conn->connected &&
		    now - f->conn->created_ms >= SERVER_PROXY_CONNECT_MS)
			servers_failed(p->pool, f->conn->endpoint);
	while (batch) {
		struct fwd *f = batch;

		batch = f->next;
		if (batch)
			batch->prev = NULL;
		f->prev = f->next = NULL;
		f->waiting = false;
		f->conn->refs--;
		f->conn = NULL;
		dispatch(f);
	}
	if (p->waiting)
		return SERVER_PROXY_RETRY_MS;
	p->retry_timer = 0;
	return LOOP_TIMER_STOP;
}

static void on_fwd_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct fwd *f = ctx;
	struct server_proxy *p = f->p;
	char ep[256], msg[320];

	snprintf(ep, sizeof(ep), "%s", f->conn ? f->conn->endpoint : "?");
	if (status == 0 && reply) {
		struct proto_msg r = *reply; /* rpc_reply sets the caller's id */

		fwd_detach(f);
		(void)rpc_reply(f->req, &r); /* the caller may be gone */
		free(f);
		return;
	}
	if (status == CAIRN_E_UNAVAILABLE || status == -ETIMEDOUT)
		servers_failed(p->pool, ep);
	if (status == CAIRN_E_UNAVAILABLE && f->read && !f->resent) {
		log_info("lost server %s with a read in flight; asking another", ep);
		fwd_detach(f);
		f->resent = true;
		dispatch(f);
		return;
	}
	if (status == CAIRN_E_UNAVAILABLE)
		snprintf(msg, sizeof(msg), "connection to server %s lost", ep);
	else if (status == -ETIMEDOUT)
		snprintf(msg, sizeof(msg), "server %s did not answer in time", ep);
	else
		snprintf(msg, sizeof(msg), "server %s: %s", ep, err_str(status));
	fwd_fail(f, status < 0 ? status : CAIRN_E_PROTO, msg);
}

static enum rpc_disposition on_request(void *ctx, struct rpc_req *req)
{
	struct server_proxy *p = ctx;
	struct fwd *f = calloc(1, sizeof(*f));

	if (!f) {
		(void)rpc_reply_error(req, -ENOMEM, "out of memory");
		return RPC_DONE;
	}
	f->p = p;
	f->req = req;
	f->read = is_read(&req->msg);
	f->timeout_ms = call_timeout_ms(&req->msg);
	dispatch(f);
	return RPC_KEEP;
}

/* Closes connections nobody uses: to servers that left the pool, and
 * idle ones to servers not in use (after a rebalance or a failover), so
 * that a client does not end up connected to every server. */
static int64_t on_gc(struct loop *l, void *ctx)
{
	struct server_proxy *p = ctx;
	const char *in_use = servers_in_use(p->pool);
	uint64_t now = loop_now_ms(l);
	struct conn **cp = &p->conns;

	while (*cp) {
		struct conn *c = *cp;
		bool gone = !servers_has_endpoint(p->pool, c->endpoint);
		bool idle = (!in_use || strcmp(in_use, c->endpoint) != 0) &&
			    now - c->used_ms >= SERVER_PROXY_IDLE_MS;

		if (c->refs == 0 && (gone || idle)) {
			*cp = c->next;
			rpc_client_free(c->client);
			free(c->endpoint);
			free(c);
			continue;
		}
		cp = &c->next;
	}
	return SERVER_PROXY_GC_MS;
}

/* ---- membership --------------------------------------------------------- */

/* Gossip declared the server at endpoint failed: reads in flight on it are
 * asked of another server now rather than after their time-out (a
 * machine that vanished without closing its connections); writes wait
 * for their answer or time-out, as they may be applied. */
static void abandon_reads(struct server_proxy *p, const char *endpoint)
{
	struct fwd *moved = NULL, *f, *next;

	for (f = p->flying; f; f = next) {
		next = f->next;
		if (!f->read || f->resent || !f->conn || strcmp(f->conn->endpoint, endpoint) != 0)
			continue;
		rpc_cancel(f->conn->client, f->call_id);
		fwd_detach(f);
		f->resent = true;
		f->next = moved; /* dispatch after the walk: it adds to flying */
		moved = f;
	}
	if (moved)
		log_info("server %s failed; asking another for its reads in flight", endpoint);
	for (f = moved; f; f = next) {
		next = f->next;
		f->next = NULL;
		dispatch(f);
	}
}

static void on_member(void *ctx, enum member_feed_change change, const struct member_feed_member *m,
		      const struct member_feed_member *old)
{
	struct server_proxy *p = ctx;
	char ep[256];
	size_t before = servers_count(p->pool);
	int rc;

	(void)old;
	if (change == MEMBER_FEED_SYNCED || !m)
		return;
	rc = change == MEMBER_FEED_REMOVED ? 0
					   : servers_member_endpoint(m, p->cfg->datacenter, ep,
								     sizeof(ep));
	if (rc == 1) {
		if (servers_set(p->pool, m->name, ep) < 0)
			log_error("server %s: out of memory", m->name);
	} else {
		const char *gone = servers_endpoint(p->pool, m->name);

		if (gone && m->status == MEMBER_FEED_FAILED) {
			snprintf(ep, sizeof(ep), "%s", gone);
			servers_remove(p->pool, m->name);
			abandon_reads(p, ep);
		} else {
			servers_remove(p->pool, m->name);
		}
	}
	if (servers_count(p->pool) != before)
		log_info("%s server %s: %zu known", servers_count(p->pool) > before ? "added" : "removed",
			 m->name, servers_count(p->pool));
}

/* ---- lifecycle ---------------------------------------------------------- */

void server_proxy_free(struct server_proxy *p)
{
	if (!p)
		return;
	while (p->flying) {
		struct fwd *f = p->flying;

		p->flying = f->next;
		if (f->conn)
			rpc_cancel(f->conn->client, f->call_id);
		rpc_req_free(f->req);
		free(f);
	}
	while (p->waiting) {
		struct fwd *f = p->waiting;

		p->waiting = f->next;
		rpc_req_free(f->req);
		free(f);
	}
	while (p->conns) {
		struct conn *c = p->conns;

		p->conns = c->next;
		rpc_client_free(c->client);
		free(c->endpoint);
		free(c);
	}
	if (p->retry_timer)
		loop_timer_del(p->loop, p->retry_timer);
	if (p->gc_timer)
		loop_timer_del(p->loop, p->gc_timer);
	rpc_server_free(p->srv);
	member_feed_free(p->feed);
	servers_free(p->pool);
	free(p);
}

size_t server_proxy_known(const struct server_proxy *p)
{
	return p ? servers_count(p->pool) : 0;
}

int server_proxy_endpoint(struct loop *l, void *zctx, const struct config *cfg,
			  struct server_proxy **out_proxy, char *buf, size_t len, char *err,
			  size_t errlen)
{
	struct server_proxy *p;
	char sub_ep[512], rpc_ep[512];
	const char *eps[2] = {buf, NULL};
	int rc;

	*out_proxy = NULL;
	if (cfg->server || cfg->dev) {
		rc = config_ipc_endpoint(cfg, CONFIG_SOCK_RAFTD, buf, len);
		if (rc < 0)
			snprintf(err, errlen, "raftd endpoint: %s", err_str(rc));
		return rc;
	}
	rc = config_ipc_endpoint(cfg, CONFIG_SOCK_GOSSIP_EVENTS, sub_ep, sizeof(sub_ep));
	if (rc == 0)
		rc = config_ipc_endpoint(cfg, CONFIG_SOCK_GOSSIPD, rpc_ep, sizeof(rpc_ep));
	if (rc < 0) {
		snprintf(err, errlen, "gossipd endpoints: %s", err_str(rc));
		return rc;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->loop = l;
	p->cfg = cfg;
	/* different per agent and per daemon: the choices spread */
	p->rand_state = (uint32_t)clock_wall_ms() ^ ((uint32_t)getpid() << 16) ^
			(uint32_t)(uintptr_t)p;
	if (!p->rand_state)
		p->rand_state = 0x9e3779b9u;
	p->zctx = zctx;
	p->pool = servers_new(&(struct servers_io){.ctx = p, .now_ms = io_now, .rand_u32 = io_rand});
	snprintf(buf, len, "inproc://cairn-server-proxy-%p", (void *)p);
	rc = -ENOMEM;
	if (!p->pool) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	p->srv = rpc_server_new(l, zctx, eps, on_request, p, err, errlen);
	if (!p->srv)
		goto fail;
	p->feed = member_feed_new(l, zctx, sub_ep, rpc_ep, NULL, on_member, p);
	if (!p->feed) {
		snprintf(err, errlen, "cannot follow gossipd's members (%s, %s)", sub_ep, rpc_ep);
		goto fail;
	}
	p->gc_timer = loop_timer_add(l, SERVER_PROXY_GC_MS, on_gc, p);
	if (!p->gc_timer) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	log_info("client agent: server RPCs go to a server of %s found through gossip",
		 cfg->datacenter);
	*out_proxy = p;
	return 0;
fail:
	server_proxy_free(p);
	return rc;
}
