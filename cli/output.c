/* Pure formatting of API answers for the CLI (see output.h). */
#include "output.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_io.h"

int output_kv_value(const json_t *value, char **out, size_t *out_len)
{
	gnutls_datum_t in, dec = {0};
	const char *s;
	char *buf;

	if (json_is_null(value) || (json_is_string(value) && json_string_length(value) == 0)) {
		buf = calloc(1, 1);
		if (!buf)
			return -ENOMEM;
		*out = buf;
		*out_len = 0;
		return 0;
	}
	if (!json_is_string(value))
		return -EINVAL;
	s = json_string_value(value);
	in.data = (unsigned char *)(uintptr_t)s;
	in.size = (unsigned)json_string_length(value);
	if (gnutls_base64_decode2(&in, &dec) < 0)
		return -EINVAL;
	buf = malloc((size_t)dec.size + 1);
	if (!buf) {
		gnutls_free(dec.data);
		return -ENOMEM;
	}
	memcpy(buf, dec.data, dec.size);
	buf[dec.size] = '\0';
	*out_len = dec.size;
	gnutls_free(dec.data);
	*out = buf;
	return 0;
}

static uint64_t get_u64(const json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v)
							       : 0;
}

static const char *get_str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static int kv_entry(FILE *f, const json_t *e, bool recurse, bool detailed)
{
	char *val = NULL;
	size_t len = 0;
	int rc;

	if (!json_is_object(e) || !json_is_string(json_object_get(e, "Key")))
		return -EINVAL;
	rc = output_kv_value(json_object_get(e, "Value"), &val, &len);
	if (rc < 0)
		return rc;
	if (detailed) {
		const char *session = get_str(e, "Session");

		/* Go tabwriter with padding 6 after the widest label (11). */
		fprintf(f, "%-17s%" PRIu64 "\n", "CreateIndex", get_u64(e, "CreateIndex"));
		fprintf(f, "%-17s%" PRIu64 "\n", "Flags", kv_io_flags(json_object_get(e, "Flags")));
		fprintf(f, "%-17s%s\n", "Key", get_str(e, "Key"));
		fprintf(f, "%-17s%" PRIu64 "\n", "LockIndex", get_u64(e, "LockIndex"));
		fprintf(f, "%-17s%" PRIu64 "\n", "ModifyIndex", get_u64(e, "ModifyIndex"));
		fprintf(f, "%-17s%s\n", "Session", *session ? session : "-");
		fprintf(f, "%-17s", "Value");
		fwrite(val, 1, len, f);
		fputc('\n', f);
	} else if (recurse) {
		fprintf(f, "%s:", get_str(e, "Key"));
		fwrite(val, 1, len, f);
		fputc('\n', f);
	} else {
		fwrite(val, 1, len, f);
		fputc('\n', f);
	}
	free(val);
	return 0;
}

