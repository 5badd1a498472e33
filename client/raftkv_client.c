/* The synchronous client: tp_unary made blocking, leader routing, write-id sessions. */
#include "client/raftkv_client.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/prng.h"
#include "server/transport/transport.h"

/* Largest response accepted: a Range may return up to 10000 keys of up to 1 MiB each on a
 * server configured that way; 64 MiB covers the default limits with room to spare. */
#define RECV_LIMIT (64u << 20)

struct channel_ent {
	char *addr;
	struct tp_channel *ch;
};

/* One write-id session: borrowed by one write at a time. */
struct session {
	uint64_t client_id;   /* random, never 0 */
	uint64_t next_seq;    /* the next write's sequence; starts at 1 */
	bool busy;            /* borrowed by a running write */
	int64_t last_used_ms; /* CLOCK_MONOTONIC */
};

/* A session unused this long starts over (a new client id): the raftnodes forget sessions
 * after --session-ttl-ms (10 minutes) of leader time. The same bound decides whether a write
 * refused for an unknown session may be sent again under a new one (write_call). */
#define SESSION_IDLE_MS (60 * 1000)
/* The raftnode's refusal for a write id session it does not know. */
#define ESESSION_TEXT "write id session unknown or expired"

struct rk_client {
	struct tp_loop *loop;
	int timeout_ms;
	char **ep; /* the endpoint list, n_ep >= 1 */
	size_t n_ep;

	pthread_mutex_t mu; /* guards everything below */
	char *current;      /* the address that answered last (a copy); initially ep[0] */
	size_t ep_cursor;   /* where the next rotation through the list starts */
	struct channel_ent *chans;
	size_t n_chans, cap_chans;
	struct session *sessions;
	size_t n_sessions, cap_sessions;
	struct prng rng; /* client ids and backoff jitter */
};

/* ---- errors ----------------------------------------------------------------------------- */

static const char *const code_names[] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *rk_code_name(int code)
{
	static char buf[32];
	if (code >= 0 && (size_t)code < sizeof(code_names) / sizeof(code_names[0]))
		return code_names[code];
	snprintf(buf, sizeof(buf), "CODE_%d", code);
	return buf;
}

static int set_err(struct rk_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int set_err(struct rk_error *err, int code, const char *fmt, ...)
{
	if (err != NULL) {
		err->code = code;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return code;
}

static void clear_err(struct rk_error *err)
{
	if (err != NULL) {
		err->code = 0;
		err->message[0] = '\0';
	}
}

/* ---- randomness --------------------------------------------------------------------------- */

/* A seed that differs between processes and between clients of one process: client ids must
 * not collide across the cluster's clients (the session table is keyed by them). */
static uint64_t random_seed(const void *salt)
{
	uint64_t s = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, &s, sizeof(s));
		close(fd);
		if (n == (ssize_t)sizeof(s) && s != 0)
			return s;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
	       ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)salt;
}

/* ---- construction ----------------------------------------------------------------------- */

static char *dup_range(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Split "a:1, b:2" into c->ep. A usable endpoint is "host:port" with a numeric port. */
static int parse_endpoints(struct rk_client *c, const char *list, struct rk_error *err)
{
	const char *p = list;
	c->ep = calloc(RK_MAX_ENDPOINTS, sizeof(char *));
	if (c->ep == NULL)
		return set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		const char *e = strchr(p, ',');
		size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		const char *colon = NULL;
		for (size_t k = 0; k < n; k++)
			if (p[k] == ':')
				colon = p + k;
		bool port_ok = colon != NULL && colon + 1 < p + n;
		for (const char *q = colon != NULL ? colon + 1 : p; port_ok && q < p + n; q++)
			port_ok = *q >= '0' && *q <= '9';
		if (!port_ok)
			return set_err(err, RK_INVALID_ARGUMENT,
				       "bad endpoint \"%.*s\": expected host:port", (int)n, p);
		if (c->n_ep == RK_MAX_ENDPOINTS)
			return set_err(err, RK_INVALID_ARGUMENT, "more than %d endpoints",
				       RK_MAX_ENDPOINTS);
		c->ep[c->n_ep] = dup_range(p, n);
		if (c->ep[c->n_ep] == NULL)
			return set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
		c->n_ep++;
		if (e == NULL)
			break;
		p = e + 1;
	}
	return 0;
}

