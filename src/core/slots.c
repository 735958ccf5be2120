#include "slots.h"

#include <string.h>

int ipc_slot_find(void *base, size_t stride, uint32_t n, ipc_token t)
{
	uint32_t start = (uint32_t)IPC_TOKEN_PID(t) % n;
	for (uint32_t i = start; i < n; i++)
		if (__atomic_load_n(ipc_slot_at(base, stride, i), __ATOMIC_ACQUIRE) == t)
			return (int)i;
	for (uint32_t i = 0; i < start; i++)
		if (__atomic_load_n(ipc_slot_at(base, stride, i), __ATOMIC_ACQUIRE) == t)
			return (int)i;
	return -1;
}

int ipc_slot_claim(void *base, size_t stride, uint32_t n, ipc_token t)
{
	uint32_t start = (uint32_t)IPC_TOKEN_PID(t) % n;
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (start + k) % n;
		ipc_token *slot = ipc_slot_at(base, stride, i);
		if (*slot == 0) {
			memset((char *)slot + sizeof(ipc_token), 0, stride - sizeof(ipc_token));
			__atomic_store_n(slot, t, __ATOMIC_RELEASE);
			return (int)i;
		}
	}
	return -1;
}

int ipc_slot_reap(void *base, size_t stride, uint32_t n, void (*fn)(void *slot, void *ud), void *ud)
{
	int reaped = 0;
	for (uint32_t i = 0; i < n; i++) {
		ipc_token *slot = ipc_slot_at(base, stride, i);
		ipc_token t = *slot;
		if (t == 0 || ipc_token_alive(t))
			continue;
		if (fn)
			fn(slot, ud);
		__atomic_store_n(slot, 0, __ATOMIC_RELEASE);
		reaped++;
	}
	return reaped;
}

uint32_t ipc_slot_count(void *base, size_t stride, uint32_t n)
{
	uint32_t c = 0;
	for (uint32_t i = 0; i < n; i++)
		if (__atomic_load_n(ipc_slot_at(base, stride, i), __ATOMIC_ACQUIRE))
			c++;
	return c;
}
