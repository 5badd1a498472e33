/* The raft loop: the only thread that steps the core and touches the kv store. */
#define _GNU_SOURCE
#include "server/node/node.h"

#include <errno.h>
#include <grpc/status.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/statvfs.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/failpoint.h"
#include "server/node/peer_codec.h"
#include "common/log.h"
#include "raftkv_descriptor_set.h"

/* ---- mailbox ---------------------------------------------------------------------------- */

struct mb_item *mb_item_new(enum mb_kind kind)
{
	struct mb_item *it = calloc(1, sizeof(*it));
	if (it == NULL)
		FATAL("out of memory");
	it->kind = kind;
	return it;
}

void mb_item_free(struct mb_item *it)
{
	switch (it->kind) {
	case MB_PEER_MSGS:
		peer_messages_free(it->peer.msgs, it->peer.n);
		break;
	case MB_CLIENT:
		request_free(it->req);
		break;
	case MB_SNAP_RECEIVED:
		raft_message_release(&it->snap_in.msg);
		kv_store_free(it->snap_in.kv);
		storage_snapshot_abort(it->snap_in.sw);
		break;
	default:
		break;
	}
	free(it);
}

void mailbox_post(struct mailbox *mb, struct mb_item *it)
{
	it->next = NULL;
	pthread_mutex_lock(&mb->mu);
	bool was_empty = mb->head == NULL;
	if (mb->tail != NULL)
		mb->tail->next = it;
	else
		mb->head = it;
	mb->tail = it;
	pthread_mutex_unlock(&mb->mu);
	if (was_empty) {
		uint64_t one = 1;
		ssize_t r = write(mb->efd, &one, sizeof(one));
		(void)r; /* the counter cannot overflow with one write per empty->non-empty */
	}
}

static struct mb_item *mailbox_take(struct mailbox *mb)
{
	uint64_t v;
	ssize_t r = read(mb->efd, &v, sizeof(v));
	(void)r;
	pthread_mutex_lock(&mb->mu);
	struct mb_item *all = mb->head;
	mb->head = mb->tail = NULL;
	pthread_mutex_unlock(&mb->mu);
	return all;
}

void node_request_stop(struct node *n)
{
	mailbox_post(&n->mb, mb_item_new(MB_STOP));
}

/* ---- answering calls -------------------------------------------------------------------- */

static void fill_header(const struct node *n, struct api_header *h, raft_index index)
{
	h->member_id = n->cfg.id;
	h->term = raft_current_term(n->raft);
	h->index = index;
}

static void reply_read(struct node *n, struct tp_call *call, struct api_request *req)
{
	struct api_header h;
	fill_header(n, &h, kv_store_applied_index(n->kv));
	void *resp = NULL;
	size_t len = 0;
	char err[256] = "";
	int st = api_read_reply(req, n->kv, &h, &resp, &len, err, sizeof(err));
	tp_call_reply(call, st, st == 0 ? NULL : err, resp, len, NULL, 0);
	free(resp);
	request_free(req);
}

static void reply_write(struct node *n, struct pending_write *pw, const void *result, size_t rlen)
{
	struct api_header h;
	fill_header(n, &h, pw->index);
	void *resp = NULL;
	size_t len = 0;
	char err[256] = "";
	int st = api_write_reply(pw->req, result, rlen, &h, &resp, &len, err, sizeof(err));
	tp_call_reply(pw->call, st, st == 0 ? NULL : err, resp, len, NULL, 0);
	free(resp);
	request_free(pw->req);
}

/* ---- pending writes: a FIFO ordered by log index ---------------------------------------- */

#define OUTCOME_UNKNOWN                                                                          \
	"leadership changed before the write committed; its outcome is unknown: retry with the " \
	"same write id"

static void writes_push(struct node *n, struct pending_write pw)
{
	/* A new entry at index i means every older pending entry at >= i left our log (a
	 * previous term's proposals a later leader overwrote): those were never applied. */
	while (n->w_len > 0) {
		struct pending_write *back = &n->writes[(n->w_head + n->w_len - 1) % n->w_cap];
		if (back->index < pw.index)
			break;
		service_reply_unavailable(
			n, back->call,
			"leadership changed before the write committed; it was not "
			"applied");
		request_free(back->req);
		n->w_len--;
	}
	if (n->w_len == n->w_cap) {
		size_t cap = n->w_cap ? n->w_cap * 2 : 256;
		struct pending_write *a = malloc(cap * sizeof(*a));
		if (a == NULL)
			FATAL("out of memory");
		for (size_t i = 0; i < n->w_len; i++)
			a[i] = n->writes[(n->w_head + i) % n->w_cap];
		free(n->writes);
		n->writes = a;
		n->w_cap = cap;
		n->w_head = 0;
	}
	n->writes[(n->w_head + n->w_len) % n->w_cap] = pw;
	n->w_len++;
}

static struct pending_write *writes_front(struct node *n)
{
	return n->w_len > 0 ? &n->writes[n->w_head] : NULL;
}

static void writes_pop(struct node *n)
{
	n->w_head = (n->w_head + 1) % n->w_cap;
	n->w_len--;
}

/* Fail pending writes at or below `upto` (0: all): their outcome is unknown to this node. */
static void writes_fail(struct node *n, raft_index upto, const char *why)
{
	struct pending_write *pw;
	while ((pw = writes_front(n)) != NULL && (upto == 0 || pw->index <= upto)) {
		service_reply_unavailable(n, pw->call, why);
		request_free(pw->req);
		writes_pop(n);
	}
}

/* ---- reads ---------------------------------------------------------------------------- */

