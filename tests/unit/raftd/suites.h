/* raftd unit test suites, run together by test_main.c. */
#ifndef CAIRN_TEST_RAFTD_SUITES_H
#define CAIRN_TEST_RAFTD_SUITES_H

#include <check.h>
#include <stddef.h>

Suite *fsm_suite(void);
Suite *raft_suite(void);
Suite *watch_suite(void);
Suite *replica_suite(void);
Suite *server_suite(void);

/* Makes a fresh temporary directory into buf (>= 64 bytes). */
void test_tmpdir(char *buf, size_t len);
/* Removes a directory tree made by the tests. */
void test_rmtree(const char *path);

#endif
