/* The peer wire format: struct raft_message <-> raftkv.v1.RaftBatch / SnapshotChunk. */
#include "server/node/peer_codec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raftkv/v1/raft.pb-c.h"
/* The core's allocator: decoded entries arrays must be freeable by raft_message_release(). */
#include "server/raft/heap.h"

const char *peer_strerror(int code)
{
	switch (code) {
	case 0:
		return "ok";
#define PEER_ERR_CASE(name, value, text) \
	case name:                       \
		return text;
		PEER_ERR_MAP(PEER_ERR_CASE)
#undef PEER_ERR_CASE
	}
	return "unknown error";
}

__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, int code,
						      const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* calloc that never returns NULL for n == 0, so NULL always means out of memory. */
static void *xcalloc(size_t n, size_t size)
{
	return calloc(n == 0 ? 1 : n, size);
}

/* ---- encoding ------------------------------------------------------------------------- */

/* Scratch space for one encode: the protobuf-c structs point at each other and into the
 * caller's messages (payloads are not copied before packing). */
struct enc {
	Raftkv__V1__RaftMessage *pm;
	Raftkv__V1__RaftMessage **pmp;
	Raftkv__V1__RaftEntry *pe;
	Raftkv__V1__RaftEntry **pep;
	Raftkv__V1__SnapshotMeta *ps;
	Raftkv__V1__ConfMember *pc;
	Raftkv__V1__ConfMember **pcp;
};

static void enc_free(struct enc *e)
{
	free(e->pm);
	free(e->pmp);
	free(e->pe);
	free(e->pep);
	free(e->ps);
	free(e->pc);
	free(e->pcp);
}

static int enc_alloc(struct enc *e, const struct raft_message *msgs, size_t n)
{
	size_t n_entries = 0, n_snaps = 0;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].type == RAFT_MSG_APPEND)
			n_entries += msgs[i].n_entries;
		if (msgs[i].type == RAFT_MSG_SNAPSHOT)
			n_snaps++;
	}
	memset(e, 0, sizeof(*e));
	e->pm = xcalloc(n, sizeof(*e->pm));
	e->pmp = xcalloc(n, sizeof(*e->pmp));
	e->pe = xcalloc(n_entries, sizeof(*e->pe));
	e->pep = xcalloc(n_entries, sizeof(*e->pep));
	e->ps = xcalloc(n_snaps, sizeof(*e->ps));
	e->pc = xcalloc(n_snaps * RAFT_MAX_MEMBERS, sizeof(*e->pc));
	e->pcp = xcalloc(n_snaps * RAFT_MAX_MEMBERS, sizeof(*e->pcp));
	if (!e->pm || !e->pmp || !e->pe || !e->pep || !e->ps || !e->pc || !e->pcp) {
		enc_free(e);
		return PEER_ENOMEM;
	}
	return 0;
}

