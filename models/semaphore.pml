/* Model of src/core/semaphore.c in undo mode: the count, each process's
 * holder record, the journal that lets the next locker of i roll back a
 * half-done change, and the return of a dead holder's permits.
 * docs/design.md, "Model checking", maps each step to the code.
 *
 * Each process runs sem:with (wait, critical section, post) OPS times.
 * Mutants (make model-mutants), each must be caught:
 *   MUTANT_NO_JOURNAL  changes under i are not journalled (journal() is a no-op)
 *   MUTANT_NO_REAP     dead holders' permits are not returned
 *   MUTANT_FREE_BEFORE_COMMIT  reap_holders frees the record before clearing
 *                      the journal: the bug this model found (needs MAXD=2)
 *   MUTANT_VALUE_FIRST post adds n to the value in its first step and pays
 *                      other holders in later steps: the order before the fix
 *                      (a death between steps counts a permit twice)
 *   MUTANT_NO_PAY_JOURNAL  post pays another holder (value and held, two
 *                      stores) without a journal step
 *
 * A "give" op (at most NGIVE per run) posts without waiting: one process
 * took a permit, another gives it back.  budget (ghost) is the number of
 * permits in existence; value + permits held == budget whenever i is free. */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef OPS
#define OPS 1
#endif
#ifndef MAXD
#define MAXD 2 /* a holder dies, then the process returning its permits */
#endif
#define NLOCKS 1
#define I 0
#define INIT 1  /* initial value, below max: a permit given back twice shows */
#define MAX 2
#define NSLOTS 3 /* IPC_SEM_SLOTS, scaled down */
#ifndef NGIVE
#define NGIVE 1
#endif

#include "common.pml"

/* the body (semaphore.h) */
byte value = INIT, seq, nwait;
bool j_valid;
byte j_slot, j_value, j_held;
byte waiter[NSLOTS];
byte htok[NSLOTS]; /* holder[k].token */
byte held[NSLOTS]; /* holder[k].held */

byte nin;     /* ghost: live processes between wait's return and post */
byte budget = INIT, j_budget; /* ghost: permits in existence; journalled */
byte ngive;   /* ghost: give ops begun */
bool final_ok;

#define OK 0
#define TIMEOUT 1
#define FAIL 2
#define FOREVER 0
#define TIMED 1
#define TRY 2
#define NONE 255

#define DEAD_HOLDER (DEAD(htok[0]) || DEAD(htok[1]) || DEAD(htok[2]))
/* what a slice wake (undo waits sleep in 20 ms slices) may find to act on;
 * a free permit counts only after a death (a poster killed before its wake) */
#define REPAIRABLE (DEAD_HOLDER || lk_od[I] || (deaths > 0 && value > 0))
#define POLL_BOUND (2 * MAXD + 2 * NPROC + 2)

#define SETV(x) DIE_OR(atomic { assert((x) <= MAX); value = (x) })

#define ROOM ((value <= MAX) -> (MAX - value) : 0)

/* permits held by records still owned (a freed record holds nothing) */
#define HELD ((htok[0] != 0 -> held[0] : 0) + (htok[1] != 0 -> held[1] : 0) + \
              (htok[2] != 0 -> held[2] : 0))
/* a post's store of value: the part not matched by permits held is new */
#define POSTV(x) DIE_OR(atomic { assert((x) <= MAX);                          \
	budget = budget + (((x) - value > HELD) -> ((x) - value - HELD) : 0);  \
	assert(budget <= MAX); value = (x) })

inline journal(slot)
{
#ifndef MUTANT_NO_JOURNAL
	DIE_OR(j_slot = slot);
	DIE_OR(atomic { j_value = value; j_budget = budget });
	if
	:: slot != NONE -> DIE_OR(j_held = held[slot])
	:: else -> DIE_OR(j_held = 0)
	fi;
	DIE_OR(j_valid = 1)
#else
	skip
#endif
}

#define commit() DIE_OR(j_valid = 0)

inline reap_holders() /* sets back */
{
	back = 0;
#ifndef MUTANT_NO_REAP
	kk = 0;
	do
	:: kk < NSLOTS ->
		if
		:: DEAD(htok[kk]) ->
			journal(kk);
			give = held[kk];
			if
			:: give > ROOM -> give = ROOM
			:: else
			fi;
			SETV(value + give);
			DIE_OR(held[kk] = 0);
#ifdef MUTANT_FREE_BEFORE_COMMIT /* the order before the fix */
			DIE_OR(htok[kk] = 0);
			commit();
#else
			commit();
			DIE_OR(htok[kk] = 0);
#endif
			back = back + give
		:: else
		fi;
		kk++
	:: else -> break
	od
#endif
}

