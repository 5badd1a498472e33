/* Log replication: the 6.5840 lab's 3B tests (agreement, failures, rejoin, backup, counts). */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

/* Commands commit one after the other, at consecutive indexes, on every node. */
static void test_basic_agreement(void)
{
	struct sim *s = sim_new(1, 5, NULL);
	char b[32];
	REQUIRE(s, sim_wait_leader(s, 2000) != 0);
	raft_index prev = 0;
	for (long i = 1; i <= 3; i++) {
		raft_index idx = sim_one(s, cmd(b, sizeof(b), "basic", i), 5, false, 5000);
		REQUIRE(s, idx != 0);
		if (prev != 0)
			EXPECT(s, idx == prev + 1);
		prev = idx;
	}
out:
	SIM_DONE(s);
}

/* A follower is disconnected: the others keep committing; it catches up when back. */
static void test_fail_agree(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		char b[32];
		REQUIRE(s, sim_one(s, "101", 3, false, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id f = l % 3 + 1;
		sim_isolate(s, f);
		for (long i = 102; i <= 105; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "c", i), 2, false, 5000) != 0);
		sim_heal(s);
		raft_index idx = sim_one(s, "106", 3, true, 10000);
		REQUIRE(s, idx != 0);
		REQUIRE(s, sim_one(s, "107", 3, true, 10000) != 0);
		EXPECT(s, sim_converged(s, 3000));
	out:
		SIM_DONE(s);
	}
}

/* 3 of 5 disconnected: nothing commits; after healing, commits resume. */
static void test_fail_no_agree(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		REQUIRE(s, sim_one(s, "10", 5, false, 5000) != 0);
		raft_id l = sim_leader(s);
		for (raft_id k = 1; k <= 3; k++)
			sim_isolate(s, (l + k - 1) % 5 + 1);
		raft_index idx = 0;
		REQUIRE(s, sim_propose_str(s, l, "20", &idx) == 0);
		raft_index before = sim_max_commit(s);
		sim_run_for(s, 2 * ELECTION_MS(o));
		EXPECT(s, sim_commit(s, l) < idx);
		EXPECT(s, sim_max_commit(s) == before);
		sim_heal(s);
		REQUIRE(s, sim_one(s, "30", 5, true, 10000) != 0);
		REQUIRE(s, sim_one(s, "1000", 5, true, 10000) != 0);
	out:
		SIM_DONE(s);
	}
}

/* Several proposals at once on the leader: all commit, in order, at distinct indexes. */
static void test_concurrent_starts(void)
{
	struct sim *s = sim_new(3, 3, NULL);
	raft_index idx[5] = {0};
	char b[32];
	raft_id l = sim_wait_leader(s, 2000);
	REQUIRE(s, l != 0);
	REQUIRE(s, sim_one(s, "warmup", 3, true, 5000) != 0);
	l = sim_leader(s);
	raft_term t = sim_term(s, l);
	for (long i = 0; i < 5; i++) {
		REQUIRE(s, sim_propose_str(s, l, cmd(b, sizeof(b), "conc", i), &idx[i]) == 0);
		if (i > 0)
			EXPECT(s, idx[i] == idx[i - 1] + 1);
	}
	REQUIRE(s, sim_wait_applied(s, idx[4], SIM_ALL, 3000));
	for (int i = 0; i < 5; i++)
		EXPECT(s, sim_count_applied(s, idx[i], t) == 3);
out:
	SIM_DONE(s);
}

