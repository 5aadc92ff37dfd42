/* The HTTP subcommands of `cairn` (see commands.h). */
#include "commands.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "client.h"
#include "kv_io.h"
#include "output.h"
#include "proto.h"

struct client *cmd_client(const struct args_http *h)
{
	char base[512];
	struct client *c;
	int rc;

	rc = args_http_base(h->http_addr, getenv("CAIRN_HTTP_ADDR"), getenv("CONSUL_HTTP_ADDR"),
			    base, sizeof(base));
	if (rc < 0) {
		fprintf(stderr, "Error! Unsupported HTTP address (want host:port or "
				"http://host:port)\n");
		return NULL;
	}
	c = client_new(
	    base,
	    args_http_token(h->token, getenv("CAIRN_HTTP_TOKEN"), getenv("CONSUL_HTTP_TOKEN")),
	    h->datacenter);
	if (!c)
		fprintf(stderr, "Error! Out of memory\n");
	return c;
}

int cmd_parse_http(int argc, char **argv, const struct args_flag *extra, size_t n_extra,
		   struct args_http *h, const char *usage)
{
	struct args_flag flags[8] = {
	    {"http-addr", ARGS_STR, &h->http_addr, NULL},
	    {"token", ARGS_STR, &h->token, NULL},
	    {"datacenter", ARGS_STR, &h->datacenter, NULL},
	};
	size_t n = 3;
	char err[512];
	int next, rc;

	for (size_t i = 0; i < n_extra && n < 8; i++)
		flags[n++] = extra[i];
	rc = args_parse_flags(flags, n, argc, argv, &next, err, sizeof(err));
	if (rc == -ECANCELED) {
		printf("%s\n", usage);
		return -2;
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return next;
}

/* Prints an API error answer: status and the text body. */
static void print_http_error(const char *what, const struct client_resp *r)
{
	size_t len = r->len;

	while (len > 0 && (r->body[len - 1] == '\n' || r->body[len - 1] == '\r'))
		len--;
	fprintf(stderr, "%sUnexpected response code: %ld (%.*s)\n", what, r->status, (int)len,
		r->body);
}

/* Reads all of a stream into a malloc'd buffer. */
static int read_stream(FILE *f, char **out, size_t *out_len)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t n;

		if (len == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f)) {
				free(buf);
				return -EIO;
			}
			break;
		}
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* The put value: DATA, "-" for stdin, "@path" for a file; NULL is empty. */
static int load_value(const char *arg, char **out, size_t *out_len)
{
	FILE *f;
	int rc;

	if (!arg) {
		*out = NULL;
		*out_len = 0;
		return 0;
	}
	if (strcmp(arg, "-") == 0)
		return read_stream(stdin, out, out_len);
	if (arg[0] == '@') {
		f = fopen(arg + 1, "rb");
		if (!f) {
			fprintf(stderr, "Error! Failed to read file %s: %s\n", arg + 1,
				strerror(errno));
			return -errno;
		}
		rc = read_stream(f, out, out_len);
		fclose(f);
		return rc;
	}
	*out = strdup(arg);
	if (!*out)
		return -ENOMEM;
	*out_len = strlen(arg);
	return 0;
}

static int kv_get(struct client *c, const struct args_kv *kv, const char *path)
{
	struct client_resp r = {0};
	char err[512];
	json_error_t jerr;
	json_t *doc = NULL;
	char *text = NULL;
	int ret = 1, rc;
	char *query = NULL;
	int qn;

	if (kv->keys) {
		char *sep = client_escape_key(kv->separator);

		qn = sep ? asprintf(&query, "keys%s%s", *sep ? "&separator=" : "", sep) : -1;
		free(sep);
	} else {
		qn = asprintf(&query, "%s", kv->recurse ? "recurse" : "");
	}
	if (qn < 0) {
		fprintf(stderr, "Error! Out of memory\n");
		return 1;
	}
	rc = client_request(c, "GET", path, query, NULL, 0, &r, err, sizeof(err));
	free(query);
	if (rc < 0) {
		fprintf(stderr, "Error querying Cairn agent: %s\n", err);
		return 1;
	}
	if (r.status == 404) {
		if (kv->recurse || kv->keys)
			ret = 0; /* nothing under the prefix: prints nothing, as Consul */
		else
			fprintf(stderr, "Error! No key exists at: %s\n", kv->key);
		goto out;
	}
	if (r.status != 200) {
		print_http_error("Error querying Cairn agent: ", &r);
		goto out;
	}
	{
		/* lock and semaphore flags exceed jansson's integers */
		char *q = kv_io_quote_flags(r.body, r.len);

		doc = q ? json_loads(q, 0, &jerr) : NULL;
		free(q);
	}
	if (!doc || (kv->keys ? output_kv_keys(doc, &text)
			      : output_kv(doc, kv->recurse, kv->detailed, &text)) < 0) {
		fprintf(stderr, "Error querying Cairn agent: malformed answer\n");
		goto out;
	}
	fputs(text, stdout);
	ret = 0;
out:
	free(text);
	json_decref(doc);
	client_resp_close(&r);
	return ret;
}

