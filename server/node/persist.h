/* The raftnode's bridge between the Raft core and storage: one core update becomes one
 * group-commit batch; the stored state becomes the core's initial state at start. */
#ifndef RAFTKV_NODE_PERSIST_H
#define RAFTKV_NODE_PERSIST_H

#include <stdbool.h>
#include <stddef.h>

#include "server/raft/raft.h"
#include "server/storage/storage.h"

/*
 * Snapshot metadata is stored by storage as opaque "configuration bytes"; this module puts
 * the core's conf_index (8 bytes, big-endian) in front of raft_conf_encode()'s output there,
 * so a restart recovers raft_snapshot_meta whole.
 */

/* Everything raft_new() needs, loaded from storage and owned here. */
struct node_loaded {
	struct raft_hard_state hs;
	struct raft_snapshot_meta snap; /* snap.index == 0: no snapshot */
	struct raft_entry *entries;     /* each holds one raft_buf reference */
	size_t n_entries, cap_entries;
};

/* Read the hard state, the newest snapshot's metadata and the log after it. On failure
 * returns a STORAGE_E* code (STORAGE_ECORRUPT also for undecodable snapshot metadata) with
 * the reason in errmsg. `out` needs node_loaded_free() either way. */
int node_load(struct storage *s, struct node_loaded *out, char *errmsg, size_t errmsg_len);
void node_loaded_free(struct node_loaded *l);

/* Point `st` at `l` (valid while `l` lives); `bootstrap` is used only when `l` is empty. */
void node_initial_state(const struct node_loaded *l, const struct raft_conf *bootstrap,
			struct raft_initial_state *st);

/* Merge the persist part of `u` (snapshot install, truncation, entries, hard state) into
 * `b`, which gathers several updates into one group commit: the storage-writer thread adds
 * everything pending and writes it in one transaction. Payloads are not copied: the batch
 * takes a reference to each, so it outlives the update. */
struct node_batch {
	struct storage_batch sb;
	struct storage_entry *entries;
	struct raft_buf **bufs; /* one payload reference per entry, parallel to `entries` */
	size_t cap_entries;
	struct storage_hard_state hs;
	uint64_t write_id; /* highest core write in the batch: report it PERSISTED after */
};
void node_batch_init(struct node_batch *b);
void node_batch_free(struct node_batch *b);
bool node_batch_empty(const struct node_batch *b);
/* Returns 0, or STORAGE_EINVAL if the update is not contiguous with what is batched. */
int node_batch_add(struct node_batch *b, const struct raft_update *u);
/* Write the batch in one transaction (synced when any update asked for it), then empty it. */
int node_batch_write(struct storage *s, struct node_batch *b);

/* Opaque snapshot metadata bytes for storage_snapshot_begin(): malloc'd, caller frees. */
void *node_snapshot_conf_encode(const struct raft_snapshot_meta *m, size_t *len);

#endif
