/* Snapshots: data in a file of checksummed chunks, metadata in snapmeta.db, made visible
 * atomically; written and read as streams. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "storage_impl.h"

/*
 * snapmeta.db record, by snapshot id:
 *   format (1) | complete (1) | index (8) | term (8) | size (8) | chunks (8) | conf_len (4) | conf
 *
 * Format 2: the data is the file <dir>/snap-<id, 16 hex digits>.snap, a sequence of chunks
 *   length (4, BE, 1 .. STORAGE_SNAPSHOT_CHUNK) | CRC-32C of the data (4, BE) | data
 * written with plain writes and one fsync: it passes through neither Berkeley DB's log nor
 * its cache, so storing a snapshot writes its bytes once (through snap.db they were written
 * about three times: logged, paged out, and logged again as before-images when deleted).
 * Format 1 (0.6 and earlier): the data is in snap.db, chunk by chunk; still read, never
 * written.
 *
 * A snapshot is written as: metadata with complete = 0 (synced: it reserves the id, and a
 * crash leaves a trace the next open cleans up), the file, its fsync and the directory's,
 * then one synced transaction that sets complete = 1 and deletes every older snapshot's
 * metadata; the older files are unlinked after that commit (a reader holding one open reads
 * on). Files without complete metadata are removed at open.
 */
#define FORMAT_CHUNKS 1
#define FORMAT_FILE   2
#define META_FIXED    38
#define CHUNK_HEADER  8

struct meta {
	struct storage_snapshot_info info;
	uint64_t chunks;
	bool complete;
	int format;
};

struct storage_snapshot_writer {
	struct storage *s;
	struct storage_snapshot_info info;
	uint64_t chunks;
	int fd;             /* the data file */
	unsigned char *buf; /* CHUNK_HEADER + the chunk being filled */
	size_t used;        /* data bytes in buf */
	bool finished;      /* storage_snapshot_finish done: the data is on disk */
};

struct storage_snapshot_reader {
	struct storage *s;
	uint64_t id;
	int format;
	uint64_t size, chunks;
	uint64_t next_chunk; /* next chunk to fetch */
	uint64_t delivered;  /* bytes handed out so far */
	int fd;              /* FORMAT_FILE: the data file */
	DBT chunk;           /* the current chunk (DB_DBT_REALLOC; .data reused for files) */
	size_t off;          /* read position in it */
};

void storage_snapshot_info_free(struct storage_snapshot_info *info)
{
	free(info->conf);
	info->conf = NULL;
	info->conf_len = 0;
}

static void file_path(const struct storage *s, uint64_t id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/snap-%016llx.snap", s->dir, (unsigned long long)id);
}

/* The id of a snapshot file's name, or 0 when `name` is not one. */
static uint64_t file_id(const char *name)
{
	unsigned long long id;
	char tail[8];
	if (strlen(name) != 5 + 16 + 5 || sscanf(name, "snap-%16llx%7s", &id, tail) != 2 ||
	    strcmp(tail, ".snap") != 0)
		return 0;
	return id;
}

static void chunk_key(unsigned char k[16], uint64_t id, uint64_t chunk)
{
	put_be64(k, id);
	put_be64(k + 8, chunk);
}

static int put_meta(struct storage *s, DB_TXN *txn, const struct meta *m)
{
	const struct storage_snapshot_info *info = &m->info;
	size_t len = META_FIXED + info->conf_len;
	unsigned char *v = malloc(len);
	if (v == NULL)
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	v[0] = (unsigned char)m->format;
	v[1] = m->complete;
	put_be64(v + 2, info->index);
	put_be64(v + 10, info->term);
	put_be64(v + 18, info->size);
	put_be64(v + 26, m->chunks);
	put_be32(v + 34, (uint32_t)info->conf_len);
	if (info->conf_len > 0)
		memcpy(v + META_FIXED, info->conf, info->conf_len);
	unsigned char kb[8];
	put_be64(kb, info->id);
	DBT k = {.data = kb, .size = 8};
	DBT d = {.data = v, .size = (u_int32_t)len};
	int ret = s->snapmeta->put(s->snapmeta, txn, &k, &d, 0);
	free(v);
	return ret == 0 ? 0 : storage_fail(s, "snapmeta.db", "DB->put", ret);
}

