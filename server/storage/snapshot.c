/* Snapshots stored in chunks: written and read as streams, made visible atomically. */
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"
#include "common/failpoint.h"
#include "storage_impl.h"

/*
 * snapmeta.db record, by snapshot id:
 *   format (1) | complete (1) | index (8) | term (8) | size (8) | chunks (8) | conf_len (4) | conf
 * A snapshot is written as: metadata with complete = 0 (synced, so a crash leaves a trace
 * that the next open cleans up), chunks in their own transactions, then one synced
 * transaction that sets complete = 1 and deletes every older snapshot.
 */
#define META_FORMAT 1
#define META_FIXED  38

struct storage_snapshot_writer {
	struct storage *s;
	uint64_t id;
	struct storage_snapshot_info info;
	uint64_t chunks;
	unsigned char *buf; /* the chunk being filled */
	size_t used;
};

struct storage_snapshot_reader {
	struct storage *s;
	uint64_t id;
	uint64_t size, chunks;
	uint64_t next_chunk; /* next chunk to fetch */
	uint64_t delivered;  /* bytes handed out so far */
	DBT chunk;           /* current chunk (DB_DBT_REALLOC) */
	size_t off;          /* read position in it */
};

void storage_snapshot_info_free(struct storage_snapshot_info *info)
{
	free(info->conf);
	info->conf = NULL;
	info->conf_len = 0;
}

static void chunk_key(unsigned char k[16], uint64_t id, uint64_t chunk)
{
	put_be64(k, id);
	put_be64(k + 8, chunk);
}

static int put_meta(struct storage *s, DB_TXN *txn, uint64_t id,
		    const struct storage_snapshot_info *info, uint64_t chunks, bool complete)
{
	size_t len = META_FIXED + info->conf_len;
	unsigned char *v = malloc(len);
	if (v == NULL)
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	v[0] = META_FORMAT;
	v[1] = complete;
	put_be64(v + 2, info->index);
	put_be64(v + 10, info->term);
	put_be64(v + 18, info->size);
	put_be64(v + 26, chunks);
	put_be32(v + 34, (uint32_t)info->conf_len);
	if (info->conf_len > 0)
		memcpy(v + META_FIXED, info->conf, info->conf_len);
	unsigned char kb[8];
	put_be64(kb, id);
	DBT k = {.data = kb, .size = 8};
	DBT d = {.data = v, .size = (u_int32_t)len};
	int ret = s->snapmeta->put(s->snapmeta, txn, &k, &d, 0);
	free(v);
	return ret == 0 ? 0 : storage_fail(s, "snapmeta.db", "DB->put", ret);
}

/* Decode a snapmeta record. On success info->conf is a malloc'd copy. */
static int parse_meta(struct storage *s, uint64_t id, const DBT *d,
		      struct storage_snapshot_info *info, uint64_t *chunks, bool *complete)
{
	const unsigned char *v = d->data;
	if (d->size < META_FIXED || v[0] != META_FORMAT || get_be32(v + 34) != d->size - META_FIXED)
		return storage_failf(s, STORAGE_ECORRUPT,
				     "storage: %s: snapmeta.db: snapshot %llu has a malformed "
				     "record (%u bytes)",
				     s->dir, (unsigned long long)id, d->size);
	memset(info, 0, sizeof(*info));
	info->id = id;
	*complete = v[1] != 0;
	info->index = get_be64(v + 2);
	info->term = get_be64(v + 10);
	info->size = get_be64(v + 18);
	*chunks = get_be64(v + 26);
	info->conf_len = get_be32(v + 34);
	if (info->conf_len > 0) {
		info->conf = malloc(info->conf_len);
		if (info->conf == NULL)
			return storage_failf(s, STORAGE_EIO, "storage: out of memory");
		memcpy(info->conf, v + META_FIXED, info->conf_len);
	}
	return 0;
}

