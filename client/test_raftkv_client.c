/* The client library against fake raftnodes (tp_server): leader hints, write ids reused on
 * retries, one write id session per concurrent write, deadlines. */
#include <CUnit/Basic.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/raftkv_client.h"
#include "server/transport/transport.h"

/* A fake member: answers Put according to `mode`, records every write id it saw. */
enum fake_mode {
	FAKE_FOLLOWER, /* UNAVAILABLE + raftkv-leader hint to `hint` */
	FAKE_LEADER,   /* the first `fail_first` calls UNAVAILABLE without hint, then OK after
			* `delay_ms` (replied from another thread) */
};

#define MAX_SEEN 256

struct fake {
	struct tp_server *srv;
	char addr[64];
	enum fake_mode mode;
	char hint[96];
	int fail_first;
	int esession_first; /* the first calls say the write id's session is unknown */
	int delay_ms;

	pthread_mutex_t mu;
	int calls;
	uint64_t seen_client[MAX_SEEN], seen_seq[MAX_SEEN]; /* in arrival order */
	int n_seen;
	int in_flight, max_in_flight;
};

static struct {
	struct tp_loop *loop;
	struct fake follower, leader;
} F;

struct delayed {
	struct fake *f;
	struct tp_call *call;
};

static void reply_ok(struct tp_call *call)
{
	Raftkv__V1__ResponseHeader h = RAFTKV__V1__RESPONSE_HEADER__INIT;
	h.revision = 1;
	h.member_id = 7;
	Raftkv__V1__PutResponse r = RAFTKV__V1__PUT_RESPONSE__INIT;
	r.header = &h;
	uint8_t buf[64];
	size_t n = raftkv__v1__put_response__pack(&r, buf);
	tp_call_reply(call, 0, NULL, buf, n, NULL, 0);
}

static void *delayed_reply(void *arg)
{
	struct delayed *d = arg;
	struct timespec ts = {0, (long)d->f->delay_ms * 1000000L};
	nanosleep(&ts, NULL);
	pthread_mutex_lock(&d->f->mu);
	d->f->in_flight--;
	pthread_mutex_unlock(&d->f->mu);
	reply_ok(d->call);
	free(d);
	return NULL;
}

static void on_put(void *arg, struct tp_call *call, const void *req, size_t len)
{
	struct fake *f = arg;
	Raftkv__V1__PutRequest *p = raftkv__v1__put_request__unpack(NULL, len, req);
	pthread_mutex_lock(&f->mu);
	int call_no = f->calls++;
	if (p != NULL && f->n_seen < MAX_SEEN) {
		f->seen_client[f->n_seen] = p->write_id ? p->write_id->client_id : 0;
		f->seen_seq[f->n_seen] = p->write_id ? p->write_id->sequence : 0;
		f->n_seen++;
	}
	pthread_mutex_unlock(&f->mu);
	raftkv__v1__put_request__free_unpacked(p, NULL);
	if (f->mode == FAKE_FOLLOWER) {
		struct tp_md md = {"raftkv-leader", f->hint, 0};
		tp_call_reply(call, 14, "not the leader", NULL, 0, &md, 1);
	} else if (call_no < f->esession_first) {
		tp_call_reply(
			call, 9,
			"write id session unknown or expired: client 5 has no session, so ...",
			NULL, 0, NULL, 0);
	} else if (call_no < f->fail_first) {
		tp_call_reply(call, 14, "outcome unknown: retry with the same write id", NULL, 0,
			      NULL, 0);
	} else if (f->delay_ms > 0) {
		struct delayed *d = malloc(sizeof(*d));
		d->f = f;
		d->call = call;
		pthread_mutex_lock(&f->mu);
		if (++f->in_flight > f->max_in_flight)
			f->max_in_flight = f->in_flight;
		pthread_mutex_unlock(&f->mu);
		pthread_t t;
		pthread_create(&t, NULL, delayed_reply, d);
		pthread_detach(t);
	} else {
		reply_ok(call);
	}
}

static int fake_start(struct fake *f)
{
	static const char *const listen[] = {"127.0.0.1:0"};
	pthread_mutex_init(&f->mu, NULL);
	struct tp_method m = {"/raftkv.v1.KV/Put", TP_UNARY, on_put, f};
	struct tp_server_options o = {
		.listen = listen, .n_listen = 1, .methods = &m, .n_methods = 1};
	char err[256];
	f->srv = tp_server_new(F.loop, &o, err, sizeof(err));
	if (f->srv == NULL) {
		fprintf(stderr, "fake server: %s\n", err);
		return -1;
	}
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", tp_server_port(f->srv, 0));
	return 0;
}

