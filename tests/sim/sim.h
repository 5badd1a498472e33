/* A deterministic cluster simulator for the Raft core: virtual time, a seeded network and
 * disks, crashes, and safety invariants checked after every step (like canonical/raft's
 * raft_fixture and etcd's `network`). */
#ifndef RAFTKV_TESTS_SIM_H
#define RAFTKV_TESTS_SIM_H

/*
 * How it works
 * ------------
 * Every node runs a real core (struct raft from server/raft/raft.h) and a simulated disk,
 * network endpoint and state machine. Nothing happens on its own: pending work (a node's
 * next tick, a message in flight, a disk write completing) is an event in one priority queue
 * ordered by (virtual time, sequence number). sim_step() takes the first event, feeds the
 * matching raft_event to the core, performs the update it returns (queues the write, puts the
 * messages on the network, applies committed entries) and checks the invariants below.
 *
 * All randomness (network delay, drops, duplicates, disk latency, each core's seed) comes from
 * common/prng.h seeded with the seed given to sim_new(): the same seed and the same test code
 * replay exactly the same run. A failing run prints its seed.
 *
 * Invariants checked after every raft_step of every node:
 *   1. election safety: at most one leader per term, over the whole run, and one tenure
 *      (a node that stops leading a term never leads it again);
 *   2. leader append-only: a leader never loses or rewrites entries of its log and never
 *      truncates while it stays leader in a term;
 *   3. log matching: two entries with the same (index, term), on any node at any time, have
 *      the same type, payload and previous term;
 *   4. leader completeness: a new leader's log holds every entry committed in an earlier
 *      term (up to the highest commit index ever seen on any node), with the committed term;
 *   5. state machine safety: every node applies the same entry at a given index, and has the
 *      same state machine digest after applying it;
 *   6. a node's commit index never decreases while it is up and never exceeds its last index;
 *   7. reads: a read point returned by ReadIndex is >= every commit index seen anywhere before
 *      the read was requested (linearizability);
 *   8. persist before promise (raft.h's contract): committed entries handed out, successful
 *      APPEND_RESP and granted VOTE_RESP are only ever released once the state they promise is
 *      durable in the node's simulated store, and a node acts as leader of a term only once
 *      its durable hard state holds that term and its vote for itself.
 * A violation prints the seed, the invariant and the last trace lines to stderr, sets the
 * failure flag (sim_failed()) and stops the simulation: sim_step() returns false from then on.
 *
 * Environment: RAFTKV_SIM_TRACE=1 prints every trace line as it happens.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/raft/raft.h"

#define SIM_MAX_NODES 15 /* node ids 1..SIM_MAX_NODES */

/* Node masks: bit `id` stands for node `id`. SIM_ALL (0) means every node that is up. */
#define SIM_NODE(id) (1u << (id))
#define SIM_ALL      0u

/* Extra error codes of the helpers below (the core's own codes are RAFT_*). */
#define SIM_EDOWN   1001 /* the node is crashed */
#define SIM_ENONODE 1002 /* no such node in the simulation */

struct sim_options {
	unsigned tick_ms;         /* virtual milliseconds per core tick. Default 10 */
	unsigned election_ticks;  /* the core's election timeout. Default 10 */
	unsigned heartbeat_ticks; /* the core's heartbeat interval. Default 1 */
	bool pre_vote;            /* Default true */
	bool check_quorum;        /* Default true */
	unsigned delay_min_ms; /* network delay of every link, uniform in [min, max]. Default 1 */
	unsigned delay_max_ms; /* Default 5 */
	unsigned disk_min_ms;  /* latency of one disk write, uniform in [min, max]. Default 1 */
	unsigned disk_max_ms;  /* Default 3 */
	/* Passed to the core; 0 keeps the core's default. */
	size_t max_append_bytes;
	unsigned max_inflight;
	unsigned max_entries_per_append;
};

/* Fill `o` with the defaults documented above. */
void sim_options_default(struct sim_options *o);

struct sim;

/* A cluster of `n_nodes` founding voters with ids 1..n, all bootstrapped with the same
 * configuration (voters 1..n, addresses "n1".."nN"). `opt` NULL = defaults. Never NULL. */
struct sim *sim_new(uint64_t seed, unsigned n_nodes, const struct sim_options *opt);
/* Release everything: cores, stores, events in flight. */
void sim_free(struct sim *s);

uint64_t sim_seed(const struct sim *s);
uint64_t sim_now(const struct sim *s); /* virtual ms */

/* Start node `id` with empty state and no bootstrap: it joins once a leader adds it with a
 * configuration change. 0, SIM_ENONODE (bad id) or RAFT_EEXIST (already there). */
