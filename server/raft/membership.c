/* Membership changes, one server at a time (thesis §4.1), and leadership transfer (§3.10).
 *
 * A configuration takes effect on every node as soon as its entry is appended, committed or
 * not; a truncated configuration entry rolls the node back to the previous one. The leader
 * accepts a change only when (a) it has committed an entry of its own term — the fix for the
 * single-server-change bug Ongaro described on raft-dev in 2015 — and (b) no earlier change is
 * still uncommitted. Learners receive the log but never vote or count toward a quorum; a
 * learner is promoted only once it holds every committed entry. */
#include <string.h>

#include "common/check.h"
#include "heap.h"
#include "impl.h"

#include "pure.h"

void raft_progress_rebuild(struct raft *r)
{
	struct raft_progress next[RAFT_MAX_MEMBERS];
	unsigned n = 0;
	for (unsigned i = 0; i < r->conf.n; i++) {
		raft_id id = r->conf.members[i].id;
		if (id == r->id)
			continue;
		struct raft_progress *old = raft_progress_of(r, id);
		if (old != NULL) {
			next[n] = *old;
			old->id = 0; /* moved */
		} else {
			raft_progress_init(&next[n], id, raft_log_last_index(&r->log) + 1,
					   r->cfg.max_inflight);
			next[n].recent_active = true;
		}
		n++;
	}
	for (unsigned i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != 0)
			raft_progress_close(&r->prs[i]);
	memcpy(r->prs, next, n * sizeof(next[0]));
	r->n_prs = n;
	if (r->transferee != 0 && !raft_conf_is_voter(&r->conf, r->transferee))
		r->transferee = 0;
}

void raft_conf_apply(struct raft *r, const struct raft_conf *c, raft_index index)
{
	r->conf = *c;
	r->conf_index = index;
	if (r->role == RAFT_LEADER) {
		raft_progress_rebuild(r);
		/* Fewer voters may mean the round in flight already has its quorum. */
		raft_reads_on_ack(r);
	} else if ((r->role == RAFT_CANDIDATE || r->role == RAFT_PRECANDIDATE) &&
		   !raft_promotable(r))
		raft_become_follower(r, r->term, 0);
}

void raft_conf_at(const struct raft *r, raft_index index, struct raft_conf *out,
		  raft_index *out_index)
{
	const struct raft_log *l = &r->log;
	raft_index i = index < raft_log_last_index(l) ? index : raft_log_last_index(l);
	for (; i > l->offset; i--) {
		const struct raft_entry *e = raft_log_get(l, i);
		if (e->type != RAFT_ENTRY_CONF)
			continue;
		if (r->snap.index > 0 && r->snap.conf_index > i && r->snap.conf_index <= index)
			break; /* the snapshot knows a newer one (its entry was compacted) */
		int rv = raft_conf_decode(e->buf->data, e->buf->len, out);
		INVARIANT(rv == 0, "conf_at: undecodable configuration entry in the log");
		*out_index = i;
		return;
	}
	if (r->snap.index > 0 && r->snap.conf_index <= index) {
		*out = r->snap.conf;
		*out_index = r->snap.conf_index;
		return;
	}
	memset(out, 0, sizeof(*out)); /* a node waiting to be added knows no configuration */
	*out_index = 0;
}

void raft_conf_rollback(struct raft *r)
{
	struct raft_conf c;
	raft_index idx;
	raft_conf_at(r, raft_log_last_index(&r->log), &c, &idx);
	raft_conf_apply(r, &c, idx);
}

/* The voter to hand leadership to: one we heard from in the current check-quorum round
 * before one we did not (a crashed member cannot take over), then the longest log. */
static struct raft_progress *most_caught_up_voter(struct raft *r)
{
	struct raft_progress *best = NULL;
	for (unsigned i = 0; i < r->n_prs; i++) {
		struct raft_progress *p = &r->prs[i];
		if (!raft_conf_is_voter(&r->conf, p->id))
			continue;
		if (best == NULL || (p->recent_active && !best->recent_active) ||
		    (p->recent_active == best->recent_active && p->match > best->match))
			best = p;
	}
	return best;
}

void raft_conf_on_commit(struct raft *r)
{
	if (r->role != RAFT_LEADER || r->commit < r->conf_index || raft_promotable(r))
		return;
	/* Our own removal is committed: hand over at once rather than leave the rest to wait
	 * out an election timeout, then step down (thesis §4.2.2). */
	struct raft_progress *p = most_caught_up_voter(r);
	if (p != NULL && p->match == raft_log_last_index(&r->log))
		raft_send(r, RAFT_MSG_TIMEOUT_NOW, p->id);
	raft_become_follower(r, r->term, 0);
}

int raft_conf_change(struct raft *r, uint8_t op, raft_id id, const char *addr)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transferee != 0 || r->conf_index > r->commit || r->commit < r->term_start)
		return RAFT_EBUSY;
	struct raft_conf c = r->conf;
	const struct raft_member *m = raft_conf_get(&c, id);
	int rv = 0;
	switch (op) {
	case RAFT_CONF_ADD_LEARNER:
		rv = raft_conf_add(&c, id, RAFT_LEARNER, addr);
		break;
	case RAFT_CONF_ADD_VOTER:
		rv = raft_conf_add(&c, id, RAFT_VOTER, addr);
		break;
	case RAFT_CONF_PROMOTE: {
		if (m == NULL)
			return RAFT_ENOTMEMBER;
		if (m->role != RAFT_LEARNER)
			return RAFT_EINVAL;
		const struct raft_progress *p = raft_progress_of(r, id);
		if (p == NULL || p->match < r->commit)
			return RAFT_ENOTCAUGHTUP;
		((struct raft_member *)raft_conf_get(&c, id))->role = RAFT_VOTER;
		break;
	}
	case RAFT_CONF_REMOVE:
		if (m == NULL)
			return RAFT_ENOTMEMBER;
		if (m->role == RAFT_VOTER && raft_conf_voters(&c) == 1)
			return RAFT_EINVAL; /* a cluster without voters can never make progress */
		raft_conf_remove(&c, id);
		break;
	default:
		return RAFT_EINVAL;
	}
	if (rv != 0)
		return rv;
	struct raft_buf *b = raft_conf_encode(&c);
	r->out->proposed_index = raft_log_last_index(&r->log) + 1;
	r->out->proposed_term = r->term;
	raft_append_local(r, RAFT_ENTRY_CONF, b);
	raft_buf_unref(b);
	raft_bcast_append(r);
	return 0;
}

int raft_transfer(struct raft *r, raft_id target)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (target == 0) {
		struct raft_progress *best = most_caught_up_voter(r);
		if (best == NULL)
			return RAFT_ENOTMEMBER;
		target = best->id;
	}
	if (target == r->id)
		return 0;
	if (!raft_conf_is_voter(&r->conf, target))
		return RAFT_ENOTMEMBER;
	if (r->transferee == target)
		return 0;
	r->transferee = target;
	r->transfer_elapsed = 0;
	struct raft_progress *p = raft_progress_of(r, target);
	INVARIANT(p != NULL, "transfer: voter without progress");
	/* Only a target whose log is complete may be told to campaign; otherwise catch it up
	 * first and send TIMEOUT_NOW when its acknowledgement shows it is current. */
	if (p->match == raft_log_last_index(&r->log))
		raft_send(r, RAFT_MSG_TIMEOUT_NOW, target);
	else
		raft_send_append(r, p);
	return 0;
}
