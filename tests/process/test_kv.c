/* Process test: the KV HTTP API end to end against a real agent, with
 * Consul's status codes, headers and JSON; blocking queries; malformed
 * requests answered with errors while apid keeps running. */
#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/resource.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("kv-node", NULL)

/* Entry i of a KV GET answer (a JSON array of objects). */
static json_t *entry(json_t *arr, size_t i)
{
	ck_assert_msg(json_is_array(arr), "answer is not a JSON array");
	ck_assert_msg(i < json_array_size(arr), "answer has %zu entries, want more than %zu",
		      json_array_size(arr), i);
	return json_array_get(arr, i);
}

static const char *str_field(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	ck_assert_msg(json_is_string(v), "field %s missing or not a string", name);
	return json_string_value(v);
}

static json_int_t int_field(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);
	ck_assert_msg(json_is_integer(v), "field %s missing or not an integer", name);
	return json_integer_value(v);
}

/* PUT path with body; asserts 200 and the JSON literal want ("true" or
 * "false"). */
static void put_expect(const char *path, const char *body, const char *want)
{
	struct http_resp r;

	http_put(&ag, path, body, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, want);
	http_resp_free(&r);
}

static void del_expect(const char *path, const char *want)
{
	struct http_resp r;

	http_delete(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, want);
	http_resp_free(&r);
}

/* GETs one key; returns its JSON array (caller json_decref) and its
 * X-Consul-Index in *out_index. Asserts 200. */
static json_t *get_json(const char *path, uint64_t *out_index)
{
	struct http_resp r;
	json_t *j;

	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	j = http_json(&r);
	ck_assert_msg(j != NULL, "not JSON: [%.300s]", r.body);
	if (out_index)
		*out_index = http_index(&r);
	http_resp_free(&r);
	return j;
}

static void expect_missing(const char *path)
{
	struct http_resp r;

	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 404);
	ck_assert_msg(http_index(&r) > 0, "404 without a non-zero X-Consul-Index:\n%s", r.headers);
	http_resp_free(&r);
}

/* ---- basics ------------------------------------------------------------ */