/* Decode a snapmeta record. On success m->info.conf is a malloc'd copy. */
static int parse_meta(struct storage *s, uint64_t id, const DBT *d, struct meta *m)
{
	const unsigned char *v = d->data;
	if (d->size < META_FIXED || (v[0] != FORMAT_CHUNKS && v[0] != FORMAT_FILE) ||
	    get_be32(v + 34) != d->size - META_FIXED)
		return storage_failf(s, STORAGE_ECORRUPT,
				     "storage: %s: snapmeta.db: snapshot %llu has a malformed "
				     "record (%u bytes)",
				     s->dir, (unsigned long long)id, d->size);
	memset(m, 0, sizeof(*m));
	struct storage_snapshot_info *info = &m->info;
	info->id = id;
	m->format = v[0];
	m->complete = v[1] != 0;
	info->index = get_be64(v + 2);
	info->term = get_be64(v + 10);
	info->size = get_be64(v + 18);
	m->chunks = get_be64(v + 26);
	info->conf_len = get_be32(v + 34);
	if (info->conf_len > 0) {
		info->conf = malloc(info->conf_len);
		if (info->conf == NULL)
			return storage_failf(s, STORAGE_EIO, "storage: out of memory");
		memcpy(info->conf, v + META_FIXED, info->conf_len);
	}
	return 0;
}

/* Delete snapshot `id`'s metadata, and its chunks in snap.db when it has some (format 1),
 * inside txn. Its file, if any, is the caller's to unlink once txn has committed. */
static int delete_snapshot(struct storage *s, DB_TXN *txn, const struct meta *m)
{
	uint64_t id = m->info.id;
	if (m->format == FORMAT_CHUNKS) {
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
	}
	unsigned char mk[8];
	put_be64(mk, id);
	DBT k = {.data = mk, .size = 8};
	int ret = s->snapmeta->del(s->snapmeta, txn, &k, 0);
	if (ret != 0 && ret != DB_NOTFOUND)
		return storage_fail(s, "snapmeta.db", "DB->del", ret);
	return 0;
}

/* Walk snapmeta from the newest id down, calling `visit` on each record (parsed). */
typedef int (*meta_visit)(struct storage *s, DB_TXN *txn, struct meta *m, void *arg);

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
		struct meta m;
		rv = parse_meta(s, get_be64(kb), &d, &m);
		if (rv != 0)
			break;
		rv = visit(s, txn, &m, arg);
		storage_snapshot_info_free(&m.info);
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

static int find_newest(struct storage *s, DB_TXN *txn, struct meta *m, void *arg)
{
	(void)s;
	(void)txn;
	if (!m->complete)
		return 0;
	struct meta *out = arg;
	*out = *m;
	m->info.conf = NULL; /* moved */
	return WALK_STOP;
}

static int newest(struct storage *s, DB_TXN *txn, struct meta *m)
{
	memset(m, 0, sizeof(*m));
	int rv = walk_meta(s, txn, find_newest, m);
	if (rv == WALK_STOP)
		return 0;
	return rv != 0 ? rv : STORAGE_ENOENT;
}

int storage_snapshot_newest(struct storage *s, DB_TXN *txn, struct storage_snapshot_info *info)
{
	struct meta m;
	int rv = newest(s, txn, &m);
	*info = m.info;
	return rv;
}

/* Unlink every snapshot file but the one of snapshot `keep` (at open: no writer runs). */
static void remove_files(struct storage *s, uint64_t keep)
{
	DIR *d = opendir(s->dir);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		uint64_t id = file_id(e->d_name);
		if (id == 0 || id == keep)
			continue;
		char path[4200];
		file_path(s, id, path, sizeof(path));
		unlink(path); /* best effort: what stays is removed at the next open */
	}
	closedir(d);
}

static int drop_incomplete(struct storage *s, DB_TXN *txn, struct meta *m, void *arg)
{
	(void)arg;
	return m->complete ? 0 : delete_snapshot(s, txn, m);
}

static int cleanup_body(struct storage *s, DB_TXN *txn, void *arg)
{
	(void)arg;
	return walk_meta(s, txn, drop_incomplete, NULL);
}

