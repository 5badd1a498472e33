/* raftnode configuration: command-line flags with RAFTKV_* environment fallbacks. */
#ifndef RAFTKV_NODE_CONFIG_H
#define RAFTKV_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/raft/raft.h"

#define CONFIG_STR_MAX 256

struct node_config {
	char name[64];
	char data_dir[CONFIG_STR_MAX];
	char listen_peer[CONFIG_STR_MAX];
	char advertise_peer[CONFIG_STR_MAX];
	char listen_client[CONFIG_STR_MAX];
	char advertise_client[CONFIG_STR_MAX];
	char initial_cluster[4096];
	uint64_t tick_ms;
	uint64_t heartbeat_ms;
	uint64_t election_ms;
	uint64_t snapshot_entries;
	uint64_t snapshot_trailing;
	uint64_t snapshot_bytes;
	uint64_t snapshot_log_percent;
	uint64_t max_request_bytes;
	uint64_t max_key_bytes;
	uint64_t max_value_bytes;
	uint64_t max_txn_ops;
	uint64_t session_ttl_ms;
	uint64_t min_free_bytes;
	uint64_t quota_bytes;
	uint64_t shutdown_timeout_ms;
	char log_level[16];
	char log_format[16];

	/* Derived by config_parse. */
	raft_id id;
	struct raft_conf initial; /* from initial_cluster; members sorted by id */
	uint64_t cluster_id;      /* hash of the sorted initial cluster */
};

/* Parse argv (then RAFTKV_* variables for flags not given, then defaults) and validate.
 * Returns 0; 1 when help was printed (exit 0); -1 on an error, described in errmsg. */
int config_parse(struct node_config *c, int argc, char **argv, char *errmsg, size_t errmsg_len);

/* The node id of a member name (FNV-1a 64 of the name, never 0). */
raft_id config_name_id(const char *name);

/* Split a conf member address "<name>=<peer address>": returns the peer address part and
 * copies the name into name[cap]. */
const char *config_member_peer(const char *addr, char *name, size_t cap);

#endif
