/* The store: applying commands (revisions, txns, sessions) and local range reads. */
#include "server/kv/kv_impl.h"

#include "common/byteorder.h"
#include "common/check.h"

#include <stdlib.h>
#include <string.h>

#define RESULT_VERSION 1

void kv_options_default(struct kv_options *o)
{
	o->max_key_bytes = 4096;
	o->max_value_bytes = 1024 * 1024;
	o->max_txn_ops = 128;
	o->max_range_limit = 10000;
	o->session_ttl_ms = 10 * 60 * 1000;
	o->max_sessions = 100000;
}

int options_valid(const struct kv_options *o)
{
	/* Node sizes are uint32_t: an appended value must never overflow them. */
	return o->max_key_bytes > 0 && o->max_key_bytes < UINT32_MAX / 4 &&
	       o->max_value_bytes > 0 && o->max_value_bytes < UINT32_MAX / 4 &&
	       o->max_txn_ops > 0 && o->max_range_limit > 0 && o->session_ttl_ms > 0 &&
	       o->max_sessions > 0;
}

struct kv_store *kv_store_new(const struct kv_options *o)
{
	struct kv_options def;
	if (!o) {
		kv_options_default(&def);
		o = &def;
	}
	if (!options_valid(o))
		return NULL;
	struct kv_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->opts = *o;
	return s;
}

void state_free(struct kv_state *st)
{
	tree_free(st->root);
	struct session *se = st->lru_head;
	while (se) {
		struct session *next = se->next;
		free(se->result);
		free(se);
		se = next;
	}
	free(st->buckets);
	memset(st, 0, sizeof(*st));
}

void kv_store_free(struct kv_store *s)
{
	if (!s)
		return;
	state_free(&s->st);
	free(s);
}

uint64_t kv_store_data_bytes(const struct kv_store *s)
{
	return s->st.data_bytes;
}

uint64_t kv_store_revision(const struct kv_store *s)
{
	return s->st.revision;
}

uint64_t kv_store_applied_index(const struct kv_store *s)
{
	return s->st.applied;
}

uint64_t kv_store_key_count(const struct kv_store *s)
{
	return s->st.root ? s->st.root->size : 0;
}

uint64_t kv_store_session_count(const struct kv_store *s)
{
	return s->st.n_sessions;
}

/* ---- sessions ------------------------------------------------------------------------- */

static size_t hash_id(uint64_t x, size_t n_buckets)
{
	/* splitmix64 finalizer: ids may be sequential; spread them. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return (size_t)(x & (n_buckets - 1));
}

struct session *session_find(const struct kv_state *st, uint64_t client_id)
{
	if (!st->n_buckets)
		return NULL;
	struct session *se = st->buckets[hash_id(client_id, st->n_buckets)];
	while (se && se->client_id != client_id)
		se = se->hnext;
	return se;
}

static void lru_unlink(struct kv_state *st, struct session *se)
{
	if (se->prev)
		se->prev->next = se->next;
	else
		st->lru_head = se->next;
	if (se->next)
		se->next->prev = se->prev;
	else
		st->lru_tail = se->prev;
	se->prev = se->next = NULL;
}

static void lru_push_tail(struct kv_state *st, struct session *se)
{
	se->prev = st->lru_tail;
	se->next = NULL;
	if (st->lru_tail)
		st->lru_tail->next = se;
	else
		st->lru_head = se;
	st->lru_tail = se;
}

int session_add(struct kv_state *st, struct session *se)
{
	if (st->n_sessions >= st->n_buckets) {
		size_t nb = st->n_buckets ? st->n_buckets * 2 : 64;
		struct session **b = calloc(nb, sizeof(*b));
		if (!b)
			return KV_ENOMEM;
		/* Rehash in LRU order; chain order never shows in any output. */
		for (struct session *x = st->lru_head; x; x = x->next) {
			size_t h = hash_id(x->client_id, nb);
			x->hnext = b[h];
			b[h] = x;
		}
		free(st->buckets);
		st->buckets = b;
		st->n_buckets = nb;
	}
	size_t h = hash_id(se->client_id, st->n_buckets);
	se->hnext = st->buckets[h];
	st->buckets[h] = se;
	lru_push_tail(st, se);
	st->n_sessions++;
	return 0;
}

