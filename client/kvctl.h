/* kvctl's modules: the txn mini-language (kvctl_txn.c) and output, human or JSON
 * (kvctl_out.c). Internal to kvctl. */
#ifndef RAFTKV_KVCTL_H
#define RAFTKV_KVCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/raftkv_client.h"

/* Exit codes: documented in `kvctl --help` and docs/kvctl.md. */
enum kvctl_exit {
	KVCTL_OK = 0,
	KVCTL_ERROR = 1,          /* any other error (INVALID_ARGUMENT from the server, ...) */
	KVCTL_USAGE = 2,          /* unknown command or flag, missing or extra arguments */
	KVCTL_NOT_FOUND = 3,      /* get: the key does not exist */
	KVCTL_COMPARE_FAILED = 4, /* txn: a compare failed (the else branch ran) */
	KVCTL_UNAVAILABLE = 5,    /* UNAVAILABLE or DEADLINE_EXCEEDED: no leader/member reached */
};

/* ---- txn (kvctl_txn.c) -------------------------------------------------------------------- */

/*
 * Parse one `--if` argument, e.g. `value(k) = "v"`, `version(k) > 2`, `exists(k)`,
 * `!exists(k)`, into a malloc'd Compare (every field malloc'd: free it with rk_free). NULL
 * with the reason in err.
 */
Raftkv__V1__Compare *kvctl_parse_compare(const char *s, char *err, size_t errlen);
/* Parse one `--then`/`--else` argument, e.g. `put k v`, `get k`, `range a b --limit 3`,
 * `del k --prefix`, into a malloc'd RequestOp (free with rk_free). NULL with the reason. */
Raftkv__V1__RequestOp *kvctl_parse_op(const char *s, char *err, size_t errlen);

/* ---- output (kvctl_out.c) ----------------------------------------------------------------- */

/* A minimal JSON writer: compact, one object per line; commas are placed by depth. */
struct jw {
	FILE *f;
	int depth;
	bool first[32]; /* first[d]: nothing written yet at depth d */
};

void jw_init(struct jw *w, FILE *f);
/* key NULL: inside an array (or the top level). */
void jw_obj(struct jw *w, const char *key);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w, const char *key);
void jw_arr_end(struct jw *w);
void jw_u64(struct jw *w, const char *key, uint64_t v);
void jw_int(struct jw *w, const char *key, int v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_null(struct jw *w, const char *key);
/* A NUL-terminated string (escaped; invalid UTF-8 is written as bytes, see jw_bytes). */
void jw_str(struct jw *w, const char *key, const char *s);
/* Bytes: a JSON string when they are valid UTF-8, else {"base64": "..."}. */
void jw_bytes(struct jw *w, const char *key, const uint8_t *data, size_t len);
/* End the top-level value with a newline. */
void jw_done(struct jw *w);

void jw_header(struct jw *w, const Raftkv__V1__ResponseHeader *h);
void jw_kv(struct jw *w, const char *key, const Raftkv__V1__KeyValue *kv);
void jw_put(struct jw *w, const Raftkv__V1__PutResponse *r);
void jw_delete(struct jw *w, const Raftkv__V1__DeleteResponse *r);
void jw_range(struct jw *w, const Raftkv__V1__RangeResponse *r);

/* Human output (etcdctl-like), to stdout. */
void human_bytes_line(const uint8_t *data, size_t len);
void human_kv(const Raftkv__V1__KeyValue *kv, bool keys_only);
void human_put(const Raftkv__V1__PutResponse *r);
void human_delete(const Raftkv__V1__DeleteResponse *r);
/* keys_only / count_only as requested; `more` and `next_key` go to stderr. */
void human_range(const Raftkv__V1__RangeResponse *r, bool keys_only, bool count_only);

/* A table: rows of n_cols cells, column widths computed, two spaces between columns. */
void table_print(FILE *f, const char *const *cells, size_t n_rows, size_t n_cols);

#endif
