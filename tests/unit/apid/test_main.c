/* Runs apid's unit test suites. */
#include <stdlib.h>

#include "suites.h"

int main(void)
{
	SRunner *sr = srunner_create(query_suite());
	int failed;

	srunner_add_suite(sr, render_suite());
	srunner_add_suite(sr, routes_suite());
	srunner_add_suite(sr, http_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
