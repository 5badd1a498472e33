/* Leadership transfer (thesis §3.10): TIMEOUT_NOW only to a caught-up target, proposals
 * refused meanwhile, and a bounded wait when the target cannot be reached. */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

static bool pred_leader_is(struct sim *s, void *arg)
{
	raft_id id = *(const raft_id *)arg;
	return sim_role(s, id) == RAFT_LEADER;
}

/* Watches TIMEOUT_NOW: at send time the target's log must match the leader's. */
struct tn_watch {
	unsigned sent;
	unsigned premature;
};

static bool tn_hook(struct sim *s, const struct raft_message *m, bool deliver, void *arg)
{
	struct tn_watch *w = arg;
	if (deliver || m->type != RAFT_MSG_TIMEOUT_NOW)
		return false;
	w->sent++;
	struct raft *from = sim_core(s, m->from), *to = sim_core(s, m->to);
	if (from == NULL || to == NULL)
		return false;
	raft_index last = raft_last_index(from);
	if (raft_last_index(to) < last || raft_term_at(to, last) != raft_term_at(from, last)) {
		w->premature++;
		sim_trace(s, "TIMEOUT_NOW to n%llu whose log ends at %llu, leader's at %llu",
			  (unsigned long long)m->to, (unsigned long long)raft_last_index(to),
			  (unsigned long long)last);
	}
	return false;
}

/* To a caught-up follower: it becomes leader quickly, well before an election timeout. */
static void test_transfer_caught_up(void)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		struct tn_watch w = {0};
		sim_set_hook(s, tn_hook, &w);
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id t = l % 3 + 1;
		raft_term term = sim_term(s, l);
		REQUIRE(s, sim_transfer(s, l, t) == 0);
		uint64_t t0 = sim_now(s);
		REQUIRE(s, sim_run_until(s, pred_leader_is, &t, ELECTION_MS(o)));
		EXPECT(s, sim_now(s) - t0 < ELECTION_MS(o));
		EXPECT(s, sim_term(s, t) == term + 1);
		EXPECT(s, w.sent >= 1 && w.premature == 0);
		EXPECT(s, sim_one(s, "y", 3, false, 3000) != 0);
		sim_run_for(s, 3 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == t);
	out:
		SIM_DONE(s);
	}
}

/* To a lagging follower: no TIMEOUT_NOW until it has caught up; proposals are refused with
 * RAFT_EBUSY while the transfer is on; then the target leads. */
static void test_transfer_lagging(void)
{
	for (uint64_t seed = 1; seed <= 5; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		o.max_entries_per_append = 4;
		o.max_inflight = 2;
		struct sim *s = sim_new(seed, 3, &o);
		struct tn_watch w = {0};
		char b[32];
		sim_set_hook(s, tn_hook, &w);
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id t = l % 3 + 1;
		sim_cut(s, l, t);
		for (long i = 0; i < 40; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "lag", i), 2, true, 3000) != 0);
		REQUIRE(s, sim_leader(s) == l);
		REQUIRE(s, sim_applied(s, t) + 40 <= sim_applied(s, l));
		REQUIRE(s, sim_transfer(s, l, t) == 0);
		EXPECT(s, raft_transferee(sim_core(s, l)) == t);
		EXPECT(s, sim_propose_str(s, l, "busy", NULL) == RAFT_EBUSY);
		sim_run_for(s, 20);
		EXPECT(s, w.sent == 0);
		sim_heal(s);
		REQUIRE(s, sim_run_until(s, pred_leader_is, &t, 2 * ELECTION_MS(o)));
		EXPECT(s, w.sent >= 1);
		EXPECT(s, w.premature == 0);
		EXPECT(s, sim_one(s, "after", 3, true, 3000) != 0);
	out:
		SIM_DONE(s);
	}
}

/* To an unreachable node: the transfer times out (about an election timeout) and the old
 * leader accepts proposals again. */
