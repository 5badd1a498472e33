/* Benchmark of the Berkeley DB storage layer: durable appends and loading at start. */

/*
 * What it measures
 * ----------------
 * Appends: 128-byte entries written with storage_write(sync = true) in batches of 1, 16, 64
 * and 256 entries, one batch at a time, for --seconds per batch size on a fresh store. It
 * prints entries per second and the latency of one storage_write (commit + fsync of the BDB
 * log) at p50 and p99. storage_maybe_checkpoint(false) runs after every batch, as the server
 * would; its cost counts in entries/s but not in the write latency.
 *
 * Load: --load-entries 128-byte entries are written (unsynced batches of 256, the last one
 * synced), the store is closed, and the time to storage_open + storage_load them is taken.
 *
 * Each figure is measured --runs times, each on a new directory under --dir; the median run
 * is printed last.
 */

#include "server/storage/storage.h"
#include "tests/storage/storage_testlib.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENTRY_BYTES 128
#define MAX_RUNS    99

struct opts {
	const char *dir;
	double seconds;
	unsigned runs;
	uint64_t load_entries;
};

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("storage_bench: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: storage_bench [--dir DIR] [--seconds S] [--runs R] "
		"[--load-entries N]\n"
		"  --dir DIR          where the temporary stores go (default /tmp)\n"
		"  --seconds S        seconds of appends per batch size and run (default 2)\n"
		"  --runs R           runs of every measurement; the median is printed "
		"(default 3)\n"
		"  --load-entries N   entries in the log timed at load (default 100000)\n");
	exit(2);
}

