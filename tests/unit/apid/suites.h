/* The Check suites of apid's unit tests, one per module. */
#ifndef CAIRN_TEST_APID_SUITES_H
#define CAIRN_TEST_APID_SUITES_H

#include <check.h>

Suite *query_suite(void);
Suite *render_suite(void);
Suite *routes_suite(void);
Suite *http_suite(void);

#endif