int sim_add_node(struct sim *s, raft_id id);

/* ---- running ---------------------------------------------------------------------- */

/* Process exactly one event and check the invariants. False once an invariant failed (or
 * if nothing is pending). */
bool sim_step(struct sim *s);
/* Run every event due within the next `ms` virtual milliseconds. False on a violation. */
bool sim_run_for(struct sim *s, uint64_t ms);
typedef bool (*sim_pred)(struct sim *s, void *arg);
/* Step until `pred` holds (it is checked first, then after every step), for at most
 * `max_ms` virtual ms. False on timeout or violation. */
bool sim_run_until(struct sim *s, sim_pred pred, void *arg, uint64_t max_ms);

/* True once an invariant was violated; sim_failure() then describes it. */
bool sim_failed(const struct sim *s);
const char *sim_failure(const struct sim *s);

/* ---- inspecting ------------------------------------------------------------------- */

bool sim_exists(const struct sim *s, raft_id id);
bool sim_is_up(const struct sim *s, raft_id id);
/* The node's core, NULL if crashed or absent. Valid until the node crashes. */
struct raft *sim_core(struct sim *s, raft_id id);
/* The live node that is leader with the highest term; 0 if none. */
raft_id sim_leader(struct sim *s);
/* Run until sim_leader() is non-zero; returns it, or 0 after max_ms. */
raft_id sim_wait_leader(struct sim *s, uint64_t max_ms);
/* Highest index applied to the node's state machine, and its digest. */
raft_index sim_applied(const struct sim *s, raft_id id);
uint64_t sim_digest(const struct sim *s, raft_id id);
/* Mask of the nodes that exist and are up. */
uint32_t sim_up_mask(const struct sim *s);
/* Highest commit index ever seen on any node. */
raft_index sim_max_commit(const struct sim *s);
/* Term of the committed entry at `index` as recorded by the checker (0 if unknown). */
raft_term sim_committed_term(const struct sim *s, raft_index index);

/* Run until every node in `mask` (SIM_ALL: every live node) applied `index`. */
bool sim_wait_applied(struct sim *s, raft_index index, uint32_t mask, uint64_t max_ms);

/* ---- driving the cores ------------------------------------------------------------ */

/* Propose one command. Returns raft_step()'s code (or SIM_EDOWN / SIM_ENONODE); on success
 * *index (if not NULL) is the entry's index. Every accepted proposal is remembered for
 * sim_check_proposals(). */
int sim_propose(struct sim *s, raft_id node, const void *data, size_t len, raft_index *index);
/* Propose the NUL-terminated string `cmd`. */
int sim_propose_str(struct sim *s, raft_id node, const char *cmd, raft_index *index);
/* Ask for a read point; the answer shows up in sim_read(). Returns raft_step()'s code. */
int sim_read_index(struct sim *s, raft_id node, uint64_t ctx);
int sim_transfer(struct sim *s, raft_id node, raft_id target);
/* One membership change on `node` (the leader). *index (if not NULL) gets the CONF entry's
 * index. Addresses of added members are "n<id>". */
int sim_conf_change(struct sim *s, raft_id node, int op, raft_id id, raft_index *index);
/* Snapshot the node's state machine at its applied index and tell the core
 * (RAFT_EVENT_SNAPSHOT_TAKEN) to compact, keeping `trailing` entries. */
int sim_take_snapshot(struct sim *s, raft_id node, raft_index trailing);
int sim_campaign(struct sim *s, raft_id node);
/* Feed an arbitrary event to a node (tests of unusual inputs). */
int sim_step_event(struct sim *s, raft_id node, const struct raft_event *ev);

/* Reads requested with sim_read_index() and what became of them. */
enum sim_read_state {
	SIM_READ_PENDING = 1, /* accepted, no answer yet */
	SIM_READ_REFUSED,     /* raft_step() returned an error (`rv`) */
	SIM_READ_DONE,        /* a read state came out: `index` */
	SIM_READ_DROPPED,     /* came back in dropped_reads */
	SIM_READ_LOST,        /* the node crashed before answering */
};
struct sim_read {
	raft_id node;
	uint64_t ctx;
	int state; /* enum sim_read_state */
	int rv;
	raft_index min_index;   /* highest commit index anywhere when it was requested */
	raft_index index;       /* DONE: the read point */
	raft_index commit_then; /* DONE: the node's commit index when the answer came out */
	uint64_t requested_at, answered_at;
};
/* The newest read with this ctx, or NULL. Valid until the next sim_read_index(). */
const struct sim_read *sim_read(const struct sim *s, uint64_t ctx);

