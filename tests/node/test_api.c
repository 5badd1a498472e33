/* The public KV API codec (server/node/api.c) end to end on a real store: protobuf request ->
 * api_decode -> kv_apply / kv_range -> reply -> protobuf response; limits and their statuses,
 * deduplication, and a seeded fuzz of the whole path. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/prng.h"
#include "cunit_main.h"
#include "raftkv/v1/kv.pb-c.h"
#include "server/node/api.h"

#define PB(s)           ((ProtobufCBinaryData){strlen(s), (uint8_t *)(s)})
#define PBN(p, n)       ((ProtobufCBinaryData){(n), (uint8_t *)(p)})
#define PBEQ(b, s)      ((b).len == strlen(s) && ((b).len == 0 || memcmp((b).data, (s), (b).len) == 0))
#define MEMBER          7
#define TERM            3
#define ERRLEN          256
#define FUZZ_ITERATIONS 100000u
#define AS(type, msg)   ((type *)(msg))

/* The fixture: one store, its options, the next log index. */
static struct {
	struct kv_store *s;
	struct kv_options o;
	uint64_t index;
	char err[ERRLEN];
} fx;

static void setup(void)
{
	kv_options_default(&fx.o);
	fx.s = kv_store_new(&fx.o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx.s);
	fx.index = 0;
}

static void teardown(void)
{
	kv_store_free(fx.s);
	memset(&fx, 0, sizeof(fx));
}

/* Replace the store by an empty one with small limits. */
static void small_limits(void)
{
	kv_store_free(fx.s);
	kv_options_default(&fx.o);
	fx.o.max_key_bytes = 8;
	fx.o.max_value_bytes = 4;
	fx.o.max_txn_ops = 2;
	fx.o.max_range_limit = 5;
	fx.s = kv_store_new(&fx.o);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fx.s);
	fx.index = 0;
}

/* An error message mentions `needle`; prints it otherwise. */
static bool has(const char *msg, const char *needle)
{
	if (strstr(msg, needle) != NULL)
		return true;
	fprintf(stderr, "\n  \"%s\" lacks \"%s\"\n", msg, needle);
	return false;
}

/* ---- the path a request takes --------------------------------------------------------- */

static void *packm(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	void *buf = malloc(*len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

static const ProtobufCMessageDescriptor *response_descriptor(enum api_method m)
{
	switch (m) {
	case API_PUT:
		return &raftkv__v1__put_response__descriptor;
	case API_GET:
		return &raftkv__v1__get_response__descriptor;
	case API_DELETE:
		return &raftkv__v1__delete_response__descriptor;
	case API_RANGE:
		return &raftkv__v1__range_response__descriptor;
	case API_APPEND:
		return &raftkv__v1__append_response__descriptor;
	case API_TXN:
		return &raftkv__v1__txn_response__descriptor;
	}
	return NULL;
}

/* Serve serialized request bytes as the node would: decode, then apply the command at the
 * next index (writes) or read the store (reads), then build the reply. Returns the status;
 * on OK *resp / *resp_len hold the serialized response (caller frees). */
static grpc_status_code serve_bytes(enum api_method m, const void *req, size_t len, void **resp,
				    size_t *resp_len)
{
	struct api_request r;
	grpc_status_code st = api_decode(m, req, len, &fx.o, &r, fx.err, ERRLEN);
	if (st != GRPC_STATUS_OK) {
		CU_ASSERT(fx.err[0] != 0);
		CU_ASSERT_PTR_NULL(r.cmd);
		CU_ASSERT_PTR_NULL(r.read_bytes);
		return st;
	}
	CU_ASSERT_EQUAL(r.method, m);
	if (r.is_write) {
		unsigned char *res = NULL;
		size_t res_len = 0;
		CU_ASSERT_PTR_NOT_NULL_FATAL(r.cmd);
		kv_apply(fx.s, ++fx.index, r.cmd, r.cmd_len, &res, &res_len);
		struct api_header h = {MEMBER, TERM, fx.index};
		st = api_write_reply(&r, res, res_len, &h, resp, resp_len, fx.err, ERRLEN);
		free(res);
	} else {
		struct api_header h = {MEMBER, TERM, kv_store_applied_index(fx.s)};
		st = api_read_reply(&r, fx.s, &h, resp, resp_len, fx.err, ERRLEN);
	}
	if (st != GRPC_STATUS_OK)
		CU_ASSERT(fx.err[0] != 0);
	api_request_free(&r);
	return st;
}

/* serve_bytes for a protobuf request; returns the unpacked response (NULL unless OK; free
 * with protobuf_c_message_free_unpacked) and the status in *st. */
static ProtobufCMessage *serve(enum api_method m, const ProtobufCMessage *req, grpc_status_code *st)
{
	size_t len, resp_len = 0;
	void *buf = packm(req, &len), *resp = NULL;
	*st = serve_bytes(m, buf, len, &resp, &resp_len);
	free(buf);
	if (*st != GRPC_STATUS_OK)
		return NULL;
	ProtobufCMessage *out =
		protobuf_c_message_unpack(response_descriptor(m), NULL, resp_len, resp);
	CU_ASSERT_PTR_NOT_NULL(out);
	free(resp);
	return out;
}

/* serve() that must succeed. */
static ProtobufCMessage *ok(enum api_method m, const ProtobufCMessage *req)
{
	grpc_status_code st;
	ProtobufCMessage *out = serve(m, req, &st);
	if (st != GRPC_STATUS_OK)
		fprintf(stderr, "\n  unexpected status %d: %s\n", st, fx.err);
	CU_ASSERT_EQUAL_FATAL(st, GRPC_STATUS_OK);
	return out;
}

/* serve() that must fail with `want`; returns the message. */
static const char *refused(enum api_method m, const ProtobufCMessage *req, grpc_status_code want)
{
	grpc_status_code st;
	ProtobufCMessage *out = serve(m, req, &st);
	if (st != want)
		fprintf(stderr, "\n  status %d (want %d): %s\n", st, want, fx.err);
	CU_ASSERT_EQUAL(st, want);
	if (out != NULL)
		protobuf_c_message_free_unpacked(out, NULL);
	return fx.err;
}

static void put(const char *k, const char *v)
{
	Raftkv__V1__PutRequest rq = RAFTKV__V1__PUT_REQUEST__INIT;
	rq.key = PB(k);
	rq.value = PB(v);
	protobuf_c_message_free_unpacked(ok(API_PUT, &rq.base), NULL);
}

static void check_header(const Raftkv__V1__ResponseHeader *h, uint64_t revision, uint64_t index)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(h->revision, revision);
	CU_ASSERT_EQUAL(h->member_id, MEMBER);
	CU_ASSERT_EQUAL(h->raft_term, TERM);
	CU_ASSERT_EQUAL(h->raft_index, index);
}

static void check_kv(const Raftkv__V1__KeyValue *kv, const char *key, const char *value,
		     uint64_t create, uint64_t mod, uint64_t version)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(kv);
	CU_ASSERT(PBEQ(kv->key, key));
	CU_ASSERT(PBEQ(kv->value, value));
	CU_ASSERT_EQUAL(kv->create_revision, create);
	CU_ASSERT_EQUAL(kv->mod_revision, mod);
	CU_ASSERT_EQUAL(kv->version, version);
}

