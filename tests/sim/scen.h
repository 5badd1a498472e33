/* Helpers shared by the scenario suites (tests/sim/test_*.c) and their registration. */
#ifndef RAFTKV_TESTS_SIM_SCEN_H
#define RAFTKV_TESTS_SIM_SCEN_H

#include <CUnit/CUnit.h>
#include <stdio.h>

#include "sim.h"

/*
 * REQUIRE(s, cond): on failure record a CUnit failure, print the seed and the trace (through
 * sim_fail) and jump to the test's `out:` label, where the simulation is freed. CUnit's
 * *_FATAL asserts longjmp out of the test and would leak the simulation, so they are not used.
 * EXPECT(s, cond): the same without leaving the test. `cond` is evaluated exactly once.
 */
static inline void scen_fail(struct sim *s, const char *file, unsigned line, const char *cond)
{
	sim_fail(s, "test assertion failed at %s:%u: %s", file, line, cond);
	CU_assertImplementation(CU_FALSE, line, cond, file, "", CU_FALSE);
}

#define EXPECT(s, cond)                                            \
	do {                                                       \
		if (!(cond))                                       \
			scen_fail((s), __FILE__, __LINE__, #cond); \
	} while (0)

#define REQUIRE(s, cond)                                           \
	do {                                                       \
		if (!(cond)) {                                     \
			scen_fail((s), __FILE__, __LINE__, #cond); \
			goto out;                                  \
		}                                                  \
	} while (0)

/* Every test ends with: no invariant was violated. */
#define SIM_DONE(s)                                                     \
	do {                                                            \
		if (sim_failed(s))                                      \
			fprintf(stderr, "    (reproduce: seed %llu)\n", \
				(unsigned long long)sim_seed(s));       \
		CU_ASSERT_FALSE(sim_failed(s));                         \
		sim_free(s);                                            \
	} while (0)

/* Ticks to virtual ms. */
#define ELECTION_MS(o) ((uint64_t)(o).election_ticks * (o).tick_ms)

static inline raft_term sim_term(struct sim *s, raft_id id)
{
	struct raft *r = sim_core(s, id);
	return r != NULL ? raft_current_term(r) : 0;
}

static inline int sim_role(struct sim *s, raft_id id)
{
	struct raft *r = sim_core(s, id);
	return r != NULL ? raft_role(r) : 0;
}

static inline raft_index sim_commit(struct sim *s, raft_id id)
{
	struct raft *r = sim_core(s, id);
	return r != NULL ? raft_commit_index(r) : 0;
}

/* Index of the first entry of the leader's current term (its no-op), 0 if none. */
static inline raft_index sim_term_start(struct sim *s, raft_id id)
{
	struct raft *r = sim_core(s, id);
	if (r == NULL)
		return 0;
	raft_term t = raft_current_term(r);
	raft_index first = 0;
	for (raft_index i = raft_last_index(r); i > raft_snapshot_index(r); i--) {
		if (raft_term_at(r, i) != t)
			break;
		first = i;
	}
	return first;
}

/* Run until every live node applied the highest commit index seen, then check that their
 * state machines agree. */
static inline bool sim_pred_converged(struct sim *s, void *arg)
{
	(void)arg;
	raft_index c = sim_max_commit(s);
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (sim_is_up(s, id) && sim_applied(s, id) < c)
			return false;
	return true;
}

static inline bool sim_converged(struct sim *s, uint64_t max_ms)
{
	if (!sim_run_until(s, sim_pred_converged, NULL, max_ms))
		return false;
	raft_index a = 0;
	uint64_t d = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
		if (!sim_is_up(s, id))
			continue;
		if (a == 0) {
			a = sim_applied(s, id);
			d = sim_digest(s, id);
		} else if (sim_applied(s, id) == a && sim_digest(s, id) != d) {
			return false;
		}
	}
	return true;
}

/* Promote learner `id` on leader `l`, retrying while the leader does not yet know that it
 * caught up (RAFT_ENOTCAUGHTUP), for at most max_ms. Returns the last code. */
static inline int sim_promote(struct sim *s, raft_id l, raft_id id, raft_index *index,
			      uint64_t max_ms)
{
	uint64_t end = sim_now(s) + max_ms;
	int rv;
	while ((rv = sim_conf_change(s, l, RAFT_CONF_PROMOTE, id, index)) == RAFT_ENOTCAUGHTUP &&
	       sim_now(s) < end && !sim_failed(s))
		sim_run_for(s, 10);
	return rv;
}

/* Each test_*.c file's scenarios, run as one suite by scenarios_main.c. */
extern CU_TestInfo scen_election_tests[];
extern CU_TestInfo scen_replication_tests[];
extern CU_TestInfo scen_persist_tests[];
extern CU_TestInfo scen_snapshot_tests[];
extern CU_TestInfo scen_transfer_tests[];
extern CU_TestInfo scen_read_tests[];
extern CU_TestInfo scen_membership_tests[];

#endif
