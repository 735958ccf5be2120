/* Model of src/core/mutex.c: the exclusive robust lock w, the shared-holder
 * slots under the internal lock i, the writer's drain, the lock-free waiter
 * registration (a CAS on a slot's token) and the repairs (repair_w,
 * repair_i).  The robust locks are common.pml's abstraction; the lock word
 * under them is models/rlock.pml.  docs/design.md, "Model checking",
 * maps each step to the code.
 *
 * Mutants (make model-mutants), each must be caught:
 *   MUTANT_NO_REPAIR   take_w ignores EOWNERDEAD (no repair_w, no consistent)
 *   MUTANT_EARLY_W     lock_shared releases w before its reader slot is taken
 *   MUTANT_NO_DRAIN    an exclusive locker does not wait for readers
 *   MUTANT_NO_REAP     dead readers' slots are never reaped
 *   MUTANT_NO_WAKE     the last reader out does not bump rseq
 *   MUTANT_RACY_CLAIM  a waiter slot is claimed by a load and a store, not
 *                      a CAS (two waiters can take one slot) */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef OPS
#define OPS 2
#endif
#define NLOCKS 2
#define W 0
#define I 1
#define NREADERS 2 /* IPC_MUTEX_READERS, scaled down so the "full" path runs */
#define NWAITERS 3 /* IPC_MUTEX_WAITERS */

#include "common.pml"

/* the body (mutex.h) */
byte owner, drain_waiter, readers, rseq;
byte reader[NREADERS];
byte waiter[NWAITERS];

/* ghost: processes between lock's return and unlock (the critical section) */
byte nex, nsh;
bool final_ok;

#define OK 0
#define TIMEOUT 1
/* deadlines: forever, finite (may expire at any wait), zero (try) */
#define FOREVER 0
#define TIMED 1
#define TRY 2
#define NONE 255

/* Something a slice wake (or the 1 s safety net of ipc_wait_word) would
 * repair.  A sleeper wakes on its word changing, or when this holds: a wake
 * that could change nothing is a stutter step and is left out, so a lost
 * wake-up shows as a blocked process (an invalid end state). */
#define DEAD_READER (DEAD(reader[0]) || DEAD(reader[1]))
#define REPAIRABLE (DEAD_READER || lk_od[I])

/* ipc_slot_reap + ipc_slot_count + the rseq bump (reap_readers) */
inline reap_readers()
{
#ifndef MUTANT_NO_REAP
	kk = 0;
	do
	:: kk < NREADERS ->
		if
		:: DEAD(reader[kk]) -> DIE_OR(reader[kk] = 0)
		:: else
		fi;
		kk++
	:: else -> break
	od;
#endif
	cnt = (reader[0] != 0) + (reader[1] != 0);
	DIE_OR(readers = cnt);
	if
	:: cnt == 0 -> DIE_OR(rseq++)
	:: else
	fi
}

/* count_waiters (info): a dead waiter's slot is freed by a CAS from its
 * token, so a live claim is never undone */
inline count_waiters()
{
	kk = 0;
	cnt = 0;
	do
	:: kk < NWAITERS ->
		if
		:: DEAD(waiter[kk]) ->
			DIE_OR(atomic { if :: DEAD(waiter[kk]) -> waiter[kk] = 0 :: else fi })
		:: LIVE(waiter[kk]) -> cnt++
		:: else
		fi;
		kk++
	:: else -> break
	od
}

/* lock_i: ipc_rlock_enter(&b->i, never, ..., repair_i) */
inline lock_i()
{
	idied = 0;
	RL_LOCK(I, idied);
	if
	:: idied -> reap_readers(); RL_CONSISTENT(I)
	:: else
	fi
}

/* ipc_slot_claim: the first free slot from id % N */
#define slot_claim(tab, N)                                                     \
	k = id % N;                                                            \
	cnt = 0;                                                               \
	do                                                                     \
	:: cnt < N && tab[k] == 0 -> break                                     \
	:: cnt < N && tab[k] != 0 -> k = (k + 1) % N; cnt++                    \
	:: cnt == N -> k = NONE; break                                         \
	od;                                                                    \
	if                                                                     \
	:: k != NONE -> DIE_OR(tab[k] = tok)                                   \
	:: else                                                                \
	fi

