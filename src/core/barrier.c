#include "barrier.h"

#include "failpoint.h"
#include "procid.h"
#include "rlock.h"
#include "signals.h"
#include "wait.h"

#include <string.h>

/* One arrival.  It counts only while token != 0 and gen == the barrier's
 * current gen: completing a round (bumping gen) retires every arrival of
 * that round at once, whatever the slots still say. */
typedef struct bar_slot {
	uint64_t token;
	uint32_t gen;
	uint32_t pad;
} bar_slot;

typedef struct bar_body {
	ipc_rlock lock;
	uint32_t gen;         /* futex word: the current round */
	uint32_t hi;          /* every slot at index >= hi is free (scans stop there) */
	int64_t last_reap_ns; /* throttles the waiters' liveness checks */
	_Alignas(64) bar_slot slots[IPC_BARRIER_SLOTS];
} bar_body;

static int bar_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	if (params[0] == 0)
		return ipc_fail(err, 0, "opts.count is required to create a barrier");
	if (params[0] > IPC_BARRIER_SLOTS)
		return ipc_fail(err, 0, "count %llu out of range (1..%d)",
		                (unsigned long long)params[0], IPC_BARRIER_SLOTS);
	*body_size = IPC_ALIGN_UP(sizeof(bar_body), 64);
	return IPC_OK;
}

static int bar_init(void *body, const uint64_t *params, ipc_error *err)
{
	(void)params;
	return ipc_rlock_init(&((bar_body *)body)->lock, err);
}

const ipc_type_ops ipc_barrier_ops = {IPC_T_BARRIER, "barrier", 0, bar_layout, bar_init, NULL};

static uint32_t load32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static void store32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}
static uint64_t load64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}
static void store64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

/* hi comes from shared memory: clamp it before using it as a bound. */
static int limit(bar_body *b)
{
	uint32_t h = load32(&b->hi);
	return h > IPC_BARRIER_SLOTS ? IPC_BARRIER_SLOTS : (int)h;
}

static int current(const bar_slot *s, uint32_t gen)
{
	return load64(&s->token) != 0 && load32(&s->gen) == gen;
}

/* Clear the slots of finished rounds. */
static void drop_stale(bar_body *b, uint32_t gen)
{
	for (int i = 0, n = limit(b); i < n; i++) {
		bar_slot *s = &b->slots[i];
		if (load64(&s->token) && load32(&s->gen) != gen)
			store64(&s->token, 0);
	}
}

/* The previous lock holder died inside.  Possible states and their repair:
 *  - an arrival half-written (gen stored, token not): the slot is still
 *    free; token stored: a live or dead party, handled by liveness checks;
 *  - the last party bumped gen and died before clearing the old round's
 *    slots or waking the waiters: the old slots are stale by their gen
 *    (drop them) and the waiters are woken here (they also notice within a
 *    slice);
 *  - a withdrawal or a reap is one store: nothing to do. */
static void bar_repair(bar_body *b)
{
	store32(&b->hi, IPC_BARRIER_SLOTS);
	drop_stale(b, load32(&b->gen));
	uint32_t hi = 0;
	for (uint32_t i = 0; i < IPC_BARRIER_SLOTS; i++)
		if (load64(&b->slots[i].token))
			hi = i + 1;
	store32(&b->hi, hi);
	ipc_wake_word(&b->gen, -1);
}

static void bar_repair_cb(void *ctx)
{
	bar_repair(ctx);
}

static int bar_lock(bar_body *b, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	return ipc_rlock_enter(&b->lock, dl, sigsnap, bar_repair_cb, b, err);
}

static int bar_lock_always(bar_body *b, ipc_error *err)
{
	return ipc_lock_always(&b->lock, bar_repair_cb, b, err);
}

static void unlock(bar_body *b)
{
	ipc_rlock_unlock(&b->lock);
}

/* Under the lock: forget the arrivals of dead parties; count the rest. */
static int reap_dead(bar_body *b, uint32_t gen)
{
	int n = 0;
	ipc_token me = ipc_self_token();
	for (int i = 0, lim = limit(b); i < lim; i++) {
		bar_slot *s = &b->slots[i];
		if (!current(s, gen))
			continue;
		uint64_t t = load64(&s->token);
		if (t != me && !ipc_token_alive(t)) {
			store64(&s->token, 0);
			continue;
		}
		n++;
	}
	__atomic_store_n(&b->last_reap_ns, ipc_now_ns(), __ATOMIC_RELAXED);
	return n;
}

