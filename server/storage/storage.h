/* Durable Raft state of one node in a transactional Berkeley DB 5.3 environment: the log,
 * the hard state, node metadata and snapshots. */
#ifndef RAFTKV_STORAGE_H
#define RAFTKV_STORAGE_H

/*
 * One data directory holds one BDB environment (DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK |
 * DB_INIT_MPOOL | DB_RECOVER, created if missing) and four databases, all with page
 * checksums. The environment's regions (cache, locks, log buffer) live in the process's heap
 * (DB_PRIVATE), not in memory-mapped files: a full file system then fails a write with
 * STORAGE_EFULL instead of killing the process with SIGBUS. (BDB log files are not
 * preallocated: DB_LOG_ZERO made recovery after a power loss fail in test_storage_powerloss;
 * a log write cut short by a full disk fails its commit, and recovery drops the torn tail.
 * After a failed write BDB has been seen to report a later commit durable without writing it,
 * so from the first failed write on, in any thread, every transaction fails: storage_broken.)
 *
 *   log.db    btree: 8-byte big-endian index -> term (8, BE) | type (1) | payload
 *   meta.db   btree: name -> value (hard state, node id, cluster id, membership, ...)
 *   snapmeta.db btree: snapshot id (8, BE) -> the snapshot's metadata and completeness
 *   snap.db   btree: snapshot id (8, BE) | chunk number (8, BE) -> up to 1 MiB of data; only
 *             snapshots written by 0.6 and earlier (read, never written now)
 *   snap-<id>.snap  a snapshot's data: chunks of up to 1 MiB, each with its CRC-32C, written
 *             outside Berkeley DB (once, fsync'd) and published by its snapmeta record
 *
 * Durability: nothing is reported written before the transaction that holds it has
 * committed; with `sync` the commit flushes the BDB log to disk (fsync). A process holding
 * the directory takes an exclusive lock on `<dir>/LOCK`; a second process fails at once.
 *
 * Threads: a `struct storage` may be used from several threads (DB_THREAD), but writes are
 * meant to come from one storage-writer thread; snapshot readers may run beside it.
 *
 * Errors: functions return 0 or a negative STORAGE_E* code; the handle's errmsg (see
 * storage_errmsg) says what failed, naming the file and the check.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORAGE_EIO      (-1) /* BDB or the file system failed */
#define STORAGE_ECORRUPT (-2) /* a check failed: the store must not be served from */
#define STORAGE_ELOCKED  (-3) /* another process holds the data directory */
#define STORAGE_ENOENT   (-4) /* no such record (no snapshot, unknown meta key) */
#define STORAGE_EINVAL   (-5) /* bad argument (non-contiguous entries, oversize key, ...) */
#define STORAGE_ENOSPC   (-6) /* a buffer given by the caller is too small */
#define STORAGE_EFULL    (-7) /* the file system is full (ENOSPC): nothing was written */

#define STORAGE_SNAPSHOT_CHUNK (1024 * 1024) /* bytes per snapshot chunk record */
#define STORAGE_META_KEY_MAX   64

struct storage_options {
	size_t cache_bytes;        /* BDB memory pool. Default 16 MiB */
	uint64_t checkpoint_bytes; /* storage_maybe_checkpoint() acts after this much log. 32 MiB */
};

void storage_options_default(struct storage_options *o);

/* Term, vote and commit index of the Raft core (the same meaning as raft_hard_state). */
struct storage_hard_state {
	uint64_t term;
	uint64_t vote;
	uint64_t commit;
};

/* One log entry. `data` is only read during the call that takes it. */
struct storage_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type;
	const void *data;
	size_t len;
};

/* One group-commit batch, applied in this order inside a single transaction. */
struct storage_batch {
	bool clear_log;         /* delete every log entry first (a snapshot was installed) */
	uint64_t truncate_from; /* then delete entries >= this (0 = none) */
	const struct storage_entry *entries; /* then store these; indexes contiguous */
	size_t n_entries;
	const struct storage_hard_state *hs; /* then replace the hard state (NULL: unchanged) */
	bool sync;                           /* flush the log to disk before returning */
};

struct storage;

/* Open (creating if needed) the store in directory `dir`; the directory itself is created
 * (mode 0700) when missing, its parent must exist. Runs BDB recovery, takes the directory
 * lock, removes any partially written snapshot. On failure returns a STORAGE_E* code and,
 * when errmsg is not NULL, says why. */
int storage_open(const char *dir, const struct storage_options *opt, struct storage **out,
		 char *errmsg, size_t errmsg_len);
/* Checkpoint and close cleanly. NULL-safe. */
void storage_close(struct storage *s);
/* The last error's description ("storage: log.db: DB->put: ..."). */
const char *storage_errmsg(const struct storage *s);
/* 0, or STORAGE_EFULL / STORAGE_EIO once Berkeley DB failed to write a file (in any thread).
 * From then on every transaction fails with that code: after such a failure BDB may report a
 * later synced commit as done without having written it. Only a restart (recovery) helps. */
