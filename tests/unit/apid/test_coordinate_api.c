/* Unit tests: /v1/coordinate requests and replies (apid/coordinate_api.c
 * through routes.c), ?near= turning a catalog read into a
 * CATALOG_QUERY_NEAR, ?filter= selector validation (filter.c), and
 * /v1/agent/metrics rendering. Pure: no daemons. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "filter.h"
#include "proto.h"
#include "routes.h"
#include "vivaldi.h"

static struct arena a;
static struct config cfg;
static struct routes_env env;
static struct routes_action act;

static void setup(void)
{
	arena_init(&a, 0);
	memset(&cfg, 0, sizeof(cfg));
	cfg.datacenter = "dc1";
	cfg.node_name = "node1";
	cfg.advertise_addr = "127.0.0.1";
	cfg.server = true;
	cfg.kv_max_value_size = 512 * 1024;
	cfg.http_max_body = 576 * 1024;
	memset(&env, 0, sizeof(env));
	env.cfg = &cfg;
	memset(&act, 0, sizeof(act));
}

static void teardown(void) { arena_close(&a); }

static void dispatch(const char *method, const char *target, const char *body)
{
	struct routes_req req = {.method = method, .target = target};

	if (body) {
		req.body = (const uint8_t *)body;
		req.body_len = strlen(body);
		req.body_seen = req.body_len;
	}
	memset(&act, 0, sizeof(act));
	ck_assert_int_eq(routes_dispatch(&env, &req, &a, &act), 0);
}

static const char *body_of(const struct routes_resp *r)
{
	return r->body ? r->body : "";
}

START_TEST(coordinate_reads_become_coord_queries)
{
	dispatch("GET", "/v1/coordinate/nodes?index=7&wait=2s", NULL);
	ck_assert(!act.respond);
	ck_assert_int_eq(act.call.peer, ROUTES_PEER_RAFTD);
	ck_assert_uint_eq(act.call.msg.type, PROTO_COORD_QUERY);
	ck_assert_ptr_null(act.call.msg.u.coord_query.node);
	ck_assert_uint_eq(act.call.msg.u.coord_query.min_index, 7);
	ck_assert_uint_eq(act.call.msg.u.coord_query.wait_ms, 2000);

	dispatch("GET", "/v1/coordinate/node/web-1?stale", NULL);
	ck_assert_str_eq(act.call.msg.u.coord_query.node, "web-1");
	ck_assert_uint_eq(act.call.msg.u.coord_query.mode, 2);

	dispatch("GET", "/v1/coordinate/datacenters", NULL);
	ck_assert_int_eq(act.call.peer, ROUTES_PEER_GOSSIPD);
	ck_assert_uint_eq(act.call.msg.type, PROTO_COORD_GET);
	ck_assert(act.call.msg.u.coord_get.wan);

	dispatch("GET", "/v1/coordinate/nodes?dc=other", NULL);
	ck_assert(act.respond);
	ck_assert_uint_eq(act.resp.status, 500);
	dispatch("GET", "/v1/coordinate/bogus", NULL);
	ck_assert_uint_eq(act.resp.status, 404);
	dispatch("PUT", "/v1/coordinate/nodes", NULL);
	ck_assert_uint_eq(act.resp.status, 405);
}
END_TEST

START_TEST(coordinate_update_body)
{
	struct vivaldi_coord c;
	const struct proto_coord *rec;

	dispatch("PUT", "/v1/coordinate/update",
		 "{\"Node\":\"n1\",\"Segment\":\"\",\"Coord\":{\"Vec\":[0.5,0,0,0,0,0,0,-1],"
		 "\"Error\":0.3,\"Adjustment\":-0.01,\"Height\":0.0002}}");
	ck_assert(!act.respond);
	ck_assert_uint_eq(act.call.msg.type, PROTO_COORD_UPDATE);
	ck_assert_uint_eq(act.call.msg.u.coord_update.coords.n, 1);
	rec = &act.call.msg.u.coord_update.coords.v[0];
	ck_assert_str_eq(rec->node, "n1");
	ck_assert_int_eq(vivaldi_coord_decode(rec->coord.ptr, rec->coord.len, &c), 0);
	ck_assert(c.vec[0] == 0.5 && c.vec[7] == -1 && c.error == 0.3 && c.height == 0.0002 &&
		  c.adjustment == -0.01);

	/* python-consul's lower-case keys work too */
	dispatch("PUT", "/v1/coordinate/update",
		 "{\"node\":\"n1\",\"coord\":{\"vec\":[0,0,0,0,0,0,0,0]}}");
	ck_assert(!act.respond);

	dispatch("PUT", "/v1/coordinate/update", "{\"Coord\":{\"Vec\":[0,0,0,0,0,0,0,0]}}");
	ck_assert_uint_eq(act.resp.status, 400);
	ck_assert_str_eq(body_of(&act.resp), "Missing node name");
	dispatch("PUT", "/v1/coordinate/update", "{\"Node\":\"n1\",\"Coord\":{\"Vec\":[1,2]}}");
	ck_assert_uint_eq(act.resp.status, 400);
	dispatch("PUT", "/v1/coordinate/update",
		 "{\"Node\":\"n1\",\"Coord\":{\"Vec\":[0,0,0,0,0,0,0,\"x\"]}}");
	ck_assert_uint_eq(act.resp.status, 400);
	dispatch("PUT", "/v1/coordinate/update", "not json");
	ck_assert_uint_eq(act.resp.status, 400);
}
END_TEST

