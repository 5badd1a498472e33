#include "log.h"

#include <string.h>

#include "common/check.h"
#include "heap.h"

#include "pure.h"

void raft_log_init(struct raft_log *l, raft_index offset, raft_term offset_term)
{
	memset(l, 0, sizeof(*l));
	l->offset = offset;
	l->offset_term = offset_term;
}

void raft_log_close(struct raft_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		raft_buf_unref(l->e[l->head + i].buf);
	raft_heap_free(l->e);
	memset(l, 0, sizeof(*l));
}

const struct raft_entry *raft_log_get(const struct raft_log *l, raft_index index)
{
	if (index <= l->offset || index > raft_log_last_index(l))
		return NULL;
	return &l->e[l->head + (index - l->offset - 1)];
}

raft_term raft_log_term(const struct raft_log *l, raft_index index)
{
	if (index == l->offset)
		return l->offset_term;
	const struct raft_entry *e = raft_log_get(l, index);
	return e != NULL ? e->term : 0;
}

raft_term raft_log_last_term(const struct raft_log *l)
{
	return raft_log_term(l, raft_log_last_index(l));
}

void raft_log_append(struct raft_log *l, raft_term term, uint8_t type, struct raft_buf *buf)
{
	INVARIANT(term >= raft_log_last_term(l), "raft_log_append: term goes backwards");
	if (l->head + l->n == l->cap) {
		if (l->head > 0 && l->head >= l->n) {
			/* At least half the array is dead space before head: slide down. */
			memmove(l->e, l->e + l->head, l->n * sizeof(*l->e));
			l->head = 0;
		} else {
			raft_heap_reserve((void **)&l->e, &l->cap, l->cap + 1, sizeof(*l->e));
		}
	}
	struct raft_entry *e = &l->e[l->head + l->n];
	e->term = term;
	e->index = raft_log_last_index(l) + 1;
	e->type = type;
	e->buf = raft_buf_ref(buf);
	l->bytes += buf != NULL ? buf->len : 0;
	l->n++;
}

static void drop(struct raft_log *l, struct raft_entry *e)
{
	l->bytes -= e->buf != NULL ? e->buf->len : 0;
	raft_buf_unref(e->buf);
}

void raft_log_truncate(struct raft_log *l, raft_index index)
{
	INVARIANT(index > l->offset, "raft_log_truncate: index at or below the compaction point");
	while (raft_log_last_index(l) >= index) {
		drop(l, &l->e[l->head + l->n - 1]);
		l->n--;
	}
}

void raft_log_compact(struct raft_log *l, raft_index index)
{
	INVARIANT(index > l->offset && index <= raft_log_last_index(l),
		  "raft_log_compact: index outside the log");
	raft_term term = raft_log_term(l, index);
	size_t k = index - l->offset;
	for (size_t i = 0; i < k; i++)
		drop(l, &l->e[l->head + i]);
	l->head += k;
	l->n -= k;
	if (l->n == 0)
		l->head = 0;
	l->offset = index;
	l->offset_term = term;
}

void raft_log_reset(struct raft_log *l, raft_index index, raft_term term)
{
	for (size_t i = 0; i < l->n; i++)
		drop(l, &l->e[l->head + i]);
	l->head = 0;
	l->n = 0;
	l->offset = index;
	l->offset_term = term;
}

raft_index raft_log_find_conflict_by_term(const struct raft_log *l, raft_index index,
					  raft_term term)
{
	if (index > raft_log_last_index(l))
		index = raft_log_last_index(l);
	while (index > l->offset) {
		if (raft_log_term(l, index) <= term)
			return index;
		index--;
	}
	return index;
}
