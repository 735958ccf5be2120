/* The namespace: the directory that holds the objects, and the rules for
 * trusting what is found in it (docs/design.md, "The namespace").
 *
 * Private (the default): DIR/ipcsh-EUID under /dev/shm (else
 * $XDG_RUNTIME_DIR, else /tmp), made 0700 on first use.  It must be a real
 * directory owned by the caller with no access for anybody else; every
 * object in it must be the caller's own.
 *
 * Shared (IPCSH_DIR or opts.dir): the directory must be real and, when
 * others may write it, sticky.  An object owned by another user is used only
 * when its group is one of the caller's groups, that group may read and
 * write it, and others may not write it.  Root is not exempt. */
#ifndef IPC_NAMESPACE_H
#define IPC_NAMESPACE_H

#include "common.h"

#include <sys/stat.h>

#define IPC_NS_PATH_MAX 4096

typedef struct ipc_ns {
	int fd;     /* the verified directory (O_DIRECTORY), -1 when closed */
	int shared; /* 0: the caller's private directory */
	char path[IPC_NS_PATH_MAX];
} ipc_ns;

/* The absolute path of the namespace named by dir (NULL or "": $IPCSH_DIR,
 * else the private default), without touching it. */
int ipc_ns_path(char *buf, size_t size, const char *dir, int *shared, ipc_error *err);

/* Open and verify the namespace.  create: make the private directory when it
 * is missing.  A missing directory fails with err->code ENOENT. */
int ipc_ns_open(ipc_ns *ns, const char *dir, int create, ipc_error *err);
void ipc_ns_close(ipc_ns *ns);

/* May the caller use the entry whose lstat/fstat is st?  what and name
 * ("mutex", "jobs") are for the message.  Refusals: err->code EACCES when
 * the object belongs to another user who does not share it with the caller;
 * 0 when using it would be unsafe (a link, not a regular file, writable by
 * others, a stranger's file in the private directory). */
int ipc_ns_trust(const ipc_ns *ns, const struct stat *st, const char *what, const char *name,
                 ipc_error *err);

#endif
