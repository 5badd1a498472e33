/* Log replication: AppendEntries with fast backtracking, heartbeats, InstallSnapshot,
 * per-follower flow control, commitment, the leader's tick and proposals. */
#include <string.h>

#include "common/check.h"
#include "heap.h"
#include "impl.h"

#include "pure.h"

/* Heartbeat intervals without any acknowledgement, while entries are outstanding, after
 * which a streaming follower is assumed to have lost them (several, so that a round trip
 * longer than one heartbeat interval does not cause needless resends). */
#define STALL_HEARTBEATS 3

/* ------------------------------------------------------------------------------------------
 * Leader side: sending
 * ---------------------------------------------------------------------------------------- */

static void send_snapshot(struct raft *r, struct raft_progress *p)
{
	INVARIANT(r->snap.index >= r->log.offset, "replication: log compacted without a snapshot");
	struct raft_message *m = raft_send(r, RAFT_MSG_SNAPSHOT, p->id);
	m->snapshot = r->snap;
	raft_progress_become_snapshot(p, r->snap.index);
}

/* Send what `p` may receive now. Returns true if entries (or a snapshot) went out, so the
 * caller may try again to fill the in-flight window. */
static bool send_one(struct raft *r, struct raft_progress *p)
{
	if (raft_progress_paused(p))
		return false;
	raft_index prev = p->next - 1;
	if (prev < r->log.offset) {
		/* The entries it needs are compacted away. */
		send_snapshot(r, p);
		return false;
	}
	raft_index last = raft_log_last_index(&r->log);
	size_t n = 0, bytes = 0;
	while (prev + n < last && n < r->cfg.max_entries_per_append) {
		const struct raft_entry *e = raft_log_get(&r->log, prev + n + 1);
		size_t len = e->buf != NULL ? e->buf->len : 0;
		if (n > 0 && bytes + len > r->cfg.max_append_bytes)
			break; /* size-bounded batches; a single huge entry still goes alone */
		bytes += len;
		n++;
	}
	if (n == 0 && p->state == RAFT_REPLICATE)
		return false; /* up to date; heartbeats carry the commit index */
	struct raft_message *m = raft_send(r, RAFT_MSG_APPEND, p->id);
	m->prev_index = prev;
	m->prev_term = raft_log_term(&r->log, prev);
	m->commit = r->commit;
	if (n > 0) {
		m->entries = raft_heap_alloc(n * sizeof(*m->entries));
		m->n_entries = n;
		for (size_t i = 0; i < n; i++) {
			m->entries[i] = *raft_log_get(&r->log, prev + 1 + i);
			raft_buf_ref(m->entries[i].buf);
		}
	}
	raft_progress_sent(p, prev + n, n);
	return n > 0;
}

void raft_send_append(struct raft *r, struct raft_progress *p)
{
	/* In REPLICATE, keep sending until the window is full or the follower is current. */
	while (send_one(r, p) && p->state == RAFT_REPLICATE)
		;
}

void raft_bcast_append(struct raft *r)
{
	for (unsigned i = 0; i < r->n_prs; i++)
		raft_send_append(r, &r->prs[i]);
}

void raft_bcast_heartbeat(struct raft *r)
{
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		struct raft_message *m = raft_send(r, RAFT_MSG_HEARTBEAT, p->id);
		/* Never tell a follower to commit past what it is known to hold: it might not
		 * have those entries yet, or hold different ones (etcd does the same). */
		m->commit = p->match < r->commit ? p->match : r->commit;
		m->round = r->round_started;
	}
}

static uint64_t match_of(const struct raft_progress *p)
{
	return p->match;
}

bool raft_maybe_commit(struct raft *r)
{
	/* The leader counts itself only for what is durable on its own disk. */
	raft_index n = raft_quorum_value(r, r->stable, match_of);
	/* Thesis §3.6 (paper Figure 8): a leader only commits entries from its own term by
	 * counting replicas; earlier entries commit indirectly with them. */
	if (n <= r->commit || raft_log_term(&r->log, n) != r->term)
		return false;
	raft_commit_to(r, n);
	return true;
}

/* ------------------------------------------------------------------------------------------
 * Leader side: answers
 * ---------------------------------------------------------------------------------------- */

static void maybe_send_timeout_now(struct raft *r, struct raft_progress *p)
{
	if (r->transferee == p->id && p->match == raft_log_last_index(&r->log))
		raft_send(r, RAFT_MSG_TIMEOUT_NOW, p->id);
}

