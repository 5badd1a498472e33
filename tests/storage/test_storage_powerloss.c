/* Power-loss test: the store lives on a loop-mounted ext4 image. A child appends synced
 * batches and is killed with SIGKILL; then, without unmounting or syncing, the image file is
 * copied and the copy mounted elsewhere. The copy holds only what reached the loop device,
 * i.e. what a power cut would have left, so every acknowledged batch must be on it.
 *
 *   RAFTKV_STORAGE_SEED    workload and kill timing (default below; printed, and on failure)
 *   RAFTKV_STORAGE_ROUNDS  rounds (default 8)
 *
 * Each round continues on the recovered copy (the old image is dropped), so recovery runs on
 * top of power-loss recovery. Needs root, loop devices, mkfs.ext4 and mount; without them it
 * prints "SKIPPED: ..." with the reason and passes. */
#include "common/prng.h"
#include "server/storage/storage.h"
#include "storage/crash_workload.h"
#include "storage/storage_testlib.h"
#include "cunit_main.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Error messages here quote paths and command output and are cut to fit, on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define DEFAULT_SEED   20240612
#define DEFAULT_ROUNDS 8
#define IMAGE_BYTES    (128LL << 20)

/* Two images and two mount points; `cur` is the one the store lives on. Everything here is
 * undone by cleanup(), which is safe to call at any point and more than once. */
static struct {
	char work[4096]; /* temporary directory holding both */
	char img[2][4200];
	char mnt[2][4200];
	bool mounted[2];
	int cur;
	struct cw_model model;
} fx;

