/* Query dispatch between the transports, the answer builder and raftd;
 * see dns_server.h. */
#include "dns_server.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "clock.h"
#include "dns_cache.h"
#include "err.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

struct pending {
	struct pending *prev, *next;
	struct dns_server *srv;
	struct dns_query q; /* owns the parsed packet */
	bool udp;
	void *owner;
	struct dns_peer peer;
	dns_send_fn send;
	uint64_t call_id;
	/* forwarding to the recursors */
	uint8_t *raw; /* the query as received */
	size_t raw_len;
	int fwd_fd;	    /* -1 when none */
	uint64_t fwd_timer; /* 0 when none */
	size_t fwd_next;    /* recursor being asked */
	/* over TCP to the same recursor after a truncated UDP answer, for a
	 * TCP client (UDP clients get the TC answer and come back over TCP) */
	bool fwd_tcp;	   /* fwd_fd is the TCP connection */
	bool tcp_sent;	   /* the query frame is out; reading the answer */
	uint8_t *tcp_buf;  /* the query frame, then the answer frame */
	size_t tcp_len;	   /* bytes of the frame in tcp_buf */
	size_t tcp_off;	   /* sent or received so far */
	uint8_t *trunc;	   /* the truncated UDP answer: relayed if TCP fails */
	size_t trunc_len;
	/* the answer cache */
	enum dns_action act;		 /* what to resolve again after a wait */
	struct dns_cache_entry *wait_e;	 /* the view p waits for, or NULL */
	struct pending *wnext;		 /* in a list of woken waiters */
	const uint8_t *in_pkt;		 /* the query as received, while
					    dns_server_handle runs (NULL after) */
	size_t in_len;
};

struct dns_server {
	struct rpc_client *rpc;
	struct dns_server_cfg cfg;
	struct pending *head; /* every pending query, newest first */
	size_t n_pending;
	bool raftd_down; /* last call found raftd unreachable: log changes only */
	struct dns_cache *cache; /* NULL without use_cache */
	uint64_t tick_timer;
	struct dns_server_stats stats;
};

static void cache_evict(void *ctx, struct dns_cache_entry *e);
static int64_t cache_tick(struct loop *l, void *ctx);

struct dns_server *dns_server_new(struct rpc_client *rpc, const struct dns_server_cfg *cfg)
{
	struct dns_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->rpc = rpc;
	s->cfg = *cfg;
	if (cfg->use_cache && cfg->loop) {
		uint64_t wait = cfg->cache_wait_ms ? cfg->cache_wait_ms : 10000;

		if (cfg->cache_max_age_ms && cfg->cache_max_age_ms < wait)
			wait = cfg->cache_max_age_ms;
		s->cache = dns_cache_new(
		    &(struct dns_cache_cfg){
			.wait_ms = wait,
			/* without allow_stale a view is served only while
			 * its blocking query holds */
			.max_stale_ms = cfg->allow_stale ? cfg->max_stale_ms : 0,
			.idle_ms = cfg->cache_idle_ms ? cfg->cache_idle_ms : 300000,
			.max_entries = cfg->cache_max_entries ? cfg->cache_max_entries : 4096,
			.retry_min_ms = 100,
			.retry_max_ms = cfg->cache_retry_max_ms ? cfg->cache_retry_max_ms : 5000,
			.timeout_slack_ms = cfg->rpc_timeout_ms ? cfg->rpc_timeout_ms : 2000,
		    },
		    cache_evict, s);
		s->tick_timer = s->cache ? loop_timer_add(cfg->loop, 250, cache_tick, s) : 0;
		if (!s->tick_timer) {
			dns_cache_free(s->cache);
			free(s);
			return NULL;
		}
	}
	return s;
}

static void pending_unlink(struct pending *p)
{
	struct dns_server *s = p->srv;

	if (p->prev)
		p->prev->next = p->next;
	else
		s->head = p->next;
	if (p->next)
		p->next->prev = p->prev;
	s->n_pending--;
}

/* Stops asking the current recursor. */
static void fwd_stop(struct pending *p)
{
	if (p->fwd_fd >= 0) {
		loop_unwatch_fd(p->srv->cfg.loop, p->fwd_fd);
		close(p->fwd_fd);
		p->fwd_fd = -1;
	}
	if (p->fwd_timer) {
		loop_timer_del(p->srv->cfg.loop, p->fwd_timer);
		p->fwd_timer = 0;
	}
}

static void pending_free(struct pending *p)
{
	if (p->wait_e)
		p->wait_e->waiters--;
	fwd_stop(p);
	free(p->tcp_buf);
	free(p->trunc);
	free(p->raw);
	dns_query_close(&p->q);
	free(p);
}

void dns_server_free(struct dns_server *s)
{
	if (!s)
		return;
	while (s->head) {
		struct pending *p = s->head;

		rpc_cancel(s->rpc, p->call_id);
		pending_unlink(p);
		pending_free(p);
	}
	if (s->tick_timer)
		loop_timer_del(s->cfg.loop, s->tick_timer);
	dns_cache_free(s->cache);
	free(s);
}

static uint64_t now_s(void) { return clock_wall_ms() / 1000; }

/* Builds and sends the reply; logs when it cannot (the client retries). */
static void respond(struct dns_server *s, const struct dns_query *q,
		    const struct dns_node_result *node, const struct dns_service_result *svc,
		    bool udp, void *owner, const struct dns_peer *peer, dns_send_fn send)
{
	uint8_t *wire = NULL;
	size_t len = 0;
	int rc;

	rc = dns_answer_build(q, node, svc, &s->cfg.answer, now_s(), udp, &wire, &len);
	if (rc < 0) {
		log_warn("dns: cannot build the reply to query %u: %s", q->id, err_str(rc));
		return;
	}
	send(owner, peer, wire, len);
	free(wire);
}

/* Follows whether raftd answers: a failed call (status < 0) is logged
 * once, with what it failed on ("<what><name>") and what dnsd does
 * meanwhile (then), until a call succeeds again. */
static void note_raftd(struct dns_server *s, int status, const char *what, const char *name,
		       const char *then)
{
	if (status == 0) {
		if (s->raftd_down)
			log_info("dns: raftd answers again");
		s->raftd_down = false;
		return;
	}
	if (!s->raftd_down)
		log_warn("dns: %s%s failed (%s): %s until raftd answers again", what, name,
			 err_str(status), then);
	s->raftd_down = true;
}

/* The status of an ERROR reply to a <kind> lookup of name; anything but
 * "not found" is logged. */
static int error_status(const struct proto_msg *reply, const char *kind, const char *name)
{
	int st = (int)reply->u.error.code;

	if (st >= 0)
		st = CAIRN_E_PROTO;
	if (st != CAIRN_E_NOTFOUND)
		log_warn("dns: %s lookup for %s failed: %s", kind, name,
			 reply->u.error.message ? reply->u.error.message : "?");
	return st;
}

