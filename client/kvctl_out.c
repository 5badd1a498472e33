/* kvctl output: a small JSON writer and the etcdctl-like human format. */
#include <string.h>

#include "client/kvctl.h"

/* ---- JSON ---------------------------------------------------------------------------------- */

void jw_init(struct jw *w, FILE *f)
{
	w->f = f;
	w->depth = 0;
	w->first[0] = true;
}

/* A comma if needed, then "key": when key != NULL. */
static void sep(struct jw *w, const char *key)
{
	if (!w->first[w->depth])
		fputc(',', w->f);
	w->first[w->depth] = false;
	if (key != NULL)
		fprintf(w->f, "\"%s\":", key); /* keys are our own identifiers: no escaping */
}

static void open_(struct jw *w, const char *key, char ch)
{
	sep(w, key);
	fputc(ch, w->f);
	if (w->depth + 1 < (int)(sizeof(w->first) / sizeof(w->first[0])))
		w->depth++;
	w->first[w->depth] = true;
}

void jw_obj(struct jw *w, const char *key)
{
	open_(w, key, '{');
}

void jw_obj_end(struct jw *w)
{
	fputc('}', w->f);
	w->depth--;
}

void jw_arr(struct jw *w, const char *key)
{
	open_(w, key, '[');
}

void jw_arr_end(struct jw *w)
{
	fputc(']', w->f);
	w->depth--;
}

void jw_u64(struct jw *w, const char *key, uint64_t v)
{
	sep(w, key);
	fprintf(w->f, "%llu", (unsigned long long)v);
}

void jw_int(struct jw *w, const char *key, int v)
{
	sep(w, key);
	fprintf(w->f, "%d", v);
}

void jw_bool(struct jw *w, const char *key, bool v)
{
	sep(w, key);
	fputs(v ? "true" : "false", w->f);
}

void jw_null(struct jw *w, const char *key)
{
	sep(w, key);
	fputs("null", w->f);
}

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), 0 if invalid. */
static size_t utf8_seq(const uint8_t *p, size_t left)
{
	uint8_t c = p[0];
	if (c < 0x80)
		return 1;
	size_t n;
	uint32_t cp, min;
	if ((c & 0xe0) == 0xc0) {
		n = 2, cp = c & 0x1f, min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3, cp = c & 0x0f, min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static bool valid_utf8(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* A JSON string of valid UTF-8 bytes. */
static void json_string(FILE *f, const uint8_t *p, size_t len)
{
	fputc('"', f);
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				fputc(c, f);
		}
	}
	fputc('"', f);
}

static void base64(FILE *f, const uint8_t *p, size_t len)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		fputc(tab[(v >> 18) & 63], f);
		fputc(tab[(v >> 12) & 63], f);
		fputc(i + 1 < len ? tab[(v >> 6) & 63] : '=', f);
		fputc(i + 2 < len ? tab[v & 63] : '=', f);
	}
}

void jw_bytes(struct jw *w, const char *key, const uint8_t *data, size_t len)
{
	sep(w, key);
	if (valid_utf8(data, len)) {
		json_string(w->f, data, len);
		return;
	}
	fputs("{\"base64\":\"", w->f);
	base64(w->f, data, len);
	fputs("\"}", w->f);
}

void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_bytes(w, key, (const uint8_t *)(s != NULL ? s : ""), s != NULL ? strlen(s) : 0);
}

void jw_done(struct jw *w)
{
	fputc('\n', w->f);
	fflush(w->f);
}

void jw_header(struct jw *w, const Raftkv__V1__ResponseHeader *h)
{
	if (h == NULL) {
		jw_null(w, "header");
		return;
	}
	jw_obj(w, "header");
	jw_u64(w, "revision", h->revision);
	jw_u64(w, "member_id", h->member_id);
	jw_u64(w, "raft_term", h->raft_term);
	jw_u64(w, "raft_index", h->raft_index);
	jw_obj_end(w);
}

void jw_kv(struct jw *w, const char *key, const Raftkv__V1__KeyValue *kv)
{
	if (kv == NULL) {
		jw_null(w, key);
		return;
	}
	jw_obj(w, key);
	jw_bytes(w, "key", kv->key.data, kv->key.len);
	jw_bytes(w, "value", kv->value.data, kv->value.len);
	jw_u64(w, "create_revision", kv->create_revision);
	jw_u64(w, "mod_revision", kv->mod_revision);
	jw_u64(w, "version", kv->version);
	jw_obj_end(w);
}

