/* Model of the queue (src/core/queue.c, queue_repair.c, queue_wait.c,
 * queue_int.h): the cells, the heap and the free ring, the in-flight
 * records of queue:with (receive with a ticket, then ack), the rebuild
 * after a dead holder of the internal lock (ipc_q_rebuild), and the
 * redelivery of a dead receiver's in-flight message (ipc_q_reclaim_dead).
 * docs/design.md, "Model checking", maps each step to the code.
 *
 * Two cells, one priority (the heap orders by seq).  Process 0 sends
 * OPS messages, process 1 receives with a ticket (queue:with), process 2
 * (if NPROC = 3) receives plainly, and so does the final drain.  A message is its id, written into the cell's bytes.
 * Mutants (make model-mutants), each must be caught:
 *   MUTANT_PUBLISH_EARLY  send stores the cell's state before its bytes
 *   MUTANT_NO_INFLIGHT    with-receive frees the cell instead of recording it
 *   MUTANT_NO_REBUILD     q_lock ignores EOWNERDEAD (calls consistent only) */

#ifndef NPROC
#define NPROC 3
#endif
#ifndef OPS
#define OPS 2
#endif
#define NLOCKS 1
#define L 0
#define N 2     /* max_count */
#define NMSG 8  /* message ids 1..NMSG-1 */
#define FREE 0
#define READY 1
#define INFLIGHT 2
#define NONE 255

#include "common.pml"

/* the body: header, cells, heap, free ring, data */
byte count, in_flight, nfree = N, free_head, next_seq = 1, recv_seq, send_seq;
byte cst[N], cown[N], cseq[N];
byte data[N];                   /* the cell's bytes: a message id */
byte h_seq[N], h_cell[N];       /* heap entries {seq, cell} (prio all 0) */
byte freel[N];                  /* the free ring */
bool ring_init = 0;

/* ghosts */
byte published[NMSG];  /* 1 once a send stored READY */
byte consumed[NMSG];   /* plain receive freed it, or with's ack freed it */
byte nextmsg = 1;
bool final_ok;
/* roles that stopped for good (the sender; receivers): a wait for the
 * other side may then end (a user's wait with no one left to answer) */
bool sstopped;
byte rstopped;

#define SANE (count <= N && in_flight <= N && nfree <= N && free_head < N && \
              count + in_flight + nfree == N)
#define DEAD_INFLIGHT ((cst[0] == INFLIGHT && DEAD(cown[0])) || \
                       (cst[1] == INFLIGHT && DEAD(cown[1])))
#define REPAIRABLE (lk_od[L] || DEAD_INFLIGHT)

/* q_rebuild: recompute the heap, ring and counts from the cells */
inline q_rebuild()
{
	nh = 0; nf = 0; nfl = 0; mx = 0;
	i = 0;
	do
	:: i < N ->
		if
		:: cst[i] == READY ->
			DIE_OR(h_seq[nh] = cseq[i]);
			DIE_OR(h_cell[nh] = i);
			nh++
		:: cst[i] == INFLIGHT && cown[i] != 0 -> nfl++
		:: else ->
			DIE_OR(cst[i] = FREE);
			DIE_OR(freel[nf] = i);
			nf++
		fi;
		if
		:: cst[i] != FREE && cseq[i] > mx -> mx = cseq[i]
		:: else
		fi;
		i++
	:: else -> break
	od;
	/* heapify (two entries: order them) */
	if
	:: nh == 2 && h_seq[1] < h_seq[0] ->
		e_seq = h_seq[0]; e_cell = h_cell[0];
		DIE_OR(h_seq[0] = h_seq[1]);
		DIE_OR(h_cell[0] = h_cell[1]);
		DIE_OR(h_seq[1] = e_seq);
		DIE_OR(h_cell[1] = e_cell)
	:: else
	fi;
	DIE_OR(count = nh);
	DIE_OR(in_flight = nfl);
	DIE_OR(nfree = nf);
	DIE_OR(free_head = 0);
	if
	:: next_seq <= mx -> DIE_OR(next_seq = mx + 1)
	:: else
	fi;
	DIE_OR(recv_seq++);
	DIE_OR(send_seq++);
	/* consistent after every repair: the counts add up, the heap holds
	 * exactly the READY cells in order, the ring exactly the FREE ones */
	atomic {
		assert(SANE);
		assert(count < 2 || h_seq[0] < h_seq[1]);
		assert(count < 1 || (cst[h_cell[0]] == READY && cseq[h_cell[0]] == h_seq[0]));
		assert(count < 2 || (cst[h_cell[1]] == READY && cseq[h_cell[1]] == h_seq[1]));
		assert(nfree < 1 || cst[freel[free_head]] == FREE);
		assert(nfree < 2 || cst[freel[(free_head + 1) % N]] == FREE)
	}
}

/* q_lock / q_relock: the lock, then repair if its holder died or the
 * cheap check fails */
