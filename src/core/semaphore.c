#include "semaphore.h"

#include "failpoint.h"
#include "signals.h"
#include "slots.h"
#include "wait.h"

#include <string.h>

static ipc_sem_body *body_of(ipc_segment *seg)
{
	return seg->body;
}

static int sem_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	if (params[1] < 1 || params[1] > (uint64_t)IPC_SEM_MAX)
		return ipc_fail(err, 0, "max out of range");
	if (params[0] > params[1])
		return ipc_fail(err, 0, "initial value %llu exceeds max %llu",
		                (unsigned long long)params[0], (unsigned long long)params[1]);
	if (params[2] > 1)
		return ipc_fail(err, 0, "bad undo flag");
	*body_size = IPC_ALIGN_UP(sizeof(ipc_sem_body), 64);
	return IPC_OK;
}

static int sem_init(void *body, const uint64_t *params, ipc_error *err)
{
	ipc_sem_body *b = body;
	b->value = (int64_t)params[0];
	b->max = (int64_t)params[1];
	b->undo = (uint32_t)params[2];
	return ipc_rlock_init(&b->i, err);
}

static void wake(ipc_sem_body *b, int64_t n)
{
	if (__atomic_load_n(&b->nwait, __ATOMIC_SEQ_CST) == 0)
		return;
	__atomic_add_fetch(&b->seq, 1, __ATOMIC_SEQ_CST);
	ipc_wake_word(&b->seq, n > INT32_MAX ? -1 : (int)n);
}

/* --- undo-mode bookkeeping, under `i` --------------------------------- */

static void journal(ipc_sem_body *b, int slot)
{
	b->j_slot = slot;
	b->j_value = b->value;
	b->j_held = slot >= 0 ? b->holder[slot].held : 0;
	__atomic_store_n(&b->j_valid, 1, __ATOMIC_SEQ_CST);
}

static void commit(ipc_sem_body *b)
{
	__atomic_store_n(&b->j_valid, 0, __ATOMIC_SEQ_CST);
}

/* Permits that can still be added to v without passing max.  The value
 * and max live in shared memory: a corrupt pair (v < 0 or v > max) gives
 * 0 rather than an overflowing subtraction. */
static int64_t room(int64_t max, int64_t v)
{
	return v >= 0 && v <= max ? max - v : 0;
}

/* Give back the permits of dead holders; returns how many. */
static int64_t reap_holders(ipc_sem_body *b)
{
	int64_t returned = 0;
	for (int k = 0; k < IPC_SEM_SLOTS; k++) {
		ipc_sem_holder *h = &b->holder[k];
		if (!h->token || ipc_token_alive(h->token))
			continue;
		journal(b, k);
		int64_t give = h->held > 0 ? h->held : 0;
		if (give > room(b->max, b->value))
			give = room(b->max, b->value);
		b->value += give;
		h->held = 0;
		/* Commit before freeing the record: a rollback after a death
		 * between the two would restore held into a slot no longer
		 * owned by anyone, and those permits would be lost for good
		 * (found by models/semaphore.pml). */
		commit(b);
		ipc_failpoint("sem.reaped");
		__atomic_store_n(&h->token, 0, __ATOMIC_RELEASE);
		returned += give;
	}
	return returned;
}

static void reap_waiters(ipc_sem_body *b)
{
	ipc_slot_reap(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, NULL, NULL);
	__atomic_store_n(&b->nwait, ipc_slot_count(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS),
	                 __ATOMIC_SEQ_CST);
}

static void repair_i(void *ctx)
{
	ipc_sem_body *b = ctx;
	if (b->j_valid) { /* roll the interrupted change back */
		b->value = b->j_value;
		if (b->j_slot >= 0 && b->j_slot < IPC_SEM_SLOTS)
			b->holder[b->j_slot].held = b->j_held;
		commit(b);
	}
	if (b->undo)
		reap_holders(b);
	reap_waiters(b);
}

/* dl: the caller's deadline, NULL when it has none (bounded all the same). */
static int lock_i(ipc_sem_body *b, const ipc_deadline *dl, ipc_error *err)
{
	return ipc_rlock_enter(&b->i, dl, IPC_UNINTERRUPTIBLE, repair_i, b, err);
}

/* --- operations -------------------------------------------------------- */

static inline void count(uint64_t *c, int64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + (uint64_t)n, __ATOMIC_RELAXED);
}

