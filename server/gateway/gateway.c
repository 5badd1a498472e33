/* kvgateway: request forwarding with leader cache, hints, backoff and write ids. */
#define _GNU_SOURCE
#include "server/gateway/gateway.h"

#include <grpc/status.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/log.h"
#include "common/monotime.h"
#include "raftkv/v1/cluster.pb-c.h"
#include "raftkv/v1/kv.pb-c.h"
#include "raftkv_descriptor_set.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 250
#define MAX_HOPS       8 /* immediate retries following hints, per request */
/* A lane unused this long starts a new write id session: the raftnodes forget sessions after
 * --session-ttl-ms (10 minutes) of leader time, far longer. */
#define LANE_IDLE_MS (60 * 1000)
/* The raftnode's answer to a write id whose session it does not know (api.h). */
#define ESESSION_TEXT "write id session unknown or expired"

/* ---- methods -------------------------------------------------------------------------- */

enum route {
	ROUTE_WRITE,   /* to the leader; stamped with a write id */
	ROUTE_READ,    /* linearizable: the leader; serializable: any member */
	ROUTE_CLUSTER, /* the leader if known, else any member (every member answers) */
};

struct gw_method {
	const char *path;
	enum route route;
	const ProtobufCMessageDescriptor *desc;
	unsigned write_id_field; /* ROUTE_WRITE: field number of the WriteId */
};

static const struct gw_method methods[] = {
	{"/raftkv.v1.KV/Put", ROUTE_WRITE, &raftkv__v1__put_request__descriptor, 3},
	{"/raftkv.v1.KV/Get", ROUTE_READ, &raftkv__v1__get_request__descriptor, 0},
	{"/raftkv.v1.KV/Delete", ROUTE_WRITE, &raftkv__v1__delete_request__descriptor, 3},
	{"/raftkv.v1.KV/Range", ROUTE_READ, &raftkv__v1__range_request__descriptor, 0},
	{"/raftkv.v1.KV/Append", ROUTE_WRITE, &raftkv__v1__append_request__descriptor, 3},
	{"/raftkv.v1.KV/Txn", ROUTE_WRITE, &raftkv__v1__txn_request__descriptor, 4},
	{"/raftkv.v1.Cluster/Status", ROUTE_CLUSTER, &raftkv__v1__status_request__descriptor, 0},
	{"/raftkv.v1.Cluster/MemberList", ROUTE_CLUSTER,
	 &raftkv__v1__member_list_request__descriptor, 0},
};
#define N_METHODS (sizeof(methods) / sizeof(methods[0]))

/* ---- one forwarded request ------------------------------------------------------------ */

struct gw_fwd {
	struct gateway *g;
	struct tp_call *call;
	const struct gw_method *m;
	unsigned char *req;
	size_t len;
	bool any_member; /* serializable read: any reachable member will do */
	int64_t deadline_ms;
	int64_t due_ms; /* when waiting for a retry */
	struct gw_fwd *next;
	int hops;
	int backoff_ms;
	bool reached;         /* some raftnode answered at least once */
	struct gw_lane *lane; /* the write id lane this write holds, if the gateway stamped it */
	size_t unstamped_len; /* the client's request bytes before our write id */
	int64_t start_ms;     /* when the gateway received it */
	char target[GW_ADDR_MAX];
	char last_err[GW_ADDR_MAX + 300];
};

static void fwd_send(struct gw_fwd *f);
static bool restamp(struct gw_fwd *f);
static bool recently_ok(const struct gateway *g, const struct gw_endpoint *e, int64_t now);

static void fwd_free(struct gw_fwd *f)
{
	if (f->lane != NULL) {
		pthread_mutex_lock(&f->g->mu);
		f->lane->next = f->g->free_lanes;
		f->g->free_lanes = f->lane;
		pthread_mutex_unlock(&f->g->mu);
	}
	free(f->req);
	free(f);
}

