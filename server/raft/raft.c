/* raft_step(): event dispatch, the term rules every message passes, and assembly of the update
 * record (persist / send / apply / reads) that a step hands back to the caller. */
#include <stdio.h> /* snprintf only (poisoned functions stay unusable below) */
#include <string.h>

#include "common/check.h"
#include "heap.h"
#include "impl.h"

#include "pure.h"

void raft_config_default(struct raft_config *c, raft_id id)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->seed = id;
	c->election_ticks = 10;
	c->heartbeat_ticks = 1;
	c->pre_vote = true;
	c->check_quorum = true;
	c->max_append_bytes = 1024 * 1024;
	c->max_inflight = 64;
	c->max_entries_per_append = 1024;
}

/* ------------------------------------------------------------------------------------------
 * Small containers
 * ---------------------------------------------------------------------------------------- */

void entvec_push(struct entvec *v, const struct raft_entry *e)
{
	raft_heap_reserve((void **)&v->e, &v->cap, v->n + 1, sizeof(*v->e));
	v->e[v->n] = *e;
	raft_buf_ref(e->buf);
	v->n++;
}

void entvec_clear(struct entvec *v)
{
	for (size_t i = 0; i < v->n; i++)
		raft_buf_unref(v->e[i].buf);
	v->n = 0;
}

void entvec_free(struct entvec *v)
{
	entvec_clear(v);
	raft_heap_free(v->e);
	memset(v, 0, sizeof(*v));
}

/* ------------------------------------------------------------------------------------------
 * Shared helpers
 * ---------------------------------------------------------------------------------------- */