static void reads_add(struct node *n, uint64_t ctx, struct tp_call *call, struct api_request *req)
{
	if (n->n_reads == n->cap_reads) {
		size_t cap = n->cap_reads ? n->cap_reads * 2 : 64;
		struct pending_read *a = realloc(n->reads, cap * sizeof(*a));
		if (a == NULL)
			FATAL("out of memory");
		n->reads = a;
		n->cap_reads = cap;
	}
	n->reads[n->n_reads++] = (struct pending_read){.ctx = ctx, .call = call, .req = req};
}

/* Serve every read whose point the state machine has reached; with `drop_ctx` != 0 fail the
 * reads of that round instead; with `fail_all` fail every read. */
static void reads_serve(struct node *n, uint64_t drop_ctx, bool fail_all)
{
	raft_index applied = kv_store_applied_index(n->kv);
	size_t k = 0;
	for (size_t i = 0; i < n->n_reads; i++) {
		struct pending_read *pr = &n->reads[i];
		if (fail_all || (drop_ctx != 0 && pr->ctx == drop_ctx)) {
			service_reply_unavailable(n, pr->call,
						  "leadership lost before the read was confirmed");
			request_free(pr->req);
		} else if (pr->index != 0 && pr->index <= applied) {
			reply_read(n, pr->call, pr->req);
		} else {
			n->reads[k++] = *pr;
		}
	}
	n->n_reads = k;
}

static void reads_ready(struct node *n, uint64_t ctx, raft_index index)
{
	for (size_t i = 0; i < n->n_reads; i++)
		if (n->reads[i].ctx == ctx)
			n->reads[i].index = index;
}

/* ---- applying ------------------------------------------------------------------------ */

static void apply_entry(struct node *n, const struct raft_entry *e)
{
	unsigned char *result = NULL;
	size_t rlen = 0;
	if (e->type == RAFT_ENTRY_NORMAL && e->buf != NULL) {
		int rv = kv_apply(n->kv, e->index, e->buf->data, e->buf->len, &result, &rlen);
		n->bytes_since_snap += e->buf->len;
		if (rv == KV_EINDEX)
			FATAL("entry %" PRIu64 " applied twice", e->index);
	} else {
		int rv = kv_advance(n->kv, e->index);
		if (rv != 0)
			FATAL("entry %" PRIu64 " applied twice", e->index);
	}
	struct pending_write *pw;
	while ((pw = writes_front(n)) != NULL && pw->index <= e->index) {
		if (pw->index == e->index && pw->term == e->term && result != NULL)
			reply_write(n, pw, result, rlen);
		else {
			/* Another leader's entry took this index: ours was never applied. */
			service_reply_unavailable(
				n, pw->call,
				"leadership changed before the write committed; it was not "
				"applied");
			request_free(pw->req);
		}
		writes_pop(n);
	}
	free(result);
}

/* Install a snapshot the core accepted: publish it in storage, then swap the state machine.
 * Its data is already on disk and the store restored from it (n->incoming, prepared off
 * the loop: see on_snapshot_received), so this costs a few synced transactions. */
static void install_snapshot(struct node *n, const struct raft_snapshot_meta *m,
			     const struct raft_update *u)
{
	if (n->incoming.kv == NULL || kv_store_applied_index(n->incoming.kv) != m->index)
		FATAL("snapshot %" PRIu64 " installed without its data", m->index);
	/* Everything handed to the writer earlier is durable first, then entries after the
	 * snapshot go, then the snapshot becomes the newest: a crash at any point leaves either
	 * the old state or the snapshot plus entries it covers (skipped at load). */
	writer_barrier(n);
	/* The update's term and vote go first too: the snapshot's term may be above the stored
	 * one, and a log ending above the stored term does not load. The commit index is left
	 * at 0 here (advisory) because the log may not reach it until the snapshot is in. */
	struct storage_hard_state hs = {u->hs.term, u->hs.vote, 0};
	struct storage_batch tb = {
		.truncate_from = m->index + 1, .hs = u->hs_changed ? &hs : NULL, .sync = true};
	int rv = storage_write(n->storage, &tb);
	FAILPOINT("node.install.mid-write");
	if (rv == 0)
		rv = storage_snapshot_commit(n->incoming.sw);
	else
		storage_snapshot_abort(n->incoming.sw);
	n->incoming.sw = NULL;
	if (rv != 0)
		node_storage_fatal(n, rv, "storing the snapshot received");
	/* The snapshot is durable; the log entries it covers are still in storage until the
	 * writer's clear_log batch (storage drops such leftovers at open). */
	FAILPOINT("node.install.after-snapshot-durable");
	kv_store_free(n->kv);
	n->kv = n->incoming.kv;
	n->incoming.kv = NULL;
	n->last_snap_index = m->index;
	n->last_snap_bytes = n->incoming.len;
	n->next_snap_at = m->index + n->cfg.snapshot_entries;
	writes_fail(n, m->index, OUTCOME_UNKNOWN);
	LOG_I("installed snapshot at index %" PRIu64 " term %" PRIu64 " (%.1f MiB)", m->index,
	      m->term, (double)n->incoming.len / MIB);
}

static void handle_update(struct node *n, const struct raft_update *u)
{
	if (u->snapshot != NULL)
		install_snapshot(n, u->snapshot, u);
	if (u->write_id != 0)
		writer_add(n, u);
	for (size_t i = 0; i < u->n_messages; i++)
		peers_send(n, &u->messages[i]);
	peers_kick(n);
	for (size_t i = 0; i < u->n_committed; i++)
		apply_entry(n, &u->committed[i]);
	for (size_t i = 0; i < u->n_reads; i++)
		reads_ready(n, u->reads[i].ctx, u->reads[i].index);
	for (size_t i = 0; i < u->n_dropped_reads; i++)
		reads_serve(n, u->dropped_reads[i], false);
	if (u->n_reads > 0 || u->n_committed > 0)
		reads_serve(n, 0, false);
	if (u->role_changed && u->role != RAFT_LEADER)
		writes_fail(n, 0, OUTCOME_UNKNOWN);
	if (u->role_changed)
		LOG_I("%s in term %" PRIu64 ", leader %" PRIx64, raft_role_name(u->role), u->term,
		      u->leader);
	if (raft_conf_index(n->raft) != n->peers_conf_index)
		peers_sync(n);
}

