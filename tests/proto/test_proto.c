/* The generated API code and the embedded descriptor set: messages round-trip, malformed
 * bytes are refused without harm, and the descriptor set (what server reflection will serve)
 * describes both public services method by method. */
#include <CUnit/Basic.h>
#include <string.h>

#include "common/prng.h"
#include "cunit_main.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "raftkv/v1/cluster.pb-c.h"
#include "raftkv/v1/kv.pb-c.h"
#include "raftkv_descriptor_set.h"

static ProtobufCBinaryData bytes(const char *s)
{
	return (ProtobufCBinaryData){.len = strlen(s), .data = (uint8_t *)s};
}

/* A transaction using every oneof arm: compares on value and existence, a put and a delete. */
static void test_txn_round_trip(void)
{
	Raftkv__V1__Compare c1 = RAFTKV__V1__COMPARE__INIT, c2 = RAFTKV__V1__COMPARE__INIT;
	c1.key = bytes("k1");
	c1.result = RAFTKV__V1__COMPARE__RESULT__EQUAL;
	c1.target_case = RAFTKV__V1__COMPARE__TARGET_VALUE;
	c1.value = bytes("v1");
	c2.key = bytes("k2");
	c2.result = RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL;
	c2.target_case = RAFTKV__V1__COMPARE__TARGET_EXISTS;
	c2.exists = 1;
	Raftkv__V1__Compare *cmp[] = {&c1, &c2};

	Raftkv__V1__PutRequest put = RAFTKV__V1__PUT_REQUEST__INIT;
	put.key = bytes("k2");
	put.value = bytes("v2");
	Raftkv__V1__DeleteRequest del = RAFTKV__V1__DELETE_REQUEST__INIT;
	del.key = bytes("a");
	del.range_end = bytes("b");
	Raftkv__V1__RequestOp op1 = RAFTKV__V1__REQUEST_OP__INIT,
			      op2 = RAFTKV__V1__REQUEST_OP__INIT;
	op1.request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
	op1.put = &put;
	op2.request_case = RAFTKV__V1__REQUEST_OP__REQUEST_DELETE;
	op2.delete_ = &del;
	Raftkv__V1__RequestOp *ops[] = {&op1, &op2};
	Raftkv__V1__WriteId wid = RAFTKV__V1__WRITE_ID__INIT;
	wid.client_id = 77;
	wid.sequence = 12345678901ULL;

	Raftkv__V1__TxnRequest txn = RAFTKV__V1__TXN_REQUEST__INIT;
	txn.n_compare = 2;
	txn.compare = cmp;
	txn.n_success = 2;
	txn.success = ops;
	txn.write_id = &wid;

	uint8_t buf[512];
	size_t len = raftkv__v1__txn_request__get_packed_size(&txn);
	CU_ASSERT_FATAL(len <= sizeof(buf));
	CU_ASSERT_EQUAL(raftkv__v1__txn_request__pack(&txn, buf), len);

	Raftkv__V1__TxnRequest *back = raftkv__v1__txn_request__unpack(NULL, len, buf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back);
	CU_ASSERT_EQUAL(back->n_compare, 2);
	CU_ASSERT_EQUAL(back->compare[0]->target_case, RAFTKV__V1__COMPARE__TARGET_VALUE);
	CU_ASSERT_EQUAL(back->compare[0]->value.len, 2);
	CU_ASSERT_EQUAL(memcmp(back->compare[0]->value.data, "v1", 2), 0);
	CU_ASSERT_EQUAL(back->compare[1]->target_case, RAFTKV__V1__COMPARE__TARGET_EXISTS);
	CU_ASSERT_TRUE(back->compare[1]->exists);
	CU_ASSERT_EQUAL(back->n_success, 2);
	CU_ASSERT_EQUAL(back->success[1]->request_case, RAFTKV__V1__REQUEST_OP__REQUEST_DELETE);
	CU_ASSERT_EQUAL(back->success[1]->delete_->range_end.len, 1);
	CU_ASSERT_EQUAL(back->n_failure, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(back->write_id);
	CU_ASSERT_EQUAL(back->write_id->sequence, 12345678901ULL);
	raftkv__v1__txn_request__free_unpacked(back, NULL);
}

/* Bytes from the network: every truncation and random garbage either decodes or is refused;
 * nothing crashes or leaks (the sanitizer build checks both). */
static void test_malformed_input_refused(void)
{
	Raftkv__V1__PutRequest put = RAFTKV__V1__PUT_REQUEST__INIT;
	put.key = bytes("some-key");
	put.value = bytes("some value that is long enough");
	uint8_t buf[128];
	size_t len = raftkv__v1__put_request__pack(&put, buf);
	size_t refused = 0;
	for (size_t n = 0; n < len; n++) {
		Raftkv__V1__PutRequest *p = raftkv__v1__put_request__unpack(NULL, n, buf);
		refused += p == NULL;
		if (p != NULL)
			raftkv__v1__put_request__free_unpacked(p, NULL);
	}
	CU_ASSERT_TRUE(refused > 0); /* a cut inside a field is refused */
	struct prng g;
	prng_seed(&g, 42);
	for (int i = 0; i < 20000; i++) {
		uint8_t junk[64];
		size_t n = (size_t)prng_below(&g, sizeof(junk) + 1);
		for (size_t j = 0; j < n; j++)
			junk[j] = (uint8_t)prng_next(&g);
		Raftkv__V1__TxnRequest *t = raftkv__v1__txn_request__unpack(NULL, n, junk);
		if (t != NULL)
			raftkv__v1__txn_request__free_unpacked(t, NULL);
	}
}

static const Google__Protobuf__ServiceDescriptorProto *
find_service(const Google__Protobuf__FileDescriptorSet *set, const char *file, const char *name)
{
	for (size_t i = 0; i < set->n_file; i++) {
		const Google__Protobuf__FileDescriptorProto *f = set->file[i];
		if (strcmp(f->name, file) != 0)
			continue;
		CU_ASSERT_STRING_EQUAL(f->package, "raftkv.v1");
		for (size_t j = 0; j < f->n_service; j++)
			if (strcmp(f->service[j]->name, name) == 0)
				return f->service[j];
	}
	return NULL;
}

static void expect_methods(const Google__Protobuf__ServiceDescriptorProto *s,
			   const char *const *names, size_t n)
{
	CU_ASSERT_EQUAL_FATAL(s->n_method, n);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_STRING_EQUAL(s->method[i]->name, names[i]);
}

static void test_descriptor_set_describes_services(void)
{
	CU_ASSERT_TRUE_FATAL(raftkv_descriptor_set_len > 0);
	Google__Protobuf__FileDescriptorSet *set = google__protobuf__file_descriptor_set__unpack(
		NULL, raftkv_descriptor_set_len, raftkv_descriptor_set);
	CU_ASSERT_PTR_NOT_NULL_FATAL(set);
	const Google__Protobuf__ServiceDescriptorProto *kv =
		find_service(set, "raftkv/v1/kv.proto", "KV");
	CU_ASSERT_PTR_NOT_NULL_FATAL(kv);
	const char *const kv_methods[] = {"Put", "Get", "Delete", "Range", "Append", "Txn"};
	expect_methods(kv, kv_methods, 6);
	CU_ASSERT_STRING_EQUAL(kv->method[0]->input_type, ".raftkv.v1.PutRequest");
	const Google__Protobuf__ServiceDescriptorProto *cl =
		find_service(set, "raftkv/v1/cluster.proto", "Cluster");
	CU_ASSERT_PTR_NOT_NULL_FATAL(cl);
	const char *const cl_methods[] = {"Status", "MemberList"};
	expect_methods(cl, cl_methods, 2);
	/* The C service descriptors generated from the same files agree. */
	CU_ASSERT_STRING_EQUAL(raftkv__v1__kv__descriptor.name, "raftkv.v1.KV");
	CU_ASSERT_EQUAL(raftkv__v1__kv__descriptor.n_methods, 6);
	google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
}

static CU_TestInfo tests[] = {
	{"txn request round trip (every oneof arm)", test_txn_round_trip},
	{"malformed input refused", test_malformed_input_refused},
	{"descriptor set describes KV and Cluster", test_descriptor_set_describes_services},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"proto", NULL, NULL, NULL, NULL, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
