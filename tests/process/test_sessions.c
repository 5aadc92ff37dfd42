/* Process test: /v1/session end to end against a real agent: create with
 * defaults and with a body, info/list/node in Consul's shapes, renew (404
 * once gone), destroy, a blocking list woken by a create; KV ?acquire and
 * ?release: two clients contend, exactly one holds the lock, destroying the
 * holder's session releases it (or deletes the key with Behavior delete)
 * and the lock passes only after the lock-delay;
 * an unrenewed TTL session expires after twice its TTL, releasing it. */
#include <inttypes.h>
#include <pthread.h>

#include "ptest.h"

PTEST_AGENT_FIXTURE("sess-node", NULL)

/* PUT /v1/session/create with body; asserts 200 and returns the ID. */
static void create(const char *body, char *id, size_t idlen)
{
	struct http_resp r;
	json_t *j;

	http_put(&ag, "/v1/session/create", body, &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_msg(json_is_string(json_object_get(j, "ID")), "no ID in [%s]", r.body);
	snprintf(id, idlen, "%s", json_string_value(json_object_get(j, "ID")));
	ck_assert_uint_eq(strlen(id), 36);
	json_decref(j);
	http_resp_free(&r);
}

/* GET path; asserts 200 and returns the JSON array (caller frees). */
static json_t *get_arr(const char *path, uint64_t *index)
{
	struct http_resp r;
	json_t *j;

	http_get(&ag, path, &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_msg(json_is_array(j), "not an array: [%s]", r.body);
	if (index)
		*index = http_index(&r);
	http_resp_free(&r);
	return j;
}

START_TEST(create_defaults_and_info)
{
	char id[64], path[128];
	json_t *j, *s;

	REQUIRE_AGENT();
	create("", id, sizeof(id));
	snprintf(path, sizeof(path), "/v1/session/info/%s", id);
	j = get_arr(path, NULL);
	ck_assert_uint_eq(json_array_size(j), 1);
	s = json_array_get(j, 0);
	ck_assert_str_eq(json_string_value(json_object_get(s, "ID")), id);
	ck_assert_str_eq(json_string_value(json_object_get(s, "Node")), "sess-node");
	ck_assert_str_eq(json_string_value(json_object_get(s, "Name")), "");
	ck_assert_str_eq(json_string_value(json_object_get(s, "Behavior")), "release");
	ck_assert_str_eq(json_string_value(json_object_get(s, "TTL")), "");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "LockDelay")), 15000000000);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(s, "NodeChecks"), 0)),
			 "serfHealth");
	ck_assert(json_is_null(json_object_get(s, "ServiceChecks")));
	ck_assert_int_gt(json_integer_value(json_object_get(s, "CreateIndex")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "CreateIndex")),
			 json_integer_value(json_object_get(s, "ModifyIndex")));
	json_decref(j);
}
END_TEST

