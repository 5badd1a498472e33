/* Unit tests of the Berkeley DB storage layer: every operation on a fresh temporary directory,
 * reopening the store to prove what reached disk, and corruption detection. */

/* db.h (read directly below to check what is on disk) needs the BSD types u_int/u_long. */
#define _DEFAULT_SOURCE
#include "server/storage/storage.h"
#include "server/storage/storage_impl.h"
#include "common/byteorder.h"
#include "storage/storage_testlib.h"
#include "cunit_main.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <db.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_INDEX 40000 /* bound of the indexes the tests write */
#define MIB       (1024 * 1024)

/* The fixture: one temporary directory and the store open on it (NULL when closed), plus
 * the expected term of every index written so far (0 = nothing expected there). */
static struct {
	char dir[4096];
	struct storage *s;
	struct storage_options opt;
	uint64_t *terms;
	/* What the last load() returned. */
	struct storage_hard_state hs;
	struct storage_snapshot_info snap;
	struct tl_entries got;
} fx;

static int setup(void)
{
	return 0;
}

static void test_setup(void)
{
	memset(&fx, 0, sizeof(fx));
	storage_options_default(&fx.opt);
	if (tl_mkdtemp(tl_tmpdir(), "raftkv-storage-test", fx.dir, sizeof(fx.dir)) != 0) {
		fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
		fx.dir[0] = '\0';
	}
	fx.terms = calloc(MAX_INDEX + 1, sizeof(*fx.terms));
}

static void test_teardown(void)
{
	storage_close(fx.s);
	fx.s = NULL;
	storage_snapshot_info_free(&fx.snap);
	tl_entries_free(&fx.got);
	free(fx.terms);
	if (fx.dir[0] != '\0' && tl_rm_rf(fx.dir) != 0)
		fprintf(stderr, "rm -rf %s: %s\n", fx.dir, strerror(errno));
	memset(&fx, 0, sizeof(fx));
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* A call that must succeed; on failure print the store's message and stop the test. */
#define OK(call)                                                                                  \
	do {                                                                                      \
		int rc_ = (call);                                                                 \
		if (rc_ != 0)                                                                     \
			fprintf(stderr, "\n%s:%d: %s = %d: %s\n", __FILE__, __LINE__, #call, rc_, \
				fx.s ? storage_errmsg(fx.s) : "");                                \
		CU_ASSERT_EQUAL_FATAL(rc_, 0);                                                    \
	} while (0)

static void open_store(void)
{
	CU_ASSERT_FATAL(fx.dir[0] != '\0' && fx.terms != NULL);
	char msg[512] = "";
	int rc = storage_open(fx.dir, &fx.opt, &fx.s, msg, sizeof(msg));
	if (rc != 0)
		fprintf(stderr, "\nstorage_open(%s) = %d: %s\n", fx.dir, rc, msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx.s);
}

static void close_store(void)
{
	storage_close(fx.s);
	fx.s = NULL;
}

static void reopen(void)
{
	close_store();
	open_store();
}

/* storage_load into fx.hs / fx.snap / fx.got (the previous result is dropped first). */
static int load(void)
{
	storage_snapshot_info_free(&fx.snap);
	tl_entries_free(&fx.got);
	memset(&fx.hs, 0xab, sizeof(fx.hs)); /* must be overwritten */
	return storage_load(fx.s, &fx.hs, &fx.snap, tl_collect, &fx.got);
}

/* Write a batch whose entries are first..first+n-1 at `term`, with deterministic contents
 * (tl_entry_*). Returns storage_write's code; on success fx.terms follows. */
static int write_batch(bool clear_log, uint64_t truncate_from, uint64_t first, size_t n,
		       uint64_t term, const struct storage_hard_state *hs, bool sync)
{
	struct storage_entry *e = calloc(n ? n : 1, sizeof(*e));
	unsigned char **bufs = calloc(n ? n : 1, sizeof(*bufs));
	CU_ASSERT_FATAL(e != NULL && bufs != NULL);
	for (size_t i = 0; i < n; i++) {
		uint64_t idx = first + i;
		e[i].index = idx;
		e[i].term = term;
		e[i].type = tl_entry_type(idx, term);
		e[i].len = tl_entry_len(idx, term);
		bufs[i] = malloc(e[i].len ? e[i].len : 1);
		CU_ASSERT_FATAL(bufs[i] != NULL);
		tl_entry_fill(idx, term, bufs[i], e[i].len);
		e[i].data = bufs[i];
	}
	struct storage_batch b = {.clear_log = clear_log,
				  .truncate_from = truncate_from,
				  .entries = e,
				  .n_entries = n,
				  .hs = hs,
				  .sync = sync};
	int rc = storage_write(fx.s, &b);
	if (rc == 0) {
		if (clear_log)
			memset(fx.terms, 0, (MAX_INDEX + 1) * sizeof(*fx.terms));
		if (truncate_from != 0)
			for (uint64_t i = truncate_from; i <= MAX_INDEX; i++)
				fx.terms[i] = 0;
		for (size_t i = 0; i < n; i++)
			fx.terms[first + i] = term;
	}
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(e);
	return rc;
}

static void append(uint64_t first, size_t n, uint64_t term)
{
	OK(write_batch(false, 0, first, n, term, NULL, true));
}

/* The last load delivered exactly entries first..last (none when last < first), each with
 * the contents written for it (fx.terms). */
static void check_entries(uint64_t first, uint64_t last)
{
	size_t want = last >= first ? (size_t)(last - first + 1) : 0;
	CU_ASSERT_FALSE(fx.got.oom);
	if (fx.got.n != want) {
		fprintf(stderr,
			"\nloaded %zu entries (%" PRIu64 "..%" PRIu64 "), expected %zu (%" PRIu64
			"..%" PRIu64 ")\n",
			fx.got.n, fx.got.n ? fx.got.v[0].index : 0,
			fx.got.n ? fx.got.v[fx.got.n - 1].index : 0, want, first, last);
	}
	CU_ASSERT_EQUAL_FATAL(fx.got.n, want);
	for (size_t i = 0; i < want; i++) {
		uint64_t idx = first + i;
		bool ok = tl_entry_matches(&fx.got.v[i], idx, fx.terms[idx]);
		if (!ok)
			fprintf(stderr,
				"\nentry %" PRIu64 ": got index %" PRIu64 " term %" PRIu64
				" type %u len %zu, expected term %" PRIu64 " type %u len %zu\n",
				idx, fx.got.v[i].index, fx.got.v[i].term, fx.got.v[i].type,
				fx.got.v[i].len, fx.terms[idx], tl_entry_type(idx, fx.terms[idx]),
				tl_entry_len(idx, fx.terms[idx]));
		CU_ASSERT_FATAL(ok);
	}
}

static void check_hs(uint64_t term, uint64_t vote, uint64_t commit)
{
	CU_ASSERT_EQUAL(fx.hs.term, term);
	CU_ASSERT_EQUAL(fx.hs.vote, vote);
	CU_ASSERT_EQUAL(fx.hs.commit, commit);
}

/* Piece sizes for writing and reading snapshot streams: odd, crossing chunk boundaries. */
static const size_t write_pieces[] = {1, 4099, 65537, 333331, 7, 1048577, 2097169, 12345, 999};
static const size_t read_pieces[] = {1, 13, 1048575, 999983, 4096, 3, 2097157, 77777};
#define NPIECES(a) (sizeof(a) / sizeof((a)[0]))

/* Write a snapshot of `size` bytes of the stream `seed` in odd pieces; returns commit's code
 * (or the first failure). */
static int write_snapshot(uint64_t index, uint64_t term, const char *conf, uint64_t size,
			  uint64_t seed)
{
	struct storage_snapshot_writer *w = NULL;
	int rc = storage_snapshot_begin(fx.s, index, term, conf, conf ? strlen(conf) : 0, &w);
	if (rc != 0)
		return rc;
	unsigned char *buf = malloc(3 * MIB);
	CU_ASSERT_FATAL(buf != NULL);
	uint64_t off = 0;
	for (size_t k = 0; off < size; k++) {
		size_t n = write_pieces[k % NPIECES(write_pieces)];
		if (n > size - off)
			n = (size_t)(size - off);
		tl_stream_fill(seed, off, buf, n);
		rc = storage_snapshot_write(w, buf, n);
		if (rc != 0) {
			free(buf);
			storage_snapshot_abort(w);
			return rc;
		}
		off += n;
	}
	free(buf);
	return storage_snapshot_commit(w);
}

/* The newest snapshot is (index, term, conf) with `size` bytes of stream `seed`, read back
 * in odd pieces. */
static void check_snapshot(uint64_t index, uint64_t term, const char *conf, uint64_t size,
			   uint64_t seed)
{
	struct storage_snapshot_info info;
	struct storage_snapshot_reader *r = NULL;
	memset(&info, 0, sizeof(info));
	OK(storage_snapshot_open(fx.s, &info, &r));
	CU_ASSERT_EQUAL(info.index, index);
	CU_ASSERT_EQUAL(info.term, term);
	CU_ASSERT_EQUAL(info.size, size);
	size_t clen = conf ? strlen(conf) : 0;
	CU_ASSERT_EQUAL(info.conf_len, clen);
	if (info.conf_len == clen && clen > 0)
		CU_ASSERT_EQUAL(memcmp(info.conf, conf, clen), 0);
	storage_snapshot_info_free(&info);

	unsigned char *buf = malloc(3 * MIB), *want = malloc(3 * MIB);
	CU_ASSERT_FATAL(buf != NULL && want != NULL);
	uint64_t off = 0;
	int rc = 0;
	bool same = true;
	for (size_t k = 0;; k++) {
		size_t cap = read_pieces[k % NPIECES(read_pieces)], n = 0;
		rc = storage_snapshot_read(r, buf, cap, &n);
		if (rc != 0) {
			fprintf(stderr, "\nstorage_snapshot_read at %" PRIu64 " = %d: %s\n", off,
				rc, storage_errmsg(fx.s));
			break;
		}
		if (n == 0)
			break;
		if (n > cap || off + n > size) {
			same = false;
			break;
		}
		tl_stream_fill(seed, off, want, n);
		if (memcmp(buf, want, n) != 0) {
			fprintf(stderr, "\nsnapshot bytes differ in [%" PRIu64 ", +%zu)\n", off, n);
			same = false;
			break;
		}
		off += n;
	}
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT(same);
	CU_ASSERT_EQUAL(off, size);
	/* At the end it stays at the end. */
	size_t n = 1;
	if (rc == 0 && same) {
		CU_ASSERT_EQUAL(storage_snapshot_read(r, buf, 100, &n), 0);
		CU_ASSERT_EQUAL(n, 0);
	}
	free(buf);
	free(want);
	storage_snapshot_close(r);
}

/* White-box (the file layout is documented in storage.h): the distinct snapshot ids (the
 * first 8 key bytes) in `file` of the closed store; -1 if the file cannot be read. */
static int count_snapshot_ids(const char *file)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", fx.dir, file);
	DB *db = NULL;
	if (db_create(&db, NULL, 0) != 0)
		return -1;
	int ret = db->open(db, NULL, path, NULL, DB_BTREE, DB_RDONLY, 0);
	if (ret != 0) {
		fprintf(stderr, "\n%s: DB->open: %s\n", path, db_strerror(ret));
		db->close(db, 0);
		return -1;
	}
	DBC *c = NULL;
	int n = 0;
	unsigned char prev[8];
	ret = db->cursor(db, NULL, &c, 0);
	if (ret == 0) {
		DBT k, d;
		memset(&k, 0, sizeof(k));
		memset(&d, 0, sizeof(d));
		while ((ret = c->get(c, &k, &d, DB_NEXT)) == 0) {
			if (k.size < 8) {
				n = -1;
				break;
			}
			if (n == 0 || memcmp(prev, k.data, 8) != 0)
				n++;
			memcpy(prev, k.data, 8);
		}
		c->close(c);
		if (ret != DB_NOTFOUND && n >= 0) {
			fprintf(stderr, "\n%s: DBC->get: %s\n", path, db_strerror(ret));
			n = -1;
		}
	}
	db->close(db, 0);
	return n;
}

