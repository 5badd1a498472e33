/* kvctl: raftkv's command line. One table describes every command and option, and drives
 * both parsing and --help, so they cannot drift apart. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvctl.h"

#define DEFAULT_ENDPOINTS "127.0.0.1:7100"
#define DEFAULT_TIMEOUT   "5s"
#define MAX_OPTS          8
#define MAX_POS           4

/* ---- the tables ---------------------------------------------------------------------------- */

enum opt_kind {
	OPT_BOOL,  /* --flag */
	OPT_VALUE, /* --flag VALUE or --flag=VALUE; the last one wins */
	OPT_MULTI, /* repeatable --flag VALUE, kept in order */
};

struct opt_def {
	const char *name; /* without "--" */
	enum opt_kind kind;
	const char *metavar;
	const char *help;
};

struct ctx;

struct cmd_def {
	const char *name;
	const char *args; /* positional arguments, for the usage line */
	int min_args, max_args;
	const char *summary;
	const char *details; /* NULL or extra paragraphs for `kvctl CMD --help` */
	struct opt_def opts[MAX_OPTS];
	int (*run)(struct ctx *x);
};

/* Parsed state of one invocation. */
struct ctx {
	const struct cmd_def *cmd;
	const char *pos[MAX_POS];
	int n_pos;
	bool set[MAX_OPTS];
	const char *val[MAX_OPTS];
	const char **multi[MAX_OPTS]; /* OPT_MULTI values (array of argc entries) */
	int n_multi[MAX_OPTS];

	bool json;
	struct rk_client *cl;
};

static int run_put(struct ctx *x);
static int run_get(struct ctx *x);
static int run_del(struct ctx *x);
static int run_range(struct ctx *x);
static int run_append(struct ctx *x);
static int run_txn(struct ctx *x);
static int run_status(struct ctx *x);
static int run_members(struct ctx *x);

static const char TXN_DETAILS[] =
	"A transaction: if every --if compare holds, the --then operations run, else the --else\n"
	"operations; atomically, as one revision. Each argument is one compare or operation;\n"
	"quote it for the shell. Inside, words are split at spaces; use \"...\" (escapes \\\\ \\\" "
	"\\n\n"
	"\\t \\r \\0 \\xHH) or '...' for keys and values with spaces or special bytes.\n"
	"\n"
	"Compares (--if, all must hold):\n"
	"  value(KEY) OP VALUE        OP is =, !=, <, > (byte-wise comparison)\n"
	"  version(KEY) OP N          writes since the key's creation (0: missing)\n"
	"  create(KEY) OP N           revision that created the key (0: missing)\n"
	"  mod(KEY) OP N              revision of the key's last write (0: missing)\n"
	"  exists(KEY), !exists(KEY), exists(KEY) = true|false, exists(KEY) != true|false\n"
	"  (create_revision and mod_revision are accepted for create and mod; == for =)\n"
	"A missing key has no value: value(k) = \"\" and value(k) != \"x\" do not hold for it.\n"
	"\n"
	"Operations (--then / --else, in order):\n"
	"  put KEY VALUE [--prev-kv]\n"
	"  get KEY\n"
	"  range KEY [RANGE_END] [--prefix] [--limit N] [--keys-only] [--count-only]\n"
	"  del KEY [RANGE_END] [--prefix] [--prev-kv]\n"
	"\n"
	"Output: SUCCESS or FAILURE, then each operation's result after an empty line (put: OK\n"
	"and the previous pair with --prev-kv; get/range: key and value lines; del: the number\n"
	"deleted). Exit status 4 when the compares failed (FAILURE), even though the else\n"
	"branch ran.\n"
	"\n"
	"Example:\n"
	"  kvctl txn --if 'value(cfg) = \"v1\"' --if 'version(cfg) > 0' \\\n"
	"            --then 'put cfg v2' --then 'get cfg' --else 'get cfg'\n";

