/* Tests for cli/operator_cmds.c: the `cairn operator raft list-peers`
 * table (Consul's columns and columnize alignment), the argument checks
 * that need no agent, and `cairn operator autopilot get-config`'s text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "operator_cmds.h"

static char *table_of(const char *json, int *rc)
{
	json_t *doc = json_loads(json, 0, NULL);
	char *out = NULL;

	ck_assert_ptr_nonnull(doc);
	*rc = operator_raft_peers_table(doc, &out);
	json_decref(doc);
	return out;
}

START_TEST(peers_table)
{
	int rc;
	char *t =
	    table_of("{\"Servers\":["
		     "{\"ID\":\"2a3f9c1e-0000-4000-8000-000000000001\",\"Node\":\"alice\","
		     "\"Address\":\"10.0.1.8:8300\",\"Leader\":false,\"ProtocolVersion\":\"3\","
		     "\"Voter\":true},"
		     "{\"ID\":\"b\",\"Node\":\"bob-the-server\",\"Address\":\"10.0.1.6:8300\","
		     "\"Leader\":true,\"ProtocolVersion\":\"3\",\"Voter\":true},"
		     "{\"ID\":\"c\",\"Node\":\"\",\"Address\":\"10.0.1.7:8300\",\"Leader\":false,"
		     "\"ProtocolVersion\":\"\",\"Voter\":false}],\"Index\":12}",
		     &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(t, "Node            ID                                    Address        "
			    "State     Voter  RaftProtocol\n"
			    "alice           2a3f9c1e-0000-4000-8000-000000000001  10.0.1.8:8300  "
			    "follower  true   3\n"
			    "bob-the-server  b                                     10.0.1.6:8300  "
			    "leader    true   3\n"
			    "                c                                     10.0.1.7:8300  "
			    "follower  false  <=1\n");
	free(t);
}
END_TEST

START_TEST(peers_table_empty_and_bad)
{
	int rc;
	char *t = table_of("{\"Servers\":[],\"Index\":1}", &rc);

	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(t, "Node  ID  Address  State  Voter  RaftProtocol\n");
	free(t);
	t = table_of("{\"Servers\":null}", &rc);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(t);
	t = table_of("{\"Servers\":[1]}", &rc);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(t);
	t = table_of("[]", &rc);
	ck_assert_int_eq(rc, -EINVAL);
}
END_TEST

START_TEST(remove_peer_args)
{
	char *both[] = {"raft", "remove-peer", "-id=x", "-address=127.0.0.1:1", NULL};
	char *none[] = {"raft", "remove-peer", NULL};
	char *extra[] = {"raft", "remove-peer", "-id=x", "y", NULL};
	char *unknown[] = {"raft", "frob", NULL};
	char *notraft[] = {"autopilot", NULL};
	char *help[] = {"raft", "list-peers", "-h", NULL};

	/* rejected before any request is made */
	ck_assert_int_eq(cmd_operator(4, both), 1);
	ck_assert_int_eq(cmd_operator(2, none), 1);
	ck_assert_int_eq(cmd_operator(4, extra), 1);
	ck_assert_int_eq(cmd_operator(2, unknown), 1);
	ck_assert_int_eq(cmd_operator(1, notraft), 1);
	ck_assert_int_eq(cmd_operator(3, help), 0);
}
END_TEST

START_TEST(autopilot_config_text)
{
	json_t *doc = json_loads("{\"CleanupDeadServers\": true, \"LastContactThreshold\": \"200ms\","
				 " \"MaxTrailingLogs\": 250, \"MinQuorum\": 3,"
				 " \"ServerStabilizationTime\": \"10s\", \"RedundancyZoneTag\": \"\","
				 " \"DisableUpgradeMigration\": false, \"UpgradeVersionTag\": \"\","
				 " \"CreateIndex\": 5, \"ModifyIndex\": 9}",
				 0, NULL);
	char *out = NULL;

	ck_assert_ptr_nonnull(doc);
	ck_assert_int_eq(operator_autopilot_config_text(doc, &out), 0);
	ck_assert_str_eq(out, "CleanupDeadServers = true\n"
			      "LastContactThreshold = 200ms\n"
			      "MaxTrailingLogs = 250\n"
			      "MinQuorum = 3\n"
			      "ServerStabilizationTime = 10s\n"
			      "RedundancyZoneTag = \"\"\n"
			      "DisableUpgradeMigration = false\n"
			      "UpgradeVersionTag = \"\"\n");
	free(out);
	json_decref(doc);
	doc = json_loads("[]", 0, NULL);
	ck_assert_int_eq(operator_autopilot_config_text(doc, &out), -EINVAL);
	json_decref(doc);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cli-operator");
	TCase *tc = tcase_create("raft");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, peers_table);
	tcase_add_test(tc, peers_table_empty_and_bad);
	tcase_add_test(tc, remove_peer_args);
	tcase_add_test(tc, autopilot_config_text);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