static int count_current(bar_body *b, uint32_t gen)
{
	int n = 0;
	for (int i = 0, lim = limit(b); i < lim; i++)
		n += current(&b->slots[i], gen);
	return n;
}

/* A waiter's periodic check (at most once per slice over all waiters):
 * dead arrivals must not count toward the round. */
static void maybe_reap(bar_body *b)
{
	int64_t last = __atomic_load_n(&b->last_reap_ns, __ATOMIC_RELAXED);
	if (ipc_now_ns() - last < IPC_SLICE_NS)
		return;
	ipc_error e;
	if (ipc_rlock_try_enter(&b->lock, bar_repair_cb, b, &e) != IPC_OK)
		return;
	reap_dead(b, load32(&b->gen));
	unlock(b);
}

typedef struct round_wait {
	bar_body *b;
	uint32_t gen;
} round_wait;

/* The round we arrived in completed: gen moved on. */
static int round_done(void *ctx)
{
	round_wait *rw = ctx;
	return load32(&rw->b->gen) != rw->gen;
}

static void round_slice(void *ctx)
{
	maybe_reap(((round_wait *)ctx)->b);
}

int ipc_barrier_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, int *is_last,
                     ipc_error *err)
{
	bar_body *b = seg->body;
	int count = (int)seg->hdr->params[0];
	*is_last = 0;
	int r = bar_lock(b, dl, sigsnap, err);
	if (r != IPC_OK)
		return r;
	uint32_t g = load32(&b->gen);
	int n = count_current(b, g);
	if (n > 0 && n + 1 >= count)
		n = reap_dead(b, g);
	if (n + 1 >= count) {
		/* Last: the gen bump is the commit point of the round. */
		store32(&b->gen, g + 1);
		ipc_failpoint("barrier.completed");
		drop_stale(b, g + 1);
		store32(&b->hi, 0); /* every slot is free now */
		unlock(b);
		if (n > 0) /* nobody else arrived (count 1): no one to wake */
			ipc_wake_word(&b->gen, -1);
		*is_last = 1;
		return IPC_OK;
	}
	if (ipc_deadline_left(dl) <= 0) {
		unlock(b);
		return IPC_TIMEOUT;
	}
	bar_slot *s = NULL;
	int i = 0;
	for (; i < IPC_BARRIER_SLOTS && !s; i++)
		if (!current(&b->slots[i], g))
			s = &b->slots[i];
	if (!s) {
		unlock(b);
		return ipc_fail(err, 0, "barrier \"%s\": no free arrival slot (corrupt?)",
		                seg->name);
	}
	/* raise hi before the token appears (i is one past the slot) */
	if ((uint32_t)i > load32(&b->hi))
		store32(&b->hi, (uint32_t)i);
	/* free it first: a stale token with the new gen would be a phantom */
	store64(&s->token, 0);
	store32(&s->gen, g);
	store64(&s->token, ipc_self_token());
	ipc_failpoint("barrier.arrived");
	unlock(b);

	round_wait rw = {b, g};
	ipc_wait_spec ws = {&b->gen, round_done, round_slice, &rw, IPC_SLICE_NS};
	r = ipc_wait_until(&ws, dl, sigsnap);
	if (r == IPC_OK)
		return IPC_OK;
	/* Timed out or interrupted: withdraw, unless the round completed
	 * meanwhile (then the wait succeeded). */
	if (bar_lock_always(b, err) != IPC_OK) {
		if (load32(&b->gen) == g)
			store64(&s->token, 0);
		return IPC_ERR;
	}
	int done = load32(&b->gen) != g;
	if (!done && load64(&s->token) == ipc_self_token())
		store64(&s->token, 0);
	unlock(b);
	return done ? IPC_OK : r;
}

int ipc_barrier_info(ipc_segment *seg, ipc_barrier_state *st, ipc_error *err)
{
	bar_body *b = seg->body;
	memset(st, 0, sizeof *st);
	st->count = (int)seg->hdr->params[0];
	if (ipc_rlock_enter_peek(&b->lock, bar_repair_cb, b, err) != IPC_OK)
		return IPC_ERR;
	uint32_t g = load32(&b->gen);
	reap_dead(b, g);
	for (int i = 0, lim = limit(b); i < lim; i++)
		if (current(&b->slots[i], g))
			st->pids[st->arrived++] = IPC_TOKEN_PID(load64(&b->slots[i].token));
	st->round = g;
	unlock(b);
	return IPC_OK;
}
