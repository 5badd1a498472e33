/* The core's private state and the functions its modules share (not for use outside raft/). */
#ifndef RAFTKV_RAFT_IMPL_H
#define RAFTKV_RAFT_IMPL_H

#include "common/prng.h"
#include "conf.h"
#include "log.h"
#include "progress.h"
#include "server/raft/raft.h"

/* A growable array of entries whose payload references it owns. */
struct entvec {
	struct raft_entry *e;
	size_t n, cap;
};

/* A message held back until the write it depends on is durable. */
struct held_msg {
	uint64_t write_id;
	struct raft_message m;
};

/* A disk write handed out and not yet reported persisted. */
struct pending_write {
	uint64_t write_id;
	raft_index last_index; /* the log ends here once the write is durable */
};

/* A ReadIndex request waiting for its confirmation round (thesis §6.4). */
struct pending_read {
	uint64_t ctx;
	raft_index index; /* commit index when accepted; 0 while no own-term entry is committed */
	uint64_t round;   /* round that confirms it; 0 while not yet assigned */
};

struct raft {
	struct raft_config cfg;
	raft_id id;
	struct prng prng;

	/* Persistent state (as last handed out for writing). */
	raft_term term;
	raft_id vote;
	struct raft_log log;

	/* Volatile state. Invariant: snap.index <= applied <= commit <= last index. */
	raft_index commit;
	raft_index applied; /* last committed entry handed out to the caller */
	raft_index stable;  /* the log prefix known durable. Invariant: stable <= last index */
	struct raft_snapshot_meta snap; /* the caller's newest snapshot (index 0: none) */

	/* Membership: the newest configuration in the log, in force from the moment it is
	 * appended (thesis §4.1), committed or not. */
	struct raft_conf conf;
	raft_index conf_index;

	uint8_t role;
	raft_id leader;
	unsigned election_elapsed; /* ticks since we last heard from a leader / since a round */
	unsigned heartbeat_elapsed;
	unsigned randomized_timeout; /* in [election_ticks, 2 * election_ticks) */

	/* Candidate / pre-candidate: answers received, by voter. */
	raft_id granted[RAFT_MAX_MEMBERS];
	unsigned n_granted;
	raft_id rejected[RAFT_MAX_MEMBERS];
	unsigned n_rejected;

	/* Leader. */
	struct raft_progress prs[RAFT_MAX_MEMBERS]; /* every member but ourselves */
	unsigned n_prs;
	raft_index term_start; /* index of this term's no-op: reads wait until it commits */
	raft_id transferee;    /* leadership transfer in progress to this voter */
	unsigned transfer_elapsed;

	/* Durability bookkeeping. */
	uint64_t last_write_id;      /* last write handed out */
	uint64_t persisted_write_id; /* every write up to here is durable */
	struct pending_write *pw;
	size_t n_pw, cap_pw;
	struct held_msg *held;
	size_t n_held, cap_held;

	/* ReadIndex. */
	struct pending_read *reads;
	size_t n_reads, cap_reads;
	uint64_t round_started;   /* newest confirmation round broadcast */
	uint64_t round_confirmed; /* newest round a quorum acknowledged */

	/* The update being assembled during a step, and the storage behind the last one. */
	struct raft_update *out;
	raft_index u_truncate;             /* 0 = none */
	struct entvec u_entries;           /* entries appended this step (persist) */
	struct entvec w_entries;           /* the last update's entries, kept until the next step */
	bool u_snapshot;                   /* snap must be installed and persisted */
	struct raft_hard_state hs_written; /* hard state as last handed out */
	struct raft_message *msgs;
	size_t n_msgs, cap_msgs;
	struct entvec committed;
	struct raft_read_state *ready_reads;
	size_t n_ready_reads, cap_ready_reads;
	uint64_t *dropped;
	size_t n_dropped, cap_dropped;
	struct raft_snapshot_meta compacted;
	bool role_changed;
};

/* entvec */
void entvec_push(struct entvec *v, const struct raft_entry *e); /* takes a payload ref */
void entvec_clear(struct entvec *v);
void entvec_free(struct entvec *v);

/* raft.c: shared helpers */
/* The value a majority of voters has reached (self counts with `self_value` if a voter). */
uint64_t raft_quorum_value(const struct raft *r, uint64_t self_value,
			   uint64_t (*get)(const struct raft_progress *p));
struct raft_progress *raft_progress_of(struct raft *r, raft_id id);
unsigned raft_quorum(const struct raft *r);
bool raft_promotable(const struct raft *r);
/* Queue a message to send now. Returns it for the caller to fill further. */
struct raft_message *raft_send(struct raft *r, uint8_t type, raft_id to);
/* Queue a message that promises durability: it is released once everything handed out for
 * writing so far (including this step's write) is persisted. */
void raft_send_after_persist(struct raft *r, const struct raft_message *m);
void raft_append_local(struct raft *r, uint8_t type, struct raft_buf *buf); /* at our term */
void raft_append_remote(struct raft *r, const struct raft_entry *e);        /* at e->term */
void raft_truncate_local(struct raft *r, raft_index from);
void raft_commit_to(struct raft *r, raft_index index);

/* election.c */
void raft_become_follower(struct raft *r, raft_term term, raft_id leader);
void raft_become_leader(struct raft *r);
void raft_campaign(struct raft *r, bool pre_vote, bool transfer);
void raft_reset_election_timer(struct raft *r);
void raft_recv_vote(struct raft *r, const struct raft_message *m);
void raft_recv_vote_resp(struct raft *r, const struct raft_message *m);
void raft_recv_timeout_now(struct raft *r, const struct raft_message *m);
void raft_tick_election(struct raft *r);

/* replication.c */
void raft_send_append(struct raft *r, struct raft_progress *p);
void raft_bcast_append(struct raft *r);
void raft_bcast_heartbeat(struct raft *r);
void raft_recv_append(struct raft *r, const struct raft_message *m);
void raft_recv_append_resp(struct raft *r, const struct raft_message *m);
void raft_recv_heartbeat(struct raft *r, const struct raft_message *m);
void raft_recv_heartbeat_resp(struct raft *r, const struct raft_message *m);
void raft_recv_snapshot(struct raft *r, const struct raft_message *m);
bool raft_maybe_commit(struct raft *r);
void raft_tick_leader(struct raft *r);
int raft_propose(struct raft *r, struct raft_buf *const *bufs, size_t n);

/* read.c */
int raft_read_index(struct raft *r, uint64_t ctx);
void raft_reads_on_commit(struct raft *r);
void raft_reads_on_ack(struct raft *r);
void raft_reads_drop_all(struct raft *r);
void raft_reads_heartbeat(struct raft *r); /* at heartbeat time: start a round if needed */

/* membership.c */
int raft_conf_change(struct raft *r, uint8_t op, raft_id id, const char *addr);
void raft_conf_apply(struct raft *r, const struct raft_conf *c, raft_index index);
void raft_conf_rollback(struct raft *r);
void raft_conf_at(const struct raft *r, raft_index index, struct raft_conf *out,
		  raft_index *out_index);
void raft_progress_rebuild(struct raft *r);
void raft_conf_on_commit(struct raft *r);
int raft_transfer(struct raft *r, raft_id target);

#endif
