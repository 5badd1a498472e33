#include "progress.h"

#include <string.h>

#include "heap.h"

#include "pure.h"

void raft_progress_init(struct raft_progress *p, raft_id id, raft_index next, unsigned max_inflight)
{
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->next = next;
	p->state = RAFT_PROBE;
	p->in_cap = max_inflight;
	p->inflight = raft_heap_alloc(max_inflight * sizeof(*p->inflight));
}

void raft_progress_close(struct raft_progress *p)
{
	raft_heap_free(p->inflight);
	p->inflight = NULL;
}

static void reset_state(struct raft_progress *p, uint8_t state)
{
	p->state = state;
	p->probe_sent = false;
	p->pending_snapshot = 0;
	p->snapshot_ticks = 0;
	p->in_start = 0;
	p->in_count = 0;
	p->stall_ticks = 0;
}

void raft_progress_become_probe(struct raft_progress *p)
{
	/* Leaving SNAPSHOT, the follower has at least the snapshot: probe right after it. */
	raft_index after_snapshot = p->pending_snapshot + 1;
	uint8_t was = p->state;
	reset_state(p, RAFT_PROBE);
	p->next = p->match + 1;
	if (was == RAFT_SNAPSHOT && after_snapshot > p->next)
		p->next = after_snapshot;
}

void raft_progress_become_replicate(struct raft_progress *p)
{
	reset_state(p, RAFT_REPLICATE);
	p->next = p->match + 1;
}

void raft_progress_become_snapshot(struct raft_progress *p, raft_index snapshot_index)
{
	reset_state(p, RAFT_SNAPSHOT);
	p->pending_snapshot = snapshot_index;
}

static void free_upto(struct raft_progress *p, raft_index index)
{
	while (p->in_count > 0 && p->inflight[p->in_start] <= index) {
		p->in_start = (p->in_start + 1) % p->in_cap;
		p->in_count--;
	}
}

bool raft_progress_update(struct raft_progress *p, raft_index index)
{
	bool moved = false;
	if (index > p->match) {
		p->match = index;
		moved = true;
		p->probe_sent = false;
		p->stall_ticks = 0;
	}
	if (p->next < index + 1)
		p->next = index + 1;
	free_upto(p, index);
	return moved;
}

bool raft_progress_decrease(struct raft_progress *p, raft_index rejected, raft_index hint)
{
	if (p->state == RAFT_REPLICATE) {
		/* Only a rejection above match can be current; fall back to probing. */
		if (rejected <= p->match)
			return false;
		p->next = p->match + 1;
		return true;
	}
	/* PROBE / SNAPSHOT: only the answer to the last probe sent (at next - 1) counts. */
	if (p->next == 0 || p->next - 1 != rejected)
		return false;
	raft_index next = rejected < hint + 1 ? rejected : hint + 1;
	if (next < p->match + 1) {
		/* Its log now ends (or first differs) below what it acknowledged: a member that
		 * keeps its promises never says so (it holds every entry up to match, agreeing
		 * with ours), so it lost durable entries: its data directory was wiped, or the
		 * disk lied. Believe it and probe lower (or send a snapshot), instead of probing
		 * at match + 1 forever. Commitment is unaffected: nothing committed is undone, and
		 * a lower match only counts this member for less. */
		p->match = next - 1;
	}
	p->next = next;
	p->probe_sent = false;
	return true;
}

bool raft_progress_paused(const struct raft_progress *p)
{
	switch (p->state) {
	case RAFT_PROBE:
		return p->probe_sent;
	case RAFT_REPLICATE:
		return p->in_count >= p->in_cap;
	default:
		return true;
	}
}

void raft_progress_sent(struct raft_progress *p, raft_index last_sent, size_t n_entries)
{
	if (p->state == RAFT_REPLICATE) {
		if (n_entries == 0)
			return;
		p->next = last_sent + 1;
		p->inflight[(p->in_start + p->in_count) % p->in_cap] = last_sent;
		p->in_count++;
	} else if (p->state == RAFT_PROBE) {
		p->probe_sent = true;
	}
}
