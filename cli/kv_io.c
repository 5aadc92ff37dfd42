/* `cairn kv export|import` (see kv_io.h), as Consul's command/kv/exp and
 * command/kv/imp. */
#include "kv_io.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"
#include "client.h"
#include "commands.h"
#include "output.h"

char *kv_io_quote_flags(const char *json, size_t len)
{
	char *out = malloc(len + len / 4 + 3), *o = out;
	size_t i = 0;

	if (!out)
		return NULL;
	/* every quoted member adds 2 bytes and needs at least 9 ("Flags":N) */
	while (i < len) {
		if (json[i] == '"' && i + 8 <= len && strncasecmp(json + i + 1, "flags\":", 7) == 0) {
			size_t j = i + 8, k;

			while (j < len && (json[j] == ' ' || json[j] == '\t' || json[j] == '\n' ||
					   json[j] == '\r'))
				j++;
			for (k = j; k < len && json[k] >= '0' && json[k] <= '9'; k++)
				;
			if (k > j) {
				memcpy(o, json + i, 8);
				o += 8;
				*o++ = '"';
				memcpy(o, json + j, k - j);
				o += k - j;
				*o++ = '"';
				i = k;
				continue;
			}
		}
		*o++ = json[i++];
	}
	*o = '\0';
	return out;
}

uint64_t kv_io_flags(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		unsigned long long n;

		if (*s < '0' || *s > '9')
			return 0;
		errno = 0;
		n = strtoull(s, &end, 10);
		return *end || errno ? 0 : (uint64_t)n;
	}
	return 0;
}

/* A JSON string as Go's encoding/json writes it (HTML-safe escaping). */
static void put_go_string(FILE *f, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char c = *p;

		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\r') {
			fputs("\\r", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
			fprintf(f, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		} else if (c == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
			fprintf(f, "\\u202%c", p[2] == 0xa8 ? '8' : '9'); /* Go escapes U+2028/9 */
			p += 2;
		} else {
			fputc(c, f);
		}
	}
	fputc('"', f);
}

int kv_io_export_text(const json_t *entries, char **out)
{
	char *buf = NULL;
	size_t size = 0, n = json_is_array(entries) ? json_array_size(entries) : 0;
	FILE *f;
	int rc = 0;

	if (entries && !json_is_array(entries) && !json_is_null(entries))
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	if (n == 0)
		fputs("[]", f);
	else
		fputs("[\n", f);
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(entries, i);
		const json_t *key = json_object_get(e, "Key");
		const json_t *flags = json_object_get(e, "Flags");
		char *val = NULL;
		size_t vlen = 0;
		gnutls_datum_t in, enc = {0};

		if (!json_is_string(key)) {
			rc = -EINVAL;
			break;
		}
		/* Decode then re-encode: the export holds exactly the stored bytes. */
		rc = output_kv_value(json_object_get(e, "Value"), &val, &vlen);
		if (rc < 0)
			break;
		if (vlen > 0) {
			in.data = (unsigned char *)val;
			in.size = (unsigned)vlen;
			if (gnutls_base64_encode2(&in, &enc) < 0) {
				free(val);
				rc = -ENOMEM;
				break;
			}
		}
		fputs("\t{\n\t\t\"key\": ", f);
		put_go_string(f, json_string_value(key));
		fprintf(f, ",\n\t\t\"flags\": %" PRIu64 ",\n\t\t\"value\": \"%.*s\"\n\t}%s\n",
			kv_io_flags(flags),
			(int)enc.size, enc.data ? (const char *)enc.data : "", i + 1 < n ? "," : "");
		gnutls_free(enc.data);
		free(val);
	}
	if (rc == 0 && n > 0)
		fputs("]", f);
	fputc('\n', f);
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

void kv_io_entries_free(struct kv_io_entry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].key);
		free(e[i].value);
	}
	free(e);
}

/* Go's encoding/json matches object keys case-insensitively. */
static json_t *jget_ci(const json_t *o, const char *name)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)o, k, v) if (strcasecmp(k, name) == 0) return v;
	return NULL;
}

int kv_io_import_parse(const char *text, size_t len, const char *prefix,
		       struct kv_io_entry **out, size_t *out_n, char *err, size_t errlen)
{
	json_error_t jerr;
	char *quoted = kv_io_quote_flags(text, len);
	json_t *doc = quoted ? json_loads(quoted, 0, &jerr) : NULL;
	struct kv_io_entry *v = NULL;
	size_t n = 0;
	int rc = 0;

