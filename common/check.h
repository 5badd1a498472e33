/* Marked defensive branches (after sqlite's ALWAYS/NEVER) and loud invariant failures. */
#ifndef RAFTKV_COMMON_CHECK_H
#define RAFTKV_COMMON_CHECK_H

#include <assert.h>

/*
 * ALWAYS(X) / NEVER(X) wrap conditions that the code believes can never be false / true.
 * Debug builds assert; release builds keep the defensive branch so a surprise is handled.
 */
#ifdef NDEBUG
#define ALWAYS(X) (X)
#define NEVER(X)  (X)
#else
#define ALWAYS(X) ((X) ? 1 : (assert(0), 0))
#define NEVER(X)  ((X) ? (assert(0), 1) : 0)
#endif

/*
 * A broken invariant that would corrupt replicated state: stop at once, naming it.
 * The handler is installable so a pure library can report without printing itself.
 */
typedef void (*check_panic_fn)(const char *file, int line, const char *msg);
void check_set_panic_handler(check_panic_fn fn);
_Noreturn void check_panic(const char *file, int line, const char *msg);

#define PANIC(msg) check_panic(__FILE__, __LINE__, (msg))
#define INVARIANT(X, msg)                                       \
	do {                                                    \
		if (!(X))                                       \
			check_panic(__FILE__, __LINE__, (msg)); \
	} while (0)

#endif
