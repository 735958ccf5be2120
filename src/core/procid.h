/* Process identity that survives pid reuse: a 64-bit token packing the pid
 * with the process start time, and a liveness check for such tokens. */
#ifndef IPC_PROCID_H
#define IPC_PROCID_H

#include <stdint.h>

/* token = pid | start_ticks << 22.  pids are < 2^22 on Linux (pid_max).
 * 0 is never a valid token, so it marks a free slot. */
typedef uint64_t ipc_token;

#define IPC_TOKEN_PID(t) ((int32_t)((t)&0x3fffff))

/* This process's pid and token; refreshed in a forked child.  Inline:
 * they are read on every lock and unlock. */
extern int32_t ipc_self_pid_;
extern ipc_token ipc_self_token_;
void ipc_procid_refresh_(void);
static inline int32_t ipc_self_pid(void)
{
	if (__builtin_expect(!ipc_self_pid_, 0))
		ipc_procid_refresh_();
	return ipc_self_pid_;
}
static inline ipc_token ipc_self_token(void)
{
	if (__builtin_expect(!ipc_self_token_, 0))
		ipc_procid_refresh_();
	return ipc_self_token_;
}

/* 1 while the process named by token runs, 0 once it is gone (or its pid
 * now belongs to another process). */
int ipc_token_alive(ipc_token t);
/* For a bare pid (no start time known). */
int ipc_pid_alive(int32_t pid);

/* Called once by the module; installs the fork handler. */
void ipc_procid_init(void);

/* Register a function run in the child after fork (before anything else
 * of ours runs there).  At most 16. */
void ipc_atfork_child(void (*fn)(void));

#endif
