/* Unit tests of the key-value state machine (server/kv/): operations and their etcd
 * revision bookkeeping, ranges, txns, limits, sessions, codecs, snapshots, and a randomized
 * comparison with a simple reference model. */
#include "common/prng.h"
#include "common/byteorder.h"
#include "cunit_main.h"
#include "server/kv/kv.h"

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define B(s)      ((struct kv_bytes){(const unsigned char *)(s), strlen(s)})
#define BN(p, n)  ((struct kv_bytes){(const unsigned char *)(p), (n)})
#define FROM_KEY  ((struct kv_bytes){(const unsigned char *)"", 1})
#define NO_END    ((struct kv_bytes){NULL, 0})
#define BEQ(b, s) ((b).len == strlen(s) && ((b).len == 0 || memcmp((b).p, (s), (b).len) == 0))

/* The fixture: one store with default options and the next log index to apply. */
static struct {
	struct kv_store *s;
	uint64_t index;
} fx;

static void setup(void)
{
	fx.s = kv_store_new(NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx.s);
	fx.index = 0;
}

static void teardown(void)
{
	kv_store_free(fx.s);
	memset(&fx, 0, sizeof(fx));
}

/* ---- helpers -------------------------------------------------------------------------- */

/* Encode c, apply it at the next index of s, decode the result into *res (if non-NULL).
 * Returns kv_apply's status. */
static int apply_on(struct kv_store *s, uint64_t *index, const struct kv_cmd *c,
		    struct kv_result *res)
{
	unsigned char *enc = NULL, *out = NULL;
	size_t enc_len = 0, out_len = 0;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(c, &enc, &enc_len), 0);
	int st = kv_apply(s, ++*index, enc, enc_len, &out, &out_len);
	struct kv_result tmp;
	CU_ASSERT_EQUAL_FATAL(kv_result_decode(out, out_len, res ? res : &tmp), 0);
	CU_ASSERT_EQUAL((res ? res : &tmp)->status, st);
	if (!res)
		kv_result_free(&tmp);
	free(enc);
	free(out);
	return st;
}

static int apply(const struct kv_cmd *c, struct kv_result *res)
{
	return apply_on(fx.s, &fx.index, c, res);
}

static struct kv_cmd op_cmd(enum kv_op_type t, struct kv_bytes key, struct kv_bytes value,
			    struct kv_bytes end)
{
	struct kv_cmd c = {0};
	c.type = t;
	c.op.type = t;
	c.op.key = key;
	c.op.value = value;
	c.op.range_end = end;
	return c;
}

static int put(const char *k, const char *v)
{
	struct kv_cmd c = op_cmd(KV_OP_PUT, B(k), B(v), NO_END);
	return apply(&c, NULL);
}

static uint64_t del(struct kv_bytes k, struct kv_bytes end)
{
	struct kv_cmd c = op_cmd(KV_OP_DELETE, k, NO_END, end);
	struct kv_result r;
	CU_ASSERT_EQUAL(apply(&c, &r), 0);
	uint64_t d = r.deleted;
	kv_result_free(&r);
	return d;
}

static int append(const char *k, struct kv_bytes suffix)
{
	struct kv_cmd c = op_cmd(KV_OP_APPEND, B(k), suffix, NO_END);
	return apply(&c, NULL);
}

/* Check key k's value and metadata (value NULL: k must be absent). */
static void expect_kv_in(const struct kv_store *s, const char *k, const char *value,
			 uint64_t create, uint64_t mod, uint64_t version)
{
	struct kv_range_result r;
	CU_ASSERT_EQUAL_FATAL(kv_get(s, k, strlen(k), &r), 0);
	if (!value) {
		CU_ASSERT_EQUAL(r.n, 0);
		CU_ASSERT_EQUAL(r.count, 0);
	} else {
		CU_ASSERT_EQUAL_FATAL(r.n, 1);
		CU_ASSERT(BEQ(r.kvs[0].key, k));
		CU_ASSERT(BEQ(r.kvs[0].value, value));
		CU_ASSERT_EQUAL(r.kvs[0].create_revision, create);
		CU_ASSERT_EQUAL(r.kvs[0].mod_revision, mod);
		CU_ASSERT_EQUAL(r.kvs[0].version, version);
	}
	kv_range_result_free(&r);
}

static void expect_kv(const char *k, const char *value, uint64_t create, uint64_t mod,
		      uint64_t version)
{
	expect_kv_in(fx.s, k, value, create, mod, version);
}

/* Range read; the keys returned, joined by ',' into buf. */
static void range_keys(struct kv_bytes key, struct kv_bytes end, uint64_t limit, char *buf,
		       struct kv_range_result *out)
{
	struct kv_op op = {.type = KV_OP_GET, .key = key, .range_end = end, .limit = limit};
	CU_ASSERT_EQUAL_FATAL(kv_range(fx.s, &op, out), 0);
	buf[0] = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (i)
			strcat(buf, ",");
		strncat(buf, (const char *)out->kvs[i].key.p, out->kvs[i].key.len);
	}
}

/* A growable in-memory stream for snapshots; reads come in pieces of at most `chunk`. */
struct mem {
	unsigned char *p;
	size_t len, cap, pos, chunk;
	int fail; /* non-zero: the callback fails */
};

static int mem_write(void *arg, const void *d, size_t n)
{
	struct mem *m = arg;
	if (m->fail)
		return -1;
	CU_ASSERT(n > 0 && n <= 64 * 1024);
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->p = realloc(m->p, m->cap);
	}
	memcpy(m->p + m->len, d, n);
	m->len += n;
	return 0;
}

static int mem_read(void *arg, void *buf, size_t cap, size_t *n)
{
	struct mem *m = arg;
	if (m->fail)
		return -1;
	size_t k = m->len - m->pos;
	if (k > cap)
		k = cap;
	if (m->chunk && k > m->chunk)
		k = m->chunk;
	if (k)
		memcpy(buf, m->p + m->pos, k);
	m->pos += k;
	*n = k;
	return 0;
}

static struct mem snap(const struct kv_store *s)
{
	struct mem m = {0};
	CU_ASSERT_EQUAL(kv_snapshot_write(s, mem_write, &m), 0);
	return m;
}

static int restore(struct kv_store *s, const unsigned char *p, size_t len, size_t chunk)
{
	struct mem m = {(unsigned char *)p, len, len, 0, chunk, 0};
	return kv_snapshot_restore(s, mem_read, &m);
}

static int same_snapshot(const struct kv_store *a, const struct kv_store *b)
{
	struct mem x = snap(a), y = snap(b);
	int same = x.len == y.len && memcmp(x.p, y.p, x.len) == 0;
	free(x.p);
	free(y.p);
	return same;
}

/* ---- operations and revisions --------------------------------------------------------- */

static void test_put_get_delete_revisions(void)
{
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 0);
	CU_ASSERT_EQUAL(put("a", "1"), 0);
	expect_kv("a", "1", 1, 1, 1);
	CU_ASSERT_EQUAL(put("a", "22"), 0);
	expect_kv("a", "22", 1, 2, 2);
	CU_ASSERT_EQUAL(put("b", ""), 0); /* an empty value is a value */
	expect_kv("b", "", 3, 3, 1);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 3);
	CU_ASSERT_EQUAL(del(B("a"), NO_END), 1);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 4);
	expect_kv("a", NULL, 0, 0, 0);
	/* etcd: deleting nothing does not create a revision. */
	CU_ASSERT_EQUAL(del(B("zz"), NO_END), 0);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 4);
	/* Recreated after deletion: create revision and version start over. */
	CU_ASSERT_EQUAL(put("a", "x"), 0);
	expect_kv("a", "x", 5, 5, 1);
	CU_ASSERT_EQUAL(kv_store_key_count(fx.s), 2);
	CU_ASSERT_EQUAL(kv_store_applied_index(fx.s), fx.index);

	/* The result header carries the revision after the command. */
	struct kv_cmd c = op_cmd(KV_OP_PUT, B("c"), B("v"), NO_END);
	struct kv_result r;
	CU_ASSERT_EQUAL(apply(&c, &r), 0);
	CU_ASSERT_EQUAL(r.revision, 6);
	CU_ASSERT_EQUAL(r.type, KV_OP_PUT);
	kv_result_free(&r);
}

