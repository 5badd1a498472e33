/* Leader election: the 6.5840 lab's 3A tests, pre-vote, check-quorum, message counts. */
#include "scen.h"

/* A leader is elected, and without faults the term stays where it is. */
static void test_initial_election(void)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		raft_id l = sim_wait_leader(s, 10 * ELECTION_MS(o));
		REQUIRE(s, l != 0);
		/* Let a possible split vote settle, then the term must not move. */
		sim_run_for(s, 2 * ELECTION_MS(o));
		l = sim_leader(s);
		REQUIRE(s, l != 0);
		raft_term t = sim_term(s, l);
		for (raft_id id = 1; id <= 3; id++)
			EXPECT(s, sim_term(s, id) == t);
		sim_run_for(s, 20 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == l);
		for (raft_id id = 1; id <= 3; id++)
			EXPECT(s, sim_term(s, id) == t);
	out:
		SIM_DONE(s);
	}
}

/* Leader disconnected: a new one is elected; the old one rejoins without disturbing it;
 * without a quorum nobody is leader; with the quorum back there is one. */
static void test_re_election(void)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		raft_id l1 = sim_wait_leader(s, 10 * ELECTION_MS(o));
		REQUIRE(s, l1 != 0);

		sim_isolate(s, l1);
		sim_run_for(s, 4 * ELECTION_MS(o));
		raft_id l2 = sim_leader(s);
		REQUIRE(s, l2 != 0 && l2 != l1);
		/* check-quorum: the isolated old leader stepped down by now. */
		EXPECT(s, sim_role(s, l1) != RAFT_LEADER);

		/* The old leader rejoins: the new leader stays, at the same term. */
		raft_term t2 = sim_term(s, l2);
		sim_heal(s);
		sim_run_for(s, 4 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == l2);
		EXPECT(s, sim_term(s, l2) == t2);

		/* No quorum: no leader. */
		raft_id other = 1;
		while (other == l2)
			other++;
		sim_isolate(s, l2);
		sim_isolate(s, other);
		sim_run_for(s, 6 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == 0);

		/* A quorum again: a leader. */
		sim_heal_node(s, other);
		sim_isolate(s, l2);
		EXPECT(s, sim_wait_leader(s, 10 * ELECTION_MS(o)) != 0);
		sim_heal(s);
		sim_run_for(s, 4 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) != 0);
	out:
		SIM_DONE(s);
	}
}

/* 7 nodes, repeatedly disconnecting 3 at random: a leader keeps being found. */
static void test_many_elections(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 7, &o);
		REQUIRE(s, sim_wait_leader(s, 10 * ELECTION_MS(o)) != 0);
		for (int iter = 0; iter < 10; iter++) {
			raft_id a = 1 + sim_rand(s, 7), b = 1 + sim_rand(s, 7),
				c = 1 + sim_rand(s, 7);
			sim_isolate(s, a);
			sim_isolate(s, b);
			sim_isolate(s, c);
			/* Whatever was cut, at least 4 nodes are connected: a leader exists among
			 * them (the leader with the highest term is theirs). */
			raft_id l = 0;
			for (int k = 0; k < 40 && l == 0; k++) {
				sim_run_for(s, ELECTION_MS(o));
				l = sim_leader(s);
				if (l == a || l == b || l == c)
					l = 0;
			}
			EXPECT(s, l != 0);
			sim_heal(s);
		}
		EXPECT(s, sim_wait_leader(s, 10 * ELECTION_MS(o)) != 0);
	out:
		SIM_DONE(s);
	}
}

/* Pre-vote: a follower partitioned for a long time does not inflate its term, and when it
 * rejoins the healthy leader keeps its term and leadership. */
static void test_prevote_no_disruption(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		raft_id l = sim_wait_leader(s, 10 * ELECTION_MS(o));
		REQUIRE(s, l != 0);
		REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
		l = sim_leader(s);
		raft_term t = sim_term(s, l);
		raft_id f = l % 5 + 1;
		sim_isolate(s, f);
		sim_run_for(s, 50 * ELECTION_MS(o));
		EXPECT(s, sim_term(s, f) == t);
		sim_heal(s);
		sim_run_for(s, 10 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == l);
		EXPECT(s, sim_term(s, l) == t);
		EXPECT(s, sim_one(s, "y", 5, false, 3000) != 0);
	out:
		SIM_DONE(s);
	}
}

