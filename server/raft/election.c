/* Leader election: randomized timeouts, pre-vote, votes, role transitions, TIMEOUT_NOW. */
#include <string.h>

#include "common/check.h"
#include "impl.h"

#include "pure.h"

void raft_reset_election_timer(struct raft *r)
{
	r->election_elapsed = 0;
	/* Randomized in [e, 2e) so split votes resolve quickly (Raft paper §5.2). */
	r->randomized_timeout =
		r->cfg.election_ticks + (unsigned)prng_below(&r->prng, r->cfg.election_ticks);
}

static void clear_votes(struct raft *r)
{
	r->n_granted = 0;
	r->n_rejected = 0;
}

static void drop_leader_state(struct raft *r)
{
	for (unsigned i = 0; i < r->n_prs; i++)
		raft_progress_close(&r->prs[i]);
	r->n_prs = 0;
	r->transferee = 0;
	raft_reads_drop_all(r);
}

static void set_role(struct raft *r, uint8_t role, raft_id leader)
{
	if (r->role != role || r->leader != leader)
		r->role_changed = true;
	if (r->role == RAFT_LEADER && role != RAFT_LEADER)
		drop_leader_state(r);
	r->role = role;
	r->leader = leader;
}

void raft_become_follower(struct raft *r, raft_term term, raft_id leader)
{
	if (term != r->term) {
		INVARIANT(term > r->term, "become_follower: term goes backwards");
		r->term = term;
		r->vote = 0;
	}
	set_role(r, RAFT_FOLLOWER, leader);
	clear_votes(r);
	raft_reset_election_timer(r);
	r->heartbeat_elapsed = 0;
}

void raft_become_leader(struct raft *r)
{
	INVARIANT(r->role == RAFT_CANDIDATE, "become_leader: not a candidate");
	set_role(r, RAFT_LEADER, r->id);
	clear_votes(r);
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	r->transferee = 0;
	r->round_confirmed = r->round_started;
	raft_progress_rebuild(r);
	for (unsigned i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = true; /* give everyone one check-quorum period */
	/* Thesis §6.4: a no-op of our own term lets us learn the commit index (and answer
	 * reads) at once, instead of waiting for the next client write. */
	raft_append_local(r, RAFT_ENTRY_NOOP, NULL);
	r->term_start = raft_log_last_index(&r->log);
	raft_bcast_append(r);
}

static bool granted_by(const struct raft *r, raft_id id)
{
	for (unsigned i = 0; i < r->n_granted; i++)
		if (r->granted[i] == id)
			return true;
	return false;
}

/* Record one answer; returns +1 when a quorum granted, -1 when it can no longer win. */
static int tally(struct raft *r, raft_id from, bool granted)
{
	for (unsigned i = 0; i < r->n_granted; i++)
		if (r->granted[i] == from)
			goto count;
	for (unsigned i = 0; i < r->n_rejected; i++)
		if (r->rejected[i] == from)
			goto count;
	if (granted)
		r->granted[r->n_granted++] = from;
	else
		r->rejected[r->n_rejected++] = from;
count:;
	unsigned q = raft_quorum(r);
	/* A real election is won only once our own vote is among the grants, which happens
	 * when the write holding our term and vote is durable. Winning on the others' votes
	 * alone would let a crash forget the term, win it again after restart and lead it
	 * twice with different logs. (A pre-vote promises nothing, so it needs no wait.) */
	if (r->n_granted >= q && (r->role == RAFT_PRECANDIDATE || granted_by(r, r->id)))
		return 1;
	if (r->n_rejected > raft_conf_voters(&r->conf) - q)
		return -1;
	return 0;
}

void raft_campaign(struct raft *r, bool pre_vote, bool transfer)
{
	if (!raft_promotable(r))
		return;
	raft_term term;
	uint8_t type;
	clear_votes(r);
	raft_reset_election_timer(r);
	if (pre_vote) {
		/* Thesis §9.6: ask first whether we could win, without touching our term, so a
		 * node that was cut off cannot disrupt the cluster when it returns. */
		set_role(r, RAFT_PRECANDIDATE, 0);
		term = r->term + 1;
		type = RAFT_MSG_PREVOTE;
		if (tally(r, r->id, true) > 0) {
			raft_campaign(r, false, transfer);
			return;
		}
	} else {
		r->term++;
		r->vote = r->id;
		set_role(r, RAFT_CANDIDATE, 0);
		term = r->term;
		type = RAFT_MSG_VOTE;
		/* Our own vote counts only once it is durable, like anyone else's. */
		struct raft_message self;
		memset(&self, 0, sizeof(self));
		self.type = RAFT_MSG_VOTE_RESP;
		self.from = r->id;
		self.to = r->id;
		self.term = r->term;
		raft_send_after_persist(r, &self);
	}
	for (unsigned i = 0; i < r->conf.n; i++) {
		const struct raft_member *mb = &r->conf.members[i];
		if (mb->id == r->id || mb->role != RAFT_VOTER)
			continue;
		struct raft_message *m = raft_send(r, type, mb->id);
		m->term = term;
		m->last_index = raft_log_last_index(&r->log);
		m->last_term = raft_log_last_term(&r->log);
		m->transfer = transfer;
	}
}

void raft_recv_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
			(pre && m->term > r->term);
	/* Election restriction (paper §5.4.1): only a candidate whose log is at least as
	 * up-to-date as ours can get our vote, so every leader holds all committed entries. */
	raft_term last_term = raft_log_last_term(&r->log);
	bool up_to_date =
		m->last_term > last_term ||
		(m->last_term == last_term && m->last_index >= raft_log_last_index(&r->log));
	uint8_t resp_type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	if (!can_vote || !up_to_date) {
		struct raft_message *resp = raft_send(r, resp_type, m->from);
		resp->reject = true;
		return;
	}
	if (pre) {
		/* Answer at the term asked about; nothing to persist. */
		struct raft_message *resp = raft_send(r, resp_type, m->from);
		resp->term = m->term;
		return;
	}
	r->vote = m->from;
	r->election_elapsed = 0;
	struct raft_message resp;
	memset(&resp, 0, sizeof(resp));
	resp.type = resp_type;
	resp.from = r->id;
	resp.to = m->from;
	resp.term = r->term;
	/* The grant leaves only after the vote is on disk (thesis §3.8). */
	raft_send_after_persist(r, &resp);
}

void raft_recv_vote_resp(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
	if (pre) {
		if (r->role != RAFT_PRECANDIDATE)
			return;
		/* Grants carry term + 1; rejections at our term (higher ones made us follow). */
		if (!m->reject && m->term != r->term + 1)
			return;
	} else if (r->role != RAFT_CANDIDATE || m->term != r->term) {
		return;
	}
	if (!raft_conf_is_voter(&r->conf, m->from))
		return;
	int result = tally(r, m->from, !m->reject);
	if (result > 0) {
		if (pre)
			raft_campaign(r, false, false);
		else
			raft_become_leader(r);
	} else if (result < 0) {
		raft_become_follower(r, r->term, 0);
	}
}

void raft_recv_timeout_now(struct raft *r, const struct raft_message *m)
{
	(void)m;
	if (r->role == RAFT_LEADER)
		return;
	/* The leader handed over: skip pre-vote; voters grant even inside their lease. */
	raft_campaign(r, false, true);
}

void raft_tick_election(struct raft *r)
{
	r->election_elapsed++;
	if (raft_promotable(r) && r->election_elapsed >= r->randomized_timeout)
		raft_campaign(r, r->cfg.pre_vote, false);
}
