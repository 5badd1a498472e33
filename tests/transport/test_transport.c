/* The gRPC transport end to end on loopback: unary calls (metadata both ways, deferred
 * replies, UNIMPLEMENTED, deadlines, size limits), client streams fed by tp_ostream (order,
 * early abort, batching, reconnect), port clashes and stopping with calls unanswered. */
#include <CUnit/Basic.h>
#include <grpc/status.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "tp_testlib.h"

/* ---- a test server --------------------------------------------------------------------- */

enum { MAX_HELD = 64, STREAM_MAX = 20000 };

/* What the server handlers saw; written on the loop thread, read by the test thread. */
static struct {
	atomic_int n_unary;             /* unary handler calls */
	char seen_md[64];               /* the x-test request metadata value */
	int64_t deadline_left;          /* tp_call_deadline_ms - now, at the handler */
	struct tp_call *held[MAX_HELD]; /* calls left unanswered for the test to answer */
	atomic_int n_held;
	/* client streams */
	atomic_int n_msgs;  /* messages delivered */
	atomic_int n_items; /* items within them (4-byte counters) */
	atomic_int n_ends;  /* NULL end markers delivered */
	atomic_int out_of_order;
	uint32_t next_item;
	int abort_after; /* reply FAILED_PRECONDITION after this many messages; 0 = never */
} S;

static struct tp_loop *loop;

static void reset_state(void)
{
	memset(&S, 0, sizeof(S));
}

/* /t.T/Echo: echoes, with the x-test metadata value and a raftkv-leader trailer. "hold"
 * leaves the call for the test; "other" replies from another thread after 30 ms. */
static void *reply_later(void *arg)
{
	sleep_ms(30);
	const struct tp_md tr = {.key = "raftkv-leader", .value = "127.0.0.1:7001"};
	tp_call_reply(arg, GRPC_STATUS_OK, NULL, "later", 5, &tr, 1);
	return NULL;
}

static void echo(void *arg, struct tp_call *c, const void *req, size_t len)
{
	(void)arg;
	atomic_fetch_add(&S.n_unary, 1);
	size_t vl = 0;
	const char *v = tp_call_metadata(c, "x-test", &vl);
	snprintf(S.seen_md, sizeof(S.seen_md), "%s", v ? v : "");
	int64_t dl = tp_call_deadline_ms(c);
	S.deadline_left = dl == INT64_MAX ? INT64_MAX : dl - tp_now_ms();
	if (len == 4 && memcmp(req, "hold", 4) == 0) {
		S.held[atomic_fetch_add(&S.n_held, 1)] = c;
		return;
	}
	if (len == 5 && memcmp(req, "other", 5) == 0) {
		pthread_t t;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, reply_later, c), 0);
		pthread_detach(t);
		return;
	}
	const struct tp_md tr[] = {{.key = "raftkv-leader", .value = "127.0.0.1:7001"},
				   {.key = "x-bin-bin", .value = "\x01\x00\x02", .value_len = 3}};
	tp_call_reply(c, GRPC_STATUS_OK, NULL, req, len, tr, 2);
}

/* /t.T/Stream: counts messages made of 4-byte little-endian counters, checks their order,
 * and answers at the end with the number of items (or aborts after abort_after). */
static void stream(void *arg, struct tp_call *c, const void *msg, size_t len)
{
	(void)arg;
	if (msg == NULL) {
		atomic_fetch_add(&S.n_ends, 1);
		if (tp_call_user(c) == NULL) { /* not aborted: answer now */
			uint32_t n = (uint32_t)atomic_load(&S.n_items);
			tp_call_reply(c, GRPC_STATUS_OK, NULL, &n, sizeof(n), NULL, 0);
		}
		return;
	}
	CU_ASSERT_PTR_NULL(tp_call_user(c)); /* nothing after an abort */
	const unsigned char *p = msg;
	for (size_t i = 0; i + 4 <= len; i += 4) {
		uint32_t v = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 | (uint32_t)p[i + 2] << 16 |
			     (uint32_t)p[i + 3] << 24;
		if (v != S.next_item)
			atomic_fetch_add(&S.out_of_order, 1);
		S.next_item = v + 1;
		atomic_fetch_add(&S.n_items, 1);
	}
	int n = atomic_fetch_add(&S.n_msgs, 1) + 1;
	if (S.abort_after > 0 && n == S.abort_after) {
		tp_call_set_user(c, c);
		tp_call_reply(c, GRPC_STATUS_FAILED_PRECONDITION, "enough", NULL, 0, NULL, 0);
	}
}