static void session_drop(struct kv_state *st, struct session *se)
{
	struct session **pp = &st->buckets[hash_id(se->client_id, st->n_buckets)];
	while (*pp != se)
		pp = &(*pp)->hnext;
	*pp = se->hnext;
	lru_unlink(st, se);
	st->n_sessions--;
	free(se->result);
	free(se);
}

/* Advance the log clock to a command's time (never back), then drop the sessions unused for
 * longer than the TTL. The LRU list is sorted by last use, so only its head needs looking
 * at. When the clock first moves (commands without a time came before), every session
 * counts as used now rather than at time 0. */
static void clock_advance(struct kv_store *s, uint64_t time_ms)
{
	struct kv_state *st = &s->st;
	if (time_ms <= st->clock_ms)
		return;
	if (st->clock_ms == 0)
		for (struct session *se = st->lru_head; se; se = se->next)
			se->last_ms = time_ms;
	st->clock_ms = time_ms;
	while (st->lru_head && st->clock_ms - st->lru_head->last_ms > s->opts.session_ttl_ms)
		session_drop(st, st->lru_head);
}

static void session_touch(struct kv_state *st, struct session *se, uint64_t index)
{
	se->last_index = index;
	se->last_ms = st->clock_ms;
	lru_unlink(st, se);
	lru_push_tail(st, se);
}

/* ---- ranges --------------------------------------------------------------------------- */

static bool is_from_key(struct kv_bytes end)
{
	return end.len == 1 && end.p[0] == 0;
}

/* Is k inside the etcd range (key, end)? */
static bool in_range(const unsigned char *k, size_t klen, struct kv_bytes key, struct kv_bytes end)
{
	int c = key_cmp(k, klen, key.p, key.len);
	if (end.len == 0)
		return c == 0;
	if (c < 0)
		return false;
	return is_from_key(end) || key_cmp(k, klen, end.p, end.len) < 0;
}

static uint64_t range_count(const struct node *root, struct kv_bytes key, struct kv_bytes end)
{
	if (end.len == 0)
		return tree_find((struct node *)root, key.p, key.len) ? 1 : 0;
	uint64_t lo = tree_rank(root, key.p, key.len);
	if (is_from_key(end))
		return tree_rank(root, NULL, 0) - lo;
	if (key_cmp(end.p, end.len, key.p, key.len) <= 0)
		return 0;
	return tree_rank(root, end.p, end.len) - lo;
}

/* Read op's range from root into *out (zeroed first). Limits already checked. */
static int do_range(struct node *root, const struct kv_options *o, const struct kv_op *op,
		    struct kv_range_result *out)
{
	memset(out, 0, sizeof(*out));
	out->count = range_count(root, op->key, op->range_end);
	if (op->count_only || out->count == 0)
		return 0;
	uint64_t limit = op->limit ? op->limit : o->max_range_limit;
	size_t n = (size_t)(out->count < limit ? out->count : limit);
	out->kvs = calloc(n, sizeof(*out->kvs));
	if (!out->kvs)
		return KV_ENOMEM;
	/* First pass: borrow the nodes' bytes and size the data block; second: copy. */
	struct tree_iter it;
	tree_iter_init(&it, root, op->key.p, op->key.len);
	size_t total = 0;
	struct node *last = NULL;
	for (size_t i = 0; i < n; i++) {
		struct node *nd = tree_iter_next(&it);
		INVARIANT(nd && in_range(node_key(nd), nd->key_len, op->key, op->range_end),
			  "kv: range walk disagrees with range count");
		struct kv_kv *kv = &out->kvs[i];
		kv->key.p = node_key(nd);
		kv->key.len = nd->key_len;
		if (!op->keys_only) {
			kv->value.p = node_val(nd);
			kv->value.len = nd->val_len;
		}
		kv->create_revision = nd->create_rev;
		kv->mod_revision = nd->mod_rev;
		kv->version = nd->version;
		total += kv->key.len + kv->value.len;
		last = nd;
	}
	out->n = n;
	out->more = out->count > n;
	if (out->more)
		total += last->key_len + 1;
	out->data = malloc(total ? total : 1);
	if (!out->data) {
		kv_range_result_free(out);
		return KV_ENOMEM;
	}
	size_t used = 0;
	for (size_t i = 0; i < n; i++) {
		struct kv_kv *kv = &out->kvs[i];
		memcpy(out->data + used, kv->key.p, kv->key.len);
		kv->key.p = out->data + used;
		used += kv->key.len;
		if (kv->value.len) {
			memcpy(out->data + used, kv->value.p, kv->value.len);
			kv->value.p = out->data + used;
			used += kv->value.len;
		} else {
			kv->value.p = NULL;
		}
	}
	if (out->more) {
		memcpy(out->data + used, node_key(last), last->key_len);
		out->data[used + last->key_len] = 0;
		out->next_key.p = out->data + used;
		out->next_key.len = last->key_len + 1;
	}
	return 0;
}

