/* ZeroMQ request/reply with proto/ messages: DEALER clients, ROUTER servers.
 *
 * Client calls are kept in a hash by request id, each with a loop timer for
 * its time-out. A socket monitor reports when the connection to the server
 * drops; every pending call then fails at once with CAIRN_E_UNAVAILABLE
 * rather than waiting out its time-out (a blocking query may wait ten
 * minutes). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "err.h"
#include "log.h"
#include "loop.h"
#include "rpc.h"

/* Messages handled per readable event before returning to the loop. */
#define RPC_BATCH 512
/* Queue depth per socket: deep enough for 10,000 parked watchers waking at
 * once, bounded so a stuck peer cannot eat all memory. */
#define RPC_HWM 200000

static void set_sockopts(void *sock)
{
	int one = 1, zero = 0, hwm = RPC_HWM;

	(void)zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
	(void)zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	(void)zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	/* Accept IPv6 endpoints too; IPv4 ones work the same. */
	(void)zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one));
}

/* ---- client -------------------------------------------------------------- */

struct pending {
	struct pending *next; /* hash chain */
	struct rpc_client *client;
	uint64_t id;
	uint64_t timer_id;
	rpc_reply_fn fn;
	void *ctx;
};

struct rpc_client {
	struct loop *loop;
	void *sock;
	void *mon; /* PAIR socket reading sock's monitor events */
	char *endpoint;
	uint64_t next_id;
	struct pending **buckets;
	size_t n_buckets; /* power of two */
	size_t n_pending;
	struct arena arena; /* decoded replies; reset after each callback */
};

static struct pending **bucket_of(struct rpc_client *c, uint64_t id)
{
	return &c->buckets[(id * 0x9e3779b97f4a7c15ull >> 20) & (c->n_buckets - 1)];
}

static int pending_grow(struct rpc_client *c)
{
	size_t n = c->n_buckets * 2;
	struct pending **b = calloc(n, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_buckets; i++) {
		struct pending *p = c->buckets[i], *next;

		for (; p; p = next) {
			struct pending **slot = &b[(p->id * 0x9e3779b97f4a7c15ull >> 20) & (n - 1)];

			next = p->next;
			p->next = *slot;
			*slot = p;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->n_buckets = n;
	return 0;
}

/* Unlinks and returns the pending call with this id, or NULL. */
static struct pending *pending_take(struct rpc_client *c, uint64_t id)
{
	struct pending **pp = bucket_of(c, id);

	for (; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;

		if (p->id == id) {
			*pp = p->next;
			c->n_pending--;
			return p;
		}
	}
	return NULL;
}

static void client_deliver(struct rpc_client *c, struct pending *p, int status,
			   const struct proto_msg *reply)
{
	rpc_reply_fn fn = p->fn;
	void *ctx = p->ctx;

	if (p->timer_id)
		loop_timer_del(c->loop, p->timer_id);
	free(p);
	fn(ctx, status, reply);
}

static int64_t on_call_timeout(struct loop *l, void *ctx)
{
	struct pending *p = ctx;
	struct rpc_client *c = p->client;

	(void)l;
	p = pending_take(c, p->id);
	if (p) {
		p->timer_id = 0; /* this timer is finishing by itself */
		client_deliver(c, p, -ETIMEDOUT, NULL);
	}
	return LOOP_TIMER_STOP;
}

/* Fails every pending call: the connection to the server went away. */
static void client_fail_all(struct rpc_client *c, int status)
{
	for (size_t i = 0; i < c->n_buckets; i++) {
		while (c->buckets[i]) {
			struct pending *p = c->buckets[i];

			c->buckets[i] = p->next;
			c->n_pending--;
			client_deliver(c, p, status, NULL);
		}
	}
}

static void on_client_readable(struct loop *l, void *ctx, unsigned events)
{
	struct rpc_client *c = ctx;

	(void)l;
	(void)events;
	for (int i = 0; i < RPC_BATCH; i++) {
		zmq_msg_t msg;
		struct proto_msg m;
		struct pending *p;
		char err[128];
		int more, rc;

		zmq_msg_init(&msg);
		if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&msg);
			break;
		}
		more = zmq_msg_more(&msg);
		rc = proto_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &c->arena, &m, err,
				  sizeof(err));
		zmq_msg_close(&msg);
		while (more) { /* a reply is one frame: drop extras */
			zmq_msg_init(&msg);
			if (zmq_msg_recv(&msg, c->sock, ZMQ_DONTWAIT) < 0)
				more = 0;
			else
				more = zmq_msg_more(&msg);
			zmq_msg_close(&msg);
			rc = rc ? rc : CAIRN_E_PROTO;
		}
		p = m.id ? pending_take(c, m.id) : NULL;
		if (!p) {
			log_debug("rpc %s: dropping reply for unknown call %llu", c->endpoint,
				  (unsigned long long)m.id);
		} else if (rc < 0) {
			log_warn("rpc %s: undecodable reply: %s", c->endpoint, err);
			client_deliver(c, p, rc, NULL);
		} else {
			client_deliver(c, p, 0, &m);
		}
		arena_reset(&c->arena);
	}
}

