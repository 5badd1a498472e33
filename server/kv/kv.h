/* The replicated key-value state machine: ordered map, etcd-style revisions, exactly-once
 * sessions, and streamed snapshots. Pure and deterministic: links common/ only. */
#ifndef RAFTKV_SERVER_KV_KV_H
#define RAFTKV_SERVER_KV_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Overview
 * --------
 * The raft loop applies every committed normal entry to the store with kv_apply(), in log
 * order; entries that carry no kv command (leader no-ops, configuration changes) go through
 * kv_advance() so the store's applied index and session expiry stay a function of the log.
 * Reads (kv_get, kv_range) run on the current state and change nothing.
 *
 * Determinism: the state after applying the same entries at the same indexes, with the same
 * kv_options, is identical on every node, down to the bytes of kv_snapshot_write(). So the
 * options MUST be equal on every node of a cluster (they decide whether a command is
 * refused), and may only grow across upgrades (a snapshot is validated against them).
 *
 * Memory: running out of memory while applying a committed entry would make this replica
 * diverge, so kv_apply/kv_advance PANIC (common/check.h) instead of returning. Reads, the
 * codecs and snapshot restore return KV_ENOMEM.
 *
 * Threads: none inside. A store is owned by one thread (the raft loop); calls on one store
 * must not overlap. Different stores are independent.
 */

/* Error codes. Fallible functions return 0 or one of these (all negative). The comment says
 * which gRPC status the node should answer with. */
#define KV_ERR_MAP(X)                                                                              \
	X(KV_ENOMEM, -1, "out of memory")                          /* RESOURCE_EXHAUSTED */        \
	X(KV_EMALFORMED, -2, "malformed encoding")                 /* INTERNAL (bad log entry) */  \
	X(KV_EEMPTYKEY, -3, "empty key")                           /* INVALID_ARGUMENT */          \
	X(KV_EKEYSIZE, -4, "key too large")                        /* INVALID_ARGUMENT */          \
	X(KV_EVALUESIZE, -5, "value too large")                    /* RESOURCE_EXHAUSTED */        \
	X(KV_ETOOMANYOPS, -6, "too many operations in txn")        /* INVALID_ARGUMENT */          \
	X(KV_ELIMIT, -7, "range limit too large")                  /* INVALID_ARGUMENT */          \
	X(KV_EINVAL, -8, "invalid argument")                       /* INVALID_ARGUMENT */          \
	X(KV_ESTALE, -9, "stale sequence number")                  /* FAILED_PRECONDITION */       \
	X(KV_EINDEX, -10, "log index not after applied index")     /* node bug: INTERNAL */        \
	X(KV_ECORRUPT, -11, "invalid snapshot")                    /* INTERNAL / DATA_LOSS */      \
	X(KV_EIO, -12, "snapshot reader or writer failed")         /* whatever the callback saw */ \
	X(KV_ESESSION, -13, "write id session unknown or expired") /* FAILED_PRECONDITION */

enum {
#define KV_ERR_ENUM(name, value, text) name = value,
	KV_ERR_MAP(KV_ERR_ENUM)
#undef KV_ERR_ENUM
};

/* The lowest code above: decoders refuse statuses below it. Keep it the map's last entry. */
#define KV_ERR_MIN KV_ESESSION

/* A static, human-readable text for a code (0 gives "ok", unknown codes "unknown error"). */
const char *kv_strerror(int code);

/* ---- options ------------------------------------------------------------------------- */

struct kv_options {
	uint32_t max_key_bytes;   /* default 4096; keys are 1..max_key_bytes bytes */
	uint32_t max_value_bytes; /* default 1 MiB (1048576); also bounds Append's result */
	uint32_t max_txn_ops;     /* default 128; bounds compares, success ops and failure
				       * ops, each list separately (like etcd's --max-txn-ops) */
	uint64_t max_range_limit; /* default 10000; a range's limit must be <= this; a limit
				       * of 0 means "this many" (responses are always bounded) */
	uint64_t session_ttl_ms;  /* default 600000 (10 minutes of leader time); see
				       * "Sessions" below */
	uint64_t max_sessions;    /* default 100000; >= 1 */
};

/* Fill *o with the defaults documented above. */
void kv_options_default(struct kv_options *o);

/* ---- commands (log-entry payloads) --------------------------------------------------- */

enum kv_op_type {
	KV_OP_PUT = 1,    /* key := value */
	KV_OP_DELETE = 2, /* delete key, or every key in [key, range_end) */
	KV_OP_APPEND = 3, /* key := old value (empty if absent) || value */
	KV_OP_GET = 4,    /* range read; only inside a txn (as a command) or for kv_range */
	KV_OP_TXN = 5,    /* compares, then success or failure ops (command type only) */
};