static const struct cmd_def CMDS[] = {
	{"put",
	 "KEY VALUE",
	 2,
	 2,
	 "set KEY to VALUE (creating it if needed)",
	 "Prints OK, then the previous key and value lines with --prev-kv (nothing if the key did\n"
	 "not exist).\n",
	 {{"prev-kv", OPT_BOOL, NULL, "also print the key's previous value"}},
	 run_put},
	{"get",
	 "KEY",
	 1,
	 1,
	 "print KEY and its value (exit 3 if missing)",
	 "Prints the key on one line and its value on the next. A missing key prints nothing on\n"
	 "stdout (with --json: \"kv\": null) and exits with status 3.\n",
	 {{"serializable", OPT_BOOL, NULL,
	   "read from the member answering (maybe stale) instead of confirming with the leader"}},
	 run_get},
	{"del",
	 "KEY [RANGE_END]",
	 1,
	 2,
	 "delete KEY, or every key in [KEY, RANGE_END)",
	 "Prints the number of keys deleted, then each deleted key and its value with --prev-kv.\n"
	 "RANGE_END \"\\0\" is not expressible on a command line; use --prefix with an empty KEY\n"
	 "('') to delete every key.\n",
	 {{"prefix", OPT_BOOL, NULL, "delete every key starting with KEY"},
	  {"prev-kv", OPT_BOOL, NULL, "also print the deleted keys and values"}},
	 run_del},
	{"range",
	 "KEY [RANGE_END]",
	 1,
	 2,
	 "list the keys in [KEY, RANGE_END) or with a prefix",
	 "Prints key and value lines in key order (keys only with --keys-only; just the number of\n"
	 "keys in the whole range with --count-only). Without RANGE_END and --prefix only KEY\n"
	 "itself is read.\n"
	 "\n"
	 "Paging: when --limit (or the server's maximum) cut the answer short, \"more: true\",\n"
	 "\"next_key: ...\" (bytes other than printable ASCII as \\xHH) and a \"continue with:\" "
	 "line\n"
	 "are printed on stderr, so stdout stays key/value lines. next_key is the last key\n"
	 "followed by a 0 byte, which a command line cannot carry: continue with\n"
	 "  kvctl range --after LAST_KEY RANGE_END\n"
	 "where RANGE_END is the original one (for a --prefix P, the prefix end: P with its last\n"
	 "byte incremented, e.g. a/ -> a0).\n",
	 {{"prefix", OPT_BOOL, NULL, "every key starting with KEY ('' = every key)"},
	  {"after", OPT_BOOL, NULL, "start just after KEY (KEY + a 0 byte), for paging"},
	  {"limit", OPT_VALUE, "N", "at most N keys (0: the server's maximum, 10000)"},
	  {"keys-only", OPT_BOOL, NULL, "print keys without values"},
	  {"count-only", OPT_BOOL, NULL, "print only the number of keys"},
	  {"serializable", OPT_BOOL, NULL, "read from the member answering (maybe stale)"}},
	 run_range},
	{"append",
	 "KEY SUFFIX",
	 2,
	 2,
	 "append SUFFIX to KEY's value (creating the key if needed)",
	 "Prints the key and its value after the append.\n",
	 {{NULL, OPT_BOOL, NULL, NULL}},
	 run_append},
	{"txn",
	 "",
	 0,
	 0,
	 "compare-and-swap transaction (--if, --then, --else)",
	 TXN_DETAILS,
	 {{"if", OPT_MULTI, "COMPARE", "a compare; repeatable, all must hold"},
	  {"then", OPT_MULTI, "OP", "an operation run when every compare holds; repeatable"},
	  {"else", OPT_MULTI, "OP", "an operation run otherwise; repeatable"}},
	 run_txn},
	{"status",
	 "",
	 0,
	 0,
	 "a table of every endpoint's member status",
	 "Asks each endpoint of --endpoints for its status (no routing): id, name, role, term,\n"
	 "leader, commit/applied/snapshot index, store revision and version. Unreachable\n"
	 "endpoints are reported on stderr (with --json: an \"error\" object in their place) and\n"
	 "make the exit status non-zero (5 when unavailable).\n",
	 {{NULL, OPT_BOOL, NULL, NULL}},
	 run_status},
	{"members",
	 "",
	 0,
	 0,
	 "list the cluster's members",
	 "Prints a table: id (hex), name, peer address, client address, learner.\n",
	 {{NULL, OPT_BOOL, NULL, NULL}},
	 run_members},
};
#define N_CMDS (sizeof(CMDS) / sizeof(CMDS[0]))

static const struct opt_def GLOBAL_OPTS[] = {
	{"endpoints", OPT_VALUE, "ADDRS",
	 "host:port,... of raftnodes or kvgateways (env RAFTKV_ENDPOINTS, "
	 "default " DEFAULT_ENDPOINTS ")"},
	{"timeout", OPT_VALUE, "DUR",
	 "deadline of the whole command, retries included: 500ms, 2s, 1m or plain milliseconds "
	 "(env RAFTKV_TIMEOUT, default " DEFAULT_TIMEOUT ")"},
	{"json", OPT_BOOL, NULL, "print one JSON object per command (see docs/kvctl.md)"},
	{"help", OPT_BOOL, NULL, "print help (also: kvctl help [COMMAND], kvctl COMMAND --help)"},
};
#define N_GLOBAL (sizeof(GLOBAL_OPTS) / sizeof(GLOBAL_OPTS[0]))

static const char EXIT_CODES[] =
	"Exit status:\n"
	"  0  success\n"
	"  1  other error (e.g. the server refused the request)\n"
	"  2  bad usage: unknown command or flag, missing or extra arguments\n"
	"  3  not found: get of a key that does not exist\n"
	"  4  compare failed: txn compares did not hold (the else branch ran)\n"
	"  5  unavailable: no member reached or no leader within --timeout\n"
	"     (UNAVAILABLE or DEADLINE_EXCEEDED)\n";