/* Flip one byte of `file` in the store's directory at offset size/2. */
static void flip_middle_byte(const char *file)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", fx.dir, file);
	long long size = tl_file_size(path);
	CU_ASSERT_FATAL(size > 0);
	int fd = open(path, O_RDWR);
	CU_ASSERT_FATAL(fd >= 0);
	unsigned char b;
	off_t off = (off_t)(size / 2);
	CU_ASSERT_FATAL(pread(fd, &b, 1, off) == 1);
	b ^= 0x5a;
	CU_ASSERT_FATAL(pwrite(fd, &b, 1, off) == 1);
	CU_ASSERT_EQUAL(fsync(fd), 0);
	close(fd);
}

/* ---- open and load ----------------------------------------------------------------------- */

static void test_open_empty(void)
{
	open_store();
	OK(load());
	check_hs(0, 0, 0);
	CU_ASSERT_EQUAL(fx.snap.index, 0);
	CU_ASSERT_EQUAL(fx.got.n, 0);

	struct storage_snapshot_reader *r = NULL;
	CU_ASSERT_EQUAL(storage_snapshot_open(fx.s, NULL, &r), STORAGE_ENOENT);

	/* And the same after a reopen of the (now created) store. */
	reopen();
	OK(load());
	check_hs(0, 0, 0);
	CU_ASSERT_EQUAL(fx.snap.index, 0);
	CU_ASSERT_EQUAL(fx.got.n, 0);

	/* NULL-safe destructors. */
	storage_close(NULL);
	storage_snapshot_abort(NULL);
	storage_snapshot_close(NULL);
}

static void test_open_missing_dir(void)
{
	char path[4200], msg[512] = "";
	/* A missing data directory is created... */
	snprintf(path, sizeof(path), "%s/new-data-dir", fx.dir);
	struct storage *s = NULL;
	int rc = storage_open(path, &fx.opt, &s, msg, sizeof(msg));
	CU_ASSERT_EQUAL(rc, 0);
	if (rc == 0)
		storage_close(s);
	/* ...but not a missing parent: the error names the path. */
	snprintf(path, sizeof(path), "%s/does-not-exist/data", fx.dir);
	rc = storage_open(path, &fx.opt, &s, msg, sizeof(msg));
	CU_ASSERT(rc < 0);
	CU_ASSERT(strstr(msg, "does-not-exist") != NULL);
	if (rc == 0)
		storage_close(s);
}