/* ---- each method ---------------------------------------------------------------------- */

static void test_put_get(void)
{
	Raftkv__V1__PutRequest rq = RAFTKV__V1__PUT_REQUEST__INIT;
	rq.key = PB("a");
	rq.value = PB("1");
	rq.prev_kv = true; /* the key does not exist: no prev_kv */
	Raftkv__V1__PutResponse *pr = AS(Raftkv__V1__PutResponse, ok(API_PUT, &rq.base));
	check_header(pr->header, 1, 1);
	CU_ASSERT_PTR_NULL(pr->prev_kv);
	protobuf_c_message_free_unpacked(&pr->base, NULL);

	rq.value = PB("2");
	pr = AS(Raftkv__V1__PutResponse, ok(API_PUT, &rq.base));
	check_header(pr->header, 2, 2);
	check_kv(pr->prev_kv, "a", "1", 1, 1, 1);
	protobuf_c_message_free_unpacked(&pr->base, NULL);

	rq.prev_kv = false;
	rq.value = PB("");
	pr = AS(Raftkv__V1__PutResponse, ok(API_PUT, &rq.base));
	check_header(pr->header, 3, 3);
	CU_ASSERT_PTR_NULL(pr->prev_kv);
	protobuf_c_message_free_unpacked(&pr->base, NULL);

	Raftkv__V1__GetRequest g = RAFTKV__V1__GET_REQUEST__INIT;
	g.key = PB("a");
	Raftkv__V1__GetResponse *gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	check_header(gr->header, 3, 3);
	check_kv(gr->kv, "a", "", 1, 3, 3);
	protobuf_c_message_free_unpacked(&gr->base, NULL);

	g.key = PB("b");
	gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	CU_ASSERT_PTR_NULL(gr->kv);
	check_header(gr->header, 3, 3);
	protobuf_c_message_free_unpacked(&gr->base, NULL);

	/* Consistency is decoded for the caller. */
	struct api_request r;
	size_t len;
	void *buf;
	g.consistency = RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
	buf = packm(&g.base, &len);
	CU_ASSERT_EQUAL_FATAL(api_decode(API_GET, buf, len, &fx.o, &r, fx.err, ERRLEN), 0);
	CU_ASSERT(r.serializable && !r.is_write);
	CU_ASSERT_EQUAL(r.read.type, KV_OP_GET);
	free(buf); /* the request owns its bytes */
	CU_ASSERT(r.read.key.len == 1 && r.read.key.p[0] == 'b');
	api_request_free(&r);
	api_request_free(&r);
	g.consistency = RAFTKV__V1__READ_CONSISTENCY__LINEARIZABLE;
	buf = packm(&g.base, &len);
	CU_ASSERT_EQUAL_FATAL(api_decode(API_GET, buf, len, &fx.o, &r, fx.err, ERRLEN), 0);
	CU_ASSERT(!r.serializable);
	api_request_free(&r);
	free(buf);
}

static void test_delete(void)
{
	put("a", "A");
	put("b", "B");
	put("c", "C");
	put("d", "D"); /* revision 4 */
	Raftkv__V1__DeleteRequest d = RAFTKV__V1__DELETE_REQUEST__INIT;
	d.key = PB("b");
	Raftkv__V1__DeleteResponse *dr = AS(Raftkv__V1__DeleteResponse, ok(API_DELETE, &d.base));
	check_header(dr->header, 5, 5);
	CU_ASSERT_EQUAL(dr->deleted, 1);
	CU_ASSERT_EQUAL(dr->n_prev_kvs, 0);
	protobuf_c_message_free_unpacked(&dr->base, NULL);

	/* Nothing deleted: the revision stays. */
	dr = AS(Raftkv__V1__DeleteResponse, ok(API_DELETE, &d.base));
	check_header(dr->header, 5, 6);
	CU_ASSERT_EQUAL(dr->deleted, 0);
	protobuf_c_message_free_unpacked(&dr->base, NULL);

	d.key = PB("a");
	d.range_end = PB("d");
	d.prev_kv = true;
	dr = AS(Raftkv__V1__DeleteResponse, ok(API_DELETE, &d.base));
	check_header(dr->header, 6, 7);
	CU_ASSERT_EQUAL(dr->deleted, 2);
	CU_ASSERT_EQUAL_FATAL(dr->n_prev_kvs, 2);
	check_kv(dr->prev_kvs[0], "a", "A", 1, 1, 1);
	check_kv(dr->prev_kvs[1], "c", "C", 3, 3, 1);
	protobuf_c_message_free_unpacked(&dr->base, NULL);

	/* range_end "\0": every key >= key. */
	put("e", "E");
	d.key = PB("a");
	d.range_end = PBN("", 1);
	d.prev_kv = false;
	dr = AS(Raftkv__V1__DeleteResponse, ok(API_DELETE, &d.base));
	CU_ASSERT_EQUAL(dr->deleted, 2);
	protobuf_c_message_free_unpacked(&dr->base, NULL);
	CU_ASSERT_EQUAL(kv_store_key_count(fx.s), 0);
}