static void fake_reset(struct fake *f)
{
	pthread_mutex_lock(&f->mu);
	f->calls = f->n_seen = f->in_flight = f->max_in_flight = 0;
	pthread_mutex_unlock(&f->mu);
}

static int suite_init(void)
{
	tp_global_init();
	F.loop = tp_loop_new();
	if (F.loop == NULL)
		return -1;
	if (fake_start(&F.leader) != 0 || fake_start(&F.follower) != 0)
		return -1;
	F.leader.mode = FAKE_LEADER;
	F.follower.mode = FAKE_FOLLOWER;
	snprintf(F.follower.hint, sizeof(F.follower.hint), "7@%s", F.leader.addr);
	return 0;
}

static int suite_clean(void)
{
	tp_server_free(F.follower.srv);
	tp_server_free(F.leader.srv);
	tp_loop_free(F.loop);
	tp_global_shutdown();
	return 0;
}

static int put(struct rk_client *c, struct rk_error *e)
{
	Raftkv__V1__PutRequest req = RAFTKV__V1__PUT_REQUEST__INIT;
	req.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
	Raftkv__V1__PutResponse *r = NULL;
	int rv = rk_put(c, &req, &r, e);
	if (rv == 0)
		CU_ASSERT(r != NULL && r->header != NULL && r->header->member_id == 7);
	rk_free(r);
	return rv;
}

/* Only the follower listed: its hint leads to the leader; the leader's two "outcome
 * unknown" answers send the client back to the list (the follower) and the hint again. Every
 * attempt carries the same write id; the next write the next sequence. */
static void test_hint_and_retry_same_write_id(void)
{
	fake_reset(&F.follower);
	fake_reset(&F.leader);
	F.leader.fail_first = 2;
	F.leader.delay_ms = 0;
	struct rk_error e;
	struct rk_client *c = rk_client_new(F.follower.addr, 5000, &e);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(put(c, &e), 0);
	CU_ASSERT_EQUAL(F.leader.calls, 3);
	CU_ASSERT_EQUAL(F.follower.calls, 3);
	uint64_t id = F.leader.seen_client[0], seq = F.leader.seen_seq[0];
	CU_ASSERT(id != 0 && seq == 1);
	for (int i = 0; i < F.leader.n_seen; i++)
		CU_ASSERT(F.leader.seen_client[i] == id && F.leader.seen_seq[i] == seq);
	for (int i = 0; i < F.follower.n_seen; i++)
		CU_ASSERT(F.follower.seen_client[i] == id && F.follower.seen_seq[i] == seq);
	/* The next write goes straight to the leader (it answered last), next sequence. */
	CU_ASSERT_EQUAL(put(c, &e), 0);
	CU_ASSERT_EQUAL(F.follower.calls, 3);
	CU_ASSERT_EQUAL(F.leader.n_seen, 4);
	CU_ASSERT(F.leader.seen_client[3] == id && F.leader.seen_seq[3] == seq + 1);
	rk_client_free(c);
}

/* The cluster forgot the client's session (expired or evicted): the write is resent once
 * under a new session (a new client id, sequence 1), and later writes use that session. */
static void test_unknown_session_resent_under_a_new_one(void)
{
	fake_reset(&F.leader);
	F.leader.fail_first = 0;
	F.leader.delay_ms = 0;
	struct rk_error e;
	struct rk_client *c = rk_client_new(F.leader.addr, 5000, &e);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(put(c, &e), 0);
	CU_ASSERT_EQUAL(put(c, &e), 0);
	uint64_t old = F.leader.seen_client[1];
	CU_ASSERT_EQUAL(F.leader.seen_seq[1], 2);
	fake_reset(&F.leader);
	F.leader.esession_first = 1;
	CU_ASSERT_EQUAL(put(c, &e), 0);
	CU_ASSERT_EQUAL_FATAL(F.leader.n_seen, 2);
	CU_ASSERT(F.leader.seen_client[0] == old && F.leader.seen_seq[0] == 3);
	CU_ASSERT(F.leader.seen_client[1] != old && F.leader.seen_client[1] != 0);
	CU_ASSERT_EQUAL(F.leader.seen_seq[1], 1);
	CU_ASSERT_EQUAL(put(c, &e), 0);
	CU_ASSERT(F.leader.seen_client[2] == F.leader.seen_client[1] && F.leader.seen_seq[2] == 2);
	/* Refused twice: the second refusal is the answer (no loop). */
	fake_reset(&F.leader);
	F.leader.esession_first = 2;
	CU_ASSERT_EQUAL(put(c, &e), RK_FAILED_PRECONDITION);
	CU_ASSERT_EQUAL(F.leader.calls, 2);
	F.leader.esession_first = 0;
	rk_client_free(c);
}

