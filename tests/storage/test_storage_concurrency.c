/* Storage under concurrent transactions: a deadlock between two transactions is broken and
 * the storage call retried, and snapshot readers are never blocked by a writer. */
#define _DEFAULT_SOURCE /* <db.h> needs u_int and friends */
#include <CUnit/Basic.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "common/byteorder.h"
#include "cunit_main.h"
#include "server/storage/storage_impl.h"
#include "storage_testlib.h"

/* A hang here is the bug itself (no deadlock detection, a reader waiting on a writer): the
 * watchdog turns it into a failure that says so instead of a ctest timeout. */
#define WATCHDOG_S 60

static void on_watchdog(int sig)
{
	(void)sig;
	static const char msg[] = "\nwatchdog: the test hung (a deadlock nobody broke, or a "
				  "reader blocked by a writer)\n";
	ssize_t w = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)w;
	_exit(1);
}

static struct {
	char dir[4096];
	struct storage *s;
} fx;

static void test_setup(void)
{
	memset(&fx, 0, sizeof(fx));
	CU_ASSERT_FATAL(tl_mkdtemp(tl_tmpdir(), "raftkv-storage-conc", fx.dir, sizeof(fx.dir)) ==
			0);
	char msg[512] = "";
	int rc = storage_open(fx.dir, NULL, &fx.s, msg, sizeof(msg));
	if (rc != 0)
		fprintf(stderr, "\nstorage_open: %s\n", msg);
	CU_ASSERT_FATAL(rc == 0);
	signal(SIGALRM, on_watchdog);
	alarm(WATCHDOG_S);
}

static void test_teardown(void)
{
	alarm(0);
	storage_close(fx.s);
	tl_rm_rf(fx.dir);
	memset(&fx, 0, sizeof(fx));
}

/* Lock requests that had to wait so far (a blocked transaction shows here). */
static uint32_t lock_waiters(void)
{
	DB_LOCK_STAT *st = NULL;
	CU_ASSERT_FATAL(fx.s->env->lock_stat(fx.s->env, &st, 0) == 0);
	uint32_t n = (uint32_t)st->st_lock_wait;
	free(st);
	return n;
}

/* Poll (bounded) until the lock conflict count passes `before`. */
static bool wait_conflict(uint32_t before)
{
	for (int i = 0; i < 5000; i++) {
		if (lock_waiters() > before)
			return true;
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	return false;
}

struct writer_arg {
	atomic_int done; /* 1 once storage_write returned */
	int rc;
	char err[512];
};

static void *write_entries(void *p)
{
	struct writer_arg *a = p;
	static const char payload[] = "entry";
	struct storage_entry e[5];
	for (int i = 0; i < 5; i++)
		e[i] = (struct storage_entry){.index = (uint64_t)i + 1,
					      .term = 1,
					      .data = payload,
					      .len = sizeof(payload)};
	struct storage_hard_state hs = {.term = 1, .vote = 7, .commit = 0};
	struct storage_batch b = {.entries = e, .n_entries = 5, .hs = &hs, .sync = true};
	a->rc = storage_write(fx.s, &b);
	snprintf(a->err, sizeof(a->err), "%s", storage_errmsg(fx.s));
	atomic_store(&a->done, 1);
	return NULL;
}

static int count_entry(void *arg, const struct storage_entry *e)
{
	(void)e;
	(*(int *)arg)++;
	return 0;
}

/* Two transactions wait on each other: ours holds meta.db and then wants log.db, the group
 * commit (storage_write) holds log.db and wants meta.db for the hard state. Berkeley DB's
 * detector must break the cycle and storage_write must succeed, retrying if it was the
 * victim. Without detection both wait forever (the watchdog fails the test). */
static void test_deadlock_is_broken_and_retried(void)
{
	DB_ENV *env = fx.s->env;
	DB_TXN *t = NULL;
	CU_ASSERT_FATAL(env->txn_begin(env, NULL, &t, 0) == 0);
	DBT k = {.data = "zz", .size = 2}, d = {.data = "1", .size = 1};
	CU_ASSERT_FATAL(fx.s->meta->put(fx.s->meta, t, &k, &d, 0) == 0);

	uint32_t before = lock_waiters();
	struct writer_arg a = {.done = 0};
	pthread_t th;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, write_entries, &a) == 0);
	/* The writer has taken log.db's page and now waits for meta.db's. */
	CU_ASSERT_FATAL(wait_conflict(before));
	CU_ASSERT_EQUAL(atomic_load(&a.done), 0);

	unsigned char kb[8];
	put_be64(kb, 1000);
	DBT lk = {.data = kb, .size = 8}, ld = {.data = "x", .size = 1};
	int ret = fx.s->log->put(fx.s->log, t, &lk, &ld, 0);
	/* Either we are the victim (then abort) or the writer was (it retries after we end). */
	CU_ASSERT(ret == 0 || ret == DB_LOCK_DEADLOCK);
	t->abort(t); /* nothing of ours is kept either way */
	pthread_join(th, NULL);
	if (a.rc != 0)
		fprintf(stderr, "\nstorage_write = %d: %s\n", a.rc, a.err);
	CU_ASSERT_EQUAL_FATAL(a.rc, 0);

	struct storage_hard_state hs;
	struct storage_snapshot_info si;
	int n = 0;
	CU_ASSERT_FATAL(storage_load(fx.s, &hs, &si, count_entry, &n) == 0);
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_EQUAL(hs.vote, 7);
	storage_snapshot_info_free(&si);
}

