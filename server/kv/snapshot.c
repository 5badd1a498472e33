/* Streamed snapshots of the whole store, and their fully validated restore.
 *
 * Format, version 2 (integers big-endian, blob = u32 length + bytes):
 *   "RKVS" | u8 version = 2 | u64 applied index | u64 revision | u64 log clock (ms)
 *   u64 n_keys, then per key in strictly increasing key order:
 *       blob key | blob value | u64 create_revision | u64 mod_revision | u64 version
 *   u64 n_sessions, then per session from least to most recently used:
 *       u64 client_id | u64 last_sequence | u64 last_index | u64 last_ms | blob encoded result
 *   u64 FNV-1a-64 of every byte before it
 * Version 1 (still restored) had no log clock and no last_ms: both read as 0.
 * Everything in it is a function of the applied entries, so equal logs give equal bytes. */
#include "server/kv/kv_impl.h"

#include "common/byteorder.h"

#include <stdlib.h>
#include <string.h>

#define SNAP_MAGIC      "RKVS"
#define SNAP_VERSION    2
#define SNAP_VERSION_V1 1 /* without the log clock: restored, never written */
#define SNAP_CHUNK      (64 * 1024)

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}

/* ---- writing -------------------------------------------------------------------------- */

struct snapw {
	kv_write_fn fn;
	void *arg;
	uint64_t h;
	int err;
	size_t len;
	unsigned char buf[SNAP_CHUNK];
};

static void w_flush(struct snapw *w)
{
	if (w->err == 0 && w->len && w->fn(w->arg, w->buf, w->len) != 0)
		w->err = KV_EIO;
	w->len = 0;
}

static void w_bytes(struct snapw *w, const void *data, size_t n)
{
	const unsigned char *p = data;
	w->h = fnv(w->h, p, n);
	while (n > 0 && w->err == 0) {
		if (w->len == SNAP_CHUNK)
			w_flush(w);
		size_t k = SNAP_CHUNK - w->len;
		if (k > n)
			k = n;
		memcpy(w->buf + w->len, p, k);
		w->len += k;
		p += k;
		n -= k;
	}
}

static void w_u64(struct snapw *w, uint64_t v)
{
	unsigned char t[8];
	put_be64(t, v);
	w_bytes(w, t, 8);
}

static void w_blob(struct snapw *w, const void *p, size_t n)
{
	unsigned char t[4];
	put_be32(t, (uint32_t)n);
	w_bytes(w, t, 4);
	w_bytes(w, p, n);
}

int kv_snapshot_write(const struct kv_store *s, kv_write_fn fn, void *arg)
{
	const struct kv_state *st = &s->st;
	struct snapw *w = malloc(sizeof(*w));
	if (!w)
		return KV_ENOMEM;
	w->fn = fn;
	w->arg = arg;
	w->h = FNV_OFFSET;
	w->err = 0;
	w->len = 0;

	unsigned char hdr = SNAP_VERSION;
	w_bytes(w, SNAP_MAGIC, 4);
	w_bytes(w, &hdr, 1);
	w_u64(w, st->applied);
	w_u64(w, st->revision);
	w_u64(w, st->clock_ms);
	w_u64(w, st->root ? st->root->size : 0);
	struct tree_iter it;
	tree_iter_init(&it, st->root, NULL, 0);
	for (struct node *n; w->err == 0 && (n = tree_iter_next(&it)) != NULL;) {
		w_blob(w, node_key(n), n->key_len);
		w_blob(w, node_val(n), n->val_len);
		w_u64(w, n->create_rev);
		w_u64(w, n->mod_rev);
		w_u64(w, n->version);
	}
	w_u64(w, st->n_sessions);
	for (const struct session *se = st->lru_head; se && w->err == 0; se = se->next) {
		w_u64(w, se->client_id);
		w_u64(w, se->last_seq);
		w_u64(w, se->last_index);
		w_u64(w, se->last_ms);
		w_blob(w, se->result, se->result_len);
	}
	w_u64(w, w->h);
	w_flush(w);
	int rv = w->err;
	free(w);
	return rv;
}

