/* The store: environment, directory lock, log, hard state, metadata, load, checkpoints. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/failpoint.h"
#include "storage_impl.h"

#define HARDSTATE_KEY "hardstate"
#define HARDSTATE_LEN 24
#define LOG_HEADER    9     /* term (8) | type (1) */
#define COMPACT_BATCH 10000 /* entries deleted per transaction by storage_compact */
#define RETRY_MAX     200   /* attempts of a transaction chosen as a deadlock victim */
#define DB_FILE_MODE  0600

void storage_options_default(struct storage_options *o)
{
	o->cache_bytes = 16u << 20;
	o->checkpoint_bytes = 32u << 20;
}

/* ------------------------------------------------------------------------------------------
 * Errors
 * ---------------------------------------------------------------------------------------- */

int storage_failf(struct storage *s, int rv, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->errmsg, sizeof(s->errmsg), fmt, ap);
	va_end(ap);
	return rv;
}

static void mark_broken(struct storage *s, int rv)
{
	int none = 0;
	atomic_compare_exchange_strong(&s->broken, &none, rv);
}

int storage_fail(struct storage *s, const char *file, const char *what, int ret)
{
	/* BDB reports a page whose checksum does not match through errcall and then fails the
	 * call (often with DB_RUNRECOVERY): the store is damaged, not merely unavailable. */
	bool corrupt = ret == DB_RUNRECOVERY || ret == DB_VERIFY_BAD ||
		       strstr(s->bdb_err, "checksum") != NULL;
	int rv = corrupt ? STORAGE_ECORRUPT : STORAGE_EIO;
	if (ret == DB_LOCK_DEADLOCK || ret == DB_LOCK_NOTGRANTED)
		rv = STORAGE_ERETRY;
	if (ret == ENOSPC)
		rv = STORAGE_EFULL;
	if (ret == ENOSPC || ret == EIO)
		mark_broken(s, rv);
	storage_failf(s, rv, "storage: %s: %s: %s: %s%s%s", s->dir, file, what, db_strerror(ret),
		      s->bdb_err[0] ? " (" : "", s->bdb_err);
	if (s->bdb_err[0])
		strncat(s->errmsg, ")", sizeof(s->errmsg) - strlen(s->errmsg) - 1);
	s->bdb_err[0] = '\0';
	return rv;
}

/* BDB explains a failure in one or more messages before returning the error code (a
 * checksum mismatch, then "fatal region error"): keep them all, up to the buffer's size. */
static void on_bdb_error(const DB_ENV *env, const char *prefix, const char *msg)
{
	(void)prefix;
	struct storage *s = env->app_private;
	/* A failed write to a log or database file is reported here, inside the failing call
	 * and before any other thread's commit can wrongly count on it. */
	if (strstr(msg, "No space left on device") != NULL)
		mark_broken(s, STORAGE_EFULL);
	else if (strstr(msg, "Input/output error") != NULL)
		mark_broken(s, STORAGE_EIO);
	size_t used = strlen(s->bdb_err);
	if (used + 3 < sizeof(s->bdb_err))
		snprintf(s->bdb_err + used, sizeof(s->bdb_err) - used, "%s%s", used ? "; " : "",
			 msg);
}

const char *storage_errmsg(const struct storage *s)
{
	return s->errmsg;
}

int storage_broken(const struct storage *s)
{
	return atomic_load(&((struct storage *)s)->broken);
}

static int refuse_broken(struct storage *s, const char *when)
{
	int rv = atomic_load(&s->broken);
	return storage_failf(s, rv,
			     "storage: %s: an earlier write failed (%s), so %s; restart the member "
			     "once the cause is fixed (what was acknowledged is on disk)",
			     s->dir, rv == STORAGE_EFULL ? "no space left on device" : "I/O error",
			     when);
}

int storage_txn_begin(struct storage *s, DB_TXN **txn)
{
	if (atomic_load(&s->broken) != 0)
		return refuse_broken(s, "nothing more is written");
	int ret = s->env->txn_begin(s->env, NULL, txn, 0);
	return ret == 0 ? 0 : storage_fail(s, "environment", "DB_ENV->txn_begin", ret);
}

