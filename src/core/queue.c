/* queue: see queue.h and docs/design.md.  This file: the layout and the
 * operations; queue_repair.c: the internal lock and recovery from deaths;
 * queue_wait.c: sleeping.
 *
 * Every change happens under the object's robust lock, in one short critical
 * section.  The cells are the truth; a cell's state is stored last (release
 * order), so a process killed anywhere inside leaves each cell either in its
 * old state or in its new, complete one, and the next locker rebuilds the
 * rest (queue_repair.c).  The crash points (failpoints "queue.*") are where
 * the specs kill a process inside a critical section.
 *
 * The fast path (a message to take, or room for one, and the lock free):
 * one try of the lock, the cell, unlock.  The signal snapshot and the
 * spin-then-sleep machinery are only reached when that fails. */
#include "queue_int.h"

#include <string.h>

#define PREFETCH_MAX 2048 /* bytes of the next message prefetched */
#define BAD_ENTRY 100     /* put/take: a heap or ring entry failed its check */

typedef struct q_local {
	int64_t last_reclaim_ns;
} q_local;

static uint64_t slot_size(uint64_t max_size)
{
	return IPC_ALIGN_UP(max_size, 8);
}

typedef struct q_offsets {
	uint64_t cells, heap, freel, data, total;
} q_offsets;

static void q_offsets_of(uint64_t n, uint64_t max_size, q_offsets *o)
{
	o->cells = IPC_ALIGN_UP(sizeof(ipc_qhdr), 64);
	o->heap = IPC_ALIGN_UP(o->cells + n * sizeof(ipc_qcell), 64);
	o->freel = IPC_ALIGN_UP(o->heap + n * sizeof(ipc_qentry), 64);
	o->data = IPC_ALIGN_UP(o->freel + n * sizeof(uint32_t), 64);
	o->total = IPC_ALIGN_UP(o->data + n * slot_size(max_size), 64);
}

static int q_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	uint64_t n = params[0], size = params[1];
	if (n < 1 || n > IPC_QUEUE_MAX_COUNT)
		return ipc_fail(err, 0, "max_count %llu out of range (1..%u)",
		                (unsigned long long)n, IPC_QUEUE_MAX_COUNT);
	if (size > IPC_QUEUE_MAX_SIZE)
		return ipc_fail(err, 0, "max_size %llu out of range (0..%u)",
		                (unsigned long long)size, IPC_QUEUE_MAX_SIZE);
	if (n * slot_size(size) > IPC_QUEUE_MAX_DATA)
		return ipc_fail(err, 0,
		                "queue too large: max_count (%llu) * max_size (%llu) is over the "
		                "limit of 1 GiB",
		                (unsigned long long)n, (unsigned long long)size);
	q_offsets o;
	q_offsets_of(n, size, &o);
	*body_size = o.total;
	return IPC_OK;
}

static void view_at(ipc_queue *v, void *body, uint64_t n, uint64_t size, void *local)
{
	q_offsets o;
	q_offsets_of(n, size, &o);
	char *b = body;
	v->q = body;
	v->cells = (ipc_qcell *)(void *)(b + o.cells);
	v->heap = (ipc_qentry *)(void *)(b + o.heap);
	v->freelist = (uint32_t *)(void *)(b + o.freel);
	v->data = (unsigned char *)(b + o.data);
	v->max_count = (uint32_t)n;
	v->max_size = (uint32_t)size;
	v->slot = slot_size(size);
	v->last_reclaim_ns = local ? &((q_local *)local)->last_reclaim_ns : NULL;
}

static int q_init(void *body, const uint64_t *params, ipc_error *err)
{
	ipc_queue v;
	view_at(&v, body, params[0], params[1], NULL);
	if (ipc_rlock_init(&v.q->lock, err))
		return IPC_ERR;
	v.q->next_seq = 1;
	for (uint32_t i = 0; i < v.max_count; i++)
		v.freelist[i] = i;
	v.q->nfree = v.max_count;
	return IPC_OK;
}

