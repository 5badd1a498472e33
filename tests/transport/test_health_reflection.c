/* The transport's own services: grpc.health.v1.Health (Check, and Watch driven by a raw
 * gRPC client since it is server-streaming) and server reflection (the index directly, then
 * live over v1 and v1alpha). */
#include <CUnit/Basic.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "raftkv_descriptor_set.h"
#include "server/transport/reflection.h"
#include "tp_testlib.h"

#define KV "raftkv.v1.KV"

static struct tp_loop *loop;
static struct tp_server *srv;
static struct tp_channel *ch;
static char target[64];
static struct outcome out;

static int suite_init(void)
{
	tp_global_init();
	loop = tp_loop_new();
	return loop ? 0 : 1;
}

static int suite_clean(void)
{
	tp_loop_free(loop);
	tp_global_shutdown();
	return 0;
}

static void setup(void)
{
	const char *listen[] = {"127.0.0.1:0"};
	const char *health[] = {KV, "raftkv.v1.Cluster"};
	struct tp_server_options o = {.listen = listen,
				      .n_listen = 1,
				      .health_services = health,
				      .n_health_services = 2,
				      .descriptor_set = raftkv_descriptor_set,
				      .descriptor_set_len = raftkv_descriptor_set_len};
	char err[256];
	srv = tp_server_new(loop, &o, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	snprintf(target, sizeof(target), "127.0.0.1:%d", tp_server_port(srv, 0));
	ch = tp_channel_new(loop, target, NULL);
}

static void teardown(void)
{
	tp_channel_free(ch);
	tp_server_free(srv);
}

/* ---- health ------------------------------------------------------------------------------ */

/* Check(service): the status code, and the serving status when OK. */
static int check(const char *service, int *serving)
{
	Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	q.service = (char *)service;
	uint8_t buf[256];
	size_t len = grpc__health__v1__health_check_request__pack(&q, buf);
	outcome_reset(&out);
	tp_unary(ch, "/grpc.health.v1.Health/Check", buf, len, NULL, 0, 5000, false, outcome_done,
		 &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&out.n_done), 1);
	*serving = -1;
	if (out.status == GRPC_STATUS_OK) {
		Grpc__Health__V1__HealthCheckResponse *r =
			grpc__health__v1__health_check_response__unpack(NULL, out.len, out.msg);
		CU_ASSERT_PTR_NOT_NULL_FATAL(r);
		*serving = r->status;
		grpc__health__v1__health_check_response__free_unpacked(r, NULL);
	}
	return out.status;
}

enum {
	SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING,
	NOT_SERVING = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING,
	SERVICE_UNKNOWN = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN,
};