/* ---- restoring ------------------------------------------------------------------------ */

struct snapr {
	kv_read_fn fn;
	void *arg;
	uint64_t h;
	int err; /* sticky: KV_EIO, KV_ECORRUPT (short input) or KV_ENOMEM */
	size_t pos, len;
	bool eof;
	unsigned char buf[SNAP_CHUNK];
};

static void r_fill(struct snapr *r)
{
	size_t n = 0;
	if (r->err || r->eof)
		return;
	if (r->fn(r->arg, r->buf, SNAP_CHUNK, &n) != 0 || n > SNAP_CHUNK) {
		r->err = KV_EIO;
		return;
	}
	r->pos = 0;
	r->len = n;
	if (n == 0)
		r->eof = true;
}

/* Read exactly n bytes into dst, hashing them; a short stream is KV_ECORRUPT. */
static void r_bytes(struct snapr *r, void *dst, size_t n)
{
	unsigned char *d = dst;
	while (n > 0 && r->err == 0) {
		if (r->pos == r->len) {
			r_fill(r);
			if (r->eof && r->err == 0)
				r->err = KV_ECORRUPT;
			continue;
		}
		size_t k = r->len - r->pos;
		if (k > n)
			k = n;
		memcpy(d, r->buf + r->pos, k);
		r->h = fnv(r->h, d, k);
		r->pos += k;
		d += k;
		n -= k;
	}
}

static uint64_t r_u64(struct snapr *r)
{
	unsigned char t[8] = {0};
	r_bytes(r, t, 8);
	return r->err ? 0 : get_be64(t);
}

static uint32_t r_u32(struct snapr *r)
{
	unsigned char t[4] = {0};
	r_bytes(r, t, 4);
	return r->err ? 0 : get_be32(t);
}

/* Read n bytes into a new allocation that grows only as bytes arrive. */
static unsigned char *r_alloc(struct snapr *r, size_t n)
{
	size_t cap = n < SNAP_CHUNK ? (n ? n : 1) : SNAP_CHUNK, got = 0;
	unsigned char *p = malloc(cap);
	if (!p) {
		r->err = KV_ENOMEM;
		return NULL;
	}
	while (got < n && r->err == 0) {
		if (got == cap) {
			size_t nc = cap * 2 < n ? cap * 2 : n;
			unsigned char *q = realloc(p, nc);
			if (!q) {
				r->err = KV_ENOMEM;
				break;
			}
			p = q;
			cap = nc;
		}
		size_t k = cap - got;
		r_bytes(r, p + got, k);
		got += k;
	}
	if (r->err) {
		free(p);
		return NULL;
	}
	return p;
}

static int restore_keys(struct snapr *r, const struct kv_options *o, struct kv_state *st)
{
	uint64_t n_keys = r_u64(r);
	unsigned char *kbuf = malloc(o->max_key_bytes);
	struct node *last = NULL;
	if (!kbuf)
		return KV_ENOMEM;
	for (uint64_t i = 0; i < n_keys && r->err == 0; i++) {
		uint32_t klen = r_u32(r);
		if (r->err == 0 && (klen == 0 || klen > o->max_key_bytes))
			r->err = KV_ECORRUPT;
		r_bytes(r, kbuf, klen);
		uint32_t vlen = r_u32(r);
		if (r->err == 0 && vlen > o->max_value_bytes)
			r->err = KV_ECORRUPT;
		if (r->err)
			break;
		if (last && key_cmp(node_key(last), last->key_len, kbuf, klen) >= 0) {
			r->err = KV_ECORRUPT; /* keys must strictly increase */
			break;
		}
		struct node *nd = malloc(sizeof(*nd) + klen + vlen);
		if (!nd) {
			r->err = KV_ENOMEM;
			break;
		}
		memset(nd, 0, sizeof(*nd));
		nd->key_len = klen;
		nd->val_len = vlen;
		memcpy(nd->data, kbuf, klen);
		r_bytes(r, nd->data + klen, vlen);
		nd->create_rev = r_u64(r);
		nd->mod_rev = r_u64(r);
		nd->version = r_u64(r);
		if (r->err == 0 && (nd->create_rev == 0 || nd->create_rev > nd->mod_rev ||
				    nd->mod_rev > st->revision || nd->version == 0))
			r->err = KV_ECORRUPT;
		if (r->err) {
			free(nd);
			break;
		}
		st->root = tree_insert(st->root, nd);
		st->data_bytes += (uint64_t)klen + vlen;
		last = nd;
	}
	free(kbuf);
	return r->err;
}

