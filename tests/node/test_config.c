/* raftnode configuration: flags, RAFTKV_* environment fallbacks, defaults, validation and
 * the founding configuration derived from --initial-cluster. */
#include <CUnit/Basic.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "server/node/config.h"

static struct node_config cfg;
static char err[512];

#define ARGV(...)                             \
	(char *[])                            \
	{                                     \
		"raftnode", __VA_ARGS__, NULL \
	}

static int parse(char **argv)
{
	int argc = 0;
	while (argv[argc] != NULL)
		argc++;
	err[0] = '\0';
	return config_parse(&cfg, argc, argv, err, sizeof(err));
}

static void clear_env(void)
{
	unsetenv("RAFTKV_NAME");
	unsetenv("RAFTKV_DATA_DIR");
	unsetenv("RAFTKV_INITIAL_CLUSTER");
	unsetenv("RAFTKV_ELECTION_MS");
}

static void test_defaults_and_derived(void)
{
	clear_env();
	char **v = ARGV("--name", "n2", "--data-dir", "/tmp/x", "--initial-cluster",
			"n1=127.0.0.1:1,n2=127.0.0.1:2,n3=127.0.0.1:3");
	CU_ASSERT_EQUAL_FATAL(parse(v), 0);
	CU_ASSERT_STRING_EQUAL(cfg.listen_peer, "127.0.0.1:2");
	CU_ASSERT_STRING_EQUAL(cfg.advertise_peer, "127.0.0.1:2");
	CU_ASSERT_STRING_EQUAL(cfg.advertise_client, "127.0.0.1:2");
	CU_ASSERT_EQUAL(cfg.tick_ms, 10);
	CU_ASSERT_EQUAL(cfg.heartbeat_ms, 50);
	CU_ASSERT_EQUAL(cfg.election_ms, 250);
	CU_ASSERT_EQUAL(cfg.max_value_bytes, 1048576);
	CU_ASSERT_EQUAL(cfg.id, config_name_id("n2"));
	CU_ASSERT_EQUAL(cfg.initial.n, 3);
	for (unsigned i = 1; i < cfg.initial.n; i++)
		CU_ASSERT(cfg.initial.members[i - 1].id < cfg.initial.members[i].id);
	char name[64];
	const struct raft_member *m = raft_conf_get(&cfg.initial, config_name_id("n3"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(m);
	CU_ASSERT_STRING_EQUAL(config_member_peer(m->addr, name, sizeof(name)), "127.0.0.1:3");
	CU_ASSERT_STRING_EQUAL(name, "n3");
}

/* Every founder must derive the same configuration and cluster id, whatever the order in
 * which its --initial-cluster lists the members. */
static void test_cluster_id_is_order_independent(void)
{
	clear_env();
	char **a = ARGV("--name", "n1", "--data-dir", "d", "--initial-cluster",
			"n1=h:1,n2=h:2,n3=h:3");
	CU_ASSERT_EQUAL_FATAL(parse(a), 0);
	uint64_t id = cfg.cluster_id;
	struct raft_conf c = cfg.initial;
	char **b = ARGV("--name", "n3", "--data-dir", "d", "--initial-cluster",
			"n3=h:3,n1=h:1,n2=h:2");
	CU_ASSERT_EQUAL_FATAL(parse(b), 0);
	CU_ASSERT_EQUAL(cfg.cluster_id, id);
	CU_ASSERT_EQUAL(memcmp(&c, &cfg.initial, sizeof(c)), 0);
	char **d = ARGV("--name", "n1", "--data-dir", "d", "--initial-cluster",
			"n1=h:1,n2=h:2,n3=h:4");
	CU_ASSERT_EQUAL_FATAL(parse(d), 0);
	CU_ASSERT_NOT_EQUAL(cfg.cluster_id, id);
}

static void test_env_fallback_and_flag_precedence(void)
{
	clear_env();
	setenv("RAFTKV_NAME", "n1", 1);
	setenv("RAFTKV_DATA_DIR", "/data", 1);
	setenv("RAFTKV_INITIAL_CLUSTER", "n1=a:1", 1);
	setenv("RAFTKV_ELECTION_MS", "500", 1);
	char **v = ARGV("--election-ms=300");
	CU_ASSERT_EQUAL_FATAL(parse(v), 0);
	CU_ASSERT_STRING_EQUAL(cfg.name, "n1");
	CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/data");
	CU_ASSERT_EQUAL(cfg.election_ms, 300);
	CU_ASSERT_EQUAL_FATAL(parse((char *[]){"raftnode", NULL}), 0);
	CU_ASSERT_EQUAL(cfg.election_ms, 500);
	clear_env();
}

static void expect_error(char **argv, const char *needle)
{
	CU_ASSERT_EQUAL(parse(argv), -1);
	if (strstr(err, needle) == NULL) {
		fprintf(stderr, "\nerror \"%s\" lacks \"%s\"\n", err, needle);
		CU_FAIL("error message");
	}
}

static void test_errors_are_explained(void)
{
	clear_env();
	expect_error(ARGV("--data-dir", "d"), "--name is required");
	expect_error(ARGV("--name", "n1"), "--data-dir is required");
	expect_error(ARGV("--bogus"), "unknown flag");
	expect_error(ARGV("--name"), "needs a value");
	expect_error(ARGV("--name", "n1", "--data-dir", "d"), "--listen-peer is required");
	expect_error(ARGV("--name", "n9", "--data-dir", "d", "--initial-cluster", "n1=a:1"),
		     "does not list this member");
	expect_error(ARGV("--name", "n1", "--data-dir", "d", "--initial-cluster", "n1=a:1,n1=b:2"),
		     "listed twice");
	expect_error(ARGV("--name", "n1", "--data-dir", "d", "--initial-cluster", "n1"),
		     "is not name=host:port");
	expect_error(
		ARGV("--name", "n1", "--data-dir", "d", "--listen-peer", "a:1", "--tick-ms", "x"),
		"not a non-negative integer");
	expect_error(ARGV("--name", "n1", "--data-dir", "d", "--listen-peer", "a:1",
			  "--election-ms", "40"),
		     "timeouts");
	expect_error(ARGV("--name", "n1", "--data-dir", "d", "--listen-peer", "a:1", "--log-format",
			  "xml"),
		     "--log-format");
	expect_error(ARGV("--name", "n1", "--data-dir", "d", "--listen-peer", "a:1",
			  "--max-key-bytes", "0"),
		     "limits");
}

int main(void)
{
	CU_TestInfo tests[] = {
		{"defaults and derived addresses", test_defaults_and_derived},
		{"cluster id and founding configuration ignore member order",
		 test_cluster_id_is_order_independent},
		{"environment fallbacks; a flag wins", test_env_fallback_and_flag_precedence},
		{"bad flags are explained", test_errors_are_explained},
		CU_TEST_INFO_NULL,
	};
	CU_SuiteInfo suites[] = {
		{"node_config", NULL, NULL, NULL, NULL, tests},
		CU_SUITE_INFO_NULL,
	};
	return cunit_main(suites);
}
