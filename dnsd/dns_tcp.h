/* DNS over TCP (RFC 1035 4.2.2, RFC 7766): accepts connections, splits
 * the 2-byte length framing, hands each query to dns_server_handle() and
 * writes the framed replies back. Moves bytes only.
 *
 * Queries on one connection may be pipelined and are answered as their
 * lookups finish (RFC 7766 6.2.1.1 allows any order; ids match them). A
 * connection is closed after DNS_TCP_IDLE_MS without traffic or pending
 * queries, when its peer sends a frame too large or reads too slowly, and
 * at most DNS_TCP_MAX_CONNS are open at once. */
#ifndef CAIRN_DNS_TCP_H
#define CAIRN_DNS_TCP_H

#include <stddef.h>
#include <stdint.h>

#define DNS_TCP_IDLE_MS 10000u
#define DNS_TCP_MAX_CONNS 512u
/* Queries one connection may have waiting for raftd before we stop
 * reading from it. */
#define DNS_TCP_MAX_INFLIGHT 32u
/* Unsent reply bytes one connection may hold before it is dropped. */
#define DNS_TCP_MAX_OUT (1024u * 1024u)

struct loop;
struct dns_server;
struct dns_tcp;

/* Binds and listens on addr:port (numeric IPv4 or IPv6) and watches on l.
 * srv is borrowed and must outlive the transport. NULL on failure, with a
 * reason in err. */
struct dns_tcp *dns_tcp_open(struct loop *l, struct dns_server *srv, const char *addr, int port,
			     char *err, unsigned errlen);
/* Closes every connection and the listener. Call once loop_run() has
 * returned (a before-sleep hook of the loop points here). NULL is fine. */
void dns_tcp_close(struct dns_tcp *t);

/* Connections open now. */
size_t dns_tcp_conns(const struct dns_tcp *t);

/* Sets the idle time-out (default DNS_TCP_IDLE_MS); connections are
 * checked every min(1 s, idle_ms / 2). For tests and tuning. */
void dns_tcp_set_idle_ms(struct dns_tcp *t, uint64_t idle_ms);

/* The bound port (useful after binding port 0), or -errno. */
int dns_tcp_port(const struct dns_tcp *t);

#endif