static void on_monitor(struct loop *l, void *ctx, unsigned events)
{
	struct rpc_client *c = ctx;

	(void)l;
	(void)events;
	for (int i = 0; i < 64; i++) {
		zmq_msg_t ev, addr;
		uint16_t event = 0;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, c->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		if (zmq_msg_size(&ev) >= 2)
			memcpy(&event, zmq_msg_data(&ev), sizeof(event));
		if (zmq_msg_more(&ev)) {
			zmq_msg_init(&addr);
			(void)zmq_msg_recv(&addr, c->mon, ZMQ_DONTWAIT);
			zmq_msg_close(&addr);
		}
		zmq_msg_close(&ev);
		if (event == ZMQ_EVENT_DISCONNECTED && c->n_pending) {
			log_debug("rpc %s: disconnected; failing %zu calls", c->endpoint,
				  c->n_pending);
			client_fail_all(c, CAIRN_E_UNAVAILABLE);
		}
	}
}

struct rpc_client *rpc_client_new(struct loop *l, void *zctx, const char *endpoint)
{
	struct rpc_client *c = calloc(1, sizeof(*c));
	char mon_ep[64];
	int one = 1;

	if (!c)
		return NULL;
	c->loop = l;
	c->next_id = 1;
	c->n_buckets = 64;
	c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
	c->endpoint = strdup(endpoint);
	arena_init(&c->arena, 16384);
	c->sock = zmq_socket(zctx, ZMQ_DEALER);
	if (!c->buckets || !c->endpoint || !c->sock)
		goto fail;
	set_sockopts(c->sock);
	(void)zmq_setsockopt(c->sock, ZMQ_IMMEDIATE, &one, sizeof(one));
	snprintf(mon_ep, sizeof(mon_ep), "inproc://rpc-mon-%p", (void *)c);
	if (zmq_socket_monitor(c->sock, mon_ep, ZMQ_EVENT_DISCONNECTED) == 0) {
		c->mon = zmq_socket(zctx, ZMQ_PAIR);
		if (c->mon && zmq_connect(c->mon, mon_ep) < 0) {
			zmq_close(c->mon);
			c->mon = NULL;
		}
	}
	if (zmq_connect(c->sock, endpoint) < 0) {
		log_error("rpc: cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
		goto fail;
	}
	if (loop_watch_zsock(l, c->sock, LOOP_READ, on_client_readable, c) < 0)
		goto fail;
	if (c->mon && loop_watch_zsock(l, c->mon, LOOP_READ, on_monitor, c) < 0)
		goto fail;
	return c;
fail:
	rpc_client_free(c);
	return NULL;
}

void rpc_client_free(struct rpc_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; c->buckets && i < c->n_buckets; i++) {
		while (c->buckets[i]) {
			struct pending *p = c->buckets[i];

			c->buckets[i] = p->next;
			if (p->timer_id)
				loop_timer_del(c->loop, p->timer_id);
			free(p);
		}
	}
	if (c->sock) {
		loop_unwatch_zsock(c->loop, c->sock);
		(void)zmq_socket_monitor(c->sock, NULL, 0);
		zmq_close(c->sock);
	}
	if (c->mon) {
		loop_unwatch_zsock(c->loop, c->mon);
		zmq_close(c->mon);
	}
	arena_close(&c->arena);
	free(c->buckets);
	free(c->endpoint);
	free(c);
}

