/* queue: see queue.h and docs/design.md.
 *
 * Every change happens under the object's robust lock, in one short critical
 * section.  The cells are the truth; a cell's state is stored last (release
 * order), so a process killed anywhere inside leaves each cell either in its
 * old state or in its new, complete one.  Whatever it leaves in the derived
 * structures (heap, free ring, counters, sleeper counts) is recomputed from
 * the cells by the next locker (q_rebuild), which the robust lock tells that
 * its previous holder died. */
#include "queue.h"

#include "signals.h"
#include "wait.h"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCK_GRACE_NS 1000000000LL  /* the internal lock: wait at least this */
#define RECLAIM_EVERY_NS 5000000LL  /* liveness checks of in-flight owners, */
#define RECLAIM_BUSY_NS 100000000LL /* ... and when the queue is not empty */
#define SWEEP_EVERY_NS 1000000000LL /* liveness checks of registered sleepers */
#define OVERFLOW_SLICE_NS 1000000LL /* a sleeper with no slot polls this often */
#define RECLAIM_BATCH 32
#define LOCK_SPINS 256
#define PREFETCH_MAX 2048 /* bytes of the next message prefetched */
#define SPIN_START 1000   /* see q_spin: pause instructions */
#define SPIN_MIN 16
#define SPIN_MAX 4000

typedef struct q_local {
	int64_t last_reclaim_ns;
} q_local;

/* Fault injection for the crash tests (spec/queue_spec.lua):
 * IPCSH_TEST_QUEUE_CRASH=N makes this process SIGKILL itself at point N,
 * inside a critical section.  Read once, when a queue is opened. */
static int crash_point;

#define CRASH_AT(n)                                                                                \
	do {                                                                                       \
		if (__builtin_expect(crash_point == (n), 0))                                       \
			raise(SIGKILL);                                                            \
	} while (0)

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
	const char *cp = getenv("IPCSH_TEST_QUEUE_CRASH");
	crash_point = cp ? atoi(cp) : 0;
	view_at(v, seg->body, seg->hdr->params[0], seg->hdr->params[1], seg->local);
}

/* ---- the heap: highest priority first, then lowest seq ---- */

static inline int before(const ipc_qentry *a, const ipc_qentry *b)
{
	return a->prio > b->prio || (a->prio == b->prio && a->seq < b->seq);
}

static void sift_up(ipc_qentry *h, uint32_t i, ipc_qentry e)
{
	while (i > 0) {
		uint32_t p = (i - 1) / 2;
		if (!before(&e, &h[p]))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = e;
}

static void sift_down(ipc_qentry *h, uint32_t n, uint32_t i, ipc_qentry e)
{
	for (;;) {
		uint32_t l = 2 * i + 1;
		if (l >= n)
			break;
		uint32_t b = l;
		if (l + 1 < n && before(&h[l + 1], &h[l]))
			b = l + 1;
		if (!before(&h[b], &e))
			break;
		h[i] = h[b];
		i = b;
	}
	h[i] = e;
}

/* ---- futex words ---- */

static inline void bump(uint32_t *w)
{
	__atomic_store_n(w, __atomic_load_n(w, __ATOMIC_RELAXED) + 1, __ATOMIC_RELEASE);
}

/* ---- the free ring: cells are reused in the order they were freed, so
 * that the next one is predictable (see prefetch_send) ---- */

static inline uint32_t free_peek(const ipc_queue *v)
{
	return v->freelist[v->q->free_head];
}

static inline void free_pop(ipc_queue *v)
{
	ipc_qhdr *q = v->q;
	q->free_head = q->free_head + 1 == v->max_count ? 0 : q->free_head + 1;
	q->nfree--;
}

static inline void free_push(ipc_queue *v, uint32_t cell)
{
	ipc_qhdr *q = v->q;
	uint64_t at = (uint64_t)q->free_head + q->nfree;
	v->freelist[at >= v->max_count ? at - v->max_count : at] = cell;
	q->nfree++;
}

/* ---- repair ---- */

/* Recompute everything derived from the cells and the sleeper slots.
 * Called with the lock held: after a holder died (repair = 1), when a
 * cheap consistency check fails (repair = 1), or by clear (repair = 0).
 * Cells whose fields are out of range become FREE. */
static void q_rebuild(ipc_queue *v, int repair)
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
		sift_down(v->heap, nheap, i, v->heap[i]);
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
	bump(&q->recv_seq);
	bump(&q->send_seq);
	ipc_wake_word(&q->recv_seq, -1);
	ipc_wake_word(&q->send_seq, -1);
}

