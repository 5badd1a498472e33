/* Core <-> storage translation for the raftnode (see persist.h). */
#include "persist.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/byteorder.h"

/* ------------------------------------------------------------------------------------------
 * Loading
 * ---------------------------------------------------------------------------------------- */

static int add_entry(void *arg, const struct storage_entry *e)
{
	struct node_loaded *l = arg;
	if (l->n_entries == l->cap_entries) {
		size_t cap = l->cap_entries ? 2 * l->cap_entries : 1024;
		struct raft_entry *ne = realloc(l->entries, cap * sizeof(*ne));
		if (ne == NULL)
			return STORAGE_EIO;
		l->entries = ne;
		l->cap_entries = cap;
	}
	struct raft_entry *re = &l->entries[l->n_entries++];
	re->index = e->index;
	re->term = e->term;
	re->type = e->type;
	re->buf = e->len > 0 ? raft_buf_new(e->data, e->len) : NULL;
	return 0;
}

void *node_snapshot_conf_encode(const struct raft_snapshot_meta *m, size_t *len)
{
	struct raft_buf *c = raft_conf_encode(&m->conf);
	unsigned char *out = malloc(8 + c->len);
	if (out != NULL) {
		put_be64(out, m->conf_index);
		memcpy(out + 8, c->data, c->len);
		*len = 8 + c->len;
	}
	raft_buf_unref(c);
	return out;
}

int node_load(struct storage *s, struct node_loaded *out, char *errmsg, size_t errmsg_len)
{
	memset(out, 0, sizeof(*out));
	struct storage_hard_state hs;
	struct storage_snapshot_info si;
	int rv = storage_load(s, &hs, &si, add_entry, out);
	if (rv != 0) {
		snprintf(errmsg, errmsg_len, "%s",
			 rv == STORAGE_EIO && storage_errmsg(s)[0] == '\0' ? "out of memory"
									   : storage_errmsg(s));
		return rv;
	}
	out->hs.term = hs.term;
	out->hs.vote = hs.vote;
	out->hs.commit = hs.commit;
	if (si.index > 0) {
		out->snap.index = si.index;
		out->snap.term = si.term;
		if (si.conf_len < 8 || raft_conf_decode((unsigned char *)si.conf + 8,
							si.conf_len - 8, &out->snap.conf) != 0) {
			snprintf(errmsg, errmsg_len,
				 "node: snapshot %llu at index %llu: undecodable configuration",
				 (unsigned long long)si.id, (unsigned long long)si.index);
			storage_snapshot_info_free(&si);
			return STORAGE_ECORRUPT;
		}
		out->snap.conf_index = get_be64(si.conf);
	}
	storage_snapshot_info_free(&si);
	return 0;
}

void node_loaded_free(struct node_loaded *l)
{
	for (size_t i = 0; i < l->n_entries; i++)
		raft_buf_unref(l->entries[i].buf);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}

void node_initial_state(const struct node_loaded *l, const struct raft_conf *bootstrap,
			struct raft_initial_state *st)
{
	memset(st, 0, sizeof(*st));
	st->hs = l->hs;
	st->snapshot = l->snap.index > 0 ? &l->snap : NULL;
	st->entries = l->entries;
	st->n_entries = l->n_entries;
	st->bootstrap = bootstrap;
}

/* ------------------------------------------------------------------------------------------
 * Group commit batches
 * ---------------------------------------------------------------------------------------- */

void node_batch_init(struct node_batch *b)
{
	memset(b, 0, sizeof(*b));
}

static void drop_from(struct node_batch *b, size_t keep)
{
	for (size_t i = keep; i < b->sb.n_entries; i++)
		raft_buf_unref(b->bufs[i]);
	b->sb.n_entries = keep;
}

static void reset(struct node_batch *b)
{
	drop_from(b, 0);
	b->sb.clear_log = false;
	b->sb.truncate_from = 0;
	b->sb.hs = NULL;
	b->sb.sync = false;
	b->write_id = 0;
}

void node_batch_free(struct node_batch *b)
{
	reset(b);
	free(b->entries);
	free(b->bufs);
	memset(b, 0, sizeof(*b));
}

bool node_batch_empty(const struct node_batch *b)
{
	return b->write_id == 0;
}

int node_batch_add(struct node_batch *b, const struct raft_update *u)
{
	if (u->write_id == 0)
		return 0;
	if (u->snapshot != NULL) {
		/* The snapshot replaces the whole log, whatever was batched before it. */
		drop_from(b, 0);
		b->sb.clear_log = true;
		b->sb.truncate_from = 0;
	}
	if (u->truncate_from != 0) {
		/* Entries batched at or after the truncation never reach the disk; entries
		 * stored there before this batch are deleted first when it is written. */
		size_t keep = 0;
		while (keep < b->sb.n_entries && b->entries[keep].index < u->truncate_from)
			keep++;
		drop_from(b, keep);
		if (!b->sb.clear_log &&
		    (b->sb.truncate_from == 0 || u->truncate_from < b->sb.truncate_from))
			b->sb.truncate_from = u->truncate_from;
	}
	if (u->n_entries > 0) {
		size_t n = b->sb.n_entries;
		if (n > 0 && u->entries[0].index != b->entries[n - 1].index + 1)
			return STORAGE_EINVAL;
		if (n + u->n_entries > b->cap_entries) {
			size_t cap = b->cap_entries ? b->cap_entries : 64;
			while (cap < n + u->n_entries)
				cap *= 2;
			struct storage_entry *ne = realloc(b->entries, cap * sizeof(*ne));
			if (ne == NULL)
				return STORAGE_EIO;
			b->entries = ne;
			struct raft_buf **nb = realloc(b->bufs, cap * sizeof(*nb));
			if (nb == NULL)
				return STORAGE_EIO;
			b->bufs = nb;
			b->cap_entries = cap;
		}
		for (size_t i = 0; i < u->n_entries; i++) {
			const struct raft_entry *e = &u->entries[i];
			b->bufs[n + i] = raft_buf_ref(e->buf);
			b->entries[n + i] = (struct storage_entry){
				.index = e->index,
				.term = e->term,
				.type = e->type,
				.data = e->buf != NULL ? e->buf->data : NULL,
				.len = e->buf != NULL ? e->buf->len : 0,
			};
		}
		b->sb.n_entries = n + u->n_entries;
	}
	if (u->hs_changed) {
		b->hs.term = u->hs.term;
		b->hs.vote = u->hs.vote;
		b->hs.commit = u->hs.commit;
		b->sb.hs = &b->hs;
	}
	b->sb.sync = b->sb.sync || u->must_sync;
	b->write_id = u->write_id;
	return 0;
}

int node_batch_write(struct storage *s, struct node_batch *b)
{
	if (node_batch_empty(b))
		return 0;
	b->sb.entries = b->entries;
	/* sb.hs points into the batch itself; re-aim it in case the batch struct was moved
	 * (the writer swaps batches by value). */
	if (b->sb.hs != NULL)
		b->sb.hs = &b->hs;
	int rv = storage_write(s, &b->sb);
	if (rv == 0)
		reset(b);
	return rv;
}
