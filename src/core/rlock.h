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

/* IPC_OK (locked; *owner_died set when the previous holder died inside),
 * IPC_TIMEOUT, IPC_INTERRUPTED, or IPC_ERR (e.g. already held by this
 * process: EDEADLK). */
int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err);
/* Non-blocking attempt: IPC_OK or IPC_TIMEOUT (or IPC_ERR). */
int ipc_rlock_trylock(ipc_rlock *l, int *owner_died, ipc_error *err);
void ipc_rlock_consistent(ipc_rlock *l);
/* Lock, and when the previous holder died inside, call repair(ctx) and mark
 * the lock consistent before returning: the one way every object enters its
 * critical sections.  Results as ipc_rlock_lock. */
int ipc_rlock_enter(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap,
                    void (*repair)(void *ctx), void *ctx, ipc_error *err);
/* The same without waiting: IPC_OK or IPC_TIMEOUT (busy) or IPC_ERR. */
int ipc_rlock_try_enter(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err);
void ipc_rlock_unlock(ipc_rlock *l);

#endif
