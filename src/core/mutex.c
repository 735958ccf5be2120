#include "mutex.h"

#include "failpoint.h"
#include "signals.h"
#include "slots.h"
#include "wait.h"

#include <string.h>

static ipc_mutex_body *body_of(ipc_segment *seg)
{
	return seg->body;
}

static ipc_mutex_local *local_of(ipc_segment *seg)
{
	ipc_mutex_local *l = seg->local;
	if (l->pid != ipc_self_pid()) { /* fresh, or inherited across fork */
		l->pid = ipc_self_pid();
		l->mode = IPC_HELD_NONE;
	}
	return l;
}

/* A counter bumped only under a lock its writers hold: no RMW needed. */
static inline void count(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static int mutex_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	(void)params, (void)err;
	*body_size = IPC_ALIGN_UP(sizeof(ipc_mutex_body), 64);
	return IPC_OK;
}

static int mutex_init(void *body, const uint64_t *params, ipc_error *err)
{
	ipc_mutex_body *b = body;
	(void)params;
	if (ipc_rlock_init(&b->w, err) || ipc_rlock_init(&b->i, err))
		return IPC_ERR;
	return IPC_OK;
}

/* --- bookkeeping under `i` ------------------------------------------- */

static void reap_readers(ipc_mutex_body *b)
{
	ipc_slot_reap(b->reader, sizeof(ipc_token), IPC_MUTEX_READERS, NULL, NULL);
	uint32_t n = ipc_slot_count(b->reader, sizeof(ipc_token), IPC_MUTEX_READERS);
	b->readers = n;
	if (n == 0) {
		__atomic_add_fetch(&b->rseq, 1, __ATOMIC_SEQ_CST);
		ipc_wake_word(&b->rseq, -1);
	}
}

/* waiter[] is lock-free: a process claims and clears its own slot with a
 * CAS on the token, and whoever counts the slots reaps dead waiters (CAS
 * from the dead token to 0, so a live claim is never undone). */
static int waiter_claim(ipc_mutex_body *b, ipc_token me)
{
	uint32_t start = (uint32_t)IPC_TOKEN_PID(me) % IPC_MUTEX_WAITERS;
	for (uint32_t k = 0; k < IPC_MUTEX_WAITERS; k++) {
		uint32_t i = (start + k) % IPC_MUTEX_WAITERS;
		ipc_token free_slot = 0;
		if (__atomic_load_n(&b->waiter[i], __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&b->waiter[i], &free_slot, me, 0, __ATOMIC_RELEASE,
		                                __ATOMIC_RELAXED))
			return (int)i;
	}
	return -1;
}

static void waiter_clear(ipc_mutex_body *b, int k, ipc_token me)
{
	__atomic_compare_exchange_n(&b->waiter[k], &me, 0, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

static uint32_t count_waiters(ipc_mutex_body *b)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < IPC_MUTEX_WAITERS; i++) {
		ipc_token t = __atomic_load_n(&b->waiter[i], __ATOMIC_ACQUIRE);
		if (!t)
			continue;
		if (ipc_token_alive(t))
			n++;
		else
			__atomic_compare_exchange_n(&b->waiter[i], &t, 0, 0, __ATOMIC_RELEASE,
			                            __ATOMIC_RELAXED);
	}
	return n;
}

/* Lock `i`.  Its critical sections only ever change one slot and then the
 * count derived from the slots, so a holder that died inside is repaired
 * by recounting (dead processes' slots are dropped on the way). */
static void repair_i(void *ctx)
{
	reap_readers(ctx);
}

/* dl: the caller's deadline, NULL when it has none (bounded all the same). */
static int lock_i(ipc_mutex_body *b, const ipc_deadline *dl, ipc_error *err)
{
	return ipc_rlock_enter(&b->i, dl, IPC_UNINTERRUPTIBLE, repair_i, b, err);
}

/* `w` changed hands after its holder died: forget that holder. */
static void repair_w(ipc_mutex_body *b)
{
	ipc_failpoint("mutex.repair_w"); /* a repairer that dies: w stays OWNER_DIED */
	b->owner = 0;
	b->drain_waiter = 0;
	ipc_rlock_consistent(&b->w);
}

