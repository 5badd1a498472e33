#include "check.h"

#include <stdio.h>
#include <stdlib.h>

static check_panic_fn panic_handler;

void check_set_panic_handler(check_panic_fn fn)
{
	panic_handler = fn;
}

_Noreturn void check_panic(const char *file, int line, const char *msg)
{
	if (panic_handler != NULL)
		panic_handler(file, line, msg);
	fprintf(stderr, "PANIC %s:%d: %s\n", file, line, msg);
	abort();
}
