/* Process-wide logging to stderr: levels, text or JSON-lines format, one write per line. */
#ifndef RAFTKV_COMMON_LOG_H
#define RAFTKV_COMMON_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Set the threshold and the format (text: "2026-11-27T07:00:00.123Z info n1: msg"; JSON
 * lines: {"ts":...,"level":...,"node":...,"msg":...}). `node` is copied; may be NULL. Call
 * before other threads log. */
void log_setup(enum log_level min, bool json, const char *node);
/* Parse "debug", "info", "warn" or "error"; -1 if unknown. */
int log_level_parse(const char *s);
/* Parse a --log-level / --log-format pair (format "text" or "json"). Returns 0, or -1 if either
 * is unknown; `min` and `json` may be NULL (validation only). */
int log_options_parse(const char *level, const char *format, enum log_level *min, bool *json);
bool log_enabled(enum log_level l);

/* Log one line (a trailing newline is added). Thread-safe. */
void log_msg(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_D(...) (log_enabled(LOG_DEBUG) ? log_msg(LOG_DEBUG, __VA_ARGS__) : (void)0)
#define LOG_I(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOG_W(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
