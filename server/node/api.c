/* The public KV API's codec: raftkv.v1.KV requests -> kv commands and reads, results -> replies. */
#include "server/node/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkv/v1/kv.pb-c.h"

/* ---- statuses ------------------------------------------------------------------------- */

/* Every KV_E* code and its status (the comments of KV_ERR_MAP). test_api checks that each
 * code from KV_ERR_MIN to -1 is here. */
static const struct {
	int code;
	grpc_status_code status;
} kv_status[] = {
	{KV_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED},
	{KV_EMALFORMED, GRPC_STATUS_INTERNAL}, /* a log entry we wrote ourselves */
	{KV_EEMPTYKEY, GRPC_STATUS_INVALID_ARGUMENT},
	{KV_EKEYSIZE, GRPC_STATUS_INVALID_ARGUMENT},
	{KV_EVALUESIZE, GRPC_STATUS_RESOURCE_EXHAUSTED},
	{KV_ETOOMANYOPS, GRPC_STATUS_INVALID_ARGUMENT},
	{KV_ELIMIT, GRPC_STATUS_INVALID_ARGUMENT},
	{KV_EINVAL, GRPC_STATUS_INVALID_ARGUMENT},
	{KV_ESTALE, GRPC_STATUS_FAILED_PRECONDITION},
	{KV_ESESSION, GRPC_STATUS_FAILED_PRECONDITION},
	{KV_EINDEX, GRPC_STATUS_INTERNAL},
	{KV_ECORRUPT, GRPC_STATUS_INTERNAL},
	{KV_EIO, GRPC_STATUS_INTERNAL},
};

grpc_status_code api_status_of_kv(int kv_code)
{
	if (kv_code == 0)
		return GRPC_STATUS_OK;
	for (size_t i = 0; i < sizeof(kv_status) / sizeof(kv_status[0]); i++)
		if (kv_status[i].code == kv_code)
			return kv_status[i].status;
	return GRPC_STATUS_INTERNAL;
}

__attribute__((format(printf, 4, 5))) static grpc_status_code
fail(char *err, size_t errlen, grpc_status_code st, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return st;
}

/* A limit error with the limit that refused it. */
static grpc_status_code fail_kv(char *err, size_t errlen, int code, const struct kv_options *o)
{
	grpc_status_code st = api_status_of_kv(code);
	const char *text = kv_strerror(code);
	switch (code) {
	case KV_EKEYSIZE:
		return fail(err, errlen, st, "%s (at most %u bytes)", text, o->max_key_bytes);
	case KV_EVALUESIZE:
		return fail(err, errlen, st, "%s (at most %u bytes)", text, o->max_value_bytes);
	case KV_ETOOMANYOPS:
		return fail(err, errlen, st, "%s (at most %u compares and %u ops per branch)", text,
			    o->max_txn_ops, o->max_txn_ops);
	case KV_ELIMIT:
		return fail(err, errlen, st, "%s (at most %llu)", text,
			    (unsigned long long)o->max_range_limit);
	default:
		return fail(err, errlen, st, "%s", text);
	}
}

/* ---- decoding requests ---------------------------------------------------------------- */

static struct kv_bytes bytes_of(ProtobufCBinaryData d)
{
	return (struct kv_bytes){d.len > 0 ? d.data : NULL, d.len};
}

static void set_write_id(struct kv_cmd *c, const Raftkv__V1__WriteId *w)
{
	if (w != NULL && w->client_id != 0) {
		c->client_id = w->client_id;
		c->sequence = w->sequence;
	}
}

/* Bytes that a prefix range needs for its end (0 when not a prefix). */
static size_t prefix_space(const Raftkv__V1__RangeRequest *rq)
{
	return rq->prefix ? rq->key.len + 1 : 0;
}

/* A RangeRequest as a GET op. A prefix end is written at *arena (advanced past it). An empty
 * prefix means every key: key "\0", range_end "\0" (keys are never empty), as etcd clients
 * send it. */
static void range_op(const Raftkv__V1__RangeRequest *rq, struct kv_op *op, unsigned char **arena)
{
	static const unsigned char zero = 0;
	memset(op, 0, sizeof(*op));
	op->type = KV_OP_GET;
	op->key = bytes_of(rq->key);
	op->range_end = bytes_of(rq->range_end);
	op->limit = rq->limit;
	op->keys_only = rq->keys_only;
	op->count_only = rq->count_only;
	if (rq->prefix) {
		if (rq->key.len == 0) {
			op->key = (struct kv_bytes){&zero, 1};
			op->range_end = (struct kv_bytes){&zero, 1};
		} else {
			size_t n = kv_prefix_end(rq->key.data, rq->key.len, *arena);
			op->range_end = (struct kv_bytes){*arena, n};
			*arena += n;
		}
	}
}

