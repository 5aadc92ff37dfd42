/* `cairn snapshot` (see snapshot.h). */
#include "snapshot.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../raftd/snapshot.h"
#include "args.h"
#include "client.h"
#include "commands.h"

static int trimmed(const struct client_resp *r)
{
	size_t len = r->len;

	while (len > 0 && (r->body[len - 1] == '\n' || r->body[len - 1] == '\r'))
		len--;
	return (int)len;
}

/* Reads a whole file. Returns 0 or -errno. */
static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 65536;
			uint8_t *nb = realloc(buf, ncap);
			if (!nb) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = nb;
			cap = ncap;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	*out = buf;
	*out_len = len;
	return 0;
}

int cli_snapshot_inspect_text(const uint8_t *buf, size_t len, char **out, const char **why)
{
	struct snapshot_meta m;
	char *text = NULL;

	if (snapshot_parse(buf, len, &m, why) < 0)
		return -EINVAL;
	/* Consul's ID is term-index-milliseconds. */
	if (asprintf(&text,
		     "ID           %llu-%llu-%llu\n"
		     "Size         %llu\n"
		     "Index        %llu\n"
		     "Term         %llu\n"
		     "Version      %u\n"
		     "Records      %llu\n",
		     (unsigned long long)m.term, (unsigned long long)m.index,
		     (unsigned long long)m.created_ms, (unsigned long long)m.size,
		     (unsigned long long)m.index, (unsigned long long)m.term, SNAPSHOT_VERSION,
		     (unsigned long long)m.records) < 0)
		return -ENOMEM;
	*out = text;
	return 0;
}

static int one_file(int argc, char **argv, const struct args_flag *extra, size_t n_extra,
		    struct args_http *h, const char *usage, const char **file)
{
	int next = cmd_parse_http(argc, argv, extra, n_extra, h, usage);

	if (next < 0)
		return next;
	if (argc - next != 1) {
		fprintf(stderr, "This command takes one argument: <file>\n%s\n", usage);
		return -1;
	}
	*file = argv[next];
	return 0;
}

static int save(int argc, char **argv)
{
	struct args_http h = {0};
	bool stale = false;
	const struct args_flag extra[] = {{"stale", ARGS_BOOL, &stale, NULL}};
	const char *file = NULL, *why;
	struct client_resp r = {0};
	struct snapshot_meta m;
	struct client *c = NULL;
	char err[512], tmp[4096];
	FILE *f = NULL;
	int rc, ret = 1;

	rc = one_file(argc, argv, extra, 1, &h,
		      "Usage: cairn snapshot save [-stale] [-http-addr=host:port] <file>", &file);
	if (rc < 0)
		return rc == -2 ? 0 : 1;
	c = cmd_client(&h);
	if (!c)
		return 1;
	if (client_request(c, "GET", "snapshot", stale ? "stale=" : NULL, NULL, 0, &r, err,
			   sizeof(err)) < 0) {
		fprintf(stderr, "Error saving snapshot: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error saving snapshot: Unexpected response code: %ld (%.*s)\n",
			r.status, trimmed(&r), r.body);
		goto out;
	}
	if (snapshot_parse((const uint8_t *)r.body, r.len, &m, &why) < 0) {
		fprintf(stderr, "Error verifying snapshot: %s\n", why);
		goto out;
	}
	/* Written beside the target and renamed: never a half-written file. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", file) >= sizeof(tmp)) {
		fprintf(stderr, "Error saving snapshot: file name too long\n");
		goto out;
	}
	f = fopen(tmp, "wb");
	if (!f || fwrite(r.body, 1, r.len, f) != r.len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
		fprintf(stderr, "Error writing snapshot file %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		fprintf(stderr, "Error writing snapshot file %s: %s\n", tmp, strerror(errno));
		goto out;
	}
	f = NULL;
	if (rename(tmp, file) != 0) {
		fprintf(stderr, "Error saving snapshot to %s: %s\n", file, strerror(errno));
		goto out;
	}
	printf("Saved and verified snapshot to index %llu\n", (unsigned long long)m.index);
	ret = 0;
out:
	if (f) {
		fclose(f);
		(void)unlink(tmp);
	}
	client_resp_close(&r);
	client_free(c);
	return ret;
}

static int restore(int argc, char **argv)
{
	struct args_http h = {0};
	const char *file = NULL;
	struct client_resp r = {0};
	struct client *c = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;
	char err[512];
	int rc, ret = 1;

	rc = one_file(argc, argv, NULL, 0, &h,
		      "Usage: cairn snapshot restore [-http-addr=host:port] <file>", &file);
	if (rc < 0)
		return rc == -2 ? 0 : 1;
	rc = read_file(file, &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "Error opening snapshot file: %s\n", strerror(-rc));
		return 1;
	}
	c = cmd_client(&h);
	if (!c)
		goto out;
	if (client_request(c, "PUT", "snapshot", NULL, buf, len, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error restoring snapshot: %s\n", err);
		goto out;
	}
	if (r.status != 200) {
		fprintf(stderr, "Error restoring snapshot: Unexpected response code: %ld (%.*s)\n",
			r.status, trimmed(&r), r.body);
		goto out;
	}
	printf("Restored snapshot\n");
	ret = 0;
out:
	free(buf);
	client_resp_close(&r);
	client_free(c);
	return ret;
}

static int inspect(int argc, char **argv)
{
	const char *why = "";
	uint8_t *buf = NULL;
	size_t len = 0;
	char *text = NULL;
	int rc;

	if (argc == 1 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "-help") == 0 ||
			  strcmp(argv[0], "--help") == 0)) {
		printf("Usage: cairn snapshot inspect <file>\n");
		return 0;
	}
	if (argc != 1) {
		fprintf(stderr, "This command takes one argument: <file>\n"
				"Usage: cairn snapshot inspect <file>\n");
		return 1;
	}
	rc = read_file(argv[0], &buf, &len);
	if (rc < 0) {
		fprintf(stderr, "Error opening snapshot file: %s\n", strerror(-rc));
		return 1;
	}
	rc = cli_snapshot_inspect_text(buf, len, &text, &why);
	free(buf);
	if (rc < 0) {
		fprintf(stderr, "Error verifying snapshot: %s\n",
			rc == -ENOMEM ? "out of memory" : why);
		return 1;
	}
	fputs(text, stdout);
	free(text);
	return 0;
}

int cmd_snapshot(int argc, char **argv)
{
	const char *sub = argc > 0 ? argv[0] : NULL;

	if (sub && strcmp(sub, "save") == 0)
		return save(argc - 1, argv + 1);
	if (sub && strcmp(sub, "restore") == 0)
		return restore(argc - 1, argv + 1);
	if (sub && strcmp(sub, "inspect") == 0)
		return inspect(argc - 1, argv + 1);
	fprintf(sub ? stderr : stderr,
		"Usage: cairn snapshot <subcommand> [options] [args]\n\n"
		"Subcommands:\n"
		"    inspect    Displays information about a snapshot file\n"
		"    restore    Restores a snapshot into the cluster\n"
		"    save       Saves a snapshot of the cluster's state to a file\n");
	return 1;
}
