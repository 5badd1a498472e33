/* The raftnode process: threads, mailbox and shared state gluing core, storage, kv and gRPC. */
#ifndef RAFTKV_NODE_NODE_H
#define RAFTKV_NODE_NODE_H

/*
 * Threads (docs/raftnode.md has the picture):
 *   - the gRPC loop thread (server/transport): decodes requests and peer messages and posts
 *     them to the mailbox; pulls peer batches out of the outboxes when a send slot frees;
 *   - the raft loop thread (node.c): the only owner of the core and the kv store; steps the
 *     core for every mailbox item and tick, applies, answers calls;
 *   - the storage writer (writer.c): group commit of everything the core asked to persist,
 *     then PERSISTED back through the mailbox; log compaction and BDB checkpoints;
 *   - the snapshotter (writer.c): writes a serialized kv snapshot into storage off the loop.
 * They share data only through the mailbox, the writer's queue and the peers' outboxes, each
 * behind its own mutex.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

#include "common/log.h"
#include "server/kv/kv.h"
#include "server/node/api.h"
#include "server/node/config.h"
#include "server/node/persist.h"
#include "server/node/snapxfer.h"
#include "server/raft/raft.h"
#include "server/storage/storage.h"
#include "server/transport/transport.h"

/* Fatal: log, then abort (a replica must not continue past a broken invariant). */
#define FATAL(...)                               \
	do {                                     \
		log_msg(LOG_ERROR, __VA_ARGS__); \
		abort();                         \
	} while (0)

/* Alarm bits: conditions that make a member refuse work (Cluster.Status lists them). */
#define ALARM_NOSPACE 1u /* the data directory is nearly full: no new log entries here */

/* Free a decoded request and its struct; NULL-safe. */
static inline void request_free(struct api_request *r)
{
	if (r != NULL) {
		api_request_free(r);
		free(r);
	}
}

#define MIB (1024.0 * 1024.0) /* for log lines */

/* ---- mailbox: everything that reaches the raft loop -------------------------------- */

enum mb_kind {
	MB_PEER_MSGS = 1, /* messages from a peer's stream */
	MB_PEER_INFO,     /* a peer's client address, learned from its stream metadata */
	MB_CLIENT,        /* a KV request */
	MB_STATUS,        /* Cluster.Status */
	MB_MEMBERS,       /* Cluster.MemberList */
	MB_PERSISTED,     /* the writer made write_id durable */
	MB_SNAP_RECEIVED, /* a complete InstallSnapshot arrived */
	MB_SNAP_SENT,     /* an outgoing snapshot finished */
	MB_SNAP_STORED,   /* the snapshotter stored an automatic snapshot */
	MB_STOP,          /* SIGTERM */
};

struct mb_item {
	struct mb_item *next;
	enum mb_kind kind;
	struct tp_call *call; /* MB_CLIENT, MB_STATUS, MB_MEMBERS, MB_SNAP_RECEIVED */
	union {
		struct {
			struct raft_message *msgs;
			size_t n;
			raft_id from;    /* the stream's sender */
			uint32_t alarms; /* the sender's alarm bits */
		} peer;
		struct {
			raft_id id;
			uint64_t incarnation;
			char addr[RAFT_ADDR_MAX];
		} info;
		struct api_request *req;
		uint64_t write_id;
		struct {
			struct raft_message msg;
			struct storage_snapshot_writer *sw; /* its data, finished, unpublished */
			uint64_t len;
			struct kv_store *kv; /* restored from it; NULL if that failed */
			int status;          /* then: the gRPC status for the sender */
			char err[240];       /* and why */
		} snap_in;
		struct {
			raft_id peer;
			bool ok;
			uint64_t xfer; /* the transfer that ended (struct snapxfer's id) */
		} snap_sent;
		struct {
			raft_index index;
			int rv;
			uint64_t bytes; /* the snapshot's size, when stored */
			char err[200];  /* what failed, written on the snapshotter thread */
		} snap_stored;
	};
};

struct mailbox {
	pthread_mutex_t mu;
	struct mb_item *head, *tail;
	int efd; /* eventfd: readable while items are queued */
};

