/* Outbound calls: channels, unary calls (one 6-op batch each) and client-streaming calls fed
 * by pull (struct tp_ostream), all completing on the loop thread.
 *
 * Lock order: os->mu -> ch->mu. ch->mu guards the channel's list of running calls, which
 * tp_channel_free cancels; a call leaves the list (on the loop thread) before its unref.
 */
#include <grpc/status.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "server/transport/tp_internal.h"

/* A running outbound call, as listed on its channel. */
struct out_call {
	grpc_call *call;
	struct out_call *prev, *next;
};

struct tp_channel {
	struct tp_loop *loop;
	grpc_channel *ch;
	pthread_mutex_t mu;
	pthread_cond_t cond;    /* n_calls reached 0 while closing */
	bool closing;           /* tp_channel_free began: new unary calls fail at once */
	struct out_call *calls; /* running calls (unary and stream) */
	size_t n_calls;
	size_t n_streams; /* tp_ostreams on this channel (must be freed first) */
};

struct unary {
	struct tp_tag tag;
	struct out_call oc;
	struct tp_channel *ch; /* NULL: the call runs on `lame` (it could not start) */
	grpc_channel *lame;
	tp_done_fn done;
	void *arg;
	struct tp_mdv md;
	grpc_byte_buffer *send_bb, *recv_bb;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
};

/* One call of an ostream; a failed one may linger (pending batches) while the next runs. */
struct os_call {
	struct tp_tag t_send, t_status;
	struct out_call oc;
	struct tp_ostream *s;
	int pending;      /* batches not completed (under s->mu) */
	bool md_sent;     /* initial metadata went with the first send */
	bool sending;     /* a send batch is pending */
	bool half_closed; /* TP_PULL_END was sent */
	bool failed;      /* a send failed: no more sends on this call */
	grpc_byte_buffer *send_bb, *recv_bb;
	grpc_metadata_array init_md, trail_md;
	grpc_status_code status;
	grpc_slice details;
};

struct tp_ostream {
	struct tp_channel *ch;
	grpc_slice method;
	struct tp_mdv md;
	int timeout_ms;
	tp_pull_fn pull;
	tp_done_fn done;
	void *arg;
	pthread_mutex_t mu;
	pthread_cond_t cond;    /* n_calls reached 0 while closing */
	struct os_call *active; /* the call new messages go to; NULL: none */
	size_t n_calls;         /* os_calls not freed yet */
	bool kicked;            /* pull may have something: cleared by TP_PULL_NONE/END and
				  * when a call ends */
	bool closing;           /* tp_ostream_free began */
};

/* ---- channels ---------------------------------------------------------------------------- */

