/* The storage writer (group commit, compaction, checkpoints) and the snapshotter threads. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "server/node/node.h"

void node_storage_fatal(struct node *n, int rv, const char *what)
{
	if (rv == STORAGE_EFULL)
		FATAL("%s failed: no space left on device in %s; free space there, then restart "
		      "this member (nothing it acknowledged is lost): %s",
		      what, n->cfg.data_dir, storage_errmsg(n->storage));
	FATAL("%s failed, cannot keep promises: %s", what, storage_errmsg(n->storage));
}

static void post_persisted(struct node *n, uint64_t write_id)
{
	struct mb_item *it = mb_item_new(MB_PERSISTED);
	it->write_id = write_id;
	mailbox_post(&n->mb, it);
}

/* Everything the raft loop handed over since the last round goes into one transaction and
 * one fsync; the core hears PERSISTED for the newest write in it. */
static void *writer_main(void *arg)
{
	struct node *n = arg;
	struct writer *w = &n->w;
	struct node_batch local;
	node_batch_init(&local);
	struct storage_hard_state voted = {0}; /* the last (term, vote) made durable */
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && node_batch_empty(&w->pending) && w->compact_upto == 0 &&
		       !w->checkpoint)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop && node_batch_empty(&w->pending))
			break;
		struct node_batch tmp = local;
		local = w->pending;
		w->pending = tmp;
		raft_index compact = w->compact_upto;
		w->compact_upto = 0;
		bool checkpoint = w->checkpoint;
		w->checkpoint = false;
		w->busy = true;
		pthread_mutex_unlock(&w->mu);

		if (!node_batch_empty(&local)) {
			uint64_t id = local.write_id;
			bool new_vote =
				local.sb.hs != NULL && local.hs.vote != 0 &&
				(local.hs.term != voted.term || local.hs.vote != voted.vote);
			if (local.sb.hs != NULL)
				voted = local.hs;
			int rv = node_batch_write(n->storage, &local);
			if (rv != 0)
				node_storage_fatal(n, rv, "storage write");
			if (new_vote)
				FAILPOINT("node.vote.after-persist");
			post_persisted(n, id);
		}
		if (checkpoint && storage_maybe_checkpoint(n->storage, true) != 0)
			LOG_W("checkpoint: %s", storage_errmsg(n->storage));
		if (compact != 0) {
			int rv = storage_compact(n->storage, compact);
			if (rv == 0)
				rv = storage_maybe_checkpoint(n->storage, false);
			if (rv != 0)
				LOG_W("log compaction up to %" PRIu64 ": %s", compact,
				      storage_errmsg(n->storage));
		}

		pthread_mutex_lock(&w->mu);
		w->busy = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	node_batch_free(&local);
	return NULL;
}

static int store_snapshot(struct node *n, const unsigned char *data, size_t len,
			  const struct raft_snapshot_meta *m)
{
	size_t conf_len;
	void *conf = node_snapshot_conf_encode(m, &conf_len);
	struct storage_snapshot_writer *sw;
	int rv = storage_snapshot_begin(n->storage, m->index, m->term, conf, conf_len, &sw);
	free(conf);
	if (rv != 0)
		return rv;
	for (size_t off = 0; off < len; off += STORAGE_SNAPSHOT_CHUNK) {
		size_t k = len - off < STORAGE_SNAPSHOT_CHUNK ? len - off : STORAGE_SNAPSHOT_CHUNK;
		rv = storage_snapshot_write(sw, data + off, k);
		if (rv != 0) {
			storage_snapshot_abort(sw);
			return rv;
		}
	}
	return storage_snapshot_commit(sw);
}

static void *snapshotter_main(void *arg)
{
	struct node *n = arg;
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->stop && !w->snap_job)
			pthread_cond_wait(&w->cv, &w->mu);
		if (!w->snap_job)
			break;
		unsigned char *data = w->snap_data;
		size_t len = w->snap_len;
		struct raft_snapshot_meta meta = w->snap_meta;
		w->snap_data = NULL; /* ours now */
		w->snap_job = false;
		w->snap_busy = true;
		pthread_mutex_unlock(&w->mu);

		int rv = store_snapshot(n, data, len, &meta);
		free(data);
		struct mb_item *it = mb_item_new(MB_SNAP_STORED);
		it->snap_stored.index = meta.index;
		it->snap_stored.rv = rv;
		if (rv != 0)
			snprintf(it->snap_stored.err, sizeof(it->snap_stored.err), "%s",
				 storage_errmsg(n->storage));
		mailbox_post(&n->mb, it);

		pthread_mutex_lock(&w->mu);
		w->snap_busy = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int writer_start(struct node *n)
{
	struct writer *w = &n->w;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	node_batch_init(&w->pending);
	if (pthread_create(&w->thread, NULL, writer_main, n) != 0)
		return -1;
	if (pthread_create(&w->snap_thread, NULL, snapshotter_main, n) != 0)
		return -1;
	return 0;
}

void writer_stop(struct node *n)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_join(w->snap_thread, NULL);
	free(w->snap_data); /* a job never started */
	node_batch_free(&w->pending);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

void writer_add(struct node *n, const struct raft_update *u)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	int rv = node_batch_add(&w->pending, u);
	if (rv != 0)
		FATAL("update %" PRIu64 " does not follow the pending batch", u->write_id);
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void writer_compact(struct node *n, raft_index upto)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	if (upto > w->compact_upto)
		w->compact_upto = upto;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void writer_checkpoint(struct node *n)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	w->checkpoint = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void writer_barrier(struct node *n)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	while (!node_batch_empty(&w->pending) || w->busy || w->compact_upto != 0 || w->snap_job ||
	       w->snap_busy)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

void writer_snapshot(struct node *n, unsigned char *data, size_t len,
		     const struct raft_snapshot_meta *meta)
{
	struct writer *w = &n->w;
	pthread_mutex_lock(&w->mu);
	if (w->snap_job) /* the raft loop never queues two; keep the newest anyway */
		free(w->snap_data);
	w->snap_data = data;
	w->snap_len = len;
	w->snap_meta = *meta;
	w->snap_job = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}
