/* The deterministic cluster simulator: event queue, nodes, network, disks and the checker. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/prng.h"

#define TRACE_LINES 256 /* ring buffer of recent trace lines */
#define TRACE_LEN   224
#define DUMP_LINES  60 /* printed on a violation */

#define U(x) ((unsigned long long)(x))

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME  0x100000001b3ULL

/* ---------------------------------------------------------------------------------------
 * Data
 * ------------------------------------------------------------------------------------- */

/* A snapshot of the simulated state machine: everything it is is (index, digest). */
struct snapdata {
	raft_index index;
	uint64_t digest;
};

/* Durable log entries, contiguous: e[i].index == first + i. Each entry holds its own
 * payload reference. */
struct dlog {
	raft_index first;
	struct raft_entry *e;
	size_t n, cap;
};

/* One disk write handed out by a core and not yet durable: a deep copy of what it asked. */
struct pwrite {
	struct pwrite *next;
	uint64_t write_id;
	bool has_snap;
	struct raft_snapshot_meta snap;
	struct snapdata sd;
	raft_index truncate_from;
	struct raft_entry *entries; /* payload references owned here */
	size_t n_entries;
	bool hs_changed;
	struct raft_hard_state hs;
	/* A snapshot the caller took (SNAPSHOT_TAKEN) while this write was the newest pending
	 * one: it is stored, and the log compacted, right after this write lands. */
	bool compact;
	struct raft_snapshot_meta cmeta;
	struct snapdata csd;
};

struct node {
	raft_id id;
	bool exists;
	bool up;
	bool founding; /* gets the bootstrap configuration */
	uint32_t inc;  /* incarnation: bumped at crash and restart, stale events are ignored */
	struct raft *core;

	/* Durable store: survives crashes. */
	struct raft_hard_state hs;
	bool d_has_snap;
	struct raft_snapshot_meta d_snap;
	struct snapdata d_sd;
	struct dlog log; /* entries after d_snap.index */

	/* Disk: writes complete in write_id order. */
	struct pwrite *wq, *wq_tail;
	uint64_t disk_free_at;
	unsigned disk_min, disk_max;
	uint64_t last_write_id;

	/* Volatile state machine. Invariant: applied only grows while up. */
	raft_index applied;
	uint64_t digest;
	/* The node's newest snapshot (sent with RAFT_MSG_SNAPSHOT). */
	bool has_snap;
	struct snapdata sd;
	/* Data that came with the RAFT_MSG_SNAPSHOT being delivered right now. */
	bool stash_valid;
	struct snapdata stash;
	unsigned installs;

	/* Checker state (reset at restart). */
	raft_index commit;
	raft_index commit_recorded;
	int role;
	raft_term term;
	raft_id leader;
	bool was_leader;
	raft_term lterm;
	raft_index llast;
	raft_term llast_term;
};

enum { EV_TICK = 1, EV_DELIVER, EV_DISK };

struct ev {
	uint64_t time, seq;
	uint8_t kind;
	raft_id node;
	uint32_t inc;
	uint64_t write_id;
	bool has_sd;
	struct snapdata sd;
	struct raft_message *msg; /* EV_DELIVER: a deep copy, released after delivery */
};

struct link {
	unsigned dmin, dmax;
	uint32_t drop, dup;
	bool cut;
};

/* Log matching table: what was seen at (index, term). */
struct lrec {
	raft_term term;
	raft_term prev;
	uint64_t hash;
	uint8_t type;
	bool prev_known;
};
struct lslot {
	struct lrec *r;
	uint32_t n, cap;
};

/* State machine safety table: what was applied at an index. */
struct aprec {
	bool set;
	uint8_t type;
	raft_term term;
	uint64_t hash;
	uint64_t digest; /* state machine digest after applying it */
};

struct proposal {
	raft_id node;
	raft_index index;
	raft_term term;
	uint64_t hash;
};

struct sim {
	uint64_t seed;
	struct sim_options opt;
	struct prng net;  /* network and disks */
	struct prng test; /* sim_rand() */
	uint64_t now, seq;

	struct ev **heap;
	size_t n_heap, cap_heap;

	struct node nodes[SIM_MAX_NODES + 1];
	struct raft_conf boot;
	struct link links[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
	struct link net_default;
	sim_msg_hook hook;
	void *hook_arg;

	/* Checker. */
	bool failed;
	char failure[1024];
	raft_id *term_leader;
	size_t cap_term_leader;
	struct lslot *lt;
	size_t cap_lt;
	raft_term *cterm; /* committed term by index */
	raft_term *cin;   /* term in which each index was first seen committed */
	size_t cap_cterm;
	struct aprec *ap;
	size_t cap_ap;
	raft_index max_commit;
	uint64_t leaders;

	struct sim_read *reads;
	size_t n_reads, cap_reads;
	struct proposal *props;
	size_t n_props, cap_props;

	uint64_t sent[RAFT_MSG_TYPE_MAX + 1];
	uint64_t rejects;

	bool trace_live;
	bool quiet;
	unsigned trace_next, trace_count;
	char trace[TRACE_LINES][TRACE_LEN];
};

/* ---------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
	void *p = malloc(n != 0 ? n : 1);
	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	return p;
}

/* Grow *arr to hold at least `need` elements; new space is zeroed. */
static void reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t nc = *cap != 0 ? *cap : 16;
	while (nc < need)
		nc *= 2;
	void *p = realloc(*arr, nc * elem);
	if (p == NULL) {
		fprintf(stderr, "sim: out of memory\n");
		abort();
	}
	memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
	*arr = p;
	*cap = nc;
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
	const unsigned char *b = data;
	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

static uint64_t payload_hash(uint8_t type, const struct raft_buf *buf)
{
	uint64_t h = fnv(FNV_OFFSET, &type, 1);
	uint64_t len = buf != NULL ? buf->len : 0;
	h = fnv(h, &len, sizeof(len));
	if (buf != NULL)
		h = fnv(h, buf->data, buf->len);
	return h;
}

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static struct node *node_of(struct sim *s, raft_id id)
{
	if (id == 0 || id > SIM_MAX_NODES || !s->nodes[id].exists)
		return NULL;
	return &s->nodes[id];
}

static const struct node *cnode_of(const struct sim *s, raft_id id)
{
	if (id == 0 || id > SIM_MAX_NODES || !s->nodes[id].exists)
		return NULL;
	return &s->nodes[id];
}

/* ---------------------------------------------------------------------------------------
 * Trace and failures
 * ------------------------------------------------------------------------------------- */

static void trace_v(struct sim *s, const char *fmt, va_list ap)
{
	char *line = s->trace[s->trace_next];
	int k = snprintf(line, TRACE_LEN, "t=%llums ", U(s->now));
	if (k < 0)
		k = 0;
	if (k < TRACE_LEN)
		vsnprintf(line + k, TRACE_LEN - (size_t)k, fmt, ap);
	s->trace_next = (s->trace_next + 1) % TRACE_LINES;
	if (s->trace_count < TRACE_LINES)
		s->trace_count++;
	if (s->trace_live)
		fprintf(stderr, "%s\n", line);
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	trace_v(s, fmt, ap);
	va_end(ap);
}

void sim_dump_trace(const struct sim *s, unsigned n)
{
	if (n > s->trace_count)
		n = s->trace_count;
	fprintf(stderr, "---- last %u trace lines (seed %llu) ----\n", n, U(s->seed));
	for (unsigned i = 0; i < n; i++) {
		unsigned k = (s->trace_next + TRACE_LINES - n + i) % TRACE_LINES;
		fprintf(stderr, "%s\n", s->trace[k]);
	}
	fprintf(stderr, "---- end of trace ----\n");
}

void sim_fail(struct sim *s, const char *fmt, ...)
{
	if (s->failed)
		return;
	s->failed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->failure, sizeof(s->failure), fmt, ap);
	va_end(ap);
	sim_trace(s, "VIOLATION: %s", s->failure);
	if (s->quiet)
		return;
	fprintf(stderr, "\nSIM FAILURE (seed %llu, t=%llums): %s\n", U(s->seed), U(s->now),
		s->failure);
	if (!s->trace_live)
		sim_dump_trace(s, DUMP_LINES);
}

void sim_set_verbose(struct sim *s, bool on)
{
	s->quiet = !on;
}

bool sim_failed(const struct sim *s)
{
	return s->failed;
}

const char *sim_failure(const struct sim *s)
{
	return s->failed ? s->failure : "";
}