static void test_range(void)
{
	const char *keys[] = {"a", "ab", "abc", "abd", "b", "c", "d\xff", "d\xff\xff"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CU_ASSERT_EQUAL(put(keys[i], keys[i]), 0);
	char buf[256];
	unsigned char pe[16];
	struct kv_range_result r;

	/* Single key. */
	range_keys(B("ab"), NO_END, 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "ab");
	CU_ASSERT_EQUAL(r.count, 1);
	CU_ASSERT(BEQ(r.kvs[0].value, "ab"));
	kv_range_result_free(&r);

	/* Prefix "ab" = [ab, ac). */
	size_t n = kv_prefix_end("ab", 2, pe);
	CU_ASSERT(n == 2 && memcmp(pe, "ac", 2) == 0);
	range_keys(B("ab"), BN(pe, n), 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "ab,abc,abd");
	CU_ASSERT_EQUAL(r.count, 3);
	CU_ASSERT_FALSE(r.more);
	kv_range_result_free(&r);

	/* Prefix with trailing 0xff: "d\xff" -> "e". All-0xff or empty -> from-key "\0". */
	n = kv_prefix_end("d\xff", 2, pe);
	CU_ASSERT(n == 1 && pe[0] == 'e');
	range_keys(B("d"), BN(pe, n), 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "d\xff,d\xff\xff");
	kv_range_result_free(&r);
	n = kv_prefix_end("\xff\xff", 2, pe);
	CU_ASSERT(n == 1 && pe[0] == 0);

	/* From key. */
	range_keys(B("b"), FROM_KEY, 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "b,c,d\xff,d\xff\xff");
	CU_ASSERT_EQUAL(r.count, 4);
	kv_range_result_free(&r);

	/* [abc, c) and an empty range (end <= key). */
	range_keys(B("abc"), B("c"), 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "abc,abd,b");
	kv_range_result_free(&r);
	range_keys(B("c"), B("b"), 0, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(r.count, 0);
	kv_range_result_free(&r);
	range_keys(B("zz"), NO_END, 0, buf, &r);
	CU_ASSERT_EQUAL(r.n, 0);
	kv_range_result_free(&r);

	/* Limit and paging: count is the whole range's, more + next_key continue it. */
	range_keys(BN("\0", 1), FROM_KEY, 3, buf, &r);
	CU_ASSERT_STRING_EQUAL(buf, "a,ab,abc");
	CU_ASSERT_EQUAL(r.count, 8);
	CU_ASSERT_TRUE(r.more);
	CU_ASSERT(r.next_key.len == 4 && memcmp(r.next_key.p, "abc\0", 4) == 0);
	char all[256] = "";
	struct kv_bytes next = BN("\0", 1);
	unsigned char nk[64];
	int pages = 0;
	kv_range_result_free(&r);
	for (;;) {
		range_keys(next, FROM_KEY, 3, buf, &r);
		pages++;
		if (all[0] && buf[0])
			strcat(all, ",");
		strcat(all, buf);
		if (!r.more) {
			kv_range_result_free(&r);
			break;
		}
		memcpy(nk, r.next_key.p, r.next_key.len);
		next = BN(nk, r.next_key.len);
		kv_range_result_free(&r);
	}
	CU_ASSERT_EQUAL(pages, 3);
	CU_ASSERT_STRING_EQUAL(all, "a,ab,abc,abd,b,c,d\xff,d\xff\xff");

	/* count_only and keys_only. */
	struct kv_op op = {
		.type = KV_OP_GET, .key = B("a"), .range_end = B("b"), .count_only = true};
	CU_ASSERT_EQUAL(kv_range(fx.s, &op, &r), 0);
	CU_ASSERT_EQUAL(r.count, 4);
	CU_ASSERT_EQUAL(r.n, 0);
	kv_range_result_free(&r);
	op.count_only = false;
	op.keys_only = true;
	CU_ASSERT_EQUAL(kv_range(fx.s, &op, &r), 0);
	CU_ASSERT_EQUAL(r.n, 4);
	CU_ASSERT_EQUAL(r.kvs[1].value.len, 0);
	CU_ASSERT_EQUAL(r.kvs[1].version, 1);
	kv_range_result_free(&r);
}

static void test_delete_range(void)
{
	CU_ASSERT_EQUAL(put("k1", "x"), 0);
	CU_ASSERT_EQUAL(put("k2", "x"), 0);
	CU_ASSERT_EQUAL(put("k3", "x"), 0);
	CU_ASSERT_EQUAL(put("l", "x"), 0);
	unsigned char pe[8];
	size_t n = kv_prefix_end("k", 1, pe);
	CU_ASSERT_EQUAL(del(B("k"), BN(pe, n)), 3); /* one revision for all three */
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 5);
	CU_ASSERT_EQUAL(kv_store_key_count(fx.s), 1);
	CU_ASSERT_EQUAL(del(B("k"), BN(pe, n)), 0);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 5);
	CU_ASSERT_EQUAL(put("k2", "y"), 0);
	expect_kv("k2", "y", 6, 6, 1);
	CU_ASSERT_EQUAL(del(B("a"), FROM_KEY), 2);
	CU_ASSERT_EQUAL(kv_store_key_count(fx.s), 0);
}

static void test_append(void)
{
	CU_ASSERT_EQUAL(append("a", B("x")), 0); /* absent: created */
	expect_kv("a", "x", 1, 1, 1);
	CU_ASSERT_EQUAL(append("a", B("yz")), 0);
	expect_kv("a", "xyz", 1, 2, 2);
	CU_ASSERT_EQUAL(append("a", B("")), 0); /* a modification even if empty, as a put */
	expect_kv("a", "xyz", 1, 3, 3);

	/* Growing beyond max_value_bytes is refused, nothing changes. */
	size_t max = 1024 * 1024;
	unsigned char *big = calloc(1, max);
	CU_ASSERT_EQUAL(append("a", BN(big, max - 3)), 0);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 4);
	CU_ASSERT_EQUAL(append("a", BN(big, 1)), KV_EVALUESIZE);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 4);
	struct kv_range_result r;
	CU_ASSERT_EQUAL(kv_get(fx.s, "a", 1, &r), 0);
	CU_ASSERT_EQUAL(r.kvs[0].value.len, max);
	CU_ASSERT_EQUAL(r.kvs[0].version, 4);
	kv_range_result_free(&r);
	free(big);
}

/* ---- txn ------------------------------------------------------------------------------ */

static struct kv_compare cmp(enum kv_cmp_target t, enum kv_cmp_result r, const char *k,
			     const char *v, uint64_t num)
{
	struct kv_compare c = {t, r, B(k), v ? B(v) : NO_END, num};
	return c;
}

/* Run a txn of one compare; success = put k:=s, failure = put k:=f. Returns succeeded. */
static int txn1(struct kv_compare c)
{
	struct kv_op s = {.type = KV_OP_PUT, .key = B("out"), .value = B("s")};
	struct kv_op f = {.type = KV_OP_PUT, .key = B("out"), .value = B("f")};
	struct kv_cmd t = {.type = KV_OP_TXN, .compares = &c, .n_compares = 1};
	t.success = &s;
	t.n_success = 1;
	t.failure = &f;
	t.n_failure = 1;
	struct kv_result r;
	CU_ASSERT_EQUAL(apply(&t, &r), 0);
	int ok = r.succeeded;
	CU_ASSERT_EQUAL(r.n_responses, 1);
	kv_result_free(&r);
	struct kv_range_result g;
	CU_ASSERT_EQUAL(kv_get(fx.s, "out", 3, &g), 0);
	CU_ASSERT(g.n == 1 && BEQ(g.kvs[0].value, ok ? "s" : "f"));
	kv_range_result_free(&g);
	return ok;
}

static void test_txn_compares(void)
{
	CU_ASSERT_EQUAL(put("k", "m"), 0); /* rev 1 */
	CU_ASSERT_EQUAL(put("k", "m"), 0); /* rev 2: version 2, create 1, mod 2 */
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VALUE, KV_CMP_EQ, "k", "m", 0)));
	CU_ASSERT_FALSE(txn1(cmp(KV_CMP_VALUE, KV_CMP_EQ, "k", "n", 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VALUE, KV_CMP_LT, "k", "n", 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VALUE, KV_CMP_GT, "k", "l", 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VALUE, KV_CMP_GT, "k", "", 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VALUE, KV_CMP_NE, "k", "mm", 0)));
	/* etcd: a value compare on a missing key is false, whatever the operator. */
	CU_ASSERT_FALSE(txn1(cmp(KV_CMP_VALUE, KV_CMP_NE, "nokey", "x", 0)));
	CU_ASSERT_FALSE(txn1(cmp(KV_CMP_VALUE, KV_CMP_EQ, "nokey", "", 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VERSION, KV_CMP_EQ, "k", NULL, 2)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VERSION, KV_CMP_LT, "k", NULL, 3)));
	CU_ASSERT_FALSE(txn1(cmp(KV_CMP_VERSION, KV_CMP_GT, "k", NULL, 2)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_CREATE, KV_CMP_EQ, "k", NULL, 1)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_MOD, KV_CMP_EQ, "k", NULL, 2)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_MOD, KV_CMP_NE, "k", NULL, 1)));
	/* Missing key: version / create / mod are 0 (etcd's "create_revision = 0" idiom). */
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_CREATE, KV_CMP_EQ, "nokey", NULL, 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_VERSION, KV_CMP_EQ, "nokey", NULL, 0)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_EXISTS, KV_CMP_EQ, "k", NULL, 1)));
	CU_ASSERT_TRUE(txn1(cmp(KV_CMP_EXISTS, KV_CMP_EQ, "nokey", NULL, 0)));
	CU_ASSERT_FALSE(txn1(cmp(KV_CMP_EXISTS, KV_CMP_NE, "k", NULL, 1)));
	/* out was written by every txn: its mod revision is the latest. */
	expect_kv("out", "f", 3, kv_store_revision(fx.s), kv_store_revision(fx.s) - 2);
}

