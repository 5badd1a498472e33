/* ReadIndex (thesis §6.4): read points are linearizable, batched into shared confirmation
 * rounds, never answered by a deposed or unconfirmed leader. */
#include <string.h>

#include "scen.h"

static const char *cmd(char *buf, size_t len, const char *prefix, long n)
{
	snprintf(buf, len, "%s-%ld", prefix, n);
	return buf;
}

static bool pred_read_answered(struct sim *s, void *arg)
{
	const struct sim_read *r = sim_read(s, *(const uint64_t *)arg);
	return r != NULL && r->state != SIM_READ_PENDING;
}

struct read_range {
	uint64_t first, n;
};

static bool pred_reads_answered(struct sim *s, void *arg)
{
	const struct read_range *rr = arg;
	for (uint64_t c = rr->first; c < rr->first + rr->n; c++) {
		const struct sim_read *r = sim_read(s, c);
		if (r == NULL || r->state == SIM_READ_PENDING)
			return false;
	}
	return true;
}

/* A read returns an index >= every write acknowledged before it was asked. */
static void test_read_after_write(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 3, NULL);
		char b[32];
		for (uint64_t ctx = 1; ctx <= 10; ctx++) {
			raft_index w = sim_one(s, cmd(b, sizeof(b), "w", (long)ctx), 3, true, 5000);
			REQUIRE(s, w != 0);
			raft_id l = sim_leader(s);
			REQUIRE(s, sim_read_index(s, l, ctx) == 0);
			REQUIRE(s, sim_run_until(s, pred_read_answered, &ctx, 1000));
			const struct sim_read *r = sim_read(s, ctx);
			REQUIRE(s, r->state == SIM_READ_DONE);
			EXPECT(s, r->index >= w);
			/* Serve it: the leader's state machine reaches the read point. */
			EXPECT(s, sim_wait_applied(s, r->index, SIM_NODE(l), 1000));
		}
	out:
		SIM_DONE(s);
	}
}

/* A burst of reads shares confirmation rounds: a few heartbeats, not one per read. */
static void test_reads_batched(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		o.heartbeat_ticks = 5;
		o.election_ticks = 20;
		struct sim *s = sim_new(seed, 5, &o);
		REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
		sim_run_for(s, 100);
		raft_id l = sim_leader(s);
		sim_reset_counters(s);
		uint64_t t0 = sim_now(s);
		for (uint64_t ctx = 100; ctx < 120; ctx++)
			REQUIRE(s, sim_read_index(s, l, ctx) == 0);
		struct read_range rr = {100, 20};
		REQUIRE(s, sim_run_until(s, pred_reads_answered, &rr, 1000));
		uint64_t elapsed = sim_now(s) - t0;
		uint64_t hb_ms = (uint64_t)o.heartbeat_ticks * o.tick_ms;
		uint64_t hbs = sim_msgs_sent(s, RAFT_MSG_HEARTBEAT);
		sim_trace(s, "20 reads answered in %llums with %llu heartbeats",
			  (unsigned long long)elapsed, (unsigned long long)hbs);
		/* At most two extra rounds, plus the periodic heartbeats of the interval. */
		EXPECT(s, hbs <= 4 * (2 + elapsed / hb_ms + 1));
		EXPECT(s, hbs < 4 * 20);
		raft_index idx = sim_read(s, 100)->index;
		for (uint64_t ctx = 100; ctx < 120; ctx++) {
			EXPECT(s, sim_read(s, ctx)->state == SIM_READ_DONE);
			EXPECT(s, sim_read(s, ctx)->index == idx);
		}
	out:
		SIM_DONE(s);
	}
}

/* A leader isolated in a minority never returns a read point; its pending reads come back
 * in dropped_reads when it steps down (check-quorum). */
static void test_read_minority_leader(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 5, &o);
		REQUIRE(s, sim_one(s, "x", 5, true, 5000) != 0);
		raft_id l = sim_leader(s);
		raft_id buddy = l % 5 + 1;
		sim_partition(s, SIM_NODE(l) | SIM_NODE(buddy));
		for (uint64_t ctx = 1; ctx <= 5; ctx++) {
			REQUIRE(s, sim_read_index(s, l, ctx) == 0);
			sim_run_for(s, 7);
		}
		sim_run_for(s, 4 * ELECTION_MS(o));
		EXPECT(s, sim_role(s, l) != RAFT_LEADER);
		for (uint64_t ctx = 1; ctx <= 5; ctx++)
			EXPECT(s, sim_read(s, ctx)->state == SIM_READ_DROPPED);
		/* The majority's new leader answers. */
		raft_id l2 = sim_leader(s);
		REQUIRE(s, l2 != 0 && l2 != l && l2 != buddy);
		uint64_t ctx = 50;
		REQUIRE(s, sim_read_index(s, l2, ctx) == 0);
		REQUIRE(s, sim_run_until(s, pred_read_answered, &ctx, 1000));
		EXPECT(s, sim_read(s, ctx)->state == SIM_READ_DONE);
	out:
		SIM_DONE(s);
	}
}