static bool consistency_ok(Raftkv__V1__ReadConsistency c)
{
	return c == RAFTKV__V1__READ_CONSISTENCY__LINEARIZABLE ||
	       c == RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
}

/* Copy a read op's bytes into memory out owns and point the op at it. */
static grpc_status_code own_read(struct api_request *out, const struct kv_op *op, char *err,
				 size_t errlen)
{
	size_t n = op->key.len + op->range_end.len;
	out->read_bytes = malloc(n == 0 ? 1 : n);
	if (out->read_bytes == NULL)
		return fail(err, errlen, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	out->read = *op;
	if (op->key.len > 0)
		memcpy(out->read_bytes, op->key.p, op->key.len);
	if (op->range_end.len > 0)
		memcpy(out->read_bytes + op->key.len, op->range_end.p, op->range_end.len);
	out->read.key.p = op->key.len > 0 ? out->read_bytes : NULL;
	out->read.range_end.p = op->range_end.len > 0 ? out->read_bytes + op->key.len : NULL;
	return GRPC_STATUS_OK;
}

/* The read check kv_range runs (a txn holding the one GET). */
static int check_read(const struct kv_options *o, const struct kv_op *op)
{
	struct kv_cmd c = {.type = KV_OP_TXN, .success = (struct kv_op *)op, .n_success = 1};
	return kv_cmd_check(o, &c);
}

static grpc_status_code map_compare(const Raftkv__V1__Compare *pc, struct kv_compare *c, size_t i,
				    char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	switch (pc->result) {
	case RAFTKV__V1__COMPARE__RESULT__EQUAL:
		c->result = KV_CMP_EQ;
		break;
	case RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL:
		c->result = KV_CMP_NE;
		break;
	case RAFTKV__V1__COMPARE__RESULT__GREATER:
		c->result = KV_CMP_GT;
		break;
	case RAFTKV__V1__COMPARE__RESULT__LESS:
		c->result = KV_CMP_LT;
		break;
	default:
		return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
			    "compare %zu: unknown result %d", i, (int)pc->result);
	}
	c->key = bytes_of(pc->key);
	switch (pc->target_case) {
	case RAFTKV__V1__COMPARE__TARGET_VALUE:
		c->target = KV_CMP_VALUE;
		c->value = bytes_of(pc->value);
		break;
	case RAFTKV__V1__COMPARE__TARGET_VERSION:
		c->target = KV_CMP_VERSION;
		c->number = pc->version;
		break;
	case RAFTKV__V1__COMPARE__TARGET_CREATE_REVISION:
		c->target = KV_CMP_CREATE;
		c->number = pc->create_revision;
		break;
	case RAFTKV__V1__COMPARE__TARGET_MOD_REVISION:
		c->target = KV_CMP_MOD;
		c->number = pc->mod_revision;
		break;
	case RAFTKV__V1__COMPARE__TARGET_EXISTS:
		c->target = KV_CMP_EXISTS;
		c->number = pc->exists ? 1 : 0;
		if (c->result != KV_CMP_EQ && c->result != KV_CMP_NE)
			return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
				    "compare %zu: exists takes EQUAL or NOT_EQUAL", i);
		break;
	default:
		return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT, "compare %zu: no target set",
			    i);
	}
	return GRPC_STATUS_OK;
}

/* Ops a branch becomes: a put/delete with prev_kv is preceded by a GET. */
static size_t branch_ops(Raftkv__V1__RequestOp **ops, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const Raftkv__V1__RequestOp *op = ops[i];
		k++;
		if ((op->request_case == RAFTKV__V1__REQUEST_OP__REQUEST_PUT && op->put->prev_kv) ||
		    (op->request_case == RAFTKV__V1__REQUEST_OP__REQUEST_DELETE &&
		     op->delete_->prev_kv))
			k++;
	}
	return k;
}

static size_t branch_prefix_space(Raftkv__V1__RequestOp **ops, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (ops[i]->request_case == RAFTKV__V1__REQUEST_OP__REQUEST_RANGE)
			k += prefix_space(ops[i]->range);
	return k;
}