/* Borrowed bytes: never owned by the struct that holds them. */
struct kv_bytes {
	const unsigned char *p; /* may be NULL when len == 0 */
	size_t len;
};

/*
 * Ranges follow etcd: range_end empty = the single key `key`; range_end = "\0" (one zero
 * byte) = every key >= key; otherwise [key, range_end) (empty when range_end <= key). The
 * prefix "p" is key "p", range_end = p with its last byte + 1 (kv_prefix_end computes it).
 * key and range_end may be max_key_bytes + 1 long, so a paging key (see kv_range_result)
 * always fits.
 */
struct kv_op {
	enum kv_op_type type; /* PUT, DELETE, APPEND or GET */
	struct kv_bytes key;
	struct kv_bytes value;     /* PUT: the value; APPEND: the suffix */
	struct kv_bytes range_end; /* DELETE, GET */
	uint64_t limit;            /* GET: at most this many keys; 0 = max_range_limit */
	bool keys_only;            /* GET: return keys and metadata, no values */
	bool count_only;           /* GET: return only the count */
};

enum kv_cmp_target {
	KV_CMP_VALUE = 1,   /* compare bytes lexicographically with `value` */
	KV_CMP_VERSION = 2, /* compare `number` with the key's version */
	KV_CMP_CREATE = 3,  /* ... with create_revision */
	KV_CMP_MOD = 4,     /* ... with mod_revision */
	KV_CMP_EXISTS = 5,  /* (key exists) == (number != 0); only EQ / NE; number is 0 or 1 */
};

enum kv_cmp_result { KV_CMP_EQ = 1, KV_CMP_NE = 2, KV_CMP_LT = 3, KV_CMP_GT = 4 };

/* "key's <target> <result> operand", e.g. version(k) LT 3. As in etcd, a missing key has
 * version = create = mod = 0, and any VALUE compare on a missing key is false. */
struct kv_compare {
	enum kv_cmp_target target;
	enum kv_cmp_result result;
	struct kv_bytes key;
	struct kv_bytes value; /* KV_CMP_VALUE */
	uint64_t number;       /* VERSION, CREATE, MOD, EXISTS */
};

/*
 * One write command. client_id 0 = no deduplication; otherwise (client_id, sequence) names
 * the command for exactly-once application (see "Sessions").
 * Txn semantics: every compare must hold (an empty list holds) for the success ops to run,
 * else the failure ops run. The ops of the chosen branch apply in order, each seeing the
 * effects of the previous ones (a GET after a PUT of the same key sees the new value). The
 * whole txn is atomic: if any op would be refused (e.g. Append beyond max_value_bytes) the
 * txn changes nothing and reports that op's error.
 */
struct kv_cmd {
	uint64_t time_ms; /* the leader's wall clock (Unix ms) when it proposed the command, 0 if
			   * unknown; set in the encoded bytes by kv_cmd_set_time (see Sessions) */
	uint64_t client_id;
	uint64_t sequence;
	enum kv_op_type type; /* PUT, DELETE, APPEND or TXN */
	struct kv_op op;      /* PUT, DELETE, APPEND */
	/* TXN: arrays owned by whoever filled them (kv_cmd_decode: release with kv_cmd_free). */
	struct kv_compare *compares;
	size_t n_compares;
	struct kv_op *success;
	size_t n_success;
	struct kv_op *failure;
	size_t n_failure;
};

/* Encode *cmd into a new malloc'd buffer (*out, *out_len; the caller frees it). Checks the
 * shape only (types, enums, that lengths fit the format), not the store's limits: see
 * kv_cmd_check. Returns 0, KV_EINVAL or KV_ENOMEM; on error *out is untouched. */
int kv_cmd_encode(const struct kv_cmd *cmd, unsigned char **out, size_t *out_len);

/* Decode and fully validate an encoded command (it may come from a buggy peer). On success
 * *cmd's kv_bytes point INTO buf (buf must outlive *cmd) and its txn arrays are malloc'd:
 * release them with kv_cmd_free. Returns 0, KV_EMALFORMED (on any inconsistency, including
 * trailing bytes or an unknown version) or KV_ENOMEM; on error nothing needs freeing. */
int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *cmd);

/* Stamp an encoded command (from kv_cmd_encode) with the proposing leader's wall clock, in
 * place. Returns 0, or KV_EMALFORMED when `cmd` is not an encoded command of this version. */
int kv_cmd_set_time(void *cmd, size_t len, uint64_t time_ms);

/* Free the arrays kv_cmd_decode allocated; the bytes stay the caller's. NULL-safe. */
void kv_cmd_free(struct kv_cmd *cmd);

