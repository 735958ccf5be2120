#include "event.h"

#include "failpoint.h"
#include "procid.h"
#include "rlock.h"
#include "signals.h"
#include "wait.h"

#include <string.h>

enum { SLOT_WAITING = 1, SLOT_GRANTED = 2 };

/* A registered waiter.  A slot is free while token == 0; it is claimed by
 * writing word and seq first and the token last. */
typedef struct ev_slot {
	uint64_t token; /* the waiter's ipc_token, 0 = free */
	uint64_t seq;   /* arrival order (oldest first) */
	uint32_t word;  /* futex word: SLOT_WAITING / SLOT_GRANTED (auto) */
	uint32_t pad;
} ev_slot;

typedef struct ev_body {
	ipc_rlock lock;
	/* bit 0: set; bits 1..31: generation, bumped by every manual set that
	 * turns the flag on.  Manual waiters sleep on this word. */
	uint32_t state;
	uint32_t used; /* occupied slots (a hint; recounted on repair) */
	uint64_t next_seq;
	/* auto-reset sets, for rates (ipcsh top), under lock; a manual event
	 * counts its sets (clear -> set) in the generation of `state` */
	uint64_t n_sets;
	_Alignas(64) ev_slot slots[IPC_EVENT_SLOTS];
} ev_body;

static int ev_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	if (params[0] > 1 || params[1] > 1)
		return ipc_fail(err, 0, "bad event parameters");
	*body_size = IPC_ALIGN_UP(sizeof(ev_body), 64);
	return IPC_OK;
}

static int ev_init(void *body, const uint64_t *params, ipc_error *err)
{
	ev_body *b = body;
	b->state = params[1] ? 1u : 0u;
	b->next_seq = 1;
	return ipc_rlock_init(&b->lock, err);
}

const ipc_type_ops ipc_event_ops = {IPC_T_EVENT, "event", 0, ev_layout, ev_init, NULL};

static ev_body *body_of(ipc_segment *seg)
{
	return seg->body;
}
static int is_auto(ipc_segment *seg)
{
	return seg->hdr->params[0] != 0;
}

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

/* The previous lock holder died inside a critical section.  Every single
 * store in those sections leaves a valid state except:
 *  - `used` may be off by one (died between the slot store and the count
 *    update): recount it from the slots;
 *  - a set may have granted a slot and died before waking it: wake every
 *    granted slot (a spurious wake is harmless);
 *  - a slot word outside {WAITING, GRANTED}: only by corruption; reset it. */
static void ev_repair(ev_body *b)
{
	uint32_t n = 0;
	for (int i = 0; i < IPC_EVENT_SLOTS; i++) {
		ev_slot *s = &b->slots[i];
		if (!load64(&s->token))
			continue;
		n++;
		uint32_t w = load32(&s->word);
		if (w == SLOT_GRANTED)
			ipc_wake_word(&s->word, 1);
		else if (w != SLOT_WAITING)
			store32(&s->word, SLOT_WAITING);
	}
	store32(&b->used, n);
	ipc_wake_word(&b->state, -1);
}

static void ev_repair_cb(void *ctx)
{
	ev_repair(ctx);
}

static int ev_lock(ev_body *b, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	return ipc_rlock_enter(&b->lock, dl, sigsnap, ev_repair_cb, b, err);
}

/* For clean-up after a wait: ignores signals (the lock is held briefly). */
static int ev_lock_always(ev_body *b, ipc_error *err)
{
	return ipc_lock_always(&b->lock, ev_repair_cb, b, err);
}

static void unlock(ev_body *b)
{
	ipc_rlock_unlock(&b->lock);
}

static void free_slot(ev_body *b, ev_slot *s)
{
	store64(&s->token, 0);
	uint32_t u = load32(&b->used);
	store32(&b->used, u ? u - 1 : 0);
}

/* Under the lock: free the slots of dead waiters.  A dead waiter that had
 * already been granted a set consumed it (see the design notes). */
