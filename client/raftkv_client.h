/* raftkv's synchronous C client: one call = one request routed to the leader, retried until
 * the client's deadline, with write ids so that a retried write is applied at most once. */
#ifndef RAFTKV_CLIENT_H
#define RAFTKV_CLIENT_H

/*
 * Threads: every function here is thread-safe; calls on one client may run concurrently
 * from any number of threads (each blocks its own thread only). A client owns one gRPC
 * completion-queue thread (server/transport's tp_loop).
 *
 * Messages: requests and responses are the protobuf-c messages of raftkv/v1/kv.proto and
 * cluster.proto. A request stays the caller's (it is only read, never kept). A response is
 * returned in *resp only on success, unpacked with the default allocator; the caller frees it
 * with rk_free() (or protobuf_c_message_free_unpacked(msg, NULL)). On failure *resp is NULL.
 *
 * Errors: every call returns 0 or a gRPC status code (enum rk_code, equal to
 * grpc_status_code), and fills *err (when err != NULL) with the same code and a message
 * naming the endpoint that gave it ("127.0.0.1:7101: not the leader"). Failures of the client
 * itself use the same codes: INVALID_ARGUMENT (bad endpoint list), RESOURCE_EXHAUSTED (out
 * of memory), INTERNAL (an undecodable response).
 *
 * Routing (see docs/kvctl.md): a call goes to the endpoint that answered last (initially the
 * first of the list). On UNAVAILABLE with the `raftkv-leader: <id>@<address>` hint it goes to
 * that address at once (at most RK_MAX_HOPS hint hops in a row; an unspecified host such as
 * 0.0.0.0 is replaced by the host just tried). On UNAVAILABLE without a usable hint (no
 * leader known, connection refused, node stopping) it tries the next endpoint of the list
 * after a jittered backoff (RK_BACKOFF_MIN_MS doubling to RK_BACKOFF_MAX_MS), until the
 * deadline: the client's timeout, counted from the start of the call and shared by every
 * attempt. Every other status ends the call at once. Serializable reads, Status and
 * MemberList are answered by any member, so they stay on the first endpoint that answers.
 *
 * Exactly-once writes: Put, Delete, Append and Txn carry a WriteId {client_id, sequence}
 * that stays the same on every retry of one call. The client keeps a small pool of sessions,
 * each a random 64-bit client_id with its own increasing sequence; a write borrows a free
 * session for its whole duration. One session alone would be enough for one thread, but
 * raftnode refuses a sequence older than the last it saw from a client_id
 * (FAILED_PRECONDITION), so two concurrent writes must not share a client_id: the pool grows
 * to the number of writes in flight at once. A request whose write_id is already set is sent
 * with the caller's write id instead (client_id 0 disables deduplication).
 */

#include <stddef.h>
#include <stdint.h>

#include "raftkv/v1/cluster.pb-c.h"
#include "raftkv/v1/kv.pb-c.h"

/* gRPC status codes (the values of grpc_status_code, without including gRPC). */
enum rk_code {
	RK_OK = 0,
	RK_CANCELLED = 1,
	RK_UNKNOWN = 2,
	RK_INVALID_ARGUMENT = 3,
	RK_DEADLINE_EXCEEDED = 4,
	RK_NOT_FOUND = 5,
	RK_ALREADY_EXISTS = 6,
	RK_PERMISSION_DENIED = 7,
	RK_RESOURCE_EXHAUSTED = 8,
	RK_FAILED_PRECONDITION = 9,
	RK_ABORTED = 10,
	RK_OUT_OF_RANGE = 11,
	RK_UNIMPLEMENTED = 12,
	RK_INTERNAL = 13,
	RK_UNAVAILABLE = 14,
	RK_DATA_LOSS = 15,
	RK_UNAUTHENTICATED = 16,
};

