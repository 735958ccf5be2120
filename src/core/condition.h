/* condition: a condition variable used with an ipc mutex.
 *
 * Each waiter takes a slot (its token, a ticket for FIFO order, and a
 * futex word of its own).  signal() picks the oldest live waiting slot,
 * sets its word and wakes exactly that process; broadcast() does so for all.
 * A signal with nobody waiting is therefore not remembered, and a waiter that
 * dies is skipped (its slot reaped) instead of swallowing a signal. */
#ifndef IPC_CONDITION_H
#define IPC_CONDITION_H

#include "procid.h"
#include "rlock.h"
#include "segment.h"

#define IPC_COND_SLOTS 256

typedef struct ipc_cond_waiter {
	ipc_token token;
	uint32_t word; /* 0 waiting, 1 signalled */
	uint32_t pad;
	uint64_t ticket;
} ipc_cond_waiter;

typedef struct ipc_cond_body {
	ipc_rlock i;
	uint64_t next_ticket;
	uint32_t nwait;
	uint32_t pad;
	ipc_cond_waiter w[IPC_COND_SLOTS];
} ipc_cond_body;

extern const ipc_type_ops ipc_condition_ops;

/* Release the mutex (held exclusively by this process), wait, re-lock.
 * IPC_OK (signalled), IPC_TIMEOUT (re-locked all the same), IPC_INTERRUPTED
 * or IPC_ERR. */
int ipc_cond_wait(ipc_segment *cond, ipc_segment *mutex, const ipc_deadline *dl, unsigned sigsnap,
                  ipc_error *err);
/* Wake one (all = 0) or every waiter; returns how many were woken. */
int ipc_cond_signal(ipc_segment *cond, int all, ipc_error *err);
uint32_t ipc_cond_waiters(ipc_segment *cond);

#endif
