/* Server reflection over an embedded FileDescriptorSet (the C core has no reflection). The
 * index is built once when a server starts and is read-only afterwards, so answering needs
 * no lock. */
#include <grpc/status.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "server/transport/reflection.h"

struct refl_file {
	const uint8_t *bytes; /* the serialized FileDescriptorProto, inside r->set */
	size_t len;
	Google__Protobuf__FileDescriptorProto *fd;
};

struct refl_sym {
	char *name; /* fully qualified, without a leading dot */
	size_t file;
};

struct tp_refl {
	uint8_t *set; /* a copy of the descriptor set */
	size_t set_len;
	struct refl_file *files;
	size_t n_files;
	struct refl_sym *syms; /* sorted by name */
	size_t n_syms, cap_syms;
	char **services;
	size_t n_services;
};

/* Reads a base-128 varint; 0 on a truncated or over-long one. */
static size_t get_varint(const uint8_t *p, size_t n, uint64_t *v)
{
	*v = 0;
	for (size_t i = 0; i < n && i < 10; i++) {
		*v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80))
			return i + 1;
	}
	return 0;
}

static char *join(const char *prefix, const char *name)
{
	size_t pl = prefix ? strlen(prefix) : 0, nl = strlen(name);
	char *s = malloc(pl + nl + 2);
	if (s == NULL)
		return NULL;
	if (pl > 0) {
		memcpy(s, prefix, pl);
		s[pl++] = '.';
	}
	memcpy(s + pl, name, nl + 1);
	return s;
}

/* Takes ownership of `name`. */
static int add_sym(struct tp_refl *r, char *name, size_t file)
{
	if (name == NULL)
		return -1;
	if (r->n_syms == r->cap_syms) {
		size_t cap = r->cap_syms ? 2 * r->cap_syms : 64;
		struct refl_sym *s = realloc(r->syms, cap * sizeof(*s));
		if (s == NULL) {
			free(name);
			return -1;
		}
		r->syms = s;
		r->cap_syms = cap;
	}
	r->syms[r->n_syms++] = (struct refl_sym){.name = name, .file = file};
	return 0;
}

static int add_enums(struct tp_refl *r, const char *prefix,
		     Google__Protobuf__EnumDescriptorProto **e, size_t n, size_t file)
{
	for (size_t i = 0; i < n; i++)
		if (add_sym(r, join(prefix, e[i]->name), file) != 0)
			return -1;
	return 0;
}

static int add_messages(struct tp_refl *r, const char *prefix,
			Google__Protobuf__DescriptorProto **m, size_t n, size_t file)
{
	for (size_t i = 0; i < n; i++) {
		char *full = join(prefix, m[i]->name);
		if (add_sym(r, full, file) != 0)
			return -1;
		/* r->syms may move, but `full` itself stays put. */
		if (add_messages(r, full, m[i]->nested_type, m[i]->n_nested_type, file) != 0 ||
		    add_enums(r, full, m[i]->enum_type, m[i]->n_enum_type, file) != 0)
			return -1;
	}
	return 0;
}

static int index_file(struct tp_refl *r, size_t fi)
{
	const Google__Protobuf__FileDescriptorProto *fd = r->files[fi].fd;
	const char *pkg = fd->package && fd->package[0] ? fd->package : NULL;
	if (add_messages(r, pkg, fd->message_type, fd->n_message_type, fi) != 0 ||
	    add_enums(r, pkg, fd->enum_type, fd->n_enum_type, fi) != 0)
		return -1;
	for (size_t i = 0; i < fd->n_service; i++) {
		const Google__Protobuf__ServiceDescriptorProto *svc = fd->service[i];
		char *full = join(pkg, svc->name);
		if (add_sym(r, full, fi) != 0)
			return -1;
		char **s = realloc(r->services, (r->n_services + 1) * sizeof(*s));
		if (s == NULL)
			return -1;
		r->services = s;
		r->services[r->n_services++] = full; /* shared with the symbol table */
		for (size_t j = 0; j < svc->n_method; j++)
			if (add_sym(r, join(full, svc->method[j]->name), fi) != 0)
				return -1;
	}
	return 0;
}

