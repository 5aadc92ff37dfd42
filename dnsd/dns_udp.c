/* DNS over UDP; see dns_udp.h. */
#include "dns_udp.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns_server.h"
#include "dns_sock.h"
#include "log.h"
#include "loop.h"

/* Datagrams per recvmmsg and batches per wake-up: bounded work per loop
 * iteration, the loop calls us again while the socket stays readable. */
#define BATCH DNS_UDP_BATCH
#define BATCHES_PER_WAKE 4
/* A query larger than the biggest EDNS0 size we honour is not a query. */
#define DGRAM_MAX DNS_UDP_DGRAM_MAX

struct dns_udp {
	struct loop *loop;
	struct dns_server *srv;
	int fd;
	bool batching; /* inside udp_readable: replies go to out */
	struct dns_udp_batch out;
	uint8_t bufs[BATCH][DGRAM_MAX];
	struct dns_peer peers[BATCH];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
};

void dns_udp_batch_init(struct dns_udp_batch *b) { b->n = 0; }

bool dns_udp_batch_add(struct dns_udp_batch *b, const struct sockaddr *to, socklen_t to_len,
		       const void *wire, size_t len)
{
	size_t i = b->n;

	if (i >= DNS_UDP_BATCH || len > DNS_UDP_DGRAM_MAX || to_len > sizeof(b->to[i]))
		return false;
	memcpy(b->bufs[i], wire, len);
	memcpy(&b->to[i], to, to_len);
	b->iov[i].iov_base = b->bufs[i];
	b->iov[i].iov_len = len;
	memset(&b->msgs[i], 0, sizeof(b->msgs[i]));
	b->msgs[i].msg_hdr.msg_name = &b->to[i];
	b->msgs[i].msg_hdr.msg_namelen = to_len;
	b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
	b->msgs[i].msg_hdr.msg_iovlen = 1;
	b->n++;
	return true;
}

size_t dns_udp_batch_flush(struct dns_udp_batch *b, int fd)
{
	size_t done = 0, sent = 0;

	while (done < b->n) {
		int n = sendmmsg(fd, b->msgs + done, (unsigned)(b->n - done), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* this datagram cannot go (buffer full, peer
			 * unreachable): skip it, try the rest */
			log_debug("dns: udp sendmmsg: %s", n < 0 ? strerror(errno) : "0 sent");
			done++;
			continue;
		}
		done += (size_t)n;
		sent += (size_t)n;
	}
	b->n = 0;
	return sent;
}

static void udp_send(void *owner, const struct dns_peer *peer, const uint8_t *wire, size_t len)
{
	struct dns_udp *u = owner;

	if (u->batching) {
		const struct sockaddr *to = (const struct sockaddr *)&peer->addr;

		if (dns_udp_batch_add(&u->out, to, peer->len, wire, len))
			return;
		(void)dns_udp_batch_flush(&u->out, u->fd); /* full: make room */
		if (dns_udp_batch_add(&u->out, to, peer->len, wire, len))
			return;
	}

	/* Non-blocking and unbuffered: when the kernel's buffer is full the
	 * reply is lost and the client retries, as with any lost datagram. */
	if (sendto(u->fd, wire, len, MSG_DONTWAIT, (const struct sockaddr *)&peer->addr,
		   peer->len) < 0)
		log_debug("dns: udp send: %s", strerror(errno));
}

static void udp_readable(struct loop *l, void *ctx, unsigned events)
{
	struct dns_udp *u = ctx;

	for (int b = 0; b < BATCHES_PER_WAKE; b++) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			u->iov[i].iov_base = u->bufs[i];
			u->iov[i].iov_len = DGRAM_MAX;
			memset(&u->msgs[i], 0, sizeof(u->msgs[i]));
			u->msgs[i].msg_hdr.msg_name = &u->peers[i].addr;
			u->msgs[i].msg_hdr.msg_namelen = sizeof(u->peers[i].addr);
			u->msgs[i].msg_hdr.msg_iov = &u->iov[i];
			u->msgs[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(u->fd, u->msgs, BATCH, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				log_warn("dns: udp receive: %s", strerror(errno));
			return;
		}
		/* answers that need no RPC (the cache) are queued and leave
		 * together */
		u->batching = true;
		for (int i = 0; i < n; i++) {
			if (u->msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				continue; /* over DGRAM_MAX: not a query we serve */
			u->peers[i].len = u->msgs[i].msg_hdr.msg_namelen;
			dns_server_handle(u->srv, u->bufs[i], u->msgs[i].msg_len, true, u,
					  &u->peers[i], udp_send);
		}
		u->batching = false;
		if (u->out.n)
			(void)dns_udp_batch_flush(&u->out, u->fd);
		if (n < BATCH)
			return;
	}
}

struct dns_udp *dns_udp_open(struct loop *l, struct dns_server *srv, const char *addr, int port,
			     char *err, unsigned errlen)
{
	struct dns_udp *u = calloc(1, sizeof(*u));
	int fd;

	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	fd = dns_sock_bind(addr, port, SOCK_DGRAM, err, errlen);
	if (fd < 0) {
		free(u);
		return NULL;
	}
	u->loop = l;
	u->srv = srv;
	u->fd = fd;
	if (loop_watch_fd(l, fd, LOOP_READ, udp_readable, u) < 0) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		free(u);
		return NULL;
	}
	return u;
}

void dns_udp_close(struct dns_udp *u)
{
	if (!u)
		return;
	loop_unwatch_fd(u->loop, u->fd);
	dns_server_forget(u->srv, u);
	close(u->fd);
	free(u);
}

int dns_udp_port(const struct dns_udp *u)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(u->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}