static void on_node_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	struct dns_node_result res = {.status = status, .address = NULL};

	note_raftd(s, status, "node lookup for ", p->q.name.target, "answering SERVFAIL");
	if (status == 0 && reply->type == PROTO_ERROR) {
		res.status = error_status(reply, "node", p->q.name.target);
	} else if (status == 0 && reply->type == PROTO_CATALOG_NODE_REPLY) {
		const struct proto_catalog_node_reply *r = &reply->u.catalog_node_reply;

		if (r->nodes.n == 0)
			res.status = CAIRN_E_NOTFOUND;
		else {
			res.address = r->nodes.v[0].address;
			res.meta_keys = r->nodes.v[0].meta.keys;
			res.meta_vals = r->nodes.v[0].meta.vals;
			res.n_meta = r->nodes.v[0].meta.n;
		}
	} else if (status == 0) {
		log_warn("dns: unexpected %s from raftd", proto_type_name(reply->type));
		res.status = CAIRN_E_PROTO;
	}
	pending_unlink(p);
	respond(s, &p->q, &res, NULL, p->udp, p->owner, &p->peer, p->send);
	pending_free(p);
}

/* Sends req to raftd for p and parks p until the reply. Returns 0, or the
 * RPC error (logged once while raftd stays unreachable); p is then not
 * parked and the caller answers it. */
static int pending_send(struct dns_server *s, struct pending *p, struct proto_msg *req,
			rpc_reply_fn fn)
{
	int rc = rpc_call(s->rpc, req, s->cfg.rpc_timeout_ms, fn, p, &p->call_id);

	p->in_pkt = NULL; /* answered after dns_server_handle returned */

	if (rc < 0) {
		note_raftd(s, rc, "asking raftd", "", "answering SERVFAIL");
		return rc;
	}
	p->next = s->head;
	if (s->head)
		s->head->prev = p;
	s->head = p;
	s->n_pending++;
	return 0;
}

/* Starts the node lookup; answers SERVFAIL at once when it cannot. */
static void lookup_node(struct dns_server *s, struct pending *p)
{
	struct proto_msg req = proto_msg_make(PROTO_CATALOG_NODE);
	struct dns_node_result fail = {.status = -EAGAIN, .address = NULL};
	int rc;

	if (s->n_pending >= s->cfg.max_pending) {
		log_debug("dns: %zu lookups pending, answering SERVFAIL", s->n_pending);
		goto fail;
	}
	req.u.catalog_node.dc = p->q.name.dc[0] ? p->q.name.dc : NULL;
	req.u.catalog_node.node = p->q.name.target;
	req.u.catalog_node.mode = s->cfg.allow_stale ? 2 : 0;
	req.u.catalog_node.max_stale_ms = s->cfg.allow_stale ? s->cfg.max_stale_ms : 0;
	rc = pending_send(s, p, &req, on_node_reply);
	if (rc < 0) {
		fail.status = rc;
		goto fail;
	}
	return;
fail:
	respond(s, &p->q, &fail, NULL, p->udp, p->owner, &p->peer, p->send);
	pending_free(p);
}

/* Whether instance s of the health-service reply r is healthy: no check
 * of its own or of its node is critical (Consul's DNS keeps warning
 * instances unless only_passing, which raftd applied already). *warning:
 * some check is warning. */
static bool instance_healthy(const struct proto_catalog_query_reply *r,
			     const struct proto_service *s, bool *warning)
{
	*warning = false;
	for (size_t k = 0; k < r->checks.n; k++) {
		const struct proto_check *ck = &r->checks.v[k];

		if (!ck->node || strcasecmp(ck->node, s->node) != 0)
			continue;
		if (ck->service_id && *ck->service_id && strcmp(ck->service_id, s->id) != 0)
			continue;
		if (ck->status && strcmp(ck->status, "critical") == 0)
			return false;
		if (ck->status && strcmp(ck->status, "warning") == 0)
			*warning = true;
	}
	return true;
}

static const char *node_address(const struct proto_catalog_query_reply *r, const char *node)
{
	for (size_t i = 0; i < r->nodes.n; i++)
		if (r->nodes.v[i].node && strcasecmp(r->nodes.v[i].node, node) == 0)
			return r->nodes.v[i].address;
	return NULL;
}

static void on_service_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	struct dns_service_result res = {
	    .status = status, .ttl_s = dns_service_ttl(&s->cfg.answer, p->q.name.target)};
	struct dns_instance *v = NULL;

	note_raftd(s, status, "service lookup for ", p->q.name.target, "answering SERVFAIL");
	if (status == 0 && reply->type == PROTO_ERROR) {
		res.status = error_status(reply, "service", p->q.name.target);
	} else if (status == 0 && reply->type == PROTO_CATALOG_QUERY_REPLY) {
		const struct proto_catalog_query_reply *r = &reply->u.catalog_query_reply;

		v = r->services.n ? calloc(r->services.n, sizeof(*v)) : NULL;
		if (r->services.n && !v)
			res.status = -ENOMEM;
		for (size_t i = 0; v && i < r->services.n; i++) {
			const struct proto_service *sv = &r->services.v[i];
			bool warn;

			if (!sv->node || !instance_healthy(r, sv, &warn))
				continue;
			v[res.n].warning = warn;
			v[res.n].weight =
			    (uint16_t)(warn ? sv->weight_warning : sv->weight_passing);
			v[res.n].node = sv->node;
			v[res.n].node_address = node_address(r, sv->node);
			v[res.n].address = sv->address;
			v[res.n].port = (uint16_t)sv->port;
			res.n++;
		}
		/* Fisher-Yates: a different order for each answer, as Consul */
		for (size_t i = res.n; i > 1; i--) {
			size_t j = (size_t)random() % i;
			struct dns_instance t = v[i - 1];

			v[i - 1] = v[j];
			v[j] = t;
		}
		res.v = v;
	} else if (status == 0) {
		log_warn("dns: unexpected %s from raftd", proto_type_name(reply->type));
		res.status = CAIRN_E_PROTO;
	}
	pending_unlink(p);
	respond(s, &p->q, NULL, &res, p->udp, p->owner, &p->peer, p->send);
	free(v);
	pending_free(p);
}

/* Starts the health-service lookup; answers SERVFAIL at once when it
 * cannot. */
static void lookup_service(struct dns_server *s, struct pending *p)
{
	struct proto_msg req = proto_msg_make(PROTO_CATALOG_QUERY);
	struct dns_service_result fail = {.status = -EAGAIN};
	const char *tags[1];
	int rc;

	if (s->n_pending >= s->cfg.max_pending) {
		log_debug("dns: %zu lookups pending, answering SERVFAIL", s->n_pending);
		goto fail;
	}
	req.u.catalog_query.dc = p->q.name.dc[0] ? p->q.name.dc : NULL;
	req.u.catalog_query.view = 8; /* health service */
	req.u.catalog_query.name = p->q.name.target;
	if (p->q.name.tag[0]) {
		tags[0] = p->q.name.tag;
		req.u.catalog_query.tags.v = tags;
		req.u.catalog_query.tags.n = 1;
	}
	req.u.catalog_query.passing = s->cfg.only_passing;
	req.u.catalog_query.mode = s->cfg.allow_stale ? 2 : 0;
	req.u.catalog_query.max_stale_ms = s->cfg.allow_stale ? s->cfg.max_stale_ms : 0;
	rc = pending_send(s, p, &req, on_service_reply);
	if (rc < 0) {
		fail.status = rc;
		goto fail;
	}
	return;
fail:
	respond(s, &p->q, NULL, &fail, p->udp, p->owner, &p->peer, p->send);
	pending_free(p);
}

