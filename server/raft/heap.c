/* Allocation hooks of the core (the only file that may name libc's allocator). */
#include "heap.h"

#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "server/raft/raft.h"

static struct raft_allocator heap = {malloc, realloc, free};

void raft_set_allocator(const struct raft_allocator *a)
{
	if (a == NULL) {
		heap.malloc_fn = malloc;
		heap.realloc_fn = realloc;
		heap.free_fn = free;
		return;
	}
	heap = *a;
}

void *raft_heap_alloc(size_t size)
{
	void *p = heap.malloc_fn(size == 0 ? 1 : size);
	if (p == NULL)
		PANIC("raft: out of memory");
	return p;
}

void *raft_heap_zalloc(size_t size)
{
	void *p = raft_heap_alloc(size);
	memset(p, 0, size);
	return p;
}

void *raft_heap_realloc(void *p, size_t size)
{
	void *q = heap.realloc_fn(p, size == 0 ? 1 : size);
	if (q == NULL)
		PANIC("raft: out of memory");
	return q;
}

void raft_heap_free(void *p)
{
	if (p != NULL)
		heap.free_fn(p);
}

void raft_heap_reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t n = *cap < 8 ? 8 : *cap;
	while (n < need)
		n *= 2;
	*arr = raft_heap_realloc(*arr, n * elem);
	*cap = n;
}