static void fwd_finish(struct gw_fwd *f, int status, const char *details, const void *msg,
		       size_t len)
{
	tp_call_reply(f->call, status, details, msg, len, NULL, 0);
	atomic_fetch_sub(&f->g->inflight, 1);
	fwd_free(f);
}

/* The client's budget is over, or the gateway stops: say what was last seen. */
static void fwd_give_up(struct gw_fwd *f, const char *why)
{
	char details[GW_ADDR_MAX + 400];
	snprintf(details, sizeof(details), "%s (last error: %s)", why,
		 f->last_err[0] ? f->last_err : "none");
	/* DEADLINE_EXCEEDED when the cluster is there but did not answer in time; UNAVAILABLE
	 * when no raftnode can be reached at all (or the gateway stops). */
	struct gateway *g = f->g;
	bool reachable = f->reached;
	pthread_mutex_lock(&g->mu);
	int64_t now = tp_now_ms();
	for (size_t i = 0; i < g->n_eps && !reachable; i++)
		reachable = g->eps[i].configured && recently_ok(g, &g->eps[i], now);
	pthread_mutex_unlock(&g->mu);
	int status =
		reachable && !g->stopping ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_UNAVAILABLE;
	fwd_finish(f, status, details, NULL, 0);
}

/* ---- endpoints ------------------------------------------------------------------------- */

/* g->mu held. The endpoint for `addr`, created (with its channel) if new; NULL when full. */
static struct gw_endpoint *endpoint_get(struct gateway *g, const char *addr)
{
	for (size_t i = 0; i < g->n_eps; i++)
		if (strcmp(g->eps[i].addr, addr) == 0)
			return &g->eps[i];
	if (g->n_eps == GW_MAX_ENDPOINTS || strlen(addr) >= GW_ADDR_MAX)
		return NULL;
	struct tp_channel_options o = {
		.max_recv_bytes = g->cfg.max_request_bytes + (4u << 20),
		.reconnect_backoff_min_ms = 100,
		.reconnect_backoff_max_ms = 1000,
		.keepalive_ms = 10000,
	};
	struct tp_channel *ch = tp_channel_new(g->loop, addr, &o);
	if (ch == NULL)
		return NULL;
	struct gw_endpoint *e = &g->eps[g->n_eps++];
	memset(e, 0, sizeof(*e));
	snprintf(e->addr, sizeof(e->addr), "%s", addr);
	e->ch = ch;
	return e;
}

/* g->mu held. A new leader releases every request waiting out a backoff at once; with no
 * leader known the timer thread probes fast until one is. */
static void set_leader(struct gateway *g, const char *addr)
{
	if (strcmp(g->leader, addr) == 0)
		return;
	if (addr[0] != '\0') {
		/* Followers keep naming a dead leader until their election timeout: do not
		 * believe them about a node we just failed to reach. */
		struct gw_endpoint *e = endpoint_get(g, addr);
		if (e != NULL && e->down_ms != 0 && tp_now_ms() - e->down_ms < 2000)
			return;
	}
	if (addr[0] != '\0') {
		LOG_I("leader is now %s", addr);
		int64_t now = tp_now_ms();
		for (struct gw_fwd *f = g->waiting; f != NULL; f = f->next)
			f->due_ms = now;
	} else if (g->leader[0] != '\0') {
		LOG_I("leader %s lost", g->leader);
		g->next_probe_ms = tp_now_ms();
	}
	snprintf(g->leader, sizeof(g->leader), "%s", addr);
	pthread_cond_broadcast(&g->cv);
}

static bool recently_ok(const struct gateway *g, const struct gw_endpoint *e, int64_t now)
{
	int64_t window = 3 * (int64_t)g->cfg.probe_interval_ms;
	if (window < 3000)
		window = 3000;
	return e->last_ok_ms != 0 && now - e->last_ok_ms <= window;
}

