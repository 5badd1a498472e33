/* A full file system: once Berkeley DB has failed to write a file, storage acknowledges
 * nothing more, and everything it acknowledged before is there after a reopen.
 *
 * Why: in a raftnode whose data directory filled up, the snapshotter's transaction failed to
 * write BDB's log buffer (ENOSPC); the writer's next synced commit then returned success
 * without its log records ever reaching the file, the follower acknowledged those entries,
 * and after a restart they were gone (the leader's view of the follower was then ahead of
 * its log: it never caught up). Storage now refuses every transaction after a failed write.
 * That race needs two threads and a failed log-buffer write at the wrong moment; it shows in
 * tests/integration/test_disk_full.py (about one run in three before the fix). The tests here
 * pin the contract on a single thread: refused after the failure, all acknowledged kept.
 * A snapshot is a plain file outside BDB: its failed write only costs the snapshot.
 *
 * The store lives on a small tmpfs this program mounts: needs root, else "SKIPPED: ...". */
#include "server/storage/storage.h"
#include "storage/storage_testlib.h"
#include "cunit_main.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* Paths are cut to fit in messages, on purpose. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define TMPFS_MB    8
#define ENTRY_BYTES 1024
#define BATCH       4

static struct {
	char mnt[4096];
	char dir[4200];
	bool mounted;
} fx;

static int sh(char *const argv[])
{
	char out[1024];
	int st = tl_run(argv, out, sizeof(out));
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], out);
		return -1;
	}
	return 0;
}

static void cleanup(void)
{
	if (fx.mounted) {
		char *argv[] = {"umount", "-l", fx.mnt, NULL};
		sh(argv);
		fx.mounted = false;
	}
	if (fx.mnt[0] != '\0')
		rmdir(fx.mnt);
	fx.mnt[0] = '\0';
}

static bool set_up(void)
{
	memset(&fx, 0, sizeof(fx));
	if (geteuid() != 0) {
		printf("SKIPPED: needs root to mount a tmpfs\n");
		return false;
	}
	CU_ASSERT_FATAL(tl_mkdtemp(tl_tmpdir(), "raftkv-full", fx.mnt, sizeof(fx.mnt)) == 0);
	char opt[64];
	snprintf(opt, sizeof(opt), "size=%dm,mode=0700", TMPFS_MB);
	char *argv[] = {"mount", "-t", "tmpfs", "-o", opt, "tmpfs", fx.mnt, NULL};
	CU_ASSERT_FATAL(sh(argv) == 0);
	fx.mounted = true;
	snprintf(fx.dir, sizeof(fx.dir), "%s/d", fx.mnt);
	return true;
}

static void grow(void)
{
	char *argv[] = {"mount", "-o", "remount,size=128m", fx.mnt, NULL};
	CU_ASSERT_FATAL(sh(argv) == 0);
}

static uint64_t free_bytes(void)
{
	struct statvfs sv;
	return statvfs(fx.mnt, &sv) == 0 ? (uint64_t)sv.f_bavail * sv.f_frsize : 0;
}

/* One synced batch of BATCH entries of `len` bytes starting at `index`. */
static int write_batch(struct storage *s, uint64_t index, size_t len)
{
	static unsigned char data[BATCH][ENTRY_BYTES];
	struct storage_entry es[BATCH];
	for (int i = 0; i < BATCH; i++) {
		tl_entry_fill(index + i, 1, data[i], len);
		es[i] = (struct storage_entry){
			.index = index + i, .term = 1, .type = 0, .data = data[i], .len = len};
	}
	struct storage_hard_state hs = {.term = 1, .vote = 0, .commit = index};
	struct storage_batch b = {.entries = es, .n_entries = BATCH, .hs = &hs, .sync = true};
	return storage_write(s, &b);
}

/* Reopen with room to spare: entries 1..acked are all there, intact. */
static void check_acked_survive(uint64_t acked)
{
	grow();
	struct storage *s;
	char err[512];
	CU_ASSERT_FATAL(storage_open(fx.dir, NULL, &s, err, sizeof(err)) == 0);
	struct storage_hard_state hs;
	struct storage_snapshot_info si;
	struct tl_entries got = {0};
	int rv = storage_load(s, &hs, &si, tl_collect, &got);
	CU_ASSERT_EQUAL_FATAL(rv, 0);
	storage_snapshot_info_free(&si);
	printf("  %" PRIu64 " entries acknowledged, %zu found after the reopen\n", acked, got.n);
	CU_ASSERT(got.n >= acked);
	unsigned char want[ENTRY_BYTES];
	for (uint64_t i = 1; i <= acked && i <= got.n; i++) {
		const struct tl_entry *e = &got.v[i - 1];
		tl_entry_fill(i, 1, want, ENTRY_BYTES);
		if (e->index != i || e->len != ENTRY_BYTES || memcmp(e->data, want, e->len) != 0) {
			CU_FAIL("an acknowledged entry differs after the reopen");
			break;
		}
	}
	tl_entries_free(&got);
	/* Once recovered, the store takes writes again. */
	CU_ASSERT_EQUAL(storage_broken(s), 0);
	CU_ASSERT_EQUAL(write_batch(s, got.n + 1, ENTRY_BYTES), 0);
	storage_close(s);
}

