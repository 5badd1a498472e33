/* The peer wire codec (server/node/peer_codec.c): round trips of every message type and of
 * snapshot chunks, each validation rule, and a seeded fuzz of both decoders. */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/prng.h"
#include "cunit_main.h"
#include "raftkv/v1/raft.pb-c.h"
#include "server/node/peer_codec.h"

/* ---- helpers -------------------------------------------------------------------------- */

static struct raft_conf three_members(void)
{
	struct raft_conf c;
	memset(&c, 0, sizeof(c));
	CU_ASSERT_EQUAL(raft_conf_add(&c, 1, RAFT_VOTER, "n1=10.0.0.1:7001"), 0);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 2, RAFT_VOTER, "n2=10.0.0.2:7001"), 0);
	CU_ASSERT_EQUAL(raft_conf_add(&c, 7, RAFT_LEARNER, ""), 0);
	return c;
}

/* One message of `type` with every field that type carries set to something distinct. The
 * entries array (APPEND) is the caller's to release with raft_message_release. */
static void sample(struct raft_message *m, uint8_t type)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = 3;
	m->to = 0x1122334455667788ull;
	m->term = 42;
	switch (type) {
	case RAFT_MSG_APPEND: {
		m->prev_index = 99;
		m->prev_term = 40;
		m->commit = 97;
		m->n_entries = 4;
		m->entries = calloc(4, sizeof(*m->entries));
		CU_ASSERT_PTR_NOT_NULL_FATAL(m->entries);
		struct raft_conf c = three_members();
		for (size_t i = 0; i < 4; i++) {
			m->entries[i].index = 100 + i;
			m->entries[i].term = i < 2 ? 41 : 42;
		}
		m->entries[0].type = RAFT_ENTRY_NORMAL;
		m->entries[0].buf = raft_buf_new("hello", 5);
		m->entries[1].type = RAFT_ENTRY_NOOP; /* empty payload: NULL */
		m->entries[2].type = RAFT_ENTRY_CONF;
		m->entries[2].buf = raft_conf_encode(&c);
		m->entries[3].type = RAFT_ENTRY_NORMAL;
		m->entries[3].buf = raft_buf_new("\0\xff\0", 3);
		break;
	}
	case RAFT_MSG_APPEND_RESP:
		m->reject = true;
		m->index = 120;
		m->hint_index = 110;
		m->hint_term = 39;
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		m->last_index = 1000;
		m->last_term = 41;
		m->transfer = true;
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		m->reject = true;
		break;
	case RAFT_MSG_HEARTBEAT:
		m->commit = 77;
		m->round = 5;
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		m->round = 6;
		break;
	case RAFT_MSG_SNAPSHOT:
		m->snapshot.index = 500;
		m->snapshot.term = 30;
		m->snapshot.conf_index = 450;
		m->snapshot.conf = three_members();
		break;
	default:
		break;
	}
}

/* The test-side release: sample() allocates entries with calloc. */
static void sample_free(struct raft_message *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		raft_buf_unref(m->entries[i].buf);
	free(m->entries);
	memset(m, 0, sizeof(*m));
}