START_TEST(put_get_roundtrip)
{
	struct http_resp r;
	char v[64];
	json_t *j, *e;
	uint64_t idx;

	REQUIRE_AGENT();
	http_put(&ag, "/v1/kv/kvt/greeting", "hello", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	EXPECT_CTYPE(r, "application/json");
	http_resp_free(&r);

	http_get(&ag, "/v1/kv/kvt/greeting", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_CTYPE(r, "application/json");
	EXPECT_HEADER(r, "X-Consul-KnownLeader", v);
	ck_assert_str_eq(v, "true");
	EXPECT_HEADER(r, "X-Consul-LastContact", v);
	ck_assert_msg(v[0] >= '0' && v[0] <= '9', "X-Consul-LastContact [%s] not a number", v);
	idx = http_index(&r);
	ck_assert_msg(idx > 0, "X-Consul-Index missing or 0:\n%s", r.headers);
	j = http_json(&r);
	ck_assert_msg(j != NULL, "not JSON: [%.300s]", r.body);
	http_resp_free(&r);

	ck_assert_uint_eq(json_array_size(j), 1);
	e = entry(j, 0);
	ck_assert_str_eq(str_field(e, "Key"), "kvt/greeting");
	ck_assert_str_eq(str_field(e, "Value"), "aGVsbG8=");
	ck_assert_int_eq(int_field(e, "Flags"), 0);
	ck_assert_int_eq(int_field(e, "LockIndex"), 0);
	ck_assert_int_gt(int_field(e, "CreateIndex"), 0);
	ck_assert_int_eq(int_field(e, "CreateIndex"), int_field(e, "ModifyIndex"));
	ck_assert_msg(idx >= (uint64_t)int_field(e, "ModifyIndex"),
		      "X-Consul-Index %" PRIu64 " below ModifyIndex %lld", idx,
		      (long long)int_field(e, "ModifyIndex"));
	json_decref(j);

	http_get(&ag, "/v1/kv/kvt/greeting?raw", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "hello");
	http_resp_free(&r);

	/* Overwrite: CreateIndex stays, ModifyIndex grows. */
	{
		json_t *j1 = get_json("/v1/kv/kvt/greeting", NULL);
		json_int_t c1 = int_field(entry(j1, 0), "CreateIndex");
		json_int_t m1 = int_field(entry(j1, 0), "ModifyIndex");
		json_t *j2;

		put_expect("/v1/kv/kvt/greeting", "bye", "true");
		j2 = get_json("/v1/kv/kvt/greeting", NULL);
		ck_assert_int_eq(int_field(entry(j2, 0), "CreateIndex"), c1);
		ck_assert_int_gt(int_field(entry(j2, 0), "ModifyIndex"), m1);
		ck_assert_str_eq(str_field(entry(j2, 0), "Value"), "Ynll");
		json_decref(j1);
		json_decref(j2);
	}
}
END_TEST

START_TEST(empty_value_is_null)
{
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvt/empty", "", "true");
	j = get_json("/v1/kv/kvt/empty", NULL);
	ck_assert_msg(json_is_null(json_object_get(entry(j, 0), "Value")),
		      "empty value must be JSON null");
	json_decref(j);
}
END_TEST

START_TEST(flags)
{
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvt/flagged?flags=42", "x", "true");
	j = get_json("/v1/kv/kvt/flagged", NULL);
	ck_assert_int_eq(int_field(entry(j, 0), "Flags"), 42);
	json_decref(j);
	/* Above 2^53: must not go through a double. */
	put_expect("/v1/kv/kvt/flagged?flags=9007199254740993", "x", "true");
	j = get_json("/v1/kv/kvt/flagged", NULL);
	ck_assert_int_eq(int_field(entry(j, 0), "Flags"), 9007199254740993LL);
	json_decref(j);
	/* Flags are uint64 in Consul: 2^64-1 must come back unsigned (jansson
	 * cannot parse it, so look at the text). */
	put_expect("/v1/kv/kvt/flagged?flags=18446744073709551615", "x", "true");
	{
		struct http_resp r;
		http_get(&ag, "/v1/kv/kvt/flagged", &r);
		EXPECT_STATUS(r, 200);
		ck_assert_msg(strstr(r.body, "\"Flags\":18446744073709551615") ||
				      strstr(r.body, "\"Flags\": 18446744073709551615"),
			      "2^64-1 flags rendered wrongly: %.300s", r.body);
		http_resp_free(&r);
	}
}
END_TEST

START_TEST(keys_separator_recurse)
{
	static const char *const want_keys[] = {"kvk/a/1", "kvk/a/2", "kvk/b", "kvk/c/d/e"};
	static const char *const want_vals[] = {"b25l", "dHdv", "dGhyZWU=", "Zm91cg=="};
	static const char *const want_sep[] = {"kvk/a/", "kvk/b", "kvk/c/"};
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvk/c/d/e", "four", "true");
	put_expect("/v1/kv/kvk/a/2", "two", "true");
	put_expect("/v1/kv/kvk/b", "three", "true");
	put_expect("/v1/kv/kvk/a/1", "one", "true");
	put_expect("/v1/kv/kvkx", "outside", "true");

	j = get_json("/v1/kv/kvk/?keys", NULL);
	ck_assert_msg(json_is_array(j), "keys answer not an array");
	ck_assert_uint_eq(json_array_size(j), 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert_str_eq(json_string_value(json_array_get(j, i)), want_keys[i]);
	json_decref(j);

	j = get_json("/v1/kv/kvk/?keys&separator=/", NULL);
	ck_assert_uint_eq(json_array_size(j), 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(json_string_value(json_array_get(j, i)), want_sep[i]);
	json_decref(j);

	j = get_json("/v1/kv/kvk/?recurse", NULL);
	ck_assert_uint_eq(json_array_size(j), 4);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_str_eq(str_field(entry(j, i), "Key"), want_keys[i]);
		ck_assert_str_eq(str_field(entry(j, i), "Value"), want_vals[i]);
	}
	json_decref(j);

	/* A prefix without the slash also matches kvkx. */
	j = get_json("/v1/kv/kvk?recurse=true", NULL);
	ck_assert_uint_eq(json_array_size(j), 5);
	ck_assert_str_eq(str_field(entry(j, 4), "Key"), "kvkx");
	json_decref(j);

	/* keys on an empty prefix: 404 as Consul. */
	expect_missing("/v1/kv/kvk-none/?keys");
	expect_missing("/v1/kv/kvk-none/?recurse");
}
END_TEST

START_TEST(cas)
{
	json_t *j;
	json_int_t m1, m2;
	char path[128];

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvc/x?cas=0", "first", "true");
	put_expect("/v1/kv/kvc/x?cas=0", "second", "false");
	j = get_json("/v1/kv/kvc/x", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "Zmlyc3Q=");
	m1 = int_field(entry(j, 0), "ModifyIndex");
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/kv/kvc/x?cas=%lld", (long long)m1);
	put_expect(path, "third", "true");
	j = get_json("/v1/kv/kvc/x", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "dGhpcmQ=");
	m2 = int_field(entry(j, 0), "ModifyIndex");
	ck_assert_int_gt(m2, m1);
	json_decref(j);

	/* Stale index: refused, value unchanged. */
	put_expect(path, "fourth", "false");
	j = get_json("/v1/kv/kvc/x", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "dGhpcmQ=");
	ck_assert_int_eq(int_field(entry(j, 0), "ModifyIndex"), m2);
	json_decref(j);

	/* cas with a non-zero index on a missing key: refused, nothing made. */
	put_expect("/v1/kv/kvc/missing?cas=5", "x", "false");
	expect_missing("/v1/kv/kvc/missing");
}
END_TEST

START_TEST(delete_single_recurse_cas)
{
	json_t *j;
	json_int_t m;
	char path[128];

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvd/a", "1", "true");
	put_expect("/v1/kv/kvd/b/c", "2", "true");
	put_expect("/v1/kv/kvd/b/d", "3", "true");
	put_expect("/v1/kv/kvd/bz", "4", "true");

	del_expect("/v1/kv/kvd/a", "true");
	expect_missing("/v1/kv/kvd/a");
	/* Deleting a missing key is still true in Consul. */
	del_expect("/v1/kv/kvd/a", "true");

	del_expect("/v1/kv/kvd/b/?recurse", "true");
	expect_missing("/v1/kv/kvd/b/c");
	expect_missing("/v1/kv/kvd/b/d");
	j = get_json("/v1/kv/kvd/bz", NULL); /* outside the prefix "kvd/b/" */
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "NA==");
	m = int_field(entry(j, 0), "ModifyIndex");
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/kv/kvd/bz?cas=%lld", (long long)(m + 1000));
	del_expect(path, "false");
	j = get_json("/v1/kv/kvd/bz", NULL);
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/kv/kvd/bz?cas=%lld", (long long)m);
	del_expect(path, "true");
	expect_missing("/v1/kv/kvd/bz");
}
END_TEST

START_TEST(not_found_headers)
{
	struct http_resp r;
	char v[64];

	REQUIRE_AGENT();
	http_get(&ag, "/v1/kv/kvt/never-written", &r);
	EXPECT_STATUS(r, 404);
	ck_assert_msg(http_index(&r) > 0, "404 without a non-zero X-Consul-Index:\n%s", r.headers);
	EXPECT_HEADER(r, "X-Consul-KnownLeader", v);
	ck_assert_str_eq(v, "true");
	EXPECT_HEADER(r, "X-Consul-LastContact", v);
	ck_assert_uint_eq(r.body_len, 0);
	http_resp_free(&r);
}
END_TEST

START_TEST(percent_encoded_key)
{
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/pe%2Fkey%20sp", "enc", "true");
	j = get_json("/v1/kv/pe/key%20sp", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Key"), "pe/key sp");
	json_decref(j);
	j = get_json("/v1/kv/pe%2Fkey%20sp", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "ZW5j");
	json_decref(j);
}
END_TEST

START_TEST(consistency_params_accepted)
{
	static const char *const paths[] = {
	    "/v1/kv/kvt/cm?stale",      "/v1/kv/kvt/cm?stale=",       "/v1/kv/kvt/cm?consistent",
	    "/v1/kv/kvt/cm?dc=dc1",     "/v1/kv/kvt/cm?recurse=1",    "/v1/kv/kvt/cm?keys=True",
	    "/v1/kv/kvt/cm?index=1&wait=10ms",
	};

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvt/cm", "x", "true");
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct http_resp r;
		http_get(&ag, paths[i], &r);
		ck_assert_msg(r.status == 200, "GET %s: status %ld body [%.200s]", paths[i],
			      r.status, r.body);
		ck_assert_msg(http_index(&r) > 0, "GET %s: no X-Consul-Index", paths[i]);
		http_resp_free(&r);
	}
}
END_TEST

/* ---- encodings and transports ----------------------------------------- */

START_TEST(binary_value_roundtrip)
{
	uint8_t val[256];
	char b64[400];
	struct http_resp r;
	json_t *j;

	REQUIRE_AGENT();
	for (size_t i = 0; i < sizeof(val); i++)
		val[i] = (uint8_t)(255 - i); /* includes NUL and non-UTF-8 bytes */
	http_request(&ag, "PUT", "/v1/kv/kvbin/all-bytes", val, sizeof(val), &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_get(&ag, "/v1/kv/kvbin/all-bytes?raw", &r);
	EXPECT_STATUS(r, 200);
	ck_assert_uint_eq(r.body_len, sizeof(val));
	ck_assert_int_eq(memcmp(r.body, val, sizeof(val)), 0);
	http_resp_free(&r);
	harness_base64(val, sizeof(val), b64);
	j = get_json("/v1/kv/kvbin/all-bytes", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), b64);
	json_decref(j);
}
END_TEST

START_TEST(utf8_key)
{
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvu/%D0%BA%D0%BB%D1%8E%D1%87", "u", "true");
	j = get_json("/v1/kv/kvu/?recurse", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Key"), "kvu/\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87");
	json_decref(j);
}
END_TEST

START_TEST(root_keys_listing)
{
	json_t *j;
	bool found = false;
	size_t i;
	json_t *k;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvroot-marker", "m", "true");
	j = get_json("/v1/kv/?keys", NULL);
	ck_assert_msg(json_is_array(j), "root keys not an array");
	json_array_foreach(j, i, k)
	{
		if (json_is_string(k) && strcmp(json_string_value(k), "kvroot-marker") == 0)
			found = true;
	}
	ck_assert_msg(found, "kvroot-marker missing from GET /v1/kv/?keys");
	json_decref(j);
}
END_TEST

START_TEST(chunked_put)
{
	size_t n = 20000, big = 600 * 1024;
	char *body = malloc(big);
	struct http_conn *hc;
	struct http_opts o = {.chunked = true};
	struct http_resp r;

	REQUIRE_AGENT();
	ck_assert_ptr_nonnull(body);
	for (size_t i = 0; i < big; i++)
		body[i] = (char)('a' + i % 26);
	hc = http_conn_new(&ag);
	ck_assert_ptr_nonnull(hc);
	http_conn_request(hc, "PUT", "/v1/kv/kvch/small", body, n, &o, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_get(&ag, "/v1/kv/kvch/small?raw", &r);
	EXPECT_STATUS(r, 200);
	ck_assert_uint_eq(r.body_len, n);
	ck_assert_int_eq(memcmp(r.body, body, n), 0);
	http_resp_free(&r);

	/* Over the limit without a Content-Length: the server must count. */
	http_conn_request(hc, "PUT", "/v1/kv/kvch/big", body, big, &o, &r);
	ck_assert_msg(r.status == 413 || (r.status == 0 && strstr(r.err, "Send failure")),
		      "chunked 600 KiB PUT: status %ld (%s), want 413", r.status, r.err);
	http_resp_free(&r);
	http_conn_free(hc);
	free(body);
	expect_missing("/v1/kv/kvch/big");
}
END_TEST

START_TEST(keep_alive_across_errors)
{
	struct http_conn *hc;
	long connections = 0;
	static const struct {
		const char *method, *path, *body;
		long status;
	} steps[] = {
	    {"PUT", "/v1/kv/kvka/a", "1", 200},   {"GET", "/v1/kv/kvka/a", NULL, 200},
	    {"GET", "/v1/kv/kvka/none", NULL, 404}, {"GET", "/v1/kv/kvka/a?index=x", NULL, 400},
	    {"POST", "/v1/kv/kvka/a", "2", 405},   {"GET", "/v1/nope", NULL, 404},
	    {"DELETE", "/v1/kv/kvka/a", NULL, 200}, {"GET", "/v1/kv/kvka/a", NULL, 404},
	    {"GET", "/v1/status/leader", NULL, 200},
	};

	REQUIRE_AGENT();
	hc = http_conn_new(&ag);
	ck_assert_ptr_nonnull(hc);
	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
			struct http_resp r;
			http_conn_request(hc, steps[i].method, steps[i].path, steps[i].body,
					  steps[i].body ? strlen(steps[i].body) : 0, NULL, &r);
			ck_assert_msg(r.status == steps[i].status,
				      "round %d: %s %s: status %ld (%s), want %ld", round,
				      steps[i].method, steps[i].path, r.status, r.err,
				      steps[i].status);
			connections += r.new_connections;
			http_resp_free(&r);
		}
	}
	http_conn_free(hc);
	/* 27 requests, including error answers, on one keep-alive connection. */
	ck_assert_msg(connections == 1, "%ld connections for 27 keep-alive requests, want 1",
		      connections);
}
END_TEST

/* Several threads increment one counter with check-and-set: every
 * successful cas must be exactly one increment (no lost update, no two
 * winners for the same ModifyIndex). */
#define CAS_THREADS 4
#define CAS_TRIES 40

/* Decodes a base64 value holding a decimal number; -1 on anything else. */
static long b64_number(const char *b64)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char out[64];
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	if (!b64)
		return -1;
	for (const char *p = b64; *p && *p != '=' && o + 1 < sizeof(out); p++) {
		const char *at = strchr(tbl, *p);
		if (!at)
			return -1;
		acc = (acc << 6) | (uint32_t)(at - tbl);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return o ? strtol(out, NULL, 10) : -1;
}

struct cas_worker {
	int wins;
	int errors;
};

static void *cas_run(void *arg)
{
	struct cas_worker *w = arg;

	for (int t = 0; t < CAS_TRIES; t++) {
		struct http_resp r;
		json_t *j;
		json_int_t mi;
		char path[128], val[32];
		long n;

		http_get(&ag, "/v1/kv/kvcas/counter", &r);
		if (r.status != 200) {
			w->errors++;
			http_resp_free(&r);
			continue;
		}
		j = http_json(&r);
		http_resp_free(&r);
		mi = json_integer_value(json_object_get(json_array_get(j, 0), "ModifyIndex"));
		n = b64_number(json_string_value(json_object_get(json_array_get(j, 0), "Value")));
		json_decref(j);
		snprintf(path, sizeof(path), "/v1/kv/kvcas/counter?cas=%lld", (long long)mi);
		snprintf(val, sizeof(val), "%ld", n + 1);
		http_put(&ag, path, val, &r);
		if (r.status == 200 && strcmp(r.body, "true") == 0)
			w->wins++;
		else if (r.status != 200 || strcmp(r.body, "false") != 0)
			w->errors++;
		http_resp_free(&r);
	}
	return NULL;
}

START_TEST(concurrent_cas_counter)
{
	struct cas_worker w[CAS_THREADS];
	pthread_t th[CAS_THREADS];
	int wins = 0, errors = 0;
	struct http_resp r;

	REQUIRE_AGENT();
	memset(w, 0, sizeof(w));
	put_expect("/v1/kv/kvcas/counter", "0", "true");
	for (int i = 0; i < CAS_THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, cas_run, &w[i]), 0);
	for (int i = 0; i < CAS_THREADS; i++) {
		pthread_join(th[i], NULL);
		wins += w[i].wins;
		errors += w[i].errors;
	}
	ck_assert_int_eq(errors, 0);
	ck_assert_int_gt(wins, 0);
	/* Value and ModifyIndex come from one read: each win adds exactly 1. */
	http_get(&ag, "/v1/kv/kvcas/counter?raw", &r);
	EXPECT_STATUS(r, 200);
	ck_assert_msg(strtol(r.body, NULL, 10) == wins, "counter %s after %d successful cas",
		      r.body, wins);
	http_resp_free(&r);
}
END_TEST

START_TEST(other_datacenter_is_an_error)
{
	struct http_resp r;

	REQUIRE_AGENT();
	/* Consul: 500 "No path to datacenter" for an unknown dc. */
	http_get(&ag, "/v1/kv/kvt/greeting?dc=nowhere", &r);
	ck_assert_msg(r.status == 500, "GET ?dc=nowhere: status %ld, want 500 (Consul's \"No path "
				       "to datacenter\"); body [%.200s]",
		      r.status, r.body);
	ck_assert_msg(r.body_len > 0, "no reason given");
	http_resp_free(&r);
	http_put(&ag, "/v1/kv/kvt/elsewhere?dc=nowhere", "x", &r);
	ck_assert_msg(r.status == 500, "PUT ?dc=nowhere: status %ld, want 500", r.status);
	http_resp_free(&r);
	expect_missing("/v1/kv/kvt/elsewhere");
}
END_TEST

/* Large answers: eight values at the 512 KiB limit listed at once (a
 * multi-megabyte JSON answer and RPC reply), and two thousand small keys. */
START_TEST(large_listings)
{
	size_t max = 512 * 1024;
	char *val = malloc(max);
	char *b64 = malloc(4 * ((max + 2) / 3) + 1);
	struct http_resp r;
	json_t *j;
	size_t i;
	json_t *e;

	REQUIRE_AGENT();
	ck_assert_ptr_nonnull(val);
	ck_assert_ptr_nonnull(b64);
	for (int k = 0; k < 8; k++) {
		char path[64];
		memset(val, 'A' + k, max);
		snprintf(path, sizeof(path), "/v1/kv/kvbig/%d", k);
		http_request(&ag, "PUT", path, val, max, &r);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
	}
	j = get_json("/v1/kv/kvbig/?recurse", NULL);
	ck_assert_uint_eq(json_array_size(j), 8);
	json_array_foreach(j, i, e)
	{
		memset(val, 'A' + (int)i, max);
		harness_base64(val, max, b64);
		ck_assert_msg(strcmp(str_field(e, "Value"), b64) == 0, "kvbig/%zu value differs", i);
	}
	json_decref(j);
	free(val);
	free(b64);

	for (int k = 0; k < 2000; k++) {
		char path[64];
		snprintf(path, sizeof(path), "/v1/kv/kvmany/%05d", k);
		http_put(&ag, path, "x", &r);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
	}
	j = get_json("/v1/kv/kvmany/?keys", NULL);
	ck_assert_uint_eq(json_array_size(j), 2000);
	ck_assert_str_eq(json_string_value(json_array_get(j, 1999)), "kvmany/01999");
	json_decref(j);
	j = get_json("/v1/kv/kvmany/?recurse", NULL);
	ck_assert_uint_eq(json_array_size(j), 2000);
	json_decref(j);
	http_delete(&ag, "/v1/kv/kvmany/?recurse", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	expect_missing("/v1/kv/kvmany/?keys");
}
END_TEST

/* Corner cases of Consul's KV semantics. */
START_TEST(kv_edge_semantics)
{
	json_t *j;

	REQUIRE_AGENT();
	/* A "folder" key equal to the prefix is listed too. */
	put_expect("/v1/kv/kve/", "", "true");
	put_expect("/v1/kv/kve/a", "1", "true");
	put_expect("/v1/kv/kve/b/c", "2", "true");
	j = get_json("/v1/kv/kve/?keys&separator=/", NULL);
	ck_assert_uint_eq(json_array_size(j), 3);
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "kve/");
	ck_assert_str_eq(json_string_value(json_array_get(j, 1)), "kve/a");
	ck_assert_str_eq(json_string_value(json_array_get(j, 2)), "kve/b/");
	json_decref(j);
	/* Without the trailing slash everything rolls up into "kve/". */
	j = get_json("/v1/kv/kve?keys&separator=/", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "kve/");
	json_decref(j);
	/* A separator longer than one byte. */
	put_expect("/v1/kv/kvsep--x--y", "1", "true");
	put_expect("/v1/kv/kvsep--z", "1", "true");
	j = get_json("/v1/kv/kvsep?keys&separator=--", NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)), "kvsep--");
	json_decref(j);

	/* A PUT without ?flags resets the flags to 0, as Consul does. */
	put_expect("/v1/kv/kve/flags?flags=5", "x", "true");
	put_expect("/v1/kv/kve/flags", "y", "true");
	j = get_json("/v1/kv/kve/flags", NULL);
	ck_assert_int_eq(int_field(entry(j, 0), "Flags"), 0);
	json_decref(j);

	/* Delete with cas on a missing key: Consul answers true. */
	del_expect("/v1/kv/kve/never?cas=7", "true");
	/* cas=0 works again once the key is deleted. */
	del_expect("/v1/kv/kve/a", "true");
	put_expect("/v1/kv/kve/a?cas=0", "again", "true");
	j = get_json("/v1/kv/kve/a", NULL);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "YWdhaW4=");
	ck_assert_int_eq(int_field(entry(j, 0), "CreateIndex"), int_field(entry(j, 0), "ModifyIndex"));
	json_decref(j);
}
END_TEST

