/* The txn mini-language: one compare per --if, one operation per --then/--else. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "client/kvctl.h"

/*
 * Words follow shell rules, so that what the user quotes inside the (shell-quoted) argument
 * survives: a word is a run of bare characters, "double-quoted" parts (escapes \\ \" \n \t
 * \r \0 \xHH) and 'single-quoted' parts (literal), ended by whitespace.
 */
struct word {
	uint8_t *data; /* malloc'd (never NULL, len may be 0) */
	size_t len;
};

struct buf {
	uint8_t *data;
	size_t len, cap;
};

static int buf_add(struct buf *b, uint8_t ch)
{
	if (b->len == b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 16;
		uint8_t *n = realloc(b->data, cap);
		if (n == NULL)
			return -1;
		b->data = n;
		b->cap = cap;
	}
	b->data[b->len++] = ch;
	return 0;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One double-quoted part starting after the opening quote; *pp ends after the closing one. */
static int dquoted(const char **pp, struct buf *b, char *err, size_t errlen)
{
	const char *p = *pp;
	for (;;) {
		char ch = *p++;
		if (ch == '\0')
			return fail(err, errlen, "unterminated \"");
		if (ch == '"')
			break;
		if (ch == '\\') {
			char e = *p++;
			switch (e) {
			case '\\':
			case '"':
			case '\'':
				ch = e;
				break;
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			case 'r':
				ch = '\r';
				break;
			case '0':
				ch = '\0';
				break;
			case 'x': {
				int hi = hexval(p[0]), lo = hi >= 0 ? hexval(p[1]) : -1;
				if (lo < 0)
					return fail(err, errlen, "\\x needs two hex digits");
				ch = (char)(hi * 16 + lo);
				p += 2;
				break;
			}
			default:
				return fail(
					err, errlen,
					"unknown escape \\%c (use \\\\ \\\" \\n \\t \\r \\0 \\xHH)",
					e != '\0' ? e : '?');
			}
		}
		if (buf_add(b, (uint8_t)ch) != 0)
			return fail(err, errlen, "out of memory");
	}
	*pp = p;
	return 0;
}

/* Scan one word at *pp, stopping (bare) at whitespace or at any character of `stop`.
 * Returns 1 with the word, 0 at the end of the input, -1 on error. */
static int next_word(const char **pp, const char *stop, struct word *w, char *err, size_t errlen)
{
	const char *p = *pp;
	while (is_space(*p))
		p++;
	if (*p == '\0') {
		*pp = p;
		return 0;
	}
	struct buf b = {0};
	int rv = 0;
	while (*p != '\0' && !is_space(*p) && strchr(stop, *p) == NULL) {
		if (*p == '"') {
			p++;
			rv = dquoted(&p, &b, err, errlen);
		} else if (*p == '\'') {
			const char *e = strchr(p + 1, '\'');
			if (e == NULL) {
				rv = fail(err, errlen, "unterminated '");
				break;
			}
			for (p++; p < e && rv == 0; p++)
				rv = buf_add(&b, (uint8_t)*p) == 0
					     ? 0
					     : fail(err, errlen, "out of memory");
			p = e + 1;
		} else {
			rv = buf_add(&b, (uint8_t)*p++) == 0 ? 0
							     : fail(err, errlen, "out of memory");
		}
		if (rv != 0)
			break;
	}
	if (rv == 0 && b.data == NULL && (b.data = malloc(1)) == NULL)
		rv = fail(err, errlen, "out of memory");
	if (rv != 0) {
		free(b.data);
		return -1;
	}
	w->data = b.data;
	w->len = b.len;
	*pp = p;
	return 1;
}

static void skip_space(const char **pp)
{
	while (is_space(**pp))
		(*pp)++;
}

static int parse_u64(const struct word *w, uint64_t *out)
{
	if (w->len == 0 || w->len > 20)
		return -1;
	char tmp[24];
	memcpy(tmp, w->data, w->len);
	tmp[w->len] = '\0';
	if (tmp[0] < '0' || tmp[0] > '9')
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(tmp, &end, 10);
	if (errno != 0 || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static bool word_is(const struct word *w, const char *s)
{
	return w->len == strlen(s) && memcmp(w->data, s, w->len) == 0;
}

/* ---- compares ------------------------------------------------------------------------------ */

Raftkv__V1__Compare *kvctl_parse_compare(const char *s, char *err, size_t errlen)
{
	const char *p = s;
	Raftkv__V1__Compare *c = malloc(sizeof(*c));
	if (c == NULL) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	raftkv__v1__compare__init(c);
	struct word key = {0}, operand = {0};

	skip_space(&p);
	bool negated = *p == '!';
	if (negated)
		p++;
	skip_space(&p);
	const char *t0 = p;
	while ((*p >= 'a' && *p <= 'z') || *p == '_')
		p++;
	size_t tlen = (size_t)(p - t0);
	skip_space(&p);
	if (tlen == 0 || *p != '(') {
		fail(err, errlen,
		     "expected TARGET(KEY): TARGET is value, version, create, mod or exists");
		goto err;
	}
	p++;
	int r = next_word(&p, ")", &key, err, errlen);
	if (r <= 0) {
		if (r == 0)
			fail(err, errlen, "missing key inside ( )");
		goto err;
	}
	skip_space(&p);
	if (*p != ')') {
		fail(err, errlen,
		     "expected ) after the key (quote a key with spaces or parentheses)");
		goto err;
	}
	p++;
	c->key.data = key.data;
	c->key.len = key.len;
	key.data = NULL;
	if (c->key.len == 0) {
		fail(err, errlen, "empty key");
		goto err;
	}

#define TARGET_IS(s) (tlen == strlen(s) && strncmp(t0, s, tlen) == 0)
	enum { T_VALUE, T_VERSION, T_CREATE, T_MOD, T_EXISTS } kind;
	if (TARGET_IS("value"))
		kind = T_VALUE;
	else if (TARGET_IS("version"))
		kind = T_VERSION;
	else if (TARGET_IS("create") || TARGET_IS("create_revision"))
		kind = T_CREATE;
	else if (TARGET_IS("mod") || TARGET_IS("mod_revision"))
		kind = T_MOD;
	else if (TARGET_IS("exists"))
		kind = T_EXISTS;
	else {
		fail(err, errlen, "unknown target \"%.*s\" (value, version, create, mod, exists)",
		     (int)tlen, t0);
		goto err;
	}
#undef TARGET_IS
	if (negated && kind != T_EXISTS) {
		fail(err, errlen, "! only applies to exists(KEY)");
		goto err;
	}

	skip_space(&p);
	if (*p == '\0') {
		if (kind != T_EXISTS) {
			fail(err, errlen, "missing operator (=, !=, <, >) and operand");
			goto err;
		}
		c->result = negated ? RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL
				    : RAFTKV__V1__COMPARE__RESULT__EQUAL;
		c->target_case = RAFTKV__V1__COMPARE__TARGET_EXISTS;
		c->exists = true;
		return c;
	}
	if (negated) {
		fail(err, errlen, "!exists(KEY) takes no operator");
		goto err;
	}
	if (p[0] == '!' && p[1] == '=') {
		c->result = RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL;
		p += 2;
	} else if (p[0] == '=' && p[1] == '=') {
		c->result = RAFTKV__V1__COMPARE__RESULT__EQUAL;
		p += 2;
	} else if (p[0] == '=') {
		c->result = RAFTKV__V1__COMPARE__RESULT__EQUAL;
		p += 1;
	} else if (p[0] == '<') {
		c->result = RAFTKV__V1__COMPARE__RESULT__LESS;
		p += 1;
	} else if (p[0] == '>') {
		c->result = RAFTKV__V1__COMPARE__RESULT__GREATER;
		p += 1;
	} else {
		fail(err, errlen, "unknown operator at \"%s\" (=, !=, <, >)", p);
		goto err;
	}
	r = next_word(&p, "", &operand, err, errlen);
	if (r <= 0) {
		if (r == 0)
			fail(err, errlen, "missing operand after the operator");
		goto err;
	}
	skip_space(&p);
	if (*p != '\0') {
		fail(err, errlen, "unexpected \"%s\" after the operand (quote values with spaces)",
		     p);
		goto err;
	}
	uint64_t num = 0;
	switch (kind) {
	case T_VALUE:
		c->target_case = RAFTKV__V1__COMPARE__TARGET_VALUE;
		c->value.data = operand.data;
		c->value.len = operand.len;
		operand.data = NULL;
		return c;
	case T_EXISTS:
		if (c->result != RAFTKV__V1__COMPARE__RESULT__EQUAL &&
		    c->result != RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL) {
			fail(err, errlen, "exists(KEY) compares with = or != only");
			goto err;
		}
		if (!word_is(&operand, "true") && !word_is(&operand, "false")) {
			fail(err, errlen, "exists(KEY) compares with true or false");
			goto err;
		}
		/* exists = false is "not exists": the proto only has exists = true + NOT_EQUAL. */
		if (word_is(&operand, "false"))
			c->result = c->result == RAFTKV__V1__COMPARE__RESULT__EQUAL
					    ? RAFTKV__V1__COMPARE__RESULT__NOT_EQUAL
					    : RAFTKV__V1__COMPARE__RESULT__EQUAL;
		c->target_case = RAFTKV__V1__COMPARE__TARGET_EXISTS;
		c->exists = true;
		break;
	default:
		if (parse_u64(&operand, &num) != 0) {
			fail(err, errlen, "\"%.*s\" is not a non-negative integer",
			     (int)operand.len, (const char *)operand.data);
			goto err;
		}
		if (kind == T_VERSION) {
			c->target_case = RAFTKV__V1__COMPARE__TARGET_VERSION;
			c->version = num;
		} else if (kind == T_CREATE) {
			c->target_case = RAFTKV__V1__COMPARE__TARGET_CREATE_REVISION;
			c->create_revision = num;
		} else {
			c->target_case = RAFTKV__V1__COMPARE__TARGET_MOD_REVISION;
			c->mod_revision = num;
		}
		break;
	}
	free(operand.data);
	return c;
err:
	free(key.data);
	free(operand.data);
	rk_free(c);
	return NULL;
}

/* ---- operations ---------------------------------------------------------------------------- */

#define MAX_WORDS 16

static void free_words(struct word *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(w[i].data);
}

/* Move word i's bytes into a ProtobufCBinaryData. */
static ProtobufCBinaryData take(struct word *w)
{
	ProtobufCBinaryData b = {w->len, w->data};
	w->data = NULL;
	return b;
}

Raftkv__V1__RequestOp *kvctl_parse_op(const char *s, char *err, size_t errlen)
{
	struct word words[MAX_WORDS];
	size_t n = 0;
	const char *p = s;
	for (;;) {
		if (n == MAX_WORDS) {
			free_words(words, n);
			fail(err, errlen, "too many words");
			return NULL;
		}
		int r = next_word(&p, "", &words[n], err, errlen);
		if (r < 0) {
			free_words(words, n);
			return NULL;
		}
		if (r == 0)
			break;
		n++;
	}
	Raftkv__V1__RequestOp *op = malloc(sizeof(*op));
	if (n == 0 || op == NULL) {
		free(op);
		free_words(words, n);
		fail(err, errlen, "%s", n == 0 ? "empty operation" : "out of memory");
		return NULL;
	}
	raftkv__v1__request_op__init(op);

	/* Flags and positional words after the verb. */
	struct word *pos[3];
	size_t npos = 0;
	bool prefix = false, prev_kv = false, keys_only = false, count_only = false;
	uint64_t limit = 0;
	bool is_put = word_is(&words[0], "put"), is_get = word_is(&words[0], "get");
	bool is_range = word_is(&words[0], "range"),
	     is_del = word_is(&words[0], "del") || word_is(&words[0], "delete");
	if (!is_put && !is_get && !is_range && !is_del) {
		fail(err, errlen, "unknown operation \"%.*s\" (put, get, range, del)",
		     (int)words[0].len, (const char *)words[0].data);
		goto err;
	}
	for (size_t i = 1; i < n; i++) {
		struct word *w = &words[i];
		if (w->len > 2 && memcmp(w->data, "--", 2) == 0) {
			if (word_is(w, "--prefix") && (is_range || is_del)) {
				prefix = true;
			} else if (word_is(w, "--prev-kv") && (is_put || is_del)) {
				prev_kv = true;
			} else if (word_is(w, "--keys-only") && is_range) {
				keys_only = true;
			} else if (word_is(w, "--count-only") && is_range) {
				count_only = true;
			} else if (word_is(w, "--limit") && is_range) {
				if (i + 1 == n || parse_u64(&words[i + 1], &limit) != 0) {
					fail(err, errlen, "--limit needs a non-negative integer");
					goto err;
				}
				i++;
			} else {
				fail(err, errlen, "unknown option \"%.*s\" for %.*s", (int)w->len,
				     (const char *)w->data, (int)words[0].len,
				     (const char *)words[0].data);
				goto err;
			}
			continue;
		}
		if (npos == 3) {
			fail(err, errlen, "too many arguments");
			goto err;
		}
		pos[npos++] = w;
	}
	size_t need_min = is_put ? 2 : 1, need_max = is_put ? 2 : (is_get ? 1 : 2);
	if (npos < need_min || npos > need_max) {
		fail(err, errlen, "usage: %s",
		     is_put     ? "put KEY VALUE [--prev-kv]"
		     : is_get   ? "get KEY"
		     : is_range ? "range KEY [RANGE_END] [--prefix] [--limit N] "
				  "[--keys-only] [--count-only]"
				: "del KEY [RANGE_END] [--prefix] [--prev-kv]");
		goto err;
	}
	if (prefix && npos == 2) {
		fail(err, errlen, "--prefix and RANGE_END exclude each other");
		goto err;
	}
	if (is_put) {
		Raftkv__V1__PutRequest *r = malloc(sizeof(*r));
		if (r == NULL)
			goto oom;
		raftkv__v1__put_request__init(r);
		r->key = take(pos[0]);
		r->value = take(pos[1]);
		r->prev_kv = prev_kv;
		op->request_case = RAFTKV__V1__REQUEST_OP__REQUEST_PUT;
		op->put = r;
	} else if (is_get || is_range) {
		Raftkv__V1__RangeRequest *r = malloc(sizeof(*r));
		if (r == NULL)
			goto oom;
		raftkv__v1__range_request__init(r);
		r->key = take(pos[0]);
		if (npos == 2)
			r->range_end = take(pos[1]);
		r->prefix = prefix;
		r->limit = limit;
		r->keys_only = keys_only;
		r->count_only = count_only;
		op->request_case = RAFTKV__V1__REQUEST_OP__REQUEST_RANGE;
		op->range = r;
	} else {
		Raftkv__V1__DeleteRequest *r = malloc(sizeof(*r));
		if (r == NULL)
			goto oom;
		raftkv__v1__delete_request__init(r);
		r->key = take(pos[0]);
		if (npos == 2) {
			r->range_end = take(pos[1]);
		} else if (prefix) {
			/* DeleteRequest has no prefix flag: send the prefix's range end. */
			uint8_t *end = malloc(r->key.len + 1);
			if (end == NULL) {
				rk_free(r);
				goto oom;
			}
			r->range_end.len = rk_prefix_end(r->key.data, r->key.len, end);
			r->range_end.data = end;
		}
		r->prev_kv = prev_kv;
		op->request_case = RAFTKV__V1__REQUEST_OP__REQUEST_DELETE;
		op->delete_ = r;
	}
	free_words(words, n);
	return op;
oom:
	fail(err, errlen, "out of memory");
err:
	free_words(words, n);
	rk_free(op);
	return NULL;
}