/* A partitioned leader's uncommitted entries are discarded when it rejoins. */
static void test_rejoin(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		REQUIRE(s, sim_one(s, "101", 3, true, 5000) != 0);
		raft_id l1 = sim_leader(s);
		raft_term t1 = sim_term(s, l1);
		sim_isolate(s, l1);
		raft_index lost[3];
		REQUIRE(s, sim_propose_str(s, l1, "102", &lost[0]) == 0);
		REQUIRE(s, sim_propose_str(s, l1, "103", &lost[1]) == 0);
		REQUIRE(s, sim_propose_str(s, l1, "104", &lost[2]) == 0);

		/* The others elect a new leader and commit 103 there. */
		sim_run_for(s, 3 * ELECTION_MS(o));
		REQUIRE(s, sim_one(s, "103", 2, true, 5000) != 0);
		raft_id l2 = sim_leader(s);
		REQUIRE(s, l2 != l1);

		/* New leader partitioned; the old one comes back and follows the third node. */
		sim_heal_node(s, l1);
		sim_isolate(s, l2);
		REQUIRE(s, sim_one(s, "104", 2, true, 10000) != 0);
		sim_heal(s);
		raft_index last = sim_one(s, "105", 3, true, 10000);
		REQUIRE(s, last != 0);
		REQUIRE(s, sim_wait_applied(s, last, SIM_ALL, 3000));
		for (int i = 0; i < 3; i++)
			EXPECT(s, sim_committed_term(s, lost[i]) != t1);
		EXPECT(s, sim_digest(s, 1) == sim_digest(s, 2));
		EXPECT(s, sim_digest(s, 2) == sim_digest(s, 3));
	out:
		SIM_DONE(s);
	}
}

static bool pred_leader_is(struct sim *s, void *arg)
{
	return sim_leader(s) == *(const raft_id *)arg;
}

/* The lab's TestBackup: a leader brings a follower with 50+ divergent entries back in line in
 * a few round trips, thanks to conflict-term backtracking. */
static void test_backup(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		char b[32];
		REQUIRE(s, sim_one(s, "start", 5, true, 5000) != 0);
		raft_id l1 = sim_leader(s);
		raft_id f1 = l1 % 5 + 1;

		/* Leader and one follower in a minority: 50 entries that will not commit. */
		sim_partition(s, SIM_NODE(l1) | SIM_NODE(f1));
		for (long i = 0; i < 50; i++)
			sim_propose_str(s, l1, cmd(b, sizeof(b), "lost1", i), NULL);
		sim_run_for(s, ELECTION_MS(o) / 2);

		/* The other three elect a leader and commit 50. */
		REQUIRE(s, sim_wait_leader(s, 20 * ELECTION_MS(o)) != 0);
		sim_run_for(s, 3 * ELECTION_MS(o));
		raft_id l2 = sim_leader(s);
		REQUIRE(s, l2 != l1 && l2 != f1);
		for (long i = 0; i < 50; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "ok1", i), 3, true, 5000) != 0);

		/* Now leader 2 and one follower are cut off: 50 more lost. */
		l2 = sim_leader(s);
		raft_id other = 0;
		for (raft_id id = 1; id <= 5 && other == 0; id++)
			if (id != l1 && id != f1 && id != l2)
				other = id;
		sim_heal(s);
		sim_partition(s, SIM_NODE(l1) | SIM_NODE(f1) | SIM_NODE(other));
		for (long i = 0; i < 50; i++)
			sim_propose_str(s, l2, cmd(b, sizeof(b), "lost2", i), NULL);
		sim_run_for(s, ELECTION_MS(o) / 2);

		/* The original leader, its follower and `other` get together: 50 commit. */
		for (long i = 0; i < 50; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "ok2", i), 3, true, 10000) != 0);

		/* A new leader in the majority, elected after those 50: its probes start at the
		 * top of its log, 50 entries above where the cut-off nodes diverge. (The old
		 * leader's probes would start at its election-time index, right at the
		 * divergence, and need no backtracking at all.) */
		raft_id l3 = sim_leader(s);
		raft_id to = l3 == l1 ? f1 : l1;
		REQUIRE(s, sim_transfer(s, l3, to) == 0);
		REQUIRE(s, sim_wait_leader(s, ELECTION_MS(o)) != 0);
		REQUIRE(s, sim_run_until(s, pred_leader_is, &to, 5 * ELECTION_MS(o)));
		REQUIRE(s, sim_one(s, "new-leader", 3, true, 5000) != 0);

		/* Everyone together: the divergent followers are repaired. */
		sim_run_for(s, ELECTION_MS(o));
		sim_reset_counters(s);
		sim_heal(s);
		raft_index idx = sim_one(s, "final", 5, true, 10000);
		REQUIRE(s, idx != 0);
		REQUIRE(s, sim_wait_applied(s, idx, SIM_ALL, 3000));
		/* Two nodes hold 50+ divergent entries over a few terms; stepping back one entry
		 * at a time would take 50+ rejections each. */
		uint64_t rejects = sim_append_rejects(s);
		sim_trace(s, "backup: %llu rejected appends, %llu appends to repair",
			  (unsigned long long)rejects,
			  (unsigned long long)sim_msgs_sent(s, RAFT_MSG_APPEND));
		EXPECT(s, rejects >= 2); /* backtracking was needed: the test tests something */
		EXPECT(s, rejects <= 12);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_APPEND) <= 80);
	out:
		SIM_DONE(s);
	}
}