/* ---- limits and malformed requests ----------------------------------- */

START_TEST(value_size_limit)
{
	size_t big = 600 * 1024, max = 512 * 1024;
	char *body = malloc(big);
	struct http_resp r;
	pid_t apid = harness_daemon_pid(&ag, "apid");

	REQUIRE_AGENT();
	ck_assert_ptr_nonnull(body);
	memset(body, 'v', big);
	http_request(&ag, "PUT", "/v1/kv/kvl/big", body, big, &r);
	EXPECT_STATUS(r, 413);
	ck_assert_msg(r.body_len > 0, "413 without a message");
	http_resp_free(&r);
	expect_missing("/v1/kv/kvl/big");

	/* Exactly the limit is accepted. */
	http_request(&ag, "PUT", "/v1/kv/kvl/max", body, max, &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	http_get(&ag, "/v1/kv/kvl/max?raw", &r);
	EXPECT_STATUS(r, 200);
	ck_assert_uint_eq(r.body_len, max);
	ck_assert_int_eq(memcmp(r.body, body, max), 0);
	http_resp_free(&r);
	free(body);
	ck_assert_msg(apid > 0 && harness_daemon_pid(&ag, "apid") == apid, "apid restarted");
}
END_TEST

/* 400 with a plain-text reason, nothing written. */
static void expect_400(const char *method, const char *path, const char *body)
{
	struct http_resp r;

	http_request(&ag, method, path, body, body ? strlen(body) : 0, &r);
	ck_assert_msg(r.status == 400, "%s %s: status %ld, want 400; body [%.200s]", method, path,
		      r.status, r.body);
	ck_assert_msg(r.body_len > 0, "%s %s: 400 without a reason", method, path);
	EXPECT_CTYPE(r, "text/plain");
	http_resp_free(&r);
}

START_TEST(bad_query_numbers)
{
	pid_t apid;

	REQUIRE_AGENT();
	apid = harness_daemon_pid(&ag, "apid");
	put_expect("/v1/kv/kvm/exists", "x", "true");
	expect_400("GET", "/v1/kv/kvm/exists?index=abc", NULL);
	expect_400("GET", "/v1/kv/kvm/exists?index=-1", NULL);
	expect_400("GET", "/v1/kv/kvm/exists?index=1&wait=abc", NULL);
	expect_400("GET", "/v1/kv/kvm/exists?index=1&wait=5parsecs", NULL);
	expect_400("PUT", "/v1/kv/kvm/bad-flags?flags=abc", "x");
	expect_400("PUT", "/v1/kv/kvm/bad-flags?flags=99999999999999999999999", "x");
	expect_400("PUT", "/v1/kv/kvm/bad-cas?cas=abc", "x");
	expect_400("DELETE", "/v1/kv/kvm/exists?cas=1x", NULL);
	expect_400("DELETE", "/v1/kv/kvm/exists?recurse&cas=1", NULL); /* conflicting flags */
	expect_400("PUT", "/v1/kv/", "x");                               /* missing key name */
	expect_400("GET", "/v1/kv/", NULL);
	expect_missing("/v1/kv/kvm/bad-flags");
	expect_missing("/v1/kv/kvm/bad-cas");
	{
		json_t *j = get_json("/v1/kv/kvm/exists", NULL); /* survived the bad DELETE */
		json_decref(j);
	}
	ck_assert_msg(apid > 0 && harness_daemon_pid(&ag, "apid") == apid, "apid restarted");
}
END_TEST

START_TEST(wrong_methods)
{
	static const char *const methods[] = {"POST", "PATCH", "BREW", "TRACE"};
	pid_t apid;

	REQUIRE_AGENT();
	apid = harness_daemon_pid(&ag, "apid");
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		struct http_resp r;
		http_request(&ag, methods[i], "/v1/kv/kvm/method", "x", 1, &r);
		ck_assert_msg(r.status == 405, "%s /v1/kv/...: status %ld, want 405", methods[i],
			      r.status);
		http_resp_free(&r);
	}
	{
		struct http_resp r;
		http_request(&ag, "PUT", "/v1/status/leader", "x", 1, &r);
		EXPECT_STATUS(r, 405);
		http_resp_free(&r);
		http_request(&ag, "DELETE", "/v1/agent/self", NULL, 0, &r);
		EXPECT_STATUS(r, 405);
		http_resp_free(&r);
	}
	expect_missing("/v1/kv/kvm/method");
	ck_assert_msg(apid > 0 && harness_daemon_pid(&ag, "apid") == apid, "apid restarted");
}
END_TEST

