/* Crash test: a child appends synced batches and is killed with SIGKILL at a random moment;
 * every batch it acknowledged must be there after a reopen, byte for byte, with the last
 * acknowledged hard state (or the one batch in flight, whole). Rounds reuse one directory,
 * so recovery runs on top of recovery.
 *
 *   RAFTKV_STORAGE_SEED    workload and kill timing (default below; printed, and on failure)
 *   RAFTKV_STORAGE_ROUNDS  rounds (default 20)
 *
 * SIGKILL leaves the page cache alone, so this proves atomicity and recovery, not that a
 * commit reached the disk: test_storage_powerloss does that. */
#include "common/prng.h"
#include "server/storage/storage.h"
#include "storage/crash_workload.h"
#include "storage/storage_testlib.h"
#include "cunit_main.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_SEED   20240611
#define DEFAULT_ROUNDS 20

static struct {
	char dir[4096];
	struct cw_model model;
} fx;

static void test_setup(void)
{
	memset(&fx, 0, sizeof(fx));
	if (tl_mkdtemp(tl_tmpdir(), "raftkv-storage-crash", fx.dir, sizeof(fx.dir)) != 0)
		fx.dir[0] = '\0';
}

static void test_teardown(void)
{
	cw_model_free(&fx.model);
	if (fx.dir[0] != '\0' && tl_rm_rf(fx.dir) != 0)
		fprintf(stderr, "rm -rf %s: %s\n", fx.dir, strerror(errno));
	memset(&fx, 0, sizeof(fx));
}

static void test_crash_rounds(void)
{
	CU_ASSERT_FATAL(fx.dir[0] != '\0');
	uint64_t seed = cw_env_u64("RAFTKV_STORAGE_SEED", DEFAULT_SEED);
	uint64_t rounds = cw_env_u64("RAFTKV_STORAGE_ROUNDS", DEFAULT_ROUNDS);
	printf("\n  storage crash: seed=%" PRIu64 " rounds=%" PRIu64 " dir=%s\n", seed, rounds,
	       fx.dir);

	struct storage_options opt;
	storage_options_default(&opt);
	opt.checkpoint_bytes = 2u << 20; /* checkpoints (and log removal) happen mid-run too */

	struct prng p;
	prng_seed(&p, seed);
	uint64_t batches = 0, entries = 0, in_flight_kept = 0, early = 0;
	double t0 = tl_now_ms();
	for (uint64_t round = 1; round <= rounds; round++) {
		/* One round in six is killed counting from the fork, so possibly while it is
		 * still opening the store (running recovery); the rest while writing. */
		bool from_fork = prng_below(&p, 6) == 0;
		double kill_ms =
			from_fork ? (double)prng_range(&p, 0, 150) : (double)prng_range(&p, 5, 250);
		uint64_t child_seed = prng_next(&p);
		struct cw_round r;
		char err[1024] = "";
		double t = tl_now_ms();
		int rc = cw_run_round(fx.dir, &opt, &fx.model, child_seed, kill_ms, from_fork, &r,
				      err, sizeof(err));
		bool took = false;
		if (rc == 0)
			rc = cw_verify(fx.dir, &opt, &fx.model, &r, &took, err, sizeof(err));
		if (rc != 0) {
			printf("  FAILED in round %" PRIu64 " (seed=%" PRIu64
			       "; reproduce with RAFTKV_STORAGE_SEED=%" PRIu64
			       " RAFTKV_STORAGE_ROUNDS=%" PRIu64 "): %s\n",
			       round, seed, seed, round, err);
			CU_FAIL("a crash round failed (see above)");
			return;
		}
		batches += r.acked_batches;
		entries += r.acked_entries;
		in_flight_kept += took;
		early += !r.ready;
		printf("  round %2" PRIu64 ": killed %3.0f ms after %s: %5" PRIu64
		       " batches (%6" PRIu64 " entries) acknowledged%s; log 1..%" PRIu64
		       ", term %" PRIu64 " (%.0f ms)\n",
		       round, kill_ms, from_fork ? "fork " : "ready", r.acked_batches,
		       r.acked_entries,
		       took ? ", the batch in flight committed"
			    : (r.pending ? ", one lost in flight" : ""),
		       fx.model.last, fx.model.hs.term, tl_now_ms() - t);
	}
	printf("  storage crash: %" PRIu64 " rounds, %" PRIu64 " batches / %" PRIu64
	       " entries acknowledged and recovered, %" PRIu64
	       " in-flight batches found committed, %" PRIu64
	       " kills before the store was open; %.1f s (seed=%" PRIu64 ")\n",
	       rounds, batches, entries, in_flight_kept, early, (tl_now_ms() - t0) / 1e3, seed);
	CU_ASSERT(rounds == 0 || batches > 0);
}

static CU_TestInfo crash_tests[] = {
	{"SIGKILL while appending: acknowledged batches survive", test_crash_rounds},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"crash", NULL, NULL, test_setup, test_teardown, crash_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