static const struct tp_method methods[] = {
	{.path = "/t.T/Echo", .kind = TP_UNARY, .handler = echo},
	{.path = "/t.T/Stream", .kind = TP_CLIENT_STREAM, .handler = stream},
};

static struct tp_server *server_on(const char *addr, char *err, size_t errlen)
{
	const char *listen[] = {addr};
	struct tp_server_options o = {.listen = listen,
				      .n_listen = 1,
				      .methods = methods,
				      .n_methods = 2,
				      .max_recv_bytes = 64 * 1024};
	return tp_server_new(loop, &o, err, errlen);
}

static struct tp_server *srv;
static struct tp_channel *ch;
static char target[64];

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
	reset_state();
	char err[256];
	srv = server_on("127.0.0.1:0", err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	snprintf(target, sizeof(target), "127.0.0.1:%d", tp_server_port(srv, 0));
	ch = tp_channel_new(loop, target, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ch);
}

static void teardown(void)
{
	tp_channel_free(ch);
	tp_server_free(srv);
	ch = NULL;
	srv = NULL;
}

static struct outcome out;

/* ---- unary ------------------------------------------------------------------------------- */

static void test_unary_round_trip(void)
{
	outcome_reset(&out);
	const struct tp_md md = {.key = "x-test", .value = "hello"};
	tp_unary(ch, "/t.T/Echo", "ping", 4, &md, 1, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&out.n_done), 1);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(out.len, 4);
	CU_ASSERT_EQUAL(memcmp(out.msg, "ping", 4), 0);
	CU_ASSERT_STRING_EQUAL(out.leader, "127.0.0.1:7001");
	CU_ASSERT_STRING_EQUAL(S.seen_md, "hello");
	/* The 5 s timeout reached the server as a deadline on our clock. */
	CU_ASSERT(S.deadline_left > 4000 && S.deadline_left <= 5000);

	/* An empty request and response are fine too. */
	outcome_reset(&out);
	tp_unary(ch, "/t.T/Echo", NULL, 0, NULL, 0, 5000, true, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(out.len, 0);
}

static void test_reply_from_other_thread(void)
{
	outcome_reset(&out);
	int64_t t0 = tp_now_ms();
	tp_unary(ch, "/t.T/Echo", "other", 5, NULL, 0, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&out.n_done), 1);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(memcmp(out.msg, "later", 5), 0);
	CU_ASSERT_STRING_EQUAL(out.leader, "127.0.0.1:7001");
	CU_ASSERT(out.at_ms - t0 >= 30);
}

static void test_unknown_method(void)
{
	outcome_reset(&out);
	int64_t t0 = tp_now_ms();
	tp_unary(ch, "/t.T/Nope", "x", 1, NULL, 0, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_UNIMPLEMENTED);
	CU_ASSERT(out.at_ms - t0 < 1000);
}

static void test_deadline_exceeded(void)
{
	outcome_reset(&out);
	int64_t t0 = tp_now_ms();
	tp_unary(ch, "/t.T/Echo", "hold", 4, NULL, 0, 100, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_DEADLINE_EXCEEDED);
	CU_ASSERT(out.at_ms - t0 >= 95 && out.at_ms - t0 < 2000);
	/* The late answer goes nowhere, harmlessly. */
	CU_ASSERT_EQUAL_FATAL(atomic_load(&S.n_held), 1);
	tp_call_reply(S.held[0], GRPC_STATUS_OK, NULL, "late", 4, NULL, 0);
}