/* Check a command against the limits in *o (empty key, sizes, op counts, range limits).
 * kv_apply runs the same check; the node may call it before proposing to refuse early.
 * Returns 0 or KV_EEMPTYKEY / KV_EKEYSIZE / KV_EVALUESIZE / KV_ETOOMANYOPS / KV_ELIMIT. */
int kv_cmd_check(const struct kv_options *o, const struct kv_cmd *cmd);

/* ---- results ------------------------------------------------------------------------- */

/* One key as returned by a read. */
struct kv_kv {
	struct kv_bytes key;   /* points into the owning kv_range_result's data */
	struct kv_bytes value; /* empty when keys_only */
	uint64_t create_revision;
	uint64_t mod_revision;
	uint64_t version;
};

/* What a range read returns; owns its memory (free with kv_range_result_free). */
struct kv_range_result {
	struct kv_kv *kvs; /* n entries, in key order */
	size_t n;
	uint64_t count;           /* keys in the whole range, regardless of limit (as etcd) */
	bool more;                /* keys remain after the last returned one */
	struct kv_bytes next_key; /* when more: the key to continue from (last key || 0x00) with
				   * the same range_end; points into data */
	unsigned char *data;      /* owns every byte the kv_bytes above point to */
};

/* Free a range result's memory and zero it. NULL-safe; a zeroed struct is fine. */
void kv_range_result_free(struct kv_range_result *r);

/* The outcome of one op of a txn. */
struct kv_op_result {
	enum kv_op_type type;
	uint64_t deleted;             /* DELETE: keys deleted */
	struct kv_range_result range; /* GET */
};

/* The outcome of one command, as kv_result_decode gives it. */
struct kv_result {
	int status;        /* 0, or the KV_E* code that refused the command (no change made) */
	uint64_t revision; /* the store's revision after the command (etcd's header.revision) */
	enum kv_op_type type;
	uint64_t deleted;               /* DELETE */
	bool succeeded;                 /* TXN: the compares held */
	struct kv_op_result *responses; /* TXN: one per op of the branch that ran (malloc'd) */
	size_t n_responses;
};

/* Decode an encoded result (from kv_apply) into *r, which then owns copies of everything
 * (free with kv_result_free). Returns 0, KV_EMALFORMED or KV_ENOMEM (then *r is zeroed). */
int kv_result_decode(const void *buf, size_t len, struct kv_result *r);

/* Free what kv_result_decode allocated and zero *r. NULL-safe. */
void kv_result_free(struct kv_result *r);

/* ---- the store ----------------------------------------------------------------------- */

struct kv_store;

/* A new, empty store (revision 0, applied index 0) with a copy of *o (NULL = defaults).
 * Returns NULL on out of memory or invalid options (a zero limit, max_sessions 0). */
struct kv_store *kv_store_new(const struct kv_options *o);

/* Free the store and everything in it. NULL-safe. */
void kv_store_free(struct kv_store *s);

uint64_t kv_store_revision(const struct kv_store *s);      /* global revision */
uint64_t kv_store_data_bytes(const struct kv_store *s);    /* bytes of all keys and values */
uint64_t kv_store_applied_index(const struct kv_store *s); /* last index applied/advanced */
uint64_t kv_store_key_count(const struct kv_store *s);
uint64_t kv_store_session_count(const struct kv_store *s);

/*
 * Apply the committed entry at log `index` whose payload is (cmd, len).
 *
 * Preconditions: index > kv_store_applied_index(s); otherwise returns KV_EINDEX and changes
 * nothing (a node bug, e.g. replaying entries a snapshot already covers).
 * Effects, in order: applied index := index; the command is decoded (malformed: a no-op whose
 * result carries KV_EMALFORMED — every node does the same); the log clock advances to the
 * command's time and sessions unused for longer than session_ttl_ms are dropped;
 * duplicate/stale/expired-session detection; limit checks (kv_cmd_check, then Append sizes
 * against the current values); the change.
 *
 * Revisions (etcd): the global revision grows by exactly one for a command that changes at
 * least one key (a txn with several writes: one revision for all). As in etcd, a command
 * that changes nothing — a Delete that matched no key, a txn whose branch only reads or is
 * empty, a refused command — leaves the revision unchanged. A put of key k sets
 * mod_revision = the new revision, version += 1, and create_revision = the new revision if k
 * did not exist (version 1). Delete removes the key; a later put recreates it from version 1.
 * Append is a put of old || suffix.
 *
 * The result: if `result` is non-NULL, *result / *result_len receive a malloc'd encoded
 * kv_result (the caller frees it; decode with kv_result_decode). A duplicate gets a copy of
 * the bytes stored for the original; a stale sequence gets a fresh result with KV_ESTALE.
 *
 * Returns the command's status (the same as the result's status): 0, KV_EMALFORMED,
 * KV_ESTALE, a limit error, or KV_EINDEX as above. Never fails otherwise (see Memory).
 */