static inline int q_sane(const ipc_queue *v)
{
	const ipc_qhdr *q = v->q;
	return q->count <= v->max_count && q->in_flight <= v->max_count &&
	       q->nfree <= v->max_count && q->free_head < v->max_count &&
	       (uint64_t)q->count + q->in_flight + q->nfree == v->max_count;
}

/* Take the internal lock, repairing after a dead holder.  The lock is held
 * for microseconds, so even a zero timeout waits for it a little. */
static int q_lock(ipc_queue *v, const ipc_deadline *dl, unsigned snap, ipc_error *err)
{
	int died = 0;
	int r = ipc_rlock_trylock(&v->q->lock, &died, err);
	/* Busy: the holder is done within a microsecond unless it was
	 * preempted.  Watch the lock word (reading only, so as not to steal
	 * the line from the holder) and try again when it looks free. */
	for (int i = 0; r == IPC_TIMEOUT && i < LOCK_SPINS; i++) {
		if (__atomic_load_n(&v->q->lock.m.__data.__lock, __ATOMIC_RELAXED) &
		    FUTEX_TID_MASK) {
			ipc_cpu_relax();
			continue;
		}
		r = ipc_rlock_trylock(&v->q->lock, &died, err);
	}
	if (r == IPC_TIMEOUT) {
		ipc_deadline ldl = *dl;
		int64_t now = ipc_now_ns();
		if (!ldl.forever) {
			int64_t min = now + LOCK_GRACE_NS;
			if (ldl.at_ns < min)
				ldl.at_ns = min;
		}
		/* as ipc_rlock_enter: never longer than IPC_RLOCK_BOUND_NS */
		int bounded = ldl.forever || ldl.at_ns > now + IPC_RLOCK_BOUND_NS;
		if (bounded)
			ldl = (ipc_deadline){0, now + IPC_RLOCK_BOUND_NS};
		r = ipc_rlock_lock(&v->q->lock, &ldl, snap, &died, err);
		if (r == IPC_TIMEOUT && bounded)
			return ipc_fail(
			    err, EBUSY,
			    "object busy or corrupt (an internal lock stayed held for %d s)",
			    (int)(IPC_RLOCK_BOUND_NS / 1000000000LL));
	}
	if (r != IPC_OK)
		return r;
	if (died || !q_sane(v)) {
		q_rebuild(v, 1);
		if (died)
			ipc_rlock_consistent(&v->q->lock);
	}
	return IPC_OK;
}

/* Lock, ignoring signals: for finishing what this process started.  Never
 * longer than IPC_RLOCK_BOUND_NS: a lock held that long is corrupt (or its
 * holder stopped), and hanging on it is worse than failing. */
static int q_relock(ipc_queue *v, ipc_error *err)
{
	ipc_deadline bound = ipc_rlock_bound();
	int r;
	do
		r = q_lock(v, &bound, ipc_signal_count(), err);
	while (r == IPC_INTERRUPTED || (r == IPC_TIMEOUT && !ipc_deadline_passed(&bound)));
	if (r == IPC_TIMEOUT)
		return ipc_fail(err, EBUSY,
		                "object busy or corrupt (an internal lock stayed held for %d s)",
		                (int)(IPC_RLOCK_BOUND_NS / 1000000000LL));
	return r;
}

/* For info(): wait at most IPC_RLOCK_PEEK_NS, then report busy. */
static int q_peek(ipc_queue *v, ipc_error *err)
{
	ipc_deadline dl = {0, ipc_now_ns() + IPC_RLOCK_PEEK_NS};
	int died = 0;
	int r = ipc_rlock_lock(&v->q->lock, &dl, IPC_UNINTERRUPTIBLE, &died, err);
	if (r == IPC_TIMEOUT)
		return ipc_fail(err, EBUSY, "busy (an internal lock stayed held for %d ms)",
		                (int)(IPC_RLOCK_PEEK_NS / 1000000));
	if (r != IPC_OK)
		return r;
	if (died || !q_sane(v)) {
		q_rebuild(v, 1);
		if (died)
			ipc_rlock_consistent(&v->q->lock);
	}
	return IPC_OK;
}

static inline void q_unlock(ipc_queue *v)
{
	ipc_rlock_unlock(&v->q->lock);
}

/* ---- sleepers ---- */

static int reg_waiter(ipc_qhdr *q, uint32_t kind)
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

static void unreg_waiter(ipc_qhdr *q, int slot)
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