inline reap_waiters()
{
	kk = 0;
	do
	:: kk < NSLOTS ->
		if
		:: DEAD(waiter[kk]) -> DIE_OR(waiter[kk] = 0)
		:: else
		fi;
		kk++
	:: else -> break
	od;
	cnt = (waiter[0] != 0) + (waiter[1] != 0) + (waiter[2] != 0);
	DIE_OR(nwait = cnt)
}

inline lock_i()
{
	idied = 0;
	RL_LOCK(I, idied);
	if
	:: idied -> /* repair_i */
		if
		:: j_valid ->
			SETV(j_value);
			budget = j_budget;
			if
			:: j_slot != NONE -> DIE_OR(held[j_slot] = j_held)
			:: else
			fi;
			commit()
		:: else
		fi;
		reap_holders();
		reap_waiters();
		RL_CONSISTENT(I)
	:: else
	fi;
	/* i is ours and repaired: no change is half done */
	assert(value + HELD == budget)
}

#define slot_find(tab, N)                                                      \
	k = 0;                                                                 \
	do                                                                     \
	:: k < N && tab[k] == tok -> break                                     \
	:: k < N && tab[k] != tok -> k++                                       \
	:: k == N -> k = NONE; break                                           \
	od

/* ipc_slot_claim; for holder records the memset clears held first */
#define slot_claim(tab, N, CLEAR)                                              \
	k = id % N;                                                            \
	cnt = 0;                                                               \
	do                                                                     \
	:: cnt < N && tab[k] == 0 -> break                                     \
	:: cnt < N && tab[k] != 0 -> k = (k + 1) % N; cnt++                    \
	:: cnt == N -> k = NONE; break                                         \
	od;                                                                    \
	if                                                                     \
	:: k != NONE -> CLEAR; DIE_OR(tab[k] = tok)                            \
	:: else                                                                \
	fi

inline wake()
{
	if
	:: nwait != 0 -> DIE_OR(seq++)
	:: else
	fi
}

inline try_take() /* sets r */
{
	r = TIMEOUT;
	if
	:: value > 0 ->
		lock_i();
		if
		:: value > 0 ->
			slot_find(htok, NSLOTS);
			if
			:: k == NONE -> slot_claim(htok, NSLOTS, DIE_OR(held[k] = 0))
			:: else
			fi;
			if
			:: k == NONE ->
				reap_holders();
				slot_claim(htok, NSLOTS, DIE_OR(held[k] = 0))
			:: else
			fi;
			if
			:: k == NONE -> r = FAIL
			:: else ->
				journal(k);
				DIE_OR(held[k]++);
				SETV(value - 1);
				commit();
				r = OK
			fi
		:: else
		fi;
		RL_UNLOCK(I)
	:: else
	fi
}

inline set_waiting(on)
{
	lock_i();
	if
	:: on ->
		slot_claim(waiter, NSLOTS, skip);
		if
		:: k != NONE -> DIE_OR(nwait++)
		:: else
		fi
	:: else ->
		slot_find(waiter, NSLOTS);
		if
		:: k != NONE -> DIE_OR(waiter[k] = 0); DIE_OR(nwait--)
		:: else
		fi
	fi;
	RL_UNLOCK(I)
}

inline reap_all()
{
	lock_i();
	reap_holders();
	reap_waiters();
	RL_UNLOCK(I);
	if
	:: back > 0 -> wake()
	:: else
	fi
}

inline sem_wait() /* ipc_sem_wait; sets r */
{
	try_take();
	if
	:: r == TIMEOUT && dl == TRY -> reap_all(); try_take()
	:: r == TIMEOUT && dl != TRY ->
		set_waiting(1);
		polls = 0;
		do
		:: s0 = seq;
			try_take();
			if
			:: r != TIMEOUT -> break
			:: else
			fi;
			/* ipc_spin_word / ipc_wait_word(&b->seq, s0, dl, IPC_SLICE_NS) */
			if
			:: seq != s0 -> r = OK
			:: REPAIRABLE -> r = OK; polls++;
				/* a sleeper that keeps waking to nothing is stuck */
				assert(polls <= POLL_BOUND)
			:: dl == TIMED -> r = TIMEOUT
			:: DIE_NOW
			fi;
			if
			:: r != OK -> break
			:: else
			fi;
			if
			:: seq == s0 -> reap_all()
			:: else
			fi
		od;
		if
		:: r == TIMEOUT -> try_take()
		:: else
		fi;
		set_waiting(0)
	:: else
	fi
}