/* ---- help ---------------------------------------------------------------------------------- */

/* "  --name META   help", the help wrapped at 100 columns under its own column. */
static void print_opt(FILE *f, const struct opt_def *o)
{
	char left[48];
	snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
		 o->metavar ? o->metavar : "");
	fprintf(f, "  %-22s", left);
	const char *p = o->help;
	const int width = 100 - 25;
	while (*p != '\0') {
		int n = (int)strlen(p);
		if (n > width) {
			n = width;
			while (n > 0 && p[n] != ' ')
				n--;
			if (n == 0)
				n = width;
		}
		fprintf(f, " %.*s\n", n, p);
		p += n;
		while (*p == ' ')
			p++;
		if (*p != '\0')
			fprintf(f, "  %-22s", "");
	}
}

static void global_help(FILE *f)
{
	fprintf(f, "kvctl: the command line of raftkv, a Raft key-value store.\n\n"
		   "Usage: kvctl [global options] COMMAND [arguments] [options]\n\n"
		   "Commands:\n");
	for (size_t i = 0; i < N_CMDS; i++) {
		char left[48];
		snprintf(left, sizeof(left), "%s %s", CMDS[i].name, CMDS[i].args);
		fprintf(f, "  %-22s %s\n", left, CMDS[i].summary);
	}
	fprintf(f, "  %-22s %s\n", "help [COMMAND]", "this help, or a command's");
	fprintf(f, "\nGlobal options (anywhere on the line):\n");
	for (size_t i = 0; i < N_GLOBAL; i++)
		print_opt(f, &GLOBAL_OPTS[i]);
	fprintf(f,
		"\nArguments that start with \"--\" go after a lone \"--\" (kvctl put -- k --v).\n"
		"Writes are sent to the leader (kvctl follows the raftkv-leader hint of a\n"
		"follower) and retried until --timeout with the same write id, so a retried\n"
		"write applies at most once. Run 'kvctl COMMAND --help' for a command's "
		"options.\n\n");
	fputs(EXIT_CODES, f);
}

static void cmd_help(FILE *f, const struct cmd_def *c)
{
	fprintf(f, "Usage: kvctl [global options] %s%s%s", c->name, c->args[0] ? " " : "", c->args);
	for (size_t i = 0; i < MAX_OPTS && c->opts[i].name; i++)
		fprintf(f, " [--%s%s%s]", c->opts[i].name, c->opts[i].metavar ? " " : "",
			c->opts[i].metavar ? c->opts[i].metavar : "");
	fprintf(f, "\n\n%s.\n", c->summary);
	if (c->details != NULL)
		fprintf(f, "\n%s", c->details);
	if (c->opts[0].name != NULL) {
		fprintf(f, "\nOptions:\n");
		for (size_t i = 0; i < MAX_OPTS && c->opts[i].name; i++)
			print_opt(f, &c->opts[i]);
	}
	fprintf(f, "\nGlobal options:\n");
	for (size_t i = 0; i < N_GLOBAL; i++)
		print_opt(f, &GLOBAL_OPTS[i]);
	fprintf(f, "\n");
	fputs(EXIT_CODES, f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "kvctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nRun 'kvctl --help' for usage.\n");
	va_end(ap);
	return KVCTL_USAGE;
}

/* ---- errors and helpers --------------------------------------------------------------------- */

static int exit_for(int code)
{
	return code == RK_UNAVAILABLE || code == RK_DEADLINE_EXCEEDED ? KVCTL_UNAVAILABLE
								      : KVCTL_ERROR;
}

/* Report a failed call: JSON on stdout with --json, text on stderr otherwise. */
static int report(struct ctx *x, const struct rk_error *e)
{
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_obj(&w, "error");
		jw_int(&w, "code", e->code);
		jw_str(&w, "status", rk_code_name(e->code));
		jw_str(&w, "message", e->message);
		jw_obj_end(&w);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		fprintf(stderr, "kvctl: %s: %s\n", rk_code_name(e->code), e->message);
	}
	return exit_for(e->code);
}

static int opt_index(const struct cmd_def *c, const char *name)
{
	for (int i = 0; i < MAX_OPTS && c->opts[i].name; i++)
		if (strcmp(c->opts[i].name, name) == 0)
			return i;
	fprintf(stderr, "kvctl: internal: no option %s for %s\n", name, c->name);
	abort();
}

static bool flag(struct ctx *x, const char *name)
{
	return x->set[opt_index(x->cmd, name)];
}

static const char *value(struct ctx *x, const char *name)
{
	int i = opt_index(x->cmd, name);
	return x->set[i] ? x->val[i] : NULL;
}