struct rk_client *rk_client_new(const char *endpoints, int timeout_ms, struct rk_error *err)
{
	clear_err(err);
	if (endpoints == NULL || timeout_ms <= 0) {
		set_err(err, RK_INVALID_ARGUMENT, "%s",
			endpoints == NULL ? "no endpoints" : "the timeout must be > 0");
		return NULL;
	}
	struct rk_client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	c->timeout_ms = timeout_ms;
	pthread_mutex_init(&c->mu, NULL);
	prng_seed(&c->rng, random_seed(c));
	if (parse_endpoints(c, endpoints, err) != 0)
		goto err_free;
	c->current = strdup(c->ep[0]);
	if (c->current == NULL) {
		set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
		goto err_free;
	}
	tp_global_init();
	c->loop = tp_loop_new();
	if (c->loop == NULL) {
		set_err(err, RK_INTERNAL, "cannot start the gRPC loop");
		tp_global_shutdown();
		goto err_free;
	}
	return c;
err_free:
	for (size_t i = 0; i < c->n_ep; i++)
		free(c->ep[i]);
	free(c->ep);
	free(c->current);
	pthread_mutex_destroy(&c->mu);
	free(c);
	return NULL;
}

void rk_client_free(struct rk_client *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n_chans; i++) {
		tp_channel_free(c->chans[i].ch);
		free(c->chans[i].addr);
	}
	free(c->chans);
	tp_loop_free(c->loop);
	tp_global_shutdown();
	for (size_t i = 0; i < c->n_ep; i++)
		free(c->ep[i]);
	free(c->ep);
	free(c->current);
	free(c->sessions);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

size_t rk_client_endpoint_count(const struct rk_client *c)
{
	return c->n_ep;
}

const char *rk_client_endpoint(const struct rk_client *c, size_t i)
{
	return i < c->n_ep ? c->ep[i] : NULL;
}

/* ---- channels and sessions (under c->mu) ------------------------------------------------- */

/* The channel to `addr`, created on first use and kept until rk_client_free (so a hint that
 * names a new address costs one channel for the client's life). NULL: out of memory. */
static struct tp_channel *channel_for(struct rk_client *c, const char *addr)
{
	pthread_mutex_lock(&c->mu);
	struct tp_channel *ch = NULL;
	for (size_t i = 0; i < c->n_chans; i++)
		if (strcmp(c->chans[i].addr, addr) == 0) {
			ch = c->chans[i].ch;
			goto out;
		}
	if (c->n_chans == c->cap_chans) {
		size_t cap = c->cap_chans ? 2 * c->cap_chans : 4;
		struct channel_ent *n = realloc(c->chans, cap * sizeof(*n));
		if (n == NULL)
			goto out;
		c->chans = n;
		c->cap_chans = cap;
	}
	char *a = strdup(addr);
	if (a == NULL)
		goto out;
	/* Short reconnect backoff: a CLI call lasts seconds, and a restarted member should be
	 * reachable again well within one. */
	struct tp_channel_options o = {.max_recv_bytes = RECV_LIMIT,
				       .reconnect_backoff_min_ms = 100,
				       .reconnect_backoff_max_ms = 500,
				       .keepalive_ms = 10000};
	ch = tp_channel_new(c->loop, addr, &o);
	if (ch == NULL) {
		free(a);
		goto out;
	}
	c->chans[c->n_chans++] = (struct channel_ent){a, ch};
out:
	pthread_mutex_unlock(&c->mu);
	return ch;
}

/* c->mu held: a new client id, sequences from 1. */
static void session_renew(struct rk_client *c, struct session *s)
{
	uint64_t old = s->client_id;
	do
		s->client_id = prng_next(&c->rng);
	while (s->client_id == 0 || s->client_id == old);
	s->next_seq = 1;
}

/* Borrow a free session (creating one when all are busy). -1: out of memory. */
static long session_get(struct rk_client *c, uint64_t *client_id, uint64_t *seq)
{
	long idx = -1;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n_sessions; i++)
		if (!c->sessions[i].busy) {
			idx = (long)i;
			break;
		}
	if (idx < 0) {
		if (c->n_sessions == c->cap_sessions) {
			size_t cap = c->cap_sessions ? 2 * c->cap_sessions : 2;
			struct session *n = realloc(c->sessions, cap * sizeof(*n));
			if (n == NULL)
				goto out;
			c->sessions = n;
			c->cap_sessions = cap;
		}
		c->sessions[c->n_sessions] = (struct session){0};
		idx = (long)c->n_sessions++;
	}
	struct session *s = &c->sessions[idx];
	int64_t now = tp_now_ms();
	if (s->client_id == 0 || now - s->last_used_ms > SESSION_IDLE_MS)
		session_renew(c, s);
	s->busy = true;
	s->last_used_ms = now;
	*client_id = s->client_id;
	*seq = s->next_seq++;
