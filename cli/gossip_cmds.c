/* The gossip subcommands of `cairn`: join, leave, force-leave (through the
 * local agent's HTTP API, as Consul's CLI does) and keygen (local). */
#include "gossip_cmds.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "client.h"
#include "commands.h"

/* PUT /v1/<path>?<query>; prints Consul's error wording on failure. */
static int put(const struct args_http *h, const char *path, const char *query, const char *what)
{
	struct client_resp r = {0};
	struct client *c = cmd_client(h);
	char err[512];
	int ret = 1;

	if (!c)
		return 1;
	if (client_request(c, "PUT", path, query, NULL, 0, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error %s: %s\n", what, err);
	} else if (r.status != 200) {
		size_t len = r.len;

		while (len > 0 && (r.body[len - 1] == '\n' || r.body[len - 1] == '\r'))
			len--;
		fprintf(stderr, "Error %s: Unexpected response code: %ld (%.*s)\n", what, r.status,
			(int)len, r.body);
	} else {
		ret = 0;
	}
	client_resp_close(&r);
	client_free(c);
	return ret;
}

int cmd_join(int argc, char **argv)
{
	struct args_http h = {0};
	bool wan = false;
	struct args_flag extra[] = {{"wan", ARGS_BOOL, &wan, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 1, &h,
			 "Usage: cairn join [-wan] [-http-addr=host:port] address ...");
	int joined = 0;

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next >= argc) {
		fprintf(stderr, "At least one address to join must be specified.\n");
		return 1;
	}
	for (int i = next; i < argc; i++) {
		char *path = client_escape_key(argv[i]);
		char full[1024];

		if (!path) {
			fprintf(stderr, "Error! Out of memory\n");
			return 1;
		}
		snprintf(full, sizeof(full), "agent/join/%s", path);
		free(path);
		if (put(&h, full, wan ? "wan=1" : NULL, "joining the cluster") == 0)
			joined++;
	}
	if (joined == 0)
		return 1;
	printf("Successfully joined cluster by contacting %d nodes.\n", joined);
	return 0;
}

int cmd_leave(int argc, char **argv)
{
	struct args_http h = {0};
	int next = cmd_parse_http(argc, argv, NULL, 0, &h, "Usage: cairn leave [-http-addr=host:port]");

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next < argc) {
		fprintf(stderr, "Too many arguments (expected 0, got %d)\n", argc - next);
		return 1;
	}
	if (put(&h, "agent/leave", NULL, "leaving") != 0)
		return 1;
	printf("Graceful leave complete\n");
	return 0;
}

int cmd_force_leave(int argc, char **argv)
{
	struct args_http h = {0};
	bool prune = false, wan = false;
	struct args_flag extra[] = {{"prune", ARGS_BOOL, &prune, NULL},
				    {"wan", ARGS_BOOL, &wan, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 2, &h,
			 "Usage: cairn force-leave [-prune] [-wan] [-http-addr=host:port] name");
	char *node;
	char full[1024], query[32];

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (argc - next != 1) {
		fprintf(stderr, "A single node name must be specified to force leave.\n");
		return 1;
	}
	node = client_escape_key(argv[next]);
	if (!node) {
		fprintf(stderr, "Error! Out of memory\n");
		return 1;
	}
	snprintf(full, sizeof(full), "agent/force-leave/%s", node);
	free(node);
	snprintf(query, sizeof(query), "%s%s%s", prune ? "prune=1" : "", prune && wan ? "&" : "",
		 wan ? "wan=1" : "");
	return put(&h, full, query, "force leaving");
}

int cmd_keygen(int argc, char **argv)
{
	unsigned char key[32];
	gnutls_datum_t in = {key, sizeof(key)}, out = {NULL, 0};

	(void)argv;
	if (argc > 0) {
		fprintf(stderr, "Usage: cairn keygen\n");
		return 1;
	}
	if (gnutls_rnd(GNUTLS_RND_KEY, key, sizeof(key)) < 0 ||
	    gnutls_base64_encode2(&in, &out) < 0) {
		fprintf(stderr, "Error reading random data\n");
		return 1;
	}
	printf("%.*s\n", (int)out.size, out.data);
	gnutls_free(out.data);
	return 0;
}

int cmd_keyring(int argc, char **argv)
{
	struct args_http h = {0};
	bool list = false;
	const char *install = NULL, *use = NULL, *rm = NULL;
	struct args_flag extra[] = {{"list", ARGS_BOOL, &list, NULL},
				    {"install", ARGS_STR, &install, NULL},
				    {"use", ARGS_STR, &use, NULL},
				    {"remove", ARGS_STR, &rm, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 4, &h,
			 "Usage: cairn keyring [-list | -install=KEY | -use=KEY | -remove=KEY] "
			 "[-http-addr=host:port]");
	struct client_resp r = {0};
	struct client *c;
	char err[512], body[256];
	const char *method, *key;
	int ret = 1, n = (list ? 1 : 0) + (install ? 1 : 0) + (use ? 1 : 0) + (rm ? 1 : 0);

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (n != 1 || next < argc) {
		fprintf(stderr, "Exactly one of -list, -install, -use, or -remove is required\n");
		return 1;
	}
	method = list ? "GET" : install ? "POST" : use ? "PUT" : "DELETE";
	key = install ? install : use ? use : rm;
	if (key)
		snprintf(body, sizeof(body), "{\"Key\": \"%.200s\"}", key);
	c = cmd_client(&h);
	if (!c)
		return 1;
	if (client_request(c, method, "operator/keyring", NULL, key ? body : NULL,
			   key ? strlen(body) : 0, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error: Unexpected response code: %ld (%.*s)\n", r.status,
			(int)r.len, r.body);
		goto out;
	}
	if (list) {
		json_t *doc = json_loadb(r.body, r.len, 0, NULL), *pool, *keys, *v;
		size_t i;
		const char *k;

		printf("==> Gathering installed encryption keys...\n");
		json_array_foreach(doc, i, pool)
		{
			long long nodes = json_integer_value(json_object_get(pool, "NumNodes"));

			printf("\n%s (%s):\n",
			       json_string_value(json_object_get(pool, "Datacenter")),
			       json_is_true(json_object_get(pool, "WAN")) ? "WAN" : "LAN");
			keys = json_object_get(pool, "Keys");
			json_object_foreach(keys, k, v)
			{
				printf("  %s [%lld/%lld]\n", k, json_integer_value(v), nodes);
			}
		}
		json_decref(doc);
	} else {
		printf("==> %s key: success\n", install ? "Installing"
						: use	? "Changing primary"
							: "Removing");
	}
	ret = 0;
out:
	client_resp_close(&r);
	client_free(c);
	return ret;
}