static int step(struct node *n, const struct raft_event *ev)
{
	struct raft_update u;
	int rv = raft_step(n->raft, ev, &u);
	handle_update(n, &u);
	return rv;
}

/* ---- client requests ------------------------------------------------------------------ */

struct batch {
	struct mb_item **items;
	size_t n, cap;
};

static void batch_push(struct batch *b, struct mb_item *it)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? b->cap * 2 : 64;
		b->items = realloc(b->items, b->cap * sizeof(*b->items));
		if (b->items == NULL)
			FATAL("out of memory");
	}
	b->items[b->n++] = it;
}

static bool refuse(struct node *n, struct mb_item *it)
{
	if (tp_call_deadline_ms(it->call) <= tp_now_ms()) {
		tp_call_reply(it->call, GRPC_STATUS_DEADLINE_EXCEEDED,
			      "deadline passed in the queue", NULL, 0, NULL, 0);
		return true;
	}
	if (n->stopping) {
		service_reply_unavailable(n, it->call, "this node is shutting down");
		return true;
	}
	return false;
}

/* The wall clock in Unix milliseconds: a leader stamps it on every command it proposes, the
 * state machine's clock for session expiry (see kv.h, "Sessions"). */
static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A leader short of disk space takes no writes. With other voters it hands leadership over
 * (check_space), so the answer is UNAVAILABLE: the gateway retries on the next leader. */
static void refuse_nospace(struct node *n, struct tp_call *call)
{
	char why[sizeof(n->alarm_msg) + 128];
	snprintf(why, sizeof(why), "member %s is short of disk space (NOSPACE alarm: %s)",
		 n->cfg.name, n->alarm_msg);
	if (raft_conf_voters(raft_conf_current(n->raft)) > 1)
		service_reply_unavailable(n, call, why);
	else
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, why, NULL, 0, NULL, 0);
}

/* The quota (etcd's quota-backend-bytes): counted in bytes of keys and values held, the same
 * on every member. Checked before proposing, so the store can pass it by at most the writes
 * proposed before it was reached. */
bool node_over_quota(const struct node *n)
{
	return n->cfg.quota_bytes != 0 && kv_store_data_bytes(n->kv) >= n->cfg.quota_bytes;
}

/* Anything but a Delete, or a Txn whose every op is a range or a delete, may add data. */
static bool adds_data(const struct api_request *r)
{
	if (r->method == API_DELETE)
		return false;
	if (r->method != API_TXN)
		return true;
	for (size_t i = 0; i < r->n_success; i++)
		if (r->success[i].kind == API_PUT)
			return true;
	for (size_t i = 0; i < r->n_failure; i++)
		if (r->failure[i].kind == API_PUT)
			return true;
	return false;
}

static void refuse_quota(struct node *n, struct tp_call *call)
{
	char why[256];
	snprintf(why, sizeof(why),
		 "quota exceeded: the store holds %" PRIu64 " bytes of keys and values, "
		 "--quota-bytes is %" PRIu64 " (QUOTA alarm); delete keys to make room",
		 kv_store_data_bytes(n->kv), n->cfg.quota_bytes);
	tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, why, NULL, 0, NULL, 0);
}

/* Propose every write of one mailbox drain as one batch of entries. */
static void propose_writes(struct node *n, struct batch *b)
{
	size_t k = 0;
	uint64_t now = wall_ms();
	struct raft_buf **bufs = malloc((b->n + 1) * sizeof(*bufs));
	if (bufs == NULL)
		FATAL("out of memory");
	for (size_t i = 0; i < b->n; i++) {
		struct mb_item *it = b->items[i];
		bool refused = refuse(n, it);
		if (!refused && raft_role(n->raft) != RAFT_LEADER) {
			service_reply_unavailable(n, it->call, "not the leader");
			refused = true;
		}
		if (!refused && (atomic_load(&n->alarms) & ALARM_NOSPACE)) {
			refuse_nospace(n, it->call);
			refused = true;
		}
		if (!refused && node_over_quota(n) && adds_data(it->req)) {
			refuse_quota(n, it->call);
			refused = true;
		}
		if (refused) {
			mb_item_free(it);
			b->items[i] = NULL;
			continue;
		}
		if (kv_cmd_set_time(it->req->cmd, it->req->cmd_len, now) != 0)
			FATAL("a write request without an encoded command");
		bufs[k++] = raft_buf_new(it->req->cmd, it->req->cmd_len);
		b->items[k - 1] = it;
	}
	if (k > 0) {
		struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .propose = {bufs, k}};
		struct raft_update u;
		int rv = raft_step(n->raft, &ev, &u);
		raft_index first = u.proposed_index;
		raft_term term = u.proposed_term;
		handle_update(n, &u);
		for (size_t i = 0; i < k; i++) {
			struct mb_item *it = b->items[i];
			if (rv == 0) {
				writes_push(n, (struct pending_write){first + i, term, it->call,
								      it->req});
				it->req = NULL;
			} else {
				raft_buf_unref(bufs[i]);
				service_reply_unavailable(n, it->call, raft_strerror(rv));
			}
			mb_item_free(it);
		}
	}
	free(bufs);
	b->n = 0;
}

