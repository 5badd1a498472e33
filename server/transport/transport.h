/* gRPC C core plumbing: a completion-queue loop thread, a server with registered unary and
 * client-streaming methods, health and reflection, and outbound calls and streams. */
#ifndef RAFTKV_TRANSPORT_H
#define RAFTKV_TRANSPORT_H

/*
 * Threads
 * -------
 * A tp_loop owns one completion queue and one thread polling it. Every callback below
 * (handlers, done, pull) runs on that thread unless said otherwise, and must not block: a
 * slow callback stalls every call on the loop. The functions marked "thread-safe" may be
 * called from any thread (the raft loop replies to calls and kicks streams this way).
 *
 * Messages are serialized protobuf bytes: this module never looks inside them, except for
 * its own health and reflection services.
 *
 * Status codes are grpc_status_code values (<grpc/status.h>): 0 = OK.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One metadata pair. Keys are lowercase [a-z0-9-_.]; binary values need a "-bin" suffix. */
struct tp_md {
	const char *key;
	const char *value;
	size_t value_len; /* 0: strlen(value) */
};

/* ---- the loop ----------------------------------------------------------------------- */

struct tp_loop;

/* Call once per process before anything else here (grpc_init); tp_global_shutdown at exit. */
void tp_global_init(void);
void tp_global_shutdown(void);

/* A completion queue and its polling thread, started. NULL on failure. */
struct tp_loop *tp_loop_new(void);
/* Stop the thread and free the queue. Servers and channels on it must be destroyed first. */
void tp_loop_free(struct tp_loop *l);

/* ---- the server --------------------------------------------------------------------- */

struct tp_server;
struct tp_call; /* one incoming call; owned by the transport */

/*
 * Unary handler: `req` (len bytes) is the request, valid only during the callback. The
 * handler (or anyone it hands the call to, on any thread) must answer exactly once with
 * tp_call_reply().
 *
 * Client-streaming handler: called once per received message, in order, and then once with
 * req == NULL at the end of the client's stream (half-close, or the client went away). The
 * next message is read only after the callback returns. The call must be answered exactly
 * once with tp_call_reply(): at the end, or earlier to abort (no more messages are then
 * delivered, except the final NULL one, which must not be answered again).
 */
typedef void (*tp_handler_fn)(void *arg, struct tp_call *call, const void *req, size_t len);

enum tp_method_kind { TP_UNARY = 1, TP_CLIENT_STREAM = 2 };

struct tp_method {
	const char *path; /* "/raftkv.v1.KV/Put"; must stay valid while the server lives */
	enum tp_method_kind kind;
	tp_handler_fn handler;
	void *arg;
};

struct tp_server_options {
	const char *const *listen; /* "host:port" each; ":0" or "127.0.0.1:0" picks a port */
	size_t n_listen;
	const struct tp_method *methods;
	size_t n_methods;
	/* Largest request message accepted (RESOURCE_EXHAUSTED beyond). Default 4 MiB. */
	size_t max_recv_bytes;
	/* Health: the service names reported (besides ""), e.g. "raftkv.v1.KV". All start
	 * NOT_SERVING; see tp_server_set_serving. */
	const char *const *health_services;
	size_t n_health_services;
	/* Reflection: a serialized google.protobuf.FileDescriptorSet (protoc --include_imports)
	 * describing every service served. NULL: no reflection. Must outlive the server. */
	const void *descriptor_set;
	size_t descriptor_set_len;
	/* Close each client connection (GOAWAY, after a 10 s grace for its calls) once it is
	 * this old, so clients re-resolve and spread over replicas. 0: never. */
	int max_connection_age_ms;
};

/* Start serving on `l`. Calls to unknown paths get UNIMPLEMENTED. `grpc.health.v1.Health`
 * (Check, Watch) and `grpc.reflection.v1.ServerReflection` / `v1alpha` are served too.
 * SO_REUSEPORT is off, so a port clash fails. On failure returns NULL with a message. */
struct tp_server *tp_server_new(struct tp_loop *l, const struct tp_server_options *o, char *errmsg,
				size_t errmsg_len);
/* The port actually bound for listen[i] (useful with port 0). */
int tp_server_port(const struct tp_server *s, size_t i);
/* Set the health of `service` ("" = the whole server: setting it sets every service).
 * Watchers are told at once. Thread-safe. */
void tp_server_set_serving(struct tp_server *s, const char *service, bool serving);
/*
 * Stop: refuse new calls, cancel the ones in flight, wait for the loop to finish with them
 * and free the server. A call the application has not answered yet is answered UNAVAILABLE
 * ("shutting down") here; after tp_server_free begins, the application must not touch any
 * tp_call of this server again, so stop handing out replies first.
 */
