/* White-box tests of the core: the log, progress tracking, configuration encoding, and the
 * contracts of a single core driven by hand-made messages (durability, commit rule, input
 * validation). Cluster behaviour is tested on the simulator in tests/sim/. */
#include <CUnit/Basic.h>
#include <string.h>

#include "server/raft/conf.h"
#include "server/raft/log.h"
#include "server/raft/progress.h"
#include "server/raft/raft.h"

#include "cunit_main.h"

/* ------------------------------------------------------------------------------------------
 * Log
 * ---------------------------------------------------------------------------------------- */

static struct raft_buf *payload(const char *s)
{
	return raft_buf_new(s, strlen(s));
}

static void append_terms(struct raft_log *l, const raft_term *terms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct raft_buf *b = payload("x");
		raft_log_append(l, terms[i], RAFT_ENTRY_NORMAL, b);
		raft_buf_unref(b);
	}
}

static void test_log_append_truncate_compact(void)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	const raft_term terms[] = {1, 1, 2, 3, 3};
	append_terms(&l, terms, 5);
	CU_ASSERT_EQUAL(raft_log_last_index(&l), 5);
	CU_ASSERT_EQUAL(raft_log_term(&l, 3), 2);
	CU_ASSERT_EQUAL(raft_log_term(&l, 6), 0);
	CU_ASSERT_EQUAL(raft_log_get(&l, 4)->index, 4);
	CU_ASSERT_EQUAL(l.bytes, 5);

	raft_log_truncate(&l, 4);
	CU_ASSERT_EQUAL(raft_log_last_index(&l), 3);
	CU_ASSERT_EQUAL(raft_log_last_term(&l), 2);
	CU_ASSERT_EQUAL(l.bytes, 3);

	raft_log_compact(&l, 2);
	CU_ASSERT_EQUAL(raft_log_first_index(&l), 3);
	CU_ASSERT_EQUAL(raft_log_term(&l, 2), 1); /* kept for the consistency check */
	CU_ASSERT_EQUAL(raft_log_term(&l, 1), 0); /* gone */
	CU_ASSERT_PTR_NULL(raft_log_get(&l, 2));

	/* Many appends after compaction reuse the dead space and keep indexes right. */
	for (int i = 0; i < 100; i++) {
		const raft_term t = 4;
		append_terms(&l, &t, 1);
		if (i % 10 == 9)
			raft_log_compact(&l, raft_log_last_index(&l) - 2);
	}
	CU_ASSERT_EQUAL(raft_log_last_index(&l), 103);
	for (raft_index i = raft_log_first_index(&l); i <= raft_log_last_index(&l); i++)
		CU_ASSERT_EQUAL(raft_log_get(&l, i)->index, i);

	raft_log_reset(&l, 200, 7);
	CU_ASSERT_EQUAL(raft_log_last_index(&l), 200);
	CU_ASSERT_EQUAL(raft_log_last_term(&l), 7);
	CU_ASSERT_EQUAL(l.bytes, 0);
	raft_log_close(&l);
}

static void test_log_find_conflict_by_term(void)
{
	struct raft_log l;
	raft_log_init(&l, 0, 0);
	const raft_term terms[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	append_terms(&l, terms, 10);
	/* The follower's last entry whose term is <= the leader's prev term. */
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 10, 3), 3);
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 10, 5), 7);
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 10, 6), 10);
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 20, 6), 10); /* clamped to last */
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 10, 0), 0);
	raft_log_compact(&l, 5);
	CU_ASSERT_EQUAL(raft_log_find_conflict_by_term(&l, 10, 3), 5); /* stops at offset */
	raft_log_close(&l);
}

/* ------------------------------------------------------------------------------------------
 * Progress
 * ---------------------------------------------------------------------------------------- */

static void test_progress_flow_control(void)
{
	struct raft_progress p;
	raft_progress_init(&p, 2, 11, 3);
	CU_ASSERT_EQUAL(p.state, RAFT_PROBE);
	CU_ASSERT_FALSE(raft_progress_paused(&p));
	raft_progress_sent(&p, 10, 0);
	CU_ASSERT_TRUE(raft_progress_paused(&p)); /* one probe at a time */

	/* A rejection of the probe at 10 with hint 4 moves next to 5. */
	CU_ASSERT_TRUE(raft_progress_decrease(&p, 10, 4));
	CU_ASSERT_EQUAL(p.next, 5);
	CU_ASSERT_FALSE(raft_progress_paused(&p));
	CU_ASSERT_FALSE(raft_progress_decrease(&p, 10, 2)); /* stale: not the last probe */

	CU_ASSERT_TRUE(raft_progress_update(&p, 4));
	raft_progress_become_replicate(&p);
	CU_ASSERT_EQUAL(p.next, 5);
	raft_progress_sent(&p, 6, 2);
	raft_progress_sent(&p, 8, 2);
	raft_progress_sent(&p, 9, 1);
	CU_ASSERT_TRUE(raft_progress_paused(&p)); /* window of 3 full */
	CU_ASSERT_EQUAL(p.next, 10);
	CU_ASSERT_TRUE(raft_progress_update(&p, 8)); /* frees two slots */
	CU_ASSERT_FALSE(raft_progress_paused(&p));
	CU_ASSERT_FALSE(raft_progress_decrease(&p, 7, 0)); /* below match: stale */
	CU_ASSERT_TRUE(raft_progress_decrease(&p, 9, 8));
	CU_ASSERT_EQUAL(p.next, 9);

	/* The follower lost what it acknowledged (its data was wiped: its log is 1..1 now).
	 * The probe at match = 8 is refused with hint 1: match drops, the next probe is at 1
	 * (it used to stay at match + 1 = 9 forever). */
	raft_progress_become_probe(&p);
	CU_ASSERT_EQUAL(p.next, 9);
	raft_progress_sent(&p, 8, 0);
	CU_ASSERT_TRUE(raft_progress_decrease(&p, 8, 1));
	CU_ASSERT_EQUAL(p.match, 1);
	CU_ASSERT_EQUAL(p.next, 2);
	CU_ASSERT_TRUE(raft_progress_update(&p, 8)); /* and climbs back as it is refilled */
	raft_progress_become_replicate(&p);

	raft_progress_become_snapshot(&p, 50);
	CU_ASSERT_TRUE(raft_progress_paused(&p));
	raft_progress_become_probe(&p);
	CU_ASSERT_EQUAL(p.next, 51); /* right after the snapshot it was sent */
	raft_progress_close(&p);
}