static void msg_str(char *b, size_t len, const struct raft_message *m)
{
	const char *t = raft_msg_type_name(m->type);
	int k = snprintf(b, len, "%s from n%llu to n%llu term %llu", t, U(m->from), U(m->to),
			 U(m->term));
	if (k < 0 || (size_t)k >= len)
		return;
	b += k;
	len -= (size_t)k;
	switch (m->type) {
	case RAFT_MSG_APPEND:
		if (m->n_entries > 0)
			snprintf(b, len, " prev %llu/%llu n=%zu [%llu..%llu] commit %llu",
				 U(m->prev_index), U(m->prev_term), m->n_entries,
				 U(m->entries[0].index), U(m->entries[m->n_entries - 1].index),
				 U(m->commit));
		else
			snprintf(b, len, " prev %llu/%llu n=0 commit %llu", U(m->prev_index),
				 U(m->prev_term), U(m->commit));
		break;
	case RAFT_MSG_APPEND_RESP:
		if (m->reject)
			snprintf(b, len, " REJECT index %llu hint %llu/%llu", U(m->index),
				 U(m->hint_index), U(m->hint_term));
		else
			snprintf(b, len, " ok index %llu", U(m->index));
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		snprintf(b, len, " last %llu/%llu%s", U(m->last_index), U(m->last_term),
			 m->transfer ? " transfer" : "");
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		snprintf(b, len, " %s", m->reject ? "REJECT" : "grant");
		break;
	case RAFT_MSG_HEARTBEAT:
		snprintf(b, len, " commit %llu round %llu", U(m->commit), U(m->round));
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		snprintf(b, len, " round %llu%s", U(m->round), m->reject ? " REJECT" : "");
		break;
	case RAFT_MSG_SNAPSHOT:
		snprintf(b, len, " snapshot %llu/%llu (conf %u members @%llu)",
			 U(m->snapshot.index), U(m->snapshot.term), m->snapshot.conf.n,
			 U(m->snapshot.conf_index));
		break;
	default:
		break;
	}
}

/* ---------------------------------------------------------------------------------------
 * Event queue: a binary heap ordered by (time, seq)
 * ------------------------------------------------------------------------------------- */

static bool ev_before(const struct ev *a, const struct ev *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static struct ev *ev_new(struct sim *s, uint64_t at, uint8_t kind, raft_id node)
{
	struct ev *e = xmalloc(sizeof(*e));
	memset(e, 0, sizeof(*e));
	e->time = at;
	e->seq = s->seq++;
	e->kind = kind;
	e->node = node;
	return e;
}

static void ev_push(struct sim *s, struct ev *e)
{
	reserve((void **)&s->heap, &s->cap_heap, s->n_heap + 1, sizeof(*s->heap));
	size_t i = s->n_heap++;
	s->heap[i] = e;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!ev_before(s->heap[i], s->heap[p]))
			break;
		struct ev *t = s->heap[i];
		s->heap[i] = s->heap[p];
		s->heap[p] = t;
		i = p;
	}
}

static struct ev *ev_pop(struct sim *s)
{
	if (s->n_heap == 0)
		return NULL;
	struct ev *top = s->heap[0];
	s->heap[0] = s->heap[--s->n_heap];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < s->n_heap && ev_before(s->heap[l], s->heap[m]))
			m = l;
		if (r < s->n_heap && ev_before(s->heap[r], s->heap[m]))
			m = r;
		if (m == i)
			break;
		struct ev *t = s->heap[i];
		s->heap[i] = s->heap[m];
		s->heap[m] = t;
		i = m;
	}
	return top;
}

static void ev_free(struct ev *e)
{
	if (e->msg != NULL) {
		raft_message_release(e->msg);
		free(e->msg);
	}
	free(e);
}

/* ---------------------------------------------------------------------------------------
 * Durable store
 * ------------------------------------------------------------------------------------- */

static raft_index dlog_last(const struct dlog *l)
{
	return l->first + l->n - 1; /* first - 1 when empty */
}

static raft_term dlog_term(const struct dlog *l, raft_index index)
{
	if (index < l->first || index > dlog_last(l))
		return 0;
	return l->e[index - l->first].term;
}

static void dlog_truncate(struct dlog *l, raft_index from)
{
	while (l->n > 0 && l->e[l->n - 1].index >= from) {
		raft_buf_unref(l->e[l->n - 1].buf);
		l->n--;
	}
}

static void dlog_clear(struct dlog *l, raft_index first)
{
	dlog_truncate(l, 0);
	l->first = first;
}

/* Drop entries <= upto; the log then starts at upto + 1. */
static void dlog_compact(struct dlog *l, raft_index upto)
{
	if (upto >= dlog_last(l)) {
		dlog_clear(l, upto + 1);
		return;
	}
	if (upto < l->first)
		return;
	size_t k = (size_t)(upto - l->first + 1);
	for (size_t i = 0; i < k; i++)
		raft_buf_unref(l->e[i].buf);
	memmove(l->e, l->e + k, (l->n - k) * sizeof(*l->e));
	l->n -= k;
	l->first = upto + 1;
}

static void dlog_free(struct dlog *l)
{
	dlog_truncate(l, 0);
	free(l->e);
	memset(l, 0, sizeof(*l));
}

/* The highest index durable on the node (snapshot or log). */
static raft_index durable_last(const struct node *n)
{
	raft_index last = dlog_last(&n->log);
	if (n->d_has_snap && n->d_snap.index > last)
		last = n->d_snap.index;
	return last;
}

static void durable_append(struct sim *s, struct node *n, const struct raft_entry *e)
{
	struct dlog *l = &n->log;
	if (e->index < l->first) {
		sim_fail(s,
			 "persist: n%llu asked to persist entry %llu/%llu below its durable log "
			 "start %llu (snapshot %llu)",
			 U(n->id), U(e->index), U(e->term), U(l->first), U(n->d_snap.index));
		return;
	}
	if (e->index <= dlog_last(l)) {
		raft_term t = dlog_term(l, e->index);
		if (t != e->term)
			sim_fail(s,
				 "persist: n%llu asked to persist entry %llu/%llu over durable "
				 "entry %llu/%llu without truncate_from",
				 U(n->id), U(e->index), U(e->term), U(e->index), U(t));
		return; /* the same entry again: log matching makes it identical */
	}
	if (e->index != dlog_last(l) + 1) {
		sim_fail(s,
			 "persist: n%llu asked to persist entry %llu/%llu after durable last "
			 "index %llu (a gap)",
			 U(n->id), U(e->index), U(e->term), U(dlog_last(l)));
		return;
	}
	reserve((void **)&l->e, &l->cap, l->n + 1, sizeof(*l->e));
	l->e[l->n] = *e;
	l->e[l->n].buf = raft_buf_ref(e->buf);
	l->n++;
}

/* Store a snapshot the caller took and drop the log entries it covers. */
static void durable_compact(struct node *n, const struct raft_snapshot_meta *meta,
			    const struct snapdata *sd)
{
	if (n->d_has_snap && meta->index <= n->d_snap.index)
		return;
	n->d_has_snap = true;
	n->d_snap = *meta;
	n->d_sd = *sd;
	dlog_compact(&n->log, meta->index);
}

static void pwrite_free(struct pwrite *w)
{
	for (size_t i = 0; i < w->n_entries; i++)
		raft_buf_unref(w->entries[i].buf);
	free(w->entries);
	free(w);
}

/* The write became durable: apply it to the store, in the order raft.h prescribes. */
static void durable_apply(struct sim *s, struct node *n, const struct pwrite *w)
{
	if (w->has_snap) {
		if (n->d_has_snap && w->snap.index < n->d_snap.index) {
			sim_fail(s,
				 "persist: n%llu installs snapshot %llu older than its durable "
				 "snapshot %llu",
				 U(n->id), U(w->snap.index), U(n->d_snap.index));
			return;
		}
		n->d_has_snap = true;
		n->d_snap = w->snap;
		n->d_sd = w->sd;
		/* The core resets its log when it installs a snapshot (raft_log_reset). */
		dlog_clear(&n->log, w->snap.index + 1);
	}
	if (w->truncate_from != 0) {
		if (w->truncate_from < n->log.first) {
			sim_fail(
				s,
				"persist: n%llu truncates from %llu, at or below its snapshot %llu",
				U(n->id), U(w->truncate_from), U(n->log.first - 1));
			return;
		}
		dlog_truncate(&n->log, w->truncate_from);
	}
	for (size_t i = 0; i < w->n_entries && !s->failed; i++)
		durable_append(s, n, &w->entries[i]);
	if (w->hs_changed) {
		if (w->hs.term < n->hs.term)
			sim_fail(s, "persist: n%llu's durable term goes back from %llu to %llu",
				 U(n->id), U(n->hs.term), U(w->hs.term));
		n->hs = w->hs;
	}
	if (w->compact)
		durable_compact(n, &w->cmeta, &w->csd);
}

