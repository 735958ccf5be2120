#include "wait.h"

#include "signals.h"

#include <errno.h>
#include <linux/futex.h>
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
	ipc_signals_install();
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

int ipc_wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl, int64_t slice_ns,
                  unsigned sigsnap)
{
	int64_t left;
	int sliced;
	int pre = sleep_length(dl, slice_ns, sigsnap, &left, &sliced);
	if (pre != IPC_OK)
		return pre;
	struct timespec ts = {(time_t)(left / 1000000000), (long)(left % 1000000000)};
	ipc_wait_enter();
	long r = futex(word, FUTEX_WAIT, expected, &ts);
	int e = errno;
	ipc_wait_leave();
	errno = e;
	if (r != 0 && errno == EINTR && ipc_signal_since(sigsnap))
		return IPC_INTERRUPTED;
	if (r != 0 && errno == ETIMEDOUT && !sliced && ipc_deadline_passed(dl))
		return IPC_TIMEOUT;
	return IPC_OK;
}

void ipc_wake_word(uint32_t *word, int n)
{
	futex(word, FUTEX_WAKE, n < 0 ? (uint32_t)INT32_MAX : (uint32_t)n, NULL);
}

int ipc_spin_word(const uint32_t *word, uint32_t expected)
{
	static long ncpu;
	if (!ncpu)
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (ncpu < 2)
		return 0;
	/* A time budget, not a count: PAUSE costs from a few to ~140 cycles
	 * depending on the CPU.  A hand-off from a running peer arrives well
	 * within it; a peer that is not running is not worth burning more. */
	int64_t until = 0;
	for (int i = 0;; i++) {
		if (__atomic_load_n(word, __ATOMIC_ACQUIRE) != expected)
			return 1;
		ipc_cpu_relax();
		if ((i & 15) == 15) {
			int64_t now = ipc_now_ns();
			if (!until)
				until = now + IPC_SPIN_NS;
			else if (now >= until)
				return 0;
		}
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
