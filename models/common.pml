/* Shared machinery of the ipcsh models (docs/design.md, "Model checking").
 *
 * Processes and tokens: a process incarnation is a token 1..MAXTOK (0 = none),
 * like ipc_token (pid + start time): a restarted process gets a new token and
 * the dead one stays dead.  alive[t] is what ipc_token_alive(t) answers.
 *
 * Robust locks (src/core/rlock.c): lk_own[L] is the owning token, lk_od[L] the
 * kernel's OWNER_DIED mark.  Death releases the dead process's locks with
 * OWNER_DIED set, atomically (the kernel walks the robust list at exit).  The
 * next locker sees died = 1 and must call consistent before unlocking:
 * unlocking an inconsistent mutex makes it ENOTRECOVERABLE (an assertion).
 *
 * Death: DIE_OR(stmt) is a shared-memory write at which the process may
 * instead die (at most MAXD deaths in a run).  Reads need no death point:
 * dying after a read and before the next write is dying before that write. */

#ifndef MAXD
#define MAXD 1
#endif
#define MAXTOK (NPROC + MAXD + 2)

bool alive[MAXTOK + 1];
byte nexttok = 1;
byte deaths = 0;
bool final_phase = 0; /* the post-run check: no more deaths */

#define LIVE(t) ((t) != 0 && alive[t])
#define DEAD(t) ((t) != 0 && !alive[t])
#define CAN_DIE (deaths < MAXD && !final_phase)

#define DIE_NOW atomic { CAN_DIE -> deaths++; goto died }
#define DIE_OR(stmt) if :: DIE_NOW :: stmt fi

/* robust locks */
byte lk_own[NLOCKS];
bool lk_od[NLOCKS];

/* blocking lock (no deadline); dying while blocked is allowed */
#define RL_LOCK(L, dv)                                                         \
	if                                                                     \
	:: atomic { lk_own[L] == 0 -> lk_own[L] = tok; dv = lk_od[L] }        \
	:: DIE_NOW                                                             \
	fi

#define RL_TRYLOCK(L, ok, dv)                                                  \
	atomic {                                                               \
		if                                                             \
		:: lk_own[L] == 0 -> lk_own[L] = tok; dv = lk_od[L]; ok = 1    \
		:: else -> ok = 0                                              \
		fi                                                             \
	}

#define RL_CONSISTENT(L) DIE_OR(lk_od[L] = 0)

#define RL_UNLOCK(L)                                                           \
	DIE_OR(atomic { assert(lk_own[L] == tok);                              \
	                assert(!lk_od[L]); /* else ENOTRECOVERABLE */         \
	                lk_own[L] = 0 })

/* at death: the kernel releases every robust lock the process held */
inline kernel_release()
{
	byte kl = 0;
	do
	:: kl < NLOCKS ->
		if
		:: lk_own[kl] == tok -> lk_own[kl] = 0; lk_od[kl] = 1
		:: else
		fi;
		kl++
	:: else -> break
	od
}

inline new_token()
{
	atomic { tok = nexttok; nexttok++; alive[tok] = 1 }
}
