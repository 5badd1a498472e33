/* Snapshot transfers to one peer: which transfer answers the core's latest request, so the
 * core hears the outcome of every request it made and never a stale one. */
#ifndef RAFTKV_NODE_SNAPXFER_H
#define RAFTKV_NODE_SNAPXFER_H

#include <stdbool.h>
#include <stdint.h>

#include "server/raft/raft.h"

/*
 * The core asks for a snapshot to be sent (a RAFT_MSG_SNAPSHOT message) and then waits in
 * its SNAPSHOT state for the follower's answer, or for SNAPSHOT_FAILED, or for two election
 * timeouts. The node runs at most one transfer per peer. The rules:
 *   - a request for the snapshot (index, term) being sent, while that transfer still runs,
 *     is answered by it: the transfer now stands for the newer request;
 *   - any other request cancels the running transfer and starts a new one;
 *   - only the end of the current transfer counts: an earlier one's end (a cancelled
 *     transfer, a start that failed before a newer request) is ignored, so a stale
 *     failure can never reset the progress of a newer transfer.
 * Plain data, raft loop only.
 */
struct snapxfer {
	uint64_t running; /* id of the current transfer (0: none) */
	raft_index index; /* ... and the snapshot it sends */
	raft_term term;   /* ... in the message of this term */
	uint64_t last_id; /* ids handed out so far */
};

enum snapxfer_do {
	SNAPXFER_KEEP = 1, /* the running transfer answers this request: nothing to start */
	SNAPXFER_START,    /* start transfer *id (nothing runs) */
	SNAPXFER_RESTART,  /* cancel the running transfer, then start transfer *id */
};

/* The core asks for snapshot `index` in a message of `term`. `ended`: the running transfer
 * already ended (its outcome is on its way), so it cannot answer a new request. */
enum snapxfer_do snapxfer_request(struct snapxfer *x, raft_index index, raft_term term, bool ended,
				  uint64_t *id);

/* Transfer `id` ended (ok: the follower accepted the whole stream). Returns true when the
 * core must hear SNAPSHOT_FAILED: it failed and it is the current transfer. */
bool snapxfer_ended(struct snapxfer *x, uint64_t id, bool ok);

#endif