/* ------------------------------------------------------------------------------------------
 * Configuration encoding
 * ---------------------------------------------------------------------------------------- */

static void test_conf_roundtrip_and_corruption(void)
{
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(raft_conf_add(&c, 1, RAFT_VOTER, "10.0.0.1:7000"), 0);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 2, RAFT_LEARNER, ""), 0);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 2, RAFT_VOTER, NULL), RAFT_EEXIST);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 0, RAFT_VOTER, NULL), RAFT_EINVAL);
	CU_ASSERT_EQUAL(raft_conf_voters(&c), 1);

	struct raft_buf *b = raft_conf_encode(&c);
	struct raft_conf d;
	CU_ASSERT_EQUAL(raft_conf_decode(b->data, b->len, &d), 0);
	CU_ASSERT_EQUAL(d.n, 2);
	CU_ASSERT_STRING_EQUAL(d.members[0].addr, "10.0.0.1:7000");
	CU_ASSERT_EQUAL(d.members[1].role, RAFT_LEARNER);

	/* Every truncation and every single-byte corruption of the header is refused. */
	for (size_t len = 0; len < b->len; len++)
		CU_ASSERT_EQUAL(raft_conf_decode(b->data, len, &d), RAFT_ECORRUPT);
	unsigned char bad[512];
	memcpy(bad, b->data, b->len);
	bad[0] = 9; /* unknown format */
	CU_ASSERT_EQUAL(raft_conf_decode(bad, b->len, &d), RAFT_ECORRUPT);
	memcpy(bad, b->data, b->len);
	bad[4] = 200; /* member count beyond the limit */
	CU_ASSERT_EQUAL(raft_conf_decode(bad, b->len, &d), RAFT_ECORRUPT);
	memcpy(bad, b->data, b->len);
	bad[5 + 8] = 7; /* unknown role */
	CU_ASSERT_EQUAL(raft_conf_decode(bad, b->len, &d), RAFT_ECORRUPT);
	raft_buf_unref(b);

	for (raft_id id = 3; id <= RAFT_MAX_MEMBERS; id++)
		CU_ASSERT_EQUAL(raft_conf_add(&c, id, RAFT_VOTER, NULL), 0);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 99, RAFT_VOTER, NULL), RAFT_ETOOBIG);
	CU_ASSERT_TRUE(raft_conf_remove(&c, 5));
	CU_ASSERT_PTR_NULL(raft_conf_get(&c, 5));
	CU_ASSERT_FALSE(raft_conf_remove(&c, 5));
}

/* ------------------------------------------------------------------------------------------
 * A single core, driven by hand
 * ---------------------------------------------------------------------------------------- */

static struct raft_conf three_voters(void)
{
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	for (raft_id id = 1; id <= 3; id++)
		raft_conf_add(&c, id, RAFT_VOTER, NULL);
	return c;
}

static struct raft *new_core(raft_id id, const struct raft_conf *bootstrap)
{
	struct raft_config cfg;
	raft_config_default(&cfg, id);
	struct raft_initial_state st;
	memset(&st, 0, sizeof(st));
	st.bootstrap = bootstrap;
	struct raft *r = NULL;
	char err[128];
	CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &st, &r, err, sizeof(err)), 0);
	return r;
}

static int step(struct raft *r, struct raft_event ev, struct raft_update *u)
{
	return raft_step(r, &ev, u);
}

static int deliver(struct raft *r, const struct raft_message *m, struct raft_update *u)
{
	struct raft_event ev = {.type = RAFT_EVENT_RECEIVE, .message = m};
	return raft_step(r, &ev, u);
}

static void persist(struct raft *r, uint64_t write_id, struct raft_update *u)
{
	struct raft_event ev = {.type = RAFT_EVENT_PERSISTED, .write_id = write_id};
	CU_ASSERT_EQUAL(raft_step(r, &ev, u), 0);
}

static const struct raft_message *find_msg(const struct raft_update *u, int type, raft_id to)
{
	for (size_t i = 0; i < u->n_messages; i++)
		if (u->messages[i].type == type && u->messages[i].to == to)
			return &u->messages[i];
	return NULL;
}

/* The first step hands out the bootstrap entry; persist it. */
static struct raft *booted(raft_id id)
{
	struct raft_conf c = three_voters();
	struct raft *r = new_core(id, &c);
	struct raft_update u;
	CU_ASSERT_EQUAL(step(r, (struct raft_event){.type = RAFT_EVENT_TICK}, &u), 0);
	CU_ASSERT_EQUAL(u.n_entries, 1);
	CU_ASSERT_EQUAL(u.entries[0].type, RAFT_ENTRY_CONF);
	CU_ASSERT_TRUE(u.must_sync);
	persist(r, u.write_id, &u);
	return r;
}

