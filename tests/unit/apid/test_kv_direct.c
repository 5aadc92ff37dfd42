/* Direct KV reads (apid/kv_direct.c) and raftd's lease page
 * (raftd/lease_pub.c):
 *
 * - the page's seqlock round trip, torn and foreign pages, LastContact;
 * - which reads may skip the RPC (kv_direct_allowed);
 * - answers: for every KV GET shape (one key, missing key, ?raw, ?recurse,
 *   ?keys, ?keys&separator, missing prefixes, ?stale, odd keys), the
 *   response routes renders from the direct read equals, status, headers
 *   and body, the one it renders from the reply raftd builds for the same
 *   request (fsm_kv_* on the writer's store, meta as raftd/server.c fills
 *   it);
 * - fallbacks: no page, expired alive bound, no lease, not leader,
 *   ?consistent, ?index, ?max_stale, and a new raftd generation reopening
 *   the store;
 * - a map grown by the writer after the reader opened the store. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "config.h"
#include "fsm.h"
#include "kv_direct.h"
#include "lease_pub.h"
#include "mp.h"
#include "routes.h"
#include "store.h"

static char dir[256], store_dir[300], lease_path[300];
static struct store *wst; /* the writer (raftd's side) */
static struct lease_pub *pub;
static struct kv_direct *kd;
static struct config cfg;
static struct routes_env env;
static uint64_t next_index = 10;