/* Same address, whatever its spelling ("::1" and "0:0::1"). */
static bool same_address(const char *a, const char *b)
{
	uint8_t x[16], y[16];

	if (!a || !b)
		return false;
	if (inet_pton(AF_INET, a, x) == 1)
		return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
	if (inet_pton(AF_INET6, a, x) == 1)
		return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
	return false;
}

static void respond_ptr(struct dns_server *s, const struct pending *p,
			const struct dns_ptr_result *res)
{
	uint8_t *wire = NULL;
	size_t len = 0;
	int rc = dns_answer_build_ptr(&p->q, res, &s->cfg.answer, now_s(), p->udp, &wire, &len);

	if (rc < 0) {
		log_warn("dns: cannot build the reply to query %u: %s", p->q.id, err_str(rc));
		return;
	}
	p->send(p->owner, &p->peer, wire, len);
	free(wire);
}

static void forward(struct dns_server *s, struct pending *p, const uint8_t *pkt, size_t len);

static void on_ptr_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	struct dns_ptr_result res = {.status = status};
	const char **v = NULL;

	if (status == 0 && reply->type == PROTO_CATALOG_QUERY_REPLY) {
		const struct proto_catalog_query_reply *r = &reply->u.catalog_query_reply;

		v = r->nodes.n ? calloc(r->nodes.n, sizeof(*v)) : NULL;
		if (r->nodes.n && !v)
			res.status = -ENOMEM;
		for (size_t i = 0; v && i < r->nodes.n; i++)
			if (r->nodes.v[i].node &&
			    same_address(r->nodes.v[i].address, p->q.ptr_addr))
				v[res.n++] = r->nodes.v[i].node;
		res.nodes = v;
	} else if (status == 0) {
		res.status = reply->type == PROTO_ERROR && reply->u.error.code < 0
				 ? (int)reply->u.error.code
				 : CAIRN_E_PROTO;
		log_warn("dns: node list for a PTR query failed: %s",
			 reply->type == PROTO_ERROR && reply->u.error.message
			     ? reply->u.error.message
			     : "?");
	}
	pending_unlink(p);
	if (res.status == 0 && res.n == 0 && p->raw) {
		/* no node has the address: the recursors may know it */
		free(v);
		forward(s, p, p->raw, p->raw_len);
		return;
	}
	respond_ptr(s, p, &res);
	free(v);
	pending_free(p);
}

/* Asks raftd for the nodes (catalog nodes view) to answer a PTR query. */
static void lookup_ptr(struct dns_server *s, struct pending *p)
{
	struct proto_msg req = proto_msg_make(PROTO_CATALOG_QUERY);
	struct dns_ptr_result fail = {.status = -EAGAIN};
	int rc;

	if (s->n_pending >= s->cfg.max_pending)
		goto fail;
	req.u.catalog_query.view = 1; /* nodes */
	req.u.catalog_query.mode = s->cfg.allow_stale ? 2 : 0;
	req.u.catalog_query.max_stale_ms = s->cfg.allow_stale ? s->cfg.max_stale_ms : 0;
	rc = pending_send(s, p, &req, on_ptr_reply);
	if (rc < 0) {
		fail.status = rc;
		goto fail;
	}
	return;
fail:
	respond_ptr(s, p, &fail);
	pending_free(p);
}

int dns_recursor_parse(const char *text, struct sockaddr_storage *out, socklen_t *out_len)
{
	char host[64];
	const char *port = NULL;
	size_t n;
	unsigned long pnum = 53;
	struct sockaddr_in *v4 = (struct sockaddr_in *)out;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;

	if (!text)
		return -EINVAL;
	if (text[0] == '[') {
		const char *end = strchr(text, ']');

		if (!end || (end[1] && end[1] != ':'))
			return -EINVAL;
		n = (size_t)(end - text - 1);
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, n);
		host[n] = '\0';
		port = end[1] ? end + 2 : NULL;
	} else {
		const char *colon = strchr(text, ':');

		if (colon && !strchr(colon + 1, ':')) { /* one colon: v4:port */
			n = (size_t)(colon - text);
			port = colon + 1;
		} else {
			n = strlen(text);
		}
		if (n >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, n);
		host[n] = '\0';
	}
	if (port) {
		char *end;

		pnum = strtoul(port, &end, 10);
		if (!*port || *end || pnum == 0 || pnum > 65535)
			return -EINVAL;
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)pnum);
		*out_len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)pnum);
		*out_len = sizeof(*v6);
		return 0;
	}
	return -EINVAL;
}

static void fwd_try(struct dns_server *s, struct pending *p);
static int fwd_tcp_start(struct dns_server *s, struct pending *p);
static int64_t on_fwd_timeout(struct loop *l, void *ctx);

/* Sends reply bytes from a recursor to the client, cut to the UDP size
 * the client allows. */
static void fwd_relay(struct dns_server *s, struct pending *p, const uint8_t *buf, size_t n)
{
	ldns_pkt *pkt = NULL;
	uint8_t *wire = NULL;
	size_t len = 0;

	if (!p->udp || n <= p->q.udp_limit) {
		p->send(p->owner, &p->peer, buf, n);
		return;
	}
	if (ldns_wire2pkt(&pkt, buf, n) == LDNS_STATUS_OK &&
	    dns_answer_encode(pkt, p->q.udp_limit, true, &wire, &len) == 0)
		p->send(p->owner, &p->peer, wire, len);
	else
		log_debug("dns: dropping an oversized answer from a recursor");
	free(wire);
	ldns_pkt_free(pkt);
	(void)s;
}

static void on_fwd_read(struct loop *l, void *ctx, unsigned events)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	uint8_t buf[65536];
	ssize_t n;

	(void)l;
	(void)events;
	n = recv(p->fwd_fd, buf, sizeof(buf), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		/* e.g. ECONNREFUSED from an ICMP port unreachable: next one */
		log_debug("dns: recursor %zu: %s", p->fwd_next, strerror(errno));
		p->fwd_next++;
		fwd_try(s, p);
		return;
	}
	if ((size_t)n < LDNS_HEADER_SIZE || !LDNS_QR_WIRE(buf) || LDNS_ID_WIRE(buf) != p->q.id)
		return; /* not the answer to this query */
	if (LDNS_TC_WIRE(buf) && !p->udp && (p->trunc = malloc((size_t)n))) {
		/* the TCP client may have it all: ask the recursor over TCP */
		memcpy(p->trunc, buf, (size_t)n);
		p->trunc_len = (size_t)n;
		if (fwd_tcp_start(s, p) == 0)
			return;
	}
	pending_unlink(p);
	fwd_relay(s, p, buf, (size_t)n);
	pending_free(p);
}

/* The TCP attempt failed: relay the truncated UDP answer (TC set). */
static void fwd_tcp_fail(struct dns_server *s, struct pending *p)
{
	log_debug("dns: recursor %zu over TCP failed; relaying the truncated answer", p->fwd_next);
	pending_unlink(p);
	fwd_relay(s, p, p->trunc, p->trunc_len);
	pending_free(p);
}