int kv_range(const struct kv_store *s, const struct kv_op *op, struct kv_range_result *out)
{
	memset(out, 0, sizeof(*out));
	if (op->type != KV_OP_GET)
		return KV_EINVAL;
	struct kv_cmd c = {.type = KV_OP_TXN, .success = (struct kv_op *)op, .n_success = 1};
	int rv = kv_cmd_check(&s->opts, &c);
	if (rv != 0)
		return rv;
	return do_range(s->st.root, &s->opts, op, out);
}

int kv_get(const struct kv_store *s, const void *key, size_t key_len, struct kv_range_result *out)
{
	struct kv_op op = {.type = KV_OP_GET, .key = {key, key_len}};
	return kv_range(s, &op, out);
}

/* ---- writes --------------------------------------------------------------------------- */

static struct node *node_new(const struct kv_bytes key, size_t val_len)
{
	struct node *n = malloc(sizeof(*n) + key.len + val_len);
	if (!n)
		PANIC("kv: out of memory while applying a committed entry");
	memset(n, 0, sizeof(*n));
	n->key_len = (uint32_t)key.len;
	n->val_len = (uint32_t)val_len;
	memcpy(n->data, key.p, key.len);
	return n;
}

/* key := prefix-of-old-value (keep bytes) || add, at revision rev. keep = 0 for a put. */
static void write_key(struct kv_state *st, struct kv_bytes key, size_t keep, struct kv_bytes add,
		      uint64_t rev)
{
	struct node **slot = tree_find_slot(&st->root, key.p, key.len);
	if (!slot) {
		struct node *n = node_new(key, add.len);
		if (add.len)
			memcpy(n->data + key.len, add.p, add.len);
		n->create_rev = n->mod_rev = rev;
		n->version = 1;
		st->root = tree_insert(st->root, n);
		st->data_bytes += key.len + add.len;
		return;
	}
	struct node *n = *slot;
	size_t vlen = keep + add.len;
	st->data_bytes += vlen;
	st->data_bytes -= n->val_len;
	if (vlen != n->val_len) {
		n = realloc(n, sizeof(*n) + n->key_len + vlen);
		if (!n)
			PANIC("kv: out of memory while applying a committed entry");
		*slot = n;
	}
	if (add.len)
		memcpy(n->data + n->key_len + keep, add.p, add.len);
	n->val_len = (uint32_t)vlen;
	n->mod_rev = rev;
	n->version++;
}

static uint64_t delete_range(struct kv_state *st, struct kv_bytes key, struct kv_bytes end)
{
	uint64_t deleted = 0;
	struct node *removed;
	if (end.len == 0) {
		if (!tree_find(st->root, key.p, key.len))
			return 0;
		st->root = tree_remove(st->root, key.p, key.len, &removed);
		st->data_bytes -= removed->key_len + removed->val_len;
		free(removed);
		return 1;
	}
	for (;;) {
		struct node *n = tree_lower_bound(st->root, key.p, key.len);
		if (!n || !in_range(node_key(n), n->key_len, key, end))
			break;
		/* n's own key guides the removal; n is freed only after it is unlinked. */
		st->root = tree_remove(st->root, node_key(n), n->key_len, &removed);
		st->data_bytes -= removed->key_len + removed->val_len;
		free(removed);
		deleted++;
	}
	return deleted;
}

/* Would the APPEND at ops[i] grow its value past the limit, given ops[0..i-1] run first?
 * Computed before anything changes, so a refused txn needs no undo. */
