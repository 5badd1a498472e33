/* Randomized chaos on the simulator: many seeds, random faults and operations, the checker's
 * invariants after every step, then a liveness check once everything is healed. */
#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "sim.h"

/*
 * Environment:
 *   RAFTKV_CHAOS_SEEDS=N  seeds to run (default 1000), from RAFTKV_CHAOS_BASE (default 1)
 *   RAFTKV_CHAOS_STEPS=N  simulator events per seed (default 2000)
 *   RAFTKV_CHAOS_SEED=N   run only seed N, printing every violation in full
 *   RAFTKV_SIM_TRACE=1    print the simulator's trace live (use with RAFTKV_CHAOS_SEED)
 */

#define DEFAULT_SEEDS    1000
#define DEFAULT_STEPS    2000
#define LIVENESS_MS      20000 /* virtual time allowed to elect a leader and commit once healed */
#define VERBOSE_FAILURES 3     /* failing seeds whose trace is printed in a many-seed run */

struct chaos_totals {
	uint64_t seeds;
	uint64_t violations;
	uint64_t leaders;
	uint64_t committed;
	uint64_t failed_seeds[16];
	unsigned n_failed_seeds;
};

/* A membership change whose fate is not known yet. */
struct pending_remove {
	raft_id id;
	raft_index index;
	raft_term term;
};

struct chaos {
	struct sim *s;
	unsigned n_founding;
	raft_id next_id;
	bool decommissioned[SIM_MAX_NODES + 1]; /* removed from the cluster and shut down */
	struct pending_remove rm;
	uint64_t read_ctx;
	unsigned proposals;
};

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	if (v == NULL || *v == '\0')
		return dflt;
	return strtoull(v, NULL, 10);
}

static uint64_t rnd(struct chaos *c, uint64_t n)
{
	return sim_rand(c->s, n);
}

/* A node that exists and has not been decommissioned, at random (0 if none). */
static raft_id any_node(struct chaos *c)
{
	raft_id ids[SIM_MAX_NODES];
	unsigned n = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (sim_exists(c->s, id) && !c->decommissioned[id])
			ids[n++] = id;
	return n > 0 ? ids[rnd(c, n)] : 0;
}

static raft_id up_node(struct chaos *c)
{
	raft_id ids[SIM_MAX_NODES];
	unsigned n = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (sim_is_up(c->s, id) && !c->decommissioned[id])
			ids[n++] = id;
	return n > 0 ? ids[rnd(c, n)] : 0;
}

/* A member of the leader's configuration with the given role, at random (0 if none). */
static raft_id member(struct chaos *c, raft_id leader, int role)
{
	const struct raft_conf *conf = raft_conf_current(sim_core(c->s, leader));
	raft_id ids[RAFT_MAX_MEMBERS];
	unsigned n = 0;
	for (unsigned i = 0; i < conf->n; i++)
		if (conf->members[i].role == role)
			ids[n++] = conf->members[i].id;
	return n > 0 ? ids[rnd(c, n)] : 0;
}

/* Shut down a node once its removal is committed (as an operator would). */
static void track_removal(struct chaos *c)
{
	if (c->rm.id == 0)
		return;
	raft_term t = sim_committed_term(c->s, c->rm.index);
	if (t == 0)
		return;
	if (t == c->rm.term) {
		sim_trace(c->s, "chaos: n%llu removed, shutting it down",
			  (unsigned long long)c->rm.id);
		sim_crash(c->s, c->rm.id);
		c->decommissioned[c->rm.id] = true;
	}
	c->rm.id = 0;
}

static void act_conf_change(struct chaos *c, raft_id l)
{
	struct sim *s = c->s;
	struct raft *r = sim_core(s, l);
	unsigned voters = raft_conf_voters(raft_conf_current(r));
	uint64_t k = rnd(c, 3);
	if (k == 0 && c->next_id <= SIM_MAX_NODES && raft_conf_current(r)->n < RAFT_MAX_MEMBERS) {
		raft_id id = c->next_id++;
		if (sim_add_node(s, id) == 0)
			sim_conf_change(s, l, RAFT_CONF_ADD_LEARNER, id, NULL);
	} else if (k == 1) {
		raft_id id = member(c, l, RAFT_LEARNER);
		if (id != 0)
			sim_conf_change(s, l, RAFT_CONF_PROMOTE, id, NULL);
	} else if (voters >= 4 || (voters >= 3 && rnd(c, 4) == 0)) {
		raft_id id = member(c, l, RAFT_VOTER);
		raft_index idx = 0;
		if (id != 0 && c->rm.id == 0 &&
		    sim_conf_change(s, l, RAFT_CONF_REMOVE, id, &idx) == 0) {
			c->rm.id = id;
			c->rm.index = idx;
			c->rm.term = raft_current_term(r);
		}
	}
}