static void test_health_check(void)
{
	int st;
	CU_ASSERT_EQUAL(check("", &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, NOT_SERVING);
	CU_ASSERT_EQUAL(check(KV, &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, NOT_SERVING);
	tp_server_set_serving(srv, KV, true);
	CU_ASSERT_EQUAL(check(KV, &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, SERVING);
	CU_ASSERT_EQUAL(check("raftkv.v1.Cluster", &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, NOT_SERVING);
	tp_server_set_serving(srv, "", true); /* sets every service */
	CU_ASSERT_EQUAL(check("raftkv.v1.Cluster", &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, SERVING);
	CU_ASSERT_EQUAL(check("", &st), GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(st, SERVING);
	CU_ASSERT_EQUAL(check("no.such.Service", &st), GRPC_STATUS_NOT_FOUND);
}

/* A raw server-streaming client on its own completion queue. */
struct watch {
	grpc_completion_queue *cq;
	grpc_channel *ch;
	grpc_call *call;
	grpc_byte_buffer *req, *resp;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
	bool done[4]; /* by tag: 1 = start, 2 = message, 3 = status */
};

static gpr_timespec in_ms(int ms)
{
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static bool watch_wait(struct watch *w, int tag, int ms)
{
	gpr_timespec until = in_ms(ms);
	while (!w->done[tag]) {
		grpc_event ev = grpc_completion_queue_next(w->cq, until, NULL);
		if (ev.type != GRPC_OP_COMPLETE)
			return false;
		w->done[(intptr_t)ev.tag] = true;
	}
	w->done[tag] = false;
	return true;
}

static void watch_start(struct watch *w, const char *service)
{
	memset(w, 0, sizeof(*w));
	w->cq = grpc_completion_queue_create_for_next(NULL);
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	w->ch = grpc_channel_create(target, creds, NULL);
	grpc_channel_credentials_release(creds);
	w->call = grpc_channel_create_call(
		w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq,
		grpc_slice_from_static_string("/grpc.health.v1.Health/Watch"), NULL, in_ms(10000),
		NULL);
	Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
	q.service = (char *)service;
	uint8_t buf[256];
	grpc_slice s = grpc_slice_from_copied_buffer(
		(const char *)buf, grpc__health__v1__health_check_request__pack(&q, buf));
	w->req = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	grpc_metadata_array_init(&w->init_md);
	grpc_metadata_array_init(&w->trail_md);
	grpc_op ops[4];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = w->req;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->init_md;
	CU_ASSERT_EQUAL(grpc_call_start_batch(w->call, ops, 4, (void *)1, NULL), GRPC_CALL_OK);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &w->trail_md;
	ops[0].data.recv_status_on_client.status = &w->status;
	ops[0].data.recv_status_on_client.status_details = &w->details;
	CU_ASSERT_EQUAL(grpc_call_start_batch(w->call, ops, 1, (void *)3, NULL), GRPC_CALL_OK);
}

/* The next status sent by the server; -1 when the stream ended instead. */
static int watch_next(struct watch *w)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &w->resp;
	CU_ASSERT_EQUAL(grpc_call_start_batch(w->call, &op, 1, (void *)2, NULL), GRPC_CALL_OK);
	CU_ASSERT_TRUE_FATAL(watch_wait(w, 2, 5000));
	if (w->resp == NULL)
		return -1;
	grpc_byte_buffer_reader r;
	grpc_byte_buffer_reader_init(&r, w->resp);
	grpc_slice s = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	grpc_byte_buffer_destroy(w->resp);
	w->resp = NULL;
	Grpc__Health__V1__HealthCheckResponse *m = grpc__health__v1__health_check_response__unpack(
		NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
	grpc_slice_unref(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	int st = m->status;
	grpc__health__v1__health_check_response__free_unpacked(m, NULL);
	return st;
}

/* Cancel (unless over), collect the status, free everything. */
static grpc_status_code watch_end(struct watch *w, bool cancel)
{
	if (cancel)
		grpc_call_cancel(w->call, NULL);
	CU_ASSERT_TRUE(watch_wait(w, 3, 5000));
	CU_ASSERT_TRUE(watch_wait(w, 1, 5000));
	grpc_status_code st = w->status;
	grpc_call_unref(w->call);
	grpc_byte_buffer_destroy(w->req);
	grpc_metadata_array_destroy(&w->init_md);
	grpc_metadata_array_destroy(&w->trail_md);
	grpc_slice_unref(w->details);
	grpc_channel_destroy(w->ch);
	grpc_completion_queue_shutdown(w->cq);
	while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(w->cq);
	return st;
}

static void test_health_watch(void)
{
	struct watch w;
	watch_start(&w, KV);
	CU_ASSERT_EQUAL(watch_next(&w), NOT_SERVING); /* the current status at once */
	tp_server_set_serving(srv, KV, true);
	CU_ASSERT_EQUAL(watch_next(&w), SERVING);
	tp_server_set_serving(srv, KV, true); /* no change: nothing sent */
	tp_server_set_serving(srv, "", false);
	CU_ASSERT_EQUAL(watch_next(&w), NOT_SERVING);
	CU_ASSERT_EQUAL(watch_end(&w, true), GRPC_STATUS_CANCELLED);

	watch_start(&w, "no.such.Service");
	CU_ASSERT_EQUAL(watch_next(&w), SERVICE_UNKNOWN);
	CU_ASSERT_EQUAL(watch_end(&w, true), GRPC_STATUS_CANCELLED);
}

/* The server stopping ends a watch with UNAVAILABLE. */
static void test_health_watch_ends_at_stop(void)
{
	struct watch w;
	watch_start(&w, "");
	CU_ASSERT_EQUAL(watch_next(&w), NOT_SERVING);
	tp_server_free(srv);
	srv = NULL;
	CU_ASSERT_EQUAL(watch_next(&w), -1);
	CU_ASSERT_EQUAL(watch_end(&w, false), GRPC_STATUS_UNAVAILABLE);
	/* teardown frees a NULL server: fine */
}

/* ---- reflection -------------------------------------------------------------------------- */

static void test_reflection_index(void)
{
	char err[256];
	struct tp_refl *r =
		tp_refl_new(raftkv_descriptor_set, raftkv_descriptor_set_len, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	const char *want[] = {KV,
			      "raftkv.v1.Cluster",
			      "raftkv.v1.Raft",
			      "grpc.health.v1.Health",
			      "grpc.reflection.v1.ServerReflection",
			      "grpc.reflection.v1alpha.ServerReflection"};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		bool found = false;
		for (size_t j = 0; j < tp_refl_n_services(r); j++)
			found |= strcmp(tp_refl_service(r, j), want[i]) == 0;
		CU_ASSERT_TRUE(found);
	}
	CU_ASSERT_STRING_EQUAL(tp_refl_file_of(r, KV), "raftkv/v1/kv.proto");
	CU_ASSERT_STRING_EQUAL(tp_refl_file_of(r, ".raftkv.v1.PutRequest"), "raftkv/v1/kv.proto");
	CU_ASSERT_STRING_EQUAL(tp_refl_file_of(r, "raftkv.v1.KV.Put"), "raftkv/v1/kv.proto");
	CU_ASSERT_STRING_EQUAL(tp_refl_file_of(r, "raftkv.v1.ReadConsistency"),
			       "raftkv/v1/kv.proto");
	CU_ASSERT_STRING_EQUAL(tp_refl_file_of(r, "raftkv.v1.StatusResponse.Role"),
			       "raftkv/v1/cluster.proto");
	CU_ASSERT_STRING_EQUAL(
		tp_refl_file_of(r, "grpc.health.v1.HealthCheckResponse.ServingStatus"),
		"grpc/health/v1/health.proto");
	CU_ASSERT_PTR_NULL(tp_refl_file_of(r, "raftkv.v1.Nope"));
	CU_ASSERT_PTR_NULL(tp_refl_file_of(r, "raftkv.v1"));
	/* Garbage is refused without harm. */
	CU_ASSERT_PTR_NULL(tp_refl_new("\x0a\x05zz", 4, err, sizeof(err)));
	void *resp = NULL;
	size_t len = 0;
	CU_ASSERT_EQUAL(tp_refl_answer(r, "\xff\xff\xff", 3, &resp, &len), -1);
	tp_refl_free(r);
}

/* One request over a live stream (tp_ostream: send it, half-close, take the reply). */
static const uint8_t *refl_req;
static size_t refl_req_len;
static bool refl_sent;

static enum tp_pull refl_pull(void *arg, void **msg, size_t *len)
{
	(void)arg;
	if (refl_sent)
		return TP_PULL_END;
	refl_sent = true;
	*msg = malloc(refl_req_len);
	memcpy(*msg, refl_req, refl_req_len);
	*len = refl_req_len;
	return TP_PULL_MSG;
}

static Grpc__Reflection__V1__ServerReflectionResponse *
ask(const char *version, Grpc__Reflection__V1__ServerReflectionRequest *q)
{
	uint8_t buf[512];
	refl_req_len = grpc__reflection__v1__server_reflection_request__pack(q, buf);
	refl_req = buf;
	refl_sent = false;
	char method[128];
	snprintf(method, sizeof(method),
		 "/grpc.reflection.%s.ServerReflection/ServerReflectionInfo", version);
	outcome_reset(&out);
	struct tp_ostream *os =
		tp_ostream_new(ch, method, NULL, 0, 5000, refl_pull, outcome_done, &out);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	tp_ostream_free(os);
	CU_ASSERT_EQUAL_FATAL(out.status, GRPC_STATUS_OK);
	Grpc__Reflection__V1__ServerReflectionResponse *r =
		grpc__reflection__v1__server_reflection_response__unpack(NULL, out.len, out.msg);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	return r;
}

static void test_reflection_live(void)
{
	Grpc__Reflection__V1__ServerReflectionRequest q =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
	q.message_request_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
	q.list_services = "";
	Grpc__Reflection__V1__ServerReflectionResponse *r = ask("v1", &q);
	CU_ASSERT_EQUAL_FATAL(
		r->message_response_case,
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
	CU_ASSERT_EQUAL(r->list_services_response->n_service, 6);
	bool health = false;
	for (size_t i = 0; i < r->list_services_response->n_service; i++)
		health |= strcmp(r->list_services_response->service[i]->name,
				 "grpc.health.v1.Health") == 0;
	CU_ASSERT_TRUE(health);
	grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

	q.message_request_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
	q.file_containing_symbol = KV;
	r = ask("v1alpha", &q);
	CU_ASSERT_EQUAL_FATAL(
		r->message_response_case,
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r->original_request);
	CU_ASSERT_STRING_EQUAL(r->original_request->file_containing_symbol, KV);
	Grpc__Reflection__V1__FileDescriptorResponse *f = r->file_descriptor_response;
	CU_ASSERT_FATAL(f->n_file_descriptor_proto >= 1);
	Google__Protobuf__FileDescriptorProto *fd = google__protobuf__file_descriptor_proto__unpack(
		NULL, f->file_descriptor_proto[0].len, f->file_descriptor_proto[0].data);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fd);
	CU_ASSERT_STRING_EQUAL(fd->name, "raftkv/v1/kv.proto");
	CU_ASSERT_EQUAL(f->n_file_descriptor_proto, 1 + fd->n_dependency);
	google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
	grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

	q.message_request_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
	q.file_by_filename = "no/such.proto";
	r = ask("v1", &q);
	CU_ASSERT_EQUAL_FATAL(
		r->message_response_case,
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
	CU_ASSERT_EQUAL(r->error_response->error_code, GRPC_STATUS_NOT_FOUND);
	grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);

	q.message_request_case =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
	q.all_extension_numbers_of_type = "raftkv.v1.PutRequest";
	r = ask("v1", &q);
	CU_ASSERT_EQUAL_FATAL(
		r->message_response_case,
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
	CU_ASSERT_EQUAL(r->error_response->error_code, GRPC_STATUS_UNIMPLEMENTED);
	grpc__reflection__v1__server_reflection_response__free_unpacked(r, NULL);
}

static void test_no_reflection_without_set(void)
{
	const char *listen[] = {"127.0.0.1:0"};
	struct tp_server_options o = {.listen = listen, .n_listen = 1};
	char err[256], t[64];
	struct tp_server *bare = tp_server_new(loop, &o, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(bare);
	snprintf(t, sizeof(t), "127.0.0.1:%d", tp_server_port(bare, 0));
	struct tp_channel *c = tp_channel_new(loop, t, NULL);
	outcome_reset(&out);
	tp_unary(c, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", "", 0, NULL, 0,
		 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_UNIMPLEMENTED);
	tp_channel_free(c);
	tp_server_free(bare);
}

static CU_TestInfo health_tests[] = {
	{"Check: \"\", services, unknown", test_health_check},
	{"Watch: NOT_SERVING -> SERVING -> NOT_SERVING", test_health_watch},
	{"Watch ends when the server stops", test_health_watch_ends_at_stop},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo reflection_tests[] = {
	{"index: services and symbols", test_reflection_index},
	{"live: list, by symbol, by file, extensions", test_reflection_live},
	{"no descriptor set: no reflection", test_no_reflection_without_set},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"health", suite_init, suite_clean, setup, teardown, health_tests},
		{"reflection", suite_init, suite_clean, setup, teardown, reflection_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
