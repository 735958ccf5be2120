/* Child processes: spawning a program, waiting with a timeout, signalling,
 * and reaping children whose handles were dropped. */
#ifndef IPC_PROC_H
#define IPC_PROC_H

#include "common.h"

#include <sys/types.h>

typedef struct ipc_child {
	pid_t pid;      /* 0: none */
	int pidfd;      /* -1 when pidfd_open is unavailable */
	int reaped;     /* the status below is final */
	int status;     /* waitpid status once reaped */
	int32_t parent; /* the process that may wait for it */
} ipc_child;

/* Start tracking a child just created by fork (opens its pidfd). */
void ipc_child_init(ipc_child *c, pid_t pid);

/* Start a program.  argv: NULL-terminated, argv[0] is searched in PATH
 * (the caller's PATH, like execvp) unless it holds a '/'.  envp: the
 * complete environment, or NULL to inherit ours.  cwd: NULL or a directory
 * for the child.  Errors in the child before exec (no such program, bad
 * cwd) are reported here through a close-on-exec pipe. */
int ipc_spawn(ipc_child *c, char *const argv[], char *const envp[], const char *cwd,
              ipc_error *err);

/* Wait until the child ends, the deadline or one of our signals.
 * IPC_OK (c->status is set), IPC_TIMEOUT, IPC_INTERRUPTED or IPC_ERR. */
int ipc_child_wait(ipc_child *c, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err);

/* Send sig.  IPC_OK, 1 when the child has already exited (it is reaped
 * then), IPC_ERR. */
int ipc_child_kill(ipc_child *c, int sig, ipc_error *err);

/* The handle is going away: reap now if possible, else remember the pid
 * and reap it later (never blocks).  Closes the pidfd. */
void ipc_child_forget(ipc_child *c);

/* Reap remembered children that have exited (never blocks). */
void ipc_child_sweep(void);

/* Signal number for a name: "TERM", "SIGTERM", "term"... 0 if unknown. */
int ipc_signal_number(const char *name);

#endif