static void test_txn_branches(void)
{
	CU_ASSERT_EQUAL(put("a", "1"), 0);
	CU_ASSERT_EQUAL(put("b", "2"), 0);
	/* Success: put c, append a, delete b, get [a, z) — one revision, the get sees all. */
	struct kv_compare c[2] = {cmp(KV_CMP_VALUE, KV_CMP_EQ, "a", "1", 0),
				  cmp(KV_CMP_EXISTS, KV_CMP_EQ, "b", NULL, 1)};
	struct kv_op ops[4] = {
		{.type = KV_OP_PUT, .key = B("c"), .value = B("3")},
		{.type = KV_OP_APPEND, .key = B("a"), .value = B("+")},
		{.type = KV_OP_DELETE, .key = B("b")},
		{.type = KV_OP_GET, .key = B("a"), .range_end = B("z")},
	};
	struct kv_op fail_ops[1] = {{.type = KV_OP_GET, .key = B("a")}};
	struct kv_cmd t = {.type = KV_OP_TXN,
			   .compares = c,
			   .n_compares = 2,
			   .success = ops,
			   .n_success = 4,
			   .failure = fail_ops,
			   .n_failure = 1};
	struct kv_result r;
	CU_ASSERT_EQUAL(apply(&t, &r), 0);
	CU_ASSERT_TRUE(r.succeeded);
	CU_ASSERT_EQUAL(r.revision, 3);
	CU_ASSERT_EQUAL_FATAL(r.n_responses, 4);
	CU_ASSERT_EQUAL(r.responses[0].type, KV_OP_PUT);
	CU_ASSERT_EQUAL(r.responses[1].type, KV_OP_APPEND);
	CU_ASSERT_EQUAL(r.responses[2].deleted, 1);
	struct kv_range_result *g = &r.responses[3].range;
	CU_ASSERT_EQUAL_FATAL(g->n, 2);
	CU_ASSERT(BEQ(g->kvs[0].key, "a") && BEQ(g->kvs[0].value, "1+"));
	CU_ASSERT_EQUAL(g->kvs[0].mod_revision, 3);
	CU_ASSERT_EQUAL(g->kvs[0].version, 2);
	CU_ASSERT(BEQ(g->kvs[1].key, "c") && g->kvs[1].create_revision == 3);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 3);

	/* Failure branch with only a get: no revision. */
	CU_ASSERT_EQUAL(apply(&t, &r), 0);
	CU_ASSERT_FALSE(r.succeeded);
	CU_ASSERT_EQUAL(r.revision, 3);
	CU_ASSERT_EQUAL_FATAL(r.n_responses, 1);
	CU_ASSERT_EQUAL(r.responses[0].range.n, 1);
	CU_ASSERT(BEQ(r.responses[0].range.kvs[0].value, "1+"));
	kv_result_free(&r);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 3);

	/* An empty txn holds, does nothing. */
	struct kv_cmd e = {.type = KV_OP_TXN};
	CU_ASSERT_EQUAL(apply(&e, &r), 0);
	CU_ASSERT_TRUE(r.succeeded);
	CU_ASSERT_EQUAL(r.n_responses, 0);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 3);

	/* Atomic: put x, then an append that would exceed the limit -> nothing at all. */
	size_t max = 1024 * 1024;
	unsigned char *big = calloc(1, max);
	struct kv_op bad[3] = {
		{.type = KV_OP_PUT, .key = B("x"), .value = B("1")},
		{.type = KV_OP_PUT, .key = B("c"), .value = BN(big, max)},
		{.type = KV_OP_APPEND, .key = B("c"), .value = B("!")},
	};
	struct kv_cmd tb = {.type = KV_OP_TXN, .success = bad, .n_success = 3};
	CU_ASSERT_EQUAL(apply(&tb, &r), KV_EVALUESIZE);
	kv_result_free(&r);
	expect_kv("x", NULL, 0, 0, 0);
	expect_kv("c", "3", 3, 3, 1);
	/* ...but a delete before the append resets the base length. */
	struct kv_op okops[3] = {
		{.type = KV_OP_PUT, .key = B("c"), .value = BN(big, max)},
		{.type = KV_OP_DELETE, .key = B("a"), .range_end = B("d")},
		{.type = KV_OP_APPEND, .key = B("c"), .value = B("!")},
	};
	struct kv_cmd tok = {.type = KV_OP_TXN, .success = okops, .n_success = 3};
	CU_ASSERT_EQUAL(apply(&tok, NULL), 0);
	expect_kv("c", "!", 4, 4, 1);
	free(big);
}

/* ---- limits --------------------------------------------------------------------------- */

static void test_limits(void)
{
	unsigned char *big = calloc(1, 2 * 1024 * 1024);
	struct kv_cmd c = op_cmd(KV_OP_PUT, BN("", 0), B("v"), NO_END);
	CU_ASSERT_EQUAL(apply(&c, NULL), KV_EEMPTYKEY);
	c = op_cmd(KV_OP_PUT, BN(big, 4097), B("v"), NO_END);
	CU_ASSERT_EQUAL(apply(&c, NULL), KV_EKEYSIZE);
	c = op_cmd(KV_OP_PUT, BN("\1", 1), BN(big, 1024 * 1024 + 1), NO_END);
	CU_ASSERT_EQUAL(apply(&c, NULL), KV_EVALUESIZE);
	c = op_cmd(KV_OP_PUT, BN(big + 1, 4096), BN(big, 1024 * 1024), NO_END);
	CU_ASSERT_EQUAL(apply(&c, NULL), 0); /* both at the limit: fine */
	c = op_cmd(KV_OP_DELETE, BN("", 0), NO_END, NO_END);
	CU_ASSERT_EQUAL(apply(&c, NULL), KV_EEMPTYKEY);
	CU_ASSERT_EQUAL(kv_cmd_check(&(struct kv_options){4096, 1 << 20, 128, 10000, 1, 1}, &c),
			KV_EEMPTYKEY);

	struct kv_op ops[129];
	for (int i = 0; i < 129; i++)
		ops[i] = (struct kv_op){.type = KV_OP_PUT, .key = B("k"), .value = B("v")};
	struct kv_cmd t = {.type = KV_OP_TXN, .success = ops, .n_success = 129};
	CU_ASSERT_EQUAL(apply(&t, NULL), KV_ETOOMANYOPS);
	t.n_success = 128;
	CU_ASSERT_EQUAL(apply(&t, NULL), 0);
	expect_kv("k", "v", 2, 2, 128); /* sequential puts in one txn: version counts each */

	struct kv_op g = {.type = KV_OP_GET, .key = B("k"), .limit = 10001};
	struct kv_range_result r;
	CU_ASSERT_EQUAL(kv_range(fx.s, &g, &r), KV_ELIMIT);
	t = (struct kv_cmd){.type = KV_OP_TXN, .success = &g, .n_success = 1};
	CU_ASSERT_EQUAL(apply(&t, NULL), KV_ELIMIT);
	g.limit = 10000;
	CU_ASSERT_EQUAL(kv_range(fx.s, &g, &r), 0);
	kv_range_result_free(&r);
	g.key = BN("", 0);
	CU_ASSERT_EQUAL(kv_range(fx.s, &g, &r), KV_EEMPTYKEY);
	g.key = BN(big, 4097); /* a paging key may be one byte longer than a key */
	CU_ASSERT_EQUAL(kv_range(fx.s, &g, &r), 0);
	kv_range_result_free(&r);
	g.key = BN(big, 4098);
	CU_ASSERT_EQUAL(kv_range(fx.s, &g, &r), KV_EKEYSIZE);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 2); /* refusals never create revisions */
	free(big);

	struct kv_options bad;
	kv_options_default(&bad);
	bad.max_sessions = 0;
	CU_ASSERT_PTR_NULL(kv_store_new(&bad));
	CU_ASSERT_STRING_EQUAL(kv_strerror(KV_ESTALE), "stale sequence number");
	CU_ASSERT_STRING_EQUAL(kv_strerror(0), "ok");
}

/* ---- malformed commands, apply index ------------------------------------------------- */

static void test_malformed_and_index(void)
{
	unsigned char *out = NULL;
	size_t out_len = 0;
	CU_ASSERT_EQUAL(put("a", "1"), 0);
	const unsigned char junk[] = {9, 9, 9};
	CU_ASSERT_EQUAL(kv_apply(fx.s, ++fx.index, junk, sizeof(junk), &out, &out_len),
			KV_EMALFORMED);
	struct kv_result r;
	CU_ASSERT_EQUAL(kv_result_decode(out, out_len, &r), 0);
	CU_ASSERT_EQUAL(r.status, KV_EMALFORMED);
	CU_ASSERT_EQUAL(r.revision, 1);
	kv_result_free(&r);
	free(out);
	CU_ASSERT_EQUAL(kv_store_applied_index(fx.s), fx.index);
	CU_ASSERT_EQUAL(kv_apply(fx.s, fx.index + 1, NULL, 0, NULL, NULL), KV_EMALFORMED);
	fx.index++;
	/* Indexes must increase; gaps are fine. */
	CU_ASSERT_EQUAL(kv_apply(fx.s, fx.index, junk, sizeof(junk), NULL, NULL), KV_EINDEX);
	CU_ASSERT_EQUAL(kv_advance(fx.s, fx.index), KV_EINDEX);
	CU_ASSERT_EQUAL(kv_advance(fx.s, fx.index + 10), 0);
	fx.index += 10;
	CU_ASSERT_EQUAL(put("a", "2"), 0);
	CU_ASSERT_EQUAL(kv_store_applied_index(fx.s), fx.index);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 2);
}