struct tp_channel *tp_channel_new(struct tp_loop *l, const char *target,
				  const struct tp_channel_options *o)
{
	struct tp_channel_options d = {.max_recv_bytes = 4u << 20,
				       .reconnect_backoff_min_ms = 100,
				       .reconnect_backoff_max_ms = 1000,
				       .keepalive_ms = 10000};
	if (o != NULL) {
		if (o->max_recv_bytes)
			d.max_recv_bytes = o->max_recv_bytes;
		if (o->reconnect_backoff_min_ms > 0)
			d.reconnect_backoff_min_ms = o->reconnect_backoff_min_ms;
		if (o->reconnect_backoff_max_ms > 0)
			d.reconnect_backoff_max_ms = o->reconnect_backoff_max_ms;
		d.keepalive_ms = o->keepalive_ms;
	}
	struct tp_channel *ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		return NULL;
	ch->loop = l;
	pthread_mutex_init(&ch->mu, NULL);
	pthread_cond_init(&ch->cond, NULL);

	grpc_arg args[9];
	size_t n = 0;
#define INT_ARG(k, v) \
	args[n++] = (grpc_arg){.type = GRPC_ARG_INTEGER, .key = (char *)(k), .value.integer = (v)}
	INT_ARG(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
		d.max_recv_bytes > INT_MAX ? INT_MAX : (int)d.max_recv_bytes);
	/* The defaults (1 s initial, x1.6, 120 s max) kept calls to a restarted peer failing
	 * for seconds. */
	INT_ARG(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, d.reconnect_backoff_min_ms);
	INT_ARG(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, d.reconnect_backoff_min_ms);
	INT_ARG(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, d.reconnect_backoff_max_ms);
	if (d.keepalive_ms > 0) {
		INT_ARG(GRPC_ARG_KEEPALIVE_TIME_MS, d.keepalive_ms);
		INT_ARG(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
			d.keepalive_ms < 5000 ? d.keepalive_ms : 5000);
		INT_ARG(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
		/* Otherwise the client stops pinging after 2 pings without data. */
		INT_ARG(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
	}
#undef INT_ARG
	grpc_channel_args ca = {.num_args = n, .args = args};
	grpc_channel_credentials *creds = grpc_insecure_credentials_create();
	ch->ch = grpc_channel_create(target, creds, &ca);
	grpc_channel_credentials_release(creds);
	if (ch->ch == NULL) {
		pthread_cond_destroy(&ch->cond);
		pthread_mutex_destroy(&ch->mu);
		free(ch);
		return NULL;
	}
	return ch;
}

void tp_channel_free(struct tp_channel *ch)
{
	if (ch == NULL)
		return;
	INVARIANT(!tp_loop_on_thread(ch->loop), "tp_channel_free from the loop's own thread");
	pthread_mutex_lock(&ch->mu);
	INVARIANT(ch->n_streams == 0, "tp_channel_free: free its tp_ostreams first");
	ch->closing = true;
	for (struct out_call *oc = ch->calls; oc != NULL; oc = oc->next)
		grpc_call_cancel(oc->call, NULL);
	while (ch->n_calls > 0)
		pthread_cond_wait(&ch->cond, &ch->mu);
	pthread_mutex_unlock(&ch->mu);
	grpc_channel_destroy(ch->ch);
	pthread_cond_destroy(&ch->cond);
	pthread_mutex_destroy(&ch->mu);
	free(ch);
}

/* ch->mu held. */
static void list_add(struct tp_channel *ch, struct out_call *oc)
{
	oc->prev = NULL;
	oc->next = ch->calls;
	if (ch->calls)
		ch->calls->prev = oc;
	ch->calls = oc;
	ch->n_calls++;
}

static void list_remove(struct tp_channel *ch, struct out_call *oc)
{
	pthread_mutex_lock(&ch->mu);
	if (oc->prev)
		oc->prev->next = oc->next;
	else
		ch->calls = oc->next;
	if (oc->next)
		oc->next->prev = oc->prev;
	if (--ch->n_calls == 0 && ch->closing)
		pthread_cond_broadcast(&ch->cond);
	pthread_mutex_unlock(&ch->mu);
}

static grpc_call *create_call(grpc_channel *ch, struct tp_loop *l, grpc_slice method,
			      int timeout_ms)
{
	return grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, l->cq, method, NULL,
					tp_deadline_in(timeout_ms), NULL);
}

/* The outcome of a finished call, handed to done(). */
static void report(tp_done_fn done, void *arg, grpc_status_code status, grpc_slice details,
		   grpc_byte_buffer *bb, const grpc_metadata_array *trail)
{
	char *det = grpc_slice_to_c_string(details);
	grpc_slice msg = grpc_empty_slice();
	struct tp_result r = {.status = status, .details = det ? det : ""};
	if (status == GRPC_STATUS_OK && bb != NULL && !tp_bb_flatten(bb, &msg)) {
		r.status = GRPC_STATUS_INTERNAL;
		r.details = "transport: unreadable response";
	}
	if (r.status == GRPC_STATUS_OK && GRPC_SLICE_LENGTH(msg) > 0) {
		r.msg = GRPC_SLICE_START_PTR(msg);
		r.len = GRPC_SLICE_LENGTH(msg);
	}
	struct tp_md *md = tp_md_copy(trail, &r.n_trailers);
	r.trailers = md;
	done(arg, &r);
	free(md);
	grpc_slice_unref(msg);
	gpr_free(det);
}

/* ---- unary calls ------------------------------------------------------------------------- */

static void unary_free(struct unary *u)
{
	if (u->ch != NULL)
		list_remove(u->ch, &u->oc);
	grpc_call_unref(u->oc.call);
	if (u->lame != NULL)
		grpc_channel_destroy(u->lame);
	tp_mdv_free(&u->md);
	if (u->send_bb)
		grpc_byte_buffer_destroy(u->send_bb);
	if (u->recv_bb)
		grpc_byte_buffer_destroy(u->recv_bb);
	grpc_metadata_array_destroy(&u->init_md);
	grpc_metadata_array_destroy(&u->trail_md);
	grpc_slice_unref(u->details);
	free(u);
}

static void unary_start(struct unary *u, bool wait_for_ready)
{
	grpc_op ops[6];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[n].data.send_initial_metadata.metadata = u->md.md;
	ops[n].data.send_initial_metadata.count = u->md.n;
	ops[n].flags = wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
	n++;
	if (u->send_bb != NULL) {
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = u->send_bb;
		n++;
	}
	ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[n].data.recv_initial_metadata.recv_initial_metadata = &u->init_md;
	n++;
	ops[n].op = GRPC_OP_RECV_MESSAGE;
	ops[n].data.recv_message.recv_message = &u->recv_bb;
	n++;
	ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[n].data.recv_status_on_client.trailing_metadata = &u->trail_md;
	ops[n].data.recv_status_on_client.status = &u->status;
	ops[n].data.recv_status_on_client.status_details = &u->details;
	n++;
	grpc_call_error e = grpc_call_start_batch(u->oc.call, ops, n, &u->tag, NULL);
	if (e != GRPC_CALL_OK) {
		fprintf(stderr, "transport: start_batch: %s\n", grpc_call_error_to_string(e));
		PANIC("transport: grpc_call_start_batch refused a unary batch");
	}
}

void tp_unary(struct tp_channel *ch, const char *method, const void *req, size_t len,
	      const struct tp_md *md, size_t n_md, int timeout_ms, bool wait_for_ready,
	      tp_done_fn done, void *arg)
{
	struct unary *u = calloc(1, sizeof(*u));
	INVARIANT(u != NULL, "transport: out of memory");
	u->tag.kind = TP_TAG_UNARY;
	u->done = done;
	u->arg = arg;
	grpc_metadata_array_init(&u->init_md);
	grpc_metadata_array_init(&u->trail_md);
	u->details = grpc_empty_slice();
	grpc_slice m = grpc_slice_from_copied_string(method);

	grpc_status_code fail = GRPC_STATUS_OK;
	const char *why = NULL;
	if (!tp_mdv_init(&u->md, md, n_md)) {
		fail = GRPC_STATUS_INTERNAL;
		why = "transport: illegal request metadata";
	} else if (timeout_ms <= 0) {
		fail = GRPC_STATUS_INVALID_ARGUMENT;
		why = "transport: tp_unary needs a timeout";
	} else {
		pthread_mutex_lock(&ch->mu);
		if (ch->closing) {
			fail = GRPC_STATUS_CANCELLED;
			why = "transport: channel closing";
		} else {
			u->ch = ch;
			u->oc.call = create_call(ch->ch, ch->loop, m, timeout_ms);
			list_add(ch, &u->oc);
		}
		pthread_mutex_unlock(&ch->mu);
	}
	if (fail != GRPC_STATUS_OK) {
		/* done() must run on the loop thread even now: a lame channel fails the call
		 * there with our status. */
		tp_mdv_free(&u->md);
		u->lame = grpc_lame_client_channel_create(NULL, fail, why);
		u->oc.call = create_call(u->lame, ch->loop, m, 1000);
	} else {
		u->send_bb = tp_bb_from(req, len);
	}
	grpc_slice_unref(m);
	unary_start(u, wait_for_ready && fail == GRPC_STATUS_OK);
}

/* ---- streams ----------------------------------------------------------------------------- */

static void os_call_free(struct os_call *c)
{
	list_remove(c->s->ch, &c->oc);
	grpc_call_unref(c->oc.call);
	if (c->send_bb)
		grpc_byte_buffer_destroy(c->send_bb);
	if (c->recv_bb)
		grpc_byte_buffer_destroy(c->recv_bb);
	grpc_metadata_array_destroy(&c->init_md);
	grpc_metadata_array_destroy(&c->trail_md);
	grpc_slice_unref(c->details);
	free(c);
}

static void os_batch(struct os_call *c, const grpc_op *ops, size_t n, struct tp_tag *tag)
{
	grpc_call_error e = grpc_call_start_batch(c->oc.call, ops, n, tag, NULL);
	if (e != GRPC_CALL_OK) {
		fprintf(stderr, "transport: start_batch: %s\n", grpc_call_error_to_string(e));
		PANIC("transport: grpc_call_start_batch refused a stream batch");
	}
	c->pending++;
}

/* s->mu held. A new call, its status batch posted; NULL if the channel is closing. */
static struct os_call *os_call_start(struct tp_ostream *s)
{
	struct os_call *c = calloc(1, sizeof(*c));
	INVARIANT(c != NULL, "transport: out of memory");
	c->t_send.kind = TP_TAG_OS_SEND;
	c->t_status.kind = TP_TAG_OS_STATUS;
	c->s = s;
	grpc_metadata_array_init(&c->init_md);
	grpc_metadata_array_init(&c->trail_md);
	c->details = grpc_empty_slice();

	pthread_mutex_lock(&s->ch->mu);
	INVARIANT(!s->ch->closing, "tp_channel_free with a live tp_ostream");
	c->oc.call = create_call(s->ch->ch, s->ch->loop, s->method, s->timeout_ms);
	list_add(s->ch, &c->oc);
	pthread_mutex_unlock(&s->ch->mu);

	grpc_op ops[3];
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[0].data.recv_initial_metadata.recv_initial_metadata = &c->init_md;
	ops[1].op = GRPC_OP_RECV_MESSAGE;
	ops[1].data.recv_message.recv_message = &c->recv_bb;
	ops[2].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[2].data.recv_status_on_client.trailing_metadata = &c->trail_md;
	ops[2].data.recv_status_on_client.status = &c->status;
	ops[2].data.recv_status_on_client.status_details = &c->details;
	os_batch(c, ops, 3, &c->t_status);
	s->active = c;
	s->n_calls++;
	return c;
}

/* s->mu held: pull and send while kicked and the active call (if any) can take a message. */
static void try_send(struct tp_ostream *s)
{
	if (!s->kicked || s->closing)
		return;
	struct os_call *c = s->active;
	if (c != NULL && (c->sending || c->half_closed || c->failed))
		return; /* the send completion (or the call's end) comes back here */
	void *msg = NULL;
	size_t len = 0;
	enum tp_pull r = s->pull(s->arg, &msg, &len);
	if (r == TP_PULL_NONE) {
		s->kicked = false;
		return;
	}
	if (c == NULL)
		c = os_call_start(s);
	grpc_op ops[2];
	memset(ops, 0, sizeof(ops));
	size_t n = 0;
	if (!c->md_sent) {
		/* Fail-fast (no WAIT_FOR_READY): with the peer down, the call fails at once and
		 * raft resends later; queued messages would only go stale. */
		ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
		ops[n].data.send_initial_metadata.metadata = s->md.md;
		ops[n].data.send_initial_metadata.count = s->md.n;
		n++;
		c->md_sent = true;
	}
	if (r == TP_PULL_MSG) {
		c->send_bb = tp_bb_from(msg, len);
		free(msg);
		ops[n].op = GRPC_OP_SEND_MESSAGE;
		ops[n].data.send_message.send_message = c->send_bb;
		n++;
	} else {
		free(msg);
		ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
		c->half_closed = true;
		s->kicked = false;
	}
	c->sending = true;
	os_batch(c, ops, n, &c->t_send);
}

/* Loop thread: one batch of c completed. s->mu held; returns true when c was freed. */
static bool os_call_done_one(struct os_call *c)
{
	struct tp_ostream *s = c->s;
	if (--c->pending > 0)
		return false;
	os_call_free(c);
	s->n_calls--;
	if (s->closing)
		pthread_cond_broadcast(&s->cond);
	return true;
}

static void on_os_send(struct os_call *c, bool ok)
{
	struct tp_ostream *s = c->s;
	pthread_mutex_lock(&s->mu);
	c->sending = false;
	grpc_byte_buffer_destroy(c->send_bb);
	c->send_bb = NULL;
	if (!ok)
		c->failed = true; /* the status batch reports why */
	if (!os_call_done_one(c) && c == s->active)
		try_send(s);
	pthread_mutex_unlock(&s->mu);
}

static void on_os_status(struct os_call *c)
{
	struct tp_ostream *s = c->s;
	pthread_mutex_lock(&s->mu);
	if (s->active == c)
		s->active = NULL;
	/* Kicks that came while this call was failing are dropped: the next kick starts a
	 * new call, so that a dead peer costs one failed call per kick, not a busy loop. */
	s->kicked = false;
	c->failed = true;
	pthread_mutex_unlock(&s->mu);

	report(s->done, s->arg, c->status, c->details, c->recv_bb, &c->trail_md);

	pthread_mutex_lock(&s->mu);
	os_call_done_one(c);
	pthread_mutex_unlock(&s->mu);
}

struct tp_ostream *tp_ostream_new(struct tp_channel *ch, const char *method, const struct tp_md *md,
				  size_t n_md, int timeout_ms, tp_pull_fn pull, tp_done_fn done,
				  void *arg)
{
	struct tp_ostream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return NULL;
	if (!tp_mdv_init(&s->md, md, n_md)) {
		free(s);
		return NULL;
	}
	s->ch = ch;
	s->method = grpc_slice_from_copied_string(method);
	s->timeout_ms = timeout_ms;
	s->pull = pull;
	s->done = done;
	s->arg = arg;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_mutex_lock(&ch->mu);
	ch->n_streams++;
	pthread_mutex_unlock(&ch->mu);
	return s;
}

void tp_ostream_kick(struct tp_ostream *s)
{
	pthread_mutex_lock(&s->mu);
	s->kicked = true;
	try_send(s);
	pthread_mutex_unlock(&s->mu);
}

void tp_ostream_free(struct tp_ostream *s)
{
	if (s == NULL)
		return;
	INVARIANT(!tp_loop_on_thread(s->ch->loop), "tp_ostream_free from the loop's own thread");
	pthread_mutex_lock(&s->mu);
	s->closing = true;
	if (s->active != NULL)
		grpc_call_cancel(s->active->oc.call, NULL);
	while (s->n_calls > 0)
		pthread_cond_wait(&s->cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
	pthread_mutex_lock(&s->ch->mu);
	s->ch->n_streams--;
	pthread_mutex_unlock(&s->ch->mu);
	tp_mdv_free(&s->md);
	grpc_slice_unref(s->method);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ---- the loop's dispatch ----------------------------------------------------------------- */

void tp_client_event(struct tp_tag *t, bool ok)
{
	switch (t->kind) {
	case TP_TAG_UNARY: {
		struct unary *u = TP_CONTAINER_OF(t, struct unary, tag);
		(void)ok; /* the status says it all */
		report(u->done, u->arg, u->status, u->details, u->recv_bb, &u->trail_md);
		unary_free(u);
		return;
	}
	case TP_TAG_OS_SEND:
		on_os_send(TP_CONTAINER_OF(t, struct os_call, t_send), ok);
		return;
	case TP_TAG_OS_STATUS:
		on_os_status(TP_CONTAINER_OF(t, struct os_call, t_status));
		return;
	default:
		PANIC("transport: not a client tag");
	}
}
