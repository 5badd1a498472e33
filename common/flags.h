/* Command-line flags with environment fallbacks, described by one table per program, so
 * parsing, --help and the documentation cannot drift apart. */
#ifndef RAFTKV_COMMON_FLAGS_H
#define RAFTKV_COMMON_FLAGS_H

#include <stddef.h>
#include <stdint.h>

enum flag_type { FLAG_STR, FLAG_U64 };

/* One option, stored at `offset` in the program's config struct. */
struct flag_spec {
	const char *flag; /* without the leading "--" */
	const char *env;  /* environment variable used when the flag is absent */
	enum flag_type type;
	size_t offset;
	size_t size; /* FLAG_STR: capacity of the char array, NUL included */
	const char *def;
	const char *help;
};

#define FLAG_STR(type, field, flag, env, def, help)                                               \
	{                                                                                         \
		flag, env, FLAG_STR, offsetof(type, field), sizeof(((type *)0)->field), def, help \
	}
#define FLAG_U64(type, field, flag, env, def, help)                                     \
	{                                                                               \
		flag, env, FLAG_U64, offsetof(type, field), sizeof(uint64_t), def, help \
	}

/*
 * Fill `obj` from argv ("--flag value" or "--flag=value"), then from the environment for the
 * flags not given, then from the defaults. `--help`/`-h` prints `intro` and the table to
 * stdout and returns 1. Returns 0, or -1 with the reason in err (an unknown flag, a missing
 * value, a string too long, a number that does not parse).
 */
int flags_parse(const struct flag_spec *specs, size_t n, void *obj, int argc, char **argv,
		const char *intro, char *err, size_t errlen);

#endif