/* Fill pm from m, taking entry and member structs from the cursors in e. */
static void enc_message(struct enc *e, size_t *ent, size_t *snap, const struct raft_message *m,
			Raftkv__V1__RaftMessage *pm)
{
	raftkv__v1__raft_message__init(pm);
	pm->type = m->type;
	pm->from = m->from;
	pm->to = m->to;
	pm->term = m->term;
	switch (m->type) {
	case RAFT_MSG_APPEND:
		pm->prev_index = m->prev_index;
		pm->prev_term = m->prev_term;
		pm->commit = m->commit;
		pm->n_entries = m->n_entries;
		pm->entries = &e->pep[*ent];
		for (size_t i = 0; i < m->n_entries; i++, (*ent)++) {
			const struct raft_entry *x = &m->entries[i];
			Raftkv__V1__RaftEntry *pe = &e->pe[*ent];
			raftkv__v1__raft_entry__init(pe);
			pe->term = x->term;
			pe->index = x->index;
			pe->type = x->type;
			if (x->buf != NULL && x->buf->len > 0) {
				pe->data.data = x->buf->data;
				pe->data.len = x->buf->len;
			}
			e->pep[*ent] = pe;
		}
		break;
	case RAFT_MSG_APPEND_RESP:
		pm->reject = m->reject;
		pm->index = m->index;
		pm->hint_index = m->hint_index;
		pm->hint_term = m->hint_term;
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		pm->last_index = m->last_index;
		pm->last_term = m->last_term;
		pm->transfer = m->transfer;
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		pm->reject = m->reject;
		break;
	case RAFT_MSG_HEARTBEAT:
		pm->commit = m->commit;
		pm->round = m->round;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		pm->round = m->round;
		break;
	case RAFT_MSG_SNAPSHOT: {
		const struct raft_snapshot_meta *sm = &m->snapshot;
		Raftkv__V1__SnapshotMeta *ps = &e->ps[*snap];
		raftkv__v1__snapshot_meta__init(ps);
		ps->index = sm->index;
		ps->term = sm->term;
		ps->conf_index = sm->conf_index;
		ps->n_members = sm->conf.n;
		ps->members = &e->pcp[*snap * RAFT_MAX_MEMBERS];
		for (unsigned i = 0; i < sm->conf.n; i++) {
			Raftkv__V1__ConfMember *pc = &e->pc[*snap * RAFT_MAX_MEMBERS + i];
			raftkv__v1__conf_member__init(pc);
			pc->id = sm->conf.members[i].id;
			pc->role = sm->conf.members[i].role;
			/* protobuf-c's string fields are not const; packing only reads them. */
			pc->addr = (char *)sm->conf.members[i].addr;
			ps->members[i] = pc;
		}
		pm->snapshot = ps;
		(*snap)++;
		break;
	}
	default: /* TIMEOUT_NOW: only the common fields */
		break;
	}
}

/* The core's invariants, checked so an encode never reads out of bounds. */
static bool enc_valid(const struct raft_message *m)
{
	if (m->type == RAFT_MSG_APPEND && m->n_entries > 0 && m->entries == NULL)
		return false;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		if (m->snapshot.conf.n > RAFT_MAX_MEMBERS)
			return false;
		for (unsigned i = 0; i < m->snapshot.conf.n; i++)
			if (memchr(m->snapshot.conf.members[i].addr, 0, RAFT_ADDR_MAX) == NULL)
				return false;
	}
	return true;
}

static int pack(const ProtobufCMessage *pm, void **out, size_t *len)
{
	size_t size = protobuf_c_message_get_packed_size(pm);
	uint8_t *buf = malloc(size == 0 ? 1 : size);
	if (buf == NULL)
		return PEER_ENOMEM;
	size_t done = protobuf_c_message_pack(pm, buf);
	if (done != size) {
		free(buf);
		return PEER_EINVAL; /* NEVER: protobuf-c packs what it measured */
	}
	*out = buf;
	*len = size;
	return 0;
}

int peer_batch_encode(const struct raft_message *msgs, size_t n, uint32_t alarms, void **out,
		      size_t *len)
{
	struct enc e;
	int rv;
	for (size_t i = 0; i < n; i++)
		if (!enc_valid(&msgs[i]))
			return PEER_EINVAL;
	rv = enc_alloc(&e, msgs, n);
	if (rv != 0)
		goto err;
	size_t ent = 0, snap = 0;
	for (size_t i = 0; i < n; i++) {
		enc_message(&e, &ent, &snap, &msgs[i], &e.pm[i]);
		e.pmp[i] = &e.pm[i];
	}
	Raftkv__V1__RaftBatch b = RAFTKV__V1__RAFT_BATCH__INIT;
	b.n_messages = n;
	b.messages = e.pmp;
	b.alarms = alarms;
	rv = pack(&b.base, out, len);
	enc_free(&e);
	if (rv != 0)
		goto err;
	return 0;
err:
	return rv;
}

int peer_chunk_encode(const struct raft_message *first, uint64_t offset, const void *data,
		      size_t len, bool last, uint64_t size, void **out, size_t *outlen)
{
	struct enc e;
	int rv;
	if (first != NULL && (first->type != RAFT_MSG_SNAPSHOT || !enc_valid(first)))
		return PEER_EINVAL;
	rv = enc_alloc(&e, first, first != NULL ? 1 : 0);
	if (rv != 0)
		goto err;
	Raftkv__V1__SnapshotChunk c = RAFTKV__V1__SNAPSHOT_CHUNK__INIT;
	if (first != NULL) {
		size_t ent = 0, snap = 0;
		enc_message(&e, &ent, &snap, first, &e.pm[0]);
		c.message = &e.pm[0];
	}
	c.offset = offset;
	c.data.data = (uint8_t *)data; /* read only by pack */
	c.data.len = data != NULL ? len : 0;
	c.last = last;
	c.size = last ? size : 0;
	rv = pack(&c.base, out, outlen);
	enc_free(&e);
	if (rv != 0)
		goto err;
	return 0;
err:
	return rv;
}

