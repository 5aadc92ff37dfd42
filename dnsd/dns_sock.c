/* Socket helpers shared by the DNS transports; see dns_sock.h. */
#include "dns_sock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int dns_sock_bind(const char *addr, int port, int type, char *err, unsigned errlen)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char service[16];
	int one = 1;
	int fd = -1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = type;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	snprintf(service, sizeof(service), "%d", port);
	rc = getaddrinfo(addr, service, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "bad DNS address %s: %s", addr, gai_strerror(rc));
		return -EINVAL;
	}
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto out;
	}
	/* "::" next to "0.0.0.0" in client_addr must not clash */
	if (ai->ai_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) {
		rc = -errno;
		snprintf(err, errlen, "IPV6_V6ONLY: %s", strerror(errno));
		close(fd);
		fd = -1;
		goto out;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    (type == SOCK_STREAM && listen(fd, 128) < 0)) {
		rc = -errno;
		snprintf(err, errlen, "%s %s port %d: %s", type == SOCK_STREAM ? "tcp" : "udp",
			 addr, port, strerror(errno));
		close(fd);
		fd = -1;
		goto out;
	}
	rc = fd;
out:
	freeaddrinfo(ai);
	return rc;
}
