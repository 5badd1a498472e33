/* The server: registered unary and client-streaming methods, health (Check, Watch),
 * reflection (v1 and v1alpha), UNIMPLEMENTED for everything else, and an orderly stop.
 *
 * Every incoming call has one context (struct tp_call) that lives from its pre-posted request
 * to the completion of its last batch. Batches of one call are started under c->mu (gRPC
 * forbids two concurrent start_batch on a call, and replies come from any thread); contexts
 * are freed on the loop thread only, when no batch is pending and the call was answered.
 *
 * Lock order: s->mu -> c->mu, and s->health_mu -> c->mu. s->mu and s->health_mu never nest.
 */
#include <grpc/status.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/check.h"
#include "common/monotime.h"
#include "grpc/health/v1/health.pb-c.h"
#include "server/transport/reflection.h"
#include "server/transport/tp_internal.h"

enum {
	REQUESTS_PER_METHOD = 8, /* pre-posted requests per application method */
	REQUESTS_INTERNAL = 2,   /* ... per health/reflection method and for unknown methods */
	SHUTDOWN_GRACE_MS = 1000 /* answered calls may flush before the rest is cancelled */
};

enum srv_kind {
	K_UNARY = TP_UNARY,
	K_CSTREAM = TP_CLIENT_STREAM,
	K_WATCH,   /* health Watch: one request, a stream of statuses */
	K_REFLECT, /* reflection: bidi, one response per request */
	K_GENERIC  /* any other path: UNIMPLEMENTED */
};

struct srv_method {
	const char *path;
	enum srv_kind kind;
	tp_handler_fn handler;
	void *arg;
	void *reg; /* grpc_server_register_method's handle; NULL for K_GENERIC */
};

struct health_svc {
	char *name;
	bool serving;
};

struct tp_call {
	struct tp_tag t_req, t_recv, t_send, t_final, t_close;
	struct tp_server *srv;
	struct srv_method *m;
	grpc_call *call;
	gpr_timespec deadline;
	grpc_metadata_array req_md;
	grpc_call_details details; /* K_GENERIC only */
	grpc_byte_buffer *payload; /* the unary request, or the last message received */
	int cancelled;             /* from RECV_CLOSE_ON_SERVER */
	void *user;
	struct tp_call *prev, *next;   /* s->calls (under s->mu) */
	struct tp_call *wprev, *wnext; /* s->watchers (under s->health_mu) */
	bool watching;                 /* in s->watchers */
	size_t watch_svc;              /* index in s->health; SIZE_MAX: unknown service */
	int last_sent;                 /* the status last sent to a watcher */

	pthread_mutex_t mu; /* serializes start_batch; guards the fields below */
	int pending;        /* batches started, not yet completed */
	bool replied;       /* the final batch is started (or being started) */
	bool replied_by_tp; /* ... by the transport itself (shutdown, errors) */
	bool close_posted;  /* RECV_CLOSE_ON_SERVER is in its own batch (streams) */
	bool md_sent;       /* initial metadata went out with a stream message */
	bool sending;       /* a SEND_MESSAGE is pending */
	bool end_delivered; /* client streams: the final NULL went to the handler */
	char **md_copies;   /* NUL-terminated metadata values handed out */
	size_t n_md_copies;
	/* The reply, alive until its batch completes. */
	struct tp_mdv trailers;
	grpc_slice details_slice;
	grpc_byte_buffer *reply_bb;
	grpc_byte_buffer *send_bb; /* the stream message being sent */
};

struct tp_server {
	struct tp_loop *loop;
	grpc_server *server;
	struct tp_tag t_shutdown;
	struct srv_method *methods; /* application, then internal, then the generic one */
	size_t n_methods;
	int *ports;
	size_t n_ports;
	struct tp_refl *refl; /* NULL: no reflection */

	pthread_mutex_t mu;
	pthread_cond_t cond;   /* signalled when shutdown_done or n_ctx changes while stopping */
	bool shutting_down;    /* tp_server_free began: new calls are answered UNAVAILABLE */
	bool shutdown_done;    /* the shutdown tag arrived */
	size_t n_ctx;          /* live tp_call contexts, pre-posted requests included */
	struct tp_call *calls; /* calls that arrived and are not freed yet */

