/* Network coordinates in the replicated state (raftd/coordinate.c):
 * update commands (catalog nodes only), the coordinates index and its
 * watch key, deletion with the node, and the ?near= sort as a pure
 * function (nodes without coordinates last, check groups kept). */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "catalog.h"
#include "coordinate.h"
#include "err.h"
#include "fsm.h"
#include "mp.h"
#include "store.h"
#include "vivaldi.h"
#include "tmpstore.h"

static char dir[256];
static struct store *st;
static struct arena ar;
static struct mp_writer w;
static char changed[64][80];
static int n_changed;

static void setup(void)
{
	st = tmpstore_open("coord", dir, sizeof(dir));
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

static void reg_node(uint64_t index, const char *node)
{
	struct proto_node n = {.node = node, .address = "10.0.0.1", .datacenter = "dc1"};

	catalog_cmd_register(&w, &n, false, NULL, NULL, 0);
	ck_assert_int_eq(apply_w(index).code, 0);
}

/* A coordinate at x seconds along the first axis. */
static struct proto_coord coord_at(const char *node, double x, uint8_t *buf)
{
	struct vivaldi_coord c;
	struct vivaldi_config cfg;
	struct proto_coord p = {.node = node, .segment = ""};

	vivaldi_config_default(&cfg);
	vivaldi_coord_init(&c, &cfg);
	c.vec[0] = x;
	c.error = 0.2;
	vivaldi_coord_encode(&c, buf);
	p.coord.ptr = buf;
	p.coord.len = VIVALDI_WIRE_LEN;
	return p;
}

static void list(const char *node, struct proto_coord **v, size_t *n, uint64_t *index)
{
	struct store_txn *txn;

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(coordinate_list(txn, &ar, node, v, n, index), 0);
	store_txn_abort(txn);
}

START_TEST(update_list_and_delete)
{
	uint8_t b1[VIVALDI_WIRE_LEN], b2[VIVALDI_WIRE_LEN], b3[VIVALDI_WIRE_LEN];
	struct proto_coord in[3];
	struct proto_coord *v;
	struct vivaldi_coord c;
	struct store_txn *txn;
	const char *why = NULL;
	size_t n;
	uint64_t index;
	struct fsm_result r;

	reg_node(5, "Alpha");
	reg_node(6, "beta");
	in[0] = coord_at("alpha", 0.010, b1);
	in[1] = coord_at("beta", 0.020, b2);
	in[2] = coord_at("ghost", 0.030, b3); /* not in the catalog: skipped */
	ck_assert_int_eq(coordinate_cmd_update(&w, in, 3, &why), 0);
	r = apply_w(9);
	ck_assert_int_eq(r.code, 0);
	ck_assert(was_changed(COORDINATE_WATCH_KEY));
	ck_assert(!was_changed("catalog")); /* catalog indexes stay */

	list(NULL, &v, &n, &index);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(index, 9);
	ck_assert_str_eq(v[0].node, "alpha"); /* as sent */
	ck_assert_str_eq(v[1].node, "beta");
	ck_assert_str_eq(v[1].segment, "");
	ck_assert_int_eq(vivaldi_coord_decode(v[1].coord.ptr, v[1].coord.len, &c), 0);
	ck_assert(c.vec[0] == 0.020);

	list("BETA", &v, &n, &index);
	ck_assert_uint_eq(n, 1);
	list("ghost", &v, &n, &index);
	ck_assert_uint_eq(n, 0);

	ck_assert_int_eq(store_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(coordinate_get(txn, "ALPHA", &c), 0);
	ck_assert(c.vec[0] == 0.010);
	ck_assert_int_eq(coordinate_get(txn, "ghost", &c), -ENOENT);
	store_txn_abort(txn);

	/* only unknown nodes: nothing stored, the index stays */
	ck_assert_int_eq(coordinate_cmd_update(&w, &in[2], 1, &why), 0);
	r = apply_w(10);
	ck_assert_int_eq(r.code, 0);
	ck_assert(!was_changed(COORDINATE_WATCH_KEY));
	list(NULL, &v, &n, &index);
	ck_assert_uint_eq(index, 9);

	/* deleting the node deletes its coordinate and moves the index */
	catalog_cmd_deregister(&w, "alpha", NULL, NULL);
	r = apply_w(12);
	ck_assert_int_eq(r.code, 0);
	ck_assert(was_changed(COORDINATE_WATCH_KEY));
	list(NULL, &v, &n, &index);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(v[0].node, "beta");
	ck_assert_uint_eq(index, 12);
}
END_TEST

START_TEST(update_validation)
{
	uint8_t b[VIVALDI_WIRE_LEN];
	struct proto_coord in = coord_at("n1", 0.01, b);
	const char *why = NULL;

	ck_assert_int_eq(coordinate_cmd_update(&w, &in, 0, &why), -EINVAL);
	in.node = "";
	ck_assert_int_eq(coordinate_cmd_update(&w, &in, 1, &why), -EINVAL);
	ck_assert_str_eq(why, "Missing node name");
	in.node = "n1";
	in.coord.len = 10;
	ck_assert_int_eq(coordinate_cmd_update(&w, &in, 1, &why), -EINVAL);
	ck_assert_str_eq(why, "Invalid coordinate");
	/* a truncated command is refused by the FSM, not applied */
	in.coord.len = VIVALDI_WIRE_LEN;
	ck_assert_int_eq(coordinate_cmd_update(&w, &in, 1, &why), 0);
	w.len -= 3;
	ck_assert_int_eq(apply_w(3).code, CAIRN_E_PROTO);
}
END_TEST

/* ---- the near sort (pure) ---------------------------------------------- */

/* distances: n-name's digit is its distance; "far" and "x" have none */
static double fake_dist(void *ctx, const char *node)
{
	(void)ctx;
	if (node[0] == 'n' && node[1] >= '0' && node[1] <= '9')
		return (node[1] - '0') * 0.001;
	return INFINITY;
}

START_TEST(near_sort_nodes_and_services)
{
	struct proto_node nodes[] = {{.node = "far"}, {.node = "n3"}, {.node = "n1"},
				     {.node = "x"}, {.node = "n2"}};
	struct proto_service svcs[] = {{.node = "n9", .id = "a"}, {.node = "far", .id = "b"},
				       {.node = "n1", .id = "c"}, {.node = "n1", .id = "d"}};
	struct catalog_answer a = {.nodes = nodes, .n_nodes = 5, .services = svcs, .n_services = 4};

	ck_assert_int_eq(coordinate_sort_answer(&ar, CATALOG_VIEW_NODES, &a, fake_dist, NULL), 0);
	ck_assert_str_eq(nodes[0].node, "n1");
	ck_assert_str_eq(nodes[1].node, "n2");
	ck_assert_str_eq(nodes[2].node, "n3");
	ck_assert_str_eq(nodes[3].node, "far"); /* no coordinate: last, in order */
	ck_assert_str_eq(nodes[4].node, "x");

	ck_assert_int_eq(coordinate_sort_answer(&ar, CATALOG_VIEW_SERVICE, &a, fake_dist, NULL), 0);
	ck_assert_str_eq(svcs[0].id, "c"); /* stable among equals */
	ck_assert_str_eq(svcs[1].id, "d");
	ck_assert_str_eq(svcs[2].id, "a");
	ck_assert_str_eq(svcs[3].id, "b");

	/* views that list no nodes are left alone */
	ck_assert_int_eq(coordinate_sort_answer(&ar, CATALOG_VIEW_SERVICES, &a, fake_dist, NULL),
			 0);
}
END_TEST

START_TEST(near_sort_health_service_keeps_check_groups)
{
	/* instances on n5 (service check + node check) and n1 (node check) */
	struct proto_service svcs[] = {{.node = "n5", .id = "web5"}, {.node = "n1", .id = "web1"}};
	struct proto_check chks[] = {
	    {.node = "n5", .check_id = "svc5", .service_id = "web5"},
	    {.node = "n5", .check_id = "serfHealth", .service_id = ""},
	    {.node = "n1", .check_id = "serfHealth", .service_id = ""},
	};
	struct catalog_answer a = {.services = svcs, .n_services = 2, .checks = chks, .n_checks = 3};

	ck_assert_int_eq(
	    coordinate_sort_answer(&ar, CATALOG_VIEW_HEALTH_SERVICE, &a, fake_dist, NULL), 0);
	ck_assert_str_eq(svcs[0].id, "web1");
	ck_assert_str_eq(svcs[1].id, "web5");
	ck_assert_str_eq(chks[0].node, "n1");
	ck_assert_str_eq(chks[1].check_id, "svc5");
	ck_assert_str_eq(chks[2].node, "n5");
	ck_assert_str_eq(chks[2].check_id, "serfHealth");
}
END_TEST

static Suite *coordinate_suite(void)
{
	Suite *s = suite_create("coordinate");
	TCase *tc = tcase_create("store");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, update_list_and_delete);
	tcase_add_test(tc, update_validation);
	tcase_add_test(tc, near_sort_nodes_and_services);
	tcase_add_test(tc, near_sort_health_service_keeps_check_groups);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(coordinate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
