/* Query dispatch between the transports, the answer builder and raftd;
 * see dns_server.h. */
#include "dns_server.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "clock.h"
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
};

struct dns_server {
	struct rpc_client *rpc;
	struct dns_server_cfg cfg;
	struct pending *head; /* every pending query, newest first */
	size_t n_pending;
	bool raftd_down; /* last call found raftd unreachable: log changes only */
};

struct dns_server *dns_server_new(struct rpc_client *rpc, const struct dns_server_cfg *cfg)
{
	struct dns_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->rpc = rpc;
	s->cfg = *cfg;
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
	fwd_stop(p);
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

static void on_node_reply(void *ctx, int status, const struct proto_msg *reply)
{
	struct pending *p = ctx;
	struct dns_server *s = p->srv;
	struct dns_node_result res = {.status = status, .address = NULL};

	if (status == 0 && s->raftd_down) {
		log_info("dns: raftd answers again");
		s->raftd_down = false;
	}

	if (status == 0 && reply->type == PROTO_ERROR) {
		res.status = (int)reply->u.error.code;
		if (res.status >= 0)
			res.status = CAIRN_E_PROTO;
		if (res.status != CAIRN_E_NOTFOUND)
			log_warn("dns: node lookup for %s failed: %s", p->q.name.target,
				 reply->u.error.message ? reply->u.error.message : "?");
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
	} else {
		if (!s->raftd_down)
			log_warn("dns: node lookup for %s failed (%s): answering SERVFAIL until "
				 "raftd answers again",
				 p->q.name.target, err_str(status));
		s->raftd_down = true;
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

	if (rc < 0) {
		if (!s->raftd_down)
			log_warn("dns: cannot ask raftd (%s): answering SERVFAIL until it is back",
				 err_str(rc));
		s->raftd_down = true;
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

	if (status == 0 && s->raftd_down) {
		log_info("dns: raftd answers again");
		s->raftd_down = false;
	}
	if (status == 0 && reply->type == PROTO_ERROR) {
		res.status = (int)reply->u.error.code;
		if (res.status >= 0)
			res.status = CAIRN_E_PROTO;
		if (res.status != CAIRN_E_NOTFOUND)
			log_warn("dns: service lookup for %s failed: %s", p->q.name.target,
				 reply->u.error.message ? reply->u.error.message : "?");
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
	} else {
		if (!s->raftd_down)
			log_warn("dns: service lookup for %s failed (%s): answering SERVFAIL until "
				 "raftd answers again",
				 p->q.name.target, err_str(status));
		s->raftd_down = true;
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
	pending_unlink(p);
	fwd_relay(s, p, buf, (size_t)n);
	pending_free(p);
}

static int64_t on_fwd_timeout(struct loop *l, void *ctx)
{
	struct pending *p = ctx;

	(void)l;
	p->fwd_timer = 0;
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
	act = dns_query_parse(&p->q, pkt, len, &s->cfg.answer);
	switch (act) {
	case DNS_ACT_NODE:
		if (other_dc(s, &p->q)) {
			struct dns_node_result none = {.status = CAIRN_E_NOTFOUND};

			respond(s, &p->q, &none, NULL, udp, owner, &p->peer, send);
			break;
		}
		lookup_node(s, p); /* takes p */
		return;
	case DNS_ACT_SERVICE:
		if (other_dc(s, &p->q)) {
			struct dns_service_result none = {.status = CAIRN_E_NOTFOUND};

			respond(s, &p->q, NULL, &none, udp, owner, &p->peer, send);
			break;
		}
		lookup_service(s, p); /* takes p */
		return;
	case DNS_ACT_PTR:
		/* kept for forwarding when no node has the address */
		if (s->cfg.answer.recurse && s->cfg.n_recursors && (p->raw = malloc(len))) {
			memcpy(p->raw, pkt, len);
			p->raw_len = len;
		}
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