bool storage_retry(struct storage *s, int *rv, int *attempt)
{
	if (*rv != STORAGE_ERETRY)
		return false;
	if (++*attempt >= RETRY_MAX) {
		size_t used = strlen(s->errmsg);
		snprintf(s->errmsg + used, sizeof(s->errmsg) - used,
			 " (still a deadlock victim after %d attempts)", *attempt);
		*rv = STORAGE_EIO;
		return false;
	}
	/* Let the transaction that won the cycle finish; back off a little more each time. */
	struct timespec ts = {0, (long)(*attempt < 10 ? *attempt : 10) * 1000000L};
	nanosleep(&ts, NULL);
	return true;
}

int storage_txn_commit(struct storage *s, DB_TXN *txn, bool sync)
{
	/* With sync the commit returns only once its log records are on disk (fsync); the
	 * flush covers every earlier transaction's records too. */
	if (atomic_load(&s->broken) != 0) {
		txn->abort(txn);
		return refuse_broken(s, "nothing more is written");
	}
	int ret = txn->commit(txn, sync ? DB_TXN_SYNC : DB_TXN_NOSYNC);
	if (ret != 0)
		return storage_fail(s, "environment", "DB_TXN->commit", ret);
	/* A write failed somewhere while this commit ran: its records may not be on disk. */
	if (atomic_load(&s->broken) != 0)
		return refuse_broken(s, "this transaction may not be durable");
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Open and close
 * ---------------------------------------------------------------------------------------- */

/* An exclusive, non-blocking lock on <dir>/LOCK, holding our pid for the error message of
 * whoever comes second. BDB's DB_RECOVER must never run beside another process. */
static int lock_dir(struct storage *s)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/LOCK", s->dir);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, DB_FILE_MODE);
	if (s->lock_fd < 0)
		return storage_failf(s, STORAGE_EIO, "storage: %s: open: %s", path,
				     strerror(errno));
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		int err = errno;
		char pid[32] = "";
		ssize_t n = pread(s->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(s->lock_fd);
		s->lock_fd = -1;
		if (err == EWOULDBLOCK)
			return storage_failf(s, STORAGE_ELOCKED,
					     "storage: data directory %s is in use by another "
					     "process (pid %s)",
					     s->dir, pid[0] ? pid : "unknown");
		return storage_failf(s, STORAGE_EIO, "storage: %s: flock: %s", path, strerror(err));
	}
	char line[32];
	int len = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
	if (ftruncate(s->lock_fd, 0) != 0 || pwrite(s->lock_fd, line, (size_t)len, 0) != len)
		return storage_failf(s, STORAGE_EIO, "storage: %s: write: %s", path,
				     strerror(errno));
	return 0;
}

/* dirty_reads: readers may ask for uncommitted data (DB_READ_UNCOMMITTED), so they never
 * wait behind a writer's locks. For the snapshot databases: a complete snapshot's chunks never
 * change, they are only deleted, so such a reader sees the chunk or its deletion. */
static int open_db(struct storage *s, DB **db, const char *file, bool dirty_reads)
{
	int ret = db_create(db, s->env, 0);
	if (ret != 0)
		return storage_fail(s, file, "db_create", ret);
	/* Page checksums: a damaged page fails the read that touches it. A fixed 4 KiB page:
	 * BDB would otherwise take the file system's block size, and with 1 KiB blocks the
	 * cache needs so many buffers that recovery runs out of mutexes after a few crashes. */
	ret = (*db)->set_flags(*db, DB_CHKSUM);
	if (ret == 0)
		ret = (*db)->set_pagesize(*db, 4096);
	if (ret == 0)
		ret = (*db)->open(*db, NULL, file, NULL, DB_BTREE,
				  DB_CREATE | DB_THREAD | DB_AUTO_COMMIT |
					  (dirty_reads ? DB_READ_UNCOMMITTED : 0),
				  DB_FILE_MODE);
	if (ret != 0) {
		int rv = storage_fail(s, file, "DB->open", ret);
		(*db)->close(*db, 0);
		*db = NULL;
		return rv;
	}
	return 0;
}