START_TEST(create_body_list_node_renew_destroy)
{
	char id[64], path[128];
	struct http_resp r;
	json_t *j, *s;
	bool found = false;

	REQUIRE_AGENT();
	create("{\"Name\":\"svc-lock\",\"Behavior\":\"delete\",\"TTL\":\"30s\",\"LockDelay\":\"2s\","
	       "\"NodeChecks\":[]}",
	       id, sizeof(id));
	j = get_arr("/v1/session/list", NULL);
	for (size_t i = 0; i < json_array_size(j); i++) {
		s = json_array_get(j, i);
		if (strcmp(json_string_value(json_object_get(s, "ID")), id) != 0)
			continue;
		found = true;
		ck_assert_str_eq(json_string_value(json_object_get(s, "Name")), "svc-lock");
		ck_assert_str_eq(json_string_value(json_object_get(s, "Behavior")), "delete");
		ck_assert_str_eq(json_string_value(json_object_get(s, "TTL")), "30s");
		ck_assert_int_eq(json_integer_value(json_object_get(s, "LockDelay")), 2000000000);
		ck_assert_uint_eq(json_array_size(json_object_get(s, "NodeChecks")), 0);
	}
	ck_assert(found);
	json_decref(j);

	j = get_arr("/v1/session/node/sess-node", NULL);
	ck_assert_uint_ge(json_array_size(j), 1);
	json_decref(j);
	j = get_arr("/v1/session/node/no-such-node", NULL);
	ck_assert_uint_eq(json_array_size(j), 0);
	json_decref(j);

	snprintf(path, sizeof(path), "/v1/session/renew/%s", id);
	http_put(&ag, path, "", &r);
	EXPECT_STATUS(r, 200);
	j = http_json(&r);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "ID")), id);
	json_decref(j);
	http_resp_free(&r);

	snprintf(path, sizeof(path), "/v1/session/destroy/%s", id);
	http_put(&ag, path, "", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);

	snprintf(path, sizeof(path), "/v1/session/info/%s", id);
	j = get_arr(path, NULL);
	ck_assert_uint_eq(json_array_size(j), 0);
	json_decref(j);
	snprintf(path, sizeof(path), "/v1/session/renew/%s", id);
	http_put(&ag, path, "", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

START_TEST(bad_requests)
{
	struct http_resp r;

	REQUIRE_AGENT();
	http_put(&ag, "/v1/session/create", "{\"TTL\":\"5s\"}", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_put(&ag, "/v1/session/create", "{\"Behavior\":\"explode\"}", &r);
	EXPECT_STATUS(r, 400);
	http_resp_free(&r);
	http_get(&ag, "/v1/session/create", &r);
	EXPECT_STATUS(r, 405);
	http_resp_free(&r);
	http_get(&ag, "/v1/session/nope", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

struct blocker {
	char path[256];
	struct http_resp r;
};

static void *blocker_run(void *arg)
{
	struct blocker *b = arg;

	http_get(&ag, b->path, &b->r);
	return NULL;
}

START_TEST(blocking_list_wakes_on_create)
{
	struct blocker b;
	pthread_t th;
	uint64_t idx;
	char id[64];
	json_t *j;

	REQUIRE_AGENT();
	memset(&b, 0, sizeof(b));
	j = get_arr("/v1/session/list", &idx);
	json_decref(j);
	ck_assert_uint_gt(idx, 0);
	snprintf(b.path, sizeof(b.path), "/v1/session/list?index=%" PRIu64 "&wait=10s", idx);
	ck_assert_int_eq(pthread_create(&th, NULL, blocker_run, &b), 0);
	harness_pause_ms(300); /* holds either way: a create first answers at once */
	create("{\"Name\":\"wake\"}", id, sizeof(id));
	pthread_join(th, NULL);
	EXPECT_STATUS(b.r, 200);
	ck_assert_msg(http_index(&b.r) > idx, "index %" PRIu64 " did not pass %" PRIu64,
		      http_index(&b.r), idx);
	http_resp_free(&b.r);
}
END_TEST

struct contender {
	char path[256];
	struct http_resp r;
};

static void *contender_run(void *arg)
{
	struct contender *c = arg;

	http_put(&ag, c->path, "me", &c->r);
	return NULL;
}

/* The lock key's Session ("" when none) and LockIndex. */
static void lock_state(const char *key, char *sess, size_t slen, json_int_t *lock_index)
{
	char path[128];
	json_t *j, *e, *v;

	snprintf(path, sizeof(path), "/v1/kv/%s", key);
	j = get_arr(path, NULL);
	e = json_array_get(j, 0);
	ck_assert_ptr_nonnull(e);
	v = json_object_get(e, "Session");
	snprintf(sess, slen, "%s", json_is_string(v) ? json_string_value(v) : "");
	*lock_index = json_integer_value(json_object_get(e, "LockIndex"));
	json_decref(j);
}

START_TEST(two_clients_contend_for_a_lock)
{
	struct contender c[2];
	pthread_t th[2];
	char ids[2][64], sess[64], path[256];
	struct http_resp r;
	json_int_t li;
	int winner = -1;
	uint64_t start;

	REQUIRE_AGENT();
	memset(c, 0, sizeof(c));
	for (int i = 0; i < 2; i++) {
		create("{\"Name\":\"contender\",\"LockDelay\":\"5s\"}", ids[i], sizeof(ids[i]));
		snprintf(c[i].path, sizeof(c[i].path), "/v1/kv/locks/leader?acquire=%s", ids[i]);
	}
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, contender_run, &c[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 2; i++) {
		EXPECT_STATUS(c[i].r, 200);
		if (c[i].r.body_len == 4 && !memcmp(c[i].r.body, "true", 4)) {
			ck_assert_msg(winner < 0, "both clients hold the lock");
			winner = i;
		} else {
			EXPECT_BODY(c[i].r, "false");
		}
		http_resp_free(&c[i].r);
	}
	ck_assert_msg(winner >= 0, "nobody got the lock");
	lock_state("locks/leader", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, ids[winner]);
	ck_assert_int_eq(li, 1);

	/* the loser cannot release it, nor acquire it again */
	snprintf(path, sizeof(path), "/v1/kv/locks/leader?release=%s", ids[1 - winner]);
	http_put(&ag, path, "x", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "false");
	http_resp_free(&r);
	http_put(&ag, c[1 - winner].path, "me", &r);
	EXPECT_BODY(r, "false");
	http_resp_free(&r);

	/* destroying the holder's session releases the lock; the other
	 * acquires it only once the 5 s lock-delay passed */
	snprintf(path, sizeof(path), "/v1/session/destroy/%s", ids[winner]);
	http_put(&ag, path, "", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	start = harness_now_ms();
	lock_state("locks/leader", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, "");
	http_put(&ag, c[1 - winner].path, "me", &r);
	EXPECT_STATUS(r, 200);
	EXPECT_BODY(r, "false"); /* inside the lock-delay */
	http_resp_free(&r);
	for (;;) {
		bool got;

		http_put(&ag, c[1 - winner].path, "me", &r);
		EXPECT_STATUS(r, 200);
		got = r.body_len == 4 && !memcmp(r.body, "true", 4);
		http_resp_free(&r);
		if (got)
			break;
		ck_assert_msg(harness_now_ms() - start < 60000, "lock never passed on");
		harness_pause_ms(200);
	}
	ck_assert_msg(harness_now_ms() - start >= 4000, "acquired inside the lock-delay");
	lock_state("locks/leader", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, ids[1 - winner]);
	ck_assert_int_eq(li, 2);

	/* the holder releases */
	snprintf(path, sizeof(path), "/v1/kv/locks/leader?release=%s", ids[1 - winner]);
	http_put(&ag, path, "bye", &r);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	lock_state("locks/leader", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, "");

	/* an unknown session is an error */
	http_put(&ag, "/v1/kv/locks/leader?acquire=00000000-0000-0000-0000-000000000000", "x",
		 &r);
	ck_assert_int_ge(r.status, 400);
	http_resp_free(&r);
}
END_TEST

START_TEST(delete_behavior_deletes_held_keys)
{
	char id[64], path[256];
	struct http_resp r;

	REQUIRE_AGENT();
	create("{\"Behavior\":\"delete\"}", id, sizeof(id));
	snprintf(path, sizeof(path), "/v1/kv/locks/eph?acquire=%s", id);
	http_put(&ag, path, "x", &r);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	snprintf(path, sizeof(path), "/v1/session/destroy/%s", id);
	http_put(&ag, path, "", &r);
	EXPECT_STATUS(r, 200);
	http_resp_free(&r);
	http_get(&ag, "/v1/kv/locks/eph", &r);
	EXPECT_STATUS(r, 404);
	http_resp_free(&r);
}
END_TEST

START_TEST(ttl_expiry_releases_the_lock)
{
	char id[64], path[256], sess[64];
	struct http_resp r;
	json_int_t li;
	uint64_t start, waited;
	json_t *j;

	REQUIRE_AGENT();
	create("{\"Name\":\"ttl\",\"TTL\":\"10s\"}", id, sizeof(id));
	snprintf(path, sizeof(path), "/v1/kv/locks/ttl?acquire=%s", id);
	http_put(&ag, path, "x", &r);
	EXPECT_BODY(r, "true");
	http_resp_free(&r);
	lock_state("locks/ttl", sess, sizeof(sess), &li);
	ck_assert_str_eq(sess, id);
	/* never renewed: the leader destroys it once twice the TTL passed */
	start = harness_now_ms();
	do {
		harness_pause_ms(250);
		lock_state("locks/ttl", sess, sizeof(sess), &li);
	} while (*sess && harness_now_ms() - start < 60000);
	waited = harness_now_ms() - start;
	ck_assert_msg(*sess == '\0', "lock still held by %s after %" PRIu64 " ms", sess, waited);
	ck_assert_msg(waited >= 15000, "session expired after %" PRIu64 " ms, before 2 x TTL", waited);
	snprintf(path, sizeof(path), "/v1/session/info/%s", id);
	j = get_arr(path, NULL);
	ck_assert_uint_eq(json_array_size(j), 0);
	json_decref(j);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("process-sessions");
	TCase *tc = tcase_create("sessions");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, ptest_setup, ptest_teardown);
	tcase_add_test(tc, create_defaults_and_info);
	tcase_add_test(tc, create_body_list_node_renew_destroy);
	tcase_add_test(tc, bad_requests);
	tcase_add_test(tc, blocking_list_wakes_on_create);
	tcase_add_test(tc, two_clients_contend_for_a_lock);
	tcase_add_test(tc, delete_behavior_deletes_held_keys);
	tcase_add_test(tc, ttl_expiry_releases_the_lock);
	suite_add_tcase(s, tc);
	return ptest_run(s);
}
