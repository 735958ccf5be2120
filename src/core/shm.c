#include "shm.h"

static int shm_layout(const uint64_t *params, uint64_t *body_size, ipc_error *err)
{
	if (params[0] == 0)
		return ipc_fail(err, 0, "opts.size is required to create a shm");
	if (params[0] > IPC_BODY_MAX)
		return ipc_fail(err, 0, "size %llu out of range (1..2^40)",
		                (unsigned long long)params[0]);
	*body_size = IPC_ALIGN_UP(params[0], 64);
	return IPC_OK;
}

static int shm_init(void *body, const uint64_t *params, ipc_error *err)
{
	(void)body, (void)params, (void)err; /* the file starts zero-filled */
	return IPC_OK;
}

const ipc_type_ops ipc_shm_ops = {IPC_T_SHM, "shm", 0, shm_layout, shm_init, NULL};

int ipc_shm_range_ok(uint64_t size, int64_t offset, uint64_t len)
{
	return offset >= 0 && (uint64_t)offset <= size && len <= size - (uint64_t)offset;
}

int ipc_shm_add(void *body, uint64_t offset, int64_t delta, int64_t *result)
{
	int64_t *p = (int64_t *)((char *)body + offset);
	int64_t v = __atomic_load_n(p, __ATOMIC_RELAXED), n;
	do {
		if (__builtin_add_overflow(v, delta, &n)) {
			*result = v;
			return -1;
		}
	} while (!__atomic_compare_exchange_n(p, &v, n, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
	*result = n;
	return 0;
}

int ipc_shm_cas(void *body, uint64_t offset, int64_t expected, int64_t desired)
{
	int64_t *p = (int64_t *)((char *)body + offset);
	return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST,
	                                   __ATOMIC_SEQ_CST);
}
