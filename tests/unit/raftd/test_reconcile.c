/* The leader's reconciliation decisions (raftd/reconcile.c, pure), and
 * session invalidation by catalog writes in the FSM (session.c through
 * catalog.c) on LMDB: a bound check turning critical, a check, service or
 * node deregistered, and session create refused as Consul does. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "catalog.h"
#include "err.h"
#include "fsm.h"
#include "member_feed.h"
#include "mp.h"
#include "reconcile.h"
#include "session.h"
#include "store.h"
#include "tmpstore.h"

/* ---- decisions --------------------------------------------------------------- */

static char *k_dc[2] = {"dc", "role"};
static char *v_dc1[2] = {"dc1", "node"};
static char *v_dc2[2] = {"dc2", "node"};

static struct member_feed_member mk(const char *name, const char *addr, int status, bool other_dc)
{
	struct member_feed_member m = {
	    .name = (char *)name,
	    .addr = (char *)addr,
	    .port = 8301,
	    .tag_keys = k_dc,
	    .tag_vals = other_dc ? v_dc2 : v_dc1,
	    .n_tags = 2,
	    .status = (enum member_feed_status)status,
	};
	return m;
}

START_TEST(decide_alive)
{
	struct member_feed_member m = mk("b", "10.0.0.2", MEMBER_FEED_ALIVE, false);
	struct reconcile_node ok = {"10.0.0.2", "passing"}, crit = {"10.0.0.2", "critical"},
			      none = {"10.0.0.2", NULL}, moved = {"10.0.0.9", "passing"};

	/* not in the catalog, no serfHealth, critical, moved: register */
	ck_assert_int_eq(reconcile_decide("b", &m, NULL, "dc1", "a", true), RECONCILE_ALIVE);
	ck_assert_int_eq(reconcile_decide("b", &m, &none, "dc1", "a", true), RECONCILE_ALIVE);
	ck_assert_int_eq(reconcile_decide("b", &m, &crit, "dc1", "a", true), RECONCILE_ALIVE);
	ck_assert_int_eq(reconcile_decide("b", &m, &moved, "dc1", "a", true), RECONCILE_ALIVE);
	/* already right: nothing */
	ck_assert_int_eq(reconcile_decide("b", &m, &ok, "dc1", "a", true), RECONCILE_NONE);
	/* another datacenter's member: ignored */
	m = mk("b", "10.0.0.2", MEMBER_FEED_ALIVE, true);
	ck_assert_int_eq(reconcile_decide("b", &m, NULL, "dc1", "a", true), RECONCILE_NONE);
	/* datacenter names compare without case */
	ck_assert_int_eq(reconcile_decide("b", &m, NULL, "DC2", "a", true), RECONCILE_ALIVE);
}
END_TEST