static int edge_key_once(struct storage *s, DB *db, const char *file, uint32_t how, uint64_t *key)
{
	DBC *c;
	int ret = db->cursor(db, NULL, &c, 0);
	if (ret != 0)
		return storage_fail(s, file, "DB->cursor", ret);
	unsigned char kb[8];
	DBT k = {.data = kb, .ulen = sizeof(kb), .flags = DB_DBT_USERMEM};
	DBT d = {.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM}; /* key only */
	ret = c->get(c, &k, &d, how);
	c->close(c);
	if (ret == DB_NOTFOUND) {
		*key = 0;
		return 0;
	}
	if (ret != 0)
		return storage_fail(s, file, "DBC->get", ret);
	if (k.size != 8)
		return storage_failf(s, STORAGE_ECORRUPT, "storage: %s: %s: key of %u bytes",
				     s->dir, file, k.size);
	*key = get_be64(kb);
	return 0;
}

int storage_edge_key(struct storage *s, DB *db, const char *file, uint32_t how, uint64_t *key)
{
	int rv, attempt = 0;
	do
		rv = edge_key_once(s, db, file, how, key);
	while (storage_retry(s, &rv, &attempt));
	return rv;
}

static int open_env(struct storage *s)
{
	int ret = db_env_create(&s->env, 0);
	if (ret != 0)
		return storage_fail(s, "environment", "db_env_create", ret);
	s->env->app_private = s;
	s->env->set_errcall(s->env, on_bdb_error);
	size_t cache = s->opt.cache_bytes;
	ret = s->env->set_cachesize(s->env, (u_int32_t)(cache >> 30),
				    (u_int32_t)(cache & ((1u << 30) - 1)), 1);
	if (ret == 0)
		ret = s->env->log_set_config(s->env, DB_LOG_AUTO_REMOVE, 1);
	/* Several threads run transactions (the writer, the snapshotter, the raft loop when it
	 * installs a snapshot): run the deadlock detector on every conflict; the youngest
	 * transaction of a cycle is refused and retried (storage_retry). */
	if (ret == 0)
		ret = s->env->set_lk_detect(s->env, DB_LOCK_YOUNGEST);
	if (ret == 0)
		ret = s->env->open(s->env, s->dir,
				   DB_CREATE | DB_INIT_TXN | DB_INIT_LOCK | DB_INIT_LOG |
					   DB_INIT_MPOOL | DB_RECOVER | DB_THREAD | DB_PRIVATE,
				   DB_FILE_MODE);
	if (ret != 0)
		return storage_fail(s, "environment", "DB_ENV->open (recovery)", ret);
	return 0;
}

/*
 * A snapshot received from the leader replaces the whole log, but the node makes it durable
 * first and clears the log in a later transaction. A crash in between leaves entries at or
 * below the snapshot and nothing after it: storage_load skips them, and the core appends
 * right after the snapshot, which would look like a gap after them. Finish the clear here.
 * (A log that goes on past the snapshot is the normal case: entries kept behind an
 * automatic snapshot.)
 */
static int delete_from(struct storage *s, DB_TXN *txn, uint64_t from);

static int drop_log_below_snapshot(struct storage *s)
{
	if (s->last_index == 0)
		return 0;
	struct storage_snapshot_info si;
	int rv = storage_snapshot_newest(s, NULL, &si);
	if (rv == STORAGE_ENOENT)
		return 0;
	if (rv != 0)
		return rv;
	uint64_t snap = si.index;
	storage_snapshot_info_free(&si);
	if (s->last_index > snap)
		return 0;
	DB_TXN *txn;
	rv = storage_txn_begin(s, &txn);
	if (rv != 0)
		return rv;
	rv = delete_from(s, txn, 0);
	if (rv != 0) {
		txn->abort(txn);
		return rv;
	}
	/* Unsynced: should the entries come back after a crash, the next open drops them
	 * again; the next synced commit flushes this one first. */
	rv = storage_txn_commit(s, txn, false);
	if (rv == 0)
		s->first_index = s->last_index = 0;
	return rv;
}