/* g->mu held: where to send f now. */
static struct gw_endpoint *choose(struct gateway *g, struct gw_fwd *f)
{
	if (!f->any_member && g->leader[0] != '\0') {
		struct gw_endpoint *e = endpoint_get(g, g->leader);
		if (e != NULL)
			return e;
	}
	/* Round robin over configured endpoints, preferring reachable ones; with no leader
	 * known, whoever answers will name it. */
	int64_t now = tp_now_ms();
	struct gw_endpoint *fallback = NULL;
	for (size_t k = 0; k < g->n_eps; k++) {
		struct gw_endpoint *e = &g->eps[(g->rr + k) % g->n_eps];
		if (!e->configured)
			continue;
		if (fallback == NULL)
			fallback = e;
		if (recently_ok(g, e, now)) {
			g->rr = (size_t)(e - g->eps) + 1;
			return e;
		}
	}
	g->rr++;
	return fallback;
}

/* ---- retries ------------------------------------------------------------------------- */

static uint64_t jitter(uint64_t n)
{
	uint64_t r;
	if (getrandom(&r, sizeof(r), 0) != sizeof(r))
		r = (uint64_t)tp_now_ms();
	return n > 0 ? r % n : 0;
}

/* Retry after a jittered exponential backoff, within the client's deadline. */
static void fwd_backoff(struct gw_fwd *f)
{
	struct gateway *g = f->g;
	f->backoff_ms = f->backoff_ms == 0 ? BACKOFF_MIN_MS : f->backoff_ms * 2;
	if (f->backoff_ms > BACKOFF_MAX_MS)
		f->backoff_ms = BACKOFF_MAX_MS;
	int64_t wait = f->backoff_ms / 2 + (int64_t)jitter((uint64_t)f->backoff_ms / 2 + 1);
	int64_t now = tp_now_ms();
	if (now + wait >= f->deadline_ms) {
		fwd_give_up(f, "no leader answered within the deadline");
		return;
	}
	f->due_ms = now + wait;
	f->hops = 0;
	pthread_mutex_lock(&g->mu);
	if (g->stopping) {
		pthread_mutex_unlock(&g->mu);
		fwd_give_up(f, "the gateway is shutting down");
		return;
	}
	struct gw_fwd **pp = &g->waiting;
	while (*pp != NULL && (*pp)->due_ms <= f->due_ms)
		pp = &(*pp)->next;
	f->next = *pp;
	*pp = f;
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
}

/* "<id>@<addr>" from the raftkv-leader trailer, or "" */
static void hint_of(const struct tp_result *r, char *out, size_t cap)
{
	out[0] = '\0';
	for (size_t i = 0; i < r->n_trailers; i++) {
		if (strcmp(r->trailers[i].key, "raftkv-leader") != 0)
			continue;
		size_t n = r->trailers[i].value_len;
		const char *v = r->trailers[i].value;
		const char *at = memchr(v, '@', n);
		if (at == NULL)
			return;
		size_t k = n - (size_t)(at + 1 - v);
		if (k >= cap)
			return;
		memcpy(out, at + 1, k);
		out[k] = '\0';
	}
}

