/* Helpers shared by the transport tests: a loop per program, servers on 127.0.0.1:0,
 * recorded outcomes of outbound calls, and bounded polling (never sleep-and-hope). */
#ifndef RAFTKV_TESTS_TP_TESTLIB_H
#define RAFTKV_TESTS_TP_TESTLIB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server/transport/transport.h"

static inline void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Poll `cond` every millisecond for at most `ms` (then assert it). */
#define WAIT_UNTIL(cond, ms)                                                        \
	for (int64_t until_ = tp_now_ms() + (ms); !(cond) && tp_now_ms() < until_;) \
	sleep_ms(1)

/* The outcome of an outbound call, copied out of the done() callback. */
struct outcome {
	atomic_int n_done; /* done() calls so far */
	int status;
	char details[256];
	unsigned char msg[65536];
	size_t len;
	char leader[128]; /* the raftkv-leader trailer, "" if absent */
	int64_t at_ms;    /* when done() ran */
};

static inline void outcome_done(void *arg, const struct tp_result *r)
{
	struct outcome *o = arg;
	o->status = r->status;
	snprintf(o->details, sizeof(o->details), "%s", r->details);
	o->len = r->len < sizeof(o->msg) ? r->len : sizeof(o->msg);
	if (o->len > 0)
		memcpy(o->msg, r->msg, o->len);
	o->leader[0] = '\0';
	for (size_t i = 0; i < r->n_trailers; i++)
		if (strcmp(r->trailers[i].key, "raftkv-leader") == 0)
			snprintf(o->leader, sizeof(o->leader), "%s", r->trailers[i].value);
	o->at_ms = tp_now_ms();
	atomic_fetch_add(&o->n_done, 1);
}

static inline void outcome_reset(struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	atomic_store(&o->n_done, 0);
}

#endif
