/* Sleeping and waking on a 32-bit word in shared memory (futex). */
#ifndef IPC_WAIT_H
#define IPC_WAIT_H

#include "common.h"

#include <stdint.h>

/* Longest single sleep while someone else's death could be what we wait
 * for: a waiter re-checks holders' liveness at least this often. */
#define IPC_SLICE_NS (20 * 1000000LL)

/* The word protocol: whoever changes a waited-for condition changes the
 * condition's futex word (a counter, a flag) and then wakes it; a waiter
 * reads the word, then checks the condition, then sleeps only while the
 * word still holds the value it read.  A change between its check and its
 * sleep makes the sleep return at once: no lost wake-up. */

/* Sleep while *word == expected, until woken, the deadline, the end of a
 * slice (slice_ns > 0) or one of our signals.  Returns IPC_OK (woken, value
 * changed or slice over: re-check your condition), IPC_TIMEOUT or
 * IPC_INTERRUPTED.  sigsnap is ipc_signal_count() from the start of the
 * operation, so a signal between then and now is not missed. */
int ipc_wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl, int64_t slice_ns,
                  unsigned sigsnap);

/* The same for a later sleep of one wait whose first sleep was
 * ipc_wait_word: the signal handlers were checked then (a query costs a
 * system call; a contended lock word may be slept on once per unlock). */
int ipc_wait_word_again(const uint32_t *word, uint32_t expected, const ipc_deadline *dl,
                        int64_t slice_ns, unsigned sigsnap);

/* Wake up to n sleepers (n < 0: all). */
void ipc_wake_word(uint32_t *word, int n);

/* The spin policy (docs/design.md, "The wait module"): how long a waiter
 * spins before it sleeps adapts, per word, to how the recent waits on that
 * word went: it grows on spins that caught the change late, holds while
 * sleeps are woken soon (within IPC_SPIN_SHORT_NS), shrinks on longer
 * waits, timeouts and signals; between MIN and MAX, starting at
 * IPC_SPIN_NS.  No spinning when the process may run on one CPU only. */
#define IPC_SPIN_NS 4000
#define IPC_SPIN_MIN_NS 500
#define IPC_SPIN_MAX_NS 8000
#define IPC_SPIN_SHORT_NS 1000000LL

/* Spin (per the policy) while *word == expected.  Returns 1 if the word
 * changed.  When it did not, the next ipc_wait_word on the same word by this
 * thread tells the policy how long the wait turned out to be. */
int ipc_spin_word(const uint32_t *word, uint32_t expected);
/* The current budget for word, in ns (0 on one CPU): for tests and ipcsh. */
int64_t ipc_spin_budget(const uint32_t *word);

/* ---- wait until a condition holds: the loop every object uses ---- */

typedef struct ipc_wait_spec {
	const uint32_t *word; /* the condition's futex word */
	/* 1: the condition holds (stop); 0: not yet; IPC_ERR: stop with that
	 * (ctx says why).  Called after each read of word. */
	int (*ready)(void *ctx);
	/* NULL, or called when a slice ended with the word unchanged: liveness
	 * checks (a dead holder, a dead party) that may change the condition. */
	void (*on_slice)(void *ctx);
	void *ctx;
	int64_t slice_ns; /* longest sleep between checks; 0: none (1 s) */
} ipc_wait_spec;

/* Check the condition; spin per the policy (first round only); sleep on
 * the word with slices; stop on the deadline or a signal since sigsnap.
 * Signal handlers are (re)checked once per call, before the first sleep.
 * Returns IPC_OK (ready), IPC_TIMEOUT, IPC_INTERRUPTED or IPC_ERR (from
 * ready).  A caller that withdraws after IPC_TIMEOUT/IPC_INTERRUPTED
 * re-checks the condition under its lock: it may have become true. */
int ipc_wait_until(const ipc_wait_spec *w, const ipc_deadline *dl, unsigned sigsnap);

/* The preamble of any sliced sleep (also pidfd polls): IPC_INTERRUPTED if a
 * signal arrived since sigsnap, IPC_TIMEOUT if dl passed, else IPC_OK with
 * *left = how long to sleep, cut to slice_ns (> 0) and to one second. */
int ipc_wait_slice(const ipc_deadline *dl, int64_t slice_ns, unsigned sigsnap, int64_t *left);

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