static void test_cmd_decode_rejects(void)
{
	struct kv_compare c[2] = {cmp(KV_CMP_VALUE, KV_CMP_EQ, "a", "1", 0),
				  cmp(KV_CMP_MOD, KV_CMP_LT, "b", NULL, 7)};
	struct kv_op s[2] = {{.type = KV_OP_PUT, .key = B("c"), .value = B("3")},
			     {.type = KV_OP_GET,
			      .key = B("a"),
			      .range_end = B("z"),
			      .limit = 5,
			      .keys_only = true}};
	struct kv_op f[1] = {{.type = KV_OP_DELETE, .key = B("a"), .range_end = FROM_KEY}};
	struct kv_cmd t = {.client_id = 7,
			   .sequence = 9,
			   .type = KV_OP_TXN,
			   .compares = c,
			   .n_compares = 2,
			   .success = s,
			   .n_success = 2,
			   .failure = f,
			   .n_failure = 1};
	unsigned char *enc;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&t, &enc, &len), 0);

	struct kv_cmd d;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(enc, len, &d), 0);
	CU_ASSERT(d.client_id == 7 && d.sequence == 9 && d.n_compares == 2 && d.n_success == 2 &&
		  d.n_failure == 1);
	CU_ASSERT(BEQ(d.compares[0].value, "1") && d.compares[1].number == 7);
	CU_ASSERT(d.success[1].limit == 5 && d.success[1].keys_only && !d.success[1].count_only);
	CU_ASSERT(d.failure[0].range_end.len == 1);
	unsigned char *enc2;
	size_t len2;
	CU_ASSERT_EQUAL(kv_cmd_encode(&d, &enc2, &len2), 0); /* re-encodes to the same bytes */
	CU_ASSERT(len2 == len && memcmp(enc, enc2, len) == 0);
	free(enc2);
	kv_cmd_free(&d);

	/* Every truncation, a trailing byte, a wrong version: KV_EMALFORMED. */
	for (size_t i = 0; i < len; i++) {
		unsigned char *p = malloc(i ? i : 1);
		memcpy(p, enc, i);
		CU_ASSERT_EQUAL(kv_cmd_decode(p, i, &d), KV_EMALFORMED);
		free(p);
	}
	unsigned char *p = malloc(len + 1);
	memcpy(p, enc, len);
	p[len] = 0;
	CU_ASSERT_EQUAL(kv_cmd_decode(p, len + 1, &d), KV_EMALFORMED);
	p[0] = 3;
	CU_ASSERT_EQUAL(kv_cmd_decode(p, len, &d), KV_EMALFORMED);
	p[0] = 0;
	CU_ASSERT_EQUAL(kv_cmd_decode(p, len, &d), KV_EMALFORMED);
	free(p);

	/* Random flips: decode either fails cleanly or gives a command that re-encodes to the
	 * very same bytes (the format has a single encoding per command). */
	struct prng rng;
	prng_seed(&rng, 4242);
	for (int i = 0; i < 3000; i++) {
		p = malloc(len);
		memcpy(p, enc, len);
		int flips = 1 + (int)prng_below(&rng, 3);
		for (int k = 0; k < flips; k++)
			p[prng_below(&rng, len)] ^= (unsigned char)(1u << prng_below(&rng, 8));
		int rv = kv_cmd_decode(p, len, &d);
		CU_ASSERT(rv == 0 || rv == KV_EMALFORMED);
		if (rv == 0 && p[0] == enc[0]) { /* (a version 1 command re-encodes as 2) */
			CU_ASSERT_EQUAL(kv_cmd_encode(&d, &enc2, &len2), 0);
			CU_ASSERT(len2 == len && memcmp(p, enc2, len) == 0);
			free(enc2);
		}
		if (rv == 0)
			kv_cmd_free(&d);
		free(p);
	}
	/* Huge counts with few bytes must not allocate or read past the end. */
	unsigned char hdr[] = {1, 0, 0, 0, 0, 0, 0, 0,    0,    0,    0,
			       0, 0, 0, 0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff};
	CU_ASSERT_EQUAL(kv_cmd_decode(hdr, sizeof(hdr), &d), KV_EMALFORMED);
	free(enc);

	/* The encoder refuses shapes it cannot express. */
	struct kv_cmd g = op_cmd(KV_OP_GET, B("a"), NO_END, NO_END);
	CU_ASSERT_EQUAL(kv_cmd_encode(&g, &enc, &len), KV_EINVAL);
	struct kv_compare bc = cmp(KV_CMP_EXISTS, KV_CMP_LT, "a", NULL, 0);
	struct kv_cmd tb = {.type = KV_OP_TXN, .compares = &bc, .n_compares = 1};
	CU_ASSERT_EQUAL(kv_cmd_encode(&tb, &enc, &len), KV_EINVAL);

	/* Results: truncations never decode. */
	struct kv_cmd rt = {.type = KV_OP_TXN, .success = s, .n_success = 2};
	CU_ASSERT_EQUAL(put("a", "x"), 0);
	CU_ASSERT_EQUAL(kv_cmd_encode(&rt, &enc, &len), 0);
	unsigned char *out;
	size_t out_len;
	CU_ASSERT_EQUAL(kv_apply(fx.s, ++fx.index, enc, len, &out, &out_len), 0);
	struct kv_result r;
	for (size_t i = 0; i < out_len; i++)
		CU_ASSERT_EQUAL(kv_result_decode(out, i, &r), KV_EMALFORMED);
	CU_ASSERT_EQUAL(kv_result_decode(out, out_len, &r), 0);
	kv_result_free(&r);
	free(out);
	free(enc);
}

/* ---- sessions ------------------------------------------------------------------------- */

/* A put under write id (client, seq) proposed at leader time `ms` (0: none). */
static int put_st(struct kv_store *s, uint64_t *index, uint64_t client, uint64_t seq, uint64_t ms,
		  const char *k, const char *v, struct kv_result *r)
{
	struct kv_cmd c = op_cmd(KV_OP_PUT, B(k), B(v), NO_END);
	c.client_id = client;
	c.sequence = seq;
	c.time_ms = ms;
	return apply_on(s, index, &c, r);
}

static int put_s(struct kv_store *s, uint64_t *index, uint64_t client, uint64_t seq, const char *k,
		 const char *v, struct kv_result *r)
{
	return put_st(s, index, client, seq, 0, k, v, r);
}

static void test_dedup(void)
{
	struct kv_result r;
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 1, "a", "1", &r), 0);
	CU_ASSERT_EQUAL(r.revision, 1);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(put("b", "x"), 0);
	CU_ASSERT_EQUAL(put("a", "other"), 0);
	/* The retry returns the first result (revision 1) and does not write again. */
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 1, "a", "1", &r), 0);
	CU_ASSERT_EQUAL(r.revision, 1);
	kv_result_free(&r);
	expect_kv("a", "other", 1, 3, 2);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), 3);
	/* A retry with different content still gets the original answer (same sequence). */
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 1, "zzz", "9", NULL), 0);
	expect_kv("zzz", NULL, 0, 0, 0);
	/* Next sequence applies; an older one is stale. */
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 2, "a", "2", &r), 0);
	CU_ASSERT_EQUAL(r.revision, 4);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 1, "a", "1", &r), KV_ESTALE);
	CU_ASSERT_EQUAL(r.status, KV_ESTALE);
	kv_result_free(&r);
	expect_kv("a", "2", 1, 4, 3);
	/* A refused command is remembered as refused. */
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 3, "", "x", NULL), KV_EEMPTYKEY);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 5, 3, "", "x", NULL), KV_EEMPTYKEY);
	/* client 0: no deduplication, every copy applies. */
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 0, 1, "c", "1", NULL), 0);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 0, 1, "c", "1", NULL), 0);
	expect_kv("c", "1", 5, 6, 2);
	CU_ASSERT_EQUAL(kv_store_session_count(fx.s), 1);

	/* Result == NULL still records the result for later duplicates. */
	struct kv_cmd c = op_cmd(KV_OP_DELETE, B("b"), NO_END, NO_END);
	c.client_id = 6;
	c.sequence = 1;
	unsigned char *enc, *out;
	size_t len, out_len;
	CU_ASSERT_EQUAL(kv_cmd_encode(&c, &enc, &len), 0);
	CU_ASSERT_EQUAL(kv_apply(fx.s, ++fx.index, enc, len, NULL, NULL), 0);
	CU_ASSERT_EQUAL(kv_apply(fx.s, ++fx.index, enc, len, &out, &out_len), 0);
	CU_ASSERT_EQUAL(kv_result_decode(out, out_len, &r), 0);
	CU_ASSERT_EQUAL(r.deleted, 1);
	CU_ASSERT_EQUAL(r.revision, 7);
	kv_result_free(&r);
	free(out);
	free(enc);
}

