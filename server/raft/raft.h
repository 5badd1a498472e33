/* The Raft consensus core: a pure, deterministic state machine driven by events. */
#ifndef RAFTKV_RAFT_H
#define RAFTKV_RAFT_H

/*
 * How to drive it
 * ---------------
 * The core does no I/O, reads no clock, starts no thread and draws randomness only from a
 * PRNG seeded through its configuration. Everything happens through one call:
 *
 *     struct raft_update u;
 *     rv = raft_step(r, &event, &u);
 *
 * One event goes in (a tick, a received message, a proposal, a read request, a completed
 * disk write, ...). On return `u` lists all I/O the caller must now perform:
 *
 *   1. Persist, in this order: `u.snapshot` (if set), the truncation `u.truncate_from`,
 *      the entries `u.entries`, and the hard state `u.hs` (if `u.hs_changed`). These form
 *      one write, numbered `u.write_id` (0 when there is nothing to persist). Writes must
 *      become durable in write_id order; when write N (and so every earlier one) is
 *      durable, feed RAFT_EVENT_PERSISTED with write_id N. Reporting only the newest of
 *      several completed writes is fine (group commit). `u.must_sync` says whether the
 *      write needs an fsync (a commit-index-only change does not). A snapshot in the
 *      update replaces the whole persisted log: delete every stored entry, then store it.
 *   2. Send `u.messages`. They may be sent before the write completes: the core holds back
 *      every message that promises durability (vote grants, append acknowledgements) until
 *      the PERSISTED event that covers it, and releases it in a later update (thesis §3.8,
 *      as etcd's msgsAfterAppend).
 *   3. Install `u.snapshot` into the state machine (if set), then apply `u.committed` in order.
 *      Committed entries are only ever entries that are also durable locally.
 *   4. Serve the reads in `u.reads` once the state machine has applied up to their index.
 *
 * Everything `u` points to belongs to the core and stays valid until the next call of
 * raft_step() or raft_destroy() on the same core. Entry payloads are reference-counted
 * (struct raft_buf): a caller that keeps one longer takes a reference with raft_buf_ref().
 *
 * Out of memory is fatal, as in redis: the allocator hook (raft_set_allocator) may
 * report, but the core does not attempt to continue with a half-applied transition.
 *
 * A stale leader learns of a newer term only from a message that carries it. With
 * pre_vote or check_quorum on, a node answers a stale leader's AppendEntries/heartbeat
 * with its term so the old leader steps down; with both off (plain Raft) such messages are
 * ignored, as in etcd, and the old leader steps down when it next hears a vote request.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id;    /* node id; 0 means "none" */
typedef uint64_t raft_term;  /* election term; 0 only before the first election */
typedef uint64_t raft_index; /* log position; the first entry has index 1, 0 means "none" */

/* Error codes returned by raft_step() and friends. 0 is success. */
#define RAFT_ERR_MAP(X)                                                                     \
	X(RAFT_ENOTLEADER, "not the leader")                                                \
	X(RAFT_EBUSY, "busy: a leadership transfer or configuration change is in progress") \
	X(RAFT_EINVAL, "invalid argument")                                                  \
	X(RAFT_ENOTCAUGHTUP, "the learner has not caught up with the leader")               \
	X(RAFT_ENOTMEMBER, "no such member")                                                \
	X(RAFT_EEXIST, "the member already exists")                                         \
	X(RAFT_ETOOBIG, "the configuration would exceed RAFT_MAX_MEMBERS")                  \
	X(RAFT_ECORRUPT, "persisted state is inconsistent")
enum {
	RAFT_OK = 0,
#define RAFT_ERR_ENUM(name, msg) name,
	RAFT_ERR_MAP(RAFT_ERR_ENUM)
#undef RAFT_ERR_ENUM
};

/* Human-readable text for an error code. Never NULL. */
const char *raft_strerror(int rv);

/* ---------------------------------------------------------------------------------------
 * Payload buffers and entries
 * ------------------------------------------------------------------------------------- */

/* A reference-counted, immutable byte buffer shared by the log, in-flight messages and
 * the caller. The count is atomic so another thread (a storage writer) may drop its
 * reference; the data is never modified after creation. */
