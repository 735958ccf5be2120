#include "rlock.h"

#include "signals.h"
#include "wait.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The robust list is glibc's: refuse to build where its layout is not the
 * one the links above assume (64-bit glibc, doubly linked list). */
#if !defined(__GLIBC__) || UINTPTR_MAX != 0xffffffffffffffffu
#error "ipc_rlock links into glibc's robust-futex list: 64-bit glibc only"
#endif
_Static_assert(sizeof(ipc_rlock) == 40 && sizeof(pthread_mutex_t) == 40,
               "ipc_rlock must keep glibc's pthread_mutex_t size");
_Static_assert(offsetof(pthread_mutex_t, __data.__lock) == offsetof(ipc_rlock, s.word) &&
                   offsetof(pthread_mutex_t, __data.__list.__prev) == offsetof(ipc_rlock, s.prev) &&
                   offsetof(pthread_mutex_t, __data.__list.__next) == offsetof(ipc_rlock, s.next),
               "ipc_rlock must keep glibc's robust mutex layout");
_Static_assert(offsetof(ipc_rlock, s.prev) + sizeof(void *) == offsetof(ipc_rlock, s.next),
               "prev just before next: entries point at next");

/* The kernel finds the word of a list entry at entry + futex_offset. */
#define FUTEX_OFFSET ((long)offsetof(ipc_rlock, s.word) - (long)offsetof(ipc_rlock, s.next))

_Thread_local ipc_rlock_thread ipc_rlock_me;

static void refresh_tid(void)
{
	ipc_rlock_me.tid = (uint32_t)syscall(SYS_gettid);
}

/* A forked child is another thread: it owns none of the parent's locks
 * (glibc empties the child's robust list) and has its own id.  (A thread
 * not set up yet stays so: thread_setup runs on its first lock.) */
static void child_tid(void)
{
	if (ipc_rlock_me.head)
		refresh_tid();
}

static void install_atfork(void)
{
	pthread_atfork(NULL, NULL, child_tid);
}

/* Once per thread: glibc's list head (registered with the kernel at thread
 * start) and its futex_offset, which must be the one our entries use. */
static int thread_setup(ipc_error *err)
{
	ipc_rlock_thread *t = &ipc_rlock_me;
	if (t->tid)
		return IPC_OK;
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, install_atfork);
	struct robust_list_head *h = NULL;
	size_t len = 0;
	if (syscall(SYS_get_robust_list, 0, &h, &len) != 0 || !h || len != sizeof *h)
		return ipc_fail(err, ENOTSUP,
		                "cannot use internal locks (no robust-futex list: %s)",
		                strerror(errno ? errno : ENOTSUP));
	if (h->futex_offset != FUTEX_OFFSET)
		return ipc_fail(
		    err, ENOTSUP,
		    "cannot use internal locks (robust-futex list offset %ld, expected %ld)",
		    h->futex_offset, FUTEX_OFFSET);
	const char *fp = getenv("IPCSH_FAILPOINT");
	t->failpoints = fp && *fp;
	t->head = h;
	refresh_tid();
	return IPC_OK;
}

int ipc_rlock_init(ipc_rlock *l, ipc_error *err)
{
	memset(l, 0, sizeof *l);
	return thread_setup(err);
}

void ipc_rlock_wake_(ipc_rlock *l)
{
	ipc_wake_word(&l->s.word, 1);
}

/* --- damage checks ------------------------------------------------------
 * The lock lives in a file anyone with write access can scribble on.  An
 * owner id that names no process is never released by the kernel, so
 * every locker would wait forever: checked whenever the word is found
 * held (the free word costs no check). */
#define PID_LIMIT 4194304u /* PID_MAX_LIMIT: no pid or tid is above it */

/* The owner named by the lock word is gone, yet the kernel did not mark the
 * lock (it does so before a dead thread's id is released): only a foreign
 * write can do that.  *seen carries the word between two checks a slice
 * apart, so a word just being handed over is never judged. */