START_TEST(coordinate_replies)
{
	struct routes_resp out;
	struct proto_msg reply;
	struct proto_coord rec = {.node = "n1", .segment = ""};
	struct vivaldi_coord c = {.error = 1.5, .height = 1e-5};
	uint8_t wire[VIVALDI_WIRE_LEN];

	c.vec[0] = 0.25;
	vivaldi_coord_encode(&c, wire);
	rec.coord.ptr = wire;
	rec.coord.len = sizeof(wire);

	dispatch("GET", "/v1/coordinate/nodes", NULL);
	reply = proto_msg_make(PROTO_COORD_QUERY_REPLY);
	reply.u.coord_query_reply.index = 12;
	reply.u.coord_query_reply.known_leader = true;
	reply.u.coord_query_reply.coords.v = &rec;
	reply.u.coord_query_reply.coords.n = 1;
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &reply, &a, &out), 0);
	ck_assert_uint_eq(out.status, 200);
	ck_assert_str_eq(body_of(&out),
			 "[{\"Node\":\"n1\",\"Segment\":\"\",\"Coord\":{\"Adjustment\":0.0,"
			 "\"Error\":1.5,\"Height\":1e-5,\"Vec\":[0.25,0.0,0.0,0.0,"
			 "0.0,0.0,0.0,0.0]}}]");

	/* one unknown node: 404 */
	dispatch("GET", "/v1/coordinate/node/zz", NULL);
	reply.u.coord_query_reply.coords.n = 0;
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &reply, &a, &out), 0);
	ck_assert_uint_eq(out.status, 404);

	/* datacenters: grouped, AreaID wan */
	dispatch("GET", "/v1/coordinate/datacenters", NULL);
	rec.datacenter = "dc1";
	reply = proto_msg_make(PROTO_COORD_GET_REPLY);
	reply.u.coord_get_reply.coords.v = &rec;
	reply.u.coord_get_reply.coords.n = 1;
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &reply, &a, &out), 0);
	ck_assert_uint_eq(out.status, 200);
	ck_assert_ptr_nonnull(strstr(body_of(&out), "\"Datacenter\":\"dc1\""));
	ck_assert_ptr_nonnull(strstr(body_of(&out), "\"AreaID\":\"wan\""));

	/* update: empty 200 */
	dispatch("PUT", "/v1/coordinate/update",
		 "{\"Node\":\"n1\",\"Coord\":{\"Vec\":[0,0,0,0,0,0,0,0]}}");
	reply = proto_msg_make(PROTO_WRITE_REPLY);
	reply.u.write_reply.ok = true;
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &reply, &a, &out), 0);
	ck_assert_uint_eq(out.status, 200);
	ck_assert_uint_eq(out.body_len, 0);
}
END_TEST

START_TEST(near_makes_a_near_query)
{
	dispatch("GET", "/v1/catalog/nodes?near=_agent", NULL);
	ck_assert_uint_eq(act.call.msg.type, PROTO_CATALOG_QUERY_NEAR);
	ck_assert_str_eq(act.call.msg.u.catalog_query_near.near, "node1");
	ck_assert_uint_eq(act.call.msg.u.catalog_query_near.view, 1);

	dispatch("GET", "/v1/health/service/web?near=db-3&passing&tag=v1&index=4", NULL);
	ck_assert_uint_eq(act.call.msg.type, PROTO_CATALOG_QUERY_NEAR);
	ck_assert_str_eq(act.call.msg.u.catalog_query_near.near, "db-3");
	ck_assert_str_eq(act.call.msg.u.catalog_query_near.name, "web");
	ck_assert(act.call.msg.u.catalog_query_near.passing);
	ck_assert_uint_eq(act.call.msg.u.catalog_query_near.tags.n, 1);
	ck_assert_uint_eq(act.call.msg.u.catalog_query_near.min_index, 4);

	/* views without nodes to sort, and no ?near=: a plain query */
	dispatch("GET", "/v1/catalog/services?near=_agent", NULL);
	ck_assert_uint_eq(act.call.msg.type, PROTO_CATALOG_QUERY);
	dispatch("GET", "/v1/catalog/nodes", NULL);
	ck_assert_uint_eq(act.call.msg.type, PROTO_CATALOG_QUERY);
}
END_TEST

