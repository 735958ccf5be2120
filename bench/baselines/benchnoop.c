/* Bench-only Lua module: the floor for one Lua -> C call.
 * require "benchnoop" -> a userdata whose method :noop() does nothing, called
 * exactly the way ipcsh methods are (obj:method() through a metatable). */
#include <lauxlib.h>
#include <lua.h>

static int noop(lua_State *L)
{
	(void)L;
	return 0;
}

int luaopen_benchnoop(lua_State *L);

int luaopen_benchnoop(lua_State *L)
{
	lua_newuserdatauv(L, 16, 0);
	if (luaL_newmetatable(L, "benchnoop")) {
		lua_newtable(L);
		lua_pushcfunction(L, noop);
		lua_setfield(L, -2, "noop");
		lua_setfield(L, -2, "__index");
	}
	lua_setmetatable(L, -2);
	return 1;
}
