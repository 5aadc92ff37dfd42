/* State machine: Consul's KV and catalog semantics and indexes. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "store.h"
#include "suites.h"

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static int changes;
static char last_change[600];

static void setup(void)
{
	char err[256], sub[300];

	test_tmpdir(dir, sizeof(dir));
	snprintf(sub, sizeof(sub), "%s/raft", dir);
	ck_assert_int_eq(store_open(sub, 64ull << 20, &st, err, sizeof(err)), 0);
	arena_init(&ar, 0);
	mp_writer_init(&w);
	changes = 0;
}

static void teardown(void)
{
	mp_writer_close(&w);
	arena_close(&ar);
	store_close(st);
	test_rmtree(dir);
}

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	(void)space;
	changes++;
	snprintf(last_change, sizeof(last_change), "%.*s", (int)klen, key);
}

/* Applies the command in w at index in its own transaction. */
static struct fsm_result apply_raw(uint64_t index, const void *p, size_t len)
{
	struct store_txn *txn;
	struct fsm_result res;

	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, p, len, &res, on_change, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

static struct fsm_result put(uint64_t index, const char *key, const char *val, uint64_t flags,
			     bool has_cas, uint64_t cas)
{
	fsm_cmd_kv_set(&w, key, (const uint8_t *)val, strlen(val), flags, has_cas, cas);
	ck_assert_int_eq(w.err, 0);
	return apply_raw(index, w.buf, w.len);
}

static struct fsm_result del(uint64_t index, const char *key, bool recurse, bool has_cas,
			     uint64_t cas)
{
	fsm_cmd_kv_delete(&w, key, recurse, has_cas, cas);
	return apply_raw(index, w.buf, w.len);
}

enum rd { GET, LIST, KEYS };

static struct fsm_kv_answer read_kv(enum rd how, const char *key, const char *sep)
{
	struct store_txn *txn;
	struct fsm_kv_answer a;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	if (how == GET)
		ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	else if (how == LIST)
		ck_assert_int_eq(fsm_kv_list(txn, &ar, key, &a), 0);
	else
		ck_assert_int_eq(fsm_kv_keys(txn, &ar, key, sep, &a), 0);
	store_txn_abort(txn);
	return a;
}

START_TEST(kv_put_get)
{
	struct fsm_result r = put(5, "greeting", "hello", 42, false, 0);
	struct fsm_kv_answer a;

	ck_assert_int_eq(r.code, 0);
	ck_assert(r.ok);
	ck_assert_int_eq(changes, 1);
	ck_assert_str_eq(last_change, "greeting");
	a = read_kv(GET, "greeting", NULL);
	ck_assert_uint_eq(a.n_entries, 1);
	ck_assert_str_eq(a.entries[0].key, "greeting");
	ck_assert_uint_eq(a.entries[0].value.len, 5);
	ck_assert(memcmp(a.entries[0].value.ptr, "hello", 5) == 0);
	ck_assert_uint_eq(a.entries[0].flags, 42);
	ck_assert_uint_eq(a.entries[0].create_index, 5);
	ck_assert_uint_eq(a.entries[0].modify_index, 5);
	ck_assert_uint_eq(a.entries[0].lock_index, 0);
	ck_assert_ptr_null(a.entries[0].session);
	ck_assert_uint_eq(a.index, 5);

	/* Update: CreateIndex stays, ModifyIndex and flags move. */
	put(8, "greeting", "", 0, false, 0);
	a = read_kv(GET, "greeting", NULL);
	ck_assert_uint_eq(a.entries[0].create_index, 5);
	ck_assert_uint_eq(a.entries[0].modify_index, 8);
	ck_assert_uint_eq(a.entries[0].flags, 0);
	ck_assert_uint_eq(a.entries[0].value.len, 0);
	ck_assert_ptr_null(a.entries[0].value.ptr);
	ck_assert_uint_eq(a.index, 8);
}
END_TEST

START_TEST(kv_cas)
{
	struct fsm_result r;
	struct fsm_kv_answer a;

	/* cas=0: create only. */
	r = put(3, "k", "v1", 0, true, 0);
	ck_assert(r.ok);
	r = put(4, "k", "v2", 0, true, 0);
	ck_assert_int_eq(r.code, 0);
	ck_assert(!r.ok);
	a = read_kv(GET, "k", NULL);
	ck_assert(memcmp(a.entries[0].value.ptr, "v1", 2) == 0);
	ck_assert_uint_eq(a.entries[0].modify_index, 3);
	/* Mismatch. */
	r = put(5, "k", "v3", 0, true, 2);
	ck_assert(!r.ok);
	/* cas on a missing key fails. */
	r = put(6, "nokey", "x", 0, true, 3);
	ck_assert(!r.ok);
	a = read_kv(GET, "nokey", NULL);
	ck_assert_uint_eq(a.n_entries, 0);
	/* Match. */
	r = put(7, "k", "v4", 0, true, 3);
	ck_assert(r.ok);
	a = read_kv(GET, "k", NULL);
	ck_assert(memcmp(a.entries[0].value.ptr, "v4", 2) == 0);
	ck_assert_uint_eq(a.entries[0].modify_index, 7);
	ck_assert_uint_eq(a.entries[0].create_index, 3);
	/* Failed cas writes changed nothing, so only two changes. */
	ck_assert_int_eq(changes, 2);
}
END_TEST

START_TEST(kv_delete)
{
	struct fsm_result r;
	struct fsm_kv_answer a;

	put(2, "a/1", "x", 0, false, 0);
	put(3, "a/2", "x", 0, false, 0);
	put(4, "a/sub/3", "x", 0, false, 0);
	put(5, "b", "x", 0, false, 0);

	r = del(6, "a/1", false, false, 0);
	ck_assert(r.ok);
	a = read_kv(GET, "a/1", NULL);
	ck_assert_uint_eq(a.n_entries, 0);
	ck_assert_uint_eq(a.index, 6); /* missing key: the table index */

	/* Deleting a missing key is true and changes nothing. */
	changes = 0;
	r = del(7, "nothing", false, false, 0);
	ck_assert(r.ok);
	ck_assert_int_eq(changes, 0);
	ck_assert_uint_eq(read_kv(GET, "nothing", NULL).index, 6);

	/* cas delete: mismatch keeps the key, match deletes it, missing is true. */
	r = del(8, "a/2", false, true, 99);
	ck_assert(!r.ok);
	ck_assert_uint_eq(read_kv(GET, "a/2", NULL).n_entries, 1);
	r = del(9, "a/2", false, true, 3);
	ck_assert(r.ok);
	ck_assert_uint_eq(read_kv(GET, "a/2", NULL).n_entries, 0);
	r = del(10, "a/2", false, true, 3);
	ck_assert(r.ok);

	/* Recurse deletes the prefix only. */
	put(11, "a/4", "x", 0, false, 0);
	changes = 0;
	r = del(12, "a/", true, false, 0);
	ck_assert(r.ok);
	ck_assert_int_eq(changes, 2);
	ck_assert_uint_eq(read_kv(LIST, "a/", NULL).n_entries, 0);
	a = read_kv(LIST, "", NULL);
	ck_assert_uint_eq(a.n_entries, 1);
	ck_assert_str_eq(a.entries[0].key, "b");
	/* The prefix's index comes from its tombstones. */
	ck_assert_uint_eq(read_kv(LIST, "a/", NULL).index, 12);
	ck_assert_uint_eq(read_kv(LIST, "a/1", NULL).index, 6);

	/* Recurse with an empty prefix deletes everything. */
	r = del(13, "", true, false, 0);
	ck_assert(r.ok);
	ck_assert_uint_eq(read_kv(LIST, "", NULL).n_entries, 0);
	ck_assert_uint_eq(read_kv(LIST, "", NULL).index, 13);

	/* A single delete needs a key. */
	r = del(14, "", false, false, 0);
	ck_assert_int_eq(r.code, CAIRN_E_BADREQ);
}
END_TEST

START_TEST(kv_keys_separator)
{
	const char *keys[] = {"a/b/c", "a/b/d", "a/e", "a/f/", "a/f/g", "b", "ab"};
	struct fsm_kv_answer a;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		put(10 + i, keys[i], "v", 0, false, 0);

	a = read_kv(KEYS, "a/", "/");
	ck_assert_uint_eq(a.n_keys, 3);
	ck_assert_str_eq(a.keys[0], "a/b/");
	ck_assert_str_eq(a.keys[1], "a/e");
	ck_assert_str_eq(a.keys[2], "a/f/");
	ck_assert_uint_eq(a.index, 14); /* highest ModifyIndex under a/ (a/f/g) */

	a = read_kv(KEYS, "", "/");
	ck_assert_uint_eq(a.n_keys, 3);
	ck_assert_str_eq(a.keys[0], "a/");
	ck_assert_str_eq(a.keys[1], "ab");
	ck_assert_str_eq(a.keys[2], "b");

	a = read_kv(KEYS, "a", NULL);
	ck_assert_uint_eq(a.n_keys, 6);
	ck_assert_str_eq(a.keys[5], "ab");

	/* A multi-byte separator. */
	a = read_kv(KEYS, "a/", "b/");
	ck_assert_uint_eq(a.n_keys, 4);
	ck_assert_str_eq(a.keys[0], "a/b/");
	ck_assert_str_eq(a.keys[1], "a/e");

	a = read_kv(KEYS, "zzz", "/");
	ck_assert_uint_eq(a.n_keys, 0);
	ck_assert_uint_eq(a.index, 16); /* nothing under it: the table index */
}
END_TEST

START_TEST(kv_index_rules)
{
	/* Empty store: never 0. */
	ck_assert_uint_eq(read_kv(GET, "x", NULL).index, 1);
	ck_assert_uint_eq(read_kv(LIST, "", NULL).index, 1);
	ck_assert_uint_eq(read_kv(KEYS, "", "/").index, 1);

	put(5, "x/1", "v", 0, false, 0);
	ck_assert_uint_eq(read_kv(GET, "x/1", NULL).index, 5);
	ck_assert_uint_eq(read_kv(GET, "y", NULL).index, 5);
	ck_assert_uint_eq(read_kv(LIST, "x/", NULL).index, 5);
	ck_assert_uint_eq(read_kv(LIST, "z", NULL).index, 5);

	del(7, "x/1", false, false, 0);
	put(9, "q", "v", 0, false, 0);
	/* The deleted prefix keeps reporting its delete, not going back to
	 * an older index and not jumping to unrelated writes. */
	ck_assert_uint_eq(read_kv(LIST, "x/", NULL).index, 7);
	ck_assert_uint_eq(read_kv(KEYS, "x/", "/").index, 7);
	ck_assert_uint_eq(read_kv(GET, "x/1", NULL).index, 9);

	/* Re-creating under the prefix moves it forward. */
	put(11, "x/2", "v", 0, false, 0);
	ck_assert_uint_eq(read_kv(LIST, "x/", NULL).index, 11);
	put(12, "x/1", "v", 0, false, 0);
	ck_assert_uint_eq(read_kv(LIST, "x/", NULL).index, 12);
	ck_assert_uint_eq(read_kv(GET, "x/1", NULL).entries[0].create_index, 12);
}
END_TEST

START_TEST(malformed_commands)
{
	static const uint8_t garbage[] = {0xc1, 0xff, 0x00};
	static const uint8_t empty_array[] = {0x90};
	static const uint8_t unknown_op[] = {0x91, 0x63};
	/* [1, 7, ...]: key is an integer. */
	static const uint8_t wrong_type[] = {0x96, 0x01, 0x07, 0xc4, 0x00, 0x00, 0xc2, 0x00};
	/* KV set with 5 fields instead of 6. */
	static const uint8_t short_set[] = {0x95, 0x01, 0xa1, 'k', 0xc4, 0x00, 0x00, 0xc2};
	/* A string whose length runs past the end. */
	static const uint8_t truncated[] = {0x96, 0x01, 0xa5, 'k'};
	/* Trailing bytes after a valid delete. */
	static const uint8_t trailing[] = {0x95, 0x02, 0xa1, 'k', 0xc2, 0xc2, 0x00, 0x00};
	/* Node register whose tagged map claims 1000 pairs. */
	static const uint8_t bad_map[] = {0x97, 0x03, 0xc0, 0xa1, 'n',	0xa1,
					  'a',	0xc0, 0xde, 0x03, 0xe8, 0x80};
	struct {
		const uint8_t *p;
		size_t len;
	} cases[] = {
	    {garbage, sizeof(garbage)},
	    {empty_array, sizeof(empty_array)},
	    {unknown_op, sizeof(unknown_op)},
	    {wrong_type, sizeof(wrong_type)},
	    {short_set, sizeof(short_set)},
	    {truncated, sizeof(truncated)},
	    {trailing, sizeof(trailing)},
	    {bad_map, sizeof(bad_map)},
	    {NULL, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fsm_result r = apply_raw(20 + i, cases[i].p, cases[i].len);
		ck_assert_msg(r.code == CAIRN_E_PROTO, "case %zu: code %d", i, r.code);
		ck_assert(!r.ok);
	}
	ck_assert_int_eq(changes, 0);
	ck_assert_uint_eq(read_kv(LIST, "", NULL).n_entries, 0);
	ck_assert_uint_eq(read_kv(LIST, "", NULL).index, 1);

	/* Well-formed but refused: empty key, key over the limit. */
	char longkey[STORE_KEY_MAX + 2];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = 0;
	ck_assert_int_eq(put(40, "", "v", 0, false, 0).code, CAIRN_E_BADREQ);
	ck_assert_int_eq(put(41, longkey, "v", 0, false, 0).code, CAIRN_E_BADREQ);
	longkey[STORE_KEY_MAX] = 0; /* exactly the limit is fine */
	ck_assert(put(42, longkey, "v", 0, false, 0).ok);
}
END_TEST

static struct proto_node make_node(const char *name, const char *addr)
{
	static const char *tk[] = {"lan", "wan"};
	static const char *tv[2];
	struct proto_node n = {0};

	tv[0] = addr;
	tv[1] = addr;
	n.id = "11111111-2222-3333-4444-555555555555";
	n.node = name;
	n.address = addr;
	n.datacenter = "dc1";
	n.tagged_addresses.keys = tk;
	n.tagged_addresses.vals = tv;
	n.tagged_addresses.n = 2;
	return n;
}

static struct proto_node *get_node(const char *name, uint64_t *index)
{
	struct store_txn *txn;
	struct proto_node *n;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(fsm_node_get(txn, &ar, name, &n, index), 0);
	store_txn_abort(txn);
	return n;
}

START_TEST(catalog_nodes)
{
	struct proto_node n = make_node("Web-1", "10.0.0.1");
	struct proto_node *got;
	uint64_t index;

	got = get_node("web-1", &index);
	ck_assert_ptr_null(got);
	ck_assert_uint_eq(index, 1);

	fsm_cmd_node_register(&w, &n);
	ck_assert(apply_raw(4, w.buf, w.len).ok);
	ck_assert_str_eq(last_change, "web-1");
	got = get_node("WEB-1", &index);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got->node, "Web-1");
	ck_assert_str_eq(got->address, "10.0.0.1");
	ck_assert_str_eq(got->datacenter, "dc1");
	ck_assert_str_eq(got->id, "11111111-2222-3333-4444-555555555555");
	ck_assert_uint_eq(got->tagged_addresses.n, 2);
	ck_assert_str_eq(got->tagged_addresses.keys[1], "wan");
	ck_assert_str_eq(got->tagged_addresses.vals[1], "10.0.0.1");
	ck_assert_uint_eq(got->meta.n, 0);
	ck_assert_uint_eq(got->create_index, 4);
	ck_assert_uint_eq(got->modify_index, 4);
	ck_assert_uint_eq(index, 4);

	/* Identical registration: no change, no index bump. */
	changes = 0;
	ck_assert(apply_raw(6, w.buf, w.len).ok);
	ck_assert_int_eq(changes, 0);
	get_node("web-1", &index);
	ck_assert_uint_eq(index, 4);

	/* New address: ModifyIndex moves, CreateIndex stays. */
	n = make_node("Web-1", "10.0.0.2");
	fsm_cmd_node_register(&w, &n);
	ck_assert(apply_raw(8, w.buf, w.len).ok);
	got = get_node("web-1", &index);
	ck_assert_str_eq(got->address, "10.0.0.2");
	ck_assert_uint_eq(got->create_index, 4);
	ck_assert_uint_eq(got->modify_index, 8);
	ck_assert_uint_eq(index, 8);

	/* Refused: no address. */
	n.address = NULL;
	fsm_cmd_node_register(&w, &n);
	ck_assert_int_eq(apply_raw(9, w.buf, w.len).code, CAIRN_E_BADREQ);
}
END_TEST

START_TEST(mp_roundtrip)
{
	static char big[70000];
	static const uint64_t vals[] = {
	    0, 127, 128, 255, 256, 65535, 65536, 0xffffffffull, 0x100000000ull, UINT64_MAX};
	struct mp_reader r;
	const uint8_t *b;
	const char *s;
	size_t n;

	memset(big, 'x', sizeof(big));
	mp_writer_reset(&w);
	mp_write_array(&w, 70000);
	mp_write_map(&w, 16);
	for (size_t i = 0; i < 10; i++)
		mp_write_u64(&w, vals[i]);
	mp_write_bool(&w, true);
	mp_write_nil(&w);
	mp_write_str(&w, big, 300);
	mp_write_bin(&w, big, sizeof(big));
	mp_write_cstr_or_nil(&w, NULL);
	ck_assert_int_eq(w.err, 0);

	mp_reader_init(&r, w.buf, w.len);
	ck_assert_uint_eq(mp_read_array(&r), 70000);
	ck_assert_uint_eq(mp_read_map(&r), 16);
	for (size_t i = 0; i < 10; i++)
		ck_assert_uint_eq(mp_read_u64(&r), vals[i]);
	ck_assert(mp_read_bool(&r));
	ck_assert(mp_read_nil(&r));
	s = mp_read_str(&r, &n);
	ck_assert_uint_eq(n, 300);
	ck_assert(s && s[0] == 'x');
	b = mp_read_bin(&r, &n);
	ck_assert_uint_eq(n, sizeof(big));
	ck_assert(b && b[69999] == 'x');
	s = mp_read_str(&r, &n);
	ck_assert_ptr_null(s);
	ck_assert(mp_reader_done(&r));

	/* Sticky error: a truncated buffer fails once and stays failed. */
	mp_reader_init(&r, w.buf, 10);
	ck_assert_uint_eq(mp_read_array(&r), 70000);
	ck_assert_uint_eq(mp_read_map(&r), 16);
	for (size_t i = 0; i < 10; i++)
		(void)mp_read_u64(&r);
	ck_assert_int_eq(r.err, -EINVAL);
	ck_assert_uint_eq(mp_read_u64(&r), 0);
	ck_assert(!mp_reader_done(&r));
}
END_TEST

Suite *fsm_suite(void)
{
	Suite *s = suite_create("fsm");
	TCase *tc = tcase_create("kv");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, kv_put_get);
	tcase_add_test(tc, kv_cas);
	tcase_add_test(tc, kv_delete);
	tcase_add_test(tc, kv_keys_separator);
	tcase_add_test(tc, kv_index_rules);
	tcase_add_test(tc, malformed_commands);
	tcase_add_test(tc, catalog_nodes);
	tcase_add_test(tc, mp_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}