static void on_fwd_tcp(struct loop *l, void *ctx, unsigned events)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	ssize_t n;

	if (!p->tcp_sent) {
		int err = 0;
		socklen_t elen = sizeof(err);

		if (getsockopt(p->fwd_fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
			fwd_tcp_fail(s, p);
			return;
		}
		n = send(p->fwd_fd, p->tcp_buf + p->tcp_off, p->tcp_len - p->tcp_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			fwd_tcp_fail(s, p);
			return;
		}
		p->tcp_off += (size_t)n;
		if (p->tcp_off < p->tcp_len)
			return;
		p->tcp_sent = true;
		p->tcp_off = 0;
		if (loop_update_fd(l, p->fwd_fd, LOOP_READ) < 0)
			fwd_tcp_fail(s, p);
		return;
	}
	(void)events;
	n = recv(p->fwd_fd, p->tcp_buf + p->tcp_off, 2 + 65535 - p->tcp_off, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		fwd_tcp_fail(s, p);
		return;
	}
	p->tcp_off += (size_t)n;
	if (p->tcp_off < 2)
		return;
	p->tcp_len = 2 + ((size_t)p->tcp_buf[0] << 8 | p->tcp_buf[1]);
	if (p->tcp_off < p->tcp_len)
		return;
	if (p->tcp_len - 2 < LDNS_HEADER_SIZE || !LDNS_QR_WIRE(p->tcp_buf + 2) ||
	    LDNS_ID_WIRE(p->tcp_buf + 2) != p->q.id) {
		fwd_tcp_fail(s, p);
		return;
	}
	pending_unlink(p);
	fwd_relay(s, p, p->tcp_buf + 2, p->tcp_len - 2);
	pending_free(p);
}

/* Asks recursor p->fwd_next again over TCP (RFC 7766 5: after a
 * truncated UDP answer), within recursor_timeout. Returns 0, or -errno
 * when it cannot start (the caller relays the truncated answer). */