int storage_open(const char *dir, const struct storage_options *opt, struct storage **out,
		 char *errmsg, size_t errmsg_len)
{
	struct storage *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return STORAGE_EIO;
	s->lock_fd = -1;
	if (opt != NULL)
		s->opt = *opt;
	else
		storage_options_default(&s->opt);
	int rv;
	if (strlen(dir) >= sizeof(s->dir)) {
		rv = storage_failf(s, STORAGE_EINVAL, "storage: data directory path too long");
		goto err;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", dir);
	/* Like etcd, create the data directory (not its parents) when it is missing. */
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		rv = storage_failf(s, STORAGE_EIO, "storage: cannot create data directory %s: %s",
				   dir, strerror(errno));
		goto err;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		rv = storage_failf(s, STORAGE_EIO, "storage: data directory %s: %s", dir,
				   strerror(errno));
		goto err;
	}
	rv = lock_dir(s);
	if (rv != 0)
		goto err;
	rv = open_env(s);
	if (rv == 0)
		rv = open_db(s, &s->log, "log.db", false);
	if (rv == 0)
		rv = open_db(s, &s->meta, "meta.db", false);
	if (rv == 0)
		rv = open_db(s, &s->snap, "snap.db", true);
	if (rv == 0)
		rv = open_db(s, &s->snapmeta, "snapmeta.db", true);
	if (rv == 0)
		rv = storage_edge_key(s, s->log, "log.db", DB_FIRST, &s->first_index);
	if (rv == 0)
		rv = storage_edge_key(s, s->log, "log.db", DB_LAST, &s->last_index);
	if (rv == 0)
		rv = storage_snapshot_cleanup(s);
	if (rv == 0)
		rv = drop_log_below_snapshot(s);
	if (rv != 0)
		goto err;
	*out = s;
	return 0;
err:
	if (errmsg != NULL && errmsg_len > 0)
		snprintf(errmsg, errmsg_len, "%s", s->errmsg);
	storage_close(s);
	return rv;
}

void storage_close(struct storage *s)
{
	if (s == NULL)
		return;
	if (s->env != NULL && s->log != NULL)
		storage_maybe_checkpoint(s, true);
	/* After a panic (a checksum failure, say) BDB's close calls return at once without
	 * freeing anything unless told to ignore the panic. */
	if (s->env != NULL)
		s->env->set_flags(s->env, DB_NOPANIC, 1);
	DB **dbs[] = {&s->log, &s->meta, &s->snap, &s->snapmeta};
	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++)
		if (*dbs[i] != NULL)
			(*dbs[i])->close(*dbs[i], 0);
	if (s->env != NULL)
		s->env->close(s->env, 0);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s);
}

/* ------------------------------------------------------------------------------------------
 * Log and hard state
 * ---------------------------------------------------------------------------------------- */

/* Delete log entries with key >= from (0: all), inside txn. */
static int delete_from(struct storage *s, DB_TXN *txn, uint64_t from)
{
	DBC *c;
	int ret = s->log->cursor(s->log, txn, &c, 0);
	if (ret != 0)
		return storage_fail(s, "log.db", "DB->cursor", ret);
	unsigned char kb[8];
	put_be64(kb, from);
	DBT k = {.data = kb, .size = 8, .ulen = 8, .flags = DB_DBT_USERMEM};
	DBT d = {.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM};
	ret = c->get(c, &k, &d, DB_SET_RANGE);
	while (ret == 0) {
		ret = c->del(c, 0);
		if (ret == 0)
			ret = c->get(c, &k, &d, DB_NEXT);
	}
	c->close(c);
	if (ret != DB_NOTFOUND)
		return storage_fail(s, "log.db", "truncate", ret);
	return 0;
}

static int put_hard_state(struct storage *s, DB_TXN *txn, const struct storage_hard_state *hs)
{
	unsigned char v[HARDSTATE_LEN];
	put_be64(v, hs->term);
	put_be64(v + 8, hs->vote);
	put_be64(v + 16, hs->commit);
	DBT k = {.data = HARDSTATE_KEY, .size = sizeof(HARDSTATE_KEY) - 1};
	DBT d = {.data = v, .size = sizeof(v)};
	int ret = s->meta->put(s->meta, txn, &k, &d, 0);
	return ret == 0 ? 0 : storage_fail(s, "meta.db", "DB->put hardstate", ret);
}

static int check_batch(struct storage *s, const struct storage_batch *b)
{
	for (size_t i = 0; i < b->n_entries; i++) {
		const struct storage_entry *e = &b->entries[i];
		if (e->index == 0 || e->index != b->entries[0].index + i ||
		    (e->len > 0 && e->data == NULL) || e->len > UINT32_MAX - LOG_HEADER)
			return storage_failf(
				s, STORAGE_EINVAL,
				"storage: batch entry %zu (index %llu) is not contiguous "
				"or has no data",
				i, (unsigned long long)e->index);
	}
	if (b->n_entries == 0)
		return 0;
	/* After the deletions, the new entries must continue the log without a gap. */
	uint64_t last = b->clear_log ? 0 : s->last_index;
	if (b->truncate_from != 0 && b->truncate_from <= last)
		last = b->truncate_from - 1;
	uint64_t first = b->entries[0].index;
	if (last != 0 && (first > last + 1))
		return storage_failf(s, STORAGE_EINVAL,
				     "storage: batch starts at %llu but the log ends at %llu",
				     (unsigned long long)first, (unsigned long long)last);
	return 0;
}