/* One ReadIndex round for every linearizable read of one mailbox drain. */
static void start_reads(struct node *n, struct batch *b)
{
	uint64_t ctx = ++n->next_read_ctx;
	size_t k = 0;
	for (size_t i = 0; i < b->n; i++) {
		struct mb_item *it = b->items[i];
		if (refuse(n, it)) {
			mb_item_free(it);
			continue;
		}
		if (raft_role(n->raft) != RAFT_LEADER) {
			service_reply_unavailable(n, it->call, "not the leader");
			mb_item_free(it);
			continue;
		}
		reads_add(n, ctx, it->call, it->req);
		it->req = NULL;
		mb_item_free(it);
		k++;
	}
	b->n = 0;
	if (k == 0)
		return;
	struct raft_event ev = {.type = RAFT_EVENT_READ_INDEX, .read_ctx = ctx};
	if (step(n, &ev) != 0)
		reads_serve(n, ctx, false);
}

/* ---- snapshots ---------------------------------------------------------------------- */

/* A snapshot is due after --snapshot-entries entries or --snapshot-bytes of commands, and
 * worth it only once the commands since the last one reach --snapshot-log-percent of its
 * size: rewriting the whole state then costs at most 100/percent bytes per byte of commands
 * (2x at the default 50), whatever the store's size. A forked child serializes it (the raft
 * loop pauses only for the fork); the snapshotter stores it. The core hears SNAPSHOT_TAKEN
 * only once it is stored, so the snapshot the core offers followers is always one storage
 * holds, and a failed store costs the core nothing. */

static void check_space(struct node *n);

static void maybe_snapshot(struct node *n)
{
	raft_index applied = kv_store_applied_index(n->kv);
	if (n->snap_busy || peers_sending_snapshot(n) ||
	    (applied < n->next_snap_at && n->bytes_since_snap < n->cfg.snapshot_bytes))
		return;
	if (n->bytes_since_snap * 100 < n->last_snap_bytes * n->cfg.snapshot_log_percent)
		return;
	/* A snapshot takes as much room as the last one at once: look at the disk now. */
	n->next_space_check_ms = 0;
	check_space(n);
	if (atomic_load(&n->alarms) & ALARM_NOSPACE)
		return;
	/* The configuration stored with the snapshot must be the one in force at `applied`:
	 * wait while a newer configuration entry follows it in the log. */
	raft_term term = raft_term_at(n->raft, applied);
	if (raft_conf_index(n->raft) > applied || term == 0)
		return;
	struct raft_snapshot_meta meta = {.index = applied,
					  .term = term,
					  .conf = *raft_conf_current(n->raft),
					  .conf_index = raft_conf_index(n->raft)};
	int64_t t0 = tp_now_ms();
	n->next_snap_at = applied + n->cfg.snapshot_entries;
	if (writer_snapshot(n, &meta) != 0) {
		LOG_E("snapshot at %" PRIu64 ": cannot start its writer process: %s", applied,
		      strerror(errno));
		return;
	}
	/* Counted again from here; a failed store gives these back (on_snapshot_stored). */
	n->snap_bytes_taken = n->bytes_since_snap;
	n->bytes_since_snap = 0;
	n->snap_busy = true;
	n->snap_started_ms = t0;
	LOG_I("snapshot at %" PRIu64 " (%.1f MiB of commands since the last): forked its writer "
	      "in %" PRId64 " ms, storing",
	      applied, (double)n->snap_bytes_taken / MIB, tp_now_ms() - t0);
}

static void on_snapshot_stored(struct node *n, const struct mb_item *it)
{
	raft_index index = it->snap_stored.index;
	n->snap_busy = false;
	if (it->snap_stored.rv != 0) {
		LOG_E("storing the snapshot at %" PRIu64 " failed: %s", index, it->snap_stored.err);
		/* The commands since the last stored snapshot still count towards the next. */
		n->bytes_since_snap += n->snap_bytes_taken;
		/* Out of space (the free-space watch is off or was outrun): stop now, naming the
		 * cause. Going on is worse: once the disk is full, Berkeley DB has been seen to
		 * spin in its cache allocator instead of failing the writer's next commit, and
		 * the member then hangs, acknowledging nothing (integration_disk_full). A failed
		 * BDB write leaves storage refusing every later commit: the same, at once. */
		int broken = storage_broken(n->storage);
		if (broken != 0 || it->snap_stored.rv == STORAGE_EFULL)
			node_storage_fatal(n, broken != 0 ? broken : STORAGE_EFULL,
					   "storing a snapshot");
		return;
	}
	if (index <= raft_snapshot_index(n->raft))
		return; /* a snapshot received from the leader meanwhile is newer */
	struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_TAKEN,
				.snapshot_taken = {index, n->cfg.snapshot_trailing}};
	int rv = step(n, &ev);
	if (rv != 0)
		LOG_E("snapshot at %" PRIu64 ": the core refused it: %s", index, raft_strerror(rv));
	n->last_snap_index = index;
	n->last_snap_bytes = it->snap_stored.bytes;
	writer_compact(n, index);
	LOG_I("snapshot at index %" PRIu64 " stored: %.1f MiB in %" PRId64 " ms", index,
	      (double)it->snap_stored.bytes / MIB, tp_now_ms() - n->snap_started_ms);
}

/* A received snapshot, already on disk and restored into a store of its own by the restore
 * thread (peers.c): the core decides, and install_snapshot takes both if it accepts. */