static int fwd_tcp_start(struct dns_server *s, struct pending *p)
{
	const struct sockaddr_storage *to = &s->cfg.recursors[p->fwd_next];
	int fd;

	fwd_stop(p);
	p->tcp_buf = malloc(2 + 65535);
	if (!p->tcp_buf || p->raw_len > 65535)
		return -ENOMEM;
	p->tcp_buf[0] = (uint8_t)(p->raw_len >> 8);
	p->tcp_buf[1] = (uint8_t)p->raw_len;
	memcpy(p->tcp_buf + 2, p->raw, p->raw_len);
	p->tcp_len = 2 + p->raw_len;
	p->tcp_off = 0;
	p->tcp_sent = false;
	fd = socket(to->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if ((connect(fd, (const struct sockaddr *)to, s->cfg.recursor_lens[p->fwd_next]) < 0 &&
	     errno != EINPROGRESS) ||
	    loop_watch_fd(s->cfg.loop, fd, LOOP_WRITE, on_fwd_tcp, p) < 0) {
		close(fd);
		return -EIO;
	}
	p->fwd_fd = fd;
	p->fwd_tcp = true;
	p->fwd_timer = loop_timer_add(s->cfg.loop, s->cfg.recursor_timeout_ms, on_fwd_timeout, p);
	if (!p->fwd_timer) {
		fwd_stop(p);
		return -ENOMEM;
	}
	return 0;
}

static int64_t on_fwd_timeout(struct loop *l, void *ctx)
{
	struct pending *p = ctx;

	(void)l;
	p->fwd_timer = 0;
	if (p->fwd_tcp) {
		fwd_tcp_fail(p->srv, p);
		return LOOP_TIMER_STOP;
	}
	log_debug("dns: recursor %zu did not answer in time", p->fwd_next);
	p->fwd_next++;
	fwd_try(p->srv, p);
	return LOOP_TIMER_STOP;
}

/* Asks recursor p->fwd_next, or the ones after it; answers SERVFAIL when
 * none is left. p is linked as pending. */
static void fwd_try(struct dns_server *s, struct pending *p)
{
	fwd_stop(p);
	for (; p->fwd_next < s->cfg.n_recursors; p->fwd_next++) {
		const struct sockaddr_storage *to = &s->cfg.recursors[p->fwd_next];
		int fd = socket(to->ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0)
			continue;
		if (connect(fd, (const struct sockaddr *)to, s->cfg.recursor_lens[p->fwd_next]) <
			0 ||
		    send(fd, p->raw, p->raw_len, 0) != (ssize_t)p->raw_len ||
		    loop_watch_fd(s->cfg.loop, fd, LOOP_READ, on_fwd_read, p) < 0) {
			close(fd);
			continue;
		}
		p->fwd_fd = fd;
		p->fwd_timer =
		    loop_timer_add(s->cfg.loop, s->cfg.recursor_timeout_ms, on_fwd_timeout, p);
		if (!p->fwd_timer) {
			fwd_stop(p);
			continue;
		}
		return;
	}
	log_debug("dns: no recursor answered query %u: SERVFAIL", p->q.id);
	pending_unlink(p);
	p->q.rcode = LDNS_RCODE_SERVFAIL;
	respond(s, &p->q, NULL, NULL, p->udp, p->owner, &p->peer, p->send);
	pending_free(p);
}

/* Starts forwarding p (not yet linked) to the recursors. */
static void forward(struct dns_server *s, struct pending *p, const uint8_t *pkt, size_t len)
{
	if (s->n_pending >= s->cfg.max_pending || !s->cfg.loop || !s->cfg.n_recursors ||
	    (!p->raw && !(p->raw = malloc(len)))) {
		p->q.rcode = LDNS_RCODE_SERVFAIL;
		respond(s, &p->q, NULL, NULL, p->udp, p->owner, &p->peer, p->send);
		pending_free(p);
		return;
	}
	p->in_pkt = NULL; /* answered after dns_server_handle returned */
	if (p->raw != pkt)
		memcpy(p->raw, pkt, len);
	p->raw_len = len;
	p->next = s->head;
	if (s->head)
		s->head->prev = p;
	s->head = p;
	s->n_pending++;
	fwd_try(s, p);
}

/* ---- the answer cache ------------------------------------------------ */

/* A cached view, decoded once per change. Strings are owned. */
struct cval {
	bool found;	 /* node: the node exists */
	char *address;	 /* node */
	char **keys;	 /* node meta */
	char **vals;
	size_t n_meta;
	struct dns_instance *inst; /* service: healthy instances, unshuffled */
	size_t n_inst;
	char **names; /* nodes: node names; services: service names; instances:
			 the service name per instance */
	char **addrs; /* nodes: node addresses; instances: service addresses */
	size_t n_names;
	struct wire_slot *slots; /* encoded replies (WIRE_SLOTS), or NULL */
};

/* Encoded replies from one cached value, reused for the next query that
 * asks the same question the same way (name, type, class, transport, UDP
 * size, EDNS, RD, and for services the rotation of the instances): only
 * the id and the question (its case, RFC 0x20) are patched. Building a
 * reply with ldns costs more than everything else a cached answer needs.
 * Replies are rebuilt every wall second (the SOA serial). */
#define WIRE_SLOTS 32
#define WIRE_KEY_MAX (DNS_NAME_TEXT_MAX + 2 + 4 + 8)
/* services with more instances than this are shuffled and built per query */
#define WIRE_MAX_INST 8

struct wire_slot {
	uint8_t *key;	/* key_len bytes, then the reply: one allocation */
	size_t key_len; /* 0: empty */
	uint64_t sec;	/* wall second it was built in */
	uint8_t *wire;	/* inside key's allocation */
	size_t len;
};

/* e->user: the entry's blocking query. */
struct watch {
	struct dns_server *srv;
	uint64_t call_id; /* with e->fetching */
};

static void cval_free(struct cval *v)
{
	if (!v)
		return;
	free(v->address);
	for (size_t i = 0; i < v->n_meta; i++) {
		free(v->keys[i]);
		free(v->vals[i]);
	}
	free(v->keys);
	free(v->vals);
	for (size_t i = 0; i < v->n_inst; i++) {
		free((char *)v->inst[i].node);
		free((char *)v->inst[i].node_address);
		free((char *)v->inst[i].address);
	}
	free(v->inst);
	for (size_t i = 0; i < v->n_names; i++) {
		free(v->names[i]);
		if (v->addrs)
			free(v->addrs[i]);
	}
	free(v->names);
	free(v->addrs);
	for (size_t i = 0; v->slots && i < WIRE_SLOTS; i++)
		free(v->slots[i].key);
	free(v->slots);
	free(v);
}

/* The reuse key of p's question with rotation rot into key (WIRE_KEY_MAX
 * bytes); *qlen: the question's length after the header. Returns the key
 * length, or 0 when the packet is not reusable (no raw packet, compressed
 * or odd question). */
static size_t wire_key(const struct pending *p, unsigned rot, uint8_t *key, size_t *qlen)
{
	const uint8_t *w = p->in_pkt;
	size_t pos = LDNS_HEADER_SIZE, k = 0;

	if (!w || p->in_len < LDNS_HEADER_SIZE + 5)
		return 0;
	while (pos < p->in_len && w[pos] != 0) {
		if (w[pos] & 0xc0)
			return 0; /* a pointer: not from a stub resolver */
		pos += 1u + w[pos];
	}
	pos += 1 + 4; /* root label, type, class */
	if (pos > p->in_len || pos - LDNS_HEADER_SIZE > DNS_NAME_TEXT_MAX + 2 + 4)
		return 0;
	*qlen = pos - LDNS_HEADER_SIZE;
	for (size_t i = LDNS_HEADER_SIZE; i < pos; i++)
		key[k++] = (uint8_t)tolower(w[i]); /* length bytes stay below 64 */
	key[k++] = (uint8_t)((p->udp ? 1 : 0) | (p->q.edns ? 2 : 0) | (p->q.rd ? 4 : 0));
	key[k++] = (uint8_t)(p->udp ? p->q.udp_limit >> 8 : 0);
	key[k++] = (uint8_t)(p->udp ? p->q.udp_limit : 0);
	key[k++] = (uint8_t)rot;
	return k;
}

static size_t wire_index(const uint8_t *key, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	/* FNV-1a leaves keys that differ in the last byte (the rotation)
	 * equal in most bits: mix (murmur3's finaliser) before taking a few */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h & (WIRE_SLOTS - 1);
}

/* Sends the stored reply for p's question, if any: true when sent. */
static bool wire_reuse(struct dns_server *s, struct cval *v, struct pending *p, unsigned rot)
{
	uint8_t key[WIRE_KEY_MAX], buf[DNS_UDP_MAX];
	size_t klen, qlen;
	struct wire_slot *sl;

	if (!v->slots || !(klen = wire_key(p, rot, key, &qlen)))
		return false;
	sl = &v->slots[wire_index(key, klen)];
	if (sl->key_len != klen || memcmp(sl->key, key, klen) != 0)
		sl = &v->slots[wire_index(key, klen) ^ 1]; /* two-way: its pair */
	if (sl->key_len != klen || memcmp(sl->key, key, klen) != 0 || sl->sec != now_s() ||
	    sl->len > sizeof(buf) || sl->len < LDNS_HEADER_SIZE + qlen)
		return false;
	memcpy(buf, sl->wire, sl->len);
	buf[0] = p->in_pkt[0]; /* id */
	buf[1] = p->in_pkt[1];
	memcpy(buf + LDNS_HEADER_SIZE, p->in_pkt + LDNS_HEADER_SIZE, qlen); /* as asked */
	p->send(p->owner, &p->peer, buf, sl->len);
	s->stats.wire_reused++;
	return true;
}

/* Keeps a reply just built for p's question for the next asker. */
static void wire_store(struct cval *v, const struct pending *p, unsigned rot, const uint8_t *wire,
		       size_t len)
{
	uint8_t key[WIRE_KEY_MAX];
	size_t klen, qlen;
	struct wire_slot *sl;
	uint8_t *copy;

	if (len > DNS_UDP_MAX || !(klen = wire_key(p, rot, key, &qlen)))
		return;
	if (!v->slots && !(v->slots = calloc(WIRE_SLOTS, sizeof(*v->slots))))
		return;
	copy = malloc(klen + len);
	if (!copy)
		return;
	memcpy(copy, key, klen);
	memcpy(copy + klen, wire, len);
	/* two ways: the slot holding this key, else an empty one, else the
	 * one built longer ago */
	{
		struct wire_slot *a = &v->slots[wire_index(key, klen)];
		struct wire_slot *b = &v->slots[wire_index(key, klen) ^ 1];

		if (a->key_len == klen && memcmp(a->key, key, klen) == 0)
			sl = a;
		else if (b->key_len == klen && memcmp(b->key, key, klen) == 0)
			sl = b;
		else if (!a->key_len)
			sl = a;
		else if (!b->key_len)
			sl = b;
		else
			sl = a->sec <= b->sec ? a : b;
	}
	free(sl->key);
	sl->key = copy;
	sl->key_len = klen;
	sl->sec = now_s();
	sl->wire = copy + klen;
	sl->len = len;
}

/* respond() that also stores the reply in v's slots. */
static void respond_store(struct dns_server *s, struct pending *p, struct cval *v, unsigned rot,
			  const struct dns_node_result *node, const struct dns_service_result *svc)
{
	uint8_t *wire = NULL;
	size_t len = 0;
	int rc;

	rc = dns_answer_build(&p->q, node, svc, &s->cfg.answer, now_s(), p->udp, &wire, &len);
	if (rc < 0) {
		log_warn("dns: cannot build the reply to query %u: %s", p->q.id, err_str(rc));
		return;
	}
	if (v)
		wire_store(v, p, rot, wire, len);
	p->send(p->owner, &p->peer, wire, len);
	free(wire);
}

/* strdup that keeps NULL and reports failure through *ok. */
static char *dup_str(const char *src, bool *ok)
{
	char *d;

	if (!src)
		return NULL;
	d = strdup(src);
	if (!d)
		*ok = false;
	return d;
}

static void cache_evict(void *ctx, struct dns_cache_entry *e)
{
	struct dns_server *s = ctx;
	struct watch *w = e->user;

	if (w && e->fetching)
		rpc_cancel(s->rpc, w->call_id);
	free(w);
	cval_free(e->val);
	e->val = NULL;
	e->user = NULL;
}

/* Decodes a reply for e's kind into a new value; NULL when it is not the
 * reply the kind expects or memory is short. *index: the view's index. */
static struct cval *cval_decode(struct dns_server *s, const struct dns_cache_entry *e,
				const struct proto_msg *reply, uint64_t *index)
{
	struct cval *v = calloc(1, sizeof(*v));
	bool ok = true;

	if (!v)
		return NULL;
	if (reply->type == PROTO_ERROR && reply->u.error.code == CAIRN_E_NOTFOUND &&
	    (e->kind == DNS_CACHE_NODE || e->kind == DNS_CACHE_SERVICE)) {
		*index = 0; /* nothing to follow: re-polled */
		return v;
	}
	if (e->kind == DNS_CACHE_NODE) {
		const struct proto_catalog_node_reply *r = &reply->u.catalog_node_reply;

		if (reply->type != PROTO_CATALOG_NODE_REPLY)
			goto fail;
		*index = r->index;
		if (r->nodes.n == 0)
			return v;
		v->found = true;
		v->address = dup_str(r->nodes.v[0].address, &ok);
		if (r->nodes.v[0].meta.n) {
			v->keys = calloc(r->nodes.v[0].meta.n, sizeof(*v->keys));
			v->vals = calloc(r->nodes.v[0].meta.n, sizeof(*v->vals));
			ok = ok && v->keys && v->vals;
			for (size_t i = 0; ok && i < r->nodes.v[0].meta.n; i++) {
				v->keys[i] = dup_str(r->nodes.v[0].meta.keys[i], &ok);
				v->vals[i] = dup_str(r->nodes.v[0].meta.vals[i], &ok);
				v->n_meta++;
			}
		}
		if (!ok)
			goto fail;
		return v;
	}
	if (reply->type != PROTO_CATALOG_QUERY_REPLY)
		goto fail;
	const struct proto_catalog_query_reply *r = &reply->u.catalog_query_reply;

	*index = r->index;
	switch (e->kind) {
	case DNS_CACHE_SERVICE:
		v->inst = r->services.n ? calloc(r->services.n, sizeof(*v->inst)) : NULL;
		if (r->services.n && !v->inst)
			goto fail;
		for (size_t i = 0; i < r->services.n; i++) {
			const struct proto_service *sv = &r->services.v[i];
			struct dns_instance *in = &v->inst[v->n_inst];
			bool warn;

			if (!sv->node || !instance_healthy(r, sv, &warn))
				continue;
			in->warning = warn;
			in->weight = (uint16_t)(warn ? sv->weight_warning : sv->weight_passing);
			in->port = (uint16_t)sv->port;
			in->node = dup_str(sv->node, &ok);
			in->node_address = dup_str(node_address(r, sv->node), &ok);
			in->address = dup_str(sv->address, &ok);
			v->n_inst++;
			if (!ok)
				goto fail;
		}
		/* a random base order per value: small services are answered
		 * with a random rotation of it (see resolve_service) */
		for (size_t i = v->n_inst; i > 1; i--) {
			size_t j = (size_t)random() % i;
			struct dns_instance t = v->inst[i - 1];

			v->inst[i - 1] = v->inst[j];
			v->inst[j] = t;
		}
		return v;
	case DNS_CACHE_NODES:
	case DNS_CACHE_SERVICES:
	case DNS_CACHE_INSTANCES: {
		size_t n = e->kind == DNS_CACHE_NODES ? r->nodes.n : r->services.n;

		v->names = n ? calloc(n, sizeof(*v->names)) : NULL;
		v->addrs = n ? calloc(n, sizeof(*v->addrs)) : NULL;
		if (n && (!v->names || !v->addrs))
			goto fail;
		for (size_t i = 0; i < n; i++) {
			const char *name, *addr;

			if (e->kind == DNS_CACHE_NODES) {
				name = r->nodes.v[i].node;
				addr = r->nodes.v[i].address;
			} else {
				name = r->services.v[i].service;
				addr = r->services.v[i].address;
			}
			if (!name)
				continue;
			v->names[v->n_names] = dup_str(name, &ok);
			v->addrs[v->n_names] = dup_str(addr, &ok);
			v->n_names++;
			if (!ok)
				goto fail;
		}
		return v;
	}
	default:
		break;
	}
fail:
	cval_free(v);
	(void)s;
	return NULL;
}

static void fetch_start(struct dns_server *s, struct dns_cache_entry *e);
static void resolve(struct dns_server *s, struct pending *p);

/* Answers again every query parked on e (its fetch ended). */
static void wake_waiters(struct dns_server *s, struct dns_cache_entry *e)
{
	struct pending *list = NULL, *p = s->head;

	while (p) {
		struct pending *next = p->next;

		if (p->wait_e == e) {
			pending_unlink(p);
			p->wait_e = NULL;
			e->waiters--;
			p->wnext = list;
			list = p;
		}
		p = next;
	}
	while (list) {
		p = list;
		list = p->wnext;
		resolve(s, p);
	}
}

static void on_fetch_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct dns_cache_entry *e = ctx;
	struct watch *w = e->user;
	struct dns_server *s = w->srv;
	uint64_t now = loop_now_ms(s->cfg.loop);
	uint64_t index = 0;
	bool ok = false;

	e->waiters++; /* not evicted while its waiters run */
	note_raftd(s, status, "fetching ", e->name[0] ? e->name : "a view",
		   "cached answers are served up to max_stale, then SERVFAIL,");
	if (status == 0 && e->has_val && e->index &&
	    ((reply->type == PROTO_CATALOG_NODE_REPLY &&
	      reply->u.catalog_node_reply.index == e->index) ||
	     (reply->type == PROTO_CATALOG_QUERY_REPLY &&
	      reply->u.catalog_query_reply.index == e->index))) {
		/* the wait ran out without a change: keep the value */
		(void)dns_cache_fetch_done(s->cache, e, now, e->index);
		ok = true;
	} else if (status == 0) {
		struct cval *v = cval_decode(s, e, reply, &index);

		if (v) {
			cval_free(e->val);
			e->val = v;
			(void)dns_cache_fetch_done(s->cache, e, now, index);
			ok = true;
		} else {
			log_warn("dns: %s from raftd for %s: %s", proto_type_name(reply->type),
				 e->name,
				 reply->type == PROTO_ERROR && reply->u.error.message
				     ? reply->u.error.message
				     : "not usable");
		}
	}
	if (!ok)
		dns_cache_fetch_failed(s->cache, e, now);
	wake_waiters(s, e);
	e->waiters--;
	if (ok && dns_cache_fetch_due(e, now))
		fetch_start(s, e); /* the next blocking query */
}

