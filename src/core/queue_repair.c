/* queue repair: the internal lock and everything that recovers from a
 * death (queue_int.h, docs/design.md "queue").
 *
 * A holder killed inside a critical section leaves each cell either in its
 * old state or its new, complete one (a cell's state is stored last, with
 * release order); whatever it leaves in the derived structures (heap, free
 * ring, counters, sleeper counts) is recomputed from the cells by the next
 * locker, which the robust lock tells that its previous holder died, or
 * whose cheap check (q_sane) fails.  A receiver killed while it held a
 * message in flight (queue:with) has it put back by the next receiver that
 * finds it dead; a sleeper killed asleep has its slot freed by a sweep. */
#include "queue_int.h"

#include "signals.h"

#define SWEEP_EVERY_NS 1000000000LL /* liveness checks of registered sleepers */
#define RECLAIM_BATCH 32

/* ---- rebuild ---- */

/* Called with the lock held: after a holder died (repair = 1), when the
 * cheap consistency check fails (repair = 1), or by clear (repair = 0).
 * Cells whose fields are out of range become FREE. */
void ipc_q_rebuild(ipc_queue *v, int repair)
{
	ipc_qhdr *q = v->q;
	uint32_t n = v->max_count, nheap = 0, nfree = 0, nfl = 0;
	uint64_t maxseq = 0;
	for (uint32_t i = 0; i < n; i++) {
		ipc_qcell *c = &v->cells[i];
		uint32_t st = c->state;
		int ok = c->len <= v->max_size && c->prio <= IPC_QUEUE_MAX_PRIO;
		if (st == IPC_QC_READY && ok) {
			ipc_qentry e = {c->seq, c->prio, i};
			v->heap[nheap++] = e;
		} else if (st == IPC_QC_INFLIGHT && ok && c->owner != 0) {
			nfl++;
		} else {
			c->state = IPC_QC_FREE;
			v->freelist[nfree++] = i;
			continue;
		}
		if (c->seq > maxseq)
			maxseq = c->seq;
	}
	for (uint32_t i = nheap / 2; i-- > 0;)
		q_sift_down(v->heap, nheap, i, v->heap[i]);
	q->count = nheap;
	q->in_flight = nfl;
	q->nfree = nfree;
	q->free_head = 0;
	if (q->next_seq <= maxseq)
		q->next_seq = maxseq + 1;
	uint32_t nr = 0, ns = 0;
	for (int i = 0; i < IPC_QUEUE_WAIT_SLOTS; i++) {
		ipc_qwaiter *w = &q->waiters[i];
		if (w->token && w->kind == IPC_QW_RECV)
			nr++;
		else if (w->token && w->kind == IPC_QW_SEND)
			ns++;
		else
			w->token = 0;
	}
	q->recv_waiters = nr;
	q->send_waiters = ns;
	q->recv_wakes = q->send_wakes = 0;
	if (repair)
		q->repairs++;
	/* whatever a dead holder did not get to wake, everyone re-checks */
	q_bump(&q->recv_seq);
	q_bump(&q->send_seq);
	ipc_wake_word(&q->recv_seq, -1);
	ipc_wake_word(&q->send_seq, -1);
}

/* ---- the internal lock ---- */

static void repair_cb(void *ctx)
{
	ipc_q_rebuild(ctx, 1);
}

int ipc_q_lock_slow(ipc_queue *v, int r, int died, q_op *o, ipc_error *err)
{
	if (r == IPC_TIMEOUT) /* busy: wait for it (bounded) */
		r = ipc_rlock_enter(&v->q->lock, o->dl, q_snap(o), repair_cb, v, err);
	else if (r == IPC_OK && died) {
		ipc_q_rebuild(v, 1);
		ipc_rlock_consistent(&v->q->lock);
	}
	if (r == IPC_OK && !q_sane(v))
		ipc_q_rebuild(v, 1);
	return r;
}

/* Ignoring signals: a call that already changed the queue (ack, nack) or
 * must undo what it did finishes.  Never longer than IPC_RLOCK_BOUND_NS: a
 * lock held that long is corrupt (or its holder stopped), and hanging on it
 * is worse than failing. */
int ipc_q_relock(ipc_queue *v, ipc_error *err)
{
	int r = ipc_rlock_enter(&v->q->lock, NULL, IPC_UNINTERRUPTIBLE, repair_cb, v, err);
	if (r == IPC_OK && !q_sane(v))
		ipc_q_rebuild(v, 1);
	return r;
}

int ipc_q_peek(ipc_queue *v, ipc_error *err)
{
	int r = ipc_rlock_enter_peek(&v->q->lock, repair_cb, v, err);
	if (r == IPC_OK && !q_sane(v))
		ipc_q_rebuild(v, 1);
	return r;
}

