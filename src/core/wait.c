#include "wait.h"

#include "signals.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long futex(const uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

/* Before a sleep: a signal since sigsnap or a passed deadline ends the wait
 * now; otherwise *left is how long to sleep, cut to the slice and to one
 * second (*sliced then says the wait may end before the deadline).  Even an
 * unsliced wait wakes once a second: cheap, and a safety net against a wake
 * lost to a process killed between its two steps. */
static int sleep_length(const ipc_deadline *dl, int64_t slice_ns, unsigned sigsnap, int64_t *left,
                        int *sliced)
{
	if (ipc_signal_since(sigsnap))
		return IPC_INTERRUPTED;
	*left = ipc_deadline_left(dl);
	if (*left <= 0)
		return IPC_TIMEOUT;
	*sliced = 0;
	if (slice_ns > 0 && *left > slice_ns) {
		*left = slice_ns;
		*sliced = 1;
	}
	if (*left > 1000000000LL) {
		*left = 1000000000LL;
		*sliced = 1;
	}
	return IPC_OK;
}

int ipc_wait_slice(const ipc_deadline *dl, int64_t slice_ns, unsigned sigsnap, int64_t *left)
{
	int sliced;
	return sleep_length(dl, slice_ns, sigsnap, left, &sliced);
}

/* ---- the spin policy ----
 * Per process, a small table keyed by the word's address (a collision
 * only shares an estimate): the running mean of recent wait lengths on
 * that word, updated by 1/8 of each new sample. */
#define SPIN_ENTRIES 64

typedef struct spin_entry {
	uintptr_t key;
	int32_t avg_ns;
} spin_entry;

static spin_entry spin_tab[SPIN_ENTRIES];

/* A spin that did not catch the change, waiting for the sleep that
 * follows it (ipc_spin_word, then ipc_wait_word on the same word). */
static _Thread_local const uint32_t *pending_word;
static _Thread_local int64_t pending_t0;

/* Spinning only pays when the process that will change the word can run
 * meanwhile: not on one CPU, nor when we may run on one CPU only (taskset).
 * Read once per process. */
static int many_cpus(void)
{
	static int ncpu;
	int n = __atomic_load_n(&ncpu, __ATOMIC_RELAXED);
	if (!n) {
		cpu_set_t set;
		n = sched_getaffinity(0, sizeof set, &set) == 0
		        ? CPU_COUNT(&set)
		        : (int)sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		__atomic_store_n(&ncpu, n, __ATOMIC_RELAXED);
	}
	return n > 1;
}

static spin_entry *entry_of(const uint32_t *word)
{
	uint64_t k = (uint64_t)(uintptr_t)word >> 2;
	return &spin_tab[(k * 0x9E3779B97F4A7C15ull) >> 58]; /* 64 = 2^6 entries */
}

int64_t ipc_spin_budget(const uint32_t *word)
{
	if (!many_cpus())
		return 0;
	spin_entry *e = entry_of(word);
	if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) != (uintptr_t)word)
		return IPC_SPIN_NS;
	int64_t b = 2 * (int64_t)__atomic_load_n(&e->avg_ns, __ATOMIC_RELAXED);
	return b < IPC_SPIN_MIN_NS ? IPC_SPIN_MIN_NS : b > IPC_SPIN_MAX_NS ? IPC_SPIN_MAX_NS : b;
}

/* One more observed wait on word: sample_ns long (0: a long wait). */
static void learn(const uint32_t *word, int64_t sample_ns)
{
	spin_entry *e = entry_of(word);
	int64_t avg = IPC_SPIN_NS / 2;
	if (__atomic_load_n(&e->key, __ATOMIC_RELAXED) == (uintptr_t)word)
		avg = __atomic_load_n(&e->avg_ns, __ATOMIC_RELAXED);
	else
		__atomic_store_n(&e->key, (uintptr_t)word, __ATOMIC_RELAXED);
	avg += (sample_ns - avg) / 8;
	__atomic_store_n(&e->avg_ns, (int32_t)avg, __ATOMIC_RELAXED);
}

