/* Transport internals shared by loop.c, server.c and client.c: the completion-queue tag
 * layout, the loop, and small byte-buffer / metadata helpers. Not a public header. */
#ifndef RAFTKV_TRANSPORT_TP_INTERNAL_H
#define RAFTKV_TRANSPORT_TP_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "server/transport/transport.h"

/*
 * Every tag handed to gRPC points at a `struct tp_tag` embedded in some context; its kind
 * says which context and which batch, so that server calls, outbound calls, streams and the
 * server-shutdown notification all share one completion queue. The owning context is found
 * with TP_CONTAINER_OF.
 */
enum tp_tag_kind {
	TP_TAG_SRV_REQUEST = 1, /* a pre-posted request_call: a new incoming call (or shutdown) */
	TP_TAG_SRV_RECV,        /* RECV_MESSAGE on an incoming stream */
	TP_TAG_SRV_SEND,        /* SEND_MESSAGE on an incoming stream (health Watch, reflection) */
	TP_TAG_SRV_FINAL,       /* the reply batch (SEND_STATUS_FROM_SERVER ...) */
	TP_TAG_SRV_CLOSE,       /* RECV_CLOSE_ON_SERVER posted when a stream starts */
	TP_TAG_SRV_SHUTDOWN,    /* grpc_server_shutdown_and_notify finished */
	TP_TAG_UNARY,           /* the one 6-op batch of an outbound unary call */
	TP_TAG_OS_SEND,         /* SEND_MESSAGE / SEND_CLOSE_FROM_CLIENT of an outbound stream */
	TP_TAG_OS_STATUS,       /* RECV_MESSAGE + RECV_STATUS_ON_CLIENT of an outbound stream */
};

struct tp_tag {
	enum tp_tag_kind kind;
};

#define TP_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct tp_loop {
	grpc_completion_queue *cq;
	pthread_t thread;
};

/* True when called on the loop's own thread (inside a callback). */
bool tp_loop_on_thread(const struct tp_loop *l);

/* Dispatch targets of the loop thread (server.c, client.c). */
void tp_server_event(struct tp_tag *t, bool ok);
void tp_client_event(struct tp_tag *t, bool ok);

/* A byte buffer holding a copy of p[0..n) (one slice). The caller destroys it. */
grpc_byte_buffer *tp_bb_from(const void *p, size_t n);
/* The contents of a received buffer as one slice (the caller unrefs it). false: unreadable
 * (e.g. an unknown compression). */
bool tp_bb_flatten(grpc_byte_buffer *bb, grpc_slice *out);

/* Outgoing metadata copied from tp_md pairs: slices owned here, alive until tp_mdv_free. */
struct tp_mdv {
	grpc_metadata *md;
	size_t n;
};
/* false: an illegal key or value (see struct tp_md); *v is then left empty. */
bool tp_mdv_init(struct tp_mdv *v, const struct tp_md *md, size_t n);
void tp_mdv_free(struct tp_mdv *v);

/* Received metadata as tp_md pairs with NUL-terminated copies, in one malloc'd block that
 * the caller frees. NULL with *n = 0 when empty (or out of memory). */
struct tp_md *tp_md_copy(const grpc_metadata_array *a, size_t *n);

/* A gpr deadline `ms` from now on the monotonic clock; infinite when ms <= 0. */
gpr_timespec tp_deadline_in(int ms);

#endif