/* Starts e's fetch (dns_cache_fetch_due holds); a failure to send counts
 * as a failed fetch. */
static void fetch_start(struct dns_server *s, struct dns_cache_entry *e)
{
	uint64_t now = loop_now_ms(s->cfg.loop);
	struct dns_cache_fetch f;
	struct proto_msg req;
	struct watch *w = e->user;
	const char *tags[1];
	uint64_t mode = s->cfg.allow_stale ? 2 : 0;
	uint64_t max_stale = s->cfg.allow_stale ? s->cfg.max_stale_ms : 0;
	int rc;

	if (!w) {
		w = calloc(1, sizeof(*w));
		if (!w) {
			/* counted as a failure: retried after the back-off */
			dns_cache_fetch_start(s->cache, e, now, &f);
			dns_cache_fetch_failed(s->cache, e, now);
			return;
		}
		w->srv = s;
		e->user = w;
	}
	dns_cache_fetch_start(s->cache, e, now, &f);
	if (e->kind == DNS_CACHE_NODE) {
		req = proto_msg_make(PROTO_CATALOG_NODE);
		req.u.catalog_node.node = e->name;
		req.u.catalog_node.mode = mode;
		req.u.catalog_node.max_stale_ms = max_stale;
		req.u.catalog_node.min_index = f.min_index;
		req.u.catalog_node.wait_ms = f.wait_ms;
	} else {
		req = proto_msg_make(PROTO_CATALOG_QUERY);
		switch (e->kind) {
		case DNS_CACHE_SERVICE:
			req.u.catalog_query.view = 8; /* health service */
			req.u.catalog_query.passing = s->cfg.only_passing;
			if (e->tag[0]) {
				tags[0] = e->tag;
				req.u.catalog_query.tags.v = tags;
				req.u.catalog_query.tags.n = 1;
			}
			break;
		case DNS_CACHE_NODES:
			req.u.catalog_query.view = 1;
			break;
		case DNS_CACHE_SERVICES:
			req.u.catalog_query.view = 2;
			break;
		default:
			req.u.catalog_query.view = 3; /* catalog service: any health */
			break;
		}
		req.u.catalog_query.name = e->name;
		req.u.catalog_query.mode = mode;
		req.u.catalog_query.max_stale_ms = max_stale;
		req.u.catalog_query.min_index = f.min_index;
		req.u.catalog_query.wait_ms = f.wait_ms;
	}
	s->stats.fetches++;
	rc = rpc_call(s->rpc, &req, f.timeout_ms, on_fetch_reply, e, &w->call_id);
	if (rc < 0) {
		note_raftd(s, rc, "asking raftd", "",
			   "cached answers are served up to max_stale, then SERVFAIL,");
		dns_cache_fetch_failed(s->cache, e, now);
	}
}