const ipc_type_ops ipc_queue_ops = {IPC_T_QUEUE, "queue", sizeof(q_local), q_layout, q_init, NULL};

void ipc_queue_view(ipc_queue *v, ipc_segment *seg)
{
	view_at(v, seg->body, seg->hdr->params[0], seg->hdr->params[1], seg->local);
}

/* After unlocking: bring the lines the next operation of this kind will
 * most likely touch (written last by the other side) into our cache, off
 * the critical section.  Racy reads, used only as hints; only as many
 * lines as the message has (a receiver knows its length, a sender guesses
 * the one it just sent). */
static inline void prefetch_data(const ipc_queue *v, uint32_t ci, uint32_t len, int write)
{
	const unsigned char *p = v->data + (uint64_t)ci * v->slot;
	uint32_t n = len < PREFETCH_MAX ? len : PREFETCH_MAX;
	if (n > v->slot)
		n = (uint32_t)v->slot;
	for (uint32_t off = 0; off < n; off += 64) {
		if (write)
			__builtin_prefetch(p + off, 1);
		else
			__builtin_prefetch(p + off, 0);
	}
}

static inline void prefetch_send(const ipc_queue *v, uint32_t len)
{
	uint32_t h = __atomic_load_n(&v->q->free_head, __ATOMIC_RELAXED);
	if (h >= v->max_count)
		return;
	uint32_t ci = __atomic_load_n(&v->freelist[h], __ATOMIC_RELAXED);
	if (ci >= v->max_count)
		return;
	__builtin_prefetch(&v->cells[ci], 1);
	prefetch_data(v, ci, len, 1);
}

static inline void prefetch_receive(const ipc_queue *v)
{
	uint32_t ci = __atomic_load_n(&v->heap[0].cell, __ATOMIC_RELAXED);
	if (ci >= v->max_count)
		return;
	__builtin_prefetch(&v->cells[ci], 1);
	prefetch_data(v, ci, __atomic_load_n(&v->cells[ci].len, __ATOMIC_RELAXED), 0);
}

/* ---- send ---- */

/* Lock held, a free cell on the ring: write the message into it, publish
 * it and unlock.  IPC_OK; BAD_ENTRY (still locked) when the ring's head
 * failed its check: the caller rebuilds and looks again; IPC_ERR. */
static inline int put(ipc_queue *v, const void *msg, uint32_t len, uint32_t prio, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	uint32_t ci = q_free_peek(v);
	if (ci >= v->max_count || v->cells[ci].state != IPC_QC_FREE)
		return BAD_ENTRY;
	q_free_pop(v);
	ipc_failpoint("queue.send.taken");
	ipc_qcell *c = &v->cells[ci];
	memcpy(v->data + ci * v->slot, msg, len);
	c->len = len;
	c->prio = prio;
	c->seq = q->next_seq++;
	c->owner = 0;
	ipc_failpoint("queue.send.written");
	__atomic_store_n(&c->state, IPC_QC_READY, __ATOMIC_RELEASE);
	ipc_failpoint("queue.send.ready");
	ipc_qentry e = {c->seq, prio, ci};
	q_sift_up(v->heap, q->count, e);
	ipc_failpoint("queue.send.heaped");
	/* receivers wait only on an empty queue */
	if (q->count++ == 0)
		q_bump(&q->recv_seq);
	q_count(&q->sent);
	if (q->recv_waiters && q_wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes) &&
	    ipc_q_maybe_sweep(v, err) != IPC_OK)
		return IPC_ERR;
	q_unlock(v);
	prefetch_send(v, len);
	return IPC_OK;
}