static bool append_too_big(const struct kv_state *st, const struct kv_options *o,
			   const struct kv_op *ops, size_t i)
{
	struct kv_bytes key = ops[i].key;
	uint64_t total = ops[i].value.len;
	for (size_t j = i; j-- > 0;) {
		const struct kv_op *p = &ops[j];
		if (p->type == KV_OP_PUT && key_cmp(p->key.p, p->key.len, key.p, key.len) == 0)
			return total + p->value.len > o->max_value_bytes;
		if (p->type == KV_OP_APPEND && key_cmp(p->key.p, p->key.len, key.p, key.len) == 0)
			total += p->value.len;
		if (p->type == KV_OP_DELETE && in_range(key.p, key.len, p->key, p->range_end))
			return total > o->max_value_bytes;
	}
	struct node *n = tree_find(st->root, key.p, key.len);
	return total + (n ? n->val_len : 0) > o->max_value_bytes;
}

static void res_header(struct kbuf *b, int status, uint64_t rev, enum kv_op_type type)
{
	kb_u8(b, RESULT_VERSION);
	kb_u32(b, (uint32_t)(int32_t)status);
	kb_u64(b, rev);
	kb_u8(b, (uint8_t)type);
}

/* Run ops (already checked) at revision st->revision + 1; the revision moves only if a key
 * changed. Per-op results go to `ops_out` (txn) and the delete count to *deleted. */
static int run_ops(struct kv_store *s, const struct kv_op *ops, size_t n, struct kbuf *ops_out,
		   uint64_t *deleted)
{
	struct kv_state *st = &s->st;
	for (size_t i = 0; i < n; i++)
		if (ops[i].type == KV_OP_APPEND && append_too_big(st, &s->opts, ops, i))
			return KV_EVALUESIZE;
	uint64_t rev = st->revision + 1;
	bool changed = false;
	*deleted = 0;
	for (size_t i = 0; i < n; i++) {
		const struct kv_op *op = &ops[i];
		if (ops_out)
			kb_u8(ops_out, (uint8_t)op->type);
		switch (op->type) {
		case KV_OP_PUT:
			write_key(st, op->key, 0, op->value, rev);
			changed = true;
			break;
		case KV_OP_APPEND: {
			struct node *nd = tree_find(st->root, op->key.p, op->key.len);
			write_key(st, op->key, nd ? nd->val_len : 0, op->value, rev);
			changed = true;
			break;
		}
		case KV_OP_DELETE: {
			uint64_t d = delete_range(st, op->key, op->range_end);
			changed |= d > 0;
			*deleted += d;
			if (ops_out)
				kb_u64(ops_out, d);
			break;
		}
		case KV_OP_GET: {
			struct kv_range_result rr;
			if (do_range(st->root, &s->opts, op, &rr) != 0)
				PANIC("kv: out of memory while applying a committed entry");
			/* A key written earlier in this txn already carries `rev`, as in etcd. */
			enc_range_result(ops_out, &rr);
			kv_range_result_free(&rr);
			break;
		}
		default:
			PANIC("kv: unchecked op type in run_ops");
		}
	}
	if (changed)
		st->revision = rev;
	return 0;
}

static bool compare_holds(const struct kv_state *st, const struct kv_compare *c)
{
	struct node *n = tree_find(st->root, c->key.p, c->key.len);
	int r;
	if (c->target == KV_CMP_VALUE) {
		if (!n)
			return false; /* etcd: a value compare on a missing key fails */
		r = key_cmp(node_val(n), n->val_len, c->value.p, c->value.len);
	} else {
		uint64_t v = 0;
		switch (c->target) {
		case KV_CMP_VERSION:
			v = n ? n->version : 0;
			break;
		case KV_CMP_CREATE:
			v = n ? n->create_rev : 0;
			break;
		case KV_CMP_MOD:
			v = n ? n->mod_rev : 0;
			break;
		default: /* KV_CMP_EXISTS */
			v = n ? 1 : 0;
			break;
		}
		r = v < c->number ? -1 : v > c->number ? 1 : 0;
	}
	switch (c->result) {
	case KV_CMP_EQ:
		return r == 0;
	case KV_CMP_NE:
		return r != 0;
	case KV_CMP_LT:
		return r < 0;
	default: /* KV_CMP_GT */
		return r > 0;
	}
}

