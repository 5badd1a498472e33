/* Membership configurations: lookups, validation and the log/snapshot encoding. */
#ifndef RAFTKV_RAFT_CONF_H
#define RAFTKV_RAFT_CONF_H

#include <stdbool.h>

#include "server/raft/raft.h"

/* True if ids are non-zero and unique, roles known, addresses NUL-terminated, n in range. */
bool raft_conf_valid(const struct raft_conf *c);
bool raft_conf_is_voter(const struct raft_conf *c, raft_id id);
/* Remove member `id`; returns false if absent. */
bool raft_conf_remove(struct raft_conf *c, raft_id id);

#endif
