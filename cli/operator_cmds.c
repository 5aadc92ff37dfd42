/* The `cairn operator raft` and `cairn operator autopilot` subcommands (see
 * operator_cmds.h), as Consul's command/operator/raft/listpeers, removepeer
 * and command/operator/autopilot/get, set. */
#include "operator_cmds.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "client.h"
#include "commands.h"

#define NCOLS 6

static const char *const headers[NCOLS] = {"Node",  "ID",    "Address",
					   "State", "Voter", "RaftProtocol"};

static const char *str_of(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

int operator_raft_peers_table(const json_t *config, char **out)
{
	const json_t *servers = json_object_get(config, "Servers");
	const char **cells = NULL;
	size_t nrows, width[NCOLS] = {0};
	char *buf = NULL;
	size_t size = 0;
	FILE *f = NULL;
	int rc = 0;

	if (!json_is_array(servers))
		return -EINVAL;
	nrows = json_array_size(servers);
	cells = calloc((nrows + 1) * NCOLS, sizeof(*cells));
	if (!cells)
		return -ENOMEM;
	for (size_t c = 0; c < NCOLS; c++)
		cells[c] = headers[c];
	for (size_t r = 0; r < nrows; r++) {
		const json_t *s = json_array_get(servers, r);
		const char **row = &cells[(r + 1) * NCOLS];
		const char *proto = str_of(s, "ProtocolVersion");

		if (!json_is_object(s)) {
			rc = -EINVAL;
			goto out;
		}
		row[0] = str_of(s, "Node");
		row[1] = str_of(s, "ID");
		row[2] = str_of(s, "Address");
		row[3] = json_is_true(json_object_get(s, "Leader")) ? "leader" : "follower";
		row[4] = json_is_true(json_object_get(s, "Voter")) ? "true" : "false";
		row[5] = *proto ? proto : "<=1";
	}
	for (size_t i = 0; i < (nrows + 1) * NCOLS; i++)
		if (strlen(cells[i]) > width[i % NCOLS])
			width[i % NCOLS] = strlen(cells[i]);
	f = open_memstream(&buf, &size);
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t r = 0; r <= nrows; r++)
		for (size_t c = 0; c < NCOLS; c++) {
			if (c + 1 < NCOLS)
				fprintf(f, "%-*s  ", (int)width[c], cells[r * NCOLS + c]);
			else
				fprintf(f, "%s\n", cells[r * NCOLS + c]);
		}
	if (fclose(f) != 0)
		rc = -ENOMEM;
	f = NULL;
out:
	if (f)
		fclose(f);
	free(cells);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/* Trims the trailing newlines of an error body for one-line messages. */
static int body_len(const struct client_resp *r)
{
	size_t len = r->len;

	while (len > 0 && (r->body[len - 1] == '\n' || r->body[len - 1] == '\r'))
		len--;
	return (int)len;
}

static int list_peers(int argc, char **argv)
{
	struct args_http h = {0};
	bool stale = false;
	const struct args_flag extra[] = {{"stale", ARGS_BOOL, &stale, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 1, &h,
			 "Usage: cairn operator raft list-peers [-stale] [-http-addr=host:port]");
	struct client_resp r = {0};
	struct client *c;
	json_t *doc = NULL;
	char err[512], *table = NULL;
	int ret = 1;

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next < argc) {
		fprintf(stderr, "Too many arguments (expected 0, got %d)\n", argc - next);
		return 1;
	}
	c = cmd_client(&h);
	if (!c)
		return 1;
	if (client_request(c, "GET", "operator/raft/configuration", stale ? "stale=" : NULL, NULL,
			   0, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error getting peers: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error getting peers: Unexpected response code: %ld (%.*s)\n",
			r.status, body_len(&r), r.body);
		goto out;
	}
	doc = json_loadb(r.body, r.len, 0, NULL);
	if (!doc || operator_raft_peers_table(doc, &table) < 0) {
		fprintf(stderr, "Error getting peers: malformed answer\n");
		goto out;
	}
	fputs(table, stdout);
	ret = 0;
out:
	free(table);
	json_decref(doc);
	client_resp_close(&r);
	client_free(c);
	return ret;
}

static int remove_peer(int argc, char **argv)
{
	struct args_http h = {0};
	const char *id = NULL, *address = NULL;
	const struct args_flag extra[] = {{"id", ARGS_STR, &id, NULL},
					  {"address", ARGS_STR, &address, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 2, &h,
			 "Usage: cairn operator raft remove-peer -id=ID | -address=IP:port "
			 "[-http-addr=host:port]");
	struct client_resp r = {0};
	struct client *c;
	char err[512], *query = NULL, *esc;
	int ret = 1;

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next < argc) {
		fprintf(stderr, "Too many arguments (expected 0, got %d)\n", argc - next);
		return 1;
	}
	if (id && *id && address && *address) {
		fprintf(stderr, "Error removing peer: cannot give both an address and id\n");
		return 1;
	}
	if (!(id && *id) && !(address && *address)) {
		fprintf(
		    stderr,
		    "Error removing peer: an address or id is required for the peer to remove\n");
		return 1;
	}
	esc = client_escape_key(id && *id ? id : address);
	if (!esc || asprintf(&query, "%s=%s", id && *id ? "id" : "address", esc) < 0) {
		free(esc);
		fprintf(stderr, "Error! Out of memory\n");
		return 1;
	}
	free(esc);
	c = cmd_client(&h);
	if (!c) {
		free(query);
		return 1;
	}
	if (client_request(c, "DELETE", "operator/raft/peer", query, NULL, 0, &r, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "Error removing peer: %s\n", err);
	} else if (r.status != 200) {
		fprintf(stderr, "Error removing peer: Unexpected response code: %ld (%.*s)\n",
			r.status, body_len(&r), r.body);
	} else {
		if (id && *id)
			printf("Removed peer with id \"%s\"\n", id);
		else
			printf("Removed peer with address \"%s\"\n", address);
		ret = 0;
	}
	free(query);
	client_resp_close(&r);
	client_free(c);
	return ret;
}

/* ---- operator autopilot ------------------------------------------------- */

int operator_autopilot_config_text(const json_t *cfg, char **out)
{
	const json_t *b = json_object_get(cfg, "CleanupDeadServers");
	const json_t *u = json_object_get(cfg, "DisableUpgradeMigration");
	char *text = NULL;

	if (!json_is_object(cfg) || !json_is_boolean(b))
		return -EINVAL;
	if (asprintf(&text,
		     "CleanupDeadServers = %s\n"
		     "LastContactThreshold = %s\n"
		     "MaxTrailingLogs = %lld\n"
		     "MinQuorum = %lld\n"
		     "ServerStabilizationTime = %s\n"
		     "RedundancyZoneTag = \"%s\"\n"
		     "DisableUpgradeMigration = %s\n"
		     "UpgradeVersionTag = \"%s\"\n",
		     json_is_true(b) ? "true" : "false", str_of(cfg, "LastContactThreshold"),
		     (long long)json_integer_value(json_object_get(cfg, "MaxTrailingLogs")),
		     (long long)json_integer_value(json_object_get(cfg, "MinQuorum")),
		     str_of(cfg, "ServerStabilizationTime"), str_of(cfg, "RedundancyZoneTag"),
		     json_is_true(u) ? "true" : "false", str_of(cfg, "UpgradeVersionTag")) < 0)
		return -ENOMEM;
	*out = text;
	return 0;
}

/* GET operator/autopilot/configuration into *out_doc; prints the error. */
static int get_autopilot(struct client *c, const char *what, json_t **out_doc)
{
	struct client_resp r = {0};
	char err[512];
	int ret = -1;

	if (client_request(c, "GET", "operator/autopilot/configuration", NULL, NULL, 0, &r, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "Error %s Autopilot configuration: %s\n", what, err);
	} else if (r.status != 200) {
		fprintf(stderr,
			"Error %s Autopilot configuration: Unexpected response code: %ld (%.*s)\n",
			what, r.status, body_len(&r), r.body);
	} else {
		*out_doc = json_loadb(r.body, r.len, 0, NULL);
		if (json_is_object(*out_doc))
			ret = 0;
		else
			fprintf(stderr, "Error %s Autopilot configuration: malformed answer\n", what);
	}
	client_resp_close(&r);
	return ret;
}

static int autopilot_get_config(int argc, char **argv)
{
	struct args_http h = {0};
	int next = cmd_parse_http(argc, argv, NULL, 0, &h,
				  "Usage: cairn operator autopilot get-config [-http-addr=host:port]");
	struct client *c;
	json_t *doc = NULL;
	char *text = NULL;
	int ret = 1;

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next < argc) {
		fprintf(stderr, "Too many arguments (expected 0, got %d)\n", argc - next);
		return 1;
	}
	c = cmd_client(&h);
	if (!c)
		return 1;
	if (get_autopilot(c, "querying", &doc) == 0) {
		if (operator_autopilot_config_text(doc, &text) == 0) {
			fputs(text, stdout);
			ret = 0;
		} else {
			fprintf(stderr, "Error querying Autopilot configuration: malformed answer\n");
		}
	}
	free(text);
	json_decref(doc);
	client_free(c);
	return ret;
}