/* ---- faults ----------------------------------------------------------------------- */

/* Cut both directions between a and b (messages in flight on a cut link are dropped too). */
void sim_cut(struct sim *s, raft_id a, raft_id b);
void sim_cut_oneway(struct sim *s, raft_id from, raft_id to);
void sim_isolate(struct sim *s, raft_id node);
/* Cut every link between the nodes in `mask` and the others. */
void sim_partition(struct sim *s, uint32_t mask);
/* Reconnect every link / every link of one node. Delay and loss settings stay. */
void sim_heal(struct sim *s);
void sim_heal_node(struct sim *s, raft_id node);
bool sim_is_cut(const struct sim *s, raft_id from, raft_id to);

/* Per directed link: delay range, drop and duplicate probabilities (per million). */
void sim_link_set(struct sim *s, raft_id from, raft_id to, unsigned delay_min_ms,
		  unsigned delay_max_ms, uint32_t drop_ppm, uint32_t dup_ppm);
/* The same settings on every link (including links to nodes added later). */
void sim_net_set(struct sim *s, unsigned delay_min_ms, unsigned delay_max_ms, uint32_t drop_ppm,
		 uint32_t dup_ppm);
/* Back to the options' delay, no loss, no duplicates (cuts stay). */
void sim_net_reliable(struct sim *s);
/* Disk latency of one node's writes. */
void sim_disk_set(struct sim *s, raft_id node, unsigned min_ms, unsigned max_ms);

/* Crash: the core is destroyed; writes not yet durable and the state machine are lost. */
void sim_crash(struct sim *s, raft_id node);
/* Restart from the durable store (hard state, snapshot, entries). */
int sim_restart(struct sim *s, raft_id node);

/* A hook seeing every message: at send time (deliver = false, before any network fault)
 * and just before delivery (deliver = true). Returning true drops the message. The hook runs
 * while an update is being performed: it may inspect cores, trace, inject messages and change
 * links, but must not step a core (no sim_propose, sim_crash, ... from inside it). */
typedef bool (*sim_msg_hook)(struct sim *s, const struct raft_message *m, bool deliver, void *arg);
void sim_set_hook(struct sim *s, sim_msg_hook fn, void *arg);

/* Put a message of the test's own making on the network (a deep copy is taken), from
 * m->from to m->to, with the link's delay; cut links drop it. No hook sees it. Used by
 * hooks that rewrite a message instead of just dropping it. */
void sim_inject(struct sim *s, const struct raft_message *m);

/* ---- counters --------------------------------------------------------------------- */

/* Messages emitted by the cores, by type (sent, whether or not delivered). */
uint64_t sim_msgs_sent(const struct sim *s, int type);
uint64_t sim_msgs_total(const struct sim *s);
/* APPEND_RESP messages with reject set. */
uint64_t sim_append_rejects(const struct sim *s);
void sim_reset_counters(struct sim *s);
/* Snapshots the node installed from RAFT_MSG_SNAPSHOT since it was created. */
unsigned sim_snapshots_installed(const struct sim *s, raft_id id);
/* Distinct (term, leader) pairs seen over the run. */
uint64_t sim_leaders_elected(const struct sim *s);

/* The 6.5840 lab's cfg.one(): find a leader, propose `cmd`, and wait until at least
 * `expected` live nodes applied that very entry. Without `retry` one attempt is made (per
 * leader found); with it, attempts go on until max_ms. Returns the index, 0 on failure. */
raft_index sim_one(struct sim *s, const char *cmd, unsigned expected, bool retry, uint64_t max_ms);
/* Live nodes that applied the committed entry (index, term). */
unsigned sim_count_applied(struct sim *s, raft_index index, raft_term term);

/* Check every remembered proposal that was committed (it is in the global applied table with
 * the proposal's term and payload): each node in `mask` (SIM_ALL: every live node) applied
 * past it. Returns the number of committed proposals, or -1 (with a violation) if a live node
 * is missing one. */
long sim_check_proposals(struct sim *s, uint32_t mask);

/* ---- tracing ---------------------------------------------------------------------- */

/* Add a line to the trace (prefixed with the virtual time). */
void sim_trace(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the last `n` trace lines to stderr. */
void sim_dump_trace(const struct sim *s, unsigned n);
/* Record an assertion failure of a test as a violation (prints the seed and trace). */
void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether a violation prints its description and the trace to stderr (default on). */
void sim_set_verbose(struct sim *s, bool on);

/* A PRNG for the test's own choices, seeded from the sim seed but independent of the
 * network's: uniform in [0, n). */
uint64_t sim_rand(struct sim *s, uint64_t n);

#endif
