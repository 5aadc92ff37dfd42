/* Process test: network coordinates on three servers (one Raft cluster,
 * one LAN gossip pool). Probes carry Vivaldi coordinates, every agent
 * sends its own to the servers (CAIRN_TEST_COORD_SYNC_MS shortens the
 * period), /v1/coordinate/nodes lists every node with an observed
 * coordinate, ?near=_agent puts the asking agent's node first and nodes
 * without coordinates last, /v1/coordinate/datacenters lists the dc, a
 * ?filter= with an unknown selector is a 400, and user events with service
 * and tag filters reach only the agents running a matching service; a
 * forged gossip datagram is counted in /v1/agent/metrics. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ptest.h"

#define N 3
#define WAIT_MS 60000

/* A gossip key, so that a forged datagram fails to decrypt. */
static const char *const encrypt_args[] = {"-encrypt",
					   "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", NULL};

/* Three servers joined through each other's Raft ports, then in one LAN
 * pool (the second and third join the first's gossip port). */
PTEST_CLUSTER_FIXTURE(N, {.name_prefix = "coord",
			  .join = HARNESS_JOIN_RAFT,
			  .extra_args = encrypt_args,
			  .join_lan_pool = true,
			  .timeout_ms = WAIT_MS})
#define REQUIRE_CLUSTER() ck_assert_msg(start_rc == 0, "cluster did not start: %s", start_err)

static void setup(void)
{
	/* agents send their coordinate every second instead of 15 s */
	setenv("CAIRN_TEST_COORD_SYNC_MS", "1000", 1);
	cluster_setup();
}

static json_t *get_json(int i, const char *path, long want)
{
	struct http_resp r;
	json_t *j;

	ck_assert_int_eq(http_get(&ags[i], path, &r), 0);
	EXPECT_STATUS(r, want);
	j = http_json(&r);
	http_resp_free(&r);
	ck_assert_msg(j != NULL, "%s: not JSON", path);
	return j;
}

/* True when /v1/coordinate/nodes on agent i lists every agent with a
 * coordinate that has seen at least one probe (error below the initial
 * 1.5) and 8 dimensions. */
static bool all_observed(int i)
{
	struct http_resp r;
	json_t *j = NULL, *e;
	size_t k, seen = 0;

	if (http_get(&ags[i], "/v1/coordinate/nodes", &r) == 0 && r.status == 200)
		j = http_json(&r);
	http_resp_free(&r);
	json_array_foreach(j, k, e)
	{
		json_t *c = json_object_get(e, "Coord");
		const char *node = json_string_value(json_object_get(e, "Node"));

		if (!node || !json_is_object(c) ||
		    json_array_size(json_object_get(c, "Vec")) != 8 ||
		    !json_is_string(json_object_get(e, "Segment")) ||
		    !json_is_number(json_object_get(c, "Height")) ||
		    !json_is_number(json_object_get(c, "Adjustment")) ||
		    json_number_value(json_object_get(c, "Error")) >= 1.5)
			continue;
		for (int a = 0; a < N; a++)
			seen += strcmp(node, ags[a].name) == 0;
	}
	json_decref(j);
	return seen == N;
}

START_TEST(every_node_has_a_coordinate)
{
	uint64_t end = harness_now_ms() + WAIT_MS;
	struct http_resp r;
	char idx[32];
	json_t *j;

	REQUIRE_CLUSTER();
	while (!all_observed(0) && harness_now_ms() < end)
		harness_pause_ms(200);
	ck_assert_msg(all_observed(0), "not every node has an observed coordinate");
	ck_assert(all_observed(2)); /* replicated */

	/* one node; an unknown one is a 404 */
	j = get_json(1, "/v1/coordinate/node/coord3", 200);
	ck_assert_uint_eq(json_array_size(j), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "Node")),
			 "coord3");
	json_decref(j);
	ck_assert_int_eq(http_get(&ags[1], "/v1/coordinate/node/nope", &r), 0);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);

	/* blocking: the next update (every second) answers a wait on the
	 * current index */
	ck_assert_int_eq(http_get(&ags[0], "/v1/coordinate/nodes", &r), 0);
	EXPECT_HEADER(r, "X-Consul-Index", idx);
	http_resp_free(&r);
	{
		char path[128], idx2[32];

		snprintf(path, sizeof(path), "/v1/coordinate/nodes?index=%s&wait=30s", idx);
		ck_assert_int_eq(http_get(&ags[0], path, &r), 0);
		EXPECT_STATUS(r, 200);
		EXPECT_HEADER(r, "X-Consul-Index", idx2);
		ck_assert_msg(strtoull(idx2, NULL, 10) > strtoull(idx, NULL, 10),
			      "index %s after waiting on %s", idx2, idx);
		http_resp_free(&r);
	}
}
END_TEST