/* Fill kv ops and reply shapes for one branch. */
static grpc_status_code map_branch(const char *name, Raftkv__V1__RequestOp **ops, size_t n,
				   struct kv_op *kops, struct api_txn_op *shape,
				   unsigned char **arena, char *err, size_t errlen)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const Raftkv__V1__RequestOp *op = ops[i];
		struct kv_op *x = &kops[k];
		switch (op->request_case) {
		case RAFTKV__V1__REQUEST_OP__REQUEST_RANGE:
			if (!consistency_ok(op->range->consistency))
				return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
					    "%s op %zu: unknown consistency %d", name, i,
					    (int)op->range->consistency);
			range_op(op->range, x, arena);
			shape[i] = (struct api_txn_op){API_RANGE, false};
			k++;
			break;
		case RAFTKV__V1__REQUEST_OP__REQUEST_PUT: {
			const Raftkv__V1__PutRequest *p = op->put;
			shape[i] = (struct api_txn_op){API_PUT, p->prev_kv};
			if (p->prev_kv)
				kops[k++] =
					(struct kv_op){.type = KV_OP_GET, .key = bytes_of(p->key)};
			kops[k++] = (struct kv_op){.type = KV_OP_PUT,
						   .key = bytes_of(p->key),
						   .value = bytes_of(p->value)};
			break;
		}
		case RAFTKV__V1__REQUEST_OP__REQUEST_DELETE: {
			const Raftkv__V1__DeleteRequest *d = op->delete_;
			struct kv_op del = {.type = KV_OP_DELETE,
					    .key = bytes_of(d->key),
					    .range_end = bytes_of(d->range_end)};
			shape[i] = (struct api_txn_op){API_DELETE, d->prev_kv};
			if (d->prev_kv) {
				kops[k] = del;
				kops[k++].type = KV_OP_GET;
			}
			kops[k++] = del;
			break;
		}
		default:
			return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
				    "%s op %zu: no request set", name, i);
		}
	}
	return GRPC_STATUS_OK;
}

static grpc_status_code encode_cmd(struct api_request *out, const struct kv_cmd *c,
				   const struct kv_options *o, bool expanded, char *err,
				   size_t errlen)
{
	int rv = kv_cmd_check(o, c);
	if (rv == KV_ETOOMANYOPS && expanded)
		return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
			    "%s (at most %u per branch; a put or delete with prev_kv counts twice)",
			    kv_strerror(rv), o->max_txn_ops);
	if (rv != 0)
		return fail_kv(err, errlen, rv, o);
	out->client_id = c->client_id;
	out->sequence = c->sequence;
	rv = kv_cmd_encode(c, &out->cmd, &out->cmd_len);
	if (rv != 0)
		return fail_kv(err, errlen, rv, o);
	return GRPC_STATUS_OK;
}