/* One attempt at the batch's transaction; *bytes counts the log bytes written. */
static int write_txn(struct storage *s, const struct storage_batch *b, size_t *bytes_out)
{
	DB_TXN *txn;
	int rv = storage_txn_begin(s, &txn);
	if (rv != 0)
		return rv;
	if (b->clear_log)
		rv = delete_from(s, txn, 0);
	if (rv == 0 && b->truncate_from != 0)
		rv = delete_from(s, txn, b->truncate_from);
	/* Entries overwrite whatever sat at their index (a conflicting suffix). */
	unsigned char *buf = NULL;
	size_t cap = 0, bytes = 0;
	for (size_t i = 0; rv == 0 && i < b->n_entries; i++) {
		const struct storage_entry *e = &b->entries[i];
		size_t need = LOG_HEADER + e->len;
		if (need > cap) {
			unsigned char *nb = realloc(buf, need);
			if (nb == NULL) {
				rv = storage_failf(s, STORAGE_EIO, "storage: out of memory");
				break;
			}
			buf = nb;
			cap = need;
		}
		put_be64(buf, e->term);
		buf[8] = e->type;
		if (e->len > 0)
			memcpy(buf + LOG_HEADER, e->data, e->len);
		unsigned char kb[8];
		put_be64(kb, e->index);
		DBT k = {.data = kb, .size = 8};
		DBT d = {.data = buf, .size = (u_int32_t)need};
		int ret = s->log->put(s->log, txn, &k, &d, 0);
		if (ret != 0)
			rv = storage_fail(s, "log.db", "DB->put", ret);
		bytes += need;
	}
	free(buf);
	if (rv == 0 && b->hs != NULL)
		rv = put_hard_state(s, txn, b->hs);
	if (rv != 0) {
		txn->abort(txn);
		return rv;
	}
	if (b->sync)
		FAILPOINT("storage.log.before-sync");
	rv = storage_txn_commit(s, txn, b->sync);
	if (rv == 0 && b->sync)
		FAILPOINT("storage.log.after-sync");
	*bytes_out = bytes;
	return rv;
}

int storage_write(struct storage *s, const struct storage_batch *b)
{
	int rv = check_batch(s, b);
	if (rv != 0)
		return rv;
	size_t bytes = 0;
	int attempt = 0;
	do
		rv = write_txn(s, b, &bytes);
	while (storage_retry(s, &rv, &attempt));
	if (rv != 0)
		return rv;
	/* Committed: now (and only now) the cached edges follow. */
	if (b->clear_log)
		s->first_index = s->last_index = 0;
	if (b->truncate_from != 0 && b->truncate_from <= s->last_index) {
		s->last_index = b->truncate_from - 1;
		if (s->last_index < s->first_index)
			s->first_index = s->last_index = 0;
	}
	if (b->n_entries > 0) {
		if (s->first_index == 0 || b->entries[0].index < s->first_index)
			s->first_index = b->entries[0].index;
		s->last_index = b->entries[b->n_entries - 1].index;
	}
	s->bytes_since_checkpoint += bytes;
	return 0;
}

/* Delete up to `max` entries from first_index on, at most up to `upto`, in one
 * transaction; *next is the first index not deleted. */
static int compact_txn(struct storage *s, uint64_t upto, uint64_t max, uint64_t *next)
{
	DB_TXN *txn;
	int rv = storage_txn_begin(s, &txn);
	if (rv != 0)
		return rv;
	uint64_t i = s->first_index, n = 0;
	for (; i <= upto && i <= s->last_index && n < max; i++, n++) {
		unsigned char kb[8];
		put_be64(kb, i);
		DBT k = {.data = kb, .size = 8};
		int ret = s->log->del(s->log, txn, &k, 0);
		if (ret != 0 && ret != DB_NOTFOUND) {
			txn->abort(txn);
			return storage_fail(s, "log.db", "compact: DB->del", ret);
		}
	}
	*next = i;
	/* No sync: entries that reappear after a crash are below the snapshot and are skipped
	 * by storage_load (and compacted again). */
	return storage_txn_commit(s, txn, false);
}

