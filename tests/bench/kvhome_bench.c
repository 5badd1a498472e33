/* The state machine's home, measured: what keeping the key-value state in a Berkeley DB btree
 * (the design etcd's bbolt and TiKV's RocksDB stand for) would cost per write. */

/*
 * What it measures
 * ----------------
 * A BDB environment set up as server/storage sets up its own (transactions, a private
 * cache, 4 KiB pages with checksums, log files removed after checkpoints) holds one btree of
 * --keys keys (16 B) with 160-byte values (the 128 B value plus the revisions and version a
 * key carries), loaded first in a random order. Then, for --seconds, puts overwrite random
 * keys in transactions of --batch puts plus the applied index (one raft apply batch, as that
 * design would commit it), committed without fsync (the raft log is what makes a write
 * durable) and checkpointed after every 32 MiB of BDB log, as server/storage does.
 *
 * It prints puts per second on one thread, CPU per put, and the bytes the process wrote to
 * storage (/proc/self/io write_bytes) per byte of key and value put, with BDB's share of
 * log bytes and of pages written out. These bytes come on top of the raft log's, which both
 * designs write; what that design saves is the snapshots (see docs/storage.md).
 *
 *   build/tests/kvhome_bench [--dir DIR] [--keys N] [--seconds S] [--batch B] [--cache-mib M]
 */
#define _GNU_SOURCE
#include <db.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/byteorder.h"
#include "common/prng.h"

#define KEY_BYTES   16
#define VALUE_BYTES 160 /* 128 B of value + create/mod revision, version, lease */
#define KV_BYTES    (16 + 128)

static void check(int ret, const char *what)
{
	if (ret != 0) {
		fprintf(stderr, "kvhome_bench: %s: %s\n", what, db_strerror(ret));
		exit(1);
	}
}

static uint64_t write_bytes(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	char line[128];
	uint64_t v = 0;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "write_bytes: %" SCNu64, &v) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return v;
}