struct raft_buf {
	unsigned long refs; /* managed by raft_buf_ref / raft_buf_unref only */
	size_t len;
	unsigned char data[];
};

/* Allocate a buffer of `len` bytes holding one reference owned by the caller. `data` may be
 * NULL (the bytes are then zeroed for the caller to fill before handing it to the core). */
struct raft_buf *raft_buf_new(const void *data, size_t len);
struct raft_buf *raft_buf_ref(struct raft_buf *b); /* returns b; NULL-safe */
void raft_buf_unref(struct raft_buf *b);           /* frees at zero; NULL-safe */

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* an application command */
	RAFT_ENTRY_NOOP = 2,   /* appended by every new leader (thesis §6.4) */
	RAFT_ENTRY_CONF = 3,   /* a full membership configuration, encoded by raft_conf_encode */
};

struct raft_entry {
	raft_term term;
	raft_index index;
	uint8_t type;         /* enum raft_entry_type */
	struct raft_buf *buf; /* payload; NULL for an empty payload. Not owned by this struct. */
};

/* ---------------------------------------------------------------------------------------
 * Membership
 * ------------------------------------------------------------------------------------- */

#define RAFT_MAX_MEMBERS 16  /* members (voters + learners) in one configuration */
#define RAFT_ADDR_MAX    128 /* bytes of the opaque address carried per member, incl. NUL */

enum raft_role_in_conf {
	RAFT_VOTER = 1,
	RAFT_LEARNER = 2, /* receives the log, never votes, never counts toward a quorum */
};

struct raft_member {
	raft_id id;
	uint8_t role;             /* enum raft_role_in_conf */
	char addr[RAFT_ADDR_MAX]; /* opaque to the core, NUL-terminated; the node layer's */
};

/* A configuration. Invariant: ids are unique and non-zero; n <= RAFT_MAX_MEMBERS. */
struct raft_conf {
	unsigned n;
	struct raft_member members[RAFT_MAX_MEMBERS];
};

/* The member with this id, or NULL. */
const struct raft_member *raft_conf_get(const struct raft_conf *c, raft_id id);
unsigned raft_conf_voters(const struct raft_conf *c);
/* Add a member; RAFT_EEXIST, RAFT_ETOOBIG or RAFT_EINVAL on failure. */
int raft_conf_add(struct raft_conf *c, raft_id id, int role, const char *addr);

/* Encoding used for RAFT_ENTRY_CONF payloads and snapshot metadata. Stable across versions
 * (leading format byte). raft_conf_encode returns a new buffer (one reference, caller's). */
struct raft_buf *raft_conf_encode(const struct raft_conf *c);
/* Decode; RAFT_ECORRUPT on any malformed input (it may come from the network). */
int raft_conf_decode(const void *data, size_t len, struct raft_conf *out);

/* ---------------------------------------------------------------------------------------
 * Persistent state
 * ------------------------------------------------------------------------------------- */

/* Must be durable before the messages that depend on it are sent (term and vote). */
struct raft_hard_state {
	raft_term term;
	raft_id vote;      /* candidate voted for in `term`, 0 if none */
	raft_index commit; /* advisory: persisted lazily (no sync needed), never decreases */
};

/* What a snapshot covers. The snapshot's data is the caller's; the core only needs this. */
struct raft_snapshot_meta {
	raft_index index;      /* last entry the snapshot includes; 0 = no snapshot */
	raft_term term;        /* term of that entry */
	struct raft_conf conf; /* configuration as of `index` */
	raft_index conf_index; /* index of the entry that carried `conf` */
};

/* ---------------------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------------------- */

