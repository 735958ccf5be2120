#include "rlock.h"

#include "signals.h"
#include "wait.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>

static int init_mutex(pthread_mutex_t *m)
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
		r = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return r;
}

int ipc_rlock_init(ipc_rlock *l, ipc_error *err)
{
	int r = init_mutex(&l->m);
	if (r)
		return ipc_fail_os(err, r, "cannot initialise lock");
	return IPC_OK;
}

/* --- damage checks ------------------------------------------------------
 * The lock lives in a file anyone with write access can scribble on, and
 * glibc trusts it: a changed type word sends it down the PI/PP paths (odd
 * errors, asserts), and an owner id that names no process is never
 * released by the kernel, so every locker would wait forever.  Both are
 * checked before each acquisition (two loads); the lock layout is glibc's,
 * elsewhere the checks are skipped. */
#define PID_LIMIT 4194304u /* PID_MAX_LIMIT: no pid or tid is above it */

#ifdef __GLIBC__
static int reference_kind(void)
{
	static int kind = -1;
	int k = __atomic_load_n(&kind, __ATOMIC_RELAXED);
	if (k < 0) {
		pthread_mutex_t m;
		if (init_mutex(&m))
			return -1;
		k = m.__data.__kind;
		pthread_mutex_destroy(&m);
		__atomic_store_n(&kind, k, __ATOMIC_RELAXED);
	}
	return k;
}

static unsigned lock_word(ipc_rlock *l)
{
	return (unsigned)__atomic_load_n(&l->m.__data.__lock, __ATOMIC_RELAXED);
}

static int damaged(ipc_rlock *l, ipc_error *err)
{
	int kind = reference_kind();
	if (kind >= 0 && __atomic_load_n(&l->m.__data.__kind, __ATOMIC_RELAXED) != kind)
		return ipc_fail(err, EPROTO, "corrupt object (internal lock type overwritten)");
	unsigned w = lock_word(l);
	if (!(w & FUTEX_OWNER_DIED) && (w & FUTEX_TID_MASK) > PID_LIMIT)
		return ipc_fail(err, EPROTO,
		                "corrupt object (internal lock owner %u is no process)",
		                w & FUTEX_TID_MASK);
	return 0;
}

/* The owner named by the lock word is gone, yet the kernel did not mark the
 * lock (it does so before a dead thread's id is released): only a foreign
 * write can do that.  *seen carries the word between two checks a slice
 * apart, so a word just being handed over is never judged. */
static int orphaned(ipc_rlock *l, unsigned *seen, ipc_error *err)
{
	unsigned w = lock_word(l), tid = w & FUTEX_TID_MASK;
	if (!tid || (w & FUTEX_OWNER_DIED) || kill((pid_t)tid, 0) == 0 || errno != ESRCH) {
		*seen = 0;
		return 0;
	}
	if (*seen != w) {
		*seen = w;
		return 0;
	}
	return ipc_fail(err, EPROTO,
	                "corrupt object (internal lock held by %u, which does not exist)", tid);
}
#else
static int damaged(ipc_rlock *l, ipc_error *err)
{
	(void)l, (void)err;
	return 0;
}
static int orphaned(ipc_rlock *l, unsigned *seen, ipc_error *err)
{
	(void)l, (void)seen, (void)err;
	return 0;
}
#endif

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
	if (damaged(l, err))
		return IPC_ERR;
	return result(pthread_mutex_trylock(&l->m), owner_died, err);
}

int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err)
{
	*owner_died = 0;
	if (damaged(l, err))
		return IPC_ERR;
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
	unsigned seen = 0;
	for (;;) {
		if (ipc_signal_since(sigsnap))
			return IPC_INTERRUPTED;
		if (damaged(l, err) || orphaned(l, &seen, err))
			return IPC_ERR;
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

ipc_deadline ipc_rlock_bound(void)
{
	ipc_deadline b = {0, ipc_now_ns() + IPC_RLOCK_BOUND_NS};
	return b;
}

/* The last lock whose grace ran out, and when: one call often takes the
 * same internal lock several times, and a stuck lock should cost it one
 * grace, not one per acquisition. */
static _Thread_local const ipc_rlock *stuck;
static _Thread_local int64_t stuck_at;

int ipc_rlock_enter(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap,
                    void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	int64_t now = ipc_now_ns();
	ipc_deadline eff = {0, now + IPC_RLOCK_BOUND_NS};
	int callers = 0; /* does the caller's deadline end the wait? */
	if (dl && !dl->forever && dl->at_ns < eff.at_ns) {
		int64_t grace = now + IPC_RLOCK_GRACE_NS;
		if (stuck == l && now - stuck_at < IPC_RLOCK_GRACE_NS)
			grace = now; /* it just used up a grace */
		eff.at_ns = dl->at_ns > grace ? dl->at_ns : grace;
		callers = 1;
	}
	int died = 0;
	int r = ipc_rlock_lock(l, &eff, sigsnap, &died, err); /* sets died: call it first */
	if (r == IPC_TIMEOUT && callers && eff.at_ns > now) {
		stuck = l;
		stuck_at = ipc_now_ns();
	}
	if (r == IPC_TIMEOUT && !callers)
		return ipc_fail(err, EBUSY,
		                "object busy or corrupt (an internal lock stayed held for %d s)",
		                (int)(IPC_RLOCK_BOUND_NS / 1000000000LL));
	return repaired(l, r, died, repair, ctx);
}

int ipc_rlock_enter_peek(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	ipc_deadline dl = {0, ipc_now_ns() + IPC_RLOCK_PEEK_NS};
	int died = 0;
	int r = ipc_rlock_lock(l, &dl, IPC_UNINTERRUPTIBLE, &died, err);
	if (r == IPC_TIMEOUT)
		return ipc_fail(err, EBUSY, "busy (an internal lock stayed held for %d ms)",
		                (int)(IPC_RLOCK_PEEK_NS / 1000000));
	return repaired(l, r, died, repair, ctx);
}

int ipc_rlock_try_enter(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_trylock(l, &died, err);
	return repaired(l, r, died, repair, ctx);
}