static void test_oversize_request(void)
{
	static char big[100 * 1024];
	outcome_reset(&out);
	tp_unary(ch, "/t.T/Echo", big, sizeof(big), NULL, 0, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_RESOURCE_EXHAUSTED);
	CU_ASSERT_EQUAL(atomic_load(&S.n_unary), 0);
	/* The channel still works. */
	outcome_reset(&out);
	tp_unary(ch, "/t.T/Echo", "ok", 2, NULL, 0, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
}

static void test_channel_free_cancels(void)
{
	outcome_reset(&out);
	tp_unary(ch, "/t.T/Echo", "hold", 4, NULL, 0, 10000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&S.n_held) == 1, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&S.n_held), 1);
	tp_channel_free(ch);
	ch = NULL;
	CU_ASSERT_EQUAL(atomic_load(&out.n_done), 1); /* done ran before tp_channel_free returned */
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_CANCELLED);
	/* The held server call is answered UNAVAILABLE by tp_server_free in teardown. */
}

static void test_bad_metadata_reported(void)
{
	outcome_reset(&out);
	const struct tp_md md = {.key = "X-Upper", .value = "v"};
	tp_unary(ch, "/t.T/Echo", "x", 1, &md, 1, 5000, false, outcome_done, &out);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_INTERNAL);
	CU_ASSERT_EQUAL(atomic_load(&S.n_unary), 0);
}

/* ---- streams ----------------------------------------------------------------------------- */

/* The application side of an ostream: a queue of 4-byte counters; pull packs up to `batch`
 * of them into one message, then returns END if `end` is set. */
static struct {
	pthread_mutex_t mu;
	uint32_t produced, sent;
	int batch;
	bool end, end_sent;
	atomic_int n_pulls;
} Q = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void queue_reset(int batch)
{
	pthread_mutex_lock(&Q.mu);
	Q.produced = Q.sent = 0;
	Q.batch = batch;
	Q.end = Q.end_sent = false;
	atomic_store(&Q.n_pulls, 0);
	pthread_mutex_unlock(&Q.mu);
}

static enum tp_pull pull(void *arg, void **msg, size_t *len)
{
	(void)arg;
	atomic_fetch_add(&Q.n_pulls, 1);
	pthread_mutex_lock(&Q.mu);
	uint32_t n = Q.produced - Q.sent;
	if (n > (uint32_t)Q.batch)
		n = (uint32_t)Q.batch;
	enum tp_pull r = TP_PULL_NONE;
	if (n > 0) {
		unsigned char *p = malloc(4 * n);
		for (uint32_t i = 0; i < n; i++) {
			uint32_t v = Q.sent++;
			p[4 * i] = (unsigned char)v;
			p[4 * i + 1] = (unsigned char)(v >> 8);
			p[4 * i + 2] = (unsigned char)(v >> 16);
			p[4 * i + 3] = (unsigned char)(v >> 24);
		}
		*msg = p;
		*len = 4 * n;
		r = TP_PULL_MSG;
	} else if (Q.end && !Q.end_sent) {
		Q.end_sent = true;
		r = TP_PULL_END;
	}
	pthread_mutex_unlock(&Q.mu);
	return r;
}

static void produce(uint32_t n, bool end)
{
	pthread_mutex_lock(&Q.mu);
	Q.produced += n;
	Q.end = end;
	pthread_mutex_unlock(&Q.mu);
}

static void test_stream_in_order_then_status(void)
{
	enum { N = 1000 };
	queue_reset(1);
	outcome_reset(&out);
	struct tp_ostream *os =
		tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(os);
	produce(N, true);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 10000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&out.n_done), 1);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	uint32_t n = 0;
	CU_ASSERT_EQUAL_FATAL(out.len, 4);
	memcpy(&n, out.msg, 4);
	CU_ASSERT_EQUAL(n, N);
	CU_ASSERT_EQUAL(atomic_load(&S.n_msgs), N); /* one message per pull (batch 1) */
	CU_ASSERT_EQUAL(atomic_load(&S.out_of_order), 0);
	CU_ASSERT_EQUAL(atomic_load(&S.n_ends), 1);
	tp_ostream_free(os);
}

