/* Reference-counted payloads, message copies, error strings and names. */
#include <string.h>

#include "heap.h"
#include "server/raft/raft.h"

#include "pure.h"

struct raft_buf *raft_buf_new(const void *data, size_t len)
{
	struct raft_buf *b = raft_heap_alloc(sizeof(*b) + len);
	b->refs = 1;
	b->len = len;
	if (data != NULL)
		memcpy(b->data, data, len);
	else
		memset(b->data, 0, len);
	return b;
}

struct raft_buf *raft_buf_ref(struct raft_buf *b)
{
	if (b != NULL)
		__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	return b;
}

void raft_buf_unref(struct raft_buf *b)
{
	if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		raft_heap_free(b);
}

void raft_message_copy(struct raft_message *dst, const struct raft_message *src)
{
	*dst = *src;
	dst->entries = NULL;
	if (src->n_entries == 0)
		return;
	dst->entries = raft_heap_alloc(src->n_entries * sizeof(*dst->entries));
	for (size_t i = 0; i < src->n_entries; i++) {
		dst->entries[i] = src->entries[i];
		raft_buf_ref(dst->entries[i].buf);
	}
}

void raft_message_release(struct raft_message *m)
{
	for (size_t i = 0; i < m->n_entries; i++)
		raft_buf_unref(m->entries[i].buf);
	raft_heap_free(m->entries);
	m->entries = NULL;
	m->n_entries = 0;
}

const char *raft_strerror(int rv)
{
	switch (rv) {
	case RAFT_OK:
		return "ok";
#define RAFT_ERR_CASE(name, msg) \
	case name:               \
		return msg;
		RAFT_ERR_MAP(RAFT_ERR_CASE)
#undef RAFT_ERR_CASE
	}
	return "unknown error";
}

const char *raft_role_name(int role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "precandidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "?";
}

const char *raft_msg_type_name(int type)
{
	/* clang-format off */
	static const char *const names[] = {
		[RAFT_MSG_APPEND] = "APPEND",
		[RAFT_MSG_APPEND_RESP] = "APPEND_RESP",
		[RAFT_MSG_VOTE] = "VOTE",
		[RAFT_MSG_VOTE_RESP] = "VOTE_RESP",
		[RAFT_MSG_PREVOTE] = "PREVOTE",
		[RAFT_MSG_PREVOTE_RESP] = "PREVOTE_RESP",
		[RAFT_MSG_HEARTBEAT] = "HEARTBEAT",
		[RAFT_MSG_HEARTBEAT_RESP] = "HEARTBEAT_RESP",
		[RAFT_MSG_SNAPSHOT] = "SNAPSHOT",
		[RAFT_MSG_TIMEOUT_NOW] = "TIMEOUT_NOW",
	};
	/* clang-format on */
	if (type <= 0 || type > RAFT_MSG_TYPE_MAX)
		return "?";
	return names[type];
}