void jw_put(struct jw *w, const Raftkv__V1__PutResponse *r)
{
	jw_header(w, r->header);
	jw_kv(w, "prev_kv", r->prev_kv);
}

void jw_delete(struct jw *w, const Raftkv__V1__DeleteResponse *r)
{
	jw_header(w, r->header);
	jw_u64(w, "deleted", r->deleted);
	jw_arr(w, "prev_kvs");
	for (size_t i = 0; i < r->n_prev_kvs; i++)
		jw_kv(w, NULL, r->prev_kvs[i]);
	jw_arr_end(w);
}

void jw_range(struct jw *w, const Raftkv__V1__RangeResponse *r)
{
	jw_header(w, r->header);
	jw_arr(w, "kvs");
	for (size_t i = 0; i < r->n_kvs; i++)
		jw_kv(w, NULL, r->kvs[i]);
	jw_arr_end(w);
	jw_u64(w, "count", r->count);
	jw_bool(w, "more", r->more);
	jw_bytes(w, "next_key", r->next_key.data, r->next_key.len);
}

/* ---- human ------------------------------------------------------------------------------- */

void human_bytes_line(const uint8_t *data, size_t len)
{
	if (len > 0)
		fwrite(data, 1, len, stdout);
	fputc('\n', stdout);
}

void human_kv(const Raftkv__V1__KeyValue *kv, bool keys_only)
{
	human_bytes_line(kv->key.data, kv->key.len);
	if (!keys_only)
		human_bytes_line(kv->value.data, kv->value.len);
}

void human_put(const Raftkv__V1__PutResponse *r)
{
	printf("OK\n");
	if (r->prev_kv != NULL)
		human_kv(r->prev_kv, false);
}

void human_delete(const Raftkv__V1__DeleteResponse *r)
{
	printf("%llu\n", (unsigned long long)r->deleted);
	for (size_t i = 0; i < r->n_prev_kvs; i++)
		human_kv(r->prev_kvs[i], false);
}

/* Bytes for a diagnostic line: printable ASCII as is, everything else (and \\) as \xHH. */
static void escaped(FILE *f, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
}

void human_range(const Raftkv__V1__RangeResponse *r, bool keys_only, bool count_only)
{
	if (count_only) {
		printf("%llu\n", (unsigned long long)r->count);
	} else {
		for (size_t i = 0; i < r->n_kvs; i++)
			human_kv(r->kvs[i], keys_only);
	}
	if (r->more) {
		/* stderr: stdout stays pure key/value lines that a script can consume. */
		fflush(stdout);
		fprintf(stderr, "more: true\nnext_key: ");
		escaped(stderr, r->next_key.data, r->next_key.len);
		fprintf(stderr, "\n");
		/* next_key is the last key and a 0 byte, which no argv can carry: --after adds it. */
		if (r->n_kvs > 0 && r->next_key.len > 0 &&
		    r->next_key.data[r->next_key.len - 1] == 0) {
			fprintf(stderr, "continue with: kvctl range --after ");
			escaped(stderr, r->kvs[r->n_kvs - 1]->key.data,
				r->kvs[r->n_kvs - 1]->key.len);
			fprintf(stderr, " RANGE_END\n");
		}
	}
}

void table_print(FILE *f, const char *const *cells, size_t n_rows, size_t n_cols)
{
	size_t width[32] = {0};
	if (n_cols > 32)
		n_cols = 32;
	for (size_t r = 0; r < n_rows; r++)
		for (size_t c = 0; c < n_cols; c++) {
			size_t l = strlen(cells[r * n_cols + c]);
			if (l > width[c])
				width[c] = l;
		}
	for (size_t r = 0; r < n_rows; r++) {
		for (size_t c = 0; c < n_cols; c++) {
			const char *s = cells[r * n_cols + c];
			if (c + 1 < n_cols)
				fprintf(f, "%-*s  ", (int)width[c], s);
			else
				fprintf(f, "%s", s);
		}
		fputc('\n', f);
	}
}
