#include "rlock.h"

#include "signals.h"
#include "wait.h"

#include <errno.h>

int ipc_rlock_init(ipc_rlock *l, ipc_error *err)
{
	pthread_mutexattr_t a;
	int r = pthread_mutexattr_init(&a);
	if (!r)
		r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	if (!r)
		r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	if (!r)
		r = pthread_mutex_init(&l->m, &a);
	pthread_mutexattr_destroy(&a);
	if (r)
		return ipc_fail_os(err, r, "cannot initialise lock");
	return IPC_OK;
}

static int result(int r, int *owner_died, ipc_error *err)
{
	switch (r) {
	case 0:
		return IPC_OK;
	case EOWNERDEAD:
		*owner_died = 1;
		return IPC_OK;
	case EBUSY:
	case ETIMEDOUT:
		return IPC_TIMEOUT;
	case EDEADLK:
		return ipc_fail(err, r, "already locked by this process");
	case ENOTRECOVERABLE:
		return ipc_fail(err, r, "object is unrecoverable (remove it)");
	default:
		return ipc_fail_os(err, r, "lock failed");
	}
}

int ipc_rlock_trylock(ipc_rlock *l, int *owner_died, ipc_error *err)
{
	*owner_died = 0;
	return result(pthread_mutex_trylock(&l->m), owner_died, err);
}

int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err)
{
	*owner_died = 0;
	int r = pthread_mutex_trylock(&l->m);
	if (r != EBUSY)
		return result(r, owner_died, err);
	/* Spin a little: holders keep this lock for well under a microsecond. */
	for (int i = 0; i < 200; i++) {
		ipc_cpu_relax();
		r = pthread_mutex_trylock(&l->m);
		if (r != EBUSY)
			return result(r, owner_died, err);
	}
	/* Sleep in slices so that a signal is noticed promptly (glibc restarts
	 * the futex wait after a handler runs). */
	if (sigsnap != IPC_UNINTERRUPTIBLE)
		ipc_signals_install();
	for (;;) {
		if (ipc_signal_since(sigsnap))
			return IPC_INTERRUPTED;
		int64_t left = ipc_deadline_left(dl);
		if (left <= 0)
			return IPC_TIMEOUT;
		if (left > 50000000LL)
			left = 50000000LL;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)left;
		while (ts.tv_nsec >= 1000000000L) {
			ts.tv_nsec -= 1000000000L;
			ts.tv_sec++;
		}
		ipc_wait_enter();
		r = pthread_mutex_clocklock(&l->m, CLOCK_MONOTONIC, &ts);
		ipc_wait_leave();
		if (r != ETIMEDOUT)
			return result(r, owner_died, err);
	}
}

void ipc_rlock_consistent(ipc_rlock *l)
{
	pthread_mutex_consistent(&l->m);
}

void ipc_rlock_unlock(ipc_rlock *l)
{
	pthread_mutex_unlock(&l->m);
}

static int repaired(ipc_rlock *l, int r, int died, void (*repair)(void *), void *ctx)
{
	if (r == IPC_OK && died) {
		repair(ctx);
		ipc_rlock_consistent(l);
	}
	return r;
}

int ipc_rlock_enter(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap,
                    void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_lock(l, dl, sigsnap, &died, err); /* sets died: call it first */
	return repaired(l, r, died, repair, ctx);
}

int ipc_rlock_try_enter(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_trylock(l, &died, err);
	return repaired(l, r, died, repair, ctx);
}
