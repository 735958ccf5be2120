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

static int lock_i(ipc_sem_body *b, ipc_error *err)
{
	ipc_deadline never = ipc_deadline_never();
	return ipc_rlock_enter(&b->i, &never, IPC_UNINTERRUPTIBLE, repair_i, b, err);
}

/* --- operations -------------------------------------------------------- */

static int try_take(ipc_sem_body *b, ipc_error *err)
{
	if (!b->undo) {
		int64_t v = __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
		while (v > 0)
			if (__atomic_compare_exchange_n(&b->value, &v, v - 1, 1, __ATOMIC_SEQ_CST,
			                                __ATOMIC_SEQ_CST))
				return IPC_OK;
		return IPC_TIMEOUT;
	}
	if (__atomic_load_n(&b->value, __ATOMIC_SEQ_CST) <= 0)
		return IPC_TIMEOUT;
	int r = lock_i(b, err);
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
		wake(b, n);
		return IPC_OK;
	}
	int r = lock_i(b, err);
	if (r != IPC_OK)
		return r;
	if (n > room(b->max, b->value)) {
		ipc_rlock_unlock(&b->i);
		return ipc_fail(err, 0, "post would exceed max (%lld)", (long long)b->max);
	}
	int k = ipc_slot_find(b->holder, sizeof(ipc_sem_holder), IPC_SEM_SLOTS, ipc_self_token());
	journal(b, k);
	__atomic_store_n(&b->value, b->value + n, __ATOMIC_SEQ_CST);
	if (k >= 0) {
		ipc_sem_holder *h = &b->holder[k];
		/* the slot stays ours (cheap to find next time) until we die */
		h->held = h->held > n ? h->held - n : 0;
	}
	commit(b);
	ipc_rlock_unlock(&b->i);
	wake(b, n);
	return IPC_OK;
}

static void set_waiting(ipc_sem_body *b, int on)
{
	ipc_error ignored;
	if (lock_i(b, &ignored) != IPC_OK)
		return;
	ipc_token me = ipc_self_token();
	if (on) {
		if (ipc_slot_claim(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, me) >= 0)
			__atomic_add_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
	} else {
		int k = ipc_slot_find(b->waiter, sizeof(ipc_token), IPC_SEM_SLOTS, me);
		if (k >= 0) {
			__atomic_store_n(&b->waiter[k], 0, __ATOMIC_RELEASE);
			__atomic_sub_fetch(&b->nwait, 1, __ATOMIC_SEQ_CST);
		}
	}
	ipc_rlock_unlock(&b->i);
}

/* Repairs a slow waiter does every slice: dead waiters, dead holders. */
static void reap_all(ipc_sem_body *b)
{
	ipc_error ignored;
	if (lock_i(b, &ignored) != IPC_OK)
		return;
	int64_t back = b->undo ? reap_holders(b) : 0;
	reap_waiters(b);
	ipc_rlock_unlock(&b->i);
	if (back)
		wake(b, back);
}

int ipc_sem_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	ipc_sem_body *b = body_of(seg);
	int r = try_take(b, err);
	if (r != IPC_TIMEOUT)
		return r;
	if (ipc_deadline_left(dl) == 0) {
		if (b->undo) { /* a dead holder's permits are ours to take */
			reap_all(b);
			return try_take(b, err);
		}
		return IPC_TIMEOUT;
	}
	set_waiting(b, 1);
	for (int round = 0;; round++) {
		uint32_t seq = __atomic_load_n(&b->seq, __ATOMIC_SEQ_CST);
		r = try_take(b, err);
		if (r != IPC_TIMEOUT)
			break;
		if (round == 0 && ipc_spin_word(&b->seq, seq))
			continue;
		r = ipc_wait_word(&b->seq, seq, dl, b->undo ? IPC_SLICE_NS : 0, sigsnap);
		if (r != IPC_OK)
			break;
		if (b->undo && __atomic_load_n(&b->seq, __ATOMIC_SEQ_CST) == seq)
			reap_all(b); /* a slice passed with no post: anyone dead? */
	}
	if (r == IPC_TIMEOUT && try_take(b, err) == IPC_OK)
		r = IPC_OK;
	set_waiting(b, 0);
	return r;
}

int64_t ipc_sem_value(ipc_segment *seg)
{
	ipc_sem_body *b = body_of(seg);
	if (b->undo)
		reap_all(b); /* count the permits of the dead as returned */
	return __atomic_load_n(&b->value, __ATOMIC_SEQ_CST);
}

uint32_t ipc_sem_waiters(ipc_segment *seg)
{
	ipc_sem_body *b = body_of(seg);
	reap_all(b);
	return __atomic_load_n(&b->nwait, __ATOMIC_SEQ_CST);
}

const ipc_type_ops ipc_semaphore_ops = {IPC_T_SEMAPHORE, "semaphore", 0,
                                        sem_layout,      sem_init,    NULL};
