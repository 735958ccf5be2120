/* Per-process slot tables inside a segment.  Each slot begins with the
 * ipc_token of the process that holds it (0 = free).  Callers hold the
 * object's internal lock, so plain loads and stores suffice; the token is
 * still written with an atomic store so that lock-free readers (info) see
 * either the old or the new value. */
#ifndef IPC_SLOTS_H
#define IPC_SLOTS_H

#include "procid.h"

#include <stddef.h>
#include <stdint.h>

static inline ipc_token *ipc_slot_at(void *base, size_t stride, uint32_t i)
{
	return (ipc_token *)((char *)base + (size_t)i * stride);
}

/* Index of the slot holding token t, or -1. */
int ipc_slot_find(void *base, size_t stride, uint32_t n, ipc_token t);

/* Claim a free slot for t (starting at a pid-derived hint), zeroing the
 * rest of the slot: index, or -1 when every slot is taken.  Slots of dead
 * processes are NOT reclaimed here: their owners may hold something that
 * the caller's repair must give back first (see ipc_slot_reap). */
int ipc_slot_claim(void *base, size_t stride, uint32_t n, ipc_token t);

/* Call fn(slot, ud) for every slot whose process is dead, then free it.
 * Returns how many were reaped. */
int ipc_slot_reap(void *base, size_t stride, uint32_t n, void (*fn)(void *slot, void *ud),
                  void *ud);

/* Number of occupied slots. */
uint32_t ipc_slot_count(void *base, size_t stride, uint32_t n);

#endif