/* Wake one sleeper of a kind, unless every registered one already has a
 * wake coming.  Lock held: a wake is never lost to a kill (a holder that
 * dies makes the next locker wake everyone). */
static inline int wake_one(uint32_t *word, uint32_t waiters, uint32_t *wakes)
{
	if (waiters <= *wakes)
		return 0;
	(*wakes)++;
	ipc_wake_word(word, 1);
	return 1;
}

/* Forget registered sleepers whose process died while asleep (they only
 * cost senders needless wake calls).  Lock held on entry and on return
 * (IPC_OK); it is dropped for the liveness checks. */
static int sweep_waiters(ipc_queue *v, ipc_error *err)
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
	if (q_relock(v, err) != IPC_OK)
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
static int maybe_sweep(ipc_queue *v, ipc_error *err)
{
	if (ipc_now_ns() - v->q->last_sweep_ns < SWEEP_EVERY_NS)
		return IPC_OK;
	return sweep_waiters(v, err);
}

/* ---- in-flight messages of dead receivers ---- */

static int reclaim_due(ipc_queue *v, int64_t every)
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
static int reclaim_dead(ipc_queue *v, ipc_error *err)
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
	if (q_relock(v, err) != IPC_OK)
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
		sift_up(v->heap, q->count, e);
		q->count++;
		q->in_flight--;
		back++;
	}
	if (back) {
		bump(&q->recv_seq);
		for (int k = 0; k < back; k++)
			wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	}
	return back;
}

/* ---- send / receive ---- */

/* Spin briefly while *word == seen, before going to sleep: the other side
 * usually acts within microseconds when both run.  How long is learnt per
 * process: a spin that pays makes the next one longer, one that does not
 * (the other side is not running: the machine is busy, or it is idle)
 * halves it, so an overloaded machine sleeps at once instead of burning
 * the CPU time the other side needs.  Returns 1 if the word changed. */
static int q_spin(const uint32_t *word, uint32_t seen)
{
	static uint32_t limit = SPIN_START;
	static long ncpu;
	if (!ncpu)
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2)
		return 0;
	for (uint32_t i = 0; i < limit; i++) {
		if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != seen) {
			if (limit < SPIN_MAX)
				limit += limit / 4 + 8;
			return 1;
		}
		ipc_cpu_relax();
	}
	limit = limit / 2 > SPIN_MIN ? limit / 2 : SPIN_MIN;
	return 0;
}

/* After unlocking: bring the lines the next operation of this kind will
 * most likely touch (written last by the other side) into our cache, off
 * the critical section.  Racy reads, used only as hints. */
static inline void prefetch_data(const ipc_queue *v, uint32_t ci, int write)
{
	const unsigned char *p = v->data + (uint64_t)ci * v->slot;
	uint64_t n = v->slot < PREFETCH_MAX ? v->slot : PREFETCH_MAX;
	for (uint64_t off = 0; off < n; off += 64) {
		if (write)
			__builtin_prefetch(p + off, 1);
		else
			__builtin_prefetch(p + off, 0);
	}
}

static inline void prefetch_send(const ipc_queue *v)
{
	uint32_t h = __atomic_load_n(&v->q->free_head, __ATOMIC_RELAXED);
	if (h >= v->max_count)
		return;
	uint32_t ci = __atomic_load_n(&v->freelist[h], __ATOMIC_RELAXED);
	if (ci >= v->max_count)
		return;
	__builtin_prefetch(&v->cells[ci], 1);
	prefetch_data(v, ci, 1);
}

static inline void prefetch_receive(const ipc_queue *v)
{
	uint32_t ci = __atomic_load_n(&v->heap[0].cell, __ATOMIC_RELAXED);
	if (ci >= v->max_count)
		return;
	__builtin_prefetch(&v->cells[ci], 1);
	prefetch_data(v, ci, 0);
}

/* Before taking the lock: when there is nothing to take (*avail == 0: no
 * message, or no free cell), wait for the other side by spinning without
 * the lock, so as not to slow it down.  Returns 1 if it spun. */
static inline int pre_spin(const uint32_t *avail, const uint32_t *word, const ipc_deadline *dl)
{
	if (__builtin_expect(__atomic_load_n(avail, __ATOMIC_RELAXED) != 0, 1))
		return 0;
	if (!dl->forever && ipc_deadline_passed(dl))
		return 0;
	uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(avail, __ATOMIC_RELAXED) != 0)
		return 0;
	q_spin(word, seen);
	return 1;
}

/* Sleep on word (lock held on entry and on return) after registering as a
 * sleeper of this kind.  Returns the wait's result or IPC_ERR. */
