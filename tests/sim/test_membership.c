/* Membership: learners (catch up without voting, promotion only once caught up), removing a
 * follower, removing the leader. */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

/* Flags any election message sent by a learner, or any vote asked of it. */
struct learner_watch {
	raft_id learner;
	unsigned violations;
};

static bool learner_hook(struct sim *s, const struct raft_message *m, bool deliver, void *arg)
{
	struct learner_watch *w = arg;
	if (deliver || w->learner == 0)
		return false;
	bool election = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE ||
			m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP;
	if (election && m->from == w->learner) {
		/* A rejection is harmless; a grant or a campaign is not. */
		bool grant = (m->type == RAFT_MSG_VOTE_RESP || m->type == RAFT_MSG_PREVOTE_RESP) &&
			     !m->reject;
		bool campaign = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;
		if (grant || campaign) {
			w->violations++;
			sim_trace(s, "learner n%llu sent %s", (unsigned long long)m->from,
				  raft_msg_type_name(m->type));
		}
	}
	return false;
}

static bool pred_caught_up(struct sim *s, void *arg)
{
	raft_id id = *(const raft_id *)arg;
	raft_id l = sim_leader(s);
	return l != 0 && sim_applied(s, id) >= sim_commit(s, l);
}

/* A learner catches up and never votes or campaigns, even through leader changes. */
static void test_learner_catches_up(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		struct learner_watch w = {.learner = 4};
		char b[32];
		raft_index ci = 0;
		sim_set_hook(s, learner_hook, &w);
		for (long i = 0; i < 20; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "l", i), 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		REQUIRE(s, sim_add_node(s, 4) == 0);
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 4, &ci) == 0);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_ALL, 3000));
		raft_id n4 = 4;
		REQUIRE(s, sim_run_until(s, pred_caught_up, &n4, 3000));
		EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, l))) == 3);

		/* Leader changes: the learner keeps out of elections. */
		for (int k = 0; k < 3; k++) {
			l = sim_leader(s);
			sim_isolate(s, l);
			sim_run_for(s, 5 * ELECTION_MS(o));
			sim_heal(s);
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "k", k), 4, true, 5000) != 0);
		}
		/* The learner does not count toward the quorum: with two voters away nothing
		 * commits even though the learner has everything. */
		l = sim_leader(s);
		raft_id v1 = 0, v2 = 0;
		for (raft_id id = 1; id <= 3; id++) {
			if (id == l)
				continue;
			if (v1 == 0)
				v1 = id;
			else
				v2 = id;
		}
		sim_isolate(s, v1);
		sim_isolate(s, v2);
		raft_index idx = 0;
		REQUIRE(s, sim_propose_str(s, l, "no-quorum", &idx) == 0);
		sim_run_for(s, ELECTION_MS(o) / 2);
		EXPECT(s, sim_commit(s, l) < idx);
		sim_heal(s);
		EXPECT(s, sim_one(s, "healed", 4, true, 5000) != 0);
		EXPECT(s, w.violations == 0);
	out:
		SIM_DONE(s);
	}
}

/* Promotion is refused with RAFT_ENOTCAUGHTUP while the learner lags, accepted once it has
 * caught up; then it counts toward the quorum. */
static void test_learner_promotion(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		char b[32];
		raft_index ci = 0;
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		REQUIRE(s, sim_add_node(s, 4) == 0);
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 4, &ci) == 0);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_ALL, 3000));

		sim_cut(s, l, 4);
		for (long i = 0; i < 30; i++)
			REQUIRE(s, sim_one(s, cmd(b, sizeof(b), "p", i), 3, true, 5000) != 0);
		REQUIRE(s, sim_leader(s) == l);
		EXPECT(s, sim_conf_change(s, l, RAFT_CONF_PROMOTE, 4, NULL) == RAFT_ENOTCAUGHTUP);
		EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, l))) == 3);

		sim_heal(s);
		raft_id n4 = 4;
		REQUIRE(s, sim_run_until(s, pred_caught_up, &n4, 3000));
		raft_index pi = 0;
		REQUIRE(s, sim_promote(s, l, 4, &pi, 2000) == 0);
		REQUIRE(s, sim_wait_applied(s, pi, SIM_ALL, 3000));
		EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, l))) == 4);
		const struct raft_member *m = raft_conf_get(raft_conf_current(sim_core(s, 4)), 4);
		EXPECT(s, m != NULL && m->role == RAFT_VOTER);

		/* 4 voters, quorum 3: the leader, n4 and one more commit without the fourth. */
		raft_id away = 0;
		for (raft_id id = 1; id <= 3 && away == 0; id++)
			if (id != l)
				away = id;
		sim_isolate(s, away);
		raft_index idx = sim_one(s, "with-n4", 3, true, 5000);
		REQUIRE(s, idx != 0);
		EXPECT(s, sim_applied(s, 4) >= idx || sim_wait_applied(s, idx, SIM_NODE(4), 1000));
		/* And two away (n4 among them) block commits: n4 really is a voter now. */
		sim_isolate(s, 4);
		raft_index blocked = 0;
		l = sim_leader(s);
		REQUIRE(s, sim_propose_str(s, l, "blocked", &blocked) == 0);
		sim_run_for(s, ELECTION_MS(o) / 2);
		EXPECT(s, sim_commit(s, l) < blocked);
		sim_heal(s);
		EXPECT(s, sim_one(s, "end", 4, true, 5000) != 0);
	out:
		SIM_DONE(s);
	}
}