static void test_append(void)
{
	Raftkv__V1__AppendRequest a = RAFTKV__V1__APPEND_REQUEST__INIT;
	a.key = PB("log");
	a.suffix = PB("x");
	Raftkv__V1__AppendResponse *ar = AS(Raftkv__V1__AppendResponse, ok(API_APPEND, &a.base));
	check_header(ar->header, 1, 1);
	check_kv(ar->kv, "log", "x", 1, 1, 1);
	protobuf_c_message_free_unpacked(&ar->base, NULL);
	a.suffix = PB("yz");
	ar = AS(Raftkv__V1__AppendResponse, ok(API_APPEND, &a.base));
	check_header(ar->header, 2, 2);
	check_kv(ar->kv, "log", "xyz", 1, 2, 2);
	protobuf_c_message_free_unpacked(&ar->base, NULL);
	a.suffix = PB("");
	ar = AS(Raftkv__V1__AppendResponse, ok(API_APPEND, &a.base));
	check_kv(ar->kv, "log", "xyz", 1, 3, 3);
	protobuf_c_message_free_unpacked(&ar->base, NULL);
}

/* An Append beyond max_value_bytes passes decoding and is refused when applied. */
static void test_append_too_big_at_apply(void)
{
	small_limits(); /* values of at most 4 bytes */
	Raftkv__V1__AppendRequest a = RAFTKV__V1__APPEND_REQUEST__INIT;
	a.key = PB("k");
	a.suffix = PB("abc");
	protobuf_c_message_free_unpacked(ok(API_APPEND, &a.base), NULL);
	const char *msg = refused(API_APPEND, &a.base, GRPC_STATUS_RESOURCE_EXHAUSTED);
	CU_ASSERT(has(msg, "value too large"));
	Raftkv__V1__GetRequest g = RAFTKV__V1__GET_REQUEST__INIT;
	g.key = PB("k");
	Raftkv__V1__GetResponse *gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	check_kv(gr->kv, "k", "abc", 1, 1, 1); /* unchanged */
	check_header(gr->header, 1, 2);
	protobuf_c_message_free_unpacked(&gr->base, NULL);
}

static void test_range(void)
{
	char key[16];
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "p/%d", i);
		put(key, key);
	}
	put("o", "before");
	put("q", "after");
	put("p", "the prefix itself");

	/* Paging through a prefix, three keys at a time. */
	Raftkv__V1__RangeRequest rq = RAFTKV__V1__RANGE_REQUEST__INIT;
	rq.key = PB("p/");
	rq.range_end = PB("ignored with prefix");
	rq.prefix = true;
	rq.limit = 3;
	int seen = 0, pages = 0;
	unsigned char next[16];
	size_t next_len;
	for (;;) {
		Raftkv__V1__RangeResponse *rr =
			AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &rq.base));
		check_header(rr->header, 13, 13);
		CU_ASSERT_EQUAL(rr->count, (uint64_t)(10 - seen));
		CU_ASSERT_FATAL(rr->n_kvs <= 3);
		for (size_t i = 0; i < rr->n_kvs; i++, seen++) {
			snprintf(key, sizeof(key), "p/%d", seen);
			check_kv(rr->kvs[i], key, key, seen + 1, seen + 1, 1);
		}
		pages++;
		bool more = rr->more;
		if (more) {
			CU_ASSERT_FATAL(rr->next_key.len <= sizeof(next));
			memcpy(next, rr->next_key.data, rr->next_key.len);
			next_len = rr->next_key.len;
		} else {
			CU_ASSERT_EQUAL(rr->next_key.len, 0);
		}
		protobuf_c_message_free_unpacked(&rr->base, NULL);
		if (!more)
			break;
		/* Continue from next_key to the prefix's end. */
		rq.key = PBN(next, next_len);
		rq.prefix = false;
		rq.range_end = PB("p0");
		CU_ASSERT_FATAL(pages < 10);
	}
	CU_ASSERT_EQUAL(seen, 10);
	CU_ASSERT_EQUAL(pages, 4);

	/* keys_only: metadata without values. */
	Raftkv__V1__RangeRequest ko = RAFTKV__V1__RANGE_REQUEST__INIT;
	ko.key = PB("p");
	ko.prefix = true;
	ko.keys_only = true;
	Raftkv__V1__RangeResponse *rr = AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &ko.base));
	CU_ASSERT_EQUAL_FATAL(rr->n_kvs, 11);
	check_kv(rr->kvs[0], "p", "", 13, 13, 1);
	check_kv(rr->kvs[1], "p/0", "", 1, 1, 1);
	CU_ASSERT_EQUAL(rr->count, 11);
	CU_ASSERT(!rr->more);
	protobuf_c_message_free_unpacked(&rr->base, NULL);

	/* count_only: the count alone. */
	ko.keys_only = false;
	ko.count_only = true;
	rr = AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &ko.base));
	CU_ASSERT_EQUAL(rr->n_kvs, 0);
	CU_ASSERT_EQUAL(rr->count, 11);
	protobuf_c_message_free_unpacked(&rr->base, NULL);

	/* An empty prefix is every key. */
	Raftkv__V1__RangeRequest all = RAFTKV__V1__RANGE_REQUEST__INIT;
	all.prefix = true;
	rr = AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &all.base));
	CU_ASSERT_EQUAL(rr->n_kvs, 13);
	CU_ASSERT_EQUAL(rr->count, 13);
	CU_ASSERT(PBEQ(rr->kvs[0]->key, "o"));
	CU_ASSERT(PBEQ(rr->kvs[12]->key, "q"));
	protobuf_c_message_free_unpacked(&rr->base, NULL);

	/* An explicit [key, range_end), and a single key with no range_end. */
	Raftkv__V1__RangeRequest ex = RAFTKV__V1__RANGE_REQUEST__INIT;
	ex.key = PB("o");
	ex.range_end = PB("p/1");
	rr = AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &ex.base));
	CU_ASSERT_EQUAL_FATAL(rr->n_kvs, 3);
	CU_ASSERT(PBEQ(rr->kvs[2]->key, "p/0"));
	protobuf_c_message_free_unpacked(&rr->base, NULL);
	ex.range_end = PB("");
	rr = AS(Raftkv__V1__RangeResponse, ok(API_RANGE, &ex.base));
	CU_ASSERT_EQUAL_FATAL(rr->n_kvs, 1);
	check_kv(rr->kvs[0], "o", "before", 11, 11, 1);
	protobuf_c_message_free_unpacked(&rr->base, NULL);
}