static void parse(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){.dir = "/tmp", .seconds = 2, .runs = 3, .load_entries = 100000};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
			usage();
		if (i + 1 >= argc)
			usage();
		const char *v = argv[++i];
		char *end;
		errno = 0;
		if (strcmp(a, "--dir") == 0) {
			o->dir = v;
		} else if (strcmp(a, "--seconds") == 0) {
			o->seconds = strtod(v, &end);
			if (errno || *end || o->seconds <= 0)
				die("--seconds: bad value %s", v);
		} else if (strcmp(a, "--runs") == 0) {
			unsigned long r = strtoul(v, &end, 10);
			if (errno || *end || r == 0 || r > MAX_RUNS)
				die("--runs: 1..%d", MAX_RUNS);
			o->runs = (unsigned)r;
		} else if (strcmp(a, "--load-entries") == 0) {
			o->load_entries = strtoull(v, &end, 10);
			if (errno || *end || o->load_entries == 0)
				die("--load-entries: bad value %s", v);
		} else {
			usage();
		}
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The q-quantile of sorted v (nearest rank). */
static double quantile(const double *v, size_t n, double q)
{
	if (n == 0)
		return 0;
	size_t k = (size_t)(q * (double)n + 0.999999);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

struct bench_store {
	char dir[4096];
	struct storage *s;
};

static void store_open(const struct opts *o, struct bench_store *b)
{
	if (tl_mkdtemp(o->dir, "raftkv-storage-bench", b->dir, sizeof(b->dir)) != 0)
		die("mkdtemp in %s: %s", o->dir, strerror(errno));
	char msg[512];
	int rc = storage_open(b->dir, NULL, &b->s, msg, sizeof(msg));
	if (rc != 0)
		die("storage_open: %d: %s", rc, msg);
}

static void store_reopen(struct bench_store *b)
{
	storage_close(b->s);
	char msg[512];
	int rc = storage_open(b->dir, NULL, &b->s, msg, sizeof(msg));
	if (rc != 0)
		die("storage_open: %d: %s", rc, msg);
}

static void store_remove(struct bench_store *b)
{
	storage_close(b->s);
	b->s = NULL;
	if (tl_rm_rf(b->dir) != 0)
		fprintf(stderr, "storage_bench: rm -rf %s: %s\n", b->dir, strerror(errno));
}

struct append_result {
	double entries_per_s, p50_ms, p99_ms;
	uint64_t writes;
};

static void run_appends(const struct opts *o, size_t batch, struct append_result *res)
{
	struct bench_store b;
	store_open(o, &b);
	unsigned char *data = malloc(batch * ENTRY_BYTES);
	struct storage_entry *e = calloc(batch, sizeof(*e));
	size_t lat_cap = 1 << 16, n_lat = 0;
	double *lat = malloc(lat_cap * sizeof(*lat));
	if (data == NULL || e == NULL || lat == NULL)
		die("out of memory");
	uint64_t index = 1;
	double start = tl_now_ms(), end = start + o->seconds * 1e3, now = start;
	while (now < end) {
		for (size_t i = 0; i < batch; i++) {
			unsigned char *d = data + i * ENTRY_BYTES;
			tl_stream_fill(index, 0, d, ENTRY_BYTES);
			e[i] = (struct storage_entry){
				.index = index++, .term = 1, .data = d, .len = ENTRY_BYTES};
		}
		struct storage_batch sb = {.entries = e, .n_entries = batch, .sync = true};
		double t0 = tl_now_ms();
		int rc = storage_write(b.s, &sb);
		double t1 = tl_now_ms();
		if (rc != 0)
			die("storage_write: %d: %s", rc, storage_errmsg(b.s));
		if (n_lat == lat_cap) {
			lat_cap *= 2;
			lat = realloc(lat, lat_cap * sizeof(*lat));
			if (lat == NULL)
				die("out of memory");
		}
		lat[n_lat++] = t1 - t0;
		rc = storage_maybe_checkpoint(b.s, false);
		if (rc != 0)
			die("storage_maybe_checkpoint: %d: %s", rc, storage_errmsg(b.s));
		now = tl_now_ms();
	}
	qsort(lat, n_lat, sizeof(*lat), cmp_double);
	res->writes = n_lat;
	res->entries_per_s = (double)(index - 1) / ((now - start) / 1e3);
	res->p50_ms = quantile(lat, n_lat, 0.50);
	res->p99_ms = quantile(lat, n_lat, 0.99);
	free(lat);
	free(e);
	free(data);
	store_remove(&b);
}

static int count_entry(void *arg, const struct storage_entry *e)
{
	(void)e;
	(*(uint64_t *)arg)++;
	return 0;
}

/* Time storage_open + storage_load of a log of o->load_entries entries (ms). */
static void run_load(const struct opts *o, double *open_ms, double *load_ms)
{
	struct bench_store b;
	store_open(o, &b);
	enum { PER_BATCH = 256 };
	static unsigned char data[PER_BATCH][ENTRY_BYTES];
	struct storage_entry e[PER_BATCH];
	uint64_t index = 1;
	while (index <= o->load_entries) {
		size_t n = 0;
		for (; n < PER_BATCH && index <= o->load_entries; n++, index++) {
			tl_stream_fill(index, 0, data[n], ENTRY_BYTES);
			e[n] = (struct storage_entry){
				.index = index, .term = 1, .data = data[n], .len = ENTRY_BYTES};
		}
		struct storage_batch sb = {
			.entries = e, .n_entries = n, .sync = index > o->load_entries};
		int rc = storage_write(b.s, &sb);
		if (rc != 0)
			die("storage_write: %d: %s", rc, storage_errmsg(b.s));
		rc = storage_maybe_checkpoint(b.s, false);
		if (rc != 0)
			die("storage_maybe_checkpoint: %d: %s", rc, storage_errmsg(b.s));
	}
	storage_close(b.s);
	b.s = NULL;
	double t0 = tl_now_ms();
	store_reopen(&b);
	double t1 = tl_now_ms();
	struct storage_hard_state hs;
	struct storage_snapshot_info snap;
	uint64_t count = 0;
	int rc = storage_load(b.s, &hs, &snap, count_entry, &count);
	double t2 = tl_now_ms();
	if (rc != 0)
		die("storage_load: %d: %s", rc, storage_errmsg(b.s));
	if (count != o->load_entries)
		die("storage_load delivered %" PRIu64 " entries, expected %" PRIu64, count,
		    o->load_entries);
	storage_snapshot_info_free(&snap);
	*open_ms = t1 - t0;
	*load_ms = t2 - t1;
	store_remove(&b);
}

int main(int argc, char **argv)
{
	struct opts o;
	parse(argc, argv, &o);
	printf("storage_bench: dir=%s seconds=%g runs=%u, %d-byte entries, sync=true\n", o.dir,
	       o.seconds, o.runs, ENTRY_BYTES);
	printf("%-6s %-4s %12s %9s %9s %9s\n", "batch", "run", "entries/s", "writes", "p50_ms",
	       "p99_ms");
	static const size_t batches[] = {1, 16, 64, 256};
	double med[4][3];
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
		double eps[MAX_RUNS], p50[MAX_RUNS], p99[MAX_RUNS];
		for (unsigned r = 0; r < o.runs; r++) {
			struct append_result res;
			run_appends(&o, batches[k], &res);
			eps[r] = res.entries_per_s;
			p50[r] = res.p50_ms;
			p99[r] = res.p99_ms;
			printf("%-6zu %-4u %12.0f %9" PRIu64 " %9.3f %9.3f\n", batches[k], r + 1,
			       res.entries_per_s, res.writes, res.p50_ms, res.p99_ms);
			fflush(stdout);
		}
		med[k][0] = median(eps, o.runs);
		med[k][1] = median(p50, o.runs);
		med[k][2] = median(p99, o.runs);
	}

	double open_ms[MAX_RUNS], load_ms[MAX_RUNS], total_ms[MAX_RUNS];
	for (unsigned r = 0; r < o.runs; r++) {
		run_load(&o, &open_ms[r], &load_ms[r]);
		total_ms[r] = open_ms[r] + load_ms[r];
		printf("load %" PRIu64 " entries, run %u: open %.1f ms + load %.1f ms = %.1f ms\n",
		       o.load_entries, r + 1, open_ms[r], load_ms[r], total_ms[r]);
		fflush(stdout);
	}

	printf("\nmedian of %u runs (each storage_write is one synced commit):\n", o.runs);
	printf("%-6s %12s %9s %9s\n", "batch", "entries/s", "p50_ms", "p99_ms");
	for (size_t k = 0; k < sizeof(batches) / sizeof(batches[0]); k++)
		printf("%-6zu %12.0f %9.3f %9.3f\n", batches[k], med[k][0], med[k][1], med[k][2]);
	printf("open+load of %" PRIu64 " entries: %.1f ms (open %.1f ms, load %.1f ms)\n",
	       o.load_entries, median(total_ms, o.runs), median(open_ms, o.runs),
	       median(load_ms, o.runs));
	return 0;
}