int storage_snapshot_cleanup(struct storage *s)
{
	int rv = run_txn(s, cleanup_body, NULL, true, NULL, NULL);
	if (rv != 0)
		return rv;
	struct meta m;
	rv = newest(s, NULL, &m);
	if (rv != 0 && rv != STORAGE_ENOENT)
		return rv;
	storage_snapshot_info_free(&m.info);
	remove_files(s, rv == 0 && m.format == FORMAT_FILE ? m.info.id : 0);
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Writing
 * ---------------------------------------------------------------------------------------- */

/* A failed file operation: STORAGE_EFULL for ENOSPC (and EDQUOT), STORAGE_EIO otherwise.
 * Unlike a failed Berkeley DB write it leaves the environment sound (nothing of it went
 * through BDB), so storage is not marked broken. */
static int file_fail(struct storage *s, uint64_t id, const char *what, int err)
{
	char path[4200];
	file_path(s, id, path, sizeof(path));
	return storage_failf(s, err == ENOSPC || err == EDQUOT ? STORAGE_EFULL : STORAGE_EIO,
			     "storage: %s: %s: %s", path, what, strerror(err));
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			return EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int next_id(struct storage *s, uint64_t *id)
{
	uint64_t last;
	int rv = storage_edge_key(s, s->snapmeta, "snapmeta.db", DB_LAST, &last);
	if (rv == 0)
		*id = last + 1;
	return rv;
}

static int begin_body(struct storage *s, DB_TXN *txn, void *arg)
{
	const struct storage_snapshot_writer *w = arg;
	struct meta m = {.info = w->info, .format = FORMAT_FILE};
	return put_meta(s, txn, &m);
}

static void free_writer(struct storage_snapshot_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	storage_snapshot_info_free(&w->info);
	free(w->buf);
	free(w);
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
	w->fd = -1;
	w->info.index = index;
	w->info.term = term;
	w->info.conf_len = conf_len;
	w->info.conf = conf_len > 0 ? malloc(conf_len) : NULL;
	w->buf = malloc(CHUNK_HEADER + STORAGE_SNAPSHOT_CHUNK);
	if ((conf_len > 0 && w->info.conf == NULL) || w->buf == NULL) {
		free_writer(w);
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	}
	if (conf_len > 0)
		memcpy(w->info.conf, conf, conf_len);
	int rv = next_id(s, &w->info.id);
	if (rv == 0)
		rv = run_txn(s, begin_body, w, true, "storage.snapshot-begin.before-sync",
			     "storage.snapshot-begin.after-sync");
	if (rv == 0) {
		char path[4200];
		file_path(s, w->info.id, path, sizeof(path));
		w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (w->fd < 0) {
			rv = file_fail(s, w->info.id, "open", errno);
			storage_snapshot_abort(w);
			return rv;
		}
	}
	if (rv != 0) {
		free_writer(w);
		return rv;
	}
	*out = w;
	return 0;
}

static int flush_chunk(struct storage_snapshot_writer *w)
{
	if (w->used == 0)
		return 0;
	put_be32(w->buf, (uint32_t)w->used);
	put_be32(w->buf + 4, crc32c(0, w->buf + CHUNK_HEADER, w->used));
	int err = write_all(w->fd, w->buf, CHUNK_HEADER + w->used);
	if (err != 0)
		return file_fail(w->s, w->info.id, "write", err);
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
		memcpy(w->buf + CHUNK_HEADER + w->used, p, n);
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

/* The ids whose metadata a commit deleted: their files go once it has committed. */
struct dropped {
	uint64_t keep;
	uint64_t ids[16]; /* rarely more than one; files beyond 16 are removed at open */
	size_t n;
};

/* Every other complete snapshot goes. Incomplete ones stay: another writer may be filling
 * one (a snapshot being received while the snapshotter stores one of its own). Which of two
 * writers commits last is which one raft made newest: an installed snapshot is committed only
 * after the snapshotter's work is done, and every later snapshot covers more. */
static int drop_others(struct storage *s, DB_TXN *txn, struct meta *m, void *arg)
{
	struct dropped *d = arg;
	if (m->info.id == d->keep || !m->complete)
		return 0;
	if (d->n < sizeof(d->ids) / sizeof(d->ids[0]))
		d->ids[d->n++] = m->info.id;
	return delete_snapshot(s, txn, m);
}

struct commit_job {
	struct storage_snapshot_writer *w;
	struct dropped dropped;
};

/* Complete: mark it so and delete every other complete snapshot's metadata, in one synced
 * transaction. Readers find the newest snapshot with a dirty read, so they neither wait for
 * this transaction nor take part in a deadlock with it. */
static int commit_body(struct storage *s, DB_TXN *txn, void *arg)
{
	struct commit_job *j = arg;
	struct storage_snapshot_writer *w = j->w;
	j->dropped = (struct dropped){.keep = w->info.id};
	struct meta m = {
		.info = w->info, .chunks = w->chunks, .complete = true, .format = FORMAT_FILE};
	int rv = put_meta(s, txn, &m);
	return rv != 0 ? rv : walk_meta(s, txn, drop_others, &j->dropped);
}

/* The file's data and its directory entry on disk before any metadata says complete. */
static int sync_file(struct storage_snapshot_writer *w)
{
	if (fsync(w->fd) != 0)
		return file_fail(w->s, w->info.id, "fsync", errno);
	int dfd = open(w->s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return file_fail(w->s, w->info.id, "open its directory", errno);
	int rc = fsync(dfd);
	int err = errno;
	close(dfd);
	return rc == 0 ? 0 : file_fail(w->s, w->info.id, "fsync its directory", err);
}

int storage_snapshot_finish(struct storage_snapshot_writer *w)
{
	if (w->finished)
		return 0;
	int rv = flush_chunk(w);
	if (rv == 0)
		rv = sync_file(w);
	w->finished = rv == 0;
	return rv;
}

int storage_snapshot_commit(struct storage_snapshot_writer *w)
{
	struct storage *s = w->s;
	int rv = storage_snapshot_finish(w);
	struct commit_job j = {.w = w};
	if (rv == 0)
		rv = run_txn(s, commit_body, &j, true, "storage.snapshot-commit.before-sync",
			     "storage.snapshot-commit.after-sync");
	if (rv != 0) {
		storage_snapshot_abort(w);
		return rv;
	}
	for (size_t i = 0; i < j.dropped.n; i++) {
		char path[4200];
		file_path(s, j.dropped.ids[i], path, sizeof(path));
		unlink(path); /* best effort: what stays is removed at the next open */
	}
	free_writer(w);
	return 0;
}

static int abort_body(struct storage *s, DB_TXN *txn, void *arg)
{
	const struct storage_snapshot_writer *w = arg;
	struct meta m = {.info = w->info, .format = FORMAT_FILE};
	return delete_snapshot(s, txn, &m);
}

void storage_snapshot_abort(struct storage_snapshot_writer *w)
{
	if (w == NULL)
		return;
	/* Best effort, keeping the error that led here: whatever stays is incomplete and
	 * removed at the next open. */
	char saved[sizeof(w->s->errmsg)];
	memcpy(saved, w->s->errmsg, sizeof(saved));
	char path[4200];
	file_path(w->s, w->info.id, path, sizeof(path));
	unlink(path);
	run_txn(w->s, abort_body, w, false, NULL, NULL);
	memcpy(w->s->errmsg, saved, sizeof(saved));
	free_writer(w);
}

/* ------------------------------------------------------------------------------------------
 * Reading
 * ---------------------------------------------------------------------------------------- */

/* The newest complete snapshot and, for a file, its file opened. A newer snapshot committed
 * between the two steps may have unlinked that file: then look again. */
static int open_newest(struct storage *s, struct meta *m, int *fd)
{
	*fd = -1;
	for (int tries = 0;; tries++) {
		int rv, attempt = 0;
		do
			rv = newest(s, NULL, m);
		while (storage_retry(s, &rv, &attempt));
		if (rv != 0 || m->format != FORMAT_FILE)
			return rv;
		char path[4200];
		file_path(s, m->info.id, path, sizeof(path));
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd >= 0)
			return 0;
		int err = errno;
		storage_snapshot_info_free(&m->info);
		if (err != ENOENT || tries == 10)
			return file_fail(s, m->info.id, "open", err);
	}
}

/* A reader of snapshot m (its file open as fd, or -1 for format 1); closes fd on failure. */
static int new_reader(struct storage *s, const struct meta *m, int fd,
		      struct storage_snapshot_reader **out)
{
	struct storage_snapshot_reader *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		if (fd >= 0)
			close(fd);
		return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	}
	r->s = s;
	r->id = m->info.id;
	r->format = m->format;
	r->fd = fd;
	r->size = m->info.size;
	r->chunks = m->chunks;
	r->chunk.flags = DB_DBT_REALLOC;
	*out = r;
	return 0;
}

int storage_snapshot_open(struct storage *s, struct storage_snapshot_info *info,
			  struct storage_snapshot_reader **out)
{
	struct meta m;
	int fd;
	int rv = open_newest(s, &m, &fd);
	if (rv == 0)
		rv = new_reader(s, &m, fd, out);
	if (rv == 0 && info != NULL)
		*info = m.info;
	else
		storage_snapshot_info_free(&m.info);
	return rv;
}

int storage_snapshot_reread(struct storage_snapshot_writer *w, struct storage_snapshot_reader **out)
{
	if (!w->finished)
		return storage_failf(w->s, STORAGE_EINVAL,
				     "storage: snapshot %llu is read back before it is finished",
				     (unsigned long long)w->info.id);
	char path[4200];
	file_path(w->s, w->info.id, path, sizeof(path));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return file_fail(w->s, w->info.id, "open", errno);
	struct meta m = {.info = w->info, .chunks = w->chunks, .format = FORMAT_FILE};
	return new_reader(w->s, &m, fd, out);
}

static int read_full(int fd, unsigned char *p, size_t len, size_t *got)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, p + *got, len - *got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

/* The next chunk of a snapshot file into r->chunk, its checksum verified. */
static int next_file_chunk(struct storage_snapshot_reader *r)
{
	struct storage *s = r->s;
	char path[4200];
	file_path(s, r->id, path, sizeof(path));
	unsigned char h[CHUNK_HEADER];
	size_t got;
	int err = read_full(r->fd, h, sizeof(h), &got);
	if (err != 0)
		return file_fail(s, r->id, "read", err);
	uint32_t len = get_be32(h);
	if (got != sizeof(h) || len == 0 || len > STORAGE_SNAPSHOT_CHUNK)
		return storage_failf(
			s, STORAGE_ECORRUPT, "storage: %s: chunk %llu of %llu has a bad header",
			path, (unsigned long long)r->next_chunk, (unsigned long long)r->chunks);
	if (r->chunk.data == NULL) {
		r->chunk.data = malloc(STORAGE_SNAPSHOT_CHUNK);
		if (r->chunk.data == NULL)
			return storage_failf(s, STORAGE_EIO, "storage: out of memory");
	}
	err = read_full(r->fd, r->chunk.data, len, &got);
	if (err != 0)
		return file_fail(s, r->id, "read", err);
	if (got != len || crc32c(0, r->chunk.data, len) != get_be32(h + 4))
		return storage_failf(s, STORAGE_ECORRUPT, "storage: %s: chunk %llu of %llu %s",
				     path, (unsigned long long)r->next_chunk,
				     (unsigned long long)r->chunks,
				     got != len ? "is cut short" : "fails its checksum");
	r->chunk.size = len;
	return 0;
}

/* The next chunk of a format-1 snapshot (in snap.db) into r->chunk. */
static int next_db_chunk(struct storage_snapshot_reader *r)
{
	struct storage *s = r->s;
	unsigned char kb[16];
	chunk_key(kb, r->id, r->next_chunk);
	DBT k = {.data = kb, .size = 16};
	/* A dirty read: no wait behind a writer, no part in a deadlock. A chunk being deleted
	 * reads as missing. */
	int ret = s->snap->get(s->snap, NULL, &k, &r->chunk, DB_READ_UNCOMMITTED);
	if (ret == DB_NOTFOUND)
		return storage_failf(s, STORAGE_ECORRUPT,
				     "storage: %s: snap.db: snapshot %llu is missing chunk %llu of "
				     "%llu",
				     s->dir, (unsigned long long)r->id,
				     (unsigned long long)r->next_chunk,
				     (unsigned long long)r->chunks);
	return ret == 0 ? 0 : storage_fail(s, "snap.db", "DB->get chunk", ret);
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
			int rv = r->format == FORMAT_FILE ? next_file_chunk(r) : next_db_chunk(r);
			if (rv != 0)
				return rv;
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
				     "storage: %s: snapshot %llu holds %llu bytes, its metadata "
				     "says %llu",
				     s->dir, (unsigned long long)r->id,
				     (unsigned long long)r->delivered, (unsigned long long)r->size);
	return 0;
}

void storage_snapshot_close(struct storage_snapshot_reader *r)
{
	if (r == NULL)
		return;
	if (r->fd >= 0)
		close(r->fd);
	free(r->chunk.data);
	free(r);
}
