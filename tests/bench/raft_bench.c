/* Benchmark of the consensus core's own cost: three cores, an instant network, instant disks. */

/*
 * What it measures
 * ----------------
 * Three cores (ids 1, 2, 3) run in one thread. The network is a FIFO of deep-copied
 * messages delivered at once, and "persisting" a write means feeding RAFT_EVENT_PERSISTED
 * for it right away: nothing is stored, nothing is applied, no snapshot data exists.
 * What remains is the cost of the core itself (plus the small harness around it: a buffer
 * per proposal and one deep copy per message).
 *
 * One run: elect node 1, then propose --entries payloads of --size bytes, --batch per
 * RAFT_EVENT_PROPOSE, delivering every pending message after each proposal, until every
 * node has applied the last one. Every 10000 applied entries each node reports a snapshot
 * (trailing 1000 entries) so the in-memory log stays bounded. Wall and process CPU time
 * cover the proposals only, not the election.
 */

#include "server/raft/raft.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define NODES             3
#define SNAPSHOT_EVERY    10000 /* applied entries between two SNAPSHOT_TAKEN on a node */
#define SNAPSHOT_TRAILING 1000
#define MAX_TICKS         1000 /* bound for the election and for the final commit propagation */

struct opts {
	uint64_t entries;
	size_t size;
	size_t batch;
	unsigned runs;
};

/* A FIFO of messages in flight, double-buffered: `cur` is being delivered while stepping
 * appends new messages to `next`, so delivery never holds a pointer into an array that
 * may be reallocated. Every message here is a deep copy owned by the queue. */
struct msg_vec {
	struct raft_message *v;
	size_t n, cap;
};

struct node {
	struct raft *r;
	raft_index snapshot_at; /* applied index of the last SNAPSHOT_TAKEN fed */
};

