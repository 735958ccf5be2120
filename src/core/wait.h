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

/* ---- several words at once (ipc.select) ---- */

/* Most words one ipc_wait_words call sleeps on (the kernel's limit). */
#define IPC_WAIT_WORDS_MAX 128
/* Fallback slice when the kernel lacks futex_waitv (before 5.16): sleep on
 * the first word only, for at most this long, then re-check everything. */
#define IPC_WAIT_WORDS_POLL_NS (5 * 1000000LL)

/* Sleep while *words[i] == expected[i] for every i (1 <= n <=
 * IPC_WAIT_WORDS_MAX), until a wake on any of them, the deadline, the end
 * of a slice or one of our signals: futex_waitv(2) on shared futexes.
 * Results as ipc_wait_word; *woken (may be NULL) is the index of the word
 * that was woken, or -1.  Without futex_waitv (ENOSYS, or the environment
 * variable IPCSH_TEST_NO_WAITV non-empty, for the tests) it sleeps on
 * words[0] with a slice of at most IPC_WAIT_WORDS_POLL_NS: callers re-check
 * all their conditions after every return anyway. */
int ipc_wait_words(const uint32_t *const *words, const uint32_t *expected, int n,
                   const ipc_deadline *dl, int64_t slice_ns, unsigned sigsnap, int *woken);

/* 1 when ipc_wait_words uses futex_waitv, 0 when it falls back. */
int ipc_wait_words_native(void);

#endif