	pthread_mutex_t health_mu;
	struct health_svc *health; /* [0] is "" (the whole server) */
	size_t n_health;
	struct tp_call *watchers;
};

static void post_request(struct tp_server *s, struct srv_method *m);
static void start_batch(struct tp_call *c, const grpc_op *ops, size_t n, struct tp_tag *tag);

/* ---- replies ----------------------------------------------------------------------------- */

/* Start the final batch. c->mu held; c->replied false. */
static void reply_locked(struct tp_call *c, int status, const char *details, const void *msg,
			 size_t len, const struct tp_md *trailers, size_t n_trailers, bool by_tp)
{
	c->replied = true;
	c->replied_by_tp = by_tp;
	grpc_op ops[5];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->md_sent) {
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		n++;
		c->md_sent = true;
	}
	if (status == GRPC_STATUS_OK && msg != NULL) {
		c->reply_bb = tp_bb_from(msg, len);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->reply_bb;
		n++;
	}
	if (!tp_mdv_init(&c->trailers, trailers, n_trailers)) {
		/* Illegal trailing metadata would make gRPC refuse the whole batch: answer
		 * INTERNAL instead, without the message. */
		if (c->reply_bb != NULL) {
			grpc_byte_buffer_destroy(c->reply_bb);
			c->reply_bb = NULL;
			n--;
		}
		status = GRPC_STATUS_INTERNAL;
		details = "transport: illegal trailing metadata in the reply";
	}
	c->details_slice = grpc_slice_from_copied_string(details ? details : "");
	ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[n].data.send_status_from_server.status = (grpc_status_code)status;
	ops[n].data.send_status_from_server.status_details = details ? &c->details_slice : NULL;
	ops[n].data.send_status_from_server.trailing_metadata = c->trailers.md;
	ops[n].data.send_status_from_server.trailing_metadata_count = c->trailers.n;
	n++;
	if (!c->close_posted) {
		ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
		ops[n].data.recv_close_on_server.cancelled = &c->cancelled;
		n++;
	}
	start_batch(c, ops, n, &c->t_final);
}

void tp_call_reply(struct tp_call *c, int status, const char *details, const void *msg, size_t len,
		   const struct tp_md *trailers, size_t n_trailers)
{
	pthread_mutex_lock(&c->mu);
	if (c->replied) {
		/* Only legitimate when the transport answered first (tp_server_free). */
		INVARIANT(c->replied_by_tp, "tp_call_reply: call answered twice");
	} else {
		reply_locked(c, status, details, msg, len, trailers, n_trailers, false);
	}
	pthread_mutex_unlock(&c->mu);
}

/* The transport answers `c` itself unless someone did already. */
static void reply_tp(struct tp_call *c, int status, const char *details)
{
	pthread_mutex_lock(&c->mu);
	if (!c->replied)
		reply_locked(c, status, details, NULL, 0, NULL, 0, true);
	pthread_mutex_unlock(&c->mu);
}

/* c->mu held. A failure here means the call state machine is broken, not bad input. */
static void start_batch(struct tp_call *c, const grpc_op *ops, size_t n, struct tp_tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
	if (e != GRPC_CALL_OK) {
		fprintf(stderr, "transport: start_batch: %s\n", grpc_call_error_to_string(e));
		PANIC("transport: grpc_call_start_batch refused a server batch");
	}
	c->pending++;
}

/* ---- call contexts ----------------------------------------------------------------------- */

static struct tp_call *call_new(struct tp_server *s, struct srv_method *m)
{
	struct tp_call *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->t_req.kind = TP_TAG_SRV_REQUEST;
	c->t_recv.kind = TP_TAG_SRV_RECV;
	c->t_send.kind = TP_TAG_SRV_SEND;
	c->t_final.kind = TP_TAG_SRV_FINAL;
	c->t_close.kind = TP_TAG_SRV_CLOSE;
	c->srv = s;
	c->m = m;
	c->watch_svc = SIZE_MAX;
	c->last_sent = -1;
	grpc_metadata_array_init(&c->req_md);
	grpc_call_details_init(&c->details);
	pthread_mutex_init(&c->mu, NULL);
	return c;
}