/* Holding `w`: wait until no reader is left (dead ones are reaped). */
static int drain_readers(ipc_mutex_body *b, const ipc_deadline *dl, unsigned sigsnap,
                         ipc_error *err)
{
	for (int round = 0;; round++) {
		int r = lock_i(b, dl, err);
		if (r != IPC_OK)
			return r;
		if (b->readers && round > 0)
			reap_readers(b);
		uint32_t n = b->readers, seq = b->rseq;
		b->drain_waiter = n ? ipc_self_token() : 0;
		ipc_rlock_unlock(&b->i);
		if (!n)
			return IPC_OK;
		if (round == 0 && ipc_spin_word(&b->rseq, seq))
			continue;
		r = ipc_wait_word(&b->rseq, seq, dl, IPC_SLICE_NS, sigsnap);
		if (r == IPC_TIMEOUT && round == 0) {
			/* a timeout of 0: still give dead readers their due */
			continue;
		}
		if (r != IPC_OK) {
			b->drain_waiter = 0;
			return r;
		}
	}
}

static int take_w(ipc_mutex_body *b, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_trylock(&b->w, &died, err);
	if (r == IPC_TIMEOUT && ipc_deadline_left(dl) > 0) {
		ipc_token me = ipc_self_token();
		int k = waiter_claim(b, me);
		r = ipc_rlock_lock_long(&b->w, dl, sigsnap, &died, err);
		if (k >= 0)
			waiter_clear(b, k, me);
	}
	if (r == IPC_OK && died)
		repair_w(b);
	return r;
}

/* Under `i`: list this process as a shared holder; -1 when the table is
 * full even after reaping dead holders. */
static int add_reader(ipc_mutex_body *b)
{
	ipc_token me = ipc_self_token();
	int k = ipc_slot_claim(b->reader, sizeof(ipc_token), IPC_MUTEX_READERS, me);
	if (k < 0) {
		reap_readers(b);
		k = ipc_slot_claim(b->reader, sizeof(ipc_token), IPC_MUTEX_READERS, me);
	}
	if (k >= 0) {
		b->readers++;
		count(&b->n_shared); /* under i */
	}
	return k;
}

/* Holding `w` with no reader left: the exclusive lock is ours. */
static int exclusive_taken(ipc_mutex_body *b, ipc_mutex_local *l)
{
	__atomic_store_n(&b->owner, ipc_self_token(), __ATOMIC_RELAXED);
	count(&b->n_exclusive); /* under w */
	l->mode = IPC_HELD_EXCLUSIVE;
	return IPC_OK;
}

int ipc_mutex_lock_fast(ipc_segment *seg, int shared)
{
	ipc_mutex_body *b = body_of(seg);
	ipc_mutex_local *l = local_of(seg);
	if (l->mode != IPC_HELD_NONE || !ipc_rlock_fast(&b->w))
		return IPC_TIMEOUT;
	if (!shared) {
		if (__atomic_load_n(&b->readers, __ATOMIC_SEQ_CST) == 0)
			return exclusive_taken(b, l);
	} else if (ipc_rlock_fast(&b->i)) {
		int k = add_reader(b);
		ipc_rlock_unlock(&b->i);
		if (k >= 0) {
			ipc_rlock_unlock(&b->w);
			l->mode = IPC_HELD_SHARED;
			return IPC_OK;
		}
	}
	ipc_rlock_unlock(&b->w); /* readers to drain, `i` busy, or full: the full path */
	return IPC_TIMEOUT;
}

