/* Peers: one outbound message stream per peer (batched by pull), snapshot transfers in
 * chunks, and the raftkv.v1.Raft handlers that receive both. */
#include <grpc/status.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/failpoint.h"
#include "common/log.h"
#include "server/node/node.h"
#include "server/node/peer_codec.h"

/* Outbox bounds: a peer that is down must not grow our memory. Raft resends what is lost. */
#define OUTBOX_MAX_MSGS  4096
#define BATCH_MAX_MSGS   256
#define BATCH_MAX_BYTES  (2u << 20)
#define SNAP_CHUNK_BYTES (1u << 20)
#define SNAP_TIMEOUT_MS  (10 * 60 * 1000)
#define SNAP_MAX_BYTES   ((size_t)4 << 30)

static const char SEND_METHOD[] = "/raftkv.v1.Raft/Send";
static const char INSTALL_METHOD[] = "/raftkv.v1.Raft/InstallSnapshot";

struct peer *peer_find(struct node *n, raft_id id)
{
	for (size_t i = 0; i < n->n_peers; i++)
		if (n->peers[i]->id == id)
			return n->peers[i];
	return NULL;
}

static size_t msg_bytes(const struct raft_message *m)
{
	size_t b = 64;
	for (size_t i = 0; i < m->n_entries; i++)
		b += 24 + (m->entries[i].buf != NULL ? m->entries[i].buf->len : 0);
	return b;
}

/* Pull: everything queued (up to the batch bounds) leaves as one RaftBatch. */
static enum tp_pull outbox_pull(void *arg, void **msg, size_t *len)
{
	struct peer *p = arg;
	pthread_mutex_lock(&p->mu);
	if (p->n_out == 0 && p->hello) {
		p->hello = false;
		pthread_mutex_unlock(&p->mu);
		return peer_batch_encode(NULL, 0, atomic_load(&p->node->alarms), msg, len) == 0
			       ? TP_PULL_MSG
			       : TP_PULL_NONE;
	}
	p->hello = false; /* any batch opens the stream too */
	if (p->n_out == 0) {
		pthread_mutex_unlock(&p->mu);
		return TP_PULL_NONE;
	}
	/* Stop before a message that would take the batch over the bound (the first always goes:
	 * the receiver's limit leaves room for one entry as large as a client request). */
	size_t k = 0, bytes = 0;
	while (k < p->n_out && k < BATCH_MAX_MSGS) {
		size_t b = msg_bytes(&p->out[k]);
		if (k > 0 && bytes + b > BATCH_MAX_BYTES)
			break;
		bytes += b;
		k++;
	}
	int rv = peer_batch_encode(p->out, k, atomic_load(&p->node->alarms), msg, len);
	for (size_t i = 0; i < k; i++)
		raft_message_release(&p->out[i]);
	memmove(p->out, p->out + k, (p->n_out - k) * sizeof(*p->out));
	p->n_out -= k;
	pthread_mutex_unlock(&p->mu);
	if (rv != 0) {
		LOG_E("encoding a batch for %" PRIx64 " failed", p->id);
		return TP_PULL_NONE;
	}
	return TP_PULL_MSG;
}

static void outbox_done(void *arg, const struct tp_result *r)
{
	struct peer *p = arg;
	if (r->status != GRPC_STATUS_OK && r->status != GRPC_STATUS_CANCELLED)
		LOG_D("stream to %" PRIx64 " ended: %d %s", p->id, r->status, r->details);
	/* The peer may not have seen our stream's metadata: say hello on the next call. */
	pthread_mutex_lock(&p->mu);
	p->hello = true;
	pthread_mutex_unlock(&p->mu);
}

void peers_retry_hello(struct node *n)
{
	for (size_t i = 0; i < n->n_peers; i++) {
		struct peer *p = n->peers[i];
		pthread_mutex_lock(&p->mu);
		bool pending = p->hello;
		pthread_mutex_unlock(&p->mu);
		if (pending)
			tp_ostream_kick(p->stream);
	}
}