/* Make core 1 leader of term 2 with both peers' votes; returns after the no-op is durable. */
static struct raft *leader_of_three(void)
{
	struct raft *r = booted(1);
	struct raft_update u;
	CU_ASSERT_EQUAL(step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u), 0);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_CANDIDATE);
	uint64_t w = u.write_id;
	persist(r, w, &u);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 2};
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL_FATAL(raft_role(r), RAFT_LEADER);
	persist(r, u.write_id, &u); /* the no-op */
	return r;
}

static void test_vote_grant_waits_for_persist(void)
{
	struct raft *r = booted(2);
	struct raft_update u;
	struct raft_message vote = {.type = RAFT_MSG_VOTE,
				    .from = 1,
				    .to = 2,
				    .term = 2,
				    .last_index = 1,
				    .last_term = 1};
	CU_ASSERT_EQUAL(deliver(r, &vote, &u), 0);
	CU_ASSERT_EQUAL(raft_voted_for(r), 1);
	CU_ASSERT_TRUE(u.hs_changed);
	CU_ASSERT_EQUAL(u.hs.vote, 1);
	CU_ASSERT_TRUE(u.must_sync);
	/* Thesis §3.8: the grant must not leave before the vote is durable. */
	CU_ASSERT_PTR_NULL(find_msg(&u, RAFT_MSG_VOTE_RESP, 1));
	uint64_t w = u.write_id;
	CU_ASSERT_NOT_EQUAL(w, 0);
	persist(r, w, &u);
	const struct raft_message *g = find_msg(&u, RAFT_MSG_VOTE_RESP, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_FALSE(g->reject);

	/* One vote per term: a second candidate in term 2 is refused at once. */
	struct raft_message other = vote;
	other.from = 3;
	deliver(r, &other, &u);
	g = find_msg(&u, RAFT_MSG_VOTE_RESP, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_TRUE(g->reject);
	raft_destroy(r);
}

static void test_vote_refused_to_stale_log(void)
{
	struct raft *r = booted(2);
	struct raft_update u;
	/* Give node 2 an entry of term 3 via an append from a leader of term 3. */
	struct raft_buf *b = payload("a");
	struct raft_entry e = {.term = 3, .index = 2, .type = RAFT_ENTRY_NORMAL, .buf = b};
	struct raft_message app = {.type = RAFT_MSG_APPEND,
				   .from = 1,
				   .to = 2,
				   .term = 3,
				   .prev_index = 1,
				   .prev_term = 1,
				   .entries = &e,
				   .n_entries = 1};
	CU_ASSERT_EQUAL(deliver(r, &app, &u), 0);
	raft_buf_unref(b);
	persist(r, u.write_id, &u);
	/* A candidate of a higher term but an older last term does not get the vote, even
	 * though the check-quorum lease is over. */
	for (int i = 0; i < 30; i++)
		step(r, (struct raft_event){.type = RAFT_EVENT_TICK}, &u);
	struct raft_message vote = {.type = RAFT_MSG_VOTE,
				    .from = 3,
				    .to = 2,
				    .term = 9,
				    .last_index = 5,
				    .last_term = 2};
	deliver(r, &vote, &u);
	CU_ASSERT_EQUAL(raft_current_term(r), 9);
	const struct raft_message *g = find_msg(&u, RAFT_MSG_VOTE_RESP, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_TRUE(g->reject);
	raft_destroy(r);
}

static void test_append_ack_waits_for_persist(void)
{
	struct raft *r = booted(2);
	struct raft_update u;
	struct raft_buf *b = payload("a");
	struct raft_entry e = {.term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL, .buf = b};
	struct raft_message app = {.type = RAFT_MSG_APPEND,
				   .from = 1,
				   .to = 2,
				   .term = 2,
				   .prev_index = 1,
				   .prev_term = 1,
				   .entries = &e,
				   .n_entries = 1,
				   .commit = 2};
	deliver(r, &app, &u);
	raft_buf_unref(b);
	CU_ASSERT_EQUAL(u.n_entries, 1);
	CU_ASSERT_PTR_NULL(find_msg(&u, RAFT_MSG_APPEND_RESP, 1));
	/* Both entries are committed now, but only the bootstrap one is durable here. */
	CU_ASSERT_EQUAL(raft_commit_index(r), 2);
	CU_ASSERT_EQUAL_FATAL(u.n_committed, 1);
	CU_ASSERT_EQUAL(u.committed[0].index, 1);
	uint64_t w = u.write_id;
	persist(r, w, &u);
	const struct raft_message *ack = find_msg(&u, RAFT_MSG_APPEND_RESP, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ack);
	CU_ASSERT_EQUAL(ack->index, 2);
	CU_ASSERT_EQUAL_FATAL(u.n_committed, 1);
	CU_ASSERT_EQUAL(u.committed[0].index, 2);
	raft_destroy(r);
}

static void test_leader_counts_itself_only_when_persisted(void)
{
	struct raft *r = leader_of_three();
	struct raft_update u;
	raft_index noop = raft_last_index(r);
	/* Follower 2 answers the probe: it moves to streaming (replicate) and the no-op commits. */
	struct raft_message probe_ack = {
		.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 2, .index = noop};
	deliver(r, &probe_ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), noop);
	struct raft_buf *b = payload("cmd");
	struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .propose = {.bufs = &b, .n = 1}};
	CU_ASSERT_EQUAL(raft_step(r, &ev, &u), 0);
	CU_ASSERT_EQUAL(u.proposed_index, noop + 1);
	CU_ASSERT_PTR_NOT_NULL(find_msg(&u, RAFT_MSG_APPEND, 2)); /* sent before it is durable */
	uint64_t w = u.write_id;
	/* Follower 2 acks: that is 1 of 3 until our own write is durable. */
	struct raft_message ack = {
		.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 2, .index = noop + 1};
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), noop);
	persist(r, w, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), noop + 1);
	CU_ASSERT_EQUAL(u.committed[u.n_committed - 1].index, noop + 1);
	raft_destroy(r);
}