/* The samples (docs/design.md, "The spin policy").  budget = 2 x mean, so
 * a sample of half the budget holds it, more grows it, less shrinks it.
 *  - a spin caught the change after d: max(d, budget/2): a late catch (a
 *    close call) grows the budget, an early one holds it;
 *  - a spin gave up, the sleep was woken within IPC_SPIN_SHORT_NS: hold,
 *    or recover toward IPC_SPIN_NS.  Its length is no guide (it includes
 *    the sleep and the wake-up), and growing on it was measured to double
 *    event and barrier hand-offs on a loaded machine: a longer spin only
 *    took the CPU the waker needed;
 *  - a longer wait, a timeout, a signal: 0, spinning was wasted. */
static void learn_caught(const uint32_t *word, int64_t d)
{
	int64_t half = ipc_spin_budget(word) / 2;
	learn(word, d > half ? d : half);
}

static void learn_sleep(const uint32_t *word, int64_t total_ns, int woken)
{
	if (!woken || total_ns > IPC_SPIN_SHORT_NS) {
		learn(word, 0);
		return;
	}
	int64_t half = ipc_spin_budget(word) / 2;
	learn(word, half > IPC_SPIN_NS / 2 ? half : IPC_SPIN_NS / 2);
}

/* Spin while *word == expected, for the word's budget.  *t0 = when it
 * began (0 on one CPU: no spin).  A time budget, not a count: PAUSE costs
 * from a few to ~140 cycles depending on the CPU. */
static int spin(const uint32_t *word, uint32_t expected, int64_t *t0)
{
	*t0 = 0;
	if (!many_cpus())
		return 0;
	int64_t budget = ipc_spin_budget(word);
	int64_t start = ipc_now_ns();
	for (int i = 0;; i++) {
		if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected) {
			learn_caught(word, ipc_now_ns() - start);
			return 1;
		}
		ipc_cpu_relax();
		if ((i & 15) == 15 && ipc_now_ns() - start >= budget)
			break;
	}
	*t0 = start;
	return 0;
}

int ipc_spin_word(const uint32_t *word, uint32_t expected)
{
	int64_t t0;
	int r = spin(word, expected, &t0);
	pending_word = t0 ? word : NULL;
	pending_t0 = t0;
	return r;
}

/* One futex sleep.  install: (re)check our signal handlers first. */
static int wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl,
                     int64_t slice_ns, unsigned sigsnap, int install)
{
	int64_t left;
	int sliced;
	if (install && sigsnap != IPC_UNINTERRUPTIBLE)
		ipc_signals_check();
	int pre = sleep_length(dl, slice_ns, sigsnap, &left, &sliced);
	if (pre != IPC_OK)
		return pre;
	struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
	ipc_wait_enter();
	long r = futex(word, FUTEX_WAIT, expected, &ts);
	int e = errno;
	ipc_wait_leave();
	if (pending_word == word) {
		pending_word = NULL;
		learn_sleep(word, ipc_now_ns() - pending_t0, r == 0 || e == EAGAIN);
	}
	errno = e;
	if (r != 0 && errno == EINTR && ipc_signal_since(sigsnap))
		return IPC_INTERRUPTED;
	if (r != 0 && errno == ETIMEDOUT && !sliced && ipc_deadline_passed(dl))
		return IPC_TIMEOUT;
	return IPC_OK;
}

int ipc_wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl, int64_t slice_ns,
                  unsigned sigsnap)
{
	return wait_word(word, expected, dl, slice_ns, sigsnap, 1);
}

int ipc_wait_word_again(const uint32_t *word, uint32_t expected, const ipc_deadline *dl,
                        int64_t slice_ns, unsigned sigsnap)
{
	return wait_word(word, expected, dl, slice_ns, sigsnap, 0);
}

void ipc_wake_word(uint32_t *word, int n)
{
	futex(word, FUTEX_WAKE, n < 0 ? (uint32_t)INT32_MAX : (uint32_t)n, NULL);
}

