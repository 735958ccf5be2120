/* ipc.mutex: shared and exclusive locks with <close> guards. */
#include "../core/mutex.h"
#include "modules.h"
#include "object.h"

/* --- guards ---------------------------------------------------------- */

/* One guard per handle, made at open and returned by every successful
 * lock: closing it unlocks if this process still holds the mutex. */
static int guard_close(lua_State *L)
{
	if (!luaL_testudata(L, 1, "ipcsh.guard")) /* g.unlock() for g:unlock() */
		return ipcl_selferror(L, "guard");
	lua_getiuservalue(L, 1, 1);
	ipcl_handle *h = ipcl_test(L, -1);
	if (h && h->seg && ipc_mutex_held(h->seg)) {
		ipc_error err;
		if (ipc_mutex_unlock(h->seg, &err) == IPC_ERR)
			return ipcl_raise_obj(L, h, &err);
	}
	return 0;
}

static int guard_tostring(lua_State *L)
{
	lua_getiuservalue(L, 1, 1);
	ipcl_handle *h = ipcl_test(L, -1);
	if (h && h->seg)
		lua_pushfstring(L, "guard of mutex \"%s\"", h->seg->name);
	else
		lua_pushliteral(L, "guard of a closed mutex");
	return 1;
}

/* Made at luaopen, so that errors can name guard:unlock. */
static void guard_metatable(lua_State *L)
{
	if (luaL_newmetatable(L, "ipcsh.guard")) {
		lua_pushcfunction(L, guard_close);
		lua_setfield(L, -2, "__close");
		lua_pushcfunction(L, guard_tostring);
		lua_setfield(L, -2, "__tostring");
		lua_createtable(L, 0, 1);
		lua_pushcfunction(L, guard_close);
		lua_setfield(L, -2, "unlock");
		lua_setfield(L, -2, "__index");
	}
}

static int mutex_on_open(lua_State *L, ipcl_handle *h)
{
	(void)h;
	lua_newuserdatauv(L, 0, 1);
	guard_metatable(L);
	lua_setmetatable(L, -2);
	lua_pushvalue(L, -2);
	lua_setiuservalue(L, -2, 1); /* guard -> handle */
	lua_setiuservalue(L, -2, 1); /* handle -> guard */
	return 0;
}

/* --- methods --------------------------------------------------------- */

static int lock_block(ipcl_handle *h, const ipc_deadline *dl, unsigned sigsnap, void *ctx,
                      ipc_error *err)
{
	return ipc_mutex_lock(h->seg, *(const int *)ctx, dl, sigsnap, err);
}

/* Lock with the timeout at tidx: 1 with the guard pushed, 0 with false
 * pushed.  The fast path first; the timeout is checked before anything is
 * locked, and the clock is read only when the call has to wait. */
static int do_lock(lua_State *L, int shared, int tidx)
{
	ipcl_handle *h = ipcl_check(L, 1, &ipcl_mutex_type);
	lua_Number ms = ipcl_timeout_arg(L, tidx);
	if (ipc_mutex_lock_fast(h->seg, shared) == IPC_OK ||
	    ipcl_block(L, h, ms, lock_block, &shared)) {
		lua_getiuservalue(L, 1, 1);
		return 1;
	}
	lua_pushboolean(L, 0);
	return 0;
}

static int m_lock(lua_State *L)
{
	do_lock(L, 0, 2);
	return 1;
}

static int m_lock_shared(lua_State *L)
{
	do_lock(L, 1, 2);
	return 1;
}

static int m_unlock(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &ipcl_mutex_type);
	ipc_error err;
	int r = ipc_mutex_unlock(h->seg, &err);
	if (r == IPC_ERR)
		return ipcl_raise_obj(L, h, &err);
	if (r == IPC_TIMEOUT) {
		lua_pushboolean(L, 0);
		lua_pushliteral(L, "not locked by this process");
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int m_held(lua_State *L)
{
	ipcl_handle *h = ipcl_check(L, 1, &ipcl_mutex_type);
	switch (ipc_mutex_held(h->seg)) {
	case IPC_HELD_EXCLUSIVE:
		lua_pushliteral(L, "exclusive");
		break;
	case IPC_HELD_SHARED:
		lua_pushliteral(L, "shared");
		break;
	default:
		lua_pushnil(L);
	}
	return 1;
}

/* m:with(fn [, timeout]) -> true, fn()... | false; unlocks even on error. */
static int do_with(lua_State *L, int shared)
{
	ipcl_check(L, 1, &ipcl_mutex_type);
	ipcl_checktype(L, 2, LUA_TFUNCTION);
	lua_settop(L, 3);
	if (!do_lock(L, shared, 3))
		return 1;
	lua_pop(L, 1);
	int base = lua_gettop(L);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 2);
	int status = lua_pcall(L, 0, LUA_MULTRET, 0);
	ipcl_handle *h = ipcl_test(L, 1);
	if (h->seg && ipc_mutex_held(h->seg)) {
		ipc_error err;
		ipc_mutex_unlock(h->seg, &err);
	}
	if (status != LUA_OK)
		return lua_error(L);
	return lua_gettop(L) - base;
}

static int m_with(lua_State *L)
{
	return do_with(L, 0);
}
static int m_with_shared(lua_State *L)
{
	return do_with(L, 1);
}

static void mutex_push_info(lua_State *L, ipcl_handle *h)
{
	ipc_mutex_state st;
	ipc_error err;
	if (ipc_mutex_state_get(h->seg, &st, &err) != IPC_OK)
		ipcl_raise_obj(L, h, &err);
	static const char *const names[] = {"free", "shared", "exclusive"};
	lua_pushstring(L, names[st.state]);
	lua_setfield(L, -2, "state");
	lua_createtable(L, (int)st.nholders, 0);
	for (uint32_t i = 0; i < st.nholders; i++) {
		lua_pushinteger(L, st.holders[i]);
		lua_rawseti(L, -2, (lua_Integer)i + 1);
	}
	lua_setfield(L, -2, "holders");
	lua_pushinteger(L, st.waiters);
	lua_setfield(L, -2, "waiters");
	lua_createtable(L, 0, 2); /* rate counters (ipcsh top) */
	lua_pushinteger(L, (lua_Integer)st.n_exclusive);
	lua_setfield(L, -2, "exclusive");
	lua_pushinteger(L, (lua_Integer)st.n_shared);
	lua_setfield(L, -2, "shared");
	lua_setfield(L, -2, "counters");
}

static const luaL_Reg mutex_methods[] = {
    {"lock", m_lock}, {"lock_shared", m_lock_shared}, {"unlock", m_unlock}, {"held", m_held},
    {"with", m_with}, {"with_shared", m_with_shared}, {NULL, NULL}};

const ipcl_type ipcl_mutex_type = {&ipc_mutex_ops, mutex_methods, NULL, NULL, mutex_push_info, 0,
                                   mutex_on_open,  NULL};

void ipcl_open_mutex(lua_State *L)
{
	ipcl_register_type(L, &ipcl_mutex_type);
	guard_metatable(L);
	lua_pop(L, 1);
}
