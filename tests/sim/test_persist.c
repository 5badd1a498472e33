/* Persistence and hostile schedules: the 6.5840 lab's 3C tests (persist 1-3, Figure 8,
 * unreliable networks, churn). */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

static raft_id other_than(raft_id id, unsigned n, unsigned k)
{
	return (raft_id)((id - 1 + k) % n + 1);
}

/* Crash and restart everyone, then the leader, then a follower: committed entries survive. */
static void test_persist1(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		REQUIRE(s, sim_one(s, "11", 3, true, 5000) != 0);

		for (raft_id id = 1; id <= 3; id++)
			sim_crash(s, id);
		for (raft_id id = 1; id <= 3; id++)
			REQUIRE(s, sim_restart(s, id) == 0);
		REQUIRE(s, sim_one(s, "12", 3, true, 10000) != 0);

		raft_id l1 = sim_leader(s);
		sim_crash(s, l1);
		REQUIRE(s, sim_restart(s, l1) == 0);
		REQUIRE(s, sim_one(s, "13", 3, true, 10000) != 0);

		raft_id l2 = sim_leader(s);
		sim_crash(s, l2);
		raft_index idx = sim_one(s, "14", 2, true, 10000);
		REQUIRE(s, idx != 0);
		REQUIRE(s, sim_restart(s, l2) == 0);
		REQUIRE(s, sim_wait_applied(s, idx, SIM_ALL, 5000));

		raft_id f = other_than(sim_leader(s), 3, 1);
		sim_crash(s, f);
		REQUIRE(s, sim_one(s, "15", 2, true, 10000) != 0);
		REQUIRE(s, sim_restart(s, f) == 0);
		REQUIRE(s, sim_one(s, "16", 3, true, 10000) != 0);
		EXPECT(s, sim_check_proposals(s, SIM_ALL) >= 6);
		EXPECT(s, sim_converged(s, 3000));
	out:
		SIM_DONE(s);
	}
}

/* The lab's TestPersist2: rolling crashes of most of a 5-node cluster. */
static void test_persist2(void)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(7, 5, &o);
	char b[32];
	long index = 1;
	for (int iters = 0; iters < 5; iters++) {
		REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "p2", 10 + index++), 5, true, 10000) != 0);
		raft_id l = sim_leader(s);
		sim_crash(s, other_than(l, 5, 1));
		sim_crash(s, other_than(l, 5, 2));
		REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "p2", 10 + index++), 3, true, 10000) != 0);
		sim_crash(s, l);
		sim_crash(s, other_than(l, 5, 3));
		sim_crash(s, other_than(l, 5, 4));
		REQUIRE(s, sim_restart(s, other_than(l, 5, 1)) == 0);
		REQUIRE(s, sim_restart(s, other_than(l, 5, 2)) == 0);
		sim_run_for(s, ELECTION_MS(o));
		REQUIRE(s, sim_restart(s, other_than(l, 5, 3)) == 0);
		REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "p2", 10 + index++), 3, true, 10000) != 0);
		REQUIRE(s, sim_restart(s, other_than(l, 5, 4)) == 0);
		REQUIRE(s, sim_restart(s, l) == 0);
	}
	REQUIRE(s, sim_one(s, "1000", 5, true, 10000) != 0);
	EXPECT(s, sim_converged(s, 3000));
out:
	SIM_DONE(s);
}

