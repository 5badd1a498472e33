/* Table-driven flags: argv, then the environment, then defaults. */
#include "common/flags.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(const struct flag_spec *specs, size_t n, const char *intro)
{
	printf("%s\n", intro);
	for (size_t i = 0; i < n; i++) {
		printf("  --%-22s %s\n  %-24s env %s", specs[i].flag, specs[i].help, "",
		       specs[i].env);
		if (specs[i].def[0] != '\0')
			printf(", default %s", specs[i].def);
		printf("\n");
	}
	printf("  --%-22s print this help\n", "help");
}

static int set_value(void *obj, const struct flag_spec *o, const char *v, char *err, size_t errlen)
{
	char *dst = (char *)obj + o->offset;
	if (o->type == FLAG_STR) {
		if (strlen(v) >= o->size) {
			snprintf(err, errlen, "--%s: longer than %zu bytes", o->flag, o->size - 1);
			return -1;
		}
		memcpy(dst, v, strlen(v) + 1);
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long num = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-') {
		snprintf(err, errlen, "--%s: \"%s\" is not a non-negative integer", o->flag, v);
		return -1;
	}
	uint64_t u = num;
	memcpy(dst, &u, sizeof(u));
	return 0;
}

int flags_parse(const struct flag_spec *specs, size_t n, void *obj, int argc, char **argv,
		const char *intro, char *err, size_t errlen)
{
	bool given[64] = {false};
	if (n > 64) {
		snprintf(err, errlen, "too many flags in the table");
		return -1;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(specs, n, intro);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument \"%s\" (see --help)", a);
			return -1;
		}
		const char *name = a + 2, *val = strchr(name, '=');
		size_t nlen = val != NULL ? (size_t)(val - name) : strlen(name);
		size_t k = 0;
		while (k < n &&
		       !(strlen(specs[k].flag) == nlen && strncmp(specs[k].flag, name, nlen) == 0))
			k++;
		if (k == n) {
			snprintf(err, errlen, "unknown flag \"%s\" (see --help)", a);
			return -1;
		}
		if (val != NULL) {
			val++;
		} else if (i + 1 < argc) {
			val = argv[++i];
		} else {
			snprintf(err, errlen, "--%s needs a value", specs[k].flag);
			return -1;
		}
		if (set_value(obj, &specs[k], val, err, errlen) != 0)
			return -1;
		given[k] = true;
	}
	for (size_t k = 0; k < n; k++) {
		if (given[k])
			continue;
		const char *v = getenv(specs[k].env);
		if (v == NULL)
			v = specs[k].def;
		if ((specs[k].type == FLAG_STR || v[0] != '\0') &&
		    set_value(obj, &specs[k], v, err, errlen) != 0)
			return -1;
	}
	return 0;
}