/* Queue an item (thread-safe); the raft loop owns it afterwards. */
void mailbox_post(struct mailbox *mb, struct mb_item *it);
/* Allocate a zeroed item (aborts on out of memory: a lost message is not an option here). */
struct mb_item *mb_item_new(enum mb_kind kind);
/* Free an item and what it owns, without touching its call. */
void mb_item_free(struct mb_item *it);

/* ---- peers (peers.c) ------------------------------------------------------------------ */

struct snap_send;

struct peer {
	raft_id id;
	char addr[RAFT_ADDR_MAX]; /* conf address "<name>=<peer address>" */
	struct node *node;
	struct tp_channel *ch;
	struct tp_ostream *stream;
	pthread_mutex_t mu; /* guards the outbox */
	struct raft_message *out;
	size_t n_out, cap_out;
	struct snap_send *snap;          /* raft loop only: the transfer running, if any */
	struct snapxfer xfer;            /* raft loop only: which transfer answers the core */
	char client_addr[RAFT_ADDR_MAX]; /* raft loop only; "" until learned */
	uint64_t incarnation;            /* raft loop only: the peer's start time, as learned */
	bool hello;                      /* under mu: send an empty batch to open the stream */
	bool seen;                       /* raft loop only: still in the configuration */
	bool kick;                       /* raft loop only: messages queued since the last kick */
	uint32_t alarms;                 /* raft loop only: the peer's alarm bits, as last heard */
};

/* ---- the storage writer and the snapshotter (writer.c) -------------------------------- */

struct writer {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct node_batch pending; /* what the raft loop handed over */
	raft_index compact_upto;   /* compact the stored log up to here (0: nothing) */
	bool busy;                 /* writing outside the lock */
	bool stop;
	/* snapshotter job: a forked copy of the process serializes the store into a pipe */
	int snap_fd;    /* the pipe's read end */
	pid_t snap_pid; /* the child writing it */
	struct raft_snapshot_meta snap_meta;
	bool snap_job, snap_busy;
	bool checkpoint; /* checkpoint now and remove the BDB log files it frees */
	pthread_t thread, snap_thread;
};

/* ---- the node ------------------------------------------------------------------------- */

struct pending_write {
	raft_index index;
	raft_term term;
	struct tp_call *call;
	struct api_request *req;
};

struct pending_read {
	uint64_t ctx;
	raft_index index; /* 0 until the core gave the read point */
	struct tp_call *call;
	struct api_request *req;
};

struct node {
	struct node_config cfg;
	struct kv_options kv_opts;
	struct storage *storage;
	struct raft *raft;
	struct kv_store *kv;
	struct mailbox mb;
	struct writer w;

	struct tp_loop *loop;
	struct tp_server *server;
	struct tp_md peer_md[4]; /* metadata of our outbound streams */
	char md_from[24], md_cluster[24], md_incarnation[24];

	struct peer *peers[RAFT_MAX_MEMBERS];
	size_t n_peers;
	raft_index peers_conf_index;

	/* raft loop state */
	pthread_t thread;
	int timerfd, epfd, sigfd;
	struct pending_write *writes; /* FIFO by index */
	size_t w_head, w_len, w_cap;
	struct pending_read *reads;
	size_t n_reads, cap_reads;
	uint64_t next_read_ctx;
	raft_index last_snap_index;
	uint64_t last_snap_bytes; /* size of the newest snapshot: the next needs as much room */
	uint64_t cache_bytes;     /* Berkeley DB's cache: its dirty pages need room on disk too */
	atomic_uint alarms;       /* ALARM_* of this member (the gRPC loop reads it for batches) */
	char alarm_msg[CONFIG_STR_MAX + 160]; /* raft loop: what the NOSPACE alarm saw */
	int64_t next_space_check_ms;
	raft_term nospace_handover_term; /* raft loop: the term whose hand-over was logged */
	raft_index next_snap_at;         /* applied index at which to take the next snapshot */
	uint64_t bytes_since_snap; /* command bytes applied since the last snapshot was taken */
	bool snap_busy;
	int64_t snap_started_ms;     /* when the snapshot being stored was forked */
	uint64_t snap_bytes_taken;   /* bytes_since_snap when it was forked */
	struct {                     /* a received snapshot while the core considers it */
		struct kv_store *kv; /* restored from it; NULL once installed */
		struct storage_snapshot_writer *sw; /* its data; NULL once installed */
		uint64_t len;
	} incoming;
	/* The thread that makes a received snapshot durable and restores a store from it (one
	 * at a time: it holds the receiving slot, see peers.c). Started on the gRPC loop,
	 * joined there before the next one and at teardown. */
	pthread_t restore_thread;
	bool restore_started;
	atomic_bool restore_cancel; /* teardown: stop reading */
	bool stopping;
	int64_t stop_deadline;
	int64_t linger_until;
	uint64_t persisted_write_id;
	int last_health;       /* bitmask: 1 = live, 2 = ready */
	int64_t next_hello_ms; /* when to retry pending peer hellos */
};