static void on_snapshot_received(struct node *n, struct mb_item *it)
{
	struct raft_snapshot_meta *m = &it->snap_in.msg.snapshot;
	if (it->snap_in.kv == NULL) {
		LOG_W("refusing snapshot %" PRIu64 " from %" PRIx64 ": %s", m->index,
		      it->snap_in.msg.from, it->snap_in.err);
		tp_call_reply(it->call, it->snap_in.status, it->snap_in.err, NULL, 0, NULL, 0);
		return;
	}
	if (atomic_load(&n->alarms) & ALARM_NOSPACE) {
		tp_call_reply(it->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			      "this member is short of disk space (NOSPACE alarm)", NULL, 0, NULL,
			      0);
		return;
	}
	/* Moved out of the item: mb_item_free releases whatever is left. */
	n->incoming.kv = it->snap_in.kv;
	n->incoming.sw = it->snap_in.sw;
	n->incoming.len = it->snap_in.len;
	it->snap_in.kv = NULL;
	it->snap_in.sw = NULL;
	struct raft_event ev = {.type = RAFT_EVENT_RECEIVE, .message = &it->snap_in.msg};
	int rv = step(n, &ev);
	bool used = n->incoming.kv == NULL;
	kv_store_free(n->incoming.kv);
	n->incoming.kv = NULL;
	storage_snapshot_abort(n->incoming.sw);
	n->incoming.sw = NULL;
	tp_call_reply(it->call, rv == 0 ? GRPC_STATUS_OK : GRPC_STATUS_INVALID_ARGUMENT,
		      rv == 0 ? NULL : raft_strerror(rv), NULL, 0, NULL, 0);
	if (!used)
		LOG_D("snapshot %" PRIu64 " from %" PRIx64 " not needed", m->index,
		      it->snap_in.msg.from);
}

/* ---- disk space ------------------------------------------------------------------------ */

#define SPACE_CHECK_MS 200

/*
 * The NOSPACE alarm (etcd has the same): below --min-free-bytes plus room for one more
 * snapshot and for Berkeley DB's cache (its dirty pages take disk space when a checkpoint or
 * an eviction writes them out, whether or not new writes come), the member takes no new log
 * entries (as a follower it drops appends carrying
 * entries, as a leader it refuses writes and hands leadership over), takes no snapshots, and
 * asks the writer for a checkpoint, which removes Berkeley DB log files no longer needed. It
 * clears once the free space is back above the threshold by a margin (no flapping). The
 * alarm reaches the leader on every batch this member sends (Cluster.Status lists it).
 */
static void check_space(struct node *n)
{
	int64_t now = tp_now_ms();
	if (n->cfg.min_free_bytes == 0 || now < n->next_space_check_ms)
		return;
	n->next_space_check_ms = now + SPACE_CHECK_MS;
	struct statvfs sv;
	if (statvfs(n->cfg.data_dir, &sv) != 0)
		return;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	uint64_t need = n->cfg.min_free_bytes + n->last_snap_bytes + n->cache_bytes;
	uint64_t margin = need / 4 + (8u << 20);
	bool on = (atomic_load(&n->alarms) & ALARM_NOSPACE) != 0;
	if (!on && avail < need) {
		snprintf(n->alarm_msg, sizeof(n->alarm_msg),
			 "%.1f MiB free in %s, below %.1f MiB (--min-free-bytes %.1f MiB, %.1f MiB "
			 "for the next snapshot, %.1f MiB for the cache)",
			 (double)avail / MIB, n->cfg.data_dir, (double)need / MIB,
			 (double)n->cfg.min_free_bytes / MIB, (double)n->last_snap_bytes / MIB,
			 (double)n->cache_bytes / MIB);
		atomic_fetch_or(&n->alarms, ALARM_NOSPACE);
		LOG_E("NOSPACE alarm: %s; this member takes no new writes or log entries until "
		      "space is freed%s",
		      n->alarm_msg,
		      raft_role(n->raft) == RAFT_LEADER ? ", and hands leadership over" : "");
		writer_checkpoint(n);
		peers_kick_all(n); /* tell the leader now */
	} else if (on && avail >= need + margin) {
		atomic_fetch_and(&n->alarms, ~ALARM_NOSPACE);
		LOG_I("NOSPACE alarm cleared: %.1f MiB free in %s", (double)avail / MIB,
		      n->cfg.data_dir);
		n->alarm_msg[0] = '\0';
		peers_kick_all(n);
	}
	/* A leader hands over (again, until it is done: a transfer gives up after an election
	 * timeout, and asking for the transfer already running changes nothing). */
	if ((atomic_load(&n->alarms) & ALARM_NOSPACE) && raft_role(n->raft) == RAFT_LEADER &&
	    raft_conf_voters(raft_conf_current(n->raft)) > 1) {
		struct raft_event ev = {.type = RAFT_EVENT_TRANSFER, .peer = 0};
		int rv = step(n, &ev);
		/* Once per term at INFO: the alarm may have come before this member was elected. */
		raft_term term = raft_current_term(n->raft);
		if (n->nospace_handover_term != term) {
			n->nospace_handover_term = term;
			LOG_I("NOSPACE alarm: the leader hands leadership over (%s)",
			      raft_strerror(rv));
		} else {
			LOG_D("NOSPACE alarm: handing leadership over (%s)", raft_strerror(rv));
		}
	}
}

/* ---- the loop ----------------------------------------------------------------------- */

static void update_health(struct node *n)
{
	int h = 0;
	if (!n->stopping) {
		h |= 1;
		if (raft_leader(n->raft) != 0 &&
		    kv_store_applied_index(n->kv) >= raft_commit_index(n->raft))
			h |= 2;
	}
	if (h == n->last_health)
		return;
	n->last_health = h;
	tp_server_set_serving(n->server, "", (h & 1) != 0);
	tp_server_set_serving(n->server, "raftkv.v1.KV", (h & 2) != 0);
	tp_server_set_serving(n->server, "raftkv.v1.Cluster", (h & 1) != 0);
}

static void begin_stop(struct node *n)
{
	if (n->stopping)
		return;
	n->stopping = true;
	n->stop_deadline = tp_now_ms() + (int64_t)n->cfg.shutdown_timeout_ms;
	update_health(n);
	if (raft_role(n->raft) == RAFT_LEADER && raft_conf_voters(raft_conf_current(n->raft)) > 1) {
		struct raft_event ev = {.type = RAFT_EVENT_TRANSFER, .peer = 0};
		int rv = step(n, &ev);
		LOG_I("shutting down: handing leadership over (%s)", raft_strerror(rv));
	} else {
		LOG_I("shutting down");
	}
}

