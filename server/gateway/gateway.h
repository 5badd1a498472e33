/* kvgateway: a stateless front for a raftkv cluster. It serves raftkv.v1.KV and
 * raftkv.v1.Cluster, finds and caches the leader, and retries across elections so clients
 * never see one. */
#ifndef RAFTKV_GATEWAY_H
#define RAFTKV_GATEWAY_H

/*
 * Threads:
 *   - the gRPC loop thread (server/transport): decodes a request, stamps a write id on writes
 *     that carry none, and forwards it (tp_unary); the answer comes back on the same thread,
 *     which replies, or retries at once at a hinted leader;
 *   - the timer thread: Status probes of every raftnode, health, and retries that wait out a
 *     backoff;
 *   - the resolver thread: re-resolves the --raftnodes names (blocking getaddrinfo).
 * The endpoint table and the leader cache are shared behind one mutex (short sections).
 * Nothing blocks the loop thread; there is no thread per request.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/transport/transport.h"

#define GW_ADDR_MAX      256
#define GW_MAX_ENDPOINTS 64

struct gw_config {
	char listen[GW_ADDR_MAX];
	char raftnodes[4096];
	uint64_t default_timeout_ms;
	uint64_t try_timeout_ms;
	uint64_t probe_interval_ms;
	uint64_t resolve_interval_ms;
	uint64_t max_connection_age_ms;
	uint64_t max_request_bytes;
	char log_level[16];
	char log_format[16];
};

/* Parse flags and RAFTKV_* variables: 0, 1 (help printed) or -1 (err says why). */
int gw_config_parse(struct gw_config *c, int argc, char **argv, char *err, size_t errlen);

/* One raftnode address the gateway talks to. */
struct gw_endpoint {
	char addr[GW_ADDR_MAX];
	struct tp_channel *ch;
	bool configured;    /* from --raftnodes (as resolved now); else learned from a hint */
	int64_t last_ok_ms; /* last successful probe or call; 0 never */
	bool probing;       /* a Status probe is in flight */
	int64_t down_ms;    /* when a connection to it last failed; 0 after any answer */
};

struct gw_fwd;

struct gw_lane {
	uint64_t client_id;   /* random, non-zero */
	uint64_t seq;         /* last sequence used */
	int64_t last_used_ms; /* CLOCK_MONOTONIC: idle lanes start a new session (see stamp) */
	struct gw_lane *next;
};

struct gateway {
	struct gw_config cfg;
	struct tp_loop *loop;
	struct tp_server *server;

	pthread_mutex_t mu; /* guards everything below up to `stopping` */
	pthread_cond_t cv;
	struct gw_endpoint eps[GW_MAX_ENDPOINTS];
	size_t n_eps;
	char leader[GW_ADDR_MAX]; /* "" when unknown */
	size_t rr;                /* round robin over endpoints */
	struct gw_fwd *waiting;   /* retries due later, sorted by due time */
	atomic_bool stopping;     /* also read without the lock by the loop thread */
	bool health;              /* what was last reported */
	int64_t next_probe_ms;

	atomic_long inflight; /* forwards not yet answered */
	atomic_int sending;   /* threads inside tp_unary for a forward */
	/* Write ids for writes that carry none. The state machine keeps one sequence per client
	 * id and refuses an older one, so each id ("lane") has at most one write outstanding:
	 * a write takes a free lane (or a new one) and gives it back when answered. */
	struct gw_lane *free_lanes; /* under mu */
	size_t n_lanes;
	pthread_t timer, resolver;
};

int gw_start(struct gateway *g, char *err, size_t errlen);
/* Stop accepting, answer everything in flight, free. */
void gw_stop(struct gateway *g);

#endif