/* ---------------------------------------------------------------------------------------
 * Checker tables
 * ------------------------------------------------------------------------------------- */

/* Invariant 3: same (index, term) => same entry and same previous term. */
static void check_log_matching(struct sim *s, struct node *n, const struct raft_entry *e,
			       raft_term prev, bool prev_known)
{
	reserve((void **)&s->lt, &s->cap_lt, e->index + 1, sizeof(*s->lt));
	struct lslot *slot = &s->lt[e->index];
	uint64_t h = payload_hash(e->type, e->buf);
	for (uint32_t i = 0; i < slot->n; i++) {
		struct lrec *r = &slot->r[i];
		if (r->term != e->term)
			continue;
		if (r->hash != h || r->type != e->type) {
			sim_fail(s,
				 "log matching: n%llu has entry %llu/%llu (type %u) that differs "
				 "from an entry seen before at the same index and term (type %u)",
				 U(n->id), U(e->index), U(e->term), e->type, r->type);
			return;
		}
		if (prev_known && r->prev_known && prev != r->prev) {
			sim_fail(s,
				 "log matching: n%llu has entry %llu/%llu after an entry of term "
				 "%llu, but it was seen after term %llu before",
				 U(n->id), U(e->index), U(e->term), U(prev), U(r->prev));
			return;
		}
		if (prev_known && !r->prev_known) {
			r->prev = prev;
			r->prev_known = true;
		}
		return;
	}
	if (slot->n == slot->cap) {
		size_t cap = slot->cap;
		reserve((void **)&slot->r, &cap, slot->n + 1, sizeof(*slot->r));
		slot->cap = (uint32_t)cap;
	}
	slot->r[slot->n++] = (struct lrec){.term = e->term,
					   .prev = prev,
					   .hash = h,
					   .type = e->type,
					   .prev_known = prev_known};
}

/* Record / check the term of a committed index, and the earliest term in which any node
 * saw it committed: the term it was committed in (the committing leader is checked the
 * moment its commit index moves, before anyone else can know). */
static void record_committed(struct sim *s, struct node *n, raft_index index, raft_term term)
{
	size_t cap = s->cap_cterm;
	reserve((void **)&s->cterm, &s->cap_cterm, index + 1, sizeof(*s->cterm));
	reserve((void **)&s->cin, &cap, index + 1, sizeof(*s->cin)); /* grows like cterm */
	raft_term seen_in = raft_current_term(n->core);
	if (s->cin[index] == 0 || seen_in < s->cin[index])
		s->cin[index] = seen_in;
	if (s->cterm[index] == 0)
		s->cterm[index] = term;
	else if (s->cterm[index] != term)
		sim_fail(s,
			 "committed entry changed: n%llu has index %llu committed with term %llu, "
			 "but term %llu was committed there before",
			 U(n->id), U(index), U(term), U(s->cterm[index]));
}

static raft_term committed_term_at(const struct sim *s, raft_index index)
{
	return index < s->cap_cterm ? s->cterm[index] : 0;
}

static raft_term committed_in_term(const struct sim *s, raft_index index)
{
	return index < s->cap_cterm ? s->cin[index] : 0;
}

/* ---------------------------------------------------------------------------------------
 * Applying updates
 * ------------------------------------------------------------------------------------- */

static int node_step(struct sim *s, struct node *n, const struct raft_event *ev,
		     const struct snapdata *taken, struct raft_update *uout);

static void schedule_tick(struct sim *s, struct node *n, uint64_t at)
{
	struct ev *e = ev_new(s, at, EV_TICK, n->id);
	e->inc = n->inc;
	ev_push(s, e);
}

static void enqueue_write(struct sim *s, struct node *n, const struct raft_update *u,
			  const struct snapdata *inst)
{
	struct pwrite *w = xmalloc(sizeof(*w));
	memset(w, 0, sizeof(*w));
	w->write_id = u->write_id;
	if (u->snapshot != NULL) {
		w->has_snap = true;
		w->snap = *u->snapshot;
		w->sd = *inst;
	}
	w->truncate_from = u->truncate_from;
	if (u->n_entries > 0) {
		w->entries = xmalloc(u->n_entries * sizeof(*w->entries));
		for (size_t i = 0; i < u->n_entries; i++) {
			w->entries[i] = u->entries[i];
			w->entries[i].buf = raft_buf_ref(u->entries[i].buf);
		}
		w->n_entries = u->n_entries;
	}
	w->hs_changed = u->hs_changed;
	w->hs = u->hs;
	if (n->wq_tail != NULL)
		n->wq_tail->next = w;
	else
		n->wq = w;
	n->wq_tail = w;

	uint64_t at = s->now + prng_range(&s->net, n->disk_min, n->disk_max);
	if (at < n->disk_free_at)
		at = n->disk_free_at;
	n->disk_free_at = at;
	struct ev *e = ev_new(s, at, EV_DISK, n->id);
	e->inc = n->inc;
	e->write_id = w->write_id;
	ev_push(s, e);
}

/* Invariant 8 on messages: what they promise must already be durable (thesis §3.8). */
static void check_promise(struct sim *s, const struct node *n, const struct raft_message *m)
{
	if (m->type == RAFT_MSG_APPEND_RESP && !m->reject) {
		if (m->index > durable_last(n))
			sim_fail(s,
				 "persist before promise: n%llu acknowledges index %llu to n%llu "
				 "but only %llu is durable",
				 U(n->id), U(m->index), U(m->to), U(durable_last(n)));
	} else if (m->type == RAFT_MSG_VOTE_RESP && !m->reject) {
		bool ok = n->hs.term > m->term || (n->hs.term == m->term && n->hs.vote == m->to);
		if (!ok)
			sim_fail(s,
				 "persist before promise: n%llu grants its vote in term %llu to "
				 "n%llu but its durable hard state is term %llu vote n%llu",
				 U(n->id), U(m->term), U(m->to), U(n->hs.term), U(n->hs.vote));
	}
}

static void net_send(struct sim *s, struct node *from, const struct raft_message *m)
{
	char buf[TRACE_LEN];
	if (m->type >= 1 && m->type <= RAFT_MSG_TYPE_MAX)
		s->sent[m->type]++;
	if (m->type == RAFT_MSG_APPEND_RESP && m->reject)
		s->rejects++;
	if (m->from != from->id) {
		msg_str(buf, sizeof(buf), m);
		sim_fail(s, "n%llu sends a message with from = n%llu: %s", U(from->id), U(m->from),
			 buf);
		return;
	}
	check_promise(s, from, m);
	if (s->hook != NULL && s->hook(s, m, false, s->hook_arg)) {
		if (s->trace_live) {
			msg_str(buf, sizeof(buf), m);
			sim_trace(s, "drop (test hook, at send) %s", buf);
		}
		return;
	}
	if (node_of(s, m->to) == NULL)
		return; /* nobody there */
	struct link *l = &s->links[m->from][m->to];
	if (l->cut || prng_chance(&s->net, l->drop)) {
		msg_str(buf, sizeof(buf), m);
		sim_trace(s, "drop (%s) %s", l->cut ? "cut" : "loss", buf);
		return;
	}
	struct snapdata sd = {0};
	bool has_sd = false;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		if (!from->has_snap || from->sd.index != m->snapshot.index) {
			sim_fail(s,
				 "n%llu sends a snapshot at index %llu but the snapshot it was "
				 "told to keep is at %llu",
				 U(from->id), U(m->snapshot.index),
				 U(from->has_snap ? from->sd.index : 0));
			return;
		}
		sd = from->sd;
		has_sd = true;
	}
	int copies = 1 + (l->dup != 0 && prng_chance(&s->net, l->dup));
	for (int c = 0; c < copies; c++) {
		uint64_t delay = prng_range(&s->net, l->dmin, l->dmax);
		struct ev *e = ev_new(s, s->now + delay, EV_DELIVER, m->to);
		e->msg = xmalloc(sizeof(*e->msg));
		raft_message_copy(e->msg, m);
		e->has_sd = has_sd;
		e->sd = sd;
		ev_push(s, e);
	}
}