static grpc_status_code decode_txn(const Raftkv__V1__TxnRequest *t, const struct kv_options *o,
				   struct api_request *out, char *err, size_t errlen)
{
	grpc_status_code st;
	struct kv_cmd c = {.type = KV_OP_TXN};
	set_write_id(&c, t->write_id);
	/* Refuse oversized lists before allocating for them (kv_cmd_check would too). */
	if (t->n_compare > o->max_txn_ops || t->n_success > o->max_txn_ops ||
	    t->n_failure > o->max_txn_ops)
		return fail_kv(err, errlen, KV_ETOOMANYOPS, o);
	c.n_compares = t->n_compare;
	c.n_success = branch_ops(t->success, t->n_success);
	c.n_failure = branch_ops(t->failure, t->n_failure);
	size_t space = branch_prefix_space(t->success, t->n_success) +
		       branch_prefix_space(t->failure, t->n_failure);
	c.compares = calloc(c.n_compares + 1, sizeof(*c.compares));
	c.success = calloc(c.n_success + 1, sizeof(*c.success));
	c.failure = calloc(c.n_failure + 1, sizeof(*c.failure));
	out->success = calloc(t->n_success + 1, sizeof(*out->success));
	out->failure = calloc(t->n_failure + 1, sizeof(*out->failure));
	unsigned char *arena = malloc(space + 1), *cursor = arena;
	if (!c.compares || !c.success || !c.failure || !out->success || !out->failure || !arena) {
		st = fail(err, errlen, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	out->n_success = t->n_success;
	out->n_failure = t->n_failure;
	for (size_t i = 0; i < t->n_compare; i++) {
		st = map_compare(t->compare[i], &c.compares[i], i, err, errlen);
		if (st != GRPC_STATUS_OK)
			goto out;
	}
	st = map_branch("success", t->success, t->n_success, c.success, out->success, &cursor, err,
			errlen);
	if (st != GRPC_STATUS_OK)
		goto out;
	st = map_branch("failure", t->failure, t->n_failure, c.failure, out->failure, &cursor, err,
			errlen);
	if (st != GRPC_STATUS_OK)
		goto out;
	bool expanded = c.n_success != t->n_success || c.n_failure != t->n_failure;
	st = encode_cmd(out, &c, o, expanded, err, errlen);
out:
	free(arena);
	free(c.compares);
	free(c.success);
	free(c.failure);
	return st;
}

/* Unpack with the method's descriptor. */
static const ProtobufCMessageDescriptor *request_descriptor(enum api_method m)
{
	switch (m) {
	case API_PUT:
		return &raftkv__v1__put_request__descriptor;
	case API_GET:
		return &raftkv__v1__get_request__descriptor;
	case API_DELETE:
		return &raftkv__v1__delete_request__descriptor;
	case API_RANGE:
		return &raftkv__v1__range_request__descriptor;
	case API_APPEND:
		return &raftkv__v1__append_request__descriptor;
	case API_TXN:
		return &raftkv__v1__txn_request__descriptor;
	}
	return NULL;
}

static grpc_status_code decode_unpacked(enum api_method m, const ProtobufCMessage *pm,
					const struct kv_options *o, struct api_request *out,
					char *err, size_t errlen)
{
	struct kv_cmd c = {0};
	struct kv_op pair[2];
	struct kv_op read;
	int rv;
	switch (m) {
	case API_PUT: {
		const Raftkv__V1__PutRequest *p = (const Raftkv__V1__PutRequest *)pm;
		set_write_id(&c, p->write_id);
		out->prev_kv = p->prev_kv;
		struct kv_op put = {
			.type = KV_OP_PUT, .key = bytes_of(p->key), .value = bytes_of(p->value)};
		if (!p->prev_kv) {
			c.type = KV_OP_PUT;
			c.op = put;
		} else {
			/* The previous value comes back atomically from a GET in the same txn. */
			pair[0] = (struct kv_op){.type = KV_OP_GET, .key = put.key};
			pair[1] = put;
			c.type = KV_OP_TXN;
			c.success = pair;
			c.n_success = 2;
		}
		return encode_cmd(out, &c, o, false, err, errlen);
	}
	case API_DELETE: {
		const Raftkv__V1__DeleteRequest *d = (const Raftkv__V1__DeleteRequest *)pm;
		set_write_id(&c, d->write_id);
		out->prev_kv = d->prev_kv;
		struct kv_op del = {.type = KV_OP_DELETE,
				    .key = bytes_of(d->key),
				    .range_end = bytes_of(d->range_end)};
		if (!d->prev_kv) {
			c.type = KV_OP_DELETE;
			c.op = del;
		} else {
			pair[0] = del;
			pair[0].type = KV_OP_GET;
			pair[1] = del;
			c.type = KV_OP_TXN;
			c.success = pair;
			c.n_success = 2;
		}
		return encode_cmd(out, &c, o, false, err, errlen);
	}
	case API_APPEND: {
		const Raftkv__V1__AppendRequest *a = (const Raftkv__V1__AppendRequest *)pm;
		set_write_id(&c, a->write_id);
		/* APPEND then GET: the reply carries the value after the append. */
		pair[0] = (struct kv_op){.type = KV_OP_APPEND,
					 .key = bytes_of(a->key),
					 .value = bytes_of(a->suffix)};
		pair[1] = (struct kv_op){.type = KV_OP_GET, .key = bytes_of(a->key)};
		c.type = KV_OP_TXN;
		c.success = pair;
		c.n_success = 2;
		return encode_cmd(out, &c, o, false, err, errlen);
	}
	case API_TXN:
		return decode_txn((const Raftkv__V1__TxnRequest *)pm, o, out, err, errlen);
	case API_GET: {
		const Raftkv__V1__GetRequest *g = (const Raftkv__V1__GetRequest *)pm;
		if (!consistency_ok(g->consistency))
			return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
				    "unknown consistency %d", (int)g->consistency);
		out->serializable = g->consistency == RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
		read = (struct kv_op){.type = KV_OP_GET, .key = bytes_of(g->key)};
		rv = check_read(o, &read);
		if (rv != 0)
			return fail_kv(err, errlen, rv, o);
		return own_read(out, &read, err, errlen);
	}
	case API_RANGE: {
		const Raftkv__V1__RangeRequest *rq = (const Raftkv__V1__RangeRequest *)pm;
		if (!consistency_ok(rq->consistency))
			return fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT,
				    "unknown consistency %d", (int)rq->consistency);
		out->serializable = rq->consistency == RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
		/* The prefix end is copied by own_read before this returns. */
		unsigned char *end = malloc(prefix_space(rq) + 1), *cursor = end;
		if (end == NULL)
			return fail(err, errlen, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		range_op(rq, &read, &cursor);
		rv = check_read(o, &read);
		grpc_status_code st =
			rv != 0 ? fail_kv(err, errlen, rv, o) : own_read(out, &read, err, errlen);
		free(end);
		return st;
	}
	}
	return fail(err, errlen, GRPC_STATUS_UNIMPLEMENTED, "unknown method %d", (int)m);
}

grpc_status_code api_decode(enum api_method m, const void *req, size_t len,
			    const struct kv_options *o, struct api_request *out, char *err,
			    size_t errlen)
{
	grpc_status_code st;
	memset(out, 0, sizeof(*out));
	if (err != NULL && errlen > 0)
		err[0] = 0;
	const ProtobufCMessageDescriptor *d = request_descriptor(m);
	if (d == NULL) {
		st = fail(err, errlen, GRPC_STATUS_UNIMPLEMENTED, "unknown method %d", (int)m);
		goto err;
	}
	ProtobufCMessage *pm = protobuf_c_message_unpack(d, NULL, len, req);
	if (pm == NULL) {
		st = fail(err, errlen, GRPC_STATUS_INVALID_ARGUMENT, "malformed request");
		goto err;
	}
	out->method = m;
	out->is_write = m == API_PUT || m == API_DELETE || m == API_APPEND || m == API_TXN;
	st = decode_unpacked(m, pm, o, out, err, errlen);
	protobuf_c_message_free_unpacked(pm, NULL);
	if (st != GRPC_STATUS_OK)
		goto err_out;
	return GRPC_STATUS_OK;
err_out:
	api_request_free(out);
err:
	return st;
}

void api_request_free(struct api_request *r)
{
	if (r == NULL)
		return;
	free(r->cmd);
	free(r->read_bytes);
	free(r->success);
	free(r->failure);
	memset(r, 0, sizeof(*r));
}

/* ---- building responses --------------------------------------------------------------- */

/* Every allocation of one response build, freed together after packing. */
struct pool {
	void **p;
	size_t n, cap;
};

static void *pool_alloc(struct pool *pl, size_t n, size_t size)
{
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? 2 * pl->cap : 16;
		void **p = realloc(pl->p, cap * sizeof(*p));
		if (p == NULL)
			return NULL;
		pl->p = p;
		pl->cap = cap;
	}
	void *x = calloc(n == 0 ? 1 : n, size);
	if (x != NULL)
		pl->p[pl->n++] = x;
	return x;
}