static bool buf_equal(const struct raft_buf *a, const struct raft_buf *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void assert_same(const struct raft_message *a, const struct raft_message *b)
{
	CU_ASSERT_EQUAL(a->type, b->type);
	CU_ASSERT_EQUAL(a->from, b->from);
	CU_ASSERT_EQUAL(a->to, b->to);
	CU_ASSERT_EQUAL(a->term, b->term);
	CU_ASSERT_EQUAL(a->prev_index, b->prev_index);
	CU_ASSERT_EQUAL(a->prev_term, b->prev_term);
	CU_ASSERT_EQUAL(a->commit, b->commit);
	CU_ASSERT_EQUAL(a->reject, b->reject);
	CU_ASSERT_EQUAL(a->index, b->index);
	CU_ASSERT_EQUAL(a->hint_index, b->hint_index);
	CU_ASSERT_EQUAL(a->hint_term, b->hint_term);
	CU_ASSERT_EQUAL(a->last_index, b->last_index);
	CU_ASSERT_EQUAL(a->last_term, b->last_term);
	CU_ASSERT_EQUAL(a->transfer, b->transfer);
	CU_ASSERT_EQUAL(a->round, b->round);
	CU_ASSERT_EQUAL_FATAL(a->n_entries, b->n_entries);
	for (size_t i = 0; i < a->n_entries; i++) {
		CU_ASSERT_EQUAL(a->entries[i].term, b->entries[i].term);
		CU_ASSERT_EQUAL(a->entries[i].index, b->entries[i].index);
		CU_ASSERT_EQUAL(a->entries[i].type, b->entries[i].type);
		CU_ASSERT(buf_equal(a->entries[i].buf, b->entries[i].buf));
	}
	CU_ASSERT_EQUAL(a->snapshot.index, b->snapshot.index);
	CU_ASSERT_EQUAL(a->snapshot.term, b->snapshot.term);
	CU_ASSERT_EQUAL(a->snapshot.conf_index, b->snapshot.conf_index);
	CU_ASSERT_EQUAL_FATAL(a->snapshot.conf.n, b->snapshot.conf.n);
	for (unsigned i = 0; i < a->snapshot.conf.n; i++) {
		const struct raft_member *x = &a->snapshot.conf.members[i];
		const struct raft_member *y = &b->snapshot.conf.members[i];
		CU_ASSERT_EQUAL(x->id, y->id);
		CU_ASSERT_EQUAL(x->role, y->role);
		CU_ASSERT_STRING_EQUAL(x->addr, y->addr);
	}
}

static void *pack_msg(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	void *buf = malloc(*len + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(protobuf_c_message_pack(m, buf), *len);
	return buf;
}

/* Decode a batch of one hand-made protobuf message; returns the code, err filled. */
static int decode_one(const Raftkv__V1__RaftMessage *pm, char *err, size_t errlen)
{
	Raftkv__V1__RaftMessage *ptr = (Raftkv__V1__RaftMessage *)pm;
	Raftkv__V1__RaftBatch b = RAFTKV__V1__RAFT_BATCH__INIT;
	b.n_messages = 1;
	b.messages = &ptr;
	size_t len;
	void *buf = pack_msg(&b.base, &len);
	struct raft_message *msgs = NULL;
	size_t n = 0;
	int rv = peer_batch_decode(buf, len, &msgs, &n, NULL, err, errlen);
	if (rv == 0)
		peer_messages_free(msgs, n);
	else
		CU_ASSERT(err[0] != 0);
	free(buf);
	return rv;
}

/* ---- round trips ---------------------------------------------------------------------- */

static void test_roundtrip_each_type(void)
{
	for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
		struct raft_message m, *out = NULL;
		size_t n = 0, len = 0;
		void *buf = NULL;
		char err[256];
		sample(&m, t);
		CU_ASSERT_EQUAL_FATAL(peer_batch_encode(&m, 1, 0, &buf, &len), 0);
		int rv = peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err));
		if (rv != 0)
			fprintf(stderr, "type %s: %s\n", raft_msg_type_name(t), err);
		CU_ASSERT_EQUAL_FATAL(rv, 0);
		CU_ASSERT_EQUAL_FATAL(n, 1);
		assert_same(&m, &out[0]);
		peer_messages_free(out, n);
		free(buf);
		sample_free(&m);
	}
}

static void test_roundtrip_batch(void)
{
	struct raft_message in[RAFT_MSG_TYPE_MAX], *out = NULL;
	for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++)
		sample(&in[t - 1], t);
	void *buf = NULL;
	size_t len = 0, n = 0;
	char err[256];
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(in, RAFT_MSG_TYPE_MAX, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(n, RAFT_MSG_TYPE_MAX);
	for (size_t i = 0; i < n; i++)
		assert_same(&in[i], &out[i]);
	/* Decoded payloads are ordinary raft_bufs: a reference outlives the message. */
	struct raft_buf *keep = raft_buf_ref(out[0].entries[0].buf);
	CU_ASSERT_EQUAL(out[0].entries[1].buf, NULL); /* empty payload */
	/* raft_message_release frees one decoded message like any other. */
	raft_message_release(&out[0]);
	CU_ASSERT_EQUAL(out[0].n_entries, 0);
	CU_ASSERT_EQUAL(keep->len, 5);
	CU_ASSERT_EQUAL(memcmp(keep->data, "hello", 5), 0);
	raft_buf_unref(keep);
	peer_messages_free(out, n);
	free(buf);
	for (size_t i = 0; i < RAFT_MSG_TYPE_MAX; i++)
		sample_free(&in[i]);
}