static int sym_cmp(const void *a, const void *b)
{
	return strcmp(((const struct refl_sym *)a)->name, ((const struct refl_sym *)b)->name);
}

struct tp_refl *tp_refl_new(const void *set, size_t len, char *errmsg, size_t errmsg_len)
{
	const char *why = "out of memory";
	struct tp_refl *r = calloc(1, sizeof(*r));
	if (r == NULL)
		goto err;
	r->set = malloc(len ? len : 1);
	if (r->set == NULL)
		goto err_after_alloc;
	memcpy(r->set, set, len);
	r->set_len = len;

	/* FileDescriptorSet is `repeated FileDescriptorProto file = 1`: keep each file's own
	 * bytes (served as they are) and decode it for the index. */
	why = "malformed descriptor set";
	size_t off = 0;
	while (off < len) {
		uint64_t key, flen;
		size_t k = get_varint(r->set + off, len - off, &key);
		if (k == 0 || key != ((1 << 3) | 2))
			goto err_after_alloc;
		off += k;
		k = get_varint(r->set + off, len - off, &flen);
		if (k == 0 || flen > len - off - k)
			goto err_after_alloc;
		off += k;
		struct refl_file *f = realloc(r->files, (r->n_files + 1) * sizeof(*f));
		if (f == NULL)
			goto err_after_alloc;
		r->files = f;
		f = &r->files[r->n_files];
		f->bytes = r->set + off;
		f->len = (size_t)flen;
		f->fd = google__protobuf__file_descriptor_proto__unpack(NULL, f->len, f->bytes);
		if (f->fd == NULL || f->fd->name == NULL)
			goto err_after_alloc;
		r->n_files++;
		off += (size_t)flen;
	}
	why = "out of memory";
	for (size_t i = 0; i < r->n_files; i++)
		if (index_file(r, i) != 0)
			goto err_after_alloc;
	qsort(r->syms, r->n_syms, sizeof(*r->syms), sym_cmp);
	return r;

err_after_alloc:
	tp_refl_free(r);
err:
	snprintf(errmsg, errmsg_len, "reflection: %s", why);
	return NULL;
}

void tp_refl_free(struct tp_refl *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n_syms; i++)
		free(r->syms[i].name);
	free(r->syms);
	free(r->services);
	for (size_t i = 0; i < r->n_files; i++)
		google__protobuf__file_descriptor_proto__free_unpacked(r->files[i].fd, NULL);
	free(r->files);
	free(r->set);
	free(r);
}

size_t tp_refl_n_services(const struct tp_refl *r)
{
	return r->n_services;
}

const char *tp_refl_service(const struct tp_refl *r, size_t i)
{
	return i < r->n_services ? r->services[i] : NULL;
}

static const struct refl_sym *find_sym(const struct tp_refl *r, const char *symbol)
{
	/* Reflection clients sometimes send ".pkg.Name". */
	if (symbol[0] == '.')
		symbol++;
	struct refl_sym key = {.name = (char *)symbol};
	return bsearch(&key, r->syms, r->n_syms, sizeof(*r->syms), sym_cmp);
}

const char *tp_refl_file_of(const struct tp_refl *r, const char *symbol)
{
	const struct refl_sym *s = find_sym(r, symbol);
	return s ? r->files[s->file].fd->name : NULL;
}

static size_t find_file(const struct tp_refl *r, const char *name)
{
	for (size_t i = 0; i < r->n_files; i++)
		if (strcmp(r->files[i].fd->name, name) == 0)
			return i;
	return SIZE_MAX;
}