/* The lab's TestPersist3: a partitioned leader and a follower crash; the leader restarts. */
static void test_persist3(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		REQUIRE(s, sim_one(s, "101", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		sim_isolate(s, other_than(l, 3, 2));
		REQUIRE(s, sim_one(s, "102", 2, true, 5000) != 0);
		sim_crash(s, l);
		sim_crash(s, other_than(l, 3, 1));
		sim_heal(s);
		REQUIRE(s, sim_restart(s, l) == 0);
		REQUIRE(s, sim_one(s, "103", 2, true, 10000) != 0);
		REQUIRE(s, sim_restart(s, other_than(l, 3, 1)) == 0);
		REQUIRE(s, sim_one(s, "104", 3, true, 10000) != 0);
		EXPECT(s, sim_converged(s, 3000));
	out:
		SIM_DONE(s);
	}
}

/* Figure 8 of the Raft paper, constructed step by step. An entry of an old term that sits on
 * a majority must not be committed by counting replicas: a later leader may overwrite it.
 *
 *   (a) n1 leads term T1, appends X at index i, replicates it to n2 only;
 *   (b) n5 is elected in T2 > T1 by n3, n4 (and itself), appends its no-op at i, then is
 *       cut off and crashes before replicating it;
 *   (c) n1 is elected in T3 and replicates X to n3: X (term T1) is on n1, n2, n3 - a
 *       majority - but n1's own no-op (term T3) is not. X must stay uncommitted;
 *   (d) n1 crashes; n5 restarts and is elected with n2, n3, n4; it overwrites X with its
 *       term-T2 no-op. Had X been committed, the checker would report it lost. */
struct fig8 {
	raft_index x; /* while non-zero: n1's appends lose their entries after index x */
};

/* n1's appends are cut short at x: followers receive (and acknowledge) X but never n1's
 * newer no-op. An append left without entries still carries prev and gets an answer. */
static bool fig8_hook(struct sim *s, const struct raft_message *m, bool deliver, void *arg)
{
	const struct fig8 *f = arg;
	if (deliver || m->type != RAFT_MSG_APPEND || f->x == 0 || m->from != 1)
		return false;
	size_t keep = 0;
	while (keep < m->n_entries && m->entries[keep].index <= f->x)
		keep++;
	if (keep == m->n_entries)
		return false;
	struct raft_message t = *m;
	t.n_entries = keep;
	if (keep == 0)
		t.entries = NULL;
	sim_inject(s, &t);
	return true;
}

static bool pred_is_leader(struct sim *s, void *arg)
{
	raft_id id = *(const raft_id *)arg;
	return sim_role(s, id) == RAFT_LEADER;
}

/* Campaign until elected: a first campaign may only teach the node the current term. */
static bool make_leader(struct sim *s, raft_id id)
{
	for (int k = 0; k < 5 && sim_role(s, id) != RAFT_LEADER; k++) {
		if (sim_campaign(s, id) != 0)
			return false;
		sim_run_until(s, pred_is_leader, &id, 50);
	}
	return sim_role(s, id) == RAFT_LEADER;
}

static void test_figure8_constructed(void)
{
	struct sim_options o;
	sim_options_default(&o);
	o.pre_vote = false;
	o.check_quorum = false;
	o.max_entries_per_append = 1;
	o.election_ticks = 100; /* elections only when the test asks for them */
	struct sim *s = sim_new(8, 5, &o);
	struct fig8 f = {0};
	sim_set_hook(s, fig8_hook, &f);
	raft_id n1 = 1, n5 = 5;

	/* (a) n1 leads term T1 and gets X to n2 only, then crashes. */
	sim_run_for(s, 20);
	REQUIRE(s, make_leader(s, n1));
	REQUIRE(s, sim_one(s, "base", 5, false, 2000) != 0);
	raft_term t1 = sim_term(s, n1);
	sim_partition(s, SIM_NODE(1) | SIM_NODE(2));
	raft_index x = 0;
	REQUIRE(s, sim_propose_str(s, n1, "X", &x) == 0);
	sim_run_for(s, 50);
	REQUIRE(s, raft_last_index(sim_core(s, 2)) == x);
	EXPECT(s, sim_commit(s, n1) < x);
	sim_crash(s, n1);

	/* (b) n5 is elected in T2 by n3, n4; it appends its no-op at x and crashes at once. */
	REQUIRE(s, make_leader(s, n5));
	sim_isolate(s, n5);
	raft_term t2 = sim_term(s, n5);
	REQUIRE(s, t2 > t1);
	REQUIRE(s, raft_term_at(sim_core(s, n5), x) == t2);
	sim_run_for(s, 20);
	sim_crash(s, n5);
	EXPECT(s, raft_last_index(sim_core(s, 3)) < x);

	/* (c) n1 restarts and is elected in T3 by n2 and n3 (n4 and n5 are away). Its appends
	 * are cut short before its new no-op: X reaches n3, and n2 and n3 acknowledge X. */
	sim_heal(s);
	sim_isolate(s, 4);
	sim_isolate(s, 5);
	f.x = x;
	REQUIRE(s, sim_restart(s, n1) == 0);
	REQUIRE(s, make_leader(s, n1));
	raft_term t3 = sim_term(s, n1);
	REQUIRE(s, t3 > t2);
	REQUIRE(s, raft_term_at(sim_core(s, n1), x) == t1);
	REQUIRE(s, raft_term_at(sim_core(s, n1), x + 1) == t3);
	sim_run_for(s, 300);
	/* X is on a majority, and the leader knows it... */
	EXPECT(s, raft_term_at(sim_core(s, 2), x) == t1);
	EXPECT(s, raft_term_at(sim_core(s, 3), x) == t1);
	struct raft_progress_info p2, p3;
	EXPECT(s, raft_progress(sim_core(s, 1), 2, &p2) && p2.match == x);
	EXPECT(s, raft_progress(sim_core(s, 1), 3, &p3) && p3.match == x);
	/* ...but it is from an old term: not committed by counting replicas (thesis §3.6.2). */
	EXPECT(s, sim_commit(s, 1) < x);
	EXPECT(s, sim_commit(s, 2) < x);
	EXPECT(s, sim_commit(s, 3) < x);
	EXPECT(s, sim_max_commit(s) < x);

	/* (d) n1 crashes; n5 restarts and is elected by n2, n3, n4: X is overwritten. */
	sim_crash(s, n1);
	f.x = 0;
	sim_heal(s);
	REQUIRE(s, sim_restart(s, n5) == 0);
	REQUIRE(s, make_leader(s, n5));
	raft_index last = sim_one(s, "after", 4, true, 5000);
	REQUIRE(s, last != 0);
	/* X was overwritten by n5's term-T2 no-op everywhere. */
	EXPECT(s, sim_committed_term(s, x) == t2);
	REQUIRE(s, sim_restart(s, n1) == 0);
	REQUIRE(s, sim_wait_applied(s, last, SIM_ALL, 5000));
	EXPECT(s, raft_term_at(sim_core(s, 1), x) == t2);
	EXPECT(s, sim_converged(s, 3000));
out:
	SIM_DONE(s);
}

/* Connect exactly the nodes in `conn` (1..5) with each other. */
static void apply_conn(struct sim *s, const bool *conn)
{
	sim_heal(s);
	for (raft_id id = 1; id <= 5; id++)
		if (!conn[id])
			sim_isolate(s, id);
}

/* The lab's randomized TestFigure8 (leaders crash at random moments while proposing) and
 * TestFigure8Unreliable (leaders are disconnected instead, on a lossy, reordering network). */
static void figure8_random(uint64_t seed, bool unreliable)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(seed, 5, &o);
	char b[32];
	bool conn[6] = {false, true, true, true, true, true};
	if (unreliable)
		sim_net_set(s, 1, 10, 100000, 50000);
	REQUIRE(s, sim_one(s, "f8-start", 1, true, 10000) != 0);
	unsigned nup = 5;
	for (int iter = 0; iter < (unreliable ? 300 : 200); iter++) {
		raft_id l = sim_leader(s);
		if (l != 0)
			sim_propose_str(s, l, cmd(b, sizeof(b), "f8", (long)sim_rand(s, 1000000)),
					NULL);
		if (sim_rand(s, 1000) < 100)
			sim_run_for(s, sim_rand(s, ELECTION_MS(o) / 2));
		else
			sim_run_for(s, sim_rand(s, 13));
		if (sim_failed(s))
			break;
		if (l != 0 && sim_rand(s, 1000) < 500) {
			if (unreliable) {
				conn[l] = false;
				apply_conn(s, conn);
			} else {
				sim_crash(s, l);
				nup--;
			}
		}
		if (unreliable) {
			/* Occasionally very long delays: a lot of reordering. */
			if (sim_rand(s, 1000) < 100)
				sim_net_set(s, 1, 10 + sim_rand(s, 200), 100000, 50000);
			else if (sim_rand(s, 1000) < 100)
				sim_net_set(s, 1, 10, 100000, 50000);
			unsigned nconn = 0;
			for (raft_id id = 1; id <= 5; id++)
				nconn += conn[id];
			if (nconn < 3) {
				conn[1 + sim_rand(s, 5)] = true;
				apply_conn(s, conn);
			}
		} else if (nup < 3) {
			raft_id r = 1 + sim_rand(s, 5);
			if (!sim_is_up(s, r)) {
				REQUIRE(s, sim_restart(s, r) == 0);
				nup++;
			}
		}
	}
	sim_net_reliable(s);
	sim_heal(s);
	for (raft_id id = 1; id <= 5; id++)
		if (!sim_is_up(s, id))
			REQUIRE(s, sim_restart(s, id) == 0);
	REQUIRE(s, sim_one(s, "f8-final", 5, true, 20000) != 0);
	EXPECT(s, sim_check_proposals(s, SIM_ALL) > 0);
	EXPECT(s, sim_converged(s, 5000));
out:
	SIM_DONE(s);
}