/* Stop once leadership is handed over (or the timeout passed), then linger two heartbeat
 * intervals so the last acknowledgements and votes leave the outboxes. */
static bool stop_done(struct node *n)
{
	if (!n->stopping)
		return false;
	int64_t now = tp_now_ms();
	if (n->linger_until != 0)
		return now >= n->linger_until;
	bool handed = raft_role(n->raft) != RAFT_LEADER ||
		      raft_conf_voters(raft_conf_current(n->raft)) <= 1;
	if (!handed && now < n->stop_deadline)
		return false;
	if (!handed)
		LOG_W("shutting down: leadership transfer did not finish in %" PRIu64 " ms",
		      n->cfg.shutdown_timeout_ms);
	else if (raft_leader(n->raft) != 0 && raft_leader(n->raft) != n->cfg.id)
		LOG_I("shutting down: the leader is now %" PRIx64, raft_leader(n->raft));
	n->linger_until = now + 2 * (int64_t)n->cfg.heartbeat_ms;
	return false;
}

static void drain_mailbox(struct node *n)
{
	struct batch writes = {0}, reads = {0};
	struct mb_item *it = mailbox_take(&n->mb);
	while (it != NULL) {
		struct mb_item *next = it->next;
		bool keep = false;
		switch (it->kind) {
		case MB_PEER_MSGS: {
			struct peer *from = peer_find(n, it->peer.from);
			if (from != NULL)
				from->alarms = it->peer.alarms;
			bool full = (atomic_load(&n->alarms) & ALARM_NOSPACE) != 0;
			for (size_t i = 0; i < it->peer.n; i++) {
				/* Short of disk: no new log entries (as if they were lost on the
				 * way; the leader resends once the alarm clears). */
				if (full && it->peer.msgs[i].type == RAFT_MSG_APPEND &&
				    it->peer.msgs[i].n_entries > 0)
					continue;
				struct raft_event ev = {.type = RAFT_EVENT_RECEIVE,
							.message = &it->peer.msgs[i]};
				step(n, &ev);
			}
			break;
		}
		case MB_PEER_INFO: {
			/* A peer that (re)started learns our client address from our stream: a
			 * follower may have no other reason to open one. */
			struct peer *p = peer_find(n, it->info.id);
			if (p != NULL) {
				snprintf(p->client_addr, sizeof(p->client_addr), "%s",
					 it->info.addr);
				if (p->incarnation != it->info.incarnation) {
					p->incarnation = it->info.incarnation;
					peer_hello(p);
				}
			}
			break;
		}
		case MB_CLIENT:
			if (it->req->is_write) {
				batch_push(&writes, it);
				keep = true;
			} else if (it->req->serializable) {
				if (!refuse(n, it)) {
					reply_read(n, it->call, it->req);
					it->req = NULL;
				}
			} else {
				batch_push(&reads, it);
				keep = true;
			}
			break;
		case MB_STATUS:
			service_reply_status(n, it->call);
			break;
		case MB_MEMBERS:
			service_reply_members(n, it->call);
			break;
		case MB_PERSISTED: {
			struct raft_event ev = {.type = RAFT_EVENT_PERSISTED,
						.write_id = it->write_id};
			step(n, &ev);
			break;
		}
		case MB_SNAP_RECEIVED:
			on_snapshot_received(n, it);
			break;
		case MB_SNAP_SENT:
			if (peer_snapshot_sent(n, it->snap_sent.peer, it->snap_sent.xfer,
					       it->snap_sent.ok)) {
				struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_FAILED,
							.peer = it->snap_sent.peer};
				step(n, &ev);
			}
			break;
		case MB_SNAP_STORED:
			on_snapshot_stored(n, it);
			break;
		case MB_STOP:
			begin_stop(n);
			break;
		}
		if (!keep)
			mb_item_free(it);
		it = next;
	}
	if (writes.n > 0)
		propose_writes(n, &writes);
	if (reads.n > 0)
		start_reads(n, &reads);
	free(writes.items);
	free(reads.items);
}

static void *raft_loop(void *arg)
{
	struct node *n = arg;
	struct raft_event tick = {.type = RAFT_EVENT_TICK};
	step(n, &tick); /* a bootstrap entry, if any, is persisted now */
	for (;;) {
		struct epoll_event evs[4];
		int k = epoll_wait(n->epfd, evs, 4, -1);
		if (k < 0 && errno != EINTR)
			FATAL("epoll_wait: %s", strerror(errno));
		for (int i = 0; i < k; i++) {
			if (evs[i].data.fd == n->sigfd) {
				struct signalfd_siginfo si;
				if (read(n->sigfd, &si, sizeof(si)) == sizeof(si))
					LOG_I("signal %u received", si.ssi_signo);
				begin_stop(n);
			}
			if (evs[i].data.fd == n->timerfd) {
				uint64_t ticks = 0;
				if (read(n->timerfd, &ticks, sizeof(ticks)) != sizeof(ticks))
					ticks = 0;
				/* After a stall, catch up a little but never fire a storm of ticks. */
				for (uint64_t t = 0; t < ticks && t < 3; t++)
					step(n, &tick);
				if (tp_now_ms() >= n->next_hello_ms) {
					n->next_hello_ms = tp_now_ms() + 1000;
					peers_retry_hello(n);
				}
				check_space(n);
			}
		}
		drain_mailbox(n);
		maybe_snapshot(n);
		update_health(n);
		if (stop_done(n))
			break;
	}
	/* Answer everyone still waiting; the new leader may still commit their writes, so the
	 * answer says to retry (with the same write id). */
	writes_fail(n, 0, "this node is shutting down; retry with the same write id");
	reads_serve(n, 0, true);
	return NULL;
}

