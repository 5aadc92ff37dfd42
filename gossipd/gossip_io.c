/* One gossip pool on the network; see gossip_io.h. */
#include "gossip_io.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "keyring.h"
#include "log.h"
#include "loop.h"

#define MAX_CONNS 256
#define CONN_TIMEOUT_MS 10000
#define UDP_BUF 65536

struct conn {
	int fd;
	bool out;	 /* we connect and write; else we accept and read */
	uint8_t *buf;	 /* frame being written or read */
	size_t len, off; /* frame size (0: length not read yet), bytes done */
	size_t cap;	 /* reading: bytes allocated in buf */
	uint8_t hdr[4];
	size_t hdr_off;
	struct swim_addr peer;
	uint64_t deadline_ms;
	struct gossip_net *n;
};

struct gossip_net {
	struct loop *l;
	struct swim *swim;
	struct keyring *keyring;
	struct members *table;
	gossip_event_fn on_event;
	void (*on_user_event)(void *ctx, const struct swim_user_event *ev);
	void (*on_query)(void *ctx, const char *op, const uint8_t *arg, size_t arg_len,
			 uint8_t *out, size_t *out_len);
	void (*on_query_response)(void *ctx, const char *id, const char *node,
				  const uint8_t *payload, size_t len);
	void *ctx;
	size_t (*ack_payload)(void *coord_ctx, uint8_t *buf, size_t cap);
	void (*ping_complete)(void *coord_ctx, const char *name, uint64_t rtt_us,
			      const uint8_t *payload, size_t len);
	void *coord_ctx;
	int udp_fd, tcp_fd;
	int family;
	uint16_t port;
	uint64_t timer_id, timer_at;
	uint64_t sweep_id;
	struct conn *conns[MAX_CONNS];
	char *state_path;
	bool dirty, left;
	uint32_t saved_inc;
	uint64_t rng;
};

/* ---- addresses ----------------------------------------------------------- */

static void to_sockaddr(const struct gossip_net *n, const struct swim_addr *a,
			struct sockaddr_storage *ss, socklen_t *len)
{
	static const uint8_t v4pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(ss, 0, sizeof(*ss));
	if (n->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(a->port);
		memcpy(&s4->sin_addr, &a->ip[12], 4);
		*len = sizeof(*s4);
		(void)v4pfx;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(a->port);
		memcpy(&s6->sin6_addr, a->ip, 16);
		*len = sizeof(*s6);
	}
}

static void from_sockaddr(const struct sockaddr_storage *ss, struct swim_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

		a->ip[10] = a->ip[11] = 0xff;
		memcpy(&a->ip[12], &s4->sin_addr, 4);
		a->port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;

		memcpy(a->ip, &s6->sin6_addr, 16);
		a->port = ntohs(s6->sin6_port);
	}
}

/* ---- timers ----------------------------------------------------------------- */

static int64_t on_timer(struct loop *l, void *ctx);

/* Makes sure swim_tick runs by swim_wake_ms(). */
static void arm(struct gossip_net *n)
{
	uint64_t wake = swim_wake_ms(n->swim), now = clock_now_ms();

	if (n->timer_id && wake >= n->timer_at)
		return;
	if (n->timer_id)
		loop_timer_del(n->l, n->timer_id);
	n->timer_at = wake;
	n->timer_id = loop_timer_add(n->l, wake > now ? wake - now : 0, on_timer, n);
}

static int64_t on_timer(struct loop *l, void *ctx)
{
	struct gossip_net *n = ctx;
	uint64_t wake = swim_tick(n->swim), now = clock_now_ms();

	(void)l;
	n->timer_at = wake;
	return wake > now ? (int64_t)(wake - now) : 0;
}

void gossip_net_kick(struct gossip_net *n)
{
	if (n->timer_id)
		loop_timer_del(n->l, n->timer_id);
	n->timer_id = 0;
	n->timer_at = 0;
	n->timer_id = loop_timer_add(n->l, 0, on_timer, n);
	n->timer_at = clock_now_ms();
}

/* ---- swim_io ------------------------------------------------------------- */