#define slot_find(tab, N)                                                      \
	k = 0;                                                                 \
	do                                                                     \
	:: k < N && tab[k] == tok -> break                                     \
	:: k < N && tab[k] != tok -> k++                                       \
	:: k == N -> k = NONE; break                                           \
	od

/* waiter_claim: from id % N, a CAS (0 -> tok) per slot until one takes;
 * wslot = NONE when all are taken */
inline waiter_claim()
{
	wslot = id % NWAITERS;
	cnt = 0;
	do
	:: cnt == NWAITERS -> wslot = NONE; break
	:: cnt < NWAITERS ->
		ok2 = 0;
#ifdef MUTANT_RACY_CLAIM
		ok2 = waiter[wslot] == 0;
		if
		:: ok2 -> DIE_OR(waiter[wslot] = tok)
		:: else
		fi;
#else
		DIE_OR(atomic { if :: waiter[wslot] == 0 -> waiter[wslot] = tok; ok2 = 1 :: else fi });
#endif
		if
		:: ok2 -> break
		:: else -> wslot = (wslot + 1) % NWAITERS; cnt++
		fi
	od
}

/* waiter_clear: CAS tok -> 0 */
inline waiter_clear()
{
	if
	:: wslot != NONE ->
		assert(waiter[wslot] == tok); /* listed for as long as it waited */
		DIE_OR(atomic { if :: waiter[wslot] == tok -> waiter[wslot] = 0 :: else fi });
		wslot = NONE
	:: else
	fi
}

/* take_w: sets ok (IPC_OK) */
inline take_w()
{
	wdied = 0;
	RL_TRYLOCK(W, ok, wdied);
	if
	:: !ok && dl != TRY ->
		waiter_claim();
		if
		:: atomic { lk_own[W] == 0 -> lk_own[W] = tok; wdied = lk_od[W]; ok = 1 }
		:: dl == TIMED /* timeout */
		:: DIE_NOW
		fi;
		waiter_clear()
	:: else
	fi;
#ifndef MUTANT_NO_REPAIR
	if
	:: ok && wdied -> /* repair_w */
		DIE_OR(owner = 0);
		DIE_OR(drain_waiter = 0);
		RL_CONSISTENT(W)
	:: else
	fi
#endif
}

/* drain_readers: holding w; sets r */
inline drain_readers()
{
	round = 0;
	polls = 0;
	do
	:: lock_i();
		if
		:: readers != 0 && round > 0 -> reap_readers()
		:: else
		fi;
		n = readers;
		seq = rseq;
		if
		:: n != 0 -> DIE_OR(drain_waiter = tok)
		:: else -> DIE_OR(drain_waiter = 0)
		fi;
		RL_UNLOCK(I);
		if
		:: n == 0 -> r = OK; break
		:: else
		fi;
		/* ipc_spin_word / ipc_wait_word(&b->rseq, seq, dl, IPC_SLICE_NS) */
		if
		:: dl == TRY -> r = TIMEOUT
		:: dl != TRY && rseq != seq -> r = OK
		:: dl != TRY && REPAIRABLE -> r = OK; polls++;
			/* each slice wake must repair something, else it polls forever */
			assert(polls <= MAXD + 1)
		:: dl == TIMED -> r = TIMEOUT
		:: DIE_NOW
		fi;
		if
		:: r == TIMEOUT && round == 0 -> skip /* a zero timeout: reap once */
		:: r != OK && round != 0 -> DIE_OR(drain_waiter = 0); break
		:: else
		fi;
		round++
	od
}

