/* The monotonic clock, and condition variables whose timed waits use it, so that a step of
 * the wall clock (NTP, an operator) never stretches or cuts a wait. */
#ifndef RAFTKV_COMMON_MONOTIME_H
#define RAFTKV_COMMON_MONOTIME_H

#include <pthread.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in milliseconds. */
int64_t monotime_ms(void);

/* Initialize `cv` for monotime_cond_wait_until (its clock is CLOCK_MONOTONIC). */
void monotime_cond_init(pthread_cond_t *cv);

/* With `mu` held, wait on `cv` (initialized by monotime_cond_init) until it is signalled or
 * monotime_ms() reaches `until_ms`. Returns 0 when woken, ETIMEDOUT at the deadline (also
 * when it has already passed). Spurious wake-ups return 0, as pthread_cond_timedwait's do:
 * callers re-check their condition. */
int monotime_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, int64_t until_ms);

#endif