static void test_append_reopen(void)
{
	open_store();
	append(1, 1, 1);
	append(2, 63, 1);
	append(65, 200, 2);
	OK(write_batch(false, 0, 265, 36, 3, NULL, false)); /* unsynced: a clean close keeps it */
	reopen();
	OK(load());
	check_entries(1, 300);
	check_hs(0, 0, 0);
	CU_ASSERT_EQUAL(fx.snap.index, 0);

	/* Appending after a reopen continues the same log. */
	append(301, 10, 3);
	reopen();
	OK(load());
	check_entries(1, 310);
}

/* Payloads that are empty, a BDB overflow item, and every type byte value survive. */
static void test_append_odd_payloads(void)
{
	open_store();
	static unsigned char big[70000];
	tl_stream_fill(99, 0, big, sizeof(big));
	struct storage_entry e[4] = {
		{.index = 1, .term = 5, .type = 0, .data = NULL, .len = 0},
		{.index = 2, .term = 5, .type = 255, .data = big, .len = sizeof(big)},
		{.index = 3, .term = UINT64_MAX, .type = 7, .data = big + 1, .len = 1},
		{.index = 4, .term = UINT64_MAX, .type = 1, .data = "", .len = 0},
	};
	struct storage_batch b = {.entries = e, .n_entries = 4, .sync = true};
	OK(storage_write(fx.s, &b));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL_FATAL(fx.got.n, 4);
	for (size_t i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(fx.got.v[i].index, e[i].index);
		CU_ASSERT_EQUAL(fx.got.v[i].term, e[i].term);
		CU_ASSERT_EQUAL(fx.got.v[i].type, e[i].type);
		CU_ASSERT_EQUAL_FATAL(fx.got.v[i].len, e[i].len);
		if (e[i].len)
			CU_ASSERT_EQUAL(memcmp(fx.got.v[i].data, e[i].data, e[i].len), 0);
	}
}

/* A non-zero return from the callback stops the load and is returned; fn may be NULL. */
static int stop_at_5(void *arg, const struct storage_entry *e)
{
	int *calls = arg;
	(*calls)++;
	return e->index == 5 ? 42 : 0;
}

static void test_load_callback_stops(void)
{
	open_store();
	append(1, 20, 1);
	int calls = 0;
	struct storage_hard_state hs;
	struct storage_snapshot_info snap;
	CU_ASSERT_EQUAL(storage_load(fx.s, &hs, &snap, stop_at_5, &calls), 42);
	CU_ASSERT_EQUAL(calls, 5);
	storage_snapshot_info_free(&snap);
	/* The handle is still usable afterwards. */
	OK(load());
	check_entries(1, 20);
}

static void test_hard_state(void)
{
	open_store();
	struct storage_hard_state hs = {.term = 3, .vote = 2, .commit = 0};
	OK(write_batch(false, 0, 1, 0, 0, &hs, true)); /* hard state alone */
	reopen();
	OK(load());
	check_hs(3, 2, 0);
	CU_ASSERT_EQUAL(fx.got.n, 0);

	/* Together with entries; then a batch without hs leaves it unchanged. */
	hs = (struct storage_hard_state){.term = 4, .vote = 0, .commit = 7};
	OK(write_batch(false, 0, 1, 10, 4, &hs, true));
	append(11, 5, 4);
	reopen();
	OK(load());
	check_hs(4, 0, 7);
	check_entries(1, 15);

	/* Extreme values. */
	hs = (struct storage_hard_state){.term = UINT64_MAX, .vote = UINT64_MAX - 1, .commit = 15};
	OK(write_batch(false, 0, 1, 0, 0, &hs, true));
	reopen();
	OK(load());
	check_hs(UINT64_MAX, UINT64_MAX - 1, 15);
	check_entries(1, 15);
}

static void test_truncate_then_append(void)
{
	open_store();
	append(1, 50, 1);
	/* A conflicting suffix replaced in one batch. */
	struct storage_hard_state hs = {.term = 2, .vote = 1, .commit = 30};
	OK(write_batch(false, 31, 31, 10, 2, &hs, true));
	reopen();
	OK(load());
	check_entries(1, 40);
	CU_ASSERT_EQUAL(fx.got.v[29].term, 1);
	CU_ASSERT_EQUAL(fx.got.v[30].term, 2);
	check_hs(2, 1, 30);

	/* Truncate alone, then append where the log now ends. */
	OK(write_batch(false, 21, 0, 0, 0, NULL, true));
	reopen();
	OK(load());
	check_entries(1, 20);
	append(21, 5, 3);
	/* Truncating at the first index empties the log, and the batch refills it. */
	OK(write_batch(false, 1, 1, 3, 4, NULL, true));
	reopen();
	OK(load());
	check_entries(1, 3);
	/* truncate_from beyond the end deletes nothing. */
	OK(write_batch(false, 100, 4, 2, 4, NULL, true));
	reopen();
	OK(load());
	check_entries(1, 5);
}

static void test_clear_log(void)
{
	open_store();
	append(1, 20, 1);
	/* A snapshot at 100 was installed: the log restarts after it. */
	OK(write_snapshot(100, 3, "conf-100", 1000, 1));
	struct storage_hard_state hs = {.term = 3, .vote = 0, .commit = 100};
	OK(write_batch(true, 0, 101, 5, 3, &hs, true));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 100);
	CU_ASSERT_EQUAL(fx.snap.term, 3);
	check_entries(101, 105);
	check_hs(3, 0, 100);

	/* clear_log alone leaves no entries. */
	OK(write_snapshot(200, 4, "conf-200", 10, 2));
	OK(write_batch(true, 0, 0, 0, 0, NULL, true));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 200);
	CU_ASSERT_EQUAL(fx.got.n, 0);
	append(201, 3, 4);
	reopen();
	OK(load());
	check_entries(201, 203);
}

static void test_non_contiguous_rejected(void)
{
	open_store();
	struct storage_hard_state hs = {.term = 1, .vote = 1, .commit = 5};
	OK(write_batch(false, 0, 1, 10, 1, &hs, true));

	unsigned char d[4] = {1, 2, 3, 4};
	struct storage_hard_state hs2 = {.term = 9, .vote = 9, .commit = 9};
	struct storage_entry gap[3] = {
		{.index = 11, .term = 2, .data = d, .len = 4},
		{.index = 12, .term = 2, .data = d, .len = 4},
		{.index = 14, .term = 2, .data = d, .len = 4},
	};
	struct storage_batch b = {.entries = gap, .n_entries = 3, .hs = &hs2, .sync = true};
	CU_ASSERT_EQUAL(storage_write(fx.s, &b), STORAGE_EINVAL);
	CU_ASSERT(strlen(storage_errmsg(fx.s)) > 0);

	/* Nothing of a rejected batch happens: not its truncate nor its clear_log either. */
	b.truncate_from = 3;
	CU_ASSERT_EQUAL(storage_write(fx.s, &b), STORAGE_EINVAL);
	b.truncate_from = 0;
	b.clear_log = true;
	CU_ASSERT_EQUAL(storage_write(fx.s, &b), STORAGE_EINVAL);
	b.clear_log = false;

	/* Duplicate and descending indexes. */
	struct storage_entry dup[2] = {
		{.index = 11, .term = 2, .data = d, .len = 4},
		{.index = 11, .term = 2, .data = d, .len = 4},
	};
	b.entries = dup;
	b.n_entries = 2;
	CU_ASSERT_EQUAL(storage_write(fx.s, &b), STORAGE_EINVAL);
	struct storage_entry desc[2] = {
		{.index = 12, .term = 2, .data = d, .len = 4},
		{.index = 11, .term = 2, .data = d, .len = 4},
	};
	b.entries = desc;
	CU_ASSERT_EQUAL(storage_write(fx.s, &b), STORAGE_EINVAL);

	OK(load());
	check_entries(1, 10);
	check_hs(1, 1, 5);
	reopen();
	OK(load());
	check_entries(1, 10);
	check_hs(1, 1, 5);
	/* The store still takes a good batch. */
	append(11, 2, 2);
	OK(load());
	check_entries(1, 12);
}