static void reap_dead(ev_body *b)
{
	for (int i = 0; i < IPC_EVENT_SLOTS; i++) {
		ev_slot *s = &b->slots[i];
		uint64_t t = load64(&s->token);
		if (t && !ipc_token_alive(t))
			free_slot(b, s);
	}
}

/* Under the lock: claim a slot for this process. */
static int claim_slot(ipc_segment *seg, ev_body *b, ev_slot **out, ipc_error *err)
{
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < IPC_EVENT_SLOTS; i++) {
			ev_slot *s = &b->slots[i];
			if (load64(&s->token))
				continue;
			store32(&s->word, SLOT_WAITING);
			s->seq = b->next_seq++;
			store64(&s->token, ipc_self_token());
			ipc_failpoint("event.claim");
			store32(&b->used, load32(&b->used) + 1);
			*out = s;
			return IPC_OK;
		}
		reap_dead(b);
	}
	return ipc_fail(err, 0, "event \"%s\": too many waiters (%d live processes wait already)",
	                seg->name, IPC_EVENT_SLOTS);
}

/* Under the lock (auto reset): hand one set to the oldest live waiter not
 * yet granted.  Returns 1 if one was granted, 0 if none waits. */
static int grant_one(ev_body *b)
{
	for (;;) {
		ev_slot *best = NULL;
		uint64_t best_seq = 0;
		for (int i = 0; i < IPC_EVENT_SLOTS; i++) {
			ev_slot *s = &b->slots[i];
			if (!load64(&s->token) || load32(&s->word) != SLOT_WAITING)
				continue;
			if (!best || s->seq < best_seq) {
				best = s;
				best_seq = s->seq;
			}
		}
		if (!best)
			return 0;
		if (!ipc_token_alive(load64(&best->token))) {
			free_slot(b, best);
			continue;
		}
		store32(&best->word, SLOT_GRANTED);
		ipc_failpoint("event.granted");
		ipc_wake_word(&best->word, 1);
		return 1;
	}
}

