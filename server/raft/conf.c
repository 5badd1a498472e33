/* Membership configurations. A configuration is carried whole in every RAFT_ENTRY_CONF entry
 * and in snapshot metadata, so the newest one in the log is always self-contained
 * (canonical/raft does the same); changes are applied one server at a time (thesis §4.1). */
#include "conf.h"

#include <string.h>

#include "common/byteorder.h"
#include "heap.h"

#include "pure.h"

#define CONF_FORMAT 1
/* format(1) n(4), then per member: id(8) role(1) addr_len(1) addr(addr_len) */
#define CONF_HEADER       5
#define CONF_MEMBER_FIXED 10

const struct raft_member *raft_conf_get(const struct raft_conf *c, raft_id id)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->members[i].id == id)
			return &c->members[i];
	return NULL;
}

unsigned raft_conf_voters(const struct raft_conf *c)
{
	unsigned n = 0;
	for (unsigned i = 0; i < c->n; i++)
		n += c->members[i].role == RAFT_VOTER;
	return n;
}

bool raft_conf_is_voter(const struct raft_conf *c, raft_id id)
{
	const struct raft_member *m = raft_conf_get(c, id);
	return m != NULL && m->role == RAFT_VOTER;
}

int raft_conf_add(struct raft_conf *c, raft_id id, int role, const char *addr)
{
	if (id == 0 || (role != RAFT_VOTER && role != RAFT_LEARNER))
		return RAFT_EINVAL;
	if (addr != NULL && strlen(addr) >= RAFT_ADDR_MAX)
		return RAFT_EINVAL;
	if (raft_conf_get(c, id) != NULL)
		return RAFT_EEXIST;
	if (c->n >= RAFT_MAX_MEMBERS)
		return RAFT_ETOOBIG;
	struct raft_member *m = &c->members[c->n++];
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->role = (uint8_t)role;
	if (addr != NULL)
		memcpy(m->addr, addr, strlen(addr) + 1);
	return 0;
}

bool raft_conf_remove(struct raft_conf *c, raft_id id)
{
	for (unsigned i = 0; i < c->n; i++) {
		if (c->members[i].id != id)
			continue;
		memmove(&c->members[i], &c->members[i + 1], (c->n - i - 1) * sizeof(c->members[0]));
		c->n--;
		return true;
	}
	return false;
}

bool raft_conf_valid(const struct raft_conf *c)
{
	if (c->n > RAFT_MAX_MEMBERS)
		return false;
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_member *m = &c->members[i];
		if (m->id == 0 || (m->role != RAFT_VOTER && m->role != RAFT_LEARNER))
			return false;
		if (memchr(m->addr, '\0', RAFT_ADDR_MAX) == NULL)
			return false;
		for (unsigned j = 0; j < i; j++)
			if (c->members[j].id == m->id)
				return false;
	}
	return true;
}

struct raft_buf *raft_conf_encode(const struct raft_conf *c)
{
	size_t len = CONF_HEADER;
	for (unsigned i = 0; i < c->n; i++)
		len += CONF_MEMBER_FIXED + strnlen(c->members[i].addr, RAFT_ADDR_MAX - 1);
	struct raft_buf *b = raft_buf_new(NULL, len);
	unsigned char *p = b->data;
	*p++ = CONF_FORMAT;
	put_be32(p, c->n);
	p += 4;
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_member *m = &c->members[i];
		size_t alen = strnlen(m->addr, RAFT_ADDR_MAX - 1);
		put_be64(p, m->id);
		p[8] = m->role;
		p[9] = (unsigned char)alen;
		memcpy(p + CONF_MEMBER_FIXED, m->addr, alen);
		p += CONF_MEMBER_FIXED + alen;
	}
	return b;
}

int raft_conf_decode(const void *data, size_t len, struct raft_conf *out)
{
	const unsigned char *p = data;
	memset(out, 0, sizeof(*out));
	if (data == NULL || len < CONF_HEADER || p[0] != CONF_FORMAT)
		return RAFT_ECORRUPT;
	uint32_t n = get_be32(p + 1);
	if (n > RAFT_MAX_MEMBERS)
		return RAFT_ECORRUPT;
	size_t off = CONF_HEADER;
	for (uint32_t i = 0; i < n; i++) {
		if (len - off < CONF_MEMBER_FIXED)
			return RAFT_ECORRUPT;
		struct raft_member *m = &out->members[i];
		m->id = get_be64(p + off);
		m->role = p[off + 8];
		size_t alen = p[off + 9];
		off += CONF_MEMBER_FIXED;
		if (alen >= RAFT_ADDR_MAX || len - off < alen)
			return RAFT_ECORRUPT;
		memcpy(m->addr, p + off, alen);
		off += alen;
	}
	if (off != len)
		return RAFT_ECORRUPT;
	out->n = n;
	return raft_conf_valid(out) ? 0 : RAFT_ECORRUPT;
}