enum raft_msg_type {
	RAFT_MSG_APPEND = 1,  /* AppendEntries */
	RAFT_MSG_APPEND_RESP, /* its answer; released only after the entries are durable */
	RAFT_MSG_VOTE,        /* RequestVote */
	RAFT_MSG_VOTE_RESP,   /* a grant is released only after the vote is durable */
	RAFT_MSG_PREVOTE, /* "would you vote for me at term+1?" (thesis §9.6); changes no state */
	RAFT_MSG_PREVOTE_RESP,
	RAFT_MSG_HEARTBEAT,      /* leadership assertion; carries commit and a read round */
	RAFT_MSG_HEARTBEAT_RESP, /* echoes the read round: confirms leadership for ReadIndex */
	RAFT_MSG_SNAPSHOT,    /* InstallSnapshot: metadata here, data attached by the transport */
	RAFT_MSG_TIMEOUT_NOW, /* leadership transfer: start an election at once (thesis §3.10) */
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_TIMEOUT_NOW

/* One message. Only the fields listed for its type are meaningful; the rest are zero. */
struct raft_message {
	uint8_t type; /* enum raft_msg_type */
	raft_id from;
	raft_id to;
	raft_term term; /* sender's term (for PREVOTE: the term it would campaign at) */

	/* APPEND: entries follow prev_index/prev_term. commit = leader's commit. */
	raft_index prev_index;
	raft_term prev_term;
	raft_index commit; /* APPEND, HEARTBEAT */
	struct raft_entry *entries;
	size_t n_entries;

	/* APPEND_RESP: on success `index` is the highest index known to match the leader.
	 * On reject `index` is the rejected prev_index and (hint_index, hint_term) point at the
	 * follower's last entry that could still match: the conflict-term fast backtracking of
	 * thesis §5.3 in etcd's form. */
	bool reject;
	raft_index index;
	raft_index hint_index;
	raft_term hint_term;

	/* VOTE, PREVOTE: the candidate's last log position. `transfer` marks an election
	 * started by TIMEOUT_NOW, which voters grant even while they still hear a leader. */
	raft_index last_index;
	raft_term last_term;
	bool transfer;
	/* VOTE_RESP, PREVOTE_RESP: `reject`. */

	/* HEARTBEAT, HEARTBEAT_RESP: read round being confirmed (0 = none). */
	uint64_t round;

	/* SNAPSHOT: what the attached data covers. */
	struct raft_snapshot_meta snapshot;
};

/* Deep-copy a message: the entries array is duplicated and each payload gets a new
 * reference. Release the copy with raft_message_release(). */
void raft_message_copy(struct raft_message *dst, const struct raft_message *src);
void raft_message_release(struct raft_message *m);

/* ---------------------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------------------- */

enum raft_event_type {
	RAFT_EVENT_TICK = 1,        /* one unit of logical time passed */
	RAFT_EVENT_RECEIVE,         /* a message arrived */
	RAFT_EVENT_PROPOSE,         /* append application commands (leader only) */
	RAFT_EVENT_READ_INDEX,      /* ask for a linearizable read point (leader only) */
	RAFT_EVENT_PERSISTED,       /* writes up to write_id are durable */
	RAFT_EVENT_SNAPSHOT_TAKEN,  /* the caller holds a snapshot up to index: compact the log */
	RAFT_EVENT_SNAPSHOT_FAILED, /* sending a snapshot to `peer` failed: retry later */
	RAFT_EVENT_TRANSFER,        /* hand leadership to `peer` (0 = the most caught-up voter) */
	RAFT_EVENT_CONF_CHANGE,     /* change membership by one server (leader only) */
	RAFT_EVENT_CAMPAIGN,        /* start an election now (tests, single-node bootstrap) */
};

enum raft_conf_op {
	RAFT_CONF_ADD_LEARNER = 1, /* add a non-voting member */
	RAFT_CONF_ADD_VOTER,       /* add a voter directly (prefer learner + promote) */
	RAFT_CONF_PROMOTE,         /* learner -> voter; refused until it has caught up */
	RAFT_CONF_REMOVE,          /* remove a member (may be the leader itself) */
};

struct raft_event {
	uint8_t type; /* enum raft_event_type */
	union {
		/* RECEIVE: the core copies what it keeps; the message stays the caller's. */
		const struct raft_message *message;
		/* PROPOSE: `n` payloads; on success the core takes over one reference of each,
		 * on failure they remain the caller's. */
		struct {
			struct raft_buf *const *bufs;
			size_t n;
		} propose;
		/* READ_INDEX: an opaque id returned with the read state. */
		uint64_t read_ctx;
		/* PERSISTED */
		uint64_t write_id;
		/* SNAPSHOT_TAKEN: the caller's state machine snapshot covers up to `index`
		 * (<= the last committed entry handed out). The core drops log entries up to
		 * index - trailing, keeping `trailing` so slightly lagging followers still get
		 * entries instead of a snapshot. */
		struct {
			raft_index index;
			raft_index trailing;
		} snapshot_taken;
		/* SNAPSHOT_FAILED, TRANSFER */
		raft_id peer;
		/* CONF_CHANGE */
		struct {
			uint8_t op; /* enum raft_conf_op */
			raft_id id;
			const char *addr; /* ADD_*: the member's address (may be NULL) */
		} conf;
	};
};

/* ---------------------------------------------------------------------------------------
 * The update: everything the caller must do after one step
 * ------------------------------------------------------------------------------------- */

enum raft_role {
	RAFT_FOLLOWER = 1,
	RAFT_PRECANDIDATE,
	RAFT_CANDIDATE,
	RAFT_LEADER,
};

/* A linearizable read point: serve read `ctx` once the state machine applied `index`. */
struct raft_read_state {
	uint64_t ctx;
	raft_index index;
};

struct raft_update {
	/* --- to persist, as one write (see the top of this file) --- */
	uint64_t write_id; /* 0: nothing to persist */
	bool must_sync;
	/* Install + persist this snapshot first; it replaces the whole persisted log. */
	const struct raft_snapshot_meta *snapshot;
	raft_index truncate_from; /* delete persisted entries >= this (0 = none) */
	const struct raft_entry *entries;
	size_t n_entries;
	bool hs_changed;
	struct raft_hard_state hs;