static struct peer *peer_new(struct node *n, const struct raft_member *m)
{
	struct peer *p = calloc(1, sizeof(*p));
	if (p == NULL)
		FATAL("out of memory");
	p->id = m->id;
	p->node = n;
	snprintf(p->addr, sizeof(p->addr), "%s", m->addr);
	pthread_mutex_init(&p->mu, NULL);
	char name[64];
	const char *target = config_member_peer(m->addr, name, sizeof(name));
	struct tp_channel_options o = {
		.max_recv_bytes = 4u << 20,
		.reconnect_backoff_min_ms = 100,
		.reconnect_backoff_max_ms = 1000,
		.keepalive_ms = 10000,
	};
	p->ch = tp_channel_new(n->loop, target, &o);
	p->stream =
		tp_ostream_new(p->ch, SEND_METHOD, n->peer_md, 4, 0, outbox_pull, outbox_done, p);
	if (p->ch == NULL || p->stream == NULL)
		FATAL("cannot create the channel to %s", m->addr);
	LOG_I("peer %s (id %" PRIx64 ")", m->addr, m->id);
	peer_hello(p);
	return p;
}

/* ---- outgoing snapshots ------------------------------------------------------------------ */

struct snap_send {
	struct peer *peer;
	uint64_t xfer; /* names this transfer in MB_SNAP_SENT (struct snapxfer's id) */
	struct raft_message msg;
	struct storage_snapshot_reader *reader;
	struct tp_ostream *stream;
	uint64_t offset;
	bool first, ended, failed; /* gRPC loop only */
	atomic_bool done;          /* snap_done ran: the outcome is in the mailbox */
	unsigned char *buf;
};

static enum tp_pull snap_pull(void *arg, void **msg, size_t *len)
{
	struct snap_send *s = arg;
	if (s->ended)
		return TP_PULL_END;
	size_t n = 0;
	if (storage_snapshot_read(s->reader, s->buf, SNAP_CHUNK_BYTES, &n) != 0) {
		LOG_W("reading the snapshot for %" PRIx64 ": %s", s->peer->id,
		      storage_errmsg(s->peer->node->storage));
		s->failed = s->ended = true;
		return TP_PULL_END;
	}
	bool last = n == 0;
	int rv = peer_chunk_encode(s->first ? &s->msg : NULL, s->offset, s->buf, n, last,
				   s->offset + n, msg, len);
	s->first = false;
	s->offset += n;
	s->ended = last;
	if (rv != 0) {
		s->failed = s->ended = true;
		return TP_PULL_END;
	}
	return TP_PULL_MSG;
}

static void post_snap_sent(struct node *n, raft_id peer, uint64_t xfer, bool ok)
{
	struct mb_item *it = mb_item_new(MB_SNAP_SENT);
	it->snap_sent.peer = peer;
	it->snap_sent.ok = ok;
	it->snap_sent.xfer = xfer;
	mailbox_post(&n->mb, it);
}

static void snap_done(void *arg, const struct tp_result *r)
{
	struct snap_send *s = arg;
	bool ok = r->status == GRPC_STATUS_OK && !s->failed;
	if (!ok)
		LOG_W("snapshot to %" PRIx64 " failed: %d %s", s->peer->id, r->status, r->details);
	/* Mark it ended before the outcome can reach the raft loop, which may free s. */
	struct node *n = s->peer->node;
	raft_id id = s->peer->id;
	uint64_t xfer = s->xfer;
	atomic_store(&s->done, true);
	post_snap_sent(n, id, xfer, ok);
}

static void snap_free(struct snap_send *s)
{
	if (s == NULL)
		return;
	tp_ostream_free(s->stream);
	storage_snapshot_close(s->reader);
	raft_message_release(&s->msg);
	free(s->buf);
	free(s);
}