/* Removing a follower: it leaves the configuration, the rest keep committing without it. */
static void test_remove_follower(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 5, NULL);
		raft_index ci = 0;
		REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id f = l % 5 + 1;
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_REMOVE, f, &ci) == 0);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_NODE(l), 3000));
		EXPECT(s, raft_conf_get(raft_conf_current(sim_core(s, l)), f) == NULL);
		EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, l))) == 4);
		sim_crash(s, f);
		/* 4 voters, quorum 3: one more away still leaves a quorum. */
		raft_id g = f % 5 + 1;
		if (g == l)
			g = g % 5 + 1;
		sim_isolate(s, g);
		EXPECT(s, sim_one(s, "after-remove", 3, true, 5000) != 0);
		sim_heal(s);
		EXPECT(s, sim_one(s, "end", 4, true, 5000) != 0);
		/* Adding a node that is still a member is refused. */
		EXPECT(s, sim_conf_change(s, sim_leader(s), RAFT_CONF_ADD_LEARNER, g, NULL) ==
				  RAFT_EEXIST);
	out:
		SIM_DONE(s);
	}
}

static bool pred_not_leader(struct sim *s, void *arg)
{
	return sim_role(s, *(const raft_id *)arg) != RAFT_LEADER;
}

/* Removing the leader: it steps down once the removal commits; the others elect a new
 * leader and keep committing. */
static void test_remove_leader(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		raft_index ci = 0;
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id l = sim_leader(s);
		REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_REMOVE, l, &ci) == 0);
		REQUIRE(s, sim_run_until(s, pred_not_leader, &l, 3 * ELECTION_MS(o)));
		/* It stepped down only after the removal committed. */
		EXPECT(s, sim_max_commit(s) >= ci);
		raft_id l2 = sim_wait_leader(s, 10 * ELECTION_MS(o));
		REQUIRE(s, l2 != 0 && l2 != l);
		EXPECT(s, raft_conf_get(raft_conf_current(sim_core(s, l2)), l) == NULL);
		raft_index idx = sim_one(s, "after", 2, true, 5000);
		EXPECT(s, idx != 0);
		/* The removed node stays quiet: no new leader, no term inflation. */
		raft_term t = sim_term(s, l2);
		sim_run_for(s, 20 * ELECTION_MS(o));
		EXPECT(s, sim_leader(s) == l2 && sim_term(s, l2) == t);
	out:
		SIM_DONE(s);
	}
}

/* One change at a time: a second change while one is uncommitted is refused. */
static void test_one_change_at_a_time(void)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(2, 3, &o);
	REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
	raft_id l = sim_leader(s);
	REQUIRE(s, sim_add_node(s, 4) == 0);
	REQUIRE(s, sim_add_node(s, 5) == 0);
	REQUIRE(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 4, NULL) == 0);
	EXPECT(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 5, NULL) == RAFT_EBUSY);
	EXPECT(s, sim_conf_change(s, l % 3 + 1, RAFT_CONF_ADD_LEARNER, 5, NULL) == RAFT_ENOTLEADER);
	int rv = sim_conf_change(s, l, RAFT_CONF_REMOVE, 9, NULL);
	EXPECT(s, rv == RAFT_EBUSY || rv == RAFT_ENOTMEMBER);
	sim_run_for(s, 200);
	EXPECT(s, sim_conf_change(s, l, RAFT_CONF_REMOVE, 9, NULL) == RAFT_ENOTMEMBER);
	EXPECT(s, sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, 5, NULL) == 0);
	EXPECT(s, sim_one(s, "y", 5, true, 5000) != 0);
out:
	SIM_DONE(s);
}

/* Adding a voter directly to a 1-node cluster, then growing to 3 and losing the first. */
static void test_grow_from_one(void)
{
	struct sim_options o;
	sim_options_default(&o);
	struct sim *s = sim_new(3, 1, &o);
	raft_index ci = 0;
	REQUIRE(s, sim_one(s, "x", 1, true, 5000) != 0);
	for (raft_id id = 2; id <= 3; id++) {
		REQUIRE(s, sim_add_node(s, id) == 0);
		REQUIRE(s, sim_conf_change(s, 1, RAFT_CONF_ADD_VOTER, id, &ci) == 0);
		REQUIRE(s, sim_wait_applied(s, ci, SIM_ALL, 5000));
	}
	EXPECT(s, raft_conf_voters(raft_conf_current(sim_core(s, 1))) == 3);
	sim_crash(s, 1);
	EXPECT(s, sim_one(s, "without-1", 2, true, 10000) != 0);
out:
	SIM_DONE(s);
}

CU_TestInfo scen_membership_tests[] = {
	{"learner catches up without voting", test_learner_catches_up},
	{"learner promotion only when caught up", test_learner_promotion},
	{"remove a follower", test_remove_follower},
	{"remove the leader", test_remove_leader},
	{"one configuration change at a time", test_one_change_at_a_time},
	{"grow from one node", test_grow_from_one},
	CU_TEST_INFO_NULL,
};