static int autopilot_set_config(int argc, char **argv)
{
	struct args_http h = {0};
	const char *cleanup = NULL, *contact = NULL, *stabilization = NULL;
	const char *trailing = NULL, *min_quorum = NULL;
	const struct args_flag extra[] = {
	    {"cleanup-dead-servers", ARGS_STR, &cleanup, NULL},
	    {"last-contact-threshold", ARGS_STR, &contact, NULL},
	    {"max-trailing-logs", ARGS_STR, &trailing, NULL},
	    {"min-quorum", ARGS_STR, &min_quorum, NULL},
	    {"server-stabilization-time", ARGS_STR, &stabilization, NULL}};
	int next = cmd_parse_http(argc, argv, extra, 5, &h,
				  "Usage: cairn operator autopilot set-config [-cleanup-dead-servers="
				  "true|false] [-last-contact-threshold=200ms] [-max-trailing-logs=250]"
				  " [-min-quorum=0] [-server-stabilization-time=10s]"
				  " [-http-addr=host:port]");
	struct client_resp r = {0};
	struct client *c;
	json_t *doc = NULL;
	char err[512], *body = NULL, *query = NULL;
	int ret = 1;

	if (next < 0)
		return next == -2 ? 0 : 1;
	if (next < argc) {
		fprintf(stderr, "Too many arguments (expected 0, got %d)\n", argc - next);
		return 1;
	}
	if (cleanup && strcmp(cleanup, "true") != 0 && strcmp(cleanup, "false") != 0) {
		fprintf(stderr, "invalid value \"%s\" for flag -cleanup-dead-servers\n", cleanup);
		return 1;
	}
	c = cmd_client(&h);
	if (!c)
		return 1;
	if (get_autopilot(c, "querying", &doc) < 0)
		goto out;
	/* only the flags given change; the rest is kept as read */
	if (cleanup)
		(void)json_object_set_new(doc, "CleanupDeadServers",
					  json_boolean(strcmp(cleanup, "true") == 0));
	if (contact)
		(void)json_object_set_new(doc, "LastContactThreshold", json_string(contact));
	if (stabilization)
		(void)json_object_set_new(doc, "ServerStabilizationTime", json_string(stabilization));
	if (trailing)
		(void)json_object_set_new(doc, "MaxTrailingLogs",
					  json_integer(strtoll(trailing, NULL, 10)));
	if (min_quorum)
		(void)json_object_set_new(doc, "MinQuorum",
					  json_integer(strtoll(min_quorum, NULL, 10)));
	body = json_dumps(doc, JSON_COMPACT);
	if (!body || asprintf(&query, "cas=%lld",
			      (long long)json_integer_value(json_object_get(doc, "ModifyIndex"))) < 0) {
		fprintf(stderr, "Error! Out of memory\n");
		goto out;
	}
	if (client_request(c, "PUT", "operator/autopilot/configuration", query, body,
			   strlen(body), &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error setting Autopilot configuration: %s\n", err);
	} else if (r.status != 200) {
		fprintf(stderr,
			"Error setting Autopilot configuration: Unexpected response code: %ld "
			"(%.*s)\n",
			r.status, body_len(&r), r.body);
	} else if (r.len >= 4 && memcmp(r.body, "true", 4) == 0) {
		printf("Configuration updated!\n");
		ret = 0;
	} else {
		printf("Configuration could not be atomically updated, please try again\n");
	}
out:
	free(body);
	free(query);
	json_decref(doc);
	client_resp_close(&r);
	client_free(c);
	return ret;
}

static int cmd_autopilot(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "get-config") == 0)
		return autopilot_get_config(argc - 1, argv + 1);
	if (argc >= 1 && strcmp(argv[0], "set-config") == 0)
		return autopilot_set_config(argc - 1, argv + 1);
	fprintf(argc >= 1 && strcmp(argv[0], "-h") != 0 ? stderr : stdout,
		"Usage: cairn operator autopilot <subcommand> [options]\n\n"
		"Subcommands:\n"
		"    get-config    Display the current Autopilot configuration\n"
		"    set-config    Modify the current Autopilot configuration\n");
	return argc >= 1 && strcmp(argv[0], "-h") == 0 ? 0 : 1;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: cairn operator raft <subcommand> [options]\n\n"
		   "Subcommands:\n"
		   "    list-peers     Display the current Raft peer configuration\n"
		   "    remove-peer    Remove a Cairn server from the Raft configuration\n");
}

int cmd_operator(int argc, char **argv)
{
	if (argc >= 1 && strcmp(argv[0], "autopilot") == 0)
		return cmd_autopilot(argc - 1, argv + 1);
	if (argc < 1 || strcmp(argv[0], "raft") != 0) {
		fprintf(stderr, "Usage: cairn operator raft <list-peers|remove-peer> [options]\n"
				"       cairn operator autopilot <get-config|set-config> [options]\n");
		return 1;
	}
	if (argc < 2) {
		usage(stderr);
		return 1;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "-help") == 0 ||
	    strcmp(argv[1], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "list-peers") == 0)
		return list_peers(argc - 2, argv + 2);
	if (strcmp(argv[1], "remove-peer") == 0)
		return remove_peer(argc - 2, argv + 2);
	fprintf(stderr, "cairn operator raft: unknown subcommand \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 1;
}
