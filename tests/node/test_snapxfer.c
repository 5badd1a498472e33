/* Snapshot transfer bookkeeping (server/node/snapxfer.h): the core hears the outcome of its
 * latest snapshot request exactly once, and never a stale one. */
#include <CUnit/Basic.h>

#include "cunit_main.h"
#include "server/node/snapxfer.h"

static struct snapxfer x;

static void reset(void)
{
	x = (struct snapxfer){0};
}

/* The plain case: one request, one transfer; a failure reaches the core, a success is the
 * follower's to report (its answer to the snapshot). */
static void test_one_transfer(void)
{
	reset();
	uint64_t id = 0;
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, true, &id), SNAPXFER_START);
	CU_ASSERT_NOT_EQUAL(id, 0);
	CU_ASSERT_TRUE(snapxfer_ended(&x, id, false));
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, true, &id), SNAPXFER_START);
	CU_ASSERT_FALSE(snapxfer_ended(&x, id, true));
	/* An outcome reported twice counts once. */
	CU_ASSERT_FALSE(snapxfer_ended(&x, id, false));
}

/* The core asks again (its SNAPSHOT state timed out after two election timeouts) while a
 * large snapshot is still on its way. The request used to be dropped without a word; now the
 * running transfer answers it, so its failure reaches the core instead of a silent wait. */
static void test_repeat_request_is_answered_by_the_running_transfer(void)
{
	reset();
	uint64_t first = 0, again = 0;
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, false, &first), SNAPXFER_START);
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, false, &again), SNAPXFER_KEEP);
	CU_ASSERT_EQUAL(again, first); /* not restarted: a slow transfer is not cut short */
	CU_ASSERT_TRUE(snapxfer_ended(&x, first, false));
}

/* A request for another snapshot, or the same one in a message of a newer term (the leader
 * was re-elected), cancels the running transfer: the follower would ignore the old one. */
static void test_other_snapshot_or_term_restarts(void)
{
	reset();
	uint64_t a = 0, b = 0, c = 0;
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, false, &a), SNAPXFER_START);
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 3, false, &b), SNAPXFER_RESTART);
	CU_ASSERT_NOT_EQUAL(a, b);
	CU_ASSERT_EQUAL(snapxfer_request(&x, 200, 3, false, &c), SNAPXFER_RESTART);
	/* The cancelled transfers' outcomes arrive later and are ignored... */
	CU_ASSERT_FALSE(snapxfer_ended(&x, a, false));
	CU_ASSERT_FALSE(snapxfer_ended(&x, b, false));
	/* ...the current one's counts. */
	CU_ASSERT_TRUE(snapxfer_ended(&x, c, false));
}

/* A transfer that could not even start (the snapshot was not stored yet) reports its failure
 * through the mailbox. If the core asked again before that report is read, the report is
 * stale: it must not reset the progress of the transfer started meanwhile. */
static void test_stale_failure_does_not_reset_a_newer_transfer(void)
{
	reset();
	uint64_t failed = 0, newer = 0;
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, true, &failed), SNAPXFER_START);
	/* its start failed: the outcome is in the mailbox, so it has ended */
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, true, &newer), SNAPXFER_RESTART);
	CU_ASSERT_FALSE(snapxfer_ended(&x, failed, false));
	CU_ASSERT_EQUAL(x.running, newer);
	CU_ASSERT_TRUE(snapxfer_ended(&x, newer, false));
}

/* A request arriving after the running transfer ended but before its outcome was read
 * starts a new transfer (the ended one cannot answer it); the late outcome is ignored. */
static void test_ended_transfer_cannot_answer(void)
{
	reset();
	uint64_t a = 0, b = 0;
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, false, &a), SNAPXFER_START);
	CU_ASSERT_EQUAL(snapxfer_request(&x, 100, 2, true, &b), SNAPXFER_RESTART);
	CU_ASSERT_NOT_EQUAL(a, b);
	CU_ASSERT_FALSE(snapxfer_ended(&x, a, true));
	CU_ASSERT_FALSE(snapxfer_ended(&x, b, true));
	CU_ASSERT_EQUAL(x.running, 0);
}

/* Ids never repeat and id 0 (nothing) never counts. */
static void test_ids(void)
{
	reset();
	uint64_t prev = 0;
	for (int i = 0; i < 1000; i++) {
		uint64_t id = 0;
		snapxfer_request(&x, (raft_index)i, 1, true, &id);
		CU_ASSERT_TRUE(id > prev);
		prev = id;
	}
	CU_ASSERT_FALSE(snapxfer_ended(&x, 0, false));
}

static CU_TestInfo tests[] = {
	{"one transfer", test_one_transfer},
	{"a repeated request is answered by the running transfer",
	 test_repeat_request_is_answered_by_the_running_transfer},
	{"another snapshot or term restarts", test_other_snapshot_or_term_restarts},
	{"a stale failure does not reset a newer transfer",
	 test_stale_failure_does_not_reset_a_newer_transfer},
	{"an ended transfer cannot answer a request", test_ended_transfer_cannot_answer},
	{"ids", test_ids},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"snapxfer", NULL, NULL, NULL, NULL, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
