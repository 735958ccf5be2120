/* Signal handling shared by every wait and by cleanup=true objects.
 *
 * SIGINT, SIGTERM and SIGHUP get a handler of ours.  It counts the signal so
 * that a blocked wait returns IPC_INTERRUPTED within one wait slice, then:
 *  - if the signal's previous disposition was a handler (stock lua installs
 *    one for SIGINT while a script runs), that handler is called too, so Lua
 *    raises "interrupted!" and the script's <close> guards run;
 *  - otherwise (default disposition) the cleanup objects of this process are
 *    unlinked and the signal is re-raised with its default action, so the
 *    process still dies by that signal. */
#ifndef IPC_SIGNALS_H
#define IPC_SIGNALS_H

void ipc_signals_install(void); /* idempotent; 3 syscalls when done already */
/* The cheap check every blocking wait makes, once per wait: installs on
 * first use; afterwards reads SIGINT's disposition only (one syscall) and
 * re-installs all three when it was replaced.  lua.c sets its own SIGINT
 * handler around every chunk it runs; SIGTERM and SIGHUP are otherwise
 * (re)installed at module load, ipc.spawn and the runner's start. */
void ipc_signals_check(void);

/* A number that changes whenever one of our signals arrives. */
unsigned ipc_signal_count(void);
/* Pass as a sigsnap to make a wait ignore signals (releases, repairs). */
#define IPC_UNINTERRUPTIBLE 0xffffffffu
/* Has a signal arrived since sigsnap was taken? */
int ipc_signal_since(unsigned sigsnap);

/* Bracket a blocking wait: a SIGINT that arrives inside one (with no
 * handler of its own) interrupts the wait instead of killing the process,
 * so the script's <close> guards run. */
void ipc_wait_enter(void);
void ipc_wait_leave(void);

/* Paths unlinked at exit or on a fatal signal, by the process that added
 * them only (never by a forked child).  dev/ino guard against unlinking an
 * object that was removed and re-created by someone else. */
void ipc_cleanup_add(const char *path, unsigned long dev, unsigned long ino);
void ipc_cleanup_forget(const char *path);
/* Unlink them now (normal exit). */
void ipc_cleanup_run(void);

#endif