/* ---- compaction ---------------------------------------------------------------------------- */

static void test_compact_zero(void)
{
	open_store();
	append(1, 100, 1);
	OK(storage_compact(fx.s, 0));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 0);
	check_entries(1, 100);
}

static void test_compact_middle(void)
{
	open_store();
	append(1, 100, 1);
	OK(write_snapshot(50, 1, "c50", 5000, 3));
	OK(storage_compact(fx.s, 50));
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 50);
	check_entries(51, 100);
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 50);
	check_entries(51, 100);
	/* Appends continue after a compaction. */
	append(101, 10, 2);
	reopen();
	OK(load());
	check_entries(51, 110);
}

static void test_compact_everything(void)
{
	open_store();
	append(1, 100, 1);
	OK(write_snapshot(100, 1, "c100", 0, 4)); /* an empty snapshot is allowed too */
	OK(storage_compact(fx.s, 100));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 100);
	CU_ASSERT_EQUAL(fx.snap.size, 0);
	CU_ASSERT_EQUAL(fx.got.n, 0);
	check_snapshot(100, 1, "c100", 0, 4);
	append(101, 5, 2);
	reopen();
	OK(load());
	check_entries(101, 105);
}

static void test_compact_beyond_last(void)
{
	open_store();
	append(1, 100, 1);
	/* A snapshot newer than the whole log (as after an install), then compact past it. */
	OK(write_snapshot(150, 3, "c150", 100, 5));
	OK(storage_compact(fx.s, 150));
	OK(storage_compact(fx.s, 1000)); /* and again, on an empty log */
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 150);
	CU_ASSERT_EQUAL(fx.snap.term, 3);
	CU_ASSERT_EQUAL(fx.got.n, 0);
	append(151, 5, 3);
	reopen();
	OK(load());
	check_entries(151, 155);
}

/* A long prefix goes in several bounded transactions and survives a reopen. */
static void test_compact_long_prefix(void)
{
	open_store();
	for (uint64_t i = 1; i <= 25000; i += 250)
		OK(write_batch(false, 0, i, 250, 1, NULL, false));
	OK(write_snapshot(20000, 1, "c20000", 10, 6));
	OK(storage_compact(fx.s, 20000));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 20000);
	check_entries(20001, 25000);
}

/* Step by step, with appends between the steps (the node's writer interleaves its group
 * commits with a long compaction): each step deletes at most its bound, `more` holds until
 * the prefix is gone, and everything appended meanwhile is kept. */
static void test_compact_in_steps_between_appends(void)
{
	open_store();
	for (uint64_t i = 1; i <= 25000; i += 250)
		OK(write_batch(false, 0, i, 250, 1, NULL, false));
	OK(write_snapshot(20000, 1, "c20000", 10, 6));
	uint64_t next = 25001;
	int steps = 0;
	bool more = true;
	while (more) {
		OK(storage_compact_step(fx.s, 20000, 3000, &more));
		steps++;
		OK(write_batch(false, 0, next, 10, 1, NULL, true));
		next += 10;
		CU_ASSERT_FATAL(steps <= 7);
	}
	CU_ASSERT_EQUAL(steps, 7);                          /* 20000 entries, 3000 per step */
	OK(storage_compact_step(fx.s, 20000, 3000, &more)); /* nothing left: a no-op */
	CU_ASSERT_FALSE(more);
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 20000);
	check_entries(20001, next - 1);
}

/* The log must start right after the newest snapshot: a compacted prefix without a snapshot
 * is a gap that load reports. */
static void test_compact_without_snapshot_is_corrupt(void)
{
	open_store();
	append(1, 100, 1);
	OK(storage_compact(fx.s, 50));
	reopen();
	int rc = load();
	CU_ASSERT_EQUAL(rc, STORAGE_ECORRUPT);
	CU_ASSERT(strstr(storage_errmsg(fx.s), "log.db") != NULL);
}

/* Entries kept below the snapshot (a trailing log for slow followers) do not break the load:
 * what it delivers is contiguous, ends at the last entry and starts no later than right
 * after the snapshot. */
static void test_snapshot_with_trailing_entries(void)
{
	open_store();
	append(1, 100, 1);
	OK(write_snapshot(80, 1, "c80", 10, 7));
	OK(storage_compact(fx.s, 60));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 80);
	CU_ASSERT_FATAL(fx.got.n > 0);
	uint64_t first = fx.got.v[0].index;
	CU_ASSERT(first >= 61 && first <= 81);
	check_entries(first, 100);
}

/* An InstallSnapshot interrupted between "snapshot durable" and "log cleared" leaves old
 * entries at or below the snapshot and nothing after it. The restarted node appends right
 * after the snapshot: storage must take that as continuing the log, not as a gap (it used to
 * refuse every append, so the node aborted on every restart). */
static void test_install_interrupted_before_log_clear(void)
{
	open_store();
	append(1, 40, 1);
	/* The install: entries after the snapshot go (synced), the snapshot becomes durable;
	 * the crash comes before the writer's clear_log batch. */
	OK(write_batch(false, 31, 1, 0, 0, NULL, true));
	OK(write_snapshot(60, 3, "c60", 10, 9));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 60);
	CU_ASSERT_EQUAL(fx.got.n, 0);
	/* The core continues after the snapshot. */
	append(61, 5, 3);
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 60);
	check_entries(61, 65);
	/* Compaction up to the snapshot keeps what follows it. */
	OK(storage_compact(fx.s, 60));
	reopen();
	OK(load());
	check_entries(61, 65);
}

/* The same when the log ended exactly at the snapshot's index, or held nothing. */
static void test_install_interrupted_log_edges(void)
{
	open_store();
	append(1, 20, 1);
	OK(write_snapshot(20, 2, "c20", 10, 3));
	reopen();
	append(21, 2, 2);
	OK(write_snapshot(50, 4, "c50", 10, 4));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 50);
	append(51, 3, 4);
	reopen();
	OK(load());
	check_entries(51, 53);
}

/* ---- meta ---------------------------------------------------------------------------------- */

