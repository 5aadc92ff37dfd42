/* Catalog services and checks: Consul's register/deregister semantics,
 * the read views, filters and per-view indexes. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "catalog.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "store.h"
#include "tmpstore.h"

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static char changed[64][80];
static int n_changed;

static void setup(void)
{
	st = tmpstore_open("catalog", dir, sizeof(dir));
	arena_init(&ar, 0);
	mp_writer_init(&w);
	n_changed = 0;
}

static void teardown(void)
{
	mp_writer_close(&w);
	arena_close(&ar);
	tmpstore_close(st, dir);
}

static void on_change(void *ctx, enum fsm_space space, const char *key, size_t klen)
{
	(void)ctx;
	if (space != FSM_SPACE_CATALOG || n_changed == 64)
		return;
	snprintf(changed[n_changed++], sizeof(changed[0]), "%.*s", (int)klen, key);
}

static bool was_changed(const char *key)
{
	for (int i = 0; i < n_changed; i++)
		if (!strcmp(changed[i], key))
			return true;
	return false;
}

static struct fsm_result apply_w(uint64_t index)
{
	struct store_txn *txn;
	struct fsm_result res;

	n_changed = 0;
	ck_assert_int_eq(w.err, 0);
	ck_assert_int_eq(store_txn_begin(st, true, &txn), 0);
	ck_assert_int_eq(fsm_apply(txn, index, w.buf, w.len, &res, on_change, NULL), 0);
	ck_assert_int_eq(store_txn_commit(txn), 0);
	return res;
}

static const char *web_tags[] = {"v1", "Primary"};
static const char *meta_k[] = {"rack"};
static const char *meta_a[] = {"a"};
static const char *meta_b[] = {"b"};

static struct fsm_result reg(uint64_t index, const char *node, const char *addr, const char *rack,
			     const char *sid, const char *sname, size_t ntags, const char *cid,
			     const char *status, const char *check_sid)
{
	struct proto_node n = {.node = node, .address = addr, .datacenter = "dc1"};
	struct proto_service s = {
	    .id = sid, .service = sname, .port = 80, .tags = {web_tags, ntags}};
	struct proto_check c = {.check_id = cid,
				.name = cid,
				.status = status,
				.service_id = check_sid ? check_sid : "",
				.type = "ttl"};

	if (rack) {
		n.meta.keys = meta_k;
		n.meta.vals = rack[0] == 'a' ? meta_a : meta_b;
		n.meta.n = 1;
	}
	catalog_cmd_register(&w, &n, false, sid ? &s : NULL, cid ? &c : NULL, cid ? 1 : 0);
	return apply_w(index);
}

static struct catalog_answer query(unsigned view, const char *name, bool passing, const char **tags,
				   size_t ntags, const char *rack)
{
	struct proto_catalog_query q = {.view = view, .name = name, .passing = passing};
	struct store_txn *txn;
	struct catalog_answer a;

	q.tags.v = tags;
	q.tags.n = ntags;
	if (rack) {
		q.node_meta.keys = meta_k;
		q.node_meta.vals = rack[0] == 'a' ? meta_a : meta_b;
		q.node_meta.n = 1;
	}
	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(catalog_query(txn, &ar, &q, &a), 0);
	store_txn_abort(txn);
	return a;
}

START_TEST(register_service_and_check)
{
	struct fsm_result r;
	struct catalog_answer a;

	r = reg(10, "Node1", "10.0.0.1", "a", "web1", "web", 2, "c1", "passing", "web1");
	ck_assert_int_eq(r.code, 0);
	ck_assert(r.ok);
	ck_assert(was_changed("svc:web"));
	ck_assert(was_changed("services"));
	ck_assert(was_changed("checks"));
	ck_assert(was_changed("nodes"));

	a = query(CATALOG_VIEW_SERVICE, "WEB", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 1);
	ck_assert_str_eq(a.services[0].id, "web1");
	ck_assert_str_eq(a.services[0].node, "Node1");
	ck_assert_uint_eq(a.services[0].create_index, 10);
	ck_assert_uint_eq(a.services[0].modify_index, 10);
	ck_assert_uint_eq(a.n_nodes, 1);
	ck_assert_str_eq(a.nodes[0].address, "10.0.0.1");
	ck_assert_uint_eq(a.index, 10);
	ck_assert_str_eq(a.watch_key, "svc:web");

	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", true, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 1);
	ck_assert_uint_eq(a.n_checks, 1);
	ck_assert_str_eq(a.checks[0].service_name, "web");
	ck_assert_uint_eq(a.checks[0].service_tags.n, 2);
	ck_assert_str_eq(a.checks[0].status, "passing");

	/* identical re-registration: no index move, no wake-up */
	r = reg(11, "Node1", "10.0.0.1", "a", "web1", "web", 2, "c1", "passing", "web1");
	ck_assert(r.ok);
	ck_assert_int_eq(n_changed, 0);
	a = query(CATALOG_VIEW_SERVICE, "web", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.index, 10);
	ck_assert_uint_eq(a.services[0].modify_index, 10);
}
END_TEST

