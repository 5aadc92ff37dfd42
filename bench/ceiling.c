/* The benchmark's ceiling: a trivial HTTP server that answers every request
 * with 200 and the JSON body `true`, storing nothing.
 *
 * It uses libmicrohttpd in the same shape as cairn-apid (one thread, epoll,
 * no thread per connection), so the gap between it and Cairn under the same
 * wrk load is the cost of Cairn's own work (routing, RPC to raftd, LMDB,
 * fsync), not of the HTTP library or the load generator.
 *
 * Usage: cairn-bench-ceiling [-p PORT] [-a ADDR]   (default 127.0.0.1:18500)
 * Prints "listening on ADDR:PORT" once ready; exits on SIGINT or SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if MHD_VERSION < 0x00097002
#define MHD_Result int
#else
#define MHD_Result enum MHD_Result
#endif

static const char ceiling_body[] = "true";

/* Shared by every answer; MHD reference-counts it. */
static struct MHD_Response *ceiling_response;

/* Marks a request whose first call (headers only) has been seen, so that a
 * body is drained before answering, as a real server must. */
static int ceiling_seen;

static MHD_Result ceiling_handle(void *cls, struct MHD_Connection *conn, const char *url,
				 const char *method, const char *version,
				 const char *upload_data, size_t *upload_data_size,
				 void **req_cls)
{
	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	(void)upload_data;

	if (*req_cls == NULL) {
		*req_cls = &ceiling_seen;
		return MHD_YES;
	}
	if (*upload_data_size != 0) {
		*upload_data_size = 0; /* discard the body */
		return MHD_YES;
	}
	return MHD_queue_response(conn, MHD_HTTP_OK, ceiling_response);
}

static int parse_port(const char *s, uint16_t *out_port)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
		return -EINVAL;
	*out_port = (uint16_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	struct MHD_Daemon *d = NULL;
	const char *host = "127.0.0.1";
	uint16_t port = 18500;
	sigset_t sigs;
	int opt, sig = 0;
	int rc = 1;

	while ((opt = getopt(argc, argv, "p:a:")) != -1) {
		switch (opt) {
		case 'p':
			if (parse_port(optarg, &port) < 0) {
				fprintf(stderr, "ceiling: bad port '%s'\n", optarg);
				return 2;
			}
			break;
		case 'a':
			host = optarg;
			break;
		default:
			fprintf(stderr, "usage: %s [-p PORT] [-a ADDR]\n", argv[0]);
			return 2;
		}
	}

	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "ceiling: bad IPv4 address '%s'\n", host);
		return 2;
	}

	/* Block the stop signals before MHD starts its thread, so that only
	 * sigwait() below receives them. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
		fprintf(stderr, "ceiling: pthread_sigmask failed\n");
		return 1;
	}

	ceiling_response = MHD_create_response_from_buffer(
		sizeof(ceiling_body) - 1, (void *)ceiling_body, MHD_RESPMEM_PERSISTENT);
	if (ceiling_response == NULL ||
	    MHD_add_response_header(ceiling_response, MHD_HTTP_HEADER_CONTENT_TYPE,
				    "application/json") != MHD_YES) {
		fprintf(stderr, "ceiling: cannot build the response\n");
		goto out;
	}

	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, port, NULL, NULL,
			     ceiling_handle, NULL, MHD_OPTION_SOCK_ADDR, &addr,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)10000,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60,
			     MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_END);
	if (d == NULL) {
		fprintf(stderr, "ceiling: cannot listen on %s:%u\n", host, (unsigned)port);
		goto out;
	}
	printf("listening on %s:%u\n", host, (unsigned)port);
	fflush(stdout);

	if (sigwait(&sigs, &sig) != 0) {
		fprintf(stderr, "ceiling: sigwait failed\n");
		goto out;
	}
	rc = 0;
out:
	if (d != NULL)
		MHD_stop_daemon(d);
	if (ceiling_response != NULL)
		MHD_destroy_response(ceiling_response);
	return rc;
}