/* The lab's TestCount: agreeing on 10 commands needs a bounded number of appends. */
static void test_rpc_count(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		char b[32];
		REQUIRE(s, sim_one(s, "warm", 3, true, 5000) != 0);
		sim_reset_counters(s);
		for (long i = 0; i < 10; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "cnt", i), 3, false, 3000) != 0);
		/* One append per follower per command, plus a few for commit propagation. */
		uint64_t appends = sim_msgs_sent(s, RAFT_MSG_APPEND);
		EXPECT(s, appends <= (10 + 3) * 2);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_VOTE) == 0);
		EXPECT(s, sim_append_rejects(s) == 0);
	out:
		SIM_DONE(s);
	}
}

/* Many proposals in one step are batched and all commit. */
static void test_batch_proposals(void)
{
	struct sim_options o;
	sim_options_default(&o);
	o.max_entries_per_append = 8;
	o.max_inflight = 4;
	struct sim *s = sim_new(5, 3, &o);
	char b[32];
	raft_index last = 0;
	REQUIRE(s, sim_one(s, "warm", 3, true, 5000) != 0);
	raft_id l = sim_leader(s);
	for (long i = 0; i < 300; i++)
		REQUIRE(s, sim_propose_str(s, l, cmd(b, sizeof(b), "batch", i), &last) == 0);
	REQUIRE(s, sim_wait_applied(s, last, SIM_ALL, 5000));
	EXPECT(s, sim_digest(s, 1) == sim_digest(s, 2) && sim_digest(s, 2) == sim_digest(s, 3));
	EXPECT(s, sim_check_proposals(s, SIM_ALL) >= 301);
out:
	SIM_DONE(s);
}

/* Proposals on a follower are refused with RAFT_ENOTLEADER. */
static void test_propose_on_follower(void)
{
	struct sim *s = sim_new(2, 3, NULL);
	REQUIRE(s, sim_wait_leader(s, 2000) != 0);
	raft_id f = sim_leader(s) % 3 + 1;
	EXPECT(s, sim_propose_str(s, f, "no", NULL) == RAFT_ENOTLEADER);
out:
	SIM_DONE(s);
}

CU_TestInfo scen_replication_tests[] = {
	{"basic agreement", test_basic_agreement},
	{"agreement despite follower disconnection", test_fail_agree},
	{"no agreement if too many followers disconnect", test_fail_no_agree},
	{"concurrent proposals", test_concurrent_starts},
	{"rejoin of partitioned leader", test_rejoin},
	{"leader backs up quickly over incorrect follower logs", test_backup},
	{"RPC counts", test_rpc_count},
	{"batched proposals with flow control", test_batch_proposals},
	{"proposal on a follower", test_propose_on_follower},
	CU_TEST_INFO_NULL,
};