#define MIN_MS (60 * 1000ULL)
#define T0     1796500000000ULL /* a leader's wall clock, Unix ms */

/* Sessions expire after session_ttl_ms of the log's clock (leaders' stamps), however many
 * entries pass: a client partitioned away for minutes at full load can still retry. */
static void test_session_expiry_by_leader_time(void)
{
	struct kv_options o;
	kv_options_default(&o);
	CU_ASSERT_EQUAL(o.session_ttl_ms, 10 * MIN_MS);
	struct kv_store *s = kv_store_new(&o);
	uint64_t idx = 0;
	struct kv_result r;

	CU_ASSERT_EQUAL(put_st(s, &idx, 1, 1, T0, "a", "1", NULL), 0);
	/* 500k other writes within 9 minutes: far more entries than any fixed count... */
	for (uint64_t i = 0; i < 500000; i++) {
		struct kv_cmd c = op_cmd(KV_OP_PUT, B("other"), B("x"), NO_END);
		c.time_ms = T0 + i / 1000;
		CU_ASSERT_EQUAL_FATAL(apply_on(s, &idx, &c, NULL), 0);
	}
	CU_ASSERT_EQUAL(put_st(s, &idx, 2, 1, T0 + 9 * MIN_MS, "b", "1", NULL), 0);
	/* ...and the retry 9 minutes later is still deduplicated (revision 1, not applied). */
	CU_ASSERT_EQUAL(put_st(s, &idx, 1, 1, T0 + 9 * MIN_MS, "a", "1", &r), 0);
	CU_ASSERT_EQUAL(r.revision, 1);
	kv_result_free(&r);
	expect_kv_in(s, "a", "1", 1, 1, 1);

	/* Used at T0+9min; alive at exactly 10 minutes after that, gone 1 ms later. */
	CU_ASSERT_EQUAL(put_st(s, &idx, 2, 2, T0 + 19 * MIN_MS, "b", "2", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 2);
	CU_ASSERT_EQUAL(put_st(s, &idx, 2, 3, T0 + 19 * MIN_MS + 1, "b", "3", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1); /* client 1 expired, client 2 alive */
	/* The expired client's retry is refused, not applied twice: its session is unknown. */
	uint64_t rev = kv_store_revision(s);
	CU_ASSERT_EQUAL(put_st(s, &idx, 1, 2, T0 + 19 * MIN_MS + 2, "a", "2", &r), KV_ESESSION);
	CU_ASSERT_EQUAL(r.status, KV_ESESSION);
	CU_ASSERT_EQUAL(r.revision, rev);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(kv_store_revision(s), rev);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1); /* nothing recorded for it */
	/* A new session (sequence 1) applies. */
	CU_ASSERT_EQUAL(put_st(s, &idx, 3, 1, T0 + 19 * MIN_MS + 3, "a", "3", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_revision(s), rev + 1);
	kv_store_free(s);
}

/* The log clock never goes back (a new leader whose wall clock is behind), entries without a
 * time do not move it, and no-op entries expire nothing. */
static void test_session_clock_rules(void)
{
	struct kv_options o;
	kv_options_default(&o);
	o.session_ttl_ms = 1000;
	struct kv_store *s = kv_store_new(&o);
	uint64_t idx = 0;
	/* No stamps yet: sessions live however many entries pass. */
	CU_ASSERT_EQUAL(put_s(s, &idx, 1, 1, "a", "1", NULL), 0);
	CU_ASSERT_EQUAL(kv_advance(s, 1000000), 0);
	idx = 1000000;
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1);
	/* The first stamp counts as a use of every session, not as 50 years of idleness. */
	CU_ASSERT_EQUAL(put_st(s, &idx, 2, 1, T0, "b", "1", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 2);
	/* A leader 10 s behind: the clock stays; client 1 is not expired by it... */
	CU_ASSERT_EQUAL(put_st(s, &idx, 3, 1, T0 - 10000, "c", "1", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 3);
	/* ...and the sessions it touched are as old as the clock, not as its own clock. */
	CU_ASSERT_EQUAL(put_st(s, &idx, 4, 1, T0 + 1000, "d", "1", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 4);
	CU_ASSERT_EQUAL(put_st(s, &idx, 4, 2, T0 + 1001, "d", "2", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1);
	/* No-op entries move nothing. */
	CU_ASSERT_EQUAL(kv_advance(s, idx + 100), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1);
	kv_store_free(s);
}

/* Sequence 1 starts a session; any other sequence of an unknown client id is refused. */
static void test_session_start(void)
{
	uint64_t rev = kv_store_revision(fx.s);
	struct kv_result r;
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 42, 7, "k", "v", &r), KV_ESESSION);
	kv_result_free(&r);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 42, 7, "k", "v", NULL), KV_ESESSION);
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), rev);
	CU_ASSERT_EQUAL(kv_store_session_count(fx.s), 0);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 42, 1, "k", "v", NULL), 0);
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 42, 7, "k", "w", NULL), 0); /* gaps are fine */
	CU_ASSERT_EQUAL(kv_store_revision(fx.s), rev + 2);
	CU_ASSERT_STRING_EQUAL(kv_strerror(KV_ESESSION), "write id session unknown or expired");
}

/* LRU: at most max_sessions; the least recently used is evicted first, and an evicted
 * client's next write is refused (it cannot be told from a retry). */
static void test_session_lru(void)
{
	struct kv_options o;
	kv_options_default(&o);
	o.max_sessions = 3;
	struct kv_store *s = kv_store_new(&o);
	uint64_t idx = 0;
	CU_ASSERT_EQUAL(put_s(s, &idx, 10, 1, "x", "1", NULL), 0);
	CU_ASSERT_EQUAL(put_s(s, &idx, 11, 1, "x", "2", NULL), 0);
	CU_ASSERT_EQUAL(put_s(s, &idx, 12, 1, "x", "3", NULL), 0);
	CU_ASSERT_EQUAL(put_s(s, &idx, 10, 1, "x", "1", NULL), 0); /* duplicate: touch */
	CU_ASSERT_EQUAL(put_s(s, &idx, 13, 1, "x", "4", NULL), 0);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 3);
	uint64_t rev = kv_store_revision(s);
	CU_ASSERT_EQUAL(put_s(s, &idx, 10, 1, "x", "1", NULL), 0); /* still deduplicated */
	CU_ASSERT_EQUAL(kv_store_revision(s), rev);
	CU_ASSERT_EQUAL(put_s(s, &idx, 11, 2, "x", "5", NULL), KV_ESESSION); /* evicted */
	CU_ASSERT_EQUAL(kv_store_revision(s), rev);
	kv_store_free(s);
}

/* Encoded commands: version 2 carries the time, kv_cmd_set_time stamps it in place, and
 * version 1 commands (no time) still decode. */
static void test_command_time(void)
{
	struct kv_cmd c = op_cmd(KV_OP_PUT, B("k"), B("v"), NO_END);
	c.client_id = 3;
	c.sequence = 1;
	unsigned char *enc;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &enc, &len), 0);
	CU_ASSERT_EQUAL(enc[0], 2);
	CU_ASSERT_EQUAL(kv_cmd_set_time(enc, len, T0), 0);
	struct kv_cmd d;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(enc, len, &d), 0);
	CU_ASSERT_EQUAL(d.time_ms, T0);
	CU_ASSERT_EQUAL(d.client_id, 3);
	kv_cmd_free(&d);
	/* The same command as version 1: no time field. */
	unsigned char *v1 = malloc(len - 8);
	v1[0] = 1;
	memcpy(v1 + 1, enc + 9, len - 9);
	CU_ASSERT_EQUAL_FATAL(kv_cmd_decode(v1, len - 8, &d), 0);
	CU_ASSERT_EQUAL(d.time_ms, 0);
	CU_ASSERT_EQUAL(d.client_id, 3);
	CU_ASSERT(BEQ(d.op.value, "v"));
	kv_cmd_free(&d);
	CU_ASSERT_EQUAL(kv_cmd_set_time(v1, len - 8, T0), KV_EMALFORMED);
	CU_ASSERT_EQUAL(kv_cmd_set_time(enc, 5, T0), KV_EMALFORMED);
	free(v1);
	free(enc);
}

/* ---- snapshots ------------------------------------------------------------------------ */