static void test_commit_only_current_term_by_counting(void)
{
	/* Node 1 is a follower holding entries of term 2 from an old leader; it then wins term
	 * 3. A majority acknowledging the term-2 entry must not commit it (paper Figure 8);
	 * once the term-3 no-op reaches a majority both commit. */
	struct raft *r = booted(1);
	struct raft_update u;
	struct raft_buf *b = payload("old");
	struct raft_entry e = {.term = 2, .index = 2, .type = RAFT_ENTRY_NORMAL, .buf = b};
	struct raft_message app = {.type = RAFT_MSG_APPEND,
				   .from = 2,
				   .to = 1,
				   .term = 2,
				   .prev_index = 1,
				   .prev_term = 1,
				   .entries = &e,
				   .n_entries = 1,
				   .commit = 1};
	deliver(r, &app, &u);
	raft_buf_unref(b);
	persist(r, u.write_id, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), 1);

	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	persist(r, u.write_id, &u);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 3, .to = 1, .term = 3};
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL_FATAL(raft_role(r), RAFT_LEADER);
	uint64_t noop_write = u.write_id;
	/* Node 3 acknowledges index 2 (the term-2 entry), and we hold it durably. */
	struct raft_message ack = {
		.type = RAFT_MSG_APPEND_RESP, .from = 3, .to = 1, .term = 3, .index = 2};
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), 1);
	persist(r, noop_write, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), 1); /* still: only 1 of 3 holds the no-op */
	ack.index = 3;
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), 3);
	raft_destroy(r);
}

static void test_read_index_needs_quorum_round(void)
{
	struct raft *r = leader_of_three();
	struct raft_update u;
	struct raft_event rd = {.type = RAFT_EVENT_READ_INDEX, .read_ctx = 42};
	/* The no-op is not committed yet: the read waits (no round started). */
	CU_ASSERT_EQUAL(raft_step(r, &rd, &u), 0);
	CU_ASSERT_EQUAL(u.n_reads, 0);
	CU_ASSERT_PTR_NULL(find_msg(&u, RAFT_MSG_HEARTBEAT, 2));
	raft_index noop = raft_last_index(r);
	struct raft_message ack = {
		.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 2, .index = noop};
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), noop);
	/* Now a round starts: one heartbeat per follower for both reads. */
	const struct raft_message *hb = find_msg(&u, RAFT_MSG_HEARTBEAT, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hb);
	uint64_t round = hb->round;
	CU_ASSERT_NOT_EQUAL(round, 0);
	rd.read_ctx = 43;
	raft_step(r, &rd, &u); /* joins the next round: one is in flight */
	CU_ASSERT_PTR_NULL(find_msg(&u, RAFT_MSG_HEARTBEAT, 2));
	CU_ASSERT_EQUAL(u.n_reads, 0);
	/* An answer from a node outside the configuration or from an old round is no proof. */
	struct raft_message hr = {
		.type = RAFT_MSG_HEARTBEAT_RESP, .from = 2, .to = 1, .term = 2, .round = round - 1};
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL(u.n_reads, 0);
	hr.round = round;
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL_FATAL(u.n_reads, 1);
	CU_ASSERT_EQUAL(u.reads[0].ctx, 42);
	CU_ASSERT_EQUAL(u.reads[0].index, noop);
	/* The second read's round started as the first completed. */
	hb = find_msg(&u, RAFT_MSG_HEARTBEAT, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hb);
	hr.from = 3;
	hr.round = hb->round;
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL_FATAL(u.n_reads, 1);
	CU_ASSERT_EQUAL(u.reads[0].ctx, 43);

	/* Losing leadership drops waiting reads so callers can retry elsewhere. */
	rd.read_ctx = 44;
	raft_step(r, &rd, &u);
	struct raft_message higher = {.type = RAFT_MSG_HEARTBEAT, .from = 3, .to = 1, .term = 7};
	deliver(r, &higher, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_FOLLOWER);
	CU_ASSERT_EQUAL_FATAL(u.n_dropped_reads, 1);
	CU_ASSERT_EQUAL(u.dropped_reads[0], 44);
	CU_ASSERT_EQUAL(raft_step(r, &rd, &u), RAFT_ENOTLEADER);
	raft_destroy(r);
}

