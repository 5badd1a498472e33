/* The server reflection index: a FileDescriptorSet split into files, a sorted symbol table
 * (packages' messages incl. nested ones, enums, services, "pkg.Svc.Method") and the answer to
 * one grpc.reflection.v1 (or v1alpha: the same wire format) ServerReflectionRequest. */
#ifndef RAFTKV_TRANSPORT_REFLECTION_H
#define RAFTKV_TRANSPORT_REFLECTION_H

#include <stddef.h>

struct tp_refl;

/* Index `set` (a serialized google.protobuf.FileDescriptorSet). The bytes are copied where
 * needed: `set` may be freed afterwards. NULL on failure, with a message in errmsg. */
struct tp_refl *tp_refl_new(const void *set, size_t len, char *errmsg, size_t errmsg_len);
void tp_refl_free(struct tp_refl *r);

/* Services described by the set, fully qualified ("raftkv.v1.KV"), in file order. */
size_t tp_refl_n_services(const struct tp_refl *r);
const char *tp_refl_service(const struct tp_refl *r, size_t i);

/* The file defining `symbol` (a message, nested message, enum, service or "pkg.Svc.Method"),
 * or NULL. */
const char *tp_refl_file_of(const struct tp_refl *r, const char *symbol);

/*
 * Answer one serialized ServerReflectionRequest: *resp (malloc'd, the caller frees) receives a
 * serialized ServerReflectionResponse. Unknown files and symbols give an ErrorResponse
 * NOT_FOUND, extension queries UNIMPLEMENTED. Returns 0, or -1 when the request does not decode
 * (or out of memory): the caller then fails the stream with INVALID_ARGUMENT.
 */
int tp_refl_answer(const struct tp_refl *r, const void *req, size_t len, void **resp,
		   size_t *resp_len);

#endif