static void fwd_done(void *arg, const struct tp_result *r)
{
	struct gw_fwd *f = arg;
	struct gateway *g = f->g;
	/* A raftnode's own UNAVAILABLE answers name the leader situation or its shutdown;
	 * gRPC's (no connection) do not. */
	bool connected = r->status != GRPC_STATUS_UNAVAILABLE || r->n_trailers > 0 ||
			 strstr(r->details, "leader") != NULL ||
			 strstr(r->details, "shutting down") != NULL;
	if (r->status == GRPC_STATUS_OK || connected)
		f->reached = true;
	snprintf(f->last_err, sizeof(f->last_err), "%s: %d %s", f->target, r->status, r->details);

	pthread_mutex_lock(&g->mu);
	struct gw_endpoint *e = endpoint_get(g, f->target);
	if (e != NULL) {
		e->last_ok_ms = connected ? tp_now_ms() : 0; /* unreachable: skip it for now */
		e->down_ms = connected ? 0 : tp_now_ms();
	}
	if (r->status == GRPC_STATUS_OK && f->m->route != ROUTE_CLUSTER && !f->any_member)
		set_leader(g, f->target);
	char hint[GW_ADDR_MAX];
	hint_of(r, hint, sizeof(hint));
	bool retry_now = false;
	if (r->status == GRPC_STATUS_UNAVAILABLE) {
		if (hint[0] != '\0' && strcmp(hint, f->target) != 0) {
			set_leader(g, hint);
			retry_now = f->hops < MAX_HOPS;
		} else if (strcmp(g->leader, f->target) == 0) {
			set_leader(g, ""); /* it was the leader and is no more (or is gone) */
		}
	} else if (r->status == GRPC_STATUS_DEADLINE_EXCEEDED ||
		   r->status == GRPC_STATUS_CANCELLED) {
		if (strcmp(g->leader, f->target) == 0)
			set_leader(g, "");
	}
	bool stopping = g->stopping;
	pthread_mutex_unlock(&g->mu);

	switch (r->status) {
	case GRPC_STATUS_OK:
		fwd_finish(f, GRPC_STATUS_OK, NULL, r->msg, r->len);
		return;
	case GRPC_STATUS_FAILED_PRECONDITION:
		if (f->lane != NULL &&
		    strncmp(r->details, ESESSION_TEXT, strlen(ESESSION_TEXT)) == 0 && restamp(f)) {
			fwd_send(f);
			return;
		}
		fwd_finish(f, r->status, r->details, NULL, 0);
		return;
	case GRPC_STATUS_UNAVAILABLE:
	case GRPC_STATUS_DEADLINE_EXCEEDED: /* this try's timeout, not the client's deadline */
	case GRPC_STATUS_CANCELLED:
		if (stopping) {
			fwd_give_up(f, "the gateway is shutting down");
		} else if (tp_now_ms() >= f->deadline_ms) {
			fwd_give_up(f, "no leader answered within the deadline");
		} else if (retry_now) {
			f->hops++;
			fwd_send(f);
		} else {
			fwd_backoff(f);
		}
		return;
	default:
		/* The raftnode's verdict on the request itself: pass it on. */
		fwd_finish(f, r->status, r->details, NULL, 0);
	}
}

static void fwd_send(struct gw_fwd *f)
{
	struct gateway *g = f->g;
	pthread_mutex_lock(&g->mu);
	struct gw_endpoint *e = g->stopping ? NULL : choose(g, f);
	struct tp_channel *ch = e != NULL ? e->ch : NULL;
	if (e != NULL)
		snprintf(f->target, sizeof(f->target), "%s", e->addr);
	if (ch != NULL)
		atomic_fetch_add(&g->sending, 1); /* gw_stop frees channels only at zero */
	pthread_mutex_unlock(&g->mu);
	if (ch == NULL) {
		if (g->stopping)
			fwd_give_up(f, "the gateway is shutting down");
		else
			fwd_backoff(f);
		return;
	}
	int64_t left = f->deadline_ms - tp_now_ms();
	int64_t timeout =
		left < (int64_t)g->cfg.try_timeout_ms ? left : (int64_t)g->cfg.try_timeout_ms;
	if (timeout <= 0) {
		atomic_fetch_sub(&g->sending, 1);
		fwd_give_up(f, "no leader answered within the deadline");
		return;
	}
	tp_unary(ch, f->m->path, f->req, f->len, NULL, 0, (int)timeout, false, fwd_done, f);
	atomic_fetch_sub(&g->sending, 1);
}

/* ---- incoming calls ------------------------------------------------------------------- */