int storage_compact_step(struct storage *s, uint64_t upto, size_t max, bool *more)
{
	*more = false;
	if (s->first_index == 0 || s->first_index > upto)
		return 0;
	if (max == 0 || max > COMPACT_BATCH)
		max = COMPACT_BATCH;
	uint64_t i = 0;
	int rv, attempt = 0;
	do
		rv = compact_txn(s, upto, max, &i);
	while (storage_retry(s, &rv, &attempt));
	if (rv != 0)
		return rv;
	FAILPOINT("storage.compact.after-batch");
	s->first_index = i > s->last_index ? 0 : i;
	if (s->first_index == 0)
		s->last_index = 0;
	*more = s->first_index != 0 && s->first_index <= upto;
	return 0;
}

int storage_compact(struct storage *s, uint64_t upto)
{
	bool more = true;
	int rv = 0;
	while (rv == 0 && more)
		rv = storage_compact_step(s, upto, COMPACT_BATCH, &more);
	return rv;
}

int storage_maybe_checkpoint(struct storage *s, bool force)
{
	if (!force && s->bytes_since_checkpoint < s->opt.checkpoint_bytes)
		return 0;
	int ret = s->env->txn_checkpoint(s->env, 0, 0, DB_FORCE);
	if (ret != 0)
		return storage_fail(s, "environment", "DB_ENV->txn_checkpoint", ret);
	/* Log files no longer needed for recovery go (DB_LOG_AUTO_REMOVE is also set). */
	ret = s->env->log_archive(s->env, NULL, DB_ARCH_REMOVE);
	if (ret != 0)
		return storage_fail(s, "environment", "DB_ENV->log_archive", ret);
	s->bytes_since_checkpoint = 0;
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Metadata
 * ---------------------------------------------------------------------------------------- */

static int check_key(struct storage *s, const char *key)
{
	size_t n = key != NULL ? strnlen(key, STORAGE_META_KEY_MAX + 1) : 0;
	if (n == 0 || n > STORAGE_META_KEY_MAX || strcmp(key, HARDSTATE_KEY) == 0 ||
	    strncmp(key, "raft.", 5) == 0)
		return storage_failf(s, STORAGE_EINVAL,
				     "storage: meta key %s%s%s is reserved, "
				     "empty or too long",
				     key ? "\"" : "", key ? key : "(null)", key ? "\"" : "");
	return 0;
}

static int meta_put_txn(struct storage *s, const char *key, const void *data, size_t len, bool sync)
{
	DB_TXN *txn;
	int rv = storage_txn_begin(s, &txn);
	if (rv != 0)
		return rv;
	DBT k = {.data = (void *)key, .size = (u_int32_t)strlen(key)};
	DBT d = {.data = (void *)data, .size = (u_int32_t)len};
	int ret = s->meta->put(s->meta, txn, &k, &d, 0);
	if (ret != 0) {
		txn->abort(txn);
		return storage_fail(s, "meta.db", "DB->put", ret);
	}
	if (sync)
		FAILPOINT("storage.meta.before-sync");
	rv = storage_txn_commit(s, txn, sync);
	if (rv == 0 && sync)
		FAILPOINT("storage.meta.after-sync");
	return rv;
}

int storage_meta_put(struct storage *s, const char *key, const void *data, size_t len, bool sync)
{
	int rv = check_key(s, key);
	if (rv != 0)
		return rv;
	if (len > UINT32_MAX || (len > 0 && data == NULL))
		return storage_failf(s, STORAGE_EINVAL, "storage: meta value of %zu bytes", len);
	int attempt = 0;
	do
		rv = meta_put_txn(s, key, data, len, sync);
	while (storage_retry(s, &rv, &attempt));
	return rv;
}

int storage_meta_get(struct storage *s, const char *key, void *buf, size_t cap, size_t *len)
{
	int rv = check_key(s, key);
	if (rv != 0)
		return rv;
	DBT k = {.data = (void *)key, .size = (u_int32_t)strlen(key)};
	DBT d = {.data = buf,
		 .ulen = (u_int32_t)(cap > UINT32_MAX ? UINT32_MAX : cap),
		 .flags = DB_DBT_USERMEM};
	int ret, attempt = 0;
	do {
		ret = s->meta->get(s->meta, NULL, &k, &d, 0);
		rv = ret == DB_LOCK_DEADLOCK ? storage_fail(s, "meta.db", "DB->get", ret) : 0;
	} while (storage_retry(s, &rv, &attempt));
	if (ret == DB_NOTFOUND)
		return STORAGE_ENOENT;
	if (ret == DB_BUFFER_SMALL) {
		*len = d.size;
		return STORAGE_ENOSPC;
	}
	if (ret != 0)
		return storage_fail(s, "meta.db", "DB->get", ret);
	*len = d.size;
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Load
 * ---------------------------------------------------------------------------------------- */

static int load_hard_state(struct storage *s, struct storage_hard_state *hs)
{
	unsigned char v[HARDSTATE_LEN];
	DBT k = {.data = HARDSTATE_KEY, .size = sizeof(HARDSTATE_KEY) - 1};
	DBT d = {.data = v, .ulen = sizeof(v), .flags = DB_DBT_USERMEM};
	int ret = s->meta->get(s->meta, NULL, &k, &d, 0);
	memset(hs, 0, sizeof(*hs));
	if (ret == DB_NOTFOUND)
		return 0;
	if (ret != 0 && ret != DB_BUFFER_SMALL)
		return storage_fail(s, "meta.db", "DB->get hardstate", ret);
	if (ret == DB_BUFFER_SMALL || d.size != HARDSTATE_LEN)
		return storage_failf(s, STORAGE_ECORRUPT,
				     "storage: %s: meta.db: hard state record has %u bytes, "
				     "expected %d",
				     s->dir, d.size, HARDSTATE_LEN);
	hs->term = get_be64(v);
	hs->vote = get_be64(v + 8);
	hs->commit = get_be64(v + 16);
	return 0;
}

int storage_load(struct storage *s, struct storage_hard_state *hs,
		 struct storage_snapshot_info *snap, storage_entry_fn fn, void *arg)
{
	memset(snap, 0, sizeof(*snap));
	int rv = load_hard_state(s, hs);
	if (rv != 0)
		return rv;
	rv = storage_snapshot_newest(s, NULL, snap);
	if (rv == STORAGE_ENOENT)
		rv = 0;
	if (rv != 0)
		return rv;
	DBC *c;
	int ret = s->log->cursor(s->log, NULL, &c, 0);
	if (ret != 0)
		return storage_fail(s, "log.db", "DB->cursor", ret);
	unsigned char kb[8];
	DBT k = {.data = kb, .ulen = sizeof(kb), .flags = DB_DBT_USERMEM};
	DBT d = {.flags = DB_DBT_REALLOC};
	/* Entries at or below the snapshot are leftovers of an unsynced compaction. */
	uint64_t expect = snap->index + 1;
	put_be64(kb, expect);
	k.size = 8;
	ret = c->get(c, &k, &d, DB_SET_RANGE);
	for (; ret == 0; ret = c->get(c, &k, &d, DB_NEXT)) {
		if (k.size != 8 || d.size < LOG_HEADER) {
			rv = storage_failf(s, STORAGE_ECORRUPT,
					   "storage: %s: log.db: malformed record (key %u bytes, "
					   "value %u bytes)",
					   s->dir, k.size, d.size);
			break;
		}
		uint64_t index = get_be64(kb);
		if (index != expect) {
			rv = storage_failf(s, STORAGE_ECORRUPT,
					   "storage: %s: log.db: entry %llu found where %llu was "
					   "expected (the log must continue the snapshot at %llu "
					   "without gaps)",
					   s->dir, (unsigned long long)index,
					   (unsigned long long)expect,
					   (unsigned long long)snap->index);
			break;
		}
		const unsigned char *v = d.data;
		struct storage_entry e = {.index = index,
					  .term = get_be64(v),
					  .type = v[8],
					  .data = v + LOG_HEADER,
					  .len = d.size - LOG_HEADER};
		rv = fn != NULL ? fn(arg, &e) : 0;
		if (rv != 0)
			break;
		expect++;
	}
	free(d.data);
	c->close(c);
	if (rv == 0 && ret != DB_NOTFOUND)
		rv = storage_fail(s, "log.db", "DBC->get (load)", ret);
	if (rv != 0)
		storage_snapshot_info_free(snap);
	return rv;
}
