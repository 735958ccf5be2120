/* queue waiting: sleeper registration, the spin before sleeping, the
 * sleep itself, and the ipc.select hooks (queue_int.h; docs/design.md
 * "queue", "select protocol").
 *
 * Receivers sleep on recv_seq only when the queue is empty, senders on
 * send_seq only when it is full.  A sleeper registers in a slot first, so
 * the other side issues a wake only when someone sleeps, and only as many
 * as there are sleepers without a wake coming. */
#include "queue_int.h"

/* ---- registration ---- */

int ipc_q_reg_waiter(ipc_qhdr *q, uint32_t kind)
{
	for (int i = 0; i < IPC_QUEUE_WAIT_SLOTS; i++) {
		ipc_qwaiter *w = &q->waiters[i];
		if (w->token == 0) {
			w->kind = kind;
			__atomic_store_n(&w->token, ipc_self_token(), __ATOMIC_RELEASE);
			if (kind == IPC_QW_RECV)
				q->recv_waiters++;
			else
				q->send_waiters++;
			return i;
		}
	}
	return -1; /* all slots taken: this sleeper polls instead */
}

void ipc_q_unreg_waiter(ipc_qhdr *q, int slot)
{
	if (slot < 0)
		return;
	ipc_qwaiter *w = &q->waiters[slot];
	if (w->token != ipc_self_token())
		return;
	uint32_t kind = w->kind;
	__atomic_store_n(&w->token, 0, __ATOMIC_RELEASE);
	/* Back from sleep: absorb one pending wake, ours or not; either way
	 * this sleeper now re-checks the queue. */
	if (kind == IPC_QW_RECV) {
		if (q->recv_waiters > 0)
			q->recv_waiters--;
		if (q->recv_wakes > 0)
			q->recv_wakes--;
	} else if (kind == IPC_QW_SEND) {
		if (q->send_waiters > 0)
			q->send_waiters--;
		if (q->send_wakes > 0)
			q->send_wakes--;
	}
}

/* ---- spinning and sleeping ---- */

/* Before taking the lock: when there is nothing to take (*avail == 0: no
 * message, or no free cell), wait for the other side by spinning without
 * the lock, so as not to slow it down.  Returns 1 if it spun. */
int ipc_q_pre_spin(const uint32_t *avail, const uint32_t *word, const ipc_deadline *dl)
{
	if (!dl->forever && ipc_deadline_passed(dl))
		return 0;
	uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(avail, __ATOMIC_RELAXED) != 0)
		return 0;
	ipc_spin_word(word, seen); /* the wait module's one spin policy */
	return 1;
}

/* Sleep on word (lock held on entry and on return) after registering as a
 * sleeper of this kind.  Returns the wait's result or IPC_ERR. */
static int q_sleep(ipc_queue *v, uint32_t *word, uint32_t seen, uint32_t kind, q_op *o,
                   ipc_error *err)
{
	ipc_qhdr *q = v->q;
	int slot = ipc_q_reg_waiter(q, kind);
	ipc_failpoint("queue.sleep.registered");
	int64_t slice = slot < 0 ? OVERFLOW_SLICE_NS : q->in_flight > 0 ? IPC_SLICE_NS : 0;
	q_unlock(v);
	int wr = ipc_wait_word(word, seen, o->dl, slice, q_snap(o));
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	ipc_q_unreg_waiter(q, slot);
	q->wakeups++;
	return wr;
}

/* Holding the lock with nothing to do yet: give up at the deadline, else spin
 * once (unlocked) or sleep on *word.  IPC_OK: the lock is held again, look
 * again (the deadline is checked on the next turn); anything else: the lock
 * is released and that is the caller's result. */
int ipc_q_wait_turn(ipc_queue *v, uint32_t *word, uint32_t kind, q_op *o, ipc_error *err)
{
	if (ipc_deadline_passed(o->dl)) {
		q_unlock(v);
		return IPC_TIMEOUT;
	}
	uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	q_snap(o); /* before the first unlocked instant */
	if (!o->spun) {
		o->spun = 1;
		q_unlock(v);
		ipc_spin_word(word, seen);
		return ipc_q_relock(v, err) == IPC_OK ? IPC_OK : IPC_ERR;
	}
	int wr = q_sleep(v, word, seen, kind, o, err);
	if (wr == IPC_ERR)
		return IPC_ERR;
	if (wr == IPC_INTERRUPTED) {
		q_unlock(v);
		return IPC_INTERRUPTED;
	}
	return IPC_OK;
}

/* ---- ipc.select hooks (src/core/select.c, docs/design.md "select protocol") ---- */

int ipc_queue_sel_arm(ipc_queue *v, int *slot, uint32_t *seen, int64_t *slice, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	*slot = -1;
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	if (q->count > 0) {
		q_unlock(v);
		return 1;
	}
	/* read under the lock: a send after the unlock changes it */
	*seen = __atomic_load_n(&q->recv_seq, __ATOMIC_ACQUIRE);
	*slot = ipc_q_reg_waiter(q, IPC_QW_RECV);
	*slice = *slot < 0 ? OVERFLOW_SLICE_NS : q->in_flight > 0 ? IPC_SLICE_NS : 0;
	q_unlock(v);
	return 0;
}

void ipc_queue_sel_disarm(ipc_queue *v, int slot)
{
	ipc_qhdr *q = v->q;
	ipc_error err;
	if (ipc_q_relock(v, &err) != IPC_OK)
		return; /* only corruption: the next sweep frees the slot once we exit */
	if (slot >= 0) {
		ipc_q_unreg_waiter(q, slot);
		q->wakeups++;
	}
	/* The wake we absorbed may have been meant for a plain receiver: if a
	 * message waits and other sleepers are registered, pass one on. */
	if (q->count > 0 && q->recv_waiters)
		q_wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	q_unlock(v);
}