/* A small store with keys, a deletion, sessions (one holding a txn result with a get). */
static void fill_small(void)
{
	CU_ASSERT_EQUAL(put_s(fx.s, &fx.index, 3, 1, "alpha", "1", NULL), 0);
	CU_ASSERT_EQUAL(put("beta", "22"), 0);
	CU_ASSERT_EQUAL(put("gamma", ""), 0);
	CU_ASSERT_EQUAL(del(B("gamma"), NO_END), 1);
	CU_ASSERT_EQUAL(append("beta", B("x")), 0);
	struct kv_op g = {.type = KV_OP_GET, .key = B("a"), .range_end = FROM_KEY};
	struct kv_cmd t = {
		.client_id = 9, .sequence = 1, .type = KV_OP_TXN, .success = &g, .n_success = 1};
	CU_ASSERT_EQUAL(apply(&t, NULL), 0);
	CU_ASSERT_EQUAL(kv_advance(fx.s, fx.index + 3), 0);
	fx.index += 3;
}

static void test_snapshot_roundtrip(void)
{
	fill_small();
	struct mem m = snap(fx.s);
	struct kv_store *s2 = kv_store_new(NULL);
	CU_ASSERT_EQUAL(put_s(s2, &(uint64_t){0}, 77, 1, "junk", "j", NULL), 0); /* replaced */
	CU_ASSERT_EQUAL(restore(s2, m.p, m.len, 0), 0);
	CU_ASSERT_TRUE(same_snapshot(fx.s, s2));
	CU_ASSERT_EQUAL(kv_store_revision(s2), kv_store_revision(fx.s));
	CU_ASSERT_EQUAL(kv_store_applied_index(s2), fx.index);
	CU_ASSERT_EQUAL(kv_store_key_count(s2), 2);
	CU_ASSERT_EQUAL(kv_store_session_count(s2), 2);
	struct kv_range_result a, b;
	struct kv_op all = {.type = KV_OP_GET, .key = BN("\0", 1), .range_end = FROM_KEY};
	CU_ASSERT_EQUAL(kv_range(fx.s, &all, &a), 0);
	CU_ASSERT_EQUAL(kv_range(s2, &all, &b), 0);
	CU_ASSERT_EQUAL_FATAL(a.n, b.n);
	for (size_t i = 0; i < a.n; i++) {
		CU_ASSERT(a.kvs[i].key.len == b.kvs[i].key.len &&
			  !memcmp(a.kvs[i].key.p, b.kvs[i].key.p, a.kvs[i].key.len));
		CU_ASSERT(a.kvs[i].value.len == b.kvs[i].value.len &&
			  !memcmp(a.kvs[i].value.p, b.kvs[i].value.p, a.kvs[i].value.len));
		CU_ASSERT(a.kvs[i].version == b.kvs[i].version &&
			  a.kvs[i].create_revision == b.kvs[i].create_revision &&
			  a.kvs[i].mod_revision == b.kvs[i].mod_revision);
	}
	kv_range_result_free(&a);
	kv_range_result_free(&b);
	/* Sessions survive: a duplicate after restore answers the original. */
	uint64_t i2 = fx.index;
	struct kv_result r;
	CU_ASSERT_EQUAL(put_s(s2, &i2, 3, 1, "alpha", "1", &r), 0);
	CU_ASSERT_EQUAL(r.revision, 1);
	kv_result_free(&r);
	/* Byte-at-a-time reading gives the same state. */
	struct kv_store *s3 = kv_store_new(NULL);
	CU_ASSERT_EQUAL(restore(s3, m.p, m.len, 1), 0);
	CU_ASSERT_TRUE(same_snapshot(fx.s, s3));
	/* An empty store round-trips too. */
	struct kv_store *e = kv_store_new(NULL);
	struct mem em = snap(e);
	CU_ASSERT_EQUAL(restore(s3, em.p, em.len, 0), 0);
	CU_ASSERT_TRUE(same_snapshot(e, s3));
	free(em.p);
	kv_store_free(e);
	kv_store_free(s3);
	kv_store_free(s2);
	free(m.p);
}

/* Snapshots written by version 1 (no log clock, no last use time) still restore: the
 * sessions come back and count as used when the clock first moves. */
struct v1buf {
	unsigned char p[512];
	size_t n;
};

static void v1_put(struct v1buf *b, const void *p, size_t n)
{
	CU_ASSERT_FATAL(b->n + n <= sizeof(b->p));
	memcpy(b->p + b->n, p, n);
	b->n += n;
}

static void v1_u64(struct v1buf *b, uint64_t v)
{
	unsigned char x[8];
	put_be64(x, v);
	v1_put(b, x, 8);
}

static void v1_blob(struct v1buf *b, const void *p, size_t n)
{
	unsigned char x[4];
	put_be32(x, (uint32_t)n);
	v1_put(b, x, 4);
	v1_put(b, p, n);
}

static void test_snapshot_version1_restores(void)
{
	/* A real result to store in the session. */
	struct kv_store *src = kv_store_new(NULL);
	uint64_t si = 0;
	struct kv_cmd c = op_cmd(KV_OP_PUT, B("k"), B("v"), NO_END);
	c.client_id = 5;
	c.sequence = 3;
	unsigned char *enc, *res;
	size_t len, rlen;
	CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &enc, &len), 0);
	CU_ASSERT_EQUAL(put_s(src, &si, 5, 1, "x", "y", NULL), 0);
	CU_ASSERT_EQUAL(kv_apply(src, ++si, enc, len, &res, &rlen), 0);

	struct v1buf b = {.n = 0};
	v1_put(&b, "RKVS\x01", 5);
	v1_u64(&b, 40); /* applied */
	v1_u64(&b, 2);  /* revision */
	v1_u64(&b, 1);  /* one key */
	v1_blob(&b, "k", 1);
	v1_blob(&b, "v", 1);
	v1_u64(&b, 2);
	v1_u64(&b, 2);
	v1_u64(&b, 1);
	v1_u64(&b, 1); /* one session: client 5, sequence 3, used at index 39 */
	v1_u64(&b, 5);
	v1_u64(&b, 3);
	v1_u64(&b, 39);
	v1_blob(&b, res, rlen);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < b.n; i++) {
		h ^= b.p[i];
		h *= 0x100000001b3ULL;
	}
	v1_u64(&b, h);

	struct kv_store *s = kv_store_new(NULL);
	CU_ASSERT_EQUAL_FATAL(restore(s, b.p, b.n, 0), 0);
	CU_ASSERT_EQUAL(kv_store_applied_index(s), 40);
	CU_ASSERT_EQUAL(kv_store_session_count(s), 1);
	expect_kv_in(s, "k", "v", 2, 2, 1);
	/* A retry of (5, 3), now with a leader time: deduplicated, the session survived. */
	uint64_t idx = 40;
	CU_ASSERT_EQUAL(kv_cmd_set_time(enc, len, T0), 0);
	unsigned char *out;
	size_t out_len;
	CU_ASSERT_EQUAL(kv_apply(s, ++idx, enc, len, &out, &out_len), 0);
	CU_ASSERT(out_len == rlen && memcmp(out, res, rlen) == 0);
	CU_ASSERT_EQUAL(kv_store_revision(s), 2);
	free(out);
	/* And the restored state round-trips through a version 2 snapshot. */
	struct mem m = snap(s);
	CU_ASSERT_EQUAL(m.p[4], 2);
	struct kv_store *s2 = kv_store_new(NULL);
	CU_ASSERT_EQUAL(restore(s2, m.p, m.len, 0), 0);
	CU_ASSERT_TRUE(same_snapshot(s, s2));
	free(m.p);
	kv_store_free(s2);
	kv_store_free(s);
	kv_store_free(src);
	free(res);
	free(enc);
}

static void test_snapshot_rejects_corruption(void)
{
	fill_small();
	struct mem m = snap(fx.s);
	/* The target holds other state that must survive every failed restore. */
	struct kv_store *t = kv_store_new(NULL);
	uint64_t ti = 0;
	CU_ASSERT_EQUAL(put_s(t, &ti, 1, 1, "keep", "me", NULL), 0);
	struct mem before = snap(t);

	for (size_t i = 0; i < m.len; i++) {
		int rv = restore(t, m.p, i, i % 7 + 1);
		CU_ASSERT(rv == KV_ECORRUPT);
	}
	unsigned char *p = malloc(m.len + 1);
	memcpy(p, m.p, m.len);
	p[m.len] = 0;
	CU_ASSERT_EQUAL(restore(t, p, m.len + 1, 0), KV_ECORRUPT); /* trailing byte */

	struct prng rng;
	prng_seed(&rng, 777);
	for (int i = 0; i < 2000; i++) {
		memcpy(p, m.p, m.len);
		int flips = 1 + (int)prng_below(&rng, 4);
		for (int k = 0; k < flips; k++)
			p[prng_below(&rng, m.len)] ^= (unsigned char)(1 + prng_below(&rng, 255));
		int rv = restore(t, p, m.len, 0);
		CU_ASSERT(rv == KV_ECORRUPT);
	}
	free(p);

	/* Failing callbacks. */
	struct mem fr = {m.p, m.len, m.len, 0, 0, 1};
	CU_ASSERT_EQUAL(kv_snapshot_restore(t, mem_read, &fr), KV_EIO);
	struct mem fw = {0};
	fw.fail = 1;
	CU_ASSERT_EQUAL(kv_snapshot_write(fx.s, mem_write, &fw), KV_EIO);

	struct mem after = snap(t);
	CU_ASSERT(after.len == before.len && memcmp(after.p, before.p, after.len) == 0);
	free(after.p);
	free(before.p);
	free(m.p);
	kv_store_free(t);
}