static void test_empty_batch(void)
{
	void *buf = NULL;
	size_t len = 99, n = 99;
	struct raft_message *out = (void *)1;
	char err[64];
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(NULL, 0, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL(len, 0);
	CU_ASSERT_EQUAL(peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_PTR_NULL(out);
	peer_messages_free(out, n);
	free(buf);
}

/* The sender's alarm bits ride on every batch, an empty one (a hello) included. */
static void test_batch_alarms(void)
{
	void *buf = NULL;
	size_t len = 0, n = 0;
	struct raft_message *out = NULL;
	uint32_t alarms = 0;
	char err[64];
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(NULL, 0, 1, &buf, &len), 0);
	CU_ASSERT(len > 0);
	CU_ASSERT_EQUAL(peer_batch_decode(buf, len, &out, &n, &alarms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(alarms, 1);
	CU_ASSERT_EQUAL(n, 0);
	free(buf);
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 3};
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(&m, 1, 0, &buf, &len), 0);
	alarms = 99;
	CU_ASSERT_EQUAL(peer_batch_decode(buf, len, &out, &n, &alarms, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(alarms, 0);
	CU_ASSERT_EQUAL(n, 1);
	peer_messages_free(out, n);
	free(buf);
}

/* Fields a type does not carry are neither sent nor accepted. */
static void test_irrelevant_fields_ignored(void)
{
	Raftkv__V1__RaftEntry e = RAFTKV__V1__RAFT_ENTRY__INIT, *ep = &e;
	e.index = 5; /* would be invalid in an APPEND: not contiguous with prev_index 0 */
	e.type = 9;
	Raftkv__V1__SnapshotMeta sm = RAFTKV__V1__SNAPSHOT_META__INIT;
	Raftkv__V1__RaftMessage pm = RAFTKV__V1__RAFT_MESSAGE__INIT, *pp = &pm;
	pm.type = RAFT_MSG_HEARTBEAT;
	pm.from = 1;
	pm.to = 2;
	pm.commit = 3;
	pm.n_entries = 1;
	pm.entries = &ep;
	pm.snapshot = &sm;
	pm.last_index = 10;
	Raftkv__V1__RaftBatch b = RAFTKV__V1__RAFT_BATCH__INIT;
	b.n_messages = 1;
	b.messages = &pp;
	size_t len, n;
	void *buf = pack_msg(&b.base, &len);
	struct raft_message *out;
	char err[256];
	CU_ASSERT_EQUAL_FATAL(peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out[0].n_entries, 0);
	CU_ASSERT_PTR_NULL(out[0].entries);
	CU_ASSERT_EQUAL(out[0].last_index, 0);
	CU_ASSERT_EQUAL(out[0].commit, 3);
	peer_messages_free(out, n);
	free(buf);

	/* And the encoder sends only the type's fields. */
	struct raft_message m;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.from = 1;
	m.to = 2;
	m.term = 3;
	m.commit = 99;
	m.last_index = 98;
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(&m, 1, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(out[0].commit, 0);
	CU_ASSERT_EQUAL(out[0].last_index, 0);
	CU_ASSERT_EQUAL(out[0].term, 3);
	peer_messages_free(out, n);
	free(buf);
}

/* ---- validation ----------------------------------------------------------------------- */

static void test_reject_malformed(void)
{
	struct raft_message *out = NULL;
	size_t n = 0;
	char err[256] = "";
	static const unsigned char junk[] = {0x0a, 0x05, 0x08}; /* length beyond the input */
	CU_ASSERT_EQUAL(peer_batch_decode(junk, sizeof(junk), &out, &n, NULL, err, sizeof(err)),
			PEER_EMALFORMED);
	CU_ASSERT(strstr(err, "malformed") != NULL);
	static const unsigned char badwire[] = {0x0f}; /* field 1, wire type 7 */
	CU_ASSERT_EQUAL(peer_batch_decode(badwire, 1, &out, &n, NULL, err, sizeof(err)),
			PEER_EMALFORMED);
	CU_ASSERT_STRING_EQUAL(peer_strerror(PEER_EINVAL), "invalid message");
	CU_ASSERT_STRING_EQUAL(peer_strerror(0), "ok");
	CU_ASSERT_STRING_EQUAL(peer_strerror(12345), "unknown error");
}

static void test_reject_message_fields(void)
{
	char err[256];
	Raftkv__V1__RaftMessage pm = RAFTKV__V1__RAFT_MESSAGE__INIT;
	pm.from = 1;
	pm.to = 2;
	pm.type = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "message 0: unknown message type 0") != NULL);
	pm.type = RAFT_MSG_TYPE_MAX + 1;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	pm.type = 0xffffffffu;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	pm.type = RAFT_MSG_VOTE;
	pm.from = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	pm.from = 1;
	pm.to = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	pm.to = 2;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
}

/* An APPEND of n entries at prev_index+1.. of term t, all NORMAL with a 1-byte payload. */
struct append {
	Raftkv__V1__RaftMessage pm;
	Raftkv__V1__RaftEntry *e;
	Raftkv__V1__RaftEntry **ep;
};

static void append_init(struct append *a, size_t n, uint64_t prev_index, uint64_t term)
{
	static uint8_t byte = 'x';
	raftkv__v1__raft_message__init(&a->pm);
	a->pm.type = RAFT_MSG_APPEND;
	a->pm.from = 1;
	a->pm.to = 2;
	a->pm.term = term;
	a->pm.prev_index = prev_index;
	a->pm.prev_term = term;
	a->e = calloc(n + 1, sizeof(*a->e));
	a->ep = calloc(n + 1, sizeof(*a->ep));
	CU_ASSERT_FATAL(a->e != NULL && a->ep != NULL);
	for (size_t i = 0; i < n; i++) {
		raftkv__v1__raft_entry__init(&a->e[i]);
		a->e[i].index = prev_index + 1 + i;
		a->e[i].term = term;
		a->e[i].type = RAFT_ENTRY_NORMAL;
		a->e[i].data.data = &byte;
		a->e[i].data.len = 1;
		a->ep[i] = &a->e[i];
	}
	a->pm.n_entries = n;
	a->pm.entries = a->ep;
}

static void append_free(struct append *a)
{
	free(a->e);
	free(a->ep);
}

static void expect_append(struct append *a, int want, const char *needle)
{
	char err[256] = "";
	int rv = decode_one(&a->pm, err, sizeof(err));
	CU_ASSERT_EQUAL(rv, want);
	if (needle != NULL && strstr(err, needle) == NULL) {
		fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, needle);
		CU_FAIL("error message");
	}
}

static void test_reject_entries(void)
{
	struct append a;
	append_init(&a, 3, 10, 5);
	expect_append(&a, 0, NULL);
	a.e[1].index = 13; /* gap */
	expect_append(&a, PEER_EINVAL, "not contiguous");
	a.e[1].index = 12;
	a.e[0].index = 10; /* overlaps prev_index */
	expect_append(&a, PEER_EINVAL, "not contiguous");
	a.e[0].index = 11;
	a.e[2].type = 0;
	expect_append(&a, PEER_EINVAL, "unknown type 0");
	a.e[2].type = 4;
	expect_append(&a, PEER_EINVAL, "unknown type 4");
	a.e[2].type = RAFT_ENTRY_NOOP;
	expect_append(&a, 0, NULL);
	a.e[1].term = 6; /* above the message's term */
	expect_append(&a, PEER_EINVAL, "term 6");
	a.e[1].term = 4; /* below prev_term */
	expect_append(&a, PEER_EINVAL, "term 4");
	a.pm.prev_term = 3;
	a.e[0].term = 4;
	a.e[2].term = 3; /* decreasing */
	expect_append(&a, PEER_EINVAL, "term 3");
	a.e[2].term = 5;
	expect_append(&a, 0, NULL);
	a.e[0].term = 0;
	a.pm.prev_term = 0;
	expect_append(&a, PEER_EINVAL, "term 0");
	a.e[0].term = 4;
	/* A configuration entry must decode. */
	a.e[2].type = RAFT_ENTRY_CONF;
	expect_append(&a, PEER_EINVAL, "malformed configuration");
	struct raft_conf c = three_members();
	struct raft_buf *cb = raft_conf_encode(&c);
	a.e[2].data.data = cb->data;
	a.e[2].data.len = cb->len;
	expect_append(&a, 0, NULL);
	raft_buf_unref(cb);
	append_free(&a);

	/* Indexes must not wrap around. */
	append_init(&a, 2, UINT64_MAX - 1, 5);
	expect_append(&a, PEER_EINVAL, "overflow");
	append_free(&a);
	append_init(&a, 1, UINT64_MAX - 1, 5);
	expect_append(&a, 0, NULL);
	append_free(&a);

	/* At most PEER_MAX_ENTRIES per message. */
	append_init(&a, PEER_MAX_ENTRIES, 0, 1);
	expect_append(&a, 0, NULL);
	append_free(&a);
	append_init(&a, PEER_MAX_ENTRIES + 1, 0, 1);
	expect_append(&a, PEER_EINVAL, "entries (at most");
	append_free(&a);
}

static void test_reject_snapshot_meta(void)
{
	char err[256];
	Raftkv__V1__ConfMember cm[RAFT_MAX_MEMBERS + 1], *cp[RAFT_MAX_MEMBERS + 1];
	char addrs[RAFT_MAX_MEMBERS + 1][16];
	for (size_t i = 0; i <= RAFT_MAX_MEMBERS; i++) {
		raftkv__v1__conf_member__init(&cm[i]);
		cm[i].id = i + 1;
		cm[i].role = RAFT_VOTER;
		snprintf(addrs[i], sizeof(addrs[i]), "n%zu=h:1", i + 1);
		cm[i].addr = addrs[i];
		cp[i] = &cm[i];
	}
	Raftkv__V1__SnapshotMeta sm = RAFTKV__V1__SNAPSHOT_META__INIT;
	sm.index = 10;
	sm.term = 2;
	sm.conf_index = 9;
	sm.n_members = 3;
	sm.members = cp;
	Raftkv__V1__RaftMessage pm = RAFTKV__V1__RAFT_MESSAGE__INIT;
	pm.type = RAFT_MSG_SNAPSHOT;
	pm.from = 1;
	pm.to = 2;
	pm.term = 3;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL); /* no metadata */
	CU_ASSERT(strstr(err, "without metadata") != NULL);
	pm.snapshot = &sm;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
	sm.n_members = RAFT_MAX_MEMBERS;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
	sm.n_members = RAFT_MAX_MEMBERS + 1;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	sm.n_members = 3;
	cm[1].id = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "id 0") != NULL);
	cm[1].id = 1; /* duplicate of member 0 */
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "twice") != NULL);
	cm[1].id = 2;
	cm[2].role = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	cm[2].role = 3;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	cm[2].role = RAFT_LEARNER;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
	char longaddr[RAFT_ADDR_MAX + 1];
	memset(longaddr, 'a', sizeof(longaddr));
	longaddr[RAFT_ADDR_MAX - 1] = 0; /* 127 bytes: fits with its NUL */
	cm[0].addr = longaddr;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
	longaddr[RAFT_ADDR_MAX - 1] = 'a';
	longaddr[RAFT_ADDR_MAX] = 0; /* 128 bytes: too long */
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "address") != NULL);
	cm[0].addr = addrs[0];
	sm.conf_index = 11;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	sm.conf_index = 10;
	sm.index = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	sm.index = 10;
	sm.term = 0;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), PEER_EINVAL);
	sm.term = 2;
	CU_ASSERT_EQUAL(decode_one(&pm, err, sizeof(err)), 0);
}