	free(quoted);
	if (!quoted)
		return -ENOMEM;
	if (!doc) {
		snprintf(err, errlen, "Cannot unmarshal data: %s", jerr.text);
		return -EINVAL;
	}
	if (!json_is_array(doc) && !json_is_null(doc)) {
		snprintf(err, errlen, "Cannot unmarshal data: not a JSON array of entries");
		rc = -EINVAL;
		goto out;
	}
	n = json_is_array(doc) ? json_array_size(doc) : 0;
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(doc, i);
		const json_t *key = jget_ci(e, "key"), *flags = jget_ci(e, "flags");
		const json_t *val = jget_ci(e, "value");
		bool pre = prefix && *prefix;
		bool slash = pre && prefix[strlen(prefix) - 1] != '/';

		if (!json_is_object(e) || !json_is_string(key)) {
			snprintf(err, errlen, "Cannot unmarshal data: entry %zu has no string \"key\"", i);
			rc = -EINVAL;
			goto out;
		}
		if (flags && !json_is_null(flags) && kv_io_flags(flags) == 0 &&
		    !(json_is_integer(flags) && json_integer_value(flags) == 0) &&
		    !(json_is_string(flags) && strcmp(json_string_value(flags), "0") == 0)) {
			snprintf(err, errlen,
				 "Cannot unmarshal data: \"flags\" of %s is not an unsigned number",
				 json_string_value(key));
			rc = -EINVAL;
			goto out;
		}
		if ((val && !json_is_null(val) && !json_is_string(val)) ||
		    output_kv_value(val ? val : json_null(), &v[i].value, &v[i].len) < 0) {
			snprintf(err, errlen, "Error base 64 decoding value for key %s",
				 json_string_value(key));
			rc = -EINVAL;
			goto out;
		}
		v[i].flags = kv_io_flags(flags);
		if (asprintf(&v[i].key, "%s%s%s", pre ? prefix : "", slash ? "/" : "",
			     json_string_value(key)) < 0) {
			v[i].key = NULL;
			rc = -ENOMEM;
			goto out;
		}
	}
out:
	json_decref(doc);
	if (rc < 0) {
		kv_io_entries_free(v, n);
		return rc;
	}
	*out = v;
	*out_n = n;
	return 0;
}

/* Reads a whole stream (malloc'd, NUL-terminated). */
static int slurp(FILE *f, char **out, size_t *out_len)
{
	size_t cap = 8192, len = 0;
	char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t got;

		if (cap - len < 2) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				free(buf);
				return -ENOMEM;
			}
			buf = nb;
			cap *= 2;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		return -EIO;
	}
	buf[len] = '\0';
	*out = buf;
	*out_len = len;
	return 0;
}

int kv_io_cmd_export(int argc, char **argv)
{
	static const char usage[] =
	    "Usage: cairn kv export [options] [PREFIX]\n\n"
	    "  Retrieves key-value pairs for the given prefix from the KV store and\n"
	    "  writes a JSON representation to stdout (readable by kv import).\n\n"
	    "Options: -http-addr=host:port -token=T -datacenter=DC";
	struct args_http h = {0};
	struct client_resp r = {0};
	struct client *c = NULL;
	char err[512], *path = NULL, *esc = NULL, *text = NULL;
	const char *prefix = "";
	json_t *doc = NULL;
	int next, ret = 1;

	next = cmd_parse_http(argc, argv, NULL, 0, &h, usage);
	if (next < 0)
		return next == -2 ? 0 : 1;
	if (argc - next > 1) {
		fprintf(stderr, "Too many arguments (expected 1, got %d)\n", argc - next);
		return 1;
	}
	if (argc - next == 1)
		prefix = argv[next];
	if (*prefix == '/')
		prefix++;
	c = cmd_client(&h);
	if (!c)
		return 1;
	esc = client_escape_key(prefix);
	if (!esc || asprintf(&path, "kv/%s", esc) < 0) {
		path = NULL;
		fprintf(stderr, "Error! Out of memory\n");
		goto out;
	}
	if (client_request(c, "GET", path, "recurse", NULL, 0, &r, err, sizeof(err)) < 0) {
		fprintf(stderr, "Error querying Cairn agent: %s\n", err);
		goto out;
	}
	if (r.status != 200 && r.status != 404) {
		fprintf(stderr, "Error querying Cairn agent: Unexpected response code: %ld (%s)\n",
			r.status, r.body);
		goto out;
	}
	if (r.status == 200) {
		char *q = kv_io_quote_flags(r.body, r.len);

		doc = q ? json_loads(q, 0, NULL) : NULL;
		free(q);
	}
	if (r.status == 200 && !doc) {
		fprintf(stderr, "Error querying Cairn agent: malformed answer\n");
		goto out;
	}
	if (kv_io_export_text(doc, &text) < 0) {
		fprintf(stderr, "Error exporting: malformed answer\n");
		goto out;
	}
	fputs(text, stdout);
	ret = 0;
out:
	free(text);
	json_decref(doc);
	client_resp_close(&r);
	free(path);
	free(esc);
	client_free(c);
	return ret;
}