out:
	pthread_mutex_unlock(&c->mu);
	return idx;
}

static void session_put(struct rk_client *c, long idx)
{
	pthread_mutex_lock(&c->mu);
	c->sessions[idx].busy = false;
	pthread_mutex_unlock(&c->mu);
}

/* ---- one blocking attempt --------------------------------------------------------------- */

/* What the done callback copies out of the call (the tp_result is valid only during it). */
struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int status;
	char details[200];
	void *msg; /* malloc'd copy of the response; NULL if empty or on error */
	size_t len;
	bool oom;
	char hint[256]; /* the raftkv-leader value, "" if absent */
};

/* Loop thread: copy, signal, never block (the mutex is only held for a moment by the
 * waiting thread). */
static void on_done(void *arg, const struct tp_result *r)
{
	struct waiter *w = arg;
	int status = r->status;
	void *msg = NULL;
	bool oom = false;
	if (status == 0 && r->len > 0) {
		msg = malloc(r->len);
		if (msg != NULL)
			memcpy(msg, r->msg, r->len);
		else
			oom = true;
	}
	pthread_mutex_lock(&w->mu);
	w->status = status;
	snprintf(w->details, sizeof(w->details), "%s", r->details);
	w->msg = msg;
	w->len = msg != NULL ? r->len : 0;
	w->oom = oom;
	w->hint[0] = '\0';
	for (size_t i = 0; i < r->n_trailers; i++) {
		const struct tp_md *m = &r->trailers[i];
		if (strcmp(m->key, "raftkv-leader") != 0)
			continue;
		size_t n = m->value_len ? m->value_len : strlen(m->value);
		if (n < sizeof(w->hint)) {
			memcpy(w->hint, m->value, n);
			w->hint[n] = '\0';
		}
	}
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* One call to `addr`; blocks until done() ran (tp_unary guarantees it, by the timeout at the
 * latest). On return w holds the outcome; the caller frees w->msg. */
static void attempt(struct rk_client *c, const char *addr, const char *method, const void *req,
		    size_t len, int timeout_ms, struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	struct tp_channel *ch = channel_for(c, addr);
	if (ch == NULL) {
		w->status = RK_RESOURCE_EXHAUSTED;
		snprintf(w->details, sizeof(w->details), "out of memory");
		return;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	/* Fail fast: a refused connection is an answer (try elsewhere), not a reason to wait. */
	tp_unary(ch, method, req, len, NULL, 0, timeout_ms, false, on_done, w);
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	if (w->oom) {
		w->status = RK_RESOURCE_EXHAUSTED;
		snprintf(w->details, sizeof(w->details), "out of memory");
	}
}

/* ---- routing ------------------------------------------------------------------------------ */

/* The address of a `raftkv-leader` hint ("<id>@<host:port>") into out, with an unspecified
 * host (0.0.0.0, [::], empty) replaced by the host of `from`. false: no usable address. */
static bool hint_address(const char *hint, const char *from, char *out, size_t outlen)
{
	const char *at = strchr(hint, '@');
	if (at == NULL || at[1] == '\0')
		return false;
	const char *addr = at + 1;
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0')
		return false;
	size_t hostlen = (size_t)(colon - addr);
	bool unspecified = hostlen == 0 || (hostlen == 7 && strncmp(addr, "0.0.0.0", 7) == 0) ||
			   (hostlen == 4 && strncmp(addr, "[::]", 4) == 0);
	int n;
	if (unspecified) {
		const char *fc = strrchr(from, ':');
		int fhost = fc != NULL ? (int)(fc - from) : (int)strlen(from);
		n = snprintf(out, outlen, "%.*s%s", fhost, from, colon);
	} else {
		n = snprintf(out, outlen, "%s", addr);
	}
	return n > 0 && (size_t)n < outlen;
}

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Index of `addr` in the list, or n_ep. */
static size_t ep_index(const struct rk_client *c, const char *addr)
{
	for (size_t i = 0; i < c->n_ep; i++)
		if (strcmp(c->ep[i], addr) == 0)
			return i;
	return c->n_ep;
}

/*
 * Send `req` (packed) to `method`, routed as the header describes, until the deadline; on
 * success unpack the answer with `desc` into *out. `fixed`: only this address, one attempt.
 */
static int call(struct rk_client *c, const char *fixed, const char *method,
		const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc, void *resp,
		struct rk_error *err)
{
	ProtobufCMessage **out = resp;
	*out = NULL;
	clear_err(err);
	int64_t deadline = tp_now_ms() + c->timeout_ms;
	size_t len = protobuf_c_message_get_packed_size(req);
	uint8_t *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
	protobuf_c_message_pack(req, buf);

	char target[256], tried[256] = "";
	size_t cursor;
	pthread_mutex_lock(&c->mu);
	snprintf(target, sizeof(target), "%s", fixed != NULL ? fixed : c->current);
	cursor = c->ep_cursor;
	pthread_mutex_unlock(&c->mu);

	int rv, hops = 0, attempts = 0, backoff = RK_BACKOFF_MIN_MS;
	struct waiter w = {.status = RK_DEADLINE_EXCEEDED, .details = "no attempt made"};
	for (;;) {
		int64_t left = deadline - tp_now_ms();
		if (left <= 0) {
			/* Only reached after an UNAVAILABLE: report it with the attempt count. */
			rv = set_err(err, attempts > 0 ? RK_UNAVAILABLE : RK_DEADLINE_EXCEEDED,
				     "%s: %s (deadline of %d ms passed after %d attempts)", tried,
				     w.details, c->timeout_ms, attempts);
			goto done;
		}
		attempt(c, target, method, buf, len, (int)left, &w);
		attempts++;
		memcpy(tried, target, sizeof(tried));
		if (w.status == RK_OK) {
			ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, w.len, w.msg);
			free(w.msg);
			if (m == NULL) {
				rv = set_err(err, RK_INTERNAL, "%s: undecodable %s response",
					     target, desc->name);
				goto done;
			}
			*out = m;
			rv = 0;
			if (fixed == NULL) {
				char *cur = strdup(target);
				pthread_mutex_lock(&c->mu);
				if (cur != NULL) {
					free(c->current);
					c->current = cur;
				}
				c->ep_cursor = cursor;
				pthread_mutex_unlock(&c->mu);
			}
			goto done;
		}
		if (w.status != RK_UNAVAILABLE || fixed != NULL) {
			rv = set_err(err, w.status, "%s: %s", target, w.details);
			goto done;
		}
		char next[256];
		if (w.hint[0] != '\0' && hops < RK_MAX_HOPS &&
		    hint_address(w.hint, target, next, sizeof(next)) && strcmp(next, target) != 0) {
			/* The member named the leader: go there at once. */
			hops++;
			snprintf(target, sizeof(target), "%s", next);
			continue;
		}
		/* Nobody to follow: the next endpoint of the list after a jittered pause. */
		hops = 0;
		size_t i = ep_index(c, target);
		cursor = i < c->n_ep ? i + 1 : cursor;
		cursor %= c->n_ep;
		snprintf(target, sizeof(target), "%s", c->ep[cursor]);
		pthread_mutex_lock(&c->mu);
		int64_t pause = (int64_t)prng_range(&c->rng, (uint64_t)backoff / 2,
						    (uint64_t)backoff * 3 / 2);
		pthread_mutex_unlock(&c->mu);
		left = deadline - tp_now_ms();
		sleep_ms(pause < left ? pause : left);
		backoff = backoff * 2 > RK_BACKOFF_MAX_MS ? RK_BACKOFF_MAX_MS : backoff * 2;
	}
done:
	free(buf);
	return rv;
}

/* ---- the API ------------------------------------------------------------------------------ */

#define KV(m)      "/raftkv.v1.KV/" m
#define CLUSTER(m) "/raftkv.v1.Cluster/" m

/* A write: `copy` is a shallow copy of the caller's request whose write_id field is
 * `*wid_field`; unless the caller set one, it gets a borrowed session's write id for the
 * whole call (every retry inside call() resends the same bytes). */
static int write_call(struct rk_client *c, const char *method, ProtobufCMessage *copy,
		      Raftkv__V1__WriteId **wid_field, const ProtobufCMessageDescriptor *desc,
		      void *resp, struct rk_error *err)
{
	Raftkv__V1__WriteId wid = RAFTKV__V1__WRITE_ID__INIT;
	long s = -1;
	if (*wid_field == NULL) {
		s = session_get(c, &wid.client_id, &wid.sequence);
		if (s < 0)
			return set_err(err, RK_RESOURCE_EXHAUSTED, "out of memory");
		*wid_field = &wid;
	}
	int64_t start = tp_now_ms();
	int rv = call(c, NULL, method, copy, desc, resp, err);
	/* Our session is unknown to the cluster (expired or evicted). Nothing was applied for
	 * this answer, and an earlier try could only have been applied had the session lived
	 * longer than this call: a young write goes again under a new session. */
	if (s >= 0 && rv == RK_FAILED_PRECONDITION && strstr(err->message, ESESSION_TEXT) != NULL &&
	    tp_now_ms() - start < SESSION_IDLE_MS) {
		pthread_mutex_lock(&c->mu);
		session_renew(c, &c->sessions[s]);
		wid.client_id = c->sessions[s].client_id;
		wid.sequence = c->sessions[s].next_seq++;
		pthread_mutex_unlock(&c->mu);
		rv = call(c, NULL, method, copy, desc, resp, err);
	}
	if (s >= 0)
		session_put(c, s);
	return rv;
}

int rk_put(struct rk_client *c, const Raftkv__V1__PutRequest *req, Raftkv__V1__PutResponse **resp,
	   struct rk_error *err)
{
	Raftkv__V1__PutRequest r = *req;
	return write_call(c, KV("Put"), &r.base, &r.write_id, &raftkv__v1__put_response__descriptor,
			  resp, err);
}

int rk_delete(struct rk_client *c, const Raftkv__V1__DeleteRequest *req,
	      Raftkv__V1__DeleteResponse **resp, struct rk_error *err)
{
	Raftkv__V1__DeleteRequest r = *req;
	return write_call(c, KV("Delete"), &r.base, &r.write_id,
			  &raftkv__v1__delete_response__descriptor, resp, err);
}

int rk_append(struct rk_client *c, const Raftkv__V1__AppendRequest *req,
	      Raftkv__V1__AppendResponse **resp, struct rk_error *err)
{
	Raftkv__V1__AppendRequest r = *req;
	return write_call(c, KV("Append"), &r.base, &r.write_id,
			  &raftkv__v1__append_response__descriptor, resp, err);
}

int rk_txn(struct rk_client *c, const Raftkv__V1__TxnRequest *req, Raftkv__V1__TxnResponse **resp,
	   struct rk_error *err)
{
	Raftkv__V1__TxnRequest r = *req;
	return write_call(c, KV("Txn"), &r.base, &r.write_id, &raftkv__v1__txn_response__descriptor,
			  resp, err);
}

int rk_get(struct rk_client *c, const Raftkv__V1__GetRequest *req, Raftkv__V1__GetResponse **resp,
	   struct rk_error *err)
{
	return call(c, NULL, KV("Get"), &req->base, &raftkv__v1__get_response__descriptor, resp,
		    err);
}

int rk_range(struct rk_client *c, const Raftkv__V1__RangeRequest *req,
	     Raftkv__V1__RangeResponse **resp, struct rk_error *err)
{
	return call(c, NULL, KV("Range"), &req->base, &raftkv__v1__range_response__descriptor, resp,
		    err);
}

int rk_status(struct rk_client *c, const char *endpoint, Raftkv__V1__StatusResponse **resp,
	      struct rk_error *err)
{
	Raftkv__V1__StatusRequest req = RAFTKV__V1__STATUS_REQUEST__INIT;
	return call(c, endpoint, CLUSTER("Status"), &req.base,
		    &raftkv__v1__status_response__descriptor, resp, err);
}

int rk_member_list(struct rk_client *c, Raftkv__V1__MemberListResponse **resp, struct rk_error *err)
{
	Raftkv__V1__MemberListRequest req = RAFTKV__V1__MEMBER_LIST_REQUEST__INIT;
	return call(c, NULL, CLUSTER("MemberList"), &req.base,
		    &raftkv__v1__member_list_response__descriptor, resp, err);
}

void rk_free(void *resp)
{
	if (resp != NULL)
		protobuf_c_message_free_unpacked(resp, NULL);
}

size_t rk_prefix_end(const uint8_t *prefix, size_t len, uint8_t *out)
{
	size_t n = len;
	while (n > 0 && prefix[n - 1] == 0xff)
		n--;
	if (n == 0) {
		out[0] = 0;
		return 1;
	}
	memcpy(out, prefix, n);
	out[n - 1]++;
	return n;
}