START_TEST(unknown_paths)
{
	static const char *const paths[] = {"/v1/nope", "/v2/kv/x", "/", "/v1/status/nope",
					    "/v1/agent/nope"};

	REQUIRE_AGENT();
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		struct http_resp r;
		http_get(&ag, paths[i], &r);
		ck_assert_msg(r.status == 404, "GET %s: status %ld, want 404", paths[i], r.status);
		http_resp_free(&r);
	}
}
END_TEST

/* ---- blocking queries -------------------------------------------------- */

struct blocker {
	char path[256];
	struct http_resp r;
	uint64_t elapsed_ms;
};

static void *blocker_run(void *arg)
{
	struct blocker *b = arg;
	uint64_t t0 = harness_now_ms();

	http_get(&ag, b->path, &b->r);
	b->elapsed_ms = harness_now_ms() - t0;
	return NULL;
}

START_TEST(blocking_wakes_on_write)
{
	struct blocker b;
	pthread_t th;
	uint64_t idx;
	json_t *j;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	put_expect("/v1/kv/kvb/w", "v1", "true");
	j = get_json("/v1/kv/kvb/w", &idx);
	json_decref(j);
	ck_assert_uint_gt(idx, 0);
	snprintf(b.path, sizeof(b.path), "/v1/kv/kvb/w?index=%" PRIu64 "&wait=5s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocker_run, &b), 0);
	/* Give the query a moment to park; the assertions below hold either
	 * way (a write before it parks makes it answer at once). */
	harness_pause_ms(300);
	put_expect("/v1/kv/kvb/w", "v2", "true");
	pthread_join(th, NULL);

	EXPECT_STATUS(b.r, 200);
	ck_assert_msg(http_index(&b.r) > idx, "index %" PRIu64 " did not pass %" PRIu64,
		      http_index(&b.r), idx);
	j = http_json(&b.r);
	ck_assert_msg(j != NULL, "not JSON: [%.300s]", b.r.body);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "djI=");
	ck_assert_uint_eq((uint64_t)int_field(entry(j, 0), "ModifyIndex"), http_index(&b.r));
	json_decref(j);
	http_resp_free(&b.r);
}
END_TEST

