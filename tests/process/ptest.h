/* Scaffolding shared by the process-test programs: one agent per program,
 * started in an unchecked Check fixture (in the runner process, so it
 * outlives Check's forked tests) and stopped in its teardown, plus
 * assertion macros that show the HTTP answer when they fail. */
#ifndef CAIRN_TEST_PTEST_H
#define CAIRN_TEST_PTEST_H

#include <check.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* Defines the program's agent `ag` and the fixture pair ptest_setup /
 * ptest_teardown that start and stop it. */
#define PTEST_AGENT_FIXTURE(node_name, extra_args)                                                \
	static struct agent ag;                                                                    \
	static char ag_err[4096];                                                                  \
	static int ag_rc = -1;                                                                     \
	static void ptest_setup(void)                                                              \
	{                                                                                          \
		ag_rc = harness_agent_start(&ag, node_name, extra_args, 90000, ag_err,             \
					    sizeof(ag_err));                                       \
		if (ag_rc < 0)                                                                     \
			fprintf(stderr, "agent start failed: %s\n", ag_err);                       \
	}                                                                                          \
	static void ptest_teardown(void)                                                           \
	{                                                                                          \
		harness_agent_stop(&ag);                                                           \
	}

/* First line of every test: fails it with the start-up reason. Also
 * resumes the agent in case an earlier test failed while holding it
 * stopped (SIGSTOP) to keep a daemon down. */
#define REQUIRE_AGENT()                                                                            \
	do {                                                                                       \
		ck_assert_msg(ag_rc == 0, "agent did not start: %s", ag_err);                      \
		(void)kill(ag.pid, SIGCONT);                                                       \
	} while (0)

/* Defines a program's cluster of n servers: `ags[n]`, the start-up result
 * start_rc / start_err, the fixture pair cluster_setup / cluster_teardown
 * (harness_cluster_start() with the options given as a braced
 * initializer of struct harness_cluster_opts, e.g. {.name_prefix = "srv",
 * .join = HARNESS_JOIN_GOSSIP}; harness_cluster_stop()) and
 * cluster_leader(timeout_ms, not_this): harness_cluster_leader() on ags,
 * the index of the server every live agent names as leader (-1 when
 * none agreed within timeout_ms; 0 asks once). */
#define PTEST_CLUSTER_FIXTURE(n, ...)                                                              \
	static struct agent ags[n];                                                                \
	static char start_err[4096];                                                               \
	static int start_rc = -1;                                                                  \
	static void cluster_setup(void)                                                            \
	{                                                                                          \
		static const struct harness_cluster_opts cluster_opts_ = __VA_ARGS__;              \
		start_rc =                                                                         \
		    harness_cluster_start(ags, n, &cluster_opts_, start_err, sizeof(start_err));   \
	}                                                                                          \
	static void cluster_teardown(void) { harness_cluster_stop(ags, n); }                       \
	static inline int cluster_leader(uint64_t timeout_ms, int not_this)                        \
	{                                                                                          \
		return harness_cluster_leader(ags, n, timeout_ms, not_this);                       \
	}

/* Asserts r (a struct http_resp) has the given status. */
#define EXPECT_STATUS(r, want)                                                                     \
	ck_assert_msg((r).status == (want), "HTTP status %ld, want %d (%s) body=[%.400s]",        \
		      (r).status, (int)(want), (r).err, (r).body ? (r).body : "")

/* Asserts the body equals s exactly. */
#define EXPECT_BODY(r, s)                                                                          \
	ck_assert_msg((r).body_len == strlen(s) && memcmp((r).body, (s), strlen(s)) == 0,         \
		      "body [%.400s], want [%s]", (r).body, (s))

/* Asserts header name is present and copies its value into buf. */
#define EXPECT_HEADER(r, name, buf)                                                                \
	ck_assert_msg(http_header(&(r), (name), (buf), sizeof(buf)), "no %s header in:\n%s",       \
		      (name), (r).headers)

/* Asserts Content-Type starts with ct. */
#define EXPECT_CTYPE(r, ct)                                                                        \
	do {                                                                                       \
		char ct_buf_[128];                                                                 \
		EXPECT_HEADER(r, "Content-Type", ct_buf_);                                         \
		ck_assert_msg(strncmp(ct_buf_, (ct), strlen(ct)) == 0,                             \
			      "Content-Type [%s], want [%s]", ct_buf_, (ct));                      \
	} while (0)

/* The usual runner: one suite, CK_NORMAL output (the "N%: Checks: ..."
 * line tools/test counts), exit status 1 on any failure. */
static inline int ptest_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_ENV); /* CK_VERBOSITY, default normal */
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