static void install_snapshot(struct sim *s, struct node *n, const struct raft_snapshot_meta *meta,
			     const struct snapdata *inst, bool from_msg)
{
	if (inst->index < n->applied) {
		sim_fail(s,
			 "n%llu installs snapshot %llu/%llu, which rolls its state machine back "
			 "from %llu",
			 U(n->id), U(meta->index), U(meta->term), U(n->applied));
		return;
	}
	if (inst->index < s->cap_ap && s->ap[inst->index].set &&
	    s->ap[inst->index].digest != inst->digest) {
		sim_fail(s,
			 "state machine safety: snapshot %llu installed on n%llu has a digest "
			 "different from the state after applying %llu elsewhere",
			 U(inst->index), U(n->id), U(inst->index));
		return;
	}
	raft_term ct = committed_term_at(s, meta->index);
	if (ct != 0 && ct != meta->term)
		sim_fail(s,
			 "n%llu installs snapshot %llu/%llu but term %llu was committed at that "
			 "index",
			 U(n->id), U(meta->index), U(meta->term), U(ct));
	n->applied = inst->index;
	n->digest = inst->digest;
	n->has_snap = true;
	n->sd = *inst;
	if (from_msg)
		n->installs++;
	sim_trace(s, "n%llu installs snapshot %llu/%llu (conf %u members)", U(n->id),
		  U(meta->index), U(meta->term), meta->conf.n);
}

static void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
{
	if (e->index != n->applied + 1) {
		sim_fail(s, "n%llu is handed committed entry %llu/%llu but applied %llu so far",
			 U(n->id), U(e->index), U(e->term), U(n->applied));
		return;
	}
	if (e->index > raft_commit_index(n->core)) {
		sim_fail(s, "n%llu is handed entry %llu/%llu beyond its commit index %llu",
			 U(n->id), U(e->index), U(e->term), U(raft_commit_index(n->core)));
		return;
	}
	bool durable = (n->d_has_snap && e->index <= n->d_snap.index) ||
		       dlog_term(&n->log, e->index) == e->term;
	if (!durable) {
		sim_fail(s,
			 "persist before apply: n%llu is handed committed entry %llu/%llu that "
			 "is not durable (durable term there: %llu)",
			 U(n->id), U(e->index), U(e->term), U(dlog_term(&n->log, e->index)));
		return;
	}
	uint64_t h = payload_hash(e->type, e->buf);
	if (e->type == RAFT_ENTRY_NORMAL) {
		uint64_t len = e->buf != NULL ? e->buf->len : 0;
		uint64_t d = fnv(FNV_OFFSET ^ n->digest, &len, sizeof(len));
		if (e->buf != NULL)
			d = fnv(d, e->buf->data, e->buf->len);
		n->digest = d;
	}
	n->applied = e->index;
	reserve((void **)&s->ap, &s->cap_ap, e->index + 1, sizeof(*s->ap));
	struct aprec *a = &s->ap[e->index];
	if (!a->set) {
		*a = (struct aprec){.set = true,
				    .type = e->type,
				    .term = e->term,
				    .hash = h,
				    .digest = n->digest};
	} else if (a->term != e->term || a->hash != h || a->type != e->type) {
		sim_fail(s,
			 "state machine safety: n%llu applies %llu/%llu (type %u), but %llu/%llu "
			 "(type %u) was applied at that index before",
			 U(n->id), U(e->index), U(e->term), e->type, U(e->index), U(a->term),
			 a->type);
		return;
	} else if (a->digest != n->digest) {
		sim_fail(s,
			 "state machine safety: n%llu's digest after applying %llu differs from "
			 "another node's",
			 U(n->id), U(e->index));
		return;
	}
	record_committed(s, n, e->index, e->term);
}

static struct sim_read *find_read(struct sim *s, raft_id node, uint64_t ctx, bool pending_only)
{
	for (size_t i = s->n_reads; i-- > 0;) {
		struct sim_read *r = &s->reads[i];
		if (r->node == node && r->ctx == ctx &&
		    (!pending_only || r->state == SIM_READ_PENDING))
			return r;
	}
	return NULL;
}

static void read_done(struct sim *s, struct node *n, const struct raft_read_state *rs)
{
	struct sim_read *r = find_read(s, n->id, rs->ctx, true);
	sim_trace(s, "n%llu read ctx %llu ready at index %llu (commit %llu)", U(n->id), U(rs->ctx),
		  U(rs->index), U(raft_commit_index(n->core)));
	if (r == NULL) {
		sim_fail(s, "n%llu returns read ctx %llu that is not pending on it", U(n->id),
			 U(rs->ctx));
		return;
	}
	r->state = SIM_READ_DONE;
	r->index = rs->index;
	r->commit_then = raft_commit_index(n->core);
	r->answered_at = s->now;
	if (rs->index < r->min_index)
		sim_fail(s,
			 "linearizable reads: n%llu answers read ctx %llu at index %llu, but "
			 "index %llu was already committed when the read was requested",
			 U(n->id), U(rs->ctx), U(rs->index), U(r->min_index));
}

static void read_dropped(struct sim *s, struct node *n, uint64_t ctx)
{
	struct sim_read *r = find_read(s, n->id, ctx, true);
	sim_trace(s, "n%llu read ctx %llu dropped", U(n->id), U(ctx));
	if (r == NULL) {
		sim_fail(s, "n%llu drops read ctx %llu that is not pending on it", U(n->id),
			 U(ctx));
		return;
	}
	r->state = SIM_READ_DROPPED;
	r->answered_at = s->now;
}

static void handle_update(struct sim *s, struct node *n, const struct raft_update *u,
			  const struct snapdata *taken)
{
	struct raft *r = n->core;

	/* The write's numbering (raft.h, item 1). */
	bool has_persist =
		u->snapshot != NULL || u->truncate_from != 0 || u->n_entries > 0 || u->hs_changed;
	if (u->write_id != 0) {
		if (u->write_id <= n->last_write_id)
			sim_fail(s, "n%llu hands out write_id %llu after %llu", U(n->id),
				 U(u->write_id), U(n->last_write_id));
		n->last_write_id = u->write_id;
	} else if (has_persist) {
		sim_fail(s, "n%llu's update has something to persist but write_id 0", U(n->id));
	}

	/* Invariant 2: a leader never truncates its own log. */
	if (u->truncate_from != 0 && raft_role(r) == RAFT_LEADER)
		sim_fail(s,
			 "leader append-only: leader n%llu (term %llu) truncates its log from "
			 "%llu",
			 U(n->id), U(raft_current_term(r)), U(u->truncate_from));

	/* Invariant 3 over every entry to persist. */
	for (size_t k = 0; k < u->n_entries && !s->failed; k++) {
		const struct raft_entry *e = &u->entries[k];
		raft_term prev = 0;
		bool known = true;
		if (k > 0) {
			prev = u->entries[k - 1].term;
			if (u->entries[k - 1].index + 1 != e->index)
				sim_fail(
					s,
					"n%llu's update persists non-contiguous entries %llu, %llu",
					U(n->id), U(u->entries[k - 1].index), U(e->index));
		} else if (e->index > 1) {
			prev = raft_term_at(r, e->index - 1);
			if (prev == 0 && u->snapshot != NULL && u->snapshot->index == e->index - 1)
				prev = u->snapshot->term;
			known = prev != 0;
		}
		check_log_matching(s, n, e, prev, known);
	}

	/* SNAPSHOT_TAKEN: store the state machine's snapshot with the core's metadata. */
	if (u->compacted != NULL) {
		if (taken == NULL || u->compacted->index != taken->index) {
			sim_fail(s,
				 "n%llu's update reports a compaction at %llu that was not asked "
				 "for (asked: %llu)",
				 U(n->id), U(u->compacted->index), U(taken ? taken->index : 0));
		} else {
			n->has_snap = true;
			n->sd = *taken;
			/* The snapshot file lands after the writes already queued (so a crash
			 * leaves a store that some earlier moment had). */
			if (n->wq_tail != NULL) {
				n->wq_tail->compact = true;
				n->wq_tail->cmeta = *u->compacted;
				n->wq_tail->csd = *taken;
			} else {
				durable_compact(n, u->compacted, taken);
			}
			sim_trace(s, "n%llu took snapshot %llu/%llu (log now from %llu)", U(n->id),
				  U(u->compacted->index), U(u->compacted->term),
				  U(raft_first_index(r)));
		}
	}

	/* The data of a snapshot to install. */
	struct snapdata inst = {0};
	if (u->snapshot != NULL) {
		if (n->stash_valid && n->stash.index == u->snapshot->index)
			inst = n->stash;
		else if (n->has_snap && n->sd.index == u->snapshot->index)
			inst = n->sd;
		else
			sim_fail(s,
				 "n%llu is asked to install snapshot %llu/%llu but has no data for "
				 "it",
				 U(n->id), U(u->snapshot->index), U(u->snapshot->term));
	}
	if (s->failed)
		return;

	if (u->write_id != 0)
		enqueue_write(s, n, u, &inst);
	for (size_t i = 0; i < u->n_messages && !s->failed; i++)
		net_send(s, n, &u->messages[i]);
	if (u->snapshot != NULL && !s->failed)
		install_snapshot(s, n, u->snapshot, &inst,
				 n->stash_valid && n->stash.index == u->snapshot->index);
	for (size_t i = 0; i < u->n_committed && !s->failed; i++)
		apply_entry(s, n, &u->committed[i]);
	for (size_t i = 0; i < u->n_reads && !s->failed; i++)
		read_done(s, n, &u->reads[i]);
	for (size_t i = 0; i < u->n_dropped_reads && !s->failed; i++)
		read_dropped(s, n, u->dropped_reads[i]);
}