/* Loop thread; the call is no longer in any list but s->calls. */
static void call_free(struct tp_call *c)
{
	struct tp_server *s = c->srv;
	pthread_mutex_lock(&s->mu);
	if (c->call != NULL) {
		if (c->prev)
			c->prev->next = c->next;
		else
			s->calls = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	s->n_ctx--;
	if (s->shutting_down)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->mu);

	if (c->call != NULL)
		grpc_call_unref(c->call);
	grpc_metadata_array_destroy(&c->req_md);
	grpc_call_details_destroy(&c->details);
	if (c->payload)
		grpc_byte_buffer_destroy(c->payload);
	if (c->reply_bb)
		grpc_byte_buffer_destroy(c->reply_bb);
	if (c->send_bb)
		grpc_byte_buffer_destroy(c->send_bb);
	tp_mdv_free(&c->trailers);
	grpc_slice_unref(c->details_slice);
	for (size_t i = 0; i < c->n_md_copies; i++)
		free(c->md_copies[i]);
	free(c->md_copies);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Loop thread, after a completion of c: one batch fewer; free c once it is over. */
static void call_done_one(struct tp_call *c)
{
	pthread_mutex_lock(&c->mu);
	c->pending--;
	bool over = c->pending == 0 && c->replied &&
		    (c->m->kind != K_CSTREAM || c->end_delivered || !c->close_posted);
	pthread_mutex_unlock(&c->mu);
	if (over)
		call_free(c);
}

/* ---- health -------------------------------------------------------------------------------- */

static size_t health_find(const struct tp_server *s, const char *name)
{
	for (size_t i = 0; i < s->n_health; i++)
		if (strcmp(s->health[i].name, name) == 0)
			return i;
	return SIZE_MAX;
}

static int health_status(const struct tp_server *s, size_t i)
{
	if (i == SIZE_MAX)
		return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
	return s->health[i].serving
		       ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
		       : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static size_t pack_health(int status, uint8_t *buf)
{
	Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
	r.status = status;
	return grpc__health__v1__health_check_response__pack(&r, buf);
}

/* Send a message on a stream. c->mu held, no send pending, not replied. */
static void stream_send_locked(struct tp_call *c, const void *msg, size_t len)
{
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->md_sent) {
		ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
		c->md_sent = true;
	}
	c->send_bb = tp_bb_from(msg, len);
	ops[n].op = GRPC_OP_SEND_MESSAGE;
	ops[n].data.send_message.send_message = c->send_bb;
	n++;
	c->sending = true;
	start_batch(c, ops, n, &c->t_send);
}

/* s->health_mu held: tell a watcher the current status unless it knows it or is busy. */
static void watch_update(struct tp_call *c)
{
	pthread_mutex_lock(&c->mu);
	int st = health_status(c->srv, c->watch_svc);
	if (!c->replied && !c->sending && st != c->last_sent) {
		uint8_t buf[16];
		c->last_sent = st;
		stream_send_locked(c, buf, pack_health(st, buf));
	}
	pthread_mutex_unlock(&c->mu);
}

static void health_check(void *arg, struct tp_call *call, const void *req, size_t len)
{
	struct tp_server *s = arg;
	Grpc__Health__V1__HealthCheckRequest *q =
		grpc__health__v1__health_check_request__unpack(NULL, len, req);
	if (q == NULL) {
		tp_call_reply(call, GRPC_STATUS_INVALID_ARGUMENT, "bad HealthCheckRequest", NULL, 0,
			      NULL, 0);
		return;
	}
	pthread_mutex_lock(&s->health_mu);
	size_t i = health_find(s, q->service);
	int st = health_status(s, i);
	pthread_mutex_unlock(&s->health_mu);
	grpc__health__v1__health_check_request__free_unpacked(q, NULL);
	if (i == SIZE_MAX) {
		tp_call_reply(call, GRPC_STATUS_NOT_FOUND, "unknown service", NULL, 0, NULL, 0);
		return;
	}
	uint8_t buf[16];
	tp_call_reply(call, GRPC_STATUS_OK, NULL, buf, pack_health(st, buf), NULL, 0);
}

void tp_server_set_serving(struct tp_server *s, const char *service, bool serving)
{
	pthread_mutex_lock(&s->health_mu);
	size_t i = health_find(s, service);
	if (i == 0) {
		for (size_t j = 0; j < s->n_health; j++)
			s->health[j].serving = serving;
	} else if (i != SIZE_MAX) {
		s->health[i].serving = serving;
	}
	for (struct tp_call *w = s->watchers; w != NULL; w = w->wnext)
		watch_update(w);
	pthread_mutex_unlock(&s->health_mu);
}

/* ---- incoming calls ---------------------------------------------------------------------- */

static void post_recv_locked(struct tp_call *c)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &c->payload;
	start_batch(c, &op, 1, &c->t_recv);
}