/* One random operation or fault. */
static void act(struct chaos *c)
{
	struct sim *s = c->s;
	raft_id l = sim_leader(s);
	raft_id a = any_node(c), b = any_node(c);
	char cmd[48];
	uint64_t k = rnd(c, 100);
	if (k < 30) {
		/* Clients: mostly at the leader, sometimes at whoever. */
		raft_id to = (l != 0 && rnd(c, 4) != 0) ? l : up_node(c);
		unsigned n = 1 + (unsigned)rnd(c, 3);
		for (unsigned i = 0; i < n && to != 0; i++) {
			snprintf(cmd, sizeof(cmd), "chaos-%u", c->proposals++);
			sim_propose_str(s, to, cmd, NULL);
		}
	} else if (k < 38) {
		if (l != 0)
			sim_read_index(s, l, ++c->read_ctx);
	} else if (k < 44) {
		/* Partition a random subset from the rest. */
		uint32_t mask = 0;
		for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
			if (rnd(c, 2))
				mask |= SIM_NODE(id);
		sim_partition(s, mask);
	} else if (k < 48) {
		if (a != 0)
			sim_isolate(s, a);
	} else if (k < 51) {
		if (a != 0 && b != 0 && a != b)
			sim_cut_oneway(s, a, b);
	} else if (k < 60) {
		if (rnd(c, 3) == 0)
			sim_heal(s);
		else if (a != 0)
			sim_heal_node(s, a);
	} else if (k < 64) {
		switch (rnd(c, 4)) {
		case 0:
			sim_net_reliable(s);
			break;
		case 1:
			sim_net_set(s, 1, 5 + (unsigned)rnd(c, 40), (uint32_t)rnd(c, 200000),
				    (uint32_t)rnd(c, 100000));
			break;
		case 2:
			if (a != 0 && b != 0 && a != b)
				sim_link_set(s, a, b, (unsigned)rnd(c, 3),
					     3 + (unsigned)rnd(c, 100), (uint32_t)rnd(c, 500000),
					     (uint32_t)rnd(c, 200000));
			break;
		default:
			if (a != 0)
				sim_disk_set(s, a, (unsigned)rnd(c, 3), 1 + (unsigned)rnd(c, 60));
			break;
		}
	} else if (k < 69) {
		if (a != 0 && sim_is_up(s, a))
			sim_crash(s, a);
	} else if (k < 76) {
		for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
			if (sim_exists(s, id) && !sim_is_up(s, id) && !c->decommissioned[id]) {
				sim_restart(s, id);
				break;
			}
	} else if (k < 80) {
		if (l != 0)
			sim_transfer(s, l, rnd(c, 3) == 0 ? 0 : member(c, l, RAFT_VOTER));
	} else if (k < 88) {
		raft_id n = up_node(c);
		if (n != 0 && sim_applied(s, n) > raft_snapshot_index(sim_core(s, n)))
			sim_take_snapshot(s, n, rnd(c, 8));
	} else if (k < 92) {
		if (l != 0)
			act_conf_change(c, l);
	} else if (k < 94) {
		raft_id n = up_node(c);
		if (n != 0)
			sim_campaign(s, n);
	}
	/* else: nothing this time */
}

static bool pred_members_applied(struct sim *s, void *arg)
{
	raft_index idx = *(const raft_index *)arg;
	raft_id l = sim_leader(s);
	if (l == 0)
		return false;
	const struct raft_conf *conf = raft_conf_current(sim_core(s, l));
	for (unsigned i = 0; i < conf->n; i++)
		if (sim_applied(s, conf->members[i].id) < idx)
			return false;
	return true;
}

/* Heal everything, restart every node still in service, and check that a leader emerges
 * and a fresh proposal commits on every member. */
static void liveness(struct chaos *c)
{
	struct sim *s = c->s;
	sim_set_hook(s, NULL, NULL);
	sim_net_reliable(s);
	sim_heal(s);
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
		if (!sim_exists(s, id) || c->decommissioned[id])
			continue;
		sim_disk_set(s, id, 1, 3);
		if (!sim_is_up(s, id))
			sim_restart(s, id);
	}
	if (sim_failed(s))
		return;
	sim_trace(s, "chaos: healed; checking liveness");
	raft_index idx = sim_one(s, "chaos-liveness", 1, true, LIVENESS_MS);
	if (idx == 0) {
		sim_fail(s,
			 "liveness: no proposal committed within %ums after healing (leader n%llu)",
			 LIVENESS_MS, (unsigned long long)sim_leader(s));
		return;
	}
	if (!sim_run_until(s, pred_members_applied, &idx, LIVENESS_MS) && !sim_failed(s)) {
		sim_fail(s, "liveness: entry %llu not applied on every member within %ums",
			 (unsigned long long)idx, LIVENESS_MS);
		return;
	}
	raft_id l = sim_leader(s);
	const struct raft_conf *conf = raft_conf_current(sim_core(s, l));
	uint32_t mask = 0;
	for (unsigned i = 0; i < conf->n; i++)
		mask |= SIM_NODE(conf->members[i].id);
	sim_check_proposals(s, mask);
}