/* Delete snapshot `id` (its chunks and its metadata) inside txn. */
static int delete_snapshot(struct storage *s, DB_TXN *txn, uint64_t id)
{
	DBC *c;
	int ret = s->snap->cursor(s->snap, txn, &c, 0);
	if (ret != 0)
		return storage_fail(s, "snap.db", "DB->cursor", ret);
	unsigned char kb[16];
	chunk_key(kb, id, 0);
	DBT k = {.data = kb, .size = 16, .ulen = 16, .flags = DB_DBT_USERMEM};
	DBT d = {.flags = DB_DBT_PARTIAL | DB_DBT_USERMEM};
	ret = c->get(c, &k, &d, DB_SET_RANGE);
	while (ret == 0 && k.size == 16 && get_be64(kb) == id) {
		ret = c->del(c, 0);
		if (ret == 0)
			ret = c->get(c, &k, &d, DB_NEXT);
	}
	c->close(c);
	if (ret != 0 && ret != DB_NOTFOUND)
		return storage_fail(s, "snap.db", "delete chunks", ret);
	unsigned char mk[8];
	put_be64(mk, id);
	DBT m = {.data = mk, .size = 8};
	ret = s->snapmeta->del(s->snapmeta, txn, &m, 0);
	if (ret != 0 && ret != DB_NOTFOUND)
		return storage_fail(s, "snapmeta.db", "DB->del", ret);
	return 0;
}

/* Walk snapmeta from the newest id down, calling `visit` on each record (parsed). */
typedef int (*meta_visit)(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info,
			  uint64_t chunks, bool complete, void *arg);

static int walk_meta(struct storage *s, DB_TXN *txn, meta_visit visit, void *arg)
{
	DBC *c;
	/* Outside a transaction (a reader looking for the newest snapshot): a dirty read, so it
	 * neither waits behind the snapshotter's commit nor deadlocks with it. */
	int ret = s->snapmeta->cursor(s->snapmeta, txn, &c, txn == NULL ? DB_READ_UNCOMMITTED : 0);
	if (ret != 0)
		return storage_fail(s, "snapmeta.db", "DB->cursor", ret);
	unsigned char kb[8];
	DBT k = {.data = kb, .ulen = 8, .flags = DB_DBT_USERMEM};
	DBT d = {.flags = DB_DBT_REALLOC};
	int rv = 0;
	for (ret = c->get(c, &k, &d, DB_LAST); ret == 0; ret = c->get(c, &k, &d, DB_PREV)) {
		if (k.size != 8) {
			rv = storage_failf(s, STORAGE_ECORRUPT,
					   "storage: %s: snapmeta.db: key of %u bytes", s->dir,
					   k.size);
			break;
		}
		struct storage_snapshot_info info;
		uint64_t chunks = 0;
		bool complete = false;
		rv = parse_meta(s, get_be64(kb), &d, &info, &chunks, &complete);
		if (rv != 0)
			break;
		rv = visit(s, txn, &info, chunks, complete, arg);
		storage_snapshot_info_free(&info);
		if (rv != 0)
			break;
	}
	free(d.data);
	c->close(c);
	if (rv == 0 && ret != DB_NOTFOUND)
		rv = storage_fail(s, "snapmeta.db", "DBC->get", ret);
	return rv;
}

/* The work of one transaction; returns 0 or a STORAGE_E* code (the caller aborts). */
typedef int (*txn_body)(struct storage *s, DB_TXN *txn, void *arg);

/* Run `body` in a transaction and commit it (synced with `sync`), running it again whenever
 * Berkeley DB makes it a deadlock victim. `fp_before` / `fp_after` name the failpoints
 * around a synced commit (NULL: none). */
static int run_txn(struct storage *s, txn_body body, void *arg, bool sync, const char *fp_before,
		   const char *fp_after)
{
	int rv, attempt = 0;
	do {
		DB_TXN *txn;
		rv = storage_txn_begin(s, &txn);
		if (rv != 0)
			continue;
		rv = body(s, txn, arg);
		if (rv != 0) {
			txn->abort(txn);
			continue;
		}
		if (fp_before != NULL)
			FAILPOINT(fp_before);
		rv = storage_txn_commit(s, txn, sync);
		if (rv == 0 && fp_after != NULL)
			FAILPOINT(fp_after);
	} while (storage_retry(s, &rv, &attempt));
	return rv;
}

#define WALK_STOP 1 /* a visitor's "found it, stop" */

struct newest {
	struct storage_snapshot_info *out;
	uint64_t chunks;
};

static int find_newest(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info,
		       uint64_t chunks, bool complete, void *arg)
{
	(void)s;
	(void)txn;
	struct newest *n = arg;
	if (!complete)
		return 0;
	*n->out = *info;
	info->conf = NULL; /* moved */
	n->chunks = chunks;
	return WALK_STOP;
}

static int newest(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info,
		  uint64_t *chunks)
{
	struct newest n = {.out = info};
	memset(info, 0, sizeof(*info));
	int rv = walk_meta(s, txn, find_newest, &n);
	if (rv == WALK_STOP) {
		if (chunks != NULL)
			*chunks = n.chunks;
		return 0;
	}
	return rv != 0 ? rv : STORAGE_ENOENT;
}