struct cluster {
	struct node nodes[NODES];
	struct msg_vec cur, next;
	uint64_t delivered; /* messages delivered */
	uint64_t writes;    /* writes "persisted" */
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("raft_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static double now(clockid_t clk)
{
	struct timespec ts;
	if (clock_gettime(clk, &ts) != 0)
		die("clock_gettime: %s", strerror(errno));
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msg_vec_push_copy(struct msg_vec *q, const struct raft_message *m)
{
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct raft_message *v = realloc(q->v, cap * sizeof(*v));
		if (v == NULL)
			die("out of memory");
		q->v = v;
		q->cap = cap;
	}
	raft_message_copy(&q->v[q->n++], m);
}

static void msg_vec_release(struct msg_vec *q)
{
	for (size_t i = 0; i < q->n; i++)
		raft_message_release(&q->v[i]);
	free(q->v);
	memset(q, 0, sizeof(*q));
}

static struct node *node_of(struct cluster *c, raft_id id)
{
	if (id < 1 || id > NODES)
		die("message to unknown node %" PRIu64, id);
	return &c->nodes[id - 1];
}

/*
 * Feed one event and perform the update: queue copies of the messages (the update is only
 * valid until the next step on this core), then acknowledge the write at once, which may
 * release held-back messages and produce further writes. Returns raft_step's result for
 * the event; *proposed (may be NULL) receives the update's proposed_index.
 */
static int step(struct cluster *c, struct node *n, const struct raft_event *ev,
		raft_index *proposed)
{
	struct raft_update u;
	int rv = raft_step(n->r, ev, &u);
	if (proposed != NULL)
		*proposed = u.proposed_index;

	for (int rounds = 0;; rounds++) {
		for (size_t i = 0; i < u.n_messages; i++)
			msg_vec_push_copy(&c->next, &u.messages[i]);
		if (u.write_id == 0)
			break;
		if (rounds == 1000)
			die("node %" PRIu64 ": PERSISTED keeps producing writes", raft_id_of(n->r));
		c->writes++;
		struct raft_event p = {.type = RAFT_EVENT_PERSISTED, .write_id = u.write_id};
		int prv = raft_step(n->r, &p, &u);
		if (prv != 0)
			die("node %" PRIu64 ": PERSISTED: %s", raft_id_of(n->r),
			    raft_strerror(prv));
	}
	return rv;
}

static void maybe_snapshot(struct cluster *c, struct node *n)
{
	raft_index applied = raft_applied_index(n->r);
	if (applied < n->snapshot_at + SNAPSHOT_EVERY)
		return;
	struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
	ev.snapshot_taken.index = applied;
	ev.snapshot_taken.trailing = SNAPSHOT_TRAILING;
	int rv = step(c, n, &ev, NULL);
	if (rv != 0)
		die("node %" PRIu64 ": SNAPSHOT_TAKEN at %" PRIu64 ": %s", raft_id_of(n->r),
		    applied, raft_strerror(rv));
	n->snapshot_at = applied;
}

/* Deliver messages until none is in flight. */
static void drain(struct cluster *c)
{
	while (c->next.n > 0) {
		struct msg_vec t = c->cur;
		c->cur = c->next;
		c->next = t;
		for (size_t i = 0; i < c->cur.n; i++) {
			struct raft_message *m = &c->cur.v[i];
			struct node *to = node_of(c, m->to);
			struct raft_event ev = {.type = RAFT_EVENT_RECEIVE, .message = m};
			step(c, to, &ev, NULL); /* an error here only concerns this message */
			raft_message_release(m);
			c->delivered++;
		}
		c->cur.n = 0;
	}
	for (int i = 0; i < NODES; i++)
		maybe_snapshot(c, &c->nodes[i]);
}

static void tick(struct cluster *c, struct node *n)
{
	struct raft_event ev = {.type = RAFT_EVENT_TICK};
	step(c, n, &ev, NULL);
}

static struct node *leader_of(struct cluster *c)
{
	for (int i = 0; i < NODES; i++)
		if (raft_role(c->nodes[i].r) == RAFT_LEADER)
			return &c->nodes[i];
	return NULL;
}

static void cluster_start(struct cluster *c)
{
	struct raft_conf conf;
	memset(&conf, 0, sizeof(conf));
	for (raft_id id = 1; id <= NODES; id++) {
		char addr[32];
		snprintf(addr, sizeof(addr), "node%" PRIu64, id);
		int rv = raft_conf_add(&conf, id, RAFT_VOTER, addr);
		if (rv != 0)
			die("raft_conf_add: %s", raft_strerror(rv));
	}

	memset(c, 0, sizeof(*c));
	for (raft_id id = 1; id <= NODES; id++) {
		struct raft_config cfg;
		raft_config_default(&cfg, id);
		cfg.seed = 0x9e3779b97f4a7c15ULL * id;
		struct raft_initial_state st;
		memset(&st, 0, sizeof(st));
		st.bootstrap = &conf;
		char err[256] = "";
		int rv = raft_new(&cfg, &st, &c->nodes[id - 1].r, err, sizeof(err));
		if (rv != 0)
			die("raft_new(%" PRIu64 "): %s: %s", id, raft_strerror(rv), err);
	}

	/* The first step of each core persists its bootstrap entry. */
	for (int i = 0; i < NODES; i++)
		tick(c, &c->nodes[i]);
	drain(c);

	struct raft_event camp = {.type = RAFT_EVENT_CAMPAIGN};
	step(c, &c->nodes[0], &camp, NULL);
	drain(c);
	for (int t = 0; t < MAX_TICKS && leader_of(c) == NULL; t++) {
		for (int i = 0; i < NODES; i++)
			tick(c, &c->nodes[i]);
		drain(c);
	}
	if (leader_of(c) == NULL)
		die("no leader after %d ticks", MAX_TICKS);
}

static void cluster_stop(struct cluster *c)
{
	msg_vec_release(&c->cur);
	msg_vec_release(&c->next);
	for (int i = 0; i < NODES; i++)
		raft_destroy(c->nodes[i].r);
	memset(c, 0, sizeof(*c));
}

static bool all_applied(struct cluster *c, raft_index target)
{
	for (int i = 0; i < NODES; i++)
		if (raft_applied_index(c->nodes[i].r) < target)
			return false;
	return true;
}

struct result {
	double wall;        /* seconds */
	double cpu;         /* process CPU seconds */
	uint64_t delivered; /* messages */
	uint64_t writes;    /* persisted writes, all nodes */
	raft_index last;    /* index of the last proposal */
};

static struct result run_once(const struct opts *o, const unsigned char *payload)
{
	struct cluster c;
	cluster_start(&c);
	struct node *l = leader_of(&c);
	struct raft_buf **bufs = calloc(o->batch, sizeof(*bufs));
	if (bufs == NULL)
		die("out of memory");

	uint64_t delivered0 = c.delivered, writes0 = c.writes;
	double wall0 = now(CLOCK_MONOTONIC), cpu0 = now(CLOCK_PROCESS_CPUTIME_ID);

	raft_index last = 0;
	for (uint64_t done = 0; done < o->entries;) {
		size_t k = o->batch;
		if (k > o->entries - done)
			k = (size_t)(o->entries - done);
		for (size_t i = 0; i < k; i++) {
			bufs[i] = raft_buf_new(payload, o->size);
			if (bufs[i] == NULL)
				die("out of memory");
		}
		struct raft_event ev = {.type = RAFT_EVENT_PROPOSE};
		ev.propose.bufs = bufs;
		ev.propose.n = k;
		raft_index first = 0;
		int rv = step(&c, l, &ev, &first);
		if (rv != 0) {
			for (size_t i = 0; i < k; i++) /* still ours on failure */
				raft_buf_unref(bufs[i]);
			die("PROPOSE after %" PRIu64 " entries: %s", done, raft_strerror(rv));
		}
		if (first == 0)
			die("PROPOSE succeeded without a proposed_index");
		last = first + k - 1;
		done += k;
		drain(&c);
	}

	/* Followers learn the final commit index from the next heartbeat. */
	for (int t = 0; t < MAX_TICKS && !all_applied(&c, last); t++) {
		tick(&c, l);
		drain(&c);
	}
	if (!all_applied(&c, last))
		die("entries not applied everywhere after %d ticks (target %" PRIu64 ")", MAX_TICKS,
		    last);

	struct result res = {
		.wall = now(CLOCK_MONOTONIC) - wall0,
		.cpu = now(CLOCK_PROCESS_CPUTIME_ID) - cpu0,
		.delivered = c.delivered - delivered0,
		.writes = c.writes - writes0,
		.last = last,
	};
	free(bufs);
	cluster_stop(&c);
	return res;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: raft_bench [--entries N] [--size B] [--batch K] [--runs R]\n"
		   "  --entries N  proposals per run (default 200000)\n"
		   "  --size B     payload bytes per proposal (default 128)\n"
		   "  --batch K    proposals per RAFT_EVENT_PROPOSE (default 1)\n"
		   "  --runs R     repeat the run R times and report the median (default 3)\n");
}

static uint64_t parse_num(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
		fprintf(stderr,
			"raft_bench: %s wants a number in [%" PRIu64 ", %" PRIu64 "], got '%s'\n",
			opt, min, max, s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.entries = 200000, .size = 128, .batch = 1, .runs = 3};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (i + 1 >= argc) {
			usage(stderr);
			exit(2);
		}
		const char *v = argv[++i];
		if (strcmp(a, "--entries") == 0)
			o->entries = parse_num(a, v, 1, UINT64_C(1) << 40);
		else if (strcmp(a, "--size") == 0)
			o->size = (size_t)parse_num(a, v, 0, UINT64_C(1) << 24);
		else if (strcmp(a, "--batch") == 0)
			o->batch = (size_t)parse_num(a, v, 1, 1 << 20);
		else if (strcmp(a, "--runs") == 0)
			o->runs = (unsigned)parse_num(a, v, 1, 1000);
		else {
			fprintf(stderr, "raft_bench: unknown option '%s'\n", a);
			usage(stderr);
			exit(2);
		}
	}
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_args(argc, argv, &o);