/* Invariants 1, 2, 4, 6 after a step of node n. */
static void check_node(struct sim *s, struct node *n)
{
	struct raft *r = n->core;
	int role = raft_role(r);
	raft_term term = raft_current_term(r);
	raft_index commit = raft_commit_index(r);
	raft_index last = raft_last_index(r);
	raft_index snap = raft_snapshot_index(r);

	if (commit < n->commit)
		sim_fail(s, "n%llu's commit index goes back from %llu to %llu", U(n->id),
			 U(n->commit), U(commit));
	if (commit > last)
		sim_fail(s, "n%llu's commit index %llu is beyond its last index %llu", U(n->id),
			 U(commit), U(last));
	if (s->failed)
		return;
	for (raft_index i = n->commit_recorded + 1; i <= commit && !s->failed; i++) {
		raft_term t = raft_term_at(r, i);
		if (t != 0)
			record_committed(s, n, i, t);
	}
	if (commit > n->commit_recorded)
		n->commit_recorded = commit;
	n->commit = commit;
	if (commit > s->max_commit)
		s->max_commit = commit;

	raft_id leader = raft_leader(r);
	if (role != n->role || term != n->term || leader != n->leader) {
		sim_trace(s, "n%llu is %s in term %llu (leader n%llu, last %llu, commit %llu)",
			  U(n->id), raft_role_name(role), U(term), U(leader), U(last), U(commit));
		n->role = role;
		n->term = term;
		n->leader = leader;
	}

	if (role != RAFT_LEADER) {
		n->was_leader = false;
		return;
	}
	/* Persist before you promise, for leadership itself: a node whose term and vote for
	 * itself could still be lost by a crash must not act as leader, or it could win the
	 * same term again after restarting and lead it twice with different logs. */
	if (n->hs.term != term || n->hs.vote != n->id) {
		sim_fail(s,
			 "persist before promise: n%llu leads term %llu but its durable hard state "
			 "is term %llu vote n%llu",
			 U(n->id), U(term), U(n->hs.term), U(n->hs.vote));
		return;
	}
	reserve((void **)&s->term_leader, &s->cap_term_leader, term + 1, sizeof(*s->term_leader));
	if (s->term_leader[term] == 0) {
		s->term_leader[term] = n->id;
		s->leaders++;
	} else if (s->term_leader[term] != n->id) {
		sim_fail(s, "election safety: n%llu and n%llu are both leaders of term %llu",
			 U(s->term_leader[term]), U(n->id), U(term));
		return;
	} else if (!n->was_leader || n->lterm != term) {
		/* Leading a term ends for good: winning the same term again (after a crash
		 * that forgot the vote) means two leaderships with possibly different logs. */
		sim_fail(s, "election safety: n%llu becomes leader of term %llu a second time",
			 U(n->id), U(term));
		return;
	}
	if (!n->was_leader || n->lterm != term) {
		/* Invariant 4: a new leader holds every committed entry (its snapshot's last
		 * entry included: raft_term_at() knows that one's term). */
		for (raft_index i = snap > 0 ? snap : 1; i <= s->max_commit; i++) {
			raft_term ct = committed_term_at(s, i);
			/* Leader completeness (Raft paper §5.4): entries committed in earlier
			 * terms. A candidate whose slow disk delayed its own vote may win a
			 * stale term after a later term committed more; it cannot commit
			 * anything there, and need not hold those entries. */
			if (ct == 0 || committed_in_term(s, i) >= term)
				continue;
			raft_term t = raft_term_at(r, i);
			if (t != ct) {
				sim_fail(
					s,
					"leader completeness: n%llu becomes leader of term %llu "
					"with term %llu at index %llu where term %llu is committed "
					"(its last index %llu)",
					U(n->id), U(term), U(t), U(i), U(ct), U(last));
				return;
			}
		}
	} else {
		/* Invariant 2: append-only while leader in this term. */
		if (last < n->llast) {
			sim_fail(
				s,
				"leader append-only: leader n%llu's last index went back from %llu "
				"to %llu in term %llu",
				U(n->id), U(n->llast), U(last), U(term));
			return;
		}
		raft_term t = raft_term_at(r, n->llast);
		if (n->llast > snap && t != n->llast_term) {
			sim_fail(s,
				 "leader append-only: leader n%llu's entry %llu changed from term "
				 "%llu to %llu",
				 U(n->id), U(n->llast), U(n->llast_term), U(t));
			return;
		}
	}
	n->was_leader = true;
	n->lterm = term;
	n->llast = last;
	n->llast_term = raft_term_at(r, last);
}

static int node_step(struct sim *s, struct node *n, const struct raft_event *ev,
		     const struct snapdata *taken, struct raft_update *uout)
{
	struct raft_update u;
	memset(&u, 0, sizeof(u));
	int rv = raft_step(n->core, ev, &u);
	handle_update(s, n, &u, taken);
	if (!s->failed)
		check_node(s, n);
	if (uout != NULL)
		*uout = u;
	return rv;
}

/* ---------------------------------------------------------------------------------------
 * Nodes: start, crash, restart
 * ------------------------------------------------------------------------------------- */

static int node_start(struct sim *s, struct node *n)
{
	struct raft_config cfg;
	raft_config_default(&cfg, n->id);
	n->inc++;
	cfg.seed = mix64(s->seed * 0x9e3779b97f4a7c15ULL + n->id * 0x100000001ULL + n->inc);
	if (s->opt.election_ticks != 0)
		cfg.election_ticks = s->opt.election_ticks;
	if (s->opt.heartbeat_ticks != 0)
		cfg.heartbeat_ticks = s->opt.heartbeat_ticks;
	cfg.pre_vote = s->opt.pre_vote;
	cfg.check_quorum = s->opt.check_quorum;
	if (s->opt.max_append_bytes != 0)
		cfg.max_append_bytes = s->opt.max_append_bytes;
	if (s->opt.max_inflight != 0)
		cfg.max_inflight = s->opt.max_inflight;
	if (s->opt.max_entries_per_append != 0)
		cfg.max_entries_per_append = s->opt.max_entries_per_append;

	struct raft_initial_state st;
	memset(&st, 0, sizeof(st));
	st.hs = n->hs;
	st.snapshot = n->d_has_snap ? &n->d_snap : NULL;
	st.entries = n->log.e;
	st.n_entries = n->log.n;
	st.bootstrap = n->founding ? &s->boot : NULL;

	char err[256] = "";
	struct raft *r = NULL;
	int rv = raft_new(&cfg, &st, &r, err, sizeof(err));
	if (rv != 0) {
		sim_fail(s, "raft_new for n%llu failed: %s (%s)", U(n->id), raft_strerror(rv), err);
		return rv;
	}
	n->core = r;
	n->up = true;
	n->last_write_id = 0;
	n->disk_free_at = s->now;
	n->has_snap = n->d_has_snap;
	n->sd = n->d_sd;
	n->applied = n->d_has_snap ? n->d_sd.index : 0;
	n->digest = n->d_has_snap ? n->d_sd.digest : 0;
	n->stash_valid = false;
	n->commit = raft_commit_index(r);
	n->commit_recorded = n->commit;
	n->role = raft_role(r);
	n->term = raft_current_term(r);
	n->leader = raft_leader(r);
	n->was_leader = false;
	sim_trace(s,
		  "n%llu starts: term %llu vote n%llu commit %llu snapshot %llu entries "
		  "[%llu..%llu]",
		  U(n->id), U(n->hs.term), U(n->hs.vote), U(n->hs.commit),
		  U(n->d_has_snap ? n->d_snap.index : 0), U(n->log.first), U(dlog_last(&n->log)));
	/* Start ticking at a random phase so the nodes' ticks interleave. */
	schedule_tick(s, n, s->now + prng_range(&s->net, 1, s->opt.tick_ms));
	return 0;
}

