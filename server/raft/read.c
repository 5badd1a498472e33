/* ReadIndex (thesis §6.4): linearizable reads without writing to the log.
 *
 * A read is accepted at the current commit index, but only once this leader has committed
 * an entry of its own term (before that, its commit index may lag the cluster's). It is
 * then released when a quorum has answered a heartbeat "round" started after the read was
 * accepted: proof that no newer leader existed at that moment. Rounds batch: every read
 * accepted while no round is in flight joins the next one, so a burst of reads costs one
 * heartbeat per follower; an isolated old leader never gathers a quorum and never answers. */
#include "heap.h"
#include "impl.h"

#include "pure.h"

static bool own_term_committed(const struct raft *r)
{
	return r->commit >= r->term_start;
}

static uint64_t round_of(const struct raft_progress *p)
{
	return p->round_acked;
}

static void release_upto(struct raft *r, uint64_t round)
{
	size_t keep = 0;
	for (size_t i = 0; i < r->n_reads; i++) {
		struct pending_read *pr = &r->reads[i];
		if (pr->round == 0 || pr->round > round) {
			r->reads[keep++] = *pr;
			continue;
		}
		raft_heap_reserve((void **)&r->ready_reads, &r->cap_ready_reads,
				  r->n_ready_reads + 1, sizeof(*r->ready_reads));
		r->ready_reads[r->n_ready_reads].ctx = pr->ctx;
		r->ready_reads[r->n_ready_reads].index = pr->index;
		r->n_ready_reads++;
	}
	r->n_reads = keep;
}

/* Give every accepted, unassigned read the next round number; false if there were none. */
static bool assign_next_round(struct raft *r)
{
	bool any = false;
	for (size_t i = 0; i < r->n_reads; i++) {
		if (r->reads[i].round == 0 && r->reads[i].index != 0) {
			r->reads[i].round = r->round_started + 1;
			any = true;
		}
	}
	if (any)
		r->round_started++;
	return any;
}

static void try_start_round(struct raft *r)
{
	if (!own_term_committed(r))
		return;
	if (raft_quorum_value(r, UINT64_MAX, round_of) == UINT64_MAX) {
		/* We are the only voter: our own word is a quorum. */
		if (assign_next_round(r))
			r->round_confirmed = r->round_started;
		release_upto(r, r->round_confirmed);
		return;
	}
	if (r->round_started > r->round_confirmed)
		return; /* one round in flight: newcomers wait for the next one */
	if (assign_next_round(r))
		raft_bcast_heartbeat(r);
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	raft_heap_reserve((void **)&r->reads, &r->cap_reads, r->n_reads + 1, sizeof(*r->reads));
	struct pending_read *pr = &r->reads[r->n_reads++];
	pr->ctx = ctx;
	pr->index = own_term_committed(r) ? r->commit : 0;
	pr->round = 0;
	try_start_round(r);
	return 0;
}

void raft_reads_on_commit(struct raft *r)
{
	if (r->n_reads == 0 || !own_term_committed(r))
		return;
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].index == 0)
			r->reads[i].index = r->commit;
	try_start_round(r);
}

void raft_reads_on_ack(struct raft *r)
{
	uint64_t confirmed = raft_quorum_value(r, r->round_started, round_of);
	if (confirmed <= r->round_confirmed)
		return;
	r->round_confirmed = confirmed;
	release_upto(r, confirmed);
	try_start_round(r);
}

void raft_reads_heartbeat(struct raft *r)
{
	/* A round may have been lost: the periodic heartbeat always carries a fresh round for
	 * reads still waiting, so none waits longer than a heartbeat interval plus a trip. */
	if (own_term_committed(r))
		assign_next_round(r);
}

void raft_reads_drop_all(struct raft *r)
{
	for (size_t i = 0; i < r->n_reads; i++) {
		raft_heap_reserve((void **)&r->dropped, &r->cap_dropped, r->n_dropped + 1,
				  sizeof(*r->dropped));
		r->dropped[r->n_dropped++] = r->reads[i].ctx;
	}
	r->n_reads = 0;
}
