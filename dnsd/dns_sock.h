/* Socket helpers shared by the DNS transports. */
#ifndef CAIRN_DNS_SOCK_H
#define CAIRN_DNS_SOCK_H

/* Opens a non-blocking, close-on-exec socket of type (SOCK_DGRAM or
 * SOCK_STREAM) bound to the numeric address addr and port (listening, for
 * streams). Returns the fd, or -errno with a reason in err. */
int dns_sock_bind(const char *addr, int port, int type, char *err, unsigned errlen);

#endif