void sim_crash(struct sim *s, raft_id id)
{
	struct node *n = node_of(s, id);
	if (n == NULL || !n->up)
		return;
	raft_destroy(n->core);
	n->core = NULL;
	n->up = false;
	n->inc++;
	while (n->wq != NULL) {
		struct pwrite *w = n->wq;
		n->wq = w->next;
		pwrite_free(w);
	}
	n->wq_tail = NULL;
	n->applied = 0;
	n->digest = 0;
	n->has_snap = false;
	n->stash_valid = false;
	n->was_leader = false;
	for (size_t i = 0; i < s->n_reads; i++)
		if (s->reads[i].node == id && s->reads[i].state == SIM_READ_PENDING)
			s->reads[i].state = SIM_READ_LOST;
	sim_trace(s, "n%llu CRASH (durable: term %llu vote n%llu, snapshot %llu, log [%llu..%llu])",
		  U(id), U(n->hs.term), U(n->hs.vote), U(n->d_has_snap ? n->d_snap.index : 0),
		  U(n->log.first), U(dlog_last(&n->log)));
}

int sim_restart(struct sim *s, raft_id id)
{
	struct node *n = node_of(s, id);
	if (n == NULL)
		return SIM_ENONODE;
	if (n->up)
		return 0;
	sim_trace(s, "n%llu RESTART", U(id));
	return node_start(s, n);
}

int sim_add_node(struct sim *s, raft_id id)
{
	if (id == 0 || id > SIM_MAX_NODES)
		return SIM_ENONODE;
	struct node *n = &s->nodes[id];
	if (n->exists)
		return RAFT_EEXIST;
	memset(n, 0, sizeof(*n));
	n->id = id;
	n->exists = true;
	n->founding = false;
	n->log.first = 1;
	n->disk_min = s->opt.disk_min_ms;
	n->disk_max = s->opt.disk_max_ms;
	sim_trace(s, "n%llu added (empty, no bootstrap)", U(id));
	return node_start(s, n);
}

/* ---------------------------------------------------------------------------------------
 * Creating and freeing
 * ------------------------------------------------------------------------------------- */

void sim_options_default(struct sim_options *o)
{
	memset(o, 0, sizeof(*o));
	o->tick_ms = 10;
	o->election_ticks = 10;
	o->heartbeat_ticks = 1;
	o->pre_vote = true;
	o->check_quorum = true;
	o->delay_min_ms = 1;
	o->delay_max_ms = 5;
	o->disk_min_ms = 1;
	o->disk_max_ms = 3;
}

struct sim *sim_new(uint64_t seed, unsigned n_nodes, const struct sim_options *opt)
{
	struct sim *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	s->seed = seed;
	if (opt != NULL)
		s->opt = *opt;
	else
		sim_options_default(&s->opt);
	if (s->opt.tick_ms == 0)
		s->opt.tick_ms = 10;
	if (s->opt.delay_max_ms < s->opt.delay_min_ms)
		s->opt.delay_max_ms = s->opt.delay_min_ms;
	if (s->opt.disk_max_ms < s->opt.disk_min_ms)
		s->opt.disk_max_ms = s->opt.disk_min_ms;
	prng_seed(&s->net, seed);
	prng_seed(&s->test, mix64(seed ^ 0x7e57c0de5eedULL));
	const char *env = getenv("RAFTKV_SIM_TRACE");
	s->trace_live = env != NULL && env[0] != '\0' && strcmp(env, "0") != 0;

	s->net_default = (struct link){.dmin = s->opt.delay_min_ms, .dmax = s->opt.delay_max_ms};
	for (unsigned a = 0; a <= SIM_MAX_NODES; a++)
		for (unsigned b = 0; b <= SIM_MAX_NODES; b++)
			s->links[a][b] = s->net_default;

	if (n_nodes > SIM_MAX_NODES)
		n_nodes = SIM_MAX_NODES;
	memset(&s->boot, 0, sizeof(s->boot));
	for (unsigned i = 1; i <= n_nodes; i++) {
		char addr[16];
		snprintf(addr, sizeof(addr), "n%u", i);
		raft_conf_add(&s->boot, i, RAFT_VOTER, addr);
	}
	sim_trace(s,
		  "sim seed %llu: %u nodes, tick %ums, election %u ticks, heartbeat %u, "
		  "pre-vote %d, check-quorum %d",
		  U(seed), n_nodes, s->opt.tick_ms, s->opt.election_ticks, s->opt.heartbeat_ticks,
		  s->opt.pre_vote, s->opt.check_quorum);
	for (unsigned i = 1; i <= n_nodes; i++) {
		struct node *n = &s->nodes[i];
		n->id = i;
		n->exists = true;
		n->founding = true;
		n->log.first = 1;
		n->disk_min = s->opt.disk_min_ms;
		n->disk_max = s->opt.disk_max_ms;
		node_start(s, n);
	}
	return s;
}

void sim_free(struct sim *s)
{
	if (s == NULL)
		return;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
		struct node *n = &s->nodes[id];
		if (!n->exists)
			continue;
		if (n->up)
			sim_crash(s, id);
		dlog_free(&n->log);
	}
	for (size_t i = 0; i < s->n_heap; i++)
		ev_free(s->heap[i]);
	free(s->heap);
	free(s->term_leader);
	for (size_t i = 0; i < s->cap_lt; i++)
		free(s->lt[i].r);
	free(s->lt);
	free(s->cterm);
	free(s->cin);
	free(s->ap);
	free(s->reads);
	free(s->props);
	free(s);
}

uint64_t sim_seed(const struct sim *s)
{
	return s->seed;
}

uint64_t sim_now(const struct sim *s)
{
	return s->now;
}

/* ---------------------------------------------------------------------------------------
 * Running
 * ------------------------------------------------------------------------------------- */

static void on_tick(struct sim *s, struct ev *e)
{
	struct node *n = node_of(s, e->node);
	if (n == NULL || !n->up || n->inc != e->inc)
		return;
	struct raft_event ev = {.type = RAFT_EVENT_TICK};
	node_step(s, n, &ev, NULL, NULL);
	if (n->up && n->inc == e->inc)
		schedule_tick(s, n, s->now + s->opt.tick_ms);
}

static void on_disk(struct sim *s, struct ev *e)
{
	struct node *n = node_of(s, e->node);
	if (n == NULL || !n->up || n->inc != e->inc)
		return;
	struct pwrite *w = n->wq;
	if (w == NULL || w->write_id != e->write_id) {
		sim_fail(s, "sim: n%llu's disk completes write %llu out of order", U(n->id),
			 U(e->write_id));
		return;
	}
	n->wq = w->next;
	if (n->wq == NULL)
		n->wq_tail = NULL;
	durable_apply(s, n, w);
	pwrite_free(w);
	if (s->failed)
		return;
	struct raft_event ev = {.type = RAFT_EVENT_PERSISTED, .write_id = e->write_id};
	node_step(s, n, &ev, NULL, NULL);
}

static void on_deliver(struct sim *s, struct ev *e)
{
	struct raft_message *m = e->msg;
	struct node *n = node_of(s, m->to);
	char buf[TRACE_LEN];
	if (n == NULL || !n->up) {
		if (s->trace_live) {
			msg_str(buf, sizeof(buf), m);
			sim_trace(s, "drop (n%llu down) %s", U(m->to), buf);
		}
		return;
	}
	if (m->from <= SIM_MAX_NODES && s->links[m->from][m->to].cut) {
		msg_str(buf, sizeof(buf), m);
		sim_trace(s, "drop (cut) %s", buf);
		return;
	}
	if (s->hook != NULL && s->hook(s, m, true, s->hook_arg)) {
		if (s->trace_live) {
			msg_str(buf, sizeof(buf), m);
			sim_trace(s, "drop (test hook) %s", buf);
		}
		return;
	}
	msg_str(buf, sizeof(buf), m);
	sim_trace(s, "n%llu recv %s", U(n->id), buf);
	if (e->has_sd) {
		n->stash_valid = true;
		n->stash = e->sd;
	}
	struct raft_event ev = {.type = RAFT_EVENT_RECEIVE, .message = m};
	node_step(s, n, &ev, NULL, NULL);
	n->stash_valid = false;
}

bool sim_step(struct sim *s)
{
	if (s->failed)
		return false;
	struct ev *e = ev_pop(s);
	if (e == NULL)
		return false;
	s->now = e->time;
	switch (e->kind) {
	case EV_TICK:
		on_tick(s, e);
		break;
	case EV_DISK:
		on_disk(s, e);
		break;
	case EV_DELIVER:
		on_deliver(s, e);
		break;
	default:
		break;
	}
	ev_free(e);
	return !s->failed;
}

bool sim_run_for(struct sim *s, uint64_t ms)
{
	uint64_t end = s->now + ms;
	while (!s->failed && s->n_heap > 0 && s->heap[0]->time <= end)
		sim_step(s);
	if (!s->failed)
		s->now = end;
	return !s->failed;
}