static void post_close_locked(struct tp_call *c)
{
	grpc_op op;
	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	op.data.recv_close_on_server.cancelled = &c->cancelled;
	c->close_posted = true;
	start_batch(c, &op, 1, &c->t_close);
}

/* Unary: flatten the request and hand it to the handler. */
static void on_unary(struct tp_call *c)
{
	grpc_slice req;
	pthread_mutex_lock(&c->mu);
	bool replied = c->replied; /* by tp_server_free, meanwhile */
	pthread_mutex_unlock(&c->mu);
	if (replied)
		return;
	if (c->payload == NULL) {
		reply_tp(c, GRPC_STATUS_INTERNAL, "transport: no request message");
		return;
	}
	if (!tp_bb_flatten(c->payload, &req)) {
		reply_tp(c, GRPC_STATUS_INTERNAL, "transport: unreadable request message");
		return;
	}
	grpc_byte_buffer_destroy(c->payload);
	c->payload = NULL;
	c->m->handler(c->m->arg, c, GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req));
	grpc_slice_unref(req);
}

static void on_watch(struct tp_call *c)
{
	struct tp_server *s = c->srv;
	grpc_slice req;
	Grpc__Health__V1__HealthCheckRequest *q = NULL;
	if (c->payload != NULL && tp_bb_flatten(c->payload, &req)) {
		q = grpc__health__v1__health_check_request__unpack(NULL, GRPC_SLICE_LENGTH(req),
								   GRPC_SLICE_START_PTR(req));
		grpc_slice_unref(req);
	}
	if (q == NULL) {
		reply_tp(c, GRPC_STATUS_INVALID_ARGUMENT, "bad HealthCheckRequest");
		return;
	}
	pthread_mutex_lock(&s->health_mu);
	c->watch_svc = health_find(s, q->service);
	grpc__health__v1__health_check_request__free_unpacked(q, NULL);
	pthread_mutex_lock(&c->mu);
	bool replied = c->replied; /* by tp_server_free, meanwhile */
	if (!replied)
		post_close_locked(c); /* completes when the client cancels or the call ends */
	pthread_mutex_unlock(&c->mu);
	if (replied) {
		pthread_mutex_unlock(&s->health_mu);
		return;
	}
	c->watching = true;
	c->wnext = s->watchers;
	c->wprev = NULL;
	if (s->watchers)
		s->watchers->wprev = c;
	s->watchers = c;
	watch_update(c);
	pthread_mutex_unlock(&s->health_mu);
}

static void watch_forget(struct tp_call *c)
{
	struct tp_server *s = c->srv;
	pthread_mutex_lock(&s->health_mu);
	if (c->watching) {
		if (c->wprev)
			c->wprev->wnext = c->wnext;
		else
			s->watchers = c->wnext;
		if (c->wnext)
			c->wnext->wprev = c->wprev;
		c->watching = false;
	}
	pthread_mutex_unlock(&s->health_mu);
}

/* A request tag fired: a new call (ok) or the server is stopping (!ok). */
static void on_request(struct tp_call *c, bool ok)
{
	struct tp_server *s = c->srv;
	if (!ok) {
		call_free(c); /* c->call is NULL: not in s->calls */
		return;
	}
	pthread_mutex_lock(&s->mu);
	c->next = s->calls;
	if (s->calls)
		s->calls->prev = c;
	s->calls = c;
	bool stopping = s->shutting_down;
	pthread_mutex_unlock(&s->mu);
	if (c->m->kind == K_GENERIC)
		c->deadline = c->details.deadline;
	if (!stopping)
		post_request(s, c->m); /* before handling, so a call is always requested */
	else {
		reply_tp(c, GRPC_STATUS_UNAVAILABLE, "shutting down");
		return;
	}

	switch (c->m->kind) {
	case K_UNARY:
		on_unary(c);
		break;
	case K_CSTREAM:
	case K_REFLECT:
		pthread_mutex_lock(&c->mu);
		if (!c->replied) { /* else tp_server_free answered it meanwhile */
			post_close_locked(c);
			post_recv_locked(c);
		}
		pthread_mutex_unlock(&c->mu);
		break;
	case K_WATCH:
		on_watch(c);
		break;
	case K_GENERIC:
		reply_tp(c, GRPC_STATUS_UNIMPLEMENTED, "unknown method");
		break;
	}
}

