/* DNS over UDP: reads query datagrams in batches (recvmmsg) and sends the
 * replies produced while a batch is handled in one sendmmsg. Moves bytes
 * only; every packet goes to dns_server_handle(). */
#ifndef CAIRN_DNS_UDP_H
#define CAIRN_DNS_UDP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct loop;
struct dns_server;
struct dns_udp;

/* Binds addr:port (numeric IPv4 or IPv6) and watches the socket on l.
 * srv is borrowed and must outlive the transport. NULL on failure, with a
 * reason in err. */
struct dns_udp *dns_udp_open(struct loop *l, struct dns_server *srv, const char *addr, int port,
			     char *err, unsigned errlen);
/* Stops watching, forgets pending queries and closes. NULL is fine. */
void dns_udp_close(struct dns_udp *u);

/* The bound port (useful after binding port 0), or -errno. */
int dns_udp_port(const struct dns_udp *u);

/* ---- batched send ------------------------------------------------------ */

/* Replies per sendmmsg, and the largest reply a batch holds (the largest
 * EDNS0 size we honour). */
#define DNS_UDP_BATCH 32
#define DNS_UDP_DGRAM_MAX 4096

/* Replies queued while a received batch is answered, sent with one
 * sendmmsg (replies that come later, after an RPC, go out one by one). */
struct dns_udp_batch {
	size_t n;
	struct mmsghdr msgs[DNS_UDP_BATCH];
	struct iovec iov[DNS_UDP_BATCH];
	struct sockaddr_storage to[DNS_UDP_BATCH];
	uint8_t bufs[DNS_UDP_BATCH][DNS_UDP_DGRAM_MAX];
};

/* Empties b. */
void dns_udp_batch_init(struct dns_udp_batch *b);
/* Copies a reply (wire borrowed) to peer into b. Returns false when b is
 * full or the reply is larger than DNS_UDP_DGRAM_MAX (send it alone). */
bool dns_udp_batch_add(struct dns_udp_batch *b, const struct sockaddr *to, socklen_t to_len,
		       const void *wire, size_t len);
/* Sends every queued reply on fd with sendmmsg (non-blocking, as many
 * calls as partial sends need) and empties b. Replies the kernel refuses
 * (buffer full) are dropped, as any lost datagram: the client retries.
 * Returns how many were sent. */
size_t dns_udp_batch_flush(struct dns_udp_batch *b, int fd);

#endif