static ProtobufCBinaryData bytes(const char *s)
{
	return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* "5s", "500ms", "1m", "1.5s", "250" (ms) -> milliseconds; -1 if invalid or not in
 * (0, 24h]. */
static long parse_duration(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || !(v > 0) || s[0] == '-' || s[0] == '+')
		return -1;
	double mult;
	if (*end == '\0' || strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "m") == 0)
		mult = 60000;
	else
		return -1;
	double ms = ceil(v * mult);
	if (ms < 1 || ms > 86400000.0)
		return -1;
	return (long)ms;
}

static int parse_limit(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || s[0] == '+')
		return -1;
	*out = v;
	return 0;
}

/* ---- commands ------------------------------------------------------------------------------- */

static int run_put(struct ctx *x)
{
	Raftkv__V1__PutRequest req = RAFTKV__V1__PUT_REQUEST__INIT;
	req.key = bytes(x->pos[0]);
	req.value = bytes(x->pos[1]);
	req.prev_kv = flag(x, "prev-kv");
	Raftkv__V1__PutResponse *r;
	struct rk_error e;
	if (rk_put(x->cl, &req, &r, &e) != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_put(&w, r);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		human_put(r);
	}
	rk_free(r);
	return KVCTL_OK;
}

static int run_get(struct ctx *x)
{
	Raftkv__V1__GetRequest req = RAFTKV__V1__GET_REQUEST__INIT;
	req.key = bytes(x->pos[0]);
	if (flag(x, "serializable"))
		req.consistency = RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
	Raftkv__V1__GetResponse *r;
	struct rk_error e;
	if (rk_get(x->cl, &req, &r, &e) != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_header(&w, r->header);
		jw_kv(&w, "kv", r->kv);
		jw_obj_end(&w);
		jw_done(&w);
	} else if (r->kv != NULL) {
		human_kv(r->kv, false);
	} else {
		fprintf(stderr, "kvctl: key not found: %s\n", x->pos[0]);
	}
	int rv = r->kv != NULL ? KVCTL_OK : KVCTL_NOT_FOUND;
	rk_free(r);
	return rv;
}

static int run_del(struct ctx *x)
{
	Raftkv__V1__DeleteRequest req = RAFTKV__V1__DELETE_REQUEST__INIT;
	req.key = bytes(x->pos[0]);
	req.prev_kv = flag(x, "prev-kv");
	uint8_t *end = NULL;
	if (flag(x, "prefix")) {
		if (x->n_pos == 2)
			return usage_error("del: --prefix and RANGE_END exclude each other");
		end = malloc(req.key.len + 1);
		if (end == NULL) {
			fprintf(stderr, "kvctl: out of memory\n");
			return KVCTL_ERROR;
		}
		req.range_end.len = rk_prefix_end(req.key.data, req.key.len, end);
		req.range_end.data = end;
	} else if (x->n_pos == 2) {
		req.range_end = bytes(x->pos[1]);
	}
	Raftkv__V1__DeleteResponse *r;
	struct rk_error e;
	int rc = rk_delete(x->cl, &req, &r, &e);
	free(end);
	if (rc != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_delete(&w, r);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		human_delete(r);
	}
	rk_free(r);
	return KVCTL_OK;
}

static int run_range(struct ctx *x)
{
	Raftkv__V1__RangeRequest req = RAFTKV__V1__RANGE_REQUEST__INIT;
	req.key = bytes(x->pos[0]);
	req.prefix = flag(x, "prefix");
	if (req.prefix && x->n_pos == 2)
		return usage_error("range: --prefix and RANGE_END exclude each other");
	if (x->n_pos == 2)
		req.range_end = bytes(x->pos[1]);
	if (!req.prefix && req.key.len == 0)
		return usage_error("range: an empty KEY needs --prefix (every key)");
	const char *lim = value(x, "limit");
	if (lim != NULL && parse_limit(lim, &req.limit) != 0)
		return usage_error("range: --limit \"%s\" is not a non-negative integer", lim);
	uint8_t *after = NULL;
	if (flag(x, "after")) {
		if (req.prefix)
			return usage_error("range: --after needs RANGE_END, not --prefix (see "
					   "'kvctl range --help')");
		after = malloc(req.key.len + 1);
		if (after == NULL) {
			fprintf(stderr, "kvctl: out of memory\n");
			return KVCTL_ERROR;
		}
		memcpy(after, req.key.data, req.key.len);
		after[req.key.len] = 0;
		req.key.data = after;
		req.key.len++;
	}
	req.keys_only = flag(x, "keys-only");
	req.count_only = flag(x, "count-only");
	if (flag(x, "serializable"))
		req.consistency = RAFTKV__V1__READ_CONSISTENCY__SERIALIZABLE;
	Raftkv__V1__RangeResponse *r;
	struct rk_error e;
	int rc = rk_range(x->cl, &req, &r, &e);
	free(after);
	if (rc != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_range(&w, r);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		human_range(r, req.keys_only, req.count_only);
	}
	rk_free(r);
	return KVCTL_OK;
}