static Raftkv__V1__Compare cmp_num(Raftkv__V1__Compare__Result res, const char *key,
				   Raftkv__V1__Compare__TargetCase target, uint64_t n)
{
	Raftkv__V1__Compare c = RAFTKV__V1__COMPARE__INIT;
	c.result = res;
	c.key = PB(key);
	c.target_case = target;
	switch (target) {
	case RAFTKV__V1__COMPARE__TARGET_VERSION:
		c.version = n;
		break;
	case RAFTKV__V1__COMPARE__TARGET_CREATE_REVISION:
		c.create_revision = n;
		break;
	case RAFTKV__V1__COMPARE__TARGET_MOD_REVISION:
		c.mod_revision = n;
		break;
	case RAFTKV__V1__COMPARE__TARGET_EXISTS:
		c.exists = n != 0;
		break;
	default:
		break;
	}
	return c;
}

static void test_txn(void)
{
	put("k", "v1"); /* revision 1 */
	put("x", "X");  /* revision 2 */

	Raftkv__V1__Compare c[5];
	Raftkv__V1__Compare *cp[5];
	c[0] = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "k", RAFTKV__V1__COMPARE__TARGET_VALUE,
		       0);
	c[0].value = PB("v1");
	c[1] = cmp_num(RAFTKV__V1__COMPARE__RESULT__GREATER, "k",
		       RAFTKV__V1__COMPARE__TARGET_VERSION, 0);
	c[2] = cmp_num(RAFTKV__V1__COMPARE__RESULT__LESS, "k",
		       RAFTKV__V1__COMPARE__TARGET_MOD_REVISION, 100);
	c[3] = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "k", RAFTKV__V1__COMPARE__TARGET_EXISTS,
		       1);
	c[4] = cmp_num(RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL, "missing",
		       RAFTKV__V1__COMPARE__TARGET_EXISTS, 1);
	for (int i = 0; i < 5; i++)
		cp[i] = &c[i];

	Raftkv__V1__RangeRequest rg = RAFTKV__V1__RANGE_REQUEST__INIT;
	rg.key = PB("k");
	Raftkv__V1__PutRequest pu = RAFTKV__V1__PUT_REQUEST__INIT;
	pu.key = PB("k");
	pu.value = PB("v2");
	pu.prev_kv = true;
	Raftkv__V1__DeleteRequest de = RAFTKV__V1__DELETE_REQUEST__INIT;
	de.key = PB("x");
	de.prev_kv = true;
	Raftkv__V1__PutRequest pu2 = RAFTKV__V1__PUT_REQUEST__INIT;
	pu2.key = PB("new");
	pu2.value = PB("N");
	Raftkv__V1__RequestOp ops[4], *opp[4];
	for (int i = 0; i < 4; i++) {
		raftkv__v1__request_op__init(&ops[i]);
		opp[i] = &ops[i];
	}
	ops[0].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	ops[0].put = &pu;
	ops[1].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_RANGE;
	ops[1].range = &rg;
	ops[2].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_DELETE;
	ops[2].delete_ = &de;
	ops[3].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	ops[3].put = &pu2;

	Raftkv__V1__TxnRequest t = RAFTKV__V1__TXN_REQUEST__INIT;
	t.n_compare = 5;
	t.compare = cp;
	t.n_success = 4;
	t.success = opp;
	t.n_failure = 1;
	t.failure = &opp[1];
	Raftkv__V1__TxnResponse *tr = AS(Raftkv__V1__TxnResponse, ok(API_TXN, &t.base));
	check_header(tr->header, 3, 3); /* one revision for all the writes */
	CU_ASSERT(tr->succeeded);
	CU_ASSERT_EQUAL_FATAL(tr->n_responses, 4);
	CU_ASSERT_EQUAL_FATAL(tr->responses[0]->response_case,
			      RAFTKV__V1__RESPONSE_OP__RESPONSE_PUT);
	check_kv(tr->responses[0]->put->prev_kv, "k", "v1", 1, 1, 1);
	check_header(tr->responses[0]->put->header, 3, 3);
	CU_ASSERT_EQUAL_FATAL(tr->responses[1]->response_case,
			      RAFTKV__V1__RESPONSE_OP__RESPONSE_RANGE);
	CU_ASSERT_EQUAL_FATAL(tr->responses[1]->range->n_kvs, 1);
	check_kv(tr->responses[1]->range->kvs[0], "k", "v2", 1, 3, 2); /* sees the put */
	CU_ASSERT_EQUAL_FATAL(tr->responses[2]->response_case,
			      RAFTKV__V1__RESPONSE_OP__RESPONSE_DELETE);
	CU_ASSERT_EQUAL(tr->responses[2]->delete_->deleted, 1);
	CU_ASSERT_EQUAL_FATAL(tr->responses[2]->delete_->n_prev_kvs, 1);
	check_kv(tr->responses[2]->delete_->prev_kvs[0], "x", "X", 2, 2, 1);
	CU_ASSERT_EQUAL_FATAL(tr->responses[3]->response_case,
			      RAFTKV__V1__RESPONSE_OP__RESPONSE_PUT);
	CU_ASSERT_PTR_NULL(tr->responses[3]->put->prev_kv);
	protobuf_c_message_free_unpacked(&tr->base, NULL);

	/* Same compares again: the value is now v2, so the failure branch (one range) runs. */
	tr = AS(Raftkv__V1__TxnResponse, ok(API_TXN, &t.base));
	check_header(tr->header, 3, 4);
	CU_ASSERT(!tr->succeeded);
	CU_ASSERT_EQUAL_FATAL(tr->n_responses, 1);
	CU_ASSERT_EQUAL_FATAL(tr->responses[0]->response_case,
			      RAFTKV__V1__RESPONSE_OP__RESPONSE_RANGE);
	check_kv(tr->responses[0]->range->kvs[0], "k", "v2", 1, 3, 2);
	protobuf_c_message_free_unpacked(&tr->base, NULL);

	/* create_revision compare that fails; empty failure branch. */
	Raftkv__V1__Compare cr = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "k",
					 RAFTKV__V1__COMPARE__TARGET_CREATE_REVISION, 999);
	Raftkv__V1__Compare *crp = &cr;
	Raftkv__V1__TxnRequest t2 = RAFTKV__V1__TXN_REQUEST__INIT;
	t2.n_compare = 1;
	t2.compare = &crp;
	t2.n_success = 1;
	t2.success = opp;
	tr = AS(Raftkv__V1__TxnResponse, ok(API_TXN, &t2.base));
	CU_ASSERT(!tr->succeeded);
	CU_ASSERT_EQUAL(tr->n_responses, 0);
	check_header(tr->header, 3, 5);
	protobuf_c_message_free_unpacked(&tr->base, NULL);

	/* An empty txn holds and does nothing. */
	Raftkv__V1__TxnRequest t3 = RAFTKV__V1__TXN_REQUEST__INIT;
	tr = AS(Raftkv__V1__TxnResponse, ok(API_TXN, &t3.base));
	CU_ASSERT(tr->succeeded);
	CU_ASSERT_EQUAL(tr->n_responses, 0);
	protobuf_c_message_free_unpacked(&tr->base, NULL);

	/* A prefix range inside a txn. */
	Raftkv__V1__RangeRequest pr = RAFTKV__V1__RANGE_REQUEST__INIT;
	pr.key = PB("ne");
	pr.prefix = true;
	Raftkv__V1__RequestOp rop = RAFTKV__V1__REQUEST_OP__INIT, *ropp = &rop;
	rop.request_case = RAFTKV__V1__REQUEST_OP__REQUEST_RANGE;
	rop.range = &pr;
	t3.n_success = 1;
	t3.success = &ropp;
	tr = AS(Raftkv__V1__TxnResponse, ok(API_TXN, &t3.base));
	CU_ASSERT_EQUAL_FATAL(tr->n_responses, 1);
	CU_ASSERT_EQUAL_FATAL(tr->responses[0]->range->n_kvs, 1);
	check_kv(tr->responses[0]->range->kvs[0], "new", "N", 3, 3, 1);
	protobuf_c_message_free_unpacked(&tr->base, NULL);
}