void raft_recv_append_resp(struct raft *r, const struct raft_message *m)
{
	if (r->role != RAFT_LEADER)
		return;
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL)
		return;
	p->recent_active = true;
	if (m->reject) {
		/* Conflict-term backtracking: jump straight to the last index where our log
		 * could agree with the follower's, instead of one entry per round trip. */
		raft_index next_probe = m->hint_index;
		if (m->hint_term > 0)
			next_probe = raft_log_find_conflict_by_term(&r->log, m->hint_index,
								    m->hint_term);
		if (raft_progress_decrease(p, m->index, next_probe)) {
			if (p->state == RAFT_REPLICATE)
				raft_progress_become_probe(p);
			raft_send_append(r, p);
		}
		return;
	}
	if (m->index > raft_log_last_index(&r->log))
		return; /* acknowledges entries we never had: not from this term's log */
	bool moved = raft_progress_update(p, m->index);
	if (p->state == RAFT_PROBE && (moved || p->match == m->index))
		raft_progress_become_replicate(p);
	else if (p->state == RAFT_SNAPSHOT && p->match >= p->pending_snapshot)
		raft_progress_become_replicate(p);
	if (moved)
		raft_maybe_commit(r);
	if (r->role != RAFT_LEADER)
		return; /* committing our own removal made us step down */
	maybe_send_timeout_now(r, p);
	raft_send_append(r, p);
}

void raft_recv_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	if (r->role != RAFT_LEADER)
		return;
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL)
		return;
	p->recent_active = true;
	p->probe_sent = false;
	if (m->round > p->round_acked) {
		p->round_acked = m->round;
		raft_reads_on_ack(r);
		if (r->role != RAFT_LEADER)
			return;
	}
	if (p->state == RAFT_REPLICATE &&
	    p->stall_ticks > STALL_HEARTBEATS * r->cfg.heartbeat_ticks) {
		/* It answers heartbeats but has acknowledged nothing for several heartbeat
		 * intervals while entries are out: they were lost on the way, and nothing else
		 * would ever resend them (the window may even be full, pausing it for good).
		 * Probe again from what it is known to hold. */
		raft_progress_become_probe(p);
	}
	if (p->match < raft_log_last_index(&r->log))
		raft_send_append(r, p);
}

/* ------------------------------------------------------------------------------------------
 * Follower side
 * ---------------------------------------------------------------------------------------- */

/* A message from the leader of our term: follow it. */
static void follow(struct raft *r, raft_id leader)
{
	if (r->role != RAFT_FOLLOWER || r->leader != leader) {
		INVARIANT(r->role != RAFT_LEADER, "two leaders in one term");
		raft_become_follower(r, r->term, leader);
	}
	r->election_elapsed = 0;
}

static void ack(struct raft *r, raft_id to, raft_index index)
{
	struct raft_message resp;
	memset(&resp, 0, sizeof(resp));
	resp.type = RAFT_MSG_APPEND_RESP;
	resp.from = r->id;
	resp.to = to;
	resp.term = r->term;
	resp.index = index;
	/* "I hold everything up to index" is a promise: only once it is durable. */
	raft_send_after_persist(r, &resp);
}

void raft_recv_append(struct raft *r, const struct raft_message *m)
{
	if (r->role == RAFT_LEADER)
		return; /* cannot happen with one leader per term; ignore a forged one */
	follow(r, m->from);
	if (m->prev_index < r->commit) {
		ack(r, m->from, r->commit);
		return;
	}
	if (raft_log_term(&r->log, m->prev_index) != m->prev_term ||
	    m->prev_index > raft_log_last_index(&r->log)) {
		struct raft_message *resp = raft_send(r, RAFT_MSG_APPEND_RESP, m->from);
		resp->reject = true;
		resp->index = m->prev_index;
		raft_index hint = m->prev_index < raft_log_last_index(&r->log)
					  ? m->prev_index
					  : raft_log_last_index(&r->log);
		hint = raft_log_find_conflict_by_term(&r->log, hint, m->prev_term);
		resp->hint_index = hint;
		resp->hint_term = raft_log_term(&r->log, hint);
		return;
	}
	/* Skip what we already have; truncate at the first conflict; append the rest. */
	size_t i = 0;
	while (i < m->n_entries &&
	       raft_log_term(&r->log, m->entries[i].index) == m->entries[i].term)
		i++;
	if (i < m->n_entries) {
		raft_index at = m->entries[i].index;
		if (at <= raft_log_last_index(&r->log))
			raft_truncate_local(r, at);
		for (; i < m->n_entries; i++)
			raft_append_remote(r, &m->entries[i]);
	}
	raft_index last_new = m->prev_index + m->n_entries;
	raft_commit_to(r, m->commit < last_new ? m->commit : last_new);
	ack(r, m->from, last_new);
}