/* Names of the nodes an array answer lists, in order (node field at
 * key, or inside the object at sub). */
static const char *name_at(json_t *arr, size_t i, const char *sub, const char *key)
{
	json_t *e = json_array_get(arr, i);

	if (sub)
		e = json_object_get(e, sub);
	return json_string_value(json_object_get(e, key));
}

START_TEST(near_sorts_by_distance)
{
	uint64_t end = harness_now_ms() + WAIT_MS;
	struct http_resp r;
	json_t *j;

	REQUIRE_CLUSTER();
	while (!all_observed(0) && harness_now_ms() < end)
		harness_pause_ms(200);
	/* "web" on every agent, and on two nodes with no agent: "far" 2 s
	 * away from everyone and "nocoord" without a coordinate */
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(http_put(&ags[i], "/v1/agent/service/register",
					  "{\"ID\":\"web\",\"Name\":\"web\",\"Port\":80}", &r),
				 0);
		EXPECT_STATUS(r, 200);
		http_resp_free(&r);
	}
	ck_assert_int_eq(http_put(&ags[0], "/v1/catalog/register",
				  "{\"Node\":\"far\",\"Address\":\"10.9.9.9\",\"Service\":{"
				  "\"Service\":\"web\",\"Port\":80}}",
				  &r),
			 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_int_eq(http_put(&ags[0], "/v1/catalog/register",
				  "{\"Node\":\"nocoord\",\"Address\":\"10.9.9.8\",\"Service\":{"
				  "\"Service\":\"web\",\"Port\":80}}",
				  &r),
			 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_int_eq(
	    http_put(&ags[1], "/v1/coordinate/update",
		     "{\"Node\":\"far\",\"Segment\":\"\",\"Coord\":{\"Vec\":[2,0,0,0,0,0,0,0],"
		     "\"Error\":0.2,\"Adjustment\":0,\"Height\":0.0001}}",
		     &r),
	    0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	/* a bad body is a 400 */
	ck_assert_int_eq(http_put(&ags[1], "/v1/coordinate/update",
				  "{\"Node\":\"far\",\"Coord\":{\"Vec\":[1,2]}}", &r),
			 0);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	j = get_json(0, "/v1/coordinate/node/far", 200);
	json_decref(j);
	/* the agents push their registrations to the catalog */
	end = harness_now_ms() + WAIT_MS;
	for (;;) {
		size_t n;

		j = get_json(2, "/v1/catalog/service/web", 200);
		n = json_array_size(j);
		json_decref(j);
		if (n == N + 2 || harness_now_ms() >= end)
			break;
		harness_pause_ms(100);
	}

	for (int i = 0; i < N; i++) {
		size_t n;

		/* catalog nodes: the asking agent first, far before nocoord */
		j = get_json(i, "/v1/catalog/nodes?near=_agent", 200);
		n = json_array_size(j);
		ck_assert_uint_eq(n, N + 2);
		ck_assert_str_eq(name_at(j, 0, NULL, "Node"), ags[i].name);
		ck_assert_str_eq(name_at(j, n - 2, NULL, "Node"), "far");
		ck_assert_str_eq(name_at(j, n - 1, NULL, "Node"), "nocoord");
		json_decref(j);

		/* catalog service and health service likewise */
		j = get_json(i, "/v1/catalog/service/web?near=_agent", 200);
		n = json_array_size(j);
		ck_assert_uint_eq(n, N + 2);
		ck_assert_str_eq(name_at(j, 0, NULL, "Node"), ags[i].name);
		ck_assert_str_eq(name_at(j, n - 1, NULL, "Node"), "nocoord");
		json_decref(j);
		j = get_json(i, "/v1/health/service/web?near=_agent", 200);
		n = json_array_size(j);
		ck_assert_uint_eq(n, N + 2);
		ck_assert_str_eq(name_at(j, 0, "Node", "Node"), ags[i].name);
		ck_assert_str_eq(name_at(j, n - 2, "Node", "Node"), "far");
		ck_assert_str_eq(name_at(j, n - 1, "Node", "Node"), "nocoord");
		json_decref(j);
	}
	/* near a named node: that node first, the others after it */
	j = get_json(2, "/v1/catalog/nodes?near=far", 200);
	ck_assert_str_eq(name_at(j, 0, NULL, "Node"), "far");
	ck_assert_str_eq(name_at(j, json_array_size(j) - 1, NULL, "Node"), "nocoord");
	json_decref(j);
	/* without ?near=: name order */
	j = get_json(2, "/v1/catalog/nodes", 200);
	ck_assert_str_eq(name_at(j, 0, NULL, "Node"), "coord1");
	json_decref(j);
}
END_TEST

START_TEST(datacenters_and_filter)
{
	struct http_resp r;
	json_t *j, *dc;

	REQUIRE_CLUSTER();
	j = get_json(0, "/v1/coordinate/datacenters", 200);
	ck_assert_uint_ge(json_array_size(j), 1);
	dc = json_array_get(j, 0);
	ck_assert_str_eq(json_string_value(json_object_get(dc, "Datacenter")), "dc1");
	ck_assert_str_eq(json_string_value(json_object_get(dc, "AreaID")), "wan");
	ck_assert_uint_ge(json_array_size(json_object_get(dc, "Coordinates")), 1);
	ck_assert_str_eq(
	    json_string_value(json_object_get(json_array_get(json_object_get(dc, "Coordinates"), 0),
					      "Node")),
	    "coord1");
	json_decref(j);

	/* an unknown selector is a 400 naming it; a known one works */
	ck_assert_int_eq(http_get(&ags[0], "/v1/catalog/nodes?filter=Nope%20%3D%3D%20x", &r), 0);
	EXPECT_STATUS(r, 400);
	ck_assert_msg(r.body && strstr(r.body, "Selector \"Nope\" is not valid"), "body %s",
		      r.body);
	http_resp_free(&r);
	ck_assert_int_eq(
	    http_get(&ags[0], "/v1/health/service/web?filter=Service.Bogus%20%3D%3D%20x", &r), 0);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	j = get_json(0, "/v1/catalog/nodes?filter=Meta.anything%20%3D%3D%20x", 200);
	ck_assert_uint_eq(json_array_size(j), 0);
	json_decref(j);
}
END_TEST

/* X-Consul-Index of /v1/event/list on agent i (events gossipd stored). */
static uint64_t event_index(int i)
{
	struct http_resp r;
	char idx[32] = "0";
	uint64_t v;

	if (http_get(&ags[i], "/v1/event/list", &r) == 0 && r.status == 200)
		(void)http_header(&r, "X-Consul-Index", idx, sizeof(idx));
	v = strtoull(idx, NULL, 10);
	/* the index is never 0: 1 with an empty list means no event yet */
	if (v == 1 && r.body && strcmp(r.body, "[]") == 0)
		v = 0;
	http_resp_free(&r);
	return v;
}

static bool lists_event(int i, const char *name)
{
	json_t *j = get_json(i, "/v1/event/list", 200), *e;
	size_t k;
	bool found = false;

	json_array_foreach(j, k, e)
	{
		found |= strcmp(json_string_value(json_object_get(e, "Name")), name) == 0;
	}
	json_decref(j);
	return found;
}

/* ?service= and ?tag= of event/fire are applied by each receiving agent
 * against its own services (Consul's shouldProcessUserEvent). */
START_TEST(event_service_and_tag_filters)
{
	uint64_t base1, base2, end;
	struct http_resp r;

	REQUIRE_CLUSTER();
	ck_assert_int_eq(http_put(&ags[1], "/v1/agent/service/register",
				  "{\"ID\":\"evsvc1\",\"Name\":\"evsvc\",\"Tags\":[\"blue\"]}", &r),
			 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	base1 = event_index(1);
	base2 = event_index(2);
	ck_assert_int_eq(http_put(&ags[0], "/v1/event/fire/ev-miss?service=nomatch", "", &r), 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_int_eq(http_put(&ags[0], "/v1/event/fire/ev-tagmiss?service=evsvc&tag=green", "",
				  &r),
			 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	ck_assert_int_eq(http_put(&ags[0], "/v1/event/fire/ev-hit?service=ev.*&tag=bl.*", "", &r),
			 0);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	/* wait until both receivers stored all three */
	end = harness_now_ms() + WAIT_MS;
	while ((event_index(1) < base1 + 3 || event_index(2) < base2 + 3) &&
	       harness_now_ms() < end)
		harness_pause_ms(100);
	ck_assert_uint_ge(event_index(1), base1 + 3);
	ck_assert_uint_ge(event_index(2), base2 + 3);
	ck_assert(lists_event(1, "ev-hit"));
	ck_assert(!lists_event(1, "ev-miss"));
	ck_assert(!lists_event(1, "ev-tagmiss"));
	ck_assert(!lists_event(2, "ev-hit")); /* no evsvc on coord3 */
	ck_assert(!lists_event(2, "ev-miss"));
}
END_TEST

/* Count of counter name in agent i's /v1/agent/metrics; -1 if absent. */
static long long counter(int i, const char *name)
{
	json_t *j = get_json(i, "/v1/agent/metrics", 200), *c;
	long long v = -1;
	size_t k;

	ck_assert(json_is_string(json_object_get(j, "Timestamp")));
	ck_assert(json_is_array(json_object_get(j, "Gauges")));
	json_array_foreach(json_object_get(j, "Counters"), k, c)
	{
		if (!strcmp(json_string_value(json_object_get(c, "Name")), name))
			v = (long long)json_integer_value(json_object_get(c, "Count"));
	}
	json_decref(j);
	return v;
}

/* A datagram no key opens is dropped and counted, and shows in
 * /v1/agent/metrics; so do the coordinate updates. */
START_TEST(metrics_count_decrypt_failures)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	uint8_t junk[64];
	long long before;
	uint64_t end;
	int fd;

	REQUIRE_CLUSTER();
	before = counter(0, "consul.memberlist.decrypt_failed");
	ck_assert_int_ge(before, 0);
	ck_assert_int_gt(counter(0, "consul.serf.coordinate.updates"), 0);
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 7 + 1);
	junk[0] = 1; /* looks like a sealed datagram: version 1 */
	sa.sin_port = htons((uint16_t)ags[0].serf_lan_port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	ck_assert_int_ge(fd, 0);
	end = harness_now_ms() + WAIT_MS;
	/* UDP may drop one: resend until counted */
	while (counter(0, "consul.memberlist.decrypt_failed") <= before &&
	       harness_now_ms() < end) {
		ck_assert_int_eq(sendto(fd, junk, sizeof(junk), 0, (struct sockaddr *)&sa, sizeof(sa)),
				 (int)sizeof(junk));
		harness_pause_ms(100);
	}
	close(fd);
	ck_assert_int_gt(counter(0, "consul.memberlist.decrypt_failed"), before);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-coordinates");
	TCase *tc = tcase_create("coordinates");

	tcase_add_unchecked_fixture(tc, setup, cluster_teardown);
	tcase_set_timeout(tc, 150);
	tcase_add_test(tc, every_node_has_a_coordinate);
	tcase_add_test(tc, near_sorts_by_distance);
	tcase_add_test(tc, datacenters_and_filter);
	tcase_add_test(tc, event_service_and_tag_filters);
	tcase_add_test(tc, metrics_count_decrypt_failures);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