/* Bigger than one 64 KiB piece, with values larger than a piece. */
static void test_snapshot_large_streams(void)
{
	unsigned char *big = malloc(200000);
	for (int i = 0; i < 200000; i++)
		big[i] = (unsigned char)(i * 7);
	char k[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "key-%05d", i);
		struct kv_cmd c =
			op_cmd(KV_OP_PUT, B(k), BN(big, i % 100 == 0 ? 200000 : 50), NO_END);
		CU_ASSERT_EQUAL(apply(&c, NULL), 0);
	}
	struct mem m = snap(fx.s);
	CU_ASSERT(m.len > 4 * 200000);
	struct kv_store *s2 = kv_store_new(NULL);
	CU_ASSERT_EQUAL(restore(s2, m.p, m.len, 1000), 0);
	CU_ASSERT_TRUE(same_snapshot(fx.s, s2));
	kv_store_free(s2);
	free(m.p);
	free(big);
}

/* ---- randomized model test ------------------------------------------------------------ */

#define MAXV 24 /* small value limit: Append refusals happen often */

struct mkv {
	char key[4];
	size_t klen;
	unsigned char val[MAXV];
	size_t vlen;
	uint64_t create, mod, version;
};

struct model {
	struct mkv kv[64];
	size_t n;
	uint64_t rev;
};

static int mkey_cmp(const struct mkv *e, struct kv_bytes k)
{
	size_t m = e->klen < k.len ? e->klen : k.len;
	int c = memcmp(e->key, k.p, m);
	if (c)
		return c;
	return e->klen < k.len ? -1 : e->klen > k.len;
}

/* Is model entry e in the etcd range (key, end)? Written independently of kv.c. */
static int m_in(const struct mkv *e, struct kv_bytes key, struct kv_bytes end)
{
	int c = mkey_cmp(e, key);
	if (end.len == 0)
		return c == 0;
	if (c < 0)
		return 0;
	if (end.len == 1 && end.p[0] == 0)
		return 1;
	return mkey_cmp(e, end) < 0;
}

static struct mkv *m_find(struct model *m, struct kv_bytes k)
{
	for (size_t i = 0; i < m->n; i++)
		if (mkey_cmp(&m->kv[i], k) == 0)
			return &m->kv[i];
	return NULL;
}

/* Write key := prefix (keep) + add; 0 = refused (too big). */
static int m_write(struct model *m, struct kv_bytes k, int is_append, struct kv_bytes add,
		   uint64_t rev)
{
	struct mkv *e = m_find(m, k);
	size_t keep = is_append && e ? e->vlen : 0;
	if (keep + add.len > MAXV)
		return 0;
	if (!e) {
		size_t i = 0;
		while (i < m->n && mkey_cmp(&m->kv[i], k) < 0)
			i++;
		memmove(&m->kv[i + 1], &m->kv[i], (m->n - i) * sizeof(m->kv[0]));
		m->n++;
		e = &m->kv[i];
		memset(e, 0, sizeof(*e));
		memcpy(e->key, k.p, k.len);
		e->klen = k.len;
		e->create = rev;
	}
	if (add.len)
		memcpy(e->val + keep, add.p, add.len);
	e->vlen = keep + add.len;
	e->mod = rev;
	e->version++;
	return 1;
}

static uint64_t m_delete(struct model *m, struct kv_bytes key, struct kv_bytes end)
{
	uint64_t d = 0;
	for (size_t i = 0; i < m->n;) {
		if (m_in(&m->kv[i], key, end)) {
			memmove(&m->kv[i], &m->kv[i + 1], (m->n - i - 1) * sizeof(m->kv[0]));
			m->n--;
			d++;
		} else {
			i++;
		}
	}
	return d;
}

static void rand_key(struct prng *g, char *buf, size_t *len)
{
	*len = 1 + prng_below(g, 3);
	for (size_t i = 0; i < *len; i++)
		buf[i] = (char)('a' + prng_below(g, 3));
}

static struct kv_bytes rand_end(struct prng *g, const char *key, size_t klen, unsigned char *buf)
{
	switch (prng_below(g, 4)) {
	case 0:
		return NO_END;
	case 1:
		return FROM_KEY;
	case 2:
		return BN(buf, kv_prefix_end(key, klen, buf));
	default: {
		size_t n;
		rand_key(g, (char *)buf, &n);
		return BN(buf, n);
	}
	}
}

/* Compare one range read of the store with the model. Returns 0 on mismatch. */
static int check_range(struct kv_store *s, struct model *m, struct kv_bytes key,
		       struct kv_bytes end, uint64_t limit)
{
	struct kv_op op = {.type = KV_OP_GET, .key = key, .range_end = end, .limit = limit};
	struct kv_range_result r;
	if (kv_range(s, &op, &r) != 0)
		return 0;
	size_t j = 0, cnt = 0;
	int ok = 1;
	for (size_t i = 0; i < m->n; i++) {
		if (!m_in(&m->kv[i], key, end))
			continue;
		cnt++;
		if (limit && j >= limit)
			continue;
		if (j >= r.n) {
			ok = 0;
			break;
		}
		struct kv_kv *kv = &r.kvs[j++];
		const struct mkv *e = &m->kv[i];
		ok &= kv->key.len == e->klen && !memcmp(kv->key.p, e->key, e->klen);
		ok &= kv->value.len == e->vlen &&
		      (!e->vlen || !memcmp(kv->value.p, e->val, e->vlen));
		ok &= kv->create_revision == e->create && kv->mod_revision == e->mod &&
		      kv->version == e->version;
	}
	ok &= j == r.n && r.count == cnt && r.more == (cnt > r.n);
	kv_range_result_free(&r);
	return ok;
}

/* Run one random op (of a txn branch, or alone) on the model; 0 = refused (Append). */
static int m_op(struct model *m, const struct kv_op *op, uint64_t rev, int *changed)
{
	switch (op->type) {
	case KV_OP_PUT:
		m_write(m, op->key, 0, op->value, rev);
		*changed = 1;
		return 1;
	case KV_OP_APPEND:
		*changed = 1;
		return m_write(m, op->key, 1, op->value, rev);
	case KV_OP_DELETE:
		*changed |= m_delete(m, op->key, op->range_end) > 0;
		return 1;
	default:
		return 1;
	}
}

static void rand_op(struct prng *g, struct kv_op *op, char *kb, unsigned char *eb,
		    unsigned char *vb, int allow_get)
{
	size_t klen;
	memset(op, 0, sizeof(*op));
	rand_key(g, kb, &klen);
	op->key = BN(kb, klen);
	size_t vlen = prng_below(g, 10);
	for (size_t i = 0; i < vlen; i++)
		vb[i] = (unsigned char)prng_below(g, 256);
	switch (prng_below(g, allow_get ? 4 : 3)) {
	case 0:
		op->type = KV_OP_PUT;
		op->value = BN(vb, vlen);
		break;
	case 1:
		op->type = KV_OP_APPEND;
		op->value = BN(vb, vlen);
		break;
	case 2:
		op->type = KV_OP_DELETE;
		op->range_end = prng_below(g, 2) ? NO_END : rand_end(g, kb, klen, eb);
		break;
	default:
		op->type = KV_OP_GET;
		op->range_end = rand_end(g, kb, klen, eb);
		op->limit = prng_below(g, 4);
	}
}

static int m_cmp(struct model *m, const struct kv_compare *c)
{
	struct mkv *e = m_find(m, c->key);
	int r;
	if (c->target == KV_CMP_VALUE) {
		if (!e)
			return 0;
		size_t n = e->vlen < c->value.len ? e->vlen : c->value.len;
		r = n ? memcmp(e->val, c->value.p, n) : 0;
		if (!r)
			r = e->vlen < c->value.len ? -1 : e->vlen > c->value.len;
	} else {
		uint64_t v = !e                            ? 0
			     : c->target == KV_CMP_VERSION ? e->version
			     : c->target == KV_CMP_CREATE  ? e->create
			     : c->target == KV_CMP_MOD     ? e->mod
							   : 1;
		r = v < c->number ? -1 : v > c->number;
	}
	return c->result == KV_CMP_EQ   ? r == 0
	       : c->result == KV_CMP_NE ? r != 0
	       : c->result == KV_CMP_LT ? r < 0
					: r > 0;
}

/* One seed: `steps` random commands on a store and the model; every step checks a random
 * range, occasionally the store is replaced by a snapshot restore of itself. Returns 1 ok. */
