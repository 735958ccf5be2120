/* barrier: `count` parties meet, round after round.  params[0] = count
 * (1..IPC_BARRIER_SLOTS).  Arrivals are per-process slots tagged with the
 * round (generation) they belong to; see docs/design.md. */
#ifndef IPC_BARRIER_H
#define IPC_BARRIER_H

#include "segment.h"

#define IPC_BARRIER_SLOTS 256

extern const ipc_type_ops ipc_barrier_ops;

/* IPC_OK (round complete; *is_last set for exactly one party per round),
 * IPC_TIMEOUT (arrival withdrawn), IPC_INTERRUPTED (withdrawn) or IPC_ERR. */
int ipc_barrier_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, int *is_last,
                     ipc_error *err);

typedef struct ipc_barrier_state {
	int count;
	int arrived;    /* live parties waiting in the current round */
	uint32_t round; /* completed rounds (mod 2^32) */
	int32_t pids[IPC_BARRIER_SLOTS];
} ipc_barrier_state;

/* Reaps dead arrivals, then reports. */
int ipc_barrier_info(ipc_segment *seg, ipc_barrier_state *st, ipc_error *err);

#endif
