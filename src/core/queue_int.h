/* queue internals shared by its three files (not an interface):
 *   queue.c         layout, and the operations (send, receive, ack...)
 *   queue_repair.c  the internal lock, rebuild after a dead holder, and the
 *                   liveness checks (dead sleepers, dead receivers' messages)
 *   queue_wait.c    sleeping: registration, spin, sleep, the select hooks
 * The heap, the free ring and the lock's fast path are inline here: they
 * are on every send and receive. */
#ifndef IPC_QUEUE_INT_H
#define IPC_QUEUE_INT_H

#include "failpoint.h"
#include "queue.h"
#include "signals.h"
#include "wait.h"

#define OVERFLOW_SLICE_NS 1000000LL /* a sleeper with no slot polls this often */
#define RECLAIM_EVERY_NS 5000000LL  /* liveness checks of in-flight owners, */
#define RECLAIM_BUSY_NS 100000000LL /* ... and when the queue is not empty */

/* ---- the heap: highest priority first, then lowest seq ---- */

static inline int q_before(const ipc_qentry *a, const ipc_qentry *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static inline void q_sift_up(ipc_qentry *h, uint32_t i, ipc_qentry e)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!q_before(&e, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = e;
}

static inline void q_sift_down(ipc_qentry *h, uint32_t n, uint32_t i, ipc_qentry e)
{
	for (;;) {
		uint32_t l = 2 * i + 1;
		if (l >= n)
			break;
		uint32_t b = l;
		if (l + 1 < n && q_before(&h[l + 1], &h[l]))
			b = l + 1;
		if (!q_before(&h[b], &e))
			break;
		h[i] = h[b];
		i = b;
	}
	h[i] = e;
}

/* ---- futex words and counters (written under the lock only) ---- */

static inline void q_bump(uint32_t *w)
{
	__atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

static inline void q_count(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* ---- the free ring: cells are reused in the order they were freed, so
 * that the next one is predictable (see q_prefetch_send) ---- */

static inline uint32_t q_free_peek(const ipc_queue *v)
{
	return v->freelist[v->q->free_head];
}

static inline void q_free_pop(ipc_queue *v)
{
	ipc_qhdr *q = v->q;
	q->free_head = q->free_head + 1 == v->max_count ? 0 : q->free_head + 1;
	q->nfree--;
}

static inline void q_free_push(ipc_queue *v, uint32_t cell)
{
	ipc_qhdr *q = v->q;
	uint64_t at = (uint64_t)q->free_head + q->nfree;
	v->freelist[at >= v->max_count ? at - v->max_count : at] = cell;
	q->nfree++;
}

/* ---- the internal lock (queue_repair.c) ---- */

/* The cheap consistency check every locker makes: the counts add up (so
 * none of them is over max_count: the sum is taken in 64 bits) and the
 * ring's head is in range. */
static inline int q_sane(const ipc_queue *v)
{
	const ipc_qhdr *q = v->q;
	return (uint64_t)q->count + q->in_flight + q->nfree == v->max_count &&
	       q->free_head < v->max_count;
}

/* Recompute everything derived from the cells and the sleeper slots (lock
 * held).  repair = 1 after a dead holder or a failed check (counted). */
void ipc_q_rebuild(ipc_queue *v, int repair);

/* One call's waiting state: its deadline, and the signal snapshot, taken
 * only when the call first has to wait (not before the uncontended try). */
typedef struct q_op {
	const ipc_deadline *dl;
	unsigned snap;
	int snapped;
	int spun; /* it spun once already: the next wait sleeps */
} q_op;

static inline unsigned q_snap(q_op *o)
{
	if (!o->snapped) {
		o->snap = ipc_signal_count();
		o->snapped = 1;
	}
	return o->snap;
}

/* The rest of q_lock, after the try: r and died are the try's results. */
int ipc_q_lock_slow(ipc_queue *v, int r, int died, q_op *o, ipc_error *err);

/* Take the internal lock, repairing after a dead holder (or a failed
 * check).  Uncontended, it is one try and the check, inline.  IPC_OK,
 * IPC_TIMEOUT, IPC_INTERRUPTED or IPC_ERR. */
static inline __attribute__((always_inline)) int q_lock(ipc_queue *v, q_op *o, ipc_error *err)
{
	if (__builtin_expect(ipc_rlock_fast(&v->q->lock), 1)) {
		/* a free word, taken: nobody died inside */
		if (__builtin_expect(q_sane(v), 1))
			return IPC_OK;
		return ipc_q_lock_slow(v, IPC_OK, 0, o, err);
	}
	int died;
	int r = ipc_rlock_trylock(&v->q->lock, &died, err);
	if (__builtin_expect(r == IPC_OK && !died && q_sane(v), 1))
		return IPC_OK;
	return ipc_q_lock_slow(v, r, died, o, err);
}

/* Lock, ignoring signals, for at most IPC_RLOCK_BOUND_NS: for finishing
 * what this process started.  IPC_OK or IPC_ERR. */
int ipc_q_relock(ipc_queue *v, ipc_error *err);
/* For info(): wait at most IPC_RLOCK_PEEK_NS, then report busy. */
int ipc_q_peek(ipc_queue *v, ipc_error *err);

static inline void q_unlock(ipc_queue *v)
{
	ipc_rlock_unlock(&v->q->lock);
}

/* ---- liveness checks (queue_repair.c); lock held on entry and return,
 * dropped while /proc is read ---- */

/* Forget registered sleepers whose process died.  IPC_OK or IPC_ERR. */
int ipc_q_sweep_waiters(ipc_queue *v, ipc_error *err);
/* ... at most once a second (after a wake call). */
int ipc_q_maybe_sweep(ipc_queue *v, ipc_error *err);
/* Is a check of in-flight owners due (per process, every `every` ns)? */
int ipc_q_reclaim_due(ipc_queue *v, int64_t every);
/* Put back the in-flight messages of receivers that died: the number put
 * back, or IPC_ERR. */
int ipc_q_reclaim_dead(ipc_queue *v, ipc_error *err);

/* ---- sleepers (queue_wait.c) ---- */

/* Register this process as a sleeper of kind IPC_QW_*: its slot, or -1
 * when all are taken (it polls).  Unregister: absorbs one pending wake. */
int ipc_q_reg_waiter(ipc_qhdr *q, uint32_t kind);
void ipc_q_unreg_waiter(ipc_qhdr *q, int slot);

/* Wake one sleeper of a kind, unless every registered one already has a
 * wake coming.  Lock held: a wake is never lost to a kill (a holder that
 * dies makes the next locker wake everyone).  1 if a wake was issued. */
static inline int q_wake_one(uint32_t *word, uint32_t waiters, uint32_t *wakes)
{
	if (waiters <= *wakes)
		return 0;
	(*wakes)++;
	ipc_wake_word(word, 1);
	return 1;
}

/* Before taking the lock with nothing to take (*avail == 0), spin a little
 * on word, unlocked.  Returns 1 if it spun. */
int ipc_q_pre_spin(const uint32_t *avail, const uint32_t *word, const ipc_deadline *dl);

/* Holding the lock with nothing to do yet: give up at the deadline, else spin
 * once (unlocked) or sleep on *word.  IPC_OK: the lock is held again, look
 * again; anything else: the lock is released and that is the result. */
int ipc_q_wait_turn(ipc_queue *v, uint32_t *word, uint32_t kind, q_op *o, ipc_error *err);

#endif