/* Small synced writes after the failure: every one must be refused (each would fit in the
 * unused tail of an allocated page, which is how they used to get through). */
static void check_refuses(struct storage *s, uint64_t next)
{
	int accepted = 0;
	for (int i = 0; i < 50; i++)
		accepted += write_batch(s, next, 1) == 0;
	CU_ASSERT_EQUAL(accepted, 0);
	CU_ASSERT_EQUAL(storage_broken(s), STORAGE_EFULL);
	struct storage_snapshot_writer *w;
	CU_ASSERT_EQUAL(storage_snapshot_begin(s, 1, 1, "c", 1, &w), STORAGE_EFULL);
	printf("  after the failure: %s\n", storage_errmsg(s));
}

/* A store on a fresh small tmpfs; NULL when the test is skipped (not root). */
static struct storage *open_on_tmpfs(void)
{
	if (!set_up())
		return NULL;
	struct storage *s;
	char err[512];
	CU_ASSERT_FATAL(storage_open(fx.dir, NULL, &s, err, sizeof(err)) == 0);
	return s;
}

/* After the first failed write: refused from then on, all acknowledged kept. */
static void finish(struct storage *s, uint64_t acked)
{
	check_refuses(s, acked + 1);
	storage_close(s);
	check_acked_survive(acked);
	cleanup();
}

/* The log itself fills the disk. */
static void test_log_fills_disk(void)
{
	struct storage *s = open_on_tmpfs();
	if (s == NULL)
		return;
	uint64_t acked = 0;
	int rv = 0;
	for (int k = 0; k < 100000 && rv == 0; k++) {
		rv = write_batch(s, acked + 1, ENTRY_BYTES);
		if (rv == 0)
			acked += BATCH;
	}
	CU_ASSERT_EQUAL_FATAL(rv, STORAGE_EFULL);
	finish(s, acked);
}

/* A snapshot fails for lack of space: its file goes, and the space with it. Its data never
 * went through Berkeley DB, so BDB's log is sound: the store goes on taking (and keeping)
 * log writes instead of refusing everything until a restart. */
static void test_snapshot_fills_disk(void)
{
	struct storage *s = open_on_tmpfs();
	if (s == NULL)
		return;
	uint64_t acked = 0;
	while (free_bytes() > (2u << 20) && acked < 400000) {
		CU_ASSERT_EQUAL_FATAL(write_batch(s, acked + 1, ENTRY_BYTES), 0);
		acked += BATCH;
	}
	static unsigned char chunk[STORAGE_SNAPSHOT_CHUNK];
	memset(chunk, 's', sizeof(chunk));
	struct storage_snapshot_writer *w;
	int rv = storage_snapshot_begin(s, acked, 1, "c", 1, &w);
	for (int i = 0; rv == 0 && i < 8; i++) {
		rv = storage_snapshot_write(w, chunk, sizeof(chunk));
		if (rv != 0)
			storage_snapshot_abort(w);
	}
	if (rv == 0)
		rv = storage_snapshot_commit(w);
	CU_ASSERT_EQUAL_FATAL(rv, STORAGE_EFULL);
	printf("  the snapshot failed: %s\n", storage_errmsg(s));
	CU_ASSERT(strstr(storage_errmsg(s), "snap-") != NULL &&
		  strstr(storage_errmsg(s), "No space left on device") != NULL);
	CU_ASSERT_EQUAL(storage_broken(s), 0);
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 0);
	CU_ASSERT(free_bytes() > (1u << 20));
	for (int i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL_FATAL(write_batch(s, acked + 1, ENTRY_BYTES), 0);
		acked += BATCH;
	}
	storage_close(s);
	check_acked_survive(acked);
	cleanup();
}

static CU_TestInfo full_tests[] = {
	{"the log fills the disk: nothing more acknowledged, nothing acknowledged lost",
	 test_log_fills_disk},
	{"a snapshot fills the disk: its file goes, the log goes on", test_snapshot_fills_disk},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"full disk", NULL, NULL, NULL, NULL, full_tests},
		CU_SUITE_INFO_NULL,
	};
	int rc = cunit_main(suites);
	cleanup();
	return rc;
}
