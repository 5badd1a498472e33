/* How every CUnit program here runs: verbose output, and the exit status CUnit never sets
 * itself (non-zero on any failure record, suite set-up failures included). */
#ifndef RAFTKV_TESTS_CUNIT_MAIN_H
#define RAFTKV_TESTS_CUNIT_MAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>

/* Register `suites` and run them all. Returns the process exit status: 0 when every test
 * passed, 1 on any failure, 2 when the registry could not be set up. */
static inline int cunit_main(CU_SuiteInfo *suites)
{
	if (CU_initialize_registry() != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		return 2;
	}
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_ErrorCode rc = CU_basic_run_tests();
	if (rc != CUE_SUCCESS)
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
	unsigned failures = CU_get_number_of_failure_records();
	CU_cleanup_registry();
	return rc != CUE_SUCCESS || failures > 0 ? 1 : 0;
}

#endif
