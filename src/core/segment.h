/* Named objects: one shared-memory file per object, with a checked header.
 *
 * Layout of every segment (see docs/design.md):
 *   [ ipc_header (256 bytes) ][ body (type-specific, 64-byte aligned) ]
 * The file is ipcs.NAME in the namespace (namespace.h: the caller's private
 * directory, or $IPCSH_DIR / opts.dir).  It is built under a temporary name
 * and published with link(2), so an opener sees no object or a complete one. */
#ifndef IPC_SEGMENT_H
#define IPC_SEGMENT_H

#include "common.h"

#include <stdint.h>
#include <sys/types.h>

#define IPC_MAGIC "IPCSHOB"
#ifndef IPC_NAME_MAX
#define IPC_NAME_MAX 250
#endif
#define IPC_LAYOUT_VERSION 3 /* 2: rate counters in the bodies (ipcsh top); 3: own lock word */
#define IPC_NPARAMS 6
#define IPC_HEADER_SIZE 512
#define IPC_BODY_MAX ((uint64_t)1 << 40)

enum ipc_type_id {
	IPC_T_SHM = 1,
	IPC_T_MUTEX = 2,
	IPC_T_SEMAPHORE = 3,
	IPC_T_QUEUE = 4,
	IPC_T_CONDITION = 5,
	IPC_T_EVENT = 6,
	IPC_T_BARRIER = 7,
	IPC_T_KV = 8,
	IPC_T_MAX = 8
};

/* Immutable after creation; covered by the checksum. */
typedef struct ipc_header {
	char magic[8];                /* IPC_MAGIC */
	uint32_t version;             /* IPC_LAYOUT_VERSION */
	uint32_t type;                /* enum ipc_type_id */
	uint64_t header_size;         /* IPC_HEADER_SIZE */
	uint64_t total_size;          /* header + body, == the file's size */
	uint64_t params[IPC_NPARAMS]; /* type-specific sizes and flags */
	int64_t creator_pid;
	int64_t created_ns; /* CLOCK_REALTIME at creation */
	uint32_t name_len;
	char name[256];
	uint32_t reserved;
	uint64_t checksum; /* ipc_hash64 of the bytes before it */
} ipc_header;

struct ipc_segment;

typedef struct ipc_type_ops {
	uint32_t id;
	const char *name;  /* "mutex" */
	size_t local_size; /* bytes of process-local state per object */
	/* Validate creation params (filling defaults is the binding's job)
	 * and compute the body size. */
	int (*layout)(const uint64_t *params, uint64_t *body_size, ipc_error *err);
	/* Initialise a zero-filled body of a new object. */
	int (*init)(void *body, const uint64_t *params, ipc_error *err);
	/* Optional: called when this process drops its last mapping; releases
	 * whatever the process still holds in the object. */
	void (*release)(struct ipc_segment *seg);
} ipc_type_ops;

/* One mapping per object per process, shared by all its handles. */
typedef struct ipc_segment {
	int refs;
	dev_t dev;
	ino_t ino;
	void *base;
	size_t size;
	ipc_header *hdr;
	void *body;
	uint64_t body_size;
	const ipc_type_ops *ops;
	void *local; /* ops->local_size zeroed bytes */
	char path[4096 + 300];
	char name[IPC_NAME_MAX + 1];
	struct ipc_segment *next;
} ipc_segment;

enum { IPC_OPEN_ANY = 0, IPC_OPEN_CREATE = 1, IPC_OPEN_EXISTS = 2 };

typedef struct ipc_open_opts {
	int assert_mode; /* IPC_OPEN_* */
	unsigned mode;   /* permission bits for a new object */
	int cleanup;     /* remove at exit */
	const char *dir; /* the namespace (shared); NULL: the default */
	uint64_t params[IPC_NPARAMS];
} ipc_open_opts;

/* The absolute path of the default namespace ($IPCSH_DIR, else the private
 * directory); not checked, not created. */
const char *ipc_dir(void);

/* Open (or create) NAME as type ops.  *created tells which happened. */
int ipc_seg_open(ipc_segment **out, const char *name, const ipc_type_ops *ops,
                 const ipc_open_opts *o, int *created, ipc_error *err);
/* Drop one reference; the last one unmaps. */
void ipc_seg_release(ipc_segment *seg);

/* IPC_ERR when the file was truncated below this mapping (any access to the
 * lost part would raise SIGBUS): for info() and ls. */
int ipc_seg_intact(ipc_segment *seg, ipc_error *err);

/* Read and validate NAME's header without knowing its type. */
int ipc_seg_peek(const char *name, ipc_header *hdr, ipc_error *err);
/* Validate a header against the real file size (and want_type unless 0). */
int ipc_header_check(const ipc_header *h, uint64_t file_size, uint32_t want_type, const char *name,
                     ipc_error *err);

/* Remove NAME: 1 removed, 0 not there, IPC_ERR. */
int ipc_seg_unlink(const char *name, ipc_error *err);
/* Remove the object this segment maps, if NAME still refers to it. */
int ipc_seg_remove(ipc_segment *seg, ipc_error *err);

/* Call fn for every object name in the directory (sorted); removes the
 * leftovers of creators that died mid-creation. */
int ipc_seg_list(void (*fn)(const char *name, void *ud), void *ud, ipc_error *err);

const char *ipc_type_name(uint32_t id); /* NULL when unknown */

#endif