/* Start transfer `xfer` of the stored snapshot the core refers to in `m` (raft loop). */
static void snap_start(struct node *n, struct peer *p, const struct raft_message *m, uint64_t xfer)
{
	struct snap_send *s = calloc(1, sizeof(*s));
	struct storage_snapshot_info info = {0};
	bool ok = s != NULL && (s->buf = malloc(SNAP_CHUNK_BYTES)) != NULL &&
		  storage_snapshot_open(n->storage, &info, &s->reader) == 0;
	if (ok && info.index != m->snapshot.index) {
		/* The snapshotter has not stored the core's newest snapshot yet: retry later. */
		LOG_D("snapshot %" PRIu64 " for %" PRIx64 " not stored yet (have %" PRIu64 ")",
		      m->snapshot.index, p->id, info.index);
		ok = false;
	}
	storage_snapshot_info_free(&info);
	if (!ok) {
		if (s != NULL) {
			storage_snapshot_close(s->reader);
			free(s->buf);
			free(s);
		}
		/* The core is mid-update here: report the failure through the mailbox. */
		post_snap_sent(n, p->id, xfer, false);
		return;
	}
	s->xfer = xfer;
	s->peer = p;
	s->first = true;
	raft_message_copy(&s->msg, m);
	s->stream = tp_ostream_new(p->ch, INSTALL_METHOD, n->peer_md, 4, SNAP_TIMEOUT_MS, snap_pull,
				   snap_done, s);
	p->snap = s;
	LOG_I("sending snapshot %" PRIu64 " (term %" PRIu64 ") to %" PRIx64, m->snapshot.index,
	      m->term, p->id);
	tp_ostream_kick(s->stream);
}

/* The core asks for a snapshot to be sent to p (raft loop): never dropped, see snapxfer.h. */
static void snap_request(struct node *n, struct peer *p, const struct raft_message *m)
{
	bool ended = p->snap == NULL || atomic_load(&p->snap->done);
	uint64_t xfer;
	switch (snapxfer_request(&p->xfer, m->snapshot.index, m->term, ended, &xfer)) {
	case SNAPXFER_KEEP:
		LOG_D("snapshot %" PRIu64 " to %" PRIx64 " already on its way", m->snapshot.index,
		      p->id);
		return;
	case SNAPXFER_RESTART:
		if (p->snap != NULL) {
			LOG_I("snapshot %" PRIu64 " (term %" PRIu64 ") to %" PRIx64
			      " replaces the transfer of snapshot %" PRIu64 " (term %" PRIu64 ")",
			      m->snapshot.index, m->term, p->id, p->snap->msg.snapshot.index,
			      p->snap->msg.term);
			snap_free(p->snap); /* cancels it; its late outcome is ignored */
			p->snap = NULL;
		}
		break;
	case SNAPXFER_START:
		break;
	}
	snap_start(n, p, m, xfer);
}

bool peer_snapshot_sent(struct node *n, raft_id id, uint64_t xfer, bool ok)
{
	struct peer *p = peer_find(n, id);
	if (p == NULL)
		return false;
	if (p->snap != NULL && p->snap->xfer == xfer) {
		if (ok)
			LOG_I("snapshot sent to %" PRIx64, id);
		snap_free(p->snap);
		p->snap = NULL;
	}
	return snapxfer_ended(&p->xfer, xfer, ok);
}

/* ---- the peer set ------------------------------------------------------------------------ */

static void peer_free(struct peer *p)
{
	snap_free(p->snap);
	tp_ostream_free(p->stream);
	tp_channel_free(p->ch);
	for (size_t i = 0; i < p->n_out; i++)
		raft_message_release(&p->out[i]);
	free(p->out);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

void peers_sync(struct node *n)
{
	const struct raft_conf *c = raft_conf_current(n->raft);
	n->peers_conf_index = raft_conf_index(n->raft);
	for (size_t i = 0; i < n->n_peers; i++)
		n->peers[i]->seen = false;
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_member *m = &c->members[i];
		if (m->id == n->cfg.id)
			continue;
		struct peer *p = peer_find(n, m->id);
		if (p != NULL && strcmp(p->addr, m->addr) == 0) {
			p->seen = true;
			continue;
		}
		if (p != NULL) { /* same id, new address: start over with a new channel */
			LOG_I("peer %" PRIx64 " moved to %s", m->id, m->addr);
			for (size_t j = 0; j < n->n_peers; j++)
				if (n->peers[j] == p)
					n->peers[j] = n->peers[--n->n_peers];
			peer_free(p);
		}
		if (n->n_peers < RAFT_MAX_MEMBERS) {
			p = peer_new(n, m);
			p->seen = true;
			n->peers[n->n_peers++] = p;
		}
	}
	size_t k = 0;
	for (size_t i = 0; i < n->n_peers; i++) {
		if (n->peers[i]->seen) {
			n->peers[k++] = n->peers[i];
		} else {
			LOG_I("peer %" PRIx64 " left the configuration", n->peers[i]->id);
			peer_free(n->peers[i]);
		}
	}
	n->n_peers = k;
}

