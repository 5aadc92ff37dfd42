/* DNS over TCP; see dns_tcp.h. */
#include "dns_tcp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns_server.h"
#include "dns_sock.h"
#include "log.h"
#include "loop.h"

/* A frame is a 2-byte length and at most 65535 bytes of message. */
#define FRAME_MAX (2u + 65535u)
#define SWEEP_MS 1000u

struct conn {
	struct conn *prev, *next;
	struct dns_tcp *t;
	int fd;
	bool eof;	 /* the peer will send nothing more */
	bool closing;	 /* closed; freed before the loop sleeps */
	bool processing; /* inside conn_process (replies may come back
			    synchronously; no nested processing) */
	uint8_t *in;	 /* received bytes not yet handled */
	size_t in_len, in_cap;
	uint8_t *out; /* framed replies not yet written */
	size_t out_len, out_cap;
	uint64_t last_ms; /* last traffic, loop clock */
};

struct dns_tcp {
	struct loop *loop;
	struct dns_server *srv;
	int fd;
	struct conn *conns;  /* open connections */
	struct conn *closed; /* closed, to free in before_sleep */
	size_t n_conns;
	uint64_t sweep_timer;
	uint64_t idle_ms; /* close connections idle this long */
};

static void conn_process(struct conn *c);

static bool has_frame(const struct conn *c)
{
	return c->in_len >= 2 && c->in_len - 2 >= ((size_t)c->in[0] << 8 | c->in[1]);
}

static void conn_close(struct conn *c)
{
	struct dns_tcp *t = c->t;

	if (c->closing)
		return;
	c->closing = true;
	loop_unwatch_fd(t->loop, c->fd);
	close(c->fd);
	dns_server_forget(t->srv, c);
	if (c->prev)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	t->n_conns--;
	/* freed later: we may be inside this connection's own callback */
	c->prev = NULL;
	c->next = t->closed;
	t->closed = c;
}

static void conn_free(struct conn *c)
{
	free(c->in);
	free(c->out);
	free(c);
}

static void free_closed(struct loop *l, void *ctx)
{
	struct dns_tcp *t = ctx;

	while (t->closed) {
		struct conn *c = t->closed;

		t->closed = c->next;
		conn_free(c);
	}
}

/* Reading stops while too many queries wait or after EOF; writing is
 * watched while replies are queued. */
static void conn_update(struct conn *c)
{
	unsigned ev = 0;

	if (c->closing)
		return;
	if (c->eof && c->out_len == 0 && dns_server_pending(c->t->srv, c) == 0 && !has_frame(c)) {
		conn_close(c);
		return;
	}
	if (!c->eof && dns_server_pending(c->t->srv, c) < DNS_TCP_MAX_INFLIGHT)
		ev |= LOOP_READ;
	if (c->out_len > 0)
		ev |= LOOP_WRITE;
	if (loop_update_fd(c->t->loop, c->fd, ev) < 0)
		conn_close(c);
}

/* Writes what the socket takes now. Returns false when the connection
 * was closed. */
static bool conn_flush(struct conn *c)
{
	while (c->out_len > 0) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			if (errno == EINTR)
				continue;
			log_debug("dns: tcp send: %s", strerror(errno));
			conn_close(c);
			return false;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	return true;
}

static void conn_send(void *owner, const struct dns_peer *peer, const uint8_t *wire, size_t len)
{
	struct conn *c = owner;
	size_t need;

	if (c->closing || len > 65535)
		return;
	need = c->out_len + 2 + len;
	if (need > DNS_TCP_MAX_OUT) {
		log_debug("dns: tcp peer reads too slowly, closing");
		conn_close(c);
		return;
	}
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 1024;
		uint8_t *p;

		while (cap < need)
			cap *= 2;
		p = realloc(c->out, cap);
		if (!p) {
			conn_close(c);
			return;
		}
		c->out = p;
		c->out_cap = cap;
	}
	c->out[c->out_len] = (uint8_t)(len >> 8);
	c->out[c->out_len + 1] = (uint8_t)len;
	memcpy(c->out + c->out_len + 2, wire, len);
	c->out_len = need;
	c->last_ms = loop_now_ms(c->t->loop);
	if (!conn_flush(c))
		return;
	if (c->processing)
		return; /* conn_process carries on and updates */
	/* a lookup finished: frames held back at the in-flight limit may go */
	conn_process(c);
}

/* Hands every complete frame to the server while the in-flight limit
 * allows. */
static void conn_process(struct conn *c)
{
	size_t pos = 0;

	c->processing = true;
	while (!c->closing && c->in_len - pos >= 2 &&
	       dns_server_pending(c->t->srv, c) < DNS_TCP_MAX_INFLIGHT) {
		size_t len = (size_t)c->in[pos] << 8 | c->in[pos + 1];

		if (c->in_len - pos - 2 < len)
			break;
		pos += 2;
		dns_server_handle(c->t->srv, c->in + pos, len, false, c, NULL, conn_send);
		pos += len;
	}
	c->processing = false;
	if (c->closing)
		return;
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	conn_update(c);
}

