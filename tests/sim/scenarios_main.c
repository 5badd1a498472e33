/* The scenario suites on the deterministic simulator: one CUnit program (test_scenarios). */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stdio.h>

#include "scen.h"

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	int (*const reg[])(void) = {
		scen_register_election,   scen_register_replication, scen_register_persist,
		scen_register_snapshot,   scen_register_transfer,    scen_register_read,
		scen_register_membership,
	};
	for (size_t i = 0; i < sizeof(reg) / sizeof(reg[0]); i++) {
		if (reg[i]() != CUE_SUCCESS) {
			fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
			CU_cleanup_registry();
			return 2;
		}
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failures = CU_get_number_of_failure_records();
	CU_cleanup_registry();
	return failures > 0 ? 1 : 0;
}