static void put_kv(const char *key, const char *val, uint64_t flags)
{
	struct mp_writer w;
	struct store_txn *txn;
	struct fsm_result res;

	mp_writer_init(&w);
	fsm_cmd_kv_set(&w, key, (const uint8_t *)val, strlen(val), flags, false, 0);
	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(store_txn_begin(wst, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, next_index++, w.buf, w.len, &res, NULL, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	mp_writer_close(&w);
}

static struct lease_info leader_info(void)
{
	struct lease_info li = {0};
	uint64_t now = lease_now_ns();

	li.generation = 77;
	li.pid = 1;
	li.is_leader = true;
	li.known_leader = true;
	li.alive_until_ns = now + 3600ull * 1000000000u;
	li.lease_until_ns = li.alive_until_ns;
	li.contact_at_ns = now;
	return li;
}

static void setup(void)
{
	char err[256];
	struct lease_info li;

	snprintf(dir, sizeof(dir), "/tmp/cairn-kvd-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(store_dir, sizeof(store_dir), "%s/raft", dir);
	snprintf(lease_path, sizeof(lease_path), "%s/%s", dir, LEASE_PUB_FILE);
	ck_assert_int_eq(store_open(store_dir, 1u << 20, &wst, err, sizeof(err)), 0);
	ck_assert_int_eq(lease_pub_open(lease_path, &pub), 0);
	li = leader_info();
	lease_pub_set(pub, &li);
	kd = kv_direct_new(store_dir, lease_path);
	ck_assert_ptr_nonnull(kd);

	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "node1";
	cfg.server = true;
	cfg.kv_max_value_size = 512 * 1024;
	cfg.http_max_body = 576 * 1024;
	memset(&env, 0, sizeof(env));
	env.cfg = &cfg;
	env.last_index = 9;
	next_index = 10;

	put_kv("a", "top", 0);
	put_kv("a/b", "hello", 0);
	put_kv("a/c/d", "", 42);
	put_kv("a/c/e", "x\"y\\z\n", UINT64_MAX);
	put_kv("b/x", "1", 0);
	put_kv("we ird/key%20é", "v", 1);
}

static void teardown(void)
{
	char cmd[600];

	kv_direct_free(kd);
	lease_pub_close(pub);
	store_close(wst);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The reply raftd builds for g (raftd/server.c: evaluate, fill_meta_kv,
 * stamp_leader_meta with a leader's KnownLeader and LastContact). */
static void raftd_reply(const struct proto_kv_get *g, struct arena *a, struct proto_msg *out)
{
	struct store_txn *txn;
	struct fsm_kv_answer ans;
	const char *key = g->key ? g->key : "";
	int rc;

	ck_assert_int_eq(store_txn_begin(wst, false, &txn), 0);
	if (g->keys_only)
		rc = fsm_kv_keys(txn, a, key, g->separator, &ans);
	else if (g->recurse)
		rc = fsm_kv_list(txn, a, key, &ans);
	else
		rc = fsm_kv_get(txn, a, key, &ans);
	store_txn_abort(txn);
	ck_assert_int_eq(rc, 0);
	*out = proto_msg_make(PROTO_KV_GET_REPLY);
	out->u.kv_get_reply.index = ans.index ? ans.index : 1;
	out->u.kv_get_reply.known_leader = true;
	out->u.kv_get_reply.last_contact_ms = 0;
	out->u.kv_get_reply.entries.v = ans.entries;
	out->u.kv_get_reply.entries.n = ans.n_entries;
	out->u.kv_get_reply.keys.v = ans.keys;
	out->u.kv_get_reply.keys.n = ans.n_keys;
}

static void dispatch(const char *target, struct arena *a, struct routes_action *act)
{
	struct routes_req req = {.method = "GET", .target = target};

	ck_assert_int_eq(routes_dispatch(&env, &req, a, act), 0);
	ck_assert_msg(!act->respond, "%s: answered without a call", target);
	ck_assert_int_eq(act->call.msg.type, PROTO_KV_GET);
}

static void same_resp(const char *target, const struct routes_resp *x, const struct routes_resp *y)
{
	ck_assert_msg(x->status == y->status, "%s: status %u vs %u", target, x->status, y->status);
	ck_assert_msg((x->content_type == NULL) == (y->content_type == NULL) &&
			  (!x->content_type || strcmp(x->content_type, y->content_type) == 0),
		      "%s: content type", target);
	ck_assert_msg(x->body_len == y->body_len &&
			  (x->body_len == 0 || memcmp(x->body, y->body, x->body_len) == 0),
		      "%s: body [%.*s] vs [%.*s]", target, (int)x->body_len,
		      x->body ? x->body : "", (int)y->body_len, y->body ? y->body : "");
	ck_assert_msg(x->n_hdrs == y->n_hdrs, "%s: %zu vs %zu headers", target, x->n_hdrs,
		      y->n_hdrs);
	for (size_t i = 0; i < x->n_hdrs; i++) {
		ck_assert_str_eq(x->hdrs[i].name, y->hdrs[i].name);
		ck_assert_msg(strcmp(x->hdrs[i].value, y->hdrs[i].value) == 0, "%s: %s: %s vs %s",
			      target, x->hdrs[i].name, x->hdrs[i].value, y->hdrs[i].value);
	}
}

/* Renders target both ways and compares; returns the status. */
static unsigned compare(const char *target)
{
	struct arena a;
	struct routes_action act;
	struct proto_msg direct, ref;
	struct routes_resp rd, rr;
	unsigned status;

	arena_init(&a, 0);
	dispatch(target, &a, &act);
	ck_assert_msg(kv_direct_read(kd, &act.call.msg.u.kv_get, lease_now_ns(), &a, &direct) ==
			  1,
		      "%s: not served directly", target);
	raftd_reply(&act.call.msg.u.kv_get, &a, &ref);
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &direct, &a, &rd), 0);
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &ref, &a, &rr), 0);
	same_resp(target, &rd, &rr);
	status = rd.status;
	arena_close(&a);
	return status;
}

/* Whether target is served directly now. */
static bool served(const char *target)
{
	struct arena a;
	struct routes_action act;
	struct proto_msg m;
	int rc;

	arena_init(&a, 0);
	dispatch(target, &a, &act);
	rc = kv_direct_read(kd, &act.call.msg.u.kv_get, lease_now_ns(), &a, &m);
	arena_close(&a);
	return rc == 1;
}

START_TEST(page_round_trip)
{
	static uint64_t page[LEASE_PAGE_SIZE / 8];
	struct lease_info in = leader_info(), out;

	memset(page, 0, sizeof(page));
	ck_assert_int_eq(lease_page_read(page, &out), -EINVAL); /* never written */
	in.is_leader = false;
	in.contact_unknown = true;
	in.applied_index = 12345;
	lease_page_write(page, &in);
	ck_assert_int_eq(lease_page_read(page, &out), 0);
	ck_assert_uint_eq(out.generation, in.generation);
	ck_assert(!out.is_leader);
	ck_assert(out.known_leader);
	ck_assert(out.contact_unknown);
	ck_assert_uint_eq(out.alive_until_ns, in.alive_until_ns);
	ck_assert_uint_eq(out.lease_until_ns, in.lease_until_ns);
	ck_assert_uint_eq(out.applied_index, 12345);
	ck_assert_uint_eq(lease_info_last_contact_ms(&out, 5), UINT64_MAX);
	/* a write in progress (odd sequence) is never read */
	page[1] |= 1u;
	ck_assert_int_eq(lease_page_read(page, &out), -EAGAIN);
	page[1]++;
	ck_assert_int_eq(lease_page_read(page, &out), 0);

	in.contact_unknown = false;
	in.contact_at_ns = 1000000000u;
	ck_assert_uint_eq(lease_info_last_contact_ms(&in, 1250000000u), 250);
	in.is_leader = true;
	ck_assert_uint_eq(lease_info_last_contact_ms(&in, 1250000000u), 0);
}
END_TEST

START_TEST(allowed_rules)
{
	struct lease_info li = leader_info();
	struct proto_kv_get g = {.key = "a"};
	uint64_t now = lease_now_ns();

	ck_assert(kv_direct_allowed(&g, &li, now));
	g.mode = 1; /* ?consistent */
	ck_assert(!kv_direct_allowed(&g, &li, now));
	g.mode = 2; /* ?stale */
	ck_assert(kv_direct_allowed(&g, &li, now));
	g.max_stale_ms = 1000;
	ck_assert(!kv_direct_allowed(&g, &li, now));
	g.max_stale_ms = 0;
	g.mode = 0;
	g.min_index = 5; /* blocking */
	ck_assert(!kv_direct_allowed(&g, &li, now));
	g.min_index = 0;
	g.dc = "dc2";
	ck_assert(!kv_direct_allowed(&g, &li, now));
	g.dc = "";
	ck_assert(kv_direct_allowed(&g, &li, now));

	li.lease_until_ns = now; /* lease over: default reads take the RPC */
	ck_assert(!kv_direct_allowed(&g, &li, now));
	g.mode = 2; /* ?stale only needs raftd alive */
	ck_assert(kv_direct_allowed(&g, &li, now));
	li.alive_until_ns = now;
	ck_assert(!kv_direct_allowed(&g, &li, now));
	li = leader_info();
	li.is_leader = false; /* a follower: ?stale yes, default no */
	ck_assert(kv_direct_allowed(&g, &li, now));
	g.mode = 0;
	ck_assert(!kv_direct_allowed(&g, &li, now));
	li = leader_info();
	li.generation = 0; /* no store published */
	ck_assert(!kv_direct_allowed(&g, &li, now));
}
END_TEST

START_TEST(same_answers)
{
	static const char *const found[] = {
	    "/v1/kv/a",
	    "/v1/kv/a/b",
	    "/v1/kv/a/b?raw",
	    "/v1/kv/a/c/d",
	    "/v1/kv/a/c/d?raw",
	    "/v1/kv/a/c/e",
	    "/v1/kv/a/c/e?pretty",
	    "/v1/kv/a?recurse",
	    "/v1/kv/a/?recurse",
	    "/v1/kv/?recurse",
	    "/v1/kv/?recurse&pretty",
	    "/v1/kv/?keys",
	    "/v1/kv/a?keys",
	    "/v1/kv/a/?keys&separator=/",
	    "/v1/kv/?keys&separator=/",
	    "/v1/kv/?keys&seperator=c",
	    "/v1/kv/a/b?stale",
	    "/v1/kv/a?recurse&stale",
	    "/v1/kv/we%20ird/key%2520%C3%A9",
	    "/v1/kv/we%20ird/key%2520%C3%A9?raw",
	};
	static const char *const missing[] = {
	    "/v1/kv/nope",
	    "/v1/kv/nope?raw",
	    "/v1/kv/zz?recurse",
	    "/v1/kv/zz?keys",
	    "/v1/kv/a/b/c",
	    "/v1/kv/nope?stale",
	};
	size_t i;

	for (i = 0; i < sizeof(found) / sizeof(found[0]); i++)
		ck_assert_msg(compare(found[i]) == 200, "%s not found", found[i]);
	for (i = 0; i < sizeof(missing) / sizeof(missing[0]); i++)
		ck_assert_msg(compare(missing[i]) == 404, "%s found", missing[i]);
	/* a write after the reader opened the store is seen at once */
	put_kv("a/new", "fresh", 0);
	ck_assert_uint_eq(compare("/v1/kv/a/new"), 200);
	ck_assert_uint_eq(compare("/v1/kv/a?recurse"), 200);
	ck_assert_uint_eq(kv_direct_served(kd), 28); /* 20 + 6 + 2, no fallback */
	ck_assert_uint_eq(kv_direct_fallbacks(kd), 0);
}
END_TEST

START_TEST(fallbacks)
{
	struct lease_info li = leader_info();
	struct kv_direct *none;
	uint64_t fb;

	ck_assert(served("/v1/kv/a/b"));
	ck_assert(!served("/v1/kv/a/b?consistent"));
	ck_assert(!served("/v1/kv/a/b?index=3"));
	ck_assert(!served("/v1/kv/a/b?stale&max_stale=1s"));

	li.lease_until_ns = 0; /* no lease */
	lease_pub_set(pub, &li);
	ck_assert(!served("/v1/kv/a/b"));
	ck_assert(served("/v1/kv/a/b?stale"));
	li = leader_info();
	li.is_leader = false;
	lease_pub_set(pub, &li);
	ck_assert(!served("/v1/kv/a/b"));
	li = leader_info();
	li.alive_until_ns = li.lease_until_ns = lease_now_ns() - 1; /* raftd stopped */
	lease_pub_set(pub, &li);
	ck_assert(!served("/v1/kv/a/b"));
	ck_assert(!served("/v1/kv/a/b?stale"));
	/* raftd withdraws its lease on exit */
	li = leader_info();
	lease_pub_set(pub, &li);
	fb = kv_direct_fallbacks(kd);
	lease_pub_close(pub);
	ck_assert_int_eq(lease_pub_open(lease_path, &pub), 0); /* empty page */
	ck_assert(!served("/v1/kv/a/b"));
	ck_assert_uint_gt(kv_direct_fallbacks(kd), fb);

	/* no page at all (raftd never ran): the RPC, no error */
	none = kv_direct_new(store_dir, "/nonexistent/raftd.lease");
	ck_assert_ptr_nonnull(none);
	{
		struct arena a;
		struct proto_kv_get g = {.key = "a/b"};
		struct proto_msg m;

		arena_init(&a, 0);
		ck_assert_int_eq(kv_direct_read(none, &g, lease_now_ns(), &a, &m), 0);
		arena_close(&a);
	}
	kv_direct_free(none);
}
END_TEST

/* A new raftd generation (restart) makes the reader reopen the store; the
 * answers stay the same. */
START_TEST(generation_reopens)
{
	struct lease_info li = leader_info();

	ck_assert_uint_eq(compare("/v1/kv/a/b"), 200);
	li.generation = 78;
	lease_pub_set(pub, &li);
	ck_assert_uint_eq(compare("/v1/kv/a/b"), 200);
	ck_assert_uint_eq(compare("/v1/kv/?keys"), 200);
}
END_TEST

/* The writer grows the map past the size the reader mapped: the reader
 * adopts it (MDB_MAP_RESIZED) and keeps answering. */
START_TEST(map_grown_by_writer)
{
	static char val[8192];
	char key[64];
	int i;

	ck_assert_uint_eq(compare("/v1/kv/a/b"), 200);
	memset(val, 'v', sizeof(val) - 1);
	for (i = 0; i < 400; i++) {
		ck_assert_int_eq(store_reserve(wst, sizeof(val) * 4), 0);
		snprintf(key, sizeof(key), "grow/%04d", i);
		put_kv(key, val, 0);
	}
	ck_assert_uint_eq(compare("/v1/kv/grow/0399"), 200);
	ck_assert_uint_eq(compare("/v1/kv/grow?keys"), 200);
}
END_TEST

static Suite *kv_direct_suite(void)
{
	Suite *s = suite_create("kv_direct");
	TCase *tc = tcase_create("kv_direct");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, page_round_trip);
	tcase_add_test(tc, allowed_rules);
	tcase_add_test(tc, same_answers);
	tcase_add_test(tc, fallbacks);
	tcase_add_test(tc, generation_reopens);
	tcase_add_test(tc, map_grown_by_writer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(kv_direct_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
