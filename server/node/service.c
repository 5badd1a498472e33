/* raftkv.v1.KV and raftkv.v1.Cluster on a raftnode: decode on the gRPC loop thread, hand to
 * the raft loop, which answers. */
#include <grpc/status.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "raftkv/v1/cluster.pb-c.h"
#include "server/node/node.h"

#define RAFTKV_VERSION "raftkv 0.6.0"

static void on_kv(void *arg, struct tp_call *call, const void *req, size_t len)
{
	struct node *n = service_node;
	enum api_method m = (enum api_method)(uintptr_t)arg;
	if (len > n->cfg.max_request_bytes) {
		char why[96];
		snprintf(why, sizeof(why),
			 "request of %zu bytes exceeds --max-request-bytes (%" PRIu64 ")", len,
			 n->cfg.max_request_bytes);
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, why, NULL, 0, NULL, 0);
		return;
	}
	struct api_request *r = calloc(1, sizeof(*r));
	if (r == NULL) {
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL,
			      0);
		return;
	}
	char err[256] = "";
	int st = api_decode(m, req, len, &n->kv_opts, r, err, sizeof(err));
	if (st != GRPC_STATUS_OK) {
		tp_call_reply(call, st, err, NULL, 0, NULL, 0);
		request_free(r);
		return;
	}
	struct mb_item *it = mb_item_new(MB_CLIENT);
	it->call = call;
	it->req = r;
	mailbox_post(&n->mb, it);
}

static void on_cluster(void *arg, struct tp_call *call, const void *req, size_t len)
{
	(void)req;
	(void)len; /* both requests are empty messages; unknown fields are ignored */
	struct mb_item *it = mb_item_new((enum mb_kind)(uintptr_t)arg);
	it->call = call;
	mailbox_post(&service_node->mb, it);
}

#define KV_METHOD(name, m)                                                     \
	{                                                                      \
		"/raftkv.v1.KV/" name, TP_UNARY, on_kv, (void *)(uintptr_t)(m) \
	}

const struct tp_method node_methods[] = {
	KV_METHOD("Put", API_PUT),
	KV_METHOD("Get", API_GET),
	KV_METHOD("Delete", API_DELETE),
	KV_METHOD("Range", API_RANGE),
	KV_METHOD("Append", API_APPEND),
	KV_METHOD("Txn", API_TXN),
	{"/raftkv.v1.Cluster/Status", TP_UNARY, on_cluster, (void *)(uintptr_t)MB_STATUS},
	{"/raftkv.v1.Cluster/MemberList", TP_UNARY, on_cluster, (void *)(uintptr_t)MB_MEMBERS},
	{"/raftkv.v1.Raft/Send", TP_CLIENT_STREAM, peers_on_send, NULL},
	{"/raftkv.v1.Raft/InstallSnapshot", TP_CLIENT_STREAM, peers_on_install, NULL},
};
const size_t node_n_methods = sizeof(node_methods) / sizeof(node_methods[0]);

/* ---- answers built on the raft loop ---------------------------------------------------- */

static const char *client_addr_of(struct node *n, raft_id id)
{
	if (id == n->cfg.id)
		return n->cfg.advertise_client;
	struct peer *p = peer_find(n, id);
	return p != NULL ? p->client_addr : "";
}

void service_reply_unavailable(struct node *n, struct tp_call *call, const char *why)
{
	raft_id leader = raft_leader(n->raft);
	char hint[RAFT_ADDR_MAX + 24];
	char details[256];
	if (leader == 0 || leader == n->cfg.id || n->stopping) {
		snprintf(details, sizeof(details), "%s; no leader known", why);
		if (leader == n->cfg.id || n->stopping)
			snprintf(details, sizeof(details), "%s", why);
		tp_call_reply(call, GRPC_STATUS_UNAVAILABLE, details, NULL, 0, NULL, 0);
		return;
	}
	snprintf(hint, sizeof(hint), "%" PRIu64 "@%s", leader, client_addr_of(n, leader));
	snprintf(details, sizeof(details), "%s; the leader is %s", why, hint);
	struct tp_md md = {"raftkv-leader", hint, 0};
	tp_call_reply(call, GRPC_STATUS_UNAVAILABLE, details, NULL, 0, &md, 1);
}

/* Fill members[] (pointers into `store`) from the current configuration. */
static size_t fill_members(struct node *n, Raftkv__V1__Member *store, Raftkv__V1__Member **ptrs,
			   char names[][64])
{
	const struct raft_conf *c = raft_conf_current(n->raft);
	for (unsigned i = 0; i < c->n; i++) {
		const struct raft_member *m = &c->members[i];
		raftkv__v1__member__init(&store[i]);
		store[i].id = m->id;
		store[i].peer_address = (char *)config_member_peer(m->addr, names[i], 64);
		store[i].name = names[i];
		store[i].client_address = (char *)client_addr_of(n, m->id);
		store[i].is_learner = m->role == RAFT_LEARNER;
		ptrs[i] = &store[i];
	}
	return c->n;
}