/* ---- exactly-once --------------------------------------------------------------------- */

static void test_dedup(void)
{
	Raftkv__V1__WriteId w = RAFTKV__V1__WRITE_ID__INIT;
	w.client_id = 5;
	w.sequence = 1;
	Raftkv__V1__PutRequest rq = RAFTKV__V1__PUT_REQUEST__INIT;
	rq.key = PB("a");
	rq.value = PB("1");
	rq.write_id = &w;
	size_t len, l1, l2;
	void *buf = packm(&rq.base, &len), *r1, *r2;
	CU_ASSERT_EQUAL_FATAL(serve_bytes(API_PUT, buf, len, &r1, &l1), 0);
	CU_ASSERT_EQUAL_FATAL(serve_bytes(API_PUT, buf, len, &r2, &l2), 0);
	free(buf);
	/* Only the raft index in the header differs: compare the rest. */
	Raftkv__V1__PutResponse *p1 = raftkv__v1__put_response__unpack(NULL, l1, r1);
	Raftkv__V1__PutResponse *p2 = raftkv__v1__put_response__unpack(NULL, l2, r2);
	CU_ASSERT_FATAL(p1 != NULL && p2 != NULL);
	check_header(p1->header, 1, 1);
	check_header(p2->header, 1, 2);
	raftkv__v1__put_response__free_unpacked(p1, NULL);
	raftkv__v1__put_response__free_unpacked(p2, NULL);
	free(r1);
	free(r2);
	Raftkv__V1__GetRequest g = RAFTKV__V1__GET_REQUEST__INIT;
	g.key = PB("a");
	Raftkv__V1__GetResponse *gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	check_kv(gr->kv, "a", "1", 1, 1, 1); /* applied once */
	protobuf_c_message_free_unpacked(&gr->base, NULL);

	/* A retried Put with prev_kv gets the same prev_kv, not its own value. */
	w.sequence = 2;
	rq.value = PB("2");
	rq.prev_kv = true;
	for (int i = 0; i < 2; i++) {
		Raftkv__V1__PutResponse *pr = AS(Raftkv__V1__PutResponse, ok(API_PUT, &rq.base));
		check_kv(pr->prev_kv, "a", "1", 1, 1, 1);
		CU_ASSERT_EQUAL(pr->header->revision, 2);
		protobuf_c_message_free_unpacked(&pr->base, NULL);
	}

	/* An older sequence is stale. */
	w.sequence = 1;
	const char *msg = refused(API_PUT, &rq.base, GRPC_STATUS_FAILED_PRECONDITION);
	CU_ASSERT(strncmp(msg, "stale sequence number: ", 23) == 0);

	/* The same write id on a request of another shape. */
	w.sequence = 2;
	Raftkv__V1__DeleteRequest d = RAFTKV__V1__DELETE_REQUEST__INIT;
	d.key = PB("a");
	d.write_id = &w;
	msg = refused(API_DELETE, &d.base, GRPC_STATUS_FAILED_PRECONDITION);
	CU_ASSERT(has(msg, "already used"));

	/* client_id 0: no deduplication. */
	w.client_id = 0;
	rq.prev_kv = false;
	put("b", "x");
	for (int i = 0; i < 2; i++)
		protobuf_c_message_free_unpacked(ok(API_PUT, &rq.base), NULL);
	gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	CU_ASSERT_EQUAL(gr->kv->version, 4);
	protobuf_c_message_free_unpacked(&gr->base, NULL);

	/* In a Txn only TxnRequest.write_id counts: an op's write id is ignored... */
	w.client_id = 9;
	w.sequence = 1;
	rq.write_id = &w;
	Raftkv__V1__RequestOp op = RAFTKV__V1__REQUEST_OP__INIT, *opp = &op;
	op.request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	op.put = &rq;
	Raftkv__V1__TxnRequest t = RAFTKV__V1__TXN_REQUEST__INIT;
	t.n_success = 1;
	t.success = &opp;
	for (int i = 0; i < 2; i++)
		protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
	gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	CU_ASSERT_EQUAL(gr->kv->version, 6);
	protobuf_c_message_free_unpacked(&gr->base, NULL);
	/* ... and the txn's own deduplicates. */
	t.write_id = &w;
	for (int i = 0; i < 2; i++)
		protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
	gr = AS(Raftkv__V1__GetResponse, ok(API_GET, &g.base));
	CU_ASSERT_EQUAL(gr->kv->version, 7);
	protobuf_c_message_free_unpacked(&gr->base, NULL);
}

