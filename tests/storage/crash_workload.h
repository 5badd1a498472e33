/* The workload shared by the crash and power-loss tests: a child process appends batches to
 * the store and reports each one before (intent) and after (acknowledgement) storage_write;
 * the parent kills it with SIGKILL at a random moment and checks what a reopen recovers. */
#ifndef RAFTKV_TESTS_STORAGE_CRASH_WORKLOAD_H
#define RAFTKV_TESTS_STORAGE_CRASH_WORKLOAD_H

#include "common/prng.h"
#include "server/storage/storage.h"
#include "storage/storage_testlib.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * What the store must hold is a model: the term of every index 1..last (an entry's bytes,
 * type and length follow from (index, term), see tl_entry_*) and the hard state. The log never
 * has a snapshot here, so it always starts at 1.
 *
 * Every batch is all or nothing and writes are sequential, so after a kill the store must
 * equal either the model of the acknowledged batches or that model plus the one batch whose
 * intent was reported but whose acknowledgement was not (it may have committed just before
 * the kill). Anything else, a lost acknowledged entry, a torn batch, a stale hard state, is
 * a failure.
 */

struct cw_model {
	uint64_t *terms; /* terms[i], 1 <= i <= last */
	size_t cap;
	uint64_t last;
	uint64_t term; /* term of the next appended entries */
	struct storage_hard_state hs;
};

/* One pipe message: fixed size, below PIPE_BUF, so each write is atomic. */
enum { CW_READY = 1, CW_INTENT = 2, CW_ACK = 3 };

struct cw_msg {
	uint32_t kind;
	uint32_t has_hs;
	uint64_t seq;
	uint64_t truncate_from; /* 0 = none */
	uint64_t first, n, term;
	struct storage_hard_state hs;
};

/* What one round observed. */
struct cw_round {
	uint64_t acked_batches, acked_entries;
	bool ready;         /* the child finished opening the store */
	bool pending;       /* an intent without its acknowledgement */
	struct cw_msg pend; /* that intent */
	int status;         /* the child's wait status */
};

static inline void cw_model_free(struct cw_model *m)
{
	free(m->terms);
	memset(m, 0, sizeof(*m));
}

static inline int cw_model_reserve(struct cw_model *m, uint64_t last)
{
	if (last < m->cap)
		return 0;
	size_t cap = m->cap ? m->cap : 1024;
	while (cap <= last)
		cap *= 2;
	uint64_t *t = realloc(m->terms, cap * sizeof(*t));
	if (t == NULL)
		return -1;
	memset(t + m->cap, 0, (cap - m->cap) * sizeof(*t));
	m->terms = t;
	m->cap = cap;
	return 0;
}

static inline int cw_model_copy(struct cw_model *dst, const struct cw_model *src)
{
	memset(dst, 0, sizeof(*dst));
	if (cw_model_reserve(dst, src->last) != 0)
		return -1;
	if (src->last > 0)
		memcpy(dst->terms, src->terms, (src->last + 1) * sizeof(*dst->terms));
	dst->last = src->last;
	dst->term = src->term;
	dst->hs = src->hs;
	return 0;
}

/* Apply a batch (as described by an intent) to a model. */
static inline int cw_model_apply(struct cw_model *m, const struct cw_msg *b)
{
	if (b->truncate_from != 0 && b->truncate_from <= m->last)
		m->last = b->truncate_from - 1;
	if (b->n > 0) {
		if (cw_model_reserve(m, b->first + b->n) != 0)
			return -1;
		for (uint64_t i = 0; i < b->n; i++)
			m->terms[b->first + i] = b->term;
		m->last = b->first + b->n - 1;
	}
	if (b->term > m->term)
		m->term = b->term;
	if (b->has_hs) {
		m->hs = b->hs;
		if (b->hs.term > m->term)
			m->term = b->hs.term;
	}
	return 0;
}

/* ---- the child --------------------------------------------------------------------------- */