/* One seed; returns true if it passed. */
static bool run_seed(uint64_t seed, uint64_t steps, bool verbose, struct chaos_totals *tot)
{
	struct chaos c;
	memset(&c, 0, sizeof(c));
	/* The cluster's shape and the core's knobs come from the seed too. */
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL;
	x ^= x >> 29;
	struct sim_options o;
	sim_options_default(&o);
	c.n_founding = (x & 1) ? 5 : 3;
	o.heartbeat_ticks = 1 + (unsigned)((x >> 1) % 2);
	o.election_ticks = 10 + (unsigned)((x >> 2) % 6);
	o.pre_vote = ((x >> 5) % 4) != 0;
	o.check_quorum = ((x >> 7) % 4) != 0;
	o.max_inflight = 1 + (unsigned)((x >> 9) % 16);
	o.max_entries_per_append = 1 + (unsigned)((x >> 13) % 16);
	o.disk_max_ms = 1 + (unsigned)((x >> 17) % 10);
	c.s = sim_new(seed, c.n_founding, &o);
	c.next_id = c.n_founding + 1;
	sim_set_verbose(c.s, verbose);

	/* Sometimes the cluster gets a learner early, promoted later by the random ops. */
	bool learner = ((x >> 21) % 3) == 0;
	for (uint64_t i = 0; i < steps && !sim_failed(c.s); i++) {
		if (learner && i == steps / 10) {
			raft_id l = sim_leader(c.s);
			if (l != 0 && sim_add_node(c.s, c.next_id) == 0)
				sim_conf_change(c.s, l, RAFT_CONF_ADD_LEARNER, c.next_id++, NULL);
		}
		if (rnd(&c, 100) < 6)
			act(&c);
		track_removal(&c);
		sim_step(c.s);
	}
	if (!sim_failed(c.s))
		liveness(&c);

	bool ok = !sim_failed(c.s);
	tot->seeds++;
	tot->leaders += sim_leaders_elected(c.s);
	tot->committed += sim_max_commit(c.s);
	if (!ok) {
		tot->violations++;
		if (tot->n_failed_seeds < sizeof(tot->failed_seeds) / sizeof(tot->failed_seeds[0]))
			tot->failed_seeds[tot->n_failed_seeds++] = seed;
		fprintf(stderr, "chaos: seed %" PRIu64 " FAILED: %s\n", seed, sim_failure(c.s));
		fprintf(stderr,
			"chaos: reproduce with: RAFTKV_CHAOS_SEED=%" PRIu64
			" RAFTKV_CHAOS_STEPS=%" PRIu64 " RAFTKV_SIM_TRACE=1 ./test_chaos\n",
			seed, steps);
	}
	sim_free(c.s);
	return ok;
}

static void test_chaos(void)
{
	uint64_t steps = env_u64("RAFTKV_CHAOS_STEPS", DEFAULT_STEPS);
	uint64_t only = env_u64("RAFTKV_CHAOS_SEED", 0);
	uint64_t seeds = only != 0 ? 1 : env_u64("RAFTKV_CHAOS_SEEDS", DEFAULT_SEEDS);
	uint64_t base = only != 0 ? only : env_u64("RAFTKV_CHAOS_BASE", 1);
	struct chaos_totals tot;
	memset(&tot, 0, sizeof(tot));
	for (uint64_t i = 0; i < seeds; i++) {
		bool verbose = only != 0 || tot.violations < VERBOSE_FAILURES;
		run_seed(base + i, steps, verbose, &tot);
	}
	printf("\nchaos: %" PRIu64 " seeds x %" PRIu64 " steps, %" PRIu64 " violations, %" PRIu64
	       " leaders elected, %" PRIu64 " entries committed\n",
	       tot.seeds, steps, tot.violations, tot.leaders, tot.committed);
	if (tot.violations > 0) {
		printf("chaos: failing seeds:");
		for (unsigned i = 0; i < tot.n_failed_seeds; i++)
			printf(" %" PRIu64, tot.failed_seeds[i]);
		printf("%s\n", tot.violations > tot.n_failed_seeds ? " ..." : "");
	}
	fflush(stdout);
	CU_ASSERT_EQUAL(tot.violations, 0);
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{"random faults, invariants, liveness", test_chaos},
		CU_TEST_INFO_NULL,
	};
	CU_SuiteInfo suites[] = {
		{"chaos", NULL, NULL, NULL, NULL, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
