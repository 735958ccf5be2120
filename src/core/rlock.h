/* The internal robust lock every object keeps in its segment.
 *
 * A process-shared, robust, error-checking pthread mutex: the kernel's
 * robust-futex list releases it when its holder dies, and the next locker
 * learns so (owner_died) and must repair the object's bookkeeping before
 * calling ipc_rlock_consistent.  It is held only for short critical
 * sections that never call back into Lua (kv's update is the exception and
 * documents it). */
#ifndef IPC_RLOCK_H
#define IPC_RLOCK_H

#include "common.h"

#include <pthread.h>

typedef struct ipc_rlock {
	pthread_mutex_t m;
} ipc_rlock;

int ipc_rlock_init(ipc_rlock *l, ipc_error *err);

/* Deadlines of the internal locks (docs/design.md, "deadlines and
 * corruption").  An internal lock is held for microseconds, so:
 *  - even a zero timeout waits up to GRACE for one (a preempted holder);
 *  - nothing waits longer than BOUND for one, whatever its deadline: a lock
 *    held that long belongs to a corrupt object or a stopped process, and
 *    the call fails ("busy or corrupt") instead of hanging;
 *  - info() and `ipcsh ls` wait at most PEEK, then report the object busy. */
#define IPC_RLOCK_GRACE_NS 1000000000LL
#define IPC_RLOCK_BOUND_NS 5000000000LL
#define IPC_RLOCK_PEEK_NS 200000000LL

/* IPC_OK (locked; *owner_died set when the previous holder died inside),
 * IPC_TIMEOUT, IPC_INTERRUPTED, or IPC_ERR (e.g. already held by this
 * process: EDEADLK; a damaged lock word: "corrupt object").  Waits against
 * dl only: for the locks a caller holds for long (mutex `w`, kv). */
int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err);
/* Non-blocking attempt: IPC_OK or IPC_TIMEOUT (or IPC_ERR). */
int ipc_rlock_trylock(ipc_rlock *l, int *owner_died, ipc_error *err);
void ipc_rlock_consistent(ipc_rlock *l);
/* Lock, and when the previous holder died inside, call repair(ctx) and mark
 * the lock consistent before returning: the one way every object enters its
 * critical sections.  Results as ipc_rlock_lock; dl (NULL: none) is
 * stretched to GRACE and cut to BOUND, and BOUND ending gives IPC_ERR. */
int ipc_rlock_enter(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap,
                    void (*repair)(void *ctx), void *ctx, ipc_error *err);
/* The same without waiting: IPC_OK or IPC_TIMEOUT (busy) or IPC_ERR. */
int ipc_rlock_try_enter(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err);
/* For info(): wait at most PEEK; IPC_OK, or IPC_ERR "busy" / "corrupt". */
int ipc_rlock_enter_peek(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err);
/* The lock-side of a bounded wait that has no caller deadline (finishing
 * what this process started): now + BOUND. */
ipc_deadline ipc_rlock_bound(void);
void ipc_rlock_unlock(ipc_rlock *l);

#endif