static int kv_put(struct client *c, const struct args_kv *kv, const char *path)
{
	struct client_resp r = {0};
	char query[96] = "";
	char err[512];
	char *val = NULL;
	size_t len = 0;
	int ret = 1;

	if (load_value(kv->value, &val, &len) < 0) {
		fprintf(stderr, "Error! Failed to read the value\n");
		return 1;
	}
	if (kv->has_flags)
		snprintf(query, sizeof(query), "flags=%" PRIu64, kv->flags);
	if (kv->cas)
		snprintf(query + strlen(query), sizeof(query) - strlen(query), "%scas=%" PRIu64,
			 query[0] ? "&" : "", kv->modify_index);
	if (client_request(c, "PUT", path, query, val, len, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error! Failed writing data: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		print_http_error("Error! Failed writing data: ", &r);
		goto out;
	}
	if (strncmp(r.body, "true", 4) != 0) {
		if (kv->cas)
			fprintf(stderr, "Error! Did not write to %s: CAS failed\n", kv->key);
		else
			fprintf(stderr, "Error! Failed writing data to %s\n", kv->key);
		goto out;
	}
	printf("Success! Data written to: %s\n", kv->key);
	ret = 0;
out:
	client_resp_close(&r);
	free(val);
	return ret;
}

static int kv_delete(struct client *c, const struct args_kv *kv, const char *path)
{
	struct client_resp r = {0};
	char query[64] = "";
	char err[512];
	int ret = 1;

	if (kv->recurse)
		snprintf(query, sizeof(query), "recurse");
	else if (kv->cas)
		snprintf(query, sizeof(query), "cas=%" PRIu64, kv->modify_index);
	if (client_request(c, "DELETE", path, query, NULL, 0, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error! Failed to delete: %s\n", err);
		return 1;
	}
	if (r.status != 200) {
		print_http_error("Error! Failed to delete: ", &r);
		goto out;
	}
	if (strncmp(r.body, "true", 4) != 0) {
		if (kv->cas)
			fprintf(stderr, "Error! Did not delete key %s: CAS failed\n", kv->key);
		else
			fprintf(stderr, "Error! Failed to delete key %s\n", kv->key);
		goto out;
	}
	if (kv->recurse)
		printf("Success! Deleted keys with prefix: %s\n", kv->key);
	else
		printf("Success! Deleted key: %s\n", kv->key);
	ret = 0;
out:
	client_resp_close(&r);
	return ret;
}

static void kv_usage(void)
{
	fprintf(stdout, "Usage: cairn kv <subcommand> [options] [args]\n\n"
			"  get     [-recurse] [-detailed] [-keys [-separator=/]] KEY\n"
			"  put     [-cas -modify-index=N] [-flags=N] KEY [DATA|-|@file]\n"
			"  delete  [-recurse | -cas -modify-index=N] KEY\n"
			"  export  [PREFIX]\n"
			"  import  [-prefix=P] DATA|@file|-\n\n"
			"Common options: -http-addr=host:port -token=T -datacenter=DC\n");
}

int cmd_kv(int argc, char **argv)
{
	struct args_kv kv;
	enum args_kv_cmd cmd;
	struct client *c = NULL;
	char err[256];
	char *path = NULL;
	int ret = 1, rc;

	if (argc < 1) {
		kv_usage();
		return 1;
	}
	if (strcmp(argv[0], "export") == 0)
		return kv_io_cmd_export(argc - 1, argv + 1);
	if (strcmp(argv[0], "import") == 0)
		return kv_io_cmd_import(argc - 1, argv + 1);
	if (strcmp(argv[0], "get") == 0) {
		cmd = ARGS_KV_GET;
	} else if (strcmp(argv[0], "put") == 0) {
		cmd = ARGS_KV_PUT;
	} else if (strcmp(argv[0], "delete") == 0) {
		cmd = ARGS_KV_DELETE;
	} else {
		kv_usage();
		return 1;
	}
	rc = args_parse_kv(cmd, argc - 1, argv + 1, &kv, err, sizeof(err));
	if (rc == -ECANCELED) {
		kv_usage();
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	c = cmd_client(&kv.http);
	if (!c)
		return 1;
	{
		char *esc = client_escape_key(kv.key);

		if (esc && asprintf(&path, "kv/%s", esc) < 0)
			path = NULL;
		free(esc);
	}
	if (!path) {
		fprintf(stderr, "Error! Out of memory\n");
		goto out;
	}
	switch (cmd) {
	case ARGS_KV_GET:
		ret = kv_get(c, &kv, path);
		break;
	case ARGS_KV_PUT:
		ret = kv_put(c, &kv, path);
		break;
	case ARGS_KV_DELETE:
		ret = kv_delete(c, &kv, path);
		break;
	}
out:
	free(path);
	client_free(c);
	return ret;
}

int cmd_members(int argc, char **argv)
{
	struct args_members m;
	struct client_resp r = {0};
	struct client *c;
	char err[512];
	json_error_t jerr;
	json_t *doc = NULL;
	char *text = NULL;
	int ret = 1, rc;

	rc = args_parse_members(argc, argv, &m, err, sizeof(err));
	if (rc == -ECANCELED) {
		printf("Usage: cairn members [-detailed] [-wan] [-http-addr=host:port] "
		       "[-token=T]\n");
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	c = cmd_client(&m.http);
	if (!c)
		return 1;
	if (client_request(c, "GET", "agent/members", m.wan ? "wan=1" : NULL, NULL, 0, &r, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "Error retrieving members: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		print_http_error("Error retrieving members: ", &r);
		goto out;
	}
	doc = json_loadb(r.body, r.len, 0, &jerr);
	if (!doc || output_members(doc, m.detailed, &text) < 0) {
		fprintf(stderr, "Error retrieving members: malformed answer\n");
		goto out;
	}
	fputs(text, stdout);
	ret = 0;
out:
	free(text);
	json_decref(doc);
	client_resp_close(&r);
	client_free(c);
	return ret;
}

int cmd_version(int argc, char **argv)
{
	(void)argv;
	if (argc > 0) {
		fprintf(stderr, "Usage: cairn version\n");
		return 1;
	}
	printf("Cairn v%s\n", CAIRN_VERSION);
	printf("Protocol %d spoken by default (Consul-compatible /v1 HTTP API and DNS)\n",
	       PROTO_VERSION);
	return 0;
}
