/* shm: raw shared memory.  params[0] = size in bytes. */
#ifndef IPC_SHM_H
#define IPC_SHM_H

#include "segment.h"

extern const ipc_type_ops ipc_shm_ops;

/* Is [offset, offset+len) inside an object of `size` bytes? */
int ipc_shm_range_ok(uint64_t size, int64_t offset, uint64_t len);
/* Atomic add/compare-and-swap on an aligned 64-bit integer.  add stores and
 * returns (in *result) the new value, or returns -1 and changes nothing
 * when it would overflow (*result: the value seen). */
int ipc_shm_add(void *body, uint64_t offset, int64_t delta, int64_t *result);
int ipc_shm_cas(void *body, uint64_t offset, int64_t expected, int64_t desired);

#endif
