#include "wait.h"

#include "signals.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static long futex(const uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, addr, op, val, ts, NULL, 0);
}

int ipc_wait_word(const uint32_t *word, uint32_t expected, const ipc_deadline *dl, int64_t slice_ns,
                  unsigned sigsnap)
{
	ipc_signals_install();
	if (ipc_signal_since(sigsnap))
		return IPC_INTERRUPTED;
	int64_t left = ipc_deadline_left(dl);
	if (left <= 0)
		return IPC_TIMEOUT;
	int sliced = 0;
	if (slice_ns > 0 && left > slice_ns) {
		left = slice_ns;
		sliced = 1;
	}
	/* Even an unsliced wait wakes once a second: cheap, and a safety net
	 * against a wake lost to a process killed between its two steps. */
	if (left > 1000000000LL) {
		left = 1000000000LL;
		sliced = 1;
	}
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
