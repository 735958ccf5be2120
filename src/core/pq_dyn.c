#ifdef IPCSH_WITH_PG
#define IPC_PQ_DYN_IMPL
#include "pq_dyn.h"

#include <dlfcn.h>

struct ipc_pq_api ipc_pq;

int ipc_pq_load(ipc_error *err)
{
	static void *lib;
	if (lib)
		return IPC_OK;
	void *h = dlopen("libpq.so.5", RTLD_NOW | RTLD_LOCAL);
	if (!h)
		return ipc_fail(err, 0, "cannot load libpq (install libpq5): %s", dlerror());
#define IPC_PQ_RESOLVE(f)                                                                          \
	if (!(*(void **)&ipc_pq.f = dlsym(h, #f))) {                                               \
		dlclose(h);                                                                        \
		return ipc_fail(err, 0, "libpq lacks %s", #f);                                     \
	}
	IPC_PQ_FUNCS(IPC_PQ_RESOLVE)
#undef IPC_PQ_RESOLVE
	lib = h;
	return IPC_OK;
}
#else
typedef int ipc_pq_dyn_unused; /* ISO C: no empty translation unit */
#endif
