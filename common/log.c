/* Logging: format the whole line in a buffer, then one fwrite, so threads never interleave. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static bool json_lines;
static char node_name[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(enum log_level min, bool json, const char *node)
{
	min_level = min;
	json_lines = json;
	snprintf(node_name, sizeof(node_name), "%s", node != NULL ? node : "");
}

int log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

int log_options_parse(const char *level, const char *format, enum log_level *min, bool *json)
{
	int l = log_level_parse(level);
	bool j = strcmp(format, "json") == 0;
	if (l < 0 || (!j && strcmp(format, "text") != 0))
		return -1;
	if (min != NULL)
		*min = (enum log_level)l;
	if (json != NULL)
		*json = j;
	return 0;
}

bool log_enabled(enum log_level l)
{
	return l >= min_level;
}

/* Append `s` to buf[*n..cap) as the inside of a JSON string. */
static void json_escape(char *buf, size_t cap, size_t *n, const char *s)
{
	for (; *s != '\0' && *n + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[(*n)++] = '\\';
			buf[(*n)++] = (char)c;
		} else if (c < 0x20) {
			*n += (size_t)snprintf(buf + *n, cap - *n, "\\u%04x", c);
		} else {
			buf[(*n)++] = (char)c;
		}
	}
}

void log_msg(enum log_level l, const char *fmt, ...)
{
	if (l < min_level)
		return;
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t w = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + w, sizeof(when) - w, ".%03ldZ", ts.tv_nsec / 1000000);

	char line[2400];
	size_t n;
	if (json_lines) {
		n = (size_t)snprintf(line, sizeof(line),
				     "{\"ts\":\"%s\",\"level\":\"%s\",\"node\":\"", when,
				     level_names[l]);
		json_escape(line, sizeof(line), &n, node_name);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\",\"msg\":\"");
		json_escape(line, sizeof(line), &n, msg);
		n += (size_t)snprintf(line + n, sizeof(line) - n, "\"}\n");
	} else {
		n = (size_t)snprintf(line, sizeof(line), "%s %s %s: %s\n", when, level_names[l],
				     node_name, msg);
	}
	if (n > sizeof(line) - 1)
		n = sizeof(line) - 1;
	fwrite(line, 1, n, stderr);
}
