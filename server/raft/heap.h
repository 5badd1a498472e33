/* The core's allocation hooks. Out of memory is fatal (as in redis): callers never see NULL. */
#ifndef RAFTKV_RAFT_HEAP_H
#define RAFTKV_RAFT_HEAP_H

#include <stddef.h>

void *raft_heap_alloc(size_t size);            /* never NULL */
void *raft_heap_zalloc(size_t size);           /* zeroed; never NULL */
void *raft_heap_realloc(void *p, size_t size); /* never NULL */
void raft_heap_free(void *p);                  /* NULL-safe */

/* Grow *arr (of element size `elem`) so it holds at least `need` elements. */
void raft_heap_reserve(void **arr, size_t *cap, size_t need, size_t elem);

#endif
