/* Sleeping and waking on a 32-bit word in shared memory (futex). */
#ifndef IPC_WAIT_H
#define IPC_WAIT_H

#include "common.h"

#include <stdint.h>

/* Longest single sleep while someone else's death could be what we wait
 * for: a waiter re-checks holders' liveness at least this often. */
#define IPC_SLICE_NS (20 * 1000000LL)

/* Sleep while *word == expected, until woken, the deadline, the end of a
 * slice (slice_ns > 0) or one of our signals.  Returns IPC_OK (woken, value
 * changed or slice over: re-check your condition), IPC_TIMEOUT or
 * IPC_INTERRUPTED.  sigsnap is ipc_signal_count() from the start of the
 * operation, so a signal between then and now is not missed. */
int ipc_wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl, int64_t slice_ns,
                  unsigned sigsnap);

/* Wake up to n sleepers (n < 0: all). */
void ipc_wake_word(uint32_t *word, int n);

/* How long a waiter spins before it sleeps. */
#define IPC_SPIN_NS 4000

/* Spin briefly (IPC_SPIN_NS) while *word == expected.  Returns 1 if
 * the word changed.  Does nothing on a single CPU. */
int ipc_spin_word(const uint32_t *word, uint32_t expected);

static inline void ipc_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

#endif