static int try_take(ipc_sem_body *b, const ipc_deadline *dl, ipc_error *err)
{
	if (!b->undo) {
		int64_t v = __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
		while (v > 0)
			if (__atomic_compare_exchange_n(&b->value, &v, v - 1, 1, __ATOMIC_SEQ_CST,
			                                __ATOMIC_SEQ_CST)) {
				count(&b->n_taken, 1);
				return IPC_OK;
			}
		return IPC_TIMEOUT;
	}
	if (__atomic_load_n(&b->value, __ATOMIC_SEQ_CST) <= 0)
		return IPC_TIMEOUT;
	int r = lock_i(b, dl, err);
	if (r != IPC_OK)
		return r;
	r = IPC_TIMEOUT;
	if (b->value > 0) {
		ipc_token me = ipc_self_token();
		int k = ipc_slot_find(b->holder, sizeof(ipc_sem_holder), IPC_SEM_SLOTS, me);
		if (k < 0)
			k = ipc_slot_claim(b->holder, sizeof(ipc_sem_holder), IPC_SEM_SLOTS, me);
		if (k < 0) {
			reap_holders(b);
			k = ipc_slot_claim(b->holder, sizeof(ipc_sem_holder), IPC_SEM_SLOTS, me);
		}
		if (k < 0) {
			r = ipc_fail(err, 0, "too many processes hold permits (at most %d)",
			             IPC_SEM_SLOTS);
		} else {
			journal(b, k);
			b->holder[k].held++;
			__atomic_store_n(&b->value, b->value - 1, __ATOMIC_SEQ_CST);
			commit(b);
			count(&b->n_taken, 1);
			r = IPC_OK;
		}
	}
	ipc_rlock_unlock(&b->i);
	return r;
}

int ipc_sem_post(ipc_segment *seg, int64_t n, ipc_error *err)
{
	ipc_sem_body *b = body_of(seg);
	if (!b->undo) {
		int64_t v = __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
		do {
			if (n > room(b->max, v))
				return ipc_fail(err, 0, "post would exceed max (%lld)",
				                (long long)b->max);
		} while (!__atomic_compare_exchange_n(&b->value, &v, v + n, 1, __ATOMIC_SEQ_CST,
		                                      __ATOMIC_SEQ_CST));
		count(&b->n_posted, n);
		wake(b, n);
		return IPC_OK;
	}
	int r = lock_i(b, NULL, err);
	if (r != IPC_OK)
		return r;
	if (n > room(b->max, b->value)) {
		ipc_rlock_unlock(&b->i);
		return ipc_fail(err, 0, "post would exceed max (%lld)", (long long)b->max);
	}
	/* A post settles permits still held: this process's first, then other
	 * processes' (one took a permit, another gives it back), and only the
	 * rest is new.  So value + all permits held never exceeds max, and a
	 * holder that dies later gives back only what nobody posted for it.
	 * Each step moves value and one holder's held together under the
	 * journal: with value added up front, a death before a later step left
	 * a dead holder's permit both posted for and still held, returned twice
	 * by the reap (found by models/semaphore.pml). */
	int k = ipc_slot_find(b->holder, sizeof(ipc_sem_holder), IPC_SEM_SLOTS, ipc_self_token());
	int64_t left = n;
	/* ours first (the slot stays ours, cheap to find next time, until we
	 * die), then the other holders' */
	for (int s = -1; s < IPC_SEM_SLOTS && left > 0; s++) {
		int j = s < 0 ? k : s;
		if (j < 0 || (s >= 0 && j == k))
			continue;
		ipc_sem_holder *h = &b->holder[j];
		if (!h->token || h->held <= 0)
			continue;
		ipc_failpoint("sem.post.step");
		int64_t paid = h->held > left ? left : h->held;
		journal(b, j); /* one holder per step: a death between steps is safe */
		__atomic_store_n(&b->value, b->value + paid, __ATOMIC_SEQ_CST);
		h->held -= paid;
		left -= paid;
		commit(b);
	}
	if (left > 0) /* the rest is new: one store, nothing to roll back */
		__atomic_store_n(&b->value, b->value + left, __ATOMIC_SEQ_CST);
	count(&b->n_posted, n);
	ipc_rlock_unlock(&b->i);
	wake(b, n);
	return IPC_OK;
}

/* Returns 1 when this process is now listed as waiting (only then does the
 * "off" call need the lock). */
static int set_waiting(ipc_sem_body *b, int on, const ipc_deadline *dl)
{
	ipc_error ignored;
	if (lock_i(b, dl, &ignored) != IPC_OK)
		return 0;
	ipc_token me = ipc_self_token();
	int listed = 0;
	if (on) {
		listed = ipc_slot_claim(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, me) >= 0;
		if (listed)
			__atomic_add_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
	} else {
		int k = ipc_slot_find(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, me);
		if (k >= 0) {
			__atomic_store_n(&b->waiter[k], 0, __ATOMIC_RELEASE);
			__atomic_sub_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
		}
	}
	ipc_rlock_unlock(&b->i);
	return listed;
}

/* Repairs a slow waiter does every slice: dead waiters, dead holders.
 * dl NULL: for info, which waits at most IPC_RLOCK_PEEK_NS (and then
 * reports what it sees unrepaired). */