static void test_stream_early_abort(void)
{
	queue_reset(1);
	outcome_reset(&out);
	S.abort_after = 3;
	struct tp_ostream *os =
		tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	produce(100, false); /* no END: the server's abort ends the call */
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_FAILED_PRECONDITION);
	CU_ASSERT_STRING_EQUAL(out.details, "enough");
	WAIT_UNTIL(atomic_load(&S.n_ends) == 1, 5000);
	CU_ASSERT_EQUAL(atomic_load(&S.n_msgs), 3); /* nothing delivered after the abort */
	CU_ASSERT_EQUAL(atomic_load(&S.n_ends), 1);
	tp_ostream_free(os);
}

/* A producer thread kicks once per item; while a send is outstanding items pile up and the
 * next pull takes them all: far fewer messages (and pulls) than items, all in order. */
static struct tp_ostream *batch_os;
static void *producer(void *arg)
{
	(void)arg;
	for (int i = 0; i < STREAM_MAX; i++) {
		produce(1, i == STREAM_MAX - 1);
		tp_ostream_kick(batch_os);
	}
	return NULL;
}

static void test_stream_batches_under_load(void)
{
	queue_reset(1000); /* 4 KB messages at most */
	outcome_reset(&out);
	batch_os = tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, producer, NULL), 0);
	pthread_join(t, NULL);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 10000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(atomic_load(&S.n_items), STREAM_MAX);
	CU_ASSERT_EQUAL(atomic_load(&S.out_of_order), 0);
	CU_ASSERT(atomic_load(&S.n_msgs) < STREAM_MAX / 2);
	printf("[%d items in %d messages, %d pulls] ", STREAM_MAX, atomic_load(&S.n_msgs),
	       atomic_load(&Q.n_pulls));
	tp_ostream_free(batch_os);
}

/* The server goes away and comes back on the same port: the stream's call fails (done),
 * and a later kick starts a new call that reaches the new server. */
static void test_stream_reconnects(void)
{
	queue_reset(1);
	outcome_reset(&out);
	struct tp_ostream *os =
		tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	produce(5, false);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&S.n_items) == 5, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&S.n_items), 5);

	int port = tp_server_port(srv, 0);
	tp_server_free(srv);
	srv = NULL;
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&out.n_done), 1);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_UNAVAILABLE);

	char addr[64], err[256];
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	reset_state();
	srv = server_on(addr, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(srv);
	/* Keep producing and kicking (as raft's ticks do) until the new server hears us. */
	uint32_t before;
	pthread_mutex_lock(&Q.mu);
	before = Q.sent;
	pthread_mutex_unlock(&Q.mu);
	int64_t t0 = tp_now_ms();
	for (int64_t until = t0 + 10000; atomic_load(&S.n_msgs) == 0 && tp_now_ms() < until;) {
		produce(1, false);
		tp_ostream_kick(os);
		sleep_ms(10);
	}
	CU_ASSERT(atomic_load(&S.n_msgs) > 0);
	printf("[back after %lld ms, %u items lost meanwhile] ", (long long)(tp_now_ms() - t0),
	       S.next_item - before - 1);
	tp_ostream_free(os); /* cancels the live call: done runs with CANCELLED */
	CU_ASSERT(atomic_load(&out.n_done) >= 2);
}

static void test_pull_end_without_messages(void)
{
	queue_reset(1);
	outcome_reset(&out);
	struct tp_ostream *os =
		tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	produce(0, true);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(out.len, 4);
	/* A second round on the same stream is a new call. */
	outcome_reset(&out);
	produce(3, true);
	pthread_mutex_lock(&Q.mu);
	Q.end_sent = false;
	pthread_mutex_unlock(&Q.mu);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_OK);
	CU_ASSERT_EQUAL(atomic_load(&S.n_ends), 2);
	tp_ostream_free(os);
}