static void test_meta(void)
{
	open_store();
	unsigned char buf[256];
	size_t len = 12345;
	CU_ASSERT_EQUAL(storage_meta_get(fx.s, "node_id", buf, sizeof(buf), &len), STORAGE_ENOENT);

	const uint64_t id = 0x0102030405060708ULL;
	OK(storage_meta_put(fx.s, "node_id", &id, sizeof(id), true));
	const char *members = "1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003";
	OK(storage_meta_put(fx.s, "membership", members, strlen(members), false));
	OK(storage_meta_put(fx.s, "empty", "", 0, true));

	/* Exactly the right size works; one byte short gives ENOSPC and the size needed. */
	uint64_t got = 0;
	OK(storage_meta_get(fx.s, "node_id", &got, sizeof(got), &len));
	CU_ASSERT_EQUAL(len, sizeof(id));
	CU_ASSERT_EQUAL(got, id);
	len = 0;
	CU_ASSERT_EQUAL(storage_meta_get(fx.s, "membership", buf, 10, &len), STORAGE_ENOSPC);
	CU_ASSERT_EQUAL(len, strlen(members));
	len = 0;
	CU_ASSERT_EQUAL(storage_meta_get(fx.s, "membership", buf, strlen(members) - 1, &len),
			STORAGE_ENOSPC);
	CU_ASSERT_EQUAL(len, strlen(members));

	reopen();
	memset(buf, 0, sizeof(buf));
	OK(storage_meta_get(fx.s, "membership", buf, sizeof(buf), &len));
	CU_ASSERT_EQUAL(len, strlen(members));
	CU_ASSERT_EQUAL(memcmp(buf, members, len), 0);
	OK(storage_meta_get(fx.s, "empty", buf, sizeof(buf), &len));
	CU_ASSERT_EQUAL(len, 0);

	/* Overwrite with a shorter value. */
	OK(storage_meta_put(fx.s, "membership", "1=x", 3, true));
	reopen();
	OK(storage_meta_get(fx.s, "membership", buf, sizeof(buf), &len));
	CU_ASSERT_EQUAL(len, 3);
	CU_ASSERT_EQUAL(memcmp(buf, "1=x", 3), 0);

	/* Reserved and oversize keys. */
	CU_ASSERT_EQUAL(storage_meta_put(fx.s, "hardstate", "x", 1, true), STORAGE_EINVAL);
	CU_ASSERT(strlen(storage_errmsg(fx.s)) > 0);
	CU_ASSERT_EQUAL(storage_meta_put(fx.s, "raft.term", "x", 1, true), STORAGE_EINVAL);
	CU_ASSERT_EQUAL(storage_meta_put(fx.s, "raft.", "x", 1, true), STORAGE_EINVAL);
	char longkey[STORAGE_META_KEY_MAX + 10];
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	CU_ASSERT_EQUAL(storage_meta_put(fx.s, longkey, "x", 1, true), STORAGE_EINVAL);
	char okkey[STORAGE_META_KEY_MAX];
	memset(okkey, 'k', sizeof(okkey) - 1);
	okkey[sizeof(okkey) - 1] = '\0';
	OK(storage_meta_put(fx.s, okkey, "v", 1, true));
	/* "raft" alone and "hardstate2" are ordinary names. */
	OK(storage_meta_put(fx.s, "raft", "r", 1, true));
	OK(storage_meta_put(fx.s, "hardstate2", "h", 1, true));

	/* Meta never disturbs the hard state, and the hard state never shows up as meta. */
	OK(load());
	check_hs(0, 0, 0);
	struct storage_hard_state hs = {.term = 5, .vote = 1, .commit = 0};
	OK(write_batch(false, 0, 1, 0, 0, &hs, true));
	OK(storage_meta_get(fx.s, "hardstate2", buf, sizeof(buf), &len));
	CU_ASSERT_EQUAL(len, 1);
	reopen();
	OK(load());
	check_hs(5, 1, 0);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

static void test_snapshot_multi_chunk(void)
{
	open_store();
	const uint64_t size = 3 * MIB + MIB / 2;
	OK(write_snapshot(1000, 7, "1,2,3", size, 0xfeed));
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 1000);
	CU_ASSERT_EQUAL(fx.snap.term, 7);
	CU_ASSERT_EQUAL(fx.snap.size, size);
	CU_ASSERT_EQUAL_FATAL(fx.snap.conf_len, 5);
	CU_ASSERT_EQUAL(memcmp(fx.snap.conf, "1,2,3", 5), 0);
	CU_ASSERT_NOT_EQUAL(fx.snap.id, 0);
	CU_ASSERT_EQUAL(fx.got.n, 0);
	check_snapshot(1000, 7, "1,2,3", size, 0xfeed);
	/* Two readers at once, and a reader opened with info == NULL. */
	struct storage_snapshot_reader *r1 = NULL, *r2 = NULL;
	OK(storage_snapshot_open(fx.s, NULL, &r1));
	OK(storage_snapshot_open(fx.s, NULL, &r2));
	unsigned char a[100], b[100];
	size_t na = 0, nb = 0;
	OK(storage_snapshot_read(r1, a, sizeof(a), &na));
	OK(storage_snapshot_read(r2, b, sizeof(b), &nb));
	CU_ASSERT(na > 0 && na == nb && memcmp(a, b, na) == 0);
	storage_snapshot_close(r1);
	storage_snapshot_close(r2);
}

/* Sizes on and around the chunk boundary. */
static void test_snapshot_chunk_boundaries(void)
{
	open_store();
	const uint64_t sizes[] = {1, STORAGE_SNAPSHOT_CHUNK - 1, STORAGE_SNAPSHOT_CHUNK,
				  STORAGE_SNAPSHOT_CHUNK + 1, 2 * STORAGE_SNAPSHOT_CHUNK};
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		OK(write_snapshot(10 + i, 1, NULL, sizes[i], 100 + i));
		check_snapshot(10 + i, 1, NULL, sizes[i], 100 + i);
	}
	reopen();
	check_snapshot(14, 1, NULL, 2 * STORAGE_SNAPSHOT_CHUNK, 104);
}

static void test_snapshot_newer_replaces_older(void)
{
	open_store();
	OK(write_snapshot(10, 1, "a", 2 * MIB + 5, 11));
	OK(write_snapshot(20, 2, "bb", MIB + 3, 22));
	check_snapshot(20, 2, "bb", MIB + 3, 22);
	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 20);
	check_snapshot(20, 2, "bb", MIB + 3, 22);
	close_store();
	/* The older one is gone from disk, data and metadata. */
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
	CU_ASSERT_EQUAL(count_snapshot_ids("snapmeta.db"), 1);
}

static void test_snapshot_abort(void)
{
	open_store();
	OK(write_snapshot(10, 1, "a", MIB + MIB / 2, 31));
	struct storage_snapshot_writer *w = NULL;
	OK(storage_snapshot_begin(fx.s, 20, 2, "b", 1, &w));
	unsigned char *buf = malloc(MIB);
	CU_ASSERT_FATAL(buf != NULL);
	for (int i = 0; i < 3; i++) {
		tl_stream_fill(32, (uint64_t)i * MIB, buf, MIB);
		OK(storage_snapshot_write(w, buf, MIB - 7));
	}
	free(buf);
	storage_snapshot_abort(w);
	check_snapshot(10, 1, "a", MIB + MIB / 2, 31);
	reopen();
	check_snapshot(10, 1, "a", MIB + MIB / 2, 31);
	close_store();
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
	CU_ASSERT_EQUAL(count_snapshot_ids("snapmeta.db"), 1);
	/* A later snapshot still works. */
	open_store();
	OK(write_snapshot(30, 3, "c", 100, 33));
	reopen();
	check_snapshot(30, 3, "c", 100, 33);
}

