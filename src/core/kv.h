/* kv: a crash-safe shared table of byte-string keys and byte-string values
 * (the Lua binding stores values encoded by the value codec).
 *
 * Storage is an array of 64-byte chunks with no external fragmentation: a
 * record (key + value) is a chain of chunks, records hang off a hash index
 * of buckets.  Every mutation commits with one aligned 32-bit store (see
 * docs/design.md); whatever a killed process leaves behind is repaired
 * by the next locker with a mark & sweep over the chunks.
 *
 * params[0] = storage bytes (rounded down to whole chunks). */
#ifndef IPC_KV_H
#define IPC_KV_H

#include "rlock.h"
#include "segment.h"

#include <stdint.h>

#define IPC_KV_CHUNK 64
#define IPC_KV_FIRST_DATA 44 /* payload bytes in a record's first chunk */
#define IPC_KV_NEXT_DATA 60  /* payload bytes in each following chunk */
#define IPC_KV_KEY_MAX 1024
#define IPC_KV_SIZE_MIN 1024
#define IPC_KV_SIZE_MAX ((uint64_t)1 << 36)
#define IPC_KV_SIZE_DEFAULT ((uint64_t)1 << 20)

extern const ipc_type_ops ipc_kv_ops;

/* Mutable state at the start of the body. */
typedef struct ipc_kv_body {
	ipc_rlock lock;
	uint32_t free_head;  /* chunk index + 1 of the free list, 0 = empty */
	uint32_t free_count; /* chunks on the free list */
	uint32_t count;      /* records */
	uint32_t reserved;
	uint64_t repairs; /* times a repair ran (owner died / corruption) */
	uint64_t gen;     /* bumped by every committed mutation */
	uint64_t sets;    /* committed sets, for rates (ipcsh top); under lock */
} ipc_kv_body;

/* A process-local view of one table, computed from the (checksummed)
 * creation parameters, never from the mutable body. */
typedef struct ipc_kv {
	ipc_segment *seg;
	ipc_kv_body *b;
	uint32_t *buckets;
	uint64_t *marks; /* one bit per chunk, used by repair */
	unsigned char *chunks;
	uint32_t nchunks;
	uint32_t nbuckets; /* a power of two */
} ipc_kv;

/* A growable process-local byte buffer (malloc'd; never Lua memory). */
typedef struct ipc_kv_buf {
	char *p;
	size_t cap;
	size_t len;
} ipc_kv_buf;

/* Compute the view once per handle (the geometry is then fixed even if
 * the mapped header were scribbled on).  IPC_ERR when the parameters do
 * not match the mapped body. */
int ipc_kv_view(ipc_kv *kv, ipc_segment *seg);

/* Take the table's lock, repairing it first when the previous holder died.
 * IPC_OK, IPC_TIMEOUT, IPC_INTERRUPTED, or IPC_ERR (err->code EDEADLK when
 * this process already holds it). */
int ipc_kv_lock(ipc_kv *kv, const ipc_deadline *dl, unsigned sigsnap, ipc_error *err);
void ipc_kv_unlock(ipc_kv *kv);

/* All of the following are called with the lock held.  None of them calls
 * anything that can longjmp.  On IPC_ERR with err->code == EUCLEAN the table
 * was found corrupt and has been repaired (some records may be gone). */

/* Copy the value of key into out (out->len = its length): 1 found, 0 not,
 * or IPC_ERR. */
int ipc_kv_get(ipc_kv *kv, const void *key, size_t klen, ipc_kv_buf *out, ipc_error *err);
/* Store (insert or replace).  A full table gives IPC_ERR with err->code
 * ENOSPC and changes nothing. */
int ipc_kv_set(ipc_kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
               ipc_error *err);
/* 1 existed (now deleted), 0 did not, or IPC_ERR. */
int ipc_kv_delete(ipc_kv *kv, const void *key, size_t klen, ipc_error *err);
void ipc_kv_clear(ipc_kv *kv);
/* All keys as [uint32 length][bytes]... into out; *n = how many. */
int ipc_kv_keys(ipc_kv *kv, ipc_kv_buf *out, uint32_t *n, ipc_error *err);
/* Rebuild the free list and count from what the index reaches; cut off
 * whatever is invalid.  Returns the number of index chains cut. */
uint32_t ipc_kv_repair(ipc_kv *kv);

/* Chunks a record of klen + vlen bytes takes. */
uint64_t ipc_kv_chunks_for(uint64_t bytes);

int ipc_kv_buf_reserve(ipc_kv_buf *b, size_t need);
void ipc_kv_buf_free(ipc_kv_buf *b);

#endif