static void conn_readable(struct loop *l, void *ctx, unsigned events)
{
	struct conn *c = ctx;

	if (events & LOOP_WRITE) {
		if (!conn_flush(c))
			return;
	}
	if ((events & LOOP_ERROR) && c->eof) {
		/* reset or hung up after its FIN: nobody to answer any more
		 * (and poll would report it on every iteration) */
		conn_close(c);
		return;
	}
	if ((events & (LOOP_READ | LOOP_ERROR)) && !c->eof) {
		ssize_t n;

		if (c->in_cap - c->in_len < 4096 && c->in_cap < FRAME_MAX) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
			uint8_t *p;

			if (cap > FRAME_MAX)
				cap = FRAME_MAX;
			p = realloc(c->in, cap);
			if (!p) {
				conn_close(c);
				return;
			}
			c->in = p;
			c->in_cap = cap;
		}
		if (c->in_len == c->in_cap) {
			/* A whole frame fits in FRAME_MAX; a full buffer means
			 * we stopped at the in-flight limit. */
			conn_update(c);
			return;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				return;
			log_debug("dns: tcp receive: %s", strerror(errno));
			conn_close(c);
			return;
		}
		if (n == 0)
			c->eof = true;
		c->in_len += (size_t)n;
		c->last_ms = loop_now_ms(l);
	}
	conn_process(c);
}

static void tcp_accept(struct loop *l, void *ctx, unsigned events)
{
	struct dns_tcp *t = ctx;

	for (int i = 0; i < 64; i++) {
		int fd = accept4(t->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("dns: tcp accept: %s", strerror(errno));
			return;
		}
		if (t->n_conns >= DNS_TCP_MAX_CONNS) {
			log_debug("dns: %zu tcp connections open, refusing one", t->n_conns);
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || loop_watch_fd(l, fd, LOOP_READ, conn_readable, c) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->t = t;
		c->fd = fd;
		c->last_ms = loop_now_ms(l);
		c->next = t->conns;
		if (t->conns)
			t->conns->prev = c;
		t->conns = c;
		t->n_conns++;
	}
}

/* How often idle connections are looked for: min(1 s, idle / 2). */
static uint64_t sweep_ms(const struct dns_tcp *t)
{
	uint64_t half = t->idle_ms / 2 ? t->idle_ms / 2 : 1;

	return half < SWEEP_MS ? half : SWEEP_MS;
}

static int64_t tcp_sweep(struct loop *l, void *ctx)
{
	struct dns_tcp *t = ctx;
	uint64_t now_ms = loop_now_ms(l);
	struct conn *c = t->conns;

	while (c) {
		struct conn *next = c->next;

		if (now_ms - c->last_ms >= t->idle_ms && dns_server_pending(t->srv, c) == 0)
			conn_close(c);
		c = next;
	}
	return (int64_t)sweep_ms(t);
}

struct dns_tcp *dns_tcp_open(struct loop *l, struct dns_server *srv, const char *addr, int port,
			     char *err, unsigned errlen)
{
	struct dns_tcp *t = calloc(1, sizeof(*t));

	if (!t) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->loop = l;
	t->srv = srv;
	t->idle_ms = DNS_TCP_IDLE_MS;
	t->fd = dns_sock_bind(addr, port, SOCK_STREAM, err, errlen);
	if (t->fd < 0) {
		free(t);
		return NULL;
	}
	if (loop_watch_fd(l, t->fd, LOOP_READ, tcp_accept, t) < 0 ||
	    loop_add_before_sleep(l, free_closed, t) < 0 ||
	    (t->sweep_timer = loop_timer_add(l, SWEEP_MS, tcp_sweep, t)) == 0) {
		snprintf(err, errlen, "out of memory");
		loop_unwatch_fd(l, t->fd);
		close(t->fd);
		free(t);
		return NULL;
	}
	return t;
}

void dns_tcp_close(struct dns_tcp *t)
{
	if (!t)
		return;
	while (t->conns)
		conn_close(t->conns);
	free_closed(t->loop, t);
	loop_timer_del(t->loop, t->sweep_timer);
	loop_unwatch_fd(t->loop, t->fd);
	close(t->fd);
	free(t);
}

size_t dns_tcp_conns(const struct dns_tcp *t) { return t->n_conns; }

void dns_tcp_set_idle_ms(struct dns_tcp *t, uint64_t idle_ms)
{
	t->idle_ms = idle_ms ? idle_ms : 1;
	/* the next sweep at the new pace */
	loop_timer_del(t->loop, t->sweep_timer);
	t->sweep_timer = loop_timer_add(t->loop, sweep_ms(t), tcp_sweep, t);
}

int dns_tcp_port(const struct dns_tcp *t)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(t->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
