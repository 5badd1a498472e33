/* The public KV API's codec: raftkv.v1.KV requests -> kv commands and reads, results -> replies. */
#ifndef RAFTKV_SERVER_NODE_API_H
#define RAFTKV_SERVER_NODE_API_H

#include <grpc/status.h> /* the status enum only: this module does not link gRPC */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/kv/kv.h"

/*
 * A request goes through two calls on two threads:
 *   1. api_decode() on the gRPC thread: unpack, validate against the store's kv_options and
 *      turn it into either an encoded kv_cmd to propose (writes) or a GET op (reads). Every
 *      refusal here happens before anything reaches the log.
 *   2. on the raft thread, once the command is applied (writes) or the read is safe (reads):
 *      api_write_reply() / api_read_reply() build the serialized response.
 * Both return a grpc_status_code (GRPC_STATUS_OK = 0) and, when not OK, a message for the
 * client in err. The mapping of each RPC to kv commands is in docs/api.md:
 *   Put              PUT, or with prev_kv TXN{success: [GET key, PUT key]}
 *   Delete           DELETE, or with prev_kv TXN{success: [GET range, DELETE range]}
 *   Append           TXN{success: [APPEND key suffix, GET key]} (the reply shows the new value)
 *   Txn              TXN; a put/delete op with prev_kv becomes [GET, op] inside its branch
 *   Get, Range       a read: one KV_OP_GET run with kv_range()
 * None of them is cut down silently: whatever a limit refuses is refused with a status.
 */

enum api_method { API_PUT = 1, API_GET, API_DELETE, API_RANGE, API_APPEND, API_TXN };

/* The gRPC status for a KV_E* code (the one table; see KV_ERR_MAP). 0 gives OK; an unknown
 * code gives INTERNAL. */
grpc_status_code api_status_of_kv(int kv_code);

/* How the reply to one op of a Txn branch is shaped from the op results. */
struct api_txn_op {
	enum api_method kind; /* API_RANGE, API_PUT or API_DELETE */
	bool prev_kv;         /* PUT/DELETE: a GET precedes the op in the command */
};

/* A decoded request. Owns everything it points to: release with api_request_free. */
struct api_request {
	enum api_method method;
	bool is_write;     /* PUT, DELETE, APPEND, TXN */
	bool serializable; /* GET, RANGE: consistency == SERIALIZABLE (else linearizable) */

	/* Writes: the encoded kv_cmd to propose (kv_cmd_encode; malloc'd, owned here). */
	unsigned char *cmd;
	size_t cmd_len;
	uint64_t client_id; /* the WriteId given (client_id 0: no deduplication) */
	uint64_t sequence;

	/* Reads: a KV_OP_GET op whose key/range_end point into read_bytes (owned here). */
	struct kv_op read;
	unsigned char *read_bytes;

	/* Shaping the reply. PUT, DELETE: prev_kv asked. TXN: one api_txn_op per RequestOp of
	 * each branch, as the client sent them (malloc'd, owned here). */
	bool prev_kv;
	struct api_txn_op *success;
	size_t n_success;
	struct api_txn_op *failure;
	size_t n_failure;
};

/*
 * Decode the serialized request req[0..len) of method m and validate it against *o (the
 * store's options: pass the same ones the store was created with). On OK, *out is filled
 * and owned by the caller (api_request_free); on any other status *out is zeroed and needs
 * no freeing. Statuses: INVALID_ARGUMENT ("malformed request" when the bytes are not a
 * valid message; an empty key, a key/range bound too large, too many txn ops, a range limit
 * above o->max_range_limit, a Compare without a target or an `exists` compare that is not
 * EQUAL/NOT_EQUAL, a RequestOp without a request, an unknown enum value);
 * RESOURCE_EXHAUSTED (a value too large, out of memory); UNIMPLEMENTED (unknown m).
 * req is not kept.
 */
grpc_status_code api_decode(enum api_method m, const void *req, size_t len,
			    const struct kv_options *o, struct api_request *out, char *err,
			    size_t errlen);

/* Free what api_decode allocated and zero *r. NULL-safe; a zeroed struct is fine. */
void api_request_free(struct api_request *r);

/* The node-specific part of every ResponseHeader. The revision is not here: writes report
 * the revision in their result (a retried write answers with the original one) and reads
 * the store's current revision. */
struct api_header {
	uint64_t member_id; /* this node */
	uint64_t term;      /* its current Raft term */
	uint64_t index;     /* writes: the entry's log index; reads: the applied index */
};

/*
 * Build the response of a write from `result`, the encoded kv_result kv_apply gave for
 * r->cmd (or the stored result of a deduplicated retry). On OK *resp is a malloc'd
 * serialized response of r->method's type (*resp_len bytes; the caller frees). Otherwise
 * *resp is untouched: a result refused at apply time gets its code's status (e.g. an Append
 * beyond max_value_bytes: RESOURCE_EXHAUSTED; KV_ESTALE: FAILED_PRECONDITION "stale
 * sequence number: ..."; KV_ESESSION: FAILED_PRECONDITION starting with API_ESESSION_TEXT,
 * which the gateway recognizes); a result whose shape does not fit the request gets
 * FAILED_PRECONDITION when a write id was given (the id was reused for a different request)
 * and INTERNAL otherwise; an undecodable result INTERNAL; out of memory RESOURCE_EXHAUSTED.
 * r must be a write.
 */
/* How a refusal for an unknown or expired write id session begins (see kv.h "Sessions"). */
#define API_ESESSION_TEXT "write id session unknown or expired"

grpc_status_code api_write_reply(const struct api_request *r, const void *result, size_t result_len,
				 const struct api_header *h, void **resp, size_t *resp_len,
				 char *err, size_t errlen);

/*
 * Run the read r->read on s (the caller has ensured it may: ReadIndex reached, or
 * serializable) and build the response: GetResponse (kv absent when the key does not exist)
 * or RangeResponse (kvs, more, next_key, count as kv_range gives them). header.revision is
 * kv_store_revision(s). *resp as for api_write_reply. Statuses: the kv_range error's
 * (the options of s differ from those given to api_decode), RESOURCE_EXHAUSTED on out of
 * memory. r must be a read.
 */
grpc_status_code api_read_reply(const struct api_request *r, const struct kv_store *s,
				const struct api_header *h, void **resp, size_t *resp_len,
				char *err, size_t errlen);

#endif