/* A client-stream message (or its end) arrived. */
static void on_cstream_recv(struct tp_call *c)
{
	pthread_mutex_lock(&c->mu);
	grpc_byte_buffer *bb = c->payload;
	c->payload = NULL;
	bool replied = c->replied;
	pthread_mutex_unlock(&c->mu);

	grpc_slice msg;
	if (bb != NULL && !replied) {
		bool readable = tp_bb_flatten(bb, &msg);
		grpc_byte_buffer_destroy(bb);
		bb = NULL;
		if (readable) {
			c->m->handler(c->m->arg, c, GRPC_SLICE_START_PTR(msg),
				      GRPC_SLICE_LENGTH(msg));
			grpc_slice_unref(msg);
		} else {
			reply_tp(c, GRPC_STATUS_INTERNAL, "transport: unreadable message");
		}
		pthread_mutex_lock(&c->mu);
		replied = c->replied;
		if (!replied)
			post_recv_locked(c);
		pthread_mutex_unlock(&c->mu);
		if (!replied)
			return;
	}
	if (bb != NULL)
		grpc_byte_buffer_destroy(bb); /* arrived after the answer: dropped */
	/* The end: half-close, the client went away, or the call was answered early. */
	pthread_mutex_lock(&c->mu);
	bool deliver = !c->end_delivered;
	c->end_delivered = true;
	pthread_mutex_unlock(&c->mu);
	if (deliver)
		c->m->handler(c->m->arg, c, NULL, 0);
}

static void on_reflect_recv(struct tp_call *c)
{
	pthread_mutex_lock(&c->mu);
	grpc_byte_buffer *bb = c->payload;
	c->payload = NULL;
	pthread_mutex_unlock(&c->mu);
	if (bb == NULL) {
		reply_tp(c, GRPC_STATUS_OK, NULL); /* the client half-closed */
		return;
	}
	grpc_slice req;
	void *resp = NULL;
	size_t resp_len = 0;
	bool readable = tp_bb_flatten(bb, &req);
	grpc_byte_buffer_destroy(bb);
	if (!readable) {
		reply_tp(c, GRPC_STATUS_INTERNAL, "transport: unreadable message");
		return;
	}
	int rv = tp_refl_answer(c->srv->refl, GRPC_SLICE_START_PTR(req), GRPC_SLICE_LENGTH(req),
				&resp, &resp_len);
	grpc_slice_unref(req);
	if (rv != 0) {
		reply_tp(c, GRPC_STATUS_INVALID_ARGUMENT, "bad ServerReflectionRequest");
		return;
	}
	pthread_mutex_lock(&c->mu);
	if (!c->replied)
		stream_send_locked(c, resp,
				   resp_len); /* the next request is read once it is sent */
	pthread_mutex_unlock(&c->mu);
	free(resp);
}

static void on_send(struct tp_call *c, bool ok)
{
	if (c->m->kind == K_WATCH) {
		struct tp_server *s = c->srv;
		pthread_mutex_lock(&s->health_mu);
		pthread_mutex_lock(&c->mu);
		c->sending = false;
		grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
		pthread_mutex_unlock(&c->mu);
		if (ok && c->watching)
			watch_update(c); /* a change that came while sending */
		pthread_mutex_unlock(&s->health_mu);
	} else {
		pthread_mutex_lock(&c->mu);
		c->sending = false;
		grpc_byte_buffer_destroy(c->send_bb);
		c->send_bb = NULL;
		if (!c->replied) {
			if (ok)
				post_recv_locked(c);
			else
				reply_locked(c, GRPC_STATUS_UNAVAILABLE, "send failed", NULL, 0,
					     NULL, 0, true);
		}
		pthread_mutex_unlock(&c->mu);
	}
	call_done_one(c);
}

