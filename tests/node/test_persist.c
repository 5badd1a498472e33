/* The core on real Berkeley DB storage: updates merged into group commits, snapshots and
 * compaction, truncation and snapshot installs, and restarts that load what was persisted. */
#define _DEFAULT_SOURCE /* mkdtemp */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "server/node/persist.h"

static struct {
	char dir[64];
	struct storage *s;
	struct raft *r;
	struct node_batch b;
	raft_index applied;    /* last committed entry seen */
	unsigned applied_cmds; /* NORMAL entries among them */
	bool applied_in_order; /* every committed entry followed the previous one */
} fx;

/* Each test gets a fresh data directory. */
static void setup(void)
{
	memset(&fx, 0, sizeof(fx));
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/raftkv-node-persist.XXXXXX");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx.dir));
	node_batch_init(&fx.b);
}

static void teardown(void)
{
	raft_destroy(fx.r);
	fx.r = NULL;
	node_batch_free(&fx.b);
	storage_close(fx.s);
	fx.s = NULL;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

static struct raft_conf voters(unsigned n)
{
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	for (raft_id id = 1; id <= n; id++)
		raft_conf_add(&c, id, RAFT_VOTER, NULL);
	return c;
}

/* Open the store and start core `id` from whatever it holds. */
static void start(raft_id id, const struct raft_conf *bootstrap)
{
	char err[512];
	CU_ASSERT_EQUAL_FATAL(storage_open(fx.dir, NULL, &fx.s, err, sizeof(err)), 0);
	struct node_loaded l;
	int rv = node_load(fx.s, &l, err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rv, 0);
	struct raft_initial_state st;
	node_initial_state(&l, bootstrap, &st);
	struct raft_config cfg;
	raft_config_default(&cfg, id);
	CU_ASSERT_EQUAL_FATAL(raft_new(&cfg, &st, &fx.r, err, sizeof(err)), 0);
	node_loaded_free(&l); /* the core took its own references */
	fx.applied = raft_snapshot_index(fx.r);
	fx.applied_in_order = true;
}

static void stop(void)
{
	raft_destroy(fx.r);
	fx.r = NULL;
	storage_close(fx.s);
	fx.s = NULL;
}

static void note_update(const struct raft_update *u)
{
	if (u->snapshot != NULL)
		fx.applied = u->snapshot->index;
	for (size_t i = 0; i < u->n_committed; i++) {
		const struct raft_entry *e = &u->committed[i];
		if (e->index != fx.applied + 1)
			fx.applied_in_order = false;
		fx.applied = e->index;
		fx.applied_cmds += e->type == RAFT_ENTRY_NORMAL;
	}
}

/* Step one event; batch its write (and those of the steps it triggers) without writing. */
static int step(const struct raft_event *ev)
{
	struct raft_update u;
	int rv = raft_step(fx.r, ev, &u);
	note_update(&u);
	CU_ASSERT_EQUAL(node_batch_add(&fx.b, &u), 0);
	return rv;
}

/* Group commit: write everything batched in one transaction, then tell the core. Repeat
 * while that produces more to write (a candidate's durable vote makes it leader, ...). */
static void flush(void)
{
	while (!node_batch_empty(&fx.b)) {
		uint64_t w = fx.b.write_id;
		CU_ASSERT_EQUAL_FATAL(node_batch_write(fx.s, &fx.b), 0);
		struct raft_event p = {.type = RAFT_EVENT_PERSISTED, .write_id = w};
		step(&p);
	}
}

static void propose(const char *fmt, int n)
{
	char buf[32];
	snprintf(buf, sizeof(buf), fmt, n);
	struct raft_buf *b = raft_buf_new(buf, strlen(buf));
	struct raft_event ev = {.type = RAFT_EVENT_PROPOSE, .propose = {.bufs = &b, .n = 1}};
	CU_ASSERT_EQUAL(step(&ev), 0);
}

static void test_single_node_restarts(void)
{
	struct raft_conf one = voters(1);
	start(1, &one);
	struct raft_event campaign = {.type = RAFT_EVENT_CAMPAIGN};
	step(&campaign);
	flush();
	CU_ASSERT_EQUAL_FATAL(raft_role(fx.r), RAFT_LEADER);
	raft_term term = raft_current_term(fx.r);

	/* 500 proposals, ten per group commit. */
	for (int i = 0; i < 500; i++) {
		propose("cmd-%d", i);
		if (i % 10 == 9)
			flush();
	}
	CU_ASSERT_EQUAL(fx.applied_cmds, 500);
	raft_index last = raft_last_index(fx.r);
	CU_ASSERT_EQUAL(fx.applied, last);

	/* Snapshot at 300: metadata from the core, data streamed into storage, log compacted. */
	struct raft_update u;
	struct raft_event snap = {.type = RAFT_EVENT_SNAPSHOT_TAKEN,
				  .snapshot_taken = {.index = 300, .trailing = 50}};
	CU_ASSERT_EQUAL(raft_step(fx.r, &snap, &u), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u.compacted);
	size_t conf_len;
	void *conf = node_snapshot_conf_encode(u.compacted, &conf_len);
	struct storage_snapshot_writer *w;
	CU_ASSERT_EQUAL_FATAL(storage_snapshot_begin(fx.s, u.compacted->index, u.compacted->term,
						     conf, conf_len, &w),
			      0);
	free(conf);
	CU_ASSERT_EQUAL(storage_snapshot_write(w, "state@300", 9), 0);
	CU_ASSERT_EQUAL(storage_snapshot_commit(w), 0);
	CU_ASSERT_EQUAL(storage_compact(fx.s, 300), 0);
	for (int i = 500; i < 600; i++)
		propose("cmd-%d", i);
	flush();
	last = raft_last_index(fx.r);
	raft_index commit = raft_commit_index(fx.r);
	stop();

	/* Restart from disk: same log, term and commit; applying resumes after the snapshot. */
	fx.applied_cmds = 0;
	start(1, &one);
	CU_ASSERT_EQUAL(raft_snapshot_index(fx.r), 300);
	CU_ASSERT_EQUAL(raft_first_index(fx.r), 301);
	CU_ASSERT_EQUAL(raft_last_index(fx.r), last);
	CU_ASSERT_EQUAL(raft_current_term(fx.r), term);
	CU_ASSERT_EQUAL(raft_commit_index(fx.r), commit);
	CU_ASSERT_EQUAL(raft_conf_current(fx.r)->n, 1);
	const struct raft_entry *e = raft_entry_at(fx.r, last);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_EQUAL(e->buf->len, strlen("cmd-599"));
	CU_ASSERT_EQUAL(memcmp(e->buf->data, "cmd-599", e->buf->len), 0);
	step(&campaign);
	flush();
	CU_ASSERT_EQUAL_FATAL(raft_role(fx.r), RAFT_LEADER);
	CU_ASSERT_EQUAL(raft_current_term(fx.r), term + 1);
	propose("after-%d", 0);
	flush();
	CU_ASSERT_EQUAL(fx.applied, raft_last_index(fx.r));
	/* Everything after the snapshot was handed out again, in order, once. */
	CU_ASSERT_TRUE(fx.applied_in_order);
	/* Index 1 is the bootstrap configuration and 2 the first no-op, so cmd-i sits at i + 3
	 * and the snapshot at 300 holds cmd-0..cmd-297: cmd-298..cmd-599 and after-0 remain. */
	CU_ASSERT_EQUAL(fx.applied_cmds, (600 - 298) + 1);
	stop();
}

static struct raft_message append_msg(raft_id from, raft_term term, raft_index prev,
				      raft_term prev_term, struct raft_entry *es, size_t n)
{
	return (struct raft_message){.type = RAFT_MSG_APPEND,
				     .from = from,
				     .to = 2,
				     .term = term,
				     .prev_index = prev,
				     .prev_term = prev_term,
				     .entries = es,
				     .n_entries = n};
}

static void test_follower_truncation_and_snapshot_install(void)
{
	struct raft_conf three = voters(3);
	start(2, &three);
	struct raft_event tick = {.type = RAFT_EVENT_TICK};
	step(&tick);
	flush(); /* the bootstrap entry */

	/* Leader 1 of term 2 sends entries 2..6; leader 3 of term 3 then overwrites 4..6 with two
	 * entries of its own. Both updates go to disk in ONE group commit. */
	struct raft_buf *pay = raft_buf_new("x", 1);
	struct raft_entry es[5];
	for (int i = 0; i < 5; i++)
		es[i] = (struct raft_entry){.term = 2, .index = 2 + i, .type = 1, .buf = pay};
	struct raft_message m1 = append_msg(1, 2, 1, 1, es, 5);
	struct raft_event ev = {.type = RAFT_EVENT_RECEIVE, .message = &m1};
	CU_ASSERT_EQUAL(step(&ev), 0);
	struct raft_entry es3[2] = {{.term = 3, .index = 4, .type = 1, .buf = pay},
				    {.term = 3, .index = 5, .type = 1, .buf = pay}};
	struct raft_message m2 = append_msg(3, 3, 3, 2, es3, 2);
	ev.message = &m2;
	CU_ASSERT_EQUAL(step(&ev), 0);
	CU_ASSERT_EQUAL(fx.b.sb.truncate_from, 4);
	CU_ASSERT_EQUAL(fx.b.sb.n_entries, 4); /* 2, 3 from the first; 4', 5' */
	flush();
	raft_buf_unref(pay);
	stop();

	start(2, &three);
	CU_ASSERT_EQUAL(raft_last_index(fx.r), 5);
	CU_ASSERT_EQUAL(raft_term_at(fx.r, 3), 2);
	CU_ASSERT_EQUAL(raft_term_at(fx.r, 4), 3);
	CU_ASSERT_EQUAL(raft_term_at(fx.r, 5), 3);
	CU_ASSERT_EQUAL(raft_current_term(fx.r), 3);

	/* A snapshot at 20 arrives: its data is stored by the receiving side first, then the
	 * core installs it and the batch clears the stored log. */
	struct raft_snapshot_meta meta = {.index = 20, .term = 3, .conf = three, .conf_index = 1};
	size_t conf_len;
	void *conf = node_snapshot_conf_encode(&meta, &conf_len);
	struct storage_snapshot_writer *w;
	CU_ASSERT_EQUAL_FATAL(storage_snapshot_begin(fx.s, 20, 3, conf, conf_len, &w), 0);
	free(conf);
	CU_ASSERT_EQUAL(storage_snapshot_commit(w), 0);
	struct raft_message sm = {
		.type = RAFT_MSG_SNAPSHOT, .from = 3, .to = 2, .term = 3, .snapshot = meta};
	ev.message = &sm;
	CU_ASSERT_EQUAL(step(&ev), 0);
	CU_ASSERT_TRUE(fx.b.sb.clear_log);
	flush();
	CU_ASSERT_EQUAL(fx.applied, 20);
	stop();

	start(2, &three);
	CU_ASSERT_EQUAL(raft_snapshot_index(fx.r), 20);
	CU_ASSERT_EQUAL(raft_last_index(fx.r), 20);
	CU_ASSERT_EQUAL(raft_commit_index(fx.r), 20);
	CU_ASSERT_EQUAL(raft_conf_current(fx.r)->n, 3);
	CU_ASSERT_EQUAL(raft_conf_index(fx.r), 1);
	stop();
}

static void test_batch_rejects_gaps(void)
{
	struct raft_buf *pay = raft_buf_new("y", 1);
	struct raft_entry a = {.term = 1, .index = 5, .type = 1, .buf = pay};
	struct raft_entry c = {.term = 1, .index = 7, .type = 1, .buf = pay};
	struct raft_update u1 = {.write_id = 1, .entries = &a, .n_entries = 1};
	struct raft_update u2 = {.write_id = 2, .entries = &c, .n_entries = 1};
	CU_ASSERT_EQUAL(node_batch_add(&fx.b, &u1), 0);
	CU_ASSERT_EQUAL(node_batch_add(&fx.b, &u2), STORAGE_EINVAL);
	raft_buf_unref(pay);
	node_batch_free(&fx.b);
	node_batch_init(&fx.b);
}

/* The storage writer hands batches over by value (a swap): the hard state must follow the
 * batch, not stay behind in the struct it was gathered in. */
static void test_batch_moved_keeps_hard_state(void)
{
	char err[512];
	CU_ASSERT_EQUAL_FATAL(storage_open(fx.dir, NULL, &fx.s, err, sizeof(err)), 0);
	struct raft_update u = {
		.write_id = 1, .hs_changed = true, .hs = {7, 3, 0}, .must_sync = true};
	CU_ASSERT_EQUAL(node_batch_add(&fx.b, &u), 0);
	struct node_batch moved = fx.b, fresh;
	node_batch_init(&fresh);
	fx.b = fresh;
	/* What the raft loop gathers next in the old struct must not leak into `moved`. */
	struct raft_update later = {.write_id = 2, .hs_changed = true, .hs = {9, 0, 0}};
	CU_ASSERT_EQUAL(node_batch_add(&fx.b, &later), 0);
	CU_ASSERT_EQUAL(node_batch_write(fx.s, &moved), 0);
	node_batch_free(&moved);
	node_batch_free(&fx.b);
	node_batch_init(&fx.b);
	storage_close(fx.s);
	CU_ASSERT_EQUAL_FATAL(storage_open(fx.dir, NULL, &fx.s, err, sizeof(err)), 0);
	struct node_loaded l;
	CU_ASSERT_EQUAL_FATAL(node_load(fx.s, &l, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(l.hs.term, 7);
	CU_ASSERT_EQUAL(l.hs.vote, 3);
	node_loaded_free(&l);
}

int main(void)
{
	CU_TestInfo tests[] = {
		{"single node: group commits, snapshot, compaction, restarts",
		 test_single_node_restarts},
		{"follower: truncation in one group commit, snapshot install",
		 test_follower_truncation_and_snapshot_install},
		{"batch refuses a gap between updates", test_batch_rejects_gaps},
		{"a batch moved by value keeps its hard state", test_batch_moved_keeps_hard_state},
		CU_TEST_INFO_NULL,
	};
	CU_SuiteInfo suites[] = {
		{"node_persist", NULL, NULL, setup, teardown, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