static void test_bad_messages_change_nothing(void)
{
	struct raft *r = booted(2);
	struct raft_update u;
	raft_term term = raft_current_term(r);
	struct raft_buf *b = payload("not a configuration");
	struct raft_entry bad_conf = {.term = 2, .index = 2, .type = RAFT_ENTRY_CONF, .buf = b};
	struct raft_entry gap = {.term = 2, .index = 5, .type = RAFT_ENTRY_NORMAL, .buf = b};
	struct raft_entry future = {.term = 9, .index = 2, .type = RAFT_ENTRY_NORMAL, .buf = b};
	struct raft_message cases[] = {
		{.type = 0, .from = 1, .to = 2, .term = 5},
		{.type = 77, .from = 1, .to = 2, .term = 5},
		{.type = RAFT_MSG_APPEND, .from = 0, .to = 2, .term = 5},
		{.type = RAFT_MSG_APPEND, .from = 1, .to = 3, .term = 5},
		{.type = RAFT_MSG_APPEND, .from = 2, .to = 2, .term = 5},
		{.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 0},
		{.type = RAFT_MSG_APPEND,
		 .from = 1,
		 .to = 2,
		 .term = 5,
		 .prev_index = 1,
		 .prev_term = 1,
		 .entries = &bad_conf,
		 .n_entries = 1},
		{.type = RAFT_MSG_APPEND,
		 .from = 1,
		 .to = 2,
		 .term = 5,
		 .prev_index = 1,
		 .prev_term = 1,
		 .entries = &gap,
		 .n_entries = 1},
		{.type = RAFT_MSG_APPEND,
		 .from = 1,
		 .to = 2,
		 .term = 5,
		 .prev_index = 1,
		 .prev_term = 1,
		 .entries = &future,
		 .n_entries = 1},
		{.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 5, .n_entries = 3},
		{.type = RAFT_MSG_VOTE,
		 .from = 1,
		 .to = 2,
		 .term = 5,
		 .entries = &gap,
		 .n_entries = 1},
		{.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = 2, .term = 5},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT_EQUAL(deliver(r, &cases[i], &u), RAFT_EINVAL);
		CU_ASSERT_EQUAL(u.write_id, 0);
		CU_ASSERT_EQUAL(u.n_messages, 0);
	}
	raft_buf_unref(b);
	CU_ASSERT_EQUAL(raft_current_term(r), term);
	CU_ASSERT_EQUAL(raft_last_index(r), 1);
	CU_ASSERT_EQUAL(step(r, (struct raft_event){.type = 99}, &u), RAFT_EINVAL);
	struct raft_event p = {.type = RAFT_EVENT_PERSISTED, .write_id = 1000};
	CU_ASSERT_EQUAL(raft_step(r, &p, &u), RAFT_EINVAL);
	raft_destroy(r);
}

static void test_load_rejects_corrupt_state(void)
{
	struct raft_config cfg;
	raft_config_default(&cfg, 1);
	struct raft *r = NULL;
	char err[128];
	struct raft_initial_state st;
	memset(&st, 0, sizeof(st));
	struct raft_buf *b = payload("x");
	struct raft_entry es[2] = {{.term = 1, .index = 1, .type = RAFT_ENTRY_NORMAL, .buf = b},
				   {.term = 1, .index = 3, .type = RAFT_ENTRY_NORMAL, .buf = b}};
	st.hs.term = 1;
	st.entries = es;
	st.n_entries = 2;
	CU_ASSERT_EQUAL(raft_new(&cfg, &st, &r, err, sizeof(err)), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "contiguous"));
	es[1].index = 2;
	st.hs.commit = 5;
	CU_ASSERT_EQUAL(raft_new(&cfg, &st, &r, err, sizeof(err)), RAFT_ECORRUPT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "commit"));
	st.hs.commit = 2;
	st.hs.term = 0;
	CU_ASSERT_EQUAL(raft_new(&cfg, &st, &r, err, sizeof(err)), RAFT_ECORRUPT);
	st.hs.term = 1;
	CU_ASSERT_EQUAL(raft_new(&cfg, &st, &r, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(raft_commit_index(r), 2);
	raft_destroy(r);
	raft_buf_unref(b);
	cfg.election_ticks = cfg.heartbeat_ticks;
	CU_ASSERT_EQUAL(raft_new(&cfg, &st, &r, err, sizeof(err)), RAFT_EINVAL);
}

static size_t count_msgs(const struct raft_update *u, int type, raft_id to)
{
	size_t n = 0;
	for (size_t i = 0; i < u->n_messages; i++)
		n += u->messages[i].type == type && u->messages[i].to == to;
	return n;
}

static void propose_str(struct raft *r, const char *s, struct raft_update *u)
{
	struct raft_buf *b = payload(s);
	struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .propose = {.bufs = &b, .n = 1}};
	CU_ASSERT_EQUAL(raft_step(r, &ev, u), 0);
}

