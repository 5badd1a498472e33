/* Internals of server/kv/ shared by its .c files: the ordered map, sessions, byte buffers. */
#ifndef RAFTKV_SERVER_KV_IMPL_H
#define RAFTKV_SERVER_KV_IMPL_H

#include "server/kv/kv.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- ordered map: an AVL tree augmented with subtree sizes (tree.c) -------------------
 * One allocation per key: the node header, then the key bytes, then the value bytes. Nodes
 * have no parent pointer, so the only reference to a node is its parent's child slot (or the
 * root): a put that changes the value size reallocs the node through that slot.
 * AVL rather than a skip list: worst-case O(log n) whatever the keys (a hash-levelled skip
 * list can be degraded by chosen keys), and no randomness at all. */
struct node {
	struct node *left, *right;
	uint64_t create_rev; /* Invariant: 1 <= create_rev <= mod_rev <= store revision */
	uint64_t mod_rev;
	uint64_t version; /* Invariant: >= 1 */
	uint64_t size;    /* nodes in this subtree (for O(log n) range counts) */
	uint32_t key_len; /* Invariant: >= 1 */
	uint32_t val_len;
	int32_t height; /* leaf = 1 */
	unsigned char data[];
};

static inline const unsigned char *node_key(const struct node *n)
{
	return n->data;
}
static inline const unsigned char *node_val(const struct node *n)
{
	return n->data + n->key_len;
}

/* memcmp order, a shorter key first when it is a prefix of the longer. */
int key_cmp(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen);

struct node *tree_find(struct node *root, const unsigned char *k, size_t klen);
/* The slot (root pointer or a child field) pointing at key k, or NULL if absent. */
struct node **tree_find_slot(struct node **root, const unsigned char *k, size_t klen);
/* Insert n (its key must be absent); returns the new root. */
struct node *tree_insert(struct node *root, struct node *n);
/* Unlink the node with key k (must be present) into *removed; returns the new root. */
struct node *tree_remove(struct node *root, const unsigned char *k, size_t klen,
			 struct node **removed);
/* Number of keys < k (k == NULL: all keys). */
uint64_t tree_rank(const struct node *root, const unsigned char *k, size_t klen);
/* First node with key >= k, or NULL. */
struct node *tree_lower_bound(struct node *root, const unsigned char *k, size_t klen);
void tree_free(struct node *root);
/* Walk of nodes in key order from the first key >= start (start NULL = the smallest),
 * with an explicit stack (AVL height <= 1.44 log2(n) < 96 for any n that fits memory). */
struct tree_iter {
	struct node *stack[100];
	int depth;
};
void tree_iter_init(struct tree_iter *it, struct node *root, const unsigned char *start,
		    size_t start_len);
struct node *tree_iter_next(struct tree_iter *it);

/* ---- sessions (kv.c) ------------------------------------------------------------------ */
struct session {
	uint64_t client_id; /* Invariant: != 0 */
	uint64_t last_seq;
	uint64_t last_index;   /* Invariant: strictly increases from lru_head to tail */
	uint64_t last_ms;      /* the log clock at the last use. Invariant: does not decrease
				* from lru_head to tail, <= kv_state.clock_ms */
	unsigned char *result; /* encoded result of last_seq (owned) */
	size_t result_len;
	struct session *prev, *next; /* LRU list, head = least recently used */
	struct session *hnext;       /* hash chain */
};

struct kv_state {
	struct node *root;
	uint64_t revision;
	uint64_t applied;
	uint64_t clock_ms;   /* the log clock: the largest command time_ms applied (0: none yet) */
	uint64_t data_bytes; /* bytes of every key and value held (the quota counts these) */
	struct session **buckets; /* power-of-two sized hash table, chained */
	size_t n_buckets;
	uint64_t n_sessions;
	struct session *lru_head, *lru_tail;
};

struct kv_store {
	struct kv_options opts;
	struct kv_state st;
};

void state_free(struct kv_state *st);
struct session *session_find(const struct kv_state *st, uint64_t client_id);
/* Append a new session as most recently used; returns KV_ENOMEM or 0. */
int session_add(struct kv_state *st, struct session *se);
int options_valid(const struct kv_options *o);

/* ---- growable byte buffer ------------------------------------------------------------- */
struct kbuf {
	unsigned char *p;
	size_t len, cap;
	bool oom; /* sticky: some append failed */
};
void kb_bytes(struct kbuf *b, const void *p, size_t n);
void kb_u8(struct kbuf *b, uint8_t v);
void kb_u32(struct kbuf *b, uint32_t v);
void kb_u64(struct kbuf *b, uint64_t v);
void kb_blob(struct kbuf *b, const void *p, size_t n); /* u32 length + bytes */

/* ---- bounds-checked reader ------------------------------------------------------------ */
struct krd {
	const unsigned char *p;
	size_t len, off;
	bool bad; /* sticky: some read ran past the end or found a bad value */
};
uint8_t kr_u8(struct krd *r);
uint32_t kr_u32(struct krd *r);
uint64_t kr_u64(struct krd *r);
struct kv_bytes kr_blob(struct krd *r);

/* Encode a range result's body (shared by results; codec.c). */
void enc_range_result(struct kbuf *b, const struct kv_range_result *rr);
/* Validate an encoded result without keeping it (snapshot restore). */
int result_validate(const unsigned char *p, size_t len);

#endif