int kv_apply(struct kv_store *s, uint64_t index, const void *cmd, size_t len,
	     unsigned char **result, size_t *result_len);

/* Mark log `index` applied without a command (no-op or configuration entry): such entries
 * carry no time, so sessions do not expire here. Returns 0, or KV_EINDEX when index <=
 * applied index. */
int kv_advance(struct kv_store *s, uint64_t index);

/*
 * Sessions (exactly-once)
 * -----------------------
 * For client_id != 0 the store keeps (last sequence, its encoded result, last use). A
 * session starts with sequence 1.
 *   - sequence == last: the stored result is returned, nothing applied (a retry);
 *   - sequence < last: KV_ESTALE, nothing applied;
 *   - sequence > last: applied, and the session records (sequence, result);
 *   - no session and sequence 1: applied, and the session is created;
 *   - no session and sequence > 1: KV_ESESSION, nothing applied and nothing recorded. The
 *     session expired or was evicted, so an earlier write of it may have been applied:
 *     refusing is the only answer that never applies a retry twice. The client starts a new
 *     session (a new client id, sequence 1).
 * Any command naming an existing session (duplicate and stale too) marks it used.
 *
 * Expiry runs on the log's clock: the largest time_ms of the commands applied so far (leaders
 * stamp each command as they propose it; the clock never goes back, even when a new leader's
 * wall clock is behind). A session unused for more than session_ttl_ms of that clock is
 * dropped when a later command advances the clock. So a client may retry a write id for
 * session_ttl_ms (10 minutes by default) after its session's last use, whatever the write
 * rate; a leader whose wall clock jumps ahead shortens that window for everyone. Creating a
 * session when max_sessions exist first evicts the least recently used one. Commands without
 * a time (older versions, 0) do not move the clock; when it first moves, every session
 * counts as used at that moment. Every rule depends only on the log, so every node agrees.
 * Refused commands (limits, Append too big) are results like any other: they are recorded.
 * Memory: about 170 bytes per session with a Put's result (tests/bench/kv_session_mem; a
 * Txn's stored result adds its size), so 17 MB at the default max_sessions.
 */

/* ---- reads (local, no revision change) ----------------------------------------------- */

/* Range read of op->key / op->range_end (see struct kv_op), type must be KV_OP_GET. Fills
 * *out (owned by the caller afterwards: kv_range_result_free). Returns 0, a limit error
 * (KV_EEMPTYKEY, KV_EKEYSIZE, KV_ELIMIT) or KV_ENOMEM; on error *out is zeroed. */
int kv_range(const struct kv_store *s, const struct kv_op *op, struct kv_range_result *out);

/* Single-key read: kv_range with an empty range_end. *out has n == 0 or 1. */
int kv_get(const struct kv_store *s, const void *key, size_t key_len, struct kv_range_result *out);

/* The etcd prefix range end for `key` into buf (capacity >= key_len): the key with trailing
 * 0xff bytes dropped and its last byte incremented; "\0" (length 1) when the key is all 0xff
 * or empty (every key). Returns the length written. */
size_t kv_prefix_end(const void *key, size_t key_len, unsigned char *buf);

/* ---- snapshots ----------------------------------------------------------------------- */

/* Callbacks: return 0 on success, anything else aborts with KV_EIO. A reader sets *n to the
 * bytes read (<= cap); *n == 0 means end of stream (storage_snapshot_read has this shape). */
typedef int (*kv_write_fn)(void *arg, const void *data, size_t len);
typedef int (*kv_read_fn)(void *arg, void *buf, size_t cap, size_t *n);

/*
 * Stream the whole state (applied index, revision, every key with its metadata in key
 * order, the session table in LRU order, then a checksum) through `write`, in pieces of at
 * most 64 KiB: memory use is bounded whatever the store's size. Format version 1, documented
 * in snapshot.c. Returns 0, KV_EIO or KV_ENOMEM. The store is not changed.
 */
int kv_snapshot_write(const struct kv_store *s, kv_write_fn write, void *arg);

/*
 * Replace the store's state with the snapshot read from `read`. The snapshot is decoded into
 * a NEW state, validated completely (magic, version, lengths against s's options, strictly
 * increasing keys, revision bounds, unique sessions in LRU order, decodable results,
 * checksum, nothing after the end); only then is it swapped in and the old state freed. On
 * any error (KV_ECORRUPT, KV_EIO, KV_ENOMEM) the store is unchanged. Allocation grows with
 * the bytes actually read, so a lying length cannot force a huge allocation.
 */
int kv_snapshot_restore(struct kv_store *s, kv_read_fn read, void *arg);

#endif