static void io_send_packet(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	struct gossip_net *n = ctx;
	uint8_t sealed[UDP_BUF + KEYRING_OVERHEAD];
	size_t slen;
	struct sockaddr_storage ss;
	socklen_t sl;

	if (len > UDP_BUF || keyring_seal(n->keyring, buf, len, sealed, &slen) < 0)
		return;
	to_sockaddr(n, to, &ss, &sl);
	if (sendto(n->udp_fd, sealed, slen, 0, (struct sockaddr *)&ss, sl) < 0)
		log_debug("gossip: sendto: %s", strerror(errno)); /* UDP: loss is normal */
}

static void conn_free(struct gossip_net *n, struct conn *c)
{
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (n->conns[i] == c)
			n->conns[i] = NULL;
	loop_unwatch_fd(n->l, c->fd);
	close(c->fd);
	free(c->buf);
	free(c);
}

static void conn_io(struct loop *l, void *ctx, unsigned events);

static struct conn *conn_add(struct gossip_net *n, int fd, bool out)
{
	struct conn *c;
	size_t slot = MAX_CONNS;

	for (size_t i = 0; i < MAX_CONNS; i++)
		if (!n->conns[i]) {
			slot = i;
			break;
		}
	if (slot == MAX_CONNS)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->fd = fd;
	c->out = out;
	c->n = n;
	c->deadline_ms = clock_now_ms() + CONN_TIMEOUT_MS;
	if (loop_watch_fd(n->l, fd, out ? LOOP_WRITE : LOOP_READ, conn_io, c) < 0) {
		free(c);
		return NULL;
	}
	n->conns[slot] = c;
	return c;
}