void raft_recv_heartbeat(struct raft *r, const struct raft_message *m)
{
	if (r->role == RAFT_LEADER)
		return;
	follow(r, m->from);
	raft_index last = raft_log_last_index(&r->log);
	raft_commit_to(r, m->commit < last ? m->commit : last);
	struct raft_message *resp = raft_send(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
	resp->round = m->round;
}

void raft_recv_snapshot(struct raft *r, const struct raft_message *m)
{
	if (r->role == RAFT_LEADER)
		return;
	follow(r, m->from);
	const struct raft_snapshot_meta *s = &m->snapshot;
	if (s->index <= r->commit) {
		ack(r, m->from, r->commit);
		return;
	}
	if (raft_log_term(&r->log, s->index) == s->term) {
		/* We hold the snapshot's last entry already: it is committed, keep our log. */
		raft_commit_to(r, s->index);
		ack(r, m->from, s->index);
		return;
	}
	/* Replace the whole log and state machine with the snapshot. */
	r->snap = *s;
	raft_log_reset(&r->log, s->index, s->term);
	entvec_clear(&r->u_entries);
	r->u_truncate = 0;
	r->u_snapshot = true;
	if (r->stable > s->index)
		r->stable = s->index;
	for (size_t i = 0; i < r->n_pw; i++)
		if (r->pw[i].last_index > s->index)
			r->pw[i].last_index = s->index;
	r->conf = s->conf;
	r->conf_index = s->conf_index;
	r->commit = s->index;
	r->applied = s->index;
	ack(r, m->from, s->index);
}

/* ------------------------------------------------------------------------------------------
 * Leader: time and proposals
 * ---------------------------------------------------------------------------------------- */

static bool quorum_active(struct raft *r)
{
	unsigned active = 0;
	for (unsigned i = 0; i < r->conf.n; i++) {
		const struct raft_member *mb = &r->conf.members[i];
		if (mb->role != RAFT_VOTER)
			continue;
		if (mb->id == r->id) {
			active++;
			continue;
		}
		struct raft_progress *p = raft_progress_of(r, mb->id);
		active += p != NULL && p->recent_active;
	}
	for (unsigned i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = false;
	return active >= raft_quorum(r);
}

void raft_tick_leader(struct raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->cfg.election_ticks) {
		r->election_elapsed = 0;
		/* Check-quorum (thesis §6.2): a leader cut off from a majority steps down, so
		 * clients stop waiting on it and its lease-based rejections end. */
		if (r->cfg.check_quorum && !quorum_active(r)) {
			raft_become_follower(r, r->term, 0);
			return;
		}
	}
	if (r->transferee != 0 && ++r->transfer_elapsed >= r->cfg.election_ticks)
		r->transferee = 0; /* the target did not take over in time: resume */
	raft_index last = raft_log_last_index(&r->log);
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		/* A snapshot lost on the way would block the follower forever: retry. */
		if (p->state == RAFT_SNAPSHOT && ++p->snapshot_ticks >= 2 * r->cfg.election_ticks) {
			p->pending_snapshot = 0;
			raft_progress_become_probe(p);
		}
		if (p->state == RAFT_REPLICATE && p->match < last)
			p->stall_ticks++;
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
		r->heartbeat_elapsed = 0;
		raft_reads_heartbeat(r);
		raft_bcast_heartbeat(r);
	}
}

int raft_propose(struct raft *r, struct raft_buf *const *bufs, size_t n)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transferee != 0)
		return RAFT_EBUSY; /* thesis §3.10: stop accepting while handing over */
	if (n == 0 || bufs == NULL)
		return RAFT_EINVAL;
	r->out->proposed_index = raft_log_last_index(&r->log) + 1;
	r->out->proposed_term = r->term;
	for (size_t i = 0; i < n; i++) {
		raft_append_local(r, RAFT_ENTRY_NORMAL, bufs[i]);
		raft_buf_unref(bufs[i]); /* the log holds its own reference now */
	}
	raft_bcast_append(r);
	return 0;
}