/* The DATA argument as Consul's dataFromArgs: @file, "-" for stdin, else
 * the text itself. */
static int import_data(const char *arg, char **out, size_t *out_len)
{
	FILE *f;
	int rc;

	if (arg[0] == '@') {
		f = fopen(arg + 1, "rb");
		if (!f) {
			fprintf(stderr, "Error! Failed to read file: %s\n", strerror(errno));
			return -errno;
		}
		rc = slurp(f, out, out_len);
		fclose(f);
	} else if (strcmp(arg, "-") == 0) {
		rc = slurp(stdin, out, out_len);
	} else {
		*out = strdup(arg);
		rc = *out ? 0 : -ENOMEM;
		if (rc == 0)
			*out_len = strlen(arg);
	}
	if (rc < 0)
		fprintf(stderr, "Error! Failed to read the data: %s\n", strerror(-rc));
	return rc;
}

int kv_io_cmd_import(int argc, char **argv)
{
	static const char usage[] =
	    "Usage: cairn kv import [options] [DATA|@file|-]\n\n"
	    "  Imports key-value pairs to the KV store from the JSON written by\n"
	    "  kv export. -prefix=P puts every key under P.\n\n"
	    "Options: -prefix=P -http-addr=host:port -token=T -datacenter=DC";
	const char *prefix = NULL;
	struct args_flag extra[] = {{"prefix", ARGS_STR, &prefix, NULL}};
	struct args_http h = {0};
	struct kv_io_entry *ents = NULL;
	struct client *c = NULL;
	char err[512], *data = NULL;
	size_t n = 0, len = 0;
	int next, ret = 1;

	next = cmd_parse_http(argc, argv, extra, 1, &h, usage);
	if (next < 0)
		return next == -2 ? 0 : 1;
	if (argc - next == 0) {
		fprintf(stderr, "Error! Missing DATA argument\n");
		return 1;
	}
	if (argc - next > 1) {
		fprintf(stderr, "Error! Too many arguments (expected 1, got %d)\n", argc - next);
		return 1;
	}
	if (!argv[next][0]) {
		fprintf(stderr, "Error! Empty DATA argument\n");
		return 1;
	}
	if (import_data(argv[next], &data, &len) < 0)
		return 1;
	if (kv_io_import_parse(data, len, prefix, &ents, &n, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	c = cmd_client(&h);
	if (!c)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct client_resp r = {0};
		char query[48] = "", *esc = client_escape_key(ents[i].key), *path = NULL;
		int rc = -ENOMEM;

		if (ents[i].flags)
			snprintf(query, sizeof(query), "flags=%" PRIu64, ents[i].flags);
		snprintf(err, sizeof(err), "out of memory");
		if (esc && asprintf(&path, "kv/%s", esc) >= 0)
			rc = client_request(c, "PUT", path, query, ents[i].value, ents[i].len, &r,
					    err, sizeof(err));
		else
			path = NULL;
		free(esc);
		free(path);
		if (rc == 0 && (r.status != 200 || strncmp(r.body, "true", 4) != 0)) {
			snprintf(err, sizeof(err), "Unexpected response code: %ld (%s)", r.status,
				 r.body);
			rc = -EIO;
		}
		client_resp_close(&r);
		if (rc < 0) {
			fprintf(stderr, "Error! Failed writing data for key %s: %s\n", ents[i].key,
				err);
			goto out;
		}
		printf("Imported: %s\n", ents[i].key);
	}
	ret = 0;
out:
	kv_io_entries_free(ents, n);
	free(data);
	client_free(c);
	return ret;
}