static int write_snapshot(uint64_t index, size_t size, unsigned char fill)
{
	struct storage_snapshot_writer *w = NULL;
	int rc = storage_snapshot_begin(fx.s, index, 1, "c", 1, &w);
	if (rc != 0)
		return rc;
	unsigned char *buf = malloc(size);
	CU_ASSERT_FATAL(buf != NULL);
	memset(buf, fill, size);
	rc = storage_snapshot_write(w, buf, size);
	free(buf);
	if (rc != 0) {
		storage_snapshot_abort(w);
		return rc;
	}
	return storage_snapshot_commit(w);
}

/* The snapshotter's commit deletes the previous snapshot's metadata in a transaction while
 * a transfer may still be reading that snapshot on the gRPC loop. The reader must not wait
 * for that transaction (it once did, stalling every call on the loop): it reads on and gets
 * the snapshot whole, its data being in a file the transaction does not touch. */
static void test_snapshot_reader_not_blocked_by_writer(void)
{
	const size_t size = 3 * STORAGE_SNAPSHOT_CHUNK + 123;
	CU_ASSERT_FATAL(write_snapshot(10, size, 0x5a) == 0);
	struct storage_snapshot_reader *r = NULL;
	struct storage_snapshot_info info;
	CU_ASSERT_FATAL(storage_snapshot_open(fx.s, &info, &r) == 0);
	CU_ASSERT_EQUAL(info.index, 10);
	storage_snapshot_info_free(&info);

	/* A writer transaction that deletes every snapshot record and holds its locks until we
	 * say. */
	DB_ENV *env = fx.s->env;
	DB_TXN *t = NULL;
	CU_ASSERT_FATAL(env->txn_begin(env, NULL, &t, 0) == 0);
	DBC *c = NULL;
	CU_ASSERT_FATAL(fx.s->snapmeta->cursor(fx.s->snapmeta, t, &c, 0) == 0);
	DBT k = {.flags = DB_DBT_REALLOC}, d = {.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM};
	int deleted = 0;
	while (c->get(c, &k, &d, DB_NEXT) == 0) {
		CU_ASSERT_FATAL(c->del(c, 0) == 0);
		deleted++;
	}
	c->close(c);
	free(k.data);
	CU_ASSERT_EQUAL(deleted, 1);

	/* Every byte, as it was committed, while the deleting transaction is still open. */
	unsigned char *buf = malloc(STORAGE_SNAPSHOT_CHUNK);
	CU_ASSERT_FATAL(buf != NULL);
	size_t total = 0, n = 0;
	bool same = true;
	int rc;
	while ((rc = storage_snapshot_read(r, buf, STORAGE_SNAPSHOT_CHUNK, &n)) == 0 && n > 0) {
		for (size_t i = 0; i < n; i++)
			same = same && buf[i] == 0x5a;
		total += n;
	}
	if (rc != 0)
		fprintf(stderr, "\n  read: %s ", storage_errmsg(fx.s));
	CU_ASSERT(rc == 0 && total == size);
	CU_ASSERT(same);
	storage_snapshot_close(r);
	free(buf);
	/* Our deleting transaction was still open all along: the reader did not wait for it. */
	t->abort(t);
	/* Rolled back: the snapshot is the newest again, whole. */
	CU_ASSERT_FATAL(storage_snapshot_open(fx.s, NULL, &r) == 0);
	buf = malloc(STORAGE_SNAPSHOT_CHUNK);
	CU_ASSERT_FATAL(buf != NULL);
	total = 0;
	while ((rc = storage_snapshot_read(r, buf, STORAGE_SNAPSHOT_CHUNK, &n)) == 0 && n > 0)
		total += n;
	CU_ASSERT(rc == 0 && total == size);
	storage_snapshot_close(r);
	free(buf);
}

/* A new snapshot committed while an old one is being read: the reader still gets the old
 * one whole (its file is unlinked, not overwritten); the new one is then the newest. */
static void test_snapshot_replaced_during_read(void)
{
	const size_t size = 2 * STORAGE_SNAPSHOT_CHUNK + 7;
	CU_ASSERT_FATAL(write_snapshot(10, size, 0x11) == 0);
	struct storage_snapshot_reader *r = NULL;
	CU_ASSERT_FATAL(storage_snapshot_open(fx.s, NULL, &r) == 0);
	unsigned char *buf = malloc(STORAGE_SNAPSHOT_CHUNK);
	CU_ASSERT_FATAL(buf != NULL);
	size_t n = 0;
	CU_ASSERT_FATAL(storage_snapshot_read(r, buf, 1000, &n) == 0 && n == 1000);
	CU_ASSERT_FATAL(write_snapshot(20, size, 0x22) == 0);
	size_t total = n;
	int rc;
	bool same = true;
	while ((rc = storage_snapshot_read(r, buf, STORAGE_SNAPSHOT_CHUNK, &n)) == 0 && n > 0) {
		for (size_t i = 0; i < n; i++)
			same = same && buf[i] == 0x11;
		total += n;
	}
	CU_ASSERT(same);
	CU_ASSERT(rc == 0 && total == size);
	storage_snapshot_close(r);
	free(buf);
	struct storage_snapshot_info info;
	CU_ASSERT_FATAL(storage_snapshot_open(fx.s, &info, &r) == 0);
	CU_ASSERT_EQUAL(info.index, 20);
	storage_snapshot_info_free(&info);
	storage_snapshot_close(r);
}

static CU_TestInfo tests[] = {
	{"a deadlock is broken and the write retried", test_deadlock_is_broken_and_retried},
	{"snapshot reads are not blocked by a writer", test_snapshot_reader_not_blocked_by_writer},
	{"a snapshot replaced while it is read", test_snapshot_replaced_during_read},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"concurrency", NULL, NULL, test_setup, test_teardown, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