START_TEST(decide_failed_left_reaped)
{
	struct member_feed_member f = mk("b", "10.0.0.2", MEMBER_FEED_FAILED, false);
	struct member_feed_member l = mk("b", "10.0.0.2", MEMBER_FEED_LEFT, false);
	struct member_feed_member g = mk("b", "10.0.0.2", MEMBER_FEED_LEAVING, false);
	struct member_feed_member self_left = mk("a", "10.0.0.1", MEMBER_FEED_LEFT, false);
	struct reconcile_node ok = {"10.0.0.2", "passing"}, crit = {"10.0.0.2", "critical"},
			      plain = {"10.0.0.2", NULL};

	ck_assert_int_eq(reconcile_decide("b", &f, &ok, "dc1", "a", true), RECONCILE_FAILED);
	ck_assert_int_eq(reconcile_decide("b", &f, &plain, "dc1", "a", true), RECONCILE_FAILED);
	ck_assert_int_eq(reconcile_decide("b", &f, &crit, "dc1", "a", true), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("b", &f, NULL, "dc1", "a", true), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("b", &l, &ok, "dc1", "a", true), RECONCILE_DEREGISTER);
	ck_assert_int_eq(reconcile_decide("b", &l, NULL, "dc1", "a", true), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("b", &g, &ok, "dc1", "a", true), RECONCILE_NONE);
	/* the leader never deregisters itself */
	ck_assert_int_eq(reconcile_decide("a", &self_left, &ok, "dc1", "a", true), RECONCILE_NONE);
	/* not a member any more: only nodes with a serfHealth go */
	ck_assert_int_eq(reconcile_decide("b", NULL, &ok, "dc1", "a", true), RECONCILE_DEREGISTER);
	ck_assert_int_eq(reconcile_decide("b", NULL, &crit, "dc1", "a", true), RECONCILE_DEREGISTER);
	ck_assert_int_eq(reconcile_decide("b", NULL, &plain, "dc1", "a", true), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("A", NULL, &ok, "dc1", "a", true), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("b", NULL, NULL, "dc1", "a", true), RECONCILE_NONE);
	/* a table not settled yet (gossipd just restarted, a member removed
	 * a moment ago): only a failed member's node goes */
	ck_assert_int_eq(reconcile_decide("b", NULL, &ok, "dc1", "a", false), RECONCILE_NONE);
	ck_assert_int_eq(reconcile_decide("b", NULL, &crit, "dc1", "a", false),
			 RECONCILE_DEREGISTER);
}
END_TEST