/* ipc_mutex_lock; sets ok, mode */
inline mutex_lock()
{
	take_w();
	if
	:: ok && !shared ->
		DIE_OR(owner = tok);
#ifndef MUTANT_NO_DRAIN
		if
		:: readers != 0 ->
			if
			:: dl != TRY -> waiter_claim()
			:: else
			fi;
			drain_readers();
			waiter_clear();
			if
			:: r != OK ->
				DIE_OR(owner = 0);
				RL_UNLOCK(W);
				ok = 0
			:: else
			fi
		:: else
		fi;
#endif
		if
		:: ok -> atomic { assert(nex == 0 && nsh == 0); nex++; mode = 1 }
		:: else
		fi
	:: ok && shared ->
		lock_i();
#ifdef MUTANT_EARLY_W
		RL_UNLOCK(W);
#endif
		/* bounded overtaking (bound 0): a reader registers only while it
		 * holds w, and a writer holds w from take_w to unlock */
		assert(lk_own[W] == tok);
		slot_claim(reader, NREADERS);
		if
		:: k == NONE ->
			reap_readers();
			slot_claim(reader, NREADERS)
		:: else
		fi;
		if
		:: k != NONE -> DIE_OR(readers++)
		:: else
		fi;
		RL_UNLOCK(I);
#ifndef MUTANT_EARLY_W
		RL_UNLOCK(W);
#endif
		if
		:: k != NONE -> atomic { assert(nex == 0); nsh++; mode = 2 }
		:: else -> ok = 0 /* too many shared holders */
		fi
	:: else
	fi
}

/* ipc_mutex_unlock */
inline mutex_unlock()
{
	if
	:: mode == 1 ->
		atomic { nex--; mode = 0 };
		DIE_OR(owner = 0);
		DIE_OR(drain_waiter = 0);
		RL_UNLOCK(W)
	:: mode == 2 ->
		atomic { nsh--; mode = 0 };
		lock_i();
		slot_find(reader, NREADERS);
		if
		:: k != NONE ->
			DIE_OR(reader[k] = 0);
			if
			:: readers > 0 -> DIE_OR(readers--)
			:: else
			fi;
#ifndef MUTANT_NO_WAKE
			if
			:: readers == 0 && drain_waiter != 0 -> DIE_OR(rseq++)
			:: else
			fi
#endif
		:: else
		fi;
		RL_UNLOCK(I)
	fi
}

proctype P(byte id; bool final)
{
	byte tok, r, k, n, seq, round, polls, dl, cnt, kk, mode;
	byte wslot = NONE;
	bool shared, ok, ok2, wdied, idied;
	byte ops = 0;

restart:
	new_token();
	do
	:: (final && ops == 0) || (!final && ops < OPS) ->
		ops++;
		if
		:: final -> shared = 0; dl = FOREVER
		:: !final -> shared = 0; dl = FOREVER
		:: !final -> shared = 0; dl = TIMED
		:: !final -> shared = 0; dl = TRY
		:: !final -> shared = 1; dl = FOREVER
		:: !final -> shared = 1; dl = TRY
		fi;
		mutex_lock();
		if
		:: ok -> mutex_unlock(); /* the critical section is in between */
			if
			:: final -> /* then ipc_mutex_state_get: reap, count */
				lock_i();
				reap_readers();
				count_waiters();
				assert(readers == 0 && cnt == 0 && !LIVE(owner));
				RL_UNLOCK(I);
				final_ok = 1
			:: else
			fi
		:: else
		fi;
		d_step { r = 0; k = 0; n = 0; seq = 0; round = 0; polls = 0; cnt = 0; kk = 0;
		         ok = 0; ok2 = 0; wdied = 0; idied = 0; wslot = NONE }
	:: else -> break
	od;
	goto done;
died:
	atomic {
		kernel_release();
		alive[tok] = 0;
		if
		:: mode == 1 -> nex--
		:: mode == 2 -> nsh--
		:: else
		fi;
		mode = 0; r = 0; k = 0; n = 0; seq = 0; round = 0; polls = 0; cnt = 0; kk = 0;
		ok = 0; ok2 = 0; wdied = 0; idied = 0; wslot = NONE
	}
	if
	:: goto restart /* a new process takes its place */
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
	/* every process has stopped (finished or dead) */
	_nr_pr == 1;
	final_phase = 1;
	assert(nex == 0 && nsh == 0);
	/* the object is free: a new process locks it exclusively (a wedge
	 * shows as this process blocked: an invalid end state) ... */
	run P(NPROC, 1);
	_nr_pr == 1;
	assert(final_ok);
	/* ... after which (and info()'s reaping) it is free and consistent */
	assert(lk_own[W] == 0 && lk_own[I] == 0 && !lk_od[W] && !lk_od[I]);
	assert(reader[0] == 0 && reader[1] == 0);
	assert(waiter[0] == 0 && waiter[1] == 0 && waiter[2] == 0)
}