int storage_snapshot_newest(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info)
{
	return newest(s, txn, info, NULL);
}

static int drop_incomplete(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info,
			   uint64_t chunks, bool complete, void *arg)
{
	(void)chunks;
	(void)arg;
	return complete ? 0 : delete_snapshot(s, txn, info->id);
}

static int cleanup_body(struct storage *s, DB_TXN *txn, void *arg)
{
	(void)arg;
	return walk_meta(s, txn, drop_incomplete, NULL);
}

int storage_snapshot_cleanup(struct storage *s)
{
	return run_txn(s, cleanup_body, NULL, true, NULL, NULL);
}

/* ------------------------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------------------------- */

static int next_id(struct storage *s, uint64_t *id)
{
	uint64_t last;
	int rv = storage_edge_key(s, s->snapmeta, "snapmeta.db", DB_LAST, &last);
	if (rv == 0)
		*id = last + 1;
	return rv;
}

/* The incomplete metadata record, synced, so a crash leaves a trace for the next open. */
static int begin_body(struct storage *s, DB_TXN *txn, void *arg)
{
	struct storage_snapshot_writer *w = arg;
	return put_meta(s, txn, w->id, &w->info, 0, false);
}

int storage_snapshot_begin(struct storage *s, uint64_t index, uint64_t term, const void *conf,
			   size_t conf_len, struct storage_snapshot_writer **out)
{
	if (index == 0 || conf_len > UINT32_MAX - META_FIXED || (conf_len > 0 && conf == NULL))
		return storage_failf(s, STORAGE_EINVAL, "storage: invalid snapshot metadata");
	struct storage_snapshot_writer *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	w->s = s;
	w->info.index = index;
	w->info.term = term;
	w->info.conf_len = conf_len;
	w->info.conf = conf_len > 0 ? malloc(conf_len) : NULL;
	w->buf = malloc(STORAGE_SNAPSHOT_CHUNK);
	if ((conf_len > 0 && w->info.conf == NULL) || w->buf == NULL) {
		storage_snapshot_info_free(&w->info);
		free(w->buf);
		free(w);
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	}
	if (conf_len > 0)
		memcpy(w->info.conf, conf, conf_len);
	int rv = next_id(s, &w->id);
	if (rv == 0) {
		w->info.id = w->id;
		rv = run_txn(s, begin_body, w, true, "storage.snapshot-begin.before-sync",
			     "storage.snapshot-begin.after-sync");
	}
	if (rv != 0) {
		storage_snapshot_info_free(&w->info);
		free(w->buf);
		free(w);
		return rv;
	}
	*out = w;
	return 0;
}

static int chunk_body(struct storage *s, DB_TXN *txn, void *arg)
{
	struct storage_snapshot_writer *w = arg;
	unsigned char kb[16];
	chunk_key(kb, w->id, w->chunks);
	DBT k = {.data = kb, .size = 16};
	DBT d = {.data = w->buf, .size = (u_int32_t)w->used};
	int ret = s->snap->put(s->snap, txn, &k, &d, 0);
	return ret == 0 ? 0 : storage_fail(s, "snap.db", "DB->put chunk", ret);
}

static int flush_chunk(struct storage_snapshot_writer *w)
{
	if (w->used == 0)
		return 0;
	/* Unsynced: the final, synced commit flushes the log up to here as well. */
	int rv = run_txn(w->s, chunk_body, w, false, NULL, NULL);
	if (rv != 0)
		return rv;
	w->chunks++;
	w->used = 0;
	FAILPOINT("storage.snapshot.after-chunk");
	return 0;
}