/* Open storage, load state, start the threads and the gRPC server. `sigfd` (a signalfd, or
 * -1) makes the node stop gracefully when it becomes readable. */
int node_start(const struct node_config *cfg, int sigfd, struct node **out, char *errmsg,
	       size_t errmsg_len);
/* Ask the node to stop (thread-safe; from the signal-waiting thread). */
void node_request_stop(struct node *n);
/* Wait for the raft loop to finish, then tear everything down and free the node. Returns
 * the process exit status. */
int node_wait(struct node *n);

/* peers.c */
void peers_sync(struct node *n); /* follow the current configuration */
/* Queue a message for its peer (raft loop); peers_kick then starts the sends, so all the
 * messages of one update can leave in one batch. */
void peers_send(struct node *n, const struct raft_message *m);
void peers_kick(struct node *n);
/* Send every peer a batch now (an empty one if nothing is queued): our alarms changed. */
void peers_kick_all(struct node *n);
/* Tell peer p our client address (an empty batch opens our stream to it). */
void peer_hello(struct peer *p);
/* Kick the streams whose hello is still pending (raft loop, about once a second). */
void peers_retry_hello(struct node *n);
void peers_free_all(struct node *n);
bool peers_sending_snapshot(struct node *n);
struct peer *peer_find(struct node *n, raft_id id);
/* Transfer `xfer` to peer `id` ended; returns true when the core must hear SNAPSHOT_FAILED. */
bool peer_snapshot_sent(struct node *n, raft_id id, uint64_t xfer, bool ok);
/* gRPC handlers of raftkv.v1.Raft (gRPC loop thread) */
void peers_on_send(void *arg, struct tp_call *call, const void *req, size_t len);
void peers_on_install(void *arg, struct tp_call *call, const void *req, size_t len);

/* The store holds --quota-bytes or more of keys and values (raft loop). */
bool node_over_quota(const struct node *n);

/* writer.c */
/* A write to storage failed: log the cause (naming a full disk as such) and abort. Nothing
 * acknowledged is lost: storage refuses every commit after a failed write. */
_Noreturn void node_storage_fatal(struct node *n, int rv, const char *what);
int writer_start(struct node *n);
void writer_stop(struct node *n);
/* Hand the persist part of an update to the writer (raft loop). */
void writer_add(struct node *n, const struct raft_update *u);
void writer_compact(struct node *n, raft_index upto);
/* Checkpoint soon and remove the Berkeley DB log files no longer needed (frees disk). */
void writer_checkpoint(struct node *n);
/* Wait until everything handed over is durable and no snapshot is being stored; a log
 * compaction still going is dropped (an install clears the whole log next). */
void writer_barrier(struct node *n);
/* Take a snapshot of the store as it is now, without pausing the raft loop: a forked child
 * (copy-on-write: it sees the store frozen at this instant) streams the serialization through
 * a pipe to the snapshotter thread, which stores it chunk by chunk; MB_SNAP_STORED follows.
 * Returns 0, or -1 (errno) if the pipe or the fork failed. */
int writer_snapshot(struct node *n, const struct raft_snapshot_meta *meta);

/* service.c: KV and Cluster handlers (gRPC loop thread) and status replies (raft loop). */
extern const struct tp_method node_methods[];
extern const size_t node_n_methods;
void service_reply_status(struct node *n, struct tp_call *call);
void service_reply_members(struct node *n, struct tp_call *call);
/* Answer UNAVAILABLE with the leader hint in `raftkv-leader` when one is known. */
void service_reply_unavailable(struct node *n, struct tp_call *call, const char *why);
/* Global pointer for handlers (one node per process). */
extern struct node *service_node;

#endif
