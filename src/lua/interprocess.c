/* luaopen_interprocess: the module table.  Safe to call more than once per
 * state (busted re-requires modules). */
#include "../core/procid.h"
#include "../core/signals.h"
#include "modules.h"
#include "object.h"

#include <lauxlib.h>
#include <string.h>

#define IPCSH_VERSION "0.1.0"

static int load_embedded(lua_State *L)
{
	const ipcl_embedded *e = lua_touserdata(L, lua_upvalueindex(1));
	if (luaL_loadbuffer(L, (const char *)e->data, e->size, e->chunkname) != LUA_OK)
		return lua_error(L);
	lua_pushvalue(L, 1);
	lua_call(L, 1, 1);
	return 1;
}

/* package.preload[name] for each embedded Lua part. */
static void preload_embedded(lua_State *L)
{
	if (lua_getglobal(L, "package") != LUA_TTABLE) {
		lua_pop(L, 1);
		return;
	}
	lua_getfield(L, -1, "preload");
	for (const ipcl_embedded *e = ipcl_embedded_files; e->module; e++) {
		lua_pushlightuserdata(L, (void *)e);
		lua_pushcclosure(L, load_embedded, 1);
		lua_setfield(L, -2, e->module);
	}
	lua_pop(L, 2);
}

int luaopen_interprocess(lua_State *L)
{
	ipc_procid_init();
	ipc_signals_install();
	lua_newtable(L);
	ipcl_open_object(L);
	ipcl_open_shm(L);
	ipcl_open_mutex(L);
	ipcl_open_semaphore(L);
	ipcl_open_queue(L);
	ipcl_open_condition(L);
	ipcl_open_event(L);
	ipcl_open_barrier(L);
	ipcl_open_kv(L);
	ipcl_open_codec(L);
	ipcl_open_pidfile(L);
	ipcl_open_proc(L);
	ipcl_open_net(L);
	ipcl_open_select(L);
	ipcl_name_functions(L, -1);
	lua_pushliteral(L, IPCSH_VERSION);
	lua_setfield(L, -2, "version");
	preload_embedded(L);
	return 1;
}