static void test_figure8_random(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++)
		figure8_random(seed, false);
}

static void test_figure8_unreliable(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++)
		figure8_random(seed, true);
}

/* The lab's TestUnreliableAgree: drops, duplicates and reordering; everything commits. */
static void test_unreliable_agree(void)
{
	struct sim *s = sim_new(4, 5, NULL);
	char b[32];
	sim_net_set(s, 1, 30, 100000, 100000);
	for (long iters = 1; iters < 50; iters++) {
		raft_id l = sim_leader(s);
		for (long j = 0; j < 4; j++)
			if (l != 0)
				sim_propose_str(s, l, cmd(b, sizeof(b), "ua", 100 * iters + j),
						NULL);
		REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "ub", iters), 1, true, 10000) != 0);
	}
	sim_net_reliable(s);
	REQUIRE(s, sim_one(s, "100", 5, true, 10000) != 0);
	EXPECT(s, sim_check_proposals(s, SIM_ALL) >= 50);
	EXPECT(s, sim_converged(s, 5000));
out:
	SIM_DONE(s);
}

/* The lab's churn tests: random crashes, restarts and partitions while proposing. Every
 * committed proposal is on every node at the end. */
static void churn(uint64_t seed, bool unreliable)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(seed, 5, &o);
	char b[32];
	if (unreliable)
		sim_net_set(s, 1, 20, 50000, 50000);
	for (int iter = 0; iter < 200 && !sim_failed(s); iter++) {
		/* A few clients propose on whichever node they think is leader. */
		for (int c = 0; c < 3; c++) {
			raft_id to = 1 + sim_rand(s, 5);
			if (sim_rand(s, 2))
				to = sim_leader(s) != 0 ? sim_leader(s) : to;
			sim_propose_str(s, to,
					cmd(b, sizeof(b), "churn", (long)sim_rand(s, 1u << 30)),
					NULL);
		}
		sim_run_for(s, 1 + sim_rand(s, 20));
		raft_id v = 1 + sim_rand(s, 5);
		uint64_t r = sim_rand(s, 1000);
		if (r < 100)
			sim_isolate(s, v);
		else if (r < 200)
			sim_heal_node(s, v);
		else if (r < 250)
			sim_crash(s, v);
		else if (r < 400 && !sim_is_up(s, v))
			REQUIRE(s, sim_restart(s, v) == 0);
	}
	sim_net_reliable(s);
	sim_heal(s);
	for (raft_id id = 1; id <= 5; id++)
		if (!sim_is_up(s, id))
			REQUIRE(s, sim_restart(s, id) == 0);
	raft_index last = sim_one(s, "churn-final", 5, true, 20000);
	REQUIRE(s, last != 0);
	REQUIRE(s, sim_wait_applied(s, sim_max_commit(s), SIM_ALL, 5000));
	EXPECT(s, sim_check_proposals(s, SIM_ALL) > 0);
	EXPECT(s, sim_converged(s, 5000));