int output_kv(const json_t *entries, bool recurse, bool detailed, char **out)
{
	char *buf = NULL;
	size_t size = 0;
	size_t i;
	json_t *e;
	FILE *f;
	int rc = 0;

	if (!json_is_array(entries))
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	json_array_foreach(entries, i, e)
	{
		if (!recurse && i > 0)
			break;
		if (detailed && i > 0)
			fputc('\n', f);
		rc = kv_entry(f, e, recurse, detailed);
		if (rc < 0)
			break;
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

int output_kv_keys(const json_t *keys, char **out)
{
	char *buf = NULL;
	size_t size = 0, i;
	json_t *k;
	FILE *f;
	int rc = 0;

	if (!json_is_array(keys))
		return -EINVAL;
	f = open_memstream(&buf, &size);
	if (!f)
		return -ENOMEM;
	json_array_foreach(keys, i, k)
	{
		if (!json_is_string(k)) {
			rc = -EINVAL;
			break;
		}
		fprintf(f, "%s\n", json_string_value(k));
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

enum { COL_NODE, COL_ADDR, COL_STATUS, COL_TYPE, COL_BUILD, COL_PROTO, COL_DC, COL_SEG, NCOLS };

static const char *const headers[NCOLS] = {"Node",  "Address",	"Status", "Type",
					   "Build", "Protocol", "DC",	  "Segment"};
static const char *const headers_detailed[4] = {"Node", "Address", "Status", "Tags"};

/* Serf member states, as /v1/agent/members reports them. */
static const char *status_name(json_int_t s)
{
	switch (s) {
	case 0:
		return "none";
	case 1:
		return "alive";
	case 2:
		return "leaving";
	case 3:
		return "left";
	case 4:
		return "failed";
	default:
		return "unknown";
	}
}

static int cmp_by_name(const void *a, const void *b)
{
	const json_t *const *x = a;
	const json_t *const *y = b;

	return strcmp(get_str(*x, "Name"), get_str(*y, "Name"));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Formats the cells of one member into cells[] (each malloc'd). */
static int member_cells(const json_t *m, bool detailed, char **cells)
{
	json_t *tags = json_object_get(m, "Tags");
	const char *addr = get_str(m, "Addr");
	const char *role = json_string_value(json_object_get(tags, "role"));
	const char *build = json_string_value(json_object_get(tags, "build"));
	const char *seg = json_string_value(json_object_get(tags, "segment"));
	const char *type = "unknown";
	json_int_t port = json_integer_value(json_object_get(m, "Port"));
	int n = 0;

	if (!json_is_object(m))
		return -EINVAL;
	if (asprintf(&cells[COL_NODE], "%s", get_str(m, "Name")) < 0)
		return -ENOMEM;
	if (strchr(addr, ':'))
		n = asprintf(&cells[COL_ADDR], "[%s]:%lld", addr, (long long)port);
	else
		n = asprintf(&cells[COL_ADDR], "%s:%lld", addr, (long long)port);
	if (n < 0)
		return -ENOMEM;
	if (asprintf(&cells[COL_STATUS], "%s",
		     status_name(json_integer_value(json_object_get(m, "Status")))) < 0)
		return -ENOMEM;
	if (detailed) {
		const char *keys[64];
		size_t nk = 0;
		const char *k;
		json_t *v;
		char *buf = NULL;
		size_t size = 0;
		FILE *f;

		json_object_foreach(tags, k, v)
		{
			if (nk < sizeof(keys) / sizeof(keys[0]))
				keys[nk++] = k;
		}
		qsort(keys, nk, sizeof(keys[0]), cmp_str);
		f = open_memstream(&buf, &size);
		if (!f)
			return -ENOMEM;
		for (size_t i = 0; i < nk; i++)
			fprintf(f, "%s%s=%s", i ? "," : "", keys[i],
				json_string_value(json_object_get(tags, keys[i]))
				    ? json_string_value(json_object_get(tags, keys[i]))
				    : "");
		if (fclose(f) != 0) {
			free(buf);
			return -ENOMEM;
		}
		cells[3] = buf;
		return 0;
	}
	if (role && strcmp(role, "consul") == 0)
		type = "server";
	else if (role && strcmp(role, "node") == 0)
		type = "client";
	if (asprintf(&cells[COL_TYPE], "%s", type) < 0)
		return -ENOMEM;
	if (!build || !*build)
		n = asprintf(&cells[COL_BUILD], "< 0.3");
	else
		n = asprintf(&cells[COL_BUILD], "%.*s", (int)strcspn(build, ":"), build);
	if (n < 0)
		return -ENOMEM;
	n = asprintf(&cells[COL_PROTO], "%s",
		     json_string_value(json_object_get(tags, "vsn"))
			 ? json_string_value(json_object_get(tags, "vsn"))
			 : "");
	if (n < 0)
		return -ENOMEM;
	n = asprintf(&cells[COL_DC], "%s",
		     json_string_value(json_object_get(tags, "dc"))
			 ? json_string_value(json_object_get(tags, "dc"))
			 : "");
	if (n < 0)
		return -ENOMEM;
	if (strcmp(type, "server") == 0)
		seg = "<all>";
	else if (!seg || !*seg)
		seg = "<default>";
	if (asprintf(&cells[COL_SEG], "%s", seg) < 0)
		return -ENOMEM;
	return 0;
}

int output_members(const json_t *members, bool detailed, char **out)
{
	size_t ncols = detailed ? 4 : NCOLS;
	const char *const *hdr = detailed ? headers_detailed : headers;
	size_t nrows, width[NCOLS] = {0};
	const json_t **sorted = NULL;
	char **cells = NULL;
	char *buf = NULL;
	size_t size = 0;
	FILE *f = NULL;
	int rc = 0;

	if (!json_is_array(members))
		return -EINVAL;
	nrows = json_array_size(members);
	sorted = calloc(nrows + 1, sizeof(*sorted));
	cells = calloc((nrows + 1) * NCOLS, sizeof(*cells));
	if (!sorted || !cells) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nrows; i++) {
		sorted[i] = json_array_get(members, i);
		if (!json_is_object(sorted[i])) {
			rc = -EINVAL;
			goto out;
		}
	}
	qsort(sorted, nrows, sizeof(*sorted), cmp_by_name);
	for (size_t c = 0; c < ncols; c++) {
		cells[c] = strdup(hdr[c]);
		if (!cells[c]) {
			rc = -ENOMEM;
			goto out;
		}
	}
	for (size_t r = 0; r < nrows; r++) {
		rc = member_cells(sorted[r], detailed, &cells[(r + 1) * NCOLS]);
		if (rc < 0)
			goto out;
	}
	for (size_t r = 0; r <= nrows; r++)
		for (size_t c = 0; c < ncols; c++)
			if (cells[r * NCOLS + c] && strlen(cells[r * NCOLS + c]) > width[c])
				width[c] = strlen(cells[r * NCOLS + c]);
	f = open_memstream(&buf, &size);
	if (!f) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t r = 0; r <= nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *s = cells[r * NCOLS + c] ? cells[r * NCOLS + c] : "";

			if (c + 1 < ncols)
				fprintf(f, "%-*s  ", (int)width[c], s);
			else
				fprintf(f, "%s\n", s);
		}
	}
	if (fclose(f) != 0)
		rc = -ENOMEM;
	f = NULL;
out:
	if (f)
		fclose(f);
	if (cells)
		for (size_t i = 0; i < (nrows + 1) * NCOLS; i++)
			free(cells[i]);
	free(cells);
	free(sorted);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}