static void reap_all(ipc_sem_body *b, const ipc_deadline *dl)
{
	ipc_error ignored;
	if ((dl ? lock_i(b, dl, &ignored) : ipc_rlock_enter_peek(&b->i, repair_i, b, &ignored)) !=
	    IPC_OK)
		return;
	int64_t back = b->undo ? reap_holders(b) : 0;
	reap_waiters(b);
	ipc_rlock_unlock(&b->i);
	if (back)
		wake(b, back);
}

/* The wait of ipc_sem_wait, for the wait module (ipc_wait_until). */
typedef struct sem_waiting {
	ipc_sem_body *b;
	const ipc_deadline *dl;
	ipc_error *err;
	int r;
} sem_waiting;

static int sem_ready(void *ctx)
{
	sem_waiting *w = ctx;
	w->r = try_take(w->b, w->dl, w->err);
	return w->r == IPC_TIMEOUT ? 0 : w->r == IPC_OK ? 1 : IPC_ERR;
}

/* A slice passed with no post: anyone dead? (undo only) */
static void sem_slice(void *ctx)
{
	sem_waiting *w = ctx;
	reap_all(w->b, w->dl);
}

int ipc_sem_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	ipc_sem_body *b = body_of(seg);
	int r = try_take(b, dl, err);
	if (r != IPC_TIMEOUT)
		return r;
	if (ipc_deadline_left(dl) == 0) {
		if (b->undo) { /* a dead holder's permits are ours to take */
			reap_all(b, dl);
			return try_take(b, dl, err);
		}
		return IPC_TIMEOUT;
	}
	int listed = set_waiting(b, 1, dl);
	sem_waiting w = {b, dl, err, IPC_OK};
	ipc_wait_spec spec = {&b->seq, sem_ready, b->undo ? sem_slice : NULL, &w,
	                      b->undo ? IPC_SLICE_NS : 0};
	r = ipc_wait_until(&spec, dl, sigsnap);
	if (r == IPC_ERR)
		r = w.r; /* try_take's error, in err */
	if (r == IPC_TIMEOUT && try_take(b, dl, err) == IPC_OK)
		r = IPC_OK;
	if (listed)
		set_waiting(b, 0, NULL);
	return r;
}

int64_t ipc_sem_value(ipc_segment *seg)
{
	ipc_sem_body *b = body_of(seg);
	if (b->undo)
		reap_all(b, NULL); /* count the permits of the dead as returned */
	return __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
}

uint32_t ipc_sem_waiters(ipc_segment *seg)
{
	ipc_sem_body *b = body_of(seg);
	reap_all(b, NULL);
	return __atomic_load_n(&b->nwait, __ATOMIC_SEQ_CST);
}

const ipc_type_ops ipc_semaphore_ops = {IPC_T_SEMAPHORE, "semaphore", 0,
                                        sem_layout,      sem_init,    NULL};

/* ---- ipc.select hooks (src/core/select.c, docs/design.md "select protocol") ---- */

int ipc_sem_sel_arm(ipc_segment *seg, int *slot, uint32_t **word, uint32_t *seen, int64_t *slice,
                    ipc_error *err)
{
	ipc_sem_body *b = body_of(seg);
	*slot = -1;
	*word = &b->seq;
	int r = lock_i(b, NULL, err);
	if (r != IPC_OK)
		return r;
	*slot = ipc_slot_claim(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, ipc_self_token());
	if (*slot >= 0)
		__atomic_add_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
	ipc_rlock_unlock(&b->i);
	/* registered first, then seq, then the value: a post after this
	 * sees nwait > 0 and bumps seq (see wake) */
	*seen = __atomic_load_n(&b->seq, __ATOMIC_SEQ_CST);
	*slice = *slot < 0 ? 1000000LL : b->undo ? IPC_SLICE_NS : 0;
	if (__atomic_load_n(&b->value, __ATOMIC_SEQ_CST) > 0) {
		ipc_sem_sel_disarm(seg, *slot);
		*slot = -1;
		return 1;
	}
	return 0;
}

void ipc_sem_sel_disarm(ipc_segment *seg, int slot)
{
	ipc_sem_body *b = body_of(seg);
	ipc_error ignored;
	if (slot >= 0 && lock_i(b, NULL, &ignored) == IPC_OK) {
		if (__atomic_load_n(&b->waiter[slot], __ATOMIC_SEQ_CST) == ipc_self_token()) {
			__atomic_store_n(&b->waiter[slot], 0, __ATOMIC_RELEASE);
			__atomic_sub_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
		}
		ipc_rlock_unlock(&b->i);
	}
	/* a post's wake may have reached us instead of a plain waiter */
	if (__atomic_load_n(&b->value, __ATOMIC_SEQ_CST) > 0)
		wake(b, 1);
}

/* The out-of-line half of ipc_sem_post1_fast (semaphore.h): kept at the end
 * of the file so that docs/design.md's model-step line numbers stay put. */
void ipc_sem_wake_one(ipc_sem_body *b)
{
	wake(b, 1);
}