int rpc_call(struct rpc_client *c, struct proto_msg *req, uint64_t timeout_ms, rpc_reply_fn fn,
	     void *ctx, uint64_t *out_id)
{
	struct pending *p;
	struct pending **slot;
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	if (c->n_pending >= c->n_buckets && pending_grow(c) < 0)
		return -ENOMEM;
	req->id = c->next_id++;
	req->version = PROTO_VERSION;
	rc = proto_encode(req, &buf, &len);
	if (rc < 0)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p) {
		free(buf);
		return -ENOMEM;
	}
	p->client = c;
	p->id = req->id;
	p->fn = fn;
	p->ctx = ctx;
	if (zmq_send(c->sock, buf, len, ZMQ_DONTWAIT) < 0) {
		int e = zmq_errno();

		free(buf);
		free(p);
		return e == EAGAIN ? CAIRN_E_UNAVAILABLE : -e;
	}
	free(buf);
	p->timer_id = loop_timer_add(c->loop, timeout_ms, on_call_timeout, p);
	slot = bucket_of(c, p->id);
	p->next = *slot;
	*slot = p;
	c->n_pending++;
	if (out_id)
		*out_id = p->id;
	return 0;
}

void rpc_cancel(struct rpc_client *c, uint64_t id)
{
	struct pending *p = pending_take(c, id);

	if (!p)
		return;
	if (p->timer_id)
		loop_timer_del(c->loop, p->timer_id);
	free(p);
}

size_t rpc_client_pending(const struct rpc_client *c)
{
	return c->n_pending;
}

/* ---- server -------------------------------------------------------------- */

struct rpc_server {
	struct loop *loop;
	void *sock;
	rpc_handler_fn fn;
	void *ctx;
};

static int send_reply(struct rpc_req *req, struct proto_msg *reply)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	reply->id = req->msg.id;
	reply->version = PROTO_VERSION;
	rc = proto_encode(reply, &buf, &len);
	if (rc < 0)
		return rc;
	if (zmq_send(req->srv->sock, req->ident, req->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(req->srv->sock, buf, len, ZMQ_DONTWAIT) < 0)
		rc = -zmq_errno();
	free(buf);
	return rc;
}

void rpc_req_free(struct rpc_req *req)
{
	if (!req)
		return;
	arena_close(&req->arena);
	free(req);
}

int rpc_reply(struct rpc_req *req, struct proto_msg *reply)
{
	int rc = send_reply(req, reply);

	if (rc < 0)
		log_debug("rpc: reply to %s failed: %s", proto_type_name(req->msg.type),
			  err_str(rc));
	req->replied = 1;
	if (!req->in_handler)
		rpc_req_free(req);
	return rc;
}

int rpc_reply_error(struct rpc_req *req, int code, const char *fmt, ...)
{
	struct proto_msg m = proto_msg_make(PROTO_ERROR);
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	m.u.error.code = code;
	m.u.error.message = text;
	return rpc_reply(req, &m);
}

