/* The CLI's HTTP client to an agent's API (libcurl): one request at a time,
 * errors as text for the user. */
#ifndef CAIRN_CLI_CLIENT_H
#define CAIRN_CLI_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct client;

struct client_resp {
	long status;	/* HTTP status code */
	char *body;	/* NUL-terminated; malloc'd, freed by client_resp_close */
	size_t len;	/* body length without the NUL */
	uint64_t index; /* X-Consul-Index, 0 when absent */
};

/* Creates a client for base ("http://127.0.0.1:8500", no trailing slash),
 * sending token as X-Consul-Token when non-NULL and ?dc=datacenter when
 * non-NULL. Copies the strings. Returns NULL when out of memory. */
struct client *client_new(const char *base, const char *token, const char *datacenter);
/* client_free(NULL) does nothing. */
void client_free(struct client *c);

/* Sends method to /v1/<path>?<query> (query may be NULL or ""; the dc
 * parameter is appended by the client). path must already be escaped (see
 * client_escape_key). body may be NULL. On a transport failure returns -EIO
 * with a reason in err; any HTTP status is success (out->status tells). */
int client_request(struct client *c, const char *method, const char *path, const char *query,
		   const void *body, size_t body_len, struct client_resp *out, char *err,
		   size_t errlen);

/* Frees a response's body; safe on a zeroed struct. */
void client_resp_close(struct client_resp *r);

/* Percent-encodes a KV key for a URL path, keeping '/'. Returns a malloc'd
 * string (caller frees with free()) or NULL when out of memory. */
char *client_escape_key(const char *key);

#endif