START_TEST(blocking_times_out_same_index)
{
	struct blocker b;
	uint64_t idx;
	json_t *j;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	put_expect("/v1/kv/kvb/quiet", "q", "true");
	j = get_json("/v1/kv/kvb/quiet", &idx);
	json_decref(j);
	snprintf(b.path, sizeof(b.path), "/v1/kv/kvb/quiet?index=%" PRIu64 "&wait=5s", idx);
	blocker_run(&b);
	EXPECT_STATUS(b.r, 200);
	ck_assert_uint_eq(http_index(&b.r), idx);
	/* A lower bound only: the server may add jitter, never answer early. */
	ck_assert_msg(b.elapsed_ms >= 4000, "blocking query with no change answered after %" PRIu64
					    " ms, want about 5000",
		      b.elapsed_ms);
	j = http_json(&b.r);
	ck_assert_str_eq(str_field(entry(j, 0), "Value"), "cQ==");
	json_decref(j);
	http_resp_free(&b.r);
}
END_TEST

START_TEST(blocking_on_missing_key_wakes_on_create)
{
	struct blocker b;
	pthread_t th;
	uint64_t idx;
	struct http_resp r;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	http_get(&ag, "/v1/kv/kvb/later", &r);
	EXPECT_STATUS(r, 404);
	idx = http_index(&r);
	http_resp_free(&r);
	ck_assert_uint_gt(idx, 0);
	snprintf(b.path, sizeof(b.path), "/v1/kv/kvb/later?index=%" PRIu64 "&wait=5s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocker_run, &b), 0);
	harness_pause_ms(300);
	put_expect("/v1/kv/kvb/later", "now", "true");
	pthread_join(th, NULL);
	EXPECT_STATUS(b.r, 200);
	ck_assert_uint_gt(http_index(&b.r), idx);
	http_resp_free(&b.r);
}
END_TEST

START_TEST(blocking_ignores_unrelated_writes)
{
	struct blocker b;
	pthread_t th;
	uint64_t idx;
	json_t *j;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	put_expect("/v1/kv/kvb/mine", "m", "true");
	j = get_json("/v1/kv/kvb/mine", &idx);
	ck_assert_uint_eq(idx, (uint64_t)int_field(entry(j, 0), "ModifyIndex"));
	json_decref(j);
	snprintf(b.path, sizeof(b.path), "/v1/kv/kvb/mine?index=%" PRIu64 "&wait=3s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocker_run, &b), 0);
	for (int i = 0; i < 5; i++) {
		harness_pause_ms(200);
		put_expect("/v1/kv/kvb/other", "o", "true");
	}
	pthread_join(th, NULL);
	EXPECT_STATUS(b.r, 200);
	/* Consul answers a single key with its own ModifyIndex: writes to
	 * other keys neither wake the query nor change its index. */
	ck_assert_uint_eq(http_index(&b.r), idx);
	ck_assert_msg(b.elapsed_ms >= 2500, "woken after %" PRIu64 " ms by writes to another key",
		      b.elapsed_ms);
	http_resp_free(&b.r);
}
END_TEST

START_TEST(blocking_prefix_wakes_on_child_write)
{
	struct blocker b;
	pthread_t th;
	uint64_t idx;
	struct http_resp r;
	json_t *j;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	put_expect("/v1/kv/kvp/first", "1", "true");
	http_get(&ag, "/v1/kv/kvp/?recurse", &r);
	EXPECT_STATUS(r, 200);
	idx = http_index(&r);
	http_resp_free(&r);
	snprintf(b.path, sizeof(b.path), "/v1/kv/kvp/?recurse&index=%" PRIu64 "&wait=5s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocker_run, &b), 0);
	harness_pause_ms(300);
	put_expect("/v1/kv/kvp/second", "2", "true");
	pthread_join(th, NULL);
	EXPECT_STATUS(b.r, 200);
	ck_assert_uint_gt(http_index(&b.r), idx);
	j = http_json(&b.r);
	ck_assert_uint_eq(json_array_size(j), 2);
	ck_assert_str_eq(str_field(entry(j, 1), "Key"), "kvp/second");
	json_decref(j);
	http_resp_free(&b.r);
}
END_TEST

/* The issue asks that 10,000 parked watchers cost little; we park up to
 * 8,000, fewer when the fd limit (which apid inherits) is lower. */
#define MAX_WATCHERS 8000

/* VmRSS of pid in KiB, 0 when unknown. */
static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int watcher_count(void)
{
	struct rlimit rl;
	long n = MAX_WATCHERS;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (long)rl.rlim_cur - 256 < n)
		n = (long)rl.rlim_cur - 256;
	return n < 100 ? 100 : (int)n;
}

static size_t discard(char *data, size_t size, size_t nmemb, void *ctx)
{
	(void)data;
	(void)ctx;
	return size * nmemb;
}

/* Many parked blocking queries: apid keeps answering others meanwhile, and
 * one write wakes them all with the new index. */
START_TEST(many_parked_watchers)
{
	CURLM *multi;
	int n_watchers = watcher_count();
	CURL **easy = calloc((size_t)n_watchers, sizeof(*easy));
	ck_assert_ptr_nonnull(easy);
	char url[256];
	uint64_t idx, deadline;
	int running = 0, done = 0;
	struct http_resp r;
	json_t *j;

	REQUIRE_AGENT();
	long rss_before = rss_kib(harness_daemon_pid(&ag, "apid"));

	put_expect("/v1/kv/kvw/key", "before", "true");
	j = get_json("/v1/kv/kvw/key", &idx);
	json_decref(j);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/kv/kvw/key?index=%" PRIu64 "&wait=30s",
		 ag.http_port, idx);
	multi = curl_multi_init();
	ck_assert_ptr_nonnull(multi);
	for (int i = 0; i < n_watchers; i++) {
		easy[i] = curl_easy_init();
		ck_assert_ptr_nonnull(easy[i]);
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 60000L);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_multi_add_handle(multi, easy[i]);
	}
	/* Drive the multi handle until every request is sent and parked: none
	 * may finish, since nothing changes. */
	deadline = harness_now_ms() + 2000;
	while (harness_now_ms() < deadline) {
		int n;
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 100, &n);
	}
	ck_assert_msg(running == n_watchers, "%d of %d blocking queries answered early",
		      n_watchers - running, n_watchers);
	/* For the record (not asserted): what the parked queries cost apid. */
	fprintf(stderr, "many_parked_watchers: apid RSS %ld KiB before, %ld KiB with %d parked\n",
		rss_before, rss_kib(harness_daemon_pid(&ag, "apid")), n_watchers);

	/* apid still serves everyone else. */
	http_get(&ag, "/v1/status/leader", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	put_expect("/v1/kv/kvw/key", "after", "true");

	deadline = harness_now_ms() + 20000;
	while (running > 0 && harness_now_ms() < deadline) {
		int n;
		curl_multi_perform(multi, &running);
		if (running > 0)
			curl_multi_poll(multi, NULL, 0, 100, &n);
	}
	for (;;) {
		int left;
		CURLMsg *m = curl_multi_info_read(multi, &left);
		long status = 0;
		if (!m)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		ck_assert_msg(m->data.result == CURLE_OK, "watcher failed: %s",
			      curl_easy_strerror(m->data.result));
		curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
		ck_assert_int_eq(status, 200);
		done++;
	}
	ck_assert_msg(done == n_watchers, "%d of %d watchers woke within 20 s of the write", done,
		      n_watchers);
	for (int i = 0; i < n_watchers; i++) {
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	curl_multi_cleanup(multi);
	free(easy);
	fprintf(stderr, "many_parked_watchers: %d watchers parked and woken\n", n_watchers);
}
END_TEST

/* Clients that give up on parked blocking queries: apid must drop the
 * suspended connections cleanly, and a later write that would have woken
 * them must not touch freed state. */
START_TEST(abandoned_blocking_queries)
{
	enum { N = 300 };
	CURLM *multi;
	CURL *easy[N];
	char url[256];
	uint64_t idx, deadline;
	int running = 0;
	pid_t apid;
	json_t *j;

	REQUIRE_AGENT();
	apid = harness_daemon_pid(&ag, "apid");
	put_expect("/v1/kv/kvab/key", "before", "true");
	j = get_json("/v1/kv/kvab/key", &idx);
	json_decref(j);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/kv/kvab/key?index=%" PRIu64 "&wait=30s",
		 ag.http_port, idx);
	multi = curl_multi_init();
	ck_assert_ptr_nonnull(multi);
	for (int i = 0; i < N; i++) {
		easy[i] = curl_easy_init();
		ck_assert_ptr_nonnull(easy[i]);
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_multi_add_handle(multi, easy[i]);
	}
	deadline = harness_now_ms() + 1500;
	while (harness_now_ms() < deadline) {
		int n;
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 100, &n);
	}
	ck_assert_int_eq(running, N);
	/* Hang up on every one of them. */
	for (int i = 0; i < N; i++) {
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	curl_multi_cleanup(multi);

	put_expect("/v1/kv/kvab/key", "after", "true");
	for (int i = 0; i < 20; i++) {
		struct http_resp r;
		http_get(&ag, "/v1/kv/kvab/key?raw", &r);
		EXPECT_STATUS(r, 200);
		EXPECT_BODY(r, "after");
		http_resp_free(&r);
	}
	ck_assert_msg(harness_daemon_pid(&ag, "apid") == apid, "apid restarted (crashed?)");
}
END_TEST