START_TEST(server_members)
{
	char *k[4] = {"dc", "id", "port", "role"};
	char *v[4] = {"dc1", "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "8300", "consul"};
	struct member_feed_member m = {.name = "s1", .addr = "10.0.0.5", .port = 8301,
				       .tag_keys = k, .tag_vals = v, .n_tags = 4,
				       .status = MEMBER_FEED_ALIVE};
	char id[64], addr[64];

	ck_assert(reconcile_server_of(&m, "dc1", id, sizeof(id), addr, sizeof(addr)));
	ck_assert_str_eq(id, "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
	ck_assert_str_eq(addr, "10.0.0.5:8300");
	m.addr = "::1";
	ck_assert(reconcile_server_of(&m, "dc1", id, sizeof(id), addr, sizeof(addr)));
	ck_assert_str_eq(addr, "[::1]:8300");
	/* another datacenter, not alive, a client: no */
	ck_assert(!reconcile_server_of(&m, "dc2", id, sizeof(id), addr, sizeof(addr)));
	m.status = MEMBER_FEED_FAILED;
	ck_assert(!reconcile_server_of(&m, "dc1", id, sizeof(id), addr, sizeof(addr)));
	m.status = MEMBER_FEED_ALIVE;
	v[3] = "node";
	ck_assert(!reconcile_server_of(&m, "dc1", id, sizeof(id), addr, sizeof(addr)));
}
END_TEST

/* ---- FSM invalidation ---------------------------------------------------------- */

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static int n_delays;    /* FSM_SPACE_LOCK_DELAY reports */
static uint64_t delay_ms; /* the last one's delay */

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	if (space == FSM_SPACE_LOCK_DELAY && klen > 8) {
		n_delays++;
		ck_assert_int_eq(store_be_to_u64((struct store_val){key, 8}, &delay_ms), 0);
	}
}

static struct fsm_result apply_w(uint64_t index)
{
	struct store_txn *txn;
	struct fsm_result res;

	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, w.buf, w.len, &res, on_change, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

/* Registers node with serfHealth (status) and, when svc, service web with
 * check service:web passing. */
static void reg(uint64_t index, const char *node, const char *status, bool svc)
{
	struct proto_node n = {.node = node, .address = "10.0.0.2"};
	struct proto_service s = {.id = "web", .service = "web", .port = 80};
	struct proto_check c[2] = {
	    {.check_id = "serfHealth", .name = "Serf Health Status", .status = status},
	    {.check_id = "service:web", .name = "web", .status = "passing", .service_id = "web"},
	};

	catalog_cmd_register(&w, &n, false, svc ? &s : NULL, c, svc ? 2 : 1);
	ck_assert_int_eq(apply_w(index).code, 0);
}

static void create(uint64_t index, const char *id, const char *json)
{
	struct fsm_result r;

	session_cmd_create(&w, id, json);
	r = apply_w(index);
	ck_assert_msg(r.code == 0, "create %s: %d %s", id, r.code, r.msg);
}

static bool session_exists(const char *id)
{
	struct store_txn *txn;
	const char **v;
	size_t n;
	uint64_t idx;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(session_query(txn, &ar, SESSION_VIEW_INFO, id, &v, &n, &idx), 0);
	store_txn_abort(txn);
	arena_reset(&ar);
	return n == 1;
}

/* The key's entry: *out_found, its Session ("" when none) and LockIndex. */
static void kv(const char *key, bool *out_found, char *sess, size_t slen, uint64_t *lock_index)
{
	struct store_txn *txn;
	struct fsm_kv_answer a;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(fsm_kv_get(txn, &ar, key, &a), 0);
	*out_found = a.n_entries == 1;
	sess[0] = '\0';
	*lock_index = 0;
	if (a.n_entries == 1) {
		snprintf(sess, slen, "%s", a.entries[0].session ? a.entries[0].session : "");
		*lock_index = a.entries[0].lock_index;
	}
	store_txn_abort(txn);
	arena_reset(&ar);
}

static void acquire(uint64_t index, const char *key, const char *sess)
{
	struct fsm_result r;

	fsm_cmd_kv_lock(&w, key, (const uint8_t *)"v", 1, 0, sess, true);
	r = apply_w(index);
	ck_assert_int_eq(r.code, 0);
	ck_assert(r.ok);
}

#define S_SERF                                                                                     \
	"{\"Name\":\"\",\"Node\":\"nodeb\",\"LockDelay\":15000000000,\"Behavior\":\"release\","   \
	"\"TTL\":\"\",\"NodeChecks\":[\"serfHealth\"],\"ServiceChecks\":null}"
#define S_SERF_DELETE                                                                              \
	"{\"Name\":\"\",\"Node\":\"nodeb\",\"LockDelay\":0,\"Behavior\":\"delete\","              \
	"\"TTL\":\"\",\"NodeChecks\":[\"serfHealth\"],\"ServiceChecks\":null}"
#define S_SVC                                                                                      \
	"{\"Name\":\"\",\"Node\":\"nodeb\",\"LockDelay\":15000000000,\"Behavior\":\"release\","   \
	"\"TTL\":\"\",\"NodeChecks\":[],\"ServiceChecks\":[{\"ID\":\"service:web\","              \
	"\"Namespace\":\"\"}]}"
#define S_NONE                                                                                     \
	"{\"Name\":\"\",\"Node\":\"nodeb\",\"LockDelay\":15000000000,\"Behavior\":\"release\","   \
	"\"TTL\":\"\",\"NodeChecks\":[],\"ServiceChecks\":null}"
#define S_OTHER                                                                                    \
	"{\"Name\":\"\",\"Node\":\"nodec\",\"LockDelay\":15000000000,\"Behavior\":\"release\","   \
	"\"TTL\":\"\",\"NodeChecks\":[\"serfHealth\"],\"ServiceChecks\":null}"

static void setup(void)
{
	st = tmpstore_open("reconcile", dir, sizeof(dir));
	arena_init(&ar, 0);
	mp_writer_init(&w);
	n_delays = 0;
	delay_ms = 0;
	reg(1, "nodeb", "passing", true);
	reg(2, "nodec", "passing", false);
}

static void teardown(void)
{
	mp_writer_close(&w);
	arena_close(&ar);
	tmpstore_close(st, dir);
}

START_TEST(critical_check_releases_lock)
{
	bool found;
	char sess[80];
	uint64_t li;

	create(3, "s1", S_SERF);
	create(4, "s-other", S_OTHER);
	acquire(5, "lock/a", "s1");
	kv("lock/a", &found, sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, "s1");
	ck_assert_uint_eq(li, 1);

	/* a passing write changes nothing */
	reg(6, "nodeb", "passing", true);
	ck_assert(session_exists("s1"));
	/* serfHealth critical: the session ends, the lock is released with
	 * its lock-delay, LockIndex kept; nodec's session is untouched */
	reg(7, "nodeb", "critical", true);
	ck_assert(!session_exists("s1"));
	ck_assert(session_exists("s-other"));
	kv("lock/a", &found, sess, sizeof(sess), &li);
	ck_assert(found);
	ck_assert_str_eq(sess, "");
	ck_assert_uint_eq(li, 1);
	ck_assert_int_eq(n_delays, 1);
	ck_assert_uint_eq(delay_ms, 15000);
}
END_TEST

START_TEST(critical_check_deletes_keys)
{
	bool found;
	char sess[80];
	uint64_t li;

	create(3, "s1", S_SERF_DELETE);
	acquire(4, "lock/d", "s1");
	reg(5, "nodeb", "critical", false);
	ck_assert(!session_exists("s1"));
	kv("lock/d", &found, sess, sizeof(sess), &li);
	ck_assert(!found);
}
END_TEST

START_TEST(check_service_node_deregistration)
{
	create(3, "by-serf", S_SERF);
	create(4, "by-svc", S_SVC);
	create(5, "no-checks", S_NONE);

	/* the service (and its check) goes: only its session ends */
	catalog_cmd_deregister(&w, "nodeb", "web", NULL);
	ck_assert_int_eq(apply_w(6).code, 0);
	ck_assert(!session_exists("by-svc"));
	ck_assert(session_exists("by-serf"));
	/* the serfHealth check alone, named in another case of the node */
	catalog_cmd_deregister(&w, "NODEB", NULL, "serfHealth");
	ck_assert_int_eq(apply_w(7).code, 0);
	ck_assert(!session_exists("by-serf"));
	ck_assert(session_exists("no-checks"));
	/* the node: every session on it */
	catalog_cmd_deregister(&w, "nodeb", NULL, NULL);
	ck_assert_int_eq(apply_w(8).code, 0);
	ck_assert(!session_exists("no-checks"));
}
END_TEST

START_TEST(create_refused_as_consul)
{
	struct fsm_result r;

	session_cmd_create(&w, "x1",
			   "{\"Node\":\"nobody\",\"Behavior\":\"release\",\"LockDelay\":0,"
			   "\"NodeChecks\":[]}");
	r = apply_w(3);
	ck_assert_int_lt(r.code, 0);
	ck_assert_str_eq(r.msg, "Missing node registration");
	session_cmd_create(&w, "x2",
			   "{\"Node\":\"nodeb\",\"Behavior\":\"release\",\"LockDelay\":0,"
			   "\"NodeChecks\":[\"serfHealth\",\"nope\"]}");
	r = apply_w(4);
	ck_assert_int_lt(r.code, 0);
	ck_assert_str_eq(r.msg, "Missing check 'nope' registration");
	reg(5, "nodeb", "critical", true);
	session_cmd_create(&w, "x3", S_SERF);
	r = apply_w(6);
	ck_assert_int_lt(r.code, 0);
	ck_assert_str_eq(r.msg, "Check 'serfHealth' is in critical state");
	ck_assert(!session_exists("x1") && !session_exists("x2") && !session_exists("x3"));
	/* a service check that passes is fine though serfHealth is critical */
	create(7, "x4", S_SVC);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("reconcile");
	TCase *d = tcase_create("decide");
	TCase *f = tcase_create("fsm");

	tcase_add_test(d, decide_alive);
	tcase_add_test(d, decide_failed_left_reaped);
	tcase_add_test(d, server_members);
	suite_add_tcase(s, d);
	tcase_add_checked_fixture(f, setup, teardown);
	tcase_add_test(f, critical_check_releases_lock);
	tcase_add_test(f, critical_check_deletes_keys);
	tcase_add_test(f, check_service_node_deregistration);
	tcase_add_test(f, create_refused_as_consul);
	suite_add_tcase(s, f);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