bool sim_run_until(struct sim *s, sim_pred pred, void *arg, uint64_t max_ms)
{
	uint64_t end = s->now + max_ms;
	if (s->failed)
		return false;
	if (pred(s, arg))
		return true;
	while (!s->failed) {
		if (s->n_heap == 0 || s->heap[0]->time > end) {
			s->now = end;
			return false;
		}
		sim_step(s);
		if (!s->failed && pred(s, arg))
			return true;
	}
	return false;
}

/* ---------------------------------------------------------------------------------------
 * Inspecting
 * ------------------------------------------------------------------------------------- */

bool sim_exists(const struct sim *s, raft_id id)
{
	return cnode_of(s, id) != NULL;
}

bool sim_is_up(const struct sim *s, raft_id id)
{
	const struct node *n = cnode_of(s, id);
	return n != NULL && n->up;
}

struct raft *sim_core(struct sim *s, raft_id id)
{
	struct node *n = node_of(s, id);
	return n != NULL && n->up ? n->core : NULL;
}

raft_id sim_leader(struct sim *s)
{
	raft_id best = 0;
	raft_term best_term = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
		struct node *n = &s->nodes[id];
		if (!n->exists || !n->up || raft_role(n->core) != RAFT_LEADER)
			continue;
		raft_term t = raft_current_term(n->core);
		if (best == 0 || t > best_term) {
			best = id;
			best_term = t;
		}
	}
	return best;
}

static bool pred_leader(struct sim *s, void *arg)
{
	(void)arg;
	return sim_leader(s) != 0;
}

raft_id sim_wait_leader(struct sim *s, uint64_t max_ms)
{
	if (!sim_run_until(s, pred_leader, NULL, max_ms))
		return 0;
	return sim_leader(s);
}

raft_index sim_applied(const struct sim *s, raft_id id)
{
	const struct node *n = cnode_of(s, id);
	return n != NULL && n->up ? n->applied : 0;
}

uint64_t sim_digest(const struct sim *s, raft_id id)
{
	const struct node *n = cnode_of(s, id);
	return n != NULL && n->up ? n->digest : 0;
}

uint32_t sim_up_mask(const struct sim *s)
{
	uint32_t m = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (s->nodes[id].exists && s->nodes[id].up)
			m |= SIM_NODE(id);
	return m;
}

raft_index sim_max_commit(const struct sim *s)
{
	return s->max_commit;
}

raft_term sim_committed_term(const struct sim *s, raft_index index)
{
	return committed_term_at(s, index);
}

struct wait_applied {
	raft_index index;
	uint32_t mask;
};

static bool pred_applied(struct sim *s, void *arg)
{
	const struct wait_applied *w = arg;
	uint32_t mask = w->mask != SIM_ALL ? w->mask : sim_up_mask(s);
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if ((mask & SIM_NODE(id)) && sim_applied(s, id) < w->index)
			return false;
	return true;
}

bool sim_wait_applied(struct sim *s, raft_index index, uint32_t mask, uint64_t max_ms)
{
	struct wait_applied w = {.index = index, .mask = mask};
	return sim_run_until(s, pred_applied, &w, max_ms);
}

/* ---------------------------------------------------------------------------------------
 * Driving the cores
 * ------------------------------------------------------------------------------------- */

static struct node *live_node(struct sim *s, raft_id id, int *rv)
{
	struct node *n = node_of(s, id);
	if (n == NULL) {
		*rv = SIM_ENONODE;
		return NULL;
	}
	if (!n->up) {
		*rv = SIM_EDOWN;
		return NULL;
	}
	*rv = 0;
	return n;
}

int sim_propose(struct sim *s, raft_id node, const void *data, size_t len, raft_index *index)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	struct raft_buf *b = raft_buf_new(data, len);
	struct raft_buf *const bufs[1] = {b};
	struct raft_event ev = {.type = RAFT_EVENT_PROPOSE};
	ev.propose.bufs = bufs;
	ev.propose.n = 1;
	uint64_t h = payload_hash(RAFT_ENTRY_NORMAL, b);
	struct raft_update u;
	rv = node_step(s, n, &ev, NULL, &u);
	if (rv != 0) {
		raft_buf_unref(b); /* still ours on failure */
		sim_trace(s, "n%llu propose refused: %s", U(node), raft_strerror(rv));
		return rv;
	}
	sim_trace(s, "n%llu propose -> %llu/%llu", U(node), U(u.proposed_index),
		  U(u.proposed_term));
	reserve((void **)&s->props, &s->cap_props, s->n_props + 1, sizeof(*s->props));
	s->props[s->n_props++] = (struct proposal){
		.node = node, .index = u.proposed_index, .term = u.proposed_term, .hash = h};
	if (index != NULL)
		*index = u.proposed_index;
	return 0;
}

int sim_propose_str(struct sim *s, raft_id node, const char *cmd, raft_index *index)
{
	return sim_propose(s, node, cmd, strlen(cmd), index);
}

int sim_read_index(struct sim *s, raft_id node, uint64_t ctx)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	reserve((void **)&s->reads, &s->cap_reads, s->n_reads + 1, sizeof(*s->reads));
	size_t k = s->n_reads++;
	s->reads[k] = (struct sim_read){.node = node,
					.ctx = ctx,
					.state = SIM_READ_PENDING,
					.min_index = s->max_commit,
					.requested_at = s->now};
	sim_trace(s, "n%llu read ctx %llu requested (max commit %llu)", U(node), U(ctx),
		  U(s->max_commit));
	struct raft_event ev = {.type = RAFT_EVENT_READ_INDEX, .read_ctx = ctx};
	rv = node_step(s, n, &ev, NULL, NULL);
	if (rv != 0) {
		/* The update of this very step may not have answered it; it is refused. */
		if (s->reads[k].state == SIM_READ_PENDING) {
			s->reads[k].state = SIM_READ_REFUSED;
			s->reads[k].rv = rv;
		}
		sim_trace(s, "n%llu read ctx %llu refused: %s", U(node), U(ctx), raft_strerror(rv));
	}
	return rv;
}

const struct sim_read *sim_read(const struct sim *s, uint64_t ctx)
{
	for (size_t i = s->n_reads; i-- > 0;)
		if (s->reads[i].ctx == ctx)
			return &s->reads[i];
	return NULL;
}

int sim_transfer(struct sim *s, raft_id node, raft_id target)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	struct raft_event ev = {.type = RAFT_EVENT_TRANSFER, .peer = target};
	rv = node_step(s, n, &ev, NULL, NULL);
	sim_trace(s, "n%llu transfer leadership to n%llu: %s", U(node), U(target),
		  raft_strerror(rv));
	return rv;
}

int sim_conf_change(struct sim *s, raft_id node, int op, raft_id id, raft_index *index)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	char addr[16];
	snprintf(addr, sizeof(addr), "n%llu", U(id));
	struct raft_event ev = {.type = RAFT_EVENT_CONF_CHANGE};
	ev.conf.op = (uint8_t)op;
	ev.conf.id = id;
	ev.conf.addr = addr;
	struct raft_update u;
	rv = node_step(s, n, &ev, NULL, &u);
	static const char *const ops[] = {"?", "add-learner", "add-voter", "promote", "remove"};
	sim_trace(s, "n%llu conf change %s n%llu: %s (index %llu)", U(node),
		  op >= 1 && op <= 4 ? ops[op] : "?", U(id), raft_strerror(rv),
		  U(rv == 0 ? u.proposed_index : 0));
	if (rv == 0 && index != NULL)
		*index = u.proposed_index;
	return rv;
}

int sim_take_snapshot(struct sim *s, raft_id node, raft_index trailing)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	struct snapdata taken = {.index = n->applied, .digest = n->digest};
	struct raft_event ev = {.type = RAFT_EVENT_SNAPSHOT_TAKEN};
	ev.snapshot_taken.index = n->applied;
	ev.snapshot_taken.trailing = trailing;
	rv = node_step(s, n, &ev, &taken, NULL);
	sim_trace(s, "n%llu snapshot at %llu (trailing %llu): %s", U(node), U(taken.index),
		  U(trailing), raft_strerror(rv));
	return rv;
}

int sim_campaign(struct sim *s, raft_id node)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	struct raft_event ev = {.type = RAFT_EVENT_CAMPAIGN};
	sim_trace(s, "n%llu campaign", U(node));
	return node_step(s, n, &ev, NULL, NULL);
}

int sim_step_event(struct sim *s, raft_id node, const struct raft_event *ev)
{
	int rv;
	struct node *n = live_node(s, node, &rv);
	if (n == NULL || s->failed)
		return n == NULL ? rv : RAFT_EINVAL;
	struct snapdata taken = {.index = n->applied, .digest = n->digest};
	bool is_taken =
		ev->type == RAFT_EVENT_SNAPSHOT_TAKEN && ev->snapshot_taken.index == n->applied;
	return node_step(s, n, ev, is_taken ? &taken : NULL, NULL);
}