void tp_server_event(struct tp_tag *t, bool ok)
{
	struct tp_call *c;
	switch (t->kind) {
	case TP_TAG_SRV_SHUTDOWN: {
		struct tp_server *s = TP_CONTAINER_OF(t, struct tp_server, t_shutdown);
		pthread_mutex_lock(&s->mu);
		s->shutdown_done = true;
		pthread_cond_broadcast(&s->cond);
		pthread_mutex_unlock(&s->mu);
		return;
	}
	case TP_TAG_SRV_REQUEST:
		on_request(TP_CONTAINER_OF(t, struct tp_call, t_req), ok);
		return;
	case TP_TAG_SRV_RECV:
		c = TP_CONTAINER_OF(t, struct tp_call, t_recv);
		if (c->m->kind == K_CSTREAM)
			on_cstream_recv(c);
		else
			on_reflect_recv(c);
		call_done_one(c);
		return;
	case TP_TAG_SRV_SEND:
		on_send(TP_CONTAINER_OF(t, struct tp_call, t_send), ok);
		return;
	case TP_TAG_SRV_CLOSE:
		c = TP_CONTAINER_OF(t, struct tp_call, t_close);
		/* The call is over on the wire (client cancel, deadline, or our status went out). */
		if (c->m->kind == K_WATCH) {
			watch_forget(c);
			reply_tp(c, GRPC_STATUS_CANCELLED, "watch ended");
		}
		call_done_one(c);
		return;
	case TP_TAG_SRV_FINAL:
		call_done_one(TP_CONTAINER_OF(t, struct tp_call, t_final));
		return;
	default:
		PANIC("transport: not a server tag");
	}
}

static void post_request(struct tp_server *s, struct srv_method *m)
{
	struct tp_call *c = call_new(s, m);
	if (c == NULL) {
		fprintf(stderr, "transport: out of memory: a request is not re-posted\n");
		return;
	}
	pthread_mutex_lock(&s->mu);
	s->n_ctx++;
	pthread_mutex_unlock(&s->mu);
	grpc_call_error e;
	c->deadline = gpr_inf_future(GPR_CLOCK_MONOTONIC); /* generic calls: see on_request */
	if (m->kind == K_GENERIC)
		e = grpc_server_request_call(s->server, &c->call, &c->details, &c->req_md,
					     s->loop->cq, s->loop->cq, &c->t_req);
	else
		e = grpc_server_request_registered_call(
			s->server, m->reg, &c->call, &c->deadline, &c->req_md,
			m->kind == K_UNARY || m->kind == K_WATCH ? &c->payload : NULL, s->loop->cq,
			s->loop->cq, &c->t_req);
	if (e != GRPC_CALL_OK) {
		fprintf(stderr, "transport: request_call: %s\n", grpc_call_error_to_string(e));
		c->call = NULL;
		call_free(c);
	}
}

/* ---- call accessors ---------------------------------------------------------------------- */

const char *tp_call_metadata(const struct tp_call *cc, const char *key, size_t *len)
{
	struct tp_call *c = (struct tp_call *)cc; /* the copies are a cache */
	size_t kl = strlen(key);
	const char *found = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->req_md.count; i++) {
		const grpc_metadata *m = &c->req_md.metadata[i];
		if (GRPC_SLICE_LENGTH(m->key) != kl ||
		    memcmp(GRPC_SLICE_START_PTR(m->key), key, kl) != 0)
			continue;
		size_t vl = GRPC_SLICE_LENGTH(m->value);
		char **copies = realloc(c->md_copies, (c->n_md_copies + 1) * sizeof(*copies));
		char *v = malloc(vl + 1);
		if (copies)
			c->md_copies = copies;
		if (copies == NULL || v == NULL) {
			free(v);
			break;
		}
		memcpy(v, GRPC_SLICE_START_PTR(m->value), vl);
		v[vl] = '\0';
		c->md_copies[c->n_md_copies++] = v;
		if (len)
			*len = vl;
		found = v;
		break;
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

int64_t tp_call_deadline_ms(const struct tp_call *c)
{
	if (gpr_time_cmp(c->deadline, gpr_inf_future(c->deadline.clock_type)) == 0 ||
	    c->deadline.tv_sec == INT64_MAX)
		return INT64_MAX;
	/* gpr's monotonic clock has its own epoch: go through the time left. */
	gpr_timespec left = gpr_time_sub(gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC),
					 gpr_now(GPR_CLOCK_MONOTONIC));
	return tp_now_ms() + gpr_time_to_millis(left);
}