/* Appends file `fi`, then its dependencies depth first, each once. */
static void closure(const struct tp_refl *r, size_t fi, bool *seen, size_t *order, size_t *n)
{
	if (seen[fi])
		return;
	seen[fi] = true;
	order[(*n)++] = fi;
	const Google__Protobuf__FileDescriptorProto *fd = r->files[fi].fd;
	for (size_t i = 0; i < fd->n_dependency; i++) {
		size_t d = find_file(r, fd->dependency[i]);
		if (d != SIZE_MAX)
			closure(r, d, seen, order, n);
	}
}

int tp_refl_answer(const struct tp_refl *r, const void *req, size_t len, void **resp,
		   size_t *resp_len)
{
	int rv = -1;
	Grpc__Reflection__V1__ServerReflectionRequest *q =
		grpc__reflection__v1__server_reflection_request__unpack(NULL, len, req);
	if (q == NULL)
		goto err;

	Grpc__Reflection__V1__ServerReflectionResponse a =
		GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
	Grpc__Reflection__V1__FileDescriptorResponse files =
		GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
	Grpc__Reflection__V1__ListServiceResponse list =
		GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
	Grpc__Reflection__V1__ErrorResponse error = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
	a.valid_host = q->host;
	a.original_request = q;

	bool *seen = calloc(r->n_files + 1, sizeof(*seen));
	size_t *order = calloc(r->n_files + 1, sizeof(*order));
	ProtobufCBinaryData *blobs = calloc(r->n_files + 1, sizeof(*blobs));
	Grpc__Reflection__V1__ServiceResponse *svcs = calloc(r->n_services + 1, sizeof(*svcs));
	Grpc__Reflection__V1__ServiceResponse **svcp = calloc(r->n_services + 1, sizeof(*svcp));
	if (!seen || !order || !blobs || !svcs || !svcp)
		goto err_after_alloc;

	size_t fi = SIZE_MAX;
	const char *what = NULL;
	switch (q->message_request_case) {
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
		fi = find_file(r, q->file_by_filename);
		what = "file not found";
		break;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL: {
		const struct refl_sym *s = find_sym(r, q->file_containing_symbol);
		fi = s ? s->file : SIZE_MAX;
		what = "symbol not found";
		break;
	}
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
		for (size_t i = 0; i < r->n_services; i++) {
			grpc__reflection__v1__service_response__init(&svcs[i]);
			svcs[i].name = r->services[i];
			svcp[i] = &svcs[i];
		}
		list.n_service = r->n_services;
		list.service = svcp;
		a.message_response_case =
			GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
		a.list_services_response = &list;
		break;
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
	case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
		error.error_code = GRPC_STATUS_UNIMPLEMENTED;
		error.error_message = "extensions are not supported";
		break;
	default:
		error.error_code = GRPC_STATUS_INVALID_ARGUMENT;
		error.error_message = "empty request";
		break;
	}
	if (what != NULL) {
		if (fi == SIZE_MAX) {
			error.error_code = GRPC_STATUS_NOT_FOUND;
			error.error_message = (char *)what;
		} else {
			size_t n = 0;
			closure(r, fi, seen, order, &n);
			for (size_t i = 0; i < n; i++)
				blobs[i] = (ProtobufCBinaryData){
					.len = r->files[order[i]].len,
					.data = (uint8_t *)r->files[order[i]].bytes};
			files.n_file_descriptor_proto = n;
			files.file_descriptor_proto = blobs;
			a.message_response_case =
				GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
			a.file_descriptor_response = &files;
		}
	}
	if (error.error_code != 0) {
		a.message_response_case =
			GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
		a.error_response = &error;
	}

	*resp_len = grpc__reflection__v1__server_reflection_response__get_packed_size(&a);
	*resp = malloc(*resp_len ? *resp_len : 1);
	if (*resp == NULL)
		goto err_after_alloc;
	grpc__reflection__v1__server_reflection_response__pack(&a, *resp);
	rv = 0;

err_after_alloc:
	free(seen);
	free(order);
	free(blobs);
	free(svcs);
	free(svcp);
	grpc__reflection__v1__server_reflection_request__free_unpacked(q, NULL);
err:
	return rv;
}