static void io_send_stream(void *ctx, const struct swim_addr *to, const uint8_t *buf, size_t len)
{
	struct gossip_net *n = ctx;
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t *frame = NULL;
	size_t slen;
	int fd = -1;
	struct conn *c;

	if (len > GOSSIP_IO_MAX_STREAM)
		return;
	frame = malloc(4 + len + KEYRING_OVERHEAD);
	if (!frame || keyring_seal(n->keyring, buf, len, frame + 4, &slen) < 0)
		goto fail;
	frame[0] = (uint8_t)(slen >> 24);
	frame[1] = (uint8_t)(slen >> 16);
	frame[2] = (uint8_t)(slen >> 8);
	frame[3] = (uint8_t)slen;
	to_sockaddr(n, to, &ss, &sl);
	fd = socket(n->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS)
		goto fail;
	c = conn_add(n, fd, true);
	if (!c)
		goto fail;
	c->buf = frame;
	c->len = 4 + slen;
	c->peer = *to;
	return;
fail:
	/* a stream that cannot start is like a lost one: SWIM copes */
	log_debug("gossip: stream: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
	free(frame);
}

static uint64_t io_now(void *ctx)
{
	(void)ctx;
	return clock_now_ms();
}

static uint32_t io_rand(void *ctx)
{
	struct gossip_net *n = ctx;

	n->rng ^= n->rng >> 12;
	n->rng ^= n->rng << 25;
	n->rng ^= n->rng >> 27;
	return (uint32_t)((n->rng * 2685821657736338717ull) >> 32);
}

static void io_member_event(void *ctx, enum member_event ev, const struct member *m, uint64_t seq)
{
	struct gossip_net *n = ctx;

	n->dirty = true;
	if (n->on_event)
		n->on_event(n->ctx, n, ev, m, seq);
}

static void io_user_event(void *ctx, const struct swim_user_event *ev)
{
	struct gossip_net *n = ctx;

	if (n->on_user_event)
		n->on_user_event(n->ctx, ev);
}

static void io_query(void *ctx, const char *op, const uint8_t *arg, size_t arg_len, uint8_t *out,
		     size_t *out_len)
{
	struct gossip_net *n = ctx;

	if (n->on_query)
		n->on_query(n->ctx, op, arg, arg_len, out, out_len);
	else
		*out_len = 0;
}

static void io_query_response(void *ctx, const char *id, const char *node, const uint8_t *payload,
			      size_t len)
{
	struct gossip_net *n = ctx;

	if (n->on_query_response)
		n->on_query_response(n->ctx, id, node, payload, len);
}

static uint64_t io_now_us(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t io_ack_payload(void *ctx, uint8_t *buf, size_t cap)
{
	struct gossip_net *n = ctx;

	return n->ack_payload ? n->ack_payload(n->coord_ctx, buf, cap) : 0;
}

static void io_ping_complete(void *ctx, const char *name, uint64_t rtt_us, const uint8_t *payload,
			     size_t len)
{
	struct gossip_net *n = ctx;

	if (n->ping_complete)
		n->ping_complete(n->coord_ctx, name, rtt_us, payload, len);
}

/* ---- receiving ----------------------------------------------------------- */

static void udp_readable(struct loop *l, void *ctx, unsigned events)
{
	struct gossip_net *n = ctx;
	uint8_t buf[UDP_BUF], plain[UDP_BUF];

	(void)l;
	(void)events;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t r = recvfrom(n->udp_fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &sl);
		struct swim_addr from;
		size_t plen;

		if (r < 0)
			break;
		if (keyring_open(n->keyring, buf, (size_t)r, plain, &plen) < 0) {
			log_debug("gossip: dropped a datagram no key opens");
			continue;
		}
		from_sockaddr(&ss, &from);
		if (swim_recv_packet(n->swim, &from, plain, plen) < 0)
			log_debug("gossip: malformed datagram dropped");
	}
	arm(n);
}

static void stream_done(struct gossip_net *n, struct conn *c)
{
	uint8_t *plain = malloc(c->len ? c->len : 1);
	size_t plen;

	if (plain && keyring_open(n->keyring, c->buf, c->len, plain, &plen) == 0) {
		if (swim_recv_stream(n->swim, &c->peer, plain, plen) < 0)
			log_debug("gossip: malformed stream message dropped");
	} else if (plain) {
		log_debug("gossip: dropped a stream message no key opens");
	}
	free(plain);
	conn_free(n, c);
	arm(n);
}

static void conn_io(struct loop *l, void *ctx, unsigned events)
{
	struct conn *c = ctx;
	struct gossip_net *n = c->n;
	ssize_t r;

	(void)l;
	(void)events;
	if (c->out) {
		r = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (r < 0) {
			if (errno != EAGAIN && errno != EINPROGRESS)
				conn_free(n, c); /* refused or reset: the peer is down */
			return;
		}
		c->off += (size_t)r;
		if (c->off == c->len)
			conn_free(n, c);
		return;
	}
	if (c->hdr_off < 4) {
		r = recv(c->fd, c->hdr + c->hdr_off, 4 - c->hdr_off, 0);
		if (r <= 0) {
			if (r == 0 || (errno != EAGAIN && errno != EINTR))
				conn_free(n, c);
			return;
		}
		c->hdr_off += (size_t)r;
		if (c->hdr_off < 4)
			return;
		c->len = ((size_t)c->hdr[0] << 24) | ((size_t)c->hdr[1] << 16) |
			 ((size_t)c->hdr[2] << 8) | c->hdr[3];
		if (c->len == 0 || c->len > GOSSIP_IO_MAX_STREAM + KEYRING_OVERHEAD) {
			conn_free(n, c);
			return;
		}
	}
	/* grow the buffer with what actually arrives: a peer that only sends
	 * a large length (it cannot be authenticated before the end) costs us
	 * no more than it sent */
	if (c->off == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16384;
		uint8_t *b;

		if (cap > c->len)
			cap = c->len;
		b = realloc(c->buf, cap);
		if (!b) {
			conn_free(n, c);
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	r = recv(c->fd, c->buf + c->off, c->cap - c->off, 0);
	if (r <= 0) {
		if (r == 0 || (errno != EAGAIN && errno != EINTR))
			conn_free(n, c);
		return;
	}
	c->off += (size_t)r;
	if (c->off == c->len)
		stream_done(n, c);
}

static void tcp_acceptable(struct loop *l, void *ctx, unsigned events)
{
	struct gossip_net *n = ctx;

	(void)l;
	(void)events;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd =
		    accept4(n->tcp_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			break;
		c = conn_add(n, fd, false);
		if (!c) {
			close(fd);
			continue;
		}
		from_sockaddr(&ss, &c->peer);
	}
}

/* ---- persisted state ----------------------------------------------------- */

static void state_save(struct gossip_net *n)
{
	json_t *doc = json_object(), *arr = json_array();
	char tmp[4200];
	bool ok = false;

	if (!n->state_path || !doc || !arr)
		goto out;
	for (size_t i = 0; i < n->table->n; i++) {
		const struct member *m = &n->table->v[i];
		char a[128];

		if (m->status != MEMBER_ALIVE)
			continue;
		snprintf(a, sizeof(a), strchr(m->addr, ':') ? "[%s]:%u" : "%s:%u", m->addr,
			 (unsigned)m->port);
		(void)json_array_append_new(arr, json_string(a));
	}
	n->saved_inc = swim_incarnation(n->swim);
	(void)json_object_set_new(doc, "incarnation", json_integer(n->saved_inc));
	(void)json_object_set_new(doc, "left", json_boolean(n->left));
	(void)json_object_set(doc, "members", arr);
	snprintf(tmp, sizeof(tmp), "%s.tmp", n->state_path);
	if (json_dump_file(doc, tmp, JSON_COMPACT) == 0 && rename(tmp, n->state_path) == 0)
		ok = true;
	if (!ok)
		log_warn("gossip: saving %s: %s", n->state_path, strerror(errno));
	n->dirty = false;
out:
	json_decref(arr);
	json_decref(doc);
}

int gossip_state_load(const char *path, uint32_t *out_incarnation, bool *out_left, char **out_addrs,
		      size_t max, size_t *out_n)
{
	json_error_t jerr;
	json_t *doc = json_load_file(path, 0, &jerr), *arr, *v;
	size_t i, n = 0;

	if (!doc)
		return access(path, F_OK) == 0 ? -EINVAL : -ENOENT;
	*out_incarnation = (uint32_t)json_integer_value(json_object_get(doc, "incarnation"));
	*out_left = json_is_true(json_object_get(doc, "left"));
	arr = json_object_get(doc, "members");
	json_array_foreach(arr, i, v)
	{
		if (n < max && json_is_string(v)) {
			out_addrs[n] = strdup(json_string_value(v));
			if (out_addrs[n])
				n++;
		}
	}
	*out_n = n;
	json_decref(doc);
	return 0;
}

void gossip_net_mark_left(struct gossip_net *n)
{
	n->left = true;
	state_save(n);
}

/* Every second: close stale connections, save the state if it changed. */
static int64_t on_sweep(struct loop *l, void *ctx)
{
	struct gossip_net *n = ctx;
	uint64_t now = clock_now_ms();

	(void)l;
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (n->conns[i] && now >= n->conns[i]->deadline_ms)
			conn_free(n, n->conns[i]);
	if (n->dirty || swim_incarnation(n->swim) != n->saved_inc)
		state_save(n);
	return 1000;
}

/* ---- lifecycle ----------------------------------------------------------- */

static int bind_sock(struct gossip_net *n, int type, const struct sockaddr_storage *ss,
		     socklen_t sl, char *err, size_t errlen)
{
	int one = 1;
	int fd = socket(n->family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* best effort */
	if (bind(fd, (const struct sockaddr *)ss, sl) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) < 0)) {
		snprintf(err, errlen, "bind %s port %u: %s", type == SOCK_STREAM ? "tcp" : "udp",
			 (unsigned)n->port, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct gossip_net *gossip_net_new(struct loop *l, const struct gossip_net_config *c, char *err,
				  size_t errlen)
{
	struct gossip_net *n = calloc(1, sizeof(*n));
	struct swim_addr bind_a;
	struct sockaddr_storage ss;
	socklen_t sl;
	struct swim_io io = {
	    .send_packet = io_send_packet,
	    .send_stream = io_send_stream,
	    .now_ms = io_now,
	    .rand_u32 = io_rand,
	    .member_event = io_member_event,
	    .user_event = io_user_event,
	    .query = io_query,
	    .query_response = io_query_response,
	    .ack_payload = io_ack_payload,
	    .ping_complete = io_ping_complete,
	    .now_us = io_now_us,
	};
	static const uint8_t v4pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (!n) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->l = l;
	n->udp_fd = n->tcp_fd = -1;
	n->keyring = c->keyring;
	n->table = c->table;
	n->on_event = c->on_event;
	n->on_user_event = c->on_user_event;
	n->on_query = c->on_query;
	n->on_query_response = c->on_query_response;
	n->ctx = c->ctx;
	n->ack_payload = c->ack_payload;
	n->ping_complete = c->ping_complete;
	n->coord_ctx = c->coord_ctx;
	n->port = c->port;
	n->rng = clock_now_ms() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	if (c->state_path) {
		n->state_path = strdup(c->state_path);
		if (!n->state_path) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	}
	if (swim_addr_parse(c->bind_addr, c->port, &bind_a) < 0) {
		snprintf(err, errlen, "bind_addr %s is not an IP address", c->bind_addr);
		goto fail;
	}
	n->family = memcmp(bind_a.ip, v4pfx, 12) == 0 ? AF_INET : AF_INET6;
	to_sockaddr(n, &bind_a, &ss, &sl);
	n->udp_fd = bind_sock(n, SOCK_DGRAM, &ss, sl, err, errlen);
	if (n->udp_fd < 0)
		goto fail;
	n->tcp_fd = bind_sock(n, SOCK_STREAM, &ss, sl, err, errlen);
	if (n->tcp_fd < 0)
		goto fail;
	io.ctx = n;
	n->swim = swim_new(&c->swim, &io, c->self, c->incarnation, c->table);
	if (!n->swim) {
		snprintf(err, errlen, "swim: bad local member or out of memory");
		goto fail;
	}
	n->saved_inc = c->incarnation;
	n->dirty = true;
	if (loop_watch_fd(l, n->udp_fd, LOOP_READ, udp_readable, n) < 0 ||
	    loop_watch_fd(l, n->tcp_fd, LOOP_READ, tcp_acceptable, n) < 0) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	n->sweep_id = loop_timer_add(l, 1000, on_sweep, n);
	gossip_net_kick(n);
	if (!n->sweep_id || !n->timer_id) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	state_save(n); /* the new incarnation first: a crash loop still climbs */
	return n;
fail:
	gossip_net_free(n);
	return NULL;
}

void gossip_net_free(struct gossip_net *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < MAX_CONNS; i++)
		if (n->conns[i])
			conn_free(n, n->conns[i]);
	if (n->swim && n->table)
		state_save(n);
	if (n->timer_id)
		loop_timer_del(n->l, n->timer_id);
	if (n->sweep_id)
		loop_timer_del(n->l, n->sweep_id);
	if (n->udp_fd >= 0) {
		loop_unwatch_fd(n->l, n->udp_fd);
		close(n->udp_fd);
	}
	if (n->tcp_fd >= 0) {
		loop_unwatch_fd(n->l, n->tcp_fd);
		close(n->tcp_fd);
	}
	swim_free(n->swim);
	free(n->state_path);
	free(n);
}

/* "host", "host:port", "[v6]" or "[v6]:port" → host and port. */
static int split_hostport(const char *s, uint16_t def, char *host, size_t hlen, uint16_t *port)
{
	const char *colon;
	size_t len;

	*port = def;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end)
			return -EINVAL;
		len = (size_t)(end - s - 1);
		colon = end[1] == ':' ? end + 1 : NULL;
		s++;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL; /* a bare IPv6 literal */
		len = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (len == 0 || len >= hlen)
		return -EINVAL;
	memcpy(host, s, len);
	host[len] = 0;
	if (colon) {
		long p = strtol(colon + 1, NULL, 10);

		if (p <= 0 || p > 65535)
			return -EINVAL;
		*port = (uint16_t)p;
	}
	return 0;
}

size_t gossip_net_join(struct gossip_net *n, const char *const *addrs, size_t n_addrs)
{
	size_t ok = 0;

	for (size_t i = 0; i < n_addrs; i++) {
		char host[256];
		uint16_t port;
		struct addrinfo hints = {0}, *res = NULL;
		struct swim_addr a;

		if (split_hostport(addrs[i], n->port, host, sizeof(host), &port) < 0) {
			log_warn("gossip: join: bad address %s", addrs[i]);
			continue;
		}
		hints.ai_family = n->family;
		hints.ai_socktype = SOCK_STREAM;
		if (n->family == AF_INET6)
			hints.ai_flags = AI_V4MAPPED;
		if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) {
			log_warn("gossip: join: cannot resolve %s", host);
			continue;
		}
		from_sockaddr((const struct sockaddr_storage *)res->ai_addr, &a);
		freeaddrinfo(res);
		a.port = port;
		(void)swim_join(n->swim, &a); /* only queues a stream */
		ok++;
	}
	gossip_net_kick(n);
	return ok;
}

uint64_t gossip_net_join_replies(const struct gossip_net *n)
{
	return swim_stats(n->swim)->join_replies;
}

struct swim *gossip_net_swim(struct gossip_net *n) { return n->swim; }

uint64_t gossip_net_decrypt_failures(const struct gossip_net *n)
{
	return n->keyring->decrypt_failures;
}