/* Without pre-vote, the same rejoin may raise the term but must stay safe and live. */
static void test_no_prevote_rejoin(void)
{
	struct sim_options o;
	sim_options_default(&o);
	o.pre_vote = false;
	o.check_quorum = false;
	struct sim *s = sim_new(11, 5, &o);
	REQUIRE(s, sim_wait_leader(s, 10 * ELECTION_MS(o)) != 0);
	raft_id l = sim_leader(s);
	raft_id f = l % 5 + 1;
	sim_isolate(s, f);
	sim_run_for(s, 20 * ELECTION_MS(o));
	sim_heal(s);
	EXPECT(s, sim_one(s, "after", 5, true, 10000) != 0);
out:
	SIM_DONE(s);
}

/* Check-quorum: a leader cut off from its quorum steps down within a bounded time, both when
 * isolated alone and when left in a minority with one follower. */
static void test_check_quorum_step_down(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		raft_id l = sim_wait_leader(s, 10 * ELECTION_MS(o));
		REQUIRE(s, l != 0);
		sim_isolate(s, l);
		uint64_t t0 = sim_now(s);
		for (int k = 0; k < 300 && sim_role(s, l) == RAFT_LEADER; k++)
			sim_run_for(s, o.tick_ms);
		EXPECT(s, sim_role(s, l) != RAFT_LEADER);
		/* Bound: two election timeouts (its own timeout is randomized in [e, 2e)). */
		EXPECT(s, sim_now(s) - t0 <= 2 * ELECTION_MS(o) + 2 * o.tick_ms);
		sim_heal(s);

		l = sim_wait_leader(s, 20 * ELECTION_MS(o));
		REQUIRE(s, l != 0);
		sim_run_for(s, ELECTION_MS(o));
		l = sim_leader(s);
		REQUIRE(s, l != 0);
		raft_id buddy = l % 5 + 1;
		sim_partition(s, SIM_NODE(l) | SIM_NODE(buddy));
		t0 = sim_now(s);
		for (int k = 0; k < 300 && sim_role(s, l) == RAFT_LEADER; k++)
			sim_run_for(s, o.tick_ms);
		EXPECT(s, sim_role(s, l) != RAFT_LEADER);
		EXPECT(s, sim_now(s) - t0 <= 2 * ELECTION_MS(o) + 2 * o.tick_ms);
		/* The majority side elected its own leader meanwhile. */
		raft_id l2 = sim_wait_leader(s, 20 * ELECTION_MS(o));
		EXPECT(s, l2 != 0 && l2 != l && l2 != buddy);
	out:
		SIM_DONE(s);
	}
}

/* An election costs a bounded number of messages, and so does an idle second. */
static void test_election_message_count(void)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		REQUIRE(s, sim_wait_leader(s, 10 * ELECTION_MS(o)) != 0);
		uint64_t election = sim_msgs_sent(s, RAFT_MSG_PREVOTE) +
				    sim_msgs_sent(s, RAFT_MSG_PREVOTE_RESP) +
				    sim_msgs_sent(s, RAFT_MSG_VOTE) +
				    sim_msgs_sent(s, RAFT_MSG_VOTE_RESP);
		/* One round is 8 messages for 3 nodes; allow two split rounds. */
		EXPECT(s, election <= 24);

		/* Idle: heartbeats only (and their answers), no stray appends or votes. */
		sim_run_for(s, 2 * ELECTION_MS(o));
		sim_reset_counters(s);
		uint64_t idle_ms = 1000;
		sim_run_for(s, idle_ms);
		uint64_t hb_ms = (uint64_t)o.heartbeat_ticks * o.tick_ms;
		uint64_t bound = (idle_ms / hb_ms + 2) * 2 * 2;
		EXPECT(s, sim_msgs_total(s) <= bound);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_VOTE) == 0);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_PREVOTE) == 0);
		EXPECT(s, sim_msgs_sent(s, RAFT_MSG_APPEND) <= 4);
	out:
		SIM_DONE(s);
	}
}

/* A single-node cluster elects itself and commits alone. */
static void test_single_node(void)
{
	struct sim *s = sim_new(1, 1, NULL);
	REQUIRE(s, sim_wait_leader(s, 1000) == 1);
	EXPECT(s, sim_one(s, "solo", 1, false, 1000) != 0);
out:
	SIM_DONE(s);
}

CU_TestInfo scen_election_tests[] = {
	{"initial election", test_initial_election},
	{"re-election", test_re_election},
	{"many elections (7 nodes)", test_many_elections},
	{"pre-vote: rejoining node does not disrupt", test_prevote_no_disruption},
	{"no pre-vote: rejoin stays safe and live", test_no_prevote_rejoin},
	{"check-quorum: leader without quorum steps down", test_check_quorum_step_down},
	{"election and idle message counts", test_election_message_count},
	{"single node", test_single_node},
	CU_TEST_INFO_NULL,
};
