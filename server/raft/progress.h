/* What the leader knows about one follower's log, and how fast it may send to it. */
#ifndef RAFTKV_RAFT_PROGRESS_H
#define RAFTKV_RAFT_PROGRESS_H

#include <stdbool.h>

#include "server/raft/raft.h"

/*
 * States (etcd-io/raft's tracker):
 *  PROBE      - next is a guess; send one AppendEntries, then wait for an answer (or the next
 *               heartbeat answer) before sending another. Used after election and rejection.
 *  REPLICATE  - the follower accepted our last probe: stream entries optimistically, with up
 *               to max_inflight unacknowledged AppendEntries in flight.
 *  SNAPSHOT   - the entries it needs are compacted; a snapshot is on its way. Nothing else
 *               is sent until it is acknowledged, reported failed, or times out.
 */
struct raft_progress {
	raft_id id;
	raft_index match;   /* highest index known replicated there. Invariant: match < next */
	raft_index next;    /* next index to send */
	uint8_t state;      /* enum raft_progress_state */
	bool probe_sent;    /* PROBE: an append is outstanding, wait */
	bool recent_active; /* heard from it since the last check-quorum round */
	raft_index pending_snapshot; /* SNAPSHOT: index of the snapshot sent */
	unsigned snapshot_ticks;     /* SNAPSHOT: ticks since it was sent */
	uint64_t round_acked;        /* highest ReadIndex round it confirmed in this term */
	unsigned stall_ticks;        /* REPLICATE: ticks with entries outstanding and no ack */

	/* In-flight window (REPLICATE): last index of each unacknowledged append, oldest first,
	 * in a ring of `cap` slots. */
	raft_index *inflight;
	unsigned in_start, in_count, in_cap;
};

void raft_progress_init(struct raft_progress *p, raft_id id, raft_index next,
			unsigned max_inflight);
void raft_progress_close(struct raft_progress *p);

void raft_progress_become_probe(struct raft_progress *p);
void raft_progress_become_replicate(struct raft_progress *p);
void raft_progress_become_snapshot(struct raft_progress *p, raft_index snapshot_index);

/* A successful append answer up to `index`: returns true if match moved forward. */
bool raft_progress_update(struct raft_progress *p, raft_index index);
/* A rejection of `rejected` with the leader's chosen next probe point `hint`:
 * returns false when the rejection is stale and must be ignored. A rejection of the current
 * probe below match (the follower lost entries it had acknowledged) lowers match. */
bool raft_progress_decrease(struct raft_progress *p, raft_index rejected, raft_index hint);

/* Flow control. */
bool raft_progress_paused(const struct raft_progress *p);
void raft_progress_sent(struct raft_progress *p, raft_index last_sent, size_t n_entries);

#endif
