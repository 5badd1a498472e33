/* Snapshots: the 6.5840 lab's 3D tests (install after disconnect and after crash) and
 * snapshots racing membership changes. */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

/* Snapshot every node that is up at its applied index. */
static void snapshot_all(struct sim *s, raft_index trailing)
{
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (sim_is_up(s, id) && sim_applied(s, id) > raft_snapshot_index(sim_core(s, id)))
			sim_take_snapshot(s, id, trailing);
}

/* Two configurations hold the same members with the same roles. */
static bool same_conf(const struct raft_conf *a, const struct raft_conf *b)
{
	if (a->n != b->n)
		return false;
	for (unsigned i = 0; i < a->n; i++) {
		const struct raft_member *m = raft_conf_get(b, a->members[i].id);
		if (m == NULL || m->role != a->members[i].role)
			return false;
	}
	return true;
}

/* A follower disconnected while the others commit and compact: on reconnection it gets
 * RAFT_MSG_SNAPSHOT and ends with the leader's state machine. */
static void test_install_after_disconnect(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		char b[32];
		REQUIRE(s, sim_one(s, "start", 3, true, 5000) != 0);
		raft_id f = sim_leader(s) % 3 + 1;
		sim_isolate(s, f);
		for (long i = 0; i < 100; i++) {
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "d", i), 2, true, 5000) != 0);
			if (i % 10 == 9)
				snapshot_all(s, 0);
		}
		raft_id l = sim_leader(s);
		REQUIRE(s, raft_first_index(sim_core(s, l)) > sim_applied(s, f) + 1);
		sim_heal(s);
		REQUIRE(s, sim_wait_applied(s, sim_max_commit(s), SIM_ALL, 5000));
		EXPECT(s, sim_snapshots_installed(s, f) >= 1);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_SNAPSHOT) >= 1);
		REQUIRE(s, sim_one(s, "after", 3, true, 5000) != 0);
		EXPECT(s, sim_converged(s, 3000));
		EXPECT(s, sim_digest(s, f) == sim_digest(s, sim_leader(s)));
	out:
		SIM_DONE(s);
	}
}

/* The same with the follower crashed; then everyone restarts from snapshot + log. */
static void test_install_after_crash(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		char b[32];
		REQUIRE(s, sim_one(s, "start", 3, true, 5000) != 0);
		raft_id f = sim_leader(s) % 3 + 1;
		sim_crash(s, f);
		for (long i = 0; i < 100; i++) {
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "c", i), 2, true, 5000) != 0);
			if (i % 10 == 9)
				snapshot_all(s, 2);
		}
		REQUIRE(s, sim_restart(s, f) == 0);
		REQUIRE(s, sim_wait_applied(s, sim_max_commit(s), SIM_ALL, 5000));
		EXPECT(s, sim_snapshots_installed(s, f) >= 1);
		EXPECT(s, sim_converged(s, 3000));

		/* The restored state machines (snapshot + replayed entries) agree. */
		for (long i = 0; i < 15; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "m", i), 3, true, 5000) != 0);
		snapshot_all(s, 0);
		REQUIRE(s, sim_one(s, "tail", 3, true, 5000) != 0);
		for (raft_id id = 1; id <= 3; id++)
			sim_crash(s, id);
		for (raft_id id = 1; id <= 3; id++)
			REQUIRE(s, sim_restart(s, id) == 0);
		REQUIRE(s, sim_one(s, "restarted", 3, true, 10000) != 0);
		EXPECT(s, sim_converged(s, 3000));
		EXPECT(s, sim_check_proposals(s, SIM_ALL) >= 117);
	out:
		SIM_DONE(s);
	}
}

/* With `trailing` entries kept after compaction, a slightly lagging follower gets entries,
 * not a snapshot. */
static void test_trailing_avoids_snapshot(void)
{
	struct sim *s = sim_new(4, 3, NULL);
	char b[32];
	REQUIRE(s, sim_one(s, "start", 3, true, 5000) != 0);
	raft_id f = sim_leader(s) % 3 + 1;
	sim_isolate(s, f);
	for (long i = 0; i < 20; i++)
		REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "t", i), 2, true, 5000) != 0);
	snapshot_all(s, 50);
	sim_heal(s);
	REQUIRE(s, sim_wait_applied(s, sim_max_commit(s), SIM_ALL, 5000));
	EXPECT(s, sim_msgs_sent(s, RAFT_MSG_SNAPSHOT) == 0);
	EXPECT(s, sim_snapshots_installed(s, f) == 0);
	EXPECT(s, sim_converged(s, 3000));
out:
	SIM_DONE(s);
}

/* Snapshots racing configuration changes:
 *  - the leader compacts while a learner addition is uncommitted, and the new node's first
 *    state is a snapshot whose configuration does not include it yet;
 *  - a follower that missed a learner addition and its promotion receives a snapshot whose
 *    configuration holds them: after installing, its configuration is the leader's. */