inline q_lock()
{
	ldied = 0;
	RL_LOCK(L, ldied);
#ifdef MUTANT_NO_REBUILD
	if
	:: ldied -> RL_CONSISTENT(L)
	:: else
	fi
#else
	if
	:: ldied || !SANE ->
		q_rebuild();
		if
		:: ldied -> RL_CONSISTENT(L)
		:: else
		fi
	:: else
	fi
#endif
}

/* sift_up of {s, ci} at index count (prio equal: by seq) */
inline sift_up(s, ci)
{
	i = count;
	do
	:: i > 0 && s < h_seq[(i - 1) / 2] ->
		DIE_OR(h_seq[i] = h_seq[(i - 1) / 2]);
		DIE_OR(h_cell[i] = h_cell[(i - 1) / 2]);
		i = (i - 1) / 2
	:: else -> break
	od;
	DIE_OR(h_seq[i] = s);
	DIE_OR(h_cell[i] = ci)
}

inline free_push(ci)
{
	DIE_OR(freel[(free_head + nfree) % N] = ci);
	DIE_OR(nfree++)
}

/* the wait of q_wait_turn/q_sleep: unlock, sleep on word, relock */
#define Q_WAIT(word, idle)                                                     \
	seen = word;                                                           \
	RL_UNLOCK(L);                                                          \
	if                                                                     \
	:: word != seen || REPAIRABLE                                          \
	:: timed || idle -> r = 1                                              \
	:: DIE_NOW                                                             \
	fi;                                                                    \
	q_lock()

/* ipc_queue_send of message m; r = 0 sent, 1 timed out */
inline q_send(m)
{
	r = 0;
	fixes = 0;
	q_lock();
	do
	:: nfree > 0 ->
		ci = freel[free_head];
		if
		:: cst[ci] != FREE ->
			fixes++;
			assert(fixes <= 2);
			q_rebuild()
		:: else ->
			DIE_OR(free_head = (free_head + 1) % N);
			DIE_OR(nfree--);
#ifdef MUTANT_PUBLISH_EARLY
			DIE_OR(atomic { cst[ci] = READY; published[m] = 1 });
#endif
			DIE_OR(data[ci] = m); /* memcpy */
			DIE_OR(cseq[ci] = next_seq);
			DIE_OR(next_seq++);
			DIE_OR(cown[ci] = 0);
#ifndef MUTANT_PUBLISH_EARLY
			DIE_OR(atomic { cst[ci] = READY; published[m] = 1 });
#endif
			sift_up(cseq[ci], ci);
			DIE_OR(count++);
			if
			:: count == 1 -> DIE_OR(recv_seq++)
			:: else
			fi;
			RL_UNLOCK(L);
			break
		fi
	:: nfree == 0 ->
		Q_WAIT(send_seq, rstopped == NPROC - 1);
		if
		:: r == 1 -> RL_UNLOCK(L); break
		:: else
		fi
	od
}

/* reclaim_dead: lock held on entry and return (dropped for the checks) */
inline reclaim_dead()
{
	back = 0;
	/* the owners to check */
	t0 = 0; t1 = 0;
	if
	:: cst[0] == INFLIGHT && cown[0] != tok -> t0 = cown[0]
	:: else
	fi;
	if
	:: cst[1] == INFLIGHT && cown[1] != tok -> t1 = cown[1]
	:: else
	fi;
	if
	:: t0 != 0 || t1 != 0 ->
		RL_UNLOCK(L);
		atomic { /* ipc_token_alive, outside the lock */
			d0 = DEAD(t0); d1 = DEAD(t1)
		};
		q_lock();
		i = 0;
		do
		:: i < N ->
			if
			:: cst[i] == INFLIGHT &&
			   ((d0 && cown[i] == t0) || (d1 && cown[i] == t1)) ->
				DIE_OR(cst[i] = READY);
				ci = i;
				sift_up(cseq[ci], ci);
				i = ci;
				DIE_OR(count++);
				DIE_OR(in_flight--);
				back++
			:: else
			fi;
			i++
		:: else -> break
		od;
		if
		:: back > 0 -> DIE_OR(recv_seq++)
		:: else
		fi
	:: else
	fi
}

/* heap_pop: ci = the first entry's cell, or NONE when it does not match */
inline heap_pop()
{
	ci = h_cell[0];
	if
	:: ci >= N || cst[ci] != READY || cseq[ci] != h_seq[0] -> ci = NONE
	:: else ->
		DIE_OR(count--);
		if
		:: count > 0 -> /* sift_down(h, 1, 0, h[1]) */
			DIE_OR(h_seq[0] = h_seq[1]);
			DIE_OR(h_cell[0] = h_cell[1])
		:: else
		fi
	fi
}

