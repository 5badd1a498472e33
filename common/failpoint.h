/* Named failpoints for crash and fault tests: compiled into test builds only, armed by an
 * environment variable. */
#ifndef RAFTKV_COMMON_FAILPOINT_H
#define RAFTKV_COMMON_FAILPOINT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * FAILPOINT("storage.log.before-sync") marks a point where a test may end the process (or
 * slow it down). In builds without RAFTKV_FAILPOINTS (Release, RelWithDebInfo) the macro
 * is empty and costs nothing; the CMake option RAFTKV_FAILPOINTS is on by default only for
 * the Debug and Sanitize build types, which the tests use.
 *
 * Arming: RAFTKV_FAILPOINTS="name[=action][,name[=action]...]", read once, at the first hit
 * or at failpoint_describe(). Actions:
 *   crash      (default) write "failpoint <name>: crash" to stderr, then SIGKILL ourselves:
 *              no exit handlers, no flushing, exactly like `kill -9` at that instruction;
 *   crash@N    the same at the N-th hit (N >= 1), earlier hits pass;
 *   sleep:MS   sleep MS milliseconds at every hit (slow disks, slow transfers).
 * Unknown names are accepted (a test may arm a point this build never reaches) but a
 * malformed action is reported by failpoint_describe() and the point stays disarmed.
 *
 * The names in use are listed in docs/testing.md ("Crash points"); a point's name says
 * where it is: <module>.<what>.<when>.
 */

#ifdef RAFTKV_FAILPOINTS
void failpoint_hit(const char *name);
#define FAILPOINT(name) failpoint_hit(name)
#else
#define FAILPOINT(name) ((void)0)
#endif

/* Whether this build has failpoints compiled in. */
bool failpoint_compiled(void);

/* Describe what RAFTKV_FAILPOINTS arms, for the startup log: "" when the variable is unset;
 * otherwise a sentence (which points, or why nothing is armed: a build without failpoints,
 * a malformed action). Thread-safe. */
void failpoint_describe(char *buf, size_t len);

#endif
