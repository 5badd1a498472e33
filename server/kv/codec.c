/* Encodings owned by kv/: commands (log-entry payloads) and results (session table, replies).
 *
 * All integers big-endian; a "blob" is a u32 length then that many bytes.
 *
 * Command, version 2 (version 1, still decoded, had no time_ms; its time is 0):
 *   u8 version = 2 | u64 time_ms | u64 client_id | u64 sequence | u8 type | body
 *   PUT, APPEND: blob key, blob value        DELETE: blob key, blob range_end
 *   TXN: u32 n, n compares | u32 n, n ops | u32 n, n ops   (success, then failure)
 *   op:      u8 type (PUT/DELETE/APPEND/GET) then its body; GET: blob key, blob range_end,
 *            u64 limit, u8 flags (bit 0 keys_only, bit 1 count_only, others 0)
 *   compare: u8 target | u8 result | blob key | VALUE: blob value, else u64 number
 *
 * Result, version 1:
 *   u8 version = 1 | u32 status (int32) | u64 revision | u8 type (0 when the command could
 *   not be decoded) | DELETE: u64 deleted | TXN: u8 succeeded, u32 n, n op results
 *   op result: u8 type | DELETE: u64 deleted | GET: range body
 *   range body: u64 count | u8 more | u32 n | n x (blob key, blob value, u64 create,
 *               u64 mod, u64 version) | if more: blob next_key
 *
 * Decoders accept exactly what encoders produce: unknown versions, types, flags, enum values
 * and trailing bytes are KV_EMALFORMED. Array counts are checked against the bytes left
 * before anything is allocated, so a short, lying input cannot force a large allocation. */
#include "server/kv/kv_impl.h"

#include "common/byteorder.h"

#include <stdlib.h>
#include <string.h>

#define CMD_VERSION    2
#define CMD_VERSION_V1 1 /* without time_ms: decoded, never written */
#define RESULT_VERSION 1

const char *kv_strerror(int code)
{
	switch (code) {
	case 0:
		return "ok";
#define KV_ERR_CASE(name, value, text) \
	case name:                     \
		return text;
		KV_ERR_MAP(KV_ERR_CASE)
#undef KV_ERR_CASE
	default:
		return "unknown error";
	}
}

/* ---- buffers -------------------------------------------------------------------------- */

