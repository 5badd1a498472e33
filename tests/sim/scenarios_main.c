/* The scenario suites on the deterministic simulator: one CUnit program (test_scenarios). */
#include "cunit_main.h"
#include "scen.h"

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"election", NULL, NULL, NULL, NULL, scen_election_tests},
		{"replication", NULL, NULL, NULL, NULL, scen_replication_tests},
		{"persistence", NULL, NULL, NULL, NULL, scen_persist_tests},
		{"snapshot", NULL, NULL, NULL, NULL, scen_snapshot_tests},
		{"transfer", NULL, NULL, NULL, NULL, scen_transfer_tests},
		{"read-index", NULL, NULL, NULL, NULL, scen_read_tests},
		{"membership", NULL, NULL, NULL, NULL, scen_membership_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