static int model_run(uint64_t seed, int steps, unsigned char **snap_out, size_t *snap_len)
{
	struct kv_options o;
	kv_options_default(&o);
	o.max_value_bytes = MAXV;
	struct kv_store *s = kv_store_new(&o);
	struct model *m = calloc(1, sizeof(*m));
	struct prng g;
	prng_seed(&g, seed);
	uint64_t idx = 0;
	int ok = 1;
	/* Per-client last command and result, to check duplicate answers. */
	unsigned char *last_cmd[4] = {0}, *last_res[4] = {0};
	size_t last_cmd_len[4] = {0}, last_res_len[4] = {0};
	uint64_t seq[4] = {0};

	for (int step = 0; step < steps && ok; step++) {
		int client = (int)prng_below(&g, 5) - 1; /* -1: client_id 0 */
		if (client >= 0 && last_cmd[client] && prng_chance(&g, 100000)) {
			unsigned char *out;
			size_t out_len;
			uint64_t rev = kv_store_revision(s);
			kv_apply(s, ++idx, last_cmd[client], last_cmd_len[client], &out, &out_len);
			ok &= out_len == last_res_len[client] &&
			      !memcmp(out, last_res[client], out_len) &&
			      kv_store_revision(s) == rev;
			free(out);
			continue;
		}
		char kb[8][4], ck[4][4];
		unsigned char eb[8][8], vb[8][16], cv[4][16];
		struct kv_op ops[8];
		struct kv_compare cmps[4];
		struct kv_cmd c = {0};
		if (prng_below(&g, 3) == 0) {
			c.type = KV_OP_TXN;
			c.n_compares = prng_below(&g, 3);
			for (size_t i = 0; i < c.n_compares; i++) {
				size_t kl;
				rand_key(&g, ck[i], &kl);
				cmps[i] = (struct kv_compare){0};
				cmps[i].key = BN(ck[i], kl);
				cmps[i].target = (enum kv_cmp_target)(1 + prng_below(&g, 5));
				cmps[i].result = (enum kv_cmp_result)(1 + prng_below(&g, 4));
				if (cmps[i].target == KV_CMP_EXISTS) {
					cmps[i].result =
						(enum kv_cmp_result)(1 + prng_below(&g, 2));
					cmps[i].number = prng_below(&g, 2);
				} else if (cmps[i].target == KV_CMP_VALUE) {
					size_t vl = prng_below(&g, 3);
					for (size_t k = 0; k < vl; k++)
						cv[i][k] = (unsigned char)prng_below(&g, 256);
					cmps[i].value = BN(cv[i], vl);
				} else {
					cmps[i].number = prng_below(&g, 6);
				}
			}
			c.compares = cmps;
			c.n_success = prng_below(&g, 5);
			c.n_failure = prng_below(&g, 4);
			for (size_t i = 0; i < c.n_success + c.n_failure; i++)
				rand_op(&g, &ops[i], kb[i], eb[i], vb[i], 1);
			c.success = ops;
			c.failure = ops + c.n_success;
		} else {
			rand_op(&g, &c.op, kb[0], eb[0], vb[0], 0);
			c.type = c.op.type;
		}
		if (client >= 0) {
			c.client_id = (uint64_t)client + 1;
			c.sequence = ++seq[client];
		}

		/* The model: run the chosen ops on a copy; commit unless an Append refused. */
		struct model *copy = malloc(sizeof(*m));
		memcpy(copy, m, sizeof(*m));
		int changed = 0, fine = 1, holds = 1;
		const struct kv_op *run = &c.op;
		size_t nrun = 1;
		if (c.type == KV_OP_TXN) {
			for (size_t i = 0; i < c.n_compares; i++)
				holds &= m_cmp(m, &cmps[i]);
			run = holds ? c.success : c.failure;
			nrun = holds ? c.n_success : c.n_failure;
		}
		for (size_t i = 0; i < nrun && fine; i++)
			fine = m_op(copy, &run[i], m->rev + 1, &changed);
		if (fine) {
			if (changed)
				copy->rev = m->rev + 1;
			memcpy(m, copy, sizeof(*m));
		}
		free(copy);

		unsigned char *enc, *out;
		size_t len, out_len;
		CU_ASSERT_EQUAL_FATAL(kv_cmd_encode(&c, &enc, &len), 0);
		int rv = kv_apply(s, ++idx, enc, len, &out, &out_len);
		ok &= rv == (fine ? 0 : KV_EVALUESIZE);
		ok &= kv_store_revision(s) == m->rev;
		struct kv_result res;
		ok &= kv_result_decode(out, out_len, &res) == 0;
		ok &= res.revision == m->rev;
		if (c.type == KV_OP_TXN && fine)
			ok &= res.succeeded == holds;
		kv_result_free(&res);
		if (client >= 0) {
			free(last_cmd[client]);
			free(last_res[client]);
			last_cmd[client] = enc;
			last_cmd_len[client] = len;
			last_res[client] = out;
			last_res_len[client] = out_len;
		} else {
			free(enc);
			free(out);
		}

		/* Compare a random read, and now and then the whole store. */
		char rk[4];
		unsigned char re[8];
		size_t rkl;
		rand_key(&g, rk, &rkl);
		struct kv_bytes end = rand_end(&g, rk, rkl, re);
		ok &= check_range(s, m, BN(rk, rkl), end, prng_below(&g, 5));
		/* The quota's measure: every key and value byte held, through writes, appends,
		 * deletes, refused txns and snapshot restores. */
		uint64_t bytes = 0;
		for (size_t i = 0; i < m->n; i++)
			bytes += m->kv[i].klen + m->kv[i].vlen;
		ok &= kv_store_data_bytes(s) == bytes;
		if (step % 50 == 49)
			ok &= check_range(s, m, BN("\0", 1), FROM_KEY, 0);
		if (step % 97 == 96) {
			struct mem sm = snap(s);
			struct kv_store *s2 = kv_store_new(&o);
			ok &= restore(s2, sm.p, sm.len, 0) == 0;
			kv_store_free(s);
			s = s2;
			free(sm.p);
		}
	}
	if (!ok)
		fprintf(stderr, "\nkv model test failed: seed %llu\n", (unsigned long long)seed);
	if (snap_out) {
		struct mem sm = snap(s);
		*snap_out = sm.p;
		*snap_len = sm.len;
	}
	for (int i = 0; i < 4; i++) {
		free(last_cmd[i]);
		free(last_res[i]);
	}
	free(m);
	kv_store_free(s);
	return ok;
}

static void test_model_random(void)
{
	const char *env = getenv("RAFTKV_KV_SEED");
	if (env) {
		CU_ASSERT_TRUE(model_run(strtoull(env, NULL, 0), 2000, NULL, NULL));
		return;
	}
	for (uint64_t seed = 1; seed <= 40; seed++)
		CU_ASSERT_TRUE(model_run(seed, 1000, NULL, NULL));
}

/* Same stream, same bytes — including a store that went through a snapshot restore (the
 * model run replaces its store by a restored copy every 97 steps). */
static void test_determinism(void)
{
	for (uint64_t seed = 100; seed < 105; seed++) {
		unsigned char *a, *b;
		size_t alen, blen;
		CU_ASSERT_TRUE(model_run(seed, 500, &a, &alen));
		CU_ASSERT_TRUE(model_run(seed, 500, &b, &blen));
		CU_ASSERT(alen == blen && memcmp(a, b, alen) == 0);
		free(a);
		free(b);
	}
	/* Two stores fed the very same entries directly. */
	struct kv_store *x = kv_store_new(NULL), *y = kv_store_new(NULL);
	uint64_t xi = 0, yi = 0;
	char k[16];
	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "k%d", (i * 37) % 101);
		uint64_t seq = (uint64_t)i / 7 + 1;
		CU_ASSERT_EQUAL(put_s(x, &xi, (uint64_t)(i % 7), seq, k, "v", NULL), 0);
		CU_ASSERT_EQUAL(put_s(y, &yi, (uint64_t)(i % 7), seq, k, "v", NULL), 0);
	}
	CU_ASSERT_TRUE(same_snapshot(x, y));
	kv_store_free(x);
	kv_store_free(y);
}

static CU_TestInfo kv_tests[] = {
	{"put/get/delete revisions", test_put_get_delete_revisions},
	{"range: single, prefix, from-key, limit, paging", test_range},
	{"delete range", test_delete_range},
	{"append", test_append},
	{"txn compares", test_txn_compares},
	{"txn branches, atomicity", test_txn_branches},
	{"limits", test_limits},
	{"malformed commands, apply index", test_malformed_and_index},
	{"command decode rejects malformed input", test_cmd_decode_rejects},
	{"dedup", test_dedup},
	{"sessions expire by leader time, not entries", test_session_expiry_by_leader_time},
	{"session clock rules", test_session_clock_rules},
	{"sequence 1 starts a session", test_session_start},
	{"session LRU eviction", test_session_lru},
	{"command time: v2 stamps, v1 decodes", test_command_time},
	{"snapshot round trip", test_snapshot_roundtrip},
	{"snapshot rejects corruption", test_snapshot_rejects_corruption},
	{"snapshot version 1 restores", test_snapshot_version1_restores},
	{"snapshot large streams", test_snapshot_large_streams},
	{"randomized model", test_model_random},
	{"determinism", test_determinism},
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{"kv", NULL, NULL, setup, teardown, kv_tests},
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return cunit_main(suites);
}