/* A writer that dies before committing: its process exits without commit (or close); the
 * next open removes what it wrote and the previous snapshot stays the newest. */
static void test_snapshot_uncommitted_at_exit(void)
{
	open_store();
	append(1, 15, 1);
	OK(write_snapshot(10, 1, "a", MIB + 17, 41));
	close_store();

	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct storage *s = NULL;
		char msg[512];
		if (storage_open(fx.dir, &fx.opt, &s, msg, sizeof(msg)) != 0) {
			fprintf(stderr, "child: storage_open: %s\n", msg);
			_exit(2);
		}
		struct storage_snapshot_writer *w = NULL;
		if (storage_snapshot_begin(s, 20, 2, "b", 1, &w) != 0)
			_exit(3);
		unsigned char *buf = malloc(MIB);
		if (buf == NULL)
			_exit(4);
		/* Two full chunks and a part of a third. */
		for (int i = 0; i < 5; i++) {
			tl_stream_fill(42, (uint64_t)i * MIB / 2, buf, MIB / 2);
			if (storage_snapshot_write(w, buf, MIB / 2) != 0) {
				fprintf(stderr, "child: write: %s\n", storage_errmsg(s));
				_exit(5);
			}
		}
		_exit(0); /* no commit, no close */
	}
	int status = 0;
	CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	char ws[64];
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fprintf(stderr, "\nsnapshot writer child %s\n",
			tl_wait_str(status, ws, sizeof(ws)));
	CU_ASSERT_FATAL(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	open_store();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 10);
	check_entries(11, 15); /* load starts after the snapshot */
	check_snapshot(10, 1, "a", MIB + 17, 41);
	close_store();
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
	CU_ASSERT_EQUAL(count_snapshot_ids("snapmeta.db"), 1);
	/* A new snapshot after the cleanup is complete and correct. */
	open_store();
	OK(write_snapshot(30, 3, "c", 2 * MIB + 1, 43));
	reopen();
	check_snapshot(30, 3, "c", 2 * MIB + 1, 43);
	close_store();
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
}

/* Two writers at once (a snapshot received from the leader while the snapshotter stores one
 * of its own): whichever commits last is the newest, whatever their ids, and the other is
 * gone, data and metadata; one still being written is left alone by the other's commit. */
static void fill_writer(struct storage_snapshot_writer *w, uint64_t size, uint64_t seed)
{
	unsigned char *buf = malloc(MIB);
	CU_ASSERT_FATAL(buf != NULL);
	for (uint64_t off = 0; off < size; off += MIB) {
		size_t n = size - off < MIB ? (size_t)(size - off) : MIB;
		tl_stream_fill(seed, off, buf, n);
		OK(storage_snapshot_write(w, buf, n));
	}
	free(buf);
}

static void test_snapshot_two_writers_last_commit_wins(void)
{
	open_store();
	for (int older_first = 0; older_first < 2; older_first++) {
		struct storage_snapshot_writer *a = NULL, *b = NULL;
		uint64_t base = 100 * (uint64_t)(older_first + 1);
		OK(storage_snapshot_begin(fx.s, base, 1, "a", 1, &a));
		OK(storage_snapshot_begin(fx.s, base + 50, 1, "b", 1, &b));
		fill_writer(a, MIB + 3, base);
		fill_writer(b, 2 * MIB + 5, base + 1);
		/* First round: the writer begun first commits last; second: the other way. */
		struct storage_snapshot_writer *first = older_first ? a : b;
		struct storage_snapshot_writer *last = older_first ? b : a;
		OK(storage_snapshot_commit(first));
		CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 2); /* `last` still writing */
		OK(storage_snapshot_commit(last));
		if (older_first)
			check_snapshot(base + 50, 1, "b", 2 * MIB + 5, base + 1);
		else
			check_snapshot(base, 1, "a", MIB + 3, base);
		CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
	}
	reopen();
	check_snapshot(250, 1, "b", 2 * MIB + 5, 201);
	close_store();
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
	CU_ASSERT_EQUAL(count_snapshot_ids("snapmeta.db"), 1);
}

/* All of a finished writer's data, read back before it is published. */
static void check_reread(struct storage_snapshot_writer *w, uint64_t size, uint64_t seed)
{
	struct storage_snapshot_reader *r = NULL;
	OK(storage_snapshot_reread(w, &r));
	unsigned char *buf = malloc(MIB), *want = malloc(MIB);
	CU_ASSERT_FATAL(buf != NULL && want != NULL);
	uint64_t off = 0;
	size_t n = 0;
	while (storage_snapshot_read(r, buf, 300001, &n) == 0 && n > 0) {
		tl_stream_fill(seed, off, want, n);
		CU_ASSERT_EQUAL_FATAL(memcmp(buf, want, n), 0);
		off += n;
	}
	CU_ASSERT_EQUAL(off, size);
	storage_snapshot_close(r);
	free(buf);
	free(want);
}

/* A received snapshot is finished and checked (read back) before raft decides to install
 * it: it is not the newest until committed, and an abort leaves the old one in place. */
static void test_snapshot_finish_reread_then_commit_or_abort(void)
{
	open_store();
	OK(write_snapshot(10, 1, "a", MIB / 2, 61));
	for (int commit = 0; commit < 2; commit++) {
		struct storage_snapshot_writer *w = NULL;
		OK(storage_snapshot_begin(fx.s, 20 + (uint64_t)commit, 2, "b", 1, &w));
		fill_writer(w, 2 * MIB + 9, 62);
		CU_ASSERT_EQUAL(storage_snapshot_reread(w, &(struct storage_snapshot_reader *){0}),
				STORAGE_EINVAL); /* not finished yet */
		OK(storage_snapshot_finish(w));
		check_reread(w, 2 * MIB + 9, 62);
		check_snapshot(10, 1, "a", MIB / 2, 61); /* not published */
		if (commit) {
			OK(storage_snapshot_commit(w));
			check_snapshot(21, 2, "b", 2 * MIB + 9, 62);
		} else {
			storage_snapshot_abort(w);
			check_snapshot(10, 1, "a", MIB / 2, 61);
			CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
		}
	}
	reopen();
	check_snapshot(21, 2, "b", 2 * MIB + 9, 62);
	close_store();
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
}

/* A snapshot as 0.6 stored it (format 1: its data in snap.db, one record per chunk) is
 * still read after an upgrade, and the first new snapshot removes it, chunks included. */
static void put_record(DB *db, DB_TXN *t, const unsigned char *k, u_int32_t klen, const void *v,
		       u_int32_t vlen)
{
	DBT kd = {.data = (void *)k, .size = klen}, vd = {.data = (void *)v, .size = vlen};
	CU_ASSERT_FATAL(db->put(db, t, &kd, &vd, 0) == 0);
}