static size_t put_varint(unsigned char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* Append our write id (the lane's client id, its next sequence) to the request: for an
 * embedded message protobuf merges later occurrences, so ours wins over an explicit
 * {client_id: 0}. The same bytes go out on every retry. */
static int append_write_id(struct gw_fwd *f)
{
	struct gw_lane *lane = f->lane;
	unsigned char inner[24], outer[40];
	size_t n = 0;
	inner[n++] = 0x08; /* field 1, varint */
	n += put_varint(inner + n, lane->client_id);
	inner[n++] = 0x10; /* field 2, varint */
	n += put_varint(inner + n, ++lane->seq);
	size_t k = put_varint(outer, ((uint64_t)f->m->write_id_field << 3) | 2);
	k += put_varint(outer + k, n);
	memcpy(outer + k, inner, n);
	k += n;
	unsigned char *p = realloc(f->req, f->unstamped_len + k);
	if (p == NULL)
		return -1;
	memcpy(p + f->unstamped_len, outer, k);
	f->req = p;
	f->len = f->unstamped_len + k;
	lane->last_used_ms = tp_now_ms();
	return 0;
}

/* A new write id session for the lane: a fresh client id, sequences from 1 again. */
static void lane_renew(struct gw_lane *lane)
{
	uint64_t old = lane->client_id;
	lane->client_id = 0;
	while (lane->client_id == 0 || lane->client_id == old)
		lane->client_id = jitter(UINT64_MAX);
	lane->seq = 0;
}

/*
 * A write without a usable write id gets one of ours, from a lane: a pool of client ids,
 * each with at most one write outstanding, so sequences never race (docs/gateway.md).
 */
static int stamp_write_id(struct gateway *g, struct gw_fwd *f, const ProtobufCMessage *msg)
{
	const ProtobufCFieldDescriptor *fd =
		protobuf_c_message_descriptor_get_field(f->m->desc, f->m->write_id_field);
	const Raftkv__V1__WriteId *wid =
		*(Raftkv__V1__WriteId *const *)((const char *)msg + fd->offset);
	if (wid != NULL && wid->client_id != 0)
		return 0; /* the client's own idempotency key: passed through */
	pthread_mutex_lock(&g->mu);
	struct gw_lane *lane = g->free_lanes;
	if (lane != NULL)
		g->free_lanes = lane->next;
	pthread_mutex_unlock(&g->mu);
	if (lane == NULL) {
		lane = calloc(1, sizeof(*lane));
		if (lane == NULL)
			return -1;
		lane_renew(lane);
		pthread_mutex_lock(&g->mu);
		g->n_lanes++;
		pthread_mutex_unlock(&g->mu);
	} else if (tp_now_ms() - lane->last_used_ms > LANE_IDLE_MS) {
		lane_renew(lane); /* long idle: its session may be gone on the raftnodes */
	}
	f->lane = lane;
	f->unstamped_len = f->len;
	return append_write_id(f);
}

/*
 * The raftnodes do not know our lane's session (it expired, or was evicted under pressure).
 * Nothing was applied for this answer, but an earlier try of the same write may have been,
 * before the session went away: that needs longer than a session lives, so a write younger
 * than LANE_IDLE_MS is safe to send again under a new session. Returns false when the write
 * must fail instead (the client sees the raftnode's FAILED_PRECONDITION).
 */
static bool restamp(struct gw_fwd *f)
{
	if (tp_now_ms() - f->start_ms > LANE_IDLE_MS)
		return false;
	uint64_t old = f->lane->client_id;
	lane_renew(f->lane);
	LOG_I("write id lane %016" PRIx64 ": its session is gone from the cluster; resending as "
	      "%016" PRIx64 " (sequence 1)",
	      old, f->lane->client_id);
	return append_write_id(f) == 0;
}

/* One gateway per process: handlers find it here. */
static struct gateway *the_gateway;

static void on_call(void *arg, struct tp_call *call, const void *req, size_t len)
{
	const struct gw_method *m = arg;
	struct gateway *g = the_gateway;
	if (len > g->cfg.max_request_bytes) {
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
			      "request larger than --max-request-bytes", NULL, 0, NULL, 0);
		return;
	}
	if (g->stopping) {
		tp_call_reply(call, GRPC_STATUS_UNAVAILABLE, "the gateway is shutting down", NULL,
			      0, NULL, 0);
		return;
	}
	ProtobufCMessage *msg = protobuf_c_message_unpack(m->desc, NULL, len, req);
	if (msg == NULL) {
		tp_call_reply(call, GRPC_STATUS_INVALID_ARGUMENT, "malformed request", NULL, 0,
			      NULL, 0);
		return;
	}
	struct gw_fwd *f = calloc(1, sizeof(*f));
	if (f == NULL || (f->req = malloc(len + 1)) == NULL) {
		free(f);
		protobuf_c_message_free_unpacked(msg, NULL);
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL,
			      0);
		return;
	}
	if (len > 0)
		memcpy(f->req, req, len);
	f->len = len;
	f->g = g;
	f->call = call;
	f->m = m;
	f->start_ms = tp_now_ms();
	int64_t deadline = tp_call_deadline_ms(call);
	f->deadline_ms =
		deadline != INT64_MAX ? deadline : tp_now_ms() + (int64_t)g->cfg.default_timeout_ms;
	if (m->desc == &raftkv__v1__get_request__descriptor)
		f->any_member = ((Raftkv__V1__GetRequest *)msg)->consistency ==
				RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
	else if (m->desc == &raftkv__v1__range_request__descriptor)
		f->any_member = ((Raftkv__V1__RangeRequest *)msg)->consistency ==
				RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
	int rv = m->route == ROUTE_WRITE ? stamp_write_id(g, f, msg) : 0;
	protobuf_c_message_free_unpacked(msg, NULL);
	if (rv != 0) {
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL,
			      0);
		fwd_free(f);
		return;
	}
	atomic_fetch_add(&g->inflight, 1);
	fwd_send(f);
}

