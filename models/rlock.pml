/* Model of the lock word (src/core/rlock.[ch]): the word's states, the
 * robust-list link and list_op_pending, the kernel's handling of a dead
 * holder, FUTEX_WAITERS and the wakes.  docs/design.md, "Model checking",
 * maps each step to the code.
 *
 * The word is (w_tid, w_wait, w_od): owner id (a token; 0 none),
 * FUTEX_WAITERS, FUTEX_OWNER_DIED.  What the kernel sees of a process's
 * robust list is linked[t] (the lock is on its list) and pending[t]
 * (list_op_pending names it).  The link and the unlink are one step each:
 * the kernel follows the list only after the thread is dead, and the code
 * keeps the forward chain whole at every instruction.
 *
 * Properties: mutual exclusion; the word never names a dead process (the
 * kernel releases it at every death point: otherwise it is "orphaned", and
 * the code would report a corrupt object); a locker is told owner_died
 * whenever the previous holder died inside (ghost `dirty`: the object's
 * state a death leaves half-written, cleared by the repair); no lost
 * wake-up: a sleeper wakes only by a FUTEX_WAKE, except after a death that
 * took a wake with it (a woken waiter or an unlocker between its release
 * and its wake), where the code's 20 ms slice is what wakes it (ghost
 * `lostwake` enables that); at the end the lock is free and a new process
 * takes it.
 *
 * Mutants (make model-mutants), each must be caught:
 *   MUTANT_NO_PENDING    no list_op_pending around the cmpxchg
 *   MUTANT_NO_WAKE       unlock does not wake when FUTEX_WAITERS was set
 *   MUTANT_NO_WAITERS    a locker that slept takes the word without
 *                        setting FUTEX_WAITERS
 *   MUTANT_NO_DIED       owner_died is not reported (no repair)
 *   MUTANT_GIVE_UP_EARLY a woken waiter that lost the race gives up before
 *                        setting FUTEX_WAITERS again */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef OPS
#define OPS 1
#endif
#define NLOCKS 1

#include "common.pml"

byte w_tid;
bool w_wait, w_od;
bool linked[MAXTOK + 1], pending[MAXTOK + 1];
bool sleeping[MAXTOK + 1]; /* queued in FUTEX_WAIT on the word */
byte nsleep;
/* ghosts */
bool woken[MAXTOK + 1]; /* took a wake it has not passed on yet */
bool owe[MAXTOK + 1];   /* released a word with WAITERS, not woken yet */
bool lostwake;          /* a death took a wake with it: slices wake */
byte incs;              /* holders in the critical section */
bool dirty;             /* a holder died inside: repair owed */
bool final_ok;

/* FUTEX_WAKE 1: one of the sleepers, any */
inline wake_one()
{
	wk = 1;
	nsl = nsleep;
	do
	:: wk > MAXTOK -> break
	:: wk <= MAXTOK && sleeping[wk] -> sleeping[wk] = 0; nsleep--; woken[wk] = 1; break
	:: wk <= MAXTOK && sleeping[wk] && nsl > 1 -> nsl--; wk++ /* wake a later one */
	:: wk <= MAXTOK && !sleeping[wk] -> wk++
	od
}

/* exit_robust_list: the listed or pending lock, if the word names the dead
 * thread, gets OWNER_DIED (WAITERS kept, id cleared) and one waiter woken */
inline kernel_death()
{
	if
	:: sleeping[tok] -> sleeping[tok] = 0; nsleep--
	:: else
	fi;
	if
	:: (linked[tok] || pending[tok]) && w_tid == tok ->
		w_tid = 0;
		w_od = 1;
		if
		:: w_wait -> wake_one()
		:: else
		fi
	:: else
	fi;
	if
	:: woken[tok] || owe[tok] -> lostwake = 1
	:: else
	fi;
	linked[tok] = 0;
	pending[tok] = 0;
	woken[tok] = 0;
	owe[tok] = 0
}

/* attempt(): sets ok and odied; from a free or OWNER_DIED word */
inline attempt()
{
	ok = 0;
	do
	:: atomic { v_tid = w_tid; v_wait = w_wait; v_od = w_od;
	            assert(!DEAD(v_tid)) /* orphaned */ };
		if
		:: v_tid != 0 && !v_od -> break /* held */
		:: else
		fi;
#ifndef MUTANT_NO_PENDING
		DIE_OR(pending[tok] = 1);
#endif
		/* cmpxchg v -> tid | waiters | (v & FUTEX_WAITERS) */
		DIE_OR(atomic {
			if
			:: w_tid == v_tid && w_wait == v_wait && w_od == v_od ->
				w_tid = tok;
#if defined(MUTANT_NO_WAITERS)
				w_wait = v_wait;
#else
				w_wait = wt || v_wait;
#endif
				w_od = 0;
				ok = 1;
#ifndef MUTANT_NO_DIED
				odied = v_od;
#endif
				woken[tok] = 0 /* its wake is passed on by WAITERS */
			:: else
			fi });
		if
		:: ok -> DIE_OR(linked[tok] = 1)
		:: else
		fi;
#ifndef MUTANT_NO_PENDING
		DIE_OR(pending[tok] = 0);
#endif
		if
		:: ok -> break
		:: else
		fi
	od
}