bool peers_sending_snapshot(struct node *n)
{
	for (size_t i = 0; i < n->n_peers; i++)
		if (n->peers[i]->snap != NULL)
			return true;
	return false;
}

void peers_free_all(struct node *n)
{
	for (size_t i = 0; i < n->n_peers; i++)
		peer_free(n->peers[i]);
	n->n_peers = 0;
}

void peers_kick_all(struct node *n)
{
	for (size_t i = 0; i < n->n_peers; i++)
		peer_hello(n->peers[i]);
}

void peer_hello(struct peer *p)
{
	pthread_mutex_lock(&p->mu);
	p->hello = true;
	pthread_mutex_unlock(&p->mu);
	tp_ostream_kick(p->stream);
}

void peers_send(struct node *n, const struct raft_message *m)
{
	struct peer *p = peer_find(n, m->to);
	if (p == NULL)
		return;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		snap_request(n, p, m);
		return;
	}
	pthread_mutex_lock(&p->mu);
	if (p->n_out >= OUTBOX_MAX_MSGS) {
		pthread_mutex_unlock(&p->mu);
		LOG_D("outbox to %" PRIx64 " full: dropping a %s", p->id,
		      raft_msg_type_name(m->type));
		return;
	}
	if (p->n_out == p->cap_out) {
		size_t cap = p->cap_out ? p->cap_out * 2 : 64;
		struct raft_message *a = realloc(p->out, cap * sizeof(*a));
		if (a == NULL)
			FATAL("out of memory");
		p->out = a;
		p->cap_out = cap;
	}
	raft_message_copy(&p->out[p->n_out++], m);
	pthread_mutex_unlock(&p->mu);
	p->kick = true; /* peers_kick, once the whole update is queued */
}

void peers_kick(struct node *n)
{
	for (size_t i = 0; i < n->n_peers; i++) {
		if (n->peers[i]->kick) {
			n->peers[i]->kick = false;
			tp_ostream_kick(n->peers[i]->stream);
		}
	}
}

/* ---- incoming: raftkv.v1.Raft/Send and /InstallSnapshot (gRPC loop thread) --------------- */

/* Check the stream's cluster id; returns the sender's id, or 0 after answering the call. */
static raft_id check_sender(struct node *n, struct tp_call *call)
{
	size_t len;
	size_t clen;
	const char *cluster = tp_call_metadata(call, "raftkv-cluster", &clen);
	const char *from = tp_call_metadata(call, "raftkv-from", &len);
	if (cluster == NULL || from == NULL || len == 0 || len > 20) {
		tp_call_reply(call, GRPC_STATUS_INVALID_ARGUMENT,
			      "raftkv-from and raftkv-cluster metadata are required", NULL, 0, NULL,
			      0);
		return 0;
	}
	if (clen != strlen(n->md_cluster) || memcmp(cluster, n->md_cluster, clen) != 0) {
		tp_call_reply(call, GRPC_STATUS_FAILED_PRECONDITION,
			      "this node belongs to another cluster", NULL, 0, NULL, 0);
		return 0;
	}
	char buf[24];
	memcpy(buf, from, len);
	buf[len] = '\0';
	return strtoull(buf, NULL, 10);
}