int storage_snapshot_write(struct storage_snapshot_writer *w, const void *data, size_t len)
{
	const unsigned char *p = data;
	while (len > 0) {
		size_t n = STORAGE_SNAPSHOT_CHUNK - w->used;
		if (n > len)
			n = len;
		memcpy(w->buf + w->used, p, n);
		w->used += n;
		w->info.size += n;
		p += n;
		len -= n;
		if (w->used == STORAGE_SNAPSHOT_CHUNK) {
			int rv = flush_chunk(w);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

static void free_writer(struct storage_snapshot_writer *w)
{
	storage_snapshot_info_free(&w->info);
	free(w->buf);
	free(w);
}

static int drop_older(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info,
		      uint64_t chunks, bool complete, void *arg)
{
	(void)chunks;
	(void)complete;
	uint64_t keep = *(const uint64_t *)arg;
	return info->id < keep ? delete_snapshot(s, txn, info->id) : 0;
}

/* Complete: mark it so and delete every older snapshot, in one synced transaction. Readers
 * of an older snapshot (a transfer to a follower) read under snapshot isolation and are
 * neither blocked by this transaction nor part of a deadlock with it. */
static int commit_body(struct storage *s, DB_TXN *txn, void *arg)
{
	struct storage_snapshot_writer *w = arg;
	int rv = put_meta(s, txn, w->id, &w->info, w->chunks, true);
	return rv != 0 ? rv : walk_meta(s, txn, drop_older, &w->id);
}

int storage_snapshot_commit(struct storage_snapshot_writer *w)
{
	int rv = flush_chunk(w);
	if (rv == 0)
		rv = run_txn(w->s, commit_body, w, true, "storage.snapshot-commit.before-sync",
			     "storage.snapshot-commit.after-sync");
	/* On failure it stays incomplete: the next open removes it. */
	free_writer(w);
	return rv;
}

static int abort_body(struct storage *s, DB_TXN *txn, void *arg)
{
	const struct storage_snapshot_writer *w = arg;
	return delete_snapshot(s, txn, w->id);
}

void storage_snapshot_abort(struct storage_snapshot_writer *w)
{
	if (w == NULL)
		return;
	/* Best effort: whatever stays is incomplete and removed at the next open. */
	run_txn(w->s, abort_body, w, false, NULL, NULL);
	free_writer(w);
}

/* ------------------------------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------------------------- */

int storage_snapshot_open(struct storage *s, struct storage_snapshot_info *info,
			  struct storage_snapshot_reader **out)
{
	struct storage_snapshot_info found;
	uint64_t chunks = 0;
	int rv, attempt = 0;
	do
		rv = newest(s, NULL, &found, &chunks);
	while (storage_retry(s, &rv, &attempt));
	if (rv != 0)
		return rv;
	struct storage_snapshot_reader *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		storage_snapshot_info_free(&found);
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	}
	r->s = s;
	r->id = found.id;
	r->size = found.size;
	r->chunks = chunks;
	r->chunk.flags = DB_DBT_REALLOC;
	if (info != NULL)
		*info = found;
	else
		storage_snapshot_info_free(&found);
	*out = r;
	return 0;
}

int storage_snapshot_read(struct storage_snapshot_reader *r, void *buf, size_t cap, size_t *n)
{
	struct storage *s = r->s;
	unsigned char *p = buf;
	*n = 0;
	while (*n < cap) {
		if (r->off == r->chunk.size) {
			if (r->next_chunk == r->chunks)
				break;
			unsigned char kb[16];
			chunk_key(kb, r->id, r->next_chunk);
			DBT k = {.data = kb, .size = 16};
			/* A dirty read: no wait behind a writer (the gRPC loop reads chunks for
			 * transfers while the snapshotter may be deleting this snapshot), no
			 * part in a deadlock. A chunk being deleted reads as missing. */
			int ret = s->snap->get(s->snap, NULL, &k, &r->chunk, DB_READ_UNCOMMITTED);
			if (ret == DB_NOTFOUND)
				return storage_failf(s, STORAGE_ECORRUPT,
						     "storage: %s: snap.db: snapshot %llu is "
						     "missing chunk %llu of %llu",
						     s->dir, (unsigned long long)r->id,
						     (unsigned long long)r->next_chunk,
						     (unsigned long long)r->chunks);
			if (ret != 0)
				return storage_fail(s, "snap.db", "DB->get chunk", ret);
			r->next_chunk++;
			r->off = 0;
			continue;
		}
		size_t take = r->chunk.size - r->off;
		if (take > cap - *n)
			take = cap - *n;
		memcpy(p + *n, (unsigned char *)r->chunk.data + r->off, take);
		r->off += take;
		*n += take;
		r->delivered += take;
	}
	if (*n == 0 && r->delivered != r->size)
		return storage_failf(s, STORAGE_ECORRUPT,
				     "storage: %s: snap.db: snapshot %llu holds %llu bytes, its "
				     "metadata says %llu",
				     s->dir, (unsigned long long)r->id,
				     (unsigned long long)r->delivered, (unsigned long long)r->size);
	return 0;
}

void storage_snapshot_close(struct storage_snapshot_reader *r)
{
	if (r == NULL)
		return;
	free(r->chunk.data);
	free(r);
}
