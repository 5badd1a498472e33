/* What the exactly-once session table costs: heap bytes per session, measured by filling a
 * store with N sessions (N distinct client ids writing once each) and comparing glibc's heap
 * counters. Prints one JSON line. Usage: kv_session_mem [N] (default 100000 = max_sessions). */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/kv/kv.h"

static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

int main(int argc, char **argv)
{
	unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	struct kv_store *s = kv_store_new(NULL);
	/* One key, rewritten: the tree does not grow, only the session table does. */
	struct kv_cmd c = {.type = KV_OP_PUT, .sequence = 1};
	c.op = (struct kv_op){.type = KV_OP_PUT,
			      .key = {(const unsigned char *)"k", 1},
			      .value = {(const unsigned char *)"v", 1}};
	unsigned char *enc;
	size_t len;
	c.client_id = 1;
	if (s == NULL || kv_cmd_encode(&c, &enc, &len) != 0)
		return 1;
	uint64_t index = 0;
	kv_apply(s, ++index, enc, len, NULL, NULL);
	free(enc);
	size_t before = heap_used();
	for (unsigned long i = 0; i < n; i++) {
		c.client_id = 1000 + i;
		c.time_ms = 1796500000000ULL + i / 100;
		if (kv_cmd_encode(&c, &enc, &len) != 0)
			return 1;
		kv_apply(s, ++index, enc, len, NULL, NULL);
		free(enc);
	}
	size_t after = heap_used();
	printf("{\"sessions\": %llu, \"heap_bytes\": %zu, \"bytes_per_session\": %.1f}\n",
	       (unsigned long long)kv_store_session_count(s), after - before,
	       (double)(after - before) / (double)kv_store_session_count(s));
	kv_store_free(s);
	return 0;
}