static int run_append(struct ctx *x)
{
	Raftkv__V1__AppendRequest req = RAFTKV__V1__APPEND_REQUEST__INIT;
	req.key = bytes(x->pos[0]);
	req.suffix = bytes(x->pos[1]);
	Raftkv__V1__AppendResponse *r;
	struct rk_error e;
	if (rk_append(x->cl, &req, &r, &e) != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_header(&w, r->header);
		jw_kv(&w, "kv", r->kv);
		jw_obj_end(&w);
		jw_done(&w);
	} else if (r->kv != NULL) {
		human_kv(r->kv, false);
	}
	rk_free(r);
	return KVCTL_OK;
}

/* Parse --if/--then/--else into a malloc'd TxnRequest (free with rk_free). */
static int build_txn(struct ctx *x, Raftkv__V1__TxnRequest **out)
{
	int i_if = opt_index(x->cmd, "if"), i_then = opt_index(x->cmd, "then"),
	    i_else = opt_index(x->cmd, "else");
	Raftkv__V1__TxnRequest *t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto oom;
	raftkv__v1__txn_request__init(t);
	t->compare = calloc((size_t)x->n_multi[i_if] + 1, sizeof(*t->compare));
	t->success = calloc((size_t)x->n_multi[i_then] + 1, sizeof(*t->success));
	t->failure = calloc((size_t)x->n_multi[i_else] + 1, sizeof(*t->failure));
	if (t->compare == NULL || t->success == NULL || t->failure == NULL)
		goto oom;
	char err[200];
	for (int i = 0; i < x->n_multi[i_if]; i++) {
		const char *s = x->multi[i_if][i];
		if ((t->compare[t->n_compare] = kvctl_parse_compare(s, err, sizeof(err))) == NULL) {
			rk_free(t);
			return usage_error("txn: --if '%s': %s", s, err);
		}
		t->n_compare++;
	}
	for (int b = 0; b < 2; b++) {
		int oi = b == 0 ? i_then : i_else;
		Raftkv__V1__RequestOp **ops = b == 0 ? t->success : t->failure;
		size_t *n = b == 0 ? &t->n_success : &t->n_failure;
		for (int i = 0; i < x->n_multi[oi]; i++) {
			const char *s = x->multi[oi][i];
			if ((ops[*n] = kvctl_parse_op(s, err, sizeof(err))) == NULL) {
				rk_free(t);
				return usage_error("txn: --%s '%s': %s", b == 0 ? "then" : "else",
						   s, err);
			}
			(*n)++;
		}
	}
	*out = t;
	return 0;
oom:
	rk_free(t);
	fprintf(stderr, "kvctl: out of memory\n");
	return KVCTL_ERROR;
}

static int run_txn(struct ctx *x)
{
	Raftkv__V1__TxnRequest *t = NULL;
	int rv = build_txn(x, &t);
	if (rv != 0)
		return rv;
	Raftkv__V1__TxnResponse *r;
	struct rk_error e;
	if (rk_txn(x->cl, t, &r, &e) != 0) {
		rk_free(t);
		return report(x, &e);
	}
	/* The branch that ran, to know keys_only/count_only of its ranges. */
	Raftkv__V1__RequestOp **ops = r->succeeded ? t->success : t->failure;
	size_t n_ops = r->succeeded ? t->n_success : t->n_failure;
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_header(&w, r->header);
		jw_bool(&w, "succeeded", r->succeeded);
		jw_arr(&w, "responses");
		for (size_t i = 0; i < r->n_responses; i++) {
			Raftkv__V1__ResponseOp *o = r->responses[i];
			jw_obj(&w, NULL);
			if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_PUT) {
				jw_obj(&w, "put");
				jw_put(&w, o->put);
			} else if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_DELETE) {
				jw_obj(&w, "delete");
				jw_delete(&w, o->delete_);
			} else if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_RANGE) {
				jw_obj(&w, "range");
				jw_range(&w, o->range);
			} else {
				jw_obj(&w, "unknown");
			}
			jw_obj_end(&w);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		printf("%s\n", r->succeeded ? "SUCCESS" : "FAILURE");
		for (size_t i = 0; i < r->n_responses; i++) {
			Raftkv__V1__ResponseOp *o = r->responses[i];
			printf("\n");
			if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_PUT) {
				human_put(o->put);
			} else if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_DELETE) {
				human_delete(o->delete_);
			} else if (o->response_case == RAFTKV__V1__RESPONSE_OP__RESPONSE_RANGE) {
				const Raftkv__V1__RangeRequest *q =
					i < n_ops && ops[i]->request_case ==
								RAFTKV__V1__REQUEST_OP__REQUEST_RANGE
						? ops[i]->range
						: NULL;
				human_range(o->range, q != NULL && q->keys_only,
					    q != NULL && q->count_only);
			}
		}
	}
	rv = r->succeeded ? KVCTL_OK : KVCTL_COMPARE_FAILED;
	rk_free(r);
	rk_free(t);
	return rv;
}