/* ---- decoding ------------------------------------------------------------------------- */

/* Check the entries of an APPEND before allocating anything for them. */
static int check_entries(const Raftkv__V1__RaftMessage *pm, char *err, size_t errlen)
{
	if (pm->n_entries > PEER_MAX_ENTRIES)
		return fail(err, errlen, PEER_EINVAL, "%zu entries (at most %u)", pm->n_entries,
			    PEER_MAX_ENTRIES);
	if (pm->prev_index > UINT64_MAX - pm->n_entries)
		return fail(err, errlen, PEER_EINVAL, "entry indexes overflow after %llu",
			    (unsigned long long)pm->prev_index);
	uint64_t prev_term = pm->prev_term;
	for (size_t i = 0; i < pm->n_entries; i++) {
		const Raftkv__V1__RaftEntry *pe = pm->entries[i];
		uint64_t want = pm->prev_index + 1 + i;
		if (pe->index != want)
			return fail(err, errlen, PEER_EINVAL,
				    "entry %zu has index %llu, expected %llu (not contiguous)", i,
				    (unsigned long long)pe->index, (unsigned long long)want);
		if (pe->type < RAFT_ENTRY_NORMAL || pe->type > RAFT_ENTRY_CONF)
			return fail(err, errlen, PEER_EINVAL, "entry %llu has unknown type %u",
				    (unsigned long long)pe->index, pe->type);
		/* Log matching: terms never decrease along a log, and a leader only holds
		 * entries of terms up to its own. */
		if (pe->term == 0 || pe->term < prev_term || pe->term > pm->term)
			return fail(err, errlen, PEER_EINVAL,
				    "entry %llu has term %llu (previous %llu, message term %llu)",
				    (unsigned long long)pe->index, (unsigned long long)pe->term,
				    (unsigned long long)prev_term, (unsigned long long)pm->term);
		prev_term = pe->term;
		if (pe->type == RAFT_ENTRY_CONF) {
			struct raft_conf conf;
			if (raft_conf_decode(pe->data.data, pe->data.len, &conf) != 0)
				return fail(err, errlen, PEER_EINVAL,
					    "entry %llu: malformed configuration",
					    (unsigned long long)pe->index);
		}
	}
	return 0;
}

static int decode_meta(const Raftkv__V1__SnapshotMeta *ps, struct raft_snapshot_meta *sm, char *err,
		       size_t errlen)
{
	if (ps == NULL)
		return fail(err, errlen, PEER_EINVAL, "snapshot message without metadata");
	if (ps->index == 0 || ps->term == 0)
		return fail(err, errlen, PEER_EINVAL, "snapshot at index %llu term %llu",
			    (unsigned long long)ps->index, (unsigned long long)ps->term);
	if (ps->conf_index > ps->index)
		return fail(err, errlen, PEER_EINVAL, "snapshot conf_index %llu > index %llu",
			    (unsigned long long)ps->conf_index, (unsigned long long)ps->index);
	if (ps->n_members > RAFT_MAX_MEMBERS)
		return fail(err, errlen, PEER_EINVAL, "snapshot has %zu members (at most %d)",
			    ps->n_members, RAFT_MAX_MEMBERS);
	memset(sm, 0, sizeof(*sm));
	sm->index = ps->index;
	sm->term = ps->term;
	sm->conf_index = ps->conf_index;
	for (size_t i = 0; i < ps->n_members; i++) {
		const Raftkv__V1__ConfMember *pc = ps->members[i];
		if (pc->id == 0)
			return fail(err, errlen, PEER_EINVAL, "snapshot member %zu has id 0", i);
		for (size_t j = 0; j < i; j++)
			if (ps->members[j]->id == pc->id)
				return fail(err, errlen, PEER_EINVAL,
					    "snapshot member id %llu appears twice",
					    (unsigned long long)pc->id);
		if (pc->role != RAFT_VOTER && pc->role != RAFT_LEARNER)
			return fail(err, errlen, PEER_EINVAL, "snapshot member %llu has role %u",
				    (unsigned long long)pc->id, pc->role);
		const char *addr = pc->addr != NULL ? pc->addr : "";
		size_t alen = strlen(addr);
		if (alen >= RAFT_ADDR_MAX)
			return fail(err, errlen, PEER_EINVAL,
				    "snapshot member %llu: address of %zu bytes (at most %d)",
				    (unsigned long long)pc->id, alen, RAFT_ADDR_MAX - 1);
		struct raft_member *mb = &sm->conf.members[i];
		mb->id = pc->id;
		mb->role = (uint8_t)pc->role;
		memcpy(mb->addr, addr, alen + 1);
	}
	sm->conf.n = (unsigned)ps->n_members;
	return 0;
}