void tp_server_free(struct tp_server *s);

/* Answer a call (thread-safe, exactly once). `msg` is sent only when status == 0. Everything
 * is copied: the arguments stay the caller's. `details` may be NULL. */
void tp_call_reply(struct tp_call *c, int status, const char *details, const void *msg, size_t len,
		   const struct tp_md *trailers, size_t n_trailers);
/* A request metadata value (NULL if absent), valid until the call is answered. Loop thread
 * or before replying only. */
const char *tp_call_metadata(const struct tp_call *c, const char *key, size_t *len);
/* The call's deadline as CLOCK_MONOTONIC milliseconds (INT64_MAX: none). */
int64_t tp_call_deadline_ms(const struct tp_call *c);
/* Per-call application pointer (for streaming handlers); NULL initially. */
void tp_call_set_user(struct tp_call *c, void *user);
void *tp_call_user(const struct tp_call *c);

/* ---- outbound calls ----------------------------------------------------------------- */

struct tp_channel;

struct tp_channel_options {
	size_t max_recv_bytes;        /* default 4 MiB */
	int reconnect_backoff_min_ms; /* default 100 */
	int reconnect_backoff_max_ms; /* default 1000 */
	int keepalive_ms;             /* default 10000; 0 = off */
};

/* A channel to "host:port" (connects lazily). o may be NULL (defaults). Thread-safe. */
struct tp_channel *tp_channel_new(struct tp_loop *l, const char *target,
				  const struct tp_channel_options *o);
/* Cancel everything still running on the channel (their callbacks run, with CANCELLED) and
 * free it. Not from a callback of the same loop. */
void tp_channel_free(struct tp_channel *ch);

/* The outcome of an outbound call; everything is valid during the callback only. */
struct tp_result {
	int status;
	const char *details; /* NUL-terminated, never NULL */
	const void *msg;     /* the response (status 0 only); may be NULL with len 0 */
	size_t len;
	const struct tp_md *trailers;
	size_t n_trailers;
};
typedef void (*tp_done_fn)(void *arg, const struct tp_result *r);

/* Start a unary call (thread-safe). `done` runs exactly once on the loop thread. A call that
 * cannot even start reports its status through `done` too. timeout_ms > 0 is required.
 * wait_for_ready: queue while the channel connects instead of failing fast. */
void tp_unary(struct tp_channel *ch, const char *method, const void *req, size_t len,
	      const struct tp_md *md, size_t n_md, int timeout_ms, bool wait_for_ready,
	      tp_done_fn done, void *arg);

/*
 * An outbound client-streaming call that the application feeds by pull: whenever the stream
 * can send (no send outstanding) and it has been kicked, the transport calls pull() on the
 * loop thread or inside tp_ostream_kick() on the caller's thread, with the stream's lock
 * held. pull either returns TP_PULL_MSG with a malloc'd message in *msg / *len (the
 * transport frees it), TP_PULL_NONE (nothing now: wait for the next kick) or TP_PULL_END
 * (half-close; the server's status then arrives through done()).
 *
 * The stream reconnects by itself: a kick with no call active starts a new call (with the
 * same method and metadata). When a call ends (error, server status, cancel) done() runs on
 * the loop thread; messages pulled into the failed call are lost (the application resends).
 */
enum tp_pull { TP_PULL_MSG = 0, TP_PULL_NONE = 1, TP_PULL_END = 2 };
typedef enum tp_pull (*tp_pull_fn)(void *arg, void **msg, size_t *len);

struct tp_ostream;

/* timeout_ms: deadline of each call (0 = none; keepalive detects dead peers). Calls are
 * fail-fast (no WAIT_FOR_READY). When a call ends, pending kicks are dropped: only a later kick
 * starts the next call. pull must not kick (the stream's lock is held). The channel must
 * outlive the stream. NULL on illegal metadata or out of memory. */
struct tp_ostream *tp_ostream_new(struct tp_channel *ch, const char *method, const struct tp_md *md,
				  size_t n_md, int timeout_ms, tp_pull_fn pull, tp_done_fn done,
				  void *arg);
/* There may be something to send (thread-safe; cheap when a send is outstanding). */
void tp_ostream_kick(struct tp_ostream *s);
/* Cancel the active call, wait until its done() ran, free. Not from a callback of the same
 * loop. */
void tp_ostream_free(struct tp_ostream *s);

/* Monotonic clock in milliseconds (the clock deadlines use). */
int64_t tp_now_ms(void);

#endif
