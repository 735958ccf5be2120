#include "condition.h"

#include "mutex.h"
#include "signals.h"
#include "slots.h"
#include "wait.h"

static ipc_cond_body *body_of(ipc_segment *seg)
{
	return seg->body;
}

static int cond_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	(void)params, (void)err;
	*body_size = IPC_ALIGN_UP(sizeof(ipc_cond_body), 64);
	return IPC_OK;
}

static int cond_init(void *body, const uint64_t *params, ipc_error *err)
{
	(void)params;
	return ipc_rlock_init(&((ipc_cond_body *)body)->i, err);
}

static void recount(ipc_cond_body *b)
{
	ipc_slot_reap(b->w, sizeof(ipc_cond_waiter), IPC_COND_SLOTS, NULL, NULL);
	b->nwait = ipc_slot_count(b->w, sizeof(ipc_cond_waiter), IPC_COND_SLOTS);
}

/* Critical sections claim or free one slot and adjust nwait: a holder that
 * died inside is repaired by reaping dead slots and recounting. */
static void repair_i(void *ctx)
{
	recount(ctx);
}

/* dl: the caller's deadline, NULL when it has none (bounded all the same). */
static int lock_i(ipc_cond_body *b, const ipc_deadline *dl, ipc_error *err)
{
	return ipc_rlock_enter(&b->i, dl, IPC_UNINTERRUPTIBLE, repair_i, b, err);
}

static int signalled(void *ctx)
{
	return __atomic_load_n(&((ipc_cond_waiter *)ctx)->word, __ATOMIC_ACQUIRE) != 0;
}

int ipc_cond_wait(ipc_segment *cond, ipc_segment *mutex, const ipc_deadline *dl, unsigned sigsnap,
                  ipc_error *err)
{
	ipc_cond_body *b = body_of(cond);
	if (ipc_mutex_held(mutex) != IPC_HELD_EXCLUSIVE)
		return ipc_fail(err, 0, "the mutex must be locked exclusively by this process");
	int r = lock_i(b, dl, err);
	if (r != IPC_OK)
		return r;
	ipc_token me = ipc_self_token();
	int k = ipc_slot_claim(b->w, sizeof(ipc_cond_waiter), IPC_COND_SLOTS, me);
	if (k < 0) {
		recount(b);
		k = ipc_slot_claim(b->w, sizeof(ipc_cond_waiter), IPC_COND_SLOTS, me);
	}
	if (k < 0) {
		ipc_rlock_unlock(&b->i);
		return ipc_fail(err, 0, "too many waiters (at most %d)", IPC_COND_SLOTS);
	}
	ipc_cond_waiter *w = &b->w[k];
	w->ticket = b->next_ticket++;
	b->nwait++;
	ipc_rlock_unlock(&b->i);

	ipc_mutex_unlock(mutex, err);
	/* signal() sets our word, then wakes it: no slices needed */
	ipc_wait_spec ws = {&w->word, signalled, NULL, w, 0};
	r = ipc_wait_until(&ws, dl, sigsnap);
	ipc_error ignored;
	if (ipc_lock_always(&b->i, repair_i, b, &ignored) == IPC_OK) {
		if (__atomic_load_n(&w->word, __ATOMIC_ACQUIRE))
			r = IPC_OK; /* signalled just as we gave up: take it */
		if (w->token == me) {
			__atomic_store_n(&w->token, 0, __ATOMIC_RELEASE);
			b->nwait--;
		}
		ipc_rlock_unlock(&b->i);
	}
	ipc_deadline never = ipc_deadline_never();
	int lr = ipc_mutex_lock(mutex, 0, &never,
	                        r == IPC_INTERRUPTED ? IPC_UNINTERRUPTIBLE : sigsnap, err);
	if (lr != IPC_OK)
		return lr;
	return r;
}

int ipc_cond_signal(ipc_segment *cond, int all, ipc_error *err)
{
	ipc_cond_body *b = body_of(cond);
	if (__atomic_load_n(&b->nwait, __ATOMIC_ACQUIRE) == 0)
		return 0;
	int r = ipc_lock_always(&b->i, repair_i, b, err);
	if (r != IPC_OK)
		return r;
	int woken = 0;
	for (;;) {
		int best = -1;
		for (int k = 0; k < IPC_COND_SLOTS; k++) {
			ipc_cond_waiter *w = &b->w[k];
			if (!w->token || w->word)
				continue;
			if (all) {
				best = k;
				break;
			}
			if (best < 0 || w->ticket < b->w[best].ticket)
				best = k;
		}
		if (best < 0)
			break;
		ipc_cond_waiter *w = &b->w[best];
		if (!ipc_token_alive(w->token)) {
			__atomic_store_n(&w->token, 0, __ATOMIC_RELEASE);
			b->nwait--;
			continue;
		}
		__atomic_store_n(&w->word, 1, __ATOMIC_RELEASE);
		ipc_wake_word(&w->word, 1);
		woken++;
		if (!all)
			break;
	}
	ipc_rlock_unlock(&b->i);
	return woken;
}

uint32_t ipc_cond_waiters(ipc_segment *cond)
{
	ipc_cond_body *b = body_of(cond);
	ipc_error ignored;
	if (ipc_rlock_enter_peek(&b->i, repair_i, b, &ignored) != IPC_OK)
		return 0; /* busy: info() shows no waiters rather than waiting */
	recount(b);
	uint32_t n = b->nwait;
	ipc_rlock_unlock(&b->i);
	return n;
}

const ipc_type_ops ipc_condition_ops = {IPC_T_CONDITION, "condition", 0,
                                        cond_layout,     cond_init,   NULL};
