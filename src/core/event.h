/* event: a flag processes wait on.  params[0] = auto_reset (0/1),
 * params[1] = initially set (0/1).
 *
 * Manual reset: set() stays set until clear(); every waiter passes, also one
 * that was waiting when a set()+clear() pulse went by (generation count).
 * Auto reset: each set() is handed to the oldest registered live waiter
 * (its own futex word in a slot); with no waiter it is kept as the flag for
 * the next one.  See docs/design.md. */
#ifndef IPC_EVENT_H
#define IPC_EVENT_H

#include "segment.h"

#define IPC_EVENT_SLOTS 128

extern const ipc_type_ops ipc_event_ops;

int ipc_event_set(ipc_segment *seg, unsigned sigsnap, ipc_error *err);
void ipc_event_clear(ipc_segment *seg);
int ipc_event_is_set(ipc_segment *seg);
/* IPC_OK (passed), IPC_TIMEOUT, IPC_INTERRUPTED or IPC_ERR. */
int ipc_event_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err);

typedef struct ipc_event_state {
	int is_set;
	int auto_reset;
	int waiters;                   /* live registered waiters */
	int32_t pids[IPC_EVENT_SLOTS]; /* their pids */
	uint64_t sets;                 /* sets so far (ipcsh top) */
} ipc_event_state;

/* Reaps dead waiters, then reports. */
int ipc_event_info(ipc_segment *seg, ipc_event_state *st, ipc_error *err);

/* ipc.select hooks (src/core/select.c).  start: the state word when a
 * select begins (w0).  passed: the wait would pass now (set; manual reset:
 * or set since w0, a pulse).  arm: 1 when passed (nothing registered);
 * else 0 after claiming a waiter slot (*ref), with the futex word and
 * value to sleep on and *slice.  disarm: free the slot; auto reset: a set
 * granted to it is given back (to the oldest other waiter, else kept). */
uint32_t ipc_event_sel_start(ipc_segment *seg);
int ipc_event_sel_passed(ipc_segment *seg, uint32_t w0);
int ipc_event_sel_arm(ipc_segment *seg, uint32_t w0, void **ref, uint32_t **word, uint32_t *seen,
                      int64_t *slice, ipc_error *err);
void ipc_event_sel_disarm(ipc_segment *seg, void *ref);

#endif