static void on_server_readable(struct loop *l, void *ctx, unsigned events)
{
	struct rpc_server *s = ctx;

	(void)l;
	(void)events;
	for (int i = 0; i < RPC_BATCH; i++) {
		zmq_msg_t ident, body;
		struct rpc_req *req;
		const struct proto_msg_desc *d;
		enum rpc_disposition disp;
		char err[160];
		int rc, extra = 0;

		zmq_msg_init(&ident);
		if (zmq_msg_recv(&ident, s->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ident);
			return;
		}
		zmq_msg_init(&body);
		if (!zmq_msg_more(&ident) || zmq_msg_recv(&body, s->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ident);
			zmq_msg_close(&body);
			continue;
		}
		while (zmq_msg_more(&body)) { /* one body frame expected: drop the rest */
			zmq_msg_close(&body);
			zmq_msg_init(&body);
			if (zmq_msg_recv(&body, s->sock, ZMQ_DONTWAIT) < 0)
				break;
			extra = 1;
		}
		req = calloc(1, sizeof(*req));
		if (!req || zmq_msg_size(&ident) > sizeof(req->ident)) {
			free(req);
			zmq_msg_close(&ident);
			zmq_msg_close(&body);
			continue;
		}
		req->srv = s;
		req->ident_len = zmq_msg_size(&ident);
		memcpy(req->ident, zmq_msg_data(&ident), req->ident_len);
		zmq_msg_close(&ident);
		/* Small first chunk: parked blocking queries keep theirs for
		 * minutes, and 10,000 of them must stay cheap. */
		arena_init(&req->arena, 512);
		rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &req->arena, &req->msg,
				  err, sizeof(err));
		zmq_msg_close(&body);
		if (rc == 0 && extra) {
			rc = CAIRN_E_PROTO;
			snprintf(err, sizeof(err), "a request must be a single frame");
		}
		d = rc == 0 ? proto_msg_desc(req->msg.type) : NULL;
		if (rc == 0 && d->kind != PROTO_KIND_REQ) {
			rc = CAIRN_E_PROTO;
			snprintf(err, sizeof(err), "%s is not a request", d->upper);
		}
		if (rc < 0) {
			log_debug("rpc: rejecting message: %s", err);
			rpc_reply_error(req, rc, "%s", err);
			continue;
		}
		req->in_handler = 1;
		disp = s->fn(s->ctx, req);
		req->in_handler = 0;
		if (disp == RPC_DONE || req->replied)
			rpc_req_free(req);
	}
}

struct rpc_server *rpc_server_new(struct loop *l, void *zctx, const char *const *endpoints,
				  rpc_handler_fn fn, void *ctx, char *err, size_t errlen)
{
	struct rpc_server *s = calloc(1, sizeof(*s));
	int one = 1;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->loop = l;
	s->fn = fn;
	s->ctx = ctx;
	s->sock = zmq_socket(zctx, ZMQ_ROUTER);
	if (!s->sock) {
		snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	set_sockopts(s->sock);
	(void)zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
	for (size_t i = 0; endpoints[i]; i++) {
		if (zmq_bind(s->sock, endpoints[i]) < 0) {
			snprintf(err, errlen, "cannot bind %s: %s", endpoints[i],
				 zmq_strerror(zmq_errno()));
			goto fail;
		}
	}
	if (loop_watch_zsock(l, s->sock, LOOP_READ, on_server_readable, s) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	return s;
fail:
	rpc_server_free(s);
	return NULL;
}

void rpc_server_free(struct rpc_server *s)
{
	if (!s)
		return;
	if (s->sock) {
		loop_unwatch_zsock(s->loop, s->sock);
		zmq_close(s->sock);
	}
	free(s);
}

int rpc_publish(void *pub, const struct proto_msg *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = proto_encode(m, &buf, &len);

	if (rc < 0)
		return rc;
	if (zmq_send(pub, buf, len, ZMQ_DONTWAIT) < 0)
		rc = -zmq_errno();
	free(buf);
	return rc;
}