int ipc_event_set(ipc_segment *seg, unsigned sigsnap, ipc_error *err)
{
	ev_body *b = body_of(seg);
	if (!is_auto(seg)) {
		uint32_t w = load32(&b->state);
		for (;;) {
			if (w & 1)
				return IPC_OK;
			if (__atomic_compare_exchange_n(&b->state, &w, (w + 2) | 1u, 0,
			                                __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
				break;
		}
		ipc_failpoint("event.manual_set");
		/* Pairs with the waiter's "register, then read state". */
		if (load32(&b->used))
			ipc_wake_word(&b->state, -1);
		return IPC_OK;
	}
	ipc_deadline never = ipc_deadline_never();
	int r = ev_lock(b, &never, sigsnap, err);
	if (r != IPC_OK)
		return r;
	if (!load32(&b->used) || !grant_one(b))
		__atomic_fetch_or(&b->state, 1u, __ATOMIC_SEQ_CST);
	__atomic_store_n(&b->n_sets, b->n_sets + 1, __ATOMIC_RELAXED);
	unlock(b);
	return IPC_OK;
}

void ipc_event_clear(ipc_segment *seg)
{
	__atomic_fetch_and(&body_of(seg)->state, ~1u, __ATOMIC_SEQ_CST);
}

int ipc_event_is_set(ipc_segment *seg)
{
	return (int)(load32(&body_of(seg)->state) & 1);
}

/* Take the kept set of an auto-reset event, if there is one. */
static int take_flag(ev_body *b)
{
	uint32_t w = load32(&b->state);
	while (w & 1) {
		if (__atomic_compare_exchange_n(&b->state, &w, w & ~1u, 0, __ATOMIC_SEQ_CST,
		                                __ATOMIC_SEQ_CST))
			return 1;
	}
	return 0;
}

/* After a wait: give the slot back.  Returns 1 when the slot had been
 * granted (auto reset: the wait succeeded after all). */
static int leave_slot(ev_body *b, ev_slot *s, ipc_error *err)
{
	int granted = 0;
	ipc_token me = ipc_self_token();
	if (ev_lock_always(b, err) != IPC_OK) {
		/* cannot happen short of corruption; still never leave a trace */
		if (load64(&s->token) == me)
			store64(&s->token, 0);
		return IPC_ERR;
	}
	if (load64(&s->token) == me) {
		granted = load32(&s->word) == SLOT_GRANTED;
		free_slot(b, s);
	}
	unlock(b);
	return granted;
}

/* Auto reset: our slot's own word turns GRANTED when a set is handed to
 * us; anything else but WAITING (or our token gone) is corruption. */
typedef struct auto_wait {
	ev_slot *s;
	ipc_token me;
	int corrupt;
} auto_wait;

static int auto_ready(void *ctx)
{
	auto_wait *a = ctx;
	uint32_t w = load32(&a->s->word);
	if (w == SLOT_GRANTED)
		return 1;
	if (w != SLOT_WAITING || load64(&a->s->token) != a->me) {
		a->corrupt = 1; /* never spin or sleep on it */
		return IPC_ERR;
	}
	return 0;
}

static int wait_auto(ipc_segment *seg, ev_body *b, const ipc_deadline *dl, unsigned sigsnap,
                     ipc_error *err)
{
	if (take_flag(b))
		return IPC_OK;
	if (ipc_deadline_left(dl) <= 0)
		return IPC_TIMEOUT;
	int r = ev_lock(b, dl, sigsnap, err);
	if (r != IPC_OK)
		return r;
	if (take_flag(b)) {
		unlock(b);
		return IPC_OK;
	}
	ev_slot *s;
	r = claim_slot(seg, b, &s, err);
	unlock(b);
	if (r != IPC_OK)
		return r;
	auto_wait a = {s, ipc_self_token(), 0};
	ipc_wait_spec ws = {&s->word, auto_ready, NULL, &a, IPC_SLICE_NS};
	r = ipc_wait_until(&ws, dl, sigsnap);
	int g = leave_slot(b, s, err);
	if (a.corrupt)
		return ipc_fail(err, 0, "event \"%s\" is corrupt (waiter slot changed)", seg->name);
	if (g < 0)
		return IPC_ERR;
	/* Granted before we withdrew: the set is ours, even on a timeout or a
	 * signal (the caller then sees true; Lua raises the interrupt next). */
	return g ? IPC_OK : r;
}

/* Manual reset: passed when set now, or set (and maybe cleared) since the
 * wait began (the generation moved). */
typedef struct manual_wait {
	ev_body *b;
	uint32_t w0;
} manual_wait;

static int manual_ready(void *ctx)
{
	manual_wait *m = ctx;
	uint32_t w = load32(&m->b->state);
	return (w & 1) || (w >> 1) != (m->w0 >> 1);
}

static int wait_manual(ipc_segment *seg, ev_body *b, const ipc_deadline *dl, unsigned sigsnap,
                       ipc_error *err)
{
	uint32_t w0 = load32(&b->state);
	if (w0 & 1)
		return IPC_OK;
	if (ipc_deadline_left(dl) <= 0)
		return IPC_TIMEOUT;
	int r = ev_lock(b, dl, sigsnap, err);
	if (r != IPC_OK)
		return r;
	ev_slot *s;
	r = claim_slot(seg, b, &s, err);
	unlock(b);
	if (r != IPC_OK)
		return r;
	/* registered (so set() wakes us), then the state is read */
	manual_wait m = {b, w0};
	ipc_wait_spec ws = {&b->state, manual_ready, NULL, &m, IPC_SLICE_NS};
	r = ipc_wait_until(&ws, dl, sigsnap);
	if (leave_slot(b, s, err) < 0)
		return IPC_ERR;
	return r;
}

int ipc_event_wait(ipc_segment *seg, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err)
{
	if (is_auto(seg))
		return wait_auto(seg, body_of(seg), dl, sigsnap, err);
	return wait_manual(seg, body_of(seg), dl, sigsnap, err);
}

int ipc_event_info(ipc_segment *seg, ipc_event_state *st, ipc_error *err)
{
	ev_body *b = body_of(seg);
	memset(st, 0, sizeof *st);
	st->auto_reset = is_auto(seg);
	if (ipc_rlock_enter_peek(&b->lock, ev_repair_cb, b, err) != IPC_OK)
		return IPC_ERR;
	reap_dead(b);
	for (int i = 0; i < IPC_EVENT_SLOTS; i++) {
		ev_slot *s = &b->slots[i];
		uint64_t t = load64(&s->token);
		if (t && (!st->auto_reset || load32(&s->word) == SLOT_WAITING))
			st->pids[st->waiters++] = IPC_TOKEN_PID(t);
	}
	st->is_set = (int)(load32(&b->state) & 1);
	st->sets =
	    st->auto_reset ? __atomic_load_n(&b->n_sets, __ATOMIC_RELAXED) : load32(&b->state) >> 1;
	unlock(b);
	return IPC_OK;
}

/* ---- ipc.select hooks (src/core/select.c, docs/design.md "select protocol") ---- */

uint32_t ipc_event_sel_start(ipc_segment *seg)
{
	return load32(&body_of(seg)->state);
}

int ipc_event_sel_passed(ipc_segment *seg, uint32_t w0)
{
	uint32_t w = load32(&body_of(seg)->state);
	return (w & 1) || (!is_auto(seg) && (w >> 1) != (w0 >> 1));
}

int ipc_event_sel_arm(ipc_segment *seg, uint32_t w0, void **ref, uint32_t **word, uint32_t *seen,
                      int64_t *slice, ipc_error *err)
{
	ev_body *b = body_of(seg);
	*ref = NULL;
	if (ipc_event_sel_passed(seg, w0))
		return 1;
	if (ev_lock_always(b, err) != IPC_OK)
		return IPC_ERR;
	if (ipc_event_sel_passed(seg, w0)) {
		unlock(b);
		return 1;
	}
	ev_slot *s;
	int r = claim_slot(seg, b, &s, err);
	unlock(b);
	if (r != IPC_OK)
		return r;
	*ref = s;
	if (is_auto(seg)) { /* a set is handed to our slot's own word */
		*word = &s->word;
		*seen = SLOT_WAITING;
		*slice = IPC_SLICE_NS;
		return 0;
	}
	/* manual: slot claimed (so set wakes), then the state read */
	*word = &b->state;
	*seen = load32(&b->state);
	*slice = 0;
	if (ipc_event_sel_passed(seg, w0)) {
		ipc_event_sel_disarm(seg, s);
		*ref = NULL;
		return 1;
	}
	return 0;
}

void ipc_event_sel_disarm(ipc_segment *seg, void *ref)
{
	ev_body *b = body_of(seg);
	ev_slot *s = ref;
	ipc_error err;
	if (!s)
		return;
	if (ev_lock_always(b, &err) != IPC_OK) {
		if (load64(&s->token) == ipc_self_token())
			store64(&s->token, 0);
		return;
	}
	if (load64(&s->token) == ipc_self_token()) {
		int granted = is_auto(seg) && load32(&s->word) == SLOT_GRANTED;
		free_slot(b, s);
		/* A set granted to us is given back, as if set() ran now: to the
		 * oldest other waiter, else kept as the flag.  The selector then
		 * takes it like anyone else, or leaves it for them. */
		if (granted && (!load32(&b->used) || !grant_one(b)))
			__atomic_fetch_or(&b->state, 1u, __ATOMIC_SEQ_CST);
	}
	unlock(b);
}