static void test_snapshot_failure_resumes_probing(void)
{
	struct raft *r = leader_of_three();
	struct raft_update u;
	/* Follower 2 keeps up; commit a few entries and compact everything. */
	for (int i = 0; i < 3; i++) {
		propose_str(r, "v", &u);
		persist(r, u.write_id, &u);
	}
	struct raft_message ack = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 2,
				   .to = 1,
				   .term = 2,
				   .index = raft_last_index(r)};
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_applied_index(r), raft_last_index(r));
	struct raft_event snap = {
		.type = RAFT_EVENT_SNAPSHOT_TAKEN,
		.snapshot_taken = {.index = raft_applied_index(r), .trailing = 0}};
	CU_ASSERT_EQUAL(raft_step(r, &snap, &u), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u.compacted);
	CU_ASSERT_EQUAL(u.compacted->index, raft_last_index(r));
	CU_ASSERT_EQUAL(u.compacted->conf.n, 3);
	CU_ASSERT_EQUAL(raft_first_index(r), raft_last_index(r) + 1);

	/* Follower 3 has nothing: its rejection leads to a snapshot. */
	struct raft_progress_info pi;
	CU_ASSERT_TRUE(raft_progress(r, 3, &pi));
	struct raft_message rej = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 3,
				   .to = 1,
				   .term = 2,
				   .reject = true,
				   .index = pi.next - 1,
				   .hint_index = 0};
	deliver(r, &rej, &u);
	const struct raft_message *sm = find_msg(&u, RAFT_MSG_SNAPSHOT, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sm);
	CU_ASSERT_EQUAL(sm->snapshot.index, raft_last_index(r));
	CU_ASSERT_TRUE(raft_progress(r, 3, &pi));
	CU_ASSERT_EQUAL(pi.state, RAFT_SNAPSHOT);

	/* While the snapshot is in flight nothing else goes to it. */
	struct raft_message hr = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = 3, .to = 1, .term = 2};
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL(count_msgs(&u, RAFT_MSG_APPEND, 3) + count_msgs(&u, RAFT_MSG_SNAPSHOT, 3),
			0);
	/* The transport reports the send failed: probing resumes on its next answer. */
	struct raft_event failed = {.type = RAFT_EVENT_SNAPSHOT_FAILED, .peer = 3};
	CU_ASSERT_EQUAL(raft_step(r, &failed, &u), 0);
	CU_ASSERT_TRUE(raft_progress(r, 3, &pi));
	CU_ASSERT_EQUAL(pi.state, RAFT_PROBE);
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL(count_msgs(&u, RAFT_MSG_APPEND, 3) + count_msgs(&u, RAFT_MSG_SNAPSHOT, 3),
			1);
	/* It installs the snapshot: acknowledged at its index, it streams again. */
	ack.from = 3;
	deliver(r, &ack, &u);
	CU_ASSERT_TRUE(raft_progress(r, 3, &pi));
	CU_ASSERT_EQUAL(pi.state, RAFT_REPLICATE);
	CU_ASSERT_EQUAL(pi.match, raft_last_index(r));
	raft_destroy(r);
}

static void test_append_batches_bounded_by_bytes(void)
{
	struct raft_conf c = three_voters();
	struct raft_config cfg;
	raft_config_default(&cfg, 1);
	cfg.max_append_bytes = 100;
	struct raft_initial_state st;
	memset(&st, 0, sizeof(st));
	st.bootstrap = &c;
	struct raft *r = NULL;
	CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &st, &r, NULL, 0), 0);
	struct raft_update u;
	step(r, (struct raft_event){.type = RAFT_EVENT_TICK}, &u);
	persist(r, u.write_id, &u);
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	persist(r, u.write_id, &u);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 2};
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL_FATAL(raft_role(r), RAFT_LEADER);
	struct raft_message ack = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 2,
				   .to = 1,
				   .term = 2,
				   .index = raft_last_index(r)};
	deliver(r, &ack, &u); /* follower 2 now streams */
	/* Five 40-byte entries at once: at most two fit in 100 bytes per message; a single
	 * 300-byte entry still goes, alone. */
	struct raft_buf *bufs[6];
	for (int i = 0; i < 5; i++)
		bufs[i] = raft_buf_new(NULL, 40);
	bufs[5] = raft_buf_new(NULL, 300);
	struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .propose = {.bufs = bufs, .n = 6}};
	CU_ASSERT_EQUAL(raft_step(r, &ev, &u), 0);
	size_t total = 0, msgs = 0;
	for (size_t i = 0; i < u.n_messages; i++) {
		const struct raft_message *m = &u.messages[i];
		if (m->type != RAFT_MSG_APPEND || m->to != 2)
			continue;
		size_t bytes = 0;
		for (size_t j = 0; j < m->n_entries; j++)
			bytes += m->entries[j].buf->len;
		CU_ASSERT_TRUE(bytes <= 100 || m->n_entries == 1);
		total += m->n_entries;
		msgs++;
	}
	CU_ASSERT_EQUAL(total, 6);
	CU_ASSERT_EQUAL(msgs, 4); /* 2 + 2 + 1 + the big one */
	raft_destroy(r);
}