/* ---- probes and health (timer thread) ---------------------------------------------- */

/* g->mu held: wait on g->cv until woken or until `until_ms` (CLOCK_MONOTONIC ms) passes. The
 * condition variable runs on the monotonic clock too: a wall-clock step must not stall the
 * retries, probes and health checks that wait here. */
static void wait_until(struct gateway *g, int64_t until_ms)
{
	monotime_cond_wait_until(&g->cv, &g->mu, until_ms);
}

struct probe {
	struct gateway *g;
	char addr[GW_ADDR_MAX];
};

static void probe_done(void *arg, const struct tp_result *r)
{
	struct probe *p = arg;
	struct gateway *g = p->g;
	Raftkv__V1__StatusResponse *st =
		r->status == GRPC_STATUS_OK
			? raftkv__v1__status_response__unpack(NULL, r->len, r->msg)
			: NULL;
	pthread_mutex_lock(&g->mu);
	struct gw_endpoint *e = endpoint_get(g, p->addr);
	if (e != NULL) {
		e->probing = false;
		if (st != NULL) {
			e->last_ok_ms = tp_now_ms();
			e->down_ms = 0;
		} else if (r->status == GRPC_STATUS_UNAVAILABLE) {
			e->down_ms = tp_now_ms();
		}
	}
	if (st != NULL && st->role == RAFTKV__V1__STATUS_RESPONSE__ROLE__LEADER)
		set_leader(g, st->leader_client_address[0] ? st->leader_client_address : p->addr);
	else if (st != NULL && st->leader_id != 0 && st->leader_client_address[0] != '\0' &&
		 g->leader[0] == '\0')
		set_leader(g, st->leader_client_address);
	pthread_mutex_unlock(&g->mu);
	if (st != NULL)
		raftkv__v1__status_response__free_unpacked(st, NULL);
	free(p);
}

/* g->mu held. */
static void probe_all(struct gateway *g)
{
	static const unsigned char empty[1];
	int timeout = (int)(g->cfg.probe_interval_ms * 2);
	for (size_t i = 0; i < g->n_eps; i++) {
		struct gw_endpoint *e = &g->eps[i];
		if (!e->configured || e->probing)
			continue;
		struct probe *p = malloc(sizeof(*p));
		if (p == NULL)
			continue;
		p->g = g;
		snprintf(p->addr, sizeof(p->addr), "%s", e->addr);
		e->probing = true;
		tp_unary(e->ch, "/raftkv.v1.Cluster/Status", empty, 0, NULL, 0, timeout, false,
			 probe_done, p);
	}
}