/* ---- start and stop ------------------------------------------------------------------- */

struct node *service_node;

static int snapshot_read(void *arg, void *buf, size_t cap, size_t *n);

static int load_state(struct node *n, char *err, size_t errlen)
{
	struct node_loaded l;
	int rv = node_load(n->storage, &l, err, errlen);
	if (rv != 0) {
		node_loaded_free(&l);
		return -1;
	}
	if (l.snap.index > 0) {
		struct storage_snapshot_reader *r;
		struct storage_snapshot_info si = {0};
		rv = storage_snapshot_open(n->storage, &si, &r);
		n->last_snap_bytes = si.size;
		storage_snapshot_info_free(&si);
		const char *why = storage_errmsg(n->storage);
		if (rv == 0) {
			rv = kv_snapshot_restore(n->kv, snapshot_read, r);
			why = kv_strerror(rv);
			storage_snapshot_close(r);
		}
		if (rv != 0) {
			snprintf(err, errlen, "restoring snapshot %" PRIu64 ": %s", l.snap.index,
				 why);
			node_loaded_free(&l);
			return -1;
		}
		n->last_snap_index = l.snap.index;
	}
	n->next_snap_at = n->last_snap_index + n->cfg.snapshot_entries;
	bool empty = l.hs.term == 0 && l.snap.index == 0 && l.n_entries == 0;
	if (empty && n->cfg.initial.n == 0) {
		snprintf(err, errlen,
			 "the data directory is empty and --initial-cluster is not set");
		node_loaded_free(&l);
		return -1;
	}
	struct raft_initial_state st;
	node_initial_state(&l, &n->cfg.initial, &st);
	struct raft_config rc;
	raft_config_default(&rc, n->cfg.id);
	rc.seed = n->cfg.id ^ (uint64_t)tp_now_ms();
	rc.heartbeat_ticks = (unsigned)(n->cfg.heartbeat_ms / n->cfg.tick_ms);
	rc.election_ticks = (unsigned)(n->cfg.election_ms / n->cfg.tick_ms);
	rc.check_quorum = true;
	rc.pre_vote = true;
	rv = raft_new(&rc, &st, &n->raft, err, errlen);
	node_loaded_free(&l);
	if (rv != 0)
		return -1;
	LOG_I("loaded: term %" PRIu64 ", snapshot %" PRIu64 ", log %" PRIu64 "..%" PRIu64 "%s",
	      raft_current_term(n->raft), raft_snapshot_index(n->raft), raft_first_index(n->raft),
	      raft_last_index(n->raft), empty ? " (new member, bootstrapping)" : "");
	return 0;
}

static int snapshot_read(void *arg, void *buf, size_t cap, size_t *n)
{
	return storage_snapshot_read(arg, buf, cap, n);
}

/* The cluster id is stored at bootstrap; a restart keeps it whatever the flags say. The name
 * goes first and the cluster id last: a crash in between leaves no cluster id, and the next
 * start simply stores both again. (Directories where the name went missing after the id,
 * written by 0.5, get it stored now.) */
static int cluster_identity(struct node *n, char *err, size_t errlen)
{
	unsigned char buf[8];
	size_t len = 0;
	int rv = storage_meta_get(n->storage, "cluster_id", buf, sizeof(buf), &len);
	if (rv == STORAGE_ENOENT) {
		rv = storage_meta_put(n->storage, "name", n->cfg.name, strlen(n->cfg.name), true);
		put_be64(buf, n->cfg.cluster_id);
		if (rv == 0)
			rv = storage_meta_put(n->storage, "cluster_id", buf, 8, true);
	} else if (rv == 0 && len == 8) {
		n->cfg.cluster_id = get_be64(buf);
		char name[sizeof(n->cfg.name)];
		rv = storage_meta_get(n->storage, "name", name, sizeof(name) - 1, &len);
		if (rv == STORAGE_ENOENT) {
			rv = storage_meta_put(n->storage, "name", n->cfg.name, strlen(n->cfg.name),
					      true);
		} else if (rv == 0) {
			name[len] = '\0';
			if (strcmp(name, n->cfg.name) != 0) {
				snprintf(err, errlen,
					 "the data directory belongs to member \"%s\", not \"%s\"",
					 name, n->cfg.name);
				return -1;
			}
		}
	} else if (rv == 0) {
		snprintf(err, errlen, "meta.db: cluster_id has %zu bytes, expected 8", len);
		return -1;
	}
	if (rv != 0) {
		snprintf(err, errlen, "reading the member's identity: %s",
			 storage_errmsg(n->storage)[0] ? storage_errmsg(n->storage)
						       : "unexpected storage error");
		return -1;
	}
	return 0;
}

static int start_server(struct node *n, char *err, size_t errlen)
{
	const char *listen[2] = {n->cfg.listen_peer, n->cfg.listen_client};
	static const char *const health[] = {"raftkv.v1.KV", "raftkv.v1.Cluster", "raftkv.v1.Raft"};
	/* Peer batches (up to 2 MiB, or one entry as large as a request) and snapshot chunks
	 * (1 MiB) must always fit, whatever the client limit. */
	size_t max_recv = n->cfg.max_request_bytes + (4u << 20);
	if (max_recv < 8u << 20)
		max_recv = 8u << 20;
	struct tp_server_options o = {
		.listen = listen,
		.n_listen = n->cfg.listen_client[0] != '\0' ? 2 : 1,
		.methods = node_methods,
		.n_methods = node_n_methods,
		.max_recv_bytes = max_recv,
		.health_services = health,
		.n_health_services = 3,
		.descriptor_set = raftkv_descriptor_set,
		.descriptor_set_len = raftkv_descriptor_set_len,
	};
	n->server = tp_server_new(n->loop, &o, err, errlen);
	if (n->server == NULL)
		return -1;
	tp_server_set_serving(n->server, "raftkv.v1.Raft", true);
	return 0;
}