/* ---- snapshot chunks ------------------------------------------------------------------ */

static void test_chunks(void)
{
	struct raft_message m;
	sample(&m, RAFT_MSG_SNAPSHOT);
	struct peer_chunk c;
	void *buf;
	size_t len;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(&m, 0, "abcd", 4, false, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), 0);
	CU_ASSERT(c.has_message);
	assert_same(&m, &c.message);
	CU_ASSERT_EQUAL(c.offset, 0);
	CU_ASSERT_EQUAL_FATAL(c.len, 4);
	CU_ASSERT_EQUAL(memcmp(c.data, "abcd", 4), 0);
	CU_ASSERT(!c.last);
	free(buf); /* the chunk does not point into the input */
	CU_ASSERT_EQUAL(memcmp(c.data, "abcd", 4), 0);
	peer_chunk_free(&c);

	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(NULL, 4, "ef", 2, false, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), 0);
	CU_ASSERT(!c.has_message);
	CU_ASSERT_EQUAL(c.offset, 4);
	CU_ASSERT_EQUAL(c.len, 2);
	peer_chunk_free(&c);
	free(buf);

	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(NULL, 6, NULL, 0, true, 6, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), 0);
	CU_ASSERT(c.last);
	CU_ASSERT_EQUAL(c.size, 6);
	CU_ASSERT_EQUAL(c.len, 0);
	CU_ASSERT_PTR_NULL(c.data);
	peer_chunk_free(&c);
	peer_chunk_free(&c); /* a zeroed chunk is fine */
	free(buf);

	/* A single chunk that is both first and last. */
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(&m, 0, "xyz", 3, true, 3, &buf, &len), 0);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), 0);
	CU_ASSERT(c.has_message && c.last && c.size == 3);
	peer_chunk_free(&c);
	free(buf);

	/* Refused: a last chunk whose size disagrees, a message past offset 0, a message that
	 * is not InstallSnapshot (on either side), an invalid message, junk. */
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(NULL, 6, "ab", 2, true, 7, &buf, &len), 0);
	CU_ASSERT_EQUAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "size") != NULL);
	free(buf);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(&m, 5, "ab", 2, false, 0, &buf, &len), 0);
	CU_ASSERT_EQUAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), PEER_EINVAL);
	free(buf);
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(NULL, UINT64_MAX, "ab", 2, false, 0, &buf, &len),
			      0);
	CU_ASSERT_EQUAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "overflow") != NULL);
	free(buf);
	struct raft_message hb;
	sample(&hb, RAFT_MSG_HEARTBEAT);
	CU_ASSERT_EQUAL(peer_chunk_encode(&hb, 0, "ab", 2, false, 0, &buf, &len), PEER_EINVAL);
	Raftkv__V1__RaftMessage pm = RAFTKV__V1__RAFT_MESSAGE__INIT;
	pm.type = RAFT_MSG_HEARTBEAT;
	pm.from = 1;
	pm.to = 2;
	Raftkv__V1__SnapshotChunk pc = RAFTKV__V1__SNAPSHOT_CHUNK__INIT;
	pc.message = &pm;
	buf = pack_msg(&pc.base, &len);
	CU_ASSERT_EQUAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "not InstallSnapshot") != NULL);
	free(buf);
	pm.type = RAFT_MSG_SNAPSHOT; /* without metadata */
	buf = pack_msg(&pc.base, &len);
	CU_ASSERT_EQUAL(peer_chunk_decode(buf, len, &c, err, sizeof(err)), PEER_EINVAL);
	CU_ASSERT(strstr(err, "snapshot chunk: snapshot message without metadata") != NULL);
	free(buf);
	static const unsigned char junk[] = {0x1a, 0x10, 'a'};
	CU_ASSERT_EQUAL(peer_chunk_decode(junk, sizeof(junk), &c, err, sizeof(err)),
			PEER_EMALFORMED);
	CU_ASSERT_FALSE(c.has_message);
	CU_ASSERT_PTR_NULL(c.priv);
	sample_free(&m);
}