static void fetch_due_cb(void *ctx, struct dns_cache_entry *e) { fetch_start(ctx, e); }

static int64_t cache_tick(struct loop *l, void *ctx)
{
	struct dns_server *s = ctx;
	uint64_t now = loop_now_ms(l);

	(void)dns_cache_expire(s->cache, now);
	dns_cache_foreach_due(s->cache, now, fetch_due_cb, s);
	return 250;
}

/* The view (kind, name, tag) for p: its value to answer from, or NULL
 * with *parked set (p now waits for the view's fetch; the server owns it)
 * or not (answer SERVFAIL). */
static struct cval *cache_use(struct dns_server *s, struct pending *p,
				    enum dns_cache_kind kind, const char *name, const char *tag,
				    bool *parked)
{
	uint64_t now = loop_now_ms(s->cfg.loop);
	struct dns_cache_entry *e = dns_cache_get(s->cache, kind, name, tag, now);
	enum dns_cache_state st;

	*parked = false;
	if (!e) {
		log_debug("dns: cache full of waited-on views, SERVFAIL");
		return NULL;
	}
	st = dns_cache_state(s->cache, e, now);
	if (st == DNS_CACHE_WAIT && dns_cache_fetch_due(e, now)) {
		fetch_start(s, e);
		st = dns_cache_state(s->cache, e, now);
	}
	switch (st) {
	case DNS_CACHE_FRESH:
		s->stats.cache_hits++;
		return e->val;
	case DNS_CACHE_STALE:
		s->stats.cache_stale++;
		return e->val;
	case DNS_CACHE_WAIT:
		if (!e->fetching || !p || s->n_pending >= s->cfg.max_pending)
			return NULL;
		s->stats.cache_waits++;
		p->in_pkt = NULL; /* answered after dns_server_handle returned */
		p->wait_e = e;
		e->waiters++;
		p->next = s->head;
		p->prev = NULL;
		if (s->head)
			s->head->prev = p;
		s->head = p;
		s->n_pending++;
		*parked = true;
		return NULL;
	case DNS_CACHE_FAIL:
	default:
		return NULL;
	}
}

static void resolve_node(struct dns_server *s, struct pending *p)
{
	bool parked;
	struct cval *v = cache_use(s, p, DNS_CACHE_NODE, p->q.name.target, NULL, &parked);
	struct dns_node_result res = {.status = -EAGAIN};

	if (parked)
		return;
	if (v && wire_reuse(s, v, p, 0)) {
		pending_free(p);
		return;
	}
	if (v && !v->found)
		res.status = CAIRN_E_NOTFOUND;
	else if (v) {
		res.status = 0;
		res.address = v->address;
		res.meta_keys = (const char *const *)v->keys;
		res.meta_vals = (const char *const *)v->vals;
		res.n_meta = v->n_meta;
	}
	respond_store(s, p, v, 0, &res, NULL);
	pending_free(p);
}

static void resolve_service(struct dns_server *s, struct pending *p)
{
	bool parked;
	struct cval *v =
	    cache_use(s, p, DNS_CACHE_SERVICE, p->q.name.target, p->q.name.tag, &parked);
	struct dns_service_result res = {
	    .status = -EAGAIN, .ttl_s = dns_service_ttl(&s->cfg.answer, p->q.name.target)};
	struct dns_instance stackv[16], *iv = stackv;
	unsigned rot = 0;
	bool small;

	if (parked)
		return;
	small = v && v->n_inst <= WIRE_MAX_INST;
	if (small && v->n_inst > 1)
		rot = (unsigned)((size_t)random() % v->n_inst);
	if (small && wire_reuse(s, v, p, rot)) {
		pending_free(p);
		return;
	}
	if (v && v->n_inst > 16 && !(iv = malloc(v->n_inst * sizeof(*iv))))
		v = NULL;
	if (v && small) {
		/* a random rotation of the value's shuffled order: each
		 * instance comes first as often as any other */
		res.status = 0;
		for (size_t i = 0; i < v->n_inst; i++)
			iv[i] = v->inst[(i + rot) % v->n_inst];
		res.v = iv;
		res.n = v->n_inst;
	} else if (v) {
		res.status = 0;
		memcpy(iv, v->inst, v->n_inst * sizeof(*iv));
		/* Fisher-Yates: a different order for each answer, as Consul */
		for (size_t i = v->n_inst; i > 1; i--) {
			size_t j = (size_t)random() % i;
			struct dns_instance t = iv[i - 1];

			iv[i - 1] = iv[j];
			iv[j] = t;
		}
		res.v = iv;
		res.n = v->n_inst;
	}
	respond_store(s, p, small ? v : NULL, rot, NULL, &res);
	if (iv != stackv)
		free(iv);
	pending_free(p);
}

static bool same_address(const char *a, const char *b);

/* PTR from the cache: nodes with the address; else (as Consul) services
 * with an instance at the address, from the services view and the
 * catalog service view of each name; else the recursors. */