static void test_snapshot_format1_read_then_replaced(void)
{
	open_store();
	append(1, 40, 1);
	const uint64_t size = 2 * STORAGE_SNAPSHOT_CHUNK + 321, id = 7;
	unsigned char *buf = malloc(STORAGE_SNAPSHOT_CHUNK);
	CU_ASSERT_FATAL(buf != NULL);
	DB_TXN *t = NULL;
	CU_ASSERT_FATAL(fx.s->env->txn_begin(fx.s->env, NULL, &t, 0) == 0);
	uint64_t chunks = 0;
	for (uint64_t off = 0; off < size; off += STORAGE_SNAPSHOT_CHUNK, chunks++) {
		size_t n = size - off < STORAGE_SNAPSHOT_CHUNK ? (size_t)(size - off)
							       : STORAGE_SNAPSHOT_CHUNK;
		tl_stream_fill(51, off, buf, n);
		unsigned char k[16];
		put_be64(k, id);
		put_be64(k + 8, chunks);
		put_record(fx.s->snap, t, k, 16, buf, (u_int32_t)n);
	}
	/* format | complete | index | term | size | chunks | conf_len | conf */
	unsigned char meta[38 + 2], k[8];
	meta[0] = 1;
	meta[1] = 1;
	put_be64(meta + 2, 30);
	put_be64(meta + 10, 1);
	put_be64(meta + 18, size);
	put_be64(meta + 26, chunks);
	put_be32(meta + 34, 2);
	memcpy(meta + 38, "c1", 2);
	put_be64(k, id);
	put_record(fx.s->snapmeta, t, k, 8, meta, sizeof(meta));
	CU_ASSERT_FATAL(t->commit(t, DB_TXN_SYNC) == 0);
	free(buf);

	reopen();
	OK(load());
	CU_ASSERT_EQUAL(fx.snap.index, 30);
	check_entries(31, 40);
	check_snapshot(30, 1, "c1", size, 51);
	OK(write_snapshot(35, 1, "c2", MIB + 1, 52));
	check_snapshot(35, 1, "c2", MIB + 1, 52);
	close_store();
	CU_ASSERT_EQUAL(count_snapshot_ids("snap.db"), 0);
	CU_ASSERT_EQUAL(count_snapshot_ids("snapmeta.db"), 1);
	CU_ASSERT_EQUAL(tl_count_prefix(fx.dir, "snap-"), 1);
}

/* ---- the directory lock -------------------------------------------------------------------- */

