/* Fault injection for the crash-safety specs: ipc_failpoint("x") kills the
 * calling process with SIGKILL when the environment variable
 * IPCSH_FAILPOINT is "x".  The specs use it to die at an exact instant
 * inside an internal-lock critical section.  Every crash hook of every
 * object goes through it (names "object.step": "queue.send.ready",
 * "kv.set.written"...; docs/design.md lists them per object).
 *
 * Disarmed, a point costs one load and one predictable branch: the first
 * call reads the environment once and, when nothing is armed, sets
 * ipc_failpoint_off, which every later call tests inline. */
#ifndef IPC_FAILPOINT_H
#define IPC_FAILPOINT_H

/* hidden: every module (ipcsh, interprocess.so, libipcsh) has its own
 * copy, read with one direct load (no GOT). */
extern unsigned char ipc_failpoint_off __attribute__((visibility("hidden")));

void ipc_failpoint_check(const char *name);

static inline void ipc_failpoint(const char *name)
{
	if (__builtin_expect(!__atomic_load_n(&ipc_failpoint_off, __ATOMIC_RELAXED), 0))
		ipc_failpoint_check(name);
}

#endif