	unsigned char *payload = malloc(o.size ? o.size : 1);
	double *rate = calloc(o.runs, sizeof(double));
	double *cpu_us = calloc(o.runs, sizeof(double));
	if (payload == NULL || rate == NULL || cpu_us == NULL)
		die("out of memory");
	for (size_t i = 0; i < o.size; i++)
		payload[i] = (unsigned char)('a' + i % 26);

	printf("raft_bench: %d voters, %" PRIu64 " entries of %zu B, %zu per proposal, %u run%s\n",
	       NODES, o.entries, o.size, o.batch, o.runs, o.runs == 1 ? "" : "s");
#if defined(__SANITIZE_ADDRESS__)
	printf("note: built with AddressSanitizer; figures are not representative\n");
#endif
#ifndef NDEBUG
	printf("note: assertions are on (build with -DCMAKE_BUILD_TYPE=RelWithDebInfo or "
	       "Release)\n");
#endif

	for (unsigned r = 0; r < o.runs; r++) {
		struct result res = run_once(&o, payload);
		rate[r] = (double)o.entries / res.wall;
		cpu_us[r] = res.cpu * 1e6 / (double)o.entries;
		printf("run %u: %.3f s wall, %.3f s CPU: %.0f proposals/s, %.2f µs CPU per entry, "
		       "%.2f messages and %.2f writes per entry\n",
		       r + 1, res.wall, res.cpu, rate[r], cpu_us[r],
		       (double)res.delivered / (double)o.entries,
		       (double)res.writes / (double)o.entries);
		fflush(stdout);
	}

	struct rusage ru;
	if (getrusage(RUSAGE_SELF, &ru) != 0)
		die("getrusage: %s", strerror(errno));
	printf("median of %u: %.0f committed proposals/s\n", o.runs, median(rate, o.runs));
	printf("median of %u: %.2f µs CPU per entry (3 cores and the harness together)\n", o.runs,
	       median(cpu_us, o.runs));
	printf("peak RSS: %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);

	free(cpu_us);
	free(rate);
	free(payload);
	return 0;
}