static int run(char *const argv[], char *out, size_t cap)
{
	int st = tl_run(argv, out, cap);
	if (st == -1)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void cleanup(void)
{
	char out[512];
	for (int i = 0; i < 2; i++) {
		if (!fx.mounted[i])
			continue;
		/* Nothing holds the mount (every child was waited for), but retry briefly in
		 * case the kernel is still releasing it; fall back to a lazy unmount. */
		bool done = false;
		for (int k = 0; k < 20 && !done; k++) {
			char *argv[] = {"umount", fx.mnt[i], NULL};
			done = run(argv, out, sizeof(out)) == 0;
			if (!done)
				tl_sleep_ms(50);
		}
		if (!done) {
			char *argv[] = {"umount", "-l", fx.mnt[i], NULL};
			if (run(argv, out, sizeof(out)) != 0)
				fprintf(stderr, "umount -l %s: %s\n", fx.mnt[i], out);
		}
		fx.mounted[i] = false;
	}
	if (fx.work[0] != '\0' && tl_rm_rf(fx.work) != 0)
		fprintf(stderr, "rm -rf %s: %s\n", fx.work, strerror(errno));
	fx.work[0] = '\0';
	cw_model_free(&fx.model);
}

static void test_setup(void)
{
	memset(&fx, 0, sizeof(fx));
}

static void test_teardown(void)
{
	cleanup();
}

/* Create image i (sparse, ext4) and mount it. 0, or -1 with the reason in why. */
static int make_fs(int i, char *why, size_t cap)
{
	int fd = open(fx.img[i], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, IMAGE_BYTES) != 0) {
		snprintf(why, cap, "creating %s: %s", fx.img[i], strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	char out[1024];
	char *mkfs[] = {"mkfs.ext4", "-q", "-F", fx.img[i], NULL};
	if (run(mkfs, out, sizeof(out)) != 0) {
		snprintf(why, cap, "mkfs.ext4 failed: %s", out);
		return -1;
	}
	return 0;
}

static int mount_img(int i, char *why, size_t cap)
{
	char out[1024];
	char *argv[] = {"mount", "-o", "loop", fx.img[i], fx.mnt[i], NULL};
	if (run(argv, out, sizeof(out)) != 0) {
		snprintf(why, cap, "mount -o loop %s: %s", fx.img[i], out);
		return -1;
	}
	fx.mounted[i] = true;
	return 0;
}

static int umount_img(int i, char *why, size_t cap)
{
	char out[1024] = "";
	for (int k = 0; k < 20; k++) {
		char *argv[] = {"umount", fx.mnt[i], NULL};
		if (run(argv, out, sizeof(out)) == 0) {
			fx.mounted[i] = false;
			return 0;
		}
		tl_sleep_ms(50);
	}
	snprintf(why, cap, "umount %s: %s", fx.mnt[i], out);
	return -1;
}

/* Can this run at all? 0, or -1 with the reason. Leaves image 0 mounted on success. */
static int prepare(char *why, size_t cap)
{
	if (geteuid() != 0) {
		snprintf(why, cap, "not running as root");
		return -1;
	}
	if (access("/dev/loop-control", R_OK | W_OK) != 0) {
		snprintf(why, cap, "/dev/loop-control: %s", strerror(errno));
		return -1;
	}
	char out[256];
	char *v[] = {"mkfs.ext4", "-V", NULL};
	if (run(v, out, sizeof(out)) != 0) {
		snprintf(why, cap, "mkfs.ext4 is not available");
		return -1;
	}
	if (tl_mkdtemp("/tmp", "raftkv-storage-powerloss", fx.work, sizeof(fx.work)) != 0) {
		snprintf(why, cap, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	char work[4096];
	snprintf(work, sizeof(work), "%s", fx.work);
	for (int i = 0; i < 2; i++) {
		snprintf(fx.img[i], sizeof(fx.img[i]), "%s/image%d", work, i);
		snprintf(fx.mnt[i], sizeof(fx.mnt[i]), "%s/mnt%d", work, i);
		if (mkdir(fx.mnt[i], 0700) != 0) {
			snprintf(why, cap, "mkdir %s: %s", fx.mnt[i], strerror(errno));
			return -1;
		}
	}
	if (make_fs(0, why, cap) != 0 || mount_img(0, why, cap) != 0)
		return -1;
	char data[4300];
	snprintf(data, sizeof(data), "%s/data", fx.mnt[0]);
	if (mkdir(data, 0700) != 0) {
		snprintf(why, cap, "mkdir %s: %s", data, strerror(errno));
		return -1;
	}
	fx.cur = 0;
	return 0;
}

static void test_powerloss_rounds(void)
{
	char why[1024] = "";
	if (prepare(why, sizeof(why)) != 0) {
		printf("\n  SKIPPED: power-loss test needs root and loop devices (%s)\n  ", why);
		fflush(stdout);
		cleanup();
		CU_PASS("skipped");
		return;
	}
	uint64_t seed = cw_env_u64("RAFTKV_STORAGE_SEED", DEFAULT_SEED);
	uint64_t rounds = cw_env_u64("RAFTKV_STORAGE_ROUNDS", DEFAULT_ROUNDS);
	printf("\n  storage power loss: seed=%" PRIu64 " rounds=%" PRIu64 " work=%s\n", seed,
	       rounds, fx.work);

	struct storage_options opt;
	storage_options_default(&opt);
	opt.checkpoint_bytes = 2u << 20;

	struct prng p;
	prng_seed(&p, seed);
	uint64_t batches = 0, entries = 0, in_flight_kept = 0;
	double t0 = tl_now_ms();
	for (uint64_t round = 1; round <= rounds; round++) {
		int cur = fx.cur, other = 1 - fx.cur;
		char dir[4300], copy_dir[4300];
		snprintf(dir, sizeof(dir), "%s/data", fx.mnt[cur]);
		snprintf(copy_dir, sizeof(copy_dir), "%s/data", fx.mnt[other]);
		double kill_ms = (double)prng_range(&p, 5, 300);
		uint64_t child_seed = prng_next(&p);
		struct cw_round r;
		char err[1024] = "", out[1024] = "";
		double t = tl_now_ms();
		int rc = cw_run_round(dir, &opt, &fx.model, child_seed, kill_ms, false, &r, err,
				      sizeof(err));
		/* The "power cut": copy the image as the loop device has it, while the original
		 * is still mounted, with whatever is only in its page cache left behind. */
		if (rc == 0) {
			char *cp[] = {"cp", "--sparse=always", fx.img[cur], fx.img[other], NULL};
			rc = run(cp, out, sizeof(out));
			if (rc != 0)
				snprintf(err, sizeof(err), "cp %s %s: %s", fx.img[cur],
					 fx.img[other], out);
		}
		if (rc == 0)
			rc = mount_img(other, err, sizeof(err));
		bool took = false;
		if (rc == 0)
			rc = cw_verify(copy_dir, &opt, &fx.model, &r, &took, err, sizeof(err));
		/* Continue on the copy; the old image goes. */
		if (rc == 0)
			rc = umount_img(cur, err, sizeof(err));
		if (rc == 0 && unlink(fx.img[cur]) != 0) {
			snprintf(err, sizeof(err), "unlink %s: %s", fx.img[cur], strerror(errno));
			rc = -1;
		}
		if (rc != 0) {
			printf("  FAILED in round %" PRIu64 " (seed=%" PRIu64
			       "; reproduce with RAFTKV_STORAGE_SEED=%" PRIu64
			       " RAFTKV_STORAGE_ROUNDS=%" PRIu64 "): %s\n",
			       round, seed, seed, round, err);
			CU_FAIL("a power-loss round failed (see above)");
			return; /* teardown unmounts and removes everything */
		}
		fx.cur = other;
		batches += r.acked_batches;
		entries += r.acked_entries;
		in_flight_kept += took;
		printf("  round %2" PRIu64 ": killed %3.0f ms after ready: %5" PRIu64
		       " batches (%6" PRIu64 " entries) acknowledged%s; copy holds log 1..%" PRIu64
		       ", term %" PRIu64 " (%.0f ms)\n",
		       round, kill_ms, r.acked_batches, r.acked_entries,
		       took ? ", the batch in flight committed"
			    : (r.pending ? ", one lost in flight" : ""),
		       fx.model.last, fx.model.hs.term, tl_now_ms() - t);
	}
	printf("  storage power loss: %" PRIu64 " rounds, %" PRIu64 " batches / %" PRIu64
	       " entries acknowledged and found on the copies, %" PRIu64
	       " in-flight batches found committed; %.1f s (seed=%" PRIu64 ")\n",
	       rounds, batches, entries, in_flight_kept, (tl_now_ms() - t0) / 1e3, seed);
	CU_ASSERT(rounds == 0 || batches > 0);
}

static CU_TestInfo powerloss_tests[] = {
	{"SIGKILL + copy of the unsynced image: acknowledged batches survive",
	 test_powerloss_rounds},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"power loss", NULL, NULL, test_setup, test_teardown, powerloss_tests},
		CU_SUITE_INFO_NULL,
	};
	int rc = cunit_main(suites);
	cleanup(); /* in case a run ended in a way that skipped the teardown */
	return rc;
}