/* Validate pm and fill *m. On failure *m holds nothing to free. */
static int decode_message(const Raftkv__V1__RaftMessage *pm, struct raft_message *m, char *err,
			  size_t errlen)
{
	int rv;
	memset(m, 0, sizeof(*m));
	if (pm->type < 1 || pm->type > RAFT_MSG_TYPE_MAX)
		return fail(err, errlen, PEER_EINVAL, "unknown message type %u", pm->type);
	if (pm->from == 0 || pm->to == 0)
		return fail(err, errlen, PEER_EINVAL, "%s from %llu to %llu: node id 0",
			    raft_msg_type_name((int)pm->type), (unsigned long long)pm->from,
			    (unsigned long long)pm->to);
	m->type = (uint8_t)pm->type;
	m->from = pm->from;
	m->to = pm->to;
	m->term = pm->term;
	switch (m->type) {
	case RAFT_MSG_APPEND:
		m->prev_index = pm->prev_index;
		m->prev_term = pm->prev_term;
		m->commit = pm->commit;
		rv = check_entries(pm, err, errlen);
		if (rv != 0)
			goto err;
		if (pm->n_entries == 0)
			break;
		/* Bounded by the input: each entry took at least two bytes of it. */
		m->entries = raft_heap_zalloc(pm->n_entries * sizeof(*m->entries));
		m->n_entries = pm->n_entries;
		for (size_t i = 0; i < pm->n_entries; i++) {
			const Raftkv__V1__RaftEntry *pe = pm->entries[i];
			m->entries[i].term = pe->term;
			m->entries[i].index = pe->index;
			m->entries[i].type = (uint8_t)pe->type;
			/* The core's convention: an empty payload is a NULL buffer. */
			if (pe->data.len > 0)
				m->entries[i].buf = raft_buf_new(pe->data.data, pe->data.len);
		}
		break;
	case RAFT_MSG_APPEND_RESP:
		m->reject = pm->reject;
		m->index = pm->index;
		m->hint_index = pm->hint_index;
		m->hint_term = pm->hint_term;
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		m->last_index = pm->last_index;
		m->last_term = pm->last_term;
		m->transfer = pm->transfer;
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		m->reject = pm->reject;
		break;
	case RAFT_MSG_HEARTBEAT:
		m->commit = pm->commit;
		m->round = pm->round;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		m->round = pm->round;
		break;
	case RAFT_MSG_SNAPSHOT:
		rv = decode_meta(pm->snapshot, &m->snapshot, err, errlen);
		if (rv != 0)
			goto err;
		break;
	default: /* TIMEOUT_NOW */
		break;
	}
	return 0;
err:
	memset(m, 0, sizeof(*m));
	return rv;
}

/* Prefix err (already holding the inner message) with the caller's context. */
static void wrap(char *err, size_t errlen, const char *ctx)
{
	if (err == NULL || errlen == 0)
		return;
	char inner[256];
	snprintf(inner, sizeof(inner), "%s", err);
	snprintf(err, errlen, "%s: %s", ctx, inner);
}

