/* ipc.barrier: `count` processes meet, round after round. */
#include "../core/barrier.h"
#include "modules.h"
#include "object.h"

static const ipcl_type barrier_type;

static int barrier_block(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                         ipc_error *err)
{
	return ipc_barrier_wait(h->seg, dl, sigsnap, ctx, err);
}

/* b:wait([timeout_ms]) -> true, is_last | false */
static int f_wait(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &barrier_type);
	lua_Number ms = ipcl_timeout_arg(L, 2);
	int is_last = 0;
	if (!ipcl_block(L, h, ms, barrier_block, &is_last)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	lua_pushboolean(L, 1);
	lua_pushboolean(L, is_last);
	return 2;
}

static void barrier_parse_opts(lua_State *L, int opts, uint64_t *params, const char *fname)
{
	params[0] = (uint64_t)ipcl_opt_int_field(L, opts, "count", 0, 1, IPC_BARRIER_SLOTS, fname);
}

static void barrier_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_barrier_state st;
	ipc_error err;
	if (ipc_barrier_info(h->seg, &st, &err) != IPC_OK) {
		ipcl_raise_obj(L, h, &err);
		return;
	}
	lua_pushinteger(L, st.count);
	lua_setfield(L, -2, "count");
	lua_pushinteger(L, st.arrived);
	lua_setfield(L, -2, "arrived");
	lua_pushinteger(L, (lua_Integer)st.round);
	lua_setfield(L, -2, "round");
	lua_createtable(L, st.arrived, 0);
	for (int i = 0; i < st.arrived; i++) {
		lua_pushinteger(L, st.pids[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "waiter_pids");
}

static const luaL_Reg barrier_methods[] = {{"wait", f_wait}, {NULL, NULL}};

static const char *const barrier_options[] = {"count", NULL};

static const ipcl_type barrier_type = {&ipc_barrier_ops,
                                       barrier_methods,
                                       barrier_options,
                                       barrier_parse_opts,
                                       barrier_push_info,
                                       0,
                                       NULL,
                                       NULL};

void ipcl_open_barrier(lua_State *L)
{
	ipcl_register_type(L, &barrier_type);
}
