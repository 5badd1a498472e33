/* Helpers shared by the storage test programs: temporary directories, deterministic entry
 * contents, collecting what storage_load delivers, and child processes. Header-only (each
 * tests/storage/test_*.c is its own program), so everything here is static inline. */
#ifndef RAFTKV_TESTS_STORAGE_TESTLIB_H
#define RAFTKV_TESTS_STORAGE_TESTLIB_H

#include "server/storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- files and directories ------------------------------------------------------------ */

/* Remove `path` and everything below it (like rm -rf; symlinks are not followed). Returns 0,
 * or -1 with errno set by the first failure (the rest is still attempted). */
static inline int tl_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	int rv = 0, err = 0;
	DIR *d = opendir(path);
	if (d == NULL)
		return -1;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		size_t n = strlen(path) + strlen(de->d_name) + 2;
		char *child = malloc(n);
		if (child == NULL) {
			rv = -1;
			err = ENOMEM;
			continue;
		}
		snprintf(child, n, "%s/%s", path, de->d_name);
		if (tl_rm_rf(child) != 0 && rv == 0) {
			rv = -1;
			err = errno;
		}
		free(child);
	}
	closedir(d);
	if (rmdir(path) != 0 && rv == 0) {
		rv = -1;
		err = errno;
	}
	if (rv != 0)
		errno = err;
	return rv;
}

/* A fresh directory "<base>/<prefix>.XXXXXX" in `out` (at least 4096 bytes). 0 or -1. */
static inline int tl_mkdtemp(const char *base, const char *prefix, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%s.XXXXXX", base, prefix);
	if (n < 0 || (size_t)n >= cap)
		return -1;
	return mkdtemp(out) == NULL ? -1 : 0;
}

/* Where temporary stores go: $TMPDIR when set (to run on a chosen file system), else /tmp. */
static inline const char *tl_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	return t != NULL && t[0] != '\0' ? t : "/tmp";
}

/* Number of directory entries of `dir` whose name starts with `prefix`; -1 on error. `name`
 * (unless NULL) gets the last one's name. */
static inline int tl_find_prefix(const char *dir, const char *prefix, char *name, size_t cap)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
			n++;
			if (name != NULL)
				snprintf(name, cap, "%s", de->d_name);
		}
	closedir(d);
	return n;
}

static inline int tl_count_prefix(const char *dir, const char *prefix)
{
	return tl_find_prefix(dir, prefix, NULL, 0);
}

/* Size of a file, or -1. */
static inline long long tl_file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Write/read exactly n bytes (retrying on EINTR and short transfers). 0 or -1. */
static inline int tl_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Milliseconds on the monotonic clock. */
static inline double tl_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static inline void tl_sleep_ms(double ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1e3),
			      .tv_nsec = (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- deterministic entry contents ----------------------------------------------------- */

/* splitmix64: a stateless mix, so an entry's bytes follow from (index, term) alone and a
 * verifier never needs the writer's memory. */
static inline uint64_t tl_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* Payload length of entry (index, term): mostly 0..300 bytes, now and then a few KiB (BDB
 * overflow pages), sometimes empty. */
static inline size_t tl_entry_len(uint64_t index, uint64_t term)
{
	uint64_t h = tl_mix(index * 0x100000001b3ULL ^ tl_mix(term));
	if (h % 97 == 0)
		return 0;
	if (h % 41 == 0)
		return 2000 + (size_t)(h >> 40) % 6000;
	return 1 + (size_t)(h >> 32) % 300;
}

#define TL_ENTRY_MAX 8000 /* bound of tl_entry_len */

static inline uint8_t tl_entry_type(uint64_t index, uint64_t term)
{
	return (uint8_t)(tl_mix(index ^ (term << 32) ^ 0x5555) % 4);
}

static inline void tl_entry_fill(uint64_t index, uint64_t term, void *buf, size_t len)
{
	unsigned char *p = buf;
	uint64_t x = tl_mix(index) ^ tl_mix(term + 0x1234);
	for (size_t i = 0; i < len; i += 8) {
		x = tl_mix(x);
		for (size_t j = 0; j < 8 && i + j < len; j++)
			p[i + j] = (unsigned char)(x >> (8 * j));
	}
}

/* Pseudo-random bytes from a seed and a byte offset, so a stream can be produced and checked
 * in arbitrary pieces (snapshot data). */
static inline unsigned char tl_stream_byte(uint64_t seed, uint64_t off)
{
	return (unsigned char)(tl_mix(seed ^ tl_mix(off >> 3)) >> (8 * (off & 7)));
}

static inline void tl_stream_fill(uint64_t seed, uint64_t off, void *buf, size_t len)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++)
		p[i] = tl_stream_byte(seed, off + i);
}

/* ---- collecting what storage_load delivers -------------------------------------------- */

struct tl_entry {
	uint64_t index, term;
	uint8_t type;
	size_t len;
	unsigned char *data;
};

struct tl_entries {
	struct tl_entry *v;
	size_t n, cap;
	bool oom;
};

/* storage_entry_fn that appends a copy of every entry to a struct tl_entries. */
static inline int tl_collect(void *arg, const struct storage_entry *e)
{
	struct tl_entries *c = arg;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		struct tl_entry *v = realloc(c->v, cap * sizeof(*v));
		if (v == NULL) {
			c->oom = true;
			return -1000;
		}
		c->v = v;
		c->cap = cap;
	}
	struct tl_entry *t = &c->v[c->n];
	t->index = e->index;
	t->term = e->term;
	t->type = e->type;
	t->len = e->len;
	t->data = malloc(e->len ? e->len : 1);
	if (t->data == NULL) {
		c->oom = true;
		return -1000;
	}
	if (e->len)
		memcpy(t->data, e->data, e->len);
	c->n++;
	return 0;
}

static inline void tl_entries_free(struct tl_entries *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i].data);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* Does stored entry `t` hold exactly the deterministic contents of (index, term)? */
static inline bool tl_entry_matches(const struct tl_entry *t, uint64_t index, uint64_t term)
{
	if (t->index != index || t->term != term || t->type != tl_entry_type(index, term))
		return false;
	size_t len = tl_entry_len(index, term);
	if (t->len != len)
		return false;
	unsigned char want[TL_ENTRY_MAX];
	tl_entry_fill(index, term, want, len);
	return memcmp(t->data, want, len) == 0;
}

/* ---- child processes ------------------------------------------------------------------ */

/* Describe a wait status ("exited with 3", "killed by signal 9"). */
static inline const char *tl_wait_str(int status, char *buf, size_t cap)
{
	if (WIFEXITED(status))
		snprintf(buf, cap, "exited with %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, cap, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, cap, "wait status 0x%x", (unsigned)status);
	return buf;
}

/* Run argv (PATH lookup) with stdin from /dev/null and stdout+stderr captured into `out`
 * (truncated, NUL-terminated). Returns the wait status, or -1 if it could not be started. */
static inline int tl_run(char *const argv[], char *out, size_t cap)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);
		if (nul >= 0)
			dup2(nul, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	char tmp[512];
	for (;;) {
		ssize_t r = read(p[0], tmp, sizeof(tmp));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			if (cap > 0 && n + 1 < cap)
				out[n++] = tmp[i];
	}
	if (cap > 0)
		out[n] = '\0';
	close(p[0]);
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return status;
}

#endif