struct raft_progress *raft_progress_of(struct raft *r, raft_id id)
{
	for (unsigned i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

unsigned raft_quorum(const struct raft *r)
{
	return raft_conf_voters(&r->conf) / 2 + 1;
}

bool raft_promotable(const struct raft *r)
{
	return raft_conf_is_voter(&r->conf, r->id);
}

uint64_t raft_quorum_value(const struct raft *r, uint64_t self_value,
			   uint64_t (*get)(const struct raft_progress *p))
{
	uint64_t v[RAFT_MAX_MEMBERS];
	unsigned n = 0;
	for (unsigned i = 0; i < r->conf.n; i++) {
		const struct raft_member *m = &r->conf.members[i];
		if (m->role != RAFT_VOTER)
			continue;
		if (m->id == r->id) {
			v[n++] = self_value;
			continue;
		}
		const struct raft_progress *p = raft_progress_of((struct raft *)r, m->id);
		v[n++] = p != NULL ? get(p) : 0;
	}
	if (n == 0)
		return 0;
	/* Insertion sort, descending: n <= RAFT_MAX_MEMBERS. */
	for (unsigned i = 1; i < n; i++)
		for (unsigned j = i; j > 0 && v[j - 1] < v[j]; j--) {
			uint64_t t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	return v[n / 2]; /* the (n/2+1)-th largest: a majority holds at least this */
}

struct raft_message *raft_send(struct raft *r, uint8_t type, raft_id to)
{
	raft_heap_reserve((void **)&r->msgs, &r->cap_msgs, r->n_msgs + 1, sizeof(*r->msgs));
	struct raft_message *m = &r->msgs[r->n_msgs++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = r->id;
	m->to = to;
	m->term = r->term;
	return m;
}

void raft_send_after_persist(struct raft *r, const struct raft_message *m)
{
	raft_heap_reserve((void **)&r->held, &r->cap_held, r->n_held + 1, sizeof(*r->held));
	struct held_msg *h = &r->held[r->n_held++];
	h->write_id = UINT64_MAX; /* tagged when the step ends, see finish_step() */
	h->m = *m;
	h->m.entries = NULL;
	h->m.n_entries = 0;
}

/* Append one entry of `term` to the in-memory log and to this step's write. */
static void append_entry(struct raft *r, raft_term term, uint8_t type, struct raft_buf *buf)
{
	raft_log_append(&r->log, term, type, buf);
	const struct raft_entry *e = raft_log_get(&r->log, raft_log_last_index(&r->log));
	entvec_push(&r->u_entries, e);
	if (type == RAFT_ENTRY_CONF) {
		struct raft_conf c;
		/* Decoded before: by the leader that encoded it, or by message validation. */
		int rv = raft_conf_decode(buf->data, buf->len, &c);
		INVARIANT(rv == 0, "append: undecodable configuration entry");
		raft_conf_apply(r, &c, e->index);
	}
}

void raft_append_local(struct raft *r, uint8_t type, struct raft_buf *buf)
{
	append_entry(r, r->term, type, buf);
}

void raft_append_remote(struct raft *r, const struct raft_entry *e)
{
	append_entry(r, e->term, e->type, e->buf);
}

void raft_truncate_local(struct raft *r, raft_index from)
{
	INVARIANT(from > r->commit, "truncate: a committed entry would be overwritten");
	raft_log_truncate(&r->log, from);
	if (r->u_truncate == 0 || from < r->u_truncate)
		r->u_truncate = from;
	/* Entries appended earlier in this step and now gone never reach the disk. */
	while (r->u_entries.n > 0 && r->u_entries.e[r->u_entries.n - 1].index >= from) {
		raft_buf_unref(r->u_entries.e[r->u_entries.n - 1].buf);
		r->u_entries.n--;
	}
	/* A write handed out earlier can no longer vouch for entries at or after `from`. */
	if (r->stable >= from)
		r->stable = from - 1;
	for (size_t i = 0; i < r->n_pw; i++)
		if (r->pw[i].last_index >= from)
			r->pw[i].last_index = from - 1;
	if (r->conf_index >= from)
		raft_conf_rollback(r);
}

void raft_commit_to(struct raft *r, raft_index index)
{
	if (index <= r->commit)
		return;
	INVARIANT(index <= raft_log_last_index(&r->log), "commit beyond the last log index");
	r->commit = index;
	raft_conf_on_commit(r);
	if (r->role == RAFT_LEADER)
		raft_reads_on_commit(r);
}

/* ------------------------------------------------------------------------------------------
 * Creation
 * ---------------------------------------------------------------------------------------- */

static int fail(char *errmsg, size_t len, int rv, const char *what)
{
	if (errmsg != NULL && len > 0)
		snprintf(errmsg, len, "%s", what);
	return rv;
}

static int validate_config(const struct raft_config *c, char *errmsg, size_t len)
{
	if (c->id == 0)
		return fail(errmsg, len, RAFT_EINVAL, "config: id must be non-zero");
	if (c->heartbeat_ticks == 0 || c->election_ticks <= c->heartbeat_ticks)
		return fail(errmsg, len, RAFT_EINVAL,
			    "config: need 0 < heartbeat_ticks < election_ticks");
	if (c->max_inflight == 0 || c->max_entries_per_append == 0 || c->max_append_bytes == 0)
		return fail(errmsg, len, RAFT_EINVAL,
			    "config: max_inflight, max_entries_per_append and max_append_bytes "
			    "must be non-zero");
	return 0;
}

static int load_state(struct raft *r, const struct raft_initial_state *st, char *errmsg, size_t len)
{
	const struct raft_snapshot_meta *s = st->snapshot;
	if (s != NULL && s->index > 0) {
		if (s->term == 0 || !raft_conf_valid(&s->conf) || s->conf_index > s->index)
			return fail(errmsg, len, RAFT_ECORRUPT, "load: invalid snapshot metadata");
		r->snap = *s;
	}
	raft_log_init(&r->log, r->snap.index, r->snap.term);
	for (size_t i = 0; i < st->n_entries; i++) {
		const struct raft_entry *e = &st->entries[i];
		if (e->index != raft_log_last_index(&r->log) + 1)
			return fail(errmsg, len, RAFT_ECORRUPT,
				    "load: log entries are not contiguous after the snapshot");
		if (e->term < raft_log_last_term(&r->log) || e->term == 0)
			return fail(errmsg, len, RAFT_ECORRUPT, "load: log terms go backwards");
		if (e->type == RAFT_ENTRY_CONF) {
			struct raft_conf c;
			if (e->buf == NULL || raft_conf_decode(e->buf->data, e->buf->len, &c) != 0)
				return fail(errmsg, len, RAFT_ECORRUPT,
					    "load: undecodable configuration entry");
		} else if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_NOOP) {
			return fail(errmsg, len, RAFT_ECORRUPT, "load: unknown entry type");
		}
		raft_log_append(&r->log, e->term, e->type, e->buf);
	}
	if (raft_log_last_term(&r->log) > st->hs.term)
		return fail(errmsg, len, RAFT_ECORRUPT, "load: log term above the current term");
	r->term = st->hs.term;
	r->vote = st->hs.vote;
	r->commit = st->hs.commit < r->snap.index ? r->snap.index : st->hs.commit;
	if (r->commit > raft_log_last_index(&r->log))
		return fail(errmsg, len, RAFT_ECORRUPT, "load: commit index beyond the log");
	r->hs_written = st->hs;
	r->applied = r->snap.index;
	r->stable = raft_log_last_index(&r->log);
	raft_conf_at(r, raft_log_last_index(&r->log), &r->conf, &r->conf_index);
	return 0;
}

int raft_new(const struct raft_config *cfg, const struct raft_initial_state *st, struct raft **out,
	     char *errmsg, size_t errmsg_len)
{
	int rv = validate_config(cfg, errmsg, errmsg_len);
	if (rv != 0)
		return rv;
	struct raft *r = raft_heap_zalloc(sizeof(*r));
	r->cfg = *cfg;
	r->id = cfg->id;
	prng_seed(&r->prng, cfg->seed ^ (cfg->id * 0x9e3779b97f4a7c15ULL));
	r->role = RAFT_FOLLOWER;
	rv = load_state(r, st, errmsg, errmsg_len);
	if (rv != 0)
		goto err;
	bool empty = r->term == 0 && r->vote == 0 && raft_log_last_index(&r->log) == 0;
	if (empty && st->bootstrap != NULL) {
		if (!raft_conf_valid(st->bootstrap) || raft_conf_voters(st->bootstrap) == 0) {
			rv = fail(errmsg, errmsg_len, RAFT_EINVAL,
				  "bootstrap: configuration invalid or without voters");
			goto err;
		}
		/* Every founding member writes the same entry at (1, 1): their logs match. */
		r->term = 1;
		struct raft_buf *b = raft_conf_encode(st->bootstrap);
		raft_append_local(r, RAFT_ENTRY_CONF, b);
		raft_buf_unref(b);
	}
	raft_reset_election_timer(r);
	*out = r;
	return 0;
err:
	raft_destroy(r);
	return rv;
}

static void release_outputs(struct raft *r)
{
	for (size_t i = 0; i < r->n_msgs; i++)
		raft_message_release(&r->msgs[i]);
	r->n_msgs = 0;
	entvec_clear(&r->committed);
	r->n_ready_reads = 0;
	r->n_dropped = 0;
}

void raft_destroy(struct raft *r)
{
	if (r == NULL)
		return;
	release_outputs(r);
	raft_heap_free(r->msgs);
	entvec_free(&r->committed);
	entvec_free(&r->u_entries);
	entvec_free(&r->w_entries);
	raft_heap_free(r->ready_reads);
	raft_heap_free(r->dropped);
	raft_heap_free(r->reads);
	raft_heap_free(r->held);
	raft_heap_free(r->pw);
	for (unsigned i = 0; i < r->n_prs; i++)
		raft_progress_close(&r->prs[i]);
	raft_log_close(&r->log);
	raft_heap_free(r);
}

/* ------------------------------------------------------------------------------------------
 * Messages: validation and the term rules (thesis §3.3, etcd's Step)
 * ---------------------------------------------------------------------------------------- */

/* Bad input from the network is an expected failure: refuse it whole, change nothing. */
static bool message_valid(const struct raft *r, const struct raft_message *m)
{
	if (m->type == 0 || m->type > RAFT_MSG_TYPE_MAX || m->from == 0 || m->from == r->id ||
	    m->to != r->id || m->term == 0)
		return false;
	if (m->n_entries > 0 && (m->type != RAFT_MSG_APPEND || m->entries == NULL))
		return false;
	if (m->type == RAFT_MSG_APPEND) {
		raft_term prev = m->prev_term;
		for (size_t i = 0; i < m->n_entries; i++) {
			const struct raft_entry *e = &m->entries[i];
			if (e->index != m->prev_index + 1 + i || e->term < prev ||
			    e->term > m->term)
				return false;
			if (e->type == RAFT_ENTRY_CONF) {
				struct raft_conf c;
				if (e->buf == NULL ||
				    raft_conf_decode(e->buf->data, e->buf->len, &c) != 0)
					return false;
			} else if (e->type != RAFT_ENTRY_NORMAL && e->type != RAFT_ENTRY_NOOP) {
				return false;
			}
			prev = e->term;
		}
	}
	if (m->type == RAFT_MSG_SNAPSHOT) {
		const struct raft_snapshot_meta *s = &m->snapshot;
		if (s->index == 0 || s->term == 0 || s->term > m->term ||
		    s->conf_index > s->index || !raft_conf_valid(&s->conf))
			return false;
	}
	return true;
}

static bool from_leader(uint8_t type)
{
	return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAPSHOT;
}

static void recv_message(struct raft *r, const struct raft_message *m)
{
	if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
			/* Check-quorum lease (thesis §4.2.3): while we hear from a leader, a
			 * rejoining node with a higher term cannot depose it — unless the leader
			 * itself asked for the election (TIMEOUT_NOW). */
			bool in_lease = r->cfg.check_quorum && r->leader != 0 &&
					r->election_elapsed < r->cfg.election_ticks;
			if (in_lease && !m->transfer)
				return;
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			/* A pre-vote changes nothing, not even our term. */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* Granted at the term we would campaign at: counted below. */
		} else {
			raft_become_follower(r, m->term, from_leader(m->type) ? m->from : 0);
		}
	} else if (m->term < r->term) {
		if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
		    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
			/* A stale leader that cannot hear our votes would stay leader forever
			 * (pre-vote keeps our term from reaching it): tell it the term. Sent as
			 * a rejection of index 0, which a leader of that term (should the old one
			 * win it later) ignores as stale rather than taking as an ack. */
			raft_send(r, RAFT_MSG_APPEND_RESP, m->from)->reject = true;
		} else if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
			/* Refuse with our term, so a candidate stuck in an old term (with pre-vote
			 * off it may never hear from anyone else) learns it and can catch up. */
			uint8_t t = m->type == RAFT_MSG_PREVOTE ? RAFT_MSG_PREVOTE_RESP
								: RAFT_MSG_VOTE_RESP;
			raft_send(r, t, m->from)->reject = true;
		}
		return;
	}

	switch (m->type) {
	case RAFT_MSG_APPEND:
		raft_recv_append(r, m);
		break;
	case RAFT_MSG_APPEND_RESP:
		raft_recv_append_resp(r, m);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		raft_recv_vote(r, m);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		raft_recv_vote_resp(r, m);
		break;
	case RAFT_MSG_HEARTBEAT:
		raft_recv_heartbeat(r, m);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		raft_recv_heartbeat_resp(r, m);
		break;
	case RAFT_MSG_SNAPSHOT:
		raft_recv_snapshot(r, m);
		break;
	case RAFT_MSG_TIMEOUT_NOW:
		raft_recv_timeout_now(r, m);
		break;
	}
}