int ipc_mutex_lock(ipc_segment *seg, int shared, const ipc_deadline *dl, unsigned sigsnap,
                   ipc_error *err)
{
	ipc_mutex_body *b = body_of(seg);
	ipc_mutex_local *l = local_of(seg);
	if (l->mode != IPC_HELD_NONE)
		return ipc_fail(err, 0, "already locked by this process (%s)",
		                l->mode == IPC_HELD_SHARED ? "shared" : "exclusive");
	int r = take_w(b, dl, sigsnap, err);
	if (r != IPC_OK)
		return r;
	if (!shared) {
		__atomic_store_n(&b->owner, ipc_self_token(), __ATOMIC_RELAXED);
		if (__atomic_load_n(&b->readers, __ATOMIC_SEQ_CST) != 0) {
			ipc_token me = ipc_self_token();
			int k = ipc_deadline_left(dl) > 0 ? waiter_claim(b, me) : -1;
			r = drain_readers(b, dl, sigsnap, err);
			if (k >= 0)
				waiter_clear(b, k, me);
			if (r != IPC_OK) {
				b->owner = 0;
				ipc_rlock_unlock(&b->w);
				return r;
			}
		}
		return exclusive_taken(b, l);
	}
	r = lock_i(b, dl, err);
	if (r != IPC_OK) {
		ipc_rlock_unlock(&b->w);
		return r;
	}
	int k = add_reader(b);
	ipc_rlock_unlock(&b->i);
	ipc_rlock_unlock(&b->w);
	if (k < 0)
		return ipc_fail(err, 0, "too many shared holders (at most %d processes)",
		                IPC_MUTEX_READERS);
	l->mode = IPC_HELD_SHARED;
	return IPC_OK;
}

int ipc_mutex_unlock(ipc_segment *seg, ipc_error *err)
{
	ipc_mutex_body *b = body_of(seg);
	ipc_mutex_local *l = local_of(seg);
	if (l->mode == IPC_HELD_EXCLUSIVE) {
		l->mode = IPC_HELD_NONE;
		b->owner = 0;
		b->drain_waiter = 0;
		ipc_rlock_unlock(&b->w);
		return IPC_OK;
	}
	if (l->mode != IPC_HELD_SHARED)
		return IPC_TIMEOUT;
	l->mode = IPC_HELD_NONE;
	/* Never interrupted: the release must happen. */
	int r = lock_i(b, NULL, err);
	if (r != IPC_OK)
		return r;
	int k = ipc_slot_find(b->reader, sizeof(ipc_token), IPC_MUTEX_READERS, ipc_self_token());
	if (k >= 0) {
		__atomic_store_n(&b->reader[k], 0, __ATOMIC_RELEASE);
		if (b->readers)
			b->readers--;
		if (b->readers == 0 && b->drain_waiter) {
			__atomic_add_fetch(&b->rseq, 1, __ATOMIC_SEQ_CST);
			ipc_wake_word(&b->rseq, -1);
		}
	}
	ipc_rlock_unlock(&b->i);
	return IPC_OK;
}

int ipc_mutex_held(ipc_segment *seg)
{
	return local_of(seg)->mode;
}

int ipc_mutex_state_get(ipc_segment *seg, ipc_mutex_state *st, ipc_error *err)
{
	ipc_mutex_body *b = body_of(seg);
	memset(st, 0, sizeof *st);
	int r = ipc_rlock_enter_peek(&b->i, repair_i, b, err);
	if (r != IPC_OK)
		return r;
	reap_readers(b);
	ipc_token owner = __atomic_load_n(&b->owner, __ATOMIC_RELAXED);
	if (owner && ipc_token_alive(owner)) {
		st->state = IPC_HELD_EXCLUSIVE;
		st->holders[st->nholders++] = IPC_TOKEN_PID(owner);
	} else if (b->readers) {
		st->state = IPC_HELD_SHARED;
		for (uint32_t k = 0; k < IPC_MUTEX_READERS; k++)
			if (b->reader[k])
				st->holders[st->nholders++] = IPC_TOKEN_PID(b->reader[k]);
	}
	st->waiters = count_waiters(b);
	st->n_exclusive = __atomic_load_n(&b->n_exclusive, __ATOMIC_RELAXED);
	st->n_shared = __atomic_load_n(&b->n_shared, __ATOMIC_RELAXED);
	ipc_rlock_unlock(&b->i);
	return IPC_OK;
}

static void mutex_release(ipc_segment *seg)
{
	ipc_error ignored;
	if (local_of(seg)->mode != IPC_HELD_NONE)
		ipc_mutex_unlock(seg, &ignored);
}

const ipc_type_ops ipc_mutex_ops = {IPC_T_MUTEX,  "mutex",    sizeof(ipc_mutex_local),
                                    mutex_layout, mutex_init, mutex_release};
