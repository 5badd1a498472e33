/* LD_PRELOAD shim for tests: the wall clock (CLOCK_REALTIME, gettimeofday, time) reads
 * RAFTKV_CLOCKSHIFT_S seconds away from the kernel's, while CLOCK_MONOTONIC is untouched.
 * A process that computes an absolute deadline from the wall clock and hands it to the
 * kernel (pthread_cond_timedwait on a default condition variable) then waits that much too
 * long or too short: the same as a wall-clock step in the middle of its waits. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

static long shift_s(void)
{
	const char *v = getenv("RAFTKV_CLOCKSHIFT_S");
	return v != NULL ? strtol(v, NULL, 10) : 0;
}

int clock_gettime(clockid_t clk, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (real == NULL)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	int rv = real(clk, ts);
	if (rv == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
		ts->tv_sec += shift_s();
	return rv;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	static int (*real)(struct timeval *restrict, void *restrict);
	if (real == NULL)
		real = (int (*)(struct timeval *restrict, void *restrict))dlsym(RTLD_NEXT,
										"gettimeofday");
	int rv = real(tv, tz);
	if (rv == 0)
		tv->tv_sec += shift_s();
	return rv;
}

time_t time(time_t *out)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (out != NULL)
		*out = ts.tv_sec;
	return ts.tv_sec;
}
