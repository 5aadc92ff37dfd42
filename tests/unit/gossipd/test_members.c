/* Unit tests: the gossip member table and the local member's tags
 * (gossipd/members.c). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "members.h"
#include "proto.h"

static const struct members_self server_self = {
    .node_name = "alpha",
    .addr = "10.0.0.1",
    .port = 8301,
    .datacenter = "dc1",
    .node_id = "6a1f6e4c-9c5e-4b6e-8f7e-0d3c2b1a0f99",
    .server = true,
    .server_port = 8300,
    .bootstrap_expect = 3,
    .build = "0.1.0",
};

static void assert_tag(const struct member *m, const char *key, const char *want)
{
	const char *v = member_tag_get(m, key);

	ck_assert_msg(v != NULL, "tag %s missing", key);
	ck_assert_str_eq(v, want);
}

START_TEST(test_server_self)
{
	struct member m;

	ck_assert_int_eq(members_self_build(&server_self, false, &m), 0);
	ck_assert_str_eq(m.name, "alpha");
	ck_assert_str_eq(m.addr, "10.0.0.1");
	ck_assert_uint_eq(m.port, 8301);
	ck_assert_int_eq(m.status, MEMBER_ALIVE);
	assert_tag(&m, "role", "consul");
	assert_tag(&m, "dc", "dc1");
	assert_tag(&m, "id", "6a1f6e4c-9c5e-4b6e-8f7e-0d3c2b1a0f99");
	assert_tag(&m, "port", "8300");
	assert_tag(&m, "vsn", "2");
	assert_tag(&m, "vsn_min", "2");
	assert_tag(&m, "vsn_max", "3");
	assert_tag(&m, "raft_vsn", "3");
	assert_tag(&m, "build", "0.1.0");
	assert_tag(&m, "expect", "3");
	assert_tag(&m, "segment", "");
	ck_assert_uint_eq(m.n_tags, 11);
	/* sorted, so lookups and the wire order are stable */
	for (size_t i = 1; i < m.n_tags; i++)
		ck_assert_int_lt(strcmp(m.tags[i - 1].key, m.tags[i].key), 0);
	member_free_fields(&m);

	ck_assert_int_eq(members_self_build(&server_self, true, &m), 0);
	ck_assert_str_eq(m.name, "alpha.dc1");
	assert_tag(&m, "role", "consul");
	member_free_fields(&m);
}
END_TEST

START_TEST(test_client_self)
{
	struct members_self c = server_self;
	struct member m;

	c.server = false;
	c.bootstrap_expect = 0;
	ck_assert_int_eq(members_self_build(&c, false, &m), 0);
	assert_tag(&m, "role", "node");
	assert_tag(&m, "dc", "dc1");
	assert_tag(&m, "vsn", "2");
	assert_tag(&m, "build", "0.1.0");
	ck_assert_ptr_null(member_tag_get(&m, "port"));
	ck_assert_ptr_null(member_tag_get(&m, "expect"));
	ck_assert_ptr_null(member_tag_get(&m, "raft_vsn"));
	member_free_fields(&m);

	/* a server without bootstrap_expect has no expect tag */
	c = server_self;
	c.bootstrap_expect = 0;
	ck_assert_int_eq(members_self_build(&c, false, &m), 0);
	ck_assert_ptr_null(member_tag_get(&m, "expect"));
	member_free_fields(&m);

	c.node_name = "";
	ck_assert_int_eq(members_self_build(&c, false, &m), -EINVAL);
}
END_TEST

START_TEST(test_tag_set_replaces)
{
	struct member m = {0};

	ck_assert_int_eq(member_tag_set(&m, "b", "1"), 0);
	ck_assert_int_eq(member_tag_set(&m, "a", "2"), 0);
	ck_assert_int_eq(member_tag_set(&m, "b", "3"), 0);
	ck_assert_uint_eq(m.n_tags, 2);
	ck_assert_str_eq(m.tags[0].key, "a");
	assert_tag(&m, "b", "3");
	member_free_fields(&m);
}
END_TEST