struct in_stream {
	raft_id from;
	bool answered;
	bool holds_slot; /* InstallSnapshot: this stream owns the one receiving slot */
	/* InstallSnapshot */
	struct raft_message msg;
	bool have_msg;
	struct storage_snapshot_writer *sw; /* the data so far, in storage */
	uint64_t len;
};

static struct in_stream *in_stream_get(struct node *n, struct tp_call *call, bool *fresh)
{
	struct in_stream *s = tp_call_user(call);
	*fresh = false;
	if (s != NULL)
		return s;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		FATAL("out of memory");
	tp_call_set_user(call, s);
	*fresh = true;
	s->from = check_sender(n, call);
	s->answered = s->from == 0;
	return s;
}

/*
 * One snapshot is received at a time. Its chunks go into a storage snapshot as they arrive
 * (never held whole in memory); once the last is in, a restore thread makes the data durable
 * and restores a store from it, off both loops, then hands both to the raft loop
 * (MB_SNAP_RECEIVED), which installs them if the core accepts. The receiving slot is held
 * from the first chunk until that thread ends (or the stream fails before it starts).
 */
static atomic_bool receiving_snapshot;

static void in_stream_free(struct tp_call *call, struct in_stream *s)
{
	if (s->holds_slot)
		atomic_store(&receiving_snapshot, false);
	raft_message_release(&s->msg);
	storage_snapshot_abort(s->sw);
	free(s);
	tp_call_set_user(call, NULL);
}

void peers_on_send(void *arg, struct tp_call *call, const void *req, size_t len)
{
	(void)arg;
	struct node *n = service_node;
	bool fresh;
	struct in_stream *s = in_stream_get(n, call, &fresh);
	if (req == NULL) {
		if (!s->answered)
			tp_call_reply(call, GRPC_STATUS_OK, NULL, NULL, 0, NULL, 0);
		in_stream_free(call, s);
		return;
	}
	if (s->answered)
		return;
	if (fresh) {
		size_t alen;
		const char *addr = tp_call_metadata(call, "raftkv-client-addr", &alen);
		size_t ilen;
		const char *inc = tp_call_metadata(call, "raftkv-incarnation", &ilen);
		if (addr != NULL && alen < RAFT_ADDR_MAX) {
			struct mb_item *it = mb_item_new(MB_PEER_INFO);
			it->info.id = s->from;
			if (inc != NULL && ilen < 24) {
				char buf[24];
				memcpy(buf, inc, ilen);
				buf[ilen] = '\0';
				it->info.incarnation = strtoull(buf, NULL, 10);
			}
			memcpy(it->info.addr, addr, alen);
			mailbox_post(&n->mb, it);
		}
	}
	struct raft_message *msgs;
	size_t k;
	char err[200];
	uint32_t alarms = 0;
	if (peer_batch_decode(req, len, &msgs, &k, &alarms, err, sizeof(err)) != 0) {
		LOG_W("malformed batch from %" PRIx64 ": %s", s->from, err);
		tp_call_reply(call, GRPC_STATUS_INVALID_ARGUMENT, err, NULL, 0, NULL, 0);
		s->answered = true;
		return;
	}
	/* Keep only messages for us from the stream's sender; snapshots come the other way. */
	size_t j = 0;
	for (size_t i = 0; i < k; i++) {
		if (msgs[i].to == n->cfg.id && msgs[i].from == s->from &&
		    msgs[i].type != RAFT_MSG_SNAPSHOT) {
			struct raft_message tmp = msgs[j];
			msgs[j++] = msgs[i];
			msgs[i] = tmp;
		}
	}
	if (j == 0 && k > 0) {
		peer_messages_free(msgs, k);
		return;
	}
	/* Everything for us goes to the raft loop, and so does an empty batch (a hello): it
	 * carries the sender's alarms. */
	for (size_t i = j; i < k; i++)
		raft_message_release(&msgs[i]);
	struct mb_item *it = mb_item_new(MB_PEER_MSGS);
	it->peer.msgs = msgs;
	it->peer.n = j;
	it->peer.from = s->from;
	it->peer.alarms = alarms;
	mailbox_post(&n->mb, it);
}