START_TEST(filter_selectors_checked)
{
	struct filter *f;
	char err[256];
	const char *schema = "Node(ID Node Meta{}) Service(ID Tags[] Weights(Passing Warning)) "
			     "Checks[](Status ServiceTags[])";

	ck_assert_int_eq(filter_parse("Node.Node == a and Service.Tags contains x", &f, err,
				      sizeof(err)),
			 0);
	ck_assert_int_eq(filter_check_selectors(f, schema, err, sizeof(err)), 0);
	filter_free(f);
	ck_assert_int_eq(filter_parse("node.meta.rack == r1 or Checks.Status == critical or "
				      "Service.Weights.Passing == 1",
				      &f, err, sizeof(err)),
			 0);
	ck_assert_int_eq(filter_check_selectors(f, schema, err, sizeof(err)), 0);
	filter_free(f);
	ck_assert_int_eq(filter_parse("Node.Node == a and not Service.Bogus == x", &f, err,
				      sizeof(err)),
			 0);
	ck_assert_int_eq(filter_check_selectors(f, schema, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "Failed to create boolean expression evaluator: Selector "
			      "\"Service.Bogus\" is not valid");
	filter_free(f);
	/* below a scalar or a list of scalars: invalid */
	ck_assert_int_eq(filter_parse("Service.Tags.x == y", &f, err, sizeof(err)), 0);
	ck_assert_int_eq(filter_check_selectors(f, schema, err, sizeof(err)), -EINVAL);
	filter_free(f);

	/* through the router: 400 on a catalog view */
	dispatch("GET", "/v1/catalog/nodes?filter=Nope%20%3D%3D%20x", NULL);
	ck_assert_uint_eq(act.resp.status, 400);
	ck_assert_str_eq(body_of(&act.resp), "Failed to create boolean expression evaluator: "
					     "Selector \"Nope\" is not valid");
	dispatch("GET", "/v1/health/service/web?filter=Service.Meta.env%20%3D%3D%20x", NULL);
	ck_assert(!act.respond);
}
END_TEST

START_TEST(metrics_reply)
{
	struct routes_resp out;
	struct proto_msg reply = proto_msg_make(PROTO_GOSSIP_STATS_REPLY);
	const char *ck[] = {"consul.memberlist.decrypt_failed"}, *cv[] = {"3"};
	const char *gk[] = {"consul.memberlist.health.score"}, *gv[] = {"0"};

	dispatch("GET", "/v1/agent/metrics", NULL);
	ck_assert(!act.respond);
	ck_assert_int_eq(act.call.peer, ROUTES_PEER_GOSSIPD);
	ck_assert_uint_eq(act.call.msg.type, PROTO_GOSSIP_STATS);
	reply.u.gossip_stats_reply.timestamp = "2026-11-24 14:00:00 +0000 UTC";
	reply.u.gossip_stats_reply.counters = (struct proto_map){ck, cv, 1};
	reply.u.gossip_stats_reply.gauges = (struct proto_map){gk, gv, 1};
	ck_assert_int_eq(routes_finish(&env, &act.call, 0, &reply, &a, &out), 0);
	ck_assert_uint_eq(out.status, 200);
	ck_assert_ptr_nonnull(strstr(body_of(&out), "\"Name\":\"consul.memberlist.decrypt_failed\""));
	ck_assert_ptr_nonnull(strstr(body_of(&out), "\"Count\":3"));
	ck_assert_ptr_nonnull(strstr(body_of(&out), "\"Timestamp\":\"2026-11-24 14:00:00 +0000 UTC\""));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("apid-coordinate");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, coordinate_reads_become_coord_queries);
	tcase_add_test(tc, coordinate_update_body);
	tcase_add_test(tc, coordinate_replies);
	tcase_add_test(tc, near_makes_a_near_query);
	tcase_add_test(tc, filter_selectors_checked);
	tcase_add_test(tc, metrics_reply);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