/* ---- validation and statuses ---------------------------------------------------------- */

static void test_status_table(void)
{
	for (int code = KV_ERR_MIN; code < 0; code++)
		CU_ASSERT_NOT_EQUAL(api_status_of_kv(code), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(api_status_of_kv(0), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_ENOMEM), GRPC_STATUS_RESOURCE_EXHAUSTED);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EMALFORMED), GRPC_STATUS_INTERNAL);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EEMPTYKEY), GRPC_STATUS_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EKEYSIZE), GRPC_STATUS_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EVALUESIZE), GRPC_STATUS_RESOURCE_EXHAUSTED);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_ETOOMANYOPS), GRPC_STATUS_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_ELIMIT), GRPC_STATUS_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EINVAL), GRPC_STATUS_INVALID_ARGUMENT);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_ESTALE), GRPC_STATUS_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_EINDEX), GRPC_STATUS_INTERNAL);
	CU_ASSERT_EQUAL(api_status_of_kv(KV_ECORRUPT), GRPC_STATUS_INTERNAL);
	CU_ASSERT_EQUAL(api_status_of_kv(-1000), GRPC_STATUS_INTERNAL);
}

static void test_malformed(void)
{
	static const unsigned char junk[] = {0x0a, 0x7f, 'a'}; /* bytes field longer than input */
	for (enum api_method m = API_PUT; m <= API_TXN; m++) {
		void *resp = NULL;
		size_t len = 0;
		CU_ASSERT_EQUAL(serve_bytes(m, junk, sizeof(junk), &resp, &len),
				GRPC_STATUS_INVALID_ARGUMENT);
		CU_ASSERT_STRING_EQUAL(fx.err, "malformed request");
	}
	struct api_request r;
	CU_ASSERT_EQUAL(api_decode((enum api_method)99, "", 0, &fx.o, &r, fx.err, ERRLEN),
			GRPC_STATUS_UNIMPLEMENTED);
	/* Replies refuse what they cannot use. */
	Raftkv__V1__PutRequest rq = RAFTKV__V1__PUT_REQUEST__INIT;
	rq.key = PB("k");
	size_t len;
	void *buf = packm(&rq.base, &len), *resp;
	CU_ASSERT_EQUAL_FATAL(api_decode(API_PUT, buf, len, &fx.o, &r, fx.err, ERRLEN), 0);
	struct api_header h = {1, 1, 1};
	CU_ASSERT_EQUAL(api_write_reply(&r, "\x01\x02", 2, &h, &resp, &len, fx.err, ERRLEN),
			GRPC_STATUS_INTERNAL);
	CU_ASSERT_EQUAL(api_read_reply(&r, fx.s, &h, &resp, &len, fx.err, ERRLEN),
			GRPC_STATUS_INTERNAL);
	api_request_free(&r);
	free(buf);
}

