/* Fault injection for the crash-safety specs: ipc_failpoint("x") kills the
 * calling process with SIGKILL when the environment variable
 * IPCSH_FAILPOINT is "x".  The specs use it to die at an exact instant
 * inside an internal-lock critical section; otherwise it costs one
 * comparison with a cached NULL. */
#ifndef IPC_FAILPOINT_H
#define IPC_FAILPOINT_H

void ipc_failpoint(const char *name);

#endif