static void test_transfer_unreachable(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id t = l % 5 + 1;
		raft_term term = sim_term(s, l);
		sim_isolate(s, t);
		REQUIRE(s, sim_transfer(s, l, t) == 0);
		EXPECT(s, sim_propose_str(s, l, "busy", NULL) == RAFT_EBUSY);
		uint64_t t0 = sim_now(s);
		for (int k = 0; k < 100 && raft_transferee(sim_core(s, l)) != 0; k++)
			sim_run_for(s, o.tick_ms);
		EXPECT(s, raft_transferee(sim_core(s, l)) == 0);
		EXPECT(s, sim_now(s) - t0 <= 2 * ELECTION_MS(o) + o.tick_ms);
		EXPECT(s, sim_leader(s) == l && sim_term(s, l) == term);
		raft_index idx = 0;
		EXPECT(s, sim_propose_str(s, l, "again", &idx) == 0);
		EXPECT(s, sim_wait_applied(s, idx, sim_up_mask(s) & ~SIM_NODE(t), 3000));
		sim_heal(s);
		EXPECT(s, sim_one(s, "healed", 5, true, 5000) != 0);
	out:
		SIM_DONE(s);
	}
}

/* Transfer arguments: to itself, to a non-member, on a follower. */
static void test_transfer_errors(void)
{
	struct sim *s = sim_new(1, 3, NULL);
	REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
	raft_id l = sim_leader(s);
	raft_id f = l % 3 + 1;
	EXPECT(s, sim_transfer(s, f, l) == RAFT_ENOTLEADER);
	EXPECT(s, sim_transfer(s, l, 9) == RAFT_ENOTMEMBER);
	int rv = sim_transfer(s, l, l);
	EXPECT(s, rv == 0 || rv == RAFT_EINVAL);
	EXPECT(s, sim_leader(s) == l);
	/* 0 = the most caught-up voter. */
	REQUIRE(s, sim_transfer(s, l, 0) == 0);
	sim_run_for(s, 200);
	EXPECT(s, sim_leader(s) != 0 && sim_leader(s) != l);
out:
	SIM_DONE(s);
}

/* "The most caught-up voter" (target 0, what a leader's graceful shutdown asks for) is one
 * the leader still hears from: with a crashed follower exactly as caught up as a live one,
 * the transfer goes to the live one at once (it used to go to whichever came first in the
 * progress table, so half the time a shutdown waited out the transfer timeout). */
static void test_transfer_auto_skips_a_dead_voter(void)
{
	for (uint64_t seed = 1; seed <= 6; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		/* crash each follower in turn: both orders of the progress table */
		raft_id dead = (seed % 2) ? l % 3 + 1 : (l + 1) % 3 + 1;
		raft_id live = 6 - l - dead;
		sim_crash(s, dead);
		/* one check-quorum round, so the leader knows who answers */
		sim_run_for(s, 2 * ELECTION_MS(o));
		REQUIRE(s, sim_leader(s) == l);
		REQUIRE(s, sim_transfer(s, l, 0) == 0);
		EXPECT(s, raft_transferee(sim_core(s, l)) == live);
		REQUIRE(s, sim_run_until(s, pred_leader_is, &live, ELECTION_MS(o)));
	out:
		SIM_DONE(s);
	}
}

/* Repeated transfers around the ring with traffic: safety holds, every transfer lands. */
static void test_transfer_ring(void)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(9, 5, &o);
	char b[32];
	REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
	for (long i = 0; i < 10; i++) {
		raft_id l = sim_leader(s);
		raft_id t = l % 5 + 1;
		for (long k = 0; k < 5; k++)
			sim_propose_str(s, l, cmd(b, sizeof(b), "ring", 10 * i + k), NULL);
		REQUIRE(s, sim_transfer(s, l, t) == 0);
		REQUIRE(s, sim_run_until(s, pred_leader_is, &t, 2 * ELECTION_MS(o)));
	}
	REQUIRE(s, sim_one(s, "end", 5, true, 5000) != 0);
	EXPECT(s, sim_converged(s, 3000));
out:
	SIM_DONE(s);
}

CU_TestInfo scen_transfer_tests[] = {
	{"transfer to a caught-up follower", test_transfer_caught_up},
	{"transfer to a lagging follower", test_transfer_lagging},
	{"transfer to an unreachable node times out", test_transfer_unreachable},
	{"transfer errors", test_transfer_errors},
	{"transfers around the ring", test_transfer_ring},
	{"transfer to 0 skips a dead voter", test_transfer_auto_skips_a_dead_voter},
	CU_TEST_INFO_NULL,
};
