/* Failpoints (see failpoint.h): the RAFTKV_FAILPOINTS parser and the actions. */
#include "common/failpoint.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FP_MAX      32
#define FP_NAME_MAX 64

enum fp_action { FP_CRASH = 1, FP_SLEEP };

struct fp {
	char name[FP_NAME_MAX];
	enum fp_action action;
	unsigned long at; /* FP_CRASH: the hit that crashes (1 = the first) */
	unsigned long ms; /* FP_SLEEP */
	atomic_ulong hits;
};

static struct fp points[FP_MAX];
static size_t n_points;
static char problem[160]; /* why (part of) the variable was ignored; "" if nothing */
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Parse "name[=crash|crash@N|sleep:MS]" into points[]; false on a malformed item. */
static bool parse_item(const char *item, size_t len)
{
	const char *eq = memchr(item, '=', len);
	size_t name_len = eq != NULL ? (size_t)(eq - item) : len;
	if (name_len == 0 || name_len >= FP_NAME_MAX || n_points == FP_MAX)
		return false;
	struct fp *p = &points[n_points];
	memcpy(p->name, item, name_len);
	p->name[name_len] = '\0';
	p->action = FP_CRASH;
	p->at = 1;
	if (eq != NULL) {
		char act[48];
		size_t alen = len - name_len - 1;
		if (alen >= sizeof(act))
			return false;
		memcpy(act, eq + 1, alen);
		act[alen] = '\0';
		char *end = NULL;
		if (strcmp(act, "crash") == 0) {
			/* the default */
		} else if (strncmp(act, "crash@", 6) == 0) {
			p->at = strtoul(act + 6, &end, 10);
			if (end == act + 6 || *end != '\0' || p->at == 0)
				return false;
		} else if (strncmp(act, "sleep:", 6) == 0) {
			p->action = FP_SLEEP;
			p->ms = strtoul(act + 6, &end, 10);
			if (end == act + 6 || *end != '\0' || p->ms > 600000)
				return false;
		} else {
			return false;
		}
	}
	n_points++;
	return true;
}

static void parse_env(void)
{
	const char *spec = getenv("RAFTKV_FAILPOINTS");
	if (spec == NULL)
		return;
	const char *p = spec;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		if (len > 0 && !parse_item(p, len)) {
			snprintf(problem, sizeof(problem),
				 "malformed or too many items from \"%.*s\"",
				 (int)(len > 60 ? 60 : len), p);
			break;
		}
		p += len;
		if (*p == ',')
			p++;
	}
}

#ifdef RAFTKV_FAILPOINTS
static void say(const char *name, const char *what)
{
	char line[160];
	int n = snprintf(line, sizeof(line), "failpoint %s: %s\n", name, what);
	if (n > 0) {
		size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
		ssize_t w = write(STDERR_FILENO, line, len);
		(void)w; /* nothing to do about a failed write to stderr */
	}
}

void failpoint_hit(const char *name)
{
	pthread_once(&once, parse_env);
	for (size_t i = 0; i < n_points; i++) {
		struct fp *p = &points[i];
		if (strcmp(p->name, name) != 0)
			continue;
		unsigned long hit = atomic_fetch_add(&p->hits, 1) + 1;
		if (p->action == FP_SLEEP) {
			struct timespec ts = {(time_t)(p->ms / 1000),
					      (long)(p->ms % 1000) * 1000000};
			while (nanosleep(&ts, &ts) != 0)
				;
		} else if (hit == p->at) {
			say(name, "crash");
			kill(getpid(), SIGKILL);
			for (;;)
				pause(); /* SIGKILL is delivered before we get here */
		}
	}
}
#endif

bool failpoint_compiled(void)
{
#ifdef RAFTKV_FAILPOINTS
	return true;
#else
	return false;
#endif
}

void failpoint_describe(char *buf, size_t len)
{
	if (len == 0)
		return;
	buf[0] = '\0';
	if (getenv("RAFTKV_FAILPOINTS") == NULL)
		return;
	if (!failpoint_compiled()) {
		snprintf(buf, len,
			 "RAFTKV_FAILPOINTS is set but this build has no failpoints "
			 "(build type Debug or Sanitize, or -DRAFTKV_FAILPOINTS=ON)");
		return;
	}
	pthread_once(&once, parse_env);
	size_t off = (size_t)snprintf(buf, len, "failpoints armed:");
	for (size_t i = 0; i < n_points && off < len; i++) {
		const struct fp *p = &points[i];
		if (p->action == FP_SLEEP)
			off += (size_t)snprintf(buf + off, len - off, " %s=sleep:%lu", p->name,
						p->ms);
		else
			off += (size_t)snprintf(buf + off, len - off, " %s=crash@%lu", p->name,
						p->at);
	}
	if (n_points == 0 && off < len)
		off += (size_t)snprintf(buf + off, len - off, " none");
	if (problem[0] != '\0' && off < len)
		snprintf(buf + off, len - off, " (ignored: %s)", problem);
}
