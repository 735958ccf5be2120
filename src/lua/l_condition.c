/* ipc.condition: wait(m [, timeout]), signal(), broadcast(). */
#include "../core/condition.h"
#include "modules.h"
#include "object.h"

static const ipcl_type cond_type;

static int cond_block(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                      ipc_error *err)
{
	ipcl_handle *m = ctx;
	return ipc_cond_wait(h->seg, m->seg, dl, sigsnap, err);
}

static int c_wait(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &cond_type);
	ipcl_handle *m = ipcl_check(L, 2, &ipcl_mutex_type);
	lua_Number ms = ipcl_timeout_arg(L, 3);
	lua_pushboolean(L, ipcl_block(L, h, ms, cond_block, m));
	return 1;
}

static int do_signal(lua_State *L, int all)
{
	ipcl_handle *h = ipcl_check(L, 1, &cond_type);
	ipc_error err;
	int r = ipc_cond_signal(h->seg, all, &err);
	if (r < 0)
		return ipcl_raise_obj(L, h, &err);
	lua_pushinteger(L, r);
	return 1;
}

static int c_signal(lua_State *L)
{
	return do_signal(L, 0);
}
static int c_broadcast(lua_State *L)
{
	return do_signal(L, 1);
}

static void cond_push_info(lua_State *L, ipcl_handle *h)
{
	lua_pushinteger(L, ipc_cond_waiters(h->seg));
	lua_setfield(L, -2, "waiters");
}

static const luaL_Reg cond_methods[] = {
    {"wait", c_wait}, {"signal", c_signal}, {"broadcast", c_broadcast}, {NULL, NULL}};

static const ipcl_type cond_type = {
    &ipc_condition_ops, cond_methods, NULL, NULL, cond_push_info, 0, NULL, NULL};

void ipcl_open_condition(lua_State *L)
{
	ipcl_register_type(L, &cond_type);
}