/* Undo what node_start did before its threads started. */
static void start_failed(struct node *n)
{
	raft_destroy(n->raft);
	kv_store_free(n->kv);
	storage_close(n->storage);
	if (n->mb.efd >= 0)
		close(n->mb.efd);
	pthread_mutex_destroy(&n->mb.mu);
	service_node = NULL;
	free(n);
}

int node_start(const struct node_config *cfg, int sigfd, struct node **out, char *err,
	       size_t errlen)
{
	struct node *n = calloc(1, sizeof(*n));
	if (n == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n->cfg = *cfg;
	n->sigfd = sigfd;
	kv_options_default(&n->kv_opts);
	n->kv_opts.max_key_bytes = (uint32_t)cfg->max_key_bytes;
	n->kv_opts.max_value_bytes = (uint32_t)cfg->max_value_bytes;
	n->kv_opts.max_txn_ops = (uint32_t)cfg->max_txn_ops;
	n->kv_opts.session_ttl_ms = cfg->session_ttl_ms;
	n->last_health = -1;
	pthread_mutex_init(&n->mb.mu, NULL);
	n->mb.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	n->kv = kv_store_new(&n->kv_opts);
	service_node = n;

	struct storage_options so;
	storage_options_default(&so);
	n->cache_bytes = so.cache_bytes;
	if (n->mb.efd < 0 || n->kv == NULL) {
		snprintf(err, errlen, "out of memory or file descriptors");
		start_failed(n);
		return -1;
	}
	if (storage_open(cfg->data_dir, &so, &n->storage, err, errlen) != 0 ||
	    cluster_identity(n, err, errlen) != 0 || load_state(n, err, errlen) != 0) {
		start_failed(n);
		return -1;
	}

	snprintf(n->md_from, sizeof(n->md_from), "%" PRIu64, cfg->id);
	snprintf(n->md_cluster, sizeof(n->md_cluster), "%016" PRIx64, n->cfg.cluster_id);
	n->peer_md[0] = (struct tp_md){"raftkv-from", n->md_from, 0};
	n->peer_md[1] = (struct tp_md){"raftkv-cluster", n->md_cluster, 0};
	n->peer_md[2] = (struct tp_md){"raftkv-client-addr", n->cfg.advertise_client, 0};
	snprintf(n->md_incarnation, sizeof(n->md_incarnation), "%" PRId64, tp_now_ms());
	n->peer_md[3] = (struct tp_md){"raftkv-incarnation", n->md_incarnation, 0};

	n->loop = tp_loop_new();
	if (n->loop == NULL || start_server(n, err, errlen) != 0)
		return -1;
	if (writer_start(n) != 0) {
		snprintf(err, errlen, "cannot start the storage writer");
		return -1;
	}
	peers_sync(n);

	n->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	n->epfd = epoll_create1(EPOLL_CLOEXEC);
	struct itimerspec its = {
		.it_interval = {(time_t)(cfg->tick_ms / 1000),
				(long)(cfg->tick_ms % 1000) * 1000000},
		.it_value = {(time_t)(cfg->tick_ms / 1000), (long)(cfg->tick_ms % 1000) * 1000000},
	};
	struct epoll_event e1 = {.events = EPOLLIN, .data.fd = n->timerfd};
	struct epoll_event e2 = {.events = EPOLLIN, .data.fd = n->mb.efd};
	struct epoll_event e3 = {.events = EPOLLIN, .data.fd = n->sigfd};
	if (n->timerfd < 0 || n->epfd < 0 || timerfd_settime(n->timerfd, 0, &its, NULL) != 0 ||
	    epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->timerfd, &e1) != 0 ||
	    epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->mb.efd, &e2) != 0 ||
	    (n->sigfd >= 0 && epoll_ctl(n->epfd, EPOLL_CTL_ADD, n->sigfd, &e3) != 0)) {
		snprintf(err, errlen, "timerfd/epoll: %s", strerror(errno));
		return -1;
	}
	if (pthread_create(&n->thread, NULL, raft_loop, n) != 0) {
		snprintf(err, errlen, "cannot start the raft loop thread");
		return -1;
	}
	LOG_I("serving as %s (id %" PRIx64 ") on %s%s%s, cluster %s", cfg->name, cfg->id,
	      cfg->listen_peer, cfg->listen_client[0] ? " and " : "", cfg->listen_client,
	      n->md_cluster);
	*out = n;
	return 0;
}

int node_wait(struct node *n)
{
	pthread_join(n->thread, NULL);
	/* The server answers calls still queued in the mailbox (UNAVAILABLE) and stops. */
	tp_server_free(n->server);
	peers_free_all(n);
	tp_loop_free(n->loop);
	/* No gRPC callback runs any more: no new restore thread. Stop the one running. */
	atomic_store(&n->restore_cancel, true);
	if (n->restore_started)
		pthread_join(n->restore_thread, NULL);
	struct mb_item *it = mailbox_take(&n->mb);
	while (it != NULL) {
		struct mb_item *next = it->next;
		mb_item_free(it);
		it = next;
	}
	writer_stop(n);
	/* The writer's last PERSISTED (and a snapshotter result) may have arrived meanwhile. */
	for (it = mailbox_take(&n->mb); it != NULL;) {
		struct mb_item *next = it->next;
		mb_item_free(it);
		it = next;
	}
	raft_destroy(n->raft);
	kv_store_free(n->kv);
	storage_close(n->storage);
	close(n->timerfd);
	close(n->epfd);
	close(n->mb.efd);
	free(n->writes);
	free(n->reads);
	pthread_mutex_destroy(&n->mb.mu);
	LOG_I("stopped");
	free(n);
	return 0;
}
