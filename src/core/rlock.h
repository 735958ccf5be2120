/* The internal robust lock every object keeps in its segment.
 *
 * A lock word of our own (docs/design.md, "the lock word"): 0 when free,
 * else the holder's thread id, plus FUTEX_WAITERS when someone may sleep on
 * it.  While held it is linked into the holder thread's robust-futex list
 * (glibc's list, in glibc's layout), so the kernel marks it FUTEX_OWNER_DIED
 * and wakes one waiter the instant the holder dies; the next locker learns
 * so (owner_died) and must repair the object's bookkeeping.  It is held only
 * for short critical sections that never call back into Lua (kv's update is
 * the exception and documents it), and by a mutex's exclusive holder. */
#ifndef IPC_RLOCK_H
#define IPC_RLOCK_H

#include "common.h"
#include "failpoint.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>

/* glibc's pthread_mutex_t layout (64-bit): the word at 0 and the list links
 * at 24/32, because glibc links and unlinks its own robust mutexes next to
 * ours in the same list and writes our links when it does. */
typedef union ipc_rlock {
	struct {
		uint32_t word;     /* 0 | tid | FUTEX_WAITERS | FUTEX_OWNER_DIED */
		uint32_t spare[5]; /* unused (glibc's count, owner, kind...) */
		void *prev;        /* robust-list links, in the holder's address space */
		void *next;        /* the list entry: &next */
	} s;
	pthread_mutex_t m; /* layout reference only; the word is m.__data.__lock */
} ipc_rlock;

/* This thread's robust-list head (glibc's) and id.  tid 0: not set up. */
typedef struct ipc_rlock_thread {
	struct robust_list_head *head;
	uint32_t tid;
	int failpoints; /* IPCSH_FAILPOINT set: call ipc_failpoint on the way */
} ipc_rlock_thread;
extern _Thread_local ipc_rlock_thread ipc_rlock_me;

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

/* --- the uncontended path, inline ------------------------------------- */

/* Link l at the head of this thread's list.  The kernel follows only the
 * next pointers, and only once this thread is dead: l's next is set before
 * the head points at l, so the chain is whole at every instruction. */
static inline void ipc_rlock_link_(ipc_rlock *l, struct robust_list_head *h)
{
	void *first = h->list.next;
	void **first_prev = (void **)((uintptr_t)first & ~(uintptr_t)1) - 1;
	l->s.next = first;
	l->s.prev = &h->list;
	*first_prev = &l->s.next;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	h->list.next = (struct robust_list *)&l->s.next;
}

static inline void ipc_rlock_unlink_(ipc_rlock *l)
{
	void *next = l->s.next, *prev = l->s.prev;
	((void **)((uintptr_t)next & ~(uintptr_t)1))[-1] = prev;
	*(void **)((uintptr_t)prev & ~(uintptr_t)1) = next;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

/* One attempt from a free word: 1 when locked.  list_op_pending names the
 * lock from before the cmpxchg until it is linked, so a death in between
 * is still seen by the kernel. */
static inline int ipc_rlock_fast(ipc_rlock *l)
{
	ipc_rlock_thread *t = &ipc_rlock_me;
	if (__builtin_expect(!t->tid, 0) || __atomic_load_n(&l->s.word, __ATOMIC_RELAXED) != 0)
		return 0;
	struct robust_list_head *h = t->head;
	h->list_op_pending = (struct robust_list *)&l->s.next;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	uint32_t free_word = 0;
	int ok = __atomic_compare_exchange_n(&l->s.word, &free_word, t->tid, 0, __ATOMIC_ACQUIRE,
	                                     __ATOMIC_RELAXED);
	if (ok) {
		if (__builtin_expect(t->failpoints, 0))
			ipc_failpoint("rlock.fast_locked");
		ipc_rlock_link_(l, h);
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	h->list_op_pending = NULL;
	return ok;
}

void ipc_rlock_wake_(ipc_rlock *l);

/* Release (a no-op unless this thread holds it: a forked child or another
 * thread never releases what it does not own). */
static inline void ipc_rlock_unlock(ipc_rlock *l)
{
	ipc_rlock_thread *t = &ipc_rlock_me;
	uint32_t w = __atomic_load_n(&l->s.word, __ATOMIC_RELAXED);
	if (__builtin_expect((w & FUTEX_TID_MASK) != t->tid || !t->tid, 0))
		return;
	struct robust_list_head *h = t->head;
	h->list_op_pending = (struct robust_list *)&l->s.next;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	ipc_rlock_unlink_(l);
	if (__builtin_expect(t->failpoints, 0))
		ipc_failpoint("rlock.unlinked");
	uint32_t old = __atomic_exchange_n(&l->s.word, 0, __ATOMIC_RELEASE);
	if (old & FUTEX_WAITERS)
		ipc_rlock_wake_(l);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	h->list_op_pending = NULL;
}

/* The word, for code that watches it without locking. */
static inline uint32_t ipc_rlock_word(const ipc_rlock *l)
{
	return __atomic_load_n(&l->s.word, __ATOMIC_RELAXED);
}

/* IPC_OK (locked; *owner_died set when the previous holder died inside),
 * IPC_TIMEOUT, IPC_INTERRUPTED, or IPC_ERR (e.g. already held by this
 * thread: EDEADLK; a damaged lock word: "corrupt object").  Waits against
 * dl only: for the locks a caller holds for long (mutex `w`, kv). */
int ipc_rlock_lock(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                   ipc_error *err);
/* The same without the spin before sleeping, for a lock its holder keeps
 * for long (a mutex's `w`, kv's table lock): spinning on it only steals the
 * word's cache line from a holder that unlocks and relocks at once (runs
 * alternated on 2 noisy cores, M lock+unlock pairs/s: 2 processes 4.5-10.1
 * with the spin, 5.7-8.7 without; 8 processes 4.5-5.3 with, 5.2-6.1
 * without). */
int ipc_rlock_lock_long(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, int *owner_died,
                        ipc_error *err);
/* Non-blocking attempt: IPC_OK or IPC_TIMEOUT (or IPC_ERR). */
int ipc_rlock_trylock(ipc_rlock *l, int *owner_died, ipc_error *err);
/* After the repair that owner_died asked for.  The word keeps no
 * "inconsistent" state: a repairer that dies before this leaves
 * FUTEX_OWNER_DIED again and the next locker repairs (repairs are
 * idempotent), so there is nothing to record. */
static inline void ipc_rlock_consistent(ipc_rlock *l)
{
	(void)l;
}
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

/* ---- "lock always": one helper instead of a loop per object ---- */

/* Enter an internal lock ignoring signals and without a caller deadline,
 * for finishing what this process started (withdrawing a registration,
 * a release); repair(ctx) runs first when the previous holder died inside.
 * Bounded all the same (IPC_RLOCK_BOUND_NS): IPC_OK, or IPC_ERR with
 * "object busy or corrupt" (or the lock's own error). */
int ipc_lock_always(ipc_rlock *l, void (*repair)(void *ctx), void *ctx, ipc_error *err);
/* Take a lock its holders keep for long (kv's table lock, mutex `w`):
 * waits against dl only (no bound); repair(ctx) runs when the previous
 * holder died inside, then the lock is marked consistent.  Results as
 * ipc_rlock_lock. */
int ipc_lock_long(ipc_rlock *l, const ipc_deadline *dl, unsigned sigsnap, void (*repair)(void *ctx),
                  void *ctx, ipc_error *err);

#endif