static void pool_free(struct pool *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->p[i]);
	free(pl->p);
	memset(pl, 0, sizeof(*pl));
}

/* Out of memory while building; the shape problems below say more. */
#define BUILD_NOMEM (-1)
#define BUILD_SHAPE (-2)

static ProtobufCBinaryData pb_bytes(struct kv_bytes b)
{
	return (ProtobufCBinaryData){b.len, (uint8_t *)b.p}; /* read only by pack */
}

static void fill_kv(Raftkv__V1__KeyValue *pkv, const struct kv_kv *kv)
{
	raftkv__v1__key_value__init(pkv);
	pkv->key = pb_bytes(kv->key);
	pkv->value = pb_bytes(kv->value);
	pkv->create_revision = kv->create_revision;
	pkv->mod_revision = kv->mod_revision;
	pkv->version = kv->version;
}

/* The kvs of a range result as a pointer array (*n of them). */
static int kv_list(struct pool *pl, const struct kv_range_result *rr, Raftkv__V1__KeyValue ***out,
		   size_t *n)
{
	Raftkv__V1__KeyValue *kvs = pool_alloc(pl, rr->n, sizeof(*kvs));
	Raftkv__V1__KeyValue **ptrs = pool_alloc(pl, rr->n, sizeof(*ptrs));
	if (kvs == NULL || ptrs == NULL)
		return BUILD_NOMEM;
	for (size_t i = 0; i < rr->n; i++) {
		fill_kv(&kvs[i], &rr->kvs[i]);
		ptrs[i] = &kvs[i];
	}
	*out = ptrs;
	*n = rr->n;
	return 0;
}

