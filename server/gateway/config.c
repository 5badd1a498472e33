/* kvgateway flags (common/flags: each flag has a RAFTKV_* environment fallback). */
#include <stdio.h>
#include <string.h>

#include "common/flags.h"
#include "common/log.h"
#include "server/gateway/gateway.h"

#define STR(field, flag, env, def, help) FLAG_STR(struct gw_config, field, flag, env, def, help)
#define U64(field, flag, env, def, help) FLAG_U64(struct gw_config, field, flag, env, def, help)

static const struct flag_spec opts[] = {
	STR(listen, "listen", "RAFTKV_LISTEN", "127.0.0.1:7100", "address to serve clients on"),
	STR(raftnodes, "raftnodes", "RAFTKV_RAFTNODES", "",
	    "raftnode client addresses host:port,...; a name resolving to several addresses (a "
	    "headless Service) counts as several (required)"),
	U64(default_timeout_ms, "default-timeout-ms", "RAFTKV_DEFAULT_TIMEOUT_MS", "5000",
	    "deadline for requests that carry none (a client's own deadline is always kept)"),
	U64(try_timeout_ms, "try-timeout-ms", "RAFTKV_TRY_TIMEOUT_MS", "2000",
	    "longest wait for one raftnode's answer before retrying (same write id)"),
	U64(probe_interval_ms, "probe-interval-ms", "RAFTKV_PROBE_INTERVAL_MS", "500",
	    "how often every raftnode is asked for its Status (leader, health)"),
	U64(resolve_interval_ms, "resolve-interval-ms", "RAFTKV_RESOLVE_INTERVAL_MS", "5000",
	    "how often --raftnodes names are resolved again"),
	U64(max_connection_age_ms, "max-connection-age-ms", "RAFTKV_MAX_CONNECTION_AGE_MS",
	    "300000",
	    "close client connections this old (clients reconnect and spread over gateways); 0 = "
	    "never"),
	U64(max_request_bytes, "max-request-bytes", "RAFTKV_MAX_REQUEST_BYTES", "4194304",
	    "largest client request (RESOURCE_EXHAUSTED beyond)"),
	STR(log_level, "log-level", "RAFTKV_LOG_LEVEL", "info", "debug, info, warn or error"),
	STR(log_format, "log-format", "RAFTKV_LOG_FORMAT", "text",
	    "text or json (one object per line)"),
};

int gw_config_parse(struct gw_config *c, int argc, char **argv, char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	int rv = flags_parse(
		opts, sizeof(opts) / sizeof(opts[0]), c, argc, argv,
		"usage: kvgateway [flags]\n\n"
		"A stateless front for a raftkv cluster: serves raftkv.v1.KV and\n"
		"raftkv.v1.Cluster, sends each request to the leader and retries across\n"
		"leader changes. Every flag may instead be given by its environment\n"
		"variable; a flag wins over the variable.\n",
		err, errlen);
	if (rv != 0)
		return rv;
	if (c->raftnodes[0] == '\0') {
		snprintf(err, errlen, "--raftnodes is required (host:port,...)");
		return -1;
	}
	if (c->default_timeout_ms == 0 || c->try_timeout_ms == 0 || c->probe_interval_ms == 0 ||
	    c->resolve_interval_ms == 0 || c->max_request_bytes < 1024 ||
	    c->max_request_bytes > (256u << 20) || c->max_connection_age_ms > 0x7fffffff) {
		snprintf(err, errlen,
			 "timeouts and intervals must be > 0; max-request-bytes in "
			 "[1024, 256 MiB]");
		return -1;
	}
	if (log_options_parse(c->log_level, c->log_format, NULL, NULL) != 0) {
		snprintf(err, errlen,
			 "--log-level must be debug|info|warn|error, --log-format text|json");
		return -1;
	}
	return 0;
}