static bool pred_new_leader(struct sim *s, void *arg)
{
	raft_id old = *(const raft_id *)arg;
	return sim_leader(s) != 0 && sim_leader(s) != old;
}

/* A new leader does not answer reads before its own no-op is committed: its commit index
 * may lag what the previous leader committed. */
static void test_read_new_leader(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim_options o;
		sim_options_default(&o);
		struct sim *s = sim_new(seed, 3, &o);
		REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
		raft_id old = sim_leader(s);
		for (raft_id id = 1; id <= 3; id++)
			sim_disk_set(s, id, 60, 60);
		sim_isolate(s, old);
		REQUIRE(s, sim_run_until(s, pred_new_leader, &old, 20 * ELECTION_MS(o)));
		raft_id l = sim_leader(s);
		raft_index noop = sim_term_start(s, l);
		REQUIRE(s, noop != 0);
		REQUIRE(s, sim_commit(s, l) < noop);
		uint64_t ctx = 7;
		int rv = sim_read_index(s, l, ctx);
		if (rv == 0) {
			sim_run_for(s, 30);
			EXPECT(s, sim_read(s, ctx)->state == SIM_READ_PENDING);
			REQUIRE(s, sim_run_until(s, pred_read_answered, &ctx, 2000));
			const struct sim_read *r = sim_read(s, ctx);
			EXPECT(s, r->state == SIM_READ_DONE);
			EXPECT(s, r->commit_then >= noop);
			EXPECT(s, r->index >= noop);
		}
	out:
		SIM_DONE(s);
	}
}

/* Reads are for leaders only. */
static void test_read_on_follower(void)
{
	struct sim *s = sim_new(1, 3, NULL);
	REQUIRE(s, sim_one(s, "x", 3, true, 5000) != 0);
	raft_id f = sim_leader(s) % 3 + 1;
	EXPECT(s, sim_read_index(s, f, 1) == RAFT_ENOTLEADER);
	EXPECT(s, sim_read(s, 1)->state == SIM_READ_REFUSED);
out:
	SIM_DONE(s);
}

/* A single-node cluster answers reads at once. */
static void test_read_single_node(void)
{
	struct sim *s = sim_new(1, 1, NULL);
	raft_index w = sim_one(s, "x", 1, true, 5000);
	REQUIRE(s, w != 0);
	uint64_t ctx = 3;
	REQUIRE(s, sim_read_index(s, 1, ctx) == 0);
	REQUIRE(s, sim_run_until(s, pred_read_answered, &ctx, 100));
	EXPECT(s, sim_read(s, ctx)->state == SIM_READ_DONE && sim_read(s, ctx)->index >= w);
out:
	SIM_DONE(s);
}

/* Reads and writes mixed with leader changes on a lossy network: every answered read point
 * is >= everything committed before it was asked (the checker's invariant 7). */
static void test_reads_under_faults(void)
{
	for (uint64_t seed = 1; seed <= 3; seed++) {
		struct sim *s = sim_new(seed, 5, NULL);
		char b[32];
		sim_net_set(s, 1, 15, 50000, 50000);
		uint64_t ctx = 1000;
		unsigned done = 0;
		for (int iter = 0; iter < 300 && !sim_failed(s); iter++) {
			raft_id l = sim_leader(s);
			if (l != 0) {
				sim_propose_str(s, l, cmd(b, sizeof(b), "rw", iter), NULL);
				sim_read_index(s, l, ctx++);
			}
			sim_run_for(s, sim_rand(s, 15));
			if (sim_rand(s, 20) == 0 && l != 0)
				sim_isolate(s, l);
			if (sim_rand(s, 10) == 0)
				sim_heal(s);
		}
		sim_heal(s);
		sim_net_reliable(s);
		sim_run_for(s, 2000);
		for (uint64_t c = 1000; c < ctx; c++)
			done += sim_read(s, c) != NULL && sim_read(s, c)->state == SIM_READ_DONE;
		EXPECT(s, done > 0);
		REQUIRE(s, sim_one(s, "end", 5, true, 5000) != 0);
	out:
		SIM_DONE(s);
	}
}

CU_TestInfo scen_read_tests[] = {
	{"read after acknowledged writes", test_read_after_write},
	{"a burst of reads shares confirmation rounds", test_reads_batched},
	{"minority leader never answers, drops reads", test_read_minority_leader},
	{"new leader waits for its no-op", test_read_new_leader},
	{"read on a follower", test_read_on_follower},
	{"read on a single node", test_read_single_node},
	{"reads under faults stay linearizable", test_reads_under_faults},
	CU_TEST_INFO_NULL,
};