/* Choose the next batch for model m. */
static inline void cw_next_batch(struct prng *p, const struct cw_model *m, uint64_t seq,
				 struct cw_msg *b)
{
	memset(b, 0, sizeof(*b));
	b->kind = CW_INTENT;
	b->seq = seq;
	b->term = m->term ? m->term : 1;
	uint64_t r = prng_below(p, 100);
	if (r < 6 && m->last > 0) {
		/* A new leader overwrote a suffix: truncate then append, in a newer term. */
		uint64_t k = prng_range(p, 1, m->last < 40 ? m->last : 40);
		b->truncate_from = m->last - k + 1;
		b->first = b->truncate_from;
		b->n = prng_range(p, 1, 64);
		b->term = b->term + 1;
		b->has_hs = 1;
		b->hs = (struct storage_hard_state){.term = b->term,
						    .vote = prng_below(p, 5),
						    .commit = m->hs.commit < b->truncate_from
								      ? m->hs.commit
								      : b->truncate_from - 1};
	} else if (r < 12) {
		/* A hard state change alone (a vote, a new term or a commit advance). */
		b->n = 0;
		b->has_hs = 1;
		uint64_t term = m->hs.term > b->term ? m->hs.term : b->term;
		uint64_t commit = m->hs.commit < m->last ? m->hs.commit : m->last;
		b->hs = (struct storage_hard_state){.term = term + prng_below(p, 2),
						    .vote = prng_below(p, 5),
						    .commit = prng_range(p, commit, m->last)};
		b->term = b->hs.term;
	} else {
		b->first = m->last + 1;
		b->n = prng_range(p, 1, 64);
		if (prng_below(p, 4) == 0) {
			b->has_hs = 1;
			b->hs = m->hs;
			b->hs.term = b->term;
			b->hs.commit = prng_range(
				p, m->hs.commit < m->last ? m->hs.commit : m->last, m->last);
		}
	}
}

/* The child's whole life: open, load, report READY, then write batches forever, reporting
 * each before and after storage_write. Never returns. */
static inline _Noreturn void cw_child(const char *dir, const struct storage_options *opt,
				      struct cw_model *m, uint64_t seed, int fd)
{
	struct prng p;
	prng_seed(&p, seed);
	struct storage *s = NULL;
	char msg[512] = "";
	int rc = storage_open(dir, opt, &s, msg, sizeof(msg));
	if (rc != 0) {
		fprintf(stderr, "crash child: storage_open(%s) = %d: %s\n", dir, rc, msg);
		_exit(11);
	}
	struct storage_hard_state hs;
	struct storage_snapshot_info snap;
	rc = storage_load(s, &hs, &snap, NULL, NULL);
	if (rc != 0) {
		fprintf(stderr, "crash child: storage_load = %d: %s\n", rc, storage_errmsg(s));
		_exit(12);
	}
	storage_snapshot_info_free(&snap);
	struct cw_msg ready = {.kind = CW_READY};
	if (tl_write_all(fd, &ready, sizeof(ready)) != 0)
		_exit(13);

	struct storage_entry *e = calloc(64, sizeof(*e));
	unsigned char *data = malloc((size_t)64 * TL_ENTRY_MAX);
	if (e == NULL || data == NULL)
		_exit(14);
	for (uint64_t seq = 1;; seq++) {
		struct cw_msg b;
		cw_next_batch(&p, m, seq, &b);
		for (uint64_t i = 0; i < b.n; i++) {
			uint64_t idx = b.first + i;
			unsigned char *d = data + i * TL_ENTRY_MAX;
			e[i] = (struct storage_entry){.index = idx,
						      .term = b.term,
						      .type = tl_entry_type(idx, b.term),
						      .data = d,
						      .len = tl_entry_len(idx, b.term)};
			tl_entry_fill(idx, b.term, d, e[i].len);
		}
		struct storage_batch batch = {.truncate_from = b.truncate_from,
					      .entries = e,
					      .n_entries = (size_t)b.n,
					      .hs = b.has_hs ? &b.hs : NULL,
					      .sync = true};
		if (tl_write_all(fd, &b, sizeof(b)) != 0)
			_exit(15);
		rc = storage_write(s, &batch);
		if (rc != 0) {
			fprintf(stderr, "crash child: storage_write (batch %" PRIu64 ") = %d: %s\n",
				seq, rc, storage_errmsg(s));
			_exit(16);
		}
		struct cw_msg ack = {.kind = CW_ACK, .seq = seq};
		if (tl_write_all(fd, &ack, sizeof(ack)) != 0)
			_exit(17);
		if (cw_model_apply(m, &b) != 0)
			_exit(18);
		rc = storage_maybe_checkpoint(s, false);
		if (rc != 0) {
			fprintf(stderr, "crash child: storage_maybe_checkpoint = %d: %s\n", rc,
				storage_errmsg(s));
			_exit(19);
		}
	}
}

/* ---- the parent -------------------------------------------------------------------------- */

/* Run one round: fork a child writing to `dir` on top of model `ack` (which follows the
 * acknowledged batches), kill it with SIGKILL `kill_ms` after it reported READY (or, when
 * `from_fork`, `kill_ms` after the fork, possibly while it is still recovering). On return
 * `ack` is the model of every acknowledged batch and r->pend the unacknowledged intent.
 * Returns 0, or -1 with a reason in err. */
