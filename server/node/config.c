/* raftnode flags: one table gives each option's flag, environment variable, default and help,
 * so parsing, --help and the README's reference cannot drift apart. */
#include "server/node/config.h"

#include "common/flags.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR(field, flag, env, def, help) FLAG_STR(struct node_config, field, flag, env, def, help)
#define U64(field, flag, env, def, help) FLAG_U64(struct node_config, field, flag, env, def, help)

static const struct flag_spec opts[] = {
	STR(name, "name", "RAFTKV_NAME", "", "member name, unique in the cluster (required)"),
	STR(data_dir, "data-dir", "RAFTKV_DATA_DIR", "",
	    "data directory (required; created if missing)"),
	STR(listen_peer, "listen-peer", "RAFTKV_LISTEN_PEER", "",
	    "address to serve peers on (default: this member's address in --initial-cluster)"),
	STR(advertise_peer, "advertise-peer", "RAFTKV_ADVERTISE_PEER", "",
	    "address peers reach this node at (default: from --initial-cluster)"),
	STR(listen_client, "listen-client", "RAFTKV_LISTEN_CLIENT", "",
	    "extra address to serve clients on (default: clients use the peer address)"),
	STR(advertise_client, "advertise-client", "RAFTKV_ADVERTISE_CLIENT", "",
	    "client address given to callers in leader hints (default: --listen-client, else the "
	    "peer address)"),
	STR(initial_cluster, "initial-cluster", "RAFTKV_INITIAL_CLUSTER", "",
	    "founding members as name=host:port,...; used only when the data directory is empty"),
	U64(tick_ms, "tick-ms", "RAFTKV_TICK_MS", "10", "Raft clock tick in milliseconds"),
	U64(heartbeat_ms, "heartbeat-ms", "RAFTKV_HEARTBEAT_MS", "50",
	    "leader heartbeat interval (a multiple of --tick-ms)"),
	U64(election_ms, "election-ms", "RAFTKV_ELECTION_MS", "250",
	    "election timeout, randomized in [t, 2t) (a multiple of --tick-ms, > heartbeat)"),
	U64(snapshot_entries, "snapshot-entries", "RAFTKV_SNAPSHOT_ENTRIES", "10000",
	    "take a snapshot after this many entries applied since the last one"),
	U64(snapshot_bytes, "snapshot-bytes", "RAFTKV_SNAPSHOT_BYTES", "67108864",
	    "or after this many bytes of commands applied since the last one"),
	U64(snapshot_log_percent, "snapshot-log-percent", "RAFTKV_SNAPSHOT_LOG_PERCENT", "50",
	    "take a snapshot only once the commands since the last one reach this percentage of "
	    "its size (bounds the rewrite per byte written; 0: no such bound)"),
	U64(snapshot_trailing, "snapshot-trailing", "RAFTKV_SNAPSHOT_TRAILING", "1000",
	    "entries kept in memory behind a snapshot for slightly lagging followers"),
	U64(max_request_bytes, "max-request-bytes", "RAFTKV_MAX_REQUEST_BYTES", "4194304",
	    "largest client request message (RESOURCE_EXHAUSTED beyond)"),
	U64(max_key_bytes, "max-key-bytes", "RAFTKV_MAX_KEY_BYTES", "4096",
	    "largest key (INVALID_ARGUMENT beyond); must be equal on every member"),
	U64(max_value_bytes, "max-value-bytes", "RAFTKV_MAX_VALUE_BYTES", "1048576",
	    "largest value (RESOURCE_EXHAUSTED beyond); must be equal on every member"),
	U64(max_txn_ops, "max-txn-ops", "RAFTKV_MAX_TXN_OPS", "128",
	    "most compares / operations per Txn branch; must be equal on every member"),
	U64(session_ttl_ms, "session-ttl-ms", "RAFTKV_SESSION_TTL_MS", "600000",
	    "how long a write id session lives unused, in leader time (retries of its writes are "
	    "deduplicated that long); must be equal on every member"),
	U64(quota_bytes, "quota-bytes", "RAFTKV_QUOTA_BYTES", "2147483648",
	    "bytes of keys and values the store may hold; past it writes that could add data get "
	    "RESOURCE_EXHAUSTED and the QUOTA alarm is raised, deletes go on (0: no quota)"),
	U64(min_free_bytes, "min-free-bytes", "RAFTKV_MIN_FREE_BYTES", "67108864",
	    "free space the data directory must keep, besides room for one more snapshot; below "
	    "it the member raises the NOSPACE alarm and takes no new writes (0: no watch)"),
	U64(shutdown_timeout_ms, "shutdown-timeout-ms", "RAFTKV_SHUTDOWN_TIMEOUT_MS", "5000",
	    "on SIGTERM, how long a leader tries to hand over leadership before exiting"),
	STR(log_level, "log-level", "RAFTKV_LOG_LEVEL", "info", "debug, info, warn or error"),
	STR(log_format, "log-format", "RAFTKV_LOG_FORMAT", "text",
	    "text or json (one object per line)"),
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

raft_id config_name_id(const char *name)
{
	uint64_t h = 14695981039346656037ULL;
	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h != 0 ? h : 1;
}

const char *config_member_peer(const char *addr, char *name, size_t cap)
{
	const char *eq = strchr(addr, '=');
	size_t n = eq != NULL ? (size_t)(eq - addr) : 0;
	if (cap > 0) {
		if (n >= cap)
			n = cap - 1;
		memcpy(name, addr, n);
		name[n] = '\0';
	}
	return eq != NULL ? eq + 1 : addr;
}

static int cmp_member(const void *a, const void *b)
{
	const struct raft_member *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* Parse "n1=host:port,n2=host:port" into c->initial (sorted by id) and c->cluster_id. */
static int parse_cluster(struct node_config *c, char *err, size_t errlen)
{
	memset(&c->initial, 0, sizeof(c->initial));
	char buf[sizeof(c->initial_cluster)];
	memcpy(buf, c->initial_cluster, sizeof(buf));
	char *save = NULL;
	for (char *item = strtok_r(buf, ",", &save); item != NULL;
	     item = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(item, '=');
		if (eq == NULL || eq == item || eq[1] == '\0') {
			snprintf(err, errlen, "--initial-cluster: \"%s\" is not name=host:port",
				 item);
			return -1;
		}
		if (strlen(item) >= RAFT_ADDR_MAX) {
			snprintf(err, errlen, "--initial-cluster: \"%s\" is longer than %d bytes",
				 item, RAFT_ADDR_MAX - 1);
			return -1;
		}
		*eq = '\0';
		raft_id id = config_name_id(item);
		*eq = '=';
		int rv = raft_conf_add(&c->initial, id, RAFT_VOTER, item);
		if (rv != 0) {
			snprintf(err, errlen, "--initial-cluster: member \"%s\": %s", item,
				 rv == RAFT_EEXIST ? "listed twice (or its name's id collides)"
						   : raft_strerror(rv));
			return -1;
		}
	}
	qsort(c->initial.members, c->initial.n, sizeof(c->initial.members[0]), cmp_member);
	uint64_t h = 14695981039346656037ULL;
	for (unsigned i = 0; i < c->initial.n; i++) {
		for (const char *p = c->initial.members[i].addr; *p != '\0'; p++) {
			h ^= (unsigned char)*p;
			h *= 1099511628211ULL;
		}
		h ^= ',';
		h *= 1099511628211ULL;
	}
	c->cluster_id = h;
	return 0;
}

static int validate(struct node_config *c, char *err, size_t errlen)
{
	if (c->name[0] == '\0' || strchr(c->name, '=') != NULL || strchr(c->name, ',') != NULL) {
		snprintf(err, errlen, "--name is required (and may not contain '=' or ',')");
		return -1;
	}
	if (c->data_dir[0] == '\0') {
		snprintf(err, errlen, "--data-dir is required");
		return -1;
	}
	c->id = config_name_id(c->name);
	if (c->initial_cluster[0] != '\0' && parse_cluster(c, err, errlen) != 0)
		return -1;
	const struct raft_member *me = raft_conf_get(&c->initial, c->id);
	if (c->initial_cluster[0] != '\0' && me == NULL) {
		snprintf(err, errlen, "--initial-cluster does not list this member (%s)", c->name);
		return -1;
	}
	if (me != NULL) {
		char nm[64];
		const char *peer = config_member_peer(me->addr, nm, sizeof(nm));
		if (c->advertise_peer[0] == '\0')
			snprintf(c->advertise_peer, sizeof(c->advertise_peer), "%s", peer);
		if (c->listen_peer[0] == '\0')
			snprintf(c->listen_peer, sizeof(c->listen_peer), "%s", peer);
	}
	if (c->listen_peer[0] == '\0') {
		snprintf(err, errlen,
			 "--listen-peer is required (or list this member in --initial-cluster)");
		return -1;
	}
	if (c->advertise_peer[0] == '\0')
		snprintf(c->advertise_peer, sizeof(c->advertise_peer), "%s", c->listen_peer);
	if (c->advertise_client[0] == '\0')
		snprintf(c->advertise_client, sizeof(c->advertise_client), "%s",
			 c->listen_client[0] != '\0' ? c->listen_client : c->advertise_peer);
	if (c->tick_ms == 0 || c->heartbeat_ms < c->tick_ms || c->heartbeat_ms % c->tick_ms != 0 ||
	    c->election_ms % c->tick_ms != 0 || c->election_ms <= c->heartbeat_ms) {
		snprintf(
			err, errlen,
			"timeouts: need tick-ms > 0, heartbeat-ms and election-ms multiples of it, "
			"and election-ms > heartbeat-ms (got %llu/%llu/%llu)",
			(unsigned long long)c->tick_ms, (unsigned long long)c->heartbeat_ms,
			(unsigned long long)c->election_ms);
		return -1;
	}
	if (c->snapshot_entries == 0 || c->snapshot_bytes == 0 || c->max_key_bytes == 0 ||
	    c->max_value_bytes == 0 || c->max_txn_ops == 0 || c->session_ttl_ms == 0 ||
	    c->max_request_bytes < 1024 || c->max_key_bytes > 65536 ||
	    c->max_value_bytes > (64u << 20) || c->max_request_bytes > (256u << 20)) {
		snprintf(err, errlen,
			 "limits: snapshot-entries, snapshot-bytes, max-key-bytes (<= 65536), "
			 "max-value-bytes "
			 "(<= 64 MiB), max-txn-ops, session-ttl-ms must be > 0; max-request-bytes "
			 "in [1024, 256 MiB]");
		return -1;
	}
	if (log_options_parse(c->log_level, c->log_format, NULL, NULL) != 0) {
		snprintf(err, errlen,
			 "--log-level must be debug|info|warn|error, --log-format text|json");
		return -1;
	}
	return 0;
}

int config_parse(struct node_config *c, int argc, char **argv, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	int rv = flags_parse(
		opts, N_OPTS, c, argc, argv,
		"usage: raftnode [flags]\n\n"
		"One replica of a raftkv cluster. Every flag may instead be given by its\n"
		"environment variable; a flag wins over the variable.\n",
		err, errlen);
	if (rv != 0)
		return rv;
	return validate(c, err, errlen);
}