/* Last: Ctrl-C (SIGINT) stops all four daemons, with a clean log, even
 * with blocking queries parked in apid (libmicrohttpd must see suspended
 * connections resumed before it stops). */
START_TEST(sigint_stops_everything)
{
	enum { N = 20 };
	CURLM *multi;
	CURL *easy[N];
	char url[256], err[1024];
	uint64_t idx, deadline;
	int running = 0, rc;
	json_t *j;

	REQUIRE_AGENT();
	put_expect("/v1/kv/kvstop/key", "x", "true");
	j = get_json("/v1/kv/kvstop/key", &idx);
	json_decref(j);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/kv/kvstop/key?index=%" PRIu64 "&wait=60s",
		 ag.http_port, idx);
	multi = curl_multi_init();
	ck_assert_ptr_nonnull(multi);
	for (int i = 0; i < N; i++) {
		easy[i] = curl_easy_init();
		ck_assert_ptr_nonnull(easy[i]);
		curl_easy_setopt(easy[i], CURLOPT_URL, url);
		curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
		curl_multi_add_handle(multi, easy[i]);
	}
	deadline = harness_now_ms() + 1000;
	while (harness_now_ms() < deadline) {
		int n;
		curl_multi_perform(multi, &running);
		curl_multi_poll(multi, NULL, 0, 100, &n);
	}
	ck_assert_int_eq(running, N);

	rc = harness_agent_terminate(&ag, SIGINT, 20000, err, sizeof(err));
	for (int i = 0; i < N; i++) {
		curl_multi_remove_handle(multi, easy[i]);
		curl_easy_cleanup(easy[i]);
	}
	curl_multi_cleanup(multi);
	ck_assert_msg(rc == 0, "%s", err);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-kv");
	TCase *tc = tcase_create("kv");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, put_get_roundtrip);
	tcase_add_test(tc, empty_value_is_null);
	tcase_add_test(tc, flags);
	tcase_add_test(tc, keys_separator_recurse);
	tcase_add_test(tc, cas);
	tcase_add_test(tc, delete_single_recurse_cas);
	tcase_add_test(tc, not_found_headers);
	tcase_add_test(tc, percent_encoded_key);
	tcase_add_test(tc, consistency_params_accepted);
	tcase_add_test(tc, binary_value_roundtrip);
	tcase_add_test(tc, utf8_key);
	tcase_add_test(tc, root_keys_listing);
	tcase_add_test(tc, chunked_put);
	tcase_add_test(tc, keep_alive_across_errors);
	tcase_add_test(tc, concurrent_cas_counter);
	tcase_add_test(tc, other_datacenter_is_an_error);
	tcase_add_test(tc, kv_edge_semantics);
	tcase_add_test(tc, large_listings);
	tcase_add_test(tc, value_size_limit);
	tcase_add_test(tc, bad_query_numbers);
	tcase_add_test(tc, wrong_methods);
	tcase_add_test(tc, unknown_paths);
	tcase_add_test(tc, blocking_wakes_on_write);
	tcase_add_test(tc, blocking_times_out_same_index);
	tcase_add_test(tc, blocking_on_missing_key_wakes_on_create);
	tcase_add_test(tc, blocking_ignores_unrelated_writes);
	tcase_add_test(tc, blocking_prefix_wakes_on_child_write);
	tcase_add_test(tc, many_parked_watchers);
	tcase_add_test(tc, abandoned_blocking_queries);
	tcase_add_test(tc, sigint_stops_everything);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