int ipc_queue_send(ipc_queue *v, const void *msg, size_t len, uint32_t prio, const ipc_deadline *dl,
                   ipc_error *err)
{
	if (len > v->max_size)
		return ipc_fail(err, 0, "message of %zu bytes is longer than max_size (%u)", len,
		                v->max_size);
	if (prio > IPC_QUEUE_MAX_PRIO)
		return ipc_fail(err, 0, "priority out of range");
	ipc_qhdr *q = v->q;
	q_op o = {dl, 0, 0, 0};
	if (__builtin_expect(__atomic_load_n(&q->nfree, __ATOMIC_RELAXED) == 0, 0)) {
		q_snap(&o);
		o.spun = ipc_q_pre_spin(&q->nfree, &q->send_seq, dl);
	}
	int r = q_lock(v, &o, err);
	if (r != IPC_OK)
		return r;
	for (int fixes = 0;;) {
		if (q->nfree > 0) {
			r = put(v, msg, (uint32_t)len, prio, err);
			if (__builtin_expect(r != BAD_ENTRY, 1))
				return r;
			if (++fixes > 2)
				break;
			ipc_q_rebuild(v, 1);
			continue;
		}
		r = ipc_q_wait_turn(v, &q->send_seq, IPC_QW_SEND, &o, err);
		if (r != IPC_OK)
			return r;
	}
	q_unlock(v);
	return ipc_fail(err, 0, "the queue is corrupt (free list keeps failing its checks)");
}

/* ---- receive ---- */

/* Take the heap's first entry; -1 when it does not match its cell. */
static inline int64_t heap_pop(ipc_queue *v)
{
	ipc_qhdr *q = v->q;
	ipc_qentry top = v->heap[0];
	if (top.cell >= v->max_count)
		return -1;
	ipc_qcell *c = &v->cells[top.cell];
	if (c->state != IPC_QC_READY || c->seq != top.seq || c->prio != top.prio ||
	    c->len > v->max_size)
		return -1;
	uint32_t n = --q->count;
	ipc_failpoint("queue.receive.sifting");
	if (n > 0)
		q_sift_down(v->heap, n, 0, v->heap[n]);
	return top.cell;
}

/* Lock held, a message in the heap: take it (copy it out, and free its
 * cell or record it in flight) and unlock.  Results as put. */
static inline int take(ipc_queue *v, void *buf, size_t *len, uint32_t *prio, ipc_qticket *ticket,
                       ipc_error *err)
{
	ipc_qhdr *q = v->q;
	int64_t ci = heap_pop(v);
	if (ci < 0)
		return BAD_ENTRY;
	ipc_failpoint("queue.receive.popped");
	q_count(&q->received);
	ipc_qcell *c = &v->cells[ci];
	memcpy(buf, v->data + (uint64_t)ci * v->slot, c->len);
	*len = c->len;
	*prio = c->prio;
	if (ticket) {
		ticket->cell = (uint32_t)ci;
		ticket->prio = c->prio;
		ticket->seq = c->seq;
		ticket->owner = ipc_self_token();
		c->owner = ticket->owner;
		__atomic_store_n(&c->state, IPC_QC_INFLIGHT, __ATOMIC_RELEASE);
		ipc_failpoint("queue.with.inflight");
		q->in_flight++;
	} else {
		__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
		ipc_failpoint("queue.receive.freed");
		q_free_push(v, (uint32_t)ci);
		/* senders wait only on a full queue */
		if (q->nfree == 1)
			q_bump(&q->send_seq);
		if (q->send_waiters && q_wake_one(&q->send_seq, q->send_waiters, &q->send_wakes) &&
		    ipc_q_maybe_sweep(v, err) != IPC_OK)
			return IPC_ERR;
	}
	q_unlock(v);
	prefetch_receive(v);
	return IPC_OK;
}

