/* mutex: a shared/exclusive lock owned by processes, robust to SIGKILL.
 *
 * Two internal robust locks (see docs/design.md, "mutex"):
 *  - `w` is held by the exclusive holder for as long as it holds the mutex,
 *    and briefly by a shared locker while it registers.  Holding `w` keeps
 *    new readers out, so a waiting writer is never starved by readers.  The
 *    kernel releases `w` the instant its holder dies.
 *  - `i` guards the table of shared holders (one slot per reader process).
 * Blocked lockers list themselves in waiter[] (for info) with a CAS on
 * their slot, without a lock.
 * A writer that got `w` waits for the readers to drain, re-checking every
 * slice that they are alive; dead readers are reaped from the table. */
#ifndef IPC_MUTEX_H
#define IPC_MUTEX_H

#include "procid.h"
#include "rlock.h"
#include "segment.h"

#define IPC_MUTEX_READERS 256
#define IPC_MUTEX_WAITERS 256

enum { IPC_HELD_NONE = 0, IPC_HELD_SHARED = 1, IPC_HELD_EXCLUSIVE = 2 };

typedef struct ipc_mutex_body {
	ipc_rlock w;
	ipc_rlock i;
	ipc_token owner;        /* exclusive holder, 0 when none (informational) */
	ipc_token drain_waiter; /* the `w` holder while it waits for readers */
	uint32_t readers;       /* live shared holders: derived from reader[] */
	uint32_t rseq;          /* futex word: bumped when readers may have drained */
	uint32_t spare;         /* was the waiter count (layout 2); unused */
	uint32_t pad;
	ipc_token reader[IPC_MUTEX_READERS]; /* shared holders, guarded by i */
	ipc_token waiter[IPC_MUTEX_WAITERS]; /* processes blocked in lock (CAS) */
	/* acquisitions, for rates (ipcsh top): plain stores under w / i */
	uint64_t n_exclusive, n_shared;
} ipc_mutex_body;

/* Process-local state (seg->local). */
typedef struct ipc_mutex_local {
	int32_t pid; /* the process the state belongs to: a forked child has none */
	int mode;    /* IPC_HELD_* */
} ipc_mutex_local;

extern const ipc_type_ops ipc_mutex_ops;

/* IPC_OK, IPC_TIMEOUT, IPC_INTERRUPTED or IPC_ERR (e.g. already held). */
int ipc_mutex_lock(ipc_segment *seg, int shared, const ipc_deadline *dl, unsigned sigsnap,
                   ipc_error *err);
/* The uncontended attempt alone, with no deadline or signal snapshot:
 * IPC_OK (locked), else IPC_TIMEOUT with nothing changed (go on with
 * ipc_mutex_lock, which also reports every error). */
int ipc_mutex_lock_fast(ipc_segment *seg, int shared);
/* IPC_OK, or IPC_TIMEOUT when this process does not hold it. */
int ipc_mutex_unlock(ipc_segment *seg, ipc_error *err);
/* IPC_HELD_* for this process. */
int ipc_mutex_held(ipc_segment *seg);

typedef struct ipc_mutex_state {
	int state; /* IPC_HELD_NONE (free), _SHARED, _EXCLUSIVE */
	uint32_t nholders;
	int32_t holders[IPC_MUTEX_READERS];
	uint32_t waiters;
	uint64_t n_exclusive, n_shared; /* acquisitions so far */
} ipc_mutex_state;
/* A snapshot for info(); reaps dead readers and waiters on the way. */
int ipc_mutex_state_get(ipc_segment *seg, ipc_mutex_state *st, ipc_error *err);

#endif