/* ------------------------------------------------------------------------------------------
 * Durability: persisted writes release held promises
 * ---------------------------------------------------------------------------------------- */

/* Move every held message whose write is durable out: to the network, or — for the
 * candidate's vote for itself — straight back into the core. */
static void release_held(struct raft *r)
{
	size_t keep = 0;
	for (size_t i = 0; i < r->n_held; i++) {
		struct held_msg *h = &r->held[i];
		if (h->write_id > r->persisted_write_id) {
			r->held[keep++] = *h;
			continue;
		}
		struct raft_message m = h->m;
		if (m.to == r->id) {
			/* Keep our own bookkeeping consistent while we re-enter the core. */
			for (size_t j = i + 1; j < r->n_held; j++)
				r->held[keep + j - i - 1] = r->held[j];
			r->n_held = keep + (r->n_held - i - 1);
			if (m.term == r->term)
				recv_message(r, &m);
			release_held(r);
			return;
		}
		raft_heap_reserve((void **)&r->msgs, &r->cap_msgs, r->n_msgs + 1, sizeof(*r->msgs));
		r->msgs[r->n_msgs++] = m;
	}
	r->n_held = keep;
}

static int on_persisted(struct raft *r, uint64_t write_id)
{
	if (write_id > r->last_write_id)
		return RAFT_EINVAL;
	if (write_id <= r->persisted_write_id)
		return 0;
	r->persisted_write_id = write_id;
	size_t done = 0;
	while (done < r->n_pw && r->pw[done].write_id <= write_id) {
		r->stable = r->pw[done].last_index;
		done++;
	}
	memmove(r->pw, r->pw + done, (r->n_pw - done) * sizeof(*r->pw));
	r->n_pw -= done;
	release_held(r);
	if (r->role == RAFT_LEADER)
		raft_maybe_commit(r);
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * Snapshots taken by the caller: log compaction
 * ---------------------------------------------------------------------------------------- */

static int on_snapshot_taken(struct raft *r, raft_index index, raft_index trailing)
{
	if (index <= r->snap.index)
		return 0; /* an older snapshot: nothing to gain */
	if (index > r->applied)
		return RAFT_EINVAL;
	struct raft_snapshot_meta s;
	memset(&s, 0, sizeof(s));
	s.index = index;
	s.term = raft_log_term(&r->log, index);
	INVARIANT(s.term != 0, "snapshot: applied entry missing from the log");
	raft_conf_at(r, index, &s.conf, &s.conf_index);
	r->snap = s;
	r->compacted = s;
	r->out->compacted = &r->compacted;
	if (index > trailing && index - trailing > r->log.offset)
		raft_log_compact(&r->log, index - trailing);
	return 0;
}

/* ------------------------------------------------------------------------------------------
 * The step
 * ---------------------------------------------------------------------------------------- */

static void begin_step(struct raft *r, struct raft_update *out)
{
	release_outputs(r);
	entvec_clear(&r->w_entries);
	memset(out, 0, sizeof(*out));
	r->out = out;
	r->role_changed = false;
}

/* Hand out this step's write, release what may go, and collect what may be applied. */
static void finish_step(struct raft *r, struct raft_update *out)
{
	struct raft_hard_state hs = {r->term, r->vote, r->commit};
	bool hs_changed = memcmp(&hs, &r->hs_written, sizeof(hs)) != 0;
	bool has_write = r->u_snapshot || r->u_truncate != 0 || r->u_entries.n > 0 || hs_changed;
	if (has_write) {
		uint64_t id = ++r->last_write_id;
		out->write_id = id;
		out->must_sync = r->u_snapshot || r->u_truncate != 0 || r->u_entries.n > 0 ||
				 hs.term != r->hs_written.term || hs.vote != r->hs_written.vote;
		out->snapshot = r->u_snapshot ? &r->snap : NULL;
		out->truncate_from = r->u_truncate;
		/* Swap: the accumulated entries become the output, kept until the next step. */
		struct entvec t = r->w_entries;
		r->w_entries = r->u_entries;
		r->u_entries = t;
		out->entries = r->w_entries.e;
		out->n_entries = r->w_entries.n;
		out->hs_changed = hs_changed;
		out->hs = hs;
		r->hs_written = hs;
		raft_heap_reserve((void **)&r->pw, &r->cap_pw, r->n_pw + 1, sizeof(*r->pw));
		r->pw[r->n_pw].write_id = id;
		r->pw[r->n_pw].last_index = raft_log_last_index(&r->log);
		r->n_pw++;
		r->u_snapshot = false;
		r->u_truncate = 0;
	}
	/* Promises made in this step depend on everything handed out so far. */
	for (size_t i = 0; i < r->n_held; i++)
		if (r->held[i].write_id == UINT64_MAX)
			r->held[i].write_id = r->last_write_id;
	/* Promises with nothing left to wait for go out now. A candidate's own vote always
	 * waits for its write, so release_held() cannot re-enter the core here. */
	release_held(r);

	raft_index upto = r->commit < r->stable ? r->commit : r->stable;
	while (r->applied < upto) {
		const struct raft_entry *e = raft_log_get(&r->log, r->applied + 1);
		INVARIANT(e != NULL, "apply: committed entry missing from the log");
		entvec_push(&r->committed, e);
		r->applied++;
	}
	out->committed = r->committed.e;
	out->n_committed = r->committed.n;
	out->messages = r->msgs;
	out->n_messages = r->n_msgs;
	out->reads = r->ready_reads;
	out->n_reads = r->n_ready_reads;
	out->dropped_reads = r->dropped;
	out->n_dropped_reads = r->n_dropped;
	out->role_changed = r->role_changed;
	out->role = r->role;
	out->leader = r->leader;
	out->term = r->term;
	r->out = NULL;
}

int raft_step(struct raft *r, const struct raft_event *ev, struct raft_update *out)
{
	int rv = 0;
	begin_step(r, out);
	switch (ev->type) {
	case RAFT_EVENT_TICK:
		if (r->role == RAFT_LEADER)
			raft_tick_leader(r);
		else
			raft_tick_election(r);
		break;
	case RAFT_EVENT_RECEIVE:
		if (ev->message == NULL || !message_valid(r, ev->message))
			rv = RAFT_EINVAL;
		else
			recv_message(r, ev->message);
		break;
	case RAFT_EVENT_PROPOSE:
		rv = raft_propose(r, ev->propose.bufs, ev->propose.n);
		break;
	case RAFT_EVENT_READ_INDEX:
		rv = raft_read_index(r, ev->read_ctx);
		break;
	case RAFT_EVENT_PERSISTED:
		rv = on_persisted(r, ev->write_id);
		break;
	case RAFT_EVENT_SNAPSHOT_TAKEN:
		rv = on_snapshot_taken(r, ev->snapshot_taken.index, ev->snapshot_taken.trailing);
		break;
	case RAFT_EVENT_SNAPSHOT_FAILED: {
		struct raft_progress *p =
			r->role == RAFT_LEADER ? raft_progress_of(r, ev->peer) : NULL;
		if (p != NULL && p->state == RAFT_SNAPSHOT) {
			p->pending_snapshot = 0; /* it did not arrive: probe from what it holds */
			raft_progress_become_probe(p);
			p->probe_sent = true; /* resume on its next heartbeat answer */
		}
		break;
	}
	case RAFT_EVENT_TRANSFER:
		rv = raft_transfer(r, ev->peer);
		break;
	case RAFT_EVENT_CONF_CHANGE:
		rv = raft_conf_change(r, ev->conf.op, ev->conf.id, ev->conf.addr);
		break;
	case RAFT_EVENT_CAMPAIGN:
		if (r->role != RAFT_LEADER && raft_promotable(r))
			raft_campaign(r, false, false);
		else if (r->role != RAFT_LEADER)
			rv = RAFT_ENOTMEMBER;
		break;
	default:
		rv = RAFT_EINVAL;
	}
	finish_step(r, out);
	return rv;
}

/* ------------------------------------------------------------------------------------------
 * Inspection
 * ---------------------------------------------------------------------------------------- */

raft_id raft_id_of(const struct raft *r)
{
	return r->id;
}

int raft_role(const struct raft *r)
{
	return r->role;
}

raft_term raft_current_term(const struct raft *r)
{
	return r->term;
}

raft_id raft_leader(const struct raft *r)
{
	return r->leader;
}

raft_id raft_voted_for(const struct raft *r)
{
	return r->vote;
}

raft_index raft_commit_index(const struct raft *r)
{
	return r->commit;
}

raft_index raft_applied_index(const struct raft *r)
{
	return r->applied;
}

raft_index raft_last_index(const struct raft *r)
{
	return raft_log_last_index(&r->log);
}

raft_index raft_first_index(const struct raft *r)
{
	return raft_log_first_index(&r->log);
}

raft_index raft_snapshot_index(const struct raft *r)
{
	return r->snap.index;
}

raft_term raft_term_at(const struct raft *r, raft_index index)
{
	return raft_log_term(&r->log, index);
}

const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index)
{
	return raft_log_get(&r->log, index);
}

const struct raft_conf *raft_conf_current(const struct raft *r)
{
	return &r->conf;
}

raft_index raft_conf_index(const struct raft *r)
{
	return r->conf_index;
}

raft_id raft_transferee(const struct raft *r)
{
	return r->transferee;
}

bool raft_progress(const struct raft *r, raft_id peer, struct raft_progress_info *out)
{
	if (r->role != RAFT_LEADER)
		return false;
	const struct raft_progress *p = raft_progress_of((struct raft *)r, peer);
	if (p == NULL)
		return false;
	out->match = p->match;
	out->next = p->next;
	out->state = p->state;
	out->recent_active = p->recent_active;
	return true;
}