/* The first kv of a single-key read, or NULL when the key does not exist. */
static int kv_single(struct pool *pl, const struct kv_range_result *rr, Raftkv__V1__KeyValue **out)
{
	*out = NULL;
	if (rr->n == 0)
		return 0;
	if (rr->n > 1)
		return BUILD_SHAPE;
	*out = pool_alloc(pl, 1, sizeof(**out));
	if (*out == NULL)
		return BUILD_NOMEM;
	fill_kv(*out, &rr->kvs[0]);
	return 0;
}

static int range_response(struct pool *pl, const struct kv_range_result *rr,
			  Raftkv__V1__ResponseHeader *hdr, Raftkv__V1__RangeResponse *out)
{
	raftkv__v1__range_response__init(out);
	out->header = hdr;
	out->more = rr->more;
	out->next_key = pb_bytes(rr->more ? rr->next_key : (struct kv_bytes){NULL, 0});
	out->count = rr->count;
	return kv_list(pl, rr, &out->kvs, &out->n_kvs);
}

/* Take the next op result of the expected type from a txn result. */
static const struct kv_op_result *next_op(const struct kv_result *res, size_t *k, enum kv_op_type t)
{
	if (*k >= res->n_responses || res->responses[*k].type != t)
		return NULL;
	return &res->responses[(*k)++];
}

static int txn_response(struct pool *pl, const struct api_request *r, const struct kv_result *res,
			Raftkv__V1__ResponseHeader *hdr, Raftkv__V1__TxnResponse *out)
{
	raftkv__v1__txn_response__init(out);
	out->header = hdr;
	out->succeeded = res->succeeded;
	const struct api_txn_op *shape = res->succeeded ? r->success : r->failure;
	size_t n = res->succeeded ? r->n_success : r->n_failure;
	Raftkv__V1__ResponseOp *ops = pool_alloc(pl, n, sizeof(*ops));
	Raftkv__V1__ResponseOp **ptrs = pool_alloc(pl, n, sizeof(*ptrs));
	if (ops == NULL || ptrs == NULL)
		return BUILD_NOMEM;
	size_t k = 0;
	int rv;
	for (size_t i = 0; i < n; i++) {
		Raftkv__V1__ResponseOp *op = &ops[i];
		raftkv__v1__response_op__init(op);
		ptrs[i] = op;
		const struct kv_op_result *get = NULL, *x;
		switch (shape[i].kind) {
		case API_RANGE: {
			if ((x = next_op(res, &k, KV_OP_GET)) == NULL)
				return BUILD_SHAPE;
			Raftkv__V1__RangeResponse *rr = pool_alloc(pl, 1, sizeof(*rr));
			if (rr == NULL)
				return BUILD_NOMEM;
			if ((rv = range_response(pl, &x->range, hdr, rr)) != 0)
				return rv;
			op->response_case = RAFTKV__V1__RESPONSE_OP__RESPONSE_RANGE;
			op->range = rr;
			break;
		}
		case API_PUT: {
			if (shape[i].prev_kv && (get = next_op(res, &k, KV_OP_GET)) == NULL)
				return BUILD_SHAPE;
			if (next_op(res, &k, KV_OP_PUT) == NULL)
				return BUILD_SHAPE;
			Raftkv__V1__PutResponse *pr = pool_alloc(pl, 1, sizeof(*pr));
			if (pr == NULL)
				return BUILD_NOMEM;
			raftkv__v1__put_response__init(pr);
			pr->header = hdr;
			if (get != NULL && (rv = kv_single(pl, &get->range, &pr->prev_kv)) != 0)
				return rv;
			op->response_case = RAFTKV__V1__RESPONSE_OP__RESPONSE_PUT;
			op->put = pr;
			break;
		}
		case API_DELETE: {
			if (shape[i].prev_kv && (get = next_op(res, &k, KV_OP_GET)) == NULL)
				return BUILD_SHAPE;
			if ((x = next_op(res, &k, KV_OP_DELETE)) == NULL)
				return BUILD_SHAPE;
			Raftkv__V1__DeleteResponse *dr = pool_alloc(pl, 1, sizeof(*dr));
			if (dr == NULL)
				return BUILD_NOMEM;
			raftkv__v1__delete_response__init(dr);
			dr->header = hdr;
			dr->deleted = x->deleted;
			if (get != NULL &&
			    (rv = kv_list(pl, &get->range, &dr->prev_kvs, &dr->n_prev_kvs)) != 0)
				return rv;
			op->response_case = RAFTKV__V1__RESPONSE_OP__RESPONSE_DELETE;
			op->delete_ = dr;
			break;
		}
		default:
			return BUILD_SHAPE;
		}
	}
	if (k != res->n_responses)
		return BUILD_SHAPE;
	out->n_responses = n;
	out->responses = ptrs;
	return 0;
}