/* storage_open on fx.dir from a child process; returns its code, its message in msg. */
static int open_in_child(char *msg, size_t cap)
{
	int p[2];
	CU_ASSERT_FATAL(pipe(p) == 0);
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		struct storage *s = NULL;
		char m[512] = "";
		int rc = storage_open(fx.dir, &fx.opt, &s, m, sizeof(m));
		if (rc == 0)
			storage_close(s);
		if (tl_write_all(p[1], &rc, sizeof(rc)) != 0 ||
		    tl_write_all(p[1], m, sizeof(m)) != 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	int rc = 12345;
	char m[512] = "";
	ssize_t n1 = read(p[0], &rc, sizeof(rc));
	size_t got = 0;
	while (got < sizeof(m)) {
		ssize_t r = read(p[0], m + got, sizeof(m) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	m[sizeof(m) - 1] = '\0';
	close(p[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	CU_ASSERT_EQUAL(n1, (ssize_t)sizeof(rc));
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(msg, cap, "%s", m);
	return rc;
}

static void test_lock(void)
{
	open_store();
	append(1, 5, 1);
	char msg[512];
	int rc = open_in_child(msg, sizeof(msg));
	CU_ASSERT_EQUAL(rc, STORAGE_ELOCKED);
	if (strstr(msg, fx.dir) == NULL)
		fprintf(stderr, "\nELOCKED message does not name %s: \"%s\"\n", fx.dir, msg);
	CU_ASSERT(strstr(msg, fx.dir) != NULL);
	/* The holder is undisturbed. */
	append(6, 5, 1);
	OK(load());
	check_entries(1, 10);
	/* Released by close: another process can open it now. */
	close_store();
	rc = open_in_child(msg, sizeof(msg));
	if (rc != 0)
		fprintf(stderr, "\nopen after close in a child: %d: %s\n", rc, msg);
	CU_ASSERT_EQUAL(rc, 0);
	open_store();
	OK(load());
	check_entries(1, 10);
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static void test_checkpoint_removes_logs(void)
{
	open_store();
	OK(storage_maybe_checkpoint(fx.s, true));
	int before = tl_count_prefix(fx.dir, "log.");
	/* ~40 MiB of entries: 4 KiB payloads, 256 per batch. */
	enum { PAYLOAD = 4096, PER_BATCH = 256, BATCHES = 40 };
	unsigned char *data = malloc(PAYLOAD);
	struct storage_entry *e = calloc(PER_BATCH, sizeof(*e));
	CU_ASSERT_FATAL(data != NULL && e != NULL);
	tl_stream_fill(5, 0, data, PAYLOAD);
	uint64_t idx = 1;
	for (int b = 0; b < BATCHES; b++) {
		for (int i = 0; i < PER_BATCH; i++)
			e[i] = (struct storage_entry){
				.index = idx++, .term = 1, .type = 0, .data = data, .len = PAYLOAD};
		struct storage_batch batch = {
			.entries = e, .n_entries = PER_BATCH, .sync = b == BATCHES - 1};
		OK(storage_write(fx.s, &batch));
	}
	int peak = tl_count_prefix(fx.dir, "log.");
	OK(storage_maybe_checkpoint(fx.s, true));
	OK(storage_maybe_checkpoint(fx.s, true));
	int after = tl_count_prefix(fx.dir, "log.");
	fprintf(stderr, "\n  log.* files: %d before, %d after 40 MiB, %d after 2 checkpoints ",
		before, peak, after);
	CU_ASSERT(before >= 1);
	CU_ASSERT(peak >= 3);
	CU_ASSERT(after < peak);
	CU_ASSERT(after <= 2);
	/* Right after a checkpoint, the non-forced one has nothing to do (and succeeds). */
	OK(storage_maybe_checkpoint(fx.s, false));

	/* The data is all there. */
	reopen();
	OK(load());
	CU_ASSERT_EQUAL_FATAL(fx.got.n, (size_t)BATCHES * PER_BATCH);
	CU_ASSERT_EQUAL(fx.got.v[fx.got.n - 1].index, (uint64_t)BATCHES * PER_BATCH);
	CU_ASSERT_EQUAL(fx.got.v[fx.got.n - 1].len, PAYLOAD);
	CU_ASSERT_EQUAL(memcmp(fx.got.v[fx.got.n - 1].data, data, PAYLOAD), 0);
	free(data);
	free(e);
}

/* checkpoint_bytes is honoured without force: after that much log it checkpoints, and the
 * log files stop accumulating. */
static void test_checkpoint_threshold(void)
{
	fx.opt.checkpoint_bytes = 4 * MIB;
	open_store();
	enum { PAYLOAD = 4096, PER_BATCH = 64 };
	unsigned char *data = malloc(PAYLOAD);
	struct storage_entry *e = calloc(PER_BATCH, sizeof(*e));
	CU_ASSERT_FATAL(data != NULL && e != NULL);
	tl_stream_fill(6, 0, data, PAYLOAD);
	uint64_t idx = 1;
	int most = 0;
	for (int b = 0; b < 200; b++) { /* 50 MiB */
		for (int i = 0; i < PER_BATCH; i++)
			e[i] = (struct storage_entry){
				.index = idx++, .term = 1, .type = 0, .data = data, .len = PAYLOAD};
		struct storage_batch batch = {.entries = e, .n_entries = PER_BATCH};
		OK(storage_write(fx.s, &batch));
		OK(storage_maybe_checkpoint(fx.s, false));
		int n = tl_count_prefix(fx.dir, "log.");
		if (n > most)
			most = n;
	}
	fprintf(stderr, "\n  at most %d log.* files while writing 50 MiB ", most);
	CU_ASSERT(most <= 3);
	free(data);
	free(e);
}

/* ---- corruption ---------------------------------------------------------------------------- */

static void test_corrupt_log(void)
{
	open_store();
	for (uint64_t i = 1; i <= 3000; i += 100)
		OK(write_batch(false, 0, i, 100, 1, NULL, false));
	close_store();
	flip_middle_byte("log.db");

	char msg[512] = "";
	int rc = storage_open(fx.dir, &fx.opt, &fx.s, msg, sizeof(msg));
	if (rc == 0) {
		rc = load();
		snprintf(msg, sizeof(msg), "%s", storage_errmsg(fx.s));
	}
	fprintf(stderr, "\n  -> %d: %s ", rc, msg);
	CU_ASSERT(rc == STORAGE_ECORRUPT || rc == STORAGE_EIO);
	CU_ASSERT(strstr(msg, "log.db") != NULL);
	/* Whatever was delivered before the failure was right. */
	for (size_t i = 0; i < fx.got.n; i++)
		CU_ASSERT_FATAL(tl_entry_matches(&fx.got.v[i], i + 1, 1));
}

static void test_corrupt_snapshot(void)
{
	open_store();
	const uint64_t size = 3 * MIB + MIB / 2;
	OK(write_snapshot(500, 2, "conf", size, 77));
	close_store();
	char file[256];
	CU_ASSERT_FATAL(tl_find_prefix(fx.dir, "snap-", file, sizeof(file)) == 1);
	flip_middle_byte(file);

	open_store();
	struct storage_snapshot_info info;
	memset(&info, 0, sizeof(info));
	struct storage_snapshot_reader *r = NULL;
	int rc = storage_snapshot_open(fx.s, &info, &r);
	unsigned char *buf = malloc(MIB), *want = malloc(MIB);
	CU_ASSERT_FATAL(buf != NULL && want != NULL);
	uint64_t off = 0;
	bool same = true;
	while (rc == 0) {
		size_t n = 0;
		rc = storage_snapshot_read(r, buf, 300007, &n);
		if (rc != 0 || n == 0)
			break;
		tl_stream_fill(77, off, want, n);
		same = same && memcmp(buf, want, n) == 0;
		off += n;
	}
	const char *msg = storage_errmsg(fx.s);
	fprintf(stderr, "\n  -> %d after %" PRIu64 " bytes: %s ", rc, off, msg);
	CU_ASSERT(rc == STORAGE_ECORRUPT || rc == STORAGE_EIO);
	CU_ASSERT(strstr(msg, file) != NULL && strstr(msg, "checksum") != NULL);
	CU_ASSERT(same); /* nothing wrong was handed out before the failure */
	CU_ASSERT(off < size);
	storage_snapshot_info_free(&info);
	storage_snapshot_close(r);
	free(buf);
	free(want);
}

/* ---- runner -------------------------------------------------------------------------------- */

static CU_TestInfo basic_tests[] = {
	{"open empty dir: nothing stored", test_open_empty},
	{"open creates a missing data dir, not its parent", test_open_missing_dir},
	{"append batches, reopen, load", test_append_reopen},
	{"empty, overflow and odd payloads", test_append_odd_payloads},
	{"load stops on a callback's non-zero return", test_load_callback_stops},
	{"hard state round trip", test_hard_state},
	{"truncate then append in one batch", test_truncate_then_append},
	{"clear_log after a snapshot install", test_clear_log},
	{"non-contiguous batch: EINVAL, nothing written", test_non_contiguous_rejected},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo compact_tests[] = {
	{"compact 0", test_compact_zero},
	{"compact in the middle", test_compact_middle},
	{"compact everything", test_compact_everything},
	{"compact beyond the last index", test_compact_beyond_last},
	{"compact a 20000-entry prefix", test_compact_long_prefix},
	{"compact in steps, appends between them", test_compact_in_steps_between_appends},
	{"compacted without a snapshot: ECORRUPT", test_compact_without_snapshot_is_corrupt},
	{"entries kept below the snapshot", test_snapshot_with_trailing_entries},
	{"install interrupted before the log was cleared",
	 test_install_interrupted_before_log_clear},
	{"interrupted install: log at the snapshot, or short", test_install_interrupted_log_edges},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo meta_tests[] = {
	{"put/get, ENOENT, ENOSPC, reserved keys", test_meta},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo snapshot_tests[] = {
	{"3.5 MiB in odd pieces, reopen, read back", test_snapshot_multi_chunk},
	{"sizes around the chunk size", test_snapshot_chunk_boundaries},
	{"a newer snapshot replaces the older", test_snapshot_newer_replaces_older},
	{"abort keeps the previous snapshot", test_snapshot_abort},
	{"writer exits before commit: removed at open", test_snapshot_uncommitted_at_exit},
	{"two writers at once: the last commit wins", test_snapshot_two_writers_last_commit_wins},
	{"finished, read back, then committed or aborted",
	 test_snapshot_finish_reread_then_commit_or_abort},
	{"a snapshot of format 1 (snap.db) is read, then replaced",
	 test_snapshot_format1_read_then_replaced},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo process_tests[] = {
	{"second process: ELOCKED naming the dir", test_lock},
	{"forced checkpoints remove old log files", test_checkpoint_removes_logs},
	{"checkpoint_bytes bounds the log files", test_checkpoint_threshold},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo corruption_tests[] = {
	{"flipped byte in log.db: load fails naming it", test_corrupt_log},
	{"flipped byte in a snapshot file: read fails naming it", test_corrupt_snapshot},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"basic", setup, NULL, test_setup, test_teardown, basic_tests},
		{"compact", setup, NULL, test_setup, test_teardown, compact_tests},
		{"meta", setup, NULL, test_setup, test_teardown, meta_tests},
		{"snapshot", setup, NULL, test_setup, test_teardown, snapshot_tests},
		{"lock and checkpoint", setup, NULL, test_setup, test_teardown, process_tests},
		{"corruption", setup, NULL, test_setup, test_teardown, corruption_tests},
		CU_SUITE_INFO_NULL,
	};
	/* RAFTKV_STORAGE_SUITE=<name> runs only the suites whose name contains it. */
	const char *only = getenv("RAFTKV_STORAGE_SUITE");
	if (only != NULL && only[0] != '\0') {
		size_t j = 0;
		for (size_t i = 0; suites[i].pName != NULL; i++)
			if (strstr(suites[i].pName, only) != NULL)
				suites[j++] = suites[i];
		suites[j] = (CU_SuiteInfo)CU_SUITE_INFO_NULL;
	}
	return cunit_main(suites);
}
