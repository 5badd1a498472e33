/* Private state of the storage module shared by storage.c and snapshot.c. */
#ifndef RAFTKV_STORAGE_IMPL_H
#define RAFTKV_STORAGE_IMPL_H

#include <db.h>
#include <stdatomic.h>

#include "server/storage/storage.h"

struct storage {
	char dir[4096];
	int lock_fd;
	DB_ENV *env;
	DB *log;      /* log.db */
	DB *meta;     /* meta.db */
	DB *snap;     /* snap.db: snapshot chunks */
	DB *snapmeta; /* snapmeta.db: snapshot metadata */
	struct storage_options opt;
	uint64_t first_index; /* first stored log entry; 0 when the log is empty */
	uint64_t last_index;  /* last stored log entry; 0 when the log is empty */
	uint64_t bytes_since_checkpoint;
	/* 0, or the STORAGE_E* code of a write Berkeley DB failed (ENOSPC, EIO) in any thread.
	 * After one, BDB has been seen to report a later synced commit as done without writing
	 * its log records (a full tmpfs, a failed log-buffer write, the next commit "succeeds"):
	 * from then on no transaction starts or commits, so nothing more is promised. */
	atomic_int broken;
	char bdb_err[384]; /* BDB's own messages about the last failure (through errcall) */
	char errmsg[1024];
};

/* Internal only, never returned by the public API: Berkeley DB chose this operation as a
 * deadlock victim (DB_LOCK_DEADLOCK); the transaction must be aborted and run again. */
#define STORAGE_ERETRY (-100)

/* Record `what` failing with BDB code `ret` on `file` into s->errmsg; returns the STORAGE_E*
 * code for it (checksum and recovery failures are STORAGE_ECORRUPT, deadlock victims
 * STORAGE_ERETRY). */
int storage_fail(struct storage *s, const char *file, const char *what, int ret);
/* Set s->errmsg from a format; returns `rv`. */
int storage_failf(struct storage *s, int rv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The first (DB_FIRST) or last (DB_LAST) 8-byte big-endian key of `db`, 0 when it is empty;
 * STORAGE_ECORRUPT for a key of another size. `file` names the database in errors. */
int storage_edge_key(struct storage *s, DB *db, const char *file, uint32_t how, uint64_t *key);

/* Transaction helpers: begin (never NULL on success) and commit/abort. */
int storage_txn_begin(struct storage *s, DB_TXN **txn);
int storage_txn_commit(struct storage *s, DB_TXN *txn, bool sync);

/*
 * Deadlocks: the environment runs Berkeley DB's detector on every lock conflict, which fails
 * one transaction of a cycle with DB_LOCK_DEADLOCK (STORAGE_ERETRY here). Every writer loops
 *
 *     int attempt = 0;
 *     do
 *             rv = one_attempt(...);          // begin, work, commit; abort on failure
 *     while (storage_retry(s, &rv, &attempt));
 *
 * storage_retry() returns true (after a short pause) when *rv is STORAGE_ERETRY and attempts
 * remain; when they run out it turns *rv into STORAGE_EIO, keeping the message.
 */
bool storage_retry(struct storage *s, int *rv, int *attempt);

/* Snapshot housekeeping at open (snapshot.c): delete partially written snapshots. */
int storage_snapshot_cleanup(struct storage *s);
/* Newest complete snapshot's metadata; STORAGE_ENOENT if none (snapshot.c). */
int storage_snapshot_newest(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info);

#endif