inline sem_post() /* ipc_sem_post(1); sets r */
{
	lock_i();
	if
	:: 1 > ROOM -> RL_UNLOCK(I); r = FAIL
	:: else ->
		slot_find(htok, NSLOTS);
		left = 1;
#ifdef MUTANT_VALUE_FIRST
		journal(k);
		POSTV(value + 1);
		if
		:: k != NONE && held[k] > 0 -> DIE_OR(held[k]--); left = 0
		:: else
		fi;
		commit();
#else
		/* step 1: our own permit, value and held in one journal step */
		if
		:: k != NONE && held[k] > 0 ->
			journal(k);
			POSTV(value + 1);
			DIE_OR(held[k]--);
			left = 0;
			commit()
		:: else
		fi;
#endif
		/* then other holders', one journal step each */
		kk = 0;
		do
		:: kk < NSLOTS && left > 0 ->
			if
			:: kk != k && htok[kk] != 0 && held[kk] > 0 ->
#ifndef MUTANT_NO_PAY_JOURNAL
				journal(kk);
#endif
#ifndef MUTANT_VALUE_FIRST
				POSTV(value + 1);
#endif
				DIE_OR(held[kk]--);
				left = 0;
#ifndef MUTANT_NO_PAY_JOURNAL
				commit()
#endif
			:: else
			fi;
			kk++
		:: else -> break
		od;
#ifndef MUTANT_VALUE_FIRST
		/* the rest is new: one store */
		if
		:: left > 0 -> POSTV(value + left)
		:: else
		fi;
#endif
		RL_UNLOCK(I);
		back = 1;
		wake();
		r = OK
	fi
}

proctype P(byte id; bool final)
{
	byte tok, r, k, kk, cnt, give, back, s0, polls, dl, left;
	bool idied;
	byte ops = 0;
	bool in, giver;

restart:
	new_token();
	do
	:: (final && ops == 0) || (!final && ops < OPS) ->
		ops++;
		if
		:: final -> dl = FOREVER
		:: !final -> dl = FOREVER
		:: !final -> dl = TIMED
		:: !final -> dl = TRY
		:: atomic { !final && ngive < NGIVE -> ngive++; giver = 1 }
		fi;
		if
		:: giver -> r = FAIL; sem_post(); giver = 0; r = FAIL
		:: else -> sem_wait()
		fi;
		if
		:: r == OK ->
			/* a give may have paid for a permit still in use */
			atomic { nin++; in = 1; assert(nin <= INIT + ngive) };
			atomic { nin--; in = 0 };
			sem_post();
			assert(r == OK)
		:: else
		fi;
		d_step { r = 0; k = 0; kk = 0; cnt = 0; give = 0; back = 0; s0 = 0; polls = 0; idied = 0; left = 0 }
	:: else -> break
	od;
	if
	:: final -> /* ipc_sem_value: reap, then the count */
		reap_all();
		final_ok = 1
	:: else
	fi;
	goto done;
died:
	atomic {
		kernel_release();
		alive[tok] = 0;
		if
		:: in -> nin--; in = 0
		:: else
		fi;
		r = 0; k = 0; kk = 0; cnt = 0; give = 0; back = 0; s0 = 0; polls = 0; idied = 0; left = 0;
		giver = 0
	}
	if
	:: goto restart
	:: skip
	fi;
done:
	skip
}

init
{
	byte i;
	atomic {
		i = 0;
		do
		:: i < NPROC -> run P(i, 0); i++
		:: else -> break
		od
	}
	_nr_pr == 1;
	final_phase = 1;
	assert(nin == 0);
	/* the count is back to its initial value once a new process has
	 * taken and posted a permit and reaped the dead */
	run P(NPROC, 1);
	_nr_pr == 1;
	assert(final_ok);
	assert(value == budget && value + HELD == budget && !j_valid && !lk_od[I] && lk_own[I] == 0)
}