int ipc_queue_receive(ipc_queue *v, void *buf, size_t *len, uint32_t *prio, ipc_qticket *ticket,
                      const ipc_deadline *dl, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	q_op o = {dl, 0, 0, 0};
	if (__builtin_expect(__atomic_load_n(&q->count, __ATOMIC_RELAXED) == 0, 0)) {
		q_snap(&o);
		o.spun = ipc_q_pre_spin(&q->count, &q->recv_seq, dl);
	}
	int r = q_lock(v, &o, err);
	if (r != IPC_OK)
		return r;
	if (__builtin_expect(q->in_flight > 0, 0) && q->count > 0 &&
	    ipc_q_reclaim_due(v, RECLAIM_BUSY_NS) && ipc_q_reclaim_dead(v, err) < 0)
		return IPC_ERR;
	for (int fixes = 0;;) {
		if (q->count > 0) {
			r = take(v, buf, len, prio, ticket, err);
			if (__builtin_expect(r != BAD_ENTRY, 1))
				return r;
			if (++fixes > 2)
				break;
			ipc_q_rebuild(v, 1);
			continue;
		}
		if (q->in_flight > 0 && ipc_q_reclaim_due(v, RECLAIM_EVERY_NS)) {
			int back = ipc_q_reclaim_dead(v, err);
			if (back < 0)
				return IPC_ERR;
			if (back > 0)
				continue;
		}
		r = ipc_q_wait_turn(v, &q->recv_seq, IPC_QW_RECV, &o, err);
		if (r != IPC_OK)
			return r;
	}
	q_unlock(v);
	return ipc_fail(err, 0, "the queue is corrupt (heap keeps failing its checks)");
}

/* ---- in-flight messages, clear, stat ---- */

static ipc_qcell *ticket_cell(ipc_queue *v, const ipc_qticket *t)
{
	if (t->cell >= v->max_count)
		return NULL;
	ipc_qcell *c = &v->cells[t->cell];
	if (c->state != IPC_QC_INFLIGHT || c->owner != t->owner || c->seq != t->seq)
		return NULL; /* already put back by someone who thought us dead */
	return c;
}

int ipc_queue_ack(ipc_queue *v, const ipc_qticket *t, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	ipc_qcell *c = ticket_cell(v, t);
	if (c) {
		__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
		ipc_failpoint("queue.ack.freed");
		q->in_flight--;
		q_free_push(v, t->cell);
		q_bump(&q->send_seq);
		q_wake_one(&q->send_seq, q->send_waiters, &q->send_wakes);
	}
	q_unlock(v);
	return IPC_OK;
}

int ipc_queue_nack(ipc_queue *v, const ipc_qticket *t, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	ipc_qcell *c = ticket_cell(v, t);
	if (c) {
		__atomic_store_n(&c->state, IPC_QC_READY, __ATOMIC_RELEASE);
		ipc_failpoint("queue.nack.ready");
		q->in_flight--;
		ipc_qentry e = {c->seq, c->prio, t->cell};
		q_sift_up(v->heap, q->count, e);
		q->count++;
		q_bump(&q->recv_seq);
		q_wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	}
	q_unlock(v);
	return IPC_OK;
}

int64_t ipc_queue_clear(ipc_queue *v, ipc_error *err)
{
	if (ipc_q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	int64_t removed = 0;
	for (uint32_t i = 0; i < v->max_count; i++) {
		ipc_qcell *c = &v->cells[i];
		if (c->state == IPC_QC_READY) {
			__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
			removed++;
			ipc_failpoint("queue.clear.half");
		}
	}
	ipc_q_rebuild(v, 0);
	q_unlock(v);
	return removed;
}

int ipc_queue_stat(ipc_queue *v, ipc_queue_stats *st, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	if (ipc_q_peek(v, err) != IPC_OK)
		return IPC_ERR;
	if (q->in_flight > 0 && ipc_q_reclaim_dead(v, err) < 0)
		return IPC_ERR;
	if (ipc_q_sweep_waiters(v, err) != IPC_OK)
		return IPC_ERR;
	st->count = q->count;
	st->in_flight = q->in_flight;
	st->max_count = v->max_count;
	st->max_size = v->max_size;
	st->recv_waiters = q->recv_waiters;
	st->send_waiters = q->send_waiters;
	st->repairs = q->repairs;
	st->wakeups = q->wakeups;
	st->sent = __atomic_load_n(&q->sent, __ATOMIC_RELAXED);
	st->received = __atomic_load_n(&q->received, __ATOMIC_RELAXED);
	q_unlock(v);
	return IPC_OK;
}