static const char *role_name(int role)
{
	const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		&raftkv__v1__status_response__role__descriptor, role);
	return v != NULL ? v->name : "?";
}

/* "NOSPACE" for ALARM_TYPE_NOSPACE. */
static const char *alarm_name(int type)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&raftkv__v1__alarm_type__descriptor, type);
	return v == NULL ? "?" : strncmp(v->name, "ALARM_TYPE_", 11) == 0 ? v->name + 11 : v->name;
}

/* Below the table: every alarm any endpoint reported, once per member and type. */
static void print_alarms(Raftkv__V1__StatusResponse *const *st, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t a = 0; st[i] != NULL && a < st[i]->n_alarms; a++) {
			const Raftkv__V1__Alarm *al = st[i]->alarms[a];
			bool seen = false;
			for (size_t j = 0; j <= i && !seen; j++)
				for (size_t b = 0; st[j] != NULL && b < st[j]->n_alarms; b++) {
					if (j == i && b == a)
						break;
					seen = seen ||
					       (st[j]->alarms[b]->member_id == al->member_id &&
						st[j]->alarms[b]->type == al->type);
				}
			if (!seen)
				printf("ALARM %s on member %" PRIx64 ": %s\n", alarm_name(al->type),
				       al->member_id, al->message);
		}
	}
}

#define STATUS_COLS 11

static int run_status(struct ctx *x)
{
	size_t n = rk_client_endpoint_count(x->cl);
	Raftkv__V1__StatusResponse **st = calloc(n, sizeof(*st));
	struct rk_error *errs = calloc(n, sizeof(*errs));
	/* Cells: header row + one per endpoint, STATUS_COLS each, 32 bytes per cell. */
	char(*cells)[32] = calloc((n + 1) * STATUS_COLS, 32);
	const char **rows = calloc((n + 1) * STATUS_COLS, sizeof(char *));
	if (st == NULL || errs == NULL || cells == NULL || rows == NULL) {
		free(st);
		free(errs);
		free(cells);
		free(rows);
		fprintf(stderr, "kvctl: out of memory\n");
		return KVCTL_ERROR;
	}
	int rv = KVCTL_OK;
	for (size_t i = 0; i < n; i++)
		if (rk_status(x->cl, rk_client_endpoint(x->cl, i), &st[i], &errs[i]) != 0 &&
		    rv == KVCTL_OK)
			rv = exit_for(errs[i].code);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_arr(&w, "endpoints");
		for (size_t i = 0; i < n; i++) {
			jw_obj(&w, NULL);
			jw_str(&w, "endpoint", rk_client_endpoint(x->cl, i));
			if (st[i] == NULL) {
				jw_obj(&w, "error");
				jw_int(&w, "code", errs[i].code);
				jw_str(&w, "status", rk_code_name(errs[i].code));
				jw_str(&w, "message", errs[i].message);
				jw_obj_end(&w);
				jw_obj_end(&w);
				continue;
			}
			const Raftkv__V1__StatusResponse *s = st[i];
			jw_u64(&w, "id", s->id);
			jw_str(&w, "name", s->name);
			jw_str(&w, "role", role_name(s->role));
			jw_u64(&w, "term", s->term);
			jw_u64(&w, "leader_id", s->leader_id);
			jw_str(&w, "leader_client_address", s->leader_client_address);
			jw_u64(&w, "commit_index", s->commit_index);
			jw_u64(&w, "applied_index", s->applied_index);
			jw_u64(&w, "snapshot_index", s->snapshot_index);
			jw_u64(&w, "revision", s->revision);
			jw_str(&w, "version", s->version);
			jw_u64(&w, "members", s->n_members);
			jw_arr(&w, "alarms");
			for (size_t a = 0; a < s->n_alarms; a++) {
				jw_obj(&w, NULL);
				jw_u64(&w, "member_id", s->alarms[a]->member_id);
				jw_str(&w, "type", alarm_name(s->alarms[a]->type));
				jw_str(&w, "message", s->alarms[a]->message);
				jw_obj_end(&w);
			}
			jw_arr_end(&w);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
		jw_done(&w);
	} else {
		static const char *const head[STATUS_COLS] = {
			"ENDPOINT", "ID",      "NAME",     "ROLE",     "TERM",   "LEADER",
			"COMMIT",   "APPLIED", "SNAPSHOT", "REVISION", "VERSION"};
		size_t nr = 0;
		for (size_t c = 0; c < STATUS_COLS; c++)
			rows[c] = head[c];
		nr++;
		for (size_t i = 0; i < n; i++) {
			const Raftkv__V1__StatusResponse *s = st[i];
			if (s == NULL)
				continue;
			char(*r)[32] = &cells[nr * STATUS_COLS];
			snprintf(r[0], 32, "%s", rk_client_endpoint(x->cl, i));
			snprintf(r[1], 32, "%" PRIx64, s->id);
			snprintf(r[2], 32, "%s", s->name);
			snprintf(r[3], 32, "%s", role_name(s->role));
			snprintf(r[4], 32, "%" PRIu64, s->term);
			if (s->leader_id != 0)
				snprintf(r[5], 32, "%" PRIx64, s->leader_id);
			else
				snprintf(r[5], 32, "-");
			snprintf(r[6], 32, "%" PRIu64, s->commit_index);
			snprintf(r[7], 32, "%" PRIu64, s->applied_index);
			snprintf(r[8], 32, "%" PRIu64, s->snapshot_index);
			snprintf(r[9], 32, "%" PRIu64, s->revision);
			snprintf(r[10], 32, "%s", s->version);
			for (size_t c = 0; c < STATUS_COLS; c++)
				rows[nr * STATUS_COLS + c] = r[c];
			nr++;
		}
		if (nr > 1)
			table_print(stdout, rows, nr, STATUS_COLS);
		print_alarms(st, n);
		fflush(stdout);
		for (size_t i = 0; i < n; i++)
			if (st[i] == NULL)
				fprintf(stderr, "kvctl: %s: %s\n", rk_code_name(errs[i].code),
					errs[i].message);
	}
	for (size_t i = 0; i < n; i++)
		rk_free(st[i]);
	free(st);
	free(errs);
	free(cells);
	free(rows);
	return rv;
}

