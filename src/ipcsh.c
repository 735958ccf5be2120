/* Minimal runner (placeholder until the full lua-compatible runner lands). */
#include "lua/modules.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();
	luaL_openlibs(L);
	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
	lua_pushcfunction(L, luaopen_interprocess);
	lua_setfield(L, -2, "interprocess");
	lua_pop(L, 1);
	luaL_requiref(L, "interprocess", luaopen_interprocess, 0);
	lua_setglobal(L, "ipc");
	lua_createtable(L, argc, 1);
	for (int i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	int r;
	if (argc > 2 && argv[1][0] == '-' && argv[1][1] == 'e')
		r = luaL_dostring(L, argv[2]);
	else if ((r = luaL_loadfile(L, argc > 1 ? argv[1] : NULL)) == LUA_OK) {
		for (int i = 2; i < argc; i++)
			lua_pushstring(L, argv[i]);
		r = lua_pcall(L, argc > 2 ? argc - 2 : 0, 0, 0);
	}
	if (r != LUA_OK)
		fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
	lua_close(L);
	return r != LUA_OK;
}