struct worker {
	struct rk_client *c;
	int ok;
};

static void *writer(void *arg)
{
	struct worker *w = arg;
	struct rk_error e;
	for (int i = 0; i < 5; i++)
		w->ok += put(w->c, &e) == 0;
	return NULL;
}

/* Concurrent writes: never two in flight with one client id, so per client id the
 * sequences arrive strictly increasing (raftnode would refuse an older one). */
static void test_concurrent_sessions(void)
{
	fake_reset(&F.leader);
	F.leader.fail_first = 0;
	F.leader.delay_ms = 20;
	struct rk_error e;
	struct rk_client *c = rk_client_new(F.leader.addr, 5000, &e);
	CU_ASSERT_FATAL(c != NULL);
	struct worker w[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){c, 0};
		pthread_create(&t[i], NULL, writer, &w[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CU_ASSERT_EQUAL(w[i].ok, 5);
	}
	CU_ASSERT_EQUAL(F.leader.n_seen, 20);
	CU_ASSERT(F.leader.max_in_flight >= 2); /* the test did exercise concurrency */
	for (int i = 0; i < F.leader.n_seen; i++)
		for (int j = i + 1; j < F.leader.n_seen; j++)
			if (F.leader.seen_client[i] == F.leader.seen_client[j])
				CU_ASSERT(F.leader.seen_seq[j] > F.leader.seen_seq[i]);
	rk_client_free(c);
}

/* Nothing listening: UNAVAILABLE once the deadline passed, not much later. */
static void test_unreachable_deadline(void)
{
	struct rk_error e;
	/* Port 1 on loopback: refused at once. */
	struct rk_client *c = rk_client_new("127.0.0.1:1, 127.0.0.1:2", 300, &e);
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(rk_client_endpoint_count(c), 2);
	CU_ASSERT_STRING_EQUAL(rk_client_endpoint(c, 1), "127.0.0.1:2");
	int64_t t0 = tp_now_ms();
	CU_ASSERT_EQUAL(put(c, &e), RK_UNAVAILABLE);
	int64_t dt = tp_now_ms() - t0;
	CU_ASSERT(dt >= 250 && dt < 2000);
	CU_ASSERT(e.code == RK_UNAVAILABLE && strstr(e.message, "127.0.0.1:") != NULL);
	rk_client_free(c);
	CU_ASSERT(rk_client_new("nohost", 100, &e) == NULL && e.code == RK_INVALID_ARGUMENT);
	CU_ASSERT(rk_client_new("a:1,", 100, &e) == NULL && e.code == RK_INVALID_ARGUMENT);
	CU_ASSERT(rk_client_new("a:1", 0, &e) == NULL && e.code == RK_INVALID_ARGUMENT);
}

static void test_prefix_end(void)
{
	uint8_t out[8];
	CU_ASSERT(rk_prefix_end((const uint8_t *)"a/", 2, out) == 2 && memcmp(out, "a0", 2) == 0);
	CU_ASSERT(rk_prefix_end((const uint8_t *)"a\xff", 2, out) == 1 && out[0] == 'b');
	CU_ASSERT(rk_prefix_end((const uint8_t *)"\xff\xff", 2, out) == 1 && out[0] == 0);
	CU_ASSERT(rk_prefix_end((const uint8_t *)"", 0, out) == 1 && out[0] == 0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("raftkv_client", suite_init, suite_clean);
	CU_add_test(s, "hint and retry with the same write id", test_hint_and_retry_same_write_id);
	CU_add_test(s, "concurrent writes use distinct sessions", test_concurrent_sessions);
	CU_add_test(s, "an unknown session: resent once under a new one",
		    test_unknown_session_resent_under_a_new_one);
	CU_add_test(s, "unreachable: UNAVAILABLE at the deadline", test_unreachable_deadline);
	CU_add_test(s, "prefix end", test_prefix_end);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failure_records();
	CU_cleanup_registry();
	return fails == 0 ? 0 : 1;
}