static void test_limits(void)
{
	small_limits(); /* keys <= 8, values <= 4, txn ops <= 2, range limit <= 5 */
	Raftkv__V1__PutRequest p = RAFTKV__V1__PUT_REQUEST__INIT;
	p.value = PB("v");
	CU_ASSERT(has(refused(API_PUT, &p.base, GRPC_STATUS_INVALID_ARGUMENT), "empty key"));
	p.key = PB("123456789");
	CU_ASSERT(has(refused(API_PUT, &p.base, GRPC_STATUS_INVALID_ARGUMENT),
		      "key too large (at most 8 bytes)"));
	p.key = PB("12345678");
	protobuf_c_message_free_unpacked(ok(API_PUT, &p.base), NULL);
	p.value = PB("12345");
	CU_ASSERT(has(refused(API_PUT, &p.base, GRPC_STATUS_RESOURCE_EXHAUSTED),
		      "value too large (at most 4 bytes)"));
	p.value = PB("1234");
	p.prev_kv = true; /* a txn of two ops: still within max_txn_ops */
	protobuf_c_message_free_unpacked(ok(API_PUT, &p.base), NULL);

	Raftkv__V1__GetRequest g = RAFTKV__V1__GET_REQUEST__INIT;
	refused(API_GET, &g.base, GRPC_STATUS_INVALID_ARGUMENT);
	g.key = PB("1234567890");
	refused(API_GET, &g.base, GRPC_STATUS_INVALID_ARGUMENT);
	g.key = PB("k");
	g.consistency = 7;
	CU_ASSERT(has(refused(API_GET, &g.base, GRPC_STATUS_INVALID_ARGUMENT), "consistency"));

	Raftkv__V1__DeleteRequest d = RAFTKV__V1__DELETE_REQUEST__INIT;
	refused(API_DELETE, &d.base, GRPC_STATUS_INVALID_ARGUMENT);
	d.key = PB("a");
	d.range_end = PB("1234567890");
	refused(API_DELETE, &d.base, GRPC_STATUS_INVALID_ARGUMENT);

	Raftkv__V1__AppendRequest a = RAFTKV__V1__APPEND_REQUEST__INIT;
	a.suffix = PB("x");
	refused(API_APPEND, &a.base, GRPC_STATUS_INVALID_ARGUMENT);
	a.key = PB("k");
	a.suffix = PB("12345");
	refused(API_APPEND, &a.base, GRPC_STATUS_RESOURCE_EXHAUSTED);

	Raftkv__V1__RangeRequest r = RAFTKV__V1__RANGE_REQUEST__INIT;
	r.key = PB("a");
	r.limit = 6;
	CU_ASSERT(has(refused(API_RANGE, &r.base, GRPC_STATUS_INVALID_ARGUMENT),
		      "range limit too large (at most 5)"));
	r.limit = 5;
	protobuf_c_message_free_unpacked(ok(API_RANGE, &r.base), NULL);
	r.key = PB("");
	refused(API_RANGE, &r.base, GRPC_STATUS_INVALID_ARGUMENT);
	r.consistency = -1;
	r.key = PB("a");
	refused(API_RANGE, &r.base, GRPC_STATUS_INVALID_ARGUMENT);

	/* Txn: counts, compares, ops. */
	Raftkv__V1__Compare c[3], *cp[3];
	for (int i = 0; i < 3; i++) {
		c[i] = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "k",
			       RAFTKV__V1__COMPARE__TARGET_VERSION, 0);
		cp[i] = &c[i];
	}
	Raftkv__V1__TxnRequest t = RAFTKV__V1__TXN_REQUEST__INIT;
	t.compare = cp;
	t.n_compare = 3;
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT),
		      "too many operations"));
	t.n_compare = 1;
	protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
	c[0].target_case = RAFTKV__V1__COMPARE__TARGET__NOT_SET;
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT), "no target"));
	c[0] = cmp_num(RAFTKV__V1__COMPARE__RESULT__GREATER, "k",
		       RAFTKV__V1__COMPARE__TARGET_EXISTS, 1);
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT), "exists"));
	c[0].result = 17;
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT), "result"));
	c[0] = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "", RAFTKV__V1__COMPARE__TARGET_VERSION,
		       0);
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT), "empty key"));
	c[0] = cmp_num(RAFTKV__V1__COMPARE__RESULT__EQUAL, "k", RAFTKV__V1__COMPARE__TARGET_VALUE,
		       0);
	c[0].value = PB("12345");
	refused(API_TXN, &t.base, GRPC_STATUS_RESOURCE_EXHAUSTED);
	t.n_compare = 0;

	Raftkv__V1__RequestOp ops[3], *opp[3];
	Raftkv__V1__PutRequest pp = RAFTKV__V1__PUT_REQUEST__INIT;
	pp.key = PB("k");
	pp.value = PB("v");
	pp.prev_kv = true;
	for (int i = 0; i < 3; i++) {
		raftkv__v1__request_op__init(&ops[i]);
		ops[i].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
		ops[i].put = &pp;
		opp[i] = &ops[i];
	}
	t.success = opp;
	t.n_success = 1; /* prev_kv: GET + PUT = 2 ops */
	protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
	t.n_success = 2; /* 4 ops */
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT), "counts twice"));
	pp.prev_kv = false;
	protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
	t.failure = opp;
	t.n_failure = 3;
	refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT);
	t.n_failure = 0;
	ops[1].request_case = RAFTKV__V1__REQUEST_OP__REQUEST__NOT_SET;
	CU_ASSERT(has(refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT),
		      "success op 1: no request"));
	ops[1].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	pp.value = PB("12345");
	refused(API_TXN, &t.base, GRPC_STATUS_RESOURCE_EXHAUSTED);
	pp.value = PB("v");
	Raftkv__V1__RangeRequest big = RAFTKV__V1__RANGE_REQUEST__INIT;
	big.key = PB("a");
	big.limit = 6;
	ops[0].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_RANGE;
	ops[0].range = &big;
	refused(API_TXN, &t.base, GRPC_STATUS_INVALID_ARGUMENT);
	big.limit = 0;
	protobuf_c_message_free_unpacked(ok(API_TXN, &t.base), NULL);
}

/* ---- fuzz ----------------------------------------------------------------------------- */