/* ipc_queue_receive (ticket: queue:with) then, for with, the ack */
inline q_receive(ticket)
{
	r = 0;
	fixes = 0;
	q_lock();
	if
	:: in_flight > 0 && count > 0 -> reclaim_dead()
	:: else
	fi;
	do
	:: count > 0 ->
		heap_pop();
		if
		:: ci == NONE ->
			fixes++;
			assert(fixes <= 2);
			q_rebuild()
		:: else ->
			m = data[ci]; /* memcpy out */
			assert(m != 0 && published[m]);
			if
			:: ticket ->
#ifndef MUTANT_NO_INFLIGHT
				DIE_OR(cown[ci] = tok);
				DIE_OR(cst[ci] = INFLIGHT);
				DIE_OR(in_flight++);
#else
				DIE_OR(cst[ci] = FREE);
				free_push(ci);
#endif
				tseq = cseq[ci]
			:: else ->
				DIE_OR(atomic { cst[ci] = FREE;
				                assert(consumed[m] == 0); consumed[m] = 1 });
				free_push(ci);
				if
				:: nfree == 1 -> DIE_OR(send_seq++)
				:: else
				fi
			fi;
			RL_UNLOCK(L);
			break
		fi
	:: count == 0 && in_flight > 0 && !final_phase ->
		reclaim_dead();
		if
		:: back == 0 ->
			Q_WAIT(recv_seq, sstopped);
			if
			:: r == 1 -> RL_UNLOCK(L); break
			:: else
			fi
		:: else
		fi
	:: count == 0 && in_flight > 0 && final_phase -> reclaim_dead();
		if
		:: back == 0 -> r = 1; RL_UNLOCK(L); break
		:: else
		fi
	:: count == 0 && in_flight == 0 && final_phase -> r = 1; RL_UNLOCK(L); break
	:: count == 0 && in_flight == 0 && !final_phase ->
		Q_WAIT(recv_seq, sstopped);
		if
		:: r == 1 -> RL_UNLOCK(L); break
		:: else
		fi
	od;
	if
	:: r == 0 && ticket -> /* the handler ran; ipc_queue_ack */
#ifdef MUTANT_NO_INFLIGHT
		atomic { assert(consumed[m] == 0); consumed[m] = 1 }
#else
		q_lock();
		if
		:: cst[ci] == INFLIGHT && cown[ci] == tok && cseq[ci] == tseq ->
			DIE_OR(atomic { cst[ci] = FREE;
			                assert(consumed[m] == 0); consumed[m] = 1 });
			DIE_OR(in_flight--);
			free_push(ci);
			DIE_OR(send_seq++)
		:: else
		fi;
		RL_UNLOCK(L)
#endif
	:: else
	fi
}

proctype P(byte id; bool final)
{
	byte tok, r, i, ci, nh, nf, nfl, mx, e_seq, e_cell, fixes, seen, back, t0, t1, m, tseq;
	bool ldied, d0, d1, timed;
	byte ops = 0;

restart:
	new_token();
	do
	:: final ->
		/* the final receiver drains the queue (a try-receive: stops
		 * when nothing is left, after reclaiming the dead's messages) */
		q_receive(0);
		if
		:: r == 1 -> break
		:: else
		fi
	:: !final && ops < OPS ->
		ops++;
		if
		:: timed = 0
		:: timed = 1
		fi;
		if
		:: id == 0 -> atomic { m = nextmsg; nextmsg++ }; q_send(m)
		:: id == 1 -> q_receive(1)
		:: id == 2 -> q_receive(0)
		fi;
		atomic { r = 0; i = 0; ci = 0; nh = 0; nf = 0; nfl = 0; mx = 0; e_seq = 0; e_cell = 0;
		         fixes = 0; seen = 0; back = 0; t0 = 0; t1 = 0; m = 0; tseq = 0; ldied = 0;
		         d0 = 0; d1 = 0 }
	:: !final && ops >= OPS -> break
	od;
	if
	:: final -> final_ok = 1
	:: id == 0 -> sstopped = 1
	:: else -> rstopped++
	fi;
	goto done;
died:
	atomic {
		kernel_release();
		alive[tok] = 0;
		r = 0; i = 0; ci = 0; nh = 0; nf = 0; nfl = 0; mx = 0; e_seq = 0; e_cell = 0;
		fixes = 0; seen = 0; back = 0; t0 = 0; t1 = 0; m = 0; tseq = 0; ldied = 0;
		d0 = 0; d1 = 0
	}
	if
	:: goto restart
	:: id == 0 -> sstopped = 1
	:: id != 0 -> rstopped++
	fi;
done:
	skip
}

init
{
	byte k;
	atomic {
		freel[0] = 0; freel[1] = 1;
		k = 0;
		do
		:: k < NPROC -> run P(k, 0); k++
		:: else -> break
		od
	}
	_nr_pr == 1;
	final_phase = 1;
	/* a new process drains what is left, reclaiming the dead's messages */
	run P(NPROC, 1);
	_nr_pr == 1;
	assert(final_ok);
	assert(count == 0 && in_flight == 0 && nfree == N && SANE);
	/* nothing lost: every published message was consumed exactly once */
	k = 1;
	do
	:: k < NMSG ->
		assert(published[k] == consumed[k]);
		k++
	:: else -> break
	od
}