void tp_call_set_user(struct tp_call *c, void *user)
{
	c->user = user;
}

void *tp_call_user(const struct tp_call *c)
{
	return c->user;
}

/* ---- server lifetime --------------------------------------------------------------------- */

static void wait_stopped(struct tp_server *s)
{
	int64_t until = monotime_ms() + SHUTDOWN_GRACE_MS;
	bool cancelled = false;
	pthread_mutex_lock(&s->mu);
	while (!s->shutdown_done || s->n_ctx > 0) {
		if (cancelled) {
			pthread_cond_wait(&s->cond, &s->mu);
		} else if (monotime_cond_wait_until(&s->cond, &s->mu, until) != 0) {
			/* Calls whose answer cannot be flushed (a stuck client): cut them. */
			pthread_mutex_unlock(&s->mu);
			grpc_server_cancel_all_calls(s->server);
			pthread_mutex_lock(&s->mu);
			cancelled = true;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

static void server_destroy(struct tp_server *s)
{
	if (s->server != NULL)
		grpc_server_destroy(s->server);
	tp_refl_free(s->refl);
	for (size_t i = 0; i < s->n_health; i++)
		free(s->health[i].name);
	free(s->health);
	free(s->methods);
	free(s->ports);
	pthread_mutex_destroy(&s->health_mu);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void tp_server_free(struct tp_server *s)
{
	if (s == NULL)
		return;
	INVARIANT(!tp_loop_on_thread(s->loop), "tp_server_free from the loop's own thread");
	pthread_mutex_lock(&s->mu);
	s->shutting_down = true;
	pthread_mutex_unlock(&s->mu);
	/* No new calls; pending requests complete with ok == false. */
	grpc_server_shutdown_and_notify(s->server, s->loop->cq, &s->t_shutdown);
	/* Whatever the application (or a watcher, a reflection stream) has not answered is
	 * answered now, so that clients see UNAVAILABLE rather than a reset. */
	pthread_mutex_lock(&s->mu);
	for (struct tp_call *c = s->calls; c != NULL; c = c->next)
		reply_tp(c, GRPC_STATUS_UNAVAILABLE, "shutting down");
	pthread_mutex_unlock(&s->mu);
	wait_stopped(s);
	server_destroy(s);
}

static int add_method(struct tp_server *s, const char *path, enum srv_kind kind,
		      tp_handler_fn handler, void *arg)
{
	struct srv_method *m = &s->methods[s->n_methods];
	m->path = path;
	m->kind = kind;
	m->handler = handler;
	m->arg = arg;
	if (kind != K_GENERIC) {
		bool with_payload = kind == K_UNARY || kind == K_WATCH;
		m->reg = grpc_server_register_method(
			s->server, path, NULL,
			with_payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER
				     : GRPC_SRM_PAYLOAD_NONE,
			0);
		if (m->reg == NULL)
			return -1;
	}
	s->n_methods++;
	return 0;
}

struct tp_server *tp_server_new(struct tp_loop *l, const struct tp_server_options *o, char *errmsg,
				size_t errmsg_len)
{
	struct tp_server *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(errmsg, errmsg_len, "transport: out of memory");
		return NULL;
	}
	s->loop = l;
	s->t_shutdown.kind = TP_TAG_SRV_SHUTDOWN;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->health_mu, NULL);
	monotime_cond_init(&s->cond);

	if (o->descriptor_set != NULL) {
		s->refl = tp_refl_new(o->descriptor_set, o->descriptor_set_len, errmsg, errmsg_len);
		if (s->refl == NULL)
			goto err;
	}
	s->n_health = o->n_health_services + 1;
	s->health = calloc(s->n_health, sizeof(*s->health));
	s->methods = calloc(o->n_methods + 6, sizeof(*s->methods));
	s->ports = calloc(o->n_listen + 1, sizeof(*s->ports));
	if (!s->health || !s->methods || !s->ports)
		goto err_nomem;
	for (size_t i = 0; i < s->n_health; i++) {
		s->health[i].name = strdup(i == 0 ? "" : o->health_services[i - 1]);
		if (s->health[i].name == NULL)
			goto err_nomem;
	}

	size_t max_recv = o->max_recv_bytes ? o->max_recv_bytes : 4u << 20;
	grpc_arg args[6];
	args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
			     .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
			     .value.integer = max_recv > INT_MAX ? INT_MAX : (int)max_recv};
	/* A second server on the same port must fail, not share the port. */
	args[1] = (grpc_arg){
		.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0};
	args[2] = (grpc_arg){.type = GRPC_ARG_INTEGER,
			     .key = GRPC_ARG_MAX_CONCURRENT_STREAMS,
			     .value.integer = 1024};
	/* Our channels ping every keepalive_ms (10 s by default); the server's default minimum
	 * (5 min) would answer such pings with GOAWAY "too_many_pings". */
	args[3] = (grpc_arg){.type = GRPC_ARG_INTEGER,
			     .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
			     .value.integer = 1000};
	size_t n_args = 4;
	if (o->max_connection_age_ms > 0) {
		args[n_args++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
					    .key = GRPC_ARG_MAX_CONNECTION_AGE_MS,
					    .value.integer = o->max_connection_age_ms};
		args[n_args++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
					    .key = GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
					    .value.integer = 10000};
	}
	grpc_channel_args ch_args = {.num_args = n_args, .args = args};
	s->server = grpc_server_create(&ch_args, NULL);
	if (s->server == NULL)
		goto err_nomem;
	grpc_server_register_completion_queue(s->server, l->cq, NULL);

	for (size_t i = 0; i < o->n_methods; i++)
		if (add_method(s, o->methods[i].path, (enum srv_kind)o->methods[i].kind,
			       o->methods[i].handler, o->methods[i].arg) != 0)
			goto err_method;
	if (add_method(s, "/grpc.health.v1.Health/Check", K_UNARY, health_check, s) != 0 ||
	    add_method(s, "/grpc.health.v1.Health/Watch", K_WATCH, NULL, NULL) != 0)
		goto err_method;
	if (s->refl != NULL &&
	    (add_method(s, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", K_REFLECT,
			NULL, NULL) != 0 ||
	     add_method(s, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
			K_REFLECT, NULL, NULL) != 0))
		goto err_method;
	add_method(s, NULL, K_GENERIC, NULL, NULL);

	for (size_t i = 0; i < o->n_listen; i++) {
		grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
		s->ports[i] = grpc_server_add_http2_port(s->server, o->listen[i], creds);
		grpc_server_credentials_release(creds);
		s->n_ports++;
		if (s->ports[i] == 0) {
			snprintf(errmsg, errmsg_len,
				 "transport: cannot listen on %s (address in use or invalid)",
				 o->listen[i]);
			goto err_stop;
		}
	}
	grpc_server_start(s->server);
	for (size_t i = 0; i < s->n_methods; i++) {
		int n = s->methods[i].kind == K_UNARY || s->methods[i].kind == K_CSTREAM
				? REQUESTS_PER_METHOD
				: REQUESTS_INTERNAL;
		if (i >= o->n_methods)
			n = REQUESTS_INTERNAL;
		for (int j = 0; j < n; j++)
			post_request(s, &s->methods[i]);
	}
	return s;

err_method:
	snprintf(errmsg, errmsg_len, "transport: cannot register method %s (duplicate?)",
		 s->methods[s->n_methods].path);
err_stop:
	/* Bound listeners are released only by a shutdown; nothing else is running. */
	s->shutting_down = true;
	grpc_server_shutdown_and_notify(s->server, l->cq, &s->t_shutdown);
	wait_stopped(s);
	server_destroy(s);
	return NULL;
err_nomem:
	snprintf(errmsg, errmsg_len, "transport: out of memory");
err:
	if (s->server != NULL) {
		s->shutting_down = true;
		grpc_server_shutdown_and_notify(s->server, l->cq, &s->t_shutdown);
		wait_stopped(s);
	}
	server_destroy(s);
	return NULL;
}

int tp_server_port(const struct tp_server *s, size_t i)
{
	return i < s->n_ports ? s->ports[i] : 0;
}