static int orphaned(ipc_rlock *l, unsigned *seen, ipc_error *err)
{
	unsigned w = ipc_rlock_word(l), tid = w & FUTEX_TID_MASK;
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

/* One attempt, the thread set up.  IPC_OK, IPC_TIMEOUT (held: *seen is the
 * word) or IPC_ERR.  A word marked FUTEX_OWNER_DIED (the kernel clears the
 * id) is taken over whatever else it says; FUTEX_WAITERS is kept, and
 * added (waiters) by a locker that slept, as others may still sleep.  A
 * word with no owner id is free whatever its flags: FUTEX_WAITERS alone is
 * never written by a locker or the kernel, only by a foreign write, and
 * nobody would ever wake its sleepers. */
static int attempt(ipc_rlock *l, uint32_t waiters, int *owner_died, uint32_t *seen, ipc_error *err)
{
	ipc_rlock_thread *t = &ipc_rlock_me;
	struct robust_list_head *h = t->head;
	uint32_t v = ipc_rlock_word(l);
	while (!(v & FUTEX_TID_MASK) || (v & FUTEX_OWNER_DIED)) {
		h->list_op_pending = (struct robust_list *)&l->s.next;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		uint32_t nv = t->tid | waiters | (v & FUTEX_WAITERS);
		if (__atomic_compare_exchange_n(&l->s.word, &v, nv, 0, __ATOMIC_ACQUIRE,
		                                __ATOMIC_RELAXED)) {
			if (t->failpoints)
				ipc_failpoint("rlock.locked");
			ipc_rlock_link_(l, h);
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			h->list_op_pending = NULL;
			*owner_died = (v & FUTEX_OWNER_DIED) != 0;
			return IPC_OK;
		}
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		h->list_op_pending = NULL;
	}
	uint32_t tid = v & FUTEX_TID_MASK;
	if (tid == t->tid)
		return ipc_fail(err, EDEADLK, "already locked by this process");
	if (tid > PID_LIMIT)
		return ipc_fail(err, EPROTO,
		                "corrupt object (internal lock owner %u is no process)", tid);
	*seen = v;
	return IPC_TIMEOUT;
}

int ipc_rlock_trylock(ipc_rlock *l, int *owner_died, ipc_error *err)
{
	*owner_died = 0;
	if (ipc_rlock_fast(l))
		return IPC_OK;
	uint32_t v;
	if (thread_setup(err))
		return IPC_ERR;
	return attempt(l, 0, owner_died, &v, err);
}

static int lock_word(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                     int spin, ipc_error *err)
{
	*owner_died = 0;
	if (ipc_rlock_fast(l))
		return IPC_OK;
	if (thread_setup(err))
		return IPC_ERR;
	uint32_t v;
	int r = attempt(l, 0, owner_died, &v, err);
	/* Spin a little first when the holders keep the lock for well under a
	 * microsecond (the internal locks). */
	if (r == IPC_TIMEOUT && spin && ipc_spin_word(&l->s.word, v))
		r = attempt(l, 0, owner_died, &v, err);
	if (r != IPC_TIMEOUT)
		return r;
	/* Sleep on the word with FUTEX_WAITERS set, in slices: a slice's end
	 * re-checks signals, the deadline and the holder's existence.  The bit
	 * is set before any give-up, also by a waiter that was woken and lost
	 * the race: the holder's unlock then wakes the next sleeper (the wake
	 * this one consumed is passed on). */
	unsigned seen = 0;
	/* the first orphan check a slice from now: a holder that just took
	 * the word is alive, and kill(2) on every contended lock is costly */
	int64_t next_check = ipc_now_ns() + IPC_SLICE_NS;
	int slept = 0;
	for (;;) {
		if (!(v & FUTEX_WAITERS)) {
			uint32_t want = v | FUTEX_WAITERS;
			if (!__atomic_compare_exchange_n(&l->s.word, &v, want, 0, __ATOMIC_RELAXED,
			                                 __ATOMIC_RELAXED)) {
				r = attempt(l, FUTEX_WAITERS, owner_died, &v, err);
				if (r != IPC_TIMEOUT)
					return r;
				continue;
			}
			v = want;
		}
		if (ipc_signal_since(sigsnap))
			return IPC_INTERRUPTED;
		if (ipc_deadline_left(dl) <= 0)
			return IPC_TIMEOUT;
		int64_t now = ipc_now_ns();
		if (now >= next_check) {
			if (orphaned(l, &seen, err))
				return IPC_ERR;
			next_check = now + IPC_SLICE_NS;
		}
		r = slept++ ? ipc_wait_word_again(&l->s.word, v, dl, IPC_SLICE_NS, sigsnap)
		            : ipc_wait_word(&l->s.word, v, dl, IPC_SLICE_NS, sigsnap);
		if (r != IPC_OK)
			return r;
		r = attempt(l, FUTEX_WAITERS, owner_died, &v, err);
		if (r != IPC_TIMEOUT)
			return r;
	}
}

int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err)
{
	return lock_word(l, dl, sigsnap, owner_died, 1, err);
}

int ipc_rlock_lock_long(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                        ipc_error *err)
{
	return lock_word(l, dl, sigsnap, owner_died, 0, err);
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
	if (ipc_rlock_fast(l)) /* free: no deadline to compute */
		return IPC_OK;
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

/* ---- lock always / lock long ---- */

int ipc_lock_always(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err)
{
	int r = ipc_rlock_enter(l, NULL, IPC_UNINTERRUPTIBLE, repair, ctx, err);
	if (r == IPC_OK || r == IPC_ERR)
		return r;
	/* not without a deadline nor signals; never let it pass as success */
	return ipc_fail(err, EBUSY,
	                "object busy or corrupt (an internal lock stayed held for %d s)",
	                (int)(IPC_RLOCK_BOUND_NS / 1000000000LL));
}

int ipc_lock_long(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, void (*repair)(void *ctx),
                  void *ctx, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_lock_long(l, dl, sigsnap, &died, err);
	if (r == IPC_OK && died) {
		repair(ctx);
		ipc_rlock_consistent(l);
	}
	return r;
}