static int restore_sessions(struct snapr *r, const struct kv_options *o, struct kv_state *st,
			    bool v1)
{
	uint64_t n = r_u64(r);
	uint64_t prev_index = 0, prev_ms = 0;
	if (r->err == 0 && n > o->max_sessions)
		r->err = KV_ECORRUPT;
	for (uint64_t i = 0; i < n && r->err == 0; i++) {
		uint64_t id = r_u64(r), seq = r_u64(r), idx = r_u64(r);
		uint64_t ms = v1 ? 0 : r_u64(r);
		uint32_t rlen = r_u32(r);
		if (r->err)
			break;
		/* LRU order: last use strictly increases (index) or stays (clock), never after
		 * the applied index or the clock, and no session the clock has expired. */
		if (id == 0 || session_find(st, id) || idx <= prev_index || idx > st->applied ||
		    ms < prev_ms || ms > st->clock_ms || st->clock_ms - ms > o->session_ttl_ms) {
			r->err = KV_ECORRUPT;
			break;
		}
		prev_index = idx;
		prev_ms = ms;
		unsigned char *res = r_alloc(r, rlen);
		if (!res)
			break;
		if (result_validate(res, rlen) != 0) {
			free(res);
			r->err = KV_ECORRUPT;
			break;
		}
		struct session *se = calloc(1, sizeof(*se));
		if (!se) {
			free(res);
			r->err = KV_ENOMEM;
			break;
		}
		se->client_id = id;
		se->last_seq = seq;
		se->last_index = idx;
		se->last_ms = ms;
		se->result = res;
		se->result_len = rlen;
		if (session_add(st, se) != 0) {
			free(res);
			free(se);
			r->err = KV_ENOMEM;
		}
	}
	return r->err;
}

int kv_snapshot_restore(struct kv_store *s, kv_read_fn fn, void *arg)
{
	struct snapr *r = malloc(sizeof(*r));
	struct kv_state st = {0};
	if (!r)
		return KV_ENOMEM;
	r->fn = fn;
	r->arg = arg;
	r->h = FNV_OFFSET;
	r->err = 0;
	r->pos = r->len = 0;
	r->eof = false;

	unsigned char hdr[5] = {0};
	r_bytes(r, hdr, 5);
	bool v1 = hdr[4] == SNAP_VERSION_V1;
	if (r->err == 0 && (memcmp(hdr, SNAP_MAGIC, 4) != 0 || (hdr[4] != SNAP_VERSION && !v1)))
		r->err = KV_ECORRUPT;
	st.applied = r_u64(r);
	st.revision = r_u64(r);
	st.clock_ms = v1 ? 0 : r_u64(r);
	if (r->err == 0)
		restore_keys(r, &s->opts, &st);
	if (r->err == 0)
		restore_sessions(r, &s->opts, &st, v1);
	uint64_t want = r->h;
	uint64_t sum = r_u64(r);
	if (r->err == 0 && sum != want)
		r->err = KV_ECORRUPT;
	if (r->err == 0 && r->pos == r->len) {
		r_fill(r);
		if (r->err == 0 && !r->eof)
			r->err = KV_ECORRUPT; /* bytes after the checksum */
	} else if (r->err == 0) {
		r->err = KV_ECORRUPT;
	}
	int rv = r->err;
	free(r);
	if (rv != 0) {
		state_free(&st);
		return rv;
	}
	state_free(&s->st);
	s->st = st;
	return 0;
}