int storage_broken(const struct storage *s);

/* Group commit: see struct storage_batch. All or nothing. */
int storage_write(struct storage *s, const struct storage_batch *b);

/* Delete log entries with index <= upto (after a snapshot), in bounded transactions so a
 * long prefix does not hold one huge transaction. */
int storage_compact(struct storage *s, uint64_t upto);
/* One transaction of that: at most `max` entries (at most 10000; 0: 10000) deleted; *more
 * says whether entries <= upto remain. A writer interleaves its group commits between the
 * steps of a long compaction (500k entries take seconds) instead of stalling behind it. */
int storage_compact_step(struct storage *s, uint64_t upto, size_t max, bool *more);

/* Checkpoint if at least opt.checkpoint_bytes of BDB log were written since the last one
 * (or always, with `force`); old BDB log files are then removed. */
int storage_maybe_checkpoint(struct storage *s, bool force);

/* Small named values (node id, cluster id, membership, ...). Keys are NUL-terminated and
 * at most STORAGE_META_KEY_MAX bytes; "hardstate" and names starting with "raft." are
 * reserved. get: STORAGE_ENOENT if absent, STORAGE_ENOSPC if `cap` is too small (*len then
 * holds the size needed). */
int storage_meta_put(struct storage *s, const char *key, const void *data, size_t len, bool sync);
int storage_meta_get(struct storage *s, const char *key, void *buf, size_t cap, size_t *len);

/* ---- loading at start ---------------------------------------------------------------- */

/* Called once per stored log entry, in index order; a non-zero return stops the load and is
 * returned by storage_load. The entry's data is only valid during the call. */
typedef int (*storage_entry_fn)(void *arg, const struct storage_entry *e);

/* What a snapshot covers; `conf` is the configuration bytes (opaque to storage). */
struct storage_snapshot_info {
	uint64_t id;    /* storage's own number for it */
	uint64_t index; /* last entry it covers */
	uint64_t term;
	uint64_t size; /* bytes of data */
	void *conf;    /* malloc'd copy (storage_load / storage_snapshot_open); caller frees */
	size_t conf_len;
};

/* Read the hard state (zeros if never written), the newest complete snapshot's metadata
 * (info->index == 0 if none) and every log entry after it, checking that entries are
 * contiguous and start right after the snapshot. STORAGE_ECORRUPT on any inconsistency or
 * checksum failure. */
int storage_load(struct storage *s, struct storage_hard_state *hs,
		 struct storage_snapshot_info *snap, storage_entry_fn fn, void *arg);

/* ---- snapshots, streamed in chunks --------------------------------------------------- */

struct storage_snapshot_writer;
struct storage_snapshot_reader;

/* Start writing a snapshot covering up to (index, term) with configuration `conf`. Data
 * goes to disk chunk by chunk (each chunk in its own transaction), so a large snapshot is
 * never held in memory whole. Until committed it is invisible and is removed at the next
 * open if the process dies. */
int storage_snapshot_begin(struct storage *s, uint64_t index, uint64_t term, const void *conf,
			   size_t conf_len, struct storage_snapshot_writer **out);
int storage_snapshot_write(struct storage_snapshot_writer *w, const void *data, size_t len);
/* Flush the last chunk and make the data durable (fsync), without publishing it. Optional:
 * commit does it when it was not done; done first, the commit is one small synced
 * transaction (a received snapshot is finished off the raft loop, committed on it). */
int storage_snapshot_finish(struct storage_snapshot_writer *w);
/* A reader of what a finished writer holds (to check a received snapshot before publishing
 * it). The writer stays valid; close the reader first if the writer is then aborted. */
int storage_snapshot_reread(struct storage_snapshot_writer *w,
			    struct storage_snapshot_reader **out);
/* Finish if needed, mark the snapshot complete (synced), make it the newest, and delete the
 * other complete snapshots. The writer is freed whatever the result (on failure the
 * snapshot is removed). */
int storage_snapshot_commit(struct storage_snapshot_writer *w);
/* Discard a snapshot being written. NULL-safe. */
void storage_snapshot_abort(struct storage_snapshot_writer *w);

/* Open the newest complete snapshot for reading; STORAGE_ENOENT if there is none. `info`
 * (may be NULL) receives its metadata. */
int storage_snapshot_open(struct storage *s, struct storage_snapshot_info *info,
			  struct storage_snapshot_reader **out);
/* Read up to `cap` bytes; *n = 0 at the end. STORAGE_ECORRUPT if a chunk is missing or its
 * checksum fails. */
int storage_snapshot_read(struct storage_snapshot_reader *r, void *buf, size_t cap, size_t *n);
void storage_snapshot_close(struct storage_snapshot_reader *r);

/* Frees info->conf. */
void storage_snapshot_info_free(struct storage_snapshot_info *info);

#endif