static int run_members(struct ctx *x)
{
	Raftkv__V1__MemberListResponse *r;
	struct rk_error e;
	if (rk_member_list(x->cl, &r, &e) != 0)
		return report(x, &e);
	if (x->json) {
		struct jw w;
		jw_init(&w, stdout);
		jw_obj(&w, NULL);
		jw_arr(&w, "members");
		for (size_t i = 0; i < r->n_members; i++) {
			const Raftkv__V1__Member *m = r->members[i];
			jw_obj(&w, NULL);
			jw_u64(&w, "id", m->id);
			jw_str(&w, "name", m->name);
			jw_str(&w, "peer_address", m->peer_address);
			jw_str(&w, "client_address", m->client_address);
			jw_bool(&w, "is_learner", m->is_learner);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
		jw_obj_end(&w);
		jw_done(&w);
		rk_free(r);
		return KVCTL_OK;
	}
	size_t n = r->n_members + 1;
	const char **rows = calloc(n * 5, sizeof(char *));
	char(*ids)[24] = calloc(n, 24);
	if (rows == NULL || ids == NULL) {
		free(rows);
		free(ids);
		rk_free(r);
		fprintf(stderr, "kvctl: out of memory\n");
		return KVCTL_ERROR;
	}
	static const char *const head[5] = {"ID", "NAME", "PEER ADDRESS", "CLIENT ADDRESS",
					    "LEARNER"};
	memcpy(rows, head, sizeof(head));
	for (size_t i = 0; i < r->n_members; i++) {
		const Raftkv__V1__Member *m = r->members[i];
		snprintf(ids[i], 24, "%" PRIx64, m->id);
		const char **row = &rows[(i + 1) * 5];
		row[0] = ids[i];
		row[1] = m->name;
		row[2] = m->peer_address;
		row[3] = m->client_address[0] ? m->client_address : "-";
		row[4] = m->is_learner ? "true" : "false";
	}
	table_print(stdout, rows, n, 5);
	free(rows);
	free(ids);
	rk_free(r);
	return KVCTL_OK;
}

/* ---- main ---------------------------------------------------------------------------------- */

static const struct cmd_def *find_cmd(const char *name)
{
	for (size_t i = 0; i < N_CMDS; i++)
		if (strcmp(CMDS[i].name, name) == 0)
			return &CMDS[i];
	if (strcmp(name, "delete") == 0)
		return find_cmd("del");
	if (strcmp(name, "member") == 0 || strcmp(name, "member-list") == 0)
		return find_cmd("members");
	return NULL;
}

static const struct opt_def *find_opt(const struct opt_def *opts, size_t n, const char *name,
				      size_t len, int *idx)
{
	for (size_t i = 0; i < n && opts[i].name; i++)
		if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0) {
			*idx = (int)i;
			return &opts[i];
		}
	return NULL;
}

