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

/* The uncontended paths, inline so that a binding's s:post() / s:wait()
 * costs one atomic operation and no cross-file call.  Same protocol as
 * ipc_sem_post / ipc_sem_wait (docs/design.md "semaphore"): the count is
 * one word changed by compare-and-swap, and a post wakes only when nwait
 * says someone may sleep.  An undo semaphore needs its per-process record:
 * these return 0 and the caller takes the full path. */
void ipc_sem_wake_one(ipc_sem_body *b);

/* Take one permit if there is one and no bookkeeping is needed: 1 taken,
 * 0 use ipc_sem_wait. */
static inline int ipc_sem_trywait_fast(ipc_segment *seg)
{
	ipc_sem_body *b = seg->body;
	int64_t v = __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
	if (b->undo || v <= 0 ||
	    !__atomic_compare_exchange_n(&b->value, &v, v - 1, 0, __ATOMIC_SEQ_CST,
	                                 __ATOMIC_SEQ_CST))
		return 0;
	/* rate counter: a plain relaxed add, see n_taken */
	__atomic_store_n(&b->n_taken, __atomic_load_n(&b->n_taken, __ATOMIC_RELAXED) + 1,
	                 __ATOMIC_RELAXED);
	return 1;
}

/* Post one permit below max: 1 done, 0 use ipc_sem_post (undo, at max,
 * or a concurrent change: the full path decides and reports). */
static inline int ipc_sem_post1_fast(ipc_segment *seg)
{
	ipc_sem_body *b = seg->body;
	int64_t v = __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
	if (b->undo || v < 0 || v >= b->max ||
	    !__atomic_compare_exchange_n(&b->value, &v, v + 1, 0, __ATOMIC_SEQ_CST,
	                                 __ATOMIC_SEQ_CST))
		return 0;
	__atomic_store_n(&b->n_posted, __atomic_load_n(&b->n_posted, __ATOMIC_RELAXED) + 1,
	                 __ATOMIC_RELAXED);
	/* after the count (seq_cst on both sides: see wake() in semaphore.c) */
	if (__atomic_load_n(&b->nwait, __ATOMIC_SEQ_CST) != 0)
		ipc_sem_wake_one(b);
	return 1;
}

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
