/* Snapshot transfer bookkeeping (see snapxfer.h). */
#include "server/node/snapxfer.h"

enum snapxfer_do snapxfer_request(struct snapxfer *x, raft_index index, raft_term term, bool ended,
				  uint64_t *id)
{
	if (x->running != 0 && !ended && x->index == index && x->term == term) {
		*id = x->running;
		return SNAPXFER_KEEP;
	}
	enum snapxfer_do d = x->running != 0 ? SNAPXFER_RESTART : SNAPXFER_START;
	x->running = *id = ++x->last_id;
	x->index = index;
	x->term = term;
	return d;
}

bool snapxfer_ended(struct snapxfer *x, uint64_t id, bool ok)
{
	if (id == 0 || id != x->running)
		return false; /* replaced by a newer transfer: its outcome is what counts */
	x->running = 0;
	return !ok;
}