/* Build the protobuf response of a write into *msg (storage in pl and in the union). */
union write_response {
	Raftkv__V1__PutResponse put;
	Raftkv__V1__DeleteResponse del;
	Raftkv__V1__AppendResponse append;
	Raftkv__V1__TxnResponse txn;
};

static int write_response(struct pool *pl, const struct api_request *r, const struct kv_result *res,
			  Raftkv__V1__ResponseHeader *hdr, union write_response *u,
			  const ProtobufCMessage **msg)
{
	const struct kv_op_result *x;
	bool pair = res->type == KV_OP_TXN && res->succeeded && res->n_responses == 2;
	switch (r->method) {
	case API_PUT:
		raftkv__v1__put_response__init(&u->put);
		u->put.header = hdr;
		*msg = &u->put.base;
		if (!r->prev_kv)
			return res->type == KV_OP_PUT ? 0 : BUILD_SHAPE;
		if (!pair || res->responses[0].type != KV_OP_GET ||
		    res->responses[1].type != KV_OP_PUT)
			return BUILD_SHAPE;
		return kv_single(pl, &res->responses[0].range, &u->put.prev_kv);
	case API_DELETE:
		raftkv__v1__delete_response__init(&u->del);
		u->del.header = hdr;
		*msg = &u->del.base;
		if (!r->prev_kv) {
			u->del.deleted = res->deleted;
			return res->type == KV_OP_DELETE ? 0 : BUILD_SHAPE;
		}
		if (!pair || res->responses[0].type != KV_OP_GET ||
		    res->responses[1].type != KV_OP_DELETE)
			return BUILD_SHAPE;
		x = &res->responses[1];
		u->del.deleted = x->deleted;
		return kv_list(pl, &res->responses[0].range, &u->del.prev_kvs, &u->del.n_prev_kvs);
	case API_APPEND:
		raftkv__v1__append_response__init(&u->append);
		u->append.header = hdr;
		*msg = &u->append.base;
		if (!pair || res->responses[0].type != KV_OP_APPEND ||
		    res->responses[1].type != KV_OP_GET || res->responses[1].range.n != 1)
			return BUILD_SHAPE;
		return kv_single(pl, &res->responses[1].range, &u->append.kv);
	case API_TXN:
		*msg = &u->txn.base;
		if (res->type != KV_OP_TXN) {
			raftkv__v1__txn_response__init(&u->txn);
			return BUILD_SHAPE;
		}
		return txn_response(pl, r, res, hdr, &u->txn);
	default:
		return BUILD_SHAPE;
	}
}

