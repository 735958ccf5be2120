/* semaphore: a counter with blocking waits, optional upper bound, and
 * optional undo (permits of a process that dies are given back).
 *
 * params: [0] initial value, [1] max, [2] undo flag.
 * Without undo the count is a single atomic word: wait and post are one
 * compare-and-swap each, and a death can never leave it half-updated.
 * With undo every change happens under the internal robust lock, together
 * with the per-process record of permits held; a journal entry written
 * before the change lets the next locker roll back a half-done one. */
#ifndef IPC_SEMAPHORE_H
#define IPC_SEMAPHORE_H

#include "procid.h"
#include "rlock.h"
#include "segment.h"

#define IPC_SEM_SLOTS 256
#define IPC_SEM_MAX INT64_MAX

typedef struct ipc_sem_holder {
	ipc_token token; /* 0 = free */
	int64_t held;    /* permits taken and not yet posted back */
} ipc_sem_holder;

typedef struct ipc_sem_body {
	ipc_rlock i;
	int64_t value;
	int64_t max;
	uint32_t undo;
	uint32_t seq;   /* futex word: bumped by post when someone waits */
	uint32_t nwait; /* occupied waiter[] slots */
	/* journal (undo mode): the state before the change in progress */
	uint32_t j_valid;
	int32_t j_slot;
	uint32_t pad;
	int64_t j_value;
	int64_t j_held;
	ipc_token waiter[IPC_SEM_SLOTS];
	ipc_sem_holder holder[IPC_SEM_SLOTS];
	/* permits posted / taken, for rates (ipcsh top): under `i` in undo
	 * mode (exact); a relaxed load + store after the lock-free CAS
	 * otherwise (no extra atomic RMW: concurrent updates may drop one) */
	uint64_t n_posted, n_taken;
} ipc_sem_body;

extern const ipc_type_ops ipc_semaphore_ops;

int ipc_sem_post(ipc_segment *seg, int64_t n, ipc_error *err);
/* IPC_OK, IPC_TIMEOUT, IPC_INTERRUPTED, IPC_ERR */
int ipc_sem_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err);
int64_t ipc_sem_value(ipc_segment *seg);
/* Reap dead waiters and (undo) dead holders; returns waiters. */
uint32_t ipc_sem_waiters(ipc_segment *seg);

/* ipc.select hooks (src/core/select.c).  arm: 1 when a permit is there
 * (nothing registered); else 0 after registering this process as a waiter:
 * *slot (-1: no slot free, poll), the futex word and its value to sleep on,
 * and *slice (0 or the longest sleep).  disarm: unregister, and pass one
 * wake on if permits are left (wake() does nothing when no one waits). */
int ipc_sem_sel_arm(ipc_segment *seg, int *slot, uint32_t **word, uint32_t *seen, int64_t *slice,
                    ipc_error *err);
void ipc_sem_sel_disarm(ipc_segment *seg, int slot);

#endif