static void install_fail(struct tp_call *call, struct in_stream *s, int status, const char *why)
{
	LOG_W("snapshot from %" PRIx64 " refused: %s", s->from, why);
	tp_call_reply(call, status, why, NULL, 0, NULL, 0);
	s->answered = true;
	storage_snapshot_abort(s->sw);
	s->sw = NULL;
}

/* A storage failure while receiving: the sender tries again later. */
static void install_storage_fail(struct node *n, struct tp_call *call, struct in_stream *s, int rv)
{
	/* Out of space, or storage refusing everything after a failed write: stop, naming the
	 * cause, as for a snapshot of our own (node.c, on_snapshot_stored). */
	int broken = storage_broken(n->storage);
	if (rv == STORAGE_EFULL || broken != 0)
		node_storage_fatal(n, broken != 0 ? broken : rv, "storing a snapshot received");
	char why[300];
	snprintf(why, sizeof(why), "storing the snapshot failed: %s", storage_errmsg(n->storage));
	install_fail(call, s, GRPC_STATUS_UNAVAILABLE, why);
}

struct restore_reader {
	struct node *n;
	struct storage_snapshot_reader *r;
};

static int restore_read(void *arg, void *buf, size_t cap, size_t *got)
{
	struct restore_reader *rr = arg;
	if (atomic_load(&rr->n->restore_cancel))
		return -1; /* the node stops */
	return storage_snapshot_read(rr->r, buf, cap, got);
}

/* The restore thread: durable data, a store restored and checked from it, then the raft
 * loop decides. It owns the mailbox item (and the receiving slot) until it posts it. */
static void *restore_main(void *arg)
{
	struct mb_item *it = arg;
	struct node *n = service_node;
	int64_t t0 = tp_now_ms();
	const struct raft_snapshot_meta *m = &it->snap_in.msg.snapshot;
	struct restore_reader rr = {n, NULL};
	it->snap_in.status = GRPC_STATUS_UNAVAILABLE;
	int rv = storage_snapshot_finish(it->snap_in.sw);
	if (rv == 0)
		rv = storage_snapshot_reread(it->snap_in.sw, &rr.r);
	if (rv != 0) {
		if (rv == STORAGE_EFULL)
			node_storage_fatal(n, rv, "storing a snapshot received");
		snprintf(it->snap_in.err, sizeof(it->snap_in.err), "storing it failed: %s",
			 storage_errmsg(n->storage));
	} else {
		struct kv_store *kv = kv_store_new(&n->kv_opts);
		if (kv == NULL)
			FATAL("out of memory");
		rv = kv_snapshot_restore(kv, restore_read, &rr);
		if (rv != 0 || kv_store_applied_index(kv) != m->index) {
			snprintf(it->snap_in.err, sizeof(it->snap_in.err),
				 "invalid snapshot data: %s",
				 rv != 0 ? kv_strerror(rv)
					 : "its applied index is not the snapshot's");
			it->snap_in.status = GRPC_STATUS_INVALID_ARGUMENT;
			kv_store_free(kv);
		} else {
			it->snap_in.kv = kv;
			LOG_I("snapshot %" PRIu64 " from %" PRIx64
			      " received: %.1f MiB, on disk and "
			      "restored in %" PRId64 " ms",
			      m->index, it->snap_in.msg.from, (double)it->snap_in.len / MIB,
			      tp_now_ms() - t0);
		}
		storage_snapshot_close(rr.r);
	}
	FAILPOINT("node.install.received");
	mailbox_post(&n->mb, it);
	atomic_store(&receiving_snapshot, false);
	return NULL;
}