START_TEST(passing_tags_and_node_meta)
{
	struct catalog_answer a;
	const char *want_v1[] = {"v1"}, *want_primary[] = {"primary"};

	reg(10, "n1", "10.0.0.1", "a", "web1", "web", 2, "c1", "passing", "web1");
	reg(11, "n2", "10.0.0.2", "b", "web2", "web", 1, "c2", "critical", "web2");
	/* a node-level check on n1 that warns makes web1 not passing */
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", true, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 1);
	ck_assert_str_eq(a.services[0].id, "web1");
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 2);
	ck_assert_uint_eq(a.index, 11);

	reg(12, "n1", "10.0.0.1", "a", NULL, NULL, 0, "serfHealth", "warning", NULL);
	ck_assert(was_changed("svc:web")); /* node check moves the service index */
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", true, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 0);
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.index, 12);
	ck_assert_uint_eq(a.n_checks, 3); /* c1, serfHealth, c2 */

	a = query(CATALOG_VIEW_SERVICE, "web", false, want_primary, 1, NULL);
	ck_assert_uint_eq(a.n_services, 1); /* tags match case-insensitively */
	ck_assert_str_eq(a.services[0].id, "web1");
	a = query(CATALOG_VIEW_SERVICE, "web", false, want_v1, 1, "b");
	ck_assert_uint_eq(a.n_services, 1);
	ck_assert_str_eq(a.services[0].id, "web2");

	a = query(CATALOG_VIEW_NODES, NULL, false, NULL, 0, "a");
	ck_assert_uint_eq(a.n_nodes, 1);
	ck_assert_str_eq(a.nodes[0].node, "n1");
	a = query(CATALOG_VIEW_HEALTH_STATE, "critical", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 1);
	ck_assert_str_eq(a.checks[0].check_id, "c2");
	a = query(CATALOG_VIEW_HEALTH_STATE, "any", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 3);
	a = query(CATALOG_VIEW_HEALTH_CHECKS, "web", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 2);
	a = query(CATALOG_VIEW_HEALTH_NODE, "N1", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 2);
}
END_TEST

START_TEST(services_view_merges_tags)
{
	struct catalog_answer a;

	reg(10, "n1", "10.0.0.1", NULL, "web1", "web", 1, NULL, NULL, NULL);
	reg(11, "n2", "10.0.0.2", NULL, "web2", "web", 2, NULL, NULL, NULL);
	reg(12, "n2", "10.0.0.2", NULL, "db", "db", 0, NULL, NULL, NULL);
	a = query(CATALOG_VIEW_SERVICES, NULL, false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 2);
	ck_assert_str_eq(a.services[0].service, "db");
	ck_assert_str_eq(a.services[1].service, "web");
	ck_assert_uint_eq(a.services[1].tags.n, 2);
	ck_assert_uint_eq(a.index, 12);

	a = query(CATALOG_VIEW_NODE_SERVICES, "n2", false, NULL, 0, NULL);
	ck_assert(a.found);
	ck_assert_uint_eq(a.n_services, 2);
	a = query(CATALOG_VIEW_NODE, "nope", false, NULL, 0, NULL);
	ck_assert(!a.found);
	ck_assert_uint_eq(a.n_services, 0);
}
END_TEST