static void resolve_ptr(struct dns_server *s, struct pending *p)
{
	struct dns_ptr_result res = {.status = -EAGAIN};
	const char **found = NULL;
	struct dns_cache_entry *names_e = NULL;
	const struct cval *v;
	bool parked;
	size_t n = 0;

	v = cache_use(s, p, DNS_CACHE_NODES, "", NULL, &parked);
	if (parked)
		return;
	if (!v)
		goto answer;
	for (size_t i = 0; i < v->n_names; i++)
		if (same_address(v->addrs[i], p->q.ptr_addr))
			n++;
	if (n) {
		found = calloc(n, sizeof(*found));
		if (!found)
			goto answer;
		n = 0;
		for (size_t i = 0; i < v->n_names; i++)
			if (same_address(v->addrs[i], p->q.ptr_addr))
				found[n++] = v->names[i];
		res.status = 0;
		res.nodes = found;
		res.n = n;
		goto answer;
	}
	/* no node has it: the services */
	v = cache_use(s, p, DNS_CACHE_SERVICES, "", NULL, &parked);
	if (parked)
		return;
	if (!v)
		goto answer;
	names_e = dns_cache_get(s->cache, DNS_CACHE_SERVICES, "", NULL, loop_now_ms(s->cfg.loop));
	names_e->waiters++; /* its names stay while the instances are read */
	found = v->n_names ? calloc(v->n_names, sizeof(*found)) : NULL;
	if (v->n_names && !found)
		goto answer;
	{
		struct pending *wait_p = p;
		bool waiting = false, failed = false;

		for (size_t i = 0; i < v->n_names; i++) {
			const struct cval *iv;

			if (i > 0 && strcmp(v->names[i], v->names[i - 1]) == 0)
				continue;
			/* the first view to wait for parks p; the others
			 * only start their fetches */
			iv = cache_use(s, wait_p, DNS_CACHE_INSTANCES, v->names[i], NULL, &parked);
			if (parked) {
				waiting = true;
				wait_p = NULL;
				continue;
			}
			if (!iv) {
				struct dns_cache_entry *ie = dns_cache_get(
				    s->cache, DNS_CACHE_INSTANCES, v->names[i], NULL,
				    loop_now_ms(s->cfg.loop));

				if (ie && ie->fetching)
					waiting = true; /* started, p waits elsewhere */
				else
					failed = true;
				continue;
			}
			for (size_t k = 0; k < iv->n_names; k++)
				if (iv->addrs[k] && same_address(iv->addrs[k], p->q.ptr_addr)) {
					found[n++] = v->names[i];
					break;
				}
		}
		if (waiting && !wait_p) {
			names_e->waiters--;
			free(found);
			return; /* p parked: resolved again when that view is in */
		}
		if (waiting || failed)
			goto answer; /* SERVFAIL */
	}
	res.status = 0;
	res.services = found;
	res.n_services = n;
answer:
	if (res.status == 0 && res.n == 0 && res.n_services == 0 && s->cfg.answer.recurse &&
	    s->cfg.n_recursors) {
		/* nobody has the address: the recursors may know it */
		if (p->raw) {
			if (names_e)
				names_e->waiters--;
			free(found);
			forward(s, p, p->raw, p->raw_len);
			return;
		}
		res.status = 0; /* REFUSED */
		goto respond;
	}
respond:
	respond_ptr(s, p, &res);
	if (names_e)
		names_e->waiters--;
	free(found);
	pending_free(p);
}

/* Resolves p (not linked) from the cache by its action. */
static void resolve(struct dns_server *s, struct pending *p)
{
	switch (p->act) {
	case DNS_ACT_NODE:
		resolve_node(s, p);
		break;
	case DNS_ACT_SERVICE:
		resolve_service(s, p);
		break;
	case DNS_ACT_PTR:
		resolve_ptr(s, p);
		break;
	default:
		pending_free(p);
		break;
	}
}

/* A datacenter other than the local one: NXDOMAIN until Cairn speaks to
 * other datacenters (raftd would answer "No path to datacenter"). */
static bool other_dc(const struct dns_server *s, const struct dns_query *q)
{
	const char *local = s->cfg.answer.datacenter;

	return q->name.dc[0] && local && strcasecmp(q->name.dc, local) != 0;
}

void dns_server_handle(struct dns_server *s, const uint8_t *pkt, size_t len, bool udp, void *owner,
		       const struct dns_peer *peer, dns_send_fn send)
{
	struct pending *p = calloc(1, sizeof(*p));
	enum dns_action act;

	s->stats.queries++;
	if (!p) {
		log_warn("dns: out of memory, dropping a query");
		return;
	}
	p->srv = s;
	p->fwd_fd = -1;
	p->udp = udp;
	p->owner = owner;
	p->send = send;
	if (peer)
		p->peer = *peer;
	p->in_pkt = pkt; /* borrowed: resolve_*() may reuse a stored reply */
	p->in_len = len;
	act = dns_query_parse(&p->q, pkt, len, &s->cfg.answer);
	switch (act) {
	case DNS_ACT_NODE:
		if (other_dc(s, &p->q)) {
			struct dns_node_result none = {.status = CAIRN_E_NOTFOUND};

			respond(s, &p->q, &none, NULL, udp, owner, &p->peer, send);
			break;
		}
		p->act = act;
		if (s->cache)
			resolve_node(s, p); /* takes p */
		else
			lookup_node(s, p); /* takes p */
		return;
	case DNS_ACT_SERVICE:
		if (other_dc(s, &p->q)) {
			struct dns_service_result none = {.status = CAIRN_E_NOTFOUND};

			respond(s, &p->q, NULL, &none, udp, owner, &p->peer, send);
			break;
		}
		p->act = act;
		if (s->cache)
			resolve_service(s, p); /* takes p */
		else
			lookup_service(s, p); /* takes p */
		return;
	case DNS_ACT_PTR:
		/* kept for forwarding when no node has the address */
		if (s->cfg.answer.recurse && s->cfg.n_recursors && (p->raw = malloc(len))) {
			memcpy(p->raw, pkt, len);
			p->raw_len = len;
		}
		p->act = act;
		if (s->cache)
			resolve_ptr(s, p); /* takes p */
		else
			lookup_ptr(s, p); /* takes p */
		return;
	case DNS_ACT_RECURSE:
		forward(s, p, pkt, len); /* takes p */
		return;
	case DNS_ACT_REPLY:
		respond(s, &p->q, NULL, NULL, udp, owner, &p->peer, send);
		break;
	case DNS_ACT_DROP:
	default:
		log_debug("dns: dropping a %zu-byte packet", len);
		break;
	}
	pending_free(p);
}

void dns_server_forget(struct dns_server *s, void *owner)
{
	/* O(pending): connections close rarely and few queries wait */
	struct pending *p = s->head;

	while (p) {
		struct pending *next = p->next;

		if (p->owner == owner) {
			rpc_cancel(s->rpc, p->call_id);
			pending_unlink(p);
			pending_free(p);
		}
		p = next;
	}
}

size_t dns_server_pending(const struct dns_server *s, const void *owner)
{
	size_t n = 0;

	if (!owner)
		return s->n_pending;
	for (const struct pending *p = s->head; p; p = p->next)
		n += p->owner == owner;
	return n;
}

void dns_server_stats(const struct dns_server *s, struct dns_server_stats *out)
{
	*out = s->stats;
	out->cache_entries = s->cache ? dns_cache_count(s->cache) : 0;
}