/* ---- sleepers that died asleep ---- */

/* Forget registered sleepers whose process died while asleep (they only
 * cost senders needless wake calls).  Lock held on entry and on return
 * (IPC_OK); it is dropped for the liveness checks. */
int ipc_q_sweep_waiters(ipc_queue *v, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	ipc_token toks[IPC_QUEUE_WAIT_SLOTS];
	int dead[IPC_QUEUE_WAIT_SLOTS];
	ipc_token self = ipc_self_token();
	int nt = 0;
	q->last_sweep_ns = ipc_now_ns();
	for (int i = 0; i < IPC_QUEUE_WAIT_SLOTS; i++) {
		ipc_token t = q->waiters[i].token;
		toks[i] = t && t != self ? t : 0;
		nt += toks[i] != 0;
	}
	if (nt == 0)
		return IPC_OK;
	q_unlock(v);
	int ndead = 0;
	for (int i = 0; i < IPC_QUEUE_WAIT_SLOTS; i++) {
		dead[i] = toks[i] && !ipc_token_alive(toks[i]);
		ndead += dead[i];
	}
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	if (ndead == 0)
		return IPC_OK;
	uint32_t nr = 0, ns = 0;
	for (int i = 0; i < IPC_QUEUE_WAIT_SLOTS; i++) {
		ipc_qwaiter *w = &q->waiters[i];
		if (dead[i] && w->token == toks[i])
			__atomic_store_n(&w->token, 0, __ATOMIC_RELEASE);
		if (w->token && w->kind == IPC_QW_RECV)
			nr++;
		else if (w->token && w->kind == IPC_QW_SEND)
			ns++;
	}
	q->recv_waiters = nr;
	q->send_waiters = ns;
	if (q->recv_wakes > nr)
		q->recv_wakes = nr;
	if (q->send_wakes > ns)
		q->send_wakes = ns;
	return IPC_OK;
}

/* After a wake call: now and then, check that the sleepers still live. */
int ipc_q_maybe_sweep(ipc_queue *v, ipc_error *err)
{
	if (ipc_now_ns() - v->q->last_sweep_ns < SWEEP_EVERY_NS)
		return IPC_OK;
	return ipc_q_sweep_waiters(v, err);
}

/* ---- in-flight messages of dead receivers ---- */

int ipc_q_reclaim_due(ipc_queue *v, int64_t every)
{
	int64_t now = ipc_now_ns();
	if (v->last_reclaim_ns) {
		if (now - *v->last_reclaim_ns < every)
			return 0;
		*v->last_reclaim_ns = now;
	}
	return 1;
}

/* Put back the in-flight messages of receivers that died.  Lock held on
 * entry and on return (dropped for the liveness checks).  Returns the
 * number put back, or IPC_ERR. */
int ipc_q_reclaim_dead(ipc_queue *v, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	ipc_token toks[RECLAIM_BATCH], self = ipc_self_token();
	int dead[RECLAIM_BATCH];
	int nt = 0, ndead = 0;
	uint32_t seen = 0;
	for (uint32_t i = 0; i < v->max_count && seen < q->in_flight && nt < RECLAIM_BATCH; i++) {
		ipc_qcell *c = &v->cells[i];
		if (c->state != IPC_QC_INFLIGHT)
			continue;
		seen++;
		int known = c->owner == self;
		for (int k = 0; k < nt && !known; k++)
			known = toks[k] == c->owner;
		if (!known)
			toks[nt++] = c->owner;
	}
	if (nt == 0)
		return 0;
	q_unlock(v);
	for (int k = 0; k < nt; k++) {
		dead[k] = !ipc_token_alive(toks[k]);
		ndead += dead[k];
	}
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	if (ndead == 0)
		return 0;
	int back = 0;
	for (uint32_t i = 0; i < v->max_count && q->in_flight > 0; i++) {
		ipc_qcell *c = &v->cells[i];
		if (c->state != IPC_QC_INFLIGHT)
			continue;
		int gone = 0;
		for (int k = 0; k < nt && !gone; k++)
			gone = dead[k] && toks[k] == c->owner;
		if (!gone)
			continue;
		__atomic_store_n(&c->state, IPC_QC_READY, __ATOMIC_RELEASE);
		ipc_qentry e = {c->seq, c->prio, i};
		q_sift_up(v->heap, q->count, e);
		q->count++;
		q->in_flight--;
		back++;
	}
	if (back) {
		q_bump(&q->recv_seq);
		for (int k = 0; k < back; k++)
			q_wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	}
	return back;
}
