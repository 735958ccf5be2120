/* Pid files whose ownership is an open file description lock (fcntl
 * F_OFD_SETLK) held for as long as the owner keeps the file open: the kernel
 * drops it when the owner dies, whatever the file says.
 *
 * Lock layout (byte ranges of the file, locks may lie beyond EOF):
 *   [0, 1)  ownership: write-locked by the owner for its whole ownership;
 *   [1, oo) "pid published": write-locked by the owner once the pid is in
 *           the file, so a reader never reports a half-written or stale pid.
 * A whole-file fcntl lock taken by another program covers both ranges. */
#ifndef IPC_PIDFILE_H
#define IPC_PIDFILE_H

#include "common.h"

#include <sys/types.h>

typedef struct ipc_pidfile {
	int fd;      /* open + locked while owner, else -1 */
	int32_t pid; /* process that took the lock (a forked child is not it) */
	dev_t dev;   /* identity of the locked file */
	ino_t ino;
	char *path;                      /* malloc'd copy */
	struct ipc_pidfile *prev, *next; /* registry of handles, for fork */
} ipc_pidfile;

/* Set up a handle (not owner); 0 or IPC_ERR (out of memory). */
int ipc_pidfile_init(ipc_pidfile *p, const char *path, ipc_error *err);
/* Release (if owner, without removing the file) and free. Idempotent. */
void ipc_pidfile_fini(ipc_pidfile *p);

/* Take ownership.  IPC_OK: this handle owns the file now (or already did).
 * 1: a live process owns it, *owner = its pid (0 if it cannot be told).
 * IPC_ERR: cannot open/lock/write the file. */
int ipc_pidfile_create(ipc_pidfile *p, int32_t *owner, ipc_error *err);

/* Pid of the live owner in *owner (0: nobody owns it).  IPC_OK or IPC_ERR. */
int ipc_pidfile_read(ipc_pidfile *p, int32_t *owner, ipc_error *err);

/* 1 when this handle owns the file in this process and the path still names
 * the locked file (if the file was removed or replaced behind our back,
 * ownership is dropped and 0 returned). */
int ipc_pidfile_is_owner(ipc_pidfile *p);

/* Owner only: unlink the file (if it is still ours) and release.  1 when
 * this handle was the owner, 0 otherwise. */
int ipc_pidfile_remove(ipc_pidfile *p);

/* Stop tracking ownership through this handle but keep the lock until the
 * process exits (used when a Lua handle is collected while owning): the
 * file is unlinked at normal exit or on SIGINT/TERM/HUP. */
void ipc_pidfile_abandon(ipc_pidfile *p);

#endif
