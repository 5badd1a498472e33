/* The peer wire format: struct raft_message <-> raftkv.v1.RaftBatch / SnapshotChunk (raft.proto). */
#ifndef RAFTKV_SERVER_NODE_PEER_CODEC_H
#define RAFTKV_SERVER_NODE_PEER_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/raft/raft.h"

/*
 * Everything decoded here comes from the network, so decoding validates all that the core
 * relies on and a malicious or buggy peer gets an error code and a message, never a crash
 * or an allocation sized by a length it wrote (every array and payload is bounded by the
 * bytes actually received). What is checked, per message:
 *   - type in 1..RAFT_MSG_TYPE_MAX, from and to non-zero;
 *   - APPEND: at most PEER_MAX_ENTRIES entries, indexes prev_index+1, prev_index+2, ...
 *     (no overflow), entry type 1..3, entry terms >= 1, non-decreasing, >= prev_term and
 *     <= the message's term (Raft's log matching: a leader only sends entries of terms up
 *     to its own), and a CONF entry's payload must pass raft_conf_decode;
 *   - SNAPSHOT: metadata present, index >= 1, term >= 1, conf_index <= index, at most
 *     RAFT_MAX_MEMBERS members with non-zero unique ids, role 1 (voter) or 2 (learner) and
 *     an address shorter than RAFT_ADDR_MAX (so it fits with its NUL).
 * Fields irrelevant to a type are ignored (entries of a non-APPEND, metadata of a
 * non-SNAPSHOT): they are neither checked nor returned, so they cannot reach the core.
 *
 * Memory: decoded entries arrays come from the core's allocator (raft_set_allocator) and
 * payloads are raft_bufs, so raft_message_release() frees one decoded message like any
 * other. As in the core, running out of memory inside the core's allocator is fatal.
 */

/* Error codes (0 = ok). */
#define PEER_ERR_MAP(X)                              \
	X(PEER_ENOMEM, -1, "out of memory")          \
	X(PEER_EMALFORMED, -2, "malformed protobuf") \
	X(PEER_EINVAL, -3, "invalid message")
enum {
#define PEER_ERR_ENUM(name, value, text) name = value,
	PEER_ERR_MAP(PEER_ERR_ENUM)
#undef PEER_ERR_ENUM
};

/* A static text for a code ("ok" for 0, "unknown error" for unknown codes). */
const char *peer_strerror(int code);

/* Most entries accepted in one AppendEntries (the core sends max_entries_per_append, 1024
 * by default). */
#define PEER_MAX_ENTRIES (1u << 16)

/* ---- batches (Raft.Send) ------------------------------------------------------------- */

/* Encode msgs[0..n) as one raftkv.v1.RaftBatch into a new malloc'd buffer (*out, *len; the
 * caller frees it with free()). The messages stay the caller's. Only the fields meaningful
 * for each type are sent. Returns 0, PEER_EINVAL (a message breaking the core's invariants:
 * entries NULL with n_entries > 0, more than RAFT_MAX_MEMBERS members, an address without
 * its NUL) or PEER_ENOMEM; on error *out is untouched. `alarms`: the sender's alarm bits. */
int peer_batch_encode(const struct raft_message *msgs, size_t n, uint32_t alarms, void **out,
		      size_t *len);

/* Decode and validate a RaftBatch (see the top of this file). On success *msgs is a malloc'd
 * array of *n messages (NULL when *n == 0) owned by the caller with everything it points to:
 * release it with peer_messages_free(). On failure returns PEER_EMALFORMED, PEER_EINVAL or
 * PEER_ENOMEM with a message in err (NUL-terminated when errlen > 0), and nothing needs
 * freeing. buf is not kept. *alarms (when not NULL) gets the sender's alarm bits. */
int peer_batch_decode(const void *buf, size_t len, struct raft_message **msgs, size_t *n,
		      uint32_t *alarms, char *err, size_t errlen);

/* raft_message_release() on each message, then free the array. NULL-safe. */
void peer_messages_free(struct raft_message *msgs, size_t n);

/* ---- snapshot chunks (Raft.InstallSnapshot) ------------------------------------------ */

/* Encode one raftkv.v1.SnapshotChunk into a new malloc'd buffer (*out, *outlen; caller
 * frees). `first` is the InstallSnapshot message (type RAFT_MSG_SNAPSHOT) on the first chunk
 * and NULL on every other; data[0..len) is the chunk's bytes at `offset` of the snapshot;
 * `last` marks the final chunk, whose `size` is the snapshot's total size (ignored unless
 * last). Returns 0, PEER_EINVAL (first given but not a SNAPSHOT) or PEER_ENOMEM. */
int peer_chunk_encode(const struct raft_message *first, uint64_t offset, const void *data,
		      size_t len, bool last, uint64_t size, void **out, size_t *outlen);

/* One decoded chunk. Owns its memory: release with peer_chunk_free. */
struct peer_chunk {
	bool has_message;            /* the first chunk: `message` is set */
	struct raft_message message; /* type RAFT_MSG_SNAPSHOT, validated; no entries */
	uint64_t offset;             /* offset of data in the snapshot; 0 on the first chunk */
	const void *data;            /* len bytes, pointing into priv (NULL when len == 0) */
	size_t len;
	bool last;     /* the final chunk */
	uint64_t size; /* when last: the total size, == offset + len */
	void *priv;    /* the unpacked protobuf that data points into */
};

/* Decode and validate a SnapshotChunk: a message must be a valid SNAPSHOT (as in a batch)
 * and come with offset 0; offset + len must not overflow; a last chunk must have
 * size == offset + len. Whether chunks arrive in order is the receiver's to check. On
 * success *c owns its memory (peer_chunk_free); on failure returns PEER_EMALFORMED,
 * PEER_EINVAL or PEER_ENOMEM with a message in err, *c is zeroed and nothing needs freeing. */
int peer_chunk_decode(const void *buf, size_t len, struct peer_chunk *c, char *err, size_t errlen);

/* Free what peer_chunk_decode allocated and zero *c. NULL-safe; a zeroed struct is fine. */
void peer_chunk_free(struct peer_chunk *c);

#endif
