/* Log entries after the last compaction point, kept in memory; storage loads them once at start. */
#ifndef RAFTKV_RAFT_LOG_H
#define RAFTKV_RAFT_LOG_H

#include "server/raft/raft.h"

/*
 * Entries with index (offset, offset + n] live in e[head .. head + n). The entry at `offset`
 * itself was compacted away (or is the snapshot's last entry); its term is kept in
 * `offset_term` so the consistency check on it still works.
 * Invariant: e[head + i].index == offset + 1 + i; terms never decrease along the log.
 */
struct raft_log {
	struct raft_entry *e;
	size_t head, n, cap;
	raft_index offset;
	raft_term offset_term;
	size_t bytes; /* payload bytes held, for flow control and reporting */
};

void raft_log_init(struct raft_log *l, raft_index offset, raft_term offset_term);
void raft_log_close(struct raft_log *l); /* drops every reference */

static inline raft_index raft_log_last_index(const struct raft_log *l)
{
	return l->offset + l->n;
}

static inline raft_index raft_log_first_index(const struct raft_log *l)
{
	return l->offset + 1;
}

/* The entry at `index`, or NULL if it is not in memory. */
const struct raft_entry *raft_log_get(const struct raft_log *l, raft_index index);
/* Term at `index`: offset_term at the offset, 0 when unknown or beyond the end. */
raft_term raft_log_term(const struct raft_log *l, raft_index index);
raft_term raft_log_last_term(const struct raft_log *l);

/* Append one entry at last_index + 1; the log takes a reference to its payload. */
void raft_log_append(struct raft_log *l, raft_term term, uint8_t type, struct raft_buf *buf);
/* Drop entries >= index (index > offset). */
void raft_log_truncate(struct raft_log *l, raft_index index);
/* Drop entries <= index (offset < index <= last_index); the new offset is `index`. */
void raft_log_compact(struct raft_log *l, raft_index index);
/* Drop everything; the log now starts after (index, term), as after installing a snapshot. */
void raft_log_reset(struct raft_log *l, raft_index index, raft_term term);

/* The largest index <= `index` whose term is <= `term`: where a follower's log and the
 * leader's can still agree (etcd's findConflictByTerm). Stops at the offset. */
raft_index raft_log_find_conflict_by_term(const struct raft_log *l, raft_index index,
					  raft_term term);

#endif