static double now_s(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Key i of the store: a fixed-width name, as kvload writes them. */
static void key_of(uint64_t i, unsigned char k[KEY_BYTES])
{
	char buf[KEY_BYTES + 1];
	snprintf(buf, sizeof(buf), "key%013" PRIu64, i);
	memcpy(k, buf, KEY_BYTES);
}

struct counters {
	uint64_t log_bytes, pages_out;
};

static struct counters bdb_counters(DB_ENV *env)
{
	struct counters c = {0, 0};
	DB_LOG_STAT *ls = NULL;
	DB_MPOOL_STAT *ms = NULL;
	check(env->log_stat(env, &ls, 0), "log_stat");
	check(env->memp_stat(env, &ms, NULL, 0), "memp_stat");
	c.log_bytes = (uint64_t)ls->st_w_mbytes * 1048576 + ls->st_w_bytes;
	c.pages_out = ms->st_page_out;
	free(ls);
	free(ms);
	return c;
}

/* One transaction: `n` puts of random keys below `keys` (or keys first..first+n-1 in the
 * load's permutation when perm != NULL) and the applied index. */
static void apply_batch(DB_ENV *env, DB *db, struct prng *p, uint64_t keys, const uint64_t *perm,
			uint64_t first, unsigned n, uint64_t applied)
{
	DB_TXN *txn;
	check(env->txn_begin(env, NULL, &txn, 0), "txn_begin");
	unsigned char k[KEY_BYTES], v[VALUE_BYTES];
	for (unsigned i = 0; i < n; i++) {
		uint64_t id = perm != NULL ? perm[first + i] : prng_below(p, keys);
		key_of(id, k);
		for (size_t j = 0; j < sizeof(v); j += 8)
			put_be64(v + j, applied ^ (id * 0x9E3779B97F4A7C15ull) ^ j);
		DBT kd = {.data = k, .size = KEY_BYTES}, vd = {.data = v, .size = VALUE_BYTES};
		check(db->put(db, txn, &kd, &vd, 0), "DB->put");
	}
	unsigned char ak[] = "\xff"
			     "applied",
		      av[8];
	put_be64(av, applied);
	DBT kd = {.data = ak, .size = sizeof(ak) - 1}, vd = {.data = av, .size = 8};
	check(db->put(db, txn, &kd, &vd, 0), "DB->put applied");
	check(txn->commit(txn, DB_TXN_NOSYNC), "commit");
}

int main(int argc, char **argv)
{
	const char *dir = "/tmp";
	uint64_t keys = 1000000;
	double seconds = 60;
	unsigned batch = 32, cache_mib = 64;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--keys") == 0)
			keys = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--seconds") == 0)
			seconds = atof(argv[i + 1]);
		else if (strcmp(argv[i], "--batch") == 0)
			batch = (unsigned)atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--cache-mib") == 0)
			cache_mib = (unsigned)atoi(argv[i + 1]);
		else {
			fprintf(stderr, "usage: kvhome_bench [--dir DIR] [--keys N] [--seconds S] "
					"[--batch B] [--cache-mib M]\n");
			return 2;
		}
	}
	if (keys == 0 || batch == 0 || seconds <= 0) {
		fprintf(stderr, "kvhome_bench: --keys, --batch and --seconds must be positive\n");
		return 2;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/kvhome.XXXXXX", dir);
	if (mkdtemp(path) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	DB_ENV *env;
	check(db_env_create(&env, 0), "db_env_create");
	check(env->set_cachesize(env, 0, cache_mib << 20, 1), "set_cachesize");
	check(env->log_set_config(env, DB_LOG_AUTO_REMOVE, 1), "log_set_config");
	check(env->open(env, path,
			DB_CREATE | DB_INIT_TXN | DB_INIT_LOG | DB_INIT_LOCK | DB_INIT_MPOOL |
				DB_PRIVATE | DB_RECOVER,
			0600),
	      "DB_ENV->open");
	DB *db;
	check(db_create(&db, env, 0), "db_create");
	check(db->set_flags(db, DB_CHKSUM), "set_flags");
	check(db->set_pagesize(db, 4096), "set_pagesize");
	check(db->open(db, NULL, "kv.db", NULL, DB_BTREE, DB_CREATE | DB_AUTO_COMMIT, 0600),
	      "DB->open");

	/* The load: every key once, in a random order, 256 per transaction. */
	struct prng p;
	prng_seed(&p, 42);
	uint64_t *perm = malloc(keys * sizeof(*perm));
	if (perm == NULL)
		return 1;
	for (uint64_t i = 0; i < keys; i++)
		perm[i] = i;
	for (uint64_t i = keys - 1; i > 0; i--) {
		uint64_t j = prng_below(&p, i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	double t0 = now_s(CLOCK_MONOTONIC);
	uint64_t applied = 0;
	for (uint64_t i = 0; i < keys; i += 256) {
		unsigned n = keys - i < 256 ? (unsigned)(keys - i) : 256;
		apply_batch(env, db, &p, keys, perm, i, n, ++applied);
		check(env->txn_checkpoint(env, 32 * 1024, 0, 0), "checkpoint");
	}
	free(perm);
	check(env->txn_checkpoint(env, 0, 0, DB_FORCE), "checkpoint");
	printf("loaded %" PRIu64 " keys in %.1f s (cache %u MiB)\n", keys,
	       now_s(CLOCK_MONOTONIC) - t0, cache_mib);

	/* The puts. */
	uint64_t w0 = write_bytes(), puts = 0;
	struct counters c0 = bdb_counters(env);
	double cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
	t0 = now_s(CLOCK_MONOTONIC);
	double t1 = t0;
	while (t1 - t0 < seconds) {
		apply_batch(env, db, &p, keys, NULL, 0, batch, ++applied);
		puts += batch;
		check(env->txn_checkpoint(env, 32 * 1024, 0, 0), "checkpoint");
		if (puts % (batch * 64) == 0)
			t1 = now_s(CLOCK_MONOTONIC);
	}
	t1 = now_s(CLOCK_MONOTONIC);
	double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
	uint64_t written = write_bytes() - w0;
	struct counters c1 = bdb_counters(env);
	double kv = (double)puts * KV_BYTES;
	printf("%" PRIu64 " keys, batches of %u: %" PRIu64 " puts in %.1f s, %.0f puts/s, %.1f us "
	       "CPU per put; written %.1f MiB = %.2f bytes per byte of key and value (BDB log "
	       "%.2f, pages written out %.2f)\n",
	       keys, batch, puts, t1 - t0, (double)puts / (t1 - t0), cpu * 1e6 / (double)puts,
	       (double)written / 1048576, (double)written / kv,
	       (double)(c1.log_bytes - c0.log_bytes) / kv,
	       (double)(c1.pages_out - c0.pages_out) * 4096 / kv);
	db->close(db, 0);
	env->close(env, 0);
	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd) == 0 ? 0 : 1;
}