START_TEST(test_table_events_and_seq)
{
	struct members t;
	struct member a, b;
	enum member_event ev;

	members_init(&t);
	ck_assert_int_eq(members_self_build(&server_self, false, &a), 0);

	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_JOIN);
	ck_assert_uint_eq(t.seq, 1);
	ck_assert_uint_eq(t.n, 1);

	/* the same again: nothing changes, seq stays */
	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_NONE);
	ck_assert_uint_eq(t.seq, 1);

	/* the table holds a copy */
	ck_assert_int_eq(member_tag_set(&a, "role", "node"), 0);
	assert_tag(members_find(&t, "alpha"), "role", "consul");
	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_UPDATE);
	ck_assert_uint_eq(t.seq, 2);
	assert_tag(members_find(&t, "alpha"), "role", "node");

	a.status = MEMBER_FAILED;
	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_FAIL);
	a.status = MEMBER_ALIVE;
	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_JOIN);
	a.status = MEMBER_LEFT;
	ck_assert_int_eq(members_upsert(&t, &a, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_LEAVE);
	ck_assert_uint_eq(t.seq, 5);

	/* a second member, kept in name order */
	ck_assert_int_eq(members_self_build(&server_self, false, &b), 0);
	free(b.name);
	b.name = strdup("aardvark");
	ck_assert_int_eq(members_upsert(&t, &b, &ev), 0);
	ck_assert_int_eq(ev, MEMBER_EVENT_JOIN);
	ck_assert_uint_eq(t.n, 2);
	ck_assert_str_eq(t.v[0].name, "aardvark");
	ck_assert_str_eq(t.v[1].name, "alpha");
	ck_assert_ptr_null(members_find(&t, "zebra"));

	ck_assert_int_eq(members_remove(&t, "aardvark"), 0);
	ck_assert_int_eq(members_remove(&t, "aardvark"), -ENOENT);
	ck_assert_uint_eq(t.n, 1);
	ck_assert_uint_eq(t.seq, 7);

	member_free_fields(&a);
	member_free_fields(&b);
	members_close(&t);
}
END_TEST

START_TEST(test_to_proto_round_trip)
{
	struct members t;
	struct member a;
	struct arena ar;
	struct proto_msg m = proto_msg_make(PROTO_MEMBERS_REPLY), back;
	uint8_t *buf = NULL;
	size_t len;
	const struct proto_member *r;

	members_init(&t);
	arena_init(&ar, 0);
	ck_assert_int_eq(members_self_build(&server_self, false, &a), 0);
	ck_assert_int_eq(members_upsert(&t, &a, NULL), 0);
	m.u.members_reply.seq = t.seq;
	ck_assert_int_eq(
	    members_to_proto(&t, &ar, &m.u.members_reply.members.v, &m.u.members_reply.members.n),
	    0);
	ck_assert_int_eq(proto_encode(&m, &buf, &len), 0);
	ck_assert_int_eq(proto_decode(buf, len, &ar, &back, NULL, 0), 0);
	ck_assert_int_eq(back.type, PROTO_MEMBERS_REPLY);
	ck_assert_uint_eq(back.u.members_reply.seq, 1);
	ck_assert_uint_eq(back.u.members_reply.members.n, 1);
	r = &back.u.members_reply.members.v[0];
	ck_assert_str_eq(r->name, "alpha");
	ck_assert_str_eq(r->addr, "10.0.0.1");
	ck_assert_uint_eq(r->port, 8301);
	ck_assert_uint_eq(r->status, 1);
	ck_assert_uint_eq(r->tags.n, a.n_tags);
	for (size_t i = 0; i < r->tags.n; i++) {
		ck_assert_str_eq(r->tags.keys[i], a.tags[i].key);
		ck_assert_str_eq(r->tags.vals[i], a.tags[i].val);
	}
	free(buf);
	arena_close(&ar);
	member_free_fields(&a);
	members_close(&t);
}
END_TEST

Suite *gossip_api_suite(void);
Suite *swim_suite(void);
Suite *keyring_suite(void);

static Suite *members_suite(void)
{
	Suite *s = suite_create("members");
	TCase *tc = tcase_create("table");

	tcase_add_test(tc, test_server_self);
	tcase_add_test(tc, test_client_self);
	tcase_add_test(tc, test_tag_set_replaces);
	tcase_add_test(tc, test_table_events_and_seq);
	tcase_add_test(tc, test_to_proto_round_trip);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(members_suite());
	int failed;

	srunner_add_suite(sr, gossip_api_suite());
	srunner_add_suite(sr, swim_suite());
	srunner_add_suite(sr, keyring_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