/* ---- fuzz ----------------------------------------------------------------------------- */

#define FUZZ_ITERATIONS 200000u
static unsigned fuzz_decoded; /* inputs that decoded: the fuzz reaches past the parser */

static uint64_t fuzz_seed(void)
{
	const char *env = getenv("RAFTKV_FUZZ_SEED");
	uint64_t seed = env != NULL ? strtoull(env, NULL, 0)
				    : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
	fprintf(stderr, "\n  fuzz seed %llu (RAFTKV_FUZZ_SEED=%llu reproduces)\n",
		(unsigned long long)seed, (unsigned long long)seed);
	return seed;
}

/* Decode; when it succeeds, what came out must encode and decode to the same messages. */
static bool fuzz_batch_once(const unsigned char *buf, size_t len)
{
	struct raft_message *out = NULL, *again = NULL;
	size_t n = 0, n2 = 0, len2 = 0;
	void *enc = NULL;
	char err[256];
	bool ok = true;
	int rv = peer_batch_decode(buf, len, &out, &n, NULL, err, sizeof(err));
	if (rv != 0)
		return (rv == PEER_EMALFORMED || rv == PEER_EINVAL) && err[0] != 0;
	fuzz_decoded++;
	if (peer_batch_encode(out, n, 0, &enc, &len2) != 0 ||
	    peer_batch_decode(enc, len2, &again, &n2, NULL, err, sizeof(err)) != 0 || n2 != n) {
		ok = false;
	} else {
		for (size_t i = 0; i < n; i++)
			assert_same(&out[i], &again[i]);
	}
	peer_messages_free(again, n2);
	peer_messages_free(out, n);
	free(enc);
	return ok;
}

