/* The storage writer (group commit, compaction, checkpoints) and the snapshotter threads. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Log entries deleted per compaction step (one unsynced transaction, a few ms). */
#define COMPACT_STEP 2000

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
		raft_index compact = w->compact_upto; /* reset once done */
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
		/* One bounded step of compaction per round: the batches arriving meanwhile are
		 * written between the steps. (The whole compaction at once, ~500k entries after
		 * each snapshot at 1M keys, held every write for seconds.) */
		bool more = false;
		if (compact != 0) {
			int rv = storage_compact_step(n->storage, compact, COMPACT_STEP, &more);
			if (rv == 0 && !more)
				rv = storage_maybe_checkpoint(n->storage, false);
			if (rv != 0) {
				more = false;
				LOG_W("log compaction up to %" PRIu64 ": %s", compact,
				      storage_errmsg(n->storage));
			}
		}

		pthread_mutex_lock(&w->mu);
		if (!more && w->compact_upto == compact)
			w->compact_upto = 0;
		w->busy = false;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	node_batch_free(&local);
	return NULL;
}

/* The child stops writing for this long (a hung child: kill it, the snapshot fails). */
#define SNAP_CHILD_IDLE_MS 60000

/* Read from the child's pipe until `buf` is full or the stream ends. 0 and *n, or -1 with
 * why. */
static int read_pipe(int fd, unsigned char *buf, size_t cap, size_t *n, char *why, size_t why_len)
{
	size_t got = 0;
	while (got < cap) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int pr = poll(&p, 1, SNAP_CHILD_IDLE_MS);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr == 0) {
			snprintf(why, why_len,
				 "the snapshot's writer process wrote nothing for %d s",
				 SNAP_CHILD_IDLE_MS / 1000);
			return -1;
		}
		ssize_t k = pr < 0 ? -1 : read(fd, buf + got, cap - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(why, why_len, "reading the snapshot's pipe: %s", strerror(errno));
			return -1;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	*n = got;
	return 0;
}

/* Store what the child streams, chunk by chunk: never more than one chunk in memory. The
 * snapshot is committed only if the child ends the stream and exits 0 (its serialization
 * carries a checksum the restore verifies too). */
static int store_snapshot(struct node *n, int fd, pid_t pid, const struct raft_snapshot_meta *m,
			  uint64_t *bytes, char *why, size_t why_len)
{
	size_t conf_len;
	void *conf = node_snapshot_conf_encode(m, &conf_len);
	struct storage_snapshot_writer *sw = NULL;
	int rv = storage_snapshot_begin(n->storage, m->index, m->term, conf, conf_len, &sw);
	free(conf);
	unsigned char *buf = rv == 0 ? malloc(STORAGE_SNAPSHOT_CHUNK) : NULL;
	if (rv == 0 && buf == NULL)
		rv = STORAGE_EIO;
	bool child_failed = false;
	*bytes = 0;
	while (rv == 0) {
		size_t k = 0;
		if (read_pipe(fd, buf, STORAGE_SNAPSHOT_CHUNK, &k, why, why_len) != 0) {
			child_failed = true;
			break;
		}
		if (k == 0)
			break;
		rv = storage_snapshot_write(sw, buf, k);
		*bytes += k;
	}
	free(buf);
	close(fd);
	if (child_failed || rv != 0)
		kill(pid, SIGKILL); /* whatever it was doing, it is not needed any more */
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!child_failed && rv == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		child_failed = true;
		snprintf(why, why_len, "the snapshot's writer process %s %d",
			 WIFSIGNALED(st) ? "died of signal" : "exited with status",
			 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	}
	if (child_failed || rv != 0) {
		if (rv != 0)
			snprintf(why, why_len, "%s", storage_errmsg(n->storage));
		storage_snapshot_abort(sw);
		return rv != 0 ? rv : STORAGE_EIO;
	}
	rv = storage_snapshot_commit(sw);
	if (rv != 0)
		snprintf(why, why_len, "%s", storage_errmsg(n->storage));
	return rv;
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
		int fd = w->snap_fd;
		pid_t pid = w->snap_pid;
		struct raft_snapshot_meta meta = w->snap_meta;
		w->snap_job = false;
		w->snap_busy = true;
		pthread_mutex_unlock(&w->mu);

		struct mb_item *it = mb_item_new(MB_SNAP_STORED);
		it->snap_stored.index = meta.index;
		it->snap_stored.rv =
			store_snapshot(n, fd, pid, &meta, &it->snap_stored.bytes,
				       it->snap_stored.err, sizeof(it->snap_stored.err));
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
	if (w->snap_job) { /* a job never started: its child ends on the closed pipe */
		close(w->snap_fd);
		kill(w->snap_pid, SIGKILL);
		waitpid(w->snap_pid, NULL, 0);
	}
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
	/* A compaction still going is dropped: the caller (an install) clears the whole log
	 * next, and entries left below the snapshot are skipped at load. */
	w->compact_upto = 0;
	while (!node_batch_empty(&w->pending) || w->busy || w->snap_job || w->snap_busy)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* In the child: everything to the pipe, nothing else touched (no locks, no logging). */
static int pipe_write(void *arg, const void *data, size_t len)
{
	int fd = *(int *)arg;
	const unsigned char *p = data;
	while (len > 0) {
		ssize_t k = write(fd, p, len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		len -= (size_t)k;
	}
	return 0;
}

int writer_snapshot(struct node *n, const struct raft_snapshot_meta *meta)
{
	struct writer *w = &n->w;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		int err = errno;
		close(fds[0]);
		close(fds[1]);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		/* The child: a copy-on-write image of the store at this instant. _exit: no
		 * atexit handlers, no leak check, no flushing of the parent's stdio buffers. */
		int out = fds[1];
		/* Dies with the parent, and holds none of its files: not the data directory's
		 * lock, not the listening sockets (a restarted raftnode must get both at once). */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		close_range(3, (unsigned)out - 1, 0);
		close_range((unsigned)out + 1, ~0u, 0);
		int rv = kv_snapshot_write(n->kv, pipe_write, &out);
		_exit(rv == 0 ? 0 : 1);
	}
	close(fds[1]);
	pthread_mutex_lock(&w->mu);
	/* The raft loop never queues a second job (snap_busy): there is none to replace. */
	w->snap_fd = fds[0];
	w->snap_pid = pid;
	w->snap_meta = *meta;
	w->snap_job = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	return 0;
}