/* The last chunk is in: hand the snapshot to a restore thread. */
static void start_restore(struct node *n, struct tp_call *call, struct in_stream *s)
{
	if (n->restore_started) /* the previous one has ended: it released the slot we hold */
		pthread_join(n->restore_thread, NULL);
	n->restore_started = false;
	struct mb_item *it = mb_item_new(MB_SNAP_RECEIVED);
	it->call = call;
	it->snap_in.msg = s->msg;
	it->snap_in.sw = s->sw;
	it->snap_in.len = s->len;
	memset(&s->msg, 0, sizeof(s->msg));
	s->sw = NULL;
	s->answered = true;
	if (pthread_create(&n->restore_thread, NULL, restore_main, it) != 0) {
		it->snap_in.status = GRPC_STATUS_UNAVAILABLE;
		snprintf(it->snap_in.err, sizeof(it->snap_in.err), "cannot start a thread");
		mailbox_post(&n->mb, it);
		return; /* the stream keeps the slot until it ends */
	}
	n->restore_started = true;
	s->holds_slot = false; /* the thread releases it */
}

void peers_on_install(void *arg, struct tp_call *call, const void *req, size_t len)
{
	(void)arg;
	struct node *n = service_node;
	bool fresh;
	struct in_stream *s = in_stream_get(n, call, &fresh);
	if (req == NULL) {
		if (!s->answered)
			install_fail(call, s, GRPC_STATUS_INVALID_ARGUMENT,
				     "the snapshot stream ended before its last chunk");
		in_stream_free(call, s);
		return;
	}
	if (s->answered)
		return;
	struct peer_chunk c;
	char err[200];
	if (peer_chunk_decode(req, len, &c, err, sizeof(err)) != 0) {
		install_fail(call, s, GRPC_STATUS_INVALID_ARGUMENT, err);
		return;
	}
	if (c.has_message && !s->holds_slot) {
		bool expected = false;
		if (!atomic_compare_exchange_strong(&receiving_snapshot, &expected, true)) {
			install_fail(call, s, GRPC_STATUS_RESOURCE_EXHAUSTED,
				     "another snapshot is being received");
			peer_chunk_free(&c);
			return;
		}
		s->holds_slot = true;
	}
	if (c.has_message) {
		if (s->have_msg || c.message.type != RAFT_MSG_SNAPSHOT ||
		    c.message.to != n->cfg.id || c.message.from != s->from) {
			install_fail(call, s, GRPC_STATUS_INVALID_ARGUMENT,
				     "the first chunk must carry an InstallSnapshot message for "
				     "this node");
			peer_chunk_free(&c);
			return;
		}
		s->msg = c.message;
		memset(&c.message, 0, sizeof(c.message));
		s->have_msg = true;
		if (atomic_load(&n->alarms) & ALARM_NOSPACE) {
			install_fail(call, s, GRPC_STATUS_RESOURCE_EXHAUSTED,
				     "this member is short of disk space (NOSPACE alarm)");
			peer_chunk_free(&c);
			return;
		}
		size_t conf_len;
		void *conf = node_snapshot_conf_encode(&s->msg.snapshot, &conf_len);
		int rv = storage_snapshot_begin(n->storage, s->msg.snapshot.index,
						s->msg.snapshot.term, conf, conf_len, &s->sw);
		free(conf);
		if (rv != 0) {
			install_storage_fail(n, call, s, rv);
			peer_chunk_free(&c);
			return;
		}
	}
	if (!s->have_msg || c.offset != s->len || s->len + c.len > SNAP_MAX_BYTES) {
		install_fail(call, s, GRPC_STATUS_INVALID_ARGUMENT,
			     !s->have_msg ? "the first chunk carries no message"
					  : "chunk out of order or snapshot too large");
		peer_chunk_free(&c);
		return;
	}
	int rv = c.len > 0 ? storage_snapshot_write(s->sw, c.data, c.len) : 0;
	s->len += c.len;
	bool last = c.last;
	uint64_t size = c.size;
	peer_chunk_free(&c);
	if (rv != 0) {
		install_storage_fail(n, call, s, rv);
		return;
	}
	if (!last)
		return;
	if (size != s->len) {
		install_fail(call, s, GRPC_STATUS_INVALID_ARGUMENT, "snapshot size mismatch");
		return;
	}
	start_restore(n, call, s);
}