int main(int argc, char **argv)
{
	struct ctx x;
	memset(&x, 0, sizeof(x));
	const char *endpoints = NULL, *timeout = NULL, *help_topic = NULL;
	bool help = false, is_help_cmd = false, dashdash = false;
	int rv = KVCTL_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!dashdash && a[0] == '-' && a[1] != '\0') {
			if (strcmp(a, "--") == 0) {
				dashdash = true;
				continue;
			}
			if (strcmp(a, "-h") == 0) {
				help = true;
				continue;
			}
			if (a[1] != '-') {
				rv = usage_error("unknown flag \"%s\" (flags are --long)", a);
				goto out;
			}
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq != NULL ? (size_t)(eq - name) : strlen(name);
			int idx = -1;
			bool global = true;
			const struct opt_def *o = find_opt(GLOBAL_OPTS, N_GLOBAL, name, len, &idx);
			if (o == NULL && x.cmd != NULL) {
				global = false;
				o = find_opt(x.cmd->opts, MAX_OPTS, name, len, &idx);
			}
			if (o == NULL) {
				rv = usage_error("unknown flag \"%s\"%s%s", a,
						 x.cmd != NULL ? " for " : "",
						 x.cmd != NULL ? x.cmd->name : "");
				goto out;
			}
			const char *v = NULL;
			if (o->kind == OPT_BOOL) {
				if (eq != NULL) {
					rv = usage_error("--%s takes no value", o->name);
					goto out;
				}
			} else if (eq != NULL) {
				v = eq + 1;
			} else if (i + 1 < argc) {
				v = argv[++i];
			} else {
				rv = usage_error("--%s needs a value", o->name);
				goto out;
			}
			if (global) {
				if (strcmp(o->name, "endpoints") == 0)
					endpoints = v;
				else if (strcmp(o->name, "timeout") == 0)
					timeout = v;
				else if (strcmp(o->name, "json") == 0)
					x.json = true;
				else
					help = true;
				continue;
			}
			x.set[idx] = true;
			x.val[idx] = v;
			if (o->kind == OPT_MULTI) {
				if (x.multi[idx] == NULL &&
				    (x.multi[idx] = calloc((size_t)argc, sizeof(char *))) == NULL) {
					fprintf(stderr, "kvctl: out of memory\n");
					rv = KVCTL_ERROR;
					goto out;
				}
				x.multi[idx][x.n_multi[idx]++] = v;
			}
			continue;
		}
		if (x.cmd == NULL && !is_help_cmd) {
			if (strcmp(a, "help") == 0) {
				is_help_cmd = true;
				continue;
			}
			x.cmd = find_cmd(a);
			if (x.cmd == NULL) {
				rv = usage_error("unknown command \"%s\"", a);
				goto out;
			}
			continue;
		}
		if (is_help_cmd && help_topic == NULL) {
			help_topic = a;
			continue;
		}
		if (x.cmd == NULL || x.n_pos == MAX_POS || x.n_pos == x.cmd->max_args) {
			rv = usage_error("unexpected argument \"%s\"%s%s", a,
					 x.cmd != NULL ? " for " : "",
					 x.cmd != NULL ? x.cmd->name : "");
			goto out;
		}
		x.pos[x.n_pos++] = a;
	}

	if (is_help_cmd || help) {
		const struct cmd_def *c = x.cmd;
		if (help_topic != NULL && (c = find_cmd(help_topic)) == NULL) {
			rv = usage_error("unknown command \"%s\"", help_topic);
			goto out;
		}
		if (c != NULL)
			cmd_help(stdout, c);
		else
			global_help(stdout);
		rv = KVCTL_OK;
		goto out;
	}
	if (x.cmd == NULL) {
		rv = usage_error("missing command");
		goto out;
	}
	if (x.n_pos < x.cmd->min_args) {
		rv = usage_error("%s: missing arguments (usage: kvctl %s %s)", x.cmd->name,
				 x.cmd->name, x.cmd->args);
		goto out;
	}

	if (endpoints == NULL)
		endpoints = getenv("RAFTKV_ENDPOINTS");
	if (endpoints == NULL || endpoints[0] == '\0')
		endpoints = DEFAULT_ENDPOINTS;
	if (timeout == NULL)
		timeout = getenv("RAFTKV_TIMEOUT");
	if (timeout == NULL || timeout[0] == '\0')
		timeout = DEFAULT_TIMEOUT;
	long timeout_ms = parse_duration(timeout);
	if (timeout_ms < 0) {
		rv = usage_error("--timeout \"%s\": expected a duration such as 500ms, 2s, 1m",
				 timeout);
		goto out;
	}
	struct rk_error e;
	x.cl = rk_client_new(endpoints, (int)timeout_ms, &e);
	if (x.cl == NULL) {
		rv = e.code == RK_INVALID_ARGUMENT ? usage_error("--endpoints: %s", e.message)
						   : report(&x, &e);
		goto out;
	}
	fflush(stdout);
	rv = x.cmd->run(&x);
	fflush(stdout);
	rk_client_free(x.cl);
out:
	for (int i = 0; i < MAX_OPTS; i++)
		free(x.multi[i]);
	return rv;
}
