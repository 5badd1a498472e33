/* The loop: one completion queue and the one thread that polls it and dispatches each event
 * to the server or client code by the tag's kind. Also the shared helpers of tp_internal.h. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/check.h"
#include "common/monotime.h"
#include "server/transport/tp_internal.h"

void tp_global_init(void)
{
	grpc_init();
}

void tp_global_shutdown(void)
{
	/* From a thread that is not gRPC's own, grpc_shutdown in 1.51 cleans up synchronously
	 * when this is the last init reference. */
	grpc_shutdown();
}

int64_t tp_now_ms(void)
{
	return monotime_ms();
}

static void *loop_main(void *arg)
{
	struct tp_loop *l = arg;
	for (;;) {
		grpc_event ev =
			grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (NEVER(ev.type != GRPC_OP_COMPLETE))
			continue;
		struct tp_tag *t = ev.tag;
		switch (t->kind) {
		case TP_TAG_SRV_REQUEST:
		case TP_TAG_SRV_RECV:
		case TP_TAG_SRV_SEND:
		case TP_TAG_SRV_FINAL:
		case TP_TAG_SRV_CLOSE:
		case TP_TAG_SRV_SHUTDOWN:
			tp_server_event(t, ev.success != 0);
			break;
		case TP_TAG_UNARY:
		case TP_TAG_OS_SEND:
		case TP_TAG_OS_STATUS:
			tp_client_event(t, ev.success != 0);
			break;
		default:
			PANIC("transport: completion with an unknown tag kind");
		}
	}
	return NULL;
}

struct tp_loop *tp_loop_new(void)
{
	struct tp_loop *l = calloc(1, sizeof(*l));
	if (l == NULL)
		goto err;
	l->cq = grpc_completion_queue_create_for_next(NULL);
	if (l->cq == NULL)
		goto err_after_alloc;
	if (pthread_create(&l->thread, NULL, loop_main, l) != 0)
		goto err_after_cq;
	return l;
err_after_cq:
	grpc_completion_queue_shutdown(l->cq);
	while (grpc_completion_queue_next(l->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
	       GRPC_QUEUE_SHUTDOWN)
		;
	grpc_completion_queue_destroy(l->cq);
err_after_alloc:
	free(l);
err:
	return NULL;
}

void tp_loop_free(struct tp_loop *l)
{
	if (l == NULL)
		return;
	INVARIANT(!tp_loop_on_thread(l), "tp_loop_free from the loop's own thread");
	/* The thread drains every remaining event, then sees GRPC_QUEUE_SHUTDOWN and exits. */
	grpc_completion_queue_shutdown(l->cq);
	pthread_join(l->thread, NULL);
	grpc_completion_queue_destroy(l->cq);
	free(l);
}

bool tp_loop_on_thread(const struct tp_loop *l)
{
	return pthread_equal(pthread_self(), l->thread) != 0;
}

grpc_byte_buffer *tp_bb_from(const void *p, size_t n)
{
	grpc_slice s = grpc_slice_malloc(n);
	if (n > 0)
		memcpy(GRPC_SLICE_START_PTR(s), p, n);
	/* grpc_raw_byte_buffer_create takes its own reference on the slice. */
	grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
	grpc_slice_unref(s);
	return bb;
}

bool tp_bb_flatten(grpc_byte_buffer *bb, grpc_slice *out)
{
	grpc_byte_buffer_reader r;
	if (!grpc_byte_buffer_reader_init(&r, bb))
		return false;
	*out = grpc_byte_buffer_reader_readall(&r);
	grpc_byte_buffer_reader_destroy(&r);
	return true;
}

bool tp_mdv_init(struct tp_mdv *v, const struct tp_md *md, size_t n)
{
	v->md = NULL;
	v->n = 0;
	if (n == 0)
		return true;
	v->md = calloc(n, sizeof(*v->md));
	if (v->md == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		size_t vlen = md[i].value_len ? md[i].value_len : strlen(md[i].value);
		grpc_metadata *m = &v->md[v->n++];
		m->key = grpc_slice_from_copied_string(md[i].key);
		m->value = grpc_slice_from_copied_buffer(md[i].value, vlen);
		/* Checked here because start_batch would refuse the whole batch for it; grpc-*
		 * keys are reserved for gRPC itself. */
		bool ok = grpc_header_key_is_legal(m->key) && strncmp(md[i].key, "grpc-", 5) != 0 &&
			  (grpc_is_binary_header(m->key) ||
			   grpc_header_nonbin_value_is_legal(m->value));
		if (!ok) {
			tp_mdv_free(v);
			return false;
		}
	}
	return true;
}

void tp_mdv_free(struct tp_mdv *v)
{
	for (size_t i = 0; i < v->n; i++) {
		grpc_slice_unref(v->md[i].key);
		grpc_slice_unref(v->md[i].value);
	}
	free(v->md);
	v->md = NULL;
	v->n = 0;
}

struct tp_md *tp_md_copy(const grpc_metadata_array *a, size_t *n)
{
	*n = 0;
	if (a->count == 0)
		return NULL;
	size_t bytes = a->count * sizeof(struct tp_md);
	for (size_t i = 0; i < a->count; i++)
		bytes += GRPC_SLICE_LENGTH(a->metadata[i].key) +
			 GRPC_SLICE_LENGTH(a->metadata[i].value) + 2;
	struct tp_md *md = malloc(bytes);
	if (md == NULL)
		return NULL;
	char *p = (char *)(md + a->count);
	for (size_t i = 0; i < a->count; i++) {
		size_t kl = GRPC_SLICE_LENGTH(a->metadata[i].key);
		size_t vl = GRPC_SLICE_LENGTH(a->metadata[i].value);
		memcpy(p, GRPC_SLICE_START_PTR(a->metadata[i].key), kl);
		p[kl] = '\0';
		md[i].key = p;
		p += kl + 1;
		if (vl > 0)
			memcpy(p, GRPC_SLICE_START_PTR(a->metadata[i].value), vl);
		p[vl] = '\0';
		md[i].value = p;
		md[i].value_len = vl;
		p += vl + 1;
	}
	*n = a->count;
	return md;
}

gpr_timespec tp_deadline_in(int ms)
{
	if (ms <= 0)
		return gpr_inf_future(GPR_CLOCK_MONOTONIC);
	return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}