int peer_batch_decode(const void *buf, size_t len, struct raft_message **msgs, size_t *n,
		      uint32_t *alarms, char *err, size_t errlen)
{
	int rv;
	size_t i = 0;
	struct raft_message *out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = 0;
	Raftkv__V1__RaftBatch *b = raftkv__v1__raft_batch__unpack(NULL, len, buf);
	if (b == NULL) {
		rv = fail(err, errlen, PEER_EMALFORMED, "raft batch: malformed protobuf");
		goto err;
	}
	if (b->n_messages > 0) {
		out = calloc(b->n_messages, sizeof(*out));
		if (out == NULL) {
			rv = fail(err, errlen, PEER_ENOMEM, "raft batch: out of memory");
			goto err_unpacked;
		}
	}
	for (i = 0; i < b->n_messages; i++) {
		rv = decode_message(b->messages[i], &out[i], err, errlen);
		if (rv != 0) {
			char ctx[64];
			snprintf(ctx, sizeof(ctx), "raft batch: message %zu", i);
			wrap(err, errlen, ctx);
			goto err_decoded;
		}
	}
	*msgs = out;
	*n = b->n_messages;
	if (alarms != NULL)
		*alarms = b->alarms;
	raftkv__v1__raft_batch__free_unpacked(b, NULL);
	return 0;
err_decoded:
	peer_messages_free(out, i);
err_unpacked:
	raftkv__v1__raft_batch__free_unpacked(b, NULL);
err:
	return rv;
}

void peer_messages_free(struct raft_message *msgs, size_t n)
{
	if (msgs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		raft_message_release(&msgs[i]);
	free(msgs);
}

int peer_chunk_decode(const void *buf, size_t len, struct peer_chunk *c, char *err, size_t errlen)
{
	int rv;
	memset(c, 0, sizeof(*c));
	if (err != NULL && errlen > 0)
		err[0] = 0;
	Raftkv__V1__SnapshotChunk *pc = raftkv__v1__snapshot_chunk__unpack(NULL, len, buf);
	if (pc == NULL) {
		rv = fail(err, errlen, PEER_EMALFORMED, "snapshot chunk: malformed protobuf");
		goto err;
	}
	if (pc->offset > UINT64_MAX - pc->data.len) {
		rv = fail(err, errlen, PEER_EINVAL, "snapshot chunk: offset %llu overflows",
			  (unsigned long long)pc->offset);
		goto err_unpacked;
	}
	if (pc->last && pc->size != pc->offset + pc->data.len) {
		rv = fail(err, errlen, PEER_EINVAL,
			  "snapshot chunk: last chunk ends at %llu but size is %llu",
			  (unsigned long long)(pc->offset + pc->data.len),
			  (unsigned long long)pc->size);
		goto err_unpacked;
	}
	if (pc->message != NULL) {
		if (pc->offset != 0) {
			rv = fail(err, errlen, PEER_EINVAL,
				  "snapshot chunk: message on a chunk at offset %llu",
				  (unsigned long long)pc->offset);
			goto err_unpacked;
		}
		if (pc->message->type != RAFT_MSG_SNAPSHOT) {
			rv = fail(err, errlen, PEER_EINVAL,
				  "snapshot chunk: message of type %u, not InstallSnapshot",
				  pc->message->type);
			goto err_unpacked;
		}
		rv = decode_message(pc->message, &c->message, err, errlen);
		if (rv != 0) {
			wrap(err, errlen, "snapshot chunk");
			goto err_unpacked;
		}
		c->has_message = true;
	}
	c->offset = pc->offset;
	c->len = pc->data.len;
	c->data = c->len > 0 ? pc->data.data : NULL;
	c->last = pc->last;
	c->size = pc->last ? pc->size : 0;
	c->priv = pc;
	return 0;
err_unpacked:
	raftkv__v1__snapshot_chunk__free_unpacked(pc, NULL);
err:
	memset(c, 0, sizeof(*c));
	return rv;
}

void peer_chunk_free(struct peer_chunk *c)
{
	if (c == NULL)
		return;
	raft_message_release(&c->message);
	if (c->priv != NULL)
		raftkv__v1__snapshot_chunk__free_unpacked(c->priv, NULL);
	memset(c, 0, sizeof(*c));
}