static void test_membership_and_transfer_errors(void)
{
	struct raft *r = leader_of_three();
	struct raft_update u;
	struct raft_event cc = {.type = RAFT_EVENT_CONF_CHANGE,
				.conf = {.op = RAFT_CONF_ADD_LEARNER, .id = 4}};
	/* No entry of this term is committed yet. */
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_EBUSY);
	struct raft_message ack = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 2,
				   .to = 1,
				   .term = 2,
				   .index = raft_last_index(r)};
	deliver(r, &ack, &u);
	cc.conf.op = RAFT_CONF_PROMOTE;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_ENOTMEMBER);
	cc.conf.id = 2;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_EINVAL); /* already a voter */
	cc.conf.op = RAFT_CONF_ADD_VOTER;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_EEXIST);
	cc.conf.op = 99;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_EINVAL);
	cc.conf.op = RAFT_CONF_REMOVE;
	cc.conf.id = 9;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_ENOTMEMBER);

	/* Add learner 4: the change is in force at once, and a second one must wait. */
	cc.conf.op = RAFT_CONF_ADD_LEARNER;
	cc.conf.id = 4;
	cc.conf.addr = "n4:7000";
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), 0);
	CU_ASSERT_EQUAL(raft_conf_current(r)->n, 4);
	CU_ASSERT_EQUAL(u.proposed_index, raft_last_index(r));
	CU_ASSERT_STRING_EQUAL(raft_conf_get(raft_conf_current(r), 4)->addr, "n4:7000");
	cc.conf.op = RAFT_CONF_PROMOTE;
	CU_ASSERT_EQUAL(raft_step(r, &cc, &u), RAFT_EBUSY);

	struct raft_event tr = {.type = RAFT_EVENT_TRANSFER, .peer = 4};
	CU_ASSERT_EQUAL(raft_step(r, &tr, &u), RAFT_ENOTMEMBER); /* learners cannot lead */
	tr.peer = 9;
	CU_ASSERT_EQUAL(raft_step(r, &tr, &u), RAFT_ENOTMEMBER);
	tr.peer = 1;
	CU_ASSERT_EQUAL(raft_step(r, &tr, &u), 0); /* ourselves: nothing to do */
	CU_ASSERT_EQUAL(raft_transferee(r), 0);
	raft_destroy(r);

	/* A single-voter cluster cannot remove its last voter. */
	struct raft_conf one;
	memset(&one, 0, sizeof(one));
	raft_conf_add(&one, 1, RAFT_VOTER, NULL);
	r = new_core(1, &one);
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	persist(r, u.write_id, &u);
	CU_ASSERT_EQUAL_FATAL(raft_role(r), RAFT_LEADER);
	persist(r, u.write_id, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), raft_last_index(r));
	struct raft_event rm = {.type = RAFT_EVENT_CONF_CHANGE,
				.conf = {.op = RAFT_CONF_REMOVE, .id = 1}};
	CU_ASSERT_EQUAL(raft_step(r, &rm, &u), RAFT_EINVAL);
	/* A read on a single voter needs no round trip. */
	struct raft_event rd = {.type = RAFT_EVENT_READ_INDEX, .read_ctx = 5};
	CU_ASSERT_EQUAL(raft_step(r, &rd, &u), 0);
	CU_ASSERT_EQUAL_FATAL(u.n_reads, 1);
	CU_ASSERT_EQUAL(u.reads[0].index, raft_commit_index(r));
	raft_destroy(r);
}

static void test_learner_votes_do_not_count(void)
{
	/* Voters 1, 2, 3 and learners 4, 5: a candidate granted by itself and two learners
	 * has 3 grants but only 1 of 3 voters, and must not lead. */
	struct raft_conf c = three_voters();
	raft_conf_add(&c, 4, RAFT_LEARNER, NULL);
	raft_conf_add(&c, 5, RAFT_LEARNER, NULL);
	struct raft *r = new_core(1, &c);
	struct raft_update u;
	step(r, (struct raft_event){.type = RAFT_EVENT_TICK}, &u);
	persist(r, u.write_id, &u);
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	CU_ASSERT_PTR_NULL(find_msg(&u, RAFT_MSG_VOTE, 4)); /* learners are not asked */
	CU_ASSERT_PTR_NOT_NULL(find_msg(&u, RAFT_MSG_VOTE, 2));
	persist(r, u.write_id, &u);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 4, .to = 1, .term = 2};
	deliver(r, &grant, &u);
	grant.from = 5;
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_CANDIDATE);
	grant.from = 3;
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_LEADER);
	raft_destroy(r);
}

static void test_truncated_conf_rolls_back(void)
{
	/* A follower appends an uncommitted configuration removing node 3; a new leader's log
	 * replaces that entry, and the follower's configuration must revert. */
	struct raft *r = booted(2);
	struct raft_update u;
	struct raft_conf two;
	memset(&two, 0, sizeof(two));
	raft_conf_add(&two, 1, RAFT_VOTER, NULL);
	raft_conf_add(&two, 2, RAFT_VOTER, NULL);
	struct raft_buf *cb = raft_conf_encode(&two);
	struct raft_entry e[2] = {{.term = 2, .index = 2, .type = RAFT_ENTRY_NOOP},
				  {.term = 2, .index = 3, .type = RAFT_ENTRY_CONF, .buf = cb}};
	struct raft_message app = {.type = RAFT_MSG_APPEND,
				   .from = 1,
				   .to = 2,
				   .term = 2,
				   .prev_index = 1,
				   .prev_term = 1,
				   .entries = e,
				   .n_entries = 2,
				   .commit = 2};
	CU_ASSERT_EQUAL(deliver(r, &app, &u), 0);
	raft_buf_unref(cb);
	CU_ASSERT_EQUAL(raft_conf_current(r)->n, 2); /* in force once appended */
	CU_ASSERT_EQUAL(raft_conf_index(r), 3);
	persist(r, u.write_id, &u);

	struct raft_buf *nb = payload("new");
	struct raft_entry n = {.term = 3, .index = 3, .type = RAFT_ENTRY_NORMAL, .buf = nb};
	struct raft_message app3 = {.type = RAFT_MSG_APPEND,
				    .from = 3,
				    .to = 2,
				    .term = 3,
				    .prev_index = 2,
				    .prev_term = 2,
				    .entries = &n,
				    .n_entries = 1,
				    .commit = 2};
	CU_ASSERT_EQUAL(deliver(r, &app3, &u), 0);
	raft_buf_unref(nb);
	CU_ASSERT_EQUAL(u.truncate_from, 3);
	CU_ASSERT_EQUAL(raft_conf_current(r)->n, 3);
	CU_ASSERT_EQUAL(raft_conf_index(r), 1);
	CU_ASSERT_PTR_NOT_NULL(raft_conf_get(raft_conf_current(r), 3));
	raft_destroy(r);
}