/* ---------------------------------------------------------------------------------------
 * Faults
 * ------------------------------------------------------------------------------------- */

static bool valid_id(raft_id id)
{
	return id >= 1 && id <= SIM_MAX_NODES;
}

void sim_cut(struct sim *s, raft_id a, raft_id b)
{
	if (!valid_id(a) || !valid_id(b))
		return;
	s->links[a][b].cut = true;
	s->links[b][a].cut = true;
	sim_trace(s, "cut n%llu <-> n%llu", U(a), U(b));
}

void sim_cut_oneway(struct sim *s, raft_id from, raft_id to)
{
	if (!valid_id(from) || !valid_id(to))
		return;
	s->links[from][to].cut = true;
	sim_trace(s, "cut n%llu -> n%llu", U(from), U(to));
}

void sim_isolate(struct sim *s, raft_id node)
{
	if (!valid_id(node))
		return;
	for (raft_id o = 1; o <= SIM_MAX_NODES; o++) {
		if (o == node)
			continue;
		s->links[node][o].cut = true;
		s->links[o][node].cut = true;
	}
	sim_trace(s, "isolate n%llu", U(node));
}

void sim_partition(struct sim *s, uint32_t mask)
{
	for (raft_id a = 1; a <= SIM_MAX_NODES; a++)
		for (raft_id b = 1; b <= SIM_MAX_NODES; b++)
			if (!(mask & SIM_NODE(a)) != !(mask & SIM_NODE(b)))
				s->links[a][b].cut = true;
	sim_trace(s, "partition 0x%x | rest", (unsigned)mask);
}

void sim_heal(struct sim *s)
{
	for (raft_id a = 0; a <= SIM_MAX_NODES; a++)
		for (raft_id b = 0; b <= SIM_MAX_NODES; b++)
			s->links[a][b].cut = false;
	sim_trace(s, "heal all links");
}

void sim_heal_node(struct sim *s, raft_id node)
{
	if (!valid_id(node))
		return;
	for (raft_id o = 1; o <= SIM_MAX_NODES; o++) {
		s->links[node][o].cut = false;
		s->links[o][node].cut = false;
	}
	sim_trace(s, "heal n%llu", U(node));
}

bool sim_is_cut(const struct sim *s, raft_id from, raft_id to)
{
	return valid_id(from) && valid_id(to) && s->links[from][to].cut;
}

void sim_link_set(struct sim *s, raft_id from, raft_id to, unsigned delay_min_ms,
		  unsigned delay_max_ms, uint32_t drop_ppm, uint32_t dup_ppm)
{
	if (!valid_id(from) || !valid_id(to))
		return;
	struct link *l = &s->links[from][to];
	l->dmin = delay_min_ms;
	l->dmax = delay_max_ms >= delay_min_ms ? delay_max_ms : delay_min_ms;
	l->drop = drop_ppm;
	l->dup = dup_ppm;
}

void sim_net_set(struct sim *s, unsigned delay_min_ms, unsigned delay_max_ms, uint32_t drop_ppm,
		 uint32_t dup_ppm)
{
	for (raft_id a = 0; a <= SIM_MAX_NODES; a++)
		for (raft_id b = 0; b <= SIM_MAX_NODES; b++) {
			struct link *l = &s->links[a][b];
			l->dmin = delay_min_ms;
			l->dmax = delay_max_ms >= delay_min_ms ? delay_max_ms : delay_min_ms;
			l->drop = drop_ppm;
			l->dup = dup_ppm;
		}
	sim_trace(s, "network: delay %u..%ums, drop %u ppm, dup %u ppm", delay_min_ms, delay_max_ms,
		  drop_ppm, dup_ppm);
}

void sim_net_reliable(struct sim *s)
{
	sim_net_set(s, s->opt.delay_min_ms, s->opt.delay_max_ms, 0, 0);
}

void sim_disk_set(struct sim *s, raft_id node, unsigned min_ms, unsigned max_ms)
{
	struct node *n = node_of(s, node);
	if (n == NULL)
		return;
	n->disk_min = min_ms;
	n->disk_max = max_ms >= min_ms ? max_ms : min_ms;
}

void sim_inject(struct sim *s, const struct raft_message *m)
{
	char buf[TRACE_LEN];
	if (node_of(s, m->to) == NULL || !valid_id(m->from) || s->links[m->from][m->to].cut)
		return;
	const struct link *l = &s->links[m->from][m->to];
	struct ev *e = ev_new(s, s->now + prng_range(&s->net, l->dmin, l->dmax), EV_DELIVER, m->to);
	e->msg = xmalloc(sizeof(*e->msg));
	raft_message_copy(e->msg, m);
	ev_push(s, e);
	msg_str(buf, sizeof(buf), m);
	sim_trace(s, "inject %s", buf);
}

void sim_set_hook(struct sim *s, sim_msg_hook fn, void *arg)
{
	s->hook = fn;
	s->hook_arg = arg;
}

/* ---------------------------------------------------------------------------------------
 * Counters and proposals
 * ------------------------------------------------------------------------------------- */

uint64_t sim_msgs_sent(const struct sim *s, int type)
{
	return type >= 1 && type <= RAFT_MSG_TYPE_MAX ? s->sent[type] : 0;
}

uint64_t sim_msgs_total(const struct sim *s)
{
	uint64_t t = 0;
	for (int i = 1; i <= RAFT_MSG_TYPE_MAX; i++)
		t += s->sent[i];
	return t;
}

uint64_t sim_append_rejects(const struct sim *s)
{
	return s->rejects;
}

void sim_reset_counters(struct sim *s)
{
	memset(s->sent, 0, sizeof(s->sent));
	s->rejects = 0;
}

unsigned sim_snapshots_installed(const struct sim *s, raft_id id)
{
	const struct node *n = cnode_of(s, id);
	return n != NULL ? n->installs : 0;
}

uint64_t sim_leaders_elected(const struct sim *s)
{
	return s->leaders;
}

long sim_check_proposals(struct sim *s, uint32_t mask)
{
	if (mask == SIM_ALL)
		mask = sim_up_mask(s);
	long committed = 0;
	for (size_t i = 0; i < s->n_props; i++) {
		const struct proposal *p = &s->props[i];
		if (p->index >= s->cap_ap)
			continue;
		const struct aprec *a = &s->ap[p->index];
		if (!a->set || a->term != p->term || a->hash != p->hash)
			continue;
		committed++;
		for (raft_id id = 1; id <= SIM_MAX_NODES; id++) {
			if (!(mask & SIM_NODE(id)))
				continue;
			if (sim_applied(s, id) < p->index) {
				sim_fail(s,
					 "committed proposal %llu/%llu (made on n%llu) is not "
					 "applied "
					 "on n%llu (applied %llu)",
					 U(p->index), U(p->term), U(p->node), U(id),
					 U(sim_applied(s, id)));
				return -1;
			}
		}
	}
	return committed;
}

uint64_t sim_rand(struct sim *s, uint64_t n)
{
	return prng_below(&s->test, n);
}

/* ---------------------------------------------------------------------------------------
 * The lab's one()
 * ------------------------------------------------------------------------------------- */

unsigned sim_count_applied(struct sim *s, raft_index index, raft_term term)
{
	if (committed_term_at(s, index) != term)
		return 0;
	unsigned c = 0;
	for (raft_id id = 1; id <= SIM_MAX_NODES; id++)
		if (sim_is_up(s, id) && s->nodes[id].applied >= index)
			c++;
	return c;
}

struct wait_one {
	raft_index index;
	raft_term term;
	unsigned expected;
};

static bool pred_one(struct sim *s, void *arg)
{
	const struct wait_one *w = arg;
	return sim_count_applied(s, w->index, w->term) >= w->expected;
}

raft_index sim_one(struct sim *s, const char *cmd, unsigned expected, bool retry, uint64_t max_ms)
{
	uint64_t end = s->now + max_ms;
	while (!s->failed && s->now < end) {
		raft_id l = sim_leader(s);
		raft_index idx = 0;
		if (l == 0 || sim_propose_str(s, l, cmd, &idx) != 0) {
			sim_run_for(s, 10);
			continue;
		}
		struct wait_one w = {.index = idx,
				     .term = raft_current_term(s->nodes[l].core),
				     .expected = expected};
		uint64_t left = end - s->now;
		if (sim_run_until(s, pred_one, &w, left < 2000 ? left : 2000))
			return idx;
		if (!retry)
			return 0;
	}
	return 0;
}