static bool kb_reserve(struct kbuf *b, size_t n)
{
	if (b->oom)
		return false;
	if (b->cap - b->len >= n)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	unsigned char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void kb_bytes(struct kbuf *b, const void *p, size_t n)
{
	if (n == 0 || !kb_reserve(b, n))
		return;
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

void kb_u8(struct kbuf *b, uint8_t v)
{
	kb_bytes(b, &v, 1);
}

void kb_u32(struct kbuf *b, uint32_t v)
{
	unsigned char t[4];
	put_be32(t, v);
	kb_bytes(b, t, 4);
}

void kb_u64(struct kbuf *b, uint64_t v)
{
	unsigned char t[8];
	put_be64(t, v);
	kb_bytes(b, t, 8);
}

void kb_blob(struct kbuf *b, const void *p, size_t n)
{
	kb_u32(b, (uint32_t)n);
	kb_bytes(b, p, n);
}

static const unsigned char *kr_take(struct krd *r, size_t n)
{
	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const unsigned char *p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t kr_u8(struct krd *r)
{
	const unsigned char *p = kr_take(r, 1);
	return p ? p[0] : 0;
}

uint32_t kr_u32(struct krd *r)
{
	const unsigned char *p = kr_take(r, 4);
	return p ? get_be32(p) : 0;
}

uint64_t kr_u64(struct krd *r)
{
	const unsigned char *p = kr_take(r, 8);
	return p ? get_be64(p) : 0;
}

struct kv_bytes kr_blob(struct krd *r)
{
	struct kv_bytes b = {NULL, 0};
	uint32_t n = kr_u32(r);
	const unsigned char *p = kr_take(r, n);
	if (p) {
		b.p = n ? p : NULL;
		b.len = n;
	}
	return b;
}

static size_t kr_left(const struct krd *r)
{
	return r->bad ? 0 : r->len - r->off;
}

/* ---- commands ------------------------------------------------------------------------- */

static bool fits32(struct kv_bytes b)
{
	return b.len <= UINT32_MAX && (b.p != NULL || b.len == 0);
}

static int enc_op(struct kbuf *b, const struct kv_op *op, bool with_type)
{
	if (!fits32(op->key) || !fits32(op->value) || !fits32(op->range_end))
		return KV_EINVAL;
	if (with_type)
		kb_u8(b, (uint8_t)op->type);
	switch (op->type) {
	case KV_OP_PUT:
	case KV_OP_APPEND:
		kb_blob(b, op->key.p, op->key.len);
		kb_blob(b, op->value.p, op->value.len);
		return 0;
	case KV_OP_DELETE:
		kb_blob(b, op->key.p, op->key.len);
		kb_blob(b, op->range_end.p, op->range_end.len);
		return 0;
	case KV_OP_GET:
		if (!with_type)
			return KV_EINVAL; /* a GET is not a command of its own */
		kb_blob(b, op->key.p, op->key.len);
		kb_blob(b, op->range_end.p, op->range_end.len);
		kb_u64(b, op->limit);
		kb_u8(b, (uint8_t)((op->keys_only ? 1 : 0) | (op->count_only ? 2 : 0)));
		return 0;
	default:
		return KV_EINVAL;
	}
}

static bool cmp_valid(enum kv_cmp_target t, enum kv_cmp_result r, uint64_t number)
{
	if (r < KV_CMP_EQ || r > KV_CMP_GT)
		return false;
	if (t == KV_CMP_EXISTS)
		return (r == KV_CMP_EQ || r == KV_CMP_NE) && number <= 1;
	return t >= KV_CMP_VALUE && t <= KV_CMP_MOD;
}

static int enc_ops(struct kbuf *b, const struct kv_op *ops, size_t n)
{
	if (n > UINT32_MAX || (n && !ops))
		return KV_EINVAL;
	kb_u32(b, (uint32_t)n);
	for (size_t i = 0; i < n; i++) {
		int rv = enc_op(b, &ops[i], true);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int kv_cmd_encode(const struct kv_cmd *cmd, unsigned char **out, size_t *out_len)
{
	struct kbuf b = {0};
	int rv = 0;
	kb_u8(&b, CMD_VERSION);
	kb_u64(&b, cmd->time_ms);
	kb_u64(&b, cmd->client_id);
	kb_u64(&b, cmd->sequence);
	kb_u8(&b, (uint8_t)cmd->type);
	switch (cmd->type) {
	case KV_OP_PUT:
	case KV_OP_DELETE:
	case KV_OP_APPEND:
		if (cmd->op.type != cmd->type) {
			rv = KV_EINVAL;
			break;
		}
		rv = enc_op(&b, &cmd->op, false);
		break;
	case KV_OP_TXN:
		if (cmd->n_compares > UINT32_MAX || (cmd->n_compares && !cmd->compares)) {
			rv = KV_EINVAL;
			break;
		}
		kb_u32(&b, (uint32_t)cmd->n_compares);
		for (size_t i = 0; i < cmd->n_compares && rv == 0; i++) {
			const struct kv_compare *c = &cmd->compares[i];
			if (!cmp_valid(c->target, c->result, c->number) || !fits32(c->key) ||
			    !fits32(c->value)) {
				rv = KV_EINVAL;
				break;
			}
			kb_u8(&b, (uint8_t)c->target);
			kb_u8(&b, (uint8_t)c->result);
			kb_blob(&b, c->key.p, c->key.len);
			if (c->target == KV_CMP_VALUE)
				kb_blob(&b, c->value.p, c->value.len);
			else
				kb_u64(&b, c->number);
		}
		if (rv == 0)
			rv = enc_ops(&b, cmd->success, cmd->n_success);
		if (rv == 0)
			rv = enc_ops(&b, cmd->failure, cmd->n_failure);
		break;
	default:
		rv = KV_EINVAL;
	}
	if (rv == 0 && b.oom)
		rv = KV_ENOMEM;
	if (rv != 0) {
		free(b.p);
		return rv;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

static void dec_op(struct krd *r, struct kv_op *op, enum kv_op_type type)
{
	memset(op, 0, sizeof(*op));
	op->type = type;
	switch (type) {
	case KV_OP_PUT:
	case KV_OP_APPEND:
		op->key = kr_blob(r);
		op->value = kr_blob(r);
		return;
	case KV_OP_DELETE:
		op->key = kr_blob(r);
		op->range_end = kr_blob(r);
		return;
	case KV_OP_GET: {
		op->key = kr_blob(r);
		op->range_end = kr_blob(r);
		op->limit = kr_u64(r);
		uint8_t f = kr_u8(r);
		if (f & ~3u)
			r->bad = true;
		op->keys_only = f & 1;
		op->count_only = (f & 2) != 0;
		return;
	}
	default:
		r->bad = true;
	}
}

/* Decode a u32 count then that many ops into a malloc'd array. Min op size is 9 bytes. */
static int dec_ops(struct krd *r, struct kv_op **ops, size_t *n)
{
	uint32_t cnt = kr_u32(r);
	*ops = NULL;
	*n = 0;
	if (r->bad || cnt > kr_left(r) / 9) {
		r->bad = true;
		return KV_EMALFORMED;
	}
	if (cnt == 0)
		return 0;
	*ops = calloc(cnt, sizeof(**ops));
	if (!*ops)
		return KV_ENOMEM;
	*n = cnt;
	for (uint32_t i = 0; i < cnt && !r->bad; i++)
		dec_op(r, &(*ops)[i], (enum kv_op_type)kr_u8(r));
	return r->bad ? KV_EMALFORMED : 0;
}

int kv_cmd_set_time(void *cmd, size_t len, uint64_t time_ms)
{
	unsigned char *p = cmd;
	if (cmd == NULL || len < 9 || p[0] != CMD_VERSION)
		return KV_EMALFORMED;
	put_be64(p + 1, time_ms);
	return 0;
}

int kv_cmd_decode(const void *buf, size_t len, struct kv_cmd *cmd)
{
	struct krd r = {buf, len, 0, false};
	int rv = 0;
	memset(cmd, 0, sizeof(*cmd));
	if (!buf && len)
		return KV_EMALFORMED;
	uint8_t version = kr_u8(&r);
	if (version != CMD_VERSION && version != CMD_VERSION_V1)
		return KV_EMALFORMED;
	if (version == CMD_VERSION)
		cmd->time_ms = kr_u64(&r);
	cmd->client_id = kr_u64(&r);
	cmd->sequence = kr_u64(&r);
	cmd->type = (enum kv_op_type)kr_u8(&r);
	switch (cmd->type) {
	case KV_OP_PUT:
	case KV_OP_DELETE:
	case KV_OP_APPEND:
		dec_op(&r, &cmd->op, cmd->type);
		break;
	case KV_OP_TXN: {
		uint32_t cnt = kr_u32(&r);
		if (r.bad || cnt > kr_left(&r) / 10) {
			rv = KV_EMALFORMED;
			break;
		}
		if (cnt) {
			cmd->compares = calloc(cnt, sizeof(*cmd->compares));
			if (!cmd->compares) {
				rv = KV_ENOMEM;
				break;
			}
			cmd->n_compares = cnt;
		}
		for (uint32_t i = 0; i < cnt && !r.bad; i++) {
			struct kv_compare *c = &cmd->compares[i];
			c->target = (enum kv_cmp_target)kr_u8(&r);
			c->result = (enum kv_cmp_result)kr_u8(&r);
			c->key = kr_blob(&r);
			if (c->target == KV_CMP_VALUE)
				c->value = kr_blob(&r);
			else
				c->number = kr_u64(&r);
			if (!cmp_valid(c->target, c->result, c->number))
				r.bad = true;
		}
		if (r.bad) {
			rv = KV_EMALFORMED;
			break;
		}
		rv = dec_ops(&r, &cmd->success, &cmd->n_success);
		if (rv == 0)
			rv = dec_ops(&r, &cmd->failure, &cmd->n_failure);
		break;
	}
	default:
		r.bad = true;
	}
	if (rv == 0 && (r.bad || r.off != r.len))
		rv = KV_EMALFORMED;
	if (rv != 0) {
		kv_cmd_free(cmd);
		memset(cmd, 0, sizeof(*cmd));
	}
	return rv;
}

void kv_cmd_free(struct kv_cmd *cmd)
{
	if (!cmd)
		return;
	free(cmd->compares);
	free(cmd->success);
	free(cmd->failure);
	cmd->compares = NULL;
	cmd->success = cmd->failure = NULL;
	cmd->n_compares = cmd->n_success = cmd->n_failure = 0;
}

static int check_key(const struct kv_options *o, struct kv_bytes k, size_t extra)
{
	if (k.len == 0)
		return KV_EEMPTYKEY;
	if (k.len > (size_t)o->max_key_bytes + extra)
		return KV_EKEYSIZE;
	return 0;
}

static int check_op(const struct kv_options *o, const struct kv_op *op)
{
	int rv;
	switch (op->type) {
	case KV_OP_PUT:
	case KV_OP_APPEND:
		rv = check_key(o, op->key, 0);
		if (rv == 0 && op->value.len > o->max_value_bytes)
			rv = KV_EVALUESIZE;
		return rv;
	case KV_OP_DELETE:
	case KV_OP_GET:
		/* Range bounds may be one byte longer than a key: see kv_range_result.next_key. */
		rv = check_key(o, op->key, 1);
		if (rv == 0 && op->range_end.len > (size_t)o->max_key_bytes + 1)
			rv = KV_EKEYSIZE;
		if (rv == 0 && op->type == KV_OP_GET && op->limit > o->max_range_limit)
			rv = KV_ELIMIT;
		return rv;
	default:
		return KV_EINVAL;
	}
}

int kv_cmd_check(const struct kv_options *o, const struct kv_cmd *cmd)
{
	int rv;
	switch (cmd->type) {
	case KV_OP_PUT:
	case KV_OP_DELETE:
	case KV_OP_APPEND:
		return check_op(o, &cmd->op);
	case KV_OP_TXN:
		if (cmd->n_compares > o->max_txn_ops || cmd->n_success > o->max_txn_ops ||
		    cmd->n_failure > o->max_txn_ops)
			return KV_ETOOMANYOPS;
		for (size_t i = 0; i < cmd->n_compares; i++) {
			rv = check_key(o, cmd->compares[i].key, 0);
			if (rv != 0)
				return rv;
			if (cmd->compares[i].value.len > o->max_value_bytes)
				return KV_EVALUESIZE;
		}
		for (size_t i = 0; i < cmd->n_success; i++)
			if ((rv = check_op(o, &cmd->success[i])) != 0)
				return rv;
		for (size_t i = 0; i < cmd->n_failure; i++)
			if ((rv = check_op(o, &cmd->failure[i])) != 0)
				return rv;
		return 0;
	default:
		return KV_EINVAL;
	}
}

/* ---- results -------------------------------------------------------------------------- */

void enc_range_result(struct kbuf *b, const struct kv_range_result *rr)
{
	kb_u64(b, rr->count);
	kb_u8(b, rr->more ? 1 : 0);
	kb_u32(b, (uint32_t)rr->n);
	for (size_t i = 0; i < rr->n; i++) {
		const struct kv_kv *kv = &rr->kvs[i];
		kb_blob(b, kv->key.p, kv->key.len);
		kb_blob(b, kv->value.p, kv->value.len);
		kb_u64(b, kv->create_revision);
		kb_u64(b, kv->mod_revision);
		kb_u64(b, kv->version);
	}
	if (rr->more)
		kb_blob(b, rr->next_key.p, rr->next_key.len);
}

void kv_range_result_free(struct kv_range_result *r)
{
	if (!r)
		return;
	free(r->kvs);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* Decode a range body; copies bytes into one data block. out is zeroed on entry. */
static int dec_range(struct krd *r, struct kv_range_result *out)
{
	memset(out, 0, sizeof(*out));
	out->count = kr_u64(r);
	uint8_t more = kr_u8(r);
	uint32_t n = kr_u32(r);
	/* 32 = the smallest encoded kv (two empty blobs and three u64). */
	if (r->bad || more > 1 || n > kr_left(r) / 32 || n > out->count)
		return KV_EMALFORMED;
	out->more = more;
	size_t cap = kr_left(r); /* every copied byte comes from the input */
	if (n) {
		out->kvs = calloc(n, sizeof(*out->kvs));
		if (!out->kvs)
			return KV_ENOMEM;
	}
	if (cap) {
		out->data = malloc(cap);
		if (!out->data) {
			kv_range_result_free(out);
			return KV_ENOMEM;
		}
	}
	size_t used = 0;
	struct kv_bytes prev = {NULL, 0};
	for (uint32_t i = 0; i < n && !r->bad; i++) {
		struct kv_kv *kv = &out->kvs[i];
		struct kv_bytes k = kr_blob(r), v = kr_blob(r);
		kv->create_revision = kr_u64(r);
		kv->mod_revision = kr_u64(r);
		kv->version = kr_u64(r);
		if (r->bad || k.len == 0 || (i && key_cmp(prev.p, prev.len, k.p, k.len) >= 0)) {
			r->bad = true;
			break;
		}
		prev = k;
		memcpy(out->data + used, k.p, k.len);
		kv->key.p = out->data + used;
		kv->key.len = k.len;
		used += k.len;
		if (v.len)
			memcpy(out->data + used, v.p, v.len);
		kv->value.p = v.len ? out->data + used : NULL;
		kv->value.len = v.len;
		used += v.len;
	}
	out->n = n;
	if (!r->bad && out->more) {
		struct kv_bytes k = kr_blob(r);
		if (!r->bad && k.len) {
			memcpy(out->data + used, k.p, k.len);
			out->next_key.p = out->data + used;
			out->next_key.len = k.len;
		} else {
			r->bad = true;
		}
	}
	return r->bad ? KV_EMALFORMED : 0;
}

int kv_result_decode(const void *buf, size_t len, struct kv_result *res)
{
	struct krd r = {buf, len, 0, false};
	int rv = 0;
	memset(res, 0, sizeof(*res));
	if (!buf && len)
		return KV_EMALFORMED;
	if (kr_u8(&r) != RESULT_VERSION)
		return KV_EMALFORMED;
	int32_t status = (int32_t)kr_u32(&r);
	res->status = status;
	res->revision = kr_u64(&r);
	uint8_t type = kr_u8(&r);
	res->type = (enum kv_op_type)type;
	if (status > 0 || status < KV_ERR_MIN || type > KV_OP_TXN || type == KV_OP_GET ||
	    (type == 0 && status == 0))
		r.bad = true;
	if (!r.bad && status == 0 && type == KV_OP_DELETE)
		res->deleted = kr_u64(&r);
	if (!r.bad && status == 0 && type == KV_OP_TXN) {
		uint8_t ok = kr_u8(&r);
		uint32_t n = kr_u32(&r);
		if (ok > 1 || n > kr_left(&r)) {
			r.bad = true;
		} else if (n) {
			res->succeeded = ok;
			res->responses = calloc(n, sizeof(*res->responses));
			if (!res->responses)
				return KV_ENOMEM;
			res->n_responses = n;
		} else {
			res->succeeded = ok;
		}
		for (uint32_t i = 0; i < n && !r.bad && rv == 0; i++) {
			struct kv_op_result *o = &res->responses[i];
			o->type = (enum kv_op_type)kr_u8(&r);
			switch (o->type) {
			case KV_OP_PUT:
			case KV_OP_APPEND:
				break;
			case KV_OP_DELETE:
				o->deleted = kr_u64(&r);
				break;
			case KV_OP_GET:
				rv = dec_range(&r, &o->range);
				break;
			default:
				r.bad = true;
			}
		}
	}
	if (rv == 0 && (r.bad || r.off != r.len))
		rv = KV_EMALFORMED;
	if (rv != 0)
		kv_result_free(res);
	return rv;
}

void kv_result_free(struct kv_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_responses; i++)
		kv_range_result_free(&r->responses[i].range);
	free(r->responses);
	memset(r, 0, sizeof(*r));
}

int result_validate(const unsigned char *p, size_t len)
{
	struct kv_result r;
	int rv = kv_result_decode(p, len, &r);
	kv_result_free(&r);
	return rv;
}

size_t kv_prefix_end(const void *key, size_t key_len, unsigned char *buf)
{
	const unsigned char *k = key;
	size_t n = key_len;
	while (n > 0 && k[n - 1] == 0xff)
		n--;
	if (n == 0) {
		buf[0] = 0;
		return 1;
	}
	memmove(buf, k, n);
	buf[n - 1]++;
	return n;
}