static bool fuzz_chunk_once(const unsigned char *buf, size_t len)
{
	struct peer_chunk c;
	char err[256];
	int rv = peer_chunk_decode(buf, len, &c, err, sizeof(err));
	if (rv != 0)
		return (rv == PEER_EMALFORMED || rv == PEER_EINVAL) && err[0] != 0;
	fuzz_decoded++;
	bool ok = (c.len == 0 || c.data != NULL) && (!c.has_message || c.offset == 0) &&
		  (!c.has_message || c.message.type == RAFT_MSG_SNAPSHOT);
	peer_chunk_free(&c);
	return ok;
}

static void mutate(struct prng *p, unsigned char *b, size_t *len, size_t cap)
{
	switch (prng_below(p, 4)) {
	case 0: /* bit flips */
		for (uint64_t k = prng_range(p, 1, 3); k > 0 && *len > 0; k--) {
			size_t at = prng_below(p, *len);
			b[at] ^= (unsigned char)(1u << prng_below(p, 8));
		}
		break;
	case 1: /* truncation */
		*len = prng_below(p, *len + 1);
		break;
	case 2: /* a random byte overwritten (lengths, tags, varints) */
		if (*len > 0)
			b[prng_below(p, *len)] = (unsigned char)prng_next(p);
		break;
	default: /* random bytes inserted */
		for (uint64_t k = prng_range(p, 1, 4); k > 0 && *len < cap; k--) {
			size_t at = prng_below(p, *len + 1);
			memmove(b + at + 1, b + at, *len - at);
			b[at] = (unsigned char)prng_next(p);
			(*len)++;
		}
		break;
	}
}