static int q_sleep(ipc_queue *v, uint32_t *word, uint32_t seen, uint32_t kind,
                   const ipc_deadline *dl, unsigned snap, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	int slot = reg_waiter(q, kind);
	CRASH_AT(10);
	int64_t slice = slot < 0 ? OVERFLOW_SLICE_NS : q->in_flight > 0 ? IPC_SLICE_NS : 0;
	q_unlock(v);
	int wr = ipc_wait_word(word, seen, dl, slice, snap);
	if (q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	unreg_waiter(q, slot);
	q->wakeups++;
	return wr;
}

/* Holding the lock with nothing to do yet: give up at the deadline, else spin
 * once (unlocked) or sleep on *word.  IPC_OK: the lock is held again, look
 * again (the deadline is checked on the next turn); anything else: the lock
 * is released and that is the caller's result. */
static int q_wait_turn(ipc_queue *v, uint32_t *word, uint32_t kind, int *spun,
                       const ipc_deadline *dl, unsigned snap, ipc_error *err)
{
	if (ipc_deadline_passed(dl)) {
		q_unlock(v);
		return IPC_TIMEOUT;
	}
	uint32_t seen = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	if (!*spun) {
		*spun = 1;
		q_unlock(v);
		q_spin(word, seen);
		return q_relock(v, err) == IPC_OK ? IPC_OK : IPC_ERR;
	}
	int wr = q_sleep(v, word, seen, kind, dl, snap, err);
	if (wr == IPC_ERR)
		return IPC_ERR;
	if (wr == IPC_INTERRUPTED) {
		q_unlock(v);
		return IPC_INTERRUPTED;
	}
	return IPC_OK;
}

/* A counter bumped only under the queue's lock: no RMW needed. */
static inline void count(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
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
	unsigned snap = ipc_signal_count();
	int spun = pre_spin(&q->nfree, &q->send_seq, dl), fixes = 0;
	int r = q_lock(v, dl, snap, err);
	if (r != IPC_OK)
		return r;
	for (;;) {
		if (q->nfree > 0) {
			uint32_t ci = free_peek(v);
			if (ci >= v->max_count || v->cells[ci].state != IPC_QC_FREE) {
				if (++fixes > 2)
					break;
				q_rebuild(v, 1);
				continue;
			}
			free_pop(v);
			CRASH_AT(1);
			ipc_qcell *c = &v->cells[ci];
			memcpy(v->data + ci * v->slot, msg, len);
			c->len = (uint32_t)len;
			c->prio = prio;
			c->seq = q->next_seq++;
			c->owner = 0;
			CRASH_AT(2);
			__atomic_store_n(&c->state, IPC_QC_READY, __ATOMIC_RELEASE);
			CRASH_AT(3);
			ipc_qentry e = {c->seq, prio, ci};
			sift_up(v->heap, q->count, e);
			CRASH_AT(4);
			/* receivers wait only on an empty queue */
			if (q->count++ == 0)
				bump(&q->recv_seq);
			count(&q->sent);
			if (q->recv_waiters &&
			    wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes) &&
			    maybe_sweep(v, err) != IPC_OK)
				return IPC_ERR;
			q_unlock(v);
			prefetch_send(v);
			return IPC_OK;
		}
		int wr = q_wait_turn(v, &q->send_seq, IPC_QW_SEND, &spun, dl, snap, err);
		if (wr != IPC_OK)
			return wr;
	}
	q_unlock(v);
	return ipc_fail(err, 0, "the queue is corrupt (free list keeps failing its checks)");
}

/* Take the heap's first entry; -1 when it does not match its cell. */
static int64_t heap_pop(ipc_queue *v)
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
	CRASH_AT(5);
	if (n > 0)
		sift_down(v->heap, n, 0, v->heap[n]);
	return top.cell;
}