START_TEST(deregister)
{
	struct catalog_answer a;
	struct fsm_result r;

	reg(10, "n1", "10.0.0.1", NULL, "web1", "web", 1, "c1", "passing", "web1");
	reg(11, "n1", "10.0.0.1", NULL, "db1", "db", 0, "c2", "passing", "db1");

	catalog_cmd_deregister(&w, "n1", NULL, "c1");
	r = apply_w(12);
	ck_assert(r.ok);
	ck_assert(was_changed("svc:web"));
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "web", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 0);
	ck_assert_uint_eq(a.index, 12);

	catalog_cmd_deregister(&w, "n1", "db1", NULL);
	r = apply_w(13);
	ck_assert(r.ok);
	a = query(CATALOG_VIEW_SERVICE, "db", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 0);
	ck_assert_uint_eq(a.index, 13); /* the service index stays and moved */
	a = query(CATALOG_VIEW_HEALTH_STATE, "any", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 0); /* c2 went with db1 */

	catalog_cmd_deregister(&w, "N1", NULL, NULL);
	r = apply_w(14);
	ck_assert(r.ok);
	a = query(CATALOG_VIEW_NODES, NULL, false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_nodes, 0);
	ck_assert_uint_eq(a.index, 14);
	a = query(CATALOG_VIEW_SERVICES, NULL, false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 0);

	/* deregistering what does not exist is fine and changes nothing */
	catalog_cmd_deregister(&w, "n1", "web1", NULL);
	r = apply_w(15);
	ck_assert(r.ok);
	ck_assert_int_eq(n_changed, 0);
}
END_TEST

START_TEST(refused_commands_change_nothing)
{
	struct fsm_result r;
	struct catalog_answer a;

	/* a check naming a service the node does not have */
	r = reg(10, "n1", "10.0.0.1", NULL, NULL, NULL, 0, "c1", "passing", "nosuch");
	ck_assert_int_eq(r.code, CAIRN_E_BADREQ);
	a = query(CATALOG_VIEW_NODES, NULL, false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_nodes, 0);
	/* a bad status */
	r = reg(11, "n1", "10.0.0.1", NULL, NULL, NULL, 0, "c1", "ok", NULL);
	ck_assert_int_eq(r.code, CAIRN_E_BADREQ);
	/* missing address */
	r = reg(12, "n1", "", NULL, NULL, NULL, 0, NULL, NULL, NULL);
	ck_assert_int_eq(r.code, CAIRN_E_BADREQ);
	/* an empty status means critical */
	r = reg(13, "n1", "10.0.0.1", NULL, NULL, NULL, 0, "c1", "", NULL);
	ck_assert_int_eq(r.code, 0);
	a = query(CATALOG_VIEW_HEALTH_STATE, "critical", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_checks, 1);
	/* truncated command */
	catalog_cmd_deregister(&w, "n1", NULL, NULL);
	w.len -= 1;
	r = apply_w(14);
	ck_assert_int_eq(r.code, CAIRN_E_PROTO);
}
END_TEST

START_TEST(unknown_service_index_falls_back)
{
	struct catalog_answer a;

	reg(10, "n1", "10.0.0.1", NULL, NULL, NULL, 0, NULL, NULL, NULL);
	a = query(CATALOG_VIEW_HEALTH_SERVICE, "ghost", false, NULL, 0, NULL);
	ck_assert_uint_eq(a.n_services, 0);
	ck_assert_uint_eq(a.index, 10);
	ck_assert_str_eq(a.watch_key, "catalog");
}
END_TEST

static Suite *catalog_suite(void)
{
	Suite *s = suite_create("catalog");
	TCase *tc = tcase_create("catalog");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, register_service_and_check);
	tcase_add_test(tc, passing_tags_and_node_meta);
	tcase_add_test(tc, services_view_merges_tags);
	tcase_add_test(tc, deregister);
	tcase_add_test(tc, refused_commands_change_nothing);
	tcase_add_test(tc, unknown_service_index_falls_back);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(catalog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