static inline int cw_run_round(const char *dir, const struct storage_options *opt,
			       struct cw_model *ack, uint64_t seed, double kill_ms, bool from_fork,
			       struct cw_round *r, char *err, size_t errcap)
{
	memset(r, 0, sizeof(*r));
	int p[2];
	if (pipe(p) != 0) {
		snprintf(err, errcap, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errcap, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		cw_child(dir, opt, ack, seed, p[1]);
	}
	close(p[1]);

	const double ready_bound_ms = 30000; /* opening (recovery) must finish within this */
	double start = tl_now_ms();
	double deadline = from_fork ? start + kill_ms : start + ready_bound_ms;
	bool killed = false, eof = false;
	int rv = 0;
	unsigned char buf[sizeof(struct cw_msg) * 64];
	size_t have = 0;
	while (!eof) {
		double now = tl_now_ms();
		if (!killed && now >= deadline) {
			if (!r->ready && !from_fork) {
				snprintf(err, errcap,
					 "the child did not open the store within %.0f ms",
					 ready_bound_ms);
				rv = -1;
			}
			kill(pid, SIGKILL);
			killed = true;
		}
		struct pollfd pfd = {.fd = p[0], .events = POLLIN};
		int timeout = killed ? -1 : (int)(deadline - now) + 1;
		int pr = poll(&pfd, 1, timeout);
		if (pr < 0 && errno != EINTR) {
			snprintf(err, errcap, "poll: %s", strerror(errno));
			kill(pid, SIGKILL);
			killed = true;
			rv = -1;
		}
		if (pr <= 0)
			continue;
		ssize_t n = read(p[0], buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			eof = true;
			break;
		}
		have += (size_t)n;
		size_t off = 0;
		for (; have - off >= sizeof(struct cw_msg); off += sizeof(struct cw_msg)) {
			struct cw_msg m;
			memcpy(&m, buf + off, sizeof(m));
			if (m.kind == CW_READY) {
				r->ready = true;
				if (!from_fork)
					deadline = tl_now_ms() + kill_ms;
			} else if (m.kind == CW_INTENT) {
				r->pend = m;
				r->pending = true;
			} else if (m.kind == CW_ACK && r->pending && m.seq == r->pend.seq) {
				if (cw_model_apply(ack, &r->pend) != 0) {
					snprintf(err, errcap, "out of memory");
					rv = -1;
				}
				r->acked_batches++;
				r->acked_entries += r->pend.n;
				r->pending = false;
			} else {
				snprintf(err, errcap, "unexpected message kind %u seq %" PRIu64,
					 m.kind, m.seq);
				rv = -1;
			}
		}
		memmove(buf, buf + off, have - off);
		have -= off;
	}
	close(p[0]);
	if (!killed)
		kill(pid, SIGKILL); /* EOF before the kill: the child died on its own */
	while (waitpid(pid, &r->status, 0) < 0)
		if (errno != EINTR) {
			snprintf(err, errcap, "waitpid: %s", strerror(errno));
			return -1;
		}
	if (rv == 0 && !(WIFSIGNALED(r->status) && WTERMSIG(r->status) == SIGKILL)) {
		char ws[64];
		snprintf(err, errcap, "the child ended by itself (%s) instead of being killed",
			 tl_wait_str(r->status, ws, sizeof(ws)));
		rv = -1;
	}
	return rv;
}

/* Comparison of a loaded store against up to two candidate models. */
struct cw_check {
	const struct cw_model *m[2];
	bool ok[2];
	uint64_t bad_index[2]; /* first index that differs (0: none) */
	uint64_t next;         /* the index expected next */
	char detail[256];
};

static inline int cw_check_entry(void *arg, const struct storage_entry *e)
{
	struct cw_check *c = arg;
	if (e->index != c->next) {
		snprintf(c->detail, sizeof(c->detail),
			 "the log is not contiguous: entry %" PRIu64 " where %" PRIu64
			 " was expected",
			 e->index, c->next);
		c->ok[0] = c->ok[1] = false;
		return -2000;
	}
	for (int k = 0; k < 2; k++) {
		const struct cw_model *m = c->m[k];
		if (m == NULL || !c->ok[k])
			continue;
		bool same = e->index <= m->last;
		if (same) {
			uint64_t t = m->terms[e->index];
			unsigned char want[TL_ENTRY_MAX];
			size_t len = tl_entry_len(e->index, t);
			tl_entry_fill(e->index, t, want, len);
			same = e->term == t && e->type == tl_entry_type(e->index, t) &&
			       e->len == len && memcmp(e->data, want, len) == 0;
		}
		if (!same) {
			c->ok[k] = false;
			c->bad_index[k] = e->index;
		}
	}
	c->next++;
	return 0;
}

static inline bool cw_hs_equal(const struct storage_hard_state *a,
			       const struct storage_hard_state *b)
{
	return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

/* Open `dir`, load, and compare with `ack` and (when pending) ack + pend. On success `ack`
 * becomes the model the store matched and *took_pending says whether that was the pending
 * batch. Returns 0, or -1 with a description in err. */
static inline int cw_verify(const char *dir, const struct storage_options *opt,
			    struct cw_model *ack, const struct cw_round *r, bool *took_pending,
			    char *err, size_t errcap)
{
	struct cw_model next;
	memset(&next, 0, sizeof(next));
	if (r->pending &&
	    (cw_model_copy(&next, ack) != 0 || cw_model_apply(&next, &r->pend) != 0)) {
		cw_model_free(&next);
		snprintf(err, errcap, "out of memory");
		return -1;
	}
	struct storage *s = NULL;
	char msg[512] = "";
	int rc = storage_open(dir, opt, &s, msg, sizeof(msg));
	if (rc != 0) {
		snprintf(err, errcap, "storage_open(%.200s) = %d: %.500s", dir, rc, msg);
		cw_model_free(&next);
		return -1;
	}
	struct cw_check c = {
		.m = {ack, r->pending ? &next : NULL}, .ok = {true, r->pending}, .next = 1};
	struct storage_hard_state hs;
	struct storage_snapshot_info snap;
	rc = storage_load(s, &hs, &snap, cw_check_entry, &c);
	int rv = 0;
	if (rc != 0) {
		snprintf(err, errcap, "storage_load = %d: %s%s%s", rc,
			 rc == -2000 ? "" : storage_errmsg(s), rc == -2000 ? "" : " ", c.detail);
		rv = -1;
	} else {
		uint64_t loaded = c.next - 1;
		for (int k = 0; k < 2; k++) {
			if (c.m[k] == NULL || !c.ok[k])
				continue;
			if (loaded != c.m[k]->last) {
				c.ok[k] = false;
				c.bad_index[k] =
					(loaded < c.m[k]->last ? loaded : c.m[k]->last) + 1;
			} else if (!cw_hs_equal(&hs, &c.m[k]->hs)) {
				c.ok[k] = false;
			}
		}
		if (snap.index != 0) {
			snprintf(err, errcap, "a snapshot at %" PRIu64 " appeared", snap.index);
			rv = -1;
		} else if (!c.ok[0] && !c.ok[1]) {
			int n = snprintf(
				err, errcap,
				"recovered log 1..%" PRIu64 ", hard state {%" PRIu64 ", %" PRIu64
				", %" PRIu64 "}; acknowledged: log 1..%" PRIu64
				" (first difference at %" PRIu64 "), hard state {%" PRIu64
				", %" PRIu64 ", %" PRIu64 "}",
				loaded, hs.term, hs.vote, hs.commit, ack->last, c.bad_index[0],
				ack->hs.term, ack->hs.vote, ack->hs.commit);
			if (r->pending && n > 0 && (size_t)n < errcap)
				snprintf(err + n, errcap - (size_t)n,
					 "; with the unacknowledged batch %" PRIu64
					 " (truncate %" PRIu64 ", %" PRIu64 "+%" PRIu64
					 "): log 1..%" PRIu64 " (first difference at %" PRIu64 ")",
					 r->pend.seq, r->pend.truncate_from, r->pend.first,
					 r->pend.n, next.last, c.bad_index[1]);
			rv = -1;
		}
		storage_snapshot_info_free(&snap);
	}
	storage_close(s);
	if (rv == 0) {
		*took_pending = !c.ok[0];
		if (*took_pending) {
			cw_model_free(ack);
			*ack = next;
			memset(&next, 0, sizeof(next));
		}
	}
	cw_model_free(&next);
	return rv;
}

/* The base seed: RAFTKV_STORAGE_SEED or `dflt`. */
static inline uint64_t cw_env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	if (v == NULL || v[0] == '\0')
		return dflt;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (errno != 0 || *end != '\0') {
		fprintf(stderr, "%s=%s is not a number; using %" PRIu64 "\n", name, v, dflt);
		return dflt;
	}
	return x;
}

#endif