static void test_fuzz(void)
{
	uint64_t seed = fuzz_seed();
	struct prng p;
	prng_seed(&p, seed);
	bool ok = true;

	/* Valid encodings to mutate: each type alone, a full batch, chunks. */
	struct raft_message all[RAFT_MSG_TYPE_MAX];
	for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++)
		sample(&all[t - 1], t);
	enum { N_SEEDS = RAFT_MSG_TYPE_MAX + 3 };
	void *seeds[N_SEEDS];
	size_t seed_len[N_SEEDS];
	bool is_chunk[N_SEEDS];
	for (size_t i = 0; i < RAFT_MSG_TYPE_MAX; i++) {
		CU_ASSERT_EQUAL_FATAL(peer_batch_encode(&all[i], 1, 0, &seeds[i], &seed_len[i]), 0);
		is_chunk[i] = false;
	}
	CU_ASSERT_EQUAL_FATAL(peer_batch_encode(all, RAFT_MSG_TYPE_MAX, 0,
						&seeds[RAFT_MSG_TYPE_MAX],
						&seed_len[RAFT_MSG_TYPE_MAX]),
			      0);
	is_chunk[RAFT_MSG_TYPE_MAX] = false;
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(&all[RAFT_MSG_SNAPSHOT - 1], 0, "data", 4, false, 0,
						&seeds[RAFT_MSG_TYPE_MAX + 1],
						&seed_len[RAFT_MSG_TYPE_MAX + 1]),
			      0);
	is_chunk[RAFT_MSG_TYPE_MAX + 1] = true;
	CU_ASSERT_EQUAL_FATAL(peer_chunk_encode(NULL, 4, "tail", 4, true, 8,
						&seeds[RAFT_MSG_TYPE_MAX + 2],
						&seed_len[RAFT_MSG_TYPE_MAX + 2]),
			      0);
	is_chunk[RAFT_MSG_TYPE_MAX + 2] = true;

	unsigned char buf[4096];
	/* Every truncation of every valid encoding. */
	for (size_t s = 0; s < N_SEEDS && ok; s++)
		for (size_t l = 0; l <= seed_len[s] && ok; l++)
			ok = is_chunk[s] ? fuzz_chunk_once(seeds[s], l)
					 : fuzz_batch_once(seeds[s], l);
	/* Random bytes, and stacked mutations of valid encodings. Each input is copied into a
	 * buffer of exactly its length so ASan sees any read past the end. */
	for (unsigned it = 0; it < FUZZ_ITERATIONS && ok; it++) {
		size_t len;
		bool chunk;
		if (it % 4 == 0) {
			len = prng_below(&p, 200);
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)prng_next(&p);
			chunk = prng_below(&p, 2);
		} else {
			size_t s = prng_below(&p, N_SEEDS);
			len = seed_len[s];
			CU_ASSERT_FATAL(len <= sizeof(buf));
			memcpy(buf, seeds[s], len);
			for (uint64_t k = prng_range(&p, 1, 3); k > 0; k--)
				mutate(&p, buf, &len, sizeof(buf));
			chunk = is_chunk[s];
		}
		unsigned char *exact = malloc(len + 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
		memcpy(exact, buf, len);
		ok = chunk ? fuzz_chunk_once(exact, len) : fuzz_batch_once(exact, len);
		if (!ok)
			fprintf(stderr, "  fuzz: iteration %u failed\n", it);
		free(exact);
	}
	fprintf(stderr, "  fuzz: %u of %u inputs decoded\n", fuzz_decoded, FUZZ_ITERATIONS);
	if (!ok)
		fprintf(stderr, "  fuzz failed: RAFTKV_FUZZ_SEED=%llu reproduces\n",
			(unsigned long long)seed);
	CU_ASSERT(ok);
	for (size_t i = 0; i < N_SEEDS; i++)
		free(seeds[i]);
	for (size_t i = 0; i < RAFT_MSG_TYPE_MAX; i++)
		sample_free(&all[i]);
}

static CU_TestInfo codec_tests[] = {
	{"round trip of every message type", test_roundtrip_each_type},
	{"round trip of a batch; decoded payloads are raft_bufs", test_roundtrip_batch},
	{"empty batch", test_empty_batch},
	{"alarm bits", test_batch_alarms},
	{"fields irrelevant to a type are ignored", test_irrelevant_fields_ignored},
	{"malformed protobuf", test_reject_malformed},
	{"message type and ids", test_reject_message_fields},
	{"append entries: contiguity, types, terms, count, conf payload", test_reject_entries},
	{"snapshot metadata: members, roles, addresses, indexes", test_reject_snapshot_meta},
	{"snapshot chunks", test_chunks},
	CU_TEST_INFO_NULL,
};

static CU_TestInfo fuzz_tests[] = {
	{"random bytes, truncations, bit flips", test_fuzz},
	CU_TEST_INFO_NULL,
};

int main(void)
{
	CU_SuiteInfo suites[] = {
		{"peer_codec", NULL, NULL, NULL, NULL, codec_tests},
		{"peer_codec_fuzz", NULL, NULL, NULL, NULL, fuzz_tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
