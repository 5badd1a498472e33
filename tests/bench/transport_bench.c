/* Transport figures on loopback (not a test): sequential unary round trips (p50/p99), unary
 * calls/s with 64 in flight, and ostream messages/s. Server and client run in one process on
 * separate loops (two polling threads), as two nodes would.
 *   transport_bench            run the measurements
 *   transport_bench serve P    serve Echo, health and reflection on 127.0.0.1:P until stdin
 *                              closes (for trying other clients, e.g. Python grpcio) */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkv_descriptor_set.h"
#include "server/transport/transport.h"

static void echo(void *arg, struct tp_call *c, const void *req, size_t len)
{
	(void)arg;
	tp_call_reply(c, 0, NULL, req, len, NULL, 0);
}

static atomic_long sunk;
static void sink(void *arg, struct tp_call *c, const void *msg, size_t len)
{
	(void)arg;
	(void)len;
	if (msg == NULL)
		tp_call_reply(c, 0, NULL, NULL, 0, NULL, 0);
	else
		atomic_fetch_add(&sunk, 1);
}

static const struct tp_method methods[] = {
	{.path = "/raftkv.v1.KV/Get", .kind = TP_UNARY, .handler = echo},
	{.path = "/b.B/Sink", .kind = TP_CLIENT_STREAM, .handler = sink},
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static long completed, started, target_n, failures;
static struct tp_channel *ch;
static char payload[100];

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void seq_done(void *arg, const struct tp_result *r)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	failures += r->status != 0;
	completed++;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mu);
}

/* Loop thread: each completion starts the next call, keeping the depth constant. */
static void pipe_done(void *arg, const struct tp_result *r)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	failures += r->status != 0;
	completed++;
	bool more = started < target_n;
	if (more)
		started++;
	if (completed == target_n)
		pthread_cond_signal(&cond);
	pthread_mutex_unlock(&mu);
	if (more)
		tp_unary(ch, "/raftkv.v1.KV/Get", payload, sizeof(payload), NULL, 0, 10000, false,
			 pipe_done, NULL);
}

static atomic_long to_pull;
static enum tp_pull pull(void *arg, void **msg, size_t *len)
{
	(void)arg;
	long n = atomic_load(&to_pull);
	if (n <= 0)
		return n == 0 ? TP_PULL_END : TP_PULL_NONE;
	atomic_store(&to_pull, n - 1 == 0 ? 0 : n - 1);
	*msg = malloc(128);
	memset(*msg, 'x', 128);
	*len = 128;
	return TP_PULL_MSG;
}

static atomic_int os_done;
static void os_finished(void *arg, const struct tp_result *r)
{
	(void)arg;
	if (r->status != 0)
		fprintf(stderr, "ostream: status %d %s\n", r->status, r->details);
	atomic_store(&os_done, 1);
}

static int serve(struct tp_loop *l, const char *port)
{
	char addr[64], err[256];
	snprintf(addr, sizeof(addr), "127.0.0.1:%s", port);
	const char *listen[] = {addr};
	const char *health[] = {"raftkv.v1.KV"};
	struct tp_server_options o = {.listen = listen,
				      .n_listen = 1,
				      .methods = methods,
				      .n_methods = 2,
				      .health_services = health,
				      .n_health_services = 1,
				      .descriptor_set = raftkv_descriptor_set,
				      .descriptor_set_len = raftkv_descriptor_set_len};
	struct tp_server *s = tp_server_new(l, &o, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	tp_server_set_serving(s, "", true);
	printf("serving on %s\n", addr);
	fflush(stdout);
	while (getchar() != EOF)
		;
	tp_server_free(s);
	return 0;
}

int main(int argc, char **argv)
{
	tp_global_init();
	struct tp_loop *sl = tp_loop_new(), *cl = tp_loop_new();
	if (argc == 3 && strcmp(argv[1], "serve") == 0) {
		int rc = serve(sl, argv[2]);
		tp_loop_free(cl);
		tp_loop_free(sl);
		tp_global_shutdown();
		return rc;
	}
	const char *listen[] = {"127.0.0.1:0"};
	struct tp_server_options o = {
		.listen = listen, .n_listen = 1, .methods = methods, .n_methods = 2};
	char err[256], target[64];
	struct tp_server *s = tp_server_new(sl, &o, err, sizeof(err));
	if (s == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	snprintf(target, sizeof(target), "127.0.0.1:%d", tp_server_port(s, 0));
	ch = tp_channel_new(cl, target, NULL);

	/* Sequential: one call at a time. */
	enum { SEQ = 20000, WARM = 500 };
	static int64_t lat[SEQ];
	int64_t t0 = 0;
	for (long i = -WARM; i < SEQ; i++) {
		if (i == 0)
			t0 = now_us();
		int64_t a = now_us();
		pthread_mutex_lock(&mu);
		long want = completed + 1;
		pthread_mutex_unlock(&mu);
		tp_unary(ch, "/raftkv.v1.KV/Get", payload, sizeof(payload), NULL, 0, 10000, false,
			 seq_done, NULL);
		pthread_mutex_lock(&mu);
		while (completed < want)
			pthread_cond_wait(&cond, &mu);
		pthread_mutex_unlock(&mu);
		if (i >= 0)
			lat[i] = now_us() - a;
	}
	int64_t seq_us = now_us() - t0;
	qsort(lat, SEQ, sizeof(lat[0]), cmp_i64);
	printf("sequential unary (100 B): p50 %lld us, p99 %lld us, %.0f calls/s\n",
	       (long long)lat[SEQ / 2], (long long)lat[SEQ * 99 / 100], SEQ / (seq_us / 1e6));

	/* 64 in flight. */
	enum { DEPTH = 64, PIPE = 200000 };
	pthread_mutex_lock(&mu);
	completed = 0;
	started = DEPTH;
	target_n = PIPE;
	pthread_mutex_unlock(&mu);
	t0 = now_us();
	for (int i = 0; i < DEPTH; i++)
		tp_unary(ch, "/raftkv.v1.KV/Get", payload, sizeof(payload), NULL, 0, 10000, false,
			 pipe_done, NULL);
	pthread_mutex_lock(&mu);
	while (completed < target_n)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);
	int64_t pipe_us = now_us() - t0;
	printf("unary, %d in flight: %.0f calls/s (%ld failed)\n", DEPTH, PIPE / (pipe_us / 1e6),
	       failures);

	/* ostream: 128-byte messages, one per pull, as fast as sends complete. */
	enum { OS = 500000 };
	atomic_store(&to_pull, OS);
	struct tp_ostream *os =
		tp_ostream_new(ch, "/b.B/Sink", NULL, 0, 0, pull, os_finished, NULL);
	t0 = now_us();
	tp_ostream_kick(os);
	while (!atomic_load(&os_done)) {
		struct timespec ts = {.tv_nsec = 1000000};
		nanosleep(&ts, NULL);
	}
	int64_t os_us = now_us() - t0;
	printf("ostream (128 B messages): %.0f messages/s (%ld received)\n",
	       atomic_load(&sunk) / (os_us / 1e6), atomic_load(&sunk));
	tp_ostream_free(os);

	tp_channel_free(ch);
	tp_server_free(s);
	tp_loop_free(cl);
	tp_loop_free(sl);
	tp_global_shutdown();
	return 0;
}