static uint64_t fuzz_seed(void)
{
	const char *env = getenv("RAFTKV_FUZZ_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0)
				    : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	fprintf(stderr, "\n  fuzz seed %llu (RAFTKV_FUZZ_SEED=%llu reproduces)\n",
		(unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

static bool valid_status(grpc_status_code st)
{
	return st >= GRPC_STATUS_OK && st <= GRPC_STATUS_UNAUTHENTICATED;
}

/* Every method with a realistic request to mutate, served on a small-limits store so the
 * limits are hit often. */
static void test_fuzz(void)
{
	uint64_t seed = fuzz_seed();
	struct prng p;
	prng_seed(&p, seed);
	small_limits();
	put("k", "v");
	put("k2", "v2");

	Raftkv__V1__WriteId w = RAFTKV__V1__WRITE_ID__INIT;
	w.client_id = 3;
	w.sequence = 10;
	Raftkv__V1__PutRequest pu = RAFTKV__V1__PUT_REQUEST__INIT;
	pu.key = PB("k");
	pu.value = PB("abc");
	pu.write_id = &w;
	pu.prev_kv = true;
	Raftkv__V1__GetRequest ge = RAFTKV__V1__GET_REQUEST__INIT;
	ge.key = PB("k");
	Raftkv__V1__DeleteRequest de = RAFTKV__V1__DELETE_REQUEST__INIT;
	de.key = PB("a");
	de.range_end = PB("z");
	de.prev_kv = true;
	Raftkv__V1__RangeRequest ra = RAFTKV__V1__RANGE_REQUEST__INIT;
	ra.key = PB("k");
	ra.prefix = true;
	ra.limit = 1;
	ra.keys_only = true;
	Raftkv__V1__AppendRequest ap = RAFTKV__V1__APPEND_REQUEST__INIT;
	ap.key = PB("k2");
	ap.suffix = PB("x");
	Raftkv__V1__Compare c = cmp_num(RAFTKV__V1__COMPARE__RESULT__LESS, "k",
					RAFTKV__V1__COMPARE__TARGET_MOD_REVISION, 50),
			    *cp = &c;
	Raftkv__V1__RequestOp ops[3], *opp[3];
	for (int i = 0; i < 3; i++) {
		raftkv__v1__request_op__init(&ops[i]);
		opp[i] = &ops[i];
	}
	ops[0].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	ops[0].put = &pu;
	ops[1].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_RANGE;
	ops[1].range = &ra;
	ops[2].request_case = RAFTKV__V1__REQUEST_OP__REQUEST_DELETE;
	ops[2].delete_ = &de;
	Raftkv__V1__TxnRequest tx = RAFTKV__V1__TXN_REQUEST__INIT;
	tx.n_compare = 1;
	tx.compare = &cp;
	tx.n_success = 1;
	tx.success = opp;
	tx.n_failure = 2;
	tx.failure = &opp[1];
	tx.write_id = &w;
	const ProtobufCMessage *reqs[] = {&pu.base, &ge.base, &de.base,
					  &ra.base, &ap.base, &tx.base};
	void *seeds[6];
	size_t seed_len[6];
	for (int i = 0; i < 6; i++)
		seeds[i] = packm(reqs[i], &seed_len[i]);

	bool ok_all = true;
	unsigned served = 0;
	unsigned char buf[512];
	for (unsigned it = 0; it < FUZZ_ITERATIONS && ok_all; it++) {
		enum api_method m = (enum api_method)prng_range(&p, API_PUT, API_TXN);
		size_t len;
		if (it % 4 == 0) {
			len = prng_below(&p, 64);
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)prng_next(&p);
		} else {
			len = seed_len[m - 1];
			memcpy(buf, seeds[m - 1], len);
			for (uint64_t k = prng_range(&p, 1, 3); k > 0; k--) {
				switch (prng_below(&p, 3)) {
				case 0:
					if (len > 0)
						buf[prng_below(&p, len)] ^=
							(unsigned char)(1u << prng_below(&p, 8));
					break;
				case 1:
					len = prng_below(&p, len + 1);
					break;
				default:
					if (len > 0)
						buf[prng_below(&p, len)] =
							(unsigned char)prng_next(&p);
					break;
				}
			}
		}
		unsigned char *exact = malloc(len + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
		memcpy(exact, buf, len);
		void *resp = NULL;
		size_t resp_len = 0;
		grpc_status_code st = serve_bytes(m, exact, len, &resp, &resp_len);
		if (!valid_status(st) || (st != GRPC_STATUS_OK && fx.err[0] == 0)) {
			fprintf(stderr, "  fuzz: iteration %u: status %d\n", it, st);
			ok_all = false;
		}
		if (st == GRPC_STATUS_OK) {
			served++;
			ProtobufCMessage *out = protobuf_c_message_unpack(response_descriptor(m),
									  NULL, resp_len, resp);
			if (out == NULL) {
				fprintf(stderr, "  fuzz: iteration %u: bad response\n", it);
				ok_all = false;
			}
			protobuf_c_message_free_unpacked(out, NULL);
			free(resp);
		}
		free(exact);
	}
	fprintf(stderr, "  fuzz: %u of %u inputs served OK\n", served, FUZZ_ITERATIONS);
	if (!ok_all)
		fprintf(stderr, "  fuzz failed: RAFTKV_FUZZ_SEED=%llu reproduces\n",
			(unsigned long long)seed);
	CU_ASSERT(ok_all);
	CU_ASSERT(served > 1000); /* the mutations still reach the store */
	for (int i = 0; i < 6; i++)
		free(seeds[i]);
}

static CU_TestInfo api_tests[] = {
	{"put and get, prev_kv, headers, consistency", test_put_get},
	{"delete: key, range, prev_kvs, deleted counts", test_delete},
	{"append returns the new value", test_append},
	{"append beyond max_value_bytes refused at apply", test_append_too_big_at_apply},
	{"range: prefix paging, keys_only, count_only, empty prefix", test_range},
	{"txn: compares, both branches, per-op responses", test_txn},
	{"write ids: retries, stale, reuse, txn", test_dedup},
	{"every kv code has its status", test_status_table},
	{"malformed bytes and misuse", test_malformed},
	{"limits and invalid requests", test_limits},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo fuzz_tests[] = {
	{"random and mutated requests through the whole path", test_fuzz},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"api", NULL, NULL, setup, teardown, api_tests},
		{"api_fuzz", NULL, NULL, setup, teardown, fuzz_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
