/* Runs the dnsd unit suites. */
#include <check.h>
#include <stdlib.h>

Suite *dns_name_suite(void);
Suite *dns_answer_suite(void);
Suite *dns_transport_suite(void);
Suite *dns_cache_suite(void);

int main(void)
{
	SRunner *sr = srunner_create(dns_name_suite());
	int failed;

	srunner_add_suite(sr, dns_answer_suite());
	srunner_add_suite(sr, dns_transport_suite());
	srunner_add_suite(sr, dns_cache_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