#define RK_MAX_HOPS       3   /* leader hints followed in a row before falling back to the list */
#define RK_BACKOFF_MIN_MS 20  /* first pause before trying the next endpoint (jitter: x0.5-1.5) */
#define RK_BACKOFF_MAX_MS 320 /* the pause doubles up to this */
#define RK_MAX_ENDPOINTS  64  /* endpoints in the list given to rk_client_new */

struct rk_error {
	int code; /* enum rk_code; 0 = OK */
	char message[256];
};

/* "UNAVAILABLE", "NOT_FOUND", ... ("CODE_<n>" for an unknown code: a static buffer, not
 * thread-safe in that case only). */
const char *rk_code_name(int code);

struct rk_client;

/*
 * A client for `endpoints` ("host:port,host:port", at most RK_MAX_ENDPOINTS; spaces around
 * commas are ignored) whose every call has a deadline of `timeout_ms` (> 0). Nothing is
 * connected yet (connections are made by the first calls). Calls tp_global_init() (grpc_init
 * is reference-counted, so several clients and a server may coexist). NULL on failure, with
 * the reason in *err (INVALID_ARGUMENT: bad list or timeout; RESOURCE_EXHAUSTED).
 */
struct rk_client *rk_client_new(const char *endpoints, int timeout_ms, struct rk_error *err);
/* Free the client: no call may be running on it. Calls tp_global_shutdown(). */
void rk_client_free(struct rk_client *c);

/* The endpoint list as parsed (i < rk_client_endpoint_count); valid while the client lives. */
size_t rk_client_endpoint_count(const struct rk_client *c);
const char *rk_client_endpoint(const struct rk_client *c, size_t i);

/* ---- KV (raftkv.v1.KV) ------------------------------------------------------------------ */

/* Writes: a WriteId is added unless req->write_id is set (see above). */
int rk_put(struct rk_client *c, const Raftkv__V1__PutRequest *req, Raftkv__V1__PutResponse **resp,
	   struct rk_error *err);
int rk_delete(struct rk_client *c, const Raftkv__V1__DeleteRequest *req,
	      Raftkv__V1__DeleteResponse **resp, struct rk_error *err);
int rk_append(struct rk_client *c, const Raftkv__V1__AppendRequest *req,
	      Raftkv__V1__AppendResponse **resp, struct rk_error *err);
/* A Txn whose compares fail is a success (0) with (*resp)->succeeded == false. */
int rk_txn(struct rk_client *c, const Raftkv__V1__TxnRequest *req, Raftkv__V1__TxnResponse **resp,
	   struct rk_error *err);

/* Reads: req->consistency picks linearizable (the default, 0) or serializable. A missing key
 * is a success with (*resp)->kv == NULL. */
int rk_get(struct rk_client *c, const Raftkv__V1__GetRequest *req, Raftkv__V1__GetResponse **resp,
	   struct rk_error *err);
int rk_range(struct rk_client *c, const Raftkv__V1__RangeRequest *req,
	     Raftkv__V1__RangeResponse **resp, struct rk_error *err);

/* ---- Cluster (raftkv.v1.Cluster) -------------------------------------------------------- */

/* Status of `endpoint` ("host:port", need not be in the list; one attempt, no routing), or,
 * when endpoint is NULL, of whichever member answers first (routing as above). */
int rk_status(struct rk_client *c, const char *endpoint, Raftkv__V1__StatusResponse **resp,
	      struct rk_error *err);
int rk_member_list(struct rk_client *c, Raftkv__V1__MemberListResponse **resp,
		   struct rk_error *err);

/* Free a response returned by any call above (NULL is fine). */
void rk_free(void *resp);

/* ---- helpers ---------------------------------------------------------------------------- */

/*
 * The range end that covers every key starting with `prefix` (etcd's rule): the prefix with
 * trailing 0xff bytes dropped and its last byte incremented; "\0" (every key >= prefix) when
 * the prefix is empty or all 0xff. Writes at most max(len, 1) bytes to out (which has room for
 * len + 1) and returns the length.
 */
size_t rk_prefix_end(const uint8_t *prefix, size_t len, uint8_t *out);

#endif