static void test_snapshot_conf_race(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		char b[32];
		raft_index ci = 0, pi = 0;
		REQUIRE(s, sim_one(s, "start", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		for (long i = 0; i < 10; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "r", i), 3, true, 5000) != 0);

		REQUIRE(s, sim_add_node(s, 4) == 0);
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 4, &ci) == 0);
		REQUIRE(s, sim_take_snapshot(s, l, 0) == 0); /* conf change still uncommitted */
		REQUIRE(s, raft_snapshot_index(sim_core(s, l)) < ci);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_ALL, 5000));
		const struct raft_member *m4 = raft_conf_get(raft_conf_current(sim_core(s, 4)), 4);
		EXPECT(s, m4 != NULL && m4->role == RAFT_LEARNER);
		EXPECT(s, raft_conf_index(sim_core(s, 4)) == ci);
		EXPECT(s, same_conf(raft_conf_current(sim_core(s, 4)),
				    raft_conf_current(sim_core(s, l))));

		/* n3 (or another follower) misses the promotion of 4 and a new learner 5. */
		raft_id f = 1;
		while (f == l)
			f++;
		sim_isolate(s, f);
		REQUIRE(s, sim_promote(s, l, 4, &pi, 2000) == 0);
		REQUIRE(s, sim_wait_applied(s, pi, SIM_NODE(l) | SIM_NODE(4), 5000));
		REQUIRE(s, sim_add_node(s, 5) == 0);
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 5, &ci) == 0);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_NODE(l) | SIM_NODE(4) | SIM_NODE(5), 5000));
		for (long i = 0; i < 10; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "s", i), 3, true, 5000) != 0);
		snapshot_all(s, 0);
		sim_heal(s);
		REQUIRE(s, sim_wait_applied(s, sim_max_commit(s), SIM_ALL, 5000));
		EXPECT(s, sim_snapshots_installed(s, f) >= 1);
		l = sim_leader(s);
		REQUIRE(s, l != 0);
		EXPECT(s, same_conf(raft_conf_current(sim_core(s, f)),
				    raft_conf_current(sim_core(s, l))));
		EXPECT(s, raft_conf_index(sim_core(s, f)) == raft_conf_index(sim_core(s, l)));
		EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, f))) == 4);

		/* A crash once the installed snapshot is durable: the configuration comes back
		 * from it. */
		sim_run_for(s, 50);
		sim_crash(s, f);
		REQUIRE(s, sim_restart(s, f) == 0);
		EXPECT(s, same_conf(raft_conf_current(sim_core(s, f)),
				    raft_conf_current(sim_core(s, l))));
		REQUIRE(s, sim_one(s, "end", 5, true, 5000) != 0);
		EXPECT(s, sim_converged(s, 3000));
	out:
		SIM_DONE(s);
	}
}

/* Snapshots taken at random moments on every node while a follower flaps. */
static void test_snapshot_churn(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 5, NULL);
		char b[32];
		for (int iter = 0; iter < 200 && !sim_failed(s); iter++) {
			raft_id l = sim_leader(s);
			if (l != 0)
				sim_propose_str(s, l, cmd(b, sizeof(b), "sc", iter), NULL);
			sim_run_for(s, sim_rand(s, 20));
			raft_id v = 1 + sim_rand(s, 5);
			switch (sim_rand(s, 10)) {
			case 0:
				sim_crash(s, v);
				break;
			case 1:
				sim_restart(s, v);
				break;
			case 2:
				sim_isolate(s, v);
				break;
			case 3:
				sim_heal_node(s, v);
				break;
			case 4:
			case 5:
				if (sim_is_up(s, v) &&
				    sim_applied(s, v) > raft_snapshot_index(sim_core(s, v)))
					sim_take_snapshot(s, v, sim_rand(s, 5));
				break;
			default:
				break;
			}
		}
		sim_heal(s);
		for (raft_id id = 1; id <= 5; id++)
			if (!sim_is_up(s, id))
				REQUIRE(s, sim_restart(s, id) == 0);
		REQUIRE(s, sim_one(s, "final", 5, true, 20000) != 0);
		EXPECT(s, sim_converged(s, 5000));
	out:
		SIM_DONE(s);
	}
}

CU_TestInfo scen_snapshot_tests[] = {
	{"install snapshot after disconnect", test_install_after_disconnect},
	{"install snapshot after crash, restart from snapshot", test_install_after_crash},
	{"trailing entries avoid a snapshot", test_trailing_avoids_snapshot},
	{"snapshot racing a configuration change", test_snapshot_conf_race},
	{"snapshots at random moments with churn", test_snapshot_churn},
	CU_TEST_INFO_NULL,
};