/* g->mu held: SERVING while a majority of the configured endpoints answered recently. */
static void update_health(struct gateway *g)
{
	size_t n = 0, ok = 0;
	int64_t now = tp_now_ms();
	for (size_t i = 0; i < g->n_eps; i++) {
		if (!g->eps[i].configured)
			continue;
		n++;
		ok += recently_ok(g, &g->eps[i], now);
	}
	bool serving = !g->stopping && n > 0 && 2 * ok > n;
	if (serving != g->health) {
		g->health = serving;
		LOG_I("health: %s (%zu of %zu raftnodes reachable)",
		      serving ? "SERVING" : "NOT_SERVING", ok, n);
		tp_server_set_serving(g->server, "", serving);
	}
}

static void *timer_main(void *arg)
{
	struct gateway *g = arg;
	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		int64_t now = tp_now_ms();
		if (now >= g->next_probe_ms) {
			probe_all(g);
			update_health(g);
			/* Without a leader, ask often: followers name the new one at its first
			 * heartbeat. */
			int64_t every =
				g->leader[0] != '\0' ? (int64_t)g->cfg.probe_interval_ms : 25;
			g->next_probe_ms = now + every;
		}
		/* Retries whose backoff is over go out (outside the lock: fwd_send takes it). */
		while (g->waiting != NULL && g->waiting->due_ms <= now) {
			struct gw_fwd *f = g->waiting;
			g->waiting = f->next;
			pthread_mutex_unlock(&g->mu);
			fwd_send(f);
			pthread_mutex_lock(&g->mu);
		}
		int64_t until = g->next_probe_ms;
		if (g->waiting != NULL && g->waiting->due_ms < until)
			until = g->waiting->due_ms;
		wait_until(g, until);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

/* ---- resolution (resolver thread) ----------------------------------------------------- */

/* Resolve every --raftnodes entry; the configured set becomes exactly what resolved (names
 * that fail to resolve this time keep their previous addresses). */
static void resolve_all(struct gateway *g)
{
	char list[sizeof(g->cfg.raftnodes)];
	snprintf(list, sizeof(list), "%s", g->cfg.raftnodes);
	char found[GW_MAX_ENDPOINTS][GW_ADDR_MAX];
	size_t n_found = 0;
	bool failed = false;
	char *save = NULL;
	for (char *item = strtok_r(list, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *colon = strrchr(item, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		const char *host = item, *port = colon + 1;
		char hostbuf[GW_ADDR_MAX];
		if (host[0] == '[') { /* [v6]:port */
			snprintf(hostbuf, sizeof(hostbuf), "%s", host + 1);
			char *rb = strchr(hostbuf, ']');
			if (rb != NULL)
				*rb = '\0';
			host = hostbuf;
		}
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
		int rv = getaddrinfo(host, port, &hints, &res);
		if (rv != 0) {
			LOG_W("resolving %s: %s", item, gai_strerror(rv));
			failed = true;
			continue;
		}
		for (struct addrinfo *a = res; a != NULL && n_found < GW_MAX_ENDPOINTS / 2;
		     a = a->ai_next) {
			char ip[INET6_ADDRSTRLEN + 1];
			if (getnameinfo(a->ai_addr, a->ai_addrlen, ip, sizeof(ip), NULL, 0,
					NI_NUMERICHOST) != 0)
				continue;
			char addr[GW_ADDR_MAX];
			snprintf(addr, sizeof(addr), a->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
				 ip, port);
			bool dup = false;
			for (size_t k = 0; k < n_found; k++)
				dup |= strcmp(found[k], addr) == 0;
			if (!dup)
				snprintf(found[n_found++], GW_ADDR_MAX, "%s", addr);
		}
		freeaddrinfo(res);
	}
	pthread_mutex_lock(&g->mu);
	if (!failed || n_found > 0) {
		for (size_t i = 0; i < g->n_eps; i++)
			g->eps[i].configured = false;
	}
	for (size_t k = 0; k < n_found; k++) {
		struct gw_endpoint *e = endpoint_get(g, found[k]);
		if (e != NULL && !e->configured) {
			e->configured = true;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

static void *resolver_main(void *arg)
{
	struct gateway *g = arg;
	for (;;) {
		pthread_mutex_lock(&g->mu);
		bool stop = g->stopping;
		pthread_mutex_unlock(&g->mu);
		if (stop)
			break;
		resolve_all(g);
		int64_t until = tp_now_ms() + (int64_t)g->cfg.resolve_interval_ms;
		pthread_mutex_lock(&g->mu);
		while (!g->stopping && tp_now_ms() < until)
			wait_until(g, until); /* gw_stop broadcasts the condition */
		pthread_mutex_unlock(&g->mu);
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------------------------- */

int gw_start(struct gateway *g, char *err, size_t errlen)
{
	the_gateway = g;
	pthread_mutex_init(&g->mu, NULL);
	monotime_cond_init(&g->cv);
	g->loop = tp_loop_new();
	if (g->loop == NULL) {
		snprintf(err, errlen, "cannot start the gRPC loop");
		return -1;
	}
	struct tp_method tm[N_METHODS];
	for (size_t i = 0; i < N_METHODS; i++)
		tm[i] = (struct tp_method){methods[i].path, TP_UNARY, on_call, (void *)&methods[i]};
	static const char *const health[] = {"raftkv.v1.KV", "raftkv.v1.Cluster"};
	const char *listen[1] = {g->cfg.listen};
	struct tp_server_options o = {
		.listen = listen,
		.n_listen = 1,
		.methods = tm,
		.n_methods = N_METHODS,
		.max_recv_bytes = g->cfg.max_request_bytes,
		.health_services = health,
		.n_health_services = 2,
		.descriptor_set = raftkv_descriptor_set,
		.descriptor_set_len = raftkv_descriptor_set_len,
		.max_connection_age_ms = (int)g->cfg.max_connection_age_ms,
	};
	resolve_all(g);
	g->server = tp_server_new(g->loop, &o, err, errlen);
	if (g->server == NULL)
		return -1;
	if (pthread_create(&g->timer, NULL, timer_main, g) != 0 ||
	    pthread_create(&g->resolver, NULL, resolver_main, g) != 0) {
		snprintf(err, errlen, "cannot start threads");
		return -1;
	}
	LOG_I("serving on %s, raftnodes %s", g->cfg.listen, g->cfg.raftnodes);
	return 0;
}

void gw_stop(struct gateway *g)
{
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	update_health(g);
	pthread_cond_broadcast(&g->cv);
	pthread_mutex_unlock(&g->mu);
	pthread_join(g->timer, NULL);
	pthread_join(g->resolver, NULL);
	/* Retries waiting out a backoff are answered now. */
	pthread_mutex_lock(&g->mu);
	struct gw_fwd *w = g->waiting;
	g->waiting = NULL;
	pthread_mutex_unlock(&g->mu);
	while (w != NULL) {
		struct gw_fwd *next = w->next;
		fwd_give_up(w, "the gateway is shutting down");
		w = next;
	}
	/* Freeing a channel cancels its calls: their callbacks answer the clients. No new call
	 * starts once `stopping` is set; wait for those being started right now. */
	while (atomic_load(&g->sending) > 0) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	for (size_t i = 0; i < g->n_eps; i++)
		tp_channel_free(g->eps[i].ch);
	int64_t until = tp_now_ms() + 5000;
	while (atomic_load(&g->inflight) > 0 && tp_now_ms() < until) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL); /* bounded: every forward was cancelled above */
	}
	tp_server_free(g->server);
	tp_loop_free(g->loop);
	while (g->free_lanes != NULL) {
		struct gw_lane *l = g->free_lanes;
		g->free_lanes = l->next;
		free(l);
	}
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	LOG_I("stopped");
}