/* ipc_rlock_lock: sets ok (locked) and odied */
inline rl_lock()
{
	wt = 0;
	odied = 0;
	attempt(); /* ipc_rlock_fast, then the first attempt (spin: a re-read) */
	do
	:: ok -> break
	:: else ->
		wt = 1; /* every attempt of the sleep loop keeps FUTEX_WAITERS */
#ifdef MUTANT_GIVE_UP_EARLY
		if
		:: timed -> break
		:: skip
		fi;
#endif
		/* held (v read by attempt): set FUTEX_WAITERS */
		if
		:: !v_wait ->
			DIE_OR(atomic {
				if
				:: w_tid == v_tid && !w_wait && w_od == v_od -> w_wait = 1; v_wait = 1
				:: else
				fi });
			if
			:: !v_wait -> attempt(); goto next /* changed: try again */
			:: else
			fi
		:: else
		fi;
		woken[tok] = 0; /* WAITERS is set on the holder's word: passed on */
		if
		:: timed -> break /* deadline or signal: give up */
		:: skip
		fi;
		/* futex_wait(word, v | WAITERS): queued only if still that */
		atomic {
			if
			:: w_tid == v_tid && w_wait && w_od == v_od -> sleeping[tok] = 1; nsleep++
			:: else
			fi
		}
		if
		:: !sleeping[tok] -> skip /* woken (or never queued) */
		:: atomic { sleeping[tok] && timed -> sleeping[tok] = 0; nsleep-- } -> break
		:: atomic { sleeping[tok] && lostwake -> sleeping[tok] = 0; nsleep-- } /* slice */
		:: DIE_NOW
		fi;
		attempt();
next:
		skip
	od
}

/* ipc_rlock_unlock */
inline rl_unlock()
{
	DIE_OR(pending[tok] = 1);
	DIE_OR(linked[tok] = 0);
	DIE_OR(atomic { assert(w_tid == tok); ow = w_wait; w_tid = 0; w_wait = 0; w_od = 0;
	                owe[tok] = ow });
#ifndef MUTANT_NO_WAKE
	if
	:: ow -> DIE_OR(atomic { wake_one(); owe[tok] = 0 })
	:: else
	fi;
#else
	owe[tok] = 0;
#endif
	DIE_OR(pending[tok] = 0)
}

proctype P(byte id; bool final)
{
	byte tok, v_tid, wk, nsl;
	bool v_wait, v_od, ok, odied, wt, ow, timed, inside;
	byte ops = 0;

restart:
	new_token();
	do
	:: (final && ops == 0) || (!final && ops < OPS) ->
		ops++;
		if
		:: final -> timed = 0
		:: !final -> timed = 0
		:: !final -> timed = 1
		fi;
		rl_lock();
		if
		:: ok ->
			atomic { assert(incs == 0); incs++; inside = 1;
			         assert(odied || !dirty) /* told to repair */ };
			if
			:: odied -> DIE_OR(dirty = 0) /* repair */
			:: else
			fi;
			/* the critical section: an update a death leaves half-done */
			DIE_OR(dirty = 1);
			DIE_OR(dirty = 0);
			atomic { incs--; inside = 0 };
			rl_unlock();
			if
			:: final -> final_ok = 1
			:: else
			fi
		:: else
		fi;
		d_step { ok = 0; odied = 0; wt = 0; ow = 0; v_tid = 0; v_wait = 0; v_od = 0; wk = 0; nsl = 0 }
	:: else -> break
	od;
	goto done;
died:
	atomic {
		kernel_death();
		alive[tok] = 0;
		if
		:: inside -> incs--; inside = 0
		:: else
		fi;
		ok = 0; odied = 0; wt = 0; ow = 0; v_tid = 0; v_wait = 0; v_od = 0; wk = 0; nsl = 0
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
	/* every process stopped: nobody sleeps, nobody holds it */
	_nr_pr == 1;
	final_phase = 1;
	assert(incs == 0 && nsleep == 0 && w_tid == 0);
	run P(NPROC, 1);
	_nr_pr == 1;
	assert(final_ok && !dirty);
	assert(w_tid == 0 && !w_wait && !w_od)
}