int ipc_wait_until(const ipc_wait_spec *w, const ipc_deadline *dl, unsigned sigsnap)
{
	int64_t t0 = 0;
	int spun = 0, slept = 0;
	for (;;) {
		/* the word first, then the condition: see the word protocol */
		uint32_t seen = __atomic_load_n(w->word, __ATOMIC_ACQUIRE);
		int c = w->ready(w->ctx);
		if (c != 0) {
			if (slept && t0)
				learn_sleep(w->word, ipc_now_ns() - t0, 1);
			return c > 0 ? IPC_OK : IPC_ERR;
		}
		if (!spun) {
			spun = 1;
			if (!ipc_deadline_passed(dl) && spin(w->word, seen, &t0))
				continue;
			if (sigsnap != IPC_UNINTERRUPTIBLE)
				ipc_signals_check(); /* once per wait: lua.c swaps SIGINT's */
		}
		slept = 1;
		int r = wait_word(w->word, seen, dl, w->slice_ns, sigsnap, 0);
		if (r != IPC_OK) {
			if (t0)
				learn(w->word, 0);
			return r;
		}
		if (w->on_slice && __atomic_load_n(w->word, __ATOMIC_ACQUIRE) == seen)
			w->on_slice(w->ctx);
	}
}

/* ---- several words: futex_waitv (Linux 5.16+) with a polling fallback ---- */

#if defined(SYS_futex_waitv) && defined(FUTEX_32)
#define HAVE_WAITV 1
#else
#define HAVE_WAITV 0
#endif

static int waitv_state; /* 0 unknown, 1 native, -1 fallback */

int ipc_wait_words_native(void)
{
	if (!waitv_state) {
		const char *no = getenv("IPCSH_TEST_NO_WAITV");
		waitv_state = HAVE_WAITV && !(no && *no) ? 1 : -1;
	}
	return waitv_state > 0;
}

int ipc_wait_words(const uint32_t *const *words, const uint32_t *expected, int n,
                   const ipc_deadline *dl, int64_t slice_ns, unsigned sigsnap, int *woken)
{
	if (woken)
		*woken = -1;
	if (n < 1 || n > IPC_WAIT_WORDS_MAX) {
		errno = EINVAL;
		return IPC_ERR;
	}
	if (!ipc_wait_words_native() || n == 1) {
		int64_t s = slice_ns;
		if (n > 1 && (s <= 0 || s > IPC_WAIT_WORDS_POLL_NS))
			s = IPC_WAIT_WORDS_POLL_NS;
		return ipc_wait_word(words[0], expected[0], dl, s, sigsnap);
	}
#if HAVE_WAITV
	int64_t left;
	int sliced;
	if (sigsnap != IPC_UNINTERRUPTIBLE)
		ipc_signals_check();
	int pre = sleep_length(dl, slice_ns, sigsnap, &left, &sliced);
	if (pre != IPC_OK)
		return pre;
	struct futex_waitv v[IPC_WAIT_WORDS_MAX];
	memset(v, 0, sizeof(struct futex_waitv) * (size_t)n);
	for (int i = 0; i < n; i++) {
		v[i].val = expected[i];
		v[i].uaddr = (uint64_t)(uintptr_t)words[i];
		v[i].flags = FUTEX_32; /* shared: no FUTEX_PRIVATE_FLAG */
	}
	int64_t at = ipc_now_ns() + left; /* futex_waitv takes an absolute time */
	struct timespec ts = {(time_t)(at / 1000000000), (long)(at % 1000000000)};
	ipc_wait_enter();
	long r = syscall(SYS_futex_waitv, v, (unsigned)n, 0u, &ts, CLOCK_MONOTONIC);
	int e = errno;
	ipc_wait_leave();
	if (r >= 0) {
		if (woken)
			*woken = (int)r;
		return IPC_OK;
	}
	if (e == ENOSYS) { /* an old kernel: poll from now on */
		waitv_state = -1;
		return IPC_OK;
	}
	errno = e;
	if (e == EINTR && ipc_signal_since(sigsnap))
		return IPC_INTERRUPTED;
	if (e == ETIMEDOUT && !sliced && ipc_deadline_passed(dl))
		return IPC_TIMEOUT;
	return IPC_OK; /* EAGAIN (a word changed), EINTR, slice over */
#else
	return IPC_OK;
#endif
}