static grpc_status_code pack(const ProtobufCMessage *msg, void **resp, size_t *resp_len, char *err,
			     size_t errlen)
{
	size_t size = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(size == 0 ? 1 : size);
	if (buf == NULL)
		return fail(err, errlen, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
	if (protobuf_c_message_pack(msg, buf) != size) {
		free(buf);
		return fail(err, errlen, GRPC_STATUS_INTERNAL, "response packing failed");
	}
	*resp = buf;
	*resp_len = size;
	return GRPC_STATUS_OK;
}

static void header_of(Raftkv__V1__ResponseHeader *hdr, const struct api_header *h,
		      uint64_t revision)
{
	raftkv__v1__response_header__init(hdr);
	hdr->revision = revision;
	hdr->member_id = h->member_id;
	hdr->raft_term = h->term;
	hdr->raft_index = h->index;
}

grpc_status_code api_write_reply(const struct api_request *r, const void *result, size_t result_len,
				 const struct api_header *h, void **resp, size_t *resp_len,
				 char *err, size_t errlen)
{
	grpc_status_code st;
	struct kv_result res;
	struct pool pl = {0};
	if (err != NULL && errlen > 0)
		err[0] = 0;
	if (!r->is_write) {
		st = fail(err, errlen, GRPC_STATUS_INTERNAL, "not a write request");
		goto err;
	}
	int rv = kv_result_decode(result, result_len, &res);
	if (rv != 0) {
		st = fail(err, errlen, api_status_of_kv(rv), "undecodable result: %s",
			  kv_strerror(rv));
		goto err;
	}
	if (res.status == KV_ESTALE) {
		st = fail(err, errlen, GRPC_STATUS_FAILED_PRECONDITION,
			  "stale sequence number: client %llu already wrote a sequence after %llu",
			  (unsigned long long)r->client_id, (unsigned long long)r->sequence);
		goto err_result;
	}
	if (res.status == KV_ESESSION) {
		st = fail(err, errlen, GRPC_STATUS_FAILED_PRECONDITION,
			  API_ESESSION_TEXT
			  ": client %llu has no session, so sequence %llu cannot "
			  "be told from a retry of a write that may have been "
			  "applied; start a new session (a new client id, sequence 1)",
			  (unsigned long long)r->client_id, (unsigned long long)r->sequence);
		goto err_result;
	}
	if (res.status != 0) {
		st = fail(err, errlen, api_status_of_kv(res.status), "%s", kv_strerror(res.status));
		goto err_result;
	}
	Raftkv__V1__ResponseHeader hdr;
	header_of(&hdr, h, res.revision);
	union write_response u;
	const ProtobufCMessage *msg = NULL;
	rv = write_response(&pl, r, &res, &hdr, &u, &msg);
	if (rv == BUILD_NOMEM) {
		st = fail(err, errlen, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
		goto err_pool;
	}
	if (rv == BUILD_SHAPE && r->client_id != 0) {
		st = fail(err, errlen, GRPC_STATUS_FAILED_PRECONDITION,
			  "write id (%llu, %llu) was already used for a different request",
			  (unsigned long long)r->client_id, (unsigned long long)r->sequence);
		goto err_pool;
	}
	if (rv != 0) {
		st = fail(err, errlen, GRPC_STATUS_INTERNAL, "result does not match the request");
		goto err_pool;
	}
	st = pack(msg, resp, resp_len, err, errlen);
	if (st != GRPC_STATUS_OK)
		goto err_pool;
	pool_free(&pl);
	kv_result_free(&res);
	return GRPC_STATUS_OK;
err_pool:
	pool_free(&pl);
err_result:
	kv_result_free(&res);
err:
	return st;
}

grpc_status_code api_read_reply(const struct api_request *r, const struct kv_store *s,
				const struct api_header *h, void **resp, size_t *resp_len,
				char *err, size_t errlen)
{
	grpc_status_code st;
	struct kv_range_result rr;
	struct pool pl = {0};
	int rv;
	if (err != NULL && errlen > 0)
		err[0] = 0;
	if (r->method != API_GET && r->method != API_RANGE) {
		st = fail(err, errlen, GRPC_STATUS_INTERNAL, "not a read request");
		goto err;
	}
	rv = kv_range(s, &r->read, &rr);
	if (rv != 0) {
		st = fail(err, errlen, api_status_of_kv(rv), "%s", kv_strerror(rv));
		goto err;
	}
	Raftkv__V1__ResponseHeader hdr;
	header_of(&hdr, h, kv_store_revision(s));
	const ProtobufCMessage *msg;
	Raftkv__V1__GetResponse get;
	Raftkv__V1__RangeResponse range;
	if (r->method == API_GET) {
		raftkv__v1__get_response__init(&get);
		get.header = &hdr;
		rv = kv_single(&pl, &rr, &get.kv);
		msg = &get.base;
	} else {
		rv = range_response(&pl, &rr, &hdr, &range);
		msg = &range.base;
	}
	if (rv != 0) {
		st = fail(err, errlen,
			  rv == BUILD_NOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL,
			  rv == BUILD_NOMEM ? "out of memory" : "read returned several keys");
		goto err_pool;
	}
	st = pack(msg, resp, resp_len, err, errlen);
	if (st != GRPC_STATUS_OK)
		goto err_pool;
	pool_free(&pl);
	kv_range_result_free(&rr);
	return GRPC_STATUS_OK;
err_pool:
	pool_free(&pl);
	kv_range_result_free(&rr);
err:
	return st;
}
