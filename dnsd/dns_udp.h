/* DNS over UDP: reads query datagrams in batches and sends the replies.
 * Moves bytes only; every packet goes to dns_server_handle(). */
#ifndef CAIRN_DNS_UDP_H
#define CAIRN_DNS_UDP_H

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

#endif