/* Execute a decoded command; writes the whole encoded result into *out. */
static int execute(struct kv_store *s, const struct kv_cmd *c, struct kbuf *out)
{
	uint64_t deleted = 0;
	int rv = kv_cmd_check(&s->opts, c);
	if (rv == 0 && c->type != KV_OP_TXN) {
		rv = run_ops(s, &c->op, 1, NULL, &deleted);
		if (rv == 0) {
			res_header(out, 0, s->st.revision, c->type);
			if (c->type == KV_OP_DELETE)
				kb_u64(out, deleted);
			return 0;
		}
	} else if (rv == 0) {
		bool ok = true;
		for (size_t i = 0; i < c->n_compares && ok; i++)
			ok = compare_holds(&s->st, &c->compares[i]);
		const struct kv_op *ops = ok ? c->success : c->failure;
		size_t n = ok ? c->n_success : c->n_failure;
		struct kbuf body = {0};
		rv = run_ops(s, ops, n, &body, &deleted);
		if (rv == 0) {
			if (body.oom)
				PANIC("kv: out of memory while applying a committed entry");
			res_header(out, 0, s->st.revision, KV_OP_TXN);
			kb_u8(out, ok ? 1 : 0);
			kb_u32(out, (uint32_t)n);
			kb_bytes(out, body.p, body.len);
			free(body.p);
			return 0;
		}
		free(body.p);
	}
	res_header(out, rv, s->st.revision, c->type);
	return rv;
}

static int finish(struct kbuf *out, unsigned char **result, size_t *result_len)
{
	if (out->oom)
		PANIC("kv: out of memory while applying a committed entry");
	if (result) {
		*result = out->p;
		*result_len = out->len;
	} else {
		free(out->p);
	}
	return 0;
}

static unsigned char *dup_bytes(const unsigned char *p, size_t n)
{
	unsigned char *d = malloc(n ? n : 1);
	if (!d)
		PANIC("kv: out of memory while applying a committed entry");
	memcpy(d, p, n);
	return d;
}

int kv_apply(struct kv_store *s, uint64_t index, const void *cmd, size_t len,
	     unsigned char **result, size_t *result_len)
{
	struct kv_state *st = &s->st;
	if (index <= st->applied)
		return KV_EINDEX;
	st->applied = index;

	struct kbuf out = {0};
	struct kv_cmd c;
	int rv = kv_cmd_decode(cmd, len, &c);
	if (rv == KV_ENOMEM)
		PANIC("kv: out of memory while applying a committed entry");
	if (rv != 0) {
		res_header(&out, KV_EMALFORMED, st->revision, 0);
		finish(&out, result, result_len);
		return KV_EMALFORMED;
	}
	clock_advance(s, c.time_ms);

	struct session *se = c.client_id ? session_find(st, c.client_id) : NULL;
	if (c.client_id && !se && c.sequence != 1) {
		/* Expired or evicted: an earlier write of this session may have been applied. */
		kv_cmd_free(&c);
		res_header(&out, KV_ESESSION, st->revision, c.type);
		finish(&out, result, result_len);
		return KV_ESESSION;
	}
	if (se) {
		session_touch(st, se, index);
		if (c.sequence == se->last_seq) {
			kv_cmd_free(&c);
			if (result) {
				*result = dup_bytes(se->result, se->result_len);
				*result_len = se->result_len;
			}
			return (int32_t)get_be32(se->result + 1);
		}
		if (c.sequence < se->last_seq) {
			kv_cmd_free(&c);
			res_header(&out, KV_ESTALE, st->revision, c.type);
			finish(&out, result, result_len);
			return KV_ESTALE;
		}
	}

	rv = execute(s, &c, &out);
	if (out.oom)
		PANIC("kv: out of memory while applying a committed entry");
	if (c.client_id) {
		if (!se) {
			if (st->n_sessions >= s->opts.max_sessions)
				session_drop(st, st->lru_head); /* least recently used */
			se = calloc(1, sizeof(*se));
			if (!se)
				PANIC("kv: out of memory while applying a committed entry");
			se->client_id = c.client_id;
			se->last_index = index;
			se->last_ms = st->clock_ms;
			if (session_add(st, se) != 0)
				PANIC("kv: out of memory while applying a committed entry");
		}
		free(se->result);
		se->last_seq = c.sequence;
		se->result_len = out.len;
		se->result = result ? dup_bytes(out.p, out.len) : out.p;
		if (!result)
			out.p = NULL;
	}
	kv_cmd_free(&c);
	finish(&out, result, result_len);
	return rv;
}

int kv_advance(struct kv_store *s, uint64_t index)
{
	if (index <= s->st.applied)
		return KV_EINDEX;
	s->st.applied = index;
	return 0;
}