static void test_stream_to_dead_peer_fails_fast(void)
{
	queue_reset(1);
	outcome_reset(&out);
	/* A port nobody listens on (our server's, after it stopped). */
	struct tp_channel *dead = tp_channel_new(loop, "127.0.0.1:1", NULL);
	struct tp_ostream *os =
		tp_ostream_new(dead, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	produce(1, false);
	int64_t t0 = tp_now_ms();
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_UNAVAILABLE);
	CU_ASSERT(out.at_ms - t0 < 1000);
	tp_ostream_free(os);
	tp_channel_free(dead);
}

/* ---- server lifetime --------------------------------------------------------------------- */

static void test_port_clash(void)
{
	char addr[64], err[256] = "";
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", tp_server_port(srv, 0));
	struct tp_server *second = server_on(addr, err, sizeof(err));
	CU_ASSERT_PTR_NULL(second);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, addr));
	tp_server_free(second);
}

static struct outcome held_out[8];

static void test_free_with_unanswered_calls(void)
{
	for (int i = 0; i < 8; i++) {
		outcome_reset(&held_out[i]);
		tp_unary(ch, "/t.T/Echo", "hold", 4, NULL, 0, 10000, false, outcome_done,
			 &held_out[i]);
	}
	WAIT_UNTIL(atomic_load(&S.n_held) == 8, 5000);
	CU_ASSERT_EQUAL_FATAL(atomic_load(&S.n_held), 8);
	/* An open client stream too. */
	queue_reset(1);
	outcome_reset(&out);
	struct tp_ostream *os =
		tp_ostream_new(ch, "/t.T/Stream", NULL, 0, 0, pull, outcome_done, &out);
	produce(2, false);
	tp_ostream_kick(os);
	WAIT_UNTIL(atomic_load(&S.n_items) == 2, 5000);

	int64_t t0 = tp_now_ms();
	tp_server_free(srv);
	srv = NULL;
	CU_ASSERT(tp_now_ms() - t0 < 900); /* answered, not cut by the grace timeout */
	for (int i = 0; i < 8; i++) {
		WAIT_UNTIL(atomic_load(&held_out[i].n_done) == 1, 5000);
		CU_ASSERT_EQUAL(held_out[i].status, GRPC_STATUS_UNAVAILABLE);
		CU_ASSERT_STRING_EQUAL(held_out[i].details, "shutting down");
	}
	WAIT_UNTIL(atomic_load(&out.n_done) == 1, 5000);
	CU_ASSERT_EQUAL(out.status, GRPC_STATUS_UNAVAILABLE);
	CU_ASSERT_EQUAL(atomic_load(&S.n_ends), 1);
	tp_ostream_free(os);
}

static void test_now_ms(void)
{
	int64_t a = tp_now_ms();
	sleep_ms(20);
	int64_t b = tp_now_ms();
	CU_ASSERT(b - a >= 20 && b - a < 1000);
}

static CU_TestInfo unary_tests[] = {
	{"unary round trip, metadata both ways", test_unary_round_trip},
	{"reply from another thread", test_reply_from_other_thread},
	{"unknown method: UNIMPLEMENTED", test_unknown_method},
	{"deadline exceeded", test_deadline_exceeded},
	{"oversize request: RESOURCE_EXHAUSTED", test_oversize_request},
	{"illegal metadata reported through done", test_bad_metadata_reported},
	{"channel free cancels running calls", test_channel_free_cancels},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo stream_tests[] = {
	{"N messages in order, then the status", test_stream_in_order_then_status},
	{"early abort by the server", test_stream_early_abort},
	{"batches under load", test_stream_batches_under_load},
	{"reconnects to a restarted server", test_stream_reconnects},
	{"END alone, then a second call", test_pull_end_without_messages},
	{"dead peer: fails fast", test_stream_to_dead_peer_fails_fast},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo lifetime_tests[] = {
	{"second server on the same port fails", test_port_clash},
	{"free with unanswered calls: UNAVAILABLE", test_free_with_unanswered_calls},
	{"tp_now_ms", test_now_ms},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"unary", suite_init, suite_clean, setup, teardown, unary_tests},
		{"client streams", suite_init, suite_clean, setup, teardown, stream_tests},
		{"server lifetime", suite_init, suite_clean, setup, teardown, lifetime_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