static void reply_packed(struct tp_call *call, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	unsigned char *buf = malloc(len + 1);
	if (buf == NULL) {
		tp_call_reply(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL, 0, NULL,
			      0);
		return;
	}
	protobuf_c_message_pack(msg, buf);
	tp_call_reply(call, GRPC_STATUS_OK, NULL, buf, len, NULL, 0);
	free(buf);
}

void service_reply_status(struct node *n, struct tp_call *call)
{
	Raftkv__V1__Member store[RAFT_MAX_MEMBERS];
	Raftkv__V1__Member *ptrs[RAFT_MAX_MEMBERS];
	char names[RAFT_MAX_MEMBERS][64];
	Raftkv__V1__StatusResponse r = RAFTKV__V1__STATUS_RESPONSE__INIT;
	r.id = n->cfg.id;
	r.name = n->cfg.name;
	switch (raft_role(n->raft)) {
	case RAFT_LEADER:
		r.role = RAFTKV__V1__STATUS_RESPONSE__ROLE__LEADER;
		break;
	case RAFT_CANDIDATE:
		r.role = RAFTKV__V1__STATUS_RESPONSE__ROLE__CANDIDATE;
		break;
	case RAFT_PRECANDIDATE:
		r.role = RAFTKV__V1__STATUS_RESPONSE__ROLE__PRE_CANDIDATE;
		break;
	default:
		r.role = RAFTKV__V1__STATUS_RESPONSE__ROLE__FOLLOWER;
	}
	r.term = raft_current_term(n->raft);
	r.leader_id = raft_leader(n->raft);
	r.leader_client_address = (char *)(r.leader_id != 0 ? client_addr_of(n, r.leader_id) : "");
	r.commit_index = raft_commit_index(n->raft);
	r.applied_index = kv_store_applied_index(n->kv);
	r.snapshot_index = raft_snapshot_index(n->raft);
	r.n_members = fill_members(n, store, ptrs, names);
	r.members = ptrs;
	r.revision = kv_store_revision(n->kv);
	r.version = RAFTKV_VERSION;
	/* Alarms: ours, and those of the peers we hear from (their batches carry them). */
	Raftkv__V1__Alarm alarms[RAFT_MAX_MEMBERS + 2];
	Raftkv__V1__Alarm *aptrs[RAFT_MAX_MEMBERS + 2];
	size_t na = 0;
	if (atomic_load(&n->alarms) & ALARM_NOSPACE) {
		raftkv__v1__alarm__init(&alarms[na]);
		alarms[na].member_id = n->cfg.id;
		alarms[na].type = RAFTKV__V1__ALARM_TYPE__ALARM_TYPE_NOSPACE;
		alarms[na].message = n->alarm_msg;
		aptrs[na] = &alarms[na];
		na++;
	}
	char quota_msg[160];
	if (node_over_quota(n)) {
		snprintf(quota_msg, sizeof(quota_msg),
			 "the store holds %" PRIu64 " bytes of keys and values, --quota-bytes is "
			 "%" PRIu64 ": writes that could add data are refused",
			 kv_store_data_bytes(n->kv), n->cfg.quota_bytes);
		raftkv__v1__alarm__init(&alarms[na]);
		alarms[na].member_id = n->cfg.id;
		alarms[na].type = RAFTKV__V1__ALARM_TYPE__ALARM_TYPE_QUOTA;
		alarms[na].message = quota_msg;
		aptrs[na] = &alarms[na];
		na++;
	}
	for (size_t i = 0; i < n->n_peers && na < RAFT_MAX_MEMBERS + 2; i++) {
		if ((n->peers[i]->alarms & ALARM_NOSPACE) == 0)
			continue;
		raftkv__v1__alarm__init(&alarms[na]);
		alarms[na].member_id = n->peers[i]->id;
		alarms[na].type = RAFTKV__V1__ALARM_TYPE__ALARM_TYPE_NOSPACE;
		alarms[na].message = "reported by the member: its data directory is nearly full";
		aptrs[na] = &alarms[na];
		na++;
	}
	r.n_alarms = na;
	r.alarms = aptrs;
	reply_packed(call, &r.base);
}

void service_reply_members(struct node *n, struct tp_call *call)
{
	Raftkv__V1__Member store[RAFT_MAX_MEMBERS];
	Raftkv__V1__Member *ptrs[RAFT_MAX_MEMBERS];
	char names[RAFT_MAX_MEMBERS][64];
	Raftkv__V1__MemberListResponse r = RAFTKV__V1__MEMBER_LIST_RESPONSE__INIT;
	r.n_members = fill_members(n, store, ptrs, names);
	r.members = ptrs;
	reply_packed(call, &r.base);
}