int ipc_queue_receive(ipc_queue *v, void *buf, size_t *len, uint32_t *prio, ipc_qticket *ticket,
                      const ipc_deadline *dl, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	unsigned snap = ipc_signal_count();
	int spun = pre_spin(&q->count, &q->recv_seq, dl), fixes = 0;
	int r = q_lock(v, dl, snap, err);
	if (r != IPC_OK)
		return r;
	if (q->in_flight > 0 && q->count > 0 && reclaim_due(v, RECLAIM_BUSY_NS) &&
	    reclaim_dead(v, err) < 0)
		return IPC_ERR;
	for (;;) {
		if (q->count > 0) {
			int64_t ci = heap_pop(v);
			if (ci < 0) {
				if (++fixes > 2)
					break;
				q_rebuild(v, 1);
				continue;
			}
			CRASH_AT(11);
			count(&q->received);
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
				CRASH_AT(7);
				q->in_flight++;
			} else {
				__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
				CRASH_AT(6);
				free_push(v, (uint32_t)ci);
				/* senders wait only on a full queue */
				if (q->nfree == 1)
					bump(&q->send_seq);
				if (q->send_waiters &&
				    wake_one(&q->send_seq, q->send_waiters, &q->send_wakes) &&
				    maybe_sweep(v, err) != IPC_OK)
					return IPC_ERR;
			}
			q_unlock(v);
			prefetch_receive(v);
			return IPC_OK;
		}
		if (q->in_flight > 0 && reclaim_due(v, RECLAIM_EVERY_NS)) {
			int back = reclaim_dead(v, err);
			if (back < 0)
				return IPC_ERR;
			if (back > 0)
				continue;
		}
		int wr = q_wait_turn(v, &q->recv_seq, IPC_QW_RECV, &spun, dl, snap, err);
		if (wr != IPC_OK)
			return wr;
	}
	q_unlock(v);
	return ipc_fail(err, 0, "the queue is corrupt (heap keeps failing its checks)");
}

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
	if (q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	ipc_qcell *c = ticket_cell(v, t);
	if (c) {
		__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
		CRASH_AT(8);
		q->in_flight--;
		free_push(v, t->cell);
		bump(&q->send_seq);
		wake_one(&q->send_seq, q->send_waiters, &q->send_wakes);
	}
	q_unlock(v);
	return IPC_OK;
}

int ipc_queue_nack(ipc_queue *v, const ipc_qticket *t, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	if (q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	ipc_qcell *c = ticket_cell(v, t);
	if (c) {
		__atomic_store_n(&c->state, IPC_QC_READY, __ATOMIC_RELEASE);
		CRASH_AT(9);
		q->in_flight--;
		ipc_qentry e = {c->seq, c->prio, t->cell};
		sift_up(v->heap, q->count, e);
		q->count++;
		bump(&q->recv_seq);
		wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	}
	q_unlock(v);
	return IPC_OK;
}

int64_t ipc_queue_clear(ipc_queue *v, ipc_error *err)
{
	if (q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	int64_t removed = 0;
	for (uint32_t i = 0; i < v->max_count; i++) {
		ipc_qcell *c = &v->cells[i];
		if (c->state == IPC_QC_READY) {
			__atomic_store_n(&c->state, IPC_QC_FREE, __ATOMIC_RELEASE);
			removed++;
			CRASH_AT(12);
		}
	}
	q_rebuild(v, 0);
	q_unlock(v);
	return removed;
}

int ipc_queue_stat(ipc_queue *v, ipc_queue_stats *st, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	if (q_peek(v, err) != IPC_OK)
		return IPC_ERR;
	if (q->in_flight > 0 && reclaim_dead(v, err) < 0)
		return IPC_ERR;
	if (sweep_waiters(v, err) != IPC_OK)
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

/* ---- ipc.select hooks (src/core/select.c, docs/design.md "select protocol") ---- */

int ipc_queue_sel_arm(ipc_queue *v, int *slot, uint32_t *seen, int64_t *slice, ipc_error *err)
{
	ipc_qhdr *q = v->q;
	*slot = -1;
	if (q_relock(v, err) != IPC_OK)
		return IPC_ERR;
	if (q->count > 0) {
		q_unlock(v);
		return 1;
	}
	/* read under the lock: a send after the unlock changes it */
	*seen = __atomic_load_n(&q->recv_seq, __ATOMIC_ACQUIRE);
	*slot = reg_waiter(q, IPC_QW_RECV);
	*slice = *slot < 0 ? OVERFLOW_SLICE_NS : q->in_flight > 0 ? IPC_SLICE_NS : 0;
	q_unlock(v);
	return 0;
}

void ipc_queue_sel_disarm(ipc_queue *v, int slot)
{
	ipc_qhdr *q = v->q;
	ipc_error err;
	if (q_relock(v, &err) != IPC_OK)
		return; /* only corruption: the next sweep frees the slot once we exit */
	if (slot >= 0) {
		unreg_waiter(q, slot);
		q->wakeups++;
	}
	/* The wake we absorbed may have been meant for a plain receiver: if a
	 * message waits and other sleepers are registered, pass one on. */
	if (q->count > 0 && q->recv_waiters)
		wake_one(&q->recv_seq, q->recv_waiters, &q->recv_wakes);
	q_unlock(v);
}