out:
	SIM_DONE(s);
}

static void test_reliable_churn(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++)
		churn(seed, false);
}

static void test_unreliable_churn(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++)
		churn(seed, true);
}

/* A crash between a vote and its durability: the vote must not be granted twice. Disks
 * are slow, so crashes hit many writes in flight. */
static void test_crash_with_slow_disks(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		o.disk_min_ms = 5;
		o.disk_max_ms = 40;
		struct sim *s = sim_new(seed, 3, &o);
		char b[32];
		for (int iter = 0; iter < 100 && !sim_failed(s); iter++) {
			raft_id l = sim_leader(s);
			if (l != 0)
				sim_propose_str(s, l, cmd(b, sizeof(b), "slow", iter), NULL);
			sim_run_for(s, sim_rand(s, 60));
			raft_id v = 1 + sim_rand(s, 3);
			if (sim_rand(s, 4) == 0) {
				sim_crash(s, v);
				sim_run_for(s, sim_rand(s, 50));
				REQUIRE(s, sim_restart(s, v) == 0);
			}
		}
		REQUIRE(s, sim_one(s, "slow-final", 3, true, 20000) != 0);
		EXPECT(s, sim_converged(s, 5000));
	out:
		SIM_DONE(s);
	}
}

CU_TestInfo scen_persist_tests[] = {
	{"persist 1: crash all, leader, follower", test_persist1},
	{"persist 2: rolling crashes", test_persist2},
	{"persist 3: partitioned leader and follower crash", test_persist3},
	{"figure 8: old-term entry not committed by counting", test_figure8_constructed},
	{"figure 8 (randomized crashes)", test_figure8_random},
	{"unreliable agreement", test_unreliable_agree},
	{"figure 8 unreliable", test_figure8_unreliable},
	{"reliable churn", test_reliable_churn},
	{"unreliable churn", test_unreliable_churn},
	{"crashes with slow disks", test_crash_with_slow_disks},
	CU_TEST_INFO_NULL,
};