static void test_leader_only_with_durable_own_vote(void)
{
	/* Both peers grant before the candidate's own term/vote write is durable: it must not
	 * lead yet, or a crash could make it win (and lead) the same term twice. */
	struct raft *r = booted(1);
	struct raft_update u;
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	uint64_t w = u.write_id;
	CU_ASSERT_TRUE(u.must_sync);
	CU_ASSERT_EQUAL(u.hs.vote, 1);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 2};
	deliver(r, &grant, &u);
	grant.from = 3;
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_CANDIDATE);
	CU_ASSERT_EQUAL(count_msgs(&u, RAFT_MSG_APPEND, 2), 0);
	persist(r, w, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_LEADER);
	CU_ASSERT_PTR_NOT_NULL(find_msg(&u, RAFT_MSG_APPEND, 2));
	raft_destroy(r);
}

static void test_lower_term_vote_gets_our_term(void)
{
	struct raft *r = booted(2);
	struct raft_update u;
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 5};
	deliver(r, &hb, &u);
	CU_ASSERT_EQUAL(raft_current_term(r), 5);
	/* A candidate stuck at term 3 hears our term back, refused. */
	struct raft_message vote = {.type = RAFT_MSG_VOTE,
				    .from = 3,
				    .to = 2,
				    .term = 3,
				    .last_index = 9,
				    .last_term = 3};
	deliver(r, &vote, &u);
	const struct raft_message *resp = find_msg(&u, RAFT_MSG_VOTE_RESP, 3);
	CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
	CU_ASSERT_TRUE(resp->reject);
	CU_ASSERT_EQUAL(resp->term, 5);
	raft_destroy(r);

	/* ...and a candidate receiving it moves on to that term. */
	r = booted(3);
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_CANDIDATE);
	struct raft_message back = {
		.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 3, .term = 5, .reject = true};
	deliver(r, &back, &u);
	CU_ASSERT_EQUAL(raft_role(r), RAFT_FOLLOWER);
	CU_ASSERT_EQUAL(raft_current_term(r), 5);
	raft_destroy(r);
}

static void test_read_released_when_removal_shrinks_quorum(void)
{
	/* Four voters, 3 and 4 unreachable after the election: a read's round is acknowledged
	 * by 2 only (2 of 4). Removing 4 makes 2 of 3 a quorum: the read must come out. */
	struct raft_conf c = three_voters();
	raft_conf_add(&c, 4, RAFT_VOTER, NULL);
	struct raft *r = new_core(1, &c);
	struct raft_update u;
	step(r, (struct raft_event){.type = RAFT_EVENT_TICK}, &u);
	persist(r, u.write_id, &u);
	step(r, (struct raft_event){.type = RAFT_EVENT_CAMPAIGN}, &u);
	persist(r, u.write_id, &u);
	struct raft_message grant = {.type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 2};
	deliver(r, &grant, &u);
	grant.from = 3;
	deliver(r, &grant, &u);
	CU_ASSERT_EQUAL_FATAL(raft_role(r), RAFT_LEADER);
	persist(r, u.write_id, &u);
	struct raft_message ack = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 2,
				   .to = 1,
				   .term = 2,
				   .index = raft_last_index(r)};
	deliver(r, &ack, &u);
	ack.from = 3;
	deliver(r, &ack, &u);
	CU_ASSERT_EQUAL(raft_commit_index(r), raft_last_index(r));

	struct raft_event rd = {.type = RAFT_EVENT_READ_INDEX, .read_ctx = 7};
	raft_step(r, &rd, &u);
	const struct raft_message *hb = find_msg(&u, RAFT_MSG_HEARTBEAT, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hb);
	struct raft_message hr = {
		.type = RAFT_MSG_HEARTBEAT_RESP, .from = 2, .to = 1, .term = 2, .round = hb->round};
	deliver(r, &hr, &u);
	CU_ASSERT_EQUAL(u.n_reads, 0);
	struct raft_event rm = {.type = RAFT_EVENT_CONF_CHANGE,
				.conf = {.op = RAFT_CONF_REMOVE, .id = 4}};
	CU_ASSERT_EQUAL(raft_step(r, &rm, &u), 0);
	CU_ASSERT_EQUAL_FATAL(u.n_reads, 1);
	CU_ASSERT_EQUAL(u.reads[0].ctx, 7);
	raft_destroy(r);
}

static CU_TestInfo tests[] = {
	{"log append/truncate/compact", test_log_append_truncate_compact},
	{"log find conflict by term", test_log_find_conflict_by_term},
	{"progress flow control", test_progress_flow_control},
	{"conf encode/decode/corruption", test_conf_roundtrip_and_corruption},
	{"vote grant waits for persist", test_vote_grant_waits_for_persist},
	{"vote refused to stale log", test_vote_refused_to_stale_log},
	{"append ack waits for persist", test_append_ack_waits_for_persist},
	{"leader counts itself once persisted", test_leader_counts_itself_only_when_persisted},
	{"commit only current term by counting", test_commit_only_current_term_by_counting},
	{"read index needs a quorum round", test_read_index_needs_quorum_round},
	{"bad messages change nothing", test_bad_messages_change_nothing},
	{"load rejects corrupt state", test_load_rejects_corrupt_state},
	{"snapshot failure resumes probing", test_snapshot_failure_resumes_probing},
	{"append batches bounded by bytes", test_append_batches_bounded_by_bytes},
	{"membership and transfer errors", test_membership_and_transfer_errors},
	{"learner votes do not count", test_learner_votes_do_not_count},
	{"truncated configuration rolls back", test_truncated_conf_rolls_back},
	{"leader only with durable own vote", test_leader_only_with_durable_own_vote},
	{"lower-term vote gets our term", test_lower_term_vote_gets_our_term},
	{"read released when removal shrinks quorum",
	 test_read_released_when_removal_shrinks_quorum},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"raft_unit", NULL, NULL, NULL, NULL, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