	/* --- to send --- */
	const struct raft_message *messages;
	size_t n_messages;

	/* --- to apply, after installing `snapshot` --- */
	const struct raft_entry *committed;
	size_t n_committed;

	/* --- reads that became safe --- */
	const struct raft_read_state *reads;
	size_t n_reads;
	/* Reads refused because this node lost leadership before confirming them: the caller
	 * answers them with "not leader" so the client can retry elsewhere. */
	const uint64_t *dropped_reads;
	size_t n_dropped_reads;

	/* --- results of the event, and informational state --- */
	raft_index proposed_index; /* PROPOSE / CONF_CHANGE: index of the first new entry */
	raft_term proposed_term;
	/* SNAPSHOT_TAKEN: the metadata to store next to the snapshot data. */
	const struct raft_snapshot_meta *compacted;
	bool role_changed; /* role or leader changed in this step */
	uint8_t role;
	raft_id leader;
	raft_term term;
};

/* ---------------------------------------------------------------------------------------
 * Creating, loading, inspecting
 * ------------------------------------------------------------------------------------- */

struct raft_config {
	raft_id id;               /* this node; non-zero */
	uint64_t seed;            /* seeds the election-timeout PRNG */
	unsigned election_ticks;  /* election timeout; randomized in [e, 2e). Default 10 */
	unsigned heartbeat_ticks; /* leader heartbeat interval; < election_ticks. Default 1 */
	bool pre_vote;            /* run a pre-vote before every election. Default on */
	bool check_quorum;        /* leader steps down without a quorum; voters keep a lease */
	size_t max_append_bytes;  /* payload bytes per AppendEntries. Default 1 MiB */
	unsigned max_inflight;    /* AppendEntries in flight per follower. Default 64 */
	unsigned max_entries_per_append; /* Default 1024 */
};

/* Fill `c` with the defaults documented above for node `id`. */
void raft_config_default(struct raft_config *c, raft_id id);

/* Durable state read back at start (from storage); all fields may be empty. */
struct raft_initial_state {
	struct raft_hard_state hs;
	const struct raft_snapshot_meta *snapshot; /* NULL: none */
	const struct raft_entry *entries; /* the log after the snapshot, contiguous; the core
					   * takes its own references to the payloads */
	size_t n_entries;
	/* Bootstrap: when the state is completely empty and this is non-NULL, the core creates
	 * the first log entry (index 1, term 1) holding this configuration. Every founding
	 * member must be given the same configuration, so their first entries are identical. */
	const struct raft_conf *bootstrap;
};

struct raft;

/* Create a core from durable state. On success *out is set; RAFT_EINVAL / RAFT_ECORRUPT
 * say what is wrong with the configuration or the state (the message in `errmsg`, which
 * may be NULL). The first raft_step() call, whatever its event (a TICK will do), returns
 * the bootstrap entry to persist. */
int raft_new(const struct raft_config *cfg, const struct raft_initial_state *st, struct raft **out,
	     char *errmsg, size_t errmsg_len);
void raft_destroy(struct raft *r);

/* Feed one event; see the top of this file. The previous update is invalidated.
 * Returns 0 or an error code that concerns the event only: the update is still filled and
 * must still be performed. By event:
 *   RECEIVE        RAFT_EINVAL for a malformed message (nothing changed)
 *   PROPOSE        RAFT_ENOTLEADER; RAFT_EBUSY during a leadership transfer; RAFT_EINVAL
 *   READ_INDEX     RAFT_ENOTLEADER. A new leader accepts reads before its no-op commits and
 *                  answers them once it has (reads are never answered from a stale commit)
 *   PERSISTED      RAFT_EINVAL for a write_id never handed out
 *   SNAPSHOT_TAKEN RAFT_EINVAL when index is beyond what was handed out to apply
 *   TRANSFER       RAFT_ENOTLEADER; RAFT_ENOTMEMBER if the target is not a voter; 0 when
 *                  the target is this node (nothing to do) or already the transferee
 *   CONF_CHANGE    RAFT_ENOTLEADER; RAFT_EBUSY while a change is uncommitted, a transfer is
 *                  on, or no entry of this term is committed yet; RAFT_EEXIST,
 *                  RAFT_ENOTMEMBER, RAFT_ETOOBIG, RAFT_ENOTCAUGHTUP (promote), RAFT_EINVAL
 *   CAMPAIGN       RAFT_ENOTMEMBER if this node is not a voter */
int raft_step(struct raft *r, const struct raft_event *ev, struct raft_update *out);

/* Read-only inspection, for the node's status API and for tests. */
raft_id raft_id_of(const struct raft *r);
int raft_role(const struct raft *r);
raft_term raft_current_term(const struct raft *r);
raft_id raft_leader(const struct raft *r);
raft_id raft_voted_for(const struct raft *r);
raft_index raft_commit_index(const struct raft *r);
raft_index raft_applied_index(const struct raft *r); /* last committed entry handed out */
raft_index raft_last_index(const struct raft *r);
raft_index raft_first_index(const struct raft *r); /* first entry still in memory */
raft_index raft_snapshot_index(const struct raft *r);
/* Term of the entry at `index`; 0 if unknown (compacted before the snapshot, or absent). */
raft_term raft_term_at(const struct raft *r, raft_index index);
/* The entry at `index` if it is in memory, else NULL. Valid until the next step. */
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index);
const struct raft_conf *raft_conf_current(const struct raft *r); /* latest in the log */
raft_index raft_conf_index(const struct raft *r);
raft_id raft_transferee(const struct raft *r); /* 0 unless a transfer is in progress */

/* Progress of a peer as the leader sees it; false if not leader or unknown peer. */
enum raft_progress_state { RAFT_PROBE = 1, RAFT_REPLICATE, RAFT_SNAPSHOT };
struct raft_progress_info {
	raft_index match;
	raft_index next;
	uint8_t state; /* enum raft_progress_state */
	bool recent_active;
};
bool raft_progress(const struct raft *r, raft_id peer, struct raft_progress_info *out);

const char *raft_role_name(int role);
const char *raft_msg_type_name(int type);

/* Memory: every allocation of the core goes through these hooks (default: libc). */
struct raft_allocator {
	void *(*malloc_fn)(size_t size);
	void *(*realloc_fn)(void *ptr, size_t size);
	void (*free_fn)(void *ptr);
};
/* Install before creating any core; NULL restores libc. Not thread-safe. */
void raft_set_allocator(const struct raft_allocator *a);

#endif
